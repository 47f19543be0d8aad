/*
 * fuzz_params: libFuzzer target for the strict query-string parser
 * (server/params.c), called exactly as the handlers call it.
 *
 * The input is a raw query string, the text after '?'. The http module
 * hands the parser a C string, so bytes from the first NUL on are ignored.
 * The query is parsed once per endpoint profile (the getter sequences of
 * /run/prime, /run/square, /run/sleep, /run/fetch, /run/work (its reals),
 * /run/compare, /delay, /health, plus one with the widest integer ranges),
 * and each result is
 * compared with a small reference model written here from params.h alone:
 *
 * - params_parse() succeeds exactly when the model finds no bad escape, no
 *   NUL, no empty key and at most PARAMS_MAX pairs, and then yields the
 *   model's keys and values in order;
 * - every getter gives the model's answer (value, default, or refusal);
 *   a repeated getter call (as /run/compare makes) gives the same answer;
 * - params_finish() succeeds exactly when no getter failed and every key
 *   was asked for;
 * - the error message is "" until something fails, then non-empty,
 *   NUL-terminated within PARAMS_ERROR_MAX and printable ASCII only (it
 *   is echoed into JSON and logs).
 *
 * A violated invariant calls abort(), which libFuzzer reports as a crash;
 * AddressSanitizer catches any read or write out of bounds on the way.
 *
 * Run it through scripts/fuzz.sh; seeds are in tests/fuzz/corpus/params/.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/params.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum op_kind {
    OP_INT,
    OP_ENUM,
    OP_LIST,
    OP_STRINGS,
    OP_HAS,
    OP_TASKS_OF,
    OP_REAL /* min and max are the real bounds; def is the default */
};

/* One getter call of a handler. OP_TASKS_OF: an int whose max is the count
 * of the last list, as /run/square's "tasks". */
struct op {
    enum op_kind kind;
    const char *name;
    int64_t min, max, def;
    const char *const *choices;
    size_t n_choices;
    const char *def_list;
};

struct profile {
    const char *label;
    const struct op *ops;
    size_t n_ops;
    size_t repeat; /* times the ops run on one parse (compare: modes) */
};

/* The model's view of a parsed query. */
struct model_pair {
    char *key;
    char *value;
};

struct model {
    bool ok;
    size_t n;
    struct model_pair pairs[PARAMS_MAX];
    char *storage;
};

static const char *const modes4[] = {"sequential", "threads", "processes",
                                     "gil"};
static const char *const modes3[] = {"sequential", "threads", "processes"};
static const char *const modes5[] = {"sequential", "threads", "processes",
                                     "gil", "async"};
static const char *const fetch_modes[] = {"sequential", "threads", "async"};
static const char *const demos[] = {"prime", "square", "sleep", "fetch"};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct op prime_ops[] = {
    {OP_ENUM, "mode", 0, 0, 2, modes4, N(modes4), NULL},
    {OP_INT, "limit", 2, 50000000, 100000, NULL, 0, NULL},
    {OP_INT, "tasks", 1, 256, 2, NULL, 0, NULL},
};
static const struct op square_ops[] = {
    {OP_ENUM, "mode", 0, 0, 2, modes3, N(modes3), NULL},
    {OP_LIST, "numbers", -3037000499LL, 3037000499LL, 10000, NULL, 0,
     "1,2,3,4"},
    {OP_TASKS_OF, "tasks", 1, 256, 2, NULL, 0, NULL},
};
static const struct op sleep_ops[] = {
    {OP_ENUM, "mode", 0, 0, 4, modes5, N(modes5), NULL},
    {OP_INT, "tasks", 1, 10000, 3, NULL, 0, NULL},
    {OP_INT, "ms", 0, 10000, 2000, NULL, 0, NULL},
};
static const struct op fetch_ops[] = {
    {OP_ENUM, "mode", 0, 0, 2, fetch_modes, N(fetch_modes), NULL},
    {OP_STRINGS, "url", 0, 100, 0, NULL, 0, NULL},
    {OP_INT, "count", 1, 1000, 10, NULL, 0, NULL},
    {OP_INT, "ms", 0, 10000, 100, NULL, 0, NULL},
    {OP_HAS, "count", 0, 0, 0, NULL, 0, NULL},
    {OP_HAS, "ms", 0, 0, 0, NULL, 0, NULL},
};
/* /run/compare: the demo, then (here) the square demo's getters once per
 * mode on the same parse, as compare_handle() calls prepare(). */
