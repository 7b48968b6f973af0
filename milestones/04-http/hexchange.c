/* hexchange.c - one exchange of the HTTP engine: a request and its response (hproxy.c has
 * the tour, step by step).
 *
 * Owns: hx_t, taken when a request's first byte arrives and given back to a per-worker free
 * list when the exchange is done; its one timer and the kind of deadline it serves (head,
 * body, response, streaming, linger, retry backoff); the request head's decisions
 * (normalise, route, body limit, middleware, framing out); the request body and the
 * response as the parsers deliver them (re-framed for the other side, with backpressure);
 * and exchange_done, which logs the exchange and readies the connection for the next one.
 *
 * Does not own: the sockets. Client reads and closes are hclient.c's, upstream connections,
 * the pick and retries hupstream.c's, local answers hanswer.c's, the bytes' framing on the
 * wire hwrite.c's. */
#include "04-http/hproxy-int.h"

#include <stdlib.h>
#include <string.h>

#include "04-http/pathnorm.h"
#include "clock.h"

#define HX_FREE_MAX 64 /* exchange states kept for reuse per worker (see HX_KEEP_BYTES) */

/* ---- exchange state ---------------------------------------------------------------------------
 */

static void on_hx_timer(uv_timer_t *t);

static void parser_limits(const gw_http_listener_cfg_t *lc, gw_h1_limits_t *lim)
{
    gw_h1_limits_default(lim);
    lim->max_head = lc->max_head;
    lim->max_uri = lc->max_uri;
    lim->max_fields = lc->max_headers;
    lim->max_body = lc->max_body;
}

hx_t *hp_hx_get(hconn_t *c)
{
    hp_worker_t *hw = c->hw;
    hx_t *x = hw->hx_free;
    if (x != NULL) {
        hw->hx_free = x->next_free;
        hw->nhx_free--;
    } else {
        x = calloc(1, sizeof *x);
        if (x == NULL)
            return NULL;
        uv_timer_init(hp_loop(hw), &x->timer);
    }
    x->timer.data = x;
    x->c = c;
    gw_h1_limits_t lim;
    parser_limits(hp_lcfg(c), &lim);
    if (x->inited) { /* from the free list: its heads keep their storage */
        gw_h1_parser_reset(&x->rp, &lim, HX_KEEP_BYTES);
        gw_h1_parser_reset(&x->sp, NULL, HX_KEEP_BYTES);
        gw_h1_head_reuse(&x->local, 4096, 32, HX_KEEP_BYTES);
    } else {
        gw_h1_parser_init(&x->rp, true, &lim);
        gw_h1_parser_init(&x->sp, false, NULL);
        gw_h1_head_init(&x->local, false, 4096, 32);
        x->inited = true;
    }
    gw_hx_reset(&x->chain);
    return x;
}

/* Clears what one request of X used, keeping the parser's position in the stream (the
 * caller calls gw_h1_next for a pipelined request). The one place where the exchange's
 * phases and groups start over (hproxy-int.h): a new hx_t starts zeroed, which is the
 * same state but for client_minor. Within an exchange, only the retry facts move back
 * (hx_retry_t says which and where). */
static void hx_clear_exchange(hx_t *x)
{
    gw_bufcache_t *cache = &x->c->hw->w->bufs;
    gw_reqbuf_clear(&x->reqbuf, cache);
    if (x->rest_ch != NULL)
        gw_chunk_unref(cache, x->rest_ch);
    x->rest_ch = NULL;
    x->rest = NULL;
    x->rest_len = 0;
    x->body_deadline = 0;
    x->buffering = BUF_OFF;
    x->method[0] = '\0';
    gw_hx_reset(&x->chain);
    gw_h1_head_clear(&x->local);
    x->u = NULL;
    memset(&x->pick, 0, sizeof x->pick);
    x->backend_addr = NULL;
    x->route = NULL;
    x->upstream = 0;
    x->attempt = 0;
    x->tries = 0;
    x->rq = RQ_HEAD;
    x->rs = RS_NONE;
    x->client_minor = 1;
    x->head_method = x->idempotent = x->upgrade_asked = false;
    x->upgrade = GW_UPGRADE_NONE;
    x->tunnel = NULL;
    x->req_out = x->resp_out = FRAME_AS_IS;
    x->retry = (hx_retry_t){0};
    x->end = (hx_end_t){0};
    x->exchange_open = x->req_paused = x->client_eof = x->metered = x->switched = false;
    x->tail = NULL; /* settled with the tunnel that had one: a tunnel ends its connection */
    x->bytes_in = x->bytes_out = 0;
    x->bytes_counted_in = x->bytes_counted_out = 0;
}

