/* res.c - see res.h.
 *
 * Where each mechanism sits on a connection's path:
 *   accept ── admit: global bucket, then the client's bucket ── 01's max_connections
 *   pick ──── usable: breaker closed (or half-open with a trial free) ── claim: the trial
 *   connect ─ outcome: breaker record, connect latency histogram, budget released
 *   failure ─ retry: budget acquired, backoff with full jitter ── pick again
 */
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

typedef struct res_upstream_s {
    const gw_res_upstream_cfg_t *cfg;
    gw_retry_budget_t budget;
} res_upstream_t;

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

typedef struct res_listener_s {
    const gw_res_listener_cfg_t *cfg;
    bool has_global;
    gw_bucket_t global;
    gw_keyed_limiter_t *clients; /* NULL: no per-client limit */
} res_listener_t;

/* Written by one worker only, summed by the scrape (metrics.h). */
typedef struct res_worker_s {
    uint64_t rng;                                  /* backoff jitter */
    gw_histogram_t *connect_time;                  /* [nupstreams] */
    gw_counter_t *retries, *retries_denied;        /* [nupstreams] */
    gw_counter_t *limited_global, *limited_client; /* [nlisteners] */
} res_worker_t;

typedef struct gw_res_s {
    gw_lb_t *lb; /* 02's layer, whose hooks lead here */
    const gw_config_t *cfg;
    gw_runtime_t *rt;
    res_upstream_t *ups;   /* [cfg->nupstreams] */
    res_listener_t *lis;   /* [cfg->nlisteners] */
    res_worker_t *workers; /* [cfg->workers] */
    gw_admin_t *admin;
    uint64_t started_ms;
    /* Milestone 05's admin routes (gw_res_admin_extra): POST /reload, GET /config. */
    int (*extra_reload)(void *ctx, json_t **body);
    char *(*extra_config)(void *ctx, size_t *len);
    void *extra_ctx;
} gw_res_t;

