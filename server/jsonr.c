/*
 * jsonr: see jsonr.h.
 *
 * One recursive-descent scanner, used twice: jsonr_scan() runs it over
 * the whole text (the only pass that can fail), and jsonr_next_item()
 * runs it again over one already validated item to find its end. Nesting
 * is bounded by JSONR_DEPTH_MAX, so the recursion is too. Strings are
 * checked as jansson checks them: escapes, UTF-8 (no overlong forms, no
 * surrogates, nothing past U+10FFFF), no raw control characters, and no
 * \u0000 (a NUL would end the C string a handler sees).
 */
#include "jsonr.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const jsonr_type_names[] = {
    [JSONR_NULL] = "null",       [JSONR_BOOL] = "boolean",
    [JSONR_INTEGER] = "integer", [JSONR_NUMBER] = "number",
    [JSONR_STRING] = "string",   [JSONR_ARRAY] = "array",
    [JSONR_OBJECT] = "object",
};

struct scan {
    const char *s;
    size_t len, pos;
    int depth;
    const char *expected; /* set by the first failure */
    size_t error_pos;
};

static int fail(struct scan *sc, const char *expected);
static void skip_ws(struct scan *sc);
static int scan_value(struct scan *sc, enum jsonr_type *type);
static int scan_string(struct scan *sc, char *key, size_t key_cap);
static int scan_number(struct scan *sc, enum jsonr_type *type);
static int scan_literal(struct scan *sc, const char *word);
static int scan_array(struct scan *sc, struct jsonr_member *m);
static int scan_object(struct scan *sc);
static int scan_hex4(struct scan *sc, unsigned *out);
static int scan_utf8(struct scan *sc);
static size_t put_utf8(char *out, unsigned cp);

int jsonr_scan(struct jsonr_doc *doc, const char *text, size_t len, char *err,
               size_t err_len)
{
    struct scan sc = {.s = text, .len = len};
    int rc = 0;

    doc->text = text;
    doc->len = len;
    doc->n = 0;
    skip_ws(&sc);
    if (sc.pos >= len || text[sc.pos] != '{') {
        rc = fail(&sc, "a JSON object ('{')");
        goto out;
    }
    sc.pos++;
    sc.depth = 1;
    skip_ws(&sc);
    if (sc.pos < len && text[sc.pos] == '}') {
        sc.pos++;
        goto out_end;
    }
    for (;;) {
        struct jsonr_member scratch, *m = &scratch;
        if (doc->n < JSONR_MEMBERS_MAX)
            m = &doc->members[doc->n];
        memset(m, 0, sizeof(*m));
        skip_ws(&sc);
        if (sc.pos >= len || text[sc.pos] != '"') {
            rc = fail(&sc, "a member name (a string)");
            goto out;
        }
        rc = scan_string(&sc, m->key, sizeof(m->key));
        if (rc < 0)
            goto out;
        skip_ws(&sc);
        if (sc.pos >= len || text[sc.pos] != ':') {
            rc = fail(&sc, "':'");
            goto out;
        }
        sc.pos++;
        skip_ws(&sc);
        m->at = sc.pos;
        if (sc.pos < len && text[sc.pos] == '[') {
            m->type = JSONR_ARRAY;
            rc = scan_array(&sc, m);
        } else {
            rc = scan_value(&sc, &m->type);
        }
        if (rc < 0)
            goto out;
        m->end = sc.pos;
        if (m == &scratch) {
            snprintf(err, err_len,
                     "request body: more than %d members in the object",
                     JSONR_MEMBERS_MAX);
            return -E2BIG;
        }
        doc->n++;
        skip_ws(&sc);
        if (sc.pos < len && text[sc.pos] == ',') {
            sc.pos++;
            continue;
        }
        if (sc.pos < len && text[sc.pos] == '}') {
            sc.pos++;
            break;
        }
        rc = fail(&sc, "',' or '}'");
        goto out;
    }
out_end:
    skip_ws(&sc);
    if (sc.pos != len)
        rc = fail(&sc, "the end of the body after the object");
out:
    if (rc == -EINVAL) {
        size_t line = 1, column = 1;
        for (size_t i = 0; i < sc.error_pos && i < len; i++) {
            if (text[i] == '\n') {
                line++;
                column = 1;
            } else {
                column++;
            }
        }
        snprintf(err, err_len,
                 "request body: malformed JSON at byte %zu (line %zu, column "
                 "%zu): expected %s",
                 sc.error_pos, line, column, sc.expected);
    }
    return rc;
}

