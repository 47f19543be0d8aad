/*
 * openapi: GET /openapi.json, the OpenAPI 3 description of this API, and
 * the generator that makes its demo parts follow the registry.
 *
 * The base is api/openapi.json, built into the binary (openapi_data.S) so
 * that it is served whatever --web-root says. openapi_build() merges onto
 * it what the registry declares, and nothing else: for each demo its
 * parameters ("<demo>.<param>", "<demo>.mode"), the parameter lists,
 * summary and x-conlab-lesson/-label of its /run/<demo> operations; for
 * /run/compare the demo enumeration and one "compare.<param>" per
 * parameter name of any demo. Whatever the base says beyond that (prose,
 * examples, response schemas, extensions such as x-conlab-max-count-of)
 * survives; whatever the registry says overwrites the base, and an
 * extension the registry no longer implies (a default-from, a
 * max-by-mode) is removed. A parameter the registry does not declare any
 * more is removed with every reference to it, and so is the path of a
 * demo that left the registry: the document never claims what the
 * service refuses.
 *
 * The registry is checked on the way (bounds in order, defaults inside
 * them, known modes, one type per parameter name): a registry the
 * document cannot describe truthfully is an error at start-up.
 *
 * Threads: openapi_build() is pure. openapi_load() runs once on the
 * start-up thread; afterwards the kept text is only read, by any request
 * thread, until openapi_cleanup() at exit.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"
#include "handlers.h"
#include "openapi.h"

#define OPENAPI_PARAM_REF "#/components/parameters/"
#define OPENAPI_RUN_REF   "#/components/schemas/Run"
/* The run-wide `cores` parameter (run.c): in the base, listed by every
 * /run/<demo> and /run/compare. */
#define OPENAPI_CORES    "cores"
#define OPENAPI_KEY_MAX  128 /* "<demo>.<param>", "/run/<demo>", refs */
#define OPENAPI_TEXT_MAX 512 /* a generated description */
#define OPENAPI_DOC_MAX  (1024 * 1024) /* the served document's text */

extern const char openapi_json[];
extern const char openapi_json_end[];

/*
 * One build. Errors are sticky: the first one sets rc (and err) and
 * every later step does nothing, so that the steps read as a list.
 */
struct gen {
    json_t *doc;
    json_t *paths;  /* doc.paths */
    json_t *params; /* doc.components.parameters */
    json_t *schemas;
    const struct demo *const *demos;
    size_t n;
    int rc;
    char *err;
    size_t err_len;
};

/* The served text, set once at start-up (openapi_load()). */
static char *openapi_text;
static size_t openapi_text_len;

static void gen_fail(struct gen *g, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void gen_oom(struct gen *g);
static void set_new(struct gen *g, json_t *obj, const char *key, json_t *v);
static json_t *child_object(struct gen *g, json_t *parent, const char *key,
                            const char *where);
static bool key_of(struct gen *g, char *out, const char *a, const char *b,
                   const char *c);
static const struct demo *demo_named(const struct gen *g, const char *name,
                                     size_t len);
static const struct demo_param *param_named(const struct demo *d,
                                            const char *name);
static int64_t max_in_mode(const struct demo_param *p, enum engine_mode m);
static bool has_mode_max(const struct demo *d, const struct demo_param *p);
static int64_t largest_max(const struct demo *d, const struct demo_param *p);
static int64_t every_mode_max(const struct demo *d, const struct demo_param *p);
static json_t *int_list(struct gen *g, const struct demo *d,
                        const struct demo_param *p, const char *text,
                        const char *what);
static json_t *string_list(const char *text);
static void check_registry(struct gen *g);
static void check_param(struct gen *g, const struct demo *d,
                        const struct demo_param *p);
static json_t *param_schema(enum demo_param_type type, int64_t lo, int64_t hi,
                            size_t max_items, const struct demo_param *p);
static void set_style(struct gen *g, json_t *obj, enum demo_param_type type);
static void set_flag(struct gen *g, json_t *obj, const char *key, bool on);
static void remove_stale(struct gen *g);
static void gen_param(struct gen *g, const struct demo *d,
                      const struct demo_param *p);
static void gen_mode(struct gen *g, const struct demo *d);
static json_t *run_template(struct gen *g);
static json_t *ref_list(struct gen *g, const char *const keys[], size_t n);
static void set_parameters(struct gen *g, json_t *item, json_t *refs);
static void gen_path(struct gen *g, const struct demo *d);
static void gen_compare(struct gen *g);
static void gen_compare_param(struct gen *g, const char *name);
static void gen_live(struct gen *g);
static void gen_live_content(struct gen *g, json_t *item);
static void set_demo_enums(struct gen *g);
static json_t *demo_names(const struct gen *g);
static void prune_refs(struct gen *g);
static void prune_list(struct gen *g, json_t *list);
static json_t *build(const char *base, size_t base_len,
                     const struct demo *const demos[], size_t n, char *err,
                     size_t err_len, int *rc);

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

static void gen_fail(struct gen *g, int rc, const char *fmt, ...)
{
    if (g->rc)
        return;
    g->rc = rc;
    if (g->err && g->err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->err, g->err_len, fmt, ap);
        va_end(ap);
    }
}

static void gen_oom(struct gen *g)
{
    gen_fail(g, -ENOMEM, "openapi: out of memory");
}

/* obj[key] = v, taking v (NULL v: out of memory). */
static void set_new(struct gen *g, json_t *obj, const char *key, json_t *v)
{
    if (g->rc) {
        json_decref(v);
        return;
    }
    if (!v || json_object_set_new(obj, key, v) != 0)
        gen_oom(g);
}

/* parent[key] as an object, made when missing; NULL after an error. */
static json_t *child_object(struct gen *g, json_t *parent, const char *key,
                            const char *where)
{
    if (g->rc)
        return NULL;
    json_t *o = json_object_get(parent, key);
    if (o && !json_is_object(o)) {
        gen_fail(g, -EINVAL, "openapi: the base's %s is not an object", where);
        return NULL;
    }
    if (!o) {
        o = json_object();
        set_new(g, parent, key, o);
    }
    return g->rc ? NULL : o;
}

