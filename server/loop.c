/*
 * loop: see loop.h.
 *
 * libcurl's socket interface on epoll: libcurl says which of its sockets
 * to watch (on_socket) and the loop hands it the ones that are ready
 * (curl_multi_socket_action), so a turn costs what is ready, not what is
 * open (curl_multi_perform() and curl_multi_poll() visited every transfer
 * on every turn, and libcurl polled each one's socket again). epoll_wait()
 * waits with a timeout that is the earlier of libcurl's own
 * (curl_multi_timeout) and the next timer's; another thread that queued
 * work writes to an eventfd. The timer heap is a binary min-heap of
 * pointers, grown on the loop thread only.
 *
 * New transfers wait in a queue and start at most LOOP_START_BATCH a
 * turn: starting one (a socket, a connect) costs tens of microseconds, and
 * a burst of 1,000 started at once kept every request unsent until the
 * last connect was made. Started a batch a turn, the first requests go
 * out while later ones connect.
 *
 * Lock: pending_lock guards the submission lists, the posted calls, the
 * in-flight counts and the stats; callbacks never run under it.
 *
 * Timers of one due time form a ring (next/prev) whose head sits in the
 * heap: a burst of 10,000 sleeps due together is one heap entry, popped
 * once, not 10,000 O(log n) pops while the last of them grow late. An
 * open-addressing table (index: linear probing, at most half full, sized
 * with the heap) maps each due time in the heap to its ring's head, so a
 * timer joins the ring of its due time in O(1) and there is exactly one
 * ring per due time in the heap. The ring being fired has left the heap
 * (and the index); firing is its head, so that a callback may remove a
 * sibling that has not fired yet.
 *
 * Taking work in (take_work) moves handed-over transfers straight to the
 * waiting list (no callback runs meanwhile), and timers to an intake list
 * of the loop thread emptied one at a time, so a callback run meanwhile
 * (a timer the heap could not take) that removes a sibling still finds
 * it: the removal takes the rest in first. Membership is then exact: a
 * timer is in the loop iff it is linked in a ring (prev set), a transfer
 * iff it is linked in the waiting list or the active one (prev set;
 * running tells which).
 */
#include "changes.h"
#include "loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

#define SLOT_FIRING   (SIZE_MAX - 1) /* in the ring being fired, counted */
#define EVENTS_MAX    256            /* epoll events taken a turn */
#define WAIT_MAX_NS   1000000000ull  /* the longest wait between turns */
#define SLACK_FREE_NS 50000000ull    /* see loop_main() */

struct loop {
    pthread_t thread;
    CURLM *multi;
    int epfd;    /* libcurl's sockets, and wake_fd */
    int wake_fd; /* an eventfd: other threads' work is waiting */

    pthread_mutex_t pending_lock; /* guards the fields up to stats */
    /* Counted before every release of pending_lock (changes.h). */
    _Atomic uint64_t changes;
    bool stopping;
    struct loop_timer *new_timers, *new_timers_last; /* in order */
    struct loop_fetch *new_fetches;
    struct loop_call *calls, *calls_tail;
    struct loop_stats stats;

    /* loop thread only */
    struct loop_timer *in_timers; /* being taken in */
    struct loop_fetch waiting;    /* head of the transfers not started yet */
    struct loop_fetch active;     /* head of the transfers in the multi */
    struct loop_timer **heap;     /* ring heads */
    size_t heap_len, heap_cap;
    struct loop_timer **index; /* due time -> ring head, see above */
    size_t index_cap;          /* a power of two, >= 2 * heap_len */
    struct loop_timer *firing; /* ring being fired */
    bool ms_waits;             /* epoll_pwait2() is missing: epoll_wait() */

    bool stopped; /* main thread: loop_stop() has run */
};

/* Releases the lock after counting a possible change of the figures. */
static inline void unlock_changed(struct loop *loop)
{
    changes_unlock(&loop->changes, &loop->pending_lock);
}

static void *loop_main(void *arg);
static void take_pending(struct loop *l);
static void take_work(struct loop *l);
static void start_transfers(struct loop *l);
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp,
                     void *socketp);
