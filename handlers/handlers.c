/*
 * handlers: the route table. Adding an endpoint is one line here and one
 * file beside it.
 */
#include "handlers.h"

#include "../server/params.h"

int handlers_register(struct router *router, struct app *app)
{
    static const struct {
        const char *path;
        handler_fn handle;
    } routes[] = {
        {"/health", health_handle},        {"/run/prime", prime_handle},
        {"/run/square", square_handle},    {"/run/sleep", sleep_handle},
        {"/run/compare", compare_handle},  {"/delay", delay_handle},
        {"/run/fetch", fetch_handle},      {"/metrics", metrics_handle},
        {"/openapi.json", openapi_handle}, {"/*", static_handle},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        int rc =
            router_add(router, HTTP_GET, routes[i].path, routes[i].handle, app);
        if (rc < 0)
            return rc;
    }
    return 0;
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
