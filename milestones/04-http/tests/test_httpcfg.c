/* test_httpcfg.c - milestone 04's configuration keys (http listeners, routes, middleware,
 * upstream keep-alive), their errors at line:column, and -T's round trip. */
#include "gwtest.h"

#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "04-http/hretry.h"
#include "04-http/httpcfg.h"
#include "04-http/passthrough.h"
#include "04-http/mw_cfg.h"
#include "error.h"
#include "failalloc.h"
#include "loadio.h"
#include "fixtures/jwt_certs.h"

/* The decoded options of middleware M (mw_cfg.h), by kind. */
#define CFG_REWRITE(m) ((const gw_mw_rewrite_cfg_t *)(m)->cfg)
#define CFG_HEADERS(m) ((const gw_mw_headers_cfg_t *)(m)->cfg)
#define CFG_CORS(m) ((const gw_cors_policy_t *)(m)->cfg)
#define CFG_JWT(m) ((const gw_mw_jwt_cfg_t *)(m)->cfg)
#define CFG_RATE_LIMIT(m) ((const gw_mw_rate_limit_cfg_t *)(m)->cfg)
#define CFG_BREAKER(m) ((const gw_breaker_cfg_t *)(m)->cfg)
#define CFG_RETRY(m) ((const gw_mw_retry_cfg_t *)(m)->cfg)
#define CFG_ACCESS_LOG(m) ((const gw_mw_access_log_cfg_t *)(m)->cfg)
#define CFG_FORWARDED(m) ((const gw_mw_forwarded_cfg_t *)(m)->cfg)

static gw_config_t cfg;
static char *errs;
static size_t errs_len;
static char pem_path[64]; /* cert_rsa_pem written to a file, for jwt `keys` */

static int teardown(void **state)
{
    (void)state;
    gw_config_free(&cfg, &gw_http_config_ext);
    free(errs);
    errs = NULL;
    return 0;
}

static int load_text(const char *text, const gw_config_ext_t *ext)
{
    free(errs);
    errs = NULL;
    FILE *f = open_memstream(&errs, &errs_len);
    int rc = gw_config_load_string("c.yaml", text, ext, &cfg, f);
    fclose(f);
    return rc;
}

/* LISTENER_KEYS start on line 6, indented by 4 under an http listener; UPSTREAM_KEYS go
 * into upstream v2, the last one. */
static int load2(const char *listener_keys, const char *upstream_keys)
{
    char text[8192 + 4096]; /* room for a full keys buffer (8192) and the rest */
    snprintf(text, sizeof text,
             "workers: 1\n"
             "listeners:\n"
             "  - name: web\n"
             "    address: 127.0.0.1:18080\n"
             "    protocol: http\n"
             "%s"
             "upstreams:\n"
             "  app:\n"
             "    backends:\n"
             "      - address: 127.0.0.1:19001\n"
             "  v1:\n"
             "    backends:\n"
             "      - address: 127.0.0.1:19002\n"
             "  v2:\n"
             "    backends:\n"
             "      - address: 127.0.0.1:19003\n"
             "%s",
             listener_keys, upstream_keys);
    return load_text(text, &gw_http_config_ext);
}

static int load(const char *listener_keys)
{
    return load2(listener_keys, "");
}

/* Loads LISTENER_KEYS, which must fail, with ERROR among the messages. */
static void expect_error(const char *listener_keys, const char *error)
{
    int rc = load(listener_keys);
    if (rc == 0)
        fail_msg("loaded, but expected: %s", error);
    gw_assert_contains(errs, error);
}

/* One route on lines 6..8; with MW, its one middleware item is on line 10, its name at
 * column 13. */
#define ROUTE_HEAD                                                                                 \
    "    routes:\n"                                                                                \
    "      - match: {path_prefix: /}\n"                                                            \
    "        upstream: app\n"
#define ROUTE ROUTE_HEAD
#define MW(x) ROUTE_HEAD "        middleware:\n          - " x "\n"

static const gw_http_listener_cfg_t *http0(void)
{
    const gw_http_listener_cfg_t *x = gw_http_listener_cfg(&cfg.listeners[0]);
    assert_non_null(x);
    return x;
}

/* ---- defaults and every key ------------------------------------------------------------ */

static void httpcfg_defaults(void **state)
{
    (void)state;
    assert_int_equal(load(ROUTE), 0);
    const gw_http_listener_cfg_t *x = http0();
    assert_int_equal(x->head_timeout_ms, 10000);
    assert_int_equal(x->body_timeout_ms, 30000);
    assert_int_equal(x->keepalive_timeout_ms, 60000);
    assert_int_equal(x->response_timeout_ms, 30000);
    assert_int_equal(x->max_head, 16384);
    assert_int_equal(x->max_uri, 8192);
    assert_int_equal(x->max_headers, 100);
    assert_int_equal(x->max_body, 0);
    assert_int_equal(x->tunnel_idle_ms, 3600000);
    assert_int_equal(x->routes[0].upgrade.n, 0); /* no route tunnels unless it says so */
    assert_int_equal(x->ntrusted, 0);
    assert_non_null(x->forward_trailers); /* an empty list: every trailer is dropped */
    assert_int_equal(gw_trailers_allow_count(x->forward_trailers), 0);
    assert_int_equal(x->nroutes, 1);
    const gw_http_route_t *r = &x->routes[0];
    assert_string_equal(r->name, "route 0");
    assert_int_equal(r->index, 0);
    assert_int_equal(r->line, 7);
    assert_int_equal(r->col, 9);
    assert_null(r->host);
    assert_string_equal(r->path, "/");
    assert_int_equal(r->path_match, GW_PATH_PREFIX);
    assert_int_equal(r->methods, 0);
    assert_int_equal(r->ntargets, 1);
    assert_string_equal(r->targets[0].upstream, "app");
    assert_int_equal(r->targets[0].upstream_index, 0);
    assert_int_equal(r->targets[0].weight, 100);
    assert_int_equal(r->split.n, 1);
    assert_int_equal(r->split.total, 100);
    assert_int_equal(r->sticky, GW_SPLIT_RANDOM);
    assert_null(r->sticky_name);
    assert_null(r->host_rewrite);
    assert_int_equal(r->max_body, 0);
    /* forwarding headers are on by default: the loader adds `forwarded` first */
    assert_int_equal(r->nmw, 1);
    assert_int_equal(r->mw[0].kind, GW_MW_FORWARDED);
    assert_non_null(CFG_FORWARDED(&r->mw[0]));
    assert_false(CFG_FORWARDED(&r->mw[0])->off);
    assert_false(CFG_FORWARDED(&r->mw[0])->x_real_ip);
    assert_non_null(x->router);
    for (size_t i = 0; i < cfg.nupstreams; i++) {
        const gw_http_upstream_cfg_t *u = gw_http_upstream_cfg(&cfg.upstreams[i]);
        assert_int_equal(u->max_idle, 32);
        assert_int_equal(u->idle_timeout_ms, 60000);
        assert_int_equal(u->max_requests, 1000);
    }
    /* 03's part of the listener is still there, with its defaults. */
    assert_int_equal(gw_res_listener_cfg(&cfg.listeners[0])->global_rate, 0);
}

static void httpcfg_tcp_listener_has_no_http_part(void **state)
{
    (void)state;
    assert_int_equal(load_text("listeners:\n"
                               "  - {name: t, address: 127.0.0.1:18081, upstream: app}\n"
                               "upstreams:\n"
                               "  app:\n"
                               "    backends: [{address: 127.0.0.1:19001}]\n",
                               &gw_http_config_ext),
                     0);
    assert_null(gw_http_listener_cfg(&cfg.listeners[0]));
    assert_int_equal(gw_http_upstream_cfg(&cfg.upstreams[0])->max_idle, 32);
}

/* Every 04 key, on lines 6..51. PEM is the jwt key file. */
static void everything(char *buf, size_t size)
{
    snprintf(
        buf, size,
        "    http:\n"
        "      request_head_timeout: 5s\n"
        "      body_timeout: 20s\n"
        "      keepalive_timeout: 2m\n"
        "      response_timeout: 15s\n"
        "      max_head_size: 32KiB\n"
        "      max_uri: 4KiB\n"
        "      max_headers: 50\n"
        "      max_body: 1MiB\n"
        "      trusted_proxies: [10.0.0.0/8, \"::1\"]\n"
        "      forward_trailers: [X-Checksum, content-digest]\n"
        "    routes:\n"
        "      - name: users\n"
        "        match:\n"
        "          host: api.example.com\n"
        "          path: /users/:id\n"
        "          methods: [GET, HEAD]\n"
        "          headers: {X-Canary: \"1\"}\n"
        "        upstream: app\n"
        "        host_rewrite: app.internal\n"
        "        max_body: 10MiB\n"
        "        middleware:\n"
        "          - request_id: {}\n"
        "          - forwarded: {}\n"
        "          - strip_prefix: /api\n"
        "          - rewrite: {prefix: /old, replace: /new}\n"
        "          - headers:\n"
        "              request:  {set: {X-A: \"1\"}, add: {X-B: \"2\"}, remove: [X-C]}\n"
        "              response: {set: {X-D: \"a \\\"q\\\"\"}, remove: [Server, X-Powered-By]}\n"
        "          - cors: {origins: [\"https://a.example\", \"https://b.example\"],\n"
        "                   methods: [GET, POST], headers: [Content-Type, X-Token],\n"
        "                   expose: [X-Total], credentials: true, max_age: 10m}\n"
        "          - jwt: {keys: %s, kid: k1, issuers: [\"https://idp.example\"],\n"
        "                  audiences: [gw04], skew: 30s, require_exp: false, realm: api,\n"
        "                  claims: {sub: X-User-Id, email: X-User-Email}}\n"
        "          - rate_limit: {rate: 2.5, burst: 10, key: header, header: X-Api-Key,\n"
        "                         max_keys: 5000}\n"
        "          - breaker: {consecutive_failures: 3, window: 20s}\n"
        "          - retry: {max_attempts: 3, retry_on: [reset, 503], backoff: 25ms}\n"
        "          - access_log: {file: \"-\"}\n"
        "      - name: canary\n"
        "        match: {path_prefix: /api}\n"
        "        split:\n"
        "          targets:\n"
        "            - {upstream: v1, weight: 95}\n"
        "            - {upstream: v2, weight: 5}\n"
        "          sticky_cookie: session\n"
        "        websocket: true\n"
        "        upgrade: [chat]\n"
        "      - match: {path: /secret, methods: [POST]}\n"
        "        upstream: v2\n"
        "        middleware:\n"
        "          - jwt: {secret: \"0123456789abcdef0123456789abcdef\"}\n"
        "          - cors: {origins: [\"*\"]}\n",
        pem_path);
}

