/*
 * deadlock: /run/deadlock, two tasks and two locks (A and B). Each task
 * takes its first lock, holds it hold_ms, then takes its second. With
 * order=same both take A then B: one waits for the other and both finish.
 * With order=opposite task 0 takes A then B and task 1 B then A: each ends
 * up holding what the other waits for, and neither can ever go on.
 *
 * The demo catches that in the act instead of hanging a demo thread:
 *   - every lock is taken by timed attempts (pthread_mutex_timedlock, steps
 *     of STEP_MS), never by a blocking lock, so a waiting task wakes up
 *     regularly to look around;
 *   - the tasks keep a wait-for graph (waitfor.h) under their own small
 *     lock: who holds which lock (set once taken, cleared before the
 *     release) and which lock each waits for (set before the first
 *     attempt, cleared once taken). A cycle in it is therefore a real
 *     deadlock, not a passing wait;
 *   - a waiting task that finds a cycle records it and tells the other;
 *     both give up: they release what they hold and end, so no demo
 *     thread stays stuck, and the answer is a 200 with deadlocked true and
 *     the cycle named (who held what, who waited for what).
 * The run's deadline and a client that leaves stop a wait the same way.
 *
 * Timed locks are also what keeps ThreadSanitizer quiet about the lock
 * order: it records no order edge for a try or timed lock, and the order
 * inversion is the lesson here, not a bug.
 *
 * Modes: threads (the two tasks at once, on two demo threads, when two are
 * free) and sequential (one task after the other on one thread: the second
 * starts once the first has released both locks, so the order cannot
 * matter and nothing deadlocks).
 *
 * Threads: each task on its demo thread writes its own record; the graph
 * and the verdict under graph_lock; the answer on a request thread after
 * the run.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../server/app.h"
#include "../server/clock.h"
#include "../server/waitfor.h"
#include "demo.h"

#define TASKS        2
#define LOCKS        2
#define HOLD_MS_MAX  10000
#define STEP_MS      5  /* one timed attempt at a lock */
#define NAP_MS       20 /* deadline checks while holding */
#define SEGMENTS_MAX 8  /* a task waits and holds each lock at most once */

enum { ORDER_SAME, ORDER_OPPOSITE };
enum { SEG_WAITING, SEG_HOLDING };

static const char *const order_names[] = {"same", "opposite", NULL};
static const char *const lock_names[LOCKS] = {"A", "B"};
static const char *const seg_names[] = {"waiting", "holding"};

/* A stretch of a task's time: waiting for a lock or holding it. */
struct segment {
    int lock;
    int what;
    uint64_t from_ns, to_ns; /* to_ns 0: still open */
};

struct dl_task {
    uint64_t start_ns; /* the engine's start of the task */
    int first, second;
    struct segment seg[SEGMENTS_MAX];
    size_t n_seg;
    bool took_both;
    bool gave_up;
};

struct deadlock_state {
    int order;
    uint64_t hold_ms;
    pthread_mutex_t locks[LOCKS];
    /* Lock order: graph_lock is taken alone or while holding A or B,
     * never the other way round, and never held while waiting. */
    pthread_mutex_t graph_lock;
    int holder[LOCKS]; /* the task holding each lock, or WAITFOR_NONE */
    int waits[TASKS];  /* the lock each task waits for, or WAITFOR_NONE */
    bool deadlocked;   /* a cycle was seen: every task gives up */
    struct waitfor_edge cycle[TASKS];
    int cycle_len;
    int detected_by;
    uint64_t detected_ns;
    struct dl_task tasks[TASKS];
};

enum { P_ORDER, P_HOLD_MS };

static const struct demo_param params[] = {
    [P_ORDER] = {.name = "order",
                 .type = DEMO_ENUM,
                 .values = order_names,
                 .def = ORDER_OPPOSITE,
                 .doc = "`same`: both tasks take lock A, then B (one waits, "
                        "both finish); `opposite`: task 0 takes A then B, "
                        "task 1 B then A (they deadlock, and the service "
                        "catches it)."},
    [P_HOLD_MS] = {.name = "hold_ms",
                   .type = DEMO_INT,
                   .min = 0,
                   .max = HOLD_MS_MAX,
                   .def = 100,
                   .scales_time = true,
                   .doc = "How long each task holds its first lock before it "
                          "takes the second, in milliseconds: long enough "
                          "and both hold one before either asks for the "
                          "other."},
};

