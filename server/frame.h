/*
 * frame: length-prefixed messages over a stream socket, the wire format
 * between the service and its worker processes.
 *
 * A frame is an 8-byte header (payload length, then type, both uint32 in
 * host order: both ends are the same binary on the same machine) followed
 * by the payload. Payloads over FRAME_PAYLOAD_MAX are refused on both
 * sides, so a confused or hostile peer cannot make the other allocate.
 *
 * The incremental reader and writer are for non-blocking sockets (the
 * pool's event loop); the blocking pair is for the single-threaded worker.
 * Each object belongs to one thread at a time.
 */
#ifndef CONLAB_FRAME_H
#define CONLAB_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER_SIZE 8
#define FRAME_PAYLOAD_MAX (1u << 20)

/* Assembles one frame at a time from a non-blocking socket. */
struct frame_reader {
    uint8_t header[FRAME_HEADER_SIZE];
    size_t header_got;
    uint32_t type;
    uint32_t len;
    uint8_t *payload; /* owned, len bytes, valid after a complete frame */
    size_t payload_got;
};

/* Sends queued bytes to a non-blocking socket. */
struct frame_writer {
    uint8_t *buf; /* owned */
    size_t len;
    size_t off;
};

void frame_reader_init(struct frame_reader *r);

/* Frees the payload buffer; the reader is empty again. */
void frame_reader_cleanup(struct frame_reader *r);

/*
 * Reads from fd until a whole frame is in r (returns 0; r->type, r->len
 * and r->payload hold it until the next call) or the socket has no more
 * bytes (-EAGAIN; call again when readable). -EPIPE when the peer closed
 * (mid-frame or not), -EMSGSIZE for a payload over FRAME_PAYLOAD_MAX
 * (final: later calls return it again without reading), -ENOMEM, or
 * another -errno from read(2).
 */
int frame_reader_read(struct frame_reader *r, int fd);

void frame_writer_init(struct frame_writer *w);
void frame_writer_cleanup(struct frame_writer *w);

/*
 * Appends a frame to w's buffer. Returns 0, -EMSGSIZE (payload too large)
 * or -ENOMEM.
 */
int frame_writer_put(struct frame_writer *w, uint32_t type, const void *payload,
                     size_t len);

/* True when w holds bytes not yet written. */
int frame_writer_pending(const struct frame_writer *w);

/*
 * Writes as much of the buffer as fd takes. Returns 0 when all is written,
 * -EAGAIN when some remains (call again when writable), or -errno (-EPIPE
 * when the peer is gone).
 */
int frame_writer_flush(struct frame_writer *w, int fd);

/*
 * Blocking: writes one whole frame to fd. Returns 0, -EMSGSIZE or -errno.
 */
int frame_send(int fd, uint32_t type, const void *payload, size_t len);

/*
 * Blocking: reads one whole frame from fd into buf (cap bytes). Returns 0
 * with *type and *len set; -EPIPE on end of file, -EMSGSIZE when the
 * payload is larger than cap or FRAME_PAYLOAD_MAX, or -errno.
 */
int frame_recv(int fd, uint32_t *type, void *buf, size_t cap, size_t *len);

#endif
