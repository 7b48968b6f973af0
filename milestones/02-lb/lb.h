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
    /* Its index in the table (= in the config it was built from). Side tables indexed by
     * upstream use this, never `cfg - config->upstreams`: a pointer subtraction between
     * two configs' arrays is undefined, and reloads (issue 17) will build tables from
     * configs other than the one a side table was sized for. */
    size_t pos;
    const gw_lb_upstream_cfg_t *lb;
    gw_backend_t *backends; /* [n] */
    gw_backend_t **ptrs;    /* [n], the view balancers take */
    size_t n;
} gw_lb_upstream_t;

/* Every upstream: 02's part of a configuration generation (gen.h), g->layers[2]. */
typedef struct gw_lb_table_s {
    gw_lb_upstream_t *ups;
    size_t n; /* = cfg->nupstreams, same order */
} gw_lb_table_t;

/* Builds the table for CFG (which must outlive it). NULL when out of memory. */
gw_lb_table_t *gw_lb_table_new(const gw_config_t *cfg);
void gw_lb_table_free(void *table);

/* G's upstream table (what 02's gen_build made). */
static inline const gw_lb_table_t *gw_lb_gen_table(const gw_gen_t *g)
{
    return g->layers[2];
}

/* The gw02 application (01's proxy hooks plus health checks on the control thread), and
 * the cli hooks that build and free its state (the picker) from the config. */
extern const gw_app_t gw_lb_app;
int gw_lb_prepare(const gw_config_t *cfg, void **layers);
void gw_lb_release(void **layers);

/* 02's state: the runtime's layer 2 (gw_runtime_layer(rt, 2)). Its picker is layer 1, where
 * 01's proxy looks for one. */
typedef struct gw_lb_s gw_lb_t;

/* How milestone 03 (breakers, budgets, rate limits) attaches to 02 without 02 knowing it.
 * All may be NULL. Worker hooks run on the worker's thread. */
typedef struct gw_lb_hooks_s {
    /* An extra filter on backends 02 found usable (after health, ejection and panic). */
    bool (*usable)(void *ctx, const gw_lb_upstream_t *u, size_t i, uint64_t now_ms);
    /* The backend a pick chose: may the connection go there (false: 02 picks again
     * without it)? A hook that takes a resource here gives it back in `outcome`. */
    bool (*claim)(void *ctx, const gw_lb_upstream_t *u, gw_backend_t *b, gw_tcp_pick_t *tok,
                  uint64_t now_ms);
    /* Every report 01 makes (see gw_tcp_picker_t.report); B is NULL when no backend was
     * ever chosen. */
    void (*outcome)(void *ctx, gw_worker_t *w, const gw_lb_upstream_t *u, gw_backend_t *b,
                    gw_tcp_pick_t *tok, int status, uint64_t now_ms);
    /* Retry policy beyond retry.max_attempts (which 02 applies first): see
     * gw_tcp_picker_t.retry. U is the upstream of the attempt that failed. */
    bool (*retry)(void *ctx, gw_worker_t *w, const gw_lb_upstream_t *u, gw_tcp_pick_t *tok,
                  unsigned attempt, uint64_t *delay_ms);
    /* Admission of a new client: see gw_tcp_picker_t.admit. */
    bool (*admit)(void *ctx, gw_worker_t *w, const gw_listener_t *l, const struct sockaddr *client);
    void *ctx;
} gw_lb_hooks_t;

/* gw_tcp_pick_t.flags, set by the caller before a pick at attempt 0 (a new pick sequence):
 * the new sequence still avoids the backends the previous one tried (tok->tried), when
 * another is usable. Cleared by that pick. Milestone 04's retry middleware sets it, so a
 * request sent again after a 503 goes to another backend. */
#define GW_LB_KEEP_TRIED (1u << 7)

/* The pick of gw_tcp_picker_t.pick for upstream UPSTREAM (an index into the config's
 * upstreams) rather than a tcp listener's: milestone 04 picks per request, by route. The
 * outcomes go to the picker's report and retry as for a tcp connection. */
const gw_addr_t *gw_lb_pick_upstream(gw_lb_t *lb, gw_worker_t *w, size_t upstream,
                                     const struct sockaddr *client, unsigned attempt,
                                     gw_tcp_pick_t *tok);

/* The backend of TOK's current pick answered with a response head of final STATUS (04, once
 * per attempt): feeds the outlier detection's response runs (gw_outlier_response). Failures
 * without a response go through the picker's report as before; a 5xx is not a failure
 * there (the connection worked). Any worker thread; nothing to do for a NULL backend. */
void gw_lb_response(const gw_tcp_pick_t *tok, unsigned status);

/* Installs HOOKS (copied) into LB, before the runtime starts. Their ctx is the later
 * milestone's own layer (03's state); that milestone finds it with gw_runtime_layer. */
void gw_lb_set_hooks(gw_lb_t *lb, const gw_lb_hooks_t *hooks);

/* The table currently published, for the control thread (which publishes and reclaims,
 * so what it reads cannot be freed under it). NULL before control_start. */
const gw_lb_table_t *gw_lb_current_table(gw_runtime_t *rt);

/* The gw02 hooks as functions, for milestone 03's app, which delegates each of its hooks
 * to these (and only these). Where 02 adds nothing to 01 they only call 01's. */
int gw_lb_worker_start(gw_worker_t *w);
void gw_lb_on_connection(gw_wlistener_t *wl);
void gw_lb_worker_drain(gw_worker_t *w);
void gw_lb_worker_force_close(gw_worker_t *w);
int gw_lb_control_start(gw_runtime_t *rt);
void gw_lb_control_stop(gw_runtime_t *rt);
int gw_lb_gen_build(gw_runtime_t *rt, gw_gen_t *g, const gw_gen_t *prev, FILE *errs);
void gw_lb_gen_free(gw_runtime_t *rt, gw_gen_t *g);
void gw_lb_worker_stop(gw_worker_t *w);

/* Decides which backends a pick may use at NOW_MS: usable ones, or every one when fewer
 * than panic_threshold percent are usable (panic mode, as in Envoy: better to spread the
 * load over all than to crush the few survivors). Fills USABLE[0..u->n) and returns how
 * many are usable (after panic), 0 only when the upstream is empty. *PANIC tells which. */
size_t gw_lb_usable(const gw_lb_upstream_t *u, uint64_t now_ms, bool *usable, bool *panic);

#endif
