/*
 * table: GET /run/table, the tutorials' comparison table with every cell
 * measured here, in one call.
 *
 * The tutorials end with a table: threading for I/O-bound work,
 * multiprocessing for CPU-bound work, asyncio for many connections; GIL
 * affected or not; parallelism or not; overhead low, high (memory,
 * start-up), very low. Each row here is a few real runs: demo runs on the
 * engine (through run.h, the machinery /run/compare uses: one request
 * state, each run launched on it in turn, the request suspended between)
 * and overhead measurements (server/overhead.h). Each cell carries its
 * figure and unit, the request that reproduces it, the tutorials' claim,
 * the rule that decides whether the claim holds here, and the verdict.
 *
 * Steps are a fixed list (STEP_DEFS) sized to fit the 30 s budget on two
 * cores; before anything runs, each step is parsed and estimated, the
 * total is checked against the budget (a 400 if over, like compare) and
 * the largest step's cost admitted (one step holds it at a time). A step
 * whose demo or mode this build lacks (the work demo, mode=spawn) is not
 * run: its cells say "not available" and why, and light up by themselves
 * once the demo or mode is in the registry. Figures that need a task's
 * cpu_ms are read from the run's body, so they light up once runs report
 * it. A failed step marks its cells failed and the table goes on; a
 * client that leaves cancels the current step and nothing more starts.
 *
 * Threads: the handler and every step's end run on request threads; the
 * overhead measurement's end only wakes the request.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../server/clock.h"
#include "../server/config.h"
#include "../server/http.h"
#include "../server/params.h"
#include "handlers.h"
#include "overhead.h"
#include "run.h"

#define TABLE_BUDGET_MS 30000.0
#define SLEEP_QUERY     "tasks=4&ms=100"
#define PRIME_QUERY     "limit=2000000&tasks=2"
#define PRIME_WARM      "limit=500000&tasks=1"
#define WORK_QUERY      "tasks=4&ms=120&io_ratio=0.5"
#define WORK_CPU_QUERY  "tasks=2&ms=120&io_ratio=0"
#define OH_THREADS      64
#define OH_POOL         8
#define OH_SPAWN        8
#define OH_ASYNC        1000
#define NEAR_ONE        1.15 /* at most this: no speedup, no parallelism */
#define SCALE_SHARE     0.75 /* at least this share of the ideal speedup */
#define OVERHEAD_RATIO  10.0 /* "high" against "low": ten times at least */
#define TEXT_MAX        320

enum step_id {
    S_SLEEP_SEQ,
    S_SLEEP_THR,
    S_SLEEP_PROC,
    S_SLEEP_SPAWN,
    S_SLEEP_ASYNC,
    S_PRIME_WARM,
    S_PRIME_SEQ,
    S_PRIME_THR,
    S_PRIME_PROC,
    S_PRIME_SPAWN,
    S_PRIME_GIL,
    S_WORK_SEQ,
    S_WORK_GIL,
    S_WORK_PROC,
    S_WORK_SPAWN,
    S_WORK_ASYNC,
    S_WCPU_SEQ,
    S_WCPU_ASYNC,
    S_OH_THREADS,
    S_OH_POOL,
    S_OH_SPAWN,
    S_OH_ASYNC,
    STEPS
};

struct step_def {
    const char *demo; /* NULL: an overhead measurement */
    const char *mode; /* an engine mode's or an overhead mode's name */
    const char *query;
    size_t units; /* overhead */
};

static const struct step_def STEP_DEFS[STEPS] = {
    [S_SLEEP_SEQ] = {"sleep", "sequential", SLEEP_QUERY, 0},
    [S_SLEEP_THR] = {"sleep", "threads", SLEEP_QUERY, 0},
    [S_SLEEP_PROC] = {"sleep", "processes", SLEEP_QUERY, 0},
    [S_SLEEP_SPAWN] = {"sleep", "spawn", SLEEP_QUERY, 0},
    [S_SLEEP_ASYNC] = {"sleep", "async", SLEEP_QUERY, 0},
    /* The first CPU run of a request starts cold (caches, clock ramp):
     * a short one first, so that the reference is not the slow one. */
    [S_PRIME_WARM] = {"prime", "sequential", PRIME_WARM, 0},
    [S_PRIME_SEQ] = {"prime", "sequential", PRIME_QUERY, 0},
    [S_PRIME_THR] = {"prime", "threads", PRIME_QUERY, 0},
    [S_PRIME_PROC] = {"prime", "processes", PRIME_QUERY, 0},
    [S_PRIME_SPAWN] = {"prime", "spawn", PRIME_QUERY, 0},
    [S_PRIME_GIL] = {"prime", "gil", PRIME_QUERY, 0},
    [S_WORK_SEQ] = {"work", "sequential", WORK_QUERY, 0},
    [S_WORK_GIL] = {"work", "gil", WORK_QUERY, 0},
    [S_WORK_PROC] = {"work", "processes", WORK_QUERY, 0},
    [S_WORK_SPAWN] = {"work", "spawn", WORK_QUERY, 0},
    [S_WORK_ASYNC] = {"work", "async", WORK_QUERY, 0},
    [S_WCPU_SEQ] = {"work", "sequential", WORK_CPU_QUERY, 0},
    [S_WCPU_ASYNC] = {"work", "async", WORK_CPU_QUERY, 0},
    [S_OH_THREADS] = {NULL, "threads", NULL, OH_THREADS},
    [S_OH_POOL] = {NULL, "processes", NULL, OH_POOL},
    [S_OH_SPAWN] = {NULL, "spawn", NULL, OH_SPAWN},
    [S_OH_ASYNC] = {NULL, "async", NULL, OH_ASYNC},
};

