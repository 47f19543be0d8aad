/*
 * Unit tests of handlers/registry.c's demo_parse_json(): a POST body's
 * parameters read with the real registry's demos (square, prime, sleep,
 * fetch, work: its io_ratio and variance are DEMO_REAL), against the same
 * bounds and messages as the query form, and the query's own reader
 * (demo_parse()) where both must agree. The fixture gives an app with --workers
 * 4 and an allow list of the service itself on 127.0.0.1:8080 (fetch's check
 * reads it; nothing connects).
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

#include "../../handlers/demo.h"
#include "../../server/allow.h"
#include "../../server/app.h"
#include "../../server/config.h"
#include "../../server/jsonr.h"
#include "../../server/jsonw.h"
#include "../../server/params.h"

#define ERR_MAX 512

struct fixture {
    struct config cfg;
    struct allow_list allow;
    struct app app;
};

/* One parse: its return, its message (p's or err), the arguments. */
struct outcome {
    int rc;
    char message[ERR_MAX];
    struct demo_args args;
};

static int setup(void **state);
static int teardown(void **state);
static void parse_json(const struct fixture *f, const char *demo,
                       const char *body, int mode, struct outcome *o);
static void parse_query(const struct fixture *f, const char *demo,
                        const char *query, int mode, struct outcome *o);
static void expect_400(const struct fixture *f, const char *demo,
                       const char *body, int mode, const char *message);
static char *int_array(size_t n, int64_t value);

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    config_defaults(&f->cfg);
    f->cfg.workers = 4;
    if (allow_init(&f->allow, "127.0.0.1", 8080, NULL, 0, NULL, NULL, 0) < 0) {
        free(f);
        return -1;
    }
    f->app.cfg = &f->cfg;
    f->app.allow = &f->allow;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

/*
 * What the POST handlers do: scan the body, take "mode" (the caller's
 * member, named to the reader with params_expect()), then the demo's.
 */
static void parse_json(const struct fixture *f, const char *demo,
                       const char *body, int mode, struct outcome *o)
{
    const struct demo *d = demo_find(demo);
    struct jsonr_doc *doc = malloc(sizeof(*doc));
    struct params p;
    char err[ERR_MAX] = "";
    assert_non_null(d);
    assert_non_null(doc);
    memset(o, 0, sizeof(*o));
    assert_int_equal(jsonr_scan(doc, body, strlen(body), err, sizeof(err)), 0);
    assert_int_equal(params_parse(&p, ""), 0);
    params_expect(&p, "mode");
    for (size_t k = 0; k < doc->n; k++) {
        if (strcmp(doc->members[k].key, "mode") == 0)
            doc->members[k].taken = true;
    }
    o->rc =
        demo_parse_json(d, doc, &p, mode, &f->app, &o->args, err, sizeof(err));
    snprintf(o->message, sizeof(o->message), "%s",
             o->rc == -EINVAL ? params_error(&p) : err);
    params_cleanup(&p);
    free(doc);
}

static void parse_query(const struct fixture *f, const char *demo,
                        const char *query, int mode, struct outcome *o)
{
    const struct demo *d = demo_find(demo);
    struct params p;
    char err[ERR_MAX] = "";
    assert_non_null(d);
    memset(o, 0, sizeof(*o));
    assert_int_equal(params_parse(&p, query), 0);
    params_expect(&p, "mode");
    o->rc = demo_parse(d, &p, mode, &f->app, &o->args, err, sizeof(err));
    snprintf(o->message, sizeof(o->message), "%s",
             o->rc == -EINVAL ? params_error(&p) : err);
    params_cleanup(&p);
}

static void expect_400(const struct fixture *f, const char *demo,
                       const char *body, int mode, const char *message)
{
    struct outcome o;
    parse_json(f, demo, body, mode, &o);
    if (o.rc != -EINVAL && o.rc != 400)
        fail_msg("%s %s: rc %d (%s), expected a 400", demo, body, o.rc,
                 o.message);
    assert_string_equal(o.message, message);
    demo_args_cleanup(&o.args);
}

