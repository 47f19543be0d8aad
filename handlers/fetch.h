/*
 * fetch: the result collector of /run/fetch, exported so that unit tests
 * check exactly what the handler reports for each kind of outcome. Pure
 * functions on caller-owned values; any thread.
 */
#ifndef CONLAB_FETCH_H
#define CONLAB_FETCH_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define FETCH_ERROR_MAX 160

/* What one URL gave. bytes and too_big are counted as the body arrives. */
struct fetch_outcome {
    uint64_t bytes;
    bool too_big;
    long status; /* HTTP status of the last response, 0 if none */
    double ms;   /* total time of the transfer */
    bool has_error;
    char error[FETCH_ERROR_MAX];
};

/*
 * Completes o after its transfer ended with rc: status and total_us as
 * libcurl reports them, errbuf its CURLOPT_ERRORBUFFER (may be "").
 * A body over max_bytes is reported as such; any other failure with
 * libcurl's own words.
 */
void fetch_outcome_finish(struct fetch_outcome *o, CURLcode rc, long status,
                          curl_off_t total_us, const char *errbuf,
                          uint64_t max_bytes);

/* What a finished outcome was, as /metrics counts fetches. */
enum fetch_kind {
    FETCH_OK,         /* a 2xx or 3xx status */
    FETCH_HTTP_ERROR, /* any other status */
    FETCH_TOO_LARGE,  /* the body passed --fetch-max-bytes */
    FETCH_ERROR,      /* no response: refused, timed out, ... */
    FETCH_KINDS
};

enum fetch_kind fetch_outcome_kind(const struct fetch_outcome *o);

/* Writes conlab_fetches_total{outcome} (every fetch since start). */
void fetch_write_metrics(FILE *out);

/*
 * Counts the outcomes that succeeded (no error and a 2xx or 3xx status)
 * into *ok and every body byte into *bytes.
 */
void fetch_outcome_tally(const struct fetch_outcome *const outcomes[], size_t n,
                         uint64_t *ok, uint64_t *bytes);

#endif