#define KEEPALIVE "    keepalive: {max_idle: 8, idle_timeout: 30s, max_requests: 0}\n"

static void check_everything_route0(const gw_http_route_t *r)
{
    assert_string_equal(r->name, "users");
    assert_string_equal(r->host, "api.example.com");
    assert_string_equal(r->path, "/users/:id");
    assert_int_equal(r->path_match, GW_PATH_EXACT);
    assert_int_equal(r->methods, GW_METHOD_GET | GW_METHOD_HEAD);
    assert_int_equal(r->nheaders, 1);
    assert_string_equal(r->headers[0].name, "X-Canary");
    assert_string_equal(r->headers[0].value, "1");
    assert_string_equal(r->host_rewrite, "app.internal");
    assert_int_equal(r->max_body, 10 * 1024 * 1024);
    assert_int_equal(r->nmw, 11);
    for (size_t i = 0; i < r->nmw; i++)
        assert_int_equal(r->mw[i].kind, (gw_mw_kind_t)i); /* written in enum order */
    assert_int_equal(r->mw[0].line, 28);
    assert_int_equal(r->mw[0].col, 13);
    assert_string_equal(CFG_REWRITE(&r->mw[2])->prefix, "/api");
    assert_null(CFG_REWRITE(&r->mw[2])->replace);
    assert_string_equal(CFG_REWRITE(&r->mw[3])->prefix, "/old");
    assert_string_equal(CFG_REWRITE(&r->mw[3])->replace, "/new");
    const gw_mw_header_rules_t *rq = &CFG_HEADERS(&r->mw[4])->request,
                               *rs = &CFG_HEADERS(&r->mw[4])->response;
    assert_int_equal(rq->nset, 1);
    assert_string_equal(rq->set[0].name, "X-A");
    assert_string_equal(rq->add[0].value, "2");
    assert_string_equal(rq->remove[0], "X-C");
    assert_string_equal(rs->set[0].value, "a \"q\"");
    assert_int_equal(rs->nadd, 0);
    assert_int_equal(rs->nremove, 2);
}

static void check_everything_mw(const gw_mw_cfg_t *mw)
{
    const gw_cors_policy_t *c = CFG_CORS(&mw[5]);
    assert_int_equal(c->norigins, 2);
    assert_string_equal(c->origins[1], "https://b.example");
    assert_false(c->any_origin);
    assert_string_equal(c->methods, "GET, POST");
    assert_string_equal(c->headers, "Content-Type, X-Token");
    assert_string_equal(c->expose, "X-Total");
    assert_true(c->credentials);
    assert_int_equal(c->max_age, 600);
    assert_int_equal(gw_jwt_keyset_count(CFG_JWT(&mw[6])->keys), 1);
    assert_string_equal(CFG_JWT(&mw[6])->kid, "k1");
    assert_string_equal(CFG_JWT(&mw[6])->keys_file, pem_path);
    assert_int_equal(CFG_JWT(&mw[6])->policy.n_issuers, 1);
    assert_string_equal(CFG_JWT(&mw[6])->policy.issuers[0], "https://idp.example");
    assert_string_equal(CFG_JWT(&mw[6])->policy.audiences[0], "gw04");
    assert_int_equal(CFG_JWT(&mw[6])->policy.skew, 30);
    assert_false(CFG_JWT(&mw[6])->policy.require_exp);
    assert_string_equal(CFG_JWT(&mw[6])->realm, "api");
    assert_int_equal(CFG_JWT(&mw[6])->nclaims, 2);
    assert_string_equal(CFG_JWT(&mw[6])->claim_names[1], "email");
    assert_string_equal(CFG_JWT(&mw[6])->claim_headers[1], "X-User-Email");
    assert_true(CFG_RATE_LIMIT(&mw[7])->rate == 2.5);
    assert_int_equal(CFG_RATE_LIMIT(&mw[7])->burst, 10);
    assert_int_equal(CFG_RATE_LIMIT(&mw[7])->key, GW_RL_KEY_HEADER);
    assert_string_equal(CFG_RATE_LIMIT(&mw[7])->header, "X-Api-Key");
    assert_int_equal(CFG_RATE_LIMIT(&mw[7])->max_keys, 5000);
    assert_int_equal(CFG_BREAKER(&mw[8])->consecutive_failures, 3);
    assert_int_equal(CFG_BREAKER(&mw[8])->window_ms, 20000);
    assert_int_equal(CFG_BREAKER(&mw[8])->min_requests, 20); /* 03's default */
    assert_int_equal(CFG_RETRY(&mw[9])->max_attempts, 3);
    assert_int_equal(CFG_RETRY(&mw[9])->retry_on, GW_HRETRY_ON_RESET | GW_HRETRY_ON_503);
    assert_int_equal(CFG_RETRY(&mw[9])->backoff_ms, 25);
    assert_int_equal(CFG_RETRY(&mw[9])->backoff_max_ms, 1000); /* 03's default */
    assert_string_equal(CFG_ACCESS_LOG(&mw[10])->file, "-");
}

static void httpcfg_everything(void **state)
{
    (void)state;
    char keys[8192];
    everything(keys, sizeof keys);
    assert_int_equal(load2(keys, KEEPALIVE), 0);
    const gw_http_listener_cfg_t *x = http0();
    assert_int_equal(x->head_timeout_ms, 5000);
    assert_int_equal(x->body_timeout_ms, 20000);
    assert_int_equal(x->keepalive_timeout_ms, 120000);
    assert_int_equal(x->response_timeout_ms, 15000);
    assert_int_equal(x->max_head, 32768);
    assert_int_equal(x->max_uri, 4096);
    assert_int_equal(x->max_headers, 50);
    assert_int_equal(x->max_body, 1024 * 1024);
    assert_int_equal(x->ntrusted, 2);
    assert_int_equal(x->trusted[0].bits, 8);
    assert_int_equal(x->trusted[1].bits, 128);
    assert_int_equal(gw_trailers_allow_count(x->forward_trailers), 2);
    assert_string_equal(gw_trailers_allow_name(x->forward_trailers, 0), "X-Checksum");
    assert_string_equal(gw_trailers_allow_name(x->forward_trailers, 1), "content-digest");
    assert_true(gw_trailers_allowed(x->forward_trailers, "Content-Digest", 14));
    assert_int_equal(x->nroutes, 3);
    check_everything_route0(&x->routes[0]);
    check_everything_mw(x->routes[0].mw);
    const gw_http_route_t *r = &x->routes[1];
    assert_int_equal(r->ntargets, 2);
    assert_string_equal(r->targets[1].upstream, "v2");
    assert_int_equal(r->targets[1].upstream_index, 2);
    assert_int_equal(r->targets[0].weight, 95);
    assert_int_equal(r->split.total, 100);
    assert_ptr_equal(r->split.t, r->split_targets);
    assert_string_equal(r->split_targets[1].upstream, "v2");
    assert_int_equal(r->sticky, GW_SPLIT_BY_COOKIE);
    assert_string_equal(r->sticky_name, "session");
    r = &x->routes[2];
    assert_string_equal(r->name, "route 2");
    assert_int_equal(r->nmw, 3); /* forwarded (the default), jwt, cors */
    assert_int_equal(r->mw[0].kind, GW_MW_FORWARDED);
    assert_int_equal(gw_jwt_keyset_count(CFG_JWT(&r->mw[1])->keys), 1);
    assert_null(CFG_JWT(&r->mw[1])->keys_file);
    assert_string_equal(CFG_JWT(&r->mw[1])->realm, "gw");
    assert_int_equal(CFG_JWT(&r->mw[1])->policy.skew, GW_JWT_DEFAULT_SKEW);
    assert_true(CFG_JWT(&r->mw[1])->policy.require_exp);
    assert_true(CFG_CORS(&r->mw[2])->any_origin);
    assert_int_equal(CFG_CORS(&r->mw[2])->norigins, 0);
    assert_string_equal(CFG_CORS(&r->mw[2])->methods, "GET, HEAD, POST");
    assert_int_equal(CFG_CORS(&r->mw[2])->max_age, -1);
    const gw_http_upstream_cfg_t *u = gw_http_upstream_cfg(&cfg.upstreams[2]);
    assert_int_equal(u->max_idle, 8);
    assert_int_equal(u->idle_timeout_ms, 30000);
    assert_int_equal(u->max_requests, 0);
    assert_int_equal(gw_http_upstream_cfg(&cfg.upstreams[0])->max_idle, 32);
}

