/*
 * log: see log.h.
 *
 * Per-thread buffers live in a fixed table; a thread claims a slot on its
 * first access line and keeps it. The slots' heads (lock, length) are one
 * small table and their bytes another, so that setting up the heads
 * touches no slot's bytes: a slot never claimed costs no memory (with
 * each lock beside its bytes, that touched a page of all 64 slots, 256
 * KiB, at the first access line). Each buffer has its own mutex, taken by
 * its thread to append (uncontended but for a flush in progress) and by
 * log_flush() to write it out. The time prefix is cached per thread for
 * the current second.
 */
#include "log.h"

#include "text.h"
#include "uri.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct log_buffer {
    pthread_mutex_t lock; /* guards len and data's bytes */
    size_t len;
    char *data; /* LOG_BUFFER_SIZE bytes: its row of buffer_bytes */
};

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const level_tags[] = {"ERROR", "WARN", "INFO", "DEBUG"};

static _Atomic int current_level = LOG_INFO;
static enum log_format current_format = LOG_TEXT;
static struct log_buffer buffers[LOG_BUFFERS_MAX];
static char buffer_bytes[LOG_BUFFERS_MAX][LOG_BUFFER_SIZE];
static _Atomic int buffers_claimed;
static pthread_once_t buffers_once = PTHREAD_ONCE_INIT;
static bool stderr_is_file; /* set with the buffers, read after a claim */
static _Thread_local struct log_buffer *my_buffer;
static _Thread_local bool my_buffer_tried;

static size_t format_prefix(char *line, enum log_level level);
static void json_str(struct text *t, const char *s);
static size_t utf8_len(const unsigned char *p);
static size_t format_line(char *line, enum log_level level, const char *fmt,
                          va_list ap);

static void write_all(const char *p, size_t len);
static void write_lines(const char *p, size_t len);
static void init_buffers(void);
static struct log_buffer *claim_buffer(void);

void log_set_level(enum log_level level)
{
    atomic_store_explicit(&current_level, (int)level, memory_order_relaxed);
}

bool log_enabled(enum log_level level)
{
    return (int)level <=
           atomic_load_explicit(&current_level, memory_order_relaxed);
}

