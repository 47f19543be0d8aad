/*
 * Unit tests of server/pool.c with real worker processes: the service
 * binary (CONLAB_BIN, set by the Makefile) started in worker mode. Covers
 * submit and result, a worker killed mid-job, a job past its deadline, a
 * full queue, recycling, fair shares between clients, taking queued jobs
 * back, and shutdown with jobs queued and running.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../server/clock.h"
#include "../../server/job.h"
#include "../../server/pool.h"
#include "../../server/prime.h"

#define WAIT_MS 20000 /* generous: sanitizer builds start slowly */

/* The order jobs ended in, by name (callbacks run on the pool thread). */
static pthread_mutex_t order_lock = PTHREAD_MUTEX_INITIALIZER;
static char order[64];
static size_t order_len;

/* A job the test can wait for. */
struct tjob {
    struct pool_job job;
    char name;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    uint8_t result[64];
    uint32_t result_len;
    union {
        struct prime_span span;
        struct job_sleep sleep;
        int64_t numbers[4];
    } params;
};

static void on_done(struct pool_job *job)
{
    struct tjob *t = job->owner;
    pthread_mutex_lock(&order_lock);
    if (order_len < sizeof(order) - 1)
        order[order_len++] = t->name;
    pthread_mutex_unlock(&order_lock);
    pthread_mutex_lock(&t->lock);
    t->done++;
    t->result_len = job->result_len < sizeof(t->result) ? job->result_len : 0;
    if (t->result_len)
        memcpy(t->result, job->result, t->result_len);
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
}

static void tjob_init(struct tjob *t, uint32_t kind, uint32_t len)
{
    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);
    t->job.kind = kind;
    t->job.params = &t->params;
    t->job.params_len = len;
    t->job.done = on_done;
    t->job.owner = t;
}

static void sleep_job(struct tjob *t, uint64_t ms)
{
    tjob_init(t, JOB_SLEEP, sizeof(struct job_sleep));
    t->params.sleep.ms = ms;
}

static bool wait_done(struct tjob *t)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&t->lock);
    while (!t->done && pthread_cond_timedwait(&t->cond, &t->lock, &until) == 0)
        ;
    bool done = t->done == 1;
    pthread_mutex_unlock(&t->lock);
    return done;
}

static struct pool *start(int workers, int queue, int timeout_ms, int max_jobs)
{
    const char *bin = getenv("CONLAB_BIN");
    assert_non_null(bin);
    struct pool_config cfg = {.workers = workers,
                              .queue = queue,
                              .job_timeout_ms = timeout_ms,
                              .max_jobs = max_jobs,
                              .exe = bin};
    char err[128];
    struct pool *p = pool_start(&cfg, err, sizeof(err));
    assert_non_null(p);
    return p;
}

/* Polls the stats until pred holds (or fails the test). */
static void wait_stats(struct pool *p, bool (*pred)(const struct pool_stats *),
                       struct pool_stats *out)
{
    uint64_t until = clock_now_ns() + WAIT_MS * 1000000ull;
    for (;;) {
        pool_stats(p, out);
        if (pred(out))
            return;
        assert_true(clock_now_ns() < until);
        usleep(2000);
    }
}

static bool all_alive(const struct pool_stats *s)
{
    return s->alive == s->configured;
}

static bool one_busy(const struct pool_stats *s)
{
    return s->busy == 1;
}