static const char *canary_lookup(void *ctx, const char *name, size_t *len)
{
    (void)ctx;
    if (strcmp(name, "x-canary") != 0)
        return NULL;
    *len = 1;
    return "1";
}

/* The router was built with each route as its user. */
static void httpcfg_router_returns_routes(void **state)
{
    (void)state;
    char keys[8192];
    everything(keys, sizeof keys);
    assert_int_equal(load2(keys, ""), 0);
    const gw_http_listener_cfg_t *x = http0();
    const char *h = "api.example.com";
    const gw_route_match_t *m =
        gw_router_match(x->router, h, strlen(h), "GET", "/users/7", 8, canary_lookup, NULL, NULL);
    assert_non_null(m);
    assert_ptr_equal(m->user, &x->routes[0]);
    m = gw_router_match(x->router, "x", 1, "GET", "/api/v1", 7, canary_lookup, NULL, NULL);
    assert_non_null(m);
    assert_ptr_equal(m->user, &x->routes[1]);
    m = gw_router_match(x->router, "x", 1, "POST", "/secret", 7, canary_lookup, NULL, NULL);
    assert_non_null(m);
    assert_ptr_equal(m->user, &x->routes[2]);
    assert_null(gw_router_match(x->router, "x", 1, "GET", "/secret", 7, canary_lookup, NULL, NULL));
}

static void httpcfg_mw_kind_names(void **state)
{
    (void)state;
    assert_string_equal(gw_mw_kind_name(GW_MW_REQUEST_ID), "request_id");
    assert_string_equal(gw_mw_kind_name(GW_MW_STRIP_PREFIX), "strip_prefix");
    assert_string_equal(gw_mw_kind_name(GW_MW_ACCESS_LOG), "access_log");
    assert_string_equal(gw_mw_kind_name((gw_mw_kind_t)99), "?");
}

/* ---- -T round trip ------------------------------------------------------------------------ */

static void same_strv(const char *const *a, size_t na, const char *const *b, size_t nb)
{
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++)
        assert_string_equal(a[i], b[i]);
}

static void same_opt_str(const char *a, const char *b)
{
    if (!a || !b)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static void same_fields(const gw_mw_field_t *a, size_t na, const gw_mw_field_t *b, size_t nb)
{
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        assert_string_equal(a[i].name, b[i].name);
        assert_string_equal(a[i].value, b[i].value);
    }
}

static void same_rules(const gw_mw_header_rules_t *a, const gw_mw_header_rules_t *b)
{
    same_fields(a->set, a->nset, b->set, b->nset);
    same_fields(a->add, a->nadd, b->add, b->nadd);
    same_strv(a->remove, a->nremove, b->remove, b->nremove);
}

static void same_jwt(const gw_mw_cfg_t *a, const gw_mw_cfg_t *b)
{
    assert_int_equal(gw_jwt_keyset_count(CFG_JWT(a)->keys), gw_jwt_keyset_count(CFG_JWT(b)->keys));
    same_opt_str(CFG_JWT(a)->keys_file, CFG_JWT(b)->keys_file);
    same_opt_str(CFG_JWT(a)->kid, CFG_JWT(b)->kid);
    same_opt_str(CFG_JWT(a)->realm, CFG_JWT(b)->realm);
    const gw_jwt_policy_t *p = &CFG_JWT(a)->policy, *q = &CFG_JWT(b)->policy;
    assert_int_equal(p->skew, q->skew);
    assert_int_equal(p->require_exp, q->require_exp);
    same_strv(p->issuers, p->n_issuers, q->issuers, q->n_issuers);
    same_strv(p->audiences, p->n_audiences, q->audiences, q->n_audiences);
    same_strv((const char *const *)CFG_JWT(a)->claim_names, CFG_JWT(a)->nclaims,
              (const char *const *)CFG_JWT(b)->claim_names, CFG_JWT(b)->nclaims);
    same_strv((const char *const *)CFG_JWT(a)->claim_headers, CFG_JWT(a)->nclaims,
              (const char *const *)CFG_JWT(b)->claim_headers, CFG_JWT(b)->nclaims);
}

static void same_mw(const gw_mw_cfg_t *a, const gw_mw_cfg_t *b)
{
    assert_int_equal(a->kind, b->kind);
    const gw_cors_policy_t *c = CFG_CORS(a), *d = CFG_CORS(b);
    switch (a->kind) {
    case GW_MW_STRIP_PREFIX:
    case GW_MW_REWRITE:
        same_opt_str(CFG_REWRITE(a)->prefix, CFG_REWRITE(b)->prefix);
        same_opt_str(CFG_REWRITE(a)->replace, CFG_REWRITE(b)->replace);
        break;
    case GW_MW_HEADERS:
        same_rules(&CFG_HEADERS(a)->request, &CFG_HEADERS(b)->request);
        same_rules(&CFG_HEADERS(a)->response, &CFG_HEADERS(b)->response);
        break;
    case GW_MW_CORS:
        same_strv(c->origins, c->norigins, d->origins, d->norigins);
        assert_int_equal(c->any_origin, d->any_origin);
        same_opt_str(c->methods, d->methods);
        same_opt_str(c->headers, d->headers);
        same_opt_str(c->expose, d->expose);
        assert_int_equal(c->credentials, d->credentials);
        assert_int_equal(c->max_age, d->max_age);
        break;
    case GW_MW_JWT:
        same_jwt(a, b);
        break;
    case GW_MW_RATE_LIMIT:
        assert_true(CFG_RATE_LIMIT(a)->rate == CFG_RATE_LIMIT(b)->rate);
        assert_int_equal(CFG_RATE_LIMIT(a)->burst, CFG_RATE_LIMIT(b)->burst);
        assert_int_equal(CFG_RATE_LIMIT(a)->key, CFG_RATE_LIMIT(b)->key);
        same_opt_str(CFG_RATE_LIMIT(a)->header, CFG_RATE_LIMIT(b)->header);
        assert_int_equal(CFG_RATE_LIMIT(a)->max_keys, CFG_RATE_LIMIT(b)->max_keys);
        break;
    case GW_MW_BREAKER:
        assert_memory_equal(CFG_BREAKER(a), CFG_BREAKER(b), sizeof(*CFG_BREAKER(a)));
        break;
    case GW_MW_RETRY:
        assert_memory_equal(CFG_RETRY(a), CFG_RETRY(b), sizeof(*CFG_RETRY(a)));
        break;
    case GW_MW_ACCESS_LOG:
        same_opt_str(CFG_ACCESS_LOG(a)->file, CFG_ACCESS_LOG(b)->file);
        break;
    default:
        break;
    }
}

static void same_route(const gw_http_route_t *a, const gw_http_route_t *b)
{
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->index, b->index);
    same_opt_str(a->host, b->host);
    assert_string_equal(a->path, b->path);
    assert_int_equal(a->path_match, b->path_match);
    assert_int_equal(a->methods, b->methods);
    assert_int_equal(a->nheaders, b->nheaders);
    for (size_t i = 0; i < a->nheaders; i++) {
        assert_string_equal(a->headers[i].name, b->headers[i].name);
        assert_string_equal(a->headers[i].value, b->headers[i].value);
    }
    assert_int_equal(a->ntargets, b->ntargets);
    for (size_t i = 0; i < a->ntargets; i++) {
        assert_string_equal(a->targets[i].upstream, b->targets[i].upstream);
        assert_int_equal(a->targets[i].upstream_index, b->targets[i].upstream_index);
        assert_int_equal(a->targets[i].weight, b->targets[i].weight);
    }
    assert_int_equal(a->split.total, b->split.total);
    assert_int_equal(a->sticky, b->sticky);
    same_opt_str(a->sticky_name, b->sticky_name);
    same_opt_str(a->host_rewrite, b->host_rewrite);
    assert_int_equal(a->max_body, b->max_body);
    assert_int_equal(a->upgrade.n, b->upgrade.n);
    for (size_t i = 0; i < a->upgrade.n; i++)
        assert_string_equal(a->upgrade.names[i], b->upgrade.names[i]);
    assert_int_equal(a->nmw, b->nmw);
    for (size_t i = 0; i < a->nmw; i++)
        same_mw(&a->mw[i], &b->mw[i]);
}

static void same_http(const gw_config_t *a, const gw_config_t *b)
{
    assert_int_equal(a->nlisteners, b->nlisteners);
    for (size_t i = 0; i < a->nlisteners; i++) {
        const gw_http_listener_cfg_t *x = gw_http_listener_cfg(&a->listeners[i]);
        const gw_http_listener_cfg_t *y = gw_http_listener_cfg(&b->listeners[i]);
        assert_true((x == NULL) == (y == NULL));
        if (!x)
            continue;
        assert_int_equal(x->head_timeout_ms, y->head_timeout_ms);
        assert_int_equal(x->body_timeout_ms, y->body_timeout_ms);
        assert_int_equal(x->keepalive_timeout_ms, y->keepalive_timeout_ms);
        assert_int_equal(x->response_timeout_ms, y->response_timeout_ms);
        assert_int_equal(x->max_head, y->max_head);
        assert_int_equal(x->max_uri, y->max_uri);
        assert_int_equal(x->max_headers, y->max_headers);
        assert_int_equal(x->max_body, y->max_body);
        assert_int_equal(x->tunnel_idle_ms, y->tunnel_idle_ms);
        assert_int_equal(x->ntrusted, y->ntrusted);
        assert_memory_equal(x->trusted, y->trusted, x->ntrusted * sizeof(*x->trusted));
        assert_int_equal(gw_trailers_allow_count(x->forward_trailers),
                         gw_trailers_allow_count(y->forward_trailers));
        for (size_t j = 0; j < gw_trailers_allow_count(x->forward_trailers); j++)
            assert_string_equal(gw_trailers_allow_name(x->forward_trailers, j),
                                gw_trailers_allow_name(y->forward_trailers, j));
        assert_int_equal(x->nroutes, y->nroutes);
        for (size_t j = 0; j < x->nroutes; j++)
            same_route(&x->routes[j], &y->routes[j]);
        assert_non_null(y->router);
    }
    assert_int_equal(a->nupstreams, b->nupstreams);
    for (size_t i = 0; i < a->nupstreams; i++)
        assert_memory_equal(gw_http_upstream_cfg(&a->upstreams[i]),
                            gw_http_upstream_cfg(&b->upstreams[i]), sizeof(gw_http_upstream_cfg_t));
}

