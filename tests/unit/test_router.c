/*
 * Unit tests of server/router.c: matching (exact, prefix, longest prefix),
 * the router's own 404/405 answers, router_add()'s errors, and the method
 * helpers. Handlers are fakes that record their calls in the ctx they are
 * given. The fixture holds a new router and an initialised response; the
 * teardown frees both.
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

#include "../../server/router.h"

/* What a fake handler saw; each route gets its own as ctx. */
struct calls {
    int count;
    struct request *req;
    void *ctx;
};

struct fixture {
    struct router *router;
    struct response resp;
    struct calls a, b, c;
};

static int setup_router(void **state);
static int teardown_router(void **state);
static enum handler_result fake_handler(struct request *req,
                                        struct response *resp, void *ctx);
static enum handler_result async_handler(struct request *req,
                                         struct response *resp, void *ctx);
static enum handler_result dispatch(struct fixture *f, enum http_method method,
                                    const char *path);
static void expect_error_body(const struct response *resp, int status,
                              const char *fragment);
static const char *header_value(const struct response *resp, const char *name);
static int routed_id(struct fixture *f, enum http_method method,
                     const char *path);

static int setup_router(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    f->router = router_new();
    if (!f->router) {
        free(f);
        return -1;
    }
    response_init(&f->resp);
    *state = f;
    return 0;
}

static int teardown_router(void **state)
{
    struct fixture *f = *state;
    response_cleanup(&f->resp);
    router_free(f->router);
    free(f);
    return 0;
}

static enum handler_result fake_handler(struct request *req,
                                        struct response *resp, void *ctx)
{
    struct calls *calls = ctx;
    calls->count++;
    calls->req = req;
    calls->ctx = ctx;
    response_json(resp, 200, json_pack("{s:s}", "path", req->path));
    return HANDLER_DONE;
}

static enum handler_result async_handler(struct request *req,
                                         struct response *resp, void *ctx)
{
    fake_handler(req, resp, ctx);
    return HANDLER_ASYNC;
}

/* Dispatches method path on a fresh response; returns the result. */
static enum handler_result dispatch(struct fixture *f, enum http_method method,
                                    const char *path)
{
    struct request req = {.method = method, .path = path, .query = ""};
    response_cleanup(&f->resp);
    return router_dispatch(f->router, &req, &f->resp);
}

/* Asserts the API's error shape with this status and message fragment. */
static void expect_error_body(const struct response *resp, int status,
                              const char *fragment)
{
    json_error_t jerr;

    if (resp->status != status)
        fail_msg("status %d, wanted %d; body %s", resp->status, status,
                 resp->body ? resp->body : "(none)");
    assert_string_equal(resp->content_type, CONTENT_TYPE_JSON);
    assert_non_null(resp->body);
    json_t *body = json_loadb(resp->body, resp->body_len, 0, &jerr);
    if (!body)
        fail_msg("body is not JSON (%s): %s", jerr.text, resp->body);
    json_t *error = json_object_get(body, "error");
    json_t *message = json_object_get(error, "message");
    int ok = json_integer_value(json_object_get(error, "status")) == status &&
             json_is_string(message) && json_string_length(message) > 0 &&
             strstr(json_string_value(message), fragment) != NULL;
    json_decref(body);
    if (!ok)
        fail_msg("body %s is not a %d error mentioning '%s'", resp->body,
                 status, fragment);
}

static const char *header_value(const struct response *resp, const char *name)
{
    for (size_t i = 0; i < resp->n_headers; i++) {
        if (strcmp(resp->headers[i].name, name) == 0)
            return resp->headers[i].value;
    }
    return NULL;
}

/* ---- matching ---- */

static void exact_route(void **state)
{
    struct fixture *f = *state;
    struct request req = {.method = HTTP_GET, .path = "/health"};

    assert_int_equal(
        router_add(f->router, HTTP_GET, "/health", fake_handler, &f->a), 0);
    assert_int_equal(router_dispatch(f->router, &req, &f->resp), HANDLER_DONE);
    assert_int_equal(f->a.count, 1);
    assert_ptr_equal(f->a.ctx, &f->a);
    assert_ptr_equal(f->a.req, &req);
    assert_int_equal(f->resp.status, 200);
}

