/* htls.c - see htls.h. The TLS side of a client connection: the listener's state made at
 * prepare, one allocation per connection, the handshake's outcome (metrics, the handshake
 * list), and the pure tables (failure reasons, suite and version names, mTLS fields).
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
#include "04-http/tlscache.h"
#include "04-http/tlsserver.h"
#include "clock.h"
#include "error.h"
#include "log.h"
#include "tls_stream.h"

/* One worker's counters for one listener (written by that worker only, summed on scrape). */
typedef struct tls_wstats_s {
    gw_counter_t handshakes[2]; /* [resumed] */
    gw_counter_t failures[GW_HTLS_NSLOTS];
} tls_wstats_t;

/* One listener's TLS state; cfg NULL: the listener does not terminate TLS. */
typedef struct tls_listener_s {
    const gw_listener_cfg_t *l;
    const gw_tls_listener_cfg_t *cfg;
    gw_tlscache_t cache; /* shared by every worker; disabled (size 0) with client_auth */
    tls_wstats_t **w;    /* [workers] */
} tls_listener_t;

struct hp_tls_s {
    size_t nlis;
    unsigned workers;
    tls_listener_t *lis; /* [nlis], parallel to cfg->listeners */
    /* tcp listeners with tls: 01's picker (layer 1) as it was, plus a wrap hook that puts a
     * TLS stream over each client (tcp_wrap). */
    gw_tcp_picker_t picker;
};

/* One TLS client connection: everything it needs besides its hconn_t, in one allocation. */
typedef struct tls_conn_s {
    gw_tls_stream_t ts; /* first: hconn_t.s (or 01's client stream) points at ts.s */
    hconn_t *c;         /* the http connection; NULL on a tcp listener (01's pair owns it) */
    tls_listener_t *tl;
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

/* ---- per config ------------------------------------------------------------------------- */

/* see htls.h */
void hp_tls_free(hp_tls_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; t->lis != NULL && i < t->nlis; i++) {
        tls_listener_t *tl = &t->lis[i];
        if (tl->cfg == NULL)
            continue;
        gw_tlscache_free(&tl->cache);
        for (unsigned w = 0; tl->w != NULL && w < t->workers; w++)
            free(tl->w[w]);
        free(tl->w);
    }
    free(t->lis);
    free(t);
}

/* Sets up TL for listener L (TLS config TC): its cache and counters. 0 or an error. */
static int listener_init(tls_listener_t *tl, const gw_listener_cfg_t *l,
                         const gw_tls_listener_cfg_t *tc, unsigned workers)
{
    tl->l = l;
    tl->cfg = tc;
    /* mTLS: BearSSL resumes a session without asking for the client's certificate, and the
     * session's parameters carry no identity: a resumed connection would have no verified
     * certificate, so no headers (or, with required: true, would pass unauthenticated). */
    size_t size = tc->client_auth ? 0 : (size_t)tc->session_cache_size;
    int rc = gw_tlscache_init(&tl->cache, size, 0);
    if (rc != 0) {
        gw_error("listener '%s': TLS session cache of %zu sessions: %s", l->name, size,
                 gw_strerror(rc));
        return rc;
    }
    if (tc->client_auth && tc->session_cache_size > 0)
        gw_info("listener '%s': client_auth: TLS sessions are not cached (a resumed session "
                "carries no client certificate)",
                l->name);
    else if (size > 0)
        gw_info("listener '%s': TLS session cache: %zu sessions, %zu bytes", l->name,
                gw_tlscache_capacity(&tl->cache), gw_tlscache_bytes(&tl->cache));
    gw_info("listener '%s': TLS: %zu bytes per connection, charged to buffers.max_memory", l->name,
            sizeof(tls_conn_t));
    if ((tl->w = calloc(workers, sizeof *tl->w)) == NULL)
        return GW_ENOMEM;
    for (unsigned w = 0; w < workers; w++)
        if ((tl->w[w] = calloc(1, sizeof *tl->w[w])) == NULL)
            return GW_ENOMEM;
    return 0;
}

