/*
 * live: the streamed forms of a run (/run/<demo> and /run/compare): an
 * event stream (text/event-stream) and a terminal text form (text/plain),
 * written while the run goes on.
 *
 * Which form (the rule the README states):
 *   format=sse, stream=1, or "Accept: text/event-stream"  event stream;
 *   format=text, or "Accept: text/plain"                  text, streamed
 *                                 (chunked, lines as they happen); with
 *                                 stream=0 the same text in one body;
 *   otherwise (format=json, the default)                  the JSON body.
 * The query parameter wins over the header; stream=0 with format=sse is
 * a 400.
 *
 * Events (name: data, JSON on one line; times in ms from the run's
 * origin, as in the body): admitted (demo, modes, lanes and estimate_ms
 * per mode, tasks, params), mode (a comparison's mode starts or ends, with its
 * wall time), task-start (id, worker, start_ms), task-end (id, worker,
 * start_ms, end_ms, ok, and the demo's own task fields), progress (tasks
 * started and done, and the demo's own figure where it has one,
 * demo.progress: prime's numbers checked; at most every
 * HTTP_STREAM_TICK_MS while they change),
 * coalesced (task events a lagging reader was spared, by kind), and last
 * final (exactly the body the JSON request would answer) or error (the
 * API's error shape, its status inside).
 *
 * It does not cost the engine: the engine's notify hook only wakes the
 * parked connection (coalesced in http_stream_wake()); the connection's
 * reader, on its request thread, scans the run's compact records for
 * what started or ended since its last scan and formats that. Events are
 * formatted only as libmicrohttpd asks for bytes, so a stream holds at
 * most LIVE_CHUNK_MAX formatted bytes however slow its reader (plus the
 * final body, which is always sent whole); a reader more than LIVE_LAG_MS
 * behind the run gets the backlog as one coalesced event.
 *
 * Threads: live_notify() and live_run_done() on any thread; everything
 * else on request threads (the stream's reader on its connection's).
 */
#ifndef CONLAB_LIVE_H
#define CONLAB_LIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "../server/engine.h"
#include "../server/request.h"
#include "../server/response.h"
#include "run.h"

#define LIVE_CHUNK_MAX   (16 * 1024) /* formatted bytes held ahead */
#define LIVE_LAG_MS      2000        /* behind more: coalesce the backlog */
#define LIVE_SCAN_EVENTS 512         /* task events sorted per scan */
#define LIVE_TEXT_WIDTH  62          /* columns of the ASCII timeline */
#define LIVE_TEXT_ROWS   16          /* lanes drawn per timeline */

#define CONTENT_TYPE_SSE  "text/event-stream; charset=utf-8"
#define CONTENT_TYPE_TEXT "text/plain; charset=utf-8"

enum live_form { LIVE_OFF, LIVE_SSE, LIVE_TEXT };

struct live_opts {
    enum live_form form;
    bool streamed; /* chunked as it happens (always for LIVE_SSE) */
};

struct params;
struct jsonr_doc;

/*
 * Takes "stream" and "format" from p (a query) or doc (a POST body,
 * when not NULL) and reads the Accept header. Returns 0, or -EINVAL with
 * the message in p.
 */
int live_parse(const struct request *req, struct params *p,
               struct jsonr_doc *doc, struct live_opts *out);

/* Bytes a stream of a run of n_tasks holds, for admission. */
size_t live_bytes(size_t n_tasks);

/*
 * After admission: launches the first run with start(rr, resp) (a
 * comparison of n_modes modes runs them one after another: a warm-up
 * first, and each mode `repeat` times, all through run_launch()) with a
 * live stream, and fills resp with the streamed answer. Returns
 * HANDLER_DONE in every case (on failure resp holds the error and rr is
 * freed); rr belongs to the stream from here.
 */
typedef enum handler_result live_start_fn(struct run_req *rr,
                                          struct response *resp);
enum handler_result live_start(struct run_req *rr, const struct live_opts *o,
                               const enum engine_mode *modes, size_t n_modes,
                               live_start_fn *start, struct response *resp);

struct live;

/*
 * run.c, before engine_run_start(): run is the stream's current run. A
 * quiet run (compare's untimed warm-up) is not told: no mode, task or
 * progress events; a mode run again (compare's repeat) is told again
 * under the same index.
 */
void live_run_launching(struct live *lv, struct engine_run *run, bool quiet);

/* The engine's notify hook (engine_notify_fn): wakes the stream. */
void live_notify(void *arg);

/* run.c's done callback for a streamed run. Any thread. */
void live_run_done(struct live *lv, int status);

/*
 * Turns a finished JSON answer in resp (a run's or a comparison's body,
 * or an error) into the text form, in one body: every task's start and
 * end in time order, then the summary. Request thread.
 */
void live_text_answer(struct response *resp);

/* conlab_stream_* counters. */
void live_write_metrics(FILE *out);

#endif