/* Prints cfg, reloads it, compares, and checks that printing the reload gives the same
 * text (so nothing is lost on a second round either). */
static void print_reload_compare(void)
{
    char *text = NULL, *text2 = NULL, *e = NULL;
    size_t len = 0, len2 = 0, elen = 0;
    FILE *f = open_memstream(&text, &len);
    gw_config_print(f, &cfg, &gw_http_config_ext);
    fclose(f);
    gw_config_t again;
    FILE *ef = open_memstream(&e, &elen);
    int rc = gw_config_load_string("printed.yaml", text, &gw_http_config_ext, &again, ef);
    fclose(ef);
    if (rc != 0)
        fail_msg("printed config does not load:\n%s\n%s", text, e);
    same_http(&cfg, &again);
    f = open_memstream(&text2, &len2);
    gw_config_print(f, &again, &gw_http_config_ext);
    fclose(f);
    /* The first line names the file; the rest must be identical. */
    assert_string_equal(strchr(text, '\n'), strchr(text2, '\n'));
    gw_config_free(&again, &gw_http_config_ext);
    free(text);
    free(text2);
    free(e);
}

static void httpcfg_print_reload_equal(void **state)
{
    (void)state;
    char keys[8192];
    everything(keys, sizeof keys);
    assert_int_equal(load2(keys, KEEPALIVE), 0);
    print_reload_compare();
}

static void httpcfg_print_defaults_reload_equal(void **state)
{
    (void)state;
    assert_int_equal(load(ROUTE), 0);
    print_reload_compare();
}

static void httpcfg_print_hides_the_secret(void **state)
{
    (void)state;
    assert_int_equal(load(MW("jwt: {secret: \"0123456789abcdef0123456789abcdef\"}")), 0);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    gw_config_print(f, &cfg, &gw_http_config_ext);
    fclose(f);
    assert_null(strstr(text, "0123456789abcdef"));
    gw_assert_contains(text, "secret: \"<set, not shown");
    free(text);
}

/* ---- listener-level errors ---------------------------------------------------------------- */

static void httpcfg_routes_required(void **state)
{
    (void)state;
    expect_error("", "c.yaml:3:5: missing required key 'routes'");
}

static void httpcfg_routes_empty(void **state)
{
    (void)state;
    expect_error("    routes: []\n", "c.yaml:6:13: routes must not be empty");
}

static void httpcfg_routes_on_tcp_listener(void **state)
{
    (void)state;
    assert_int_not_equal(load_text("listeners:\n"
                                   "  - name: t\n"
                                   "    address: 127.0.0.1:18081\n"
                                   "    upstream: app\n"
                                   "    http: {max_uri: 1KiB}\n"
                                   "    routes:\n"
                                   "      - {match: {}, upstream: app}\n"
                                   "upstreams:\n"
                                   "  app:\n"
                                   "    backends: [{address: 127.0.0.1:19001}]\n",
                                   &gw_http_config_ext),
                         0);
    assert_string_equal(errs, "c.yaml:5:5: http: only for protocol http\n"
                              "c.yaml:6:5: routes: only for protocol http\n");
}

static void httpcfg_routes_after_a_bad_protocol_not_reported(void **state)
{
    (void)state;
    assert_int_not_equal(load_text("listeners:\n"
                                   "  - name: t\n"
                                   "    address: 127.0.0.1:18081\n"
                                   "    protocol: htp\n"
                                   "    upstream: app\n"
                                   "    routes:\n"
                                   "      - {match: {}, upstream: app}\n"
                                   "upstreams:\n"
                                   "  app:\n"
                                   "    backends: [{address: 127.0.0.1:19001}]\n",
                                   &gw_http_config_ext),
                         0);
    assert_string_equal(errs, "c.yaml:4:15: protocol must be one of: tcp, http (got 'htp')\n");
}

static void httpcfg_upstream_on_http_listener(void **state)
{
    (void)state;
    expect_error("    upstream: app\n" ROUTE,
                 "c.yaml:6:5: upstream: an http listener has routes, each naming its upstream");
}

static void httpcfg_http_limits_in_range(void **state)
{
    (void)state;
    expect_error("    http: {max_head_size: 512}\n" ROUTE,
                 "c.yaml:6:27: max_head_size: 512 is out of range 1KiB..1MiB");
    expect_error("    http: {max_uri: 100KiB}\n" ROUTE,
                 "c.yaml:6:21: max_uri: 100KiB is out of range 256..64KiB");
    expect_error("    http: {max_headers: 0}\n" ROUTE,
                 "c.yaml:6:25: max_headers: 0 is out of range 1..1000");
    expect_error("    http: {body_timeout: 2h}\n" ROUTE,
                 "c.yaml:6:26: body_timeout: 2h is out of range 1ms..1h");
}

static void httpcfg_http_unknown_key_did_you_mean(void **state)
{
    (void)state;
    expect_error("    http: {max_header: 5}\n" ROUTE,
                 "c.yaml:6:12: unknown key 'max_header' (did you mean 'max_headers'?)");
}

static void httpcfg_trusted_proxy_bad_item(void **state)
{
    (void)state;
    expect_error("    http: {trusted_proxies: [10.0.0.0/8, 10.0.0.1/8]}\n" ROUTE,
                 "c.yaml:6:42: trusted_proxies: '10.0.0.1/8' is not an address or CIDR");
}

static void httpcfg_forward_trailers_forbidden_names(void **state)
{
    (void)state;
    expect_error("    http: {forward_trailers: [X-Sum, Host]}\n" ROUTE,
                 "c.yaml:6:38: forward_trailers: 'Host' may never be a trailer (routing, RFC "
                 "9110 6.5.1)");
    expect_error("    http: {forward_trailers: [authorization]}\n" ROUTE,
                 "c.yaml:6:31: forward_trailers: 'authorization' may never be a trailer "
                 "(authentication, RFC 9110 6.5.1)");
    expect_error("    http: {forward_trailers: [Content-Length]}\n" ROUTE,
                 "c.yaml:6:31: forward_trailers: 'Content-Length' may never be a trailer "
                 "(message framing, RFC 9110 6.5.1)");
    expect_error("    http: {forward_trailers: [X-Forwarded-For]}\n" ROUTE,
                 "c.yaml:6:31: forward_trailers: 'X-Forwarded-For' may never be a trailer "
                 "(forwarding, set by the gateway)");
}

static void httpcfg_forward_trailers_tokens_in_a_list(void **state)
{
    (void)state;
    expect_error("    http: {forward_trailers: [\"X Sum\"]}\n" ROUTE,
                 "c.yaml:6:31: forward_trailers: 'X Sum' is not a valid header name");
    expect_error("    http: {forward_trailers: X-Sum}\n" ROUTE,
                 "c.yaml:6:30: forward_trailers must be a sequence");
}

/* Listed twice in two spellings: refused, so -T prints what was written. */
static void httpcfg_forward_trailers_listed_once(void **state)
{
    (void)state;
    expect_error("    http: {forward_trailers: [X-Sum, x-sum]}\n" ROUTE,
                 "c.yaml:6:38: forward_trailers: 'x-sum' is already listed");
}

/* A claim header of a jwt on any route of the listener, whichever route comes first. */
static void httpcfg_forward_trailers_not_a_claim_header(void **state)
{
    (void)state;
    expect_error("    http:\n"
                 "      forward_trailers: [X-Sum, x-user-id]\n"
                 "    routes:\n"
                 "      - {match: {path: /a}, upstream: app}\n"
                 "      - name: private\n"
                 "        match: {path: /b}\n"
                 "        upstream: app\n"
                 "        middleware:\n"
                 "          - jwt: {secret: \"0123456789abcdef0123456789abcdef\",\n"
                 "                  claims: {sub: X-User-Id}}\n",
                 "c.yaml:7:33: forward_trailers: 'x-user-id' is the jwt claim header of route "
                 "'private'");
}

static void httpcfg_keepalive_ranges(void **state)
{
    (void)state;
    assert_int_not_equal(load2(ROUTE, "    keepalive: {max_idle: 10001, idle_timeout: 2h}\n"), 0);
    gw_assert_contains(errs, "c.yaml:19:27: max_idle: 10001 is out of range 0..10000");
    gw_assert_contains(errs, "c.yaml:19:48: idle_timeout: 2h is out of range 1ms..1h");
}

static void httpcfg_keepalive_needs_gw04(void **state)
{
    (void)state;
    assert_int_not_equal(load_text("listeners:\n"
                                   "  - {name: t, address: 127.0.0.1:18081, upstream: app}\n"
                                   "upstreams:\n"
                                   "  app:\n"
                                   "    backends: [{address: 127.0.0.1:19001}]\n"
                                   "    keepalive: {max_idle: 1}\n",
                                   &gw_res_config_ext),
                         0);
    gw_config_free(&cfg, &gw_res_config_ext);
    assert_string_equal(errs, "c.yaml:6:5: keepalive: needs gw04 or later\n");
}

