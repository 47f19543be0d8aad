/*
 * main: start-up and shutdown of the service.
 *
 * Order matters: SIGINT/SIGTERM are blocked before any thread exists, so
 * every thread inherits the mask and only this thread takes them with
 * sigwait(). Shutdown then runs here, in phases: stop admitting requests,
 * let in-flight ones finish within the grace period, stop the back ends
 * (each ends what it holds; a completion that submits to a back end
 * already stopped gets -ESHUTDOWN), stop the daemon, and only then free:
 * app's pointers stay valid while any thread may still read them.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../handlers/handlers.h"
#include "../handlers/openapi.h"
#include "allow.h"
#include "budget.h"
#include "engine.h"
#include "app.h"
#include "clock.h"
#include "config.h"
#include "cores.h"
#include "gil.h"
#include "http.h"
#include "log.h"
#include "overhead.h"
#include "metrics.h"
#include "loop.h"
#include "pool.h"
#include "router.h"
#include "spawner.h"
#include "tpool.h"
#include "worker.h"

extern char **environ;

#define STOP_WAIT_MS         5000 /* for runs and answers after the back ends stop */
#define MMAP_THRESHOLD_BYTES (128 * 1024)
#define ARENAS_MAX           4
#define TRIM_EVERY_MS        1000 /* at most, once the service is idle */
#define TRIM_RUNS_MS         100  /* at most, as the last run ends */

/* Descriptors kept beside client connections: files, workers, the event
 * loop's outbound connections, and the self listener's ends of them. */
#define FD_RESERVE (256 + 2 * LOOP_CONNECTIONS_MAX)

static void raise_fd_limit(struct config *cfg);
static void reserve_fd_table(rlim_t descriptors);
static void trim_when_idle(struct engine *engine, struct http_server *http,
                           bool runs_ended);
static void wake_main(void *arg);

static pthread_t main_thread;