void hp_hx_free_storage(hx_t *x)
{
    if (!x->inited)
        return;
    gw_h1_parser_free(&x->rp);
    gw_h1_parser_free(&x->sp);
    gw_h1_head_free(&x->local);
    x->inited = false;
}

void hp_on_hx_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Gives X back; its timer handle survives in the free list (closed when the list is
 * trimmed or the worker stops). */
void hp_hx_put(hp_worker_t *hw, hx_t *x)
{
    uv_timer_stop(&x->timer);
    x->tkind = T_NONE;
    x->armed_at = 0;
    if (x->rbuf != NULL) {
        gw_chunk_unref(&hw->w->bufs, x->rbuf);
        x->rbuf = NULL;
    }
    hx_clear_exchange(x);
    x->c = NULL;
    if (hw->nhx_free >= HX_FREE_MAX) {
        hp_hx_free_storage(x);
        x->timer.data = x;
        uv_close((uv_handle_t *)&x->timer, hp_on_hx_timer_closed);
        return;
    }
    x->next_free = hw->hx_free;
    hw->hx_free = x;
    hw->nhx_free++;
}

/* Sets X's one timer to KIND, due in MS. The uv timer (a heap operation to move) is only
 * moved when the new deadline is earlier than the one it is set for: an exchange goes
 * head (10 s), response (30 s), streaming (300 s), each later than the last, so it is
 * normally set once per exchange; when it fires early it looks at x->deadline and sleeps
 * again. The idle kinds (T_BODY, T_STREAM) likewise compare with x->last_active when they
 * fire rather than being re-armed on every byte. */
void hp_hx_timer_start(hx_t *x, tkind_t kind, uint64_t ms)
{
    uint64_t due = uv_now(hp_loop(x->c->hw)) + ms;
    x->tkind = kind;
    x->deadline = due;
    if (x->armed_at == 0 || x->armed_at > due) {
        uv_timer_start(&x->timer, on_hx_timer, ms, 0);
        x->armed_at = due;
    }
}

/* No timeout applies for now (the uv timer may still fire, and find nothing to do). */
static void hx_timer_stop(hx_t *x)
{
    x->tkind = T_NONE;
}

/* Times a request body: each silence up to body_timeout, the whole body up to
 * request_body_deadline (when set), whichever ends first. */
void hp_body_timer_start(hx_t *x, uint64_t ms)
{
    if (x->body_deadline != 0) {
        uint64_t now = uv_now(hp_loop(x->c->hw));
        uint64_t left = x->body_deadline > now ? x->body_deadline - now : 0;
        if (left < ms)
            ms = left;
    }
    hp_hx_timer_start(x, T_BODY, ms);
}

/* ---- statistics ---------------------------------------------------------------------------- */

void hp_count_status(hp_worker_t *hw, unsigned status)
{
    int cls = gw_hmetrics_class(status);
    if (cls >= 0) /* 1xx: interim, not a response */
        gw_counter_inc(&hw->stats->responses[cls]);
}

