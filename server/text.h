/*
 * text: appending to a bounded character buffer without printf, for the
 * few lines printed once per request (the access log, /health), where
 * vsnprintf's parsing was a measurable share of the service's own cost.
 *
 * The caller owns the buffer; a text never writes past its capacity: what
 * does not fit is dropped and text_overflowed() tells. One thread at a
 * time.
 */
#ifndef CONLAB_TEXT_H
#define CONLAB_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct text {
    char *buf;
    size_t cap; /* bytes of buf, the terminating NUL included */
    size_t len;
    bool overflow;
};

/* Starts an empty text in buf (cap >= 1 bytes). */
void text_init(struct text *t, char *buf, size_t cap);

void text_str(struct text *t, const char *s);
void text_char(struct text *t, char c);

/* Appends v in decimal. */
void text_u64(struct text *t, uint64_t v);

/* Appends v / 1000 with three decimals ("12.045"). */
void text_milli(struct text *t, uint64_t v);

/* True when something did not fit. */
bool text_overflowed(const struct text *t);

#endif
