/*
 * Unit tests of server/response.c: JSON bodies, the API's error shape,
 * headers and their cap, moving and cleaning up (body and file). The
 * fixture holds one initialised response and cleans it up afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "../../server/response.h"

static int setup_response(void **state);
static int teardown_response(void **state);
static json_t *parse_body(const struct response *r);
static const char *header_value(const struct response *r, const char *name);
static void expect_empty(const struct response *r);
static void expect_fd_closed(int fd);

static int setup_response(void **state)
{
    struct response *r = malloc(sizeof(*r));
    if (!r)
        return -1;
    response_init(r);
    *state = r;
    return 0;
}

static int teardown_response(void **state)
{
    struct response *r = *state;
    response_cleanup(r);
    free(r);
    return 0;
}

/* The body as JSON (caller decrefs); fails the test when it is not. */
static json_t *parse_body(const struct response *r)
{
    json_error_t jerr;

    assert_non_null(r->body);
    assert_int_equal(strlen(r->body), r->body_len);
    json_t *body = json_loadb(r->body, r->body_len, 0, &jerr);
    if (!body)
        fail_msg("body is not JSON (%s): %s", jerr.text, r->body);
    return body;
}

static const char *header_value(const struct response *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        if (strcmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    }
    return NULL;
}

static void expect_empty(const struct response *r)
{
    assert_int_equal(r->status, 0);
    assert_null(r->content_type);
    assert_null(r->body);
    assert_int_equal(r->body_len, 0);
    assert_int_equal(r->fd, -1);
    assert_int_equal(r->fd_size, 0);
    assert_int_equal(r->n_headers, 0);
}

static void expect_fd_closed(int fd)
{
    errno = 0;
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    assert_int_equal(errno, EBADF);
}

static void init_is_empty(void **state)
{
    struct response r;

    (void)state;
    memset(&r, 0x5a, sizeof(r));
    response_init(&r);
    expect_empty(&r);
}

static void json_sets_status_body_and_type(void **state)
{
    struct response *r = *state;

    assert_int_equal(
        response_json(r, 201, json_pack("{s:i,s:s}", "a", 1, "b", "x")), 0);
    assert_int_equal(r->status, 201);
    assert_string_equal(r->content_type, CONTENT_TYPE_JSON);
    assert_string_equal(r->body, "{\"a\":1,\"b\":\"x\"}");
    assert_int_equal(r->body_len, strlen(r->body));
}

static void json_replaces_earlier_body(void **state)
{
    struct response *r = *state;

    assert_int_equal(response_json(r, 200, json_pack("{s:s}", "k", "first")),
                     0);
    assert_int_equal(response_json(r, 202, json_array()), 0);
    assert_int_equal(r->status, 202);
    assert_string_equal(r->body, "[]");
    assert_int_equal(r->body_len, 2);
}

static void json_real_precision(void **state)
{
    struct response *r = *state;

    assert_int_equal(response_json(r, 200, json_pack("{s:f}", "x", 0.1)), 0);
    assert_string_equal(r->body, "{\"x\":0.1}");
}

static void json_null_is_a_500(void **state)
{
    struct response *r = *state;

    /* A failed json_pack() hands NULL over: the answer becomes a 500. */
    assert_int_equal(response_json(r, 200, NULL), -ENOMEM);
    assert_int_equal(r->status, 500);
    assert_string_equal(r->content_type, CONTENT_TYPE_JSON);
    json_t *body = parse_body(r);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(body, "error"), "status")),
                     500);
    json_decref(body);
}

static void error_shape(void **state)
{
    struct response *r = *state;

    response_error(r, 400, "parameter '%s': bad %d", "n", 7);
    assert_int_equal(r->status, 400);
    assert_string_equal(r->content_type, CONTENT_TYPE_JSON);
    json_t *body = parse_body(r);
    assert_int_equal(json_object_size(body), 1);
    json_t *error = json_object_get(body, "error");
    assert_true(json_is_object(error));
    assert_int_equal(json_object_size(error), 2);
    assert_true(json_is_integer(json_object_get(error, "status")));
    assert_int_equal(json_integer_value(json_object_get(error, "status")), 400);
    assert_string_equal(json_string_value(json_object_get(error, "message")),
                        "parameter 'n': bad 7");
    json_decref(body);
    assert_null(header_value(r, "Retry-After"));
    assert_int_equal(r->n_headers, 0);
}

