/*
 * Unit tests of the engine (server/engine.c) with fake back ends: the
 * test decides when each task starts and ends, so failure ordering,
 * cancellation, deadlines, chaining and shutdown are checked exactly.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../server/backends.h"
#include "../../server/engine.h"
#include "../../server/gil.h"
#include "../../server/loop.h"

#define LANES 2

/* A fake pool: slots hold claimed tasks until the test ends them. */
struct fake {
    struct engine_run *run;
    size_t held[LANES];
    bool busy[LANES];
    int start_rc;
    bool cancel_in_start;
    int cancels;
};

static struct fake fake;

static int fake_start(struct engine_run *run)
{
    fake.run = run;
    if (fake.cancel_in_start)
        engine_run_cancel(run, -ECANCELED);
    if (fake.start_rc < 0)
        return fake.start_rc;
    for (size_t i = 0; i < LANES; i++) {
        if (engine_run_next(run, &fake.held[i])) {
            fake.busy[i] = true;
            engine_task_begin(run, fake.held[i], ENGINE_LANE_THREAD, (int)i, 0);
        }
    }
    return 0;
}

/* Queued slots are dropped: here, every held task not yet ended. */
static void fake_cancel(struct engine_run *run)
{
    fake.cancels++;
    for (size_t i = 0; i < LANES; i++) {
        if (fake.busy[i]) {
            fake.busy[i] = false;
            engine_task_end(run, fake.held[i], engine_run_check(run), 0, NULL);
        }
    }
}

static const struct engine_backend fake_be = {
    .lane = ENGINE_LANE_THREAD,
    .start = fake_start,
    .cancel = fake_cancel,
};

/* The test ends slot i's task with status, and the slot takes the next. */
static void fake_end(struct engine_run *run, size_t i, int status,
                     const char *msg)
{
    assert_true(fake.busy[i]);
    fake.busy[i] = false;
    size_t task = fake.held[i];
    bool pinned = engine_run_pin(run);
    engine_task_end(run, task, status, 0, msg);
    if (engine_run_next(run, &fake.held[i])) {
        fake.busy[i] = true;
        engine_task_begin(run, fake.held[i], ENGINE_LANE_THREAD, (int)i, 0);
    }
    if (pinned)
        engine_run_unpin(run);
}

struct done_log {
    int calls;
    int status;
    char error[ENGINE_ERROR_MAX];
};

static void on_done(struct engine_run *run, int status, void *arg)
{
    struct done_log *log = arg;
    log->calls++;
    log->status = status;
    snprintf(log->error, sizeof(log->error), "%s", engine_run_error(run));
}

static int noop_compute(struct engine_ctx *ctx, void *state, size_t task)
{
    (void)ctx;
    (void)state;
    (void)task;
    return 0;
}

static const struct engine_work work = {.compute = noop_compute};

static struct engine *new_engine(int timeout_ms)
{
    struct engine_config cfg = {
        .workers = 2, .demo_threads = 4, .job_timeout_ms = timeout_ms};
    struct engine *e = engine_new(&cfg);
    assert_non_null(e);
    for (int m = 0; m < ENGINE_MODES; m++)
        engine_set_backend(e, (enum engine_mode)m, &fake_be);
    memset(&fake, 0, sizeof(fake));
    return e;
}

static struct engine_run *new_run(struct engine *e, size_t n,
                                  struct done_log *log)
{
    struct engine_run_spec spec = {.mode = ENGINE_THREADS,
                                   .n_tasks = n,
                                   .work = &work,
                                   .done = on_done,
                                   .done_arg = log};
    struct engine_run *run = engine_run_new(e, &spec);
    assert_non_null(run);
    return run;
}

/*
 * The notify hook (what a live stream wakes on): once per start and once
 * per end, each before the done callback, and engine_run_peek() shows
 * what the hook was told about.
 */
struct notify_log {
    struct engine_run *run;
    struct done_log *done;
    int calls;
    int after_done;
    size_t started, ended; /* as engine_run_peek() shows, at the last call */
};

