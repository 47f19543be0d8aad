/*
 * pool: the prefork process pool that runs CPU jobs.
 *
 * --workers processes are started when the pool starts (by exec'ing the
 * service's own binary in worker mode, see worker.h), kept warm and reused,
 * one job at a time each, over one socketpair per worker. One pool thread
 * owns everything about them: an epoll set with each worker's socket and
 * pidfd, an eventfd that request threads ring after queueing jobs, and a
 * timerfd for job deadlines and respawn back-off.
 *
 * Failure handling: a worker that dies (any cause) is seen at once through
 * its pidfd; its job fails with -EPIPE and a message naming the worker, and
 * a new worker takes its place, after a back-off that doubles while workers
 * keep dying young. A job past its deadline gets its worker killed and
 * replaced and fails with -ETIMEDOUT; so does a job that waited that long
 * in the queue (when no worker could take it). After max_jobs jobs (plus up to
 * a quarter more, at random, so workers do not all restart together) a worker
 * is retired and replaced. Restarts are counted by reason.
 *
 * The queue is bounded: pool_submit() takes all of a request's jobs or none
 * (-EAGAIN), so a request never runs half its tasks. pool_cancel() takes a
 * queued job back at once (its client went away).
 *
 * Fair share: a free worker gets, among the queued jobs, one of the client
 * holding the fewest workers, the oldest of those. A worker that has just
 * finished a job still counts for that job's client while its next job is
 * chosen, so two clients with queued work take turns even on one worker,
 * and a lone client still gets every worker.
 *
 * Lifecycle: pool_start(), then pool_stop() (ends every job, reaps every
 * worker, joins the pool thread), then pool_free() once no other thread
 * can call in.
 *
 * Threads: pool_submit, pool_cancel, pool_stats and pool_stopping from any
 * thread, before or after pool_stop (not after pool_free); pool_start,
 * pool_stop and pool_free from the main thread. Job callbacks run on the
 * pool thread, at stop too, and must not block.
 */
#ifndef CONLAB_POOL_H
#define CONLAB_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define POOL_ERROR_MAX   96
#define POOL_WORKERS_MAX 256

struct pool;
struct pool_job;

typedef void (*pool_done_fn)(struct pool_job *job);

/*
 * One job, owned by the caller: it must stay valid from pool_submit()
 * until its done callback has been called (exactly once, on the pool
 * thread) or pool_cancel() returned true, and may be freed inside that
 * callback. Zero it before its first submission.
 */
struct pool_job {
    /* set by the caller */
    uint32_t kind;       /* enum job_kind */
    const void *params;  /* the caller's, valid until done() */
    uint32_t params_len; /* <= JOB_PAYLOAD_MAX */
    uint64_t client;     /* whose job: a hash of its address; 0 anonymous */
    uint32_t cores;      /* the worker pins itself to this many CPUs; 0 no */
    pool_done_fn done;
    /* optional: asked (on the pool thread) before a queued job starts;
     * true drops it unrun with -ECANCELED (its client went away) */
    bool (*abandoned)(struct pool_job *job);
    void *owner; /* for the caller; the pool ignores it */
    /* set by the pool before done() */
    int status; /* 0, -ETIMEDOUT, -EPIPE (worker died),
                   -ESHUTDOWN, -ECANCELED (abandoned),
                   -EINVAL (rejected by worker) */
    pid_t worker_pid;
    uint64_t start_ns, end_ns; /* CLOCK_MONOTONIC, measured in the worker */
    uint64_t cpu_ns;           /* the worker's CPU time for the job */
    uint8_t *result;           /* pool-owned, valid during done() only */
    uint32_t result_len;
    char error[POOL_ERROR_MAX]; /* why, when status != 0 */
    /* private to the pool, under its lock */
    struct pool_job *next, *prev;
    bool queued;
    uint64_t id;
    uint64_t queued_ns;
};

struct pool_config {
    int workers; /* processes */
    int queue;   /* jobs waiting for a worker, at most */
    int job_timeout_ms;
    int max_jobs;    /* per worker before recycling; 0 = never */
    const char *exe; /* binary to exec in worker mode */
};

struct pool_restarts {
    uint64_t crash, timeout, recycle;
};

/* Jobs by outcome, since start. */
struct pool_outcomes {
    uint64_t ok;
    uint64_t failed;    /* the worker died or answered nonsense */
    uint64_t timeout;   /* past the deadline: the worker was killed */
    uint64_t cancelled; /* taken back or abandoned by the client, or
                           ended by the stop */
    uint64_t rejected;  /* refused: the queue was full or too small */
};

struct pool_stats {
    int configured;
    int alive; /* started and greeted */
    int busy;
    int queued;
    struct pool_restarts restarts;
    uint64_t completed; /* done() called, any outcome */
    struct pool_outcomes jobs;
    pid_t pids[POOL_WORKERS_MAX];
};

/*
 * Starts the pool thread and the workers (it does not wait for them to
 * greet: jobs queue until one is ready). Returns the pool, or NULL with the
 * reason in err.
 */
struct pool *pool_start(const struct pool_config *cfg, char *err,
                        size_t err_len);

/*
 * Queues n jobs. Returns 0; -EAGAIN when fewer than n queue slots are
 * free (nothing is queued); -E2BIG when n is more than the whole queue
 * (it never fits); -ESHUTDOWN once pool_stop() has begun (nothing queued,
 * no callback); -EINVAL for a job whose parameters are too large. Refused
 * jobs count as rejected. Any thread, from inside a job callback too.
 */
int pool_submit(struct pool *pool, struct pool_job *const jobs[], size_t n);

/*
 * Takes a job back if it is still queued: returns true, and its done
 * callback will not be called (the caller ends it itself; it counts as
 * cancelled). Returns false when a worker has it or it has ended (its
 * callback is called, or was), or it was never queued. Any thread; O(1).
 */
bool pool_cancel(struct pool *pool, struct pool_job *job);

/* A consistent snapshot of the counters (the final one after stop). Any
 * thread. */
void pool_stats(struct pool *pool, struct pool_stats *out);

/* The change count of pool_stats()'s figures (changes.h): equal counts
 * read before two calls mean equal figures. Any thread; no lock. */
uint64_t pool_changes(struct pool *pool);

/* True once pool_stop() has begun. Any thread. */
bool pool_stopping(struct pool *pool);

/*
 * Stops the pool: later submissions get -ESHUTDOWN; queued and running
 * jobs end with -ESHUTDOWN (their callbacks run on the pool thread before
 * this returns); every worker is stopped and reaped (SIGKILL after 2 s);
 * the pool thread is joined. Frees nothing: the pool still answers the
 * calls above. NULL, or a second call, does nothing. Main thread.
 */
void pool_stop(struct pool *pool);

/*
 * Frees the pool after pool_stop() (which it calls if needed), once no
 * other thread can call into it. pool_free(NULL) does nothing. Main
 * thread.
 */
void pool_free(struct pool *pool);

/* Milliseconds of back-off before the n-th consecutive early death. */
unsigned pool_backoff_ms(unsigned consecutive_crashes);

#endif
