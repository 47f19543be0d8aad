/*
 * Unit tests of server/config.c: defaults, flags, CONLAB_* variables and
 * every rejection. The environment is always a test-made envp array, never
 * the process's own. The fixture holds a config with the defaults and a
 * temporary directory (with one regular file in it) for --web-root; the
 * teardown removes both.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../server/config.h"

struct fixture {
    struct config cfg;
    char dir[64];   /* a temporary directory */
    char file[128]; /* a regular file inside it */
    char err[256];
};

static int setup_config(void **state);
static int teardown_config(void **state);
static int load(struct fixture *f, char *const argv[], char *const envp[]);
static void expect_rejected(char *const argv[], char *const envp[],
                            const char *fragment);

/* A NULL-terminated argv with the program name in front. */
#define ARGV(...) ((char *const[]){"conlab", __VA_ARGS__, NULL})
#define NO_ARGS   ((char *const[]){"conlab", NULL})
#define ENVP(...) ((char *const[]){__VA_ARGS__, NULL})

static int setup_config(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    config_defaults(&f->cfg);
    snprintf(f->dir, sizeof(f->dir), "/tmp/conlab-test-config-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->file, sizeof(f->file), "%s/plain.txt", f->dir);
    FILE *fp = fopen(f->file, "w");
    if (!fp) {
        rmdir(f->dir);
        free(f);
        return -1;
    }
    fclose(fp);
    *state = f;
    return 0;
}

static int teardown_config(void **state)
{
    struct fixture *f = *state;
    int rc = 0;
    if (unlink(f->file) != 0 || rmdir(f->dir) != 0)
        rc = -1;
    free(f);
    return rc;
}

/* config_load() on argv (NULL-terminated) and envp. */
static int load(struct fixture *f, char *const argv[], char *const envp[])
{
    int argc = 0;
    while (argv[argc])
        argc++;
    f->err[0] = '\0';
    return config_load(&f->cfg, argc, argv, envp, f->err, sizeof(f->err));
}

/*
 * Asserts that argv/envp are refused with -EINVAL and a message holding
 * fragment (the option's name), on a fresh default config.
 */
static void expect_rejected(char *const argv[], char *const envp[],
                            const char *fragment)
{
    struct config cfg;
    char err[256] = "";
    int argc = 0;

    while (argv[argc])
        argc++;
    config_defaults(&cfg);
    int rc = config_load(&cfg, argc, argv, envp, err, sizeof(err));
    if (rc != -EINVAL || !strstr(err, fragment))
        fail_msg("'%s%s%s' (env '%s'): rc %d, message '%s' (wanted '%s')",
                 argc > 1 ? argv[1] : "", argc > 2 ? " " : "",
                 argc > 2 ? argv[2] : "", envp && envp[0] ? envp[0] : "", rc,
                 err, fragment);
}

/* ---- defaults ---- */

static void defaults(void **state)
{
    struct fixture *f = *state;
    const struct config *c = &f->cfg;

    assert_int_equal(c->action, CONFIG_RUN);
    assert_int_equal(c->port, 8080);
    assert_string_equal(c->bind, "127.0.0.1");
    assert_true(c->threads >= 2);
    assert_true(c->workers >= 1);
    assert_int_equal(c->demo_threads, 32);
    assert_int_equal(c->queue, 1024);
    assert_int_equal(c->job_timeout_ms, 30000);
    assert_int_equal(c->max_connections, 10000);
    assert_int_equal(c->max_per_ip, 4096);
    assert_int_equal(c->conn_timeout_s, 15);
    assert_int_equal(c->head_timeout_ms, 10000);
    assert_int_equal(c->grace_ms, 5000);
    assert_int_equal(c->budget_tasks, 400000);
    assert_int_equal(c->budget_timers, 400000);
    assert_int_equal(c->budget_transfers, 2000);
    assert_int_equal(c->budget_bytes, 100663296);
    assert_int_equal(c->client_share_pct, 50);
    assert_int_equal(c->n_allow_hosts, 0);
    assert_string_equal(c->web_root, "web");
    assert_int_equal(c->log_level, LOG_INFO);
}

static void no_flags_no_env_changes_nothing(void **state)
{
    struct fixture *f = *state;
    struct config fresh;

    config_defaults(&fresh);
    assert_int_equal(load(f, NO_ARGS, NULL), 0);
    assert_memory_equal(&f->cfg, &fresh, sizeof(fresh));
    assert_int_equal(load(f, NO_ARGS, ENVP("PATH=/bin", "HOME=/root")), 0);
    assert_memory_equal(&f->cfg, &fresh, sizeof(fresh));
}

/* ---- integer options ---- */

struct int_case {
    const char *flag;  /* "--port" */
    const char *var;   /* "CONLAB_PORT" */
    const char *value; /* in range and not the default */
    int expected;
    size_t offset; /* of the int in struct config */
};

#define INT_CASE(flag, var, value, expected, field)                            \
    {                                                                          \
        flag, var, value, expected, offsetof(struct config, field)             \
    }

static const struct int_case int_cases[] = {
    INT_CASE("--port", "CONLAB_PORT", "9090", 9090, port),
    INT_CASE("--threads", "CONLAB_THREADS", "3", 3, threads),
    INT_CASE("--workers", "CONLAB_WORKERS", "2", 2, workers),
    INT_CASE("--demo-threads", "CONLAB_DEMO_THREADS", "7", 7, demo_threads),
    INT_CASE("--queue", "CONLAB_QUEUE", "10", 10, queue),
    INT_CASE("--job-timeout-ms", "CONLAB_JOB_TIMEOUT_MS", "1234", 1234,
             job_timeout_ms),
    INT_CASE("--max-connections", "CONLAB_MAX_CONNECTIONS", "100", 100,
             max_connections),
    INT_CASE("--max-per-ip", "CONLAB_MAX_PER_IP", "5", 5, max_per_ip),
    INT_CASE("--conn-timeout", "CONLAB_CONN_TIMEOUT", "60", 60, conn_timeout_s),
    INT_CASE("--head-timeout-ms", "CONLAB_HEAD_TIMEOUT_MS", "1500", 1500,
             head_timeout_ms),
    INT_CASE("--head-timeout-ms", "CONLAB_HEAD_TIMEOUT_MS", "0", 0,
             head_timeout_ms),
    INT_CASE("--grace-ms", "CONLAB_GRACE_MS", "0", 0, grace_ms),
    INT_CASE("--budget-tasks", "CONLAB_BUDGET_TASKS", "123", 123, budget_tasks),
    INT_CASE("--budget-timers", "CONLAB_BUDGET_TIMERS", "456", 456,
             budget_timers),
    INT_CASE("--budget-transfers", "CONLAB_BUDGET_TRANSFERS", "7", 7,
             budget_transfers),
    INT_CASE("--budget-bytes", "CONLAB_BUDGET_BYTES", "2097152", 2097152,
             budget_bytes),
    INT_CASE("--client-share", "CONLAB_CLIENT_SHARE", "25", 25,
             client_share_pct),
};

#define N_INT_CASES (sizeof(int_cases) / sizeof(int_cases[0]))

static int field_of(const struct config *cfg, const struct int_case *c)
{
    return *(const int *)(const void *)((const char *)cfg + c->offset);
}

static void int_options_as_two_arguments(void **state)
{
    struct fixture *f = *state;

    for (size_t i = 0; i < N_INT_CASES; i++) {
        const struct int_case *c = &int_cases[i];
        config_defaults(&f->cfg);
        if (load(f, ARGV((char *)c->flag, (char *)c->value), NULL) != 0 ||
            field_of(&f->cfg, c) != c->expected)
            fail_msg("%s %s: got %d, err '%s'", c->flag, c->value,
                     field_of(&f->cfg, c), f->err);
    }
}

static void int_options_with_equals(void **state)
{
    struct fixture *f = *state;

    for (size_t i = 0; i < N_INT_CASES; i++) {
        const struct int_case *c = &int_cases[i];
        char arg[64];
        snprintf(arg, sizeof(arg), "%s=%s", c->flag, c->value);
        config_defaults(&f->cfg);
        if (load(f, ARGV(arg), NULL) != 0 ||
            field_of(&f->cfg, c) != c->expected)
            fail_msg("%s: got %d, err '%s'", arg, field_of(&f->cfg, c), f->err);
    }
}

static void int_options_from_env(void **state)
{
    struct fixture *f = *state;

    for (size_t i = 0; i < N_INT_CASES; i++) {
        const struct int_case *c = &int_cases[i];
        char var[64];
        snprintf(var, sizeof(var), "%s=%s", c->var, c->value);
        config_defaults(&f->cfg);
        if (load(f, NO_ARGS, ENVP("HOME=/", var)) != 0 ||
            field_of(&f->cfg, c) != c->expected)
            fail_msg("%s: got %d, err '%s'", var, field_of(&f->cfg, c), f->err);
    }
}

static void int_bounds_inclusive(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(load(f, ARGV("--port", "0"), NULL), 0);
    assert_int_equal(f->cfg.port, 0);
    assert_int_equal(load(f, ARGV("--port", "65535"), NULL), 0);
    assert_int_equal(f->cfg.port, 65535);
    assert_int_equal(load(f, ARGV("--threads", "2"), NULL), 0);
    assert_int_equal(f->cfg.threads, 2);
    assert_int_equal(load(f, ARGV("--threads", "256"), NULL), 0);
    assert_int_equal(f->cfg.threads, 256);
    assert_int_equal(load(f, ARGV("--max-connections=16"), NULL), 0);
    assert_int_equal(f->cfg.max_connections, 16);
}

static void int_out_of_range(void **state)
{
    (void)state;
    expect_rejected(ARGV("--port", "65536"), NULL, "--port");
    expect_rejected(ARGV("--port=-1"), NULL, "--port");
    expect_rejected(ARGV("--threads", "1"), NULL, "--threads");
    expect_rejected(ARGV("--threads", "257"), NULL, "--threads");
    expect_rejected(ARGV("--workers", "0"), NULL, "--workers");
    expect_rejected(ARGV("--max-connections", "15"), NULL, "--max-connections");
    expect_rejected(ARGV("--conn-timeout", "3601"), NULL, "--conn-timeout");
    expect_rejected(ARGV("--head-timeout-ms", "600001"), NULL, "[0, 600000]");
    expect_rejected(ARGV("--head-timeout-ms=-1"), NULL, "--head-timeout-ms");
    expect_rejected(ARGV("--port", "99999999999999999999999"), NULL, "--port");
    /* The message says what is accepted. */
    expect_rejected(ARGV("--port", "65536"), NULL, "[0, 65535]");
    expect_rejected(ARGV("--threads", "1"), NULL, "[2, 256]");
}

static void int_not_an_integer(void **state)
{
    static const char *const bad[] = {"abc", "12x", "",     "+5", " 5",
                                      "5 ",  "1.0", "0x10", "-",  "1e3"};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char arg[32];
        snprintf(arg, sizeof(arg), "--queue=%s", bad[i]);
        expect_rejected(ARGV(arg), NULL, "--queue");
        expect_rejected(ARGV("--queue", (char *)bad[i]), NULL, "--queue");
    }
}

