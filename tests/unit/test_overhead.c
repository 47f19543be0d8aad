/*
 * Unit tests of server/overhead.c: every mode measures the units asked
 * for and gives each back (threads joined, processes reaped, pool jobs and
 * loop calls ended), a cancel before or during the run, refused specs,
 * the cap on live measurements, the stop, the pool's hold job and the
 * /proc reader. Processes are the service binary (CONLAB_BIN, set by the
 * Makefile) in worker mode. No timing is asserted: only counts, orders
 * and what is left running.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../server/clock.h"
#include "../../server/job.h"
#include "../../server/loop.h"
#include "../../server/overhead.h"
#include "../../server/pool.h"

#define WAIT_MS 30000 /* generous: sanitizer builds start slowly */

/* A latch the done callback opens. */
struct latch {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int status;
    int calls;
};

static void latch_init(struct latch *l)
{
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->cond, NULL);
    l->done = false;
    l->calls = 0;
}

static void on_done(struct overhead *o, int status, void *arg)
{
    struct latch *l = arg;
    (void)o;
    pthread_mutex_lock(&l->lock);
    l->done = true;
    l->status = status;
    l->calls++;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
}

static int latch_wait(struct latch *l)
{
    uint64_t until = clock_now_ns() + WAIT_MS * 1000000ull;
    pthread_mutex_lock(&l->lock);
    while (!l->done) {
        pthread_mutex_unlock(&l->lock);
        assert_true(clock_now_ns() < until);
        usleep(1000);
        pthread_mutex_lock(&l->lock);
    }
    int status = l->status;
    pthread_mutex_unlock(&l->lock);
    /* The measurement's thread is gone too before the test looks. */
    assert_true(overhead_wait_idle(WAIT_MS));
    return status;
}