/* {"numbers": [value, value, ...]} with n items. */
static char *int_array(size_t n, int64_t value)
{
    char item[32];
    int item_len = snprintf(item, sizeof(item), "%lld,", (long long)value);
    size_t cap = 16 + n * (size_t)item_len + 4;
    char *s = malloc(cap);
    assert_non_null(s);
    size_t used = (size_t)snprintf(s, cap, "{\"numbers\":[");
    for (size_t i = 0; i < n; i++) {
        memcpy(s + used, item, (size_t)item_len);
        used += (size_t)item_len;
    }
    if (n)
        used--; /* the last comma */
    memcpy(s + used, "]}", 3);
    return s;
}

static void test_values_and_defaults(void **state)
{
    const struct fixture *f = *state;
    struct outcome o;

    parse_json(f, "square", "{\"numbers\": [3, -4, 0], \"tasks\": 2}",
               ENGINE_THREADS, &o);
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.args.n[0], 3);
    assert_true(o.args.list[0][0] == 3 && o.args.list[0][1] == -4 &&
                o.args.list[0][2] == 0);
    assert_true(o.args.v[1] == 2);
    assert_true(o.args.given[0] && o.args.given[1]);
    demo_args_cleanup(&o.args);

    /* An empty object: every default, as an empty query gives. */
    struct outcome q;
    parse_json(f, "square", "{}", ENGINE_THREADS, &o);
    parse_query(f, "square", "", ENGINE_THREADS, &q);
    assert_int_equal(o.rc, 0);
    assert_int_equal(q.rc, 0);
    assert_int_equal(o.args.n[0], 4); /* def_list "1,2,3,4" */
    assert_int_equal(q.args.n[0], 4);
    assert_memory_equal(o.args.list[0], q.args.list[0], 4 * sizeof(int64_t));
    assert_true(o.args.v[1] == 4); /* tasks: --workers */
    assert_true(q.args.v[1] == 4);
    assert_false(o.args.given[0] || o.args.given[1]);
    demo_args_cleanup(&o.args);
    demo_args_cleanup(&q.args);

    /* tasks' default is at most the count of numbers, as in the query. */
    parse_json(f, "square", "{\"numbers\": [5, 6]}", ENGINE_THREADS, &o);
    parse_query(f, "square", "numbers=5,6", ENGINE_THREADS, &q);
    assert_int_equal(o.rc, 0);
    assert_true(o.args.v[1] == 2);
    assert_true(q.args.v[1] == 2);
    demo_args_cleanup(&o.args);
    demo_args_cleanup(&q.args);

    /* prime: constant and --workers defaults; "mode" is the caller's. */
    parse_json(f, "prime", "{\"mode\": \"threads\", \"limit\": 1000}",
               ENGINE_THREADS, &o);
    assert_int_equal(o.rc, 0);
    assert_true(o.args.v[0] == 1000);
    assert_true(o.args.v[1] == 4);
    demo_args_cleanup(&o.args);
    parse_json(f, "sleep", "{}", ENGINE_ASYNC, &o);
    assert_int_equal(o.rc, 0);
    assert_true(o.args.v[0] == 3 && o.args.v[1] == 2000);
    demo_args_cleanup(&o.args);

    /* fetch: URLs decoded (escapes too), count and ms unused. */
    parse_json(f, "fetch",
               "{\"url\": [\"http://127.0.0.1:8080/delay?ms=1\", "
               "\"http://localhost:8080/h\\u00e9\"]}",
               ENGINE_ASYNC, &o);
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.args.n[0], 2);
    assert_string_equal(o.args.strings[0][0],
                        "http://127.0.0.1:8080/delay?ms=1");
    assert_string_equal(o.args.strings[0][1],
                        "http://localhost:8080/h\xc3\xa9");
    assert_false(o.args.unused[0]);
    assert_true(o.args.unused[1] && o.args.unused[2]);
    demo_args_cleanup(&o.args);
    parse_json(f, "fetch", "{}", ENGINE_ASYNC, &o);
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.args.n[0], 0);
    assert_true(o.args.v[1] == 10 && o.args.v[2] == 100);
    assert_true(o.args.unused[0]);
    demo_args_cleanup(&o.args);
}

