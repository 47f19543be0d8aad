/*
 * params: see params.h.
 *
 * User text is echoed in error messages only through uri_quote(), which keeps
 * printable ASCII and caps the length, so a message is always valid UTF-8
 * for the JSON encoder and never grows with the input.
 */
#include "params.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uri.h"

#define QUOTE_MAX 40 /* bytes of user text echoed in a message */

static int fail(struct params *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void remember_name(struct params *p, const char *name);
static int take_single(struct params *p, const char *name, const char **value);
static int parse_int64(const char *text, size_t len, int64_t *out);
static int parse_real(const char *text, size_t len, double *out);
static void quote_span(char q[QUOTE_MAX], const char *text, size_t len);

int params_parse(struct params *p, const char *query)
{
    /* Not a memset of the whole struct: items[] is filled as parsed. */
    p->storage = NULL;
    p->n = 0;
    p->n_names = 0;
    p->failed = false;
    p->error[0] = '\0';
    if (!query || query[0] == '\0')
        return 0;

    size_t len = strlen(query);
    if (len > PARAMS_QUERY_MAX)
        return fail(p, "query string too long (at most %d bytes)",
                    PARAMS_QUERY_MAX);

    /* Each pair decodes to at most its own length plus two NULs. */
    p->storage = malloc(2 * len + 2);
    if (!p->storage)
        return -ENOMEM;

    char *out = p->storage;
    const char *pair = query;
    while (pair <= query + len) {
        const char *amp = strchr(pair, '&');
        const char *end = amp ? amp : query + len;
        if (end > pair) {
            if (p->n >= PARAMS_MAX)
                return fail(p, "too many parameters (at most %d)", PARAMS_MAX);
            const char *eq = memchr(pair, '=', (size_t)(end - pair));
            const char *key_end = eq ? eq : end;
            if (key_end == pair)
                return fail(p, "empty parameter name in query");

            size_t n;
            struct param *it = &p->items[p->n];
            it->taken = false;
            int rc = uri_decode(out, pair, (size_t)(key_end - pair), true, &n);
            if (rc == 0) {
                it->key = out;
                out += n + 1;
                const char *v = eq ? eq + 1 : end;
                rc = uri_decode(out, v, (size_t)(end - v), true, &n);
                it->value = out;
                out += n + 1;
            }
            if (rc == -EILSEQ)
                return fail(p, "query contains a NUL byte (%%00)");
            if (rc < 0)
                return fail(p, "malformed percent-encoding in query "
                               "(use %%HH with two hex digits)");
            p->n++;
        }
        if (!amp)
            break;
        pair = amp + 1;
    }
    return 0;
}

void params_cleanup(struct params *p)
{
    free(p->storage);
    p->storage = NULL;
    p->n = 0;
}

const char *params_error(const struct params *p)
{
    return p->failed ? p->error : "";
}

int params_int(struct params *p, const char *name, int64_t min, int64_t max,
               int64_t def, int64_t *out)
{
    const char *value;
    int rc = take_single(p, name, &value);
    if (rc < 0)
        return rc;
    if (!value) {
        *out = def;
        return 0;
    }
    return params_check_int(p, name, value, strlen(value), min, max, out);
}

int params_check_int(struct params *p, const char *name, const char *text,
                     size_t len, int64_t min, int64_t max, int64_t *out)
{
    int64_t v;
    if (parse_int64(text, len, &v) < 0 || v < min || v > max) {
        char q[QUOTE_MAX];
        quote_span(q, text, len);
        return fail(p,
                    "parameter '%s': '%s' is not an integer in "
                    "[%lld, %lld]",
                    name, q, (long long)min, (long long)max);
    }
    *out = v;
    return 0;
}

int params_real(struct params *p, const char *name, double min, double max,
                double def, double *out)
{
    const char *value;
    int rc = take_single(p, name, &value);
    if (rc < 0)
        return rc;
    if (!value) {
        *out = def;
        return 0;
    }
    return params_check_real(p, name, value, strlen(value), min, max, out);
}

int params_check_real(struct params *p, const char *name, const char *text,
                      size_t len, double min, double max, double *out)
{
    double v;
    if (parse_real(text, len, &v) < 0 || !(v >= min && v <= max)) {
        char q[QUOTE_MAX];
        quote_span(q, text, len);
        return fail(p, "parameter '%s': '%s' is not a number in [%g, %g]", name,
                    q, min, max);
    }
    *out = v;
    return 0;
}

int params_enum(struct params *p, const char *name, const char *const choices[],
                size_t n_choices, int def, int *out)
{
    const char *value;
    int rc = take_single(p, name, &value);
    if (rc < 0)
        return rc;
    if (!value) {
        *out = def;
        return 0;
    }
    return params_check_enum(p, name, value, choices, n_choices, out);
}

int params_check_enum(struct params *p, const char *name, const char *value,
                      const char *const choices[], size_t n_choices, int *out)
{
    for (size_t i = 0; i < n_choices; i++) {
        if (strcmp(value, choices[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    }
    char accepted[160] = "";
    size_t used = 0;
    for (size_t i = 0; i < n_choices && used < sizeof(accepted); i++)
        used += (size_t)snprintf(accepted + used, sizeof(accepted) - used,
                                 "%s%s", i ? ", " : "", choices[i]);
    char q[QUOTE_MAX];
    uri_quote(q, sizeof(q), value);
    return fail(p, "parameter '%s': '%s' is not one of: %s", name, q, accepted);
}

int params_int_list(struct params *p, const char *name, int64_t min,
                    int64_t max, size_t max_items, const char *def,
                    int64_t **take_out, size_t *n_out)
{
    const char *value;
    int rc = take_single(p, name, &value);
    if (rc < 0)
        return rc;
    if (!value)
        value = def;

    size_t count = 1;
    for (const char *c = value; *c; c++)
        count += *c == ',';
    if (count > max_items)
        return params_check_count(p, name, count, max_items);

    int64_t *items = malloc(count * sizeof(*items));
    if (!items)
        return -ENOMEM;

    const char *item = value;
    for (size_t i = 0; i < count; i++) {
        const char *comma = strchr(item, ',');
        size_t len = comma ? (size_t)(comma - item) : strlen(item);
        if (params_check_item(p, name, i, item, len, min, max, max_items,
                              &items[i]) < 0) {
            free(items);
            return -EINVAL;
        }
        item = comma ? comma + 1 : item + len;
    }
    *take_out = items;
    *n_out = count;
    return 0;
}

int params_check_count(struct params *p, const char *name, size_t count,
                       size_t max_items)
{
    return fail(p, "parameter '%s': at most %zu items, got %zu", name,
                max_items, count);
}

int params_check_item(struct params *p, const char *name, size_t index,
                      const char *text, size_t len, int64_t min, int64_t max,
                      size_t max_items, int64_t *out)
{
    if (parse_int64(text, len, out) == 0 && *out >= min && *out <= max)
        return 0;
    char q[QUOTE_MAX];
    quote_span(q, text, len);
    return fail(p,
                "parameter '%s': item %zu ('%s') is not an integer "
                "in [%lld, %lld] (a comma list of 1 to %zu)",
                name, index + 1, q, (long long)min, (long long)max, max_items);
}

int params_fail(struct params *p, const char *fmt, ...)
{
    if (!p->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->error, sizeof(p->error), fmt, ap);
        va_end(ap);
        p->failed = true;
    }
    return -EINVAL;
}

void params_expect(struct params *p, const char *name)
{
    remember_name(p, name);
}

int params_unknown(struct params *p, const char *key)
{
    char q[QUOTE_MAX];
    char accepted[200] = "";
    size_t used = 0;
    for (size_t k = 0; k < p->n_names && used < sizeof(accepted); k++)
        used += (size_t)snprintf(accepted + used, sizeof(accepted) - used,
                                 "%s%s", k ? ", " : "", p->names[k]);
    uri_quote(q, sizeof(q), key);
    if (p->n_names == 0)
        return fail(p,
                    "unknown parameter '%s' (this endpoint takes no "
                    "parameters)",
                    q);
    return fail(p, "unknown parameter '%s' (accepted: %s)", q, accepted);
}

int params_strings(struct params *p, const char *name, size_t max_items,
                   const char *out[], size_t *n_out)
{
    size_t n = 0;
    remember_name(p, name);
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->items[i].key, name) != 0)
            continue;
        p->items[i].taken = true;
        if (n >= max_items)
            return fail(p, "parameter '%s': at most %zu values", name,
                        max_items);
        if (p->items[i].value[0] == '\0')
            return fail(p, "parameter '%s': value %zu is empty", name, n + 1);
        out[n++] = p->items[i].value;
    }
    *n_out = n;
    return 0;
}

