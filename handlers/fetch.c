/*
 * fetch: GET /run/fetch, concurrent outbound HTTP. Each URL is one task:
 * on the event loop (async, libcurl multi), on the demo threads (threads,
 * one blocking transfer each) or one after another (sequential). Per URL
 * it reports the HTTP status, bytes, time and any error; a URL that fails
 * is a result, not a failed request.
 *
 * Outbound safety (an open fetcher is an SSRF hole): every target is
 * checked against the allow-list (allow.h) before anything is sent, and a
 * refused one fails the whole request with 403 before any connection;
 * every connection, redirects included, is checked again on its resolved
 * address (CURLOPT_OPENSOCKETFUNCTION); only http and https, at most 3
 * redirects, proxies ignored, a connect and a total timeout, and a body cap
 * counted in the write callback (--fetch-max-bytes).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../server/allow.h"
#include "../server/clock.h"
#include "../server/http.h"
#include "../server/loop.h"
#include "../server/params.h"
#include "fetch.h"
#include "handlers.h"
#include "run.h"

#define URLS_MAX           100
#define COUNT_MAX          1000
#define DELAY_MS_MAX       10000
#define CONNECT_TIMEOUT_MS 2000L
#define REDIRECTS_MAX      3L

struct fetch_item {
    struct loop_fetch lf; /* async mode */
    struct run_task *task;
    const struct allow_list *allow;
    uint64_t max_bytes;
    CURL *easy;
    char url[ALLOW_URL_MAX];
    char errbuf[CURL_ERROR_SIZE];
    struct fetch_outcome out;
};

struct fetch_state {
    size_t n;
    struct fetch_item *items;
    uint64_t delay_ms; /* the /delay targets' wait; 0 for given URLs */
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct fetch_item *it = arg;
    (void)data;
    it->out.bytes += size * nmemb;
    if (it->out.bytes > it->max_bytes) {
        it->out.too_big = true;
        return 0; /* aborts: chunked bodies are not stopped by MAXFILESIZE */
    }
    return size * nmemb;
}

static curl_socket_t on_open_socket(void *arg, curlsocktype purpose,
                                    struct curl_sockaddr *addr)
{
    const struct allow_list *allow = arg;
    (void)purpose;
    if (!allow_address(allow, &addr->addr))
        return CURL_SOCKET_BAD; /* never contacted */
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

/*
 * A blocking transfer on a demo thread gives up when the service stops, so
 * that shutdown does not wait for it (libcurl calls this at least once a
 * second). Async transfers are cancelled by the loop instead.
 */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
    struct fetch_item *it = arg;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return it->task && it->task->run->mode != RUN_ASYNC &&
           run_check(it->task) == -ESHUTDOWN;
}

static int setup(struct fetch_item *it, const struct config *cfg)
{
    CURL *e = curl_easy_init();
    if (!e)
        return -ENOMEM;
    it->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, it->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, REDIRECTS_MAX);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)cfg->job_timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, it);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, it->errbuf);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, (void *)it->allow);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "conlab/" CONLAB_VERSION);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, it);
    return 0;
}

void fetch_outcome_finish(struct fetch_outcome *o, CURLcode rc, long status,
                          curl_off_t total_us, const char *errbuf,
                          uint64_t max_bytes)
{
    o->status = status;
    o->ms = (double)total_us / 1000.0;
    if (o->too_big) {
        o->has_error = true;
        snprintf(o->error, sizeof(o->error),
                 "body larger than %llu bytes (--fetch-max-bytes)",
                 (unsigned long long)max_bytes);
    } else if (rc != CURLE_OK) {
        o->has_error = true;
        snprintf(o->error, sizeof(o->error), "%.150s",
                 errbuf && errbuf[0] ? errbuf : curl_easy_strerror(rc));
    }
}

enum fetch_kind fetch_outcome_kind(const struct fetch_outcome *o)
{
    if (o->too_big)
        return FETCH_TOO_LARGE;
    if (o->has_error)
        return FETCH_ERROR;
    return o->status >= 200 && o->status < 400 ? FETCH_OK : FETCH_HTTP_ERROR;
}

static _Atomic uint64_t fetches_total[FETCH_KINDS];

void fetch_write_metrics(FILE *out)
{
    static const char *const names[FETCH_KINDS] = {"ok", "http_error",
                                                   "too_large", "error"};
    fputs("# HELP conlab_fetches_total Outbound fetches of /run/fetch, by "
          "outcome.\n"
          "# TYPE conlab_fetches_total counter\n",
          out);
    for (size_t k = 0; k < FETCH_KINDS; k++)
        fprintf(out, "conlab_fetches_total{outcome=\"%s\"} %llu\n", names[k],
                (unsigned long long)atomic_load_explicit(&fetches_total[k],
                                                         memory_order_relaxed));
}

