/* hproxy.c - see hproxy.h.
 *
 * Three kinds of objects live on a worker:
 *
 *   hconn_t   a client connection. While it waits for a request it is only a socket and a
 *             place in an idle list (about 300 bytes): no buffer, no parser, no timer of its
 *             own. Idle connections of one listener wait in FIFO order, so one timer per
 *             list serves all of them (the first to expire is always at the front).
 *   hx_t      the state of one exchange (parser, heads, timer, middleware state), taken
 *             when a request's first byte arrives and given back (to a free list) when the
 *             response is complete and no pipelined bytes are waiting.
 *   uconn_t   an upstream connection: attached to one exchange, or idle in the pool of its
 *             backend (LIFO, so the surplus ages out), or closing.
 *
 * One exchange, step by step:
 *   request head ── normalise, route (404), body limit (413), strip hop-by-hop fields,
 *   middleware (local answers: 401, 429, CORS...) ── pick a backend (503 when none) ──
 *   take a pooled connection or connect (502 on failure, after retries) ── write the head,
 *   then stream the body, re-framed, with backpressure ── response head (504 if it does
 *   not come), strip, middleware, re-frame for the client ── stream the body ── both ends
 *   complete: the upstream connection goes back to its pool, the client's waits for the
 *   next request (or closes).
 *
 * Buffers: every read lands in a pool chunk (common/buf.h). Every byte sent goes through
 * the worker's writer (wbatch.h): what one event produces for one peer leaves in one
 * writev, large body spans straight from their read chunk (which counts its holders in
 * `owner`), small ones copied, and what waits in a queued write is charged to its peer at
 * what it keeps alive. Nothing ever holds a whole body (but a route's request_buffering,
 * reqbuf.h): when what is queued for one side passes buffers.high_water, reading the other
 * stops until it falls below low_water; and no request is read from a client whose own
 * queue is past high_water (client_backlogged), so a client that never reads its answers
 * costs a bounded amount whatever it sends.
 *
 * libuv rules (see tcp_proxy.c): memory of a handle is freed only in its close callback;
 * a stream's pending writes complete (cancelled) before its close callback runs. */
#include "hproxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "01-tcp/tcp_proxy.h"
#include "03-resilience/res.h"
#include "04-http/chain.h"
#include "04-http/h1.h"
#include "04-http/hretry.h"
#include "04-http/httpcfg.h"
#include "04-http/pathnorm.h"
#include "04-http/reqbuf.h"
#include "04-http/upool.h"
#include "04-http/wbatch.h"
#include "clock.h"
#include "error.h"
#include "httpd.h"
#include "log.h"
#include "rand.h"

#define LINGER_MS 2000     /* after an error answer: read and discard this long before closing */
#define HX_FREE_MAX 64     /* exchange states kept for reuse per worker */
#define HX_KEEP_BYTES 8192 /* ...each keeping head storage up to this much per head */
#define POOL_SWEEP_MS 100  /* upstream pools: surplus and idle timeouts are enforced this often */

typedef struct hp_s hp_t;
typedef struct hp_worker_s hp_worker_t;
typedef struct hconn_s hconn_t;
typedef struct hx_s hx_t;
typedef struct uconn_s uconn_t;

/* ---- per worker ---------------------------------------------------------------------------- */

/* Connections waiting with the same timeout, oldest first, and the one timer for them. */
typedef struct idle_list_s {
    hconn_t *head, *tail;
    uv_timer_t timer;
    uint64_t timeout_ms;
    hp_worker_t *hw;
} idle_list_t;

struct hp_worker_s {
    hp_t *hp;
    gw_worker_t *w;
    idle_list_t *fresh;     /* [nlisteners]: accepted, no byte yet (request_head_timeout) */
    idle_list_t *keepalive; /* [nlisteners]: between requests (keepalive_timeout) */
    gw_upool_t **pools;     /* [nupstreams][nbackends]: each backend's idle connections */
    hconn_t *busy;          /* connections with an exchange (for drain and force close) */
    uconn_t *uconns;        /* every upstream connection not yet closing */
    hx_t *hx_free;
    size_t nhx_free;
    gw_wb_t wb; /* the writer: every byte this worker sends goes through it */
    uint64_t rng;
    gw_http_stats_t *stats;
    uv_timer_t pool_timer; /* on_pool_sweep */
    gw_lograte_t err_log;
    bool started;
};

struct hp_s {
    const gw_config_t *cfg;
    gw_lb_t *lb;
    gw_chain_t *chain;
    hp_worker_t *workers; /* [cfg->workers] */
};

/* Set once by gw_http_prepare before any worker thread exists, read-only afterwards. */
static hp_t *g_hp;

/* ---- connections --------------------------------------------------------------------------- */

typedef enum {
    C_IDLE,    /* waiting for a request: no exchange state */
    C_ACTIVE,  /* an exchange is in progress */
    C_LINGER,  /* answered and shut down: discarding input until EOF or a timeout */
    C_CLOSING, /* closing */
} cstate_t;

struct hconn_s {
    gw_tcp_stream_t sock; /* common/stream.h: reads, writes, close; waits when out of buffers */
    hp_worker_t *hw;
    gw_listener_t *l;
    const gw_http_listener_cfg_t *lcfg;
    hx_t *x;              /* the exchange, or NULL when idle */
    hconn_t *prev, *next; /* an idle list, or hw->busy */
    idle_list_t *list;    /* the idle list holding it, NULL if in hw->busy */
    uint64_t idle_since;  /* loop ms when it joined its idle list */
    gw_wdest_t out;       /* what is queued for the client */
    cstate_t state;
    bool reading, admitted, closing, in_process;
    bool out_paused; /* the client's queue passed high_water: no reading, no next request */
    uint8_t pending_closes;
    /* The client's address: an IPv4 or IPv6 peer only (128 bytes of sockaddr_storage
     * would be a third of an idle connection). */
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } peer;
};

typedef enum {
    T_NONE,
    T_HEAD,     /* the request head must be complete: 408 */
    T_BODY,     /* client silent while its body streams: 408 (or close) */
    T_RESPONSE, /* upstream response head: 504 */
    T_STREAM,   /* response streaming: listener idle_timeout, then close */
    T_LINGER,   /* lingering close */
    T_RETRY,    /* backoff before another attempt */
} tkind_t;

/* Request progress. */
typedef enum { RQ_HEAD, RQ_WAIT_UPSTREAM, RQ_BODY, RQ_DONE } rqstate_t;
/* Response progress. */
typedef enum { RS_NONE, RS_HEAD_SENT, RS_DONE } rsstate_t;

struct hx_s {
    hx_t *next_free;
    hconn_t *c;
    bool inited; /* the parsers and heads below hold (reusable) storage */
    uv_timer_t timer;
    tkind_t tkind;
    uint64_t last_active; /* loop ms of the last byte moved, for the idle kinds */
    uint64_t deadline;    /* loop ms when the current kind's time is up */
    uint64_t armed_at;    /* loop ms the uv timer is set for, 0 when it is not running */
    gw_h1_parser_t rp;    /* request parser */
    gw_h1_parser_t sp;    /* response parser (used while an upstream is attached) */
    gw_h1_head_t local;   /* a locally generated response head */
    gw_hx_t chain;        /* what the middleware sees */
    gw_chunk_t *rbuf;     /* client bytes not yet parsed (pipelining), or NULL */
    uconn_t *u;           /* the attached upstream connection */
    gw_tcp_pick_t pick;
    const gw_addr_t *backend_addr;
    const gw_http_route_t *route;
    size_t upstream;  /* index of the target's upstream */
    unsigned attempt; /* connect attempt within the current pick sequence (02's retries) */
    unsigned tries;   /* attempts in all, for the retry middleware */
    rqstate_t rq;
    rsstate_t rs;
    uint8_t client_minor; /* the client's HTTP/1.x version: the head sent upstream says 1.1 */
    gw_reqbuf_t reqbuf;   /* the body, read before the pick (a route's request_buffering) */
    gw_chunk_t *rest_ch;  /* a body span that did not fit in reqbuf: sent right after it */
    const char *rest;
    size_t rest_len;
    uint64_t body_deadline; /* loop ms by which the request body must be in (0: none) */
    bool buffering;         /* body bytes go to reqbuf: no backend picked yet */
    bool buffered_all;      /* reqbuf holds the whole body: it can be sent again on a retry */
    gw_h1_body_t req_body, resp_body_in;
    bool req_chunked_out;  /* the request body goes upstream chunked */
    bool resp_chunked_out; /* the response body goes to the client chunked */
    bool resp_close_out;   /* the response body is delimited by closing the client */
    bool client_keep;      /* the client connection may persist after this exchange */
    bool head_method;
    bool idempotent;
    bool picked;
    bool upstream_reused;
    bool backend_failed; /* for the passive health report */
    bool retried_reuse;  /* the once-only retry after a reused connection died */
    bool body_started;   /* request body bytes went upstream: no retry */
    bool resp_bytes;     /* a response byte arrived from the upstream */
    bool exchange_open;  /* gw_chain_request ran: gw_chain_finish owed */
    bool req_paused;     /* client reads stopped for backpressure */
    bool close_after;    /* close the client connection when this response is written */
    bool error_sent;     /* a local error answer went out */
    bool client_eof;     /* the client half-closed after its request */
    bool drain_close;
    uint64_t bytes_in, bytes_out;
    char method[24]; /* the request method, NUL-terminated, for the router and retries */
};

struct uconn_s {
    gw_tcp_stream_t sock;
    uv_connect_t connect_req;
    uv_timer_t timer; /* connect timeout, idle timeout in the pool */
    hp_worker_t *hw;
    hx_t *x;                          /* attached exchange, or NULL */
    gw_upool_t *pool;                 /* the pool of its backend on this worker */
    gw_upool_entry_t pe;              /* its place in that pool while idle (upool.h) */
    const gw_http_upstream_cfg_t *kc; /* its upstream's keepalive settings */
    uconn_t *prev, *next;             /* hw->uconns */
    gw_wdest_t out;                   /* what is queued for the upstream */
    unsigned requests;                /* requests sent on it */
    bool connected, closing, paused, reading;
    uint8_t pending_closes;
};