/* see htls.h */
hp_tls_t *hp_tls_prepare(const gw_config_t *cfg, unsigned workers, int *err)
{
    *err = 0;
    bool any = false;
    for (size_t i = 0; i < cfg->nlisteners; i++)
        any = any || gw_tls_listener_cfg(&cfg->listeners[i]) != NULL;
    if (!any)
        return NULL;
    hp_tls_t *t = calloc(1, sizeof *t);
    if (t == NULL || (t->lis = calloc(cfg->nlisteners, sizeof *t->lis)) == NULL) {
        free(t);
        *err = GW_ENOMEM;
        return NULL;
    }
    t->nlis = cfg->nlisteners;
    t->workers = workers;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const gw_listener_cfg_t *l = &cfg->listeners[i];
        const gw_tls_listener_cfg_t *tc = gw_tls_listener_cfg(l);
        if (tc == NULL)
            continue;
        int rc = listener_init(&t->lis[i], l, tc, workers);
        if (rc != 0) {
            hp_tls_free(t);
            *err = rc;
            return NULL;
        }
    }
    return t;
}

/* Sums one counter of listener TL over the workers. */
static uint64_t sum(const hp_tls_t *t, const tls_listener_t *tl, size_t off)
{
    uint64_t s = 0;
    for (unsigned w = 0; w < t->workers; w++)
        s += gw_counter_get((const gw_counter_t *)(const void *)((const char *)tl->w[w] + off));
    return s;
}

static void cache_metrics(const hp_tls_t *t, gw_prom_t *p)
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
        for (size_t i = 0; t != NULL && i < t->nlis; i++) {
            if (t->lis[i].cfg == NULL)
                continue;
            gw_tlscache_stats_t st;
            gw_tlscache_stats(&t->lis[i].cache, &st);
            const uint64_t v[] = {st.hits, st.misses, st.stores, st.evictions};
            const char *lab[] = {"listener", t->lis[i].l->name, NULL};
            gw_prom_sample_u64(p, fam[f].name, lab, v[f]);
        }
    }
    gw_prom_family(p, "gw_tls_session_cache_entries",
                   "Sessions the shared cache holds now (0 with client_auth: no cache)",
                   GW_PROM_GAUGE);
    for (size_t i = 0; t != NULL && i < t->nlis; i++) {
        if (t->lis[i].cfg == NULL)
            continue;
        gw_tlscache_stats_t st;
        gw_tlscache_stats(&t->lis[i].cache, &st);
        const char *lab[] = {"listener", t->lis[i].l->name, NULL};
        gw_prom_sample_u64(p, "gw_tls_session_cache_entries", lab, st.entries);
    }
}

/* see htls.h */
void hp_tls_metrics(const hp_tls_t *t, gw_prom_t *p)
{
    gw_prom_family(p, "gw_tls_handshakes_total",
                   "TLS handshakes completed on a listener, resumed from the session cache or full",
                   GW_PROM_COUNTER);
    for (size_t i = 0; t != NULL && i < t->nlis; i++) {
        const tls_listener_t *tl = &t->lis[i];
        for (int r = 0; tl->cfg != NULL && r < 2; r++) {
            const char *lab[] = {"listener", tl->l->name, "resumed", r ? "true" : "false", NULL};
            gw_prom_sample_u64(p, "gw_tls_handshakes_total", lab,
                               sum(t, tl, offsetof(tls_wstats_t, handshakes[r])));
        }
    }
    gw_prom_family(p, "gw_tls_handshake_failures_total",
                   "TLS handshakes that failed, by reason (BearSSL's error, or timeout, eof, "
                   "no_buffers, no_memory)",
                   GW_PROM_COUNTER);
    for (size_t i = 0; t != NULL && i < t->nlis; i++) {
        const tls_listener_t *tl = &t->lis[i];
        for (size_t s = 0; tl->cfg != NULL && s < GW_HTLS_NSLOTS; s++) {
            uint64_t v = sum(t, tl, offsetof(tls_wstats_t, failures[s]));
            /* Only the reasons seen (the table has ~580 slots); timeout and eof always, so
             * a dashboard finds the family's usual members before the first failure. */
            if (v == 0 && s != GW_HTLS_SLOT_TIMEOUT && s != GW_HTLS_SLOT_EOF)
                continue;
            const char *lab[] = {"listener", tl->l->name, "reason", gw_htls_reason_name(s), NULL};
            gw_prom_sample_u64(p, "gw_tls_handshake_failures_total", lab, v);
        }
    }
    cache_metrics(t, p);
}

