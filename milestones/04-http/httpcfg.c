/* httpcfg.c - see httpcfg.h. */
#include "httpcfg.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "03-resilience/ratelimit.h"
#include "04-http/h1.h"
#include "error.h"

#define SEC ((uint64_t)1000)
#define MINUTE (60 * SEC)
#define HOUR (60 * MINUTE)
#define KiB ((uint64_t)1024)
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)
#define MAX_BODY (1024 * GiB)
#define MAX_REQUEST_BUFFERING (64 * MiB) /* held in buffer-pool chunks, per request */

/* In the order of gw_mw_kind_t: the index is the value. */
static const char *const mw_names[] = {
    "request_id", "forwarded",  "strip_prefix", "rewrite", "headers",    "cors",
    "jwt",        "rate_limit", "breaker",      "retry",   "access_log", NULL,
};
#define NKINDS (sizeof(mw_names) / sizeof(mw_names[0]) - 1)

static const char *const rl_key_names[] = {"client_ip", "header", "jwt_sub", NULL};

/* In the order of the GW_METHOD_* bits. */
static const char *const method_names[] = {"GET",   "HEAD",    "POST",    "PUT",  "DELETE",
                                           "PATCH", "OPTIONS", "CONNECT", "TRACE"};
#define NMETHODS (sizeof(method_names) / sizeof(method_names[0]))

static const gw_http_upstream_cfg_t upstream_defaults = {
    .max_idle = 32,
    .idle_timeout_ms = 60 * SEC,
    .max_requests = 1000,
};

/* What every decoder needs. */
typedef struct dec_s {
    gw_cdoc_t *doc;
    gw_config_t *cfg;
    bool upstreams_ok; /* `upstreams` is a mapping: unknown names are worth reporting */
} dec_t;

/* see httpcfg.h */
const char *gw_mw_kind_name(gw_mw_kind_t kind)
{
    return (size_t)kind < NKINDS ? mw_names[kind] : "?";
}

/* ---- small helpers -------------------------------------------------------------------- */

static void oom(gw_cdoc_t *doc, const gw_cnode_t *at)
{
    gw_cdoc_oom(doc, at);
}

/* The key node of KEY in MAP (for errors about the key itself), or NULL. */
static const gw_cnode_t *key_node(const gw_cnode_t *map, const char *key)
{
    for (size_t i = 0; map && map->type == GW_CNODE_MAP && i < map->n; i++)
        if (!strcmp(map->pairs[i].key->str, key))
            return map->pairs[i].key;
    return NULL;
}

/* RFC 9110 5.6.2: a field name, method or cookie name. */
static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!gw__h1_is_tchar((unsigned char)*s))
            return false;
    return true;
}

/* A field value we can put on the wire (NUL cannot reach us: cfgtree refuses it). */
static bool is_value(const char *s)
{
    return strpbrk(s, "\r\n") == NULL;
}

/* A string that must be a token (a header name, by default), or an error at NODE. */
static int get_token(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, char **out)
{
    char *s = NULL;
    if (!node || gw_cget_string(doc, node, key, &s) != 0)
        return node ? GW_ECONFIG : 0;
    if (!is_token(s)) {
        gw_cdoc_error(doc, node, "%s: '%s' is not a valid header name", key, s);
        free(s);
        return GW_ECONFIG;
    }
    *out = s;
    return 0;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

/* A sequence of strings (tokens when TOKENS) into a new array; *N gets its length. Items
 * in error are reported and left out. NULL (with *N = 0) when absent, empty or wrong. */
static char **get_strv(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, bool tokens,
                       size_t *n)
{
    *n = 0;
    if (!node || !gw_cnode_expect_seq(doc, node, key) || node->n == 0)
        return NULL;
    char **v = calloc(node->n, sizeof(*v));
    if (!v) {
        oom(doc, node);
        return NULL;
    }
    for (size_t i = 0; i < node->n; i++) {
        char *s = NULL;
        int rc = tokens ? get_token(doc, node->items[i], key, &s)
                        : gw_cget_string(doc, node->items[i], key, &s);
        if (rc == 0 && s)
            v[(*n)++] = s;
    }
    return v;
}

/* "a, b, c" from V[0..N) (a new string), or NULL when N is 0. */
static char *join(char **v, size_t n, gw_cdoc_t *doc, const gw_cnode_t *at)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(v[i]) + 2;
    if (n == 0)
        return NULL;
    char *s = malloc(len), *p = s;
    if (!s) {
        oom(doc, at);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(v[i]);
        if (i) {
            memcpy(p, ", ", 2);
            p += 2;
        }
        memcpy(p, v[i], k);
        p += k;
    }
    *p = '\0';
    return s;
}

/* A duration stored in whole seconds (JWT skew, CORS max-age): 1500ms would have to be
 * rounded one way or the other, so it is refused instead. */
static int get_seconds(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, uint64_t max_ms,
                       uint64_t *out_s)
{
    uint64_t ms = 0;
    if (!node || gw_cget_duration(doc, node, key, 0, max_ms, &ms) != 0)
        return node ? GW_ECONFIG : 0;
    if (ms % SEC) {
        gw_cdoc_error(doc, node, "%s: %s is not a whole number of seconds", key, node->str);
        return GW_ECONFIG;
    }
    *out_s = ms / SEC;
    return 0;
}

/* A request rate: "100", "0.5"; digits with at most 6 decimals (the bucket keeps a
 * millionth of a token per second, so -T prints it back exactly), GW_RATE_MIN..MAX. */
static int get_rate(gw_cdoc_t *doc, const gw_cnode_t *node, double *out)
{
    const char *s = node->type == GW_CNODE_SCALAR && !node->null && !node->quoted ? node->str : "";
    size_t digits = strspn(s, "0123456789"), decimals = 0;
    bool ok = digits > 0;
    if (ok && s[digits] == '.') {
        decimals = strspn(s + digits + 1, "0123456789");
        ok = decimals > 0 && decimals <= 6 && s[digits + 1 + decimals] == '\0';
    } else {
        ok = ok && s[digits] == '\0';
    }
    if (!ok) {
        gw_cnode_silence(node);
        gw_cdoc_error(doc, node,
                      "rate must be a number of requests per second like 100 or 0.5 "
                      "(at most 6 decimals, no quotes)");
        return GW_ECONFIG;
    }
    double v = strtod(s, NULL);
    if (!(v >= GW_RATE_MIN && v <= GW_RATE_MAX)) {
        gw_cdoc_error(doc, node, "rate: %s is out of range 0.000001..10000000", s);
        return GW_ECONFIG;
    }
    *out = v;
    return 0;
}

/* A path prefix for strip_prefix and rewrite: "/" or "/a/b" (no trailing slash). */
static int check_prefix(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, const char *s)
{
    size_t n = strlen(s);
    if (s[0] != '/')
        gw_cdoc_error(doc, node, "%s: '%s' must start with '/'", key, s);
    else if (n > 1 && s[n - 1] == '/')
        gw_cdoc_error(doc, node, "%s: '%s' must not end with '/'", key, s);
    else if (!is_value(s) || strpbrk(s, " \t?#"))
        gw_cdoc_error(doc, node, "%s: '%s' must be a plain path (no spaces, '?' or '#')", key, s);
    else
        return 0;
    return GW_ECONFIG;
}

/* ---- middleware ------------------------------------------------------------------------ */

static void decode_rewrite(gw_cdoc_t *doc, const gw_cnode_t *opts, gw_mw_cfg_t *m)
{
    if (m->kind == GW_MW_STRIP_PREFIX) {
        if (gw_cget_string(doc, opts, "strip_prefix", &m->u.rewrite.prefix) == 0 &&
            check_prefix(doc, opts, "strip_prefix", m->u.rewrite.prefix) != 0) {
            free(m->u.rewrite.prefix);
            m->u.rewrite.prefix = NULL;
        }
        return;
    }
    if (!gw_cnode_expect_map(doc, opts, "rewrite"))
        return;
    const gw_cnode_t *p = gw_cmap_require(doc, opts, "prefix");
    const gw_cnode_t *r = gw_cmap_require(doc, opts, "replace");
    if (p && gw_cget_string(doc, p, "prefix", &m->u.rewrite.prefix) == 0)
        check_prefix(doc, p, "prefix", m->u.rewrite.prefix);
    if (r && gw_cget_string(doc, r, "replace", &m->u.rewrite.replace) == 0)
        check_prefix(doc, r, "replace", m->u.rewrite.replace);
}

