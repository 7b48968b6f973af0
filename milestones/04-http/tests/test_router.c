/* test_router.c - the router's specificity order as a table, parameters, host handling, build
 * errors, and a property test against a brute-force matcher written from router.h. */
#include "gwtest.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "04-http/router.h"
#include "failalloc.h"

#define NOMATCH ((size_t)-1)

/* Request headers for the lookup callback: up to 4 "name", "value" pairs. */
typedef struct {
    const char *kv[8];
} hdrs_t;

static const char *lookup(void *ctx, const char *name, size_t *len)
{
    const hdrs_t *h = ctx;
    for (size_t i = 0; i < 8 && h->kv[i]; i += 2)
        if (strcasecmp(h->kv[i], name) == 0) {
            *len = strlen(h->kv[i + 1]);
            return h->kv[i + 1];
        }
    return NULL;
}

static size_t route_of(const gw_router_t *r, const char *host, const char *method, const char *path,
                       const hdrs_t *h, gw_route_params_t *params)
{
    hdrs_t none = {{NULL}};
    const gw_route_match_t *m =
        gw_router_match(r, host, host ? strlen(host) : 0, method, path, strlen(path), lookup,
                        (void *)(h ? h : &none), params);
    return m ? m->index : NOMATCH;
}

static const gw_route_header_t H_BETA[] = {{"X-Beta", "1"}};
static const gw_route_header_t H_AB[] = {{"x-a", "1"}, {"x-b", "2"}};
static const gw_route_header_t H_A[] = {{"x-a", "1"}};

#define EXACT GW_PATH_EXACT
#define PREFIX GW_PATH_PREFIX
static const gw_route_spec_t TABLE_ROUTES[] = {
    /* 0 */ {NULL, "/", PREFIX, 0, NULL, 0, NULL},
    /* 1 */ {NULL, "/health", EXACT, 0, NULL, 0, NULL},
    /* 2 */ {NULL, "/api/", PREFIX, 0, NULL, 0, NULL},
    /* 3 */ {NULL, "/api/v1/", PREFIX, 0, NULL, 0, NULL},
    /* 4 */ {NULL, "/users/:id", EXACT, 0, NULL, 0, NULL},
    /* 5 */ {NULL, "/users/me", EXACT, 0, NULL, 0, NULL},
    /* 6 */ {NULL, "/users/:id/orders/:oid", EXACT, 0, NULL, 0, NULL},
    /* 7 */ {NULL, "/users/", PREFIX, 0, NULL, 0, NULL},
    /* 8 */ {NULL, "/users/:uid", EXACT, GW_METHOD_POST, NULL, 0, NULL},
    /* 9 */ {NULL, "/users/:id", EXACT, 0, H_BETA, 1, NULL},
    /* 10 */ {"api.example.com", "/", PREFIX, 0, NULL, 0, NULL},
    /* 11 */ {"*.example.com", "/", PREFIX, 0, NULL, 0, NULL},
    /* 12 */ {"*.eu.example.com", "/", PREFIX, 0, NULL, 0, NULL},
    /* 13 */ {"API.example.com.", "/health", EXACT, 0, NULL, 0, NULL},
    /* 14 */ {"*", "/files/:name", EXACT, 0, H_AB, 2, NULL},
    /* 15 */ {"", "/files/:name", EXACT, 0, H_A, 1, NULL},
    /* 16 */ {NULL, "/order", EXACT, GW_METHOD_GET, NULL, 0, NULL},
    /* 17 */ {NULL, "/order", EXACT, GW_METHOD_GET | GW_METHOD_POST, NULL, 0, NULL},
    /* 18 */ {NULL, "/users/:id/", PREFIX, 0, NULL, 0, NULL},
    /* 19 */ {NULL, "/", EXACT, 0, NULL, 0, NULL},
    /* 20 */ {NULL, "/a/", EXACT, 0, NULL, 0, NULL},
    /* 21 */ {"[::1]", "/health", EXACT, 0, NULL, 0, NULL},
    /* 22 */ {NULL, "/static/:f", EXACT, 0, NULL, 0, NULL},
    /* 23 */ {NULL, "/static/", PREFIX, GW_METHOD_GET, NULL, 0, NULL},
};
#define NTABLE (sizeof(TABLE_ROUTES) / sizeof(TABLE_ROUTES[0]))

typedef struct {
    const char *host, *method, *path;
    hdrs_t h;
    size_t want;
} case_t;

