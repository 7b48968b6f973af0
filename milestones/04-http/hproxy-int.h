/* hproxy-int.h - what the rooms of the HTTP engine share: its objects and the few calls
 * that cross from one room to another. Private to milestones/04-http (hproxy.h is the
 * engine's public face: the gw04 app and its counters).
 *
 * The rooms (hproxy.c has the step-by-step tour of one exchange):
 *   hproxy.c     the worker shell: the app hooks, accepting, idle lists, the pool sweep,
 *                drain and stop, metrics
 *   hclient.c    the client connection: reading on and off, backpressure, parsing what it
 *                sends into the exchange, closing and lingering, write completions
 *   hanswer.c    local answers (404, 413, 502...): a head and a small JSON body
 *   hexchange.c  the exchange: its storage and timer, the request head's decisions, the
 *                request and response as they stream, the end of the exchange
 *   hupstream.c  the upstream side: connections, connect and its timeout, the pool, what
 *                happens when an attempt fails, the request written upstream, buffering
 *   hwrite.c     what the engine writes: heads, body spans and chunk framing, through the
 *                worker's writer (wbatch.h)
 *
 * Names: what crosses rooms starts with hp_; everything else stays static in its room.
 * Every function here runs on the worker's loop thread, like everything of the engine. */
#ifndef GW_HPROXY_INT_H
#define GW_HPROXY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "01-tcp/tcp_proxy.h"
#include "04-http/chain.h"
#include "04-http/h1.h"
#include "04-http/hmetrics.h"
#include "04-http/hproxyproto.h"
#include "04-http/hproxy.h"
#include "04-http/hretry.h"
#include "04-http/htls.h"
#include "04-http/httpcfg.h"
#include "04-http/hutls.h"
#include "04-http/passthrough.h"
#include "04-http/reqbuf.h"
#include "04-http/tlsclient.h"
#include "04-http/upool.h"
#include "04-http/wbatch.h"
#include "log.h"

/* The struct of type TYPE whose member MEMBER is at PTR (a write queue's connection). */
#define CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Exchange states keep parser and head storage up to this much per head for reuse. */
#define HX_KEEP_BYTES 8192

typedef struct hp_s hp_t;
typedef struct hp_worker_s hp_worker_t;
typedef struct hconn_s hconn_t;
typedef struct hx_s hx_t;
typedef struct uconn_s uconn_t;
typedef struct hp_tunnel_s hp_tunnel_t;

/* ---- per worker ---------------------------------------------------------------------------- */

/* What 04 keeps in every backend object (02's identity, backend.h: its level-4 extension,
 * registered with gw_lb_backend_ext), one slot per worker: that worker's idle connections
 * to it, the TLS session its next connections offer (hutls.h), and its response counters
 * (hmetrics.h). Living in the backend, they follow it from one generation to the next and
 * go with it: no table indexed by a position in some config (docs/plan-issue17.md, step 7).
 * A slot is written by its worker only, padded so that two workers never share a line. */
typedef struct hp_bslot_s {
    gw_upool_t pool;
    gw_tls_session_t tls;
    gw_hmetrics_backend_t res;
    uint64_t listed; /* the id of the last generation this worker followed that lists it */
} __attribute__((aligned(64))) hp_bslot_t;

typedef struct hp_backend_s {
    unsigned nworkers;
    /* then, from the next 64-byte boundary (02 aligns extension blocks to less), the slots:
     * hp_bslot_t [nworkers] */
} hp_backend_t;

/* The bytes 04's extension needs for NWORKERS slots, their alignment included. */
#define HP_BACKEND_SIZE(nworkers) (sizeof(hp_backend_t) + 63 + (nworkers) * sizeof(hp_bslot_t))

/* Worker W's slot of backend B (which must have 04's extension: every backend 02 builds
 * once gw04 prepared). */
static inline hp_bslot_t *hp_bslot(const gw_backend_t *b, unsigned w)
{
    uintptr_t at = ((uintptr_t)b->ext[4] + sizeof(hp_backend_t) + 63) & ~(uintptr_t)63;
    return (hp_bslot_t *)at + w;
}

