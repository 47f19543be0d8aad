/*
 * Unit tests of the /run/fetch result collector (handlers/fetch.h): what
 * each kind of outcome reports, and the tally.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../handlers/fetch.h"

static void test_success(void **state)
{
    (void)state;
    struct fetch_outcome o = {.bytes = 36};
    fetch_outcome_finish(&o, CURLE_OK, 200, 100500, "", 1024);
    assert_false(o.has_error);
    assert_int_equal(o.status, 200);
    assert_true(o.ms > 100.49 && o.ms < 100.51);
    assert_int_equal(o.bytes, 36);
}

/* A 404 is an answer, not a failed transfer: no error, but not ok. */
static void test_http_error_status(void **state)
{
    (void)state;
    struct fetch_outcome o = {.bytes = 56};
    fetch_outcome_finish(&o, CURLE_OK, 404, 300, "", 1024);
    assert_false(o.has_error);
    const struct fetch_outcome *one[] = {&o};
    uint64_t ok, bytes;
    fetch_outcome_tally(one, 1, &ok, &bytes);
    assert_int_equal(ok, 0);
    assert_int_equal(bytes, 56);
}

static void test_transfer_error(void **state)
{
    (void)state;
    struct fetch_outcome a = {0}, b = {0};
    fetch_outcome_finish(&a, CURLE_COULDNT_CONNECT, 0, 0,
                         "Failed to connect to 127.0.0.1 port 9: refused",
                         1024);
    assert_true(a.has_error);
    assert_string_equal(a.error,
                        "Failed to connect to 127.0.0.1 port 9: refused");
    /* Without an error buffer, libcurl's words for the code. */
    fetch_outcome_finish(&b, CURLE_OPERATION_TIMEDOUT, 0, 0, "", 1024);
    assert_true(b.has_error);
    assert_string_equal(b.error, curl_easy_strerror(CURLE_OPERATION_TIMEDOUT));
}

/* The body cap wins over the write error libcurl reports for it. */
static void test_too_big(void **state)
{
    (void)state;
    struct fetch_outcome o = {.bytes = 2000, .too_big = true};
    fetch_outcome_finish(&o, CURLE_WRITE_ERROR, 200, 10, "Failure writing",
                         1000);
    assert_true(o.has_error);
    assert_string_equal(o.error,
                        "body larger than 1000 bytes (--fetch-max-bytes)");
}

static void test_long_error_capped(void **state)
{
    (void)state;
    char longer[400];
    memset(longer, 'x', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    struct fetch_outcome o = {0};
    fetch_outcome_finish(&o, CURLE_RECV_ERROR, 0, 0, longer, 10);
    assert_true(strlen(o.error) < FETCH_ERROR_MAX);
    assert_true(strlen(o.error) >= 100);
}

static void test_tally(void **state)
{
    (void)state;
    struct fetch_outcome o[4] = {
        {.bytes = 10, .status = 200},
        {.bytes = 20, .status = 302},
        {.bytes = 30, .status = 500},
        {.bytes = 5, .status = 200, .has_error = true},
    };
    const struct fetch_outcome *all[] = {&o[0], &o[1], &o[2], &o[3]};
    uint64_t ok = 99, bytes = 99;
    fetch_outcome_tally(all, 4, &ok, &bytes);
    assert_int_equal(ok, 2);
    assert_int_equal(bytes, 65);
    fetch_outcome_tally(all, 0, &ok, &bytes);
    assert_int_equal(ok, 0);
    assert_int_equal(bytes, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success),
        cmocka_unit_test(test_http_error_status),
        cmocka_unit_test(test_transfer_error),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_long_error_capped),
        cmocka_unit_test(test_tally),
    };
    return cmocka_run_group_tests_name("fetch", tests, NULL, NULL);
}
