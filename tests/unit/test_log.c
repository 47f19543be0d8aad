/*
 * Unit tests of server/log.c: the JSON Lines format (every line parsed
 * with jansson, whatever bytes the message or target holds, cut lines
 * included), the text format of access lines (unchanged, "id=" added),
 * level filtering, access-line buffering and log_flush(), threads writing
 * at once, and log_format_parse().
 *
 * Standard error is captured by putting a temporary file on descriptor 2
 * around the calls; the capture always ends before a test asserts
 * anything (cmocka reports on standard error), and the teardown ends one
 * left open and puts the format and level back to text and info.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "../../server/log.h"
#include "../../server/uri.h"

#define THREADS          8
#define LINES_PER_THREAD 2000
#define EXITED_THREADS   (LOG_BUFFERS_MAX + 6)

struct capture {
    int saved; /* the real standard error, -1 when not capturing */
    int fd;    /* the temporary file on descriptor 2 */
};

/* Lines of a capture, split in place. */
struct lines {
    char *text;
    size_t n;
    char **line;
};

struct access_writer {
    pthread_t thread;
    int id;
};

static struct capture cap = {-1, -1};

static int setup_log(void **state);
static int teardown_log(void **state);
static void capture_start(void);
static char *capture_end(void);
static void split(struct lines *l, char *text);
static void free_lines(struct lines *l);
static json_t *parse_json_line(const char *line);
static void check_time(const char *time_text);
static void check_keys(json_t *obj, const char *const keys[], size_t n);
static char *latin1_to_utf8(const char *s);
static void *write_access_lines(void *arg);
static void *write_one_access_line(void *arg);

static int setup_log(void **state)
{
    (void)state;
    log_set_format(LOG_TEXT);
    log_set_level(LOG_INFO);
    return 0;
}

static int teardown_log(void **state)
{
    (void)state;
    if (cap.saved >= 0)
        free(capture_end());
    log_set_format(LOG_TEXT);
    log_set_level(LOG_INFO);
    return 0;
}

/* Puts a fresh temporary file on descriptor 2. */
static void capture_start(void)
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    cap.fd = dup(fileno(tmp));
    fclose(tmp);
    assert_true(cap.fd >= 0);
    fflush(stderr);
    cap.saved = dup(STDERR_FILENO);
    assert_true(cap.saved >= 0);
    assert_int_equal(dup2(cap.fd, STDERR_FILENO), STDERR_FILENO);
}

