/*
 * log: leveled, line-oriented logging to standard error.
 *
 * Every line is formatted into one buffer and written whole, so lines from
 * concurrent threads never interleave. Ordinary lines are written at once
 * with one write(2). Access lines (one per request, the hot path under
 * load) go through log_access() into a per-thread buffer that is written
 * when it fills and by log_flush(), which the main thread calls every
 * LOG_FLUSH_MS: a request costs a memcpy instead of a system call, and a
 * line reaches the log within LOG_FLUSH_MS.
 *
 * The level is a process-wide setting read with a relaxed atomic load: any
 * thread may log at any time; log_set_level() is called at start-up.
 */
#ifndef CONLAB_LOG_H
#define CONLAB_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Lines as text, or as one JSON object each (JSON Lines). */
enum log_format { LOG_TEXT = 0, LOG_JSON };

/* Longest line written; longer messages are cut and end with "...". */
#define LOG_LINE_MAX    1024
#define LOG_BUFFER_SIZE 16384 /* per-thread access-line buffer */
#define LOG_BUFFERS_MAX 64    /* threads with a buffer; others write at once */
#define LOG_FLUSH_MS    100
#define LOG_TARGET_MAX  200 /* bytes of request target in an access line */

/* Sets the most verbose level that is written. Any thread. */
void log_set_level(enum log_level level);

/* True when a message at this level would be written. Any thread. */
bool log_enabled(enum log_level level);

/*
 * Parses "error", "warn", "info" or "debug" into *out. Returns 0, or
 * -EINVAL (and leaves *out alone) for any other text.
 */
int log_level_parse(const char *text, enum log_level *out);

/* Name of a level, as log_level_parse() accepts it. */
const char *log_level_name(enum log_level level);

/* Sets the line format. Start-up, before other threads log. */
void log_set_format(enum log_format format);

/* Parses "text" or "json" into *out. Returns 0 or -EINVAL. */
int log_format_parse(const char *text, enum log_format *out);

/*
 * Writes one line "<UTC time> <LEVEL> <message>\n", or in JSON
 * {"time", "level", "msg"}, when the level is enabled. Any thread; never
 * blocks on a lock.
 */
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Writes the access line of one request, "<time> INFO <method> <target>
 * <status> <bytes>B <us>us id=<request id>", plus "(connection ended:
 * <code>)" when ended is non-zero, into the calling thread's buffer (see
 * above); in JSON the same fields as {"time", "level", "request_id",
 * "method", "target", "status", "bytes", "us"[, "ended"]}. The target is
 * quoted with uri_quote(). Formatted by hand, not by printf: it runs once
 * per request. Any thread.
 */
void log_access(const char *method, const char *target, int status,
                uint64_t bytes, uint64_t us, int ended, const char *id);

/* Writes out every thread's buffered lines. Any thread. */
void log_flush(void);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
