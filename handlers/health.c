/*
 * health: GET /health, the liveness and readiness answer, with the state of
 * every pool. Later pools add their own object under "pools".
 *
 * This is the endpoint load testers hammer, so its JSON is printed
 * directly rather than built as a jansson tree: every value is a number or
 * a fixed string, so there is nothing to escape, and it saves a third of
 * the service's own cost per request (see bench/).
 */
#include <stdlib.h>
#include <string.h>

#include "../server/clock.h"
#include "../server/http.h"
#include "../server/params.h"
#include "../server/text.h"
#include "handlers.h"

#define HEALTH_BODY_MAX 4096

static void field(struct text *t, const char *name, uint64_t value);

enum handler_result health_handle(struct request *req, struct response *resp,
                                  void *ctx)
{
    const struct app *app = ctx;
    struct params params;

    if (req->query[0] != '\0') {
        /* No parameters: the parser words the refusal. */
        params_parse(&params, req->query);
        params_finish(&params);
        response_error(resp, 400, "%s", params_error(&params));
        params_cleanup(&params);
        return HANDLER_DONE;
    }

    struct http_stats hs = {0};
    if (app->http)
        http_stats(app->http, &hs);

    char buf[HEALTH_BODY_MAX];
    struct text t;
    text_init(&t, buf, sizeof(buf));
    text_str(&t, "{\"status\":\"ok\",\"version\":\"" CONLAB_VERSION
                 "\",\"uptime_s\":");
    text_milli(&t, (clock_now_ns() - app->started_ns) / 1000000u);
    text_str(&t, ",\"pools\":{\"http\":{");
    field(&t, "configured", (uint64_t)app->cfg->threads);
    field(&t, "alive", (uint64_t)app->cfg->threads);
    field(&t, "connections", hs.connections);
    field(&t, "in_flight", hs.in_flight);
    field(&t, "completed", hs.completed);
    t.len--; /* the last field's comma */
    text_str(&t, "}}}");

    char *body = malloc(t.len + 1);
    if (!body || text_overflowed(&t)) {
        free(body);
        response_error(resp, 500, "cannot build the health report");
        return HANDLER_DONE;
    }
    memcpy(body, buf, t.len + 1);
    resp->status = 200;
    resp->content_type = CONTENT_TYPE_JSON;
    resp->body = body;
    resp->body_len = t.len;
    response_header(resp, "Cache-Control", "no-store");
    return HANDLER_DONE;
}

/* "name":value, */
static void field(struct text *t, const char *name, uint64_t value)
{
    text_char(t, '"');
    text_str(t, name);
    text_str(t, "\":");
    text_u64(t, value);
    text_char(t, ',');
}
