/* htls.c - see htls.h. The TLS side of a client connection: the listeners' credentials made
 * per generation (refcounted, held by each connection), one allocation per connection, the
 * handshake's outcome (counters by listener name, the handshake list), and the pure tables
 * (failure reasons, suite and version names, mTLS fields).
 *
 * The record flow, for the reader who comes from hclient.c: the client's bytes arrive on
 * c->sock (a gw_tcp_stream_t), which the TLS stream reads and feeds, record by record, into
 * BearSSL's engine; the engine decrypts into its recvapp window, and the TLS stream hands
 * that plaintext to hp_on_client_read in pool chunks, exactly as c->sock would have. Our
 * writes go the other way: the writer (wbatch.c) writes plaintext to c->s, the TLS stream
 * copies it into the engine's sendapp window, the engine seals records into sendrec, and the
 * TLS stream writes those to c->sock. The engine's buffer (BR_SSL_BUFSIZE_BIDI) is the only
 * buffer on the way; the HTTP code's backpressure (high_water) works unchanged on top. */
#include "04-http/htls.h"

#include <stdlib.h>
#include <string.h>

#include "04-http/hproxy-int.h"
#include "04-http/kcount.h"
#include "04-http/tlscache.h"
#include "04-http/tlsserver.h"
#include "clock.h"
#include "error.h"
#include "log.h"
#include "tls_stream.h"

/* The counters each listener name keeps (kcount.h), per worker: handshakes, then failures. */
#define C_HANDSHAKES 0 /* + resumed (0 or 1) */
#define C_FAILURES 2   /* + the reason's slot */
#define NCOUNTERS (C_FAILURES + GW_HTLS_NSLOTS)

/* A listener's session cache, shared by its credentials of successive generations while its
 * size stays: a reload does not forget the sessions clients come back with (resuming is
 * fine across a certificate change: TLS 1.2 sends no certificate on a resumed handshake). */
typedef struct tls_cache_s {
    atomic_uint refs; /* the credentials that use it */
    size_t size;      /* sessions asked for (0: none, client_auth) */
    gw_tlscache_t cache;
} tls_cache_t;

/* see htls.h */
struct hp_tls_cred_s {
    atomic_uint refs;           /* its generation's, plus one per connection using it */
    gw_tls_listener_cfg_t *cfg; /* held: certificates, keys, client CAs, ALPN, timeouts */
    tls_cache_t *cache;         /* held */
    gw_kcount_entry_t *stats;   /* the listener name's counters (kept as long as the process) */
};

/* see htls.h */
struct hp_tls_gen_s {
    size_t n;
    hp_tls_cred_t **cred; /* [n], by position in the generation's config; NULL: no tls */
};

struct hp_tls_s {
    unsigned workers;
    gw_kcount_t *counts; /* kept by listener name: NCOUNTERS per worker */
    /* tcp listeners with tls: 01's picker (layer 1) as it was, plus a wrap hook that puts a
     * TLS stream over each client (tcp_wrap). */
    gw_tcp_picker_t picker;
};

/* One TLS client connection: everything it needs besides its hconn_t, in one allocation. */
typedef struct tls_conn_s {
    gw_tls_stream_t ts;  /* first: hconn_t.s (or 01's client stream) points at ts.s */
    hconn_t *c;          /* the http connection; NULL on a tcp listener (01's pair owns it) */
    hp_tls_cred_t *cred; /* held until the connection is freed (conn_free) */
    unsigned worker;
    gw_bufpool_t *pool; /* where the connection's charge goes back */
    gw_hx_tls_t info;   /* filled when the handshake completes */
    gw_tlscache_conn_t cc;
    gw_tls_server_t srv;
    br_ssl_server_context sc;
    unsigned char iobuf[BR_SSL_BUFSIZE_BIDI];
} tls_conn_t;

/* ---- pure parts --------------------------------------------------------------------------- */

