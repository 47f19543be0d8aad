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
 *
 * Memory: a burst of 1,000 self-fetches holds 1,000 transfers here and
 * 1,000 /delay requests on this server's own side at once. Without a url
 * (count mode), every transfer goes to the self listener (http.h,
 * HTTP_SELF_CONN_MEMORY: a loopback port whose connections have 2 KiB
 * pools, not 16): libcurl asks for this server's public URL, which the
 * results show, but connects to the self listener (CURLOPT_CONNECT_TO),
 * and may connect nowhere else. A transfer to this server (count mode, or
 * a url naming the server) asks it to close the connection after the
 * answer and never reuses it: libmicrohttpd clears a kept-alive
 * connection's whole pool after each answer, which touched every pool at
 * once when the burst answered, while a cached connection saves a burst
 * little (at most CURLMOPT_MAXCONNECTS of them). Nor does it look for one
 * to reuse (CURLOPT_FRESH_CONNECT): libcurl would walk every connection it
 * holds to the same host for each new transfer, a burst's n transfers
 * n * n / 2 steps (for 1,000: about 12 ms of the loop's CPU, a tenth of
 * the run's time). Its answers are small, so it reads with a 1 KiB buffer
 * instead of libcurl's 16 KiB one (about 3 KiB a transfer less; larger
 * bodies only take more reads). Other targets keep libcurl's defaults.
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
#include "../server/app.h"
#include "../server/container.h"
#include "../server/jsonw.h"
#include "../server/log.h"
#include "demo.h"
#include "fetch.h"
#include "handlers.h"

#define URLS_MAX           100
#define COUNT_MAX          1000
#define DELAY_MS_MAX       10000
#define CONNECT_TIMEOUT_MS 2000L
#define REDIRECTS_MAX      3L
#define TRANSFER_BYTES     (48u * 1024u) /* a transfer in flight, roughly */
#define CHARGE_HEADER      "X-Conlab-Charge: "
#define SELF_BUFFER_BYTES  1024L /* libcurl's minimum; see above */

/* One transfer in flight: made when it starts, freed when it ends. */
struct transfer {
    struct loop_fetch lf; /* async mode */
    struct fetch_state *st;
    struct engine_run *run;
    size_t task;
    CURL *easy;
    char errbuf[CURL_ERROR_SIZE];
};

struct fetch_state {
    size_t n;
    char **urls; /* n URLs, or NULL: every task fetches self_url */
    char self_url[ALLOW_URL_MAX];
    char self_base[128]; /* "http://host:port/" of this service */
    const struct allow_list *allow;
    uint64_t max_bytes;
    int timeout_ms;
    struct loop *loop;
    struct curl_slist *self_headers; /* charge and close, self targets */
    struct curl_slist *self_connect; /* count mode: to the self listener */
    const struct http_server *http;  /* whose self listener that is */
    struct fetch_outcome *out;       /* one per task */
    struct transfer **live;          /* async: the transfers in flight */
};

enum { P_URL, P_COUNT, P_MS };

static const struct demo_param params[] = {
    [P_URL] = {.name = "url",
               .type = DEMO_URLS,
               .max_items = URLS_MAX,
               .doc = "A URL to fetch, repeatable (1 .. 100). Allowed only "
                      "when its host and port are this server's own or "
                      "named by `--allow-host`; only http and https, no "
                      "user information. A refused target fails the "
                      "request with 403 before any connection, a malformed "
                      "one with 400. Not together with `count` or `ms`."},
    [P_COUNT] = {.name = "count",
                 .type = DEMO_INT,
                 .min = 1,
                 .max = COUNT_MAX,
                 .def = 10,
                 .form_value = 5,
                 .doc = "Instead of `url`: fetch this server's own "
                        "`/delay?ms=MS` this many times. The results name "
                        "its public URL; the transfers connect to a "
                        "loopback port the server keeps for them, whose "
                        "connections cost less memory."},
    [P_MS] = {.name = "ms",
              .type = DEMO_INT,
              .min = 0,
              .max = DELAY_MS_MAX,
              .def = 100,
              .form_value = 200,
              .scales_time = true,
              .doc = "Instead of `url`: the wait of each `/delay` target, in "
                     "milliseconds."},
};

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

static void finish_transfer(struct transfer *tr, CURLcode rc);
static int url_timeout_ms(const struct demo_args *a, const struct app *app);

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct transfer *tr = arg;
    struct fetch_outcome *o = &tr->st->out[tr->task];
    (void)data;
    o->bytes += size * nmemb;
    if (o->bytes > tr->st->max_bytes) {
        o->too_big = true;
        return 0; /* aborts: chunked bodies are not stopped by MAXFILESIZE */
    }
    return size * nmemb;
}

