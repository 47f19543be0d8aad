/*
 * http: see http.h.
 *
 * Every request gets a struct exchange, allocated by the URI-log callback
 * (the first thing libmicrohttpd tells about a request) and freed by the
 * request-completed callback. The access handler is then called several
 * times for one request: the first call only records it (answering on the
 * first call makes libmicrohttpd 0.9.75 close keep-alive connections), the
 * calls with body data discard it, and the final call dispatches. A
 * suspended exchange is resumed by http_resume(), which stores the response
 * before resuming, so the access handler's next call just queues it.
 *
 * Suspended exchanges are also kept on a list, under suspended_lock, so
 * that http_stop() can answer any an owner failed to complete.
 *
 * A client that sent FIN may have closed its socket (gone) or only shut its
 * write side (a legal HTTP/1.1 half-close: it still reads). TCP shows both
 * the same way until something is sent: a closed socket answers data with a
 * reset. So http_client_gone() sends an HTTP/1.1 client that has sent FIN
 * one interim "100 Continue" (RFC 9110 15.2: clients must accept an
 * unexpected 1xx), once, while the request is suspended and before any
 * answer, and the reset, when it comes, marks the client gone. On loopback
 * the reset is there by the time send() returns; from farther away a later
 * check sees it.
 *
 * The request head has a deadline (--head-timeout-ms) of its own, because
 * libmicrohttpd's connection timeout cannot be one. Read in its 0.9.75
 * source (connection.c): every recv() that returns data calls
 * MHD_update_last_activity_(), so MHD_OPTION_CONNECTION_TIMEOUT and
 * MHD_set_connection_option(MHD_CONNECTION_OPTION_TIMEOUT) both measure
 * idle time, in whole seconds, and one byte resets them; measured, 20
 * clients sending one header byte every 0.5 s all stayed connected for 6 s
 * with --conn-timeout 2 (tests/integration/faults.py). So each connection
 * gets a struct peer (from the connection-notify callback, a lock per
 * connection, none per request) on a list that the main thread's sweep,
 * every 100 ms, walks: a connection that is waiting for a head (before
 * its first request, or since its previous one completed) and has
 * received data since that wait began, as the kernel counts it
 * (TCP_INFO's tcpi_bytes_received and tcpi_last_data_recv; one
 * getsockopt() per waiting connection per tick, measured at 0.33 us), is
 * shut down (shutdown(SHUT_RDWR), which wakes libmicrohttpd's epoll; it
 * then reads end-of-file and closes the connection on its own thread) when
 * its head is not whole head-timeout after the first byte so seen. The
 * request threads only flip two relaxed atomics per request; they make no
 * system call and take no lock for this.
 * That client must still get its answer after a resume, and libmicrohttpd
 * 0.9.75 closed it instead (measured: 16 to 45 of 80 concurrent half-closed
 * /run/ requests unanswered, logged "connection ended: 1"). A connection
 * suspended by the access handler keeps the event-loop state it had while
 * reading the request (MHD_connection_update_event_loop_info() skips a
 * suspended connection), and a resumed one is marked readable, so the epoll
 * worker's call_handlers() calls recv() before the access handler can
 * answer; recv() returns 0 for the FIN, and MHD_connection_handle_read()
 * closes a connection at or past MHD_CONNECTION_FULL_REQ_RECEIVED on a 0
 * read (MHD_REQUEST_TERMINATED_WITH_ERROR). It answered only when the
 * resumed connection was the oldest of its worker's default-timeout list,
 * whose tail MHD_epoll() idles before it reads: a lone half-closed client
 * worked, one behind an idle keep-alive connection never did. MHD_epoll()
 * idles every connection with a timeout of its own before it reads any, so
 * http_suspend() gives the connection one (SUSPENDED_TIMEOUT_S), and the
 * access handler call after the resume, which answers, restores the
 * daemon's: the answer is queued before libmicrohttpd reads the socket
 * again. Requests that are never suspended pay nothing for this.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <linux/sockios.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_received */
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "budget.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "uri.h"

#define LISTEN_BACKLOG 4096
/* How long the accept thread waits after accept() failed (no descriptor
 * left, for instance) before it tries again. */
#define ACCEPT_PAUSE_NS     (10 * 1000 * 1000)
#define ACCEPT_LOG_EVERY_NS (1000u * 1000u * 1000u)
#define MHD_LOG_REPEAT_NS   (1000u * 1000u * 1000u) /* see on_mhd_log() */
#define ORPHAN_WAIT_MS      200 /* for answers to orphaned requests to go out */
#define SWEEP_BATCH         256 /* sockets polled at once by http_sweep() */
#define SWEEP_EVERY_NS      (100u * 1000u * 1000u) /* while waiting to stop */
/*
 * Bytes of request target an exchange kept for a later request may hold:
 * a longer one is freed. An exchange is over 1 KiB, beyond glibc's
 * per-thread cache, so each request thread keeps the last SPARES it freed
 * (a stack: the next request takes the one freed last, still in the
 * core's cache). Keeping them saves about 1,000 instructions of every
 * request (callgrind). They used to be kept one per connection, which
 * saved as much at 64 connections but at 1,000 made every request start
 * with cache misses on its connection's cold exchange (perf: on_uri's
 * loads of it were a tenth of the gap to the minimal server).
 */
#define SPARE_URI_MAX 256
#define SPARES        8
/*
 * The request counters are kept per thread (HTTP_SLOTS slots, each its
 * own cache line) and summed when read: one line shared by the request
 * threads and written on every request moved between their cores on each
 * write (perf: the in_flight increment alone was 1.6% of the service's
 * CPU at 1,000 connections). A thread owns its slot, so it adds with a
 * plain load and store rather than a locked instruction, which would also
 * wait for every store before it (perf: the request id's locked add then
 * stood for most of on_access(), waiting on the store to the connection's
 * cold struct peer). The threads beyond the first HTTP_SLOTS - 1 share the
 * last slot, with atomic adds.
 */
#define HTTP_SLOTS 32
/*
 * tcpi_last_data_recv counts kernel clock ticks (4 ms at HZ=250) in whole
 * ms: a request answered within a tick looked as if it had sent data after
 * its answer, and its idle keep-alive connection was cut by the head
 * deadline (seen in faults-head). Data that recent counts from the next
 * byte instead.
 */
#define RX_CLOCK_SLACK_NS (20 * 1000 * 1000)
/* Sent to a client that sent FIN, to tell a half-close from a close. */
#define GONE_PROBE "HTTP/1.1 100 Continue\r\n\r\n"
/*
 * The timeout of a suspended connection: any value other than the daemon's
 * (MHD_OPTION_CONNECTION_TIMEOUT, cfg->conn_timeout_s) puts it, once
 * resumed, on the list libmicrohttpd idles before reading (see the file
 * comment). Suspended connections do not time out, and the resumed one is
 * answered on that first idle call, so the value itself never applies.
 */
#define SUSPENDED_TIMEOUT_S(cfg) ((unsigned)(cfg)->conn_timeout_s + 1u)

enum exchange_state {
    EX_NEW,       /* recorded, waiting for the end of the request */
    EX_RUNNING,   /* dispatched, handler suspended it */
    EX_RESUMED,   /* response stored by http_resume(), not yet queued */
    EX_WOKEN,     /* http_wake(): its function runs on the next call */
    EX_ANSWERED,  /* response queued */
    EX_STREAMING, /* a streamed response queued (response.stream) */
};

struct exchange {
    struct http_server *srv;
    struct MHD_Connection *conn;
    _Atomic int state;
    _Atomic bool probed; /* GONE_PROBE sent (at most once) */
    bool http11;         /* the request is HTTP/1.1: 1xx may be sent */
    size_t body_bytes;
    /* A route that takes a body (POST): read into body, charged to the
     * client's budget while held, freed as soon as the handler returns. */
    bool takes_body;
    char *body;
    size_t body_cap; /* Content-Length: the buffer holds body_cap + 1 */
    struct budget_claim body_claim;
    bool self;                    /* came in on the self listener */
    struct exchange *prev, *next; /* on srv->suspended while suspended */
    struct peer *peer;            /* its connection's, or NULL */
    http_wake_fn wake;            /* EX_WOKEN: what runs on resume */
    void *wake_arg;
    void (*gone)(void *arg); /* told once when the client leaves */
    void *gone_arg;
    bool gone_told;
    bool closing; /* completed before a woken request was answered */
    /* EX_STREAMING: the stream, and its parking (see http_stream_wake) */
    const struct response_stream *stream;
    void *stream_arg;
    pthread_mutex_t stream_lock; /* guards parking; inited when streaming */
    _Atomic bool stream_parked;  /* suspended by stream_read() */
    _Atomic bool stream_kick;    /* something changed since the last read */
    _Atomic bool stream_abort;   /* shutdown: cut it at the next read */
    struct request req;
    char id[HTTP_REQUEST_ID_MAX + 1]; /* X-Request-Id, "" until known */
    int status;                       /* queued status, for the access log */
    uint64_t bytes; /* queued body bytes, for the access log */
    size_t uri_len;
    size_t uri_room; /* bytes of storage for each of uri and path */
    char *uri;       /* raw request target, as received */
    char *path;      /* decoded path (the request view points here) */
    /* Last but storage: on_uri() zeroes what comes before it, and
     * response_init() leaves its header array as it is. */
    struct response resp;
    char storage[];
};

