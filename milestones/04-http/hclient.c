/* hclient.c - the client connection of the HTTP engine (hproxy.c has the tour).
 *
 * Owns: what happens on a client socket. Reads go on and off with the exchange's needs
 * (bytes held for later, body backpressure, a half-close) and with the client's own queue
 * (hp_client_backlogged: a client that does not read its answers gets no new request
 * read); what is read is fed to the request parser (hp_client_process) and handed to the
 * exchange; the client's write completions resume the upstream's reads; a connection
 * closes, or lingers after an error answer so the answer is not destroyed by a reset.
 *
 * Does not own: what a request means (hexchange.c), the answer itself (hanswer.c), where
 * a connection waits between requests (the idle lists, hproxy.c). */
#include "04-http/hproxy-int.h"

#include <stdlib.h>

#include "error.h"

#define LINGER_MS 2000 /* after an error answer: read and discard this long before closing */

/* ---- closing a client connection ---------------------------------------------------------- */

static void client_free(hconn_t *c)
{
    hp_worker_t *hw = c->hw;
    if (c->admitted)
        gw_listener_leave(c->l);
    gw_listener_drop(c->l);
    hp_tls_conn_free(c);
    hp_pp_conn_free(c);
    gw_worker_t *w = hw->w;
    free(c);
    gw_worker_conn_done(w); /* last: it may finish the worker */
}

static void on_client_closed(gw_stream_t *s)
{
    hconn_t *c = s->data;
    if (--c->pending_closes == 0)
        client_free(c);
}

void hp_client_close(hconn_t *c, bool reset)
{
    if (c->closing)
        return;
    c->closing = true;
    c->state = C_CLOSING;
    hp_list_unlink(c);
    hp_worker_t *hw = c->hw;
    if (c->x != NULL) {
        /* Cut mid-response with no other reason given: the client went away. */
        if (c->x->rs == RS_HEAD_SENT && c->x->chain.end == NULL)
            c->x->chain.end = "client_gone";
        hp_exchange_settle(c, true);
        hp_hx_put(hw, c->x);
        c->x = NULL;
    }
    gw_wb_drop(&hw->wb, &c->out);
    c->pending_closes++;
    gw_stream_close(c->s, reset, on_client_closed);
}

static void on_client_shutdown(gw_stream_shutdown_t *req, int status)
{
    hconn_t *c = req->stream->data;
    free(req);
    if (c->closing)
        return;
    if (status < 0 || c->state != C_LINGER) {
        hp_client_close(c, status < 0);
        return;
    }
}

/* The answer is queued: send FIN after it, then read and discard what the client still
 * sends for a while, so that our answer is not destroyed by a reset the kernel would send
 * if we closed with unread input (nginx's lingering close). */
void hp_client_linger(hconn_t *c)
{
    if (c->closing || c->state == C_LINGER)
        return;
    hp_worker_t *hw = c->hw;
    hx_t *x = c->x;
    if (x != NULL) {
        hp_exchange_settle(c, true);
        if (x->rbuf != NULL) {
            gw_chunk_unref(&hw->w->bufs, x->rbuf);
            x->rbuf = NULL;
        }
    } else {
        hp_client_close(c, false);
        return;
    }
    c->state = C_LINGER;
    gw_wb_flush(&hw->wb); /* the answer leaves before the FIN */
    gw_stream_shutdown_t *req = malloc(sizeof *req);
    if (req == NULL || gw_stream_shutdown(req, c->s, on_client_shutdown) != 0) {
        free(req);
        hp_client_close(c, true);
        return;
    }
    hp_hx_timer_start(x, T_LINGER, LINGER_MS);
    hp_client_set_reading(c, true);
}

/* ---- client reads --------------------------------------------------------------------------- */

void hp_client_set_reading(hconn_t *c, bool on)
{
    if (c->closing || c->reading == on)
        return;
    c->reading = on;
    if (!on) {
        gw_stream_read_stop(c->s);
        return;
    }
    if (gw_stream_read_start(c->s) != 0)
        hp_client_close(c, true);
}

/* Reading is on unless the exchange holds bytes it cannot take yet (they wait in x->rbuf,
 * and the kernel keeps the rest), the request body is paused for backpressure, or the
 * client half-closed. Starting and stopping a read costs epoll_ctl calls, so a client that
 * sends one request at a time never toggles it: a byte that arrives early (a pipelined
 * request, a body before its upstream is ready) is held and only then are reads stopped. */
