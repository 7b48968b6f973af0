/* hmetrics.c - see hmetrics.h. */
#include "04-http/hmetrics.h"

#include <stdlib.h>

#include "04-http/httpcfg.h"

/* see hmetrics.h */
int gw_hmetrics_class(unsigned status)
{
    if (status < 200)
        return -1;
    if (status >= 500)
        return 3;
    return (int)(status / 100) - 2;
}

/* see hmetrics.h */
const char *gw_hmetrics_class_name(int cls)
{
    static const char *const names[GW_HMETRICS_NCLASSES] = {"2xx", "3xx", "4xx", "5xx"};
    return cls >= 0 && cls < GW_HMETRICS_NCLASSES ? names[cls] : "";
}

/* ---- the engine's series -------------------------------------------------------------------- */

/* see hmetrics.h */
gw_hmetrics_t *gw_hmetrics_new(unsigned nworkers, gw_hmetrics_backend_fn backend_of)
{
    gw_hmetrics_t *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->nworkers = nworkers;
    m->backend_of = backend_of;
    m->routes = gw_kcount_new(nworkers, sizeof(gw_hm_route_block_t));
    if (m->routes == NULL) {
        free(m);
        return NULL;
    }
    return m;
}

/* see hmetrics.h */
void gw_hmetrics_free(gw_hmetrics_t *m)
{
    if (m == NULL)
        return;
    gw_kcount_free(m->routes);
    free(m);
}

static size_t routes_of(const gw_listener_cfg_t *l)
{
    const gw_http_listener_cfg_t *lc = gw_http_listener_cfg(l);
    return lc != NULL ? lc->nroutes : 0;
}

static const char *name_of(const gw_listener_cfg_t *l)
{
    return l->name != NULL ? l->name : "";
}

/* see hmetrics.h */
void gw_hmetrics_gen_free(gw_hmetrics_t *m, gw_hmetrics_gen_t *v)
{
    if (v == NULL)
        return;
    for (size_t l = 0; v->routes != NULL && l < v->cfg->nlisteners; l++) {
        if (v->routes[l] == NULL)
            continue;
        for (size_t r = 0; r <= routes_of(&v->cfg->listeners[l]); r++)
            gw_kcount_put(m->routes, v->routes[l][r]);
        free(v->routes[l]);
    }
    free(v->routes);
    free(v);
}

/* see hmetrics.h */
gw_hmetrics_gen_t *gw_hmetrics_gen_new(gw_hmetrics_t *m, const gw_config_t *cfg)
{
    gw_hmetrics_gen_t *v = calloc(1, sizeof *v);
    if (v == NULL)
        return NULL;
    v->cfg = cfg;
    v->routes = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof *v->routes);
    if (v->routes == NULL)
        goto fail;
    for (size_t l = 0; l < cfg->nlisteners; l++) {
        const gw_http_listener_cfg_t *lc = gw_http_listener_cfg(&cfg->listeners[l]);
        if (lc == NULL) /* a tcp listener: no route series */
            continue;
        /* calloc'd: a partial row frees cleanly (gw_kcount_put ignores NULL) */
        if ((v->routes[l] = calloc(lc->nroutes + 1, sizeof **v->routes)) == NULL)
            goto fail;
        for (size_t r = 0; r <= lc->nroutes; r++) {
            const char *route = r < lc->nroutes ? lc->routes[r].name : NULL;
            v->routes[l][r] = gw_kcount_get(m->routes, name_of(&cfg->listeners[l]), route);
            if (v->routes[l][r] == NULL)
                goto fail;
        }
    }
    return v;
fail:
    gw_hmetrics_gen_free(m, v);
    return NULL;
}

/* see hmetrics.h */
gw_hm_series_t *gw_hmetrics_route(const gw_hmetrics_gen_t *v, size_t listener, size_t route)
{
    return v
        ->routes[listener]
                [route == GW_HMETRICS_NO_ROUTE ? routes_of(&v->cfg->listeners[listener]) : route];
}

static gw_hm_route_block_t *route_block(const gw_hm_series_t *ser, unsigned w)
{
    return gw_kcount_block(ser, w);
}

/* see hmetrics.h */
void gw_hmetrics_request(gw_hm_series_t *route, unsigned w, unsigned status, uint64_t ns)
{
    int cls = gw_hmetrics_class(status);
    if (cls >= 0)
        gw_histogram_observe_ns(&route_block(route, w)->duration[cls], ns);
}

