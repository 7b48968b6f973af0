/* res.c - see res.h.
 *
 * Where each mechanism sits on a connection's path:
 *   accept ── admit: global bucket, then the client's bucket ── 01's max_connections
 *   pick ──── usable: breaker closed (or half-open with a trial free) ── claim: the trial
 *   connect ─ outcome: breaker record, connect latency histogram, budget released
 *   failure ─ retry: budget acquired, backoff with full jitter ── pick again
 *
 * Where each piece of state lives (issue 17: state follows configuration generations):
 *   - a backend's breaker: in the backend object (its level-3 extension), so it goes
 *     wherever 02 carries the backend;
 *   - everything else per listener or per upstream: in 03's part of a generation
 *     (res_gen_t, g->layers[3]), built by gen_build. Its entries are small refcounted
 *     objects that the next generation takes over by key when they stay: an upstream's
 *     budget and counters by upstream name, a listener's counters by listener identity (the
 *     gw_listener_t object, i.e. its address), and its limiter too while the limiter's
 *     options are equal. The counts are plain: only the control thread builds and frees
 *     generations.
 *   - positions: rg->ups[u->pos] with U from the same generation's table, rg->lis[gl->pos]
 *     with GL from the same generation. A position never crosses generations.
 * Worker code reaches a generation in one of two ways: a pick pins one (tok->ref, a
 * gw_snap_t whose data is the gw_gen_t), which the outcome and retry hooks read while the
 * connection connects (a connected pair lets it go and holds its backend: 02 then passes
 * the upstream as the generation published now lists it, and tok->ref is NULL); admission
 * and wants_client borrow the one published now (gw_gen_current) for their call. */
#include "res.h"

#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "clock.h"
#include "error.h"
#include "log.h"
#include "metrics.h"
#include "ratelimit.h"
#include "retry.h"

#define TRIAL (1u << 8)      /* gw_tcp_pick_t.flags: this attempt holds a half-open trial */
#define RETRY_HELD (1u << 9) /* ...this attempt holds a retry budget slot */

#define CACHE_LINE 64

/* 03's part of every backend (its level-3 extension, lb.h's gw_lb_backend_ext): the breaker
 * lives with the backend object, so it follows the backend from table to table and goes
 * with it. */
typedef struct res_backend_s {
    gw_breaker_t breaker;
} res_backend_t;

static gw_breaker_t *breaker_of(const gw_backend_t *b)
{
    return &((res_backend_t *)b->ext[3])->breaker;
}

static void res_backend_init(void *ctx, gw_backend_t *b, void *ext)
{
    (void)ctx;
    (void)b;
    gw_breaker_init(&((res_backend_t *)ext)->breaker);
}

/* One worker's counters of one upstream: written by that worker only, summed by the scrape
 * (metrics.h). Aligned so that two workers never write one cache line. */
typedef struct res_up_worker_s {
    gw_histogram_t connect_time;
    gw_counter_t retries, retries_denied;
} __attribute__((aligned(CACHE_LINE))) res_up_worker_t;

/* An upstream's state, carried by upstream name from generation to generation. */
typedef struct res_up_s {
    char *name;
    unsigned refs; /* generations listing it (control thread) */
    gw_retry_budget_t budget;
    res_up_worker_t *w; /* [nworkers] */
} res_up_t;

/* One worker's rate-limit counters of one listener (as res_up_worker_t). */
typedef struct res_lis_worker_s {
    gw_counter_t limited_global, limited_client;
} __attribute__((aligned(CACHE_LINE))) res_lis_worker_t;

/* A listener's counters, carried by listener identity whatever its limits become. */
typedef struct res_lcount_s {
    const gw_listener_t *obj;
    unsigned refs;
    res_lis_worker_t *w; /* [nworkers] */
} res_lcount_t;

/* A listener's limiter: carried by listener identity while the options it was built with
 * are the new generation's too; otherwise the new generation gets a fresh one (a bucket
 * built for another rate would admit by the old one's debt). */
typedef struct res_limiter_s {
    unsigned refs;
    gw_res_listener_cfg_t opts; /* as built */
    bool has_global;
    gw_bucket_t global;
    gw_keyed_limiter_t *clients; /* NULL: no per-client limit */
} res_limiter_t;

typedef struct res_lis_s {
    res_limiter_t *lim;   /* NULL: this listener has no rate limit */
    res_lcount_t *counts; /* never NULL once built */
} res_lis_t;

/* 03's part of a generation (g->layers[3]). */
typedef struct res_gen_s {
    res_up_t **ups; /* [nups]: the generation's 02 table's positions (u->pos) */
    size_t nups;
    res_lis_t *lis; /* [nlis]: the generation's listener positions (gl->pos) */
    size_t nlis;
    bool any_limit; /* some listener has a limiter: admission has work to do */
} res_gen_t;

/* Process-lifetime per-worker state. */
typedef struct res_worker_s {
    uint64_t rng; /* backoff jitter */
} __attribute__((aligned(CACHE_LINE))) res_worker_t;

typedef struct gw_res_s {
    gw_lb_t *lb; /* 02's layer, whose hooks lead here */
    gw_runtime_t *rt;
    unsigned nworkers;     /* `workers` needs a restart: the startup config's */
    res_worker_t *workers; /* [nworkers] */
    gw_admin_t *admin;
    uint64_t started_ms;
    /* Milestone 05's admin routes (gw_res_admin_extra): POST /reload, GET /config. */
    int (*extra_reload)(void *ctx, json_t **body);
    char *(*extra_config)(void *ctx, size_t *len);
    void *extra_ctx;
} gw_res_t;

/* Zeroed memory for N elements of SIZE bytes (a multiple of CACHE_LINE) on a cache line. */
static void *calloc_lines(size_t n, size_t size)
{
    size_t bytes = (n ? n : 1) * size;
    void *p = aligned_alloc(CACHE_LINE, bytes);
    if (p != NULL)
        memset(p, 0, bytes);
    return p;
}

