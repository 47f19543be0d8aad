/*
 * waitfor: see waitfor.h.
 */
#include "waitfor.h"

#include <errno.h>

int waitfor_cycle(const int *holder, size_t n_locks, const int *waits,
                  size_t n_tasks, int start, struct waitfor_edge *out,
                  size_t cap)
{
    if (start < 0 || (size_t)start >= n_tasks)
        return -EINVAL;
    int task = start;
    /* A cycle through start comes back to it within n_tasks steps. */
    for (size_t steps = 0; steps < n_tasks; steps++) {
        int lock = waits[task];
        if (lock == WAITFOR_NONE)
            return 0;
        if (lock < 0 || (size_t)lock >= n_locks)
            return -EINVAL;
        int next = holder[lock];
        if (next == WAITFOR_NONE)
            return 0;
        if (next < 0 || (size_t)next >= n_tasks)
            return -EINVAL;
        if (steps < cap) {
            out[steps].task = task;
            out[steps].waits_for = lock;
        }
        /* The next task holds what this one waits for. */
        if (steps + 1 < cap)
            out[steps + 1].holds = lock;
        task = next;
        if (task == start) {
            if (cap)
                out[0].holds = lock; /* start holds what the last waits for */
            return (int)(steps + 1);
        }
    }
    return 0;
}
