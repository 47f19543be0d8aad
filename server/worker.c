/*
 * worker: see worker.h.
 */
#include "worker.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "cores.h"
#include "frame.h"
#include "job.h"
#include "overhead.h"
#include "../handlers/demo.h"

int worker_main(int fd, int parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (parent > 0 && getppid() != parent)
        return 1; /* the service died before we could watch it */
    /* The mask inherited from the service, before any job pins it. */
    cores_count();

    uint8_t *in = malloc(FRAME_PAYLOAD_MAX);
    uint8_t *out = malloc(FRAME_PAYLOAD_MAX);
    int status = 1;
    if (!in || !out)
        goto out_free;

    struct job_hello hello = {.pid = (int32_t)getpid()};
    if (frame_send(fd, JOB_MSG_HELLO, &hello, sizeof(hello)) < 0)
        goto out_free;

    for (;;) {
        uint32_t type;
        size_t len;
        int rc = frame_recv(fd, &type, in, FRAME_PAYLOAD_MAX, &len);
        if (rc == -EPIPE) {
            status = 0; /* the pool closed our socket: retire */
            break;
        }
        if (rc < 0 || type != JOB_MSG_JOB || len < sizeof(struct job_request))
            break;

        struct job_request req;
        memcpy(&req, in, sizeof(req));
        struct job_reply reply = {.id = req.id};
        uint32_t result_len = 0;
        cpu_set_t saved;
        bool pinned = req.cores && cores_pin_thread(req.cores, &saved) == 0;
        reply.start_ns = clock_now_ns();
        uint64_t cpu0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
        if (req.len != len - sizeof(req))
            reply.status = -EINVAL;
        else
            reply.status = worker_run_job(
                req.kind, in + sizeof(req), req.len, out + sizeof(reply),
                FRAME_PAYLOAD_MAX - sizeof(reply), &result_len);
        reply.cpu_ns = clock_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
        reply.end_ns = clock_now_ns();
        if (pinned)
            cores_restore_thread(&saved);
        reply.len = reply.status == 0 ? result_len : 0;
        memcpy(out, &reply, sizeof(reply));
        if (frame_send(fd, JOB_MSG_RESULT, out, sizeof(reply) + reply.len) < 0)
            break;
    }

out_free:
    free(in);
    free(out);
    close(fd);
    return status;
}

/* The registry knows every demo's job (demo.h). */
int worker_run_job(uint32_t kind, const void *params, uint32_t len, void *out,
                   uint32_t cap, uint32_t *out_len)
{
    if (kind == JOB_HOLD)
        return overhead_worker_hold(params, len, out, cap, out_len);
    return demo_worker_job(kind, params, len, out, cap, out_len);
}