static const case_t CASES[] = {
    {"x.org", "GET", "/health", {{NULL}}, 1},
    {"x.org", "GET", "/health/", {{NULL}}, 0}, /* a trailing slash counts for exact */
    {"x.org", "GET", "/healthz", {{NULL}}, 0},
    {"x.org", "GET", "/", {{NULL}}, 19}, /* exact "/" beats prefix "/" */
    {"x.org", "GET", "/nothing/here", {{NULL}}, 0},
    {"", "GET", "/api", {{NULL}}, 2},
    {"", "GET", "/api/", {{NULL}}, 2},
    {"", "GET", "/api/x", {{NULL}}, 2},
    {"", "GET", "/apix", {{NULL}}, 0}, /* prefixes end at segment boundaries */
    {"", "GET", "/api/v1", {{NULL}}, 3},
    {"", "GET", "/api/v1/users", {{NULL}}, 3}, /* longer prefix wins */
    {"", "GET", "/api/v2/users", {{NULL}}, 2},
    {"", "GET", "/users/me", {{NULL}}, 5}, /* literal beats parameter */
    {"", "GET", "/users/42", {{NULL}}, 4},
    {"", "POST", "/users/42", {{NULL}}, 8},          /* method set beats any */
    {"", "PUT", "/users/42", {{"x-beta", "1"}}, 9},  /* more headers beat fewer */
    {"", "POST", "/users/42", {{"x-beta", "1"}}, 8}, /* method before headers */
    {"", "PUT", "/users/42", {{"x-beta", "2"}}, 4},  /* header value must be equal */
    {"", "GET", "/users/me/orders/7", {{NULL}}, 6},  /* literal branch fails, backtrack */
    {"", "GET", "/users/42/orders/7", {{NULL}}, 6},
    {"", "GET", "/users/42/orders", {{NULL}}, 18}, /* parameter beats end of prefix */
    {"", "GET", "/users/42/x/y", {{NULL}}, 18},
    {"", "GET", "/users/", {{NULL}}, 7}, /* a parameter never matches an empty segment */
    {"", "GET", "/users", {{NULL}}, 7},
    {"", "GET", "/users/42/", {{NULL}}, 18},
    {"api.example.com", "GET", "/health", {{NULL}}, 13},
    {"api.example.com", "GET", "/users/me", {{NULL}}, 10}, /* host beats path */
    {"API.Example.COM.:8443", "GET", "/health", {{NULL}}, 13},
    {"www.example.com", "GET", "/health", {{NULL}}, 11},
    {"a.b.example.com", "GET", "/x", {{NULL}}, 11}, /* one or more labels */
    {"example.com", "GET", "/health", {{NULL}}, 1}, /* not the apex */
    {"x.eu.example.com", "GET", "/", {{NULL}}, 12}, /* longer wildcard suffix */
    {"eu.example.com", "GET", "/", {{NULL}}, 11},
    {"a.b.EU.example.com:80", "GET", "/", {{NULL}}, 12},
    {"xexample.com", "GET", "/health", {{NULL}}, 1},
    {"[::1]:8080", "GET", "/health", {{NULL}}, 21},
    {"[::1]", "GET", "/x", {{NULL}}, 0},
    {"", "GET", "/files/a", {{"x-a", "1", "x-b", "2"}}, 14},
    {"", "GET", "/files/a", {{"X-A", "1"}}, 15}, /* header names are case-insensitive */
    {"", "GET", "/files/a", {{"x-a", "2", "x-b", "2"}}, 0},
    {"", "GET", "/order", {{NULL}}, 16}, /* full tie: config order */
    {"", "POST", "/order", {{NULL}}, 17},
    {"", "DELETE", "/order", {{NULL}}, 0},
    {"", "get", "/order", {{NULL}}, 0}, /* methods are case-sensitive */
    {"", "GET", "/a", {{NULL}}, 0},
    {"", "GET", "/a/", {{NULL}}, 20},
    {"", "GET", "/static/app.js", {{NULL}}, 22}, /* parameter beats prefix despite method */
    {"", "GET", "/static/js/app.js", {{NULL}}, 23},
    {"", "HEAD", "/static/js/app.js", {{NULL}}, 0}, /* GET does not include HEAD */
    {NULL, "GET", "/health", {{NULL}}, 1},
};

