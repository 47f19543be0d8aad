/*
 * compare: GET /run/compare, one demo in each of its modes, one after
 * another, answered as one table: per mode the wall time, the speedup
 * against sequential, whether the result agrees with sequential's, and the
 * run's whole body (timeline included).
 *
 * Every run is prepared before the first one starts, so a bad parameter is
 * a 400 before any work, and the total budget is checked on the sum of the
 * runs' estimates. The runs are chained through their done hook: each
 * records its body and launches the next on whatever thread finished it;
 * the last one answers. A failed mode stops the comparison with its error.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "../server/clock.h"
#include "../server/http.h"
#include "../server/params.h"
#include "handlers.h"
#include "run.h"

#define BUDGET_MS 30000.0

struct compare {
    struct app *app;
    struct request *req;
    const struct demo *demo;
    size_t n_runs, next;
    struct run *runs[RUN_MODES]; /* prepared, not yet launched */
    json_t *table;               /* the bodies of the runs done */
    json_t *reference;           /* sequential's result */
    double reference_ms;
    double estimate_ms;
};

static void free_compare(struct compare *c)
{
    for (size_t i = 0; i < c->n_runs; i++) {
        if (c->runs[i])
            run_discard(c->runs[i]);
    }
    json_decref(c->table);
    json_decref(c->reference);
    free(c);
}

static void answer(struct compare *c, struct response *resp)
{
    response_header(resp, "Cache-Control", "no-store");
    http_resume(c->req, resp);
    free_compare(c);
}

static void answer_error(struct compare *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void answer_error(struct compare *c, int status, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);

    struct response resp;
    response_init(&resp);
    response_error(&resp, status, "%s", message);
    answer(c, &resp);
}

static void answer_table(struct compare *c)
{
    json_t *modes = json_array();
    json_t *differing = json_array();
    for (size_t i = 0; i < json_array_size(c->table); i++) {
        json_t *run = json_array_get(c->table, i);
        json_t *mode = json_object_get(run, "mode");
        json_array_append(modes, mode);
        if (!json_is_true(json_object_get(run, "same_result")))
            json_array_append(differing, mode);
    }
    json_t *first = json_array_get(c->table, 0);
    json_t *body =
        json_pack("{s:s, s:O, s:i, s:o, s:f, s:f, s:f, s:b, s:o, s:O}", "demo",
                  c->demo->name, "params", json_object_get(first, "params"),
                  "cores", c->app->cores, "modes", modes, "wall_ms",
                  clock_ms_between(c->req->accepted_ns, clock_now_ns()),
                  "estimate_ms", c->estimate_ms, "budget_ms", BUDGET_MS,
                  "results_agree", json_array_size(differing) == 0,
                  "differing_modes", differing, "runs", c->table);

    struct response resp;
    response_init(&resp);
    if (body)
        response_json(&resp, 200, body);
    else
        response_error(&resp, 500, "out of memory");
    answer(c, &resp);
}

/* Whether result agrees with the reference on the demo's outcome fields. */
static bool same_result(const struct compare *c, json_t *result)
{
    for (const char *const *k = c->demo->outcome; *k; k++) {
        if (!json_equal(json_object_get(result, *k),
                        json_object_get(c->reference, *k)))
            return false;
    }
    return true;
}

static void launch_next(struct compare *c)
{
    struct run *run = c->runs[c->next];
    c->runs[c->next] = NULL;
    run->origin_ns = clock_now_ns();
    run_launch(run);
}

/* A run's done hook, on the thread that finished it. */
static void on_run_done(int status, const char *message, json_t *body,
                        void *arg)
{
    struct compare *c = arg;
    const char *mode = run_mode_names[c->demo->modes[c->next]];

    if (status != 200) {
        answer_error(c, status, "compare stopped at mode %s: %s", mode,
                     message);
        return;
    }
    json_t *result = json_object_get(body, "result");
    double wall_ms = json_real_value(json_object_get(body, "wall_ms"));
    if (c->next == 0) {
        c->reference = json_incref(result);
        c->reference_ms = wall_ms;
    }
    json_object_set_new(body, "speedup",
                        json_real(wall_ms > 0 ? c->reference_ms / wall_ms : 0));
    json_object_set_new(body, "same_result",
                        json_boolean(same_result(c, result)));
    if (json_array_append_new(c->table, body) < 0) {
        answer_error(c, 500, "out of memory");
        return;
    }

    c->next++;
    if (c->next == c->n_runs)
        answer_table(c);
    else if (http_client_gone(c->req))
        answer_error(c, 499, "the client went away");
    else
        launch_next(c); /* may answer and free c at once: last use */
}

enum handler_result compare_handle(struct request *req, struct response *resp,
                                   void *ctx)
{
    struct app *app = ctx;
    struct params p;
    int which;

    const char *names[RUN_DEMOS];
    for (size_t i = 0; i < RUN_DEMOS; i++)
        names[i] = run_demos[i]->name;
    if (params_parse(&p, req->query) < 0 ||
        params_enum(&p, "demo", names, RUN_DEMOS, -1, &which) < 0)
        return handlers_reject_params(&p, resp);
    if (which < 0) {
        params_cleanup(&p);
        response_error(resp, 400,
                       "parameter 'demo' is required: one of prime, square, "
                       "sleep, fetch");
        return HANDLER_DONE;
    }

    struct compare *c = calloc(1, sizeof(*c));
    if (!c || !(c->table = json_array())) {
        free(c);
        params_cleanup(&p);
        response_error(resp, 500, "out of memory");
        return HANDLER_DONE;
    }
    c->app = app;
    c->req = req;
    c->demo = run_demos[which];
    for (size_t i = 0; i < c->demo->n_modes; i++) {
        struct run *run =
            c->demo->prepare(app, req, &p, c->demo->modes[i], resp);
        if (!run) {
            free_compare(c);
            if (p.failed)
                return handlers_reject_params(&p, resp);
            params_cleanup(&p);
            return HANDLER_DONE;
        }
        run->done = on_run_done;
        run->done_arg = c;
        c->runs[c->n_runs++] = run;
        c->estimate_ms += c->demo->estimate_ms(run);
    }
    params_cleanup(&p);

    if (c->estimate_ms > BUDGET_MS) {
        response_error(resp, 400,
                       "compare runs %s in %zu modes one after another, "
                       "about %.0f ms in all here; the budget is %.0f ms: "
                       "lower %s",
                       c->demo->name, c->n_runs, c->estimate_ms, BUDGET_MS,
                       c->demo->shrink);
        free_compare(c);
        return HANDLER_DONE;
    }

    http_suspend(req);
    launch_next(c);
    return HANDLER_ASYNC;
}