/* Puts standard error back; returns what was written (caller frees). */
static char *capture_end(void)
{
    fflush(stderr);
    dup2(cap.saved, STDERR_FILENO);
    close(cap.saved);
    cap.saved = -1;

    off_t size = lseek(cap.fd, 0, SEEK_END);
    char *text = malloc((size_t)size + 1);
    size_t got = 0;
    while (text && got < (size_t)size) {
        ssize_t r = pread(cap.fd, text + got, (size_t)size - got, (off_t)got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(cap.fd);
    cap.fd = -1;
    assert_non_null(text);
    text[got] = '\0';
    return text;
}

/* Splits text (taken) into lines; every line must end with '\n'. */
static void split(struct lines *l, char *text)
{
    size_t n = 0;
    for (const char *p = text; *p; p++)
        n += *p == '\n';
    l->text = text;
    l->n = 0;
    l->line = calloc(n + 1, sizeof(*l->line));
    assert_non_null(l->line);
    for (char *p = text; *p;) {
        char *end = strchr(p, '\n');
        if (!end)
            fail_msg("text ends without a newline: '%s'", p);
        *end = '\0';
        l->line[l->n++] = p;
        p = end + 1;
    }
}

static void free_lines(struct lines *l)
{
    free(l->line);
    free(l->text);
}

/*
 * The line as a JSON object (new reference). It must fit LOG_LINE_MAX and
 * hold no raw control byte, DEL or C1 control (json_str() escapes them);
 * json_loads() refuses anything that is not UTF-8.
 */
static json_t *parse_json_line(const char *line)
{
    json_error_t err;
    size_t len = strlen(line);

    if (len + 1 > LOG_LINE_MAX)
        fail_msg("line of %zu bytes (max %d): %.120s", len + 1, LOG_LINE_MAX,
                 line);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        unsigned char next = (unsigned char)line[i + 1];
        if (c < 0x20 || c == 0x7f || (c == 0xc2 && next >= 0x80 && next < 0xa0))
            fail_msg("raw control 0x%02x at %zu in %.120s", c, i, line);
    }
    json_t *obj = json_loads(line, JSON_REJECT_DUPLICATES, &err);
    if (!obj)
        fail_msg("not JSON (%s at %d): %.200s", err.text, err.position, line);
    if (!json_is_object(obj))
        fail_msg("not an object: %.120s", line);
    return obj;
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ", UTC, within a minute of now. */
static void check_time(const char *time_text)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    struct tm tm = {0};

    if (strlen(time_text) != sizeof(shape) - 1)
        fail_msg("time '%s' is not %s", time_text, shape);
    for (size_t i = 0; shape[i]; i++) {
        bool ok = shape[i] == 'd' ? time_text[i] >= '0' && time_text[i] <= '9'
                                  : time_text[i] == shape[i];
        if (!ok)
            fail_msg("time '%s' is not %s", time_text, shape);
    }
    assert_non_null(strptime(time_text, "%Y-%m-%dT%H:%M:%S", &tm));
    time_t t = timegm(&tm);
    time_t now = time(NULL);
    if (t < now - 60 || t > now + 60)
        fail_msg("time '%s' is not now", time_text);
}

/* obj has exactly these keys. */
static void check_keys(json_t *obj, const char *const keys[], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!json_object_get(obj, keys[i])) {
            char *dump = json_dumps(obj, 0);
            fail_msg("no '%s' in %s", keys[i], dump);
        }
    }
    if (json_object_size(obj) != n) {
        char *dump = json_dumps(obj, 0);
        fail_msg("%zu keys, wanted %zu: %s", json_object_size(obj), n, dump);
    }
}

/*
 * What a JSON reader gets back from json_str(): each byte >= 0x80 was
 * written as \u00XX, so it reads back as the code point U+00XX (in UTF-8).
 */
static char *latin1_to_utf8(const char *s)
{
    char *out = malloc(2 * strlen(s) + 1);
    size_t n = 0;
    assert_non_null(out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x80) {
            out[n++] = (char)*p;
        } else {
            out[n++] = (char)(0xc0 | (*p >> 6));
            out[n++] = (char)(0x80 | (*p & 0x3f));
        }
    }
    out[n] = '\0';
    return out;
}

/* ---- log_format_parse ---- */

static void format_parse(void **state)
{
    static const char *const bad[] = {"JSON",  "Text",  "",      "xml",
                                      "json ", " json", "jsonl", "texts"};
    enum log_format f = LOG_TEXT;

    (void)state;
    assert_int_equal(log_format_parse("json", &f), 0);
    assert_int_equal(f, LOG_JSON);
    assert_int_equal(log_format_parse("text", &f), 0);
    assert_int_equal(f, LOG_TEXT);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        f = LOG_JSON;
        assert_int_equal(log_format_parse(bad[i], &f), -EINVAL);
        assert_int_equal(f, LOG_JSON); /* left alone */
    }
}

/* ---- JSON: ordinary lines ---- */

static void json_message_lines(void **state)
{
    static const char *const keys[] = {"time", "level", "msg"};
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    struct lines l;

    (void)state;
    log_set_format(LOG_JSON);
    log_set_level(LOG_DEBUG);
    capture_start();
    log_error("message %d of %s", 0, "four");
    log_warn("message %d of %s", 1, "four");
    log_info("message %d of %s", 2, "four");
    log_debug("message %d of %s", 3, "four");
    split(&l, capture_end());

    assert_int_equal(l.n, 4);
    for (size_t i = 0; i < l.n; i++) {
        char want[48];
        json_t *obj = parse_json_line(l.line[i]);
        check_keys(obj, keys, 3);
        check_time(json_string_value(json_object_get(obj, "time")));
        assert_string_equal(json_string_value(json_object_get(obj, "level")),
                            levels[i]);
        snprintf(want, sizeof(want), "message %zu of four", i);
        assert_string_equal(json_string_value(json_object_get(obj, "msg")),
                            want);
        /* "time" comes first, as in the text format. */
        assert_memory_equal(l.line[i], "{\"time\":\"", 9);
        json_decref(obj);
    }
    free_lines(&l);
}

