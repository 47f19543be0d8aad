/*
 * Unit tests of handlers/openapi.c: openapi_build() on a small base and a
 * registry of two fake demos (every parameter type, a default from
 * --workers, a maximum per mode, form values, stale parameters, base text
 * and extensions that must survive), its refusals, and the document built
 * from the real api/openapi.json (the bytes built into the binary) with
 * the real registry: it must come out unchanged, so the committed
 * document and the registry agree on every parameter.
 * Finally openapi_handle() before and after openapi_load().
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
#include <jansson.h>

#include "../../handlers/demo.h"
#include "../../handlers/handlers.h"
#include "../../handlers/openapi.h"

extern const char openapi_json[];
extern const char openapi_json_end[];

/* ------------------------------------------------------------------ */
/* A fake registry: alpha and beta                                     */

static const enum engine_mode alpha_modes[] = {ENGINE_SEQUENTIAL,
                                               ENGINE_THREADS, ENGINE_ASYNC};
static const struct demo_param alpha_params[] = {
    {.name = "n",
     .type = DEMO_INT,
     .min = 1,
     .max = 500,
     .mode_max = {[ENGINE_SEQUENTIAL] = 50},
     .def = 10,
     .form_value = 20,
     .scales_time = true,
     .doc = "How many."},
    {.name = "tasks",
     .type = DEMO_INT,
     .min = 1,
     .max = 64,
     .def_from = DEMO_DEF_WORKERS,
     .doc = "Tasks."},
    {.name = "list",
     .type = DEMO_INT_LIST,
     .min = -5,
     .max = 5,
     .def_list = "1,-2,3",
     .max_items = 8,
     .form_list = "4,5",
     .doc = "A list."},
};
static const struct demo alpha = {
    .name = "alpha",
    .label = "CPU",
    .summary = "Alpha's summary",
    .lesson = "Alpha's lesson.",
    .params = alpha_params,
    .n_params = 3,
    .modes = alpha_modes,
    .n_modes = 3,
    .default_mode = ENGINE_ASYNC,
};

static const enum engine_mode beta_modes[] = {ENGINE_SEQUENTIAL,
                                              ENGINE_PROCESSES};
static const struct demo_param beta_params[] = {
    {.name = "url",
     .type = DEMO_URLS,
     .max_items = 3,
     .form_list = "http://127.0.0.1:8080/health",
     .doc = "URLs."},
    {.name = "tasks",
     .type = DEMO_INT,
     .min = 2,
     .max = 128,
     .mode_max = {[ENGINE_PROCESSES] = 100},
     .def = 4,
     .doc = "Beta tasks."},
    {.name = "n",
     .type = DEMO_INT,
     .min = 0,
     .max = 1000,
     .def = 5,
     .doc = "Beta n."},
};
static const struct demo beta = {
    .name = "beta",
    .label = "I/O",
    .summary = "Beta's summary",
    .lesson = "Beta's lesson.",
    .params = beta_params,
    .n_params = 3,
    .modes = beta_modes,
    .n_modes = 2,
    .default_mode = ENGINE_SEQUENTIAL,
};

static const struct demo *const fake_registry[] = {&alpha, &beta};

/*
 * The base: /run/alpha with hand-written text and a parameter the
 * registry dropped (alpha.old), a demo that left the registry (gone),
 * /run/compare with a stale compare.old, /delay (not the registry's).
 */