static size_t n_tasks(const struct demo_args *a)
{
    (void)a;
    return TASKS;
}

static void free_state(void *arg)
{
    struct deadlock_state *st = arg;
    for (int l = 0; l < LOCKS; l++)
        pthread_mutex_destroy(&st->locks[l]);
    pthread_mutex_destroy(&st->graph_lock);
    free(st);
}

static void *prepare(const struct demo_args *a, enum engine_mode mode,
                     const struct demo_env *env)
{
    (void)mode;
    (void)env;
    struct deadlock_state *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->order = (int)a->v[P_ORDER];
    st->hold_ms = (uint64_t)a->v[P_HOLD_MS];
    for (int l = 0; l < LOCKS; l++) {
        pthread_mutex_init(&st->locks[l], NULL);
        st->holder[l] = WAITFOR_NONE;
    }
    pthread_mutex_init(&st->graph_lock, NULL);
    for (int t = 0; t < TASKS; t++) {
        st->waits[t] = WAITFOR_NONE;
        st->tasks[t].first = st->order == ORDER_OPPOSITE && t == 1 ? 1 : 0;
        st->tasks[t].second = 1 - st->tasks[t].first;
    }
    st->detected_by = -1;
    return st;
}

static void seg_open(struct dl_task *t, int lock, int what)
{
    if (t->n_seg < SEGMENTS_MAX)
        t->seg[t->n_seg++] = (struct segment){
            .lock = lock, .what = what, .from_ns = clock_now_ns()};
}

/* Closes the task's open segment of lock. */
static void seg_close(struct dl_task *t, int lock)
{
    for (size_t i = t->n_seg; i-- > 0;) {
        if (t->seg[i].lock == lock && t->seg[i].to_ns == 0) {
            t->seg[i].to_ns = clock_now_ns();
            return;
        }
    }
}

/* CLOCK_REALTIME ms from now, what pthread_mutex_timedlock wants. */
static struct timespec realtime_in(long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    return ts;
}

/*
 * Takes lock for task, by timed attempts. Between attempts: a cycle in the
 * wait-for graph (recorded here by whoever sees it first), a verdict
 * already given, or the run's own stop end the wait. Returns 0 with the
 * lock held, -EDEADLK (give up), or engine_check()'s status.
 */
static int take(struct engine_ctx *ctx, struct deadlock_state *st, int task,
                int lock)
{
    struct dl_task *t = &st->tasks[task];
    int rc = pthread_mutex_trylock(&st->locks[lock]);
    if (rc == EBUSY) {
        seg_open(t, lock, SEG_WAITING);
        pthread_mutex_lock(&st->graph_lock);
        st->waits[task] = lock;
        pthread_mutex_unlock(&st->graph_lock);
        for (;;) {
            struct timespec until = realtime_in(STEP_MS);
            rc = pthread_mutex_timedlock(&st->locks[lock], &until);
            if (rc != ETIMEDOUT)
                break;
            pthread_mutex_lock(&st->graph_lock);
            if (!st->deadlocked) {
                int n = waitfor_cycle(st->holder, LOCKS, st->waits, TASKS, task,
                                      st->cycle, TASKS);
                if (n > 0) {
                    st->deadlocked = true;
                    st->cycle_len = n;
                    st->detected_by = task;
                    st->detected_ns = clock_now_ns();
                }
            }
            bool give_up = st->deadlocked;
            if (give_up)
                st->waits[task] = WAITFOR_NONE;
            pthread_mutex_unlock(&st->graph_lock);
            int stop = engine_check(ctx);
            if (give_up || stop) {
                seg_close(t, lock);
                if (!give_up) {
                    pthread_mutex_lock(&st->graph_lock);
                    st->waits[task] = WAITFOR_NONE;
                    pthread_mutex_unlock(&st->graph_lock);
                }
                return give_up ? -EDEADLK : stop;
            }
        }
        seg_close(t, lock);
    }
    if (rc != 0)
        return -rc;
    pthread_mutex_lock(&st->graph_lock);
    st->waits[task] = WAITFOR_NONE;
    /* Got it only because the other task gave up: give up too, so that
     * the verdict does not depend on who woke first. */
    bool give_up = st->deadlocked;
    if (!give_up)
        st->holder[lock] = task;
    pthread_mutex_unlock(&st->graph_lock);
    if (give_up) {
        pthread_mutex_unlock(&st->locks[lock]);
        return -EDEADLK;
    }
    seg_open(t, lock, SEG_HOLDING);
    return 0;
}

