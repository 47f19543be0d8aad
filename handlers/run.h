/*
 * run: how every demo under /run/ executes, whatever the demo.
 *
 * A demo describes its work as n tasks and a few hooks (struct run_ops);
 * run_start() suspends the request and runs the tasks in the chosen mode:
 *   sequential  one demo thread runs them one after another ("main" lane);
 *   threads     one demo-pool task each, in parallel ("thread" lanes);
 *   gil         the same, but computing only while holding the simulated
 *               GIL, yielding it every switch interval (slices recorded);
 *   processes   one job each on the prefork worker pool ("process" lanes);
 *   async       one timer or transfer each on the event loop ("loop").
 * The last task to finish, on whatever thread it finished, builds the
 * response (the API's run shape, or the error of the worst failure:
 * 504 deadline, 502 worker died, 503 shutting down) and resumes the
 * request, or hands the outcome to run->done (what /run/compare does to
 * chain runs). Timings are CLOCK_MONOTONIC offsets from the request's
 * arrival, or from run->origin_ns when the caller moves it.
 */
#ifndef CONLAB_RUN_H
#define CONLAB_RUN_H

#include <jansson.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../server/app.h"
#include "../server/params.h"
#include "../server/pool.h"
#include "../server/prime.h"
#include "../server/request.h"
#include "../server/tpool.h"

enum run_mode {
    RUN_SEQUENTIAL,
    RUN_THREADS,
    RUN_PROCESSES,
    RUN_GIL,
    RUN_ASYNC,
    RUN_MODES
};

#define RUN_SLICES_MAX 2000 /* GIL slices recorded per task */

extern const char *const run_mode_names[RUN_MODES];

struct run;
struct run_task;

struct run_ops {
    /* In-process work of one task (sequential, threads, gil); call
     * yield(yield_arg) between units and stop on a negative return. */
    int (*compute)(struct run *run, struct run_task *task, prime_yield_fn yield,
                   void *yield_arg);
    /* Async mode: hands every task to the event loop, all or none
     * (0, -EAGAIN, -ESHUTDOWN); each completion calls run_task_done(). */
    int (*start_async)(struct run *run);
    /* Process mode: the job for a task. */
    void (*job)(struct run *run, struct run_task *task, uint32_t *kind,
                const void **params, uint32_t *len);
    /* Process mode: takes a worker's result; 0 or -EINVAL if malformed. */
    int (*absorb)(struct run *run, struct run_task *task, const void *result,
                  uint32_t len);
    /* Adds the task's own fields to its JSON object. */
    void (*task_json)(struct run *run, struct run_task *task, json_t *obj);
    /* The "result" object of the response (new reference). */
    json_t *(*result_json)(struct run *run);
    /* Frees the demo's state. */
    void (*free_state)(void *state);
};

struct run_task {
    struct run *run;
    int id;
    int status;
    char error[POOL_ERROR_MAX];
    const char *worker_kind;
    long worker_id;
    uint64_t start_ns, end_ns;
    uint64_t (*slices)[2]; /* gil mode: [acquired, released] pairs */
    size_t n_slices;
    bool slice_open;
    uint64_t deadline_ns;
    struct pool_job job;
    struct tpool_task ttask;
};

/*
 * Instead of answering: called once when the run ends, on the thread that
 * finished it, with status 200 and the run's JSON body (a new reference),
 * or an error status and its message (body NULL). The run is already
 * freed, so nothing it shared with the body is released after the call.
 */
typedef void run_done_fn(int status, const char *message, json_t *body,
                         void *arg);

struct run {
    struct app *app;
    struct request *req;
    uint64_t origin_ns; /* timings are offsets from this: default accepted */
    run_done_fn *done;  /* NULL: answer the request */
    void *done_arg;
    /* Sequential, threads and gil tasks stop here too: the deadline of
     * one job also bounds the whole run, however many waves it takes. */
    uint64_t deadline_ns;
    const char *demo;
    enum run_mode mode;
    json_t *params;
    const struct run_ops *ops;
    void *state;
    _Atomic size_t pending;
    struct tpool_task seq_task;
    size_t n_tasks;
    struct run_task tasks[];
};

/*
 * A demo as /run/<demo> and /run/compare see it: its modes and how to
 * build one run of it from the query.
 */
struct demo {
    const char *name;
    const enum run_mode *modes; /* the modes it runs in, in run_mode order */
    size_t n_modes;
    enum run_mode default_mode;
    /* Result fields that must not depend on the mode (NULL-terminated). */
    const char *const *outcome;
    /* The parameters to lower when a comparison is over budget. */
    const char *shrink;
    /*
     * Takes the demo's own parameters (all but mode) from p, ends the
     * checks with params_finish() and builds the run in mode. NULL when
     * refused: a 400 left in p (params_error()), or else resp answered.
     */
    struct run *(*prepare)(struct app *app, struct request *req,
                           struct params *p, enum run_mode mode,
                           struct response *resp);
    /* The wall time the run should take here, in ms (a rough model). */
    double (*estimate_ms)(const struct run *run);
};

extern const struct demo demo_prime, demo_square, demo_sleep, demo_fetch;

#define RUN_DEMOS 4
extern const struct demo *const run_demos[RUN_DEMOS]; /* the four above */

/* Writes conlab_demo_runs_total{demo,mode,outcome} (ok or error). */
void run_write_metrics(FILE *out);

/*
 * The handler of GET /run/<demo>: reads mode and the demo's parameters,
 * answers a refusal or starts the run.
 */
enum handler_result run_handle(const struct demo *demo, struct app *app,
                               struct request *req, struct response *resp);

/*
 * A new run of n_tasks tasks. Takes params (the effective parameters) and
 * state (freed with ops->free_state). Returns NULL without memory (then
 * both are released).
 */
struct run *run_new(struct app *app, struct request *req, const char *demo,
                    enum run_mode mode, json_t *params,
                    const struct run_ops *ops, void *state, size_t n_tasks);

/*
 * Suspends the request and starts the tasks; from then on the run owns
 * itself and frees itself when it answers. Returns HANDLER_ASYNC. If the
 * work cannot start (a full queue: 503 with Retry-After), the request is
 * answered at once all the same. run may be run_new()'s NULL: then resp
 * gets a 500 and HANDLER_DONE is returned.
 */
enum handler_result run_start(struct run *run, struct response *resp);

/*
 * Starts the tasks of a run whose request is already suspended (what
 * run_start() does after suspending); the run owns itself from then on.
 */
void run_launch(struct run *run);

/* Frees a run that was never started. */
void run_discard(struct run *run);

/*
 * Async mode: a task ended (status 0 or a negative errno; error text in
 * task->error when not 0) on the loop thread. Sets its end time and lane.
 */
void run_task_done(struct run_task *task, int status);

/*
 * For compute hooks that block (sleep, fetch) rather than compute: in gil
 * mode gives the lock up until run_blocking_end(), as CPython does around
 * blocking calls; elsewhere does nothing.
 */
void run_blocking_begin(struct run_task *task);
void run_blocking_end(struct run_task *task);

/*
 * The deadline and shutdown check that compute hooks run between units
 * while they do not hold the GIL: 0, -ETIMEDOUT or -ESHUTDOWN.
 */
int run_check(struct run_task *task);

#endif