struct step {
    bool available;
    char reason[TEXT_MAX]; /* why not available */
    const struct demo *d;
    int mode; /* enum engine_mode or enum overhead_mode */
    struct demo_args args;
    double estimate_ms;
    size_t n_tasks;
    bool ran;
    int status;
    char error[TEXT_MAX];
    double wall_ms;
    bool has_cpu; /* every task reported cpu_ms */
    double cpu_ms;
    struct overhead_figures fig;
};

struct table {
    struct app *app;
    struct step steps[STEPS];
    size_t next;
    double estimate_ms;
    struct overhead *o; /* the measurement in flight */
    int overhead_status;
};

enum column { C_THREADS, C_PROCESSES, C_SPAWN, C_ASYNC, COLUMNS };
static const char *const column_names[COLUMNS] = {"threads", "processes",
                                                  "spawn", "async"};

struct cell {
    bool available;
    char reason[TEXT_MAX];
    double figure;
    const char *unit;
    const char *measured; /* which mode the figure comes from */
    char request[TEXT_MAX];
    const char *claim;
    char rule[TEXT_MAX];
    int holds; /* 1, 0, or -1: the tutorials claim nothing here */
    char note[TEXT_MAX];
};

static void free_table(void *arg);
static enum handler_result next_step(struct run_req *rr, struct table *t,
                                     struct response *resp);
static enum handler_result on_run_done(struct run_req *rr, int status,
                                       struct response *resp);
static void on_overhead_done(struct overhead *o, int status, void *arg);
static void on_overhead_gone(void *arg);
static enum handler_result on_overhead_wake(struct request *req,
                                            struct response *resp, void *arg);
static void prepare_step(struct table *t, size_t i, struct budget_cost *cost);
static void answer(struct run_req *rr, struct table *t, struct response *resp);

enum handler_result table_handle(struct request *req, struct response *resp,
                                 void *ctx)
{
    struct app *app = ctx;
    if (handlers_refuse_query(req, resp))
        return HANDLER_DONE;
    struct run_req *rr = run_req_new(app, req, demo_find("sleep"));
    struct table *t = calloc(1, sizeof(*t));
    if (!rr || !t) {
        free(t);
        run_req_free(rr);
        response_error(resp, 500, "out of memory");
        return HANDLER_DONE;
    }
    t->app = app;
    run_req_set_extra(rr, t, free_table);

    struct budget_cost cost = {{0}};
    for (size_t i = 0; i < STEPS; i++)
        prepare_step(t, i, &cost);
    if (t->estimate_ms > TABLE_BUDGET_MS) {
        response_error(resp, 400,
                       "the table's runs take about %.0f ms here, one after "
                       "another; the budget is %.0f ms (fewer workers make "
                       "the pool's runs longer)",
                       t->estimate_ms, TABLE_BUDGET_MS);
        run_req_free(rr);
        return HANDLER_DONE;
    }
    if (run_admit(rr, &cost, resp) < 0) {
        run_req_free(rr);
        return HANDLER_DONE;
    }
    enum handler_result r = next_step(rr, t, resp);
    if (r == HANDLER_DONE)
        run_req_free(rr);
    return r;
}

static void free_table(void *arg)
{
    struct table *t = arg;
    for (size_t i = 0; i < STEPS; i++)
        demo_args_cleanup(&t->steps[i].args);
    overhead_free(t->o);
    free(t);
}

static int engine_mode_named(const char *name)
{
    for (int m = 0; m < ENGINE_MODES; m++) {
        if (strcmp(engine_mode_names[m], name) == 0)
            return m;
    }
    return -1;
}

/* Parses and estimates step i; adds its cost to the largest so far. */
static void prepare_step(struct table *t, size_t i, struct budget_cost *cost)
{
    const struct step_def *def = &STEP_DEFS[i];
    struct step *s = &t->steps[i];
    const struct app *app = t->app;
    struct budget_cost one = {{0}};

    /* The rules name the tasks even when the step cannot run. */
    const char *tasks = def->query ? strstr(def->query, "tasks=") : NULL;
    if (tasks)
        s->n_tasks = strtoul(tasks + 6, NULL, 10);
    if (!def->demo) {
        for (int m = 0; m < OVERHEAD_MODES; m++) {
            if (strcmp(overhead_mode_names[m], def->mode) == 0)
                s->mode = m;
        }
        size_t units = def->units;
        size_t max = overhead_units_max(s->mode, app->cfg->workers);
        if (units > max)
            units = max;
        size_t workers = (size_t)app->cfg->workers;
        switch (s->mode) {
        case OVERHEAD_THREADS:
            s->estimate_ms = 0.5 * (double)units;
            break;
        case OVERHEAD_PROCESSES:
            s->estimate_ms = (double)((units + workers - 1) / workers) *
                             (OVERHEAD_POOL_HOLD_MS + 5);
            one.amount[BUDGET_QUEUE] = workers;
            break;
        case OVERHEAD_SPAWN:
            s->estimate_ms = 20.0 * (double)units;
            break;
        default:
            s->estimate_ms = 0.01 * (double)units;
            break;
        }
        one.amount[BUDGET_TASKS] = units;
        one.amount[BUDGET_BYTES] = overhead_cost_bytes(s->mode, units);
        s->available = true;
        goto out_cost;
    }

    s->d = demo_find(def->demo);
    s->mode = engine_mode_named(def->mode);
    if (!s->d) {
        snprintf(s->reason, sizeof(s->reason),
                 "the %s demo is not in this build", def->demo);
        return;
    }
    if (s->mode < 0 || !demo_has_mode(s->d, s->mode)) {
        snprintf(s->reason, sizeof(s->reason),
                 "%s has no mode %s in this build", def->demo, def->mode);
        return;
    }
    struct params p;
    char err[PARAMS_ERROR_MAX] = "";
    params_parse(&p, def->query);
    int rc = demo_parse(s->d, &p, s->mode, app, &s->args, err, sizeof(err));
    if (rc != 0) {
        snprintf(s->reason, sizeof(s->reason), "/run/%s?%s is refused: %.200s",
                 def->demo, def->query, rc == -EINVAL ? params_error(&p) : err);
        params_cleanup(&p);
        demo_args_cleanup(&s->args);
        return;
    }
    params_cleanup(&p);
    s->estimate_ms = s->d->estimate_ms(&s->args, s->mode, app);
    s->n_tasks = s->d->n_tasks(&s->args);
    run_cost(s->d, &s->args, s->mode, app, &one);
    s->available = true;

out_cost:
    t->estimate_ms += s->estimate_ms;
    for (int k = 0; k < BUDGET_KINDS; k++) {
        if (one.amount[k] > cost->amount[k])
            cost->amount[k] = one.amount[k];
    }
}

