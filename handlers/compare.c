/*
 * compare: GET /run/compare, one demo in each of its modes, one after
 * another, answered as one table: per mode the wall time, the speedup
 * against sequential, whether the result agrees with sequential's, and the
 * run's whole body (timeline included).
 *
 * The parameters are checked for every mode before the first run (a bad
 * one is a 400 before any work), the total budget on the sum of the modes'
 * estimates, and admission on the largest of their costs (one run holds
 * it at a time). Each run ends on a request thread (run.h), where its
 * body is written into the table and the next mode is launched; the last
 * one answers. A failed mode stops the comparison with its error.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../server/clock.h"
#include "../server/http.h"
#include "../server/jsonr.h"
#include "../server/params.h"
#include "handlers.h"
#include "live.h"
#include "run.h"

#define BUDGET_MS 30000.0

struct compare {
    const struct demo *d;
    size_t next;
    struct jsonw table; /* the runs' bodies, an open array */
    json_t *reference;  /* sequential's outcome fields */
    double reference_ms;
    double estimate_ms;
    double mode_estimate_ms[ENGINE_MODES]; /* what each mode was budgeted */
    bool differs[ENGINE_MODES];
};

static void free_compare(void *arg)
{
    struct compare *c = arg;
    jsonw_cleanup(&c->table);
    json_decref(c->reference);
    free(c);
}

/* The run's "result" object, parsed, for comparing the outcome fields. */
static json_t *result_of(struct run_req *rr, const struct demo *d)
{
    struct jsonw w;
    jsonw_init(&w, RUN_BODY_MAX);
    jsonw_object(&w);
    d->write_result(&w, engine_run_state(run_req_run(rr)), run_req_run(rr));
    jsonw_end(&w);
    size_t len;
    char *text = jsonw_take(&w, &len);
    json_t *obj = text ? json_loadb(text, len, 0, NULL) : NULL;
    free(text);
    return obj;
}

static bool same_outcome(const struct demo *d, json_t *a, json_t *b)
{
    for (const char *const *k = d->outcome; *k; k++) {
        if (!json_equal(json_object_get(a, *k), json_object_get(b, *k)))
            return false;
    }
    return true;
}

static void answer_table(struct run_req *rr, struct compare *c,
                         struct response *resp)
{
    const struct demo *d = c->d;
    struct request *req = run_req_request(rr);
    struct jsonw w;
    jsonw_end(&c->table);
    size_t table_len;
    char *table = jsonw_take(&c->table, &table_len);

    jsonw_init(&w, RUN_BODY_MAX);
    jsonw_object(&w);
    jsonw_key(&w, "demo");
    jsonw_str(&w, d->name);
    jsonw_key(&w, "params");
    demo_write_params(&w, d, run_req_args(rr));
    jsonw_key(&w, "cores");
    jsonw_int(&w, run_req_app(rr)->cores);
    jsonw_key(&w, "modes");
    jsonw_array(&w);
    for (size_t i = 0; i < d->n_modes; i++)
        jsonw_str(&w, engine_mode_names[d->modes[i]]);
    jsonw_end(&w);
    jsonw_key(&w, "wall_ms");
    jsonw_ms(&w, clock_ms_between(req->accepted_ns, clock_now_ns()));
    jsonw_key(&w, "estimate_ms");
    jsonw_ms(&w, c->estimate_ms);
    jsonw_key(&w, "budget_ms");
    jsonw_ms(&w, BUDGET_MS);
    bool agree = true;
    for (size_t i = 0; i < d->n_modes; i++)
        agree = agree && !c->differs[i];
    jsonw_key(&w, "results_agree");
    jsonw_bool(&w, agree);
    jsonw_key(&w, "differing_modes");
    jsonw_array(&w);
    for (size_t i = 0; i < d->n_modes; i++) {
        if (c->differs[i])
            jsonw_str(&w, engine_mode_names[d->modes[i]]);
    }
    jsonw_end(&w);
    jsonw_key(&w, "runs");
    if (table)
        jsonw_raw(&w, table, table_len);
    else
        jsonw_null(&w);
    jsonw_end(&w);
    free(table);

    size_t len;
    char *body = jsonw_take(&w, &len);
    if (!body) {
        response_error(resp, 500, "compare: the answer could not be built");
        return;
    }
    response_body(resp, 200, CONTENT_TYPE_JSON, body, len);
    response_header(resp, "Cache-Control", "no-store");
}

/* A request thread: mode c->next ended. */
static enum handler_result on_mode_done(struct run_req *rr, int status,
                                        struct response *resp)
{
    struct compare *c = run_req_extra(rr);
    const struct demo *d = c->d;
    const char *mode = engine_mode_names[d->modes[c->next]];

    if (status != 0) {
        response_error(resp, engine_http_status(status),
                       "compare stopped at mode %s: %s: %s", mode, d->name,
                       engine_run_error(run_req_run(rr)));
        return HANDLER_DONE;
    }
    json_t *result = result_of(rr, d);
    /* As the body states it (to the microsecond), so that the speedup
     * is the ratio of the two figures a reader sees. */
    double wall_ms = round(run_wall_ms(rr) * 1000.0) / 1000.0;
    if (c->next == 0) {
        c->reference = json_incref(result);
        c->reference_ms = wall_ms;
    }
    bool same = result && same_outcome(d, result, c->reference);
    json_decref(result);
    c->differs[c->next] = !same;