/* Why a connection waits in an idle list: what its timeout means (on_idle_timer). */
typedef enum {
    IDLE_FRESH,        /* accepted, no byte yet: request_head_timeout */
    IDLE_KEEPALIVE,    /* between requests: keepalive_timeout */
    IDLE_HANDSHAKE,    /* TLS handshake running: its expiry is a handshake failure (htls.c) */
    IDLE_PROXY_HEADER, /* PROXY header awaited: its expiry is counted (hproxyproto.c) */
    IDLE_NKINDS
} idle_kind_t;

/* Connections waiting for the same reason with the same timeout, oldest first, and the one
 * timer for them. Keyed by (kind, timeout), not by listener: listeners that share a timeout
 * share the list, and a listener a reload adds, or a timeout it changes, just finds (or
 * makes) its list. Allocated alone (its timer handle lives in it) and freed in the timer's
 * close callback. */
typedef struct idle_list_s {
    hconn_t *head, *tail;
    uv_timer_t timer;
    uint64_t timeout_ms;
    hp_worker_t *hw;
    idle_kind_t kind;
} idle_list_t;

struct hp_worker_s {
    hp_t *hp;
    gw_worker_t *w;
    idle_list_t **idle;     /* [nidle]: the idle lists in use, by (kind, timeout) */
    size_t nidle, idle_cap; /* a handful: one per distinct timeout of each kind */
    hconn_t *busy;          /* connections with an exchange (for drain and force close) */
    uconn_t *uconns;        /* every upstream connection not yet closing */
    hx_t *hx_free;
    size_t nhx_free;
    gw_wb_t wb; /* the writer: every byte this worker sends goes through it */
    uint64_t rng;
    gw_http_stats_t *stats;
    uv_timer_t pool_timer; /* on_pool_sweep */
    uint64_t listed;       /* the generation http_worker_gen last stamped (hp_bslot_t.listed);
                            * 0 until the first reload */
    gw_lograte_t err_log;
    bool started;
};

/* Whether HW's worker may keep B's connections pooled: B is not DRAINING and, once this
 * worker followed a reload, the generation it follows lists B. The stamp decides without
 * waiting for 02's DRAINING mark, which the control thread sets only after it published (a
 * worker may follow the new generation first); the mark covers releases before the worker
 * follows. A backend new in a generation the worker has not followed yet is not pooled
 * until it does (a lost reuse, never a leak). */
static inline bool hp_backend_poolable(const hp_worker_t *hw, const gw_backend_t *b)
{
    if (atomic_load_explicit(&b->health, memory_order_acquire) == GW_HEALTH_DRAINING)
        return false;
    return hw->listed == 0 || hp_bslot(b, hw->w->id)->listed == hw->listed;
}

/* 04's state: the runtime's layer 4 (gw_runtime_layer(rt, 4)). */
struct hp_s {
    const gw_config_t *cfg;
    gw_lb_t *lb;                   /* layer 2: picks per request (gw_lb_pick_upstream) */
    const gw_tcp_picker_t *picker; /* layer 1: admit, report and retry, as 01 uses them */
    gw_hmetrics_t *hm;             /* labelled metrics: by route, by backend (hmetrics.h) */
    hp_worker_t *workers;          /* [cfg->workers] */
    gw_passthrough_t *pt; /* tcp listeners' tls_passthrough (NULL: none); its picker is layer 1 */
    hp_utls_t *utls;      /* upstreams' TLS: metrics (hutls.h) */
    hp_tls_t *tls;        /* listeners' tls: counters by name, tcp picker (htls.h) */
    hp_pp_t *pp;          /* listeners' proxy_protocol counters by name (hproxyproto.h) */
};

/* ---- connections --------------------------------------------------------------------------- */

typedef enum {
    C_IDLE,    /* waiting for a request: no exchange state */
    C_ACTIVE,  /* an exchange is in progress */
    C_LINGER,  /* answered and shut down: discarding input until EOF or a timeout */
    C_CLOSING, /* closing */
} cstate_t;