static void on_notify(void *arg)
{
    struct notify_log *n = arg;
    n->calls++;
    if (n->done->calls)
        n->after_done++;
    n->started = n->ended = 0;
    for (size_t i = 0; i < engine_run_n_tasks(n->run); i++) {
        struct engine_task t;
        engine_run_peek(n->run, i, &t);
        n->started += t.start_ns != 0;
        n->ended += t.end_ns != 0;
        if (t.start_ns) {
            assert_int_equal(t.lane, ENGINE_LANE_THREAD);
            assert_true(t.worker == 0 || t.worker == 1);
        }
    }
}

static void notify_on_start_and_end(void **state)
{
    (void)state;
    struct engine *e = new_engine(1000);
    struct done_log log = {0};
    struct notify_log n = {.done = &log};
    struct engine_run_spec spec = {.mode = ENGINE_THREADS,
                                   .n_tasks = 3,
                                   .work = &work,
                                   .done = on_done,
                                   .done_arg = &log,
                                   .notify = on_notify,
                                   .notify_arg = &n};
    struct engine_run *run = engine_run_new(e, &spec);
    assert_non_null(run);
    n.run = run;
    engine_run_start(run);
    assert_int_equal(n.calls, 2); /* two lanes: two starts */
    assert_int_equal(n.started, 2);
    fake_end(run, 0, 0, NULL); /* an end, then the third start */
    assert_int_equal(n.calls, 4);
    assert_int_equal(n.started, 3);
    assert_int_equal(n.ended, 1);
    fake_end(run, 1, 0, NULL);
    fake_end(run, 0, -EPIPE, "worker died");
    assert_int_equal(n.calls, 6);
    assert_int_equal(n.ended, 3);
    assert_int_equal(n.after_done, 0);
    assert_int_equal(log.calls, 1);
    struct engine_task t;
    engine_run_peek(run, 2, &t);
    assert_int_equal(t.status, -EPIPE);
    engine_run_free(run);
    engine_free(e);
}

static void all_tasks_ok(void **state)
{
    (void)state;
    struct engine *e = new_engine(1000);
    struct done_log log = {0};
    struct engine_run *run = new_run(e, 5, &log);
    engine_run_start(run);
    struct engine_stats st;
    engine_stats(e, &st);
    assert_int_equal(st.runs, 1);
    assert_int_equal(st.tasks, 5);
    /* Slot 0 and 1 take turns: tasks 0..4 end in claim order. */
    fake_end(run, 0, 0, NULL); /* task 0; slot 0 takes 2 */
    fake_end(run, 1, 0, NULL); /* task 1; slot 1 takes 3 */
    fake_end(run, 0, 0, NULL); /* task 2; slot 0 takes 4 */
    fake_end(run, 1, 0, NULL); /* task 3 */
    assert_int_equal(log.calls, 0);
    fake_end(run, 0, 0, NULL); /* task 4: the last */
    assert_int_equal(log.calls, 1);
    assert_int_equal(log.status, 0);
    assert_string_equal(log.error, "");
    const struct engine_task *t = engine_run_tasks(run);
    assert_int_equal(t[4].worker, 0);
    assert_int_equal(t[3].worker, 1);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(t[i].status, 0);
        assert_true(t[i].start_ns >= engine_run_started_ns(run));
        assert_true(t[i].end_ns >= t[i].start_ns);
        assert_int_equal(t[i].lane, ENGINE_LANE_THREAD);
    }
    assert_true(engine_run_ended_ns(run) >= t[4].end_ns);
    engine_stats(e, &st);
    assert_int_equal(st.runs, 0);
    assert_int_equal(st.tasks, 0);
    assert_int_equal(st.started, 1);
    engine_run_free(run);
    engine_free(e);
}