/* see hproxy-int.h: the route's slot (hmetrics.h) and the status's class */
void hp_meter_request(hconn_t *c, uint64_t now_ns)
{
    hx_t *x = c->x;
    if (!x->metered)
        return;
    x->metered = false;
    /* The route's series in the generation the head arrived in (still pinned here). A
     * listener that generation lacks (a reload removed it: answered 503) has none. */
    if (x->gen == NULL || x->gl == NULL)
        return;
    const hp_gen_t *hg = x->gen->layers[4];
    gw_hm_series_t *route = gw_hmetrics_route(
        hg->hm, x->gl->pos, x->route != NULL ? x->route->index : GW_HMETRICS_NO_ROUTE);
    unsigned status = x->chain.status != 0 ? x->chain.status : 499;
    gw_hmetrics_request(route, c->hw->w->id, status, now_ns - x->chain.start_ns);
}

/* see hproxy-int.h */
gw_chain_t *hp_chain(const hconn_t *c)
{
    if (c->x != NULL && c->x->gen != NULL)
        return hp_gen_chain(c->x->gen);
    return hp_gen_chain(gw_gen_current(c->hw->w->rt));
}

/* Pins the generation published now for C's exchange (its head just arrived) and finds C's
 * listener in it. False when that generation no longer has the listener (a reload removed
 * it since the connection was accepted): the request is answered 503 and the connection
 * closes, the one change a reload may refuse work for (NOTES.md). */
static bool exchange_pin(hconn_t *c)
{
    hx_t *x = c->x;
    if (x->gen == NULL)
        x->gen = gw_gen_pin(c->hw->w, &x->gsnap);
    x->gl = gw_gen_listener(x->gen, c->l);
    x->hcfg = x->gl != NULL ? gw_http_listener_cfg(x->gl->cfg) : NULL;
    return x->hcfg != NULL;
}

/* Gives the pin back: the last thing an exchange does with its generation (settling may
 * run twice: the second finds nothing to give). */
static void exchange_unpin(hconn_t *c)
{
    hx_t *x = c->x;
    if (x->gsnap != NULL)
        gw_gen_unpin(c->hw->w, x->gsnap);
    x->gsnap = NULL;
    x->gen = NULL;
    x->gl = NULL;
    x->hcfg = NULL;
}

/* Ends the exchange's bookkeeping: an upstream connection still attached closes (with a
 * reset when ABORTED: the client went away mid-way), the pick is released, and the chain
 * records the exchange (499, nginx's "client closed the request", if nothing was sent).
 * The client bytes not counted yet go to gw_bytes_total (settling may happen more than once:
 * at the exchange's end, then at the connection's close). */
void hp_exchange_settle(hconn_t *c, bool aborted)
{
    hx_t *x = c->x;
    if (x == NULL)
        return;
    hp_worker_t *hw = c->hw;
    if (x->tunnel != NULL)
        hp_tunnel_settle(c, aborted);
    if (x->u != NULL) {
        uconn_t *u = x->u;
        hp_uconn_detach(u);
        hp_uconn_close(u, aborted);
    }
    hp_pick_release(hw, x);
    gw_tcp_count_bytes(hw->w, x->bytes_in - x->bytes_counted_in,
                       x->bytes_out - x->bytes_counted_out);
    x->bytes_counted_in = x->bytes_in;
    x->bytes_counted_out = x->bytes_out;
    if (!x->metered && !x->exchange_open && !x->switched) {
        exchange_unpin(c);
        return;
    }
    uint64_t now_ns = gw_clock_mono_ns(&gw_clock_system);
    hp_meter_request(c, now_ns);
    if (x->exchange_open || x->switched) {
        x->chain.bytes_in = x->bytes_in;
        x->chain.bytes_out = x->bytes_out;
        if (x->chain.status == 0)
            x->chain.status = 499;
    }
    if (x->exchange_open) {
        gw_chain_finish(hp_chain(c), &x->chain, now_ns);
        x->exchange_open = false;
    }
    if (x->switched) {
        gw_chain_tail_finish(x->tail, &x->chain, now_ns);
        x->tail = NULL;
        x->switched = false;
    }
    exchange_unpin(c);
}

