/* hupstream.c - the upstream side of the HTTP engine (hproxy.c has the tour).
 *
 * Owns: uconn_t, an upstream connection: attached to one exchange, idle in its backend's
 * pool (upool.h's lists; the sweep timer is hproxy.c's), or closing. Picking a backend and
 * taking a pooled connection or connecting (with a timeout); the request head and body
 * written upstream (a route's request_buffering first reads the body whole: reqbuf.h);
 * reading the response into the exchange; and what a failed attempt does: retry, or give
 * up with 502/503/504. Which one is hretry.c's pure decision; this file does what it says.
 *
 * Does not own: what the response head means (hexchange.c), the answer sent after giving up
 * (hanswer.c). */
#include "04-http/hproxy-int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"

static void on_upstream_read(gw_stream_t *s, gw_chunk_t *ch, ssize_t nread);
static const gw_wdest_ops_t upstream_ops;

/* Gives back what the exchange's pick holds (02's active count, its pin on the table),
 * reporting a backend failure if one was seen. */
void hp_pick_release(hp_worker_t *hw, hx_t *x)
{
    if (x->retry.picked || x->pick.ref != NULL) {
        const gw_tcp_picker_t *p = hw->hp->picker;
        p->report(p->ctx, hw->w, &x->pick,
                  x->retry.backend_failed ? GW_TCP_CLOSED_BACKEND_ERROR : GW_TCP_CLOSED);
    }
    x->retry.picked = false;
}

/* see hproxy-int.h */
void hp_pick_response(hx_t *x, unsigned status)
{
    if (x->retry.picked)
        gw_lb_response(&x->pick, status);
}

/* ---- upstream connections ------------------------------------------------------------------ */

static void uconn_closed_one(uconn_t *u)
{
    if (--u->pending_closes == 0) {
        hp_utls_conn_free(u);
        /* Last of all: the backend (its pool, its TLS slot) may go once nobody holds it. A
         * worker's drop never frees it, even at 0: 02's control reaper does (lb.h). */
        gw_backend_t *b = u->b;
        free(u);
        if (b != NULL)
            (void)gw_backend_drop(b);
    }
}

static void on_uconn_closed(uv_handle_t *h)
{
    uconn_closed_one(h->data);
}

static void on_uconn_stream_closed(gw_stream_t *s)
{
    uconn_closed_one(s->data);
}

void hp_uconn_close(uconn_t *u, bool reset)
{
    if (u->closing)
        return;
    u->closing = true;
    if (u->pool != NULL)
        gw_upool_remove(u->pool, &u->pe);
    hp_worker_t *hw = u->hw;
    if (u->prev != NULL)
        u->prev->next = u->next;
    else if (hw->uconns == u)
        hw->uconns = u->next;
    if (u->next != NULL)
        u->next->prev = u->prev;
    u->prev = u->next = NULL;
    gw_wb_drop(&hw->wb, &u->out);
    u->pending_closes = 2;
    gw_stream_close(u->s, reset && u->connected, on_uconn_stream_closed);
    uv_close((uv_handle_t *)&u->timer, on_uconn_closed);
}

/* Cuts the link between U and its exchange. */
void hp_uconn_detach(uconn_t *u)
{
    if (u->x != NULL) {
        u->x->u = NULL;
        u->x = NULL;
    }
}

/* The pool of member M's backend on HW's worker: its slot in the backend object, which
 * follows the backend across generations (hproxy-int.h's hp_bslot_t). */
static gw_upool_t *pool_of(hp_worker_t *hw, const gw_lb_member_t *m)
{
    return &hp_bslot(m->b, hw->w->id)->pool;
}

/* The exchange is done with U: back to its pool when it can carry another request. While
 * pooled it reads, so that the upstream's close (or stray bytes) is noticed at once. */
