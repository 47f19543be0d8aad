/*
 * prime: /run/prime, the CPU-bound demo. Counts the primes in [1, limit)
 * by trial division, split into block-cyclic tasks (prime.h) so that every
 * task costs about the same, in any of the run modes. In processes mode a
 * long task goes to the workers in slices of about ENGINE_SLICE_NS, so
 * another client's job never waits long for a worker.
 */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../server/app.h"
#include "../server/job.h"
#include "../server/prime.h"
#include "demo.h"

extern const struct demo demo_prime;

#define TASKS_MAX 256

/*
 * Trial division of every n below limit costs about limit^1.5 divisions
 * (primes dominate): REF_MS on one core of the development VM for
 * REF_LIMIT. The cost of checking one number near n is the derivative.
 */
#define REF_LIMIT 1e7
#define REF_MS    1600.0

struct prime_state {
    size_t n;
    uint64_t limit;
    struct prime_span *spans;
    struct job_prime_result *counts;
    /* Numbers checked so far by every task, for live progress: per block
     * in-process, per slice in processes mode (relaxed adds). */
    _Atomic uint64_t checked_so_far;
};

/* An engine_yield() that also counts the block just checked. */
struct counting_yield {
    struct engine_ctx *ctx;
    struct prime_state *st;
    uint64_t block, counted;
};

enum { P_LIMIT, P_TASKS };

static const struct demo_param params[] = {
    [P_LIMIT] = {.name = "limit",
                 .type = DEMO_INT,
                 .min = 2,
                 .max = 50000000,
                 .def = 100000,
                 .form_value = 3000000,
                 .scales_time = true,
                 .doc = "Counts the primes among every n in [1, limit) by "
                        "trial division. The work grows as limit^1.5: 10^7 "
                        "takes about 1.5 s on one core."},
    [P_TASKS] = {.name = "tasks",
                 .type = DEMO_INT,
                 .min = 1,
                 .max = TASKS_MAX,
                 .def_from = DEMO_DEF_WORKERS,
                 .form_value = 4,
                 .doc = "Tasks the range is split into (block-cyclic, so "
                        "that they cost about the same). Default: the "
                        "number of worker processes (`--workers`)."},
};

static size_t n_tasks(const struct demo_args *a)
{
    return (size_t)a->v[P_TASKS];
}

static void free_state(void *arg)
{
    struct prime_state *st = arg;
    free(st->spans);
    free(st->counts);
    free(st);
}

static void *prepare(const struct demo_args *a, enum engine_mode mode,
                     const struct demo_env *env)
{
    (void)mode;
    (void)env;
    struct prime_state *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->n = (size_t)a->v[P_TASKS];
    st->limit = (uint64_t)a->v[P_LIMIT];
    st->spans = calloc(st->n, sizeof(st->spans[0]));
    st->counts = calloc(st->n, sizeof(st->counts[0]));
    if (!st->spans || !st->counts) {
        free_state(st);
        return NULL;
    }
    prime_split(st->limit, (unsigned)st->n, st->spans);
    return st;
}

static int counting_yield(void *arg)
{
    struct counting_yield *y = arg;
    atomic_fetch_add_explicit(&y->st->checked_so_far, y->block,
                              memory_order_relaxed);
    y->counted += y->block;
    return engine_yield(y->ctx);
}

