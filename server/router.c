/*
 * router: see router.h. A small array searched linearly: a handful of
 * routes, read-only after start-up, needs nothing cleverer.
 */
#include "router.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "uri.h"

struct route {
    char pattern[ROUTER_PATH_MAX]; /* as added */
    char path[ROUTER_PATH_MAX];    /* for a prefix route, without the '*' */
    size_t path_len;
    bool prefix;
    unsigned methods;
    handler_fn handler;
    void *ctx;
};

struct router {
    size_t n;
    struct route routes[ROUTER_ROUTES_MAX];
};

static const struct route *match(const struct router *router, const char *path);

static const struct {
    enum http_method flag;
    const char *name;
} method_names[] = {
    {HTTP_GET, "GET"},     {HTTP_HEAD, "HEAD"},     {HTTP_POST, "POST"},
    {HTTP_PUT, "PUT"},     {HTTP_DELETE, "DELETE"}, {HTTP_OPTIONS, "OPTIONS"},
    {HTTP_PATCH, "PATCH"}, {HTTP_OTHER, "OTHER"},
};
_Static_assert(sizeof(method_names) / sizeof(method_names[0]) == HTTP_METHODS,
               "one name per method flag");

#define N_METHODS (sizeof(method_names) / sizeof(method_names[0]))

enum http_method http_method_parse(const char *name)
{
    for (size_t i = 0; i < N_METHODS - 1; i++) { /* not "OTHER" itself */
        if (strcmp(name, method_names[i].name) == 0)
            return method_names[i].flag;
    }
    return HTTP_OTHER;
}

const char *http_method_name(enum http_method method)
{
    for (size_t i = 0; i < N_METHODS; i++) {
        if (method_names[i].flag == method)
            return method_names[i].name;
    }
    return "OTHER";
}

const char *request_header(const struct request *req, const char *name)
{
    return req->header ? req->header(req, name) : NULL;
}

struct router *router_new(void)
{
    return calloc(1, sizeof(struct router));
}

void router_free(struct router *router)
{
    free(router);
}

int router_add(struct router *router, unsigned methods, const char *path,
               handler_fn handler, void *ctx)
{
    size_t len = strlen(path);
    if (methods == 0 || !handler || len == 0 || path[0] != '/' ||
        len >= ROUTER_PATH_MAX)
        return -EINVAL;
    if (router->n >= ROUTER_ROUTES_MAX)
        return -ENOSPC;

    bool prefix = len >= 2 && strcmp(path + len - 2, "/*") == 0;
    if (prefix)
        len--;
    for (size_t i = 0; i < router->n; i++) {
        const struct route *r = &router->routes[i];
        if (r->prefix == prefix && r->path_len == len &&
            strncmp(r->path, path, len) == 0)
            return -EEXIST;
    }

    struct route *r = &router->routes[router->n++];
    memcpy(r->pattern, path, strlen(path) + 1);
    memcpy(r->path, path, len);
    r->path[len] = '\0';
    r->path_len = len;
    r->prefix = prefix;
    r->methods = methods & HTTP_GET ? methods | HTTP_HEAD : methods;
    r->handler = handler;
    r->ctx = ctx;
    return 0;
}

enum handler_result router_dispatch(const struct router *router,
                                    struct request *req, struct response *resp)
{
    const struct route *r = match(router, req->path);
    char q[96];
    req->route = r ? (int)(r - router->routes) : -1;
    if (!r) {
        response_error(resp, 404, "no route for %s",
                       uri_quote(q, sizeof(q), req->path));
        return HANDLER_DONE;
    }
    if (!(r->methods & req->method)) {
        char allow[80];
        router_allow_text(r->methods, allow, sizeof(allow));
        response_error(resp, 405, "method not allowed on %s (allowed: %s)",
                       uri_quote(q, sizeof(q), req->path), allow);
        response_header(resp, "Allow", allow);
        return HANDLER_DONE;
    }
    return r->handler(req, resp, r->ctx);
}

bool router_allows(const struct router *router, const char *path,
                   enum http_method method, int *route_out)
{
    const struct route *r = match(router, path);
    *route_out = r ? (int)(r - router->routes) : -1;
    return r && (r->methods & method);
}

const char *router_route_path(const struct router *router, int id)
{
    if (id < 0 || (size_t)id >= router->n)
        return NULL;
    return router->routes[id].pattern;
}

char *router_allow_text(unsigned methods, char *out, size_t out_len)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < N_METHODS - 1 && used < out_len; i++) {
        if (methods & method_names[i].flag)
            used += (size_t)snprintf(out + used, out_len - used, "%s%s",
                                     used ? ", " : "", method_names[i].name);
    }
    return out;
}

static const struct route *match(const struct router *router, const char *path)
{
    const struct route *best = NULL;
    for (size_t i = 0; i < router->n; i++) {
        const struct route *r = &router->routes[i];
        if (!r->prefix) {
            if (strcmp(r->path, path) == 0)
                return r;
        } else if (strncmp(r->path, path, r->path_len) == 0 &&
                   (!best || r->path_len > best->path_len)) {
            best = r;
        }
    }
    return best;
}
