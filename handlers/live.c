/*
 * live: see live.h.
 *
 * A stream (struct live) is shared by its connection and its runs, and
 * freed by whichever lets go last (refs under lock): the connection holds
 * one reference from live_start() to its detach hook, each run in flight
 * one from live_run_launching() to live_run_done(). The lock guards only
 * those hand-overs (refs, attached, in_flight, run_done); the scan state
 * and the buffer belong to the reader, which runs on the connection's
 * request thread (and, before the stream is queued, on the handler's).
 *
 * The wake-up path of the pool and loop threads is the engine's notify
 * hook: live_notify() calls http_stream_wake(), one atomic exchange while
 * a wake is pending. live_run_done() wakes under the lock, so that a
 * connection that has detached is never touched.
 *
 * Cancelling (the client left: the gone hook from http_sweep(), or the
 * detach of a connection that ended mid-run) pins the run under the lock
 * first (engine_run_pin(), atomics only), so the run cannot settle and be
 * freed by the reader meanwhile.
 */
#include "live.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../server/app.h"
#include "../server/clock.h"
#include "../server/http.h"
#include "../server/jsonw.h"
#include "../server/params.h"
#include "handlers.h"

#define EVENT_JSON_MAX (64 * 1024) /* one task event's data, at most */

/* A growable text buffer (formatted events, or a text answer). */
struct tb {
    char *p;
    size_t len, cap;
    bool failed;
};

enum live_event {
    EV_ADMITTED,
    EV_MODE,
    EV_TASK_START,
    EV_TASK_END,
    EV_PROGRESS,
    EV_COALESCED,
    EV_FINAL,
    EV_ERROR,
    EV_KINDS
};

static const char *const event_names[EV_KINDS] = {
    "admitted", "mode",      "task-start", "task-end",
    "progress", "coalesced", "final",      "error"};

/* One task event found by a scan. */
struct ev {
    uint64_t ns;
    uint32_t task;
    uint8_t end;
};

struct live {
    pthread_mutex_t lock;
    int refs;
    bool attached;  /* the connection holds the stream */
    bool can_wake;  /* queued: its reader ran once */
    bool in_flight; /* a run's done callback is to come */
    bool run_done;
    struct engine_run *flight; /* the run in flight (for cancelling) */
    struct request *req;
    _Atomic bool pending; /* notified since the reader's last scan */

    /* The reader's (see the file comment). */
    struct run_req *rr; /* NULL once the final event is written */
    enum live_form form;
    enum engine_mode modes[ENGINE_MODES];
    size_t n_modes, mode_index;
    bool quiet;             /* the run is not told (live_run_launching) */
    struct engine_run *run; /* being scanned, or NULL */
    uint8_t *flags;         /* per task: 1 start told, 2 end told */
    size_t n, lo;
    size_t started, ended; /* told or coalesced, this run */
    size_t prog_started, prog_ended;
    uint64_t prog_units; /* the demo's progress figure, last told */
    uint64_t prog_ns;
    bool admitted, mode_open, final;
    struct tb out;
    size_t off; /* of out, already handed to the connection */
    struct ev evs[LIVE_SCAN_EVENTS];
};

static _Atomic uint64_t streams_total[3];
static _Atomic uint64_t events_total[EV_KINDS];
static _Atomic uint64_t coalesced_tasks_total;
static _Atomic int64_t streams_open;

