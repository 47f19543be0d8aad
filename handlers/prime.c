/*
 * prime: GET /run/prime, the CPU-bound demo. Counts the primes in
 * [1, limit) by trial division, split into block-cyclic tasks (prime.h) so
 * that every task costs about the same, in any of the run modes.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../server/job.h"
#include "../server/params.h"
#include "../server/pool.h"
#include "../server/prime.h"
#include "handlers.h"
#include "run.h"

#define LIMIT_MIN     2
#define LIMIT_MAX     50000000
#define LIMIT_DEFAULT 100000
#define TASKS_MAX     256

struct prime_state {
    size_t n;
    uint64_t limit;
    struct prime_span spans[TASKS_MAX];
    struct job_prime_result counts[TASKS_MAX];
};

static int compute(struct run *run, struct run_task *task, prime_yield_fn yield,
                   void *yield_arg)
{
    struct prime_state *st = run->state;
    struct job_prime_result *c = &st->counts[task->id];
    return prime_count(&st->spans[task->id], yield, yield_arg, &c->checked,
                       &c->primes);
}

static void job(struct run *run, struct run_task *task, uint32_t *kind,
                const void **params, uint32_t *len)
{
    struct prime_state *st = run->state;
    *kind = JOB_PRIME;
    *params = &st->spans[task->id];
    *len = sizeof(st->spans[0]);
}

static int absorb(struct run *run, struct run_task *task, const void *result,
                  uint32_t len)
{
    struct prime_state *st = run->state;
    if (len != sizeof(st->counts[0]))
        return -EINVAL;
    memcpy(&st->counts[task->id], result, len);
    return 0;
}

static void task_json(struct run *run, struct run_task *task, json_t *obj)
{
    struct prime_state *st = run->state;
    const struct prime_span *s = &st->spans[task->id];
    json_object_set_new(
        obj, "range",
        json_pack("{s:I, s:I, s:I, s:I}", "first", (json_int_t)s->first, "end",
                  (json_int_t)s->end, "block", (json_int_t)s->block, "stride",
                  (json_int_t)s->stride));
    json_object_set_new(obj, "checked",
                        json_integer((json_int_t)st->counts[task->id].checked));
    json_object_set_new(obj, "primes",
                        json_integer((json_int_t)st->counts[task->id].primes));
}

static json_t *result_json(struct run *run)
{
    struct prime_state *st = run->state;
    uint64_t checked = 0, primes = 0;
    for (size_t i = 0; i < st->n; i++) {
        checked += st->counts[i].checked;
        primes += st->counts[i].primes;
    }
    return json_pack("{s:I, s:I}", "checked", (json_int_t)checked, "primes",
                     (json_int_t)primes);
}

static const struct run_ops prime_ops = {
    .compute = compute,
    .job = job,
    .absorb = absorb,
    .task_json = task_json,
    .result_json = result_json,
    .free_state = free,
};

static struct run *prepare(struct app *app, struct request *req,
                           struct params *p, enum run_mode mode,
                           struct response *resp)
{
    int64_t limit, tasks;

    if (params_int(p, "limit", LIMIT_MIN, LIMIT_MAX, LIMIT_DEFAULT, &limit) <
            0 ||
        params_int(p, "tasks", 1, TASKS_MAX, app->cfg->workers, &tasks) < 0 ||
        params_finish(p) < 0)
        return NULL;

    struct prime_state *st = calloc(1, sizeof(*st));
    json_t *echo = json_pack("{s:I, s:I}", "limit", (json_int_t)limit, "tasks",
                             (json_int_t)tasks);
    if (!st || !echo) {
        free(st);
        json_decref(echo);
        response_error(resp, 500, "out of memory");
        return NULL;
    }
    st->n = (size_t)tasks;
    st->limit = (uint64_t)limit;
    prime_split((uint64_t)limit, (unsigned)tasks, st->spans);

    struct run *run =
        run_new(app, req, "prime", mode, echo, &prime_ops, st, (size_t)tasks);
    if (!run)
        response_error(resp, 500, "out of memory");
    return run;
}

/*
 * Trial division of every n below limit costs about limit^1.5 divisions
 * (primes dominate): REF_MS on one core of the development VM for REF_LIMIT.
 * Threads and processes divide it by the lanes that can run at once.
 */
#define REF_LIMIT 1e7
#define REF_MS    1600.0

static double estimate_ms(const struct run *run)
{
    const struct prime_state *st = run->state;
    const struct app *app = run->app;
    double ms = REF_MS * pow((double)st->limit / REF_LIMIT, 1.5);
    size_t lanes = 1;
    if (run->mode == RUN_THREADS)
        lanes = (size_t)app->cfg->demo_threads;
    else if (run->mode == RUN_PROCESSES)
        lanes = (size_t)app->cfg->workers;
    if (lanes > st->n)
        lanes = st->n;
    if (lanes > (size_t)app->cores)
        lanes = (size_t)app->cores;
    return ms / (double)(lanes ? lanes : 1);
}

static const enum run_mode modes[] = {RUN_SEQUENTIAL, RUN_THREADS,
                                      RUN_PROCESSES, RUN_GIL};
static const char *const outcome[] = {"checked", "primes", NULL};

const struct demo demo_prime = {
    .name = "prime",
    .modes = modes,
    .n_modes = sizeof(modes) / sizeof(modes[0]),
    .default_mode = RUN_PROCESSES,
    .outcome = outcome,
    .shrink = "limit",
    .prepare = prepare,
    .estimate_ms = estimate_ms,
};

enum handler_result prime_handle(struct request *req, struct response *resp,
                                 void *ctx)
{
    return run_handle(&demo_prime, ctx, req, resp);
}
