/*
 * spawner: a fresh worker process per task, for the spawn mode (what
 * Python's multiprocessing.Process does: start an interpreter for one
 * task, let it go when the task is done).
 *
 * A task asks for a process (spawner_submit); the spawner thread starts
 * this binary in worker mode (proc_spawn_worker), waits for its greeting
 * (JOB_MSG_HELLO: the process is ready for work), then hands it the task's
 * jobs one after another (the task's next() callback describes each, so a
 * task of several slices keeps its one process), tells it to exit when the
 * last reply has come (its socket is closed: the worker reads EOF and
 * exits 0), and calls done() once the process has been reaped. So a task
 * holds a process from the request to spawn to its reaping, and no process
 * outlives its task.
 *
 * Who owns the children: one dedicated thread, with an epoll set on each
 * child's socket and pidfd, an eventfd that other threads ring after
 * queueing a task or asking for a cancel, and a timerfd for the tasks'
 * deadlines. Why a thread of its own rather than the prefork pool's: the
 * pool's thread owns a fixed table of long-lived workers with respawn and
 * back-off policies that must not apply here (a spawned process that dies
 * is not replaced, it fails its task), and a spawn (posix_spawn, ~1 ms of
 * the calling thread) must not stall the pool's dispatching nor a request
 * thread. The thread also stays alive as long as its children may, which
 * PR_SET_PDEATHSIG needs (it fires when the *thread* that spawned the
 * child exits).
 *
 * Failure handling, as in the pool: a process that dies before its last
 * reply fails its task with -EPIPE and a message naming it and how it
 * died; a task past its deadline (job_timeout_ms from the request to
 * spawn) gets its process killed and fails with -ETIMEDOUT; a cancel
 * (spawner_cancel) kills it and fails the task with the status given;
 * spawner_stop() kills and reaps every child and fails their tasks with
 * -ESHUTDOWN. In every case done() comes after waitpid(): no zombie, and
 * every descriptor (socket, pidfd) is closed before done().
 *
 * Bounds: at most max_children tasks are held at once (queued or with a
 * process); spawner_submit() refuses more with -EAGAIN. Admission by cost
 * (the "spawns" budget, budget.h) keeps runs below that.
 *
 * Threads: spawner_submit, spawner_cancel and spawner_stats from any
 * thread, before or after spawner_stop (not after spawner_free); callbacks
 * (next, done) run on the spawner thread, must not block, and may submit.
 * spawner_start, spawner_stop and spawner_free from the main thread.
 */
#ifndef CONLAB_SPAWNER_H
#define CONLAB_SPAWNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SPAWN_ERROR_MAX 128

struct spawner;
struct spawn_task;

/* One reply of the task's process (valid during next() only). */
struct spawn_reply {
    const void *result;
    uint32_t len;
    int status;                /* the worker's: 0 or a negative errno */
    uint64_t start_ns, end_ns; /* CLOCK_MONOTONIC, measured in the worker */
    uint64_t cpu_ns;           /* the worker's CPU time for that job */
};

/*
 * Spawner thread: the process greeted (last NULL) or answered a job
 * (last). Returns 0 with the next job in task->kind, ->params (valid until
 * the next call or done()), ->params_len; 1 when the task is complete (the
 * process is let go); or a negative errno to fail the task (the process
 * is killed; a message may be written to task->error first).
 */
typedef int (*spawn_next_fn)(struct spawn_task *task,
                             const struct spawn_reply *last);

/* Spawner thread, exactly once per accepted submission, after the reap. */
typedef void (*spawn_done_fn)(struct spawn_task *task);

/*
 * Caller's memory, valid from spawner_submit() until done() (it may be
 * freed or submitted again inside done()). Zero it before its first use.
 */
struct spawn_task {
    /* set by the caller */
    uint32_t cores; /* pin the process to this many CPUs; 0: no */
    spawn_next_fn next;
    spawn_done_fn done;
    /* set by next() */
    uint32_t kind;
    const void *params;
    uint32_t params_len;
    /* set by the spawner, final when done() is called */
    int status; /* 0, -EPIPE (died), -ETIMEDOUT, -ESHUTDOWN, a cancel's
                   status, a spawn's error, or what next() returned */
    pid_t pid;  /* 0 when no process was started */
    uint64_t requested_ns;       /* spawner_submit() */
    uint64_t ready_ns;           /* the greeting came (0: never) */
    uint64_t ended_ns;           /* the process was reaped */
    uint64_t cpu_ns;             /* summed over the replies */
    char error[SPAWN_ERROR_MAX]; /* why, when status != 0 */
    /* private to the spawner, under its lock */
    struct spawn_task *queue_next;
    bool held;  /* submitted, done() not yet called */
    int cancel; /* a cancel's status, asked for */
    int child;  /* the child slot, -1 while queued */
};

struct spawner_config {
    int max_children;   /* tasks held at once, at most */
    int job_timeout_ms; /* a task's deadline, from its request to spawn */
    const char *exe;    /* binary to start in worker mode */
};

struct spawner_stats {
    int limit;          /* max_children */
    int live;           /* processes started and not yet reaped */
    int held;           /* tasks submitted and not yet done */
    uint64_t spawned;   /* processes started since start */
    uint64_t ok;        /* tasks done with status 0 */
    uint64_t crashed;   /* processes that died before their last reply */
    uint64_t timeout;   /* killed at their deadline */
    uint64_t cancelled; /* killed or dropped by a cancel or the stop */
    uint64_t failed;    /* could not be started, or next() failed them */
};

/* Starts the spawner thread. NULL with the reason in err. Main thread. */
struct spawner *spawner_start(const struct spawner_config *cfg, char *err,
                              size_t err_len);

/*
 * Queues a task for a process of its own; the spawner thread starts it.
 * Returns 0 (done() will be called), -EAGAIN when max_children tasks are
 * held already, or -ESHUTDOWN once spawner_stop() has begun (then no
 * callback). Any thread, from inside a callback too.
 */
int spawner_submit(struct spawner *s, struct spawn_task *task);

/*
 * Asks for a held task to be ended with status (its process killed and
 * reaped, or it is dropped before it starts); done() follows. Nothing
 * happens when the task is not held. Any thread.
 */
void spawner_cancel(struct spawner *s, struct spawn_task *task, int status);

void spawner_stats(struct spawner *s, struct spawner_stats *out);

/* The change count of spawner_stats()'s figures (changes.h): equal counts
 * read before two calls mean equal figures. Any thread; no lock. */
uint64_t spawner_changes(struct spawner *s);

/*
 * Stops: later submissions get -ESHUTDOWN; every held task ends with
 * -ESHUTDOWN (its process killed and reaped; done() runs on the spawner
 * thread before this returns); the thread is joined. NULL, or a second
 * call, does nothing. Main thread.
 */
void spawner_stop(struct spawner *s);

/* Frees it after spawner_stop() (called if needed). NULL does nothing. */
void spawner_free(struct spawner *s);

#endif