/* see hproxy-int.h */
void hp_exchange_switch(hconn_t *c)
{
    hx_t *x = c->x;
    uint64_t now_ns = gw_clock_mono_ns(&gw_clock_system);
    if (!x->exchange_open || !gw_chain_switch(hp_chain(c), &x->chain, now_ns, &x->tail))
        return; /* out of memory: the tunnel keeps its generation and ends as an exchange */
    x->exchange_open = false;
    x->switched = true;
    hp_meter_request(c, now_ns); /* the route's series count the 101 and the time to it */
    gw_lb_tok_detach(c->hw->w, &x->pick);
    exchange_unpin(c);
    x->route = NULL; /* it was the generation's */
}

/* ---- the request head ---------------------------------------------------------------------- */

static const char *lookup_header(void *ctx, const char *name, size_t *len)
{
    gw_h1_span_t v;
    if (!gw_h1_head_get(ctx, name, &v))
        return NULL;
    *len = v.len;
    return v.ptr;
}

/* The steps of a request head, in order. Each one that answers locally returns false (the
 * exchange is then the answer's); true: go on. */

/* What the method and the connection fields say: the method for the router and retries,
 * whether the connection may persist, and what is refused outright (CONNECT). */
static bool request_method(hconn_t *c)
{
    hx_t *x = c->x;
    gw_h1_head_t *h = &x->rp.head;
    /* The parser writes only methods llhttp knows (the longest has 13 bytes). */
    gw_h1_span_t m = gw_h1_head_method(h);
    if (m.len >= sizeof x->method) {
        hp_answer(c, 501, "method not supported", true);
        return false;
    }
    memcpy(x->method, m.ptr, m.len);
    x->method[m.len] = '\0';
    unsigned mbit = gw_router_method_bit(m.ptr, m.len);
    x->head_method = mbit == GW_METHOD_HEAD;
    x->idempotent = (mbit & GW_METHODS_IDEMPOTENT) != 0;

    gw_h1_conn_info_t info;
    /* Upgrade stays until the route decides (hp_tunnel_request). */
    if (gw_h1_strip_hop_by_hop(h, GW_H1_KEEP_UPGRADE, &info) != 0) { /* cannot happen */
        hp_answer(c, 400, "too many Connection tokens", true);
        return false;
    }
    x->end.client_keep = info.keep_alive && !hp_draining(c);
    x->upgrade_asked = info.upgrade;

    /* CONNECT is not proxied (Upgrade tunnels are: htunnel.c). */
    if (mbit == GW_METHOD_CONNECT) {
        hp_answer(c, 501, "CONNECT is not supported", true);
        return false;
    }
    return true;
}

/* Normalises the target, routes the request (404) and applies the route's body limit (413);
 * fills in what the middleware reads about the exchange. */
static bool request_route(hconn_t *c)
{
    hp_worker_t *hw = c->hw;
    hx_t *x = c->x;
    gw_h1_head_t *h = &x->rp.head;
    /* One reading of the path for the router, the middleware and the upstream. */
    gw_h1_span_t tg = gw_h1_head_target(h);
    if (tg.len == 0 || tg.ptr[0] != '/') {
        hp_answer(c, 400, "only origin-form request targets are accepted", true);
        return false;
    }
    /* Normalised on the stack for every common target; a long one (up to max_uri) on
     * the heap. */
    char stack[2048];
    char *norm = tg.len < sizeof stack ? stack : malloc(tg.len + 1);
    if (norm == NULL) {
        hp_answer(c, 500, "out of memory", true);
        return false;
    }
    gw_pathnorm_t pn;
    int rc = gw_path_normalize(tg.ptr, tg.len, norm, tg.len + 1, &pn);
    if (rc == 0 && gw_h1_head_set_target(h, norm, pn.len) != 0) {
        pn.status = 414;
        pn.reason = "request target too long";
        rc = -1;
    }
    if (rc != 0) {
        if (norm != stack)
            free(norm);
        hp_answer(c, (unsigned)pn.status, pn.reason, true);
        return false;
    }
    gw_h1_span_t host = {NULL, 0};
    gw_h1_head_get(h, "host", &host);
    const gw_route_match_t *match = gw_router_match(x->hcfg->router, host.ptr, host.len, x->method,
                                                    norm, pn.path_len, lookup_header, h, NULL);
    if (norm != stack)
        free(norm);
    x->chain.listener = x->gl->pos;
    x->chain.lcfg = x->hcfg;
    x->chain.client = &c->peer.sa;
    x->chain.tls_info = hp_tls_info(c);
    x->chain.tls = x->chain.tls_info != NULL;
    x->chain.rng = &hw->rng;
    if (match == NULL) {
        hp_answer(c, 404, "no route", false);
        return false;
    }
    x->route = match->user;
    x->chain.route = x->route;
    if (x->route->max_body > 0 && gw_h1_set_max_body(&x->rp, x->route->max_body) != 0) {
        hp_answer(c, 413, "request body too large", true);
        return false;
    }
    return true;
}