/* The worst failure decides, with its own message. */
static void worst_failure_decides(void **state)
{
    (void)state;
    struct engine *e = new_engine(1000);
    struct done_log log = {0};
    struct engine_run *run = new_run(e, 4, &log);
    engine_run_start(run);
    fake_end(run, 0, -ECANCELED, NULL);
    fake_end(run, 1, -EPIPE, "worker 7 died");
    fake_end(run, 0, -ETIMEDOUT, "task 2 exceeded its deadline");
    fake_end(run, 1, -EPIPE, "worker 8 died");
    assert_int_equal(log.calls, 1);
    assert_int_equal(log.status, -ETIMEDOUT);
    assert_int_equal(engine_http_status(log.status), 504);
    assert_string_equal(log.error, "task 2 exceeded its deadline");
    engine_run_free(run);
    engine_free(e);
}

static void http_statuses(void **state)
{
    (void)state;
    assert_int_equal(engine_http_status(0), 200);
    assert_int_equal(engine_http_status(-ETIMEDOUT), 504);
    assert_int_equal(engine_http_status(-EPIPE), 502);
    assert_int_equal(engine_http_status(-EPROTO), 502);
    assert_int_equal(engine_http_status(-EAGAIN), 503);
    assert_int_equal(engine_http_status(-ESHUTDOWN), 503);
    assert_int_equal(engine_http_status(-ECANCELED), 499);
    assert_int_equal(engine_http_status(-E2BIG), 400);
    assert_int_equal(engine_http_status(-ENOMEM), 500);
}

/* A client leaves: the unclaimed and queued tasks end at once. */
static void cancel_ends_queued_at_once(void **state)
{
    (void)state;
    struct engine *e = new_engine(1000);
    struct done_log log = {0};
    struct engine_run *run = new_run(e, 10, &log);
    engine_run_start(run);
    fake_end(run, 0, 0, NULL); /* task 0 done; slot 0 holds task 2 */
    engine_run_cancel(run, -ECANCELED);
    assert_int_equal(fake.cancels, 1);
    assert_int_equal(log.calls, 1);
    assert_int_equal(log.status, -ECANCELED);
    assert_int_equal(engine_http_status(log.status), 499);
    assert_string_equal(log.error, "the client went away");
    const struct engine_task *t = engine_run_tasks(run);
    assert_int_equal(t[0].status, 0);
    for (size_t i = 1; i < 10; i++)
        assert_int_equal(t[i].status, -ECANCELED);
    /* Tasks 3..9 never started. */
    for (size_t i = 3; i < 10; i++)
        assert_int_equal(t[i].started, 0);
    /* A second cancel, or one after the end, does nothing. */
    engine_run_cancel(run, -ESHUTDOWN);
    assert_int_equal(fake.cancels, 1);
    assert_int_equal(log.calls, 1);
    engine_run_free(run);
    engine_free(e);
}

/* A running task that is not dropped still ends the run when it ends. */
static void cancel_waits_for_running(void **state)
{
    (void)state;
    struct engine *e = new_engine(1000);
    struct done_log log = {0};
    struct engine_run *run = new_run(e, 3, &log);
    engine_run_start(run);
    /* Pretend slot 1's task is running: the fake cannot drop it. */
    bool was = fake.busy[1];
    fake.busy[1] = false;
    engine_run_cancel(run, -ECANCELED);
    assert_int_equal(log.calls, 0); /* task 1 still runs */
    assert_int_equal(engine_run_check(run), -ECANCELED);
    size_t next;
    assert_false(engine_run_next(run, &next)); /* nothing new starts */
    fake.busy[1] = was;
    fake_end(run, 1, engine_run_check(run), NULL);
    assert_int_equal(log.calls, 1);
    assert_int_equal(log.status, -ECANCELED);
    engine_run_free(run);
    engine_free(e);
}

/* A cancel that comes while the back end is still starting. */
static void cancel_during_start(void **state)
{
    (void)state;
    struct engine *e = new_engine(1000);
    struct done_log log = {0};
    struct engine_run *run = new_run(e, 6, &log);
    fake.cancel_in_start = true;
    engine_run_start(run);
    assert_int_equal(log.calls, 1);
    assert_int_equal(log.status, -ECANCELED);
    assert_int_equal(fake.cancels, 1);
    engine_run_free(run);
    engine_free(e);
}

