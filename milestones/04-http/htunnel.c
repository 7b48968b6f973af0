/* htunnel.c - Upgrade tunnels: when a 101 turns the HTTP proxy back into an L4 one.
 *
 * Owns: the request's Upgrade decision as the engine applies it (upgrade.h decides: the
 * head keeps Upgrade and gets `Connection: upgrade` for a TUNNEL, loses Upgrade otherwise),
 * the 101 (accepted or a 502), and the tunnel itself: from the byte after the 101 head,
 * the client's stream and the upstream connection's stream are two sides of a pair driven
 * by 01's state machine (tcp_sm.h: half-close, backpressure with high/low water, idle
 * timeout), with a small shell here (01's tcp_proxy.c owns a connect, a picker and a socket
 * pair; a tunnel has none of those: it starts connected, over whatever streams it is given,
 * TLS included).
 *
 * How a tunnel lives inside the engine. The exchange stays: the client connection keeps its
 * hx_t (x->tunnel set, rs = RS_HEAD_SENT), so drain, force close and the access log find it
 * where they find any exchange (hw->busy, hp_exchange_settle); its one timer serves the
 * tunnel's idle timeout (T_TUNNEL). The two streams' reads come here (the owner's read
 * callback and data are switched to the tunnel); the tunnel's own writes carry a pointer to
 * it, so a write cancelled by a close still finds it. It ends in hp_tunnel_settle, called by
 * hp_exchange_settle: the streams get their owners back, the upstream connection closes
 * (never pooled), the bytes go to the exchange for the access log.
 *
 * Does not own: the engine's writer (wbatch.h: the 101 head goes out through it, flushed
 * before the tunnel's first byte so that nothing overtakes it), the client connection's
 * close (hclient.c), the upstream connection's close (hupstream.c). */
#include "04-http/hproxy-int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "01-tcp/tcp_sm.h"
#include "04-http/upgrade.h"
#include "error.h"

struct hp_tunnel_s {
    hconn_t *c;
    uconn_t *u;
    gw_sm_t sm;
    struct tshut {
        gw_stream_shutdown_t req;
        hp_tunnel_t *t;
    } shut[2];
    unsigned pending;   /* writes and shutdowns not yet completed: the tunnel lives until 0 */
    bool closing;       /* settled: only completions are waited for */
    bool self_close;    /* the machine ended it: reset_backend says how the upstream closes */
    bool reset_backend; /* the machine's RESET bit for the upstream side */
    uint64_t bytes[2];  /* read from each side (GW_CLIENT, GW_BACKEND) */
    int failed;         /* the side whose read or write failed first, -1: none */
};

/* One queued write: the chunk it pins and the tunnel it belongs to. */
typedef struct twrite_s {
    gw_stream_write_t req;
    hp_tunnel_t *t;
    gw_chunk_t *ch;
    size_t n;
    gw_side_t dst;
} twrite_t;

static void apply(hp_tunnel_t *t, unsigned act);

/* Feeds the machine; remembers which side failed first, for the access log's `end`. */
static unsigned sm_event(hp_tunnel_t *t, gw_sm_event_t ev, gw_side_t side, size_t n)
{
    if (ev == GW_EV_ERROR && t->failed < 0)
        t->failed = (int)side;
    return gw_sm_on(&t->sm, ev, side, n);
}

static gw_stream_t *stream_of(hp_tunnel_t *t, gw_side_t side)
{
    return side == GW_CLIENT ? t->c->s : t->u->s;
}

static gw_bufcache_t *cache_of(hp_tunnel_t *t)
{
    return &t->c->hw->w->bufs;
}

static void maybe_free(hp_tunnel_t *t)
{
    if (t->closing && t->pending == 0)
        free(t);
}

/* ---- the request: keep or strip Upgrade ------------------------------------------------ */