void hp_client_update_reading(hconn_t *c)
{
    hx_t *x = c->x;
    bool on = !c->closing;
    if (on && c->out_paused && c->state != C_LINGER && (x == NULL || x->rq == RQ_HEAD))
        on = false; /* the client is not reading its answers: read no new request */
    if (on && x != NULL && c->state == C_ACTIVE) {
        bool held = x->rbuf != NULL && x->rbuf->off < x->rbuf->len;
        on = !held && !(x->rq == RQ_BODY && x->req_paused) && !x->client_eof;
    }
    hp_client_set_reading(c, on);
}

/* Whether the client's queue is past high_water (answers it has not read, counted at what
 * they keep in memory: wbatch.h). Then no request is read or started until the queue falls
 * below low_water (client_written): a client that pipelines requests and never reads would
 * otherwise make the gateway queue answers without limit. */
bool hp_client_backlogged(hconn_t *c)
{
    if (!c->out_paused && gw_wb_pending(&c->hw->wb, &c->out) > hp_high_water(c->hw))
        c->out_paused = true;
    return c->out_paused;
}

/* Parses what waits in x->rbuf as far as the exchange allows. An event may end the
 * exchange, start the next one or close the connection, so every turn looks again. Not
 * re-entered: a nested call (say, from a pooled upstream that was ready at once) returns,
 * and the outer loop goes on with the new state. */
void hp_client_process(hconn_t *c)
{
    if (c->in_process)
        return;
    c->in_process = true;
    while (!c->closing && c->x != NULL && c->state == C_ACTIVE) {
        hx_t *x = c->x;
        /* A request waiting for its upstream, or complete: its next bytes wait. */
        if (x->rq == RQ_WAIT_UPSTREAM || x->rq == RQ_DONE)
            break;
        if (x->rq == RQ_BODY && x->req_paused)
            break;
        if (x->rq == RQ_HEAD && hp_client_backlogged(c)) {
            /* Its silence is timed as a stalled response's (idle_timeout), not as a slow
             * head's: it is the client that does not read. */
            x->last_active = uv_now(hp_loop(c->hw));
            hp_hx_timer_start(x, T_STREAM, c->l->cfg->idle_timeout_ms);
            break;
        }
        gw_chunk_t *ch = x->rbuf;
        const char *data = ch != NULL ? ch->data + ch->off : "";
        size_t len = ch != NULL ? ch->len - ch->off : 0;
        gw_h1_event_t ev;
        int r = gw_h1_feed(&x->rp, data, len, &ev);
        if (ch != NULL)
            ch->off += (uint32_t)ev.used;
        x->bytes_in += ev.used;
        if (r == GW_EINVAL) {
            const gw_h1_error_t *e = gw_h1_error(&x->rp);
            if (x->rs == RS_NONE) {
                x->rq = RQ_DONE;
                hp_answer(c, (unsigned)e->status, e->reason, true);
            } else {
                hp_client_close(c, true);
            }
            break;
        }
        if (r == 0)
            break; /* everything was consumed: more bytes are needed */
        if (ch != NULL)
            gw_chunk_ref(ch); /* the exchange may give the buffer away meanwhile */
        if (r == GW_H1_HEAD)
            hp_on_request_head(c);
        else if (r == GW_H1_DATA)
            hp_request_data(c, ch, ev.data, ev.len);
        else if (r == GW_H1_END)
            hp_request_end(c);
        if (ch != NULL)
            gw_chunk_unref(&c->hw->w->bufs, ch);
    }
    c->in_process = false;
    hx_t *x = c->x;
    if (x != NULL && x->rbuf != NULL && x->rbuf->off >= x->rbuf->len) {
        gw_chunk_unref(&c->hw->w->bufs, x->rbuf);
        x->rbuf = NULL;
    }
    hp_client_update_reading(c);
}

static void client_read_held(gw_stream_t *s, gw_chunk_t *ch, ssize_t nread);

