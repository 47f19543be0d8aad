/*
 * config: see config.h.
 *
 * One table describes every option: its flag, its kind, where it lands in
 * struct config, its bounds and its help line. Environment variables are
 * derived from the flag name (--demo-threads -> CONLAB_DEMO_THREADS), so a
 * new option is one table row. Start-up thread only.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum opt_kind {
    OPT_INT,
    OPT_BIND,
    OPT_PATH,
    OPT_LEVEL,
    OPT_FORMAT,
    OPT_HOSTS,
    OPT_FLAG
};

struct opt_def {
    const char *name; /* flag without the leading "--" */
    enum opt_kind kind;
    size_t offset; /* into struct config */
    long min, max; /* OPT_INT bounds, inclusive */
    const char *metavar;
    const char *help;
};

#define OFF(field) offsetof(struct config, field)

static const struct opt_def opts[] = {
    {"bind", OPT_BIND, OFF(bind), 0, 0, "ADDR",
     "IPv4 or IPv6 address to listen on (default 127.0.0.1)"},
    {"port", OPT_INT, OFF(port), 0, 65535, "N",
     "TCP port; 0 picks a free one and logs it (default 8080)"},
    {"threads", OPT_INT, OFF(threads), 2, 256, "N",
     "request threads (default: cores, at least 2)"},
    {"workers", OPT_INT, OFF(workers), 1, 256, "N",
     "worker processes for CPU jobs (default: cores)"},
    {"demo-threads", OPT_INT, OFF(demo_threads), 1, 1024, "N",
     "threads of the demo thread pool (default 32)"},
    {"queue", OPT_INT, OFF(queue), 1, 1000000, "N",
     "job queue capacity; full answers 503 (default 1024)"},
    {"job-timeout-ms", OPT_INT, OFF(job_timeout_ms), 1, 600000, "MS",
     "deadline of one job (default 30000)"},
    {"worker-max-jobs", OPT_INT, OFF(worker_max_jobs), 0, 100000000, "N",
     "recycle a worker after N jobs, with jitter; 0 = never (default 0)"},
    {"fetch-max-bytes", OPT_INT, OFF(fetch_max_bytes), 1, 64 << 20, "N",
     "body cap of one fetched URL (default 1048576)"},
    {"budget-tasks", OPT_INT, OFF(budget_tasks), 1, 100000000, "N",
     "tasks of admitted runs in flight at most (default 400000)"},
    {"budget-timers", OPT_INT, OFF(budget_timers), 1, 100000000, "N",
     "event-loop timers held by runs at most (default 400000)"},
    {"budget-transfers", OPT_INT, OFF(budget_transfers), 1, 1000000, "N",
     "outbound transfers held by runs at most (default 2000)"},
    {"budget-bytes", OPT_INT, OFF(budget_bytes), 1 << 20, INT_MAX, "BYTES",
     "memory held by runs at most, in bytes (default 100663296 = 96 MiB)"},
    {"budget-spawns", OPT_INT, OFF(budget_spawns), 0, 4096, "N",
     "spawn-mode processes alive at once, at most (0-4096; default 0 = "
     "4 x --workers)"},
    {"client-share", OPT_INT, OFF(client_share_pct), 1, 100, "PCT",
     "percent of each budget and --queue one client may hold (default 50)"},
    {"max-connections", OPT_INT, OFF(max_connections), 16, 1000000, "N",
     "open connections at most (default 10000)"},
    {"max-per-ip", OPT_INT, OFF(max_per_ip), 1, 1000000, "N",
     "open connections per client address at most (default 4096)"},
    {"conn-timeout", OPT_INT, OFF(conn_timeout_s), 1, 3600, "S",
     "seconds an idle connection is kept (default 15)"},
    {"head-timeout-ms", OPT_INT, OFF(head_timeout_ms), 0, 600000, "MS",
     "close a connection whose request head is not whole MS after its "
     "first byte (0-600000, 0 = no deadline; default 10000)"},
    {"body-max", OPT_INT, OFF(body_max), 64, 1 << 30, "BYTES",
     "bytes of a JSON request body at most; larger is 413 (default "
     "16777216 = 16 MiB: 1,000,000 numbers)"},
    {"grace-ms", OPT_INT, OFF(grace_ms), 0, 600000, "MS",
     "shutdown grace period for in-flight requests (default 5000)"},
    {"allow-host", OPT_HOSTS, OFF(allow_hosts), 0, 0, "HOST[:PORT]",
     "extra allowed fetch target, repeatable (variable: comma list)"},
    {"web-root", OPT_PATH, OFF(web_root), 0, 0, "DIR",
     "directory of the dashboard's files (default web)"},
    {"log-level", OPT_LEVEL, OFF(log_level), 0, 0, "LEVEL",
     "error, warn, info or debug (default info)"},
    {"log-format", OPT_FORMAT, OFF(log_format), 0, 0, "FORMAT",
     "text, or json for JSON Lines (default text)"},
    {"help", OPT_FLAG, CONFIG_HELP, 0, 0, NULL, "print this help and exit"},
    {"version", OPT_FLAG, CONFIG_VERSION, 0, 0, NULL,
     "print the version and exit"},
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

static const struct opt_def *find_opt(const char *name, size_t len);
static int apply(struct config *cfg, const struct opt_def *o, const char *value,
                 const char *origin, char *err, size_t err_len);
static int parse_int(const char *text, long min, long max, long *out);
static bool valid_host(const char *host);
static void env_name(const struct opt_def *o, char *out, size_t out_len);

void config_defaults(struct config *cfg)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        cores = 1;
    if (cores > 256)
        cores = 256;

    memset(cfg, 0, sizeof(*cfg));
    cfg->action = CONFIG_RUN;
    strcpy(cfg->bind, "127.0.0.1");
    cfg->port = 8080;
    cfg->threads = cores < 2 ? 2 : (int)cores;
    cfg->workers = (int)cores;
    cfg->demo_threads = 32;
    cfg->queue = 1024;
    cfg->job_timeout_ms = 30000;
    cfg->fetch_max_bytes = 1 << 20;
    cfg->budget_tasks = 400000;
    cfg->budget_timers = 400000;
    cfg->budget_transfers = 2000;
    cfg->budget_bytes = 96 << 20;
    cfg->client_share_pct = 50;
    cfg->max_connections = 10000;
    cfg->max_per_ip = 4096;
    cfg->conn_timeout_s = 15;
    cfg->head_timeout_ms = 10000;
    cfg->grace_ms = 5000;
    cfg->body_max = 16 << 20;
    strcpy(cfg->web_root, "web");
    cfg->log_level = LOG_INFO;
    cfg->log_format = LOG_TEXT;
}

