/*
 * square: GET /run/square, the tutorials' pool map: the squares of a list
 * of integers, in input order, computed in contiguous batches (one task,
 * one job each: a pool round trip per number would cost more than the
 * multiplication).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../server/job.h"
#include "../server/params.h"
#include "handlers.h"
#include "run.h"

#define NUMBER_MAX  3037000499LL /* its square still fits in int64 */
#define TASKS_MAX   256
#define YIELD_EVERY 1024

struct square_state {
    size_t count;
    int64_t *numbers; /* owned */
    int64_t *squares; /* owned */
    size_t from[TASKS_MAX], to[TASKS_MAX];
};

static void free_state(void *arg)
{
    struct square_state *st = arg;
    free(st->numbers);
    free(st->squares);
    free(st);
}

static int compute(struct run *run, struct run_task *task, prime_yield_fn yield,
                   void *yield_arg)
{
    struct square_state *st = run->state;
    for (size_t i = st->from[task->id]; i < st->to[task->id]; i++) {
        st->squares[i] = st->numbers[i] * st->numbers[i];
        if ((i + 1) % YIELD_EVERY == 0) {
            int rc = yield(yield_arg);
            if (rc < 0)
                return rc;
        }
    }
    return yield(yield_arg);
}

static void job(struct run *run, struct run_task *task, uint32_t *kind,
                const void **params, uint32_t *len)
{
    struct square_state *st = run->state;
    size_t from = st->from[task->id], to = st->to[task->id];
    *kind = JOB_SQUARE;
    *params = &st->numbers[from];
    *len = (uint32_t)((to - from) * sizeof(int64_t));
}

static int absorb(struct run *run, struct run_task *task, const void *result,
                  uint32_t len)
{
    struct square_state *st = run->state;
    size_t from = st->from[task->id], to = st->to[task->id];
    if (len != (to - from) * sizeof(int64_t))
        return -EINVAL;
    memcpy(&st->squares[from], result, len);
    return 0;
}

static void task_json(struct run *run, struct run_task *task, json_t *obj)
{
    struct square_state *st = run->state;
    json_object_set_new(obj, "items",
                        json_pack("{s:I, s:I}", "from",
                                  (json_int_t)st->from[task->id], "to",
                                  (json_int_t)st->to[task->id]));
}

static json_t *result_json(struct run *run)
{
    struct square_state *st = run->state;
    json_t *squares = json_array();
    for (size_t i = 0; i < st->count; i++)
        json_array_append_new(squares, json_integer(st->squares[i]));
    return json_pack("{s:o}", "squares", squares);
}

static const struct run_ops square_ops = {
    .compute = compute,
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
    int64_t *numbers = NULL;
    size_t count = 0;
    int64_t tasks;

    if (params_int_list(p, "numbers", -NUMBER_MAX, NUMBER_MAX, JOB_SQUARE_MAX,
                        "1,2,3,4", &numbers, &count) < 0 ||
        params_int(
            p, "tasks", 1, count < TASKS_MAX ? (int64_t)count : TASKS_MAX,
            app->cfg->workers < (int)count ? app->cfg->workers : (int64_t)count,
            &tasks) < 0 ||
        params_finish(p) < 0) {
        free(numbers);
        return NULL;
    }

    struct square_state *st = calloc(1, sizeof(*st));
    int64_t *squares = calloc(count, sizeof(int64_t));
    json_t *list = json_array();
    for (size_t i = 0; list && i < count; i++)
        json_array_append_new(list, json_integer(numbers[i]));
    json_t *echo = list ? json_pack("{s:o, s:I}", "numbers", list, "tasks",
                                    (json_int_t)tasks)
                        : NULL;
    if (!st || !squares || !echo) {
        free(st);
        free(squares);
        free(numbers);
        json_decref(echo);
        response_error(resp, 500, "out of memory");
        return NULL;
    }
    st->count = count;
    st->numbers = numbers;
    st->squares = squares;
    for (size_t i = 0; i < (size_t)tasks; i++) {
        st->from[i] = count * i / (size_t)tasks;
        st->to[i] = count * (i + 1) / (size_t)tasks;
    }

    struct run *run =
        run_new(app, req, "square", mode, echo, &square_ops, st, (size_t)tasks);
    if (!run)
        response_error(resp, 500, "out of memory");
    return run;
}

/* A multiplication per number: nothing worth budgeting. */
static double estimate_ms(const struct run *run)
{
    (void)run;
    return 0.0;
}

static const enum run_mode modes[] = {RUN_SEQUENTIAL, RUN_THREADS,
                                      RUN_PROCESSES};
static const char *const outcome[] = {"squares", NULL};

const struct demo demo_square = {
    .name = "square",
    .modes = modes,
    .n_modes = sizeof(modes) / sizeof(modes[0]),
    .default_mode = RUN_PROCESSES,
    .outcome = outcome,
    .shrink = "the numbers",
    .prepare = prepare,
    .estimate_ms = estimate_ms,
};

enum handler_result square_handle(struct request *req, struct response *resp,
                                  void *ctx)
{
    return run_handle(&demo_square, ctx, req, resp);
}