/* ---- admission budgets ---- */

static void budget_bounds(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(load(f, ARGV("--budget-tasks", "1"), NULL), 0);
    assert_int_equal(f->cfg.budget_tasks, 1);
    assert_int_equal(load(f, ARGV("--budget-timers=100000000"), NULL), 0);
    assert_int_equal(f->cfg.budget_timers, 100000000);
    assert_int_equal(load(f, ARGV("--budget-transfers", "1000000"), NULL), 0);
    assert_int_equal(f->cfg.budget_transfers, 1000000);
    assert_int_equal(load(f, ARGV("--budget-bytes", "1048576"), NULL), 0);
    assert_int_equal(f->cfg.budget_bytes, 1048576);
    assert_int_equal(load(f, ARGV("--budget-bytes", "2147483647"), NULL), 0);
    assert_int_equal(f->cfg.budget_bytes, 2147483647);
    assert_int_equal(load(f, ARGV("--client-share", "1"), NULL), 0);
    assert_int_equal(f->cfg.client_share_pct, 1);
    assert_int_equal(load(f, ARGV("--client-share", "100"), NULL), 0);
    assert_int_equal(f->cfg.client_share_pct, 100);

    expect_rejected(ARGV("--budget-tasks", "0"), NULL, "--budget-tasks");
    expect_rejected(ARGV("--budget-timers", "100000001"), NULL,
                    "--budget-timers");
    expect_rejected(ARGV("--budget-transfers", "0"), NULL,
                    "--budget-transfers");
    expect_rejected(ARGV("--budget-transfers", "1000001"), NULL,
                    "--budget-transfers");
    /* Bytes, not MiB: a small number is refused, and says the range. */
    expect_rejected(ARGV("--budget-bytes", "96"), NULL,
                    "[1048576, 2147483647]");
    expect_rejected(ARGV("--budget-bytes", "2147483648"), NULL,
                    "--budget-bytes");
    expect_rejected(ARGV("--budget-bytes", "96M"), NULL, "--budget-bytes");
    expect_rejected(ARGV("--client-share", "0"), NULL, "[1, 100]");
    expect_rejected(ARGV("--client-share", "101"), NULL, "--client-share");
    expect_rejected(ARGV("--client-share", "50%"), NULL, "--client-share");
    expect_rejected(NO_ARGS, ENVP("CONLAB_CLIENT_SHARE=0"),
                    "CONLAB_CLIENT_SHARE");
    expect_rejected(NO_ARGS, ENVP("CONLAB_BUDGET_BYTES=1"),
                    "CONLAB_BUDGET_BYTES");
}