/* Starts the next available step; answers when none is left. */
static enum handler_result next_step(struct run_req *rr, struct table *t,
                                     struct response *resp)
{
    struct request *req = run_req_request(rr);
    while (t->next < STEPS && !t->steps[t->next].available)
        t->next++;
    if (t->next == STEPS) {
        answer(rr, t, resp);
        return HANDLER_DONE;
    }
    struct step *s = &t->steps[t->next];
    if (!s->d) {
        struct overhead_spec spec;
        size_t units = STEP_DEFS[t->next].units;
        size_t max = overhead_units_max(s->mode, t->app->cfg->workers);
        overhead_spec_init(&spec, t->app, s->mode, units < max ? units : max,
                           0);
        spec.done = on_overhead_done;
        spec.done_arg = rr;
        t->o = overhead_new(&spec);
        if (!t->o) {
            response_error(resp, 500, "out of memory");
            return HANDLER_DONE;
        }
        http_suspend(req);
        http_watch(req, on_overhead_gone, t);
        int rc = overhead_run(t->o);
        if (rc < 0) {
            t->overhead_status = rc;
            http_wake(req, on_overhead_wake, rr);
        }
        return HANDLER_ASYNC;
    }
    run_req_use(rr, s->d);
    *run_req_args(rr) = s->args;
    memset(&s->args, 0, sizeof(s->args)); /* moved */
    return run_launch(rr, s->mode, clock_now_ns(), on_run_done, resp);
}

/* The stop of a step that ends the whole table: 499 or 503. */
static bool stops_table(int status, struct response *resp)
{
    if (status == -ECANCELED) {
        response_error(resp, 499, "the client went away");
        return true;
    }
    if (status == -ESHUTDOWN) {
        response_error(resp, 503, "the service is stopping");
        return true;
    }
    return false;
}

/* Sums the tasks' cpu_ms from the run's body, where runs report it. */
static void read_cpu(struct run_req *rr, struct step *s)
{
    struct jsonw w;
    jsonw_init(&w, RUN_BODY_MAX);
    run_write_body(rr, &w);
    jsonw_end(&w);
    size_t len;
    char *text = jsonw_take(&w, &len);
    json_t *body = text ? json_loadb(text, len, 0, NULL) : NULL;
    free(text);
    json_t *tasks = json_object_get(body, "tasks");
    size_t i;
    json_t *task;
    s->has_cpu = json_array_size(tasks) > 0;
    s->cpu_ms = 0;
    json_array_foreach(tasks, i, task)
    {
        json_t *cpu = json_object_get(task, "cpu_ms");
        if (!json_is_number(cpu)) {
            s->has_cpu = false;
            break;
        }
        s->cpu_ms += json_number_value(cpu);
    }
    json_decref(body);
}

/* A request thread: a demo step ended. */
static enum handler_result on_run_done(struct run_req *rr, int status,
                                       struct response *resp)
{
    struct table *t = run_req_extra(rr);
    struct step *s = &t->steps[t->next];
    s->ran = true;
    s->status = status;
    if (stops_table(status, resp))
        return HANDLER_DONE;
    if (status != 0) {
        snprintf(s->error, sizeof(s->error), "%d: %s",
                 engine_http_status(status), engine_run_error(run_req_run(rr)));
    } else {
        s->wall_ms = round(run_wall_ms(rr) * 1000.0) / 1000.0;
        read_cpu(rr, s);
    }
    run_finish(rr);
    if (http_client_gone(run_req_request(rr))) {
        response_error(resp, 499, "the client went away");
        return HANDLER_DONE;
    }
    t->next++;
    return next_step(rr, t, resp);
}

/* The measurement's thread. */
static void on_overhead_done(struct overhead *o, int status, void *arg)
{
    struct run_req *rr = arg;
    struct table *t = run_req_extra(rr);
    (void)o;
    t->overhead_status = status;
    http_wake(run_req_request(rr), on_overhead_wake, rr);
}