static int compute(struct engine_ctx *ctx, void *arg, size_t task)
{
    struct prime_state *st = arg;
    struct job_prime_result *c = &st->counts[task];
    struct counting_yield y = {
        .ctx = ctx, .st = st, .block = st->spans[task].block};
    int rc = prime_count(&st->spans[task], counting_yield, &y, &c->checked,
                         &c->primes);
    /* The last block may be short: the total is exact at the end. */
    if (c->checked >= y.counted)
        atomic_fetch_add_explicit(&st->checked_so_far, c->checked - y.counted,
                                  memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(&st->checked_so_far, y.counted - c->checked,
                                  memory_order_relaxed);
    return rc;
}

static uint64_t progress(void *arg)
{
    struct prime_state *st = arg;
    return atomic_load_explicit(&st->checked_so_far, memory_order_relaxed);
}

/*
 * Slice k of a span: the same blocks, cut to about ENGINE_SLICE_NS of
 * work at the span's largest numbers (so no slice is longer).
 */
static struct prime_span slice_of(const struct prime_span *s, unsigned k,
                                  bool *last)
{
    double ms_per_number =
        REF_MS * 1.5 * sqrt((double)s->end) / pow(REF_LIMIT, 1.5);
    double numbers = (double)ENGINE_SLICE_NS / 1e6 / ms_per_number;
    uint64_t blocks = (uint64_t)(numbers / (double)s->block);
    if (blocks < 1)
        blocks = 1;
    struct prime_span out = *s;
    uint64_t step = blocks * s->stride;
    out.first = s->first + (uint64_t)k * step;
    out.end = out.first + step < s->end ? out.first + step : s->end;
    *last = out.end >= s->end;
    return out;
}

static int job(void *arg, size_t task, unsigned slice, struct engine_job *out)
{
    struct prime_state *st = arg;
    struct prime_span span = slice_of(&st->spans[task], slice, &out->last);
    out->kind = demo_kind(&demo_prime);
    memcpy(out->buf, &span, sizeof(span));
    out->params = out->buf;
    out->len = sizeof(span);
    return 0;
}

static int absorb(void *arg, size_t task, unsigned slice, const void *result,
                  uint32_t len)
{
    struct prime_state *st = arg;
    struct job_prime_result r;
    if (len != sizeof(r))
        return -EPROTO;
    memcpy(&r, result, sizeof(r));
    if (slice == 0)
        memset(&st->counts[task], 0, sizeof(r));
    st->counts[task].checked += r.checked;
    st->counts[task].primes += r.primes;
    atomic_fetch_add_explicit(&st->checked_so_far, r.checked,
                              memory_order_relaxed);
    return 0;
}

static int worker_job(const void *in, uint32_t len, void *out, uint32_t cap,
                      uint32_t *out_len)
{
    struct prime_span span;
    struct job_prime_result res;
    if (len != sizeof(span) || cap < sizeof(res))
        return -EINVAL;
    memcpy(&span, in, sizeof(span));
    if (span.block == 0 || span.stride < span.block)
        return -EINVAL;
    prime_count(&span, NULL, NULL, &res.checked, &res.primes);
    memcpy(out, &res, sizeof(res));
    *out_len = sizeof(res);
    return 0;
}

static void write_task(struct jsonw *w, void *arg, size_t task)
{
    struct prime_state *st = arg;
    const struct prime_span *s = &st->spans[task];
    jsonw_key(w, "range");
    jsonw_object(w);
    jsonw_key(w, "first");
    jsonw_uint(w, s->first);
    jsonw_key(w, "end");
    jsonw_uint(w, s->end);
    jsonw_key(w, "block");
    jsonw_uint(w, s->block);
    jsonw_key(w, "stride");
    jsonw_uint(w, s->stride);
    jsonw_end(w);
    jsonw_key(w, "checked");
    jsonw_uint(w, st->counts[task].checked);
    jsonw_key(w, "primes");
    jsonw_uint(w, st->counts[task].primes);
}

static void write_result(struct jsonw *w, void *arg,
                         const struct engine_run *run)
{
    struct prime_state *st = arg;
    uint64_t checked = 0, primes = 0;
    (void)run;
    for (size_t i = 0; i < st->n; i++) {
        checked += st->counts[i].checked;
        primes += st->counts[i].primes;
    }
    jsonw_key(w, "checked");
    jsonw_uint(w, checked);
    jsonw_key(w, "primes");
    jsonw_uint(w, primes);
}

/* Threads and processes divide the work by the lanes that run at once. */
static double estimate_ms(const struct demo_args *a, enum engine_mode mode,
                          const struct app *app)
{
    double ms = REF_MS * pow((double)a->v[P_LIMIT] / REF_LIMIT, 1.5);
    size_t n = (size_t)a->v[P_TASKS];
    size_t lanes = mode == ENGINE_THREADS || mode == ENGINE_PROCESSES ||
                           mode == ENGINE_SPAWN
                       ? engine_lanes(app->engine, mode, n)
                       : 1;
    size_t cores = a->cores ? a->cores : (size_t)app->cores;
    if (lanes > n)
        lanes = n;
    if (lanes > cores)
        lanes = cores;
    double spawn = mode == ENGINE_SPAWN ? DEMO_SPAWN_MS * (double)n : 0;
    return ms / (double)(lanes ? lanes : 1) +
           spawn / (double)(lanes ? lanes : 1);
}

static const struct engine_work work = {
    .compute = compute,
    .job = job,
    .absorb = absorb,
};

static const enum engine_mode modes[] = {ENGINE_SEQUENTIAL, ENGINE_THREADS,
                                         ENGINE_PROCESSES, ENGINE_GIL,
                                         ENGINE_SPAWN};
static const char *const outcome[] = {"checked", "primes", NULL};

const struct demo demo_prime = {
    .name = "prime",
    .label = "CPU",
    .summary = "CPU-bound demo: count primes by trial division",
    .lesson = "Counts the primes below limit by trial division: pure "
              "computation that keeps a core busy. Look for: sequential is "
              "a staircase on one lane; threads and processes put the tasks "
              "side by side and finish in about 1/cores of the time (tasks "
              "beyond the number of cores just share them); gil makes the "
              "threads take turns on one lock, so the solid slivers "
              "alternate between lanes and the wall time is no better than "
              "sequential's; spawn starts a fresh process per task, and its "
              "start-up shows as a hatched segment before the work. The "
              "solid part of each bar is its time on a CPU (cpu_ms); try "
              "cores=1: threads then take turns on one core and gain "
              "nothing.",
    .params = params,
    .n_params = sizeof(params) / sizeof(params[0]),
    .modes = modes,
    .n_modes = sizeof(modes) / sizeof(modes[0]),
    .default_mode = ENGINE_PROCESSES,
    .outcome = outcome,
    .shrink = "limit",
    .n_tasks = n_tasks,
    .bytes_per_task =
        sizeof(struct prime_span) + sizeof(struct job_prime_result),
    .estimate_ms = estimate_ms,
    .prepare = prepare,
    .free_state = free_state,
    .work = &work,
    .write_result = write_result,
    .write_task = write_task,
    .worker_job = worker_job,
    .progress = progress,
    .progress_name = "checked",
};
