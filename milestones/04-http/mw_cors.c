/* mw_cors.c - CORS preflight and response decoration (see mw_cors.h). */
#include "04-http/mw_cors.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

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
