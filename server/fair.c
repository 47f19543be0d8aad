/*
 * fair: see fair.h. A sorted array rather than a hash table: it holds at
 * most one entry per worker (a few, or a few hundred), and a binary search
 * over it is cheap and needs no allocation after fair_init().
 */
#include "fair.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static size_t find(const struct fair *f, uint64_t client);

int fair_init(struct fair *f, size_t cap)
{
    f->len = 0;
    f->cap = cap;
    f->entries = calloc(cap ? cap : 1, sizeof(*f->entries));
    return f->entries ? 0 : -ENOMEM;
}

void fair_cleanup(struct fair *f)
{
    free(f->entries);
    f->entries = NULL;
    f->len = f->cap = 0;
}

int fair_hold(struct fair *f, uint64_t client)
{
    size_t i = find(f, client);
    if (i < f->len && f->entries[i].client == client) {
        f->entries[i].held++;
        return 0;
    }
    /* A new holder: each entry holds one worker at least, so cap holds
     * fit in cap entries. */
    if (f->len == f->cap)
        return -ENOSPC;
    memmove(&f->entries[i + 1], &f->entries[i],
            (f->len - i) * sizeof(f->entries[0]));
    f->entries[i].client = client;
    f->entries[i].held = 1;
    f->len++;
    return 0;
}

void fair_release(struct fair *f, uint64_t client)
{
    size_t i = find(f, client);
    if (i == f->len || f->entries[i].client != client)
        return;
    if (--f->entries[i].held > 0)
        return;
    memmove(&f->entries[i], &f->entries[i + 1],
            (f->len - i - 1) * sizeof(f->entries[0]));
    f->len--;
}

unsigned fair_held(const struct fair *f, uint64_t client)
{
    size_t i = find(f, client);
    return i < f->len && f->entries[i].client == client ? f->entries[i].held
                                                        : 0;
}

/* The index of client's entry, or where it would go. */
static size_t find(const struct fair *f, uint64_t client)
{
    size_t lo = 0, hi = f->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->entries[mid].client < client)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}