static const struct op compare_ops[] = {
    {OP_ENUM, "demo", 0, 0, -1, demos, N(demos), NULL},
    {OP_LIST, "numbers", -3037000499LL, 3037000499LL, 10000, NULL, 0,
     "1,2,3,4"},
    {OP_TASKS_OF, "tasks", 1, 256, 2, NULL, 0, NULL},
};
/* /run/work: its reals are in [0, 1]; "r" takes the widest bounds. */
static const struct op work_ops[] = {
    {OP_ENUM, "mode", 0, 0, 4, modes5, N(modes5), NULL},
    {OP_INT, "tasks", 1, 64, 4, NULL, 0, NULL},
    {OP_REAL, "io_ratio", 0, 1, 0, NULL, 0, NULL},
    {OP_REAL, "variance", 0, 1, 0, NULL, 0, NULL},
    {OP_REAL, "r", -1000000, 1000000, 0, NULL, 0, NULL},
};
static const struct op delay_ops[] = {
    {OP_INT, "ms", 0, 10000, 0, NULL, 0, NULL},
};
static const struct op wide_ops[] = {
    {OP_INT, "n", INT64_MIN, INT64_MAX, 0, NULL, 0, NULL},
    {OP_INT, "m", -1, 1, 0, NULL, 0, NULL},
    {OP_LIST, "l", INT64_MIN, INT64_MAX, 16, NULL, 0, "0"},
    {OP_STRINGS, "s", 0, 3, 0, NULL, 0, NULL},
    {OP_ENUM, "e", 0, 0, 0, demos, N(demos), NULL},
};

static const struct profile profiles[] = {
    {"prime", prime_ops, N(prime_ops), 1},
    {"square", square_ops, N(square_ops), 1},
    {"sleep", sleep_ops, N(sleep_ops), 1},
    {"fetch", fetch_ops, N(fetch_ops), 1},
    {"work", work_ops, N(work_ops), 1},
    {"compare", compare_ops, N(compare_ops), 3},
    {"delay", delay_ops, N(delay_ops), 1},
    {"health", NULL, 0, 1},
    {"wide", wide_ops, N(wide_ops), 2},
};

static void check(bool ok, const char *what, const char *query);
static void check_message(const struct params *p, const char *query);
static void model_parse(struct model *m, const char *query);
static void model_free(struct model *m);
static int model_hex(char c);
static int model_decode(char *dst, const char *src, size_t len);
static bool model_int(const char *text, size_t len, int64_t *out);
static bool model_real(const char *text, double *out);
static size_t model_count(const struct model *m, const char *name,
                          const char **first);
static void run_profile(const struct profile *pr, const struct model *m,
                        const char *query);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A C string of exactly its length, so ASan sees any over-read. */
    size_t len = strnlen((const char *)data, size);
    char *query = malloc(len + 1);
    if (!query)
        return 0;
    memcpy(query, data, len);
    query[len] = '\0';

    struct model m;
    model_parse(&m, query);
    for (size_t i = 0; i < N(profiles); i++)
        run_profile(&profiles[i], &m, query);
    model_free(&m);
    free(query);
    return 0;
}

