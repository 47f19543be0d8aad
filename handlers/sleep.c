/*
 * sleep: GET /run/sleep, the waiting demo. tasks tasks each wait ms
 * milliseconds; waiting overlaps in every concurrent mode, capped by the
 * size of the pool that runs it (the model the result states): the event
 * loop (one timer each), the demo threads (gil ones give the lock up while
 * they sleep), the worker processes, or one thread in sequence.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../server/clock.h"
#include "../server/job.h"
#include "../server/loop.h"
#include "../server/params.h"
#include "handlers.h"
#include "run.h"

#define MS_MAX          10000
#define TASKS_MAX_ASYNC 10000
#define TASKS_MAX       1000
#define NAP_NS          (20u * 1000u * 1000u) /* deadline checks while sleeping */

struct sleep_timer {
    struct loop_timer timer;
    struct run_task *task;
};

struct sleep_state {
    struct job_sleep job;       /* the same for every task */
    struct sleep_timer *timers; /* async mode: one per task */
};

static void free_state(void *arg)
{
    struct sleep_state *st = arg;
    free(st->timers);
    free(st);
}

static int compute(struct run *run, struct run_task *task, prime_yield_fn yield,
                   void *yield_arg)
{
    struct sleep_state *st = run->state;
    uint64_t until = clock_now_ns() + st->job.ms * 1000000u;
    int rc = 0;
    (void)yield;
    (void)yield_arg;

    run_blocking_begin(task);
    for (uint64_t now = clock_now_ns(); now < until && rc == 0;
         now = clock_now_ns()) {
        uint64_t nap = until - now < NAP_NS ? until - now : NAP_NS;
        struct timespec ts = {0, (long)nap};
        nanosleep(&ts, NULL);
        rc = run_check(task);
    }
    run_blocking_end(task);
    return rc;
}

static void on_timer(struct loop_timer *t, int status)
{
    struct sleep_timer *st = (struct sleep_timer *)t;
    if (status != 0)
        snprintf(st->task->error, sizeof(st->task->error), "%s",
                 status == -ESHUTDOWN ? "the service is shutting down"
                                      : strerror(-status));
    run_task_done(st->task, status);
}

static int start_async(struct run *run)
{
    struct sleep_state *st = run->state;
    struct loop_timer **timers = malloc(run->n_tasks * sizeof(*timers));
    if (!timers)
        return -ENOMEM;
    uint64_t due = clock_now_ns() + st->job.ms * 1000000u;
    for (size_t i = 0; i < run->n_tasks; i++) {
        st->timers[i].task = &run->tasks[i];
        st->timers[i].timer.due_ns = due;
        st->timers[i].timer.fire = on_timer;
        timers[i] = &st->timers[i].timer;
    }
    int rc = loop_add_timers(run->app->loop, timers, run->n_tasks);
    free(timers);
    return rc;
}

static void job(struct run *run, struct run_task *task, uint32_t *kind,
                const void **params, uint32_t *len)
{
    struct sleep_state *st = run->state;
    (void)task;
    *kind = JOB_SLEEP;
    *params = &st->job;
    *len = sizeof(st->job);
}

static int absorb(struct run *run, struct run_task *task, const void *result,
                  uint32_t len)
{
    (void)run;
    (void)task;
    (void)result;
    return len == 0 ? 0 : -EINVAL;
}

static void task_json(struct run *run, struct run_task *task, json_t *obj)
{
    (void)run;
    (void)task;
    (void)obj;
}

/* How many tasks wait at once in the run's mode: the size of its pool. */
static uint64_t lanes_of(const struct run *run)
{
    const struct config *cfg = run->app->cfg;
    switch (run->mode) {
    case RUN_SEQUENTIAL:
        return 1;
    case RUN_THREADS:
    case RUN_GIL:
        return (uint64_t)cfg->demo_threads;
    case RUN_PROCESSES:
        return (uint64_t)cfg->workers;
    default:
        return run->n_tasks;
    }
}

/* The wall time the mode's model predicts: waves of pool-size tasks. */
static json_t *result_json(struct run *run)
{
    struct sleep_state *st = run->state;
    uint64_t lanes = lanes_of(run);
    uint64_t waves = (run->n_tasks + lanes - 1) / lanes;
    return json_pack("{s:I, s:I, s:I, s:I}", "slept_ms", (json_int_t)st->job.ms,
                     "lanes", (json_int_t)lanes, "waves", (json_int_t)waves,
                     "model_ms", (json_int_t)(waves * st->job.ms));
}

static double estimate_ms(const struct run *run)
{
    const struct sleep_state *st = run->state;
    uint64_t lanes = lanes_of(run);
    return (double)((run->n_tasks + lanes - 1) / lanes * st->job.ms);
}

static const struct run_ops sleep_ops = {
    .compute = compute,
    .start_async = start_async,
    .job = job,
    .absorb = absorb,
    .task_json = task_json,
    .result_json = result_json,
    .free_state = free_state,
};

static struct run *prepare(struct app *app, struct request *req,
                           struct params *p, enum run_mode mode,
                           struct response *resp)
{
    int64_t tasks, ms;

    if (params_int(p, "tasks", 1,
                   mode == RUN_ASYNC ? TASKS_MAX_ASYNC : TASKS_MAX, 3,
                   &tasks) < 0 ||
        params_int(p, "ms", 0, MS_MAX, 2000, &ms) < 0 || params_finish(p) < 0)
        return NULL;

    struct sleep_state *st = calloc(1, sizeof(*st));
    if (st && mode == RUN_ASYNC)
        st->timers = calloc((size_t)tasks, sizeof(st->timers[0]));
    json_t *echo = json_pack("{s:I, s:I}", "tasks", (json_int_t)tasks, "ms",
                             (json_int_t)ms);
    if (!st || (mode == RUN_ASYNC && !st->timers) || !echo) {
        if (st)
            free_state(st);
        json_decref(echo);
        response_error(resp, 500, "out of memory");
        return NULL;
    }
    st->job.ms = (uint64_t)ms;

    struct run *run =
        run_new(app, req, "sleep", mode, echo, &sleep_ops, st, (size_t)tasks);
    if (!run)
        response_error(resp, 500, "out of memory");
    return run;
}

static const enum run_mode modes[] = {RUN_SEQUENTIAL, RUN_THREADS,
                                      RUN_PROCESSES, RUN_GIL, RUN_ASYNC};
static const char *const outcome[] = {"slept_ms", NULL};

const struct demo demo_sleep = {
    .name = "sleep",
    .modes = modes,
    .n_modes = sizeof(modes) / sizeof(modes[0]),
    .default_mode = RUN_ASYNC,
    .outcome = outcome,
    .shrink = "tasks or ms",
    .prepare = prepare,
    .estimate_ms = estimate_ms,
};

enum handler_result sleep_handle(struct request *req, struct response *resp,
                                 void *ctx)
{
    return run_handle(&demo_sleep, ctx, req, resp);
}
