/*
 * run: see run.h.
 *
 * The life of one request: run_handle() parses and admits, run_launch()
 * prepares the demo's state, makes the engine run, suspends and watches
 * the request, and starts the run. on_done() (any thread) wakes the
 * request; on_wake() (a request thread) hands the outcome to the `then`
 * function, which builds the answer (or, for compare, launches the next
 * mode and suspends again). on_gone() (main thread, from http_sweep())
 * cancels the run when the client leaves.
 */
#include "run.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../server/clock.h"
#include "../server/gil.h"
#include "../server/http.h"
#include "../server/jsonr.h"
#include "../server/log.h"
#include "../server/params.h"
#include "handlers.h"
#include "live.h"

#define CHARGE_HEADER "X-Conlab-Charge"

struct run_req {
    struct app *app;
    struct request *req;
    const struct demo *d;
    struct budget_claim claim;
    struct budget_client client;
    char token[BUDGET_TOKEN_LEN + 1]; /* "" when none was issued */
    struct demo_args args;
    unsigned cores; /* the parameter: 1 .. app->cpus */
    enum engine_mode mode;
    void *state;
    struct engine_run *run;
    uint64_t origin_ns;
    run_then_fn *then;
    int status;
    void *extra;
    void (*free_extra)(void *);
    size_t max_tasks;  /* 0: every task */
    struct live *live; /* a streamed answer (live.h), or NULL */
    bool text;         /* answer in the text form, not streamed */
};

/* Runs ended, by demo, mode and outcome (0 ok, 1 error). */
static _Atomic uint64_t runs_total[DEMOS_MAX][ENGINE_MODES][2];

static void on_done(struct engine_run *run, int status, void *arg);
static enum handler_result on_wake(struct request *req, struct response *resp,
                                   void *arg);
static void on_gone(void *arg);
static enum handler_result answer_run(struct run_req *rr, int status,
                                      struct response *resp);
static enum handler_result launch_one(struct run_req *rr,
                                      struct response *resp);
static uint64_t client_key(const struct budget_client *c);

struct run_req *run_req_new(struct app *app, struct request *req,
                            const struct demo *d)
{
    struct run_req *rr = calloc(1, sizeof(*rr));
    if (!rr)
        return NULL;
    rr->app = app;
    rr->req = req;
    rr->d = d;
    rr->cores = (unsigned)app->cpus;
    /* Work this service does for itself is charged to whoever asked. */
    const char *token = request_header(req, CHARGE_HEADER);
    if (!(token && budget_token_client(app->budget, token, &rr->client)) &&
        !(req->client &&
          budget_client_from_sockaddr(req->client, &rr->client) == 0))
        memset(&rr->client, 0, sizeof(rr->client));
    return rr;
}

void run_req_free(struct run_req *rr)
{
    if (!rr)
        return;
    run_finish(rr);
    if (rr->token[0])
        budget_token_revoke(rr->app->budget, rr->token);
    budget_release(&rr->claim);
    demo_args_cleanup(&rr->args);
    if (rr->free_extra)
        rr->free_extra(rr->extra);
    free(rr);
}

int run_parse_cores(struct run_req *rr, struct params *p, struct jsonr_doc *doc)
{
    int64_t cpus = rr->app->cpus > 0 ? rr->app->cpus : 1;
    int64_t v = cpus;
    int rc = doc ? handlers_json_int(doc, p, "cores", 1, cpus, cpus, &v)
                 : params_int(p, "cores", 1, cpus, cpus, &v);
    rr->cores = (unsigned)v;
    return rc;
}

unsigned run_req_cores(const struct run_req *rr)
{
    return rr->cores;
}

struct demo_args *run_req_args(struct run_req *rr)
{
    return &rr->args;
}

struct engine_run *run_req_run(struct run_req *rr)
{
    return rr->run;
}

void *run_req_extra(struct run_req *rr)
{
    return rr->extra;
}

void run_req_set_extra(struct run_req *rr, void *extra,
                       void (*free_extra)(void *))
{
    rr->extra = extra;
    rr->free_extra = free_extra;
}

void run_req_set_max_tasks(struct run_req *rr, size_t n)
{
    rr->max_tasks = n;
}

struct request *run_req_request(struct run_req *rr)
{
    return rr->req;
}

