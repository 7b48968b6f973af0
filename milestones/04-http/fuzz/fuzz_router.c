/* fuzz_router.c - the router: compile any route list, match any request, and compare the
 * winner with a slow reference that applies router.h's rules to every route in turn.
 *
 * Input: text lines (split on '\n'; fields on ' '):
 *   R HOST KIND METHODS PATH [NAME=VALUE ...]   a route; HOST "-" for any, KIND e (exact) or
 *                                               p (prefix), METHODS GW_METHOD_* bits in hex
 *   Q HOST METHOD PATH [NAME=VALUE ...]         a request (HOST "-": none), after the routes
 * At most 64 routes and 32 requests; anything else on a line is ignored.
 *
 * Invariants: a build either fails with a message naming a route, or every request gets the
 * route that the reference picks (host group, then path specificity segment by segment,
 * then methods, header count and list order), with the captures of its parameters; no
 * match when the reference finds none. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "04-http/router.h"
#include "fuzz/gwfuzz.h"

#define MAX_ROUTES 64
#define MAX_QUERIES 32
#define MAX_FIELDS 16

typedef struct line_s {
    char *f[MAX_FIELDS];
    size_t n;
} line_t;

typedef struct query_s {
    const char *host, *method, *path;
    gw_route_header_t hdr[MAX_FIELDS];
    size_t nhdr;
} query_t;

/* Splits TEXT (modified) into lines of fields. */
static size_t split_lines(char *text, size_t len, line_t *lines, size_t max)
{
    size_t n = 0;
    char *p = text, *end = text + len;
    while (p < end && n < max) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        *le = '\0';
        line_t *l = &lines[n];
        l->n = 0;
        for (char *s = p; s < le && l->n < MAX_FIELDS;) {
            char *sp = memchr(s, ' ', (size_t)(le - s));
            char *fe = sp ? sp : le;
            *fe = '\0';
            l->f[l->n++] = s;
            s = fe + 1;
        }
        if (l->n > 0)
            n++;
        p = le + 1;
    }
    return n;
}

/* NAME=VALUE fields into header conditions (the '=' becomes a NUL). */
static size_t parse_headers(line_t *l, size_t from, gw_route_header_t *h)
{
    size_t n = 0;
    for (size_t i = from; i < l->n; i++) {
        char *eq = strchr(l->f[i], '=');
        if (!eq)
            continue;
        *eq = '\0';
        h[n].name = l->f[i];
        h[n++].value = eq + 1;
    }
    return n;
}

/* ---- the reference -------------------------------------------------------------------- */

/* Splits PATH (after its '/') into segments as the router documents: a prefix route drops a
 * final empty segment. Returns the count, or -1 when the path is not a valid route path
 * (then the build must have failed). */
typedef struct segs_s {
    const char *s[64];
    size_t len[64];
    size_t n;
} segs_t;

static void split_req(const char *path, size_t plen, segs_t *sg)
{
    sg->n = 0;
    const char *p = path + 1, *end = path + plen;
    for (;;) {
        const char *e = memchr(p, '/', (size_t)(end - p));
        if (sg->n == 64)
            return;
        sg->s[sg->n] = p;
        sg->len[sg->n++] = (size_t)((e ? e : end) - p);
        if (!e)
            return;
        p = e + 1;
    }
}

static void split_route(const char *path, bool prefix, segs_t *sg)
{
    split_req(path, strlen(path), sg);
    if (prefix && sg->n > 0 && sg->len[sg->n - 1] == 0)
        sg->n--;
}

static bool is_param(const char *s, size_t len)
{
    return len > 0 && s[0] == ':';
}

/* Host of a request reduced as router.h says: port and one final dot removed, lower case. */
static size_t req_host(const char *h, char *out)
{
    if (!h)
        return 0;
    size_t n = strlen(h);
    const char *cut = h[0] == '[' ? strchr(h, ']') : strchr(h, ':');
    if (cut)
        n = (size_t)(cut - h) + (h[0] == '[' ? 1 : 0);
    if (n > 0 && h[n - 1] == '.')
        n--;
    if (n == 0 || n > GW_ROUTE_MAX_HOST)
        return 0;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)(h[i] >= 'A' && h[i] <= 'Z' ? h[i] + 32 : h[i]);
    out[n] = '\0';
    return n;
}

