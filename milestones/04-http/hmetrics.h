/* hmetrics.h - the HTTP engine's labelled metrics: request duration by route and status
 * class, upstream responses by backend and class, rate-limit refusals by route.
 *
 * Label cardinality is bounded by the config, never by requests: a series exists for each
 * (listener, route) and each (upstream, backend) the config names, times the four status
 * classes, and nothing a client sends can add one (a request no route matched has its own
 * series per listener, with route=""). The slots are laid out once, when gw04 prepares
 * (gw_hmetrics_new), and never change while the process runs: milestone 05, which swaps
 * configs, builds a new layout per generation (DESIGN.md: never index side tables by a
 * position in a config that can go away).
 *
 * Per worker and single writer, like every counter of the gateway (metrics.h): a worker
 * writes only its own slots (a relaxed load and store, no locked instruction on the request
 * path); a scrape adds the workers up (gw_hmetrics_write). */
#ifndef GW_HMETRICS_H
#define GW_HMETRICS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "metrics.h"

/* The status classes a response is counted in: 2xx, 3xx, 4xx, 5xx. */
#define GW_HMETRICS_NCLASSES 4

/* The class of STATUS: 0 for 2xx, 1 for 3xx, 2 for 4xx (499, a client that left before its
 * answer, included), 3 for 5xx and above (as gw_http_responses_total counts them); -1 for
 * an interim or invalid status (below 200), which no final answer has. */
int gw_hmetrics_class(unsigned status);

/* The class's label value ("2xx" .. "5xx"); CLASS in 0 .. GW_HMETRICS_NCLASSES - 1. */
const char *gw_hmetrics_class_name(int cls);

/* Where "no route" is asked for (gw_hmetrics_route_slot). */
#define GW_HMETRICS_NO_ROUTE SIZE_MAX

/* One worker's slots. Written by that worker only. */
typedef struct gw_hmetrics_worker_s {
    gw_histogram_t *duration;   /* [route slots * NCLASSES]: head received -> response end */
    gw_counter_t *limited;      /* [route slots]: 429 from the rate_limit middleware */
    gw_counter_t *upstream_res; /* [backend slots * NCLASSES]: response heads from backends */
} gw_hmetrics_worker_t;

typedef struct gw_hmetrics_s {
    const gw_config_t *cfg;
    size_t *route_base;        /* [nlisteners + 1]: listener L's routes are slots route_base[L] ..,
                                * then its "no route" slot, route_base[L + 1] - 1 */
    size_t *backend_base;      /* [nupstreams + 1]: upstream U's backends, in config order */
    size_t nroutes, nbackends; /* slots of each kind */
    unsigned nworkers;
    gw_hmetrics_worker_t *workers; /* [nworkers] */
} gw_hmetrics_t;

/* Lays out the slots of CFG (which must outlive the result) for NWORKERS workers, every
 * count zero. A tcp listener has only its "no route" slot (never written). Returns NULL when
 * out of memory. Before any worker starts. */
gw_hmetrics_t *gw_hmetrics_new(const gw_config_t *cfg, unsigned nworkers);
void gw_hmetrics_free(gw_hmetrics_t *m); /* NULL is fine */

/* The slot of route ROUTE (its index in the listener's list, or GW_HMETRICS_NO_ROUTE) of
 * listener LISTENER, and of backend BACKEND of upstream UPSTREAM. Indexes must be valid in
 * the config M was laid out for. */
size_t gw_hmetrics_route_slot(const gw_hmetrics_t *m, size_t listener, size_t route);
size_t gw_hmetrics_backend_slot(const gw_hmetrics_t *m, size_t upstream, size_t backend);

/* Recorders, on worker W's thread only. A status with no class (gw_hmetrics_class < 0) is
 * not recorded. */
void gw_hmetrics_request(gw_hmetrics_t *m, unsigned w, size_t route_slot, unsigned status,
                         uint64_t ns);
void gw_hmetrics_upstream_response(gw_hmetrics_t *m, unsigned w, size_t backend_slot,
                                   unsigned status);
void gw_hmetrics_rate_limited(gw_hmetrics_t *m, unsigned w, size_t route_slot);

/* Writes, summed over the workers, every series of the layout (zeros included, so a
 * dashboard's rate() has a series from the start):
 *   gw_http_request_duration_seconds{listener,route,class}   histogram, http listeners
 *   gw_http_upstream_responses_total{upstream,backend,class} counter
 *   gw_http_rate_limited_total{listener,route}                counter, routes only
 * Backends are named by their resolved address, as in gw_backend_* (02's backend name).
 * Any thread, while the workers run. */
void gw_hmetrics_write(const gw_hmetrics_t *m, gw_prom_t *p);

#endif