struct app *run_req_app(struct run_req *rr)
{
    return rr->app;
}

const struct demo *run_req_demo(const struct run_req *rr)
{
    return rr->d;
}

enum engine_mode run_req_mode(const struct run_req *rr)
{
    return rr->mode;
}

uint64_t run_req_origin_ns(const struct run_req *rr)
{
    return rr->origin_ns;
}

void *run_req_state(const struct run_req *rr)
{
    return rr->state;
}

void run_req_set_live(struct run_req *rr, struct live *live)
{
    rr->live = live;
}

void run_req_set_text(struct run_req *rr, bool text)
{
    rr->text = text;
}

void run_cost(const struct demo *d, const struct demo_args *a,
              enum engine_mode mode, const struct app *app,
              struct budget_cost *out)
{
    size_t n = d->n_tasks(a);
    size_t lanes = engine_lanes(app->engine, mode, n);
    memset(out, 0, sizeof(*out));
    out->amount[BUDGET_TASKS] = n;
    if (mode == ENGINE_SPAWN)
        out->amount[BUDGET_SPAWNS] = lanes < n ? lanes : n;
    else if (mode != ENGINE_ASYNC)
        out->amount[BUDGET_QUEUE] = lanes < n ? lanes : n;
    uint64_t per_task =
        sizeof(struct engine_task) + d->bytes_per_task + RUN_BYTES_ANSWER;
    out->amount[BUDGET_BYTES] = n * per_task + sizeof(struct run_req) + 4096;
    if (mode == ENGINE_GIL) {
        /* Slices, in memory and as text: one lock holder at a time, so a
         * slice a switch interval over the run's deadline, plus two per
         * task (its start, and after each wait), at most. */
        uint64_t slices = 2 * n + (uint64_t)app->cfg->job_timeout_ms *
                                      1000000u / GIL_SWITCH_INTERVAL_NS;
        out->amount[BUDGET_BYTES] += slices * RUN_BYTES_SLICE;
    }
    if (d->cost)
        d->cost(a, mode, n, app, out);
}

int run_admit(struct run_req *rr, const struct budget_cost *cost,
              struct response *resp)
{
    enum budget_kind which = BUDGET_TASKS;
    int rc =
        budget_acquire(rr->app->budget, &rr->client, cost, &rr->claim, &which);
    if (rc == 0)
        return 0;
    struct budget_usage u;
    budget_stats(rr->app->budget, &u);
    const char *name = budget_names[which];
    unsigned long long need = (unsigned long long)cost->amount[which];
    if (rc == -E2BIG) {
        response_error(resp, 400,
                       "this run needs %llu of the %s budget, more than one "
                       "client may hold (%llu of %llu; --budget-%s, "
                       "--client-share): lower %s",
                       need, name, (unsigned long long)u.client_limit[which],
                       (unsigned long long)u.limit[which], name,
                       rr->d ? rr->d->shrink : "the parameters");
    } else {
        response_error(resp, 503,
                       "the %s budget is busy (%llu of %llu in use, this "
                       "run needs %llu; one client may hold %llu): retry "
                       "shortly",
                       name, (unsigned long long)u.used[which],
                       (unsigned long long)u.limit[which], need,
                       (unsigned long long)u.client_limit[which]);
    }
    return rc;
}