static void test_unknown_and_repeated_keys(void **state)
{
    const struct fixture *f = *state;
    expect_400(f, "square", "{\"numbers\": [1], \"task\": 2}", ENGINE_THREADS,
               "unknown parameter 'task' (accepted: mode, numbers, tasks)");
    expect_400(f, "prime", "{\"limit\": 10, \"numbers\": [1]}", ENGINE_THREADS,
               "unknown parameter 'numbers' (accepted: mode, limit, tasks)");
    /* A key is quoted as the query's are: a control byte as \xHH. */
    expect_400(f, "sleep", "{\"a\\nb\": 1}", ENGINE_ASYNC,
               "unknown parameter 'a\\x0ab' (accepted: mode, tasks, ms)");
    /* Repeated keys are refused, before any value is looked at. */
    expect_400(f, "square", "{\"tasks\": 1, \"numbers\": [1], \"tasks\": 2}",
               ENGINE_THREADS, "parameter 'tasks' given more than once");
    expect_400(f, "square", "{\"numbers\": \"x\", \"numbers\": [1]}",
               ENGINE_THREADS, "parameter 'numbers' given more than once");
    expect_400(f, "square", "{\"zz\": 1, \"zz\": 2}", ENGINE_THREADS,
               "parameter 'zz' given more than once");
}

static void test_wrong_types(void **state)
{
    const struct fixture *f = *state;
    expect_400(f, "square", "{\"tasks\": \"2\"}", ENGINE_THREADS,
               "parameter 'tasks': expected an integer, got a string");
    expect_400(f, "square", "{\"tasks\": 2.0}", ENGINE_THREADS,
               "parameter 'tasks': expected an integer, got a number");
    expect_400(f, "prime", "{\"limit\": 1e3}", ENGINE_THREADS,
               "parameter 'limit': expected an integer, got a number");
    expect_400(f, "prime", "{\"limit\": null}", ENGINE_THREADS,
               "parameter 'limit': expected an integer, got a null");
    expect_400(f, "prime", "{\"limit\": true}", ENGINE_THREADS,
               "parameter 'limit': expected an integer, got a boolean");
    expect_400(f, "prime", "{\"limit\": {\"value\": 3}}", ENGINE_THREADS,
               "parameter 'limit': expected an integer, got an object");
    expect_400(f, "prime", "{\"limit\": [3]}", ENGINE_THREADS,
               "parameter 'limit': expected an integer, got an array of "
               "integers");
    expect_400(f, "square", "{\"numbers\": 5}", ENGINE_THREADS,
               "parameter 'numbers': expected an array of integers, got an "
               "integer");
    expect_400(f, "square", "{\"numbers\": \"1,2,3\"}", ENGINE_THREADS,
               "parameter 'numbers': expected an array of integers, got a "
               "string");
    expect_400(f, "square", "{\"numbers\": {\"0\": 1}}", ENGINE_THREADS,
               "parameter 'numbers': expected an array of integers, got an "
               "object");
    expect_400(f, "square", "{\"numbers\": [\"1\", \"2\"]}", ENGINE_THREADS,
               "parameter 'numbers': expected an array of integers, got an "
               "array of strings");
    expect_400(f, "square", "{\"numbers\": [[1], [2]]}", ENGINE_THREADS,
               "parameter 'numbers': expected an array of integers, got an "
               "array of arrays");
    expect_400(f, "square", "{\"numbers\": [1, 2, {\"n\": 3}]}", ENGINE_THREADS,
               "parameter 'numbers': item 3 is an object, expected an "
               "integer");
    expect_400(f, "square", "{\"numbers\": [1, 2.5]}", ENGINE_THREADS,
               "parameter 'numbers': item 2 is a number, expected an "
               "integer");
    expect_400(f, "fetch", "{\"url\": \"http://127.0.0.1:8080/\"}",
               ENGINE_ASYNC,
               "parameter 'url': expected an array of strings, got a string");
    expect_400(f, "fetch", "{\"url\": [\"http://127.0.0.1:8080/\", 7]}",
               ENGINE_ASYNC,
               "parameter 'url': item 2 is an integer, expected a string");
    expect_400(f, "fetch", "{\"url\": [1, 2]}", ENGINE_ASYNC,
               "parameter 'url': expected an array of strings, got an array "
               "of integers");
}

