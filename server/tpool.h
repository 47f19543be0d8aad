/*
 * tpool: the demo thread pool (--demo-threads pthreads), separate from the
 * request threads, for the "threads", "gil" and "sequential" modes.
 *
 * Tasks are intrusive (the caller embeds a struct tpool_task) and queue in
 * a bounded FIFO: tpool_submit() takes all of a request's tasks or none.
 * Each thread has a stable small id (0..threads-1), reported as the
 * worker id of what it ran.
 *
 * Threads: tpool_submit, tpool_stats and tpool_stopping from any thread;
 * tpool_start and tpool_stop from the main thread.
 */
#ifndef CONLAB_TPOOL_H
#define CONLAB_TPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tpool;
struct tpool_task;

/*
 * Runs a task on pool thread thread_id; thread_id is -1 when the task is
 * cancelled at shutdown without running (then it runs on the stopping
 * thread). Called exactly once per submitted task.
 */
typedef void (*tpool_fn)(struct tpool_task *task, int thread_id);

struct tpool_task {
    tpool_fn run;
    struct tpool_task *next; /* private to the pool */
};

struct tpool_stats {
    int configured;
    int busy;
    int queued;
    uint64_t completed;
};

/* Starts threads threads with a queue of at most queue tasks. */
struct tpool *tpool_start(int threads, int queue, char *err, size_t err_len);

/*
 * Queues n tasks. Returns 0, -EAGAIN when fewer than n slots are free
 * (nothing queued), -E2BIG when n is more than the whole queue (it never
 * fits) or -ESHUTDOWN when stopping.
 */
int tpool_submit(struct tpool *pool, struct tpool_task *const tasks[],
                 size_t n);

void tpool_stats(struct tpool *pool, struct tpool_stats *out);

/* True once tpool_stop() has begun: long tasks should give up. */
bool tpool_stopping(struct tpool *pool);

/*
 * Cancels queued tasks (their run gets thread_id -1), waits for running
 * ones (which should watch tpool_stopping()), joins and frees.
 * tpool_stop(NULL) does nothing.
 */
void tpool_stop(struct tpool *pool);

#endif
