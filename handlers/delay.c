/*
 * delay: GET /delay?ms=N, an httpbin-style slow target. The request is
 * suspended and an event-loop timer wakes it, so thousands of waiting
 * requests hold no thread. It is the default target of /run/fetch, which
 * keeps every demo working offline.
 *
 * Its timer is admitted like a run's (one timer, charged to the client or
 * to whom a self-fetch's token names), and a client that leaves has its
 * timer removed at once. The answer is built and the delay freed on a
 * request thread (http_wake); a removal on its way to the loop thread
 * holds a second reference, so the last of the two frees it.
 */
#include <errno.h>
#include <stdatomic.h>
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
    struct loop_call remove; /* a client that left: off the loop */
    struct loop *loop;
    struct request *req;
    uint64_t ms;
    int status;
    struct budget_claim claim;
    _Atomic int refs;
};

static void unref(struct delay *d)
{
    if (atomic_fetch_sub(&d->refs, 1) == 1) {
        budget_release(&d->claim);
        free(d);
    }
}

/* A request thread: the timer fired, was removed, or the loop stopped. */
static enum handler_result on_wake(struct request *req, struct response *resp,
                                   void *arg)
{
    struct delay *d = arg;
    if (d->status == 0) {
        double waited = clock_ms_between(req->accepted_ns, clock_now_ns());
        response_json(resp, 200,
                      json_pack("{s:I, s:f}", "delay_ms", (json_int_t)d->ms,
                                "waited_ms", waited));
        response_header(resp, "Cache-Control", "no-store");
    } else if (d->status == -ECANCELED) {
        response_error(resp, 499, "the client went away");
    } else if (d->status == -EAGAIN) {
        response_error(resp, 503, "too many timers in flight; retry shortly");
    } else {
        response_error(resp, 503, "the service is shutting down");
    }
    unref(d);
    return HANDLER_DONE;
}

/* Loop thread. */
static void on_timer(struct loop_timer *t, int status)
{
    struct delay *d = container_of(t, struct delay, timer);
    d->status = status;
    http_wake(d->req, on_wake, d);
}

/* Loop thread: the removal asked for by on_gone(). */
static void remove_timer(struct loop *loop, struct loop_call *call)
{
    struct delay *d = container_of(call, struct delay, remove);
    loop_timer_remove(loop, &d->timer); /* nothing if it fired already */
    unref(d);
}

/* Main thread (http_sweep): the request is still suspended, d alive. */
static void on_gone(void *arg)
{
    struct delay *d = arg;
    atomic_fetch_add(&d->refs, 1);
    d->remove.fn = remove_timer;
    if (loop_call(d->loop, &d->remove) < 0)
        unref(d); /* stopping: the loop ends the timer itself */
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
        response_error(resp, 503, "the %s budget is busy; retry shortly",
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
    d->loop = app->loop;
    d->req = req;
    d->ms = (uint64_t)ms;
    atomic_init(&d->refs, 1);
    d->timer.due_ns = req->accepted_ns + d->ms * 1000000u;
    d->timer.fire = on_timer;

    struct loop_timer *one = &d->timer;
    http_suspend(req);
    http_watch(req, on_gone, d);
    int rc = loop_add_timers(app->loop, &one, 1);
    if (rc < 0) {
        /* Answered (and d freed) on a request thread, like the rest. */
        d->status = rc;
        http_wake(req, on_wake, d);
    }
    return HANDLER_ASYNC;
}
