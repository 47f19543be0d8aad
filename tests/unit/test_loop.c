/*
 * Unit tests of server/loop.c: timers fire in deadline order, many at once
 * cost no thread, a stop cancels what is left, the bounds hold,
 * transfers complete (or are cancelled) through the callback, calls run
 * on the loop thread, and timers and transfers can be removed, whether
 * in the loop already or still on their way in. Timers of one due time
 * (one ring under one heap entry) fire in the order handed over, share
 * fired_ns, and can each be removed or stopped exactly once. Transfers
 * start LOOP_START_BATCH a turn; one still waiting for its turn can be
 * removed or stopped, and a burst of several batches completes. A socket
 * the loop cannot watch costs its transfer only (a timeout), not the
 * loop's later transfers.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
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
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../server/clock.h"
#include "../../server/loop.h"

#define WAIT_NS (10ull * 1000000000ull)

#define ORDER_MAX 4096

struct ttimer {
    struct loop_timer timer;
    int id;
    struct ttimer *victim; /* removed by this one's callback, if set */
    _Atomic int fired;
    _Atomic bool cancelled;
    _Atomic int status;
};

static _Atomic int order_len;
static int order[ORDER_MAX];
static struct loop *victim_loop; /* the loop of the victims' removals */

static void on_fire(struct loop_timer *t, int status)
{
    struct ttimer *tt = (struct ttimer *)t;
    if (tt->victim)
        loop_timer_remove(victim_loop, &tt->victim->timer);
    if (status == 0) {
        int i = atomic_fetch_add(&order_len, 1);
        if (i < ORDER_MAX)
            order[i] = tt->id;
    }
    atomic_store(&tt->status, status);
    atomic_store(&tt->cancelled, status != 0);
    atomic_fetch_add(&tt->fired, 1);
}

static void wait_fired(struct ttimer *t, size_t n)
{
    uint64_t until = clock_now_ns() + WAIT_NS;
    for (size_t i = 0; i < n; i++) {
        while (atomic_load(&t[i].fired) == 0) {
            assert_true(clock_now_ns() < until);
            usleep(1000);
        }
    }
}

static void test_timers_in_order(void **state)
{
    (void)state;
    char err[64];
    struct loop *loop = loop_start(err, sizeof(err));
    assert_non_null(loop);
    const int delays_ms[] = {50, 10, 30, 0, 20, 40};
    struct ttimer t[6];
    struct loop_timer *ptrs[6];
    uint64_t now = clock_now_ns();
    atomic_store(&order_len, 0);
    for (int i = 0; i < 6; i++) {
        memset(&t[i], 0, sizeof(t[i]));
        t[i].id = delays_ms[i];
        t[i].timer.due_ns = now + (uint64_t)delays_ms[i] * 1000000u;
        t[i].timer.fire = on_fire;
        ptrs[i] = &t[i].timer;
    }
    assert_int_equal(loop_add_timers(loop, ptrs, 6), 0);
    wait_fired(t, 6);
    assert_int_equal(atomic_load(&order_len), 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(order[i], i * 10);
    /* None fired early. */
    assert_true(clock_now_ns() >= now + 50ull * 1000000u);
    struct loop_stats s;
    loop_stats(loop, &s);
    assert_int_equal(s.timers, 0);
    assert_int_equal(s.timers_fired, 6);
    loop_free(loop);
}

static void test_many_timers(void **state)
{
    (void)state;
    char err[64];
    struct loop *loop = loop_start(err, sizeof(err));
    size_t n = 10000;
    struct ttimer *t = calloc(n, sizeof(*t));
    struct loop_timer **ptrs = calloc(n, sizeof(*ptrs));
    uint64_t due = clock_now_ns() + 100ull * 1000000u;
    for (size_t i = 0; i < n; i++) {
        t[i].timer.due_ns = due;
        t[i].timer.fire = on_fire;
        ptrs[i] = &t[i].timer;
    }
    assert_int_equal(loop_add_timers(loop, ptrs, n), 0);
    wait_fired(t, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(atomic_load(&t[i].fired), 1);
        assert_false(atomic_load(&t[i].cancelled));
    }
    loop_free(loop);
    free(t);
    free(ptrs);
}

static void test_stop_cancels(void **state)
{
    (void)state;
    char err[64];
    struct loop *loop = loop_start(err, sizeof(err));
    struct ttimer t[3];
    struct loop_timer *ptrs[3];
    for (int i = 0; i < 3; i++) {
        memset(&t[i], 0, sizeof(t[i]));
        t[i].timer.due_ns = clock_now_ns() + 60ull * 1000000000ull;
        t[i].timer.fire = on_fire;
        ptrs[i] = &t[i].timer;
    }
    assert_int_equal(loop_add_timers(loop, ptrs, 3), 0);
    loop_stop(loop);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(atomic_load(&t[i].fired), 1);
        assert_int_equal(atomic_load(&t[i].status), -ESHUTDOWN);
    }
    loop_free(loop);
}

