/*
 * demo: the demo registry, the single description of every demo.
 *
 * A demo declares once: its parameters (name, type, bounds, default, one
 * line of documentation), its modes, its cost, its work (the engine's
 * hooks and the worker-process job), and how its answer reads. Routes
 * (/run/<name>), validation, /run/compare, the metrics labels, the
 * OpenAPI parameters and the dashboard's forms (which read the OpenAPI
 * document) all follow from this table. Adding a demo is one file that
 * defines a `const struct demo` and one line in registry.c's list.
 *
 * Everything here is constant after start-up: any thread may read it.
 */
#ifndef CONLAB_DEMO_H
#define CONLAB_DEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../server/budget.h"
#include "../server/engine.h"
#include "../server/jsonw.h"

struct app;
struct params;
struct jsonr_doc;

#define DEMO_PARAMS_MAX 8
#define DEMOS_MAX       16
#define DEMO_ALL_MODES  ENGINE_MODES /* "every mode of the demo" */
#define DEMO_ENUM_MAX   16           /* names of one DEMO_ENUM */
/* What a fresh worker process costs here from the request to spawn to its
 * reaping, for estimates (spawn mode): a median of 8-13 ms measured on the
 * 2-core development VM at a load of 10 (exec and the dynamic loader:
 * libcurl's and libmicrohttpd's dependencies), and waves of them took up
 * to 80 ms each when it was busier: an estimate that stays an upper bound
 * there. */
#define DEMO_SPAWN_MS 25.0

enum demo_param_type {
    DEMO_INT,      /* an integer in [min, max] */
    DEMO_INT_LIST, /* a comma list of integers, each in [min, max] */
    DEMO_URLS,     /* a repeatable string (URLs), up to max_items */
    DEMO_ENUM,     /* one of the names in values; v[] holds its index */
    DEMO_REAL,     /* a real number in [rmin, rmax] */
};

/* The option a default comes from, when it is not a constant. */
enum demo_default_from { DEMO_DEF_CONST, DEMO_DEF_WORKERS };

struct demo_param {
    const char *name;
    enum demo_param_type type;
    int64_t min, max;               /* the value, or each item of a list */
    int64_t mode_max[ENGINE_MODES]; /* a tighter maximum in a mode; 0 none */
    /* A list parameter (declared before this one) whose count caps this
     * one's maximum and default (square's tasks: at most the numbers). */
    const char *max_count_of;
    int64_t def; /* DEMO_INT, when def_from is DEMO_DEF_CONST; DEMO_ENUM:
                    the index of the default in values */
    /* DEMO_ENUM: the accepted names, NULL-terminated (at most
     * DEMO_ENUM_MAX); form_value, when not 0, is the index the dashboard
     * starts on. */
    const char *const *values;
    enum demo_default_from def_from;
    const char *def_list; /* DEMO_INT_LIST: the default list ("1,2,3,4") */
    size_t max_items;     /* DEMO_INT_LIST and DEMO_URLS */
    /* A larger max_items for a JSON request body (the query's is bound
     * by the request target's size); 0: max_items. */
    size_t max_items_body;
    int64_t form_value;    /* the dashboard's starting value; 0: def */
    const char *form_list; /* the same for a list */
    /* DEMO_REAL: its bounds, default and the form's starting value (0:
     * rdef); min, max, def and form_value are the integers'. */
    double rmin, rmax, rdef, rform;
    bool scales_time; /* raising it makes the run longer */
    const char *doc;  /* one line for the OpenAPI document */
};

/* The parsed parameters of one request, in the order of demo->params. */
struct demo_args {
    int64_t v[DEMO_PARAMS_MAX];
    double r[DEMO_PARAMS_MAX]; /* DEMO_REAL */
    bool given[DEMO_PARAMS_MAX];
    bool unused[DEMO_PARAMS_MAX];    /* not echoed (fetch: count with url) */
    int64_t *list[DEMO_PARAMS_MAX];  /* DEMO_INT_LIST: owned */
    char **strings[DEMO_PARAMS_MAX]; /* DEMO_URLS: owned copies */
    size_t n[DEMO_PARAMS_MAX];       /* items of a list or strings */
    int timeout_ms; /* 0, or what a comparison gives each unit (fit_compare) */
    unsigned cores; /* the run's `cores` (run.c): CPUs it may use */
};

/* What prepare() may use besides the arguments. */
struct demo_env {
    struct app *app;
    const struct budget_client *client;
    const char *charge_token; /* for self-requests ("" when none) */
};

struct demo {
    const char *name;    /* the path is /run/<name> */
    const char *label;   /* a short tag for the dashboard ("CPU") */
    const char *summary; /* one line */
    const char *lesson;  /* what to look for in the timeline */
    const struct demo_param *params;
    size_t n_params;
    const enum engine_mode *modes; /* in engine_mode order */
    size_t n_modes;
    enum engine_mode default_mode;
    /* Result fields that must not depend on the mode (NULL-terminated). */
    const char *const *outcome;
    /* The parameters to lower when a comparison is over budget. */
    const char *shrink;