/* out = a b c (OPENAPI_KEY_MAX); false, with the error set, when longer. */
static bool key_of(struct gen *g, char *out, const char *a, const char *b,
                   const char *c)
{
    int len = snprintf(out, OPENAPI_KEY_MAX, "%s%s%s", a, b, c);
    if (len < 0 || len >= OPENAPI_KEY_MAX) {
        gen_fail(g, -EINVAL, "openapi: name too long: %s%s", a, b);
        return false;
    }
    return !g->rc;
}

static const struct demo *demo_named(const struct gen *g, const char *name,
                                     size_t len)
{
    for (size_t i = 0; i < g->n; i++) {
        const char *dn = g->demos[i]->name;
        if (strlen(dn) == len && memcmp(dn, name, len) == 0)
            return g->demos[i];
    }
    return NULL;
}

static const struct demo_param *param_named(const struct demo *d,
                                            const char *name)
{
    for (size_t i = 0; i < d->n_params; i++)
        if (strcmp(d->params[i].name, name) == 0)
            return &d->params[i];
    return NULL;
}

/* What the parameter (or each item of a list) accepts at most in m. */
static int64_t max_in_mode(const struct demo_param *p, enum engine_mode m)
{
    return p->mode_max[m] ? p->mode_max[m] : p->max;
}

static bool has_mode_max(const struct demo *d, const struct demo_param *p)
{
    for (size_t i = 0; i < d->n_modes; i++)
        if (p->mode_max[d->modes[i]])
            return true;
    return false;
}

/*
 * The largest value some mode accepts: the schema's maximum. It is p->max
 * unless every mode has a tighter bound; then max would claim a value
 * that no request can use.
 */
static int64_t largest_max(const struct demo *d, const struct demo_param *p)
{
    int64_t hi = INT64_MIN;
    for (size_t i = 0; i < d->n_modes; i++) {
        int64_t m = max_in_mode(p, d->modes[i]);
        if (m > hi)
            hi = m;
    }
    return hi;
}

/* What every mode of the demo accepts: what /run/compare can take. */
static int64_t every_mode_max(const struct demo *d, const struct demo_param *p)
{
    int64_t hi = INT64_MAX;
    for (size_t i = 0; i < d->n_modes; i++) {
        int64_t m = max_in_mode(p, d->modes[i]);
        if (m < hi)
            hi = m;
    }
    return hi;
}

/*
 * A comma list of integers ("1,2,3,4") as a JSON array, each within the
 * parameter's [min, max] and 1 .. max_items of them, as the service's
 * own parser would accept it; NULL with the error set otherwise.
 */
static json_t *int_list(struct gen *g, const struct demo *d,
                        const struct demo_param *p, const char *text,
                        const char *what)
{
    json_t *list = json_array();
    if (!list) {
        gen_oom(g);
        return NULL;
    }
    const char *s = text;
    for (;;) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || errno == ERANGE || v < p->min || v > p->max ||
            (*end != ',' && *end != '\0')) {
            gen_fail(g, -EINVAL,
                     "openapi: %s.%s: %s \"%s\" is not a list of integers "
                     "in [%lld, %lld]",
                     d->name, p->name, what, text, (long long)p->min,
                     (long long)p->max);
            goto out_free;
        }
        if (json_array_append_new(list, json_integer(v)) != 0) {
            gen_oom(g);
            goto out_free;
        }
        if (*end == '\0')
            break;
        s = end + 1;
    }
    if (json_array_size(list) > p->max_items) {
        gen_fail(g, -EINVAL, "openapi: %s.%s: %s has more than %zu items",
                 d->name, p->name, what, p->max_items);
        goto out_free;
    }
    return list;
out_free:
    json_decref(list);
    return NULL;
}

/* "a,b" as ["a", "b"] (a URL list's form value); NULL without memory. */
static json_t *string_list(const char *text)
{
    json_t *list = json_array();
    const char *s = text;
    while (list) {
        size_t len = strcspn(s, ",");
        if (json_array_append_new(list, json_stringn(s, len)) != 0) {
            json_decref(list);
            return NULL;
        }
        if (s[len] == '\0')
            break;
        s += len + 1;
    }
    return list;
}

/* ------------------------------------------------------------------ */
/* The registry's own consistency                                      */

static void check_registry(struct gen *g)
{
    for (size_t i = 0; i < g->n; i++) {
        if (!g->demos[i] || !g->demos[i]->name) {
            gen_fail(g, -EINVAL, "openapi: demo %zu has no name", i);
            return;
        }
    }
    for (size_t i = 0; i < g->n && !g->rc; i++) {
        const struct demo *d = g->demos[i];
        if (!d->name[0] || strchr(d->name, '.') || strchr(d->name, '/') ||
            strcmp(d->name, "compare") == 0) {
            gen_fail(g, -EINVAL, "openapi: demo %zu has no usable name", i);
            return;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(g->demos[j]->name, d->name) == 0)
                gen_fail(g, -EINVAL, "openapi: two demos named %s", d->name);
        if (d->n_params > DEMO_PARAMS_MAX || (d->n_params && !d->params))
            gen_fail(g, -EINVAL, "openapi: %s: %zu parameters", d->name,
                     d->n_params);
        if (d->n_modes == 0 || d->n_modes > ENGINE_MODES || !d->modes)
            gen_fail(g, -EINVAL, "openapi: %s: %zu modes", d->name, d->n_modes);
        bool default_found = false;
        for (size_t m = 0; m < d->n_modes && !g->rc; m++) {
            if ((unsigned)d->modes[m] >= ENGINE_MODES ||
                (m > 0 && d->modes[m] <= d->modes[m - 1]))
                gen_fail(g, -EINVAL,
                         "openapi: %s: modes not known, or not in "
                         "engine_mode order",
                         d->name);
            if (d->modes[m] == d->default_mode)
                default_found = true;
        }
        if (!default_found)
            gen_fail(g, -EINVAL,
                     "openapi: %s: the default mode is not one "
                     "of its modes",
                     d->name);
        for (size_t k = 0; k < d->n_params && !g->rc; k++)
            check_param(g, d, &d->params[k]);
    }
}

