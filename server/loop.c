/*
 * loop: see loop.h.
 *
 * curl_multi_poll() waits on libcurl's sockets with a timeout that is the
 * earlier of libcurl's own and the next timer's; curl_multi_wakeup() from
 * another thread ends the wait after it queued work. The timer heap is a
 * binary min-heap of pointers, grown on the loop thread only.
 *
 * Lock: pending_lock guards the submission lists, the posted calls, the
 * in-flight counts and the stats; callbacks never run under it.
 *
 * Taking work in (take_work) moves the submission lists to intake lists
 * of the loop thread and empties those one item at a time, so a callback
 * run meanwhile (a failed add) that removes a sibling still finds it:
 * the removal takes the rest in first. Membership is then exact: a timer
 * is in the loop iff heap[slot] is it, a transfer iff it is linked in
 * the active list (prev set).
 */
#include "loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"

struct loop {
    pthread_t thread;
    CURLM *multi;

    pthread_mutex_t pending_lock; /* guards the fields up to stats */
    bool stopping;
    struct loop_timer *new_timers;
    struct loop_fetch *new_fetches;
    struct loop_call *calls, *calls_tail;
    struct loop_stats stats;

    /* loop thread only */
    struct loop_timer *in_timers; /* being taken in */
    struct loop_fetch *in_fetches;
    struct loop_fetch active; /* head of the transfers in the multi */
    struct loop_timer **heap;
    size_t heap_len, heap_cap;

    bool stopped; /* main thread: loop_stop() has run */
};

static void *loop_main(void *arg);
static void take_pending(struct loop *l);
static void take_work(struct loop *l);
static int heap_push(struct loop *l, struct loop_timer *t);
static struct loop_timer *heap_take(struct loop *l, size_t i);
static void heap_up(struct loop *l, size_t i);
static void heap_down(struct loop *l, size_t i);
static void heap_swap(struct loop *l, size_t a, size_t b);
static bool in_heap(const struct loop *l, const struct loop_timer *t);
static void fire_due(struct loop *l, uint64_t now);
static void reap_transfers(struct loop *l);
static void cancel_all(struct loop *l);
static void count_done(struct loop *l, bool timer);
static void unlink_active(struct loop_fetch *f);

struct loop *loop_start(char *err, size_t err_len)
{
    struct loop *l = calloc(1, sizeof(*l));
    if (!l) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&l->pending_lock, NULL);
    l->active.next = l->active.prev = &l->active;
    l->multi = curl_multi_init();
    if (!l->multi) {
        snprintf(err, err_len, "curl_multi_init failed");
        goto out_free;
    }
    curl_multi_setopt(l->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                      (long)LOOP_CONNECTIONS_MAX);
    curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, 64L);
    int rc = pthread_create(&l->thread, NULL, loop_main, l);
    if (rc != 0) {
        snprintf(err, err_len, "cannot start the loop thread: %s",
                 strerror(rc));
        goto out_multi;
    }
    return l;

out_multi:
    curl_multi_cleanup(l->multi);
out_free:
    pthread_mutex_destroy(&l->pending_lock);
    free(l);
    return NULL;
}

int loop_add_timers(struct loop *loop, struct loop_timer *const timers[],
                    size_t n)
{
    pthread_mutex_lock(&loop->pending_lock);
    if (loop->stopping) {
        pthread_mutex_unlock(&loop->pending_lock);
        return -ESHUTDOWN;
    }
    if (loop->stats.timers + n > LOOP_TIMERS_MAX) {
        pthread_mutex_unlock(&loop->pending_lock);
        return -EAGAIN;
    }
    for (size_t i = 0; i < n; i++) {
        timers[i]->next = loop->new_timers;
        loop->new_timers = timers[i];
    }
    loop->stats.timers += n;
    pthread_mutex_unlock(&loop->pending_lock);
    curl_multi_wakeup(loop->multi);
    return 0;
}

int loop_add_fetches(struct loop *loop, struct loop_fetch *const fetches[],
                     size_t n)
{
    pthread_mutex_lock(&loop->pending_lock);
    if (loop->stopping) {
        pthread_mutex_unlock(&loop->pending_lock);
        return -ESHUTDOWN;
    }
    if (loop->stats.transfers + n > LOOP_FETCHES_MAX) {
        pthread_mutex_unlock(&loop->pending_lock);
        return -EAGAIN;
    }
    /* Kept in order: the first URL asked for is the first started. */
    for (size_t i = n; i-- > 0;) {
        fetches[i]->next = loop->new_fetches;
        fetches[i]->prev = NULL;
        loop->new_fetches = fetches[i];
    }
    loop->stats.transfers += n;
    pthread_mutex_unlock(&loop->pending_lock);
    curl_multi_wakeup(loop->multi);
    return 0;
}