static void test_ranges(void **state)
{
    const struct fixture *f = *state;
    struct outcome o;

    expect_400(f, "prime", "{\"limit\": 1}", ENGINE_THREADS,
               "parameter 'limit': '1' is not an integer in [2, 50000000]");
    expect_400(f, "prime", "{\"limit\": 50000001}", ENGINE_THREADS,
               "parameter 'limit': '50000001' is not an integer in [2, "
               "50000000]");
    expect_400(f, "prime", "{\"limit\": 99999999999999999999}", ENGINE_THREADS,
               "parameter 'limit': '99999999999999999999' is not an "
               "integer in [2, 50000000]");
    parse_json(f, "prime", "{\"limit\": 50000000, \"tasks\": 256}",
               ENGINE_THREADS, &o);
    assert_int_equal(o.rc, 0);
    demo_args_cleanup(&o.args);
    expect_400(f, "prime", "{\"tasks\": 0}", ENGINE_THREADS,
               "parameter 'tasks': '0' is not an integer in [1, 256]");
    /* A maximum by mode, and a comparison's (every mode's smallest). */
    parse_json(f, "sleep", "{\"tasks\": 10000, \"ms\": 0}", ENGINE_ASYNC, &o);
    assert_int_equal(o.rc, 0);
    demo_args_cleanup(&o.args);
    expect_400(f, "sleep", "{\"tasks\": 1001}", ENGINE_THREADS,
               "parameter 'tasks': '1001' is not an integer in [1, 1000]");
    /* A comparison takes what every mode takes: spawn's 100. */
    expect_400(f, "sleep", "{\"tasks\": 1001}", DEMO_ALL_MODES,
               "parameter 'tasks': '1001' is not an integer in [1, 100]");
    expect_400(f, "sleep", "{\"tasks\": 101}", ENGINE_SPAWN,
               "parameter 'tasks': '101' is not an integer in [1, 100]");
    /* square's tasks: at most the count of numbers. */
    expect_400(f, "square", "{\"numbers\": [1, 2, 3], \"tasks\": 4}",
               ENGINE_THREADS,
               "parameter 'tasks': '4' is not an integer in [1, 3]");
    /* Items: each within +-3,037,000,499 (its square fits). */
    parse_json(f, "square", "{\"numbers\": [-3037000499, 3037000499]}",
               ENGINE_THREADS, &o);
    assert_int_equal(o.rc, 0);
    assert_true(o.args.list[0][0] == -3037000499LL);
    demo_args_cleanup(&o.args);
    expect_400(f, "square", "{\"numbers\": [1, 3037000500]}", ENGINE_THREADS,
               "parameter 'numbers': item 2 ('3037000500') is not an "
               "integer in [-3037000499, 3037000499] (a comma list of 1 to "
               "1000000)");
    expect_400(f, "square", "{\"numbers\": []}", ENGINE_THREADS,
               "parameter 'numbers': an array of 1 to 1000000 integers, got "
               "an empty array");
    expect_400(f, "square", "{\"numbers\": []}", DEMO_ALL_MODES,
               "parameter 'numbers': an array of 1 to 10000 integers, got "
               "an empty array");
    expect_400(f, "fetch", "{\"url\": []}", ENGINE_ASYNC,
               "parameter 'url': an array of 1 to 100 strings, got an empty "
               "array");
    expect_400(f, "fetch", "{\"url\": [\"\"]}", ENGINE_ASYNC,
               "parameter 'url': value 1 is empty");
    /* The demo's own check runs after the bounds. */
    expect_400(f, "fetch",
               "{\"url\": [\"http://127.0.0.1:8080/\"], \"count\": 2}",
               ENGINE_ASYNC,
               "give either 'url' (repeatable, up to 100) or 'count' and "
               "'ms', not both");
    parse_json(f, "fetch", "{\"url\": [\"http://192.0.2.1/\"]}", ENGINE_ASYNC,
               &o);
    assert_int_equal(o.rc, 403);
    assert_non_null(strstr(o.message, "parameter 'url': "));
    demo_args_cleanup(&o.args);
}

