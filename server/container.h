/*
 * container: the one container_of of the service. Intrusive structures
 * (pool jobs, demo-thread tasks, loop timers and transfers) hand their
 * callbacks a pointer to the embedded member; this finds the owner.
 */
#ifndef CONLAB_CONTAINER_H
#define CONLAB_CONTAINER_H

#include <stddef.h>

#define container_of(ptr, type, member)                                        \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#endif
