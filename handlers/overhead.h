/*
 * overhead (handlers): GET /run/overhead, the start-up latency and the
 * memory of a unit of concurrency, measured (server/overhead.h), and
 * the pieces /run/table shares with it.
 */
#ifndef CONLAB_HANDLERS_OVERHEAD_H
#define CONLAB_HANDLERS_OVERHEAD_H

#include <stdio.h>

#include "../server/app.h"
#include "../server/jsonw.h"
#include "../server/overhead.h"
#include "../server/request.h"

/* The handler of GET /run/overhead (ctx: the app). */
enum handler_result overhead_handle(struct request *req, struct response *resp,
                                    void *ctx);

/* The units a mode measures when the query does not say. */
size_t overhead_default_units(enum overhead_mode mode, const struct app *app);

/* The spec of a measurement on this service's pool, loop and binary. */
void overhead_spec_init(struct overhead_spec *spec, const struct app *app,
                        enum overhead_mode mode, size_t units, uint64_t client);

/*
 * Writes "startup_us" and "memory_bytes" (min/median/p99 and min/median,
 * each with its method) into the open object w.
 */
void overhead_write_figures(struct jsonw *w, const struct overhead_figures *f);

/* Counts a measurement's end (for the metrics). Any thread. */
void overhead_count(enum overhead_mode mode, int status);

/* Writes conlab_overhead_measurements_total{mode,outcome}. */
void overhead_write_metrics(FILE *out);

#endif
