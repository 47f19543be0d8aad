/*
 * job: the messages between the service and its worker processes, carried
 * in frames (frame.h). Plain structs copied as bytes: both ends are the
 * same binary on the same machine.
 */
#ifndef CONLAB_JOB_H
#define CONLAB_JOB_H

#include <stdint.h>

#include "prime.h"

enum job_msg { JOB_MSG_HELLO = 1, JOB_MSG_JOB = 2, JOB_MSG_RESULT = 3 };

/*
 * A job's kind is its demo's place in the registry (demo_kind()); these
 * name the first three for the pool's tests and the frame fuzzer, and
 * test_registry checks they still match.
 */
enum job_kind { JOB_PRIME = 1, JOB_SQUARE = 2, JOB_SLEEP = 3 };

/*
 * Jobs that are not a demo's: far above the registry's kinds. JOB_HOLD
 * (/run/overhead) reports in and holds its worker until release_ns.
 */
#define JOB_HOLD 0x10000u

#define JOB_PAYLOAD_MAX 80000 /* bytes of one job's parameters */

struct job_hello {
    int32_t pid;
};

/*
 * JOB_MSG_JOB: this header, then the kind's parameters. cores: the worker
 * pins itself to the first `cores` CPUs of its affinity for this job and
 * restores its mask after (cores.h); 0 runs it unpinned.
 */
struct job_request {
    uint64_t id;
    uint32_t kind;
    uint32_t len; /* bytes of parameters that follow */
    uint32_t cores;
    uint32_t pad;
};

struct job_hold {
    uint64_t release_ns; /* CLOCK_MONOTONIC */
};

struct job_sleep {
    uint64_t ms;
};

struct job_prime_result {
    uint64_t checked;
    uint64_t primes;
};

/* JOB_MSG_RESULT: this header, then the kind's result. */
struct job_reply {
    uint64_t id;
    int32_t status;    /* 0, or a negative errno */
    uint32_t len;      /* bytes of result that follow */
    uint64_t start_ns; /* CLOCK_MONOTONIC in the worker */
    uint64_t end_ns;
    uint64_t cpu_ns; /* the worker's CPU time for this job (its own clock) */
};

#endif