/* set/add: {Name: value, ...} */
static gw_mw_field_t *decode_fields(gw_cdoc_t *doc, const gw_cnode_t *map, const char *key,
                                    size_t *n)
{
    *n = 0;
    if (!map || !gw_cnode_expect_map(doc, map, key) || map->n == 0)
        return NULL;
    gw_mw_field_t *f = calloc(map->n, sizeof(*f));
    if (!f) {
        oom(doc, map);
        return NULL;
    }
    for (size_t i = 0; i < map->n; i++) {
        gw_cpair_t *p = &map->pairs[i];
        char *name = NULL, *value = NULL;
        p->used = true;
        if (get_token(doc, p->key, key, &name) == 0 &&
            gw_cget_string(doc, p->value, name, &value) == 0 && !is_value(value))
            gw_cdoc_error(doc, p->value, "%s: the value of %s must not hold CR or LF", key, name);
        else if (name && value) {
            f[*n].name = name;
            f[(*n)++].value = value;
            continue;
        }
        free(name);
        free(value);
    }
    return f;
}

/* request/response: {set, add, remove} */
static void decode_rules(gw_cdoc_t *doc, const gw_cnode_t *map, const char *key,
                         gw_mw_header_rules_t *r)
{
    if (!map || !gw_cnode_expect_map(doc, map, key))
        return;
    r->set = decode_fields(doc, gw_cmap_get(doc, map, "set"), "set", &r->nset);
    r->add = decode_fields(doc, gw_cmap_get(doc, map, "add"), "add", &r->nadd);
    r->remove = (const char *const *)get_strv(doc, gw_cmap_get(doc, map, "remove"), "remove", true,
                                              &r->nremove);
}

static void decode_headers(gw_cdoc_t *doc, const gw_cnode_t *opts, gw_mw_cfg_t *m)
{
    if (!gw_cnode_expect_map(doc, opts, "headers"))
        return;
    const gw_cnode_t *rq = gw_cmap_get(doc, opts, "request");
    const gw_cnode_t *rs = gw_cmap_get(doc, opts, "response");
    decode_rules(doc, rq, "request", &m->u.headers.request);
    decode_rules(doc, rs, "response", &m->u.headers.response);
    if (!rq && !rs)
        gw_cdoc_error(doc, opts, "headers needs `request`, `response` or both");
}

/* origins: a list of exact origins, or ["*"] alone. */
static void decode_origins(gw_cdoc_t *doc, const gw_cnode_t *node, gw_cors_policy_t *p)
{
    size_t n = 0;
    char **v = get_strv(doc, node, "origins", false, &n);
    bool star = false;
    for (size_t i = 0; i < n; i++)
        star |= !strcmp(v[i], "*");
    if (node && node->type == GW_CNODE_SEQ && node->n == 0)
        gw_cdoc_error(doc, node, "origins must not be empty (use [\"*\"] for any origin)");
    if (star && n > 1)
        gw_cdoc_error(doc, node, "origins: \"*\" must be the only origin when it is used");
    if (star) {
        p->any_origin = true;
        free_strv(v, n);
        return;
    }
    p->origins = (const char *const *)v;
    p->norigins = n;
}

static void decode_cors(gw_cdoc_t *doc, const gw_cnode_t *opts, gw_mw_cfg_t *m)
{
    gw_cors_policy_t *p = &m->u.cors;
    p->max_age = -1;
    if (!gw_cnode_expect_map(doc, opts, "cors"))
        return;
    decode_origins(doc, gw_cmap_require(doc, opts, "origins"), p);
    const char *const lists[] = {"methods", "headers", "expose"};
    const char **dst[] = {&p->methods, &p->headers, &p->expose};
    for (size_t i = 0; i < 3; i++) {
        const gw_cnode_t *node = gw_cmap_get(doc, opts, lists[i]);
        size_t n = 0;
        char **v = get_strv(doc, node, lists[i], true, &n);
        *dst[i] = join(v, n, doc, node);
        free_strv(v, n);
    }
    /* The CORS-safelisted methods, which a policy must name (mw_cors.h). */
    if (!gw_cmap_get(doc, opts, "methods") && !(p->methods = strdup("GET, HEAD, POST")))
        oom(doc, opts);
    const gw_cnode_t *cred = gw_cmap_get(doc, opts, "credentials");
    gw_cget_bool(doc, cred, "credentials", &p->credentials);
    if (p->any_origin && p->credentials)
        gw_cdoc_error(doc, cred,
                      "credentials: true cannot go with origins [\"*\"] (a browser refuses "
                      "it): list the origins");
    uint64_t age = 0;
    if (get_seconds(doc, gw_cmap_get(doc, opts, "max_age"), "max_age", 24 * HOUR, &age) == 0 &&
        gw_cmap_get(doc, opts, "max_age"))
        p->max_age = (long)age;
}

/* keys (a file) or secret: exactly one, loaded now so a bad key fails the load. */
static void decode_jwt_keys(gw_cdoc_t *doc, const gw_cnode_t *opts, gw_mw_cfg_t *m)
{
    char err[256];
    const gw_cnode_t *keys = gw_cmap_get(doc, opts, "keys");
    const gw_cnode_t *secret = gw_cmap_get(doc, opts, "secret");
    const gw_cnode_t *kid = gw_cmap_get(doc, opts, "kid");
    char *s = NULL;
    if (gw_cget_string(doc, kid, "kid", &m->u.jwt.kid) == 0 && m->u.jwt.kid &&
        (!m->u.jwt.kid[0] || strlen(m->u.jwt.kid) > GW_JWT_MAX_KID))
        gw_cdoc_error(doc, kid, "kid: use 1..%d bytes", GW_JWT_MAX_KID);
    if (!(m->u.jwt.keys = gw_jwt_keyset_new())) {
        oom(doc, opts);
        return;
    }
    if (keys && secret) {
        gw_cdoc_error(doc, key_node(opts, "secret"), "jwt: `keys` and `secret` are exclusive");
    } else if (keys) {
        if (gw_cget_string(doc, keys, "keys", &m->u.jwt.keys_file) != 0)
            return;
        int n = gw_jwt_keyset_add_file(m->u.jwt.keys, m->u.jwt.keys_file, m->u.jwt.kid, err,
                                       sizeof(err));
        if (n < 0)
            gw_cdoc_error(doc, keys, "keys: %s", err);
        else if (n == 0)
            gw_cdoc_error(doc, keys, "keys: %s holds no signing key we can use",
                          m->u.jwt.keys_file);
    } else if (secret) {
        if (gw_cget_string(doc, secret, "secret", &s) != 0)
            return;
        size_t len = strlen(s);
        if (len < GW_JWT_MIN_SECRET || len > GW_JWT_MAX_SECRET)
            gw_cdoc_error(doc, secret, "secret: use %d..%d bytes (it has %zu)", GW_JWT_MIN_SECRET,
                          GW_JWT_MAX_SECRET, len);
        else if (gw_jwt_keyset_add_secret(m->u.jwt.keys, m->u.jwt.kid, (const uint8_t *)s, len, err,
                                          sizeof(err)) != 0)
            gw_cdoc_error(doc, secret, "secret: %s", err);
        memset(s, 0, len);
        free(s);
    } else {
        gw_cdoc_error(doc, opts, "jwt needs `keys` (a JWKS or PEM certificate file) or `secret`");
    }
}

/* claims: {claim: Header-Name} */
static void decode_jwt_claims(gw_cdoc_t *doc, const gw_cnode_t *map, gw_mw_cfg_t *m)
{
    if (!map || !gw_cnode_expect_map(doc, map, "claims") || map->n == 0)
        return;
    m->u.jwt.claim_names = calloc(map->n, sizeof(char *));
    m->u.jwt.claim_headers = calloc(map->n, sizeof(char *));
    if (!m->u.jwt.claim_names || !m->u.jwt.claim_headers) {
        oom(doc, map);
        return;
    }
    for (size_t i = 0; i < map->n; i++) {
        gw_cpair_t *p = &map->pairs[i];
        char *header = NULL, *claim = NULL;
        p->used = true;
        if (get_token(doc, p->value, p->key->str, &header) == 0 && header &&
            (claim = strdup(p->key->str))) {
            m->u.jwt.claim_names[m->u.jwt.nclaims] = claim;
            m->u.jwt.claim_headers[m->u.jwt.nclaims++] = header;
            continue;
        }
        if (header)
            oom(doc, p->key);
        free(header);
    }
}