/* see hproxy-int.h */
bool hp_tunnel_request(hconn_t *c, bool asked)
{
    hx_t *x = c->x;
    gw_h1_head_t *h = &x->rp.head;
    gw_upgrade_req_t req = {.asked = asked,
                            .get = strcmp(x->method, "GET") == 0,
                            .has_body = x->req_body != GW_H1_BODY_NONE};
    const char *why = NULL;
    size_t lines = 0;
    for (size_t i = 0; asked && i < h->nfields; i++) {
        gw_h1_span_t name = gw_h1_head_name_at(h, i);
        if (name.len == 7 && strncasecmp(name.ptr, "upgrade", 7) == 0)
            lines++;
    }
    req.several = lines > 1;
    gw_h1_head_get(h, "upgrade", &req.offer);
    gw_upgrade_t d = gw_upgrade_decide(&req, &x->route->upgrade, &why);
    x->upgrade = (uint8_t)d;
    if (d != GW_UPGRADE_TUNNEL) {
        if (why != NULL)
            gw_debug("upgrade stripped: %s", why);
        gw_h1_head_remove(h, "upgrade"); /* kept by the strip (GW_H1_KEEP_UPGRADE) until now */
        return true;
    }
    if (gw_h1_head_add(h, "Connection", 10, "upgrade", 7) != 0) {
        hp_answer(c, 431, "request head too large", true);
        return false;
    }
    return true;
}

/* ---- the shell over tcp_sm ------------------------------------------------------------- */

/* LAB 04: tunnel */
static void on_write(gw_stream_write_t *req, int status)
{
    twrite_t *w = (twrite_t *)req;
    hp_tunnel_t *t = w->t;
    gw_chunk_unref(cache_of(t), w->ch);
    size_t n = w->n;
    gw_side_t dst = w->dst;
    free(w);
    t->pending--;
    if (t->closing) {
        maybe_free(t);
        return;
    }
    if (status < 0) {
        apply(t, sm_event(t, GW_EV_ERROR, dst, 0));
        return;
    }
    t->c->x->last_active = uv_now(hp_loop(t->c->hw));
    apply(t, sm_event(t, GW_EV_WRITTEN, dst, n));
}

/* Sends N bytes at DATA (inside chunk CH, whose reference the tunnel now holds) read from
 * SRC to the other side: what the stream takes at once, then a queued write for the rest. */
static unsigned forward(hp_tunnel_t *t, gw_side_t src, gw_chunk_t *ch, const char *data, size_t n)
{
    gw_side_t dst = GW_OTHER(src);
    unsigned act = sm_event(t, GW_EV_READ, src, n);
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)n);
    int r = gw_stream_try_write(stream_of(t, dst), &b, 1);
    if (r < 0 && r != UV_EAGAIN) {
        gw_chunk_unref(cache_of(t), ch);
        return act | sm_event(t, GW_EV_ERROR, dst, 0);
    }
    size_t done = r > 0 ? (size_t)r : 0;
    if (done > 0)
        act |= sm_event(t, GW_EV_WRITTEN, dst, done);
    if (done == n) {
        gw_chunk_unref(cache_of(t), ch);
        return act;
    }
    twrite_t *w = malloc(sizeof *w);
    if (w == NULL) {
        gw_chunk_unref(cache_of(t), ch);
        return act | sm_event(t, GW_EV_ERROR, dst, 0);
    }
    *w = (twrite_t){.t = t, .ch = ch, .n = n - done, .dst = dst};
    uv_buf_t rest = uv_buf_init((char *)data + done, (unsigned)(n - done));
    if (gw_stream_write(&w->req, stream_of(t, dst), &rest, 1, on_write) != 0) {
        free(w);
        gw_chunk_unref(cache_of(t), ch);
        return act | sm_event(t, GW_EV_ERROR, dst, 0);
    }
    t->pending++;
    return act;
}

/* The bytes that came with the heads go first, in order: the upstream's after its 101 (in
 * CH from OFF: the same read), the client's after its request (held in x->rbuf). */
static unsigned first_bytes(hp_tunnel_t *t, gw_chunk_t *ch, size_t off)
{
    hx_t *x = t->c->x;
    unsigned act = 0;
    if (off < ch->len) {
        gw_chunk_ref(ch); /* the read's reference stays the caller's */
        t->bytes[GW_BACKEND] += ch->len - off;
        act |= forward(t, GW_BACKEND, ch, ch->data + off, ch->len - off);
    }
    gw_chunk_t *rb = x->rbuf;
    if (rb != NULL && rb->off < rb->len) {
        x->rbuf = NULL; /* its reference moves to the write */
        t->bytes[GW_CLIENT] += rb->len - rb->off;
        act |= forward(t, GW_CLIENT, rb, rb->data + rb->off, rb->len - rb->off);
    }
    return act;
}
/* END LAB */

