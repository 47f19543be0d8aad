/*
 * pool: see pool.h.
 *
 * Everything about the workers lives on the pool thread; request threads
 * only touch the job queue and the stats snapshot, both under pool->lock
 * (the only lock here; callbacks never run while it is held). epoll data
 * carries what a descriptor is (PROC_SRC_*) and the worker's slot.
 *
 * The queue is one doubly linked list in arrival order (its head is the
 * oldest job, which the deadline of queued jobs needs), so pool_cancel()
 * unlinks in O(1). Choosing a job for a free worker (take_fair) walks it
 * from the oldest and stops at the first job whose client holds no worker;
 * at worst, when every queued client holds workers, it walks the whole
 * queue: O(queued * log(workers)) under the lock, queued <= --queue,
 * for each job started. Which clients hold workers (p->fair) is the pool
 * thread's alone.
 *
 * Worker life: EMPTY -> spawn -> STARTING -> hello -> IDLE <-> BUSY, and
 * from any of these to DYING (socket closed or process killed) -> pidfd
 * readable -> reaped -> EMPTY, with a respawn time set by the back-off.
 */
#include "changes.h"
#include "pool.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "fair.h"
#include "frame.h"
#include "job.h"
#include "log.h"
#include "proc.h"

#define EARLY_DEATH_NS  (1000u * 1000u * 1000u) /* died within 1 s: early */
#define BACKOFF_BASE_MS 50u
#define BACKOFF_MAX_MS  5000u
#define STOP_WAIT_MS    2000

enum wstate { W_EMPTY, W_STARTING, W_IDLE, W_BUSY, W_DYING };

enum wend { END_NONE, END_TIMEOUT, END_RECYCLE, END_STOP };

struct worker {
    int slot;
    enum wstate state;
    enum wend end;
    struct proc_child pc;
    struct pool_job *job;
    /* the client this worker counts for: from assign() until its next
     * job is chosen, or it goes */
    bool holding;
    uint64_t client;
    uint64_t deadline_ns;
    uint64_t started_ns;
    uint64_t respawn_at_ns;
    unsigned jobs_done;
    unsigned max_jobs;
    unsigned early_deaths;
};

struct pool {
    struct pool_config cfg;
    char exe[PATH_MAX];
    pthread_t thread;
    struct proc_loop loop;
    uint8_t *scratch; /* one job frame being built */
    uint64_t next_id;
    unsigned rng;
    struct fair fair; /* pool thread */
    bool stopped;     /* main thread: pool_stop() has run */

    pthread_mutex_t lock; /* guards everything below */
    /* Counted before every release of lock (changes.h). */
    _Atomic uint64_t changes;
    bool stopping;
    struct pool_job *head, *tail;
    int queued;
    struct pool_stats stats;

    struct worker workers[];
};

/* Releases the lock after counting a possible change of the figures. */
static inline void unlock_changed(struct pool *pool)
{
    changes_unlock(&pool->changes, &pool->lock);
}