int loop_call(struct loop *loop, struct loop_call *call)
{
    pthread_mutex_lock(&loop->pending_lock);
    if (loop->stopping) {
        pthread_mutex_unlock(&loop->pending_lock);
        return -ESHUTDOWN;
    }
    call->next = NULL;
    if (loop->calls_tail)
        loop->calls_tail->next = call;
    else
        loop->calls = call;
    loop->calls_tail = call;
    pthread_mutex_unlock(&loop->pending_lock);
    curl_multi_wakeup(loop->multi);
    return 0;
}

void loop_timer_remove(struct loop *loop, struct loop_timer *t)
{
    take_work(loop); /* a timer still on its way in is in the loop too */
    if (!in_heap(loop, t))
        return;
    heap_take(loop, t->slot);
    count_done(loop, true);
    t->fire(t, -ECANCELED);
}

void loop_fetch_remove(struct loop *loop, struct loop_fetch *f)
{
    take_work(loop);
    if (!f->prev)
        return; /* not in the active list: done already, or never added */
    curl_multi_remove_handle(loop->multi, f->easy);
    unlink_active(f);
    count_done(loop, false);
    f->done(f, -ECANCELED, CURLE_ABORTED_BY_CALLBACK);
}

void loop_stats(struct loop *loop, struct loop_stats *out)
{
    pthread_mutex_lock(&loop->pending_lock);
    *out = loop->stats;
    pthread_mutex_unlock(&loop->pending_lock);
}

bool loop_stopping(struct loop *loop)
{
    pthread_mutex_lock(&loop->pending_lock);
    bool stopping = loop->stopping;
    pthread_mutex_unlock(&loop->pending_lock);
    return stopping;
}

void loop_stop(struct loop *loop)
{
    if (!loop || loop->stopped)
        return;
    loop->stopped = true;
    pthread_mutex_lock(&loop->pending_lock);
    loop->stopping = true;
    pthread_mutex_unlock(&loop->pending_lock);
    curl_multi_wakeup(loop->multi);
    pthread_join(loop->thread, NULL);
}

void loop_free(struct loop *loop)
{
    if (!loop)
        return;
    loop_stop(loop);
    curl_multi_cleanup(loop->multi);
    pthread_mutex_destroy(&loop->pending_lock);
    free(loop->heap);
    free(loop);
}

static void *loop_main(void *arg)
{
    struct loop *l = arg;

    for (;;) {
        take_pending(l);

        long curl_ms = -1;
        curl_multi_timeout(l->multi, &curl_ms);
        long wait_ms = curl_ms < 0 || curl_ms > 1000 ? 1000 : curl_ms;
        if (l->heap_len) {
            uint64_t now = clock_now_ns(), due = l->heap[0]->due_ns;
            long timer_ms =
                due <= now ? 0 : (long)((due - now + 999999u) / 1000000u);
            if (timer_ms < wait_ms)
                wait_ms = timer_ms;
        }
        curl_multi_poll(l->multi, NULL, 0, (int)wait_ms, NULL);

        int running;
        curl_multi_perform(l->multi, &running);
        reap_transfers(l);
        fire_due(l, clock_now_ns());

        pthread_mutex_lock(&l->pending_lock);
        bool stopping = l->stopping;
        pthread_mutex_unlock(&l->pending_lock);
        if (stopping)
            break;
    }
    /* Nothing new gets in now: take and run what was accepted, then end
     * what is left. */
    take_pending(l);
    cancel_all(l);
    return NULL;
}

/*
 * Takes in what other threads handed over, then runs the calls posted so
 * far. The calls are taken first: whatever was handed over before a call
 * was posted is then in the loop when it runs.
 */
static void take_pending(struct loop *l)
{
    pthread_mutex_lock(&l->pending_lock);
    struct loop_call *calls = l->calls;
    l->calls = l->calls_tail = NULL;
    pthread_mutex_unlock(&l->pending_lock);

    take_work(l);
    while (calls) {
        struct loop_call *next = calls->next;
        calls->fn(l, calls);
        calls = next;
    }
}

