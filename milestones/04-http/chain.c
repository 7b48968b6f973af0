/* chain.c - see chain.h.
 *
 * The chain keeps per-route state in arrays parallel to the config (listener index, route
 * index, middleware index), built once by gw_chain_new, so a request finds its state by
 * indexing, without a lookup table and without a lock. What changes at run time is inside
 * the middleware's states (03's shared types: keyed limiters with striped locks, breakers
 * and retry budgets with atomics) and one atomic in-flight count per route. Everything else
 * is read-only once built.
 *
 * The chain knows no middleware by name: it calls the hooks of each one's ops table
 * (mw.h), found by kind. Order. Middleware run in config order on the request and in
 * reverse on the response, but two decisions are taken where they make sense rather than at
 * their position:
 *  - A middleware may refuse a request at its position, but the admit hooks (the breaker's
 *    admission, which may take a half-open trial slot) run only once every middleware let
 *    the request through: a request that a later rate_limit or jwt refuses never reaches
 *    the upstream, so it must not hold a trial.
 *  - The split target is picked after the middleware, so a sticky header may come from one
 *    of them (a jwt claim copied to X-User-Id, say). */
#include "04-http/chain.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "04-http/mw.h"
#include "04-http/tlsconf.h"
#include "error.h"
#include "httpd.h"
#include "rand.h"

/* A middleware state and the chains holding it: one, or two while a reload's new chain
 * carries it and the old one still serves requests of the generation before. Counted and
 * freed on the control thread only (gw_chain_next, gw_chain_free): workers never see it. */
typedef struct mw_box_s {
    void *state;
    const gw_mw_ops_t *ops;
    unsigned holders;
} mw_box_t;

typedef struct route_state_s {
    _Atomic unsigned inflight; /* requests between gw_chain_request and gw_chain_finish */
    void **mw;                 /* [route->nmw]: each middleware's state (box->state) */
    mw_box_t **box;            /* [route->nmw]: who owns it (NULL: no state) */
} route_state_t;

typedef struct lis_state_s {
    const gw_listener_cfg_t *lcfg;      /* its listener (the name routes are carried by) */
    const gw_http_listener_cfg_t *hcfg; /* NULL for tcp listeners */
    route_state_t *routes;              /* [hcfg->nroutes] */
} lis_state_t;

struct gw_chain_s {
    size_t nlis;
    lis_state_t *lis;           /* [nlis], parallel to cfg->listeners */
    void *shared[GW_MW_NKINDS]; /* each kind's state shared by every route (mw.h) */
    uint64_t seed[2];           /* for keys hashed from client input (gw_mw_env_t) */
};

/* ---- random numbers ----------------------------------------------------------------------- */

/* see chain.h: one step of the worker's generator (rand.h). */
uint64_t gw_hx_random(gw_hx_t *x)
{
    static _Thread_local uint64_t fallback = UINT64_C(0x2545f4914f6cdd1d);
    return gw_rand_next(x->rng != NULL ? x->rng : &fallback);
}

/* see chain.h */
const char *gw_hx_request_id(gw_hx_t *x)
{
    if (x->request_id[0] == '\0') {
        uint8_t rnd[16];
        uint64_t a = gw_hx_random(x), b = gw_hx_random(x);
        memcpy(rnd, &a, 8);
        memcpy(rnd + 8, &b, 8);
        gw_mw_request_id_fresh(rnd, x->request_id);
    }
    return x->request_id;
}

/* ---- building and freeing ----------------------------------------------------------------- */

static void box_drop(mw_box_t *b)
{
    if (b == NULL || --b->holders > 0)
        return;
    if (b->ops->state_free != NULL)
        b->ops->state_free(b->state);
    free(b);
}

/* The box of PREV's middleware of kind KIND (one per route: the loader refuses two) when its
 * state may serve CFG, or NULL. */
static mw_box_t *carried_box(const gw_http_route_t *prev, const route_state_t *prs,
                             gw_mw_kind_t kind, const void *cfg)
{
    for (size_t k = 0; prev != NULL && k < prev->nmw; k++) {
        if (prev->mw[k].kind != kind || prs->box[k] == NULL)
            continue;
        const gw_mw_ops_t *ops = gw_mw_ops(kind);
        return ops->state_keeps != NULL && ops->state_keeps(prev->mw[k].cfg, cfg) ? prs->box[k]
                                                                                  : NULL;
    }
    return NULL;
}