static void exact_route_is_not_a_prefix(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(
        router_add(f->router, HTTP_GET, "/health", fake_handler, &f->a), 0);
    dispatch(f, HTTP_GET, "/health/x");
    assert_int_equal(f->resp.status, 404);
    dispatch(f, HTTP_GET, "/healthz");
    assert_int_equal(f->resp.status, 404);
    dispatch(f, HTTP_GET, "/health/");
    assert_int_equal(f->resp.status, 404);
    dispatch(f, HTTP_GET, "/");
    assert_int_equal(f->resp.status, 404);
    assert_int_equal(f->a.count, 0);
}

static void root_prefix_is_the_fallback(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(router_add(f->router, HTTP_GET, "/*", fake_handler, &f->a),
                     0);
    dispatch(f, HTTP_GET, "/");
    dispatch(f, HTTP_GET, "/index.html");
    dispatch(f, HTTP_GET, "/deep/er/path.js");
    assert_int_equal(f->a.count, 3);
    assert_int_equal(f->resp.status, 200);
}

static void longer_prefix_wins(void **state)
{
    struct fixture *f = *state;

    /* Longest first here, shortest first in the next test. */
    assert_int_equal(
        router_add(f->router, HTTP_GET, "/static/img/*", fake_handler, &f->c),
        0);
    assert_int_equal(
        router_add(f->router, HTTP_GET, "/static/*", fake_handler, &f->b), 0);
    assert_int_equal(router_add(f->router, HTTP_GET, "/*", fake_handler, &f->a),
                     0);

    dispatch(f, HTTP_GET, "/static/app.js");
    assert_int_equal(f->b.count, 1);
    dispatch(f, HTTP_GET, "/static/");
    assert_int_equal(f->b.count, 2);
    dispatch(f, HTTP_GET, "/static/img/logo.png");
    assert_int_equal(f->c.count, 1);
    assert_int_equal(f->b.count, 2);
    /* The static prefix covers what is under "/static/", not "/static". */
    dispatch(f, HTTP_GET, "/static");
    dispatch(f, HTTP_GET, "/staticx/y");
    assert_int_equal(f->a.count, 2);
    assert_int_equal(f->b.count, 2);
}

static void longer_prefix_wins_added_last(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(router_add(f->router, HTTP_GET, "/*", fake_handler, &f->a),
                     0);
    assert_int_equal(
        router_add(f->router, HTTP_GET, "/static/*", fake_handler, &f->b), 0);
    dispatch(f, HTTP_GET, "/static/app.js");
    assert_int_equal(f->b.count, 1);
    assert_int_equal(f->a.count, 0);
    dispatch(f, HTTP_GET, "/other");
    assert_int_equal(f->a.count, 1);
}

static void exact_wins_over_prefix(void **state)
{
    struct fixture *f = *state;

    /* The prefixes are added first, so a first-match search would fail. */
    assert_int_equal(router_add(f->router, HTTP_GET, "/*", fake_handler, &f->a),
                     0);
    assert_int_equal(
        router_add(f->router, HTTP_GET, "/api/*", fake_handler, &f->b), 0);
    assert_int_equal(
        router_add(f->router, HTTP_GET, "/api/health", fake_handler, &f->c), 0);
    dispatch(f, HTTP_GET, "/api/health");
    assert_int_equal(f->c.count, 1);
    assert_int_equal(f->b.count, 0);
    assert_int_equal(f->a.count, 0);
    dispatch(f, HTTP_GET, "/api/other");
    assert_int_equal(f->b.count, 1);
}

static void exact_and_prefix_of_same_path(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(
        router_add(f->router, HTTP_GET, "/a/*", fake_handler, &f->a), 0);
    assert_int_equal(
        router_add(f->router, HTTP_GET, "/a/", fake_handler, &f->b), 0);
    assert_int_equal(router_add(f->router, HTTP_GET, "/a", fake_handler, &f->c),
                     0);
    dispatch(f, HTTP_GET, "/a/");
    assert_int_equal(f->b.count, 1);
    dispatch(f, HTTP_GET, "/a");
    assert_int_equal(f->c.count, 1);
    dispatch(f, HTTP_GET, "/a/x");
    assert_int_equal(f->a.count, 1);
}

