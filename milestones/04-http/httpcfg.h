/* httpcfg.h - milestone 04's configuration keys: http listeners (limits, timeouts, trusted
 * proxies), their routes and upstream keep-alive pools; a gw_config_ext_t that chains to
 * milestone 03's. A route's `middleware:` list is read here, but each middleware's options
 * are decoded, printed and freed by its own file (mw.h: its ops table; mw_cfg.h: the
 * decoded options); the list below repeats them for an overview.
 *
 * The YAML (every key optional unless marked):
 *
 *   listeners:
 *     - name: web
 *       address: 127.0.0.1:8080
 *       protocol: http
 *       http:
 *         request_head_timeout: 10s     # whole request head must arrive within it: 408
 *         body_timeout: 30s             # longest silence while a request body streams: 408
 *         keepalive_timeout: 60s        # idle client connection between requests: closed
 *         response_timeout: 30s         # upstream response head after the request: 504
 *         max_head_size: 16KiB          # request head on the wire: 431   (1KiB..1MiB)
 *         max_uri: 8KiB                 # request target: 414              (256B..64KiB)
 *         max_headers: 100              # field lines: 431                 (1..1000)
 *         max_body: 0                   # request body, 0 = no limit: 413 (routes override)
 *         request_body_deadline: 0s     # whole request body within this (0 = none): 408
 *         trusted_proxies: [10.0.0.0/8, "::1"]   # CIDRs whose X-Forwarded-* we keep
 *         tunnel_idle_timeout: 1h       # an Upgrade tunnel with no byte either way: closed
 *         forward_trailers: [X-Checksum]  # trailer fields passed on, both directions;
 *                                         # default [] = every trailer is dropped
 *       routes:                         # required for http listeners, at least one
 *         - name: users                 # default "route N" (N from 0)
 *           match:                      # required; every condition optional
 *             host: api.example.com     # or "*.example.com"; absent = any host
 *             path: /users/:id          # exact match (segments, :params) ...
 *             path_prefix: /api         # ... or a prefix match (not both); neither = "/" prefix
 *             methods: [GET, HEAD]      # absent = any method
 *             headers: {X-Canary: "1"}  # exact values, all must hold
 *           upstream: app               # exactly one of upstream / split
 *           split:
 *             targets:
 *               - {upstream: v1, weight: 95}
 *               - {upstream: v2, weight: 5}
 *             sticky_header: X-User     # or sticky_cookie: session (not both)
 *           host_rewrite: app.internal  # Host sent upstream; absent = the client's Host
 *           max_body: 10MiB             # 413 above it; absent = the listener's
 *           request_buffering: 64KiB    # bodies up to this are read whole before a backend
 *                                       # is picked (0 = stream everything; up to 64MiB)
 *           websocket: true             # = upgrade: [websocket]
 *           upgrade: [websocket]        # protocols a client may switch to (a 101 makes a
 *                                       # tunnel); never h2c or h2; default none
 *           middleware:                 # run in this order on the request, and in reverse
 *             - request_id: {}          #   order on the response head (options: each
 *                                       #   middleware's file, mw_<name>.c)
 *             - forwarded: {}          # on by default: put first when not listed;
 *                                      # {x_real_ip: true} adds X-Real-IP; false: only Via
 *             - strip_prefix: /api
 *             - rewrite: {prefix: /old, replace: /new}
 *             - headers:
 *                 request:  {set: {X-A: "1"}, add: {X-B: "2"}, remove: [X-C]}
 *                 response: {set: {...}, add: {...}, remove: [...]}
 *             - cors: {origins: ["https://a.example"] or ["*"], methods: [GET, POST],
 *                      headers: [Content-Type], expose: [X-Total], credentials: false,
 *                      max_age: 10m}
 *             - jwt: {keys: /path/jwks.json (or a PEM certificate file), kid: k1 (PEM only),
 *                     secret: "...32+ bytes..." (instead of keys), issuers: [...],
 *                     audiences: [...], skew: 60s, require_exp: true, realm: api,
 *                     claims: {sub: X-User-Id, email: X-User-Email}}
 *             - rate_limit: {rate: 100, burst: 200, key: client_ip | header | jwt_sub,
 *                            header: X-Api-Key (with key: header), max_keys: 100000}
 *             - breaker: {consecutive_failures: 5, failure_rate_percent: 50,
 *                         min_requests: 20, window: 10s, open_timeout: 5s,
 *                         half_open_max: 1, success_to_close: 2}
 *             - retry: {max_attempts: 2}
 *             - access_log: {file: /var/log/gw/access.log}   # "-" = stdout
 *   upstreams:
 *     app:
 *       keepalive: {max_idle: 32, idle_timeout: 60s, max_requests: 1000}
 *       tls: {...}                      # listeners' and upstreams' tls: tlsconf.h
 *
 * Also: forward_trailers names must be tokens, listed once (in any case), never a name of
 * gw_trailers_forbidden (framing, routing, authentication, ...: RFC 9110 6.5.1) and never the
 * claim header of a jwt middleware on any route of the listener; the list applies to request
 * and response trailers alike, and a route's `headers` rules for that direction (remove, set)
 * drop those names from its trailers too (gw_chain_trailers). A split target's weight is
 * required; cors `origins` is required and `methods`
 * defaults to [GET, HEAD, POST]; skew and max_age are whole seconds; each middleware kind
 * appears at most once per route; rate accepts up to 6 decimals. -T prints a jwt `secret`
 * as a placeholder, never the secret itself.
 *
 * Every mistake is reported at its line:column; nothing is silently ignored. */