static void router_priority_table(void **state)
{
    (void)state;
    char err[128];
    gw_router_t *r = gw_router_build(TABLE_ROUTES, NTABLE, err, sizeof(err));
    if (!r)
        fail_msg("build: %s", err);
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        const case_t *c = &CASES[i];
        size_t got = route_of(r, c->host, c->method, c->path, &c->h, NULL);
        if (got != c->want)
            fail_msg("case %zu (%s %s %s): route %zd, want %zd", i, c->host ? c->host : "-",
                     c->method, c->path, (ssize_t)got, (ssize_t)c->want);
    }
    gw_router_free(r);
}

static void router_captures_parameters(void **state)
{
    (void)state;
    gw_router_t *r = gw_router_build(TABLE_ROUTES, NTABLE, NULL, 0);
    assert_non_null(r);
    gw_route_params_t p;
    assert_int_equal(route_of(r, "h", "GET", "/users/u%20x/orders/99", NULL, &p), 6);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.p[0].name, "id");
    assert_int_equal(p.p[0].len, 5);
    assert_memory_equal(p.p[0].value, "u%20x", 5);
    assert_string_equal(p.p[1].name, "oid");
    assert_memory_equal(p.p[1].value, "99", 2);
    /* Names come from the winning route, even where routes share a trie node. */
    assert_int_equal(route_of(r, "h", "POST", "/users/7", NULL, &p), 8);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.p[0].name, "uid");
    assert_memory_equal(p.p[0].value, "7", 1);
    /* A capture from a branch abandoned by backtracking is not reported. */
    assert_int_equal(route_of(r, "h", "GET", "/users/5/orders/7/extra", NULL, &p), 18);
    assert_int_equal(p.n, 1);
    assert_memory_equal(p.p[0].value, "5", 1);
    assert_int_equal(route_of(r, "h", "GET", "/health", NULL, &p), 1);
    assert_int_equal(p.n, 0);
    gw_router_free(r);
}

static void router_no_match_returns_null(void **state)
{
    (void)state;
    const gw_route_spec_t specs[] = {
        {"api.example.com", "/v1/", PREFIX, GW_METHOD_GET, NULL, 0, (void *)"api"},
    };
    gw_router_t *r = gw_router_build(specs, 1, NULL, 0);
    assert_non_null(r);
    gw_route_params_t p = {.n = 3};
    assert_int_equal(route_of(r, "other.com", "GET", "/v1/x", NULL, &p), NOMATCH);
    assert_int_equal(p.n, 0);
    assert_int_equal(route_of(r, "api.example.com", "POST", "/v1/x", NULL, NULL), NOMATCH);
    assert_int_equal(route_of(r, "api.example.com", "GET", "/v2", NULL, NULL), NOMATCH);
    assert_int_equal(route_of(r, "api.example.com", "GET", "v1/x", NULL, NULL), NOMATCH);
    assert_int_equal(route_of(r, "api.example.com", "GET", "", NULL, NULL), NOMATCH);
    const gw_route_match_t *m =
        gw_router_match(r, "api.example.com", 15, "GET", "/v1", 3, NULL, NULL, NULL);
    assert_non_null(m);
    assert_string_equal(m->user, "api");
    gw_router_free(r);
}

/* Only PLEN bytes of the path and HLEN bytes of the host are read. */
static void router_respects_lengths(void **state)
{
    (void)state;
    const gw_route_spec_t specs[] = {
        {"a.com", "/ab", EXACT, 0, NULL, 0, NULL},
        {NULL, "/a", EXACT, 0, NULL, 0, NULL},
    };
    gw_router_t *r = gw_router_build(specs, 2, NULL, 0);
    assert_non_null(r);
    const gw_route_match_t *m = gw_router_match(r, "a.comX", 5, "GET", "/abc", 2, NULL, NULL, NULL);
    assert_non_null(m);
    assert_int_equal(m->index, 1);
    m = gw_router_match(r, "a.comX", 5, "GET", "/abc", 3, NULL, NULL, NULL);
    assert_int_equal(m->index, 0);
    gw_router_free(r);
}