/* Runs the route's middleware on the head (a local answer: 401, 429...), then readies it for
 * the upstream: Host rewrite, Via, the request body's framing, HTTP/1.1. */
static bool request_for_upstream(hconn_t *c)
{
    hp_worker_t *hw = c->hw;
    hx_t *x = c->x;
    gw_h1_head_t *h = &x->rp.head;
    x->exchange_open = true;
    gw_h1_head_clear(&x->local);
    /* mTLS: the client's own copies of the certificate fields go, the verified ones come. */
    if (gw_htls_client_fields(h, x->hcfg->tls, x->chain.tls_info) != 0) {
        hp_answer(c, 431, "request head too large", true);
        return false;
    }
    int st = gw_chain_request(hp_gen_chain(x->gen), &x->chain, h, &x->local);
    if (st == 429) /* only rate_limit answers 429 (chain.h) */
        gw_hmetrics_rate_limited(gw_hmetrics_route(((const hp_gen_t *)x->gen->layers[4])->hm,
                                                   x->gl->pos, x->route->index),
                                 hw->w->id);
    if (st != 0) {
        hp_send_local(c, (unsigned)st, NULL, false);
        return false;
    }
    if (x->route->host_rewrite != NULL)
        gw_h1_head_set(h, "Host", x->route->host_rewrite, strlen(x->route->host_rewrite));
    if (!gw_mw_any_writes_via(x->route->mw, x->route->nmw) &&
        gw_h1_head_add(h, "Via", 3, "1.1 gw", 6) != 0) {
        hp_answer(c, 431, "request head too large", true);
        return false;
    }
    /* Re-framing: a chunked body goes on chunked (Transfer-Encoding was stripped with the
     * other hop-by-hop fields); a Content-Length body keeps its Content-Length. */
    x->req_out = x->req_body == GW_H1_BODY_CHUNKED ? FRAME_CHUNKED : FRAME_AS_IS;
    if (x->req_out == FRAME_CHUNKED &&
        gw_h1_head_add(h, "Transfer-Encoding", 17, "chunked", 7) != 0) {
        hp_answer(c, 431, "request head too large", true);
        return false;
    }
    h->version_minor = 1;
    return true;
}