static void check_param(struct gen *g, const struct demo *d,
                        const struct demo_param *p)
{
    if (!p->name || !p->name[0] || strcmp(p->name, "mode") == 0 ||
        strcmp(p->name, "demo") == 0 || param_named(d, p->name) != p) {
        gen_fail(g, -EINVAL,
                 "openapi: %s: a parameter without a name, named mode or "
                 "demo, or named twice",
                 d->name);
        return;
    }
    if (p->type == DEMO_ENUM) {
        size_t n = demo_enum_count(p);
        if (n == 0 || (p->values && p->values[n]) || p->def < 0 ||
            (size_t)p->def >= n || p->form_value < 0 ||
            (size_t)p->form_value >= n)
            gen_fail(g, -EINVAL,
                     "openapi: %s.%s: an enumeration needs 1 to %d names "
                     "and a default and form value among them",
                     d->name, p->name, DEMO_ENUM_MAX);
    }
    for (size_t k = 0; k < g->n && !g->rc && p->type == DEMO_ENUM; k++) {
        const struct demo_param *q = param_named(g->demos[k], p->name);
        size_t n = demo_enum_count(p);
        bool same =
            q == NULL || q->type != DEMO_ENUM || demo_enum_count(q) == n;
        for (size_t i = 0; same && q && q->type == DEMO_ENUM && i < n; i++)
            same = strcmp(p->values[i], q->values[i]) == 0;
        if (!same)
            gen_fail(g, -EINVAL,
                     "openapi: %s.%s and %s.%s name different values: "
                     "/run/compare cannot describe both",
                     d->name, p->name, g->demos[k]->name, q->name);
    }
    if (p->type == DEMO_REAL &&
        (!(p->rmin <= p->rmax) || !(p->rdef >= p->rmin && p->rdef <= p->rmax) ||
         !(p->rform >= p->rmin && p->rform <= p->rmax)))
        gen_fail(g, -EINVAL,
                 "openapi: %s.%s: real bounds out of order, or a default or "
                 "form value outside them",
                 d->name, p->name);
    if (p->type == DEMO_REAL && has_mode_max(d, p))
        gen_fail(g, -EINVAL, "openapi: %s.%s: a real has one maximum", d->name,
                 p->name);
    if (p->type != DEMO_URLS && p->type != DEMO_ENUM && p->type != DEMO_REAL &&
        p->min > p->max)
        gen_fail(g, -EINVAL, "openapi: %s.%s: min %lld > max %lld", d->name,
                 p->name, (long long)p->min, (long long)p->max);
    if ((p->type == DEMO_INT_LIST || p->type == DEMO_URLS) && p->max_items == 0)
        gen_fail(g, -EINVAL, "openapi: %s.%s: a list without max_items",
                 d->name, p->name);
    for (size_t m = 0; m < d->n_modes && !g->rc; m++) {
        int64_t hi = p->mode_max[d->modes[m]];
        if (hi && (hi < p->min || hi > p->max))
            gen_fail(g, -EINVAL,
                     "openapi: %s.%s: the maximum in mode %s is outside "
                     "[min, max]",
                     d->name, p->name, engine_mode_names[d->modes[m]]);
    }
    if (p->type == DEMO_INT && p->def_from == DEMO_DEF_CONST &&
        (p->def < p->min || p->def > largest_max(d, p)))
        gen_fail(g, -EINVAL, "openapi: %s.%s: default %lld out of bounds",
                 d->name, p->name, (long long)p->def);
    if (p->type == DEMO_INT && p->form_value &&
        (p->form_value < p->min || p->form_value > largest_max(d, p)))
        gen_fail(g, -EINVAL, "openapi: %s.%s: form value %lld out of bounds",
                 d->name, p->name, (long long)p->form_value);
    /* A default from --workers is an integer's; a list's is def_list. */
    if (p->type != DEMO_INT && p->def_from != DEMO_DEF_CONST)
        gen_fail(g, -EINVAL,
                 "openapi: %s.%s: only an integer's default "
                 "comes from an option",
                 d->name, p->name);
    for (size_t k = 0; k < g->n && !g->rc; k++) {
        const struct demo_param *q = param_named(g->demos[k], p->name);
        if (q && q->type != p->type)
            gen_fail(g, -EINVAL,
                     "openapi: %s.%s and %s.%s differ in type: "
                     "/run/compare cannot describe both",
                     d->name, p->name, g->demos[k]->name, q->name);
    }
}

/* ------------------------------------------------------------------ */
/* Generation                                                          */

/*
 * The schema of a value (DEMO_INT) or of a list's items in [lo, hi]; of an
 * enumeration, p's names.
 */
static json_t *param_schema(enum demo_param_type type, int64_t lo, int64_t hi,
                            size_t max_items, const struct demo_param *p)
{
    switch (type) {
    case DEMO_ENUM: {
        json_t *names = json_array();
        for (size_t i = 0; names && i < demo_enum_count(p); i++) {
            if (json_array_append_new(names, json_string(p->values[i]))) {
                json_decref(names);
                names = NULL;
            }
        }
        return names ? json_pack("{s:s, s:o}", "type", "string", "enum", names)
                     : NULL;
    }
    case DEMO_INT:
        return json_pack("{s:s, s:s, s:I, s:I}", "type", "integer", "format",
                         "int64", "minimum", (json_int_t)lo, "maximum",
                         (json_int_t)hi);
    case DEMO_INT_LIST:
        return json_pack("{s:s, s:i, s:I, s:{s:s, s:s, s:I, s:I}}", "type",
                         "array", "minItems", 1, "maxItems",
                         (json_int_t)max_items, "items", "type", "integer",
                         "format", "int64", "minimum", (json_int_t)lo,
                         "maximum", (json_int_t)hi);
    case DEMO_URLS:
        return json_pack("{s:s, s:i, s:I, s:{s:s, s:s, s:i}}", "type", "array",
                         "minItems", 1, "maxItems", (json_int_t)max_items,
                         "items", "type", "string", "format", "uri",
                         "minLength", 1);
    case DEMO_REAL:
        break; /* real_schema() */
    }
    return NULL;
}

