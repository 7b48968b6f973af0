/* mw_jwt.c - the jwt middleware: a request needs `Authorization: Bearer <token>` with a
 * token that the configured keys verify and whose claims hold (exp, nbf, iat, iss, aud);
 * chosen claims are then copied to request headers for the upstream.
 *
 *   middleware:
 *     - jwt: {keys: /path/jwks.json (or a PEM certificate file), kid: k1 (PEM only),
 *             secret: "...32+ bytes..." (instead of keys), issuers: [...],
 *             audiences: [...], skew: 60s, require_exp: true, realm: api,
 *             claims: {sub: X-User-Id, email: X-User-Email}}
 *
 * Refusals are 401 with WWW-Authenticate (RFC 6750 3.1), also for a well signed token whose
 * mapped claim cannot be sent exactly as a header value (CR, LF, controls, blanks at either
 * end: copy_claims). The claim headers are removed
 * from every request first, whatever happens next, so a client can never send them itself,
 * not even as trailers (the trailers hook, and the loader refusing them in
 * forward_trailers). The token logic (LAB 04: jwt validation) is jwt.c. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "04-http/chain.h"
#include "04-http/mw.h"
#include "04-http/mw_cfg.h"
#include "error.h"
#include "hash.h"

/* ---- config ------------------------------------------------------------------------------- */

/* keys (a file) or secret: exactly one, loaded now so a bad key fails the load. */
static void decode_keys(gw_cdoc_t *doc, const gw_cnode_t *opts, gw_mw_jwt_cfg_t *m)
{
    char err[256];
    const gw_cnode_t *keys = gw_cmap_get(doc, opts, "keys");
    const gw_cnode_t *secret = gw_cmap_get(doc, opts, "secret");
    const gw_cnode_t *kid = gw_cmap_get(doc, opts, "kid");
    char *s = NULL;
    if (gw_cget_string(doc, kid, "kid", &m->kid) == 0 && m->kid &&
        (!m->kid[0] || strlen(m->kid) > GW_JWT_MAX_KID))
        gw_cdoc_error(doc, kid, "kid: use 1..%d bytes", GW_JWT_MAX_KID);
    if (!(m->keys = gw_jwt_keyset_new())) {
        gw_cdoc_oom(doc, opts);
        return;
    }
    if (keys && secret) {
        gw_cdoc_error(doc, gw_mw_cfg_key_node(opts, "secret"),
                      "jwt: `keys` and `secret` are exclusive");
    } else if (keys) {
        if (gw_cget_string(doc, keys, "keys", &m->keys_file) != 0)
            return;
        int n = gw_jwt_keyset_add_file(m->keys, m->keys_file, m->kid, err, sizeof(err));
        if (n < 0)
            gw_cdoc_error(doc, keys, "keys: %s", err);
        else if (n == 0)
            gw_cdoc_error(doc, keys, "keys: %s holds no signing key we can use", m->keys_file);
    } else if (secret) {
        if (gw_cget_string(doc, secret, "secret", &s) != 0)
            return;
        size_t len = strlen(s);
        if (len < GW_JWT_MIN_SECRET || len > GW_JWT_MAX_SECRET)
            gw_cdoc_error(doc, secret, "secret: use %d..%d bytes (it has %zu)", GW_JWT_MIN_SECRET,
                          GW_JWT_MAX_SECRET, len);
        else if (gw_jwt_keyset_add_secret(m->keys, m->kid, (const uint8_t *)s, len, err,
                                          sizeof(err)) != 0)
            gw_cdoc_error(doc, secret, "secret: %s", err);
        memset(s, 0, len);
        free(s);
    } else {
        gw_cdoc_error(doc, opts, "jwt needs `keys` (a JWKS or PEM certificate file) or `secret`");
    }
}