static void levels_filter_both_formats(void **state)
{
    static const enum log_format formats[] = {LOG_TEXT, LOG_JSON};
    (void)state;
    for (size_t i = 0; i < 2; i++) {
        struct lines l;
        log_set_format(formats[i]);
        log_set_level(LOG_WARN);
        capture_start();
        log_info("not written");
        log_debug("not written");
        log_access("GET", "/not-written", 200, 1, 1, 0, "x");
        log_flush();
        log_warn("written");
        log_error("written");
        split(&l, capture_end());
        assert_int_equal(l.n, 2);
        for (size_t j = 0; j < l.n; j++)
            assert_null(strstr(l.line[j], "not written"));
        free_lines(&l);
    }
}

/*
 * Every byte 0x01..0xff in messages: each still one line of valid JSON.
 * ASCII reads back as written; 0x80..0xff in a row is no UTF-8 at all, so
 * each byte was escaped and reads back as U+0080..U+00FF.
 */
static void json_message_any_bytes(void **state)
{
    char ascii[128], high[129];
    struct lines l;

    (void)state;
    for (int i = 1; i < 128; i++)
        ascii[i - 1] = (char)i;
    ascii[127] = '\0';
    for (int i = 128; i < 256; i++)
        high[i - 128] = (char)i;
    high[128] = '\0';
    log_set_format(LOG_JSON);
    capture_start();
    log_info("%s", ascii);
    log_info("%s", high);
    log_warn("quote \" backslash \\ slash / tab \t newline \n end");
    split(&l, capture_end());

    assert_int_equal(l.n, 3);
    json_t *obj = parse_json_line(l.line[0]);
    assert_string_equal(json_string_value(json_object_get(obj, "msg")), ascii);
    json_decref(obj);

    obj = parse_json_line(l.line[1]);
    char *want = latin1_to_utf8(high);
    assert_string_equal(json_string_value(json_object_get(obj, "msg")), want);
    free(want);
    json_decref(obj);

    obj = parse_json_line(l.line[2]);
    assert_string_equal(json_string_value(json_object_get(obj, "msg")),
                        "quote \" backslash \\ slash / tab \t newline \n end");
    json_decref(obj);
    assert_non_null(strstr(l.line[2], "quote \\\" backslash \\\\ slash"));
    assert_non_null(strstr(l.line[2], "tab \\u0009 newline \\u000a end"));
    free_lines(&l);
}

/*
 * Well-formed UTF-8 in a message reads back exactly (U+0080..U+009F, the
 * C1 controls, as \u00XX escapes); the bytes of broken sequences are
 * escaped one by one and the line stays valid JSON.
 */
