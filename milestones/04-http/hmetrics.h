/* hmetrics.h - the HTTP engine's labelled metrics: request duration by route and status
 * class, upstream responses by backend and class, rate-limit refusals by route.
 *
 * Label cardinality is bounded by the config, never by requests: a series exists for each
 * (listener, route) and each (upstream, backend) the serving generation names, times the
 * four status classes, and nothing a client sends can add one (a request no route matched
 * has its own series per listener, with route="").
 *
 * Reloads (issue 17). No slot is a position in a config: positions change from one
 * generation to the next, and a side table indexed by them would be read with the wrong
 * generation's positions after a reload (DESIGN.md). Instead each series lives in an object
 * of its own and is found through the generation that uses it:
 *   - a backend's counters live in the backend object (02's identity, backend.h), in 04's
 *     extension block, so a backend a reload keeps keeps its counts, exactly, and one it
 *     removes takes them away with it (gw_hmetrics_backend_t, reached through the
 *     gw_hmetrics_backend_fn the engine gives);
 *   - a route's series are carried by key, (listener name, route name): each generation has a
 *     view (gw_hmetrics_gen_t) whose slots point at series objects it shares with the other
 *     generations that name the same route, held by reference (kcount.h, the registry of
 *     every counter carried by key: gw_kcount_get, gw_kcount_put, on the control thread). The
 *     last view to let go frees the series, so a removed route leaves /metrics.
 *
 * Per worker and single writer, like every counter of the gateway (metrics.h): a worker
 * writes only its own block of a series (a relaxed load and store, no locked instruction on
 * the request path), each block on cache lines of its own; a scrape adds the workers up
 * (gw_hmetrics_write). A worker reaches a series only through a generation it has pinned
 * (its exchange's), so the series outlives every write. */
#ifndef GW_HMETRICS_H
#define GW_HMETRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "02-lb/lb.h"
#include "04-http/kcount.h"
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

/* A route's series: an entry of kcount.h (key (listener name, route name), K2 NULL for "no
 * route"), whose worker blocks are gw_hm_route_block_t. */
typedef gw_kcount_entry_t gw_hm_series_t;

/* ---- the engine's series -------------------------------------------------------------------- */

/* One worker's block of a route series. */
typedef struct gw_hm_route_block_s {
    gw_histogram_t duration[GW_HMETRICS_NCLASSES]; /* head received -> response end */
    gw_counter_t limited;                          /* 429 from the rate_limit middleware */
} gw_hm_route_block_t;

/* One worker's counters of one backend: response heads by class. The engine keeps one per
 * worker in the backend's extension block (hproxy-int.h's hp_bslot_t). */
typedef struct gw_hmetrics_backend_s {
    gw_counter_t res[GW_HMETRICS_NCLASSES];
} gw_hmetrics_backend_t;

/* Where worker W's counters of backend B are (a scrape sums them over the workers). */
typedef const gw_hmetrics_backend_t *(*gw_hmetrics_backend_fn)(const gw_backend_t *b, unsigned w);

typedef struct gw_hmetrics_s {
    unsigned nworkers;
    gw_kcount_t *routes; /* gw_hm_route_block_t, by (listener name, route name; NULL: no route) */
    gw_hmetrics_backend_fn backend_of;
} gw_hmetrics_t;

/* The metrics of NWORKERS workers, with no series yet; BACKEND_OF finds a backend's
 * counters. NULL when out of memory. Before any worker starts. */
gw_hmetrics_t *gw_hmetrics_new(unsigned nworkers, gw_hmetrics_backend_fn backend_of);
/* After every view is freed. NULL is fine. */
void gw_hmetrics_free(gw_hmetrics_t *m);

/* One generation's view: the route series of each of its listeners, by position in ITS
 * config (valid with this view only). */
typedef struct gw_hmetrics_gen_s {
    const gw_config_t *cfg;
    gw_hm_series_t ***routes; /* [nlisteners]: an http listener's [nroutes + 1], "no route"
                               * last; NULL for a tcp listener */
} gw_hmetrics_gen_t;

/* The view of CFG (which must outlive it): every route of CFG's http listeners takes the
 * series of its (listener name, route name) from M, the one an earlier view made when there
 * is one. Control thread. NULL when out of memory (nothing is then held). */
gw_hmetrics_gen_t *gw_hmetrics_gen_new(gw_hmetrics_t *m, const gw_config_t *cfg);
/* Gives V's series back (a series no other view holds is freed) and frees V. Control
 * thread; NULL is fine. */
void gw_hmetrics_gen_free(gw_hmetrics_t *m, gw_hmetrics_gen_t *v);

/* Where "no route" is asked for (gw_hmetrics_route). */
#define GW_HMETRICS_NO_ROUTE SIZE_MAX

/* The series of route ROUTE (its index in the listener's list, or GW_HMETRICS_NO_ROUTE) of
 * http listener LISTENER, positions in V's config. */
gw_hm_series_t *gw_hmetrics_route(const gw_hmetrics_gen_t *v, size_t listener, size_t route);

/* Recorders, on worker W's thread only, into a series of a generation W has pinned. A
 * status with no class (gw_hmetrics_class < 0) is not recorded. */
void gw_hmetrics_request(gw_hm_series_t *route, unsigned w, unsigned status, uint64_t ns);
void gw_hmetrics_rate_limited(gw_hm_series_t *route, unsigned w);
void gw_hmetrics_upstream_response(gw_hmetrics_backend_t *c, unsigned status);

/* Writes, summed over the workers, every series of view V and backend table T (both the
 * serving generation's; zeros included, so a dashboard's rate() has a series from the start):
 *   gw_http_request_duration_seconds{listener,route,class}   histogram, http listeners
 *   gw_http_upstream_responses_total{upstream,backend,class} counter
 *   gw_http_rate_limited_total{listener,route}                counter, routes only
 * Backends are named by their resolved address, as in gw_backend_* (02's backend name).
 * The control thread (the generation borrowed), while the workers run. */
void gw_hmetrics_write(const gw_hmetrics_t *m, const gw_hmetrics_gen_t *v, const gw_lb_table_t *t,
                       gw_prom_t *p);

#endif
