/*
 * frame: see frame.h.
 */
#include "frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int read_full(int fd, void *buf, size_t len);
static int write_full(int fd, const void *buf, size_t len);

void frame_reader_init(struct frame_reader *r)
{
    memset(r, 0, sizeof(*r));
}

void frame_reader_cleanup(struct frame_reader *r)
{
    free(r->payload);
    frame_reader_init(r);
}

int frame_reader_read(struct frame_reader *r, int fd)
{
    /*
     * An oversized header is final: the stream cannot be followed past
     * it, and r->len is not the size of any buffer (reading on would
     * write the bytes behind it into the last frame's payload).
     */
    if (r->header_got == FRAME_HEADER_SIZE && r->len > FRAME_PAYLOAD_MAX)
        return -EMSGSIZE;
    /* A complete frame was handed out last time: start the next one. A
     * NULL payload after a whole header is an allocation still to make. */
    if (r->header_got == FRAME_HEADER_SIZE && r->payload &&
        r->payload_got == r->len) {
        r->header_got = 0;
        r->payload_got = 0;
    }
    while (r->header_got < FRAME_HEADER_SIZE) {
        ssize_t n = read(fd, r->header + r->header_got,
                         FRAME_HEADER_SIZE - r->header_got);
        if (n == 0)
            return -EPIPE;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        r->header_got += (size_t)n;
        if (r->header_got == FRAME_HEADER_SIZE) {
            memcpy(&r->len, r->header, 4);
            memcpy(&r->type, r->header + 4, 4);
            free(r->payload);
            r->payload = NULL;
            if (r->len > FRAME_PAYLOAD_MAX)
                return -EMSGSIZE;
        }
    }
    if (!r->payload) {
        /* Here, not above, so that a call after -ENOMEM tries again. */
        r->payload = malloc(r->len ? r->len : 1);
        if (!r->payload)
            return -ENOMEM;
    }
    while (r->payload_got < r->len) {
        ssize_t n =
            read(fd, r->payload + r->payload_got, r->len - r->payload_got);
        if (n == 0)
            return -EPIPE;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        r->payload_got += (size_t)n;
    }
    return 0;
}

void frame_writer_init(struct frame_writer *w)
{
    memset(w, 0, sizeof(*w));
}

void frame_writer_cleanup(struct frame_writer *w)
{
    free(w->buf);
    frame_writer_init(w);
}

int frame_writer_put(struct frame_writer *w, uint32_t type, const void *payload,
                     size_t len)
{
    if (len > FRAME_PAYLOAD_MAX)
        return -EMSGSIZE;
    if (w->off == w->len) {
        w->off = 0;
        w->len = 0;
    }
    size_t need = w->len + FRAME_HEADER_SIZE + len;
    uint8_t *grown = realloc(w->buf, need);
    if (!grown)
        return -ENOMEM;
    w->buf = grown;
    uint32_t len32 = (uint32_t)len;
    memcpy(w->buf + w->len, &len32, 4);
    memcpy(w->buf + w->len + 4, &type, 4);
    if (len)
        memcpy(w->buf + w->len + FRAME_HEADER_SIZE, payload, len);
    w->len = need;
    return 0;
}

int frame_writer_pending(const struct frame_writer *w)
{
    return w->off < w->len;
}

int frame_writer_flush(struct frame_writer *w, int fd)
{
    while (w->off < w->len) {
        ssize_t n = send(fd, w->buf + w->off, w->len - w->off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        w->off += (size_t)n;
    }
    return 0;
}

int frame_send(int fd, uint32_t type, const void *payload, size_t len)
{
    uint8_t header[FRAME_HEADER_SIZE];
    uint32_t len32 = (uint32_t)len;

    if (len > FRAME_PAYLOAD_MAX)
        return -EMSGSIZE;
    memcpy(header, &len32, 4);
    memcpy(header + 4, &type, 4);
    int rc = write_full(fd, header, sizeof(header));
    if (rc == 0 && len)
        rc = write_full(fd, payload, len);
    return rc;
}

int frame_recv(int fd, uint32_t *type, void *buf, size_t cap, size_t *len)
{
    uint8_t header[FRAME_HEADER_SIZE];
    uint32_t len32;

    int rc = read_full(fd, header, sizeof(header));
    if (rc < 0)
        return rc;
    memcpy(&len32, header, 4);
    memcpy(type, header + 4, 4);
    if (len32 > cap || len32 > FRAME_PAYLOAD_MAX)
        return -EMSGSIZE;
    rc = read_full(fd, buf, len32);
    if (rc < 0)
        return rc;
    *len = len32;
    return 0;
}

static int read_full(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n == 0)
            return -EPIPE;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