/* The schema of a real in [lo, hi]. */
static json_t *real_schema(double lo, double hi)
{
    return json_pack("{s:s, s:s, s:f, s:f}", "type", "number", "format",
                     "double", "minimum", lo, "maximum", hi);
}

/* How a list is written in the query: "1,2,3" or url=a&url=b. */
static void set_style(struct gen *g, json_t *obj, enum demo_param_type type)
{
    if (type == DEMO_INT || type == DEMO_ENUM || type == DEMO_REAL) {
        json_object_del(obj, "style");
        json_object_del(obj, "explode");
        return;
    }
    set_new(g, obj, "style", json_string("form"));
    set_new(g, obj, "explode", json_boolean(type == DEMO_URLS));
}

/* obj[key] = true when on, else no key at all. */
static void set_flag(struct gen *g, json_t *obj, const char *key, bool on)
{
    if (on)
        set_new(g, obj, key, json_true());
    else
        json_object_del(obj, key);
}

/*
 * The /run/ endpoints that are not demos (compare, overhead, table): the
 * base describes them by hand and they stay.
 */
static bool run_non_demo(const char *name, size_t len)
{
    static const char *const names[] = {"compare", "overhead", "table"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
            return true;
    }
    return false;
}

/*
 * Removes what the registry no longer declares: "<demo>.<param>" of a
 * registry demo without that parameter, "compare.<param>" that no demo
 * has, and the path and parameters of a /run/<x> that is not a demo any
 * more. Parameters of other endpoints ("delay.ms") are not the
 * registry's and stay.
 */
static void remove_stale(struct gen *g)
{
    const char *key;
    json_t *v;
    void *next;

    json_object_foreach_safe(g->params, next, key, v)
    {
        const char *dot = strchr(key, '.');
        if (!dot)
            continue;
        size_t plen = (size_t)(dot - key);
        const char *rest = dot + 1;
        const struct demo *d = demo_named(g, key, plen);
        bool stale = false;
        if (d) {
            stale = strcmp(rest, "mode") != 0 && !param_named(d, rest);
        } else if (plen == 7 && memcmp(key, "compare", 7) == 0) {
            /* demo and repeat are compare's own, not a demo's. */
            stale = strcmp(rest, "demo") != 0 && strcmp(rest, "repeat") != 0;
            for (size_t i = 0; i < g->n && stale; i++)
                stale = !param_named(g->demos[i], rest);
        } else if (!run_non_demo(key, plen)) {
            char path[OPENAPI_KEY_MAX];
            int len = snprintf(path, sizeof(path), "/run/%.*s", (int)plen, key);
            stale = len > 0 && len < (int)sizeof(path) &&
                    json_object_get(g->paths, path);
        }
        if (stale)
            json_object_del(g->params, key);
    }
    json_object_foreach_safe(g->paths, next, key, v)
    {
        if (strncmp(key, "/run/", 5) != 0 ||
            run_non_demo(key + 5, strlen(key + 5)))
            continue;
        if (!demo_named(g, key + 5, strlen(key + 5)))
            json_object_del(g->paths, key);
    }
}

/* components.parameters["<demo>.<param>"]. */
static void gen_param(struct gen *g, const struct demo *d,
                      const struct demo_param *p)
{
    char key[OPENAPI_KEY_MAX];
    if (!key_of(g, key, d->name, ".", p->name))
        return;
    json_t *obj = json_object_get(g->params, key);
    if (!json_is_object(obj)) {
        obj = json_object();
        set_new(g, g->params, key, obj);
        if (g->rc)
            return;
    }
    set_new(g, obj, "name", json_string(p->name));
    set_new(g, obj, "in", json_string("query"));
    set_new(g, obj, "required", json_false());
    if (p->doc)
        set_new(g, obj, "description", json_string(p->doc));
    set_style(g, obj, p->type);

    json_t *schema =
        p->type == DEMO_REAL
            ? real_schema(p->rmin, p->rmax)
            : param_schema(p->type, p->min, largest_max(d, p), p->max_items, p);
    if (schema && p->type == DEMO_ENUM)
        set_new(g, schema, "default", json_string(p->values[p->def]));
    if (schema && p->type == DEMO_REAL)
        set_new(g, schema, "default", json_real(p->rdef));
    if (schema && p->type == DEMO_INT && p->def_from == DEMO_DEF_CONST)
        set_new(g, schema, "default", json_integer(p->def));
    if (schema && p->type == DEMO_INT_LIST && p->def_list)
        set_new(g, schema, "default",
                int_list(g, d, p, p->def_list, "the default"));
    set_new(g, obj, "schema", schema);

    set_flag(g, obj, "x-conlab-scales-time", p->scales_time);
    if (p->def_from == DEMO_DEF_WORKERS)
        set_new(g, obj, "x-conlab-default-from", json_string("--workers"));
    else
        json_object_del(obj, "x-conlab-default-from");

    if (has_mode_max(d, p)) {
        json_t *by_mode = json_object();
        for (size_t i = 0; i < d->n_modes && by_mode; i++) {
            enum engine_mode m = d->modes[i];
            set_new(g, by_mode, engine_mode_names[m],
                    json_integer(max_in_mode(p, m)));
        }
        set_new(g, obj, "x-conlab-max-by-mode", by_mode);
    } else {
        json_object_del(obj, "x-conlab-max-by-mode");
    }

    json_t *form = NULL;
    if (p->type == DEMO_INT && p->form_value)
        form = json_integer(p->form_value);
    else if (p->type == DEMO_INT_LIST && p->form_list)
        form = int_list(g, d, p, p->form_list, "the form value");
    else if (p->type == DEMO_URLS && p->form_list)
        form = string_list(p->form_list);
    else if (p->type == DEMO_ENUM && p->form_value)
        form = json_string(p->values[p->form_value]);
    else if (p->type == DEMO_REAL && p->rform != 0)
        form = json_real(p->rform);
    if (p->type == DEMO_INT || p->type == DEMO_ENUM ? p->form_value != 0
        : p->type == DEMO_REAL                      ? p->rform != 0
                                                    : p->form_list != NULL)
        set_new(g, obj, "x-conlab-form-value", form);
    else
        json_object_del(obj, "x-conlab-form-value");
}

