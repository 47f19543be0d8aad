/*
 * compare: GET /run/compare, one demo in each of its modes, one after
 * another, answered as one table: per mode the wall time, the speedup
 * against sequential, whether the result agrees with sequential's, and the
 * run's whole body (timeline included).
 *
 * Honest speedups. A first run is cold (demo threads asleep, a worker's
 * pages not yet touched, the CPU clocked down): timed first, the
 * sequential baseline once made prime on 2 cores look 2.46x faster in
 * threads. So before timing, one untimed task runs on each back end that
 * computes (the demo threads, which sequential, threads and gil share, and
 * the worker processes; async's loop is always running); and repeat=N runs
 * each mode N times in a row and takes the median wall time (the table
 * shows the median run's body and every wall). Where a speedup still
 * exceeds the CPUs the mode could use (1 for sequential, gil and async;
 * min(cores, lanes, tasks) for threads and processes), the mode's "note"
 * says why, from what the runs show: timing noise, a run too short to
 * time, a baseline off a CPU much of its time (the service's CPU time over
 * it: waiting, its own or for a CPU other programs held, overlaps without
 * a CPU each), or a computing baseline slower than its own tasks allow
 * (cold, varying over the repeats, other load on the machine).
 *
 * The parameters are checked for every mode before the first run (a bad
 * one is a 400 before any work), the total budget on the sum of the modes'
 * estimates times repeat plus the warm-up, and admission on the largest of
 * their costs (one run holds it at a time). Each run ends on a request
 * thread (run.h), where its body is kept and the next run is launched;
 * the last one answers. A failed run stops the comparison with its error.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "../server/clock.h"
#include "../server/http.h"
#include "../server/jsonr.h"
#include "../server/params.h"
#include "handlers.h"
#include "live.h"
#include "run.h"

#define BUDGET_MS  30000.0
#define REPEAT_MAX 5
#define NOISE      1.05 /* a speedup this close to the CPUs is noise */
#define SHORT_MS   5.0  /* walls below this are timer-sized */
#define COLD       1.25 /* a first task this much slower than the rest */
#define OFF_CPU    0.7  /* a baseline on a CPU less than this share waits */
#define NOTE_MAX   320

/* One timed run of a mode: its body (without the closing brace) and what
 * the notes read. */
struct rep {
    char *body;
    size_t len;
    double wall_ms;
    double task_ms;  /* the median task's duration */
    double busy_ms;  /* the tasks' durations summed */
    double first_ms; /* task 0's */
    double rest_ms;  /* the mean of the others' (0 with one task) */
    double cpu_ms;   /* the service's CPU time over the run (in-process) */
    bool same;
};

struct compare {
    const struct demo *d;
    size_t next;
    int repeat, rep;
    enum engine_mode warm[2]; /* the back ends warmed before timing */
    size_t n_warm, warm_next;
    double warm_ms, warm_estimate_ms;
    uint64_t cpu_at_launch_ns; /* CLOCK_PROCESS_CPUTIME_ID */
    struct rep reps[REPEAT_MAX];
    struct rep base;           /* sequential's median run (body not kept) */
    double base_min, base_max; /* sequential's walls */
    struct jsonw table;        /* the runs' bodies, an open array */
    json_t *reference;         /* sequential's outcome fields */
    double reference_ms;       /* sequential's median wall */
    double estimate_ms;
    double mode_estimate_ms[ENGINE_MODES]; /* what each mode was budgeted */
    bool differs[ENGINE_MODES];
};

static void free_reps(struct compare *c)
{
    for (int i = 0; i < REPEAT_MAX; i++) {
        free(c->reps[i].body);
        c->reps[i].body = NULL;
    }
}

static void free_compare(void *arg)
{
    struct compare *c = arg;
    free_reps(c);
    jsonw_cleanup(&c->table);
    json_decref(c->reference);
    free(c);
}

/* The run's "result" object, parsed, for comparing the outcome fields. */
static json_t *result_of(struct run_req *rr, const struct demo *d)
{
    struct jsonw w;
    jsonw_init(&w, RUN_BODY_MAX);
    jsonw_object(&w);
    d->write_result(&w, engine_run_state(run_req_run(rr)), run_req_run(rr));
    jsonw_end(&w);
    size_t len;
    char *text = jsonw_take(&w, &len);
    json_t *obj = text ? json_loadb(text, len, 0, NULL) : NULL;
    free(text);
    return obj;
}