static void json_message_utf8(void **state)
{
    static const char *const good[] = {
        "/srv/jos\xc3\xa9/web",                       /* U+00E9 */
        "\xe2\x82\xac 100, \xe4\xb8\xad\xe6\x96\x87", /* U+20AC, CJK */
        "\xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf",          /* U+1F600, U+10FFFF */
        "\xc2\xa0\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf",   /* range edges */
        "nel \xc2\x85 csi \xc2\x9b end",              /* C1 controls */
    };
    static const struct {
        const char *sent, *read_back;
    } bad[] = {
        {"cut \xe2\x82", "cut \xc3\xa2\xc2\x82"},
        {"cut \xf0\x9f\x98 x", "cut \xc3\xb0\xc2\x9f\xc2\x98 x"},
        {"overlong \xc0\xaf \xe0\x80\xaf", "overlong \xc3\x80\xc2\xaf "
                                           "\xc3\xa0\xc2\x80\xc2\xaf"},
        {"surrogate \xed\xa0\x80", "surrogate \xc3\xad\xc2\xa0\xc2\x80"},
        {"past max \xf4\x90\x80\x80",
         "past max \xc3\xb4\xc2\x90\xc2\x80\xc2\x80"},
        {"lone \x80\xbf \xfe\xff", "lone \xc2\x80\xc2\xbf \xc3\xbe\xc3\xbf"},
    };
    size_t n_good = sizeof(good) / sizeof(good[0]);
    size_t n_bad = sizeof(bad) / sizeof(bad[0]);
    struct lines l;

    (void)state;
    log_set_format(LOG_JSON);
    capture_start();
    for (size_t i = 0; i < n_good; i++)
        log_info("%s", good[i]);
    for (size_t i = 0; i < n_bad; i++)
        log_info("%s", bad[i].sent);
    split(&l, capture_end());

    assert_int_equal(l.n, n_good + n_bad);
    for (size_t i = 0; i < l.n; i++) {
        json_t *obj = parse_json_line(l.line[i]);
        const char *msg = json_string_value(json_object_get(obj, "msg"));
        const char *want = i < n_good ? good[i] : bad[i - n_good].read_back;
        assert_non_null(msg);
        if (strcmp(msg, want) != 0)
            fail_msg("line %zu: msg '%s', wanted '%s' (line %s)", i, msg, want,
                     l.line[i]);
        json_decref(obj);
    }
    /* C1 controls are escaped, not written raw. */
    assert_non_null(strstr(l.line[4], "nel \\u0085 csi \\u009b end"));
    free_lines(&l);
}

/*
 * Messages too long for a line, of bytes that take 1, 2 (quote,
 * backslash) and 6 (\u00XX) bytes in JSON, at every length around the
 * cut: each is one line within LOG_LINE_MAX, valid JSON, ending "...".
 */
static void json_long_message_is_cut_validly(void **state)
{
    static const char fills[] = {'x', '"', '\\', '\x01', '\xff'};
    static const char mixed[] = "a\"\\\x1f\xc3\xa9";
    char *msg = malloc(LOG_LINE_MAX * 5 + 1);
    size_t lengths = 0;
    struct lines l;

    (void)state;
    assert_non_null(msg);
    log_set_format(LOG_JSON);
    capture_start();
    for (size_t f = 0; f <= sizeof(fills); f++) {
        for (size_t len = LOG_LINE_MAX - 200; len < LOG_LINE_MAX + 40; len++) {
            for (size_t i = 0; i < len; i++)
                msg[i] = f < sizeof(fills) ? fills[f]
                                           : mixed[i % (sizeof(mixed) - 1)];
            msg[len] = '\0';
            log_info("%s", msg);
            lengths++;
        }
    }
    memset(msg, 'y', LOG_LINE_MAX * 5);
    msg[LOG_LINE_MAX * 5] = '\0';
    log_error("%s", msg);
    split(&l, capture_end());

    assert_int_equal(l.n, lengths + 1);
    size_t cut = 0;
    for (size_t i = 0; i < l.n; i++) {
        json_t *obj = parse_json_line(l.line[i]);
        const char *m = json_string_value(json_object_get(obj, "msg"));
        size_t n = strlen(m);
        assert_non_null(m);
        if (n >= 3 && strcmp(m + n - 3, "...") == 0)
            cut++;
        json_decref(obj);
    }
    /* The long 'y' line: cut, yet most of the line is the message. */
    json_t *obj = parse_json_line(l.line[l.n - 1]);
    const char *m = json_string_value(json_object_get(obj, "msg"));
    assert_true(strlen(m) > LOG_LINE_MAX - 100);
    assert_memory_equal(m, "yyyyyyyyyy", 10);
    assert_string_equal(m + strlen(m) - 3, "...");
    json_decref(obj);
    assert_true(cut > 0);
    free_lines(&l);
    free(msg);
}

/* ---- JSON: access lines ---- */

