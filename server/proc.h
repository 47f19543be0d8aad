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
 * struct proc_child is one such worker seen from the parent: its process,
 * its pidfd and its channel, both watched by the owner's epoll instance
 * (the caller picks the epoll data that names them). The pool and the
 * spawn back end keep their own policy (respawn, recycling, one task per
 * process) and share these mechanics: start and watch, write and close the
 * channel, kill, reap and say how it ended.
 *
 * proc_spawn_worker, proc_describe_exit and proc_kill_reap: any thread. A
 * struct proc_child belongs to the one thread that owns its epoll
 * instance.
 */
#ifndef CONLAB_PROC_H
#define CONLAB_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "frame.h"

struct proc_child {
    pid_t pid; /* 0: none */
    int sock;  /* the channel, non-blocking; -1 once closed */
    int pidfd; /* -1 once reaped */
    bool out;  /* EPOLLOUT watched: the writer holds unsent bytes */
    struct frame_reader rd;
    struct frame_writer wr;
};

/*
 * Starts exe in worker mode. On success returns 0 and sets *pid and *sock
 * (the parent's end of the channel: close-on-exec, blocking). Returns a
 * negative errno otherwise, with the reason logged once (what names the
 * caller in the log line: "pool", "spawn").
 */
int proc_spawn_worker(const char *exe, const char *what, pid_t *pid, int *sock);

/* Sets up c with no process. */
void proc_child_init(struct proc_child *c);

/* Frees c's buffers. Its process must be reaped and its descriptors
 * closed. */
void proc_child_cleanup(struct proc_child *c);

/*
 * Takes over a worker just started by proc_spawn_worker: opens its pidfd,
 * makes sock non-blocking and adds both to epfd for EPOLLIN, with
 * sock_data and pidfd_data as their epoll data; the reader and writer
 * start empty. Returns 0, or a negative errno with the reason logged once
 * (what as in proc_spawn_worker), the process killed and reaped, sock
 * closed and c left without a process.
 */
int proc_child_attach(struct proc_child *c, const char *what, int epfd,
                      pid_t pid, int sock, uint64_t sock_data,
                      uint64_t pidfd_data);

/*
 * Writes what c->wr holds to the worker. Returns 0 when it is all written
 * or the rest waits for the socket to take it (EPOLLOUT is then watched
 * with sock_data, and this is called again on it; once all is written
 * the watch goes back to EPOLLIN alone), or a negative errno when the
 * worker is gone (the caller closes the channel; the pidfd tells how it
 * went).
 */
int proc_child_flush(struct proc_child *c, int epfd, uint64_t sock_data);

/* Closes the channel, if open, and takes it out of epfd. A worker whose
 * channel closes exits by itself once it has read what was sent. */
void proc_child_close_sock(struct proc_child *c, int epfd);

/* Sends SIGKILL through the pidfd, if the child is not reaped yet. */
void proc_child_kill(struct proc_child *c);

/*
 * Reaps the child, once its pidfd is readable, if it has ended. Returns
 * false when it has not (the pidfd fires again). Returns true when it is
 * gone: *status is its wait status (0 if it could not be had), its channel
 * and pidfd are closed and out of epfd, c->pid is kept for the caller's
 * messages.
 */
bool proc_child_reap(struct proc_child *c, int epfd, int *status);

/* Kills pid (a child of this process, not yet reaped) and waits for it. */
void proc_kill_reap(pid_t pid);

/* How a child ended, from its wait status: "killed by signal 9 (Killed)",
 * "exited with status 1". */
void proc_describe_exit(int status, char *out, size_t out_len);

#endif