    struct jsonw w;
    jsonw_init(&w, RUN_BODY_MAX);
    run_write_body(rr, &w);
    jsonw_key(&w, "speedup");
    jsonw_real(&w, wall_ms > 0 ? c->reference_ms / wall_ms : 0);
    jsonw_key(&w, "same_result");
    jsonw_bool(&w, same);
    jsonw_key(&w, "estimate_ms");
    jsonw_ms(&w, c->mode_estimate_ms[c->next]);
    jsonw_end(&w);
    size_t len;
    char *body = jsonw_take(&w, &len);
    run_finish(rr);
    if (!body) {
        response_error(resp, 500, "compare: the answer could not be built");
        return HANDLER_DONE;
    }
    jsonw_raw(&c->table, body, len);
    free(body);
    if (jsonw_failed(&c->table)) {
        response_error(resp, 500, "compare: the answer could not be built");
        return HANDLER_DONE;
    }

    c->next++;
    if (c->next == d->n_modes) {
        answer_table(rr, c, resp);
        return HANDLER_DONE;
    }
    if (http_client_gone(run_req_request(rr))) {
        response_error(resp, 499, "the client went away");
        return HANDLER_DONE;
    }
    return run_launch(rr, d->modes[c->next], clock_now_ns(), on_mode_done,
                      resp);
}

enum handler_result compare_handle(struct request *req, struct response *resp,
                                   void *ctx)
{
    struct app *app = ctx;
    struct params p;
    const char *names[DEMOS_MAX];
    char list[DEMOS_MAX * 24] = "";
    int which;

    for (size_t i = 0; i < demo_count; i++) {
        names[i] = demo_registry[i]->name;
        size_t used = strlen(list);
        snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "",
                 names[i]);
    }
    struct jsonr_doc doc;
    struct live_opts live;
    if (req->method == HTTP_POST) {
        if (handlers_body_doc(req, &doc, &p, resp) < 0) {
            params_cleanup(&p);
            return HANDLER_DONE;
        }
        if (handlers_json_enum(&doc, &p, "demo", names, demo_count, -1,
                               &which) < 0 ||
            live_parse(req, &p, &doc, &live) < 0)
            return handlers_reject_params(&p, resp);
    } else if (params_parse(&p, req->query) < 0 ||
               params_enum(&p, "demo", names, demo_count, -1, &which) < 0 ||
               live_parse(req, &p, NULL, &live) < 0) {
        return handlers_reject_params(&p, resp);
    }
    if (which < 0) {
        params_cleanup(&p);
        response_error(resp, 400, "parameter 'demo' is required: one of %s",
                       list);
        return HANDLER_DONE;
    }
    const struct demo *d = demo_registry[which];
    struct run_req *rr = run_req_new(app, req, d);
    struct compare *c = calloc(1, sizeof(*c));
    if (!rr || !c) {
        free(c);
        run_req_free(rr);
        params_cleanup(&p);
        response_error(resp, 500, "out of memory");
        return HANDLER_DONE;
    }
    run_req_set_extra(rr, c, free_compare);
    c->d = d;
    jsonw_init(&c->table, RUN_BODY_MAX);
    jsonw_array(&c->table);

    int parsed = req->method == HTTP_POST
                     ? run_parse_json(rr, &doc, &p, DEMO_ALL_MODES, resp)
                     : run_parse(rr, &p, DEMO_ALL_MODES, resp);
    if (parsed < 0) {
        run_req_free(rr);
        return HANDLER_DONE;
    }

    /* Every mode's estimate against the budget; the largest cost. */
    struct budget_cost cost = {{0}};
    if (d->fit_compare)
        d->fit_compare(run_req_args(rr), d, app, BUDGET_MS);
    for (size_t i = 0; i < d->n_modes; i++) {
        struct budget_cost one;
        c->mode_estimate_ms[i] =
            d->estimate_ms(run_req_args(rr), d->modes[i], app);
        c->estimate_ms += c->mode_estimate_ms[i];
        run_cost(d, run_req_args(rr), d->modes[i], app, &one);
        for (int k = 0; k < BUDGET_KINDS; k++) {
            if (one.amount[k] > cost.amount[k])
                cost.amount[k] = one.amount[k];
        }
    }
    if (c->estimate_ms > BUDGET_MS) {
        response_error(resp, 400,
                       "compare runs %s in %zu modes one after another, "
                       "about %.0f ms in all here; the budget is %.0f ms: "
                       "lower %s",
                       d->name, d->n_modes, c->estimate_ms, BUDGET_MS,
                       d->shrink);
        run_req_free(rr);
        return HANDLER_DONE;
    }
    size_t most_tasks = d->n_tasks(run_req_args(rr));
    if (live.form != LIVE_OFF)
        cost.amount[BUDGET_BYTES] += live_bytes(most_tasks);
    if (run_admit(rr, &cost, resp) < 0) {
        run_req_free(rr);
        return HANDLER_DONE;
    }
    if (live.form != LIVE_OFF && live.streamed)
        return live_start(rr, &live, d->modes, d->n_modes, clock_now_ns(),
                          on_mode_done, resp);
    run_req_set_text(rr, live.form == LIVE_TEXT);
    enum handler_result r =
        run_launch(rr, d->modes[0], clock_now_ns(), on_mode_done, resp);
    if (r == HANDLER_DONE)
        run_req_free(rr);
    return r;
}