/* Main thread (http_sweep): the client left mid-measurement. */
static void on_overhead_gone(void *arg)
{
    struct table *t = arg;
    overhead_cancel(t->o, -ECANCELED);
}

/* A request thread: an overhead step ended. */
static enum handler_result on_overhead_wake(struct request *req,
                                            struct response *resp, void *arg)
{
    struct run_req *rr = arg;
    struct table *t = run_req_extra(rr);
    struct step *s = &t->steps[t->next];
    int status = t->overhead_status;
    overhead_count(s->mode, status);
    if (http_closing(req)) {
        run_req_free(rr);
        return HANDLER_DONE;
    }
    s->ran = true;
    s->status = status;
    if (stops_table(status, resp)) {
        run_req_free(rr);
        return HANDLER_DONE;
    }
    if (status == -EAGAIN && overhead_error(t->o)[0] == '\0')
        snprintf(s->error, sizeof(s->error),
                 "%d overhead measurements were running (at most %d at "
                 "once)",
                 OVERHEAD_LIVE_MAX, OVERHEAD_LIVE_MAX);
    else if (status != 0)
        snprintf(s->error, sizeof(s->error), "%s",
                 overhead_error(t->o)[0] ? overhead_error(t->o)
                                         : strerror(-status));
    else {
        overhead_figures(t->o, &s->fig);
        s->wall_ms = overhead_wall_ms(t->o);
    }
    overhead_free(t->o);
    t->o = NULL;
    enum handler_result r;
    if (http_client_gone(req)) {
        response_error(resp, 499, "the client went away");
        r = HANDLER_DONE;
    } else {
        t->next++;
        r = next_step(rr, t, resp);
    }
    if (r == HANDLER_DONE)
        run_req_free(rr);
    return r;
}

/* ------------------------------------------------------------------ */
/* The answer                                                          */

/* True when step i gave a figure; else marks the cell not available. */
static bool need(const struct table *t, struct cell *c, size_t i)
{
    const struct step *s = &t->steps[i];
    if (!c->available)
        return false;
    if (!s->available) {
        c->available = false;
        snprintf(c->reason, sizeof(c->reason), "not available: %s", s->reason);
    } else if (!s->ran) {
        c->available = false;
        snprintf(c->reason, sizeof(c->reason), "not run");
    } else if (s->status != 0) {
        c->available = false;
        snprintf(c->reason, sizeof(c->reason), "the run failed: %s", s->error);
    }
    return c->available;
}

static void cell_init(struct cell *c, const char *unit, const char *claim)
{
    memset(c, 0, sizeof(*c));
    c->available = true;
    c->unit = unit;
    c->claim = claim;
    c->holds = -1;
}

static void set_compare_request(struct cell *c, size_t step)
{
    const struct step_def *def = &STEP_DEFS[step];
    snprintf(c->request, sizeof(c->request), "/run/compare?demo=%s&%s",
             def->demo, def->query);
}

static void set_run_request(struct cell *c, size_t step)
{
    const struct step_def *def = &STEP_DEFS[step];
    snprintf(c->request, sizeof(c->request), "/run/%s?mode=%s&%s", def->demo,
             def->mode, def->query);
}

static void set_overhead_request(struct cell *c, const struct table *t,
                                 size_t step)
{
    const struct step_def *def = &STEP_DEFS[step];
    size_t max = overhead_units_max(t->steps[step].mode, t->app->cfg->workers);
    snprintf(c->request, sizeof(c->request), "/run/overhead?mode=%s&units=%zu",
             def->mode, def->units < max ? def->units : max);
}

/* The speedup of step `mode` against step `ref` (sequential). */
static void speedup_cell(const struct table *t, struct cell *c, size_t ref,
                         size_t mode)
{
    c->measured = STEP_DEFS[mode].mode;
    set_compare_request(c, mode);
    if (need(t, c, ref) && need(t, c, mode)) {
        double wall = t->steps[mode].wall_ms;
        c->figure = wall > 0 ? t->steps[ref].wall_ms / wall : 0;
    }
}

/* Tasks on a CPU at once over the run: the tasks' cpu_ms over its wall. */
static void parallel_cell(const struct table *t, struct cell *c, size_t step)
{
    const struct step *s = &t->steps[step];
    c->measured = STEP_DEFS[step].mode;
    set_run_request(c, step);
    if (!need(t, c, step))
        return;
    if (!s->has_cpu) {
        c->available = false;
        snprintf(c->reason, sizeof(c->reason),
                 "not available: the runs do not report cpu_ms per task in "
                 "this build");
        return;
    }
    c->figure = s->wall_ms > 0 ? s->cpu_ms / s->wall_ms : 0;
}

static void verdict_at_most(struct cell *c, double limit, const char *why)
{
    snprintf(c->rule, sizeof(c->rule), "%s <= %.2f%s%.200s", c->unit, limit,
             why ? ": " : "", why ? why : "");
    if (c->available)
        c->holds = c->figure <= limit;
}

static void verdict_at_least(struct cell *c, double limit, const char *why)
{
    snprintf(c->rule, sizeof(c->rule), "%s >= %.2f%s%.200s", c->unit, limit,
             why ? ": " : "", why ? why : "");
    if (c->available)
        c->holds = c->figure >= limit;
}

/* What the tasks of a CPU run can gain here: tasks, lanes and cores. */
static double ideal(const struct table *t, size_t step, bool pool)
{
    const struct step *s = &t->steps[step];
    double n = s->n_tasks ? (double)s->n_tasks : 1;
    double lanes = pool ? (double)t->app->cfg->workers : n;
    double m = n < lanes ? n : lanes;
    return m < t->app->cores ? m : (double)t->app->cores;
}

