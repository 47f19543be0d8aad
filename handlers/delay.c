/*
 * delay: GET /delay?ms=N, an httpbin-style slow target. The request is
 * suspended and an event-loop timer resumes it, so thousands of waiting
 * requests hold no thread. It is the default target of /run/fetch, which
 * keeps every demo working offline.
 */
#include <errno.h>
#include <stdlib.h>

#include "../server/budget.h"
#include "../server/clock.h"
#include "../server/container.h"
#include "../server/http.h"
#include "../server/loop.h"
#include "../server/params.h"
#include "handlers.h"

#define DELAY_MS_MAX 10000

struct delay {
    struct loop_timer timer;
    struct request *req;
    uint64_t ms;
    struct budget_claim claim;
};

static void on_timer(struct loop_timer *t, int status)
{
    struct delay *d = container_of(t, struct delay, timer);
    struct response resp;
    response_init(&resp);
    if (status != 0) {
        response_error(&resp, 503, "the service is shutting down");
    } else {
        double waited = clock_ms_between(d->req->accepted_ns, clock_now_ns());
        response_json(&resp, 200,
                      json_pack("{s:I, s:f}", "delay_ms", (json_int_t)d->ms,
                                "waited_ms", waited));
        response_header(&resp, "Cache-Control", "no-store");
    }
    struct request *req = d->req;
    budget_release(&d->claim);
    free(d);
    http_resume(req, &resp);
}

enum handler_result delay_handle(struct request *req, struct response *resp,
                                 void *ctx)
{
    struct app *app = ctx;
    struct params p;
    int64_t ms;

    if (params_parse(&p, req->query) < 0 ||
        params_int(&p, "ms", 0, DELAY_MS_MAX, 0, &ms) < 0 ||
        params_finish(&p) < 0) {
        return handlers_reject_params(&p, resp);
    }
    params_cleanup(&p);

    /* One timer, charged to the client (or to whom a self-fetch of
     * /run/fetch charges it). */
    struct budget_client client = {{0}};
    const char *token = request_header(req, "X-Conlab-Charge");
    if (!(token && budget_token_client(app->budget, token, &client)) &&
        req->client)
        budget_client_from_sockaddr(req->client, &client);
    struct budget_cost cost = {{0}};
    cost.amount[BUDGET_TIMERS] = 1;
    cost.amount[BUDGET_BYTES] = sizeof(struct delay);
    struct budget_claim claim;
    enum budget_kind which;
    if (budget_acquire(app->budget, &client, &cost, &claim, &which) < 0) {
        response_error(resp, 503,
                       "the %s budget is busy; retry shortly",
                       budget_names[which]);
        return HANDLER_DONE;
    }
    struct delay *d = calloc(1, sizeof(*d));
    if (!d) {
        budget_release(&claim);
        response_error(resp, 500, "out of memory");
        return HANDLER_DONE;
    }
    d->claim = claim;
    d->req = req;
    d->ms = (uint64_t)ms;
    d->timer.due_ns = req->accepted_ns + d->ms * 1000000u;
    d->timer.fire = on_timer;

    struct loop_timer *one = &d->timer;
    http_suspend(req);
    int rc = loop_add_timers(app->loop, &one, 1);
    if (rc < 0) {
        struct response err;
        response_init(&err);
        response_error(&err, 503,
                       rc == -EAGAIN ? "too many timers in flight; retry "
                                       "shortly"
                                     : "the service is shutting down");
        budget_release(&d->claim);
        free(d);
        http_resume(req, &err);
    }
    return HANDLER_ASYNC;
}
