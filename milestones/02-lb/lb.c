/* lb.c - see lb.h. */
#include "lb.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "health.h"
#include "log.h"
#include "outlier.h"

#define HOLDS_ACTIVE 1u /* gw_tcp_pick_t.flags: the pick counted one in backend->active */

#define REAP_INTERVAL_MS 1000 /* how often draining backends are looked at while listed */

/* One upstream's active checks, kept by upstream name from table to table (gw_lb_applied).
 * It holds a reference on each backend it probes, given back when its handles closed. */
typedef struct lb_checker_s {
    struct lb_checker_s *next;
    char *upstream;   /* the upstream's name */
    gw_hc_cfg_t cfg;  /* as started (uneject_on_pass set; path owned) */
    gw_backend_t **b; /* [n], held */
    size_t n;
    gw_hc_t *hc;
    bool keep; /* scratch for gw_lb_applied */
} lb_checker_t;

struct gw_lb_s {
    gw_tcp_picker_t picker; /* the runtime's layer 1: what 01's proxy picks with */
    gw_lb_hooks_t hooks;
    unsigned nworkers;
    gw_lb_carry_fn carry;
    gw_backend_exts_t exts; /* per-level extension blocks of every backend made */
    /* Control thread only. */
    uv_loop_t *loop;
    uv_timer_t reaper;
    bool reaper_open;
    lb_checker_t *checkers;
    gw_backend_t *draining; /* backends that left the configuration, until nobody holds them */
    uint64_t stamp;         /* for gw_backend_t.mark: set differences in O(n) */
};

static void on_reap(uv_timer_t *t);

/* ---- backends ----------------------------------------------------------------------------- */

/* The control thread gives back a reference on B: at 0 B is freed, unless it is draining,
 * in which case it is on the reaper's list and the reaper frees it (so that the list never
 * holds a freed object). A worker's drop never reaches 0 on a backend that is not draining:
 * while a table lists a backend the table holds it, and the control thread lists it before
 * it drops the last table's reference. */
static void backend_release(gw_backend_t *b)
{
    if (gw_backend_drop(b) && !b->draining)
        gw_backend_free(b);
}

/* see lb.h */
void gw_lb_backend_ext(gw_lb_t *lb, int level, size_t size, gw_backend_ext_cb init,
                       gw_backend_ext_cb fini, void *ctx)
{
    if (level <= 0 || level >= GW_LEVELS)
        return;
    lb->exts.size[level] = size;
    lb->exts.init[level] = init;
    lb->exts.fini[level] = fini;
    lb->exts.ctx[level] = ctx;
}

/* see lb.h */
int gw_lb_carry_by_key(const gw_lb_upstream_t *old, const gw_upstream_cfg_t *neu,
                       gw_backend_t **keep)
{
    for (size_t i = 0; i < neu->nbackends; i++) {
        keep[i] = NULL;
        for (size_t j = 0; j < old->n && keep[i] == NULL; j++)
            if (gw_backend_same(old->m[j].b, neu->name, &neu->backends[i].addr))
                keep[i] = old->m[j].b;
    }
    return 0;
}

/* see lb.h */
void gw_lb_set_carry(gw_lb_t *lb, gw_lb_carry_fn fn)
{
    lb->carry = fn != NULL ? fn : gw_lb_carry_by_key;
}

/* ---- the table ---------------------------------------------------------------------------- */

static const gw_lb_upstream_t *find_upstream(const gw_lb_table_t *t, const char *name)
{
    for (size_t i = 0; t != NULL && i < t->n; i++)
        if (strcmp(t->ups[i].cfg->name, name) == 0)
            return &t->ups[i];
    return NULL;
}

/* What the carry hook chose for U is checked before anything is held: each kept object is
 * one of OLD's, kept once, for the entry of its own identity. */
