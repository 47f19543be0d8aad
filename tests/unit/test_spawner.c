/*
 * Unit tests of server/spawner.c with real processes: the service binary
 * (CONLAB_BIN, set by the Makefile) started in worker mode, one per task.
 * Covers a task of several jobs on its one process (results, CPU time,
 * readiness), a process killed mid-task (-EPIPE naming it), a deadline
 * (-ETIMEDOUT), a cancel (status given), a next() that fails the task, a
 * binary that cannot start, the cap on held tasks (-EAGAIN), and a stop
 * with tasks running and queued (-ESHUTDOWN). Every case checks that the
 * task's process was reaped before done() (waitpid says it is not a child
 * any more) and that no child is left.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../server/clock.h"
#include "../../server/job.h"
#include "../../server/prime.h"
#include "../../server/spawner.h"

#define WAIT_MS 20000 /* generous: sanitizer builds start slowly */

/* A task the test can wait for; its jobs are `jobs` sleeps of sleep_ms. */
struct ttask {
    struct spawn_task st;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    int jobs;    /* jobs to run */
    int replies; /* replies seen by next() */
    bool kill_at_hello;
    int fail_with; /* next() fails the task at its greeting */
    bool reaped;   /* waitpid(pid) said ECHILD inside done() */
    struct job_sleep sleep;
};

static void on_done(struct spawn_task *st)
{
    struct ttask *t = (struct ttask *)st;
    pthread_mutex_lock(&t->lock);
    t->reaped = st->pid == 0 ||
                (waitpid(st->pid, NULL, WNOHANG) < 0 && errno == ECHILD);
    t->done++;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
}

static int on_next(struct spawn_task *st, const struct spawn_reply *last)
{
    struct ttask *t = (struct ttask *)st;
    if (!last && t->kill_at_hello)
        kill(st->pid, SIGKILL);
    if (!last && t->fail_with) {
        snprintf(st->error, sizeof(st->error), "refused by the test");
        return t->fail_with;
    }
    if (last) {
        assert_int_equal(last->status, 0);
        assert_int_equal(last->len, 0);
        t->replies++;
    }
    if (t->replies == t->jobs)
        return 1;
    st->kind = JOB_SLEEP;
    st->params = &t->sleep;
    st->params_len = sizeof(t->sleep);
    return 0;
}

static void ttask_init(struct ttask *t, int jobs, uint64_t sleep_ms)
{
    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);
    t->st.next = on_next;
    t->st.done = on_done;
    t->jobs = jobs;
    t->sleep.ms = sleep_ms;
}

static bool wait_done(struct ttask *t)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&t->lock);
    int rc = 0;
    while (!t->done && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&t->cond, &t->lock, &until);
    bool done = t->done == 1;
    pthread_mutex_unlock(&t->lock);
    return done;
}

static struct spawner *start(int max_children, int timeout_ms, const char *exe)
{
    const char *bin = exe ? exe : getenv("CONLAB_BIN");
    assert_non_null(bin);
    struct spawner_config cfg = {
        .max_children = max_children, .job_timeout_ms = timeout_ms, .exe = bin};
    char err[128];
    struct spawner *s = spawner_start(&cfg, err, sizeof(err));
    assert_non_null(s);
    return s;
}