/* ---- routes ----------------------------------------------------------------------------- */

/* websocket: true and upgrade: [names] make one list; tunnel_idle_timeout is the http
 * block's. */
static void httpcfg_upgrade_lists(void **state)
{
    (void)state;
    assert_int_equal(load("    http: {tunnel_idle_timeout: 90s}\n" ROUTE_HEAD
                          "        websocket: true\n"
                          "        upgrade: [chat, MQTT]\n"),
                     0);
    const gw_http_listener_cfg_t *x = http0();
    assert_int_equal(x->tunnel_idle_ms, 90000);
    const gw_upgrade_allow_t *a = &x->routes[0].upgrade;
    assert_int_equal(a->n, 3);
    assert_string_equal(a->names[0], "websocket");
    assert_string_equal(a->names[1], "chat");
    assert_string_equal(a->names[2], "MQTT");
    print_reload_compare();
}

static void httpcfg_upgrade_refused(void **state)
{
    (void)state;
    expect_error(ROUTE_HEAD "        upgrade: [websocket, h2c]\n",
                 "c.yaml:9:30: upgrade: 'h2c' is never tunneled: a backend that switches to "
                 "HTTP/2 behind the gateway would serve requests it never routed, checked or "
                 "logged (h2c smuggling)");
    expect_error(ROUTE_HEAD "        upgrade: [H2]\n", "c.yaml:9:19: upgrade: 'H2' is never");
    expect_error(ROUTE_HEAD "        upgrade: [websocket/13]\n",
                 "c.yaml:9:19: upgrade: 'websocket/13' is not a protocol name");
    expect_error(ROUTE_HEAD "        upgrade: [\"a b\"]\n", "c.yaml:9:19: upgrade: 'a b' is not");
    expect_error(ROUTE_HEAD "        websocket: true\n        upgrade: [WebSocket]\n",
                 "c.yaml:10:19: upgrade: 'WebSocket' is already allowed");
    expect_error(ROUTE_HEAD "        upgrade: [a, b, c, d, e, f, g, h, i]\n",
                 "c.yaml:9:43: upgrade: more than 8 protocols");
    expect_error(ROUTE_HEAD "        upgrade: websocket\n", "c.yaml:9:18: upgrade");
    expect_error(ROUTE_HEAD "        websocket: yes please\n", "c.yaml:9:20: websocket");
    expect_error("    http: {tunnel_idle_timeout: 0s}\n" ROUTE, "c.yaml:6:33: tunnel_idle_timeout");
    expect_error("    http: {tunnel_idle_timeout: 25h}\n" ROUTE,
                 "c.yaml:6:33: tunnel_idle_timeout");
}

static void httpcfg_match_required(void **state)
{
    (void)state;
    expect_error("    routes:\n      - upstream: app\n",
                 "c.yaml:7:9: missing required key 'match'");
}

static void httpcfg_path_and_prefix_exclusive(void **state)
{
    (void)state;
    expect_error("    routes:\n"
                 "      - match: {path: /a, path_prefix: /b}\n"
                 "        upstream: app\n",
                 "c.yaml:7:27: path and path_prefix are exclusive");
}

static void httpcfg_path_must_start_with_slash(void **state)
{
    (void)state;
    expect_error("    routes:\n"
                 "      - match: {path_prefix: api}\n"
                 "        upstream: app\n",
                 "c.yaml:7:30: path_prefix: 'api' must start with '/'");
}

static void httpcfg_unknown_method(void **state)
{
    (void)state;
    expect_error("    routes:\n"
                 "      - match: {methods: [GET, get]}\n"
                 "        upstream: app\n",
                 "c.yaml:7:32: methods: 'get' is not one of GET, HEAD");
}

static void httpcfg_upstream_and_split_exclusive(void **state)
{
    (void)state;
    expect_error("    routes:\n"
                 "      - match: {}\n"
                 "        upstream: app\n"
                 "        split: {targets: [{upstream: v1, weight: 1}]}\n",
                 "c.yaml:9:9: upstream and split are exclusive");
    expect_error("    routes:\n"
                 "      - match: {}\n",
                 "c.yaml:7:9: a route needs `upstream` or `split`");
}

static void httpcfg_unknown_upstream_at_name(void **state)
{
    (void)state;
    expect_error("    routes:\n"
                 "      - match: {}\n"
                 "        upstream: nope\n",
                 "c.yaml:8:19: unknown upstream 'nope'");
    expect_error("    routes:\n"
                 "      - match: {}\n"
                 "        split:\n"
                 "          targets:\n"
                 "            - {upstream: v1, weight: 50}\n"
                 "            - {upstream: v3, weight: 50}\n",
                 "c.yaml:11:26: unknown upstream 'v3'");
}

static void httpcfg_split_weights(void **state)
{
    (void)state;
    expect_error("    routes:\n"
                 "      - match: {}\n"
                 "        split: {targets: [{upstream: v1, weight: 101}]}\n",
                 "c.yaml:8:50: weight: 101 is out of range 0..100");
    expect_error(
        "    routes:\n"
        "      - match: {}\n"
        "        split: {targets: [{upstream: v1, weight: 0}, {upstream: v2, weight: 0}]}\n",
        "c.yaml:8:26: split: every weight is 0");
    expect_error(
        "    routes:\n"
        "      - match: {}\n"
        "        split: {targets: [{upstream: v1, weight: 1}, {upstream: v1, weight: 2}]}\n",
        "c.yaml:8:65: upstream 'v1' is already a target of this split");
    expect_error("    routes:\n"
                 "      - match: {}\n"
                 "        split: {targets: []}\n",
                 "c.yaml:8:26: targets must not be empty");
}

static void httpcfg_sticky_exclusive(void **state)
{
    (void)state;
    expect_error("    routes:\n"
                 "      - match: {}\n"
                 "        split:\n"
                 "          targets: [{upstream: v1, weight: 1}]\n"
                 "          sticky_header: X-User\n"
                 "          sticky_cookie: sid\n",
                 "c.yaml:11:11: sticky_header and sticky_cookie are exclusive");
    expect_error("    routes:\n"
                 "      - match: {}\n"
                 "        split:\n"
                 "          targets: [{upstream: v1, weight: 1}]\n"
                 "          sticky_header: \"X User\"\n",
                 "c.yaml:10:26: sticky_header: 'X User' is not a valid header name");
}

static void httpcfg_duplicate_route_at_its_position(void **state)
{
    (void)state;
    expect_error("    routes:\n"
                 "      - match: {path_prefix: /a}\n"
                 "        upstream: app\n"
                 "      - name: again\n"
                 "        match: {path_prefix: /a}\n"
                 "        upstream: v1\n",
                 "c.yaml:9:9: route 1: same host, path, methods and headers as route 0");
}

static void httpcfg_router_rejects_bad_path(void **state)
{
    (void)state;
    expect_error("    routes:\n"
                 "      - match: {path: /a/../b}\n"
                 "        upstream: app\n",
                 "c.yaml:7:9: route 0: ");
}

static void httpcfg_duplicate_route_name(void **state)
{
    (void)state;
    expect_error("    routes:\n"
                 "      - {name: a, match: {path: /a}, upstream: app}\n"
                 "      - {name: a, match: {path: /b}, upstream: app}\n",
                 "c.yaml:8:16: duplicate route name 'a'");
}

static void httpcfg_route_max_body_range(void **state)
{
    (void)state;
    expect_error("    routes:\n"
                 "      - {match: {}, upstream: app, max_body: 0}\n",
                 "c.yaml:7:46: max_body: 0 is out of range 1..1024GiB");
}

/* ---- middleware --------------------------------------------------------------------------- */

static void httpcfg_unknown_middleware_did_you_mean(void **state)
{
    (void)state;
    expect_error(MW("cros: {origins: [\"*\"]}"),
                 "c.yaml:10:13: unknown middleware 'cros' (did you mean 'cors'?)");
    /* its options are not reported again as unknown keys */
    assert_null(strstr(errs, "origins"));
    expect_error(MW("gzip: {}"), "c.yaml:10:13: unknown middleware 'gzip' (known: request_id");
}

static void httpcfg_middleware_shape(void **state)
{
    (void)state;
    expect_error(MW("{cors: {origins: [\"*\"]}, retry: {}}"),
                 "c.yaml:10:13: each middleware must be a mapping with one key");
    expect_error(MW("request_id"), "c.yaml:10:13: each middleware must be a mapping with one key");
    expect_error(MW("request_id: 5"), "c.yaml:10:25: request_id must be a mapping (got '5')");
    expect_error(MW("request_id: {len: 5}"), "c.yaml:10:26: unknown key 'len'");
}

static void httpcfg_middleware_once_per_route(void **state)
{
    (void)state;
    expect_error(ROUTE_HEAD "        middleware:\n"
                            "          - retry: {}\n"
                            "          - retry: {max_attempts: 3}\n",
                 "c.yaml:11:13: retry: already in this route's middleware");
}

/* Forwarding headers are on by default (issue 14): a route without `forwarded` gets it as its
 * first middleware, so a `headers` rule later in the list still has the last word; `false`
 * turns it off, `{x_real_ip: true}` adds X-Real-IP. */
