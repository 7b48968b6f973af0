/* lb.c - see lb.h. */
#include "lb.h"

#include <stdlib.h>

#include "clock.h"
#include "error.h"
#include "health.h"
#include "log.h"
#include "outlier.h"

#define HOLDS_ACTIVE 1u /* gw_tcp_pick_t.flags: the pick counted one in backend->active */

/* A worker's balancers, built from the table it last saw. The worker pins that table for
 * as long as the balancers exist: they point into it, and a table freed while they exist
 * could have its address reused by a newer one, which the pointer comparison in
 * worker_sync would take for the same table. */
typedef struct lb_worker_s {
    gw_snap_t *snap;     /* the table's snapshot, pinned by this worker; NULL before a pick */
    gw_balancer_t **bal; /* [nbal] */
    size_t nbal;
    bool *usable; /* scratch: [largest upstream] */
    uint64_t seed;
} lb_worker_t;

struct gw_lb_s {
    gw_tcp_picker_t picker; /* the runtime's layer 1: what 01's proxy picks with */
    gw_lb_hooks_t hooks;
    const gw_config_t *cfg;
    lb_worker_t *workers; /* [cfg->workers] */
    gw_hc_t **checkers;   /* [cfg->nupstreams], NULL where no active check */
};

/* ---- the table ---------------------------------------------------------------------------- */

static int upstream_init(gw_lb_upstream_t *u, const gw_upstream_cfg_t *uc, size_t pos)
{
    u->cfg = uc;
    u->pos = pos;
    u->lb = gw_lb_upstream_cfg(uc);
    u->n = uc->nbackends;
    u->backends = calloc(u->n, sizeof *u->backends);
    u->ptrs = calloc(u->n, sizeof *u->ptrs);
    if (u->backends == NULL || u->ptrs == NULL)
        return GW_ENOMEM;
    for (size_t i = 0; i < u->n; i++) {
        gw_backend_init(&u->backends[i], &uc->backends[i].addr,
                        gw_lb_backend_weight(&uc->backends[i]), i);
        u->backends[i].upstream = u;
        u->ptrs[i] = &u->backends[i];
    }
    return 0;
}

/* see lb.h */
void gw_lb_table_free(void *table)
{
    gw_lb_table_t *t = table;
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->ups[i].backends);
        free(t->ups[i].ptrs);
    }
    free(t->ups);
    free(t);
}

/* see lb.h */
gw_lb_table_t *gw_lb_table_new(const gw_config_t *cfg)
{
    gw_lb_table_t *t = calloc(1, sizeof *t);
    if (t == NULL || (t->ups = calloc(cfg->nupstreams, sizeof *t->ups)) == NULL) {
        free(t);
        return NULL;
    }
    t->n = cfg->nupstreams;
    for (size_t i = 0; i < t->n; i++) {
        if (upstream_init(&t->ups[i], &cfg->upstreams[i], i) != 0) {
            gw_lb_table_free(t);
            return NULL;
        }
    }
    return t;
}

/* see lb.h */
size_t gw_lb_usable(const gw_lb_upstream_t *u, uint64_t now_ms, bool *usable, bool *panic)
{
    size_t ok = 0;
    for (size_t i = 0; i < u->n; i++)
        ok += (usable[i] = gw_backend_usable(&u->backends[i], now_ms));
    /* Panic mode: below the threshold, spread over everyone. ok * 100 < pct * n without
     * floating point surprises at the boundary. */
    *panic = u->n > 0 && (double)ok * 100.0 < u->lb->panic_threshold * (double)u->n;
    if (*panic) {
        for (size_t i = 0; i < u->n; i++)
            usable[i] = true;
        ok = u->n;
    }
    return ok;
}

/* ---- per-worker balancers -------------------------------------------------------------- */

