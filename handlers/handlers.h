/*
 * handlers: the endpoints, one file per family, and their registration.
 *
 * Every handler has the signature of handler_fn (request.h) and takes the
 * struct app as its ctx. Handlers run on request threads; they only read
 * the app.
 */
#ifndef CONLAB_HANDLERS_H
#define CONLAB_HANDLERS_H

#include <stdbool.h>

#include "../server/app.h"
#include "../server/request.h"
#include "../server/router.h"

struct params;

/*
 * Answers the 400 the query parser asked for (its message names the
 * parameter and what is accepted) and frees p. Returns HANDLER_DONE.
 */
enum handler_result handlers_reject_params(struct params *p,
                                           struct response *resp);

/*
 * For endpoints that take no parameters: when the query is not empty,
 * answers the parser's 400 ("unknown parameter ...") and returns true.
 */
bool handlers_refuse_query(const struct request *req, struct response *resp);

/*
 * Adds every endpoint to router. Start-up thread. Returns 0 or the first
 * router_add() error.
 */
int handlers_register(struct router *router, struct app *app);

struct jsonr_doc;

/*
 * A POST's JSON body, scanned into doc, with p made ready to carry the
 * parameters' messages (params_cleanup() it). A query string on a POST is
 * refused: the parameters come from one place. Returns 0, or -EINVAL with
 * resp filled (400: a query string, malformed JSON naming the byte, too
 * many members).
 */
int handlers_body_doc(const struct request *req, struct jsonr_doc *doc,
                      struct params *p, struct response *resp);

/*
 * params_enum() for a member of a JSON body: a string, one of choices;
 * def when absent. Marks the member taken. 0, or -EINVAL (message in p).
 */
int handlers_json_enum(struct jsonr_doc *doc, struct params *p,
                       const char *name, const char *const choices[],
                       size_t n_choices, int def, int *out);

/*
 * params_int() for a member of a JSON body: an integer in [min, max]; def
 * when absent. Marks the member taken. 0, or -EINVAL (message in p).
 */
int handlers_json_int(struct jsonr_doc *doc, struct params *p, const char *name,
                      int64_t min, int64_t max, int64_t def, int64_t *out);

/* GET /health: status, version, uptime and the pools. */
enum handler_result health_handle(struct request *req, struct response *resp,
                                  void *app);

/* GET /run/compare: one demo in each of its modes, as one table. */
enum handler_result compare_handle(struct request *req, struct response *resp,
                                   void *app);

/* GET /run/table: the tutorials' comparison table, measured (table.c). */
enum handler_result table_handle(struct request *req, struct response *resp,
                                 void *ctx);

/* GET /delay: answers after ms milliseconds, holding no thread. */
enum handler_result delay_handle(struct request *req, struct response *resp,
                                 void *app);

/*
 * The fetch demo's own target, and the one path the self listener serves
 * (http.h, HTTP_SELF_CONN_MEMORY).
 */
#define HANDLERS_SELF_TARGET "/delay"

/* GET /metrics: the Prometheus text exposition. */
enum handler_result metrics_handle(struct request *req, struct response *resp,
                                   void *app);

/* GET /openapi.json: the OpenAPI 3 document of this API. */
enum handler_result openapi_handle(struct request *req, struct response *resp,
                                   void *app);

/* GET of any other path: a file under the web root. */
enum handler_result static_handle(struct request *req, struct response *resp,
                                  void *app);

#endif
