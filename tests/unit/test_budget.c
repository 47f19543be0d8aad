/*
 * Unit tests of server/budget.c: admission by cost against global budgets
 * and a per-client share, release, client keys, tokens and the metrics
 * text, with exact values; and a multi-threaded stress that must end with
 * nothing held (run it under TSan).
 *
 * Most tests use the fixture's budget (small_limits(): tasks 10, timers
 * 100, transfers 4, queue 3, bytes 1000, a 50% share, 4 clients at most);
 * its teardown checks that the test released everything it acquired.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <cmocka.h>

#include "../../server/budget.h"
#include "../../server/config.h"

static void small_limits(struct budget_limits *l);
static int setup_budget(void **state);
static int teardown_budget(void **state);
static struct budget_client v4(const char *text);
static struct budget_client v6(const char *text);
static struct budget_cost one(enum budget_kind k, uint64_t amount);
static void expect_used(struct budget *b, uint64_t tasks, uint64_t timers,
                        uint64_t transfers, uint64_t queue, uint64_t bytes);

static void small_limits(struct budget_limits *l)
{
    memset(l, 0, sizeof(*l));
    l->limit[BUDGET_TASKS] = 10;
    l->limit[BUDGET_TIMERS] = 100;
    l->limit[BUDGET_TRANSFERS] = 4;
    l->limit[BUDGET_QUEUE] = 3;
    l->limit[BUDGET_BYTES] = 1000;
    l->client_share_pct = 50;
    l->clients_max = 4;
}

static int setup_budget(void **state)
{
    struct budget_limits l;
    small_limits(&l);
    struct budget *b = budget_new(&l);
    if (!b)
        return -1;
    *state = b;
    return 0;
}

static int teardown_budget(void **state)
{
    struct budget *b = *state;
    struct budget_usage u;
    int rc = 0;

    budget_stats(b, &u);
    for (int k = 0; k < BUDGET_KINDS; k++) {
        if (u.used[k] != 0)
            rc = -1;
    }
    if (u.clients != 0)
        rc = -1;
    budget_free(b);
    return rc;
}

static struct budget_client v4(const char *text)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    struct budget_client c;
    assert_int_equal(inet_pton(AF_INET, text, &sin.sin_addr), 1);
    assert_int_equal(
        budget_client_from_sockaddr((const struct sockaddr *)&sin, &c), 0);
    return c;
}

static struct budget_client v6(const char *text)
{
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
    struct budget_client c;
    assert_int_equal(inet_pton(AF_INET6, text, &sin6.sin6_addr), 1);
    assert_int_equal(
        budget_client_from_sockaddr((const struct sockaddr *)&sin6, &c), 0);
    return c;
}

static struct budget_cost one(enum budget_kind k, uint64_t amount)
{
    struct budget_cost cost = {{0}};
    cost.amount[k] = amount;
    return cost;
}

static void expect_used(struct budget *b, uint64_t tasks, uint64_t timers,
                        uint64_t transfers, uint64_t queue, uint64_t bytes)
{
    struct budget_usage u;
    budget_stats(b, &u);
    assert_int_equal(u.used[BUDGET_TASKS], tasks);
    assert_int_equal(u.used[BUDGET_TIMERS], timers);
    assert_int_equal(u.used[BUDGET_TRANSFERS], transfers);
    assert_int_equal(u.used[BUDGET_QUEUE], queue);
    assert_int_equal(u.used[BUDGET_BYTES], bytes);
}

static uint64_t clients_of(struct budget *b)
{
    struct budget_usage u;
    budget_stats(b, &u);
    return u.clients;
}

static uint64_t rejected_of(struct budget *b, enum budget_reject r)
{
    struct budget_usage u;
    budget_stats(b, &u);
    return u.rejected[r];
}

/* ---- names and construction ---- */

static void names(void **state)
{
    (void)state;
    assert_string_equal(budget_names[BUDGET_TASKS], "tasks");
    assert_string_equal(budget_names[BUDGET_TIMERS], "timers");
    assert_string_equal(budget_names[BUDGET_TRANSFERS], "transfers");
    assert_string_equal(budget_names[BUDGET_QUEUE], "queue");
    assert_string_equal(budget_names[BUDGET_BYTES], "bytes");
    assert_string_equal(budget_names[BUDGET_SPAWNS], "spawns");
    assert_string_equal(budget_reject_names[BUDGET_REJECT_BUSY], "busy");
    assert_string_equal(budget_reject_names[BUDGET_REJECT_CLIENT_SHARE],
                        "client_share");
    assert_string_equal(budget_reject_names[BUDGET_REJECT_TOO_LARGE],
                        "too_large");
}

static void new_rejects_bad_limits(void **state)
{
    struct budget_limits l;

    (void)state;
    small_limits(&l);
    l.client_share_pct = 0;
    errno = 0;
    assert_null(budget_new(&l));
    assert_int_equal(errno, EINVAL);
    l.client_share_pct = 101;
    assert_null(budget_new(&l));
    small_limits(&l);
    l.clients_max = 0;
    assert_null(budget_new(&l));
    assert_null(budget_new(NULL));
    budget_free(NULL); /* does nothing */
}

/* ---- the share: ceil(limit * pct / 100), at least 1 ---- */

