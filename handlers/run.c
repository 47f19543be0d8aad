/*
 * run: see run.h.
 *
 * Ownership: after run_start() the run belongs to its units of work
 * (pending counts them); whoever brings pending to zero answers and frees
 * it, so nothing touches the run after its own last decrement.
 */
#include "run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/clock.h"
#include "../server/gil.h"
#include "../server/http.h"
#include "../server/log.h"
#include "handlers.h"

const char *const run_mode_names[RUN_MODES] = {"sequential", "threads",
                                               "processes", "gil", "async"};

const struct demo *const run_demos[RUN_DEMOS] = {&demo_prime, &demo_square,
                                                 &demo_sleep, &demo_fetch};

/* Runs ended, by demo, mode and outcome (0 ok, 1 error). */
static _Atomic uint64_t runs_total[RUN_DEMOS][RUN_MODES][2];

static void unit_done(struct run *run);
static void finish(struct run *run);
static void on_job_done(struct pool_job *job);
static bool job_abandoned(struct pool_job *job);
static void on_thread_task(struct tpool_task *t, int status);
static void on_sequential(struct tpool_task *t, int status);
static int run_in_process(struct run_task *task);
static int yield_plain(void *arg);
static int yield_gil(void *arg);
static void slice_open(struct run_task *t, uint64_t at);
static void slice_close(struct run_task *t, uint64_t at);
static void fail_all(struct run *run, int status, const char *message);
static double offset_ms(const struct run *run, uint64_t ns);

struct run *run_new(struct app *app, struct request *req, const char *demo,
                    enum run_mode mode, json_t *params,
                    const struct run_ops *ops, void *state, size_t n_tasks)
{
    struct run *run = calloc(1, sizeof(*run) + n_tasks * sizeof(run->tasks[0]));
    if (!run) {
        json_decref(params);
        if (state)
            ops->free_state(state);
        return NULL;
    }
    run->app = app;
    run->req = req;
    run->origin_ns = req->accepted_ns;
    run->demo = demo;
    run->mode = mode;
    run->params = params;
    run->ops = ops;
    run->state = state;
    run->n_tasks = n_tasks;
    for (size_t i = 0; i < n_tasks; i++) {
        run->tasks[i].run = run;
        run->tasks[i].id = (int)i;
    }
    return run;
}

enum handler_result run_handle(const struct demo *demo, struct app *app,
                               struct request *req, struct response *resp)
{
    const char *names[RUN_MODES];
    int def = 0, choice;
    struct params p;

    for (size_t i = 0; i < demo->n_modes; i++) {
        names[i] = run_mode_names[demo->modes[i]];
        if (demo->modes[i] == demo->default_mode)
            def = (int)i;
    }
    if (params_parse(&p, req->query) < 0 ||
        params_enum(&p, "mode", names, demo->n_modes, def, &choice) < 0)
        return handlers_reject_params(&p, resp);

    struct run *run = demo->prepare(app, req, &p, demo->modes[choice], resp);
    if (!run && p.failed)
        return handlers_reject_params(&p, resp);
    params_cleanup(&p);
    return run ? run_start(run, resp) : HANDLER_DONE;
}

enum handler_result run_start(struct run *run, struct response *resp)
{
    if (!run) {
        response_error(resp, 500, "out of memory");
        return HANDLER_DONE;
    }
    http_suspend(run->req);
    run_launch(run);
    return HANDLER_ASYNC;
}

