/*
 * overhead: see overhead.h.
 *
 * One measurement = one detached thread running measure(), which owns
 * every unit it creates and gives each back before it reports: threads
 * are released and joined, spawned processes have their channel closed
 * (the worker then exits by itself) and are reaped, SIGKILLed after
 * REAP_WAIT_MS; pool jobs and loop calls are always waited for, since
 * the pool and the loop promise their callbacks (at stop too).
 *
 * Locks: live_lock (the list of live measurements) is taken before a
 * measurement's own mu, never after. The done callback runs with
 * neither held, after the measurement has left the list, so that the
 * owner may free it from there on.
 */
#include "overhead.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "container.h"
#include "frame.h"
#include "job.h"
#include "log.h"
#include "loop.h"
#include "pool.h"
#include "proc.h"

#define ERROR_MAX     160
#define REAP_WAIT_MS  2000 /* a released process, before SIGKILL */
#define POLL_SLICE_MS 50   /* how soon a wait notices a cancel */
#define HOLD_MAX_NS   (2000ull * 1000000u) /* a hold job, at most */

const char *const overhead_mode_names[OVERHEAD_MODES] = {"threads", "processes",
                                                         "spawn", "async"};

struct thread_unit {
    struct overhead *o;
    pthread_t tid;
    uint64_t create_ns;
    uint64_t first_ns; /* under o->mu */
    void *stack;
    size_t stack_size;
};

struct pool_unit {
    struct pool_job job;
    struct job_hold hold;
    struct overhead *o;
    uint64_t submit_ns;
    bool done; /* under o->mu */
};

struct spawn_unit {
    pid_t pid;
    int sock;
};

struct async_unit {
    struct loop_call call;
    struct overhead *o;
    size_t index;
    uint64_t post_ns;
    uint64_t run_ns;
};

struct overhead {
    struct overhead_spec spec;
    pthread_mutex_t mu;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    int cancel;          /* 0, or the status a cancel asked for */
    bool reported;
    int status;
    char error[ERROR_MAX];
    struct overhead_unit *units;
    size_t n_units; /* measured */
    uint64_t started_ns, ended_ns, deadline_ns;
    uint64_t rss_before, rss_after; /* threads: the process's RSS */
    /* threads */
    size_t checked_in;
    bool released;
    /* pool jobs and loop calls in flight */
    size_t pending;
    size_t async_ran; /* units run when the chain ended */
    bool async_posting_done;
    atomic_bool async_go;  /* a cancel stops the chain */
    struct overhead *next; /* the live list */
};

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t live_cond = PTHREAD_COND_INITIALIZER;
static struct overhead *live_head;
static size_t live_threads; /* measurement threads not yet gone */
static bool live_stopping;