static void expect_share(uint64_t limit, unsigned pct, uint64_t expected)
{
    struct budget_limits l;
    struct budget_usage u;

    small_limits(&l);
    l.limit[BUDGET_BYTES] = limit;
    l.client_share_pct = pct;
    struct budget *b = budget_new(&l);
    assert_non_null(b);
    budget_stats(b, &u);
    budget_free(b);
    if (u.client_limit[BUDGET_BYTES] != expected ||
        u.limit[BUDGET_BYTES] != limit)
        fail_msg("share of %llu at %u%%: %llu, wanted %llu",
                 (unsigned long long)limit, pct,
                 (unsigned long long)u.client_limit[BUDGET_BYTES],
                 (unsigned long long)expected);
}

static void share_rounding(void **state)
{
    (void)state;
    expect_share(10, 50, 5);
    expect_share(3, 50, 2); /* 1.5 up */
    expect_share(1, 50, 1); /* 0.5 up */
    expect_share(10, 1, 1); /* 0.1 up */
    expect_share(1000, 1, 10);
    expect_share(101, 33, 34); /* 33.33 up */
    expect_share(100, 33, 33);
    expect_share(7, 100, 7);
    expect_share(1, 1, 1);
    expect_share(0, 50, 0); /* never more than the budget */
    expect_share(UINT64_MAX, 50, 9223372036854775808ull);
    expect_share(UINT64_MAX, 100, UINT64_MAX);
    expect_share(100663296, 50, 50331648);
}

static void share_per_kind(void **state)
{
    struct budget_usage u;

    budget_stats(*state, &u);
    assert_int_equal(u.limit[BUDGET_TASKS], 10);
    assert_int_equal(u.limit[BUDGET_QUEUE], 3);
    assert_int_equal(u.client_limit[BUDGET_TASKS], 5);
    assert_int_equal(u.client_limit[BUDGET_TIMERS], 50);
    assert_int_equal(u.client_limit[BUDGET_TRANSFERS], 2);
    assert_int_equal(u.client_limit[BUDGET_QUEUE], 2);
    assert_int_equal(u.client_limit[BUDGET_BYTES], 500);
    assert_int_equal(u.clients, 0);
}

/* ---- admission ---- */

static void admits_up_to_the_budget(void **state)
{
    struct budget *b = *state;
    struct budget_client a = v4("10.0.0.1"), c = v4("10.0.0.2"),
                         d = v4("10.0.0.3");
    struct budget_claim ca[5], cc, cd;
    struct budget_cost cost = one(BUDGET_TASKS, 1);
    enum budget_kind which = BUDGET_BYTES;

    /* One task at a time up to a's share (5). */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(budget_acquire(b, &a, &cost, &ca[i], &which), 0);
        assert_true(ca[i].held);
        assert_ptr_equal(ca[i].budget, b);
        assert_memory_equal(&ca[i].client, &a, sizeof(a));
        assert_int_equal(ca[i].cost.amount[BUDGET_TASKS], 1);
    }
    assert_int_equal(which, BUDGET_BYTES); /* untouched on success */
    expect_used(b, 5, 0, 0, 0, 0);
    assert_int_equal(clients_of(b), 1);

    /* The sixth is past a's share: -EAGAIN, client_share. */
    assert_int_equal(budget_acquire(b, &a, &cost, &cc, &which), -EAGAIN);
    assert_int_equal(which, BUDGET_TASKS);
    assert_false(cc.held);
    assert_int_equal(rejected_of(b, BUDGET_REJECT_CLIENT_SHARE), 1);

    /* c takes the other half of the budget at once. */
    struct budget_cost five = one(BUDGET_TASKS, 5);
    assert_int_equal(budget_acquire(b, &c, &five, &cc, &which), 0);
    expect_used(b, 10, 0, 0, 0, 0);
    assert_int_equal(clients_of(b), 2);

    /* The budget is full: d, holding nothing, is refused as busy. */
    which = BUDGET_BYTES;
    assert_int_equal(budget_acquire(b, &d, &cost, &cd, &which), -EAGAIN);
    assert_int_equal(which, BUDGET_TASKS);
    assert_false(cd.held);
    assert_int_equal(rejected_of(b, BUDGET_REJECT_BUSY), 1);
    assert_int_equal(rejected_of(b, BUDGET_REJECT_CLIENT_SHARE), 1);
    assert_int_equal(rejected_of(b, BUDGET_REJECT_TOO_LARGE), 0);
    assert_int_equal(clients_of(b), 2); /* a refusal adds no entry */
    expect_used(b, 10, 0, 0, 0, 0);

    /* One task back: d fits now. */
    budget_release(&ca[0]);
    assert_int_equal(budget_acquire(b, &d, &cost, &cd, NULL), 0);
    assert_int_equal(clients_of(b), 3);
    expect_used(b, 10, 0, 0, 0, 0);

    for (int i = 1; i < 5; i++)
        budget_release(&ca[i]);
    budget_release(&cc);
    budget_release(&cd);
    expect_used(b, 0, 0, 0, 0, 0);
}

