/*
 * engine: runs a set of tasks on one back end and says when the whole set
 * is over, through one callback with one status. It knows nothing of HTTP:
 * a request handler starts a run, suspends, and is woken by the callback.
 *
 * A run is n tasks of one piece of work (struct engine_work, a demo's), in
 * one mode. Each mode is a back end, one table of functions
 * (struct engine_backend):
 *   sequential  one demo thread runs the tasks one after another ("main");
 *   threads     the demo thread pool, one task per thread ("thread");
 *   gil         the same, computing only while holding the simulated GIL;
 *   processes   the prefork worker pool, one job (or a few short slices of
 *               one) per task ("process");
 *   async       the event loop: the work starts timers or transfers there
 *               ("loop");
 *   spawn       a fresh worker process per task, started when the task
 *               starts and reaped when it ends (spawner.h; "spawn"): the
 *               task's record keeps when the process was ready, so its
 *               start-up reads apart from its work.
 * Back ends are fed lazily: a run hands a pool at most as many tasks as
 * the pool has lanes, and the next one as an earlier one ends, so a run of
 * 10,000 tasks holds a few queue slots, not 10,000.
 *
 * Every task keeps a compact record (struct engine_task, 32 bytes: the
 * CPU time and the spawn start-up are 32-bit microseconds); what a demo
 * computes per task lives in its own state.
 *
 * CPU time per task (cpu_us): sequential, threads and gil measure the
 * demo thread's CLOCK_THREAD_CPUTIME_ID around the task's compute (gil:
 * only while the thread holds the lock); processes and spawn add what the
 * worker measured of its own CPU for each slice; async adds what the work
 * reports with engine_task_add_cpu() (timers and transfers report none:
 * their callbacks take microseconds of the loop, not attributed).
 *
 * Cores: a run may be pinned to its first `cores` CPUs of the service's
 * own affinity (engine_run_spec.cores; 0 = no pinning): a demo thread
 * pins itself while it computes a task of the run and restores its mask
 * after; worker processes pin themselves for the job (job_request.cores);
 * a spawned process is pinned at spawn. async is never pinned: the loop
 * thread is every run's. The answer is built
 * from these records by the caller after the callback, on its own thread.
 *
 * Status, everywhere: 0 or a negative errno. A run's status is its worst
 * task's, in this order: -ETIMEDOUT (a deadline), -EPIPE/-EPROTO (a
 * worker died or answered nonsense), -EAGAIN/-ESHUTDOWN (overloaded,
 * stopping), -ECANCELED (its client left), -E2BIG (never fits), any other.
 *
 * Lifetime: engine_run_new() -> engine_run_start() -> done callback
 * (exactly once, on whatever thread ended the last task, possibly inside
 * engine_run_start() itself) -> engine_run_free() by the caller. Between
 * start and the callback the run belongs to the engine and its back end;
 * engine_run_cancel() may be called then from any thread.
 *
 * Locks: engine->lock (the list of live runs) is taken before a run's
 * lock, never after; no callback runs under either. Back ends are called
 * without engine locks held.
 */
#ifndef CONLAB_ENGINE_H
#define CONLAB_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum engine_mode {
    ENGINE_SEQUENTIAL,
    ENGINE_THREADS,
    ENGINE_PROCESSES,
    ENGINE_GIL,
    ENGINE_ASYNC,
    ENGINE_SPAWN,
    ENGINE_MODES
};

/* "sequential", "threads", "processes", "gil", "async", "spawn" */
extern const char *const engine_mode_names[ENGINE_MODES];

enum engine_lane {
    ENGINE_LANE_MAIN,
    ENGINE_LANE_THREAD,
    ENGINE_LANE_PROCESS,
    ENGINE_LANE_LOOP,
    ENGINE_LANE_SPAWN,
    ENGINE_LANES
};

/* "main", "thread", "process", "loop", "spawn" */
extern const char *const engine_lane_names[ENGINE_LANES];

#define ENGINE_SLICES_MAX 2000 /* gil slices recorded per task */
#define ENGINE_ERROR_MAX  160  /* bytes of a run's error message */
#define ENGINE_JOB_INLINE 64   /* bytes of job parameters kept inline */
#define ENGINE_SLICE_NS   (100u * 1000u * 1000u) /* a process job slice */

