/*
 * fair: which clients hold a pool's workers, and how many each, so that
 * the pools (pool.c, tpool.c) can hand the next free worker to the client
 * holding the fewest.
 *
 * A client is a caller-chosen 64-bit key (a hash of the client's address;
 * 0 is "anonymous", one client like any other). The table is sorted by
 * key and never holds more entries than the pool has workers, so a lookup
 * is a binary search over at most that many entries and a change moves at
 * most that many.
 *
 * Not thread-safe: each pool guards its table with its own lock (or keeps
 * it on one thread).
 */
#ifndef CONLAB_FAIR_H
#define CONLAB_FAIR_H

#include <stddef.h>
#include <stdint.h>

struct fair_entry {
    uint64_t client;
    unsigned held;
};

/* Caller's memory: fair_init() / fair_cleanup(). */
struct fair {
    struct fair_entry *entries; /* sorted by client; held > 0 in each */
    size_t len, cap;
};

/*
 * Makes an empty table for at most cap holders (a pool's workers).
 * Returns 0 or -ENOMEM.
 */
int fair_init(struct fair *f, size_t cap);

/* Frees the table's memory; a zeroed or cleaned-up table is fine too. */
void fair_cleanup(struct fair *f);

/*
 * One more worker held by client. Returns 0, or -ENOSPC when that would
 * make more holds than cap (a caller's bug: the table is unchanged).
 */
int fair_hold(struct fair *f, uint64_t client);

/* One worker fewer held by client; nothing when it holds none. */
void fair_release(struct fair *f, uint64_t client);

/* How many workers client holds (0 when none). */
unsigned fair_held(const struct fair *f, uint64_t client);

#endif
