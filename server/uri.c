/*
 * uri: see uri.h.
 */
#include "uri.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int hex_value(char c);
static size_t quoted_len(unsigned char b);

int uri_decode(char *dst, const char *src, size_t src_len, bool plus_is_space,
               size_t *out_len)
{
    size_t n = 0;

    for (size_t i = 0; i < src_len; i++) {
        char c = src[i];
        if (c == '%') {
            if (src_len - i < 3)
                return -EINVAL;
            int hi = hex_value(src[i + 1]);
            int lo = hex_value(src[i + 2]);
            if (hi < 0 || lo < 0)
                return -EINVAL;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == '\0')
            return -EILSEQ;
        dst[n++] = c;
    }
    dst[n] = '\0';
    if (out_len)
        *out_len = n;
    return 0;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int uri_encode_path(char *out, size_t out_len, const char *path)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *c = (const unsigned char *)path; *c; c++) {
        bool keep = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                    (*c >= '0' && *c <= '9') || strchr("-._~/", *c);
        if (n + (keep ? 1 : 3) >= out_len)
            return -ENAMETOOLONG;
        if (keep) {
            out[n++] = (char)*c;
        } else {
            out[n++] = '%';
            out[n++] = hex[*c >> 4];
            out[n++] = hex[*c & 15];
        }
    }
    out[n] = '\0';
    return 0;
}

char *uri_quote(char *out, size_t out_len, const char *text)
{
    /* Most text (every access line's target) needs no quoting and fits:
     * one pass that copies, and the general case only when it does not. */
    size_t i = 0;
    for (;
         text[i] && i < out_len - 1 && quoted_len((unsigned char)text[i]) == 1;
         i++)
        out[i] = text[i];
    if (!text[i]) {
        out[i] = '\0';
        return out;
    }

    size_t total = 0;
    for (const char *c = text; *c; c++)
        total += quoted_len((unsigned char)*c);
    bool cut = total > out_len - 1;
    size_t budget = cut ? out_len - 4 : out_len - 1; /* "..." and NUL */

    size_t n = 0;
    for (const char *c = text; *c; c++) {
        unsigned char b = (unsigned char)*c;
        size_t need = quoted_len(b);
        if (n + need > budget)
            break;
        if (need == 1)
            out[n++] = (char)b;
        else
            n += (size_t)snprintf(out + n, out_len - n, "\\x%02x", b);
    }
    if (cut) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

/* Bytes that b takes in uri_quote()'s output. */
static size_t quoted_len(unsigned char b)
{
    return (b >= 0x20 && b < 0x7f && b != '\'') ? 1 : 4;
}
