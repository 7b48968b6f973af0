/* lb.h - milestone 02 inside the proxy: the backends' live state, per-worker balancers,
 * active health checks on the control thread, passive ones from the workers, all behind
 * the gw_tcp_picker_t hook of milestone 01. */
#ifndef GW_LB_H
#define GW_LB_H

#include "01-tcp/tcp_proxy.h"
#include "backend.h"
#include "balancer.h"
#include "lbconfig.h"

/* One upstream's backends. Immutable after start except the backends' atomics. */
typedef struct gw_lb_upstream_s {
    const gw_upstream_cfg_t *cfg;
    const gw_lb_upstream_cfg_t *lb;
    gw_backend_t *backends; /* [n] */
    gw_backend_t **ptrs;    /* [n], the view balancers take */
    size_t n;
} gw_lb_upstream_t;

/* Every upstream: the object published to the workers as a snapshot. */
typedef struct gw_lb_table_s {
    gw_lb_upstream_t *ups;
    size_t n; /* = cfg->nupstreams, same order */
} gw_lb_table_t;

/* Builds the table for CFG (which must outlive it). NULL when out of memory. */
gw_lb_table_t *gw_lb_table_new(const gw_config_t *cfg);
void gw_lb_table_free(void *table);

/* The gw02 application (01's proxy hooks plus health checks on the control thread), and
 * the cli hooks that build and free its state (the picker) from the config. */
extern const gw_app_t gw_lb_app;
int gw_lb_prepare(const gw_config_t *cfg, void **app_data);
void gw_lb_release(void *app_data);

/* The runtime's app_data for gw02: the picker comes first, as 01's proxy expects. */
typedef struct gw_lb_s gw_lb_t;

/* Decides which backends a pick may use at NOW_MS: usable ones, or every one when fewer
 * than panic_threshold percent are usable (panic mode, as in Envoy: better to spread the
 * load over all than to crush the few survivors). Fills USABLE[0..u->n) and returns how
 * many are usable (after panic), 0 only when the upstream is empty. *PANIC tells which. */
size_t gw_lb_usable(const gw_lb_upstream_t *u, uint64_t now_ms, bool *usable, bool *panic);

#endif