static void handler_result_is_returned(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(
        router_add(f->router, HTTP_POST, "/job", async_handler, &f->a), 0);
    assert_int_equal(dispatch(f, HTTP_POST, "/job"), HANDLER_ASYNC);
    assert_int_equal(f->a.count, 1);
}

/* ---- the router's own answers ---- */

static void not_found_is_json_404(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(
        router_add(f->router, HTTP_GET, "/health", fake_handler, &f->a), 0);
    assert_int_equal(dispatch(f, HTTP_GET, "/nothing/here"), HANDLER_DONE);
    expect_error_body(&f->resp, 404, "/nothing/here");
    assert_int_equal(f->a.count, 0);
}

static void empty_router_answers_404(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(dispatch(f, HTTP_POST, "/"), HANDLER_DONE);
    expect_error_body(&f->resp, 404, "no route");
}

static void wrong_method_is_405_with_allow(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(
        router_add(f->router, HTTP_GET, "/health", fake_handler, &f->a), 0);
    assert_int_equal(dispatch(f, HTTP_POST, "/health"), HANDLER_DONE);
    expect_error_body(&f->resp, 405, "/health");
    const char *allow = header_value(&f->resp, "Allow");
    assert_non_null(allow);
    assert_string_equal(allow, "GET, HEAD");
    assert_int_equal(f->a.count, 0);

    dispatch(f, HTTP_DELETE, "/health");
    assert_int_equal(f->resp.status, 405);
    dispatch(f, HTTP_OTHER, "/health");
    assert_int_equal(f->resp.status, 405);
    assert_int_equal(f->a.count, 0);
}

static void head_allowed_on_get_routes(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(
        router_add(f->router, HTTP_GET, "/health", fake_handler, &f->a), 0);
    dispatch(f, HTTP_HEAD, "/health");
    assert_int_equal(f->a.count, 1);
    assert_int_equal(f->resp.status, 200);
}

static void head_not_implied_without_get(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(
        router_add(f->router, HTTP_POST, "/job", fake_handler, &f->a), 0);
    dispatch(f, HTTP_HEAD, "/job");
    expect_error_body(&f->resp, 405, "POST");
    assert_string_equal(header_value(&f->resp, "Allow"), "POST");
    dispatch(f, HTTP_GET, "/job");
    assert_int_equal(f->resp.status, 405);
    dispatch(f, HTTP_POST, "/job");
    assert_int_equal(f->resp.status, 200);
    assert_int_equal(f->a.count, 1);
}

static void allow_lists_every_method(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(
        router_add(f->router, HTTP_GET | HTTP_POST, "/x", fake_handler, &f->a),
        0);
    dispatch(f, HTTP_PUT, "/x");
    assert_int_equal(f->resp.status, 405);
    assert_string_equal(header_value(&f->resp, "Allow"), "GET, HEAD, POST");
}

static void prefix_route_405(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(router_add(f->router, HTTP_GET, "/*", fake_handler, &f->a),
                     0);
    dispatch(f, HTTP_POST, "/some/file.js");
    expect_error_body(&f->resp, 405, "/some/file.js");
    assert_string_equal(header_value(&f->resp, "Allow"), "GET, HEAD");
}

/*
 * A path is percent-decoded but may hold any byte but NUL ("/%ff"). The
 * router's 404 and 405 still have to be the API's JSON error.
 */
static void not_found_with_non_utf8_path(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(
        router_add(f->router, HTTP_GET, "/health", fake_handler, &f->a), 0);
    dispatch(f, HTTP_GET, "/\xff");
    expect_error_body(&f->resp, 404, "no route");
}

static void not_found_with_long_utf8_path(void **state)
{
    struct fixture *f = *state;
    char path[1 + 2 * 600 + 1] = "/";

    /* Valid UTF-8, but longer than the 512-byte message it is put in. */
    for (size_t i = 0; i < 600; i++)
        memcpy(path + 1 + 2 * i, "\xc3\xa9", 2);
    path[sizeof(path) - 1] = '\0';
    dispatch(f, HTTP_GET, path);
    expect_error_body(&f->resp, 404, "no route");
}

static void method_not_allowed_with_non_utf8_path(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(router_add(f->router, HTTP_GET, "/*", fake_handler, &f->a),
                     0);
    dispatch(f, HTTP_POST, "/\xc3");
    expect_error_body(&f->resp, 405, "not allowed");
    assert_string_equal(header_value(&f->resp, "Allow"), "GET, HEAD");
}