static void start_failure_fails_the_run(void **state)
{
    (void)state;
    struct engine *e = new_engine(1000);
    struct done_log log = {0};
    struct engine_run *run = new_run(e, 3, &log);
    fake.start_rc = -EAGAIN;
    engine_run_start(run);
    assert_int_equal(log.calls, 1);
    assert_int_equal(log.status, -EAGAIN);
    assert_int_equal(engine_http_status(log.status), 503);
    assert_string_equal(log.error, "the job queue is full; retry shortly");
    engine_run_free(run);
    engine_free(e);
}

/* In-process work stops at its deadline, with the run's message. */
static int spin_compute(struct engine_ctx *ctx, void *state, size_t task)
{
    (void)state;
    (void)task;
    int rc;
    while ((rc = engine_yield(ctx)) == 0)
        ;
    return rc;
}

static const struct engine_work spin_work = {.compute = spin_compute};

static void deadline_stops_compute(void **state)
{
    (void)state;
    struct engine *e = new_engine(20);
    struct done_log log = {0};
    struct engine_run_spec spec = {.mode = ENGINE_SEQUENTIAL,
                                   .n_tasks = 2,
                                   .work = &spin_work,
                                   .done = on_done,
                                   .done_arg = &log};
    struct engine_run *run = engine_run_new(e, &spec);
    /* No back end: run the claimed task on this thread, as sequential. */
    fake.start_rc = 0;
    engine_set_backend(e, ENGINE_SEQUENTIAL, &fake_be);
    engine_run_start(run);
    /* The fake claimed tasks 0 and 1; compute task 0 here. */
    fake.busy[0] = fake.busy[1] = false;
    bool pinned = engine_run_pin(run);
    assert_true(pinned);
    int rc = engine_run_compute(run, 0, ENGINE_LANE_MAIN, 0);
    assert_int_equal(rc, -ETIMEDOUT);
    engine_task_end(run, 1, -ETIMEDOUT, 0, NULL);
    engine_run_unpin(run);
    assert_int_equal(log.calls, 1);
    assert_int_equal(log.status, -ETIMEDOUT);
    assert_string_equal(log.error,
                        "the run exceeded its 20 ms deadline "
                        "(--job-timeout-ms) and was stopped at task 0");
    engine_run_free(run);
    engine_free(e);
}

/* Shutdown in the middle: live runs end with 503, new ones at once. */
static void stop_cancels_live_runs(void **state)
{
    (void)state;
    struct engine *e = new_engine(1000);
    struct done_log a = {0}, b = {0};
    struct engine_run *ra = new_run(e, 4, &a);
    engine_run_start(ra);
    assert_false(engine_wait_idle(e, 1));
    engine_stop(e);
    assert_true(engine_stopping(e));
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, -ESHUTDOWN);
    assert_string_equal(a.error, "the service is shutting down");
    struct engine_run *rb = new_run(e, 2, &b);
    engine_run_start(rb);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, -ESHUTDOWN);
    assert_true(engine_wait_idle(e, 1000));
    engine_run_free(ra);
    engine_run_free(rb);
    engine_free(e);
}

/* What /run/compare does: a run's callback starts the next run. */
struct chain {
    struct engine *e;
    struct engine_run *runs[3];
    int next;
    int order[3];
    struct done_log logs[3];
};

static struct chain chain;

static void chain_done(struct engine_run *run, int status, void *arg)
{
    int i = (int)(intptr_t)arg;
    (void)run;
    chain.order[i] = chain.next;
    chain.logs[i].calls++;
    chain.logs[i].status = status;
    chain.next++;
    if (chain.next < 3)
        engine_run_start(chain.runs[chain.next]);
}

static int inline_start(struct engine_run *run)
{
    size_t task;
    while (engine_run_next(run, &task)) {
        engine_task_begin(run, task, ENGINE_LANE_MAIN, 0, 0);
        engine_task_end(run, task, 0, 0, NULL);
    }
    return 0;
}

static const struct engine_backend inline_be = {.lane = ENGINE_LANE_MAIN,
                                                .start = inline_start};