#ifndef GW_HTTPCFG_H
#define GW_HTTPCFG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "03-resilience/resconfig.h"
#include "04-http/mw.h"
#include "04-http/mw_basic.h"
#include "04-http/mw_split.h"
#include "04-http/router.h"
#include "04-http/trailers.h"
#include "04-http/upgrade.h"
#include "config.h"

/* ---- routes --------------------------------------------------------------------------- */

typedef struct gw_http_target_s {
    char *upstream;
    size_t upstream_index; /* into gw_config_t.upstreams */
    unsigned weight;       /* 0..100; 100 for a plain `upstream:` */
} gw_http_target_t;

typedef struct gw_http_route_s {
    char *name;         /* configured, or "route N" */
    size_t index;       /* position in the listener's list */
    unsigned line, col; /* where it was configured, for messages */
    /* match (the router keeps its own copies) */
    char *host;
    char *path;
    gw_path_match_t path_match;
    unsigned methods;
    gw_route_header_t *headers; /* owned name/value strings */
    size_t nheaders;
    /* where to */
    gw_http_target_t *targets; /* [ntargets]; one for `upstream:` */
    size_t ntargets;
    gw_split_target_t *split_targets; /* [ntargets], parallel to targets (names borrowed) */
    gw_split_t split;                 /* over split_targets (also for one target) */
    gw_split_key_t sticky;
    char *sticky_name;  /* header or cookie name, NULL when not sticky */
    char *host_rewrite; /* NULL: keep the client's Host */
    uint64_t max_body;  /* 0: the listener's max_body */
    /* request_buffering, default 0: a request body up to this size is read completely
     * before a backend is picked (and can then be replayed); larger ones stream. */
    uint64_t request_buffering;
    /* websocket / upgrade: the protocols an Upgrade may switch to (names owned; none by
     * default: every Upgrade is stripped, upgrade.h) */
    gw_upgrade_allow_t upgrade;
    gw_mw_cfg_t *mw;
    size_t nmw;
} gw_http_route_t;

/* ---- listeners and upstreams --------------------------------------------------------------- */

typedef struct gw_http_listener_cfg_s {
    uint64_t head_timeout_ms;      /* request_head_timeout, default 10s, 1ms..1h */
    uint64_t body_timeout_ms;      /* body_timeout, default 30s, 1ms..1h */
    uint64_t keepalive_timeout_ms; /* keepalive_timeout, default 60s, 1ms..1h */
    uint64_t response_timeout_ms;  /* response_timeout, default 30s, 1ms..1h */
    uint64_t max_head;             /* max_head_size, default 16KiB */
    uint64_t max_uri;              /* max_uri, default 8KiB */
    uint64_t max_headers;          /* max_headers, default 100 */
    uint64_t max_body;             /* max_body, default 0 (no limit) */
    uint64_t body_deadline_ms;     /* request_body_deadline, default 0 (none), ..24h: 408 */
    uint64_t tunnel_idle_ms;       /* tunnel_idle_timeout, default 1h, 1ms..24h (htunnel.c) */
    gw_cidr_t *trusted;            /* trusted_proxies */
    size_t ntrusted;
    /* forward_trailers, compiled: never NULL once loaded; empty (the default) drops every
     * trailer. Read through gw_chain_trailers, which adds the route's rules. */
    gw_trailers_allow_t *forward_trailers;
    gw_http_route_t *routes;
    size_t nroutes;
    gw_router_t *router; /* built at load from routes; each match's user is its route */
    /* A tcp listener with tls or tls_passthrough has this struct for those two alone. */
    struct gw_tls_listener_cfg_s *tls;        /* tls (tlsconf.h), NULL without */
    struct gw_passthrough_cfg_s *passthrough; /* tls_passthrough (passthrough.h), tcp only */
    struct gw_pp_listener_cfg_s *pp;          /* proxy_protocol (ppconf.h), NULL without */
} gw_http_listener_cfg_t;

typedef struct gw_http_upstream_cfg_s {
    uint64_t max_idle; /* idle connections kept per backend per worker, default 32 (0..10000) */
    uint64_t idle_timeout_ms; /* default 60s */
    uint64_t max_requests;    /* requests per upstream connection, default 1000, 0 = no limit */
    struct gw_tls_upstream_cfg_s *tls; /* tls (tlsconf.h), NULL without */
    unsigned proxy_protocol;           /* proxy_protocol (ppconf.h): 0 (none), 1 or 2 */
} gw_http_upstream_cfg_t;

/* The milestone-04 part of listener L (NULL for tcp listeners) and upstream U (defaults
 * when the key is absent). */
const gw_http_listener_cfg_t *gw_http_listener_cfg(const gw_listener_cfg_t *l);
const gw_http_upstream_cfg_t *gw_http_upstream_cfg(const gw_upstream_cfg_t *u);

/* gw04's extension: level 4, 03's hooks plus these keys. */
extern const gw_config_ext_t gw_http_config_ext;

#endif
