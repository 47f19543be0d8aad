/*
 * registry: the list of demos, and what follows from their declarations:
 * parsing and checking a request's parameters, echoing them, and running
 * a worker job of any demo. To add a demo, add its `const struct demo`
 * (its own file) to demo_registry[] below.
 */
#include "demo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/app.h"
#include "../server/jsonr.h"
#include "../server/params.h"

extern const struct demo demo_prime, demo_square, demo_sleep, demo_fetch,
    demo_counter, demo_deadlock, demo_work;

/* One demo a line, so that added demos merge line by line. */
/* clang-format off */
const struct demo *const demo_registry[] = {
    &demo_prime,
    &demo_square,
    &demo_sleep,
    &demo_fetch,
    &demo_work,
    &demo_counter,
    &demo_deadlock,
};
/* clang-format on */

const size_t demo_count = sizeof(demo_registry) / sizeof(demo_registry[0]);

_Static_assert(sizeof(demo_registry) / sizeof(demo_registry[0]) <= DEMOS_MAX,
               "more demos than DEMOS_MAX");

const struct demo *demo_find(const char *name)
{
    for (size_t i = 0; i < demo_count; i++) {
        if (strcmp(demo_registry[i]->name, name) == 0)
            return demo_registry[i];
    }
    return NULL;
}

uint32_t demo_kind(const struct demo *d)
{
    for (size_t i = 0; i < demo_count; i++) {
        if (demo_registry[i] == d)
            return (uint32_t)i + 1;
    }
    return 0;
}

const struct demo *demo_of_kind(uint32_t kind)
{
    return kind >= 1 && kind <= demo_count ? demo_registry[kind - 1] : NULL;
}

bool demo_has_mode(const struct demo *d, enum engine_mode mode)
{
    for (size_t i = 0; i < d->n_modes; i++) {
        if (d->modes[i] == mode)
            return true;
    }
    return false;
}

int demo_param_index(const struct demo *d, const char *name)
{
    for (size_t i = 0; i < d->n_params; i++) {
        if (strcmp(d->params[i].name, name) == 0)
            return (int)i;
    }
    return -1;
}

int64_t demo_param_max(const struct demo *d, const struct demo_param *p,
                       int mode)
{
    if (mode != DEMO_ALL_MODES)
        return p->mode_max[mode] ? p->mode_max[mode] : p->max;
    int64_t max = p->max;
    for (size_t i = 0; i < d->n_modes; i++) {
        int64_t m = p->mode_max[d->modes[i]];
        if (m && m < max)
            max = m;
    }
    return max;
}

int64_t demo_param_default(const struct demo_param *p, const struct app *app)
{
    if (p->def_from == DEMO_DEF_WORKERS)
        return app->cfg->workers;
    return p->def;
}

/*
 * An integer parameter whose maximum a list declared before it caps
 * (max_count_of: square's tasks at most its numbers): the cap applies to
 * its maximum and its default alike.
 */
static void cap_by_count(const struct demo *d, size_t i,
                         const struct demo_args *a, int64_t *max, int64_t *def)
{
    const struct demo_param *dp = &d->params[i];
    int of = dp->max_count_of ? demo_param_index(d, dp->max_count_of) : -1;
    if (of >= 0 && (size_t)of < i) {
        int64_t count = (int64_t)a->n[of];
        *max = count < *max ? count : *max;
        *def = count < *def ? count : *def;
    }
}