static void on_read(hp_tunnel_t *t, gw_side_t side, gw_chunk_t *ch, ssize_t nread)
{
    if (nread > 0) {
        t->bytes[side] += (uint64_t)nread;
        t->c->x->last_active = uv_now(hp_loop(t->c->hw));
        apply(t, forward(t, side, ch, ch->data, (size_t)nread));
        return;
    }
    if (nread != UV_EOF)
        gw_debug("tunnel: read from %s failed: %s", side == GW_CLIENT ? "client" : "upstream",
                 uv_strerror((int)nread));
    apply(t, sm_event(t, nread == UV_EOF ? GW_EV_EOF : GW_EV_ERROR, side, 0));
}

static void on_client_read(gw_stream_t *s, gw_chunk_t *ch, ssize_t nread)
{
    on_read(s->data, GW_CLIENT, ch, nread);
}

static void on_upstream_read(gw_stream_t *s, gw_chunk_t *ch, ssize_t nread)
{
    on_read(s->data, GW_BACKEND, ch, nread);
}

static void on_shutdown(gw_stream_shutdown_t *req, int status)
{
    struct tshut *sh = (struct tshut *)req;
    hp_tunnel_t *t = sh->t;
    gw_side_t side = sh == &t->shut[GW_CLIENT] ? GW_CLIENT : GW_BACKEND;
    t->pending--;
    if (t->closing) {
        maybe_free(t);
        return;
    }
    apply(t, sm_event(t, status < 0 ? GW_EV_ERROR : GW_EV_SHUTDOWN_DONE, side, 0));
}

/* The machine said CLOSE: the client connection closes, which settles the exchange and
 * with it the tunnel (hp_tunnel_settle closes the upstream side). */
static void tunnel_close(hp_tunnel_t *t, unsigned act)
{
    hconn_t *c = t->c;
    hx_t *x = c->x;
    t->self_close = true;
    t->reset_backend = (act & GW_ACT_RESET(GW_BACKEND)) != 0;
    bool both_done = t->sm.flow[GW_CLIENT].done && t->sm.flow[GW_BACKEND].done;
    if (both_done)
        x->rs = RS_DONE; /* a clean end: no `end` in the access log */
    else if (x->chain.end == NULL && t->failed >= 0)
        x->chain.end = t->failed == GW_CLIENT ? "client_gone" : "upstream_reset";
    if (t->failed == GW_BACKEND) /* passive health, as 01 reports a pair's backend error */
        x->retry.backend_failed = true;
    hp_client_close(c, (act & GW_ACT_RESET(GW_CLIENT)) != 0);
}

static void apply(hp_tunnel_t *t, unsigned act)
{
    if (act == 0 || t->closing)
        return;
    if (act & GW_ACT_CLOSE) {
        tunnel_close(t, act);
        return;
    }
    for (int s = GW_CLIENT; s <= GW_BACKEND; s++) {
        if (!(act & (GW_ACT_READ_START(s) | GW_ACT_READ_STOP(s))))
            continue;
        gw_stream_t *st = stream_of(t, (gw_side_t)s);
        int rc = t->sm.flow[s].reading ? gw_stream_read_start(st) : gw_stream_read_stop(st);
        if (rc != 0) {
            apply(t, sm_event(t, GW_EV_ERROR, (gw_side_t)s, 0));
            return;
        }
    }
    for (int s = GW_CLIENT; s <= GW_BACKEND; s++) {
        if (!(act & GW_ACT_SHUTDOWN(s)))
            continue;
        t->shut[s].t = t;
        if (gw_stream_shutdown(&t->shut[s].req, stream_of(t, (gw_side_t)s), on_shutdown) != 0) {
            apply(t, sm_event(t, GW_EV_ERROR, (gw_side_t)s, 0));
            return;
        }
        t->pending++;
    }
}

/* ---- the 101 ----------------------------------------------------------------------------- */