/* The host group rank of a route for host KEY: 0 = exact, 1 + (253 - suffix length) for a
 * wildcard, 1000 for any host; -1 when the route's host does not match. */
static int host_rank(const char *rh, const char *key, size_t klen)
{
    if (!rh || !rh[0] || strcmp(rh, "*") == 0)
        return 1000;
    bool wild = rh[0] == '*' && rh[1] == '.';
    const char *h = wild ? rh + 2 : rh;
    size_t hn = strlen(h);
    if (hn > 0 && h[hn - 1] == '.')
        hn--;
    if (klen == 0)
        return -1;
    if (!wild)
        return hn == klen && strncasecmp(h, key, hn) == 0 ? 0 : -1;
    if (klen < hn + 2 || key[klen - hn - 1] != '.' || strncasecmp(h, key + klen - hn, hn) != 0)
        return -1;
    return 1 + (int)(GW_ROUTE_MAX_HOST - hn);
}

static const char *lookup(void *ctx, const char *name, size_t *len)
{
    const query_t *q = ctx;
    for (size_t i = 0; i < q->nhdr; i++)
        if (strcasecmp(q->hdr[i].name, name) == 0) {
            *len = strlen(q->hdr[i].value);
            return q->hdr[i].value;
        }
    return NULL;
}

typedef struct cand_s {
    int host;
    char path[72]; /* per position: 'a' literal, 'b' parameter, 'c' exact end, 'd' prefix end */
    bool methods;
    size_t nheaders;
    size_t index;
} cand_t;

/* Whether route SP matches request Q (conditions only), and its rank in *C. */
static bool ref_matches(const gw_route_spec_t *sp, size_t index, const query_t *q, const segs_t *rq,
                        const char *key, size_t klen, cand_t *c)
{
    c->host = host_rank(sp->host, key, klen);
    if (c->host < 0)
        return false;
    segs_t rs;
    split_route(sp->path, sp->path_match == GW_PATH_PREFIX, &rs);
    if (rs.n > rq->n || (sp->path_match == GW_PATH_EXACT && rs.n != rq->n))
        return false;
    size_t k = 0;
    for (size_t i = 0; i < rs.n; i++) {
        if (is_param(rs.s[i], rs.len[i])) {
            if (rq->len[i] == 0)
                return false;
            c->path[k++] = 'b';
        } else if (rs.len[i] == rq->len[i] && memcmp(rs.s[i], rq->s[i], rs.len[i]) == 0) {
            c->path[k++] = 'a';
        } else {
            return false;
        }
    }
    c->path[k++] = sp->path_match == GW_PATH_EXACT ? 'c' : 'd';
    c->path[k] = '\0';
    unsigned bit = gw_router_method_bit(q->method, strlen(q->method));
    if (sp->methods && !(sp->methods & bit))
        return false;
    for (size_t i = 0; i < sp->nheaders; i++) {
        size_t vlen = 0;
        const char *v = lookup((void *)q, sp->headers[i].name, &vlen);
        if (!v || strcmp(v, sp->headers[i].value) != 0)
            return false;
    }
    c->methods = sp->methods != 0;
    c->nheaders = sp->nheaders;
    c->index = index;
    return true;
}

/* True when A is more specific than B (router.h's order). */
static bool better(const cand_t *a, const cand_t *b)
{
    if (a->host != b->host)
        return a->host < b->host;
    int c = strcmp(a->path, b->path);
    if (c != 0)
        return c < 0;
    if (a->methods != b->methods)
        return a->methods;
    if (a->nheaders != b->nheaders)
        return a->nheaders > b->nheaders;
    return a->index < b->index;
}