/* see htls.h */
size_t gw_htls_reason_slot(int br_err)
{
    size_t slot;
    if (br_err >= 0 && br_err < GW_HTLS_SLOT_RECV_ALERT)
        slot = (size_t)br_err;
    else if (br_err >= BR_ERR_RECV_FATAL_ALERT && br_err < BR_ERR_RECV_FATAL_ALERT + 256)
        slot = GW_HTLS_SLOT_RECV_ALERT + (size_t)(br_err - BR_ERR_RECV_FATAL_ALERT);
    else if (br_err >= BR_ERR_SEND_FATAL_ALERT && br_err < BR_ERR_SEND_FATAL_ALERT + 256)
        slot = GW_HTLS_SLOT_SENT_ALERT + (size_t)(br_err - BR_ERR_SEND_FATAL_ALERT);
    else
        return GW_HTLS_SLOT_UNKNOWN;
    /* Codes without a name of their own share one slot per name: alert 255 is undefined in
     * TLS 1.2, so its slots are the generic "recv_alert" / "sent_alert". */
    const char *name = gw_tls_error_name(br_err);
    if (strcmp(name, "unknown") == 0)
        return GW_HTLS_SLOT_UNKNOWN;
    if (strcmp(name, "recv_alert") == 0)
        return GW_HTLS_SLOT_RECV_ALERT + 255;
    if (strcmp(name, "sent_alert") == 0)
        return GW_HTLS_SLOT_SENT_ALERT + 255;
    return slot;
}

/* see htls.h */
size_t gw_htls_failure_slot(int status, int br_err)
{
    if (status == UV_EOF)
        return GW_HTLS_SLOT_EOF;
    if (status != UV_EPROTO)
        return gw_htls_reason_slot(BR_ERR_IO); /* the socket failed: reset, ... */
    return br_err != BR_ERR_OK ? gw_htls_reason_slot(br_err) : GW_HTLS_SLOT_UNKNOWN;
}

/* see htls.h */
const char *gw_htls_reason_name(size_t slot)
{
    if (slot < GW_HTLS_SLOT_RECV_ALERT)
        return gw_tls_error_name((int)slot);
    if (slot < GW_HTLS_SLOT_SENT_ALERT)
        return gw_tls_error_name(BR_ERR_RECV_FATAL_ALERT + (int)(slot - GW_HTLS_SLOT_RECV_ALERT));
    if (slot < GW_HTLS_SLOT_UNKNOWN)
        return gw_tls_error_name(BR_ERR_SEND_FATAL_ALERT + (int)(slot - GW_HTLS_SLOT_SENT_ALERT));
    switch (slot) {
    case GW_HTLS_SLOT_TIMEOUT:
        return "timeout";
    case GW_HTLS_SLOT_EOF:
        return "eof";
    case GW_HTLS_SLOT_NO_BUFFERS:
        return "no_buffers";
    case GW_HTLS_SLOT_NO_MEMORY:
        return "no_memory";
    default:
        return "unknown";
    }
}

/* see htls.h */
const char *gw_htls_suite_name(uint16_t suite)
{
    switch (suite) {
    case BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256:
        return "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256";
    case BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:
        return "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256";
    case BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384:
        return "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384";
    case BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:
        return "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384";
    case BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256:
        return "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256";
    case BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256:
        return "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256";
    default:
        return "unknown";
    }
}

/* see htls.h */
const char *gw_htls_version_name(unsigned version)
{
    switch (version) {
    case BR_TLS12:
        return "TLSv1.2";
    case BR_TLS11:
        return "TLSv1.1";
    case BR_TLS10:
        return "TLSv1.0";
    default:
        return "unknown";
    }
}

/* Percent-encodes what is not printable ASCII (and '%') of S into OUT (CAP >= 3 * strlen + 1). */
static size_t encode_cn(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0' && n + 4 <= cap; p++) {
        if (*p < 0x20 || *p >= 0x7f || *p == '%') {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        } else {
            out[n++] = (char)*p;
        }
    }
    out[n] = '\0';
    return n;
}

/* see htls.h */
int gw_htls_client_fields(gw_h1_head_t *req, const gw_tls_listener_cfg_t *cfg,
                          const gw_hx_tls_t *info)
{
    if (cfg == NULL || !cfg->client_auth)
        return 0;
    const char *sn = cfg->subject_header, *fn = cfg->fingerprint_header;
    if (sn != NULL)
        gw_h1_head_remove(req, sn);
    if (fn != NULL)
        gw_h1_head_remove(req, fn);
    if (info == NULL || !info->client_cert)
        return 0;
    char cn[3 * 256 + 1];
    size_t n = encode_cn(info->cert_cn != NULL ? info->cert_cn : "", cn, sizeof cn);
    int rc = 0;
    if (sn != NULL && n > 0)
        rc = gw_h1_head_add(req, sn, strlen(sn), cn, n);
    if (rc == 0 && fn != NULL && info->cert_sha256 != NULL)
        rc = gw_h1_head_add(req, fn, strlen(fn), info->cert_sha256, strlen(info->cert_sha256));
    return rc;
}

