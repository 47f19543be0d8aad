/*
 * tpool: the demo thread pool (--demo-threads pthreads), separate from the
 * request threads, for the "threads", "gil" and "sequential" modes.
 *
 * Tasks are intrusive (the caller embeds a struct tpool_task) and queue in
 * a bounded list: tpool_submit() takes all of a request's tasks or none.
 * Each thread has a stable small id (0..threads-1), reported as the
 * worker id of what it ran.
 *
 * Fair share: a free thread takes, among the queued tasks, one of the
 * client holding the fewest threads, the oldest of those. A thread that
 * has just finished a task still counts for that task's client while it
 * chooses its next one, so two clients with queued work take turns even
 * on one thread, and a lone client still gets every thread.
 *
 * Lifecycle: tpool_start(), then tpool_stop() (ends all work and joins the
 * threads), then tpool_free() once no other thread can call in.
 *
 * Threads: tpool_submit, tpool_cancel, tpool_stats and tpool_stopping from
 * any thread, before or after tpool_stop (not after tpool_free);
 * tpool_start, tpool_stop and tpool_free from the main thread.
 */
#ifndef CONLAB_TPOOL_H
#define CONLAB_TPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tpool;
struct tpool_task;

/*
 * A task's one call, exactly once per task the pool accepted (unless
 * tpool_cancel() took it back). status 0: it runs now on demo thread
 * task->thread_id. status -ESHUTDOWN: tpool_stop() ended it unrun; it is
 * then called on the thread calling tpool_stop(), must not block, and
 * must not wait for anything the pool's threads do.
 */
typedef void (*tpool_fn)(struct tpool_task *task, int status);

/*
 * Caller's memory, valid from tpool_submit() until its run has been
 * called (it may be freed inside run) or tpool_cancel() returned true.
 * Zero it before its first submission.
 */
struct tpool_task {
    /* set by the caller */
    tpool_fn run;
    uint64_t client; /* whose work: a hash of its address; 0 anonymous */
    /* set by the pool before run() with status 0 */
    int thread_id; /* 0..threads-1 */
    /* private to the pool, under its lock */
    struct tpool_task *next, *prev;
    bool queued;
};

struct tpool_stats {
    int configured;
    int busy;
    int queued;
    uint64_t completed; /* ran, or ended by tpool_stop() */
    uint64_t cancelled; /* taken back by tpool_cancel() */
};

/*
 * Starts threads threads with a queue of at most queue tasks. Returns the
 * pool, or NULL with the reason in err. Main thread.
 */
struct tpool *tpool_start(int threads, int queue, char *err, size_t err_len);

/*
 * Queues n tasks. Returns 0, -EAGAIN when fewer than n slots are free
 * (nothing queued), -E2BIG when n is more than the whole queue (it never
 * fits) or -ESHUTDOWN once tpool_stop() has begun (nothing queued, no
 * callback). Any thread, from inside a task too.
 */
int tpool_submit(struct tpool *pool, struct tpool_task *const tasks[],
                 size_t n);

/*
 * Takes a task back if it is still queued: returns true and its run will
 * not be called (the caller ends it itself). Returns false when it has
 * started or ended (its run is called, or was), or was never queued.
 * Any thread; O(1).
 */
bool tpool_cancel(struct tpool *pool, struct tpool_task *task);

/* A consistent snapshot of the counters (the final one after stop). */
void tpool_stats(struct tpool *pool, struct tpool_stats *out);

/* The change count of tpool_stats()'s figures (changes.h): equal counts
 * read before two calls mean equal figures. Any thread; no lock. */
uint64_t tpool_changes(struct tpool *pool);

/* True once tpool_stop() has begun: long tasks should give up. */
bool tpool_stopping(struct tpool *pool);

/*
 * Stops the pool: later submissions get -ESHUTDOWN; queued tasks run with
 * -ESHUTDOWN on this thread; running ones are waited for (they should
 * watch tpool_stopping()); the threads are joined. Frees nothing: the
 * pool still answers the calls above. NULL, or a second call, does
 * nothing. Main thread.
 */
void tpool_stop(struct tpool *pool);

/*
 * Frees the pool after tpool_stop() (which it calls if needed), once no
 * other thread can call into it. tpool_free(NULL) does nothing. Main
 * thread.
 */
void tpool_free(struct tpool *pool);

#endif