void run_launch(struct run *run)
{
    int rc;
    size_t n = run->n_tasks;

    run->deadline_ns =
        clock_now_ns() + (uint64_t)run->app->cfg->job_timeout_ms * 1000000u;
    if (run->mode == RUN_PROCESSES) {
        struct pool_job **jobs = malloc(n * sizeof(*jobs));
        if (!jobs) {
            fail_all(run, -ENOMEM, "out of memory");
            return;
        }
        for (size_t i = 0; i < n; i++) {
            struct run_task *t = &run->tasks[i];
            run->ops->job(run, t, &t->job.kind, &t->job.params,
                          &t->job.params_len);
            t->job.done = on_job_done;
            t->job.abandoned = job_abandoned;
            t->job.owner = t;
            jobs[i] = &t->job;
        }
        atomic_store(&run->pending, n);
        rc = pool_submit(run->app->pool, jobs, n);
        free(jobs);
    } else if (run->mode == RUN_ASYNC) {
        uint64_t now = clock_now_ns();
        for (size_t i = 0; i < n; i++) {
            run->tasks[i].start_ns = now;
            run->tasks[i].worker_kind = "loop";
            run->tasks[i].worker_id = 0;
        }
        atomic_store(&run->pending, n);
        rc = run->ops->start_async(run);
    } else if (run->mode == RUN_SEQUENTIAL) {
        run->seq_task.run = on_sequential;
        struct tpool_task *one = &run->seq_task;
        atomic_store(&run->pending, 1);
        rc = tpool_submit(run->app->tpool, &one, 1);
    } else {
        struct tpool_task **tasks = malloc(n * sizeof(*tasks));
        if (!tasks) {
            fail_all(run, -ENOMEM, "out of memory");
            return;
        }
        for (size_t i = 0; i < n; i++) {
            run->tasks[i].ttask.run = on_thread_task;
            tasks[i] = &run->tasks[i].ttask;
        }
        atomic_store(&run->pending, n);
        rc = tpool_submit(run->app->tpool, tasks, n);
        free(tasks);
    }

    if (rc == -EAGAIN) {
        fail_all(run, -EAGAIN, "the job queue is full; retry shortly");
    } else if (rc == -E2BIG) {
        char why[POOL_ERROR_MAX];
        snprintf(why, sizeof(why),
                 "%zu tasks are more than the job queue holds (--queue %d); "
                 "ask for at most %d",
                 n, run->app->cfg->queue, run->app->cfg->queue);
        fail_all(run, -E2BIG, why);
    } else if (rc == -ESHUTDOWN) {
        fail_all(run, rc, "the service is shutting down");
    } else if (rc < 0) {
        fail_all(run, rc, strerror(-rc));
    }
}

void run_discard(struct run *run)
{
    for (size_t i = 0; i < run->n_tasks; i++)
        free(run->tasks[i].slices);
    json_decref(run->params);
    if (run->state)
        run->ops->free_state(run->state);
    free(run);
}

/* Nothing started: answer the suspended request with one error. */
static void fail_all(struct run *run, int status, const char *message)
{
    for (size_t i = 0; i < run->n_tasks; i++) {
        run->tasks[i].status = status;
        snprintf(run->tasks[i].error, sizeof(run->tasks[i].error), "%s",
                 message);
    }
    atomic_store(&run->pending, 1);
    unit_done(run);
}

static void unit_done(struct run *run)
{
    if (atomic_fetch_sub(&run->pending, 1) == 1)
        finish(run);
}

/* Pool thread: a worker answered (or died, or ran out of time). */
static void on_job_done(struct pool_job *job)
{
    struct run_task *t = job->owner;
    struct run *run = t->run;

    t->worker_kind = "process";
    t->worker_id = job->worker_pid;
    t->start_ns = job->start_ns;
    t->end_ns = job->end_ns;
    t->status = job->status;
    if (job->status == 0 &&
        run->ops->absorb(run, t, job->result, job->result_len) < 0) {
        t->status = -EPROTO;
        snprintf(t->error, sizeof(t->error),
                 "worker %d sent a malformed result", (int)job->worker_pid);
    } else if (job->status != 0) {
        snprintf(t->error, sizeof(t->error), "%s", job->error);
    }
    unit_done(run);
}

/* Pool thread: a queued job whose client left need not run. */
static bool job_abandoned(struct pool_job *job)
{
    struct run_task *t = job->owner;
    return http_client_gone(t->run->req);
}

/* Demo thread: one task of the threads or gil mode. */
static void on_thread_task(struct tpool_task *tt, int status)
{
    struct run_task *t =
        (struct run_task *)((char *)tt - offsetof(struct run_task, ttask));
    if (status < 0) {
        t->status = -ESHUTDOWN;
        snprintf(t->error, sizeof(t->error), "the service is shutting down");
    } else if (http_client_gone(t->run->req)) {
        t->status = -ECANCELED;
        snprintf(t->error, sizeof(t->error), "the client went away");
    } else {
        t->worker_kind = "thread";
        t->worker_id = tt->thread_id;
        run_in_process(t);
    }
    unit_done(t->run);
}