/*
 * A client connection, while the head deadline is on. The request thread
 * that owns the connection writes the atomics; the main thread's sweep
 * reads them and owns the rest. On srv->peers under peers_lock from the
 * connection's start to its close, so the sweep may use fd while it holds
 * the lock (libmicrohttpd closes it after the close notification).
 */
struct peer {
    struct peer *prev, *next;
    int fd;
    const struct sockaddr *addr; /* libmicrohttpd's copy, lives as long */
    _Atomic bool awaiting;       /* waiting for a head (no request active) */
    _Atomic uint64_t since_ns;   /* when that wait began */
    /* The sweep's own view of the current wait (main thread only): */
    uint64_t period_ns;  /* the since_ns it is about */
    bool baseline_known; /* baseline was read during this wait */
    uint64_t baseline;   /* bytes received when the wait was first seen */
    uint64_t head_ns;    /* first byte of the head as seen; 0 = none yet */
    bool cut;            /* shut down; closing */
};

/*
 * One request thread's counters (see HTTP_SLOTS). in_flight counts
 * modulo 2^64: a request may start on one thread and end on another (at
 * shutdown), so a slot may go below zero and only the sum over the slots,
 * read as signed, means anything.
 */
struct http_slot {
    alignas(64) _Atomic uint64_t in_flight; /* read as int64_t when summed */
    _Atomic uint64_t completed;
    _Atomic uint64_t ids; /* request ids given */
    bool shared;          /* the last slot: several threads write it */
};

/* A request thread's spare exchanges, freed when the thread exits. */
struct spares {
    bool keyed; /* registered with spares_key */
    int n;
    struct exchange *ex[SPARES];
};

struct http_server {
    struct MHD_Daemon *daemon;
    const struct router *router;
    const struct config *cfg;
    int listen_fd; /* the public one: accept_main() accepts on it */
    int port;
    pthread_t acceptor;       /* accept_main(), while acceptor_on */
    bool acceptor_on;         /* main thread only */
    _Atomic bool accept_stop; /* http_stop(): accept_main() returns */
    /* Public connections handed to libmicrohttpd and not yet closed:
     * accept_main()'s --max-connections gate (see there). */
    _Atomic unsigned public_conns;
    /* The self listener (HTTP_SELF_CONN_MEMORY): */
    struct MHD_Daemon *self_daemon;
    const char *self_path; /* the one path it serves */
    int self_fd;
    int self_port;
    const char *self_host; /* "127.0.0.1" or "[::1]", as in a URL */
    struct sockaddr_storage self_addr;
    _Atomic bool draining; /* read on every request, written once */
    uint32_t id_prefix;    /* random per process: ids differ across replicas */
    char id_hex[8];        /* id_prefix in hex, each id's first 8 digits */
    struct http_slot slots[HTTP_SLOTS];
    alignas(64) _Atomic uint64_t n_suspended;
    _Atomic unsigned connections;
    pthread_mutex_t peers_lock;     /* guards the peers list only */
    struct peer peers;              /* list head (head deadline on) */
    _Atomic uint64_t head_timeouts; /* connections cut by the deadline */
    struct budget *budget;          /* charges request bodies, or NULL */
    uint64_t stream_tick_ns;        /* main thread: last tick of streams */
    _Atomic uint64_t streams;       /* streamed responses open now */
    pthread_mutex_t suspended_lock; /* guards the suspended list only */
    /* The list head; last, as struct exchange ends in a flexible array. */
    struct exchange suspended;
};

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn);
static void *on_self_uri(void *cls, const char *uri,
                         struct MHD_Connection *conn);
static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn,
                                 const char *url, const char *method,
                                 const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls);
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe);
static void on_connection(void *cls, struct MHD_Connection *conn,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode code);
static void on_public_connection(void *cls, struct MHD_Connection *conn,
                                 void **socket_context,
                                 enum MHD_ConnectionNotificationCode code);
static size_t on_unescape(void *cls, struct MHD_Connection *conn, char *s);
static void on_mhd_log(void *cls, const char *fmt, va_list ap);
static void dispatch(struct exchange *ex, const char *method);
static enum MHD_Result queue(struct exchange *ex);
static const char *lookup_header(const struct request *req, const char *name);
static enum MHD_Result sum_header(void *cls, enum MHD_ValueKind kind,
                                  const char *key, const char *value);
static int open_listener(const char *bind_addr, int port, int *bound_port,
                         struct sockaddr_storage *bound, char *err,
                         size_t err_len);
static int open_self_listener(struct http_server *srv, char *err,
                              size_t err_len);
static struct MHD_Daemon *start_daemon(struct http_server *srv, bool self);
static struct MHD_Daemon *start_self_daemon(struct http_server *srv);
static int start_acceptor(struct http_server *srv);
static void stop_acceptor(struct http_server *srv);
static void *accept_main(void *arg);
static bool log_due(uint64_t *last_ns);
static void list_remove(struct exchange *ex);
static void unlink_suspended(struct exchange *ex);
static bool fd_gone(struct exchange *ex, const struct pollfd *pfd);
static bool probe_closed(struct exchange *ex, int fd);
static void peer_open(struct http_server *srv, struct MHD_Connection *conn,
                      void **socket_context);
static void peer_close(struct http_server *srv, void **socket_context);
static void sweep_heads(struct http_server *srv);
static bool head_overdue(struct peer *p, uint64_t now_ns, uint64_t limit_ns);
static void restore_timeout(struct exchange *ex);
static void set_timeout(struct exchange *ex, unsigned seconds);
static bool route_takes_body(struct exchange *ex);
static bool content_type_json(const char *value);
static bool start_body(struct exchange *ex, struct MHD_Connection *conn);
static void drop_body(struct exchange *ex);
static struct http_slot *my_slot(struct http_server *srv);
static uint64_t slot_add(const struct http_slot *slot, _Atomic uint64_t *v,
                         uint64_t n);
static int64_t sum_in_flight(const struct http_server *srv);
static int slots_in_use(void);
static struct exchange *spare_take(size_t room);
static void spare_put(struct exchange *ex);
static void spares_free(void *arg);
static void spares_key_init(void);

static _Thread_local int my_slot_index = -1;
static atomic_int slots_claimed;
static _Thread_local struct spares my_spares;
static pthread_key_t spares_key;
static pthread_once_t spares_once = PTHREAD_ONCE_INIT;
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max);
static void stream_end(struct exchange *ex);

struct http_server *http_new(const struct config *cfg,
                             const struct router *router, const char *self_path,
                             char *err, size_t err_len)
{
    struct http_server *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    srv->router = router;
    srv->self_path = self_path;
    if (getrandom(&srv->id_prefix, sizeof(srv->id_prefix), GRND_NONBLOCK) !=
        (ssize_t)sizeof(srv->id_prefix))
        srv->id_prefix = (uint32_t)clock_now_ns() ^ (uint32_t)getpid();
    for (int i = 0; i < 8; i++)
        srv->id_hex[i] =
            "0123456789abcdef"[(srv->id_prefix >> (28 - 4 * i)) & 15];
    srv->slots[HTTP_SLOTS - 1].shared = true;
    srv->suspended.next = srv->suspended.prev = &srv->suspended;
    pthread_mutex_init(&srv->suspended_lock, NULL);
    srv->peers.next = srv->peers.prev = &srv->peers;
    pthread_mutex_init(&srv->peers_lock, NULL);

    srv->listen_fd =
        open_listener(cfg->bind, cfg->port, &srv->port, NULL, err, err_len);
    srv->self_fd =
        srv->listen_fd < 0 ? -1 : open_self_listener(srv, err, err_len);
    if (srv->self_fd < 0) {
        if (srv->listen_fd >= 0)
            close(srv->listen_fd);
        pthread_mutex_destroy(&srv->suspended_lock);
        pthread_mutex_destroy(&srv->peers_lock);
        free(srv);
        return NULL;
    }
    srv->cfg = cfg;
    return srv;
}

int http_run(struct http_server *srv, char *err, size_t err_len)
{
    srv->daemon = start_daemon(srv, false);
    if (srv->daemon) {
        srv->self_daemon = start_self_daemon(srv);
        if (!srv->self_daemon || start_acceptor(srv) != 0) {
            if (srv->self_daemon) {
                MHD_stop_daemon(srv->self_daemon); /* closes its socket */
                srv->self_daemon = NULL;
                srv->self_fd = -1;
            }
            MHD_stop_daemon(srv->daemon); /* the public socket stays ours */
            srv->daemon = NULL;
        }
    }
    if (!srv->daemon) {
        snprintf(err, err_len, "libmicrohttpd failed to start (see above)");
        return -EIO;
    }
    return 0;
}