/* The body's list limit in one mode, the query's in a comparison. */
/* DEMO_REAL (work's io_ratio and variance): query and body alike. */
static void test_real_numbers(void **state)
{
    const struct fixture *f = *state;
    struct outcome o, q;
    const struct demo *d = demo_find("work");
    assert_non_null(d);
    int io = demo_param_index(d, "io_ratio");
    int var = demo_param_index(d, "variance");
    assert_true(io >= 0 && var >= 0);
    assert_int_equal(d->params[io].type, DEMO_REAL);

    /* Defaults: io_ratio 0.5, variance 0. */
    parse_query(f, "work", "", ENGINE_ASYNC, &q);
    parse_json(f, "work", "{}", ENGINE_ASYNC, &o);
    assert_int_equal(q.rc, 0);
    assert_int_equal(o.rc, 0);
    assert_true(q.args.r[io] == 0.5 && o.args.r[io] == 0.5);
    assert_true(q.args.r[var] == 0.0 && o.args.r[var] == 0.0);
    assert_false(q.args.given[io] || o.args.given[io]);
    demo_args_cleanup(&q.args);
    demo_args_cleanup(&o.args);

    /* The same values both ways: fractions, exponents, integers, bounds. */
    static const char *const texts[] = {"0.25", "1",     "0", "2.5e-1",
                                        "1E0",  "0.000", "-0"};
    static const double values[] = {0.25, 1, 0, 0.25, 1, 0, 0};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        char query[64], body[64];
        snprintf(query, sizeof(query), "io_ratio=%s", texts[i]);
        snprintf(body, sizeof(body), "{\"io_ratio\": %s}", texts[i]);
        parse_query(f, "work", query, ENGINE_GIL, &q);
        parse_json(f, "work", body, ENGINE_GIL, &o);
        if (q.rc != 0 || o.rc != 0)
            fail_msg("%s: %d %d (%s / %s)", texts[i], q.rc, o.rc, q.message,
                     o.message);
        assert_true(q.args.r[io] == values[i]);
        assert_true(o.args.r[io] == values[i]);
        assert_true(q.args.given[io] && o.args.given[io]);
        demo_args_cleanup(&q.args);
        demo_args_cleanup(&o.args);
    }

    /* Out of range, or not a plain decimal number: the same message. */
    /* As sent (percent-encoded), and as the message quotes it. */
    static const char *const sent[] = {"1.5", "-0.1", "nan",  "inf",    "0x1",
                                       ".5",  "1.",   "%2B1", "%200.5", "0.5+",
                                       "1e",  "",     "1e999"};
    static const char *const bad[] = {"1.5", "-0.1", "nan",  "inf",  "0x1",
                                      ".5",  "1.",   "+1",   " 0.5", "0.5 ",
                                      "1e",  "",     "1e999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char query[64], expected[160];
        snprintf(query, sizeof(query), "io_ratio=%s", sent[i]);
        snprintf(expected, sizeof(expected),
                 "parameter 'io_ratio': '%s' is not a number in [0, 1]",
                 bad[i]);
        parse_query(f, "work", query, ENGINE_ASYNC, &q);
        assert_int_equal(q.rc, -EINVAL);
        assert_string_equal(q.message, expected);
        demo_args_cleanup(&q.args);
    }
    expect_400(f, "work", "{\"io_ratio\": 1.5}", ENGINE_ASYNC,
               "parameter 'io_ratio': '1.5' is not a number in [0, 1]");
    expect_400(f, "work", "{\"variance\": -1e-3}", ENGINE_ASYNC,
               "parameter 'variance': '-1e-3' is not a number in [0, 1]");
    expect_400(f, "work", "{\"io_ratio\": \"0.5\"}", ENGINE_ASYNC,
               "parameter 'io_ratio': expected a number, got a string");
    expect_400(f, "work", "{\"io_ratio\": [0.5]}", ENGINE_ASYNC,
               "parameter 'io_ratio': expected a number, got an array of "
               "numbers");
    /* An integer parameter of the same demo still refuses a fraction. */
    expect_400(f, "work", "{\"ms\": 2.5}", ENGINE_ASYNC,
               "parameter 'ms': expected an integer, got a number");

    /* Echoed as a JSON real. */
    struct jsonw w;
    parse_query(f, "work", "io_ratio=0.75&variance=1", ENGINE_ASYNC, &q);
    assert_int_equal(q.rc, 0);
    jsonw_init(&w, 4096);
    demo_write_params(&w, d, &q.args);
    size_t len;
    char *text = jsonw_take(&w, &len);
    assert_non_null(text);
    assert_string_equal(text, "{\"tasks\":4,\"ms\":400,\"io_ratio\":0.75,"
                              "\"variance\":1.0,\"seed\":1}");
    free(text);
    demo_args_cleanup(&q.args);
}