/* Builds the state of route R into RS (zeroed): per middleware with state, PREV's (the
 * same route in the chain before, with its state PRS; NULL: none) when it may be carried,
 * else a new one from state_new. 0, or -1 with ERR filled. */
static int route_init(gw_chain_t *c, const gw_chain_t *prevc, route_state_t *rs,
                      const gw_http_route_t *r, const gw_http_route_t *prev,
                      const route_state_t *prs, char *err, size_t errlen)
{
    atomic_init(&rs->inflight, 0);
    rs->mw = calloc(r->nmw > 0 ? r->nmw : 1, sizeof *rs->mw);
    rs->box = calloc(r->nmw > 0 ? r->nmw : 1, sizeof *rs->box);
    if (rs->mw == NULL || rs->box == NULL) {
        gw_errf(err, errlen, "route '%s': %s", r->name, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < r->nmw; i++) {
        const gw_mw_ops_t *ops = gw_mw_ops(r->mw[i].kind);
        if (ops == NULL) {
            gw_errf(err, errlen, "route '%s': %s", r->name, "unknown middleware kind");
            return -1;
        }
        if (ops->state_new == NULL)
            continue;
        mw_box_t *b = carried_box(prev, prs, r->mw[i].kind, r->mw[i].cfg);
        if (b != NULL) {
            b->holders++;
            rs->box[i] = b;
            rs->mw[i] = b->state;
            continue;
        }
        if ((b = calloc(1, sizeof *b)) == NULL) {
            gw_errf(err, errlen, "route '%s': %s", r->name, "out of memory");
            return -1;
        }
        gw_mw_env_t env = {.route = r,
                           .index = i,
                           .shared = &c->shared[r->mw[i].kind],
                           .prev_shared = prevc != NULL ? prevc->shared[r->mw[i].kind] : NULL,
                           .seed = {c->seed[0], c->seed[1]}};
        if (ops->state_new(r->mw[i].cfg, &env, &b->state, err, errlen) != 0) {
            free(b);
            return -1;
        }
        b->ops = ops;
        b->holders = 1;
        rs->box[i] = b;
        rs->mw[i] = b->state;
    }
    return 0;
}

/* PREV's state of the route named NAME on the listener named LISTENER, or NULL. */
static const route_state_t *prev_route(const gw_chain_t *prev, const char *listener,
                                       const char *name, const gw_http_route_t **route)
{
    for (size_t i = 0; prev != NULL && i < prev->nlis; i++) {
        const lis_state_t *ls = &prev->lis[i];
        if (ls->hcfg == NULL || strcmp(ls->lcfg->name, listener) != 0)
            continue;
        for (size_t r = 0; r < ls->hcfg->nroutes; r++)
            if (strcmp(ls->hcfg->routes[r].name, name) == 0) {
                *route = &ls->hcfg->routes[r];
                return &ls->routes[r];
            }
    }
    *route = NULL;
    return NULL;
}

/* see chain.h */
gw_chain_t *gw_chain_new(const gw_config_t *cfg, char *err, size_t errlen)
{
    return gw_chain_next(cfg, NULL, err, errlen);
}

/* see chain.h */
gw_chain_t *gw_chain_next(const gw_config_t *cfg, const gw_chain_t *prev, char *err, size_t errlen)
{
    gw_chain_t *c = calloc(1, sizeof *c);
    if (c == NULL || (c->lis = calloc(cfg->nlisteners + 1, sizeof *c->lis)) == NULL) {
        gw_errf(err, errlen, "out of memory");
        free(c);
        return NULL;
    }
    c->nlis = cfg->nlisteners;
    if (getrandom(c->seed, sizeof c->seed, GRND_NONBLOCK) != (ssize_t)sizeof c->seed) {
        c->seed[0] = (uint64_t)(uintptr_t)c * UINT64_C(0x9e3779b97f4a7c15);
        c->seed[1] = ~c->seed[0];
    }
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const gw_listener_cfg_t *l = &cfg->listeners[i];
        const gw_http_listener_cfg_t *h =
            l->protocol == GW_PROTO_HTTP ? gw_http_listener_cfg(l) : NULL;
        if (h == NULL)
            continue;
        c->lis[i].lcfg = l;
        c->lis[i].hcfg = h;
        c->lis[i].routes = calloc(h->nroutes + 1, sizeof *c->lis[i].routes);
        if (c->lis[i].routes == NULL) {
            gw_errf(err, errlen, "out of memory");
            gw_chain_free(c);
            return NULL;
        }
        for (size_t r = 0; r < h->nroutes; r++) {
            const gw_http_route_t *pr;
            const route_state_t *prs = prev_route(prev, l->name, h->routes[r].name, &pr);
            if (route_init(c, prev, &c->lis[i].routes[r], &h->routes[r], pr, prs, err, errlen) !=
                0) {
                gw_chain_free(c);
                return NULL;
            }
        }
    }
    return c;
}

