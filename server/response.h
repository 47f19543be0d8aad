/*
 * response: what a handler answers, independent of the HTTP library.
 *
 * A handler fills a caller-provided struct response: a status, a body (a
 * heap buffer or an open file), a content type and a few headers. The http
 * module turns it into a libmicrohttpd response; unit tests read it
 * directly. One thread at a time owns a response.
 */
#ifndef CONLAB_RESPONSE_H
#define CONLAB_RESPONSE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define RESPONSE_HEADERS_MAX      8
#define RESPONSE_HEADER_VALUE_MAX 128

#define CONTENT_TYPE_JSON "application/json; charset=utf-8"

struct response_header {
    const char *name; /* a static string */
    char value[RESPONSE_HEADER_VALUE_MAX];
};

/*
 * A body produced while it is sent (a live run: handlers/live.c), in
 * place of body or fd. The http module sends it chunked and calls, all
 * on the connection's request thread unless said otherwise:
 *   read    up to max bytes into buf; 0 when nothing is ready (the
 *           connection then parks, holding no thread, until
 *           http_stream_wake()); RESPONSE_STREAM_END after the last byte;
 *           RESPONSE_STREAM_ABORT to cut the connection;
 *   gone    the client left while the stream was parked (http_sweep(),
 *           main thread, under the http module's lock: must not block);
 *   detach  once, when the connection is done with the stream (ended,
 *           client left, shutdown) or the response was never sent; no
 *           http_stream_wake() on its request may start after it.
 */
#define RESPONSE_STREAM_END   (-1L)
#define RESPONSE_STREAM_ABORT (-2L)

struct response_stream {
    long (*read)(void *arg, char *buf, size_t max);
    void (*gone)(void *arg);
    void (*detach)(void *arg);
};

struct response {
    int status;               /* 0 until a handler sets one */
    const char *content_type; /* a static string, or NULL */
    char *body;               /* owned heap buffer, or NULL */
    size_t body_len;
    int fd; /* owned open file to send instead of body, or -1 */
    uint64_t fd_size;
    const struct response_stream *stream; /* or NULL */
    void *stream_arg;
    size_t n_headers;
    /* Last: response_init() clears what comes before it. */
    struct response_header headers[RESPONSE_HEADERS_MAX];
};

/* Makes r an empty response (status 0, no body, no file). */
void response_init(struct response *r);

/*
 * Frees the body, closes the file and detaches a stream that was not
 * sent; r is empty again afterwards.
 */
void response_cleanup(struct response *r);

/*
 * Sets status and a JSON body encoded from json, which it takes (the
 * reference is consumed even on failure). Returns 0, or -ENOMEM after
 * setting a 500 error instead.
 */
int response_json(struct response *r, int status, json_t *take_json);

/*
 * Sets status and a body of len bytes of content_type (a static string),
 * taking body (a malloc()ed buffer, freed with the response).
 */
void response_body(struct response *r, int status, const char *content_type,
                   char *body, size_t len);

/*
 * Sets the API's error shape {"error": {"status", "message"}} with the
 * formatted message (at most 512 bytes, which must be valid UTF-8). A 503
 * also gets "Retry-After: 1". Never fails: without memory it falls back to
 * a static body.
 */
void response_error(struct response *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Adds a header (name must be a static string; value is copied and cut at
 * RESPONSE_HEADER_VALUE_MAX - 1 bytes). Returns 0, or -ENOSPC when
 * RESPONSE_HEADERS_MAX are already set.
 */
int response_header(struct response *r, const char *name, const char *value);

/*
 * Makes r a streamed answer (see struct response_stream) of content_type
 * (a static string); r holds arg until it is sent or cleaned up.
 */
void response_stream(struct response *r, int status, const char *content_type,
                     const struct response_stream *stream, void *arg);

/* Moves src into dst (dst must be empty); src becomes empty. */
void response_move(struct response *dst, struct response *src);

#endif
