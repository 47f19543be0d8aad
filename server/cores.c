/*
 * cores: see cores.h.
 */
#include "cores.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static cpu_set_t all;
static int n_all;

static void capture(void)
{
    CPU_ZERO(&all);
    if (sched_getaffinity(0, sizeof(all), &all) != 0 || CPU_COUNT(&all) == 0)
        CPU_SET(0, &all);
    n_all = CPU_COUNT(&all);
}

int cores_count(void)
{
    pthread_once(&once, capture);
    return n_all;
}

void cores_mask(unsigned n, cpu_set_t *set)
{
    pthread_once(&once, capture);
    if (n == 0 || n >= (unsigned)n_all) {
        *set = all;
        return;
    }
    CPU_ZERO(set);
    unsigned taken = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && taken < n; cpu++) {
        if (CPU_ISSET(cpu, &all)) {
            CPU_SET(cpu, set);
            taken++;
        }
    }
}

int cores_pin_thread(unsigned n, cpu_set_t *saved)
{
    cpu_set_t set;
    int rc = pthread_getaffinity_np(pthread_self(), sizeof(*saved), saved);
    if (rc != 0)
        return -rc;
    cores_mask(n, &set);
    rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    return -rc;
}

void cores_restore_thread(const cpu_set_t *saved)
{
    pthread_setaffinity_np(pthread_self(), sizeof(*saved), saved);
}

int cores_pin_pid(pid_t pid, unsigned n)
{
    cpu_set_t set;
    cores_mask(n, &set);
    return sched_setaffinity(pid, sizeof(set), &set) == 0 ? 0 : -errno;
}