static const char base_doc[] =
    "{\"openapi\": \"3.0.3\", \"info\": {\"title\": \"t\", \"version\": "
    "\"1\"},"
    " \"paths\": {"
    "  \"/run/alpha\": {"
    "   \"get\": {\"summary\": \"old\", \"description\": \"Alpha's own text.\","
    "    \"operationId\": \"runAlpha\", \"parameters\": ["
    "     {\"$ref\": \"#/components/parameters/alpha.n\"},"
    "     {\"$ref\": \"#/components/parameters/alpha.old\"}],"
    "    \"responses\": {\"200\": {\"description\": \"Alpha run.\", "
    "     \"content\": {\"application/json\": {\"schema\": "
    "      {\"$ref\": \"#/components/schemas/AlphaRun\"}}}}}},"
    "   \"head\": {\"operationId\": \"headRunAlpha\", \"summary\": \"As GET\","
    "    \"responses\": {\"200\": {\"description\": \"Headers.\"}}}},"
    "  \"/run/gone\": {\"get\": {\"operationId\": \"runGone\", "
    "   \"parameters\": [{\"$ref\": \"#/components/parameters/gone.x\"}],"
    "   \"responses\": {\"200\": {\"description\": \"x\"}}}},"
    "  \"/run/compare\": {"
    "   \"get\": {\"operationId\": \"runCompare\", \"x-conlab-runs\": "
    "    \"/run/{demo}\", \"x-conlab-exclusive\": [[\"url\"], [\"n\"]],"
    "    \"parameters\": [{\"$ref\": \"#/components/parameters/compare.old\"}],"
    "    \"responses\": {\"200\": {\"description\": \"c\"}}},"
    "   \"head\": {\"operationId\": \"headRunCompare\", "
    "    \"responses\": {\"200\": {\"description\": \"c\"}}}},"
    "  \"/delay\": {\"get\": {\"operationId\": \"getDelay\", \"parameters\": ["
    "   {\"$ref\": \"#/components/parameters/delay.ms\"},"
    "   {\"$ref\": \"#/components/parameters/X-Request-Id\"}],"
    "   \"responses\": {\"200\": {\"description\": \"d\"}}}}},"
    " \"components\": {"
    "  \"parameters\": {"
    "   \"alpha.n\": {\"name\": \"n\", \"in\": \"query\", \"description\": "
    "    \"old\", \"example\": 7, \"x-conlab-max-count-of\": \"list\","
    "    \"x-conlab-default-from\": \"--workers\","
    "    \"schema\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 1}},"
    "   \"alpha.old\": {\"name\": \"old\", \"in\": \"query\", \"schema\": "
    "    {\"type\": \"integer\"}},"
    "   \"alpha.mode\": {\"name\": \"mode\", \"in\": \"query\", "
    "    \"description\": \"Hand-written modes.\", \"schema\": "
    "    {\"type\": \"string\", \"enum\": [\"gil\"]}},"
    "   \"gone.x\": {\"name\": \"x\", \"in\": \"query\", \"schema\": "
    "    {\"type\": \"integer\"}},"
    "   \"compare.demo\": {\"name\": \"demo\", \"in\": \"query\", "
    "    \"required\": true, \"description\": \"Pick.\", \"schema\": "
    "    {\"type\": \"string\", \"enum\": [\"gone\"]}},"
    "   \"compare.n\": {\"name\": \"n\", \"in\": \"query\", \"description\": "
    "    \"Hand-written compare n.\", \"example\": 3, "
    "    \"x-conlab-default-from\": \"--workers\", \"schema\": "
    "    {\"type\": \"integer\", \"default\": 9}},"
    "   \"compare.old\": {\"name\": \"old\", \"in\": \"query\", \"schema\": "
    "    {\"type\": \"integer\"}},"
    "   \"delay.ms\": {\"name\": \"ms\", \"in\": \"query\", \"schema\": "
    "    {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 10}},"
    "   \"X-Request-Id\": {\"name\": \"X-Request-Id\", \"in\": \"header\", "
    "    \"schema\": {\"type\": \"string\"}}},"
    "  \"schemas\": {"
    "   \"Run\": {\"type\": \"object\", \"properties\": {\"demo\": "
    "    {\"type\": \"string\", \"enum\": [\"gone\"]}}},"
    "   \"AlphaRun\": {\"type\": \"object\"}}}}";

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static json_t *doc;

