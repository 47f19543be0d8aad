/*
 * http: the libmicrohttpd daemons and the glue between them and the
 * router.
 *
 * The public daemon runs its own pool of request threads (epoll) with
 * suspend/resume enabled, and a thread of this module accepts its
 * connections and deals them out evenly among them (see accept_main() in
 * http.c); the
 * self listener (HTTP_SELF_CONN_MEMORY) is a second one, on loopback, for
 * this process's own fetches. For every request it builds a struct
 * request, dispatches it through the router on the request thread, and
 * queues the struct response the handler filled.
 * A handler that must wait (a job, a timer, a fetch) calls http_suspend()
 * before it hands its work off and returns HANDLER_ASYNC; whoever finishes
 * the work calls http_resume() exactly once, from any thread.
 *
 * Limits enforced here: total and per-address connections (the self
 * listener has a total of its own and no per-address one), an idle
 * connection timeout, a deadline for each request head (--head-timeout-ms,
 * enforced by http_sweep()), a per-connection memory pool, the URI, header
 * and body sizes (answered 414, 431 and 413 in the JSON error shape while
 * they fit the memory pool; beyond it libmicrohttpd answers on its own).
 *
 * Threads: http_new/http_run/http_quiesce/http_wait_idle/http_stop belong
 * to the main thread; http_stats, http_suspend and http_resume to any
 * thread.
 */
#ifndef CONLAB_HTTP_H
#define CONLAB_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "request.h"
#include "router.h"

#define HTTP_URI_MAX          4096  /* bytes of path and query */
#define HTTP_REQUEST_ID_MAX   64    /* bytes of an X-Request-Id kept */
#define HTTP_HEADERS_MAX      8192  /* bytes of request header fields */
#define HTTP_BODY_MAX         65536 /* bytes of a body no route takes */
#define HTTP_BODY_DISCARD_MAX (16 * HTTP_BODY_MAX) /* then the link is cut */
/*
 * libmicrohttpd 0.9.75 clears the used part of a connection's pool after
 * every keep-alive request, and a request uses all of it (the read buffer
 * grows into what is free): the pool size sets the cost of every request.
 * Measured under callgrind, 64 KiB cleared 96 KiB per request, 81% of
 * /health's instructions; 32 KiB, libmicrohttpd's default, 49,200 of
 * 63,500; 16 KiB, 24,600 of 39,100. 16 KiB holds the largest request
 * target (HTTP_URI_MAX) and header fields (HTTP_HEADERS_MAX) at once with
 * room for the response head; long inputs belong in request bodies.
 */
#define HTTP_CONN_MEMORY (16 * 1024)
/*
 * The self listener: a second daemon, on a loopback port of its own (an
 * ephemeral one on 127.0.0.1, else ::1), that serves one path (the fetch
 * demo's own target) to this process's own transfers. It exists for their
 * memory: libmicrohttpd 0.9.75 gives a connection half its pool as a read
 * buffer and zeroes what the head left of it when the answer starts, so a
 * connection touches most of its pool even for a 200-byte request.
 * Measured (VmRSS, 1,000 concurrent self-fetches): 16 KiB pools added
 * 26-27 MiB, 4 KiB 18-19, 2 KiB 16-17. 2 KiB holds the demo's request
 * head (164 bytes at most, its charge token included) in the 1 KiB read
 * buffer, and the answer's head (about 200 bytes) in what is left,
 * several times over. Its connections are not counted against
 * --max-per-ip (they all come from this process); --max-connections
 * bounds them as it bounds the public listener's.
 */
#define HTTP_SELF_CONN_MEMORY (2 * 1024)
/*
 * The self listener's threads run this much nicer than the others: they
 * and the event loop's thread share the cores while a burst of
 * self-fetches runs, and every transfer passes through the loop, whose
 * thread waited 22-31 ms a run for a core (1,000 self-fetches, runs of
 * about 200 ms) and 12-18 ms at +5. Only when the cores are contended does
 * it matter.
 */