static void decode_jwt(gw_cdoc_t *doc, const gw_cnode_t *opts, gw_mw_cfg_t *m)
{
    gw_jwt_policy_t *pol = &m->u.jwt.policy;
    *pol = gw_jwt_policy_default();
    if (!gw_cnode_expect_map(doc, opts, "jwt"))
        return;
    decode_jwt_keys(doc, opts, m);
    pol->issuers = (const char *const *)get_strv(doc, gw_cmap_get(doc, opts, "issuers"), "issuers",
                                                 false, &pol->n_issuers);
    pol->audiences = (const char *const *)get_strv(doc, gw_cmap_get(doc, opts, "audiences"),
                                                   "audiences", false, &pol->n_audiences);
    uint64_t skew = pol->skew;
    if (get_seconds(doc, gw_cmap_get(doc, opts, "skew"), "skew", HOUR, &skew) == 0)
        pol->skew = (uint32_t)skew;
    gw_cget_bool(doc, gw_cmap_get(doc, opts, "require_exp"), "require_exp", &pol->require_exp);
    const gw_cnode_t *realm = gw_cmap_get(doc, opts, "realm");
    if (gw_cget_string(doc, realm, "realm", &m->u.jwt.realm) == 0 && m->u.jwt.realm) {
        /* It is sent inside a quoted-string of WWW-Authenticate. */
        for (const char *c = m->u.jwt.realm; *c; c++)
            if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20 || *c == 0x7F) {
                gw_cdoc_error(doc, realm, "realm: no quotes, backslashes or control characters");
                break;
            }
    }
    if (!m->u.jwt.realm && !(m->u.jwt.realm = strdup("gw")))
        oom(doc, opts);
    decode_jwt_claims(doc, gw_cmap_get(doc, opts, "claims"), m);
}

static void decode_rate_limit(gw_cdoc_t *doc, const gw_cnode_t *opts, gw_mw_cfg_t *m)
{
    __typeof__(m->u.rate_limit) *r = &m->u.rate_limit;
    r->max_keys = 100000;
    if (!gw_cnode_expect_map(doc, opts, "rate_limit"))
        return;
    const gw_cnode_t *rate = gw_cmap_require(doc, opts, "rate");
    if (rate && get_rate(doc, rate, &r->rate) != 0)
        r->rate = 1;
    double b = ceil(r->rate);
    uint64_t burst = b < 1 ? 1 : b > GW_BURST_MAX ? GW_BURST_MAX : (uint64_t)b;
    gw_cget_uint(doc, gw_cmap_get(doc, opts, "burst"), "burst", 1, GW_BURST_MAX, &burst);
    r->burst = (unsigned)burst;
    const gw_cnode_t *key = gw_cmap_get(doc, opts, "key");
    int k = GW_RL_KEY_CLIENT_IP;
    bool key_ok = gw_cget_enum(doc, key, "key", rl_key_names, &k) == 0;
    r->key = (gw_rl_key_t)k;
    const gw_cnode_t *header = gw_cmap_get(doc, opts, "header");
    if (!key_ok)
        gw_cnode_silence(header ? header : key);
    else if (header && r->key != GW_RL_KEY_HEADER)
        gw_cdoc_error(doc, key_node(opts, "header"), "header: only with `key: header`");
    else if (!header && r->key == GW_RL_KEY_HEADER)
        gw_cdoc_error(doc, key, "key: header needs `header: NAME` (the header to count by)");
    else
        get_token(doc, header, "header", &r->header);
    gw_cget_uint(doc, gw_cmap_get(doc, opts, "max_keys"), "max_keys", 16, 10000000, &r->max_keys);
}

static void decode_small(gw_cdoc_t *doc, const gw_cnode_t *opts, gw_mw_cfg_t *m)
{
    const char *name = gw_mw_kind_name(m->kind);
    if (m->kind == GW_MW_RETRY)
        m->u.retry.max_attempts = 2;
    if (!gw_cnode_expect_map(doc, opts, name))
        return;
    if (m->kind == GW_MW_BREAKER) {
        gw_res_decode_breaker(doc, opts, "breaker", &m->u.breaker);
    } else if (m->kind == GW_MW_RETRY) {
        uint64_t n = m->u.retry.max_attempts;
        gw_cget_uint(doc, gw_cmap_get(doc, opts, "max_attempts"), "max_attempts", 2, 10, &n);
        m->u.retry.max_attempts = (unsigned)n;
    } else if (m->kind == GW_MW_ACCESS_LOG) {
        const gw_cnode_t *f = gw_cmap_require(doc, opts, "file");
        if (gw_cget_string(doc, f, "file", &m->u.access_log.file) == 0 && f &&
            !m->u.access_log.file[0])
            gw_cdoc_error(doc, f, "file must not be empty (\"-\" is stdout)");
    }
    /* request_id and forwarded take no options: any key is reported as unknown. */
}

static void decode_options(gw_cdoc_t *doc, const gw_cnode_t *opts, gw_mw_cfg_t *m)
{
    switch (m->kind) {
    case GW_MW_STRIP_PREFIX:
    case GW_MW_REWRITE:
        decode_rewrite(doc, opts, m);
        break;
    case GW_MW_HEADERS:
        decode_headers(doc, opts, m);
        break;
    case GW_MW_CORS:
        decode_cors(doc, opts, m);
        break;
    case GW_MW_JWT:
        decode_jwt(doc, opts, m);
        break;
    case GW_MW_RATE_LIMIT:
        decode_rate_limit(doc, opts, m);
        break;
    default:
        decode_small(doc, opts, m);
        break;
    }
}

/* The kind named at KEY, or -1 after reporting it (with a suggestion when one is close). */
static int mw_kind(gw_cdoc_t *doc, const gw_cnode_t *key)
{
    const char *best = NULL;
    unsigned bd = 3;
    for (size_t i = 0; i < NKINDS; i++) {
        if (!strcmp(key->str, mw_names[i]))
            return (int)i;
        unsigned d = gw_cfg_edit_distance(key->str, mw_names[i]);
        if (d < bd)
            bd = d, best = mw_names[i];
    }
    if (best)
        gw_cdoc_error(doc, key, "unknown middleware '%s' (did you mean '%s'?)", key->str, best);
    else
        gw_cdoc_error(doc, key,
                      "unknown middleware '%s' (known: request_id, forwarded, strip_prefix, "
                      "rewrite, headers, cors, jwt, rate_limit, breaker, retry, access_log)",
                      key->str);
    return -1;
}

/* middleware: [{name: options}, ...], each kind at most once per route (its place in the
 * order would otherwise be ambiguous, and two retries or breakers make no sense). */
static void decode_middleware(gw_cdoc_t *doc, const gw_cnode_t *seq, gw_http_route_t *r)
{
    if (!seq || !gw_cnode_expect_seq(doc, seq, "middleware") || seq->n == 0)
        return;
    if (!(r->mw = calloc(seq->n, sizeof(*r->mw)))) {
        oom(doc, seq);
        return;
    }
    unsigned seen = 0;
    for (size_t i = 0; i < seq->n; i++) {
        const gw_cnode_t *item = seq->items[i];
        if (item->type != GW_CNODE_MAP || item->n != 1) {
            gw_cnode_silence(item);
            gw_cdoc_error(doc, item,
                          "each middleware must be a mapping with one key, like "
                          "`- cors: {...}`");
            continue;
        }
        gw_cpair_t *p = &item->pairs[0];
        p->used = true;
        int kind = mw_kind(doc, p->key);
        if (kind >= 0 && (seen & 1u << kind)) {
            gw_cdoc_error(doc, p->key, "%s: already in this route's middleware", p->key->str);
            kind = -1;
        }
        if (kind < 0) {
            gw_cnode_silence(p->value);
            continue;
        }
        seen |= 1u << kind;
        gw_mw_cfg_t *m = &r->mw[r->nmw++];
        m->kind = (gw_mw_kind_t)kind;
        m->line = item->line;
        m->col = item->col;
        decode_options(doc, p->value, m);
    }
}

