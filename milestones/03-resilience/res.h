/* res.h - milestone 03 inside the proxy: circuit breakers, rate limits and retry budgets,
 * attached to milestone 02 through its hooks; metrics and the admin API on the control
 * thread. */
#ifndef GW_RES_H
#define GW_RES_H

#include <jansson.h>

#include "02-lb/lb.h"
#include "metrics.h"
#include "resconfig.h"

/* The gw03 application (02's, plus the admin API), and the cli hooks that build and free
 * its process-lifetime state: gw_res_prepare calls 02's, then puts 03's state in the
 * runtime's layer 3 (also the ctx of the hooks it installs in 02, admit included whatever
 * the config limits: a reload may add limits). It runs at every start, before anything
 * binds: it logs the admin API's exposure warning (gw_res_admin_exposure) and refuses
 * (GW_EINVAL) an admin block the loader would have refused. What the config says per
 * listener and per upstream (limiters, budgets, counters) is 03's part of each generation
 * (g->layers[3]), built by gw_res_gen_build and carried by key to the next (res.c). */
extern const gw_app_t gw_res_app;
int gw_res_prepare(const gw_config_t *cfg, void **layers);
void gw_res_release(void **layers);

/* The gw03 hooks as functions, for milestone 04's app, which delegates each of its hooks to
 * these (and only these). gw_res_metrics writes 03's families (and 01's and 02's counters,
 * which have no /metrics of their own); the admin API's /metrics calls the top app's
 * metrics hook, so a later milestone's families follow 03's. */
int gw_res_worker_start(gw_worker_t *w);
void gw_res_on_connection(gw_wlistener_t *wl);
void gw_res_worker_drain(gw_worker_t *w);
void gw_res_worker_force_close(gw_worker_t *w);
void gw_res_worker_listener_gone(gw_worker_t *w, gw_listener_t *l);
void gw_res_worker_stop(gw_worker_t *w);
/* gen_build: 02's part, then 03's, carried from PREV (by upstream name; by listener object,
 * the limiter only while its options are equal). A reload (PREV not NULL) is refused with
 * FILE:LINE:COL in ERRS when the admin block would be refused at a start; a changed
 * admin.address or admin.token keeps the running one, with a warning in ERRS. gen_free:
 * 03's slot, then 02's. */
int gw_res_gen_build(gw_runtime_t *rt, gw_gen_t *g, const gw_gen_t *prev, FILE *errs);
void gw_res_gen_free(gw_runtime_t *rt, gw_gen_t *g);
void gw_res_gen_applied(gw_runtime_t *rt, const gw_gen_t *g, const gw_gen_t *prev);
int gw_res_control_start(gw_runtime_t *rt);
void gw_res_control_stop(gw_runtime_t *rt);
void gw_res_metrics(gw_runtime_t *rt, gw_prom_t *p);

/* 03's state (the runtime's layer 3). */
typedef struct gw_res_s gw_res_t;

/* Milestone 05's admin routes: POST /reload answers what RELOAD(CTX) says, GET /config
 * serves CONFIG(CTX) (gw_admin_sources_t). Call before control_start, which starts the
 * admin API with them; without this call both routes answer 404, as in gw03 and gw04. */
void gw_res_admin_extra(gw_res_t *r, int (*reload)(void *ctx, json_t **body),
                        char *(*config)(void *ctx, size_t *len), void *ctx);

#endif