/* On the worker's thread (READER is its id): the unpin is that reader's. */
static void worker_free_balancers(lb_worker_t *lw, size_t reader)
{
    for (size_t i = 0; i < lw->nbal; i++)
        gw_balancer_free(lw->bal[i]);
    free(lw->bal);
    free(lw->usable);
    lw->bal = NULL;
    lw->nbal = 0;
    lw->usable = NULL;
    if (lw->snap != NULL)
        gw_snap_unpin(lw->snap, reader);
    lw->snap = NULL;
}

/* (Re)builds the worker's balancers when the table SNAP (pinned by the pick) is not the one
 * they were built from (milestone 05's reloads; in 02 it happens once, at the first pick). */
static int worker_sync(lb_worker_t *lw, size_t reader, gw_snap_t *snap)
{
    if (lw->snap == snap)
        return 0;
    const gw_lb_table_t *t = gw_lb_gen_table(snap->data);
    worker_free_balancers(lw, reader);
    size_t most = 1;
    for (size_t i = 0; i < t->n; i++)
        most = t->ups[i].n > most ? t->ups[i].n : most;
    lw->bal = calloc(t->n ? t->n : 1, sizeof *lw->bal);
    lw->usable = calloc(most, sizeof *lw->usable);
    if (lw->bal == NULL || lw->usable == NULL)
        goto fail;
    gw_snap_repin(snap, reader);
    lw->snap = snap;
    for (size_t i = 0; i < t->n; i++, lw->nbal++) {
        const gw_lb_upstream_t *u = &t->ups[i];
        lw->bal[i] = gw_balancer_new(u->lb->balancer, u->ptrs, u->n, lw->seed + i);
        if (lw->bal[i] == NULL)
            goto fail;
    }
    return 0;
fail:
    worker_free_balancers(lw, reader);
    return GW_ENOMEM;
}

/* ---- the picker ------------------------------------------------------------------------------ */

/* A retry should not go back to a backend that already failed this connection, as long as
 * another one is usable (the first 64 backends are remembered; beyond, only the last). */
static void avoid_tried(const gw_lb_upstream_t *u, bool *usable, uint64_t tried)
{
    size_t left = 0;
    for (size_t i = 0; i < u->n; i++)
        left += usable[i] && !(i < 64 && (tried >> i & 1));
    if (left == 0)
        return;
    for (size_t i = 0; i < u->n && i < 64; i++)
        if (tried >> i & 1)
            usable[i] = false;
}

/* The balancer's choice among P->usable, filtered and confirmed by a later milestone's
 * hooks (03's breakers): a backend whose claim fails is taken out and the pick repeated. */
static gw_backend_t *choose(gw_lb_t *lb, gw_balancer_t *bal, const gw_lb_upstream_t *u,
                            bool *usable, gw_pick_t *p, gw_tcp_pick_t *tok, uint64_t now)
{
    const gw_lb_hooks_t *h = &lb->hooks;
    if (h->usable != NULL)
        for (size_t i = 0; i < u->n; i++)
            usable[i] = usable[i] && h->usable(h->ctx, u, i, now);
    avoid_tried(u, usable, tok->tried);
    for (size_t tries = 0; tries < u->n; tries++) {
        int idx = gw_balancer_pick(bal, p);
        if (idx < 0)
            return NULL;
        gw_backend_t *b = u->ptrs[idx];
        if (h->claim == NULL || h->claim(h->ctx, u, b, tok, now))
            return b;
        usable[idx] = false;
    }
    return NULL;
}