static void compare_chaining(void **state)
{
    (void)state;
    memset(&chain, 0, sizeof(chain));
    chain.e = new_engine(1000);
    engine_set_backend(chain.e, ENGINE_SEQUENTIAL, &inline_be);
    for (int i = 0; i < 3; i++) {
        struct engine_run_spec spec = {.mode = ENGINE_SEQUENTIAL,
                                       .n_tasks = (size_t)i + 1,
                                       .work = &work,
                                       .done = chain_done,
                                       .done_arg = (void *)(intptr_t)i};
        chain.runs[i] = engine_run_new(chain.e, &spec);
    }
    engine_run_start(chain.runs[0]);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(chain.order[i], i);
        assert_int_equal(chain.logs[i].calls, 1);
        assert_int_equal(chain.logs[i].status, 0);
        assert_int_equal(engine_run_n_tasks(chain.runs[i]), (size_t)i + 1);
    }
    assert_true(engine_wait_idle(chain.e, 1000));
    struct engine_stats st;
    engine_stats(chain.e, &st);
    assert_int_equal(st.started, 3);
    for (int i = 0; i < 3; i++)
        engine_run_free(chain.runs[i]);
    engine_free(chain.e);
}

/* Threads end tasks while another cancels: one callback, every time. */
struct racer {
    struct engine_run *run;
    size_t from, to;
};

static int threaded_start(struct engine_run *run)
{
    (void)run;
    return 0; /* the racer threads claim and end the tasks */
}

static void threaded_cancel(struct engine_run *run)
{
    (void)run;
}

static const struct engine_backend threaded_be = {.lane = ENGINE_LANE_THREAD,
                                                  .start = threaded_start,
                                                  .cancel = threaded_cancel};

static void *racer_main(void *arg)
{
    struct racer *r = arg;
    size_t task;
    while (engine_run_pin(r->run)) {
        bool got = engine_run_next(r->run, &task);
        if (got) {
            engine_task_begin(r->run, task, ENGINE_LANE_THREAD, 0, 0);
            engine_task_end(r->run, task, 0, 0, NULL);
        }
        engine_run_unpin(r->run);
        if (!got)
            break;
    }
    return NULL;
}

static _Atomic int race_calls;

static void race_done(struct engine_run *run, int status, void *arg)
{
    (void)run;
    (void)status;
    (void)arg;
    atomic_fetch_add(&race_calls, 1);
}

static void cancel_races_completions(void **state)
{
    (void)state;
    struct engine *e = new_engine(1000);
    engine_set_backend(e, ENGINE_THREADS, &threaded_be);
    for (int round = 0; round < 200; round++) {
        atomic_store(&race_calls, 0);
        struct engine_run_spec spec = {.mode = ENGINE_THREADS,
                                       .n_tasks = 64,
                                       .work = &work,
                                       .done = race_done};
        struct engine_run *run = engine_run_new(e, &spec);
        engine_run_start(run);
        pthread_t th[3];
        struct racer r = {.run = run};
        for (int i = 0; i < 3; i++)
            pthread_create(&th[i], NULL, racer_main, &r);
        if (round % 2)
            engine_run_cancel(run, -ECANCELED);
        for (int i = 0; i < 3; i++)
            pthread_join(th[i], NULL);
        assert_true(engine_wait_idle(e, 5000));
        assert_int_equal(atomic_load(&race_calls), 1);
        engine_run_free(run);
    }
    engine_free(e);
}

/*
 * The async back end (server/backends.c) with a fake work: start_async()
 * is counted, and on request ends every task as the loop would, so that
 * a task ended twice shows in the run's figures.
 */
struct async_probe {
    struct engine_run *run;
    int start_calls, cancel_calls;
    bool end_in_start;  /* start_async() ends every task at once */
    size_t cancel_at;   /* cancel when this many tasks have begun (0: never) */
    size_t begun, ends; /* start and end times seen by the notify hook */
};

static struct async_probe probe;

