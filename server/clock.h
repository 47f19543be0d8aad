/*
 * clock: the monotonic clock every timing in the service is read from.
 * Header-only; any thread.
 */
#ifndef CONLAB_CLOCK_H
#define CONLAB_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Nanoseconds of CLOCK_MONOTONIC. */
static inline uint64_t clock_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Nanoseconds of a clock_gettime() clock: CLOCK_THREAD_CPUTIME_ID (the
 * calling thread's CPU time), CLOCK_PROCESS_CPUTIME_ID (every thread's);
 * 0 when the clock cannot be read.
 */
static inline uint64_t clock_ns(clockid_t clock)
{
    struct timespec ts;
    if (clock_gettime(clock, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Milliseconds from since_ns to now_ns, rounded to the microsecond. */
static inline double clock_ms_between(uint64_t since_ns, uint64_t now_ns)
{
    return (double)((now_ns - since_ns + 500u) / 1000u) / 1e3;
}

/*
 * Milliseconds from origin_ns to a recorded moment ns, as the answers
 * state task times: 0 for a moment never recorded (0) or before origin.
 */
static inline double clock_offset_ms(uint64_t origin_ns, uint64_t ns)
{
    if (ns == 0 || ns < origin_ns)
        return 0.0;
    return clock_ms_between(origin_ns, ns);
}

#endif
