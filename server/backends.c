/*
 * backends: see backends.h.
 *
 * Each back end keeps a few "slots" per run, one per lane it may use at
 * once (min(tasks, lanes)); a slot carries one task at a time into its
 * pool and, when that task ends, claims the run's next task and goes
 * again. So a run holds at most its lanes' worth of queue entries and
 * intrusive pool items, whatever its number of tasks.
 *
 * Callbacks pin the run (engine_run_pin) while they work on it: ending
 * their task may be the run's last, and the run (with these slots) may be
 * freed by its owner as soon as it has settled, so nothing is touched
 * after the unpin.
 */
#include "backends.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "container.h"
#include "loop.h"
#include "pool.h"
#include "spawner.h"
#include "tpool.h"

struct tslot {
    struct tpool_task tt;
    struct engine_run *run;
    size_t task;
};

struct tslots {
    size_t n;
    struct tslot slot[];
};

struct pslot {
    struct pool_job job;
    struct engine_run *run;
    size_t task;
    unsigned slice;
    uint64_t task_deadline_ns;
    struct engine_job ej;
};

struct pslots {
    size_t n;
    struct pslot slot[];
};

struct sslot {
    struct spawn_task st;
    struct engine_run *run;
    size_t task;
    unsigned slice;
    bool begun; /* engine_task_begin() was called for this task */
    struct engine_job ej;
};

struct sslots {
    size_t n;
    struct sslot slot[];
};

struct async_be {
    struct loop_call call;
    struct engine_run *run;
};

static int seq_start(struct engine_run *run);
static int threads_start(struct engine_run *run);
static void threads_cancel(struct engine_run *run);
static int procs_start(struct engine_run *run);
static void procs_cancel(struct engine_run *run);
static int spawn_start(struct engine_run *run);
static void spawn_cancel(struct engine_run *run);
static int async_start(struct engine_run *run);
static void async_cancel(struct engine_run *run);
static void release_data(struct engine_run *run);

static const struct engine_backend sequential_be = {
    .lane = ENGINE_LANE_MAIN,
    .start = seq_start,
    .cancel = threads_cancel,
    .release = release_data,
};

static const struct engine_backend threads_be = {
    .lane = ENGINE_LANE_THREAD,
    .start = threads_start,
    .cancel = threads_cancel,
    .release = release_data,
};

static const struct engine_backend processes_be = {
    .lane = ENGINE_LANE_PROCESS,
    .start = procs_start,
    .cancel = procs_cancel,
    .release = release_data,
};

static const struct engine_backend spawn_be = {
    .lane = ENGINE_LANE_SPAWN,
    .start = spawn_start,
    .cancel = spawn_cancel,
    .release = release_data,
};

static const struct engine_backend async_be = {
    .lane = ENGINE_LANE_LOOP,
    .start = async_start,
    .cancel = async_cancel,
    .release = release_data,
};

const struct engine_backend *backends_for(enum engine_mode mode)
{
    switch (mode) {
    case ENGINE_SEQUENTIAL:
        return &sequential_be;
    case ENGINE_THREADS:
    case ENGINE_GIL:
        return &threads_be;
    case ENGINE_PROCESSES:
        return &processes_be;
    case ENGINE_ASYNC:
        return &async_be;
    case ENGINE_SPAWN:
        return &spawn_be;
    default:
        return NULL;
    }
}

static void release_data(struct engine_run *run)
{
    free(engine_run_backend(run));
    engine_run_set_backend(run, NULL);
}

/* Slots for min(n_tasks, lanes) tasks at once, each claiming a task. */
static struct tslots *tslots_new(struct engine_run *run, size_t lanes)
{
    size_t n = engine_run_n_tasks(run);
    if (lanes < n)
        n = lanes;
    struct tslots *s = calloc(1, sizeof(*s) + n * sizeof(s->slot[0]));
    if (!s)
        return NULL;
    s->n = n;
    for (size_t i = 0; i < n; i++) {
        s->slot[i].run = run;
        s->slot[i].tt.client = engine_run_client(run);
    }
    engine_run_set_backend(run, s);
    return s;
}