static int check_kept(gw_lb_t *lb, const gw_lb_upstream_t *old, const gw_upstream_cfg_t *uc,
                      gw_backend_t **keep)
{
    uint64_t seen = ++lb->stamp, mine = ++lb->stamp;
    for (size_t j = 0; j < old->n; j++)
        old->m[j].b->mark = mine;
    for (size_t i = 0; i < uc->nbackends; i++) {
        gw_backend_t *b = keep[i];
        if (b == NULL)
            continue;
        if (b->mark != mine || !gw_backend_same(b, uc->name, &uc->backends[i].addr)) {
            gw_error("upstream '%s': the carry hook kept a backend for %s that is not its own",
                     uc->name, uc->backends[i].address_text);
            return GW_EINVAL;
        }
        b->mark = seen;
    }
    return 0;
}

/* Fills U (upstream POS of CFG) with members: carried from OLD (NULL: none) through the
 * carry hook, or fresh. Every member's backend is held by the table. */
static int upstream_init(gw_lb_t *lb, gw_lb_upstream_t *u, const gw_upstream_cfg_t *uc, size_t pos,
                         const gw_lb_upstream_t *old)
{
    u->cfg = uc;
    u->pos = pos;
    u->lb = gw_lb_upstream_cfg(uc);
    u->m = calloc(uc->nbackends ? uc->nbackends : 1, sizeof *u->m);
    u->ptrs = calloc(uc->nbackends ? uc->nbackends : 1, sizeof *u->ptrs);
    if (u->m == NULL || u->ptrs == NULL)
        return GW_ENOMEM;
    if (old != NULL) {
        int rc = lb->carry(old, uc, u->ptrs);
        if (rc == 0)
            rc = check_kept(lb, old, uc, u->ptrs);
        if (rc != 0) {
            memset(u->ptrs, 0, uc->nbackends * sizeof *u->ptrs);
            return rc;
        }
    }
    for (size_t i = 0; i < uc->nbackends; i++, u->n++) {
        gw_backend_t *b = u->ptrs[i];
        if (b != NULL)
            gw_backend_hold(b);
        else if ((b = gw_backend_new(uc->name, &uc->backends[i].addr, &lb->exts)) == NULL)
            break;
        else if (u->lb->health_check.type != GW_HC_NONE && u->lb->health_check.start_unhealthy)
            atomic_store(&b->health, GW_HEALTH_UNHEALTHY); /* new: serves once `rise` passed */
        u->ptrs[i] = b;
        gw_backend_member_init(&u->m[i], b, gw_lb_backend_weight(&uc->backends[i]),
                               &uc->backends[i]);
        u->m[i].up = u;
        u->m[i].pos = i;
    }
    if (u->n < uc->nbackends) {
        memset(u->ptrs + u->n, 0, (uc->nbackends - u->n) * sizeof *u->ptrs);
        return GW_ENOMEM;
    }
    return 0;
}

/* see lb.h */
void gw_lb_table_free(void *table)
{
    gw_lb_table_t *t = table;
    if (t == NULL)
        return;
    for (size_t i = 0; t->bal != NULL && i < (size_t)t->nworkers * t->n; i++)
        gw_balancer_free(t->bal[i]);
    for (size_t i = 0; t->ups != NULL && i < t->n; i++) {
        for (size_t k = 0; k < t->ups[i].n; k++)
            backend_release(t->ups[i].m[k].b);
        free(t->ups[i].m);
        free(t->ups[i].ptrs);
    }
    free(t->ups);
    free(t->bal);
    free(t->scratch);
    free(t);
}

/* Every worker's balancers, built now: a worker never allocates to pick. Worker W's seeds are
 * those it always had (0x5eed0000 + 7919 W, plus the upstream's position). */
