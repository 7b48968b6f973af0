/* hutls.c - see hutls.h. */
#include "04-http/hutls.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "04-http/hproxy-int.h"
#include "04-http/tlsclient.h"
#include "clock.h"
#include "tls_stream.h"

/* ---- metrics ------------------------------------------------------------------------------
 * Failure reasons are BearSSL's codes named by gw_tls_error_name (a fixed set of static
 * strings, ~140) and our own "timeout", "eof", "reset", "io". Rather than a counter for each
 * of them per upstream and worker, each (upstream, worker) keeps REASON_SLOTS slots keyed by
 * the name's pointer, taken as reasons first occur; a further reason counts as "other". The
 * label set stays bounded (by the fixed set of names), a scrape shows only reasons seen, and
 * a failure costs a short scan, on a path that has just failed a handshake. */

#define REASON_SLOTS 16

typedef struct {
    /* The reason (a static string); NULL while free. Written once by the worker (release,
     * after nothing: the counter starts at 0), read by a scrape (acquire). */
    _Atomic(const char *) name;
    gw_counter_t n;
} reason_t;

typedef struct {
    gw_counter_t handshakes[2]; /* [resumed] */
    reason_t reasons[REASON_SLOTS];
    gw_counter_t other; /* failures beyond the slots */
} ustats_t;

struct hp_utls_s {
    unsigned nworkers;
    gw_kcount_t *ups; /* ustats_t per worker, by upstream name (kcount.h, held by the views) */
};

struct hp_utls_gen_s {
    const gw_config_t *cfg;
    gw_kcount_entry_t **ups; /* [nupstreams]: NULL for an upstream without tls */
};

/* One connection's TLS part: one allocation, charged to buffers.max_memory. */
struct hp_utls_conn_s {
    br_ssl_client_context cc;
    gw_tls_client_t client;
    gw_tls_stream_t ts;
    gw_tls_session_t offered; /* a copy of what was offered: the slot may change meanwhile */
    gw_tls_session_t *slot;   /* the backend's saved session on this worker */
    const gw_tls_upstream_cfg_t *cfg;
    const char *address_text; /* the backend as configured: its host is the default name */
    gw_kcount_entry_t *stats; /* its upstream's series, in the generation its exchange pinned */
    unsigned char iobuf[BR_SSL_BUFSIZE_BIDI]; /* full duplex: see tls_stream.h */
};

static const char *const alpn_http11[] = {"http/1.1"};

/* see hutls.h */
hp_utls_t *hp_utls_new(unsigned nworkers)
{
    hp_utls_t *t = calloc(1, sizeof *t);
    if (t == NULL || (t->ups = gw_kcount_new(nworkers, sizeof(ustats_t))) == NULL) {
        free(t);
        return NULL;
    }
    t->nworkers = nworkers;
    return t;
}

/* see hutls.h */
void hp_utls_free(hp_utls_t *t)
{
    if (t == NULL)
        return;
    gw_kcount_free(t->ups);
    free(t);
}

/* see hutls.h */
void hp_utls_gen_free(hp_utls_t *t, hp_utls_gen_t *v)
{
    if (v == NULL)
        return;
    for (size_t u = 0; v->ups != NULL && u < v->cfg->nupstreams; u++)
        gw_kcount_put(t->ups, v->ups[u]);
    free(v->ups);
    free(v);
}

/* see hutls.h */
hp_utls_gen_t *hp_utls_gen_new(hp_utls_t *t, const gw_config_t *cfg)
{
    hp_utls_gen_t *v = calloc(1, sizeof *v);
    if (v == NULL)
        return NULL;
    v->cfg = cfg;
    v->ups = calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof *v->ups);
    if (v->ups == NULL) {
        hp_utls_gen_free(t, v);
        return NULL;
    }
    for (size_t u = 0; u < cfg->nupstreams; u++) {
        if (gw_tls_upstream_cfg(&cfg->upstreams[u]) == NULL)
            continue;
        if ((v->ups[u] = gw_kcount_get(t->ups, cfg->upstreams[u].name, NULL)) == NULL) {
            hp_utls_gen_free(t, v);
            return NULL;
        }
    }
    return v;
}

/* see hutls.h */
gw_kcount_entry_t *hp_utls_series(const hp_utls_gen_t *v, size_t upstream)
{
    return v->ups[upstream];
}

static ustats_t *stats_of(const gw_kcount_entry_t *s, unsigned worker)
{
    return gw_kcount_block(s, worker);
}

