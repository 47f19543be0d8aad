/*
 * waitfor: the wait-for graph of a few tasks and locks, and the search for
 * a cycle in it (a deadlock caught in the act).
 *
 * Each lock has at most one holder; each task waits for at most one lock.
 * Task t waits for task u when t waits for a lock that u holds; a cycle of
 * such edges is a deadlock: none of its tasks can ever go on by itself.
 * With one wait per task the graph is a set of chains, so following the
 * edges from a task either ends (someone on the way is not waiting), loops
 * back to the task (the task is in a cycle), or runs into a cycle the task
 * only leads into; at most n_tasks steps either way.
 *
 * Plain data, no locks: the caller keeps the graph under its own lock (the
 * deadlock demo's) and calls this under it. Any thread.
 */
#ifndef CONLAB_WAITFOR_H
#define CONLAB_WAITFOR_H

#include <stddef.h>

#define WAITFOR_NONE (-1) /* no holder, or not waiting */

/* One edge of a cycle: task holds lock `holds` and waits for `waits_for`. */
struct waitfor_edge {
    int task;
    int holds;     /* the lock the next task of the cycle waits for */
    int waits_for; /* a lock the previous task holds */
};

/*
 * Looks for a cycle through task start. holder[l] is the task holding
 * lock l (or WAITFOR_NONE), waits[t] the lock task t waits for (or
 * WAITFOR_NONE). On a cycle, writes its edges in order from start into
 * out (at most cap; a longer cycle is still reported by its length) and
 * returns how many tasks it has (>= 1: a task waiting for a lock it holds
 * itself is a cycle of one). Returns 0 when start is in no cycle, and
 * -EINVAL for an index outside the arrays.
 */
int waitfor_cycle(const int *holder, size_t n_locks, const int *waits,
                  size_t n_tasks, int start, struct waitfor_edge *out,
                  size_t cap);

#endif