static void assert_no_children(void)
{
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void test_prime_job(void **state)
{
    (void)state;
    struct pool *p = start(2, 8, 10000, 0);
    struct tjob t;
    struct job_prime_result res;
    tjob_init(&t, JOB_PRIME, sizeof(struct prime_span));
    prime_split(100001, 1, &t.params.span);
    struct pool_job *one = &t.job;
    assert_int_equal(pool_submit(p, &one, 1), 0);
    assert_true(wait_done(&t));
    assert_int_equal(t.job.status, 0);
    assert_true(t.job.worker_pid > 0);
    assert_true(t.job.end_ns >= t.job.start_ns && t.job.start_ns > 0);
    assert_int_equal(t.result_len, sizeof(res));
    memcpy(&res, t.result, sizeof(res));
    assert_int_equal(res.primes, 9592);
    assert_int_equal(res.checked, 100000);
    pool_free(p);
    assert_no_children();
}

static void test_square_job(void **state)
{
    (void)state;
    struct pool *p = start(1, 8, 10000, 0);
    struct tjob t;
    tjob_init(&t, JOB_SQUARE, 4 * sizeof(int64_t));
    const int64_t in[4] = {3, -4, 0, 3037000499LL};
    memcpy(t.params.numbers, in, sizeof(in));
    struct pool_job *one = &t.job;
    assert_int_equal(pool_submit(p, &one, 1), 0);
    assert_true(wait_done(&t));
    assert_int_equal(t.job.status, 0);
    assert_int_equal(t.result_len, sizeof(in));
    int64_t out[4];
    memcpy(out, t.result, sizeof(out));
    assert_int_equal(out[0], 9);
    assert_int_equal(out[1], 16);
    assert_int_equal(out[2], 0);
    assert_int_equal(out[3], 9223372030926249001LL);
    pool_free(p);
}

/* What a job's done() saw of the figures (test_stats_in_done). */
static struct pool *stats_pool;
static struct pool_stats stats_seen;

static void on_done_stats(struct pool_job *job)
{
    pool_stats(stats_pool, &stats_seen);
    on_done(job);
}

/*
 * The figures a done() reads already count its job: its worker is no
 * longer busy, the outcome is counted. (They were published a pool turn
 * later: a reader woken by done() saw busy 1.)
 */
static void test_stats_in_done(void **state)
{
    (void)state;
    struct pool *p = start(1, 8, 10000, 0);
    struct pool_stats s;
    wait_stats(p, all_alive, &s);
    stats_pool = p;
    for (int i = 0; i < 3; i++) {
        struct tjob t;
        sleep_job(&t, 1);
        t.job.done = on_done_stats;
        struct pool_job *one = &t.job;
        assert_int_equal(pool_submit(p, &one, 1), 0);
        assert_true(wait_done(&t));
        assert_int_equal(t.job.status, 0);
        assert_int_equal(stats_seen.busy, 0);
        assert_int_equal(stats_seen.alive, 1);
        assert_int_equal(stats_seen.completed, (uint64_t)i + 1);
        assert_int_equal(stats_seen.jobs.ok, (uint64_t)i + 1);
    }
    pool_free(p);
    assert_no_children();
}

static void test_worker_killed_mid_job(void **state)
{
    (void)state;
    struct pool *p = start(1, 8, 20000, 0);
    struct pool_stats s;
    wait_stats(p, all_alive, &s);
    pid_t first = s.pids[0];

    struct tjob t;
    sleep_job(&t, 10000);
    struct pool_job *one = &t.job;
    assert_int_equal(pool_submit(p, &one, 1), 0);
    wait_stats(p, one_busy, &s);
    assert_int_equal(kill(first, SIGKILL), 0);
    assert_true(wait_done(&t));
    assert_int_equal(t.job.status, -EPIPE);
    assert_non_null(strstr(t.job.error, "died"));

    /* Replaced, and the new worker serves. */
    wait_stats(p, all_alive, &s);
    assert_int_equal(s.restarts.crash, 1);
    assert_true(s.pids[0] > 0 && s.pids[0] != first);
    struct tjob t2;
    sleep_job(&t2, 1);
    one = &t2.job;
    assert_int_equal(pool_submit(p, &one, 1), 0);
    assert_true(wait_done(&t2));
    assert_int_equal(t2.job.status, 0);
    pool_free(p);
    assert_no_children();
}

static void test_deadline(void **state)
{
    (void)state;
    struct pool *p = start(1, 8, 200, 0);
    struct tjob t;
    sleep_job(&t, 5000);
    struct pool_job *one = &t.job;
    uint64_t began = clock_now_ns();
    assert_int_equal(pool_submit(p, &one, 1), 0);
    assert_true(wait_done(&t));
    assert_int_equal(t.job.status, -ETIMEDOUT);
    assert_true(clock_now_ns() - began < 4000ull * 1000000ull);
    struct pool_stats s;
    wait_stats(p, all_alive, &s);
    assert_int_equal(s.restarts.timeout, 1);
    assert_int_equal(s.restarts.crash, 0);
    pool_free(p);
    assert_no_children();
}

static void test_queue_full(void **state)
{
    (void)state;
    struct pool *p = start(1, 2, 20000, 0);
    struct pool_stats s;
    wait_stats(p, all_alive, &s);
    struct tjob running, queued[2], extra[2];
    sleep_job(&running, 300);
    struct pool_job *one = &running.job;
    assert_int_equal(pool_submit(p, &one, 1), 0);
    wait_stats(p, one_busy, &s);

    sleep_job(&queued[0], 1);
    sleep_job(&queued[1], 1);
    sleep_job(&extra[0], 1);
    sleep_job(&extra[1], 1);
    struct pool_job *two[2] = {&queued[0].job, &queued[1].job};
    struct pool_job *over[2] = {&extra[0].job, &extra[1].job};
    /* More jobs than the whole queue never fit: nothing is queued. */
    struct pool_job *three[3] = {&queued[0].job, &queued[1].job, &extra[0].job};
    assert_int_equal(pool_submit(p, three, 3), -E2BIG);
    pool_stats(p, &s);
    assert_int_equal(s.queued, 0);
    assert_int_equal(pool_submit(p, two, 2), 0);
    /* All or none: the queue is full, and nothing of it is queued. */
    assert_int_equal(pool_submit(p, over, 1), -EAGAIN);
    pool_stats(p, &s);
    assert_int_equal(s.queued, 2);
    assert_int_equal(s.jobs.rejected, 4);

    assert_true(wait_done(&running));
    assert_true(wait_done(&queued[0]));
    assert_true(wait_done(&queued[1]));
    assert_int_equal(extra[0].done, 0);
    pool_free(p);
}

static void test_recycle(void **state)
{
    (void)state;
    struct pool *p = start(1, 8, 20000, 2);
    for (int i = 0; i < 6; i++) {
        struct tjob t;
        sleep_job(&t, 0);
        struct pool_job *one = &t.job;
        assert_int_equal(pool_submit(p, &one, 1), 0);
        assert_true(wait_done(&t));
        assert_int_equal(t.job.status, 0);
    }
    struct pool_stats s;
    pool_stats(p, &s);
    /* max_jobs 2 plus jitter of at most 2/4+1: at least one recycle. */
    assert_true(s.restarts.recycle >= 1);
    assert_int_equal(s.restarts.crash, 0);
    pool_free(p);
    assert_no_children();
}

static void test_shutdown_with_jobs(void **state)
{
    (void)state;
    struct pool *p = start(2, 8, 20000, 0);
    struct pool_stats s;
    wait_stats(p, all_alive, &s);
    struct tjob t[5];
    struct pool_job *jobs[5];
    for (int i = 0; i < 5; i++) {
        sleep_job(&t[i], 10000);
        jobs[i] = &t[i].job;
    }
    assert_int_equal(pool_submit(p, jobs, 5), 0);
    usleep(100 * 1000);
    uint64_t began = clock_now_ns();
    pool_stop(p);
    assert_true(clock_now_ns() - began < 5000ull * 1000000ull);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(t[i].done, 1);
        assert_int_equal(t[i].job.status, -ESHUTDOWN);
    }
    assert_no_children();

    /* Stopped, not freed: every call still answers. */
    assert_true(pool_stopping(p));
    struct tjob late;
    sleep_job(&late, 1);
    struct pool_job *one = &late.job;
    assert_int_equal(pool_submit(p, &one, 1), -ESHUTDOWN);
    assert_false(pool_cancel(p, &late.job));
    assert_false(pool_cancel(p, &t[4].job)); /* ended by the stop */
    pool_stats(p, &s);
    assert_int_equal(s.alive, 0);
    assert_int_equal(s.busy, 0);
    assert_int_equal(s.queued, 0);
    assert_int_equal(s.completed, 5);
    assert_int_equal(s.jobs.cancelled, 5);
    pool_stop(p); /* twice: nothing */
    pool_free(p);
    assert_int_equal(late.done, 0);
    pool_free(NULL);
    pool_stop(NULL);
}