/* An over-long or empty host matches only any-host routes; it never overflows. */
static void router_long_host_matches_any_only(void **state)
{
    (void)state;
    const gw_route_spec_t specs[] = {
        {"*.com", "/", PREFIX, 0, NULL, 0, NULL},
        {NULL, "/", PREFIX, 0, NULL, 0, NULL},
    };
    gw_router_t *r = gw_router_build(specs, 2, NULL, 0);
    assert_non_null(r);
    char host[1000];
    memset(host, 'a', sizeof(host));
    memcpy(host + sizeof(host) - 4, ".com", 4);
    const gw_route_match_t *m =
        gw_router_match(r, host, sizeof(host), "GET", "/", 1, NULL, NULL, NULL);
    assert_int_equal(m->index, 1);
    assert_int_equal(route_of(r, "a.com", "GET", "/", NULL, NULL), 0);
    assert_int_equal(route_of(r, ":80", "GET", "/", NULL, NULL), 1);
    assert_int_equal(route_of(r, ".", "GET", "/", NULL, NULL), 1);
    gw_router_free(r);
}

/* A request deeper than any route, and with more parameters than the bound, is fine. */
static void router_deep_request_is_bounded(void **state)
{
    (void)state;
    const gw_route_spec_t specs[] = {
        {NULL, "/:a/:b/:c/:d/:e/:f/:g/:h/", PREFIX, 0, NULL, 0, NULL},
    };
    gw_router_t *r = gw_router_build(specs, 1, NULL, 0);
    assert_non_null(r);
    char path[4001];
    for (size_t i = 0; i < 2000; i++)
        memcpy(path + 2 * i, "/x", 2);
    path[4000] = '\0';
    gw_route_params_t p;
    assert_int_equal(route_of(r, "h", "GET", path, NULL, &p), 0);
    assert_int_equal(p.n, 8);
    assert_int_equal(route_of(r, "h", "GET", "/1/2/3/4/5/6/7", NULL, &p), NOMATCH);
    gw_router_free(r);
}

static void expect_build_error(const gw_route_spec_t *specs, size_t n, const char *msg)
{
    char err[160];
    gw_router_t *r = gw_router_build(specs, n, err, sizeof(err));
    if (r)
        fail_msg("built, expected error \"%s\"", msg);
    gw_assert_contains(err, msg);
}

static void router_build_rejects_duplicates(void **state)
{
    (void)state;
    const gw_route_header_t h1[] = {{"x-a", "1"}, {"X-B", "2"}};
    const gw_route_header_t h2[] = {{"x-b", "2"}, {"x-a", "1"}};
    const gw_route_spec_t s1[] = {
        {NULL, "/a", EXACT, 0, NULL, 0, NULL},
        {"h.com", "/a", EXACT, 0, NULL, 0, NULL},
        {NULL, "/a", PREFIX, 0, NULL, 0, NULL},
        {"", "/a", EXACT, 0, NULL, 0, NULL},
    };
    expect_build_error(s1, 4, "route 3: same host, path, methods and headers as route 0");
    const gw_route_spec_t s2[] = {
        {"H.com", "/u/:id", EXACT, GW_METHOD_GET, h1, 2, NULL},
        {"h.com.", "/u/:other", EXACT, GW_METHOD_GET, h2, 2, NULL},
    };
    expect_build_error(s2, 2, "route 1: same host");
    const gw_route_spec_t s3[] = {
        {NULL, "/api/", PREFIX, 0, NULL, 0, NULL},
        {NULL, "/api", PREFIX, 0, NULL, 0, NULL},
    };
    expect_build_error(s3, 2, "route 1:");
    const gw_route_spec_t s4[] = {
        {"*.a.com", "/", PREFIX, 0, NULL, 0, NULL},
        {"a.com", "/", PREFIX, 0, NULL, 0, NULL},
        {"*.A.com", "/", PREFIX, 0, NULL, 0, NULL},
    };
    expect_build_error(s4, 3, "route 2: same host, path, methods and headers as route 0");
}