static void no_children_left(void)
{
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void test_task_of_several_jobs(void **state)
{
    (void)state;
    struct spawner *s = start(2, WAIT_MS, NULL);
    struct ttask t;
    ttask_init(&t, 3, 1);
    assert_int_equal(spawner_submit(s, &t.st), 0);
    assert_true(wait_done(&t));
    assert_int_equal(t.st.status, 0);
    assert_int_equal(t.replies, 3); /* all three on its one process */
    assert_true(t.st.pid > 0);
    assert_true(t.reaped);
    assert_true(t.st.requested_ns > 0);
    assert_true(t.st.ready_ns > t.st.requested_ns);
    assert_true(t.st.ended_ns >= t.st.ready_ns);
    struct spawner_stats ss;
    spawner_stats(s, &ss);
    assert_int_equal(ss.spawned, 1);
    assert_int_equal(ss.ok, 1);
    assert_int_equal(ss.live, 0);
    assert_int_equal(ss.held, 0);
    spawner_free(s);
    no_children_left();
}

static void test_killed_mid_task(void **state)
{
    (void)state;
    struct spawner *s = start(2, WAIT_MS, NULL);
    struct ttask t;
    ttask_init(&t, 1, 60000);
    t.kill_at_hello = true;
    assert_int_equal(spawner_submit(s, &t.st), 0);
    assert_true(wait_done(&t));
    assert_int_equal(t.st.status, -EPIPE);
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", (int)t.st.pid);
    assert_non_null(strstr(t.st.error, pid));
    assert_non_null(strstr(t.st.error, "died"));
    assert_true(t.reaped);
    struct spawner_stats ss;
    spawner_stats(s, &ss);
    assert_int_equal(ss.crashed, 1);
    spawner_free(s);
    no_children_left();
}

static void test_deadline(void **state)
{
    (void)state;
    struct spawner *s = start(2, 300, NULL);
    struct ttask t;
    ttask_init(&t, 1, 60000);
    assert_int_equal(spawner_submit(s, &t.st), 0);
    assert_true(wait_done(&t));
    assert_int_equal(t.st.status, -ETIMEDOUT);
    assert_non_null(strstr(t.st.error, "300 ms deadline"));
    assert_true(t.reaped);
    struct spawner_stats ss;
    spawner_stats(s, &ss);
    assert_int_equal(ss.timeout, 1);
    spawner_free(s);
    no_children_left();
}

static void test_cancel(void **state)
{
    (void)state;
    struct spawner *s = start(2, WAIT_MS, NULL);
    struct ttask t;
    ttask_init(&t, 2, 30000); /* its first reply would take 30 s */
    assert_int_equal(spawner_submit(s, &t.st), 0);
    /* Wait for the process to exist, then cancel its long job. */
    uint64_t until = clock_now_ns() + WAIT_MS * 1000000ull;
    struct spawner_stats ss;
    do {
        spawner_stats(s, &ss);
        assert_true(clock_now_ns() < until);
        usleep(2000);
    } while (ss.live < 1);
    spawner_cancel(s, &t.st, -ECANCELED);
    assert_true(wait_done(&t));
    assert_int_equal(t.st.status, -ECANCELED);
    assert_true(t.reaped);
    spawner_stats(s, &ss);
    assert_int_equal(ss.cancelled, 1);
    /* Not held any more: a second cancel does nothing. */
    spawner_cancel(s, &t.st, -ECANCELED);
    spawner_free(s);
    no_children_left();
}

static void test_next_fails_task(void **state)
{
    (void)state;
    struct spawner *s = start(2, WAIT_MS, NULL);
    struct ttask t;
    ttask_init(&t, 1, 1);
    t.fail_with = -EPROTO;
    assert_int_equal(spawner_submit(s, &t.st), 0);
    assert_true(wait_done(&t));
    assert_int_equal(t.st.status, -EPROTO);
    assert_string_equal(t.st.error, "refused by the test");
    assert_true(t.reaped);
    spawner_free(s);
    no_children_left();
}

static void test_binary_missing(void **state)
{
    (void)state;
    struct spawner *s = start(2, WAIT_MS, "/nonexistent/conlab");
    struct ttask t;
    ttask_init(&t, 1, 1);
    assert_int_equal(spawner_submit(s, &t.st), 0);
    assert_true(wait_done(&t));
    assert_int_equal(t.st.status, -ENOENT);
    assert_int_equal(t.st.pid, 0);
    assert_non_null(strstr(t.st.error, "could not start"));
    struct spawner_stats ss;
    spawner_stats(s, &ss);
    assert_int_equal(ss.failed, 1);
    assert_int_equal(ss.spawned, 0);
    spawner_free(s);
    no_children_left();
}

static void test_cap_and_stop(void **state)
{
    (void)state;
    struct spawner *s = start(2, WAIT_MS, NULL);
    struct ttask a, b, c;
    ttask_init(&a, 1, 60000);
    ttask_init(&b, 1, 60000);
    ttask_init(&c, 1, 1);
    assert_int_equal(spawner_submit(s, &a.st), 0);
    assert_int_equal(spawner_submit(s, &b.st), 0);
    assert_int_equal(spawner_submit(s, &c.st), -EAGAIN); /* 2 held */
    spawner_stop(s);
    assert_int_equal(a.done, 1);
    assert_int_equal(b.done, 1);
    assert_int_equal(c.done, 0);
    assert_int_equal(a.st.status, -ESHUTDOWN);
    assert_int_equal(b.st.status, -ESHUTDOWN);
    assert_true(a.reaped && b.reaped);
    assert_int_equal(spawner_submit(s, &c.st), -ESHUTDOWN);
    spawner_free(s);
    no_children_left();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_task_of_several_jobs),
        cmocka_unit_test(test_killed_mid_task),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_next_fails_task),
        cmocka_unit_test(test_binary_missing),
        cmocka_unit_test(test_cap_and_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
