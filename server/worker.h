/*
 * worker: the main loop of a worker process.
 *
 * A worker is this same binary started (by exec, never by a bare fork of
 * the threaded service) as "conlab --worker PARENT_PID" with its end of a
 * socketpair on descriptor WORKER_FD. It greets the pool with its pid, then
 * runs one job at a time: read a job, compute, answer. It exits when the
 * socket closes or the parent dies (PR_SET_PDEATHSIG), and needs no locks:
 * it has one thread.
 */
#ifndef CONLAB_WORKER_H
#define CONLAB_WORKER_H

#include <stdint.h>

#define WORKER_FD   3
#define WORKER_FLAG "--worker"

/*
 * Runs the worker loop on fd. parent is the pid the worker must belong to
 * (0 to skip the check). Returns the process exit status.
 */
int worker_main(int fd, int parent);

/*
 * Runs one job of kind with its parameters (len bytes) into out (cap
 * bytes): *out_len is set to the result's size. Returns 0 or a negative
 * errno (-EINVAL for a malformed job). Exposed for unit tests.
 */
int worker_run_job(uint32_t kind, const void *params, uint32_t len, void *out,
                   uint32_t cap, uint32_t *out_len);

#endif