/* claims: {claim: Header-Name} */
static void decode_claims(gw_cdoc_t *doc, const gw_cnode_t *map, gw_mw_jwt_cfg_t *m)
{
    if (!map || !gw_cnode_expect_map(doc, map, "claims") || map->n == 0)
        return;
    m->claim_names = calloc(map->n, sizeof(char *));
    m->claim_headers = calloc(map->n, sizeof(char *));
    if (!m->claim_names || !m->claim_headers) {
        gw_cdoc_oom(doc, map);
        return;
    }
    for (size_t i = 0; i < map->n; i++) {
        gw_cpair_t *p = &map->pairs[i];
        char *header = NULL, *claim = NULL;
        p->used = true;
        if (gw_mw_cfg_token(doc, p->value, p->key->str, &header) == 0 && header &&
            (claim = strdup(p->key->str))) {
            m->claim_names[m->nclaims] = claim;
            m->claim_headers[m->nclaims++] = header;
            continue;
        }
        if (header)
            gw_cdoc_oom(doc, p->key);
        free(header);
    }
}

static void *decode(gw_cdoc_t *doc, const gw_cnode_t *opts)
{
    gw_mw_jwt_cfg_t *m = calloc(1, sizeof *m);
    if (m == NULL) {
        gw_cdoc_oom(doc, opts);
        return NULL;
    }
    gw_jwt_policy_t *pol = &m->policy;
    *pol = gw_jwt_policy_default();
    if (!gw_cnode_expect_map(doc, opts, "jwt"))
        return m;
    decode_keys(doc, opts, m);
    pol->issuers = (const char *const *)gw_mw_cfg_strv(doc, gw_cmap_get(doc, opts, "issuers"),
                                                       "issuers", false, &pol->n_issuers);
    pol->audiences = (const char *const *)gw_mw_cfg_strv(doc, gw_cmap_get(doc, opts, "audiences"),
                                                         "audiences", false, &pol->n_audiences);
    uint64_t skew = pol->skew;
    if (gw_mw_cfg_seconds(doc, gw_cmap_get(doc, opts, "skew"), "skew", GW_MW_HOUR, &skew) == 0)
        pol->skew = (uint32_t)skew;
    gw_cget_bool(doc, gw_cmap_get(doc, opts, "require_exp"), "require_exp", &pol->require_exp);
    const gw_cnode_t *realm = gw_cmap_get(doc, opts, "realm");
    if (gw_cget_string(doc, realm, "realm", &m->realm) == 0 && m->realm) {
        /* It is sent inside a quoted-string of WWW-Authenticate. */
        for (const char *c = m->realm; *c; c++)
            if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20 || *c == 0x7F) {
                gw_cdoc_error(doc, realm, "realm: no quotes, backslashes or control characters");
                break;
            }
    }
    if (!m->realm && !(m->realm = strdup("gw")))
        gw_cdoc_oom(doc, opts);
    decode_claims(doc, gw_cmap_get(doc, opts, "claims"), m);
    return m;
}

/* A secret is never shown; the placeholder (32 bytes or more) still loads, so -T's output
 * stays a valid configuration, like 03's admin token. */
static void print(FILE *out, const void *cfg, int in)
{
    (void)in;
    const gw_mw_jwt_cfg_t *m = cfg;
    char a[32];
    if (m == NULL) {
        fputs(" {}\n", out);
        return;
    }
    const gw_jwt_policy_t *p = &m->policy;
    fputs(" {", out);
    if (m->keys_file) {
        fputs("keys: ", out);
        gw_config_print_str(out, m->keys_file);
    } else {
        fputs("secret: \"<set, not shown: the configured secret>\"", out);
    }
    if (m->kid) {
        fputs(", kid: ", out);
        gw_config_print_str(out, m->kid);
    }
    fputs(", issuers: ", out);
    gw_mw_print_strv(out, p->issuers, p->n_issuers);
    fputs(", audiences: ", out);
    gw_mw_print_strv(out, p->audiences, p->n_audiences);
    fprintf(out, ", skew: %s, require_exp: %s, realm: ",
            gw_cfmt_duration((uint64_t)p->skew * GW_MW_SEC, a, sizeof(a)),
            p->require_exp ? "true" : "false");
    gw_config_print_str(out, m->realm ? m->realm : "gw");
    fputs(", claims: {", out);
    for (size_t i = 0; i < m->nclaims; i++) {
        fputs(i ? ", " : "", out);
        gw_config_print_str(out, m->claim_names[i]);
        fputs(": ", out);
        gw_config_print_str(out, m->claim_headers[i]);
    }
    fputs("}}\n", out);
}