static void router_build_rejects_bad_specs(void **state)
{
    (void)state;
    static const struct {
        gw_route_spec_t spec;
        const char *msg;
    } bad[] = {
        {{NULL, "api", EXACT, 0, NULL, 0, NULL}, "must start with /"},
        {{NULL, NULL, EXACT, 0, NULL, 0, NULL}, "must start with /"},
        {{NULL, "/a//b", EXACT, 0, NULL, 0, NULL}, "empty segment"},
        {{NULL, "/a/../b", EXACT, 0, NULL, 0, NULL}, "\"..\""},
        {{NULL, "/a/./b", PREFIX, 0, NULL, 0, NULL}, "\".\""},
        {{NULL, "/a/:", EXACT, 0, NULL, 0, NULL}, "without a name"},
        {{NULL, "/:id/:id", EXACT, 0, NULL, 0, NULL}, "used twice"},
        {{NULL, "/:a/:b/:c/:d/:e/:f/:g/:h/:i", EXACT, 0, NULL, 0, NULL}, "too many parameters"},
        {{"a.*.com", "/", PREFIX, 0, NULL, 0, NULL}, "'*'"},
        {{"*example.com", "/", PREFIX, 0, NULL, 0, NULL}, "'*'"},
        {{"*.", "/", PREFIX, 0, NULL, 0, NULL}, "host is empty"},
        {{"a..com", "/", PREFIX, 0, NULL, 0, NULL}, "empty label"},
        {{"a.com:80", "/", PREFIX, 0, NULL, 0, NULL}, "port"},
        {{"a b.com", "/", PREFIX, 0, NULL, 0, NULL}, "invalid character"},
        {{"[::1", "/", PREFIX, 0, NULL, 0, NULL}, "IPv6"},
        {{NULL, "/", (gw_path_match_t)7, 0, NULL, 0, NULL}, "match kind"},
        {{NULL, "/", EXACT, 1u << 20, NULL, 0, NULL}, "method bit"},
        {{NULL, "/", EXACT, 0, NULL, 1, NULL}, "headers is NULL"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gw_route_spec_t specs[2] = {{NULL, "/ok", EXACT, 0, NULL, 0, NULL}, bad[i].spec};
        char want[96];
        snprintf(want, sizeof(want), "route 1: ");
        expect_build_error(specs, 2, want);
        expect_build_error(specs, 2, bad[i].msg);
    }
    char deep[3 * 40 + 1];
    for (int i = 0; i < 40; i++)
        memcpy(deep + 3 * i, "/xy", 3);
    deep[3 * 40] = '\0';
    const gw_route_spec_t s[] = {{NULL, deep, EXACT, 0, NULL, 0, NULL}};
    expect_build_error(s, 1, "too many segments");
    const gw_route_header_t hh[] = {{"x-a", "1"}, {"X-A", "2"}};
    const gw_route_header_t he[] = {{"", "1"}};
    const gw_route_spec_t s5[] = {{NULL, "/", EXACT, 0, hh, 2, NULL}};
    expect_build_error(s5, 1, "named twice");
    const gw_route_spec_t s6[] = {{NULL, "/", EXACT, 0, he, 1, NULL}};
    expect_build_error(s6, 1, "needs a name");
}

static void router_build_empty_list_matches_nothing(void **state)
{
    (void)state;
    gw_router_t *r = gw_router_build(NULL, 0, NULL, 0);
    assert_non_null(r);
    assert_int_equal(route_of(r, "a.com", "GET", "/", NULL, NULL), NOMATCH);
    gw_router_free(r);
    gw_router_free(NULL);
}

static void router_method_bit_names(void **state)
{
    (void)state;
    assert_int_equal(gw_router_method_bit("GET", 3), GW_METHOD_GET);
    assert_int_equal(gw_router_method_bit("DELETE", 6), GW_METHOD_DELETE);
    assert_int_equal(gw_router_method_bit("TRACE", 5), GW_METHOD_TRACE);
    assert_int_equal(gw_router_method_bit("GETX", 3), GW_METHOD_GET);
    assert_int_equal(gw_router_method_bit("GETX", 4), 0);
    assert_int_equal(gw_router_method_bit("get", 3), 0);
    assert_int_equal(gw_router_method_bit("PROPFIND", 8), 0);
}

/* ---- property test: the trie against a brute-force reading of router.h ---------------- */

#define MAXSEG 8

/* Splits a path into segments the way router.h describes ("/" is one empty segment; a prefix drops
 * a final empty one). Returns the count. */
static size_t ref_split(const char *path, bool prefix, const char *seg[], size_t len[])
{
    size_t n = 0;
    const char *p = path + 1;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (!(l == 0 && !e && prefix)) {
            seg[n] = p;
            len[n++] = l;
        }
        if (!e)
            break;
        p = e + 1;
    }
    return n;
}