/* The generation a pick pinned (tok->ref), and 03's part of it. */
static const res_gen_t *tok_gen(const gw_tcp_pick_t *tok)
{
    const gw_snap_t *s = tok->ref;
    return s != NULL ? ((const gw_gen_t *)s->data)->layers[3] : NULL;
}

/* U's state in the generation TOK pinned; U comes from that generation's table (02 passes
 * the pick's member's upstream), so u->pos is a position of the same generation. */
static res_up_t *tok_up(const gw_tcp_pick_t *tok, const gw_lb_upstream_t *u)
{
    const res_gen_t *rg = tok_gen(tok);
    return rg != NULL && u->pos < rg->nups ? rg->ups[u->pos] : NULL;
}

/* 03's options of upstream U: a pure function of U's config, whichever generation. */
static const gw_res_upstream_cfg_t *up_cfg(const gw_lb_upstream_t *u)
{
    return gw_res_upstream_cfg(u->cfg);
}

/* ---- admission: rate limits ----------------------------------------------------------- */

/* The bytes of the client's address (not the port): one bucket per host. */
static size_t client_key(const struct sockaddr *sa, const void **key)
{
    if (sa->sa_family == AF_INET) {
        *key = &((const struct sockaddr_in *)sa)->sin_addr;
        return 4;
    }
    if (sa->sa_family == AF_INET6) {
        *key = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return 16;
    }
    return 0;
}

/* L's limits in the generation published now (borrowed: valid within the caller's loop
 * turn), or NULL when it has none. */
static const res_lis_t *limits_now(gw_worker_t *w, const gw_listener_t *l)
{
    const gw_gen_t *g = gw_gen_current(w->rt);
    const res_gen_t *rg = g != NULL ? g->layers[3] : NULL;
    if (rg == NULL || !rg->any_limit)
        return NULL;
    const gw_glistener_t *gl = gw_gen_listener(g, l);
    const res_lis_t *rl = gl != NULL && gl->pos < rg->nlis ? &rg->lis[gl->pos] : NULL;
    return rl != NULL && rl->lim != NULL ? rl : NULL;
}

/* Installed whatever the config says, so that a reload can add limits: with none in the
 * generation published now it returns at once. The generation is borrowed (this call ends
 * within the loop turn). A listener that generation no longer has (removed; this worker
 * has not closed its socket yet) is admitted without limits. */
static bool res_admit(void *ctx, gw_worker_t *w, const gw_listener_t *l,
                      const struct sockaddr *client)
{
    (void)ctx;
    const res_lis_t *rl = limits_now(w, l);
    if (rl == NULL)
        return true;
    res_lis_worker_t *cw = &rl->counts->w[w->id];
    uint64_t now = gw_clock_mono_ns(&gw_clock_system);
    if (rl->lim->has_global && !gw_bucket_take(&rl->lim->global, now)) {
        gw_counter_inc(&cw->limited_global);
        return false;
    }
    const void *key;
    size_t len = rl->lim->clients != NULL ? client_key(client, &key) : 0;
    if (len > 0 && !gw_keyed_take(rl->lim->clients, key, len, now)) {
        gw_counter_inc(&cw->limited_client);
        return false;
    }
    return true;
}

/* Whether res_admit will look at the address of a client of L: only a per-client limit
 * does (the global one counts connections), so a listener without one costs 01 no
 * getpeername per accept. */
static bool res_wants_client(void *ctx, gw_worker_t *w, const gw_listener_t *l)
{
    (void)ctx;
    const res_lis_t *rl = limits_now(w, l);
    return rl != NULL && rl->lim->clients != NULL;
}

/* ---- breakers ------------------------------------------------------------------------------ */

static bool res_usable(void *ctx, const gw_lb_upstream_t *u, size_t i, uint64_t now_ms)
{
    (void)ctx;
    const gw_res_upstream_cfg_t *c = up_cfg(u);
    return !c->breaker_enabled || gw_breaker_may_allow(breaker_of(u->m[i].b), &c->breaker, now_ms);
}

static bool res_claim(void *ctx, const gw_lb_upstream_t *u, gw_backend_t *b, gw_tcp_pick_t *tok,
                      uint64_t now_ms)
{
    (void)ctx;
    const gw_res_upstream_cfg_t *c = up_cfg(u);
    if (!c->breaker_enabled)
        return true;
    bool trial = false;
    if (!gw_breaker_allow(breaker_of(b), &c->breaker, now_ms, &trial))
        return false;
    tok->flags = trial ? tok->flags | TRIAL : tok->flags & ~TRIAL;
    return true;
}

static void breaker_record(const gw_lb_upstream_t *u, gw_backend_t *b, bool ok, bool trial,
                           uint64_t now_ms)
{
    const gw_res_upstream_cfg_t *c = up_cfg(u);
    if (!c->breaker_enabled)
        return;
    int to = gw_breaker_record(breaker_of(b), &c->breaker, ok, trial, now_ms);
    if (to == GW_BREAKER_OPEN)
        gw_warn("upstream '%s': backend %s circuit breaker OPEN: its traffic goes elsewhere "
                "for %llums",
                u->cfg->name, b->name, (unsigned long long)c->breaker.open_timeout_ms);
    else if (to == GW_BREAKER_CLOSED)
        gw_info("upstream '%s': backend %s circuit breaker CLOSED: trials succeeded", u->cfg->name,
                b->name);
}

/* Gives back the budget slot TOK's attempt holds, if any. */
static void budget_release(res_up_t *ru, gw_tcp_pick_t *tok)
{
    if (tok->flags & RETRY_HELD) {
        if (ru != NULL)
            gw_budget_release(&ru->budget);
        tok->flags &= ~RETRY_HELD;
    }
}

