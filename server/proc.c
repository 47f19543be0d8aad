/*
 * proc: see proc.h.
 */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "worker.h"

extern char **environ;

int proc_spawn_worker(const char *exe, const char *what, pid_t *pid, int *sock)
{
    int sv[2];
    char parent[16];
    char *argv[] = {"conlab", WORKER_FLAG, parent, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        int err = errno;
        log_error("%s: socketpair: %s", what, strerror(err));
        return -err;
    }
    if (sv[1] == WORKER_FD) {
        /* dup2 onto itself would keep FD_CLOEXEC: move it first. */
        int moved = fcntl(sv[1], F_DUPFD_CLOEXEC, WORKER_FD + 1);
        close(sv[1]);
        sv[1] = moved;
        if (moved < 0) {
            int err = errno;
            log_error("%s: cannot move a worker's channel: %s", what,
                      strerror(err));
            close(sv[0]);
            return -err;
        }
    }
    snprintf(parent, sizeof(parent), "%d", (int)getpid());
    posix_spawn_file_actions_init(&fa);
    /* Only 0-2 and the channel go across: libraries do not all set
     * CLOEXEC (libcurl 7.88's multi wakeup socketpair is open in the
     * service by the time a worker is respawned). */
    int rc = posix_spawn_file_actions_adddup2(&fa, sv[1], WORKER_FD);
    if (rc == 0)
        rc = posix_spawn_file_actions_addclosefrom_np(&fa, WORKER_FD + 1);
    if (rc != 0) {
        log_error("%s: cannot prepare a worker's descriptors: %s", what,
                  strerror(rc));
        posix_spawn_file_actions_destroy(&fa);
        close(sv[0]);
        close(sv[1]);
        return -rc;
    }
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr,
                             POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
    rc = posix_spawn(pid, exe, &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(sv[1]);
    if (rc != 0) {
        log_error("%s: cannot start a worker (%s): %s", what, exe,
                  strerror(rc));
        close(sv[0]);
        return -rc;
    }
    *sock = sv[0];
    return 0;
}

int proc_loop_init(struct proc_loop *l)
{
    struct epoll_event ev = {.events = EPOLLIN};
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    l->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (l->epfd < 0 || l->evfd < 0 || l->tfd < 0)
        goto out_close;
    ev.data.u64 = proc_loop_data(PROC_SRC_EVENT, 0);
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &ev) < 0)
        goto out_close;
    ev.data.u64 = proc_loop_data(PROC_SRC_TIMER, 0);
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->tfd, &ev) < 0)
        goto out_close;
    return 0;

out_close:;
    int err = errno;
    proc_loop_cleanup(l);
    return -err;
}

void proc_loop_cleanup(struct proc_loop *l)
{
    if (l->epfd >= 0)
        close(l->epfd);
    if (l->evfd >= 0)
        close(l->evfd);
    if (l->tfd >= 0)
        close(l->tfd);
    l->epfd = l->evfd = l->tfd = -1;
}

void proc_loop_wake(struct proc_loop *l, const char *what)
{
    uint64_t one = 1;
    if (write(l->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_error("%s: cannot wake its thread: %s", what, strerror(errno));
}

void proc_loop_ack(struct proc_loop *l, enum proc_src src, const char *what)
{
    bool timer = src == PROC_SRC_TIMER;
    uint64_t count;
    if (read(timer ? l->tfd : l->evfd, &count, sizeof(count)) < 0 &&
        errno != EAGAIN)
        log_error("%s: %s: %s", what, timer ? "timerfd" : "eventfd",
                  strerror(errno));
}

void proc_loop_arm(struct proc_loop *l, uint64_t at_ns)
{
    struct itimerspec its = {0};
    if (at_ns) {
        its.it_value.tv_sec = (time_t)(at_ns / 1000000000u);
        its.it_value.tv_nsec = (long)(at_ns % 1000000000u);
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
            its.it_value.tv_nsec = 1; /* zero would disarm it */
    }
    timerfd_settime(l->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

void proc_child_init(struct proc_child *c)
{
    c->pid = 0;
    c->sock = c->pidfd = -1;
    c->out = false;
    frame_reader_init(&c->rd);
    frame_writer_init(&c->wr);
}

void proc_child_cleanup(struct proc_child *c)
{
    frame_reader_cleanup(&c->rd);
    frame_writer_cleanup(&c->wr);
}

int proc_child_attach(struct proc_child *c, const char *what, int epfd,
                      pid_t pid, int sock, int slot)
{
    struct epoll_event sev = {.events = EPOLLIN,
                              .data.u64 = proc_loop_data(PROC_SRC_SOCK, slot)};
    struct epoll_event pev = {.events = EPOLLIN,
                              .data.u64 = proc_loop_data(PROC_SRC_PIDFD, slot)};
    int pidfd = pidfd_open(pid, 0);
    if (pidfd < 0 || fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK) ||
        epoll_ctl(epfd, EPOLL_CTL_ADD, sock, &sev) < 0 ||
        epoll_ctl(epfd, EPOLL_CTL_ADD, pidfd, &pev) < 0) {
        int err = errno;
        log_error("%s: cannot watch worker %d: %s", what, (int)pid,
                  strerror(err));
        epoll_ctl(epfd, EPOLL_CTL_DEL, sock, NULL);
        proc_kill_reap(pid);
        if (pidfd >= 0) {
            epoll_ctl(epfd, EPOLL_CTL_DEL, pidfd, NULL);
            close(pidfd);
        }
        close(sock);
        c->pid = 0;
        c->sock = c->pidfd = -1;
        c->out = false;
        return -err;
    }
    c->pid = pid;
    c->sock = sock;
    c->pidfd = pidfd;
    c->out = false;
    /* Left from the last process in this slot, if any. */
    frame_reader_cleanup(&c->rd);
    frame_writer_cleanup(&c->wr);
    return 0;
}

int proc_child_flush(struct proc_child *c, int epfd, int slot)
{
    int rc = frame_writer_flush(&c->wr, c->sock);
    bool out = rc == -EAGAIN;
    if (rc < 0 && !out)
        return rc;
    if (out != c->out) {
        struct epoll_event ev = {.events = out ? EPOLLIN | EPOLLOUT : EPOLLIN,
                                 .data.u64 =
                                     proc_loop_data(PROC_SRC_SOCK, slot)};
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->sock, &ev);
        c->out = out;
    }
    return 0;
}

void proc_child_close_sock(struct proc_child *c, int epfd)
{
    if (c->sock >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->sock, NULL);
        close(c->sock);
        c->sock = -1;
    }
    c->out = false;
}

void proc_child_kill(struct proc_child *c)
{
    if (c->pidfd >= 0)
        pidfd_send_signal(c->pidfd, SIGKILL, NULL, 0);
}

bool proc_child_reap(struct proc_child *c, int epfd, int *status)
{
    *status = 0;
    if (waitpid(c->pid, status, WNOHANG) == 0)
        return false;
    proc_child_close_sock(c, epfd);
    if (c->pidfd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->pidfd, NULL);
        close(c->pidfd);
        c->pidfd = -1;
    }
    return true;
}

void proc_kill_reap(pid_t pid)
{
    kill(pid, SIGKILL);
    /* Nothing survives SIGKILL: this wait is short. */
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

void proc_describe_exit(int status, char *out, size_t out_len)
{
    if (WIFSIGNALED(status))
        snprintf(out, out_len, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else if (WIFEXITED(status))
        snprintf(out, out_len, "exited with status %d", WEXITSTATUS(status));
    else
        snprintf(out, out_len, "ended");
}