static void *pool_main(void *arg);
static void spawn(struct pool *p, struct worker *w);
static void on_sock(struct pool *p, struct worker *w, uint32_t events);
static void on_exit_event(struct pool *p, struct worker *w);
static void on_timer(struct pool *p);
static void dispatch(struct pool *p);
static void assign(struct pool *p, struct worker *w, struct pool_job *job);
static void finish(struct pool *p, struct pool_job *job, int status,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void close_sock(struct pool *p, struct worker *w);
static void kill_worker(struct worker *w);
static void arm_timer(struct pool *p);
static void expire_queued(struct pool *p, uint64_t now);
static struct pool_job *take_head(struct pool *p, uint64_t before);
static struct pool_job *take_fair(struct pool *p);
static void unlink_job(struct pool *p, struct pool_job *job);
static void hold(struct pool *p, struct worker *w, uint64_t client);
static void unhold(struct pool *p, struct worker *w);
static void publish(struct pool *p);
static void count_workers(struct pool *p);
static void shutdown_workers(struct pool *p);

unsigned pool_backoff_ms(unsigned consecutive_crashes)
{
    if (consecutive_crashes == 0)
        return 0;
    if (consecutive_crashes > 8)
        return BACKOFF_MAX_MS;
    unsigned ms = BACKOFF_BASE_MS << (consecutive_crashes - 1);
    return ms < BACKOFF_MAX_MS ? ms : BACKOFF_MAX_MS;
}

struct pool *pool_start(const struct pool_config *cfg, char *err,
                        size_t err_len)
{
    if (cfg->workers < 1 || cfg->workers > POOL_WORKERS_MAX) {
        snprintf(err, err_len, "workers must be 1..%d", POOL_WORKERS_MAX);
        return NULL;
    }
    struct pool *p =
        calloc(1, sizeof(*p) + (size_t)cfg->workers * sizeof(struct worker));
    if (!p) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    p->cfg = *cfg;
    p->loop.epfd = p->loop.evfd = p->loop.tfd = -1;
    p->rng = (unsigned)getpid() ^ (unsigned)clock_now_ns();
    pthread_mutex_init(&p->lock, NULL);
    p->stats.configured = cfg->workers;
    if (strlen(cfg->exe) >= sizeof(p->exe)) {
        snprintf(err, err_len, "worker binary path too long");
        goto out_free;
    }
    strcpy(p->exe, cfg->exe);

    p->scratch = malloc(FRAME_PAYLOAD_MAX);
    if (fair_init(&p->fair, (size_t)cfg->workers) < 0) {
        snprintf(err, err_len, "out of memory");
        goto out_free;
    }
    int rc = p->scratch ? proc_loop_init(&p->loop) : -ENOMEM;
    if (rc < 0) {
        snprintf(err, err_len, "cannot set up the pool: %s", strerror(-rc));
        goto out_free;
    }
    for (int i = 0; i < cfg->workers; i++) {
        struct worker *w = &p->workers[i];
        w->slot = i;
        w->state = W_EMPTY;
        proc_child_init(&w->pc);
    }
    rc = pthread_create(&p->thread, NULL, pool_main, p);
    if (rc != 0) {
        snprintf(err, err_len, "cannot start the pool thread: %s",
                 strerror(rc));
        goto out_free;
    }
    return p;

out_free:
    proc_loop_cleanup(&p->loop);
    free(p->scratch);
    fair_cleanup(&p->fair);
    pthread_mutex_destroy(&p->lock);
    free(p);
    return NULL;
}

int pool_submit(struct pool *pool, struct pool_job *const jobs[], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (jobs[i]->params_len > JOB_PAYLOAD_MAX)
            return -EINVAL;
    }
    pthread_mutex_lock(&pool->lock);
    if (pool->stopping) {
        unlock_changed(pool);
        return -ESHUTDOWN;
    }
    if ((size_t)pool->queued + n > (size_t)pool->cfg.queue) {
        pool->stats.jobs.rejected += n;
        unlock_changed(pool);
        return n > (size_t)pool->cfg.queue ? -E2BIG : -EAGAIN;
    }
    uint64_t now = clock_now_ns();
    for (size_t i = 0; i < n; i++) {
        struct pool_job *job = jobs[i];
        job->next = NULL;
        job->prev = pool->tail;
        job->queued = true;
        job->id = ++pool->next_id;
        job->queued_ns = now;
        job->status = 0;
        job->cpu_ns = 0;
        job->error[0] = '\0';
        job->result = NULL;
        job->result_len = 0;
        if (pool->tail)
            pool->tail->next = job;
        else
            pool->head = job;
        pool->tail = job;
    }
    pool->queued += (int)n;
    pool->stats.queued = pool->queued;
    unlock_changed(pool);

    proc_loop_wake(&pool->loop, "pool");
    return 0;
}

bool pool_cancel(struct pool *pool, struct pool_job *job)
{
    pthread_mutex_lock(&pool->lock);
    bool queued = job->queued;
    if (queued) {
        unlink_job(pool, job);
        pool->stats.jobs.cancelled++;
    }
    unlock_changed(pool);
    return queued;
}

void pool_stats(struct pool *pool, struct pool_stats *out)
{
    pthread_mutex_lock(&pool->lock);
    *out = pool->stats;
    pthread_mutex_unlock(&pool->lock);
}

uint64_t pool_changes(struct pool *pool)
{
    return changes_read(&pool->changes);
}