static void write_cell(struct jsonw *w, const struct cell *c, enum column col)
{
    jsonw_object(w);
    jsonw_key(w, "column");
    jsonw_str(w, column_names[col]);
    jsonw_key(w, "available");
    jsonw_bool(w, c->available);
    jsonw_key(w, "figure");
    if (c->available)
        jsonw_real(w, round(c->figure * 1000.0) / 1000.0);
    else
        jsonw_null(w);
    jsonw_key(w, "unit");
    jsonw_str(w, c->unit);
    if (c->measured) {
        jsonw_key(w, "measured");
        jsonw_str(w, c->measured);
    }
    jsonw_key(w, "request");
    jsonw_str(w, c->request);
    jsonw_key(w, "claim");
    jsonw_str(w, c->claim);
    jsonw_key(w, "rule");
    jsonw_str(w, c->rule);
    jsonw_key(w, "holds");
    if (c->available && c->holds >= 0)
        jsonw_bool(w, c->holds == 1);
    else
        jsonw_null(w);
    if (!c->available) {
        jsonw_key(w, "reason");
        jsonw_str(w, c->reason);
    }
    if (c->note[0]) {
        jsonw_key(w, "note");
        jsonw_str(w, c->note);
    }
    jsonw_end(w);
}

struct row {
    const char *id;
    const char *label;
    const char *words; /* the tutorials' own, briefly */
    struct cell cells[COLUMNS];
};

static void write_row(struct jsonw *w, const struct row *r)
{
    jsonw_object(w);
    jsonw_key(w, "id");
    jsonw_str(w, r->id);
    jsonw_key(w, "label");
    jsonw_str(w, r->label);
    jsonw_key(w, "tutorials");
    jsonw_str(w, r->words);
    jsonw_key(w, "cells");
    jsonw_array(w);
    for (int c = 0; c < COLUMNS; c++)
        write_cell(w, &r->cells[c], c);
    jsonw_end(w);
    jsonw_end(w);
}

static void note_beyond(struct cell *c, double most, const char *what)
{
    if (c->available && c->figure > most + 0.15)
        snprintf(c->note, sizeof(c->note),
                 "more than %s: the sequential reference ran slower than "
                 "its share (noise, a cold start or other load on the "
                 "machine), not extra concurrency",
                 what);
}

static void note_beyond_cores(const struct table *t, struct cell *c)
{
    char what[32];
    snprintf(what, sizeof(what), "the %d cores", t->app->cores);
    note_beyond(c, t->app->cores, what);
}

static void row_io(const struct table *t, struct row *r)
{
    r->id = "io_bound";
    r->label = "I/O-bound work: speedup over sequential (sleep, 4 tasks of "
               "100 ms)";
    r->words = "Primary Use Case: threading \"I/O-bound tasks\", "
               "multiprocessing \"CPU-bound tasks\", asyncio "
               "\"High-concurrency I/O-bound tasks\"";
    struct cell *c = r->cells;
    cell_init(&c[C_THREADS], "x", "\"I/O-bound tasks\": waits overlap");
    speedup_cell(t, &c[C_THREADS], S_SLEEP_SEQ, S_SLEEP_THR);
    verdict_at_least(&c[C_THREADS], SCALE_SHARE * 4,
                     "the 4 waits overlap (3/4 of the ideal at least)");
    cell_init(&c[C_PROCESSES], "x",
              "none for I/O (\"CPU-bound tasks\"); a pool overlaps as many "
              "waits as it has workers");
    speedup_cell(t, &c[C_PROCESSES], S_SLEEP_SEQ, S_SLEEP_PROC);
    snprintf(c[C_PROCESSES].rule, TEXT_MAX, "no claim to check");
    cell_init(&c[C_SPAWN], "x",
              "none for I/O (\"CPU-bound tasks\"); a process per task");
    speedup_cell(t, &c[C_SPAWN], S_SLEEP_SEQ, S_SLEEP_SPAWN);
    snprintf(c[C_SPAWN].rule, TEXT_MAX, "no claim to check");
    cell_init(&c[C_ASYNC], "x",
              "\"High-concurrency I/O-bound tasks\": waits overlap on one "
              "thread");
    speedup_cell(t, &c[C_ASYNC], S_SLEEP_SEQ, S_SLEEP_ASYNC);
    verdict_at_least(&c[C_ASYNC], SCALE_SHARE * 4,
                     "the 4 waits overlap (3/4 of the ideal at least)");
    for (int col = 0; col < COLUMNS; col++)
        note_beyond(&c[col], 4, "the 4 tasks");
}

