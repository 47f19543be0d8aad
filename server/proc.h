/*
 * proc: starting this service's own binary as a worker process.
 *
 * The prefork pool, the spawn back end (a fresh process per task) and
 * /run/overhead all start workers the same way: "conlab --worker PID" by
 * posix_spawn (never a bare fork of the threaded service), with the child's
 * end of a new socketpair on WORKER_FD and nothing else but 0-2 inherited,
 * all signals unblocked, in its own process group (a terminal's Ctrl-C
 * reaches the service only, which then stops its workers itself). The
 * worker greets with JOB_MSG_HELLO once it is ready for work (worker.h).
 *
 * Any thread.
 */
#ifndef CONLAB_PROC_H
#define CONLAB_PROC_H

#include <sys/types.h>

/*
 * Starts exe in worker mode. On success returns 0 and sets *pid and *sock
 * (the parent's end of the channel: close-on-exec, blocking). Returns a
 * negative errno otherwise, with the reason logged once (what names the
 * caller in the log line: "pool", "spawn").
 */
int proc_spawn_worker(const char *exe, const char *what, pid_t *pid, int *sock);

#endif