    /*
     * Checks what one parameter's bounds cannot say (a bound that depends
     * on another parameter, parameters that exclude each other) and may
     * fill in defaults that depend on others. Returns 0, or the HTTP
     * status (400, 403) with the message in err. May be NULL.
     */
    int (*check)(struct demo_args *a, enum engine_mode mode,
                 const struct app *app, char *err, size_t err_len);
    /* How many tasks the run has. */
    size_t (*n_tasks)(const struct demo_args *a);
    /*
     * Adds the demo's own costs to c: timers, transfers, and the bytes of
     * its state beyond bytes_per_task (the tasks, queue slots and the
     * engine's records are added by the caller). May be NULL.
     */
    void (*cost)(const struct demo_args *a, enum engine_mode mode,
                 size_t n_tasks, const struct app *app, struct budget_cost *c);
    size_t bytes_per_task; /* the demo's state per task, and its answer's */
    /*
     * The wall time the run should take here in ms (a model that covers
     * every parameter: what /run/compare budgets with).
     */
    double (*estimate_ms)(const struct demo_args *a, enum engine_mode mode,
                          const struct app *app);
    /*
     * Makes a comparison of every mode fit in budget_ms where the
     * parameters alone cannot bound it (fetch's URLs may take up to the
     * job timeout each): sets a->timeout_ms. May be NULL.
     */
    void (*fit_compare)(struct demo_args *a, const struct demo *d,
                        const struct app *app, double budget_ms);
    /*
     * The run's state, after admission; NULL without memory. Takes
     * nothing from a (it copies what it needs).
     */
    void *(*prepare)(const struct demo_args *a, enum engine_mode mode,
                     const struct demo_env *env);
    void (*free_state)(void *state);
    const struct engine_work *work;
    /* Writes the fields of the answer's "result" object. */
    void (*write_result)(struct jsonw *w, void *state,
                         const struct engine_run *run);
    /* Writes the task's own fields into its object (may be NULL). */
    void (*write_task)(struct jsonw *w, void *state, size_t task);
    /*
     * In a worker process: runs one job (what work->job described) into
     * out (cap bytes), setting *out_len. Returns 0 or -EINVAL for
     * parameters it refuses. NULL for demos without processes mode.
     */
    int (*worker_job)(const void *params, uint32_t len, void *out, uint32_t cap,
                      uint32_t *out_len);
    /*
     * While the run goes on: how far it got, in the demo's own unit named
     * progress_name (prime: numbers "checked"), for a live stream's
     * progress events (handlers/live.h). Any thread may call it while the
     * run is live, so the demo keeps the figure in an atomic. May be NULL.
     */
    uint64_t (*progress)(void *state);
    const char *progress_name;
};

/* The registry, in the order the dashboard shows the demos. */
extern const struct demo *const demo_registry[];
extern const size_t demo_count;

/* The demo named name, or NULL. */
const struct demo *demo_find(const char *name);

/* The worker job kind of a demo (1..demo_count), and back. */
uint32_t demo_kind(const struct demo *d);
const struct demo *demo_of_kind(uint32_t kind);

/* True when the demo runs in mode. */
bool demo_has_mode(const struct demo *d, enum engine_mode mode);

/* The index of a parameter by name, or -1. */
int demo_param_index(const struct demo *d, const char *name);

/*
 * The largest value a parameter accepts in mode (DEMO_ALL_MODES: in every
 * mode of the demo, what /run/compare accepts).
 */
int64_t demo_param_max(const struct demo *d, const struct demo_param *p,
                       int mode);

/* The default of an integer parameter, given the options. */
int64_t demo_param_default(const struct demo_param *p, const struct app *app);

/*
 * Takes the demo's parameters from p (mode: one engine mode, or
 * DEMO_ALL_MODES), then runs demo->check. Returns 0; -EINVAL with p's
 * message set (a 400); or a status (400, 403) with the message in err.
 * demo_args_cleanup() in every case.
 */
int demo_parse(const struct demo *d, struct params *p, int mode,
               const struct app *app, struct demo_args *a, char *err,
               size_t err_len);

/*
 * demo_parse() for a JSON request body already scanned (jsonr.h): every
 * member not yet taken must be one of the demo's parameters, with its
 * JSON type (an integer; a number, integer or not, for a real; an array
 * of integers; an array of strings) and
 * the same bounds and messages as the query form; a list may have up to
 * max_items_body items in one mode (DEMO_ALL_MODES, a comparison, keeps
 * max_items: it holds every mode's answer at once). p only carries the message
 * (params_parse(p, "") first; a key the caller took already, such as "mode", is
 * named to it with params_expect()). Returns what demo_parse() returns; the
 * list's numbers are converted straight from the text (no copy of the body).
 */
int demo_parse_json(const struct demo *d, struct jsonr_doc *doc,
                    struct params *p, int mode, const struct app *app,
                    struct demo_args *a, char *err, size_t err_len);

/* The number of names of a DEMO_ENUM parameter (0 for any other). */
size_t demo_enum_count(const struct demo_param *p);

/* The most items a list parameter takes from a request body. */
size_t demo_param_max_items_body(const struct demo_param *p);

void demo_args_cleanup(struct demo_args *a);

/* Writes the "params" object: every used parameter's effective value. */
void demo_write_params(struct jsonw *w, const struct demo *d,
                       const struct demo_args *a);

/*
 * The worker side: runs a job of any demo (what worker.c calls). Returns
 * 0, or -EINVAL for an unknown kind or refused parameters.
 */
int demo_worker_job(uint32_t kind, const void *params, uint32_t len, void *out,
                    uint32_t cap, uint32_t *out_len);

#endif