static int setup_fake(void **state)
{
    (void)state;
    char err[256] = "";
    doc = openapi_build(base_doc, strlen(base_doc), fake_registry, 2, err,
                        sizeof(err));
    if (!doc)
        fprintf(stderr, "openapi_build: %s\n", err);
    return doc ? 0 : -1;
}

static int teardown_fake(void **state)
{
    (void)state;
    json_decref(doc);
    doc = NULL;
    return 0;
}

/* The node at a path of keys and indexes ("paths", "/run/alpha", ...). */
static json_t *at(json_t *node, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *part = buf; part && node;) {
        char *next = strchr(part, '|');
        if (next)
            *next++ = '\0';
        if (json_is_array(node))
            node = json_array_get(node, (size_t)strtoul(part, NULL, 10));
        else
            node = json_object_get(node, part);
        part = next;
    }
    return node;
}

/* The node at path (keys separated by '|') equals the JSON text. */
static void expect_json(const char *path, const char *expected)
{
    json_error_t jerr;
    json_t *want = json_loads(expected, JSON_DECODE_ANY, &jerr);
    if (!want)
        fail_msg("bad expected JSON for %s: %s", path, jerr.text);
    json_t *got = at(doc, path);
    if (!json_equal(got, want)) {
        char *g = got ? json_dumps(got, JSON_COMPACT) : NULL;
        char *w = json_dumps(want, JSON_COMPACT);
        print_error("%s:\n  got  %s\n  want %s\n", path, g ? g : "(none)", w);
        free(g);
        free(w);
        json_decref(want);
        fail();
    }
    json_decref(want);
}

static void expect_absent(const char *path)
{
    if (at(doc, path))
        fail_msg("%s is present", path);
}

/* ------------------------------------------------------------------ */
/* The fake registry on the small base                                 */

static void test_int_param(void **state)
{
    (void)state;
    /* Base text and extensions kept; stale default-from removed. */
    expect_json("components|parameters|alpha.n",
                "{\"name\": \"n\", \"in\": \"query\", \"required\": false,"
                " \"description\": \"How many.\", \"example\": 7,"
                " \"x-conlab-max-count-of\": \"list\","
                " \"schema\": {\"type\": \"integer\", \"format\": \"int64\","
                "  \"minimum\": 1, \"maximum\": 500, \"default\": 10},"
                " \"x-conlab-scales-time\": true,"
                " \"x-conlab-max-by-mode\": {\"sequential\": 50,"
                "  \"threads\": 500, \"async\": 500},"
                " \"x-conlab-form-value\": 20}");
    expect_json("components|parameters|beta.n",
                "{\"name\": \"n\", \"in\": \"query\", \"required\": false,"
                " \"description\": \"Beta n.\", \"schema\": {\"type\": "
                "\"integer\", \"format\": \"int64\", \"minimum\": 0,"
                " \"maximum\": 1000, \"default\": 5}}");
    expect_json("components|parameters|beta.tasks|x-conlab-max-by-mode",
                "{\"sequential\": 128, \"processes\": 100}");
}

static void test_default_from_workers(void **state)
{
    (void)state;
    expect_json("components|parameters|alpha.tasks",
                "{\"name\": \"tasks\", \"in\": \"query\", \"required\": "
                "false, \"description\": \"Tasks.\", \"schema\": {\"type\": "
                "\"integer\", \"format\": \"int64\", \"minimum\": 1, "
                "\"maximum\": 64}, \"x-conlab-default-from\": \"--workers\"}");
}

