/*
 * Unit tests of server/metrics.c: metrics_request() counts, read back
 * through metrics_write_http() into a memory stream and parsed as the
 * Prometheus text format.
 *
 * The counters are process-wide and never reset, so every test compares
 * two scrapes (a delta) and holds whatever ran before it. Route labels
 * come from a real router (fake handlers), built by the fixture; route
 * ids come from router_dispatch() where the test is about routing.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "../../server/metrics.h"
#include "../../server/router.h"

#define REQUESTS   "conlab_http_requests_total"
#define DURATION   "conlab_http_request_duration_seconds"
#define SERIES_MAX 256

/* Every le bound, in the order written. */
static const char *const le_bounds[] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005",
    "0.01",   "0.025",   "0.05",   "0.1",   "0.25",   "0.5",
    "1",      "2.5",     "5",      "10",    "30",     "+Inf"};
#define N_LE (sizeof(le_bounds) / sizeof(le_bounds[0]))

struct fixture {
    struct router *router; /* "/a" (id 0), "/b" (1), "/p/" "*" (2) */
    int calls;
};

/* One concurrent writer: n requests of each of its two kinds. */
struct writer {
    pthread_t thread;
    int n;
    int route;
    int status;
};

static int setup_router(void **state);
static int teardown_router(void **state);
static enum handler_result ok_handler(struct request *req,
                                      struct response *resp, void *ctx);