static void json_access_line_fields(void **state)
{
    static const char *const keys[] = {"time",   "level",  "request_id",
                                       "method", "target", "status",
                                       "bytes",  "us"};
    static const char *const keys_ended[] = {"time",   "level",  "request_id",
                                             "method", "target", "status",
                                             "bytes",  "us",     "ended"};
    struct lines l;

    (void)state;
    log_set_format(LOG_JSON);
    capture_start();
    log_access("GET", "/health?x=1", 200, 428, 98, 0, "0123abcd000000000007");
    log_access("HEAD", "/run/prime?limit=10", 504, 0, 30000123, 3,
               "client-id_1.2");
    char *before_flush = capture_end();
    capture_start();
    log_flush();
    split(&l, capture_end());

    /* Access lines wait in the thread's buffer for log_flush(). */
    assert_string_equal(before_flush, "");
    free(before_flush);
    assert_int_equal(l.n, 2);

    json_t *obj = parse_json_line(l.line[0]);
    check_keys(obj, keys, sizeof(keys) / sizeof(keys[0]));
    check_time(json_string_value(json_object_get(obj, "time")));
    assert_string_equal(json_string_value(json_object_get(obj, "level")),
                        "info");
    assert_string_equal(json_string_value(json_object_get(obj, "request_id")),
                        "0123abcd000000000007");
    assert_string_equal(json_string_value(json_object_get(obj, "method")),
                        "GET");
    assert_string_equal(json_string_value(json_object_get(obj, "target")),
                        "/health?x=1");
    assert_true(json_is_integer(json_object_get(obj, "status")));
    assert_int_equal(json_integer_value(json_object_get(obj, "status")), 200);
    assert_int_equal(json_integer_value(json_object_get(obj, "bytes")), 428);
    assert_int_equal(json_integer_value(json_object_get(obj, "us")), 98);
    json_decref(obj);

    obj = parse_json_line(l.line[1]);
    check_keys(obj, keys_ended, sizeof(keys_ended) / sizeof(keys_ended[0]));
    assert_string_equal(json_string_value(json_object_get(obj, "request_id")),
                        "client-id_1.2");
    assert_string_equal(json_string_value(json_object_get(obj, "method")),
                        "HEAD");
    assert_int_equal(json_integer_value(json_object_get(obj, "status")), 504);
    assert_int_equal(json_integer_value(json_object_get(obj, "bytes")), 0);
    assert_int_equal(json_integer_value(json_object_get(obj, "us")), 30000123);
    assert_int_equal(json_integer_value(json_object_get(obj, "ended")), 3);
    json_decref(obj);
    free_lines(&l);
}

/*
 * Targets with quotes, backslashes, %-escapes, controls and bytes >= 0x80,
 * and one far past LOG_TARGET_MAX: the target reads back as uri_quote()
 * made it; odd methods and ids are escaped too.
 */