bool params_has(const struct params *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->items[i].key, name) == 0)
            return true;
    }
    return false;
}

int params_finish(struct params *p)
{
    if (p->failed)
        return -EINVAL;
    for (size_t i = 0; i < p->n; i++) {
        if (p->items[i].taken)
            continue;
        return params_unknown(p, p->items[i].key);
    }
    return 0;
}

static int fail(struct params *p, const char *fmt, ...)
{
    if (!p->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->error, sizeof(p->error), fmt, ap);
        va_end(ap);
        p->failed = true;
    }
    return -EINVAL;
}

static void remember_name(struct params *p, const char *name)
{
    for (size_t i = 0; i < p->n_names; i++) {
        if (strcmp(p->names[i], name) == 0)
            return;
    }
    if (p->n_names < PARAMS_NAMES_MAX)
        p->names[p->n_names++] = name;
}

/* Finds name, marks it taken; *value is NULL when absent. */
static int take_single(struct params *p, const char *name, const char **value)
{
    *value = NULL;
    remember_name(p, name);
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->items[i].key, name) != 0)
            continue;
        p->items[i].taken = true;
        if (*value)
            return fail(p, "parameter '%s' given more than once", name);
        *value = p->items[i].value;
    }
    return p->failed ? -EINVAL : 0;
}