/* components.parameters["<demo>.mode"]. */
static void gen_mode(struct gen *g, const struct demo *d)
{
    char key[OPENAPI_KEY_MAX];
    if (!key_of(g, key, d->name, ".", "mode"))
        return;
    json_t *obj = json_object_get(g->params, key);
    if (!json_is_object(obj)) {
        obj = json_object();
        set_new(g, g->params, key, obj);
        if (g->rc)
            return;
    }
    set_new(g, obj, "name", json_string("mode"));
    set_new(g, obj, "in", json_string("query"));
    set_new(g, obj, "required", json_false());

    json_t *names = json_array();
    char text[OPENAPI_TEXT_MAX];
    size_t used = (size_t)snprintf(text, sizeof(text), "How the tasks run:");
    for (size_t i = 0; i < d->n_modes && names; i++) {
        const char *name = engine_mode_names[d->modes[i]];
        if (json_array_append_new(names, json_string(name)) != 0) {
            json_decref(names);
            names = NULL;
            break;
        }
        /* Cannot overflow: five mode names fit many times over. */
        used += (size_t)snprintf(text + used, sizeof(text) - used, "%s `%s`",
                                 i ? "," : "", name);
    }
    if (!json_is_string(json_object_get(obj, "description"))) {
        snprintf(text + used, sizeof(text) - used, " (default `%s`).",
                 engine_mode_names[d->default_mode]);
        set_new(g, obj, "description", json_string(text));
    }
    set_new(g, obj, "schema",
            names
                ? json_pack("{s:s, s:o, s:s}", "type", "string", "enum", names,
                            "default", engine_mode_names[d->default_mode])
                : NULL);
}

/*
 * A path item for a /run/<demo> the base lacks: a copy of the first
 * registry demo's item in the base (today /run/prime), else a minimal
 * one; without the copied demo's own prose. NULL after an error.
 */
static json_t *run_template(struct gen *g)
{
    json_t *src = NULL;
    char path[OPENAPI_KEY_MAX];
    for (size_t i = 0; i < g->n && !src; i++) {
        if (!key_of(g, path, "/run/", g->demos[i]->name, ""))
            return NULL;
        src = json_object_get(g->paths, path);
        if (!json_is_object(src) ||
            !json_is_object(json_object_get(src, "get")))
            src = NULL;
    }
    json_t *item =
        src ? json_deep_copy(src)
            : json_pack("{s:{s:[s], s:{s:{s:s, s:{s:{s:{}}}}}},"
                        " s:{s:[s], s:s, s:{s:{s:s}}}}",
                        "get", "tags", "demos", "responses", "200",
                        "description",
                        "The run: timings and per-task timeline.", "content",
                        "application/json", "schema", "head", "tags", "demos",
                        "summary", "Same as GET, without the body", "responses",
                        "200", "description", "As GET, headers only.");
    if (!item) {
        gen_oom(g);
        return NULL;
    }
    json_t *get = json_object_get(item, "get");
    json_object_del(get, "description");
    json_object_del(get, "summary");
    json_object_del(get, "x-conlab-lesson");
    json_object_del(get, "x-conlab-label");
    return item;
}

/* [{"$ref": "#/components/parameters/<key>"}, ...]; NULL after an error. */
static json_t *ref_list(struct gen *g, const char *const keys[], size_t n)
{
    json_t *list = json_array();
    if (!list)
        gen_oom(g);
    for (size_t i = 0; i < n && !g->rc; i++) {
        char ref[OPENAPI_KEY_MAX];
        if (key_of(g, ref, OPENAPI_PARAM_REF, keys[i], "") &&
            json_array_append_new(list, json_pack("{s:s}", "$ref", ref)) != 0)
            gen_oom(g);
    }
    if (g->rc) {
        json_decref(list);
        return NULL;
    }
    return list;
}

/* item.get.parameters and item.head.parameters = refs (taken). */
static void set_parameters(struct gen *g, json_t *item, json_t *refs)
{
    json_t *head = json_object_get(item, "head");
    if (json_is_object(head))
        set_new(g, head, "parameters", json_deep_copy(refs));
    set_new(g, json_object_get(item, "get"), "parameters", refs);
}