/* see chain.h */
void gw_chain_free(gw_chain_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nlis; i++) {
        const lis_state_t *ls = &c->lis[i];
        if (ls->routes == NULL)
            continue;
        for (size_t r = 0; r < ls->hcfg->nroutes; r++) {
            const route_state_t *rs = &ls->routes[r];
            const gw_http_route_t *route = &ls->hcfg->routes[r];
            for (size_t k = 0; rs->box != NULL && k < route->nmw; k++)
                box_drop(rs->box[k]); /* a state the next chain carries stays with it */
            free(rs->mw);
            free(rs->box);
        }
        free(ls->routes);
    }
    for (size_t k = 0; k < GW_MW_NKINDS; k++) {
        const gw_mw_ops_t *ops = gw_mw_ops((gw_mw_kind_t)k);
        if (c->shared[k] != NULL && ops->shared_free != NULL)
            ops->shared_free(c->shared[k]);
    }
    free(c->lis);
    free(c);
}

/* see chain.h */
void gw_chain_reopen(gw_chain_t *c)
{
    for (size_t k = 0; c != NULL && k < GW_MW_NKINDS; k++) {
        const gw_mw_ops_t *ops = gw_mw_ops((gw_mw_kind_t)k);
        if (c->shared[k] != NULL && ops->reopen != NULL)
            ops->reopen(c->shared[k]);
    }
}

/* see chain.h */
void gw_hx_reset(gw_hx_t *x)
{
    free(x->log_method);
    free(x->log_path);
    memset(x, 0, sizeof *x);
}

/* X's route state, or NULL when X names no route of this chain. */
static route_state_t *route_state(const gw_chain_t *c, const gw_hx_t *x)
{
    if (c == NULL || x->route == NULL || x->listener >= c->nlis)
        return NULL;
    const lis_state_t *ls = &c->lis[x->listener];
    size_t r = x->route->index;
    if (ls->hcfg == NULL || r >= ls->hcfg->nroutes || &ls->hcfg->routes[r] != x->route)
        return NULL;
    return &ls->routes[r];
}

/* ---- request ------------------------------------------------------------------------------ */

/* RESP as the local answer STATUS (the middleware that chose it may have added fields). */
static int answer(gw_h1_head_t *resp, int status)
{
    if (resp->status != status) {
        const char *reason = gw_httpd_reason(status);
        if (gw_h1_head_set_status(resp, (unsigned)status, reason, strlen(reason)) != 0)
            resp->status = (uint16_t)status;
    }
    return status;
}

/* see chain.h */
int gw_chain_request(gw_chain_t *c, gw_hx_t *x, gw_h1_head_t *req, gw_h1_head_t *resp)
{
    x->target = 0;
    x->max_attempts = 1;
    x->breaker_admitted = false;
    x->preflight = false;
    route_state_t *rs = route_state(c, x);
    if (rs == NULL)
        return answer(resp, 500);
    if (!x->started)
        atomic_fetch_add_explicit(&rs->inflight, 1, memory_order_relaxed);
    x->started = true;

    const gw_http_route_t *r = x->route;
    for (size_t i = 0; i < r->nmw; i++) {
        const gw_mw_ops_t *ops = gw_mw_ops(r->mw[i].kind);
        if (ops->start != NULL)
            ops->start(r->mw[i].cfg, rs->mw[i], x, req);
    }
    for (size_t i = 0; i < r->nmw; i++) {
        const gw_mw_ops_t *ops = gw_mw_ops(r->mw[i].kind);
        int st = ops->request != NULL ? ops->request(r->mw[i].cfg, rs->mw[i], x, req, resp) : 0;
        if (st != 0)
            return answer(resp, st);
    }
    for (size_t i = 0; i < r->nmw; i++) {
        const gw_mw_ops_t *ops = gw_mw_ops(r->mw[i].kind);
        int st = ops->admit != NULL ? ops->admit(r->mw[i].cfg, rs->mw[i], x) : 0;
        if (st != 0)
            return answer(resp, st);
    }
    if (r->split.n > 1) {
        uint32_t rnd = (uint32_t)(gw_hx_random(x) >> 32);
        x->target = gw_split_pick_request(&r->split, req, r->sticky, r->sticky_name, rnd);
        if (x->target >= r->ntargets)
            x->target = 0;
    }
    return 0;
}

