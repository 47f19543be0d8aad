/*
 * tpool: see tpool.h. One mutex and one condition variable guard the
 * queue, the fair-share table and the counters; tasks run without the
 * lock held.
 *
 * The queue is one doubly linked list in arrival order, so tpool_cancel()
 * unlinks in O(1). Choosing the next task (take_fair) walks it from the
 * oldest and stops at the first task whose client holds no thread; at
 * worst, when every queued client holds threads, it walks the whole queue:
 * O(queued * log(threads)) under the lock, with queued <= --queue.
 */
#include "changes.h"
#include "tpool.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fair.h"

struct tpool_thread {
    struct tpool *pool;
    int id;
    pthread_t thread;
    /* under the pool's lock: the client this thread counts for, from
     * taking a task until it has chosen the next one */
    bool holding;
    uint64_t client;
};

struct tpool {
    int n_threads;
    int cap;
    _Atomic bool stopping;
    pthread_mutex_t lock; /* guards the fields below */
    /* Counted before every release of lock (changes.h). */
    _Atomic uint64_t changes;
    pthread_cond_t wake;
    struct tpool_task *head, *tail;
    struct fair fair;
    int queued;
    int busy;
    uint64_t completed;
    uint64_t cancelled;
    bool stop;
    bool joined;
    struct tpool_thread threads[];
};

/* Releases the lock after counting a possible change of the figures. */
static inline void unlock_changed(struct tpool *pool)
{
    changes_unlock(&pool->changes, &pool->lock);
}

static void *thread_main(void *arg);
static struct tpool_task *take_fair(struct tpool *pool);
static void unlink_task(struct tpool *pool, struct tpool_task *task);

struct tpool *tpool_start(int threads, int queue, char *err, size_t err_len)
{
    struct tpool *pool =
        calloc(1, sizeof(*pool) + (size_t)threads * sizeof(pool->threads[0]));
    if (!pool || fair_init(&pool->fair, (size_t)threads) < 0) {
        snprintf(err, err_len, "out of memory");
        free(pool);
        return NULL;
    }
    pool->cap = queue;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    for (int i = 0; i < threads; i++) {
        pool->threads[i].pool = pool;
        pool->threads[i].id = i;
        int rc = pthread_create(&pool->threads[i].thread, NULL, thread_main,
                                &pool->threads[i]);
        if (rc != 0) {
            snprintf(err, err_len, "cannot start demo thread %d: %s", i,
                     strerror(rc));
            tpool_free(pool);
            return NULL;
        }
        pool->n_threads = i + 1;
    }
    return pool;
}

int tpool_submit(struct tpool *pool, struct tpool_task *const tasks[], size_t n)
{
    pthread_mutex_lock(&pool->lock);
    if (pool->stop) {
        unlock_changed(pool);
        return -ESHUTDOWN;
    }
    if ((size_t)pool->queued + n > (size_t)pool->cap) {
        unlock_changed(pool);
        return n > (size_t)pool->cap ? -E2BIG : -EAGAIN;
    }
    for (size_t i = 0; i < n; i++) {
        struct tpool_task *task = tasks[i];
        task->next = NULL;
        task->prev = pool->tail;
        task->queued = true;
        if (pool->tail)
            pool->tail->next = task;
        else
            pool->head = task;
        pool->tail = task;
    }
    pool->queued += (int)n;
    if (n == 1)
        pthread_cond_signal(&pool->wake);
    else
        pthread_cond_broadcast(&pool->wake);
    unlock_changed(pool);
    return 0;
}

bool tpool_cancel(struct tpool *pool, struct tpool_task *task)
{
    pthread_mutex_lock(&pool->lock);
    bool queued = task->queued;
    if (queued) {
        unlink_task(pool, task);
        pool->cancelled++;
    }
    unlock_changed(pool);
    return queued;
}

void tpool_stats(struct tpool *pool, struct tpool_stats *out)
{
    pthread_mutex_lock(&pool->lock);
    out->configured = pool->n_threads;
    out->busy = pool->busy;
    out->queued = pool->queued;
    out->completed = pool->completed;
    out->cancelled = pool->cancelled;
    pthread_mutex_unlock(&pool->lock);
}

uint64_t tpool_changes(struct tpool *pool)
{
    return changes_read(&pool->changes);
}

bool tpool_stopping(struct tpool *pool)
{
    return atomic_load_explicit(&pool->stopping, memory_order_relaxed);
}

void tpool_stop(struct tpool *pool)
{
    if (!pool)
        return;
    atomic_store(&pool->stopping, true);
    pthread_mutex_lock(&pool->lock);
    if (pool->joined) {
        unlock_changed(pool);
        return;
    }
    pool->stop = true;
    pthread_cond_broadcast(&pool->wake);
    /* One at a time, unlocked for the call: a callback may submit (and
     * gets -ESHUTDOWN) or cancel. */
    for (;;) {
        struct tpool_task *task = pool->head;
        if (!task)
            break;
        unlink_task(pool, task);
        pool->completed++;
        unlock_changed(pool);
        task->run(task, -ESHUTDOWN);
        pthread_mutex_lock(&pool->lock);
    }
    pool->joined = true;
    unlock_changed(pool);

    for (int i = 0; i < pool->n_threads; i++)
        pthread_join(pool->threads[i].thread, NULL);
}

void tpool_free(struct tpool *pool)
{
    if (!pool)
        return;
    tpool_stop(pool);
    fair_cleanup(&pool->fair);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}

static void *thread_main(void *arg)
{
    struct tpool_thread *self = arg;
    struct tpool *pool = self->pool;

    pthread_mutex_lock(&pool->lock);
    for (;;) {
        /* Chosen while this thread still counts for its last client. */
        struct tpool_task *task = pool->stop ? NULL : take_fair(pool);
        if (self->holding) {
            fair_release(&pool->fair, self->client);
            self->holding = false;
        }
        if (!task) {
            if (pool->stop)
                break; /* tpool_stop() ends what is still queued */
            /* Releases the lock too: count what this thread changed. */
            changes_count(&pool->changes);
            pthread_cond_wait(&pool->wake, &pool->lock);
            continue;
        }
        /* At most one hold per thread: the table cannot be full. */
        fair_hold(&pool->fair, task->client);
        self->holding = true;
        self->client = task->client;
        pool->busy++;
        task->thread_id = self->id;
        unlock_changed(pool);

        task->run(task, 0);

        pthread_mutex_lock(&pool->lock);
        pool->busy--;
        pool->completed++;
    }
    unlock_changed(pool);
    return NULL;
}

/*
 * Under the lock: unlinks and returns the oldest queued task of the client
 * holding the fewest threads, or NULL when nothing is queued.
 */
static struct tpool_task *take_fair(struct tpool *pool)
{
    struct tpool_task *best = NULL;
    unsigned best_held = UINT_MAX;
    for (struct tpool_task *t = pool->head; t; t = t->next) {
        unsigned held = fair_held(&pool->fair, t->client);
        if (held < best_held) {
            best = t;
            best_held = held;
            if (held == 0)
                break; /* nobody can hold fewer */
        }
    }
    if (best)
        unlink_task(pool, best);
    return best;
}

/* Under the lock. */
static void unlink_task(struct tpool *pool, struct tpool_task *task)
{
    if (task->prev)
        task->prev->next = task->next;
    else
        pool->head = task->next;
    if (task->next)
        task->next->prev = task->prev;
    else
        pool->tail = task->prev;
    task->next = task->prev = NULL;
    task->queued = false;
    pool->queued--;
}