static void run_profile(const struct profile *pr, const struct model *m,
                        const char *query)
{
    struct params p;
    int rc = params_parse(&p, query);

    check(rc == 0 || rc == -EINVAL || rc == -ENOMEM, "parse rc", query);
    check_message(&p, query);
    if (rc == -ENOMEM) {
        params_cleanup(&p);
        return;
    }
    check((rc == 0) == m->ok, "parse agrees with the model", query);
    if (rc < 0) {
        check(p.failed && params_error(&p)[0] != '\0',
              "a refused query has a message", query);
        params_cleanup(&p);
        return;
    }
    check(!p.failed && params_error(&p)[0] == '\0', "no message on success",
          query);
    check(p.n == m->n, "pair count", query);
    for (size_t i = 0; i < p.n; i++) {
        check(p.items[i].key[0] != '\0', "empty key", query);
        check(strcmp(p.items[i].key, m->pairs[i].key) == 0, "key", query);
        check(strcmp(p.items[i].value, m->pairs[i].value) == 0, "value", query);
    }

    /* The first pass's answers, which every repeat must give again. */
    int first_rc[8];
    int64_t first_val[8];
    int64_t list_count = -1;
    bool stop = false;

    for (size_t r = 0; r < pr->repeat && !stop; r++) {
        for (size_t k = 0; k < pr->n_ops && !stop; k++) {
            const struct op *op = &pr->ops[k];
            const char *value = NULL;
            size_t count = model_count(m, op->name, &value);
            bool was_failed = p.failed;
            int64_t got = 0;
            int64_t want = 0;
            bool want_ok = true;
            int grc = 0;

            switch (op->kind) {
            case OP_INT:
            case OP_TASKS_OF: {
                int64_t max = op->max;
                int64_t def = op->def;
                if (op->kind == OP_TASKS_OF) {
                    max = list_count < op->max ? list_count : op->max;
                    def = op->def < list_count ? op->def : list_count;
                }
                grc = params_int(&p, op->name, op->min, max, def, &got);
                if (count == 0)
                    want = def;
                else
                    want_ok = count == 1 &&
                              model_int(value, strlen(value), &want) &&
                              want >= op->min && want <= max;
                break;
            }
            case OP_REAL: {
                double rgot = -1, rwant = (double)op->def;
                grc = params_real(&p, op->name, (double)op->min,
                                  (double)op->max, (double)op->def, &rgot);
                if (count > 0)
                    want_ok = count == 1 && model_real(value, &rwant) &&
                              rwant >= (double)op->min &&
                              rwant <= (double)op->max;
                if (grc == 0 && want_ok && !was_failed)
                    check(rgot == rwant, "params_real value", query);
                break;
            }
            case OP_ENUM: {
                int idx = -2;
                grc = params_enum(&p, op->name, op->choices, op->n_choices,
                                  (int)op->def, &idx);
                got = idx;
                want = op->def;
                if (count > 1)
                    want_ok = false;
                if (count == 1) {
                    want_ok = false;
                    for (size_t c = 0; c < op->n_choices; c++) {
                        if (strcmp(value, op->choices[c]) == 0) {
                            want = (int64_t)c;
                            want_ok = true;
                        }
                    }
                }
                break;
            }
            case OP_LIST: {
                int64_t *items = NULL;
                size_t n_items = 0;
                grc = params_int_list(&p, op->name, op->min, op->max,
                                      (size_t)op->def, op->def_list, &items,
                                      &n_items);
                const char *text = count == 1 ? value : op->def_list;
                want_ok = count <= 1;
                size_t n_want = 0;
                const char *item = text;
                while (want_ok) {
                    const char *comma = strchr(item, ',');
                    size_t ilen = comma ? (size_t)(comma - item) : strlen(item);
                    int64_t v;
                    n_want++;
                    if (n_want > (size_t)op->def ||
                        !model_int(item, ilen, &v) || v < op->min ||
                        v > op->max) {
                        want_ok = false;
                        break;
                    }
                    if (grc == 0 && !was_failed)
                        check(n_want <= n_items && items[n_want - 1] == v,
                              "list item", query);
                    if (!comma)
                        break;
                    item = comma + 1;
                }
                if (grc == 0) {
                    check(n_items >= 1 && n_items <= (size_t)op->def,
                          "list length in bounds", query);
                    if (want_ok)
                        check(n_items == n_want, "list length", query);
                    list_count = (int64_t)n_items;
                }
                got = (int64_t)n_items;
                want = (int64_t)n_want;
                free(items);
                break;
            }
            case OP_STRINGS: {
                const char *out[128];
                size_t n_out = 0;
                size_t seen = 0;
                grc =
                    params_strings(&p, op->name, (size_t)op->max, out, &n_out);
                for (size_t i = 0; i < m->n && want_ok; i++) {
                    if (strcmp(m->pairs[i].key, op->name) != 0)
                        continue;
                    if (seen >= (size_t)op->max || m->pairs[i].value[0] == '\0')
                        want_ok = false;
                    else if (grc == 0)
                        check(strcmp(out[seen], m->pairs[i].value) == 0,
                              "repeated value", query);
                    seen++;
                }
                got = (int64_t)n_out;
                want = (int64_t)seen;
                break;
            }
            case OP_HAS:
                got = params_has(&p, op->name);
                want = count > 0;
                break;
            }

            check(grc == 0 || grc == -EINVAL, "getter rc", query);
            check_message(&p, query);
            if (!was_failed && op->kind != OP_STRINGS) {
                check((grc == 0) == want_ok, "getter agrees with the model",
                      query);
                if (grc == 0)
                    check(got == want, "getter value", query);
            }
            if (op->kind == OP_STRINGS && !was_failed) {
                check((grc == 0) == want_ok, "strings agree with the model",
                      query);
                if (grc == 0)
                    check(got == want, "strings count", query);
            }
            if (grc < 0)
                check(p.failed && params_error(&p)[0] != '\0',
                      "a refusal leaves a message", query);
            if (k < 8) {
                if (r == 0) {
                    first_rc[k] = grc;
                    first_val[k] = got;
                } else if (!was_failed) {
                    check(grc == first_rc[k] &&
                              (grc < 0 || got == first_val[k]),
                          "a repeated getter gives the same answer", query);
                }
            }
            /* Handlers stop at the first refusal. */
            if (grc < 0)
                stop = true;
        }
    }

    bool was_failed = p.failed;
    int frc = params_finish(&p);
    check(frc == 0 || frc == -EINVAL, "finish rc", query);
    check_message(&p, query);
    if (was_failed) {
        check(frc == -EINVAL, "finish keeps an earlier failure", query);
    } else {
        bool all_asked = true;
        for (size_t i = 0; i < m->n; i++) {
            bool asked = false;
            for (size_t k = 0; k < pr->n_ops; k++)
                asked = asked || strcmp(pr->ops[k].name, m->pairs[i].key) == 0;
            all_asked = all_asked && asked;
        }
        /* Only when every getter ran: a stop leaves later names unasked. */
        if (!stop)
            check((frc == 0) == all_asked, "finish agrees with the model",
                  query);
    }
    params_cleanup(&p);
}