struct hconn_s {
    gw_tcp_stream_t sock; /* common/stream.h: reads, writes, close; waits when out of buffers */
    gw_stream_t *s;       /* what carries the client's bytes: &sock.s, or a TLS stream over
                           * sock (htls.c); reads, writes and closes go through it, while the
                           * peer's address and TCP options stay on sock */
    hp_worker_t *hw;
    gw_listener_t *l;     /* held (gw_listener_hold) until the connection is freed */
    hx_t *x;              /* the exchange, or NULL when idle */
    hconn_t *prev, *next; /* an idle list, or hw->busy */
    idle_list_t *list;    /* the idle list holding it, NULL if in hw->busy */
    uint64_t idle_since;  /* loop ms when it joined its idle list */
    gw_wdest_t out;       /* what is queued for the client */
    cstate_t state;
    bool reading, admitted, closing, in_process;
    bool out_paused; /* the client's queue passed high_water: no reading, no next request */
    uint8_t pending_closes;
    hp_pp_wait_t *ppw; /* a PROXY header in pieces (hproxyproto.c), else NULL */
    /* The client's address (the one a PROXY header carried, on such a listener): an IPv4 or IPv6
     * peer only (128 bytes of sockaddr_storage would be a third of an idle connection). */
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } peer;
};

/* C's listener's http config: the newest generation's (the last one's for a listener a
 * reload removed). Borrowed: read it again after the loop turn, never keep the pointer.
 * What an exchange uses after its head comes from x->hcfg, its pinned generation's. */
static inline const gw_http_listener_cfg_t *hp_lcfg(const hconn_t *c)
{
    return gw_http_listener_cfg(atomic_load_explicit(&c->l->cfg, memory_order_acquire));
}

/* 04's part of a configuration generation (g->layers[4]): the middleware chain, with its
 * per-route state, built for that generation's routes. */
typedef struct hp_gen_s {
    gw_chain_t *chain;
    hp_tls_gen_t *tls;     /* listeners' TLS credentials (htls.h), by position in this generation */
    gw_hmetrics_gen_t *hm; /* route series by position in this generation (hmetrics.h) */
    hp_utls_gen_t *utls;   /* upstream TLS series by upstream position (hutls.h) */
} hp_gen_t;

/* G's TLS credentials (NULL: G has no 04 slot). */
static inline const hp_tls_gen_t *hp_gen_tls(const gw_gen_t *g)
{
    const hp_gen_t *hg = g->layers[4];
    return hg != NULL ? hg->tls : NULL;
}

static inline gw_chain_t *hp_gen_chain(const gw_gen_t *g)
{
    const hp_gen_t *hg = g->layers[4];
    return hg != NULL ? hg->chain : NULL;
}

/* The chain an answer of X's uses: its pinned generation's after a head, else the current
 * one's (borrowed: an answer before any head names no route, so nothing is kept). */
gw_chain_t *hp_chain(const hconn_t *c);

typedef enum {
    T_NONE,
    T_HEAD,     /* the request head must be complete: 408 */
    T_BODY,     /* client silent while its body streams: 408 (or close) */
    T_RESPONSE, /* upstream response head: 504 */
    T_STREAM,   /* response streaming: listener idle_timeout, then close */
    T_LINGER,   /* lingering close */
    T_RETRY,    /* backoff before another attempt */
    T_TUNNEL,   /* an Upgrade tunnel: tunnel_idle_timeout of silence both ways (htunnel.c) */
} tkind_t;

/* ---- the exchange's state ----------------------------------------------------------------- */