/* Queues jobs named by names (client = the letter) in one submission on
 * a pool of one worker, and writes the order they ended in to out. */
static void run_order(const char *names, char *out)
{
    struct pool *p = start(1, 16, 20000, 0);
    size_t n = strlen(names);
    struct tjob t[16];
    struct pool_job *jobs[16];
    pthread_mutex_lock(&order_lock);
    order_len = 0;
    pthread_mutex_unlock(&order_lock);
    for (size_t i = 0; i < n; i++) {
        sleep_job(&t[i], 0);
        t[i].name = names[i];
        t[i].job.client = (uint64_t)names[i];
        jobs[i] = &t[i].job;
    }
    assert_int_equal(pool_submit(p, jobs, n), 0);
    for (size_t i = 0; i < n; i++) {
        assert_true(wait_done(&t[i]));
        assert_int_equal(t[i].job.status, 0);
    }
    pool_free(p);
    pthread_mutex_lock(&order_lock);
    memcpy(out, order, order_len);
    out[order_len] = '\0';
    pthread_mutex_unlock(&order_lock);
}

/* One worker: b's one job runs right after a's first, not last; two
 * clients with queued work take turns; a lone client keeps its order. */
static void test_fair_share(void **state)
{
    (void)state;
    char got[64];
    run_order("aaab", got);
    assert_string_equal(got, "abaa");
    run_order("aaabbb", got);
    assert_string_equal(got, "ababab");
    run_order("aaaa", got);
    assert_string_equal(got, "aaaa");
    assert_no_children();
}

