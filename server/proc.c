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
#include <sys/socket.h>
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