/* An exchange is two phases, the request's (rq) and the response's (rs), plus a few named
 * groups of facts below. The phases move on these events (room: function):
 *
 *   rq:  RQ_HEAD ──head parsed (hexchange: hp_on_request_head)──► RQ_WAIT_UPSTREAM
 *        RQ_WAIT_UPSTREAM ──upstream ready, head sent (hupstream: upstream_ready)──► RQ_BODY
 *        RQ_WAIT_UPSTREAM ──route buffers the body (hupstream: hp_buffer_start)──► RQ_BODY
 *        RQ_HEAD, RQ_WAIT_UPSTREAM ──local answer, connection kept (hanswer:
 *                                    hp_send_local)──► RQ_BODY: the body is read and dropped
 *        RQ_BODY ──attempt failed, retried (hp_attempt_failed)──► RQ_WAIT_UPSTREAM
 *        RQ_BODY ──reqbuf full (hp_buffer_data)──► RQ_WAIT_UPSTREAM
 *        RQ_BODY ──last byte parsed (hexchange: hp_request_end)──► RQ_DONE
 *        any ──bytes the parser rejects (hclient: hp_client_process)──► RQ_DONE, then a
 *                 400-class answer (or, once a response started, the connection closes)
 *   rs:  RS_NONE ──final response head (hexchange: hp_on_response_head)──► RS_HEAD_SENT
 *        RS_HEAD_SENT ──response end (hp_response_end)──► RS_DONE
 *        RS_NONE ──local answer (hanswer: hp_send_local)──► RS_DONE
 *
 *                 RS_NONE               RS_HEAD_SENT             RS_DONE
 *   RQ_HEAD       reading the head      -                        local answer (408, 400):
 *                                                                close after it
 *   RQ_WAIT_UP..  picking, connecting   -                        local answer, body unread:
 *                 (client reads held)                            close after it
 *   RQ_BODY       body streams or       early response while     local answer (the body is
 *                 fills reqbuf          the body still streams   dropped) or early response
 *   RQ_DONE       waiting for the       response streams         both done: hp_exchange_done
 *                 response (T_RESPONSE)                          (next request or idle)
 *
 * The exchange ends in hp_exchange_done (or with the connection). When the connection
 * takes another request, hx_clear_exchange (hexchange.c) puts the phases back at
 * RQ_HEAD/RS_NONE and resets every group below: the one place where that happens. */

/* Request progress. */
typedef enum { RQ_HEAD, RQ_WAIT_UPSTREAM, RQ_BODY, RQ_DONE } rqstate_t;
/* Response progress. */
typedef enum { RS_NONE, RS_HEAD_SENT, RS_DONE } rsstate_t;

/* A route's request_buffering, as a sub-phase of the request body (hupstream.c). */
typedef enum {
    BUF_OFF,     /* the body streams to the upstream as it comes (or there is none) */
    BUF_FILLING, /* RQ_BODY with no backend yet: body bytes go to reqbuf (hp_buffer_start) */
    BUF_WHOLE,   /* reqbuf holds the whole body (hp_request_end): sent again on a retry */
    BUF_SPILLED, /* the body outgrew reqbuf (hp_buffer_data): what it holds and the span
                  * that did not fit (rest_ch) are sent once, then the body streams */
} bufstate_t;

/* How a body is delimited on its way out (the way in is gw_h1_body_t). */
typedef enum {
    FRAME_AS_IS,   /* Content-Length, or no body */
    FRAME_CHUNKED, /* chunked (the request: the client's was chunked; the response: an
                    * HTTP/1.1 client gets chunked whatever the upstream's framing was) */
    FRAME_CLOSE,   /* the response only: an HTTP/1.0 client's body ends when we close */
} frame_t;

/* What the retry decision reads about the attempts (hupstream.c: retry_inputs, hretry.h).
 * Set by hupstream.c only. Reset for each exchange in hx_clear_exchange; within it:
 * picked ends with the pick's release, backend_failed once the decision reported it,
 * resp_bytes at each attempt's start (upstream_ready); stale_retried stays for the exchange
 * (the once-only retry), and body_started too (the body cannot be read twice). */
typedef struct {
    bool picked;         /* a backend is picked: the picker waits for its report */
    bool reused;         /* the attempt's connection came from the pool */
    bool backend_failed; /* the backend failed us: reported when the pick is released */
    bool stale_retried;  /* the once-only retry after a reused connection died was used */
    bool body_started;   /* body bytes went upstream that reqbuf cannot send again: no retry */
    bool interim_sent;   /* a 1xx went to the client (hexchange.c): no retry either */
    bool resp_bytes;     /* a response byte arrived in this attempt */
} hx_retry_t;