void hp_uconn_release(uconn_t *u, bool reusable)
{
    hp_uconn_detach(u);
    hp_worker_t *hw = u->hw;
    /* A connection that began with one client's PROXY header is that client's: not
     * pooled at all (the simplest rule that never lends it to another; NOTES.md). */
    if (u->closing || gw_stream_starved(u->s) || u->proxy_protocol != 0 ||
        !hp_backend_poolable(hw, u->b) ||
        !gw_upool_may_keep(u->requests, u->max_requests, reusable, hw->w->draining)) {
        hp_uconn_close(u, false);
        return;
    }
    u->paused = false;
    gw_upool_put(u->pool, &u->pe, uv_now(hp_loop(hw)));
    hp_pool_sweep_arm(hw);
    hp_upstream_set_reading(u, true); /* normally still on: the same callback serves both */
    if (!u->reading)
        hp_uconn_close(u, true);
}

void hp_upstream_set_reading(uconn_t *u, bool on)
{
    if (u->closing || u->reading == on)
        return;
    u->reading = on;
    if (!on)
        gw_stream_read_stop(u->s);
    else if (gw_stream_read_start(u->s) != 0)
        u->reading = false;
}

/* ---- failures before the response head: retry, or 502/503/504 ----------------------------------
 */

void hp_on_retry_due(hconn_t *c)
{
    hp_upstream_start(c);
}

/* The hooks of the retry decision (hretry.h): the picker's and the chain's answers about
 * the exchange of the client connection CTX. */
static void retry_report(void *ctx, int status)
{
    hconn_t *c = ctx;
    const gw_tcp_picker_t *p = c->hw->hp->picker;
    p->report(p->ctx, c->hw->w, &c->x->pick, status);
}

static bool retry_connect(void *ctx, unsigned attempt, uint64_t *delay_ms)
{
    hconn_t *c = ctx;
    const gw_tcp_picker_t *p = c->hw->hp->picker;
    return p->retry == NULL || p->retry(p->ctx, c->hw->w, &c->x->pick, attempt, delay_ms);
}

static bool retry_middleware(void *ctx, unsigned attempt, uint64_t *delay_ms)
{
    hconn_t *c = ctx;
    hx_t *x = c->x;
    return x->method[0] != '\0' &&
           gw_chain_may_retry(hp_chain(c), &x->chain, x->method, attempt, delay_ms);
}

/* What the retry decision reads about C's exchange after FAILURE (UV_STATUS; STATUS, the
 * backend's answer, for GW_HRETRY_STATUS). */
static gw_hretry_in_t retry_inputs(hconn_t *c, gw_hretry_failure_t failure, int uv_status,
                                   unsigned status)
{
    hx_t *x = c->x;
    const gw_tcp_picker_t *p = c->hw->hp->picker;
    return (gw_hretry_in_t){
        .failure = failure,
        .uv_status = uv_status,
        .status = status,
        .picked = x->retry.picked,
        .reused = x->retry.reused,
        .resp_bytes = x->retry.resp_bytes,
        .idempotent = x->idempotent,
        .has_body = x->req_body != GW_H1_BODY_NONE,
        .body_started = x->retry.body_started,
        .request_read = x->rq == RQ_DONE,
        .body_buffered = x->buffering == BUF_WHOLE,
        .response_started = x->rs != RS_NONE,
        .interim_sent = x->retry.interim_sent,
        .draining = hp_draining(c),
        .stale_retry_used = x->retry.stale_retried,
        .attempt = x->attempt,
        .max_attempts = p->max_attempts,
        .tries = x->tries,
        .retry_on = x->chain.retry_on,
    };
}

static gw_hretry_t retry_decide(hconn_t *c, gw_hretry_failure_t failure, int uv_status,
                                unsigned status)
{
    gw_hretry_in_t in = retry_inputs(c, failure, uv_status, status);
    gw_hretry_hooks_t hooks = {retry_report, retry_connect, retry_middleware, c};
    return gw_hretry_decide(&in, &hooks);
}

/* Does what decision D says about C's failed attempt (not PASS): the attempt's upstream
 * connection is closed, then the request goes again or the client is answered. WHY is the
 * reason for the log and the error answer. */
