/*
 * work: /run/work, mixed work, the realistic case. Each of tasks tasks
 * lasts about ms milliseconds, io_ratio of it waiting (a real sleep) and
 * the rest computing (a real CPU loop), in WORK_ROUNDS rounds of "compute,
 * then wait", so that the crossover between the models shows as io_ratio
 * moves: with the GIL, threads gain only on the waiting share; processes
 * gain on the computing share up to the cores; async gains on waiting, but
 * a computing coroutine blocks its loop and the others' wake-ups come late
 * (the stall, reported per task).
 *
 * Computing is counted in units, not in time: one unit is a fixed run of
 * xorshift steps, and a task's share of computing is a number of units
 * fixed before it runs (its milliseconds times the units one core does per
 * millisecond, measured once at first use: the best of a few short
 * trials). So a gil thread that loses the lock does the same work later,
 * not less work, and the answer's outcome (the units done and a checksum
 * of the xorshift states) is the same in every mode and never depends on
 * timing. The clock is read between units (engine_yield): deadlines, the
 * client leaving, and the GIL's switch interval.
 *
 * variance: task i lasts ms * (1 + variance * u_i), u_i in [-1, 1] from
 * splitmix64(seed + i), so one seed gives the same durations in every mode
 * and every run (and the same estimate to /run/compare).
 *
 * Modes:
 *   sequential, threads, gil  compute() on a demo thread; waiting releases
 *                             the GIL (engine_blocking_begin/end) and
 *                             retaking it after a wait may come late too;
 *   processes                 one worker job per phase of a round, a long
 *                             phase cut into slices of ENGINE_SLICE_NS;
 *   async                     the run's own loop: the service's event loop
 *                             must never compute (it serves every other
 *                             client's timers and transfers), so a demo
 *                             thread runs this run's coroutines, one
 *                             scheduler per run. Why not a loop_new() of
 *                             loop.c: that loop owns a thread and a curl
 *                             multi handle per instance and its callbacks
 *                             must not block, while here blocking is the
 *                             lesson. The scheduler is small: coroutines
 *                             are state machines (round, phase); it runs
 *                             the ready one with the earliest wake-up
 *                             (ties: the lower task, asyncio's FIFO), each
 *                             compute phase to its end without a switch,
 *                             as a coroutine without an await does; with
 *                             none ready it sleeps until the next is due.
 *
 * Every task reports its phases ("computing", "waiting" with the time its
 * wait was due and the time it went on) relative to its start, and
 * stall_ms: how much later than due its waits ended, in every mode (the
 * loop stall in async, the lock queue in gil, about 0 elsewhere).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../server/app.h"
#include "../server/clock.h"
#include "../server/container.h"
#include "../server/tpool.h"
#include "demo.h"

extern const struct demo demo_work;

#define WORK_ROUNDS         4
#define TASKS_MAX           64
#define MS_MAX              10000
#define UNIT_STEPS          2048 /* xorshift steps of one unit (a few µs) */
#define YIELD_EVERY         4    /* units between clock checks */
#define NAP_NS              (20u * 1000u * 1000u) /* deadline checks asleep */
#define WORKER_UNITS_MAX    (1ull << 32)
#define WORKER_SLEEP_MAX_NS (600ull * 1000000000ull)
#define CALIBRATE_UNITS     200
#define CALIBRATE_TRIES     5

enum work_op { WORK_OP_COMPUTE = 1, WORK_OP_SLEEP = 2 };

/* A worker job: one piece of one phase. */
struct work_job {
    uint32_t op;
    uint32_t pad;
    uint64_t amount; /* units, or ns of sleep */
    uint64_t x;      /* the xorshift state to go on from */
};

struct work_job_result {
    uint64_t x;
    uint64_t start_ns, end_ns; /* CLOCK_MONOTONIC: one clock per machine */
};