static int build_balancers(gw_lb_table_t *t)
{
    size_t most = 1;
    for (size_t i = 0; i < t->n; i++)
        most = t->ups[i].n > most ? t->ups[i].n : most;
    t->stride = (most + 63) / 64 * 64; /* a cache line of its own per worker */
    t->scratch = calloc(t->nworkers, t->stride);
    t->bal = calloc((size_t)t->nworkers * (t->n ? t->n : 1), sizeof *t->bal);
    if (t->scratch == NULL || t->bal == NULL)
        return GW_ENOMEM;
    for (unsigned w = 0; w < t->nworkers; w++) {
        uint64_t seed = 0x5eed0000u + 7919u * w;
        for (size_t i = 0; i < t->n; i++) {
            const gw_lb_upstream_t *u = &t->ups[i];
            t->bal[w * t->n + i] = gw_balancer_new(u->lb->balancer, u->m, u->n, seed + i);
            if (t->bal[w * t->n + i] == NULL)
                return GW_ENOMEM;
        }
    }
    return 0;
}

/* see lb.h */
gw_lb_table_t *gw_lb_build(gw_lb_t *lb, const gw_config_t *cfg, const gw_lb_table_t *prev)
{
    gw_lb_table_t *t = calloc(1, sizeof *t);
    if (t == NULL ||
        (t->ups = calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof *t->ups)) == NULL) {
        free(t);
        return NULL;
    }
    t->cfg = cfg;
    t->nworkers = lb->nworkers;
    for (size_t i = 0; i < cfg->nupstreams; i++, t->n++) {
        const gw_upstream_cfg_t *uc = &cfg->upstreams[i];
        if (upstream_init(lb, &t->ups[i], uc, i, find_upstream(prev, uc->name)) != 0) {
            t->n++; /* what it holds is given back with the rest */
            gw_lb_table_free(t);
            return NULL;
        }
    }
    if (build_balancers(t) != 0) {
        gw_lb_table_free(t);
        return NULL;
    }
    return t;
}

/* see lb.h */
size_t gw_lb_usable(const gw_lb_upstream_t *u, uint64_t now_ms, bool *usable, bool *panic)
{
    size_t ok = 0;
    for (size_t i = 0; i < u->n; i++)
        ok += (usable[i] = gw_backend_usable(u->m[i].b, now_ms));
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
static const gw_lb_member_t *choose(gw_lb_t *lb, gw_balancer_t *bal, const gw_lb_upstream_t *u,
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
        const gw_lb_member_t *m = &u->m[idx];
        if (h->claim == NULL || h->claim(h->ctx, u, m->b, tok, now))
            return m;
        usable[idx] = false;
    }
    return NULL;
}

/* see lb.h */
const gw_addr_t *gw_lb_pick_upstream(gw_lb_t *lb, gw_worker_t *w, gw_snap_t *gen, size_t upstream,
                                     const struct sockaddr *client, unsigned attempt,
                                     gw_tcp_pick_t *tok)
{
    if (attempt == 0) {
        /* A connection (a tunnel, a slow exchange) can outlive any number of loop turns:
         * it holds the table by a pin, not by the quiescent-state rule alone (snapshot.h).
         * A pin is this worker's own counter, so a pick costs no locked instruction on a
         * word every worker writes; it is given back on this thread, in lb_report (a pair's
         * once connected, anything else's at the close). The member the pick chooses points
         * into this table, so the pin keeps it valid. */
        if (gen != NULL)
            gw_snap_repin(gen, w->id); /* the caller's generation: one request, one config */
        tok->ref = gen != NULL ? gen : gw_snap_pin(&w->rt->snap, w->id);
        tok->backend = NULL;
        tok->flags &= ~GW_LB_DETACHED;
        if (!(tok->flags & GW_LB_KEEP_TRIED))
            tok->tried = 0;
        tok->flags &= ~GW_LB_KEEP_TRIED;
    }
    const gw_lb_table_t *t = tok->ref ? gw_lb_gen_table(((gw_snap_t *)tok->ref)->data) : NULL;
    if (t == NULL || upstream >= t->n || w->id >= t->nworkers)
        return NULL;
    const gw_lb_upstream_t *u = &t->ups[upstream];
    if (attempt >= u->lb->max_connect_attempts)
        return NULL;
    bool panic, *usable = t->scratch + w->id * t->stride;
    uint64_t now = gw_clock_mono_ms(&gw_clock_system);
    gw_lb_usable(u, now, usable, &panic);
    const gw_lb_member_t *prev = gw_lb_tok_member(tok); /* same table: same pin */
    gw_pick_t p = {.usable = usable,
                   .avoid = prev != NULL ? prev->pos : SIZE_MAX,
                   .key = u->lb->hash_client_ip ? gw_hash_client_ip(client) : 0};
    const gw_lb_member_t *m = choose(lb, t->bal[w->id * t->n + upstream], u, usable, &p, tok, now);
    if (m == NULL)
        return NULL;
    atomic_fetch_add_explicit(&m->b->active, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->b->picks, 1, memory_order_relaxed);
    tok->backend = (void *)m; /* gw_tcp_pick_t's is untyped: lb.h's accessors read it */
    tok->flags |= HOLDS_ACTIVE;
    if (m->pos < 64)
        tok->tried |= (uint64_t)1 << m->pos;
    return &m->b->addr;
}

