/*
 * spawner: see spawner.h.
 *
 * Everything about the children lives on the spawner thread; other
 * threads only touch the queue of tasks waiting for a process, the cancel
 * requests and the stats, under s->lock (the only lock here; callbacks
 * never run while it is held). epoll data carries what a descriptor is
 * (PROC_SRC_*) and the child's slot.
 *
 * A child's life: EMPTY -> spawn -> STARTING -> hello -> BUSY (a job
 * sent) <-> next() -> ... -> CLOSING (last reply: socket closed, the
 * worker exits by itself) or DYING (killed: deadline, cancel, crash,
 * garbage) -> pidfd readable -> reaped -> done() -> EMPTY. A task's status
 * is decided once (the first of: its completion, its deadline, a cancel,
 * its death) and reported after the reap.
 */
#include "changes.h"
#include "spawner.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "clock.h"
#include "cores.h"
#include "frame.h"
#include "job.h"
#include "log.h"
#include "proc.h"

#define SPAWNER_MAX 4096 /* max_children at most */

enum cstate { C_EMPTY, C_STARTING, C_BUSY, C_CLOSING, C_DYING };

struct child {
    int slot;
    enum cstate state;
    struct spawn_task *task;
    struct proc_child pc;
    bool decided; /* task->status is final */
    uint64_t deadline_ns;
    uint64_t job_id;
};

struct spawner {
    struct spawner_config cfg;
    char exe[PATH_MAX];
    pthread_t thread;
    struct proc_loop loop;
    uint8_t *scratch; /* one job frame being built */
    bool stopped;     /* main thread: spawner_stop() has run */

    pthread_mutex_t lock; /* guards everything below */
    /* Counted before every release of lock (changes.h). */
    _Atomic uint64_t changes;
    bool stopping;
    bool cancels; /* some held task has a cancel asked for */
    struct spawn_task *head, *tail;
    struct spawner_stats stats;

    struct child children[];
};

/* Releases the lock after counting a possible change of the figures. */
static inline void unlock_changed(struct spawner *s)
{
    changes_unlock(&s->changes, &s->lock);
}

static void *spawner_main(void *arg);
static void start_queued(struct spawner *s);
static struct spawn_task *take_queued(struct spawner *s, int *cancel);
static void start_one(struct spawner *s, struct spawn_task *task);
static void apply_cancels(struct spawner *s);
static void on_sock(struct spawner *s, struct child *c, uint32_t events);
static void on_exit_event(struct spawner *s, struct child *c);
static void on_timer(struct spawner *s);
static void take_next(struct spawner *s, struct child *c,
                      const struct spawn_reply *last);