static long live_read(void *arg, char *buf, size_t max);
static void live_gone(void *arg);
static void live_detach(void *arg);
static void unref(struct live *lv);
static void live_free(struct live *lv);
static void cancel_flight(struct live *lv);
static bool produce(struct live *lv);
static void scan(struct live *lv, bool done);
static void finish_run(struct live *lv);
static void emit_admitted(struct live *lv);
static void emit_mode(struct live *lv, bool end);
static void emit_task(struct live *lv, const struct ev *e);
static void emit_progress(struct live *lv);
static void emit_coalesced(struct live *lv, size_t starts, size_t ends);
static void emit_final(struct live *lv, const struct response *resp);
static void emit_json(struct live *lv, enum live_event kind, struct jsonw *w);
static void tb_add(struct tb *b, const char *s, size_t n);
static void tb_printf(struct tb *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void text_worker(struct tb *b, const char *kind, json_int_t id);
static void text_replay(struct tb *b, json_t *run);
static void text_summary(struct tb *b, json_t *body);
static void text_timeline(struct tb *b, json_t *run);

static const struct response_stream live_stream = {
    .read = live_read, .gone = live_gone, .detach = live_detach};

int live_parse(const struct request *req, struct params *p,
               struct jsonr_doc *doc, struct live_opts *out)
{
    static const char *const formats[] = {"json", "sse", "text"};
    static const char *const streams[] = {"0", "1"};
    int format = -1, stream = -1;

    memset(out, 0, sizeof(*out));
    if (doc) {
        if (handlers_json_enum(doc, p, "format", formats, 3, -1, &format) < 0 ||
            handlers_json_enum(doc, p, "stream", streams, 2, -1, &stream) < 0)
            return -EINVAL;
    } else if (params_enum(p, "format", formats, 3, -1, &format) < 0 ||
               params_enum(p, "stream", streams, 2, -1, &stream) < 0) {
        return -EINVAL;
    }
    const char *accept = request_header(req, "Accept");
    if (format == 1)
        out->form = LIVE_SSE;
    else if (format == 2)
        out->form = LIVE_TEXT;
    else if (format == 0)
        out->form = LIVE_OFF;
    else if (accept && strstr(accept, "text/event-stream"))
        out->form = LIVE_SSE;
    else if (accept && strstr(accept, "text/plain"))
        out->form = LIVE_TEXT;
    else if (stream == 1)
        out->form = LIVE_SSE;

    if (out->form == LIVE_SSE && stream == 0)
        return params_fail(p, "parameter 'stream': an event stream is "
                              "always streamed (use format=text with "
                              "stream=0 for one text body)");
    if (out->form == LIVE_OFF && stream == 1)
        return params_fail(p, "parameter 'stream': the JSON body is not "
                              "streamed (use format=sse or format=text)");
    out->streamed = out->form == LIVE_SSE || stream != 0;
    return 0;
}

size_t live_bytes(size_t n_tasks)
{
    return sizeof(struct live) + LIVE_CHUNK_MAX + n_tasks;
}

enum handler_result live_start(struct run_req *rr, const struct live_opts *o,
                               const enum engine_mode *modes, size_t n_modes,
                               live_start_fn *start, struct response *resp)
{
    struct live *lv = calloc(1, sizeof(*lv));
    if (!lv) {
        run_req_free(rr);
        response_error(resp, 500, "out of memory");
        return HANDLER_DONE;
    }
    pthread_mutex_init(&lv->lock, NULL);
    lv->refs = 1; /* the connection's, from the answer below */
    lv->attached = true;
    lv->req = run_req_request(rr);
    lv->rr = rr;
    lv->form = o->form;
    if (n_modes > ENGINE_MODES)
        n_modes = ENGINE_MODES;
    memcpy(lv->modes, modes, n_modes * sizeof(modes[0]));
    lv->n_modes = n_modes;
    atomic_fetch_add(&streams_open, 1);
    atomic_fetch_add_explicit(&streams_total[o->form], 1, memory_order_relaxed);
    run_req_set_live(rr, lv);

    struct response failed;
    response_init(&failed);
    if (start(rr, &failed) == HANDLER_DONE) {
        /* Nothing started: answer the error as it is, not as a stream. */
        response_move(resp, &failed);
        lv->rr = NULL;
        run_req_free(rr);
        live_free(lv);
        return HANDLER_DONE;
    }
    response_stream(resp, 200,
                    o->form == LIVE_SSE ? CONTENT_TYPE_SSE : CONTENT_TYPE_TEXT,
                    &live_stream, lv);
    return HANDLER_DONE;
}

void live_run_launching(struct live *lv, struct engine_run *run, bool quiet)
{
    pthread_mutex_lock(&lv->lock);
    lv->in_flight = true;
    lv->run_done = false;
    lv->flight = run;
    lv->refs++;
    pthread_mutex_unlock(&lv->lock);

    size_t n = engine_run_n_tasks(run);
    uint8_t *flags = realloc(lv->flags, n ? n : 1);
    lv->run = run;
    lv->quiet = quiet;
    lv->mode_index = 0;
    for (size_t i = 0; i < lv->n_modes; i++) {
        if (lv->modes[i] == engine_run_mode(run))
            lv->mode_index = i;
    }
    lv->mode_open = false;
    lv->lo = 0;
    lv->started = lv->ended = 0;
    lv->prog_started = lv->prog_ended = 0;
    lv->prog_ns = clock_now_ns();
    if (flags) {
        memset(flags, 0, n);
        lv->flags = flags;
        lv->n = quiet ? 0 : n;
    } else {
        lv->n = 0; /* no task events for this run, only its end */
    }
}

void live_notify(void *arg)
{
    struct live *lv = arg;
    /* Coalesced: the reader clears pending before it scans, so a change
     * made while it is set is seen by the scan to come. A notify only
     * comes while a run is in flight, which holds a reference; the lock
     * keeps the wake apart from the connection's detach. */
    if (atomic_exchange(&lv->pending, true))
        return;
    pthread_mutex_lock(&lv->lock);
    if (lv->attached && lv->can_wake)
        http_stream_wake(lv->req);
    pthread_mutex_unlock(&lv->lock);
}

void live_run_done(struct live *lv, int status)
{
    (void)status; /* run_req keeps it */
    pthread_mutex_lock(&lv->lock);
    lv->run_done = true;
    lv->in_flight = false;
    lv->flight = NULL;
    if (lv->attached && lv->can_wake)
        http_stream_wake(lv->req);
    pthread_mutex_unlock(&lv->lock);
    unref(lv);
}

/* ---- the connection's side ---- */

static long live_read(void *arg, char *buf, size_t max)
{
    struct live *lv = arg;
    if (!lv->can_wake) {
        pthread_mutex_lock(&lv->lock);
        lv->can_wake = true;
        pthread_mutex_unlock(&lv->lock);
    }
    for (;;) {
        if (lv->out.failed)
            return RESPONSE_STREAM_ABORT;
        if (lv->off < lv->out.len) {
            size_t n = lv->out.len - lv->off;
            if (n > max)
                n = max;
            memcpy(buf, lv->out.p + lv->off, n);
            lv->off += n;
            if (lv->off == lv->out.len)
                lv->off = lv->out.len = 0;
            return (long)n;
        }
        if (lv->final) {
            /* What a finished stream no longer needs goes now. */
            free(lv->out.p);
            lv->out.p = NULL;
            lv->out.cap = 0;
            return RESPONSE_STREAM_END;
        }
        atomic_store(&lv->pending, false);
        if (!produce(lv))
            return 0; /* parked until the run tells something */
    }
}

/* Main thread, under the http module's lock: the client left. */
static void live_gone(void *arg)
{
    cancel_flight(arg);
}

/* The connection is done with the stream (ended, left, shutdown). */
static void live_detach(void *arg)
{
    struct live *lv = arg;
    pthread_mutex_lock(&lv->lock);
    lv->attached = false;
    pthread_mutex_unlock(&lv->lock);
    cancel_flight(lv);
    unref(lv);
}

static void cancel_flight(struct live *lv)
{
    pthread_mutex_lock(&lv->lock);
    struct engine_run *run = lv->in_flight ? lv->flight : NULL;
    bool pinned = run && engine_run_pin(run);
    pthread_mutex_unlock(&lv->lock);
    if (!pinned)
        return;
    engine_run_cancel(run, -ECANCELED);
    engine_run_unpin(run); /* may settle it: live_run_done() here */
}

static void unref(struct live *lv)
{
    pthread_mutex_lock(&lv->lock);
    bool last = --lv->refs == 0;
    pthread_mutex_unlock(&lv->lock);
    if (last)
        live_free(lv);
}

static void live_free(struct live *lv)
{
    if (lv->rr) {
        /* Its client left: the run ended, nobody answers it. */
        run_count(lv->rr);
        run_req_free(lv->rr);
    }
    pthread_mutex_destroy(&lv->lock);
    free(lv->flags);
    free(lv->out.p);
    free(lv);
    atomic_fetch_sub(&streams_open, 1);
}

/*
 * Formats what is new into out (up to about LIVE_CHUNK_MAX); moves on to
 * the next mode or the final event when the run is over. False when there
 * is nothing to say now.
 */
static bool produce(struct live *lv)
{
    size_t before = lv->out.len;
    if (!lv->admitted) {
        emit_admitted(lv);
        lv->admitted = true;
    }
    if (!lv->run)
        return lv->out.len > before;
    if (!lv->mode_open) {
        if (lv->n_modes > 1 && !lv->quiet)
            emit_mode(lv, false);
        lv->mode_open = true;
    }
    pthread_mutex_lock(&lv->lock);
    bool done = lv->run_done;
    pthread_mutex_unlock(&lv->lock);
    scan(lv, done);
    if (lv->out.len > before)
        return true;
    if (done) {
        finish_run(lv);
        return true;
    }
    uint64_t now = clock_now_ns();
    const struct demo *d = run_req_demo(lv->rr);
    bool moved =
        lv->started != lv->prog_started || lv->ended != lv->prog_ended ||
        (d->progress && d->progress(run_req_state(lv->rr)) != lv->prog_units);
    if (moved && !lv->quiet &&
        now - lv->prog_ns >= (uint64_t)HTTP_STREAM_TICK_MS * 1000000u) {
        emit_progress(lv);
        return true;
    }
    return false;
}

static int ev_cmp(const void *a, const void *b)
{
    const struct ev *x = a, *y = b;
    if (x->ns != y->ns)
        return x->ns < y->ns ? -1 : 1;
    if (x->task != y->task)
        return x->task < y->task ? -1 : 1;
    return (int)x->end - (int)y->end;
}

/*
 * Finds the task events not yet told (from lo, the first task not told
 * whole), sorts them by time and formats them, until out holds about
 * LIVE_CHUNK_MAX. A backlog whose oldest end is LIVE_LAG_MS old is told
 * as one coalesced event instead.
 */
static void scan(struct live *lv, bool done)
{
    uint64_t now = clock_now_ns();
    uint64_t lag_ns = (uint64_t)LIVE_LAG_MS * 1000000u;
    (void)done;

    while (lv->out.len < LIVE_CHUNK_MAX && lv->lo < lv->n) {
        size_t k = 0;
        uint64_t oldest_end = 0;
        for (size_t i = lv->lo; i < lv->n && k + 2 <= LIVE_SCAN_EVENTS; i++) {
            uint8_t f = lv->flags[i];
            if (f == 3)
                continue;
            struct engine_task t;
            engine_run_peek(lv->run, i, &t);
            if (t.start_ns && !(f & 1))
                lv->evs[k++] = (struct ev){t.start_ns, (uint32_t)i, 0};
            if (t.end_ns && !(f & 2)) {
                lv->evs[k++] = (struct ev){t.end_ns, (uint32_t)i, 1};
                if (!oldest_end || t.end_ns < oldest_end)
                    oldest_end = t.end_ns;
            }
        }
        if (k == 0)
            break;
        if (oldest_end && now > oldest_end && now - oldest_end > lag_ns) {
            /* The reader is behind: everything pending becomes counts. */
            size_t starts = 0, ends = 0;
            for (size_t i = lv->lo; i < lv->n; i++) {
                struct engine_task t;
                engine_run_peek(lv->run, i, &t);
                if ((t.start_ns || t.end_ns) && !(lv->flags[i] & 1)) {
                    lv->flags[i] |= 1;
                    starts += t.start_ns != 0;
                    lv->started++;
                }
                if (t.end_ns && !(lv->flags[i] & 2)) {
                    lv->flags[i] |= 2;
                    ends++;
                    lv->ended++;
                }
            }
            emit_coalesced(lv, starts, ends);
            emit_progress(lv);
        } else {
            qsort(lv->evs, k, sizeof(lv->evs[0]), ev_cmp);
            /* Up to the cap: the rest stays untold, found again by the
             * next scan (so a slow reader's lag shows there). */
            for (size_t j = 0; j < k && lv->out.len < LIVE_CHUNK_MAX; j++) {
                struct ev *e = &lv->evs[j];
                /* An end found with no start (never ran): its start is
                 * told as done so that the task counts once. */
                if (e->end && !(lv->flags[e->task] & 1)) {
                    lv->flags[e->task] |= 1;
                    lv->started++;
                }
                if (!e->end) {
                    lv->flags[e->task] |= 1;
                    lv->started++;
                } else {
                    lv->flags[e->task] |= 2;
                    lv->ended++;
                }
                emit_task(lv, e);
            }
        }
        while (lv->lo < lv->n && lv->flags[lv->lo] == 3)
            lv->lo++;
    }
}

/* The run is over and told: its mode's end, then the next or the end. */
static void finish_run(struct live *lv)
{
    struct run_req *rr = lv->rr;
    if (!lv->quiet &&
        (lv->started != lv->prog_started || lv->ended != lv->prog_ended))
        emit_progress(lv);
    if (lv->n_modes > 1 && !lv->quiet)
        emit_mode(lv, true);
    lv->run = NULL;

    struct response resp;
    response_init(&resp);
    if (run_continue(rr, &resp) == HANDLER_ASYNC)
        return; /* the next mode: live_run_launching() set lv->run */
    emit_final(lv, &resp);
    response_cleanup(&resp);
    run_req_free(rr);
    lv->rr = NULL;
    lv->final = true;
}

/* ---- events ---- */

static void write_worker(struct jsonw *w, const struct engine_task *t)
{
    jsonw_key(w, "worker");
    jsonw_object(w);
    jsonw_key(w, "kind");
    jsonw_str(w, engine_lane_names[t->lane]);
    jsonw_key(w, "id");
    jsonw_int(w, t->worker);
    jsonw_end(w);
}

static void emit_admitted(struct live *lv)
{
    struct run_req *rr = lv->rr;
    const struct demo *d = run_req_demo(rr);
    struct app *app = run_req_app(rr);
    size_t n = d->n_tasks(run_req_args(rr));
    struct jsonw w;

    jsonw_init(&w, EVENT_JSON_MAX);
    jsonw_object(&w);
    jsonw_key(&w, "demo");
    jsonw_str(&w, d->name);
    jsonw_key(&w, "modes");
    jsonw_array(&w);
    for (size_t i = 0; i < lv->n_modes; i++)
        jsonw_str(&w, engine_mode_names[lv->modes[i]]);
    jsonw_end(&w);
    jsonw_key(&w, "lanes");
    jsonw_array(&w);
    for (size_t i = 0; i < lv->n_modes; i++) {
        size_t lanes = engine_lanes(app->engine, lv->modes[i], n);
        jsonw_uint(&w, lanes < n ? lanes : n);
    }
    jsonw_end(&w);
    /* What each mode should take here (the model /run/compare budgets
     * with): a live drawing's time axis. */
    jsonw_key(&w, "estimate_ms");
    jsonw_array(&w);
    for (size_t i = 0; i < lv->n_modes; i++)
        jsonw_ms(&w, d->estimate_ms(run_req_args(rr), lv->modes[i], app));
    jsonw_end(&w);
    jsonw_key(&w, "tasks");
    jsonw_uint(&w, n);
    jsonw_key(&w, "params");
    demo_write_params(&w, d, run_req_args(rr));
    jsonw_end(&w);
    if (lv->form == LIVE_SSE) {
        emit_json(lv, EV_ADMITTED, &w);
        return;
    }
    size_t len;
    char *text = jsonw_take(&w, &len);
    json_t *doc = text ? json_loadb(text, len, 0, NULL) : NULL;
    tb_printf(&lv->out, "%s%s: %zu task%s in %zu mode%s\n",
              lv->n_modes > 1 ? "compare " : "", d->name, n, n == 1 ? "" : "s",
              lv->n_modes, lv->n_modes == 1 ? "" : "s");
    json_t *lanes = json_object_get(doc, "lanes");
    for (size_t i = 0; i < lv->n_modes; i++) {
        json_int_t k = json_integer_value(json_array_get(lanes, i));
        tb_printf(&lv->out, "  %s: %lld lane%s\n",
                  engine_mode_names[lv->modes[i]], (long long)k,
                  k == 1 ? "" : "s");
    }
    /* Within 80 columns: long values (a list) are cut. */
    const char *key;
    json_t *v;
    size_t col = 7;
    tb_add(&lv->out, "params:", 7);
    json_object_foreach(json_object_get(doc, "params"), key, v)
    {
        char *item = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        char field[72];
        snprintf(field, sizeof(field), "%s=%s", key, item ? item : "?");
        if (item && strlen(key) + 1 + strlen(item) >= sizeof(field))
            memcpy(field + sizeof(field) - 4, "...", 4);
        free(item);
        if (col + 1 + strlen(field) > 78) {
            tb_add(&lv->out, "\n  ", 3);
            col = 2;
        }
        tb_printf(&lv->out, " %s", field);
        col += 1 + strlen(field);
    }
    tb_add(&lv->out, "\n", 1);
    json_decref(doc);
    free(text);
    atomic_fetch_add_explicit(&events_total[EV_ADMITTED], 1,
                              memory_order_relaxed);
}

static void emit_mode(struct live *lv, bool end)
{
    const char *mode = engine_mode_names[lv->modes[lv->mode_index]];
    if (lv->form == LIVE_TEXT) {
        if (!end)
            tb_printf(&lv->out, "== mode %s (%zu of %zu) ==\n", mode,
                      lv->mode_index + 1, lv->n_modes);
        else
            tb_printf(&lv->out, "== %s: %.1f ms ==\n", mode,
                      run_wall_ms(lv->rr));
        atomic_fetch_add_explicit(&events_total[EV_MODE], 1,
                                  memory_order_relaxed);
        return;
    }
    struct jsonw w;
    jsonw_init(&w, EVENT_JSON_MAX);
    jsonw_object(&w);
    jsonw_key(&w, "mode");
    jsonw_str(&w, mode);
    jsonw_key(&w, "index");
    jsonw_uint(&w, lv->mode_index);
    jsonw_key(&w, "of");
    jsonw_uint(&w, lv->n_modes);
    jsonw_key(&w, "phase");
    jsonw_str(&w, end ? "end" : "start");
    if (end) {
        jsonw_key(&w, "wall_ms");
        jsonw_ms(&w, run_wall_ms(lv->rr));
    }
    jsonw_end(&w);
    emit_json(lv, EV_MODE, &w);
}

static void emit_task(struct live *lv, const struct ev *e)
{
    struct run_req *rr = lv->rr;
    uint64_t o = run_req_origin_ns(rr);
    struct engine_task t;
    engine_run_peek(lv->run, e->task, &t);

    if (lv->form == LIVE_TEXT) {
        if (!e->end) {
            struct tb *b = &lv->out;
            tb_printf(b, "task %u started on ", e->task);
            text_worker(b, engine_lane_names[t.lane], t.worker);
            tb_printf(b, " at %.1f ms\n", clock_offset_ms(o, t.start_ns));
        } else if (t.status == 0) {
            tb_printf(&lv->out, "task %u finished at %.1f ms\n", e->task,
                      clock_offset_ms(o, t.end_ns));
        } else {
            tb_printf(&lv->out, "task %u failed at %.1f ms (%s)\n", e->task,
                      clock_offset_ms(o, t.end_ns), strerror(-t.status));
        }
        atomic_fetch_add_explicit(
            &events_total[e->end ? EV_TASK_END : EV_TASK_START], 1,
            memory_order_relaxed);
        return;
    }
    struct jsonw w;
    jsonw_init(&w, EVENT_JSON_MAX);
    jsonw_object(&w);
    jsonw_key(&w, "mode");
    jsonw_str(&w, engine_mode_names[run_req_mode(rr)]);
    jsonw_key(&w, "id");
    jsonw_uint(&w, e->task);
    if (t.start_ns)
        write_worker(&w, &t);
    jsonw_key(&w, "start_ms");
    jsonw_ms(&w, clock_offset_ms(o, t.start_ns));
    if (e->end) {
        jsonw_key(&w, "end_ms");
        jsonw_ms(&w, clock_offset_ms(o, t.end_ns));
        jsonw_key(&w, "ok");
        jsonw_bool(&w, t.status == 0);
        run_write_task_costs(&w, &t, o);
        /* A gil task's slices are closed before its end is published. */
        const struct engine_slices *sl = engine_run_slices(lv->run);
        if (sl && sl[e->task].n) {
            jsonw_key(&w, "slices");
            jsonw_array(&w);
            for (size_t k = 0; k < sl[e->task].n; k++) {
                jsonw_array(&w);
                jsonw_ms(&w, clock_offset_ms(o, sl[e->task].at[k][0]));
                jsonw_ms(&w, clock_offset_ms(o, sl[e->task].at[k][1]));
                jsonw_end(&w);
            }
            jsonw_end(&w);
        }
        const struct demo *d = run_req_demo(rr);
        if (t.status == 0 && d->write_task)
            d->write_task(&w, run_req_state(rr), e->task);
    }
    jsonw_end(&w);
    emit_json(lv, e->end ? EV_TASK_END : EV_TASK_START, &w);
}

static void emit_progress(struct live *lv)
{
    size_t n = engine_run_n_tasks(lv->run);
    double elapsed = clock_offset_ms(run_req_origin_ns(lv->rr), clock_now_ns());
    const struct demo *d = run_req_demo(lv->rr);
    lv->prog_started = lv->started;
    lv->prog_ended = lv->ended;
    lv->prog_ns = clock_now_ns();
    if (d->progress)
        lv->prog_units = d->progress(run_req_state(lv->rr));
    if (lv->form == LIVE_TEXT) {
        tb_printf(&lv->out,
                  "progress: %zu of %zu tasks done, %zu running, %.1f ms",
                  lv->ended, n, lv->started - lv->ended, elapsed);
        if (d->progress)
            tb_printf(&lv->out, ", %s %llu", d->progress_name,
                      (unsigned long long)lv->prog_units);
        tb_add(&lv->out, "\n", 1);
        atomic_fetch_add_explicit(&events_total[EV_PROGRESS], 1,
                                  memory_order_relaxed);
        return;
    }
    struct jsonw w;
    jsonw_init(&w, EVENT_JSON_MAX);
    jsonw_object(&w);
    jsonw_key(&w, "mode");
    jsonw_str(&w, engine_mode_names[run_req_mode(lv->rr)]);
    jsonw_key(&w, "index");
    jsonw_uint(&w, lv->mode_index);
    jsonw_key(&w, "of");
    jsonw_uint(&w, lv->n_modes);
    jsonw_key(&w, "tasks");
    jsonw_uint(&w, n);
    jsonw_key(&w, "started");
    jsonw_uint(&w, lv->started);
    jsonw_key(&w, "done");
    jsonw_uint(&w, lv->ended);
    jsonw_key(&w, "elapsed_ms");
    jsonw_ms(&w, elapsed);
    if (d->progress) {
        jsonw_key(&w, d->progress_name);
        jsonw_uint(&w, lv->prog_units);
    }
    jsonw_end(&w);
    emit_json(lv, EV_PROGRESS, &w);
}

static void emit_coalesced(struct live *lv, size_t starts, size_t ends)
{
    atomic_fetch_add_explicit(&coalesced_tasks_total, starts + ends,
                              memory_order_relaxed);
    if (lv->form == LIVE_TEXT) {
        tb_printf(&lv->out,
                  "(reading behind the run by over %d ms: %zu starts and "
                  "%zu ends not listed)\n",
                  LIVE_LAG_MS, starts, ends);
        atomic_fetch_add_explicit(&events_total[EV_COALESCED], 1,
                                  memory_order_relaxed);
        return;
    }
    struct jsonw w;
    jsonw_init(&w, EVENT_JSON_MAX);
    jsonw_object(&w);
    jsonw_key(&w, "mode");
    jsonw_str(&w, engine_mode_names[run_req_mode(lv->rr)]);
    jsonw_key(&w, "task_start");
    jsonw_uint(&w, starts);
    jsonw_key(&w, "task_end");
    jsonw_uint(&w, ends);
    jsonw_key(&w, "lag_ms");
    jsonw_uint(&w, LIVE_LAG_MS);
    jsonw_end(&w);
    emit_json(lv, EV_COALESCED, &w);
}

/* The answer the JSON request would get, as the last event. */
static void emit_final(struct live *lv, const struct response *resp)
{
    bool ok = resp->status == 200;
    enum live_event kind = ok ? EV_FINAL : EV_ERROR;
    atomic_fetch_add_explicit(&events_total[kind], 1, memory_order_relaxed);
    if (lv->form == LIVE_TEXT) {
        json_t *body =
            resp->body ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
        if (ok && body) {
            text_summary(&lv->out, body);
        } else {
            const char *msg = json_string_value(
                json_object_get(json_object_get(body, "error"), "message"));
            tb_printf(&lv->out, "error %d: %s\n", resp->status,
                      msg ? msg : "the answer could not be read");
        }
        json_decref(body);
        return;
    }
    tb_printf(&lv->out, "event: %s\n", event_names[kind]);
    /* One data line per line of the body (a JSON body has one). */
    const char *p = resp->body ? resp->body : "{}";
    const char *end = p + (resp->body ? resp->body_len : 2);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        tb_add(&lv->out, "data: ", 6);
        tb_add(&lv->out, p, n);
        tb_add(&lv->out, "\n", 1);
        p += n + (nl ? 1 : 0);
    }
    tb_add(&lv->out, "\n", 1);
}

