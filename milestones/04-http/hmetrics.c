/* hmetrics.c - see hmetrics.h. */
#include "04-http/hmetrics.h"

#include <stdlib.h>

#include "04-http/httpcfg.h"
#include "addr.h"

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

static size_t routes_of(const gw_listener_cfg_t *l)
{
    const gw_http_listener_cfg_t *lc = gw_http_listener_cfg(l);
    return lc != NULL ? lc->nroutes : 0;
}

/* see hmetrics.h */
gw_hmetrics_t *gw_hmetrics_new(const gw_config_t *cfg, unsigned nworkers)
{
    gw_hmetrics_t *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->cfg = cfg;
    m->nworkers = nworkers;
    m->route_base = calloc(cfg->nlisteners + 1, sizeof *m->route_base);
    m->backend_base = calloc(cfg->nupstreams + 1, sizeof *m->backend_base);
    m->workers = calloc(nworkers ? nworkers : 1, sizeof *m->workers);
    if (m->route_base == NULL || m->backend_base == NULL || m->workers == NULL)
        goto fail;
    for (size_t l = 0; l < cfg->nlisteners; l++) /* each listener's routes, then "no route" */
        m->route_base[l + 1] = m->route_base[l] + routes_of(&cfg->listeners[l]) + 1;
    for (size_t u = 0; u < cfg->nupstreams; u++)
        m->backend_base[u + 1] = m->backend_base[u] + cfg->upstreams[u].nbackends;
    m->nroutes = m->route_base[cfg->nlisteners];
    m->nbackends = m->backend_base[cfg->nupstreams];
    for (unsigned w = 0; w < nworkers; w++) {
        gw_hmetrics_worker_t *hw = &m->workers[w];
        /* calloc'd: zeroed memory is an empty histogram and a zero counter (metrics.h) */
        hw->duration = calloc(m->nroutes * GW_HMETRICS_NCLASSES + 1, sizeof *hw->duration);
        hw->limited = calloc(m->nroutes + 1, sizeof *hw->limited);
        hw->upstream_res =
            calloc(m->nbackends * GW_HMETRICS_NCLASSES + 1, sizeof *hw->upstream_res);
        if (hw->duration == NULL || hw->limited == NULL || hw->upstream_res == NULL)
            goto fail;
    }
    return m;
fail:
    gw_hmetrics_free(m);
    return NULL;
}

/* see hmetrics.h */
void gw_hmetrics_free(gw_hmetrics_t *m)
{
    if (m == NULL)
        return;
    for (unsigned w = 0; m->workers != NULL && w < m->nworkers; w++) {
        free(m->workers[w].duration);
        free(m->workers[w].limited);
        free(m->workers[w].upstream_res);
    }
    free(m->workers);
    free(m->route_base);
    free(m->backend_base);
    free(m);
}

/* see hmetrics.h */
size_t gw_hmetrics_route_slot(const gw_hmetrics_t *m, size_t listener, size_t route)
{
    if (route == GW_HMETRICS_NO_ROUTE)
        return m->route_base[listener + 1] - 1;
    return m->route_base[listener] + route;
}

/* see hmetrics.h */
size_t gw_hmetrics_backend_slot(const gw_hmetrics_t *m, size_t upstream, size_t backend)
{
    return m->backend_base[upstream] + backend;
}

/* see hmetrics.h */
void gw_hmetrics_request(gw_hmetrics_t *m, unsigned w, size_t route_slot, unsigned status,
                         uint64_t ns)
{
    int cls = gw_hmetrics_class(status);
    if (cls >= 0)
        gw_histogram_observe_ns(
            &m->workers[w].duration[route_slot * GW_HMETRICS_NCLASSES + (size_t)cls], ns);
}

/* see hmetrics.h */
void gw_hmetrics_upstream_response(gw_hmetrics_t *m, unsigned w, size_t backend_slot,
                                   unsigned status)
{
    int cls = gw_hmetrics_class(status);
    if (cls >= 0)
        gw_counter_inc(
            &m->workers[w].upstream_res[backend_slot * GW_HMETRICS_NCLASSES + (size_t)cls]);
}

/* see hmetrics.h */
void gw_hmetrics_rate_limited(gw_hmetrics_t *m, unsigned w, size_t route_slot)
{
    gw_counter_inc(&m->workers[w].limited[route_slot]);
}