static void client_process(hconn_t *c);
static void client_close(hconn_t *c, bool reset);
static void client_set_reading(hconn_t *c, bool on);
static void client_update_reading(hconn_t *c);
static void exchange_done(hconn_t *c);
static void upstream_start(hconn_t *c);
static void uconn_close(uconn_t *u, bool reset);
static void uconn_detach(uconn_t *u);
static void on_client_read(gw_stream_t *s, gw_chunk_t *ch, ssize_t nread);
static void on_upstream_read(gw_stream_t *s, gw_chunk_t *ch, ssize_t nread);
static void upstream_set_reading(uconn_t *u, bool on);
static void hx_timer_start(hx_t *x, tkind_t kind, uint64_t ms);
static const gw_wdest_ops_t client_ops, upstream_ops;

/* ---- small helpers --------------------------------------------------------------------------- */

static uv_loop_t *loop_of(hp_worker_t *hw)
{
    return &hw->w->loop;
}

/* ---- writes ---------------------------------------------------------------------------- */

/* Everything goes through the worker's writer (wbatch.h). Each libuv callback of this file
 * that can write runs inside gw_wb_hold .. gw_wb_release (the on_* wrappers), so what one event
 * produces for a peer leaves in one system call, and a write failure is handled at the end
 * of the event (client_on_error, upstream_on_error), never in the middle of other work. */

/* Room for N bytes for D: in the writer's scratch area (*HEAP false), or malloc'd for a head
 * bigger than that (*HEAP true: hand it to gw_wb_heap). NULL when D has failed (or now
 * fails: out of memory). */
static char *out_room(hp_worker_t *hw, gw_wdest_t *d, size_t n, bool *heap)
{
    char *p = gw_wb_reserve(&hw->wb, d, n);
    *heap = p == NULL;
    if (p != NULL || d->error != 0)
        return p;
    if ((p = malloc(n)) == NULL)
        gw_wb_fail(&hw->wb, d, UV_ENOMEM);
    return p;
}

/* Serialises head H followed by EXTRA (EXTRA_LEN bytes, may be NULL) for D. Returns the
 * bytes sent (0 when D has failed). */
static size_t out_head(hp_worker_t *hw, gw_wdest_t *d, const gw_h1_head_t *h, const char *extra,
                       size_t extra_len)
{
    size_t hs = gw_h1_head_size(h), need = hs + extra_len;
    bool heap;
    char *p = out_room(hw, d, need, &heap);
    if (p == NULL)
        return 0;
    long n = gw_h1_head_serialize(h, p, hs);
    if (n < 0) { /* cannot happen: the size came from the same head */
        if (heap)
            free(p);
        gw_wb_fail(&hw->wb, d, UV_EINVAL);
        return 0;
    }
    if (extra_len > 0)
        memcpy(p + n, extra, extra_len);
    if (heap)
        gw_wb_heap(&hw->wb, d, p, need);
    else
        gw_wb_commit(&hw->wb, need);
    return need;
}

/* Ends a chunked body for D: the last chunk, the trailer fields T (already checked by the
 * parser, written in canonical form), the blank line. Returns the bytes sent. */
static size_t out_last_chunk(hp_worker_t *hw, gw_wdest_t *d, const gw_h1_head_t *t)
{
    size_t need = 5;
    for (size_t i = 0; i < gw_h1_head_count(t); i++)
        need += gw_h1_head_name_at(t, i).len + gw_h1_head_value_at(t, i).len + 4;
    bool heap;
    char *p = out_room(hw, d, need, &heap);
    if (p == NULL)
        return 0;
    size_t o = 3;
    memcpy(p, "0\r\n", 3);
    for (size_t i = 0; i < gw_h1_head_count(t); i++) {
        gw_h1_span_t nm = gw_h1_head_name_at(t, i), v = gw_h1_head_value_at(t, i);
        memcpy(p + o, nm.ptr, nm.len);
        o += nm.len;
        memcpy(p + o, ": ", 2);
        o += 2;
        memcpy(p + o, v.ptr, v.len);
        o += v.len;
        memcpy(p + o, "\r\n", 2);
        o += 2;
    }
    memcpy(p + o, "\r\n", 2);
    o += 2;
    if (heap)
        gw_wb_heap(&hw->wb, d, p, o);
    else
        gw_wb_commit(&hw->wb, o);
    return o;
}

/* Body bytes DATA[0..N) of read chunk CH for D, framed as a chunk when CHUNKED. Returns the
 * bytes they take on the wire as a chunk of their own (for the access log's byte counts: the
 * writer may merge small chunks into one, so this is at most a few bytes over). */
static size_t out_body(hp_worker_t *hw, gw_wdest_t *d, gw_chunk_t *ch, const char *data, size_t n,
                       bool chunked)
{
    gw_wb_body(&hw->wb, d, ch, data, n, chunked);
    if (!chunked || n == 0)
        return n;
    size_t digits = 1;
    for (size_t v = n; v >= 16; v >>= 4)
        digits++;
    return n + digits + 4;
}

static size_t high_water(hp_worker_t *hw)
{
    return hw->hp->cfg->buffers.high_water;
}

static size_t low_water(hp_worker_t *hw)
{
    return hw->hp->cfg->buffers.low_water;
}

/* ---- idle lists ------------------------------------------------------------------------------ */

static void list_unlink(hconn_t *c)
{
    hconn_t **head, **tail = NULL;
    if (c->list != NULL) {
        head = &c->list->head;
        tail = &c->list->tail;
    } else {
        head = &c->hw->busy;
    }
    if (c->prev != NULL)
        c->prev->next = c->next;
    else if (*head == c)
        *head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    else if (tail != NULL && *tail == c)
        *tail = c->prev;
    c->prev = c->next = NULL;
    c->list = NULL;
}

static void on_idle_timer(uv_timer_t *t);

/* Arms IL's timer for its oldest connection's deadline (or stops it: empty list). */
static void idle_arm(idle_list_t *il)
{
    if (il->head == NULL) {
        uv_timer_stop(&il->timer);
        return;
    }
    uint64_t now = uv_now(loop_of(il->hw)), due = il->head->idle_since + il->timeout_ms;
    uv_timer_start(&il->timer, on_idle_timer, due > now ? due - now : 0, 0);
}

/* Puts C at the back of IL (its deadline is the latest). */
static void list_idle(hconn_t *c, idle_list_t *il)
{
    list_unlink(c);
    c->list = il;
    c->idle_since = uv_now(loop_of(c->hw));
    c->prev = il->tail;
    if (il->tail != NULL)
        il->tail->next = c;
    else
        il->head = c;
    il->tail = c;
    if (!uv_is_active((uv_handle_t *)&il->timer))
        idle_arm(il);
}

static void list_busy(hconn_t *c)
{
    list_unlink(c);
    c->next = c->hw->busy;
    if (c->next != NULL)
        c->next->prev = c;
    c->hw->busy = c;
}

/* One timer per idle list: closes every connection whose time is up, oldest first. */
static void on_idle_timer(uv_timer_t *t)
{
    idle_list_t *il = t->data;
    uint64_t now = uv_now(loop_of(il->hw));
    while (il->head != NULL && il->head->idle_since + il->timeout_ms <= now) {
        hconn_t *c = il->head;
        list_unlink(c);
        client_close(c, false);
    }
    idle_arm(il);
}

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

static hx_t *hx_get(hconn_t *c)
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
        uv_timer_init(loop_of(hw), &x->timer);
    }
    x->timer.data = x;
    x->c = c;
    gw_h1_limits_t lim;
    parser_limits(c->lcfg, &lim);
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
 * caller calls gw_h1_next for a pipelined request). */
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
    x->buffering = x->buffered_all = false;
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
    x->req_chunked_out = x->resp_chunked_out = x->resp_close_out = false;
    x->client_keep = x->head_method = x->idempotent = x->picked = false;
    x->upstream_reused = x->backend_failed = x->retried_reuse = x->body_started = false;
    x->resp_bytes = x->exchange_open = x->req_paused = x->close_after = false;
    x->error_sent = x->drain_close = x->client_eof = false;
    x->bytes_in = x->bytes_out = 0;
}

static void hx_free_storage(hx_t *x)
{
    if (!x->inited)
        return;
    gw_h1_parser_free(&x->rp);
    gw_h1_parser_free(&x->sp);
    gw_h1_head_free(&x->local);
    x->inited = false;
}

static void on_hx_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Gives X back; its timer handle survives in the free list (closed when the list is
 * trimmed or the worker stops). */
