/*
 * health: GET /health, the liveness and readiness answer, with the state of
 * every pool. Later pools add their own object under "pools".
 *
 * This is the endpoint load testers hammer, so its JSON is printed
 * directly rather than built as a jansson tree: every value is a number or
 * a fixed string, so there is nothing to escape, and it saves a third of
 * the service's own cost per request (see bench/).
 *
 * Most of the body (the process and thread pools, the loop, the budgets)
 * changes only while demos run, so each request thread keeps the text of
 * that part with the figures it was printed from, and prints it again only
 * when a figure differs: a request still reads every figure (exact, never
 * stale), but compares them instead of printing them, which was 4,000 of
 * the 4,650 instructions of the handler (callgrind) and a tenth of the
 * service's CPU per /health under wrk. The head (uptime, the http pool)
 * changes with every request and is printed each time.
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

/* Up to "http":{...}: at most ~250 bytes. */
#define HEALTH_HEAD_MAX 320
#define HEALTH_TAIL_MAX 4096 /* the rest: with 256 workers' pids, ~3 KiB */

/* What the tail is printed from; compared as bytes, so zeroed first. */
struct tail_figures {
    const struct app *app;
    unsigned present; /* TAIL_POOL | TAIL_TPOOL | TAIL_LOOP | TAIL_SPAWN */
    struct pool_stats ps;
    struct tpool_stats ts;
    struct loop_stats ls;
    struct spawner_stats ss;
    struct budget_usage u;
};

#define TAIL_POOL  1u
#define TAIL_TPOOL 2u
#define TAIL_LOOP  4u
#define TAIL_SPAWN 8u

/* The change counts of the figures' owners (0 for one that is absent). */
struct tail_changes {
    uint64_t pool, tpool, loop, spawner, budget;
};

/* One request thread's last tail and what it was printed from. */
struct tail_cache {
    bool valid;
    struct tail_changes changes; /* read before its figures */
    struct tail_figures figures;
    size_t len;
    char text[HEALTH_TAIL_MAX];
};

static _Thread_local struct tail_cache my_tail;

/*
 * The body's parts are inlined into health_handle(), so that its struct
 * text never leaves the function and lives in registers (see text.h):
 * GCC kept these as calls by itself, and the text in memory.
 */
#define HEALTH_PART static inline __attribute__((always_inline)) void

HEALTH_PART field(struct text *t, const char *name, uint64_t value);
HEALTH_PART process_pool(struct text *t, const struct pool_stats *ps);
HEALTH_PART thread_pool(struct text *t, const struct tpool_stats *ts);
HEALTH_PART event_loop(struct text *t, const struct loop_stats *ls);
HEALTH_PART spawn_lanes(struct text *t, const struct spawner_stats *ss);
HEALTH_PART budgets(struct text *t, const struct budget_usage *u);
static const struct tail_cache *tail(const struct app *app);

/*
 * The head's figures that are set at start-up (from the cores to the http
 * pool's size), printed once per thread, with the figures they were
 * printed from: printing them each time was 135 of the 500 instructions
 * of the head (callgrind).
 */
struct middle {
    int cores, threads;
    size_t len;
    char text[128];
};

static const struct middle *middle(const struct app *app);