static void row_cpu(const struct table *t, struct row *r)
{
    char why[TEXT_MAX];
    r->id = "cpu_bound";
    r->label = "CPU-bound work: speedup over sequential (prime below "
               "2,000,000, 2 tasks)";
    r->words = "Primary Use Case: multiprocessing \"CPU-bound tasks\"; "
               "\"ProcessPoolExecutor -> Best for CPU-bound tasks\"; "
               "threads \"run on a single CPU core due to the GIL\"";
    struct cell *c = r->cells;
    cell_init(&c[C_THREADS], "x",
              "\"run on a single CPU core due to the GIL\": no speedup");
    speedup_cell(t, &c[C_THREADS], S_PRIME_SEQ, S_PRIME_THR);
    verdict_at_most(&c[C_THREADS], NEAR_ONE, "no gain from threads");
    if (c[C_THREADS].available)
        snprintf(c[C_THREADS].note, TEXT_MAX,
                 "these are C threads, with no GIL: the claim is about "
                 "Python's threads (see the GIL row, mode gil)");
    note_beyond_cores(t, &c[C_THREADS]);

    snprintf(why, sizeof(why),
             "3/4 of min(tasks, workers, cores) = %.2f at least",
             SCALE_SHARE * ideal(t, S_PRIME_PROC, true));
    cell_init(&c[C_PROCESSES], "x", "\"CPU-bound tasks\": uses the cores");
    speedup_cell(t, &c[C_PROCESSES], S_PRIME_SEQ, S_PRIME_PROC);
    verdict_at_least(&c[C_PROCESSES],
                     SCALE_SHARE * ideal(t, S_PRIME_PROC, true), why);
    note_beyond_cores(t, &c[C_PROCESSES]);

    snprintf(why, sizeof(why), "3/4 of min(tasks, cores) = %.2f at least",
             SCALE_SHARE * ideal(t, S_PRIME_SPAWN, false));
    cell_init(&c[C_SPAWN], "x",
              "\"CPU-bound tasks\" (a multiprocessing.Process per task)");
    speedup_cell(t, &c[C_SPAWN], S_PRIME_SEQ, S_PRIME_SPAWN);
    verdict_at_least(&c[C_SPAWN], SCALE_SHARE * ideal(t, S_PRIME_SPAWN, false),
                     why);
    note_beyond_cores(t, &c[C_SPAWN]);

    cell_init(&c[C_ASYNC], "x", "not asyncio's use case");
    c[C_ASYNC].available = false;
    snprintf(c[C_ASYNC].reason, TEXT_MAX,
             "not available: prime has no async mode (a computing "
             "coroutine holds the loop: see the GIL row's async cell)");
    snprintf(c[C_ASYNC].rule, TEXT_MAX, "no claim to check");
    snprintf(c[C_ASYNC].request, TEXT_MAX, "/run/compare?demo=prime&%s",
             PRIME_QUERY);
}

static void row_mixed(const struct table *t, struct row *r)
{
    char why[TEXT_MAX];
    r->id = "mixed";
    r->label = "Mixed work: speedup over sequential (work, 4 tasks of "
               "120 ms, half waiting: io_ratio 0.5)";
    r->words = "Rule of thumb: waiting for I/O -> threading (a few tasks) or "
               "asyncio (thousands); heavy calculations -> multiprocessing "
               "\"to bypass the GIL and use all your CPU cores\"";
    struct cell *c = r->cells;
    const char *amdahl = "the computing halves take turns: 1 / (1 - "
                         "io_ratio) + 0.15 at most";
    cell_init(&c[C_THREADS], "x",
              "threads under the GIL gain on the waiting share only");
    speedup_cell(t, &c[C_THREADS], S_WORK_SEQ, S_WORK_GIL);
    verdict_at_most(&c[C_THREADS], 2.0 + 0.15, amdahl);

    snprintf(why, sizeof(why),
             "3/4 of min(tasks, workers, cores) = %.2f at least",
             SCALE_SHARE * ideal(t, S_WORK_PROC, true));
    cell_init(&c[C_PROCESSES], "x",
              "processes gain on both shares, up to the cores");
    speedup_cell(t, &c[C_PROCESSES], S_WORK_SEQ, S_WORK_PROC);
    verdict_at_least(&c[C_PROCESSES], SCALE_SHARE * ideal(t, S_WORK_PROC, true),
                     why);

    snprintf(why, sizeof(why), "3/4 of min(tasks, cores) = %.2f at least",
             SCALE_SHARE * ideal(t, S_WORK_SPAWN, false));
    cell_init(&c[C_SPAWN], "x",
              "a process per task gains on both shares, up to the cores");
    speedup_cell(t, &c[C_SPAWN], S_WORK_SEQ, S_WORK_SPAWN);
    verdict_at_least(&c[C_SPAWN], SCALE_SHARE * ideal(t, S_WORK_SPAWN, false),
                     why);

    cell_init(&c[C_ASYNC], "x",
              "\"Single-threaded event loop\": a computing coroutine "
              "blocks the loop");
    speedup_cell(t, &c[C_ASYNC], S_WORK_SEQ, S_WORK_ASYNC);
    verdict_at_most(&c[C_ASYNC], 2.0 + 0.15, amdahl);
}