static void hx_put(hp_worker_t *hw, hx_t *x)
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
        hx_free_storage(x);
        x->timer.data = x;
        uv_close((uv_handle_t *)&x->timer, on_hx_timer_closed);
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
static void hx_timer_start(hx_t *x, tkind_t kind, uint64_t ms)
{
    uint64_t due = uv_now(loop_of(x->c->hw)) + ms;
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
static void body_timer_start(hx_t *x, uint64_t ms)
{
    if (x->body_deadline != 0) {
        uint64_t now = uv_now(loop_of(x->c->hw));
        uint64_t left = x->body_deadline > now ? x->body_deadline - now : 0;
        if (left < ms)
            ms = left;
    }
    hx_timer_start(x, T_BODY, ms);
}

/* ---- statistics ---------------------------------------------------------------------------- */

static void count_status(hp_worker_t *hw, unsigned status)
{
    gw_http_stats_t *s = hw->stats;
    if (status >= 500)
        gw_counter_inc(&s->responses_5xx);
    else if (status >= 400)
        gw_counter_inc(&s->responses_4xx);
    else if (status >= 300)
        gw_counter_inc(&s->responses_3xx);
    else if (status >= 200)
        gw_counter_inc(&s->responses_2xx);
}

/* ---- closing a client connection ---------------------------------------------------------- */

static void client_free(hconn_t *c)
{
    hp_worker_t *hw = c->hw;
    if (c->admitted)
        gw_listener_leave(c->l);
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

/* Gives back what the exchange's pick holds (02's active count, the snapshot reference),
 * reporting a backend failure if one was seen. */
static void pick_release(hp_worker_t *hw, hx_t *x)
{
    if (x->picked || x->pick.ref != NULL) {
        const gw_tcp_picker_t *p = (const gw_tcp_picker_t *)hw->hp->lb;
        p->report(p->ctx, hw->w, &x->pick,
                  x->backend_failed ? GW_TCP_CLOSED_BACKEND_ERROR : GW_TCP_CLOSED);
    }
    x->picked = false;
}

/* Ends the exchange's bookkeeping: an upstream connection still attached closes (with a
 * reset when ABORTED: the client went away mid-way), the pick is released, and the chain
 * records the exchange (499, nginx's "client closed the request", if nothing was sent). */
static void exchange_settle(hconn_t *c, bool aborted)
{
    hx_t *x = c->x;
    if (x == NULL)
        return;
    hp_worker_t *hw = c->hw;
    if (x->u != NULL) {
        uconn_t *u = x->u;
        uconn_detach(u);
        uconn_close(u, aborted);
    }
    pick_release(hw, x);
    if (x->exchange_open) {
        x->chain.bytes_in = x->bytes_in;
        x->chain.bytes_out = x->bytes_out;
        if (x->chain.status == 0)
            x->chain.status = 499;
        gw_chain_finish(hw->hp->chain, &x->chain, gw_clock_mono_ns(&gw_clock_system));
        x->exchange_open = false;
    }
}

static void client_close(hconn_t *c, bool reset)
{
    if (c->closing)
        return;
    c->closing = true;
    c->state = C_CLOSING;
    list_unlink(c);
    hp_worker_t *hw = c->hw;
    if (c->x != NULL) {
        /* Cut mid-response with no other reason given: the client went away. */
        if (c->x->rs == RS_HEAD_SENT && c->x->chain.end == NULL)
            c->x->chain.end = "client_gone";
        exchange_settle(c, true);
        hx_put(hw, c->x);
        c->x = NULL;
    }
    gw_wb_drop(&hw->wb, &c->out);
    c->pending_closes++;
    gw_stream_close(&c->sock.s, reset, on_client_closed);
}

static void on_client_shutdown(gw_stream_shutdown_t *req, int status)
{
    hconn_t *c = req->stream->data;
    free(req);
    if (c->closing)
        return;
    if (status < 0 || c->state != C_LINGER) {
        client_close(c, status < 0);
        return;
    }
}

/* The answer is queued: send FIN after it, then read and discard what the client still
 * sends for a while, so that our answer is not destroyed by a reset the kernel would send
 * if we closed with unread input (nginx's lingering close). */
static void client_linger(hconn_t *c)
{
    if (c->closing || c->state == C_LINGER)
        return;
    hp_worker_t *hw = c->hw;
    hx_t *x = c->x;
    if (x != NULL) {
        exchange_settle(c, true);
        if (x->rbuf != NULL) {
            gw_chunk_unref(&hw->w->bufs, x->rbuf);
            x->rbuf = NULL;
        }
    } else {
        client_close(c, false);
        return;
    }
    c->state = C_LINGER;
    gw_wb_flush(&hw->wb); /* the answer leaves before the FIN */
    gw_stream_shutdown_t *req = malloc(sizeof *req);
    if (req == NULL || gw_stream_shutdown(req, &c->sock.s, on_client_shutdown) != 0) {
        free(req);
        client_close(c, true);
        return;
    }
    hx_timer_start(x, T_LINGER, LINGER_MS);
    client_set_reading(c, true);
}

/* ---- client reads --------------------------------------------------------------------------- */

static void client_set_reading(hconn_t *c, bool on)
{
    if (c->closing || c->reading == on)
        return;
    c->reading = on;
    if (!on) {
        gw_stream_read_stop(&c->sock.s);
        return;
    }
    if (gw_stream_read_start(&c->sock.s) != 0)
        client_close(c, true);
}

/* Reading is on unless the exchange holds bytes it cannot take yet (they wait in x->rbuf,
 * and the kernel keeps the rest), the request body is paused for backpressure, or the
 * client half-closed. Starting and stopping a read costs epoll_ctl calls, so a client that
 * sends one request at a time never toggles it: a byte that arrives early (a pipelined
 * request, a body before its upstream is ready) is held and only then are reads stopped. */
static void client_update_reading(hconn_t *c)
{
    hx_t *x = c->x;
    bool on = !c->closing;
    if (on && c->out_paused && c->state != C_LINGER && (x == NULL || x->rq == RQ_HEAD))
        on = false; /* the client is not reading its answers: read no new request */
    if (on && x != NULL && c->state == C_ACTIVE) {
        bool held = x->rbuf != NULL && x->rbuf->off < x->rbuf->len;
        on = !held && !(x->rq == RQ_BODY && x->req_paused) && !x->client_eof;
    }
    client_set_reading(c, on);
}

/* Whether the client's queue is past high_water (answers it has not read, counted at what
 * they keep in memory: wbatch.h). Then no request is read or started until the queue falls
 * below low_water (client_written): a client that pipelines requests and never reads would
 * otherwise make the gateway queue answers without limit. */
static bool client_backlogged(hconn_t *c)
{
    if (!c->out_paused && gw_wb_pending(&c->hw->wb, &c->out) > high_water(c->hw))
        c->out_paused = true;
    return c->out_paused;
}

/* ---- local answers ------------------------------------------------------------------------ */

/* The reason phrase for status S (common/httpd.c keeps the table). */
static const char *status_text(unsigned s)
{
    return gw_httpd_reason((int)s);
}

/* Makes sure the exchange has a request id to report (the middleware's, or a fresh one). */
static void ensure_request_id(hp_worker_t *hw, hx_t *x)
{
    if (x->chain.request_id[0] != '\0')
        return;
    uint64_t a = gw_rand_next(&hw->rng), b = gw_rand_next(&hw->rng);
    snprintf(x->chain.request_id, sizeof x->chain.request_id, "%016llx%016llx",
             (unsigned long long)a, (unsigned long long)b);
}

static bool draining(const hconn_t *c)
{
    return atomic_load_explicit(&c->hw->w->rt->draining, memory_order_relaxed);
}

/* Sends the local response head X->local (status already set, middleware fields in it)
 * with a JSON body naming the status, REASON and the request id; CLOSE ends the
 * connection after it (always after a parse error: the stream's framing is lost). */
static void send_local(hconn_t *c, unsigned status, const char *reason, bool close)
{
    hp_worker_t *hw = c->hw;
    hx_t *x = c->x;
    if (x->rs != RS_NONE) { /* a response already started: all we can do is cut it */
        client_close(c, true);
        return;
    }
    gw_counter_add(&hw->stats->local_errors, status >= 400);
    if (x->local.status == 0)
        gw_h1_head_set_status(&x->local, status, status_text(status), strlen(status_text(status)));
    else if (gw_h1_head_reason(&x->local).len == 0) {
        const char *t = status_text(x->local.status);
        gw_h1_head_set_status(&x->local, x->local.status, t, strlen(t));
    }
    status = x->local.status;
    if (status >= 400)
        ensure_request_id(hw, x);
    char body[512];
    int blen = 0;
    if (status != 204 && status != 304 && status >= 200) {
        blen =
            snprintf(body, sizeof body, "{\"status\":%u,\"error\":\"%s\",\"request_id\":\"%s\"}\n",
                     status, reason != NULL ? reason : status_text(status), x->chain.request_id);
        if (blen < 0 || (size_t)blen >= sizeof body)
            blen = 0;
    }
    gw_h1_head_t *h = &x->local;
    h->version_minor = 1;
    gw_chain_response(hw->hp->chain, &x->chain, &x->rp.head, h);
    if (x->chain.request_id[0] != '\0' && !gw_h1_head_get(h, "x-request-id", NULL))
        gw_h1_head_set(h, "X-Request-ID", x->chain.request_id, strlen(x->chain.request_id));
    if (blen > 0)
        gw_h1_head_set(h, "Content-Type", "application/json", 16);
    char len[24];
    int ll = snprintf(len, sizeof len, "%d", blen);
    if (status != 204 && status != 304)
        gw_h1_head_set(h, "Content-Length", len, (size_t)ll);
    /* A body the client announced but we have not read (it may be waiting for a 100
     * Continue that will never come) leaves the stream's framing unknown: close. */
    close = close || !x->client_keep || draining(c) ||
            (x->rq == RQ_WAIT_UPSTREAM && x->req_body != GW_H1_BODY_NONE) ||
            (x->rq == RQ_BODY && !x->error_sent);
    if (close)
        gw_h1_head_set(h, "Connection", "close", 5);
    else if (x->client_minor == 0)
        gw_h1_head_set(h, "Connection", "keep-alive", 10);
    x->chain.status = status;
    count_status(hw, status);
    x->error_sent = true;
    x->rs = RS_DONE;
    x->close_after = close;
    x->bytes_out +=
        out_head(hw, &c->out, h, x->head_method ? NULL : body, x->head_method ? 0 : (size_t)blen);
    if (close) {
        client_linger(c);
        return;
    }
    /* Keep-alive after a local answer: the request (and any body) must be fully read
     * before the next one; a body we did not forward is read and dropped. */
    if (x->rq == RQ_DONE)
        exchange_done(c);
    else if (x->rq == RQ_HEAD || x->rq == RQ_WAIT_UPSTREAM) {
        x->rq = RQ_BODY; /* discard the body as it comes */
        client_process(c);
    }
}

/* A local answer for the exchange's request. */
static void answer(hconn_t *c, unsigned status, const char *reason, bool close)
{
    hx_t *x = c->x;
    gw_h1_head_clear(&x->local);
    send_local(c, status, reason, close);
}

/* ---- upstream connections ------------------------------------------------------------------ */

static void uconn_closed_one(uconn_t *u)
{
    if (--u->pending_closes == 0)
        free(u);
}

static void on_uconn_closed(uv_handle_t *h)
{
    uconn_closed_one(h->data);
}

static void on_uconn_stream_closed(gw_stream_t *s)
{
    uconn_closed_one(s->data);
}

static void uconn_close(uconn_t *u, bool reset)
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
    gw_stream_close(&u->sock.s, reset && u->connected, on_uconn_stream_closed);
    uv_close((uv_handle_t *)&u->timer, on_uconn_closed);
}

/* Cuts the link between U and its exchange. */
static void uconn_detach(uconn_t *u)
{
    if (u->x != NULL) {
        u->x->u = NULL;
        u->x = NULL;
    }
}

static gw_upool_t *pool_of(hp_worker_t *hw, const gw_backend_t *b)
{
    const gw_lb_upstream_t *lu = b->upstream;
    size_t ui = (size_t)(lu->cfg - hw->hp->cfg->upstreams);
    return &hw->pools[ui][b->index];
}

static void on_pool_sweep(uv_timer_t *t);

/* The sweep runs while any connection is pooled on this worker. */
static void pool_sweep_arm(hp_worker_t *hw)
{
    if (!uv_is_active((uv_handle_t *)&hw->pool_timer))
        uv_timer_start(&hw->pool_timer, on_pool_sweep, POOL_SWEEP_MS, 0);
}

/* Closes what the pools must not keep (gw_upool_cut), every POOL_SWEEP_MS: one timer for
 * every pooled connection of the worker, instead of a timer (and two heap operations per
 * request) each. */
static void on_pool_sweep(uv_timer_t *t)
{
    hp_worker_t *hw = t->data;
    const gw_config_t *cfg = hw->hp->cfg;
    uint64_t now = uv_now(loop_of(hw));
    bool any = false;
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const gw_http_upstream_cfg_t *kc = gw_http_upstream_cfg(&cfg->upstreams[i]);
        for (size_t j = 0; j < cfg->upstreams[i].nbackends; j++) {
            gw_upool_t *pool = &hw->pools[i][j];
            gw_upool_entry_t *cut = pool->head != NULL
                                        ? gw_upool_cut(pool, kc->max_idle, kc->idle_timeout_ms, now)
                                        : NULL;
            while (cut != NULL) {
                gw_upool_entry_t *e = cut;
                cut = e->next;
                e->next = NULL;
                uconn_close(gw_upool_owner(e, uconn_t, pe), false);
            }
            any = any || pool->head != NULL;
        }
    }
    if (any)
        pool_sweep_arm(hw);
}

