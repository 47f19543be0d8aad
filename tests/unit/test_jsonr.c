/*
 * Unit tests of server/jsonr.c: the request-body scanner (validation,
 * positions in errors, member records) and the item iterator.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../server/jsonr.h"

static int scan(struct jsonr_doc *doc, const char *text, char *err)
{
    return jsonr_scan(doc, text, strlen(text), err, JSONR_ERROR_MAX + 64);
}

static void test_members(void **state)
{
    struct jsonr_doc doc;
    char err[JSONR_ERROR_MAX + 64] = "";
    (void)state;
    const char *t = " {\"numbers\": [1, -2, 30], \"mode\": \"thr\\u0065ads\", "
                    "\"tasks\": 2, \"x\": [1, \"a\"], \"r\": 1.5e3} ";
    assert_int_equal(scan(&doc, t, err), 0);
    assert_int_equal(doc.n, 5);
    assert_string_equal(doc.members[0].key, "numbers");
    assert_int_equal(doc.members[0].type, JSONR_ARRAY);
    assert_int_equal(doc.members[0].n_items, 3);
    assert_false(doc.members[0].mixed);
    assert_int_equal(doc.members[0].item, JSONR_INTEGER);
    assert_int_equal(doc.members[1].type, JSONR_STRING);
    char *mode = jsonr_string_dup(t + doc.members[1].at,
                                  doc.members[1].end - doc.members[1].at);
    assert_string_equal(mode, "threads");
    free(mode);
    assert_int_equal(doc.members[2].type, JSONR_INTEGER);
    assert_true(doc.members[3].mixed);
    assert_int_equal(doc.members[3].first_other, 1);
    assert_int_equal(doc.members[3].other, JSONR_STRING);
    assert_int_equal(doc.members[4].type, JSONR_NUMBER);

    struct jsonr_iter it;
    enum jsonr_type type;
    const char *at;
    size_t len;
    int64_t want[] = {1, -2, 30};
    size_t n = 0;
    jsonr_iter_init(&it, &doc, &doc.members[0]);
    while (jsonr_next_item(&it, &type, &at, &len)) {
        assert_int_equal(type, JSONR_INTEGER);
        assert_true(jsonr_integer(at, len) == want[n]);
        n++;
    }
    assert_int_equal(n, 3);
}

static void test_errors(void **state)
{
    static const struct {
        const char *text;
        const char *fragment;
    } cases[] = {
        {"", "byte 0 (line 1, column 1): expected a JSON object"},
        {"[1]", "byte 0"},
        {"{\"a\": [1, 2,}", "byte 12"},
        {"{\"a\": 1,\n \"b\" 2}", "byte 14 (line 2, column 6): expected ':'"},
        {"{\"a\": 01}", "expected ',' or '}'"},
        {"{\"a\": \"\\u0000\"}", "NUL"},
        {"{\"a\": \"\xc0\xaf\"}", "UTF-8"},
        {"{\"a\": \"\\ud800\"}", "low surrogate"},
        {"{\"a\": tru}", "a value"},
        {"{\"a\": 1} x", "the end of the body"},
        {"{\"a\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]"
         "]]]]]]]]]]]]}",
         "nested"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct jsonr_doc doc;
        char err[JSONR_ERROR_MAX + 64] = "";
        assert_int_equal(scan(&doc, cases[i].text, err), -EINVAL);
        if (!strstr(err, cases[i].fragment))
            fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].fragment);
    }
}

static void test_limits(void **state)
{
    struct jsonr_doc doc;
    char err[JSONR_ERROR_MAX + 64] = "";
    char text[1024] = "{";
    (void)state;
    for (int i = 0; i <= JSONR_MEMBERS_MAX; i++) {
        size_t used = strlen(text);
        snprintf(text + used, sizeof(text) - used, "%s\"k%d\": %d",
                 i ? ", " : "", i, i);
    }
    strcat(text, "}");
    assert_int_equal(scan(&doc, text, err), -E2BIG);
    assert_true(jsonr_integer("99999999999999999999", 20) == INT64_MAX);
    assert_true(jsonr_integer("-99999999999999999999", 21) == INT64_MIN);
    assert_true(jsonr_integer("-9223372036854775808", 20) == INT64_MIN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_members),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