/* ---- per connection ----------------------------------------------------------------------- */

static tls_conn_t *tls_of(const hconn_t *c)
{
    return c->s != &c->sock.s ? (tls_conn_t *)(void *)c->s : NULL;
}

static tls_wstats_t *wstats(const tls_conn_t *t)
{
    return t->tl->w[t->worker];
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

static void count_handshake(tls_conn_t *t, int status, const char *listener);

static void on_handshake(gw_tls_stream_t *ts, int status)
{
    tls_conn_t *t = (tls_conn_t *)(void *)ts;
    hconn_t *c = t->c;
    count_handshake(t, status, c->l->cfg->name);
    if (status != 0) {
        /* Gracefully: BearSSL's alert, if it has one, was written first (tls_stream.h). */
        hp_client_close(c, false);
        return;
    }
    /* From now on a request head is awaited: the listener's request_head_timeout. */
    if (c->list == &c->hw->handshake[c->l->index])
        hp_list_idle(c, &c->hw->fresh[c->l->index]);
}

/* A TLS connection of listener TL on worker WORKER over INNER, whose reads go to ON_READ
 * with DATA: one allocation charged to POOL, the server context set up, the TLS stream
 * started (the handshake runs from now on). NULL with *ERR (counted as a failure). */
static tls_conn_t *conn_new(tls_listener_t *tl, unsigned worker, gw_bufpool_t *pool,
                            gw_stream_t *inner, gw_stream_env_t *env, gw_stream_read_cb on_read,
                            void *data, int *err)
{
    tls_wstats_t *st = tl->w[worker];
    if (gw_bufpool_reserve(pool, sizeof(tls_conn_t)) != 0) {
        gw_counter_inc(&st->failures[GW_HTLS_SLOT_NO_BUFFERS]);
        *err = UV_ENOBUFS;
        return NULL;
    }
    tls_conn_t *t = malloc(sizeof *t);
    if (t == NULL) {
        gw_bufpool_unreserve(pool, sizeof(tls_conn_t));
        gw_counter_inc(&st->failures[GW_HTLS_SLOT_NO_MEMORY]);
        *err = UV_ENOMEM;
        return NULL;
    }
    t->c = NULL;
    t->tl = tl;
    t->worker = worker;
    t->pool = pool;
    memset(&t->info, 0, sizeof t->info);
    gw_tlscache_conn_init(&t->cc, &tl->cache);
    int64_t now = (int64_t)(gw_clock_wall_ms(&gw_clock_system) / 1000);
    int rc = gw_tls_server_setup(&t->srv, &t->sc, tl->cfg, gw_tlscache_conn_class(&t->cc), now,
                                 t->iobuf, sizeof t->iobuf) == 0
                 ? gw_tls_stream_init(&t->ts, inner, &t->sc.eng, env, on_read, data)
                 : UV_EINVAL;
    if (rc != 0) { /* INNER is still plaintext and the caller's */
        gw_counter_inc(&st->failures[gw_htls_failure_slot(rc, 0)]);
        free(t);
        gw_bufpool_unreserve(pool, sizeof(tls_conn_t));
        *err = rc;
        return NULL;
    }
    return t;
}

/* Frees T (after its stream's close callback) and gives its charge back. */
static void conn_free(tls_conn_t *t)
{
    gw_bufpool_t *pool = t->pool;
    explicit_bzero(&t->sc, sizeof t->sc); /* the session's keys */
    free(t);
    gw_bufpool_unreserve(pool, sizeof(tls_conn_t));
}

/* The handshake's outcome in the listener's counters. */
static void count_handshake(tls_conn_t *t, int status, const char *listener)
{
    if (status != 0) {
        size_t slot = gw_htls_failure_slot(status, gw_tls_stream_last_error(&t->ts));
        gw_counter_inc(&wstats(t)->failures[slot]);
        gw_debug("listener '%s': TLS handshake failed: %s", listener, gw_htls_reason_name(slot));
        return;
    }
    fill_info(t);
    gw_counter_inc(&wstats(t)->handshakes[t->info.resumed ? 1 : 0]);
}

/* see htls.h */
int hp_tls_accept(hconn_t *c)
{
    hp_worker_t *hw = c->hw;
    int rc = 0;
    tls_conn_t *t = conn_new(&hw->hp->tls->lis[c->l->index], hw->w->id, hw->w->bufs.pool,
                             &c->sock.s, &hw->w->streams, hp_on_client_read, c, &rc);
    if (t == NULL)
        return rc; /* c->sock is still plaintext and the caller's */
    t->c = c;
    gw_tls_stream_on_handshake(&t->ts, on_handshake);
    c->s = &t->ts.s;
    c->out.stream = c->s; /* nothing was queued yet */
    return 0;
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
        gw_counter_inc(&wstats(t)->failures[GW_HTLS_SLOT_TIMEOUT]);
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
    count_handshake(t, status, t->tl->l->name);
    gw_tcp_wrapper_ready(&ts->s, status);
}

static int tcp_wrap(void *ctx, gw_worker_t *w, const gw_listener_t *l, gw_stream_t *client,
                    gw_stream_read_cb on_read, gw_stream_t **out, uint64_t *wait_ms)
{
    hp_tls_t *t = ctx;
    tls_listener_t *tl = &t->lis[l->index];
    *out = NULL;
    if (tl->cfg == NULL) /* a plaintext tcp listener beside TLS ones */
        return 0;
    int rc = 0;
    tls_conn_t *tc =
        conn_new(tl, w->id, w->bufs.pool, client, &w->streams, on_read, client->data, &rc);
    if (tc == NULL)
        return rc;
    gw_tls_stream_on_handshake(&tc->ts, tcp_on_handshake);
    *out = &tc->ts.s;
    *wait_ms = tl->cfg->handshake_timeout_ms;
    return 0;
}

static void tcp_unwrap(void *ctx, gw_worker_t *w, gw_stream_t *s, bool timed_out)
{
    (void)ctx;
    (void)w;
    tls_conn_t *t = (tls_conn_t *)(void *)s;
    if (timed_out && !gw_tls_stream_ready(&t->ts))
        gw_counter_inc(&wstats(t)->failures[GW_HTLS_SLOT_TIMEOUT]);
    conn_free(t);
}

/* see htls.h */
void hp_tls_tcp_picker(hp_tls_t *t, const gw_config_t *cfg, void **layers)
{
    bool any = false;
    for (size_t i = 0; t != NULL && i < t->nlis; i++)
        any = any || (t->lis[i].cfg != NULL && cfg->listeners[i].protocol == GW_PROTO_TCP);
    if (!any || layers[1] == NULL)
        return;
    /* The picker below as it is (02's, or passthrough's over it), plus the wrapper. */
    t->picker = *(const gw_tcp_picker_t *)layers[1];
    t->picker.wrap = tcp_wrap;
    t->picker.unwrap = tcp_unwrap;
    t->picker.wrap_ctx = t;
    layers[1] = &t->picker;
}