/* ---- per config, per generation ------------------------------------------------------- */

/* see htls.h */
hp_tls_t *hp_tls_new(unsigned workers)
{
    hp_tls_t *t = calloc(1, sizeof *t);
    if (t != NULL &&
        (t->counts = gw_kcount_new(workers, NCOUNTERS * sizeof(gw_counter_t))) == NULL) {
        free(t);
        t = NULL;
    }
    if (t != NULL)
        t->workers = workers;
    return t;
}

/* see htls.h */
void hp_tls_free(hp_tls_t *t)
{
    if (t == NULL)
        return;
    gw_kcount_free(t->counts);
    free(t);
}

static void cache_release(tls_cache_t *tc)
{
    if (tc == NULL || atomic_fetch_sub_explicit(&tc->refs, 1, memory_order_acq_rel) != 1)
        return;
    gw_tlscache_free(&tc->cache); /* wipes the master secrets */
    free(tc);
}

/* A session cache of SIZE sessions for listener NAME; NULL with *ERR. */
static tls_cache_t *cache_new(const char *name, size_t size, int *err)
{
    tls_cache_t *tc = calloc(1, sizeof *tc);
    if (tc == NULL) {
        *err = GW_ENOMEM;
        return NULL;
    }
    atomic_init(&tc->refs, 1);
    tc->size = size;
    if ((*err = gw_tlscache_init(&tc->cache, size, 0)) != 0) {
        free(tc);
        return NULL;
    }
    if (size > 0)
        gw_info("listener '%s': TLS session cache: %zu sessions, %zu bytes", name,
                gw_tlscache_capacity(&tc->cache), gw_tlscache_bytes(&tc->cache));
    return tc;
}

/* see htls.h */
void hp_tls_cred_hold(hp_tls_cred_t *cr)
{
    atomic_fetch_add_explicit(&cr->refs, 1, memory_order_relaxed);
}

/* see htls.h */
void hp_tls_cred_release(hp_tls_cred_t *cr)
{
    if (cr == NULL || atomic_fetch_sub_explicit(&cr->refs, 1, memory_order_acq_rel) != 1)
        return;
    cache_release(cr->cache);
    gw_tls_listener_free(cr->cfg); /* our reference: the last one frees the keys */
    free(cr);
}

/* see htls.h */
const gw_tls_listener_cfg_t *hp_tls_cred_cfg(const hp_tls_cred_t *cr)
{
    return cr->cfg;
}

/* PREV's credential for listener NAME, or NULL. */
static const hp_tls_cred_t *prev_cred(const hp_tls_gen_t *prev, const char *name)
{
    for (size_t i = 0; prev != NULL && i < prev->n; i++)
        if (prev->cred[i] != NULL && strcmp(prev->cred[i]->stats->k1, name) == 0)
            return prev->cred[i];
    return NULL;
}

/* see htls.h */
hp_tls_cred_t *hp_tls_cred_new(hp_tls_t *t, const gw_listener_cfg_t *l, const hp_tls_gen_t *prev,
                               int *err)
{
    const gw_tls_listener_cfg_t *tc = gw_tls_listener_cfg(l);
    *err = GW_ENOMEM;
    hp_tls_cred_t *cr = tc != NULL ? calloc(1, sizeof *cr) : NULL;
    if (cr == NULL)
        return NULL;
    atomic_init(&cr->refs, 1); /* the generation's */
    if ((cr->stats = gw_kcount_keep(t->counts, l->name, NULL)) == NULL) {
        free(cr);
        return NULL;
    }
    /* mTLS: BearSSL resumes a session without asking for the client's certificate, and the
     * session's parameters carry no identity: a resumed connection would have no verified
     * certificate, so no headers (or, with required: true, would pass unauthenticated). */
    size_t size = tc->client_auth ? 0 : (size_t)tc->session_cache_size;
    const hp_tls_cred_t *old = prev_cred(prev, l->name);
    if (old != NULL && old->cache->size == size) {
        cr->cache = old->cache;
        atomic_fetch_add_explicit(&cr->cache->refs, 1, memory_order_relaxed);
    } else if ((cr->cache = cache_new(l->name, size, err)) == NULL) {
        free(cr);
        return NULL;
    }
    cr->cfg = gw_tls_listener_hold(tc);
    if (old == NULL && tc->client_auth && tc->session_cache_size > 0)
        gw_info("listener '%s': client_auth: TLS sessions are not cached (a resumed session "
                "carries no client certificate)",
                l->name);
    if (old == NULL)
        gw_info("listener '%s': TLS: %zu bytes per connection, charged to buffers.max_memory",
                l->name, sizeof(tls_conn_t));
    *err = 0;
    return cr;
}

