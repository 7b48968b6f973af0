/* hproxyproto.c - see hproxyproto.h. The accept side of the PROXY protocol on the HTTP
 * engine: the `from` check, the header's read (its own read callback on the socket, before
 * any TLS stream or request parser exists), the carried address, and the counters. */
#include "04-http/hproxyproto.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "04-http/hproxy-int.h"
#include "04-http/kcount.h"
#include "04-http/passthrough.h"
#include "04-http/ppconf.h"
#include "error.h"
#include "log.h"
#include "proxyproto.h"

/* Results, gw_proxy_protocol_total's `result`: ours, then the parser's errors by code. */
enum {
    R_ACCEPTED,
    R_LOCAL,
    R_REFUSED_FROM,
    R_TIMEOUT,
    R_CLOSED,
    R_NO_BUFFERS,
    R_ERRORS, /* R_ERRORS + (-rc - 1) for gw_pp_error_t rc */
    NRESULTS = R_ERRORS + GW_PP_ERROR_COUNT,
};

static const char *result_name(size_t r)
{
    static const char *const names[R_ERRORS] = {"accepted", "accepted_local", "refused_from",
                                                "timeout",  "closed",         "no_buffers"};
    return r < R_ERRORS ? names[r] : gw_pp_strerror(-(int)(r - R_ERRORS) - 1);
}

struct hp_pp_s {
    gw_kcount_t *counts;    /* kept by listener name (kcount.h): NRESULTS counters per worker */
    gw_tcp_picker_t picker; /* tcp listeners: the picker below plus header and hello */
};

/* see hproxyproto.h */
int hp_pp_feed(hp_pp_wait_t *w, const uint8_t *data, size_t n, unsigned accept, gw_pp_result_t *r,
               size_t *rest)
{
    size_t before = w->used, take = GW_PP_MAX - before;
    if (take > n)
        take = n;
    memcpy(w->buf + before, data, take);
    w->used += take;
    if (take < w->need) { /* gw_pp_parse never promises DONE sooner than it comes */
        w->need -= take;
        memset(r, 0, sizeof *r);
        r->need = w->need;
        return 0;
    }
    int rc = gw_pp_parse(w->buf, w->used, accept, r);
    if (rc > 0) { /* the bytes before gave NEED_MORE, so the header ends in DATA: rc > before */
        *rest = (size_t)rc - before;
        return rc;
    }
    if (rc == 0 && w->used == GW_PP_MAX) { /* cannot be (the parser bounds itself): defensive */
        r->err_pos = GW_PP_MAX - 1;
        return GW_PP_EV1TOOLONG;
    }
    if (rc == 0)
        w->need = r->need;
    return rc;
}

/* ---- per config ------------------------------------------------------------------------- */

/* see hproxyproto.h */
hp_pp_t *hp_pp_prepare(const gw_config_t *cfg, unsigned workers, int *err)
{
    (void)cfg; /* made whatever it says: a reload may add proxy_protocol */
    *err = 0;
    hp_pp_t *pp = calloc(1, sizeof *pp);
    if (pp == NULL ||
        (pp->counts = gw_kcount_new(workers, NRESULTS * sizeof(gw_counter_t))) == NULL) {
        free(pp);
        *err = GW_ENOMEM;
        return NULL;
    }
    return pp;
}

/* see hproxyproto.h */
int hp_pp_gen_names(hp_pp_t *pp, const gw_config_t *cfg)
{
    for (size_t i = 0; pp != NULL && i < cfg->nlisteners; i++)
        if (gw_pp_listener_cfg(&cfg->listeners[i]) != NULL &&
            gw_kcount_keep(pp->counts, cfg->listeners[i].name, NULL) == NULL)
            return GW_ENOMEM;
    return 0;
}

/* see hproxyproto.h */
void hp_pp_free(hp_pp_t *pp)
{
    if (pp == NULL)
        return;
    gw_kcount_free(pp->counts);
    free(pp);
}

/* see hproxyproto.h */
void hp_pp_metrics(const hp_pp_t *pp, const gw_gen_t *g, gw_prom_t *p)
{
    gw_prom_family(p, "gw_proxy_protocol_total",
                   "Connections to listeners with proxy_protocol, by how their PROXY header "
                   "ended (accepted, refused_from, timeout, closed, or the parser's error)",
                   GW_PROM_COUNTER);
    for (size_t i = 0; pp != NULL && g != NULL && i < g->nlis; i++) {
        const gw_listener_cfg_t *l = g->lis[i].cfg;
        const gw_kcount_entry_t *e =
            gw_pp_listener_cfg(l) != NULL ? gw_kcount_find(pp->counts, l->name, NULL) : NULL;
        for (size_t r = 0; e != NULL && r < NRESULTS; r++) {
            uint64_t v = gw_kcount_sum(e, r);
            if (v == 0 && r >= R_ERRORS)
                continue; /* the parser's 15 errors only once seen */
            const char *lab[] = {"listener", l->name, "result", result_name(r), NULL};
            gw_prom_sample_u64(p, "gw_proxy_protocol_total", lab, v);
        }
    }
}