/* The exchange is done with U: back to its pool when it can carry another request. While
 * pooled it reads, so that the upstream's close (or stray bytes) is noticed at once. */
static void uconn_release(uconn_t *u, bool reusable)
{
    uconn_detach(u);
    hp_worker_t *hw = u->hw;
    if (u->closing || gw_stream_starved(&u->sock.s) ||
        !gw_upool_may_keep(u->requests, u->kc->max_requests, reusable, hw->w->draining)) {
        uconn_close(u, false);
        return;
    }
    u->paused = false;
    gw_upool_put(u->pool, &u->pe, uv_now(loop_of(hw)));
    pool_sweep_arm(hw);
    upstream_set_reading(u, true); /* normally still on: the same callback serves both */
    if (!u->reading)
        uconn_close(u, true);
}

static void upstream_set_reading(uconn_t *u, bool on)
{
    if (u->closing || u->reading == on)
        return;
    u->reading = on;
    if (!on)
        gw_stream_read_stop(&u->sock.s);
    else if (gw_stream_read_start(&u->sock.s) != 0)
        u->reading = false;
}

/* ---- failures before the response head: retry, or 502/503/504 ----------------------------------
 */

static void on_retry_due(hconn_t *c)
{
    upstream_start(c);
}

/* The hooks of the retry decision (hretry.h): the picker's and the chain's answers about
 * the exchange of the client connection CTX. */
static void retry_report(void *ctx, int status)
{
    hconn_t *c = ctx;
    const gw_tcp_picker_t *p = (const gw_tcp_picker_t *)c->hw->hp->lb;
    p->report(p->ctx, c->hw->w, &c->x->pick, status);
}

static bool retry_connect(void *ctx, unsigned attempt, uint64_t *delay_ms)
{
    hconn_t *c = ctx;
    const gw_tcp_picker_t *p = (const gw_tcp_picker_t *)c->hw->hp->lb;
    return p->retry == NULL || p->retry(p->ctx, c->hw->w, &c->x->pick, attempt, delay_ms);
}

static bool retry_middleware(void *ctx, unsigned attempt)
{
    hconn_t *c = ctx;
    hx_t *x = c->x;
    return x->method[0] != '\0' &&
           gw_chain_may_retry(c->hw->hp->chain, &x->chain, x->method, attempt);
}

/* What the retry decision reads about C's exchange after FAILURE (UV_STATUS). */
static gw_hretry_in_t retry_inputs(hconn_t *c, gw_hretry_failure_t failure, int uv_status)
{
    hx_t *x = c->x;
    const gw_tcp_picker_t *p = (const gw_tcp_picker_t *)c->hw->hp->lb;
    return (gw_hretry_in_t){
        .failure = failure,
        .uv_status = uv_status,
        .picked = x->picked,
        .reused = x->upstream_reused,
        .resp_bytes = x->resp_bytes,
        .idempotent = x->idempotent,
        .has_body = x->req_body != GW_H1_BODY_NONE,
        .body_started = x->body_started,
        .request_read = x->rq == RQ_DONE,
        .body_buffered = x->buffered_all,
        .response_started = x->rs != RS_NONE,
        .draining = draining(c),
        .stale_retry_used = x->retried_reuse,
        .attempt = x->attempt,
        .max_attempts = p->max_attempts,
        .tries = x->tries,
    };
}

/* The current attempt failed before any response byte: FAILURE says what failed, UV_STATUS
 * the libuv code that said so, WHY the reason for the log and the error answer. The
 * decision is hretry.c's; this does what it says. */
static void attempt_failed(hconn_t *c, gw_hretry_failure_t failure, int uv_status, const char *why)
{
    hp_worker_t *hw = c->hw;
    hx_t *x = c->x;
    if (x->u != NULL) {
        uconn_t *u = x->u;
        uconn_detach(u);
        uconn_close(u, true);
    }
    gw_hretry_in_t in = retry_inputs(c, failure, uv_status);
    gw_hretry_hooks_t hooks = {retry_report, retry_connect, retry_middleware, c};
    gw_hretry_t d = gw_hretry_decide(&in, &hooks);
    x->backend_failed = false; /* reported by the decision, once: the final release says "closed" */
    x->chain.upstream_failed = true;
    uint64_t dropped;
    if (gw_lograte_allow(&hw->err_log, uv_now(loop_of(hw)), 1000, &dropped)) {
        char a[GW_ADDR_STRLEN];
        gw_warn("route '%s': backend %s: %s (attempt %u)%s", x->route ? x->route->name : "-",
                x->backend_addr ? gw_addr_format(x->backend_addr, a, sizeof a) : "-", why,
                x->attempt + 1, dropped ? " (more like this suppressed)" : "");
    }
    if (d.stale_retry)
        x->retried_reuse = true;
    if (d.release_pick) /* this pick sequence is over: release what it holds */
        pick_release(hw, x);
    switch (d.action) {
    case GW_HRETRY_FRESH:
    case GW_HRETRY_NEXT_ATTEMPT:
        x->tries++;
        x->attempt = d.action == GW_HRETRY_FRESH ? 0 : x->attempt + 1;
        gw_counter_inc(&hw->stats->retries);
        if (x->rq == RQ_BODY) /* the body waits for the next upstream */
            x->rq = RQ_WAIT_UPSTREAM;
        /* The head is serialised again from the parsed head, which is intact. */
        if (d.delay_ms > 0)
            hx_timer_start(x, T_RETRY, d.delay_ms);
        else
            upstream_start(c);
        return;
    case GW_HRETRY_CLOSE_CLIENT:
        client_close(c, true);
        return;
    case GW_HRETRY_ANSWER:
        answer(c, d.status, why, true);
        return;
    }
}

/* ---- writing the request upstream ------------------------------------------------------------ */

static void request_sent(hconn_t *c)
{
    hx_t *x = c->x;
    if (x->rs == RS_NONE && x->tkind != T_RESPONSE)
        hx_timer_start(x, T_RESPONSE, c->lcfg->response_timeout_ms);
}

/* The request body ended: a chunked one ends upstream with the last chunk and the trailers
 * the listener lets through (http.forward_trailers): unchecked, they would bypass every
 * decision made on the head (trailers.h). */
static void request_body_end(hconn_t *c)
{
    hx_t *x = c->x;
    hp_worker_t *hw = c->hw;
    if (!x->req_chunked_out)
        return;
    gw_chain_trailers(hw->hp->chain, &x->chain, &x->rp.trailers, false);
    out_last_chunk(hw, &x->u->out, &x->rp.trailers);
}

/* ---- request buffering (a route's request_buffering) -------------------------------------- */

/* Whether the body of X's request is read whole before a backend is picked: the route asks
 * for it, and the body is not announced larger than it (chunked: we will see). Then the
 * client's `Expect: 100-continue` is answered here (the upstream gets the body at once). */