static int probe_start_async(struct engine_run *run, void *state)
{
    (void)state;
    probe.start_calls++;
    if (probe.end_in_start)
        for (size_t i = 0; i < engine_run_n_tasks(run); i++)
            engine_task_end(run, i, 0, 0, NULL);
    return 0;
}

static void probe_cancel_async(struct engine_run *run, void *state)
{
    (void)run;
    (void)state;
    probe.cancel_calls++;
}

static const struct engine_work async_work = {
    .start_async = probe_start_async, .cancel_async = probe_cancel_async};

/*
 * Counts starts and ends as engine_run_peek() shows them. At cancel_at,
 * it cancels the run as another thread would (a SIGTERM, a client that
 * left) while the back end is still claiming: the hook's contract says
 * not to touch the run, and this breaks it on purpose, to land the
 * cancel at that exact moment.
 */
static void probe_notify(void *arg)
{
    (void)arg;
    size_t begun = 0, ended = 0;
    for (size_t i = 0; i < engine_run_n_tasks(probe.run); i++) {
        struct engine_task t;
        engine_run_peek(probe.run, i, &t);
        begun += t.start_ns != 0;
        ended += t.end_ns != 0;
    }
    if (begun > probe.begun && begun == probe.cancel_at)
        engine_run_cancel(probe.run, -ECANCELED);
    probe.begun = begun;
    if (ended > probe.ends)
        probe.ends = ended;
}

/* An engine whose async mode is the real back end, on a real loop. */
static struct engine *async_engine(struct loop **loop)
{
    char err[256];
    *loop = loop_start(err, sizeof(err));
    assert_non_null(*loop);
    struct engine_config cfg = {
        .workers = 2, .demo_threads = 4, .job_timeout_ms = 1000, .loop = *loop};
    struct engine *e = engine_new(&cfg);
    assert_non_null(e);
    engine_set_backend(e, ENGINE_ASYNC, backends_for(ENGINE_ASYNC));
    memset(&probe, 0, sizeof(probe));
    return e;
}

static struct engine_run *async_run(struct engine *e, size_t n,
                                    struct done_log *log)
{
    struct engine_run_spec spec = {.mode = ENGINE_ASYNC,
                                   .n_tasks = n,
                                   .work = &async_work,
                                   .done = on_done,
                                   .done_arg = log,
                                   .notify = probe_notify};
    struct engine_run *run = engine_run_new(e, &spec);
    assert_non_null(run);
    probe.run = run;
    return run;
}

/*
 * The end of an async test: the engine idle, the loop stopped (running
 * any call still posted to it), and no cancel_async() ever asked for;
 * then everything freed.
 */
static void async_finish(struct engine *e, struct loop *loop,
                         struct engine_run *run)
{
    assert_true(engine_wait_idle(e, 1000));
    loop_stop(loop);
    assert_int_equal(probe.cancel_calls, 0);
    engine_run_free(run);
    engine_free(e);
    loop_free(loop);
}

/* Every task claimed: the work starts them all, once. */
static void async_starts_all_once(void **state)
{
    (void)state;
    struct loop *loop;
    struct engine *e = async_engine(&loop);
    struct done_log log = {0};
    probe.end_in_start = true;
    struct engine_run *run = async_run(e, 5, &log);
    engine_run_start(run);
    assert_int_equal(probe.start_calls, 1);
    assert_int_equal(probe.begun, 5);
    assert_int_equal(probe.ends, 5);
    assert_int_equal(log.calls, 1);
    assert_int_equal(log.status, 0);
    async_finish(e, loop, run);
}

/*
 * A cancel while the async back end claims its tasks (here after the
 * first of five): nothing starts, the claimed task ends with the cancel's
 * status and the engine ends the rest, each task once. Before 72cf941,
 * start_async() ran anyway and started all five, so the four the engine
 * had ended ended again later, on the loop, after the run was freed.
 */
