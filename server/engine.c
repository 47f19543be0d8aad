/*
 * engine: see engine.h. This file is the core (runs, records, settling,
 * cancellation, deadlines, gil slices); the real back ends are in
 * backends.c.
 *
 * Settling: run->pending counts the tasks not yet ended plus "pins": a
 * pin keeps a run from settling while a thread works on it from outside
 * (engine_run_start() itself, a cancel). Whoever brings pending to zero
 * settles the run: it leaves the live list and its callback runs, on that
 * thread, with no lock held. A pin is only taken while pending is above
 * zero (pin()), so a settled run is never settled twice.
 */
#include "engine.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends.h"
#include "clock.h"
#include "cores.h"
#include "gil.h"

const char *const engine_mode_names[ENGINE_MODES] = {
    "sequential", "threads", "processes", "gil", "async", "spawn"};

const char *const engine_lane_names[ENGINE_LANES] = {
    "main", "thread", "process", "loop", "spawn"};

struct engine {
    struct engine_config cfg;
    const struct engine_backend *backends[ENGINE_MODES];
    _Atomic bool stopping;
    pthread_mutex_t lock; /* guards the live list and the counters */
    pthread_cond_t idle;
    struct engine_run *live; /* doubly linked through prev/next */
    uint64_t n_live, started, live_tasks;
};

struct engine_run {
    struct engine *engine;
    struct engine_run *prev, *next; /* the live list */
    struct engine_run *batch;       /* engine_stop()'s list */
    enum engine_mode mode;
    size_t n_tasks;
    const struct engine_work *work;
    void *state;
    uint64_t client;
    unsigned cores;
    engine_done_fn *done;
    void *done_arg;
    engine_notify_fn *notify;
    void *notify_arg;
    _Atomic size_t pending;
    _Atomic int cancel;    /* 0, or the status it was cancelled with */
    _Atomic bool launched; /* the back end's start() has returned */
    _Atomic bool backend_cancelled;
    uint64_t started_ns, ended_ns, deadline_ns;
    void *backend;
    struct engine_slices *slices; /* gil mode only */
    pthread_mutex_t lock;         /* guards next_task and the error */
    size_t next_task;
    int error_rank; /* of the message kept: lower is worse */
    char error[ENGINE_ERROR_MAX];
    struct engine_task tasks[];
};

static bool pin(struct engine_run *run);
static void unpin(struct engine_run *run);
static void settle(struct engine_run *run);
static void ended(struct engine_run *run, size_t count);
static void keep_error(struct engine_run *run, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int rank_of(int status);
static const char *message_of(int status);
static void slice_open(struct engine_run *run, size_t task, uint64_t at);
static void slice_close(struct engine_run *run, size_t task, uint64_t at);
static void cancel_pinned(struct engine_run *run, int status);
static void held_from(struct engine_ctx *ctx);
static void held_until(struct engine_ctx *ctx);

struct engine *engine_new(const struct engine_config *cfg)
{
    struct engine *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->cfg = *cfg;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->idle, NULL);
    for (int m = 0; m < ENGINE_MODES; m++)
        e->backends[m] = backends_for((enum engine_mode)m);
    return e;
}

void engine_set_backend(struct engine *e, enum engine_mode mode,
                        const struct engine_backend *backend)
{
    e->backends[mode] = backend;
}

const struct engine_config *engine_config(const struct engine *e)
{
    return &e->cfg;
}

size_t engine_lanes(const struct engine *e, enum engine_mode mode,
                    size_t n_tasks)
{
    switch (mode) {
    case ENGINE_SEQUENTIAL:
        return 1;
    case ENGINE_THREADS:
    case ENGINE_GIL:
        return (size_t)e->cfg.demo_threads;
    case ENGINE_PROCESSES:
    case ENGINE_SPAWN:
        return (size_t)e->cfg.workers;
    default:
        return n_tasks;
    }
}

void engine_stop(struct engine *e)
{
    atomic_store(&e->stopping, true);
    struct engine_run *batch = NULL;
    pthread_mutex_lock(&e->lock);
    for (struct engine_run *r = e->live; r; r = r->next) {
        if (pin(r)) {
            r->batch = batch;
            batch = r;
        }
    }
    pthread_mutex_unlock(&e->lock);
    while (batch) {
        struct engine_run *next = batch->batch;
        cancel_pinned(batch, -ESHUTDOWN);
        unpin(batch);
        batch = next;
    }
}

bool engine_stopping(const struct engine *e)
{
    return atomic_load_explicit(&e->stopping, memory_order_relaxed);
}