/* Every report 01 makes, through 02. */
static void res_outcome(void *ctx, gw_worker_t *w, const gw_lb_upstream_t *u, gw_backend_t *b,
                        gw_tcp_pick_t *tok, int status, uint64_t now_ms)
{
    (void)ctx;
    if (b == NULL || u == NULL)
        return;
    res_up_t *ru = tok_up(tok, u);
    if (status <= 0) { /* the result of one connect attempt */
        /* A start of 0: the attempt reused a connection (04's pool), there is no connect time. */
        if (status == 0 && tok->attempt_started_ns != 0 && ru != NULL)
            gw_histogram_observe_ns(&ru->w[w->id].connect_time,
                                    gw_clock_mono_ns(&gw_clock_system) - tok->attempt_started_ns);
        breaker_record(u, b, status == 0, tok->flags & TRIAL, now_ms);
        tok->flags &= ~TRIAL;
        budget_release(ru, tok);
    } else {
        /* The connection ended. If it ended while an attempt was still in flight (a forced
         * close at the drain deadline), give back what that attempt held: a trial counts
         * as failed (nothing proved the backend well), a budget slot is released. */
        if (tok->flags & TRIAL)
            breaker_record(u, b, false, true, now_ms);
        else if (status == GW_TCP_CLOSED_BACKEND_ERROR)
            breaker_record(u, b, false, false, now_ms);
        tok->flags &= ~TRIAL;
        budget_release(ru, tok);
    }
}

/* ---- retries ------------------------------------------------------------------------------- */

static bool res_retry(void *ctx, gw_worker_t *w, const gw_lb_upstream_t *u, gw_tcp_pick_t *tok,
                      unsigned attempt, uint64_t *delay_ms)
{
    gw_res_t *r = ctx;
    res_up_t *ru = tok_up(tok, u);
    if (ru == NULL)
        return false; /* no generation pinned: nothing to count the retry against */
    const gw_res_upstream_cfg_t *c = up_cfg(u);
    res_up_worker_t *uw = &ru->w[w->id];
    unsigned active = 0;
    for (size_t i = 0; i < u->n; i++)
        active += atomic_load_explicit(&u->m[i].b->active, memory_order_relaxed);
    if (!gw_budget_try_acquire(&ru->budget, active, c->budget_percent,
                               (unsigned)c->min_concurrent)) {
        gw_counter_inc(&uw->retries_denied);
        return false;
    }
    tok->flags |= RETRY_HELD;
    gw_counter_inc(&uw->retries);
    *delay_ms =
        gw_backoff_full_jitter(c->backoff_ms, c->backoff_max_ms, attempt, &r->workers[w->id].rng);
    return true;
}

/* ---- the admin API's data -------------------------------------------------------------------- */

static bool workers_readable(const gw_runtime_t *rt)
{
    /* Per-worker statistics exist from READY on and stay until the process ends, drain
     * included (runtime.h: w->stats); before every worker reported READY, skip them. */
    return rt->started && rt->nready == rt->nworkers;
}

/* Sums one counter of 01's per-worker stats over the workers; OFFSET names the counter
 * (offsetof into gw_tcp_stats_t, via TCP_SUM below), so one loop serves every field. */
static uint64_t sum_tcp(const gw_runtime_t *rt, size_t offset)
{
    uint64_t sum = 0;
    for (unsigned i = 0; workers_readable(rt) && i < rt->nworkers; i++) {
        const gw_tcp_stats_t *s = gw_tcp_worker_stats(&rt->workers[i]);
        if (s != NULL)
            sum += gw_counter_get((const gw_counter_t *)((const char *)s + offset));
    }
    return sum;
}

/* The same for 03's per-worker blocks: BASE is an array of one block per worker (STRIDE
 * bytes each), OFFSET the counter in a block (via LIS_SUM and UP_SUM). */
static uint64_t sum_counters(const gw_res_t *r, const void *base, size_t stride, size_t offset)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < r->nworkers; i++)
        sum += gw_counter_get((const gw_counter_t *)((const char *)base + i * stride + offset));
    return sum;
}

#define TCP_SUM(rt, field) sum_tcp((rt), offsetof(gw_tcp_stats_t, field))
#define LIS_SUM(r, rl, field)                                                                      \
    sum_counters((r), (rl)->counts->w, sizeof(res_lis_worker_t), offsetof(res_lis_worker_t, field))
#define UP_SUM(r, ru, field)                                                                       \
    sum_counters((r), (ru)->w, sizeof(res_up_worker_t), offsetof(res_up_worker_t, field))

/* 03's part of G, for the control thread: NULL only for a generation 03 did not build. */
static const res_gen_t *res_gen(const gw_gen_t *g)
{
    return g->layers[3];
}

/* The listeners of the generation serving now: one removed by a reload leaves /metrics
 * (its counters go with it); one kept keeps its exact counts (carried by identity). */