/* A tcp listener's pick: the upstream is the one L names in the generation the pick runs
 * in (pinned at attempt 0, kept for the retries), so the index and the table it indexes
 * come from one configuration. A listener that generation no longer has gets no backend. */
static const gw_addr_t *lb_pick(void *ctx, gw_worker_t *w, const gw_listener_t *l,
                                const struct sockaddr *client, unsigned attempt, gw_tcp_pick_t *tok)
{
    gw_snap_t *s = attempt == 0 ? gw_snap_pin(&w->rt->snap, w->id) : tok->ref;
    const gw_glistener_t *gl = s != NULL ? gw_gen_listener(s->data, l) : NULL;
    const gw_addr_t *a = NULL;
    if (attempt == 0)
        tok->flags |= GW_LB_PAIR;
    if (gl != NULL)
        a = gw_lb_pick_upstream(ctx, w, s, gl->cfg->upstream_index, client, attempt, tok);
    if (attempt == 0 && s != NULL)
        gw_snap_unpin(s, w->id); /* the pick holds its own pin now, if it picked */
    return a;
}

/* see lb.h. The hold is taken while the pinned table still lists the backend, so the count
 * is not 0 (gw_backend_hold's rule). */
void gw_lb_tok_detach(gw_worker_t *w, gw_tcp_pick_t *tok)
{
    gw_backend_t *b = gw_lb_tok_backend(tok);
    if (b == NULL || (tok->flags & GW_LB_DETACHED) || tok->ref == NULL)
        return;
    gw_backend_hold(b);
    tok->backend = b;
    tok->flags |= GW_LB_DETACHED;
    gw_snap_unpin(tok->ref, w->id);
    tok->ref = NULL;
}

/* A detached pair's backend B as the generation published now lists it (borrowed for this
 * turn), or NULL once B left the configuration: what its outlier options and share limit
 * are now. A linear walk, only at a close that has a failure to account. */
static const gw_lb_member_t *member_now(gw_worker_t *w, const gw_backend_t *b)
{
    const gw_lb_upstream_t *u =
        b->upstream_name != NULL
            ? find_upstream(gw_lb_gen_table(gw_gen_current(w->rt)), b->upstream_name)
            : NULL;
    for (size_t k = 0; u != NULL && k < u->n; k++)
        if (u->m[k].b == b)
            return &u->m[k];
    return NULL;
}

static void release_active(gw_tcp_pick_t *tok)
{
    gw_backend_t *b = gw_lb_tok_backend(tok);
    if (b != NULL && (tok->flags & HOLDS_ACTIVE)) {
        atomic_fetch_sub_explicit(&b->active, 1, memory_order_relaxed);
        tok->flags &= ~HOLDS_ACTIVE;
    }
}

/* The share limit counts the members of M's upstream in M's table: the pick's. */
static void passive_failure(const gw_lb_member_t *m)
{
    const gw_lb_upstream_t *u = m->up;
    const gw_outlier_cfg_t *o = &u->lb->outlier;
    atomic_fetch_add_explicit(&m->b->failures, 1, memory_order_relaxed);
    if (o->consecutive_failures > 0 || o->consecutive_gateway_errors > 0 || o->consecutive_5xx > 0)
        gw_outlier_failure(o, m->b, u->ptrs, u->n, gw_clock_mono_ms(&gw_clock_system));
}