/*
 * The public listener's connections are accepted by a thread of their own
 * and handed to libmicrohttpd, which gives each to request thread number
 * fd % threads (MHD_add_connection()). Left to libmicrohttpd 0.9.75, every
 * request thread watches the listening socket and the first one awake
 * accepts up to 11 connections in a row: a burst (wrk opening its
 * connections) could land mostly on one thread, which then served them
 * all on one core while the other idled, for as long as they stayed open.
 * Accepted descriptors are numbered in order, so a burst now alternates.
 *
 * --max-connections is enforced here, not by libmicrohttpd: a connection
 * added from another thread is counted by its request thread only when
 * that thread takes it up, and libmicrohttpd 0.9.75's firm check at that
 * point, if the thread is full, returns with its cleanup mutex held (the
 * thread deadlocks at its next lock; seen with 48 connections at once
 * against --max-connections 16). So public_conns counts a connection from
 * before it is added until its close notification, new ones are closed at
 * once while it is at the limit, and each request thread's own limit is
 * the whole --max-connections (start_daemon()): no thread can be full
 * while the total is under it. (A connection whose request thread cannot
 * allocate its memory pool is closed without a notification and stays
 * counted: it errs towards refusing.)
 */
static int start_acceptor(struct http_server *srv)
{
    /* Blocking: the thread sleeps in accept() until a client comes, and
     * shutdown() in stop_acceptor() wakes it. */
    int flags = fcntl(srv->listen_fd, F_GETFL);
    if (flags < 0 || fcntl(srv->listen_fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
        log_error("cannot make the listening socket blocking: %s",
                  strerror(errno));
        return -1;
    }
    int rc = pthread_create(&srv->acceptor, NULL, accept_main, srv);
    if (rc != 0) {
        log_error("cannot start the accept thread: pthread_create: %s",
                  strerror(rc));
        return -1;
    }
    srv->acceptor_on = true;
    return 0;
}

/* Stops accepting: new clients are refused from here on. */
static void stop_acceptor(struct http_server *srv)
{
    if (!srv->acceptor_on)
        return;
    atomic_store(&srv->accept_stop, true);
    /* A listening socket shut down wakes accept() (EINVAL on Linux). */
    shutdown(srv->listen_fd, SHUT_RDWR);
    pthread_join(srv->acceptor, NULL);
    srv->acceptor_on = false;
}

static void *accept_main(void *arg)
{
    struct http_server *srv = arg;
    uint64_t logged_ns = 0;      /* when a failure was last logged */
    uint64_t full_logged_ns = 0; /* when the limit was last logged */

    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(srv->listen_fd, (struct sockaddr *)&ss, &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            if (atomic_load(&srv->public_conns) >=
                (unsigned)srv->cfg->max_connections) {
                close(fd);
                if (log_due(&full_logged_ns))
                    log_warn("%d connections open (--max-connections): new "
                             "ones are closed",
                             srv->cfg->max_connections);
                continue;
            }
            atomic_fetch_add(&srv->public_conns, 1);
            /* On MHD_NO libmicrohttpd has closed fd (the per-address
             * limit: it logs it) and will not notify its close. */
            if (MHD_add_connection(srv->daemon, fd, (struct sockaddr *)&ss,
                                   len) != MHD_YES)
                atomic_fetch_sub(&srv->public_conns, 1);
            continue;
        }
        if (atomic_load(&srv->accept_stop))
            return NULL;
        int e = errno;
        if (e == EINTR || e == ECONNABORTED)
            continue; /* the client left before it was accepted */
        /* Out of descriptors or memory (EMFILE, ENFILE, ENOBUFS,
         * ENOMEM), or anything else: clients wait in the backlog while
         * this thread pauses; logged at most once a second. */
        if (log_due(&logged_ns))
            log_error("accept: %s; new connections wait", strerror(e));
        struct timespec pause = {0, ACCEPT_PAUSE_NS};
        nanosleep(&pause, NULL);
    }
}

/* Whether a line logged last at *last_ns (0: never) may be logged again
 * now, ACCEPT_LOG_EVERY_NS on; if so, now is when. */
static bool log_due(uint64_t *last_ns)
{
    uint64_t now = clock_now_ns();
    if (*last_ns != 0 && now - *last_ns < ACCEPT_LOG_EVERY_NS)
        return false;
    *last_ns = now;
    return true;
}

/* The public listener's daemon, or the self listener's. */
static struct MHD_Daemon *start_daemon(struct http_server *srv, bool self)
{
    const struct config *cfg = srv->cfg;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    /* The public listener's connections come from accept_main(). The
     * self listener's stay with libmicrohttpd: they come a few at a time
     * and its threads have nothing else to do. */
    struct MHD_OptionItem listen[] = {
        {MHD_OPTION_LISTEN_SOCKET, srv->self_fd, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    if (!self) {
        flags |= MHD_USE_NO_LISTEN_SOCKET;
        listen[0].option = MHD_OPTION_END; /* none: the array is empty */
    }
    /* The logger first (libmicrohttpd warns otherwise), then the options
     * that differ; a per-address limit of 0 is none. libmicrohttpd
     * divides the connection limit among the request threads: the public
     * daemon's total is kept by accept_main(), and each of its threads
     * may hold all of it. */
    return MHD_start_daemon(
        flags, 0, NULL, NULL, on_access, srv, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, NULL, MHD_OPTION_ARRAY, listen,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)(self ? HTTP_SELF_CONN_MEMORY : HTTP_CONN_MEMORY),
        MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        self ? 0u : (unsigned)cfg->max_per_ip, MHD_OPTION_URI_LOG_CALLBACK,
        self ? on_self_uri : on_uri, srv, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)cfg->threads, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)cfg->max_connections * (self ? 1u : (unsigned)cfg->threads),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->conn_timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION,
        self ? on_connection : on_public_connection, srv,
        MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, NULL, MHD_OPTION_END);
}

struct self_start {
    struct http_server *srv;
    struct MHD_Daemon *daemon;
};

/* A thread of its own, HTTP_SELF_NICE nicer, starts the self daemon. */
static void *self_start_main(void *arg)
{
    struct self_start *s = arg;
    /* On Linux the nice value belongs to a thread, and a new thread
     * starts with its creator's: the daemon's threads get this one's. */
    id_t me = (id_t)gettid();
    errno = 0;
    int nice_now = getpriority(PRIO_PROCESS, me);
    if ((nice_now == -1 && errno != 0) ||
        setpriority(PRIO_PROCESS, me, nice_now + HTTP_SELF_NICE) != 0)
        log_warn("the self listener's threads keep the usual priority: %s",
                 strerror(errno));
    s->daemon = start_daemon(s->srv, true);
    return NULL;
}

/* The self listener's daemon, its threads HTTP_SELF_NICE nicer. */
static struct MHD_Daemon *start_self_daemon(struct http_server *srv)
{
    struct self_start s = {.srv = srv};
    pthread_t t;
    int rc = pthread_create(&t, NULL, self_start_main, &s);
    if (rc != 0) {
        log_error("cannot start the self listener: pthread_create: %s",
                  strerror(rc));
        return NULL;
    }
    pthread_join(t, NULL);
    return s.daemon;
}

void http_charge_bodies(struct http_server *srv, struct budget *budget)
{
    srv->budget = budget;
}

void http_body_release(struct request *req)
{
    drop_body(req->conn);
}

int http_port(const struct http_server *srv)
{
    return srv->port;
}

const char *http_self_host(const struct http_server *srv)
{
    return srv->self_host;
}

int http_self_port(const struct http_server *srv)
{
    return srv->self_port;
}

bool http_is_self(const struct http_server *srv, const struct sockaddr *sa)
{
    const struct sockaddr_storage *me = &srv->self_addr;
    if (!sa || sa->sa_family != me->ss_family)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        const struct sockaddr_in *b = (const struct sockaddr_in *)me;
        return a->sin_port == b->sin_port &&
               a->sin_addr.s_addr == b->sin_addr.s_addr;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)me;
        return a->sin6_port == b->sin6_port &&
               memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr)) == 0;
    }
    return false;
}

void http_stats(const struct http_server *srv, struct http_stats *out)
{
    uint64_t completed = 0;
    for (int i = 0; i < slots_in_use(); i++)
        completed += atomic_load_explicit(&srv->slots[i].completed,
                                          memory_order_relaxed);
    int64_t in_flight = sum_in_flight(srv);
    out->connections = atomic_load(&srv->connections);
    out->in_flight = in_flight > 0 ? (uint64_t)in_flight : 0;
    out->suspended = atomic_load(&srv->n_suspended);
    out->completed = completed;
    out->head_timeouts = atomic_load(&srv->head_timeouts);
}

/*
 * The listening socket stays open until http_stop() closes it: meanwhile
 * every request, on a new connection too, is answered 503 and closed, so
 * a client learns why. (MHD_quiesce_daemon(), when libmicrohttpd held the
 * socket, was no option either: in 0.9.75 with epoll worker threads it
 * races the workers removing the socket from their epoll sets and aborts
 * the process when it loses, MHD_PANIC on ENOENT, seen in an ASan run.)
 */
void http_quiesce(struct http_server *srv)
{
    atomic_store(&srv->draining, true);
}

