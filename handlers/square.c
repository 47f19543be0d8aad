/*
 * square: /run/square, the tutorials' pool map: the squares of a list of
 * integers, in input order, computed in contiguous batches (one task
 * each; a pool round trip per number would cost more than the
 * multiplication). A batch goes to a worker as jobs of at most
 * SQUARE_JOB_MAX numbers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/app.h"
#include "../server/job.h"
#include "demo.h"

extern const struct demo demo_square;

#define NUMBER_MAX       3037000499LL /* its square still fits in int64 */
#define NUMBERS_MAX      10000        /* in a query (HTTP_URI_MAX bounds it) */
#define NUMBERS_MAX_BODY 1000000      /* in a JSON body (--body-max) */
#define TASKS_MAX        256
#define YIELD_EVERY      1024
#define SQUARE_JOB_MAX   (JOB_PAYLOAD_MAX / 8) /* numbers in one job */
/* Multiplications per ms on one core, roughly (with the copying). */
#define SQUARES_PER_MS 200000.0

struct square_state {
    size_t count, n;
    const int64_t *numbers; /* the request's list (demo_args outlive us) */
    int64_t *squares;
    size_t *from; /* task i squares [from[i], from[i + 1]) */
};

enum { P_NUMBERS, P_TASKS };

static const struct demo_param params[] = {
    [P_NUMBERS] = {.name = "numbers",
                   .type = DEMO_INT_LIST,
                   .min = -NUMBER_MAX,
                   .max = NUMBER_MAX,
                   .def_list = "1,2,3,4",
                   .form_list = "1,2,3,4,5,6,7,8",
                   .max_items = NUMBERS_MAX,
                   .max_items_body = NUMBERS_MAX_BODY,
                   .doc = "Comma list of 1 to 10,000 integers within "
                          "+-3,037,000,499 (the square fits in 64 bits); "
                          "the whole request target is at most 4 KiB (about "
                          "1,200 short numbers). In a POST body: a JSON "
                          "array of 1 to 1,000,000 integers."},
    [P_TASKS] = {.name = "tasks",
                 .type = DEMO_INT,
                 .min = 1,
                 .max = TASKS_MAX,
                 .def_from = DEMO_DEF_WORKERS,
                 .max_count_of = "numbers",
                 .form_value = 2,
                 .doc = "Contiguous batches the numbers are squared in (one "
                        "job each). At most the count of numbers: the "
                        "accepted range is [1, min(256, count)]. Default: "
                        "the number of worker processes (`--workers`), at "
                        "most the count."},
};

static size_t n_tasks(const struct demo_args *a)
{
    return (size_t)a->v[P_TASKS];
}

/*
 * Per number: the parsed list (8 bytes), its square (8) and the answer's
 * text, at most 12 bytes echoed in "params" and 20 in "squares". The
 * request body is charged apart while it is held (http.c), and freed
 * before this is admitted.
 */
static void cost(const struct demo_args *a, enum engine_mode mode, size_t n,
                 const struct app *app, struct budget_cost *c)
{
    (void)mode;
    (void)n;
    (void)app;
    c->amount[BUDGET_BYTES] += a->n[P_NUMBERS] * (8u + 8u + 12u + 20u);
}

static void free_state(void *arg)
{
    struct square_state *st = arg;
    free(st->squares);
    free(st->from);
    free(st);
}

static void *prepare(const struct demo_args *a, enum engine_mode mode,
                     const struct demo_env *env)
{
    (void)mode;
    (void)env;
    struct square_state *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->count = a->n[P_NUMBERS];
    st->n = (size_t)a->v[P_TASKS];
    /* Not copied: up to 8 MB, and the request's args outlive the run's
     * state (run.c frees the state first); every mode only reads them. */
    st->numbers = a->list[P_NUMBERS];
    st->squares = calloc(st->count, sizeof(int64_t));
    st->from = malloc((st->n + 1) * sizeof(size_t));
    if (!st->squares || !st->from) {
        free_state(st);
        return NULL;
    }
    for (size_t i = 0; i <= st->n; i++)
        st->from[i] = st->count * i / st->n;
    return st;
}

static int compute(struct engine_ctx *ctx, void *arg, size_t task)
{
    struct square_state *st = arg;
    for (size_t i = st->from[task]; i < st->from[task + 1]; i++) {
        st->squares[i] = st->numbers[i] * st->numbers[i];
        if ((i + 1) % YIELD_EVERY == 0) {
            int rc = engine_yield(ctx);
            if (rc < 0)
                return rc;
        }
    }
    return engine_yield(ctx);
}