static bool same_outcome(const struct demo *d, json_t *a, json_t *b)
{
    for (const char *const *k = d->outcome; *k; k++) {
        if (!json_equal(json_object_get(a, *k), json_object_get(b, *k)))
            return false;
    }
    return true;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..n) (the mean of the middle two when n is even). */
static double median(const double *v, size_t n)
{
    double s[REPEAT_MAX];
    if (n == 0 || n > REPEAT_MAX)
        return 0;
    memcpy(s, v, n * sizeof(*s));
    qsort(s, n, sizeof(*s), cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2.0;
}

/* The task durations of a finished run, summarised into r. */
static void task_stats(const struct engine_run *run, struct rep *r)
{
    const struct engine_task *t = engine_run_tasks(run);
    size_t n = engine_run_n_tasks(run);
    double *d = malloc(n * sizeof(*d));
    r->busy_ms = r->first_ms = r->rest_ms = r->task_ms = 0;
    if (!d)
        return;
    for (size_t i = 0; i < n; i++) {
        d[i] = t[i].end_ns > t[i].start_ns
                   ? clock_ms_between(t[i].start_ns, t[i].end_ns)
                   : 0;
        r->busy_ms += d[i];
        if (i > 0)
            r->rest_ms += d[i] / (double)(n - 1);
    }
    r->first_ms = d[0];
    qsort(d, n, sizeof(*d), cmp_double);
    r->task_ms = d[n / 2];
    free(d);
}

/* The CPUs a mode can compute on at once. */
static int cpus_of(const struct compare *c, struct run_req *rr,
                   enum engine_mode mode)
{
    const struct app *app = run_req_app(rr);
    if (mode != ENGINE_THREADS && mode != ENGINE_PROCESSES &&
        mode != ENGINE_SPAWN)
        return 1;
    size_t n = c->d->n_tasks(run_req_args(rr));
    size_t lanes = engine_lanes(app->engine, mode, n);
    /* The run's cores when it is pinned to fewer than the machine's. */
    unsigned pinned = run_req_cores(rr);
    size_t u =
        pinned && pinned < (unsigned)app->cores ? pinned : (size_t)app->cores;
    if (lanes < u)
        u = lanes;
    if (n < u)
        u = n;
    return u ? (int)u : 1;
}

/*
 * Why a mode's speedup exceeds its CPUs, from what the runs show (see the
 * header); "" when it does not.
 */
static void explain(const struct compare *c, const struct rep *m,
                    double speedup, int cpus, char *note, size_t len)
{
    const struct rep *b = &c->base;
    note[0] = '\0';
    if (speedup <= cpus)
        return;
    /* The baseline's share of its wall time on a CPU: the service's CPU
     * time over it (sequential runs in this process; other clients' work
     * at the time counts too, so it errs towards "computing"). */
    double on_cpu = b->wall_ms > 0 ? b->cpu_ms / b->wall_ms : 1;
    double at_once = m->wall_ms > 0 ? m->busy_ms / m->wall_ms : 0;
    if (speedup <= cpus * NOISE) {
        snprintf(note, len,
                 "within %.0f%% of the %d CPU%s it could use: timing noise",
                 (NOISE - 1) * 100, cpus, cpus > 1 ? "s" : "");
    } else if (m->wall_ms < SHORT_MS || c->reference_ms < SHORT_MS) {
        snprintf(note, len,
                 "too short to time (%.3f ms here, %.3f ms sequential): "
                 "timer and scheduling granularity decide the ratio; raise "
                 "the parameters",
                 m->wall_ms, c->reference_ms);
    } else if (on_cpu < OFF_CPU) {
        snprintf(note, len,
                 "more than its %d CPU%s because the sequential baseline was "
                 "on a CPU only %.0f%% of its %.1f ms (the service's CPU "
                 "time over it): the rest it waited, on its own waits or for "
                 "a CPU other programs held, and %.1f tasks at once here "
                 "overlap waiting without a CPU each",
                 cpus, cpus > 1 ? "s" : "", on_cpu * 100, b->wall_ms, at_once);
    } else if (b->rest_ms > 0 && b->first_ms > b->rest_ms * COLD) {
        snprintf(note, len,
                 "more than its %d CPU%s because the sequential baseline ran "
                 "cold: its first task took %.1f ms, the others %.1f ms on "
                 "average; repeat=3 takes medians",
                 cpus, cpus > 1 ? "s" : "", b->first_ms, b->rest_ms);
    } else if (c->repeat > 1 && c->base_max > c->base_min * 1.2) {
        snprintf(note, len,
                 "more than its %d CPU%s because the sequential baseline "
                 "varied from %.1f to %.1f ms over the repeats: other load "
                 "on this machine",
                 cpus, cpus > 1 ? "s" : "", c->base_min, c->base_max);
    } else {
        snprintf(note, len,
                 "more than its %d CPU%s because the sequential baseline ran "
                 "slower than this mode's tasks allow (%.1f ms a task alone; "
                 "%.1f ms each here, %.1f at once): other load on this "
                 "machine during the baseline, or a CPU clock change%s",
                 cpus, cpus > 1 ? "s" : "", b->task_ms, m->task_ms, at_once,
                 c->repeat > 1 ? "" : "; repeat=3 takes medians");
    }
}

static void answer_table(struct run_req *rr, struct compare *c,
                         struct response *resp)
{
    const struct demo *d = c->d;
    struct request *req = run_req_request(rr);
    struct jsonw w;
    jsonw_end(&c->table);
    size_t table_len;
    char *table = jsonw_take(&c->table, &table_len);

    jsonw_init(&w, RUN_BODY_MAX);
    jsonw_object(&w);
    jsonw_key(&w, "demo");
    jsonw_str(&w, d->name);
    jsonw_key(&w, "params");
    demo_write_params(&w, d, run_req_args(rr));
    jsonw_key(&w, "cores");
    jsonw_uint(&w, run_req_cores(rr));
    jsonw_key(&w, "modes");
    jsonw_array(&w);
    for (size_t i = 0; i < d->n_modes; i++)
        jsonw_str(&w, engine_mode_names[d->modes[i]]);
    jsonw_end(&w);
    jsonw_key(&w, "repeat");
    jsonw_int(&w, c->repeat);
    jsonw_key(&w, "warmup");
    jsonw_object(&w);
    jsonw_key(&w, "modes");
    jsonw_array(&w);
    for (size_t i = 0; i < c->n_warm; i++)
        jsonw_str(&w, engine_mode_names[c->warm[i]]);
    jsonw_end(&w);
    jsonw_key(&w, "tasks");
    jsonw_int(&w, 1);
    jsonw_key(&w, "wall_ms");
    jsonw_ms(&w, c->warm_ms);
    jsonw_key(&w, "estimate_ms");
    jsonw_ms(&w, c->warm_estimate_ms);
    jsonw_end(&w);
    jsonw_key(&w, "method");
    jsonw_str(&w, "one untimed task on each computing back end first; then "
                  "each mode `repeat` times in a row, its median wall time "
                  "timed; speedup = sequential's median / the mode's median");
    jsonw_key(&w, "wall_ms");
    jsonw_ms(&w, clock_ms_between(req->accepted_ns, clock_now_ns()));
    jsonw_key(&w, "estimate_ms");
    jsonw_ms(&w, c->estimate_ms);
    jsonw_key(&w, "budget_ms");
    jsonw_ms(&w, BUDGET_MS);
    bool agree = true;
    for (size_t i = 0; i < d->n_modes; i++)
        agree = agree && !c->differs[i];
    jsonw_key(&w, "results_agree");
    jsonw_bool(&w, agree);
    jsonw_key(&w, "differing_modes");
    jsonw_array(&w);
    for (size_t i = 0; i < d->n_modes; i++) {
        if (c->differs[i])
            jsonw_str(&w, engine_mode_names[d->modes[i]]);
    }
    jsonw_end(&w);
    jsonw_key(&w, "runs");
    if (table)
        jsonw_raw(&w, table, table_len);
    else
        jsonw_null(&w);
    jsonw_end(&w);
    free(table);

    size_t len;
    char *body = jsonw_take(&w, &len);
    if (!body) {
        response_error(resp, 500, "compare: the answer could not be built");
        return;
    }
    response_body(resp, 200, CONTENT_TYPE_JSON, body, len);
    response_header(resp, "Cache-Control", "no-store");
}

/*
 * The mode's repeats are in: the median run's body goes into the table
 * with the comparison's fields. Returns 0 or -ENOMEM.
 */
static int close_mode(struct run_req *rr, struct compare *c)
{
    enum engine_mode mode = c->d->modes[c->next];
    double walls[REPEAT_MAX];
    size_t n = (size_t)c->repeat;
    bool same = true;
    for (size_t i = 0; i < n; i++) {
        walls[i] = c->reps[i].wall_ms;
        same = same && c->reps[i].same;
    }
    double med = median(walls, n);
    /* The run shown: the one nearest the median (the lower on a tie). */
    size_t pick = 0;
    for (size_t i = 1; i < n; i++) {
        if (fabs(walls[i] - med) < fabs(walls[pick] - med))
            pick = i;
    }
    struct rep *m = &c->reps[pick];
    if (c->next == 0) {
        c->reference_ms = med;
        c->base = *m;
        c->base.body = NULL;
        c->base_min = c->base_max = walls[0];
        for (size_t i = 1; i < n; i++) {
            c->base_min = walls[i] < c->base_min ? walls[i] : c->base_min;
            c->base_max = walls[i] > c->base_max ? walls[i] : c->base_max;
        }
    }
    c->differs[c->next] = !same;
    double speedup = med > 0 ? c->reference_ms / med : 0;
    int cpus = cpus_of(c, rr, mode);
    char note[NOTE_MAX];
    explain(c, m, speedup, cpus, note, sizeof(note));

    struct jsonw w;
    jsonw_init(&w, RUN_BODY_MAX);
    jsonw_object(&w);
    jsonw_key(&w, "speedup");
    jsonw_real(&w, speedup);
    jsonw_key(&w, "same_result");
    jsonw_bool(&w, same);
    jsonw_key(&w, "estimate_ms");
    jsonw_ms(&w, c->mode_estimate_ms[c->next]);
    jsonw_key(&w, "median_ms");
    jsonw_ms(&w, med);
    jsonw_key(&w, "walls_ms");
    jsonw_array(&w);
    for (size_t i = 0; i < n; i++)
        jsonw_ms(&w, walls[i]);
    jsonw_end(&w);
    jsonw_key(&w, "cpus");
    jsonw_int(&w, cpus);
    if (note[0]) {
        jsonw_key(&w, "note");
        jsonw_str(&w, note);
    }
    jsonw_end(&w);
    size_t extra_len;
    char *extra = jsonw_take(&w, &extra_len);
    /* The body's fields, a comma, the extra fields without their '{'. */
    size_t len = m->len + 1 + extra_len - 1;
    char *joined = extra ? malloc(len) : NULL;
    if (joined) {
        memcpy(joined, m->body, m->len);
        joined[m->len] = ',';
        memcpy(joined + m->len + 1, extra + 1, extra_len - 1);
        jsonw_raw(&c->table, joined, len);
    }
    free(joined);
    free(extra);
    free_reps(c);
    return joined && !jsonw_failed(&c->table) ? 0 : -ENOMEM;
}

static enum handler_result on_mode_done(struct run_req *rr, int status,
                                        struct response *resp);

/* The next run: a warm-up, or a timed one. */
static enum handler_result launch_next(struct run_req *rr, struct compare *c,
                                       struct response *resp)
{
    if (http_client_gone(run_req_request(rr))) {
        response_error(resp, 499, "the client went away");
        return HANDLER_DONE;
    }
    if (c->warm_next < c->n_warm) {
        run_req_set_max_tasks(rr, 1);
        return run_launch(rr, c->warm[c->warm_next], clock_now_ns(),
                          on_mode_done, resp);
    }
    run_req_set_max_tasks(rr, 0);
    c->cpu_at_launch_ns = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    return run_launch(rr, c->d->modes[c->next], clock_now_ns(), on_mode_done,
                      resp);
}

/* A streamed comparison's first launch (live_start_fn). */
static enum handler_result launch_first(struct run_req *rr,
                                        struct response *resp)
{
    return launch_next(rr, run_req_extra(rr), resp);
}

/* A request thread: a warm-up, or repeat c->rep of mode c->next, ended. */
static enum handler_result on_mode_done(struct run_req *rr, int status,
                                        struct response *resp)
{
    struct compare *c = run_req_extra(rr);
    const struct demo *d = c->d;
    bool warming = c->warm_next < c->n_warm;
    const char *mode =
        engine_mode_names[warming ? c->warm[c->warm_next] : d->modes[c->next]];

    if (status != 0) {
        response_error(resp, engine_http_status(status),
                       "compare stopped at %smode %s: %s: %s",
                       warming ? "the warm-up of " : "", mode, d->name,
                       engine_run_error(run_req_run(rr)));
        return HANDLER_DONE;
    }
    if (warming) {
        c->warm_ms += run_wall_ms(rr);
        run_finish(rr);
        c->warm_next++;
        return launch_next(rr, c, resp);
    }

    json_t *result = result_of(rr, d);
    struct rep *r = &c->reps[c->rep];
    /* As the body states it (to the microsecond), so that the speedup
     * is the ratio of the figures a reader sees. */
    r->wall_ms = round(run_wall_ms(rr) * 1000.0) / 1000.0;
    r->cpu_ms =
        (double)(clock_ns(CLOCK_PROCESS_CPUTIME_ID) - c->cpu_at_launch_ns) /
        1e6;
    task_stats(run_req_run(rr), r);
    if (c->next == 0 && c->rep == 0)
        c->reference = json_incref(result);
    r->same = result && same_outcome(d, result, c->reference);
    json_decref(result);

    struct jsonw w;
    jsonw_init(&w, RUN_BODY_MAX);
    run_write_body(rr, &w);
    jsonw_end(&w);
    size_t len;
    char *body = jsonw_take(&w, &len);
    run_finish(rr);
    if (!body || len < 2) {
        free(body);
        response_error(resp, 500, "compare: the answer could not be built");
        return HANDLER_DONE;
    }
    r->body = body;
    r->len = len - 1; /* open again: the comparison's fields follow */

    if (++c->rep < c->repeat)
        return launch_next(rr, c, resp);
    c->rep = 0;
    if (close_mode(rr, c) < 0) {
        response_error(resp, 500, "compare: the answer could not be built");
        return HANDLER_DONE;
    }
    c->next++;
    if (c->next == d->n_modes) {
        answer_table(rr, c, resp);
        return HANDLER_DONE;
    }
    return launch_next(rr, c, resp);
}

enum handler_result compare_handle(struct request *req, struct response *resp,
                                   void *ctx)
{
    struct app *app = ctx;
    struct params p;
    const char *names[DEMOS_MAX];
    char list[DEMOS_MAX * 24] = "";
    int which;
    int64_t repeat = 1;

    for (size_t i = 0; i < demo_count; i++) {
        names[i] = demo_registry[i]->name;
        size_t used = strlen(list);
        snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "",
                 names[i]);
    }
    struct jsonr_doc doc;
    struct live_opts live;
    if (req->method == HTTP_POST) {
        if (handlers_body_doc(req, &doc, &p, resp) < 0) {
            params_cleanup(&p);
            return HANDLER_DONE;
        }
        if (handlers_json_enum(&doc, &p, "demo", names, demo_count, -1,
                               &which) < 0 ||
            handlers_json_int(&doc, &p, "repeat", 1, REPEAT_MAX, 1, &repeat) <
                0 ||
            live_parse(req, &p, &doc, &live) < 0)
            return handlers_reject_params(&p, resp);
    } else if (params_parse(&p, req->query) < 0 ||
               params_enum(&p, "demo", names, demo_count, -1, &which) < 0 ||
               params_int(&p, "repeat", 1, REPEAT_MAX, 1, &repeat) < 0 ||
               live_parse(req, &p, NULL, &live) < 0) {
        return handlers_reject_params(&p, resp);
    }
    if (which < 0) {
        params_cleanup(&p);
        response_error(resp, 400, "parameter 'demo' is required: one of %s",
                       list);
        return HANDLER_DONE;
    }
    const struct demo *d = demo_registry[which];
    struct run_req *rr = run_req_new(app, req, d);
    struct compare *c = calloc(1, sizeof(*c));
    if (!rr || !c) {
        free(c);
        run_req_free(rr);
        params_cleanup(&p);
        response_error(resp, 500, "out of memory");
        return HANDLER_DONE;
    }
    run_req_set_extra(rr, c, free_compare);
    c->d = d;
    c->repeat = (int)repeat;
    jsonw_init(&c->table, RUN_BODY_MAX);
    jsonw_array(&c->table);

    if (run_parse_cores(rr, &p, req->method == HTTP_POST ? &doc : NULL) < 0) {
        run_req_free(rr);
        return handlers_reject_params(&p, resp);
    }
    int parsed = req->method == HTTP_POST
                     ? run_parse_json(rr, &doc, &p, DEMO_ALL_MODES, resp)
                     : run_parse(rr, &p, DEMO_ALL_MODES, resp);
    if (parsed < 0) {
        run_req_free(rr);
        return HANDLER_DONE;
    }

    /* Every mode's estimate, repeat times, and the warm-up (one task of
     * the sequential work on each back end that computes) against the
     * budget; admission on the largest cost, plus the bodies the repeats
     * of one mode hold until the median is known. */
    struct budget_cost cost = {{0}};
    size_t n_warm = 0;
    for (size_t i = 0; i < d->n_modes; i++) {
        if ((i == 0 || d->modes[i] == ENGINE_PROCESSES) &&
            d->modes[i] != ENGINE_ASYNC)
            n_warm++;
    }
    /* A warm-up takes at most one pass of the first mode: fitting one pass
     * in budget / (repeat + warm-ups) fits them all. */
    if (d->fit_compare)
        d->fit_compare(run_req_args(rr), d, app,
                       BUDGET_MS / (double)(c->repeat + (int)n_warm));
    size_t n_tasks = d->n_tasks(run_req_args(rr));
    for (size_t i = 0; i < d->n_modes; i++) {
        struct budget_cost one;
        enum engine_mode m = d->modes[i];
        c->mode_estimate_ms[i] = d->estimate_ms(run_req_args(rr), m, app);
        c->estimate_ms += c->mode_estimate_ms[i] * (double)c->repeat;
        run_cost(d, run_req_args(rr), m, app, &one);
        for (int k = 0; k < BUDGET_KINDS; k++) {
            if (one.amount[k] > cost.amount[k])
                cost.amount[k] = one.amount[k];
        }
        if ((i == 0 || m == ENGINE_PROCESSES) && m != ENGINE_ASYNC &&
            c->n_warm < 2) {
            c->warm[c->n_warm++] = m;
            c->warm_estimate_ms += c->mode_estimate_ms[0] / (double)n_tasks;
            c->estimate_ms += c->mode_estimate_ms[0] / (double)n_tasks;
        }
    }
    cost.amount[BUDGET_BYTES] +=
        (uint64_t)(c->repeat - 1) * n_tasks * RUN_BYTES_ANSWER;
    if (c->estimate_ms > BUDGET_MS) {
        response_error(resp, 400,
                       "compare runs %s in %zu modes one after another%s, "
                       "about %.0f ms in all here; the budget is %.0f ms: "
                       "lower %s%s",
                       d->name, d->n_modes,
                       c->repeat > 1 ? ", each `repeat` times" : "",
                       c->estimate_ms, BUDGET_MS, d->shrink,
                       c->repeat > 1 ? " or repeat" : "");
        run_req_free(rr);
        return HANDLER_DONE;
    }
    size_t most_tasks = d->n_tasks(run_req_args(rr));
    if (live.form != LIVE_OFF)
        cost.amount[BUDGET_BYTES] += live_bytes(most_tasks);
    if (run_admit(rr, &cost, resp) < 0) {
        run_req_free(rr);
        return HANDLER_DONE;
    }
    if (live.form != LIVE_OFF && live.streamed)
        return live_start(rr, &live, d->modes, d->n_modes, launch_first, resp);
    run_req_set_text(rr, live.form == LIVE_TEXT);
    enum handler_result r = launch_next(rr, c, resp);
    if (r == HANDLER_DONE)
        run_req_free(rr);
    return r;
}