/* see htls.h */
void hp_tls_gen_free(hp_tls_gen_t *tg)
{
    if (tg == NULL)
        return;
    for (size_t i = 0; i < tg->n; i++)
        hp_tls_cred_release(tg->cred[i]); /* connections may keep theirs a while */
    free(tg->cred);
    free(tg);
}

/* see htls.h */
hp_tls_gen_t *hp_tls_gen_build(hp_tls_t *t, const gw_config_t *cfg, const hp_tls_gen_t *prev,
                               FILE *errs, int *err)
{
    hp_tls_gen_t *tg = calloc(1, sizeof *tg);
    *err = GW_ENOMEM;
    if (tg == NULL || (tg->cred = calloc(cfg->nlisteners + 1, sizeof *tg->cred)) == NULL) {
        free(tg);
        return NULL;
    }
    tg->n = cfg->nlisteners;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const gw_listener_cfg_t *l = &cfg->listeners[i];
        if (gw_tls_listener_cfg(l) == NULL)
            continue;
        if ((tg->cred[i] = hp_tls_cred_new(t, l, prev, err)) == NULL) {
            fprintf(errs, "%s: listener '%s': TLS: %s\n", cfg->path ? cfg->path : "-", l->name,
                    gw_strerror(*err));
            hp_tls_gen_free(tg);
            return NULL;
        }
    }
    *err = 0;
    return tg;
}

/* see htls.h */
hp_tls_cred_t *hp_tls_gen_cred(const hp_tls_gen_t *tg, size_t pos)
{
    return tg != NULL && pos < tg->n ? tg->cred[pos] : NULL;
}

static void cache_metrics(const hp_tls_gen_t *tg, const gw_gen_t *g, gw_prom_t *p)
{
    static const struct {
        const char *name, *help;
    } fam[] = {
        {"gw_tls_session_cache_hits_total", "Resumption lookups that found the session"},
        {"gw_tls_session_cache_misses_total", "Resumption lookups that did not"},
        {"gw_tls_session_cache_stores_total", "Sessions stored after a full handshake"},
        {"gw_tls_session_cache_evictions_total", "Sessions forgotten to make room"},
    };
    for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
        gw_prom_family(p, fam[f].name, fam[f].help, GW_PROM_COUNTER);
        for (size_t i = 0; g != NULL && i < g->nlis; i++) {
            const hp_tls_cred_t *cr = hp_tls_gen_cred(tg, g->lis[i].pos);
            if (cr == NULL)
                continue;
            gw_tlscache_stats_t st;
            gw_tlscache_stats(&cr->cache->cache, &st);
            const uint64_t v[] = {st.hits, st.misses, st.stores, st.evictions};
            const char *lab[] = {"listener", g->lis[i].cfg->name, NULL};
            gw_prom_sample_u64(p, fam[f].name, lab, v[f]);
        }
    }
    gw_prom_family(p, "gw_tls_session_cache_entries",
                   "Sessions the shared cache holds now (0 with client_auth: no cache)",
                   GW_PROM_GAUGE);
    for (size_t i = 0; g != NULL && i < g->nlis; i++) {
        const hp_tls_cred_t *cr = hp_tls_gen_cred(tg, g->lis[i].pos);
        if (cr == NULL)
            continue;
        gw_tlscache_stats_t st;
        gw_tlscache_stats(&cr->cache->cache, &st);
        const char *lab[] = {"listener", g->lis[i].cfg->name, NULL};
        gw_prom_sample_u64(p, "gw_tls_session_cache_entries", lab, st.entries);
    }
}