/* ---- per connection ----------------------------------------------------------------------- */

/* Counts R for listener L on worker W, under L's name now (the newest generation's): the
 * entry exists once a generation gave that name proxy_protocol; a connection still waiting
 * for its header after a reload took proxy_protocol away and renamed L counts nowhere. */
static void count_at(hp_pp_t *pp, const gw_worker_t *w, const gw_listener_t *l, size_t r)
{
    gw_kcount_entry_t *e = gw_kcount_find(pp->counts, gw_listener_name(l), NULL);
    if (e != NULL)
        gw_counter_inc(gw_kcount_counter(e, w->id, r));
}

static void count(hconn_t *c, size_t r)
{
    count_at(c->hw->hp->pp, c->hw->w, c->l, r);
}

static const gw_pp_listener_cfg_t *lcfg(const hconn_t *c)
{
    return hp_lcfg(c)->pp;
}

/* see hproxyproto.h */
void hp_pp_conn_free(hconn_t *c)
{
    if (c->ppw == NULL)
        return;
    free(c->ppw);
    c->ppw = NULL;
    gw_bufpool_unreserve(c->hw->w->bufs.pool, sizeof(hp_pp_wait_t));
}

/* see hproxyproto.h */
void hp_pp_timeout(hconn_t *c)
{
    count(c, R_TIMEOUT);
    gw_debug("listener '%s': no PROXY header in time", gw_listener_name(c->l));
}

/* The header is read: R says whose connection it is. */
/* The header R was read: the address it carries into OUT (room for a sockaddr_in6), and
 * which result it counts as. LOCAL, UNKNOWN, UDP, AF_UNIX: OUT keeps the socket's own
 * address (the spec's rule). For http and tcp listeners alike. */
static size_t carried_address(const gw_pp_result_t *r, void *out)
{
    if (r->family == GW_PP_TCP4)
        memcpy(out, &r->src, sizeof(struct sockaddr_in));
    else if (r->family == GW_PP_TCP6)
        memcpy(out, &r->src, sizeof(struct sockaddr_in6));
    return r->family != GW_PP_UNSPEC ? R_ACCEPTED : R_LOCAL;
}

static void take_address(hconn_t *c, const gw_pp_result_t *r)
{
    count(c, carried_address(r, &c->peer));
}

/* The header ended at byte HLEN of what was read, of which the last read CH (N bytes)
 * brought the bytes from FROM on: the rest of CH is the client's first bytes. Goes on as
 * after an accept without PROXY, then hands those bytes over as if just read. */
static void header_done(hconn_t *c, const gw_pp_result_t *r, gw_chunk_t *ch, size_t skip, size_t n)
{
    hp_pp_conn_free(c);
    take_address(c, r);
    c->sock.s.cb.on_read = hp_on_client_read;
    if (!hp_client_start(c)) {
        gw_chunk_unref(&c->hw->w->bufs, ch);
        return;
    }
    if (c->s != &c->sock.s) { /* a TLS stream now carries the client: the owner reads it */
        c->reading = false;
        hp_client_set_reading(c, true);
    }
    if (skip == n || c->closing) {
        gw_chunk_unref(&c->hw->w->bufs, ch);
        return;
    }
    /* The stream's promise (stream.h): a read starts at offset 0. */
    memmove(ch->data, ch->data + skip, n - skip);
    ch->len = (uint32_t)(n - skip);
    ch->off = 0;
    /* Whoever reads the socket now (the request parser, or the TLS stream over it). */
    c->sock.s.cb.on_read(&c->sock.s, ch, (ssize_t)(n - skip));
}

static void refuse(hconn_t *c, int rc, size_t at)
{
    count(c, R_ERRORS + (size_t)(-rc - 1));
    gw_debug("listener '%s': bad PROXY header: %s at byte %zu", gw_listener_name(c->l),
             gw_pp_strerror(rc), at);
    hp_client_close(c, true);
}