/* "event: <kind>\ndata: <json>\n\n"; takes w's text. */
static void emit_json(struct live *lv, enum live_event kind, struct jsonw *w)
{
    size_t len;
    char *text = jsonw_take(w, &len);
    if (!text) {
        lv->out.failed = true;
        return;
    }
    tb_printf(&lv->out, "event: %s\ndata: ", event_names[kind]);
    tb_add(&lv->out, text, len);
    tb_add(&lv->out, "\n\n", 2);
    free(text);
    atomic_fetch_add_explicit(&events_total[kind], 1, memory_order_relaxed);
}

/* ---- the text form ---- */

void live_text_answer(struct response *resp)
{
    struct tb b = {0};
    json_t *body =
        resp->body ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
    if (resp->status != 200 || !body) {
        const char *msg = json_string_value(
            json_object_get(json_object_get(body, "error"), "message"));
        tb_printf(&b, "error %d: %s\n", resp->status,
                  msg ? msg : "the answer could not be read");
    } else {
        json_t *runs = json_object_get(body, "runs");
        if (json_is_array(runs)) {
            size_t i, n = json_array_size(runs);
            json_t *run;
            json_array_foreach(runs, i, run)
            {
                tb_printf(&b, "== mode %s (%zu of %zu) ==\n",
                          json_string_value(json_object_get(run, "mode")),
                          i + 1, n);
                text_replay(&b, run);
                tb_printf(&b, "== %s: %.1f ms ==\n",
                          json_string_value(json_object_get(run, "mode")),
                          json_number_value(json_object_get(run, "wall_ms")));
            }
        } else {
            text_replay(&b, body);
        }
        text_summary(&b, body);
    }
    json_decref(body);
    if (b.failed) {
        free(b.p);
        response_error(resp, 500, "the text answer could not be built");
        return;
    }
    int status = resp->status;
    /* Headers stay (Retry-After of a 503, Cache-Control). */
    free(resp->body);
    resp->body = b.p;
    resp->body_len = b.len;
    resp->status = status;
    resp->content_type = CONTENT_TYPE_TEXT;
}