/* Moves handed-over timers into the heap and transfers into the multi. */
static void take_work(struct loop *l)
{
    pthread_mutex_lock(&l->pending_lock);
    struct loop_timer *timers = l->new_timers;
    struct loop_fetch *fetches = l->new_fetches;
    l->new_timers = NULL;
    l->new_fetches = NULL;
    pthread_mutex_unlock(&l->pending_lock);

    /* Behind what a caller up the stack is still taking in (rarely any). */
    struct loop_timer **tt = &l->in_timers;
    while (*tt)
        tt = &(*tt)->next;
    *tt = timers;
    struct loop_fetch **ft = &l->in_fetches;
    while (*ft)
        ft = &(*ft)->next;
    *ft = fetches;

    while (l->in_timers) {
        struct loop_timer *t = l->in_timers;
        l->in_timers = t->next;
        if (heap_push(l, t) < 0) {
            log_error("loop: out of memory for a timer");
            count_done(l, true);
            t->fire(t, -ENOMEM);
        }
    }
    while (l->in_fetches) {
        struct loop_fetch *f = l->in_fetches;
        l->in_fetches = f->next;
        f->next = f->prev = NULL;
        CURLcode rc = curl_easy_setopt(f->easy, CURLOPT_PRIVATE, f);
        CURLMcode mc = rc == CURLE_OK ? curl_multi_add_handle(l->multi, f->easy)
                                      : CURLM_BAD_EASY_HANDLE;
        if (mc != CURLM_OK) {
            log_error("loop: cannot add a transfer: %s",
                      curl_multi_strerror(mc));
            count_done(l, false);
            f->done(f, 0, CURLE_FAILED_INIT);
        } else {
            f->next = &l->active;
            f->prev = l->active.prev;
            f->prev->next = f;
            l->active.prev = f;
        }
    }
}

static void reap_transfers(struct loop *l)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(l->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        struct loop_fetch *f = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&f);
        curl_multi_remove_handle(l->multi, easy);
        unlink_active(f);
        count_done(l, false);
        f->done(f, 0, rc);
    }
}

static void fire_due(struct loop *l, uint64_t now)
{
    while (l->heap_len && l->heap[0]->due_ns <= now) {
        struct loop_timer *t = heap_take(l, 0);
        count_done(l, true);
        t->fire(t, 0);
    }
}

static void cancel_all(struct loop *l)
{
    while (l->heap_len) {
        struct loop_timer *t = heap_take(l, 0);
        count_done(l, true);
        t->fire(t, -ESHUTDOWN);
    }
    while (l->active.next != &l->active) {
        struct loop_fetch *f = l->active.next;
        curl_multi_remove_handle(l->multi, f->easy);
        unlink_active(f);
        count_done(l, false);
        f->done(f, -ESHUTDOWN, CURLE_ABORTED_BY_CALLBACK);
    }
}

static void count_done(struct loop *l, bool timer)
{
    pthread_mutex_lock(&l->pending_lock);
    if (timer) {
        l->stats.timers--;
        l->stats.timers_fired++;
    } else {
        l->stats.transfers--;
        l->stats.transfers_done++;
    }
    pthread_mutex_unlock(&l->pending_lock);
}

static int heap_push(struct loop *l, struct loop_timer *t)
{
    if (l->heap_len == l->heap_cap) {
        size_t cap = l->heap_cap ? l->heap_cap * 2 : 64;
        struct loop_timer **grown = realloc(l->heap, cap * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        l->heap = grown;
        l->heap_cap = cap;
    }
    size_t i = l->heap_len++;
    l->heap[i] = t;
    t->slot = i;
    heap_up(l, i);
    return 0;
}

/* Takes the timer in slot i out of the heap: O(log n). */
static struct loop_timer *heap_take(struct loop *l, size_t i)
{
    struct loop_timer *t = l->heap[i];
    l->heap_len--;
    if (i < l->heap_len) {
        struct loop_timer *moved = l->heap[l->heap_len];
        l->heap[i] = moved;
        moved->slot = i;
        /* The moved timer may belong above or below its new slot. */
        heap_up(l, i);
        heap_down(l, moved->slot);
    }
    t->slot = SIZE_MAX;
    return t;
}

static void heap_up(struct loop *l, size_t i)
{
    while (i > 0 && l->heap[(i - 1) / 2]->due_ns > l->heap[i]->due_ns) {
        heap_swap(l, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(struct loop *l, size_t i)
{
    for (;;) {
        size_t a = 2 * i + 1, b = a + 1, m = i;
        if (a < l->heap_len && l->heap[a]->due_ns < l->heap[m]->due_ns)
            m = a;
        if (b < l->heap_len && l->heap[b]->due_ns < l->heap[m]->due_ns)
            m = b;
        if (m == i)
            break;
        heap_swap(l, i, m);
        i = m;
    }
}

static bool in_heap(const struct loop *l, const struct loop_timer *t)
{
    return t->slot < l->heap_len && l->heap[t->slot] == t;
}

static void heap_swap(struct loop *l, size_t a, size_t b)
{
    struct loop_timer *t = l->heap[a];
    l->heap[a] = l->heap[b];
    l->heap[b] = t;
    l->heap[a]->slot = a;
    l->heap[b]->slot = b;
}

static void unlink_active(struct loop_fetch *f)
{
    f->prev->next = f->next;
    f->next->prev = f->prev;
    f->next = f->prev = NULL;
}