/* see lb.h */
const gw_addr_t *gw_lb_pick_upstream(gw_lb_t *lb, gw_worker_t *w, size_t upstream,
                                     const struct sockaddr *client, unsigned attempt,
                                     gw_tcp_pick_t *tok)
{
    lb_worker_t *lw = &lb->workers[w->id];
    if (attempt == 0) {
        /* A connection (a tunnel, a slow exchange) can outlive any number of loop turns:
         * it holds the table by a pin, not by the quiescent-state rule alone (snapshot.h).
         * A pin is this worker's own counter, so a pick costs no locked instruction on a
         * word every worker writes; it is given back on this thread, in lb_report. */
        tok->ref = gw_snap_pin(&w->rt->snap, w->id);
        tok->backend = NULL;
        if (!(tok->flags & GW_LB_KEEP_TRIED))
            tok->tried = 0;
        tok->flags &= ~GW_LB_KEEP_TRIED;
    }
    const gw_lb_table_t *t = tok->ref ? gw_lb_gen_table(((gw_snap_t *)tok->ref)->data) : NULL;
    if (t == NULL || upstream >= t->n || worker_sync(lw, w->id, tok->ref) != 0)
        return NULL;
    const gw_lb_upstream_t *u = &t->ups[upstream];
    if (attempt >= u->lb->max_connect_attempts)
        return NULL;
    bool panic;
    uint64_t now = gw_clock_mono_ms(&gw_clock_system);
    gw_lb_usable(u, now, lw->usable, &panic);
    const gw_backend_t *prev = tok->backend;
    gw_pick_t p = {.usable = lw->usable,
                   .avoid = prev != NULL ? prev->index : SIZE_MAX,
                   .key = u->lb->hash_client_ip ? gw_hash_client_ip(client) : 0};
    gw_backend_t *b = choose(lb, lw->bal[upstream], u, lw->usable, &p, tok, now);
    if (b == NULL)
        return NULL;
    atomic_fetch_add_explicit(&b->active, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->picks, 1, memory_order_relaxed);
    tok->backend = b;
    tok->flags |= HOLDS_ACTIVE;
    if (b->index < 64)
        tok->tried |= (uint64_t)1 << b->index;
    return &b->addr;
}

static const gw_addr_t *lb_pick(void *ctx, gw_worker_t *w, const gw_listener_t *l,
                                const struct sockaddr *client, unsigned attempt, gw_tcp_pick_t *tok)
{
    return gw_lb_pick_upstream(ctx, w, l->cfg->upstream_index, client, attempt, tok);
}

static void release_active(gw_tcp_pick_t *tok)
{
    gw_backend_t *b = tok->backend;
    if (b != NULL && (tok->flags & HOLDS_ACTIVE)) {
        atomic_fetch_sub_explicit(&b->active, 1, memory_order_relaxed);
        tok->flags &= ~HOLDS_ACTIVE;
    }
}

static void passive_failure(gw_backend_t *b)
{
    const gw_lb_upstream_t *u = b->upstream;
    const gw_outlier_cfg_t *o = &u->lb->outlier;
    atomic_fetch_add_explicit(&b->failures, 1, memory_order_relaxed);
    if (o->consecutive_failures > 0 || o->consecutive_gateway_errors > 0 || o->consecutive_5xx > 0)
        gw_outlier_failure(o, b, u->ptrs, u->n, gw_clock_mono_ms(&gw_clock_system));
}

/* see lb.h */
void gw_lb_response(const gw_tcp_pick_t *tok, unsigned status)
{
    gw_backend_t *b = tok->backend;
    if (b == NULL)
        return;
    const gw_lb_upstream_t *u = b->upstream;
    /* Only a 5xx needs the time (to eject): no clock read for the answers that end a run. */
    uint64_t now = status >= 500 && status <= 599 ? gw_clock_mono_ms(&gw_clock_system) : 0;
    gw_outlier_response(&u->lb->outlier, b, u->ptrs, u->n, status, now);
}

static void lb_report(void *ctx, gw_worker_t *w, gw_tcp_pick_t *tok, int status)
{
    gw_lb_t *lb = ctx;
    gw_backend_t *b = tok->backend;
    if (lb->hooks.outcome != NULL)
        lb->hooks.outcome(lb->hooks.ctx, w, b != NULL ? b->upstream : NULL, b, tok, status,
                          gw_clock_mono_ms(&gw_clock_system));
    if (status == 0) { /* connected: the count stays until the close */
        gw_outlier_success(b);
        return;
    }
    if (status < 0) { /* this attempt failed; tok->backend stays, so a retry avoids it */
        release_active(tok);
        if (b != NULL)
            passive_failure(b);
        return;
    }
    release_active(tok);
    if (status == GW_TCP_CLOSED_BACKEND_ERROR && b != NULL)
        passive_failure(b);
    if (tok->ref != NULL) {
        gw_snap_unpin(tok->ref, w->id);
        tok->ref = NULL;
    }
}