int demo_parse(const struct demo *d, struct params *p, int mode,
               const struct app *app, struct demo_args *a, char *err,
               size_t err_len)
{
    memset(a, 0, sizeof(*a));
    for (size_t i = 0; i < d->n_params; i++) {
        const struct demo_param *dp = &d->params[i];
        int64_t max = demo_param_max(d, dp, mode);
        int rc = 0;
        a->given[i] = params_has(p, dp->name);
        if (dp->type == DEMO_INT) {
            int64_t def = demo_param_default(dp, app);
            cap_by_count(d, i, a, &max, &def);
            rc = params_int(p, dp->name, dp->min, max, def, &a->v[i]);
        } else if (dp->type == DEMO_REAL) {
            rc = params_real(p, dp->name, dp->rmin, dp->rmax, dp->rdef,
                             &a->r[i]);
        } else if (dp->type == DEMO_INT_LIST) {
            rc = params_int_list(p, dp->name, dp->min, max, dp->max_items,
                                 dp->def_list, &a->list[i], &a->n[i]);
        } else if (dp->type == DEMO_ENUM) {
            int choice = 0;
            rc = params_enum(p, dp->name, dp->values, demo_enum_count(dp),
                             (int)dp->def, &choice);
            a->v[i] = choice;
        } else {
            const char *values[dp->max_items ? dp->max_items : 1];
            rc = params_strings(p, dp->name, dp->max_items, values, &a->n[i]);
            if (rc == 0 && a->n[i]) {
                a->strings[i] = calloc(a->n[i], sizeof(char *));
                for (size_t k = 0; a->strings[i] && k < a->n[i]; k++) {
                    a->strings[i][k] = strdup(values[k]);
                    if (!a->strings[i][k])
                        rc = -ENOMEM;
                }
                if (!a->strings[i])
                    rc = -ENOMEM;
            }
        }
        if (rc == -ENOMEM) {
            snprintf(err, err_len, "out of memory");
            return 500;
        }
        if (rc < 0)
            return -EINVAL;
    }
    if (params_finish(p) < 0)
        return -EINVAL;
    if (d->check)
        return d->check(a,
                        mode == DEMO_ALL_MODES ? d->default_mode
                                               : (enum engine_mode)mode,
                        app, err, err_len);
    return 0;
}

size_t demo_enum_count(const struct demo_param *p)
{
    size_t n = 0;
    while (p->type == DEMO_ENUM && p->values && n < DEMO_ENUM_MAX &&
           p->values[n])
        n++;
    return n;
}

size_t demo_param_max_items_body(const struct demo_param *p)
{
    return p->max_items_body ? p->max_items_body : p->max_items;
}

/* A member of the wrong JSON type: what was expected, what came. */
static int wrong_type(struct params *p, const struct demo_param *dp,
                      const struct jsonr_member *m)
{
    static const char *const expected[] = {
        [DEMO_INT] = "an integer",
        [DEMO_INT_LIST] = "an array of integers",
        [DEMO_URLS] = "an array of strings",
        [DEMO_ENUM] = "a string",
        [DEMO_REAL] = "a number",
    };
    if (m->type == JSONR_ARRAY && m->mixed)
        return params_fail(p, "parameter '%s': item %zu is %s %s, expected %s",
                           dp->name, m->first_other + 1,
                           m->other == JSONR_INTEGER ||
                                   m->other == JSONR_ARRAY ||
                                   m->other == JSONR_OBJECT
                               ? "an"
                               : "a",
                           jsonr_type_names[m->other],
                           dp->type == DEMO_URLS ? "a string" : "an integer");
    if (m->type == JSONR_ARRAY && m->n_items > 0)
        return params_fail(p,
                           "parameter '%s': expected %s, got an array of "
                           "%ss",
                           dp->name, expected[dp->type],
                           jsonr_type_names[m->item]);
    return params_fail(p, "parameter '%s': expected %s, got %s %s", dp->name,
                       expected[dp->type],
                       m->type == JSONR_INTEGER || m->type == JSONR_ARRAY ||
                               m->type == JSONR_OBJECT
                           ? "an"
                           : "a",
                       jsonr_type_names[m->type]);
}

/* A list parameter's numbers, straight from the body's text. */
static int json_int_list(struct params *p, const struct jsonr_doc *doc,
                         const struct jsonr_member *m,
                         const struct demo_param *dp, int64_t max, int mode,
                         int64_t **take_out, size_t *n_out)
{
    /* A comparison holds every mode's answer at once (and parses each
     * result to compare it): it keeps the query's limit. */
    size_t max_items =
        mode == DEMO_ALL_MODES ? dp->max_items : demo_param_max_items_body(dp);
    if (m->n_items == 0)
        return params_fail(p,
                           "parameter '%s': an array of 1 to %zu "
                           "integers, got an empty array",
                           dp->name, max_items);
    if (m->n_items > max_items)
        return params_check_count(p, dp->name, m->n_items, max_items);
    int64_t *items = malloc(m->n_items * sizeof(*items));
    if (!items)
        return -ENOMEM;
    struct jsonr_iter it;
    enum jsonr_type type;
    const char *at;
    size_t len, i = 0;
    jsonr_iter_init(&it, doc, m);
    while (i < m->n_items && jsonr_next_item(&it, &type, &at, &len)) {
        if (params_check_item(p, dp->name, i, at, len, dp->min, max, max_items,
                              &items[i]) < 0) {
            free(items);
            return -EINVAL;
        }
        i++;
    }
    *take_out = items;
    *n_out = i;
    return 0;
}