static void text_worker(struct tb *b, const char *kind, json_int_t id)
{
    if (strcmp(kind, "main") == 0)
        tb_printf(b, "the main thread");
    else if (strcmp(kind, "loop") == 0)
        tb_printf(b, "the event loop");
    else
        tb_printf(b, "%s %lld", kind, (long long)id);
}

struct replay_ev {
    double ms;
    size_t task;
    bool end;
};

static int replay_cmp(const void *a, const void *b)
{
    const struct replay_ev *x = a, *y = b;
    if (x->ms != y->ms)
        return x->ms < y->ms ? -1 : 1;
    if (x->task != y->task)
        return x->task < y->task ? -1 : 1;
    return (int)x->end - (int)y->end;
}

/* Every task's start and end lines of a finished run, in time order. */
static void text_replay(struct tb *b, json_t *run)
{
    json_t *tasks = json_object_get(run, "tasks");
    size_t n = json_array_size(tasks);
    struct replay_ev *evs = calloc(2 * n + 1, sizeof(*evs));
    if (!evs) {
        b->failed = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(tasks, i);
        evs[2 * i] = (struct replay_ev){
            json_number_value(json_object_get(t, "start_ms")), i, false};
        evs[2 * i + 1] = (struct replay_ev){
            json_number_value(json_object_get(t, "end_ms")), i, true};
    }
    qsort(evs, 2 * n, sizeof(*evs), replay_cmp);
    for (size_t k = 0; k < 2 * n; k++) {
        json_t *t = json_array_get(tasks, evs[k].task);
        json_t *worker = json_object_get(t, "worker");
        if (!evs[k].end) {
            tb_printf(b, "task %zu started on ", evs[k].task);
            text_worker(
                b, json_string_value(json_object_get(worker, "kind")) ?: "?",
                json_integer_value(json_object_get(worker, "id")));
            tb_printf(b, " at %.1f ms\n", evs[k].ms);
        } else {
            tb_printf(b, "task %zu finished at %.1f ms\n", evs[k].task,
                      evs[k].ms);
        }
    }
    free(evs);
}

