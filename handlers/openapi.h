/*
 * openapi: the OpenAPI document this service serves at /openapi.json,
 * generated from the demo registry at start-up.
 *
 * api/openapi.json (built into the binary) is the base: hand-written text,
 * response schemas and the endpoints that are not demos. Every demo's
 * parameters, its /run/<name> path and /run/compare's parameters are
 * (re)generated onto it from the registry, so that the document states
 * exactly the bounds, defaults and modes the service enforces. The
 * committed api/openapi.json is kept equal to what this generates (the
 * integration test compares the served document with it), so a registry
 * change that the file does not follow shows as a failing test.
 */
#ifndef CONLAB_OPENAPI_H
#define CONLAB_OPENAPI_H

#include <jansson.h>
#include <stddef.h>

struct demo;

/*
 * Builds the served document: the base (base_len bytes of JSON, such as
 * the embedded api/openapi.json) with every demo's parameters, its
 * /run/<name> path and /run/compare's parameters generated from
 * demos[0..n). What the registry does not say is kept from the base;
 * parameters of demos the registry no longer declares are removed with
 * their references. Returns a new jansson object (the caller owns it), or
 * NULL with a message in err (a malformed base or registry, or no memory).
 * Any thread; it reads only its arguments.
 */
json_t *openapi_build(const char *base, size_t base_len,
                      const struct demo *const demos[], size_t n, char *err,
                      size_t err_len);

/*
 * Builds the document from the embedded base and demos[0..n) and keeps
 * its text for openapi_handle(). Returns 0, -EINVAL (err says why) or
 * -ENOMEM. Start-up thread, before serving.
 */
int openapi_load(const struct demo *const demos[], size_t n, char *err,
                 size_t err_len);

/*
 * openapi_load() with the registry (demo_registry, demo_count); in
 * openapi_init.c so that what links openapi.c need not link the registry.
 * Start-up thread, before serving.
 */
int openapi_init(char *err, size_t err_len);

/* Frees the kept text (at exit; openapi_handle() then answers 500). */
void openapi_cleanup(void);

#endif