static char *scrape(const struct router *router);
static double value(const char *text, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int occurrences(const char *text, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static double requests(const char *text, const char *route, const char *method,
                       const char *status);
static double bucket(const char *text, const char *route, const char *le);
static double hcount(const char *text, const char *route);
static double hsum(const char *text, const char *route);
static void check_exposition(const char *text);
static void check_histograms(const char *text);
static void *write_requests(void *arg);

static int setup_router(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    f->router = router_new();
    if (!f->router || router_add(f->router, HTTP_GET, "/a", ok_handler, f) ||
        router_add(f->router, HTTP_GET | HTTP_POST, "/b", ok_handler, f) ||
        router_add(f->router, HTTP_GET, "/p/*", ok_handler, f)) {
        router_free(f->router);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown_router(void **state)
{
    struct fixture *f = *state;
    router_free(f->router);
    free(f);
    return 0;
}

static enum handler_result ok_handler(struct request *req,
                                      struct response *resp, void *ctx)
{
    struct fixture *f = ctx;
    f->calls++;
    response_json(resp, 200, json_pack("{s:s}", "path", req->path));
    return HANDLER_DONE;
}

/* metrics_write_http()'s whole text (the caller frees it). */
static char *scrape(const struct router *router)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    metrics_write_http(out, router);
    assert_int_equal(fclose(out), 0);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

/*
 * The value of the sample whose name and labels are the formatted text
 * exactly, 0 when there is no such line (the counters leave out zeros).
 * Fails on a duplicate.
 */
static double value(const char *text, const char *fmt, ...)
{
    char series[SERIES_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(series, sizeof(series), fmt, ap);
    va_end(ap);

    size_t n = strlen(series);
    double found = 0;
    int seen = 0;
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        if (!end)
            fail_msg("last line without a newline: %s", line);
        if (strncmp(line, series, n) == 0 && line[n] == ' ') {
            char *stop = NULL;
            found = strtod(line + n + 1, &stop);
            if (stop != end)
                fail_msg("bad value in %.*s", (int)(end - line), line);
            seen++;
        }
        line = end + 1;
    }
    if (seen > 1)
        fail_msg("%d samples of %s", seen, series);
    return found;
}

/* How many lines begin with the formatted text. */
static int occurrences(const char *text, const char *fmt, ...)
{
    char prefix[SERIES_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);

    int seen = 0;
    size_t n = strlen(prefix);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, prefix, n) == 0)
            seen++;
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    return seen;
}

static double requests(const char *text, const char *route, const char *method,
                       const char *status)
{
    return value(text, REQUESTS "{route=\"%s\",method=\"%s\",status=\"%s\"}",
                 route, method, status);
}

static double bucket(const char *text, const char *route, const char *le)
{
    return value(text, DURATION "_bucket{route=\"%s\",le=\"%s\"}", route, le);
}

static double hcount(const char *text, const char *route)
{
    return value(text, DURATION "_count{route=\"%s\"}", route);
}

static double hsum(const char *text, const char *route)
{
    return value(text, DURATION "_sum{route=\"%s\"}", route);
}

/*
 * A light promtool: every line is "# HELP name text", "# TYPE name type"
 * or a sample name{label="value",...} number; a family's samples follow
 * its TYPE line (a histogram's as name_bucket, _sum, _count); no family is
 * declared twice and no sample written twice.
 */
static void check_exposition(const char *text)
{
    char family[128] = "", type[32] = "";
    /* "\nname\n" lists, searched for "\nkey\n". */
    char *seen_families = calloc(1, strlen(text) + 2);
    char *seen_samples = calloc(1, strlen(text) + 2);
    assert_non_null(seen_families);
    assert_non_null(seen_samples);
    seen_families[0] = seen_samples[0] = '\n';

    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        char buf[512];
        if (!end)
            fail_msg("last line without a newline");
        if ((size_t)(end - line) >= sizeof(buf))
            fail_msg("line too long: %.80s", line);
        memcpy(buf, line, (size_t)(end - line));
        buf[end - line] = '\0';
        line = end + 1;

        if (strncmp(buf, "# HELP ", 7) == 0) {
            assert_true(strlen(buf) > 8);
            continue;
        }
        if (strncmp(buf, "# TYPE ", 7) == 0) {
            char name[128], kind[32], key[140];
            if (sscanf(buf + 7, "%127s %31s", name, kind) != 2)
                fail_msg("bad TYPE line: %s", buf);
            if (strcmp(kind, "counter") && strcmp(kind, "gauge") &&
                strcmp(kind, "histogram"))
                fail_msg("unknown type in %s", buf);
            snprintf(key, sizeof(key), "\n%s\n", name);
            if (strstr(seen_families, key))
                fail_msg("family %s declared twice", name);
            strcat(seen_families, key + 1);
            memcpy(family, name, sizeof(family));
            memcpy(type, kind, sizeof(type));
            continue;
        }
        assert_true(family[0] != '\0');

        /* name{labels} value */
        char *brace = strchr(buf, '{');
        char *space = strrchr(buf, ' ');
        if (!brace || !space || space < brace)
            fail_msg("bad sample line: %s", buf);
        size_t name_len = (size_t)(brace - buf);
        size_t fam_len = strlen(family);
        bool ok = name_len == fam_len && strncmp(buf, family, fam_len) == 0;
        if (!ok && strcmp(type, "histogram") == 0 &&
            strncmp(buf, family, fam_len) == 0) {
            const char *suffix = buf + fam_len;
            size_t sl = name_len - fam_len;
            ok = (sl == 7 && strncmp(suffix, "_bucket", 7) == 0) ||
                 (sl == 4 && strncmp(suffix, "_sum", 4) == 0) ||
                 (sl == 6 && strncmp(suffix, "_count", 6) == 0);
        }
        if (!ok)
            fail_msg("sample outside its family %s: %s", family, buf);
        if (strcmp(type, "counter") == 0 && !strstr(family, "_total"))
            fail_msg("counter %s does not end in _total", family);

        /* Labels: name="value" pairs, no raw quote or newline inside. */
        const char *p = brace + 1;
        for (;;) {
            size_t key_len = strspn(p, "abcdefghijklmnopqrstuvwxyz_");
            if (key_len == 0 || p[key_len] != '=' || p[key_len + 1] != '"')
                fail_msg("bad label in %s", buf);
            p += key_len + 2;
            while (*p && *p != '"') {
                if (*p == '\\') {
                    if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
                        fail_msg("bad escape in %s", buf);
                    p++;
                }
                p++;
            }
            if (*p != '"')
                fail_msg("unterminated label value in %s", buf);
            p++;
            if (*p == ',') {
                p++;
                continue;
            }
            if (*p == '}')
                break;
            fail_msg("bad label list in %s", buf);
        }
        if (p + 1 != space)
            fail_msg("text after the labels in %s", buf);

        char *stop = NULL;
        double v = strtod(space + 1, &stop);
        if (*stop != '\0' || isnan(v) || v < 0)
            fail_msg("bad value in %s", buf);

        char key[520];
        snprintf(key, sizeof(key), "\n%.*s\n", (int)(space - buf), buf);
        if (strstr(seen_samples, key))
            fail_msg("sample written twice: %s", buf);
        strcat(seen_samples, key + 1);
    }
    free(seen_families);
    free(seen_samples);
}

/*
 * Each route's histogram: its buckets in ascending le order ending with
 * +Inf, cumulative (never decreasing), then _sum and _count, with _count
 * equal to the +Inf bucket.
 */
static void check_histograms(const char *text)
{
    static const char bucket_prefix[] = DURATION "_bucket{route=\"";
    int routes = 0;

    for (const char *line = strstr(text, bucket_prefix); line;) {
        char route[ROUTER_PATH_MAX + 8];
        const char *r = line + strlen(bucket_prefix);
        const char *q = strchr(r, '"');
        assert_non_null(q);
        snprintf(route, sizeof(route), "%.*s", (int)(q - r), r);

        double prev_bound = -1, prev_value = -1;
        for (size_t b = 0; b < N_LE; b++) {
            char want[SERIES_MAX];
            int n = snprintf(want, sizeof(want),
                             DURATION "_bucket{route=\"%s\",le=\"%s\"} ", route,
                             le_bounds[b]);
            if (strncmp(line, want, (size_t)n) != 0)
                fail_msg("route %s: bucket %zu is %.90s, wanted le=\"%s\"",
                         route, b, line, le_bounds[b]);
            double bound = strtod(le_bounds[b], NULL);
            double v = strtod(line + n, NULL);
            assert_true(bound > prev_bound);
            if (v < prev_value)
                fail_msg("route %s: le=%s has %.0f < %.0f before it", route,
                         le_bounds[b], v, prev_value);
            prev_bound = bound;
            prev_value = v;
            line = strchr(line, '\n') + 1;
        }
        assert_true(isinf(prev_bound));

        char want[SERIES_MAX];
        int n =
            snprintf(want, sizeof(want), DURATION "_sum{route=\"%s\"} ", route);
        if (strncmp(line, want, (size_t)n) != 0)
            fail_msg("route %s: no _sum after the buckets: %.80s", route, line);
        assert_true(strtod(line + n, NULL) >= 0);
        line = strchr(line, '\n') + 1;
        n = snprintf(want, sizeof(want), DURATION "_count{route=\"%s\"} ",
                     route);
        if (strncmp(line, want, (size_t)n) != 0)
            fail_msg("route %s: no _count after _sum: %.80s", route, line);
        if (strtod(line + n, NULL) != prev_value)
            fail_msg("route %s: _count %.0f, +Inf bucket %.0f", route,
                     strtod(line + n, NULL), prev_value);
        line = strstr(line, bucket_prefix);
        routes++;
    }
    assert_true(routes > 0);
}

/* ---- counts by route, method and status ---- */

static void counts_by_route_method_status(void **state)
{
    struct fixture *f = *state;
    char *before = scrape(f->router);

    for (int i = 0; i < 3; i++)
        metrics_request(0, HTTP_GET, 200, 1000);
    for (int i = 0; i < 2; i++)
        metrics_request(1, HTTP_HEAD, 200, 1000);
    metrics_request(1, HTTP_POST, 200, 1000);
    metrics_request(1, HTTP_GET, 400, 1000);
    for (int i = 0; i < 5; i++)
        metrics_request(2, HTTP_GET, 404, 1000);
    metrics_request(0, HTTP_PUT, 405, 1000);
    metrics_request(2, HTTP_GET, 503, 1000);

    char *after = scrape(f->router);
    static const struct {
        const char *route, *method, *status;
        int delta;
    } want[] = {
        {"/a", "GET", "200", 3},
        {"/b", "HEAD", "200", 2},
        {"/b", "POST", "200", 1},
        {"/b", "GET", "400", 1},
        {"/p/*", "GET", "404", 5},
        {"/a", "PUT", "405", 1},
        {"/p/*", "GET", "503", 1},
        /* and nothing where nothing was counted */
        {"/a", "HEAD", "200", 0},
        {"/b", "GET", "200", 0},
        {"/a", "GET", "404", 0},
        {"none", "GET", "200", 0},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        double d =
            requests(after, want[i].route, want[i].method, want[i].status) -
            requests(before, want[i].route, want[i].method, want[i].status);
        if (d != want[i].delta)
            fail_msg("%s %s %s: delta %.0f, wanted %d", want[i].route,
                     want[i].method, want[i].status, d, want[i].delta);
    }
    /* The histogram counts every request of its route, whatever status. */
    assert_true(hcount(after, "/a") - hcount(before, "/a") == 4);
    assert_true(hcount(after, "/b") - hcount(before, "/b") == 4);
    assert_true(hcount(after, "/p/*") - hcount(before, "/p/*") == 6);
    assert_true(hcount(after, "none") - hcount(before, "none") == 0);
    free(before);
    free(after);
}

/* The route id is the one router_dispatch() sets: labels follow it. */
static void route_labels_from_the_router(void **state)
{
    struct fixture *f = *state;
    static const struct {
        enum http_method method;
        const char *path;
        const char *route;
        const char *method_name;
        int status;
    } sent[] = {
        {HTTP_GET, "/a", "/a", "GET", 200},
        {HTTP_HEAD, "/a", "/a", "HEAD", 200},
        {HTTP_POST, "/b", "/b", "POST", 200},
        {HTTP_POST, "/a", "/a", "POST", 405},
        {HTTP_GET, "/p/x/y", "/p/*", "GET", 200},
        {HTTP_DELETE, "/p/", "/p/*", "DELETE", 405},
        {HTTP_GET, "/nowhere", "none", "GET", 404},
        {HTTP_OTHER, "/nowhere", "none", "OTHER", 404},
    };
    size_t n = sizeof(sent) / sizeof(sent[0]);
    char *before = scrape(f->router);

    for (size_t i = 0; i < n; i++) {
        struct request req = {
            .method = sent[i].method, .path = sent[i].path, .query = ""};
        struct response resp;
        response_init(&resp);
        router_dispatch(f->router, &req, &resp);
        assert_int_equal(resp.status, sent[i].status);
        metrics_request(req.route, req.method, resp.status, 50000);
        response_cleanup(&resp);
    }

    char *after = scrape(f->router);
    for (size_t i = 0; i < n; i++) {
        char status[8];
        snprintf(status, sizeof(status), "%d", sent[i].status);
        double d = requests(after, sent[i].route, sent[i].method_name, status) -
                   requests(before, sent[i].route, sent[i].method_name, status);
        if (d != 1)
            fail_msg("%s %s -> route %s status %s: delta %.0f, wanted 1",
                     sent[i].method_name, sent[i].path, sent[i].route, status,
                     d);
    }
    assert_true(hcount(after, "none") - hcount(before, "none") == 2);
    assert_true(hcount(after, "/p/*") - hcount(before, "/p/*") == 2);
    free(before);
    free(after);
}

static void no_route_is_none(void **state)
{
    struct fixture *f = *state;
    char *before = scrape(f->router);

    metrics_request(-1, HTTP_GET, 503, 1000);
    metrics_request(-1, HTTP_GET, 503, 1000);
    metrics_request(-1, HTTP_POST, 413, 1000);

    char *after = scrape(f->router);
    assert_true(requests(after, "none", "GET", "503") -
                    requests(before, "none", "GET", "503") ==
                2);
    assert_true(requests(after, "none", "POST", "413") -
                    requests(before, "none", "POST", "413") ==
                1);
    assert_true(hcount(after, "none") - hcount(before, "none") == 3);
    /* No route id is made up for them. */
    assert_int_equal(occurrences(after, REQUESTS "{route=\"\""), 0);
    free(before);
    free(after);
}

/*
 * Counts under a route id this router does not have (another router's, as
 * in the test below) are left out: written as "none" they would repeat
 * the "none" samples, and a scrape with a duplicate series is refused.
 */
static void routes_unknown_to_the_router_are_left_out(void **state)
{
    struct fixture *f = *state;
    char *before = scrape(f->router);

    metrics_request(-1, HTTP_GET, 200, 1000);
    metrics_request(3, HTTP_GET, 200, 1000);
    metrics_request(9, HTTP_GET, 200, 1000);

    char *after = scrape(f->router);
    check_exposition(after);
    check_histograms(after);
    assert_true(requests(after, "none", "GET", "200") -
                    requests(before, "none", "GET", "200") ==
                1);
    assert_true(hcount(after, "none") - hcount(before, "none") == 1);
    free(before);
    free(after);
}

static void every_known_status_has_its_label(void **state)
{
    static const int known[] = {200, 304, 400, 403, 404, 405, 413,
                                414, 431, 499, 500, 502, 503, 504};
    struct fixture *f = *state;
    char *before = scrape(f->router);

    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        metrics_request(0, HTTP_GET, known[i], 1000);

    char *after = scrape(f->router);
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        char status[8];
        snprintf(status, sizeof(status), "%d", known[i]);
        double d = requests(after, "/a", "GET", status) -
                   requests(before, "/a", "GET", status);
        if (d != 1)
            fail_msg("status %s: delta %.0f, wanted 1", status, d);
    }
    assert_true(requests(after, "/a", "GET", "other") ==
                requests(before, "/a", "GET", "other"));
    free(before);
    free(after);
}