bool http_wait_idle(struct http_server *srv, int timeout_ms)
{
    uint64_t now = clock_now_ns();
    uint64_t deadline = now + (uint64_t)timeout_ms * 1000000u;
    uint64_t swept = now;
    for (;;) {
        if (sum_in_flight(srv) <= 0)
            return true;
        now = clock_now_ns();
        if (now >= deadline)
            return false;
        /* Clients that leave during the grace period still cancel their
         * work, so it does not hold the shutdown for nothing. */
        if (now - swept >= SWEEP_EVERY_NS) {
            http_sweep(srv);
            swept = now;
        }
        struct timespec pause = {0, 5 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

void http_stop(struct http_server *srv)
{
    if (!srv)
        return;

    if (!srv->daemon) {
        if (srv->listen_fd >= 0)
            close(srv->listen_fd);
        if (srv->self_fd >= 0)
            close(srv->self_fd);
        goto out_free;
    }

    /* Owners are stopped; whatever is still suspended was orphaned. */
    bool orphans = false;
    pthread_mutex_lock(&srv->suspended_lock);
    for (struct exchange *ex = srv->suspended.next; ex != &srv->suspended;
         ex = ex->next) {
        int running = EX_RUNNING;
        if (!atomic_compare_exchange_strong(&ex->state, &running, EX_RESUMED))
            continue; /* woken or resumed already: its answer is coming */
        log_error("request %s was still suspended at shutdown", ex->path);
        response_cleanup(&ex->resp);
        response_error(&ex->resp, 503, "the service is shutting down");
        atomic_fetch_sub(&srv->n_suspended, 1);
        MHD_resume_connection(ex->conn);
        orphans = true;
    }
    /* Streams still open (their runs are over, so they only wait for a
     * slow reader): cut at their next read. */
    for (struct exchange *ex = srv->suspended.next; ex != &srv->suspended;
         ex = ex->next) {
        if (atomic_load(&ex->state) != EX_STREAMING)
            continue;
        log_warn("stream %s was still open at shutdown", ex->path);
        atomic_store(&ex->stream_abort, true);
        atomic_store(&ex->stream_kick, true);
        pthread_mutex_lock(&ex->stream_lock);
        if (atomic_load(&ex->stream_parked)) {
            atomic_store(&ex->stream_parked, false);
            MHD_resume_connection(ex->conn);
        }
        pthread_mutex_unlock(&ex->stream_lock);
        orphans = true;
    }
    pthread_mutex_unlock(&srv->suspended_lock);
    if (orphans)
        http_wait_idle(srv, ORPHAN_WAIT_MS);

    /* No connection is added to a daemon being stopped. */
    stop_acceptor(srv);
    close(srv->listen_fd);
    /* The self daemon closes its listening socket. */
    MHD_stop_daemon(srv->self_daemon);
    MHD_stop_daemon(srv->daemon);
out_free:
    pthread_mutex_destroy(&srv->suspended_lock);
    pthread_mutex_destroy(&srv->peers_lock);
    free(srv);
}

void http_suspend(struct request *req)
{
    struct exchange *ex = req->conn;
    struct http_server *srv = ex->srv;

    atomic_store(&ex->state, EX_RUNNING);
    pthread_mutex_lock(&srv->suspended_lock);
    if (!ex->next) {
        ex->next = &srv->suspended;
        ex->prev = srv->suspended.prev;
        ex->prev->next = ex;
        srv->suspended.prev = ex;
    }
    pthread_mutex_unlock(&srv->suspended_lock);
    atomic_fetch_add(&srv->n_suspended, 1);
    MHD_suspend_connection(ex->conn);
    /* Set while suspended: libmicrohttpd only stores it (no list moves),
     * and the owner cannot resume before this returns. */
    set_timeout(ex, SUSPENDED_TIMEOUT_S(srv->cfg));
}

/*
 * Resuming takes no lock of ours: it may run inside a gone hook, which
 * http_sweep() calls under suspended_lock. The exchange leaves the
 * suspended list on its request thread, in on_access().
 */
void http_resume(struct request *req, struct response *resp)
{
    struct exchange *ex = req->conn;
    int running = EX_RUNNING;

    response_cleanup(&ex->resp);
    response_move(&ex->resp, resp);
    if (!atomic_compare_exchange_strong(&ex->state, &running, EX_RESUMED))
        return; /* answered at shutdown already */
    atomic_fetch_sub(&ex->srv->n_suspended, 1);
    MHD_resume_connection(ex->conn);
}

void http_wake(struct request *req, http_wake_fn fn, void *arg)
{
    struct exchange *ex = req->conn;
    int running = EX_RUNNING;

    ex->wake = fn;
    ex->wake_arg = arg;
    if (!atomic_compare_exchange_strong(&ex->state, &running, EX_WOKEN))
        return;
    atomic_fetch_sub(&ex->srv->n_suspended, 1);
    MHD_resume_connection(ex->conn);
}

bool http_wait_unsuspended(struct http_server *srv, int timeout_ms)
{
    uint64_t deadline = clock_now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        pthread_mutex_lock(&srv->suspended_lock);
        bool empty = srv->suspended.next == &srv->suspended;
        pthread_mutex_unlock(&srv->suspended_lock);
        if (empty)
            return true;
        if (clock_now_ns() >= deadline)
            return false;
        struct timespec pause = {0, 2 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

bool http_closing(const struct request *req)
{
    const struct exchange *ex = req->conn;
    return ex->closing;
}

void http_watch(struct request *req, void (*gone)(void *arg), void *arg)
{
    struct exchange *ex = req->conn;
    pthread_mutex_lock(&ex->srv->suspended_lock);
    ex->gone = gone;
    ex->gone_arg = arg;
    ex->gone_told = false;
    pthread_mutex_unlock(&ex->srv->suspended_lock);
}

void http_sweep(struct http_server *srv)
{
    struct pollfd pfds[SWEEP_BATCH];
    struct exchange *batch[SWEEP_BATCH];
    uint64_t now = clock_now_ns();
    bool tick = now - srv->stream_tick_ns >= HTTP_STREAM_TICK_MS * 1000000ull;
    if (tick)
        srv->stream_tick_ns = now;

    /* Under the lock: an exchange on the list is not freed (it leaves
     * the list on its request thread, under this lock, first). */
    pthread_mutex_lock(&srv->suspended_lock);
    struct exchange *ex = srv->suspended.next;
    while (ex != &srv->suspended) {
        size_t n = 0;
        for (; ex != &srv->suspended && n < SWEEP_BATCH; ex = ex->next) {
            if (atomic_load(&ex->state) == EX_STREAMING) {
                /* Only a parked stream: libmicrohttpd handles the rest,
                 * and a failed write there ends it. */
                if (ex->gone_told || !atomic_load(&ex->stream_parked))
                    continue;
                if (tick)
                    http_stream_wake(&ex->req);
            } else if (!ex->gone || ex->gone_told ||
                       atomic_load(&ex->state) != EX_RUNNING) {
                continue;
            }
            const union MHD_ConnectionInfo *info = MHD_get_connection_info(
                ex->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
            if (!info)
                continue;
            pfds[n].fd = info->connect_fd;
            pfds[n].events = POLLRDHUP;
            pfds[n].revents = 0;
            batch[n++] = ex;
        }
        if (n == 0 || poll(pfds, n, 0) <= 0)
            continue;
        for (size_t i = 0; i < n; i++) {
            struct exchange *b = batch[i];
            if (atomic_load(&b->state) == EX_STREAMING) {
                /* Its head is sent: no probe may follow, and a stream's
                 * client does not half-close, so a FIN is gone too. */
                if (!(pfds[i].revents & (POLLHUP | POLLERR | POLLRDHUP)))
                    continue;
                b->gone_told = true;
                if (b->stream->gone)
                    b->stream->gone(b->stream_arg);
                continue;
            }
            if (!fd_gone(b, &pfds[i]))
                continue;
            b->gone_told = true;
            b->gone(b->gone_arg);
        }
    }
    pthread_mutex_unlock(&srv->suspended_lock);

    if (srv->cfg->head_timeout_ms > 0)
        sweep_heads(srv);
}

void http_stream_wake(struct request *req)
{
    struct exchange *ex = req->conn;
    /* Coalesced: while a kick is pending, the reader has yet to run. */
    if (atomic_exchange(&ex->stream_kick, true))
        return;
    pthread_mutex_lock(&ex->stream_lock);
    if (atomic_load(&ex->stream_parked)) {
        atomic_store(&ex->stream_parked, false);
        MHD_resume_connection(ex->conn);
    }
    pthread_mutex_unlock(&ex->stream_lock);
}

uint64_t http_streams(const struct http_server *srv)
{
    return atomic_load(&srv->streams);
}

/*
 * libmicrohttpd's content reader of a streamed response, on the
 * connection's request thread. Nothing ready: park (suspend from inside
 * the reader, which 0.9.75 allows) and return 0; returning 0 without
 * suspending is a busy loop there (see http.h).
 */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct exchange *ex = cls;
    (void)pos;
    for (;;) {
        if (atomic_load(&ex->stream_abort))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        atomic_store(&ex->stream_kick, false);
        long n = ex->stream->read(ex->stream_arg, buf, max);
        if (n > 0) {
            ex->bytes += (uint64_t)n; /* for the access log */
            return (ssize_t)n;
        }
        if (n == RESPONSE_STREAM_END)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (n < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        pthread_mutex_lock(&ex->stream_lock);
        if (atomic_load(&ex->stream_kick)) {
            pthread_mutex_unlock(&ex->stream_lock);
            continue; /* changed meanwhile: read again */
        }
        atomic_store(&ex->stream_parked, true);
        MHD_suspend_connection(ex->conn);
        pthread_mutex_unlock(&ex->stream_lock);
        return 0;
    }
}

/* on_completed() of a stream: off the list, then the owner lets go. */
static void stream_end(struct exchange *ex)
{
    unlink_suspended(ex);
    ex->stream->detach(ex->stream_arg);
    ex->stream = NULL;
    pthread_mutex_destroy(&ex->stream_lock);
    atomic_fetch_sub(&ex->srv->streams, 1);
}

bool http_client_gone(const struct request *req)
{
    struct exchange *ex = req->conn;
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(ex->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!info)
        return false;
    struct pollfd pfd = {.fd = info->connect_fd, .events = POLLRDHUP};
    if (poll(&pfd, 1, 0) != 1)
        return false;
    /* A stream's head is sent: no probe (see http_sweep()). */
    if (atomic_load(&ex->state) == EX_STREAMING)
        return (pfd.revents & (POLLHUP | POLLERR | POLLRDHUP)) != 0;
    return fd_gone(ex, &pfd);
}

/*
 * What a poll of a client's socket says about it: a reset (POLLERR) or
 * both directions shut (POLLHUP) is gone; POLLRDHUP alone is a FIN, from
 * a client that closed or one that half-closed and still reads, which
 * probe_closed() tells apart.
 */
static bool fd_gone(struct exchange *ex, const struct pollfd *pfd)
{
    if (pfd->revents & (POLLHUP | POLLERR))
        return true;
    if (pfd->revents & POLLRDHUP)
        return probe_closed(ex, pfd->fd);
    return false;
}

/* The client's X-Request-Id when it is a sane token, else a new one. */
static void set_request_id(struct exchange *ex)
{
    const char *given =
        MHD_lookup_connection_value(ex->conn, MHD_HEADER_KIND, "X-Request-Id");
    size_t len = given ? strlen(given) : 0;
    bool ok = len > 0 && len <= HTTP_REQUEST_ID_MAX;
    for (size_t i = 0; ok && i < len; i++) {
        char c = given[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    }
    if (ok) {
        memcpy(ex->id, given, len + 1);
        return;
    }
    /* 8 hex digits of the process's prefix, 12 of a counter, two digits
     * a byte (this was 190 instructions a request a digit at a time). */
    static const char hex2[256][2] = {
#define D(d)   (char)((d) < 10 ? '0' + (d) : 'a' + (d)-10)
#define H(n)   {D((n) >> 4), D((n)&15)}
#define H4(n)  H(n), H((n) + 1), H((n) + 2), H((n) + 3)
#define H16(n) H4(n), H4((n) + 4), H4((n) + 8), H4((n) + 12)
#define H64(n) H16(n), H16((n) + 16), H16((n) + 32), H16((n) + 48)
        H64(0), H64(64), H64(128), H64(192)
#undef H64
#undef H16
#undef H4
#undef H
#undef D
    };
    /* The slot in the top 5 bits keeps ids of different threads apart
     * (2^43 per slot). */
    struct http_slot *slot = my_slot(ex->srv);
    uint64_t n = ((uint64_t)(slot - ex->srv->slots) << 43) |
                 (slot_add(slot, &slot->ids, 1) & ((UINT64_C(1) << 43) - 1));
    memcpy(ex->id, ex->srv->id_hex, 8);
    for (int i = 0; i < 6; i++)
        memcpy(ex->id + 8 + 2 * i, hex2[(n >> (40 - 8 * i)) & 255], 2);
    ex->id[20] = '\0';
}

/*
 * First sight of a request: allocate its exchange (becomes *con_cls).
 * Inlined into both listeners' callbacks.
 */
static inline struct exchange *start_exchange(struct http_server *srv,
                                              const char *uri,
                                              struct MHD_Connection *conn)
{
    size_t len = strlen(uri);
    const union MHD_ConnectionInfo *sc =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct peer *peer = sc ? sc->socket_context : NULL;
    /* Written once the head is whole (on_access): with many connections
     * its line is out of the cache by now, so fetch it while libmicrohttpd
     * parses the header fields. */
    if (peer)
        __builtin_prefetch(&peer->awaiting, 1);
    size_t room = len + 1;
    struct exchange *ex = spare_take(room);
    if (ex) {
        room = ex->uri_room;
    } else {
        if (len < SPARE_URI_MAX)
            room = SPARE_URI_MAX; /* so that it may be kept */
        ex = malloc(sizeof(*ex) + 2 * room);
        if (!ex)
            return NULL;
    }

    memset(ex, 0, offsetof(struct exchange, resp));
    ex->uri_room = room;
    ex->srv = srv;
    ex->conn = conn;
    atomic_init(&ex->state, EX_NEW);
    atomic_init(&ex->probed, false);
    response_init(&ex->resp);
    ex->uri_len = len;
    ex->uri = ex->storage;
    memcpy(ex->uri, uri, len + 1);
    ex->path = ex->storage + room;
    ex->path[0] = '\0';
    ex->req.path = ex->path;
    ex->req.query = "";
    ex->req.accepted_ns = clock_now_ns();
    ex->req.route = -1;
    ex->req.id = ex->id;
    ex->req.header = lookup_header;
    ex->req.conn = ex;
    const union MHD_ConnectionInfo *addr =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    ex->req.client = addr ? addr->client_addr : NULL;
    ex->peer = peer;
    struct http_slot *slot = my_slot(srv);
    slot_add(slot, &slot->in_flight, 1);
    return ex;
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    return start_exchange(cls, uri, conn);
}

static void *on_self_uri(void *cls, const char *uri,
                         struct MHD_Connection *conn)
{
    struct exchange *ex = start_exchange(cls, uri, conn);
    if (ex)
        ex->self = true;
    return ex;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn,
                                 const char *url, const char *method,
                                 const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    struct exchange *ex = *con_cls;
    (void)cls;
    (void)url;

    if (!ex) {
        log_error("out of memory for a request: its connection is closed");
        return MHD_NO; /* from on_uri() */
    }

    switch (atomic_load(&ex->state)) {
    case EX_NEW:
        if (ex->req.method == 0) {
            /* First call: record only (see the file comment). The head
             * is whole: its deadline no longer applies. */
            if (ex->peer)
                atomic_store_explicit(&ex->peer->awaiting, false,
                                      memory_order_relaxed);
            ex->req.method = http_method_parse(method);
            ex->http11 = version && strcmp(version, MHD_HTTP_VERSION_1_1) == 0;
            set_request_id(ex);
            if (ex->req.method == HTTP_POST && route_takes_body(ex)) {
                ex->takes_body = true;
                if (!start_body(ex, conn))
                    return queue(ex); /* 411, 413, 415, 503 */
                return MHD_YES;
            }
            const char *length = MHD_lookup_connection_value(
                conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (length && strtoull(length, NULL, 10) > HTTP_BODY_MAX) {
                response_error(&ex->resp, 413,
                               "request body too large (at most %d bytes; "
                               "no endpoint takes a body)",
                               HTTP_BODY_MAX);
                return queue(ex);
            }
            return MHD_YES;
        }
        if (*upload_size > 0 && ex->takes_body) {
            /* libmicrohttpd never passes more than Content-Length, which
             * start_body() checked; anything else is cut. */
            if (ex->body_bytes + *upload_size > ex->body_cap)
                return MHD_NO;
            memcpy(ex->body + ex->body_bytes, upload, *upload_size);
            ex->body_bytes += *upload_size;
            *upload_size = 0;
            return MHD_YES;
        }
        if (*upload_size > 0) {
            /* libmicrohttpd cannot answer before the body has been read:
             * discard it (up to a cap) and answer at the end. */
            ex->body_bytes += *upload_size;
            *upload_size = 0;
            return ex->body_bytes > HTTP_BODY_DISCARD_MAX ? MHD_NO : MHD_YES;
        }
        if (!ex->takes_body && ex->body_bytes > HTTP_BODY_MAX) {
            response_error(&ex->resp, 413,
                           "request body too large (at most %d bytes; "
                           "no endpoint takes a body)",
                           HTTP_BODY_MAX);
            return queue(ex);
        }
        if (ex->takes_body) {
            ex->body[ex->body_bytes] = '\0';
            ex->req.body = ex->body;
            ex->req.body_len = ex->body_bytes;
        }
        dispatch(ex, method);
        /* The handler kept what it needed: the body goes now, not when
         * the run ends. */
        drop_body(ex);
        if (atomic_load(&ex->state) == EX_NEW)
            return queue(ex);
        return MHD_YES; /* suspended; resumed by http_resume() */
    case EX_RESUMED:
        unlink_suspended(ex);
        restore_timeout(ex);
        /* Nobody would read it: close instead (counted 499). */
        if (http_client_gone(&ex->req))
            return MHD_NO;
        return queue(ex);
    case EX_WOKEN: {
        unlink_suspended(ex);
        restore_timeout(ex);
        atomic_store(&ex->state, EX_NEW);
        enum handler_result r = ex->wake(&ex->req, &ex->resp, ex->wake_arg);
        if (r == HANDLER_DONE && http_client_gone(&ex->req))
            return MHD_NO; /* nobody would read it (counted 499) */
        if (r == HANDLER_DONE)
            return queue(ex);
        return MHD_YES; /* suspended again */
    }
    case EX_RUNNING:
        /* Resumed without a response: a bug in the owner. */
        log_error("request %s resumed without a response", ex->path);
        return MHD_NO;
    default:
        return MHD_NO;
    }
}

/* Validates the request target and headers, then routes it. */
static void dispatch(struct exchange *ex, const char *method)
{
    struct http_server *srv = ex->srv;
    struct response *resp = &ex->resp;
    char q[64];
    (void)method;

    if (ex->uri_len > HTTP_URI_MAX) {
        response_error(resp, 414, "request target too long (at most %d bytes)",
                       HTTP_URI_MAX);
        return;
    }
    /* The fields are summed only when the whole head, as received, is
     * larger than their cap: each field counts at most the bytes of its
     * line (libmicrohttpd trims the spaces), so a smaller head cannot
     * hold too many, and walking them was 150 instructions a request. */
    const union MHD_ConnectionInfo *head = MHD_get_connection_info(
        ex->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    size_t header_bytes = 0;
    if (!head || head->header_size > HTTP_HEADERS_MAX)
        MHD_get_connection_values(ex->conn, MHD_HEADER_KIND, sum_header,
                                  &header_bytes);
    if (header_bytes > HTTP_HEADERS_MAX) {
        response_error(resp, 431,
                       "request header fields too large (at most %d bytes)",
                       HTTP_HEADERS_MAX);
        return;
    }

    char *question = strchr(ex->uri, '?');
    size_t path_len = question ? (size_t)(question - ex->uri) : ex->uri_len;
    if (question)
        ex->req.query = question + 1;
    if (path_len == 0 || ex->uri[0] != '/') {
        response_error(resp, 400,
                       "request target must be a path starting with '/'");
        return;
    }
    int rc = uri_decode(ex->path, ex->uri, path_len, false, NULL);
    if (rc == -EILSEQ) {
        response_error(resp, 400, "path contains a NUL byte (%%00)");
        return;
    }
    if (rc < 0) {
        response_error(resp, 400,
                       "malformed percent-encoding in path '%s' (use %%HH "
                       "with two hex digits)",
                       uri_quote(q, sizeof(q), ex->uri));
        ex->path[0] = '\0';
        return;
    }

    if (atomic_load(&srv->draining)) {
        response_error(resp, 503, "the service is shutting down");
        return;
    }
    if (ex->self && strcmp(ex->path, srv->self_path) != 0) {
        response_error(resp, 404,
                       "this listener serves only %s, to the service's own "
                       "fetches",
                       srv->self_path);
        return;
    }
    router_dispatch(srv->router, &ex->req, resp);
}

static enum MHD_Result queue(struct exchange *ex)
{
    struct response *r = &ex->resp;
    struct MHD_Response *mr;

    if (r->status == 0)
        response_error(r, 500, "handler produced no response");

    if (r->stream) {
        mr = MHD_create_response_from_callback(
            MHD_SIZE_UNKNOWN, HTTP_STREAM_BLOCK, stream_read, ex, NULL);
        if (mr) {
            /* The connection owns the stream from here to on_completed(),
             * on the suspended list so that http_sweep() watches it. */
            ex->stream = r->stream;
            ex->stream_arg = r->stream_arg;
            r->stream = NULL;
            pthread_mutex_init(&ex->stream_lock, NULL);
            atomic_init(&ex->stream_parked, false);
            atomic_init(&ex->stream_kick, true);
            atomic_init(&ex->stream_abort, false);
            pthread_mutex_lock(&ex->srv->suspended_lock);
            ex->next = &ex->srv->suspended;
            ex->prev = ex->srv->suspended.prev;
            ex->prev->next = ex;
            ex->srv->suspended.prev = ex;
            pthread_mutex_unlock(&ex->srv->suspended_lock);
            atomic_fetch_add(&ex->srv->streams, 1);
            /* A slow reader backs up here, where the stream formats
             * lazily, not in an autotuned kernel buffer of megabytes. */
            const union MHD_ConnectionInfo *fd = MHD_get_connection_info(
                ex->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
            int sndbuf = HTTP_STREAM_SNDBUF;
            if (fd)
                setsockopt(fd->connect_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf,
                           sizeof(sndbuf));
            /* no-cache, not no-store: Chromium 156's DevTools reports a
             * streamed no-store body that the page read whole as
             * net::ERR_ABORTED (reproduced with a bare chunked server;
             * the header alone makes the difference). Without a validator
             * nothing can reuse it either way. */
            MHD_add_response_header(mr, MHD_HTTP_HEADER_CACHE_CONTROL,
                                    "no-cache");
            /* For proxies that buffer (nginx): pass events on at once. */
            MHD_add_response_header(mr, "X-Accel-Buffering", "no");
        }
    } else if (r->fd >= 0) {
        mr = MHD_create_response_from_fd64(r->fd_size, r->fd);
        if (mr) {
            r->fd = -1; /* libmicrohttpd closes it */
            ex->bytes = r->fd_size;
        }
    } else {
        mr = MHD_create_response_from_buffer(r->body_len, r->body,
                                             MHD_RESPMEM_MUST_FREE);
        if (mr) {
            ex->bytes = r->body_len;
            r->body = NULL;
        }
    }
    if (!mr) {
        log_error("cannot create a response for %s", ex->path);
        return MHD_NO;
    }
    if (r->content_type)
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE,
                                r->content_type);
    for (size_t i = 0; i < r->n_headers; i++)
        MHD_add_response_header(mr, r->headers[i].name, r->headers[i].value);
    if (ex->id[0])
        MHD_add_response_header(mr, "X-Request-Id", ex->id);
    if (atomic_load(&ex->srv->draining))
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION, "close");

    atomic_store(&ex->state, ex->stream ? EX_STREAMING : EX_ANSWERED);
    enum MHD_Result ret = MHD_queue_response(ex->conn, (unsigned)r->status, mr);
    MHD_destroy_response(mr);
    if (ret == MHD_YES)
        ex->status = r->status;
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *srv = cls;
    struct exchange *ex = *con_cls;
    (void)conn;

    if (!ex)
        return;
    *con_cls = NULL;
    if (atomic_load(&ex->state) == EX_WOKEN) {
        /* Woken, but the connection ended first (shutdown, a reset): its
         * owner still frees what it holds, and nothing is sent. */
        ex->closing = true;
        unlink_suspended(ex);
        ex->wake(&ex->req, &ex->resp, ex->wake_arg);
    } else if (atomic_load(&ex->state) == EX_STREAMING) {
        stream_end(ex);
    } else if (atomic_load(&ex->state) != EX_NEW &&
               atomic_load(&ex->state) != EX_ANSWERED) {
        unlink_suspended(ex);
    }

    uint64_t now = clock_now_ns();
    uint64_t ns = now - ex->req.accepted_ns;
    if (ex->peer) {
        /* The next head's deadline starts with its first byte from now. */
        atomic_store_explicit(&ex->peer->since_ns, now, memory_order_relaxed);
        atomic_store_explicit(&ex->peer->awaiting, true, memory_order_release);
    }
    /* Never answered: the client left first (nginx's 499). */
    metrics_request(ex->req.route, ex->req.method,
                    ex->status ? ex->status : 499, ns);
    if (log_enabled(LOG_INFO)) {
        const char *m = ex->req.method ? http_method_name(ex->req.method) : "-";
        log_access(m, ex->uri, ex->status, ex->bytes, ns / 1000u,
                   toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? 0 : (int)toe,
                   ex->id[0] ? ex->id : "-");
    }

    drop_body(ex); /* a client that left mid-body (counted 499) */
    response_cleanup(&ex->resp);
    spare_put(ex);
    struct http_slot *slot = my_slot(srv);
    slot_add(slot, &slot->completed, 1);
    /* Release: http_wait_idle() sees a zero only after the work is done. */
    atomic_thread_fence(memory_order_release);
    slot_add(slot, &slot->in_flight, UINT64_MAX);
}

static void on_connection(void *cls, struct MHD_Connection *conn,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct http_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&srv->connections, 1);
        if (srv->cfg->head_timeout_ms > 0)
            peer_open(srv, conn, socket_context);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        peer_close(srv, socket_context);
        atomic_fetch_sub(&srv->connections, 1);
    }
}

/* on_connection(), and accept_main()'s count of the public ones. */
static void on_public_connection(void *cls, struct MHD_Connection *conn,
                                 void **socket_context,
                                 enum MHD_ConnectionNotificationCode code)
{
    struct http_server *srv = cls;
    on_connection(cls, conn, socket_context, code);
    if (code == MHD_CONNECTION_NOTIFY_CLOSED)
        atomic_fetch_sub(&srv->public_conns, 1);
}

/* A new connection: it waits for its first head from now. */
static void peer_open(struct http_server *srv, struct MHD_Connection *conn,
                      void **socket_context)
{
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *addr =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    struct peer *p = calloc(1, sizeof(*p));
    if (!fd || !p) {
        /* Served all the same, without a head deadline. */
        log_warn("no head deadline for a connection: %s",
                 p ? "no descriptor" : "out of memory");
        free(p);
        return;
    }
    p->fd = fd->connect_fd;
    p->addr = addr ? addr->client_addr : NULL;
    uint64_t now = clock_now_ns();
    atomic_init(&p->awaiting, true);
    atomic_init(&p->since_ns, now);
    p->period_ns = now;
    p->baseline_known = true; /* nothing received before the first head */
    pthread_mutex_lock(&srv->peers_lock);
    p->next = &srv->peers;
    p->prev = srv->peers.prev;
    p->prev->next = p;
    srv->peers.prev = p;
    pthread_mutex_unlock(&srv->peers_lock);
    *socket_context = p;
}

static void peer_close(struct http_server *srv, void **socket_context)
{
    struct peer *p = *socket_context;
    if (!p)
        return;
    *socket_context = NULL;
    pthread_mutex_lock(&srv->peers_lock);
    p->prev->next = p->next;
    p->next->prev = p->prev;
    pthread_mutex_unlock(&srv->peers_lock);
    free(p);
}

/*
 * Main thread, every tick: shuts down the connections whose head is
 * overdue. Under peers_lock, so no peer is freed and no descriptor closed
 * meanwhile; at 10,000 waiting connections a pass takes about 3 ms, which
 * new connections may wait for.
 */
static void sweep_heads(struct http_server *srv)
{
    uint64_t limit_ns = (uint64_t)srv->cfg->head_timeout_ms * 1000000u;
    uint64_t now = clock_now_ns();

    pthread_mutex_lock(&srv->peers_lock);
    for (struct peer *p = srv->peers.next; p != &srv->peers; p = p->next) {
        if (!head_overdue(p, now, limit_ns))
            continue;
        p->cut = true;
        /* libmicrohttpd reads end-of-file and closes it on its thread. */
        shutdown(p->fd, SHUT_RDWR);
        atomic_fetch_add(&srv->head_timeouts, 1);
        if (log_enabled(LOG_INFO)) {
            char text[INET6_ADDRSTRLEN] = "?";
            if (p->addr && p->addr->sa_family == AF_INET)
                inet_ntop(AF_INET,
                          &((const struct sockaddr_in *)p->addr)->sin_addr,
                          text, sizeof(text));
            else if (p->addr && p->addr->sa_family == AF_INET6)
                inet_ntop(AF_INET6,
                          &((const struct sockaddr_in6 *)p->addr)->sin6_addr,
                          text, sizeof(text));
            log_info("closed a connection from %s: request head not whole "
                     "%.0f ms after its first byte (--head-timeout-ms %d)",
                     text, (double)(now - p->head_ns) / 1e6,
                     srv->cfg->head_timeout_ms);
        }
    }
    pthread_mutex_unlock(&srv->peers_lock);
}

/*
 * Whether p has waited for a head longer than limit_ns since the first
 * byte of it arrived. That first byte is seen by the kernel's counters:
 * bytes received beyond those counted when this wait was first looked at,
 * or a last data segment newer than the wait's start. So it is seen at
 * most one tick late, or, when it came within RX_CLOCK_SLACK_NS of the
 * previous answer or a pipelined head was already buffered, with the next
 * byte: the deadline errs on the late side, never early. Idle waits
 * (nothing received) never expire here; --conn-timeout governs them.
 */
static bool head_overdue(struct peer *p, uint64_t now_ns, uint64_t limit_ns)
{
    if (p->cut || !atomic_load_explicit(&p->awaiting, memory_order_acquire))
        return false;
    uint64_t since = atomic_load_explicit(&p->since_ns, memory_order_relaxed);
    if (since != p->period_ns) {
        p->period_ns = since;
        p->baseline_known = false;
        p->head_ns = 0;
    }
    if (p->head_ns == 0) {
        struct tcp_info ti;
        socklen_t len = sizeof(ti);
        if (getsockopt(p->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
            len < offsetof(struct tcp_info, tcpi_bytes_received) +
                      sizeof(ti.tcpi_bytes_received))
            return false; /* not TCP, or a kernel before 4.1 */
        uint64_t last_rx_ns =
            now_ns - (uint64_t)ti.tcpi_last_data_recv * 1000000u;
        if (!p->baseline_known) {
            p->baseline = ti.tcpi_bytes_received;
            p->baseline_known = true;
            if (last_rx_ns > since + RX_CLOCK_SLACK_NS)
                p->head_ns = last_rx_ns;
        } else if (ti.tcpi_bytes_received > p->baseline) {
            p->head_ns = last_rx_ns;
        }
        if (p->head_ns == 0)
            return false;
    }
    if (now_ns < p->head_ns || now_ns - p->head_ns < limit_ns)
        return false;
    /* Its head may have been completed meanwhile: look once more. */
    return atomic_load_explicit(&p->awaiting, memory_order_acquire) &&
           atomic_load_explicit(&p->since_ns, memory_order_relaxed) == since;
}

/* Keep targets raw: uri_decode() does it strictly where it is needed. */
static size_t on_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    return strlen(s);
}

/*
 * libmicrohttpd's own messages, as warnings; but not the one it writes
 * each time on_access() returns MHD_NO ("Application reported internal
 * error"): that is this module's decision, made and accounted for where
 * it is taken (a client that left is a 499 in the access log, the other
 * cases log their own line). At shutdown it came once per orphaned
 * request whose client had gone: 2,000 lines after a 1,000-fetch run.
 * One that repeats within MHD_LOG_REPEAT_NS of its last line is counted
 * instead of written (a client past --max-per-ip that reconnects in a loop
 * made one line per attempt: 18,747 in 2 s under wrk -c5000); the count
 * goes out with the next line written.
 */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    static const char ours[] = "Application reported internal error";
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static char last[LOG_LINE_MAX / 2]; /* under lock, as the two below */
    static uint64_t last_ns;
    static unsigned repeats; /* of last, not written since last_ns */
    char text[LOG_LINE_MAX / 2];
    (void)cls;
    vsnprintf(text, sizeof(text), fmt, ap);
    if (strncmp(text, ours, sizeof(ours) - 1) == 0)
        return;
    size_t len = strlen(text);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';

    uint64_t now = clock_now_ns();
    pthread_mutex_lock(&lock);
    bool same = last_ns != 0 && strcmp(text, last) == 0;
    if (same && now - last_ns < MHD_LOG_REPEAT_NS) {
        repeats++;
        pthread_mutex_unlock(&lock);
        return;
    }
    if (repeats > 0 && !same)
        log_warn("microhttpd: %s (%u more times after the line before)", last,
                 repeats);
    if (repeats > 0 && same)
        log_warn("microhttpd: %s (and %u more times since the line before)",
                 text, repeats);
    else
        log_warn("microhttpd: %s", text);
    memcpy(last, text, len + 1);
    last_ns = now;
    repeats = 0;
    pthread_mutex_unlock(&lock);
}

static const char *lookup_header(const struct request *req, const char *name)
{
    const struct exchange *ex = req->conn;
    return MHD_lookup_connection_value(ex->conn, MHD_HEADER_KIND, name);
}

static enum MHD_Result sum_header(void *cls, enum MHD_ValueKind kind,
                                  const char *key, const char *value)
{
    size_t *total = cls;
    (void)kind;
    *total += strlen(key) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

/* bound, when not NULL, gets the bound address. */
static int open_listener(const char *bind_addr, int port, int *bound_port,
                         struct sockaddr_storage *bound, char *err,
                         size_t err_len)
{
    struct addrinfo hints = {0}, *ai = NULL;
    char port_text[8];
    int one = 1;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    snprintf(port_text, sizeof(port_text), "%d", port);
    int rc = getaddrinfo(bind_addr, port_text, &hints, &ai);
    if (rc != 0) {
        snprintf(err, err_len, "cannot use address %s: %s", bind_addr,
                 gai_strerror(rc));
        return -1;
    }

    int fd =
        socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, err_len, "socket: %s", strerror(errno));
        goto out_free;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        snprintf(err, err_len, "cannot bind %s port %d: %s", bind_addr, port,
                 strerror(errno));
        goto out_close;
    }
    if (listen(fd, LISTEN_BACKLOG) != 0) {
        snprintf(err, err_len, "listen: %s", strerror(errno));
        goto out_close;
    }
    struct sockaddr_storage ss;
    socklen_t ss_len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &ss_len) != 0) {
        snprintf(err, err_len, "getsockname: %s", strerror(errno));
        goto out_close;
    }
    *bound_port =
        ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                       : ((struct sockaddr_in *)&ss)->sin_port);
    if (bound)
        *bound = ss;
    freeaddrinfo(ai);
    return fd;

out_close:
    close(fd);
out_free:
    freeaddrinfo(ai);
    return -1;
}

/* 127.0.0.1 on an ephemeral port, else ::1 (a host without IPv4). */
static int open_self_listener(struct http_server *srv, char *err,
                              size_t err_len)
{
    static const struct {
        const char *bind, *in_url;
    } hosts[] = {{"127.0.0.1", "127.0.0.1"}, {"::1", "[::1]"}};
    char why[256] = "";
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        int fd = open_listener(hosts[i].bind, 0, &srv->self_port,
                               &srv->self_addr, why, sizeof(why));
        if (fd >= 0) {
            srv->self_host = hosts[i].in_url;
            return fd;
        }
    }
    snprintf(err, err_len, "cannot open the self listener on loopback: %s",
             why);
    return -1;
}