static void attempt_end(hconn_t *c, gw_hretry_t d, const char *why)
{
    hp_worker_t *hw = c->hw;
    hx_t *x = c->x;
    if (x->u != NULL) { /* reset: what it still had to say (a 5xx's body) is not wanted */
        uconn_t *u = x->u;
        hp_uconn_detach(u);
        hp_uconn_close(u, true);
    }
    /* The decision reported the failure, once: the final release says "closed". */
    x->retry.backend_failed = false;
    x->chain.upstream_failed = true;
    uint64_t dropped;
    if (gw_lograte_allow(&hw->err_log, uv_now(hp_loop(hw)), 1000, &dropped)) {
        char a[GW_ADDR_STRLEN];
        gw_warn("route '%s': backend %s: %s (attempt %u)%s", x->route ? x->route->name : "-",
                x->backend_addr ? gw_addr_format(x->backend_addr, a, sizeof a) : "-", why,
                x->attempt + 1, dropped ? " (more like this suppressed)" : "");
    }
    if (d.stale_retry)
        x->retry.stale_retried = true;
    if (d.release_pick) /* this pick sequence is over: release what it holds */
        hp_pick_release(hw, x);
    switch (d.action) {
    case GW_HRETRY_FRESH:
    case GW_HRETRY_NEXT_ATTEMPT:
        x->tries++;
        x->attempt = d.action == GW_HRETRY_FRESH ? 0 : x->attempt + 1;
        if (d.avoid_tried) /* the next pick keeps away from the backends that failed it */
            x->pick.flags |= GW_LB_KEEP_TRIED;
        gw_counter_inc(&hw->stats->retries);
        if (x->rq == RQ_BODY) /* the body waits for the next upstream */
            x->rq = RQ_WAIT_UPSTREAM;
        /* The head is serialised again from the parsed head, which is intact. */
        if (d.delay_ms > 0)
            hp_hx_timer_start(x, T_RETRY, d.delay_ms);
        else
            hp_upstream_start(c);
        return;
    case GW_HRETRY_CLOSE_CLIENT:
        hp_client_close(c, true);
        return;
    case GW_HRETRY_ANSWER:
    case GW_HRETRY_PASS: /* not for a failure without an answer: a 502 all the same */
        hp_answer(c, d.status ? d.status : 502, why, true);
        return;
    }
}

/* The current attempt failed before any response byte: FAILURE says what failed, UV_STATUS
 * the libuv code that said so, WHY the reason for the log and the error answer. The
 * decision is hretry.c's; this does what it says. */
void hp_attempt_failed(hconn_t *c, gw_hretry_failure_t failure, int uv_status, const char *why)
{
    attempt_end(c, retry_decide(c, failure, uv_status, 0), why);
}

/* see hproxy-int.h */
bool hp_attempt_answered(hconn_t *c, unsigned status)
{
    if (c->x->chain.retry_on == 0) /* no retry middleware: every answer goes on */
        return false;
    gw_hretry_t d = retry_decide(c, GW_HRETRY_STATUS, 0, status);
    if (d.action == GW_HRETRY_PASS)
        return false;
    char why[40];
    snprintf(why, sizeof why, "upstream answered %u", status);
    attempt_end(c, d, why);
    return true;
}

/* ---- writing the request upstream ------------------------------------------------------------ */

void hp_request_sent(hconn_t *c)
{
    hx_t *x = c->x;
    if (x->rs == RS_NONE && x->tkind != T_RESPONSE)
        hp_hx_timer_start(x, T_RESPONSE, x->hcfg->response_timeout_ms);
}

/* The request body ended: a chunked one ends upstream with the last chunk and the trailers
 * the listener lets through (http.forward_trailers): unchecked, they would bypass every
 * decision made on the head (trailers.h). */
void hp_request_body_end(hconn_t *c)
{
    hx_t *x = c->x;
    hp_worker_t *hw = c->hw;
    if (x->req_out != FRAME_CHUNKED)
        return;
    gw_chain_trailers(hp_chain(c), &x->chain, &x->rp.trailers, false);
    hp_out_last_chunk(hw, &x->u->out, &x->rp.trailers);
}

/* ---- request buffering (a route's request_buffering) -------------------------------------- */