/* The table of modes, then one timeline per run. */
static void text_summary(struct tb *b, json_t *body)
{
    json_t *runs = json_object_get(body, "runs");
    json_t *single = json_array();
    if (!json_is_array(runs)) {
        json_array_append(single, body);
        runs = single;
    }
    size_t i;
    json_t *run;
    tb_printf(b, "\nsummary: %s\n",
              json_string_value(json_object_get(body, "demo")) ?: "?");
    tb_printf(b, "%-12s %12s %9s  %s\n", "mode", "wall ms", "speedup",
              "same result");
    json_array_foreach(runs, i, run)
    {
        json_t *speedup = json_object_get(run, "speedup");
        json_t *same = json_object_get(run, "same_result");
        char sp[32] = "-";
        if (json_is_number(speedup))
            snprintf(sp, sizeof(sp), "%.2fx", json_number_value(speedup));
        tb_printf(b, "%-12s %12.1f %9s  %s\n",
                  json_string_value(json_object_get(run, "mode")) ?: "?",
                  json_number_value(json_object_get(run, "wall_ms")), sp,
                  same ? (json_is_true(same) ? "yes" : "NO") : "-");
    }
    json_array_foreach(runs, i, run) text_timeline(b, run);
    json_decref(single);
}

/* One lane of a timeline: tasks of one worker (or one loop slot). */
struct lane {
    const char *kind;
    json_int_t id;
    double busy_until; /* loop lanes: packing */
    char row[LIVE_TEXT_WIDTH + 1];
};