static void check(bool ok, const char *what, const char *query)
{
    if (ok)
        return;
    fprintf(stderr, "fuzz_params: invariant violated: %s (query '%.200s')\n",
            what, query);
    abort();
}

static void check_message(const struct params *p, const char *query)
{
    const char *msg = params_error(p);
    size_t len = strnlen(msg, PARAMS_ERROR_MAX);
    check(len < PARAMS_ERROR_MAX, "message NUL-terminated in its buffer",
          query);
    check(p->failed || len == 0, "message only after a failure", query);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)msg[i];
        check(c >= 0x20 && c < 0x7f, "message is printable ASCII", query);
    }
}

/* The parser as params.h describes it, written naively. */
static void model_parse(struct model *m, const char *query)
{
    size_t len = strlen(query);

    m->ok = true;
    m->n = 0;
    m->storage = malloc(2 * len + 2);
    if (!m->storage) {
        m->ok = false;
        return;
    }
    if (len > PARAMS_QUERY_MAX) {
        m->ok = false;
        return;
    }
    char *out = m->storage;
    const char *pair = query;
    for (;;) {
        const char *amp = strchr(pair, '&');
        size_t plen = amp ? (size_t)(amp - pair) : strlen(pair);
        if (plen > 0) {
            const char *eq = memchr(pair, '=', plen);
            size_t klen = eq ? (size_t)(eq - pair) : plen;
            if (klen == 0 || m->n >= PARAMS_MAX) {
                m->ok = false;
                return;
            }
            int kn = model_decode(out, pair, klen);
            if (kn < 0) {
                m->ok = false;
                return;
            }
            m->pairs[m->n].key = out;
            out += kn + 1;
            const char *v = eq ? eq + 1 : pair + plen;
            int vn = model_decode(out, v, (size_t)(pair + plen - v));
            if (vn < 0) {
                m->ok = false;
                return;
            }
            m->pairs[m->n].value = out;
            out += vn + 1;
            m->n++;
        }
        if (!amp)
            break;
        pair = amp + 1;
    }
}