/* paths["/run/<demo>"]. */
static void gen_path(struct gen *g, const struct demo *d)
{
    char path[OPENAPI_KEY_MAX];
    if (!key_of(g, path, "/run/", d->name, ""))
        return;
    json_t *item = json_object_get(g->paths, path);
    if (!json_is_object(item) ||
        !json_is_object(json_object_get(item, "get"))) {
        item = run_template(g);
        json_t *get = json_object_get(item, "get");
        json_t *head = json_object_get(item, "head");
        char id[OPENAPI_KEY_MAX];
        if (!item || !key_of(g, id, "run", d->name, ""))
            goto out_free;
        id[3] =
            (char)(id[3] >= 'a' && id[3] <= 'z' ? id[3] - 'a' + 'A' : id[3]);
        set_new(g, get, "operationId", json_string(id));
        if (json_is_object(head)) {
            char head_id[OPENAPI_KEY_MAX];
            if (key_of(g, head_id, "head", "R", id + 1))
                set_new(g, head, "operationId", json_string(head_id));
        }
        json_t *ok = json_object_get(json_object_get(get, "responses"), "200");
        json_t *media =
            json_object_get(json_object_get(ok, "content"), "application/json");
        if (!json_is_object(json_object_get(g->schemas, "Run")))
            gen_fail(g, -EINVAL,
                     "openapi: the base has no Run schema for "
                     "%s",
                     path);
        else if (json_is_object(media))
            set_new(g, media, "schema",
                    json_pack("{s:s}", "$ref", OPENAPI_RUN_REF));
        set_new(g, g->paths, path, json_incref(item));
    out_free:
        json_decref(item);
        if (g->rc)
            return;
    }

    const char *keys[DEMO_PARAMS_MAX + 5];
    char names[DEMO_PARAMS_MAX + 1][OPENAPI_KEY_MAX];
    size_t n = 0;
    for (size_t i = 0; i < d->n_params; i++) {
        if (!key_of(g, names[n], d->name, ".", d->params[i].name))
            return;
        keys[n] = names[n];
        n++;
    }
    if (!key_of(g, names[n], d->name, ".", "mode"))
        return;
    keys[n] = names[n];
    n++;
    keys[n++] = OPENAPI_CORES; /* run-wide (run.c), every demo's */
    keys[n++] = "live.format";
    keys[n++] = "live.stream";
    keys[n++] = "X-Request-Id";
    set_parameters(g, item, ref_list(g, keys, n));

    json_t *get = json_object_get(item, "get");
    if (d->summary)
        set_new(g, get, "summary", json_string(d->summary));
    if (d->lesson)
        set_new(g, get, "x-conlab-lesson", json_string(d->lesson));
    else
        json_object_del(get, "x-conlab-lesson");
    if (d->label)
        set_new(g, get, "x-conlab-label", json_string(d->label));
    else
        json_object_del(get, "x-conlab-label");
}

/*
 * live.format and live.stream: the streamed forms of every run
 * (handlers/live.h), one pair of parameters shared by all run paths. The
 * dashboard asks for its stream itself: x-conlab-not-in-form keeps them
 * out of its forms.
 */
static void gen_live(struct gen *g)
{
    if (!json_is_object(json_object_get(g->params, "live.format")))
        set_new(g, g->params, "live.format",
                json_pack("{s:s, s:s, s:b, s:s, s:{s:s, s:[s,s,s]}}", "name",
                          "format", "in", "query", "x-conlab-not-in-form", 1,
                          "description",
                          "The form of the answer: json (the default), sse "
                          "(an event stream, as with Accept: "
                          "text/event-stream) or text (lines for a "
                          "terminal, as with Accept: text/plain; streamed "
                          "unless stream=0). The parameter wins over the "
                          "Accept header.",
                          "schema", "type", "string", "enum", "json", "sse",
                          "text"));
    if (!g->rc && !json_is_object(json_object_get(g->params, "live.stream")))
        set_new(g, g->params, "live.stream",
                json_pack("{s:s, s:s, s:b, s:s, s:{s:s, s:[s,s]}}", "name",
                          "stream", "in", "query", "x-conlab-not-in-form", 1,
                          "description",
                          "1: answer as the run goes (an event stream unless "
                          "format=text or Accept asks for text/plain); 0 "
                          "with format=text: the text in one body. An event "
                          "stream is always streamed; a JSON body never.",
                          "schema", "type", "string", "enum", "0", "1"));
}

/* The event stream and text media types of a run path's 200 answer. */
static void gen_live_content(struct gen *g, json_t *item)
{
    json_t *get = json_object_get(item, "get");
    json_t *ok = json_object_get(json_object_get(get, "responses"), "200");
    json_t *content = json_object_get(ok, "content");
    if (g->rc || !json_is_object(content))
        return;
    if (!json_is_object(json_object_get(content, "text/event-stream")))
        set_new(g, content, "text/event-stream",
                json_pack(
                    "{s:{s:s}, s:s}", "schema", "type", "string", "description",
                    "With stream=1, format=sse or Accept: text/event-stream: "
                    "server-sent events as the run goes. admitted {demo, "
                    "modes, lanes, estimate_ms, tasks, params}; mode {mode, "
                    "index, of, "
                    "phase: start|end, wall_ms at the end} per mode of a "
                    "comparison; task-start {mode, id, worker, start_ms}; "
                    "task-end {mode, id, worker, start_ms, end_ms, ok, and the "
                    "demo's task fields}; progress {mode, index, of, tasks, "
                    "started, done, elapsed_ms, and the demo's own figure: "
                    "prime's checked} at most every 500 ms while it "
                    "changes; coalesced {mode, task_start, task_end, lag_ms} "
                    "when the reader lags more than lag_ms behind the run "
                    "(those task events are not sent one by one); then final "
                    "(exactly the JSON body of the same request) or error (the "
                    "error shape, its status inside; the HTTP status is "
                    "already 200)."));
    if (!g->rc && !json_is_object(json_object_get(content, "text/plain")))
        set_new(g, content, "text/plain",
                json_pack("{s:{s:s}, s:s}", "schema", "type", "string",
                          "description",
                          "With format=text or Accept: text/plain: a line "
                          "per task start and end ('task 0 started on "
                          "thread 3 at 0.1 ms'), per mode and progress, "
                          "then a summary: a table of modes, wall times "
                          "and speedups and an ASCII timeline per mode (one "
                          "row per lane, within 80 columns). Chunked as "
                          "it happens unless stream=0."));
}

/*
 * compare.demo, compare.<param> and /run/compare's parameter lists, with
 * compare.repeat (compare's own, from the base) before X-Request-Id.
 */