static void test_list_params(void **state)
{
    (void)state;
    expect_json("components|parameters|alpha.list",
                "{\"name\": \"list\", \"in\": \"query\", \"required\": false,"
                " \"description\": \"A list.\", \"style\": \"form\","
                " \"explode\": false, \"schema\": {\"type\": \"array\","
                "  \"minItems\": 1, \"maxItems\": 8, \"items\": {\"type\": "
                "\"integer\", \"format\": \"int64\", \"minimum\": -5, "
                "\"maximum\": 5}, \"default\": [1, -2, 3]},"
                " \"x-conlab-form-value\": [4, 5]}");
    expect_json(
        "components|parameters|beta.url",
        "{\"name\": \"url\", \"in\": \"query\", \"required\": false,"
        " \"description\": \"URLs.\", \"style\": \"form\","
        " \"explode\": true, \"schema\": {\"type\": \"array\","
        "  \"minItems\": 1, \"maxItems\": 3, \"items\": {\"type\": "
        "\"string\", \"format\": \"uri\", \"minLength\": 1}},"
        " \"x-conlab-form-value\": [\"http://127.0.0.1:8080/health\"]}");
}

static void test_modes(void **state)
{
    (void)state;
    expect_json("components|parameters|alpha.mode",
                "{\"name\": \"mode\", \"in\": \"query\", \"required\": false,"
                " \"description\": \"Hand-written modes.\", \"schema\": "
                "{\"type\": \"string\", \"enum\": [\"sequential\", "
                "\"threads\", \"async\"], \"default\": \"async\"}}");
    expect_json("components|parameters|beta.mode",
                "{\"name\": \"mode\", \"in\": \"query\", \"required\": false,"
                " \"description\": \"How the tasks run: `sequential`, "
                "`processes` (default `sequential`).\", \"schema\": "
                "{\"type\": \"string\", \"enum\": [\"sequential\", "
                "\"processes\"], \"default\": \"sequential\"}}");
}

static void test_demo_paths(void **state)
{
    (void)state;
    const char *alpha_refs =
        "[{\"$ref\": \"#/components/parameters/alpha.n\"},"
        " {\"$ref\": \"#/components/parameters/alpha.tasks\"},"
        " {\"$ref\": \"#/components/parameters/alpha.list\"},"
        " {\"$ref\": \"#/components/parameters/alpha.mode\"},"
        " {\"$ref\": \"#/components/parameters/live.format\"},"
        " {\"$ref\": \"#/components/parameters/live.stream\"},"
        " {\"$ref\": \"#/components/parameters/X-Request-Id\"}]";
    expect_json("paths|/run/alpha|get|parameters", alpha_refs);
    expect_json("paths|/run/alpha|head|parameters", alpha_refs);
    expect_json("paths|/run/alpha|get|summary", "\"Alpha's summary\"");
    expect_json("paths|/run/alpha|get|description", "\"Alpha's own text.\"");
    expect_json("paths|/run/alpha|get|x-conlab-lesson", "\"Alpha's lesson.\"");
    expect_json("paths|/run/alpha|get|x-conlab-label", "\"CPU\"");
    /* The base's own response schema stays. */
    expect_json("paths|/run/alpha|get|responses|200|content|application/json|"
                "schema",
                "{\"$ref\": \"#/components/schemas/AlphaRun\"}");

    /* Every run path documents its streamed forms (handlers/live.h). */
    json_t *content = at(doc, "paths|/run/beta|get|responses|200|content");
    assert_non_null(json_object_get(content, "text/event-stream"));
    assert_non_null(json_object_get(content, "text/plain"));
    assert_non_null(at(doc, "paths|/run/alpha|get|responses|200|content|"
                            "text/event-stream"));
    json_object_del(content, "text/event-stream");
    json_object_del(content, "text/plain");

    /* /run/beta is made from /run/alpha's item. */
    expect_json("paths|/run/beta",
                "{\"get\": {\"operationId\": \"runBeta\", \"parameters\": ["
                "  {\"$ref\": \"#/components/parameters/beta.url\"},"
                "  {\"$ref\": \"#/components/parameters/beta.tasks\"},"
                "  {\"$ref\": \"#/components/parameters/beta.n\"},"
                "  {\"$ref\": \"#/components/parameters/beta.mode\"},"
                "  {\"$ref\": \"#/components/parameters/live.format\"},"
                "  {\"$ref\": \"#/components/parameters/live.stream\"},"
                "  {\"$ref\": \"#/components/parameters/X-Request-Id\"}],"
                "  \"responses\": {\"200\": {\"description\": \"Alpha run.\","
                "   \"content\": {\"application/json\": {\"schema\": "
                "    {\"$ref\": \"#/components/schemas/Run\"}}}}},"
                "  \"summary\": \"Beta's summary\","
                "  \"x-conlab-lesson\": \"Beta's lesson.\","
                "  \"x-conlab-label\": \"I/O\"},"
                " \"head\": {\"operationId\": \"headRunBeta\", \"summary\": "
                "\"As GET\", \"responses\": {\"200\": {\"description\": "
                "\"Headers.\"}}, \"parameters\": ["
                "  {\"$ref\": \"#/components/parameters/beta.url\"},"
                "  {\"$ref\": \"#/components/parameters/beta.tasks\"},"
                "  {\"$ref\": \"#/components/parameters/beta.n\"},"
                "  {\"$ref\": \"#/components/parameters/beta.mode\"},"
                "  {\"$ref\": \"#/components/parameters/live.format\"},"
                "  {\"$ref\": \"#/components/parameters/live.stream\"},"
                "  {\"$ref\": \"#/components/parameters/X-Request-Id\"}]}}");
}