/* see htls.h */
void hp_tls_metrics(const hp_tls_gen_t *tg, const gw_gen_t *g, gw_prom_t *p)
{
    gw_prom_family(p, "gw_tls_handshakes_total",
                   "TLS handshakes completed on a listener, resumed from the session cache or full",
                   GW_PROM_COUNTER);
    for (size_t i = 0; g != NULL && i < g->nlis; i++) {
        const hp_tls_cred_t *cr = hp_tls_gen_cred(tg, g->lis[i].pos);
        for (int r = 0; cr != NULL && r < 2; r++) {
            const char *lab[] = {"listener", g->lis[i].cfg->name, "resumed", r ? "true" : "false",
                                 NULL};
            gw_prom_sample_u64(p, "gw_tls_handshakes_total", lab,
                               gw_kcount_sum(cr->stats, C_HANDSHAKES + (size_t)r));
        }
    }
    gw_prom_family(p, "gw_tls_handshake_failures_total",
                   "TLS handshakes that failed, by reason (BearSSL's error, or timeout, eof, "
                   "no_buffers, no_memory)",
                   GW_PROM_COUNTER);
    for (size_t i = 0; g != NULL && i < g->nlis; i++) {
        const hp_tls_cred_t *cr = hp_tls_gen_cred(tg, g->lis[i].pos);
        for (size_t s = 0; cr != NULL && s < GW_HTLS_NSLOTS; s++) {
            uint64_t v = gw_kcount_sum(cr->stats, C_FAILURES + s);
            /* Only the reasons seen (the table has ~580 slots); timeout and eof always, so
             * a dashboard finds the family's usual members before the first failure. */
            if (v == 0 && s != GW_HTLS_SLOT_TIMEOUT && s != GW_HTLS_SLOT_EOF)
                continue;
            const char *lab[] = {"listener", g->lis[i].cfg->name, "reason", gw_htls_reason_name(s),
                                 NULL};
            gw_prom_sample_u64(p, "gw_tls_handshake_failures_total", lab, v);
        }
    }
    cache_metrics(tg, g, p);
}

/* see htls.h */
void hp_tls_cred_count(hp_tls_cred_t *cr, unsigned worker, int status, size_t slot, bool resumed)
{
    size_t i = status == 0 ? C_HANDSHAKES + (resumed ? 1 : 0) : C_FAILURES + slot;
    gw_counter_inc(gw_kcount_counter(cr->stats, worker, i));
}

/* ---- per connection ----------------------------------------------------------------------- */

static tls_conn_t *tls_of(const hconn_t *c)
{
    return c->s != &c->sock.s ? (tls_conn_t *)(void *)c->s : NULL;
}

static void count_failure(const tls_conn_t *t, size_t slot)
{
    hp_tls_cred_count(t->cred, t->worker, -1, slot, false);
}

/* The credential of listener L in the generation published now (borrowed: the caller takes
 * its own reference before the loop turn ends), NULL when L has no tls there. *GONE: L is
 * not in that generation (a reload removed it, and this worker has not closed its socket
 * yet): its connection is refused, the one change allowed to refuse work. */
static hp_tls_cred_t *cred_now(const gw_runtime_t *rt, const gw_listener_t *l, bool *gone)
{
    const gw_gen_t *g = gw_gen_current(rt);
    const gw_glistener_t *gl = gw_gen_listener(g, l);
    *gone = gl == NULL;
    return gl != NULL ? hp_tls_gen_cred(hp_gen_tls(g), gl->pos) : NULL;
}

/* What the exchange will see: names and pointers into the engine and our server part,
 * which live as long as the connection. */
static void fill_info(tls_conn_t *t)
{
    const br_ssl_engine_context *eng = &t->sc.eng;
    const char *sni = br_ssl_engine_get_server_name(eng);
    t->info.version = gw_htls_version_name(br_ssl_engine_get_version(eng));
    t->info.cipher = gw_htls_suite_name(eng->session.cipher_suite);
    t->info.sni = sni != NULL && sni[0] != '\0' ? sni : NULL;
    t->info.resumed = gw_tlscache_conn_resumed(&t->cc);
    t->info.client_cert = t->srv.peer.present;
    t->info.cert_cn = t->srv.peer.cn;
    t->info.cert_sha256 = t->srv.peer.sha256_hex;
}

