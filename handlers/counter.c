/*
 * counter: /run/counter, the shared-state demo. tasks tasks each add 1 to
 * one counter increments times, with one of three kinds of sync:
 *   none    read, add, write back as separate steps (a relaxed atomic load,
 *           then a relaxed atomic store): updates get lost when tasks
 *           overlap, yet the program stays well-defined C and TSan-clean;
 *   lock    a mutex around each increment; a task times its waits for the
 *           lock only when a trylock finds it taken, so an uncontended
 *           increment pays no clock read;
 *   atomic  one atomic add (atomic_fetch_add, relaxed: the counter orders
 *           nothing else).
 * The answer says what was expected, what the counter holds (final) and
 * the difference (lost), the cost of an increment, and per task its own
 * count and its time waiting for the lock.
 *
 * Modes:
 *   sequential, threads  the counter lives in the run's state;
 *   processes  the workers are exec'd processes started before the run, so
 *           no memory of the service is theirs. With sync=none each worker
 *           counts in its own memory and sends its count back: the
 *           service's counter never moves (final 0), which the answer's
 *           note says. With lock and atomic the counter (and its lock) live
 *           in a POSIX shared memory segment named per run
 *           (/conlab-counter-<pid>-<n>), created before the run, opened by
 *           each job from its parameters and unlinked when the run's state
 *           is freed, whatever the workers did. Its lock is a
 *           PTHREAD_PROCESS_SHARED, PTHREAD_MUTEX_ROBUST mutex: a worker
 *           killed while holding it hands it to the next taker with
 *           EOWNERDEAD (made consistent and used: the counter is one word,
 *           never half-written), and the service itself never takes it, so
 *           no death can hang the service. Jobs are slices of at most
 *           SLICE_INCREMENTS of the sync (about ENGINE_SLICE_NS).
 *   async   on the event loop: each task counts ASYNC_CHUNK increments per
 *           loop turn and gives the loop back between chunks, never in the
 *           middle of an increment, so nothing is lost even with sync=none:
 *           only one task runs at a time. A loop turn holds at most
 *           TASKS_MAX chunks (a few ms with the lock), so the loop's timers
 *           and transfers wait no longer than that, and the run as a whole
 *           is bounded by --job-timeout-ms like any other.
 *
 * A start gate (threads): a demo thread starts some 50 to 300 us after
 * another, while a million unsynchronised increments take about 250 us
 * here, so tasks that just started would mostly run one after the other
 * and show nothing. Each task waits (at most GATE_NS, spinning) until all
 * the tasks that can run at once (min(tasks, demo threads)) have started,
 * then counts: the tasks overlap as the lesson needs. The wait is not
 * counted in the task's time per increment.
 *
 * Threads: compute() on demo threads, each on its own task's record and
 * the shared counter; the async hooks on the loop thread; the processes
 * hooks on the pool thread; the answer on a request thread after the run.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../server/app.h"
#include "../server/clock.h"
#include "../server/container.h"
#include "../server/loop.h"
#include "demo.h"

extern const struct demo demo_counter;

#define TASKS_MAX      16
#define INCREMENTS_MAX 10000000
#define CHUNK          65536 /* increments between engine_yield()s */
#define ASYNC_CHUNK    10000 /* increments per loop turn and task */
#define SHM_PREFIX     "/conlab-counter-"
#define SHM_NAME_MAX   40
#define GATE_NS        (50u * 1000u * 1000u) /* the start gate, at most */

enum counter_sync { SYNC_NONE, SYNC_LOCK, SYNC_ATOMIC, SYNCS };

static const char *const sync_names[] = {"none", "lock", "atomic", NULL};

/*
 * Increments per worker job slice, so that a slice stays near
 * ENGINE_SLICE_NS even when contended (none is never contended there: each
 * worker has its own counter).
 */
static const uint64_t slice_increments[SYNCS] = {20000000, 2000000, 1000000};