static bool buffer_start(hconn_t *c)
{
    hx_t *x = c->x;
    uint64_t cap = x->route->request_buffering;
    if (cap == 0 || x->req_body == GW_H1_BODY_NONE ||
        (x->req_body == GW_H1_BODY_LENGTH && x->rp.length > cap))
        return false;
    gw_reqbuf_init(&x->reqbuf, cap);
    x->buffering = true;
    x->rq = RQ_BODY; /* client_process reads the body now */
    gw_h1_head_t *h = &x->rp.head;
    gw_h1_span_t v;
    if (gw_h1_head_get(h, "expect", &v)) {
        if (x->client_minor >= 1 && v.len == 12 && strncasecmp(v.ptr, "100-continue", 12) == 0)
            x->bytes_out +=
                gw_wb_copy(&c->hw->wb, &c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0 ? 25 : 0;
        gw_h1_head_remove(h, "expect");
    }
    x->last_active = uv_now(loop_of(c->hw));
    body_timer_start(x, c->lcfg->body_timeout_ms);
    return true;
}

/* Body bytes while buffering. What does not fit (a chunked body longer than the cap, or no
 * chunk left in the pool) ends the buffering: the backend is picked now, and that span goes
 * right after the buffer (upstream_ready), then the rest streams as usual. */
static void buffer_data(hconn_t *c, gw_chunk_t *ch, const char *data, size_t n)
{
    hx_t *x = c->x;
    size_t k = gw_reqbuf_append(&x->reqbuf, &c->hw->w->bufs, data, n);
    if (k == n)
        return;
    x->buffering = false;
    gw_chunk_ref(ch);
    x->rest_ch = ch;
    x->rest = data + k;
    x->rest_len = n - k;
    x->rq = RQ_WAIT_UPSTREAM; /* client_process stops: the rest waits for the backend */
    upstream_start(c);
}

/* Sends what was buffered to the attached upstream (again, on a retry of a whole body). A
 * partial buffer is given up once sent: the rest of the body streams after it. */
static void buffer_flush(hconn_t *c)
{
    hx_t *x = c->x;
    hp_worker_t *hw = c->hw;
    gw_wdest_t *d = &x->u->out;
    for (gw_chunk_t *ch = x->reqbuf.head; ch != NULL; ch = ch->next)
        out_body(hw, d, ch, ch->data, ch->len, x->req_chunked_out);
    if (x->buffered_all) {
        request_body_end(c);
        return;
    }
    gw_reqbuf_clear(&x->reqbuf, &hw->w->bufs);
    if (x->rest_ch != NULL) {
        out_body(hw, d, x->rest_ch, x->rest, x->rest_len, x->req_chunked_out);
        gw_chunk_unref(&hw->w->bufs, x->rest_ch);
        x->rest_ch = NULL;
        x->rest_len = 0;
    }
    x->body_started = true; /* the rest is read from the client: no replay */
}

/* The attached upstream U is connected: send the head, then let the body flow. */
static void upstream_ready(hconn_t *c)
{
    hp_worker_t *hw = c->hw;
    hx_t *x = c->x;
    uconn_t *u = x->u;
    const gw_tcp_picker_t *p = (const gw_tcp_picker_t *)hw->hp->lb;
    p->report(p->ctx, hw->w, &x->pick, 0);
    u->requests++;
    gw_h1_head_t *h = &x->rp.head;
    if (!gw_h1_head_get(h, "host", NULL)) {
        /* An HTTP/1.0 request may come without Host, but it goes upstream as HTTP/1.1, where
         * Host is required (RFC 9112 3.2): the backend's address as configured. (A route's
         * host_rewrite was set already.) */
        const gw_upstream_cfg_t *uc = &hw->hp->cfg->upstreams[x->upstream];
        const gw_backend_t *b = x->pick.backend;
        const char *host = uc->backends[b->index].address_text;
        gw_h1_head_set(h, "Host", host, strlen(host));
    }
    gw_h1_parser_reset(&x->sp, NULL, HX_KEEP_BYTES);
    if (x->head_method)
        gw_h1_expect_head_response(&x->sp);
    x->resp_bytes = false;
    out_head(hw, &u->out, h, NULL, 0); /* a failure comes back through upstream_on_error */
    if (x->reqbuf.len > 0 || x->rest_ch != NULL || x->buffered_all)
        buffer_flush(c);
    upstream_set_reading(u, true);
    if (x->rq == RQ_WAIT_UPSTREAM) {
        /* The parser still holds the rest of the request: the body, or (without one) the
         * end of the message, which client_process below hands to request_end. */
        x->rq = RQ_BODY;
        if (x->req_body != GW_H1_BODY_NONE) {
            x->last_active = uv_now(loop_of(hw));
            body_timer_start(x, c->lcfg->body_timeout_ms);
        }
    } else if (x->rq == RQ_DONE) { /* a retry of a request without a body */
        request_sent(c);
    }
    client_process(c); /* body bytes that came with the head */
}

static void upstream_connect_held(uv_connect_t *req, int status);

/* Runs upstream_connect_held under a hold of the writer (see "writes"). */
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
    uv_timer_stop(&u->timer);
    hx_t *x = u->x;
    if (x == NULL) { /* the exchange went away meanwhile */
        uconn_close(u, false);
        return;
    }
    if (status < 0) {
        attempt_failed(x->c, GW_HRETRY_CONNECT, status, "upstream connect failed");
        return;
    }
    u->connected = true;
    gw_counter_inc(&u->hw->stats->upstream_connects);
    upstream_ready(x->c);
}

static void connect_timeout_held(uv_timer_t *t);

/* Runs connect_timeout_held under a hold of the writer (see "writes"). */
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
        uconn_close(u, false);
        return;
    }
    attempt_failed(x->c, GW_HRETRY_CONNECT, UV_ETIMEDOUT, "upstream connect timed out");
}

/* Picks a backend for attempt x->attempt and attaches a connection to it. */
static void upstream_start(hconn_t *c)
{
    hp_worker_t *hw = c->hw;
    hx_t *x = c->x;
    const gw_http_target_t *t = &x->route->targets[x->chain.target];
    x->upstream = t->upstream_index;
    x->chain.upstream = t->upstream;
    x->backend_addr =
        gw_lb_pick_upstream(hw->hp->lb, hw->w, x->upstream, &c->peer.sa, x->attempt, &x->pick);
    if (x->backend_addr == NULL) {
        pick_release(hw, x); /* the pick took a snapshot reference: give it back */
        if (x->tries > 0 || x->attempt > 0) {
            answer(c, 502, "no backend answered", true);
            return;
        }
        answer(c, 503, "no usable backend", false);
        return;
    }
    x->picked = true;
    x->pick.attempt_started_ns = gw_clock_mono_ns(&gw_clock_system);
    gw_backend_t *b = x->pick.backend;
    x->chain.backend = b->name;
    gw_upool_t *pool = pool_of(hw, b);
    gw_upool_entry_t *idle = gw_upool_take(pool); /* it keeps reading: no epoll_ctl per request */
    uconn_t *u = idle != NULL ? gw_upool_owner(idle, uconn_t, pe) : NULL;
    if (u != NULL) {
        u->x = x;
        x->u = u;
        x->upstream_reused = true;
        gw_counter_inc(&hw->stats->upstream_reuses);
        upstream_ready(c);
        return;
    }
    x->upstream_reused = false;
    u = calloc(1, sizeof *u);
    if (u == NULL) {
        attempt_failed(c, GW_HRETRY_BROKEN, UV_ENOMEM, "out of memory");
        return;
    }
    u->hw = hw;
    u->pool = pool;
    u->kc = gw_http_upstream_cfg(&hw->hp->cfg->upstreams[x->upstream]);
    gw_tcp_stream_init(&u->sock, loop_of(hw), &hw->w->streams, on_upstream_read, u);
    uv_timer_init(loop_of(hw), &u->timer);
    u->timer.data = u;
    gw_wdest_init(&u->out, &u->sock.s, &upstream_ops);
    u->connect_req.data = u;
    u->next = hw->uconns;
    if (u->next != NULL)
        u->next->prev = u;
    hw->uconns = u;
    u->x = x;
    x->u = u;
    uv_tcp_nodelay(&u->sock.tcp, 1);
    int rc = uv_tcp_connect(&u->connect_req, &u->sock.tcp,
                            (const struct sockaddr *)&x->backend_addr->ss, on_upstream_connect);
    if (rc != 0) {
        attempt_failed(c, GW_HRETRY_CONNECT, rc, "upstream connect failed");
        return;
    }
    uv_timer_start(&u->timer, on_connect_timeout, c->l->cfg->connect_timeout_ms, 0);
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

static bool route_has(const gw_http_route_t *r, gw_mw_kind_t kind)
{
    for (size_t i = 0; i < r->nmw; i++)
        if (r->mw[i].kind == kind)
            return true;
    return false;
}

static void on_request_head(hconn_t *c)
{
    hp_worker_t *hw = c->hw;
    hx_t *x = c->x;
    gw_h1_head_t *h = &x->rp.head;
    gw_counter_inc(&hw->stats->requests);
    x->rq = RQ_WAIT_UPSTREAM;
    x->req_body = x->rp.body;
    x->client_minor = h->version_minor; /* before the upstream's copy says 1.1 */
    hx_timer_stop(x);

    /* The parser writes only methods llhttp knows (the longest has 13 bytes). */
    gw_h1_span_t m = gw_h1_head_method(h);
    if (m.len >= sizeof x->method) {
        answer(c, 501, "method not supported", true);
        return;
    }
    memcpy(x->method, m.ptr, m.len);
    x->method[m.len] = '\0';
    unsigned mbit = gw_router_method_bit(m.ptr, m.len);
    x->head_method = mbit == GW_METHOD_HEAD;
    x->idempotent = (mbit & GW_METHODS_IDEMPOTENT) != 0;

    gw_h1_conn_info_t info;
    if (gw_h1_strip_hop_by_hop(h, 0, &info) != 0) { /* the parser caps Connection: cannot happen */
        answer(c, 400, "too many Connection tokens", true);
        return;
    }
    x->client_keep = info.keep_alive && !draining(c);

    /* CONNECT and upgrades are not proxied yet (WebSocket arrives with its own issue). */
    if (mbit == GW_METHOD_CONNECT) {
        answer(c, 501, "CONNECT is not supported", true);
        return;
    }

    /* One reading of the path for the router, the middleware and the upstream. */
    gw_h1_span_t tg = gw_h1_head_target(h);
    if (tg.len == 0 || tg.ptr[0] != '/') {
        answer(c, 400, "only origin-form request targets are accepted", true);
        return;
    }
    /* Normalised on the stack for every common target; a long one (up to max_uri) on
     * the heap. */
    char stack[2048];
    char *norm = tg.len < sizeof stack ? stack : malloc(tg.len + 1);
    if (norm == NULL) {
        answer(c, 500, "out of memory", true);
        return;
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
        answer(c, (unsigned)pn.status, pn.reason, true);
        return;
    }
    gw_h1_span_t host = {NULL, 0};
    gw_h1_head_get(h, "host", &host);
    const gw_route_match_t *match = gw_router_match(c->lcfg->router, host.ptr, host.len, x->method,
                                                    norm, pn.path_len, lookup_header, h, NULL);
    if (norm != stack)
        free(norm);
    x->chain.listener = c->l->index;
    x->chain.lcfg = c->lcfg;
    x->chain.client = &c->peer.sa;
    x->chain.tls = false;
    x->chain.start_ns = gw_clock_mono_ns(&gw_clock_system);
    x->chain.wall_ms = (int64_t)gw_clock_wall_ms(&gw_clock_system);
    x->chain.rng = &hw->rng;
    if (match == NULL) {
        answer(c, 404, "no route", false);
        return;
    }
    x->route = match->user;
    x->chain.route = x->route;
    if (x->route->max_body > 0 && gw_h1_set_max_body(&x->rp, x->route->max_body) != 0) {
        answer(c, 413, "request body too large", true);
        return;
    }
    x->exchange_open = true;
    gw_h1_head_clear(&x->local);
    int st = gw_chain_request(hw->hp->chain, &x->chain, h, &x->local);
    if (st != 0) {
        send_local(c, (unsigned)st, NULL, false);
        return;
    }
    if (x->route->host_rewrite != NULL)
        gw_h1_head_set(h, "Host", x->route->host_rewrite, strlen(x->route->host_rewrite));
    if (!route_has(x->route, GW_MW_FORWARDED) && gw_h1_head_add(h, "Via", 3, "1.1 gw", 6) != 0) {
        answer(c, 431, "request head too large", true);
        return;
    }
    /* Re-framing: a chunked body goes on chunked (Transfer-Encoding was stripped with the
     * other hop-by-hop fields); a Content-Length body keeps its Content-Length. */
    x->req_chunked_out = x->req_body == GW_H1_BODY_CHUNKED;
    if (x->req_chunked_out && gw_h1_head_add(h, "Transfer-Encoding", 17, "chunked", 7) != 0) {
        answer(c, 431, "request head too large", true);
        return;
    }
    h->version_minor = 1;
    if (x->req_body != GW_H1_BODY_NONE && c->lcfg->body_deadline_ms > 0)
        x->body_deadline = uv_now(loop_of(hw)) + c->lcfg->body_deadline_ms;
    if (buffer_start(c))
        return; /* the backend is picked when the body is in (request_end, buffer_data) */
    upstream_start(c);
}

/* ---- client input ---------------------------------------------------------------------------- */

/* The request's last byte was parsed. */
static void request_end(hconn_t *c)
{
    hx_t *x = c->x;
    bool discarding = x->error_sent;
    x->rq = RQ_DONE; /* a pipelined next request is held (client_update_reading) */
    if (discarding) {
        exchange_done(c);
        return;
    }
    if (x->buffering) { /* the whole body is here: now a backend (buffer_flush sends it) */
        x->buffering = false;
        x->buffered_all = true;
        upstream_start(c);
        return;
    }
    if (x->u != NULL)
        request_body_end(c);
    if (x->rs == RS_DONE) {
        exchange_done(c);
        return;
    }
    request_sent(c);
}

/* Body bytes of the request. */
static void request_data(hconn_t *c, gw_chunk_t *ch, const char *data, size_t n)
{
    hx_t *x = c->x;
    hp_worker_t *hw = c->hw;
    x->last_active = uv_now(loop_of(hw));
    if (x->error_sent)
        return; /* answered already: the body is read and dropped */
    if (x->buffering) {
        buffer_data(c, ch, data, n);
        return;
    }
    if (x->u == NULL)
        return;
    x->body_started = true;
    uconn_t *u = x->u;
    out_body(hw, &u->out, ch, data, n, x->req_chunked_out);
    if (gw_wb_pending(&hw->wb, &u->out) > high_water(hw))
        x->req_paused = true; /* client_process stops, and client_update_reading with it */
}

/* Parses what waits in x->rbuf as far as the exchange allows. An event may end the
 * exchange, start the next one or close the connection, so every turn looks again. Not
 * re-entered: a nested call (say, from a pooled upstream that was ready at once) returns,
 * and the outer loop goes on with the new state. */
static void client_process(hconn_t *c)
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
        if (x->rq == RQ_HEAD && client_backlogged(c)) {
            /* Its silence is timed as a stalled response's (idle_timeout), not as a slow
             * head's: it is the client that does not read. */
            x->last_active = uv_now(loop_of(c->hw));
            hx_timer_start(x, T_STREAM, c->l->cfg->idle_timeout_ms);
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
                answer(c, (unsigned)e->status, e->reason, true);
            } else {
                client_close(c, true);
            }
            break;
        }
        if (r == 0)
            break; /* everything was consumed: more bytes are needed */
        if (ch != NULL)
            gw_chunk_ref(ch); /* the exchange may give the buffer away meanwhile */
        if (r == GW_H1_HEAD)
            on_request_head(c);
        else if (r == GW_H1_DATA)
            request_data(c, ch, ev.data, ev.len);
        else if (r == GW_H1_END)
            request_end(c);
        if (ch != NULL)
            gw_chunk_unref(&c->hw->w->bufs, ch);
    }
    c->in_process = false;
    hx_t *x = c->x;
    if (x != NULL && x->rbuf != NULL && x->rbuf->off >= x->rbuf->len) {
        gw_chunk_unref(&c->hw->w->bufs, x->rbuf);
        x->rbuf = NULL;
    }
    client_update_reading(c);
}