/* Whether the body of X's request is read whole before a backend is picked: the route asks
 * for it, and the body is not announced larger than it (chunked: we will see). Then the
 * client's `Expect: 100-continue` is answered here (the upstream gets the body at once). */
bool hp_buffer_start(hconn_t *c)
{
    hx_t *x = c->x;
    uint64_t cap = x->route->request_buffering;
    if (cap == 0 || x->req_body == GW_H1_BODY_NONE ||
        (x->req_body == GW_H1_BODY_LENGTH && x->rp.length > cap))
        return false;
    gw_reqbuf_init(&x->reqbuf, cap);
    x->buffering = BUF_FILLING;
    x->rq = RQ_BODY; /* hp_client_process reads the body now */
    gw_h1_head_t *h = &x->rp.head;
    gw_h1_span_t v;
    if (gw_h1_head_get(h, "expect", &v)) {
        if (x->client_minor >= 1 && v.len == 12 && strncasecmp(v.ptr, "100-continue", 12) == 0)
            x->bytes_out +=
                gw_wb_copy(&c->hw->wb, &c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0 ? 25 : 0;
        gw_h1_head_remove(h, "expect");
    }
    x->last_active = uv_now(hp_loop(c->hw));
    hp_body_timer_start(x, x->hcfg->body_timeout_ms);
    return true;
}

/* Body bytes while buffering. What does not fit (a chunked body longer than the cap, or no
 * chunk left in the pool) ends the buffering: the backend is picked now, and that span goes
 * right after the buffer (upstream_ready), then the rest streams as usual. */
void hp_buffer_data(hconn_t *c, gw_chunk_t *ch, const char *data, size_t n)
{
    hx_t *x = c->x;
    size_t k = gw_reqbuf_append(&x->reqbuf, &c->hw->w->bufs, data, n);
    if (k == n)
        return;
    x->buffering = BUF_SPILLED;
    gw_chunk_ref(ch);
    x->rest_ch = ch;
    x->rest = data + k;
    x->rest_len = n - k;
    x->rq = RQ_WAIT_UPSTREAM; /* hp_client_process stops: the rest waits for the backend */
    hp_upstream_start(c);
}

/* Sends what was buffered to the attached upstream (again, on a retry of a whole body). A
 * partial buffer is given up once sent: the rest of the body streams after it. */
static void buffer_flush(hconn_t *c)
{
    hx_t *x = c->x;
    hp_worker_t *hw = c->hw;
    gw_wdest_t *d = &x->u->out;
    for (gw_chunk_t *ch = x->reqbuf.head; ch != NULL; ch = ch->next)
        hp_out_body(hw, d, ch, ch->data, ch->len, x->req_out == FRAME_CHUNKED);
    if (x->buffering == BUF_WHOLE) {
        hp_request_body_end(c);
        return;
    }
    gw_reqbuf_clear(&x->reqbuf, &hw->w->bufs);
    if (x->rest_ch != NULL) {
        hp_out_body(hw, d, x->rest_ch, x->rest, x->rest_len, x->req_out == FRAME_CHUNKED);
        gw_chunk_unref(&hw->w->bufs, x->rest_ch);
        x->rest_ch = NULL;
        x->rest_len = 0;
    }
    x->retry.body_started = true; /* the rest is read from the client: no replay */
}

/* The attached upstream U is connected: send the head, then let the body flow. */
static void upstream_ready(hconn_t *c)
{
    hp_worker_t *hw = c->hw;
    hx_t *x = c->x;
    uconn_t *u = x->u;
    const gw_tcp_picker_t *p = hw->hp->picker;
    p->report(p->ctx, hw->w, &x->pick, 0);
    u->requests++;
    gw_h1_head_t *h = &x->rp.head;
    if (!gw_h1_head_get(h, "host", NULL)) {
        /* An HTTP/1.0 request may come without Host, but it goes upstream as HTTP/1.1, where
         * Host is required (RFC 9112 3.2): the backend's address as configured. (A route's
         * host_rewrite was set already.) */
        const char *host = gw_lb_tok_member(&x->pick)->cfg->address_text;
        gw_h1_head_set(h, "Host", host, strlen(host));
    }
    gw_h1_parser_reset(&x->sp, NULL, HX_KEEP_BYTES);
    if (x->head_method)
        gw_h1_expect_head_response(&x->sp);
    x->retry.resp_bytes = false;          /* a new attempt: nothing came back on it yet */
    hp_out_head(hw, &u->out, h, NULL, 0); /* a failure comes back through upstream_on_error */
    if (x->reqbuf.len > 0 || x->rest_ch != NULL || x->buffering == BUF_WHOLE)
        buffer_flush(c);
    hp_upstream_set_reading(u, true);
    if (x->rq == RQ_WAIT_UPSTREAM) {
        /* The parser still holds the rest of the request: the body, or (without one) the
         * end of the message, which hp_client_process below hands to hp_request_end. */
        x->rq = RQ_BODY;
        if (x->req_body != GW_H1_BODY_NONE) {
            x->last_active = uv_now(hp_loop(hw));
            hp_body_timer_start(x, x->hcfg->body_timeout_ms);
        }
    } else if (x->rq == RQ_DONE) { /* a retry of a request without a body */
        hp_request_sent(c);
    }
    hp_client_process(c); /* body bytes that came with the head */
}

static void upstream_connect_held(uv_connect_t *req, int status);

/* Runs upstream_connect_held under a hold of the writer (see hwrite.c). */
static void on_upstream_connect(uv_connect_t *req, int status)
{
    gw_wb_t *wb = &((uconn_t *)req->data)->hw->wb;
    gw_wb_hold(wb);
    upstream_connect_held(req, status);
    gw_wb_release(wb);
}

static void upstream_connect_held(uv_connect_t *req, int status)
{
    uconn_t *u = req->data;
    if (u->closing)
        return;
    hx_t *x = u->x;
    if (x == NULL) { /* the exchange went away meanwhile */
        hp_uconn_close(u, false);
        return;
    }
    if (status < 0) {
        hp_attempt_failed(x->c, GW_HRETRY_CONNECT, status, "upstream connect failed");
        return;
    }
    u->connected = true;
    if (u->proxy_protocol != 0) { /* first on the wire, before TLS (hproxyproto.c) */
        int rc = hp_pp_send(u, x->c, u->proxy_protocol);
        if (rc != 0) {
            hp_attempt_failed(x->c, GW_HRETRY_BROKEN, rc, "out of memory");
            return;
        }
    }
    if (u->tls != NULL) { /* the handshake is part of the connect: the timer runs on */
        int rc = hp_utls_conn_start(u, on_upstream_read);
        if (rc != 0)
            hp_attempt_failed(x->c, GW_HRETRY_CONNECT, rc, "upstream TLS setup failed");
        return; /* hp_upstream_tls_done goes on */
    }
    uv_timer_stop(&u->timer);
    gw_counter_inc(&u->hw->stats->upstream_connects); /* a request goes on a new connection */
    upstream_ready(x->c);
}

static void upstream_tls_done_held(uconn_t *u, const char *failure)
{
    if (u->closing)
        return;
    uv_timer_stop(&u->timer);
    hx_t *x = u->x;
    if (x == NULL) { /* the exchange went away meanwhile */
        hp_uconn_close(u, failure != NULL);
        return;
    }
    if (failure == NULL) {
        gw_counter_inc(&u->hw->stats->upstream_connects);
        upstream_ready(x->c);
        return;
    }
    /* A connect failure: nothing of the request was queued (upstream_ready comes only after
     * the handshake), so it is retried as a refused connect is. The access log's "end"
     * names the reason (cleared when another attempt starts: hp_upstream_start). */
    snprintf(x->tls_end, sizeof x->tls_end, "upstream_tls_%s", failure);
    x->chain.end = x->tls_end;
    char why[96];
    snprintf(why, sizeof why, "upstream TLS handshake failed: %s", failure);
    hp_attempt_failed(x->c, GW_HRETRY_CONNECT, UV_EPROTO, why);
}

/* see hproxy-int.h; runs upstream_tls_done_held under a hold of the writer */
void hp_upstream_tls_done(uconn_t *u, const char *failure)
{
    gw_wb_t *wb = &u->hw->wb;
    gw_wb_hold(wb);
    upstream_tls_done_held(u, failure);
    gw_wb_release(wb);
}

static void connect_timeout_held(uv_timer_t *t);

/* Runs connect_timeout_held under a hold of the writer (see hwrite.c). */
static void on_connect_timeout(uv_timer_t *t)
{
    gw_wb_t *wb = &((uconn_t *)t->data)->hw->wb;
    gw_wb_hold(wb);
    connect_timeout_held(t);
    gw_wb_release(wb);
}

static void connect_timeout_held(uv_timer_t *t)
{
    uconn_t *u = t->data;
    hx_t *x = u->x;
    if (x == NULL) {
        hp_uconn_close(u, false);
        return;
    }
    if (u->connected) { /* TCP is up: the TLS handshake stalled */
        hp_utls_conn_timed_out(u);
        snprintf(x->tls_end, sizeof x->tls_end, "upstream_tls_timeout");
        x->chain.end = x->tls_end;
        hp_attempt_failed(x->c, GW_HRETRY_CONNECT, UV_ETIMEDOUT,
                          "upstream TLS handshake timed out");
        return;
    }
    hp_attempt_failed(x->c, GW_HRETRY_CONNECT, UV_ETIMEDOUT, "upstream connect timed out");
}

static void upstream_connect(hconn_t *c, const gw_lb_member_t *m, gw_upool_t *pool);

/* Picks a backend for attempt x->attempt and attaches a connection to it. */
void hp_upstream_start(hconn_t *c)
{
    hp_worker_t *hw = c->hw;
    hx_t *x = c->x;
    const gw_http_target_t *t = &x->route->targets[x->chain.target];
    x->upstream = t->upstream_index;
    x->chain.upstream = t->upstream;
    if (x->chain.end == x->tls_end) /* a failed handshake of an earlier attempt */
        x->chain.end = NULL;
    x->backend_addr = gw_lb_pick_upstream(hw->hp->lb, hw->w, x->gsnap, x->upstream, &c->peer.sa,
                                          x->attempt, &x->pick);
    if (x->backend_addr == NULL) {
        hp_pick_release(hw, x); /* the pick pinned the table: give it back */
        if (x->tries > 0 || x->attempt > 0) {
            hp_answer(c, 502, "no backend answered", true);
            return;
        }
        hp_answer(c, 503, "no usable backend", false);
        return;
    }
    x->retry.picked = true;
    const gw_lb_member_t *m = gw_lb_tok_member(&x->pick);
    x->chain.backend = m->b->name;
    gw_upool_t *pool = pool_of(hw, m);
    /* An idle connection keeps reading: no epoll_ctl per request. After a stale pooled
     * connection (hretry.h policy 1) the retry opens a new one: when a backend restarts,
     * every connection in its pool is dead, and another would fail too. */
    gw_upool_entry_t *idle = x->retry.stale_retried ? NULL : gw_upool_take(pool);
    uconn_t *u = idle != NULL ? gw_upool_owner(idle, uconn_t, pe) : NULL;
    if (u != NULL) {
        u->x = x;
        x->u = u;
        x->retry.reused = true;
        x->pick.attempt_started_ns = 0; /* no connect: no gw_upstream_connect_seconds sample */
        gw_counter_inc(&hw->stats->upstream_reuses);
        upstream_ready(c);
        return;
    }
    x->retry.reused = false;
    x->pick.attempt_started_ns = gw_clock_mono_ns(&gw_clock_system);
    upstream_connect(c, m, pool);
}

/* No idle connection in POOL: a new one for C's exchange, connecting to M, the picked
 * member of the exchange's pinned generation (on_upstream_connect, or on_connect_timeout
 * first). */
static void upstream_connect(hconn_t *c, const gw_lb_member_t *m, gw_upool_t *pool)
{
    hp_worker_t *hw = c->hw;
    hx_t *x = c->x;
    uconn_t *u = calloc(1, sizeof *u);
    if (u == NULL) {
        hp_attempt_failed(c, GW_HRETRY_BROKEN, UV_ENOMEM, "out of memory");
        return;
    }
    u->hw = hw;
    /* An upstream with tls: its memory first (41 KB, charged to buffers.max_memory), so that
     * a refusal costs no socket. Our own shortage: 503, not retried (hretry.h). */
    const hp_gen_t *hg = x->gen->layers[4];
    int rc = hp_utls_conn_new(u, m, hp_utls_series(hg->utls, m->up->pos));
    if (rc != 0) {
        free(u);
        hp_attempt_failed(c, GW_HRETRY_BROKEN, rc,
                          rc == UV_ENOBUFS ? "no buffer memory for TLS (buffers.max_memory)"
                                           : "out of memory");
        return;
    }
    /* Held through the pinned generation's table, so the count is not 0 here (backend.h). */
    u->b = m->b;
    gw_backend_hold(u->b);
    u->pool = pool;
    const gw_http_upstream_cfg_t *kc = gw_http_upstream_cfg(m->up->cfg);
    u->max_requests = kc->max_requests;
    u->proxy_protocol = kc->proxy_protocol;
    gw_tcp_stream_init(&u->sock, hp_loop(hw), &hw->w->streams, on_upstream_read, u);
    u->s = &u->sock.s; /* until TLS wraps it (hp_utls_conn_start) */
    uv_timer_init(hp_loop(hw), &u->timer);
    u->timer.data = u;
    gw_wdest_init(&u->out, u->s, &upstream_ops);
    u->connect_req.data = u;
    u->next = hw->uconns;
    if (u->next != NULL)
        u->next->prev = u;
    hw->uconns = u;
    u->x = x;
    x->u = u;
    uv_tcp_nodelay(&u->sock.tcp, 1);
    rc = uv_tcp_connect(&u->connect_req, &u->sock.tcp,
                        (const struct sockaddr *)&x->backend_addr->ss, on_upstream_connect);
    if (rc != 0) {
        hp_attempt_failed(c, GW_HRETRY_CONNECT, rc, "upstream connect failed");
        return;
    }
    uv_timer_start(&u->timer, on_connect_timeout, x->gl->cfg->connect_timeout_ms, 0);
}

/* Feeds upstream bytes of CH to the response parser, until it needs more. */
static void upstream_process(uconn_t *u, gw_chunk_t *ch)
{
    size_t off = 0;
    for (;;) {
        hx_t *x = u->x;
        if (x == NULL || u->closing) {
            if (off < ch->len && !u->closing) /* bytes after the response: not reusable */
                hp_uconn_close(u, true);
            return;
        }
        hconn_t *c = x->c;
        gw_h1_event_t ev;
        int r = gw_h1_feed(&x->sp, ch->data + off, ch->len - off, &ev);
        off += ev.used;
        x->retry.resp_bytes = x->retry.resp_bytes || ev.used > 0;
        if (r == GW_EINVAL) {
            const gw_h1_error_t *e = gw_h1_error(&x->sp);
            if (x->rs == RS_NONE) {
                hp_attempt_failed(c, GW_HRETRY_BROKEN, UV_EPROTO, e->reason);
                return;
            }
            x->chain.end = "upstream_bad_body";
            hp_client_close(c, true);
            return;
        }
        if (r == 0)
            return; /* all consumed; what it produced leaves when the read is done */
        if (r == GW_H1_HEAD && x->sp.head.status == 101) {
            hp_tunnel_start(c, ch, off); /* a tunnel (the bytes after the head go first), or 502 */
            return;
        }
        if (r == GW_H1_HEAD) {
            hp_on_response_head(c);
        } else if (r == GW_H1_DATA) {
            hp_response_data(c, ch, ev.data, ev.len);
        } else if (r == GW_H1_END) {
            unsigned st = x->sp.head.status;
            if (st >= 100 && st < 200) {
                if (gw_h1_next(&x->sp) != 0) {
                    hp_attempt_failed(c, GW_HRETRY_BROKEN, UV_EPROTO, "bad interim response");
                    return;
                }
                continue;
            }
            if (off < ch->len) /* bytes after a complete response: not reusable */
                x->end.upstream_close = true;
            hp_response_end(c);
            return;
        }
    }
}

static void upstream_read_held(gw_stream_t *s, gw_chunk_t *ch, ssize_t nread);

/* Runs upstream_read_held under a hold of the writer (see hwrite.c). */
static void on_upstream_read(gw_stream_t *s, gw_chunk_t *ch, ssize_t nread)
{
    gw_wb_t *wb = &((uconn_t *)s->data)->hw->wb;
    gw_wb_hold(wb);
    upstream_read_held(s, ch, nread);
    gw_wb_release(wb);
}

static void upstream_read_held(gw_stream_t *s, gw_chunk_t *ch, ssize_t nread)
{
    uconn_t *u = s->data;
    hp_worker_t *hw = u->hw;
    if (nread > 0) {
        upstream_process(u, ch);
        gw_chunk_unref(&hw->w->bufs, ch);
        return;
    }
    hx_t *x = u->x;
    if (x == NULL) { /* pooled (or left over): its close ends it */
        hp_uconn_close(u, false);
        return;
    }
    hconn_t *c = x->c;
    /* Over TLS, an EOF without close_notify may be an attacker's cut: a body that only the
     * connection's end delimits is then not known to be whole (RFC 5246 7.2.1). */
    bool truncated = nread == UV_EOF && hp_utls_truncated(u);
    if (nread == UV_EOF && x->rs != RS_NONE && !truncated && gw_h1_finish(&x->sp) == GW_H1_END) {
        x->end.upstream_close = true;
        hp_uconn_detach(u);
        hp_uconn_close(u, false);
        hp_response_end(c);
        return;
    }
    if (x->rs == RS_NONE) {
        hp_attempt_failed(c, GW_HRETRY_BROKEN, (int)nread,
                          nread == UV_EOF ? "upstream closed the connection" : "upstream reset");
        return;
    }
    /* Cut in the middle of the response body: the client cannot be told but by a close. */
    x->retry.backend_failed = true;
    x->chain.upstream_failed = true;
    x->chain.end = truncated         ? "upstream_tls_truncated"
                   : nread == UV_EOF ? "upstream_eof"
                                     : "upstream_reset";
    hp_client_close(c, true);
}

/* A write to the upstream failed, at once or later: before any response byte the attempt
 * failed (maybe retried); after, the body was cut and the connection is not reused. */
static void upstream_failed_write(uconn_t *u, int status)
{
    if (u->closing)
        return;
    hx_t *x = u->x;
    if (x == NULL) {
        hp_uconn_close(u, true);
        return;
    }
    if (x->rs == RS_NONE && !x->retry.resp_bytes) {
        hp_attempt_failed(x->c, GW_HRETRY_BROKEN, status, "cannot write to the upstream");
        return;
    }
    x->retry.body_started = true;
    x->end.upstream_close = true;
}

static void upstream_written(uconn_t *u, int status)
{
    if (u->closing || u->x == NULL)
        return;
    if (status < 0) {
        upstream_failed_write(u, status);
        return;
    }
    hx_t *x = u->x;
    if (x->req_paused && u->out.queued < hp_low_water(u->hw)) {
        x->req_paused = false;
        hp_client_process(x->c);
    }
}

static void upstream_on_written(gw_wdest_t *d, int status)
{
    uconn_t *u = CONTAINER(d, uconn_t, out);
    gw_wb_t *wb = &u->hw->wb;
    gw_wb_hold(wb);
    upstream_written(u, status);
    gw_wb_release(wb);
}

static void upstream_on_error(gw_wdest_t *d, int status)
{
    upstream_failed_write(CONTAINER(d, uconn_t, out), status);
}

static const gw_wdest_ops_t upstream_ops = {upstream_on_written, upstream_on_error};