static void *measure(void *arg);
static int measure_threads(struct overhead *o);
static int measure_pool(struct overhead *o);
static int measure_spawn(struct overhead *o);
static int measure_async(struct overhead *o);
static int stop_reason(struct overhead *o);
static int wait_cond(struct overhead *o, uint64_t until_ns);
static void fail(struct overhead *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static uint64_t self_rss(void);
static int cmp_u64(const void *a, const void *b);
static void reap(pid_t pid);

size_t overhead_units_max(enum overhead_mode mode, int workers)
{
    switch (mode) {
    case OVERHEAD_THREADS:
        return OVERHEAD_THREADS_MAX;
    case OVERHEAD_PROCESSES:
        (void)workers;
        return OVERHEAD_POOL_MAX;
    case OVERHEAD_SPAWN:
        return OVERHEAD_SPAWN_MAX;
    case OVERHEAD_ASYNC:
        return OVERHEAD_ASYNC_MAX;
    default:
        return 0;
    }
}

uint64_t overhead_cost_bytes(enum overhead_mode mode, size_t units)
{
    uint64_t per = sizeof(struct overhead_unit);
    switch (mode) {
    case OVERHEAD_THREADS:
        /* What a parked thread commits: a few stack pages and its
         * descriptor (measured about 8-12 KiB here), rounded up. */
        per += sizeof(struct thread_unit) + 16384;
        break;
    case OVERHEAD_PROCESSES:
        per += sizeof(struct pool_unit);
        break;
    case OVERHEAD_SPAWN:
        per += sizeof(struct spawn_unit);
        break;
    case OVERHEAD_ASYNC:
        per += sizeof(struct async_unit);
        break;
    default:
        break;
    }
    return sizeof(struct overhead) + 4096 + per * units;
}

struct overhead *overhead_new(const struct overhead_spec *spec)
{
    if (spec->mode >= OVERHEAD_MODES || spec->units == 0 ||
        spec->units > overhead_units_max(spec->mode, spec->workers))
        return NULL;
    struct overhead *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->spec = *spec;
    o->units = calloc(spec->units, sizeof(*o->units));
    if (!o->units) {
        free(o);
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&o->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&o->mu, NULL);
    return o;
}

int overhead_run(struct overhead *o)
{
    o->started_ns = clock_now_ns();
    o->deadline_ns = o->started_ns + (uint64_t)OVERHEAD_DEADLINE_MS * 1000000u;

    pthread_mutex_lock(&live_lock);
    size_t live = 0;
    for (struct overhead *x = live_head; x; x = x->next)
        live++;
    int rc = live_stopping               ? -ESHUTDOWN
             : live >= OVERHEAD_LIVE_MAX ? -EAGAIN
                                         : 0;
    if (rc == 0) {
        pthread_attr_t attr;
        pthread_t t;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        o->next = live_head;
        live_head = o;
        live_threads++;
        rc = -pthread_create(&t, &attr, measure, o);
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            live_head = o->next;
            live_threads--;
        }
    }
    pthread_mutex_unlock(&live_lock);
    if (rc != 0)
        o->ended_ns = clock_now_ns();
    return rc;
}

void overhead_cancel(struct overhead *o, int status)
{
    pthread_mutex_lock(&o->mu);
    if (!o->reported && o->cancel == 0) {
        o->cancel = status;
        pthread_cond_broadcast(&o->cond);
    }
    pthread_mutex_unlock(&o->mu);
}

size_t overhead_n_units(const struct overhead *o)
{
    return o->n_units;
}

const struct overhead_unit *overhead_units(const struct overhead *o)
{
    return o->units;
}

enum overhead_mode overhead_mode_of(const struct overhead *o)
{
    return o->spec.mode;
}

const char *overhead_error(const struct overhead *o)
{
    return o->error;
}

double overhead_wall_ms(const struct overhead *o)
{
    return clock_ms_between(o->started_ns, o->ended_ns);
}

void overhead_free(struct overhead *o)
{
    if (!o)
        return;
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cond);
    free(o->units);
    free(o);
}

void overhead_stop_all(void)
{
    pthread_mutex_lock(&live_lock);
    live_stopping = true;
    for (struct overhead *o = live_head; o; o = o->next)
        overhead_cancel(o, -ESHUTDOWN);
    pthread_mutex_unlock(&live_lock);
}

bool overhead_wait_idle(int timeout_ms)
{
    uint64_t until = clock_now_ns() + (uint64_t)timeout_ms * 1000000u;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&live_lock);
    while (live_threads > 0 && clock_now_ns() < until) {
        if (pthread_cond_timedwait(&live_cond, &live_lock, &ts) == ETIMEDOUT)
            break;
    }
    bool idle = live_threads == 0;
    pthread_mutex_unlock(&live_lock);
    return idle;
}

int overhead_proc_memory(pid_t pid, uint64_t *pss, uint64_t *rss)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    int found = 0;
    *pss = *rss = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long kib;
        if (sscanf(line, "Pss: %llu kB", &kib) == 1) {
            *pss = kib * 1024u;
            found |= 1;
        } else if (sscanf(line, "Rss: %llu kB", &kib) == 1) {
            *rss = kib * 1024u;
            found |= 2;
        }
    }
    fclose(f);
    return found == 3 ? 0 : -EPROTO;
}