/* ns per increment on the development VM: alone, and two tasks contending
 * (what estimate_ms() models with). */
static const double ns_alone[SYNCS] = {1.5, 6.0, 20.0};
static const double ns_contended[SYNCS] = {15.0, 40.0, 120.0};

/* The counter, and the lock of sync=lock: in the state or in shared memory. */
struct counter_shared {
    _Atomic uint64_t value;
    pthread_mutex_t lock;
};

/* What one task (or one worker slice) did. */
struct counter_tally {
    uint64_t count;     /* increments it made */
    uint64_t busy_ns;   /* time spent counting */
    uint64_t wait_ns;   /* lock: time waiting for it when it was taken */
    uint64_t contended; /* lock: acquisitions that had to wait */
    uint64_t recovered; /* lock: EOWNERDEAD taken over (processes) */
};

/* A worker job: one slice of one task. */
struct job_counter {
    uint32_t sync;
    uint32_t pad;
    uint64_t increments;
    char shm[SHM_NAME_MAX]; /* "" for sync=none */
};

struct counter_timer {
    struct loop_timer timer;
    struct engine_run *run;
    struct counter_state *st;
    size_t task;
};

struct counter_state {
    enum counter_sync sync;
    enum engine_mode mode;
    uint64_t increments;
    size_t n;
    struct counter_shared local;
    bool local_lock;               /* local.lock was initialised */
    struct counter_shared *shared; /* &local, or the mapped segment */
    char shm[SHM_NAME_MAX];        /* the segment's name, "" if none */
    struct counter_tally *tasks;
    uint64_t *own; /* processes, none: each worker's own counter */
    /* threads: the start gate */
    _Atomic size_t arrived;
    size_t gate; /* tasks to wait for: min(tasks, lanes); 0 no gate */
    /* async */
    struct loop *loop;
    struct counter_timer *timers;
    uint64_t deadline_ns;
    int timeout_ms;
};

enum { P_TASKS, P_INCREMENTS, P_SYNC };

static const struct demo_param params[] = {
    [P_TASKS] = {.name = "tasks",
                 .type = DEMO_INT,
                 .min = 1,
                 .max = TASKS_MAX,
                 .def = 2,
                 .doc = "Tasks that each add 1 to the one counter "
                        "`increments` times."},
    [P_INCREMENTS] = {.name = "increments",
                      .type = DEMO_INT,
                      .min = 1,
                      .max = INCREMENTS_MAX,
                      .def = 1000000,
                      .scales_time = true,
                      .doc = "Increments per task."},
    [P_SYNC] = {.name = "sync",
                .type = DEMO_ENUM,
                .values = sync_names,
                .def = SYNC_NONE,
                .doc = "`none`: read, add and write back as separate steps "
                       "(updates get lost when tasks overlap); `lock`: a "
                       "mutex around each increment; `atomic`: one atomic "
                       "add."},
};

static size_t n_tasks(const struct demo_args *a)
{
    return (size_t)a->v[P_TASKS];
}

/* ---- the increments ---- */

/*
 * Takes the lock, timing the wait only when a trylock finds it taken. A
 * robust lock whose holder died (processes) comes back EOWNERDEAD: the
 * counter is one word, never half-written, so it is marked consistent
 * and used. Returns 0 or the error of pthread_mutex_lock.
 */
static int take_lock(struct counter_shared *c, struct counter_tally *t)
{
    int rc = pthread_mutex_trylock(&c->lock);
    if (rc == EBUSY) {
        uint64_t from = clock_now_ns();
        rc = pthread_mutex_lock(&c->lock);
        t->wait_ns += clock_now_ns() - from;
        t->contended++;
    }
    if (rc == EOWNERDEAD) {
        t->recovered++;
        rc = pthread_mutex_consistent(&c->lock);
    }
    return rc;
}

