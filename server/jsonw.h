/*
 * jsonw: writes JSON text straight into a growable buffer, for answers
 * built from compact records (a run's timeline of up to 10,000 tasks)
 * where a jansson tree would cost about 2.5 KB per task.
 *
 * Commas and nesting are tracked here, so callers only say what comes
 * next. The buffer grows up to a cap fixed at init; past it (or without
 * memory) the writer fails once and ignores everything after:
 * jsonw_failed() tells. One thread at a time; the caller owns the struct,
 * the writer owns the buffer until jsonw_take().
 */
#ifndef CONLAB_JSONW_H
#define CONLAB_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSONW_DEPTH_MAX 16

struct jsonw {
    char *buf;
    size_t len, cap, max;
    bool failed;
    int depth;
    bool first[JSONW_DEPTH_MAX]; /* nothing written yet at this depth */
    char close[JSONW_DEPTH_MAX]; /* '}' or ']' for each open level */
    bool after_key;
};

/* An empty writer that will hold at most max bytes. */
void jsonw_init(struct jsonw *w, size_t max);

/* Frees the buffer (not taken); the writer is empty again. */
void jsonw_cleanup(struct jsonw *w);

void jsonw_object(struct jsonw *w); /* { */
void jsonw_array(struct jsonw *w);  /* [ */
void jsonw_end(struct jsonw *w);    /* } or ], whichever is open */

/* An object key; the next value is its value. */
void jsonw_key(struct jsonw *w, const char *key);

void jsonw_int(struct jsonw *w, int64_t v);
void jsonw_uint(struct jsonw *w, uint64_t v);
/* A number with up to three decimals ("12.045"); NaN and inf as 0. */
void jsonw_ms(struct jsonw *w, double v);
/* A number printed with %.6g (ratios such as speedups). */
void jsonw_real(struct jsonw *w, double v);
void jsonw_bool(struct jsonw *w, bool v);
void jsonw_null(struct jsonw *w);
/* A string, escaped; s must be valid UTF-8 (else it fails the writer). */
void jsonw_str(struct jsonw *w, const char *s);
/* JSON text written by another writer, as one value. */
void jsonw_raw(struct jsonw *w, const char *json, size_t len);

/* True when something did not fit or was not valid. */
bool jsonw_failed(const struct jsonw *w);

/*
 * Takes the text (NUL-terminated, *len_out bytes): the caller frees it.
 * NULL when the writer failed (then it is cleaned up all the same).
 */
char *jsonw_take(struct jsonw *w, size_t *len_out);

#endif
