/*
 * loop: the one event-loop thread. It owns a timer heap and one libcurl
 * multi handle; thousands of timers and transfers cost a heap slot or an
 * easy handle each, never a thread.
 *
 * Other threads hand it work through a bounded queue and a wake-up
 * (curl_multi_wakeup); nothing else touches its state. Callbacks run on
 * the loop thread and must not block. Timers and transfers are intrusive:
 * the caller embeds them and keeps them valid until their callback has
 * run, exactly once (with cancelled set when the loop stops first).
 *
 * Threads: loop_add_timers, loop_add_fetches and loop_stats from any
 * thread; loop_start and loop_stop from the main thread.
 */
#ifndef CONLAB_LOOP_H
#define CONLAB_LOOP_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOOP_TIMERS_MAX      200000 /* timers in flight, at most */
#define LOOP_FETCHES_MAX     20000 /* transfers in flight (running or queued) */
#define LOOP_CONNECTIONS_MAX 1024  /* open outbound connections, at most */

struct loop;
struct loop_timer;
struct loop_fetch;

typedef void (*loop_timer_fn)(struct loop_timer *t, bool cancelled);
typedef void (*loop_fetch_fn)(struct loop_fetch *f, CURLcode rc);

struct loop_timer {
    uint64_t due_ns; /* CLOCK_MONOTONIC; set by the caller */
    loop_timer_fn fire;
    /* private */
    struct loop_timer *next;
    size_t slot;
};

struct loop_fetch {
    CURL *easy;         /* configured by the caller; the loop never frees it */
    loop_fetch_fn done; /* rc CURLE_OK or the transfer's error;
                           CURLE_ABORTED_BY_CALLBACK when cancelled */
    /* private: the pending list, then the loop's active list */
    struct loop_fetch *next, *prev;
};

struct loop_stats {
    uint64_t timers;         /* in flight */
    uint64_t transfers;      /* in flight */
    uint64_t timers_fired;   /* since start */
    uint64_t transfers_done; /* since start */
};

/* Starts the loop thread. Returns the loop, or NULL with err set. */
struct loop *loop_start(char *err, size_t err_len);

/*
 * Hands n timers to the loop, all or none. Returns 0, -EAGAIN when that
 * would pass LOOP_TIMERS_MAX, or -ESHUTDOWN when stopping.
 */
int loop_add_timers(struct loop *loop, struct loop_timer *const timers[],
                    size_t n);

/* Same for transfers (LOOP_FETCHES_MAX). */
int loop_add_fetches(struct loop *loop, struct loop_fetch *const fetches[],
                     size_t n);

void loop_stats(struct loop *loop, struct loop_stats *out);

/*
 * Stops the loop: every timer and transfer still in it gets its callback
 * with cancelled set (on the loop thread), then the thread is joined and
 * everything freed. loop_stop(NULL) does nothing.
 */
void loop_stop(struct loop *loop);

#endif