/* Runs client_read_held under a hold of the writer (see hwrite.c). */
void hp_on_client_read(gw_stream_t *s, gw_chunk_t *ch, ssize_t nread)
{
    gw_wb_t *wb = &((hconn_t *)s->data)->hw->wb;
    gw_wb_hold(wb);
    client_read_held(s, ch, nread);
    gw_wb_release(wb);
}

/* CH holds NREAD bytes with the reader's reference, or NREAD is UV_EOF or an error (the
 * stream waits by itself when the buffer pool is empty). */
static void client_read_held(gw_stream_t *s, gw_chunk_t *ch, ssize_t nread)
{
    hconn_t *c = s->data;
    hp_worker_t *hw = c->hw;
    if (nread < 0) {
        /* EOF or error. Lingering: done. Idle: a clean close. Mid-request: abort. */
        if (c->state == C_LINGER || c->x == NULL || nread != UV_EOF) {
            hp_client_close(c, nread != UV_EOF);
            return;
        }
        hx_t *x = c->x;
        if (x->rq == RQ_HEAD && x->rp.state == GW_H1_ST_HEAD && x->bytes_in == 0) {
            hp_client_close(c, false);
            return;
        }
        if (x->rq == RQ_DONE && x->rs == RS_NONE) {
            /* The client left before any answer: abort the exchange (499), which closes its
             * upstream connection, instead of holding a backend for nobody. (A tcp listener
             * forwards the half-close instead; an http client that wants its answer keeps its
             * side open, as every browser and library does.) */
            hp_client_close(c, false);
            return;
        }
        if (x->rq == RQ_DONE && x->rs != RS_DONE) {
            /* The client half-closed while its answer streams: finish it, then close. */
            x->end.client_keep = false;
            x->client_eof = true;
            hp_client_update_reading(c);
            return;
        }
        hp_client_close(c, false);
        return;
    }
    if (c->state == C_LINGER) {
        gw_chunk_unref(&hw->w->bufs, ch);
        return;
    }
    if (c->x == NULL) { /* the first byte of a request: the exchange state comes now */
        c->x = hp_hx_get(c);
        if (c->x == NULL) {
            gw_chunk_unref(&hw->w->bufs, ch);
            hp_client_close(c, true);
            return;
        }
        c->state = C_ACTIVE;
        hp_list_busy(c);
        hp_hx_timer_start(c->x, T_HEAD, hp_lcfg(c)->head_timeout_ms);
    }
    hx_t *x = c->x;
    if (x->rbuf != NULL) { /* cannot happen: reads stop while bytes wait */
        gw_chunk_unref(&hw->w->bufs, ch);
        hp_client_close(c, true);
        return;
    }
    x->rbuf = ch; /* the reader's reference moves to the exchange */
    hp_client_process(c);
}

/* ---- write completions ------------------------------------------------------------------------
 */

/* A write to the client completed. Below low_water, what waited for the client to read
 * moves again: the upstream's response, and the next pipelined request (hp_client_process). */
static void client_written(hconn_t *c, int status)
{
    if (c->closing)
        return;
    if (status < 0) {
        hp_client_close(c, true);
        return;
    }
    hx_t *x = c->x;
    if (x != NULL)
        x->last_active = uv_now(hp_loop(c->hw));
    if (c->out.queued >= hp_low_water(c->hw))
        return;
    if (x != NULL && x->u != NULL && x->u->paused) {
        x->u->paused = false;
        hp_upstream_set_reading(x->u, true);
    }
    if (c->out_paused) {
        c->out_paused = false;
        if (x != NULL && x->rq == RQ_HEAD)
            hp_hx_timer_start(x, T_HEAD, hp_lcfg(c)->head_timeout_ms);
        hp_client_process(c); /* it updates reading too */
    }
}

static void client_on_written(gw_wdest_t *d, int status)
{
    hconn_t *c = CONTAINER(d, hconn_t, out);
    gw_wb_t *wb = &c->hw->wb;
    gw_wb_hold(wb);
    client_written(c, status);
    gw_wb_release(wb);
}

/* A write to the client failed (reported at the end of the event): nothing more can reach
 * it. */
static void client_on_error(gw_wdest_t *d, int status)
{
    (void)status;
    hconn_t *c = CONTAINER(d, hconn_t, out);
    if (!c->closing)
        hp_client_close(c, true);
}

const gw_wdest_ops_t hp_client_ops = {client_on_written, client_on_error};