/* ---- routes ----------------------------------------------------------------------------- */

static void decode_methods(gw_cdoc_t *doc, const gw_cnode_t *seq, gw_http_route_t *r)
{
    if (!seq || !gw_cnode_expect_seq(doc, seq, "methods"))
        return;
    if (seq->n == 0)
        gw_cdoc_error(doc, seq, "methods must not be empty (leave it out for any method)");
    for (size_t i = 0; i < seq->n; i++) {
        char *m = NULL;
        if (gw_cget_string(doc, seq->items[i], "methods", &m) != 0)
            continue;
        unsigned bit = gw_router_method_bit(m, strlen(m));
        if (!bit)
            gw_cdoc_error(doc, seq->items[i],
                          "methods: '%s' is not one of GET, HEAD, POST, PUT, DELETE, PATCH, "
                          "OPTIONS, CONNECT, TRACE",
                          m);
        r->methods |= bit;
        free(m);
    }
}

static void decode_match_headers(gw_cdoc_t *doc, const gw_cnode_t *map, gw_http_route_t *r)
{
    if (!map || !gw_cnode_expect_map(doc, map, "headers") || map->n == 0)
        return;
    if (!(r->headers = calloc(map->n, sizeof(*r->headers)))) {
        oom(doc, map);
        return;
    }
    for (size_t i = 0; i < map->n; i++) {
        gw_cpair_t *p = &map->pairs[i];
        char *name = NULL, *value = NULL;
        p->used = true;
        if (get_token(doc, p->key, "headers", &name) == 0 &&
            gw_cget_string(doc, p->value, name, &value) == 0) {
            r->headers[r->nheaders].name = name;
            r->headers[r->nheaders++].value = value;
            continue;
        }
        free(name);
    }
}

/* match: {host, path | path_prefix, methods, headers} */
static void decode_match(gw_cdoc_t *doc, const gw_cnode_t *map, gw_http_route_t *r)
{
    if (!map || !gw_cnode_expect_map(doc, map, "match"))
        return;
    gw_cget_string(doc, gw_cmap_get(doc, map, "host"), "host", &r->host);
    const gw_cnode_t *path = gw_cmap_get(doc, map, "path");
    const gw_cnode_t *prefix = gw_cmap_get(doc, map, "path_prefix");
    const gw_cnode_t *use = path ? path : prefix;
    if (path && prefix)
        gw_cdoc_error(doc, key_node(map, "path_prefix"), "path and path_prefix are exclusive");
    else if (use && gw_cget_string(doc, use, path ? "path" : "path_prefix", &r->path) == 0 &&
             r->path[0] != '/')
        gw_cdoc_error(doc, use, "%s: '%s' must start with '/'", path ? "path" : "path_prefix",
                      r->path);
    r->path_match = path ? GW_PATH_EXACT : GW_PATH_PREFIX;
    decode_methods(doc, gw_cmap_get(doc, map, "methods"), r);
    decode_match_headers(doc, gw_cmap_get(doc, map, "headers"), r);
}

/* The index of upstream NAME, or an error at NODE (when the upstreams are readable). */
static void resolve(dec_t *d, const gw_cnode_t *node, gw_http_target_t *t)
{
    for (size_t i = 0; i < d->cfg->nupstreams; i++)
        if (d->cfg->upstreams[i].name && !strcmp(d->cfg->upstreams[i].name, t->upstream)) {
            t->upstream_index = i;
            return;
        }
    if (d->upstreams_ok)
        gw_cdoc_error(d->doc, node, "unknown upstream '%s'", t->upstream);
}

static void decode_target(dec_t *d, const gw_cnode_t *map, gw_http_route_t *r)
{
    gw_http_target_t *t = &r->targets[r->ntargets];
    if (!gw_cnode_expect_map(d->doc, map, "each split target"))
        return;
    const gw_cnode_t *up = gw_cmap_require(d->doc, map, "upstream");
    const gw_cnode_t *wn = gw_cmap_require(d->doc, map, "weight");
    uint64_t w = 0;
    bool ok = up && gw_cget_string(d->doc, up, "upstream", &t->upstream) == 0;
    ok = wn && gw_cget_uint(d->doc, wn, "weight", 0, 100, &w) == 0 && ok;
    if (!ok) {
        free(t->upstream);
        t->upstream = NULL;
        return;
    }
    for (size_t i = 0; i < r->ntargets; i++)
        if (!strcmp(r->targets[i].upstream, t->upstream)) {
            gw_cdoc_error(d->doc, up, "upstream '%s' is already a target of this split",
                          t->upstream);
            free(t->upstream);
            t->upstream = NULL;
            return;
        }
    t->weight = (unsigned)w;
    resolve(d, up, t);
    r->ntargets++;
}

static void decode_sticky(gw_cdoc_t *doc, const gw_cnode_t *map, gw_http_route_t *r)
{
    const gw_cnode_t *h = gw_cmap_get(doc, map, "sticky_header");
    const gw_cnode_t *c = gw_cmap_get(doc, map, "sticky_cookie");
    if (h && c) {
        gw_cdoc_error(doc, key_node(map, "sticky_cookie"),
                      "sticky_header and sticky_cookie are exclusive");
        return;
    }
    if (h && get_token(doc, h, "sticky_header", &r->sticky_name) == 0)
        r->sticky = GW_SPLIT_BY_HEADER;
    if (c && gw_cget_string(doc, c, "sticky_cookie", &r->sticky_name) == 0) {
        r->sticky = GW_SPLIT_BY_COOKIE;
        if (!is_token(r->sticky_name))
            gw_cdoc_error(doc, c, "sticky_cookie: '%s' is not a valid cookie name", r->sticky_name);
    }
}

/* split: {targets: [{upstream, weight}], sticky_header | sticky_cookie} */
static const gw_cnode_t *decode_split(dec_t *d, const gw_cnode_t *map, gw_http_route_t *r)
{
    if (!gw_cnode_expect_map(d->doc, map, "split"))
        return NULL;
    const gw_cnode_t *seq = gw_cmap_require(d->doc, map, "targets");
    decode_sticky(d->doc, map, r);
    if (!seq || !gw_cnode_expect_seq(d->doc, seq, "targets"))
        return NULL;
    if (seq->n == 0) {
        gw_cdoc_error(d->doc, seq, "targets must not be empty");
        return NULL;
    }
    if (!(r->targets = calloc(seq->n, sizeof(*r->targets)))) {
        oom(d->doc, seq);
        return NULL;
    }
    for (size_t i = 0; i < seq->n; i++)
        decode_target(d, seq->items[i], r);
    return r->ntargets == seq->n ? seq : NULL;
}

/* Exactly one of upstream / split; fills targets, split_targets and split. */
static void decode_destination(dec_t *d, const gw_cnode_t *map, gw_http_route_t *r)
{
    const gw_cnode_t *up = gw_cmap_get(d->doc, map, "upstream");
    const gw_cnode_t *split = gw_cmap_get(d->doc, map, "split");
    const gw_cnode_t *at = NULL;
    if (up && split) {
        gw_cdoc_error(d->doc, key_node(map, "split"), "upstream and split are exclusive");
        gw_cnode_silence(split);
        return;
    } else if (!up && !split) {
        gw_cdoc_error(d->doc, map, "a route needs `upstream` or `split`");
        return;
    } else if (up) {
        if (!(r->targets = calloc(1, sizeof(*r->targets)))) {
            oom(d->doc, up);
            return;
        }
        if (gw_cget_string(d->doc, up, "upstream", &r->targets[0].upstream) != 0)
            return;
        r->targets[0].weight = 100;
        r->ntargets = 1;
        resolve(d, up, &r->targets[0]);
        at = up;
    } else if (!(at = decode_split(d, split, r))) {
        return;
    }
    if (!(r->split_targets = calloc(r->ntargets, sizeof(*r->split_targets)))) {
        oom(d->doc, at);
        return;
    }
    for (size_t i = 0; i < r->ntargets; i++) {
        r->split_targets[i].upstream = r->targets[i].upstream;
        r->split_targets[i].weight = r->targets[i].weight;
    }
    if (gw_split_init(&r->split, r->split_targets, r->ntargets) != 0)
        gw_cdoc_error(d->doc, at, "split: every weight is 0: give one target a weight");
}