/*
 * An ASCII timeline within 80 columns: one row per lane (a worker; the
 * event loop's concurrent tasks packed into as many rows as overlap),
 * each task drawn with its id's last base-36 digit, '#' where two meet.
 */
static void text_timeline(struct tb *b, json_t *run)
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    json_t *tasks = json_object_get(run, "tasks");
    double wall = json_number_value(json_object_get(run, "wall_ms"));
    size_t n = json_array_size(tasks), n_lanes = 0, hidden = 0;
    struct lane lanes[LIVE_TEXT_ROWS];

    if (wall <= 0)
        wall = 1;
    tb_printf(b, "\ntimeline of %s, 0 to %.1f ms, one row per lane:\n",
              json_string_value(json_object_get(run, "mode")) ?: "?", wall);
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(tasks, i);
        json_t *worker = json_object_get(t, "worker");
        const char *kind = json_string_value(json_object_get(worker, "kind"));
        json_int_t id = json_integer_value(json_object_get(worker, "id"));
        double start = json_number_value(json_object_get(t, "start_ms"));
        double end = json_number_value(json_object_get(t, "end_ms"));
        bool loop = kind && strcmp(kind, "loop") == 0;
        size_t l;
        for (l = 0; l < n_lanes; l++) {
            if (!kind || strcmp(lanes[l].kind, kind) != 0 || lanes[l].id != id)
                continue;
            if (!loop || lanes[l].busy_until <= start)
                break;
        }
        if (l == n_lanes) {
            if (n_lanes == LIVE_TEXT_ROWS) {
                hidden++;
                continue;
            }
            lanes[l].kind = kind ? kind : "?";
            lanes[l].id = id;
            memset(lanes[l].row, ' ', LIVE_TEXT_WIDTH);
            lanes[l].row[LIVE_TEXT_WIDTH] = '\0';
            n_lanes++;
        }
        lanes[l].busy_until = end;
        int c0 = (int)(start / wall * LIVE_TEXT_WIDTH);
        int c1 = (int)(end / wall * LIVE_TEXT_WIDTH + 0.999) - 1;
        if (c0 < 0)
            c0 = 0;
        if (c0 >= LIVE_TEXT_WIDTH)
            c0 = LIVE_TEXT_WIDTH - 1;
        if (c1 < c0)
            c1 = c0;
        if (c1 >= LIVE_TEXT_WIDTH)
            c1 = LIVE_TEXT_WIDTH - 1;
        for (int c = c0; c <= c1; c++) {
            char *cell = &lanes[l].row[c];
            *cell = *cell == ' ' ? digits[i % 36] : '#';
        }
    }
    for (size_t l = 0; l < n_lanes; l++) {
        char label[16];
        if (strcmp(lanes[l].kind, "main") == 0 ||
            strcmp(lanes[l].kind, "loop") == 0)
            snprintf(label, sizeof(label), "%s", lanes[l].kind);
        else
            snprintf(label, sizeof(label), "%s %lld", lanes[l].kind,
                     (long long)lanes[l].id);
        tb_printf(b, "%-14.14s|%s|\n", label, lanes[l].row);
    }
    if (hidden)
        tb_printf(b, "(%zu more task%s on lanes not drawn)\n", hidden,
                  hidden == 1 ? "" : "s");
}

