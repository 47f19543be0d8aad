/*
 * text: see text.h. buf[len] is kept NUL.
 */
#include "text.h"

#include <string.h>

void text_init(struct text *t, char *buf, size_t cap)
{
    t->buf = buf;
    t->cap = cap;
    t->len = 0;
    t->overflow = false;
    buf[0] = '\0';
}

void text_str(struct text *t, const char *s)
{
    size_t n = strlen(s);
    if (t->len + n >= t->cap) {
        t->overflow = true;
        n = t->cap - 1 - t->len;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

void text_char(struct text *t, char c)
{
    if (t->len + 1 >= t->cap) {
        t->overflow = true;
        return;
    }
    t->buf[t->len++] = c;
    t->buf[t->len] = '\0';
}

void text_u64(struct text *t, uint64_t v)
{
    char digits[21];
    size_t n = sizeof(digits) - 1;
    digits[n] = '\0';
    do {
        digits[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    text_str(t, digits + n);
}

void text_milli(struct text *t, uint64_t v)
{
    char frac[5] = {'.', (char)('0' + v / 100 % 10), (char)('0' + v / 10 % 10),
                    (char)('0' + v % 10), '\0'};
    text_u64(t, v / 1000);
    text_str(t, frac);
}

bool text_overflowed(const struct text *t)
{
    return t->overflow;
}