static void check_query(const gw_router_t *r, const gw_route_spec_t *specs, size_t n, query_t *q)
{
    size_t plen = strlen(q->path);
    gw_route_params_t params;
    const gw_route_match_t *m = gw_router_match(r, q->host, q->host ? strlen(q->host) : 0,
                                                q->method, q->path, plen, lookup, q, &params);
    if (plen == 0 || q->path[0] != '/') {
        GW_FZ_CHECK(m == NULL, "path [%s] matched route %zu", q->path, m->index);
        return;
    }
    size_t depth = 0;
    for (size_t i = 0; i < plen; i++)
        depth += q->path[i] == '/';
    if (depth > 60) /* deeper than the reference's segment list: only the call above counts */
        return;
    char key[GW_ROUTE_MAX_HOST + 2];
    size_t klen = req_host(q->host, key);
    segs_t rq;
    split_req(q->path, plen, &rq);
    cand_t best, c;
    bool found = false;
    for (size_t i = 0; i < n; i++)
        if (ref_matches(&specs[i], i, q, &rq, key, klen, &c) && (!found || better(&c, &best))) {
            best = c;
            found = true;
        }
    if (!found) {
        GW_FZ_CHECK(m == NULL, "%s %s%s: route %zu, the reference finds none", q->method,
                    q->host ? q->host : "", q->path, m->index);
        GW_FZ_CHECK(params.n == 0, "no match but %zu params", params.n);
        return;
    }
    GW_FZ_CHECK(m != NULL, "%s %s%s: no route, the reference picks %zu", q->method,
                q->host ? q->host : "", q->path, best.index);
    GW_FZ_CHECK(m->index == best.index && m->user == specs[best.index].user,
                "%s %s%s: route %zu, the reference picks %zu", q->method, q->host ? q->host : "",
                q->path, m->index, best.index);
    segs_t rs;
    split_route(specs[m->index].path, specs[m->index].path_match == GW_PATH_PREFIX, &rs);
    size_t np = 0;
    for (size_t i = 0; i < rs.n; i++) {
        if (!is_param(rs.s[i], rs.len[i]))
            continue;
        GW_FZ_CHECK(np < params.n, "parameter %zu missing", np);
        const gw_route_param_t *p = &params.p[np++];
        GW_FZ_CHECK(strlen(p->name) == rs.len[i] - 1 &&
                        memcmp(p->name, rs.s[i] + 1, rs.len[i] - 1) == 0,
                    "parameter %zu named %s", np - 1, p->name);
        GW_FZ_CHECK(p->value == rq.s[i] && p->len == rq.len[i], "parameter %s captured [%.*s]",
                    p->name, (int)p->len, p->value);
    }
    GW_FZ_CHECK(np == params.n, "%zu parameters, the route has %zu", params.n, np);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384)
        return 0;
    char *text = gw_fz_dup(data, size);
    static line_t lines[MAX_ROUTES + MAX_QUERIES + 64];
    size_t nl = split_lines(text, size, lines, sizeof lines / sizeof lines[0]);
    static gw_route_spec_t specs[MAX_ROUTES];
    static gw_route_header_t hdrs[MAX_ROUTES][MAX_FIELDS];
    static query_t queries[MAX_QUERIES];
    size_t n = 0, nq = 0;
    for (size_t i = 0; i < nl; i++) {
        line_t *l = &lines[i];
        if (strcmp(l->f[0], "R") == 0 && l->n >= 5 && n < MAX_ROUTES && nq == 0) {
            gw_route_spec_t *sp = &specs[n];
            memset(sp, 0, sizeof *sp);
            sp->host = strcmp(l->f[1], "-") == 0 ? NULL : l->f[1];
            sp->path_match = l->f[2][0] == 'p' ? GW_PATH_PREFIX : GW_PATH_EXACT;
            sp->methods = (unsigned)strtoul(l->f[3], NULL, 16);
            sp->path = l->f[4];
            sp->headers = hdrs[n];
            sp->nheaders = parse_headers(l, 5, hdrs[n]);
            sp->user = &specs[n];
            n++;
        } else if (strcmp(l->f[0], "Q") == 0 && l->n >= 4 && nq < MAX_QUERIES) {
            query_t *q = &queries[nq++];
            q->host = strcmp(l->f[1], "-") == 0 ? NULL : l->f[1];
            q->method = l->f[2];
            q->path = l->f[3];
            q->nhdr = parse_headers(l, 4, q->hdr);
        }
    }
    char err[256];
    gw_router_t *r = gw_router_build(specs, n, err, sizeof err);
    if (r == NULL) {
        GW_FZ_CHECK(strncmp(err, "route ", 6) == 0 || strncmp(err, "router:", 7) == 0,
                    "build error without a route: [%s]", err);
    } else {
        for (size_t i = 0; i < nq; i++)
            check_query(r, specs, n, &queries[i]);
        gw_router_free(r);
    }
    free(text);
    return 0;
}