enum handler_result run_handle(struct request *req, struct response *resp,
                               void *ctx)
{
    const struct run_route *route = ctx;
    const struct demo *d = route->demo;
    struct app *app = route->app;
    const char *names[ENGINE_MODES];
    int def = 0, choice;
    struct params p;

    for (size_t i = 0; i < d->n_modes; i++) {
        names[i] = engine_mode_names[d->modes[i]];
        if (d->modes[i] == d->default_mode)
            def = (int)i;
    }
    struct jsonr_doc doc;
    struct live_opts live;
    if (req->method == HTTP_POST) {
        if (handlers_body_doc(req, &doc, &p, resp) < 0) {
            params_cleanup(&p);
            return HANDLER_DONE;
        }
        if (handlers_json_enum(&doc, &p, "mode", names, d->n_modes, def,
                               &choice) < 0 ||
            live_parse(req, &p, &doc, &live) < 0)
            return handlers_reject_params(&p, resp);
    } else if (params_parse(&p, req->query) < 0 ||
               params_enum(&p, "mode", names, d->n_modes, def, &choice) < 0 ||
               live_parse(req, &p, NULL, &live) < 0) {
        return handlers_reject_params(&p, resp);
    }

    struct run_req *rr = run_req_new(app, req, d);
    if (!rr) {
        params_cleanup(&p);
        response_error(resp, 500, "out of memory");
        return HANDLER_DONE;
    }
    if (run_parse_cores(rr, &p, req->method == HTTP_POST ? &doc : NULL) < 0) {
        run_req_free(rr);
        return handlers_reject_params(&p, resp);
    }
    enum engine_mode mode = d->modes[choice];
    int parsed = req->method == HTTP_POST
                     ? run_parse_json(rr, &doc, &p, (int)mode, resp)
                     : run_parse(rr, &p, (int)mode, resp);
    if (parsed < 0) {
        run_req_free(rr);
        return HANDLER_DONE;
    }

    struct budget_cost cost;
    run_cost(d, &rr->args, mode, app, &cost);
    if (live.form != LIVE_OFF)
        cost.amount[BUDGET_BYTES] += live_bytes(d->n_tasks(&rr->args));
    if (run_admit(rr, &cost, resp) < 0) {
        run_req_free(rr);
        return HANDLER_DONE;
    }
    if (live.form != LIVE_OFF && live.streamed) {
        rr->mode = mode;
        return live_start(rr, &live, &mode, 1, launch_one, resp);
    }
    rr->text = live.form == LIVE_TEXT;
    enum handler_result r =
        run_launch(rr, mode, req->accepted_ns, answer_run, resp);
    if (r == HANDLER_DONE)
        run_req_free(rr);
    return r;
}

/* A streamed single run's launch (live_start_fn): rr->mode, timed from
 * the request's arrival. */
static enum handler_result launch_one(struct run_req *rr, struct response *resp)
{
    return run_launch(rr, rr->mode, rr->req->accepted_ns, answer_run, resp);
}

int run_parse(struct run_req *rr, struct params *p, int mode,
              struct response *resp)
{
    char err[PARAMS_ERROR_MAX] = "";
    int rc = demo_parse(rr->d, p, mode, rr->app, &rr->args, err, sizeof(err));
    rr->args.cores = rr->cores;
    if (rc == -EINVAL) {
        handlers_reject_params(p, resp);
        return -EINVAL;
    }
    params_cleanup(p);
    if (rc != 0) {
        response_error(resp, rc, "%s", err);
        return -EINVAL;
    }
    return 0;
}

int run_parse_json(struct run_req *rr, struct jsonr_doc *doc, struct params *p,
                   int mode, struct response *resp)
{
    char err[PARAMS_ERROR_MAX] = "";
    int rc = demo_parse_json(rr->d, doc, p, mode, rr->app, &rr->args, err,
                             sizeof(err));
    rr->args.cores = rr->cores;
    /* What is kept is copied out: the body's bytes go before admission. */
    http_body_release(rr->req);
    if (rc == -EINVAL) {
        handlers_reject_params(p, resp);
        return -EINVAL;
    }
    params_cleanup(p);
    if (rc != 0) {
        response_error(resp, rc, "%s", err);
        return -EINVAL;
    }
    return 0;
}

enum handler_result run_launch(struct run_req *rr, enum engine_mode mode,
                               uint64_t origin_ns, run_then_fn *then,
                               struct response *resp)
{
    const struct demo *d = rr->d;
    struct demo_env env = {
        .app = rr->app, .client = &rr->client, .charge_token = rr->token};

