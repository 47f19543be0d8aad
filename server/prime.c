/*
 * prime: see prime.h.
 */
#include "prime.h"

bool prime_is_prime(uint64_t n)
{
    if (n <= 1)
        return false;
    if (n == 2)
        return true;
    if (n % 2 == 0)
        return false;
    for (uint64_t d = 3; d <= n / d; d += 2) {
        if (n % d == 0)
            return false;
    }
    return true;
}

void prime_split(uint64_t limit, unsigned tasks, struct prime_span out[])
{
    uint64_t range = limit > 1 ? limit - 1 : 0;
    uint64_t want = (uint64_t)tasks * PRIME_BLOCKS_PER_TASK;
    uint64_t block = (range + want - 1) / want;

    /* Even blocks hold as many odd numbers as even ones, so no task gets
     * all the cheap even numbers. */
    block += block % 2;
    if (block < 2)
        block = 2;
    if (block > PRIME_BLOCK_MAX)
        block = PRIME_BLOCK_MAX;

    for (unsigned i = 0; i < tasks; i++) {
        out[i].first = 1 + (uint64_t)i * block;
        out[i].end = limit;
        out[i].block = block;
        out[i].stride = (uint64_t)tasks * block;
    }
}

int prime_count(const struct prime_span *span, prime_yield_fn yield,
                void *yield_arg, uint64_t *checked, uint64_t *primes)
{
    uint64_t n_checked = 0, n_primes = 0;
    int rc = 0;

    for (uint64_t lo = span->first; lo < span->end; lo += span->stride) {
        uint64_t hi = lo + span->block;
        if (hi > span->end)
            hi = span->end;
        for (uint64_t n = lo; n < hi; n++)
            n_primes += prime_is_prime(n);
        n_checked += hi - lo;
        if (yield) {
            rc = yield(yield_arg);
            if (rc < 0)
                break;
        }
        if (span->end - lo <= span->stride)
            break; /* the next block would start past end (and overflow) */
    }
    *checked = n_checked;
    *primes = n_primes;
    return rc;
}