static void test_bound(void **state)
{
    (void)state;
    char err[64];
    struct loop *loop = loop_start(err, sizeof(err));
    size_t n = LOOP_TIMERS_MAX + 1;
    struct loop_timer **ptrs = calloc(n, sizeof(*ptrs));
    /* Refused before any pointer is looked at: none is valid here. */
    assert_int_equal(loop_add_timers(loop, ptrs, n), -EAGAIN);
    struct loop_stats s;
    loop_stats(loop, &s);
    assert_int_equal(s.timers, 0);
    free(ptrs);
    loop_free(loop);
}

struct tfetch {
    struct loop_fetch f;
    _Atomic int done;
    _Atomic int status;
    _Atomic int rc;
};

static void on_fetch(struct loop_fetch *f, int status, CURLcode rc)
{
    struct tfetch *t = (struct tfetch *)f;
    atomic_store(&t->status, status);
    atomic_store(&t->rc, rc);
    atomic_fetch_add(&t->done, 1);
}

static size_t discard(char *data, size_t size, size_t n, void *arg)
{
    (void)data;
    (void)arg;
    return size * n;
}

/* A loopback port with nothing listening, and one that never answers. */
static int listener(int *port, bool listening)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    if (listening)
        listen(fd, 8);
    return fd;
}

static void test_fetch_refused_and_cancelled(void **state)
{
    (void)state;
    char err[64], url[64];
    int closed_port, silent_port;
    int closed_fd = listener(&closed_port, false);
    int silent_fd = listener(&silent_port, true);
    struct loop *loop = loop_start(err, sizeof(err));

    struct tfetch a = {0}, b = {0};
    a.f.easy = curl_easy_init();
    b.f.easy = curl_easy_init();
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", closed_port);
    curl_easy_setopt(a.f.easy, CURLOPT_URL, url);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", silent_port);
    curl_easy_setopt(b.f.easy, CURLOPT_URL, url);
    a.f.done = on_fetch;
    b.f.done = on_fetch;
    struct loop_fetch *both[2] = {&a.f, &b.f};
    assert_int_equal(loop_add_fetches(loop, both, 2), 0);

    uint64_t until = clock_now_ns() + WAIT_NS;
    while (atomic_load(&a.done) == 0)
        assert_true(clock_now_ns() < until);
    assert_int_equal(atomic_load(&a.rc), CURLE_COULDNT_CONNECT);
    usleep(50 * 1000);
    assert_int_equal(atomic_load(&b.done), 0); /* still waiting */
    struct loop_stats s;
    loop_stats(loop, &s);
    assert_int_equal(s.transfers, 1);

    loop_stop(loop);
    assert_int_equal(atomic_load(&a.status), 0);
    assert_int_equal(atomic_load(&b.done), 1);
    assert_int_equal(atomic_load(&b.status), -ESHUTDOWN);
    assert_int_equal(atomic_load(&b.rc), CURLE_ABORTED_BY_CALLBACK);
    loop_free(loop);
    curl_easy_cleanup(a.f.easy);
    curl_easy_cleanup(b.f.easy);
    close(closed_fd);
    close(silent_fd);
}

/* A call that records where and how often it ran. */
struct tcall {
    struct loop_call call;
    _Atomic int ran;
    pthread_t thread;
    void (*then)(struct loop *loop, struct tcall *c);
    int rc; /* what then() got back */
};

static void on_call(struct loop *loop, struct loop_call *call)
{
    struct tcall *c = (struct tcall *)call;
    c->thread = pthread_self();
    if (c->then)
        c->then(loop, c);
    atomic_fetch_add(&c->ran, 1);
}

/* Waits up to WAIT_NS for *v to become nonzero. */
static void wait_set(_Atomic int *v)
{
    uint64_t until = clock_now_ns() + WAIT_NS;
    while (atomic_load(v) == 0) {
        assert_true(clock_now_ns() < until);
        usleep(1000);
    }
}

static void wait_call(struct tcall *c)
{
    wait_set(&c->ran);
}

static void test_call(void **state)
{
    (void)state;
    char err[64];
    struct loop *loop = loop_start(err, sizeof(err));
    assert_non_null(loop);
    struct tcall a = {.call.fn = on_call}, b = {.call.fn = on_call};
    struct tcall late = {.call.fn = on_call};
    assert_int_equal(loop_call(loop, &a.call), 0);
    wait_call(&a);
    assert_false(pthread_equal(a.thread, pthread_self()));
    /* Posted before the stop: it runs before loop_stop() returns. */
    assert_int_equal(loop_call(loop, &b.call), 0);
    loop_stop(loop);
    assert_int_equal(atomic_load(&a.ran), 1);
    assert_int_equal(atomic_load(&b.ran), 1);
    assert_true(pthread_equal(a.thread, b.thread));

    /* Stopped, not freed: every call still answers. */
    assert_true(loop_stopping(loop));
    assert_int_equal(loop_call(loop, &late.call), -ESHUTDOWN);
    struct ttimer t = {.timer.fire = on_fire};
    struct loop_timer *one = &t.timer;
    assert_int_equal(loop_add_timers(loop, &one, 1), -ESHUTDOWN);
    struct loop_stats s;
    loop_stats(loop, &s);
    assert_int_equal(s.timers, 0);
    loop_stop(loop); /* twice: nothing */
    loop_free(loop);
    assert_int_equal(atomic_load(&late.ran), 0);
    assert_int_equal(atomic_load(&t.fired), 0);
    loop_free(NULL);
    loop_stop(NULL);
}

