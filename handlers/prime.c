/*
 * prime: GET /run/prime, the CPU-bound demo. Counts the primes in
 * [1, limit) by trial division, split into block-cyclic tasks (prime.h) so
 * that every task costs about the same, in any of the run modes.
 */
#include <errno.h>
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

enum handler_result prime_handle(struct request *req, struct response *resp,
                                 void *ctx)
{
    struct app *app = ctx;
    struct params p;
    int64_t limit, tasks;
    int mode;

    if (params_parse(&p, req->query) < 0 ||
        params_int(&p, "limit", LIMIT_MIN, LIMIT_MAX, LIMIT_DEFAULT, &limit) <
            0 ||
        params_int(&p, "tasks", 1, TASKS_MAX, app->cfg->workers, &tasks) < 0 ||
        params_enum(&p, "mode", run_mode_names, RUN_GIL + 1, RUN_PROCESSES,
                    &mode) < 0 ||
        params_finish(&p) < 0) {
        return handlers_reject_params(&p, resp);
    }
    params_cleanup(&p);

    struct prime_state *st = calloc(1, sizeof(*st));
    json_t *echo = json_pack("{s:I, s:I}", "limit", (json_int_t)limit, "tasks",
                             (json_int_t)tasks);
    if (!st || !echo) {
        free(st);
        json_decref(echo);
        response_error(resp, 500, "out of memory");
        return HANDLER_DONE;
    }
    st->n = (size_t)tasks;
    prime_split((uint64_t)limit, (unsigned)tasks, st->spans);

    struct run *run = run_new(app, req, "prime", (enum run_mode)mode, echo,
                              &prime_ops, st, (size_t)tasks);
    return run_start(run, resp);
}