/* With urls, an allowed address; in count mode, the self listener only. */
static curl_socket_t on_open_socket(void *arg, curlsocktype purpose,
                                    struct curl_sockaddr *addr)
{
    const struct fetch_state *st = arg;
    (void)purpose;
    if (st->urls ? !allow_address(st->allow, &addr->addr)
                 : !http_is_self(st->http, &addr->addr))
        return CURL_SOCKET_BAD; /* never contacted */
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

/*
 * A blocking transfer on a demo thread gives up when its run is cancelled
 * or the service stops (libcurl calls this at least once a second). Async
 * transfers are removed from the loop instead.
 */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
    struct transfer *tr = arg;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return engine_run_mode(tr->run) != ENGINE_ASYNC &&
           engine_run_check(tr->run) != 0;
}

static const char *url_of(const struct fetch_state *st, size_t task)
{
    return st->urls ? st->urls[task] : st->self_url;
}

/*
 * A new transfer of task, configured; NULL when it cannot be (the
 * outcome then says why). Every option is checked: the safety of the
 * fetcher rests on some of them, and one that does not take refuses the
 * transfer.
 */
static struct transfer *transfer_new(struct fetch_state *st,
                                     struct engine_run *run, size_t task,
                                     long timeout_ms)
{
    struct fetch_outcome *o = &st->out[task];
    struct transfer *tr = calloc(1, sizeof(*tr));
    CURL *e = tr ? curl_easy_init() : NULL;
    if (!e) {
        free(tr);
        o->has_error = true;
        snprintf(o->error, sizeof(o->error), "out of memory");
        return NULL;
    }
    tr->st = st;
    tr->run = run;
    tr->task = task;
    tr->easy = e;
    const char *url = url_of(st, task);
    bool self = strncmp(url, st->self_base, strlen(st->self_base)) == 0;
    CURLcode rc = CURLE_OK;
    const char *failed = NULL;
#define SET(opt, value)                                                        \
    do {                                                                       \
        if (rc == CURLE_OK && (rc = curl_easy_setopt(e, opt, value)) != 0)     \
            failed = #opt;                                                     \
    } while (0)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 1L);
    SET(CURLOPT_MAXREDIRS, REDIRECTS_MAX);
    SET(CURLOPT_NOPROXY, "*");
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    SET(CURLOPT_TIMEOUT_MS, timeout_ms);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, tr);
    SET(CURLOPT_ERRORBUFFER, tr->errbuf);
    SET(CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    SET(CURLOPT_OPENSOCKETDATA, (void *)st);
    if (!st->urls)
        SET(CURLOPT_CONNECT_TO, st->self_connect);
    SET(CURLOPT_USERAGENT, "conlab/" CONLAB_VERSION);
    SET(CURLOPT_NOPROGRESS, 0L);
    SET(CURLOPT_XFERINFOFUNCTION, on_progress);
    SET(CURLOPT_XFERINFODATA, tr);
    SET(CURLOPT_PRIVATE, (void *)tr);
    if (self) {
        SET(CURLOPT_HTTPHEADER, st->self_headers);
        SET(CURLOPT_FORBID_REUSE, 1L);
        SET(CURLOPT_FRESH_CONNECT, 1L);
        SET(CURLOPT_BUFFERSIZE, SELF_BUFFER_BYTES);
    }
#undef SET
    if (rc != CURLE_OK) {
        log_error("fetch: %s failed: %s; the transfer is refused", failed,
                  curl_easy_strerror(rc));
        curl_easy_cleanup(e);
        free(tr);
        o->has_error = true;
        snprintf(o->error, sizeof(o->error),
                 "the transfer could not be configured (%s)", failed);
        return NULL;
    }
    return tr;
}

/* Records the outcome of a finished transfer and frees it. */
static void finish_transfer(struct transfer *tr, CURLcode rc)
{
    struct fetch_outcome *o = &tr->st->out[tr->task];
    curl_off_t us = 0;
    long status = 0;
    if (curl_easy_getinfo(tr->easy, CURLINFO_RESPONSE_CODE, &status) !=
        CURLE_OK)
        status = 0;
    if (curl_easy_getinfo(tr->easy, CURLINFO_TOTAL_TIME_T, &us) != CURLE_OK)
        us = 0;
    fetch_outcome_finish(o, rc, status, us, tr->errbuf, tr->st->max_bytes);
    atomic_fetch_add_explicit(&fetches_total[fetch_outcome_kind(o)], 1,
                              memory_order_relaxed);
    curl_easy_cleanup(tr->easy);
    free(tr);
}