static void gen_compare(struct gen *g)
{
    json_t *obj = json_object_get(g->params, "compare.demo");
    if (!json_is_object(obj)) {
        obj = json_pack("{s:s, s:s, s:b, s:s}", "name", "demo", "in", "query",
                        "required", 1, "description",
                        "The demo to run in each of its modes.");
        set_new(g, g->params, "compare.demo", obj);
        if (g->rc)
            return;
    }
    json_t *schema = json_object_get(obj, "schema");
    if (!json_is_object(schema)) {
        schema = json_pack("{s:s}", "type", "string");
        set_new(g, obj, "schema", schema);
    }
    if (!g->rc)
        set_new(g, schema, "enum", demo_names(g));

    /* Every parameter name, first seen first. */
    const char *keys[DEMOS_MAX * DEMO_PARAMS_MAX + 5];
    char names[DEMOS_MAX * DEMO_PARAMS_MAX][OPENAPI_KEY_MAX];
    size_t n = 0;
    keys[n++] = "compare.demo";
    for (size_t i = 0; i < g->n && !g->rc; i++) {
        const struct demo *d = g->demos[i];
        for (size_t k = 0; k < d->n_params && !g->rc; k++) {
            const char *name = d->params[k].name;
            bool seen = false;
            for (size_t j = 0; j < i && !seen; j++)
                seen = param_named(g->demos[j], name) != NULL;
            if (seen)
                continue;
            if (n - 1 >= DEMOS_MAX * DEMO_PARAMS_MAX) {
                gen_fail(g, -EINVAL, "openapi: over %d parameter names",
                         DEMOS_MAX * DEMO_PARAMS_MAX);
                return;
            }
            if (!key_of(g, names[n - 1], "compare.", name, ""))
                return;
            keys[n] = names[n - 1];
            n++;
            gen_compare_param(g, name);
        }
    }
    if (json_is_object(json_object_get(g->params, "compare.repeat")))
        keys[n++] = "compare.repeat";
    keys[n++] = OPENAPI_CORES;
    keys[n++] = "live.format";
    keys[n++] = "live.stream";
    keys[n++] = "X-Request-Id";
    if (g->rc)
        return;

    json_t *item = json_object_get(g->paths, "/run/compare");
    if (!json_is_object(item) ||
        !json_is_object(json_object_get(item, "get"))) {
        item = run_template(g);
        json_t *get = json_object_get(item, "get");
        json_t *head = json_object_get(item, "head");
        set_new(g, get, "operationId", json_string("runCompare"));
        if (json_is_object(head))
            set_new(g, head, "operationId", json_string("headRunCompare"));
        set_new(g, get, "x-conlab-runs", json_string("/run/{demo}"));
        json_t *ok = json_object_get(json_object_get(get, "responses"), "200");
        json_t *media =
            json_object_get(json_object_get(ok, "content"), "application/json");
        const char *ref = json_is_object(json_object_get(g->schemas, "Compare"))
                              ? "#/components/schemas/Compare"
                              : OPENAPI_RUN_REF;
        if (json_is_object(media))
            set_new(g, media, "schema", json_pack("{s:s}", "$ref", ref));
        set_new(g, g->paths, "/run/compare", json_incref(item));
        json_decref(item);
        if (g->rc)
            return;
    }
    set_parameters(g, item, ref_list(g, keys, n));
}

/*
 * compare.<name>: the union of the demos that have it. Its bounds are
 * what some demo accepts in every one of its modes (a comparison runs
 * them all), no default (each demo has its own).
 */
static void gen_compare_param(struct gen *g, const char *name)
{
    const struct demo_param *first = NULL;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    double rlo = INFINITY, rhi = -INFINITY;
    size_t max_items = 0;
    bool scales_time = false;
    json_t *demos = json_array();
    char text[OPENAPI_TEXT_MAX];
    size_t used = 0;
    text[0] = '\0';

    for (size_t i = 0; i < g->n && demos; i++) {
        const struct demo *d = g->demos[i];
        const struct demo_param *p = param_named(d, name);
        if (!p)
            continue;
        if (!first)
            first = p;
        if (p->min < lo)
            lo = p->min;
        if (every_mode_max(d, p) > hi)
            hi = every_mode_max(d, p);
        if (p->rmin < rlo)
            rlo = p->rmin;
        if (p->rmax > rhi)
            rhi = p->rmax;
        if (p->max_items > max_items)
            max_items = p->max_items;
        scales_time |= p->scales_time;
        if (json_array_append_new(demos, json_string(d->name)) != 0) {
            json_decref(demos);
            demos = NULL;
        }
        int len = snprintf(text + used, sizeof(text) - used, "%s%s",
                           used ? ", " : "", d->name);
        used = len < 0 || (size_t)len >= sizeof(text) - used ? sizeof(text)
                                                             : used + len;
    }
    if (!demos) {
        gen_oom(g);
        return;
    }

    char key[OPENAPI_KEY_MAX];
    if (!key_of(g, key, "compare.", name, "")) {
        json_decref(demos);
        return;
    }
    json_t *obj = json_object_get(g->params, key);
    if (!json_is_object(obj)) {
        obj = json_object();
        set_new(g, g->params, key, obj);
        if (g->rc) {
            json_decref(demos);
            return;
        }
    }
    set_new(g, obj, "name", json_string(name));
    set_new(g, obj, "in", json_string("query"));
    set_new(g, obj, "required", json_false());
    if (!json_is_string(json_object_get(obj, "description"))) {
        if (used < sizeof(text))
            snprintf(text + used, sizeof(text) - used, ": as that demo's `%s`.",
                     name);
        set_new(g, obj, "description", json_string(text));
    }
    set_style(g, obj, first->type);
    set_new(g, obj, "schema",
            first->type == DEMO_REAL
                ? real_schema(rlo, rhi)
                : param_schema(first->type, lo, hi, max_items, first));
    set_flag(g, obj, "x-conlab-scales-time", scales_time);
    json_object_del(obj, "x-conlab-default-from");
    json_object_del(obj, "x-conlab-max-by-mode");
    json_object_del(obj, "x-conlab-form-value");
    set_new(g, obj, "x-conlab-demos", demos);
}

/* ["prime", "square", ...]; NULL without memory. */
static json_t *demo_names(const struct gen *g)
{
    json_t *names = json_array();
    for (size_t i = 0; i < g->n && names; i++) {
        if (json_array_append_new(names, json_string(g->demos[i]->name))) {
            json_decref(names);
            names = NULL;
        }
    }
    return names;
}