static void unknown_status_is_other(void **state)
{
    static const int unknown[] = {201, 204, 302, 418, 501, 505, 0, -1, 999};
    struct fixture *f = *state;
    size_t n = sizeof(unknown) / sizeof(unknown[0]);
    char *before = scrape(f->router);

    for (size_t i = 0; i < n; i++)
        metrics_request(1, HTTP_GET, unknown[i], 1000);

    char *after = scrape(f->router);
    assert_true(requests(after, "/b", "GET", "other") -
                    requests(before, "/b", "GET", "other") ==
                (double)n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(occurrences(after,
                                     REQUESTS "{route=\"/b\","
                                              "method=\"GET\",status=\"%d\"}",
                                     unknown[i]),
                         0);
    free(before);
    free(after);
}

/* A static directory's redirect is a status of its own, not "other". */
static void redirect_status_counted(void **state)
{
    struct fixture *f = *state;
    char *before = scrape(f->router);
    metrics_request(1, HTTP_GET, 301, 1000);
    char *after = scrape(f->router);
    assert_true(requests(after, "/b", "GET", "301") -
                    requests(before, "/b", "GET", "301") ==
                1.0);
    assert_true(requests(after, "/b", "GET", "other") ==
                requests(before, "/b", "GET", "other"));
    free(before);
    free(after);
}

static void methods_and_other(void **state)
{
    static const struct {
        enum http_method method;
        const char *name;
    } named[] = {
        {HTTP_GET, "GET"},       {HTTP_HEAD, "HEAD"},
        {HTTP_POST, "POST"},     {HTTP_PUT, "PUT"},
        {HTTP_DELETE, "DELETE"}, {HTTP_OPTIONS, "OPTIONS"},
        {HTTP_PATCH, "PATCH"},   {HTTP_OTHER, "OTHER"},
    };
    struct fixture *f = *state;
    char *before = scrape(f->router);

    for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++)
        metrics_request(2, named[i].method, 405, 1000);
    /* Not one method: before parsing (0), a mask, a stray bit. */
    metrics_request(2, (enum http_method)0, 405, 1000);
    metrics_request(2, (enum http_method)(HTTP_GET | HTTP_POST), 405, 1000);
    metrics_request(2, (enum http_method)(1 << 12), 405, 1000);

    char *after = scrape(f->router);
    for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
        double d = requests(after, "/p/*", named[i].name, "405") -
                   requests(before, "/p/*", named[i].name, "405");
        double wanted = named[i].method == HTTP_OTHER ? 4 : 1;
        if (d != wanted)
            fail_msg("method %s: delta %.0f, wanted %.0f", named[i].name, d,
                     wanted);
    }
    free(before);
    free(after);
}

