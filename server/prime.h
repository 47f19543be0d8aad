/*
 * prime: the CPU-bound kernel of /run/prime and the way its work is split.
 *
 * The kernel is the tutorials' is_prime (2, then odd divisors up to the
 * square root). Its cost grows with n, so equal contiguous ranges leave
 * the last task most of the work; instead each task takes every T-th block
 * of a fixed even size (block-cyclic), which balances cost to well under a
 * percent while keeping one job per task. Pure functions; any thread; also
 * run inside worker processes.
 */
#ifndef CONLAB_PRIME_H
#define CONLAB_PRIME_H

#include <stdbool.h>
#include <stdint.h>

#define PRIME_BLOCKS_PER_TASK 64 /* at least, when the range allows */
#define PRIME_BLOCK_MAX       4096

/*
 * The numbers one task checks: the blocks [first + k*stride,
 * first + k*stride + block) for k = 0, 1, ..., cut at end.
 */
struct prime_span {
    uint64_t first;
    uint64_t end; /* exclusive */
    uint64_t block;
    uint64_t stride;
};

/* Called between blocks; a negative return stops the count with it. */
typedef int (*prime_yield_fn)(void *arg);

/* True when n is prime, by trial division. */
bool prime_is_prime(uint64_t n);

/*
 * Splits [1, limit) into tasks spans (tasks >= 1, limit >= 2) that cover
 * every number exactly once, in out[0..tasks).
 */
void prime_split(uint64_t limit, unsigned tasks, struct prime_span out[]);

/*
 * Counts the primes of span into *primes and the numbers checked into
 * *checked. yield (may be NULL) runs between blocks. Returns 0, or the
 * negative value yield returned (the counts then hold the partial work).
 */
int prime_count(const struct prime_span *span, prime_yield_fn yield,
                void *yield_arg, uint64_t *checked, uint64_t *primes);

#endif
