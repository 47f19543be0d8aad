/*
 * text: appending to a bounded character buffer without printf, for the
 * few lines printed once per request (the access log, /health), where
 * vsnprintf's parsing was a measurable share of the service's own cost.
 *
 * The caller owns the buffer; a text never writes past its capacity: what
 * does not fit is dropped and text_overflowed() tells. One thread at a
 * time.
 *
 * Everything but the overflow path is inline, and no function here takes
 * the address of the struct text out of line: a text on the caller's
 * stack then lives in registers, and appending a string literal is a few
 * moves. As calls, /health's hundred appends each reloaded the length
 * from memory after every byte stored (a char store may alias it): 8% of
 * the service's CPU under wrk (perf), the largest share after
 * libmicrohttpd's pool clearing.
 */
#ifndef CONLAB_TEXT_H
#define CONLAB_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Inlined even where GCC would rather call: a call takes the text out of
 * registers. */
#define TEXT_INLINE static inline __attribute__((always_inline))

struct text {
    char *buf;
    size_t cap; /* bytes of buf, the terminating NUL included */
    size_t len;
    bool overflow;
};

/* "00" "01" ... "99": two decimal digits per entry. */
extern const char text_digit_pairs[200];

/*
 * The overflow path of text_mem(): copies what fits of the n bytes at s
 * to buf + len (capacity cap, NUL included), terminates, and returns the
 * new length.
 */
size_t text_cut(char *buf, size_t cap, size_t len, const char *s, size_t n);

/* Starts an empty text in buf (cap >= 1 bytes). */
TEXT_INLINE void text_init(struct text *t, char *buf, size_t cap)
{
    t->buf = buf;
    t->cap = cap;
    t->len = 0;
    t->overflow = false;
    buf[0] = '\0';
}

/* Appends the n bytes at s. */
TEXT_INLINE void text_mem(struct text *t, const char *s, size_t n)
{
    if (t->len + n >= t->cap) {
        t->len = text_cut(t->buf, t->cap, t->len, s, n);
        t->overflow = true;
        return;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

TEXT_INLINE void text_str(struct text *t, const char *s)
{
    text_mem(t, s, strlen(s));
}

TEXT_INLINE void text_char(struct text *t, char c)
{
    text_mem(t, &c, 1);
}

/* Appends v in decimal, two digits at a time. */
TEXT_INLINE void text_u64(struct text *t, uint64_t v)
{
    char digits[20];
    size_t n = sizeof(digits);
    while (v >= 100) {
        size_t i = (size_t)(v % 100) * 2;
        v /= 100;
        n -= 2;
        memcpy(digits + n, text_digit_pairs + i, 2);
    }
    if (v >= 10) {
        n -= 2;
        memcpy(digits + n, text_digit_pairs + v * 2, 2);
    } else {
        digits[--n] = (char)('0' + v);
    }
    text_mem(t, digits + n, sizeof(digits) - n);
}

/* Appends v / 1000 with three decimals ("12.045"). */
TEXT_INLINE void text_milli(struct text *t, uint64_t v)
{
    char frac[4] = {'.', (char)('0' + v / 100 % 10), (char)('0' + v / 10 % 10),
                    (char)('0' + v % 10)};
    text_u64(t, v / 1000);
    text_mem(t, frac, sizeof(frac));
}

/* True when something did not fit. */
TEXT_INLINE bool text_overflowed(const struct text *t)
{
    return t->overflow;
}

#endif