static void httpcfg_forwarded_default_off_and_options(void **state)
{
    (void)state;
    assert_int_equal(load(ROUTE_HEAD
                          "        middleware:\n"
                          "          - request_id: {}\n"
                          "          - headers: {request: {remove: [X-Forwarded-For]}}\n"),
                     0);
    const gw_http_route_t *r = &http0()->routes[0];
    assert_int_equal(r->nmw, 3);
    assert_int_equal(r->mw[0].kind, GW_MW_FORWARDED);
    assert_int_equal(r->mw[1].kind, GW_MW_REQUEST_ID);
    assert_int_equal(r->mw[2].kind, GW_MW_HEADERS);
    print_reload_compare();
    teardown(NULL);

    assert_int_equal(load(MW("forwarded: false")), 0);
    r = &http0()->routes[0];
    assert_int_equal(r->nmw, 1);
    assert_int_equal(r->mw[0].kind, GW_MW_FORWARDED);
    assert_true(CFG_FORWARDED(&r->mw[0])->off);
    print_reload_compare();
    teardown(NULL);

    assert_int_equal(load(ROUTE_HEAD "        middleware:\n"
                                     "          - request_id: {}\n"
                                     "          - forwarded: {x_real_ip: true}\n"),
                     0);
    r = &http0()->routes[0];
    assert_int_equal(r->nmw, 2); /* where it was written, not moved first */
    assert_int_equal(r->mw[1].kind, GW_MW_FORWARDED);
    assert_false(CFG_FORWARDED(&r->mw[1])->off);
    assert_true(CFG_FORWARDED(&r->mw[1])->x_real_ip);
    print_reload_compare();
    teardown(NULL);

    assert_int_equal(load(MW("forwarded: true")), 0);
    assert_false(CFG_FORWARDED(&http0()->routes[0].mw[0])->off);
    teardown(NULL);

    expect_error(MW("forwarded: 1"),
                 "c.yaml:10:24: forwarded: use a mapping ({} or {x_real_ip: true}) or false");
    expect_error(MW("forwarded: {x_real_ip: yes}"), "c.yaml:10:36: x_real_ip");
    expect_error(MW("forwarded: {real_ip: true}"), "c.yaml:10:25: unknown key 'real_ip'");
}

static void httpcfg_strip_prefix_and_rewrite(void **state)
{
    (void)state;
    expect_error(MW("strip_prefix: api"), "c.yaml:10:27: strip_prefix: 'api' must start with '/'");
    expect_error(MW("strip_prefix: /api/"), "c.yaml:10:27: strip_prefix: '/api/' must not end");
    expect_error(MW("strip_prefix: {a: 1}"), "c.yaml:10:27: strip_prefix must be a string");
    expect_error(MW("rewrite: {prefix: /a}"), "c.yaml:10:22: missing required key 'replace'");
}

static void httpcfg_headers_names_and_values(void **state)
{
    (void)state;
    expect_error(MW("headers: {request: {set: {\"X A\": \"1\"}}}"),
                 "c.yaml:10:39: set: 'X A' is not a valid header name");
    expect_error(MW("headers: {response: {add: {X-A: \"a\\r\\nEvil: 1\"}}}"),
                 "c.yaml:10:45: add: the value of X-A must not hold CR or LF");
    expect_error(MW("headers: {request: {remove: [\"X:C\"]}}"),
                 "c.yaml:10:42: remove: 'X:C' is not a valid header name");
    expect_error(MW("headers: {}"), "c.yaml:10:22: headers needs `request`, `response` or both");
}

static void httpcfg_cors_rules(void **state)
{
    (void)state;
    expect_error(MW("cors: {origins: [\"*\"], credentials: true}"),
                 "c.yaml:10:49: credentials: true cannot go with origins [\"*\"]");
    expect_error(MW("cors: {origins: [\"*\", \"https://a.example\"]}"),
                 "c.yaml:10:29: origins: \"*\" must be the only origin");
    expect_error(MW("cors: {methods: [GET]}"), "c.yaml:10:19: missing required key 'origins'");
    expect_error(MW("cors: {origins: [\"*\"], max_age: 1500ms}"),
                 "c.yaml:10:45: max_age: 1500ms is not a whole number of seconds");
    expect_error(MW("cors: {origins: [\"*\"], headers: [\"a b\"]}"),
                 "c.yaml:10:46: headers: 'a b' is not a valid header name");
}

static void httpcfg_jwt_keys_or_secret(void **state)
{
    (void)state;
    expect_error(MW("jwt: {realm: x}"), "c.yaml:10:18: jwt needs `keys` (a JWKS or PEM");
    expect_error(MW("jwt: {keys: /nonexistent/jwks.json, secret: "
                    "\"0123456789abcdef0123456789abcdef\"}"),
                 "c.yaml:10:49: jwt: `keys` and `secret` are exclusive");
    expect_error(MW("jwt: {secret: short}"), "c.yaml:10:27: secret: use 32..512 bytes (it has 5)");
    expect_error(MW("jwt: {keys: /nonexistent/jwks.json}"),
                 "c.yaml:10:25: keys: /nonexistent/jwks.json: No such file or directory");
}

static void httpcfg_jwt_pem_keys_file(void **state)
{
    (void)state;
    char keys[512];
    snprintf(keys, sizeof keys, MW("jwt: {keys: %s, kid: cert-rsa, audiences: [gw04]}"), pem_path);
    assert_int_equal(load(keys), 0);
    const gw_mw_cfg_t *m = &http0()->routes[0].mw[1];
    assert_int_equal(m->kind, GW_MW_JWT);
    assert_int_equal(m->line, 10);
    assert_int_equal(gw_jwt_keyset_count(CFG_JWT(m)->keys), 1);
    /* The loaded key verifies the fixture's token under the configured policy. */
    assert_int_equal(gw_jwt_verify(CFG_JWT(m)->keys, &CFG_JWT(m)->policy, 1700000100,
                                   cert_rsa_token, strlen(cert_rsa_token), NULL),
                     GW_JWT_OK);
}

static void httpcfg_jwt_options(void **state)
{
    (void)state;
    expect_error(MW("jwt: {secret: \"0123456789abcdef0123456789abcdef\", skew: 2h}"),
                 "c.yaml:10:69: skew: 2h is out of range 0s..1h");
    expect_error(MW("jwt: {secret: \"0123456789abcdef0123456789abcdef\", realm: \"a\\\"b\"}"),
                 "c.yaml:10:70: realm: no quotes, backslashes or control characters");
    expect_error(MW("jwt: {secret: \"0123456789abcdef0123456789abcdef\", claims: {sub: \"X Y\"}}"),
                 "c.yaml:10:77: sub: 'X Y' is not a valid header name");
}

static void httpcfg_rate_limit_rules(void **state)
{
    (void)state;
    expect_error(MW("rate_limit: {burst: 3}"), "c.yaml:10:25: missing required key 'rate'");
    expect_error(MW("rate_limit: {rate: 0}"), "c.yaml:10:32: rate: 0 is out of range");
    expect_error(MW("rate_limit: {rate: \"5\"}"), "c.yaml:10:32: rate must be a number");
    expect_error(MW("rate_limit: {rate: 1.5e3}"), "c.yaml:10:32: rate must be a number");
    expect_error(MW("rate_limit: {rate: 5, key: header}"),
                 "c.yaml:10:40: key: header needs `header: NAME`");
    expect_error(MW("rate_limit: {rate: 5, header: X-Key}"),
                 "c.yaml:10:35: header: only with `key: header`");
    expect_error(MW("rate_limit: {rate: 5, key: cookie}"),
                 "c.yaml:10:40: key must be one of: client_ip, header, jwt_sub");
}

static void httpcfg_rate_limit_burst_default(void **state)
{
    (void)state;
    assert_int_equal(load(MW("rate_limit: {rate: 2.5, key: jwt_sub}")), 0);
    const gw_mw_cfg_t *m = &http0()->routes[0].mw[1];
    assert_true(CFG_RATE_LIMIT(m)->rate == 2.5);
    assert_int_equal(CFG_RATE_LIMIT(m)->burst, 3);
    assert_int_equal(CFG_RATE_LIMIT(m)->key, GW_RL_KEY_JWT_SUB);
    assert_int_equal(CFG_RATE_LIMIT(m)->max_keys, 100000);
    teardown(NULL);
    assert_int_equal(load(MW("rate_limit: {rate: 0.01}")), 0);
    assert_int_equal(CFG_RATE_LIMIT(&http0()->routes[0].mw[1])->burst, 1);
}

static void httpcfg_breaker_uses_03s_rules(void **state)
{
    (void)state;
    assert_int_equal(load(MW("breaker: {}")), 0);
    const gw_breaker_cfg_t *b = CFG_BREAKER(&http0()->routes[0].mw[1]);
    assert_int_equal(b->consecutive_failures, 5);
    assert_true(b->failure_rate_percent == 50);
    assert_int_equal(b->window_ms, 10000);
    assert_int_equal(b->open_timeout_ms, 5000);
    assert_int_equal(b->half_open_max, 1);
    assert_int_equal(b->success_to_close, 2);
    teardown(NULL);
    expect_error(MW("breaker: {consecutive_failures: 0, failure_rate_percent: 0}"),
                 "c.yaml:10:22: breaker: both rules are off");
    expect_error(MW("breaker: {min_requests: 0}"),
                 "c.yaml:10:37: min_requests: 0 is out of range 1..65535");
}