/* Demo thread: every task, one after another. */
static void on_sequential(struct tpool_task *tt, int status)
{
    struct run *run =
        (struct run *)((char *)tt - offsetof(struct run, seq_task));
    for (size_t i = 0; i < run->n_tasks; i++) {
        struct run_task *t = &run->tasks[i];
        if (status < 0) {
            t->status = -ESHUTDOWN;
            snprintf(t->error, sizeof(t->error),
                     "the service is shutting down");
            continue;
        }
        t->worker_kind = "main";
        t->worker_id = 0;
        if (i == 0 && http_client_gone(run->req)) {
            t->status = -ECANCELED;
            snprintf(t->error, sizeof(t->error), "the client went away");
            break;
        }
        if (run_in_process(t) < 0)
            break;
    }
    unit_done(run);
}

static int run_in_process(struct run_task *t)
{
    struct run *run = t->run;
    const struct config *cfg = run->app->cfg;
    int rc;

    t->start_ns = clock_now_ns();
    t->deadline_ns = t->start_ns + (uint64_t)cfg->job_timeout_ms * 1000000u;
    bool whole_run = run->deadline_ns < t->deadline_ns;
    if (whole_run)
        t->deadline_ns = run->deadline_ns;
    if (run->mode == RUN_GIL) {
        slice_open(t, gil_acquire(run->app->gil));
        rc = run->ops->compute(run, t, yield_gil, t);
        slice_close(t, gil_release(run->app->gil));
    } else {
        rc = run->ops->compute(run, t, yield_plain, t);
    }
    t->end_ns = clock_now_ns();
    if (rc == -ETIMEDOUT && whole_run)
        snprintf(t->error, sizeof(t->error),
                 "the run exceeded its %d ms deadline (--job-timeout-ms) and "
                 "was stopped at task %d",
                 cfg->job_timeout_ms, t->id);
    else if (rc == -ETIMEDOUT)
        snprintf(t->error, sizeof(t->error),
                 "task %d exceeded its %d ms deadline and was stopped", t->id,
                 cfg->job_timeout_ms);
    else if (rc == -ESHUTDOWN)
        snprintf(t->error, sizeof(t->error), "the service is shutting down");
    t->status = rc;
    return rc;
}

void run_task_done(struct run_task *task, int status)
{
    task->end_ns = clock_now_ns();
    task->status = status;
    unit_done(task->run);
}

void run_blocking_begin(struct run_task *t)
{
    if (t->run->mode == RUN_GIL)
        slice_close(t, gil_release(t->run->app->gil));
}

void run_blocking_end(struct run_task *t)
{
    if (t->run->mode == RUN_GIL)
        slice_open(t, gil_acquire(t->run->app->gil));
}

int run_check(struct run_task *task)
{
    return yield_plain(task);
}

static int yield_plain(void *arg)
{
    struct run_task *t = arg;
    if (tpool_stopping(t->run->app->tpool))
        return -ESHUTDOWN;
    if (clock_now_ns() > t->deadline_ns)
        return -ETIMEDOUT;
    return 0;
}

static int yield_gil(void *arg)
{
    struct run_task *t = arg;
    uint64_t released, acquired;
    int rc = yield_plain(arg);
    if (rc == 0 && gil_yield(t->run->app->gil, &released, &acquired)) {
        slice_close(t, released);
        slice_open(t, acquired);
    }
    return rc;
}

/*
 * The intervals a gil task held the lock. Past RUN_SLICES_MAX the rest are
 * not recorded (the task's start and end still bound them).
 */
static void slice_open(struct run_task *t, uint64_t at)
{
    if (!t->slices) {
        t->slices = malloc(RUN_SLICES_MAX * sizeof(t->slices[0]));
        if (!t->slices)
            return;
    }
    if (t->n_slices < RUN_SLICES_MAX) {
        t->slices[t->n_slices][0] = at;
        t->slices[t->n_slices][1] = 0;
        t->n_slices++;
        t->slice_open = true;
    }
}

static void slice_close(struct run_task *t, uint64_t at)
{
    if (t->slice_open) {
        t->slices[t->n_slices - 1][1] = at;
        t->slice_open = false;
    }
}

static double offset_ms(const struct run *run, uint64_t ns)
{
    if (ns == 0 || ns < run->origin_ns)
        return 0.0;
    return clock_ms_between(run->origin_ns, ns);
}

static int http_status_of(int status)
{
    switch (status) {
    case -ETIMEDOUT:
        return 504;
    case -EPIPE:
    case -EPROTO:
        return 502;
    case -EAGAIN:
    case -ESHUTDOWN:
        return 503;
    case -E2BIG:
        return 400; /* never fits, so retrying is no use */
    case -ECANCELED:
        return 499; /* nginx's "client closed request": nobody reads it */
    default:
        return 500;
    }
}