static void free_cfg(void *cfg)
{
    gw_mw_jwt_cfg_t *m = cfg;
    if (m == NULL)
        return;
    gw_jwt_keyset_free(m->keys);
    free(m->keys_file);
    free(m->kid);
    free(m->realm);
    gw_mw_free_strv((char **)m->policy.issuers, m->policy.n_issuers);
    gw_mw_free_strv((char **)m->policy.audiences, m->policy.n_audiences);
    gw_mw_free_strv(m->claim_names, m->nclaims);
    gw_mw_free_strv(m->claim_headers, m->nclaims);
    free(m);
}

/* The claim headers: a trailer must never bring back what this middleware removed. */
static const char *guards_field(const void *cfg, const char *name)
{
    const gw_mw_jwt_cfg_t *m = cfg;
    for (size_t k = 0; m != NULL && k < m->nclaims; k++)
        if (!strcasecmp(m->claim_headers[k], name))
            return "jwt claim header";
    return NULL;
}

/* ---- run time ----------------------------------------------------------------------------- */

/* The token of an `Authorization: Bearer <token>` value (scheme in any case, RFC 9110
 * 11.1), or false for another scheme or none. */
static bool bearer_token(gw_h1_span_t v, gw_h1_span_t *tok)
{
    if (v.len < 7 || strncasecmp(v.ptr, "Bearer", 6) != 0 || (v.ptr[6] != ' ' && v.ptr[6] != '\t'))
        return false;
    size_t i = 7;
    while (i < v.len && (v.ptr[i] == ' ' || v.ptr[i] == '\t'))
        i++;
    *tok = (gw_h1_span_t){v.ptr + i, v.len - i};
    return tok->len > 0;
}

/* Appends S to B (capacity CAP, *N used) as a quoted-string's content (RFC 9110 5.6.4: '"'
 * and '\\' escaped); stops short rather than overflow. */
static void put_quoted(char *b, size_t cap, size_t *n, const char *s)
{
    for (; *s != '\0' && *n + 2 < cap; s++) {
        if (*s == '"' || *s == '\\')
            b[(*n)++] = '\\';
        b[(*n)++] = *s;
    }
}

static void put_str(char *b, size_t cap, size_t *n, const char *s)
{
    size_t k = strlen(s);
    if (k > cap - 1 - *n)
        k = cap - 1 - *n;
    memcpy(b + *n, s, k);
    *n += k;
}

/* 401 with `WWW-Authenticate: Bearer realm="..."`, plus RFC 6750 3.1's error fields when a
 * token was given but refused (CODE, and DESC: gw_jwt_strerror's fixed text). */
static int unauthorized(const gw_mw_jwt_cfg_t *m, gw_h1_head_t *resp, const char *code,
                        const char *desc)
{
    char v[512];
    size_t n = 0;
    put_str(v, sizeof v, &n, "Bearer realm=\"");
    put_quoted(v, sizeof v - 1, &n, m->realm != NULL ? m->realm : "gw");
    put_str(v, sizeof v, &n, "\"");
    if (code != NULL) {
        put_str(v, sizeof v, &n, ", error=\"");
        put_str(v, sizeof v, &n, code);
        put_str(v, sizeof v, &n, "\", error_description=\"");
        put_quoted(v, sizeof v - 1, &n, desc);
        put_str(v, sizeof v, &n, "\"");
    }
    int rc = gw_mw_add_field(resp, "WWW-Authenticate", v, n);
    return rc == 0 ? 401 : 500;
}

/* Keeps the subject for rate_limit's jwt_sub key: as is when it fits, else as a 128-bit
 * hash in hex (a truncation could merge two subjects). */
static void keep_sub(gw_hx_t *x, const json_t *claims)
{
    const json_t *s = json_object_get(claims, "sub");
    if (!json_is_string(s))
        return;
    const char *v = json_string_value(s);
    size_t len = json_string_length(s);
    if (len < sizeof x->sub && memchr(v, '\0', len) == NULL) {
        memcpy(x->sub, v, len + 1);
        return;
    }
    snprintf(x->sub, sizeof x->sub, "#%016" PRIx64 "%016" PRIx64, gw_hash_bytes(v, len, 1),
             gw_hash_bytes(v, len, 2));
}