/* On the request thread, once resumed: leave the suspended list. */
static void unlink_suspended(struct exchange *ex)
{
    pthread_mutex_lock(&ex->srv->suspended_lock);
    list_remove(ex);
    ex->gone = NULL;
    pthread_mutex_unlock(&ex->srv->suspended_lock);
}

/*
 * On the request thread, in the access handler call that follows a resume
 * (and answers or suspends again): back to the daemon's idle timeout, so
 * that a keep-alive connection leaves the list libmicrohttpd idles on every
 * pass (see SUSPENDED_TIMEOUT_S).
 */
static void restore_timeout(struct exchange *ex)
{
    set_timeout(ex, (unsigned)ex->srv->cfg->conn_timeout_s);
}

/* libmicrohttpd 0.9.75 refuses only unknown options: say so once. */
static void set_timeout(struct exchange *ex, unsigned seconds)
{
    static atomic_bool warned;
    if (MHD_set_connection_option(ex->conn, MHD_CONNECTION_OPTION_TIMEOUT,
                                  seconds) != MHD_YES &&
        !atomic_exchange(&warned, true))
        log_error("cannot set a connection timeout: half-closed clients "
                  "of suspended requests may get no answer");
}

/*
 * Tells a client that sent FIN and closed its socket from one that only
 * shut its write side (see the file comment): true when the probe meets a
 * reset. Sent once per request, and only when nothing else is waiting in
 * the send queue, so the 25 bytes go out whole and before the answer.
 * HTTP/1.0 clients get no probe (no 1xx may be sent to them): for them a
 * FIN alone never means gone.
 */