/*
 * 40 timers due within 20..70 ms and 40 due in a minute, interleaved. A
 * first call (on the loop thread, so nothing fires meanwhile) hands them
 * all over and at once removes 8 short ones, still on their way in; a
 * second removes the 40 long ones from the middle of the heap. The rest
 * fire in due order.
 */
#define RM_SHORT 40
#define RM_LONG  40

static struct ttimer rm_timers[RM_SHORT + RM_LONG];
static struct ttimer rm_never; /* never handed over */

static bool removed_early(int i)
{
    return i < RM_SHORT && i % 5 == 2;
}

static void add_and_remove(struct loop *loop, struct tcall *c)
{
    struct loop_timer *ptrs[RM_SHORT + RM_LONG];
    uint64_t now = clock_now_ns();
    for (int i = 0; i < RM_SHORT + RM_LONG; i++) {
        struct ttimer *t = &rm_timers[i];
        memset(t, 0, sizeof(*t));
        t->id = i;
        t->timer.fire = on_fire;
        t->timer.due_ns =
            i < RM_SHORT ? now + (20 + (uint64_t)(i * 7 % RM_SHORT)) * 1000000u
                         : now + 60ull * 1000000000ull;
    }
    /* Interleaved: short, long, short, long... */
    for (int i = 0; i < RM_SHORT; i++) {
        ptrs[2 * i] = &rm_timers[i].timer;
        ptrs[2 * i + 1] = &rm_timers[RM_SHORT + i].timer;
    }
    /* Checked by the test's thread: a failed assertion must not jump
     * from this one. */
    c->rc = loop_add_timers(loop, ptrs, RM_SHORT + RM_LONG);
    for (int i = 0; i < RM_SHORT; i++) {
        if (removed_early(i))
            loop_timer_remove(loop, &rm_timers[i].timer);
    }
    loop_timer_remove(loop, &rm_never.timer); /* not in the loop: nothing */
}

static void remove_long(struct loop *loop, struct tcall *c)
{
    (void)c;
    for (int i = RM_SHORT; i < RM_SHORT + RM_LONG; i++) {
        loop_timer_remove(loop, &rm_timers[i].timer);
        loop_timer_remove(loop, &rm_timers[i].timer); /* twice: nothing */
    }
    loop_timer_remove(loop, &rm_timers[2].timer); /* removed already */
}

static void test_timer_remove(void **state)
{
    (void)state;
    char err[64];
    struct loop *loop = loop_start(err, sizeof(err));
    assert_non_null(loop);
    atomic_store(&order_len, 0);
    memset(&rm_never, 0, sizeof(rm_never));
    rm_never.timer.fire = on_fire;
    rm_never.timer.slot = 3; /* whatever it holds, it is not in the heap */
    struct tcall first = {.call.fn = on_call, .then = add_and_remove};
    struct tcall second = {.call.fn = on_call, .then = remove_long};
    assert_int_equal(loop_call(loop, &first.call), 0);
    assert_int_equal(loop_call(loop, &second.call), 0);
    wait_call(&second);
    assert_int_equal(first.rc, 0);

    int expected = 0;
    for (int i = 0; i < RM_SHORT; i++) {
        if (removed_early(i))
            continue;
        expected++;
        wait_fired(&rm_timers[i], 1);
    }
    assert_int_equal(atomic_load(&order_len), expected);
    for (int k = 1; k < expected; k++)
        assert_true(rm_timers[order[k - 1]].timer.due_ns <=
                    rm_timers[order[k]].timer.due_ns);
    for (int i = 0; i < RM_SHORT + RM_LONG; i++) {
        assert_int_equal(atomic_load(&rm_timers[i].fired), 1);
        bool removed = i >= RM_SHORT || removed_early(i);
        assert_int_equal(atomic_load(&rm_timers[i].status),
                         removed ? -ECANCELED : 0);
    }
    assert_int_equal(atomic_load(&rm_never.fired), 0);
    struct loop_stats s;
    loop_stats(loop, &s);
    assert_int_equal(s.timers, 0);
    assert_int_equal(s.timers_fired, RM_SHORT + RM_LONG);
    loop_free(loop);
}

