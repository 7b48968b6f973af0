/* chain.h - the per-route middleware chain at run time: the engine (hexchange.c) calls it on
 * every request head, on every response head, to ask whether a failed attempt may be
 * retried, and once when the exchange ends. Each middleware is one file with one ops
 * table (mw.h); the chain builds their per-route state (rate-limit buckets, breakers, retry
 * budgets, access log files) and calls their hooks in the configured order, without knowing
 * any of them by name. It picks the split target itself (a route key, not a middleware).
 *
 * Nothing here does network I/O. The access log is the only file I/O: one write(2) of one
 * whole line per request on an O_APPEND descriptor, so lines from several workers never
 * interleave. */
#ifndef GW_CHAIN_H
#define GW_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "04-http/h1.h"
#include "04-http/httpcfg.h"
#include "metrics.h"

/* The run-time state of every http route of one config, shared by all workers (atomics and
 * 03's striped tables inside). */
typedef struct gw_chain_s gw_chain_t;

/* Builds the state for CFG (which must outlive it): a keyed limiter per rate_limit, a
 * breaker per breaker middleware, a retry budget per route with retry, an open file per
 * distinct access_log path (opened O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC, 0644). Control
 * thread, before the workers start. Returns NULL with ERR filled (ERRLEN bytes) when a file
 * cannot be opened or memory runs out. */
gw_chain_t *gw_chain_new(const gw_config_t *cfg, char *err, size_t errlen);

/* The same for a reload: the chain of the next configuration generation, CFG, carrying
 * state from PREV (the chain serving now; NULL: carry nothing). A route of CFG takes the
 * state of PREV's route with the same listener name and route name, middleware by
 * middleware of the same kind, when that kind's state_keeps says the options allow it (a
 * rate limit with the same rate, burst and key keeps its table; a breaker and a retry
 * budget always keep theirs). Carried states are shared until PREV is freed: both chains
 * hold a count on them (control thread), and the last to go frees them. Name your routes:
 * an unnamed one is named by its position, so inserting a route before it moves it. */
gw_chain_t *gw_chain_next(const gw_config_t *cfg, const gw_chain_t *prev, char *err, size_t errlen);
void gw_chain_free(gw_chain_t *c); /* NULL is fine; closes the files */

/* SIGUSR1: reopens the access log files (after logrotate moved them). Control thread. */
void gw_chain_reopen(gw_chain_t *c);

/* The client connection's TLS as an exchange sees it (htls.c fills it when the handshake
 * completes; it lives as long as the connection). */
typedef struct gw_hx_tls_s {
    const char *version;     /* "TLSv1.2" */
    const char *cipher;      /* the suite's IANA name: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 */
    const char *sni;         /* the server name the client asked for; NULL: none */
    bool resumed;            /* the handshake resumed a cached session */
    bool client_cert;        /* a client certificate was given and verified (mTLS) */
    const char *cert_cn;     /* ... its subject CN ("" when it has none) */
    const char *cert_sha256; /* ... the SHA-256 of its DER, lower-case hex */
} gw_hx_tls_t;

/* One request/response exchange as the chain sees it. The engine zeroes it (gw_hx_reset),
 * fills the inputs, and keeps it until gw_chain_finish. */