/* The socket's read callback until the header is read. */
static void on_header_read(gw_stream_t *s, gw_chunk_t *ch, ssize_t n)
{
    hconn_t *c = s->data;
    if (n < 0) {
        count(c, R_CLOSED);
        hp_client_close(c, n != UV_EOF);
        return;
    }
    const gw_pp_listener_cfg_t *pc = lcfg(c); /* this turn's: the newest generation's */
    if (pc == NULL) { /* a reload took proxy_protocol away while the header came */
        gw_chunk_unref(&c->hw->w->bufs, ch);
        count(c, R_CLOSED);
        hp_client_close(c, true);
        return;
    }
    unsigned accept = pc->accept;
    gw_pp_result_t r;
    hp_pp_wait_t *pw = c->ppw;
    if (pw == NULL) { /* the first read: parse in place */
        int rc = gw_pp_parse((const uint8_t *)ch->data, (size_t)n, accept, &r);
        if (rc > 0) {
            header_done(c, &r, ch, (size_t)rc, (size_t)n);
            return;
        }
        if (rc < 0) {
            gw_chunk_unref(&c->hw->w->bufs, ch);
            refuse(c, rc, r.err_pos);
            return;
        }
        /* In pieces: keep what came (less than GW_PP_MAX, or the parser would have said). */
        bool charged = gw_bufpool_reserve(c->hw->w->bufs.pool, sizeof *pw) == 0;
        if (!charged || (pw = malloc(sizeof *pw)) == NULL) {
            if (charged)
                gw_bufpool_unreserve(c->hw->w->bufs.pool, sizeof *pw);
            gw_chunk_unref(&c->hw->w->bufs, ch);
            count(c, R_NO_BUFFERS);
            hp_client_close(c, true);
            return;
        }
        c->ppw = pw;
        pw->used = pw->need = 0; /* then fed below, as any later read */
    }
    size_t rest = 0;
    int rc = hp_pp_feed(pw, (const uint8_t *)ch->data, (size_t)n, accept, &r, &rest);
    if (rc > 0) {
        header_done(c, &r, ch, rest, (size_t)n);
        return;
    }
    gw_chunk_unref(&c->hw->w->bufs, ch);
    if (rc < 0)
        refuse(c, rc, r.err_pos);
}

/* see hproxyproto.h */
bool hp_pp_accept(hconn_t *c)
{
    if (!gw_pp_from_allowed(lcfg(c), &c->peer.sa)) {
        count(c, R_REFUSED_FROM);
        gw_debug("listener '%s': a PROXY header is not accepted from this peer",
                 gw_listener_name(c->l));
        return false;
    }
    c->sock.s.cb.on_read = on_header_read;
    c->state = C_IDLE;
    return hp_list_idle_kind(c, IDLE_PROXY_HEADER); /* false: the caller resets C */
}

/* ---- the upstream side ---------------------------------------------------------------------- */

typedef struct pp_out_s {
    gw_stream_write_t req;
    uint8_t buf[GW_PP_V1_MAX]; /* v1's longest; v2 with two IPv6 addresses is 52 bytes */
} pp_out_t;

static void on_header_written(gw_stream_write_t *req, int status)
{
    (void)status; /* a failed write fails the request's writes after it too */
    free(CONTAINER(req, pp_out_t, req));
}

/* see hproxyproto.h */
int hp_pp_send(uconn_t *u, const hconn_t *c, unsigned version)
{
    struct sockaddr_storage local;
    int len = sizeof local;
    const struct sockaddr *dst = (const struct sockaddr *)&local;
    if (uv_tcp_getsockname(&c->sock.tcp, (struct sockaddr *)&local, &len) != 0)
        dst = NULL; /* then UNKNOWN / UNSPEC: the spec's answer for what we cannot tell */
    const struct sockaddr *src = c->peer.sa.sa_family != AF_UNSPEC ? &c->peer.sa : NULL;
    pp_out_t *o = malloc(sizeof *o);
    if (o == NULL)
        return UV_ENOMEM;
    size_t n = version == 1 ? gw_pp_write_v1(o->buf, sizeof o->buf, src, dst)
                            : gw_pp_write_v2(o->buf, sizeof o->buf, GW_PP_PROXY, src, dst, NULL, 0);
    uv_buf_t b = uv_buf_init((char *)o->buf, (unsigned)n);
    /* On the socket itself, queued first: the request (or the TLS ClientHello) after it. */
    int rc = n > 0 ? gw_stream_write(&o->req, &u->sock.s, &b, 1, on_header_written) : UV_EINVAL;
    if (rc != 0)
        free(o);
    return rc;
}

/* ---- tcp listeners and upstreams: 01's header and hello hooks ------------------------------ */

static uint64_t tcp_header_ms(void *ctx, const gw_listener_t *l)
{
    (void)ctx;
    const gw_pp_listener_cfg_t *x = gw_pp_listener_cfg(l->cfg);
    return x != NULL ? x->timeout_ms : 0;
}