/* Waits until each of t[0..n) has been called, then checks: once. */
static void wait_all(struct ttimer *t, size_t n)
{
    wait_fired(t, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(atomic_load(&t[i].fired), 1);
}

/* Position of a timer in a submission, for the expected firing order. */
struct sub {
    uint64_t due_ns;
    size_t pos;
    int id;
};

static int sub_cmp(const void *a, const void *b)
{
    const struct sub *x = a, *y = b;
    if (x->due_ns != y->due_ns)
        return x->due_ns < y->due_ns ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/*
 * The timers of ptrs[] (all fired with 0) fired by due time, those of
 * one due time in the order submitted, each due time with one fired_ns,
 * no earlier than due.
 */
static void check_fired_in_order(struct loop_timer *const ptrs[], size_t n)
{
    struct sub *want = calloc(n, sizeof(*want));
    assert_non_null(want);
    for (size_t i = 0; i < n; i++) {
        struct ttimer *t = (struct ttimer *)ptrs[i];
        want[i] =
            (struct sub){.due_ns = t->timer.due_ns, .pos = i, .id = t->id};
    }
    qsort(want, n, sizeof(*want), sub_cmp);
    assert_int_equal(atomic_load(&order_len), n);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(order[k], want[k].id);
    for (size_t i = 0; i < n; i++) {
        const struct loop_timer *t = ptrs[i];
        assert_true(t->fired_ns >= t->due_ns);
        for (size_t j = 0; j < n; j++) {
            if (ptrs[j]->due_ns == t->due_ns)
                assert_true(ptrs[j]->fired_ns == t->fired_ns);
        }
    }
    free(want);
}

/*
 * 1,000 timers of one due time and 10 of six others, handed over from a
 * loop_call in two batches (so that none fires meanwhile), the others
 * interleaved among the 1,000.
 */
#define CHAIN_LONG  1000
#define CHAIN_OTHER 10
#define CHAIN_ALL   (CHAIN_LONG + CHAIN_OTHER)

static struct ttimer chain_timers[CHAIN_ALL];
static struct loop_timer *chain_ptrs[CHAIN_ALL];
static struct loop_stats chain_stats; /* read right after the handover */

static void add_chains(struct loop *loop, struct tcall *c)
{
    static const unsigned other_ms[CHAIN_OTHER] = {20, 60, 20, 30, 60,
                                                   50, 20, 70, 30, 80};
    uint64_t now = clock_now_ns();
    size_t k = 0;
    for (int i = 0; i < CHAIN_ALL; i++) {
        struct ttimer *t = &chain_timers[i];
        memset(t, 0, sizeof(*t));
        t->id = i;
        t->timer.fire = on_fire;
        t->timer.due_ns =
            now + (i < CHAIN_LONG ? 40u : other_ms[i - CHAIN_LONG]) * 1000000u;
    }
    /* 100 of the 1,000, one other, 100 more, another... */
    for (int i = 0; i < CHAIN_LONG; i++) {
        chain_ptrs[k++] = &chain_timers[i].timer;
        if (i % 100 == 99)
            chain_ptrs[k++] = &chain_timers[CHAIN_LONG + i / 100].timer;
    }
    c->rc = loop_add_timers(loop, chain_ptrs, CHAIN_ALL / 2);
    if (c->rc == 0)
        c->rc = loop_add_timers(loop, chain_ptrs + CHAIN_ALL / 2,
                                CHAIN_ALL - CHAIN_ALL / 2);
    loop_stats(loop, &chain_stats);
}

static void test_chains_in_order(void **state)
{
    (void)state;
    char err[64];
    struct loop *loop = loop_start(err, sizeof(err));
    assert_non_null(loop);
    atomic_store(&order_len, 0);
    struct tcall add = {.call.fn = on_call, .then = add_chains};
    assert_int_equal(loop_call(loop, &add.call), 0);
    wait_call(&add);
    assert_int_equal(add.rc, 0);
    /* Every timer counts, not every heap entry. */
    assert_int_equal(chain_stats.timers, CHAIN_ALL);
    assert_int_equal(chain_stats.timers_fired, 0);

    wait_all(chain_timers, CHAIN_ALL);
    for (int i = 0; i < CHAIN_ALL; i++)
        assert_int_equal(atomic_load(&chain_timers[i].status), 0);
    check_fired_in_order(chain_ptrs, CHAIN_ALL);
    struct loop_stats s;
    loop_stats(loop, &s);
    assert_int_equal(s.timers, 0);
    assert_int_equal(s.timers_fired, CHAIN_ALL);
    loop_free(loop);
}

/*
 * 3,000 timers of 1,428 due times (one to three timers each, some a
 * single ns apart), handed over in a shuffled order: the index from due
 * time to ring grows and loses entries as rings fire, and every due time
 * still fires as one ring.
 */
#define SPREAD_DUES 1000
#define SPREAD_ALL  (3 * SPREAD_DUES)

static struct ttimer spread_timers[SPREAD_ALL];
static struct loop_timer *spread_ptrs[SPREAD_ALL];

static void add_spread(struct loop *loop, struct tcall *c)
{
    uint64_t now = clock_now_ns();
    uint32_t seed = 12345;
    for (int i = 0; i < SPREAD_ALL; i++) {
        struct ttimer *t = &spread_timers[i];
        memset(t, 0, sizeof(*t));
        t->id = i;
        t->timer.fire = on_fire;
        /* 20 ms on, 40 us apart, some a single ns apart. */
        t->timer.due_ns = now + 20000000u +
                          (uint64_t)(i % SPREAD_DUES) * (i % 7 ? 40000u : 1u);
        spread_ptrs[i] = &t->timer;
    }
    for (int i = SPREAD_ALL - 1; i > 0; i--) {
        seed = seed * 1103515245u + 12345u;
        int j = (int)((seed >> 8) % (uint32_t)(i + 1));
        struct loop_timer *swap = spread_ptrs[i];
        spread_ptrs[i] = spread_ptrs[j];
        spread_ptrs[j] = swap;
    }
    c->rc = loop_add_timers(loop, spread_ptrs, SPREAD_ALL);
}

static void test_many_due_times(void **state)
{
    (void)state;
    char err[64];
    struct loop *loop = loop_start(err, sizeof(err));
    assert_non_null(loop);
    atomic_store(&order_len, 0);
    struct tcall add = {.call.fn = on_call, .then = add_spread};
    assert_int_equal(loop_call(loop, &add.call), 0);
    wait_call(&add);
    assert_int_equal(add.rc, 0);
    wait_all(spread_timers, SPREAD_ALL);
    check_fired_in_order(spread_ptrs, SPREAD_ALL);
    struct loop_stats s;
    loop_stats(loop, &s);
    assert_int_equal(s.timers, 0);
    assert_int_equal(s.timers_fired, SPREAD_ALL);
    loop_free(loop);
}

/*
 * A ring of 12 due in 30 ms and one timer due in 20 ms. A loop_call
 * hands them over and removes the ring's head, then its heir (the new
 * head), a middle one and the tail. When the ring fires, timer 2's
 * callback removes timer 7, not fired yet. Later calls remove a timer
 * that fired, and one that was removed: nothing happens.
 */
#define RING_N 12

static struct ttimer ring_timers[RING_N + 1];

static bool ring_removed(int i)
{
    return i == 0 || i == 1 || i == 5 || i == 7 || i == RING_N - 1;
}

static void add_ring_and_remove(struct loop *loop, struct tcall *c)
{
    struct loop_timer *ptrs[RING_N + 1];
    uint64_t now = clock_now_ns();
    for (int i = 0; i <= RING_N; i++) {
        struct ttimer *t = &ring_timers[i];
        memset(t, 0, sizeof(*t));
        t->id = i;
        t->timer.fire = on_fire;
        t->timer.due_ns = now + (i < RING_N ? 30u : 20u) * 1000000u;
        ptrs[i] = &t->timer;
    }
    ring_timers[2].victim = &ring_timers[7];
    c->rc = loop_add_timers(loop, ptrs, RING_N + 1);
    loop_timer_remove(loop, &ring_timers[0].timer);          /* head */
    loop_timer_remove(loop, &ring_timers[1].timer);          /* its heir */
    loop_timer_remove(loop, &ring_timers[5].timer);          /* middle */
    loop_timer_remove(loop, &ring_timers[RING_N - 1].timer); /* tail */
    loop_timer_remove(loop, &ring_timers[5].timer);          /* twice */
}

static void remove_fired(struct loop *loop, struct tcall *c)
{
    (void)c;
    loop_timer_remove(loop, &ring_timers[3].timer);      /* in the ring */
    loop_timer_remove(loop, &ring_timers[RING_N].timer); /* alone */
    loop_timer_remove(loop, &ring_timers[7].timer);      /* removed */
}

static void test_chain_remove(void **state)
{
    (void)state;
    char err[64];
    struct loop *loop = loop_start(err, sizeof(err));
    assert_non_null(loop);
    victim_loop = loop;
    atomic_store(&order_len, 0);
    struct tcall add = {.call.fn = on_call, .then = add_ring_and_remove};
    assert_int_equal(loop_call(loop, &add.call), 0);
    wait_call(&add);
    assert_int_equal(add.rc, 0);
    wait_all(ring_timers, RING_N + 1);

    struct tcall again = {.call.fn = on_call, .then = remove_fired};
    assert_int_equal(loop_call(loop, &again.call), 0);
    wait_call(&again);
    /* The lone timer first, then the ring's survivors in order. */
    const int want[] = {RING_N, 2, 3, 4, 6, 8, 9, 10};
    size_t n_want = sizeof(want) / sizeof(want[0]);
    assert_int_equal(atomic_load(&order_len), n_want);
    for (size_t k = 0; k < n_want; k++)
        assert_int_equal(order[k], want[k]);
    for (int i = 0; i <= RING_N; i++) {
        assert_int_equal(atomic_load(&ring_timers[i].fired), 1);
        assert_int_equal(atomic_load(&ring_timers[i].status),
                         ring_removed(i) ? -ECANCELED : 0);
        if (ring_removed(i))
            assert_true(ring_timers[i].timer.fired_ns == 0);
        else
            assert_true(ring_timers[i].timer.fired_ns >=
                        ring_timers[i].timer.due_ns);
    }
    assert_true(ring_timers[2].timer.fired_ns ==
                ring_timers[RING_N - 2].timer.fired_ns);
    struct loop_stats s;
    loop_stats(loop, &s);
    assert_int_equal(s.timers, 0);
    assert_int_equal(s.timers_fired, RING_N + 1);
    loop_free(loop);
}

/*
 * A stop ends rings as well: 100 timers of one due time, 3 of another
 * and a lone one, all due in a minute, each ended once with -ESHUTDOWN
 * (one of the 100 removes a later sibling, which gets -ECANCELED).
 */
#define STOP_N 104

static struct ttimer stop_timers[STOP_N];

static void test_chain_stop(void **state)
{
    (void)state;
    char err[64];
    struct loop *loop = loop_start(err, sizeof(err));
    assert_non_null(loop);
    victim_loop = loop;
    struct loop_timer *ptrs[STOP_N];
    uint64_t later = clock_now_ns() + 60ull * 1000000000u;
    for (int i = 0; i < STOP_N; i++) {
        struct ttimer *t = &stop_timers[i];
        memset(t, 0, sizeof(*t));
        t->id = i;
        t->timer.fire = on_fire;
        t->timer.due_ns = later + (i < 100 ? 0u : i < 103 ? 1u : 2u);
        ptrs[i] = &t->timer;
    }
    stop_timers[10].victim = &stop_timers[50];
    assert_int_equal(loop_add_timers(loop, ptrs, STOP_N), 0);
    loop_stop(loop);
    for (int i = 0; i < STOP_N; i++) {
        assert_int_equal(atomic_load(&stop_timers[i].fired), 1);
        assert_int_equal(atomic_load(&stop_timers[i].status),
                         i == 50 ? -ECANCELED : -ESHUTDOWN);
        assert_true(stop_timers[i].timer.fired_ns == 0);
    }
    struct loop_stats s;
    loop_stats(loop, &s);
    assert_int_equal(s.timers, 0);
    assert_int_equal(s.timers_fired, STOP_N);
    loop_free(loop);
}

/* Transfers to a port that never answers: one in the multi, one still on
 * its way in, one never handed over. */
static struct tfetch rm_in, rm_pending, rm_idle;

static void remove_in_multi(struct loop *loop, struct tcall *c)
{
    (void)c;
    loop_fetch_remove(loop, &rm_in.f);
    loop_fetch_remove(loop, &rm_in.f); /* twice: nothing */
    loop_fetch_remove(loop, &rm_idle.f);
}

static void add_and_remove_fetch(struct loop *loop, struct tcall *c)
{
    struct loop_fetch *one = &rm_pending.f;
    c->rc = loop_add_fetches(loop, &one, 1);
    loop_fetch_remove(loop, &rm_pending.f);
}

static void test_fetch_remove(void **state)
{
    (void)state;
    char err[64], url[64];
    int port;
    int fd = listener(&port, true);
    struct loop *loop = loop_start(err, sizeof(err));
    assert_non_null(loop);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    struct tfetch *all[3] = {&rm_in, &rm_pending, &rm_idle};
    for (int i = 0; i < 3; i++) {
        memset(all[i], 0, sizeof(*all[i]));
        all[i]->f.easy = curl_easy_init();
        assert_non_null(all[i]->f.easy);
        curl_easy_setopt(all[i]->f.easy, CURLOPT_URL, url);
        all[i]->f.done = on_fetch;
    }
    struct loop_fetch *one = &rm_in.f;
    assert_int_equal(loop_add_fetches(loop, &one, 1), 0);
    struct tcall first = {.call.fn = on_call, .then = remove_in_multi};
    struct tcall second = {.call.fn = on_call, .then = add_and_remove_fetch};
    assert_int_equal(loop_call(loop, &first.call), 0);
    assert_int_equal(loop_call(loop, &second.call), 0);
    wait_call(&second);
    assert_int_equal(second.rc, 0);

    for (int i = 0; i < 2; i++) {
        assert_int_equal(atomic_load(&all[i]->done), 1);
        assert_int_equal(atomic_load(&all[i]->status), -ECANCELED);
        assert_int_equal(atomic_load(&all[i]->rc), CURLE_ABORTED_BY_CALLBACK);
    }
    assert_int_equal(atomic_load(&rm_idle.done), 0);
    struct loop_stats s;
    loop_stats(loop, &s);
    assert_int_equal(s.transfers, 0);
    assert_int_equal(s.transfers_done, 2);
    loop_free(loop);
    for (int i = 0; i < 3; i++)
        curl_easy_cleanup(all[i]->f.easy);
    close(fd);
}

/* A zeroed transfer of url that keeps no body and records its end. */
static void tfetch_init(struct tfetch *t, const char *url)
{
    memset(t, 0, sizeof(*t));
    t->f.easy = curl_easy_init();
    assert_non_null(t->f.easy);
    curl_easy_setopt(t->f.easy, CURLOPT_URL, url);
    curl_easy_setopt(t->f.easy, CURLOPT_WRITEFUNCTION, discard);
    t->f.done = on_fetch;
}

/* Sockets libcurl opened (CURLOPT_OPENSOCKETFUNCTION). */
static _Atomic int sockets_opened;

static curl_socket_t count_socket(void *arg, curlsocktype purpose,
                                  struct curl_sockaddr *addr)
{
    (void)arg;
    (void)purpose;
    atomic_fetch_add(&sockets_opened, 1);
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

#define BURST (2 * LOOP_START_BATCH + 5)
static struct tfetch burst[BURST];
static int burst_started; /* sockets opened when the second call ran */

static void count_started(struct loop *loop, struct tcall *c)
{
    (void)loop;
    (void)c;
    burst_started = atomic_load(&sockets_opened);
}

/* On the loop thread: hands the burst over, removes its first and last
 * while they wait, and looks again one turn later. */
static void add_burst(struct loop *loop, struct tcall *c)
{
    struct loop_fetch *all[BURST];
    for (int i = 0; i < BURST; i++)
        all[i] = &burst[i].f;
    c->rc = loop_add_fetches(loop, all, BURST);
    loop_fetch_remove(loop, &burst[0].f);
    loop_fetch_remove(loop, &burst[BURST - 1].f);
    loop_fetch_remove(loop, &burst[BURST - 1].f); /* twice: nothing */
    static struct tcall next = {.call.fn = on_call, .then = count_started};
    assert_int_equal(loop_call(loop, &next.call), 0);
}

static void test_fetch_batches(void **state)
{
    (void)state;
    char err[64], url[64];
    int port;
    int fd = listener(&port, true); /* never answers */
    struct loop *loop = loop_start(err, sizeof(err));
    assert_non_null(loop);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    atomic_store(&sockets_opened, 0);
    for (int i = 0; i < BURST; i++) {
        tfetch_init(&burst[i], url);
        curl_easy_setopt(burst[i].f.easy, CURLOPT_OPENSOCKETFUNCTION,
                         count_socket);
    }
    struct tcall first = {.call.fn = on_call, .then = add_burst};
    assert_int_equal(loop_call(loop, &first.call), 0);
    wait_call(&first);
    assert_int_equal(first.rc, 0);
    /* Removed while waiting: ended at once, never connected. */
    for (int i = 0; i < BURST; i += BURST - 1) {
        assert_int_equal(atomic_load(&burst[i].done), 1);
        assert_int_equal(atomic_load(&burst[i].status), -ECANCELED);
        assert_int_equal(atomic_load(&burst[i].rc), CURLE_ABORTED_BY_CALLBACK);
    }
    /* Every batch connects within its turn, so after the burst's first
     * turn exactly one batch had opened its sockets. */
    uint64_t until = clock_now_ns() + WAIT_NS;
    while (atomic_load(&sockets_opened) < BURST - 2)
        assert_true(clock_now_ns() < until);
    loop_stop(loop);
    assert_int_equal(burst_started, LOOP_START_BATCH);
    assert_int_equal(atomic_load(&sockets_opened), BURST - 2);
    for (int i = 1; i < BURST - 1; i++) {
        assert_int_equal(atomic_load(&burst[i].done), 1);
        assert_int_equal(atomic_load(&burst[i].status), -ESHUTDOWN);
        assert_int_equal(atomic_load(&burst[i].rc), CURLE_ABORTED_BY_CALLBACK);
    }
    struct loop_stats s;
    loop_stats(loop, &s);
    assert_int_equal(s.transfers, 0);
    assert_int_equal(s.transfers_done, BURST);
    loop_free(loop);
    for (int i = 0; i < BURST; i++)
        curl_easy_cleanup(burst[i].f.easy);
    close(fd);
}

/* Answers every connection on fd with a 200, one after another, until
 * it has answered n of them. */
struct responder {
    int fd, n;
};

static void *respond(void *arg)
{
    const struct responder *r = arg;
    static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                 "Connection: close\r\n\r\nok";
    for (int i = 0; i < r->n; i++) {
        int c = accept(r->fd, NULL, NULL);
        if (c < 0)
            break;
        char head[1024];
        size_t len = 0;
        while (len < sizeof(head) - 1) {
            ssize_t got = read(c, head + len, sizeof(head) - 1 - len);
            if (got <= 0)
                break;
            len += (size_t)got;
            head[len] = '\0';
            if (strstr(head, "\r\n\r\n"))
                break;
        }
        if (write(c, answer, sizeof(answer) - 1) < 0)
            break;
        close(c);
    }
    return NULL;
}

/* Three batches and more, to a server that answers: every one ends once,
 * with its answer. */
static void test_fetch_burst_completes(void **state)
{
    (void)state;
    char err[64], url[64];
    int port;
    struct responder r = {.n = BURST};
    r.fd = listener(&port, false);
    assert_int_equal(listen(r.fd, BURST), 0);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, respond, &r), 0);
    struct loop *loop = loop_start(err, sizeof(err));
    assert_non_null(loop);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    struct loop_fetch *all[BURST];
    for (int i = 0; i < BURST; i++) {
        tfetch_init(&burst[i], url);
        all[i] = &burst[i].f;
    }
    assert_int_equal(loop_add_fetches(loop, all, BURST), 0);
    for (int i = 0; i < BURST; i++)
        wait_set(&burst[i].done);
    struct loop_stats s;
    loop_stats(loop, &s);
    assert_int_equal(s.transfers, 0);
    assert_int_equal(s.transfers_done, BURST);
    loop_free(loop);
    pthread_join(thread, NULL);
    for (int i = 0; i < BURST; i++) {
        assert_int_equal(atomic_load(&burst[i].done), 1);
        assert_int_equal(atomic_load(&burst[i].status), 0);
        assert_int_equal(atomic_load(&burst[i].rc), CURLE_OK);
        long code = 0;
        curl_easy_getinfo(burst[i].f.easy, CURLINFO_RESPONSE_CODE, &code);
        assert_int_equal(code, 200);
        curl_easy_cleanup(burst[i].f.easy);
    }
    close(r.fd);
}

/*
 * The loop's epoll_ctl() (this definition comes before libc's): when
 * fail_watch is set, watching a socket fails with ENOMEM.
 */
static int (*real_epoll_ctl)(int, int, int, struct epoll_event *);
static _Atomic bool fail_watch;

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
    if (op != EPOLL_CTL_DEL && atomic_load(&fail_watch)) {
        errno = ENOMEM;
        return -1;
    }
    return real_epoll_ctl(epfd, op, fd, event);
}