static int job(void *arg, size_t task, unsigned slice, struct engine_job *out)
{
    struct square_state *st = arg;
    size_t from = st->from[task] + (size_t)slice * SQUARE_JOB_MAX;
    size_t to = st->from[task + 1];
    if (to > from + SQUARE_JOB_MAX)
        to = from + SQUARE_JOB_MAX;
    out->kind = demo_kind(&demo_square);
    out->params = &st->numbers[from];
    out->len = (uint32_t)((to - from) * sizeof(int64_t));
    out->last = to == st->from[task + 1];
    return 0;
}

static int absorb(void *arg, size_t task, unsigned slice, const void *result,
                  uint32_t len)
{
    struct square_state *st = arg;
    size_t from = st->from[task] + (size_t)slice * SQUARE_JOB_MAX;
    size_t to = st->from[task + 1];
    if (to > from + SQUARE_JOB_MAX)
        to = from + SQUARE_JOB_MAX;
    if (len != (to - from) * sizeof(int64_t))
        return -EPROTO;
    memcpy(&st->squares[from], result, len);
    return 0;
}

static int worker_job(const void *in, uint32_t len, void *out, uint32_t cap,
                      uint32_t *out_len)
{
    if (len % sizeof(int64_t) != 0 || len > SQUARE_JOB_MAX * 8u || cap < len)
        return -EINVAL;
    const uint8_t *src = in;
    uint8_t *dst = out;
    for (uint32_t off = 0; off < len; off += sizeof(int64_t)) {
        int64_t v;
        memcpy(&v, src + off, sizeof(v));
        if (v > NUMBER_MAX || v < -NUMBER_MAX)
            return -EINVAL; /* the square would overflow */
        v *= v;
        memcpy(dst + off, &v, sizeof(v));
    }
    *out_len = len;
    return 0;
}

static void write_task(struct jsonw *w, void *arg, size_t task)
{
    struct square_state *st = arg;
    jsonw_key(w, "items");
    jsonw_object(w);
    jsonw_key(w, "from");
    jsonw_uint(w, st->from[task]);
    jsonw_key(w, "to");
    jsonw_uint(w, st->from[task + 1]);
    jsonw_end(w);
}

static void write_result(struct jsonw *w, void *arg,
                         const struct engine_run *run)
{
    struct square_state *st = arg;
    (void)run;
    jsonw_key(w, "squares");
    jsonw_array(w);
    for (size_t i = 0; i < st->count; i++)
        jsonw_int(w, st->squares[i]);
    jsonw_end(w);
}

/* The multiplications, plus a pool round trip per job in processes. */
static double estimate_ms(const struct demo_args *a, enum engine_mode mode,
                          const struct app *app)
{
    (void)app;
    double ms = (double)a->n[P_NUMBERS] / SQUARES_PER_MS;
    if (mode == ENGINE_PROCESSES)
        ms += 0.1 * (double)a->v[P_TASKS];
    if (mode == ENGINE_SPAWN)
        ms += DEMO_SPAWN_MS * (double)a->v[P_TASKS];
    return ms;
}

static const struct engine_work work = {
    .compute = compute,
    .job = job,
    .absorb = absorb,
};

static const enum engine_mode modes[] = {ENGINE_SEQUENTIAL, ENGINE_THREADS,
                                         ENGINE_PROCESSES, ENGINE_SPAWN};
static const char *const outcome[] = {"squares", NULL};

const struct demo demo_square = {
    .name = "square",
    .label = "map",
    .summary = "A pool map: the squares of a list, in input order",
    .lesson = "A pool map: the list is cut into tasks contiguous batches, "
              "each batch is squared by one worker, and the squares come "
              "back in input order whichever mode ran them. Look for: the "
              "work is tiny, so the bars are mostly the cost of handing a "
              "batch to a thread or a process and getting it back: "
              "parallelism has a price, and here it is larger than the "
              "work (spawn adds a process start-up per batch).",
    .params = params,
    .n_params = sizeof(params) / sizeof(params[0]),
    .modes = modes,
    .n_modes = sizeof(modes) / sizeof(modes[0]),
    .default_mode = ENGINE_PROCESSES,
    .outcome = outcome,
    .shrink = "the numbers",
    .n_tasks = n_tasks,
    .cost = cost,
    .bytes_per_task = 2 * sizeof(size_t),
    .estimate_ms = estimate_ms,
    .prepare = prepare,
    .free_state = free_state,
    .work = &work,
    .write_result = write_result,
    .write_task = write_task,
    .worker_job = worker_job,
};