static void async_cancel_while_claiming(void **state)
{
    (void)state;
    struct loop *loop;
    struct engine *e = async_engine(&loop);
    struct done_log log = {0};
    probe.cancel_at = 1;
    struct engine_run *run = async_run(e, 5, &log);
    engine_run_start(run);
    assert_int_equal(probe.start_calls, 0);
    assert_int_equal(probe.begun, 1);
    /* Task 0 ended through engine_task_end(); the engine ends the four
     * it never handed out by their status alone (engine_run_end_rest). */
    assert_int_equal(probe.ends, 1);
    assert_int_equal(log.calls, 1);
    assert_int_equal(log.status, -ECANCELED);
    const struct engine_task *t = engine_run_tasks(run);
    assert_int_equal(t[0].started, 1);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(t[i].status, -ECANCELED);
    for (size_t i = 1; i < 5; i++)
        assert_int_equal(t[i].started, 0);
    async_finish(e, loop, run);
}

static void lanes_per_mode(void **state)
{
    (void)state;
    struct engine *e = new_engine(1000);
    assert_int_equal(engine_lanes(e, ENGINE_SEQUENTIAL, 100), 1);
    assert_int_equal(engine_lanes(e, ENGINE_THREADS, 100), 4);
    assert_int_equal(engine_lanes(e, ENGINE_GIL, 100), 4);
    assert_int_equal(engine_lanes(e, ENGINE_PROCESSES, 100), 2);
    assert_int_equal(engine_lanes(e, ENGINE_ASYNC, 100), 100);
    assert_int_equal(engine_lanes(e, ENGINE_SPAWN, 100), 2); /* workers */
    assert_string_equal(engine_mode_names[ENGINE_GIL], "gil");
    assert_string_equal(engine_mode_names[ENGINE_SPAWN], "spawn");
    assert_string_equal(engine_lane_names[ENGINE_LANE_PROCESS], "process");
    assert_string_equal(engine_lane_names[ENGINE_LANE_SPAWN], "spawn");
    engine_free(e);
}

/* CPU time and spawn readiness are kept in 32-bit microseconds. */
static void task_cpu_and_ready(void **state)
{
    (void)state;
    struct engine *e = new_engine(1000);
    struct done_log log = {0};
    struct engine_run *run = new_run(e, 2, &log);
    engine_run_start(run);
    const struct engine_task *t = engine_run_tasks(run);
    engine_task_add_cpu(run, 0, 1499);    /* rounds to 1 us */
    engine_task_add_cpu(run, 0, 2000000); /* slices add up */
    assert_int_equal(t[0].cpu_us, 2001);
    engine_task_add_cpu(run, 1, UINT64_MAX / 2); /* saturates */
    assert_int_equal(t[1].cpu_us, UINT32_MAX);
    engine_task_ready(run, 0, t[0].start_ns + 7500000);
    assert_int_equal(t[0].ready_us, 7500);
    engine_task_ready(run, 1, t[1].start_ns); /* ready at once: not 0 */
    assert_int_equal(t[1].ready_us, 1);
    fake_end(run, 0, 0, NULL);
    fake_end(run, 1, 0, NULL);
    assert_int_equal(log.calls, 1);
    assert_int_equal(sizeof(struct engine_task), 32);
    engine_run_free(run);
    engine_free(e);
}

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Burns ms of this thread's CPU (CPU time, not wall time). */
static void burn_cpu_ms(unsigned ms)
{
    uint64_t until = thread_cpu_ns() + ms * 1000000ull;
    while (thread_cpu_ns() < until)
        ;
}

static _Atomic int cpus_seen;

/* Notes the CPUs it may run on, then computes 2 ms. */
static int pinned_compute(struct engine_ctx *ctx, void *st, size_t task)
{
    cpu_set_t set;
    (void)ctx;
    (void)st;
    (void)task;
    assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
    atomic_store(&cpus_seen, CPU_COUNT(&set));
    burn_cpu_ms(2);
    return 0;
}

static const struct engine_work pinned_work = {.compute = pinned_compute};

/* gil: 3 ms of CPU with the lock given up, then 1 ms holding it. */
static int gil_compute(struct engine_ctx *ctx, void *st, size_t task)
{
    (void)st;
    (void)task;
    engine_blocking_begin(ctx);
    burn_cpu_ms(3);
    engine_blocking_end(ctx);
    burn_cpu_ms(1);
    return engine_yield(ctx);
}