/* Ends the tasks the slots claimed but could not hand over. */
static void unclaim(struct engine_run *run, struct tslots *s, size_t n,
                    int status)
{
    for (size_t i = 0; i < n; i++)
        engine_task_end(run, s->slot[i].task, status, 0, NULL);
}

/* ---- sequential: one demo-pool task runs them all, in order ---- */

/*
 * The slot always holds a claimed task while it is queued, so the run
 * cannot settle (and be freed) under a queued slot.
 */
static void seq_main(struct tpool_task *tt, int status)
{
    struct tslot *slot = container_of(tt, struct tslot, tt);
    struct engine_run *run = slot->run;
    size_t task = slot->task;

    if (!engine_run_pin(run))
        return;
    if (status < 0) {
        engine_task_end(run, task, status, 0, NULL);
        engine_run_end_rest(run, status, NULL);
        engine_run_unpin(run);
        return;
    }
    do {
        int rc = engine_run_compute(run, task, ENGINE_LANE_MAIN, 0);
        if (rc < 0) {
            /* The first failure stops the sequence. */
            engine_run_end_rest(run, rc, NULL);
            break;
        }
    } while (engine_run_next(run, &task));
    engine_run_unpin(run);
}

static int seq_start(struct engine_run *run)
{
    struct engine *e = engine_run_engine(run);
    struct tslots *s = tslots_new(run, 1);
    if (!s)
        return -ENOMEM;
    if (!engine_run_next(run, &s->slot[0].task))
        return 0; /* cancelled already: nothing to run */
    struct tpool_task *one = &s->slot[0].tt;
    one->run = seq_main;
    int rc = tpool_submit(engine_config(e)->tpool, &one, 1);
    if (rc < 0)
        unclaim(run, s, 1, rc);
    return rc;
}

/* ---- threads and gil: a demo-pool task per task ---- */

static void thread_task(struct tpool_task *tt, int status)
{
    struct tslot *slot = container_of(tt, struct tslot, tt);
    struct engine_run *run = slot->run;
    struct tpool *tpool = engine_config(engine_run_engine(run))->tpool;
    size_t next;

    if (!engine_run_pin(run))
        return;
    if (status < 0) {
        engine_task_end(run, slot->task, status, 0, NULL);
        engine_run_end_rest(run, status, NULL);
    } else {
        engine_run_compute(run, slot->task, ENGINE_LANE_THREAD, tt->thread_id);
        if (engine_run_next(run, &next)) {
            slot->task = next;
            struct tpool_task *one = tt;
            int rc = tpool_submit(tpool, &one, 1);
            if (rc < 0) {
                engine_task_end(run, next, rc, 0, NULL);
                engine_run_end_rest(run, rc, NULL);
            }
        }
    }
    engine_run_unpin(run);
}

static int threads_start(struct engine_run *run)
{
    struct engine *e = engine_run_engine(run);
    struct tslots *s = tslots_new(run, engine_lanes(e, ENGINE_THREADS, 0));
    if (!s)
        return -ENOMEM;
    struct tpool_task **list = malloc(s->n * sizeof(*list));
    if (!list)
        return -ENOMEM;
    size_t n = 0;
    while (n < s->n && engine_run_next(run, &s->slot[n].task)) {
        s->slot[n].tt.run = thread_task;
        list[n] = &s->slot[n].tt;
        n++;
    }
    int rc = n ? tpool_submit(engine_config(e)->tpool, list, n) : 0;
    free(list);
    if (rc < 0)
        unclaim(run, s, n, rc);
    return rc;
}

/* Sequential too: drops the slots still queued; their tasks end now. */
static void threads_cancel(struct engine_run *run)
{
    struct tslots *s = engine_run_backend(run);
    struct tpool *tpool = engine_config(engine_run_engine(run))->tpool;
    int status = engine_run_check(run);
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        if (s->slot[i].tt.run && tpool_cancel(tpool, &s->slot[i].tt))
            engine_task_end(run, s->slot[i].task, status, 0, NULL);
    }
}

/* ---- processes: jobs on the worker pool, in slices ---- */