/* A repeatable string parameter (URLs): copies, like params_strings(). */
static int json_strings(struct params *p, const struct jsonr_doc *doc,
                        const struct jsonr_member *m,
                        const struct demo_param *dp, char ***take_out,
                        size_t *n_out)
{
    size_t max_items = demo_param_max_items_body(dp);
    if (m->n_items == 0)
        return params_fail(p,
                           "parameter '%s': an array of 1 to %zu "
                           "strings, got an empty array",
                           dp->name, max_items);
    if (m->n_items > max_items)
        return params_fail(p, "parameter '%s': at most %zu values", dp->name,
                           max_items);
    char **out = calloc(m->n_items, sizeof(*out));
    if (!out)
        return -ENOMEM;
    struct jsonr_iter it;
    enum jsonr_type type;
    const char *at;
    size_t len, n = 0;
    int rc = 0;
    jsonr_iter_init(&it, doc, m);
    while (n < m->n_items && jsonr_next_item(&it, &type, &at, &len)) {
        if (len <= 2) {
            rc = params_fail(p, "parameter '%s': value %zu is empty", dp->name,
                             n + 1);
            break;
        }
        out[n] = jsonr_string_dup(at, len);
        if (!out[n]) {
            rc = -ENOMEM;
            break;
        }
        n++;
    }
    *take_out = out; /* freed by demo_args_cleanup() with *n_out */
    *n_out = n;
    return rc;
}

/* An enumeration: a JSON string naming one of dp->values; absent: def. */
static int json_enum(struct params *p, const struct jsonr_doc *doc,
                     const struct jsonr_member *m, const struct demo_param *dp,
                     int64_t *out)
{
    int choice = (int)dp->def;
    int rc = 0;
    if (m && m->type != JSONR_STRING)
        return params_fail(p, "parameter '%s': expected a string, got %s %s",
                           dp->name,
                           m->type == JSONR_INTEGER || m->type == JSONR_ARRAY ||
                                   m->type == JSONR_OBJECT
                               ? "an"
                               : "a",
                           jsonr_type_names[m->type]);
    if (m) {
        char *value = jsonr_string_dup(doc->text + m->at, m->end - m->at);
        if (!value)
            return -ENOMEM;
        rc = params_check_enum(p, dp->name, value, dp->values,
                               demo_enum_count(dp), &choice);
        free(value);
    }
    *out = choice;
    return rc;
}