static void client_read_held(gw_stream_t *s, gw_chunk_t *ch, ssize_t nread);

/* Runs client_read_held under a hold of the writer (see "writes"). */
static void on_client_read(gw_stream_t *s, gw_chunk_t *ch, ssize_t nread)
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
            client_close(c, nread != UV_EOF);
            return;
        }
        hx_t *x = c->x;
        if (x->rq == RQ_HEAD && x->rp.state == GW_H1_ST_HEAD && x->bytes_in == 0) {
            client_close(c, false);
            return;
        }
        if (x->rq == RQ_DONE && x->rs == RS_NONE) {
            /* The client left before any answer: abort the exchange (499), which closes its
             * upstream connection, instead of holding a backend for nobody. (A tcp listener
             * forwards the half-close instead; an http client that wants its answer keeps its
             * side open, as every browser and library does.) */
            client_close(c, false);
            return;
        }
        if (x->rq == RQ_DONE && x->rs != RS_DONE) {
            /* The client half-closed while its answer streams: finish it, then close. */
            x->client_keep = false;
            x->client_eof = true;
            client_update_reading(c);
            return;
        }
        client_close(c, false);
        return;
    }
    if (c->state == C_LINGER) {
        gw_chunk_unref(&hw->w->bufs, ch);
        return;
    }
    if (c->x == NULL) { /* the first byte of a request: the exchange state comes now */
        c->x = hx_get(c);
        if (c->x == NULL) {
            gw_chunk_unref(&hw->w->bufs, ch);
            client_close(c, true);
            return;
        }
        c->state = C_ACTIVE;
        list_busy(c);
        hx_timer_start(c->x, T_HEAD, c->lcfg->head_timeout_ms);
    }
    hx_t *x = c->x;
    if (x->rbuf != NULL) { /* cannot happen: reads stop while bytes wait */
        gw_chunk_unref(&hw->w->bufs, ch);
        client_close(c, true);
        return;
    }
    x->rbuf = ch; /* the reader's reference moves to the exchange */
    client_process(c);
}

/* ---- the response --------------------------------------------------------------------------- */

static void response_end(hconn_t *c)
{
    hx_t *x = c->x;
    hp_worker_t *hw = c->hw;
    x->rs = RS_DONE;
    if (x->resp_chunked_out) { /* trailers come only with a chunked upstream body */
        gw_chain_trailers(hw->hp->chain, &x->chain, &x->sp.trailers, true);
        x->bytes_out += out_last_chunk(hw, &c->out, &x->sp.trailers);
    }
    uconn_t *u = x->u;
    if (u != NULL) {
        /* Reusable when both messages ended cleanly on it and the upstream did not ask to
         * close (drain_close also covers HTTP/1.0 upstreams and stray bytes). */
        bool reusable = x->rq == RQ_DONE && x->resp_body_in != GW_H1_BODY_UNTIL_CLOSE &&
                        x->sp.state == GW_H1_ST_DONE && !x->drain_close && !u->paused &&
                        u->out.error == 0;
        uconn_release(u, reusable);
    }
    pick_release(hw, x);
    if (x->rq == RQ_DONE)
        exchange_done(c);
    else if (x->resp_close_out || x->close_after)
        client_linger(c); /* the answer is queued: FIN after it */
    /* else: the upstream answered before the request body ended (an early 413, say); the
     * connection closes after the body, which request_end handles by exchange_done. */
}

static void on_response_head(hconn_t *c)
{
    hp_worker_t *hw = c->hw;
    hx_t *x = c->x;
    gw_h1_head_t *h = &x->sp.head;
    unsigned status = h->status;
    if (status == 101) {
        attempt_failed(c, GW_HRETRY_BROKEN, UV_EPROTO,
                       "upstream switched protocols without being asked");
        return;
    }
    gw_h1_conn_info_t info;
    if (gw_h1_strip_hop_by_hop(h, 0, &info) != 0) { /* the parser caps Connection: cannot happen */
        attempt_failed(c, GW_HRETRY_BROKEN, UV_EPROTO, "too many Connection tokens");
        return;
    }
    bool interim = status >= 100 && status < 200;
    if (!interim) {
        hx_timer_stop(x);
        x->resp_body_in = x->sp.body;
        /* The upstream connection's fate is decided by what it said. */
        if (!info.keep_alive)
            x->drain_close = true;
    }
    gw_chain_response(hw->hp->chain, &x->chain, &x->rp.head, h);
    h->version_minor = 1;
    /* Rules for an HTTP/1.0 client (RFC 9110 15.2, RFC 9112 6.3): no interim response, no
     * chunked body, and keep-alive only when the body has a Content-Length (or none). */
    bool client11 = x->client_minor >= 1;
    if (!interim) {
        x->chain.status = status;
        count_status(hw, status);
        bool body = x->sp.body != GW_H1_BODY_NONE;
        x->resp_chunked_out = false;
        x->resp_close_out = false;
        if (body && x->sp.body != GW_H1_BODY_LENGTH) {
            if (client11) {
                x->resp_chunked_out = true;
                gw_h1_head_add(h, "Transfer-Encoding", 17, "chunked", 7);
            } else {
                x->resp_close_out = true;
            }
        }
        bool keep = x->client_keep && !x->resp_close_out && !draining(c) &&
                    !(x->rq != RQ_DONE && x->req_body != GW_H1_BODY_NONE);
        if (!keep) {
            x->close_after = true;
            gw_h1_head_set(h, "Connection", "close", 5);
        } else if (!client11) {
            gw_h1_head_set(h, "Connection", "keep-alive", 10);
        }
        x->rs = RS_HEAD_SENT;
        x->last_active = uv_now(loop_of(hw));
        hx_timer_start(x, T_STREAM, c->l->cfg->idle_timeout_ms);
    } else if (!client11) {
        return; /* HTTP/1.0 clients get no interim responses */
    }
    /* A final head leaves with the body bytes read with it: the writer gathers both. */
    x->bytes_out += out_head(hw, &c->out, h, NULL, 0);
}

