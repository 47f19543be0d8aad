/*
 * fuzz_frame: libFuzzer target for the worker message layer: the frame
 * reader and writer (server/frame.c) on arbitrary bytes, and the worker's
 * decoding of job requests into results (worker_main() and
 * worker_run_job() in server/worker.c).
 *
 * The first byte picks a mode (modulo 3); the rest is the mode's input.
 *
 * 0, frames: byte 1 seeds the chunking, the rest is a byte stream as a
 *   peer might send it. It goes through a socketpair in pseudo-random
 *   chunks to frame_reader_read() (non-blocking), whole to frame_recv()
 *   (blocking, with a cap from byte 1), and is compared with a reference
 *   decoder written here from frame.h. Invariants: the same frames (type,
 *   length, bytes) in the same order whatever the chunking; no frame over
 *   FRAME_PAYLOAD_MAX, whose header is -EMSGSIZE; end of input is -EPIPE;
 *   an error is final: calling the reader again (with more bytes waiting)
 *   gives an error again and writes nothing out of bounds; frames put with
 *   frame_writer_put() and flushed read back identical.
 *
 * 1, worker: the rest is what the pool sends a worker. worker_main() runs
 *   on one end of a socketpair in this process, a thread feeds the input
 *   and collects the answers, and they are compared with a model of the
 *   protocol in job.h: a HELLO with our pid, then per JOB frame one
 *   RESULT with the job's id, status 0 or -EINVAL as the job's parameters
 *   are valid or not, the right result length and bytes; the worker stops
 *   (status 1) at the first frame that is not a whole JOB, retires
 *   (status 0) at end of input.
 *
 * 2, one job: byte 1 is the kind (1-3 or other), byte 2 the result room
 *   in 8-byte units; worker_run_job() gets the rest as parameters and an
 *   out buffer of exactly that room (ASan checks it is never overrun).
 *
 * prime_count() (by the linker's --wrap) and nanosleep() are replaced
 * here, so that a job costs
 * nothing whatever it asks for (a 10-minute sleep, a 2^64 range): the
 * fuzzer checks the decoding, not the kernel (the replacement nanosleep()
 * passes other threads' sleeps, libFuzzer's, to clock_nanosleep()). The
 * replacements abort() when the worker hands them a span or a time it should
 * have refused.
 *
 * Run it through scripts/fuzz.sh; seeds are in tests/fuzz/corpus/frame/.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../server/frame.h"
#include "../../server/job.h"
#include "../../server/prime.h"
#include "../../server/worker.h"

#define STREAM_MAX 8192 /* bytes of one input; the socket holds them all */
#define FRAMES_MAX 2048

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int nanosleep(const struct timespec *req, struct timespec *rem);

/* What the reference decoder makes of a stream. */
struct ref_frame {
    uint32_t type;
    uint32_t len;
    const uint8_t *payload; /* into the input */
};

struct ref {
    size_t n;
    struct ref_frame frames[FRAMES_MAX];
    bool oversized; /* stopped at a header over FRAME_PAYLOAD_MAX */
    bool cut;       /* stopped at a whole header whose payload is cut */
    uint32_t cut_len;
};

/* The worker mode's feeding and collecting thread. */
struct feeder {
    int fd;
    const uint8_t *in;
    size_t in_len;
    uint8_t *out;
    size_t out_len, out_cap;
};

/* Set while this thread runs worker code: its sleeps cost nothing. */
static _Thread_local bool in_worker;

static void check(bool ok, const char *what);
static void ref_decode(const uint8_t *s, size_t len, struct ref *ref);
static void fuzz_reader(const uint8_t *s, size_t len, uint8_t seed);
static void fuzz_recv(const uint8_t *s, size_t len, const struct ref *ref,
                      uint8_t seed);
static void fuzz_writer(const struct ref *ref);
static void fuzz_worker(const uint8_t *s, size_t len);
static void fuzz_job(const uint8_t *s, size_t len);
static void *feed(void *arg);
static void write_all(int fd, const uint8_t *p, size_t len);
static void make_pair(int sv[2], bool nonblocking_b);
static size_t expect_job(uint32_t kind, const uint8_t *params, uint32_t len,
                         int32_t *status, uint8_t *result);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > STREAM_MAX)
        return 0;
    switch (data[0] % 3) {
    case 0:
        fuzz_reader(data + 2, size - 2, data[1]);
        break;
    case 1:
        fuzz_worker(data + 1, size - 1);
        break;
    default:
        fuzz_job(data + 1, size - 1);
        break;
    }
    return 0;
}

/* ---- mode 0: frames ---- */

