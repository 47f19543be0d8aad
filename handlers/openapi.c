/*
 * openapi: GET /openapi.json, the OpenAPI 3 description of this API.
 *
 * The document is api/openapi.json, built into the binary (openapi_data.S)
 * so that it is served whatever --web-root says and always matches the
 * binary that serves it.
 */
#include <stdlib.h>
#include <string.h>

#include "handlers.h"

extern const char openapi_json[];
extern const char openapi_json_end[];

enum handler_result openapi_handle(struct request *req, struct response *resp,
                                   void *ctx)
{
    (void)ctx;

    if (handlers_refuse_query(req, resp))
        return HANDLER_DONE;
    size_t len = (size_t)(openapi_json_end - openapi_json);
    char *copy = malloc(len);
    if (!copy) {
        response_error(resp, 500, "out of memory");
        return HANDLER_DONE;
    }
    memcpy(copy, openapi_json, len);
    response_body(resp, 200, CONTENT_TYPE_JSON, copy, len);
    return HANDLER_DONE;
}