static void too_large(void **state)
{
    struct budget *b = *state;
    struct budget_client a = v4("10.0.0.1");
    struct budget_claim claim, full;
    enum budget_kind which;

    /* Larger than the whole budget. */
    struct budget_cost cost = one(BUDGET_TASKS, 11);
    assert_int_equal(budget_acquire(b, &a, &cost, &claim, &which), -E2BIG);
    assert_int_equal(which, BUDGET_TASKS);
    assert_false(claim.held);
    /* Within the budget but larger than one client's share. */
    cost = one(BUDGET_TASKS, 6);
    assert_int_equal(budget_acquire(b, &a, &cost, &claim, &which), -E2BIG);
    assert_int_equal(which, BUDGET_TASKS);
    cost = one(BUDGET_QUEUE, 3);
    assert_int_equal(budget_acquire(b, &a, &cost, &claim, &which), -E2BIG);
    assert_int_equal(which, BUDGET_QUEUE);
    /* The first budget that can never fit is named. */
    cost = one(BUDGET_TASKS, 1);
    cost.amount[BUDGET_TRANSFERS] = 3;
    cost.amount[BUDGET_BYTES] = 501;
    assert_int_equal(budget_acquire(b, &a, &cost, &claim, &which), -E2BIG);
    assert_int_equal(which, BUDGET_TRANSFERS);
    assert_int_equal(rejected_of(b, BUDGET_REJECT_TOO_LARGE), 4);
    assert_int_equal(clients_of(b), 0);
    expect_used(b, 0, 0, 0, 0, 0);

    /* -E2BIG wins over -EAGAIN while the client's share is full. */
    struct budget_cost share = one(BUDGET_TASKS, 5);
    assert_int_equal(budget_acquire(b, &a, &share, &full, NULL), 0);
    cost = one(BUDGET_TASKS, 1);
    cost.amount[BUDGET_BYTES] = 501;
    assert_int_equal(budget_acquire(b, &a, &cost, &claim, &which), -E2BIG);
    assert_int_equal(which, BUDGET_BYTES);
    assert_int_equal(rejected_of(b, BUDGET_REJECT_TOO_LARGE), 5);
    assert_int_equal(rejected_of(b, BUDGET_REJECT_CLIENT_SHARE), 0);
    /* Exactly the share still fits for a second client. */
    struct budget_client c = v4("10.0.0.2");
    struct budget_claim cc;
    cost = one(BUDGET_BYTES, 500);
    cost.amount[BUDGET_TASKS] = 5;
    assert_int_equal(budget_acquire(b, &c, &cost, &cc, &which), 0);
    expect_used(b, 10, 0, 0, 0, 500);
    budget_release(&cc);
    budget_release(&full);
}

static void which_names_the_first_refusal(void **state)
{
    struct budget *b = *state;
    struct budget_client a = v4("10.0.0.1");
    struct budget_claim held, claim;
    enum budget_kind which;

    struct budget_cost queue = one(BUDGET_QUEUE, 2);
    queue.amount[BUDGET_BYTES] = 500;
    assert_int_equal(budget_acquire(b, &a, &queue, &held, NULL), 0);
    /* Tasks and timers fit; the queue share is full first. */
    struct budget_cost cost = one(BUDGET_TASKS, 1);
    cost.amount[BUDGET_TIMERS] = 1;
    cost.amount[BUDGET_QUEUE] = 1;
    cost.amount[BUDGET_BYTES] = 1;
    assert_int_equal(budget_acquire(b, &a, &cost, &claim, &which), -EAGAIN);
    assert_int_equal(which, BUDGET_QUEUE);
    assert_int_equal(rejected_of(b, BUDGET_REJECT_CLIENT_SHARE), 1);
    /* Nothing of the refused cost was taken. */
    expect_used(b, 0, 0, 0, 2, 500);
    budget_release(&held);
}

static void two_clients_within_the_global_limit(void **state)
{
    struct budget_limits l;
    struct budget_claim ca, cb, cc, extra;
    struct budget_client a = v4("10.0.0.1"), c = v4("10.0.0.2"),
                         d = v6("2001:db8::7");
    enum budget_kind which;

    (void)state;
    small_limits(&l);
    l.client_share_pct = 40; /* tasks: 4 each of 10 */
    struct budget *b = budget_new(&l);
    assert_non_null(b);

    struct budget_cost four = one(BUDGET_TASKS, 4);
    assert_int_equal(budget_acquire(b, &a, &four, &ca, NULL), 0);
    assert_int_equal(budget_acquire(b, &c, &four, &cb, NULL), 0);
    /* Each is at its share: one more is refused for the client. */
    struct budget_cost unit = one(BUDGET_TASKS, 1);
    assert_int_equal(budget_acquire(b, &a, &unit, &extra, &which), -EAGAIN);
    assert_int_equal(budget_acquire(b, &c, &unit, &extra, &which), -EAGAIN);
    assert_int_equal(rejected_of(b, BUDGET_REJECT_CLIENT_SHARE), 2);
    /* d's share would allow 3, but only 2 are left in the budget. */
    struct budget_cost three = one(BUDGET_TASKS, 3);
    assert_int_equal(budget_acquire(b, &d, &three, &cc, &which), -EAGAIN);
    assert_int_equal(which, BUDGET_TASKS);
    assert_int_equal(rejected_of(b, BUDGET_REJECT_BUSY), 1);
    struct budget_cost two = one(BUDGET_TASKS, 2);
    assert_int_equal(budget_acquire(b, &d, &two, &cc, &which), 0);
    expect_used(b, 10, 0, 0, 0, 0);
    assert_int_equal(clients_of(b), 3);

    budget_release(&ca);
    budget_release(&cb);
    budget_release(&cc);
    expect_used(b, 0, 0, 0, 0, 0);
    assert_int_equal(clients_of(b), 0);
    budget_free(b);
}

