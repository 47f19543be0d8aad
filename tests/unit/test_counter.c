/*
 * Unit tests of handlers/counter.c's kernels and its worker job (the file
 * is included, so that its static functions are reachable; its demo_counter
 * then comes from here, not from the library): exact counts for every sync
 * in one thread, the worker job with each worker's own counter (sync=none)
 * and with the run's shared memory segment, the robust lock taken over
 * from a process that died holding it (EOWNERDEAD: counted, the count still
 * exact, nothing hangs), and the jobs a worker refuses (a segment that is
 * not a counter's, an unknown sync, too many increments).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "../../handlers/counter.c"

/* In one thread every sync is exact: nothing overlaps. */
static void test_count_up_alone(void **state)
{
    (void)state;
    for (int sync = 0; sync < SYNCS; sync++) {
        struct counter_shared c;
        struct counter_tally t = {0};
        atomic_init(&c.value, 0);
        assert_int_equal(lock_init(&c.lock, false), 0);
        assert_int_equal(count_up(&c, (enum counter_sync)sync, 100000, &t), 0);
        assert_int_equal(count_up(&c, (enum counter_sync)sync, 5, &t), 0);
        assert_int_equal(atomic_load(&c.value), 100005);
        assert_int_equal(t.count, 100005);
        assert_int_equal(t.recovered, 0);
        /* Uncontended: trylock always won, no wait was timed. */
        assert_int_equal(t.contended, 0);
        assert_int_equal(t.wait_ns, 0);
        pthread_mutex_destroy(&c.lock);
    }
}

static struct job_counter job_of(enum counter_sync sync, uint64_t n,
                                 const char *shm)
{
    struct job_counter j = {.sync = sync, .increments = n};
    snprintf(j.shm, sizeof(j.shm), "%s", shm);
    return j;
}

/* sync=none: the worker's own counter; the answer carries it. */
static void test_worker_own_memory(void **state)
{
    (void)state;
    struct job_counter j = job_of(SYNC_NONE, 12345, "");
    uint8_t out[64];
    uint32_t len = 0;
    assert_int_equal(worker_job(&j, sizeof(j), out, sizeof(out), &len), 0);
    assert_int_equal(len, sizeof(struct counter_tally) + sizeof(uint64_t));
    struct counter_tally t;
    uint64_t own;
    memcpy(&t, out, sizeof(t));
    memcpy(&own, out + sizeof(t), sizeof(own));
    assert_int_equal(t.count, 12345);
    assert_int_equal(own, 12345);
}

/* The run's segment: created, counted into by a job, unlinked. */
static void test_worker_segment(void **state)
{
    (void)state;
    struct counter_state st = {0};
    assert_int_equal(shm_create(&st), 0);
    assert_true(strncmp(st.shm, SHM_PREFIX, strlen(SHM_PREFIX)) == 0);
    for (int sync = SYNC_LOCK; sync <= SYNC_ATOMIC; sync++) {
        struct job_counter j = job_of((enum counter_sync)sync, 1000, st.shm);
        uint8_t out[64];
        uint32_t len = 0;
        assert_int_equal(worker_job(&j, sizeof(j), out, sizeof(out), &len), 0);
        assert_int_equal(len, sizeof(struct counter_tally));
    }
    assert_int_equal(atomic_load(&st.shared->value), 2000);
    munmap(st.shared, sizeof(*st.shared));
    assert_int_equal(shm_unlink(st.shm), 0);
}

/*
 * A process dies holding the segment's lock: the next job takes it over
 * (EOWNERDEAD), says so, and counts exactly; a plain mutex would hang it.
 */
static void test_robust_lock_taken_over(void **state)
{
    (void)state;
    struct counter_state st = {0};
    assert_int_equal(shm_create(&st), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct counter_shared *c = shm_attach(st.shm);
        if (!c || pthread_mutex_lock(&c->lock) != 0)
            _exit(1);
        atomic_store(&c->value, 7);
        _exit(0); /* dies holding the lock */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    struct job_counter j = job_of(SYNC_LOCK, 1000, st.shm);
    uint8_t out[64];
    uint32_t len = 0;
    assert_int_equal(worker_job(&j, sizeof(j), out, sizeof(out), &len), 0);
    struct counter_tally t;
    memcpy(&t, out, sizeof(t));
    assert_int_equal(t.recovered, 1);
    assert_int_equal(t.count, 1000);
    assert_int_equal(atomic_load(&st.shared->value), 1007);
    /* Consistent again: the next job takes it as usual. */
    assert_int_equal(worker_job(&j, sizeof(j), out, sizeof(out), &len), 0);
    memcpy(&t, out, sizeof(t));
    assert_int_equal(t.recovered, 0);
    assert_int_equal(atomic_load(&st.shared->value), 2007);
    munmap(st.shared, sizeof(*st.shared));
    assert_int_equal(shm_unlink(st.shm), 0);
}

static void test_worker_refusals(void **state)
{
    (void)state;
    uint8_t out[64];
    uint32_t len = 0;
    struct job_counter j = job_of(SYNC_LOCK, 10, "/not-a-counter");
    assert_int_equal(worker_job(&j, sizeof(j), out, sizeof(out), &len),
                     -EINVAL);
    j = job_of(SYNC_ATOMIC, 10, SHM_PREFIX "x/../y");
    assert_int_equal(worker_job(&j, sizeof(j), out, sizeof(out), &len),
                     -EINVAL);
    j = job_of(SYNC_LOCK, 10, SHM_PREFIX "0-0"); /* no such segment */
    assert_int_equal(worker_job(&j, sizeof(j), out, sizeof(out), &len),
                     -EINVAL);
    j = job_of(SYNCS, 10, "");
    assert_int_equal(worker_job(&j, sizeof(j), out, sizeof(out), &len),
                     -EINVAL);
    j = job_of(SYNC_NONE, INCREMENTS_MAX + 1, "");
    assert_int_equal(worker_job(&j, sizeof(j), out, sizeof(out), &len),
                     -EINVAL);
    j = job_of(SYNC_NONE, 10, "");
    assert_int_equal(worker_job(&j, sizeof(j) - 1, out, sizeof(out), &len),
                     -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count_up_alone),
        cmocka_unit_test(test_worker_own_memory),
        cmocka_unit_test(test_worker_segment),
        cmocka_unit_test(test_robust_lock_taken_over),
        cmocka_unit_test(test_worker_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
