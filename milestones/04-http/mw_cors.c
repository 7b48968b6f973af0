/* mw_cors.c - the cors middleware, all of it: the pure preflight and decoration functions
 * (see mw_cors.h; LAB 04: cors), then the middleware around them (its config, -T text and
 * hooks: the ops table gw_mw_cors_ops, mw.h).
 *
 *   middleware:
 *     - cors: {origins: ["https://a.example"] or ["*"], methods: [GET, POST],
 *              headers: [Content-Type], expose: [X-Total], credentials: false, max_age: 10m}
 *
 * A preflight is answered by the gateway (204, or 403 when the policy refuses it) and never
 * reaches the upstream; every other response is decorated on its way to the client. */
#include "04-http/mw_cors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "04-http/chain.h"
#include "04-http/mw.h"
#include "error.h"

/* True if the comma-separated LIST holds ITEM (trimmed elements; case-insensitive when
 * NOCASE). A NULL list holds nothing. */
static bool list_has(const char *list, const char *item, size_t n, bool nocase)
{
    const char *s = list;
    while (s && *s) {
        const char *end = strchr(s, ',');
        const char *e = end ? end : s + strlen(s);
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        const char *t = e;
        while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - s) == n && n > 0 &&
            (nocase ? strncasecmp(s, item, n) == 0 : memcmp(s, item, n) == 0))
            return true;
        s = end ? end + 1 : NULL;
    }
    return false;
}

/* True if every element of the request's list V (Access-Control-Request-Headers) is in
 * ALLOWED. The list comes from the network, so it is walked by length, never as a C
 * string. */
static bool all_listed(gw_h1_span_t v, const char *allowed)
{
    size_t i = 0;
    while (i < v.len) {
        size_t j = i;
        while (j < v.len && v.ptr[j] != ',')
            j++;
        size_t a = i, b = j;
        while (a < b && (v.ptr[a] == ' ' || v.ptr[a] == '\t'))
            a++;
        while (b > a && (v.ptr[b - 1] == ' ' || v.ptr[b - 1] == '\t'))
            b--;
        if (b > a && !list_has(allowed, v.ptr + a, b - a, true))
            return false;
        i = j + 1;
    }
    return true;
}

/* LAB 04: cors */
/* The origin decision. A browser sends Origin; we answer with the exact value the browser
 * must see in Access-Control-Allow-Origin, or refuse. "*" is only ever answered when the
 * policy allows any origin AND does not allow credentials: the Fetch standard forbids "*"
 * with credentials, and echoing an arbitrary origin with credentials would hand every
 * site on the web the user's cookies. With credentials we echo the origin, and only one
 * that is listed (any_origin does not widen a credentialed policy: that is the usual
 * misconfiguration, "reflect whatever Origin says"). The literal origin "null" (sandboxed
 * frames, file: pages) is allowed only if listed. Returns true and sets *VALUE and *VLEN. */
static bool cors_allow_origin(const gw_cors_policy_t *p, gw_h1_span_t origin, const char **value,
                              size_t *vlen)
{
    if (p->any_origin && !p->credentials) {
        *value = "*";
        *vlen = 1;
        return true;
    }
    for (size_t i = 0; i < p->norigins; i++)
        if (strlen(p->origins[i]) == origin.len &&
            memcmp(p->origins[i], origin.ptr, origin.len) == 0) {
            *value = origin.ptr;
            *vlen = origin.len;
            return true;
        }
    return false;
}

/* The answer depends on the request's Origin unless it is the constant "*". */
static bool cors_varies(const gw_cors_policy_t *p)
{
    return !(p->any_origin && !p->credentials);
}
/* END LAB */

/* Adds Vary: Origin unless a Vary line already names Origin or is "*". Another line is
 * added rather than the old one rewritten: several Vary lines form one list (RFC 9110
 * 5.3), and rewriting would copy a span that the write itself may move. */
static int add_vary_origin(gw_h1_head_t *resp)
{
    for (long i = gw_h1_head_find(resp, "Vary", 0); i >= 0;
         i = gw_h1_head_find(resp, "Vary", (size_t)i + 1)) {
        gw_h1_span_t v = gw_h1_head_value_at(resp, (size_t)i);
        size_t k = 0;
        while (k < v.len) {
            size_t j = k;
            while (j < v.len && v.ptr[j] != ',')
                j++;
            size_t a = k, b = j;
            while (a < b && (v.ptr[a] == ' ' || v.ptr[a] == '\t'))
                a++;
            while (b > a && (v.ptr[b - 1] == ' ' || v.ptr[b - 1] == '\t'))
                b--;
            if ((b - a == 1 && v.ptr[a] == '*') ||
                (b - a == 6 && strncasecmp(v.ptr + a, "Origin", 6) == 0))
                return 0;
            k = j + 1;
        }
    }
    return gw_h1_head_add(resp, "Vary", 4, "Origin", 6);
}