/* n increments of c by sync; the count and waits go into t. */
static int count_up(struct counter_shared *c, enum counter_sync sync,
                    uint64_t n, struct counter_tally *t)
{
    uint64_t from = clock_now_ns();
    int rc = 0;
    switch (sync) {
    case SYNC_NONE:
        for (uint64_t i = 0; i < n; i++) {
            /* Two steps on purpose: another task may write in between. */
            uint64_t v = atomic_load_explicit(&c->value, memory_order_relaxed);
            atomic_store_explicit(&c->value, v + 1, memory_order_relaxed);
        }
        break;
    case SYNC_LOCK:
        for (uint64_t i = 0; i < n && rc == 0; i++) {
            rc = take_lock(c, t);
            if (rc != 0)
                break;
            uint64_t v = atomic_load_explicit(&c->value, memory_order_relaxed);
            atomic_store_explicit(&c->value, v + 1, memory_order_relaxed);
            pthread_mutex_unlock(&c->lock);
        }
        break;
    case SYNC_ATOMIC:
        for (uint64_t i = 0; i < n; i++)
            atomic_fetch_add_explicit(&c->value, 1, memory_order_relaxed);
        break;
    default:
        return -EINVAL;
    }
    t->busy_ns += clock_now_ns() - from;
    if (rc == 0)
        t->count += n;
    return -rc;
}

/* A process-shared robust mutex (works the same in one process). */
static int lock_init(pthread_mutex_t *m, bool shared)
{
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc == 0 && shared)
        rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (rc == 0 && shared)
        rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    if (rc == 0)
        rc = pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    return -rc;
}

/* ---- the shared memory segment (processes, lock and atomic) ---- */

static _Atomic unsigned shm_serial;

/* Creates, sizes and maps the run's segment; its name in st->shm. */
static int shm_create(struct counter_state *st)
{
    snprintf(st->shm, sizeof(st->shm), SHM_PREFIX "%ld-%u", (long)getpid(),
             atomic_fetch_add(&shm_serial, 1));
    int fd = shm_open(st->shm, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        st->shm[0] = '\0';
        return -errno;
    }
    int rc = 0;
    void *at = MAP_FAILED;
    if (ftruncate(fd, sizeof(struct counter_shared)) < 0)
        rc = -errno;
    if (rc == 0)
        at = mmap(NULL, sizeof(struct counter_shared), PROT_READ | PROT_WRITE,
                  MAP_SHARED, fd, 0);
    if (rc == 0 && at == MAP_FAILED)
        rc = -errno;
    close(fd);
    if (rc == 0) {
        st->shared = at;
        atomic_init(&st->shared->value, 0);
        rc = lock_init(&st->shared->lock, true);
    }
    if (rc < 0) {
        if (at != MAP_FAILED)
            munmap(at, sizeof(struct counter_shared));
        st->shared = NULL;
        shm_unlink(st->shm);
        st->shm[0] = '\0';
    }
    return rc;
}

/* In a worker: maps the segment a job names (only ours: SHM_PREFIX). */
static struct counter_shared *shm_attach(const char *name)
{
    if (strncmp(name, SHM_PREFIX, strlen(SHM_PREFIX)) != 0 ||
        strchr(name + 1, '/'))
        return NULL;
    int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    struct stat sb;
    void *at = MAP_FAILED;
    if (fstat(fd, &sb) == 0 &&
        sb.st_size == (off_t)sizeof(struct counter_shared))
        at = mmap(NULL, sizeof(struct counter_shared), PROT_READ | PROT_WRITE,
                  MAP_SHARED, fd, 0);
    close(fd);
    return at == MAP_FAILED ? NULL : at;
}

/* ---- state ---- */

static void free_state(void *arg)
{
    struct counter_state *st = arg;
    if (st->shm[0]) {
        /* Unlinked whatever the workers did: a dead one keeps nothing. The
         * segment's lock is not destroyed: a killed worker may hold it. */
        munmap(st->shared, sizeof(struct counter_shared));
        shm_unlink(st->shm);
    }
    if (st->local_lock)
        pthread_mutex_destroy(&st->local.lock);
    free(st->tasks);
    free(st->own);
    free(st->timers);
    free(st);
}