static bool lb_retry(void *ctx, gw_worker_t *w, gw_tcp_pick_t *tok, unsigned attempt,
                     uint64_t *delay_ms)
{
    gw_lb_t *lb = ctx;
    const gw_backend_t *b = tok->backend;
    const gw_lb_upstream_t *u = b != NULL ? b->upstream : NULL;
    if (u == NULL || attempt >= u->lb->max_connect_attempts)
        return false;
    *delay_ms = 0;
    return lb->hooks.retry == NULL || lb->hooks.retry(lb->hooks.ctx, w, u, tok, attempt, delay_ms);
}

static bool lb_admit(void *ctx, gw_worker_t *w, const gw_listener_t *l,
                     const struct sockaddr *client)
{
    gw_lb_t *lb = ctx;
    return lb->hooks.admit == NULL || lb->hooks.admit(lb->hooks.ctx, w, l, client);
}

/* see lb.h */
void gw_lb_set_hooks(gw_lb_t *lb, const gw_lb_hooks_t *hooks)
{
    lb->hooks = *hooks;
    if (hooks->admit != NULL)
        lb->picker.needs_client_addr = true;
}

/* see lb.h */
const gw_lb_table_t *gw_lb_current_table(gw_runtime_t *rt)
{
    return gw_lb_gen_table(gw_gen_current(rt));
}

/* ---- the application ---------------------------------------------------------------------- */

static void describe(const gw_lb_upstream_t *u)
{
    const gw_hc_cfg_t *hc = &u->lb->health_check;
    char iv[32];
    gw_info("upstream '%s': %zu backend(s), %s, health check %s%s%s%s, outlier ejection %s",
            u->cfg->name, u->n, gw_balancer_names[u->lb->balancer],
            hc->type == GW_HC_NONE  ? "off"
            : hc->type == GW_HC_TCP ? "tcp"
                                    : "http ",
            hc->type == GW_HC_HTTP ? hc->path : "", hc->type == GW_HC_NONE ? "" : " every ",
            hc->type == GW_HC_NONE ? "" : gw_cfmt_duration(hc->interval_ms, iv, sizeof iv),
            u->lb->outlier.consecutive_failures || u->lb->outlier.consecutive_gateway_errors ||
                    u->lb->outlier.consecutive_5xx
                ? "on"
                : "off");
}

/* see lb.h */
int gw_lb_gen_build(gw_runtime_t *rt, gw_gen_t *g, const gw_gen_t *prev, FILE *errs)
{
    (void)rt;
    (void)prev;
    g->layers[2] = gw_lb_table_new(g->cfg);
    if (g->layers[2] == NULL) {
        fprintf(errs, "%s: out of memory building the upstream table\n",
                g->cfg->path ? g->cfg->path : "-");
        return GW_ENOMEM;
    }
    return 0;
}

/* see lb.h */
void gw_lb_gen_free(gw_runtime_t *rt, gw_gen_t *g)
{
    (void)rt;
    gw_lb_table_free(g->layers[2]);
    g->layers[2] = NULL;
}

/* see lb.h */
int gw_lb_control_start(gw_runtime_t *rt)
{
    gw_lb_t *lb = gw_runtime_layer(rt, 2);
    const gw_lb_table_t *t = gw_lb_gen_table(gw_gen_current(rt));
    for (size_t i = 0; i < t->n; i++) {
        const gw_lb_upstream_t *u = &t->ups[i];
        describe(u);
        if (u->lb->health_check.type == GW_HC_NONE)
            continue;
        gw_hc_cfg_t hc = u->lb->health_check;
        hc.uneject_on_pass = u->lb->outlier.uneject_on_active_pass;
        lb->checkers[i] =
            gw_hc_start(&rt->loop, &hc, u->ptrs, u->n, u->cfg->name, 0x9e3779b97f4a7c15u * (i + 1));
        if (lb->checkers[i] == NULL) {
            gw_error("upstream '%s': cannot start health checks", u->cfg->name);
            return GW_ENOMEM;
        }
    }
    return 0;
}

