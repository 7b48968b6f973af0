/* lbconfig.h - milestone 02's configuration keys: balancer, hash, weights, health checks,
 * outlier detection, panic threshold and connect retries (retry.max_attempts), as a
 * gw_config_ext_t. */
#ifndef GW_LBCONFIG_H
#define GW_LBCONFIG_H

#include <stdio.h>

#include "balancer.h"
#include "config.h"
#include "health.h"
#include "outlier.h"

/* upstreams.<name>.* beyond the core keys (gw_upstream_cfg_t.ext[2]). */
typedef struct gw_lb_upstream_cfg_s {
    gw_balancer_kind_t balancer;   /* default round_robin */
    bool hash_client_ip;           /* `hash: client_ip` (required by consistent_hash) */
    double panic_threshold;        /* percent 0..100, default 50; 0 disables panic mode */
    unsigned max_connect_attempts; /* retry.max_attempts: 1..10, default 3 (03 adds backoff
                                    * and a budget to the same block) */
    gw_hc_cfg_t health_check;      /* type GW_HC_NONE when absent */
    gw_outlier_cfg_t outlier;      /* consecutive_failures 0 = off; default 5 */
} gw_lb_upstream_cfg_t;

/* upstreams.<name>.backends[].* beyond the address (gw_backend_cfg_t.ext[2]). */
typedef struct gw_lb_backend_cfg_s {
    unsigned weight; /* 1..1000, default 1 */
} gw_lb_backend_cfg_t;

/* The hooks, for gw_config_ext_t (a later milestone calls them from its own hooks). */
void gw_lb_cfg_upstream(gw_cdoc_t *doc, const gw_cnode_t *map, gw_config_t *cfg,
                        gw_upstream_cfg_t *u);
void gw_lb_cfg_backend(gw_cdoc_t *doc, const gw_cnode_t *map, gw_config_t *cfg,
                       gw_upstream_cfg_t *u, gw_backend_cfg_t *b);
void gw_lb_cfg_print_upstream(FILE *out, const gw_upstream_cfg_t *u, int indent);
void gw_lb_cfg_print_backend(FILE *out, const gw_backend_cfg_t *b, int indent);
void gw_lb_cfg_free(gw_config_t *cfg);

/* gw02's extension: level 2 and the hooks above. */
extern const gw_config_ext_t gw_lb_config_ext;

/* The ext of upstream U / backend B (defaults when the hooks never ran). */
const gw_lb_upstream_cfg_t *gw_lb_upstream_cfg(const gw_upstream_cfg_t *u);
unsigned gw_lb_backend_weight(const gw_backend_cfg_t *b);

/* For a later milestone's upstream decoder (04's upstreams.X.proxy_protocol): U's health
 * checks open with a PROXY header of VERSION (1 or 2; 0: none), as its connections do
 * (gw_hc_cfg_t.proxy_protocol). Nothing when U has no 02 block. */
void gw_lb_upstream_check_proxy(gw_upstream_cfg_t *u, unsigned version);

#endif