static void *prepare(const struct demo_args *a, enum engine_mode mode,
                     const struct demo_env *env)
{
    struct counter_state *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->sync = (enum counter_sync)a->v[P_SYNC];
    st->mode = mode;
    st->increments = (uint64_t)a->v[P_INCREMENTS];
    st->n = (size_t)a->v[P_TASKS];
    st->loop = env->app->loop;
    if (mode == ENGINE_THREADS)
        st->gate = engine_lanes(env->app->engine, mode, st->n) < st->n
                       ? engine_lanes(env->app->engine, mode, st->n)
                       : st->n;
    st->timeout_ms = env->app->cfg->job_timeout_ms;
    st->tasks = calloc(st->n, sizeof(st->tasks[0]));
    st->local_lock = lock_init(&st->local.lock, false) == 0;
    bool ok = st->tasks != NULL && st->local_lock;
    atomic_init(&st->local.value, 0);
    st->shared = &st->local;
    if (ok && mode == ENGINE_PROCESSES && st->sync == SYNC_NONE) {
        st->own = calloc(st->n, sizeof(st->own[0]));
        ok = st->own != NULL;
    } else if (ok && mode == ENGINE_PROCESSES) {
        ok = shm_create(st) == 0;
    }
    if (ok && mode == ENGINE_ASYNC) {
        st->timers = calloc(st->n, sizeof(st->timers[0]));
        ok = st->timers != NULL;
    }
    if (!ok) {
        free_state(st);
        return NULL;
    }
    return st;
}

/* ---- sequential and threads ---- */

/* Waits until st->gate tasks have arrived, GATE_NS at most. */
static void start_gate(struct counter_state *st)
{
    if (st->gate < 2)
        return;
    atomic_fetch_add(&st->arrived, 1);
    uint64_t until = clock_now_ns() + GATE_NS;
    /* A spin, not a yield: a yielding thread may come back too late. */
    for (unsigned i = 0; atomic_load(&st->arrived) < st->gate; i++) {
        if (i % 1024 == 0 && clock_now_ns() > until)
            break;
        __builtin_ia32_pause();
    }
}

static int compute(struct engine_ctx *ctx, void *arg, size_t task)
{
    struct counter_state *st = arg;
    struct counter_tally *t = &st->tasks[task];
    int rc = 0;
    start_gate(st);
    for (uint64_t done = 0; done < st->increments && rc == 0;) {
        uint64_t n =
            st->increments - done < CHUNK ? st->increments - done : CHUNK;
        rc = count_up(st->shared, st->sync, n, t);
        done += n;
        if (rc == 0 && done < st->increments)
            rc = engine_yield(ctx);
    }
    return rc;
}

/* ---- processes ---- */

static int job(void *arg, size_t task, unsigned slice, struct engine_job *out)
{
    struct counter_state *st = arg;
    uint64_t per = slice_increments[st->sync];
    uint64_t done = (uint64_t)slice * per;
    struct job_counter j = {.sync = st->sync};
    (void)task;
    j.increments = st->increments - done < per ? st->increments - done : per;
    snprintf(j.shm, sizeof(j.shm), "%s", st->shm);
    _Static_assert(sizeof(j) <= ENGINE_JOB_INLINE, "a counter job inline");
    out->kind = demo_kind(&demo_counter);
    memcpy(out->buf, &j, sizeof(j));
    out->params = out->buf;
    out->len = sizeof(j);
    out->last = done + j.increments >= st->increments;
    return 0;
}