static int add_str(gw_h1_head_t *h, const char *name, const char *value)
{
    return gw_h1_head_add(h, name, strlen(name), value, strlen(value));
}

/* Writes the 204 of an allowed preflight. */
static int preflight_allow(const gw_cors_policy_t *p, gw_h1_head_t *resp, const char *ao,
                           size_t aolen, gw_h1_span_t req_headers)
{
    int rc = gw_h1_head_set_status(resp, 204, "No Content", 10);
    if (!rc)
        rc = gw_h1_head_add(resp, "Access-Control-Allow-Origin", 27, ao, aolen);
    if (!rc && p->methods && *p->methods)
        rc = add_str(resp, "Access-Control-Allow-Methods", p->methods);
    /* Echo the requested names (all of them are allowed, checked above) rather than the
     * whole policy list: it says no more than was asked. */
    if (!rc && req_headers.len)
        rc = gw_h1_head_add(resp, "Access-Control-Allow-Headers", 28, req_headers.ptr,
                            req_headers.len);
    if (!rc && p->credentials)
        rc = add_str(resp, "Access-Control-Allow-Credentials", "true");
    if (!rc && p->max_age >= 0) {
        char num[24];
        int n = snprintf(num, sizeof num, "%ld", p->max_age);
        rc = gw_h1_head_add(resp, "Access-Control-Max-Age", 22, num, (size_t)n);
    }
    if (!rc && cors_varies(p))
        rc = add_vary_origin(resp);
    return rc;
}

/* see mw_cors.h */
int gw_cors_preflight(const gw_cors_policy_t *p, const gw_h1_head_t *req, gw_h1_head_t *resp,
                      gw_cors_verdict_t *verdict, const char **why)
{
    gw_h1_span_t origin, method, hdrs = {"", 0};
    const char *reason = NULL, *ao = NULL;
    size_t aolen = 0;
    *verdict = GW_CORS_NOT_PREFLIGHT;
    if (!gw_h1_head_method_is(req, "OPTIONS") || !gw_h1_head_get(req, "Origin", &origin) ||
        !gw_h1_head_get(req, "Access-Control-Request-Method", &method))
        return 0; /* a plain OPTIONS is an ordinary request for the upstream */
    gw_h1_head_get(req, "Access-Control-Request-Headers", &hdrs);
    if (!cors_allow_origin(p, origin, &ao, &aolen))
        reason = "origin not allowed";
    else if (!list_has(p->methods, method.ptr, method.len, false))
        reason = "method not allowed";
    else if (!all_listed(hdrs, p->headers))
        reason = "request header not allowed";
    if (why)
        *why = reason;
    if (!reason) {
        *verdict = GW_CORS_ALLOWED;
        return preflight_allow(p, resp, ao, aolen, hdrs);
    }
    *verdict = GW_CORS_REFUSED;
    int rc = gw_h1_head_set_status(resp, 403, "Forbidden", 9);
    if (!rc && cors_varies(p))
        rc = add_vary_origin(resp);
    return rc;
}

/* see mw_cors.h */
int gw_cors_decorate(const gw_cors_policy_t *p, const gw_h1_head_t *req, gw_h1_head_t *resp)
{
    gw_h1_span_t origin;
    const char *ao;
    size_t aolen;
    int rc = 0;
    gw_h1_head_remove(resp, "Access-Control-Allow-Origin");
    gw_h1_head_remove(resp, "Access-Control-Allow-Credentials");
    gw_h1_head_remove(resp, "Access-Control-Expose-Headers");
    if (gw_h1_head_get(req, "Origin", &origin) && cors_allow_origin(p, origin, &ao, &aolen)) {
        rc = gw_h1_head_add(resp, "Access-Control-Allow-Origin", 27, ao, aolen);
        if (!rc && p->credentials)
            rc = add_str(resp, "Access-Control-Allow-Credentials", "true");
        if (!rc && p->expose && *p->expose)
            rc = add_str(resp, "Access-Control-Expose-Headers", p->expose);
    }
    if (!rc && cors_varies(p))
        rc = add_vary_origin(resp);
    return rc;
}

/* ---- the middleware: config ---------------------------------------------------------------- */

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
        gw_cdoc_oom(doc, at);
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

