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
#include "../server/params.h"

extern const struct demo demo_prime, demo_square, demo_sleep, demo_fetch;

const struct demo *const demo_registry[] = {
    &demo_prime,
    &demo_square,
    &demo_sleep,
    &demo_fetch,
};

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
            int of =
                dp->max_count_of ? demo_param_index(d, dp->max_count_of) : -1;
            if (of >= 0 && (size_t)of < i) {
                int64_t count = (int64_t)a->n[of];
                max = count < max ? count : max;
                def = count < def ? count : def;
            }
            rc = params_int(p, dp->name, dp->min, max, def, &a->v[i]);
        } else if (dp->type == DEMO_INT_LIST) {
            rc = params_int_list(p, dp->name, dp->min, max, dp->max_items,
                                 dp->def_list, &a->list[i], &a->n[i]);
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
        } else if (dp->type == DEMO_INT_LIST) {
            jsonw_key(w, dp->name);
            jsonw_array(w);
            for (size_t k = 0; k < a->n[i]; k++)
                jsonw_int(w, a->list[i][k]);
            jsonw_end(w);
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