/* The worker's tally; with sync=none its own counter comes after it. */
static int absorb(void *arg, size_t task, unsigned slice, const void *result,
                  uint32_t len)
{
    struct counter_state *st = arg;
    struct counter_tally r;
    uint64_t own = 0;
    size_t want = sizeof(r) + (st->sync == SYNC_NONE ? sizeof(own) : 0);
    if (len != want)
        return -EPROTO;
    memcpy(&r, result, sizeof(r));
    if (st->sync == SYNC_NONE)
        memcpy(&own, (const uint8_t *)result + sizeof(r), sizeof(own));
    struct counter_tally *t = &st->tasks[task];
    if (slice == 0)
        memset(t, 0, sizeof(*t));
    t->count += r.count;
    t->busy_ns += r.busy_ns;
    t->wait_ns += r.wait_ns;
    t->contended += r.contended;
    t->recovered += r.recovered;
    if (st->own)
        st->own[task] += own;
    return 0;
}

static int worker_job(const void *in, uint32_t len, void *out, uint32_t cap,
                      uint32_t *out_len)
{
    struct job_counter j;
    struct counter_tally t = {0};
    *out_len = 0;
    if (len != sizeof(j) || cap < sizeof(t) + sizeof(uint64_t))
        return -EINVAL;
    memcpy(&j, in, sizeof(j));
    j.shm[sizeof(j.shm) - 1] = '\0';
    if (j.sync >= SYNCS || j.increments > INCREMENTS_MAX)
        return -EINVAL;
    if (j.sync == SYNC_NONE) {
        /* This process's own memory: nobody else sees this counter. */
        struct counter_shared mine;
        atomic_init(&mine.value, 0);
        count_up(&mine, SYNC_NONE, j.increments, &t);
        uint64_t own = atomic_load(&mine.value);
        memcpy(out, &t, sizeof(t));
        memcpy((uint8_t *)out + sizeof(t), &own, sizeof(own));
        *out_len = sizeof(t) + sizeof(own);
        return 0;
    }
    struct counter_shared *c = shm_attach(j.shm);
    if (!c)
        return -EINVAL;
    int rc = count_up(c, (enum counter_sync)j.sync, j.increments, &t);
    munmap(c, sizeof(*c));
    if (rc < 0)
        return rc;
    memcpy(out, &t, sizeof(t));
    *out_len = sizeof(t);
    return 0;
}

/* ---- async ---- */

/* Loop thread: a task's turn. One chunk, then the loop goes on. */
static void on_turn(struct loop_timer *lt, int status)
{
    struct counter_timer *ct = container_of(lt, struct counter_timer, timer);
    struct counter_state *st = ct->st;
    struct engine_run *run = ct->run;
    struct counter_tally *t = &st->tasks[ct->task];

    /* Removed (-ECANCELED) because the run was cancelled: its status. */
    if (status == 0 || status == -ECANCELED) {
        int stop = engine_run_check(run);
        status = stop ? stop : status;
    }
    if (status == 0 && clock_now_ns() > st->deadline_ns)
        status = -ETIMEDOUT;
    if (status == 0) {
        uint64_t left = st->increments - t->count;
        status = count_up(st->shared, st->sync,
                          left < ASYNC_CHUNK ? left : ASYNC_CHUNK, t);
    }
    if (status == 0 && t->count < st->increments) {
        struct loop_timer *one = &ct->timer;
        ct->timer.due_ns = clock_now_ns();
        status = loop_add_timers(st->loop, &one, 1);
        if (status == 0)
            return;
    }
    engine_task_end(run, ct->task, status, 0,
                    status == -ETIMEDOUT ? "the async count exceeded its "
                                           "deadline (--job-timeout-ms)"
                                         : NULL);
}

static int start_async(struct engine_run *run, void *arg)
{
    struct counter_state *st = arg;
    struct loop_timer **timers = malloc(st->n * sizeof(*timers));
    if (!timers)
        return -ENOMEM;
    uint64_t now = clock_now_ns();
    st->deadline_ns = now + (uint64_t)st->timeout_ms * 1000000u;
    for (size_t i = 0; i < st->n; i++) {
        st->timers[i].run = run;
        st->timers[i].st = st;
        st->timers[i].task = i;
        st->timers[i].timer.due_ns = now;
        st->timers[i].timer.fire = on_turn;
        timers[i] = &st->timers[i].timer;
    }
    int rc = loop_add_timers(st->loop, timers, st->n);
    free(timers);
    return rc;
}