/* One task: its plan, what it did, and the cursor of its run. */
struct work_task {
    /* plan */
    double ms, compute_ms, wait_ms;
    uint64_t units;                    /* in all */
    uint64_t round_units[WORK_ROUNDS]; /* per round */
    uint64_t wait_ns;                  /* per round */
    /* outcome */
    uint64_t x;
    uint64_t done_units;
    /* phases: [start, end] of computing; [start, due, resumed] of waiting */
    uint64_t comp[WORK_ROUNDS][2];
    uint64_t wait[WORK_ROUNDS][3];
    /* processes: the piece in flight; async: the coroutine's state */
    unsigned round;
    bool in_wait; /* the phase of round: computing, else waiting */
    uint64_t phase_done;
    unsigned piece_round;
    uint64_t piece_amount;
    bool piece_wait, piece_first, piece_last;
    uint64_t due_ns; /* async: when its wait ends */
    bool finished;
};

struct work_sched {
    struct tpool_task tt;
    struct engine_run *run;
};

struct work_state {
    size_t n;
    struct work_task *t;
    double units_per_ms;
    uint64_t slice_units; /* processes: units in one slice */
    struct tpool *tpool;
    struct work_sched sched;
    const struct engine_run *run; /* set by write_result, for write_task */
};

enum { P_TASKS, P_MS, P_IO_RATIO, P_VARIANCE, P_SEED };

static const struct demo_param params[] = {
    [P_TASKS] = {.name = "tasks",
                 .type = DEMO_INT,
                 .min = 1,
                 .max = TASKS_MAX,
                 .def = 4,
                 .doc = "Tasks, each computing and waiting in turn."},
    [P_MS] = {.name = "ms",
              .type = DEMO_INT,
              .min = 1,
              .max = MS_MAX,
              .def = 400,
              .form_value = 300,
              .scales_time = true,
              .doc = "How long each task lasts alone, in milliseconds: "
                     "computing and waiting together."},
    [P_IO_RATIO] = {.name = "io_ratio",
                    .type = DEMO_REAL,
                    .rmin = 0,
                    .rmax = 1,
                    .rdef = 0.5,
                    .doc = "The waiting share of each task, 0 .. 1: 0 "
                           "computes only, 1 only waits."},
    [P_VARIANCE] = {.name = "variance",
                    .type = DEMO_REAL,
                    .rmin = 0,
                    .rmax = 1,
                    .rdef = 0,
                    .doc = "Durations vary by up to this share either way: "
                           "task i lasts ms x (1 + variance x u), u in "
                           "[-1, 1] drawn from `seed` and i (the same in "
                           "every mode and every run)."},
    [P_SEED] = {.name = "seed",
                .type = DEMO_INT,
                .min = 0,
                .max = 2147483647,
                .def = 1,
                .doc = "Seeds the durations (variance) and the computed "
                       "values (checksum)."},
};