static void httpcfg_retry_and_access_log(void **state)
{
    (void)state;
    assert_int_equal(load(MW("retry: {}")), 0);
    const gw_mw_retry_cfg_t *r = CFG_RETRY(&http0()->routes[0].mw[1]);
    assert_int_equal(r->max_attempts, 2);
    assert_int_equal(r->retry_on, GW_HRETRY_ON_CONNECT_FAILURE | GW_HRETRY_ON_RESET);
    assert_int_equal(r->backoff_ms, 10); /* 03's defaults for an upstream's retry */
    assert_int_equal(r->backoff_max_ms, 1000);
    assert_true(r->budget_percent == 20);
    assert_int_equal(r->min_concurrent, 3);
    teardown(NULL);
    assert_int_equal(load(MW("retry: {retry_on: [connect_failure, reset, 502, 503, 504], "
                             "backoff: 0ms, budget_percent: 12.5, min_concurrent: 0}")),
                     0);
    r = CFG_RETRY(&http0()->routes[0].mw[1]);
    assert_int_equal(r->retry_on, GW_HRETRY_ON_CONNECT_FAILURE | GW_HRETRY_ON_RESET |
                                      GW_HRETRY_ON_502 | GW_HRETRY_ON_503 | GW_HRETRY_ON_504);
    assert_int_equal(r->backoff_ms, 0);
    assert_true(r->budget_percent == 12.5);
    assert_int_equal(r->min_concurrent, 0);
    teardown(NULL);
    /* backoff alone, above the default cap: the cap follows it */
    assert_int_equal(load(MW("retry: {backoff: 2s}")), 0);
    assert_int_equal(CFG_RETRY(&http0()->routes[0].mw[1])->backoff_max_ms, 2000);
    teardown(NULL);
    expect_error(MW("retry: {max_attempts: 1}"),
                 "c.yaml:10:35: max_attempts: 1 is out of range 2..10");
    expect_error(MW("retry: {retry_on: [reset, 500]}"),
                 "c.yaml:10:39: retry_on must be one of: connect_failure, reset, 502, 503, 504 "
                 "(got '500')");
    expect_error(MW("retry: {retry_on: 503}"), "c.yaml:10:31: retry_on must be a sequence");
    expect_error(MW("retry: {retry_on: []}"),
                 "c.yaml:10:31: retry_on: list at least one of connect_failure, reset, 502, 503, "
                 "504 (or leave the key out for the default)");
    expect_error(MW("retry: {backoff: 1s, backoff_max: 10ms}"),
                 "c.yaml:10:47: backoff_max must be at least backoff");
    expect_error(MW("retry: {backoff: 2m}"), "c.yaml:10:30: backoff: 2m is out of range");
    expect_error(MW("retry: {budget_percent: 101}"), "c.yaml:10:37: budget_percent");
    expect_error(MW("access_log: {}"), "c.yaml:10:25: missing required key 'file'");
    expect_error(MW("access_log: {file: \"\"}"), "c.yaml:10:32: file must not be empty");
}

/* ---- group ------------------------------------------------------------------------------ */

static int write_pem(void **state)
{
    (void)state;
    snprintf(pem_path, sizeof pem_path, "/tmp/test_httpcfg_XXXXXX");
    int fd = mkstemp(pem_path);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, cert_rsa_pem, strlen(cert_rsa_pem));
    close(fd);
    return n == (ssize_t)strlen(cert_rsa_pem) ? 0 : -1;
}

static int remove_pem(void **state)
{
    (void)state;
    unlink(pem_path);
    return 0;
}

/* ---- allocation failure (failalloc.h: this binary is linked with --wrap) ---------------- */

/* Milestones 02 to 04 on top of the core: balancer, health check, retry, breaker, admin,
 * keep-alive, routes with parameters, every middleware that keeps strings or lists, a split,
 * trailers. Each one allocates its own way. */
static const char OOM_TEXT[] =
    "workers: 1\n"
    "admin: {address: 127.0.0.1:19901, token: a-long-enough-admin-token}\n"
    "listeners:\n"
    "  - name: web\n"
    "    address: 127.0.0.1:18080\n"
    "    protocol: http\n"
    "    http: {response_timeout: 5s, forward_trailers: [X-Checksum, Server-Timing],\n"
    "           trusted_proxies: [10.0.0.0/8, '::1/128']}\n"
    "    routes:\n"
    "      - name: users\n"
    "        match: {path: '/api/users/:id', methods: [GET, HEAD], host: api.example.com,\n"
    "                headers: {X-Beta: '1'}}\n"
    "        upstream: app\n"
    "        middleware:\n"
    "          - request_id: {}\n"
    "          - forwarded: {}\n"
    "          - headers: {request: {set: {X-A: '1'}, remove: [X-B]}, response: {add: {X-C: "
    "'2'}}}\n"
    "          - cors: {origins: ['https://a.example', 'https://b.example'], methods: [GET, "
    "POST]}\n"
    "          - jwt: {secret: 0123456789abcdef0123456789abcdef, claims: {sub: X-User-Id}}\n"
    "          - rate_limit: {rate: 5, burst: 10, key: header, header: X-Api-Key}\n"
    "          - retry: {max_attempts: 2}\n"
    "          - breaker: {consecutive_failures: 5}\n"
    "          - access_log: {file: '-'}\n"
    "      - name: canary\n"
    "        match: {path_prefix: /canary}\n"
    "        split:\n"
    "          targets: [{upstream: app, weight: 80}, {upstream: canary, weight: 20}]\n"
    "          sticky_header: X-User\n"
    "        middleware:\n"
    "          - strip_prefix: /canary\n"
    "  - name: tls\n"
    "    address: 127.0.0.1:18443\n"
    "    tls_passthrough:\n"
    "      routes: [{sni: API.example.com, upstream: app}, {sni: '*.example.com', upstream: "
    "canary}]\n"
    "      default: app\n"
    "upstreams:\n"
    "  app:\n"
    "    balancer: least_connections\n"
    "    keepalive: {max_idle: 16, idle_timeout: 30s}\n"
    "    health_check: {interval: 5s, type: http, path: /healthz}\n"
    "    retry: {max_attempts: 3, backoff: 10ms}\n"
    "    backends:\n"
    "      - address: 127.0.0.1:19001\n"
    "        weight: 2\n"
    "      - address: 127.0.0.1:19002\n"
    "  canary:\n"
    "    backends:\n"
    "      - address: 127.0.0.1:19003\n";

/* The effective configuration C as -T prints it (malloc'd): every value the load decoded,
 * so two loads that print the same are the same. */
static char *printed(const gw_config_t *c)
{
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n); /* libc's own allocation: not wrapped */
    assert_non_null(f);
    gw_config_print(f, c, &gw_http_config_ext);
    fclose(f);
    return out;
}

static int oom_http_config_load(void *ctx)
{
    const char *expected = ctx; /* -T of a load with nothing failing; NULL: that load */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    gw_config_t c;
    int rc = gw_config_load_string("c.yaml", OOM_TEXT, &gw_http_config_ext, &c, f);
    fclose(f);
    if (rc == 0) {
        const gw_http_listener_cfg_t *l = gw_http_listener_cfg(&c.listeners[0]);
        assert_non_null(l);
        assert_int_equal(l->nroutes, 2);
        assert_int_equal(l->routes[0].nmw, 9);
        assert_int_equal(l->routes[1].nmw, 2); /* the default forwarded, strip_prefix */
        assert_string_equal(l->routes[1].name, "canary");
        /* Whole and right despite a failed allocation (only did-you-mean bookkeeping may be
         * lost, cfgtree.c): the effective config is exactly what a clean load gives. */
        if (gw_failalloc_failures() > 0) {
            char *got = printed(&c);
            assert_non_null(expected);
            assert_string_equal(got, expected);
            free(got);
            rc = GW_FAILALLOC_ABSORBED;
        }
        gw_config_free(&c, &gw_http_config_ext);
        if (len != 0)
            fail_msg("loaded, with messages: %s", text);
    } else {
        assert_int_equal(rc, GW_ECONFIG);
        gw_assert_contains(text, "out of memory");
        for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n"))
            if (strstr(line, "out of memory") == NULL)
                fail_msg("a failed allocation reported as a config error: %s", line);
    }
    free(text);
    return rc;
}

static void httpcfg_load_fails_cleanly_at_each_allocation(void **state)
{
    (void)state;
    gw_config_t c;
    assert_int_equal(gw_config_load_string("c.yaml", OOM_TEXT, &gw_http_config_ext, &c, NULL), 0);
    char *expected = printed(&c);
    gw_config_free(&c, &gw_http_config_ext);
    gw_failalloc_report_t r = gw_failalloc_each(oom_http_config_load, expected, false);
    assert_true(r.allocations >= 50);
    assert_true(r.absorbed < r.allocations); /* most failures must fail the load */
    assert_true(gw_failalloc_each(oom_http_config_load, expected, true).allocations >= 50);
    free(expected);
}

static int oom_teardown(void **state)
{
    gw_failalloc_disarm();
    return teardown(state);
}

/* ---- tls_passthrough on tcp listeners (passthrough.h) ------------------------------------ */

/* A tcp listener `tls` (line 3) with KEYS from line 6, indented by 4, and upstreams app, v1. */
static int load_tcp(const char *keys)
{
    char text[4096];
    snprintf(text, sizeof text,
             "workers: 1\n"
             "listeners:\n"
             "  - name: tls\n"
             "    address: 127.0.0.1:18443\n"
             "    protocol: tcp\n"
             "%s"
             "upstreams:\n"
             "  app: {backends: [{address: 127.0.0.1:19001}]}\n"
             "  v1: {backends: [{address: 127.0.0.1:19002}]}\n",
             keys);
    return load_text(text, &gw_http_config_ext);
}

static void expect_tcp_error(const char *keys, const char *error)
{
    if (load_tcp(keys) == 0)
        fail_msg("loaded, but expected: %s", error);
    gw_assert_contains(errs, error);
}

#define PT_ROUTES "      routes: [{sni: a.example.com, upstream: app}]\n"