/* How this exchange ends, for each connection. Set as the exchange learns it; reset for
 * each exchange in hx_clear_exchange. */
typedef struct {
    bool client_keep;    /* the client connection may persist (its head asked, no drain) */
    bool close_after;    /* close the client connection when this response is written */
    bool error_sent;     /* a local answer went out: what remains of the request is dropped */
    bool upstream_close; /* the upstream connection is not reused (it said close, sent
                          * stray bytes or EOF-delimited the body, or a write failed) */
} hx_end_t;

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
    /* The configuration generation the request head arrived in, pinned from the head to
     * the end of the exchange (hp_exchange_settle), or to its 101 (hp_exchange_switch):
     * routing, the chain, the pick and every retry use this one, however many reloads
     * happen meanwhile. NULL before a head and in a tunnel. */
    gw_snap_t *gsnap;
    const gw_gen_t *gen;
    const gw_glistener_t *gl;           /* this connection's listener in GEN */
    const gw_http_listener_cfg_t *hcfg; /* its http config in GEN */
    gw_chunk_t *rbuf;                   /* client bytes not yet parsed (pipelining), or NULL */
    uconn_t *u;                         /* the attached upstream connection */
    gw_tcp_pick_t pick;
    const gw_addr_t *backend_addr;
    const gw_http_route_t *route;
    size_t upstream;  /* index of the target's upstream */
    unsigned attempt; /* connect attempt within the current pick sequence (02's retries) */
    unsigned tries;   /* attempts in all, for the retry middleware */
    /* The phases (the diagram above). */
    rqstate_t rq;
    rsstate_t rs;
    bufstate_t buffering; /* within RQ_BODY: where the body goes (request_buffering) */
    /* What the request head said. */
    uint8_t client_minor; /* the client's HTTP/1.x version: the head sent upstream says 1.1 */
    bool head_method;     /* HEAD: the response has no body, whatever it announces */
    bool idempotent;      /* may be sent again (RFC 9110 9.2.2) */
    bool upgrade_asked;   /* Connection: upgrade with an Upgrade field (kept until routed) */
    uint8_t upgrade;      /* gw_upgrade_t: what the route made of it (htunnel.c) */
    hp_tunnel_t *tunnel;  /* after an accepted 101: the tunnel (htunnel.c), else NULL */
    char method[24];      /* the request method, NUL-terminated, for the router and retries */
    gw_reqbuf_t reqbuf;   /* the body, read before the pick (a route's request_buffering) */
    gw_chunk_t *rest_ch;  /* a body span that did not fit in reqbuf: sent right after it */
    const char *rest;
    size_t rest_len;
    uint64_t body_deadline; /* loop ms by which the request body must be in (0: none) */
    gw_h1_body_t req_body, resp_body_in; /* how the bodies came in */
    frame_t req_out, resp_out;           /* how they go out (set with each head) */
    hx_retry_t retry;                    /* the retry decision's facts */
    hx_end_t end;                        /* how the exchange ends */
    char tls_end[64]; /* chain.end after a failed upstream TLS handshake: upstream_tls_REASON */
    /* Reading and bookkeeping facts (not phases: they hold across several). */
    bool exchange_open; /* gw_chain_request ran: gw_chain_finish owed */
    bool req_paused;    /* client reads stopped for backpressure (the upstream's queue) */
    bool client_eof;    /* the client half-closed after its request */
    bool metered;       /* a request head came: its duration is owed to hmetrics (once) */
    /* The exchange became a tunnel (hp_exchange_switch): the chain's tail is owed at the
     * end instead of gw_chain_finish, and the generation is no longer pinned. */
    bool switched;
    gw_chain_tail_t *tail; /* what the switch kept for the end (NULL: nothing owed) */
    uint64_t bytes_in, bytes_out;
    uint64_t bytes_counted_in, bytes_counted_out; /* of those, added to gw_bytes_total */
};

