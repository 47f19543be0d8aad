/*
 * metrics: the per-request counters behind GET /metrics, cheap enough for
 * the hot path.
 *
 * Every request thread counts into its own shard (picked on its first
 * request) with relaxed atomic adds: no lock, and no cache line shared with
 * another request thread while there are no more threads than shards.
 * metrics_write_http() sums the shards when /metrics is scraped, so a
 * scrape may miss requests completing at that instant, never count one
 * twice. Process-wide state, like the log; any thread.
 */
#ifndef CONLAB_METRICS_H
#define CONLAB_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "request.h"

#define METRICS_SHARDS 16
#define METRICS_ROUTES 16 /* route ids 0..14, and "no route" */

struct router;

/*
 * Counts one completed request: route is router_dispatch()'s route id (-1
 * when none matched or the request was refused before routing), status the
 * HTTP status sent, ns the time from its request line to completion.
 */
void metrics_request(int route, enum http_method method, int status,
                     uint64_t ns);

/*
 * Writes conlab_http_requests_total{route,method,status} and the
 * conlab_http_request_duration_seconds{route} histogram in the Prometheus
 * text format, naming routes by their router paths.
 */
void metrics_write_http(FILE *out, const struct router *router);

#endif
