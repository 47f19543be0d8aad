/*
 * handlers: the route table. Adding an endpoint is one line here and one
 * file beside it; a demo's /run/<name> route comes from the registry
 * (demo.h) instead.
 */
#include "handlers.h"

#include <stdio.h>

#include "../server/params.h"
#include "demo.h"
#include "run.h"

int handlers_register(struct router *router, struct app *app)
{
    static const struct {
        const char *path;
        handler_fn handle;
    } routes[] = {
        {"/health", health_handle},        {"/run/compare", compare_handle},
        {"/delay", delay_handle},          {"/metrics", metrics_handle},
        {"/openapi.json", openapi_handle},
    };
    static struct run_route demo_routes[DEMOS_MAX];
    static char demo_paths[DEMOS_MAX][64];
    int rc;

    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        rc =
            router_add(router, HTTP_GET, routes[i].path, routes[i].handle, app);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < demo_count; i++) {
        demo_routes[i].app = app;
        demo_routes[i].demo = demo_registry[i];
        snprintf(demo_paths[i], sizeof(demo_paths[i]), "/run/%s",
                 demo_registry[i]->name);
        rc = router_add(router, HTTP_GET, demo_paths[i], run_handle,
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