bool pool_stopping(struct pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    bool stopping = pool->stopping;
    unlock_changed(pool);
    return stopping;
}

void pool_stop(struct pool *pool)
{
    if (!pool || pool->stopped)
        return;
    pool->stopped = true;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    unlock_changed(pool);
    proc_loop_wake(&pool->loop, "pool");
    pthread_join(pool->thread, NULL);
}

void pool_free(struct pool *pool)
{
    if (!pool)
        return;
    pool_stop(pool);
    for (int i = 0; i < pool->cfg.workers; i++)
        proc_child_cleanup(&pool->workers[i].pc);
    proc_loop_cleanup(&pool->loop);
    free(pool->scratch);
    fair_cleanup(&pool->fair);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}

static void *pool_main(void *arg)
{
    struct pool *p = arg;
    struct epoll_event events[64];

    for (int i = 0; i < p->cfg.workers; i++)
        spawn(p, &p->workers[i]);
    publish(p);

    for (;;) {
        int n = epoll_wait(p->loop.epfd, events, 64, -1);
        if (n < 0 && errno != EINTR) {
            log_error("pool: epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            enum proc_src src = proc_loop_src(events[i].data.u64);
            struct worker *w = &p->workers[proc_loop_slot(events[i].data.u64)];
            if (src == PROC_SRC_EVENT) {
                proc_loop_ack(&p->loop, src, "pool");
            } else if (src == PROC_SRC_TIMER) {
                on_timer(p);
            } else if (src == PROC_SRC_SOCK && w->pc.sock >= 0) {
                on_sock(p, w, events[i].events);
            } else if (src == PROC_SRC_PIDFD && w->pc.pidfd >= 0) {
                on_exit_event(p, w);
            }
        }
        pthread_mutex_lock(&p->lock);
        bool stopping = p->stopping;
        unlock_changed(p);
        if (stopping)
            break;
        dispatch(p);
        arm_timer(p);
        publish(p);
    }
    shutdown_workers(p);
    publish(p);
    return NULL;
}

static void spawn(struct pool *p, struct worker *w)
{
    w->respawn_at_ns = 0;
    pid_t pid;
    int sock;
    if (proc_spawn_worker(p->exe, "pool", &pid, &sock) < 0 ||
        proc_child_attach(&w->pc, "pool", p->loop.epfd, pid, sock, w->slot) < 0)
        goto out_retry;
    w->state = W_STARTING;
    w->end = END_NONE;
    w->job = NULL;
    w->jobs_done = 0;
    w->max_jobs = 0;
    if (p->cfg.max_jobs > 0) {
        unsigned jitter = (unsigned)p->cfg.max_jobs / 4 + 1;
        w->max_jobs = (unsigned)p->cfg.max_jobs + rand_r(&p->rng) % jitter;
    }
    w->started_ns = clock_now_ns();
    log_debug("pool: worker %d started in slot %d", (int)pid, w->slot);
    return;

out_retry:
    w->state = W_EMPTY;
    w->early_deaths++;
    w->respawn_at_ns =
        clock_now_ns() + pool_backoff_ms(w->early_deaths) * 1000000ull;
}

static void on_sock(struct pool *p, struct worker *w, uint32_t events)
{
    if ((events & EPOLLOUT) &&
        proc_child_flush(&w->pc, p->loop.epfd, w->slot) < 0) {
        close_sock(p, w);
        return;
    }
    for (;;) {
        int rc = frame_reader_read(&w->pc.rd, w->pc.sock);
        if (rc == -EAGAIN)
            return;
        if (rc < 0) {
            /* Closed or garbled: the process goes too; its pidfd tells. */
            if (rc != -EPIPE)
                log_error("pool: worker %d: bad message (%s)", (int)w->pc.pid,
                          strerror(-rc));
            close_sock(p, w);
            kill_worker(w);
            return;
        }
        if (w->pc.rd.type == JOB_MSG_HELLO && w->state == W_STARTING) {
            w->state = W_IDLE;
            continue;
        }
        struct job_reply reply;
        if (w->pc.rd.type != JOB_MSG_RESULT || w->state != W_BUSY ||
            w->pc.rd.len < sizeof(reply)) {
            log_error("pool: worker %d: unexpected message %u", (int)w->pc.pid,
                      w->pc.rd.type);
            close_sock(p, w);
            kill_worker(w);
            return;
        }
        memcpy(&reply, w->pc.rd.payload, sizeof(reply));
        struct pool_job *job = w->job;
        if (reply.id != job->id || reply.len != w->pc.rd.len - sizeof(reply)) {
            log_error("pool: worker %d: reply does not match its job",
                      (int)w->pc.pid);
            close_sock(p, w);
            kill_worker(w);
            return;
        }
        w->job = NULL;
        w->state = W_IDLE;
        w->jobs_done++;
        w->early_deaths = 0;
        job->start_ns = reply.start_ns;
        job->end_ns = reply.end_ns;
        job->cpu_ns = reply.cpu_ns;
        job->result = w->pc.rd.payload + sizeof(reply);
        job->result_len = reply.len;
        if (reply.status == 0)
            finish(p, job, 0, "%s", "");
        else
            finish(p, job, reply.status, "worker %d rejected the job: %s",
                   (int)w->pc.pid, strerror(-reply.status));
        if (w->max_jobs && w->jobs_done >= w->max_jobs) {
            w->end = END_RECYCLE;
            pthread_mutex_lock(&p->lock);
            p->stats.restarts.recycle++;
            unlock_changed(p);
            close_sock(p, w); /* the worker reads EOF and exits */
            return;
        }
    }
}

static void on_exit_event(struct pool *p, struct worker *w)
{
    int status;
    if (!proc_child_reap(&w->pc, p->loop.epfd, &status))
        return;
    char how[64];
    proc_describe_exit(status, how, sizeof(how));
    close_sock(p, w); /* channel already closed: drops the hold */

    uint64_t now = clock_now_ns();
    bool early = now - w->started_ns < EARLY_DEATH_NS;
    pid_t pid = w->pc.pid;
    struct pool_job *job = w->job;
    w->job = NULL;
    if (w->end == END_NONE) {
        log_warn("pool: worker %d %s; replacing it", (int)pid, how);
        pthread_mutex_lock(&p->lock);
        p->stats.restarts.crash++;
        unlock_changed(p);
        w->early_deaths = early ? w->early_deaths + 1 : 0;
    } else {
        log_debug("pool: worker %d %s (%s)", (int)pid, how,
                  w->end == END_TIMEOUT   ? "deadline"
                  : w->end == END_RECYCLE ? "recycled"
                                          : "stopped");
        w->early_deaths = 0;
    }
    w->state = W_EMPTY;
    w->pc.pid = 0;
    /* The snapshot shows the death before anyone hears of it. */
    publish(p);
    if (job) {
        job->start_ns = job->end_ns = 0;
        finish(p, job, -EPIPE, "worker %d died (%s) while running the job",
               (int)pid, how);
    }
    w->respawn_at_ns = now + pool_backoff_ms(w->early_deaths) * 1000000ull;
    if (w->respawn_at_ns <= now)
        spawn(p, w);
}

static void on_timer(struct pool *p)
{
    proc_loop_ack(&p->loop, PROC_SRC_TIMER, "pool");

    uint64_t now = clock_now_ns();
    for (int i = 0; i < p->cfg.workers; i++) {
        struct worker *w = &p->workers[i];
        if (w->state == W_BUSY && w->deadline_ns <= now) {
            struct pool_job *job = w->job;
            w->job = NULL;
            w->end = END_TIMEOUT;
            pthread_mutex_lock(&p->lock);
            p->stats.restarts.timeout++;
            unlock_changed(p);
            kill_worker(w);
            close_sock(p, w);
            publish(p);
            job->start_ns = job->end_ns = 0;
            finish(p, job, -ETIMEDOUT,
                   "job exceeded its %d ms deadline; worker %d was killed "
                   "and is being replaced",
                   p->cfg.job_timeout_ms, (int)w->pc.pid);
        } else if (w->state == W_EMPTY && w->respawn_at_ns <= now) {
            spawn(p, w);
        }
    }
    expire_queued(p, now);
}

/*
 * Jobs that waited a whole deadline for a worker (the workers keep dying,
 * say) fail rather than hang their requests. The queue is in arrival
 * order, so only its head can be the oldest.
 */
static void expire_queued(struct pool *p, uint64_t now)
{
    uint64_t limit = (uint64_t)p->cfg.job_timeout_ms * 1000000ull;
    if (now < limit)
        return;
    for (;;) {
        struct pool_job *job = take_head(p, now - limit);
        if (!job)
            return;
        finish(p, job, -ETIMEDOUT,
               "job waited %d ms in the queue and no worker could take it",
               p->cfg.job_timeout_ms);
    }
}

/* Takes the oldest queued job if it was queued at or before `before`. */
static struct pool_job *take_head(struct pool *p, uint64_t before)
{
    pthread_mutex_lock(&p->lock);
    struct pool_job *job = p->head;
    if (job && job->queued_ns <= before)
        unlink_job(p, job);
    else
        job = NULL;
    unlock_changed(p);
    return job;
}

/*
 * The oldest queued job of the client holding the fewest workers (NULL
 * when nothing is queued), taken off the queue. Pool thread.
 */
static struct pool_job *take_fair(struct pool *p)
{
    struct pool_job *best = NULL;
    unsigned best_held = UINT_MAX;
    pthread_mutex_lock(&p->lock);
    for (struct pool_job *job = p->head; job; job = job->next) {
        unsigned held = fair_held(&p->fair, job->client);
        if (held < best_held) {
            best = job;
            best_held = held;
            if (held == 0)
                break; /* nobody can hold fewer */
        }
    }
    if (best)
        unlink_job(p, best);
    unlock_changed(p);
    return best;
}

/* Under the lock. */
static void unlink_job(struct pool *p, struct pool_job *job)
{
    if (job->prev)
        job->prev->next = job->next;
    else
        p->head = job->next;
    if (job->next)
        job->next->prev = job->prev;
    else
        p->tail = job->prev;
    job->next = job->prev = NULL;
    job->queued = false;
    p->queued--;
    p->stats.queued = p->queued;
}

/* Pool thread. Each worker holds one client at most, so the table (one
 * entry per worker) never fills. */
static void hold(struct pool *p, struct worker *w, uint64_t client)
{
    unhold(p, w);
    fair_hold(&p->fair, client);
    w->holding = true;
    w->client = client;
}

static void unhold(struct pool *p, struct worker *w)
{
    if (w->holding)
        fair_release(&p->fair, w->client);
    w->holding = false;
}

/*
 * Hands queued jobs to idle workers, fairly (take_fair). An idle worker
 * still counts for the client of the job it just finished while its next
 * job is chosen; with nothing to run it counts for nobody.
 */
static void dispatch(struct pool *p)
{
    for (int i = 0; i < p->cfg.workers; i++) {
        struct worker *w = &p->workers[i];
        if (w->state != W_IDLE)
            continue;
        struct pool_job *job = take_fair(p);
        unhold(p, w);
        if (!job)
            continue;
        if (job->abandoned && job->abandoned(job)) {
            finish(p, job, -ECANCELED, "the client went away");
            i--; /* this worker is still idle */
            continue;
        }
        hold(p, w, job->client);
        assign(p, w, job);
    }
}

static void assign(struct pool *p, struct worker *w, struct pool_job *job)
{
    struct job_request req = {.id = job->id,
                              .kind = job->kind,
                              .len = job->params_len,
                              .cores = job->cores};
    memcpy(p->scratch, &req, sizeof(req));
    if (job->params_len)
        memcpy(p->scratch + sizeof(req), job->params, job->params_len);

    w->job = job;
    w->state = W_BUSY;
    job->worker_pid = w->pc.pid;
    w->deadline_ns =
        clock_now_ns() + (uint64_t)p->cfg.job_timeout_ms * 1000000ull;
    int rc = frame_writer_put(&w->pc.wr, JOB_MSG_JOB, p->scratch,
                              sizeof(req) + job->params_len);
    if (rc == 0)
        rc = proc_child_flush(&w->pc, p->loop.epfd, w->slot);
    if (rc < 0) {
        /* The worker is going; its exit fails the job. */
        close_sock(p, w);
        kill_worker(w);
    }
}

static void finish(struct pool *p, struct pool_job *job, int status,
                   const char *fmt, ...)
{
    va_list ap;
    job->status = status;
    va_start(ap, fmt);
    vsnprintf(job->error, sizeof(job->error), fmt, ap);
    va_end(ap);
    if (status != 0) {
        job->result = NULL;
        job->result_len = 0;
    }
    pthread_mutex_lock(&p->lock);
    p->stats.completed++;
    if (status == 0)
        p->stats.jobs.ok++;
    else if (status == -ETIMEDOUT)
        p->stats.jobs.timeout++;
    else if (status == -ECANCELED || status == -ESHUTDOWN)
        p->stats.jobs.cancelled++;
    else
        p->stats.jobs.failed++;
    /* A done() that reads the figures sees its worker no longer busy. */
    count_workers(p);
    unlock_changed(p);
    job->done(job);
}

static void close_sock(struct pool *p, struct worker *w)
{
    unhold(p, w); /* a worker going away holds nothing */
    proc_child_close_sock(&w->pc, p->loop.epfd);
    if (w->state != W_EMPTY)
        w->state = W_DYING;
}

static void kill_worker(struct worker *w)
{
    proc_child_kill(&w->pc);
}

static void arm_timer(struct pool *p)
{
    uint64_t next = 0;
    for (int i = 0; i < p->cfg.workers; i++) {
        const struct worker *w = &p->workers[i];
        uint64_t t = 0;
        if (w->state == W_BUSY)
            t = w->deadline_ns;
        else if (w->state == W_EMPTY)
            t = w->respawn_at_ns;
        if (t && (!next || t < next))
            next = t;
    }
    pthread_mutex_lock(&p->lock);
    if (p->head) {
        uint64_t t =
            p->head->queued_ns + (uint64_t)p->cfg.job_timeout_ms * 1000000ull;
        if (!next || t < next)
            next = t;
    }
    unlock_changed(p);
    proc_loop_arm(&p->loop, next);
}

/* Copies the workers' state into the stats snapshot. */
static void publish(struct pool *p)
{
    pthread_mutex_lock(&p->lock);
    count_workers(p);
    unlock_changed(p);
}

/* publish() under the lock the caller holds. */
static void count_workers(struct pool *p)
{
    int alive = 0, busy = 0;
    for (int i = 0; i < p->cfg.workers; i++) {
        const struct worker *w = &p->workers[i];
        alive += w->state == W_IDLE || w->state == W_BUSY;
        busy += w->state == W_BUSY;
        p->stats.pids[i] =
            w->state == W_IDLE || w->state == W_BUSY ? w->pc.pid : 0;
    }
    p->stats.alive = alive;
    p->stats.busy = busy;
}

/* On the pool thread, once stopping: end every job, reap every worker. */
static void shutdown_workers(struct pool *p)
{
    /* One at a time: a callback may take back other queued jobs. */
    for (;;) {
        struct pool_job *job = take_head(p, UINT64_MAX);
        if (!job)
            break;
        finish(p, job, -ESHUTDOWN, "the service is shutting down");
    }

    for (int i = 0; i < p->cfg.workers; i++) {
        struct worker *w = &p->workers[i];
        w->end = END_STOP;
        if (w->job) {
            struct pool_job *job = w->job;
            w->job = NULL;
            kill_worker(w);
            finish(p, job, -ESHUTDOWN, "the service is shutting down");
        }
        close_sock(p, w); /* idle workers read EOF and exit */
    }

    /* Idle workers exit on EOF at once; give the rest a moment, then
     * SIGKILL, which nothing survives. */
    uint64_t started = clock_now_ns();
    bool killed = false;
    for (;;) {
        int left = 0;
        for (int i = 0; i < p->cfg.workers; i++) {
            struct worker *w = &p->workers[i];
            if (w->pc.pidfd < 0)
                continue;
            pid_t r = waitpid(w->pc.pid, NULL, WNOHANG);
            if (r == w->pc.pid || (r < 0 && errno == ECHILD)) {
                close(w->pc.pidfd);
                w->pc.pidfd = -1;
                w->state = W_EMPTY;
                continue;
            }
            left++;
            if (killed)
                kill_worker(w);
        }
        if (left == 0)
            break;
        killed = clock_now_ns() - started > STOP_WAIT_MS * 1000000ull;
        struct timespec pause = {0, 2 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}