int main(int argc, char **argv)
{
    static struct config cfg;
    static struct app app;
    static struct allow_list allow;
    char err[512] = "";

    /* A worker process: this binary re-executed by the pool. */
    if (argc == 3 && strcmp(argv[1], WORKER_FLAG) == 0)
        return worker_main(WORKER_FD, (int)strtol(argv[2], NULL, 10));

    config_defaults(&cfg);
    if (config_load(&cfg, argc, argv, environ, err, sizeof(err)) < 0) {
        fprintf(stderr, "conlab: %s\n", err);
        return 2;
    }
    if (cfg.action == CONFIG_HELP) {
        config_usage(stdout, "conlab");
        return 0;
    }
    if (cfg.action == CONFIG_VERSION) {
        printf("conlab %s\n", CONLAB_VERSION);
        return 0;
    }
    log_set_level(cfg.log_level);
    log_set_format(cfg.log_format);

    /* Taken by the main thread alone (sigtimedwait below): the stop
     * signals, and SIGUSR1, by which the engine says it is idle. */
    sigset_t main_signals;
    sigemptyset(&main_signals);
    sigaddset(&main_signals, SIGINT);
    sigaddset(&main_signals, SIGTERM);
    sigaddset(&main_signals, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &main_signals, NULL);
    main_thread = pthread_self();
    signal(SIGPIPE, SIG_IGN);

    raise_fd_limit(&cfg);
    /* Memory goes back after a burst: large blocks (answers, a run's
     * records) are mapped and unmapped, not kept in an arena (a fixed
     * threshold: glibc's own raises it after the first free), and the
     * arenas are few; see trim_when_idle() for the rest. */
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
    mallopt(M_ARENA_MAX, ARENAS_MAX);
    /* Before any thread: libcurl's global state is not thread-safe. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("curl_global_init failed");
        return 1;
    }

    app.cfg = &cfg;
    app.started_ns = clock_now_ns();
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    app.cores = cores > 0 ? (int)cores : 1;
    /* The CPUs a run's `cores` counts in: the affinity we were started
     * with, captured before any thread exists (or is pinned). */
    app.cpus = cores_count();
    if (!realpath(cfg.web_root, app.web_root)) {
        log_error("--web-root %s: %s", cfg.web_root, strerror(errno));
        return 2;
    }

    int status = 1;
    struct router *router = router_new();
    if (!router || handlers_register(router, &app) < 0) {
        log_error("cannot build the route table");
        goto out_router;
    }
    if (router_route_path(router, METRICS_ROUTES - 1)) {
        log_error("more routes than /metrics counts (METRICS_ROUTES %d)",
                  METRICS_ROUTES);
        goto out_router;
    }
    app.router = router;
    if (openapi_init(err, sizeof(err)) < 0) {
        log_error("cannot build the OpenAPI document: %s", err);
        goto out_router;
    }

    struct pool_config pool_cfg = {
        .workers = cfg.workers,
        .queue = cfg.queue,
        .job_timeout_ms = cfg.job_timeout_ms,
        .max_jobs = cfg.worker_max_jobs,
        /* Exec'd in the child, this names the running binary even if the
         * file has since been replaced or deleted: workers always match. */
        .exe = "/proc/self/exe",
    };
    app.gil = gil_new(GIL_SWITCH_INTERVAL_NS);
    app.pool = pool_start(&pool_cfg, err, sizeof(err));
    if (!app.gil || !app.pool) {
        log_error("cannot start the worker pool: %s", err);
        goto out_pools;
    }
    app.tpool = tpool_start(cfg.demo_threads, cfg.queue, err, sizeof(err));
    if (!app.tpool) {
        log_error("cannot start the demo threads: %s", err);
        goto out_pools;
    }
    struct spawner_config spawn_cfg = {
        .max_children = budget_spawns_limit(&cfg),
        .job_timeout_ms = cfg.job_timeout_ms,
        .exe = "/proc/self/exe",
    };
    app.spawner = spawner_start(&spawn_cfg, err, sizeof(err));
    if (!app.spawner) {
        log_error("cannot start the spawner: %s", err);
        goto out_pools;
    }
    app.loop = loop_start(err, sizeof(err));
    if (!app.loop) {
        log_error("cannot start the event loop: %s", err);
        goto out_pools;
    }
    struct budget_limits limits;
    budget_limits_from_config(&cfg, &limits);
    app.budget = budget_new(&limits);
    struct engine_config engine_cfg = {
        .pool = app.pool,
        .tpool = app.tpool,
        .gil = app.gil,
        .loop = app.loop,
        .spawner = app.spawner,
        .workers = cfg.workers,
        .demo_threads = cfg.demo_threads,
        .job_timeout_ms = cfg.job_timeout_ms,
        .idle = wake_main,
    };
    app.engine = engine_new(&engine_cfg);
    if (!app.budget || !app.engine) {
        log_error("cannot set up the run engine: out of memory");
        goto out_pools;
    }

    /* Published before any request thread exists: handlers read it. */
    app.http = http_new(&cfg, router, HANDLERS_SELF_TARGET, err, sizeof(err));
    if (app.http)
        http_charge_bodies(app.http, app.budget);
    int unresolved = 0;
    if (app.http &&
        allow_init(&allow, cfg.bind, http_port(app.http), cfg.allow_hosts,
                   cfg.n_allow_hosts, &unresolved, err, sizeof(err)) < 0) {
        log_error("--allow-host: %s", err);
        goto out_http;
    }
    if (unresolved)
        log_warn("%d --allow-host name(s) did not resolve: connections to "
                 "them will be refused",
                 unresolved);
    app.allow = &allow;
    if (!app.http || http_run(app.http, err, sizeof(err)) < 0) {
        log_error("%s", err);
        goto out_http;
    }
    const char *host_fmt = strchr(cfg.bind, ':') ? "[%s]" : "%s";
    char host[CONFIG_BIND_MAX + 2];
    snprintf(host, sizeof(host), host_fmt, cfg.bind);
    log_info("conlab %s: %d request threads, %d workers, %d demo threads, "
             "web root %s",
             CONLAB_VERSION, cfg.threads, cfg.workers, cfg.demo_threads,
             app.web_root);
    log_info("listening on http://%s:%d", host, http_port(app.http));
    log_info("self listener (%s only, for the fetch demo's own transfers) "
             "on http://%s:%d",
             HANDLERS_SELF_TARGET, http_self_host(app.http),
             http_self_port(app.http));

    /* Wait for a stop signal, writing out access lines meanwhile. */
    /* The tick's work (the head-deadline sweep reads every waiting
     * connection's TCP_INFO) stays every 100 ms however often the engine
     * wakes this thread: a SIGUSR1 only trims. */
    int sig;
    const uint64_t tick_ns = LOG_FLUSH_MS * 1000000ull;
    uint64_t next_tick = clock_now_ns() + tick_ns;
    do {
        uint64_t now = clock_now_ns();
        uint64_t left = next_tick > now ? next_tick - now : 0;
        const struct timespec wait = {(time_t)(left / 1000000000u),
                                      (long)(left % 1000000000u)};
        sig = sigtimedwait(&main_signals, NULL, &wait);
        if (sig != SIGUSR1 || clock_now_ns() >= next_tick) {
            log_flush();
            http_sweep(app.http); /* runs of clients that left: cancelled */
            next_tick = clock_now_ns() + tick_ns;
        }
        trim_when_idle(app.engine, app.http, sig == SIGUSR1);
    } while (sig != SIGINT && sig != SIGTERM);
    log_info("received %s: stopping (grace period %d ms)",
             sig == SIGINT ? "SIGINT" : "SIGTERM", cfg.grace_ms);

    uint64_t stop_started = clock_now_ns();
    http_quiesce(app.http);
    if (!http_wait_idle(app.http, cfg.grace_ms))
        log_warn("grace period over with requests still in flight");
    /* Phase 2: cancel every run, then end the back ends, which answer
     * what they still hold with -ESHUTDOWN. Each stays allocated until
     * every thread is gone: a completion of one may submit to another,
     * and request threads may still read their stats. */
    engine_stop(app.engine);
    overhead_stop_all(); /* measurements release and reap their units */
    spawner_stop(app.spawner);
    pool_stop(app.pool);
    tpool_stop(app.tpool);
    loop_stop(app.loop);
    if (!overhead_wait_idle(STOP_WAIT_MS))
        log_error("overhead measurements still live after the stop");
    /* Phase 3: every run's callback has returned and its request has had
     * its answer built on a request thread; then the daemon goes. */
    if (!engine_wait_idle(app.engine, STOP_WAIT_MS))
        log_error("runs still live after the back ends stopped");
    http_wait_unsuspended(app.http, STOP_WAIT_MS);
    http_stop(app.http);
    log_flush();
    log_info("stopped in %.1f ms",
             clock_ms_between(stop_started, clock_now_ns()));
    status = 0;
    goto out_pools;

out_http:
    /* Not serving yet: no request thread ran, nothing is in flight. */
    spawner_stop(app.spawner);
    pool_stop(app.pool);
    tpool_stop(app.tpool);
    loop_stop(app.loop);
    http_stop(app.http);
out_pools:
    engine_free(app.engine);
    budget_free(app.budget);
    /* No thread but this one is left: free in any order. */
    spawner_free(app.spawner);
    pool_free(app.pool);
    tpool_free(app.tpool);
    loop_free(app.loop);
    gil_free(app.gil);
out_router:
    openapi_cleanup();
    router_free(router);
    return status;
}