/* ---- the duration histogram ---- */

static void bucket_bounds_are_inclusive(void **state)
{
    /* (ns, index of the bucket it belongs to: le is "less or equal") */
    static const struct {
        uint64_t ns;
        size_t bucket;
    } cases[] = {
        {0, 0},
        {1, 0},
        {100000, 0},
        {100001, 1},
        {250000, 1},
        {999999, 3},
        {1000000, 3},
        {1000001, 4},
        {1000000000, 12},
        {29999999999ull, 16},
        {30000000000ull, 16},
        {30000000001ull, 17},
        {3600000000000ull, 17}, /* an hour: sums stay exact to 1 ns */
    };
    struct fixture *f = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *before = scrape(f->router);
        metrics_request(0, HTTP_GET, 200, cases[i].ns);
        char *after = scrape(f->router);
        /* The request shows in its bucket and every one above it. */
        for (size_t b = 0; b < N_LE; b++) {
            double d = bucket(after, "/a", le_bounds[b]) -
                       bucket(before, "/a", le_bounds[b]);
            double wanted = b >= cases[i].bucket ? 1 : 0;
            if (d != wanted)
                fail_msg("%llu ns: le=\"%s\" delta %.0f, wanted %.0f",
                         (unsigned long long)cases[i].ns, le_bounds[b], d,
                         wanted);
        }
        assert_true(hcount(after, "/a") - hcount(before, "/a") == 1);
        free(before);
        free(after);
    }
}