static void decide(struct child *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void stop_child(struct spawner *s, struct child *c);
static void complete(struct spawner *s, struct spawn_task *task, bool reaped);
static void arm_timer(struct spawner *s);
static void shutdown_children(struct spawner *s);
static void wake(struct spawner *s);

struct spawner *spawner_start(const struct spawner_config *cfg, char *err,
                              size_t err_len)
{
    if (cfg->max_children < 1 || cfg->max_children > SPAWNER_MAX) {
        snprintf(err, err_len, "spawned processes at once must be 1..%d",
                 SPAWNER_MAX);
        return NULL;
    }
    struct spawner *s = calloc(1, sizeof(*s) + (size_t)cfg->max_children *
                                                   sizeof(struct child));
    if (!s) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->loop.epfd = s->loop.evfd = s->loop.tfd = -1;
    s->stats.limit = cfg->max_children;
    pthread_mutex_init(&s->lock, NULL);
    if (strlen(cfg->exe) >= sizeof(s->exe)) {
        snprintf(err, err_len, "worker binary path too long");
        goto out_free;
    }
    strcpy(s->exe, cfg->exe);
    s->scratch = malloc(FRAME_PAYLOAD_MAX);
    int rc = s->scratch ? proc_loop_init(&s->loop) : -ENOMEM;
    if (rc < 0) {
        snprintf(err, err_len, "cannot set up the spawner: %s", strerror(-rc));
        goto out_free;
    }
    for (int i = 0; i < cfg->max_children; i++) {
        struct child *c = &s->children[i];
        c->slot = i;
        proc_child_init(&c->pc);
    }
    rc = pthread_create(&s->thread, NULL, spawner_main, s);
    if (rc != 0) {
        snprintf(err, err_len, "cannot start the spawner thread: %s",
                 strerror(rc));
        goto out_free;
    }
    return s;

out_free:
    proc_loop_cleanup(&s->loop);
    free(s->scratch);
    pthread_mutex_destroy(&s->lock);
    free(s);
    return NULL;
}

int spawner_submit(struct spawner *s, struct spawn_task *task)
{
    task->status = 0;
    task->pid = 0;
    task->ready_ns = task->ended_ns = 0;
    task->cpu_ns = 0;
    task->error[0] = '\0';
    pthread_mutex_lock(&s->lock);
    task->queue_next = NULL;
    task->cancel = 0;
    task->child = -1;
    if (s->stopping) {
        unlock_changed(s);
        return -ESHUTDOWN;
    }
    if (s->stats.held >= s->cfg.max_children) {
        s->stats.failed++;
        unlock_changed(s);
        return -EAGAIN;
    }
    task->requested_ns = clock_now_ns();
    task->held = true;
    s->stats.held++;
    if (s->tail)
        s->tail->queue_next = task;
    else
        s->head = task;
    s->tail = task;
    unlock_changed(s);
    wake(s);
    return 0;
}

void spawner_cancel(struct spawner *s, struct spawn_task *task, int status)
{
    bool asked = false;
    pthread_mutex_lock(&s->lock);
    if (task->held && task->cancel == 0) {
        task->cancel = status ? status : -ECANCELED;
        s->cancels = true;
        asked = true;
    }
    unlock_changed(s);
    if (asked)
        wake(s);
}

void spawner_stats(struct spawner *s, struct spawner_stats *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->stats;
    pthread_mutex_unlock(&s->lock);
}

uint64_t spawner_changes(struct spawner *s)
{
    return changes_read(&s->changes);
}

void spawner_stop(struct spawner *s)
{
    if (!s || s->stopped)
        return;
    s->stopped = true;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    unlock_changed(s);
    wake(s);
    pthread_join(s->thread, NULL);
}

void spawner_free(struct spawner *s)
{
    if (!s)
        return;
    spawner_stop(s);
    for (int i = 0; i < s->cfg.max_children; i++)
        proc_child_cleanup(&s->children[i].pc);
    proc_loop_cleanup(&s->loop);
    free(s->scratch);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static void *spawner_main(void *arg)
{
    struct spawner *s = arg;
    struct epoll_event events[64];

    for (;;) {
        int n = epoll_wait(s->loop.epfd, events, 64, -1);
        if (n < 0 && errno != EINTR) {
            log_error("spawn: epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            enum proc_src src = proc_loop_src(events[i].data.u64);
            struct child *c = &s->children[proc_loop_slot(events[i].data.u64)];
            if (src == PROC_SRC_EVENT) {
                proc_loop_ack(&s->loop, src, "spawn");
            } else if (src == PROC_SRC_TIMER) {
                on_timer(s);
            } else if (src == PROC_SRC_SOCK && c->pc.sock >= 0) {
                on_sock(s, c, events[i].events);
            } else if (src == PROC_SRC_PIDFD && c->pc.pidfd >= 0) {
                on_exit_event(s, c);
            }
        }
        pthread_mutex_lock(&s->lock);
        bool stopping = s->stopping;
        unlock_changed(s);
        if (stopping)
            break;
        apply_cancels(s);
        start_queued(s);
        arm_timer(s);
    }
    shutdown_children(s);
    return NULL;
}

/* Starts a process for each queued task (a slot is free for each: held
 * tasks are at most the slots). */
static void start_queued(struct spawner *s)
{
    for (;;) {
        int cancel;
        struct spawn_task *task = take_queued(s, &cancel);
        if (!task)
            return;
        if (cancel) {
            task->status = cancel;
            complete(s, task, false);
            continue;
        }
        start_one(s, task);
    }
}

/* The oldest task waiting for a process, taken off the queue (NULL when
 * none), and its cancel request as it stood then (0: none). */
static struct spawn_task *take_queued(struct spawner *s, int *cancel)
{
    pthread_mutex_lock(&s->lock);
    struct spawn_task *task = s->head;
    if (task) {
        s->head = task->queue_next;
        if (!s->head)
            s->tail = NULL;
        task->queue_next = NULL;
    }
    *cancel = task ? task->cancel : 0;
    unlock_changed(s);
    return task;
}

static void start_one(struct spawner *s, struct spawn_task *task)
{
    struct child *c = NULL;
    for (int i = 0; i < s->cfg.max_children && !c; i++) {
        if (s->children[i].state == C_EMPTY)
            c = &s->children[i];
    }
    if (!c) { /* cannot happen: held <= slots */
        task->status = -EAGAIN;
        snprintf(task->error, sizeof(task->error), "no spawn slot is free");
        complete(s, task, false);
        return;
    }
    pid_t pid;
    int sock;
    int rc = proc_spawn_worker(s->exe, "spawn", &pid, &sock);
    if (rc < 0) {
        task->status = rc == -EAGAIN || rc == -ENOMEM ? -EAGAIN : rc;
        snprintf(task->error, sizeof(task->error),
                 "could not start a worker process: %s", strerror(-rc));
        complete(s, task, false);
        return;
    }
    rc = proc_child_attach(&c->pc, "spawn", s->loop.epfd, pid, sock, c->slot);
    if (rc < 0) {
        task->status = rc;
        snprintf(task->error, sizeof(task->error),
                 "could not watch a worker process: %s", strerror(-rc));
        complete(s, task, false);
        return;
    }
    /* At spawn: its start-up already runs on the run's cores. The worker
     * pins itself again for each job (job_request.cores). */
    if (task->cores)
        cores_pin_pid(pid, task->cores);
    c->state = C_STARTING;
    c->task = task;
    c->decided = false;
    c->job_id = 0;
    c->deadline_ns =
        task->requested_ns + (uint64_t)s->cfg.job_timeout_ms * 1000000ull;
    task->pid = pid;
    pthread_mutex_lock(&s->lock);
    task->child = c->slot;
    s->stats.spawned++;
    s->stats.live++;
    unlock_changed(s);
    log_debug("spawn: worker %d started in slot %d", (int)pid, c->slot);
}

/* Kills the processes of tasks whose cancel was asked for. */
static void apply_cancels(struct spawner *s)
{
    pthread_mutex_lock(&s->lock);
    bool any = s->cancels;
    s->cancels = false;
    unlock_changed(s);
    if (!any)
        return;
    for (int i = 0; i < s->cfg.max_children; i++) {
        struct child *c = &s->children[i];
        if (c->state != C_STARTING && c->state != C_BUSY)
            continue;
        pthread_mutex_lock(&s->lock);
        int cancel = c->task->cancel;
        unlock_changed(s);
        if (!cancel)
            continue;
        decide(c, cancel, "the task was cancelled; worker %d was killed",
               (int)c->pc.pid);
        stop_child(s, c);
    }
}

static void on_sock(struct spawner *s, struct child *c, uint32_t events)
{
    if ((events & EPOLLOUT) &&
        proc_child_flush(&c->pc, s->loop.epfd, c->slot) < 0) {
        /* Gone: its pidfd tells how. */
        proc_child_close_sock(&c->pc, s->loop.epfd);
        return;
    }
    while (c->pc.sock >= 0 && (c->state == C_STARTING || c->state == C_BUSY)) {
        int rc = frame_reader_read(&c->pc.rd, c->pc.sock);
        if (rc == -EAGAIN)
            return;
        if (rc == -EPIPE || rc == -ECONNRESET) {
            /* Closed (a reset when it died with our job unread): its
             * pidfd tells how it went. */
            proc_child_close_sock(&c->pc, s->loop.epfd);
            return;
        }
        if (rc < 0) {
            decide(c, -EPROTO, "spawned worker %d sent garbage (%s)",
                   (int)c->pc.pid, strerror(-rc));
            stop_child(s, c);
            return;
        }
        if (c->pc.rd.type == JOB_MSG_HELLO && c->state == C_STARTING) {
            c->task->ready_ns = clock_now_ns();
            take_next(s, c, NULL);
            continue;
        }
        struct job_reply reply;
        if (c->pc.rd.type != JOB_MSG_RESULT || c->state != C_BUSY ||
            c->pc.rd.len < sizeof(reply)) {
            decide(c, -EPROTO, "spawned worker %d sent an unexpected message",
                   (int)c->pc.pid);
            stop_child(s, c);
            return;
        }
        memcpy(&reply, c->pc.rd.payload, sizeof(reply));
        if (reply.id != c->job_id ||
            reply.len != c->pc.rd.len - sizeof(reply)) {
            decide(c, -EPROTO,
                   "spawned worker %d: reply does not match its "
                   "job",
                   (int)c->pc.pid);
            stop_child(s, c);
            return;
        }
        struct spawn_reply r = {.result = c->pc.rd.payload + sizeof(reply),
                                .len = reply.len,
                                .status = reply.status,
                                .start_ns = reply.start_ns,
                                .end_ns = reply.end_ns,
                                .cpu_ns = reply.cpu_ns};
        c->task->cpu_ns += reply.cpu_ns;
        take_next(s, c, &r);
    }
}

/* The task's next job, its completion or its failure (next()'s answer). */
static void take_next(struct spawner *s, struct child *c,
                      const struct spawn_reply *last)
{
    struct spawn_task *task = c->task;
    int rc = task->next(task, last);
    if (rc == 1) {
        decide(c, 0, "%s", "");
        c->state = C_CLOSING;
        /* The worker reads EOF and exits. */
        proc_child_close_sock(&c->pc, s->loop.epfd);
        return;
    }
    if (rc == 0) {
        struct job_request req = {.id = ++c->job_id,
                                  .kind = task->kind,
                                  .len = task->params_len,
                                  .cores = task->cores};
        if (task->params_len > JOB_PAYLOAD_MAX) {
            rc = -EINVAL;
        } else {
            memcpy(s->scratch, &req, sizeof(req));
            if (task->params_len)
                memcpy(s->scratch + sizeof(req), task->params,
                       task->params_len);
            rc = frame_writer_put(&c->pc.wr, JOB_MSG_JOB, s->scratch,
                                  sizeof(req) + task->params_len);
        }
        if (rc == 0) {
            c->state = C_BUSY;
            rc = proc_child_flush(&c->pc, s->loop.epfd, c->slot);
            if (rc == 0)
                return;
            /* The worker is gone: its exit says how. */
            proc_child_close_sock(&c->pc, s->loop.epfd);
            return;
        }
    }
    if (task->error[0])
        decide(c, rc, "%s", task->error);
    else
        decide(c, rc, "spawned worker %d was stopped: %s", (int)c->pc.pid,
               strerror(-rc));
    stop_child(s, c);
}

static void on_exit_event(struct spawner *s, struct child *c)
{
    int status;
    if (!proc_child_reap(&c->pc, s->loop.epfd, &status))
        return;
    char how[64];
    proc_describe_exit(status, how, sizeof(how));
    if (!c->decided) {
        log_warn("spawn: worker %d %s while running its task", (int)c->pc.pid,
                 how);
        decide(c, -EPIPE, "spawned worker %d died (%s) while running the task",
               (int)c->pc.pid, how);
    }
    struct spawn_task *task = c->task;
    c->state = C_EMPTY;
    c->task = NULL;
    c->pc.pid = 0;
    complete(s, task, true);
}

static void on_timer(struct spawner *s)
{
    proc_loop_ack(&s->loop, PROC_SRC_TIMER, "spawn");
    uint64_t now = clock_now_ns();
    for (int i = 0; i < s->cfg.max_children; i++) {
        struct child *c = &s->children[i];
        if ((c->state == C_STARTING || c->state == C_BUSY) &&
            c->deadline_ns <= now) {
            decide(c, -ETIMEDOUT,
                   "task exceeded its %d ms deadline; spawned worker %d was "
                   "killed",
                   s->cfg.job_timeout_ms, (int)c->pc.pid);
            stop_child(s, c);
        }
    }
}

static void decide(struct child *c, int status, const char *fmt, ...)
{
    if (c->decided)
        return;
    c->decided = true;
    c->task->status = status;
    char text[SPAWN_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    /* text may be task->error itself (next()'s message): copied through. */
    memcpy(c->task->error, text, sizeof(text));
}

/* Kills the child; its reap (pidfd) completes the task. */
static void stop_child(struct spawner *s, struct child *c)
{
    proc_child_kill(&c->pc);
    proc_child_close_sock(&c->pc, s->loop.epfd);
    c->state = C_DYING;
}

/* The task is over (its process reaped, or it never had one): done(). */
static void complete(struct spawner *s, struct spawn_task *task, bool reaped)
{
    task->ended_ns = clock_now_ns();
    pthread_mutex_lock(&s->lock);
    task->held = false;
    task->child = -1;
    s->stats.held--;
    if (reaped)
        s->stats.live--;
    if (task->status == 0)
        s->stats.ok++;
    else if (task->status == -EPIPE)
        s->stats.crashed++;
    else if (task->status == -ETIMEDOUT)
        s->stats.timeout++;
    else if (task->cancel || task->status == -ESHUTDOWN)
        s->stats.cancelled++;
    else
        s->stats.failed++;
    unlock_changed(s);
    task->done(task);
}

static void arm_timer(struct spawner *s)
{
    uint64_t next = 0;
    for (int i = 0; i < s->cfg.max_children; i++) {
        const struct child *c = &s->children[i];
        if ((c->state == C_STARTING || c->state == C_BUSY) &&
            (!next || c->deadline_ns < next))
            next = c->deadline_ns;
    }
    proc_loop_arm(&s->loop, next);
}

/* On the spawner thread, once stopping: end every task, reap every child. */
static void shutdown_children(struct spawner *s)
{
    for (;;) {
        int cancel;
        struct spawn_task *task = take_queued(s, &cancel);
        if (!task)
            break;
        task->status = -ESHUTDOWN;
        snprintf(task->error, sizeof(task->error),
                 "the service is shutting down");
        complete(s, task, false);
    }
    for (int i = 0; i < s->cfg.max_children; i++) {
        struct child *c = &s->children[i];
        if (c->state == C_EMPTY)
            continue;
        decide(c, -ESHUTDOWN, "the service is shutting down");
        proc_child_close_sock(&c->pc, s->loop.epfd);
        proc_kill_reap(c->pc.pid);
        epoll_ctl(s->loop.epfd, EPOLL_CTL_DEL, c->pc.pidfd, NULL);
        close(c->pc.pidfd);
        c->pc.pidfd = -1;
        struct spawn_task *task = c->task;
        c->state = C_EMPTY;
        c->task = NULL;
        c->pc.pid = 0;
        complete(s, task, true);
    }
}

static void wake(struct spawner *s)
{
    proc_loop_wake(&s->loop, "spawn");
}