void jsonr_iter_init(struct jsonr_iter *it, const struct jsonr_doc *doc,
                     const struct jsonr_member *m)
{
    it->doc = doc;
    it->pos = m->at + 1; /* past '[' */
    it->end = m->end;
}

bool jsonr_next_item(struct jsonr_iter *it, enum jsonr_type *type,
                     const char **at, size_t *len)
{
    struct scan sc = {.s = it->doc->text, .len = it->end, .pos = it->pos};
    skip_ws(&sc);
    if (sc.pos < sc.len && sc.s[sc.pos] == ',') {
        sc.pos++;
        skip_ws(&sc);
    }
    if (sc.pos >= sc.len || sc.s[sc.pos] == ']')
        return false;
    size_t start = sc.pos;
    if (scan_value(&sc, type) < 0)
        return false; /* cannot happen on scanned text */
    *at = sc.s + start;
    *len = sc.pos - start;
    it->pos = sc.pos;
    return true;
}

int64_t jsonr_integer(const char *at, size_t len)
{
    bool neg = len > 0 && at[0] == '-';
    uint64_t v = 0;
    const uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (size_t i = neg ? 1 : 0; i < len; i++) {
        unsigned d = (unsigned)(at[i] - '0');
        if (v > (limit - d) / 10)
            return neg ? INT64_MIN : INT64_MAX;
        v = v * 10 + d;
    }
    return neg ? (int64_t)(0 - v) : (int64_t)v;
}

char *jsonr_string_dup(const char *at, size_t len)
{
    /* Never longer than the text: escapes only shrink. */
    char *out = malloc(len + 1);
    size_t n = 0;
    if (!out)
        return NULL;
    for (size_t i = 1; i + 1 < len; i++) {
        if (at[i] != '\\') {
            out[n++] = at[i];
            continue;
        }
        i++;
        switch (at[i]) {
        case 'b':
            out[n++] = '\b';
            break;
        case 'f':
            out[n++] = '\f';
            break;
        case 'n':
            out[n++] = '\n';
            break;
        case 'r':
            out[n++] = '\r';
            break;
        case 't':
            out[n++] = '\t';
            break;
        case 'u': {
            struct scan sc = {.s = at, .len = len, .pos = i + 1};
            unsigned cp = 0, low = 0;
            scan_hex4(&sc, &cp);
            i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                sc.pos = i + 3;
                scan_hex4(&sc, &low);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                i += 6;
            }
            if (cp == 0) {
                free(out);
                errno = EILSEQ;
                return NULL;
            }
            n += put_utf8(out + n, cp);
            break;
        }
        default:
            out[n++] = at[i];
            break; /* " \ / */
        }
    }
    out[n] = '\0';
    return out;
}

static int fail(struct scan *sc, const char *expected)
{
    if (!sc->expected) {
        sc->expected = expected;
        sc->error_pos = sc->pos;
    }
    return -EINVAL;
}

