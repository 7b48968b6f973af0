/* lb.h - milestone 02 inside the proxy: the backends' live state, per-worker balancers,
 * active health checks on the control thread, passive ones from the workers, all behind
 * the gw_tcp_picker_t hook of milestone 01. */
#ifndef GW_LB_H
#define GW_LB_H

#include "01-tcp/tcp_proxy.h"
#include "backend.h"
#include "balancer.h"
#include "health.h"
#include "lbconfig.h"

typedef struct gw_lb_s gw_lb_t;

/* One upstream as one table sees it. Immutable once built; the backends it lists are
 * identity objects (backend.h) that other tables may list too. */
typedef struct gw_lb_upstream_s {
    const gw_upstream_cfg_t *cfg;
    /* Its index in the table (= in the config it was built from). Side tables indexed by
     * upstream use this, never `cfg - config->upstreams`: a pointer subtraction between
     * two configs' arrays is undefined, and reloads (issue 17) will build tables from
     * configs other than the one a side table was sized for. */
    size_t pos;
    const gw_lb_upstream_cfg_t *lb;
    gw_lb_member_t *m;   /* [n], config order: backend, weight, config entry, position */
    gw_backend_t **ptrs; /* [n]: m[i].b, the view health checks and outlier detection take */
    size_t n;
} gw_lb_upstream_t;

/* Every upstream, and every worker's balancers over them: 02's part of a configuration
 * generation (gen.h, g->layers[2]). Built whole on the control thread (gw_lb_build), so a
 * pick never allocates and cannot fail for memory. Positions (upstream pos, member pos) are
 * valid only with the table that defines them. */
typedef struct gw_lb_table_s {
    gw_lb_upstream_t *ups;
    size_t n; /* = cfg->nupstreams, same order */
    const gw_config_t *cfg;
    unsigned nworkers;
    gw_balancer_t **bal; /* [nworkers * n]: worker W's balancer of upstream I at [W * n + I] */
    bool *scratch;       /* worker W's `usable` array at scratch + W * stride */
    size_t stride;
} gw_lb_table_t;

/* How a table carries backends over from the previous one (milestone 05 installs one; see
 * gw_lb_set_carry). For the new upstream NEU (whose name OLD has too), fills KEEP[i] for
 * each of NEU's backends: an object of OLD->m to carry (its state, extensions and identity
 * go on), or NULL for a fresh one. A kept object must have the identity of the entry it is
 * kept for (gw_backend_same: same upstream name, same resolved address) and be kept once;
 * the build refuses anything else. Returns 0, or an error that fails the build. Objects of
 * OLD left out are not this hook's business: gw_lb_applied drains them. */
typedef int (*gw_lb_carry_fn)(const gw_lb_upstream_t *old, const gw_upstream_cfg_t *neu,
                              gw_backend_t **keep);

/* The default carry: by key. KEEP[i] is OLD's member with the same upstream name and the
 * same resolved address as NEU's backend i, else NULL. A weight change keeps the object. */
int gw_lb_carry_by_key(const gw_lb_upstream_t *old, const gw_upstream_cfg_t *neu,
                       gw_backend_t **keep);

/* Installs FN (NULL: gw_lb_carry_by_key again), before any build that should use it. */
void gw_lb_set_carry(gw_lb_t *lb, gw_lb_carry_fn fn);

/* Milestone LEVEL keeps SIZE bytes of its own in every backend made from now on
 * (b->ext[LEVEL], zeroed, then INIT(CTX, b, ext)); FINI(CTX, b, ext) runs when the backend
 * is freed, which may be as late as the last table's free, before gw_lb_release returns:
 * CTX must live that long (or FINI be NULL). Call from prepare, before the first build.
 * One registration per level; a second replaces the first. */
void gw_lb_backend_ext(gw_lb_t *lb, int level, size_t size, gw_backend_ext_cb init,
                       gw_backend_ext_cb fini, void *ctx);

/* Builds the table for CFG (which must outlive it) with every worker's balancers, carrying
 * backends from PREV (NULL: every backend is fresh) through the carry hook, upstream by
 * upstream name. The table holds one reference on each backend it lists. Control thread.
 * NULL when out of memory or when the carry hook failed (nothing is then changed: fresh
 * objects are freed, carried ones keep their count). */
gw_lb_table_t *gw_lb_build(gw_lb_t *lb, const gw_config_t *cfg, const gw_lb_table_t *prev);

/* Frees TABLE (the snapshot's free function): its balancers, and its reference on each
 * backend; a backend whose last reference goes is freed at once unless it is draining (the
 * reaper's, then). Control thread. NULL is ignored. */