/* The first bytes of text[0..len), quoted for a message. */
static void quote_span(char q[QUOTE_MAX], const char *text, size_t len)
{
    char raw[QUOTE_MAX + 1];
    size_t keep = len < QUOTE_MAX ? len : QUOTE_MAX;
    memcpy(raw, text, keep);
    raw[keep] = '\0';
    uri_quote(q, QUOTE_MAX, raw);
}

static int parse_int64(const char *text, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    uint64_t v = 0;
    const uint64_t limit = (uint64_t)INT64_MAX + 1; /* |INT64_MIN| */

    if (len > 0 && text[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i == len)
        return -EINVAL;
    for (; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -EINVAL;
        unsigned d = (unsigned)(text[i] - '0');
        if (v > (limit - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    if (!neg && v > (uint64_t)INT64_MAX)
        return -ERANGE;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/*
 * JSON's number grammar (-?digits(.digits)?([eE][+-]?digits)?, leading
 * zeros allowed), checked by hand first so that strtod's extras (spaces,
 * hex, inf, nan, "1.") never pass; then strtod on a bounded copy.
 */
static int parse_real(const char *text, size_t len, double *out)
{
    char buf[64];
    size_t i = 0, digits = 0;
    if (len == 0 || len >= sizeof(buf))
        return -EINVAL;
    if (text[i] == '-')
        i++;
    while (i < len && text[i] >= '0' && text[i] <= '9')
        i++, digits++;
    if (digits == 0)
        return -EINVAL;
    if (i < len && text[i] == '.') {
        i++;
        digits = 0;
        while (i < len && text[i] >= '0' && text[i] <= '9')
            i++, digits++;
        if (digits == 0)
            return -EINVAL;
    }
    if (i < len && (text[i] == 'e' || text[i] == 'E')) {
        i++;
        if (i < len && (text[i] == '+' || text[i] == '-'))
            i++;
        digits = 0;
        while (i < len && text[i] >= '0' && text[i] <= '9')
            i++, digits++;
        if (digits == 0)
            return -EINVAL;
    }
    if (i != len)
        return -EINVAL;
    memcpy(buf, text, len);
    buf[len] = '\0';
    double v = strtod(buf, NULL);
    if (!isfinite(v))
        return -EINVAL;
    *out = v;
    return 0;
}