/* ---- release ---- */

static void release_restores_exact_counts(void **state)
{
    struct budget *b = *state;
    struct budget_client a = v4("10.0.0.1"), c = v6("::1");
    struct budget_claim c1, c2, c3, zeroed;

    struct budget_cost cost1 = {{3, 20, 1, 1, 100}};
    struct budget_cost cost2 = {{2, 30, 1, 1, 400}};
    struct budget_cost cost3 = {{4, 7, 2, 0, 9}};
    assert_int_equal(budget_acquire(b, &a, &cost1, &c1, NULL), 0);
    assert_int_equal(budget_acquire(b, &a, &cost2, &c2, NULL), 0);
    assert_int_equal(budget_acquire(b, &c, &cost3, &c3, NULL), 0);
    expect_used(b, 9, 57, 4, 2, 509);
    assert_int_equal(clients_of(b), 2);

    budget_release(&c1);
    assert_false(c1.held);
    expect_used(b, 6, 37, 3, 1, 409);
    assert_int_equal(clients_of(b), 2); /* a still holds c2 */

    /* Again: nothing. */
    budget_release(&c1);
    expect_used(b, 6, 37, 3, 1, 409);
    /* A zeroed claim: nothing. */
    memset(&zeroed, 0, sizeof(zeroed));
    budget_release(&zeroed);
    expect_used(b, 6, 37, 3, 1, 409);

    budget_release(&c2);
    expect_used(b, 4, 7, 2, 0, 9);
    assert_int_equal(clients_of(b), 1); /* a's entry is gone */
    /* a's whole share is free again. */
    struct budget_cost share = {{5, 50, 2, 2, 500}};
    assert_int_equal(budget_acquire(b, &a, &share, &c1, NULL), 0);
    expect_used(b, 9, 57, 4, 2, 509);
    budget_release(&c1);
    budget_release(&c3);
    budget_release(&c3);
    expect_used(b, 0, 0, 0, 0, 0);
    assert_int_equal(clients_of(b), 0);
}

/* budget_changes() counts every release of the lock but the stats
 * reader's: an acquire and a release each move it, a read does not. */
static void changes_count_what_may_change(void **state)
{
    struct budget *b = *state;
    struct budget_client a = v4("10.0.0.1");
    struct budget_claim c1;
    struct budget_usage u;
    struct budget_cost cost = {{1, 1, 1, 1, 1}};

    uint64_t before = budget_changes(b);
    budget_stats(b, &u);
    assert_int_equal(budget_changes(b), before);
    assert_int_equal(budget_acquire(b, &a, &cost, &c1, NULL), 0);
    uint64_t acquired = budget_changes(b);
    assert_true(acquired > before);
    budget_stats(b, &u);
    assert_int_equal(budget_changes(b), acquired);
    budget_release(&c1);
    assert_true(budget_changes(b) > acquired);
}

static void zero_cost_always_admitted(void **state)
{
    struct budget *b = *state;
    struct budget_client a = v4("10.0.0.1"), c = v4("10.0.0.2");
    struct budget_claim full_a, full_c, zero;
    struct budget_cost nothing = {{0}};
    enum budget_kind which = BUDGET_QUEUE;

    struct budget_cost half = {{5, 50, 2, 2, 500}};
    struct budget_cost rest = {{5, 50, 2, 1, 500}};
    assert_int_equal(budget_acquire(b, &a, &half, &full_a, NULL), 0);
    assert_int_equal(budget_acquire(b, &c, &rest, &full_c, NULL), 0);
    assert_int_equal(budget_acquire(b, &a, &nothing, &zero, &which), 0);
    assert_true(zero.held);
    assert_int_equal(which, BUDGET_QUEUE);
    assert_int_equal(clients_of(b), 2);
    budget_release(&zero);
    budget_release(&full_a);
    /* A zero cost adds no client entry. */
    struct budget_client d = v4("10.0.0.3");
    assert_int_equal(budget_acquire(b, &d, &nothing, &zero, NULL), 0);
    assert_int_equal(clients_of(b), 1);
    budget_release(&zero);
    budget_release(&full_c);
    assert_int_equal(clients_of(b), 0);
    struct budget_usage u;
    budget_stats(b, &u);
    for (int r = 0; r < BUDGET_REJECTS; r++)
        assert_int_equal(u.rejected[r], 0);
}