static void decode_route(dec_t *d, const gw_cnode_t *map, size_t idx, gw_http_route_t *r)
{
    gw_cdoc_t *doc = d->doc;
    char def[32];
    r->index = idx;
    r->line = map->line;
    r->col = map->col;
    r->sticky = GW_SPLIT_RANDOM;
    r->path_match = GW_PATH_PREFIX;
    if (gw_cnode_expect_map(doc, map, "each route")) {
        gw_cget_string(doc, gw_cmap_get(doc, map, "name"), "name", &r->name);
        decode_match(doc, gw_cmap_require(doc, map, "match"), r);
        decode_destination(d, map, r);
        const gw_cnode_t *hr = gw_cmap_get(doc, map, "host_rewrite");
        if (gw_cget_string(doc, hr, "host_rewrite", &r->host_rewrite) == 0 && r->host_rewrite &&
            (!r->host_rewrite[0] || strpbrk(r->host_rewrite, " \t\r\n")))
            gw_cdoc_error(doc, hr, "host_rewrite: '%s' is not a host", r->host_rewrite);
        gw_cget_size(doc, gw_cmap_get(doc, map, "max_body"), "max_body", 1, MAX_BODY, &r->max_body);
        gw_cget_size(doc, gw_cmap_get(doc, map, "request_buffering"), "request_buffering", 0,
                     MAX_REQUEST_BUFFERING, &r->request_buffering);
        decode_middleware(doc, gw_cmap_get(doc, map, "middleware"), r);
    }
    snprintf(def, sizeof(def), "route %zu", idx);
    if (!r->name && !(r->name = strdup(def)))
        oom(doc, map);
    if (!r->path && !(r->path = strdup("/")))
        oom(doc, map);
}

static void decode_routes(dec_t *d, const gw_cnode_t *seq, gw_http_listener_cfg_t *x)
{
    if (!seq || !gw_cnode_expect_seq(d->doc, seq, "routes"))
        return;
    if (seq->n == 0) {
        gw_cdoc_error(d->doc, seq, "routes must not be empty");
        return;
    }
    if (!(x->routes = calloc(seq->n, sizeof(*x->routes)))) {
        oom(d->doc, seq);
        return;
    }
    for (size_t i = 0; i < seq->n; i++) {
        gw_http_route_t *r = &x->routes[x->nroutes++];
        decode_route(d, seq->items[i], i, r);
        const gw_cnode_t *name = gw_cmap_get(d->doc, seq->items[i], "name");
        for (size_t j = 0; r->name && j < i; j++)
            if (x->routes[j].name && !strcmp(x->routes[j].name, r->name))
                gw_cdoc_error(d->doc, name ? name : seq->items[i], "duplicate route name '%s'",
                              r->name);
    }
}

/* ---- listeners and upstreams ------------------------------------------------------------ */

static void decode_trusted(gw_cdoc_t *doc, const gw_cnode_t *seq, gw_http_listener_cfg_t *x)
{
    if (!seq || !gw_cnode_expect_seq(doc, seq, "trusted_proxies") || seq->n == 0)
        return;
    if (!(x->trusted = calloc(seq->n, sizeof(*x->trusted)))) {
        oom(doc, seq);
        return;
    }
    for (size_t i = 0; i < seq->n; i++) {
        char *s = NULL;
        if (gw_cget_string(doc, seq->items[i], "trusted_proxies", &s) != 0)
            continue;
        if (gw_cidr_parse(s, &x->trusted[x->ntrusted]) == 0)
            x->ntrusted++;
        else
            gw_cdoc_error(doc, seq->items[i],
                          "trusted_proxies: '%s' is not an address or CIDR like 10.0.0.0/8 "
                          "(host bits must be zero)",
                          s);
        free(s);
    }
}

/* http: {timeouts, limits, trusted_proxies}; forward_trailers waits for the routes
 * (decode_forward_trailers). */
static void decode_http_block(gw_cdoc_t *doc, const gw_cnode_t *map, gw_http_listener_cfg_t *x)
{
    if (!map || !gw_cnode_expect_map(doc, map, "http"))
        return;
    static const char *const tn[] = {"request_head_timeout", "body_timeout", "keepalive_timeout",
                                     "response_timeout"};
    uint64_t *tv[] = {&x->head_timeout_ms, &x->body_timeout_ms, &x->keepalive_timeout_ms,
                      &x->response_timeout_ms};
    for (size_t i = 0; i < 4; i++)
        gw_cget_duration(doc, gw_cmap_get(doc, map, tn[i]), tn[i], 1, HOUR, tv[i]);
    gw_cget_size(doc, gw_cmap_get(doc, map, "max_head_size"), "max_head_size", KiB, MiB,
                 &x->max_head);
    gw_cget_size(doc, gw_cmap_get(doc, map, "max_uri"), "max_uri", 256, 64 * KiB, &x->max_uri);
    gw_cget_uint(doc, gw_cmap_get(doc, map, "max_headers"), "max_headers", 1, 1000,
                 &x->max_headers);
    gw_cget_size(doc, gw_cmap_get(doc, map, "max_body"), "max_body", 0, MAX_BODY, &x->max_body);
    gw_cget_duration(doc, gw_cmap_get(doc, map, "request_body_deadline"), "request_body_deadline",
                     0, 24 * HOUR, &x->body_deadline_ms);
    decode_trusted(doc, gw_cmap_get(doc, map, "trusted_proxies"), x);
}

/* The route of X with a jwt middleware that copies a claim to the header NAME (any case),
 * or NULL. */
static const gw_http_route_t *claim_route(const gw_http_listener_cfg_t *x, const char *name)
{
    for (size_t i = 0; i < x->nroutes; i++)
        for (size_t j = 0; j < x->routes[i].nmw; j++) {
            const gw_mw_cfg_t *m = &x->routes[i].mw[j];
            for (size_t k = 0; m->kind == GW_MW_JWT && k < m->u.jwt.nclaims; k++)
                if (!strcasecmp(m->u.jwt.claim_headers[k], name))
                    return &x->routes[i];
        }
    return NULL;
}

/* Whether NAME may be in forward_trailers, else an error at NODE. KEPT[0..N) are the names
 * accepted before it: a second spelling of one name is refused rather than merged, so the
 * list -T prints is the list that was written. */
static bool trailer_name_ok(gw_cdoc_t *doc, const gw_cnode_t *node, const char *name,
                            const gw_http_listener_cfg_t *x, char **kept, size_t n)
{
    const char *why = gw_trailers_forbidden(name, strlen(name));
    const gw_http_route_t *r = claim_route(x, name);
    if (why)
        gw_cdoc_error(doc, node, "forward_trailers: '%s' may never be a trailer (%s)", name, why);
    else if (r)
        gw_cdoc_error(doc, node,
                      "forward_trailers: '%s' is the jwt claim header of route '%s' (a trailer "
                      "would bring back the value the jwt middleware removed)",
                      name, r->name ? r->name : "?");
    for (size_t i = 0; !why && !r && i < n; i++)
        if (!strcasecmp(kept[i], name)) {
            gw_cdoc_error(doc, node, "forward_trailers: '%s' is already listed", name);
            return false;
        }
    return !why && !r;
}

/* forward_trailers: [names], read after the routes (their jwt claim headers may not be
 * listed). X always gets an allow-list, empty when the key is absent or wrong. */
static void decode_forward_trailers(gw_cdoc_t *doc, const gw_cnode_t *http,
                                    gw_http_listener_cfg_t *x)
{
    const gw_cnode_t *seq = gw_cmap_get(doc, http, "forward_trailers");
    size_t n = 0;
    char **v = NULL;
    if (seq && gw_cnode_expect_seq(doc, seq, "forward_trailers") && seq->n > 0 &&
        !(v = calloc(seq->n, sizeof(*v))))
        oom(doc, seq);
    for (size_t i = 0; v && i < seq->n; i++) {
        char *s = NULL;
        if (get_token(doc, seq->items[i], "forward_trailers", &s) != 0 || !s)
            continue;
        if (trailer_name_ok(doc, seq->items[i], s, x, v, n))
            v[n++] = s;
        else
            free(s);
    }
    if (gw_trailers_allow_new((const char *const *)v, n, &x->forward_trailers) != 0)
        oom(doc, seq);
    free_strv(v, n);
}