static void sum_and_count_agree(void **state)
{
    static const uint64_t ns[] = {
        1,         999,        123456,         7000000,       250000000,
        999999999, 1000000000, 12345678901ull, 60000000000ull};
    struct fixture *f = *state;
    uint64_t total = 0;
    char *before = scrape(f->router);

    for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
        metrics_request(1, HTTP_GET, 200, ns[i]);
        total += ns[i];
    }

    char *after = scrape(f->router);
    double dsum = hsum(after, "/b") - hsum(before, "/b");
    double dcount = hcount(after, "/b") - hcount(before, "/b");
    assert_true(dcount == sizeof(ns) / sizeof(ns[0]));
    if (fabs(dsum - (double)total / 1e9) > 1e-8)
        fail_msg("_sum delta %.9f, wanted %.9f", dsum, (double)total / 1e9);
    /* _count equals the requests counted for the route, any status. */
    assert_true(requests(after, "/b", "GET", "200") -
                    requests(before, "/b", "GET", "200") ==
                dcount);
    free(before);
    free(after);
}

static void histograms_are_well_formed(void **state)
{
    struct fixture *f = *state;

    metrics_request(0, HTTP_GET, 200, 5000000);
    metrics_request(2, HTTP_GET, 200, 3000000000ull);
    metrics_request(-1, HTTP_GET, 503, 100);
    char *text = scrape(f->router);
    check_histograms(text);
    check_exposition(text);
    free(text);
}