enum handler_result health_handle(struct request *req, struct response *resp,
                                  void *ctx)
{
    const struct app *app = ctx;

    if (handlers_refuse_query(req, resp))
        return HANDLER_DONE;

    struct http_stats hs = {0};
    if (app->http)
        http_stats(app->http, &hs);

    const struct tail_cache *c = tail(app);
    if (!c) {
        response_error(resp, 500, "cannot build the health report");
        return HANDLER_DONE;
    }
    /* The head is printed on the stack and the body allocated at its
     * exact size: a buffer sized for the worst case would leave glibc's
     * per-thread cache (1,032 bytes) and cost a slow allocation (and a
     * consolidation of the arena) per request. */
    char head[HEALTH_HEAD_MAX];
    struct text t;
    text_init(&t, head, sizeof(head));
    text_str(&t, "{\"status\":\"ok\",\"version\":\"" CONLAB_VERSION
                 "\",\"uptime_s\":");
    text_milli(&t, (clock_now_ns() - app->started_ns) / 1000000u);
    const struct middle *m = middle(app);
    text_mem(&t, m->text, m->len);
    field(&t, "connections", hs.connections);
    field(&t, "in_flight", hs.in_flight);
    field(&t, "completed", hs.completed);
    t.len--; /* the last field's comma */
    text_char(&t, '}');
    char *body = text_overflowed(&t) ? NULL : malloc(t.len + c->len);
    if (!body) {
        response_error(resp, 500, "cannot build the health report");
        return HANDLER_DONE;
    }
    memcpy(body, head, t.len);
    memcpy(body + t.len, c->text, c->len);
    resp->status = 200;
    resp->content_type = CONTENT_TYPE_JSON;
    resp->body = body;
    resp->body_len = t.len + c->len;
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
HEALTH_PART process_pool(struct text *t, const struct pool_stats *p)
{
    const struct pool_stats ps = *p;
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
HEALTH_PART thread_pool(struct text *t, const struct tpool_stats *s)
{
    const struct tpool_stats ts = *s;
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
HEALTH_PART event_loop(struct text *t, const struct loop_stats *s)
{
    const struct loop_stats ls = *s;
    text_str(t, ",\"loop\":{");
    field(t, "timers", ls.timers);
    field(t, "transfers", ls.transfers);
    field(t, "timers_fired", ls.timers_fired);
    field(t, "transfers_done", ls.transfers_done);
    t->len--;
    text_char(t, '}');
}

/* ,"spawn":{...}: spawn mode's processes, live and by outcome. */
HEALTH_PART spawn_lanes(struct text *t, const struct spawner_stats *s)
{
    const struct spawner_stats ss = *s;
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
HEALTH_PART budgets(struct text *t, const struct budget_usage *s)
{
    const struct budget_usage u = *s;
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

/* ,"cores":N,"pools":{"http":{"configured":N,"alive":N, for app. */
static const struct middle *middle(const struct app *app)
{
    static _Thread_local struct middle m = {.cores = -1};
    if (m.cores == app->cores && m.threads == app->cfg->threads)
        return &m;
    struct text t;
    text_init(&t, m.text, sizeof(m.text));
    text_str(&t, ",\"cores\":");
    text_u64(&t, (uint64_t)app->cores);
    text_str(&t, ",\"pools\":{\"http\":{");
    field(&t, "configured", (uint64_t)app->cfg->threads);
    field(&t, "alive", (uint64_t)app->cfg->threads);
    m.len = t.len; /* at most 80 bytes: three ints and the names */
    m.cores = app->cores;
    m.threads = app->cfg->threads;
    return &m;
}

/*
 * This thread's tail for app's figures as they are now: the cached text
 * when every figure is the same as when it was printed, else printed
 * afresh. NULL when it does not fit HEALTH_TAIL_MAX.
 */
static const struct tail_cache *tail(const struct app *app)
{
    struct tail_cache *c = &my_tail;
    struct tail_figures now;

    /* Nothing released a lock the figures are kept under since they were
     * read: they are the same, and so is the text (no lock taken, and
     * none of the figures copied; the owners count before they release). */
    struct tail_changes changes = {
        .pool = app->pool ? pool_changes(app->pool) : 0,
        .tpool = app->tpool ? tpool_changes(app->tpool) : 0,
        .loop = app->loop ? loop_changes(app->loop) : 0,
        .spawner = app->spawner ? spawner_changes(app->spawner) : 0,
        .budget = budget_changes(app->budget),
    };
    if (c->valid && memcmp(&c->changes, &changes, sizeof(changes)) == 0)
        return c;
    c->changes = changes;

    memset(&now, 0, sizeof(now));
    now.app = app;
    if (app->pool) {
        pool_stats(app->pool, &now.ps);
        now.present |= TAIL_POOL;
    }
    if (app->tpool) {
        tpool_stats(app->tpool, &now.ts);
        now.present |= TAIL_TPOOL;
    }
    if (app->loop) {
        loop_stats(app->loop, &now.ls);
        now.present |= TAIL_LOOP;
    }
    if (app->spawner) {
        spawner_stats(app->spawner, &now.ss);
        now.present |= TAIL_SPAWN;
    }
    budget_stats(app->budget, &now.u);
    if (c->valid && memcmp(&c->figures, &now, sizeof(now)) == 0)
        return c;

    struct text t;
    text_init(&t, c->text, sizeof(c->text));
    if (now.present & TAIL_POOL)
        process_pool(&t, &now.ps);
    if (now.present & TAIL_TPOOL)
        thread_pool(&t, &now.ts);
    if (now.present & TAIL_LOOP)
        event_loop(&t, &now.ls);
    if (now.present & TAIL_SPAWN)
        spawn_lanes(&t, &now.ss);
    text_char(&t, '}');
    budgets(&t, &now.u);
    text_char(&t, '}');
    c->valid = !text_overflowed(&t);
    c->len = t.len;
    c->figures = now;
    return c->valid ? c : NULL;
}