/* Host rank: 0 no match, 1 any host, 2 + suffix length for a wildcard, 10000 exact. */
static int ref_host_rank(const char *spec, const char *req)
{
    char h[300];
    size_t n = 0;
    for (const char *c = req; *c && *c != ':' && n < sizeof(h) - 1; c++)
        h[n++] = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    if (n > 0 && h[n - 1] == '.')
        n--;
    h[n] = '\0';
    if (!spec || !*spec || strcmp(spec, "*") == 0)
        return 1;
    if (spec[0] != '*')
        return strcasecmp(spec, h) == 0 ? 10000 : 0;
    size_t sl = strlen(spec) - 1; /* ".a.com" */
    if (n > sl && strcasecmp(h + n - sl, spec + 1) == 0)
        return 2 + (int)sl;
    return 0;
}

/* Path key of route SPEC for request PATH (router.h step 2): key[i] for i < nseg is 3 for a
 * literal, 2 for a parameter, 1 for "covered by the prefix"; key[nseg] is 1 for an exact route, 0
 * for a prefix. Returns false when the path does not match. */
static bool ref_path_key(const gw_route_spec_t *s, const char *path, int key[], size_t *nkey,
                         gw_route_params_t *params)
{
    const char *rs[64], *qs[64];
    size_t rl[64], ql[64];
    bool prefix = s->path_match == GW_PATH_PREFIX;
    size_t rn = ref_split(s->path, prefix, rs, rl), qn = ref_split(path, false, qs, ql);
    if (prefix ? rn > qn : rn != qn)
        return false;
    params->n = 0;
    for (size_t i = 0; i < qn; i++) {
        if (i >= rn) {
            key[i] = 1;
        } else if (rs[i][0] == ':') {
            if (ql[i] == 0)
                return false;
            key[i] = 2;
            params->p[params->n++] = (gw_route_param_t){rs[i] + 1, qs[i], ql[i]};
        } else {
            if (rl[i] != ql[i] || memcmp(rs[i], qs[i], rl[i]) != 0)
                return false;
            key[i] = 3;
        }
    }
    key[qn] = prefix ? 0 : 1;
    *nkey = qn + 1;
    return true;
}

static bool ref_conditions(const gw_route_spec_t *s, const char *method, const hdrs_t *h)
{
    if (s->methods && !(s->methods & gw_router_method_bit(method, strlen(method))))
        return false;
    for (size_t i = 0; i < s->nheaders; i++) {
        size_t vlen;
        const char *v = lookup((void *)h, s->headers[i].name, &vlen);
        if (!v || strcmp(v, s->headers[i].value) != 0)
            return false;
    }
    return true;
}

/* Compares two candidates by router.h's order: >0 when A is more specific. */
static int ref_compare(const gw_route_spec_t *a, int ha, const int *ka, const gw_route_spec_t *b,
                       int hb, const int *kb, size_t nkey)
{
    if (ha != hb)
        return ha - hb;
    for (size_t i = 0; i < nkey; i++)
        if (ka[i] != kb[i])
            return ka[i] - kb[i];
    if ((a->methods != 0) != (b->methods != 0))
        return a->methods ? 1 : -1;
    return (int)a->nheaders - (int)b->nheaders; /* 0: the earlier route stays */
}

static size_t ref_match(const gw_route_spec_t *specs, size_t n, const char *host,
                        const char *method, const char *path, const hdrs_t *h,
                        gw_route_params_t *params)
{
    size_t best = NOMATCH, nkey = 0;
    int best_host = 0, best_key[64], key[64];
    for (size_t i = 0; i < n; i++) {
        gw_route_params_t p;
        int hr = ref_host_rank(specs[i].host, host);
        if (hr == 0 || !ref_path_key(&specs[i], path, key, &nkey, &p) ||
            !ref_conditions(&specs[i], method, h))
            continue;
        if (best == NOMATCH ||
            ref_compare(&specs[i], hr, key, &specs[best], best_host, best_key, nkey) > 0) {
            best = i;
            best_host = hr;
            memcpy(best_key, key, sizeof(key));
            *params = p;
        }
    }
    return best;
}

static uint64_t rnd(uint64_t *s, uint64_t n)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (*s >> 33) % n;
}

static const char *const R_HOSTS[] = {NULL, "a.com", "*.a.com", "b.a.com", "*.b.a.com", "*"};
static const char *const R_SEGS[] = {"x", "y", ":"}; /* ":" becomes ":pN" */
static const unsigned R_METHODS[] = {0, GW_METHOD_GET, GW_METHOD_GET | GW_METHOD_POST,
                                     GW_METHOD_POST};