void gw_lb_table_free(void *table);

/* G's upstream table (what 02's gen_build made). */
static inline const gw_lb_table_t *gw_lb_gen_table(const gw_gen_t *g)
{
    return g->layers[2];
}

/* After NEU was published in place of PREV (NULL at startup), on the control thread:
 *  - every backend of PREV that NEU does not list becomes GW_HEALTH_DRAINING (like an
 *    ejected backend it is picked only in panic mode, by exchanges still on PREV), is logged
 *    and listed for the reaper, which frees it once nobody holds it;
 *  - health checkers are kept per upstream name when the check's config (proxy_protocol
 *    included) and the ordered backend objects are equal, else stopped and started again
 *    over NEU's backends (a restarted checker starts from each backend's current health:
 *    unhealthy stays unhealthy; rise/fall progress is lost). Upstreams gone or without
 *    checks lose theirs.
 * Needs gw_lb_control_open first. Returns 0, or GW_ENOMEM when a checker could not start
 * (the others are in place). */
int gw_lb_applied(gw_lb_t *lb, const gw_lb_table_t *neu, const gw_lb_table_t *prev);

/* Frees the draining backends nobody holds any more; returns how many are still listed.
 * The reaper timer calls it every second while the list is not empty. Control thread. */
size_t gw_lb_reap(gw_lb_t *lb);

/* Backends listed as draining (for tests and the admin API), in no particular order:
 * the first, and the next after B. Control thread. */
gw_backend_t *gw_lb_draining_first(const gw_lb_t *lb);
gw_backend_t *gw_lb_draining_next(const gw_backend_t *b);

/* The checker running for upstream UPSTREAM (by name), or NULL (tests). Control thread. */
const gw_hc_t *gw_lb_checker(const gw_lb_t *lb, const char *upstream);

/* The control thread's side of LB on LOOP: the reaper timer and the health checkers live
 * there. gw_lb_control_start calls open; close stops every checker (their references go
 * when their handles closed) and closes the timer; the loop must run afterwards. */
int gw_lb_control_open(gw_lb_t *lb, uv_loop_t *loop);
void gw_lb_control_close(gw_lb_t *lb);

/* The gw02 application (01's proxy hooks plus health checks on the control thread), and
 * the cli hooks that build and free its state (the picker) from the config. */
extern const gw_app_t gw_lb_app;
int gw_lb_prepare(const gw_config_t *cfg, void **layers);
void gw_lb_release(void **layers);

/* 02's state (gw_lb_t): the runtime's layer 2 (gw_runtime_layer(rt, 2)). Its picker is
 * layer 1, where 01's proxy looks for one. */

/* How milestone 03 (breakers, budgets, rate limits) attaches to 02 without 02 knowing it.
 * All may be NULL. Worker hooks run on the worker's thread. */
typedef struct gw_lb_hooks_s {
    /* An extra filter on backends 02 found usable (after health, ejection and panic): member
     * I of U. */
    bool (*usable)(void *ctx, const gw_lb_upstream_t *u, size_t i, uint64_t now_ms);
    /* The backend a pick chose: may the connection go there (false: 02 picks again
     * without it)? A hook that takes a resource here gives it back in `outcome`. */
    bool (*claim)(void *ctx, const gw_lb_upstream_t *u, gw_backend_t *b, gw_tcp_pick_t *tok,
                  uint64_t now_ms);
    /* Every report 01 makes (see gw_tcp_picker_t.report); U and B are NULL when no backend
     * was ever chosen. */
    void (*outcome)(void *ctx, gw_worker_t *w, const gw_lb_upstream_t *u, gw_backend_t *b,
                    gw_tcp_pick_t *tok, int status, uint64_t now_ms);
    /* Retry policy beyond retry.max_attempts (which 02 applies first): see
     * gw_tcp_picker_t.retry. U is the upstream of the attempt that failed. */
    bool (*retry)(void *ctx, gw_worker_t *w, const gw_lb_upstream_t *u, gw_tcp_pick_t *tok,
                  unsigned attempt, uint64_t *delay_ms);
    /* Admission of a new client: see gw_tcp_picker_t.admit. */
    bool (*admit)(void *ctx, gw_worker_t *w, const gw_listener_t *l, const struct sockaddr *client);
    /* Whether admit will look at the address of a client of L: see
     * gw_tcp_picker_t.wants_client (02 adds its own reason: a client_ip hash). */
    bool (*wants_client)(void *ctx, gw_worker_t *w, const gw_listener_t *l);
    void *ctx;
} gw_lb_hooks_t;