int overhead_worker_hold(const void *params, uint32_t len, void *out,
                         uint32_t cap, uint32_t *out_len)
{
    struct job_hold hold;
    (void)out;
    (void)cap;
    if (len != sizeof(hold))
        return -EINVAL;
    memcpy(&hold, params, sizeof(hold));
    /* A hold is released by the clock: a worker reads nothing while it
     * runs a job. Capped, so that a wrong time cannot keep it. */
    uint64_t now = clock_now_ns();
    uint64_t until = hold.release_ns;
    if (until > now + HOLD_MAX_NS)
        until = now + HOLD_MAX_NS;
    struct timespec ts = {.tv_sec = (time_t)(until / 1000000000u),
                          .tv_nsec = (long)(until % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
    *out_len = 0;
    return 0;
}

void overhead_figures(const struct overhead *o, struct overhead_figures *f)
{
    memset(f, 0, sizeof(*f));
    size_t n = o->n_units;
    f->n = n;
    switch (o->spec.mode) {
    case OVERHEAD_THREADS:
        snprintf(f->start_method, sizeof(f->start_method),
                 "pthread_create() called to the new thread's first line "
                 "(CLOCK_MONOTONIC both), one at a time, the earlier ones "
                 "alive and parked");
        snprintf(f->memory_method, sizeof(f->memory_method),
                 "resident pages of each thread's stack mapping (mincore() "
                 "over pthread_getattr_np()'s stack: stack, TLS, "
                 "descriptor) while all are alive; rss: the stack "
                 "reserved");
        break;
    case OVERHEAD_PROCESSES:
        snprintf(f->start_method, sizeof(f->start_method),
                 "a job submitted to the running prefork pool to its start "
                 "in the worker (the job's start_ns), one job per worker "
                 "at a time, each holding its worker %d ms",
                 OVERHEAD_POOL_HOLD_MS);
        snprintf(f->memory_method, sizeof(f->memory_method),
                 "PSS of the pool worker that ran the job "
                 "(/proc/PID/smaps_rollup), read after it; rss: its RSS. "
                 "The pool's processes stay alive between jobs");
        break;
    case OVERHEAD_SPAWN:
        snprintf(f->start_method, sizeof(f->start_method),
                 "posix_spawn() of the service binary in worker mode to its "
                 "hello read by the service (ready for work), one at a "
                 "time, the earlier ones still alive");
        snprintf(f->memory_method, sizeof(f->memory_method),
                 "PSS of each process while all are alive "
                 "(/proc/PID/smaps_rollup); rss: its RSS");
        break;
    case OVERHEAD_ASYNC:
        snprintf(f->start_method, sizeof(f->start_method),
                 "a call posted on the event loop from the loop thread "
                 "(as a coroutine creates a task) to its first "
                 "instruction, one turn of the loop; each unit creates the "
                 "next");
        snprintf(f->memory_method, sizeof(f->memory_method),
                 "the bytes of the task's record (a parked callback on the "
                 "loop: it holds no stack of its own)");
        break;
    default:
        break;
    }
    if (n == 0)
        return;
    uint64_t *v = malloc(n * sizeof(*v));
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        v[i] = o->units[i].start_ns;
    qsort(v, n, sizeof(*v), cmp_u64);
    f->start_us_min = (double)v[0] / 1000.0;
    f->start_us_median = (double)v[n / 2] / 1000.0;
    size_t p99 = (n * 99 + 99) / 100; /* ceil(0.99 n), 1-based */
    f->start_us_p99 = (double)v[(p99 ? p99 : 1) - 1] / 1000.0;
    for (size_t i = 0; i < n; i++)
        v[i] = o->units[i].bytes;
    qsort(v, n, sizeof(*v), cmp_u64);
    f->bytes_min = (double)v[0];
    f->bytes_median = (double)v[n / 2];
    for (size_t i = 0; i < n; i++)
        v[i] = o->units[i].rss;
    qsort(v, n, sizeof(*v), cmp_u64);
    f->rss_median = (double)v[n / 2];
    free(v);
    if (o->spec.mode == OVERHEAD_THREADS && o->rss_after > o->rss_before)
        f->rss_delta_per_unit =
            (double)(o->rss_after - o->rss_before) / (double)n;
}

/* ------------------------------------------------------------------ */

static void *measure(void *arg)
{
    struct overhead *o = arg;
    int status;
    switch (o->spec.mode) {
    case OVERHEAD_THREADS:
        status = measure_threads(o);
        break;
    case OVERHEAD_PROCESSES:
        status = measure_pool(o);
        break;
    case OVERHEAD_SPAWN:
        status = measure_spawn(o);
        break;
    default:
        status = measure_async(o);
        break;
    }
    o->ended_ns = clock_now_ns();
    if (status != 0 && o->error[0] == '\0')
        fail(o, "%s",
             status == -ECANCELED   ? "the client went away"
             : status == -ESHUTDOWN ? "the service is stopping"
             : status == -ETIMEDOUT ? "past the deadline"
                                    : strerror(-status));
    o->status = status;

    /* Off the list first: after done the owner may free o. */
    pthread_mutex_lock(&live_lock);
    for (struct overhead **p = &live_head; *p; p = &(*p)->next) {
        if (*p == o) {
            *p = o->next;
            break;
        }
    }
    pthread_mutex_lock(&o->mu);
    o->reported = true;
    pthread_mutex_unlock(&o->mu);
    pthread_mutex_unlock(&live_lock);

    o->spec.done(o, status, o->spec.done_arg);

    pthread_mutex_lock(&live_lock);
    live_threads--;
    pthread_cond_broadcast(&live_cond);
    pthread_mutex_unlock(&live_lock);
    return NULL;
}

/* The measurement's thread: 0, or why to stop now. Under o->mu. */
static int stop_reason(struct overhead *o)
{
    if (o->cancel)
        return o->cancel;
    if (clock_now_ns() >= o->deadline_ns)
        return -ETIMEDOUT;
    return 0;
}

/* Waits on o->cond until signalled or until_ns (0: the deadline). Under
 * o->mu. */
static int wait_cond(struct overhead *o, uint64_t until_ns)
{
    uint64_t until = until_ns ? until_ns : o->deadline_ns;
    struct timespec ts = {.tv_sec = (time_t)(until / 1000000000u),
                          .tv_nsec = (long)(until % 1000000000u)};
    return pthread_cond_timedwait(&o->cond, &o->mu, &ts);
}

static void fail(struct overhead *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->error, sizeof(o->error), fmt, ap);
    va_end(ap);
}

static uint64_t self_rss(void)
{
    unsigned long long size, resident;
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f)
        return 0;
    int got = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    if (got != 2)
        return 0;
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* ---- threads ---- */

static void *unit_thread(void *arg)
{
    struct thread_unit *u = arg;
    uint64_t first = clock_now_ns(); /* the first thing it does */
    struct overhead *o = u->o;
    pthread_attr_t attr;
    void *stack = NULL;
    size_t stack_size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &stack, &stack_size);
        pthread_attr_destroy(&attr);
    }
    pthread_mutex_lock(&o->mu);
    u->first_ns = first;
    u->stack = stack;
    u->stack_size = stack_size;
    o->checked_in++;
    pthread_cond_broadcast(&o->cond);
    while (!o->released)
        pthread_cond_wait(&o->cond, &o->mu);
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

