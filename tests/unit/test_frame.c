/*
 * Unit tests of server/frame.c: whole frames, frames cut into pieces by a
 * non-blocking socket, oversized frames refused on both sides.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../server/frame.h"

struct pair {
    int a, b;
};

static int setup(void **state)
{
    static struct pair p;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    p.a = sv[0];
    p.b = sv[1];
    fcntl(p.b, F_SETFL, O_NONBLOCK);
    *state = &p;
    return 0;
}

static int teardown(void **state)
{
    struct pair *p = *state;
    close(p->a);
    if (p->b >= 0)
        close(p->b);
    return 0;
}

static void test_blocking_round_trip(void **state)
{
    struct pair *p = *state;
    const char msg[] = "hello worker";
    char buf[64];
    uint32_t type;
    size_t len;

    assert_int_equal(frame_send(p->a, 7, msg, sizeof(msg)), 0);
    fcntl(p->b, F_SETFL, 0);
    assert_int_equal(frame_recv(p->b, &type, buf, sizeof(buf), &len), 0);
    fcntl(p->b, F_SETFL, O_NONBLOCK);
    assert_int_equal(type, 7);
    assert_int_equal(len, sizeof(msg));
    assert_memory_equal(buf, msg, sizeof(msg));
}

static void test_empty_payload(void **state)
{
    struct pair *p = *state;
    struct frame_reader r;
    frame_reader_init(&r);
    assert_int_equal(frame_send(p->a, 3, NULL, 0), 0);
    assert_int_equal(frame_reader_read(&r, p->b), 0);
    assert_int_equal(r.type, 3);
    assert_int_equal(r.len, 0);
    assert_int_equal(frame_reader_read(&r, p->b), -EAGAIN);
    frame_reader_cleanup(&r);
}

/* One byte at a time: the reader must wait for the rest, then deliver. */
static void test_partial_reads(void **state)
{
    struct pair *p = *state;
    struct frame_writer w;
    struct frame_reader r;
    uint8_t payload[300];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7);

    frame_writer_init(&w);
    frame_reader_init(&r);
    assert_int_equal(frame_writer_put(&w, 9, payload, sizeof(payload)), 0);
    size_t total = w.len;
    for (size_t i = 0; i < total; i++) {
        assert_int_equal(write(p->a, w.buf + i, 1), 1);
        int rc = frame_reader_read(&r, p->b);
        if (i + 1 < total)
            assert_int_equal(rc, -EAGAIN);
        else
            assert_int_equal(rc, 0);
    }
    assert_int_equal(r.type, 9);
    assert_int_equal(r.len, sizeof(payload));
    assert_memory_equal(r.payload, payload, sizeof(payload));
    frame_writer_cleanup(&w);
    frame_reader_cleanup(&r);
}

/* Two frames in one write come out as two frames. */
static void test_back_to_back(void **state)
{
    struct pair *p = *state;
    struct frame_reader r;
    frame_reader_init(&r);
    assert_int_equal(frame_send(p->a, 1, "ab", 2), 0);
    assert_int_equal(frame_send(p->a, 2, "cde", 3), 0);
    assert_int_equal(frame_reader_read(&r, p->b), 0);
    assert_int_equal(r.type, 1);
    assert_memory_equal(r.payload, "ab", 2);
    assert_int_equal(frame_reader_read(&r, p->b), 0);
    assert_int_equal(r.type, 2);
    assert_memory_equal(r.payload, "cde", 3);
    frame_reader_cleanup(&r);
}

/* A writer facing a full socket keeps the rest and finishes later. */
static void test_partial_writes(void **state)
{
    struct pair *p = *state;
    struct frame_writer w;
    struct frame_reader r;
    size_t size = 900 * 1024;
    uint8_t *big = malloc(size);
    assert_non_null(big);
    for (size_t i = 0; i < size; i++)
        big[i] = (uint8_t)(i % 251);

    frame_writer_init(&w);
    frame_reader_init(&r);
    fcntl(p->a, F_SETFL, O_NONBLOCK);
    assert_int_equal(frame_writer_put(&w, 5, big, size), 0);
    int rc = frame_writer_flush(&w, p->a);
    assert_int_equal(rc, -EAGAIN); /* larger than the socket buffer */
    assert_true(frame_writer_pending(&w));

    int guard = 0;
    for (;;) {
        int rr = frame_reader_read(&r, p->b);
        if (rr == 0)
            break;
        assert_int_equal(rr, -EAGAIN);
        frame_writer_flush(&w, p->a);
        assert_true(++guard < 100000);
    }
    assert_false(frame_writer_pending(&w));
    assert_int_equal(r.len, size);
    assert_memory_equal(r.payload, big, size);
    fcntl(p->a, F_SETFL, 0);
    frame_writer_cleanup(&w);
    frame_reader_cleanup(&r);
    free(big);
}