static int compute(struct engine_ctx *ctx, void *arg, size_t task)
{
    struct fetch_state *st = arg;
    int rc = engine_yield(ctx);
    if (rc < 0)
        return rc;
    /* No longer than what is left of the task's (or the run's) deadline;
     * a transfer cut short is that URL's result. */
    uint64_t now = clock_now_ns();
    long left_ms = now < ctx->deadline_ns
                       ? (long)((ctx->deadline_ns - now) / 1000000u) + 1
                       : 1;
    if (left_ms > st->timeout_ms)
        left_ms = st->timeout_ms;
    struct transfer *tr = transfer_new(st, ctx->run, task, left_ms);
    if (!tr)
        return 0; /* the URL's result says why */
    engine_blocking_begin(ctx);
    CURLcode cc = curl_easy_perform(tr->easy);
    engine_blocking_end(ctx);
    finish_transfer(tr, cc);
    rc = engine_run_check(ctx->run);
    return cc == CURLE_ABORTED_BY_CALLBACK && rc < 0 ? rc : 0;
}

/* Loop thread: a transfer ended, was removed, or the loop stops. */
static void on_done(struct loop_fetch *lf, int status, CURLcode rc)
{
    struct transfer *tr = container_of(lf, struct transfer, lf);
    struct engine_run *run = tr->run;
    size_t task = tr->task;
    tr->st->live[task] = NULL;
    finish_transfer(tr, rc);
    if (status == -ECANCELED)
        status = engine_run_check(run);
    engine_task_end(run, task, status, 0, NULL);
}

static int start_async(struct engine_run *run, void *arg)
{
    struct fetch_state *st = arg;
    struct loop_fetch **all = malloc(st->n * sizeof(*all));
    size_t *unmade = malloc(st->n * sizeof(*unmade));
    st->live = calloc(st->n, sizeof(st->live[0]));
    if (!all || !unmade || !st->live) {
        free(all);
        free(unmade);
        return -ENOMEM;
    }
    size_t n = 0, n_unmade = 0;
    for (size_t i = 0; i < st->n; i++) {
        struct transfer *tr = transfer_new(st, run, i, (long)st->timeout_ms);
        if (!tr) {
            /* Its outcome says why; counted as a failed fetch. */
            atomic_fetch_add_explicit(&fetches_total[FETCH_ERROR], 1,
                                      memory_order_relaxed);
            unmade[n_unmade++] = i;
            continue;
        }
        tr->lf.easy = tr->easy;
        tr->lf.done = on_done;
        st->live[i] = tr;
        all[n++] = &tr->lf;
    }
    /* From here the loop thread owns st->live and the outcomes. */
    int rc = n ? loop_add_fetches(st->loop, all, n) : 0;
    free(all);
    if (rc < 0) {
        for (size_t i = 0; i < st->n; i++) {
            if (st->live[i]) {
                curl_easy_cleanup(st->live[i]->easy);
                free(st->live[i]);
                st->live[i] = NULL;
            }
        }
        free(unmade);
        return rc;
    }
    /* The tasks whose transfer could not be made end now, as results. */
    for (size_t k = 0; k < n_unmade; k++)
        engine_task_end(run, unmade[k], 0, 0, NULL);
    free(unmade);
    return 0;
}

/* Loop thread: removing a transfer ends its task with -ECANCELED. */
static void cancel_async(struct engine_run *run, void *arg)
{
    struct fetch_state *st = arg;
    (void)run;
    for (size_t i = 0; i < st->n; i++) {
        if (st->live[i])
            loop_fetch_remove(st->loop, &st->live[i]->lf);
    }
}

static void write_task(struct jsonw *w, void *arg, size_t task)
{
    struct fetch_state *st = arg;
    const struct fetch_outcome *o = &st->out[task];
    jsonw_key(w, "url");
    jsonw_str(w, url_of(st, task));
    jsonw_key(w, "status");
    jsonw_int(w, o->status);
    jsonw_key(w, "bytes");
    jsonw_uint(w, o->bytes);
    jsonw_key(w, "ms");
    jsonw_ms(w, o->ms);
    jsonw_key(w, "error");
    if (o->has_error)
        jsonw_str(w, o->error);
    else
        jsonw_null(w);
}