/* Resident bytes of [addr, addr + len) (mincore), 0 when unknown. */
static uint64_t resident_bytes(void *addr, size_t len, unsigned char *vec,
                               size_t vec_cap)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)addr & ~(uintptr_t)(page - 1);
    uintptr_t hi = (uintptr_t)addr + len;
    size_t pages = (hi - lo + page - 1) / page;
    if (!addr || pages > vec_cap || mincore((void *)lo, hi - lo, vec) != 0)
        return 0;
    uint64_t n = 0;
    for (size_t i = 0; i < pages; i++)
        n += vec[i] & 1u;
    return n * page;
}

static int measure_threads(struct overhead *o)
{
    size_t n = o->spec.units, created = 0;
    int rc = 0;
    struct thread_unit *u = calloc(n, sizeof(*u));
    size_t vec_cap = 1u << 16; /* pages: a 256 MiB stack at most */
    unsigned char *vec = malloc(vec_cap);
    if (!u || !vec) {
        rc = -ENOMEM;
        goto out_free;
    }
    o->rss_before = self_rss();
    /* One at a time, each waited for: the latency of one start, not of
     * a crowd of new threads queueing for two cores. */
    for (; created < n && rc == 0; created++) {
        u[created].o = o;
        u[created].create_ns = clock_now_ns();
        int err =
            pthread_create(&u[created].tid, NULL, unit_thread, &u[created]);
        if (err != 0) {
            fail(o, "pthread_create failed after %zu threads: %s", created,
                 strerror(err));
            rc = -err;
            break;
        }
        pthread_mutex_lock(&o->mu);
        while (o->checked_in <= created && rc == 0) {
            rc = stop_reason(o);
            if (rc == 0)
                wait_cond(o, 0);
        }
        pthread_mutex_unlock(&o->mu);
    }
    if (rc == 0) {
        o->rss_after = self_rss();
        for (size_t i = 0; i < n; i++) {
            o->units[i].start_ns = u[i].first_ns > u[i].create_ns
                                       ? u[i].first_ns - u[i].create_ns
                                       : 0;
            o->units[i].bytes =
                resident_bytes(u[i].stack, u[i].stack_size, vec, vec_cap);
            o->units[i].rss = u[i].stack_size;
            o->units[i].id = (int32_t)i;
        }
        o->n_units = n;
    }
    /* Release and join every thread created, whatever happened. */
    pthread_mutex_lock(&o->mu);
    o->released = true;
    pthread_cond_broadcast(&o->cond);
    pthread_mutex_unlock(&o->mu);
    for (size_t i = 0; i < created; i++)
        pthread_join(u[i].tid, NULL);
out_free:
    free(vec);
    free(u);
    return rc;
}

