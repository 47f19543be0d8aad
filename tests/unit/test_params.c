/*
 * Unit tests of server/params.c: the strict query-string parser and its
 * typed getters. Each test gets a zeroed struct params from the fixture
 * (heap, it is a few kilobytes) and the teardown cleans it up, so a test
 * parses at most once into it; tests that need several parses use
 * expect_parse_error(), which has its own struct.
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

#include "../../server/params.h"

static int setup_params(void **state);
static int teardown_params(void **state);
static void expect_parse_error(const char *query, const char *fragment);
static void expect_error_has(const struct params *p, const char *fragment);
static bool all_printable(const char *text);
static char *repeat(const char *prefix, char c, size_t n);

static const char *const modes[] = {"fast", "slow", "auto"};
#define N_MODES (sizeof(modes) / sizeof(modes[0]))

static int setup_params(void **state)
{
    struct params *p = calloc(1, sizeof(*p));
    if (!p)
        return -1;
    *state = p;
    return 0;
}

static int teardown_params(void **state)
{
    struct params *p = *state;
    params_cleanup(p);
    free(p);
    return 0;
}

/* Asserts that query is refused with a message containing fragment. */
static void expect_parse_error(const char *query, const char *fragment)
{
    struct params p;
    int rc = params_parse(&p, query);
    if (rc != -EINVAL || !strstr(params_error(&p), fragment)) {
        fail_msg("query '%.60s': rc %d, message '%s' (wanted -EINVAL and "
                 "'%s')",
                 query, rc, params_error(&p), fragment);
    }
    params_cleanup(&p);
}

static void expect_error_has(const struct params *p, const char *fragment)
{
    if (!strstr(params_error(p), fragment))
        fail_msg("message '%s' lacks '%s'", params_error(p), fragment);
}

/* True when every byte of text is printable ASCII. */
static bool all_printable(const char *text)
{
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        if (*c < 0x20 || *c >= 0x7f)
            return false;
    }
    return true;
}

/* A new string: prefix then n copies of c. Caller frees. */
static char *repeat(const char *prefix, char c, size_t n)
{
    size_t len = strlen(prefix);
    char *s = malloc(len + n + 1);
    assert_non_null(s);
    memcpy(s, prefix, len);
    memset(s + len, c, n);
    s[len + n] = '\0';
    return s;
}

/* ---- params_parse ---- */

static void parse_null_query(void **state)
{
    struct params *p = *state;

    assert_int_equal(params_parse(p, NULL), 0);
    assert_int_equal(p->n, 0);
    assert_string_equal(params_error(p), "");
    assert_int_equal(params_finish(p), 0);
}