/* `upstreams` in the file is a mapping: only then is an unknown name worth an error (the
 * core loader reported the rest). */
static bool upstreams_readable(const gw_cdoc_t *doc)
{
    const gw_cnode_t *root = doc->root;
    for (size_t i = 0; root && root->type == GW_CNODE_MAP && i < root->n; i++)
        if (!strcmp(root->pairs[i].key->str, "upstreams"))
            return root->pairs[i].value->type == GW_CNODE_MAP;
    return false;
}

/* routes and http on a tcp listener: claimed here so the message says why. When the
 * listener's `protocol` itself was wrong (reported already), they are only claimed. */
static void reject_http_keys(gw_cdoc_t *doc, const gw_cnode_t *map)
{
    static const char *const keys[] = {"routes", "http"};
    const gw_cnode_t *proto = gw_cmap_get(doc, map, "protocol");
    bool tcp = !proto || (proto->type == GW_CNODE_SCALAR && !strcmp(proto->str, "tcp"));
    for (size_t i = 0; i < 2; i++) {
        const gw_cnode_t *v = gw_cmap_get(doc, map, keys[i]);
        if (!v)
            continue;
        gw_cnode_silence(v);
        if (tcp)
            gw_cdoc_error(doc, key_node(map, keys[i]), "%s: only for protocol http", keys[i]);
    }
}

static void http_listener(gw_cdoc_t *doc, const gw_cnode_t *map, gw_config_t *cfg,
                          gw_listener_cfg_t *l)
{
    gw_res_config_ext.listener(doc, map, cfg, l);
    if (l->protocol != GW_PROTO_HTTP) {
        reject_http_keys(doc, map);
        return;
    }
    gw_res_listener_cfg_t *res = gw_res_listener_ext(l);
    if (!res)
        return;
    gw_http_listener_cfg_t *x = calloc(1, sizeof(*x));
    if (!x) {
        oom(doc, map);
        return;
    }
    res->later = x;
    x->head_timeout_ms = 10 * SEC;
    x->body_timeout_ms = 30 * SEC;
    x->keepalive_timeout_ms = 60 * SEC;
    x->response_timeout_ms = 30 * SEC;
    x->max_head = 16 * KiB;
    x->max_uri = 8 * KiB;
    x->max_headers = 100;
    const gw_cnode_t *up = gw_cmap_get(doc, map, "upstream");
    if (up) {
        gw_cnode_silence(up);
        gw_cdoc_error(doc, key_node(map, "upstream"),
                      "upstream: an http listener has routes, each naming its upstream");
    }
    dec_t d = {.doc = doc, .cfg = cfg, .upstreams_ok = upstreams_readable(doc)};
    const gw_cnode_t *http = gw_cmap_get(doc, map, "http");
    decode_http_block(doc, http, x);
    decode_routes(&d, gw_cmap_require(doc, map, "routes"), x);
    decode_forward_trailers(doc, http, x);
}

/* keepalive: {max_idle, idle_timeout, max_requests} */
static void http_upstream(gw_cdoc_t *doc, const gw_cnode_t *map, gw_config_t *cfg,
                          gw_upstream_cfg_t *u)
{
    gw_res_config_ext.upstream(doc, map, cfg, u);
    gw_res_upstream_cfg_t *res = gw_res_upstream_ext(u);
    if (!res)
        return;
    gw_http_upstream_cfg_t *x = malloc(sizeof(*x));
    if (!x) {
        oom(doc, map);
        return;
    }
    *x = upstream_defaults;
    res->later = x;
    const gw_cnode_t *ka = gw_cmap_get(doc, map, "keepalive");
    if (!ka || !gw_cnode_expect_map(doc, ka, "keepalive"))
        return;
    gw_cget_uint(doc, gw_cmap_get(doc, ka, "max_idle"), "max_idle", 0, 10000, &x->max_idle);
    gw_cget_duration(doc, gw_cmap_get(doc, ka, "idle_timeout"), "idle_timeout", 1, HOUR,
                     &x->idle_timeout_ms);
    gw_cget_uint(doc, gw_cmap_get(doc, ka, "max_requests"), "max_requests", 0, 10000000,
                 &x->max_requests);
}

/* The router of one listener; an error names the route (by the router's index) at the
 * route's own position. */
static void build_router(gw_cdoc_t *doc, gw_http_listener_cfg_t *x)
{
    char err[256];
    gw_route_spec_t *specs = calloc(x->nroutes, sizeof(*specs));
    if (!specs) {
        gw_cdoc_oom(doc, NULL);
        return;
    }
    for (size_t i = 0; i < x->nroutes; i++) {
        const gw_http_route_t *r = &x->routes[i];
        specs[i] = (gw_route_spec_t){.host = r->host,
                                     .path = r->path,
                                     .path_match = r->path_match,
                                     .methods = r->methods,
                                     .headers = r->headers,
                                     .nheaders = r->nheaders,
                                     .user = &x->routes[i]};
    }
    x->router = gw_router_build(specs, x->nroutes, err, sizeof(err));
    free(specs);
    if (x->router)
        return;
    size_t idx;
    if (sscanf(err, "route %zu:", &idx) == 1 && idx < x->nroutes) {
        gw_cnode_t at = {.line = x->routes[idx].line, .col = x->routes[idx].col};
        gw_cdoc_error(doc, &at, "%s", err);
    } else {
        gw_cdoc_error(doc, NULL, "%s", err);
    }
}

static void http_validate(gw_cdoc_t *doc, gw_config_t *cfg)
{
    if (gw_res_config_ext.validate)
        gw_res_config_ext.validate(doc, cfg);
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        gw_res_listener_cfg_t *res = gw_res_listener_ext(&cfg->listeners[i]);
        if (res && res->later && cfg->listeners[i].protocol == GW_PROTO_HTTP)
            build_router(doc, res->later);
    }
}

/* see httpcfg.h */
const gw_http_listener_cfg_t *gw_http_listener_cfg(const gw_listener_cfg_t *l)
{
    const gw_res_listener_cfg_t *res = l->ext;
    return l->protocol == GW_PROTO_HTTP && res ? res->later : NULL;
}

/* see httpcfg.h */
const gw_http_upstream_cfg_t *gw_http_upstream_cfg(const gw_upstream_cfg_t *u)
{
    const gw_http_upstream_cfg_t *x = gw_res_upstream_cfg(u)->later;
    return x ? x : &upstream_defaults;
}

/* ---- printing (-T) ---------------------------------------------------------------------- */

static void print_strv(FILE *out, const char *const *v, size_t n)
{
    fputc('[', out);
    for (size_t i = 0; i < n; i++) {
        if (i)
            fputs(", ", out);
        gw_config_print_str(out, v[i]);
    }
    fputc(']', out);
}

/* A joined "a, b" list printed back as ["a", "b"] (its items are tokens: no ',' or ' '). */
static void print_joined(FILE *out, const char *key, const char *s)
{
    fprintf(out, ", %s: [", key);
    for (const char *p = s; p && *p;) {
        size_t n = strcspn(p, ",");
        fprintf(out, "%s\"%.*s\"", p == s ? "" : ", ", (int)n, p);
        p += n;
        p += strspn(p, ", ");
    }
    fputc(']', out);
}

static void print_fields(FILE *out, const char *key, const gw_mw_field_t *f, size_t n)
{
    fprintf(out, "%s: {", key);
    for (size_t i = 0; i < n; i++) {
        fputs(i ? ", " : "", out);
        gw_config_print_str(out, f[i].name);
        fputs(": ", out);
        gw_config_print_str(out, f[i].value);
    }
    fputc('}', out);
}

static void print_rules(FILE *out, int in, const char *key, const gw_mw_header_rules_t *r)
{
    fprintf(out, "%*s%s: {", in, "", key);
    print_fields(out, "set", r->set, r->nset);
    fputs(", ", out);
    print_fields(out, "add", r->add, r->nadd);
    fputs(", remove: ", out);
    print_strv(out, r->remove, r->nremove);
    fputs("}\n", out);
}