static void run_ready(struct loop *l, uint64_t wait_ns);
static void wake(struct loop *l);
static int heap_push(struct loop *l, struct loop_timer *t);
static struct loop_timer *heap_take(struct loop *l, size_t i);
static void heap_up(struct loop *l, size_t i);
static void heap_down(struct loop *l, size_t i);
static void heap_swap(struct loop *l, size_t a, size_t b);
static struct loop_timer **index_find(struct loop *l, uint64_t due_ns);
static void index_drop(struct loop *l, struct loop_timer **entry);
static int index_reserve(struct loop *l, size_t heads);
static int timer_insert(struct loop *l, struct loop_timer *t);
static void ring_unlink(struct loop *l, struct loop_timer *t);
static void fire_ring(struct loop *l, struct loop_timer *head, int status,
                      uint64_t now);
static void fire_due(struct loop *l);
static void reap_transfers(struct loop *l);
static void cancel_all(struct loop *l);
static void count_done(struct loop *l, bool timer, size_t n);
static void unlink_fetch(struct loop_fetch *f);
static void append_fetch(struct loop_fetch *head, struct loop_fetch *f);

struct loop *loop_start(char *err, size_t err_len)
{
    struct loop *l = calloc(1, sizeof(*l));
    if (!l) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&l->pending_lock, NULL);
    l->waiting.next = l->waiting.prev = &l->waiting;
    l->active.next = l->active.prev = &l->active;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = l->wake_fd};
    if (l->epfd < 0 || l->wake_fd < 0 ||
        epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wake_fd, &ev) < 0) {
        snprintf(err, err_len, "cannot set up the loop's epoll: %s",
                 strerror(errno));
        goto out_fds;
    }
    l->multi = curl_multi_init();
    if (!l->multi) {
        snprintf(err, err_len, "curl_multi_init failed");
        goto out_fds;
    }
    curl_multi_setopt(l->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                      (long)LOOP_CONNECTIONS_MAX);
    curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, 64L);
    curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l);
    int rc = pthread_create(&l->thread, NULL, loop_main, l);
    if (rc != 0) {
        snprintf(err, err_len, "cannot start the loop thread: %s",
                 strerror(rc));
        goto out_multi;
    }
    return l;

out_multi:
    curl_multi_cleanup(l->multi);
out_fds:
    if (l->epfd >= 0)
        close(l->epfd);
    if (l->wake_fd >= 0)
        close(l->wake_fd);
    pthread_mutex_destroy(&l->pending_lock);
    free(l);
    return NULL;
}

int loop_add_timers(struct loop *loop, struct loop_timer *const timers[],
                    size_t n)
{
    pthread_mutex_lock(&loop->pending_lock);
    if (loop->stopping) {
        unlock_changed(loop);
        return -ESHUTDOWN;
    }
    if (loop->stats.timers + n > LOOP_TIMERS_MAX) {
        unlock_changed(loop);
        return -EAGAIN;
    }
    /* Kept in order: timers of one due time fire in the order given. */
    for (size_t i = 0; i < n; i++) {
        timers[i]->next = NULL;
        if (loop->new_timers_last)
            loop->new_timers_last->next = timers[i];
        else
            loop->new_timers = timers[i];
        loop->new_timers_last = timers[i];
    }
    loop->stats.timers += n;
    unlock_changed(loop);
    wake(loop);
    return 0;
}

int loop_add_fetches(struct loop *loop, struct loop_fetch *const fetches[],
                     size_t n)
{
    pthread_mutex_lock(&loop->pending_lock);
    if (loop->stopping) {
        unlock_changed(loop);
        return -ESHUTDOWN;
    }
    if (loop->stats.transfers + n > LOOP_FETCHES_MAX) {
        unlock_changed(loop);
        return -EAGAIN;
    }
    /* Kept in order: the first URL asked for is the first started. */
    for (size_t i = n; i-- > 0;) {
        fetches[i]->next = loop->new_fetches;
        fetches[i]->prev = NULL;
        loop->new_fetches = fetches[i];
    }
    loop->stats.transfers += n;
    unlock_changed(loop);
    wake(loop);
    return 0;
}

int loop_call(struct loop *loop, struct loop_call *call)
{
    pthread_mutex_lock(&loop->pending_lock);
    if (loop->stopping) {
        unlock_changed(loop);
        return -ESHUTDOWN;
    }
    call->next = NULL;
    if (loop->calls_tail)
        loop->calls_tail->next = call;
    else
        loop->calls = call;
    loop->calls_tail = call;
    unlock_changed(loop);
    wake(loop);
    return 0;
}