void fetch_outcome_tally(const struct fetch_outcome *const outcomes[], size_t n,
                         uint64_t *ok, uint64_t *bytes)
{
    *ok = 0;
    *bytes = 0;
    for (size_t i = 0; i < n; i++) {
        const struct fetch_outcome *o = outcomes[i];
        *ok += !o->has_error && o->status >= 200 && o->status < 400;
        *bytes += o->bytes;
    }
}

/* Records the outcome of a finished transfer and frees its handle. */
static void collect(struct fetch_item *it, CURLcode rc)
{
    curl_off_t us = 0;
    long status = 0;
    curl_easy_getinfo(it->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(it->easy, CURLINFO_TOTAL_TIME_T, &us);
    fetch_outcome_finish(&it->out, rc, status, us, it->errbuf, it->max_bytes);
    atomic_fetch_add_explicit(&fetches_total[fetch_outcome_kind(&it->out)], 1,
                              memory_order_relaxed);
    curl_easy_cleanup(it->easy);
    it->easy = NULL;
}

static int compute(struct run *run, struct run_task *task, prime_yield_fn yield,
                   void *yield_arg)
{
    struct fetch_state *st = run->state;
    struct fetch_item *it = &st->items[task->id];
    (void)yield;
    (void)yield_arg;
    int rc = run_check(task);
    if (rc < 0)
        return rc;
    /* No longer than what is left of the task's (or the run's) deadline;
     * a transfer cut short is that URL's result. */
    uint64_t now = clock_now_ns();
    long left_ms = now < task->deadline_ns
                       ? (long)((task->deadline_ns - now) / 1000000u) + 1
                       : 1;
    curl_easy_setopt(it->easy, CURLOPT_TIMEOUT_MS, left_ms);
    collect(it, curl_easy_perform(it->easy));
    return 0;
}

static void on_done(struct loop_fetch *lf, int status, CURLcode rc)
{
    struct fetch_item *it = (struct fetch_item *)lf;
    collect(it, rc);
    if (status != 0)
        snprintf(it->task->error, sizeof(it->task->error), "%s",
                 status == -ESHUTDOWN ? "the service is shutting down"
                                      : strerror(-status));
    run_task_done(it->task, status);
}

static int start_async(struct run *run)
{
    struct fetch_state *st = run->state;
    struct loop_fetch **all = malloc(st->n * sizeof(*all));
    if (!all)
        return -ENOMEM;
    for (size_t i = 0; i < st->n; i++) {
        st->items[i].lf.easy = st->items[i].easy;
        st->items[i].lf.done = on_done;
        all[i] = &st->items[i].lf;
    }
    int rc = loop_add_fetches(run->app->loop, all, st->n);
    free(all);
    return rc;
}

static void task_json(struct run *run, struct run_task *task, json_t *obj)
{
    struct fetch_state *st = run->state;
    const struct fetch_item *it = &st->items[task->id];
    json_object_set_new(obj, "url", json_string(it->url));
    const struct fetch_outcome *o = &it->out;
    json_object_set_new(obj, "status", json_integer(o->status));
    json_object_set_new(obj, "bytes", json_integer((json_int_t)o->bytes));
    json_object_set_new(obj, "ms", json_real(o->ms));
    json_object_set_new(obj, "error",
                        o->has_error ? json_string(o->error) : json_null());
}

static json_t *result_json(struct run *run)
{
    struct fetch_state *st = run->state;
    uint64_t ok = 0, bytes = 0;
    const struct fetch_outcome **all = malloc(st->n * sizeof(*all));
    if (!all)
        return NULL;
    for (size_t i = 0; i < st->n; i++)
        all[i] = &st->items[i].out;
    fetch_outcome_tally(all, st->n, &ok, &bytes);
    free(all);
    return json_pack("{s:I, s:I, s:I}", "ok", (json_int_t)ok, "failed",
                     (json_int_t)(st->n - ok), "bytes", (json_int_t)bytes);
}

static void free_state(void *arg)
{
    struct fetch_state *st = arg;
    for (size_t i = 0; i < st->n; i++) {
        if (st->items[i].easy)
            curl_easy_cleanup(st->items[i].easy);
    }
    free(st->items);
    free(st);
}

static const struct run_ops fetch_ops = {
    .compute = compute,
    .start_async = start_async,
    .task_json = task_json,
    .result_json = result_json,
    .free_state = free_state,
};

/* This server's own /delay, as the fetch demo's offline target. */
static void self_url(const struct app *app, int64_t ms, char *out,
                     size_t out_len)
{
    const char *bind = app->cfg->bind;
    bool v6 = strchr(bind, ':') != NULL;
    if (strcmp(bind, "0.0.0.0") == 0)
        bind = "127.0.0.1";
    else if (strcmp(bind, "::") == 0)
        bind = "::1";
    snprintf(out, out_len,
             v6 ? "http://[%s]:%d/delay?ms=%lld" : "http://%s:%d/delay?ms=%lld",
             bind, http_port(app->http), (long long)ms);
}

static struct run *prepare(struct app *app, struct request *req,
                           struct params *p, enum run_mode mode,
                           struct response *resp)
{
    const char *urls[URLS_MAX];
    size_t n_urls = 0;
    int64_t count, ms;

    if (params_strings(p, "url", URLS_MAX, urls, &n_urls) < 0 ||
        params_int(p, "count", 1, COUNT_MAX, 10, &count) < 0 ||
        params_int(p, "ms", 0, DELAY_MS_MAX, 100, &ms) < 0 ||
        params_finish(p) < 0)
        return NULL;
    if (n_urls && (params_has(p, "count") || params_has(p, "ms"))) {
        response_error(resp, 400,
                       "give either 'url' (repeatable, up to %d) or "
                       "'count' and 'ms', not both",
                       URLS_MAX);
        return NULL;
    }

    size_t n = n_urls ? n_urls : (size_t)count;
    struct fetch_state *st = calloc(1, sizeof(*st));
    struct fetch_item *items = calloc(n, sizeof(*items));
    json_t *echo = json_object();
    if (!st || !items || !echo) {
        free(st);
        free(items);
        json_decref(echo);
        response_error(resp, 500, "out of memory");
        return NULL;
    }
    st->items = items;
    st->n = n;
    st->delay_ms = n_urls ? 0 : (uint64_t)ms;
    for (size_t i = 0; i < n; i++) {
        struct fetch_item *it = &items[i];
        it->allow = app->allow;
        it->max_bytes = (uint64_t)app->cfg->fetch_max_bytes;
        char why[256];
        int rc = 0;
        if (!n_urls)
            self_url(app, ms, it->url, sizeof(it->url));
        else if (strlen(urls[i]) < sizeof(it->url))
            strcpy(it->url, urls[i]);
        else
            rc = -E2BIG;
        if (rc == -E2BIG)
            snprintf(why, sizeof(why), "url %zu is longer than %d bytes", i + 1,
                     ALLOW_URL_MAX - 1);
        else
            rc = allow_check_url(app->allow, it->url, why, sizeof(why));
        if (rc < 0) {
            int status = rc == -EINVAL || rc == -E2BIG ? 400 : 403;
            response_error(resp, status, "parameter 'url': %s", why);
            free_state(st);
            json_decref(echo);
            return NULL;
        }
        if (setup(it, app->cfg) < 0) {
            response_error(resp, 500, "out of memory");
            free_state(st);
            json_decref(echo);
            return NULL;
        }
    }
    if (n_urls) {
        json_t *list = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(list, json_string(items[i].url));
        json_object_set_new(echo, "url", list);
    } else {
        json_object_set_new(echo, "count", json_integer(count));
        json_object_set_new(echo, "ms", json_integer(ms));
    }

    struct run *run = run_new(app, req, "fetch", mode, echo, &fetch_ops, st, n);
    if (!run) {
        response_error(resp, 500, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        items[i].task = &run->tasks[i];
    return run;
}

/* The /delay targets wait in waves of the mode's lanes; given URLs: 0. */
static double estimate_ms(const struct run *run)
{
    const struct fetch_state *st = run->state;
    size_t lanes = run->n_tasks;
    if (run->mode == RUN_SEQUENTIAL)
        lanes = 1;
    else if (run->mode == RUN_THREADS)
        lanes = (size_t)run->app->cfg->demo_threads;
    return (double)((st->n + lanes - 1) / lanes * st->delay_ms);
}

static const enum run_mode modes[] = {RUN_SEQUENTIAL, RUN_THREADS, RUN_ASYNC};
static const char *const outcome[] = {"ok", "failed", NULL};

const struct demo demo_fetch = {
    .name = "fetch",
    .modes = modes,
    .n_modes = sizeof(modes) / sizeof(modes[0]),
    .default_mode = RUN_ASYNC,
    .outcome = outcome,
    .shrink = "count or ms",
    .prepare = prepare,
    .estimate_ms = estimate_ms,
};

enum handler_result fetch_handle(struct request *req, struct response *resp,
                                 void *ctx)
{
    return run_handle(&demo_fetch, ctx, req, resp);
}