static void release(struct deadlock_state *st, int task, int lock)
{
    pthread_mutex_lock(&st->graph_lock);
    st->holder[lock] = WAITFOR_NONE;
    pthread_mutex_unlock(&st->graph_lock);
    seg_close(&st->tasks[task], lock);
    pthread_mutex_unlock(&st->locks[lock]);
}

/* Holds what the task holds for ms, checking the run's stop. */
static int hold(struct engine_ctx *ctx, uint64_t ms)
{
    uint64_t until = clock_now_ns() + ms * 1000000u;
    int rc = 0;
    for (uint64_t now = clock_now_ns(); now < until && rc == 0;
         now = clock_now_ns()) {
        uint64_t nap =
            until - now < NAP_MS * 1000000u ? until - now : NAP_MS * 1000000u;
        struct timespec ts = {0, (long)nap};
        nanosleep(&ts, NULL);
        rc = engine_check(ctx);
    }
    return rc;
}

static int compute(struct engine_ctx *ctx, void *arg, size_t task)
{
    struct deadlock_state *st = arg;
    struct dl_task *t = &st->tasks[task];
    int me = (int)task;
    t->start_ns = engine_run_tasks(ctx->run)[task].start_ns;

    int rc = take(ctx, st, me, t->first);
    if (rc == 0) {
        rc = hold(ctx, st->hold_ms);
        if (rc == 0) {
            rc = take(ctx, st, me, t->second);
            if (rc == 0) {
                t->took_both = true;
                release(st, me, t->second);
            }
        }
        release(st, me, t->first);
    }
    if (rc == -EDEADLK) {
        t->gave_up = true;
        return 0; /* caught and undone: the run answers with the cycle */
    }
    return rc;
}

static void write_result(struct jsonw *w, void *arg,
                         const struct engine_run *run)
{
    struct deadlock_state *st = arg;
    (void)run;
    jsonw_key(w, "order");
    jsonw_str(w, order_names[st->order]);
    jsonw_key(w, "hold_ms");
    jsonw_uint(w, st->hold_ms);
    jsonw_key(w, "deadlocked");
    jsonw_bool(w, st->deadlocked);
    jsonw_key(w, "cycle");
    jsonw_array(w);
    for (int i = 0; i < st->cycle_len && i < TASKS; i++) {
        jsonw_object(w);
        jsonw_key(w, "task");
        jsonw_int(w, st->cycle[i].task);
        jsonw_key(w, "holds");
        jsonw_str(w, lock_names[st->cycle[i].holds]);
        jsonw_key(w, "waits_for");
        jsonw_str(w, lock_names[st->cycle[i].waits_for]);
        jsonw_end(w);
    }
    jsonw_end(w);
    if (st->deadlocked) {
        const struct dl_task *t = &st->tasks[st->detected_by];
        jsonw_key(w, "detected_by");
        jsonw_int(w, st->detected_by);
        /* From the detecting task's start_ms, like its segments. */
        jsonw_key(w, "detected_ms");
        jsonw_ms(w, clock_offset_ms(t->start_ns, st->detected_ns));
    }
    size_t finished = 0;
    for (int i = 0; i < TASKS; i++)
        finished += st->tasks[i].took_both;
    jsonw_key(w, "finished");
    jsonw_uint(w, finished);
    jsonw_key(w, "note");
    if (st->deadlocked)
        jsonw_str(w, "each task held the lock the other waited for: a "
                     "cycle in the wait-for graph, so neither could ever go "
                     "on. Seen between two timed attempts; both tasks gave "
                     "up and released what they held, so no thread stayed "
                     "stuck");
    else if (engine_run_mode(run) == ENGINE_SEQUENTIAL)
        jsonw_str(w, "one task after the other: the second starts once the "
                     "first has released both locks, so the order cannot "
                     "deadlock");
    else if (st->order == ORDER_SAME)
        jsonw_str(w, "both take A before B: whoever gets A first finishes, "
                     "the other waits for A, then goes on. One order for "
                     "every lock is the classic cure");
    else
        jsonw_str(w, "no deadlock this time: the tasks did not hold their "
                     "first locks at the same moment (free demo threads "
                     "were short, or hold_ms too small)");
}