static void count_handshake(tls_conn_t *t, int status);

static void on_handshake(gw_tls_stream_t *ts, int status)
{
    tls_conn_t *t = (tls_conn_t *)(void *)ts;
    hconn_t *c = t->c;
    count_handshake(t, status);
    if (status != 0) {
        /* Gracefully: BearSSL's alert, if it has one, was written first (tls_stream.h). */
        hp_client_close(c, false);
        return;
    }
    /* From now on a request head is awaited: the listener's request_head_timeout. */
    if (c->list != NULL && c->list->kind == IDLE_HANDSHAKE && !hp_list_idle_kind(c, IDLE_FRESH))
        hp_client_close(c, false);
}

/* A TLS connection with credential CR on worker WORKER over INNER, whose reads go to
 * ON_READ with DATA: one allocation charged to POOL, holding CR, the server context set up,
 * the TLS stream started (the handshake runs from now on). NULL with *ERR (counted as a
 * failure). */
static tls_conn_t *conn_new(hp_tls_cred_t *cr, unsigned worker, gw_bufpool_t *pool,
                            gw_stream_t *inner, gw_stream_env_t *env, gw_stream_read_cb on_read,
                            void *data, int *err)
{
    if (gw_bufpool_reserve(pool, sizeof(tls_conn_t)) != 0) {
        hp_tls_cred_count(cr, worker, -1, GW_HTLS_SLOT_NO_BUFFERS, false);
        *err = UV_ENOBUFS;
        return NULL;
    }
    tls_conn_t *t = malloc(sizeof *t);
    if (t == NULL) {
        gw_bufpool_unreserve(pool, sizeof(tls_conn_t));
        hp_tls_cred_count(cr, worker, -1, GW_HTLS_SLOT_NO_MEMORY, false);
        *err = UV_ENOMEM;
        return NULL;
    }
    t->c = NULL;
    t->cred = cr;
    t->worker = worker;
    t->pool = pool;
    memset(&t->info, 0, sizeof t->info);
    gw_tlscache_conn_init(&t->cc, &cr->cache->cache);
    int64_t now = (int64_t)(gw_clock_wall_ms(&gw_clock_system) / 1000);
    int rc = gw_tls_server_setup(&t->srv, &t->sc, cr->cfg, gw_tlscache_conn_class(&t->cc), now,
                                 t->iobuf, sizeof t->iobuf) == 0
                 ? gw_tls_stream_init(&t->ts, inner, &t->sc.eng, env, on_read, data)
                 : UV_EINVAL;
    if (rc != 0) { /* INNER is still plaintext and the caller's */
        hp_tls_cred_count(cr, worker, -1, gw_htls_failure_slot(rc, 0), false);
        free(t);
        gw_bufpool_unreserve(pool, sizeof(tls_conn_t));
        *err = rc;
        return NULL;
    }
    /* The engine points into CR's certificates, keys and cache for the connection's whole
     * life: CR stays until conn_free, whatever generation goes meanwhile. */
    hp_tls_cred_hold(cr);
    return t;
}

/* Frees T (after its stream's close callback) and gives its charge back. */
static void conn_free(tls_conn_t *t)
{
    gw_bufpool_t *pool = t->pool;
    hp_tls_cred_t *cr = t->cred;
    explicit_bzero(&t->sc, sizeof t->sc); /* the session's keys */
    free(t);
    hp_tls_cred_release(cr); /* after the engine is gone: it pointed into CR */
    gw_bufpool_unreserve(pool, sizeof(tls_conn_t));
}

/* The handshake's outcome in the listener's counters. */
static void count_handshake(tls_conn_t *t, int status)
{
    if (status != 0) {
        size_t slot = gw_htls_failure_slot(status, gw_tls_stream_last_error(&t->ts));
        count_failure(t, slot);
        gw_debug("listener '%s': TLS handshake failed: %s", t->cred->stats->k1,
                 gw_htls_reason_name(slot));
        return;
    }
    fill_info(t);
    hp_tls_cred_count(t->cred, t->worker, 0, 0, t->info.resumed);
}

