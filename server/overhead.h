/*
 * overhead: what it costs to start a unit of concurrency and to keep it
 * alive, measured for real: a thread, a job on the prefork pool, a fresh
 * worker process, a task on the event loop.
 *
 * A measurement starts N units that do nothing but report in and wait to
 * be released. Per unit it records the start-up latency (from the request
 * to create it to its first instruction, or, for a process, to the moment
 * it is ready for work) and the memory the unit holds while all N are
 * alive; then it releases every unit and cleans up (threads joined,
 * processes reaped) before it reports, whatever happened: a cancel (the
 * client left), the service stopping, a deadline.
 *
 * Each measurement runs on a thread of its own (it blocks: it waits for
 * threads to report in and for processes to greet), never on a request,
 * pool or loop thread. At most OVERHEAD_LIVE_MAX run at once; the module
 * keeps the list of live ones so that shutdown can cancel and wait for
 * them (overhead_stop_all(), overhead_wait_idle()).
 *
 * Threads: overhead_new, overhead_run, overhead_cancel from any thread; the
 * done callback runs on the measurement's thread and must not block; the
 * accessors after the callback; overhead_free by the owner after it.
 */
#ifndef CONLAB_OVERHEAD_H
#define CONLAB_OVERHEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum overhead_mode {
    OVERHEAD_THREADS,   /* pthread_create, to the thread's first line */
    OVERHEAD_PROCESSES, /* a job on the running pool, to its start */
    OVERHEAD_SPAWN,     /* posix_spawn of a worker, to its hello */
    OVERHEAD_ASYNC,     /* loop_call, to the callback running */
    OVERHEAD_MODES
};

/* "threads", "processes", "spawn", "async" */
extern const char *const overhead_mode_names[OVERHEAD_MODES];

#define OVERHEAD_THREADS_MAX  256   /* threads alive at once */
#define OVERHEAD_SPAWN_MAX    64    /* fresh processes alive at once */
#define OVERHEAD_POOL_MAX     64    /* pool jobs, in turns of workers */
#define OVERHEAD_ASYNC_MAX    10000 /* loop tasks */
#define OVERHEAD_LIVE_MAX     2     /* measurements at once */
#define OVERHEAD_DEADLINE_MS  10000 /* a measurement, at most */
#define OVERHEAD_POOL_HOLD_MS 30    /* a pool job holds its worker */
#define OVERHEAD_METHOD_MAX   240

/* One unit: its start-up latency and the memory it holds. */
struct overhead_unit {
    uint64_t start_ns; /* create to first instruction (or ready) */
    uint64_t bytes;    /* memory it holds while all are alive */
    uint64_t rss;      /* processes: resident set; threads: reserved stack */
    int32_t id;        /* a pid, or the unit's index */
};

/* The summary of a finished measurement. */
struct overhead_figures {
    size_t n;
    double start_us_min, start_us_median, start_us_p99;
    double bytes_min, bytes_median;
    double rss_median;         /* see overhead_unit.rss */
    double rss_delta_per_unit; /* threads: the process's RSS growth / N */
    char start_method[OVERHEAD_METHOD_MAX];
    char memory_method[OVERHEAD_METHOD_MAX];
};

struct overhead;
struct pool;
struct loop;

typedef void overhead_done_fn(struct overhead *o, int status, void *arg);

struct overhead_spec {
    enum overhead_mode mode;
    size_t units;
    struct pool *pool; /* processes */
    int workers;       /* the pool's processes */
    struct loop *loop; /* async */
    const char *exe;   /* spawn: the binary to start in worker mode */
    uint64_t client;   /* the pool's fair-share key */
    overhead_done_fn *done;
    void *done_arg;
};

/* The most units a mode takes. */
size_t overhead_units_max(enum overhead_mode mode, int workers);

/*
 * The bytes of service memory a measurement of units holds (for
 * admission): the records, and the threads' committed stacks.
 */
uint64_t overhead_cost_bytes(enum overhead_mode mode, size_t units);

/*
 * A measurement of spec (not started: a cancel before the start makes it
 * stop at once). NULL without memory or for units outside
 * 1..overhead_units_max().
 */
struct overhead *overhead_new(const struct overhead_spec *spec);

/*
 * Starts it on a thread of its own. Returns 0 (done is then called
 * exactly once, on that thread), -EAGAIN when OVERHEAD_LIVE_MAX are
 * running, -ESHUTDOWN after overhead_stop_all(), or pthread_create's
 * error; on an error done is never called. Any thread, once.
 */
int overhead_run(struct overhead *o);

/*
 * Cancels a measurement with status (-ECANCELED, -ESHUTDOWN): it stops
 * creating units, releases those it has and reports. Nothing happens
 * once it has reported. Any thread, while o is not freed.
 */
void overhead_cancel(struct overhead *o, int status);

/* After done: the units measured (all of them on success). */
size_t overhead_n_units(const struct overhead *o);
const struct overhead_unit *overhead_units(const struct overhead *o);
enum overhead_mode overhead_mode_of(const struct overhead *o);
/* Why it failed ("" on success). */
const char *overhead_error(const struct overhead *o);
/* Wall time of the whole measurement, ms. */
double overhead_wall_ms(const struct overhead *o);

/* The summary of the units measured (n 0: none). */
void overhead_figures(const struct overhead *o, struct overhead_figures *f);

/* Frees a measurement whose done has been called; NULL does nothing. */
void overhead_free(struct overhead *o);

/*
 * Cancels every live measurement with -ESHUTDOWN; later starts get
 * -ESHUTDOWN. Main thread, at shutdown, before the pool and the loop
 * stop (their ends reach the measurements as -ESHUTDOWN too).
 */
void overhead_stop_all(void);

/*
 * Waits until every measurement has reported and its thread has returned
 * (detached: the kernel removes it a moment later), at most timeout_ms.
 * True when none is left. Main thread.
 */
bool overhead_wait_idle(int timeout_ms);

/*
 * Reads /proc/PID/smaps_rollup: Pss and Rss in bytes. 0 or -errno.
 * Any thread.
 */
int overhead_proc_memory(pid_t pid, uint64_t *pss, uint64_t *rss);

/* In a worker process: the pool's hold job (job.h's JOB_HOLD). */
int overhead_worker_hold(const void *params, uint32_t len, void *out,
                         uint32_t cap, uint32_t *out_len);

#endif
