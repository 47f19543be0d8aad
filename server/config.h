/*
 * config: the service's options, from command-line flags and CONLAB_*
 * environment variables (a flag wins over its variable).
 *
 * struct config is a plain value owned by the caller; config_load() fills
 * it once at start-up, before any thread exists, and afterwards it is
 * read-only, so every thread may read it without a lock.
 */
#ifndef CONLAB_CONFIG_H
#define CONLAB_CONFIG_H

#include <limits.h>
#include <stdio.h>

#include "log.h"

#define CONLAB_VERSION "0.1.0"

/* Caps on repeatable and text options. */
#define CONFIG_ALLOW_HOSTS_MAX 32
#define CONFIG_HOST_MAX        262 /* "[" + 253-byte name or IPv6 + "]:65535" */
#define CONFIG_BIND_MAX        64

enum config_action { CONFIG_RUN = 0, CONFIG_HELP, CONFIG_VERSION };

struct config {
    enum config_action action;
    char bind[CONFIG_BIND_MAX]; /* an IPv4 or IPv6 literal */
    int port;                   /* 0 = any free port */
    int threads;                /* request threads (libmicrohttpd pool) */
    int workers;                /* worker processes */
    int demo_threads;           /* demo thread pool */
    int queue;                  /* job queue capacity */
    int job_timeout_ms;
    int worker_max_jobs; /* recycle a worker after this many; 0 = never */
    int fetch_max_bytes; /* body cap of one fetch */
    /* Admission budgets (see budget.h); the queue budget is queue. */
    int budget_tasks;
    int budget_timers;
    int budget_transfers;
    int budget_bytes;
    int budget_spawns;    /* 0: 4 x workers (budget_spawns_limit()) */
    int client_share_pct; /* of every budget, per client address */
    int max_connections;
    int max_per_ip;
    int conn_timeout_s;  /* idle connection timeout */
    int head_timeout_ms; /* request head deadline; 0 = none */
    int body_max;        /* bytes of a request body (POST /run/...) */
    int grace_ms;        /* shutdown grace period */
    int n_allow_hosts;
    char allow_hosts[CONFIG_ALLOW_HOSTS_MAX][CONFIG_HOST_MAX];
    char web_root[PATH_MAX];
    enum log_level log_level;
    enum log_format log_format;
};

/*
 * Fills *cfg with the defaults; those that depend on the machine (threads,
 * workers) use the number of online processors.
 */
void config_defaults(struct config *cfg);

/*
 * Applies the CONLAB_* variables of envp (a NULL-terminated "NAME=value"
 * array, as environ) and then the flags of argv[1..argc-1] on top of the
 * values already in *cfg. Flags are "--name value" or "--name=value";
 * "--help"/"-h" and "--version"/"-V" set cfg->action.
 *
 * Returns 0, or -EINVAL with a one-line reason in err (naming the option and
 * what it accepts). On error *cfg may be partly updated. Start-up thread
 * only.
 */
int config_load(struct config *cfg, int argc, char *const argv[],
                char *const envp[], char *err, size_t err_len);

/* Writes the --help text: every option, its variable and its default. */
void config_usage(FILE *out, const char *program);

#endif