static void clients_max_bounds_the_table(void **state)
{
    struct budget_limits l;
    struct budget_client a = v4("10.0.0.1"), c = v4("10.0.0.2"),
                         d = v4("10.0.0.3");
    struct budget_claim ca, cc, cd, more;
    enum budget_kind which;

    (void)state;
    small_limits(&l);
    l.clients_max = 2;
    struct budget *b = budget_new(&l);
    assert_non_null(b);
    struct budget_cost unit = one(BUDGET_TASKS, 1);
    assert_int_equal(budget_acquire(b, &a, &unit, &ca, NULL), 0);
    assert_int_equal(budget_acquire(b, &c, &unit, &cc, NULL), 0);
    /* A third address: busy, naming the first budget its cost asks for. */
    struct budget_cost cost = one(BUDGET_TIMERS, 1);
    cost.amount[BUDGET_BYTES] = 1;
    assert_int_equal(budget_acquire(b, &d, &cost, &cd, &which), -EAGAIN);
    assert_int_equal(which, BUDGET_TIMERS);
    assert_int_equal(rejected_of(b, BUDGET_REJECT_BUSY), 1);
    /* Clients that hold something may still take more. */
    assert_int_equal(budget_acquire(b, &a, &cost, &more, NULL), 0);
    assert_int_equal(clients_of(b), 2);
    budget_release(&more);
    budget_release(&ca);
    assert_int_equal(clients_of(b), 1);
    assert_int_equal(budget_acquire(b, &d, &cost, &cd, NULL), 0);
    assert_int_equal(clients_of(b), 2);
    budget_release(&cc);
    budget_release(&cd);
    assert_int_equal(clients_of(b), 0);
    budget_free(b);
}

/*
 * Many addresses in one table, entries removed in a scattered order: every
 * remaining client must still be found (its share stays full) and every
 * removed one must be gone (its share is free). This checks the table's
 * removal, which moves entries back.
 */
static void many_clients_found_after_removals(void **state)
{
    enum { N = 1000, FULL = 50 };
    struct budget_limits l;
    static struct budget_claim claims[N];
    struct budget_claim extra;
    enum budget_kind which;

    (void)state;
    small_limits(&l);
    l.limit[BUDGET_TASKS] = 10000;
    l.client_share_pct = 1; /* 100 tasks each */
    l.clients_max = N;
    struct budget *b = budget_new(&l);
    assert_non_null(b);
    struct budget_cost share = one(BUDGET_TASKS, 100);
    struct budget_cost unit = one(BUDGET_TASKS, 1);
    struct budget_client c[N];
    for (int i = 0; i < N; i++) {
        memset(&c[i], 0, sizeof(c[i]));
        c[i].addr[0] = 0x20;
        c[i].addr[1] = 0x01;
        c[i].addr[14] = (uint8_t)(i >> 8);
        c[i].addr[15] = (uint8_t)i;
    }
    /* The first FULL clients hold their whole share, the others 1. */
    for (int i = 0; i < FULL; i++)
        assert_int_equal(budget_acquire(b, &c[i], &share, &claims[i], NULL), 0);
    for (int i = FULL; i < N; i++)
        assert_int_equal(budget_acquire(b, &c[i], &unit, &claims[i], NULL), 0);
    assert_int_equal(clients_of(b), N);
    expect_used(b, FULL * 100 + (N - FULL), 0, 0, 0, 0);

    /* Release every third client, in a scattered order. */
    for (int i = 0; i < N; i++) {
        int j = (i * 7) % N;
        if (j % 3 == 0)
            budget_release(&claims[j]);
    }
    assert_int_equal(clients_of(b), N - (N + 2) / 3);
    for (int i = 0; i < FULL; i++) {
        int rc = budget_acquire(b, &c[i], &share, &extra, &which);
        if (i % 3 == 0) {
            /* Gone: its whole share is free again. */
            assert_int_equal(rc, 0);
            budget_release(&extra);
        } else {
            /* Still there, at its share. */
            assert_int_equal(rc, -EAGAIN);
            assert_int_equal(which, BUDGET_TASKS);
        }
    }
    for (int i = 0; i < N; i++)
        budget_release(&claims[i]);
    assert_int_equal(clients_of(b), 0);
    expect_used(b, 0, 0, 0, 0, 0);
    budget_free(b);
}

/* ---- client keys ---- */

static void ipv4_is_v4_mapped(void **state)
{
    struct budget *b = *state;
    struct budget_client plain = v4("127.0.0.1");
    struct budget_client mapped = v6("::ffff:127.0.0.1");
    struct budget_client loop6 = v6("::1");
    static const uint8_t expected[16] = {0, 0, 0,    0,    0,   0, 0, 0,
                                         0, 0, 0xff, 0xff, 127, 0, 0, 1};
    struct budget_claim c1, c2, c3;
    enum budget_kind which;

    assert_memory_equal(plain.addr, expected, 16);
    assert_memory_equal(plain.addr, mapped.addr, 16);
    assert_memory_not_equal(plain.addr, loop6.addr, 16);

    /* The same client, by either key: one share. */
    struct budget_cost share = one(BUDGET_TASKS, 5);
    struct budget_cost unit = one(BUDGET_TASKS, 1);
    assert_int_equal(budget_acquire(b, &plain, &share, &c1, NULL), 0);
    assert_int_equal(budget_acquire(b, &mapped, &unit, &c2, &which), -EAGAIN);
    assert_int_equal(which, BUDGET_TASKS);
    assert_int_equal(rejected_of(b, BUDGET_REJECT_CLIENT_SHARE), 1);
    /* ::1 is another client with a share of its own. */
    assert_int_equal(budget_acquire(b, &loop6, &share, &c3, NULL), 0);
    assert_int_equal(clients_of(b), 2);
    budget_release(&c1);
    budget_release(&c3);
}

static void other_families_refused(void **state)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct budget_client c;

    (void)state;
    assert_int_equal(
        budget_client_from_sockaddr((const struct sockaddr *)&sun, &c),
        -EAFNOSUPPORT);
    assert_int_equal(budget_client_from_sockaddr(NULL, &c), -EAFNOSUPPORT);
}

