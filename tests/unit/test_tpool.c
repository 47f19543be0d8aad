/*
 * Unit tests of server/tpool.c (the demo thread pool) and server/gil.c
 * (the simulated interpreter lock).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../server/clock.h"
#include "../../server/gil.h"
#include "../../server/tpool.h"

struct ttask {
    struct tpool_task task;
    _Atomic int ran;
    _Atomic int thread_id;
    int hold_ms;
};

static void run_task(struct tpool_task *t, int thread_id)
{
    struct ttask *tt = (struct ttask *)t;
    if (thread_id >= 0 && tt->hold_ms)
        usleep((useconds_t)tt->hold_ms * 1000);
    atomic_store(&tt->thread_id, thread_id);
    atomic_fetch_add(&tt->ran, 1);
}

static void wait_ran(struct ttask *t)
{
    uint64_t until = clock_now_ns() + 10ull * 1000000000ull;
    while (atomic_load(&t->ran) == 0)
        assert_true(clock_now_ns() < until);
}

static void test_runs_on_distinct_threads(void **state)
{
    (void)state;
    char err[64];
    struct tpool *pool = tpool_start(4, 16, err, sizeof(err));
    assert_non_null(pool);
    struct ttask t[4] = {0};
    struct tpool_task *tasks[4];
    for (int i = 0; i < 4; i++) {
        t[i].task.run = run_task;
        t[i].hold_ms = 100;
        tasks[i] = &t[i].task;
    }
    assert_int_equal(tpool_submit(pool, tasks, 4), 0);
    int seen = 0;
    for (int i = 0; i < 4; i++) {
        wait_ran(&t[i]);
        int id = atomic_load(&t[i].thread_id);
        assert_true(id >= 0 && id < 4);
        assert_false(seen & (1 << id)); /* four at once: four threads */
        seen |= 1 << id;
    }
    tpool_stop(pool);
}

static void test_queue_all_or_none(void **state)
{
    (void)state;
    char err[64];
    struct tpool *pool = tpool_start(1, 2, err, sizeof(err));
    assert_non_null(pool);
    struct ttask blocker = {.task.run = run_task, .hold_ms = 200};
    struct ttask q[3] = {0};
    struct tpool_task *one = &blocker.task;
    assert_int_equal(tpool_submit(pool, &one, 1), 0);
    usleep(50 * 1000); /* the blocker is running, the queue empty */
    struct tpool_task *three[3];
    for (int i = 0; i < 3; i++) {
        q[i].task.run = run_task;
        three[i] = &q[i].task;
    }
    /* More than the whole queue never fits; more than its free room
     * does not fit now. Either way nothing is queued. */
    assert_int_equal(tpool_submit(pool, three, 3), -E2BIG);
    struct tpool_stats s;
    tpool_stats(pool, &s);
    assert_int_equal(s.queued, 0);
    assert_int_equal(s.busy, 1);
    assert_int_equal(tpool_submit(pool, three, 2), 0);
    assert_int_equal(tpool_submit(pool, &three[2], 1), -EAGAIN);
    wait_ran(&q[0]);
    wait_ran(&q[1]);
    assert_int_equal(atomic_load(&q[2].ran), 0);
    tpool_stop(pool);
}

static void test_stop_cancels_queued(void **state)
{
    (void)state;
    char err[64];
    struct tpool *pool = tpool_start(1, 8, err, sizeof(err));
    assert_non_null(pool);
    struct ttask running = {.task.run = run_task, .hold_ms = 200};
    struct ttask queued = {.task.run = run_task};
    struct tpool_task *one = &running.task;
    assert_int_equal(tpool_submit(pool, &one, 1), 0);
    usleep(50 * 1000);
    one = &queued.task;
    assert_int_equal(tpool_submit(pool, &one, 1), 0);
    tpool_stop(pool);
    assert_int_equal(atomic_load(&running.ran), 1);
    assert_int_equal(atomic_load(&running.thread_id), 0);
    assert_int_equal(atomic_load(&queued.ran), 1);
    assert_int_equal(atomic_load(&queued.thread_id), -1);
}

/* Two threads compute under the GIL: never both at once, and each gets
 * turns (interleaving) because the holder yields after the interval. */
struct gil_worker {
    struct gil *gil;
    _Atomic int *inside;
    int switches;
    bool overlap;
};

static void *gil_thread(void *arg)
{
    struct gil_worker *w = arg;
    gil_acquire(w->gil);
    uint64_t until = clock_now_ns() + 60ull * 1000000ull;
    while (clock_now_ns() < until) {
        if (atomic_fetch_add(w->inside, 1) != 0)
            w->overlap = true;
        atomic_fetch_sub(w->inside, 1);
        uint64_t released, acquired;
        if (gil_yield(w->gil, &released, &acquired)) {
            w->switches++;
            assert_true(acquired >= released);
        }
    }
    gil_release(w->gil);
    return NULL;
}

static void test_gil_excludes_and_switches(void **state)
{
    (void)state;
    struct gil *gil = gil_new(GIL_SWITCH_INTERVAL_NS);
    assert_non_null(gil);
    _Atomic int inside = 0;
    struct gil_worker w[2] = {{gil, &inside, 0, false},
                              {gil, &inside, 0, false}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, gil_thread, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_false(w[0].overlap);
    assert_false(w[1].overlap);
    /* Each held it for 60 ms of work: at least a few 5 ms turns each. */
    assert_true(w[0].switches + w[1].switches >= 4);
    gil_free(gil);
}

static void test_gil_no_switch_alone(void **state)
{
    (void)state;
    struct gil *gil = gil_new(1000); /* 1 us: always due */
    uint64_t released, acquired;
    gil_acquire(gil);
    usleep(1000);
    assert_false(gil_yield(gil, &released, &acquired)); /* nobody waits */
    gil_release(gil);
    gil_free(gil);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs_on_distinct_threads),
        cmocka_unit_test(test_queue_all_or_none),
        cmocka_unit_test(test_stop_cancels_queued),
        cmocka_unit_test(test_gil_excludes_and_switches),
        cmocka_unit_test(test_gil_no_switch_alone),
    };
    return cmocka_run_group_tests_name("tpool", tests, NULL, NULL);
}