static void response_data(hconn_t *c, gw_chunk_t *ch, const char *data, size_t n)
{
    hp_worker_t *hw = c->hw;
    hx_t *x = c->x;
    x->last_active = uv_now(loop_of(hw));
    x->bytes_out += out_body(hw, &c->out, ch, data, n, x->resp_chunked_out);
    if (gw_wb_pending(&hw->wb, &c->out) > high_water(hw) && x->u != NULL) {
        x->u->paused = true;
        upstream_set_reading(x->u, false);
    }
}

/* Feeds upstream bytes of CH to the response parser, until it needs more. */
static void upstream_process(uconn_t *u, gw_chunk_t *ch)
{
    size_t off = 0;
    for (;;) {
        hx_t *x = u->x;
        if (x == NULL || u->closing) {
            if (off < ch->len && !u->closing) /* bytes after the response: not reusable */
                uconn_close(u, true);
            return;
        }
        hconn_t *c = x->c;
        gw_h1_event_t ev;
        int r = gw_h1_feed(&x->sp, ch->data + off, ch->len - off, &ev);
        off += ev.used;
        x->resp_bytes = x->resp_bytes || ev.used > 0;
        if (r == GW_EINVAL) {
            const gw_h1_error_t *e = gw_h1_error(&x->sp);
            if (x->rs == RS_NONE) {
                attempt_failed(c, GW_HRETRY_BROKEN, UV_EPROTO, e->reason);
                return;
            }
            x->chain.end = "upstream_bad_body";
            client_close(c, true);
            return;
        }
        if (r == 0)
            return; /* all consumed; what it produced leaves when the read is done */
        if (r == GW_H1_HEAD) {
            on_response_head(c);
        } else if (r == GW_H1_DATA) {
            response_data(c, ch, ev.data, ev.len);
        } else if (r == GW_H1_END) {
            unsigned st = x->sp.head.status;
            if (st >= 100 && st < 200) {
                if (gw_h1_next(&x->sp) != 0) {
                    attempt_failed(c, GW_HRETRY_BROKEN, UV_EPROTO, "bad interim response");
                    return;
                }
                continue;
            }
            if (off < ch->len) /* bytes after a complete response: not reusable */
                x->drain_close = true;
            response_end(c);
            return;
        }
    }
}

static void upstream_read_held(gw_stream_t *s, gw_chunk_t *ch, ssize_t nread);

/* Runs upstream_read_held under a hold of the writer (see "writes"). */
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
        uconn_close(u, false);
        return;
    }
    hconn_t *c = x->c;
    if (nread == UV_EOF && x->rs != RS_NONE && gw_h1_finish(&x->sp) == GW_H1_END) {
        x->drain_close = true;
        uconn_detach(u);
        uconn_close(u, false);
        response_end(c);
        return;
    }
    if (x->rs == RS_NONE) {
        attempt_failed(c, GW_HRETRY_BROKEN, (int)nread,
                       nread == UV_EOF ? "upstream closed the connection" : "upstream reset");
        return;
    }
    /* Cut in the middle of the response body: the client cannot be told but by a close. */
    x->backend_failed = true;
    x->chain.upstream_failed = true;
    x->chain.end = nread == UV_EOF ? "upstream_eof" : "upstream_reset";
    client_close(c, true);
}

/* ---- write completions ------------------------------------------------------------------------
 */

#define CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* A write to the client completed. Below low_water, what waited for the client to read
 * moves again: the upstream's response, and the next pipelined request (client_process). */
static void client_written(hconn_t *c, int status)
{
    if (c->closing)
        return;
    if (status < 0) {
        client_close(c, true);
        return;
    }
    hx_t *x = c->x;
    if (x != NULL)
        x->last_active = uv_now(loop_of(c->hw));
    if (c->out.queued >= low_water(c->hw))
        return;
    if (x != NULL && x->u != NULL && x->u->paused) {
        x->u->paused = false;
        upstream_set_reading(x->u, true);
    }
    if (c->out_paused) {
        c->out_paused = false;
        if (x != NULL && x->rq == RQ_HEAD)
            hx_timer_start(x, T_HEAD, c->lcfg->head_timeout_ms);
        client_process(c); /* it updates reading too */
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
        client_close(c, true);
}

/* A write to the upstream failed, at once or later: before any response byte the attempt
 * failed (maybe retried); after, the body was cut and the connection is not reused. */
static void upstream_failed_write(uconn_t *u, int status)
{
    if (u->closing)
        return;
    hx_t *x = u->x;
    if (x == NULL) {
        uconn_close(u, true);
        return;
    }
    if (x->rs == RS_NONE && !x->resp_bytes) {
        attempt_failed(x->c, GW_HRETRY_BROKEN, status, "cannot write to the upstream");
        return;
    }
    x->body_started = true;
    x->drain_close = true;
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
    if (x->req_paused && u->out.queued < low_water(u->hw)) {
        x->req_paused = false;
        client_process(x->c);
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

static const gw_wdest_ops_t client_ops = {client_on_written, client_on_error};
static const gw_wdest_ops_t upstream_ops = {upstream_on_written, upstream_on_error};

/* ---- between exchanges -------------------------------------------------------------------- */

/* Both halves of the exchange are complete: log it and wait for the next request. */
static void exchange_done(hconn_t *c)
{
    hp_worker_t *hw = c->hw;
    hx_t *x = c->x;
    exchange_settle(c, false);
    if (x->close_after || !x->client_keep || draining(c)) {
        client_linger(c);
        return;
    }
    hx_clear_exchange(x);
    if (gw_h1_next(&x->rp) != 0) {
        client_linger(c);
        return;
    }
    if (x->rbuf != NULL && x->rbuf->off < x->rbuf->len) {
        /* A pipelined request is already here. */
        hx_timer_start(x, T_HEAD, c->lcfg->head_timeout_ms);
        client_process(c);
        return;
    }
    /* Idle: give the exchange state back; the connection keeps only its socket. */
    hx_put(hw, x);
    c->x = NULL;
    c->state = C_IDLE;
    list_idle(c, &hw->keepalive[c->l->index]);
    client_backlogged(c);
    client_update_reading(c);
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
    gw_wb_t *wb = &c->hw->wb; /* see "writes" */
    gw_wb_hold(wb);
    hx_timer_fired(x, c);
    gw_wb_release(wb);
}

static void hx_timer_fired(hx_t *x, hconn_t *c)
{
    uint64_t now = uv_now(loop_of(c->hw));
    if (now < x->deadline) { /* set for an earlier kind: sleep until this one's time */
        uv_timer_start(&x->timer, on_hx_timer, x->deadline - now, 0);
        x->armed_at = x->deadline;
        return;
    }
    switch (x->tkind) {
    case T_HEAD:
        answer(c, 408, "request head timeout", true);
        return;
    case T_BODY: {
        uint64_t quiet = now - x->last_active, limit = c->lcfg->body_timeout_ms;
        if (x->rq != RQ_BODY) /* the body is complete; the response timer takes over */
            return;
        bool late = x->body_deadline != 0 && now >= x->body_deadline;
        if (!late && x->req_paused) { /* the upstream is slow, not the client */
            x->last_active = now;
            body_timer_start(x, limit);
            return;
        }
        if (!late && quiet < limit) {
            body_timer_start(x, limit - quiet);
            return;
        }
        if (x->rs == RS_NONE)
            answer(c, 408, late ? "request body deadline" : "request body timeout", true);
        else
            client_close(c, true);
        return;
    }
    case T_RESPONSE:
        attempt_failed(c, GW_HRETRY_RESPONSE_TIMEOUT, UV_ETIMEDOUT, "upstream response timeout");
        return;
    case T_STREAM: {
        uint64_t quiet = now - x->last_active, limit = c->l->cfg->idle_timeout_ms;
        if (quiet < limit) {
            hx_timer_start(x, T_STREAM, limit - quiet);
            return;
        }
        x->chain.end = "idle_timeout";
        client_close(c, true);
        return;
    }
    case T_LINGER:
        client_close(c, false);
        return;
    case T_RETRY:
        x->tkind = T_NONE;
        on_retry_due(c);
        return;
    case T_NONE:
        return;
    }
}

/* ---- accepting ----------------------------------------------------------------------------- */

static void http_on_connection(gw_wlistener_t *wl)
{
    gw_worker_t *w = wl->worker;
    hp_worker_t *hw = &g_hp->workers[w->id];
    hconn_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        /* Not a handle on the stack closed at once (its memory would be gone before its
         * close callback), and not left unaccepted (libuv 1.44 would stop watching the
         * listener for good): the runtime pauses the listener and binds it again. */
        gw_listener_pause(wl, UV_ENOMEM);
        return;
    }
    c->hw = hw;
    c->l = wl->listener;
    c->lcfg = gw_http_listener_cfg(c->l->cfg);
    gw_tcp_stream_init(&c->sock, &w->loop, &w->streams, on_client_read, c);
    gw_wdest_init(&c->out, &c->sock.s, &client_ops);
    gw_worker_conn_add(w);
    if (gw_tcp_stream_accept(&c->sock, (uv_stream_t *)&wl->tcp) != 0) {
        client_close(c, false);
        return;
    }
    int len = sizeof c->peer;
    if (gw_stream_peer(&c->sock.s, &c->peer.sa, &len) != 0)
        c->peer.sa.sa_family = AF_UNSPEC;
    const gw_tcp_picker_t *p = (const gw_tcp_picker_t *)hw->hp->lb;
    if (p->admit != NULL && !p->admit(p->ctx, w, c->l, &c->peer.sa)) {
        client_close(c, true);
        return;
    }
    if (!gw_listener_admit(c->l)) {
        client_close(c, true);
        return;
    }
    c->admitted = true;
    gw_counter_inc(&hw->stats->connections);
    uv_tcp_nodelay(&c->sock.tcp, 1);
    c->state = C_IDLE;
    list_idle(c, &hw->fresh[c->l->index]);
    client_set_reading(c, true);
}

/* ---- the worker --------------------------------------------------------------------------- */

static void idle_init(hp_worker_t *hw, idle_list_t *il, uint64_t timeout_ms)
{
    il->hw = hw;
    il->timeout_ms = timeout_ms;
    uv_timer_init(loop_of(hw), &il->timer);
    il->timer.data = il;
}

static int http_worker_start(gw_worker_t *w)
{
    int rc = gw_tcp_worker_start(w);
    if (rc != 0)
        return rc;
    hp_worker_t *hw = &g_hp->workers[w->id];
    const gw_config_t *cfg = g_hp->cfg;
    hw->hp = g_hp;
    hw->w = w;
    hw->rng = 0x243f6a8885a308d3ull ^ ((uint64_t)w->id << 32) ^ gw_clock_mono_ns(&gw_clock_system);
    hw->fresh = calloc(cfg->nlisteners, sizeof *hw->fresh);
    hw->keepalive = calloc(cfg->nlisteners, sizeof *hw->keepalive);
    hw->pools = calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof *hw->pools);
    if (hw->fresh == NULL || hw->keepalive == NULL || hw->pools == NULL)
        return GW_ENOMEM;
    for (size_t i = 0; i < cfg->nupstreams; i++)
        if ((hw->pools[i] = calloc(cfg->upstreams[i].nbackends, sizeof **hw->pools)) == NULL)
            return GW_ENOMEM;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const gw_http_listener_cfg_t *lc = gw_http_listener_cfg(&cfg->listeners[i]);
        idle_init(hw, &hw->fresh[i], lc != NULL ? lc->head_timeout_ms : 1000);
        idle_init(hw, &hw->keepalive[i], lc != NULL ? lc->keepalive_timeout_ms : 1000);
    }
    if (gw_wb_init(&hw->wb, &w->bufs, gw_chunk_size(&w->bufs)) != 0)
        return GW_ENOMEM;
    uv_timer_init(&w->loop, &hw->pool_timer);
    hw->pool_timer.data = hw;
    hw->started = true;
    return 0;
}