static void test_compare(void **state)
{
    (void)state;
    expect_json("components|parameters|compare.demo",
                "{\"name\": \"demo\", \"in\": \"query\", \"required\": true,"
                " \"description\": \"Pick.\", \"schema\": {\"type\": "
                "\"string\", \"enum\": [\"alpha\", \"beta\"]}}");
    /*
     * n: alpha takes at most 50 in every mode (sequential's bound), beta
     * 1000; the smallest minimum is beta's 0. Base text kept, no default.
     */
    expect_json("components|parameters|compare.n",
                "{\"name\": \"n\", \"in\": \"query\", \"required\": false,"
                " \"description\": \"Hand-written compare n.\", \"example\": 3,"
                " \"schema\": {\"type\": \"integer\", \"format\": \"int64\","
                "  \"minimum\": 0, \"maximum\": 1000},"
                " \"x-conlab-scales-time\": true,"
                " \"x-conlab-demos\": [\"alpha\", \"beta\"]}");
    /* tasks: alpha 64 everywhere, beta 100 in processes (below 128). */
    expect_json("components|parameters|compare.tasks",
                "{\"name\": \"tasks\", \"in\": \"query\", \"required\": false,"
                " \"description\": \"alpha, beta: as that demo's `tasks`.\","
                " \"schema\": {\"type\": \"integer\", \"format\": \"int64\","
                "  \"minimum\": 1, \"maximum\": 100},"
                " \"x-conlab-demos\": [\"alpha\", \"beta\"]}");
    expect_json("components|parameters|compare.list",
                "{\"name\": \"list\", \"in\": \"query\", \"required\": false,"
                " \"description\": \"alpha: as that demo's `list`.\","
                " \"style\": \"form\", \"explode\": false, \"schema\": "
                "{\"type\": \"array\", \"minItems\": 1, \"maxItems\": 8, "
                "\"items\": {\"type\": \"integer\", \"format\": \"int64\", "
                "\"minimum\": -5, \"maximum\": 5}},"
                " \"x-conlab-demos\": [\"alpha\"]}");
    expect_json("components|parameters|compare.url",
                "{\"name\": \"url\", \"in\": \"query\", \"required\": false,"
                " \"description\": \"beta: as that demo's `url`.\","
                " \"style\": \"form\", \"explode\": true, \"schema\": "
                "{\"type\": \"array\", \"minItems\": 1, \"maxItems\": 3, "
                "\"items\": {\"type\": \"string\", \"format\": \"uri\", "
                "\"minLength\": 1}}, \"x-conlab-demos\": [\"beta\"]}");
    const char *refs = "[{\"$ref\": \"#/components/parameters/compare.demo\"},"
                       " {\"$ref\": \"#/components/parameters/compare.n\"},"
                       " {\"$ref\": \"#/components/parameters/compare.tasks\"},"
                       " {\"$ref\": \"#/components/parameters/compare.list\"},"
                       " {\"$ref\": \"#/components/parameters/compare.url\"},"
                       " {\"$ref\": \"#/components/parameters/live.format\"},"
                       " {\"$ref\": \"#/components/parameters/live.stream\"},"
                       " {\"$ref\": \"#/components/parameters/X-Request-Id\"}]";
    expect_json("paths|/run/compare|get|parameters", refs);
    expect_json("paths|/run/compare|head|parameters", refs);
    expect_json("paths|/run/compare|get|x-conlab-exclusive",
                "[[\"url\"], [\"n\"]]");
    expect_json("components|schemas|Run|properties|demo|enum",
                "[\"alpha\", \"beta\"]");
}