static void json_access_odd_targets(void **state)
{
    static const char *const targets[] = {
        "/a\"b\\c?q=\"1\"&r=\\x",
        "/%22%5C%00%ff?x=%%%",
        "/ctl\x01\x1f\x7f?t=\ttab",
        "/utf8/\xc3\xa9\xe2\x82\xac?bad=\xff\xfe\xc3",
        "/'single'/{}[],:",
    };
    size_t n = sizeof(targets) / sizeof(targets[0]);
    char long_target[4 * LOG_TARGET_MAX];
    char quoted[LOG_TARGET_MAX];
    struct lines l;

    (void)state;
    for (size_t i = 0; i < sizeof(long_target) - 1; i++)
        long_target[i] = "\"\\\x01\xff"[i % 4];
    long_target[sizeof(long_target) - 1] = '\0';
    log_set_format(LOG_JSON);
    capture_start();
    for (size_t i = 0; i < n; i++)
        log_access("GET", targets[i], 400, 90, 12, 0, "id");
    log_access("GET", long_target, 414, 0, 1, 0, "id");
    log_access("GE\"T\\", "/", 200, 0, 1, 0, "i\"d\\\x01\xff");
    /* The longest id the service echoes, with the longest target. */
    log_access("GET", long_target, 200, 0, 1, 2,
               "0123456789012345678901234567890123456789012345678901234567"
               "890123");
    log_flush();
    split(&l, capture_end());

    assert_int_equal(l.n, n + 3);
    for (size_t i = 0; i < n; i++) {
        json_t *obj = parse_json_line(l.line[i]);
        uri_quote(quoted, sizeof(quoted), targets[i]);
        assert_string_equal(json_string_value(json_object_get(obj, "target")),
                            quoted);
        assert_int_equal(json_integer_value(json_object_get(obj, "status")),
                         400);
        json_decref(obj);
    }
    json_t *obj = parse_json_line(l.line[n]);
    uri_quote(quoted, sizeof(quoted), long_target);
    assert_string_equal(json_string_value(json_object_get(obj, "target")),
                        quoted);
    assert_true(strlen(quoted) < LOG_TARGET_MAX);
    assert_int_equal(json_integer_value(json_object_get(obj, "status")), 414);
    json_decref(obj);

    obj = parse_json_line(l.line[n + 1]);
    assert_string_equal(json_string_value(json_object_get(obj, "method")),
                        "GE\"T\\");
    char *want = latin1_to_utf8("i\"d\\\x01\xff");
    assert_string_equal(json_string_value(json_object_get(obj, "request_id")),
                        want);
    free(want);
    json_decref(obj);

    obj = parse_json_line(l.line[n + 2]);
    assert_int_equal(
        strlen(json_string_value(json_object_get(obj, "request_id"))), 64);
    assert_string_equal(json_string_value(json_object_get(obj, "target")),
                        quoted);
    assert_int_equal(json_integer_value(json_object_get(obj, "ended")), 2);
    json_decref(obj);
    free_lines(&l);
}

/* ---- text format ---- */

static void text_access_line(void **state)
{
    struct lines l;

    (void)state;
    log_set_format(LOG_TEXT);
    capture_start();
    log_access("GET", "/health?x=1", 200, 428, 98, 0, "0123abcd000000000007");
    log_access("POST", "/a b\"'", 405, 120, 7, 2, "-");
    log_flush();
    log_info("hello %s", "world");
    split(&l, capture_end());

    assert_int_equal(l.n, 3);
    /* "<time> INFO <method> <target> <status> <bytes>B <us>us id=<id>" */
    char time_text[25];
    memcpy(time_text, l.line[0], 24);
    time_text[24] = '\0';
    check_time(time_text);
    assert_string_equal(l.line[0] + 24, " INFO GET /health?x=1 200 428B 98us "
                                        "id=0123abcd000000000007");
    assert_string_equal(l.line[1] + 24,
                        " INFO POST /a b\"\\x27 405 120B 7us id=- "
                        "(connection ended: 2)");
    assert_string_equal(l.line[2] + 24, " INFO hello world");
    free_lines(&l);
}

static void text_long_message_is_cut(void **state)
{
    char msg[3 * LOG_LINE_MAX];
    struct lines l;

    (void)state;
    memset(msg, 'z', sizeof(msg) - 1);
    msg[sizeof(msg) - 1] = '\0';
    capture_start();
    log_warn("%s", msg);
    split(&l, capture_end());

    assert_int_equal(l.n, 1);
    size_t len = strlen(l.line[0]);
    assert_true(len + 1 <= LOG_LINE_MAX);
    assert_true(len > LOG_LINE_MAX - 10);
    assert_string_equal(l.line[0] + len - 4, "z...");
    assert_memory_equal(l.line[0] + 24, " WARN zzz", 9);
    free_lines(&l);
}

/* ---- threads ---- */

static void *write_access_lines(void *arg)
{
    struct access_writer *w = arg;
    char id[32], target[64];
    for (int i = 0; i < LINES_PER_THREAD; i++) {
        snprintf(id, sizeof(id), "t%d-%d", w->id, i);
        snprintf(target, sizeof(target), "/run/\"%d\"?i=%d\\", w->id, i);
        log_access("GET", target, 200, (uint64_t)i, (uint64_t)w->id, 0, id);
        if (i % 100 == 0)
            log_info("thread %d line %d", w->id, i);
    }
    return NULL;
}