static void fuzz_reader(const uint8_t *s, size_t len, uint8_t seed)
{
    static struct ref ref;
    ref_decode(s, len, &ref);

    int sv[2];
    make_pair(sv, true);
    struct frame_reader r;
    frame_reader_init(&r);

    uint32_t rng = 0x9e3779b9u ^ seed;
    size_t sent = 0, got = 0;
    int rc = -EAGAIN;
    while (rc == -EAGAIN || rc == 0) {
        if (rc == -EAGAIN) {
            if (sent == len) {
                shutdown(sv[0], SHUT_WR);
                sent = len + 1; /* EOF sent */
            } else if (sent > len) {
                check(false, "reader asks for more after end of input");
            } else {
                rng = rng * 1103515245u + 12345u;
                size_t chunk = 1 + (rng >> 16) % (seed % 4 == 0 ? 3 : 64);
                if (chunk > len - sent)
                    chunk = len - sent;
                write_all(sv[0], s + sent, chunk);
                sent += chunk;
            }
        }
        rc = frame_reader_read(&r, sv[1]);
        if (rc == 0) {
            check(got < ref.n, "reader gives a frame the stream lacks");
            const struct ref_frame *f = &ref.frames[got++];
            check(r.len <= FRAME_PAYLOAD_MAX, "frame over the maximum");
            check(r.type == f->type && r.len == f->len,
                  "frame header differs from the reference");
            check(r.len == 0 || memcmp(r.payload, f->payload, r.len) == 0,
                  "frame payload differs from the reference");
        }
    }
    check(got == ref.n, "reader missed frames of the stream");
    if (ref.oversized)
        check(rc == -EMSGSIZE, "an oversized header is -EMSGSIZE");
    else
        check(rc == -EPIPE, "end of input is -EPIPE");

    /* An error is final, even with more bytes waiting. */
    if (sent <= len) {
        write_all(sv[0], s + sent, len - sent);
        shutdown(sv[0], SHUT_WR);
    }
    for (int i = 0; i < 2; i++) {
        int again = frame_reader_read(&r, sv[1]);
        check(again < 0 && again != -EAGAIN,
              "a reader that failed does not start again");
    }
    frame_reader_cleanup(&r);
    close(sv[0]);
    close(sv[1]);

    fuzz_recv(s, len, &ref, seed);
    fuzz_writer(&ref);
}

/* The blocking reader on the whole stream, with a cap. */
static void fuzz_recv(const uint8_t *s, size_t len, const struct ref *ref,
                      uint8_t seed)
{
    size_t cap = seed < 128 ? FRAME_PAYLOAD_MAX : (size_t)(seed - 128) * 8;
    uint8_t *buf = malloc(cap ? cap : 1);
    int sv[2];
    if (!buf)
        return;
    make_pair(sv, false);
    write_all(sv[0], s, len);
    shutdown(sv[0], SHUT_WR);

    for (size_t i = 0;; i++) {
        uint32_t type = 0;
        size_t n = 0;
        int rc = frame_recv(sv[1], &type, buf, cap, &n);
        if (i < ref->n && ref->frames[i].len <= cap) {
            check(rc == 0 && type == ref->frames[i].type &&
                      n == ref->frames[i].len &&
                      (n == 0 || memcmp(buf, ref->frames[i].payload, n) == 0),
                  "frame_recv differs from the reference");
            continue;
        }
        /* The cap is checked on the header, before the payload. */
        if (i < ref->n || ref->oversized || (ref->cut && ref->cut_len > cap))
            check(rc == -EMSGSIZE, "frame_recv over its cap is -EMSGSIZE");
        else
            check(rc == -EPIPE, "frame_recv at end of input is -EPIPE");
        break;
    }
    close(sv[0]);
    close(sv[1]);
    free(buf);
}

/* The reference frames written with frame_writer_put() read back equal. */
static void fuzz_writer(const struct ref *ref)
{
    struct frame_writer w;
    struct frame_reader r;
    int sv[2];

    make_pair(sv, true);
    frame_writer_init(&w);
    frame_reader_init(&r);
    for (size_t i = 0; i < ref->n; i++) {
        const struct ref_frame *f = &ref->frames[i];
        check(frame_writer_put(&w, f->type, f->payload, f->len) == 0,
              "frame_writer_put of a valid frame");
        check(frame_writer_flush(&w, sv[0]) == 0, "frame_writer_flush");
        check(!frame_writer_pending(&w), "nothing pending after a flush");
        check(frame_reader_read(&r, sv[1]) == 0 && r.type == f->type &&
                  r.len == f->len &&
                  (r.len == 0 || memcmp(r.payload, f->payload, r.len) == 0),
              "a written frame reads back equal");
    }
    check(frame_reader_read(&r, sv[1]) == -EAGAIN, "no extra frame");
    frame_writer_cleanup(&w);
    frame_reader_cleanup(&r);
    close(sv[0]);
    close(sv[1]);
}

