/*
 * Unit tests of server/uri.c: strict percent-decoding and the quoting of
 * user text for messages. Pure functions, so no fixtures.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../server/uri.h"

/* Decodes the whole of src; returns uri_decode()'s result. */
static int decode(const char *src, bool plus_is_space, char *dst,
                  size_t *out_len)
{
    return uri_decode(dst, src, strlen(src), plus_is_space, out_len);
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

static void decode_plain_text(void **state)
{
    char dst[16];
    size_t n = 99;

    (void)state;
    assert_int_equal(decode("abc/def", false, dst, &n), 0);
    assert_string_equal(dst, "abc/def");
    assert_int_equal(n, 7);
}

static void decode_empty(void **state)
{
    char dst[4] = "xyz";
    size_t n = 99;

    (void)state;
    assert_int_equal(uri_decode(dst, "", 0, true, &n), 0);
    assert_string_equal(dst, "");
    assert_int_equal(n, 0);
}

static void decode_escapes_both_cases(void **state)
{
    char dst[32];
    size_t n = 0;

    (void)state;
    assert_int_equal(decode("%41%62%2F%2f%7e%7E", false, dst, &n), 0);
    assert_string_equal(dst, "Ab//~~");
    assert_int_equal(n, 6);
}

static void decode_high_byte(void **state)
{
    char dst[8];
    size_t n = 0;

    (void)state;
    assert_int_equal(decode("%ff%C3%a9", false, dst, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(dst, "\xff\xc3\xa9", 4);
}

static void decode_plus_is_space(void **state)
{
    char dst[16];
    size_t n = 0;

    (void)state;
    assert_int_equal(decode("a+b++c", true, dst, &n), 0);
    assert_string_equal(dst, "a b  c");
    assert_int_equal(n, 6);
}

static void decode_plus_kept_in_paths(void **state)
{
    char dst[16];
    size_t n = 0;

    (void)state;
    assert_int_equal(decode("a+b", false, dst, &n), 0);
    assert_string_equal(dst, "a+b");
    assert_int_equal(n, 3);
}

static void decode_escaped_plus_stays_plus(void **state)
{
    char dst[16];

    (void)state;
    assert_int_equal(decode("1%2B1", true, dst, NULL), 0);
    assert_string_equal(dst, "1+1");
    assert_int_equal(decode("%20+", true, dst, NULL), 0);
    assert_string_equal(dst, "  ");
}

static void decode_stops_at_src_len(void **state)
{
    char dst[16];
    size_t n = 0;

    (void)state;
    /* Only the first 3 bytes are the component. */
    assert_int_equal(uri_decode(dst, "abc%41", 3, false, &n), 0);
    assert_string_equal(dst, "abc");
    assert_int_equal(n, 3);
    /* An escape cut by src_len is incomplete, even if the text goes on. */
    assert_int_equal(uri_decode(dst, "%41", 2, false, &n), -EINVAL);
}

static void decode_out_len_optional(void **state)
{
    char dst[8];

    (void)state;
    assert_int_equal(decode("%41b", false, dst, NULL), 0);
    assert_string_equal(dst, "Ab");
}

static void decode_rejects_bad_escapes(void **state)
{
    static const char *const bad[] = {
        "%",    "%4",  "%zz", "%g0", "%0g", "a%",  "ab%4",
        "%%41", "%-1", "% 1", "%+1", "%4%", "%x1", "%1\xff",
    };
    char dst[16];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (decode(bad[i], true, dst, NULL) != -EINVAL ||
            decode(bad[i], false, dst, NULL) != -EINVAL)
            fail_msg("'%s' was not rejected with -EINVAL", bad[i]);
    }
}

static void decode_rejects_nul(void **state)
{
    char dst[16];
    size_t n = 77;

    (void)state;
    assert_int_equal(decode("%00", false, dst, &n), -EILSEQ);
    assert_int_equal(decode("a%00b", true, dst, &n), -EILSEQ);
    assert_int_equal(decode("abc%00", true, dst, &n), -EILSEQ);
    /* out_len is only written on success. */
    assert_int_equal(n, 77);
}

static void quote_keeps_printable(void **state)
{
    char out[64];

    (void)state;
    assert_ptr_equal(uri_quote(out, sizeof(out), "hello world! ~\"<>"), out);
    assert_string_equal(out, "hello world! ~\"<>");
}

static void quote_empty(void **state)
{
    char out[8] = "junk";

    (void)state;
    assert_string_equal(uri_quote(out, sizeof(out), ""), "");
}

static void quote_escapes_quote_and_control_bytes(void **state)
{
    char out[64];

    (void)state;
    assert_string_equal(uri_quote(out, sizeof(out), "a'b"), "a\\x27b");
    assert_string_equal(uri_quote(out, sizeof(out), "\n\t\x1b"),
                        "\\x0a\\x09\\x1b");
    assert_string_equal(uri_quote(out, sizeof(out), "\x7f"), "\\x7f");
    assert_string_equal(uri_quote(out, sizeof(out), "\xff\xc3\xa9"),
                        "\\xff\\xc3\\xa9");
}

static void quote_every_byte_is_printable(void **state)
{
    char text[256];
    char out[2048];

    (void)state;
    for (int b = 1; b < 256; b++)
        text[b - 1] = (char)b;
    text[255] = '\0';
    uri_quote(out, sizeof(out), text);
    assert_true(all_printable(out));
    assert_null(strchr(out, '\''));
    /* 95 printable bytes minus the quote, 161 escapes of 4 bytes. */
    assert_int_equal(strlen(out), 94 + 161 * 4);
}

static void quote_truncates_long_text(void **state)
{
    char text[101];
    char out[16];

    (void)state;
    memset(text, 'a', 100);
    text[100] = '\0';
    uri_quote(out, sizeof(out), text);
    assert_int_equal(strlen(out), sizeof(out) - 1);
    assert_string_equal(out, "aaaaaaaaaaaa...");
}

static void quote_truncation_never_splits_an_escape(void **state)
{
    char out[8];

    (void)state;
    uri_quote(out, sizeof(out), "a\xff\xff\xff");
    assert_true(strlen(out) < sizeof(out));
    assert_string_equal(out, "a...");
    uri_quote(out, sizeof(out), "\x01\x02\x03");
    assert_string_equal(out, "\\x01...");
}

static void quote_small_buffers(void **state)
{
    char text[300];

    (void)state;
    memset(text, 'z', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    for (size_t len = 8; len < 64; len++) {
        /* One spare byte after the buffer catches an overrun. */
        char out[65];
        memset(out, '#', sizeof(out));
        uri_quote(out, len, text);
        assert_int_equal(out[len], '#');
        assert_int_equal(strlen(out), len - 1);
        assert_memory_equal(out + len - 4, "...", 3);
    }
}

/*
 * The contract: "..." only when the copy would exceed out_len - 1 bytes.
 * Text that fits must come back whole.
 */
static void quote_text_that_fits_is_not_truncated(void **state)
{
    char out[8];

    (void)state;
    assert_string_equal(uri_quote(out, sizeof(out), "abc"), "abc");
    assert_string_equal(uri_quote(out, sizeof(out), "abcde"), "abcde");
    assert_string_equal(uri_quote(out, sizeof(out), "abcdefg"), "abcdefg");
    assert_string_equal(uri_quote(out, sizeof(out), "a\x01"), "a\\x01");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decode_plain_text),
        cmocka_unit_test(decode_empty),
        cmocka_unit_test(decode_escapes_both_cases),
        cmocka_unit_test(decode_high_byte),
        cmocka_unit_test(decode_plus_is_space),
        cmocka_unit_test(decode_plus_kept_in_paths),
        cmocka_unit_test(decode_escaped_plus_stays_plus),
        cmocka_unit_test(decode_stops_at_src_len),
        cmocka_unit_test(decode_out_len_optional),
        cmocka_unit_test(decode_rejects_bad_escapes),
        cmocka_unit_test(decode_rejects_nul),
        cmocka_unit_test(quote_keeps_printable),
        cmocka_unit_test(quote_empty),
        cmocka_unit_test(quote_escapes_quote_and_control_bytes),
        cmocka_unit_test(quote_every_byte_is_printable),
        cmocka_unit_test(quote_truncates_long_text),
        cmocka_unit_test(quote_truncation_never_splits_an_escape),
        cmocka_unit_test(quote_small_buffers),
        cmocka_unit_test(quote_text_that_fits_is_not_truncated),
    };
    return cmocka_run_group_tests_name("uri", tests, NULL, NULL);
}