/* Counts a failure of REASON (a static string) in S. Worker thread. */
static void count_failure(ustats_t *s, const char *reason)
{
    for (size_t i = 0; i < REASON_SLOTS; i++) {
        reason_t *r = &s->reasons[i];
        const char *name = atomic_load_explicit(&r->name, memory_order_relaxed);
        if (name == NULL) {
            atomic_store_explicit(&r->name, reason, memory_order_release);
            name = reason;
        }
        if (name == reason) {
            gw_counter_inc(&r->n);
            return;
        }
    }
    gw_counter_inc(&s->other);
}

/* see hutls.h */
void hp_utls_count_handshake(gw_kcount_entry_t *s, unsigned worker, bool resumed)
{
    gw_counter_inc(&stats_of(s, worker)->handshakes[resumed ? 1 : 0]);
}

/* see hutls.h */
void hp_utls_count_failure(gw_kcount_entry_t *s, unsigned worker, const char *reason)
{
    count_failure(stats_of(s, worker), reason);
}

/* The sum over the workers of series S's failures named NAME (pointer identity). */
static uint64_t failures_named(const hp_utls_t *t, const gw_kcount_entry_t *s, const char *name)
{
    uint64_t sum = 0;
    for (unsigned w = 0; w < t->nworkers; w++) {
        const ustats_t *st = stats_of(s, w);
        for (size_t i = 0; i < REASON_SLOTS; i++)
            if (atomic_load_explicit(&st->reasons[i].name, memory_order_acquire) == name)
                sum += gw_counter_get(&st->reasons[i].n);
    }
    return sum;
}

/* Whether NAME was already written for series S: in a slot of a worker before W, or before
 * slot I of worker W. */
static bool reason_written(const gw_kcount_entry_t *s, unsigned w, size_t i, const char *name)
{
    for (unsigned v = 0; v <= w; v++) {
        const ustats_t *st = stats_of(s, v);
        for (size_t j = 0; j < (v == w ? i : REASON_SLOTS); j++)
            if (atomic_load_explicit(&st->reasons[j].name, memory_order_acquire) == name)
                return true;
    }
    return false;
}

static void failures_metrics(const hp_utls_t *t, const gw_kcount_entry_t *s, gw_prom_t *p)
{
    uint64_t other = 0;
    for (unsigned w = 0; w < t->nworkers; w++) {
        const ustats_t *st = stats_of(s, w);
        other += gw_counter_get(&st->other);
        for (size_t i = 0; i < REASON_SLOTS; i++) {
            const char *name = atomic_load_explicit(&st->reasons[i].name, memory_order_acquire);
            if (name == NULL || reason_written(s, w, i, name))
                continue;
            const char *lab[] = {"upstream", s->k1, "reason", name, NULL};
            gw_prom_sample_u64(p, "gw_upstream_tls_handshake_failures_total", lab,
                               failures_named(t, s, name));
        }
    }
    if (other > 0) {
        const char *lab[] = {"upstream", s->k1, "reason", "other", NULL};
        gw_prom_sample_u64(p, "gw_upstream_tls_handshake_failures_total", lab, other);
    }
}

/* see hutls.h */
void hp_utls_metrics(const hp_utls_t *t, const hp_utls_gen_t *v, gw_prom_t *p)
{
    const gw_config_t *cfg = v->cfg;
    bool any = false;
    for (size_t u = 0; u < cfg->nupstreams; u++)
        any = any || v->ups[u] != NULL;
    if (!any)
        return;
    gw_prom_family(p, "gw_upstream_tls_handshakes_total",
                   "TLS handshakes completed with upstreams, full or resumed", GW_PROM_COUNTER);
    for (size_t u = 0; u < cfg->nupstreams; u++) {
        if (v->ups[u] == NULL)
            continue;
        for (int resumed = 0; resumed < 2; resumed++) {
            uint64_t sum = 0;
            for (unsigned w = 0; w < t->nworkers; w++)
                sum += gw_counter_get(&stats_of(v->ups[u], w)->handshakes[resumed]);
            const char *lab[] = {"upstream", v->ups[u]->k1, "resumed", resumed ? "true" : "false",
                                 NULL};
            gw_prom_sample_u64(p, "gw_upstream_tls_handshakes_total", lab, sum);
        }
    }
    gw_prom_family(p, "gw_upstream_tls_handshake_failures_total",
                   "TLS handshakes with upstreams that failed, by reason (BearSSL's error named, "
                   "or timeout, eof, reset, io)",
                   GW_PROM_COUNTER);
    for (size_t u = 0; u < cfg->nupstreams; u++)
        if (v->ups[u] != NULL)
            failures_metrics(t, v->ups[u], p);
}

/* ---- connections --------------------------------------------------------------------------- */

