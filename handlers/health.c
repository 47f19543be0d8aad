/*
 * health: GET /health, the liveness and readiness answer, with the state of
 * every pool. Later pools add their own object under "pools".
 *
 * This is the endpoint load testers hammer, so its JSON is printed
 * directly rather than built as a jansson tree: every value is a number or
 * a fixed string, so there is nothing to escape, and it saves a third of
 * the service's own cost per request (see bench/).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../server/budget.h"
#include "../server/clock.h"
#include "../server/http.h"
#include "../server/loop.h"
#include "../server/pool.h"
#include "../server/spawner.h"
#include "../server/text.h"
#include "../server/tpool.h"
#include "handlers.h"

#define HEALTH_BODY_MAX 4096

/*
 * The body's parts are inlined into health_handle(), so that its struct
 * text never leaves the function and lives in registers (see text.h):
 * GCC kept these as calls by itself, and the text in memory.
 */
#define HEALTH_PART static inline __attribute__((always_inline)) void

HEALTH_PART field(struct text *t, const char *name, uint64_t value);
HEALTH_PART process_pool(struct text *t, struct pool *pool);
HEALTH_PART thread_pool(struct text *t, struct tpool *tpool);
HEALTH_PART event_loop(struct text *t, struct loop *loop);
HEALTH_PART spawn_lanes(struct text *t, struct spawner *spawner);
HEALTH_PART budgets(struct text *t, struct budget *budget);

enum handler_result health_handle(struct request *req, struct response *resp,
                                  void *ctx)
{
    const struct app *app = ctx;

    if (handlers_refuse_query(req, resp))
        return HANDLER_DONE;

    struct http_stats hs = {0};
    if (app->http)
        http_stats(app->http, &hs);

    char buf[HEALTH_BODY_MAX];
    struct text t;
    text_init(&t, buf, sizeof(buf));
    text_str(&t, "{\"status\":\"ok\",\"version\":\"" CONLAB_VERSION
                 "\",\"uptime_s\":");
    text_milli(&t, (clock_now_ns() - app->started_ns) / 1000000u);
    text_str(&t, ",\"cores\":");
    text_u64(&t, (uint64_t)app->cores);
    text_str(&t, ",\"pools\":{\"http\":{");
    field(&t, "configured", (uint64_t)app->cfg->threads);
    field(&t, "alive", (uint64_t)app->cfg->threads);
    field(&t, "connections", hs.connections);
    field(&t, "in_flight", hs.in_flight);
    field(&t, "completed", hs.completed);
    t.len--; /* the last field's comma */
    text_char(&t, '}');
    if (app->pool)
        process_pool(&t, app->pool);
    if (app->tpool)
        thread_pool(&t, app->tpool);
    if (app->loop)
        event_loop(&t, app->loop);
    if (app->spawner)
        spawn_lanes(&t, app->spawner);
    text_char(&t, '}');
    budgets(&t, app->budget);
    text_char(&t, '}');

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
HEALTH_PART field(struct text *t, const char *name, uint64_t value)
{
    text_char(t, '"');
    text_str(t, name);
    text_str(t, "\":");
    text_u64(t, value);
    text_char(t, ',');
}

/* ,"process":{...} with the worker pids, for tests and the dashboard. */
HEALTH_PART process_pool(struct text *t, struct pool *pool)
{
    struct pool_stats ps;
    pool_stats(pool, &ps);
    text_str(t, ",\"process\":{");
    field(t, "configured", (uint64_t)ps.configured);
    field(t, "alive", (uint64_t)ps.alive);
    field(t, "busy", (uint64_t)ps.busy);
    field(t, "queued", (uint64_t)ps.queued);
    field(t, "completed", ps.completed);
    text_str(t, "\"restarts\":{");
    field(t, "crash", ps.restarts.crash);
    field(t, "timeout", ps.restarts.timeout);
    field(t, "recycle", ps.restarts.recycle);
    t->len--;
    text_str(t, "},\"pids\":[");
    bool first = true;
    for (int i = 0; i < ps.configured; i++) {
        if (ps.pids[i] <= 0)
            continue;
        if (!first)
            text_char(t, ',');
        text_u64(t, (uint64_t)ps.pids[i]);
        first = false;
    }
    text_str(t, "]}");
}

/* ,"threads":{...}: the demo thread pool. */
HEALTH_PART thread_pool(struct text *t, struct tpool *tpool)
{
    struct tpool_stats ts;
    tpool_stats(tpool, &ts);
    text_str(t, ",\"threads\":{");
    field(t, "configured", (uint64_t)ts.configured);
    field(t, "alive", (uint64_t)ts.configured);
    field(t, "busy", (uint64_t)ts.busy);
    field(t, "queued", (uint64_t)ts.queued);
    field(t, "completed", ts.completed);
    t->len--;
    text_char(t, '}');
}

/* ,"loop":{...}: timers and transfers in flight and completed. */
HEALTH_PART event_loop(struct text *t, struct loop *loop)
{
    struct loop_stats ls;
    loop_stats(loop, &ls);
    text_str(t, ",\"loop\":{");
    field(t, "timers", ls.timers);
    field(t, "transfers", ls.transfers);
    field(t, "timers_fired", ls.timers_fired);
    field(t, "transfers_done", ls.transfers_done);
    t->len--;
    text_char(t, '}');
}

/* ,"spawn":{...}: spawn mode's processes, live and by outcome. */
HEALTH_PART spawn_lanes(struct text *t, struct spawner *spawner)
{
    struct spawner_stats ss;
    spawner_stats(spawner, &ss);
    text_str(t, ",\"spawn\":{");
    field(t, "limit", (uint64_t)ss.limit);
    field(t, "live", (uint64_t)ss.live);
    field(t, "held", (uint64_t)ss.held);
    field(t, "spawned", ss.spawned);
    field(t, "ok", ss.ok);
    field(t, "crashed", ss.crashed);
    field(t, "timeout", ss.timeout);
    field(t, "cancelled", ss.cancelled);
    field(t, "failed", ss.failed);
    t->len--;
    text_char(t, '}');
}

/* ,"budgets":{"tasks":{"used":N,"limit":M,"client_limit":C},...},
 * "clients":K: what admission holds, against its limits. */
HEALTH_PART budgets(struct text *t, struct budget *budget)
{
    struct budget_usage u;
    budget_stats(budget, &u);
    text_str(t, ",\"budgets\":{");
    for (int k = 0; k < BUDGET_KINDS; k++) {
        text_str(t, k ? ",\"" : "\"");
        text_str(t, budget_names[k]);
        text_str(t, "\":{");
        field(t, "used", u.used[k]);
        field(t, "limit", u.limit[k]);
        field(t, "client_limit", u.client_limit[k]);
        t->len--;
        text_char(t, '}');
    }
    text_str(t, "},\"clients\":");
    text_u64(t, u.clients);
}