static void client_text(void **state)
{
    char text[INET6_ADDRSTRLEN];
    struct budget_client c;

    (void)state;
    c = v4("127.0.0.1");
    budget_client_text(&c, text, sizeof(text));
    assert_string_equal(text, "127.0.0.1");
    c = v6("::ffff:10.1.2.3");
    budget_client_text(&c, text, sizeof(text));
    assert_string_equal(text, "10.1.2.3");
    c = v6("::1");
    budget_client_text(&c, text, sizeof(text));
    assert_string_equal(text, "::1");
    c = v6("2001:db8::a:b");
    budget_client_text(&c, text, sizeof(text));
    assert_string_equal(text, "2001:db8::a:b");
    c = v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    budget_client_text(&c, text, sizeof(text));
    assert_string_equal(text, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    /* Truncated, always terminated. */
    c = v4("127.0.0.1");
    memset(text, '#', sizeof(text));
    budget_client_text(&c, text, 4);
    assert_string_equal(text, "127");
    assert_int_equal(text[4], '#');
    budget_client_text(&c, text, 0); /* writes nothing */
    assert_int_equal(text[0], '1');
}

/* ---- tokens ---- */

static bool lowercase_hex(const char *t)
{
    if (strlen(t) != BUDGET_TOKEN_LEN)
        return false;
    for (size_t i = 0; i < BUDGET_TOKEN_LEN; i++) {
        if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f')))
            return false;
    }
    return true;
}

static void tokens(void **state)
{
    struct budget *b = *state;
    struct budget_client a = v4("10.0.0.1"), c = v6("::1"), found;
    char t1[BUDGET_TOKEN_LEN + 1], t2[BUDGET_TOKEN_LEN + 1];
    char upper[BUDGET_TOKEN_LEN + 1], longer[BUDGET_TOKEN_LEN + 2];

    assert_int_equal(budget_token_issue(b, &a, t1), 0);
    assert_int_equal(budget_token_issue(b, &c, t2), 0);
    assert_true(lowercase_hex(t1));
    assert_true(lowercase_hex(t2));
    assert_string_not_equal(t1, t2);

    assert_true(budget_token_client(b, t1, &found));
    assert_memory_equal(&found, &a, sizeof(a));
    assert_true(budget_token_client(b, t2, &found));
    assert_memory_equal(&found, &c, sizeof(c));

    /* Not tokens. */
    memset(&found, 0x5a, sizeof(found));
    struct budget_client untouched = found;
    assert_false(
        budget_token_client(b, "0123456789abcdef0123456789abcdef", &found));
    assert_false(budget_token_client(b, "", &found));
    assert_false(budget_token_client(b, NULL, &found));
    assert_false(budget_token_client(b, "short", &found));
    memcpy(upper, t1, sizeof(upper));
    for (size_t i = 0; i < BUDGET_TOKEN_LEN; i++) {
        if (upper[i] >= 'a')
            upper[i] = (char)(upper[i] - 'a' + 'A');
    }
    if (strcmp(upper, t1) != 0) /* t1 has a letter: nearly always */
        assert_false(budget_token_client(b, upper, &found));
    snprintf(longer, sizeof(longer), "%s0", t1);
    assert_false(budget_token_client(b, longer, &found));
    memcpy(upper, t1, sizeof(upper));
    upper[BUDGET_TOKEN_LEN - 1] = '\0'; /* one character short */
    assert_false(budget_token_client(b, upper, &found));
    assert_memory_equal(&found, &untouched, sizeof(found));

    /* Revoke: gone; the other stays; unknown ones are ignored. */
    budget_token_revoke(b, t1);
    assert_false(budget_token_client(b, t1, &found));
    assert_true(budget_token_client(b, t2, &found));
    assert_memory_equal(&found, &c, sizeof(c));
    budget_token_revoke(b, t1);
    budget_token_revoke(b, "ffffffffffffffffffffffffffffffff");
    budget_token_revoke(b, "not a token");
    budget_token_revoke(b, NULL);
    assert_true(budget_token_client(b, t2, &found));
    budget_token_revoke(b, t2);
    assert_false(budget_token_client(b, t2, &found));
    /* Tokens charge nothing by themselves. */
    assert_int_equal(clients_of(b), 0);
}

static void token_table_full(void **state)
{
    struct budget *b = *state;
    static char issued[BUDGET_TOKENS_MAX][BUDGET_TOKEN_LEN + 1];
    char extra[BUDGET_TOKEN_LEN + 1];
    struct budget_client found = {{0}};

    for (int i = 0; i < BUDGET_TOKENS_MAX; i++) {
        struct budget_client c = {{0}};
        c.addr[0] = 0xfd;
        c.addr[14] = (uint8_t)(i >> 8);
        c.addr[15] = (uint8_t)i;
        if (budget_token_issue(b, &c, issued[i]) != 0)
            fail_msg("token %d of %d refused", i, BUDGET_TOKENS_MAX);
    }
    assert_int_equal(budget_token_issue(b, &found, extra), -EAGAIN);

    /* Revoke every other one; the rest still name their clients. */
    for (int i = 0; i < BUDGET_TOKENS_MAX; i += 2)
        budget_token_revoke(b, issued[i]);
    for (int i = 0; i < BUDGET_TOKENS_MAX; i++) {
        bool live = budget_token_client(b, issued[i], &found);
        if (live != (i % 2 == 1) ||
            (live && (found.addr[14] != (uint8_t)(i >> 8) ||
                      found.addr[15] != (uint8_t)i)))
            fail_msg("token %d: live %d", i, live);
    }
    /* Room again: exactly the revoked half. */
    for (int i = 0; i < BUDGET_TOKENS_MAX; i += 2)
        assert_int_equal(budget_token_issue(b, &found, issued[i]), 0);
    assert_int_equal(budget_token_issue(b, &found, extra), -EAGAIN);
    for (int i = 0; i < BUDGET_TOKENS_MAX; i++)
        budget_token_revoke(b, issued[i]);
    assert_int_equal(budget_token_issue(b, &found, extra), 0);
    budget_token_revoke(b, extra);
}

/* ---- metrics ---- */

static void metrics_text(void **state)
{
    struct budget *b = *state;
    struct budget_client a = v4("10.0.0.1"), c = v6("::1");
    struct budget_claim ca, cc, refused;
    char *text = NULL;
    size_t len = 0;

    struct budget_cost cost1 = {{3, 20, 1, 1, 100}};
    struct budget_cost cost2 = {{1, 0, 0, 0, 5}};
    assert_int_equal(budget_acquire(b, &a, &cost1, &ca, NULL), 0);
    assert_int_equal(budget_acquire(b, &c, &cost2, &cc, NULL), 0);
    struct budget_cost big = one(BUDGET_TASKS, 11);
    assert_int_equal(budget_acquire(b, &a, &big, &refused, NULL), -E2BIG);
    struct budget_cost over = one(BUDGET_TRANSFERS, 2);
    assert_int_equal(budget_acquire(b, &a, &over, &refused, NULL), -EAGAIN);

    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    budget_write_metrics(b, out);
    assert_int_equal(fclose(out), 0);
    assert_string_equal(
        text,
        "# HELP conlab_budget_used What admitted runs hold now, by budget.\n"
        "# TYPE conlab_budget_used gauge\n"
        "conlab_budget_used{budget=\"tasks\"} 4\n"
        "conlab_budget_used{budget=\"timers\"} 20\n"
        "conlab_budget_used{budget=\"transfers\"} 1\n"
        "conlab_budget_used{budget=\"queue\"} 1\n"
        "conlab_budget_used{budget=\"bytes\"} 105\n"
        "conlab_budget_used{budget=\"spawns\"} 0\n"
        "# HELP conlab_budget_limit What admitted runs may hold at most, by "
        "budget.\n"
        "# TYPE conlab_budget_limit gauge\n"
        "conlab_budget_limit{budget=\"tasks\"} 10\n"
        "conlab_budget_limit{budget=\"timers\"} 100\n"
        "conlab_budget_limit{budget=\"transfers\"} 4\n"
        "conlab_budget_limit{budget=\"queue\"} 3\n"
        "conlab_budget_limit{budget=\"bytes\"} 1000\n"
        "conlab_budget_limit{budget=\"spawns\"} 0\n"
        "# HELP conlab_budget_clients Client addresses holding part of a "
        "budget.\n"
        "# TYPE conlab_budget_clients gauge\n"
        "conlab_budget_clients 2\n"
        "# HELP conlab_admission_rejected_total Runs refused admission, by "
        "reason.\n"
        "# TYPE conlab_admission_rejected_total counter\n"
        "conlab_admission_rejected_total{reason=\"busy\"} 0\n"
        "conlab_admission_rejected_total{reason=\"client_share\"} 1\n"
        "conlab_admission_rejected_total{reason=\"too_large\"} 1\n");
    free(text);
    budget_release(&ca);
    budget_release(&cc);
}

/* ---- from the options ---- */

static void limits_from_config(void **state)
{
    struct config cfg;
    struct budget_limits l;

    (void)state;
    config_defaults(&cfg);
    budget_limits_from_config(&cfg, &l);
    assert_int_equal(l.limit[BUDGET_TASKS], 400000);
    assert_int_equal(l.limit[BUDGET_TIMERS], 400000);
    assert_int_equal(l.limit[BUDGET_TRANSFERS], 2000);
    assert_int_equal(l.limit[BUDGET_QUEUE], 1024);
    assert_int_equal(l.limit[BUDGET_BYTES], 100663296);
    /* --budget-spawns 0: four times --workers */
    assert_int_equal(l.limit[BUDGET_SPAWNS], 4 * cfg.workers);
    assert_int_equal(l.client_share_pct, 50);
    assert_int_equal(l.clients_max, 10000 + BUDGET_CLIENTS_MARGIN);

    cfg.budget_tasks = 1;
    cfg.budget_timers = 2;
    cfg.budget_transfers = 3;
    cfg.queue = 4;
    cfg.budget_bytes = 5;
    cfg.budget_spawns = 6;
    cfg.client_share_pct = 100;
    cfg.max_connections = 16;
    budget_limits_from_config(&cfg, &l);
    assert_int_equal(l.limit[BUDGET_TASKS], 1);
    assert_int_equal(l.limit[BUDGET_TIMERS], 2);
    assert_int_equal(l.limit[BUDGET_SPAWNS], 6);
    assert_int_equal(l.limit[BUDGET_TRANSFERS], 3);
    assert_int_equal(l.limit[BUDGET_QUEUE], 4);
    assert_int_equal(l.limit[BUDGET_BYTES], 5);
    assert_int_equal(l.client_share_pct, 100);
    assert_int_equal(l.clients_max, 16 + BUDGET_CLIENTS_MARGIN);
    struct budget *b = budget_new(&l);
    assert_non_null(b);
    budget_free(b);
}

/* ---- threads ---- */

#define STRESS_THREADS 4
#define STRESS_ROUNDS  20000
#define STRESS_HELD    4 /* claims a thread holds at most */

struct stress {
    struct budget *b;
    struct budget_client client;
    unsigned seed;
    _Atomic uint64_t *bad; /* results outside the contract */
    uint64_t admitted;
    uint64_t refused;
};

static void *stress_main(void *arg)
{
    struct stress *s = arg;
    struct budget_claim held[STRESS_HELD];
    struct budget_usage u;

    memset(held, 0, sizeof(held));
    for (int round = 0; round < STRESS_ROUNDS; round++) {
        struct budget_claim *slot = &held[round % STRESS_HELD];
        budget_release(slot); /* the oldest, if any */
        struct budget_cost cost;
        for (int k = 0; k < BUDGET_KINDS; k++)
            cost.amount[k] = (uint64_t)(rand_r(&s->seed) % 4);
        enum budget_kind which = BUDGET_KINDS;
        int rc = budget_acquire(s->b, &s->client, &cost, slot, &which);
        if (rc == 0 && slot->held) {
            s->admitted++;
        } else if (rc == -EAGAIN && !slot->held && which < BUDGET_KINDS &&
                   cost.amount[which] != 0) {
            s->refused++;
        } else {
            atomic_fetch_add(s->bad, 1);
        }
        if (round % 64 == 0) {
            budget_stats(s->b, &u);
            for (int k = 0; k < BUDGET_KINDS; k++) {
                if (u.used[k] > u.limit[k])
                    atomic_fetch_add(s->bad, 1);
            }
            if (u.clients > 3)
                atomic_fetch_add(s->bad, 1);
        }
    }
    for (int i = 0; i < STRESS_HELD; i++)
        budget_release(&held[i]);
    return NULL;
}

static void stress_threads(void **state)
{
    struct budget_limits l;
    struct stress s[STRESS_THREADS];
    pthread_t threads[STRESS_THREADS];
    _Atomic uint64_t bad = 0;
    static const char *const addrs[STRESS_THREADS] = {
        "127.0.0.1", "::ffff:127.0.0.1", "::1", "2001:db8::1"};

    (void)state;
    memset(&l, 0, sizeof(l));
    for (int k = 0; k < BUDGET_KINDS; k++)
        l.limit[k] = 16; /* small, so that refusals happen */
    l.client_share_pct = 60;
    l.clients_max = 3; /* the four threads are three clients */
    struct budget *b = budget_new(&l);
    assert_non_null(b);
    for (int i = 0; i < STRESS_THREADS; i++) {
        s[i] =
            (struct stress){.b = b, .seed = 12345u + (unsigned)i, .bad = &bad};
        s[i].client = i == 0 ? v4(addrs[i]) : v6(addrs[i]);
    }
    for (int i = 0; i < STRESS_THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, stress_main, &s[i]),
                         0);
    for (int i = 0; i < STRESS_THREADS; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);

    assert_int_equal(atomic_load(&bad), 0);
    uint64_t admitted = 0, refused = 0;
    for (int i = 0; i < STRESS_THREADS; i++) {
        assert_int_equal(s[i].admitted + s[i].refused, STRESS_ROUNDS);
        admitted += s[i].admitted;
        refused += s[i].refused;
    }
    assert_true(admitted > 0);
    assert_true(refused > 0); /* the budgets were contended */
    struct budget_usage u;
    budget_stats(b, &u);
    for (int k = 0; k < BUDGET_KINDS; k++)
        assert_int_equal(u.used[k], 0);
    assert_int_equal(u.clients, 0);
    assert_int_equal(u.rejected[BUDGET_REJECT_BUSY] +
                         u.rejected[BUDGET_REJECT_CLIENT_SHARE],
                     refused);
    assert_int_equal(u.rejected[BUDGET_REJECT_TOO_LARGE], 0);
    budget_free(b);
}

int main(void)
{
#define T(name)                                                                \
    cmocka_unit_test_setup_teardown(name, setup_budget, teardown_budget)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names),
        cmocka_unit_test(new_rejects_bad_limits),
        cmocka_unit_test(share_rounding),
        T(share_per_kind),
        T(admits_up_to_the_budget),
        T(too_large),
        T(which_names_the_first_refusal),
        cmocka_unit_test(two_clients_within_the_global_limit),
        T(release_restores_exact_counts),
        T(changes_count_what_may_change),
        T(zero_cost_always_admitted),
        cmocka_unit_test(clients_max_bounds_the_table),
        cmocka_unit_test(many_clients_found_after_removals),
        T(ipv4_is_v4_mapped),
        cmocka_unit_test(other_families_refused),
        cmocka_unit_test(client_text),
        T(tokens),
        T(token_table_full),
        T(metrics_text),
        cmocka_unit_test(limits_from_config),
        cmocka_unit_test(stress_threads),
    };
#undef T
    return cmocka_run_group_tests_name("budget", tests, NULL, NULL);
}
