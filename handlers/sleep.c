/*
 * sleep: /run/sleep, the waiting demo. tasks tasks each wait ms
 * milliseconds; waiting overlaps in every concurrent mode, capped by the
 * size of the pool that runs it (the model the result states): the event
 * loop (one timer each), the demo threads (gil ones give the lock up while
 * they sleep), the worker processes (in slices of ENGINE_SLICE_NS, so that
 * a long sleep never holds a worker from other clients for long), or one
 * thread in sequence.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../server/app.h"
#include "../server/clock.h"
#include "../server/container.h"
#include "../server/job.h"
#include "../server/loop.h"
#include "demo.h"

extern const struct demo demo_sleep;

#define MS_MAX              10000
#define TASKS_MAX_ASYNC     10000
#define TASKS_MAX           1000
#define TASKS_MAX_SPAWN     100 /* a process each: ~10 ms of start-up */
#define NAP_NS              (20u * 1000u * 1000u) /* deadline checks while asleep */
#define WORKER_SLEEP_MAX_MS 600000 /* what a worker accepts in one job */
#define SLICE_MS            (ENGINE_SLICE_NS / 1000000u)

struct sleep_timer {
    struct loop_timer timer;
    struct engine_run *run;
    size_t task;
};

struct sleep_state {
    uint64_t ms;
    size_t n;
    struct loop *loop;
    struct sleep_timer *timers; /* async mode: one per task */
};

enum { P_TASKS, P_MS };

static const struct demo_param params[] = {
    [P_TASKS] = {.name = "tasks",
                 .type = DEMO_INT,
                 .min = 1,
                 .max = TASKS_MAX_ASYNC,
                 .mode_max = {[ENGINE_SEQUENTIAL] = TASKS_MAX,
                              [ENGINE_THREADS] = TASKS_MAX,
                              [ENGINE_PROCESSES] = TASKS_MAX,
                              [ENGINE_GIL] = TASKS_MAX,
                              [ENGINE_SPAWN] = TASKS_MAX_SPAWN},
                 .def = 3,
                 .form_value = 6,
                 .doc = "Tasks that each wait `ms` milliseconds. 1 .. "
                        "10,000 in `async` mode, 1 .. 100 in `spawn` (a "
                        "process each), 1 .. 1,000 in every other mode "
                        "(x-conlab-max-by-mode)."},
    [P_MS] = {.name = "ms",
              .type = DEMO_INT,
              .min = 0,
              .max = MS_MAX,
              .def = 2000,
              .form_value = 300,
              .scales_time = true,
              .doc = "How long each task waits, in milliseconds."},
};

static size_t n_tasks(const struct demo_args *a)
{
    return (size_t)a->v[P_TASKS];
}

static void cost(const struct demo_args *a, enum engine_mode mode, size_t n,
                 const struct app *app, struct budget_cost *c)
{
    (void)a;
    (void)app;
    if (mode == ENGINE_ASYNC) {
        c->amount[BUDGET_TIMERS] += n;
        c->amount[BUDGET_BYTES] += n * sizeof(struct sleep_timer);
    }
}

static void free_state(void *arg)
{
    struct sleep_state *st = arg;
    free(st->timers);
    free(st);
}

static void *prepare(const struct demo_args *a, enum engine_mode mode,
                     const struct demo_env *env)
{
    struct sleep_state *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->ms = (uint64_t)a->v[P_MS];
    st->n = (size_t)a->v[P_TASKS];
    st->loop = env->app->loop;
    if (mode == ENGINE_ASYNC) {
        st->timers = calloc(st->n, sizeof(st->timers[0]));
        if (!st->timers) {
            free(st);
            return NULL;
        }
    }
    return st;
}

static int compute(struct engine_ctx *ctx, void *arg, size_t task)
{
    struct sleep_state *st = arg;
    uint64_t until = clock_now_ns() + st->ms * 1000000u;
    int rc = 0;
    (void)task;

    engine_blocking_begin(ctx);
    for (uint64_t now = clock_now_ns(); now < until && rc == 0;
         now = clock_now_ns()) {
        uint64_t nap = until - now < NAP_NS ? until - now : NAP_NS;
        struct timespec ts = {0, (long)nap};
        nanosleep(&ts, NULL);
        rc = engine_check(ctx);
    }
    engine_blocking_end(ctx);
    return rc;
}

/* Loop thread: a task's timer fired, or was removed, or the loop stops. */
static void on_timer(struct loop_timer *t, int status)
{
    struct sleep_timer *st = container_of(t, struct sleep_timer, timer);
    if (status == -ECANCELED)
        status = engine_run_check(st->run);
    engine_task_end(st->run, st->task, status, status == 0 ? t->fired_ns : 0,
                    NULL);
}