void hp_on_request_head(hconn_t *c)
{
    hp_worker_t *hw = c->hw;
    hx_t *x = c->x;
    gw_h1_head_t *h = &x->rp.head;
    gw_counter_inc(&hw->stats->requests);
    x->chain.start_ns = gw_clock_mono_ns(&gw_clock_system); /* the duration runs from here */
    x->chain.wall_ms = (int64_t)gw_clock_wall_ms(&gw_clock_system);
    x->metered = true;
    x->rq = RQ_WAIT_UPSTREAM;
    x->req_body = x->rp.body;
    x->client_minor = h->version_minor; /* before the upstream's copy says 1.1 */
    hx_timer_stop(x);
    if (!exchange_pin(c)) {
        hp_answer(c, 503, "listener removed by a reload", true);
        return;
    }
    if (!request_method(c) || !request_route(c) || !hp_tunnel_request(c, x->upgrade_asked) ||
        !request_for_upstream(c))
        return; /* answered */
    if (x->req_body != GW_H1_BODY_NONE && x->hcfg->body_deadline_ms > 0)
        x->body_deadline = uv_now(hp_loop(hw)) + x->hcfg->body_deadline_ms;
    if (hp_buffer_start(c))
        return; /* the backend is picked when the body is in (hp_request_end, hp_buffer_data) */
    hp_upstream_start(c);
}

/* ---- client input ---------------------------------------------------------------------------- */

/* The request's last byte was parsed. */
void hp_request_end(hconn_t *c)
{
    hx_t *x = c->x;
    bool discarding = x->end.error_sent;
    x->rq = RQ_DONE; /* a pipelined next request is held (hp_client_update_reading) */
    if (discarding) {
        hp_exchange_done(c);
        return;
    }
    if (x->buffering == BUF_FILLING) {
        /* The whole body is here: now a backend (buffer_flush sends it). */
        x->buffering = BUF_WHOLE;
        hp_upstream_start(c);
        return;
    }
    if (x->u != NULL)
        hp_request_body_end(c);
    if (x->rs == RS_DONE) {
        hp_exchange_done(c);
        return;
    }
    hp_request_sent(c);
}

/* Body bytes of the request. */
void hp_request_data(hconn_t *c, gw_chunk_t *ch, const char *data, size_t n)
{
    hx_t *x = c->x;
    hp_worker_t *hw = c->hw;
    x->last_active = uv_now(hp_loop(hw));
    if (x->end.error_sent)
        return; /* answered already: the body is read and dropped */
    if (x->buffering == BUF_FILLING) {
        hp_buffer_data(c, ch, data, n);
        return;
    }
    if (x->u == NULL)
        return;
    x->retry.body_started = true;
    uconn_t *u = x->u;
    hp_out_body(hw, &u->out, ch, data, n, x->req_out == FRAME_CHUNKED);
    if (gw_wb_pending(&hw->wb, &u->out) > hp_high_water(hw))
        x->req_paused = true; /* hp_client_process stops, and hp_client_update_reading with it */
}

/* ---- the response --------------------------------------------------------------------------- */

void hp_response_end(hconn_t *c)
{
    hx_t *x = c->x;
    hp_worker_t *hw = c->hw;
    x->rs = RS_DONE;
    if (x->rq != RQ_DONE) /* the exchange ends later, with the request body */
        hp_meter_request(c, gw_clock_mono_ns(&gw_clock_system));
    if (x->resp_out == FRAME_CHUNKED) { /* trailers come only with a chunked upstream body */
        gw_chain_trailers(hp_chain(c), &x->chain, &x->sp.trailers, true);
        x->bytes_out += hp_out_last_chunk(hw, &c->out, &x->sp.trailers);
    }
    uconn_t *u = x->u;
    if (u != NULL) {
        /* Reusable when both messages ended cleanly on it and the upstream did not ask to
         * close (drain_close also covers HTTP/1.0 upstreams and stray bytes). */
        bool reusable = x->rq == RQ_DONE && x->resp_body_in != GW_H1_BODY_UNTIL_CLOSE &&
                        x->sp.state == GW_H1_ST_DONE && !x->end.upstream_close && !u->paused &&
                        u->out.error == 0;
        hp_uconn_release(u, reusable);
    }
    hp_pick_release(hw, x);
    if (x->rq == RQ_DONE)
        hp_exchange_done(c);
    else if (x->resp_out == FRAME_CLOSE || x->end.close_after)
        hp_client_linger(c); /* the answer is queued: FIN after it */
    /* else: the upstream answered before the request body ended (an early 413, say); the
     * connection closes after the body, which hp_request_end handles by hp_exchange_done. */
}