/* Every route of the router has a histogram (zeros included), and "none". */
static void histogram_per_route(void **state)
{
    struct fixture *f = *state;
    static const char *const routes[] = {"none", "/a", "/b", "/p/*"};
    char *text = scrape(f->router);

    assert_int_equal(occurrences(text, DURATION "_count{"), 4);
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        assert_int_equal(
            occurrences(text, DURATION "_count{route=\"%s\"} ", routes[i]), 1);
        assert_int_equal(
            occurrences(text, DURATION "_bucket{route=\"%s\",", routes[i]),
            (int)N_LE);
    }
    /* "none" comes first, then the routes in the order they were added. */
    const char *none = strstr(text, DURATION "_count{route=\"none\"}");
    const char *a = strstr(text, DURATION "_count{route=\"/a\"}");
    const char *b = strstr(text, DURATION "_count{route=\"/b\"}");
    const char *p = strstr(text, DURATION "_count{route=\"/p/*\"}");
    assert_true(none < a && a < b && b < p);
    free(text);
}

/* The largest router metrics can name: ids 0..METRICS_ROUTES - 2. */
static void every_route_up_to_the_cap_is_named(void **state)
{
    struct fixture *f = *state;
    struct router *big = router_new();
    char path[16];

    assert_non_null(big);
    for (int i = 0; i < METRICS_ROUTES - 1; i++) {
        snprintf(path, sizeof(path), "/r%d", i);
        assert_int_equal(router_add(big, HTTP_GET, path, ok_handler, f), 0);
    }
    char *before = scrape(big);
    for (int i = 0; i < METRICS_ROUTES - 1; i++)
        metrics_request(i, HTTP_GET, 200, 1000);
    char *after = scrape(big);
    for (int i = 0; i < METRICS_ROUTES - 1; i++) {
        snprintf(path, sizeof(path), "/r%d", i);
        if (requests(after, path, "GET", "200") -
                requests(before, path, "GET", "200") !=
            1)
            fail_msg("route %s not counted under its label", path);
        assert_true(hcount(after, path) - hcount(before, path) == 1);
    }
    assert_int_equal(occurrences(after, DURATION "_count{"), METRICS_ROUTES);
    check_exposition(after);
    check_histograms(after);
    free(before);
    free(after);
    router_free(big);
}