/* ---- response ----------------------------------------------------------------------------- */

/* see chain.h */
void gw_chain_response(gw_chain_t *c, gw_hx_t *x, const gw_h1_head_t *req, gw_h1_head_t *resp)
{
    const gw_http_route_t *r = x->route;
    route_state_t *rs = route_state(c, x);
    if (r == NULL) {
        /* No route, no middleware: only an id the exchange already has (a local answer's,
         * gw_hx_request_id), so an answer never loses it. */
        if (x->request_id[0] != '\0')
            (void)gw_h1_head_set(resp, "X-Request-ID", x->request_id, strlen(x->request_id));
        return;
    }
    for (size_t i = r->nmw; i-- > 0;) {
        const gw_mw_ops_t *ops = gw_mw_ops(r->mw[i].kind);
        if (ops->response != NULL)
            ops->response(r->mw[i].cfg, rs != NULL ? rs->mw[i] : NULL, x, req, resp);
    }
}

/* ---- trailers ----------------------------------------------------------------------------- */

/* see chain.h */
size_t gw_chain_trailers(gw_chain_t *c, const gw_hx_t *x, gw_h1_head_t *t, bool response)
{
    (void)c;
    const gw_http_route_t *r = x->route;
    const gw_mw_header_rules_t *rules = NULL;
    size_t dropped = 0;
    for (size_t i = 0; r != NULL && i < r->nmw; i++) {
        const gw_mw_ops_t *ops = gw_mw_ops(r->mw[i].kind);
        if (ops->trailers != NULL)
            dropped += ops->trailers(r->mw[i].cfg, t, response, &rules);
    }
    dropped += gw_trailers_filter(t, x->lcfg ? x->lcfg->forward_trailers : NULL, rules);
    /* mTLS: the certificate fields come from the handshake only, never from a trailer. */
    const gw_tls_listener_cfg_t *tls = x->lcfg != NULL ? x->lcfg->tls : NULL;
    if (!response && tls != NULL && tls->client_auth)
        dropped += gw_h1_head_remove(t, tls->subject_header) +
                   gw_h1_head_remove(t, tls->fingerprint_header);
    return dropped;
}

/* ---- retry -------------------------------------------------------------------------------- */

/* see chain.h */
bool gw_chain_may_retry(gw_chain_t *c, gw_hx_t *x, const char *method, unsigned attempt,
                        uint64_t *delay_ms)
{
    route_state_t *rs = route_state(c, x);
    if (rs == NULL)
        return false;
    const gw_http_route_t *r = x->route;
    unsigned active = atomic_load_explicit(&rs->inflight, memory_order_relaxed);
    for (size_t i = 0; i < r->nmw; i++) {
        const gw_mw_ops_t *ops = gw_mw_ops(r->mw[i].kind);
        if (ops->may_retry != NULL)
            return ops->may_retry(r->mw[i].cfg, rs->mw[i], x, method, attempt, active, delay_ms);
    }
    return false;
}

/* ---- finish ------------------------------------------------------------------------------- */

/* see chain.h */
void gw_chain_finish(gw_chain_t *c, gw_hx_t *x, uint64_t now_ns)
{
    route_state_t *rs = x->started ? route_state(c, x) : NULL;
    if (rs != NULL) {
        atomic_fetch_sub_explicit(&rs->inflight, 1, memory_order_relaxed);
        const gw_http_route_t *r = x->route;
        for (size_t i = 0; i < r->nmw; i++) {
            const gw_mw_ops_t *ops = gw_mw_ops(r->mw[i].kind);
            if (ops->finish != NULL)
                ops->finish(r->mw[i].cfg, rs->mw[i], x, now_ns);
        }
    }
    gw_hx_reset(x);
}