static void model_free(struct model *m)
{
    free(m->storage);
}

/* The value of a hex digit, or -1. */
static int model_hex(char c)
{
    static const char digits[] = "0123456789abcdef";
    if (c >= 'A' && c <= 'F')
        c = (char)(c - 'A' + 'a');
    const char *at = c ? strchr(digits, c) : NULL;
    return at ? (int)(at - digits) : -1;
}

/* Percent-decoding with '+' as space; -1 for a bad escape or a NUL. */
static int model_decode(char *dst, const char *src, size_t len)
{
    int n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (len - i < 3)
                return -1;
            int hi = model_hex(src[i + 1]);
            int lo = model_hex(src[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (c == '\0')
            return -1;
        dst[n++] = c;
    }
    dst[n] = '\0';
    return n;
}

/* A decimal integer: optional '-', then digits only, within int64_t. */
static bool model_int(const char *text, size_t len, int64_t *out)
{
    size_t i = text[0] == '-' && len > 0 ? 1 : 0;
    if (i == len)
        return false;
    for (size_t k = i; k < len; k++) {
        if (text[k] < '0' || text[k] > '9')
            return false;
    }
    char buf[64];
    if (len >= sizeof(buf)) {
        /* Leading zeros may make a long text of a small number. */
        size_t z = i;
        while (z < len - 1 && text[z] == '0')
            z++;
        if (len - z + 1 >= sizeof(buf))
            return false;
        buf[0] = '-';
        memcpy(buf + i, text + z, len - z);
        buf[i + len - z] = '\0';
    } else {
        memcpy(buf, text, len);
        buf[len] = '\0';
    }
    errno = 0;
    long long v = strtoll(buf, NULL, 10);
    if (errno == ERANGE)
        return false;
    *out = v;
    return true;
}

/*
 * JSON's number grammar, read as a small state machine (params.c checks it
 * by loops): '-'? digits ('.' digits)? ([eE] [+-]? digits)?, under 64
 * characters, finite once converted.
 */
static bool model_real(const char *text, double *out)
{
    enum { SIGN, INT, FRAC0, FRAC, EXP0, EXPS, EXP } st = SIGN;
    size_t len = strlen(text);
    if (len == 0 || len >= 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        bool digit = c >= '0' && c <= '9';
        switch (st) {
        case SIGN:
            if (c == '-' && i == 0)
                continue;
            if (!digit)
                return false;
            st = INT;
            break;
        case INT:
            if (c == '.')
                st = FRAC0;
            else if (c == 'e' || c == 'E')
                st = EXP0;
            else if (!digit)
                return false;
            break;
        case FRAC0:
        case FRAC:
            if (digit)
                st = FRAC;
            else if (st == FRAC && (c == 'e' || c == 'E'))
                st = EXP0;
            else
                return false;
            break;
        case EXP0:
        case EXPS:
            if (digit)
                st = EXP;
            else if (st == EXP0 && (c == '+' || c == '-'))
                st = EXPS;
            else
                return false;
            break;
        case EXP:
            if (!digit)
                return false;
            break;
        }
    }
    if (st != INT && st != FRAC && st != EXP)
        return false;
    double v = strtod(text, NULL);
    if (!(v - v == 0)) /* inf (or nan): not finite */
        return false;
    *out = v;
    return true;
}

/* How many pairs have key name; *first is the first one's value. */
static size_t model_count(const struct model *m, const char *name,
                          const char **first)
{
    size_t count = 0;
    *first = NULL;
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->pairs[i].key, name) == 0) {
            if (!count)
                *first = m->pairs[i].value;
            count++;
        }
    }
    return count;
}
