/*
 * handlers: the route table. Adding an endpoint is one line here and one
 * file beside it; a demo's /run/<name> route comes from the registry
 * (demo.h) instead.
 */
#include "handlers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/jsonr.h"
#include "../server/params.h"
#include "demo.h"
#include "overhead.h"
#include "run.h"

int handlers_register(struct router *router, struct app *app)
{
    static const struct {
        const char *path;
        handler_fn handle;
    } routes[] = {
        {"/health", health_handle},        {"/run/compare", compare_handle},
        {"/delay", delay_handle},          {"/metrics", metrics_handle},
        {"/openapi.json", openapi_handle}, {"/run/overhead", overhead_handle},
        {"/run/table", table_handle},
    };
    /* The demos whose lists outgrow a request target take a JSON body. */
    static const char *const posts[] = {"square", "fetch", "work"};
    static struct run_route demo_routes[DEMOS_MAX];
    static char demo_paths[DEMOS_MAX][64];
    int rc;

    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        unsigned methods = routes[i].handle == compare_handle
                               ? HTTP_GET | HTTP_POST
                               : HTTP_GET;
        rc = router_add(router, methods, routes[i].path, routes[i].handle, app);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < demo_count; i++) {
        demo_routes[i].app = app;
        demo_routes[i].demo = demo_registry[i];
        snprintf(demo_paths[i], sizeof(demo_paths[i]), "/run/%s",
                 demo_registry[i]->name);
        unsigned methods = HTTP_GET;
        for (size_t k = 0; k < sizeof(posts) / sizeof(posts[0]); k++) {
            if (strcmp(posts[k], demo_registry[i]->name) == 0)
                methods |= HTTP_POST;
        }
        rc = router_add(router, methods, demo_paths[i], run_handle,
                        &demo_routes[i]);
        if (rc < 0)
            return rc;
    }
    /* Last: the static files take every other GET. */
    return router_add(router, HTTP_GET, "/*", static_handle, app);
}

bool handlers_refuse_query(const struct request *req, struct response *resp)
{
    struct params p;
    if (req->query[0] == '\0')
        return false;
    params_parse(&p, req->query);
    params_finish(&p);
    handlers_reject_params(&p, resp);
    return true;
}

enum handler_result handlers_reject_params(struct params *p,
                                           struct response *resp)
{
    response_error(resp, 400, "%s", params_error(p));
    params_cleanup(p);
    return HANDLER_DONE;
}

int handlers_body_doc(const struct request *req, struct jsonr_doc *doc,
                      struct params *p, struct response *resp)
{
    char err[JSONR_ERROR_MAX + 64];
    params_parse(p, "");
    if (req->query[0] != '\0') {
        response_error(resp, 400,
                       "a POST takes its parameters in the JSON body only, "
                       "not in the query string");
        return -EINVAL;
    }
    if (!req->body ||
        jsonr_scan(doc, req->body, req->body_len, err, sizeof(err)) < 0) {
        response_error(resp, 400, "%s",
                       req->body ? err : "a JSON object body is required");
        return -EINVAL;
    }
    return 0;
}

int handlers_json_enum(struct jsonr_doc *doc, struct params *p,
                       const char *name, const char *const choices[],
                       size_t n_choices, int def, int *out)
{
    params_expect(p, name);
    *out = def;
    for (size_t k = 0; k < doc->n; k++) {
        struct jsonr_member *m = &doc->members[k];
        if (strcmp(m->key, name) != 0)
            continue;
        if (m->taken)
            return params_fail(p, "parameter '%s' given more than once", name);
        m->taken = true;
        if (m->type != JSONR_STRING)
            return params_fail(p, "parameter '%s': expected a string, got %s",
                               name, jsonr_type_names[m->type]);
        char *value = jsonr_string_dup(doc->text + m->at, m->end - m->at);
        if (!value)
            return params_fail(p, "parameter '%s': not a usable string", name);
        int rc = params_check_enum(p, name, value, choices, n_choices, out);
        free(value);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int handlers_json_int(struct jsonr_doc *doc, struct params *p, const char *name,
                      int64_t min, int64_t max, int64_t def, int64_t *out)
{
    params_expect(p, name);
    *out = def;
    for (size_t k = 0; k < doc->n; k++) {
        struct jsonr_member *m = &doc->members[k];
        if (strcmp(m->key, name) != 0)
            continue;
        if (m->taken)
            return params_fail(p, "parameter '%s' given more than once", name);
        m->taken = true;
        if (m->type != JSONR_INTEGER)
            return params_fail(
                p,
                "parameter '%s': expected an integer, got %s "
                "%s",
                name,
                m->type == JSONR_ARRAY || m->type == JSONR_OBJECT ? "an" : "a",
                jsonr_type_names[m->type]);
        int rc = params_check_int(p, name, doc->text + m->at, m->end - m->at,
                                  min, max, out);
        if (rc < 0)
            return rc;
    }
    return 0;
}