/* origins: a list of exact origins, or ["*"] alone. */
static void decode_origins(gw_cdoc_t *doc, const gw_cnode_t *node, gw_cors_policy_t *p)
{
    size_t n = 0;
    char **v = gw_mw_cfg_strv(doc, node, "origins", false, &n);
    bool star = false;
    for (size_t i = 0; i < n; i++)
        star |= !strcmp(v[i], "*");
    if (node && node->type == GW_CNODE_SEQ && node->n == 0)
        gw_cdoc_error(doc, node, "origins must not be empty (use [\"*\"] for any origin)");
    if (star && n > 1)
        gw_cdoc_error(doc, node, "origins: \"*\" must be the only origin when it is used");
    if (star) {
        p->any_origin = true;
        gw_mw_free_strv(v, n);
        return;
    }
    p->origins = (const char *const *)v;
    p->norigins = n;
}

static void *decode(gw_cdoc_t *doc, const gw_cnode_t *opts)
{
    gw_cors_policy_t *p = calloc(1, sizeof *p);
    if (p == NULL) {
        gw_cdoc_oom(doc, opts);
        return NULL;
    }
    p->max_age = -1;
    if (!gw_cnode_expect_map(doc, opts, "cors"))
        return p;
    decode_origins(doc, gw_cmap_require(doc, opts, "origins"), p);
    const char *const lists[] = {"methods", "headers", "expose"};
    const char **dst[] = {&p->methods, &p->headers, &p->expose};
    for (size_t i = 0; i < 3; i++) {
        const gw_cnode_t *node = gw_cmap_get(doc, opts, lists[i]);
        size_t n = 0;
        char **v = gw_mw_cfg_strv(doc, node, lists[i], true, &n);
        *dst[i] = join(v, n, doc, node);
        gw_mw_free_strv(v, n);
    }
    /* The CORS-safelisted methods, which a policy must name (mw_cors.h). */
    if (!gw_cmap_get(doc, opts, "methods") && !(p->methods = strdup("GET, HEAD, POST")))
        gw_cdoc_oom(doc, opts);
    const gw_cnode_t *cred = gw_cmap_get(doc, opts, "credentials");
    gw_cget_bool(doc, cred, "credentials", &p->credentials);
    if (p->any_origin && p->credentials)
        gw_cdoc_error(doc, cred,
                      "credentials: true cannot go with origins [\"*\"] (a browser refuses "
                      "it): list the origins");
    uint64_t age = 0;
    if (gw_mw_cfg_seconds(doc, gw_cmap_get(doc, opts, "max_age"), "max_age", 24 * GW_MW_HOUR,
                          &age) == 0 &&
        gw_cmap_get(doc, opts, "max_age"))
        p->max_age = (long)age;
    return p;
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

static void print(FILE *out, const void *cfg, int in)
{
    (void)in;
    static const gw_cors_policy_t none = {.max_age = -1};
    const gw_cors_policy_t *p = cfg != NULL ? cfg : &none;
    char a[32];
    static const char *const star[] = {"*"};
    fputs(" {origins: ", out);
    if (p->any_origin)
        gw_mw_print_strv(out, star, 1);
    else
        gw_mw_print_strv(out, p->origins, p->norigins);
    print_joined(out, "methods", p->methods);
    print_joined(out, "headers", p->headers);
    print_joined(out, "expose", p->expose);
    fprintf(out, ", credentials: %s", p->credentials ? "true" : "false");
    if (p->max_age >= 0)
        fprintf(out, ", max_age: %s",
                gw_cfmt_duration((uint64_t)p->max_age * GW_MW_SEC, a, sizeof(a)));
    fputs("}\n", out);
}

static void free_cfg(void *cfg)
{
    gw_cors_policy_t *p = cfg;
    if (p == NULL)
        return;
    gw_mw_free_strv((char **)p->origins, p->norigins);
    free((char *)p->methods);
    free((char *)p->headers);
    free((char *)p->expose);
    free(p);
}

/* ---- the middleware: run time -------------------------------------------------------------- */

/* A preflight is answered here (RESP filled by gw_cors_preflight); anything else goes on. */
static int request(const void *cfg, void *state, gw_hx_t *x, gw_h1_head_t *req, gw_h1_head_t *resp)
{
    (void)state;
    gw_cors_verdict_t verdict = GW_CORS_NOT_PREFLIGHT;
    if (gw_cors_preflight(cfg, req, resp, &verdict, NULL) != 0) {
        gw_h1_head_clear(resp); /* a partial answer: the doc says 500 instead */
        return 500;
    }
    if (verdict == GW_CORS_NOT_PREFLIGHT)
        return 0;
    x->preflight = true;
    return resp->status;
}

/* A preflight answer already holds the policy's fields: nothing on top. */
static void response(const void *cfg, void *state, const gw_hx_t *x, const gw_h1_head_t *req,
                     gw_h1_head_t *resp)
{
    (void)state;
    if (!x->preflight)
        (void)gw_cors_decorate(cfg, req, resp);
}

const gw_mw_ops_t gw_mw_cors_ops = {
    .name = "cors",
    .decode = decode,
    .print = print,
    .free = free_cfg,
    .request = request,
    .response = response,
};