static void usage_lists_budget_options(void **state)
{
    static const char *const names[] = {
        "--budget-tasks",
        "--budget-timers",
        "--budget-transfers",
        "--budget-bytes",
        "--client-share",
        "CONLAB_BUDGET_TASKS",
        "CONLAB_BUDGET_BYTES",
        "CONLAB_CLIENT_SHARE",
        "(default 400000)",
        "(default 2000)",
        "(default 100663296 = 96 MiB)",
        "(default 50)",
    };
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    (void)state;
    assert_non_null(out);
    config_usage(out, "conlab");
    fclose(out);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!strstr(text, names[i])) {
            free(text);
            fail_msg("usage lacks %s", names[i]);
        }
    }
    free(text);
}

/* ---- --bind ---- */

static void bind_option(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(load(f, ARGV("--bind", "::1"), NULL), 0);
    assert_string_equal(f->cfg.bind, "::1");
    assert_int_equal(load(f, ARGV("--bind=0.0.0.0"), NULL), 0);
    assert_string_equal(f->cfg.bind, "0.0.0.0");
    assert_int_equal(load(f, NO_ARGS, ENVP("CONLAB_BIND=10.1.2.3")), 0);
    assert_string_equal(f->cfg.bind, "10.1.2.3");
    assert_int_equal(load(f, ARGV("--bind", "fe80::1:2"), NULL), 0);
    assert_string_equal(f->cfg.bind, "fe80::1:2");
}

