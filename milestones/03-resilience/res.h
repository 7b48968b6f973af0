/* res.h - milestone 03 inside the proxy: circuit breakers, rate limits and retry budgets,
 * attached to milestone 02 through its hooks; metrics and the admin API on the control
 * thread. */
#ifndef GW_RES_H
#define GW_RES_H

#include "02-lb/lb.h"
#include "metrics.h"
#include "resconfig.h"

/* The gw03 application (02's, plus the admin API), and the cli hooks that build and free
 * its state from the config: gw_res_prepare calls 02's, then puts 03's state in the
 * runtime's layer 3 (also the ctx of the hooks it installs in 02). It runs at every start, before
 * anything binds: it logs the admin API's exposure warning (gw_res_admin_exposure) and
 * refuses (GW_EINVAL) an admin block the loader would have refused. */
extern const gw_app_t gw_res_app;
int gw_res_prepare(const gw_config_t *cfg, void **layers);
void gw_res_release(void **layers);

/* Adds FN's metric families to /metrics (after 03's own), for a later milestone's counters.
 * LAYERS is what gw_res_prepare filled; call before the runtime starts. FN runs on the
 * control thread during a scrape. */
void gw_res_set_extra_metrics(void **layers, void (*fn)(void *ctx, gw_prom_t *p), void *ctx);

#endif