struct uconn_s {
    gw_tcp_stream_t sock; /* the socket: connect, nodelay */
    gw_stream_t *s;       /* what the engine reads and writes: &sock.s, or the TLS stream on it */
    hp_utls_conn_t *tls;  /* the TLS part (hutls.h), NULL for a plaintext upstream */
    uv_connect_t connect_req;
    uv_timer_t timer; /* connect timeout, idle timeout in the pool */
    hp_worker_t *hw;
    hx_t *x; /* attached exchange, or NULL */
    /* Its backend, held (gw_backend_hold) from the connect to the last close callback and
     * dropped last of all: the pool and TLS session below live in the backend object. A
     * worker never frees a backend (02's control reaper does, once nobody holds it). */
    gw_backend_t *b;
    gw_upool_t *pool;    /* the pool of its backend on this worker (hp_bslot) */
    gw_upool_entry_t pe; /* its place in that pool while idle (upool.h) */
    /* What it needs of its upstream's keepalive settings, copied at connect from the
     * generation its exchange pinned (a pooled connection outlives generations). The sweep
     * takes max_idle and idle_timeout from the serving generation. */
    uint64_t max_requests;   /* keepalive.max_requests (0: no limit) */
    unsigned proxy_protocol; /* the upstream's proxy_protocol: 0, 1 or 2 (never pooled) */
    uconn_t *prev, *next;    /* hw->uconns */
    gw_wdest_t out;          /* what is queued for the upstream */
    unsigned requests;       /* requests sent on it */
    bool connected, closing, paused, reading;
    uint8_t pending_closes;
};
/* The worker's loop. */
static inline uv_loop_t *hp_loop(hp_worker_t *hw)
{
    return &hw->w->loop;
}

/* ---- hproxy.c: the worker shell ------------------------------------------------------------ */

/* Takes C out of its idle list or the busy list (wherever it is; nothing when in none). */
void hp_list_unlink(hconn_t *c);
/* Puts C at the back of IL, idle since now (its deadline is the latest). */
void hp_list_idle(hconn_t *c, idle_list_t *il);
/* HW's idle list of KIND with timeout TIMEOUT_MS, made on first use; NULL when out of
 * memory. Valid until hp_idle_trim closes it, which it does only to an empty list. */
idle_list_t *hp_idle_list_for(hp_worker_t *hw, idle_kind_t kind, uint64_t timeout_ms);
/* The timeout of KIND for a connection on a listener with http config LC. */
uint64_t hp_idle_timeout(const gw_http_listener_cfg_t *lc, idle_kind_t kind);
/* Puts C in its listener's idle list of KIND (the listener's newest config's timeout).
 * False when no list could be made (out of memory): C is not in any idle list then, and
 * the caller closes it. */
bool hp_list_idle_kind(hconn_t *c, idle_kind_t kind);
/* Closes HW's empty idle lists whose (kind, timeout) no listener of G uses (G NULL: every
 * empty list): a reload that changed a timeout leaves no timer behind. Worker thread. */
void hp_idle_trim(hp_worker_t *hw, const gw_gen_t *g);
/* Puts C in the worker's busy list (it has an exchange: drain and force close find it). */
void hp_list_busy(hconn_t *c);
/* Starts the worker's pool sweep unless it runs already (a connection was just pooled). */
void hp_pool_sweep_arm(hp_worker_t *hw);

/* ---- hwrite.c: bytes out, through the worker's writer -------------------------------------- */

/* Queues head H for D, followed by EXTRA_LEN bytes of EXTRA (a small local body, or
 * NULL); returns the bytes sent (0 when D has failed). */
size_t hp_out_head(hp_worker_t *hw, gw_wdest_t *d, const gw_h1_head_t *h, const char *extra,
                   size_t extra_len);
/* Queues the last chunk of a chunked body for D, with trailers T (or none: NULL). */
size_t hp_out_last_chunk(hp_worker_t *hw, gw_wdest_t *d, const gw_h1_head_t *t);
/* Queues N body bytes at DATA (inside read chunk CH) for D, as a chunk when CHUNKED. */
size_t hp_out_body(hp_worker_t *hw, gw_wdest_t *d, gw_chunk_t *ch, const char *data, size_t n,
                   bool chunked);