static void test_fetch_unwatched_times_out(void **state)
{
    (void)state;
    char err[64], url[64];
    int silent_port;
    int silent_fd = listener(&silent_port, true);
    struct responder r = {.n = 1};
    int port;
    r.fd = listener(&port, false);
    assert_int_equal(listen(r.fd, 4), 0);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, respond, &r), 0);
    struct loop *loop = loop_start(err, sizeof(err));
    assert_non_null(loop);

    /* Its socket is never watched: it ends at its own timeout. */
    struct tfetch a, b;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", silent_port);
    tfetch_init(&a, url);
    curl_easy_setopt(a.f.easy, CURLOPT_TIMEOUT_MS, 200L);
    struct loop_fetch *one = &a.f;
    atomic_store(&fail_watch, true);
    assert_int_equal(loop_add_fetches(loop, &one, 1), 0);
    wait_set(&a.done);
    atomic_store(&fail_watch, false);
    assert_int_equal(atomic_load(&a.status), 0);
    assert_int_equal(atomic_load(&a.rc), CURLE_OPERATION_TIMEDOUT);

    /* The next transfer runs as usual. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    tfetch_init(&b, url);
    one = &b.f;
    assert_int_equal(loop_add_fetches(loop, &one, 1), 0);
    wait_set(&b.done);
    assert_int_equal(atomic_load(&b.status), 0);
    assert_int_equal(atomic_load(&b.rc), CURLE_OK);
    long code = 0;
    curl_easy_getinfo(b.f.easy, CURLINFO_RESPONSE_CODE, &code);
    assert_int_equal(code, 200);

    loop_free(loop);
    pthread_join(thread, NULL);
    curl_easy_cleanup(a.f.easy);
    curl_easy_cleanup(b.f.easy);
    close(r.fd);
    close(silent_fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers_in_order),
        cmocka_unit_test(test_many_timers),
        cmocka_unit_test(test_stop_cancels),
        cmocka_unit_test(test_bound),
        cmocka_unit_test(test_fetch_refused_and_cancelled),
        cmocka_unit_test(test_call),
        cmocka_unit_test(test_timer_remove),
        cmocka_unit_test(test_chains_in_order),
        cmocka_unit_test(test_many_due_times),
        cmocka_unit_test(test_chain_remove),
        cmocka_unit_test(test_chain_stop),
        cmocka_unit_test(test_fetch_remove),
        cmocka_unit_test(test_fetch_batches),
        cmocka_unit_test(test_fetch_burst_completes),
        cmocka_unit_test(test_fetch_unwatched_times_out),
    };
    real_epoll_ctl = (int (*)(int, int, int, struct epoll_event *))dlsym(
        RTLD_NEXT, "epoll_ctl");
    if (!real_epoll_ctl)
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests_name("loop", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