/* see hproxy-int.h */
void hp_tunnel_start(hconn_t *c, gw_chunk_t *ch, size_t off)
{
    hp_worker_t *hw = c->hw;
    hx_t *x = c->x;
    uconn_t *u = x->u;
    gw_h1_head_t *h = &x->sp.head;
    const gw_lb_member_t *m = gw_lb_tok_member(&x->pick);
    if (m != NULL)
        gw_hmetrics_upstream_response(&hp_bslot(m->b, hw->w->id)->res, 101);
    gw_h1_span_t offer = {NULL, 0}, answer = {NULL, 0};
    gw_h1_head_get(&x->rp.head, "upgrade", &offer);
    bool has_answer = gw_h1_head_get(h, "upgrade", &answer);
    const char *why = NULL;
    if (!gw_upgrade_accept_101((gw_upgrade_t)x->upgrade, offer, &x->route->upgrade, has_answer,
                               answer, &why)) {
        hp_attempt_failed(c, GW_HRETRY_BROKEN, UV_EPROTO, why);
        return;
    }
    hp_tunnel_t *t = calloc(1, sizeof *t);
    if (t == NULL) {
        hp_attempt_failed(c, GW_HRETRY_BROKEN, UV_ENOMEM, "out of memory");
        return;
    }
    /* The 101 head: hop-by-hop fields go but Upgrade, which the client needs. */
    gw_h1_strip_hop_by_hop(h, GW_H1_KEEP_UPGRADE, NULL);
    gw_chain_response(hp_chain(c), &x->chain, &x->rp.head, h);
    gw_h1_head_set(h, "Connection", "upgrade", 7);
    h->version_minor = 1;
    x->chain.status = 101;
    x->rs = RS_HEAD_SENT;
    x->bytes_out += hp_out_head(hw, &c->out, h, NULL, 0);
    gw_wb_flush(&hw->wb); /* the head leaves before any tunnel byte: the stream keeps order */
    /* The pick (its backend and active count, not its generation: hp_exchange_switch) is
     * kept until the tunnel ends (hp_exchange_settle releases it): a balancer counting open
     * requests (least_conn) sees the tunnel as load on its backend. */
    t->c = c;
    t->u = u;
    t->failed = -1;
    x->tunnel = t;
    gw_counter_inc(&hw->stats->tunnels);
    gw_gauge_add(&hw->stats->tunnels_active, 1);
    hp_exchange_switch(c); /* from here on, no configuration generation is held */
    /* From here on, both streams' reads are the tunnel's. */
    c->s->data = t;
    c->s->cb.on_read = on_client_read;
    u->s->data = t;
    u->s->cb.on_read = on_upstream_read;
    c->reading = u->reading = false; /* the engine's view: it no longer drives them */
    x->last_active = uv_now(hp_loop(hw));
    hp_hx_timer_start(x, T_TUNNEL, hp_lcfg(c)->tunnel_idle_ms);
    gw_sm_init(&t->sm, hp_high_water(hw), hp_low_water(hw));
    unsigned act = sm_event(t, GW_EV_CONNECTED, GW_CLIENT, 0);
    act |= first_bytes(t, ch, off);
    apply(t, act);
}

/* see hproxy-int.h */
void hp_tunnel_timer(hconn_t *c)
{
    hx_t *x = c->x;
    hp_tunnel_t *t = x->tunnel;
    uint64_t now = uv_now(hp_loop(c->hw)), limit = hp_lcfg(c)->tunnel_idle_ms;
    uint64_t quiet = now - x->last_active;
    if (t == NULL)
        return;
    if (quiet < limit) {
        hp_hx_timer_start(x, T_TUNNEL, limit - quiet);
        return;
    }
    x->chain.end = "idle_timeout";
    apply(t, sm_event(t, GW_EV_IDLE_TIMEOUT, GW_CLIENT, 0));
}

/* see hproxy-int.h */
void hp_tunnel_settle(hconn_t *c, bool aborted)
{
    hx_t *x = c->x;
    hp_tunnel_t *t = x->tunnel;
    hp_worker_t *hw = c->hw;
    x->tunnel = NULL;
    t->closing = true;
    gw_gauge_add(&hw->stats->tunnels_active, -1);
    x->bytes_in += t->bytes[GW_CLIENT];
    x->bytes_out += t->bytes[GW_BACKEND];
    /* The streams' owners again, for their close callbacks. */
    c->s->data = c;
    c->s->cb.on_read = hp_on_client_read;
    uconn_t *u = t->u;
    u->s->data = u;
    hp_uconn_detach(u);
    hp_uconn_close(u, t->self_close ? t->reset_backend : aborted);
    maybe_free(t);
}
