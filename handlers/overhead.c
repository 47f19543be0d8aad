/*
 * overhead (handlers): GET /run/overhead?units=N&mode=threads|processes|
 * spawn|async.
 *
 * A measurement endpoint, not a demo: its units do no work the engine
 * could run in every mode (a registry demo is n tasks of one piece of
 * work on a back end); here each mode has its own way to start a unit
 * and its own measure of memory, and the answer is a distribution, not a
 * timeline. It is bounded like a demo all the same: units capped per
 * mode, admission by cost (tasks, queue slots, bytes) before anything is
 * allocated, a deadline (OVERHEAD_DEADLINE_MS), at most
 * OVERHEAD_LIVE_MAX measurements at once (else 503), and a client that
 * leaves cancels it (its units are released and reaped at once).
 *
 * Life of a request: parse, admit, overhead_new(), suspend and watch,
 * overhead_run(); the measurement's thread calls on_done(), which only
 * wakes the request; the answer is built on a request thread (on_wake),
 * where the measurement is freed and the claim released.
 */
#include "overhead.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../server/budget.h"
#include "../server/clock.h"
#include "../server/config.h"
#include "../server/http.h"
#include "../server/params.h"
#include "handlers.h"
#include "run.h"

#define ANSWER_BYTES_PER_UNIT  80
#define OVERHEAD_UNITS_DEFAULT 8

struct ovh_req {
    struct app *app;
    struct request *req;
    struct overhead *o;
    struct budget_claim claim;
    int status;
};

static _Atomic uint64_t measurements[OVERHEAD_MODES][2];

static void on_done(struct overhead *o, int status, void *arg);
static enum handler_result on_wake(struct request *req, struct response *resp,
                                   void *arg);
static void on_gone(void *arg);
static void ovh_req_free(struct ovh_req *r);
static uint64_t client_key(const struct budget_client *c);

size_t overhead_default_units(enum overhead_mode mode, const struct app *app)
{
    (void)mode;
    (void)app;
    return OVERHEAD_UNITS_DEFAULT;
}

void overhead_spec_init(struct overhead_spec *spec, const struct app *app,
                        enum overhead_mode mode, size_t units, uint64_t client)
{
    memset(spec, 0, sizeof(*spec));
    spec->mode = mode;
    spec->units = units;
    spec->pool = app->pool;
    spec->workers = app->cfg->workers;
    spec->loop = app->loop;
    spec->exe = "/proc/self/exe"; /* what the pool starts, too */
    spec->client = client;
}

void overhead_write_figures(struct jsonw *w, const struct overhead_figures *f)
{
    jsonw_key(w, "startup_us");
    jsonw_object(w);
    jsonw_key(w, "min");
    jsonw_ms(w, f->start_us_min);
    jsonw_key(w, "median");
    jsonw_ms(w, f->start_us_median);
    jsonw_key(w, "p99");
    jsonw_ms(w, f->start_us_p99);
    jsonw_key(w, "method");
    jsonw_str(w, f->start_method);
    jsonw_end(w);
    jsonw_key(w, "memory_bytes");
    jsonw_object(w);
    jsonw_key(w, "min");
    jsonw_uint(w, (uint64_t)f->bytes_min);
    jsonw_key(w, "median");
    jsonw_uint(w, (uint64_t)f->bytes_median);
    jsonw_key(w, "rss_median");
    jsonw_uint(w, (uint64_t)f->rss_median);
    if (f->rss_delta_per_unit > 0) {
        jsonw_key(w, "process_rss_growth_per_unit");
        jsonw_uint(w, (uint64_t)f->rss_delta_per_unit);
    }
    jsonw_key(w, "method");
    jsonw_str(w, f->memory_method);
    jsonw_end(w);
}

void overhead_count(enum overhead_mode mode, int status)
{
    atomic_fetch_add_explicit(&measurements[mode][status != 0], 1,
                              memory_order_relaxed);
}

void overhead_write_metrics(FILE *out)
{
    static const char *const outcomes[2] = {"ok", "error"};
    fputs("# HELP conlab_overhead_measurements_total /run/overhead "
          "measurements ended (alone or in /run/table), by mode and "
          "outcome.\n"
          "# TYPE conlab_overhead_measurements_total counter\n",
          out);
    for (int m = 0; m < OVERHEAD_MODES; m++) {
        for (int k = 0; k < 2; k++)
            fprintf(out,
                    "conlab_overhead_measurements_total{mode=\"%s\","
                    "outcome=\"%s\"} %llu\n",
                    overhead_mode_names[m], outcomes[k],
                    (unsigned long long)atomic_load_explicit(
                        &measurements[m][k], memory_order_relaxed));
    }
}

