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
 * under the child's slot (proc_loop_data). The pool and the
 * spawn back end keep their own policy (respawn, recycling, one task per
 * process) and share these mechanics: start and watch, write and close the
 * channel, kill, reap and say how it ended.
 *
 * struct proc_loop is what that thread waits on: an epoll instance with an
 * eventfd (other threads wake it) and a timerfd (deadlines), and the
 * children's descriptors, each with its epoll data from proc_loop_data().
 *
 * proc_spawn_worker, proc_describe_exit, proc_kill_reap and
 * proc_loop_wake: any thread. The rest belongs to the one thread that
 * owns the loop.
 */
#ifndef CONLAB_PROC_H
#define CONLAB_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "frame.h"

/* What an epoll event is about. */
enum proc_src {
    PROC_SRC_EVENT = 1, /* the eventfd: woken */
    PROC_SRC_TIMER,     /* the timerfd: a deadline is due */
    PROC_SRC_SOCK,      /* a child's channel */
    PROC_SRC_PIDFD,     /* a child's pidfd: it ended */
};

struct proc_loop {
    int epfd;
    int evfd;
    int tfd;
};

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

/*
 * Creates the loop's epoll instance, eventfd and timerfd (all
 * close-on-exec, the last two non-blocking and watched). Returns 0, or a
 * negative errno with nothing left open.
 */
int proc_loop_init(struct proc_loop *l);

/* Closes what proc_loop_init opened. */
void proc_loop_cleanup(struct proc_loop *l);

/* The epoll data of an event about src; slot names the child (0 for the
 * eventfd and the timerfd). */
static inline uint64_t proc_loop_data(enum proc_src src, int slot)
{
    return (uint64_t)src << 32 | (unsigned)slot;
}

/* The src and slot of an event's data. */
static inline enum proc_src proc_loop_src(uint64_t data)
{
    return (enum proc_src)(data >> 32);
}

static inline int proc_loop_slot(uint64_t data)
{
    return (int)(data & 0xffffffffu);
}

/* Makes the loop's epoll_wait return (its eventfd readable). Any thread;
 * what names the loop in the log. */
void proc_loop_wake(struct proc_loop *l, const char *what);

/* Reads the eventfd (PROC_SRC_EVENT) or the timerfd (PROC_SRC_TIMER)
 * after it fired, so that it stops firing until the next wake or
 * deadline. */
void proc_loop_ack(struct proc_loop *l, enum proc_src src, const char *what);

/* Sets the timerfd to fire at at_ns of CLOCK_MONOTONIC (at once if that
 * is past), or never when at_ns is 0. */
void proc_loop_arm(struct proc_loop *l, uint64_t at_ns);

/* Sets up c with no process. */
void proc_child_init(struct proc_child *c);

/* Frees c's buffers. Its process must be reaped and its descriptors
 * closed. */
void proc_child_cleanup(struct proc_child *c);

/*
 * Takes over a worker just started by proc_spawn_worker: opens its pidfd,
 * makes sock non-blocking and adds both to epfd for EPOLLIN, as
 * PROC_SRC_SOCK and PROC_SRC_PIDFD of slot; the reader and writer
 * start empty. Returns 0, or a negative errno with the reason logged once
 * (what as in proc_spawn_worker), the process killed and reaped, sock
 * closed and c left without a process.
 */
int proc_child_attach(struct proc_child *c, const char *what, int epfd,
                      pid_t pid, int sock, int slot);

/*
 * Writes what c->wr holds to the worker. Returns 0 when it is all written
 * or the rest waits for the socket to take it (EPOLLOUT is then watched
 * (slot as in proc_child_attach), and this is called again on it; once all is
 * written the watch goes back to EPOLLIN alone), or a negative errno when the
 * worker is gone (the caller closes the channel; the pidfd tells how it
 * went).
 */
int proc_child_flush(struct proc_child *c, int epfd, int slot);

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