/* ---- helpers ---- */

static void tb_add(struct tb *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void tb_printf(struct tb *b, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    tb_add(b, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

void live_write_metrics(FILE *out)
{
    static const char *const forms[3] = {"json", "sse", "text"};
    fputs("# HELP conlab_streams_total Runs answered as a stream, by form.\n"
          "# TYPE conlab_streams_total counter\n",
          out);
    for (int f = 1; f < 3; f++)
        fprintf(out, "conlab_streams_total{form=\"%s\"} %llu\n", forms[f],
                (unsigned long long)atomic_load_explicit(&streams_total[f],
                                                         memory_order_relaxed));
    fputs("# HELP conlab_streams_open Streams not yet freed.\n"
          "# TYPE conlab_streams_open gauge\n",
          out);
    fprintf(out, "conlab_streams_open %lld\n",
            (long long)atomic_load(&streams_open));
    fputs("# HELP conlab_stream_events_total Events written to streams, by "
          "event.\n"
          "# TYPE conlab_stream_events_total counter\n",
          out);
    for (int k = 0; k < EV_KINDS; k++)
        fprintf(out, "conlab_stream_events_total{event=\"%s\"} %llu\n",
                event_names[k],
                (unsigned long long)atomic_load_explicit(&events_total[k],
                                                         memory_order_relaxed));
    fputs("# HELP conlab_stream_coalesced_task_events_total Task events "
          "told as counts to readers that lagged.\n"
          "# TYPE conlab_stream_coalesced_task_events_total counter\n",
          out);
    fprintf(out, "conlab_stream_coalesced_task_events_total %llu\n",
            (unsigned long long)atomic_load_explicit(&coalesced_tasks_total,
                                                     memory_order_relaxed));
}