static res_upstream_t *res_up(gw_res_t *r, const gw_lb_upstream_t *u)
{
    return &r->ups[u->pos];
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

static bool res_admit(void *ctx, gw_worker_t *w, const gw_listener_t *l,
                      const struct sockaddr *client)
{
    gw_res_t *r = ctx;
    res_listener_t *rl = &r->lis[l->index];
    res_worker_t *rw = &r->workers[w->id];
    uint64_t now = gw_clock_mono_ns(&gw_clock_system);
    if (rl->has_global && !gw_bucket_take(&rl->global, now)) {
        gw_counter_inc(&rw->limited_global[l->index]);
        return false;
    }
    const void *key;
    size_t len = rl->clients != NULL ? client_key(client, &key) : 0;
    if (len > 0 && !gw_keyed_take(rl->clients, key, len, now)) {
        gw_counter_inc(&rw->limited_client[l->index]);
        return false;
    }
    return true;
}

/* ---- breakers ------------------------------------------------------------------------------ */

static bool res_usable(void *ctx, const gw_lb_upstream_t *u, size_t i, uint64_t now_ms)
{
    res_upstream_t *ru = res_up(ctx, u);
    return !ru->cfg->breaker_enabled ||
           gw_breaker_may_allow(breaker_of(u->m[i].b), &ru->cfg->breaker, now_ms);
}

static bool res_claim(void *ctx, const gw_lb_upstream_t *u, gw_backend_t *b, gw_tcp_pick_t *tok,
                      uint64_t now_ms)
{
    res_upstream_t *ru = res_up(ctx, u);
    if (!ru->cfg->breaker_enabled)
        return true;
    bool trial = false;
    if (!gw_breaker_allow(breaker_of(b), &ru->cfg->breaker, now_ms, &trial))
        return false;
    tok->flags = trial ? tok->flags | TRIAL : tok->flags & ~TRIAL;
    return true;
}

static void breaker_record(gw_res_t *r, const gw_lb_upstream_t *u, gw_backend_t *b, bool ok,
                           bool trial, uint64_t now_ms)
{
    res_upstream_t *ru = res_up(r, u);
    if (!ru->cfg->breaker_enabled)
        return;
    int to = gw_breaker_record(breaker_of(b), &ru->cfg->breaker, ok, trial, now_ms);
    if (to == GW_BREAKER_OPEN)
        gw_warn("upstream '%s': backend %s circuit breaker OPEN: its traffic goes elsewhere "
                "for %llums",
                u->cfg->name, b->name, (unsigned long long)ru->cfg->breaker.open_timeout_ms);
    else if (to == GW_BREAKER_CLOSED)
        gw_info("upstream '%s': backend %s circuit breaker CLOSED: trials succeeded", u->cfg->name,
                b->name);
}

/* Every report 01 makes, through 02. */
static void res_outcome(void *ctx, gw_worker_t *w, const gw_lb_upstream_t *u, gw_backend_t *b,
                        gw_tcp_pick_t *tok, int status, uint64_t now_ms)
{
    gw_res_t *r = ctx;
    if (b == NULL || u == NULL)
        return;
    res_upstream_t *ru = res_up(r, u);
    if (status <= 0) { /* the result of one connect attempt */
        /* A start of 0: the attempt reused a connection (04's pool), there is no connect time. */
        if (status == 0 && tok->attempt_started_ns != 0)
            gw_histogram_observe_ns(&r->workers[w->id].connect_time[u->pos],
                                    gw_clock_mono_ns(&gw_clock_system) - tok->attempt_started_ns);
        breaker_record(r, u, b, status == 0, tok->flags & TRIAL, now_ms);
        tok->flags &= ~TRIAL;
        if (tok->flags & RETRY_HELD) {
            gw_budget_release(&ru->budget);
            tok->flags &= ~RETRY_HELD;
        }
    } else {
        /* The connection ended. If it ended while an attempt was still in flight (a forced
         * close at the drain deadline), give back what that attempt held: a trial counts
         * as failed (nothing proved the backend well), a budget slot is released. */
        if (tok->flags & TRIAL)
            breaker_record(r, u, b, false, true, now_ms);
        else if (status == GW_TCP_CLOSED_BACKEND_ERROR)
            breaker_record(r, u, b, false, false, now_ms);
        tok->flags &= ~TRIAL;
        if (tok->flags & RETRY_HELD) {
            gw_budget_release(&ru->budget);
            tok->flags &= ~RETRY_HELD;
        }
    }
}

/* ---- retries ------------------------------------------------------------------------------- */

static bool res_retry(void *ctx, gw_worker_t *w, const gw_lb_upstream_t *u, gw_tcp_pick_t *tok,
                      unsigned attempt, uint64_t *delay_ms)
{
    gw_res_t *r = ctx;
    res_upstream_t *ru = res_up(r, u);
    res_worker_t *rw = &r->workers[w->id];
    size_t ui = u->pos;
    unsigned active = 0;
    for (size_t i = 0; i < u->n; i++)
        active += atomic_load_explicit(&u->m[i].b->active, memory_order_relaxed);
    if (!gw_budget_try_acquire(&ru->budget, active, ru->cfg->budget_percent,
                               (unsigned)ru->cfg->min_concurrent)) {
        gw_counter_inc(&rw->retries_denied[ui]);
        return false;
    }
    tok->flags |= RETRY_HELD;
    gw_counter_inc(&rw->retries[ui]);
    *delay_ms =
        gw_backoff_full_jitter(ru->cfg->backoff_ms, ru->cfg->backoff_max_ms, attempt, &rw->rng);
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

/* The same for 03's per-worker counter arrays: MEMBER is the offset of an array pointer in
 * res_worker_t (via RES_SUM), INDEX the listener or upstream. */
static uint64_t sum_counters(const gw_res_t *r, size_t member, size_t index)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < r->cfg->workers; i++) {
        gw_counter_t *arr = *(gw_counter_t **)((char *)&r->workers[i] + member);
        sum += gw_counter_get(&arr[index]);
    }
    return sum;
}

#define TCP_SUM(rt, field) sum_tcp((rt), offsetof(gw_tcp_stats_t, field))
#define RES_SUM(r, field, i) sum_counters((r), offsetof(res_worker_t, field), (i))

/* The listeners of the generation serving now: one removed by a reload leaves /metrics
 * (its counters go with it); one kept keeps its exact counts. Per-listener limit counters
 * are still indexed by the listener's first position (issue 17, step 6 moves them). */
