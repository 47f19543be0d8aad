/*
 * metrics: GET /metrics, the Prometheus text exposition of the service:
 * HTTP requests and their durations (server/metrics.h), demo runs, the
 * process pool, the demo threads, the event loop and fetches. Counters end
 * in _total, times are in seconds; gauges are read when scraped.
 *
 * Written with stdio into a memory stream: a scrape is not the hot path.
 */
#include <stdio.h>
#include <stdlib.h>

#include "../server/clock.h"
#include "../server/http.h"
#include "../server/budget.h"
#include "../server/loop.h"
#include "../server/metrics.h"
#include "../server/pool.h"
#include "../server/tpool.h"
#include "fetch.h"
#include "handlers.h"
#include "overhead.h"
#include "live.h"
#include "run.h"

#define CONTENT_TYPE_PROMETHEUS "text/plain; version=0.0.4; charset=utf-8"

static void metric(FILE *out, const char *name, const char *type,
                   const char *help, double value)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name,
            type, name, value);
}

static void family(FILE *out, const char *name, const char *type,
                   const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void write_pools(FILE *out, const struct app *app)
{
    struct pool_stats ps;
    pool_stats(app->pool, &ps);
    metric(out, "conlab_pool_workers", "gauge", "Worker processes configured.",
           ps.configured);
    metric(out, "conlab_pool_workers_alive", "gauge",
           "Worker processes started and ready.", ps.alive);
    metric(out, "conlab_pool_workers_busy", "gauge",
           "Worker processes running a job.", ps.busy);
    metric(out, "conlab_pool_queue_depth", "gauge",
           "Jobs waiting for a worker process.", ps.queued);
    family(out, "conlab_pool_jobs_total", "counter",
           "Process pool jobs, by outcome (rejected: the queue was full or "
           "too small).");
    const struct {
        const char *name;
        uint64_t n;
    } jobs[] = {{"ok", ps.jobs.ok},
                {"failed", ps.jobs.failed},
                {"timeout", ps.jobs.timeout},
                {"cancelled", ps.jobs.cancelled},
                {"rejected", ps.jobs.rejected}};
    for (size_t i = 0; i < sizeof(jobs) / sizeof(jobs[0]); i++)
        fprintf(out, "conlab_pool_jobs_total{outcome=\"%s\"} %llu\n",
                jobs[i].name, (unsigned long long)jobs[i].n);
    family(out, "conlab_pool_worker_restarts_total", "counter",
           "Worker processes replaced, by reason.");
    fprintf(out,
            "conlab_pool_worker_restarts_total{reason=\"crash\"} %llu\n"
            "conlab_pool_worker_restarts_total{reason=\"timeout\"} %llu\n"
            "conlab_pool_worker_restarts_total{reason=\"recycle\"} %llu\n",
            (unsigned long long)ps.restarts.crash,
            (unsigned long long)ps.restarts.timeout,
            (unsigned long long)ps.restarts.recycle);

    struct tpool_stats ts;
    tpool_stats(app->tpool, &ts);
    metric(out, "conlab_threads", "gauge", "Demo threads configured.",
           ts.configured);
    metric(out, "conlab_threads_busy", "gauge", "Demo threads running a task.",
           ts.busy);
    metric(out, "conlab_threads_queue_depth", "gauge",
           "Tasks waiting for a demo thread.", ts.queued);
    metric(out, "conlab_threads_tasks_total", "counter",
           "Demo thread tasks finished.", (double)ts.completed);

    struct loop_stats ls;
    loop_stats(app->loop, &ls);
    metric(out, "conlab_loop_timers", "gauge",
           "Timers in flight on the event loop.", (double)ls.timers);
    metric(out, "conlab_loop_transfers", "gauge",
           "Outbound transfers in flight on the event loop.",
           (double)ls.transfers);
    metric(out, "conlab_loop_timers_fired_total", "counter",
           "Event loop timers fired.", (double)ls.timers_fired);
    metric(out, "conlab_loop_transfers_total", "counter",
           "Event loop transfers finished.", (double)ls.transfers_done);
}

enum handler_result metrics_handle(struct request *req, struct response *resp,
                                   void *ctx)
{
    const struct app *app = ctx;

    if (handlers_refuse_query(req, resp))
        return HANDLER_DONE;

    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out) {
        response_error(resp, 500, "out of memory");
        return HANDLER_DONE;
    }
    family(out, "conlab_build_info", "gauge",
           "The running version (always 1).");
    fprintf(out, "conlab_build_info{version=\"%s\"} 1\n", CONLAB_VERSION);
    metric(out, "conlab_uptime_seconds", "gauge",
           "Seconds since the service started.",
           (double)(clock_now_ns() - app->started_ns) / 1e9);
    metric(out, "conlab_cores", "gauge", "Online CPUs.", app->cores);

    struct http_stats hs = {0};
    http_stats(app->http, &hs);
    metric(out, "conlab_http_connections", "gauge", "Open client connections.",
           hs.connections);
    metric(out, "conlab_http_requests_in_flight", "gauge",
           "Requests received and not yet completed (this one included).",
           (double)hs.in_flight);
    metrics_write_http(out, app->router);
    run_write_metrics(out);
    overhead_write_metrics(out);
    live_write_metrics(out);
    write_pools(out, app);
    fetch_write_metrics(out);
    budget_write_metrics(app->budget, out);

    if (fclose(out) != 0 || !text) {
        free(text);
        response_error(resp, 500, "out of memory");
        return HANDLER_DONE;
    }
    response_body(resp, 200, CONTENT_TYPE_PROMETHEUS, text, len);
    response_header(resp, "Cache-Control", "no-store");
    return HANDLER_DONE;
}