static void httpcfg_tls_passthrough_decoded(void **state)
{
    (void)state;
    int rc = load_tcp("    tls_passthrough:\n"
                      "      routes:\n"
                      "        - {sni: API.Example.com, upstream: app}\n"
                      "        - {sni: '*.example.com', upstream: v1}\n"
                      "      default: v1\n"
                      "      timeout: 250ms\n");
    if (rc != 0)
        fail_msg("%s", errs);
    const gw_passthrough_cfg_t *pc = gw_passthrough_cfg(&cfg.listeners[0]);
    assert_non_null(pc);
    assert_null(gw_http_listener_cfg(&cfg.listeners[0]));
    assert_int_equal(pc->nroutes, 2);
    assert_string_equal(pc->routes[0].sni, "api.example.com");
    assert_int_equal(pc->routes[0].upstream_index, 0);
    assert_string_equal(pc->routes[1].sni, "*.example.com");
    assert_int_equal(pc->routes[1].upstream_index, 1);
    assert_string_equal(pc->default_upstream, "v1");
    assert_int_equal(pc->default_index, 1);
    assert_int_equal(cfg.listeners[0].upstream_index, 1); /* the default is the listener's */
    assert_null(cfg.listeners[0].upstream);
    assert_int_equal(pc->timeout_ms, 250);
    print_reload_compare();
}

static void httpcfg_tls_passthrough_defaults(void **state)
{
    (void)state;
    assert_int_equal(load_tcp("    tls_passthrough:\n" PT_ROUTES), 0);
    const gw_passthrough_cfg_t *pc = gw_passthrough_cfg(&cfg.listeners[0]);
    assert_non_null(pc);
    assert_null(pc->default_upstream);
    assert_int_equal(pc->timeout_ms, 5000);
    print_reload_compare();
    teardown(NULL);
    assert_int_equal(load_tcp("    upstream: app\n"), 0);
    assert_null(gw_passthrough_cfg(&cfg.listeners[0]));
}

static void httpcfg_tls_passthrough_errors(void **state)
{
    (void)state;
    expect_tcp_error("    upstream: app\n    tls_passthrough:\n" PT_ROUTES,
                     "c.yaml:7:5: tls_passthrough: the listener has an upstream already");
    expect_tcp_error("    tls_passthrough:\n      routes: [{sni: a.example.com, upstream: nope}]\n",
                     "c.yaml:7:47: unknown upstream 'nope'");
    expect_tcp_error("    tls_passthrough:\n" PT_ROUTES "      default: nope\n",
                     "c.yaml:8:16: unknown upstream 'nope'");
    expect_tcp_error("    tls_passthrough:\n      routes: [{sni: 'a.*.com', upstream: app}]\n",
                     "c.yaml:7:22: sni: 'a.*.com' is not a host name or *.name");
    expect_tcp_error("    tls_passthrough:\n      routes: [{sni: 10.0.0.1, upstream: app}]\n",
                     "c.yaml:7:22: sni: '10.0.0.1' is not a host name");
    expect_tcp_error("    tls_passthrough:\n      routes: [{sni: a.B.c, upstream: app}, "
                     "{sni: A.b.C, upstream: v1}]\n",
                     "c.yaml:7:51: sni: 'a.b.c' is already routed by route 0");
    expect_tcp_error("    tls_passthrough:\n      routes: []\n",
                     "c.yaml:7:15: routes must not be empty");
    expect_tcp_error("    tls_passthrough: {default: app}\n",
                     "c.yaml:6:22: missing required key 'routes'");
    expect_tcp_error("    tls_passthrough:\n      routes: [{upstream: app}]\n",
                     "missing required key 'sni'");
    expect_tcp_error("    tls_passthrough:\n" PT_ROUTES "      timeout: 0ms\n", "c.yaml:8:16:");
    expect_tcp_error("    tls_passthrough:\n" PT_ROUTES "      colour: red\n",
                     "c.yaml:8:7: unknown key 'colour'");
    expect_tcp_error("", "c.yaml:3:5: missing required key 'upstream'");
    /* only on tcp listeners */
    expect_error(ROUTE "    tls_passthrough:\n" PT_ROUTES,
                 "c.yaml:9:5: tls_passthrough: only on tcp listeners");
}

/* ---- the loader's outside reads through gw_loadio ------------------------------------- */

static unsigned mem_cpus(void)
{
    return 3;
}

static int mem_resolve(const char *host, unsigned port, gw_addr_t *out, const char **why)
{
    if (strcmp(host, "app.internal") != 0) {
        *why = "unknown host";
        return GW_ERESOLVE;
    }
    return gw_addr_parse("10.1.2.3:80", false, false, out, why) == 0 && port == 9001 ? 0
                                                                                     : GW_ERESOLVE;
}

static char *mem_read_file(const char *path, size_t cap, size_t *len)
{
    (void)cap;
    if (strcmp(path, "/mem/cert.pem") != 0) {
        errno = ENOENT;
        return NULL;
    }
    *len = strlen(cert_rsa_pem);
    char *b = malloc(*len);
    if (b)
        memcpy(b, cert_rsa_pem, *len);
    return b;
}

/* What the config loader reads from outside the process (CPU count, host names, key files)
 * comes through gw_loadio, so a test (and fuzz_config) can load from memory alone. */
static void httpcfg_outside_reads_go_through_loadio(void **state)
{
    (void)state;
    static const gw_loadio_t mem = {mem_cpus, mem_resolve, mem_read_file};
    gw_loadio_set(&mem);
    int rc = load_text("listeners:\n"
                       "  - name: web\n"
                       "    address: 127.0.0.1:18080\n"
                       "    protocol: http\n"
                       "    routes:\n"
                       "      - match: {path_prefix: /}\n"
                       "        upstream: app\n"
                       "        middleware:\n"
                       "          - jwt: {keys: /mem/cert.pem, kid: k1}\n"
                       "upstreams:\n"
                       "  app:\n"
                       "    backends:\n"
                       "      - address: app.internal:9001\n",
                       &gw_http_config_ext);
    gw_loadio_set(NULL);
    if (rc != 0)
        fail_msg("%s", errs);
    assert_int_equal(cfg.workers, 3);
    char a[GW_ADDR_STRLEN];
    assert_string_equal(gw_addr_format(&cfg.upstreams[0].backends[0].addr, a, sizeof a),
                        "10.1.2.3:80");
    const gw_mw_cfg_t *mw = http0()->routes[0].mw; /* [0] is the default forwarded */
    assert_int_equal(gw_jwt_keyset_count(CFG_JWT(&mw[1])->keys), 1);
    assert_ptr_equal(gw_loadio(), &gw_loadio_system);
}

int main(void)
{
#define T(f) cmocka_unit_test_teardown(f, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(httpcfg_load_fails_cleanly_at_each_allocation, oom_teardown),
        T(httpcfg_outside_reads_go_through_loadio),
        T(httpcfg_defaults),
        T(httpcfg_tcp_listener_has_no_http_part),
        T(httpcfg_tls_passthrough_decoded),
        T(httpcfg_tls_passthrough_defaults),
        T(httpcfg_tls_passthrough_errors),
        T(httpcfg_everything),
        T(httpcfg_router_returns_routes),
        T(httpcfg_mw_kind_names),
        T(httpcfg_print_reload_equal),
        T(httpcfg_print_defaults_reload_equal),
        T(httpcfg_print_hides_the_secret),
        T(httpcfg_routes_required),
        T(httpcfg_routes_empty),
        T(httpcfg_routes_on_tcp_listener),
        T(httpcfg_routes_after_a_bad_protocol_not_reported),
        T(httpcfg_upstream_on_http_listener),
        T(httpcfg_http_limits_in_range),
        T(httpcfg_http_unknown_key_did_you_mean),
        T(httpcfg_trusted_proxy_bad_item),
        T(httpcfg_forward_trailers_forbidden_names),
        T(httpcfg_forward_trailers_tokens_in_a_list),
        T(httpcfg_forward_trailers_listed_once),
        T(httpcfg_forward_trailers_not_a_claim_header),
        T(httpcfg_keepalive_ranges),
        T(httpcfg_keepalive_needs_gw04),
        T(httpcfg_upgrade_lists),
        T(httpcfg_upgrade_refused),
        T(httpcfg_match_required),
        T(httpcfg_path_and_prefix_exclusive),
        T(httpcfg_path_must_start_with_slash),
        T(httpcfg_unknown_method),
        T(httpcfg_upstream_and_split_exclusive),
        T(httpcfg_unknown_upstream_at_name),
        T(httpcfg_split_weights),
        T(httpcfg_sticky_exclusive),
        T(httpcfg_duplicate_route_at_its_position),
        T(httpcfg_router_rejects_bad_path),
        T(httpcfg_duplicate_route_name),
        T(httpcfg_route_max_body_range),
        T(httpcfg_unknown_middleware_did_you_mean),
        T(httpcfg_middleware_shape),
        T(httpcfg_middleware_once_per_route),
        T(httpcfg_forwarded_default_off_and_options),
        T(httpcfg_strip_prefix_and_rewrite),
        T(httpcfg_headers_names_and_values),
        T(httpcfg_cors_rules),
        T(httpcfg_jwt_keys_or_secret),
        T(httpcfg_jwt_pem_keys_file),
        T(httpcfg_jwt_options),
        T(httpcfg_rate_limit_rules),
        T(httpcfg_rate_limit_burst_default),
        T(httpcfg_breaker_uses_03s_rules),
        T(httpcfg_retry_and_access_log),
    };
#undef T
    return cmocka_run_group_tests_name("httpcfg", tests, write_pem, remove_pem);
}