static void bind_rejects_non_literals(void **state)
{
    static const char *const bad[] = {
        "localhost", "1.2.3", "::g",          "",           "1.2.3.4.5",
        "256.0.0.1", "[::1]", "127.0.0.1:80", " 127.0.0.1", "1.2.3.4 ",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_rejected(ARGV("--bind", (char *)bad[i]), NULL, "--bind");
    expect_rejected(NO_ARGS, ENVP("CONLAB_BIND=localhost"), "CONLAB_BIND");
}

/* ---- --web-root ---- */

static void web_root_option(void **state)
{
    struct fixture *f = *state;
    char arg[128];

    assert_int_equal(load(f, ARGV("--web-root", f->dir), NULL), 0);
    assert_string_equal(f->cfg.web_root, f->dir);

    config_defaults(&f->cfg);
    snprintf(arg, sizeof(arg), "--web-root=%s", f->dir);
    assert_int_equal(load(f, ARGV(arg), NULL), 0);
    assert_string_equal(f->cfg.web_root, f->dir);

    config_defaults(&f->cfg);
    snprintf(arg, sizeof(arg), "CONLAB_WEB_ROOT=%s", f->dir);
    assert_int_equal(load(f, NO_ARGS, ENVP(arg)), 0);
    assert_string_equal(f->cfg.web_root, f->dir);
}

static void web_root_must_be_a_directory(void **state)
{
    struct fixture *f = *state;
    char missing[128];

    snprintf(missing, sizeof(missing), "%s/missing", f->dir);
    expect_rejected(ARGV("--web-root", f->file), NULL, "--web-root");
    expect_rejected(ARGV("--web-root", missing), NULL, "--web-root");
    expect_rejected(ARGV("--web-root", ""), NULL, "--web-root");
    expect_rejected(ARGV("--web-root", f->file), NULL, "not a directory");
    /* A refused value leaves the default. */
    assert_int_equal(load(f, ARGV("--web-root", f->file), NULL), -EINVAL);
    assert_string_equal(f->cfg.web_root, "web");
}

/* ---- --log-level ---- */

static void log_level_option(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(load(f, ARGV("--log-level", "debug"), NULL), 0);
    assert_int_equal(f->cfg.log_level, LOG_DEBUG);
    assert_int_equal(load(f, ARGV("--log-level=error"), NULL), 0);
    assert_int_equal(f->cfg.log_level, LOG_ERROR);
    assert_int_equal(load(f, NO_ARGS, ENVP("CONLAB_LOG_LEVEL=warn")), 0);
    assert_int_equal(f->cfg.log_level, LOG_WARN);
    assert_int_equal(load(f, ARGV("--log-level", "info"), NULL), 0);
    assert_int_equal(f->cfg.log_level, LOG_INFO);
}

static void log_level_rejected(void **state)
{
    (void)state;
    expect_rejected(ARGV("--log-level", "verbose"), NULL, "--log-level");
    expect_rejected(ARGV("--log-level", ""), NULL, "--log-level");
    expect_rejected(ARGV("--log-level=3"), NULL, "--log-level");
    expect_rejected(ARGV("--log-level", "verbose"), NULL,
                    "error, warn, info, debug");
}

/* ---- --log-format ---- */

static void log_format_option(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(f->cfg.log_format, LOG_TEXT); /* the default */
    assert_int_equal(load(f, ARGV("--log-format", "json"), NULL), 0);
    assert_int_equal(f->cfg.log_format, LOG_JSON);
    assert_int_equal(load(f, ARGV("--log-format=text"), NULL), 0);
    assert_int_equal(f->cfg.log_format, LOG_TEXT);
    assert_int_equal(load(f, ARGV("--log-format=json"), NULL), 0);
    assert_int_equal(f->cfg.log_format, LOG_JSON);

    config_defaults(&f->cfg);
    assert_int_equal(load(f, NO_ARGS, ENVP("CONLAB_LOG_FORMAT=json")), 0);
    assert_int_equal(f->cfg.log_format, LOG_JSON);
    config_defaults(&f->cfg);
    assert_int_equal(load(f, NO_ARGS, ENVP("CONLAB_LOG_FORMAT=text")), 0);
    assert_int_equal(f->cfg.log_format, LOG_TEXT);

    /* A flag wins over the variable, both ways. */
    config_defaults(&f->cfg);
    assert_int_equal(
        load(f, ARGV("--log-format", "text"), ENVP("CONLAB_LOG_FORMAT=json")),
        0);
    assert_int_equal(f->cfg.log_format, LOG_TEXT);
    config_defaults(&f->cfg);
    assert_int_equal(
        load(f, ARGV("--log-format", "json"), ENVP("CONLAB_LOG_FORMAT=text")),
        0);
    assert_int_equal(f->cfg.log_format, LOG_JSON);
    /* Independent of the level. */
    config_defaults(&f->cfg);
    assert_int_equal(
        load(f, ARGV("--log-format", "json", "--log-level", "debug"), NULL), 0);
    assert_int_equal(f->cfg.log_format, LOG_JSON);
    assert_int_equal(f->cfg.log_level, LOG_DEBUG);
}

static void log_format_rejected(void **state)
{
    static const char *const bad[] = {"xml",   "JSON",  "Text", "",
                                      "json ", "jsonl", "1"};
    struct fixture *f = *state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_rejected(ARGV("--log-format", (char *)bad[i]), NULL,
                        "--log-format");
    expect_rejected(ARGV("--log-format=xml"), NULL, "--log-format");
    /* The message says what was given and what is accepted. */
    expect_rejected(ARGV("--log-format", "xml"), NULL, "'xml'");
    expect_rejected(ARGV("--log-format", "xml"), NULL, "text, json");
    expect_rejected(ARGV("--log-format"), NULL, "needs a value");
    expect_rejected(NO_ARGS, ENVP("CONLAB_LOG_FORMAT=xml"),
                    "CONLAB_LOG_FORMAT");
    /* A bad variable is an error even when the flag would override it. */
    expect_rejected(ARGV("--log-format", "json"),
                    ENVP("CONLAB_LOG_FORMAT=yaml"), "CONLAB_LOG_FORMAT");
    /* A refused value leaves the format alone. */
    assert_int_equal(load(f, ARGV("--log-format", "xml"), NULL), -EINVAL);
    assert_int_equal(f->cfg.log_format, LOG_TEXT);
}

static void usage_lists_log_format(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    (void)state;
    assert_non_null(out);
    config_usage(out, "conlab");
    fclose(out);
    assert_non_null(strstr(text, "--log-format"));
    assert_non_null(strstr(text, "CONLAB_LOG_FORMAT"));
    assert_non_null(strstr(text, "json"));
    free(text);
}

/* ---- --allow-host ---- */

static void allow_host_repeatable(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(
        load(f,
             ARGV("--allow-host", "example.com", "--allow-host=10.0.0.1:8080",
                  "--allow-host", "[::1]:8443", "--allow-host", "[fe80::1]"),
             NULL),
        0);
    assert_int_equal(f->cfg.n_allow_hosts, 4);
    assert_string_equal(f->cfg.allow_hosts[0], "example.com");
    assert_string_equal(f->cfg.allow_hosts[1], "10.0.0.1:8080");
    assert_string_equal(f->cfg.allow_hosts[2], "[::1]:8443");
    assert_string_equal(f->cfg.allow_hosts[3], "[fe80::1]");
}

static void allow_host_env_comma_list(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(
        load(f, NO_ARGS,
             ENVP("CONLAB_ALLOW_HOST=a.example,b-c.example:1,[::1]:65535")),
        0);
    assert_int_equal(f->cfg.n_allow_hosts, 3);
    assert_string_equal(f->cfg.allow_hosts[0], "a.example");
    assert_string_equal(f->cfg.allow_hosts[1], "b-c.example:1");
    assert_string_equal(f->cfg.allow_hosts[2], "[::1]:65535");
}

static void allow_host_flags_replace_env_list(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(
        load(f, ARGV("--allow-host", "c.example", "--allow-host", "d.example"),
             ENVP("CONLAB_ALLOW_HOST=a.example,b.example")),
        0);
    assert_int_equal(f->cfg.n_allow_hosts, 2);
    assert_string_equal(f->cfg.allow_hosts[0], "c.example");
    assert_string_equal(f->cfg.allow_hosts[1], "d.example");
}

static void allow_host_env_kept_without_flags(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(
        load(f, ARGV("--port", "1"), ENVP("CONLAB_ALLOW_HOST=a.example")), 0);
    assert_int_equal(f->cfg.n_allow_hosts, 1);
    assert_string_equal(f->cfg.allow_hosts[0], "a.example");
}

static void allow_host_rejected(void **state)
{
    static const char *const bad[] = {
        "a b",   "[::1",     "host:0",      "host:99999", "",
        "host:", "host:+80", "host:-1",     "host:8x",    "[::1]x",
        "[zz]",  "[]",       "under_score", ":80",        "a:b:c",
        "a,,b",  "a,",       "[::1]:0",     "é.example",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_rejected(ARGV("--allow-host", (char *)bad[i]), NULL,
                        "--allow-host");
    expect_rejected(NO_ARGS, ENVP("CONLAB_ALLOW_HOST=good,a b"),
                    "CONLAB_ALLOW_HOST");
}

static void allow_host_cap(void **state)
{
    struct fixture *f = *state;
    char *argv[2 * (CONFIG_ALLOW_HOSTS_MAX + 1) + 2];
    int argc = 0;

    argv[argc++] = "conlab";
    for (int i = 0; i < CONFIG_ALLOW_HOSTS_MAX; i++) {
        argv[argc++] = "--allow-host";
        argv[argc++] = "h.example";
    }
    argv[argc] = NULL;
    assert_int_equal(load(f, argv, NULL), 0);
    assert_int_equal(f->cfg.n_allow_hosts, CONFIG_ALLOW_HOSTS_MAX);

    argv[argc++] = "--allow-host";
    argv[argc++] = "one-too-many.example";
    argv[argc] = NULL;
    config_defaults(&f->cfg);
    assert_int_equal(load(f, argv, NULL), -EINVAL);
    assert_non_null(strstr(f->err, "--allow-host"));
    assert_non_null(strstr(f->err, "at most 32"));
}

static void allow_host_env_cap(void **state)
{
    char var[32 + 2 * (CONFIG_ALLOW_HOSTS_MAX + 1)];
    size_t n = (size_t)snprintf(var, sizeof(var), "CONLAB_ALLOW_HOST=");

    (void)state;
    for (int i = 0; i <= CONFIG_ALLOW_HOSTS_MAX; i++) {
        var[n++] = 'h';
        var[n++] = ',';
    }
    var[n - 1] = '\0'; /* no trailing comma */
    expect_rejected(NO_ARGS, ENVP(var), "CONLAB_ALLOW_HOST");
}

/* ---- env and flags together ---- */

static void flag_wins_over_env(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(load(f, ARGV("--port", "2222", "--log-level", "warn"),
                          ENVP("CONLAB_PORT=1111", "CONLAB_LOG_LEVEL=debug",
                               "CONLAB_QUEUE=5")),
                     0);
    assert_int_equal(f->cfg.port, 2222);
    assert_int_equal(f->cfg.log_level, LOG_WARN);
    assert_int_equal(f->cfg.queue, 5);
}

static void env_names_must_match_exactly(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(
        load(f, NO_ARGS,
             ENVP("CONLAB_PORTX=1", "XCONLAB_PORT=2", "conlab_port=3",
                  "CONLAB_PORT", "CONLAB_=4", "CONLAB_DEMO-THREADS=5")),
        0);
    assert_int_equal(f->cfg.port, 8080);
    assert_int_equal(f->cfg.demo_threads, 32);
}

static void env_value_rejected_names_variable(void **state)
{
    (void)state;
    expect_rejected(NO_ARGS, ENVP("CONLAB_PORT=http"), "CONLAB_PORT");
    expect_rejected(NO_ARGS, ENVP("CONLAB_THREADS=1"), "CONLAB_THREADS");
    expect_rejected(NO_ARGS, ENVP("CONLAB_LOG_LEVEL=loud"), "CONLAB_LOG_LEVEL");
    expect_rejected(NO_ARGS, ENVP("CONLAB_WEB_ROOT=/nonexistent/dir"),
                    "CONLAB_WEB_ROOT");
    /* A bad variable is an error even when a flag would override it. */
    expect_rejected(ARGV("--port", "1"), ENVP("CONLAB_PORT=http"),
                    "CONLAB_PORT");
}

/* ---- actions ---- */

static void help_and_version(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(load(f, ARGV("-h"), NULL), 0);
    assert_int_equal(f->cfg.action, CONFIG_HELP);
    config_defaults(&f->cfg);
    assert_int_equal(load(f, ARGV("--help"), NULL), 0);
    assert_int_equal(f->cfg.action, CONFIG_HELP);
    config_defaults(&f->cfg);
    assert_int_equal(load(f, ARGV("-V"), NULL), 0);
    assert_int_equal(f->cfg.action, CONFIG_VERSION);
    config_defaults(&f->cfg);
    assert_int_equal(load(f, ARGV("--version"), NULL), 0);
    assert_int_equal(f->cfg.action, CONFIG_VERSION);
    config_defaults(&f->cfg);
    assert_int_equal(load(f, ARGV("--port", "1", "--help"), NULL), 0);
    assert_int_equal(f->cfg.action, CONFIG_HELP);
    assert_int_equal(f->cfg.port, 1);
}

static void flags_take_no_value(void **state)
{
    (void)state;
    expect_rejected(ARGV("--help=yes"), NULL, "--help");
    expect_rejected(ARGV("--version="), NULL, "--version");
}

/* ---- malformed command lines ---- */

static void unknown_option(void **state)
{
    (void)state;
    expect_rejected(ARGV("--nope"), NULL, "--nope");
    expect_rejected(ARGV("--nope=1"), NULL, "--nope");
    expect_rejected(ARGV("--Port", "1"), NULL, "--Port");
    expect_rejected(ARGV("--por", "1"), NULL, "--por");
    expect_rejected(ARGV("--port-x", "1"), NULL, "--port-x");
    expect_rejected(ARGV("--"), NULL, "--");
}

static void missing_value(void **state)
{
    (void)state;
    expect_rejected(ARGV("--port"), NULL, "--port");
    expect_rejected(ARGV("--threads", "4", "--web-root"), NULL, "--web-root");
    expect_rejected(ARGV("--allow-host"), NULL, "--allow-host");
    expect_rejected(ARGV("--port"), NULL, "needs a value");
}

static void positional_argument(void **state)
{
    (void)state;
    expect_rejected(ARGV("serve"), NULL, "'serve'");
    expect_rejected(ARGV("--port", "1", "extra"), NULL, "'extra'");
    expect_rejected(ARGV("-p", "1"), NULL, "'-p'");
    expect_rejected(ARGV("-"), NULL, "'-'");
}

static void small_error_buffer(void **state)
{
    struct config cfg;
    char err[17];

    (void)state;
    memset(err, '#', sizeof(err));
    config_defaults(&cfg);
    assert_int_equal(
        config_load(&cfg, 2, ARGV("--no-such-option-at-all"), NULL, err, 16),
        -EINVAL);
    assert_int_equal(strlen(err), 15);
    assert_int_equal(err[16], '#');
}

static void usage_lists_every_option(void **state)
{
    static const char *const names[] = {
        "--bind",           "--port",
        "--threads",        "--workers",
        "--demo-threads",   "--queue",
        "--job-timeout-ms", "--max-connections",
        "--max-per-ip",     "--conn-timeout",
        "--grace-ms",       "--allow-host",
        "--web-root",       "--log-level",
        "--help",           "--version",
        "CONLAB_PORT",      "CONLAB_ALLOW_HOST",
    };
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    (void)state;
    assert_non_null(out);
    config_usage(out, "conlab");
    fclose(out);
    assert_non_null(strstr(text, "usage: conlab"));
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!strstr(text, names[i])) {
            free(text);
            fail_msg("usage lacks %s", names[i]);
        }
    }
    /* The head deadline's range is stated where it is set. */
    bool head_ok = strstr(text, "--head-timeout-ms MS") &&
                   strstr(text, "CONLAB_HEAD_TIMEOUT_MS") &&
                   strstr(text, "0 = no deadline");
    free(text);
    assert_true(head_ok);
}

