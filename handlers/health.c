/*
 * health: GET /health, the liveness and readiness answer, with the state of
 * every pool. Later pools add their own object under "pools".
 */
#include <jansson.h>

#include "../server/clock.h"
#include "../server/http.h"
#include "../server/params.h"
#include "../server/pool.h"
#include "../server/tpool.h"
#include "handlers.h"

enum handler_result health_handle(struct request *req, struct response *resp,
                                  void *ctx)
{
    const struct app *app = ctx;
    struct params params;

    if (params_parse(&params, req->query) < 0 || params_finish(&params) < 0) {
        response_error(resp, 400, "%s", params_error(&params));
        params_cleanup(&params);
        return HANDLER_DONE;
    }
    params_cleanup(&params);

    struct http_stats hs = {0};
    if (app->http)
        http_stats(app->http, &hs);
    double uptime_s =
        (double)((clock_now_ns() - app->started_ns) / 1000000u) / 1e3;

    json_t *body = json_pack(
        "{s:s, s:s, s:f, s:{s:{s:i, s:i, s:I, s:I, s:I}}}", "status", "ok",
        "version", CONLAB_VERSION, "uptime_s", uptime_s, "pools", "http",
        "configured", app->cfg->threads, "alive", app->cfg->threads,
        "connections", (json_int_t)hs.connections, "in_flight",
        (json_int_t)hs.in_flight, "completed", (json_int_t)hs.completed);
    json_t *pools = json_object_get(body, "pools");
    if (pools && app->pool) {
        struct pool_stats ps;
        pool_stats(app->pool, &ps);
        json_t *pids = json_array();
        for (int i = 0; i < ps.configured; i++) {
            if (ps.pids[i] > 0)
                json_array_append_new(pids, json_integer(ps.pids[i]));
        }
        json_object_set_new(
            pools, "process",
            json_pack("{s:i, s:i, s:i, s:i, s:I, s:{s:I, s:I, s:I}, s:o}",
                      "configured", ps.configured, "alive", ps.alive, "busy",
                      ps.busy, "queued", ps.queued, "completed",
                      (json_int_t)ps.completed, "restarts", "crash",
                      (json_int_t)ps.restarts.crash, "timeout",
                      (json_int_t)ps.restarts.timeout, "recycle",
                      (json_int_t)ps.restarts.recycle, "pids", pids));
    }
    if (pools && app->tpool) {
        struct tpool_stats ts;
        tpool_stats(app->tpool, &ts);
        json_object_set_new(
            pools, "threads",
            json_pack("{s:i, s:i, s:i, s:i, s:I}", "configured",
                      ts.configured, "alive", ts.configured, "busy", ts.busy,
                      "queued", ts.queued, "completed",
                      (json_int_t)ts.completed));
    }
    response_json(resp, 200, body);
    response_header(resp, "Cache-Control", "no-store");
    return HANDLER_DONE;
}