static void print_cors(FILE *out, const gw_cors_policy_t *p)
{
    char a[32];
    static const char *const star[] = {"*"};
    fputs("{origins: ", out);
    if (p->any_origin)
        print_strv(out, star, 1);
    else
        print_strv(out, p->origins, p->norigins);
    print_joined(out, "methods", p->methods);
    print_joined(out, "headers", p->headers);
    print_joined(out, "expose", p->expose);
    fprintf(out, ", credentials: %s", p->credentials ? "true" : "false");
    if (p->max_age >= 0)
        fprintf(out, ", max_age: %s", gw_cfmt_duration((uint64_t)p->max_age * SEC, a, sizeof(a)));
    fputs("}\n", out);
}

/* A secret is never shown; the placeholder (32 bytes or more) still loads, so -T's output
 * stays a valid configuration, like 03's admin token. */
static void print_jwt(FILE *out, const gw_mw_cfg_t *m)
{
    char a[32];
    const gw_jwt_policy_t *p = &m->u.jwt.policy;
    fputs("{", out);
    if (m->u.jwt.keys_file) {
        fputs("keys: ", out);
        gw_config_print_str(out, m->u.jwt.keys_file);
    } else {
        fputs("secret: \"<set, not shown: the configured secret>\"", out);
    }
    if (m->u.jwt.kid) {
        fputs(", kid: ", out);
        gw_config_print_str(out, m->u.jwt.kid);
    }
    fputs(", issuers: ", out);
    print_strv(out, p->issuers, p->n_issuers);
    fputs(", audiences: ", out);
    print_strv(out, p->audiences, p->n_audiences);
    fprintf(out, ", skew: %s, require_exp: %s, realm: ",
            gw_cfmt_duration((uint64_t)p->skew * SEC, a, sizeof(a)),
            p->require_exp ? "true" : "false");
    gw_config_print_str(out, m->u.jwt.realm ? m->u.jwt.realm : "gw");
    fputs(", claims: {", out);
    for (size_t i = 0; i < m->u.jwt.nclaims; i++) {
        fputs(i ? ", " : "", out);
        gw_config_print_str(out, m->u.jwt.claim_names[i]);
        fputs(": ", out);
        gw_config_print_str(out, m->u.jwt.claim_headers[i]);
    }
    fputs("}}\n", out);
}

static void print_rate_limit(FILE *out, const gw_mw_cfg_t *m)
{
    char rate[64];
    snprintf(rate, sizeof(rate), "%.6f", m->u.rate_limit.rate);
    char *end = rate + strlen(rate);
    while (end[-1] == '0')
        *--end = '\0';
    if (end[-1] == '.')
        end[-1] = '\0';
    fprintf(out, "{rate: %s, burst: %u, key: %s", rate, m->u.rate_limit.burst,
            rl_key_names[m->u.rate_limit.key]);
    if (m->u.rate_limit.header) {
        fputs(", header: ", out);
        gw_config_print_str(out, m->u.rate_limit.header);
    }
    fprintf(out, ", max_keys: %" PRIu64 "}\n", m->u.rate_limit.max_keys);
}

static void print_breaker(FILE *out, const gw_breaker_cfg_t *b)
{
    char a[32], c[32];
    fprintf(out,
            "{consecutive_failures: %u, failure_rate_percent: %g, min_requests: %u, window: %s, "
            "open_timeout: %s, half_open_max: %u, success_to_close: %u}\n",
            b->consecutive_failures, b->failure_rate_percent, b->min_requests,
            gw_cfmt_duration(b->window_ms, a, sizeof(a)),
            gw_cfmt_duration(b->open_timeout_ms, c, sizeof(c)), b->half_open_max,
            b->success_to_close);
}

static void print_mw(FILE *out, const gw_mw_cfg_t *m, int in)
{
    fprintf(out, "%*s- %s:%s", in, "", gw_mw_kind_name(m->kind),
            m->kind == GW_MW_HEADERS ? "" : " ");
    switch (m->kind) {
    case GW_MW_STRIP_PREFIX:
        gw_config_print_str(out, m->u.rewrite.prefix ? m->u.rewrite.prefix : "/");
        fputc('\n', out);
        break;
    case GW_MW_REWRITE:
        fputs("{prefix: ", out);
        gw_config_print_str(out, m->u.rewrite.prefix ? m->u.rewrite.prefix : "/");
        fputs(", replace: ", out);
        gw_config_print_str(out, m->u.rewrite.replace ? m->u.rewrite.replace : "/");
        fputs("}\n", out);
        break;
    case GW_MW_HEADERS:
        fputc('\n', out);
        print_rules(out, in + 4, "request", &m->u.headers.request);
        print_rules(out, in + 4, "response", &m->u.headers.response);
        break;
    case GW_MW_CORS:
        print_cors(out, &m->u.cors);
        break;
    case GW_MW_JWT:
        print_jwt(out, m);
        break;
    case GW_MW_RATE_LIMIT:
        print_rate_limit(out, m);
        break;
    case GW_MW_BREAKER:
        print_breaker(out, &m->u.breaker);
        break;
    case GW_MW_RETRY:
        fprintf(out, "{max_attempts: %u}\n", m->u.retry.max_attempts);
        break;
    case GW_MW_ACCESS_LOG:
        fputs("{file: ", out);
        gw_config_print_str(out, m->u.access_log.file ? m->u.access_log.file : "-");
        fputs("}\n", out);
        break;
    default: /* request_id, forwarded */
        fputs("{}\n", out);
        break;
    }
}

static void print_match(FILE *out, const gw_http_route_t *r, int in)
{
    fprintf(out, "%*smatch:\n", in, "");
    if (r->host) {
        fprintf(out, "%*shost: ", in + 2, "");
        gw_config_print_str(out, r->host);
        fputc('\n', out);
    }
    fprintf(out, "%*s%s: ", in + 2, "", r->path_match == GW_PATH_EXACT ? "path" : "path_prefix");
    gw_config_print_str(out, r->path ? r->path : "/");
    fputc('\n', out);
    if (r->methods) {
        fprintf(out, "%*smethods: [", in + 2, "");
        for (unsigned i = 0, n = 0; i < NMETHODS; i++)
            if (r->methods & 1u << i)
                fprintf(out, "%s%s", n++ ? ", " : "", method_names[i]);
        fputs("]\n", out);
    }
    if (r->nheaders) {
        fprintf(out, "%*sheaders: {", in + 2, "");
        for (size_t i = 0; i < r->nheaders; i++) {
            fputs(i ? ", " : "", out);
            gw_config_print_str(out, r->headers[i].name);
            fputs(": ", out);
            gw_config_print_str(out, r->headers[i].value);
        }
        fputs("}\n", out);
    }
}

static void print_destination(FILE *out, const gw_http_route_t *r, int in)
{
    bool split = r->ntargets != 1 || r->targets[0].weight != 100 || r->sticky_name;
    if (!split) {
        fprintf(out, "%*supstream: ", in, "");
        gw_config_print_str(out, r->targets[0].upstream);
        fputc('\n', out);
        return;
    }
    fprintf(out, "%*ssplit:\n%*stargets:\n", in, "", in + 2, "");
    for (size_t i = 0; i < r->ntargets; i++) {
        fprintf(out, "%*s- {upstream: ", in + 4, "");
        gw_config_print_str(out, r->targets[i].upstream);
        fprintf(out, ", weight: %u}\n", r->targets[i].weight);
    }
    if (r->sticky_name) {
        fprintf(out, "%*s%s: ", in + 2, "",
                r->sticky == GW_SPLIT_BY_COOKIE ? "sticky_cookie" : "sticky_header");
        gw_config_print_str(out, r->sticky_name);
        fputc('\n', out);
    }
}

static void print_route(FILE *out, const gw_http_route_t *r, int in)
{
    char a[32];
    fprintf(out, "%*s- name: ", in, "");
    gw_config_print_str(out, r->name ? r->name : "");
    fputc('\n', out);
    print_match(out, r, in + 2);
    if (r->ntargets)
        print_destination(out, r, in + 2);
    if (r->host_rewrite) {
        fprintf(out, "%*shost_rewrite: ", in + 2, "");
        gw_config_print_str(out, r->host_rewrite);
        fputc('\n', out);
    }
    if (r->max_body)
        fprintf(out, "%*smax_body: %s\n", in + 2, "", gw_cfmt_size(r->max_body, a, sizeof(a)));
    if (r->request_buffering)
        fprintf(out, "%*srequest_buffering: %s\n", in + 2, "",
                gw_cfmt_size(r->request_buffering, a, sizeof(a)));
    if (r->nmw)
        fprintf(out, "%*smiddleware:\n", in + 2, "");
    for (size_t i = 0; i < r->nmw; i++)
        print_mw(out, &r->mw[i], in + 4);
}