/*
 * One task's record, 32 bytes. start_ns and end_ns are CLOCK_MONOTONIC;
 * 0 = never. ready_us: spawn mode, microseconds from start_ns (the request
 * to spawn) to the process's greeting (0: not spawn, or never ready).
 * cpu_us: CPU time the task used, saturating at UINT32_MAX (71 minutes,
 * beyond any --job-timeout-ms).
 */
struct engine_task {
    uint64_t start_ns;
    uint64_t end_ns;
    int32_t worker; /* a pid, a demo thread's id, or 0 */
    int16_t status; /* 0 or a negative errno */
    uint8_t lane;   /* enum engine_lane */
    uint8_t started;
    uint32_t cpu_us;
    uint32_t ready_us;
};

_Static_assert(sizeof(struct engine_task) == 32,
               "the task record is budgeted as 32 bytes");

/*
 * The intervals a gil task held the lock: [acquired, released] pairs,
 * grown as needed up to ENGINE_SLICES_MAX.
 */
struct engine_slices {
    uint32_t n, cap;
    bool open;
    uint64_t (*at)[2];
};

struct engine;
struct engine_run;
struct spawner;

/*
 * What an in-process task is given: its run and index, for
 * engine_yield() between units of work.
 */
struct engine_ctx {
    struct engine_run *run;
    size_t task;
    uint64_t deadline_ns;
    bool whole_run; /* the run's deadline comes before the task's */
    /* gil: the thread's CPU clock when it last took the lock (0: not
     * holding it); the task's CPU is counted only while it holds it */
    uint64_t cpu_from_ns;
    uint64_t cpu_ns;
};

/* One worker-process job (or one slice of a task's work). */
struct engine_job {
    uint32_t kind;      /* the worker's job kind (registry) */
    const void *params; /* valid until the job ends: buf or the state */
    uint32_t len;
    bool last; /* no slice follows this one */
    uint8_t buf[ENGINE_JOB_INLINE];
};

/*
 * A run's work: what a demo provides for the modes it runs in. State is
 * the demo's (engine_run_state()), shared by every task; each hook works
 * on its own task's part only.
 */
struct engine_work {
    /*
     * sequential, threads, gil: computes task on the calling demo thread,
     * calling engine_yield(ctx) between units and stopping with its
     * negative return. Returns 0 or a negative errno.
     */
    int (*compute)(struct engine_ctx *ctx, void *state, size_t task);
    /*
     * processes: describes slice number `slice` of task (0, 1, ...) as a
     * job; sets out->last on the final one. Returns 0 or a negative errno.
     * Slices let a long task give its worker up between them, so that
     * other clients' jobs wait at most one slice (ENGINE_SLICE_NS).
     */
    int (*job)(void *state, size_t task, unsigned slice,
               struct engine_job *out);
    /* processes: takes the worker's result for that slice; 0 or -EPROTO. */
    int (*absorb)(void *state, size_t task, unsigned slice, const void *result,
                  uint32_t len);
    /*
     * async: starts every task on the event loop (all or none: 0, -EAGAIN,
     * -ESHUTDOWN); each ends with engine_task_end() on the loop thread.
     */
    int (*start_async)(struct engine_run *run, void *state);
    /*
     * async, on the loop thread: removes what is still in the loop (each
     * removed item still ends its task, with -ECANCELED).
     */
    void (*cancel_async)(struct engine_run *run, void *state);
};

/* A back end: how the tasks of one mode run. */
struct engine_backend {
    enum engine_lane lane;
    /*
     * Starts the run: its first tasks (claimed with engine_run_next()),
     * the rest as earlier ones end. Returns 0, or a negative errno when
     * nothing was started (the engine then ends the run with it).
     */
    int (*start)(struct engine_run *run);
    /*
     * Drops what is queued of the run at once (those tasks end with the
     * run's cancel status) and lets running tasks notice at their next
     * check. Any thread; called at most once per run.
     */
    void (*cancel)(struct engine_run *run);
    /* Frees what start() allocated (engine_run_backend()); may be NULL. */
    void (*release)(struct engine_run *run);
};