static const gw_route_header_t R_HDRS[][2] = {
    {{"h1", "1"}, {"h2", "2"}}, {{"h1", "1"}, {NULL, NULL}}, {{"h2", "2"}, {NULL, NULL}}};

/* A random route: PATH is its buffer (params get unique names by position). */
static void random_route(uint64_t *s, gw_route_spec_t *sp, char *path)
{
    size_t nseg = rnd(s, 4), o = 0;
    for (size_t i = 0; i < nseg; i++) {
        const char *seg = R_SEGS[rnd(s, 3)];
        if (seg[0] == ':')
            o += (size_t)snprintf(path + o, 32 - o, "/:p%zu", i);
        else
            o += (size_t)snprintf(path + o, 32 - o, "/%s", seg);
    }
    if (o == 0 || rnd(s, 5) == 0)
        path[o++] = '/';
    path[o] = '\0';
    sp->host = R_HOSTS[rnd(s, 6)];
    sp->path = path;
    sp->path_match = rnd(s, 2) ? GW_PATH_PREFIX : GW_PATH_EXACT;
    sp->methods = R_METHODS[rnd(s, 4)];
    size_t hv = rnd(s, 4);
    sp->headers = hv ? R_HDRS[hv - 1] : NULL;
    sp->nheaders = hv == 0 ? 0 : hv == 1 ? 2 : 1;
    sp->user = NULL;
}

static void random_request(uint64_t *s, char *host, char *path, const char **method, hdrs_t *h)
{
    static const char *const hosts[] = {"a.com", "b.a.com", "c.b.a.com", "A.COM.:80",
                                        "z.com", "",        "c.a.com",   "B.A.Com"};
    static const char *const segs[] = {"x", "y", "z"};
    static const char *const methods[] = {"GET", "POST", "PUT"};
    snprintf(host, 32, "%s", hosts[rnd(s, 8)]);
    size_t nseg = rnd(s, 5), o = 0;
    for (size_t i = 0; i < nseg; i++)
        o += (size_t)snprintf(path + o, 64 - o, "/%s", segs[rnd(s, 3)]);
    if (o == 0 || rnd(s, 4) == 0)
        path[o++] = '/';
    path[o] = '\0';
    *method = methods[rnd(s, 3)];
    memset(h, 0, sizeof(*h));
    size_t k = 0, v1 = rnd(s, 3);
    if (v1) {
        h->kv[k++] = "h1";
        h->kv[k++] = v1 == 1 ? "1" : "2";
    }
    if (rnd(s, 2)) {
        h->kv[k++] = "H2";
        h->kv[k++] = "2";
    }
}

static void check_one_request(const gw_router_t *r, const gw_route_spec_t *specs, size_t n,
                              uint64_t *s)
{
    char host[32], path[64];
    const char *method;
    hdrs_t h;
    random_request(s, host, path, &method, &h);
    gw_route_params_t got_p, want_p = {0};
    size_t got = route_of(r, host, method, path, &h, &got_p);
    size_t want = ref_match(specs, n, host, method, path, &h, &want_p);
    if (got != want && got != NOMATCH && want != NOMATCH)
        print_message("got: %s %s %d %x %zu / want: %s %s %d %x %zu\n",
                      specs[got].host ? specs[got].host : "-", specs[got].path,
                      specs[got].path_match, specs[got].methods, specs[got].nheaders,
                      specs[want].host ? specs[want].host : "-", specs[want].path,
                      specs[want].path_match, specs[want].methods, specs[want].nheaders);
    if (got != want)
        fail_msg("%s %s %s: trie says %zd, reference %zd", host, method, path, (ssize_t)got,
                 (ssize_t)want);
    if (got == NOMATCH)
        return;
    assert_int_equal(got_p.n, want_p.n);
    for (size_t k = 0; k < got_p.n; k++) {
        /* the reference's names point into the route path: "p0/x" stands for "p0" */
        size_t nl = strlen(got_p.p[k].name);
        assert_memory_equal(got_p.p[k].name, want_p.p[k].name, nl);
        assert_true(want_p.p[k].name[nl] == '\0' || want_p.p[k].name[nl] == '/');
        assert_ptr_equal(got_p.p[k].value, want_p.p[k].value);
        assert_int_equal(got_p.p[k].len, want_p.p[k].len);
    }
}

/* Random route sets (2-40 routes) and random requests from a small vocabulary, so that routes
 * overlap a lot; fixed seed. Sets with duplicate routes must fail to build (checked by the
 * reference too); the rest must agree with the reference on every request. */