/* Loop thread: a task between turns is in the loop as a timer. */
static void cancel_async(struct engine_run *run, void *arg)
{
    struct counter_state *st = arg;
    (void)run;
    for (size_t i = 0; i < st->n; i++)
        loop_timer_remove(st->loop, &st->timers[i].timer);
}

/* ---- the answer ---- */

static double ns_per(uint64_t ns, uint64_t count)
{
    return count ? (double)ns / (double)count : 0.0;
}

static uint64_t final_of(const struct counter_state *st)
{
    return atomic_load(&st->shared->value);
}

static void write_result(struct jsonw *w, void *arg,
                         const struct engine_run *run)
{
    struct counter_state *st = arg;
    uint64_t expected = st->increments * st->n;
    uint64_t final = final_of(st);
    uint64_t busy = 0, wait = 0, counted = 0, own = 0;
    (void)run;
    for (size_t i = 0; i < st->n; i++) {
        busy += st->tasks[i].busy_ns;
        wait += st->tasks[i].wait_ns;
        counted += st->tasks[i].count;
        own += st->own ? st->own[i] : 0;
    }
    bool separate = st->mode == ENGINE_PROCESSES && st->sync == SYNC_NONE;
    jsonw_key(w, "sync");
    jsonw_str(w, sync_names[st->sync]);
    jsonw_key(w, "expected");
    jsonw_uint(w, expected);
    jsonw_key(w, "final");
    jsonw_uint(w, final);
    jsonw_key(w, "lost");
    jsonw_uint(w, final <= expected ? expected - final : 0);
    jsonw_key(w, "counted");
    jsonw_uint(w, counted);
    jsonw_key(w, "ns_per_increment");
    jsonw_real(w, ns_per(busy, counted));
    jsonw_key(w, "lock_wait_ms");
    jsonw_ms(w, (double)wait / 1e6);
    jsonw_key(w, "shared_memory");
    jsonw_str(w, separate                       ? "none"
                 : st->mode == ENGINE_PROCESSES ? "segment"
                                                : "process");
    if (separate) {
        jsonw_key(w, "sent_back");
        jsonw_uint(w, own);
    }
    jsonw_key(w, "note");
    if (separate)
        jsonw_str(w, "each worker process counted in its own memory: the "
                     "service's counter never moved (final 0), and only "
                     "sending the counts back (sent_back) adds them up; "
                     "that is message passing, not shared memory");
    else if (st->mode == ENGINE_PROCESSES)
        jsonw_str(w, "the counter lives in a shared memory segment every "
                     "worker maps; its lock is a process-shared robust "
                     "mutex, so a worker killed while holding it hands it "
                     "on instead of hanging the others");
    else if (st->mode == ENGINE_ASYNC)
        jsonw_str(w, "one task runs at a time on the event loop and none "
                     "gives the loop up in the middle of an increment (only "
                     "between chunks of 10,000), so no update is lost, even "
                     "without a lock");
    else if (st->mode == ENGINE_SEQUENTIAL)
        jsonw_str(w, "one task after another: nothing overlaps, nothing is "
                     "lost");
    else if (st->sync == SYNC_NONE)
        jsonw_str(w, "read, add and write back are separate steps: when two "
                     "tasks read the same value, one write is lost");
    else
        jsonw_str(w, st->sync == SYNC_LOCK
                         ? "each increment holds the lock: no update is "
                           "lost; the tasks wait for each other"
                         : "one atomic add per increment: no update is lost");
}