static void ref_decode(const uint8_t *s, size_t len, struct ref *ref)
{
    size_t off = 0;
    ref->n = 0;
    ref->oversized = false;
    ref->cut = false;
    while (len - off >= FRAME_HEADER_SIZE && ref->n < FRAMES_MAX) {
        uint32_t flen, type;
        memcpy(&flen, s + off, 4);
        memcpy(&type, s + off + 4, 4);
        if (flen > FRAME_PAYLOAD_MAX) {
            ref->oversized = true;
            break;
        }
        if (len - off - FRAME_HEADER_SIZE < flen) {
            ref->cut = true;
            ref->cut_len = flen;
            break;
        }
        ref->frames[ref->n].type = type;
        ref->frames[ref->n].len = flen;
        ref->frames[ref->n].payload = s + off + FRAME_HEADER_SIZE;
        ref->n++;
        off += FRAME_HEADER_SIZE + flen;
    }
}

/* ---- mode 1: a worker's conversation ---- */

static void fuzz_worker(const uint8_t *s, size_t len)
{
    static struct ref ref;
    int sv[2];
    pthread_t thread;

    ref_decode(s, len, &ref);
    make_pair(sv, false);
    struct feeder f = {.fd = sv[0], .in = s, .in_len = len};
    if (pthread_create(&thread, NULL, feed, &f) != 0) {
        close(sv[0]);
        close(sv[1]);
        return;
    }
    in_worker = true;
    int status = worker_main(sv[1], 0); /* closes sv[1] */
    in_worker = false;
    pthread_join(thread, NULL);
    close(sv[0]);

    /* The model: HELLO, then a RESULT per whole JOB frame. */
    size_t at = 0;
    uint32_t hdr[2];
    check(f.out_len >= 8 + sizeof(struct job_hello), "worker says hello");
    memcpy(hdr, f.out, 8);
    struct job_hello hello;
    memcpy(&hello, f.out + 8, sizeof(hello));
    check(hdr[0] == sizeof(hello) && hdr[1] == JOB_MSG_HELLO &&
              hello.pid == (int32_t)getpid(),
          "the hello frame");
    at = 8 + sizeof(hello);

    static uint8_t want_result[JOB_PAYLOAD_MAX];
    int want_status = 0; /* end of input: the worker retires */
    size_t i;
    for (i = 0; i < ref.n; i++) {
        const struct ref_frame *fr = &ref.frames[i];
        if (fr->type != JOB_MSG_JOB || fr->len < sizeof(struct job_request)) {
            want_status = 1;
            break;
        }
        struct job_request req;
        memcpy(&req, fr->payload, sizeof(req));
        int32_t want = -EINVAL;
        size_t want_len = 0;
        if (req.len == fr->len - sizeof(req))
            want_len = expect_job(req.kind, fr->payload + sizeof(req), req.len,
                                  &want, want_result);

        struct job_reply reply;
        check(f.out_len - at >= 8 + sizeof(reply), "a result per job");
        memcpy(hdr, f.out + at, 8);
        memcpy(&reply, f.out + at + 8, sizeof(reply));
        check(hdr[1] == JOB_MSG_RESULT, "the result's type");
        check(reply.id == req.id, "the result carries the job's id");
        check(reply.status == want, "the result's status");
        check(reply.len == want_len && hdr[0] == sizeof(reply) + want_len,
              "the result's length");
        check(f.out_len - at >= 8 + hdr[0], "the result is whole");
        check(want_len == 0 || memcmp(f.out + at + 8 + sizeof(reply),
                                      want_result, want_len) == 0,
              "the result's bytes");
        check(reply.start_ns <= reply.end_ns, "start before end");
        at += 8 + hdr[0];
    }
    if (i == ref.n && ref.oversized)
        want_status = 1; /* a frame over the cap: frame_recv refuses it */
    check(at == f.out_len, "nothing after the last result");
    check(status == want_status, "the worker's exit status");
    free(f.out);
}

