/*
 * app: the service's shared context, handed to handlers as their ctx.
 *
 * Filled by main() before the daemon starts; afterwards every field is
 * read-only except what the pointed-to modules guard themselves, so any
 * thread may read it.
 */
#ifndef CONLAB_APP_H
#define CONLAB_APP_H

#include <limits.h>
#include <stdint.h>

#include "config.h"

struct http_server;
struct router;
struct pool;
struct tpool;
struct gil;
struct loop;
struct allow_list;
struct budget;
struct engine;
struct spawner;

struct app {
    const struct config *cfg;
    uint64_t started_ns;         /* CLOCK_MONOTONIC at start-up */
    int cores;                   /* online CPUs at start-up */
    int cpus;                    /* CPUs of our affinity: `cores` max */
    char web_root[PATH_MAX];     /* realpath() of cfg->web_root */
    const struct router *router; /* every route, for /metrics' labels */
    struct http_server *http;    /* set before the daemon runs */
    struct pool *pool;           /* worker processes */
    struct spawner *spawner;     /* spawn mode's processes */
    struct tpool *tpool;         /* demo threads */
    struct gil *gil;             /* the simulated interpreter lock */
    struct loop *loop;           /* the event loop: timers and fetches */
    struct allow_list *allow;    /* fetch targets allowed */
    struct budget *budget;       /* admission by cost */
    struct engine *engine;       /* runs the demos' tasks */
};

#endif
