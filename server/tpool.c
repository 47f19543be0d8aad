/*
 * tpool: see tpool.h. One mutex and one condition variable guard the
 * queue and the counters; tasks run without the lock held.
 */
#include "tpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tpool_thread {
    struct tpool *pool;
    int id;
    pthread_t thread;
};

struct tpool {
    int n_threads;
    int cap;
    _Atomic bool stopping;
    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t wake;
    struct tpool_task *head, *tail;
    int queued;
    int busy;
    uint64_t completed;
    bool stop;
    struct tpool_thread threads[];
};

static void *thread_main(void *arg);

struct tpool *tpool_start(int threads, int queue, char *err, size_t err_len)
{
    struct tpool *pool =
        calloc(1, sizeof(*pool) + (size_t)threads * sizeof(pool->threads[0]));
    if (!pool) {
        snprintf(err, err_len, "out of memory");
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
            tpool_stop(pool);
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
        pthread_mutex_unlock(&pool->lock);
        return -ESHUTDOWN;
    }
    if ((size_t)pool->queued + n > (size_t)pool->cap) {
        pthread_mutex_unlock(&pool->lock);
        return n > (size_t)pool->cap ? -E2BIG : -EAGAIN;
    }
    for (size_t i = 0; i < n; i++) {
        tasks[i]->next = NULL;
        if (pool->tail)
            pool->tail->next = tasks[i];
        else
            pool->head = tasks[i];
        pool->tail = tasks[i];
    }
    pool->queued += (int)n;
    if (n == 1)
        pthread_cond_signal(&pool->wake);
    else
        pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    return 0;
}

void tpool_stats(struct tpool *pool, struct tpool_stats *out)
{
    pthread_mutex_lock(&pool->lock);
    out->configured = pool->n_threads;
    out->busy = pool->busy;
    out->queued = pool->queued;
    out->completed = pool->completed;
    pthread_mutex_unlock(&pool->lock);
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
    pool->stop = true;
    struct tpool_task *cancelled = pool->head;
    pool->head = pool->tail = NULL;
    pool->queued = 0;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);

    while (cancelled) {
        struct tpool_task *next = cancelled->next;
        cancelled->run(cancelled, -1);
        cancelled = next;
    }
    for (int i = 0; i < pool->n_threads; i++)
        pthread_join(pool->threads[i].thread, NULL);
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
        while (!pool->head && !pool->stop)
            pthread_cond_wait(&pool->wake, &pool->lock);
        if (!pool->head)
            break; /* stopping and nothing left */
        struct tpool_task *task = pool->head;
        pool->head = task->next;
        if (!pool->head)
            pool->tail = NULL;
        pool->queued--;
        pool->busy++;
        pthread_mutex_unlock(&pool->lock);

        task->run(task, self->id);

        pthread_mutex_lock(&pool->lock);
        pool->busy--;
        pool->completed++;
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}