/* Sends the input, closes our sending side, collects every answer. */
static void *feed(void *arg)
{
    struct feeder *f = arg;
    write_all(f->fd, f->in, f->in_len);
    shutdown(f->fd, SHUT_WR);
    for (;;) {
        if (f->out_len == f->out_cap) {
            size_t cap = f->out_cap ? 2 * f->out_cap : 4096;
            uint8_t *grown = realloc(f->out, cap);
            if (!grown)
                abort();
            f->out = grown;
            f->out_cap = cap;
        }
        ssize_t n = read(f->fd, f->out + f->out_len, f->out_cap - f->out_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        f->out_len += (size_t)n;
    }
    return NULL;
}

/*
 * job.h's rules for a job's parameters, written here: the result's length
 * and bytes into result, *status 0 or -EINVAL.
 */
static size_t expect_job(uint32_t kind, const uint8_t *params, uint32_t len,
                         int32_t *status, uint8_t *result)
{
    *status = -EINVAL;
    if (kind == JOB_PRIME) {
        struct prime_span span;
        if (len != sizeof(span))
            return 0;
        memcpy(&span, params, sizeof(span));
        if (span.block == 0 || span.stride < span.block)
            return 0;
        struct job_prime_result res = {.checked = span.end - span.first,
                                       .primes = span.first ^ span.stride};
        memcpy(result, &res, sizeof(res));
        *status = 0;
        return sizeof(res);
    }
    if (kind == JOB_SQUARE) {
        if (len % 8 != 0 || len > JOB_PAYLOAD_MAX)
            return 0;
        for (uint32_t off = 0; off < len; off += 8) {
            int64_t v;
            memcpy(&v, params + off, 8);
            if (v > 3037000499LL || v < -3037000499LL)
                return 0;
            v *= v;
            memcpy(result + off, &v, 8);
        }
        *status = 0;
        return len;
    }
    if (kind == JOB_SLEEP) {
        struct job_sleep sl;
        if (len != sizeof(sl))
            return 0;
        memcpy(&sl, params, sizeof(sl));
        if (sl.ms > 600000)
            return 0;
        *status = 0;
        return 0;
    }
    return 0;
}

/* ---- mode 2: one job into a tight buffer ---- */

static void fuzz_job(const uint8_t *s, size_t len)
{
    if (len < 2)
        return;
    uint32_t kind = s[0] % 5; /* 0 and 4: unknown kinds */
    uint32_t cap = (uint32_t)s[1] * 8;
    uint32_t plen = (uint32_t)(len - 2);
    uint8_t *params = malloc(plen ? plen : 1);
    uint8_t *out = malloc(cap ? cap : 1);
    static uint8_t want_result[JOB_PAYLOAD_MAX];
    if (!params || !out)
        goto out_free;
    memcpy(params, s + 2, plen);

    uint32_t out_len = 12345;
    in_worker = true;
    int rc = worker_run_job(kind, params, plen, out, cap, &out_len);
    in_worker = false;
    int32_t want;
    size_t want_len = expect_job(kind, params, plen, &want, want_result);
    if (want == 0 && want_len > cap)
        want = -EINVAL; /* no room for the result */
    check(rc == want, "worker_run_job's status");
    check(rc == 0 ? out_len == want_len : out_len == 0,
          "worker_run_job's result length");
    check(rc != 0 || out_len == 0 || memcmp(out, want_result, out_len) == 0,
          "worker_run_job's result");

out_free:
    free(params);
    free(out);
}

/* ---- replacements: jobs cost nothing here ---- */

/*
 * Linked with -Wl,--wrap=prime_count (scripts/fuzz.sh): the job code's
 * calls come here, while server/prime.c (which the demo needs for its
 * splitter) keeps its own definition.
 */
int __wrap_prime_count(const struct prime_span *span, prime_yield_fn yield,
                       void *yield_arg, uint64_t *checked, uint64_t *primes);

int __wrap_prime_count(const struct prime_span *span, prime_yield_fn yield,
                       void *yield_arg, uint64_t *checked, uint64_t *primes)
{
    (void)yield;
    (void)yield_arg;
    check(span->block != 0 && span->stride >= span->block,
          "the worker passed on a span it should refuse");
    *checked = span->end - span->first;
    *primes = span->first ^ span->stride;
    return 0;
}

int nanosleep(const struct timespec *req, struct timespec *rem)
{
    /* libFuzzer's own threads sleep too: only the worker's sleeps are
     * skipped. */
    if (!in_worker)
        return clock_nanosleep(CLOCK_REALTIME, 0, req, rem);
    check(req->tv_sec >= 0 && req->tv_sec <= 600 && req->tv_nsec >= 0 &&
              req->tv_nsec < 1000000000L,
          "the worker sleeps for a time it should refuse");
    return 0;
}

/* ---- helpers ---- */

static void check(bool ok, const char *what)
{
    if (ok)
        return;
    fprintf(stderr, "fuzz_frame: invariant violated: %s\n", what);
    abort();
}

static void write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* the worker has gone: the rest is not read */
        p += n;
        len -= (size_t)n;
    }
}

static void make_pair(int sv[2], bool nonblocking_b)
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        perror("socketpair");
        abort();
    }
    if (nonblocking_b)
        fcntl(sv[1], F_SETFL, O_NONBLOCK);
}