static bool probe_closed(struct exchange *ex, int fd)
{
    int queued = 0;

    if (!ex->http11 || atomic_load(&ex->probed))
        return false;
    if (ioctl(fd, SIOCOUTQ, &queued) != 0 || queued != 0)
        return false;
    if (atomic_exchange(&ex->probed, true))
        return false; /* another thread is probing */
    ssize_t sent = send(fd, GONE_PROBE, sizeof(GONE_PROBE) - 1,
                        MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0)
        return errno == EPIPE || errno == ECONNRESET;
    if (sent != (ssize_t)sizeof(GONE_PROBE) - 1)
        return true; /* cut mid-line: the connection can carry no answer */
    struct pollfd pfd = {.fd = fd, .events = POLLRDHUP};
    return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLERR));
}

static void list_remove(struct exchange *ex)
{
    if (!ex->next)
        return;
    ex->prev->next = ex->next;
    ex->next->prev = ex->prev;
    ex->next = ex->prev = NULL;
}

/*
 * First call of a POST: whether its route takes a body (router_allows()
 * on the decoded path; dispatch() decodes it again and answers a bad one).
 */
static bool route_takes_body(struct exchange *ex)
{
    char *question = strchr(ex->uri, '?');
    size_t path_len = question ? (size_t)(question - ex->uri) : ex->uri_len;
    if (path_len == 0 || ex->uri[0] != '/' ||
        uri_decode(ex->path, ex->uri, path_len, false, NULL) < 0) {
        ex->path[0] = '\0';
        return false;
    }
    /* A route that takes a body is known now: its early refusals (411,
     * 413, 415) are counted under it, as its answers after dispatch are.
     * Other early refusals stay "none", as before routing. */
    int route;
    if (!router_allows(ex->srv->router, ex->path, HTTP_POST, &route))
        return false;
    ex->req.route = route;
    return true;
}

