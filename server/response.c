/*
 * response: see response.h.
 */
#include "response.h"

#include <errno.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ERROR_MESSAGE_MAX 512

static const char oom_body[] =
    "{\"error\":{\"status\":500,\"message\":\"out of memory\"}}";

static void set_static_oom(struct response *r);
static void utf8_scrub(char *text);

void response_init(struct response *r)
{
    /* Up to the header array (1 KiB), which is read only up to n_headers:
     * clearing it cost every request three kilobytes of stores (an
     * exchange's response is made empty up to three times). */
    memset(r, 0, offsetof(struct response, headers));
    r->fd = -1;
}

void response_cleanup(struct response *r)
{
    free(r->body);
    if (r->fd >= 0)
        close(r->fd);
    if (r->stream && r->stream->detach)
        r->stream->detach(r->stream_arg);
    response_init(r);
}

void response_stream(struct response *r, int status, const char *content_type,
                     const struct response_stream *stream, void *arg)
{
    response_cleanup(r);
    r->status = status;
    r->content_type = content_type;
    r->stream = stream;
    r->stream_arg = arg;
}

int response_json(struct response *r, int status, json_t *take_json)
{
    char *text = take_json
                     ? json_dumps(take_json, JSON_COMPACT | JSON_ENCODE_ANY |
                                                 JSON_REAL_PRECISION(12))
                     : NULL;
    json_decref(take_json);
    if (!text) {
        set_static_oom(r);
        return -ENOMEM;
    }
    free(r->body);
    r->body = text;
    r->body_len = strlen(text);
    r->status = status;
    r->content_type = CONTENT_TYPE_JSON;
    return 0;
}

void response_body(struct response *r, int status, const char *content_type,
                   char *body, size_t len)
{
    free(r->body);
    r->status = status;
    r->content_type = content_type;
    r->body = body;
    r->body_len = len;
}

void response_error(struct response *r, int status, const char *fmt, ...)
{
    char message[ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    utf8_scrub(message);

    json_t *body = json_pack("{s:{s:i,s:s}}", "error", "status", status,
                             "message", message);
    if (response_json(r, status, body) < 0)
        return;
    if (status == 503)
        response_header(r, "Retry-After", "1");
}

int response_header(struct response *r, const char *name, const char *value)
{
    if (r->n_headers >= RESPONSE_HEADERS_MAX)
        return -ENOSPC;
    struct response_header *h = &r->headers[r->n_headers++];
    h->name = name;
    /* Not snprintf(): this runs for every answer (callgrind). */
    size_t len = strnlen(value, sizeof(h->value) - 1);
    memcpy(h->value, value, len);
    h->value[len] = '\0';
    return 0;
}

void response_move(struct response *dst, struct response *src)
{
    *dst = *src;
    response_init(src);
}

/* A fixed 500 body (or an empty one if even that cannot be had). */
static void set_static_oom(struct response *r)
{
    free(r->body);
    r->body = malloc(sizeof(oom_body));
    if (r->body) {
        memcpy(r->body, oom_body, sizeof(oom_body));
        r->body_len = sizeof(oom_body) - 1;
    } else {
        r->body_len = 0;
    }
    r->status = 500;
    r->content_type = CONTENT_TYPE_JSON;
}

/*
 * JSON strings must be valid UTF-8: replace every byte that does not start
 * or continue a well-formed sequence (including one cut by the message
 * cap) with '?'.
 */
static void utf8_scrub(char *text)
{
    unsigned char *p = (unsigned char *)text;
    while (*p) {
        size_t len = *p < 0x80             ? 1
                     : (*p & 0xe0) == 0xc0 ? 2
                     : (*p & 0xf0) == 0xe0 ? 3
                     : (*p & 0xf8) == 0xf0 ? 4
                                           : 0;
        bool ok = len > 0 && !(len == 2 && *p < 0xc2);
        for (size_t i = 1; ok && i < len; i++)
            ok = (p[i] & 0xc0) == 0x80;
        if (!ok) {
            *p++ = '?';
            continue;
        }
        p += len;
    }
}