static void router_trie_equals_brute_force(void **state)
{
    (void)state;
    uint64_t s = 20261122;
    size_t built = 0, matched = 0;
    for (int set = 0; set < 400; set++) {
        gw_route_spec_t specs[40];
        char paths[40][32];
        size_t n = 2 + rnd(&s, 39);
        for (size_t i = 0; i < n; i++)
            random_route(&s, &specs[i], paths[i]);
        gw_router_t *r = gw_router_build(specs, n, NULL, 0);
        if (!r)
            continue;
        built++;
        for (int q = 0; q < 300; q++) {
            check_one_request(r, specs, n, &s);
            matched++;
        }
        gw_router_free(r);
    }
    assert_true(built >= 100); /* the property was exercised, not skipped */
    assert_true(matched >= 30000);
}

/* ---- allocation failure (failalloc.h: this binary is linked with --wrap) ---------------- */

/* Every kind of node the build makes: exact and wildcard host tables (with a few hosts, so
 * a table grows), literal, parameter and prefix paths, methods and header conditions. */
static const gw_route_header_t H_CANARY[] = {{"X-Canary", "yes"}};
static const gw_route_spec_t OOM_SPECS[] = {
    {.host = "api.example.com", .path = "/users/:id/posts/:post", .path_match = GW_PATH_EXACT},
    {.host = "api.example.com", .path = "/users/me", .path_match = GW_PATH_EXACT},
    {.host = "api.example.com", .path = "/static/", .path_match = GW_PATH_PREFIX},
    {.host = "www.example.com", .path = "/", .path_match = GW_PATH_PREFIX},
    {.host = "a.example.org", .path = "/x", .path_match = GW_PATH_EXACT},
    {.host = "*.example.com", .path = "/", .path_match = GW_PATH_PREFIX},
    {.host = "*.b.example.com",
     .path = "/v1/",
     .path_match = GW_PATH_PREFIX,
     .methods = GW_METHOD_GET | GW_METHOD_HEAD},
    {.path = "/health", .path_match = GW_PATH_EXACT, .methods = GW_METHOD_GET},
    {.path = "/", .path_match = GW_PATH_PREFIX, .headers = H_CANARY, .nheaders = 1},
    {.path = "/", .path_match = GW_PATH_PREFIX},
};

static int oom_router_build(void *ctx)
{
    (void)ctx;
    char err[128] = "";
    gw_router_t *r =
        gw_router_build(OOM_SPECS, sizeof OOM_SPECS / sizeof OOM_SPECS[0], err, sizeof err);
    if (r == NULL) {
        gw_assert_contains(err, "out of memory"); /* never a spec error made up by a failure */
        return -1;
    }
    gw_route_params_t params;
    assert_int_equal(route_of(r, "api.example.com", "GET", "/users/7/posts/9", NULL, &params), 0);
    assert_int_equal(params.n, 2);
    assert_int_equal(route_of(r, "x.b.example.com", "GET", "/v1/a", NULL, NULL), 6);
    hdrs_t canary = {{"X-Canary", "yes"}};
    assert_int_equal(route_of(r, "other.net", "POST", "/a", &canary, NULL), 8);
    gw_router_free(r);
    return 0;
}

static void router_build_fails_cleanly_at_each_allocation(void **state)
{
    (void)state;
    gw_failalloc_report_t r = gw_failalloc_each(oom_router_build, NULL, false);
    assert_true(r.allocations >= 20);
    assert_int_equal(r.absorbed, 0);
    assert_int_equal(gw_failalloc_each(oom_router_build, NULL, true).absorbed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(router_priority_table),
        cmocka_unit_test(router_captures_parameters),
        cmocka_unit_test(router_no_match_returns_null),
        cmocka_unit_test(router_respects_lengths),
        cmocka_unit_test(router_long_host_matches_any_only),
        cmocka_unit_test(router_deep_request_is_bounded),
        cmocka_unit_test(router_build_rejects_duplicates),
        cmocka_unit_test(router_build_rejects_bad_specs),
        cmocka_unit_test(router_build_empty_list_matches_nothing),
        cmocka_unit_test(router_method_bit_names),
        cmocka_unit_test(router_trie_equals_brute_force),
        cmocka_unit_test_teardown(router_build_fails_cleanly_at_each_allocation,
                                  gw_failalloc_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