struct engine_config {
    struct pool *pool;
    struct tpool *tpool;
    struct gil *gil;
    struct loop *loop;
    struct spawner *spawner; /* spawn mode's processes */
    int workers;             /* lanes of processes, and of spawn per run */
    int demo_threads;        /* lanes of threads and gil */
    int job_timeout_ms;      /* a job's and a sequential run's deadline */
    /* Told when the last live run has ended, on the thread that ended it,
     * after its done callback; must not block. May be NULL. */
    void (*idle)(void *arg);
    void *idle_arg;
};

typedef void engine_done_fn(struct engine_run *run, int status, void *arg);

/*
 * Told that a task's record changed (it started or ended), on the thread
 * that changed it, before the run can settle. It must not block and must
 * not touch the run: a live stream (handlers/live.c) only marks itself
 * and wakes its connection, and reads the records later on a request
 * thread with engine_run_peek().
 */
typedef void engine_notify_fn(void *arg);

struct engine_run_spec {
    enum engine_mode mode;
    size_t n_tasks; /* >= 1 */
    const struct engine_work *work;
    void *state;     /* the demo's; not owned by the run */
    uint64_t client; /* fair-share key of the client (0: anonymous) */
    unsigned cores;  /* pin to this many CPUs (see above); 0: no pinning */
    engine_done_fn *done;
    void *done_arg;
    engine_notify_fn *notify; /* may be NULL */
    void *notify_arg;
};

struct engine_stats {
    uint64_t runs;    /* live now */
    uint64_t started; /* since start */
    uint64_t tasks;   /* tasks of live runs */
};

/*
 * A new engine over those back ends (the real ones of backends.c).
 * Returns NULL without memory. Main thread.
 */
struct engine *engine_new(const struct engine_config *cfg);

/* Replaces the back end of a mode (unit tests use fakes). Before use. */
void engine_set_backend(struct engine *e, enum engine_mode mode,
                        const struct engine_backend *backend);

/* How many tasks of a mode run at once: 1, threads, workers, or n
 * (spawn: workers per run, and --budget-spawns across runs). */
size_t engine_lanes(const struct engine *e, enum engine_mode mode,
                    size_t n_tasks);

const struct engine_config *engine_config(const struct engine *e);

/*
 * Stops admitting runs (engine_run_start() then ends them with
 * -ESHUTDOWN) and cancels every live run with -ESHUTDOWN. Their callbacks
 * come as their back ends settle them. Any thread; idempotent.
 */
void engine_stop(struct engine *e);

/* True once engine_stop() was called. Any thread. */
bool engine_stopping(const struct engine *e);

/*
 * Waits until no run is live (every callback has returned), at most
 * timeout_ms. Returns true when none is. Main thread.
 */
bool engine_wait_idle(struct engine *e, int timeout_ms);

void engine_stats(struct engine *e, struct engine_stats *out);

/* Frees the engine: no run may be live. NULL does nothing. */
void engine_free(struct engine *e);

/*
 * A new run (not started). NULL without memory. The records of n_tasks
 * tasks are allocated here; nothing is handed to a back end yet.
 */
struct engine_run *engine_run_new(struct engine *e,
                                  const struct engine_run_spec *spec);

/*
 * Starts the run; its callback comes exactly once, maybe before this
 * returns (a full queue, shutdown). The run's timings count from now.
 */
void engine_run_start(struct engine_run *run);

/*
 * Cancels a started run with status (-ECANCELED: its client left;
 * -ESHUTDOWN): queued tasks end at once, running ones at their next
 * check. Nothing happens when the run has already ended. Any thread, as
 * long as the caller knows the run has not been freed.
 */
void engine_run_cancel(struct engine_run *run, int status);

/* Frees a run that was never started or whose callback has come. */
void engine_run_free(struct engine_run *run);