static const struct engine_work gil_work = {.compute = gil_compute};

/* Runs task 0 of a one-task run on this thread; returns its record. */
static struct engine_task compute_one(struct engine *e,
                                      const struct engine_run_spec *spec_in)
{
    struct done_log log = {0};
    struct engine_run_spec spec = *spec_in;
    spec.n_tasks = 1;
    spec.done = on_done;
    spec.done_arg = &log;
    struct engine_run *run = engine_run_new(e, &spec);
    assert_non_null(run);
    engine_run_start(run);
    fake.busy[0] = false;
    assert_true(engine_run_pin(run));
    assert_int_equal(engine_run_compute(run, 0, ENGINE_LANE_THREAD, 0), 0);
    engine_run_unpin(run);
    assert_int_equal(log.calls, 1);
    assert_int_equal(log.status, 0);
    struct engine_task t = engine_run_tasks(run)[0];
    engine_run_free(run);
    return t;
}

/* The thread's CPU is the task's; cores=1 pins it for the task only. */
static void compute_cpu_and_cores(void **state)
{
    (void)state;
    struct engine *e = new_engine(10000);
    cpu_set_t before, after;
    assert_int_equal(sched_getaffinity(0, sizeof(before), &before), 0);

    struct engine_run_spec spec = {
        .mode = ENGINE_THREADS, .work = &pinned_work, .cores = 1};
    struct engine_task t = compute_one(e, &spec);
    assert_int_equal(atomic_load(&cpus_seen), 1);
    assert_true(t.cpu_us >= 2000);
    assert_int_equal(sched_getaffinity(0, sizeof(after), &after), 0);
    assert_true(CPU_EQUAL(&before, &after)); /* restored */

    spec.cores = 0; /* not pinned */
    t = compute_one(e, &spec);
    assert_int_equal(atomic_load(&cpus_seen), CPU_COUNT(&before));
    assert_true(t.cpu_us >= 2000);
    engine_free(e);
}

/* gil: only the CPU spent holding the lock counts. */
static void gil_cpu_only_while_held(void **state)
{
    (void)state;
    struct gil *gil = gil_new(GIL_SWITCH_INTERVAL_NS);
    assert_non_null(gil);
    struct engine_config cfg = {
        .workers = 2, .demo_threads = 4, .job_timeout_ms = 10000, .gil = gil};
    struct engine *e = engine_new(&cfg);
    assert_non_null(e);
    engine_set_backend(e, ENGINE_GIL, &fake_be);
    memset(&fake, 0, sizeof(fake));
    struct engine_run_spec spec = {.mode = ENGINE_GIL, .work = &gil_work};
    struct engine_task t = compute_one(e, &spec);
    /* 1 ms held (plus microseconds of bookkeeping), not the 3 ms burnt
     * with the lock given up. */
    assert_true(t.cpu_us >= 1000);
    assert_true(t.cpu_us < 2500);
    engine_free(e);
    gil_free(gil);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(all_tasks_ok),
        cmocka_unit_test(notify_on_start_and_end),
        cmocka_unit_test(worst_failure_decides),
        cmocka_unit_test(http_statuses),
        cmocka_unit_test(cancel_ends_queued_at_once),
        cmocka_unit_test(cancel_waits_for_running),
        cmocka_unit_test(cancel_during_start),
        cmocka_unit_test(start_failure_fails_the_run),
        cmocka_unit_test(deadline_stops_compute),
        cmocka_unit_test(stop_cancels_live_runs),
        cmocka_unit_test(compare_chaining),
        cmocka_unit_test(cancel_races_completions),
        cmocka_unit_test(async_starts_all_once),
        cmocka_unit_test(async_cancel_while_claiming),
        cmocka_unit_test(lanes_per_mode),
        cmocka_unit_test(task_cpu_and_ready),
        cmocka_unit_test(compute_cpu_and_cores),
        cmocka_unit_test(gil_cpu_only_while_held),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