/*
 * Every connection is a descriptor: make the soft limit cover the
 * connection limit, or shrink the limit to what the hard limit allows;
 * then grow the descriptor table to what the service may hold. Before
 * any thread starts.
 */
static void raise_fd_limit(struct config *cfg)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)cfg->max_connections + FD_RESERVE;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want
                          ? want
                          : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < want) {
        int fit = rl.rlim_cur > FD_RESERVE + 16
                      ? (int)(rl.rlim_cur - FD_RESERVE)
                      : 16;
        log_warn("descriptor limit %llu: --max-connections lowered from %d "
                 "to %d",
                 (unsigned long long)rl.rlim_cur, cfg->max_connections, fit);
        cfg->max_connections = fit;
        if (cfg->max_per_ip > fit)
            cfg->max_per_ip = fit;
    }
    reserve_fd_table(rl.rlim_cur < want ? rl.rlim_cur : want);
}

/*
 * Grows the descriptor table once, now, to hold the given number of
 * descriptors (the connection limit and FD_RESERVE, within the soft
 * limit: raise_fd_limit() says how many). The kernel
 * grows it by doubling from 64 as descriptors are opened, and in a process
 * with threads each doubling waits for an RCU grace period: the first
 * burst of 1,000 self-fetches (2,000 descriptors) paid for them, about
 * 35 ms of its 250 ms. Before any thread, no doubling waits. The table is
 * kernel memory (8 bytes a descriptor) and never shrinks; if this fails,
 * the table grows as before.
 */
static void reserve_fd_table(rlim_t descriptors)
{
    int top = (int)descriptors - 1;
    if (top <= STDERR_FILENO || fcntl(top, F_GETFD) != -1)
        return; /* nothing to grow, or that descriptor is inherited */
    if (dup2(STDERR_FILENO, top) == top)
        close(top);
    else
        log_debug("descriptor table not grown to %d: %s", top + 1,
                  strerror(errno));
}

/*
 * After a burst, once no run is live, gives the free memory of the arenas
 * back to the system (glibc keeps it otherwise); only when runs have
 * started or requests have been answered since the last time. Main
 * thread, on its tick at most once a second, and when the engine says
 * that its last run ended at most every 100 ms: runs one after another
 * (1,000 fetches each, 170 ms apart) then each start from the same memory
 * instead of stacking what the previous one left free, and a burst of
 * connections alone (1,000 /delay requests left 15 MiB of pools and
 * exchanges held until the next run) is given back too. A trim after
 * such a burst took 0.15 to 2 ms.
 */
static void trim_when_idle(struct engine *engine, struct http_server *http,
                           bool runs_ended)
{
    static uint64_t trimmed_at_ns, started_then, completed_then;
    struct engine_stats st;
    struct http_stats hs;
    engine_stats(engine, &st);
    http_stats(http, &hs);
    uint64_t now = clock_now_ns();
    uint64_t every_ms = runs_ended ? TRIM_RUNS_MS : TRIM_EVERY_MS;
    if (st.runs != 0 ||
        (st.started == started_then && hs.completed == completed_then) ||
        now - trimmed_at_ns < every_ms * 1000000ull)
        return;
    malloc_trim(0);
    trimmed_at_ns = now;
    started_then = st.started;
    completed_then = hs.completed;
}

/* The engine's idle hook: any thread; the main thread trims. */
static void wake_main(void *arg)
{
    (void)arg;
    pthread_kill(main_thread, SIGUSR1);
}