static void metrics_listeners(gw_res_t *r, gw_prom_t *p)
{
    const gw_runtime_t *rt = r->rt;
    const gw_gen_t *g = gw_gen_current(rt);
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
    for (size_t i = 0; i < g->nlis; i++) {
        const gw_listener_t *l = g->lis[i].obj;
        const char *gl[] = {"listener", gw_listener_name(l), "scope", "global", NULL};
        const char *cl[] = {"listener", gw_listener_name(l), "scope", "client", NULL};
        gw_prom_sample_u64(p, "gw_ratelimit_rejected_total", gl,
                           RES_SUM(r, limited_global, l->index));
        gw_prom_sample_u64(p, "gw_ratelimit_rejected_total", cl,
                           RES_SUM(r, limited_client, l->index));
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
static void metrics_buffers(gw_res_t *r, gw_prom_t *p)
{
    const gw_runtime_t *rt = r->rt;
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
    res_upstream_t *ru = res_up(r, u);
    if (!ru->cfg->breaker_enabled)
        return GW_BREAKER_CLOSED;
    return gw_breaker_state(breaker_of(u->m[k].b), &ru->cfg->breaker,
                            gw_clock_mono_ms(&gw_clock_system));
}

static void metrics_upstreams(gw_res_t *r, gw_prom_t *p, const gw_lb_table_t *t)
{
    gw_prom_family(p, "gw_upstream_connect_seconds", "Time to connect to a backend",
                   GW_PROM_HISTOGRAM);
    for (size_t i = 0; i < t->n; i++) {
        gw_histogram_t sum;
        gw_histogram_init(&sum);
        for (unsigned w = 0; w < r->cfg->workers; w++)
            gw_histogram_merge(&sum, &r->workers[w].connect_time[i]);
        const char *lab[] = {"upstream", t->ups[i].cfg->name, NULL};
        gw_prom_histogram(p, "gw_upstream_connect_seconds", lab, &sum);
    }
    gw_prom_family(p, "gw_upstream_retries_total",
                   "Connect retries, granted or denied by the budget", GW_PROM_COUNTER);
    for (size_t i = 0; i < t->n; i++) {
        const char *g[] = {"upstream", t->ups[i].cfg->name, "result", "granted", NULL};
        const char *d[] = {"upstream", t->ups[i].cfg->name, "result", "denied", NULL};
        gw_prom_sample_u64(p, "gw_upstream_retries_total", g, RES_SUM(r, retries, i));
        gw_prom_sample_u64(p, "gw_upstream_retries_total", d, RES_SUM(r, retries_denied, i));
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

/* see res.h: 01's and 02's counters are written here too (they have no /metrics of their
 * own), so 03's hook has no level below to call. */
void gw_res_metrics(gw_runtime_t *rt, gw_prom_t *p)
{
    gw_res_t *r = gw_runtime_layer(rt, 3);
    metrics_listeners(r, p);
    metrics_buffers(r, p);
    const gw_lb_table_t *t = gw_lb_current_table(r->rt);
    if (t != NULL)
        metrics_upstreams(r, p, t);
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
    for (size_t i = 0; i < g->nlis; i++) {
        const gw_listener_t *l = g->lis[i].obj;
        json_array_append_new(
            ls, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "name", gw_listener_name(l), "active",
                          (json_int_t)atomic_load(&l->active), "accepted",
                          (json_int_t)atomic_load(&l->accepted), "rejected_max_connections",
                          (json_int_t)atomic_load(&l->rejected), "rejected_rate_global",
                          (json_int_t)RES_SUM(r, limited_global, l->index), "rejected_rate_client",
                          (json_int_t)RES_SUM(r, limited_client, l->index)));
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
    const gw_lb_table_t *t = gw_lb_current_table(r->rt);
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

int gw_res_gen_build(gw_runtime_t *rt, gw_gen_t *g, const gw_gen_t *prev, FILE *errs)
{
    return gw_lb_gen_build(rt, g, prev, errs);
}

void gw_res_gen_free(gw_runtime_t *rt, gw_gen_t *g)
{
    gw_lb_gen_free(rt, g);
}

void gw_res_gen_applied(gw_runtime_t *rt, const gw_gen_t *g, const gw_gen_t *prev)
{
    gw_lb_gen_applied(rt, g, prev);
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

static int prepare_listeners(gw_res_t *r)
{
    for (size_t i = 0; i < r->cfg->nlisteners; i++) {
        res_listener_t *rl = &r->lis[i];
        rl->cfg = gw_res_listener_cfg(&r->cfg->listeners[i]);
        if (rl->cfg->global_rate > 0) {
            if (gw_bucket_init(&rl->global, (double)rl->cfg->global_rate,
                               (unsigned)rl->cfg->global_burst) != 0)
                return GW_EINVAL;
            rl->has_global = true;
        }
        if (rl->cfg->client_rate > 0) {
            rl->clients =
                gw_keyed_new((double)rl->cfg->client_rate, (unsigned)rl->cfg->client_burst,
                             (size_t)rl->cfg->max_clients, 64);
            if (rl->clients == NULL)
                return GW_ENOMEM;
        }
    }
    return 0;
}

static int prepare_upstreams(gw_res_t *r)
{
    for (size_t i = 0; i < r->cfg->nupstreams; i++) {
        res_upstream_t *ru = &r->ups[i];
        ru->cfg = gw_res_upstream_cfg(&r->cfg->upstreams[i]);
        gw_budget_init(&ru->budget);
    }
    return 0;
}

static int prepare_workers(gw_res_t *r)
{
    size_t nu = r->cfg->nupstreams ? r->cfg->nupstreams : 1;
    size_t nl = r->cfg->nlisteners ? r->cfg->nlisteners : 1;
    for (unsigned i = 0; i < r->cfg->workers; i++) {
        res_worker_t *rw = &r->workers[i];
        rw->rng = 0x243f6a8885a308d3u ^ (0x9e3779b97f4a7c15u * (i + 1));
        rw->connect_time = calloc(nu, sizeof *rw->connect_time);
        rw->retries = calloc(nu, sizeof *rw->retries);
        rw->retries_denied = calloc(nu, sizeof *rw->retries_denied);
        rw->limited_global = calloc(nl, sizeof *rw->limited_global);
        rw->limited_client = calloc(nl, sizeof *rw->limited_client);
        if (!rw->connect_time || !rw->retries || !rw->retries_denied || !rw->limited_global ||
            !rw->limited_client)
            return GW_ENOMEM;
        for (size_t k = 0; k < nu; k++)
            gw_histogram_init(&rw->connect_time[k]);
    }
    return 0;
}

static void res_free(gw_res_t *r)
{
    for (size_t i = 0; r->lis != NULL && i < r->cfg->nlisteners; i++)
        gw_keyed_free(r->lis[i].clients);
    for (unsigned i = 0; r->workers != NULL && i < r->cfg->workers; i++) {
        res_worker_t *rw = &r->workers[i];
        free(rw->connect_time);
        free(rw->retries);
        free(rw->retries_denied);
        free(rw->limited_global);
        free(rw->limited_client);
    }
    free(r->ups);
    free(r->lis);
    free(r->workers);
    free(r);
}

/* The admin API's exposure, said at every start before anything binds: refused (the loader
 * refuses it already; this guards a config built some other way) or a warning. */
static int check_admin_exposure(const gw_config_t *cfg)
{
    char msg[512];
    switch (gw_res_admin_exposure(gw_res_root_cfg(cfg), msg, sizeof msg)) {
    case GW_RES_ADMIN_REFUSED:
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

/* see res.h */
int gw_res_prepare(const gw_config_t *cfg, void **layers)
{
    int rc = check_admin_exposure(cfg);
    if (rc != 0)
        return rc;
    rc = gw_lb_prepare(cfg, layers);
    if (rc != 0)
        return rc;
    gw_res_t *r = calloc(1, sizeof *r);
    if (r == NULL) {
        gw_lb_release(layers);
        return GW_ENOMEM;
    }
    r->lb = layers[2];
    r->cfg = cfg;
    r->ups = calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof *r->ups);
    r->lis = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof *r->lis);
    r->workers = calloc(cfg->workers, sizeof *r->workers);
    rc = r->ups && r->lis && r->workers ? 0 : GW_ENOMEM;
    if (rc == 0)
        rc = prepare_listeners(r);
    if (rc == 0)
        rc = prepare_upstreams(r);
    if (rc == 0)
        rc = prepare_workers(r);
    if (rc != 0) {
        gw_error("milestone 03 setup failed: %s", gw_strerror(rc));
        res_free(r);
        gw_lb_release(layers);
        return rc;
    }
    gw_lb_backend_ext(r->lb, 3, sizeof(res_backend_t), res_backend_init, NULL, NULL);
    gw_lb_hooks_t hooks = {res_usable, res_claim, res_outcome, res_retry, res_admit, r};
    bool limits = false;
    for (size_t i = 0; i < cfg->nlisteners; i++)
        limits |= r->lis[i].has_global || r->lis[i].clients != NULL;
    if (!limits)
        hooks.admit = NULL; /* nothing to check: no hook, no getpeername per connection */
    gw_lb_set_hooks(r->lb, &hooks);
    layers[3] = r;
    return 0;
}

/* see res.h */
void gw_res_release(void **layers)
{
    if (layers[3] != NULL)
        res_free(layers[3]);
    layers[3] = NULL;
    gw_lb_release(layers);
}