/* "application/json", any case, optionally followed by parameters. */
static bool content_type_json(const char *value)
{
    static const char json[] = "application/json";
    if (!value)
        return false;
    while (*value == ' ' || *value == '\t')
        value++;
    if (strncasecmp(value, json, sizeof(json) - 1) != 0)
        return false;
    value += sizeof(json) - 1;
    while (*value == ' ' || *value == '\t')
        value++;
    return *value == '\0' || *value == ';';
}

/*
 * First call of a request whose route takes a body: checks its length
 * and type from the head, charges the client's budget and allocates the
 * buffer, all before a byte of the body is read. False with the error
 * answer in ex->resp, which on_access() queues at once (libmicrohttpd then
 * closes the connection instead of reading the body).
 */
static bool start_body(struct exchange *ex, struct MHD_Connection *conn)
{
    struct http_server *srv = ex->srv;
    const char *length = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *chunked = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    const char *type = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    unsigned long long len = length ? strtoull(length, NULL, 10) : 0;
    char q[64];

    if (chunked && !length) {
        response_error(&ex->resp, 411,
                       "a request body needs a Content-Length (chunked "
                       "bodies are not taken)");
        return false;
    }
    if (len > (unsigned long long)srv->cfg->body_max) {
        response_error(&ex->resp, 413,
                       "request body too large: %llu bytes, at most %d "
                       "(--body-max)",
                       len, srv->cfg->body_max);
        return false;
    }
    if (!content_type_json(type)) {
        response_error(&ex->resp, 415,
                       "request body must be application/json (got "
                       "Content-Type '%s')",
                       type ? uri_quote(q, sizeof(q), type) : "");
        return false;
    }
    if (srv->budget) {
        struct budget_client client;
        struct budget_cost cost = {{0}};
        cost.amount[BUDGET_BYTES] = len + 1;
        if (!ex->req.client ||
            budget_client_from_sockaddr(ex->req.client, &client) < 0)
            memset(&client, 0, sizeof(client));
        int rc =
            budget_acquire(srv->budget, &client, &cost, &ex->body_claim, NULL);
        if (rc == -E2BIG) {
            response_error(&ex->resp, 413,
                           "request body too large: %llu bytes, more than "
                           "one client may hold (--budget-bytes, "
                           "--client-share)",
                           len);
            return false;
        }
        if (rc < 0) {
            response_error(&ex->resp, 503,
                           "the bytes budget is busy: a request body of "
                           "%llu bytes does not fit now; retry shortly",
                           len);
            return false;
        }
    }
    ex->body = malloc((size_t)len + 1);
    if (!ex->body) {
        budget_release(&ex->body_claim);
        response_error(&ex->resp, 503,
                       "no memory for a request body of %llu bytes", len);
        return false;
    }
    ex->body_cap = (size_t)len;
    return true;
}