static void on_job(struct pool_job *job);

/* Fills the slot's job with the next slice of its task. */
static int describe(struct pslot *slot)
{
    struct engine_run *run = slot->run;
    memset(&slot->ej, 0, sizeof(slot->ej));
    int rc = engine_run_work(run)->job(engine_run_state(run), slot->task,
                                       slot->slice, &slot->ej);
    if (rc < 0)
        return rc;
    slot->job.kind = slot->ej.kind;
    slot->job.params = slot->ej.params;
    slot->job.params_len = slot->ej.len;
    slot->job.done = on_job;
    slot->job.client = engine_run_client(run);
    slot->job.cores = engine_run_cores(run);
    return 0;
}

/* Claims the run's next task for the slot and queues its first slice. */
static void feed(struct pslot *slot, struct pool *pool, int timeout_ms)
{
    struct engine_run *run = slot->run;
    size_t task;
    if (!engine_run_next(run, &task))
        return;
    slot->task = task;
    slot->slice = 0;
    slot->task_deadline_ns = clock_now_ns() + (uint64_t)timeout_ms * 1000000u;
    int rc = describe(slot);
    if (rc == 0) {
        struct pool_job *one = &slot->job;
        rc = pool_submit(pool, &one, 1);
    }
    if (rc < 0) {
        engine_task_end(run, task, rc, 0, NULL);
        engine_run_end_rest(run, rc, NULL);
    }
}

/* Pool thread: a slice ended (answered, died, timed out, stopped). */
static void on_job(struct pool_job *job)
{
    struct pslot *slot = container_of(job, struct pslot, job);
    struct engine_run *run = slot->run;
    const struct engine_config *cfg = engine_config(engine_run_engine(run));
    char why[ENGINE_ERROR_MAX];

    if (!engine_run_pin(run))
        return;
    int status = job->status;
    const char *message = status ? job->error : NULL;
    if (slot->slice == 0 && status == 0)
        engine_task_begin(run, slot->task, ENGINE_LANE_PROCESS,
                          (int32_t)job->worker_pid, job->start_ns);
    else if (slot->slice == 0)
        engine_task_begin(run, slot->task, ENGINE_LANE_PROCESS,
                          (int32_t)job->worker_pid, 0);
    if (status == 0)
        engine_task_add_cpu(run, slot->task, job->cpu_ns);
    if (status == 0 && engine_run_work(run)->absorb(
                           engine_run_state(run), slot->task, slot->slice,
                           job->result, job->result_len) < 0) {
        status = -EPROTO;
        snprintf(why, sizeof(why), "worker %d sent a malformed result",
                 (int)job->worker_pid);
        message = why;
    }
    if (status == 0 && !slot->ej.last) {
        /* Another slice of the same task, unless it should stop. */
        status = engine_run_check(run);
        if (status == 0 && clock_now_ns() > slot->task_deadline_ns) {
            status = -ETIMEDOUT;
            snprintf(why, sizeof(why),
                     "task %zu exceeded its %d ms deadline and was stopped",
                     slot->task, cfg->job_timeout_ms);
            message = why;
        }
        if (status == 0) {
            slot->slice++;
            status = describe(slot);
            if (status == 0) {
                struct pool_job *one = &slot->job;
                status = pool_submit(cfg->pool, &one, 1);
            }
            if (status == 0) {
                engine_run_unpin(run);
                return;
            }
        }
        engine_task_end(run, slot->task, status, 0, message);
    } else {
        engine_task_end(run, slot->task, status, job->end_ns, message);
    }
    feed(slot, cfg->pool, cfg->job_timeout_ms);
    engine_run_unpin(run);
}