static void row_gil(const struct table *t, struct row *r)
{
    char why[TEXT_MAX];
    r->id = "gil";
    r->label = "GIL affected? CPU-bound speedup over sequential (prime; "
               "threads under the simulated GIL)";
    r->words = "GIL Affected?: Threading \"Yes\", Multiprocessing \"No\", "
               "Asyncio \"Yes (but single-thread)\"";
    struct cell *c = r->cells;
    cell_init(&c[C_THREADS], "x", "\"Yes\": no speedup on CPU work");
    speedup_cell(t, &c[C_THREADS], S_PRIME_SEQ, S_PRIME_GIL);
    verdict_at_most(&c[C_THREADS], NEAR_ONE, "the lock lets one compute");
    if (c[C_THREADS].available && t->steps[S_PRIME_THR].ran &&
        t->steps[S_PRIME_THR].status == 0 && t->steps[S_PRIME_THR].wall_ms > 0)
        snprintf(c[C_THREADS].note, TEXT_MAX,
                 "the same threads without the lock: %.2fx",
                 t->steps[S_PRIME_SEQ].wall_ms / t->steps[S_PRIME_THR].wall_ms);

    snprintf(why, sizeof(why),
             "3/4 of min(tasks, workers, cores) = %.2f at least",
             SCALE_SHARE * ideal(t, S_PRIME_PROC, true));
    cell_init(&c[C_PROCESSES], "x", "\"No\": each process computes");
    speedup_cell(t, &c[C_PROCESSES], S_PRIME_SEQ, S_PRIME_PROC);
    verdict_at_least(&c[C_PROCESSES],
                     SCALE_SHARE * ideal(t, S_PRIME_PROC, true), why);

    snprintf(why, sizeof(why), "3/4 of min(tasks, cores) = %.2f at least",
             SCALE_SHARE * ideal(t, S_PRIME_SPAWN, false));
    cell_init(&c[C_SPAWN], "x", "\"No\": each process computes");
    speedup_cell(t, &c[C_SPAWN], S_PRIME_SEQ, S_PRIME_SPAWN);
    verdict_at_least(&c[C_SPAWN], SCALE_SHARE * ideal(t, S_PRIME_SPAWN, false),
                     why);

    cell_init(&c[C_ASYNC], "x",
              "\"Yes (but single-thread)\": no speedup on CPU work");
    speedup_cell(t, &c[C_ASYNC], S_WCPU_SEQ, S_WCPU_ASYNC);
    verdict_at_most(&c[C_ASYNC], NEAR_ONE, "one thread computes");
}

static void row_parallel(const struct table *t, struct row *r)
{
    char why[TEXT_MAX];
    r->id = "parallelism";
    r->label = "Parallelism: tasks on a CPU at once (sum of the tasks' "
               "cpu_ms over the run's wall time)";
    r->words = "Parallelism: \"No (due to GIL)\", \"Yes\", \"No (but "
               "appears concurrent)\"; CPU Cores Used: concurrency "
               "\"Usually single-core\", parallelism \"Uses multiple CPU "
               "cores\"";
    struct cell *c = r->cells;
    cell_init(&c[C_THREADS], "tasks on a CPU", "\"No (due to GIL)\"");
    parallel_cell(t, &c[C_THREADS], S_PRIME_GIL);
    verdict_at_most(&c[C_THREADS], NEAR_ONE, "one at a time");

    snprintf(why, sizeof(why),
             "3/4 of min(tasks, workers, cores) = %.2f at least",
             SCALE_SHARE * ideal(t, S_PRIME_PROC, true));
    cell_init(&c[C_PROCESSES], "tasks on a CPU", "\"Yes\"");
    parallel_cell(t, &c[C_PROCESSES], S_PRIME_PROC);
    verdict_at_least(&c[C_PROCESSES],
                     SCALE_SHARE * ideal(t, S_PRIME_PROC, true), why);

    snprintf(why, sizeof(why), "3/4 of min(tasks, cores) = %.2f at least",
             SCALE_SHARE * ideal(t, S_PRIME_SPAWN, false));
    cell_init(&c[C_SPAWN], "tasks on a CPU", "\"Yes\"");
    parallel_cell(t, &c[C_SPAWN], S_PRIME_SPAWN);
    verdict_at_least(&c[C_SPAWN], SCALE_SHARE * ideal(t, S_PRIME_SPAWN, false),
                     why);

    cell_init(&c[C_ASYNC], "tasks on a CPU", "\"No (but appears concurrent)\"");
    parallel_cell(t, &c[C_ASYNC], S_WORK_ASYNC);
    verdict_at_most(&c[C_ASYNC], NEAR_ONE, "one loop thread");
}

/* Start-up (memory false) or memory (true) of the four overhead steps. */
static void row_overhead(const struct table *t, struct row *r, bool memory)
{
    static const size_t steps[COLUMNS] = {S_OH_THREADS, S_OH_POOL, S_OH_SPAWN,
                                          S_OH_ASYNC};
    static const char *const claims[COLUMNS] = {
        "\"Low\"", "\"High (memory, startup)\"", "\"High (memory, startup)\"",
        "\"Very Low\""};
    r->id = memory ? "memory" : "startup";
    r->label = memory ? "Memory per unit while all are alive (median, "
                        "bytes)"
                      : "Start-up overhead: create to first instruction "
                        "(median, microseconds)";
    r->words = "Overhead: threading \"Low\", multiprocessing \"High "
               "(memory, startup)\", asyncio \"Very Low\"";
    double v[COLUMNS];
    for (int col = 0; col < COLUMNS; col++) {
        struct cell *c = &r->cells[col];
        const struct step *s = &t->steps[steps[col]];
        cell_init(c, memory ? "bytes" : "us", claims[col]);
        c->measured = STEP_DEFS[steps[col]].mode;
        set_overhead_request(c, t, steps[col]);
        v[col] = NAN;
        if (need(t, c, steps[col])) {
            c->figure = memory ? s->fig.bytes_median : s->fig.start_us_median;
            v[col] = c->figure;
            snprintf(c->note, sizeof(c->note), "%s",
                     memory ? s->fig.memory_method : s->fig.start_method);
        }
    }
    /* Low and high are relative: each against the thread's figure, the
     * thread's against a fresh process's. */
    struct cell *c = r->cells;
    snprintf(c[C_THREADS].rule, TEXT_MAX,
             "under 1/%.0f of a fresh process's (spawn)", OVERHEAD_RATIO);
    if (c[C_THREADS].available && !isnan(v[C_SPAWN]))
        c[C_THREADS].holds = v[C_THREADS] * OVERHEAD_RATIO < v[C_SPAWN];
    for (int col = C_PROCESSES; col <= C_SPAWN; col++) {
        snprintf(c[col].rule, TEXT_MAX, "at least %.0f times a thread's",
                 OVERHEAD_RATIO);
        if (c[col].available && !isnan(v[C_THREADS]))
            c[col].holds = v[col] >= OVERHEAD_RATIO * v[C_THREADS];
    }
    if (!memory && c[C_PROCESSES].available)
        snprintf(c[C_PROCESSES].note, TEXT_MAX,
                 "a prefork pool starts its processes before the work: a "
                 "job pays a hand-over to a warm worker, not a start-up");
    snprintf(c[C_ASYNC].rule, TEXT_MAX, "below a thread's");
    if (c[C_ASYNC].available && !isnan(v[C_THREADS]))
        c[C_ASYNC].holds = v[C_ASYNC] < v[C_THREADS];
}