static void metrics_listeners(gw_res_t *r, const gw_runtime_t *rt, gw_prom_t *p, const gw_gen_t *g)
{
    const res_gen_t *rg = res_gen(g);
    gw_prom_family(p, "gw_connections_total", "Client connections admitted", GW_PROM_COUNTER);
    for (size_t i = 0; i < g->nlis; i++) {
        const gw_listener_t *l = g->lis[i].obj;
        const char *lab[] = {"listener", gw_listener_name(l), NULL};
        gw_prom_sample_u64(p, "gw_connections_total", lab, atomic_load(&l->accepted));
    }
    gw_prom_family(p, "gw_connections_active", "Client connections open now", GW_PROM_GAUGE);
    for (size_t i = 0; i < g->nlis; i++) {
        const gw_listener_t *l = g->lis[i].obj;
        const char *lab[] = {"listener", gw_listener_name(l), NULL};
        gw_prom_sample_u64(p, "gw_connections_active", lab, atomic_load(&l->active));
    }
    gw_prom_family(p, "gw_connections_rejected_total",
                   "Client connections refused over max_connections", GW_PROM_COUNTER);
    for (size_t i = 0; i < g->nlis; i++) {
        const gw_listener_t *l = g->lis[i].obj;
        const char *lab[] = {"listener", gw_listener_name(l), NULL};
        gw_prom_sample_u64(p, "gw_connections_rejected_total", lab, atomic_load(&l->rejected));
    }
    gw_prom_family(p, "gw_ratelimit_rejected_total", "Client connections refused by a rate limit",
                   GW_PROM_COUNTER);
    for (size_t i = 0; rg != NULL && i < g->nlis && i < rg->nlis; i++) {
        const gw_listener_t *l = g->lis[i].obj;
        const char *gl[] = {"listener", gw_listener_name(l), "scope", "global", NULL};
        const char *cl[] = {"listener", gw_listener_name(l), "scope", "client", NULL};
        gw_prom_sample_u64(p, "gw_ratelimit_rejected_total", gl,
                           LIS_SUM(r, &rg->lis[i], limited_global));
        gw_prom_sample_u64(p, "gw_ratelimit_rejected_total", cl,
                           LIS_SUM(r, &rg->lis[i], limited_client));
    }
    gw_prom_family(p, "gw_bytes_total", "Bytes proxied, counted when a connection closes",
                   GW_PROM_COUNTER);
    const char *in[] = {"direction", "in", NULL}, *out[] = {"direction", "out", NULL};
    gw_prom_sample_u64(p, "gw_bytes_total", in, TCP_SUM(rt, bytes_in));
    gw_prom_sample_u64(p, "gw_bytes_total", out, TCP_SUM(rt, bytes_out));
}
/* The buffer pool (common/buf.h), in bytes of chunk data: what is allocated, split into in
 * use by connections and cached by the workers for reuse (the two add up to the pool's
 * total); the cap; and the gets the cap refused. Every worker's cache is readable for the
 * admin API's whole life (runtime.h: w->bufs). Nothing here is counted on the hot path:
 * the pool's own counters are read. */
static void metrics_buffers(const gw_runtime_t *rt, gw_prom_t *p)
{
    gw_bufpool_stats_t st;
    gw_bufpool_stats(&rt->bufpool, &st);
    uint64_t cached = 0;
    for (unsigned i = 0; i < rt->nworkers; i++)
        cached += gw_bufcache_cached_bytes(&rt->workers[i].bufs);
    /* The figures are read one after another while workers run: a chunk made and cached in
     * between may be in `cached` but not yet in `bytes`. Never report a negative in-use. */
    if (cached > st.bytes)
        cached = st.bytes;
    gw_prom_family(p, "gw_buffer_pool_bytes",
                   "Bytes of buffer chunks allocated from the pool: in use, or cached by a "
                   "worker for reuse",
                   GW_PROM_GAUGE);
    const char *use[] = {"state", "in_use", NULL}, *idle[] = {"state", "cached", NULL};
    gw_prom_sample_u64(p, "gw_buffer_pool_bytes", use, st.bytes - cached);
    gw_prom_sample_u64(p, "gw_buffer_pool_bytes", idle, cached);
    gw_prom_family(p, "gw_buffer_pool_limit_bytes",
                   "The cap on gw_buffer_pool_bytes (buffers.max_memory in whole chunks)",
                   GW_PROM_GAUGE);
    gw_prom_sample_u64(p, "gw_buffer_pool_limit_bytes", NULL, st.limit_bytes);
    gw_prom_family(p, "gw_buffer_exhausted_total",
                   "Buffer requests refused because the pool was at its cap (the read pauses "
                   "and retries)",
                   GW_PROM_COUNTER);
    gw_prom_sample_u64(p, "gw_buffer_exhausted_total", NULL, st.exhausted);
}

static void metric_per_backend(gw_prom_t *p, const gw_lb_table_t *t, const char *name,
                               const char *help, gw_prom_type_t type,
                               uint64_t (*value)(gw_res_t *, const gw_lb_upstream_t *, size_t),
                               gw_res_t *r)
{
    gw_prom_family(p, name, help, type);
    for (size_t i = 0; i < t->n; i++)
        for (size_t k = 0; k < t->ups[i].n; k++) {
            const char *lab[] = {"upstream", t->ups[i].cfg->name, "backend", t->ups[i].m[k].b->name,
                                 NULL};
            gw_prom_sample_u64(p, name, lab, value(r, &t->ups[i], k));
        }
}

static uint64_t v_healthy(gw_res_t *r, const gw_lb_upstream_t *u, size_t k)
{
    (void)r;
    return atomic_load(&u->m[k].b->health) == GW_HEALTH_HEALTHY;
}

static uint64_t v_active(gw_res_t *r, const gw_lb_upstream_t *u, size_t k)
{
    (void)r;
    return atomic_load(&u->m[k].b->active);
}

static uint64_t v_failures(gw_res_t *r, const gw_lb_upstream_t *u, size_t k)
{
    (void)r;
    return atomic_load(&u->m[k].b->failures);
}

static uint64_t v_ejected(gw_res_t *r, const gw_lb_upstream_t *u, size_t k)
{
    (void)r;
    return atomic_load(&u->m[k].b->ejected_until_ms) > gw_clock_mono_ms(&gw_clock_system);
}

static uint64_t v_breaker(gw_res_t *r, const gw_lb_upstream_t *u, size_t k)
{
    (void)r;
    const gw_res_upstream_cfg_t *c = up_cfg(u);
    if (!c->breaker_enabled)
        return GW_BREAKER_CLOSED;
    return gw_breaker_state(breaker_of(u->m[k].b), &c->breaker, gw_clock_mono_ms(&gw_clock_system));
}

