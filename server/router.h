/*
 * router: maps a method and a path to a handler.
 *
 * Routes are exact paths ("/health") or prefixes written with a final
 * "/" and "*" ("/" plus "*" is the static-file fallback); an exact route
 * wins over a prefix, and a
 * longer prefix over a shorter one. HEAD is allowed wherever GET is.
 * Unknown paths are answered 404, known paths with another method 405 with
 * an Allow header, both in the API's JSON error shape.
 *
 * Built at start-up by one thread (router_add), then read-only: any number
 * of threads may call router_dispatch() at once.
 */
#ifndef CONLAB_ROUTER_H
#define CONLAB_ROUTER_H

#include <stdbool.h>

#include "request.h"

#define ROUTER_ROUTES_MAX 64
#define ROUTER_PATH_MAX   64

struct router;

/* A new, empty router, or NULL without memory. */
struct router *router_new(void);

/* Frees the router; router_free(NULL) does nothing. */
void router_free(struct router *router);

/*
 * Adds a route: methods is a mask of enum http_method (HTTP_GET implies
 * HTTP_HEAD). ctx is passed to the handler as is and stays the caller's.
 * Returns 0; -EINVAL for a bad path or empty mask; -EEXIST when the path is
 * already routed; -ENOSPC past ROUTER_ROUTES_MAX.
 */
int router_add(struct router *router, unsigned methods, const char *path,
               handler_fn handler, void *ctx);

/*
 * Sets req->route to the matched route's id (-1 when none matches) and runs
 * its handler, or fills resp with 404/405. Returns what the
 * handler returned (HANDLER_DONE for the router's own errors).
 */
enum handler_result router_dispatch(const struct router *router,
                                    struct request *req, struct response *resp);

/*
 * True when the route path matches allows method; *route_out gets that
 * route's id (-1 when none matches), as router_dispatch() would set it.
 * Any thread.
 */
bool router_allows(const struct router *router, const char *path,
                   enum http_method method, int *route_out);

/*
 * The path route id was added with ("/run/prime", "/" plus "*"), or NULL
 * past the last route. Route ids count from 0 in the order of router_add().
 */
const char *router_route_path(const struct router *router, int id);

/*
 * Writes the Allow header value for a method mask ("GET, HEAD, POST") into
 * out. Returns out.
 */
char *router_allow_text(unsigned methods, char *out, size_t out_len);

#endif