static void write_result(struct jsonw *w, void *arg,
                         const struct engine_run *run)
{
    struct fetch_state *st = arg;
    uint64_t ok = 0, bytes = 0;
    (void)run;
    for (size_t i = 0; i < st->n; i++) {
        const struct fetch_outcome *one = &st->out[i];
        uint64_t k, b;
        fetch_outcome_tally(&one, 1, &k, &b);
        ok += k;
        bytes += b;
    }
    jsonw_key(w, "ok");
    jsonw_uint(w, ok);
    jsonw_key(w, "failed");
    jsonw_uint(w, st->n - ok);
    jsonw_key(w, "bytes");
    jsonw_uint(w, bytes);
}

static void free_state(void *arg)
{
    struct fetch_state *st = arg;
    if (st->urls) {
        for (size_t i = 0; i < st->n; i++)
            free(st->urls[i]);
        free(st->urls);
    }
    curl_slist_free_all(st->self_headers);
    curl_slist_free_all(st->self_connect);
    free(st->out);
    free(st->live);
    free(st);
}

/* This server's own address, as the fetch demo's offline target. */
static void self_base(const struct app *app, char *out, size_t out_len)
{
    const char *bind = app->cfg->bind;
    bool v6 = strchr(bind, ':') != NULL;
    if (strcmp(bind, "0.0.0.0") == 0)
        bind = "127.0.0.1";
    else if (strcmp(bind, "::") == 0)
        bind = "::1";
    snprintf(out, out_len, v6 ? "http://[%s]:%d/" : "http://%s:%d/", bind,
             http_port(app->http));
}

/* url and count/ms exclude each other; every URL is allowed and valid. */
static int check(struct demo_args *a, enum engine_mode mode,
                 const struct app *app, char *err, size_t err_len)
{
    (void)mode;
    if (a->n[P_URL] && (a->given[P_COUNT] || a->given[P_MS])) {
        snprintf(err, err_len,
                 "give either 'url' (repeatable, up to %d) or 'count' and "
                 "'ms', not both",
                 URLS_MAX);
        return 400;
    }
    a->unused[P_URL] = a->n[P_URL] == 0;
    a->unused[P_COUNT] = a->unused[P_MS] = a->n[P_URL] != 0;
    for (size_t i = 0; i < a->n[P_URL]; i++) {
        const char *url = a->strings[P_URL][i];
        char why[256];
        int rc = 0;
        if (strlen(url) >= ALLOW_URL_MAX) {
            snprintf(why, sizeof(why), "url %zu is longer than %d bytes", i + 1,
                     ALLOW_URL_MAX - 1);
            rc = -E2BIG;
        } else if (!jsonw_utf8_valid(url, strlen(url))) {
            snprintf(why, sizeof(why), "url %zu is not valid UTF-8", i + 1);
            rc = -EINVAL;
        } else {
            rc = allow_check_url(app->allow, url, why, sizeof(why));
        }
        if (rc < 0) {
            snprintf(err, err_len, "parameter 'url': %s", why);
            return rc == -EINVAL || rc == -E2BIG ? 400 : 403;
        }
    }
    return 0;
}

static size_t n_tasks(const struct demo_args *a)
{
    return a->n[P_URL] ? a->n[P_URL] : (size_t)a->v[P_COUNT];
}

/* Transfers in flight at once, and their memory. */
static void cost(const struct demo_args *a, enum engine_mode mode, size_t n,
                 const struct app *app, struct budget_cost *c)
{
    (void)a;
    size_t at_once = engine_lanes(app->engine, mode, n);
    if (at_once > n)
        at_once = n;
    c->amount[BUDGET_TRANSFERS] += at_once;
    c->amount[BUDGET_BYTES] += at_once * TRANSFER_BYTES;
}