#define HTTP_SELF_NICE 5

struct http_server;

struct http_stats {
    unsigned connections;   /* open client connections */
    uint64_t in_flight;     /* requests received and not yet completed */
    uint64_t suspended;     /* of those, waiting for http_resume() */
    uint64_t completed;     /* requests completed since start */
    uint64_t head_timeouts; /* connections cut by --head-timeout-ms */
};

/*
 * Binds cfg->bind:cfg->port, and the self listener (see
 * HTTP_SELF_CONN_MEMORY) a loopback port, without starting any thread (the
 * sockets listen at once, so the ports are known). The self listener
 * serves self_path only (an exact path, "/delay"), through the same
 * router; any other path there is a 404. cfg, router and self_path must
 * outlive the server. Returns the server, or NULL with the reason in err.
 */
struct http_server *http_new(const struct config *cfg,
                             const struct router *router, const char *self_path,
                             char *err, size_t err_len);

/*
 * Starts cfg->threads request threads for each listener, which dispatch
 * through the router. Returns 0, or -EIO with the reason in err. Main
 * thread, once.
 */
int http_run(struct http_server *srv, char *err, size_t err_len);

struct budget;

/*
 * Charges every request body a route takes (POST) to its client's bytes
 * budget while the body is held (from the request head, by its
 * Content-Length, until the handler returns). Main thread, before
 * http_run(); without it bodies are bounded by --body-max only.
 */
void http_charge_bodies(struct http_server *srv, struct budget *budget);

/*
 * Frees req's body and gives its bytes back to the budget: for a handler
 * that has taken what it needs from it, before it asks the budget for
 * its run (else the body would count twice). req->body is NULL after.
 * Request thread, during the handler; again, or without a body, nothing.
 */
void http_body_release(struct request *req);

/* The bound port (useful with port 0). */
int http_port(const struct http_server *srv);

/*
 * The self listener's address: its host as written in a URL, "127.0.0.1"
 * or "[::1]", and its port. Any thread.
 */
const char *http_self_host(const struct http_server *srv);
int http_self_port(const struct http_server *srv);

/*
 * True when sa (AF_INET or AF_INET6) is the self listener's address and
 * port: where a transfer meant for it may connect. Any thread.
 */
bool http_is_self(const struct http_server *srv, const struct sockaddr *sa);

/* A snapshot of the counters. Any thread. */
void http_stats(const struct http_server *srv, struct http_stats *out);

/*
 * Starts draining: every request that arrives from now on, on an open or a
 * new connection, is answered 503 with "Connection: close", and every
 * response closes its connection. Requests in flight go on. The listening
 * socket is closed by http_stop() (see http.c for why not earlier). Main
 * thread.
 */
void http_quiesce(struct http_server *srv);

/*
 * Waits until no request is in flight, at most timeout_ms, sweeping for
 * clients that leave meanwhile (http_sweep()). Returns true when idle.
 * Main thread, after http_quiesce().
 */
bool http_wait_idle(struct http_server *srv, int timeout_ms);

/*
 * Waits until no request is suspended or woken and not yet answered, at
 * most timeout_ms (what shutdown waits for once the work is over: unlike
 * http_wait_idle(), a client stalled mid-upload does not count). Returns
 * true when none is. Main thread.
 */
bool http_wait_unsuspended(struct http_server *srv, int timeout_ms);

/*
 * Answers every request still suspended with a 503 (their owners must
 * already be stopped), stops the daemon and frees the server.
 * http_stop(NULL) does nothing. Main thread.
 */
void http_stop(struct http_server *srv);

/*
 * Suspends req's connection: called by a handler, on its request thread,
 * before it hands the request to another thread, after which it returns
 * HANDLER_ASYNC. The connection then holds no thread.
 */
void http_suspend(struct request *req);

/*
 * Completes a suspended request with *resp, which it takes (resp is left
 * empty). Any thread, exactly once per http_suspend(); req must not be
 * touched afterwards.
 */
void http_resume(struct request *req, struct response *resp);

