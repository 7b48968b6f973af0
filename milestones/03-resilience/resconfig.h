/* resconfig.h - milestone 03's configuration keys: admin listener, circuit breakers, rate
 * limits, retry backoff and budget; a gw_config_ext_t that chains to milestone 02's. */
#ifndef GW_RESCONFIG_H
#define GW_RESCONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "02-lb/lbconfig.h"
#include "breaker.h"
#include "config.h"

/* The top-level `admin` block (gw_config_t.ext[3]). Absent: no admin listener. */
typedef struct gw_res_root_cfg_s {
    bool admin_enabled;
    char *admin_address_text; /* default "127.0.0.1:9901" */
    gw_addr_t admin_addr;
    char *admin_token; /* NULL: no token */
    /* admin.allow_unauthenticated (default false): the operator's written consent to an
     * admin API without a token on an address other hosts can reach. */
    bool allow_unauthenticated;
    unsigned admin_line, admin_col; /* where admin.address (or the admin block) is: a reload's
                                     * refusal or warning names it */
} gw_res_root_cfg_t;

/* What an admin block exposes, and so what loading and starting must say. */
typedef enum {
    GW_RES_ADMIN_SAFE,     /* no admin API, a loopback address, or a token: nothing to say */
    GW_RES_ADMIN_REFUSED,  /* reachable from other hosts, no token, no consent: an error */
    GW_RES_ADMIN_OPEN,     /* the same with allow_unauthenticated: true: a warning at every
                            * start */
    GW_RES_ADMIN_NEEDLESS, /* allow_unauthenticated: true with a token: it has no effect (the
                            * token is still required): a warning at every start */
} gw_res_admin_exposure_t;

/* Classifies the admin block R (its address, token and consent) and writes into MSG (SIZE
 * bytes, at least 1) the error for REFUSED or the warning for OPEN and NEEDLESS, without a
 * position or level prefix; "" for SAFE. Any address but 127.0.0.0/8, ::1 and
 * ::ffff:127.0.0.0/104 counts as reachable (gw_addr_is_loopback): 0.0.0.0 and :: listen on
 * every interface. allow_unauthenticated on a loopback address without a token is SAFE:
 * a permission that is not needed, harmless (one config template may serve hosts where the
 * admin address differs). Pure: no I/O, for the unit tests and both callers (the config
 * loader's error, the start's check in res.c). */
gw_res_admin_exposure_t gw_res_admin_exposure(const gw_res_root_cfg_t *r, char *msg, size_t size);

/* listeners[].rate_limit (gw_listener_cfg_t.ext[3], set for every listener whose node is a
 * mapping). rate 0 = that limit is off. */
typedef struct gw_res_listener_cfg_s {
    uint64_t global_rate, global_burst; /* new connections per second, whole listener */
    uint64_t client_rate, client_burst; /* per client address */
    uint64_t max_clients;               /* cap on tracked client addresses, default 100000 */
} gw_res_listener_cfg_t;

/* upstreams.<name>.circuit_breaker and retry's 03 keys (gw_upstream_cfg_t.ext[3], beside
 * 02's part in ext[2]). */
typedef struct gw_res_upstream_cfg_s {
    bool breaker_enabled;
    gw_breaker_cfg_t breaker;
    uint64_t backoff_ms, backoff_max_ms; /* retry.backoff (default 10ms), backoff_max (1s) */
    double budget_percent;               /* retry.budget_percent, default 20 */
    uint64_t min_concurrent;             /* retry.min_concurrent, default 3 */
} gw_res_upstream_cfg_t;

/* The milestone-03 part of upstream U / listener L / the root (defaults when absent). */
const gw_res_upstream_cfg_t *gw_res_upstream_cfg(const gw_upstream_cfg_t *u);
const gw_res_listener_cfg_t *gw_res_listener_cfg(const gw_listener_cfg_t *l);
const gw_res_root_cfg_t *gw_res_root_cfg(const gw_config_t *cfg);

/* Decodes a breaker block (MAP, a mapping: consecutive_failures, failure_rate_percent,
 * min_requests, window, open_timeout, half_open_max, success_to_close) into *B, 03's
 * defaults for absent keys. WHAT names the block in the message when both rules are off. */
void gw_res_decode_breaker(gw_cdoc_t *doc, const gw_cnode_t *map, const char *what,
                           gw_breaker_cfg_t *b);

/* gw03's extension: level 3, 02's hooks plus these keys. */
extern const gw_config_ext_t gw_res_config_ext;

#endif
