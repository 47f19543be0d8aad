/*
 * gil: see gil.h. A ticket lock built from a mutex and a condition
 * variable: next_ticket is the line, serving the ticket that may hold it.
 */
#include "gil.h"

#include <pthread.h>
#include <stdlib.h>

#include "clock.h"

struct gil {
    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t turn;
    uint64_t next_ticket;
    uint64_t serving;
    uint64_t interval_ns;
    uint64_t held_since_ns; /* written by the holder under lock */
};

struct gil *gil_new(uint64_t switch_interval_ns)
{
    struct gil *gil = calloc(1, sizeof(*gil));
    if (!gil)
        return NULL;
    pthread_mutex_init(&gil->lock, NULL);
    pthread_cond_init(&gil->turn, NULL);
    gil->interval_ns = switch_interval_ns;
    return gil;
}

void gil_free(struct gil *gil)
{
    if (!gil)
        return;
    pthread_cond_destroy(&gil->turn);
    pthread_mutex_destroy(&gil->lock);
    free(gil);
}

uint64_t gil_acquire(struct gil *gil)
{
    pthread_mutex_lock(&gil->lock);
    uint64_t ticket = gil->next_ticket++;
    while (gil->serving != ticket)
        pthread_cond_wait(&gil->turn, &gil->lock);
    uint64_t now = clock_now_ns();
    gil->held_since_ns = now;
    pthread_mutex_unlock(&gil->lock);
    return now;
}

uint64_t gil_release(struct gil *gil)
{
    pthread_mutex_lock(&gil->lock);
    uint64_t now = clock_now_ns();
    gil->serving++;
    pthread_cond_broadcast(&gil->turn);
    pthread_mutex_unlock(&gil->lock);
    return now;
}

bool gil_yield(struct gil *gil, uint64_t *released_ns, uint64_t *acquired_ns)
{
    uint64_t now = clock_now_ns();
    pthread_mutex_lock(&gil->lock);
    bool due = now - gil->held_since_ns >= gil->interval_ns;
    bool waiters = gil->next_ticket - gil->serving > 1;
    if (due && !waiters)
        gil->held_since_ns = now; /* nobody wants it: a fresh interval */
    pthread_mutex_unlock(&gil->lock);
    if (!due || !waiters)
        return false;
    *released_ns = gil_release(gil);
    *acquired_ns = gil_acquire(gil);
    return true;
}