static void test_list_lengths(void **state)
{
    const struct fixture *f = *state;
    struct outcome o;
    char *body = int_array(10001, 7);
    parse_json(f, "square", body, ENGINE_THREADS, &o);
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.args.n[0], 10001);
    assert_true(o.args.list[0][10000] == 7);
    demo_args_cleanup(&o.args);
    expect_400(f, "square", body, DEMO_ALL_MODES,
               "parameter 'numbers': at most 10000 items, got 10001");
    free(body);

    body = int_array(10000, 7);
    parse_json(f, "square", body, DEMO_ALL_MODES, &o);
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.args.n[0], 10000);
    demo_args_cleanup(&o.args);
    free(body);

    body = int_array(1000000, -1);
    parse_json(f, "square", body, ENGINE_PROCESSES, &o);
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.args.n[0], 1000000);
    assert_true(o.args.list[0][999999] == -1);
    assert_true(o.args.v[1] == 4);
    demo_args_cleanup(&o.args);
    free(body);

    body = int_array(1000001, 0);
    expect_400(f, "square", body, ENGINE_PROCESSES,
               "parameter 'numbers': at most 1000000 items, got 1000001");
    free(body);

    /* fetch: 100 URLs in a body too; 101 refused. */
    size_t cap = 101 * 40 + 32;
    char *urls = malloc(cap);
    assert_non_null(urls);
    size_t used = (size_t)snprintf(urls, cap, "{\"url\":[");
    for (int i = 0; i < 101; i++)
        used +=
            (size_t)snprintf(urls + used, cap - used,
                             "%s\"http://127.0.0.1:8080/%d\"", i ? "," : "", i);
    snprintf(urls + used, cap - used, "]}");
    expect_400(f, "fetch", urls, ENGINE_ASYNC,
               "parameter 'url': at most 100 values");
    char *last = strrchr(urls, ',');
    memcpy(last, "]}", 3);
    parse_json(f, "fetch", urls, ENGINE_ASYNC, &o);
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.args.n[0], 100);
    assert_string_equal(o.args.strings[0][99], "http://127.0.0.1:8080/99");
    demo_args_cleanup(&o.args);
    free(urls);
}