static void test_stale_removed(void **state)
{
    (void)state;
    expect_absent("components|parameters|alpha.old");
    expect_absent("components|parameters|compare.old");
    expect_absent("components|parameters|gone.x");
    expect_absent("paths|/run/gone");
    /* What is not the registry's stays as it was. */
    expect_json("components|parameters|delay.ms",
                "{\"name\": \"ms\", \"in\": \"query\", \"schema\": "
                "{\"type\": \"integer\", \"minimum\": 0, \"maximum\": 10}}");
    expect_json("paths|/delay|get|parameters",
                "[{\"$ref\": \"#/components/parameters/delay.ms\"},"
                " {\"$ref\": \"#/components/parameters/X-Request-Id\"}]");
    size_t n_params = json_object_size(at(doc, "components|parameters"));
    /* 3 + mode, 3 + mode, compare.demo + 4, delay.ms, X-Request-Id,
     * live.format and live.stream */
    assert_int_equal(n_params, 17);
}

/* ------------------------------------------------------------------ */
/* Refusals                                                            */

static void expect_refused(const char *base, const struct demo *const *demos,
                           size_t n, const char *message)
{
    char err[256] = "";
    json_t *got = openapi_build(base, strlen(base), demos, n, err, sizeof(err));
    if (got) {
        json_decref(got);
        fail_msg("built, expected \"%s\"", message);
    }
    if (!strstr(err, message))
        fail_msg("error \"%s\", expected \"%s\"", err, message);
}

static const struct demo_param bad_list_params[] = {
    {.name = "list",
     .type = DEMO_INT_LIST,
     .min = 0,
     .max = 5,
     .def_list = "1,9",
     .max_items = 4},
};
static const struct demo bad_list = {
    .name = "badlist",
    .params = bad_list_params,
    .n_params = 1,
    .modes = beta_modes,
    .n_modes = 2,
    .default_mode = ENGINE_SEQUENTIAL,
};

/* "list" as an integer, while alpha's is a list. */
static const struct demo_param clash_params[] = {
    {.name = "list", .type = DEMO_INT, .min = 0, .max = 5, .def = 1},
};
static const struct demo clash_int = {
    .name = "clashint",
    .params = clash_params,
    .n_params = 1,
    .modes = beta_modes,
    .n_modes = 2,
    .default_mode = ENGINE_SEQUENTIAL,
};

static const struct demo bad_mode = {
    .name = "badmode",
    .modes = beta_modes,
    .n_modes = 2,
    .default_mode = ENGINE_ASYNC,
};