/* ---- an exchange that became a tunnel ----------------------------------------------------- */

typedef struct tail_mw_s {
    const gw_mw_ops_t *ops;
    void *state; /* held (ops->state_hold) */
} tail_mw_t;

struct gw_chain_tail_s {
    const char *route, *upstream, *backend; /* copies, in the same allocation */
    size_t n;
    tail_mw_t mw[]; /* [n], then the names */
};

/* S copied to *AT (S NULL: NULL, nothing copied); *AT moves past the copy. */
static const char *tail_copy(char **at, const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = memcpy(*at, s, n);
    *at += n;
    return d;
}

/* see chain.h */
bool gw_chain_switch(gw_chain_t *c, gw_hx_t *x, uint64_t now_ns, gw_chain_tail_t **tail)
{
    *tail = NULL;
    route_state_t *rs = x->started ? route_state(c, x) : NULL;
    if (rs == NULL)
        return true;
    const gw_http_route_t *r = x->route;
    size_t n = 0, names = strlen(r->name) + 1;
    names += x->upstream != NULL ? strlen(x->upstream) + 1 : 0;
    names += x->backend != NULL ? strlen(x->backend) + 1 : 0;
    for (size_t i = 0; i < r->nmw; i++) {
        const gw_mw_ops_t *ops = gw_mw_ops(r->mw[i].kind);
        n += ops->finish != NULL && ops->state_hold != NULL;
    }
    gw_chain_tail_t *t = malloc(sizeof *t + n * sizeof t->mw[0] + names);
    if (t == NULL)
        return false;
    char *at = (char *)&t->mw[n];
    t->route = tail_copy(&at, r->name);
    t->upstream = tail_copy(&at, x->upstream);
    t->backend = tail_copy(&at, x->backend);
    t->n = 0;
    atomic_fetch_sub_explicit(&rs->inflight, 1, memory_order_relaxed);
    for (size_t i = 0; i < r->nmw; i++) {
        const gw_mw_ops_t *ops = gw_mw_ops(r->mw[i].kind);
        if (ops->finish == NULL)
            continue;
        if (ops->state_hold == NULL) {
            ops->finish(r->mw[i].cfg, rs->mw[i], x, now_ns);
            continue;
        }
        ops->state_hold(rs->mw[i]);
        t->mw[t->n++] = (tail_mw_t){ops, rs->mw[i]};
    }
    x->started = false; /* gw_chain_finish on X now only resets it */
    x->route = NULL;
    x->route_name = t->route;
    x->upstream = t->upstream;
    x->backend = t->backend;
    *tail = t;
    return true;
}

/* see chain.h */
void gw_chain_tail_finish(gw_chain_tail_t *t, gw_hx_t *x, uint64_t now_ns)
{
    for (size_t i = 0; t != NULL && i < t->n; i++) {
        t->mw[i].ops->finish(NULL, t->mw[i].state, x, now_ns);
        t->mw[i].ops->state_drop(t->mw[i].state);
    }
    gw_hx_reset(x);
    free(t);
}

/* ---- metrics ------------------------------------------------------------------------------ */

/* see chain.h */
uint64_t gw_chain_log_lost(const gw_chain_t *c)
{
    uint64_t n = 0;
    for (size_t k = 0; c != NULL && k < GW_MW_NKINDS; k++) {
        const gw_mw_ops_t *ops = gw_mw_ops((gw_mw_kind_t)k);
        if (c->shared[k] != NULL && ops->lost != NULL)
            n += ops->lost(c->shared[k]);
    }
    return n;
}

/* see chain.h */
void gw_chain_metrics(const gw_chain_t *c, gw_prom_t *p)
{
    for (size_t k = 0; k < GW_MW_NKINDS; k++) {
        const gw_mw_ops_t *ops = gw_mw_ops((gw_mw_kind_t)k);
        if (ops->metrics != NULL)
            ops->metrics(c != NULL ? c->shared[k] : NULL, p);
    }
}
