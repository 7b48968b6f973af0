/* hproxy.h - the HTTP/1.1 reverse proxy engine: accepts on `protocol: http` listeners,
 * parses requests (h1.h), routes them (router.h), runs the route's middleware (chain.h),
 * picks a backend with milestone 02's balancers under 03's breakers, and streams the
 * exchange through a per-worker, per-backend pool of keep-alive upstream connections.
 *
 * gw04 is milestone 03's process with this engine beside 01's TCP proxy: tcp listeners go
 * to gw_tcp_on_connection as before, http listeners come here. */
#ifndef GW_HPROXY_H
#define GW_HPROXY_H

#include "02-lb/lb.h"
#include "04-http/hmetrics.h"
#include "metrics.h"
#include "runtime.h"

/* The gw04 application (03's, with http listeners served here) and the cli hooks that
 * build and free its state: gw_http_prepare calls 03's, then puts 04's state in the
 * runtime's layer 4. */
extern const gw_app_t gw_http_app;
int gw_http_prepare(const gw_config_t *cfg, void **layers);
void gw_http_release(void **layers);

/* Per-worker HTTP counters (only the worker writes them; any thread reads them). */
typedef struct gw_http_stats_s {
    gw_counter_t connections, requests, local_errors, upstream_connects, upstream_reuses, retries;
    gw_counter_t responses[GW_HMETRICS_NCLASSES]; /* by gw_hmetrics_class: 2xx .. 5xx */
    gw_counter_t tunnels;                         /* 101s that became a tunnel (htunnel.c) */
    gw_gauge_t tunnels_active;                    /* tunnels open now */
} gw_http_stats_t;

#endif