static void test_oversized_refused(void **state)
{
    struct pair *p = *state;
    struct frame_writer w;
    struct frame_reader r;
    uint8_t header[FRAME_HEADER_SIZE];
    uint32_t len = FRAME_PAYLOAD_MAX + 1, type = 1;

    frame_writer_init(&w);
    assert_int_equal(frame_writer_put(&w, 1, "", FRAME_PAYLOAD_MAX + 1),
                     -EMSGSIZE);
    assert_int_equal(frame_send(p->a, 1, "", FRAME_PAYLOAD_MAX + 1), -EMSGSIZE);
    frame_writer_cleanup(&w);

    /* A peer announcing too much is refused before any allocation. */
    memcpy(header, &len, 4);
    memcpy(header + 4, &type, 4);
    assert_int_equal(write(p->a, header, sizeof(header)), sizeof(header));
    frame_reader_init(&r);
    assert_int_equal(frame_reader_read(&r, p->b), -EMSGSIZE);
    assert_null(r.payload);
    frame_reader_cleanup(&r);
}

/*
 * Found by fuzz/fuzz_frame.c: after -EMSGSIZE the reader kept the oversized
 * length and, called again, read the bytes behind the header into the
 * previous frame's payload buffer (a heap overflow) or through a NULL
 * pointer. The error is final: every later call answers -EMSGSIZE again and
 * reads nothing.
 */
static void expect_oversized_is_final(struct pair *p, bool frame_before)
{
    struct frame_reader r;
    uint8_t header[FRAME_HEADER_SIZE];
    uint8_t tail[64];
    uint32_t len = FRAME_PAYLOAD_MAX + 1, type = 1;

    frame_reader_init(&r);
    if (frame_before) {
        assert_int_equal(frame_send(p->a, 7, "hi", 2), 0);
        assert_int_equal(frame_reader_read(&r, p->b), 0);
        assert_int_equal(r.len, 2);
    }
    memcpy(header, &len, 4);
    memcpy(header + 4, &type, 4);
    memset(tail, 'A', sizeof(tail));
    assert_int_equal(write(p->a, header, sizeof(header)), sizeof(header));
    assert_int_equal(write(p->a, tail, sizeof(tail)), sizeof(tail));
    assert_int_equal(frame_reader_read(&r, p->b), -EMSGSIZE);
    assert_int_equal(frame_reader_read(&r, p->b), -EMSGSIZE);
    assert_int_equal(frame_reader_read(&r, p->b), -EMSGSIZE);
    /* Nothing was consumed after the header. */
    assert_int_equal(read(p->b, tail, sizeof(tail)), sizeof(tail));
    frame_reader_cleanup(&r);
}

static void test_oversized_is_final(void **state)
{
    expect_oversized_is_final(*state, false);
}

static void test_oversized_after_a_frame_is_final(void **state)
{
    expect_oversized_is_final(*state, true);
}

static void test_recv_cap(void **state)
{
    struct pair *p = *state;
    char small[4];
    uint32_t type;
    size_t len;
    assert_int_equal(frame_send(p->a, 1, "too long", 8), 0);
    fcntl(p->b, F_SETFL, 0);
    assert_int_equal(frame_recv(p->b, &type, small, sizeof(small), &len),
                     -EMSGSIZE);
    fcntl(p->b, F_SETFL, O_NONBLOCK);
}

static void test_peer_closed(void **state)
{
    struct pair *p = *state;
    struct frame_reader r;
    frame_reader_init(&r);
    assert_int_equal(write(p->a, "\x05\x00", 2), 2); /* half a header */
    close(p->a);
    p->a = socket(AF_UNIX, SOCK_STREAM, 0); /* for teardown */
    assert_int_equal(frame_reader_read(&r, p->b), -EPIPE);
    frame_reader_cleanup(&r);

    uint32_t type;
    size_t len;
    char buf[8];
    fcntl(p->b, F_SETFL, 0);
    assert_int_equal(frame_recv(p->b, &type, buf, sizeof(buf), &len), -EPIPE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_blocking_round_trip, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_empty_payload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_back_to_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_oversized_is_final, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_oversized_after_a_frame_is_final,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_recv_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_closed, setup, teardown),
    };
    return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}