    if (!rr->token[0] && d->cost) {
        /* A demo that may call this service charges its client. */
        struct budget_cost c = {{0}};
        d->cost(&rr->args, mode, 1, rr->app, &c);
        if (c.amount[BUDGET_TRANSFERS] &&
            budget_token_issue(rr->app->budget, &rr->client, rr->token) < 0)
            rr->token[0] = '\0';
    }
    rr->mode = mode;
    rr->origin_ns = origin_ns;
    rr->then = then;
    rr->state = d->prepare(&rr->args, mode, &env);
    size_t n = d->n_tasks(&rr->args);
    if (rr->max_tasks && rr->max_tasks < n)
        n = rr->max_tasks;
    struct engine_run_spec spec = {
        .mode = mode,
        .n_tasks = n,
        .work = d->work,
        .state = rr->state,
        .client = client_key(&rr->client),
        /* All of them: nothing to pin. */
        .cores = rr->cores < (unsigned)rr->app->cpus ? rr->cores : 0,
        .done = on_done,
        .done_arg = rr};
    if (rr->live) {
        /* Streamed: the records are read as they change (live.c). */
        spec.notify = live_notify;
        spec.notify_arg = rr->live;
    }
    if (rr->state)
        rr->run = engine_run_new(rr->app->engine, &spec);
    if (!rr->run) {
        run_finish(rr);
        response_error(resp, 500, "out of memory");
        return HANDLER_DONE;
    }
    if (rr->live) {
        /* Its answer is a stream already queued (or about to be), which
         * http_sweep() watches: no suspend of the request. */
        /* a run of fewer tasks is compare's untimed warm-up */
        live_run_launching(rr->live, rr->run, rr->max_tasks != 0);
    } else {
        http_suspend(rr->req);
        http_watch(rr->req, on_gone, rr);
    }
    engine_run_start(rr->run); /* may end (and wake) at once */
    return HANDLER_ASYNC;
}

void run_finish(struct run_req *rr)
{
    engine_run_free(rr->run);
    rr->run = NULL;
    if (rr->state)
        rr->d->free_state(rr->state);
    rr->state = NULL;
}

void run_req_use(struct run_req *rr, const struct demo *d)
{
    run_finish(rr);
    demo_args_cleanup(&rr->args);
    rr->d = d;
}

/* Any thread: the run's last task ended. */
static void on_done(struct engine_run *run, int status, void *arg)
{
    struct run_req *rr = arg;
    (void)run;
    rr->status = status;
    if (rr->live)
        live_run_done(rr->live, status); /* rr may be freed after it */
    else
        http_wake(rr->req, on_wake, rr);
}

/* Main thread (http_sweep), under the http module's lock. */
static void on_gone(void *arg)
{
    struct run_req *rr = arg;
    if (rr->run)
        engine_run_cancel(rr->run, -ECANCELED);
}

/* A request thread: the run is over. */
static enum handler_result on_wake(struct request *req, struct response *resp,
                                   void *arg)
{
    struct run_req *rr = arg;
    if (http_closing(req)) {
        run_count(rr);
        run_req_free(rr);
        return HANDLER_DONE;
    }
    enum handler_result r = run_continue(rr, resp);
    if (r == HANDLER_DONE && rr->text)
        live_text_answer(resp);
    if (r == HANDLER_DONE)
        run_req_free(rr);
    return r;
}

void run_count(struct run_req *rr)
{
    size_t d = demo_kind(rr->d) - 1;
    atomic_fetch_add_explicit(&runs_total[d][rr->mode][rr->status != 0], 1,
                              memory_order_relaxed);
}

enum handler_result run_continue(struct run_req *rr, struct response *resp)
{
    run_count(rr);
    return rr->then(rr, rr->status, resp);
}

/* The error answer of a failed run ("<demo>: <why>"). */
static void answer_error(struct run_req *rr, int status, struct response *resp)
{
    response_error(resp, engine_http_status(status), "%s: %s", rr->d->name,
                   engine_run_error(rr->run));
}

/* The `then` of a single run: its body, or its error. */
static enum handler_result answer_run(struct run_req *rr, int status,
                                      struct response *resp)
{
    if (status != 0) {
        answer_error(rr, status, resp);
        return HANDLER_DONE;
    }
    struct jsonw w;
    jsonw_init(&w, RUN_BODY_MAX);
    run_write_body(rr, &w);
    jsonw_end(&w);
    size_t len;
    char *body = jsonw_take(&w, &len);
    run_finish(rr); /* the records go before the answer is sent */
    if (!body) {
        response_error(resp, 500, "%s: the answer could not be built",
                       rr->d->name);
        return HANDLER_DONE;
    }
    response_body(resp, 200, CONTENT_TYPE_JSON, body, len);
    response_header(resp, "Cache-Control", "no-store");
    return HANDLER_DONE;
}

double run_wall_ms(const struct run_req *rr)
{
    return clock_offset_ms(rr->origin_ns, engine_run_ended_ns(rr->run));
}