int config_load(struct config *cfg, int argc, char *const argv[],
                char *const envp[], char *err, size_t err_len)
{
    char var[64];
    bool env_hosts_pending = true;

    /* Variables first, so that flags override them. */
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt_def *o = &opts[i];
        if (o->kind == OPT_FLAG)
            continue;
        env_name(o, var, sizeof(var));
        size_t var_len = strlen(var);
        for (size_t e = 0; envp && envp[e]; e++) {
            if (strncmp(envp[e], var, var_len) != 0 || envp[e][var_len] != '=')
                continue;
            int rc = apply(cfg, o, envp[e] + var_len + 1, var, err, err_len);
            if (rc < 0)
                return rc;
        }
    }

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0)
            arg = "--help";
        else if (strcmp(arg, "-V") == 0)
            arg = "--version";
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, err_len,
                     "unexpected argument '%s' (options start with --; "
                     "see --help)",
                     arg);
            return -EINVAL;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        const struct opt_def *o = find_opt(name, name_len);
        if (!o) {
            snprintf(err, err_len, "unknown option '--%.*s' (see --help)",
                     (int)name_len, name);
            return -EINVAL;
        }
        if (o->kind == OPT_FLAG) {
            if (eq) {
                snprintf(err, err_len, "option '--%s' takes no value", o->name);
                return -EINVAL;
            }
            if (cfg->action == CONFIG_RUN)
                cfg->action = (enum config_action)o->offset;
            continue;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (!value) {
            if (i + 1 >= argc) {
                snprintf(err, err_len, "option '--%s' needs a value (%s)",
                         o->name, o->metavar);
                return -EINVAL;
            }
            value = argv[++i];
        }
        if (o->kind == OPT_HOSTS && env_hosts_pending) {
            /* The first --allow-host flag replaces the variable's list. */
            cfg->n_allow_hosts = 0;
            env_hosts_pending = false;
        }
        char origin[80];
        snprintf(origin, sizeof(origin), "--%s", o->name);
        int rc = apply(cfg, o, value, origin, err, err_len);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void config_usage(FILE *out, const char *program)
{
    fprintf(out,
            "usage: %s [options]\n"
            "Concurrency Lab: runs concurrency demos and answers with "
            "measured timings.\n\n",
            program);
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt_def *o = &opts[i];
        char left[64];
        if (o->metavar)
            snprintf(left, sizeof(left), "--%s %s", o->name, o->metavar);
        else
            snprintf(left, sizeof(left), "--%s", o->name);
        fprintf(out, "  %-30s %s\n", left, o->help);
        if (o->kind != OPT_FLAG) {
            char var[64];
            env_name(o, var, sizeof(var));
            fprintf(out, "  %-30s   env %s\n", "", var);
        }
    }
}

static const struct opt_def *find_opt(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        if (strlen(opts[i].name) == len &&
            strncmp(opts[i].name, name, len) == 0)
            return &opts[i];
    }
    return NULL;
}