/* ---- processes: jobs on the prefork pool ---- */

static void on_pool_job(struct pool_job *job)
{
    struct pool_unit *u = job->owner;
    struct overhead *o = u->o;
    pthread_mutex_lock(&o->mu);
    u->done = true;
    o->pending--;
    pthread_cond_broadcast(&o->cond);
    pthread_mutex_unlock(&o->mu);
}

static int measure_pool(struct overhead *o)
{
    size_t n = o->spec.units;
    size_t batch_max = (size_t)(o->spec.workers > 0 ? o->spec.workers : 1);
    int rc = 0;
    struct pool_unit *u = calloc(batch_max, sizeof(*u));
    struct pool_job *jobs[POOL_WORKERS_MAX];
    if (!u)
        return -ENOMEM;
    if (batch_max > POOL_WORKERS_MAX)
        batch_max = POOL_WORKERS_MAX;

    size_t at = 0;
    while (at < n && rc == 0) {
        size_t k = n - at < batch_max ? n - at : batch_max;
        pthread_mutex_lock(&o->mu);
        rc = stop_reason(o);
        pthread_mutex_unlock(&o->mu);
        if (rc)
            break;
        uint64_t now = clock_now_ns();
        for (size_t i = 0; i < k; i++) {
            memset(&u[i], 0, sizeof(u[i]));
            u[i].o = o;
            u[i].hold.release_ns =
                now + (uint64_t)OVERHEAD_POOL_HOLD_MS * 1000000u;
            u[i].job.kind = JOB_HOLD;
            u[i].job.params = &u[i].hold;
            u[i].job.params_len = sizeof(u[i].hold);
            u[i].job.client = o->spec.client;
            u[i].job.done = on_pool_job;
            u[i].job.owner = &u[i];
            jobs[i] = &u[i].job;
        }
        pthread_mutex_lock(&o->mu);
        o->pending = k;
        pthread_mutex_unlock(&o->mu);
        now = clock_now_ns();
        for (size_t i = 0; i < k; i++)
            u[i].submit_ns = now;
        int sub = pool_submit(o->spec.pool, jobs, k);
        if (sub < 0) {
            fail(o, "the process pool refused %zu jobs: %s", k,
                 sub == -EAGAIN ? "its queue is full" : strerror(-sub));
            rc = sub;
            break;
        }
        /* Every job's callback comes (the pool promises it, at stop
         * too); a cancel takes back what is still queued. */
        pthread_mutex_lock(&o->mu);
        bool took_back = false;
        while (o->pending > 0) {
            int why = stop_reason(o);
            if (why && !took_back) {
                took_back = true;
                rc = why;
                pthread_mutex_unlock(&o->mu);
                for (size_t i = 0; i < k; i++) {
                    if (pool_cancel(o->spec.pool, &u[i].job)) {
                        pthread_mutex_lock(&o->mu);
                        u[i].done = true;
                        u[i].job.status = -ECANCELED;
                        o->pending--;
                        pthread_mutex_unlock(&o->mu);
                    }
                }
                pthread_mutex_lock(&o->mu);
                continue;
            }
            wait_cond(o, why ? clock_now_ns() + POLL_SLICE_MS * 1000000ull : 0);
        }
        pthread_mutex_unlock(&o->mu);
        for (size_t i = 0; i < k && rc == 0; i++) {
            struct pool_job *j = &u[i].job;
            if (j->status != 0) {
                fail(o, "a pool job failed: %s",
                     j->error[0] ? j->error : strerror(-j->status));
                rc = j->status;
                break;
            }
            struct overhead_unit *r = &o->units[at + i];
            r->start_ns =
                j->start_ns > u[i].submit_ns ? j->start_ns - u[i].submit_ns : 0;
            r->id = (int32_t)j->worker_pid;
            uint64_t pss, rss;
            if (overhead_proc_memory(j->worker_pid, &pss, &rss) == 0) {
                r->bytes = pss;
                r->rss = rss;
            }
        }
        if (rc == 0) {
            at += k;
            o->n_units = at;
        }
    }
    free(u);
    return rc;
}