/* The upstreams of G (its table T, its res_gen_t RG: the same positions). */
static void metrics_upstreams(gw_res_t *r, gw_prom_t *p, const gw_lb_table_t *t,
                              const res_gen_t *rg)
{
    size_t n = t->n < rg->nups ? t->n : rg->nups;
    gw_prom_family(p, "gw_upstream_connect_seconds", "Time to connect to a backend",
                   GW_PROM_HISTOGRAM);
    for (size_t i = 0; i < n; i++) {
        gw_histogram_t sum;
        gw_histogram_init(&sum);
        for (unsigned w = 0; w < r->nworkers; w++)
            gw_histogram_merge(&sum, &rg->ups[i]->w[w].connect_time);
        const char *lab[] = {"upstream", t->ups[i].cfg->name, NULL};
        gw_prom_histogram(p, "gw_upstream_connect_seconds", lab, &sum);
    }
    gw_prom_family(p, "gw_upstream_retries_total",
                   "Connect retries, granted or denied by the budget", GW_PROM_COUNTER);
    for (size_t i = 0; i < n; i++) {
        const char *g[] = {"upstream", t->ups[i].cfg->name, "result", "granted", NULL};
        const char *d[] = {"upstream", t->ups[i].cfg->name, "result", "denied", NULL};
        gw_prom_sample_u64(p, "gw_upstream_retries_total", g, UP_SUM(r, rg->ups[i], retries));
        gw_prom_sample_u64(p, "gw_upstream_retries_total", d,
                           UP_SUM(r, rg->ups[i], retries_denied));
    }
    metric_per_backend(p, t, "gw_backend_healthy", "1 when active checks find the backend healthy",
                       GW_PROM_GAUGE, v_healthy, r);
    metric_per_backend(p, t, "gw_backend_active_connections", "Connections to the backend now",
                       GW_PROM_GAUGE, v_active, r);
    metric_per_backend(p, t, "gw_backend_failures_total", "Connect and I/O failures seen",
                       GW_PROM_COUNTER, v_failures, r);
    metric_per_backend(p, t, "gw_backend_ejected", "1 while outlier detection ejects it",
                       GW_PROM_GAUGE, v_ejected, r);
    metric_per_backend(p, t, "gw_breaker_state", "Circuit breaker: 0 closed, 1 open, 2 half-open",
                       GW_PROM_GAUGE, v_breaker, r);
}

/* Backends a reload removed that something still holds (02's draining list: open tunnels
 * and pairs on them, requests of an older generation): the connections each still has.
 * An operator sees why an address that left the configuration still gets traffic, and
 * when it no longer does; the sample goes once nothing holds the backend. Control thread
 * (the admin loop's), as the list is. */
static void metrics_draining(gw_res_t *r, gw_prom_t *p)
{
    gw_prom_family(p, "gw_backend_draining_connections",
                   "Connections still open to a backend a reload removed", GW_PROM_GAUGE);
    for (gw_backend_t *b = gw_lb_draining_first(r->lb); b != NULL; b = gw_lb_draining_next(b)) {
        const char *lab[] = {"upstream", b->upstream_name != NULL ? b->upstream_name : "",
                             "backend", b->name, NULL};
        gw_prom_sample_u64(p, "gw_backend_draining_connections", lab,
                           atomic_load_explicit(&b->active, memory_order_relaxed));
    }
}

/* see res.h: 01's and 02's counters are written here too (they have no /metrics of their
 * own), so 03's hook has no level below to call. Everything per listener, upstream or
 * backend comes from the generation published now: what a reload removed leaves. */
void gw_res_metrics(gw_runtime_t *rt, gw_prom_t *p)
{
    gw_res_t *r = gw_runtime_layer(rt, 3);
    const gw_gen_t *g = gw_gen_current(rt);
    metrics_listeners(r, rt, p, g);
    metrics_buffers(rt, p);
    const gw_lb_table_t *t = gw_lb_gen_table(g);
    if (t != NULL && res_gen(g) != NULL)
        metrics_upstreams(r, p, t, res_gen(g));
    if (r->lb != NULL)
        metrics_draining(r, p);
}

/* The top app's metrics hook (04's in gw04, which calls 03's first), then the drain flag. */
static void src_metrics(void *ctx, gw_prom_t *p)
{
    gw_res_t *r = ctx;
    if (r->rt->app->metrics != NULL)
        r->rt->app->metrics(r->rt, p);
    gw_prom_family(p, "gw_draining", "1 once a drain began", GW_PROM_GAUGE);
    gw_prom_sample_u64(p, "gw_draining", NULL, atomic_load(&r->rt->draining));
}

static json_t *src_stats(void *ctx)
{
    gw_res_t *r = ctx;
    const gw_runtime_t *rt = r->rt;
    json_t *ls = json_array();
    const gw_gen_t *g = gw_gen_current(rt);
    const res_gen_t *rg = res_gen(g);
    for (size_t i = 0; rg != NULL && i < g->nlis && i < rg->nlis; i++) {
        const gw_listener_t *l = g->lis[i].obj;
        json_array_append_new(
            ls,
            json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "name", gw_listener_name(l), "active",
                      (json_int_t)atomic_load(&l->active), "accepted",
                      (json_int_t)atomic_load(&l->accepted), "rejected_max_connections",
                      (json_int_t)atomic_load(&l->rejected), "rejected_rate_global",
                      (json_int_t)LIS_SUM(r, &rg->lis[i], limited_global), "rejected_rate_client",
                      (json_int_t)LIS_SUM(r, &rg->lis[i], limited_client)));
    }
    return json_pack(
        "{s:i, s:b, s:I, s:o, s:{s:I, s:I}, s:{s:I, s:I, s:I}}", "workers", (int)rt->nworkers,
        "draining", (int)atomic_load(&rt->draining), "uptime_ms",
        (json_int_t)(gw_clock_mono_ms(&gw_clock_system) - r->started_ms), "listeners", ls, "bytes",
        "in", (json_int_t)TCP_SUM(rt, bytes_in), "out", (json_int_t)TCP_SUM(rt, bytes_out),
        "upstream_connects", "failed", (json_int_t)TCP_SUM(rt, connect_failed), "no_backend",
        (json_int_t)TCP_SUM(rt, no_backend), "closed", (json_int_t)TCP_SUM(rt, closed));
}

