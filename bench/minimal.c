/*
 * minimal: the baseline for `make bench`. The smallest libmicrohttpd server
 * that is configured the way conlab's daemon is (server/http.c: the same
 * flags, its own non-blocking listening socket, the same pool, limits,
 * timeout and per-connection memory) and answers every request with a fixed
 * JSON body: by default one of about the shape of conlab's /health body, or
 * the bytes of BODY_FILE (bench/run.sh passes the body of a real /health
 * answer, so that conlab, minimal and nginx send the same bytes). What
 * conlab does on top of this (routing, parameter parsing, building JSON,
 * the access log) is what the benchmark's ratio measures.
 *
 * Like conlab, it records a request on the first call of the access handler
 * and answers on the second: answering on the first call makes
 * libmicrohttpd 0.9.75 close keep-alive connections (DESIGN.md, pitfalls).
 *
 * usage: minimal PORT THREADS [BODY_FILE]
 *        (PORT 0 picks a free port; THREADS >= 2; BODY_FILE at most 64 KiB)
 *
 * Threads: main blocks SIGINT/SIGTERM before the daemon starts, so only it
 * takes them (sigwait); the daemon's pool threads run the access handler,
 * which only reads the body, written once before the daemon starts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* The same values as conlab's defaults (server/config.c, server/http.h). */
#define MAX_CONNECTIONS 10000
#define MAX_PER_IP      4096
#define CONN_TIMEOUT_S  15
#define CONN_MEMORY     (16 * 1024)
#define LISTEN_BACKLOG  4096
#define FD_RESERVE      256
#define MAX_THREADS     256
#define BODY_MAX        (64 * 1024)

/* The default body: about the shape of conlab's /health answer. */
static const char default_body[] =
    "{\"status\":\"ok\",\"version\":\"0.1.0\",\"uptime_s\":1.000,\"pools\":"
    "{\"http\":{\"configured\":2,\"alive\":2,\"connections\":1,\"in_"
    "flight\":1,\"completed\":0}}}";

/* The body every answer carries; set before the daemon starts. */
static char body[BODY_MAX];
static size_t body_len;

/* *con_cls of a request whose first call has been seen. */
static int request_seen;

static int parse_arg(const char *text, long min, long max, long *out);
static int load_body(const char *path);
static int open_listener(int port, int *bound_port);
static void raise_fd_limit(void);
static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn,
                                 const char *url, const char *method,
                                 const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls);
static void on_mhd_log(void *cls, const char *fmt, va_list ap);

int main(int argc, char **argv)
{
    long port, threads;

    if (argc < 3 || argc > 4 || parse_arg(argv[1], 0, 65535, &port) < 0 ||
        parse_arg(argv[2], 2, MAX_THREADS, &threads) < 0) {
        fprintf(stderr,
                "usage: minimal PORT THREADS [BODY_FILE]  (PORT 0-65535, 0 "
                "picks a free one; THREADS 2-%d; BODY_FILE at most %d "
                "bytes)\n",
                MAX_THREADS, BODY_MAX);
        return 2;
    }
    if (argc == 4) {
        if (load_body(argv[3]) < 0)
            return 2;
    } else {
        body_len = sizeof(default_body) - 1;
        memcpy(body, default_body, body_len);
    }

    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    int bound_port = 0;
    int listen_fd = open_listener((int)port, &bound_port);
    if (listen_fd < 0)
        return 1;

    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    struct MHD_Daemon *daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_access, NULL, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)listen_fd,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)MAX_PER_IP,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONN_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
        MHD_OPTION_END);
    if (!daemon) {
        fprintf(stderr, "minimal: libmicrohttpd failed to start\n");
        close(listen_fd);
        return 1;
    }
    fprintf(stderr, "listening on http://127.0.0.1:%d\n", bound_port);

    int sig = 0;
    while (sigwait(&stop_signals, &sig) != 0)
        ;
    fprintf(stderr, "minimal: received %s, stopping\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM");

    /* Stop accepting first, then close connections and join the pool. */
    MHD_socket fd = MHD_quiesce_daemon(daemon);
    MHD_stop_daemon(daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    return 0;
}

/* Parses a whole decimal integer in [min, max]; 0 or -EINVAL. */
static int parse_arg(const char *text, long min, long max, long *out)
{
    char *end = NULL;

    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max)
        return -EINVAL;
    *out = value;
    return 0;
}

/*
 * Reads the whole of path into body (at most BODY_MAX bytes). Returns 0, or
 * a negative errno after printing why.
 */
static int load_body(const char *path)
{
    int ret = 0;
    FILE *f = fopen(path, "rbe");

    if (!f) {
        ret = -errno;
        fprintf(stderr, "minimal: cannot open %s: %s\n", path, strerror(errno));
        return ret;
    }
    body_len = fread(body, 1, sizeof(body), f);
    if (ferror(f)) {
        ret = -EIO;
        fprintf(stderr, "minimal: cannot read %s\n", path);
        goto out_close;
    }
    if (!feof(f) && fgetc(f) != EOF) {
        ret = -EFBIG;
        fprintf(stderr, "minimal: %s is larger than %d bytes\n", path,
                BODY_MAX);
        goto out_close;
    }

out_close:
    fclose(f);
    return ret;
}

/*
 * A non-blocking, close-on-exec listening socket on 127.0.0.1:port, as
 * conlab opens its own. Returns the descriptor, or -1 after printing why.
 */
static int open_listener(int port, int *bound_port)
{
    struct sockaddr_in addr = {0};
    socklen_t addr_len = sizeof(addr);
    int one = 1;

    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        fprintf(stderr, "minimal: socket: %s\n", strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        fprintf(stderr, "minimal: cannot bind 127.0.0.1 port %d: %s\n", port,
                strerror(errno));
        goto out_close;
    }
    if (listen(fd, LISTEN_BACKLOG) != 0) {
        fprintf(stderr, "minimal: listen: %s\n", strerror(errno));
        goto out_close;
    }
    if (getsockname(fd, (struct sockaddr *)&addr, &addr_len) != 0) {
        fprintf(stderr, "minimal: getsockname: %s\n", strerror(errno));
        goto out_close;
    }
    *bound_port = ntohs(addr.sin_port);
    return fd;

out_close:
    close(fd);
    return -1;
}

/* As conlab does: let the descriptor limit cover the connection limit. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)MAX_CONNECTIONS + FD_RESERVE;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want
                      ? want
                      : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

/*
 * First call: mark the request seen. Calls with body data: discard it.
 * Final call: queue the fixed answer. libmicrohttpd resets *con_cls to NULL
 * for the next request on a keep-alive connection.
 */
static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn,
                                 const char *url, const char *method,
                                 const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)upload;

    if (*con_cls == NULL) {
        *con_cls = &request_seen;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        *upload_size = 0;
        return MHD_YES;
    }

    /* One response per request, as any dynamic handler needs. */
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        body_len, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/json; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    fputs("minimal: microhttpd: ", stderr);
    vfprintf(stderr, fmt, ap);
}