/* ---- router_add ---- */

static void add_rejects_bad_routes(void **state)
{
    struct fixture *f = *state;
    char long_path[ROUTER_PATH_MAX + 1];

    assert_int_equal(router_add(f->router, HTTP_GET, "", fake_handler, NULL),
                     -EINVAL);
    assert_int_equal(
        router_add(f->router, HTTP_GET, "health", fake_handler, NULL), -EINVAL);
    assert_int_equal(router_add(f->router, HTTP_GET, "*", fake_handler, NULL),
                     -EINVAL);
    assert_int_equal(router_add(f->router, 0, "/x", fake_handler, NULL),
                     -EINVAL);
    assert_int_equal(router_add(f->router, HTTP_GET, "/x", NULL, NULL),
                     -EINVAL);

    memset(long_path, 'a', ROUTER_PATH_MAX);
    long_path[0] = '/';
    long_path[ROUTER_PATH_MAX] = '\0';
    assert_int_equal(
        router_add(f->router, HTTP_GET, long_path, fake_handler, NULL),
        -EINVAL);
    long_path[ROUTER_PATH_MAX - 1] = '\0';
    assert_int_equal(
        router_add(f->router, HTTP_GET, long_path, fake_handler, &f->a), 0);
    dispatch(f, HTTP_GET, long_path);
    assert_int_equal(f->a.count, 1);
}

static void add_rejects_duplicates(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(router_add(f->router, HTTP_GET, "/x", fake_handler, &f->a),
                     0);
    assert_int_equal(
        router_add(f->router, HTTP_POST, "/x", fake_handler, &f->b), -EEXIST);
    assert_int_equal(
        router_add(f->router, HTTP_GET, "/p/*", fake_handler, &f->a), 0);
    assert_int_equal(
        router_add(f->router, HTTP_GET, "/p/*", fake_handler, &f->b), -EEXIST);
    assert_int_equal(router_add(f->router, HTTP_GET, "/*", fake_handler, &f->a),
                     0);
    assert_int_equal(router_add(f->router, HTTP_GET, "/*", fake_handler, &f->b),
                     -EEXIST);
    /* The first registration stays in force. */
    dispatch(f, HTTP_GET, "/x");
    dispatch(f, HTTP_GET, "/p/q");
    assert_int_equal(f->a.count, 2);
    assert_int_equal(f->b.count, 0);
}

static void add_rejects_past_the_cap(void **state)
{
    struct fixture *f = *state;
    char path[32];

    for (int i = 0; i < ROUTER_ROUTES_MAX; i++) {
        snprintf(path, sizeof(path), "/r%d", i);
        assert_int_equal(
            router_add(f->router, HTTP_GET, path, fake_handler, &f->a), 0);
    }
    assert_int_equal(
        router_add(f->router, HTTP_GET, "/one-more", fake_handler, &f->b),
        -ENOSPC);
    dispatch(f, HTTP_GET, "/r0");
    snprintf(path, sizeof(path), "/r%d", ROUTER_ROUTES_MAX - 1);
    dispatch(f, HTTP_GET, path);
    assert_int_equal(f->a.count, 2);
    dispatch(f, HTTP_GET, "/one-more");
    assert_int_equal(f->resp.status, 404);
    assert_int_equal(f->b.count, 0);
}

/* ---- route ids ---- */

/* Dispatches method path; returns the route id the router set. */
static int routed_id(struct fixture *f, enum http_method method,
                     const char *path)
{
    struct request req = {
        .method = method, .path = path, .query = "", .route = 12345};
    response_cleanup(&f->resp);
    router_dispatch(f->router, &req, &f->resp);
    return req.route;
}