static void skip_ws(struct scan *sc)
{
    while (sc->pos < sc->len) {
        char c = sc->s[sc->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        sc->pos++;
    }
}

static int scan_value(struct scan *sc, enum jsonr_type *type)
{
    if (sc->pos >= sc->len)
        return fail(sc, "a value");
    switch (sc->s[sc->pos]) {
    case '"':
        *type = JSONR_STRING;
        return scan_string(sc, NULL, 0);
    case '[':
        *type = JSONR_ARRAY;
        return scan_array(sc, NULL);
    case '{':
        *type = JSONR_OBJECT;
        return scan_object(sc);
    case 't':
        *type = JSONR_BOOL;
        return scan_literal(sc, "true");
    case 'f':
        *type = JSONR_BOOL;
        return scan_literal(sc, "false");
    case 'n':
        *type = JSONR_NULL;
        return scan_literal(sc, "null");
    default:
        return scan_number(sc, type);
    }
}

/* At '"'. key (key_cap bytes, or NULL) gets the decoded text, cut. */
static int scan_string(struct scan *sc, char *key, size_t key_cap)
{
    size_t n = 0;
    sc->pos++;
    for (;;) {
        if (sc->pos >= sc->len)
            return fail(sc, "the end of the string ('\"')");
        unsigned char c = (unsigned char)sc->s[sc->pos];
        if (c == '"') {
            sc->pos++;
            break;
        }
        if (c < 0x20)
            return fail(sc, "no control character in a string (escape it)");
        if (c >= 0x80) {
            size_t from = sc->pos;
            if (scan_utf8(sc) < 0)
                return -EINVAL;
            for (size_t i = from; key && i < sc->pos && n + 1 < key_cap; i++)
                key[n++] = sc->s[i];
            continue;
        }
        if (c != '\\') {
            if (key && n + 1 < key_cap)
                key[n++] = (char)c;
            sc->pos++;
            continue;
        }
        sc->pos++;
        if (sc->pos >= sc->len)
            return fail(sc, "an escape after '\\'");
        char e = sc->s[sc->pos];
        if (e == 'u') {
            unsigned cp, low;
            sc->pos++;
            if (scan_hex4(sc, &cp) < 0)
                return -EINVAL;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return fail(sc, "no lone low surrogate");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (sc->pos + 1 >= sc->len || sc->s[sc->pos] != '\\' ||
                    sc->s[sc->pos + 1] != 'u')
                    return fail(sc, "a low surrogate (\\uDC00-\\uDFFF)");
                sc->pos += 2;
                if (scan_hex4(sc, &low) < 0)
                    return -EINVAL;
                if (low < 0xDC00 || low > 0xDFFF)
                    return fail(sc, "a low surrogate (\\uDC00-\\uDFFF)");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
            if (cp == 0)
                return fail(sc, "no NUL character (\\u0000)");
            char utf8[4];
            size_t k = put_utf8(utf8, cp);
            for (size_t i = 0; key && i < k && n + 1 < key_cap; i++)
                key[n++] = utf8[i];
            continue;
        }
        const char *plain = strchr("\"\\/bfnrt", e);
        if (!plain || e == '\0')
            return fail(sc, "an escape: \\\" \\\\ \\/ \\b \\f \\n \\r \\t or "
                            "\\uXXXX");
        static const char decoded[] = "\"\\/\b\f\n\r\t";
        if (key && n + 1 < key_cap)
            key[n++] = decoded[plain - "\"\\/bfnrt"];
        sc->pos++;
    }
    if (key)
        key[n] = '\0';
    return 0;
}

static int scan_number(struct scan *sc, enum jsonr_type *type)
{
    const char *s = sc->s;
    size_t p = sc->pos;
    *type = JSONR_INTEGER;
    if (p < sc->len && s[p] == '-')
        p++;
    if (p >= sc->len || s[p] < '0' || s[p] > '9') {
        sc->pos = p;
        return fail(sc, "a value (object, array, string, number, true, "
                        "false or null)");
    }
    if (s[p] == '0')
        p++;
    else
        while (p < sc->len && s[p] >= '0' && s[p] <= '9')
            p++;
    if (p < sc->len && s[p] == '.') {
        *type = JSONR_NUMBER;
        p++;
        if (p >= sc->len || s[p] < '0' || s[p] > '9') {
            sc->pos = p;
            return fail(sc, "a digit after '.'");
        }
        while (p < sc->len && s[p] >= '0' && s[p] <= '9')
            p++;
    }
    if (p < sc->len && (s[p] == 'e' || s[p] == 'E')) {
        *type = JSONR_NUMBER;
        p++;
        if (p < sc->len && (s[p] == '+' || s[p] == '-'))
            p++;
        if (p >= sc->len || s[p] < '0' || s[p] > '9') {
            sc->pos = p;
            return fail(sc, "a digit in the exponent");
        }
        while (p < sc->len && s[p] >= '0' && s[p] <= '9')
            p++;
    }
    sc->pos = p;
    return 0;
}

static int scan_literal(struct scan *sc, const char *word)
{
    size_t n = strlen(word);
    if (sc->len - sc->pos < n || memcmp(sc->s + sc->pos, word, n) != 0)
        return fail(sc, "a value (object, array, string, number, true, "
                        "false or null)");
    sc->pos += n;
    return 0;
}

/* At '['. m (a top-level member, or NULL) gets the items' count and types. */
static int scan_array(struct scan *sc, struct jsonr_member *m)
{
    if (++sc->depth > JSONR_DEPTH_MAX)
        return fail(sc, "at most 32 nested arrays and objects");
    sc->pos++;
    skip_ws(sc);
    if (sc->pos < sc->len && sc->s[sc->pos] == ']') {
        sc->pos++;
        sc->depth--;
        return 0;
    }
    for (size_t i = 0;; i++) {
        enum jsonr_type t;
        skip_ws(sc);
        if (scan_value(sc, &t) < 0)
            return -EINVAL;
        if (m) {
            if (i == 0) {
                m->item = t;
            } else if (t != m->item && !m->mixed) {
                m->mixed = true;
                m->first_other = i;
                m->other = t;
            }
            m->n_items++;
        }
        skip_ws(sc);
        if (sc->pos < sc->len && sc->s[sc->pos] == ',') {
            sc->pos++;
            continue;
        }
        if (sc->pos < sc->len && sc->s[sc->pos] == ']') {
            sc->pos++;
            sc->depth--;
            return 0;
        }
        return fail(sc, "',' or ']'");
    }
}

static int scan_object(struct scan *sc)
{
    if (++sc->depth > JSONR_DEPTH_MAX)
        return fail(sc, "at most 32 nested arrays and objects");
    sc->pos++;
    skip_ws(sc);
    if (sc->pos < sc->len && sc->s[sc->pos] == '}') {
        sc->pos++;
        sc->depth--;
        return 0;
    }
    for (;;) {
        enum jsonr_type t;
        skip_ws(sc);
        if (sc->pos >= sc->len || sc->s[sc->pos] != '"')
            return fail(sc, "a member name (a string)");
        if (scan_string(sc, NULL, 0) < 0)
            return -EINVAL;
        skip_ws(sc);
        if (sc->pos >= sc->len || sc->s[sc->pos] != ':')
            return fail(sc, "':'");
        sc->pos++;
        skip_ws(sc);
        if (scan_value(sc, &t) < 0)
            return -EINVAL;
        skip_ws(sc);
        if (sc->pos < sc->len && sc->s[sc->pos] == ',') {
            sc->pos++;
            continue;
        }
        if (sc->pos < sc->len && sc->s[sc->pos] == '}') {
            sc->pos++;
            sc->depth--;
            return 0;
        }
        return fail(sc, "',' or '}'");
    }
}

static int scan_hex4(struct scan *sc, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++, sc->pos++) {
        char c = sc->pos < sc->len ? sc->s[sc->pos] : '\0';
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return fail(sc, "four hex digits after \\u");
        v = v * 16 + d;
    }
    *out = v;
    return 0;
}

/* One UTF-8 sequence at sc->pos (its lead byte is >= 0x80). */
static int scan_utf8(struct scan *sc)
{
    const unsigned char *s = (const unsigned char *)sc->s + sc->pos;
    size_t avail = sc->len - sc->pos;
    unsigned c = s[0], cp, need;

    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        cp = c & 0x07;
    } else {
        return fail(sc, "valid UTF-8");
    }
    if (avail <= need)
        return fail(sc, "valid UTF-8");
    for (unsigned i = 1; i <= need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return fail(sc, "valid UTF-8");
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return fail(sc, "valid UTF-8");
    sc->pos += need + 1;
    return 0;
}

static size_t put_utf8(char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}