/*
 * THREADS threads log access lines (which fill and write their buffers)
 * and messages while this one flushes: every line is whole, valid JSON,
 * and every access line is there exactly once.
 */
static void json_lines_whole_under_threads(void **state)
{
    struct access_writer w[THREADS];
    static char seen[THREADS][LINES_PER_THREAD];
    struct lines l;

    (void)state;
    memset(seen, 0, sizeof(seen));
    log_set_format(LOG_JSON);
    capture_start();
    for (int t = 0; t < THREADS; t++) {
        w[t].id = t;
        if (pthread_create(&w[t].thread, NULL, write_access_lines, &w[t]))
            abort();
    }
    for (int i = 0; i < 200; i++) {
        log_flush();
        usleep(100);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(w[t].thread, NULL);
    log_flush();
    split(&l, capture_end());

    size_t access = 0, messages = 0;
    for (size_t i = 0; i < l.n; i++) {
        json_t *obj = parse_json_line(l.line[i]);
        const char *id = json_string_value(json_object_get(obj, "request_id"));
        if (!id) {
            assert_non_null(json_object_get(obj, "msg"));
            messages++;
            json_decref(obj);
            continue;
        }
        int t = -1, n = -1;
        char want[64];
        assert_int_equal(sscanf(id, "t%d-%d", &t, &n), 2);
        assert_true(t >= 0 && t < THREADS && n >= 0 && n < LINES_PER_THREAD);
        if (seen[t][n]++)
            fail_msg("access line %s twice", id);
        snprintf(want, sizeof(want), "/run/\"%d\"?i=%d\\", t, n);
        assert_string_equal(json_string_value(json_object_get(obj, "target")),
                            want);
        assert_int_equal(json_integer_value(json_object_get(obj, "bytes")), n);
        json_decref(obj);
        access++;
    }
    assert_int_equal(access, THREADS * LINES_PER_THREAD);
    assert_int_equal(messages, THREADS * (LINES_PER_THREAD / 100));
    free_lines(&l);
}

static void *write_one_access_line(void *arg)
{
    char id[16];
    snprintf(id, sizeof(id), "x%d", *(int *)arg);
    log_access("GET", "/exited", 200, 0, 0, 0, id);
    return NULL;
}

/*
 * Threads that log once and exit, more of them than the buffer table:
 * those past the table write at once, the others' lines wait in their
 * buffers for log_flush(), and none is lost.
 */
static void exited_threads_lose_no_line(void **state)
{
    int ids[EXITED_THREADS];
    struct lines l;

    (void)state;
    log_set_format(LOG_TEXT);
    capture_start();
    for (int i = 0; i < EXITED_THREADS; i++) {
        pthread_t th;
        ids[i] = i;
        if (pthread_create(&th, NULL, write_one_access_line, &ids[i]))
            abort();
        pthread_join(th, NULL);
    }
    char *unflushed = capture_end();
    capture_start();
    log_flush();
    char *flushed = capture_end();

    size_t early = 0;
    for (const char *p = unflushed; (p = strstr(p, " /exited ")); p++)
        early++;
    free(unflushed);
    assert_true(early >= EXITED_THREADS - LOG_BUFFERS_MAX);
    assert_true(early < EXITED_THREADS);
    split(&l, flushed);
    size_t late = 0;
    for (size_t i = 0; i < l.n; i++)
        late += strstr(l.line[i], " /exited ") != NULL;
    assert_int_equal(early + late, EXITED_THREADS);
    free_lines(&l);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup_log, teardown_log)
    const struct CMUnitTest tests[] = {
        T(format_parse),
        T(json_message_lines),
        T(levels_filter_both_formats),
        T(json_message_any_bytes),
        T(json_message_utf8),
        T(json_long_message_is_cut_validly),
        T(json_access_line_fields),
        T(json_access_odd_targets),
        T(text_access_line),
        T(text_long_message_is_cut),
        T(json_lines_whole_under_threads),
        T(exited_threads_lose_no_line),
    };
#undef T
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