/* ---- threads ---- */

static void *write_requests(void *arg)
{
    struct writer *w = arg;
    for (int i = 0; i < w->n; i++) {
        metrics_request(0, HTTP_GET, 200, 1000);
        metrics_request(w->route, HTTP_POST, w->status, 2000);
    }
    return NULL;
}

/*
 * n_threads threads, each n times (/a GET 200, 1 us) and n times its own
 * (route, POST, status, 2 us): every total is exact.
 */
static void concurrent_writers(struct fixture *f, int n_threads, int n)
{
    static const int statuses[] = {200, 404, 503, 504};
    struct writer *w = calloc((size_t)n_threads, sizeof(*w));
    assert_non_null(w);
    char *before = scrape(f->router);

    for (int t = 0; t < n_threads; t++) {
        w[t].n = n;
        w[t].route = 1 + t % 2;
        w[t].status = statuses[t % 4];
        assert_int_equal(
            pthread_create(&w[t].thread, NULL, write_requests, &w[t]), 0);
    }
    /* Scrapes while they write: never a torn or malformed text. */
    for (int i = 0; i < 20; i++) {
        char *during = scrape(f->router);
        check_exposition(during);
        check_histograms(during);
        free(during);
    }
    for (int t = 0; t < n_threads; t++)
        assert_int_equal(pthread_join(w[t].thread, NULL), 0);

    char *after = scrape(f->router);
    double total = (double)n_threads * n;
    assert_true(requests(after, "/a", "GET", "200") -
                    requests(before, "/a", "GET", "200") ==
                total);
    assert_true(hcount(after, "/a") - hcount(before, "/a") == total);
    double d_sum = hsum(after, "/a") - hsum(before, "/a");
    assert_true(fabs(d_sum - total * 1e-6) < 1e-8);
    for (int route = 1; route <= 2; route++) {
        const char *label = route == 1 ? "/b" : "/p/*";
        double wanted_count = 0;
        for (size_t s = 0; s < 4; s++) {
            char status[8];
            double wanted = 0;
            for (int t = 0; t < n_threads; t++) {
                if (w[t].route == route && w[t].status == statuses[s])
                    wanted += n;
            }
            snprintf(status, sizeof(status), "%d", statuses[s]);
            double d = requests(after, label, "POST", status) -
                       requests(before, label, "POST", status);
            if (d != wanted)
                fail_msg("%s POST %s: delta %.0f, wanted %.0f", label, status,
                         d, wanted);
            wanted_count += wanted;
        }
        assert_true(hcount(after, label) - hcount(before, label) ==
                    wanted_count);
        /* 2 us each: in the first bucket (le 0.0001 s). */
        assert_true(bucket(after, label, "0.0001") -
                        bucket(before, label, "0.0001") ==
                    wanted_count);
    }
    free(before);
    free(after);
    free(w);
}

static void four_threads_exact_totals(void **state)
{
    concurrent_writers(*state, 4, 10000);
}

/* More threads than shards: threads share a shard, totals stay exact. */
static void more_threads_than_shards(void **state)
{
    concurrent_writers(*state, METRICS_SHARDS + 4, 2000);
}

int main(void)
{
#define T(name)                                                                \
    cmocka_unit_test_setup_teardown(name, setup_router, teardown_router)
    const struct CMUnitTest tests[] = {
        T(counts_by_route_method_status),
        T(route_labels_from_the_router),
        T(no_route_is_none),
        T(routes_unknown_to_the_router_are_left_out),
        T(every_known_status_has_its_label),
        T(unknown_status_is_other),
        T(redirect_status_counted),
        T(methods_and_other),
        T(bucket_bounds_are_inclusive),
        T(sum_and_count_agree),
        T(histograms_are_well_formed),
        T(histogram_per_route),
        T(every_route_up_to_the_cap_is_named),
        T(four_threads_exact_totals),
        T(more_threads_than_shards),
    };
#undef T
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