/* Frees the body and gives its bytes back; again does nothing. */
static void drop_body(struct exchange *ex)
{
    if (!ex->takes_body)
        return; /* no body and no claim: most requests, twice each */
    free(ex->body);
    ex->body = NULL;
    ex->req.body = NULL;
    ex->req.body_len = 0;
    budget_release(&ex->body_claim);
}

/* This thread's counters in srv (a slot claimed on first use). */
static struct http_slot *my_slot(struct http_server *srv)
{
    if (my_slot_index < 0) {
        int n =
            atomic_fetch_add_explicit(&slots_claimed, 1, memory_order_relaxed);
        my_slot_index = n < HTTP_SLOTS ? n : HTTP_SLOTS - 1;
    }
    return &srv->slots[my_slot_index];
}

/*
 * Adds n (modulo 2^64) to the counter v of slot, on the thread that owns
 * it; returns the value before. Other threads only read an owned slot.
 */
static uint64_t slot_add(const struct http_slot *slot, _Atomic uint64_t *v,
                         uint64_t n)
{
    if (slot->shared)
        return atomic_fetch_add_explicit(v, n, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(v, memory_order_relaxed);
    atomic_store_explicit(v, old + n, memory_order_relaxed);
    return old;
}

/* Slots past this were never claimed: they hold zeros. */
static int slots_in_use(void)
{
    int n = atomic_load_explicit(&slots_claimed, memory_order_acquire);
    return n < HTTP_SLOTS ? n : HTTP_SLOTS;
}

static int64_t sum_in_flight(const struct http_server *srv)
{
    uint64_t total = 0;
    for (int i = 0; i < slots_in_use(); i++)
        total += atomic_load_explicit(&srv->slots[i].in_flight,
                                      memory_order_acquire);
    return (int64_t)total;
}

/* This thread's spare exchange freed last, if it holds room bytes. */
static struct exchange *spare_take(size_t room)
{
    struct spares *sp = &my_spares;
    if (sp->n == 0 || sp->ex[sp->n - 1]->uri_room < room)
        return NULL;
    return sp->ex[--sp->n];
}

/* Keeps ex for this thread's next request, or frees it. */
static void spare_put(struct exchange *ex)
{
    struct spares *sp = &my_spares;
    if (ex->uri_room > SPARE_URI_MAX || sp->n == SPARES) {
        free(ex);
        return;
    }
    if (!sp->keyed) {
        /* The key's destructor frees them when the thread exits. */
        pthread_once(&spares_once, spares_key_init);
        sp->keyed = pthread_setspecific(spares_key, sp) == 0;
        if (!sp->keyed) {
            free(ex);
            return;
        }
    }
    sp->ex[sp->n++] = ex;
}

static void spares_free(void *arg)
{
    struct spares *sp = arg;
    while (sp->n > 0)
        free(sp->ex[--sp->n]);
}

static void spares_key_init(void)
{
    pthread_key_create(&spares_key, spares_free);
}