static void route_path_ids_in_add_order(void **state)
{
    struct fixture *f = *state;

    assert_null(router_route_path(f->router, 0));
    assert_int_equal(
        router_add(f->router, HTTP_GET, "/health", fake_handler, &f->a), 0);
    assert_int_equal(
        router_add(f->router, HTTP_GET, "/static/*", fake_handler, &f->b), 0);
    /* Refused routes take no id. */
    assert_int_equal(
        router_add(f->router, HTTP_GET, "/health", fake_handler, &f->c),
        -EEXIST);
    assert_int_equal(
        router_add(f->router, HTTP_GET, "bad", fake_handler, &f->c), -EINVAL);
    assert_int_equal(router_add(f->router, HTTP_GET, "/*", fake_handler, &f->c),
                     0);

    assert_string_equal(router_route_path(f->router, 0), "/health");
    assert_string_equal(router_route_path(f->router, 1), "/static/*");
    assert_string_equal(router_route_path(f->router, 2), "/*");
    assert_null(router_route_path(f->router, 3));
    assert_null(router_route_path(f->router, -1));
    assert_null(router_route_path(f->router, ROUTER_ROUTES_MAX));
    assert_null(router_route_path(f->router, -1000));
}

static void route_path_up_to_the_cap(void **state)
{
    struct fixture *f = *state;
    char path[32];

    for (int i = 0; i < ROUTER_ROUTES_MAX; i++) {
        snprintf(path, sizeof(path), "/r%d", i);
        assert_int_equal(
            router_add(f->router, HTTP_GET, path, fake_handler, &f->a), 0);
    }
    for (int i = 0; i < ROUTER_ROUTES_MAX; i++) {
        snprintf(path, sizeof(path), "/r%d", i);
        assert_string_equal(router_route_path(f->router, i), path);
        assert_int_equal(routed_id(f, HTTP_GET, path), i);
    }
    assert_null(router_route_path(f->router, ROUTER_ROUTES_MAX));
}

static void dispatch_sets_route(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(router_add(f->router, HTTP_GET, "/*", fake_handler, &f->a),
                     0);
    assert_int_equal(
        router_add(f->router, HTTP_GET, "/health", fake_handler, &f->b), 0);
    assert_int_equal(
        router_add(f->router, HTTP_POST, "/job", fake_handler, &f->c), 0);
    assert_int_equal(
        router_add(f->router, HTTP_GET, "/api/*", fake_handler, &f->c), 0);

    /* A match: the route's id, exact or prefix, the handler's status. */
    assert_int_equal(routed_id(f, HTTP_GET, "/health"), 1);
    assert_int_equal(f->resp.status, 200);
    assert_int_equal(routed_id(f, HTTP_HEAD, "/health"), 1);
    assert_int_equal(routed_id(f, HTTP_POST, "/job"), 2);
    assert_int_equal(routed_id(f, HTTP_GET, "/api/x"), 3);
    assert_int_equal(routed_id(f, HTTP_GET, "/index.html"), 0);
    assert_int_equal(routed_id(f, HTTP_GET, "/"), 0);
    assert_int_equal(f->resp.status, 200);

    /* 405: the route that matched the path, not "none". */
    assert_int_equal(routed_id(f, HTTP_POST, "/health"), 1);
    assert_int_equal(f->resp.status, 405);
    assert_int_equal(routed_id(f, HTTP_GET, "/job"), 2);
    assert_int_equal(f->resp.status, 405);
    assert_int_equal(routed_id(f, HTTP_OTHER, "/api/y"), 3);
    assert_int_equal(f->resp.status, 405);
    assert_int_equal(routed_id(f, HTTP_DELETE, "/x"), 0);
    assert_int_equal(f->resp.status, 405);
}

static void dispatch_sets_route_minus_one_on_404(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(routed_id(f, HTTP_GET, "/"), -1); /* empty router */
    assert_int_equal(f->resp.status, 404);
    assert_int_equal(
        router_add(f->router, HTTP_GET, "/health", fake_handler, &f->a), 0);
    assert_int_equal(
        router_add(f->router, HTTP_GET, "/static/*", fake_handler, &f->b), 0);
    assert_int_equal(routed_id(f, HTTP_GET, "/nothing"), -1);
    assert_int_equal(f->resp.status, 404);
    assert_int_equal(routed_id(f, HTTP_POST, "/healthz"), -1);
    assert_int_equal(f->resp.status, 404);
    assert_int_equal(routed_id(f, HTTP_GET, "/static"), -1);
    assert_int_equal(f->resp.status, 404);
    assert_int_equal(routed_id(f, HTTP_GET, "/\xff"), -1);
    assert_int_equal(f->resp.status, 404);
    assert_int_equal(f->a.count + f->b.count, 0);
}