static json_t *backend_json(gw_res_t *r, const gw_lb_upstream_t *u, size_t k)
{
    const gw_backend_t *b = u->m[k].b;
    static const char *const breaker_names[] = {"closed", "open", "half_open"};
    return json_pack(
        "{s:s, s:i, s:s, s:b, s:s, s:I, s:I, s:I}", "address", b->name, "weight",
        (int)u->m[k].weight, "health", gw_health_name((gw_health_t)atomic_load(&b->health)),
        "ejected", (int)v_ejected(r, u, k), "breaker", breaker_names[v_breaker(r, u, k) % 3],
        "active_connections", (json_int_t)atomic_load(&b->active), "picks",
        (json_int_t)atomic_load(&b->picks), "failures", (json_int_t)atomic_load(&b->failures));
}

static json_t *src_backends(void *ctx)
{
    gw_res_t *r = ctx;
    const gw_lb_table_t *t = gw_lb_gen_table(gw_gen_current(r->rt));
    json_t *ups = json_array();
    for (size_t i = 0; t != NULL && i < t->n; i++) {
        json_t *bs = json_array();
        for (size_t k = 0; k < t->ups[i].n; k++)
            json_array_append_new(bs, backend_json(r, &t->ups[i], k));
        json_array_append_new(ups,
                              json_pack("{s:s, s:s, s:o}", "name", t->ups[i].cfg->name, "balancer",
                                        gw_balancer_names[t->ups[i].lb->balancer], "backends", bs));
    }
    return json_pack("{s:o}", "upstreams", ups);
}

static bool src_ready(void *ctx)
{
    gw_res_t *r = ctx;
    return r->rt->started && r->rt->nready == r->rt->nworkers && !atomic_load(&r->rt->draining);
}

/* see res.h */
void gw_res_admin_extra(gw_res_t *r, int (*reload)(void *ctx, json_t **body),
                        char *(*config)(void *ctx, size_t *len), void *ctx)
{
    r->extra_reload = reload;
    r->extra_config = config;
    r->extra_ctx = ctx;
}

static int src_reload(void *ctx, json_t **body)
{
    gw_res_t *r = ctx;
    return r->extra_reload(r->extra_ctx, body);
}

static char *src_config(void *ctx, size_t *len)
{
    gw_res_t *r = ctx;
    return r->extra_config(r->extra_ctx, len);
}

/* ---- 03's part of a generation (control thread) ---------------------------------------------- */

static void up_drop(res_up_t *ru)
{
    if (ru == NULL || --ru->refs > 0)
        return;
    free(ru->name);
    free(ru->w);
    free(ru);
}

static void lcount_drop(res_lcount_t *c)
{
    if (c == NULL || --c->refs > 0)
        return;
    free(c->w);
    free(c);
}

static void limiter_drop(res_limiter_t *lim)
{
    if (lim == NULL || --lim->refs > 0)
        return;
    gw_keyed_free(lim->clients);
    free(lim);
}

static void res_gen_free(res_gen_t *rg)
{
    if (rg == NULL)
        return;
    for (size_t i = 0; rg->ups != NULL && i < rg->nups; i++)
        up_drop(rg->ups[i]);
    for (size_t i = 0; rg->lis != NULL && i < rg->nlis; i++) {
        limiter_drop(rg->lis[i].lim);
        lcount_drop(rg->lis[i].counts);
    }
    free(rg->ups);
    free(rg->lis);
    free(rg);
}

/* The state of upstream U of the new generation: PREV's of the same name (carried: its
 * budget and counts go on), else a fresh one. */
static res_up_t *up_take(gw_res_t *r, const gw_upstream_cfg_t *u, const res_gen_t *prg)
{
    for (size_t j = 0; prg != NULL && j < prg->nups; j++)
        if (prg->ups[j] != NULL && strcmp(prg->ups[j]->name, u->name) == 0) {
            prg->ups[j]->refs++;
            return prg->ups[j];
        }
    res_up_t *ru = calloc(1, sizeof *ru);
    if (ru == NULL)
        return NULL;
    ru->refs = 1;
    ru->name = strdup(u->name);
    ru->w = calloc_lines(r->nworkers, sizeof *ru->w);
    if (ru->name == NULL || ru->w == NULL) {
        up_drop(ru);
        return NULL;
    }
    gw_budget_init(&ru->budget);
    for (unsigned i = 0; i < r->nworkers; i++)
        gw_histogram_init(&ru->w[i].connect_time);
    return ru;
}

/* The options a limiter is built from, compared to decide whether it carries. */
static bool limiter_opts_equal(const gw_res_listener_cfg_t *a, const gw_res_listener_cfg_t *b)
{
    return a->global_rate == b->global_rate && a->global_burst == b->global_burst &&
           a->client_rate == b->client_rate && a->client_burst == b->client_burst &&
           a->max_clients == b->max_clients;
}

/* A fresh limiter for options C in *OUT: 0, GW_ENOMEM, or GW_EINVAL for a rate the bucket
 * cannot represent (the loader's bounds keep that from happening). */
static int limiter_new(const gw_res_listener_cfg_t *c, res_limiter_t **out)
{
    res_limiter_t *lim = calloc(1, sizeof *lim);
    if (lim == NULL)
        return GW_ENOMEM;
    lim->refs = 1;
    lim->opts = *c;
    if (c->global_rate > 0) {
        if (gw_bucket_init(&lim->global, (double)c->global_rate, (unsigned)c->global_burst) != 0) {
            free(lim);
            return GW_EINVAL;
        }
        lim->has_global = true;
    }
    if (c->client_rate > 0) {
        lim->clients = gw_keyed_new((double)c->client_rate, (unsigned)c->client_burst,
                                    (size_t)c->max_clients, 64);
        if (lim->clients == NULL) {
            free(lim);
            return GW_ENOMEM;
        }
    }
    *out = lim;
    return 0;
}