/* ---- spawn: a fresh worker process per unit ---- */

static int measure_spawn(struct overhead *o)
{
    size_t n = o->spec.units, started = 0;
    int rc = 0;
    struct spawn_unit *u = calloc(n, sizeof(*u));
    if (!u)
        return -ENOMEM;
    for (; started < n; started++) {
        pthread_mutex_lock(&o->mu);
        rc = stop_reason(o);
        pthread_mutex_unlock(&o->mu);
        if (rc)
            break;
        uint64_t t0 = clock_now_ns();
        rc = proc_spawn_worker(o->spec.exe, "overhead", &u[started].pid,
                               &u[started].sock);
        if (rc < 0) {
            fail(o, "posix_spawn failed after %zu processes: %s", started,
                 strerror(-rc));
            break;
        }
        /* Ready for work: its hello, read here. */
        struct pollfd pfd = {.fd = u[started].sock, .events = POLLIN};
        int got = 0;
        while (got == 0) {
            pthread_mutex_lock(&o->mu);
            rc = stop_reason(o);
            pthread_mutex_unlock(&o->mu);
            if (rc)
                break;
            got = poll(&pfd, 1, POLL_SLICE_MS);
            if (got < 0 && errno == EINTR)
                got = 0;
        }
        if (rc == 0 && got < 0) {
            rc = -errno;
            fail(o, "waiting for a worker's hello: %s", strerror(-rc));
        }
        uint32_t type = 0;
        size_t len = 0;
        uint8_t buf[64];
        if (rc == 0) {
            int r = frame_recv(u[started].sock, &type, buf, sizeof(buf), &len);
            uint64_t t1 = clock_now_ns();
            if (r < 0 || type != JOB_MSG_HELLO) {
                fail(o, "worker %d did not greet: %s", (int)u[started].pid,
                     r < 0 ? strerror(-r) : "wrong message");
                rc = r < 0 ? r : -EPROTO;
            }
            o->units[started].start_ns = t1 - t0;
            o->units[started].id = (int32_t)u[started].pid;
        }
        if (rc) {
            started++; /* it is running: release it below */
            break;
        }
    }
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) {
            uint64_t pss, rss;
            int r = overhead_proc_memory(u[i].pid, &pss, &rss);
            if (r < 0) {
                fail(o, "reading worker %d's memory: %s", (int)u[i].pid,
                     strerror(-r));
                rc = r;
                break;
            }
            o->units[i].bytes = pss;
            o->units[i].rss = rss;
        }
        if (rc == 0)
            o->n_units = n;
    }
    /* Release: a closed channel makes a worker exit by itself. */
    for (size_t i = 0; i < started; i++)
        close(u[i].sock);
    for (size_t i = 0; i < started; i++)
        reap(u[i].pid);
    free(u);
    return rc;
}

