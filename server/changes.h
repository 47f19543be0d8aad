/*
 * changes: a count kept beside a lock, so that a reader can tell without
 * the lock whether the figures that lock guards may have changed.
 *
 * The owner bumps it (changes_unlock) at every release of the lock but
 * its figures reader's, inside the critical section, and before a
 * condition wait on the lock too. A reader that reads the count
 * (changes_read), then the figures under the lock, may later take an
 * equal count to mean equal figures: a writer still inside its critical
 * section has not counted yet, which is the same as a reader that came
 * first. Used by the pool, the thread pool, the loop, the spawner and the
 * budgets for /health (handlers/health.c).
 */
#ifndef CONLAB_CHANGES_H
#define CONLAB_CHANGES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* Counts a possible change, then releases lock. */
static inline void changes_unlock(_Atomic uint64_t *changes,
                                  pthread_mutex_t *lock)
{
    atomic_fetch_add_explicit(changes, 1, memory_order_release);
    pthread_mutex_unlock(lock);
}

/* Counts a possible change of figures whose lock a condition wait is
 * about to release. */
static inline void changes_count(_Atomic uint64_t *changes)
{
    atomic_fetch_add_explicit(changes, 1, memory_order_release);
}

/* The count; any thread, no lock. */
static inline uint64_t changes_read(_Atomic uint64_t *changes)
{
    return atomic_load_explicit(changes, memory_order_acquire);
}

#endif