int demo_parse_json(const struct demo *d, struct jsonr_doc *doc,
                    struct params *p, int mode, const struct app *app,
                    struct demo_args *a, char *err, size_t err_len)
{
    memset(a, 0, sizeof(*a));
    for (size_t i = 0; i < d->n_params; i++)
        params_expect(p, d->params[i].name);
    for (size_t k = 0; k < doc->n; k++) {
        for (size_t j = 0; j < k; j++) {
            if (strcmp(doc->members[j].key, doc->members[k].key) == 0) {
                params_fail(p, "parameter '%s' given more than once",
                            doc->members[k].key);
                return -EINVAL;
            }
        }
    }
    for (size_t k = 0; k < doc->n; k++) {
        if (!doc->members[k].taken &&
            demo_param_index(d, doc->members[k].key) < 0) {
            params_unknown(p, doc->members[k].key);
            return -EINVAL;
        }
    }
    for (size_t i = 0; i < d->n_params; i++) {
        const struct demo_param *dp = &d->params[i];
        int64_t max = demo_param_max(d, dp, mode);
        struct jsonr_member *m = NULL;
        int rc = 0;
        for (size_t k = 0; k < doc->n && !m; k++) {
            if (strcmp(doc->members[k].key, dp->name) == 0)
                m = &doc->members[k];
        }
        a->given[i] = m != NULL;
        if (m)
            m->taken = true;
        if (dp->type == DEMO_INT) {
            int64_t def = demo_param_default(dp, app);
            cap_by_count(d, i, a, &max, &def);
            if (!m)
                a->v[i] = def;
            else if (m->type != JSONR_INTEGER)
                rc = wrong_type(p, dp, m);
            else
                rc = params_check_int(p, dp->name, doc->text + m->at,
                                      m->end - m->at, dp->min, max, &a->v[i]);
        } else if (dp->type == DEMO_ENUM) {
            rc = json_enum(p, doc, m, dp, &a->v[i]);
        } else if (dp->type == DEMO_REAL) {
            if (!m)
                a->r[i] = dp->rdef;
            else if (m->type != JSONR_INTEGER && m->type != JSONR_NUMBER)
                rc = wrong_type(p, dp, m);
            else
                rc = params_check_real(p, dp->name, doc->text + m->at,
                                       m->end - m->at, dp->rmin, dp->rmax,
                                       &a->r[i]);
        } else if (!m && dp->type == DEMO_INT_LIST) {
            struct params def;
            params_parse(&def, "");
            rc = params_int_list(&def, dp->name, dp->min, max, dp->max_items,
                                 dp->def_list, &a->list[i], &a->n[i]);
            params_cleanup(&def);
        } else if (!m) {
            a->n[i] = 0;
        } else if (m->type != JSONR_ARRAY || m->mixed ||
                   (m->n_items > 0 &&
                    m->item != (dp->type == DEMO_URLS ? JSONR_STRING
                                                      : JSONR_INTEGER))) {
            rc = wrong_type(p, dp, m);
        } else if (dp->type == DEMO_INT_LIST) {
            rc = json_int_list(p, doc, m, dp, max, mode, &a->list[i], &a->n[i]);
        } else {
            rc = json_strings(p, doc, m, dp, &a->strings[i], &a->n[i]);
        }
        if (rc == -ENOMEM) {
            snprintf(err, err_len, "out of memory");
            return 500;
        }
        if (rc < 0)
            return -EINVAL;
    }
    if (d->check)
        return d->check(a,
                        mode == DEMO_ALL_MODES ? d->default_mode
                                               : (enum engine_mode)mode,
                        app, err, err_len);
    return 0;
}

void demo_args_cleanup(struct demo_args *a)
{
    for (size_t i = 0; i < DEMO_PARAMS_MAX; i++) {
        free(a->list[i]);
        if (a->strings[i]) {
            for (size_t k = 0; k < a->n[i]; k++)
                free(a->strings[i][k]);
            free(a->strings[i]);
        }
    }
    memset(a, 0, sizeof(*a));
}

void demo_write_params(struct jsonw *w, const struct demo *d,
                       const struct demo_args *a)
{
    jsonw_object(w);
    for (size_t i = 0; i < d->n_params; i++) {
        const struct demo_param *dp = &d->params[i];
        if (a->unused[i])
            continue;
        if (dp->type == DEMO_INT) {
            jsonw_key(w, dp->name);
            jsonw_int(w, a->v[i]);
        } else if (dp->type == DEMO_REAL) {
            jsonw_key(w, dp->name);
            jsonw_real(w, a->r[i]);
        } else if (dp->type == DEMO_INT_LIST) {
            jsonw_key(w, dp->name);
            jsonw_array(w);
            for (size_t k = 0; k < a->n[i]; k++)
                jsonw_int(w, a->list[i][k]);
            jsonw_end(w);
        } else if (dp->type == DEMO_ENUM) {
            jsonw_key(w, dp->name);
            jsonw_str(w, dp->values[a->v[i]]);
        } else {
            jsonw_key(w, dp->name);
            jsonw_array(w);
            for (size_t k = 0; k < a->n[i]; k++)
                jsonw_str(w, a->strings[i][k]);
            jsonw_end(w);
        }
    }
    jsonw_end(w);
}

int demo_worker_job(uint32_t kind, const void *params, uint32_t len, void *out,
                    uint32_t cap, uint32_t *out_len)
{
    const struct demo *d = demo_of_kind(kind);
    *out_len = 0;
    if (!d || !d->worker_job)
        return -EINVAL;
    return d->worker_job(params, len, out, cap, out_len);
}
