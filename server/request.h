/*
 * request: the service's own view of an HTTP request, and the handler
 * contract. Handlers see only this and struct response, never the HTTP
 * library's types, so they can be unit-tested without a socket.
 *
 * A request is owned by the http module; a handler may read it during its
 * call, and an asynchronous handler until it completes the request.
 */
#ifndef CONLAB_REQUEST_H
#define CONLAB_REQUEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "response.h"

enum http_method {
    HTTP_GET = 1 << 0,
    HTTP_HEAD = 1 << 1,
    HTTP_POST = 1 << 2,
    HTTP_PUT = 1 << 3,
    HTTP_DELETE = 1 << 4,
    HTTP_OPTIONS = 1 << 5,
    HTTP_PATCH = 1 << 6,
    HTTP_OTHER = 1 << 7,
};

#define HTTP_METHODS 8 /* the flags above, HTTP_OTHER included */

struct request {
    enum http_method method;
    const char *path;  /* percent-decoded, starts with '/', NUL-free */
    const char *query; /* raw text after '?', "" when none */
    /* A route that takes POST: the whole body, NUL-terminated after
     * body_len bytes (it may hold NULs), valid during the handler's call
     * only; NULL otherwise. */
    const char *body;
    size_t body_len;
    uint64_t accepted_ns; /* CLOCK_MONOTONIC when the request line arrived */
    int route;            /* the router's id of the matched route, or -1 */
    const char *id;       /* the X-Request-Id answered ("" before dispatch) */
    const struct sockaddr *client; /* the peer's address, or NULL */
    /* Looks a request header up (case-insensitive); NULL when absent. */
    const char *(*header)(const struct request *req, const char *name);
    void *conn; /* the http module's; opaque to handlers */
};

enum handler_result {
    HANDLER_DONE,  /* the response is filled in */
    HANDLER_ASYNC, /* the handler suspended the request (see http.h) */
};

typedef enum handler_result (*handler_fn)(struct request *req,
                                          struct response *resp, void *ctx);

/* Maps "GET", "HEAD", ... to its flag; HTTP_OTHER for anything else. */
enum http_method http_method_parse(const char *name);

/* The name of a method flag ("GET"); "OTHER" for HTTP_OTHER. */
const char *http_method_name(enum http_method method);

/* Header lookup through req->header; NULL when absent or not wired. */
const char *request_header(const struct request *req, const char *name);

#endif