/* see htls.h */
int hp_tls_accept(hconn_t *c)
{
    hp_worker_t *hw = c->hw;
    bool gone;
    hp_tls_cred_t *cr = cred_now(hw->w->rt, c->l, &gone);
    if (gone)
        return UV_ECONNABORTED;
    if (cr == NULL)
        return 0; /* a plaintext listener */
    int rc = 0;
    tls_conn_t *t = conn_new(cr, hw->w->id, hw->w->bufs.pool, &c->sock.s, &hw->w->streams,
                             hp_on_client_read, c, &rc);
    if (t == NULL)
        return rc; /* c->sock is still plaintext and the caller's */
    t->c = c;
    gw_tls_stream_on_handshake(&t->ts, on_handshake);
    c->s = &t->ts.s;
    c->out.stream = c->s; /* nothing was queued yet */
    return 0;
}

/* see htls.h */
uint64_t hp_tls_handshake_ms(const hconn_t *c)
{
    const tls_conn_t *t = c->s != &c->sock.s ? (const tls_conn_t *)(const void *)c->s : NULL;
    return t != NULL ? t->cred->cfg->handshake_timeout_ms : 0;
}

/* see htls.h */
void hp_tls_conn_free(hconn_t *c)
{
    tls_conn_t *t = tls_of(c);
    if (t == NULL)
        return;
    c->s = &c->sock.s;
    conn_free(t);
}

/* see htls.h */
void hp_tls_handshake_timeout(hconn_t *c)
{
    tls_conn_t *t = tls_of(c);
    if (t != NULL && !gw_tls_stream_ready(&t->ts))
        count_failure(t, GW_HTLS_SLOT_TIMEOUT);
}

/* see htls.h */
const gw_hx_tls_t *hp_tls_info(const hconn_t *c)
{
    const tls_conn_t *t = tls_of(c);
    return t != NULL && gw_tls_stream_ready(&t->ts) ? &t->info : NULL;
}

/* ---- tcp listeners: 01's pair with a TLS stream on the client side ------------------------ */

/* The handshake of a tcp listener's client ended: counted, then 01 connects to a backend
 * (or closes the client): a backend never sees a client that did not finish its handshake. */
static void tcp_on_handshake(gw_tls_stream_t *ts, int status)
{
    tls_conn_t *t = (tls_conn_t *)(void *)ts;
    count_handshake(t, status);
    gw_tcp_wrapper_ready(&ts->s, status);
}

static int tcp_wrap(void *ctx, gw_worker_t *w, const gw_listener_t *l, gw_stream_t *client,
                    gw_stream_read_cb on_read, gw_stream_t **out, uint64_t *wait_ms)
{
    (void)ctx;
    *out = NULL;
    bool gone;
    hp_tls_cred_t *cr = cred_now(w->rt, l, &gone);
    if (gone)
        return UV_ECONNABORTED;
    if (cr == NULL) /* a plaintext tcp listener */
        return 0;
    int rc = 0;
    tls_conn_t *tc =
        conn_new(cr, w->id, w->bufs.pool, client, &w->streams, on_read, client->data, &rc);
    if (tc == NULL)
        return rc;
    gw_tls_stream_on_handshake(&tc->ts, tcp_on_handshake);
    *out = &tc->ts.s;
    *wait_ms = cr->cfg->handshake_timeout_ms;
    return 0;
}

static void tcp_unwrap(void *ctx, gw_worker_t *w, gw_stream_t *s, bool timed_out)
{
    (void)ctx;
    (void)w;
    tls_conn_t *t = (tls_conn_t *)(void *)s;
    if (timed_out && !gw_tls_stream_ready(&t->ts))
        count_failure(t, GW_HTLS_SLOT_TIMEOUT);
    conn_free(t);
}

/* see htls.h */
void hp_tls_tcp_picker(hp_tls_t *t, void **layers)
{
    if (t == NULL || layers[1] == NULL)
        return;
    /* The picker below as it is (02's, or passthrough's over it), plus the wrapper:
     * installed whatever the startup config says, so that a reload may give a tcp listener
     * tls (tcp_wrap answers "no wrapper" for the others). */
    t->picker = *(const gw_tcp_picker_t *)layers[1];
    t->picker.wrap = tcp_wrap;
    t->picker.unwrap = tcp_unwrap;
    t->picker.wrap_ctx = t;
    layers[1] = &t->picker;
}