static void env_name(const struct opt_def *o, char *out, size_t out_len)
{
    size_t n = (size_t)snprintf(out, out_len, "CONLAB_");
    for (const char *p = o->name; *p && n + 1 < out_len; p++)
        out[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[n] = '\0';
}

static int apply(struct config *cfg, const struct opt_def *o, const char *value,
                 const char *origin, char *err, size_t err_len)
{
    char *field = (char *)cfg + o->offset;

    switch (o->kind) {
    case OPT_INT: {
        long v;
        if (parse_int(value, o->min, o->max, &v) < 0) {
            snprintf(err, err_len, "%s: '%s' is not an integer in [%ld, %ld]",
                     origin, value, o->min, o->max);
            return -EINVAL;
        }
        *(int *)(void *)field = (int)v;
        return 0;
    }
    case OPT_BIND: {
        unsigned char addr[16];
        if (strlen(value) >= CONFIG_BIND_MAX ||
            (inet_pton(AF_INET, value, addr) != 1 &&
             inet_pton(AF_INET6, value, addr) != 1)) {
            snprintf(err, err_len,
                     "%s: '%s' is not an IPv4 or IPv6 address (e.g. "
                     "127.0.0.1, ::1, 0.0.0.0)",
                     origin, value);
            return -EINVAL;
        }
        strcpy(cfg->bind, value);
        return 0;
    }
    case OPT_PATH: {
        struct stat st;
        if (value[0] == '\0' || strlen(value) >= sizeof(cfg->web_root)) {
            snprintf(err, err_len, "%s: needs a directory path", origin);
            return -EINVAL;
        }
        if (stat(value, &st) != 0 || !S_ISDIR(st.st_mode)) {
            snprintf(err, err_len, "%s: '%s' is not a directory", origin,
                     value);
            return -EINVAL;
        }
        strcpy(cfg->web_root, value);
        return 0;
    }
    case OPT_LEVEL:
        if (log_level_parse(value, &cfg->log_level) < 0) {
            snprintf(err, err_len,
                     "%s: '%s' is not a log level (error, warn, info, "
                     "debug)",
                     origin, value);
            return -EINVAL;
        }
        return 0;
    case OPT_FORMAT:
        if (log_format_parse(value, &cfg->log_format) < 0) {
            snprintf(err, err_len, "%s: '%s' is not a log format (text, json)",
                     origin, value);
            return -EINVAL;
        }
        return 0;
    case OPT_HOSTS: {
        /* A comma list, so that one variable can carry several hosts. */
        const char *p = value;
        for (;;) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            char host[CONFIG_HOST_MAX];
            if (len == 0 || len >= sizeof(host)) {
                snprintf(err, err_len,
                         "%s: needs HOST or HOST:PORT, at most %d bytes "
                         "each",
                         origin, CONFIG_HOST_MAX - 1);
                return -EINVAL;
            }
            memcpy(host, p, len);
            host[len] = '\0';
            if (!valid_host(host)) {
                snprintf(err, err_len,
                         "%s: '%s' is not HOST or HOST:PORT (a name, an "
                         "IPv4 address or a [IPv6] address)",
                         origin, host);
                return -EINVAL;
            }
            if (cfg->n_allow_hosts >= CONFIG_ALLOW_HOSTS_MAX) {
                snprintf(err, err_len, "%s: at most %d hosts", origin,
                         CONFIG_ALLOW_HOSTS_MAX);
                return -EINVAL;
            }
            strcpy(cfg->allow_hosts[cfg->n_allow_hosts++], host);
            if (!comma)
                return 0;
            p = comma + 1;
        }
    }
    case OPT_FLAG:
        break;
    }
    return -EINVAL;
}

static int parse_int(const char *text, long min, long max, long *out)
{
    const char *p = text;
    bool neg = false;
    long v = 0;

    if (*p == '-') {
        neg = true;
        p++;
    }
    if (!isdigit((unsigned char)*p))
        return -EINVAL;
    for (; isdigit((unsigned char)*p); p++) {
        int d = *p - '0';
        if (v > (LONG_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    if (*p != '\0')
        return -EINVAL;
    if (neg)
        v = -v;
    if (v < min || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

/* HOST[:PORT] where HOST is a DNS name, an IPv4 literal or [IPv6]. */
static bool valid_host(const char *host)
{
    const char *port = NULL;
    size_t name_len;

    if (host[0] == '[') {
        const char *close = strchr(host, ']');
        unsigned char addr[16];
        char literal[64];
        if (!close || (size_t)(close - host - 1) >= sizeof(literal))
            return false;
        memcpy(literal, host + 1, (size_t)(close - host - 1));
        literal[close - host - 1] = '\0';
        if (inet_pton(AF_INET6, literal, addr) != 1)
            return false;
        if (close[1] == ':')
            port = close + 2;
        else if (close[1] != '\0')
            return false;
    } else {
        const char *colon = strchr(host, ':');
        name_len = colon ? (size_t)(colon - host) : strlen(host);
        if (name_len == 0 || name_len > 253)
            return false;
        for (size_t i = 0; i < name_len; i++) {
            char c = host[i];
            if (!isalnum((unsigned char)c) && c != '-' && c != '.')
                return false;
        }
        if (colon)
            port = colon + 1;
    }
    if (port) {
        long v;
        if (parse_int(port, 1, 65535, &v) < 0 || port[0] == '-')
            return false;
    }
    return true;
}