static void test_cancel_queued(void **state)
{
    (void)state;
    struct pool *p = start(1, 8, 60000, 0);
    struct pool_stats s;
    struct tjob running, x, y, never;
    sleep_job(&running, 30000); /* ended by the stop, not by time */
    sleep_job(&x, 1);
    sleep_job(&y, 1);
    sleep_job(&never, 1);
    struct pool_job *one = &running.job;
    assert_int_equal(pool_submit(p, &one, 1), 0);
    wait_stats(p, one_busy, &s);
    struct pool_job *two[2] = {&x.job, &y.job};
    assert_int_equal(pool_submit(p, two, 2), 0);

    assert_true(pool_cancel(p, &x.job));
    assert_false(pool_cancel(p, &x.job));       /* already taken back */
    assert_false(pool_cancel(p, &running.job)); /* a worker has it */
    assert_false(pool_cancel(p, &never.job));   /* never queued */
    pool_stats(p, &s);
    assert_int_equal(s.queued, 1);
    assert_int_equal(s.jobs.cancelled, 1);
    pool_stop(p);
    assert_int_equal(x.done, 0);
    assert_int_equal(y.done, 1);
    assert_int_equal(y.job.status, -ESHUTDOWN);
    assert_int_equal(running.done, 1);
    assert_int_equal(running.job.status, -ESHUTDOWN);
    pool_free(p);
    assert_no_children();
}

/* Cancel while the pool thread dispatches: the callback comes exactly
 * when pool_cancel() said no. */
#define RACE_JOBS 300