/*
 * What http_wake() runs on a request thread once the request is resumed:
 * fill resp and return HANDLER_DONE, or suspend again (http_suspend())
 * and return HANDLER_ASYNC.
 */
typedef enum handler_result (*http_wake_fn)(struct request *req,
                                            struct response *resp, void *arg);

/*
 * Resumes a suspended request so that fn runs on one of the request
 * threads (where the answer is built, never on the thread that finished
 * the work). Any thread, exactly once per http_suspend(); takes no lock of
 * this module, so it may be called from a gone hook (http_watch()).
 */
void http_wake(struct request *req, http_wake_fn fn, void *arg);

/*
 * True inside a wake function called because the connection ended before
 * the woken request could be answered: free what it holds, start nothing
 * (the response is dropped).
 */
bool http_closing(const struct request *req);

/*
 * Asks to be told, once, when the client of the suspended request leaves
 * (a reset or a full close; see http_client_gone()): gone(arg) is called
 * by http_sweep() with this module's lock held, so it must not block and
 * may only call http_wake()/http_resume() into this module. The watch
 * ends when the request is resumed. Request thread, after http_suspend().
 */
void http_watch(struct request *req, void (*gone)(void *arg), void *arg);

/*
 * Polls the sockets of the watched suspended requests and tells the
 * watchers of those whose client left; then, with cfg->head_timeout_ms on,
 * shuts down every connection whose request head is not whole that long
 * after its first byte (counted in http_stats' head_timeouts and logged).
 * Main thread, every tick (100 ms), which is the deadline's resolution.
 */
void http_sweep(struct http_server *srv);

/*
 * True when the client of a suspended request is gone: it reset the
 * connection, or closed its socket (so its answer would be thrown away). A
 * client that only shut its write side (shutdown(SHUT_WR), a legal
 * HTTP/1.1 half-close) is not gone: it still reads its answer. The two send
 * the same FIN, so the first call that sees a FIN from an HTTP/1.1 client
 * sends it an interim "HTTP/1.1 100 Continue" (once per request): a closed
 * socket answers it with a reset. For an HTTP/1.0 client a FIN alone never
 * means gone. Cheap (poll(2) with no wait, at most one send(2)); any thread,
 * while the request is suspended.
 */
bool http_client_gone(const struct request *req);

/*
 * Streamed responses (response.stream): libmicrohttpd 0.9.75 pulls the
 * body through a content reader on the connection's request thread. Read
 * in its source (connection.c, daemon.c): a reader that returns 0 leaves
 * the connection in MHD_CONNECTION_CHUNKED_BODY_UNREADY with event-loop
 * info BLOCK, which sets data_already_pending, so the worker polls with a
 * zero timeout and calls the reader again at once: a busy loop of a
 * request thread per waiting stream. So the reader suspends the
 * connection before it returns 0 ("parks"; the header allows
 * MHD_suspend_connection() from a content reader), and whoever has
 * something new calls http_stream_wake(), which resumes it. Measured
 * here: a parked stream costs no CPU between events (README, "Live
 * runs"). A parked stream is watched by http_sweep() (its client leaving
 * calls the stream's gone hook) and woken every HTTP_STREAM_TICK_MS for
 * periodic progress.
 */
#define HTTP_STREAM_BLOCK   8192 /* bytes asked of a reader at most */
#define HTTP_STREAM_TICK_MS 500  /* parked streams are woken this often */
/* The send buffer of a streaming connection (the kernel doubles it). */
#define HTTP_STREAM_SNDBUF (32 * 1024)

/*
 * Tells a streamed response that something changed: resumes its
 * connection when parked, so that its reader runs again on a request
 * thread. Coalesced: one pending wake at a time, further calls cost one
 * atomic exchange. Any thread, from the time the stream is queued until
 * its detach hook returns (the owner must keep the two apart).
 */
void http_stream_wake(struct request *req);

/* Streamed responses open now. Any thread. */
uint64_t http_streams(const struct http_server *srv);

#endif