/* gw_tcp_pick_t.flags, set by the caller before a pick at attempt 0 (a new pick sequence):
 * the new sequence still avoids the backends the previous one tried (tok->tried), when
 * another is usable. Cleared by that pick. Milestone 04's retry middleware sets it, so a
 * request sent again after a 503 goes to another backend. */
#define GW_LB_KEEP_TRIED (1u << 7)

/* gw_tcp_pick_t.flags, set by the caller before a pick at attempt 0: the token is a tcp
 * pair's (01's connection, a tcp listener's or a TLS passthrough's), which may stay open
 * across any number of reloads. Once connected (the report of status 0) it trades the
 * generation its pick pinned for a reference on the backend it connected to: an open pair
 * holds its listener and its backend, not a whole configuration (issue 17). An HTTP
 * exchange's token does not set it: the exchange keeps its generation to the end (04). */
#define GW_LB_PAIR (1u << 1)

/* gw_tcp_pick_t.flags, set by 02 when a GW_LB_PAIR token traded its pin: tok->backend is
 * then the gw_backend_t itself, held, and tok->ref is NULL. */
#define GW_LB_DETACHED (1u << 2)

/* The pick of gw_tcp_picker_t.pick for upstream UPSTREAM (an index into the config's
 * upstreams) rather than a tcp listener's: milestone 04 picks per request, by route. GEN is
 * the generation to pick in, pinned by the caller (an exchange's, so the route and the
 * backends come from one config, retries included), or NULL: the one published now. The
 * outcomes go to the picker's report and retry as for a tcp connection.
 * TOK->backend is the chosen member (in the table the pick pinned, valid until the close
 * report): read it with gw_lb_tok_member / gw_lb_tok_backend, never as a backend. */
const gw_addr_t *gw_lb_pick_upstream(gw_lb_t *lb, gw_worker_t *w, gw_snap_t *gen, size_t upstream,
                                     const struct sockaddr *client, unsigned attempt,
                                     gw_tcp_pick_t *tok);

/* TOK's current pick: the member (its position and upstream in the pinned table, its
 * weight and config entry) and the backend object; NULL before any pick. A detached token
 * (GW_LB_DETACHED: a connected pair) has a backend but no member: no table is pinned. */
static inline const gw_lb_member_t *gw_lb_tok_member(const gw_tcp_pick_t *tok)
{
    return tok->flags & GW_LB_DETACHED ? NULL : (const gw_lb_member_t *)tok->backend;
}
static inline gw_backend_t *gw_lb_tok_backend(const gw_tcp_pick_t *tok)
{
    if (tok->flags & GW_LB_DETACHED)
        return (gw_backend_t *)tok->backend;
    const gw_lb_member_t *m = gw_lb_tok_member(tok);
    return m != NULL ? m->b : NULL;
}

/* TOK's connection outlives the exchange that picked it (04's tunnel after a 101), as a
 * connected pair does (GW_LB_PAIR, which does this at connect): it keeps its backend, held,
 * and its active count, and gives back the generation its pick pinned. From then on TOK has
 * a backend but no member (GW_LB_DETACHED); its close report gives the backend back, and a
 * backend failure there is accounted as the generation published then lists the backend.
 * Nothing to do for a token without a pick or detached already. W's thread. */
void gw_lb_tok_detach(gw_worker_t *w, gw_tcp_pick_t *tok);

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
void gw_lb_worker_listener_gone(gw_worker_t *w, gw_listener_t *l);
int gw_lb_control_start(gw_runtime_t *rt);
void gw_lb_control_stop(gw_runtime_t *rt);
int gw_lb_gen_build(gw_runtime_t *rt, gw_gen_t *g, const gw_gen_t *prev, FILE *errs);
void gw_lb_gen_free(gw_runtime_t *rt, gw_gen_t *g);
void gw_lb_gen_applied(gw_runtime_t *rt, const gw_gen_t *g, const gw_gen_t *prev);
void gw_lb_worker_stop(gw_worker_t *w);

/* Decides which backends a pick may use at NOW_MS: usable ones, or every one when fewer
 * than panic_threshold percent are usable (panic mode, as in Envoy: better to spread the
 * load over all than to crush the few survivors). Fills USABLE[0..u->n) and returns how
 * many are usable (after panic), 0 only when the upstream is empty. *PANIC tells which. */
size_t gw_lb_usable(const gw_lb_upstream_t *u, uint64_t now_ms, bool *usable, bool *panic);

#endif