/* Fills RL for listener GL of the new generation from PREV's entry for the same listener
 * object (PL, or NULL): counters always carried, the limiter while its options are equal. */
static int lis_take(gw_res_t *r, res_lis_t *rl, const gw_glistener_t *gl, const res_lis_t *pl)
{
    const gw_res_listener_cfg_t *c = gw_res_listener_cfg(gl->cfg);
    if (pl != NULL) {
        rl->counts = pl->counts;
        rl->counts->refs++;
    } else {
        res_lcount_t *cnt = calloc(1, sizeof *cnt);
        if (cnt == NULL)
            return GW_ENOMEM;
        cnt->refs = 1;
        cnt->obj = gl->obj;
        rl->counts = cnt; /* freed with the generation from here on */
        cnt->w = calloc_lines(r->nworkers, sizeof *cnt->w);
        if (cnt->w == NULL)
            return GW_ENOMEM;
    }
    if (c->global_rate == 0 && c->client_rate == 0)
        return 0;
    if (pl != NULL && pl->lim != NULL && limiter_opts_equal(&pl->lim->opts, c)) {
        rl->lim = pl->lim;
        rl->lim->refs++;
        return 0;
    }
    return limiter_new(c, &rl->lim);
}

/* PREV's entry for the listener object OBJ, or NULL (a new address, or no PREV). */
static const res_lis_t *prev_lis(const gw_gen_t *prev, const gw_listener_t *obj)
{
    if (prev == NULL || obj == NULL)
        return NULL;
    const res_gen_t *prg = res_gen(prev);
    const gw_glistener_t *pgl = gw_gen_listener(prev, obj);
    return prg != NULL && pgl != NULL && pgl->pos < prg->nlis ? &prg->lis[pgl->pos] : NULL;
}

static int build_gen(gw_res_t *r, gw_gen_t *g, const gw_gen_t *prev)
{
    res_gen_t *rg = calloc(1, sizeof *rg);
    if (rg == NULL)
        return GW_ENOMEM;
    g->layers[3] = rg; /* from here on gen_free frees whatever was built */
    const gw_lb_table_t *t = gw_lb_gen_table(g);
    const res_gen_t *prg = prev != NULL ? res_gen(prev) : NULL;
    rg->ups = calloc(t->n ? t->n : 1, sizeof *rg->ups);
    rg->lis = calloc(g->nlis ? g->nlis : 1, sizeof *rg->lis);
    if (rg->ups == NULL || rg->lis == NULL)
        return GW_ENOMEM;
    for (size_t i = 0; i < t->n; i++) {
        rg->ups[i] = up_take(r, t->ups[i].cfg, prg);
        if (rg->ups[i] == NULL)
            return GW_ENOMEM;
        rg->nups = i + 1;
    }
    for (size_t i = 0; i < g->nlis; i++) {
        rg->nlis = i + 1;
        int rc = lis_take(r, &rg->lis[i], &g->lis[i], prev_lis(prev, g->lis[i].obj));
        if (rc != 0)
            return rc;
        rg->any_limit |= rg->lis[i].lim != NULL;
    }
    return 0;
}

/* The admin API's exposure, said before anything binds: at every start (from prepare) and
 * at every reload (from gen_build). Refused: an error (the loader refuses it already; this
 * guards a config built some other way), written to ERRS as FILE:LINE:COL when ERRS is
 * given, logged otherwise; a warning is logged. */
static int check_admin_exposure(const gw_config_t *cfg, FILE *errs)
{
    const gw_res_root_cfg_t *root = gw_res_root_cfg(cfg);
    char msg[512];
    switch (gw_res_admin_exposure(root, msg, sizeof msg)) {
    case GW_RES_ADMIN_REFUSED:
        if (errs != NULL)
            fprintf(errs, "%s:%u:%u: %s\n", cfg->path ? cfg->path : "-", root->admin_line,
                    root->admin_col, msg);
        else
            gw_error("%s", msg);
        return GW_EINVAL;
    case GW_RES_ADMIN_OPEN:
    case GW_RES_ADMIN_NEEDLESS:
        gw_warn("%s", msg);
        return 0;
    case GW_RES_ADMIN_SAFE:
        break;
    }
    return 0;
}

/* The admin listener is bound once, at start: a reload that moves it (or adds, removes it,
 * or changes its token) keeps the running one, and says so in ERRS as a warning. */
static void admin_restart_only(const gw_config_t *run, const gw_config_t *neu, FILE *errs)
{
    const gw_res_root_cfg_t *a = gw_res_root_cfg(run), *b = gw_res_root_cfg(neu);
    bool moved = a->admin_enabled != b->admin_enabled ||
                 (a->admin_enabled && !gw_addr_equal(&a->admin_addr, &b->admin_addr));
    bool token = a->admin_enabled && b->admin_enabled &&
                 ((a->admin_token == NULL) != (b->admin_token == NULL) ||
                  (a->admin_token != NULL && strcmp(a->admin_token, b->admin_token) != 0));
    const char *where = neu->path ? neu->path : "-";
    if (moved)
        fprintf(errs,
                "%s:%u:%u: warning: admin.address needs a restart: the admin API stays %s%s\n",
                where, b->admin_line, b->admin_col, a->admin_enabled ? "on " : "off",
                a->admin_enabled ? a->admin_address_text : "");
    if (token)
        fprintf(errs, "%s:%u:%u: warning: admin.token needs a restart: the running one stays\n",
                where, b->admin_line, b->admin_col);
}

/* see res.h: 02's part first, then 03's. */
int gw_res_gen_build(gw_runtime_t *rt, gw_gen_t *g, const gw_gen_t *prev, FILE *errs)
{
    int rc = gw_lb_gen_build(rt, g, prev, errs);
    if (rc != 0)
        return rc;
    gw_res_t *r = gw_runtime_layer(rt, 3);
    if (prev != NULL) { /* the first generation's was checked by prepare */
        rc = check_admin_exposure(g->cfg, errs);
        if (rc != 0)
            return rc;
        if (rt->cfg != NULL)
            admin_restart_only(rt->cfg, g->cfg, errs);
    }
    rc = build_gen(r, g, prev);
    if (rc != 0)
        fprintf(errs, "%s: milestone 03's state: %s\n", g->cfg->path ? g->cfg->path : "-",
                gw_strerror(rc));
    return rc;
}