static void print_http_block(FILE *out, const gw_http_listener_cfg_t *x, int in)
{
    char a[32], b[32], c[32], d[32];
    char buf[INET6_ADDRSTRLEN];
    fprintf(out, "%*shttp:\n", in, "");
    fprintf(out,
            "%*srequest_head_timeout: %s\n%*sbody_timeout: %s\n%*skeepalive_timeout: %s\n"
            "%*sresponse_timeout: %s\n",
            in + 2, "", gw_cfmt_duration(x->head_timeout_ms, a, sizeof(a)), in + 2, "",
            gw_cfmt_duration(x->body_timeout_ms, b, sizeof(b)), in + 2, "",
            gw_cfmt_duration(x->keepalive_timeout_ms, c, sizeof(c)), in + 2, "",
            gw_cfmt_duration(x->response_timeout_ms, d, sizeof(d)));
    fprintf(out, "%*smax_head_size: %s\n%*smax_uri: %s\n%*smax_headers: %" PRIu64 "\n", in + 2, "",
            gw_cfmt_size(x->max_head, a, sizeof(a)), in + 2, "",
            gw_cfmt_size(x->max_uri, b, sizeof(b)), in + 2, "", x->max_headers);
    fprintf(out, "%*smax_body: %s\n", in + 2, "", gw_cfmt_size(x->max_body, a, sizeof(a)));
    fprintf(out, "%*srequest_body_deadline: %s\n", in + 2, "",
            gw_cfmt_duration(x->body_deadline_ms, a, sizeof(a)));
    fprintf(out, "%*strusted_proxies: [", in + 2, "");
    for (size_t i = 0; i < x->ntrusted; i++) {
        const gw_cidr_t *t = &x->trusted[i];
        inet_ntop(t->family, t->addr, buf, sizeof(buf));
        fprintf(out, "%s\"%s/%u\"", i ? ", " : "", buf, t->bits);
    }
    fprintf(out, "]\n%*sforward_trailers: [", in + 2, "");
    for (size_t i = 0; i < gw_trailers_allow_count(x->forward_trailers); i++) {
        fputs(i ? ", " : "", out);
        gw_config_print_str(out, gw_trailers_allow_name(x->forward_trailers, i));
    }
    fputs("]\n", out);
}

static void print_listener(FILE *out, const gw_listener_cfg_t *l, int in)
{
    gw_res_config_ext.print_listener(out, l, in);
    const gw_http_listener_cfg_t *x = gw_http_listener_cfg(l);
    if (!x)
        return;
    print_http_block(out, x, in);
    fprintf(out, "%*sroutes:\n", in, "");
    for (size_t i = 0; i < x->nroutes; i++)
        print_route(out, &x->routes[i], in + 2);
}

static void print_upstream(FILE *out, const gw_upstream_cfg_t *u, int in)
{
    char a[32];
    gw_res_config_ext.print_upstream(out, u, in);
    const gw_http_upstream_cfg_t *x = gw_http_upstream_cfg(u);
    fprintf(
        out, "%*skeepalive: {max_idle: %" PRIu64 ", idle_timeout: %s, max_requests: %" PRIu64 "}\n",
        in, "", x->max_idle, gw_cfmt_duration(x->idle_timeout_ms, a, sizeof(a)), x->max_requests);
}

/* ---- freeing ---------------------------------------------------------------------------- */

static void free_fields(const gw_mw_field_t *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)f[i].name);
        free((char *)f[i].value);
    }
    free((gw_mw_field_t *)f);
}

static void free_rules(gw_mw_header_rules_t *r)
{
    free_fields(r->set, r->nset);
    free_fields(r->add, r->nadd);
    free_strv((char **)r->remove, r->nremove);
}

static void free_mw(gw_mw_cfg_t *m)
{
    switch (m->kind) {
    case GW_MW_STRIP_PREFIX:
    case GW_MW_REWRITE:
        free(m->u.rewrite.prefix);
        free(m->u.rewrite.replace);
        break;
    case GW_MW_HEADERS:
        free_rules(&m->u.headers.request);
        free_rules(&m->u.headers.response);
        break;
    case GW_MW_CORS:
        free_strv((char **)m->u.cors.origins, m->u.cors.norigins);
        free((char *)m->u.cors.methods);
        free((char *)m->u.cors.headers);
        free((char *)m->u.cors.expose);
        break;
    case GW_MW_JWT:
        gw_jwt_keyset_free(m->u.jwt.keys);
        free(m->u.jwt.keys_file);
        free(m->u.jwt.kid);
        free(m->u.jwt.realm);
        free_strv((char **)m->u.jwt.policy.issuers, m->u.jwt.policy.n_issuers);
        free_strv((char **)m->u.jwt.policy.audiences, m->u.jwt.policy.n_audiences);
        free_strv(m->u.jwt.claim_names, m->u.jwt.nclaims);
        free_strv(m->u.jwt.claim_headers, m->u.jwt.nclaims);
        break;
    case GW_MW_RATE_LIMIT:
        free(m->u.rate_limit.header);
        break;
    case GW_MW_ACCESS_LOG:
        free(m->u.access_log.file);
        break;
    default:
        break;
    }
}

static void free_route(gw_http_route_t *r)
{
    free(r->name);
    free(r->host);
    free(r->path);
    for (size_t i = 0; i < r->nheaders; i++) {
        free((char *)r->headers[i].name);
        free((char *)r->headers[i].value);
    }
    free(r->headers);
    for (size_t i = 0; i < r->ntargets; i++)
        free(r->targets[i].upstream);
    free(r->targets);
    free(r->split_targets);
    free(r->sticky_name);
    free(r->host_rewrite);
    for (size_t i = 0; i < r->nmw; i++)
        free_mw(&r->mw[i]);
    free(r->mw);
}

static void free_listener(gw_http_listener_cfg_t *x)
{
    gw_router_free(x->router);
    for (size_t i = 0; i < x->nroutes; i++)
        free_route(&x->routes[i]);
    free(x->routes);
    free(x->trusted);
    gw_trailers_allow_free(x->forward_trailers);
    free(x);
}

static void http_free(gw_config_t *cfg)
{
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        gw_res_listener_cfg_t *res = gw_res_listener_ext(&cfg->listeners[i]);
        if (res && res->later) {
            free_listener(res->later);
            res->later = NULL;
        }
    }
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        gw_res_upstream_cfg_t *res = gw_res_upstream_ext(&cfg->upstreams[i]);
        if (res) {
            free(res->later);
            res->later = NULL;
        }
    }
    gw_res_config_ext.free(cfg);
}

/* 03's hooks for what 04 does not extend. Wrappers, because a static initializer cannot
 * read another object's members. */
static void http_root(gw_cdoc_t *doc, const gw_cnode_t *map, gw_config_t *cfg)
{
    if (gw_res_config_ext.root)
        gw_res_config_ext.root(doc, map, cfg);
}

static void http_backend(gw_cdoc_t *doc, const gw_cnode_t *map, gw_config_t *cfg,
                         gw_upstream_cfg_t *u, gw_backend_cfg_t *b)
{
    if (gw_res_config_ext.backend)
        gw_res_config_ext.backend(doc, map, cfg, u, b);
}

static void print_root(FILE *out, const gw_config_t *cfg)
{
    if (gw_res_config_ext.print_root)
        gw_res_config_ext.print_root(out, cfg);
}

static void print_backend(FILE *out, const gw_backend_cfg_t *b, int in)
{
    if (gw_res_config_ext.print_backend)
        gw_res_config_ext.print_backend(out, b, in);
}

/* see httpcfg.h */
const gw_config_ext_t gw_http_config_ext = {
    .level = 4,
    .root = http_root,
    .listener = http_listener,
    .upstream = http_upstream,
    .backend = http_backend,
    .validate = http_validate,
    .print_root = print_root,
    .print_listener = print_listener,
    .print_upstream = print_upstream,
    .print_backend = print_backend,
    .free = http_free,
};