/* see hutls.h */
int hp_utls_conn_new(uconn_t *u, const gw_lb_member_t *m, gw_kcount_entry_t *s)
{
    const gw_tls_upstream_cfg_t *tc = gw_tls_upstream_cfg(m->up->cfg);
    if (tc == NULL)
        return 0;
    gw_bufpool_t *pool = u->hw->w->bufs.pool;
    int rc = gw_bufpool_reserve(pool, sizeof(hp_utls_conn_t));
    if (rc != 0)
        return rc;
    /* Not calloc: the record buffer need not be zeroed (BearSSL writes before it reads), and
     * 33 KB of zeroes would be written per connection for nothing. */
    hp_utls_conn_t *t = malloc(sizeof *t);
    if (t == NULL) {
        gw_bufpool_unreserve(pool, sizeof(hp_utls_conn_t));
        return UV_ENOMEM;
    }
    memset(t, 0, offsetof(hp_utls_conn_t, iobuf));
    t->cfg = tc;
    t->stats = s;
    t->slot = &hp_bslot(m->b, u->hw->w->id)->tls;
    t->address_text = m->cfg->address_text;
    u->tls = t;
    return 0;
}

/* Why the handshake of T failed with STATUS: BearSSL's code named, or what the socket said. */
static const char *failure_reason(const hp_utls_conn_t *t, int status)
{
    int err = gw_tls_stream_last_error(&t->ts);
    if (err != 0)
        return gw_tls_error_name(err);
    if (status == UV_EOF)
        return "eof";
    if (status == UV_ECONNRESET || status == UV_EPIPE) /* maybe after an alert we lost */
        return "reset";
    return "io";
}

static void on_handshake(gw_tls_stream_t *ts, int status)
{
    uconn_t *u = ts->s.data;
    hp_utls_conn_t *t = u->tls;
    if (status == 0) {
        bool resumed = gw_tls_session_resumed(&t->cc, &t->offered);
        hp_utls_count_handshake(t->stats, u->hw->w->id, resumed);
        if (!resumed)
            gw_tls_session_save(t->slot, &t->cc);
        gw_tls_session_forget(&t->offered); /* no longer needed: no secret kept twice */
        hp_upstream_tls_done(u, NULL);
        return;
    }
    const char *reason = failure_reason(t, status);
    hp_utls_count_failure(t->stats, u->hw->w->id, reason);
    /* The next connection to this backend verifies afresh: a session saved before would let
     * it skip the certificate that was just refused. */
    gw_tls_session_forget(t->slot);
    hp_upstream_tls_done(u, reason);
}

/* see hutls.h */
int hp_utls_conn_start(uconn_t *u, gw_stream_read_cb on_read)
{
    hp_utls_conn_t *t = u->tls;
    char host[256];
    t->offered = *t->slot;
    gw_tls_client_opts_t o = {
        .server_name = gw_tls_server_name(t->cfg, t->address_text, host, sizeof host),
        .resume = &t->offered,
        .now = (int64_t)(gw_clock_wall_ms(&gw_clock_system) / 1000u),
        .alpn = alpn_http11,
        .nalpn = 1,
        .iobuf = t->iobuf,
        .iolen = sizeof t->iobuf,
    };
    if (gw_tls_client_setup(&t->client, &t->cc, t->cfg, &o) != 0)
        return UV_EPROTO;
    int rc = gw_tls_stream_init(&t->ts, &u->sock.s, &t->cc.eng, &u->hw->w->streams, on_read, u);
    if (rc != 0)
        return rc;
    gw_tls_stream_on_handshake(&t->ts, on_handshake);
    u->s = &t->ts.s;
    u->out.stream = u->s;
    return 0;
}

/* see hutls.h */
void hp_utls_conn_timed_out(uconn_t *u)
{
    if (u->tls != NULL)
        hp_utls_count_failure(u->tls->stats, u->hw->w->id, "timeout");
}

/* see hutls.h */
bool hp_utls_truncated(const uconn_t *u)
{
    return u->tls != NULL && u->s == &u->tls->ts.s && gw_tls_stream_truncated(&u->tls->ts);
}

/* see hutls.h */
void hp_utls_conn_free(uconn_t *u)
{
    hp_utls_conn_t *t = u->tls;
    if (t == NULL)
        return;
    u->tls = NULL;
    /* The engine holds the session's master secret and the record keys. */
    explicit_bzero(&t->cc, sizeof t->cc);
    gw_tls_session_forget(&t->offered);
    free(t);
    gw_bufpool_unreserve(u->hw->w->bufs.pool, sizeof(hp_utls_conn_t));
}