/* ---- method helpers ---- */

static void method_parse(void **state)
{
    (void)state;
    assert_int_equal(http_method_parse("GET"), HTTP_GET);
    assert_int_equal(http_method_parse("HEAD"), HTTP_HEAD);
    assert_int_equal(http_method_parse("POST"), HTTP_POST);
    assert_int_equal(http_method_parse("PUT"), HTTP_PUT);
    assert_int_equal(http_method_parse("DELETE"), HTTP_DELETE);
    assert_int_equal(http_method_parse("OPTIONS"), HTTP_OPTIONS);
    assert_int_equal(http_method_parse("PATCH"), HTTP_PATCH);
    assert_int_equal(http_method_parse("get"), HTTP_OTHER);
    assert_int_equal(http_method_parse("GETX"), HTTP_OTHER);
    assert_int_equal(http_method_parse("GE"), HTTP_OTHER);
    assert_int_equal(http_method_parse(""), HTTP_OTHER);
    assert_int_equal(http_method_parse("CONNECT"), HTTP_OTHER);
}

static void allow_text(void **state)
{
    char out[80];

    (void)state;
    assert_string_equal(router_allow_text(0, out, sizeof(out)), "");
    assert_string_equal(router_allow_text(HTTP_GET, out, sizeof(out)), "GET");
    assert_string_equal(
        router_allow_text(HTTP_POST | HTTP_GET | HTTP_HEAD, out, sizeof(out)),
        "GET, HEAD, POST");
    assert_string_equal(router_allow_text(HTTP_OTHER, out, sizeof(out)), "");
    assert_string_equal(router_allow_text(HTTP_GET | HTTP_HEAD | HTTP_POST |
                                              HTTP_PUT | HTTP_DELETE |
                                              HTTP_OPTIONS | HTTP_PATCH |
                                              HTTP_OTHER,
                                          out, sizeof(out)),
                        "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH");
    assert_ptr_equal(router_allow_text(HTTP_GET, out, sizeof(out)), out);
}

static void allow_text_small_buffer(void **state)
{
    char out[8];

    (void)state;
    memset(out, '#', sizeof(out));
    router_allow_text(HTTP_GET | HTTP_HEAD | HTTP_POST, out, 6);
    assert_true(strlen(out) < 6);
    assert_memory_equal(out, "GET", 3);
    assert_int_equal(out[6], '#');
}

static const char *fake_header(const struct request *req, const char *name)
{
    (void)req;
    return strcmp(name, "X-Test") == 0 ? "yes" : NULL;
}

static void request_header_lookup(void **state)
{
    struct request req = {.method = HTTP_GET, .path = "/"};

    (void)state;
    assert_null(request_header(&req, "X-Test"));
    req.header = fake_header;
    assert_string_equal(request_header(&req, "X-Test"), "yes");
    assert_null(request_header(&req, "X-Other"));
}

int main(void)
{
#define T(name)                                                                \
    cmocka_unit_test_setup_teardown(name, setup_router, teardown_router)
    const struct CMUnitTest tests[] = {
        T(exact_route),
        T(exact_route_is_not_a_prefix),
        T(root_prefix_is_the_fallback),
        T(longer_prefix_wins),
        T(longer_prefix_wins_added_last),
        T(exact_wins_over_prefix),
        T(exact_and_prefix_of_same_path),
        T(handler_result_is_returned),
        T(not_found_is_json_404),
        T(empty_router_answers_404),
        T(wrong_method_is_405_with_allow),
        T(head_allowed_on_get_routes),
        T(head_not_implied_without_get),
        T(allow_lists_every_method),
        T(prefix_route_405),
        T(not_found_with_non_utf8_path),
        T(not_found_with_long_utf8_path),
        T(method_not_allowed_with_non_utf8_path),
        T(add_rejects_bad_routes),
        T(add_rejects_duplicates),
        T(add_rejects_past_the_cap),
        T(route_path_ids_in_add_order),
        T(route_path_up_to_the_cap),
        T(dispatch_sets_route),
        T(dispatch_sets_route_minus_one_on_404),
        T(method_parse),
        T(allow_text),
        T(allow_text_small_buffer),
        T(request_header_lookup),
    };
#undef T
    return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