/* ---- the scrape ---------------------------------------------------------------------------- */

static uint64_t sum_counter(const gw_hmetrics_t *m, size_t member, size_t i)
{
    uint64_t s = 0;
    for (unsigned w = 0; w < m->nworkers; w++) {
        const gw_counter_t *arr = *(gw_counter_t *const *)((const char *)&m->workers[w] + member);
        s += gw_counter_get(&arr[i]);
    }
    return s;
}

#define HM_SUM(m, field, i) sum_counter((m), offsetof(gw_hmetrics_worker_t, field), (i))

static void write_duration(const gw_hmetrics_t *m, gw_prom_t *p)
{
    const char *name = "gw_http_request_duration_seconds";
    gw_prom_family(p, name,
                   "HTTP requests from the request head received to the response end, by "
                   "route and status class (route \"\": no route matched)",
                   GW_PROM_HISTOGRAM);
    const gw_config_t *cfg = m->cfg;
    for (size_t l = 0; l < cfg->nlisteners; l++) {
        const gw_http_listener_cfg_t *lc = gw_http_listener_cfg(&cfg->listeners[l]);
        for (size_t r = 0; lc != NULL && r <= lc->nroutes; r++) {
            size_t slot = gw_hmetrics_route_slot(m, l, r < lc->nroutes ? r : GW_HMETRICS_NO_ROUTE);
            for (int k = 0; k < GW_HMETRICS_NCLASSES; k++) {
                gw_histogram_t sum;
                gw_histogram_init(&sum);
                for (unsigned w = 0; w < m->nworkers; w++)
                    gw_histogram_merge(
                        &sum, &m->workers[w].duration[slot * GW_HMETRICS_NCLASSES + (size_t)k]);
                const char *lab[] = {"listener", cfg->listeners[l].name,
                                     "route",    r < lc->nroutes ? lc->routes[r].name : "",
                                     "class",    gw_hmetrics_class_name(k),
                                     NULL};
                gw_prom_histogram(p, name, lab, &sum);
            }
        }
    }
}

static void write_upstream_responses(const gw_hmetrics_t *m, gw_prom_t *p)
{
    const char *name = "gw_http_upstream_responses_total";
    gw_prom_family(p, name, "HTTP response heads received from backends, by status class",
                   GW_PROM_COUNTER);
    const gw_config_t *cfg = m->cfg;
    for (size_t u = 0; u < cfg->nupstreams; u++)
        for (size_t b = 0; b < cfg->upstreams[u].nbackends; b++) {
            char addr[GW_ADDR_STRLEN];
            gw_addr_format(&cfg->upstreams[u].backends[b].addr, addr, sizeof addr);
            size_t slot = gw_hmetrics_backend_slot(m, u, b);
            for (int k = 0; k < GW_HMETRICS_NCLASSES; k++) {
                const char *lab[] = {"upstream", cfg->upstreams[u].name,    "backend", addr,
                                     "class",    gw_hmetrics_class_name(k), NULL};
                gw_prom_sample_u64(
                    p, name, lab, HM_SUM(m, upstream_res, slot * GW_HMETRICS_NCLASSES + (size_t)k));
            }
        }
}

static void write_rate_limited(const gw_hmetrics_t *m, gw_prom_t *p)
{
    const char *name = "gw_http_rate_limited_total";
    gw_prom_family(p, name, "HTTP requests refused with 429 by a route's rate_limit middleware",
                   GW_PROM_COUNTER);
    const gw_config_t *cfg = m->cfg;
    for (size_t l = 0; l < cfg->nlisteners; l++) {
        const gw_http_listener_cfg_t *lc = gw_http_listener_cfg(&cfg->listeners[l]);
        for (size_t r = 0; lc != NULL && r < lc->nroutes; r++) {
            const char *lab[] = {"listener", cfg->listeners[l].name, "route", lc->routes[r].name,
                                 NULL};
            gw_prom_sample_u64(p, name, lab, HM_SUM(m, limited, gw_hmetrics_route_slot(m, l, r)));
        }
    }
}

/* see hmetrics.h */
void gw_hmetrics_write(const gw_hmetrics_t *m, gw_prom_t *p)
{
    write_duration(m, p);
    write_upstream_responses(m, p);
    write_rate_limited(m, p);
}