void loop_timer_remove(struct loop *loop, struct loop_timer *t)
{
    take_work(loop); /* a timer still on its way in is in the loop too */
    if (!t->prev)
        return;
    if (t->slot == SLOT_FIRING) {
        /* Its ring is being fired and was counted done already. */
        ring_unlink(loop, t);
        t->fired_ns = 0;
        t->fire(t, -ECANCELED);
        return;
    }
    if (t->slot != SIZE_MAX) {
        if (t->next == t) {
            heap_take(loop, t->slot);
        } else {
            /* The next of its ring heads it in its place: same due time,
             * so the heap stays in order. */
            struct loop_timer *heir = t->next;
            loop->heap[t->slot] = heir;
            heir->slot = t->slot;
            *index_find(loop, t->due_ns) = heir;
        }
    }
    ring_unlink(loop, t);
    count_done(loop, true, 1);
    t->fired_ns = 0;
    t->fire(t, -ECANCELED);
}

void loop_fetch_remove(struct loop *loop, struct loop_fetch *f)
{
    take_work(loop);
    if (!f->prev)
        return; /* in no list: done already, or never added */
    if (f->running)
        curl_multi_remove_handle(loop->multi, f->easy);
    unlink_fetch(f);
    count_done(loop, false, 1);
    f->done(f, -ECANCELED, CURLE_ABORTED_BY_CALLBACK);
}

void loop_stats(struct loop *loop, struct loop_stats *out)
{
    pthread_mutex_lock(&loop->pending_lock);
    *out = loop->stats;
    pthread_mutex_unlock(&loop->pending_lock);
}

uint64_t loop_changes(struct loop *loop)
{
    return changes_read(&loop->changes);
}

bool loop_stopping(struct loop *loop)
{
    pthread_mutex_lock(&loop->pending_lock);
    bool stopping = loop->stopping;
    unlock_changed(loop);
    return stopping;
}

void loop_stop(struct loop *loop)
{
    if (!loop || loop->stopped)
        return;
    loop->stopped = true;
    pthread_mutex_lock(&loop->pending_lock);
    loop->stopping = true;
    unlock_changed(loop);
    wake(loop);
    pthread_join(loop->thread, NULL);
}

void loop_free(struct loop *loop)
{
    if (!loop)
        return;
    loop_stop(loop);
    curl_multi_cleanup(loop->multi);
    close(loop->epfd);
    close(loop->wake_fd);
    pthread_mutex_destroy(&loop->pending_lock);
    free(loop->heap);
    free(loop->index);
    free(loop);
}