enum handler_result overhead_handle(struct request *req, struct response *resp,
                                    void *ctx)
{
    struct app *app = ctx;
    struct params p;
    int mode;
    int64_t units;

    if (params_parse(&p, req->query) < 0 ||
        params_enum(&p, "mode", overhead_mode_names, OVERHEAD_MODES,
                    OVERHEAD_THREADS, &mode) < 0 ||
        params_int(&p, "units", 1,
                   (int64_t)overhead_units_max(mode, app->cfg->workers),
                   (int64_t)overhead_default_units(mode, app), &units) < 0 ||
        params_finish(&p) < 0)
        return handlers_reject_params(&p, resp);
    params_cleanup(&p);

    struct ovh_req *r = calloc(1, sizeof(*r));
    if (!r) {
        response_error(resp, 500, "out of memory");
        return HANDLER_DONE;
    }
    r->app = app;
    r->req = req;

    struct budget_client client = {{0}};
    if (req->client)
        budget_client_from_sockaddr(req->client, &client);
    struct budget_cost cost = {{0}};
    cost.amount[BUDGET_TASKS] = (uint64_t)units;
    if (mode == OVERHEAD_PROCESSES)
        cost.amount[BUDGET_QUEUE] = (uint64_t)app->cfg->workers;
    cost.amount[BUDGET_BYTES] = overhead_cost_bytes(mode, (size_t)units) +
                                (uint64_t)units * ANSWER_BYTES_PER_UNIT +
                                sizeof(*r);
    enum budget_kind which = BUDGET_TASKS;
    int rc = budget_acquire(app->budget, &client, &cost, &r->claim, &which);
    if (rc < 0) {
        if (rc == -E2BIG)
            response_error(resp, 400,
                           "this measurement needs %llu of the %s budget, "
                           "more than one client may hold: lower units",
                           (unsigned long long)cost.amount[which],
                           budget_names[which]);
        else
            response_error(resp, 503, "the %s budget is busy: retry shortly",
                           budget_names[which]);
        free(r);
        return HANDLER_DONE;
    }

    struct overhead_spec spec;
    overhead_spec_init(&spec, app, mode, (size_t)units, client_key(&client));
    spec.done = on_done;
    spec.done_arg = r;
    r->o = overhead_new(&spec);
    if (!r->o) {
        ovh_req_free(r);
        response_error(resp, 500, "out of memory");
        return HANDLER_DONE;
    }
    http_suspend(req);
    http_watch(req, on_gone, r);
    rc = overhead_run(r->o);
    if (rc < 0) {
        /* Answered on a request thread like the rest. */
        r->status = rc;
        http_wake(req, on_wake, r);
    }
    return HANDLER_ASYNC;
}

/* The measurement's thread. */
static void on_done(struct overhead *o, int status, void *arg)
{
    struct ovh_req *r = arg;
    (void)o;
    r->status = status;
    http_wake(r->req, on_wake, r);
}

/* Main thread (http_sweep): the client left mid-measurement. */
static void on_gone(void *arg)
{
    struct ovh_req *r = arg;
    overhead_cancel(r->o, -ECANCELED);
}

static void ovh_req_free(struct ovh_req *r)
{
    overhead_free(r->o);
    budget_release(&r->claim);
    free(r);
}

/* A request thread: the measurement reported (or never started). */
static enum handler_result on_wake(struct request *req, struct response *resp,
                                   void *arg)
{
    struct ovh_req *r = arg;
    struct overhead *o = r->o;
    enum overhead_mode mode = overhead_mode_of(o);
    overhead_count(mode, r->status);
    if (http_closing(req)) {
        ovh_req_free(r);
        return HANDLER_DONE;
    }
    if (r->status != 0) {
        int status = r->status == -EAGAIN      ? 503
                     : r->status == -ESHUTDOWN ? 503
                     : r->status == -ECANCELED ? 499
                     : r->status == -ETIMEDOUT ? 504
                                               : 500;
        if (r->status == -EAGAIN && overhead_error(o)[0] == '\0')
            response_error(resp, status,
                           "%d overhead measurements are running (at most "
                           "%d at once): retry shortly",
                           OVERHEAD_LIVE_MAX, OVERHEAD_LIVE_MAX);
        else
            response_error(resp, status, "overhead (%s): %s",
                           overhead_mode_names[mode],
                           overhead_error(o)[0] ? overhead_error(o)
                                                : strerror(-r->status));
        ovh_req_free(r);
        return HANDLER_DONE;
    }

    struct overhead_figures f;
    overhead_figures(o, &f);
    const struct overhead_unit *u = overhead_units(o);
    size_t n = overhead_n_units(o);
    struct jsonw w;
    jsonw_init(&w, RUN_BODY_MAX);
    jsonw_object(&w);
    jsonw_key(&w, "mode");
    jsonw_str(&w, overhead_mode_names[mode]);
    jsonw_key(&w, "params");
    jsonw_object(&w);
    jsonw_key(&w, "mode");
    jsonw_str(&w, overhead_mode_names[mode]);
    jsonw_key(&w, "units");
    jsonw_uint(&w, n);
    jsonw_end(&w);
    jsonw_key(&w, "units");
    jsonw_uint(&w, n);
    jsonw_key(&w, "cores");
    jsonw_int(&w, r->app->cores);
    jsonw_key(&w, "wall_ms");
    jsonw_ms(&w, overhead_wall_ms(o));
    overhead_write_figures(&w, &f);
    jsonw_key(&w, "entries");
    jsonw_array(&w);
    for (size_t i = 0; i < n && !jsonw_failed(&w); i++) {
        jsonw_object(&w);
        jsonw_key(&w, "id");
        jsonw_int(&w, u[i].id);
        jsonw_key(&w, "startup_us");
        jsonw_ms(&w, (double)u[i].start_ns / 1000.0);
        jsonw_key(&w, "bytes");
        jsonw_uint(&w, u[i].bytes);
        jsonw_end(&w);
    }
    jsonw_end(&w);
    jsonw_end(&w);
    size_t len;
    char *body = jsonw_take(&w, &len);
    ovh_req_free(r);
    if (!body) {
        response_error(resp, 500, "overhead: the answer could not be built");
        return HANDLER_DONE;
    }
    response_body(resp, 200, CONTENT_TYPE_JSON, body, len);
    response_header(resp, "Cache-Control", "no-store");
    return HANDLER_DONE;
}

/* FNV-1a of the address: the pool's fair-share key (as run.c's). */
static uint64_t client_key(const struct budget_client *c)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < sizeof(c->addr); i++) {
        h ^= c->addr[i];
        h *= 1099511628211ull;
    }
    return h ? h : 1;
}