static void write_task(struct jsonw *w, void *arg, size_t task)
{
    struct counter_state *st = arg;
    const struct counter_tally *t = &st->tasks[task];
    jsonw_key(w, "count");
    jsonw_uint(w, t->count);
    if (st->own) {
        jsonw_key(w, "own_counter");
        jsonw_uint(w, st->own[task]);
    }
    jsonw_key(w, "ns_per_increment");
    jsonw_real(w, ns_per(t->busy_ns, t->count));
    if (st->sync == SYNC_LOCK) {
        jsonw_key(w, "lock_wait_ms");
        jsonw_ms(w, (double)t->wait_ns / 1e6);
        jsonw_key(w, "contended");
        jsonw_uint(w, t->contended);
        if (t->recovered) {
            jsonw_key(w, "recovered");
            jsonw_uint(w, t->recovered);
        }
    }
}

/*
 * Contended when tasks run at once (threads, processes sharing a
 * segment); alone otherwise. Processes add a pool round trip per slice.
 */
static double estimate_ms(const struct demo_args *a, enum engine_mode mode,
                          const struct app *app)
{
    enum counter_sync sync = (enum counter_sync)a->v[P_SYNC];
    double n = (double)a->v[P_TASKS];
    double total = n * (double)a->v[P_INCREMENTS];
    size_t lanes = engine_lanes(app->engine, mode, (size_t)n);
    if (lanes > (size_t)app->cores)
        lanes = (size_t)app->cores;
    if (lanes < 1)
        lanes = 1;
    bool together = (mode == ENGINE_THREADS || mode == ENGINE_PROCESSES) &&
                    lanes > 1 && n > 1;
    double ns = together ? ns_contended[sync] / (double)lanes : ns_alone[sync];
    if (mode == ENGINE_PROCESSES && sync == SYNC_NONE)
        ns = ns_alone[sync] / (double)lanes;
    double ms = total * ns / 1e6;
    if (mode == ENGINE_PROCESSES)
        ms += n * 0.1;
    return ms;
}

static void cost(const struct demo_args *a, enum engine_mode mode, size_t n,
                 const struct app *app, struct budget_cost *c)
{
    (void)a;
    (void)app;
    if (mode == ENGINE_ASYNC) {
        c->amount[BUDGET_TIMERS] += n;
        c->amount[BUDGET_BYTES] += n * sizeof(struct counter_timer);
    }
}

static const struct engine_work work = {
    .compute = compute,
    .job = job,
    .absorb = absorb,
    .start_async = start_async,
    .cancel_async = cancel_async,
};

static const enum engine_mode modes[] = {ENGINE_SEQUENTIAL, ENGINE_THREADS,
                                         ENGINE_PROCESSES, ENGINE_ASYNC};
static const char *const outcome[] = {"final", NULL};

const struct demo demo_counter = {
    .name = "counter",
    .label = "shared",
    .summary = "Shared-state demo: tasks add 1 to one counter",
    .lesson = "Every task adds 1 to the same counter, increments times. "
              "Look for: with sync=none, threads lose updates (final below "
              "expected) because reading, adding and writing back are "
              "separate steps; lock and atomic lose none, at a price per "
              "increment (ns_per_increment, and the time each task waited "
              "for the lock). Processes share no memory: with none each "
              "worker counts in its own and the service's counter stays 0; "
              "lock and atomic use a shared memory segment. async loses "
              "nothing even without a lock: one task runs at a time and "
              "none yields mid-increment.",
    .params = params,
    .n_params = sizeof(params) / sizeof(params[0]),
    .modes = modes,
    .n_modes = sizeof(modes) / sizeof(modes[0]),
    .default_mode = ENGINE_THREADS,
    .outcome = outcome,
    .shrink = "tasks or increments",
    .n_tasks = n_tasks,
    .cost = cost,
    .bytes_per_task = sizeof(struct counter_tally) + sizeof(uint64_t),
    .estimate_ms = estimate_ms,
    .prepare = prepare,
    .free_state = free_state,
    .work = &work,
    .write_result = write_result,
    .write_task = write_task,
    .worker_job = worker_job,
};