/* The "demo" enumerations of the Run and Compare schemas, when present. */
static void set_demo_enums(struct gen *g)
{
    static const char *const schemas[] = {"Run", "Compare"};
    for (size_t i = 0; i < sizeof(schemas) / sizeof(schemas[0]); i++) {
        json_t *s = json_object_get(g->schemas, schemas[i]);
        json_t *demo =
            json_object_get(json_object_get(s, "properties"), "demo");
        if (json_is_object(demo) && json_object_get(demo, "enum"))
            set_new(g, demo, "enum", demo_names(g));
    }
}

/* Drops every reference to a parameter that is not in the components. */
static void prune_refs(struct gen *g)
{
    const char *path;
    json_t *item;
    json_object_foreach(g->paths, path, item)
    {
        const char *key;
        json_t *v;
        prune_list(g, json_object_get(item, "parameters"));
        json_object_foreach(item, key, v)
        {
            if (json_is_object(v))
                prune_list(g, json_object_get(v, "parameters"));
        }
    }
}

static void prune_list(struct gen *g, json_t *list)
{
    size_t prefix = strlen(OPENAPI_PARAM_REF);
    for (size_t i = 0; i < json_array_size(list);) {
        const char *ref =
            json_string_value(json_object_get(json_array_get(list, i), "$ref"));
        if (ref && strncmp(ref, OPENAPI_PARAM_REF, prefix) == 0 &&
            !json_object_get(g->params, ref + prefix)) {
            if (json_array_remove(list, i) != 0) {
                gen_oom(g);
                return;
            }
            continue;
        }
        i++;
    }
}

json_t *openapi_build(const char *base, size_t base_len,
                      const struct demo *const demos[], size_t n, char *err,
                      size_t err_len)
{
    int rc;
    return build(base, base_len, demos, n, err, err_len, &rc);
}

/* openapi_build(), saying in *rc why it failed (-EINVAL, -ENOMEM). */
static json_t *build(const char *base, size_t base_len,
                     const struct demo *const demos[], size_t n, char *err,
                     size_t err_len, int *rc)
{
    struct gen g = {.demos = demos, .n = n, .err = err, .err_len = err_len};
    json_error_t jerr;

    if (err && err_len)
        err[0] = '\0';
    if (n > DEMOS_MAX || (n && !demos)) {
        gen_fail(&g, -EINVAL, "openapi: %zu demos, at most %d", n, DEMOS_MAX);
        *rc = g.rc;
        return NULL;
    }
    g.doc = json_loadb(base, base_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(g.doc)) {
        gen_fail(&g, -EINVAL,
                 "openapi: the base is not a JSON object: %s "
                 "(line %d)",
                 g.doc ? "" : jerr.text, jerr.line);
        goto out_fail;
    }
    check_registry(&g);
    g.paths = child_object(&g, g.doc, "paths", "paths");
    json_t *components = child_object(&g, g.doc, "components", "components");
    g.params =
        child_object(&g, components, "parameters", "components.parameters");
    g.schemas = child_object(&g, components, "schemas", "components.schemas");
    if (!g.rc && !json_is_object(json_object_get(g.params, "X-Request-Id")))
        gen_fail(&g, -EINVAL,
                 "openapi: the base has no X-Request-Id "
                 "parameter");
    if (g.rc)
        goto out_fail;

    remove_stale(&g);
    gen_live(&g);
    for (size_t i = 0; i < n && !g.rc; i++) {
        const struct demo *d = demos[i];
        for (size_t k = 0; k < d->n_params; k++)
            gen_param(&g, d, &d->params[k]);
        gen_mode(&g, d);
        gen_path(&g, d);
    }
    gen_compare(&g);
    for (size_t i = 0; i < n && !g.rc; i++) {
        char path[OPENAPI_KEY_MAX];
        if (key_of(&g, path, "/run/", demos[i]->name, ""))
            gen_live_content(&g, json_object_get(g.paths, path));
    }
    gen_live_content(&g, json_object_get(g.paths, "/run/compare"));
    set_demo_enums(&g);
    prune_refs(&g);
    if (g.rc)
        goto out_fail;
    *rc = 0;
    return g.doc;

out_fail:
    json_decref(g.doc);
    *rc = g.rc;
    return NULL;
}

int openapi_load(const struct demo *const demos[], size_t n, char *err,
                 size_t err_len)
{
    size_t base_len = (size_t)(openapi_json_end - openapi_json);
    int rc;
    json_t *doc = build(openapi_json, base_len, demos, n, err, err_len, &rc);
    if (!doc)
        return rc;

    /* Indented like api/openapi.json, so that the two can be diffed. */
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (!text) {
        snprintf(err, err_len, "openapi: out of memory");
        return -ENOMEM;
    }
    size_t len = strlen(text);
    if (len + 1 > OPENAPI_DOC_MAX) {
        snprintf(err, err_len, "openapi: the document is %zu bytes, over %d",
                 len, OPENAPI_DOC_MAX);
        free(text);
        return -EINVAL;
    }
    char *served = realloc(text, len + 2);
    if (!served) {
        free(text);
        snprintf(err, err_len, "openapi: out of memory");
        return -ENOMEM;
    }
    served[len] = '\n';
    served[len + 1] = '\0';
    openapi_cleanup();
    openapi_text = served;
    openapi_text_len = len + 1;
    return 0;
}

void openapi_cleanup(void)
{
    free(openapi_text);
    openapi_text = NULL;
    openapi_text_len = 0;
}

enum handler_result openapi_handle(struct request *req, struct response *resp,
                                   void *ctx)
{
    (void)ctx;

    if (handlers_refuse_query(req, resp))
        return HANDLER_DONE;
    if (!openapi_text) {
        response_error(resp, 500, "the OpenAPI document was not built");
        return HANDLER_DONE;
    }
    char *copy = malloc(openapi_text_len);
    if (!copy) {
        response_error(resp, 500, "out of memory");
        return HANDLER_DONE;
    }
    memcpy(copy, openapi_text, openapi_text_len);
    response_body(resp, 200, CONTENT_TYPE_JSON, copy, openapi_text_len);
    return HANDLER_DONE;
}