void run_write_task_costs(struct jsonw *w, const struct engine_task *t,
                          uint64_t origin_ns)
{
    jsonw_key(w, "cpu_ms");
    jsonw_ms(w, (double)t->cpu_us / 1000.0);
    if (t->lane == ENGINE_LANE_SPAWN) {
        /* Start-up, from the request to spawn to the greeting: null
         * when the process never greeted. */
        jsonw_key(w, "spawn_ms");
        if (t->ready_us)
            jsonw_ms(w, (double)t->ready_us / 1000.0);
        else
            jsonw_null(w);
        jsonw_key(w, "ready_ms");
        if (t->ready_us)
            jsonw_ms(w, clock_offset_ms(origin_ns,
                                        t->start_ns +
                                            (uint64_t)t->ready_us * 1000u));
        else
            jsonw_null(w);
    }
}

void run_write_body(struct run_req *rr, struct jsonw *w)
{
    const struct engine_run *run = rr->run;
    const struct engine_task *t = engine_run_tasks(run);
    const struct engine_slices *sl = engine_run_slices(run);
    size_t n = engine_run_n_tasks(run);
    uint64_t o = rr->origin_ns;

    jsonw_object(w);
    jsonw_key(w, "demo");
    jsonw_str(w, rr->d->name);
    jsonw_key(w, "mode");
    jsonw_str(w, engine_mode_names[rr->mode]);
    jsonw_key(w, "params");
    demo_write_params(w, rr->d, &rr->args);
    jsonw_key(w, "cores");
    jsonw_uint(w, rr->cores);
    jsonw_key(w, "result");
    jsonw_object(w);
    rr->d->write_result(w, rr->state, run);
    jsonw_end(w);
    jsonw_key(w, "wall_ms");
    jsonw_ms(w, run_wall_ms(rr));
    jsonw_key(w, "tasks");
    jsonw_array(w);
    for (size_t i = 0; i < n && !jsonw_failed(w); i++) {
        jsonw_object(w);
        jsonw_key(w, "id");
        jsonw_uint(w, i);
        jsonw_key(w, "worker");
        jsonw_object(w);
        jsonw_key(w, "kind");
        jsonw_str(w, engine_lane_names[t[i].lane]);
        jsonw_key(w, "id");
        jsonw_int(w, t[i].worker);
        jsonw_end(w);
        jsonw_key(w, "start_ms");
        jsonw_ms(w, clock_offset_ms(o, t[i].start_ns));
        jsonw_key(w, "end_ms");
        jsonw_ms(w, clock_offset_ms(o, t[i].end_ns));
        run_write_task_costs(w, &t[i], o);
        if (sl && sl[i].n) {
            jsonw_key(w, "slices");
            jsonw_array(w);
            for (size_t s = 0; s < sl[i].n; s++) {
                jsonw_array(w);
                jsonw_ms(w, clock_offset_ms(o, sl[i].at[s][0]));
                jsonw_ms(w, clock_offset_ms(o, sl[i].at[s][1]));
                jsonw_end(w);
            }
            jsonw_end(w);
        }
        if (rr->d->write_task)
            rr->d->write_task(w, rr->state, i);
        jsonw_end(w);
    }
    jsonw_end(w);
}

void run_write_metrics(FILE *out)
{
    static const char *const outcomes[2] = {"ok", "error"};
    fputs("# HELP conlab_demo_runs_total Demo runs ended, by demo, mode and "
          "outcome.\n"
          "# TYPE conlab_demo_runs_total counter\n",
          out);
    for (size_t k = 0; k < demo_count; k++) {
        const struct demo *d = demo_registry[k];
        for (size_t m = 0; m < d->n_modes; m++) {
            for (size_t o = 0; o < 2; o++) {
                enum engine_mode mode = d->modes[m];
                fprintf(out,
                        "conlab_demo_runs_total{demo=\"%s\",mode=\"%s\","
                        "outcome=\"%s\"} %llu\n",
                        d->name, engine_mode_names[mode], outcomes[o],
                        (unsigned long long)atomic_load_explicit(
                            &runs_total[k][mode][o], memory_order_relaxed));
            }
        }
    }
}

/* FNV-1a of the address: the fair-share key the pools compare. */
static uint64_t client_key(const struct budget_client *c)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < sizeof(c->addr); i++) {
        h ^= c->addr[i];
        h *= 1099511628211ull;
    }
    return h ? h : 1;
}