static int count_tasks(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    struct dirent *e;
    assert_non_null(d);
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/*
 * Waits (at most WAIT_MS) until this process has n threads: a detached
 * measurement thread has returned once overhead_wait_idle() says so, but
 * the kernel removes it a moment later (longer under TSan). Returns the
 * count.
 */
static int tasks_settle(int n)
{
    uint64_t until = clock_now_ns() + WAIT_MS * 1000000ull;
    int now;
    while ((now = count_tasks()) != n && clock_now_ns() < until)
        usleep(1000);
    return now;
}

/* True when this process has no child left, not even a zombie. */
static bool no_children(void)
{
    return waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD;
}

static struct overhead *measure(enum overhead_mode mode, size_t units,
                                struct pool *pool, int workers,
                                struct loop *loop, struct latch *l)
{
    struct overhead_spec spec = {.mode = mode,
                                 .units = units,
                                 .pool = pool,
                                 .workers = workers,
                                 .loop = loop,
                                 .exe = getenv("CONLAB_BIN"),
                                 .done = on_done,
                                 .done_arg = l};
    assert_non_null(spec.exe);
    latch_init(l);
    struct overhead *o = overhead_new(&spec);
    assert_non_null(o);
    return o;
}

static void check_figures(const struct overhead *o, size_t n)
{
    struct overhead_figures f;
    overhead_figures(o, &f);
    assert_int_equal(f.n, n);
    assert_true(f.start_us_min <= f.start_us_median);
    assert_true(f.start_us_median <= f.start_us_p99);
    assert_true(f.bytes_min > 0);
    assert_true(f.bytes_min <= f.bytes_median);
    assert_true(strlen(f.start_method) > 20);
    assert_true(strlen(f.memory_method) > 20);
}

static void test_threads(void **state)
{
    (void)state;
    struct latch l;
    int before = count_tasks();
    struct overhead *o = measure(OVERHEAD_THREADS, 16, NULL, 0, NULL, &l);
    assert_int_equal(overhead_run(o), 0);
    assert_int_equal(latch_wait(&l), 0);
    assert_int_equal(l.calls, 1);
    assert_int_equal(overhead_n_units(o), 16);
    const struct overhead_unit *u = overhead_units(o);
    long page = sysconf(_SC_PAGESIZE);
    for (size_t i = 0; i < 16; i++) {
        assert_int_equal(u[i].id, (int32_t)i);
        assert_true(u[i].bytes >= (uint64_t)page);
        assert_int_equal(u[i].bytes % (uint64_t)page, 0);
        assert_true(u[i].rss > u[i].bytes); /* reserved > committed */
    }
    check_figures(o, 16);
    assert_string_equal(overhead_error(o), "");
    overhead_free(o);
    assert_int_equal(tasks_settle(before), before); /* every thread joined */
}

static void test_async(void **state)
{
    (void)state;
    char err[128];
    struct loop *loop = loop_start(err, sizeof(err));
    assert_non_null(loop);
    struct latch l;
    struct overhead *o = measure(OVERHEAD_ASYNC, 1000, NULL, 0, loop, &l);
    assert_int_equal(overhead_run(o), 0);
    assert_int_equal(latch_wait(&l), 0);
    assert_int_equal(overhead_n_units(o), 1000);
    const struct overhead_unit *u = overhead_units(o);
    for (size_t i = 0; i < 1000; i++)
        assert_int_equal(u[i].bytes, u[0].bytes);
    assert_true(u[0].bytes > 0 && u[0].bytes < 256);
    check_figures(o, 1000);
    overhead_free(o);
    struct loop_stats st;
    loop_stop(loop);
    loop_stats(loop, &st);
    assert_int_equal(st.timers, 0);
    loop_free(loop);
}

static void test_async_loop_stopped(void **state)
{
    (void)state;
    char err[128];
    struct loop *loop = loop_start(err, sizeof(err));
    assert_non_null(loop);
    loop_stop(loop);
    struct latch l;
    struct overhead *o = measure(OVERHEAD_ASYNC, 10, NULL, 0, loop, &l);
    assert_int_equal(overhead_run(o), 0);
    assert_int_equal(latch_wait(&l), -ESHUTDOWN);
    assert_int_equal(overhead_n_units(o), 0);
    overhead_free(o);
    loop_free(loop);
}

static void test_pool(void **state)
{
    (void)state;
    struct pool_config cfg = {.workers = 2,
                              .queue = 16,
                              .job_timeout_ms = WAIT_MS,
                              .exe = getenv("CONLAB_BIN")};
    char err[128];
    assert_non_null(cfg.exe);
    struct pool *pool = pool_start(&cfg, err, sizeof(err));
    assert_non_null(pool);
    struct latch l;
    struct overhead *o = measure(OVERHEAD_PROCESSES, 5, pool, 2, NULL, &l);
    assert_int_equal(overhead_run(o), 0);
    assert_int_equal(latch_wait(&l), 0);
    assert_int_equal(overhead_n_units(o), 5);
    /* Counted before the last job's done(): no worker is busy now. */
    struct pool_stats st;
    pool_stats(pool, &st);
    const struct overhead_unit *u = overhead_units(o);
    for (size_t i = 0; i < 5; i++) {
        bool a_worker = false;
        for (int k = 0; k < st.configured; k++)
            a_worker = a_worker || st.pids[k] == u[i].id;
        assert_true(a_worker);
        assert_true(u[i].bytes > 0 && u[i].rss >= u[i].bytes);
    }
    assert_int_equal(st.jobs.ok, 5);
    assert_int_equal(st.busy, 0);
    check_figures(o, 5);
    overhead_free(o);
    pool_stop(pool);
    pool_free(pool);
    assert_true(no_children());
}

static void test_spawn(void **state)
{
    (void)state;
    struct latch l;
    struct overhead *o = measure(OVERHEAD_SPAWN, 3, NULL, 0, NULL, &l);
    assert_int_equal(overhead_run(o), 0);
    assert_int_equal(latch_wait(&l), 0);
    assert_int_equal(overhead_n_units(o), 3);
    const struct overhead_unit *u = overhead_units(o);
    for (size_t i = 0; i < 3; i++) {
        assert_true(u[i].id > 1 && u[i].id != getpid());
        for (size_t k = 0; k < i; k++)
            assert_true(u[k].id != u[i].id);
        assert_true(u[i].bytes > 0 && u[i].rss >= u[i].bytes);
    }
    check_figures(o, 3);
    overhead_free(o);
    assert_true(no_children()); /* every process reaped */
}

static void test_cancel_before_run(void **state)
{
    (void)state;
    struct latch l;
    int before = count_tasks();
    struct overhead *o = measure(OVERHEAD_THREADS, 256, NULL, 0, NULL, &l);
    overhead_cancel(o, -ECANCELED);
    assert_int_equal(overhead_run(o), 0);
    assert_int_equal(latch_wait(&l), -ECANCELED);
    assert_int_equal(overhead_n_units(o), 0);
    assert_string_equal(overhead_error(o), "the client went away");
    overhead_cancel(o, -ESHUTDOWN); /* reported: nothing happens */
    overhead_free(o);
    assert_int_equal(tasks_settle(before), before);
}

static void test_cancel_spawn_midway(void **state)
{
    (void)state;
    struct latch l;
    struct overhead *o = measure(OVERHEAD_SPAWN, 64, NULL, 0, NULL, &l);
    assert_int_equal(overhead_run(o), 0);
    /* Wait for the first child, then cancel with the rest to come. */
    uint64_t until = clock_now_ns() + WAIT_MS * 1000000ull;
    while (no_children())
        assert_true(clock_now_ns() < until);
    overhead_cancel(o, -ECANCELED);
    assert_int_equal(latch_wait(&l), -ECANCELED);
    assert_int_equal(overhead_n_units(o), 0);
    overhead_free(o);
    assert_true(no_children());
}

static void test_refused_specs(void **state)
{
    (void)state;
    struct overhead_spec spec = {.mode = OVERHEAD_THREADS, .units = 0};
    assert_null(overhead_new(&spec));
    spec.units = OVERHEAD_THREADS_MAX + 1;
    assert_null(overhead_new(&spec));
    spec.mode = OVERHEAD_SPAWN;
    spec.units = OVERHEAD_SPAWN_MAX + 1;
    assert_null(overhead_new(&spec));
    spec.mode = OVERHEAD_MODES;
    spec.units = 1;
    assert_null(overhead_new(&spec));
    assert_int_equal(overhead_units_max(OVERHEAD_PROCESSES, 2),
                     OVERHEAD_POOL_MAX);
    assert_int_equal(overhead_units_max(OVERHEAD_ASYNC, 2), OVERHEAD_ASYNC_MAX);
    assert_true(overhead_cost_bytes(OVERHEAD_THREADS, 10) >
                overhead_cost_bytes(OVERHEAD_THREADS, 1));
}

static void test_live_max(void **state)
{
    (void)state;
    struct latch l[3];
    struct overhead *o[3];
    for (int i = 0; i < 3; i++)
        o[i] = measure(OVERHEAD_SPAWN, 64, NULL, 0, NULL, &l[i]);
    assert_int_equal(overhead_run(o[0]), 0);
    assert_int_equal(overhead_run(o[1]), 0);
    /* 64 processes each, one at a time: both are still running. */
    assert_int_equal(overhead_run(o[2]), -EAGAIN);
    overhead_cancel(o[0], -ECANCELED);
    overhead_cancel(o[1], -ECANCELED);
    assert_int_equal(latch_wait(&l[0]), -ECANCELED);
    assert_int_equal(latch_wait(&l[1]), -ECANCELED);
    assert_int_equal(l[2].calls, 0); /* refused: no callback */
    for (int i = 0; i < 3; i++)
        overhead_free(o[i]);
    assert_true(no_children());
}

static void test_worker_hold(void **state)
{
    (void)state;
    struct job_hold hold = {.release_ns = clock_now_ns()};
    uint32_t out_len = 99;
    uint8_t out[8];
    assert_int_equal(overhead_worker_hold(&hold, sizeof(hold) - 1, out,
                                          sizeof(out), &out_len),
                     -EINVAL);
    assert_int_equal(out_len, 99);
    assert_int_equal(
        overhead_worker_hold(&hold, sizeof(hold), out, sizeof(out), &out_len),
        0);
    assert_int_equal(out_len, 0);
}

static void test_proc_memory(void **state)
{
    (void)state;
    uint64_t pss = 0, rss = 0;
    assert_int_equal(overhead_proc_memory(getpid(), &pss, &rss), 0);
    assert_true(pss > 0 && rss >= pss);
    assert_int_equal(overhead_proc_memory(0x7ffffff0, &pss, &rss), -ENOENT);
}

/* Last: the stop is for good. */
static void test_stop_all(void **state)
{
    (void)state;
    struct latch l;
    struct overhead *o = measure(OVERHEAD_THREADS, 4, NULL, 0, NULL, &l);
    overhead_stop_all();
    assert_int_equal(overhead_run(o), -ESHUTDOWN);
    assert_int_equal(l.calls, 0);
    assert_true(overhead_wait_idle(0));
    overhead_free(o);
}

static void *noop(void *arg)
{
    return arg;
}

int main(void)
{
    /* A first thread, so that a sanitizer's helper thread (TSan starts
     * one with the first pthread_create) is there before any count. */
    pthread_t t;
    if (pthread_create(&t, NULL, noop, NULL) == 0)
        pthread_join(t, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_async),
        cmocka_unit_test(test_async_loop_stopped),
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_spawn),
        cmocka_unit_test(test_cancel_before_run),
        cmocka_unit_test(test_cancel_spawn_midway),
        cmocka_unit_test(test_refused_specs),
        cmocka_unit_test(test_live_max),
        cmocka_unit_test(test_worker_hold),
        cmocka_unit_test(test_proc_memory),
        cmocka_unit_test(test_stop_all),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests_name("overhead", tests, NULL, NULL);
}