/* True if the string claim V[0..LEN) reaches the upstream exactly as the token says: no
 * control byte but HT (a field value cannot carry CR, LF, NUL or DEL: RFC 9110 5.5) and no
 * blank at either end (a header loses those, so " admin" would arrive as "admin"). */
static bool header_exact(const char *v, size_t len)
{
    if (len > 0 && (v[0] == ' ' || v[0] == '\t' || v[len - 1] == ' ' || v[len - 1] == '\t'))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

/* Copies the configured claims to request headers: strings as they are, numbers and
 * booleans as JSON text; objects, arrays and null are skipped (no header), as is a claim the
 * token does not have. A string that cannot be sent exactly (header_exact) refuses the
 * token: a backend would get the request without that identity field, or with another one,
 * and may read a missing X-User-Id as anonymous or a default (issue 14). Returns 0, 401
 * (with RESP filled) or the status of a head error. */
static int copy_claims(const gw_mw_jwt_cfg_t *m, const json_t *claims, gw_h1_head_t *req,
                       gw_h1_head_t *resp)
{
    for (size_t i = 0; i < m->nclaims; i++) {
        const json_t *v = json_object_get(claims, m->claim_names[i]);
        char *text = NULL;
        int rc = 0;
        if (json_is_string(v)) {
            if (!header_exact(json_string_value(v), json_string_length(v)))
                return unauthorized(m, resp, "invalid_token",
                                    "a claim cannot be sent as a header field");
            rc = gw_mw_add_field(req, m->claim_headers[i], json_string_value(v),
                                 json_string_length(v));
        } else if (json_is_number(v) || json_is_boolean(v)) {
            if ((text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT)) == NULL)
                return 500;
            rc = gw_mw_add_field(req, m->claim_headers[i], text, strlen(text));
            free(text);
        }
        if (rc != 0)
            return gw_mw_head_status(rc);
    }
    return 0;
}

static int request(const void *cfg, void *state, gw_hx_t *x, gw_h1_head_t *req, gw_h1_head_t *resp)
{
    (void)state;
    const gw_mw_jwt_cfg_t *m = cfg;
    /* First, whatever happens next: a client must never be able to send these itself. */
    for (size_t i = 0; i < m->nclaims; i++)
        gw_h1_head_remove(req, m->claim_headers[i]);
    long at = gw_h1_head_find(req, "Authorization", 0);
    gw_h1_span_t tok;
    if (at < 0 || !bearer_token(gw_h1_head_value_at(req, (size_t)at), &tok))
        return unauthorized(m, resp, NULL, NULL);
    /* Two Authorization fields: we would check one and the upstream might read the other. */
    if (gw_h1_head_find(req, "Authorization", (size_t)at + 1) >= 0)
        return unauthorized(m, resp, "invalid_request", "more than one Authorization field");
    int64_t now = x->wall_ms >= 0 ? x->wall_ms / 1000 : -((999 - x->wall_ms) / 1000);
    json_t *claims = NULL;
    gw_jwt_err_t e = gw_jwt_verify(m->keys, &m->policy, now, tok.ptr, tok.len, &claims);
    if (e != GW_JWT_OK)
        return unauthorized(m, resp, "invalid_token", gw_jwt_strerror(e));
    int st = copy_claims(m, claims, req, resp); /* after verify: TOK points into REQ's arena */
    if (st == 0)
        keep_sub(x, claims);
    json_decref(claims);
    return st;
}

/* The loader refuses a claim header in forward_trailers; this covers configs it never saw,
 * since a forged claim is exactly what a request trailer would smuggle in. */
static size_t trailers(const void *cfg, gw_h1_head_t *t, bool response,
                       const gw_mw_header_rules_t **rules)
{
    (void)rules;
    const gw_mw_jwt_cfg_t *m = cfg;
    size_t dropped = 0;
    for (size_t k = 0; !response && k < m->nclaims; k++)
        dropped += gw_h1_head_remove(t, m->claim_headers[k]);
    return dropped;
}

const gw_mw_ops_t gw_mw_jwt_ops = {
    .name = "jwt",
    .decode = decode,
    .print = print,
    .free = free_cfg,
    .guards_field = guards_field,
    .request = request,
    .trailers = trailers,
};