/* buffers.high_water and buffers.low_water: where reading the other side stops, resumes. */
size_t hp_high_water(hp_worker_t *hw);
size_t hp_low_water(hp_worker_t *hw);

/* ---- hexchange.c: the exchange ------------------------------------------------------------- */

/* The exchange state for C's next request (from the free list, or new); NULL when out of
 * memory. */
hx_t *hp_hx_get(hconn_t *c);
/* Gives X back: to the worker's free list (its timer handle kept for the next exchange),
 * or, when the list is full, its storage freed and its timer closed (which frees X). */
void hp_hx_put(hp_worker_t *hw, hx_t *x);
/* Frees what X's parsers and heads hold (not X itself: see hp_on_hx_timer_closed). */
void hp_hx_free_storage(hx_t *x);
/* The close callback of an exchange's timer (timer.data is the exchange): frees it. */
void hp_on_hx_timer_closed(uv_handle_t *h);
/* Sets X's one timer to KIND, due in MS. */
void hp_hx_timer_start(hx_t *x, tkind_t kind, uint64_t ms);
/* Sets X's timer to T_BODY: MS of client silence while the request body streams, or the
 * time left to the whole body's deadline (x->body_deadline), whichever ends first. */
void hp_body_timer_start(hx_t *x, uint64_t ms);
/* Counts a response of STATUS in the worker's 2xx..5xx counters. */
void hp_count_status(hp_worker_t *hw, unsigned status);
/* Records the duration of C's request, from its head to NOW_NS, by route and by the class
 * of the status sent (499 when none was): once per request head, at the response's end or,
 * failing that, when the exchange ends. */
void hp_meter_request(hconn_t *c, uint64_t now_ns);
/* Ends the exchange's bookkeeping (upstream closed, pick released, the chain's finish),
 * ABORTED when the client went away mid-way. */
void hp_exchange_settle(hconn_t *c, bool aborted);
/* C's exchange became a tunnel (its 101 went out): everything of the exchange but its end
 * is settled now (the chain's switch: breaker, retry slot, in-flight count; the route's
 * request series), its pick keeps the backend only (gw_lb_tok_detach), and the generation
 * pin goes: a tunnel holds its listener, backend, upstream connection and the access log's
 * tail, not a configuration (issue 17). The end comes through hp_exchange_settle. */
void hp_exchange_switch(hconn_t *c);
/* The request head of C's exchange is parsed: decide, and start the upstream side. */
void hp_on_request_head(hconn_t *c);
/* Request body bytes (N at DATA, inside chunk CH), and the request's end. */
void hp_request_data(hconn_t *c, gw_chunk_t *ch, const char *data, size_t n);
void hp_request_end(hconn_t *c);
/* The response head is parsed; response body bytes; the response's end. */
void hp_on_response_head(hconn_t *c);
void hp_response_data(hconn_t *c, gw_chunk_t *ch, const char *data, size_t n);
void hp_response_end(hconn_t *c);
/* Both halves of C's exchange are complete: log it, then the next request or idle. */
void hp_exchange_done(hconn_t *c);

/* ---- hclient.c: the client connection ------------------------------------------------------ */

/* The writer's callbacks for a client connection's queue (hconn_t.out). */
extern const gw_wdest_ops_t hp_client_ops;
/* The read callback of a client connection. */
void hp_on_client_read(gw_stream_t *s, gw_chunk_t *ch, ssize_t nread);
/* Closes C (with a reset when RESET), settling its exchange. */
void hp_client_close(hconn_t *c, bool reset);
/* After an error answer: FIN after the answer, then read and discard for a while. */
void hp_client_linger(hconn_t *c);
/* Turns C's reads on or off (a failure to start closes C). */
void hp_client_set_reading(hconn_t *c, bool on);
/* Turns C's reads on or off as its exchange and queue allow. */
void hp_client_update_reading(hconn_t *c);
/* Whether C's queue is past high_water: then no request is read or started. */
bool hp_client_backlogged(hconn_t *c);
/* Parses what C's exchange holds (x->rbuf) as far as the exchange can take it. */
void hp_client_process(hconn_t *c);