static void *loop_main(void *arg)
{
    struct loop *l = arg;

    for (;;) {
        take_pending(l);
        start_transfers(l);

        long curl_ms = -1;
        curl_multi_timeout(l->multi, &curl_ms);
        uint64_t wait_ns = WAIT_MAX_NS;
        if (curl_ms >= 0 && (uint64_t)curl_ms * 1000000u < wait_ns)
            wait_ns = (uint64_t)curl_ms * 1000000u;
        if (l->heap_len) {
            uint64_t now = clock_now_ns(), due = l->heap[0]->due_ns;
            uint64_t timer_ns = due <= now ? 0 : due - now;
            /* The kernel may end a wait of T up to T / 1000 late (its
             * slack for poll-like waits; 50 us at least): a timer 1 s
             * ahead fired 1.6-2.5 ms late. Beyond SLACK_FREE_NS, where
             * that passes 50 us, wake T / 256 early; the next turn's
             * short wait ends on time. */
            if (timer_ns > SLACK_FREE_NS)
                timer_ns -= timer_ns / 256;
            if (timer_ns < wait_ns)
                wait_ns = timer_ns;
        }
        if (l->waiting.next != &l->waiting)
            wait_ns = 0; /* more to start next turn */
        run_ready(l, wait_ns);
        reap_transfers(l);
        fire_due(l);

        pthread_mutex_lock(&l->pending_lock);
        bool stopping = l->stopping;
        unlock_changed(l);
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
    unlock_changed(l);

    take_work(l);
    while (calls) {
        struct loop_call *next = calls->next;
        calls->fn(l, calls);
        calls = next;
    }
}

/* Moves handed-over timers into the heap and transfers into the waiting
 * list. */
static void take_work(struct loop *l)
{
    pthread_mutex_lock(&l->pending_lock);
    struct loop_timer *timers = l->new_timers;
    struct loop_fetch *fetches = l->new_fetches;
    l->new_timers = l->new_timers_last = NULL;
    l->new_fetches = NULL;
    unlock_changed(l);

    /* In the order handed over; no callback runs while they move. */
    while (fetches) {
        struct loop_fetch *f = fetches;
        fetches = f->next;
        f->running = false;
        append_fetch(&l->waiting, f);
    }

    /* Behind what a caller up the stack is still taking in (rarely any). */
    struct loop_timer **tt = &l->in_timers;
    while (*tt)
        tt = &(*tt)->next;
    *tt = timers;
    while (l->in_timers) {
        struct loop_timer *t = l->in_timers;
        l->in_timers = t->next;
        if (timer_insert(l, t) < 0) {
            log_error("loop: out of memory for a timer");
            count_done(l, true, 1);
            t->fired_ns = 0;
            t->fire(t, -ENOMEM);
        }
    }
}

/* Adds the first LOOP_START_BATCH waiting transfers to the multi. */
static void start_transfers(struct loop *l)
{
    for (int i = 0; i < LOOP_START_BATCH && l->waiting.next != &l->waiting;
         i++) {
        struct loop_fetch *f = l->waiting.next;
        unlink_fetch(f);
        CURLcode rc = curl_easy_setopt(f->easy, CURLOPT_PRIVATE, f);
        CURLMcode mc = rc == CURLE_OK ? curl_multi_add_handle(l->multi, f->easy)
                                      : CURLM_BAD_EASY_HANDLE;
        if (mc != CURLM_OK) {
            log_error("loop: cannot add a transfer: %s",
                      curl_multi_strerror(mc));
            count_done(l, false, 1);
            f->done(f, 0, CURLE_FAILED_INIT);
        } else {
            f->running = true;
            append_fetch(&l->active, f);
        }
    }
}

/*
 * libcurl's socket callback: watch s for what it asks (CURL_POLL_IN, _OUT,
 * _INOUT), or no more (CURL_POLL_REMOVE, before libcurl closes it). A
 * socket watched already carries a non-NULL socketp (curl_multi_assign).
 */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp,
                     void *socketp)
{
    (void)easy;
    struct loop *l = userp;
    if (what == CURL_POLL_REMOVE) {
        /* libcurl 7.88 closes a socket that never finished connecting (a
         * transfer cancelled mid-connect) without saying so first (curl
         * pull request 11439, fixed in 8.2.0), so this may come after the
         * close, when the number may already be another thread's new
         * socket (the self listener's, accepted the moment it was free).
         * The delete is harmless then: the kernel took the closed socket
         * out of epfd, and the new one was never in it (only this thread
         * adds). ThreadSanitizer takes the reused number for an object
         * shared without synchronisation and reported it (1 shutdown in 40
         * during 600 self-fetches): the raw system call is not watched. */
        syscall(SYS_epoll_ctl, l->epfd, EPOLL_CTL_DEL, s, NULL);
        return 0;
    }
    struct epoll_event ev = {
        .events = (what & CURL_POLL_IN ? EPOLLIN : 0u) |
                  (what & CURL_POLL_OUT ? EPOLLOUT : 0u),
        .data.fd = s,
    };
    int op = socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    int rc = epoll_ctl(l->epfd, op, s, &ev);
    if (rc < 0 && (errno == ENOENT || errno == EEXIST)) {
        /* A closed socket's number, taken again by a new one. */
        op = errno == ENOENT ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
        rc = epoll_ctl(l->epfd, op, s, &ev);
    }
    if (rc < 0) {
        /* Not -1: libcurl then marks the whole multi handle dead, and
         * every later transfer would fail. Unwatched, this one ends at its
         * own timeout (the fetch demo gives every transfer one). */
        log_error("loop: cannot watch a transfer's socket: %s; it will time "
                  "out",
                  strerror(errno));
        return 0;
    }
    if (!socketp)
        curl_multi_assign(l->multi, s, l);
    return 0;
}