/* see hmetrics.h */
void gw_hmetrics_upstream_response(gw_hmetrics_backend_t *c, unsigned status)
{
    int cls = gw_hmetrics_class(status);
    if (cls >= 0)
        gw_counter_inc(&c->res[cls]);
}

/* see hmetrics.h */
void gw_hmetrics_rate_limited(gw_hm_series_t *route, unsigned w)
{
    gw_counter_inc(&route_block(route, w)->limited);
}

/* ---- the scrape ---------------------------------------------------------------------------- */

static void write_duration(const gw_hmetrics_t *m, const gw_hmetrics_gen_t *v, gw_prom_t *p)
{
    const char *name = "gw_http_request_duration_seconds";
    gw_prom_family(p, name,
                   "HTTP requests from the request head received to the response end, by "
                   "route and status class (route \"\": no route matched)",
                   GW_PROM_HISTOGRAM);
    const gw_config_t *cfg = v->cfg;
    for (size_t l = 0; l < cfg->nlisteners; l++) {
        const gw_http_listener_cfg_t *lc = gw_http_listener_cfg(&cfg->listeners[l]);
        for (size_t r = 0; lc != NULL && r <= lc->nroutes; r++) {
            const gw_hm_series_t *ser = v->routes[l][r];
            for (int k = 0; k < GW_HMETRICS_NCLASSES; k++) {
                gw_histogram_t sum;
                gw_histogram_init(&sum);
                for (unsigned w = 0; w < m->nworkers; w++)
                    gw_histogram_merge(&sum, &route_block(ser, w)->duration[k]);
                const char *lab[] = {"listener", name_of(&cfg->listeners[l]),
                                     "route",    r < lc->nroutes ? lc->routes[r].name : "",
                                     "class",    gw_hmetrics_class_name(k),
                                     NULL};
                gw_prom_histogram(p, name, lab, &sum);
            }
        }
    }
}

static void write_upstream_responses(const gw_hmetrics_t *m, const gw_lb_table_t *t, gw_prom_t *p)
{
    const char *name = "gw_http_upstream_responses_total";
    gw_prom_family(p, name, "HTTP response heads received from backends, by status class",
                   GW_PROM_COUNTER);
    for (size_t u = 0; t != NULL && u < t->n; u++)
        for (size_t i = 0; i < t->ups[u].n; i++) {
            const gw_backend_t *b = t->ups[u].m[i].b;
            for (int k = 0; k < GW_HMETRICS_NCLASSES; k++) {
                uint64_t sum = 0;
                for (unsigned w = 0; w < m->nworkers; w++)
                    sum += gw_counter_get(&m->backend_of(b, w)->res[k]);
                const char *lab[] = {"upstream", t->ups[u].cfg->name,       "backend", b->name,
                                     "class",    gw_hmetrics_class_name(k), NULL};
                gw_prom_sample_u64(p, name, lab, sum);
            }
        }
}

static void write_rate_limited(const gw_hmetrics_t *m, const gw_hmetrics_gen_t *v, gw_prom_t *p)
{
    const char *name = "gw_http_rate_limited_total";
    gw_prom_family(p, name, "HTTP requests refused with 429 by a route's rate_limit middleware",
                   GW_PROM_COUNTER);
    const gw_config_t *cfg = v->cfg;
    for (size_t l = 0; l < cfg->nlisteners; l++) {
        const gw_http_listener_cfg_t *lc = gw_http_listener_cfg(&cfg->listeners[l]);
        for (size_t r = 0; lc != NULL && r < lc->nroutes; r++) {
            uint64_t sum = 0;
            for (unsigned w = 0; w < m->nworkers; w++)
                sum += gw_counter_get(&route_block(v->routes[l][r], w)->limited);
            const char *lab[] = {"listener", name_of(&cfg->listeners[l]), "route",
                                 lc->routes[r].name, NULL};
            gw_prom_sample_u64(p, name, lab, sum);
        }
    }
}

/* see hmetrics.h */
void gw_hmetrics_write(const gw_hmetrics_t *m, const gw_hmetrics_gen_t *v, const gw_lb_table_t *t,
                       gw_prom_t *p)
{
    write_duration(m, v, p);
    write_upstream_responses(m, t, p);
    write_rate_limited(m, v, p);
}
