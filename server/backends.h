/*
 * backends: the engine's real back ends, one per mode, over the demo
 * thread pool (sequential, threads, gil), the prefork worker pool
 * (processes), the event loop (async) and the spawner (spawn: a fresh
 * process per task, spawner.h). See engine.h for the contract and
 * backends.c for how each feeds its pool.
 */
#ifndef CONLAB_BACKENDS_H
#define CONLAB_BACKENDS_H

#include "engine.h"

/* The back end of mode (a static table entry). */
const struct engine_backend *backends_for(enum engine_mode mode);

#endif
