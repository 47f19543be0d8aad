/*
 * Unit tests of server/prime.c: the kernel against known prime counts,
 * its edges, and the splitter (exact cover, balanced cost).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../server/prime.h"

static uint64_t count_all(uint64_t limit, unsigned tasks)
{
    struct prime_span spans[256];
    uint64_t total = 0, checked_total = 0;
    prime_split(limit, tasks, spans);
    for (unsigned i = 0; i < tasks; i++) {
        uint64_t checked, primes;
        assert_int_equal(prime_count(&spans[i], NULL, NULL, &checked, &primes),
                         0);
        total += primes;
        checked_total += checked;
    }
    assert_int_equal(checked_total, limit - 1);
    return total;
}

static void test_is_prime(void **state)
{
    (void)state;
    assert_false(prime_is_prime(0));
    assert_false(prime_is_prime(1));
    assert_true(prime_is_prime(2));
    assert_true(prime_is_prime(3));
    assert_false(prime_is_prime(4));
    assert_false(prime_is_prime(9));
    assert_false(prime_is_prime(25));
    assert_true(prime_is_prime(7919));
    assert_false(prime_is_prime(7919ull * 7907ull));
    assert_true(prime_is_prime(2147483647ull));
}

/* pi(x) counts primes <= x; [1, limit) holds the primes < limit. */
static void test_known_counts(void **state)
{
    (void)state;
    assert_int_equal(count_all(11, 1), 4);       /* pi(10) */
    assert_int_equal(count_all(101, 3), 25);     /* pi(100) */
    assert_int_equal(count_all(10001, 2), 1229); /* pi(10^4) */
    assert_int_equal(count_all(100001, 4), 9592);
    assert_int_equal(count_all(1000001, 7), 78498);
}

static void test_edges(void **state)
{
    (void)state;
    assert_int_equal(count_all(2, 1), 0); /* only 1 */
    assert_int_equal(count_all(3, 1), 1); /* 1, 2 */
    assert_int_equal(count_all(3, 4), 1); /* more tasks than numbers */
    assert_int_equal(count_all(2, 256), 0);
}

/* Every number of [1, limit) is checked by exactly one task. */
static void test_split_covers_once(void **state)
{
    (void)state;
    const uint64_t limits[] = {2, 3, 10, 999, 4097, 100000, 1234567};
    const unsigned tasks[] = {1, 2, 3, 7, 64, 256};
    for (size_t l = 0; l < sizeof(limits) / sizeof(*limits); l++) {
        for (size_t t = 0; t < sizeof(tasks) / sizeof(*tasks); t++) {
            uint64_t limit = limits[l];
            unsigned n = tasks[t];
            struct prime_span spans[256];
            uint8_t *seen = calloc(limit, 1);
            assert_non_null(seen);
            prime_split(limit, n, spans);
            for (unsigned i = 0; i < n; i++) {
                const struct prime_span *s = &spans[i];
                assert_true(s->block >= 2 && s->block % 2 == 0);
                for (uint64_t lo = s->first; lo < s->end; lo += s->stride)
                    for (uint64_t x = lo; x < lo + s->block && x < s->end; x++)
                        seen[x]++;
            }
            for (uint64_t x = 1; x < limit; x++)
                assert_int_equal(seen[x], 1);
            free(seen);
        }
    }
}

/* The estimated cost (primes cost sqrt(n)/2 divisions, the rest little)
 * of each task is within 2% of the mean for the default request shapes. */
static void test_split_balanced(void **state)
{
    (void)state;
    const uint64_t limit = 2000000;
    for (unsigned n = 2; n <= 8; n *= 2) {
        struct prime_span spans[8];
        double cost[8] = {0}, mean = 0;
        prime_split(limit, n, spans);
        for (unsigned i = 0; i < n; i++) {
            const struct prime_span *s = &spans[i];
            for (uint64_t lo = s->first; lo < s->end; lo += s->stride)
                for (uint64_t x = lo; x < lo + s->block && x < s->end; x++)
                    cost[i] += prime_is_prime(x) ? sqrt((double)x) / 2 : 1;
            mean += cost[i] / n;
        }
        for (unsigned i = 0; i < n; i++)
            assert_true(fabs(cost[i] - mean) / mean < 0.02);
    }
}

static int stop_after_two(void *arg)
{
    int *calls = arg;
    return ++*calls >= 2 ? -99 : 0;
}

static void test_yield_stops(void **state)
{
    (void)state;
    struct prime_span span;
    uint64_t checked, primes;
    int calls = 0;
    prime_split(1000000, 1, &span);
    assert_int_equal(
        prime_count(&span, stop_after_two, &calls, &checked, &primes), -99);
    assert_int_equal(calls, 2);
    assert_int_equal(checked, 2 * span.block);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_is_prime),
        cmocka_unit_test(test_known_counts),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_split_covers_once),
        cmocka_unit_test(test_split_balanced),
        cmocka_unit_test(test_yield_stops),
    };
    return cmocka_run_group_tests_name("prime", tests, NULL, NULL);
}