/* see lb.h */
void gw_lb_control_stop(gw_runtime_t *rt)
{
    gw_lb_t *lb = gw_runtime_layer(rt, 2);
    for (size_t i = 0; i < rt->cfg->nupstreams; i++) {
        if (lb->checkers[i] != NULL)
            gw_hc_stop(lb->checkers[i], NULL, NULL);
        lb->checkers[i] = NULL;
    }
}

/* see lb.h */
void gw_lb_worker_stop(gw_worker_t *w)
{
    gw_lb_t *lb = gw_runtime_layer(w->rt, 2);
    gw_tcp_worker_stop(w);
    worker_free_balancers(&lb->workers[w->id], w->id);
}

/* see lb.h */
int gw_lb_prepare(const gw_config_t *cfg, void **layers)
{
    gw_lb_t *lb = calloc(1, sizeof *lb);
    if (lb == NULL)
        return GW_ENOMEM;
    layers[2] = lb;
    lb->cfg = cfg;
    lb->workers = calloc(cfg->workers, sizeof *lb->workers);
    lb->checkers = calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof *lb->checkers);
    if (lb->workers == NULL || lb->checkers == NULL) {
        gw_lb_release(layers);
        return GW_ENOMEM;
    }
    for (unsigned i = 0; i < cfg->workers; i++)
        lb->workers[i].seed = 0x5eed0000u + 7919u * i; /* distinct per worker, repeatable */
    /* One attempt budget for the process: the largest any upstream asks for; a pick for a
     * smaller upstream returns NULL past its own count. */
    unsigned attempts = 1;
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        unsigned a = gw_lb_upstream_cfg(&cfg->upstreams[i])->max_connect_attempts;
        attempts = a > attempts ? a : attempts;
    }
    lb->picker = (gw_tcp_picker_t){.pick = lb_pick,
                                   .report = lb_report,
                                   .retry = lb_retry,
                                   .admit = lb_admit,
                                   .max_attempts = attempts,
                                   .ctx = lb};
    for (size_t i = 0; i < cfg->nupstreams; i++)
        if (gw_lb_upstream_cfg(&cfg->upstreams[i])->hash_client_ip)
            lb->picker.needs_client_addr = true;
    layers[1] = &lb->picker; /* 01 has no prepare: 02 fills 01's slot with its picker */
    return 0;
}

/* see lb.h */
void gw_lb_release(void **layers)
{
    gw_lb_t *lb = layers[2];
    layers[2] = layers[1] = NULL;
    if (lb == NULL)
        return;
    free(lb->workers);
    free(lb->checkers);
    free(lb);
}

/* see lb.h: 02 adds nothing to these; its picker (layer 1) is what 01 uses. */
int gw_lb_worker_start(gw_worker_t *w)
{
    return gw_tcp_worker_start(w);
}

void gw_lb_on_connection(gw_wlistener_t *wl)
{
    gw_tcp_on_connection(wl);
}

void gw_lb_worker_drain(gw_worker_t *w)
{
    gw_tcp_worker_drain(w);
}

void gw_lb_worker_force_close(gw_worker_t *w)
{
    gw_tcp_worker_force_close(w);
}

/* Every hook goes to 01's (gw_tcp_app), through the functions above. */
const gw_app_t gw_lb_app = {
    .gen_build = gw_lb_gen_build,
    .gen_free = gw_lb_gen_free,
    .worker_start = gw_lb_worker_start,
    .on_connection = gw_lb_on_connection,
    .worker_drain = gw_lb_worker_drain,
    .worker_force_close = gw_lb_worker_force_close,
    .worker_stop = gw_lb_worker_stop,
    .control_start = gw_lb_control_start,
    .control_stop = gw_lb_control_stop,
};
