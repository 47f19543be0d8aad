/*
 * Unit tests of server/loop.c: timers fire in deadline order, many at once
 * cost no thread, a stop cancels what is left, the bounds hold, and
 * transfers complete (or are cancelled) through the callback.
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
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../server/clock.h"
#include "../../server/loop.h"

#define WAIT_NS (10ull * 1000000000ull)

struct ttimer {
    struct loop_timer timer;
    int id;
    _Atomic int fired;
    _Atomic bool cancelled;
};

static _Atomic int order_len;
static int order[64];

static void on_fire(struct loop_timer *t, bool cancelled)
{
    struct ttimer *tt = (struct ttimer *)t;
    if (!cancelled) {
        int i = atomic_fetch_add(&order_len, 1);
        if (i < 64)
            order[i] = tt->id;
    }
    atomic_store(&tt->cancelled, cancelled);
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
    loop_stop(loop);
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
    loop_stop(loop);
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
        assert_true(atomic_load(&t[i].cancelled));
    }
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
    loop_stop(loop);
}

struct tfetch {
    struct loop_fetch f;
    _Atomic int done;
    _Atomic int rc;
};

static void on_fetch(struct loop_fetch *f, CURLcode rc)
{
    struct tfetch *t = (struct tfetch *)f;
    atomic_store(&t->rc, rc);
    atomic_fetch_add(&t->done, 1);
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
    assert_int_equal(atomic_load(&b.done), 1);
    assert_int_equal(atomic_load(&b.rc), CURLE_ABORTED_BY_CALLBACK);
    curl_easy_cleanup(a.f.easy);
    curl_easy_cleanup(b.f.easy);
    close(closed_fd);
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
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests_name("loop", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