/* Waits for pid, killing it after REAP_WAIT_MS. */
static void reap(pid_t pid)
{
    uint64_t until = clock_now_ns() + REAP_WAIT_MS * 1000000ull;
    for (;;) {
        pid_t r = waitpid(pid, NULL, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            return;
        if (clock_now_ns() >= until)
            break;
        struct timespec ms = {0, 1000000L};
        nanosleep(&ms, NULL);
    }
    log_warn("overhead: worker %d did not exit when released: killed",
             (int)pid);
    proc_kill_reap(pid);
}

/* ---- async: tasks on the event loop ---- */

/*
 * Loop thread: a unit's first instruction. It then creates the next unit,
 * as a coroutine would create a task: a call posted from the loop thread
 * runs on its next turn (loop.c runs the calls taken before it), so each
 * latency is one turn of the loop, not a cross-thread wake-up.
 */
static void on_loop_call(struct loop *loop, struct loop_call *call)
{
    struct async_unit *u = container_of(call, struct async_unit, call);
    struct overhead *o = u->o;
    struct async_unit *all = u - u->index;
    u->run_ns = clock_now_ns();
    size_t next = u->index + 1;
    bool posted = false;
    if (next < o->spec.units && atomic_load(&o->async_go)) {
        all[next].post_ns = clock_now_ns();
        posted = loop_call(loop, &all[next].call) == 0;
    }
    if (!posted) {
        pthread_mutex_lock(&o->mu);
        o->async_ran = next;
        o->async_posting_done = true;
        pthread_cond_broadcast(&o->cond);
        pthread_mutex_unlock(&o->mu);
    }
}

static int measure_async(struct overhead *o)
{
    size_t n = o->spec.units;
    int rc = 0;
    struct async_unit *u = calloc(n, sizeof(*u));
    if (!u)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        u[i].o = o;
        u[i].index = i;
        u[i].call.fn = on_loop_call;
    }
    atomic_store(&o->async_go, true);
    u[0].post_ns = clock_now_ns();
    rc = loop_call(o->spec.loop, &u[0].call);
    if (rc < 0) {
        free(u);
        return rc;
    }
    /* The chain ends by itself (the last unit, a cancel, the loop
     * stopping); every call it posted has run by then. */
    pthread_mutex_lock(&o->mu);
    while (!o->async_posting_done) {
        int why = stop_reason(o);
        if (why) {
            rc = why;
            atomic_store(&o->async_go, false);
        }
        wait_cond(o, why ? clock_now_ns() + POLL_SLICE_MS * 1000000ull : 0);
    }
    if (rc == 0 && o->async_ran < n)
        rc = -ESHUTDOWN; /* the loop refused a call: it is stopping */
    pthread_mutex_unlock(&o->mu);
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) {
            o->units[i].start_ns =
                u[i].run_ns > u[i].post_ns ? u[i].run_ns - u[i].post_ns : 0;
            o->units[i].bytes = sizeof(struct async_unit);
            o->units[i].rss = sizeof(struct async_unit);
            o->units[i].id = (int32_t)i;
        }
        o->n_units = n;
    }
    free(u);
    return rc;
}