/* 01's header hook (tcp_proxy.h): the same checks, in the same order, as on an http
 * listener. The parser is given every byte so far at each read (at most GW_PP_MAX matter:
 * it refuses a longer header from its length field or its 107th byte). */
static int tcp_header(void *ctx, gw_worker_t *w, const gw_listener_t *l, const char *data,
                      size_t len, gw_tcp_preread_event_t ev, struct sockaddr_storage *client)
{
    hp_pp_t *pp = ctx;
    const gw_pp_listener_cfg_t *x = gw_pp_listener_cfg(l->cfg); /* this turn's */
    if (x == NULL) { /* a reload took proxy_protocol away while the header came */
        count_at(pp, w, l, R_CLOSED);
        return -1;
    }
    if (len == 0 && ev == GW_TCP_PREREAD_DATA) { /* accepted: nothing read yet */
        if (gw_pp_from_allowed(x, (const struct sockaddr *)client))
            return 0;
        count_at(pp, w, l, R_REFUSED_FROM);
        gw_debug("listener '%s': a PROXY header is not accepted from this peer",
                 gw_listener_name(l));
        return -1;
    }
    gw_pp_result_t r;
    int rc = gw_pp_parse((const uint8_t *)data, len, x->accept, &r);
    if (rc == 0 && ev == GW_TCP_PREREAD_DATA)
        return 0;
    if (rc == 0 || (rc > 0 && ev != GW_TCP_PREREAD_DATA)) { /* it ended before the header */
        count_at(pp, w, l,
                 ev == GW_TCP_PREREAD_TIMEOUT ? R_TIMEOUT
                 : ev == GW_TCP_PREREAD_FULL  ? R_NO_BUFFERS /* longer than 01's one chunk */
                                              : R_CLOSED);
        return -1;
    }
    if (rc < 0) {
        count_at(pp, w, l, R_ERRORS + (size_t)(-rc - 1));
        gw_debug("listener '%s': bad PROXY header: %s at byte %zu", gw_listener_name(l),
                 gw_pp_strerror(rc), r.err_pos);
        return -1;
    }
    count_at(pp, w, l, carried_address(&r, client));
    return rc;
}

/* 01's hello hook: the PROXY header for an upstream with proxy_protocol. */
static size_t tcp_hello(void *ctx, gw_worker_t *w, const gw_listener_t *l, const gw_tcp_pick_t *tok,
                        const struct sockaddr *client, const uv_tcp_t *sock, char *buf, size_t cap)
{
    (void)ctx;
    (void)w;
    (void)l;
    /* The upstream of the pick just made, in the generation that pick is in (01 asks right
     * after the pick): the passthrough's route or the listener's upstream alike. */
    const gw_lb_member_t *m = gw_lb_tok_member(tok);
    unsigned v = m != NULL && m->up != NULL ? gw_http_upstream_cfg(m->up->cfg)->proxy_protocol : 0;
    if (v == 0) /* before any system call: most upstreams of most listeners send nothing */
        return 0;
    struct sockaddr_storage peer, local;
    int plen = sizeof peer, llen = sizeof local;
    const struct sockaddr *src = client, *dst = (const struct sockaddr *)&local;
    if (client->sa_family == AF_UNSPEC) /* 01 did not ask the kernel (no header, no hook) */
        src = uv_tcp_getpeername(sock, (struct sockaddr *)&peer, &plen) == 0
                  ? (const struct sockaddr *)&peer
                  : NULL;
    if (uv_tcp_getsockname(sock, (struct sockaddr *)&local, &llen) != 0)
        dst = NULL; /* then UNKNOWN / UNSPEC, as for what we cannot tell */
    return v == 1 ? gw_pp_write_v1((uint8_t *)buf, cap, src, dst)
                  : gw_pp_write_v2((uint8_t *)buf, cap, GW_PP_PROXY, src, dst, NULL, 0);
}

/* see hproxyproto.h */
void hp_pp_tcp_picker(hp_pp_t *pp, void **layers)
{
    if (pp == NULL || layers[1] == NULL)
        return;
    /* The picker below as it is (02's, passthrough's, TLS's), plus the two hooks: installed
     * whatever the startup config says, so a reload may add proxy_protocol to a tcp listener
     * or an upstream. Cheap for the others: header_ms answers 0 (no header read), and hello
     * reads one field before any system call. */
    pp->picker = *(const gw_tcp_picker_t *)layers[1];
    pp->picker.header_ms = tcp_header_ms;
    pp->picker.header = tcp_header;
    pp->picker.hello = tcp_hello;
    pp->picker.prefix_ctx = pp;
    layers[1] = &pp->picker;
}
