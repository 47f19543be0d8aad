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
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../server/clock.h"
#include "../../server/gil.h"
#include "../../server/tpool.h"

#define WAIT_NS (10ull * 1000000000ull)

/* A latch the tests open; gated tasks wait on it, and count their starts. */
struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool open;
    int started;
};

static struct gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                           false, 0};

/* The order tasks ran in, by name. */
static pthread_mutex_t order_lock = PTHREAD_MUTEX_INITIALIZER;
static char order[64];
static size_t order_len;

struct ttask {
    struct tpool_task task;
    char name;
    bool gated;
    int hold_ms;
    _Atomic int ran;
    _Atomic int status;
    _Atomic int thread_id;
    pthread_t caller;
};

static void run_task(struct tpool_task *t, int status)
{
    struct ttask *tt = (struct ttask *)t;
    tt->caller = pthread_self();
    if (status == 0) {
        pthread_mutex_lock(&order_lock);
        if (order_len < sizeof(order) - 1)
            order[order_len++] = tt->name;
        pthread_mutex_unlock(&order_lock);
        if (tt->gated) {
            pthread_mutex_lock(&gate.lock);
            gate.started++;
            pthread_cond_broadcast(&gate.cond);
            while (!gate.open)
                pthread_cond_wait(&gate.cond, &gate.lock);
            pthread_mutex_unlock(&gate.lock);
        }
        if (tt->hold_ms)
            usleep((useconds_t)tt->hold_ms * 1000);
        atomic_store(&tt->thread_id, t->thread_id);
    }
    atomic_store(&tt->status, status);
    atomic_fetch_add(&tt->ran, 1);
}

static void reset(void)
{
    pthread_mutex_lock(&gate.lock);
    gate.open = false;
    gate.started = 0;
    pthread_mutex_unlock(&gate.lock);
    pthread_mutex_lock(&order_lock);
    order_len = 0;
    memset(order, 0, sizeof(order));
    pthread_mutex_unlock(&order_lock);
}

/* Waits until n gated tasks are inside (or fails the test). */
static void wait_started(int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_NS / 1000000000ull;
    pthread_mutex_lock(&gate.lock);
    while (gate.started < n &&
           pthread_cond_timedwait(&gate.cond, &gate.lock, &until) == 0)
        ;
    int started = gate.started;
    pthread_mutex_unlock(&gate.lock);
    assert_int_equal(started, n);
}

static void open_gate(void)
{
    pthread_mutex_lock(&gate.lock);
    gate.open = true;
    pthread_cond_broadcast(&gate.cond);
    pthread_mutex_unlock(&gate.lock);
}

static void wait_ran(struct ttask *t)
{
    uint64_t until = clock_now_ns() + WAIT_NS;
    while (atomic_load(&t->ran) == 0) {
        assert_true(clock_now_ns() < until);
        usleep(1000);
    }
}

static void task_init(struct ttask *t, char name, uint64_t client)
{
    memset(t, 0, sizeof(*t));
    t->task.run = run_task;
    t->task.client = client;
    t->name = name;
}

static struct tpool *start(int threads, int queue)
{
    char err[64];
    struct tpool *pool = tpool_start(threads, queue, err, sizeof(err));
    assert_non_null(pool);
    reset();
    return pool;
}

static void test_runs_on_distinct_threads(void **state)
{
    (void)state;
    struct tpool *pool = start(4, 16);
    struct ttask t[4];
    struct tpool_task *tasks[4];
    for (int i = 0; i < 4; i++) {
        task_init(&t[i], 'a', 1);
        t[i].gated = true;
        tasks[i] = &t[i].task;
    }
    /* One client alone still gets every thread. */
    assert_int_equal(tpool_submit(pool, tasks, 4), 0);
    wait_started(4);
    open_gate();
    int seen = 0;
    for (int i = 0; i < 4; i++) {
        wait_ran(&t[i]);
        int id = atomic_load(&t[i].thread_id);
        assert_int_equal(atomic_load(&t[i].status), 0);
        assert_true(id >= 0 && id < 4);
        assert_false(seen & (1 << id)); /* four at once: four threads */
        seen |= 1 << id;
    }
    tpool_stop(pool);
    tpool_free(pool);
}