/* ---- the computing ---- */

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* One unit of work: UNIT_STEPS xorshift64 steps (x never becomes 0). */
static uint64_t work_unit(uint64_t x)
{
    for (int i = 0; i < UNIT_STEPS; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

static double units_per_ms;
static pthread_once_t calibrated = PTHREAD_ONCE_INIT;

/* The units one core does per millisecond: the best of a few trials, so
 * that a trial another process interrupted does not count. */
static void calibrate(void)
{
    uint64_t x = 1, best = UINT64_MAX;
    for (int k = 0; k < CALIBRATE_TRIES; k++) {
        uint64_t t0 = clock_now_ns();
        for (int u = 0; u < CALIBRATE_UNITS; u++)
            x = work_unit(x);
        uint64_t took = clock_now_ns() - t0;
        if (took < best)
            best = took;
    }
    units_per_ms = (double)CALIBRATE_UNITS * 1e6 / (double)(best ? best : 1);
    if (x == 0) /* never: keeps the loop from being optimised away */
        units_per_ms = 1;
}

/* Task i's share of ms, from the seed (see the header). */
static double task_ms(const struct demo_args *a, size_t i)
{
    uint64_t r = splitmix64((uint64_t)a->v[P_SEED] * 0x100000001b3ull + i);
    double u = (double)(r >> 11) / 9007199254740992.0 * 2.0 - 1.0;
    double ms = (double)a->v[P_MS] * (1.0 + a->r[P_VARIANCE] * u);
    return ms > 0 ? ms : 0;
}

static size_t n_tasks(const struct demo_args *a)
{
    return (size_t)a->v[P_TASKS];
}

static void cost(const struct demo_args *a, enum engine_mode mode, size_t n,
                 const struct app *app, struct budget_cost *c)
{
    (void)a;
    (void)n;
    (void)app;
    if (mode == ENGINE_ASYNC)
        c->amount[BUDGET_QUEUE] += 1; /* the scheduler's demo thread */
}

static void free_state(void *arg)
{
    struct work_state *st = arg;
    free(st->t);
    free(st);
}

static void *prepare(const struct demo_args *a, enum engine_mode mode,
                     const struct demo_env *env)
{
    (void)mode;
    pthread_once(&calibrated, calibrate);
    struct work_state *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->n = (size_t)a->v[P_TASKS];
    st->t = calloc(st->n, sizeof(st->t[0]));
    if (!st->t) {
        free(st);
        return NULL;
    }
    st->units_per_ms = units_per_ms;
    st->slice_units =
        (uint64_t)(units_per_ms * (double)(ENGINE_SLICE_NS / 1000000u));
    if (st->slice_units < 1)
        st->slice_units = 1;
    st->tpool = env->app->tpool;
    double io = a->r[P_IO_RATIO];
    for (size_t i = 0; i < st->n; i++) {
        struct work_task *t = &st->t[i];
        t->ms = task_ms(a, i);
        t->compute_ms = t->ms * (1.0 - io);
        t->wait_ms = t->ms * io;
        t->units = (uint64_t)llround(t->compute_ms * units_per_ms);
        for (unsigned r = 0; r < WORK_ROUNDS; r++)
            t->round_units[r] =
                t->units / WORK_ROUNDS + (r < t->units % WORK_ROUNDS ? 1 : 0);
        t->wait_ns = (uint64_t)llround(t->wait_ms * 1e6 / WORK_ROUNDS);
        t->x = splitmix64((uint64_t)a->v[P_SEED] ^ ((uint64_t)i << 32)) | 1;
    }
    return st;
}

/* Units of round r, yielding between them; 0 or why it stopped. */
static int compute_units(struct engine_ctx *ctx, struct work_task *t,
                         uint64_t units)
{
    for (uint64_t u = 0; u < units; u++) {
        t->x = work_unit(t->x);
        t->done_units++;
        if (u % YIELD_EVERY == YIELD_EVERY - 1) {
            int rc = ctx ? engine_yield(ctx) : 0;
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* Sleeps until due_ns in naps, checking the deadline. */
static int sleep_until(struct engine_ctx *ctx, uint64_t due_ns)
{
    int rc = 0;
    for (uint64_t now = clock_now_ns(); now < due_ns && rc == 0;
         now = clock_now_ns()) {
        uint64_t nap = due_ns - now < NAP_NS ? due_ns - now : NAP_NS;
        struct timespec ts = {0, (long)nap};
        nanosleep(&ts, NULL);
        rc = engine_check(ctx);
    }
    return rc;
}

/* sequential, threads, gil: the rounds on this demo thread. */
static int compute(struct engine_ctx *ctx, void *arg, size_t task)
{
    struct work_state *st = arg;
    struct work_task *t = &st->t[task];
    int rc = 0;
    for (unsigned r = 0; r < WORK_ROUNDS && rc == 0; r++) {
        if (t->round_units[r]) {
            t->comp[r][0] = clock_now_ns();
            rc = compute_units(ctx, t, t->round_units[r]);
            t->comp[r][1] = clock_now_ns();
        }
        if (rc == 0 && t->wait_ns) {
            uint64_t start = clock_now_ns();
            t->wait[r][0] = start;
            t->wait[r][1] = start + t->wait_ns;
            engine_blocking_begin(ctx);
            rc = sleep_until(ctx, t->wait[r][1]);
            engine_blocking_end(ctx); /* gil: back in the lock's queue */
            t->wait[r][2] = clock_now_ns();
        }
    }
    return rc;
}

/* ---- processes: one job per piece of a phase ---- */

/* Skips the cursor past empty phases; false at the task's end. */
static bool settle_cursor(struct work_task *t)
{
    while (t->round < WORK_ROUNDS) {
        uint64_t size = t->in_wait ? t->wait_ns : t->round_units[t->round];
        if (t->phase_done < size)
            return true;
        t->phase_done = 0;
        if (t->in_wait) {
            t->in_wait = false;
            t->round++;
        } else {
            t->in_wait = true;
        }
    }
    return false;
}

static int job(void *arg, size_t task, unsigned slice, struct engine_job *out)
{
    struct work_state *st = arg;
    struct work_task *t = &st->t[task];
    struct work_job j = {.x = t->x};
    if (slice == 0) {
        t->round = 0;
        t->in_wait = false;
        t->phase_done = 0;
    }
    if (!settle_cursor(t)) {
        /* Nothing to do at all (variance made it 0 ms): one empty job. */
        j.op = WORK_OP_COMPUTE;
        t->piece_round = WORK_ROUNDS;
        out->last = true;
    } else {
        uint64_t size = t->in_wait ? t->wait_ns : t->round_units[t->round];
        uint64_t cap = t->in_wait ? ENGINE_SLICE_NS : st->slice_units;
        uint64_t left = size - t->phase_done;
        j.op = t->in_wait ? WORK_OP_SLEEP : WORK_OP_COMPUTE;
        j.amount = left < cap ? left : cap;
        t->piece_round = t->round;
        t->piece_wait = t->in_wait;
        t->piece_first = t->phase_done == 0;
        t->piece_amount = j.amount;
        t->phase_done += j.amount;
        out->last = !settle_cursor(t);
    }
    t->piece_last = out->last;
    out->kind = demo_kind(&demo_work);
    memcpy(out->buf, &j, sizeof(j));
    out->params = out->buf;
    out->len = sizeof(j);
    return 0;
}

/* The wait before a computing piece (or the task's end) is over at at. */
static void resume_waits(struct work_task *t, unsigned round, uint64_t at)
{
    for (unsigned r = 0; r < round && r < WORK_ROUNDS; r++) {
        if (t->wait[r][0] && !t->wait[r][2])
            t->wait[r][2] = at;
    }
}

static int absorb(void *arg, size_t task, unsigned slice, const void *result,
                  uint32_t len)
{
    struct work_state *st = arg;
    struct work_task *t = &st->t[task];
    struct work_job_result res;
    if (len != sizeof(res))
        return -EPROTO;
    memcpy(&res, result, sizeof(res));
    if (slice == 0)
        t->done_units = 0;
    t->x = res.x;
    unsigned r = t->piece_round;
    if (r >= WORK_ROUNDS)
        return 0;
    resume_waits(t, r, res.start_ns);
    if (t->piece_wait) {
        if (t->piece_first) {
            t->wait[r][0] = res.start_ns;
            t->wait[r][1] = res.start_ns + t->wait_ns;
        }
        if (t->piece_last)
            t->wait[r][2] = res.end_ns;
    } else {
        if (t->piece_first)
            t->comp[r][0] = res.start_ns;
        t->comp[r][1] = res.end_ns;
        t->done_units += t->piece_amount;
    }
    return 0;
}

static int worker_job(const void *in, uint32_t len, void *out, uint32_t cap,
                      uint32_t *out_len)
{
    struct work_job j;
    struct work_job_result res;
    *out_len = 0;
    if (len != sizeof(j) || cap < sizeof(res))
        return -EINVAL;
    memcpy(&j, in, sizeof(j));
    if ((j.op != WORK_OP_COMPUTE && j.op != WORK_OP_SLEEP) ||
        (j.op == WORK_OP_COMPUTE && j.amount > WORKER_UNITS_MAX) ||
        (j.op == WORK_OP_SLEEP && j.amount > WORKER_SLEEP_MAX_NS))
        return -EINVAL;
    res.start_ns = clock_now_ns();
    res.x = j.x;
    if (j.op == WORK_OP_COMPUTE) {
        for (uint64_t u = 0; u < j.amount; u++)
            res.x = work_unit(res.x);
    } else {
        struct timespec ts = {(time_t)(j.amount / 1000000000u),
                              (long)(j.amount % 1000000000u)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    res.end_ns = clock_now_ns();
    memcpy(out, &res, sizeof(res));
    *out_len = sizeof(res);
    return 0;
}

/* ---- async: the run's own loop on a demo thread ---- */

/*
 * One step of a coroutine that is ready: it goes on from its wait (late
 * if the loop was busy when it came due), computes its round to the end,
 * and awaits its next wait, or finishes. Returns 0 or why it stopped.
 */
static int coro_step(struct engine_ctx *ctx, struct work_task *t)
{
    uint64_t now = clock_now_ns();
    if (t->in_wait) {
        t->wait[t->round][2] = now;
        t->in_wait = false;
        t->round++;
    }
    while (t->round < WORK_ROUNDS) {
        unsigned r = t->round;
        if (t->round_units[r]) {
            /* The loop's share of this task: its thread's CPU while this
             * coroutine computes (cpu_ms of the task). */
            uint64_t cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
            t->comp[r][0] = clock_now_ns();
            int rc = compute_units(ctx, t, t->round_units[r]);
            t->comp[r][1] = clock_now_ns();
            engine_task_add_cpu(ctx->run, ctx->task,
                                clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0);
            if (rc < 0)
                return rc;
        }
        if (t->wait_ns) {
            now = clock_now_ns();
            t->wait[r][0] = now;
            t->wait[r][1] = now + t->wait_ns;
            t->due_ns = t->wait[r][1];
            t->in_wait = true;
            return 0;
        }
        t->round++; /* no await: straight on, as asyncio does */
    }
    t->finished = true;
    return 0;
}

static void sched_run(struct tpool_task *tt, int status)
{
    struct work_sched *s = container_of(tt, struct work_sched, tt);
    struct engine_run *run = s->run;
    struct work_state *st = engine_run_state(run);
    const struct engine_config *cfg = engine_config(engine_run_engine(run));
    size_t left = st->n;

    if (!engine_run_pin(run))
        return;
    struct engine_ctx ctx = {.run = run,
                             .deadline_ns =
                                 engine_run_started_ns(run) +
                                 (uint64_t)cfg->job_timeout_ms * 1000000u,
                             .whole_run = true};
    int rc = status;
    for (size_t i = 0; i < st->n; i++)
        st->t[i].due_ns = engine_run_started_ns(run);
    while (rc == 0 && left > 0) {
        /* The ready coroutine due first (ties: the lower task). */
        size_t pick = st->n;
        uint64_t now = clock_now_ns(), next = UINT64_MAX;
        for (size_t i = 0; i < st->n; i++) {
            struct work_task *t = &st->t[i];
            if (t->finished)
                continue;
            if (t->due_ns <= now &&
                (pick == st->n || t->due_ns < st->t[pick].due_ns))
                pick = i;
            if (t->due_ns < next)
                next = t->due_ns;
        }
        if (pick == st->n) {
            rc = sleep_until(&ctx, next);
            continue;
        }
        ctx.task = pick;
        rc = coro_step(&ctx, &st->t[pick]);
        if (rc == 0 && st->t[pick].finished) {
            engine_task_end(run, pick, 0, 0, NULL);
            left--;
        }
        if (rc == 0)
            rc = engine_check(&ctx);
    }
    if (rc < 0) {
        char why[ENGINE_ERROR_MAX];
        snprintf(why, sizeof(why),
                 "the run exceeded its %d ms deadline (--job-timeout-ms) "
                 "and was stopped",
                 cfg->job_timeout_ms);
        for (size_t i = 0; i < st->n; i++) {
            if (!st->t[i].finished) {
                st->t[i].finished = true;
                engine_task_end(run, i, rc, 0, rc == -ETIMEDOUT ? why : NULL);
            }
        }
    }
    engine_run_unpin(run); /* may settle and free the run: nothing after */
}

static int start_async(struct engine_run *run, void *arg)
{
    struct work_state *st = arg;
    struct tpool_task *one = &st->sched.tt;
    st->sched.run = run;
    one->run = sched_run;
    one->client = engine_run_client(run);
    return tpool_submit(st->tpool, &one, 1);
}

/* Loop thread (pinned): a scheduler still queued never runs. */
static void cancel_async(struct engine_run *run, void *arg)
{
    struct work_state *st = arg;
    if (!tpool_cancel(st->tpool, &st->sched.tt))
        return; /* running: it checks the run between units */
    int status = engine_run_check(run);
    for (size_t i = 0; i < st->n; i++)
        engine_task_end(run, i, status ? status : -ECANCELED, 0, NULL);
}

/* ---- the answer ---- */

static double stall_of(const struct work_task *t)
{
    double ms = 0;
    for (unsigned r = 0; r < WORK_ROUNDS; r++) {
        if (t->wait[r][2] > t->wait[r][1])
            ms += (double)(t->wait[r][2] - t->wait[r][1]) / 1e6;
    }
    return ms;
}

static void write_result(struct jsonw *w, void *arg,
                         const struct engine_run *run)
{
    struct work_state *st = arg;
    uint64_t units = 0, sum = 0;
    double compute_ms = 0, wait_ms = 0, stall = 0, stall_max = 0;
    char hex[24];
    st->run = run;
    for (size_t i = 0; i < st->n; i++) {
        const struct work_task *t = &st->t[i];
        units += t->done_units;
        sum = splitmix64(sum ^ t->x);
        compute_ms += t->compute_ms;
        wait_ms += t->wait_ms;
        double s = stall_of(t);
        stall += s;
        if (s > stall_max)
            stall_max = s;
    }
    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)sum);
    jsonw_key(w, "units");
    jsonw_uint(w, units);
    jsonw_key(w, "checksum");
    jsonw_str(w, hex);
    jsonw_key(w, "units_per_ms");
    jsonw_real(w, st->units_per_ms);
    jsonw_key(w, "rounds");
    jsonw_uint(w, WORK_ROUNDS);
    jsonw_key(w, "plan_compute_ms");
    jsonw_ms(w, compute_ms);
    jsonw_key(w, "plan_wait_ms");
    jsonw_ms(w, wait_ms);
    jsonw_key(w, "stall_ms");
    jsonw_ms(w, stall);
    jsonw_key(w, "stall_max_ms");
    jsonw_ms(w, stall_max);
}

static void write_span(struct jsonw *w, uint64_t base, uint64_t ns)
{
    jsonw_ms(w, ns > base ? (double)(ns - base) / 1e6 : 0.0);
}

static void write_task(struct jsonw *w, void *arg, size_t task)
{
    struct work_state *st = arg;
    const struct work_task *t = &st->t[task];
    uint64_t base = st->run ? engine_run_tasks(st->run)[task].start_ns : 0;
    jsonw_key(w, "plan");
    jsonw_object(w);
    jsonw_key(w, "ms");
    jsonw_ms(w, t->ms);
    jsonw_key(w, "compute_ms");
    jsonw_ms(w, t->compute_ms);
    jsonw_key(w, "wait_ms");
    jsonw_ms(w, t->wait_ms);
    jsonw_key(w, "units");
    jsonw_uint(w, t->units);
    jsonw_end(w);
    jsonw_key(w, "units");
    jsonw_uint(w, t->done_units);
    jsonw_key(w, "stall_ms");
    jsonw_ms(w, stall_of(t));
    jsonw_key(w, "computing");
    jsonw_array(w);
    for (unsigned r = 0; r < WORK_ROUNDS; r++) {
        if (!t->comp[r][0] || !t->comp[r][1])
            continue;
        jsonw_array(w);
        write_span(w, base, t->comp[r][0]);
        write_span(w, base, t->comp[r][1]);
        jsonw_end(w);
    }
    jsonw_end(w);
    jsonw_key(w, "waiting");
    jsonw_array(w);
    for (unsigned r = 0; r < WORK_ROUNDS; r++) {
        if (!t->wait[r][0] || !t->wait[r][2])
            continue;
        jsonw_array(w);
        write_span(w, base, t->wait[r][0]);
        write_span(w, base, t->wait[r][1]);
        write_span(w, base, t->wait[r][2]);
        jsonw_end(w);
    }
    jsonw_end(w);
}

/*
 * The model /run/compare budgets with: computing runs on at most `par`
 * cores at once (1 under the GIL and on one loop), waiting overlaps
 * across `lanes` (every task on the loop); the run takes the longer of
 * the computing spread over par and the waves of whole tasks.
 */
static double estimate_ms(const struct demo_args *a, enum engine_mode mode,
                          const struct app *app)
{
    size_t n = (size_t)a->v[P_TASKS];
    size_t lanes = engine_lanes(app->engine, mode, n);
    double io = a->r[P_IO_RATIO], compute = 0, longest = 0, sum = 0;
    if (lanes > n)
        lanes = n;
    if (lanes < 1)
        lanes = 1;
    for (size_t i = 0; i < n; i++) {
        double ms = task_ms(a, i);
        compute += ms * (1.0 - io);
        sum += ms;
        if (ms > longest)
            longest = ms;
    }
    size_t par = lanes < (size_t)app->cores ? lanes : (size_t)app->cores;
    if (mode == ENGINE_GIL || mode == ENGINE_ASYNC)
        par = 1;
    if (mode == ENGINE_SEQUENTIAL)
        return sum;
    double n_waves = (double)((n + lanes - 1) / lanes);
    double waves = n_waves * longest;
    double spread = compute / (double)(par ? par : 1);
    /* spawn: each wave of processes starts up before its work */
    double startup = mode == ENGINE_SPAWN ? n_waves * DEMO_SPAWN_MS : 0;
    return (spread > waves ? spread : waves) + startup;
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
static const char *const outcome[] = {"units", "checksum", NULL};

const struct demo demo_work = {
    .name = "work",
    .label = "mixed",
    .summary = "Mixed work: tasks that compute, then wait, in turn",
    .lesson =
        "Each task computes (a real CPU loop) and waits (a real sleep) in "
        "4 rounds, io_ratio of its ms waiting. Look for: gil threads gain "
        "only on the waiting share (solid slivers take turns on the lock); "
        "processes gain on the computing share too, up to the cores; async "
        "overlaps the waits, but a coroutine that computes blocks its loop, "
        "so the others' wake-ups come late (stall_ms, the red ends of the "
        "waits). Sweep io_ratio to see where each model wins.",
    .params = params,
    .n_params = sizeof(params) / sizeof(params[0]),
    .modes = modes,
    .n_modes = sizeof(modes) / sizeof(modes[0]),
    .default_mode = ENGINE_ASYNC,
    .outcome = outcome,
    .shrink = "tasks or ms",
    .n_tasks = n_tasks,
    .cost = cost,
    .bytes_per_task = sizeof(struct work_task),
    .estimate_ms = estimate_ms,
    .prepare = prepare,
    .free_state = free_state,
    .work = &work,
    .write_result = write_result,
    .write_task = write_task,
    .worker_job = worker_job,
};