static void close_pools(hp_worker_t *hw)
{
    const gw_config_t *cfg = hw->hp->cfg;
    for (size_t i = 0; hw->pools != NULL && i < cfg->nupstreams; i++)
        for (size_t j = 0; hw->pools[i] != NULL && j < cfg->upstreams[i].nbackends; j++)
            while (hw->pools[i][j].head != NULL)
                uconn_close(gw_upool_owner(hw->pools[i][j].head, uconn_t, pe), false);
}

static void close_idle(hp_worker_t *hw)
{
    for (size_t i = 0; i < hw->hp->cfg->nlisteners; i++) {
        while (hw->fresh[i].head != NULL)
            client_close(hw->fresh[i].head, false);
        while (hw->keepalive[i].head != NULL)
            client_close(hw->keepalive[i].head, false);
    }
}

static void http_worker_drain(gw_worker_t *w)
{
    gw_tcp_worker_drain(w);
    hp_worker_t *hw = &g_hp->workers[w->id];
    if (!hw->started)
        return;
    /* Idle connections go now; busy ones finish their exchange and close after it (their
     * response carries Connection: close). */
    close_idle(hw);
    close_pools(hw);
}

static void http_worker_force_close(gw_worker_t *w)
{
    gw_tcp_worker_force_close(w);
    hp_worker_t *hw = &g_hp->workers[w->id];
    if (!hw->started)
        return;
    close_idle(hw);
    while (hw->busy != NULL)
        client_close(hw->busy, true);
    close_pools(hw);
}

static void on_worker_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void http_worker_stop(gw_worker_t *w)
{
    hp_worker_t *hw = &g_hp->workers[w->id];
    if (hw->started) {
        close_idle(hw);
        close_pools(hw);
        while (hw->uconns != NULL)
            uconn_close(hw->uconns, true);
        for (size_t i = 0; i < hw->hp->cfg->nlisteners; i++) {
            uv_close((uv_handle_t *)&hw->fresh[i].timer, on_worker_handle_closed);
            uv_close((uv_handle_t *)&hw->keepalive[i].timer, on_worker_handle_closed);
        }
        uv_close((uv_handle_t *)&hw->pool_timer, on_worker_handle_closed);
        while (hw->hx_free != NULL) {
            hx_t *x = hw->hx_free;
            hw->hx_free = x->next_free;
            hx_free_storage(x);
            uv_close((uv_handle_t *)&x->timer, on_hx_timer_closed);
        }
        hw->started = false;
    }
    gw_res_app.worker_stop(w);
}

/* The handles closed above are in memory this worker frees only now that its loop ran
 * them: the runtime calls stats_free after joining, so the lists are freed then. */
static void hw_free(hp_worker_t *hw)
{
    const gw_config_t *cfg = hw->hp != NULL ? hw->hp->cfg : NULL;
    for (size_t i = 0; cfg != NULL && hw->pools != NULL && i < cfg->nupstreams; i++)
        free(hw->pools[i]);
    free(hw->pools);
    free(hw->fresh);
    free(hw->keepalive);
    free(hw->stats);
    gw_wb_free(&hw->wb); /* the writes it lent requests to completed when the loop closed */
}

static void http_on_connection_any(gw_wlistener_t *wl)
{
    if (wl->listener->cfg->protocol == GW_PROTO_HTTP)
        http_on_connection(wl);
    else
        gw_tcp_on_connection(wl);
}

static void http_on_reopen(gw_runtime_t *rt)
{
    (void)rt;
    gw_chain_reopen(g_hp->chain);
    gw_info("SIGUSR1: access log files reopened");
}

/* Sums one counter over the workers. */
#define HTTP_SUM(hp, field)                                                                        \
    ({                                                                                             \
        uint64_t s_ = 0;                                                                           \
        for (unsigned i_ = 0; i_ < (hp)->cfg->workers; i_++)                                       \
            s_ += gw_counter_get(&(hp)->workers[i_].stats->field);                                 \
        s_;                                                                                        \
    })

static void http_metrics(void *ctx, gw_prom_t *p)
{
    hp_t *hp = ctx;
    gw_prom_family(p, "gw_http_connections_total", "HTTP client connections accepted",
                   GW_PROM_COUNTER);
    gw_prom_sample_u64(p, "gw_http_connections_total", NULL, HTTP_SUM(hp, connections));
    gw_prom_family(p, "gw_http_requests_total", "HTTP request heads received", GW_PROM_COUNTER);
    gw_prom_sample_u64(p, "gw_http_requests_total", NULL, HTTP_SUM(hp, requests));
    gw_prom_family(p, "gw_http_responses_total", "HTTP responses sent, by class", GW_PROM_COUNTER);
    static const char *const classes[] = {"2xx", "3xx", "4xx", "5xx"};
    uint64_t v[4] = {HTTP_SUM(hp, responses_2xx), HTTP_SUM(hp, responses_3xx),
                     HTTP_SUM(hp, responses_4xx), HTTP_SUM(hp, responses_5xx)};
    for (size_t i = 0; i < 4; i++) {
        const char *lab[] = {"class", classes[i], NULL};
        gw_prom_sample_u64(p, "gw_http_responses_total", lab, v[i]);
    }
    gw_prom_family(p, "gw_http_local_errors_total",
                   "Error answers the gateway made itself (4xx/5xx not from an upstream)",
                   GW_PROM_COUNTER);
    gw_prom_sample_u64(p, "gw_http_local_errors_total", NULL, HTTP_SUM(hp, local_errors));
    gw_prom_family(p, "gw_http_upstream_requests_total",
                   "Requests sent upstream, by connection: new or reused from the pool",
                   GW_PROM_COUNTER);
    const char *fresh[] = {"connection", "new", NULL}, *reused[] = {"connection", "reused", NULL};
    gw_prom_sample_u64(p, "gw_http_upstream_requests_total", fresh,
                       HTTP_SUM(hp, upstream_connects));
    gw_prom_sample_u64(p, "gw_http_upstream_requests_total", reused, HTTP_SUM(hp, upstream_reuses));
    gw_prom_family(p, "gw_http_retries_total", "Requests sent again after a failed attempt",
                   GW_PROM_COUNTER);
    gw_prom_sample_u64(p, "gw_http_retries_total", NULL, HTTP_SUM(hp, retries));
    gw_chain_metrics(hp->chain, p); /* gw_access_log_lost_total{file} */
}

/* see hproxy.h */
int gw_http_prepare(const gw_config_t *cfg, void **app_data)
{
    int rc = gw_res_prepare(cfg, app_data);
    if (rc != 0)
        return rc;
    hp_t *hp = calloc(1, sizeof *hp);
    char err[256] = "";
    if (hp != NULL) {
        hp->cfg = cfg;
        hp->lb = *app_data;
        hp->workers = calloc(cfg->workers, sizeof *hp->workers);
        hp->chain = gw_chain_new(cfg, err, sizeof err);
    }
    /* The counters exist before any thread, so a scrape never races with their creation. */
    bool stats_ok = hp != NULL && hp->workers != NULL;
    for (unsigned i = 0; stats_ok && i < cfg->workers; i++)
        stats_ok = (hp->workers[i].stats = calloc(1, sizeof *hp->workers[i].stats)) != NULL;
    if (!stats_ok || hp->chain == NULL) {
        gw_error("milestone 04 setup failed: %s", err[0] ? err : "out of memory");
        if (hp != NULL) {
            gw_chain_free(hp->chain);
            for (unsigned i = 0; hp->workers != NULL && i < cfg->workers; i++)
                free(hp->workers[i].stats);
            free(hp->workers);
            free(hp);
        }
        gw_res_release(*app_data);
        *app_data = NULL;
        return GW_ENOMEM;
    }
    g_hp = hp;
    gw_res_set_extra_metrics(*app_data, http_metrics, hp);
    return 0;
}

/* see hproxy.h */
void gw_http_release(void *app_data)
{
    hp_t *hp = g_hp;
    if (hp != NULL) {
        for (unsigned i = 0; i < hp->cfg->workers; i++)
            hw_free(&hp->workers[i]);
        gw_chain_free(hp->chain);
        free(hp->workers);
        free(hp);
        g_hp = NULL;
    }
    gw_res_release(app_data);
}

static int http_control_start(gw_runtime_t *rt)
{
    return gw_res_app.control_start(rt);
}

static void http_control_stop(gw_runtime_t *rt)
{
    gw_res_app.control_stop(rt);
}

const gw_app_t gw_http_app = {
    .worker_start = http_worker_start,
    .on_connection = http_on_connection_any,
    .worker_drain = http_worker_drain,
    .worker_force_close = http_worker_force_close,
    .worker_stop = http_worker_stop,
    .control_start = http_control_start,
    .control_stop = http_control_stop,
    .on_reopen = http_on_reopen,
};