/* ---- hanswer.c: local answers -------------------------------------------------------------- */

/* Whether the process drains or a reload removed the listener (the answer then closes). */
bool hp_draining(const hconn_t *c);
/* Sends x->local (status, middleware fields) with a JSON body naming STATUS and REASON;
 * CLOSE ends the connection after it. */
void hp_send_local(hconn_t *c, unsigned status, const char *reason, bool close);
/* The same with an empty local head: a plain error answer. */
void hp_answer(hconn_t *c, unsigned status, const char *reason, bool close);

/* ---- hupstream.c: the upstream side -------------------------------------------------------- */

/* Picks a backend for attempt x->attempt of C's exchange and attaches a connection. */
void hp_upstream_start(hconn_t *c);
/* The backoff before another attempt is over. */
void hp_on_retry_due(hconn_t *c);
/* The current attempt failed before any response byte: retry, or answer (hretry.h). */
void hp_attempt_failed(hconn_t *c, gw_hretry_failure_t failure, int uv_status, const char *why);
/* The backend answered STATUS, a final head of which nothing went to the client yet: true
 * when the request is sent again instead (the route's retry_on lists STATUS: the answer is
 * dropped with its upstream connection), false when the answer goes on to the client. */
bool hp_attempt_answered(hconn_t *c, unsigned status);
/* Gives back what the exchange's pick holds, reporting a backend failure if one was seen. */
void hp_pick_release(hp_worker_t *hw, hx_t *x);
/* The backend of X's pick answered with final STATUS: passive health counts it (02's
 * outlier response runs), once per attempt, whatever the exchange does with it next. */
void hp_pick_response(hx_t *x, unsigned status);
/* U's TLS handshake is over (hutls.c): FAILURE is NULL, or why it failed (a static name). */
void hp_upstream_tls_done(uconn_t *u, const char *failure);
/* Closes U (with a reset when RESET and it is connected). */
void hp_uconn_close(uconn_t *u, bool reset);
/* Cuts the link between U and its exchange. */
void hp_uconn_detach(uconn_t *u);
/* The exchange is done with U: back to its pool when REUSABLE and allowed, else closed. */
void hp_uconn_release(uconn_t *u, bool reusable);
/* Turns U's reads on or off. */
void hp_upstream_set_reading(uconn_t *u, bool on);
/* The whole request went upstream: the response timer starts. */
void hp_request_sent(hconn_t *c);
/* The request body ended: the last chunk and the allowed trailers, when chunked. */
void hp_request_body_end(hconn_t *c);
/* A route's request_buffering: whether the body is read whole before the pick (and then
 * starts it), and the body bytes while it is. */
bool hp_buffer_start(hconn_t *c);
void hp_buffer_data(hconn_t *c, gw_chunk_t *ch, const char *data, size_t n);

/* ---- htunnel.c: Upgrade tunnels ----------------------------------------------------------- */

/* After routing: the route's Upgrade decision (upgrade.h) applied to the request head
 * (Upgrade kept with `Connection: upgrade`, or removed). ASKED: the client asked for one.
 * False when it answered (431). */
bool hp_tunnel_request(hconn_t *c, bool asked);
/* The upstream sent a 101 head, which ended at OFF in its read chunk CH: a tunnel (the 101
 * goes to the client, then the bytes after both heads), or a 502 when it may not switch. */
void hp_tunnel_start(hconn_t *c, gw_chunk_t *ch, size_t off);
/* C's exchange timer fired for T_TUNNEL. */
void hp_tunnel_timer(hconn_t *c);
/* C's exchange is settled with its tunnel open: the tunnel ends (its upstream connection
 * closes, with a reset when ABORTED and the tunnel did not end by itself). */
void hp_tunnel_settle(hconn_t *c, bool aborted);

#endif