static void test_cancel_race(void **state)
{
    (void)state;
    struct pool *p = start(2, 4, 20000, 0);
    struct pool_stats s;
    wait_stats(p, all_alive, &s);
    struct tjob *t = calloc(RACE_JOBS, sizeof(*t));
    bool *taken = calloc(RACE_JOBS, sizeof(*taken));
    assert_non_null(t);
    assert_non_null(taken);
    int n_taken = 0;
    for (int i = 0; i < RACE_JOBS; i++) {
        sleep_job(&t[i], 0);
        t[i].job.client = (uint64_t)(i % 3);
        struct pool_job *one = &t[i].job;
        int rc;
        while ((rc = pool_submit(p, &one, 1)) == -EAGAIN)
            sched_yield();
        assert_int_equal(rc, 0);
        if (i % 2 == 1)
            continue;
        /* The workers are idle: after a spread of delays, some cancels
         * land before the pool thread hands the job out, some after. */
        for (volatile int k = 0; k < (i % 40) * 3000; k++)
            ;
        taken[i] = pool_cancel(p, &t[i].job);
        n_taken += taken[i];
        assert_true(taken[i] || wait_done(&t[i]));
        if (i > 0)
            assert_true(wait_done(&t[i - 1]));
    }
    for (int i = 0; i < RACE_JOBS; i++) {
        if (!taken[i]) {
            assert_true(wait_done(&t[i]));
            assert_int_equal(t[i].job.status, 0);
        }
    }
    pool_stop(p); /* every callback that will come has come */
    print_message("cancel race: %d of %d taken back\n", n_taken, RACE_JOBS);
    for (int i = 0; i < RACE_JOBS; i++)
        assert_int_equal(t[i].done, taken[i] ? 0 : 1);
    pool_stats(p, &s);
    assert_int_equal(s.jobs.cancelled, (uint64_t)n_taken);
    assert_int_equal(s.jobs.ok, (uint64_t)(RACE_JOBS - n_taken));
    pool_free(p);
    free(t);
    free(taken);
    assert_no_children();
}

static void test_bad_job_rejected(void **state)
{
    (void)state;
    struct pool *p = start(1, 8, 20000, 0);
    struct tjob t;
    tjob_init(&t, 999, 0);
    struct pool_job *one = &t.job;
    assert_int_equal(pool_submit(p, &one, 1), 0);
    assert_true(wait_done(&t));
    assert_int_equal(t.job.status, -EINVAL);
    /* Oversized parameters never reach a worker. */
    struct tjob big;
    tjob_init(&big, JOB_SQUARE, JOB_PAYLOAD_MAX + 8);
    one = &big.job;
    assert_int_equal(pool_submit(p, &one, 1), -EINVAL);
    pool_free(p);
}

/* Workers that die at once are restarted ever more slowly, and queued
 * jobs fail after a deadline instead of waiting forever. */
static void test_crash_loop_backs_off(void **state)
{
    (void)state;
    struct pool_config cfg = {.workers = 1,
                              .queue = 8,
                              .job_timeout_ms = 1500,
                              .max_jobs = 0,
                              .exe = "/bin/false"};
    char err[128];
    struct pool *p = pool_start(&cfg, err, sizeof(err));
    assert_non_null(p);
    struct tjob t;
    sleep_job(&t, 1);
    struct pool_job *one = &t.job;
    assert_int_equal(pool_submit(p, &one, 1), 0);
    assert_true(wait_done(&t));
    assert_int_equal(t.job.status, -ETIMEDOUT);
    assert_non_null(strstr(t.job.error, "queue"));
    struct pool_stats s;
    pool_stats(p, &s);
    assert_int_equal(s.alive, 0);
    /* 1.5 s of 50, 100, 200, 400, 800 ms back-off: a handful, not a loop. */
    assert_true(s.restarts.crash >= 2 && s.restarts.crash <= 8);
    pool_free(p);
    assert_no_children();
}

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(pool_backoff_ms(0), 0);
    assert_int_equal(pool_backoff_ms(1), 50);
    assert_int_equal(pool_backoff_ms(2), 100);
    assert_int_equal(pool_backoff_ms(5), 800);
    assert_int_equal(pool_backoff_ms(7), 3200);
    assert_int_equal(pool_backoff_ms(8), 5000);
    assert_int_equal(pool_backoff_ms(1000), 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_prime_job),
        cmocka_unit_test(test_square_job),
        cmocka_unit_test(test_stats_in_done),
        cmocka_unit_test(test_worker_killed_mid_job),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_queue_full),
        cmocka_unit_test(test_recycle),
        cmocka_unit_test(test_shutdown_with_jobs),
        cmocka_unit_test(test_fair_share),
        cmocka_unit_test(test_cancel_queued),
        cmocka_unit_test(test_cancel_race),
        cmocka_unit_test(test_bad_job_rejected),
        cmocka_unit_test(test_crash_loop_backs_off),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests_name("pool", tests, NULL, NULL);
}