static void test_refusals(void **state)
{
    (void)state;
    const struct demo *const one_bad_list[] = {&bad_list};
    expect_refused(base_doc, one_bad_list, 1,
                   "badlist.list: the default \"1,9\" is not a list of "
                   "integers in [0, 5]");
    const struct demo *const clashing[] = {&alpha, &clash_int};
    expect_refused(base_doc, clashing, 2,
                   "alpha.list and clashint.list differ in type");
    const struct demo *const one_bad_mode[] = {&bad_mode};
    expect_refused(base_doc, one_bad_mode, 1,
                   "badmode: the default mode is not one of its modes");
    const struct demo *const twice[] = {&alpha, &alpha};
    expect_refused(base_doc, twice, 2, "two demos named alpha");
    expect_refused("{\"paths\": ", fake_registry, 2,
                   "the base is not a JSON object");
    expect_refused("{\"paths\": {}, \"components\": {\"parameters\": {}}}",
                   fake_registry, 2, "the base has no X-Request-Id");
    /* A demo to create without a Run schema to answer with. */
    expect_refused("{\"paths\": {}, \"components\": {\"parameters\": "
                   "{\"X-Request-Id\": {}}}}",
                   fake_registry, 2,
                   "the base has no Run schema for /run/alpha");
}

/* ------------------------------------------------------------------ */
/* An enumeration (DEMO_ENUM)                                          */

static const char *const pick_values[] = {"red", "green", "blue", NULL};
static const char *const other_values[] = {"red", "green", NULL};
static const struct demo_param gamma_params[] = {
    {.name = "pick",
     .type = DEMO_ENUM,
     .values = pick_values,
     .def = 1,
     .form_value = 2,
     .doc = "A colour."},
};
static const struct demo gamma_demo = {
    .name = "gamma",
    .summary = "Gamma",
    .lesson = "Gamma's lesson.",
    .params = gamma_params,
    .n_params = 1,
    .modes = beta_modes,
    .n_modes = 2,
    .default_mode = ENGINE_SEQUENTIAL,
};
static const struct demo_param bad_enum_params[] = {
    {.name = "pick", .type = DEMO_ENUM, .values = pick_values, .def = 3},
};
static const struct demo bad_enum = {
    .name = "badenum",
    .params = bad_enum_params,
    .n_params = 1,
    .modes = beta_modes,
    .n_modes = 2,
    .default_mode = ENGINE_SEQUENTIAL,
};
static const struct demo_param other_enum_params[] = {
    {.name = "pick", .type = DEMO_ENUM, .values = other_values, .def = 0},
};
static const struct demo other_enum = {
    .name = "otherenum",
    .params = other_enum_params,
    .n_params = 1,
    .modes = beta_modes,
    .n_modes = 2,
    .default_mode = ENGINE_SEQUENTIAL,
};

static void test_enum_param(void **state)
{
    (void)state;
    const struct demo *const with_gamma[] = {&alpha, &beta, &gamma_demo};
    char err[256] = "";
    json_t *built = openapi_build(base_doc, strlen(base_doc), with_gamma, 3,
                                  err, sizeof(err));
    if (!built)
        fail_msg("openapi_build: %s", err);
    json_t *keep = doc;
    doc = built;
    /* A string enum with its default by name, no list style; the form
     * starts on values[form_value]. */
    expect_json("components|parameters|gamma.pick",
                "{\"name\": \"pick\", \"in\": \"query\", \"required\": false,"
                " \"description\": \"A colour.\", \"schema\": {\"type\": "
                "\"string\", \"enum\": [\"red\", \"green\", \"blue\"],"
                " \"default\": \"green\"}, \"x-conlab-form-value\": "
                "\"blue\"}");
    /* /run/compare describes it too, without a default (each demo has
     * its own). */
    expect_json("components|parameters|compare.pick|schema",
                "{\"type\": \"string\", \"enum\": [\"red\", \"green\", "
                "\"blue\"]}");
    expect_json("components|parameters|compare.pick|x-conlab-demos",
                "[\"gamma\"]");
    doc = keep;
    json_decref(built);

    const struct demo *const one_bad[] = {&bad_enum};
    expect_refused(base_doc, one_bad, 1,
                   "badenum.pick: an enumeration needs 1 to 16 names");
    const struct demo *const differ[] = {&gamma_demo, &other_enum};
    expect_refused(base_doc, differ, 2,
                   "gamma.pick and otherenum.pick name different values");
}