static void test_queue_all_or_none(void **state)
{
    (void)state;
    struct tpool *pool = start(1, 2);
    struct ttask blocker, q[3];
    task_init(&blocker, 'b', 0);
    blocker.gated = true;
    struct tpool_task *one = &blocker.task;
    assert_int_equal(tpool_submit(pool, &one, 1), 0);
    wait_started(1); /* the blocker is running, the queue empty */
    struct tpool_task *three[3];
    for (int i = 0; i < 3; i++) {
        task_init(&q[i], 'q', 0);
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
    open_gate();
    wait_ran(&q[0]);
    wait_ran(&q[1]);
    assert_int_equal(atomic_load(&q[2].ran), 0);
    tpool_stop(pool);
    tpool_free(pool);
}

/* Queues tasks named by names, client = the letter, in one submission,
 * and returns the order they ran in on a pool of threads threads. */
static void run_order(int threads, const char *names, char *out)
{
    struct tpool *pool = start(threads, 16);
    size_t n = strlen(names);
    struct ttask t[16];
    struct tpool_task *tasks[16];
    for (size_t i = 0; i < n; i++) {
        task_init(&t[i], names[i], (uint64_t)names[i]);
        tasks[i] = &t[i].task;
    }
    assert_int_equal(tpool_submit(pool, tasks, n), 0);
    for (size_t i = 0; i < n; i++)
        wait_ran(&t[i]);
    tpool_stop(pool);
    tpool_free(pool);
    pthread_mutex_lock(&order_lock);
    memcpy(out, order, order_len + 1);
    pthread_mutex_unlock(&order_lock);
}

/* One thread: client b's one task runs right after a's first, not last;
 * two clients with queued work take turns. */
static void test_fair_share_one_thread(void **state)
{
    (void)state;
    char got[64];
    run_order(1, "aaab", got);
    assert_string_equal(got, "abaa");
    run_order(1, "aaabbb", got);
    assert_string_equal(got, "ababab");
    /* Fewest held, then oldest: c, holding none, still waits behind b's
     * older task whenever b holds none either. */
    run_order(1, "aabbbc", got);
    assert_string_equal(got, "ababcb");
    run_order(1, "aaaa", got);
    assert_string_equal(got, "aaaa");
}

/* Two threads, client a queued first: b's task still takes the second
 * thread, and a's later tasks wait. */
static void test_fair_share_two_threads(void **state)
{
    (void)state;
    struct tpool *pool = start(2, 16);
    struct ttask a[3], b;
    struct tpool_task *tasks[4];
    for (int i = 0; i < 3; i++) {
        task_init(&a[i], 'a', 1);
        a[i].gated = true;
        tasks[i] = &a[i].task;
    }
    task_init(&b, 'b', 2);
    b.gated = true;
    tasks[3] = &b.task;
    assert_int_equal(tpool_submit(pool, tasks, 4), 0);
    wait_started(2);
    pthread_mutex_lock(&order_lock);
    order[order_len] = '\0';
    assert_string_equal(order, "ab");
    pthread_mutex_unlock(&order_lock);
    struct tpool_stats s;
    tpool_stats(pool, &s);
    assert_int_equal(s.busy, 2);
    assert_int_equal(s.queued, 2);
    open_gate();
    for (int i = 0; i < 3; i++)
        wait_ran(&a[i]);
    wait_ran(&b);
    tpool_stop(pool);
    tpool_free(pool);
}

static void test_cancel_queued(void **state)
{
    (void)state;
    struct tpool *pool = start(1, 8);
    struct ttask blocker, x, y, never;
    task_init(&blocker, 'b', 0);
    blocker.gated = true;
    task_init(&x, 'x', 0);
    task_init(&y, 'y', 0);
    task_init(&never, 'n', 0);
    struct tpool_task *one = &blocker.task;
    assert_int_equal(tpool_submit(pool, &one, 1), 0);
    wait_started(1);
    struct tpool_task *two[2] = {&x.task, &y.task};
    assert_int_equal(tpool_submit(pool, two, 2), 0);

    assert_true(tpool_cancel(pool, &x.task));
    assert_false(tpool_cancel(pool, &x.task));       /* already taken back */
    assert_false(tpool_cancel(pool, &blocker.task)); /* running */
    assert_false(tpool_cancel(pool, &never.task));   /* never queued */
    struct tpool_stats s;
    tpool_stats(pool, &s);
    assert_int_equal(s.queued, 1);
    assert_int_equal(s.cancelled, 1);

    open_gate();
    wait_ran(&y);
    assert_false(tpool_cancel(pool, &y.task)); /* ran */
    tpool_stop(pool);
    assert_int_equal(atomic_load(&x.ran), 0);
    assert_int_equal(atomic_load(&y.ran), 1);
    assert_int_equal(atomic_load(&blocker.ran), 1);
    /* Taken back, it may be queued again. */
    one = &x.task;
    assert_int_equal(tpool_submit(pool, &one, 1), -ESHUTDOWN);
    tpool_free(pool);
}

/* Cancel while the threads dispatch: the callback comes exactly when
 * tpool_cancel() said no. */
#define RACE_TASKS 2000

static void test_cancel_race(void **state)
{
    (void)state;
    struct tpool *pool = start(2, 8);
    struct ttask *t = calloc(RACE_TASKS, sizeof(*t));
    bool *taken = calloc(RACE_TASKS, sizeof(*taken));
    assert_non_null(t);
    assert_non_null(taken);
    int n_taken = 0;
    for (int i = 0; i < RACE_TASKS; i++) {
        task_init(&t[i], 'r', (uint64_t)(i % 3));
        struct tpool_task *one = &t[i].task;
        int rc;
        while ((rc = tpool_submit(pool, &one, 1)) == -EAGAIN)
            sched_yield();
        assert_int_equal(rc, 0);
        if (i % 2 == 0 || i % 7 == 0) {
            taken[i] = tpool_cancel(pool, &t[i].task);
            n_taken += taken[i];
        }
    }
    tpool_stop(pool); /* every callback that will come has come */
    print_message("cancel race: %d of %d taken back\n", n_taken, RACE_TASKS);
    struct tpool_stats s;
    tpool_stats(pool, &s);
    for (int i = 0; i < RACE_TASKS; i++)
        assert_int_equal(atomic_load(&t[i].ran), taken[i] ? 0 : 1);
    assert_int_equal(s.cancelled, (uint64_t)n_taken);
    assert_int_equal(s.completed + s.cancelled, RACE_TASKS);
    tpool_free(pool);
    free(t);
    free(taken);
}

static void test_stop_cancels_queued(void **state)
{
    (void)state;
    struct tpool *pool = start(1, 8);
    struct ttask running, queued, late;
    task_init(&running, 'r', 0);
    running.gated = true;
    task_init(&queued, 'q', 0);
    task_init(&late, 'l', 0);
    struct tpool_task *one = &running.task;
    assert_int_equal(tpool_submit(pool, &one, 1), 0);
    wait_started(1);
    one = &queued.task;
    assert_int_equal(tpool_submit(pool, &one, 1), 0);
    open_gate();
    tpool_stop(pool);
    assert_int_equal(atomic_load(&running.ran), 1);
    assert_int_equal(atomic_load(&running.status), 0);
    assert_int_equal(atomic_load(&running.thread_id), 0);
    /* Either it ran before the stop, or the stop ended it on this thread. */
    assert_int_equal(atomic_load(&queued.ran), 1);
    if (atomic_load(&queued.status) != 0) {
        assert_int_equal(atomic_load(&queued.status), -ESHUTDOWN);
        assert_true(pthread_equal(queued.caller, pthread_self()));
    }

    /* Stopped, not freed: every call still answers. */
    assert_true(tpool_stopping(pool));
    one = &late.task;
    assert_int_equal(tpool_submit(pool, &one, 1), -ESHUTDOWN);
    assert_false(tpool_cancel(pool, &late.task));
    struct tpool_stats s;
    tpool_stats(pool, &s);
    assert_int_equal(s.busy, 0);
    assert_int_equal(s.queued, 0);
    assert_int_equal(s.completed, 2);
    tpool_stop(pool); /* twice: nothing */
    tpool_free(pool);
    assert_int_equal(atomic_load(&late.ran), 0);
    tpool_free(NULL);
    tpool_stop(NULL);
}

static struct ttask *opener_waits_for;

/* Opens the gate once the stop has ended opener_waits_for. */
static void *open_after_stop(void *arg)
{
    (void)arg;
    wait_ran(opener_waits_for);
    open_gate();
    return NULL;
}

/* A queued task that never got a thread ends with -ESHUTDOWN on the
 * stopping thread. */
static void test_stop_ends_queued_unrun(void **state)
{
    (void)state;
    struct tpool *pool = start(1, 8);
    struct ttask running, queued;
    task_init(&running, 'r', 0);
    running.gated = true;
    task_init(&queued, 'q', 0);
    struct tpool_task *one = &running.task;
    assert_int_equal(tpool_submit(pool, &one, 1), 0);
    wait_started(1);
    one = &queued.task;
    assert_int_equal(tpool_submit(pool, &one, 1), 0);
    /* The gate opens only after the stop ended the queued task: it cannot
     * get the thread first. */
    pthread_t opener;
    opener_waits_for = &queued;
    assert_int_equal(pthread_create(&opener, NULL, open_after_stop, NULL), 0);
    tpool_stop(pool);
    pthread_join(opener, NULL);
    assert_int_equal(atomic_load(&queued.ran), 1);
    assert_int_equal(atomic_load(&queued.status), -ESHUTDOWN);
    assert_true(pthread_equal(queued.caller, pthread_self()));
    assert_int_equal(atomic_load(&running.status), 0);
    tpool_free(pool);
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
        cmocka_unit_test(test_fair_share_one_thread),
        cmocka_unit_test(test_fair_share_two_threads),
        cmocka_unit_test(test_cancel_queued),
        cmocka_unit_test(test_cancel_race),
        cmocka_unit_test(test_stop_cancels_queued),
        cmocka_unit_test(test_stop_ends_queued_unrun),
        cmocka_unit_test(test_gil_excludes_and_switches),
        cmocka_unit_test(test_gil_no_switch_alone),
    };
    return cmocka_run_group_tests_name("tpool", tests, NULL, NULL);
}
