/*
 * cores: pinning threads and processes to the first n CPUs of the
 * service's own affinity, for the `cores` parameter of a run.
 *
 * "The first n" are counted in the affinity mask the process had when it
 * first asked (the service at start-up, before any pinning; a worker
 * process inherits the same mask, so both ends pick the same CPUs from a
 * number alone). Any thread: the mask is captured once (pthread_once).
 */
#ifndef CONLAB_CORES_H
#define CONLAB_CORES_H

#include <sched.h>
#include <stdbool.h>
#include <sys/types.h>

/* CPUs in the captured affinity mask (at least 1). */
int cores_count(void);

/* The first n of them into *set; n 0 or beyond them: all of them. */
void cores_mask(unsigned n, cpu_set_t *set);

/*
 * Pins the calling thread to the first n CPUs, keeping its mask in *saved.
 * Returns 0, or a negative errno (the thread is left as it was).
 */
int cores_pin_thread(unsigned n, cpu_set_t *saved);

/* Gives the calling thread back its saved mask. */
void cores_restore_thread(const cpu_set_t *saved);

/* Pins process pid (all its threads to come: a new process has one). */
int cores_pin_pid(pid_t pid, unsigned n);

#endif