static int procs_start(struct engine_run *run)
{
    struct engine *e = engine_run_engine(run);
    const struct engine_config *cfg = engine_config(e);
    size_t n = engine_run_n_tasks(run);
    size_t lanes = engine_lanes(e, ENGINE_PROCESSES, n);
    if (lanes < n)
        n = lanes;
    struct pslots *s = calloc(1, sizeof(*s) + n * sizeof(s->slot[0]));
    struct pool_job **list = malloc(n * sizeof(*list));
    if (!s || !list) {
        free(s);
        free(list);
        return -ENOMEM;
    }
    s->n = n;
    engine_run_set_backend(run, s);
    uint64_t deadline =
        clock_now_ns() + (uint64_t)cfg->job_timeout_ms * 1000000u;
    size_t claimed = 0;
    int rc = 0;
    while (claimed < n && engine_run_next(run, &s->slot[claimed].task)) {
        struct pslot *slot = &s->slot[claimed++];
        slot->run = run;
        slot->task_deadline_ns = deadline;
        rc = describe(slot);
        if (rc < 0)
            break;
        list[claimed - 1] = &slot->job;
    }
    if (rc == 0 && claimed)
        rc = pool_submit(cfg->pool, list, claimed);
    free(list);
    if (rc < 0) {
        for (size_t i = 0; i < claimed; i++)
            engine_task_end(run, s->slot[i].task, rc, 0, NULL);
    }
    return rc;
}

static void procs_cancel(struct engine_run *run)
{
    struct pslots *s = engine_run_backend(run);
    struct pool *pool = engine_config(engine_run_engine(run))->pool;
    int status = engine_run_check(run);
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        if (s->slot[i].run && pool_cancel(pool, &s->slot[i].job))
            engine_task_end(run, s->slot[i].task, status, 0, NULL);
    }
}

/* ---- spawn: a fresh process per task, its slices all its own ---- */

static void spawn_feed(struct sslot *slot);

/* Spawner thread: the process greeted, or answered the task's last job. */
static int spawn_next(struct spawn_task *st, const struct spawn_reply *last)
{
    struct sslot *slot = container_of(st, struct sslot, st);
    struct engine_run *run = slot->run;
    void *state = engine_run_state(run);

    if (!last) {
        engine_task_begin(run, slot->task, ENGINE_LANE_SPAWN, (int32_t)st->pid,
                          st->requested_ns);
        engine_task_ready(run, slot->task, st->ready_ns);
        slot->begun = true;
    } else {
        if (last->status != 0) {
            snprintf(st->error, sizeof(st->error),
                     "spawned worker %d rejected the job: %s", (int)st->pid,
                     strerror(-last->status));
            return last->status;
        }
        engine_task_add_cpu(run, slot->task, last->cpu_ns);
        if (engine_run_work(run)->absorb(state, slot->task, slot->slice,
                                         last->result, last->len) < 0) {
            snprintf(st->error, sizeof(st->error),
                     "spawned worker %d sent a malformed result", (int)st->pid);
            return -EPROTO;
        }
        if (slot->ej.last)
            return 1;
        slot->slice++;
    }
    /* A cancel that missed the spawner (asked for between two tasks of the
     * slot) is seen here, at the next slice. */
    int rc = engine_run_check(run);
    if (rc < 0)
        return rc;
    memset(&slot->ej, 0, sizeof(slot->ej));
    rc = engine_run_work(run)->job(state, slot->task, slot->slice, &slot->ej);
    if (rc < 0)
        return rc;
    st->kind = slot->ej.kind;
    st->params = slot->ej.params;
    st->params_len = slot->ej.len;
    return 0;
}

/* Spawner thread: the task's process has been reaped. */
static void spawn_done(struct spawn_task *st)
{
    struct sslot *slot = container_of(st, struct sslot, st);
    struct engine_run *run = slot->run;

    if (!engine_run_pin(run))
        return;
    if (!slot->begun)
        engine_task_begin(run, slot->task, ENGINE_LANE_SPAWN, (int32_t)st->pid,
                          st->requested_ns);
    int status = st->status;
    engine_task_end(run, slot->task, status, st->ended_ns,
                    status && st->error[0] ? st->error : NULL);
    spawn_feed(slot);
    engine_run_unpin(run);
}