/* see res.h: 03's slot, then 02's (top level first). */
void gw_res_gen_free(gw_runtime_t *rt, gw_gen_t *g)
{
    res_gen_free(g->layers[3]);
    g->layers[3] = NULL;
    gw_lb_gen_free(rt, g);
}

void gw_res_gen_applied(gw_runtime_t *rt, const gw_gen_t *g, const gw_gen_t *prev)
{
    gw_lb_gen_applied(rt, g, prev);
}

/* ---- the application ------------------------------------------------------------------------ */

/* see res.h */
int gw_res_control_start(gw_runtime_t *rt)
{
    gw_res_t *r = gw_runtime_layer(rt, 3);
    r->rt = rt;
    r->started_ms = gw_clock_mono_ms(&gw_clock_system);
    int rc = gw_lb_control_start(rt);
    const gw_res_root_cfg_t *root = gw_res_root_cfg(rt->cfg);
    if (rc != 0 || !root->admin_enabled)
        return rc;
    gw_admin_sources_t src = {.metrics = src_metrics,
                              .stats = src_stats,
                              .backends = src_backends,
                              .ready = src_ready,
                              .reload = r->extra_reload != NULL ? src_reload : NULL,
                              .config = r->extra_config != NULL ? src_config : NULL,
                              .ctx = r};
    int err = 0;
    r->admin = gw_admin_start(&rt->loop, &root->admin_addr, root->admin_token, &src, &err);
    if (r->admin == NULL) {
        gw_error("admin: cannot listen on %s: %s", root->admin_address_text, gw_strerror(err));
        return err != 0 ? err : GW_ENOMEM;
    }
    gw_info("admin API on http://%s/ (/metrics /stats /backends /healthz /readyz)%s",
            root->admin_address_text, root->admin_token ? ", bearer token required" : "");
    return 0;
}

/* see res.h */
void gw_res_control_stop(gw_runtime_t *rt)
{
    gw_res_t *r = gw_runtime_layer(rt, 3);
    if (r->admin != NULL)
        gw_admin_stop(r->admin, NULL, NULL);
    r->admin = NULL;
    gw_lb_control_stop(rt);
}

/* see res.h: 03 works through 02's hooks (gw_lb_set_hooks) on these paths, so its worker
 * hooks only pass on to 02's. */
int gw_res_worker_start(gw_worker_t *w)
{
    return gw_lb_worker_start(w);
}

void gw_res_on_connection(gw_wlistener_t *wl)
{
    gw_lb_on_connection(wl);
}

void gw_res_worker_drain(gw_worker_t *w)
{
    gw_lb_worker_drain(w);
}

void gw_res_worker_force_close(gw_worker_t *w)
{
    gw_lb_worker_force_close(w);
}

void gw_res_worker_listener_gone(gw_worker_t *w, gw_listener_t *l)
{
    gw_lb_worker_listener_gone(w, l);
}

void gw_res_worker_stop(gw_worker_t *w)
{
    gw_lb_worker_stop(w);
}

/* Every hook goes to 02's (gw_lb_app), through the functions above. */
const gw_app_t gw_res_app = {
    .gen_build = gw_res_gen_build,
    .gen_free = gw_res_gen_free,
    .gen_applied = gw_res_gen_applied,
    .worker_start = gw_res_worker_start,
    .on_connection = gw_res_on_connection,
    .worker_drain = gw_res_worker_drain,
    .worker_force_close = gw_res_worker_force_close,
    .worker_listener_gone = gw_res_worker_listener_gone,
    .worker_stop = gw_res_worker_stop,
    .control_start = gw_res_control_start,
    .control_stop = gw_res_control_stop,
    .metrics = gw_res_metrics,
};

/* see res.h: process-lifetime state only (per-worker jitter, the hooks); what a config
 * says per listener and upstream is built per generation (gw_res_gen_build). */
int gw_res_prepare(const gw_config_t *cfg, void **layers)
{
    int rc = check_admin_exposure(cfg, NULL);
    if (rc != 0)
        return rc;
    rc = gw_lb_prepare(cfg, layers);
    if (rc != 0)
        return rc;
    gw_res_t *r = calloc(1, sizeof *r);
    if (r != NULL) {
        r->nworkers = cfg->workers;
        r->workers = calloc_lines(cfg->workers, sizeof *r->workers);
    }
    if (r == NULL || r->workers == NULL) {
        gw_error("milestone 03 setup failed: %s", gw_strerror(GW_ENOMEM));
        free(r);
        gw_lb_release(layers);
        return GW_ENOMEM;
    }
    r->lb = layers[2];
    for (unsigned i = 0; i < r->nworkers; i++)
        r->workers[i].rng = 0x243f6a8885a308d3u ^ (0x9e3779b97f4a7c15u * (i + 1));
    gw_lb_backend_ext(r->lb, 3, sizeof(res_backend_t), res_backend_init, NULL, NULL);
    /* admit is installed whatever the startup config says: a reload may add limits. */
    gw_lb_hooks_t hooks = {.usable = res_usable,
                           .claim = res_claim,
                           .outcome = res_outcome,
                           .retry = res_retry,
                           .admit = res_admit,
                           .wants_client = res_wants_client,
                           .ctx = r};
    gw_lb_set_hooks(r->lb, &hooks);
    layers[3] = r;
    return 0;
}

/* see res.h */
void gw_res_release(void **layers)
{
    gw_res_t *r = layers[3];
    if (r != NULL) {
        free(r->workers);
        free(r);
    }
    layers[3] = NULL;
    gw_lb_release(layers);
}