static int start_async(struct engine_run *run, void *arg)
{
    struct sleep_state *st = arg;
    struct loop_timer **timers = malloc(st->n * sizeof(*timers));
    if (!timers)
        return -ENOMEM;
    uint64_t due = clock_now_ns() + st->ms * 1000000u;
    for (size_t i = 0; i < st->n; i++) {
        st->timers[i].run = run;
        st->timers[i].task = i;
        st->timers[i].timer.due_ns = due;
        st->timers[i].timer.fire = on_timer;
        timers[i] = &st->timers[i].timer;
    }
    int rc = loop_add_timers(st->loop, timers, st->n);
    free(timers);
    return rc;
}

/* Loop thread: removing a timer ends its task with -ECANCELED. */
static void cancel_async(struct engine_run *run, void *arg)
{
    struct sleep_state *st = arg;
    (void)run;
    for (size_t i = 0; i < st->n; i++)
        loop_timer_remove(st->loop, &st->timers[i].timer);
}

static int job(void *arg, size_t task, unsigned slice, struct engine_job *out)
{
    struct sleep_state *st = arg;
    uint64_t done = (uint64_t)slice * SLICE_MS;
    struct job_sleep j = {.ms = st->ms - done < SLICE_MS ? st->ms - done
                                                         : SLICE_MS};
    (void)task;
    out->kind = demo_kind(&demo_sleep);
    memcpy(out->buf, &j, sizeof(j));
    out->params = out->buf;
    out->len = sizeof(j);
    out->last = done + j.ms >= st->ms;
    return 0;
}

static int absorb(void *arg, size_t task, unsigned slice, const void *result,
                  uint32_t len)
{
    (void)arg;
    (void)task;
    (void)slice;
    (void)result;
    return len == 0 ? 0 : -EPROTO;
}

static int worker_job(const void *in, uint32_t len, void *out, uint32_t cap,
                      uint32_t *out_len)
{
    struct job_sleep j;
    (void)out;
    (void)cap;
    *out_len = 0;
    if (len != sizeof(j))
        return -EINVAL;
    memcpy(&j, in, sizeof(j));
    if (j.ms > WORKER_SLEEP_MAX_MS)
        return -EINVAL;
    struct timespec ts = {(time_t)(j.ms / 1000),
                          (long)(j.ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return 0;
}

/* The wall time the mode's model predicts: waves of pool-size tasks. */
static void write_result(struct jsonw *w, void *arg,
                         const struct engine_run *run)
{
    struct sleep_state *st = arg;
    size_t lanes =
        engine_lanes(engine_run_engine(run), engine_run_mode(run), st->n);
    size_t waves = (st->n + lanes - 1) / lanes;
    jsonw_key(w, "slept_ms");
    jsonw_uint(w, st->ms);
    jsonw_key(w, "lanes");
    jsonw_uint(w, lanes);
    jsonw_key(w, "waves");
    jsonw_uint(w, waves);
    jsonw_key(w, "model_ms");
    jsonw_uint(w, waves * st->ms);
}

static double estimate_ms(const struct demo_args *a, enum engine_mode mode,
                          const struct app *app)
{
    size_t n = (size_t)a->v[P_TASKS];
    size_t lanes = engine_lanes(app->engine, mode, n);
    double waves = (double)((n + lanes - 1) / lanes);
    return waves *
           ((double)a->v[P_MS] + (mode == ENGINE_SPAWN ? DEMO_SPAWN_MS : 0));
}

static const struct engine_work work = {
    .compute = compute,
    .job = job,
    .absorb = absorb,
    .start_async = start_async,
    .cancel_async = cancel_async,
};

static const enum engine_mode modes[] = {ENGINE_SEQUENTIAL, ENGINE_THREADS,
                                         ENGINE_PROCESSES,  ENGINE_GIL,
                                         ENGINE_ASYNC,      ENGINE_SPAWN};
static const char *const outcome[] = {"slept_ms", NULL};

const struct demo demo_sleep = {
    .name = "sleep",
    .label = "wait",
    .summary = "Waiting demo: tasks that each wait ms milliseconds",
    .lesson = "Each task just waits ms milliseconds: no computing at all. "
              "Look for: every concurrent mode overlaps the waits, so the "
              "wall time is about ms x the number of waves, and a wave is "
              "as wide as the pool that runs it: the demo threads, one "
              "process per worker, any number of timers on the event loop. "
              "async puts every task on the single loop lane, all waiting "
              "at once (try 10,000); gil overlaps too, because a sleeping "
              "thread gives the lock away; spawn starts a process per task "
              "(its start-up is the hatched head of the bar). Every bar "
              "stays pale: a waiting task uses about 0 ms of CPU, and "
              "with cores=1 the waits still overlap.",
    .params = params,
    .n_params = sizeof(params) / sizeof(params[0]),
    .modes = modes,
    .n_modes = sizeof(modes) / sizeof(modes[0]),
    .default_mode = ENGINE_ASYNC,
    .outcome = outcome,
    .shrink = "tasks or ms",
    .n_tasks = n_tasks,
    .cost = cost,
    .bytes_per_task = 0,
    .estimate_ms = estimate_ms,
    .prepare = prepare,
    .free_state = free_state,
    .work = &work,
    .write_result = write_result,
    .worker_job = worker_job,
};