int main(void)
{
#define T(name)                                                                \
    cmocka_unit_test_setup_teardown(name, setup_config, teardown_config)
    const struct CMUnitTest tests[] = {
        T(defaults),
        T(no_flags_no_env_changes_nothing),
        T(int_options_as_two_arguments),
        T(int_options_with_equals),
        T(int_options_from_env),
        T(int_bounds_inclusive),
        T(int_out_of_range),
        T(int_not_an_integer),
        T(budget_bounds),
        T(usage_lists_budget_options),
        T(bind_option),
        T(bind_rejects_non_literals),
        T(web_root_option),
        T(web_root_must_be_a_directory),
        T(log_level_option),
        T(log_level_rejected),
        T(log_format_option),
        T(log_format_rejected),
        T(usage_lists_log_format),
        T(allow_host_repeatable),
        T(allow_host_env_comma_list),
        T(allow_host_flags_replace_env_list),
        T(allow_host_env_kept_without_flags),
        T(allow_host_rejected),
        T(allow_host_cap),
        T(allow_host_env_cap),
        T(flag_wins_over_env),
        T(env_names_must_match_exactly),
        T(env_value_rejected_names_variable),
        T(help_and_version),
        T(flags_take_no_value),
        T(unknown_option),
        T(missing_value),
        T(positional_argument),
        T(small_error_buffer),
        T(usage_lists_every_option),
    };
#undef T
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
