/*
 * log: leveled, line-oriented logging to standard error.
 *
 * Every line is formatted into one buffer and written with a single
 * write(2), so lines from concurrent threads never interleave. The level is
 * a process-wide setting read with a relaxed atomic load: any thread may
 * log at any time, and log_set_level() may be called once at start-up.
 */
#ifndef CONLAB_LOG_H
#define CONLAB_LOG_H

#include <stdbool.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Longest line written; longer messages are cut and end with "...". */
#define LOG_LINE_MAX 1024

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

/*
 * Writes one line "<UTC time> <LEVEL> <message>\n" when the level is
 * enabled. Any thread; never blocks on a lock.
 */
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