/*
 * Waits at most wait_ns for sockets that are ready or a wake-up, hands
 * each ready socket to libcurl, then lets libcurl run its timeouts when
 * due. To the nanosecond: epoll_wait() counts whole milliseconds, and
 * rounding a timer's wait up to one made every timer fire up to a
 * millisecond late (half a millisecond on average); Linux 5.11 and glibc
 * 2.35 have epoll_pwait2(), older ones (or a tool that does not know it,
 * as valgrind 3.19) get epoll_wait().
 */
static void run_ready(struct loop *l, uint64_t wait_ns)
{
    struct epoll_event ev[EVENTS_MAX];
    int n = -1;
    if (!l->ms_waits) {
        struct timespec ts = {.tv_sec = (time_t)(wait_ns / 1000000000u),
                              .tv_nsec = (long)(wait_ns % 1000000000u)};
        n = epoll_pwait2(l->epfd, ev, EVENTS_MAX, &ts, NULL);
        if (n < 0 && errno == ENOSYS)
            l->ms_waits = true;
    }
    if (l->ms_waits)
        n = epoll_wait(l->epfd, ev, EVENTS_MAX,
                       (int)((wait_ns + 999999u) / 1000000u));
    int running;
    for (int i = 0; i < n; i++) {
        if (ev[i].data.fd == l->wake_fd) {
            uint64_t count;
            if (read(l->wake_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
                log_error("loop: wake-up read failed: %s", strerror(errno));
            continue;
        }
        uint32_t e = ev[i].events;
        int flags = (e & EPOLLIN ? CURL_CSELECT_IN : 0) |
                    (e & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                    (e & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
        curl_multi_socket_action(l->multi, ev[i].data.fd, flags, &running);
    }
    long curl_ms = -1;
    curl_multi_timeout(l->multi, &curl_ms);
    if (curl_ms == 0)
        curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
}

/* Ends another thread's wait in run_ready(). Any thread. */
static void wake(struct loop *l)
{
    uint64_t one = 1;
    /* EAGAIN: the counter is full, so the loop is awake anyway. */
    if (write(l->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_error("loop: wake-up write failed: %s", strerror(errno));
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
        unlink_fetch(f);
        count_done(l, false, 1);
        f->done(f, 0, rc);
    }
}

/*
 * Fires the rings that are due, one clock reading each: the reading that
 * found a ring due is its timers' fired_ns, however long the callbacks of
 * the rings before it took.
 */
static void fire_due(struct loop *l)
{
    while (l->heap_len) {
        uint64_t now = clock_now_ns();
        if (l->heap[0]->due_ns > now)
            break;
        fire_ring(l, heap_take(l, 0), 0, now);
    }
}

/*
 * Calls every timer of the ring headed by head, just taken out of the
 * heap, in the order they were handed over. Each leaves the ring before
 * its callback, so a callback that removes a sibling not yet fired
 * cancels just that one. The ring is counted done at once, one lock in
 * all rather than one a timer (which made a burst of 200,000 a few ms
 * later); its timers are marked so that a removal does not count one
 * twice.
 */
static void fire_ring(struct loop *l, struct loop_timer *head, int status,
                      uint64_t now)
{
    size_t n = 0;
    struct loop_timer *t = head;
    do {
        t->slot = SLOT_FIRING;
        n++;
        t = t->next;
    } while (t != head);
    count_done(l, true, n);

    l->firing = head;
    while (l->firing) {
        t = l->firing;
        ring_unlink(l, t);
        t->fired_ns = status == 0 ? now : 0;
        t->fire(t, status);
    }
}

static void cancel_all(struct loop *l)
{
    while (l->heap_len)
        fire_ring(l, heap_take(l, 0), -ESHUTDOWN, 0);
    struct loop_fetch *lists[] = {&l->active, &l->waiting};
    for (size_t i = 0; i < 2; i++) {
        while (lists[i]->next != lists[i]) {
            struct loop_fetch *f = lists[i]->next;
            if (f->running)
                curl_multi_remove_handle(l->multi, f->easy);
            unlink_fetch(f);
            count_done(l, false, 1);
            f->done(f, -ESHUTDOWN, CURLE_ABORTED_BY_CALLBACK);
        }
    }
}

static void count_done(struct loop *l, bool timer, size_t n)
{
    pthread_mutex_lock(&l->pending_lock);
    if (timer) {
        l->stats.timers -= n;
        l->stats.timers_fired += n;
    } else {
        l->stats.transfers -= n;
        l->stats.transfers_done += n;
    }
    unlock_changed(l);
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

/* Puts t in the ring of its due time, or heads a new ring in the heap. */
static int timer_insert(struct loop *l, struct loop_timer *t)
{
    struct loop_timer *head = l->index_cap ? *index_find(l, t->due_ns) : NULL;
    if (head) {
        /* Last of the ring: just before its head. */
        t->next = head;
        t->prev = head->prev;
        head->prev->next = t;
        head->prev = t;
        t->slot = SIZE_MAX;
        return 0;
    }
    int rc = index_reserve(l, l->heap_len + 1);
    if (rc == 0)
        rc = heap_push(l, t);
    if (rc < 0) {
        t->next = t->prev = NULL;
        return rc;
    }
    t->next = t->prev = t;
    *index_find(l, t->due_ns) = t;
    return 0;
}

/* Takes t out of its ring (the heap is the caller's business). */
static void ring_unlink(struct loop *l, struct loop_timer *t)
{
    if (l->firing == t)
        l->firing = t->next == t ? NULL : t->next;
    t->prev->next = t->next;
    t->next->prev = t->prev;
    t->next = t->prev = NULL;
    t->slot = SIZE_MAX;
}

/* Fibonacci hashing: due times a few ns apart land far apart. */
static size_t index_home(const struct loop *l, uint64_t due_ns)
{
    return (size_t)((due_ns * 0x9e3779b97f4a7c15u) >> 32) & (l->index_cap - 1);
}

/*
 * The entry holding the head of due_ns's ring, or the empty one where it
 * would go. Never loops forever: the index is at most half full.
 */
static struct loop_timer **index_find(struct loop *l, uint64_t due_ns)
{
    size_t mask = l->index_cap - 1;
    for (size_t i = index_home(l, due_ns);; i = (i + 1) & mask) {
        if (!l->index[i] || l->index[i]->due_ns == due_ns)
            return &l->index[i];
    }
}

/*
 * Empties an entry, then shifts back the entries after it that could no
 * longer be found (no tombstones: the probe runs stay short).
 */
static void index_drop(struct loop *l, struct loop_timer **entry)
{
    size_t mask = l->index_cap - 1, hole = (size_t)(entry - l->index);
    for (size_t j = (hole + 1) & mask; l->index[j]; j = (j + 1) & mask) {
        size_t home = index_home(l, l->index[j]->due_ns);
        /* It may fill the hole unless its home lies after the hole. */
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            l->index[hole] = l->index[j];
            hole = j;
        }
    }
    l->index[hole] = NULL;
}

/* Makes room for heads rings at half load at most: 0 or -ENOMEM. */
static int index_reserve(struct loop *l, size_t heads)
{
    if (heads * 2 <= l->index_cap)
        return 0;
    size_t cap = l->index_cap ? l->index_cap * 2 : 128;
    while (heads * 2 > cap)
        cap *= 2;
    struct loop_timer **grown = calloc(cap, sizeof(*grown));
    if (!grown)
        return -ENOMEM;
    free(l->index);
    l->index = grown;
    l->index_cap = cap;
    for (size_t i = 0; i < l->heap_len; i++)
        *index_find(l, l->heap[i]->due_ns) = l->heap[i];
    return 0;
}

/* Takes the ring head in slot i out of the heap: O(log n). */
static struct loop_timer *heap_take(struct loop *l, size_t i)
{
    struct loop_timer *t = l->heap[i];
    index_drop(l, index_find(l, t->due_ns));
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

static void heap_swap(struct loop *l, size_t a, size_t b)
{
    struct loop_timer *t = l->heap[a];
    l->heap[a] = l->heap[b];
    l->heap[b] = t;
    l->heap[a]->slot = a;
    l->heap[b]->slot = b;
}

/* Last of the list headed by head (the waiting or the active one). */
static void append_fetch(struct loop_fetch *head, struct loop_fetch *f)
{
    f->next = head;
    f->prev = head->prev;
    f->prev->next = f;
    head->prev = f;
}

static void unlink_fetch(struct loop_fetch *f)
{
    f->prev->next = f->next;
    f->next->prev = f->prev;
    f->next = f->prev = NULL;
    f->running = false;
}