static void write_steps(struct jsonw *w, const struct table *t)
{
    jsonw_array(w);
    for (size_t i = 0; i < STEPS; i++) {
        const struct step_def *def = &STEP_DEFS[i];
        const struct step *s = &t->steps[i];
        char request[TEXT_MAX];
        if (def->demo)
            snprintf(request, sizeof(request), "/run/%s?mode=%s&%s", def->demo,
                     def->mode, def->query);
        else
            snprintf(request, sizeof(request),
                     "/run/overhead?mode=%s&units=%zu", def->mode, def->units);
        jsonw_object(w);
        jsonw_key(w, "request");
        jsonw_str(w, request);
        jsonw_key(w, "outcome");
        jsonw_str(w, !s->available    ? "not available"
                     : !s->ran        ? "not run"
                     : s->status != 0 ? "failed"
                                      : "ok");
        jsonw_key(w, "estimate_ms");
        jsonw_ms(w, s->estimate_ms);
        if (s->ran && s->status == 0) {
            jsonw_key(w, "wall_ms");
            jsonw_ms(w, s->wall_ms);
            if (s->has_cpu) {
                jsonw_key(w, "cpu_ms");
                jsonw_ms(w, s->cpu_ms);
            }
        }
        if (!s->available || s->status != 0) {
            jsonw_key(w, "reason");
            jsonw_str(w, s->available ? s->error : s->reason);
        }
        jsonw_end(w);
    }
    jsonw_end(w);
}

/* The 1-minute load average, or -1 when unknown. */
static double load_average(void)
{
    double load = -1;
    FILE *f = fopen("/proc/loadavg", "re");
    if (!f)
        return -1;
    if (fscanf(f, "%lf", &load) != 1)
        load = -1;
    fclose(f);
    return load;
}

static void answer(struct run_req *rr, struct table *t, struct response *resp)
{
    struct request *req = run_req_request(rr);
    struct row *rows = calloc(7, sizeof(*rows));
    if (!rows) {
        response_error(resp, 500, "out of memory");
        return;
    }
    row_io(t, &rows[0]);
    row_cpu(t, &rows[1]);
    row_mixed(t, &rows[2]);
    row_gil(t, &rows[3]);
    row_parallel(t, &rows[4]);
    row_overhead(t, &rows[5], false);
    row_overhead(t, &rows[6], true);

    struct jsonw w;
    jsonw_init(&w, RUN_BODY_MAX);
    jsonw_object(&w);
    jsonw_key(&w, "cores");
    jsonw_int(&w, t->app->cores);
    jsonw_key(&w, "workers");
    jsonw_int(&w, t->app->cfg->workers);
    jsonw_key(&w, "wall_ms");
    jsonw_ms(&w, clock_ms_between(req->accepted_ns, clock_now_ns()));
    jsonw_key(&w, "estimate_ms");
    jsonw_ms(&w, t->estimate_ms);
    jsonw_key(&w, "budget_ms");
    jsonw_ms(&w, TABLE_BUDGET_MS);
    double load = load_average();
    if (load >= 0) {
        jsonw_key(&w, "load_average");
        jsonw_real(&w, load);
    }
    if (load > t->app->cores) {
        char note[TEXT_MAX];
        snprintf(note, sizeof(note),
                 "the machine was busy (load average %.2f on %d cores): "
                 "other programs took CPU time from these runs, so "
                 "the figures are noisy: compare with a run on a quiet "
                 "machine",
                 load, t->app->cores);
        jsonw_key(&w, "note");
        jsonw_str(&w, note);
    }
    jsonw_key(&w, "columns");
    jsonw_array(&w);
    for (int c = 0; c < COLUMNS; c++)
        jsonw_str(&w, column_names[c]);
    jsonw_end(&w);
    jsonw_key(&w, "rows");
    jsonw_array(&w);
    for (int i = 0; i < 7; i++)
        write_row(&w, &rows[i]);
    jsonw_end(&w);
    jsonw_key(&w, "steps");
    write_steps(&w, t);
    jsonw_end(&w);
    free(rows);

    size_t len;
    char *body = jsonw_take(&w, &len);
    if (!body) {
        response_error(resp, 500, "table: the answer could not be built");
        return;
    }
    response_body(resp, 200, CONTENT_TYPE_JSON, body, len);
    response_header(resp, "Cache-Control", "no-store");
}