static void *prepare(const struct demo_args *a, enum engine_mode mode,
                     const struct demo_env *env)
{
    const struct app *app = env->app;
    struct fetch_state *st = calloc(1, sizeof(*st));
    (void)mode;
    if (!st)
        return NULL;
    st->n = n_tasks(a);
    st->allow = app->allow;
    st->max_bytes = (uint64_t)app->cfg->fetch_max_bytes;
    st->timeout_ms = url_timeout_ms(a, app);
    st->loop = app->loop;
    self_base(app, st->self_base, sizeof(st->self_base));
    /* self_base ends in '/', the target starts with one. */
    snprintf(st->self_url, sizeof(st->self_url), "%s%s?ms=%lld", st->self_base,
             &HANDLERS_SELF_TARGET[1], (long long)a->v[P_MS]);
    st->out = calloc(st->n, sizeof(st->out[0]));
    if (!st->out)
        goto out_free;
    st->http = app->http;
    if (a->n[P_URL]) {
        st->urls = calloc(st->n, sizeof(char *));
        if (!st->urls)
            goto out_free;
        for (size_t i = 0; i < st->n; i++) {
            st->urls[i] = strdup(a->strings[P_URL][i]);
            if (!st->urls[i])
                goto out_free;
        }
    } else {
        /* Any host, the public port: to the self listener. */
        char line[80];
        snprintf(line, sizeof(line), ":%d:%s:%d", http_port(app->http),
                 http_self_host(app->http), http_self_port(app->http));
        st->self_connect = curl_slist_append(NULL, line);
        if (!st->self_connect)
            goto out_free;
    }
    /* Asked of this server only: see the top of the file. */
    st->self_headers = curl_slist_append(NULL, "Connection: close");
    if (!st->self_headers)
        goto out_free;
    if (env->charge_token && env->charge_token[0]) {
        char header[sizeof(CHARGE_HEADER) + BUDGET_TOKEN_LEN];
        snprintf(header, sizeof(header), CHARGE_HEADER "%s", env->charge_token);
        struct curl_slist *more = curl_slist_append(st->self_headers, header);
        if (!more)
            goto out_free;
        st->self_headers = more;
    }
    return st;

out_free:
    free_state(st);
    return NULL;
}

/* The time one URL may take: the job timeout, or a comparison's share. */
static int url_timeout_ms(const struct demo_args *a, const struct app *app)
{
    return a->timeout_ms ? a->timeout_ms : app->cfg->job_timeout_ms;
}

/* Each URL may take up to its timeout; /delay targets take ms. */
static double estimate_ms(const struct demo_args *a, enum engine_mode mode,
                          const struct app *app)
{
    size_t n = n_tasks(a);
    size_t lanes = engine_lanes(app->engine, mode, n);
    double each =
        a->n[P_URL] ? (double)url_timeout_ms(a, app) : (double)a->v[P_MS];
    return (double)((n + lanes - 1) / lanes) * each;
}

/*
 * A comparison of URLs: each URL's timeout is cut so that every mode's
 * waves together take at most the budget.
 */
static void fit_compare(struct demo_args *a, const struct demo *d,
                        const struct app *app, double budget_ms)
{
    if (!a->n[P_URL])
        return;
    size_t n = n_tasks(a), waves = 0;
    for (size_t i = 0; i < d->n_modes; i++) {
        size_t lanes = engine_lanes(app->engine, d->modes[i], n);
        waves += (n + lanes - 1) / lanes;
    }
    /* A tenth of the budget is left for what is not waiting: starting
     * the transfers and the runs, writing the answers. */
    double each = budget_ms * 0.9 / (double)waves;
    if (each < (double)app->cfg->job_timeout_ms)
        a->timeout_ms = each >= 1.0 ? (int)each : 1;
}

static const struct engine_work work = {
    .compute = compute,
    .start_async = start_async,
    .cancel_async = cancel_async,
};

static const enum engine_mode modes[] = {ENGINE_SEQUENTIAL, ENGINE_THREADS,
                                         ENGINE_ASYNC};
static const char *const outcome[] = {"ok", "failed", NULL};

const struct demo demo_fetch = {
    .name = "fetch",
    .label = "HTTP",
    .summary = "Concurrent outbound HTTP to allowed targets",
    .lesson = "Real HTTP requests, one task per URL. By default each one "
              "asks this server's own /delay to answer after ms, so it "
              "works offline. Look for: sequential waits for each answer "
              "before sending the next request; threads spreads them over "
              "the demo threads; async keeps every transfer in flight from "
              "one event-loop thread, on a single lane.",
    .params = params,
    .n_params = sizeof(params) / sizeof(params[0]),
    .modes = modes,
    .n_modes = sizeof(modes) / sizeof(modes[0]),
    .default_mode = ENGINE_ASYNC,
    .outcome = outcome,
    .shrink = "count or ms",
    .check = check,
    .n_tasks = n_tasks,
    .cost = cost,
    .bytes_per_task = sizeof(struct fetch_outcome),
    .estimate_ms = estimate_ms,
    .fit_compare = fit_compare,
    .prepare = prepare,
    .free_state = free_state,
    .work = &work,
    .write_result = write_result,
    .write_task = write_task,
};
