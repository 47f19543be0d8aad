/*
 * loop: the one event-loop thread. It owns a timer heap and one libcurl
 * multi handle; thousands of timers and transfers cost a few pointers or
 * an easy handle each, never a thread (and timers of one due time share
 * one heap entry).
 *
 * Other threads hand it work through a bounded queue and a wake-up (an
 * eventfd); nothing else touches its state. To act on what the
 * loop holds (remove a timer or a transfer whose client left), another
 * thread posts a loop_call, which runs on the loop thread.
 *
 * Callbacks run on the loop thread, at stop too, and must not block.
 * Timers and transfers are intrusive: the caller embeds them and keeps
 * them valid until their callback has run, exactly once, with a status:
 * 0 (fired, or the transfer ended: see rc), -ECANCELED (removed by
 * loop_timer_remove / loop_fetch_remove) or -ESHUTDOWN (the loop stopped
 * first).
 *
 * Lifecycle: loop_start(), then loop_stop() (ends everything and joins the
 * thread), then loop_free() once no other thread can call in.
 *
 * Threads: loop_add_timers, loop_add_fetches, loop_call, loop_stats and
 * loop_stopping from any thread, before or after loop_stop (not after
 * loop_free); loop_timer_remove and loop_fetch_remove on the loop thread
 * only (from a callback or a loop_call); loop_start, loop_stop and
 * loop_free from the main thread.
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
#define LOOP_START_BATCH     32    /* transfers started a turn, at most */

struct loop;
struct loop_timer;
struct loop_fetch;
struct loop_call;

/* status: 0 fired at due_ns or later (see fired_ns), -ECANCELED,
 * -ESHUTDOWN, or -ENOMEM (the heap could not grow to take it in). */
typedef void (*loop_timer_fn)(struct loop_timer *t, int status);

/*
 * status 0: the transfer ended and rc is its result (CURLE_OK or its
 * error). -ECANCELED or -ESHUTDOWN: removed or stopped before the end;
 * rc is then CURLE_ABORTED_BY_CALLBACK.
 */
typedef void (*loop_fetch_fn)(struct loop_fetch *f, int status, CURLcode rc);

/*
 * Zero it before its first submission (a zeroed timer is not in the loop);
 * the loop leaves it so again before it calls fire, so it may be handed
 * over anew from there.
 *
 * Timers with the same due_ns cost one heap entry between them and fire
 * one after another in the order they were handed over; handing a batch
 * of equal due times over is O(1) a timer, a new due time O(log n).
 */
struct loop_timer {
    uint64_t due_ns; /* CLOCK_MONOTONIC; set by the caller */
    loop_timer_fn fire;
    /*
     * Set by the loop before it calls fire: with status 0, the
     * CLOCK_MONOTONIC time at which the loop found the timer due (>=
     * due_ns, and the same for every timer of one due time fired
     * together), so that a callback run later in a burst can still stamp
     * the moment it came due; 0 with any other status.
     */
    uint64_t fired_ns;
    /* private: the pending list, then a ring of the timers of one due
     * time (prev set iff in the loop); slot: the ring's heap slot if this
     * timer heads it, else a marker */
    struct loop_timer *next, *prev;
    size_t slot;
};

/*
 * Zero it before its first submission. Give its easy handle a timeout
 * (CURLOPT_TIMEOUT_MS): a transfer whose socket the loop could not watch
 * (epoll_ctl failed; logged) ends by it alone.
 */
struct loop_fetch {
    CURL *easy;         /* configured by the caller; the loop never frees it */
    loop_fetch_fn done; /* see loop_fetch_fn */
    /* private: the pending list, then the loop's waiting list or, once
     * started (running), its active list */
    struct loop_fetch *next, *prev;
    bool running;
};

/*
 * A function to run on the loop thread, caller's memory: valid from
 * loop_call() until fn has been called (it may be freed inside fn).
 */
struct loop_call {
    void (*fn)(struct loop *loop, struct loop_call *call);
    struct loop_call *next; /* private */
};

struct loop_stats {
    uint64_t timers;         /* in flight */
    uint64_t transfers;      /* in flight */
    uint64_t timers_fired;   /* since start: fired, removed or stopped */
    uint64_t transfers_done; /* since start: ended, removed or stopped */
};

/* Starts the loop thread. Returns the loop, or NULL with err set. */
struct loop *loop_start(char *err, size_t err_len);

/*
 * Hands n timers to the loop, all or none. Returns 0, -EAGAIN when that
 * would pass LOOP_TIMERS_MAX, or -ESHUTDOWN once loop_stop() has begun
 * (nothing taken, no callback). Any thread.
 */
int loop_add_timers(struct loop *loop, struct loop_timer *const timers[],
                    size_t n);

/* Same for transfers (LOOP_FETCHES_MAX). */
int loop_add_fetches(struct loop *loop, struct loop_fetch *const fetches[],
                     size_t n);

/*
 * Runs call->fn(loop, call) on the loop thread soon, after the timers and
 * transfers handed over before it have been taken in, in the order calls
 * were posted. Returns 0, and fn is then called exactly once (before
 * loop_stop() returns, if it stops first); or -ESHUTDOWN once loop_stop()
 * has begun, and fn is not called. The loop allocates nothing for it.
 * Any thread.
 */
int loop_call(struct loop *loop, struct loop_call *call);

/*
 * Loop thread only. If t is in the loop (handed over and not yet fired),
 * takes it out (O(1), or O(log n) for the last timer of its due time) and
 * calls its fire with -ECANCELED before returning; otherwise does nothing
 * (it fired already, or was never added).
 */
void loop_timer_remove(struct loop *loop, struct loop_timer *t);

/*
 * Loop thread only. If f is in the loop (handed over, not yet done),
 * removes its easy handle from the multi and calls its done with
 * -ECANCELED and CURLE_ABORTED_BY_CALLBACK before returning; otherwise
 * does nothing. The easy handle stays the caller's.
 */
void loop_fetch_remove(struct loop *loop, struct loop_fetch *f);

/* A consistent snapshot of the counters (the final one after stop). */
void loop_stats(struct loop *loop, struct loop_stats *out);

/* The change count of loop_stats()'s figures (changes.h): equal counts
 * read before two calls mean equal figures. Any thread; no lock. */
uint64_t loop_changes(struct loop *loop);

/* True once loop_stop() has begun. Any thread. */
bool loop_stopping(struct loop *loop);

/*
 * Stops the loop: later submissions and calls get -ESHUTDOWN; calls
 * already posted run; every timer and transfer still in the loop gets its
 * callback with -ESHUTDOWN (on the loop thread); the thread is joined.
 * Frees nothing: the loop still answers the calls above. NULL, or a
 * second call, does nothing. Main thread.
 */
void loop_stop(struct loop *loop);

/*
 * Frees the loop after loop_stop() (which it calls if needed), once no
 * other thread can call into it. loop_free(NULL) does nothing. Main
 * thread.
 */
void loop_free(struct loop *loop);

#endif
