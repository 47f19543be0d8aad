/*
 * uri: see uri.h.
 */
#include "uri.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int hex_value(char c);

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

char *uri_quote(char *out, size_t out_len, const char *text)
{
    size_t n = 0;
    for (const char *c = text; *c; c++) {
        unsigned char b = (unsigned char)*c;
        size_t need = (b >= 0x20 && b < 0x7f && b != '\'') ? 1 : 4;
        if (n + need + 4 > out_len) {
            memcpy(out + n, "...", 3);
            n += 3;
            break;
        }
        if (need == 1)
            out[n++] = (char)b;
        else
            n += (size_t)snprintf(out + n, out_len - n, "\\x%02x", b);
    }
    out[n] = '\0';
    return out;
}