typedef struct gw_hx_s {
    /* ---- inputs, set by the engine ---- */
    size_t listener;                    /* index into cfg->listeners */
    const gw_http_listener_cfg_t *lcfg; /* that listener's http config */
    const gw_http_route_t *route;       /* the matched route; NULL: none (404 by the engine) */
    const struct sockaddr *client;      /* the TCP peer */
    bool tls;                           /* the listener terminated TLS (tls_info is set) */
    const gw_hx_tls_t *tls_info;        /* NULL on plaintext */
    uint64_t start_ns;                  /* monotonic ns when the request head was complete */
    int64_t wall_ms; /* wall clock ms at the same moment (access log time, JWT "now") */
    uint64_t *rng;   /* the worker's random state, for request ids and the split */
    /* ---- set by gw_chain_request ---- */
    char request_id[GW_MW_REQID_MAX + 1]; /* "" until the request_id middleware ran */
    size_t target;                        /* index into route->targets to forward to */
    unsigned max_attempts;                /* 1, or the retry middleware's max_attempts */
    unsigned retry_on; /* 0, or the retry middleware's retry_on (hretry.h GW_HRETRY_ON_*) */
    /* ---- set by the engine before gw_chain_finish ---- */
    unsigned status;              /* status sent to the client; 0 when none was */
    uint64_t bytes_in, bytes_out; /* on the client connection for this exchange */
    const char *upstream;         /* name of the upstream used, NULL if none */
    const char *backend;          /* address text of the last backend tried, NULL if none */
    const char *route_name;       /* set by gw_chain_switch, which clears route (see there) */
    bool upstream_failed;         /* the upstream failed (connect, reset, 502/504): breaker */
    /* Why the exchange ended before its response was complete, for the access log's "end"
     * (a static string; NULL: it completed, or the status tells it all, as a 502 or 504
     * the gateway answered does). When the response head already went out, the status is
     * the upstream's and only this says the client got less than announced:
     *   "upstream_reset"  the upstream connection was reset in the middle of the body
     *   "upstream_eof"    the upstream closed before the end of the body
     *   "upstream_bad_body" the body broke HTTP framing (a bad chunk size line)
     *   "idle_timeout"    nothing moved for the listener's idle_timeout mid-response
     *   "client_gone"     the client closed or reset the connection mid-response
     *   "drain_timeout"   the drain deadline reset it (SIGTERM, then drain_timeout); set
     *                     before the head too, where the status is 499 (nothing was sent)
     *   "upstream_tls_REASON" the upstream's TLS handshake failed (REASON: gw_tls_error_name,
     *                     or timeout): with the gateway's 502 (hutls.h)
     *   "upstream_tls_truncated" a body delimited by the upstream's close ended without
     *                     close_notify: maybe cut, so cut for the client too
     * The engine may add words; a log reader treats any non-null value as "cut short". */
    const char *end;
    /* ---- private to the chain and its middleware: each field names the one file that
     * writes it (gw_hx_reset zeroes them all) ---- */
    bool started;     /* chain.c: gw_chain_request ran, the route's in-flight count has X */
    bool preflight;   /* mw_cors.c: a CORS preflight was answered: no decoration on top */
    char sub[128];    /* mw_jwt.c: JWT subject, for rate_limit's jwt_sub key ("" when none) */
    char *log_method; /* mw_access_log.c: copies for the log line (malloc'd; freed here) */
    char *log_path;
    bool breaker_admitted; /* mw_breaker.c: admitted, its outcome is to be recorded... */
    bool breaker_trial;    /* ...as one of the half-open trials */
    bool retry_held;       /* mw_retry.c: a retry budget slot is held */
} gw_hx_t;

/* The next number of the worker's random generator (x->rng: splitmix64; a thread-local one
 * when NULL). Request ids and split draws need spread, not secrecy (an id is no credential). */
uint64_t gw_hx_random(gw_hx_t *x);

/* The exchange's request id: the one it has (the request_id middleware's), or a fresh one made
 * now (32 hex digits from gw_hx_random) and kept in x->request_id. One rule for every
 * exchange: the id is made when first needed, by the middleware or by whatever reports it
 * (a local answer's body and X-Request-ID, the access log line), and they all show the same
 * one. Only the request_id middleware sends it upstream and on proxied responses. */
const char *gw_hx_request_id(gw_hx_t *x);

/* X's route's name: x->route's, or after gw_chain_switch the copy it kept; NULL: none. */
static inline const char *gw_hx_route_name(const gw_hx_t *x)
{
    return x->route != NULL ? x->route->name : x->route_name;
}

/* Zeroes X for a new exchange (frees what a previous one left, if gw_chain_finish was not
 * called). */
void gw_hx_reset(gw_hx_t *x);

/* Runs the route's middleware in order over REQ, the request head after hop-by-hop fields
 * were removed and the path normalised (the engine did both). Returns 0: forward REQ to
 * x->route->targets[x->target]; or an HTTP status >= 100 to answer locally, with RESP (an
 * empty response head) holding that status and the fields the answer needs
 * (WWW-Authenticate for 401, Retry-After for 429, the CORS fields of a preflight answer).
 * The engine then adds X-Request-ID through gw_chain_response, a JSON error body (not for
 * 204) and framing, and sends it. Statuses: 204/403 (CORS preflight), 400 (a rewrite that
 * normalisation refuses), 401 (jwt), 429 (rate_limit), 431 (a head that grew past its
 * limit), 503 (breaker open), 500 (anything else unexpected). */
int gw_chain_request(gw_chain_t *c, gw_hx_t *x, gw_h1_head_t *req, gw_h1_head_t *resp);