static void parse_empty_query(void **state)
{
    struct params *p = *state;
    int64_t v = 0;

    assert_int_equal(params_parse(p, ""), 0);
    assert_int_equal(p->n, 0);
    assert_false(params_has(p, "n"));
    assert_int_equal(params_int(p, "n", 0, 10, 7, &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(params_finish(p), 0);
}

static void parse_splits_on_ampersand(void **state)
{
    struct params *p = *state;

    assert_int_equal(params_parse(p, "&a=1&&b=22&&&c=333&"), 0);
    assert_int_equal(p->n, 3);
    assert_string_equal(p->items[0].key, "a");
    assert_string_equal(p->items[0].value, "1");
    assert_string_equal(p->items[1].key, "b");
    assert_string_equal(p->items[1].value, "22");
    assert_string_equal(p->items[2].key, "c");
    assert_string_equal(p->items[2].value, "333");
    assert_string_equal(params_error(p), "");
}

static void parse_only_ampersands(void **state)
{
    struct params *p = *state;

    assert_int_equal(params_parse(p, "&&&"), 0);
    assert_int_equal(p->n, 0);
}

static void parse_key_without_value(void **state)
{
    struct params *p = *state;

    assert_int_equal(params_parse(p, "flag&x=&y"), 0);
    assert_int_equal(p->n, 3);
    assert_string_equal(p->items[0].key, "flag");
    assert_string_equal(p->items[0].value, "");
    assert_string_equal(p->items[1].key, "x");
    assert_string_equal(p->items[1].value, "");
    assert_string_equal(p->items[2].key, "y");
    assert_string_equal(p->items[2].value, "");
    assert_true(params_has(p, "flag"));
    assert_true(params_has(p, "y"));
    assert_false(params_has(p, "z"));
}

static void parse_first_equals_separates(void **state)
{
    struct params *p = *state;

    assert_int_equal(params_parse(p, "a=b=c&d=="), 0);
    assert_int_equal(p->n, 2);
    assert_string_equal(p->items[0].key, "a");
    assert_string_equal(p->items[0].value, "b=c");
    assert_string_equal(p->items[1].key, "d");
    assert_string_equal(p->items[1].value, "=");
}

static void parse_decodes_plus_and_escapes(void **state)
{
    struct params *p = *state;

    assert_int_equal(
        params_parse(p, "q=hello+world%21&k%20e+y=%41%2b%3D%26&x=%C3%A9"), 0);
    assert_int_equal(p->n, 3);
    assert_string_equal(p->items[0].key, "q");
    assert_string_equal(p->items[0].value, "hello world!");
    assert_string_equal(p->items[1].key, "k e y");
    assert_string_equal(p->items[1].value, "A+=&");
    assert_string_equal(p->items[2].key, "x");
    assert_string_equal(p->items[2].value, "\xc3\xa9");
}

static void parse_rejects_malformed_escapes(void **state)
{
    static const char *const bad[] = {
        "%",     "%4",    "%zz",     "a=%",  "a=%4",
        "a=%zz", "a=%G1", "a=1&b=%", "a%=1", "a=%%",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_parse_error(bad[i], "percent-encoding");
}

static void parse_rejects_nul(void **state)
{
    (void)state;
    expect_parse_error("a=%00", "NUL");
    expect_parse_error("%00=1", "NUL");
    expect_parse_error("ok=1&a=x%00y", "NUL");
}

static void parse_rejects_empty_key(void **state)
{
    (void)state;
    expect_parse_error("=5", "empty parameter name");
    expect_parse_error("=", "empty parameter name");
    expect_parse_error("a=1&=5", "empty parameter name");
}

static void parse_accepts_params_max_pairs(void **state)
{
    struct params *p = *state;
    char *query = repeat("", 'x', 4 * PARAMS_MAX);

    /* "a=1&" PARAMS_MAX times, the last '&' cut off. */
    for (size_t i = 0; i < PARAMS_MAX; i++)
        memcpy(query + 4 * i, "a=1&", 4);
    query[4 * PARAMS_MAX - 1] = '\0';
    assert_int_equal(params_parse(p, query), 0);
    assert_int_equal(p->n, PARAMS_MAX);
    free(query);
}

static void parse_rejects_too_many_pairs(void **state)
{
    char *query = repeat("", 'x', 4 * (PARAMS_MAX + 1));
    char want[64];

    (void)state;
    for (size_t i = 0; i < PARAMS_MAX + 1; i++)
        memcpy(query + 4 * i, "a=1&", 4);
    query[4 * (PARAMS_MAX + 1) - 1] = '\0';
    snprintf(want, sizeof(want), "at most %d", PARAMS_MAX);
    expect_parse_error(query, "too many parameters");
    expect_parse_error(query, want);
    free(query);
}

static void parse_accepts_query_max_bytes(void **state)
{
    struct params *p = *state;
    char *query = repeat("k=", 'v', PARAMS_QUERY_MAX - 2);

    assert_int_equal(strlen(query), PARAMS_QUERY_MAX);
    assert_int_equal(params_parse(p, query), 0);
    assert_int_equal(p->n, 1);
    assert_int_equal(strlen(p->items[0].value), PARAMS_QUERY_MAX - 2);
    free(query);
}

static void parse_rejects_too_long_query(void **state)
{
    char *query = repeat("k=", 'v', PARAMS_QUERY_MAX - 1);

    (void)state;
    assert_int_equal(strlen(query), PARAMS_QUERY_MAX + 1);
    expect_parse_error(query, "too long");
    free(query);
}

static void cleanup_is_safe_twice(void **state)
{
    struct params *p = *state;

    assert_int_equal(params_parse(p, "a=1"), 0);
    params_cleanup(p);
    assert_null(p->storage);
    assert_int_equal(p->n, 0);
    params_cleanup(p);
    assert_null(p->storage);
}

/* ---- params_int ---- */

static void int_default_when_absent(void **state)
{
    struct params *p = *state;
    int64_t v = 0;

    assert_int_equal(params_parse(p, "other=1"), 0);
    assert_int_equal(params_int(p, "n", 1, 100, 42, &v), 0);
    assert_int_equal(v, 42);
}

static void int_value_in_range(void **state)
{
    struct params *p = *state;
    int64_t v = 0;

    assert_int_equal(params_parse(p, "n=17&neg=-5&zero=-0"), 0);
    assert_int_equal(params_int(p, "n", 1, 100, 42, &v), 0);
    assert_int_equal(v, 17);
    assert_int_equal(params_int(p, "neg", -10, 10, 0, &v), 0);
    assert_int_equal(v, -5);
    assert_int_equal(params_int(p, "zero", -1, 1, 1, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(params_finish(p), 0);
}

static void int_bounds_are_inclusive(void **state)
{
    struct params *p = *state;
    int64_t lo = 0;
    int64_t hi = 0;

    assert_int_equal(params_parse(p, "lo=1&hi=10"), 0);
    assert_int_equal(params_int(p, "lo", 1, 10, 5, &lo), 0);
    assert_int_equal(params_int(p, "hi", 1, 10, 5, &hi), 0);
    assert_int_equal(lo, 1);
    assert_int_equal(hi, 10);
    assert_int_equal(params_finish(p), 0);
}

static void int_below_range(void **state)
{
    struct params *p = *state;
    int64_t v = 0;

    assert_int_equal(params_parse(p, "count=0"), 0);
    assert_int_equal(params_int(p, "count", 1, 10, 5, &v), -EINVAL);
    expect_error_has(p, "'count'");
    expect_error_has(p, "'0'");
    expect_error_has(p, "[1, 10]");
    assert_int_equal(params_finish(p), -EINVAL);
}

static void int_above_range(void **state)
{
    struct params *p = *state;
    int64_t v = 0;

    assert_int_equal(params_parse(p, "count=11"), 0);
    assert_int_equal(params_int(p, "count", 1, 10, 5, &v), -EINVAL);
    expect_error_has(p, "'count'");
    expect_error_has(p, "[1, 10]");
}

static void int_rejects_non_decimal(void **state)
{
    /* As they appear in the query; the comment is the decoded value. */
    static const char *const bad[] = {
        "n=12x",   /* 12x */
        "n=1+2",   /* "1 2" */
        "n=+12",   /* " 12" */
        "n=12+",   /* "12 " */
        "n=%2B12", /* +12 */
        "n=0x10",  "n=1e3", "n=1.5", "n=",    "n",
        "n=-",     "n=--1", "n=-+1", "n=12-", "n=%EF%BC%91", /* fullwidth 1 */
        "n=%0912",                                           /* tab */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct params p;
        int64_t v = 0;
        assert_int_equal(params_parse(&p, bad[i]), 0);
        if (params_int(&p, "n", -1000, 1000, 0, &v) != -EINVAL ||
            !strstr(params_error(&p), "'n'"))
            fail_msg("'%s' accepted (v %lld) or message '%s'", bad[i],
                     (long long)v, params_error(&p));
        params_cleanup(&p);
    }
}

static void int_rejects_overflow(void **state)
{
    static const char *const bad[] = {
        "n=9223372036854775808",      "n=-9223372036854775809",
        "n=18446744073709551616",     "n=99999999999999999999999",
        "n=-99999999999999999999999",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct params p;
        int64_t v = 0;
        assert_int_equal(params_parse(&p, bad[i]), 0);
        if (params_int(&p, "n", INT64_MIN, INT64_MAX, 0, &v) != -EINVAL)
            fail_msg("'%s' accepted as %lld", bad[i], (long long)v);
        expect_error_has(&p, "'n'");
        params_cleanup(&p);
    }
}

static void int_accepts_int64_extremes(void **state)
{
    struct params *p = *state;
    int64_t lo = 0;
    int64_t hi = 0;

    assert_int_equal(
        params_parse(p, "lo=-9223372036854775808&hi=9223372036854775807"), 0);
    assert_int_equal(params_int(p, "lo", INT64_MIN, INT64_MAX, 0, &lo), 0);
    assert_int_equal(params_int(p, "hi", INT64_MIN, INT64_MAX, 0, &hi), 0);
    assert_true(lo == INT64_MIN);
    assert_true(hi == INT64_MAX);
    assert_int_equal(params_finish(p), 0);
}

static void int_extremes_refused_by_narrow_range(void **state)
{
    struct params *p = *state;
    int64_t v = 0;

    assert_int_equal(params_parse(p, "hi=9223372036854775807"), 0);
    assert_int_equal(params_int(p, "hi", INT64_MIN, INT64_MAX - 1, 0, &v),
                     -EINVAL);
    expect_error_has(p, "'hi'");
    expect_error_has(p, "9223372036854775806]");
}

static void int_leading_zeros(void **state)
{
    struct params *p = *state;
    int64_t v = 0;

    assert_int_equal(params_parse(p, "n=007"), 0);
    assert_int_equal(params_int(p, "n", 0, 10, 0, &v), 0);
    assert_int_equal(v, 7);
}

static void int_given_twice(void **state)
{
    struct params *p = *state;
    int64_t v = 0;

    assert_int_equal(params_parse(p, "n=1&m=3&n=1"), 0);
    assert_int_equal(params_int(p, "n", 0, 10, 0, &v), -EINVAL);
    expect_error_has(p, "'n'");
    expect_error_has(p, "given more than once");
}

/* ---- params_real ---- */

static void real_default_and_values(void **state)
{
    struct params *p = *state;
    double a = -1, b = -1, c = -1, d = -1, e = -1;

    assert_int_equal(params_parse(p, "a=0.25&b=1e-1&c=-0&d=007.50"), 0);
    assert_int_equal(params_real(p, "a", 0, 1, 0.5, &a), 0);
    assert_int_equal(params_real(p, "b", 0, 1, 0.5, &b), 0);
    assert_int_equal(params_real(p, "c", 0, 1, 0.5, &c), 0);
    assert_int_equal(params_real(p, "d", 0, 10, 0.5, &d), 0);
    assert_int_equal(params_real(p, "e", 0, 1, 0.5, &e), 0);
    assert_true(a == 0.25 && b == 0.1 && c == 0 && d == 7.5);
    assert_true(e == 0.5); /* absent: the default */
    assert_int_equal(params_finish(p), 0);
}

static void real_bounds_are_inclusive(void **state)
{
    struct params *p = *state;
    double lo = -1, hi = -1;

    assert_int_equal(params_parse(p, "lo=0&hi=1.000"), 0);
    assert_int_equal(params_real(p, "lo", 0, 1, 0.5, &lo), 0);
    assert_int_equal(params_real(p, "hi", 0, 1, 0.5, &hi), 0);
    assert_true(lo == 0 && hi == 1);
}

/* What JSON would not write, or what strtod alone would take. */
static void real_rejects_other_spellings(void **state)
{
    static const char *const bad[] = {
        "",
        ".5",
        "1.",
        "+1",
        "1e",
        "1e+",
        "0x1",
        "inf",
        "nan",
        "1,5",
        "1 ",
        "--1",
        "e1",
        "1.2.3",
        "1e999", /* overflows to inf */
        /* 64 characters: over the 63 a real may have */
        "0.00000000000000000000000000000000000000000000000000000000000001",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct params q;
        char query[128];
        double v = 42;
        snprintf(query, sizeof(query), "x=%s", bad[i]);
        assert_int_equal(params_parse(&q, query), 0);
        if (params_real(&q, "x", -1e9, 1e9, 0, &v) != -EINVAL)
            fail_msg("'%s' accepted as %g", bad[i], v);
        expect_error_has(&q, "is not a number in [-1e+09, 1e+09]");
        assert_true(v == 42); /* untouched */
        params_cleanup(&q);
    }
}

static void real_out_of_range(void **state)
{
    struct params *p = *state;
    double v = 0;

    assert_int_equal(params_parse(p, "r=1.0001"), 0);
    assert_int_equal(params_real(p, "r", 0, 1, 0.5, &v), -EINVAL);
    expect_error_has(p, "parameter 'r': '1.0001' is not a number in [0, 1]");
}

static void real_given_twice(void **state)
{
    struct params *p = *state;
    double v = 0;

    assert_int_equal(params_parse(p, "r=0.1&r=0.1"), 0);
    assert_int_equal(params_real(p, "r", 0, 1, 0.5, &v), -EINVAL);
    expect_error_has(p, "'r'");
    expect_error_has(p, "given more than once");
}

/* ---- params_enum ---- */

static void enum_valid(void **state)
{
    struct params *p = *state;
    int mode = -1;

    assert_int_equal(params_parse(p, "mode=slow"), 0);
    assert_int_equal(params_enum(p, "mode", modes, N_MODES, 0, &mode), 0);
    assert_int_equal(mode, 1);
    assert_int_equal(params_finish(p), 0);
}

static void enum_default(void **state)
{
    struct params *p = *state;
    int mode = -1;

    assert_int_equal(params_parse(p, NULL), 0);
    assert_int_equal(params_enum(p, "mode", modes, N_MODES, 2, &mode), 0);
    assert_int_equal(mode, 2);
}

static void enum_invalid_lists_choices(void **state)
{
    struct params *p = *state;
    int mode = -1;

    assert_int_equal(params_parse(p, "mode=medium"), 0);
    assert_int_equal(params_enum(p, "mode", modes, N_MODES, 0, &mode), -EINVAL);
    expect_error_has(p, "'mode'");
    expect_error_has(p, "'medium'");
    expect_error_has(p, "fast, slow, auto");
}

static void enum_is_case_sensitive_and_exact(void **state)
{
    static const char *const bad[] = {"mode=FAST", "mode=fast+",
                                      "mode=", "mode=fas", "mode=fastest"};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct params p;
        int mode = -1;
        assert_int_equal(params_parse(&p, bad[i]), 0);
        if (params_enum(&p, "mode", modes, N_MODES, 0, &mode) != -EINVAL)
            fail_msg("'%s' accepted as %d", bad[i], mode);
        params_cleanup(&p);
    }
}

static void enum_given_twice(void **state)
{
    struct params *p = *state;
    int mode = -1;

    assert_int_equal(params_parse(p, "mode=fast&mode=slow"), 0);
    assert_int_equal(params_enum(p, "mode", modes, N_MODES, 0, &mode), -EINVAL);
    expect_error_has(p, "'mode' given more than once");
}

/* ---- params_int_list ---- */

static void int_list_default(void **state)
{
    struct params *p = *state;
    int64_t *items = NULL;
    size_t n = 0;

    assert_int_equal(params_parse(p, NULL), 0);
    assert_int_equal(params_int_list(p, "l", 0, 10, 8, "1,2,3", &items, &n), 0);
    assert_non_null(items);
    assert_int_equal(n, 3);
    assert_int_equal(items[0], 1);
    assert_int_equal(items[1], 2);
    assert_int_equal(items[2], 3);
    free(items);
}

static void int_list_keeps_order(void **state)
{
    struct params *p = *state;
    int64_t *items = NULL;
    size_t n = 0;

    assert_int_equal(params_parse(p, "l=5,-1,3,3"), 0);
    assert_int_equal(params_int_list(p, "l", -5, 5, 8, "1", &items, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(items[0], 5);
    assert_int_equal(items[1], -1);
    assert_int_equal(items[2], 3);
    assert_int_equal(items[3], 3);
    free(items);
    assert_int_equal(params_finish(p), 0);
}

static void int_list_single_item(void **state)
{
    struct params *p = *state;
    int64_t *items = NULL;
    size_t n = 0;

    assert_int_equal(params_parse(p, "l=7"), 0);
    assert_int_equal(params_int_list(p, "l", 0, 10, 1, "1,2", &items, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(items[0], 7);
    free(items);
}

static void int_list_exactly_max_items(void **state)
{
    struct params *p = *state;
    int64_t *items = NULL;
    size_t n = 0;

    assert_int_equal(params_parse(p, "l=1,2,3"), 0);
    assert_int_equal(params_int_list(p, "l", 0, 10, 3, "1", &items, &n), 0);
    assert_int_equal(n, 3);
    free(items);
}

/* One query, one expected -EINVAL message fragment, for "l" in [0, 10]. */
static void expect_list_error(const char *query, size_t max_items,
                              const char *fragment)
{
    struct params p;
    int64_t *items = NULL;
    size_t n = 0;

    assert_int_equal(params_parse(&p, query), 0);
    int rc = params_int_list(&p, "l", 0, 10, max_items, "1", &items, &n);
    if (rc != -EINVAL || !strstr(params_error(&p), fragment) ||
        !strstr(params_error(&p), "'l'")) {
        if (rc == 0)
            free(items);
        fail_msg("query '%s': rc %d, message '%s' (wanted '%s')", query, rc,
                 params_error(&p), fragment);
    }
    params_cleanup(&p);
}

static void int_list_rejects_bad_items(void **state)
{
    (void)state;
    expect_list_error("l=1,,2", 8, "item 2");
    expect_list_error("l=1,2,", 8, "item 3");
    expect_list_error("l=,1", 8, "item 1");
    expect_list_error("l=", 8, "item 1");
    expect_list_error("l=1,2,99", 8, "item 3 ('99')");
    expect_list_error("l=-1", 8, "item 1 ('-1')");
    expect_list_error("l=1,x", 8, "item 2 ('x')");
    expect_list_error("l=1,+2", 8, "item 2");
    expect_list_error("l=1,9223372036854775808", 8, "item 2");
    expect_list_error("l=1,11", 8, "in [0, 10]");
}

static void int_list_rejects_too_many_items(void **state)
{
    (void)state;
    expect_list_error("l=1,2,3,4", 3, "at most 3 items");
    expect_list_error("l=1,2,3,4", 3, "got 4");
}

static void int_list_default_is_checked_too(void **state)
{
    struct params *p = *state;
    int64_t *items = NULL;
    size_t n = 0;

    assert_int_equal(params_parse(p, NULL), 0);
    assert_int_equal(params_int_list(p, "l", 0, 10, 2, "1,2,3", &items, &n),
                     -EINVAL);
    expect_error_has(p, "'l'");
}

static void int_list_given_twice(void **state)
{
    struct params *p = *state;
    int64_t *items = NULL;
    size_t n = 0;

    assert_int_equal(params_parse(p, "l=1&l=2"), 0);
    assert_int_equal(params_int_list(p, "l", 0, 10, 8, "1", &items, &n),
                     -EINVAL);
    expect_error_has(p, "'l' given more than once");
}

/* ---- params_strings ---- */

static void strings_in_order(void **state)
{
    struct params *p = *state;
    const char *hosts[4] = {NULL};
    size_t n = 0;
    int64_t x = 0;

    assert_int_equal(params_parse(p, "h=a&x=1&h=b+c&h=%64"), 0);
    assert_int_equal(params_strings(p, "h", 4, hosts, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(hosts[0], "a");
    assert_string_equal(hosts[1], "b c");
    assert_string_equal(hosts[2], "d");
    assert_int_equal(params_int(p, "x", 0, 9, 0, &x), 0);
    assert_int_equal(x, 1);
    assert_int_equal(params_finish(p), 0);
}

static void strings_absent(void **state)
{
    struct params *p = *state;
    const char *hosts[2] = {NULL};
    size_t n = 99;

    assert_int_equal(params_parse(p, "x=1"), 0);
    assert_int_equal(params_strings(p, "h", 2, hosts, &n), 0);
    assert_int_equal(n, 0);
}

static void strings_exactly_max_items(void **state)
{
    struct params *p = *state;
    const char *hosts[2] = {NULL};
    size_t n = 0;

    assert_int_equal(params_parse(p, "h=a&h=b"), 0);
    assert_int_equal(params_strings(p, "h", 2, hosts, &n), 0);
    assert_int_equal(n, 2);
}

static void strings_too_many(void **state)
{
    struct params *p = *state;
    /* One slot more than allowed: a write past max_items would show. */
    const char *hosts[3] = {NULL, NULL, "sentinel"};
    size_t n = 0;

    assert_int_equal(params_parse(p, "h=a&h=b&h=c"), 0);
    assert_int_equal(params_strings(p, "h", 2, hosts, &n), -EINVAL);
    expect_error_has(p, "'h'");
    expect_error_has(p, "at most 2 values");
    assert_string_equal(hosts[2], "sentinel");
}

static void strings_empty_value(void **state)
{
    struct params *p = *state;
    const char *hosts[4] = {NULL};
    size_t n = 0;

    assert_int_equal(params_parse(p, "h=a&h="), 0);
    assert_int_equal(params_strings(p, "h", 4, hosts, &n), -EINVAL);
    expect_error_has(p, "'h'");
    expect_error_has(p, "value 2 is empty");
}

/* ---- params_finish ---- */

static void finish_all_taken(void **state)
{
    struct params *p = *state;
    int64_t v = 0;
    int mode = 0;

    assert_int_equal(params_parse(p, "n=1&mode=auto"), 0);
    assert_int_equal(params_int(p, "n", 0, 9, 0, &v), 0);
    assert_int_equal(params_enum(p, "mode", modes, N_MODES, 0, &mode), 0);
    assert_int_equal(params_finish(p), 0);
    assert_string_equal(params_error(p), "");
}

static void finish_unknown_key(void **state)
{
    struct params *p = *state;
    int64_t v = 0;
    int mode = 0;

    assert_int_equal(params_parse(p, "n=1&colour=red"), 0);
    assert_int_equal(params_int(p, "n", 0, 9, 0, &v), 0);
    assert_int_equal(params_enum(p, "mode", modes, N_MODES, 0, &mode), 0);
    assert_int_equal(params_finish(p), -EINVAL);
    expect_error_has(p, "unknown parameter 'colour'");
    /* Names asked for are listed, also those absent from the query. */
    expect_error_has(p, "n, mode");
}

static void finish_no_parameters_taken(void **state)
{
    struct params *p = *state;

    assert_int_equal(params_parse(p, "x=1"), 0);
    assert_int_equal(params_finish(p), -EINVAL);
    expect_error_has(p, "'x'");
    expect_error_has(p, "takes no parameters");
}

static void finish_keeps_first_error(void **state)
{
    struct params *p = *state;
    int64_t v = 0;
    int mode = 0;

    const char *hosts[1];
    size_t n = 0;

    /* Each later getter fails too, in its own way. */
    assert_int_equal(params_parse(p, "n=abc&mode=bad&m=1&m=2&h=a&h=b&zz=1"), 0);
    assert_int_equal(params_int(p, "n", 0, 9, 0, &v), -EINVAL);
    assert_int_equal(params_enum(p, "mode", modes, N_MODES, 0, &mode), -EINVAL);
    assert_int_equal(params_int(p, "m", 0, 9, 0, &v), -EINVAL);
    assert_int_equal(params_strings(p, "h", 1, hosts, &n), -EINVAL);
    assert_int_equal(params_finish(p), -EINVAL);
    expect_error_has(p, "'n'");
    expect_error_has(p, "'abc'");
    assert_null(strstr(params_error(p), "mode"));
    assert_null(strstr(params_error(p), "'m'"));
    assert_null(strstr(params_error(p), "'h'"));
    assert_null(strstr(params_error(p), "zz"));
}

static void finish_after_duplicate_marks_taken(void **state)
{
    struct params *p = *state;
    int64_t v = 0;

    /* A duplicate is reported as such, not as an unknown parameter. */
    assert_int_equal(params_parse(p, "n=1&n=2"), 0);
    assert_int_equal(params_int(p, "n", 0, 9, 0, &v), -EINVAL);
    assert_int_equal(params_finish(p), -EINVAL);
    expect_error_has(p, "given more than once");
}

/* ---- user text in messages ---- */

static void message_escapes_high_bytes(void **state)
{
    struct params *p = *state;
    int64_t v = 0;

    assert_int_equal(params_parse(p, "n=%ff%1b%27"), 0);
    assert_int_equal(params_int(p, "n", 0, 9, 0, &v), -EINVAL);
    expect_error_has(p, "\\xff\\x1b\\x27");
    assert_true(all_printable(params_error(p)));
}

static void message_caps_long_value(void **state)
{
    struct params *p = *state;
    char *query = repeat("n=", '7', 1000);
    int64_t v = 0;

    assert_int_equal(params_parse(p, query), 0);
    assert_int_equal(params_int(p, "n", 0, 9, 0, &v), -EINVAL);
    expect_error_has(p, "...");
    expect_error_has(p, "'n'");
    /* The message does not grow with the input. */
    assert_true(strlen(params_error(p)) < 120);
    free(query);
}

static void message_escapes_enum_value(void **state)
{
    struct params *p = *state;
    int mode = 0;

    assert_int_equal(params_parse(p, "mode=%80%0a"), 0);
    assert_int_equal(params_enum(p, "mode", modes, N_MODES, 0, &mode), -EINVAL);
    expect_error_has(p, "\\x80\\x0a");
    assert_true(all_printable(params_error(p)));
}

static void message_escapes_list_item(void **state)
{
    struct params *p = *state;
    char *query = repeat("l=1,%fe", 'x', 500);
    int64_t *items = NULL;
    size_t n = 0;

    assert_int_equal(params_parse(p, query), 0);
    assert_int_equal(params_int_list(p, "l", 0, 9, 4, "1", &items, &n),
                     -EINVAL);
    expect_error_has(p, "item 2 ('\\xfe");
    expect_error_has(p, "...");
    assert_true(all_printable(params_error(p)));
    assert_true(strlen(params_error(p)) < 160);
    free(query);
}

static void message_escapes_unknown_key(void **state)
{
    struct params *p = *state;
    char *query = repeat("%ff%01", 'k', 1000);

    assert_int_equal(params_parse(p, query), 0);
    assert_int_equal(params_finish(p), -EINVAL);
    expect_error_has(p, "unknown parameter '\\xff\\x01kk");
    expect_error_has(p, "...");
    assert_true(all_printable(params_error(p)));
    assert_true(strlen(params_error(p)) < 120);
    free(query);
}

int main(void)
{
#define T(name)                                                                \
    cmocka_unit_test_setup_teardown(name, setup_params, teardown_params)
    const struct CMUnitTest tests[] = {
        T(parse_null_query),
        T(parse_empty_query),
        T(parse_splits_on_ampersand),
        T(parse_only_ampersands),
        T(parse_key_without_value),
        T(parse_first_equals_separates),
        T(parse_decodes_plus_and_escapes),
        T(parse_rejects_malformed_escapes),
        T(parse_rejects_nul),
        T(parse_rejects_empty_key),
        T(parse_accepts_params_max_pairs),
        T(parse_rejects_too_many_pairs),
        T(parse_accepts_query_max_bytes),
        T(parse_rejects_too_long_query),
        T(cleanup_is_safe_twice),
        T(int_default_when_absent),
        T(int_value_in_range),
        T(int_bounds_are_inclusive),
        T(int_below_range),
        T(int_above_range),
        T(int_rejects_non_decimal),
        T(int_rejects_overflow),
        T(int_accepts_int64_extremes),
        T(int_extremes_refused_by_narrow_range),
        T(int_leading_zeros),
        T(int_given_twice),
        T(real_default_and_values),
        T(real_bounds_are_inclusive),
        T(real_rejects_other_spellings),
        T(real_out_of_range),
        T(real_given_twice),
        T(enum_valid),
        T(enum_default),
        T(enum_invalid_lists_choices),
        T(enum_is_case_sensitive_and_exact),
        T(enum_given_twice),
        T(int_list_default),
        T(int_list_keeps_order),
        T(int_list_single_item),
        T(int_list_exactly_max_items),
        T(int_list_rejects_bad_items),
        T(int_list_rejects_too_many_items),
        T(int_list_default_is_checked_too),
        T(int_list_given_twice),
        T(strings_in_order),
        T(strings_absent),
        T(strings_exactly_max_items),
        T(strings_too_many),
        T(strings_empty_value),
        T(finish_all_taken),
        T(finish_unknown_key),
        T(finish_no_parameters_taken),
        T(finish_keeps_first_error),
        T(finish_after_duplicate_marks_taken),
        T(message_escapes_high_bytes),
        T(message_caps_long_value),
        T(message_escapes_enum_value),
        T(message_escapes_list_item),
        T(message_escapes_unknown_key),
    };
#undef T
    return cmocka_run_group_tests_name("params", tests, NULL, NULL);
}