static void count_run(const struct run *run, bool failed)
{
    for (size_t d = 0; d < RUN_DEMOS; d++) {
        if (strcmp(run_demos[d]->name, run->demo) == 0)
            atomic_fetch_add_explicit(&runs_total[d][run->mode][failed], 1,
                                      memory_order_relaxed);
    }
}

void run_write_metrics(FILE *out)
{
    static const char *const outcomes[2] = {"ok", "error"};
    fputs("# HELP conlab_demo_runs_total Demo runs ended, by demo, mode and "
          "outcome.\n"
          "# TYPE conlab_demo_runs_total counter\n",
          out);
    for (size_t d = 0; d < RUN_DEMOS; d++) {
        const struct demo *demo = run_demos[d];
        for (size_t m = 0; m < demo->n_modes; m++) {
            for (size_t o = 0; o < 2; o++) {
                enum run_mode mode = demo->modes[m];
                fprintf(out,
                        "conlab_demo_runs_total{demo=\"%s\",mode=\"%s\","
                        "outcome=\"%s\"} %llu\n",
                        demo->name, run_mode_names[mode], outcomes[o],
                        (unsigned long long)atomic_load_explicit(
                            &runs_total[d][mode][o], memory_order_relaxed));
            }
        }
    }
}

/* The run's success body: the API's run shape (new reference). */
static json_t *run_body(struct run *run, uint64_t now)
{
    json_t *tasks = json_array();
    for (size_t i = 0; i < run->n_tasks; i++) {
        struct run_task *t = &run->tasks[i];
        json_t *obj = json_pack(
            "{s:i, s:{s:s, s:I}, s:f, s:f}", "id", t->id, "worker", "kind",
            t->worker_kind ? t->worker_kind : "main", "id",
            (json_int_t)t->worker_id, "start_ms", offset_ms(run, t->start_ns),
            "end_ms", offset_ms(run, t->end_ns));
        if (obj && t->n_slices) {
            json_t *slices = json_array();
            for (size_t s = 0; s < t->n_slices; s++)
                json_array_append_new(
                    slices, json_pack("[f,f]", offset_ms(run, t->slices[s][0]),
                                      offset_ms(run, t->slices[s][1])));
            json_object_set_new(obj, "slices", slices);
        }
        if (obj)
            run->ops->task_json(run, t, obj);
        json_array_append_new(tasks, obj);
    }
    return json_pack("{s:s, s:s, s:O, s:o, s:f, s:o}", "demo", run->demo,
                     "mode", run_mode_names[run->mode], "params", run->params,
                     "result", run->ops->result_json(run), "wall_ms",
                     offset_ms(run, now), "tasks", tasks);
}

static void finish(struct run *run)
{
    uint64_t now = clock_now_ns();

    /* The worst failure decides: deadline, dead worker, overload, client
     * gone, a run too big for the queue, other. Every status
     * http_status_of() gives must be in order[]. */
    const struct run_task *failed = NULL;
    static const int order[] = {504, 502, 503, 499, 400, 500};
    for (size_t k = 0; k < sizeof(order) / sizeof(order[0]) && !failed; k++) {
        for (size_t i = 0; i < run->n_tasks; i++) {
            const struct run_task *t = &run->tasks[i];
            if (t->status != 0 && http_status_of(t->status) == order[k]) {
                failed = t;
                break;
            }
        }
    }

    int status = failed ? http_status_of(failed->status) : 200;
    json_t *body = failed ? NULL : run_body(run, now);
    count_run(run, failed != NULL);
    char message[POOL_ERROR_MAX + 64] = "";
    if (failed)
        snprintf(message, sizeof(message), "%s: %s", run->demo, failed->error);
    else if (!body) {
        status = 500;
        snprintf(message, sizeof(message), "out of memory");
    }

    if (run->done) {
        run_done_fn *done = run->done;
        void *arg = run->done_arg;
        run_discard(run);
        done(status, message, body, arg);
        return;
    }
    struct response resp;
    response_init(&resp);
    if (body)
        response_json(&resp, 200, body);
    else
        response_error(&resp, status, "%s", message);
    response_header(&resp, "Cache-Control", "no-store");
    http_resume(run->req, &resp);
    run_discard(run);
}