int log_level_parse(const char *text, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(text, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

void log_set_format(enum log_format format)
{
    current_format = format;
}

int log_format_parse(const char *text, enum log_format *out)
{
    if (strcmp(text, "text") == 0)
        *out = LOG_TEXT;
    else if (strcmp(text, "json") == 0)
        *out = LOG_JSON;
    else
        return -EINVAL;
    return 0;
}

const char *log_level_name(enum log_level level)
{
    if ((int)level < 0 || (int)level > LOG_DEBUG)
        return "?";
    return level_names[level];
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char line[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    size_t len = format_line(line, level, fmt, ap);
    va_end(ap);
    write_all(line, len);
}

void log_access(const char *method, const char *target, int status,
                uint64_t bytes, uint64_t us, int ended, const char *id)
{
    if (!log_enabled(LOG_INFO))
        return;
    char line[LOG_LINE_MAX];
    char quoted[LOG_TARGET_MAX];
    struct text t;

    text_init(&t, line, sizeof(line) - 1); /* room for the newline */
    t.len = format_prefix(line, LOG_INFO);
    uri_quote(quoted, sizeof(quoted), target);
    if (current_format == LOG_JSON) {
        text_str(&t, ",\"request_id\":");
        json_str(&t, id);
        text_str(&t, ",\"method\":");
        json_str(&t, method);
        text_str(&t, ",\"target\":");
        json_str(&t, quoted);
        text_str(&t, ",\"status\":");
        text_u64(&t, status < 0 ? 0 : (uint64_t)status);
        text_str(&t, ",\"bytes\":");
        text_u64(&t, bytes);
        text_str(&t, ",\"us\":");
        text_u64(&t, us);
        if (ended) {
            text_str(&t, ",\"ended\":");
            text_u64(&t, (uint64_t)ended);
        }
        text_char(&t, '}');
    } else {
        text_str(&t, method);
        text_char(&t, ' ');
        text_str(&t, quoted);
        text_char(&t, ' ');
        text_u64(&t, status < 0 ? 0 : (uint64_t)status);
        text_char(&t, ' ');
        text_u64(&t, bytes);
        text_str(&t, "B ");
        text_u64(&t, us);
        text_str(&t, "us id=");
        text_str(&t, id);
        if (ended) {
            text_str(&t, " (connection ended: ");
            text_u64(&t, (uint64_t)ended);
            text_char(&t, ')');
        }
    }
    size_t len = t.len;
    line[len++] = '\n';

    struct log_buffer *b = claim_buffer();
    if (!b) {
        write_all(line, len);
        return;
    }
    pthread_mutex_lock(&b->lock);
    if (b->len + len > LOG_BUFFER_SIZE) {
        write_lines(b->data, b->len);
        b->len = 0;
    }
    memcpy(b->data + b->len, line, len);
    b->len += len;
    pthread_mutex_unlock(&b->lock);
}

void log_flush(void)
{
    int n = atomic_load(&buffers_claimed);
    if (n > LOG_BUFFERS_MAX)
        n = LOG_BUFFERS_MAX;
    for (int i = 0; i < n; i++) {
        struct log_buffer *b = &buffers[i];
        pthread_mutex_lock(&b->lock);
        if (b->len) {
            write_lines(b->data, b->len);
            b->len = 0;
        }
        pthread_mutex_unlock(&b->lock);
    }
}

/*
 * "<UTC time> <LEVEL> " into line (at most 40 bytes), or in JSON
 * {"time":"<UTC time>","level":"<level>" without the closing brace (at
 * most 56); returns its length.
 */
static size_t format_prefix(char *line, enum log_level level)
{
    /* The whole prefix is kept per thread for its millisecond: at 100,000
     * access lines a second a thread prints the same one about 100 times
     * (printing it was 240 instructions an access line, copying it 30). */
    static _Thread_local char cached_line[64];
    static _Thread_local size_t cached_len;
    static _Thread_local int64_t cached_ms = -1;
    static _Thread_local enum log_level cached_level;
    static _Thread_local enum log_format cached_format;
    static _Thread_local time_t cached_sec = -1;
    static _Thread_local char cached_date[32];
    struct timespec now;
    struct text t;

    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000L;
    if (now_ms == cached_ms && level == cached_level &&
        current_format == cached_format) {
        memcpy(line, cached_line, cached_len);
        return cached_len;
    }
    if (now.tv_sec != cached_sec) {
        struct tm tm;
        gmtime_r(&now.tv_sec, &tm);
        strftime(cached_date, sizeof(cached_date), "%Y-%m-%dT%H:%M:%S", &tm);
        cached_sec = now.tv_sec;
    }
    text_init(&t, line, LOG_LINE_MAX);
    if (current_format == LOG_JSON)
        text_str(&t, "{\"time\":\"");
    text_str(&t, cached_date);
    unsigned ms = (unsigned)(now.tv_nsec / 1000000L);
    char frac[7] = {'.',
                    (char)('0' + ms / 100),
                    (char)('0' + ms / 10 % 10),
                    (char)('0' + ms % 10),
                    'Z',
                    ' ',
                    '\0'};
    if (current_format == LOG_JSON) {
        frac[5] = '\0';
        text_str(&t, frac);
        text_str(&t, "\",\"level\":\"");
        text_str(&t, level_names[level]);
        text_char(&t, '"');
    } else {
        text_str(&t, frac);
        text_str(&t, level_tags[level]);
        text_char(&t, ' ');
    }
    if (t.len <= sizeof(cached_line)) {
        memcpy(cached_line, line, t.len);
        cached_len = t.len;
        cached_ms = now_ms;
        cached_level = level;
        cached_format = current_format;
    }
    return t.len;
}

/*
 * s as a JSON string: quote and backslash escaped, well-formed UTF-8
 * sequences kept as they are (a message naming /srv/josé reads back as
 * written), every other byte (controls, DEL, bytes of broken or
 * overlong sequences, C1 controls) escaped as \u00XX, so the line stays
 * valid JSON whatever s holds; cut with "..." where the line would
 * overflow.
 */
static void json_str(struct text *t, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    text_char(t, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (t->cap - t->len < 16) { /* keep room to close the line */
            text_str(t, "...");
            break;
        }
        unsigned c = *p;
        size_t seq = c >= 0x80 ? utf8_len(p) : 0;
        if (seq == 2 && c == 0xc2 && p[1] < 0xa0) {
            c = *++p; /* U+0080..U+009F, C1 controls: escaped below */
            seq = 0;
        }
        if (seq > 0) {
            for (size_t i = 0; i < seq; i++)
                text_char(t, (char)p[i]);
            p += seq - 1;
        } else if (c == '"' || c == '\\') {
            text_char(t, '\\');
            text_char(t, (char)c);
        } else if (c < 0x20 || c >= 0x7f) {
            char esc[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], '\0'};
            text_str(t, esc);
        } else {
            text_char(t, (char)c);
        }
    }
    text_char(t, '"');
}

/*
 * Bytes of the well-formed UTF-8 sequence (RFC 3629: no overlong forms,
 * no surrogates, at most U+10FFFF) that p starts, or 0. Reads no further
 * than the first byte that does not continue the sequence, so never past
 * the NUL.
 */
static size_t utf8_len(const unsigned char *p)
{
    unsigned lo = 0x80, hi = 0xbf; /* range of the second byte */
    size_t n;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3;
        if (p[0] == 0xe0)
            lo = 0xa0;
        else if (p[0] == 0xed)
            hi = 0x9f;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4;
        if (p[0] == 0xf0)
            lo = 0x90;
        else if (p[0] == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    }
    return n;
}

static size_t format_line(char *line, enum log_level level, const char *fmt,
                          va_list ap)
{
    if (current_format == LOG_JSON) {
        char msg[LOG_LINE_MAX];
        struct text t;
        vsnprintf(msg, sizeof(msg), fmt, ap);
        text_init(&t, line, LOG_LINE_MAX - 1); /* room for the newline */
        t.len = format_prefix(line, level);
        text_str(&t, ",\"msg\":");
        json_str(&t, msg);
        text_char(&t, '}');
        size_t len = t.len;
        line[len++] = '\n';
        return len;
    }
    size_t len = format_prefix(line, level);
    int n = vsnprintf(line + len, LOG_LINE_MAX - len, fmt, ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= LOG_LINE_MAX - len - 1) {
        len = LOG_LINE_MAX - 5;
        memcpy(line + len, "...", 3);
        len += 3;
    } else {
        len += (size_t)n;
    }
    line[len++] = '\n';
    return len;
}

static void write_all(const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(STDERR_FILENO, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        len -= (size_t)w;
    }
}

/*
 * Writes whole lines in writes of at most PIPE_BUF bytes: on a pipe
 * (journald, a container runtime) a write that size is atomic, so the
 * buffers of two threads flushed at once never mix inside a line. A
 * regular file takes a buffer in one write: Linux keeps a write() to a
 * file whole whatever its size (the file's lock), and a 16 KiB write
 * costs 0.44 ns a byte against 1.0 for 4 KiB ones (measured on ext4;
 * about 50 ns an access line).
 */
static void write_lines(const char *p, size_t len)
{
    if (stderr_is_file) {
        write_all(p, len);
        return;
    }
    while (len > 0) {
        size_t n = len;
        if (n > PIPE_BUF) {
            n = PIPE_BUF;
            while (n > 0 && p[n - 1] != '\n')
                n--;
            if (n == 0) /* no line end within PIPE_BUF: cannot happen */
                n = PIPE_BUF;
        }
        write_all(p, n);
        p += n;
        len -= n;
    }
}

static void init_buffers(void)
{
    for (int i = 0; i < LOG_BUFFERS_MAX; i++) {
        pthread_mutex_init(&buffers[i].lock, NULL);
        buffers[i].data = buffer_bytes[i];
    }
    struct stat st;
    stderr_is_file = fstat(STDERR_FILENO, &st) == 0 && S_ISREG(st.st_mode);
}

static struct log_buffer *claim_buffer(void)
{
    if (my_buffer_tried)
        return my_buffer;
    my_buffer_tried = true;
    pthread_once(&buffers_once, init_buffers);
    int slot = atomic_fetch_add(&buffers_claimed, 1);
    my_buffer = slot < LOG_BUFFERS_MAX ? &buffers[slot] : NULL;
    return my_buffer;
}