void hp_on_response_head(hconn_t *c)
{
    hp_worker_t *hw = c->hw;
    hx_t *x = c->x;
    gw_h1_head_t *h = &x->sp.head;
    unsigned status = h->status;
    if (status >= 200) /* first, before anything may retry or answer instead */
        hp_pick_response(x, status);
    /* Every final head a backend sends, whatever becomes of it (1xx have no class). */
    const gw_lb_member_t *m = gw_lb_tok_member(&x->pick);
    if (m != NULL)
        gw_hmetrics_upstream_response(&hp_bslot(m->b, hw->w->id)->res, status);
    if (status == 101) {
        hp_attempt_failed(c, GW_HRETRY_BROKEN, UV_EPROTO,
                          "upstream switched protocols without being asked");
        return;
    }
    gw_h1_conn_info_t info;
    if (gw_h1_strip_hop_by_hop(h, 0, &info) != 0) { /* the parser caps Connection: cannot happen */
        hp_attempt_failed(c, GW_HRETRY_BROKEN, UV_EPROTO, "too many Connection tokens");
        return;
    }
    bool interim = status >= 100 && status < 200;
    if (status >= 500 && hp_attempt_answered(c, status))
        return; /* the route retries this 5xx (hretry.h): sent again, this answer dropped */
    if (!interim) {
        hx_timer_stop(x);
        x->resp_body_in = x->sp.body;
        /* The upstream connection's fate is decided by what it said. */
        if (!info.keep_alive)
            x->end.upstream_close = true;
    }
    gw_chain_response(hp_chain(c), &x->chain, &x->rp.head, h);
    h->version_minor = 1;
    /* Rules for an HTTP/1.0 client (RFC 9110 15.2, RFC 9112 6.3): no interim response, no
     * chunked body, and keep-alive only when the body has a Content-Length (or none). */
    bool client11 = x->client_minor >= 1;
    if (!interim) {
        x->chain.status = status;
        hp_count_status(hw, status);
        bool body = x->sp.body != GW_H1_BODY_NONE;
        x->resp_out = FRAME_AS_IS;
        if (body && x->sp.body != GW_H1_BODY_LENGTH) {
            if (client11) {
                x->resp_out = FRAME_CHUNKED;
                gw_h1_head_add(h, "Transfer-Encoding", 17, "chunked", 7);
            } else {
                x->resp_out = FRAME_CLOSE;
            }
        }
        bool keep = x->end.client_keep && x->resp_out != FRAME_CLOSE && !hp_draining(c) &&
                    !(x->rq != RQ_DONE && x->req_body != GW_H1_BODY_NONE);
        if (!keep) {
            x->end.close_after = true;
            gw_h1_head_set(h, "Connection", "close", 5);
        } else if (!client11) {
            gw_h1_head_set(h, "Connection", "keep-alive", 10);
        }
        x->rs = RS_HEAD_SENT;
        x->last_active = uv_now(hp_loop(hw));
        hp_hx_timer_start(x, T_STREAM, c->l->cfg->idle_timeout_ms);
    } else if (!client11) {
        return; /* HTTP/1.0 clients get no interim responses */
    } else {
        x->retry.interim_sent = true; /* a byte of the response reached the client: no replay */
    }
    /* A final head leaves with the body bytes read with it: the writer gathers both. */
    x->bytes_out += hp_out_head(hw, &c->out, h, NULL, 0);
}

void hp_response_data(hconn_t *c, gw_chunk_t *ch, const char *data, size_t n)
{
    hp_worker_t *hw = c->hw;
    hx_t *x = c->x;
    x->last_active = uv_now(hp_loop(hw));
    x->bytes_out += hp_out_body(hw, &c->out, ch, data, n, x->resp_out == FRAME_CHUNKED);
    if (gw_wb_pending(&hw->wb, &c->out) > hp_high_water(hw) && x->u != NULL) {
        x->u->paused = true;
        hp_upstream_set_reading(x->u, false);
    }
}

