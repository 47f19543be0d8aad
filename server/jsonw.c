/*
 * jsonw: see jsonw.h. buf is kept NUL-terminated once it exists.
 */
#include "jsonw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSONW_GROW_MIN 256

static bool reserve(struct jsonw *w, size_t more);
static void put(struct jsonw *w, const char *s, size_t n);
static void before_value(struct jsonw *w);

void jsonw_init(struct jsonw *w, size_t max)
{
    memset(w, 0, sizeof(*w));
    w->max = max;
    w->first[0] = true;
}

void jsonw_cleanup(struct jsonw *w)
{
    free(w->buf);
    jsonw_init(w, w->max);
}

static bool reserve(struct jsonw *w, size_t more)
{
    if (w->failed)
        return false;
    if (w->len + more + 1 <= w->cap)
        return true;
    if (w->len + more + 1 > w->max) {
        w->failed = true;
        return false;
    }
    size_t cap = w->cap ? w->cap : JSONW_GROW_MIN;
    while (cap < w->len + more + 1)
        cap *= 2;
    if (cap > w->max)
        cap = w->max;
    char *grown = realloc(w->buf, cap);
    if (!grown) {
        w->failed = true;
        return false;
    }
    w->buf = grown;
    w->cap = cap;
    return true;
}

static void put(struct jsonw *w, const char *s, size_t n)
{
    if (!reserve(w, n))
        return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

/* The comma between siblings; nothing after a key or for the first. */
static void before_value(struct jsonw *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (!w->first[w->depth])
        put(w, ",", 1);
    w->first[w->depth] = false;
}

static void open_level(struct jsonw *w, char c)
{
    before_value(w);
    if (w->depth + 1 >= JSONW_DEPTH_MAX) {
        w->failed = true;
        return;
    }
    put(w, &c, 1);
    w->depth++;
    w->first[w->depth] = true;
    w->close[w->depth] = c == '{' ? '}' : ']';
}

void jsonw_object(struct jsonw *w)
{
    open_level(w, '{');
}

void jsonw_array(struct jsonw *w)
{
    open_level(w, '[');
}

void jsonw_end(struct jsonw *w)
{
    if (w->depth == 0) {
        w->failed = true;
        return;
    }
    put(w, &w->close[w->depth], 1);
    w->depth--;
}

void jsonw_key(struct jsonw *w, const char *key)
{
    jsonw_str(w, key);
    put(w, ":", 1);
    w->after_key = true;
}

void jsonw_int(struct jsonw *w, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%lld", (long long)v);
    before_value(w);
    put(w, num, (size_t)n);
}

void jsonw_uint(struct jsonw *w, uint64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
    before_value(w);
    put(w, num, (size_t)n);
}

void jsonw_ms(struct jsonw *w, double v)
{
    char num[40];
    if (!isfinite(v))
        v = 0;
    int n = snprintf(num, sizeof(num), "%.3f", v);
    /* "2.100" -> "2.1", "3.000" -> "3.0": shorter, still a real number. */
    while (n > 2 && num[n - 1] == '0' && num[n - 2] != '.')
        n--;
    before_value(w);
    put(w, num, (size_t)n);
}

void jsonw_real(struct jsonw *w, double v)
{
    char num[40];
    if (!isfinite(v))
        v = 0;
    int n = snprintf(num, sizeof(num), "%.6g", v);
    before_value(w);
    put(w, num, (size_t)n);
    /* A whole number still reads as a real, as jansson wrote it. */
    if (!strpbrk(num, ".eE"))
        put(w, ".0", 2);
}

void jsonw_bool(struct jsonw *w, bool v)
{
    before_value(w);
    put(w, v ? "true" : "false", v ? 4 : 5);
}

void jsonw_null(struct jsonw *w)
{
    before_value(w);
    put(w, "null", 4);
}

void jsonw_str(struct jsonw *w, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(s);
    if (!jsonw_utf8_valid(s, n)) {
        w->failed = true;
        return;
    }
    before_value(w);
    /* At most 6 bytes per input byte (\u00XX), plus the quotes. */
    if (!reserve(w, 6 * n + 2))
        return;
    char *o = w->buf + w->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else if (c < 0x20 || c == 0x7f) {
            *o++ = '\\';
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    w->len = (size_t)(o - w->buf);
    w->buf[w->len] = '\0';
}

void jsonw_raw(struct jsonw *w, const char *json, size_t len)
{
    before_value(w);
    put(w, json, len);
}

bool jsonw_failed(const struct jsonw *w)
{
    return w->failed;
}

char *jsonw_take(struct jsonw *w, size_t *len_out)
{
    if (w->failed || w->depth != 0 || !w->buf) {
        jsonw_cleanup(w);
        *len_out = 0;
        return NULL;
    }
    char *out = w->buf;
    *len_out = w->len;
    w->buf = NULL;
    jsonw_cleanup(w);
    return out;
}

bool jsonw_utf8_valid(const char *text, size_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
            (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}
