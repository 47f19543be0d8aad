/*
 * handlers: the route table. Adding an endpoint is one line here and one
 * file beside it.
 */
#include "handlers.h"

#include "../server/params.h"

int handlers_register(struct router *router, struct app *app)
{
    int rc = router_add(router, HTTP_GET, "/health", health_handle, app);
    if (rc == 0)
        rc = router_add(router, HTTP_GET, "/run/prime", prime_handle, app);
    if (rc == 0)
        rc = router_add(router, HTTP_GET, "/run/square", square_handle, app);
    if (rc == 0)
        rc = router_add(router, HTTP_GET, "/run/sleep", sleep_handle, app);
    if (rc == 0)
        rc = router_add(router, HTTP_GET, "/run/compare", compare_handle, app);
    if (rc == 0)
        rc = router_add(router, HTTP_GET, "/delay", delay_handle, app);
    if (rc == 0)
        rc = router_add(router, HTTP_GET, "/run/fetch", fetch_handle, app);
    if (rc == 0)
        rc = router_add(router, HTTP_GET, "/metrics", metrics_handle, app);
    if (rc == 0)
        rc = router_add(router, HTTP_GET, "/openapi.json", openapi_handle, app);
    if (rc == 0)
        rc = router_add(router, HTTP_GET, "/*", static_handle, app);
    return rc;
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
