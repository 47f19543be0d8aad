/*
 * Unit tests of server/waitfor.c: the cycle search of the wait-for graph,
 * on hand-made graphs with the cycle known (two tasks crossing, a cycle of
 * one, three tasks in a ring, a chain that ends, a task that only leads
 * into a cycle, a cycle longer than the output, bad indices).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../server/waitfor.h"

#define N WAITFOR_NONE

/* Two tasks, opposite order: 0 holds A waits B, 1 holds B waits A. */
static void test_two_crossing(void **state)
{
    (void)state;
    int holder[2] = {0, 1};
    int waits[2] = {1, 0};
    struct waitfor_edge e[4];
    assert_int_equal(waitfor_cycle(holder, 2, waits, 2, 0, e, 4), 2);
    assert_int_equal(e[0].task, 0);
    assert_int_equal(e[0].holds, 0);
    assert_int_equal(e[0].waits_for, 1);
    assert_int_equal(e[1].task, 1);
    assert_int_equal(e[1].holds, 1);
    assert_int_equal(e[1].waits_for, 0);
    /* From the other side, the same cycle starting at task 1. */
    assert_int_equal(waitfor_cycle(holder, 2, waits, 2, 1, e, 4), 2);
    assert_int_equal(e[0].task, 1);
    assert_int_equal(e[0].holds, 1);
    assert_int_equal(e[0].waits_for, 0);
    assert_int_equal(e[1].task, 0);
}

/* Same order: 0 holds A and waits for B that nobody holds (1 waits for A). */
static void test_same_order_no_cycle(void **state)
{
    (void)state;
    int holder[2] = {0, N};
    int waits[2] = {1, 0};
    struct waitfor_edge e[2];
    assert_int_equal(waitfor_cycle(holder, 2, waits, 2, 0, e, 2), 0);
    assert_int_equal(waitfor_cycle(holder, 2, waits, 2, 1, e, 2), 0);
}

static void test_nobody_waits(void **state)
{
    (void)state;
    int holder[2] = {0, 1};
    int waits[2] = {N, N};
    struct waitfor_edge e[2];
    assert_int_equal(waitfor_cycle(holder, 2, waits, 2, 0, e, 2), 0);
}

/* A task waiting for a lock it holds itself (a non-recursive relock). */
static void test_self_wait(void **state)
{
    (void)state;
    int holder[1] = {0};
    int waits[1] = {0};
    struct waitfor_edge e[1];
    assert_int_equal(waitfor_cycle(holder, 1, waits, 1, 0, e, 1), 1);
    assert_int_equal(e[0].task, 0);
    assert_int_equal(e[0].holds, 0);
    assert_int_equal(e[0].waits_for, 0);
}

/* Three tasks, three locks in a ring: t holds lock t, waits for t+1. */
static void test_ring_of_three(void **state)
{
    (void)state;
    int holder[3] = {0, 1, 2};
    int waits[3] = {1, 2, 0};
    struct waitfor_edge e[3];
    assert_int_equal(waitfor_cycle(holder, 3, waits, 3, 2, e, 3), 3);
    int tasks[3] = {2, 0, 1};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(e[i].task, tasks[i]);
        assert_int_equal(e[i].holds, tasks[i]);
        assert_int_equal(e[i].waits_for, (tasks[i] + 1) % 3);
    }
}

/* Task 2 waits for a lock of the 0-1 cycle: it is stuck, not in it. */
static void test_leads_into_cycle(void **state)
{
    (void)state;
    int holder[3] = {0, 1, N};
    int waits[3] = {1, 0, 0};
    struct waitfor_edge e[3];
    assert_int_equal(waitfor_cycle(holder, 3, waits, 3, 2, e, 3), 0);
    assert_int_equal(waitfor_cycle(holder, 3, waits, 3, 0, e, 3), 2);
}

/* A cycle longer than the room for it: its length, the first edges. */
static void test_cycle_longer_than_cap(void **state)
{
    (void)state;
    int holder[4] = {0, 1, 2, 3};
    int waits[4] = {1, 2, 3, 0};
    struct waitfor_edge e[2];
    assert_int_equal(waitfor_cycle(holder, 4, waits, 4, 0, e, 2), 4);
    assert_int_equal(e[0].task, 0);
    assert_int_equal(e[0].holds, 0);
    assert_int_equal(e[0].waits_for, 1);
    assert_int_equal(e[1].task, 1);
    assert_int_equal(e[1].holds, 1);
    assert_int_equal(e[1].waits_for, 2);
    assert_int_equal(waitfor_cycle(holder, 4, waits, 4, 0, NULL, 0), 4);
}

static void test_bad_indices(void **state)
{
    (void)state;
    int holder[2] = {0, 5};
    int waits[2] = {1, 7};
    struct waitfor_edge e[2];
    assert_int_equal(waitfor_cycle(holder, 2, waits, 2, 2, e, 2), -EINVAL);
    assert_int_equal(waitfor_cycle(holder, 2, waits, 2, -1, e, 2), -EINVAL);
    assert_int_equal(waitfor_cycle(holder, 2, waits, 2, 0, e, 2), -EINVAL);
    assert_int_equal(waitfor_cycle(holder, 2, waits, 2, 1, e, 2), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_crossing),
        cmocka_unit_test(test_same_order_no_cycle),
        cmocka_unit_test(test_nobody_waits),
        cmocka_unit_test(test_self_wait),
        cmocka_unit_test(test_ring_of_three),
        cmocka_unit_test(test_leads_into_cycle),
        cmocka_unit_test(test_cycle_longer_than_cap),
        cmocka_unit_test(test_bad_indices),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
