/*
 * Unit tests of server/fair.c: holds per client, kept sorted, bounded by
 * the capacity, and released back to nothing.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../server/fair.h"

static void test_hold_and_release(void **state)
{
    (void)state;
    struct fair f;
    assert_int_equal(fair_init(&f, 4), 0);
    assert_int_equal(fair_held(&f, 7), 0);
    assert_int_equal(fair_hold(&f, 7), 0);
    assert_int_equal(fair_hold(&f, 0), 0); /* anonymous is a client too */
    assert_int_equal(fair_hold(&f, UINT64_MAX), 0);
    assert_int_equal(fair_hold(&f, 7), 0);
    assert_int_equal(fair_held(&f, 7), 2);
    assert_int_equal(fair_held(&f, 0), 1);
    assert_int_equal(fair_held(&f, UINT64_MAX), 1);
    assert_int_equal(fair_held(&f, 8), 0);
    assert_int_equal(f.len, 3);
    for (size_t i = 1; i < f.len; i++)
        assert_true(f.entries[i - 1].client < f.entries[i].client);

    fair_release(&f, 7);
    assert_int_equal(fair_held(&f, 7), 1);
    fair_release(&f, 7);
    assert_int_equal(fair_held(&f, 7), 0);
    assert_int_equal(f.len, 2);
    fair_release(&f, 7); /* holds none: nothing */
    fair_release(&f, 12345);
    assert_int_equal(f.len, 2);
    assert_int_equal(fair_held(&f, 0), 1);
    assert_int_equal(fair_held(&f, UINT64_MAX), 1);
    fair_cleanup(&f);
    fair_cleanup(&f); /* twice is fine */
}

static void test_capacity(void **state)
{
    (void)state;
    struct fair f;
    assert_int_equal(fair_init(&f, 2), 0);
    assert_int_equal(fair_hold(&f, 5), 0);
    assert_int_equal(fair_hold(&f, 3), 0);
    /* A third client would need a third entry: refused, table intact. */
    assert_int_equal(fair_hold(&f, 4), -ENOSPC);
    assert_int_equal(fair_held(&f, 4), 0);
    assert_int_equal(fair_held(&f, 3), 1);
    assert_int_equal(fair_held(&f, 5), 1);
    fair_cleanup(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hold_and_release),
        cmocka_unit_test(test_capacity),
    };
    return cmocka_run_group_tests_name("fair", tests, NULL, NULL);
}