/* ---- between exchanges -------------------------------------------------------------------- */

/* Both halves of the exchange are complete: log it and wait for the next request. */
void hp_exchange_done(hconn_t *c)
{
    hp_worker_t *hw = c->hw;
    hx_t *x = c->x;
    hp_exchange_settle(c, false);
    if (x->end.close_after || !x->end.client_keep || hp_draining(c)) {
        hp_client_linger(c);
        return;
    }
    hx_clear_exchange(x);
    if (gw_h1_next(&x->rp) != 0) {
        hp_client_linger(c);
        return;
    }
    if (x->rbuf != NULL && x->rbuf->off < x->rbuf->len) {
        /* A pipelined request is already here. */
        hp_hx_timer_start(x, T_HEAD, hp_lcfg(c)->head_timeout_ms);
        hp_client_process(c);
        return;
    }
    /* Idle: give the exchange state back; the connection keeps only its socket. */
    hp_hx_put(hw, x);
    c->x = NULL;
    c->state = C_IDLE;
    if (!hp_list_idle_kind(c, IDLE_KEEPALIVE)) {
        hp_client_close(c, false);
        return;
    }
    hp_client_backlogged(c);
    hp_client_update_reading(c);
}

/* ---- timers ------------------------------------------------------------------------------------
 */

static void hx_timer_fired(hx_t *x, hconn_t *c);

static void on_hx_timer(uv_timer_t *t)
{
    hx_t *x = t->data;
    hconn_t *c = x->c;
    x->armed_at = 0;
    if (c == NULL || x->tkind == T_NONE)
        return;
    gw_wb_t *wb = &c->hw->wb; /* see hwrite.c */
    gw_wb_hold(wb);
    hx_timer_fired(x, c);
    gw_wb_release(wb);
}

static void hx_timer_fired(hx_t *x, hconn_t *c)
{
    uint64_t now = uv_now(hp_loop(c->hw));
    if (now < x->deadline) { /* set for an earlier kind: sleep until this one's time */
        uv_timer_start(&x->timer, on_hx_timer, x->deadline - now, 0);
        x->armed_at = x->deadline;
        return;
    }
    switch (x->tkind) {
    case T_HEAD:
        hp_answer(c, 408, "request head timeout", true);
        return;
    case T_BODY: {
        uint64_t quiet = now - x->last_active, limit = hp_lcfg(c)->body_timeout_ms;
        if (x->rq != RQ_BODY) /* the body is complete; the response timer takes over */
            return;
        bool late = x->body_deadline != 0 && now >= x->body_deadline;
        if (!late && x->req_paused) { /* the upstream is slow, not the client */
            x->last_active = now;
            hp_body_timer_start(x, limit);
            return;
        }
        if (!late && quiet < limit) {
            hp_body_timer_start(x, limit - quiet);
            return;
        }
        if (x->rs == RS_NONE)
            hp_answer(c, 408, late ? "request body deadline" : "request body timeout", true);
        else
            hp_client_close(c, true);
        return;
    }
    case T_RESPONSE:
        hp_attempt_failed(c, GW_HRETRY_RESPONSE_TIMEOUT, UV_ETIMEDOUT, "upstream response timeout");
        return;
    case T_STREAM: {
        uint64_t quiet = now - x->last_active, limit = c->l->cfg->idle_timeout_ms;
        if (quiet < limit) {
            hp_hx_timer_start(x, T_STREAM, limit - quiet);
            return;
        }
        x->chain.end = "idle_timeout";
        hp_client_close(c, true);
        return;
    }
    case T_LINGER:
        hp_client_close(c, false);
        return;
    case T_RETRY:
        x->tkind = T_NONE;
        hp_on_retry_due(c);
        return;
    case T_TUNNEL:
        hp_tunnel_timer(c);
        return;
    case T_NONE:
        return;
    }
}