/* see lb.h */
void gw_lb_response(const gw_tcp_pick_t *tok, unsigned status)
{
    const gw_lb_member_t *m = gw_lb_tok_member(tok);
    if (m == NULL)
        return;
    const gw_lb_upstream_t *u = m->up;
    /* Only a 5xx needs the time (to eject): no clock read for the answers that end a run. */
    uint64_t now = status >= 500 && status <= 599 ? gw_clock_mono_ms(&gw_clock_system) : 0;
    gw_outlier_response(&u->lb->outlier, m->b, u->ptrs, u->n, status, now);
}

static void lb_report(void *ctx, gw_worker_t *w, gw_tcp_pick_t *tok, int status)
{
    gw_lb_t *lb = ctx;
    gw_backend_t *b = gw_lb_tok_backend(tok);
    const gw_lb_member_t *m = gw_lb_tok_member(tok);
    if (m == NULL && b != NULL && status == GW_TCP_CLOSED_BACKEND_ERROR)
        m = member_now(w, b); /* a detached pair's failure, accounted as the config is now */
    if (lb->hooks.outcome != NULL)
        lb->hooks.outcome(lb->hooks.ctx, w, m != NULL ? m->up : NULL, b, tok, status,
                          gw_clock_mono_ms(&gw_clock_system));
    if (status == 0) { /* connected: the count stays until the close */
        gw_outlier_success(b);
        if (tok->flags & GW_LB_PAIR)
            gw_lb_tok_detach(w, tok);
        return;
    }
    if (status < 0) { /* this attempt failed; tok->backend stays, so a retry avoids it */
        release_active(tok);
        if (m != NULL)
            passive_failure(m);
        return;
    }
    release_active(tok);
    if (status == GW_TCP_CLOSED_BACKEND_ERROR && m != NULL)
        passive_failure(m);
    else if (status == GW_TCP_CLOSED_BACKEND_ERROR && b != NULL) /* it left: count, no more */
        atomic_fetch_add_explicit(&b->failures, 1, memory_order_relaxed);
    if (tok->flags & GW_LB_DETACHED) {
        /* A worker's drop never frees: 02's reaper does, on the control thread (lb.h). */
        (void)gw_backend_drop(b);
        tok->backend = NULL;
        tok->flags &= ~GW_LB_DETACHED;
    }
    tok->flags &= ~GW_LB_PAIR;
    if (tok->ref != NULL) {
        gw_snap_unpin(tok->ref, w->id); /* last: M points into the pinned table */
        tok->ref = NULL;
    }
}