/* Decorates RESP, the response head about to go to the client (from the upstream, or a
 * local answer or error), in reverse middleware order: response header rules, CORS fields,
 * X-Request-ID when the request_id middleware ran. REQ is the client's request head as
 * received (for CORS's Origin). Works with x->route NULL (only the request id, if any). */
void gw_chain_response(gw_chain_t *c, gw_hx_t *x, const gw_h1_head_t *req, gw_h1_head_t *resp);

/* Filters T, the trailer section of the request (RESPONSE false: before the engine writes
 * the last chunk upstream) or of the response (RESPONSE true: before the last chunk goes to
 * the client), with gw_trailers_filter: names in the listener's forward_trailers pass
 * (x->lcfg; none when it is NULL), forbidden names never do, and neither do the names the
 * route's headers middleware removes or sets in that direction. On requests, the route's
 * jwt claim headers are dropped too, even if a hand-built config listed them. Works with
 * x->route NULL (the allow-list alone). Returns how many fields were dropped. */
size_t gw_chain_trailers(gw_chain_t *c, const gw_hx_t *x, gw_h1_head_t *t, bool response);

/* Attempt ATTEMPT (1 = the first) failed before any response byte reached the client (the
 * engine checked x->retry_on): may attempt ATTEMPT + 1 start, and after how long
 * (*DELAY_MS: 03's backoff with full jitter, 0 when none)? Only for idempotent methods (GET,
 * HEAD, OPTIONS, TRACE, PUT, DELETE: RFC 9110 9.2.2) given in METHOD, while ATTEMPT <
 * x->max_attempts, and when the route's retry budget (03's gw_retry_budget_t, by default
 * 20% of requests in flight, at least 3) grants a slot; the slot is released by the next
 * call or by gw_chain_finish. *DELAY_MS is set only on true. */
bool gw_chain_may_retry(gw_chain_t *c, gw_hx_t *x, const char *method, unsigned attempt,
                        uint64_t *delay_ms);

/* Access log lines that could not be written (disk full, I/O error) since start, over every
 * access_log file: one relaxed load per file. Any thread. */
uint64_t gw_chain_log_lost(const gw_chain_t *c);

/* Writes the chain's families into P (the engine's extra-metrics hook calls it once per
 * scrape): gw_access_log_lost_total{file="..."}, one sample per access_log file (a family
 * with no sample when no route logs). C may be NULL. Any thread. */
void gw_chain_metrics(const gw_chain_t *c, gw_prom_t *p);

/* The exchange ended, whatever happened: records the breaker outcome (failure when
 * x->upstream_failed or status >= 500), releases a retry slot, writes the access log line
 * (time, request id, client, method, path, status, bytes both ways, upstream, backend,
 * latency from x->start_ns to NOW_NS, route, end) and frees what X holds. A line that cannot
 * be written is counted (gw_chain_log_lost) and warned about at most every 10 s per file. Call
 * exactly once per exchange that reached gw_chain_request; harmless on one that did not. */
void gw_chain_finish(gw_chain_t *c, gw_hx_t *x, uint64_t now_ns);

/* What an exchange that became a tunnel still owes its middleware (see gw_chain_switch). */
typedef struct gw_chain_tail_s gw_chain_tail_t;

/* X's exchange became a tunnel at NOW_NS (its 101 went out): the HTTP exchange is over
 * except for the report of its end, which comes when the tunnel ends, maybe hours and many
 * reloads later. So that the tunnel holds nothing of C's configuration generation, this
 * runs now what gw_chain_finish would run for every middleware but those that report the
 * end (mw.h state_hold: the access log): the breaker records the 101, a retry slot goes
 * back, the route's in-flight count drops. Their states are held in *TAIL instead, with
 * copies of the names their finish reads (route, upstream, backend), and x->route is
 * cleared (gw_hx_route_name answers). *TAIL is NULL when nothing is owed (X never reached
 * gw_chain_request). False when out of memory: nothing was done, and X still needs C
 * (gw_chain_finish at the end, as for any exchange). */
bool gw_chain_switch(gw_chain_t *c, gw_hx_t *x, uint64_t now_ns, gw_chain_tail_t **tail);

/* The tunnel ended: X's status, bytes and end are final. Runs the finish TAIL kept (the
 * access log line, latency from x->start_ns to NOW_NS), gives its states back, frees TAIL
 * (NULL is fine) and what X holds. Any worker thread, no generation needed. */
void gw_chain_tail_finish(gw_chain_tail_t *tail, gw_hx_t *x, uint64_t now_ns);

#endif
