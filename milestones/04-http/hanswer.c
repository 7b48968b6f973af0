/* hanswer.c - local answers: the responses the gateway writes itself (hproxy.c has the
 * tour).
 *
 * Owns: the head and small JSON body of an answer (404 no route, 413, 502 after the
 * retries, a middleware's 401 or 429...), its request id, and whether the connection stays
 * open after it: it closes when the request's body was not read, the client asked, or the
 * process is draining; it stays for keep-alive otherwise, the rest of the body read and
 * dropped.
 *
 * Does not own: deciding to answer (the exchange, the middleware, the retry decision), or
 * the lingering close after it (hclient.c). */
#include "04-http/hproxy-int.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "httpd.h"

/* ---- local answers ------------------------------------------------------------------------ */

/* The reason phrase for status S (common/httpd.c keeps the table). */
static const char *status_text(unsigned s)
{
    return gw_httpd_reason((int)s);
}

bool hp_draining(const hconn_t *c)
{
    /* The process drains, or a reload removed this connection's listener: either way the
     * exchange in progress finishes with Connection: close and no next one starts. */
    return atomic_load_explicit(&c->hw->w->rt->draining, memory_order_relaxed) ||
           atomic_load_explicit(&c->l->removed, memory_order_relaxed);
}

/* Sets x->local's status line: STATUS, unless the middleware chose one (then its reason
 * phrase if it gave none). Returns the status that goes out. */
static unsigned local_status(hx_t *x, unsigned status)
{
    if (x->local.status == 0)
        gw_h1_head_set_status(&x->local, status, status_text(status), strlen(status_text(status)));
    else if (gw_h1_head_reason(&x->local).len == 0) {
        const char *t = status_text(x->local.status);
        gw_h1_head_set_status(&x->local, x->local.status, t, strlen(t));
    }
    status = x->local.status;
    if (status >= 400)
        (void)gw_hx_request_id(&x->chain); /* the one the log line will show (chain.h) */
    return status;
}

/* The JSON body of an answer with STATUS into BODY (CAP bytes): the status, REASON (or the
 * status's reason phrase) and the request id. Returns its length, 0 for none (a status
 * without a body, or one that does not fit). */
static int local_body(const hx_t *x, unsigned status, const char *reason, char *body, size_t cap)
{
    int blen = 0;
    if (status != 204 && status != 304 && status >= 200) {
        blen = snprintf(body, cap, "{\"status\":%u,\"error\":\"%s\",\"request_id\":\"%s\"}\n",
                        status, reason != NULL ? reason : status_text(status), x->chain.request_id);
        if (blen < 0 || (size_t)blen >= cap)
            blen = 0;
    }
    return blen;
}

/* The fields of x->local for an answer with STATUS and a body of BLEN bytes: HTTP/1.1, the
 * middleware's response hooks, the request id, the body's type and length. */
static void local_fields(hconn_t *c, hx_t *x, unsigned status, int blen)
{
    gw_h1_head_t *h = &x->local;
    h->version_minor = 1;
    gw_chain_response(hp_chain(c), &x->chain, &x->rp.head, h);
    if (x->chain.request_id[0] != '\0' && !gw_h1_head_get(h, "x-request-id", NULL))
        gw_h1_head_set(h, "X-Request-ID", x->chain.request_id, strlen(x->chain.request_id));
    if (blen > 0)
        gw_h1_head_set(h, "Content-Type", "application/json", 16);
    char len[24];
    int ll = snprintf(len, sizeof len, "%d", blen);
    if (status != 204 && status != 304)
        gw_h1_head_set(h, "Content-Length", len, (size_t)ll);
}

/* Sends the local response head X->local (status already set, middleware fields in it)
 * with a JSON body naming the status, REASON and the request id; CLOSE ends the
 * connection after it (always after a parse error: the stream's framing is lost). */
void hp_send_local(hconn_t *c, unsigned status, const char *reason, bool close)
{
    hp_worker_t *hw = c->hw;
    hx_t *x = c->x;
    if (x->rs != RS_NONE) { /* a response already started: all we can do is cut it */
        hp_client_close(c, true);
        return;
    }
    gw_counter_add(&hw->stats->local_errors, status >= 400);
    status = local_status(x, status);
    char body[512];
    int blen = local_body(x, status, reason, body, sizeof body);
    gw_h1_head_t *h = &x->local;
    local_fields(c, x, status, blen);
    /* A body the client announced but we have not read (it may be waiting for a 100
     * Continue that will never come) leaves the stream's framing unknown: close. */
    close = close || !x->end.client_keep || hp_draining(c) ||
            (x->rq == RQ_WAIT_UPSTREAM && x->req_body != GW_H1_BODY_NONE) ||
            (x->rq == RQ_BODY && !x->end.error_sent);
    if (close)
        gw_h1_head_set(h, "Connection", "close", 5);
    else if (x->client_minor == 0)
        gw_h1_head_set(h, "Connection", "keep-alive", 10);
    x->chain.status = status;
    hp_count_status(hw, status);
    if (x->rq != RQ_DONE && !close) /* the exchange ends later, with the request body */
        hp_meter_request(c, gw_clock_mono_ns(&gw_clock_system));
    x->end.error_sent = true;
    x->rs = RS_DONE;
    x->end.close_after = close;
    x->bytes_out += hp_out_head(hw, &c->out, h, x->head_method ? NULL : body,
                                x->head_method ? 0 : (size_t)blen);
    if (close) {
        hp_client_linger(c);
        return;
    }
    /* Keep-alive after a local answer: the request (and any body) must be fully read
     * before the next one; a body we did not forward is read and dropped. */
    if (x->rq == RQ_DONE)
        hp_exchange_done(c);
    else if (x->rq == RQ_HEAD || x->rq == RQ_WAIT_UPSTREAM) {
        x->rq = RQ_BODY; /* discard the body as it comes */
        hp_client_process(c);
    }
}

/* A local answer for the exchange's request. */
void hp_answer(hconn_t *c, unsigned status, const char *reason, bool close)
{
    hx_t *x = c->x;
    gw_h1_head_clear(&x->local);
    hp_send_local(c, status, reason, close);
}