/* Reading a finished run (after its callback). */
enum engine_mode engine_run_mode(const struct engine_run *run);
size_t engine_run_n_tasks(const struct engine_run *run);
const struct engine_task *engine_run_tasks(const struct engine_run *run);
/* NULL unless gil mode, else one per task. */
const struct engine_slices *engine_run_slices(const struct engine_run *run);
uint64_t engine_run_started_ns(const struct engine_run *run);
/* The run's cores (0: not pinned). */
unsigned engine_run_cores(const struct engine_run *run);
uint64_t engine_run_ended_ns(const struct engine_run *run);
/*
 * A copy of task's record while the run may still be going (any thread,
 * between start and free): start_ns and end_ns are published by the
 * threads that write them (release), so a non-zero one comes with the
 * fields written before it (lane and worker with the start; status,
 * cpu_us and ready_us with the end). Fields a copy does not name are zero.
 */
void engine_run_peek(const struct engine_run *run, size_t task,
                     struct engine_task *out);

/* The message of the failure that decided the status ("" when 0). */
const char *engine_run_error(const struct engine_run *run);
void *engine_run_state(const struct engine_run *run);

/* The HTTP-side status of a run status: 200, 504, 502, 503, 499, 400, 500. */
int engine_http_status(int status);

/*
 * For in-process work, between units: 0 to go on, or why to stop
 * (-ECANCELED, -ESHUTDOWN, -ETIMEDOUT). In gil mode it also offers the
 * lock to waiting threads once the switch interval has passed. Its
 * signature fits prime_yield_fn.
 */
int engine_yield(void *ctx);

/*
 * The same check without touching the GIL, for work that does not hold
 * it (between engine_blocking_begin() and engine_blocking_end()).
 */
int engine_check(struct engine_ctx *ctx);

/*
 * For work that blocks (sleeps, transfers) rather than computes: in gil
 * mode gives the lock up until engine_blocking_end(), as CPython does
 * around blocking calls; elsewhere nothing.
 */
void engine_blocking_begin(struct engine_ctx *ctx);
void engine_blocking_end(struct engine_ctx *ctx);

/* ---- for back ends and async work ---- */

struct engine *engine_run_engine(const struct engine_run *run);
const struct engine_work *engine_run_work(const struct engine_run *run);
uint64_t engine_run_client(const struct engine_run *run);
void *engine_run_backend(const struct engine_run *run);
void engine_run_set_backend(struct engine_run *run, void *data);

/*
 * Claims the next task not yet started, in order: true with its index,
 * false when none is left or the run is cancelled.
 */
bool engine_run_next(struct engine_run *run, size_t *task);

/*
 * Keeps a started run from settling while the caller works on it from
 * outside its tasks (a back end's callback, a cancel handed to another
 * thread). False when it has settled already. Every true is paired with
 * one engine_run_unpin(), which may settle it (the callback then runs on
 * the unpinning thread): touch nothing of the run after it.
 */
bool engine_run_pin(struct engine_run *run);
void engine_run_unpin(struct engine_run *run);

/* 0, or the run's cancel status once it was cancelled or is stopping. */
int engine_run_check(const struct engine_run *run);

/* A task starts on a lane (start_ns 0: now). */
void engine_task_begin(struct engine_run *run, size_t task,
                       enum engine_lane lane, int32_t worker,
                       uint64_t start_ns);

/*
 * A task ends with status (end_ns 0: now); message (may be NULL) says
 * why when status is not 0. The last task to end settles the run.
 */
void engine_task_end(struct engine_run *run, size_t task, int status,
                     uint64_t end_ns, const char *message);

/* Adds CPU time to a task's record (any back end; sums slices). */
void engine_task_add_cpu(struct engine_run *run, size_t task, uint64_t cpu_ns);

/* Spawn: the task's process greeted at ready_ns (after its start). */
void engine_task_ready(struct engine_run *run, size_t task, uint64_t ready_ns);

/*
 * Ends every task not yet claimed with status, without running it (a
 * cancelled or failed run's rest).
 */
void engine_run_end_rest(struct engine_run *run, int status,
                         const char *message);

/*
 * Runs task on the calling thread (what the sequential, threads and gil
 * back ends do): records the lane, deadlines and gil slices, calls
 * work->compute and ends the task. Returns its status.
 */
int engine_run_compute(struct engine_run *run, size_t task,
                       enum engine_lane lane, int32_t worker);

#endif