/* ------------------------------------------------------------------ */
/* The real registry against the committed document                   */

static json_t *embedded_base(void)
{
    json_error_t jerr;
    return json_loadb(openapi_json, (size_t)(openapi_json_end - openapi_json),
                      0, &jerr);
}

static void test_registry_matches_document(void **state)
{
    (void)state;
    char err[256] = "";
    json_t *base = embedded_base();
    assert_non_null(base);
    json_t *built =
        openapi_build(openapi_json, (size_t)(openapi_json_end - openapi_json),
                      demo_registry, demo_count, err, sizeof(err));
    if (!built)
        fail_msg("openapi_build: %s", err);
    if (!json_equal(built, base)) {
        /* Name the first parameter or path that differs. */
        const char *sections[] = {"components|parameters", "paths",
                                  "components|schemas"};
        for (size_t s = 0; s < 3; s++) {
            const char *key;
            json_t *want;
            json_object_foreach(at(base, sections[s]), key, want)
            {
                json_t *got = json_object_get(at(built, sections[s]), key);
                if (!json_equal(got, want)) {
                    char *g = got ? json_dumps(got, JSON_COMPACT) : NULL;
                    print_error("%s %s differs:\n  got  %s\n", sections[s], key,
                                g ? g : "(none)");
                    free(g);
                }
            }
        }
        fail_msg("the document built from the registry differs from "
                 "api/openapi.json: regenerate it (README, adding a demo)");
    }
    json_decref(built);
    json_decref(base);
}

/* ------------------------------------------------------------------ */
/* The handler                                                         */

static void call(const char *query, struct response *resp)
{
    struct request req = {.method = HTTP_GET,
                          .path = "/openapi.json",
                          .query = query,
                          .route = -1,
                          .id = ""};
    response_init(resp);
    assert_int_equal(openapi_handle(&req, resp, NULL), HANDLER_DONE);
}

static void test_handle(void **state)
{
    (void)state;
    struct response resp;
    char err[256] = "";

    openapi_cleanup();
    call("", &resp);
    assert_int_equal(resp.status, 500);
    response_cleanup(&resp);

    const struct demo *const one_bad_mode[] = {&bad_mode};
    assert_int_equal(openapi_load(one_bad_mode, 1, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "badmode"));

    assert_int_equal(openapi_load(demo_registry, demo_count, err, sizeof(err)),
                     0);
    call("", &resp);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.content_type, CONTENT_TYPE_JSON);
    json_error_t jerr;
    json_t *served = json_loadb(resp.body, resp.body_len, 0, &jerr);
    json_t *base = embedded_base();
    assert_non_null(served);
    assert_true(json_equal(served, base));
    json_decref(served);
    json_decref(base);
    response_cleanup(&resp);

    call("x=1", &resp);
    assert_int_equal(resp.status, 400);
    response_cleanup(&resp);
    openapi_cleanup();
}

int main(void)
{
    const struct CMUnitTest fake[] = {
        cmocka_unit_test(test_int_param),
        cmocka_unit_test(test_default_from_workers),
        cmocka_unit_test(test_list_params),
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_demo_paths),
        cmocka_unit_test(test_compare),
        cmocka_unit_test(test_stale_removed),
    };
    const struct CMUnitTest other[] = {
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_enum_param),
        cmocka_unit_test(test_registry_matches_document),
        cmocka_unit_test(test_handle),
    };
    int failed = cmocka_run_group_tests_name("openapi_build, fake registry",
                                             fake, setup_fake, teardown_fake);
    failed += cmocka_run_group_tests_name("openapi", other, NULL, NULL);
    return failed ? 1 : 0;
}