bool engine_wait_idle(struct engine *e, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&e->lock);
    int rc = 0;
    while (e->n_live > 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&e->idle, &e->lock, &until);
    bool idle = e->n_live == 0;
    pthread_mutex_unlock(&e->lock);
    return idle;
}

void engine_stats(struct engine *e, struct engine_stats *out)
{
    pthread_mutex_lock(&e->lock);
    out->runs = e->n_live;
    out->started = e->started;
    out->tasks = e->live_tasks;
    pthread_mutex_unlock(&e->lock);
}

void engine_free(struct engine *e)
{
    if (!e)
        return;
    pthread_cond_destroy(&e->idle);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

struct engine_run *engine_run_new(struct engine *e,
                                  const struct engine_run_spec *spec)
{
    if (spec->n_tasks == 0)
        return NULL;
    struct engine_run *run =
        calloc(1, sizeof(*run) + spec->n_tasks * sizeof(run->tasks[0]));
    if (!run)
        return NULL;
    if (spec->mode == ENGINE_GIL) {
        run->slices = calloc(spec->n_tasks, sizeof(run->slices[0]));
        if (!run->slices) {
            free(run);
            return NULL;
        }
    }
    run->engine = e;
    run->mode = spec->mode;
    run->n_tasks = spec->n_tasks;
    run->work = spec->work;
    run->state = spec->state;
    run->client = spec->client;
    run->cores = spec->cores;
    run->done = spec->done;
    run->done_arg = spec->done_arg;
    run->notify = spec->notify;
    run->notify_arg = spec->notify_arg;
    run->error_rank = INT32_MAX;
    pthread_mutex_init(&run->lock, NULL);
    return run;
}

void engine_run_start(struct engine_run *run)
{
    struct engine *e = run->engine;
    const struct engine_backend *be = e->backends[run->mode];

    run->started_ns = clock_now_ns();
    run->deadline_ns =
        run->started_ns + (uint64_t)e->cfg.job_timeout_ms * 1000000u;
    atomic_store(&run->pending, run->n_tasks + 1); /* + the starter's pin */

    pthread_mutex_lock(&e->lock);
    run->next = e->live;
    if (e->live)
        e->live->prev = run;
    e->live = run;
    e->n_live++;
    e->started++;
    e->live_tasks += run->n_tasks;
    pthread_mutex_unlock(&e->lock);

    if (engine_stopping(e)) {
        atomic_store(&run->cancel, -ESHUTDOWN);
        engine_run_end_rest(run, -ESHUTDOWN, NULL);
    } else if (!be) {
        engine_run_end_rest(run, -ENOTSUP, "this mode has no back end");
    } else {
        int rc = be->start(run);
        if (rc < 0)
            engine_run_end_rest(run, rc, NULL);
    }
    /* A cancel that came during start() left the back end's part to us. */
    atomic_store(&run->launched, true);
    if (atomic_load(&run->cancel))
        cancel_pinned(run, atomic_load(&run->cancel));
    unpin(run);
}

void engine_run_cancel(struct engine_run *run, int status)
{
    if (!pin(run))
        return;
    cancel_pinned(run, status);
    unpin(run);
}

/* The caller holds a pin. */
static void cancel_pinned(struct engine_run *run, int status)
{
    int none = 0;
    atomic_compare_exchange_strong(&run->cancel, &none, status);
    if (!atomic_load(&run->launched) ||
        atomic_exchange(&run->backend_cancelled, true))
        return;
    const struct engine_backend *be = run->engine->backends[run->mode];
    /* Tasks not yet handed to the back end end now; then the back end
     * drops what it queued. */
    engine_run_end_rest(run, atomic_load(&run->cancel), NULL);
    if (be && be->cancel)
        be->cancel(run);
}

void engine_run_free(struct engine_run *run)
{
    if (!run)
        return;
    const struct engine_backend *be = run->engine->backends[run->mode];
    if (be && be->release && run->backend)
        be->release(run);
    if (run->slices) {
        for (size_t i = 0; i < run->n_tasks; i++)
            free(run->slices[i].at);
        free(run->slices);
    }
    pthread_mutex_destroy(&run->lock);
    free(run);
}

enum engine_mode engine_run_mode(const struct engine_run *run)
{
    return run->mode;
}

size_t engine_run_n_tasks(const struct engine_run *run)
{
    return run->n_tasks;
}

const struct engine_task *engine_run_tasks(const struct engine_run *run)
{
    return run->tasks;
}

const struct engine_slices *engine_run_slices(const struct engine_run *run)
{
    return run->slices;
}

uint64_t engine_run_started_ns(const struct engine_run *run)
{
    return run->started_ns;
}

unsigned engine_run_cores(const struct engine_run *run)
{
    return run->cores;
}

uint64_t engine_run_ended_ns(const struct engine_run *run)
{
    return run->ended_ns;
}

void engine_run_peek(const struct engine_run *run, size_t task,
                     struct engine_task *out)
{
    const struct engine_task *t = &run->tasks[task];
    memset(out, 0, sizeof(*out));
    out->end_ns = __atomic_load_n(&t->end_ns, __ATOMIC_ACQUIRE);
    out->start_ns = __atomic_load_n(&t->start_ns, __ATOMIC_ACQUIRE);
    if (out->start_ns) {
        out->lane = t->lane;
        out->worker = t->worker;
        out->started = 1;
    }
    if (out->end_ns) {
        /* Written before the end was published (engine_task_add_cpu,
         * engine_task_ready, then engine_task_end). */
        out->status = t->status;
        out->cpu_us = t->cpu_us;
        out->ready_us = t->ready_us;
    }
}

const char *engine_run_error(const struct engine_run *run)
{
    return run->error;
}

void *engine_run_state(const struct engine_run *run)
{
    return run->state;
}

struct engine *engine_run_engine(const struct engine_run *run)
{
    return run->engine;
}

const struct engine_work *engine_run_work(const struct engine_run *run)
{
    return run->work;
}

uint64_t engine_run_client(const struct engine_run *run)
{
    return run->client;
}

void *engine_run_backend(const struct engine_run *run)
{
    return run->backend;
}

void engine_run_set_backend(struct engine_run *run, void *data)
{
    run->backend = data;
}

bool engine_run_next(struct engine_run *run, size_t *task)
{
    bool got = false;
    pthread_mutex_lock(&run->lock);
    if (atomic_load(&run->cancel) == 0 && run->next_task < run->n_tasks) {
        *task = run->next_task++;
        got = true;
    }
    pthread_mutex_unlock(&run->lock);
    return got;
}

int engine_run_check(const struct engine_run *run)
{
    int cancel = atomic_load_explicit(&run->cancel, memory_order_relaxed);
    if (cancel)
        return cancel;
    if (engine_stopping(run->engine))
        return -ESHUTDOWN;
    return 0;
}

bool engine_run_pin(struct engine_run *run)
{
    return pin(run);
}

void engine_run_unpin(struct engine_run *run)
{
    unpin(run);
}

void engine_task_begin(struct engine_run *run, size_t task,
                       enum engine_lane lane, int32_t worker, uint64_t start_ns)
{
    struct engine_task *t = &run->tasks[task];
    t->lane = (uint8_t)lane;
    t->worker = worker;
    t->started = 1;
    /* Published last: engine_run_peek() reads the rest after it. */
    __atomic_store_n(&t->start_ns, start_ns ? start_ns : clock_now_ns(),
                     __ATOMIC_RELEASE);
    if (run->notify)
        run->notify(run->notify_arg);
}

void engine_task_end(struct engine_run *run, size_t task, int status,
                     uint64_t end_ns, const char *message)
{
    struct engine_task *t = &run->tasks[task];
    t->status = (int16_t)status;
    __atomic_store_n(&t->end_ns, end_ns ? end_ns : clock_now_ns(),
                     __ATOMIC_RELEASE);
    if (status != 0)
        keep_error(run, status, "%s", message ? message : message_of(status));
    /* Before ended(): the run may settle and be freed after it. */
    if (run->notify)
        run->notify(run->notify_arg);
    ended(run, 1);
}

void engine_task_add_cpu(struct engine_run *run, size_t task, uint64_t cpu_ns)
{
    struct engine_task *t = &run->tasks[task];
    uint64_t us = (uint64_t)t->cpu_us + (cpu_ns + 500) / 1000;
    t->cpu_us = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

void engine_task_ready(struct engine_run *run, size_t task, uint64_t ready_ns)
{
    struct engine_task *t = &run->tasks[task];
    uint64_t us = ready_ns > t->start_ns ? (ready_ns - t->start_ns) / 1000 : 0;
    /* 0 means "never ready": a start-up under a microsecond reads as 1. */
    t->ready_us = us == 0 ? 1 : us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

void engine_run_end_rest(struct engine_run *run, int status,
                         const char *message)
{
    pthread_mutex_lock(&run->lock);
    size_t from = run->next_task;
    run->next_task = run->n_tasks;
    pthread_mutex_unlock(&run->lock);
    if (from == run->n_tasks)
        return;
    for (size_t i = from; i < run->n_tasks; i++)
        run->tasks[i].status = (int16_t)status;
    keep_error(run, status, "%s", message ? message : message_of(status));
    ended(run, run->n_tasks - from);
}

int engine_run_compute(struct engine_run *run, size_t task,
                       enum engine_lane lane, int32_t worker)
{
    struct engine *e = run->engine;
    int timeout_ms = e->cfg.job_timeout_ms;

    engine_task_begin(run, task, lane, worker, 0);
    struct engine_ctx ctx = {.run = run, .task = task};
    uint64_t start = run->tasks[task].start_ns;
    ctx.deadline_ns = start + (uint64_t)timeout_ms * 1000000u;
    if (run->deadline_ns < ctx.deadline_ns) {
        ctx.deadline_ns = run->deadline_ns;
        ctx.whole_run = true;
    }

    int rc = engine_run_check(run);
    if (rc == 0 && clock_now_ns() > ctx.deadline_ns)
        rc = -ETIMEDOUT;
    /* The demo thread is shared: pinned for this task only. */
    cpu_set_t saved;
    bool pinned =
        rc == 0 && run->cores && cores_pin_thread(run->cores, &saved) == 0;
    if (rc == 0) {
        if (run->mode == ENGINE_GIL) {
            slice_open(run, task, gil_acquire(e->cfg.gil));
            held_from(&ctx);
            rc = run->work->compute(&ctx, run->state, task);
            held_until(&ctx);
            slice_close(run, task, gil_release(e->cfg.gil));
        } else {
            uint64_t cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
            rc = run->work->compute(&ctx, run->state, task);
            ctx.cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
        }
    }
    if (pinned)
        cores_restore_thread(&saved);
    engine_task_add_cpu(run, task, ctx.cpu_ns);

    char why[ENGINE_ERROR_MAX];
    const char *message = NULL;
    if (rc == -ETIMEDOUT && ctx.whole_run) {
        snprintf(why, sizeof(why),
                 "the run exceeded its %d ms deadline (--job-timeout-ms) and "
                 "was stopped at task %zu",
                 timeout_ms, task);
        message = why;
    } else if (rc == -ETIMEDOUT) {
        snprintf(why, sizeof(why),
                 "task %zu exceeded its %d ms deadline and was stopped", task,
                 timeout_ms);
        message = why;
    }
    engine_task_end(run, task, rc, 0, message);
    return rc;
}

int engine_check(struct engine_ctx *ctx)
{
    int rc = engine_run_check(ctx->run);
    if (rc == 0 && clock_now_ns() > ctx->deadline_ns)
        rc = -ETIMEDOUT;
    return rc;
}

int engine_yield(void *arg)
{
    struct engine_ctx *ctx = arg;
    struct engine_run *run = ctx->run;
    int rc = engine_check(ctx);
    uint64_t released, acquired;
    if (rc == 0 && run->mode == ENGINE_GIL) {
        /* The CPU of the hand-over itself counts as waiting. */
        held_until(ctx);
        if (gil_yield(run->engine->cfg.gil, &released, &acquired)) {
            slice_close(run, ctx->task, released);
            slice_open(run, ctx->task, acquired);
        }
        held_from(ctx);
    }
    return rc;
}

void engine_blocking_begin(struct engine_ctx *ctx)
{
    struct engine_run *run = ctx->run;
    if (run->mode == ENGINE_GIL) {
        held_until(ctx);
        slice_close(run, ctx->task, gil_release(run->engine->cfg.gil));
    }
}

void engine_blocking_end(struct engine_ctx *ctx)
{
    struct engine_run *run = ctx->run;
    if (run->mode == ENGINE_GIL) {
        slice_open(run, ctx->task, gil_acquire(run->engine->cfg.gil));
        held_from(ctx);
    }
}

/* gil: the thread holds the lock from now (its CPU counts). */
static void held_from(struct engine_ctx *ctx)
{
    ctx->cpu_from_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

/* gil: the thread stops holding the lock; what it used while it held it
 * is the task's. */
static void held_until(struct engine_ctx *ctx)
{
    if (ctx->cpu_from_ns) {
        uint64_t now = clock_ns(CLOCK_THREAD_CPUTIME_ID);
        if (now > ctx->cpu_from_ns)
            ctx->cpu_ns += now - ctx->cpu_from_ns;
        ctx->cpu_from_ns = 0;
    }
}

int engine_http_status(int status)
{
    switch (status) {
    case 0:
        return 200;
    case -ETIMEDOUT:
        return 504;
    case -EPIPE:
    case -EPROTO:
        return 502;
    case -EAGAIN:
    case -ESHUTDOWN:
        return 503;
    case -ECANCELED:
        return 499; /* nginx's "client closed request": nobody reads it */
    case -E2BIG:
        return 400; /* never fits, so retrying is no use */
    default:
        return 500;
    }
}

/* Worse failures rank lower; the worst decides the run's status. */
static int rank_of(int status)
{
    static const int order[] = {504, 502, 503, 499, 400, 500};
    int http = engine_http_status(status);
    for (int i = 0; i < (int)(sizeof(order) / sizeof(order[0])); i++) {
        if (order[i] == http)
            return i;
    }
    return (int)(sizeof(order) / sizeof(order[0]));
}

static const char *message_of(int status)
{
    switch (status) {
    case -ECANCELED:
        return "the client went away";
    case -ESHUTDOWN:
        return "the service is shutting down";
    case -EAGAIN:
        return "the job queue is full; retry shortly";
    case -ENOMEM:
        return "out of memory";
    default:
        return strerror(-status);
    }
}

static void keep_error(struct engine_run *run, int status, const char *fmt, ...)
{
    int rank = rank_of(status);
    pthread_mutex_lock(&run->lock);
    if (rank < run->error_rank) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(run->error, sizeof(run->error), fmt, ap);
        va_end(ap);
        run->error_rank = rank;
    }
    pthread_mutex_unlock(&run->lock);
}

static bool pin(struct engine_run *run)
{
    size_t n = atomic_load(&run->pending);
    while (n > 0) {
        if (atomic_compare_exchange_weak(&run->pending, &n, n + 1))
            return true;
    }
    return false;
}

static void unpin(struct engine_run *run)
{
    ended(run, 1);
}

static void ended(struct engine_run *run, size_t count)
{
    if (atomic_fetch_sub(&run->pending, count) == count)
        settle(run);
}

/* The last task ended: compute the status, leave the live list, call. */
static void settle(struct engine_run *run)
{
    struct engine *e = run->engine;
    run->ended_ns = clock_now_ns();

    int status = 0, best = INT32_MAX;
    for (size_t i = 0; i < run->n_tasks; i++) {
        int s = run->tasks[i].status;
        if (s != 0 && rank_of(s) < best) {
            best = rank_of(s);
            status = s;
        }
    }
    if (status == 0)
        run->error[0] = '\0';
    else if (run->error_rank != best)
        snprintf(run->error, sizeof(run->error), "%s", message_of(status));

    engine_done_fn *done = run->done;
    void *arg = run->done_arg;

    pthread_mutex_lock(&e->lock);
    if (run->prev)
        run->prev->next = run->next;
    else
        e->live = run->next;
    if (run->next)
        run->next->prev = run->prev;
    run->prev = run->next = NULL;
    e->live_tasks -= run->n_tasks;
    pthread_mutex_unlock(&e->lock);

    if (done)
        done(run, status, arg);

    /* Counted until the callback has returned, so that
     * engine_wait_idle() means no thread is still inside one. */
    pthread_mutex_lock(&e->lock);
    bool idle = --e->n_live == 0;
    if (idle)
        pthread_cond_broadcast(&e->idle);
    pthread_mutex_unlock(&e->lock);
    if (idle && e->cfg.idle)
        e->cfg.idle(e->cfg.idle_arg);
}

/*
 * The intervals a gil task held the lock. Past ENGINE_SLICES_MAX the rest
 * are not recorded (the task's start and end still bound them).
 */
static void slice_open(struct engine_run *run, size_t task, uint64_t at)
{
    struct engine_slices *s = &run->slices[task];
    if (s->n == s->cap && s->cap < ENGINE_SLICES_MAX) {
        uint32_t cap = s->cap ? s->cap * 2 : 8;
        if (cap > ENGINE_SLICES_MAX)
            cap = ENGINE_SLICES_MAX;
        uint64_t(*grown)[2] = realloc(s->at, cap * sizeof(s->at[0]));
        if (!grown)
            return;
        s->at = grown;
        s->cap = cap;
    }
    if (s->n < s->cap) {
        s->at[s->n][0] = at;
        s->at[s->n][1] = 0;
        s->n++;
        s->open = true;
    }
}

static void slice_close(struct engine_run *run, size_t task, uint64_t at)
{
    struct engine_slices *s = &run->slices[task];
    if (s->open) {
        s->at[s->n - 1][1] = at;
        s->open = false;
    }
}