static bool lb_retry(void *ctx, gw_worker_t *w, gw_tcp_pick_t *tok, unsigned attempt,
                     uint64_t *delay_ms)
{
    gw_lb_t *lb = ctx;
    const gw_lb_member_t *m = gw_lb_tok_member(tok);
    const gw_lb_upstream_t *u = m != NULL ? m->up : NULL;
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

/* A client of L is worth a getpeername when L's upstream hashes client addresses in the
 * generation published now (borrowed for this call), or when a later milestone's admit
 * looks at them (03's per-client limits). */
static bool lb_wants_client(void *ctx, gw_worker_t *w, const gw_listener_t *l)
{
    gw_lb_t *lb = ctx;
    const gw_gen_t *g = gw_gen_current(w->rt);
    const gw_lb_table_t *t = gw_lb_gen_table(g);
    const gw_glistener_t *gl = g != NULL ? gw_gen_listener(g, l) : NULL;
    if (t != NULL && gl != NULL && gl->cfg->upstream_index < t->n &&
        t->ups[gl->cfg->upstream_index].lb->hash_client_ip)
        return true;
    return lb->hooks.wants_client != NULL && lb->hooks.wants_client(lb->hooks.ctx, w, l);
}

/* see lb.h */
void gw_lb_set_hooks(gw_lb_t *lb, const gw_lb_hooks_t *hooks)
{
    lb->hooks = *hooks;
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

/* ---- after a publish: draining and health checks (control thread) ------------------------ */

/* Backends of PREV that NEU does not list leave: DRAINING (a store, not the checkers' CAS:
 * leaving wins over any verdict), logged, and listed for the reaper. */
static void drain_gone(gw_lb_t *lb, const gw_lb_table_t *neu, const gw_lb_table_t *prev)
{
    uint64_t in = ++lb->stamp;
    for (size_t i = 0; i < neu->n; i++)
        for (size_t k = 0; k < neu->ups[i].n; k++)
            neu->ups[i].m[k].b->mark = in;
    for (size_t i = 0; prev != NULL && i < prev->n; i++) {
        for (size_t k = 0; k < prev->ups[i].n; k++) {
            gw_backend_t *b = prev->ups[i].m[k].b;
            if (b->mark == in || b->draining)
                continue;
            b->draining = true;
            atomic_store(&b->health, GW_HEALTH_DRAINING);
            b->next_draining = lb->draining;
            lb->draining = b;
            gw_info("upstream '%s': backend %s left the configuration: draining", b->upstream_name,
                    b->name);
        }
    }
    if (lb->draining != NULL && lb->reaper_open && !uv_is_active((uv_handle_t *)&lb->reaper))
        uv_timer_start(&lb->reaper, on_reap, REAP_INTERVAL_MS, REAP_INTERVAL_MS);
}

static void checker_free(lb_checker_t *c)
{
    for (size_t i = 0; c->b != NULL && i < c->n; i++)
        backend_release(c->b[i]);
    free(c->b);
    free(c->cfg.path);
    free(c->upstream);
    free(c);
}

static void on_checker_done(void *arg)
{
    checker_free(arg);
}

/* Unlinks C and stops it; its references go once its handles closed. */
static void checker_stop(gw_lb_t *lb, lb_checker_t *c)
{
    for (lb_checker_t **pp = &lb->checkers; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    gw_hc_stop(c->hc, on_checker_done, c);
}

/* Starts checks of U's backends with WANT, holding each backend; NULL when out of memory. */
static lb_checker_t *checker_start(gw_lb_t *lb, const gw_lb_upstream_t *u, const gw_hc_cfg_t *want)
{
    lb_checker_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->cfg = *want;
    c->cfg.path = NULL;
    c->upstream = strdup(u->cfg->name);
    c->b = calloc(u->n ? u->n : 1, sizeof *c->b);
    if (c->upstream == NULL || c->b == NULL ||
        (want->path != NULL && (c->cfg.path = strdup(want->path)) == NULL)) {
        checker_free(c);
        return NULL;
    }
    for (; c->n < u->n; c->n++) {
        c->b[c->n] = u->m[c->n].b;
        gw_backend_hold(c->b[c->n]);
    }
    c->hc =
        gw_hc_start(lb->loop, &c->cfg, c->b, c->n, c->upstream, 0x9e3779b97f4a7c15u * (u->pos + 1));
    if (c->hc == NULL) {
        checker_free(c);
        return NULL;
    }
    c->next = lb->checkers;
    lb->checkers = c;
    return c;
}

static const char *path_or_root(const char *p)
{
    return p != NULL ? p : "/";
}

/* Two checks that would probe the same way (hc.h's fields, proxy_protocol included). */
static bool hc_same(const gw_hc_cfg_t *a, const gw_hc_cfg_t *b)
{
    return a->type == b->type && a->interval_ms == b->interval_ms &&
           a->timeout_ms == b->timeout_ms && a->status_lo == b->status_lo &&
           a->status_hi == b->status_hi && a->rise == b->rise && a->fall == b->fall &&
           a->uneject_on_pass == b->uneject_on_pass && a->proxy_protocol == b->proxy_protocol &&
           strcmp(path_or_root(a->path), path_or_root(b->path)) == 0;
}

/* C probes exactly U's backend objects, in U's order. */
static bool same_backends(const lb_checker_t *c, const gw_lb_upstream_t *u)
{
    if (c->n != u->n)
        return false;
    for (size_t i = 0; i < u->n; i++)
        if (c->b[i] != u->m[i].b)
            return false;
    return true;
}

static lb_checker_t *checker_find(gw_lb_t *lb, const char *upstream)
{
    for (lb_checker_t *c = lb->checkers; c != NULL; c = c->next)
        if (strcmp(c->upstream, upstream) == 0)
            return c;
    return NULL;
}

/* see lb.h */
const gw_hc_t *gw_lb_checker(const gw_lb_t *lb, const char *upstream)
{
    lb_checker_t *c = checker_find((gw_lb_t *)lb, upstream);
    return c != NULL ? c->hc : NULL;
}

/* One checker per upstream of NEU that has checks: kept when nothing it probes or how it
 * probes changed, started anew otherwise; the others stop. */
static int sync_checkers(gw_lb_t *lb, const gw_lb_table_t *neu)
{
    int rc = 0;
    for (lb_checker_t *c = lb->checkers; c != NULL; c = c->next)
        c->keep = false;
    for (size_t i = 0; i < neu->n; i++) {
        const gw_lb_upstream_t *u = &neu->ups[i];
        if (u->lb->health_check.type == GW_HC_NONE)
            continue;
        gw_hc_cfg_t want = u->lb->health_check;
        want.uneject_on_pass = u->lb->outlier.uneject_on_active_pass;
        lb_checker_t *c = checker_find(lb, u->cfg->name);
        if (c != NULL && hc_same(&c->cfg, &want) && same_backends(c, u)) {
            c->keep = true;
            continue;
        }
        if (c != NULL)
            checker_stop(lb, c);
        if ((c = checker_start(lb, u, &want)) == NULL) {
            gw_error("upstream '%s': cannot start health checks", u->cfg->name);
            rc = GW_ENOMEM;
            continue;
        }
        c->keep = true;
    }
    for (lb_checker_t *c = lb->checkers, *next; c != NULL; c = next) {
        next = c->next;
        if (!c->keep)
            checker_stop(lb, c);
    }
    return rc;
}

/* see lb.h */
int gw_lb_applied(gw_lb_t *lb, const gw_lb_table_t *neu, const gw_lb_table_t *prev)
{
    drain_gone(lb, neu, prev);
    return sync_checkers(lb, neu);
}

/* see lb.h */
size_t gw_lb_reap(gw_lb_t *lb)
{
    size_t left = 0;
    for (gw_backend_t **pp = &lb->draining; *pp != NULL;) {
        gw_backend_t *b = *pp;
        /* Acquire: every holder's last use happened before its drop (gw_backend_drop). A
         * count of 0 stays 0: new holders come only through a table, and none lists B. */
        if (atomic_load_explicit(&b->refs, memory_order_acquire) == 0) {
            *pp = b->next_draining;
            gw_debug("upstream '%s': backend %s drained: freed", b->upstream_name, b->name);
            gw_backend_free(b);
        } else {
            pp = &b->next_draining;
            left++;
        }
    }
    return left;
}

static void on_reap(uv_timer_t *t)
{
    if (gw_lb_reap(t->data) == 0)
        uv_timer_stop(t);
}

/* see lb.h */
gw_backend_t *gw_lb_draining_first(const gw_lb_t *lb)
{
    return lb->draining;
}

/* see lb.h */
gw_backend_t *gw_lb_draining_next(const gw_backend_t *b)
{
    return b->next_draining;
}

/* see lb.h */
int gw_lb_control_open(gw_lb_t *lb, uv_loop_t *loop)
{
    int rc = uv_timer_init(loop, &lb->reaper);
    if (rc != 0)
        return rc;
    lb->loop = loop;
    lb->reaper.data = lb;
    lb->reaper_open = true;
    return 0;
}

/* see lb.h */
void gw_lb_control_close(gw_lb_t *lb)
{
    while (lb->checkers != NULL)
        checker_stop(lb, lb->checkers);
    if (lb->reaper_open)
        uv_close((uv_handle_t *)&lb->reaper, NULL);
    lb->reaper_open = false;
    gw_lb_reap(lb);
}

/* ---- the application ---------------------------------------------------------------------- */

/* see lb.h: 02's part of generation G, carrying backends from PREV's table (by key, or by
 * the carry hook milestone 05 installs). */
int gw_lb_gen_build(gw_runtime_t *rt, gw_gen_t *g, const gw_gen_t *prev, FILE *errs)
{
    gw_lb_t *lb = gw_runtime_layer(rt, 2);
    g->layers[2] = gw_lb_build(lb, g->cfg, prev != NULL ? gw_lb_gen_table(prev) : NULL);
    if (g->layers[2] == NULL) {
        fprintf(errs, "%s: cannot build the upstream table (out of memory, or a carry refused)\n",
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

/* see lb.h: backends G dropped drain, health checkers follow G's backends. */
void gw_lb_gen_applied(gw_runtime_t *rt, const gw_gen_t *g, const gw_gen_t *prev)
{
    gw_lb_t *lb = gw_runtime_layer(rt, 2);
    if (gw_lb_applied(lb, gw_lb_gen_table(g), prev != NULL ? gw_lb_gen_table(prev) : NULL) != 0)
        gw_error("some health checks could not start (out of memory): those upstreams are "
                 "served without active checks");
}

/* see lb.h: generation 1 was built already (gen_build); its checkers start in gen_applied. */
int gw_lb_control_start(gw_runtime_t *rt)
{
    gw_lb_t *lb = gw_runtime_layer(rt, 2);
    const gw_lb_table_t *t = gw_lb_gen_table(gw_gen_current(rt));
    for (size_t i = 0; i < t->n; i++)
        describe(&t->ups[i]);
    return gw_lb_control_open(lb, &rt->loop);
}

/* see lb.h */
void gw_lb_control_stop(gw_runtime_t *rt)
{
    gw_lb_control_close(gw_runtime_layer(rt, 2));
}

/* see lb.h */
void gw_lb_worker_stop(gw_worker_t *w)
{
    gw_tcp_worker_stop(w);
}

/* see lb.h */
int gw_lb_prepare(const gw_config_t *cfg, void **layers)
{
    gw_lb_t *lb = calloc(1, sizeof *lb);
    if (lb == NULL)
        return GW_ENOMEM;
    layers[2] = lb;
    lb->nworkers = cfg->workers;
    lb->carry = gw_lb_carry_by_key;
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
                                   .wants_client = lb_wants_client,
                                   .max_attempts = attempts,
                                   .ctx = lb};
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
    /* Every table was freed before (the runtime's snapshots go first): what is still listed
     * is held by nobody, unless a holder leaked, which LeakSanitizer then reports. */
    if (gw_lb_reap(lb) != 0)
        gw_warn("%zu draining backend(s) still held at exit", gw_lb_reap(lb));
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

void gw_lb_worker_listener_gone(gw_worker_t *w, gw_listener_t *l)
{
    gw_tcp_worker_listener_gone(w, l);
}

/* Every hook goes to 01's (gw_tcp_app), through the functions above. */
const gw_app_t gw_lb_app = {
    .gen_build = gw_lb_gen_build,
    .gen_free = gw_lb_gen_free,
    .gen_applied = gw_lb_gen_applied,
    .worker_start = gw_lb_worker_start,
    .on_connection = gw_lb_on_connection,
    .worker_drain = gw_lb_worker_drain,
    .worker_force_close = gw_lb_worker_force_close,
    .worker_listener_gone = gw_lb_worker_listener_gone,
    .worker_stop = gw_lb_worker_stop,
    .control_start = gw_lb_control_start,
    .control_stop = gw_lb_control_stop,
};