/* Claims the run's next task for the slot and asks for its process. */
static void spawn_feed(struct sslot *slot)
{
    struct engine_run *run = slot->run;
    struct spawner *sp = engine_config(engine_run_engine(run))->spawner;
    size_t task;
    if (!engine_run_next(run, &task))
        return;
    slot->task = task;
    slot->slice = 0;
    slot->begun = false;
    slot->st.cores = engine_run_cores(run);
    slot->st.next = spawn_next;
    slot->st.done = spawn_done;
    int rc = sp ? spawner_submit(sp, &slot->st) : -ENOTSUP;
    if (rc < 0) {
        engine_task_begin(run, task, ENGINE_LANE_SPAWN, 0, 0);
        engine_task_end(run, task, rc, 0,
                        rc == -EAGAIN ? "every spawn lane is taken; retry "
                                        "shortly"
                                      : NULL);
        engine_run_end_rest(run, rc, NULL);
    }
}

static int spawn_start(struct engine_run *run)
{
    struct engine *e = engine_run_engine(run);
    size_t n = engine_run_n_tasks(run);
    size_t lanes = engine_lanes(e, ENGINE_SPAWN, n);
    if (lanes < n)
        n = lanes;
    struct sslots *s = calloc(1, sizeof(*s) + n * sizeof(s->slot[0]));
    if (!s)
        return -ENOMEM;
    s->n = n;
    for (size_t i = 0; i < n; i++)
        s->slot[i].run = run;
    engine_run_set_backend(run, s);
    for (size_t i = 0; i < n; i++)
        spawn_feed(&s->slot[i]);
    return 0;
}

/* Kills the processes the run holds; each ends its task once reaped. */
static void spawn_cancel(struct engine_run *run)
{
    struct sslots *s = engine_run_backend(run);
    struct spawner *sp = engine_config(engine_run_engine(run))->spawner;
    int status = engine_run_check(run);
    if (!s || !sp)
        return;
    for (size_t i = 0; i < s->n; i++)
        spawner_cancel(sp, &s->slot[i].st, status);
}

/* ---- async: the work starts everything on the event loop ---- */

static int async_start(struct engine_run *run)
{
    struct async_be *be = calloc(1, sizeof(*be));
    if (!be)
        return -ENOMEM;
    be->run = run;
    uint64_t now = clock_now_ns();
    size_t task, claimed = 0;
    while (engine_run_next(run, &task)) {
        engine_task_begin(run, task, ENGINE_LANE_LOOP, 0, now);
        claimed++;
    }
    /*
     * A cancel that came while the tasks were claimed stopped the claims
     * (engine_run_next()), and the engine ends the unclaimed ones itself.
     * start_async() starts every task of the run, so it must not run: the
     * claimed tasks end here, with the cancel's status, and there is no
     * back end to cancel. Started anyway, each unclaimed task ended twice,
     * the second time by its timer or transfer after the run had settled
     * and been freed (TSan, at a SIGTERM during a 1,000-task sleep).
     */
    int status, rc = 0;
    if (claimed < engine_run_n_tasks(run)) {
        free(be);
        status = engine_run_check(run);
        if (status == 0)
            status = -ECANCELED;
    } else {
        engine_run_set_backend(run, be);
        status = rc =
            engine_run_work(run)->start_async(run, engine_run_state(run));
    }
    /* Not started: the claimed tasks end here (all or none started). */
    if (status < 0)
        for (size_t i = 0; i < claimed; i++)
            engine_task_end(run, i, status, 0, NULL);
    return rc;
}

/* Loop thread: the cancel asked for by async_cancel(). */
static void async_cancel_here(struct loop *loop, struct loop_call *call)
{
    struct async_be *be = container_of(call, struct async_be, call);
    struct engine_run *run = be->run;
    (void)loop;
    engine_run_work(run)->cancel_async(run, engine_run_state(run));
    engine_run_unpin(run);
}

static void async_cancel(struct engine_run *run)
{
    struct async_be *be = engine_run_backend(run);
    struct loop *loop = engine_config(engine_run_engine(run))->loop;
    if (!be || !engine_run_work(run)->cancel_async || !engine_run_pin(run))
        return;
    be->call.fn = async_cancel_here;
    if (loop_call(loop, &be->call) < 0)
        engine_run_unpin(run); /* stopping: the loop cancels everything */
}
