/*
 * run: the HTTP side of every demo under /run/: /run/<demo> (one run) and
 * /run/compare (one run per mode, in turn).
 *
 * A request is parsed from the registry's declarations (demo.h), its cost
 * admitted by the budget (budget.h) before anything is allocated, then
 * its run is started on the engine (engine.h) and the request suspended.
 * The engine's callback only wakes the request (http_wake); the answer is
 * built on the request thread from the run's compact records, the run is
 * freed and the claim released there. A client that leaves cancels its
 * run at once (http_watch). Timings are CLOCK_MONOTONIC offsets from the
 * request's arrival (one run) or from each run's start (compare).
 */
#ifndef CONLAB_RUN_H
#define CONLAB_RUN_H

#include <stdbool.h>
#include <stdio.h>

#include "../server/app.h"
#include "../server/request.h"
#include "demo.h"

#define RUN_BODY_MAX     (64u << 20) /* bytes of one answer, at most */
#define RUN_BYTES_ANSWER 160         /* answer bytes per task, budgeted */
#define RUN_BYTES_SLICE  48          /* a gil slice, held and as text */

/* One /run/ request: its claim, its current run, and what it built. */
struct run_req;

/* Route context of /run/<demo>: the app and the demo. */
struct run_route {
    struct app *app;
    const struct demo *demo;
};

/* The handler of GET /run/<demo> (ctx: a struct run_route). */
enum handler_result run_handle(struct request *req, struct response *resp,
                               void *ctx);

/* Writes conlab_demo_runs_total{demo,mode,outcome} (ok or error). */
void run_write_metrics(FILE *out);

/*
 * What a run of d in mode with these arguments holds (tasks, queue slots,
 * timers, transfers, bytes), for admission.
 */
void run_cost(const struct demo *d, const struct demo_args *a,
              enum engine_mode mode, const struct app *app,
              struct budget_cost *out);

/* ---- shared with compare.c ---- */

/*
 * Admits cost for the request's client (or whom its charge token names).
 * On refusal fills resp (503 busy, 400 never fits) and returns it < 0.
 */
int run_admit(struct run_req *rr, const struct budget_cost *cost,
              struct response *resp);

/*
 * Takes the demo's parameters from p for mode (an engine mode, or
 * DEMO_ALL_MODES) into rr, and frees p. Returns 0, or -EINVAL with resp
 * filled (400, or 403 for a fetch target that is not allowed).
 */
struct params;
int run_parse(struct run_req *rr, struct params *p, int mode,
              struct response *resp);

/* run_parse() for a POST's JSON body (see demo_parse_json()). */
struct jsonr_doc;
int run_parse_json(struct run_req *rr, struct jsonr_doc *doc, struct params *p,
                   int mode, struct response *resp);

/*
 * Takes the run-wide `cores` parameter (1 .. the CPUs of the service's
 * affinity, default all) from the query (doc NULL) or a JSON body, into
 * rr, before the demo's own parameters. 0, or -EINVAL with p's message.
 */
int run_parse_cores(struct run_req *rr, struct params *p,
                    struct jsonr_doc *doc);

/* The run's cores, as the answer states it. */
unsigned run_req_cores(const struct run_req *rr);

/* A new request state for d, or NULL without memory. */
struct run_req *run_req_new(struct app *app, struct request *req,
                            const struct demo *d);

/* Releases the claim, the token, the run and the args; frees rr. */
void run_req_free(struct run_req *rr);

/*
 * Prepares the run of mode from rr's args and starts it, the request
 * suspended and watched; when it ends, then(rr, status, resp) runs on a
 * request thread and answers or goes on. Returns HANDLER_ASYNC, or
 * HANDLER_DONE with resp filled (out of memory).
 */
typedef enum handler_result run_then_fn(struct run_req *rr, int status,
                                        struct response *resp);
enum handler_result run_launch(struct run_req *rr, enum engine_mode mode,
                               uint64_t origin_ns, run_then_fn *then,
                               struct response *resp);

/*
 * Writes the finished run's body (the API's run shape) into w; extra
 * fields (compare's speedup...) may follow before the caller closes the
 * object: the object is left open.
 */
void run_write_body(struct run_req *rr, struct jsonw *w);

/* The finished run's wall time in ms, as its body states it. */
double run_wall_ms(const struct run_req *rr);

/* Frees the finished run and its state (the claim stays). */
void run_finish(struct run_req *rr);

/*
 * Points rr at demo d for its next run (/run/table runs several demos on
 * one request): the finished run and the arguments go; the claim, the
 * token and the extra stay. The arguments are then filled with
 * run_parse() or by moving parsed ones into run_req_args().
 */
void run_req_use(struct run_req *rr, const struct demo *d);

/*
 * Runs only the first n tasks of what the parameters make (0: all), for
 * compare's untimed warm-up. Not for async modes: their work starts every
 * task of its state at once.
 */
void run_req_set_max_tasks(struct run_req *rr, size_t n);

/*
 * Writes a finished task's costs from its record: "cpu_ms", and for a
 * spawned process "spawn_ms" and "ready_ms" (null when it never greeted),
 * offsets from origin_ns. The body's tasks and live's task-end events.
 */
void run_write_task_costs(struct jsonw *w, const struct engine_task *t,
                          uint64_t origin_ns);

/* Accessors for compare.c. */
struct demo_args *run_req_args(struct run_req *rr);
struct engine_run *run_req_run(struct run_req *rr);
void *run_req_extra(struct run_req *rr);
void run_req_set_extra(struct run_req *rr, void *extra,
                       void (*free_extra)(void *));
struct request *run_req_request(struct run_req *rr);
struct app *run_req_app(struct run_req *rr);
const struct demo *run_req_demo(const struct run_req *rr);
enum engine_mode run_req_mode(const struct run_req *rr);
uint64_t run_req_origin_ns(const struct run_req *rr);
void *run_req_state(const struct run_req *rr);

/* ---- shared with live.c (streamed answers) ---- */

/*
 * Makes rr's runs report to live (engine notify hook, live_run_done()
 * instead of waking the request): set before run_launch().
 */
struct live;
void run_req_set_live(struct run_req *rr, struct live *live);

/* Answer rr in the text form (live.h), not streamed. */
void run_req_set_text(struct run_req *rr, bool text);

/*
 * The run ended (rr's status is set): counts it and runs its `then`,
 * which answers (HANDLER_DONE, resp filled) or launches the next run
 * (HANDLER_ASYNC). The thread that reads the run: a request thread.
 */
enum handler_result run_continue(struct run_req *rr, struct response *resp);

/* Counts the ended run in conlab_demo_runs_total. */
void run_count(struct run_req *rr);

#endif