/* An enumeration (counter's sync, deadlock's order) from either form. */
static void test_enum(void **state)
{
    const struct fixture *f = *state;
    const struct demo *counter = demo_find("counter");
    struct outcome o, q;
    assert_non_null(counter);
    int sync = demo_param_index(counter, "sync");
    assert_true(sync >= 0);
    assert_int_equal(demo_enum_count(&counter->params[sync]), 3);
    assert_int_equal(demo_enum_count(&counter->params[0]), 0); /* tasks */

    /* The index of the name, the same from a body and a query. */
    parse_json(f, "counter", "{\"sync\": \"atomic\"}", ENGINE_THREADS, &o);
    parse_query(f, "counter", "sync=atomic", ENGINE_THREADS, &q);
    assert_int_equal(o.rc, 0);
    assert_int_equal(q.rc, 0);
    assert_true(o.args.v[sync] == 2 && q.args.v[sync] == 2);
    assert_true(o.args.given[sync] && q.args.given[sync]);

    /* Echoed by name. */
    struct jsonw w;
    jsonw_init(&w, 4096);
    demo_write_params(&w, counter, &q.args);
    size_t len;
    char *text = jsonw_take(&w, &len);
    assert_non_null(text);
    assert_string_equal(text, "{\"tasks\":2,\"increments\":1000000,"
                              "\"sync\":\"atomic\"}");
    free(text);
    demo_args_cleanup(&o.args);
    demo_args_cleanup(&q.args);

    /* Absent: the declared default (none for sync, opposite for order). */
    parse_json(f, "counter", "{}", ENGINE_THREADS, &o);
    parse_query(f, "counter", "", ENGINE_THREADS, &q);
    assert_true(o.args.v[sync] == 0 && q.args.v[sync] == 0);
    assert_false(o.args.given[sync] || q.args.given[sync]);
    demo_args_cleanup(&o.args);
    demo_args_cleanup(&q.args);
    parse_query(f, "deadlock", "hold_ms=5", ENGINE_THREADS, &q);
    assert_int_equal(q.rc, 0);
    assert_true(q.args.v[0] == 1); /* "opposite" */
    demo_args_cleanup(&q.args);

    /* A name not in the list: the 400 names the accepted ones. */
    parse_query(f, "counter", "sync=mutex", ENGINE_THREADS, &q);
    assert_int_equal(q.rc, -EINVAL);
    assert_string_equal(q.message,
                        "parameter 'sync': 'mutex' is not one of: none, "
                        "lock, atomic");
    demo_args_cleanup(&q.args);
    expect_400(f, "counter", "{\"sync\": \"mutex\"}", ENGINE_THREADS,
               "parameter 'sync': 'mutex' is not one of: none, lock, "
               "atomic");
    /* Case matters; an empty value is no name either. */
    expect_400(f, "deadlock", "{\"order\": \"Same\"}", ENGINE_THREADS,
               "parameter 'order': 'Same' is not one of: same, opposite");
    parse_query(f, "deadlock", "order=", ENGINE_THREADS, &q);
    assert_int_equal(q.rc, -EINVAL);
    demo_args_cleanup(&q.args);

    /* Not a string in a body; twice in a query. */
    expect_400(f, "counter", "{\"sync\": 1}", ENGINE_THREADS,
               "parameter 'sync': expected a string, got an integer");
    expect_400(f, "counter", "{\"sync\": [\"lock\"]}", ENGINE_THREADS,
               "parameter 'sync': expected a string, got an array");
    parse_query(f, "counter", "sync=lock&sync=none", ENGINE_THREADS, &q);
    assert_int_equal(q.rc, -EINVAL);
    assert_non_null(strstr(q.message, "sync"));
    demo_args_cleanup(&q.args);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_values_and_defaults, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unknown_and_repeated_keys, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_wrong_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ranges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_real_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enum, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
