/*
 * gil: a simulated global interpreter lock, for the "gil" mode.
 *
 * Like CPython's, one lock that a thread must hold to compute; a holder
 * offers it to waiting threads once it has held it for the switch interval
 * (CPython's default is 5 ms), and gives it up while it sleeps. Waiters are
 * served in arrival order (a ticket lock), so a thread that yields goes to
 * the back of the line and the others really get their turn.
 *
 * Any thread; gil_yield and gil_release only by the holder.
 */
#ifndef CONLAB_GIL_H
#define CONLAB_GIL_H

#include <stdbool.h>
#include <stdint.h>

#define GIL_SWITCH_INTERVAL_NS (5u * 1000u * 1000u)

struct gil;

/* A new, free lock with that switch interval, or NULL without memory. */
struct gil *gil_new(uint64_t switch_interval_ns);

/* Frees the lock (nobody may hold or wait for it); NULL does nothing. */
void gil_free(struct gil *gil);

/* Blocks until the caller holds the lock; returns the time it got it. */
uint64_t gil_acquire(struct gil *gil);

/* Gives the lock up; returns the time it did. */
uint64_t gil_release(struct gil *gil);

/*
 * Called by the holder between units of work: once the interval has passed
 * and another thread waits, releases and re-acquires (behind the waiters).
 * Returns true when it switched; *released_ns and *acquired_ns then tell
 * when the caller lost and regained the lock.
 */
bool gil_yield(struct gil *gil, uint64_t *released_ns, uint64_t *acquired_ns);

#endif