static void write_task(struct jsonw *w, void *arg, size_t task)
{
    struct deadlock_state *st = arg;
    const struct dl_task *t = &st->tasks[task];
    jsonw_key(w, "locks");
    jsonw_array(w);
    jsonw_str(w, lock_names[t->first]);
    jsonw_str(w, lock_names[t->second]);
    jsonw_end(w);
    jsonw_key(w, "took_both");
    jsonw_bool(w, t->took_both);
    jsonw_key(w, "gave_up");
    jsonw_bool(w, t->gave_up);
    /* Offsets from the task's own start_ms. */
    jsonw_key(w, "segments");
    jsonw_array(w);
    for (size_t i = 0; i < t->n_seg; i++) {
        const struct segment *s = &t->seg[i];
        jsonw_object(w);
        jsonw_key(w, "lock");
        jsonw_str(w, lock_names[s->lock]);
        jsonw_key(w, "state");
        jsonw_str(w, seg_names[s->what]);
        jsonw_key(w, "from_ms");
        jsonw_ms(w, clock_offset_ms(t->start_ns, s->from_ns));
        jsonw_key(w, "to_ms");
        jsonw_ms(
            w, clock_offset_ms(t->start_ns, s->to_ns ? s->to_ns : s->from_ns));
        jsonw_end(w);
    }
    jsonw_end(w);
}

static double estimate_ms(const struct demo_args *a, enum engine_mode mode,
                          const struct app *app)
{
    (void)app;
    double hold = (double)a->v[P_HOLD_MS];
    return mode == ENGINE_SEQUENTIAL ? 2 * hold : 2 * hold + STEP_MS;
}

static const struct engine_work work = {.compute = compute};

static const enum engine_mode modes[] = {ENGINE_SEQUENTIAL, ENGINE_THREADS};
static const char *const outcome[] = {"deadlocked", NULL};

const struct demo demo_deadlock = {
    .name = "deadlock",
    .label = "locks",
    .summary = "Deadlock demo: two tasks take two locks",
    .lesson = "Two tasks each take two locks, holding the first hold_ms "
              "before asking for the second. Look for: with order=opposite "
              "on threads each holds what the other waits for; the service "
              "sees the cycle in its wait-for graph, names it, and both "
              "tasks give up and let go (the timeline shows holding solid, "
              "waiting hatched). With order=same one waits and both "
              "finish. sequential never deadlocks: the second task starts "
              "after the first let go of both.",
    .params = params,
    .n_params = sizeof(params) / sizeof(params[0]),
    .modes = modes,
    .n_modes = sizeof(modes) / sizeof(modes[0]),
    .default_mode = ENGINE_THREADS,
    .outcome = outcome,
    .shrink = "hold_ms",
    .n_tasks = n_tasks,
    .bytes_per_task = sizeof(struct dl_task),
    .estimate_ms = estimate_ms,
    .prepare = prepare,
    .free_state = free_state,
    .work = &work,
    .write_result = write_result,
    .write_task = write_task,
};