static void error_escapes_json_specials(void **state)
{
    struct response *r = *state;

    response_error(r, 404, "no such file: \"a\\b\"\n");
    json_t *body = parse_body(r);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(body, "error"), "message")),
                        "no such file: \"a\\b\"\n");
    json_decref(body);
}

static void error_503_has_retry_after(void **state)
{
    struct response *r = *state;

    response_error(r, 503, "queue full");
    assert_int_equal(r->status, 503);
    assert_string_equal(header_value(r, "Retry-After"), "1");
    assert_int_equal(r->n_headers, 1);
    json_t *body = parse_body(r);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(body, "error"), "status")),
                     503);
    json_decref(body);
}

static void error_message_is_capped(void **state)
{
    struct response *r = *state;
    char text[2000];

    memset(text, 'm', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    response_error(r, 400, "%s", text);
    assert_int_equal(r->status, 400);
    json_t *body = parse_body(r);
    const char *message = json_string_value(
        json_object_get(json_object_get(body, "error"), "message"));
    assert_non_null(message);
    assert_in_range(strlen(message), 1, 511);
    json_decref(body);
}

static void header_added_and_cut(void **state)
{
    struct response *r = *state;
    char value[RESPONSE_HEADER_VALUE_MAX + 50];

    assert_int_equal(response_header(r, "X-One", "1"), 0);
    memset(value, 'v', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    assert_int_equal(response_header(r, "X-Long", value), 0);
    assert_int_equal(r->n_headers, 2);
    assert_string_equal(header_value(r, "X-One"), "1");
    assert_int_equal(strlen(header_value(r, "X-Long")),
                     RESPONSE_HEADER_VALUE_MAX - 1);
    /* The value is a copy. */
    value[0] = 'w';
    assert_int_equal(header_value(r, "X-Long")[0], 'v');
}

static void header_cap(void **state)
{
    struct response *r = *state;
    char value[16];

    for (int i = 0; i < RESPONSE_HEADERS_MAX; i++) {
        snprintf(value, sizeof(value), "%d", i);
        assert_int_equal(response_header(r, "X-N", value), 0);
    }
    assert_int_equal(response_header(r, "X-Extra", "x"), -ENOSPC);
    assert_int_equal(r->n_headers, RESPONSE_HEADERS_MAX);
    assert_null(header_value(r, "X-Extra"));
    assert_string_equal(r->headers[RESPONSE_HEADERS_MAX - 1].value, "7");
}

static void move_empties_source(void **state)
{
    struct response *dst = *state;
    struct response src;
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    assert_true(fd >= 0);
    response_init(&src);
    response_error(&src, 503, "busy");
    src.fd = fd;
    src.fd_size = 42;
    char *body = src.body;

    response_move(dst, &src);
    expect_empty(&src);
    assert_int_equal(dst->status, 503);
    assert_ptr_equal(dst->body, body);
    assert_int_equal(dst->fd, fd);
    assert_int_equal(dst->fd_size, 42);
    assert_string_equal(header_value(dst, "Retry-After"), "1");
    /* Cleaning the source must not touch what moved. */
    response_cleanup(&src);
    assert_int_not_equal(fcntl(fd, F_GETFD), -1);
    response_cleanup(dst);
    expect_fd_closed(fd);
}

static void cleanup_closes_fd(void **state)
{
    struct response *r = *state;
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    assert_true(fd >= 0);
    assert_int_not_equal(fcntl(fd, F_GETFD), -1);
    r->status = 200;
    r->fd = fd;
    r->fd_size = 0;
    response_header(r, "ETag", "\"x\"");
    response_cleanup(r);
    expect_fd_closed(fd);
    expect_empty(r);
}

static void cleanup_frees_body_and_is_repeatable(void **state)
{
    struct response *r = *state;

    response_error(r, 500, "boom");
    assert_non_null(r->body);
    response_cleanup(r);
    expect_empty(r);
    response_cleanup(r);
    expect_empty(r);
}

int main(void)
{
#define T(name)                                                                \
    cmocka_unit_test_setup_teardown(name, setup_response, teardown_response)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(init_is_empty),
        T(json_sets_status_body_and_type),
        T(json_replaces_earlier_body),
        T(json_real_precision),
        T(json_null_is_a_500),
        T(error_shape),
        T(error_escapes_json_specials),
        T(error_503_has_retry_after),
        T(error_message_is_capped),
        T(header_added_and_cut),
        T(header_cap),
        T(move_empties_source),
        T(cleanup_closes_fd),
        T(cleanup_frees_body_and_is_repeatable),
    };
#undef T
    return cmocka_run_group_tests_name("response", tests, NULL, NULL);
}
