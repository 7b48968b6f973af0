/* router.c - see router.h.
 *
 * Shape: routes are grouped by host into three places: a hash table of exact hosts, a hash table of
 * wildcard suffixes ("*.example.com" is stored under "example.com") and one group for any host.
 * Each group is a path trie whose nodes are path segments: literal children (sorted, found by
 * binary search), at most one parameter child, and at each node the routes that end there, exact
 * and prefix, each list sorted by the tie-breaks (method set, header count, config order). A
 * request visits only the trie nodes on its own path, in the specificity order of router.h, and
 * stops at the first route whose method and header conditions hold. */
#include "router.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

typedef struct route_hdr_s {
    char *name; /* lower case */
    char *value;
    size_t vlen;
} route_hdr_t;

typedef struct route_s {
    gw_route_match_t match; /* what gw_router_match returns; first member */
    unsigned methods;
    size_t nheaders;
    route_hdr_t hdr[GW_ROUTE_MAX_HEADERS];
    size_t nparams;
    char *param[GW_ROUTE_MAX_PARAMS];
    char *sig; /* every condition in one string, to find duplicates at build time */
} route_t;

typedef struct node_s node_t;
struct node_s {
    char *seg; /* literal segment; NULL for the root and for parameter nodes */
    size_t seglen;
    node_t **lit; /* literal children, sorted by (length, bytes) once built */
    size_t nlit;
    node_t *param;
    route_t **exact; /* routes whose path ends here */
    size_t nexact;
    route_t **prefix; /* prefix routes whose prefix ends here */
    size_t nprefix;
};

typedef struct host_slot_s {
    char *key; /* NULL: free slot */
    size_t klen;
    node_t *root;
} host_slot_t;

/* Open addressing with linear probing, sized at build time to at least twice the number of routes,
 * so it never fills and never grows. */
typedef struct host_table_s {
    host_slot_t *slot;
    size_t mask;
} host_table_t;

struct gw_router_s {
    route_t *routes;
    size_t nroutes;
    host_table_t exact;
    host_table_t wild;
    node_t *any;
};

/* A path split into segments, pointing into the spec's string. */
typedef struct seglist_s {
    size_t n;
    const char *s[GW_ROUTE_MAX_SEGMENTS];
    size_t len[GW_ROUTE_MAX_SEGMENTS];
} seglist_t;

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static char *dup_lower(const char *s, size_t n, bool lowercase)
{
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    for (size_t i = 0; i < n; i++)
        d[i] = lowercase ? lower(s[i]) : s[i];
    d[n] = '\0';
    return d;
}

/* see router.h */
unsigned gw_router_method_bit(const char *m, size_t len)
{
    static const char *const names[] = {"GET",   "HEAD",    "POST",    "PUT",  "DELETE",
                                        "PATCH", "OPTIONS", "CONNECT", "TRACE"};
    for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == len && memcmp(names[i], m, len) == 0)
            return 1u << i;
    return 0;
}

/* ---- hosts
 * -------------------------------------------------------------------------- */

/* The slot holding KEY, or the free slot where it would go. */
static host_slot_t *table_slot(const host_table_t *t, const char *key, size_t klen)
{
    /* Plain FNV-1a: host names are short, no secret is needed, and the table probes on. */
    size_t i = (size_t)gw_hash_fnv1a(key, klen, 0) & t->mask;
    for (;; i = (i + 1) & t->mask) {
        host_slot_t *s = &t->slot[i];
        if (!s->key || (s->klen == klen && memcmp(s->key, key, klen) == 0))
            return s;
    }
}

static node_t *table_find(const host_table_t *t, const char *key, size_t klen)
{
    if (!t->slot)
        return NULL;
    return table_slot(t, key, klen)->root;
}

static bool host_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
           c == '[' || c == ']' || c == ':';
}

/* Validates a configured host (already lower case, final dot removed): labels not empty, no '*',
 * and ':' only inside an IPv6 literal "[...]". */
static const char *host_problem(const char *h, size_t n)
{
    if (n == 0 || n > GW_ROUTE_MAX_HOST)
        return "host is empty or too long";
    bool v6 = h[0] == '[';
    if (v6 && h[n - 1] != ']')
        return "IPv6 host must be written [addr]";
    for (size_t i = 0; i < n; i++) {
        if (!host_char_ok(h[i]))
            return h[i] == '*' ? "'*' is only allowed as \"*.\" at the start of a host"
                               : "invalid character in host";
        if (!v6 && (h[i] == ':' || h[i] == '[' || h[i] == ']'))
            return "host must not have a port";
        if (!v6 && h[i] == '.' && (i == 0 || h[i - 1] == '.'))
            return "empty label in host";
    }
    return NULL;
}

/* Reduces a request's Host value to the form the tables use: port removed (after "]" for an IPv6
 * literal, else from the first ':'), one final dot removed, lower case. Returns the length written
 * to BUF, or 0 when nothing usable remains or it is too long. */
static size_t host_key(const char *host, size_t hlen, char buf[GW_ROUTE_MAX_HOST + 1])
{
    if (!host)
        return 0;
    const char *end = host + hlen;
    const char *cut = host[0] == '[' ? memchr(host, ']', hlen) : memchr(host, ':', hlen);
    if (cut)
        end = host[0] == '[' ? cut + 1 : cut;
    size_t n = (size_t)(end - host);
    if (n > 0 && host[n - 1] == '.')
        n--;
    if (n == 0 || n > GW_ROUTE_MAX_HOST)
        return 0;
    for (size_t i = 0; i < n; i++)
        buf[i] = lower(host[i]);
    return n;
}

/* ---- building
 * ----------------------------------------------------------------------- */

/* Splits a configured PATH into SL. A prefix path drops a final empty segment ("/api/" is the
 * prefix ["api"], "/" the empty prefix); an exact path keeps it ("/a/" is ["a", ""]). */
static const char *split_path(const char *path, gw_path_match_t kind, seglist_t *sl)
{
    if (!path || path[0] != '/')
        return "path must start with /";
    sl->n = 0;
    const char *p = path + 1;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        bool last = e == NULL;
        if (len == 0 && !last)
            return "empty segment (\"//\") in path";
        if (len == 0 && kind == GW_PATH_PREFIX)
            break;
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return "\".\" or \"..\" segment in path (paths are matched normalised)";
        if (sl->n == GW_ROUTE_MAX_SEGMENTS)
            return "too many segments in path";
        sl->s[sl->n] = p;
        sl->len[sl->n++] = len;
        if (last)
            break;
        p = e + 1;
    }
    return NULL;
}

static bool is_param(const char *s, size_t len)
{
    return len > 0 && s[0] == ':';
}

static int cmp_hdr(const void *a, const void *b)
{
    const route_hdr_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

/* Copies the header conditions into RT, names in lower case, sorted (their order does not matter
 * for matching, and sorted they compare for duplicates). */
static const char *parse_headers(const gw_route_spec_t *sp, route_t *rt)
{
    if (sp->nheaders > GW_ROUTE_MAX_HEADERS)
        return "too many header conditions";
    if (sp->nheaders > 0 && !sp->headers)
        return "headers is NULL";
    for (size_t i = 0; i < sp->nheaders; i++) {
        const gw_route_header_t *h = &sp->headers[i];
        if (!h->name || !h->name[0] || !h->value)
            return "header condition needs a name and a value";
        rt->hdr[i].name = dup_lower(h->name, strlen(h->name), true);
        rt->hdr[i].value = dup_lower(h->value, strlen(h->value), false);
        rt->nheaders = i + 1;
        if (!rt->hdr[i].name || !rt->hdr[i].value)
            return "out of memory";
        rt->hdr[i].vlen = strlen(h->value);
    }
    if (rt->nheaders > 1)
        qsort(rt->hdr, rt->nheaders, sizeof(rt->hdr[0]), cmp_hdr);
    for (size_t i = 1; i < rt->nheaders; i++)
        if (strcmp(rt->hdr[i].name, rt->hdr[i - 1].name) == 0)
            return "the same header is named twice (the route could never match)";
    return NULL;
}

/* Records the parameter names of SL in RT (checking them) and writes the route's signature: host
 * key, match kind, path with parameter names erased, methods, headers. Lengths precede the strings,
 * so no two different routes share a signature. */
static const char *make_sig(route_t *rt, const char *hkey, const seglist_t *sl,
                            gw_path_match_t kind)
{
    size_t cap = strlen(hkey) + 64 + 2 * GW_ROUTE_MAX_SEGMENTS, len = 0;
    for (size_t i = 0; i < sl->n; i++)
        cap += sl->len[i] + 1;
    for (size_t i = 0; i < rt->nheaders; i++)
        cap += strlen(rt->hdr[i].name) + rt->hdr[i].vlen + 48;
    if (!(rt->sig = malloc(cap)))
        return "out of memory";
    len += (size_t)snprintf(rt->sig + len, cap - len, "%zu:%s %d %x ", strlen(hkey), hkey,
                            (int)kind, rt->methods);
    for (size_t i = 0; i < sl->n; i++) {
        if (!is_param(sl->s[i], sl->len[i])) {
            len += (size_t)snprintf(rt->sig + len, cap - len, "/%.*s", (int)sl->len[i], sl->s[i]);
            continue;
        }
        if (sl->len[i] == 1)
            return "parameter without a name (\":\")";
        if (rt->nparams == GW_ROUTE_MAX_PARAMS)
            return "too many parameters in path";
        if (!(rt->param[rt->nparams++] = dup_lower(sl->s[i] + 1, sl->len[i] - 1, false)))
            return "out of memory";
        for (size_t j = 0; j + 1 < rt->nparams; j++)
            if (strcmp(rt->param[j], rt->param[rt->nparams - 1]) == 0)
                return "parameter name used twice in path";
        len += (size_t)snprintf(rt->sig + len, cap - len, "/:");
    }
    for (size_t i = 0; i < rt->nheaders; i++)
        len += (size_t)snprintf(rt->sig + len, cap - len, " %zu:%s=%zu:%s", strlen(rt->hdr[i].name),
                                rt->hdr[i].name, rt->hdr[i].vlen, rt->hdr[i].value);
    return NULL;
}

static node_t *node_new(const char *seg, size_t len)
{
    node_t *nd = calloc(1, sizeof(*nd));
    if (nd && seg && !(nd->seg = dup_lower(seg, len, false))) {
        free(nd);
        return NULL;
    }
    if (nd)
        nd->seglen = len;
    return nd;
}

/* Appends P to an array of pointers grown one by one (build time only). Two typed versions rather
 * than a void ** cast, which would break the aliasing rules. */
static bool push_node(node_t ***arr, size_t *n, node_t *p)
{
    node_t **a = realloc(*arr, (*n + 1) * sizeof(*a));
    if (!a)
        return false;
    a[(*n)++] = p;
    *arr = a;
    return true;
}

static bool push_route(route_t ***arr, size_t *n, route_t *p)
{
    route_t **a = realloc(*arr, (*n + 1) * sizeof(*a));
    if (!a)
        return false;
    a[(*n)++] = p;
    *arr = a;
    return true;
}

/* The child of ND for segment S[0..LEN) (parameter or literal), created if missing. Build time:
 * literal children are still unsorted, so this scans them. */
static node_t *child_for(node_t *nd, const char *s, size_t len)
{
    if (is_param(s, len)) {
        if (!nd->param)
            nd->param = node_new(NULL, 0);
        return nd->param;
    }
    for (size_t i = 0; i < nd->nlit; i++)
        if (nd->lit[i]->seglen == len && memcmp(nd->lit[i]->seg, s, len) == 0)
            return nd->lit[i];
    node_t *c = node_new(s, len);
    if (c && !push_node(&nd->lit, &nd->nlit, c)) {
        free(c->seg);
        free(c);
        return NULL;
    }
    return c;
}

static bool trie_insert(node_t *root, const seglist_t *sl, gw_path_match_t kind, route_t *rt)
{
    node_t *nd = root;
    for (size_t i = 0; i < sl->n && nd; i++)
        nd = child_for(nd, sl->s[i], sl->len[i]);
    if (!nd)
        return false;
    if (kind == GW_PATH_PREFIX)
        return push_route(&nd->prefix, &nd->nprefix, rt);
    return push_route(&nd->exact, &nd->nexact, rt);
}

static bool table_init(host_table_t *t, size_t n)
{
    size_t cap = 4;
    while (cap < 2 * n + 2)
        cap *= 2;
    t->slot = calloc(cap, sizeof(*t->slot));
    t->mask = cap - 1;
    return t->slot != NULL;
}

/* The trie root for host KEY in T, created if missing. */
static node_t *table_root(host_table_t *t, const char *key, size_t klen)
{
    host_slot_t *s = table_slot(t, key, klen);
    if (s->key)
        return s->root;
    node_t *root = node_new(NULL, 0);
    char *k = dup_lower(key, klen, false);
    if (!root || !k) {
        free(root);
        free(k);
        return NULL;
    }
    s->key = k;
    s->klen = klen;
    s->root = root;
    return root;
}

/* Parses the spec's host and returns the trie root of its group; writes the group's key for the
 * route signature to SIGKEY ("" any, "=host" exact, "*.suffix" wildcard). */
static node_t *host_group(gw_router_t *r, const char *host, char *sigkey, const char **why)
{
    size_t n = host ? strlen(host) : 0;
    if (n == 0 || (n == 1 && host[0] == '*')) {
        sigkey[0] = '\0';
        return r->any;
    }
    bool wild = n >= 2 && host[0] == '*' && host[1] == '.';
    const char *h = wild ? host + 2 : host;
    size_t hn = wild ? n - 2 : n;
    if (hn > 0 && h[hn - 1] == '.')
        hn--; /* "example.com." is the fully qualified "example.com" */
    char buf[GW_ROUTE_MAX_HOST + 1];
    if (hn > GW_ROUTE_MAX_HOST) {
        *why = "host is too long";
        return NULL;
    }
    for (size_t i = 0; i < hn; i++)
        buf[i] = lower(h[i]);
    if ((*why = host_problem(buf, hn)) != NULL)
        return NULL;
    snprintf(sigkey, GW_ROUTE_MAX_HOST + 3, "%s%.*s", wild ? "*." : "=", (int)hn, buf);
    node_t *root = table_root(wild ? &r->wild : &r->exact, buf, hn);
    if (!root)
        *why = "out of memory";
    return root;
}

/* Tie-breaks among routes ending at the same node (router.h, steps 3-5). */
static int cmp_route(const void *a, const void *b)
{
    const route_t *x = *(route_t *const *)a, *y = *(route_t *const *)b;
    if ((x->methods != 0) != (y->methods != 0))
        return x->methods ? -1 : 1;
    if (x->nheaders != y->nheaders)
        return x->nheaders > y->nheaders ? -1 : 1;
    return x->match.index < y->match.index ? -1 : x->match.index > y->match.index;
}

static int cmp_seg(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return alen < blen ? -1 : 1;
    return memcmp(a, b, alen);
}

static int cmp_node(const void *a, const void *b)
{
    const node_t *x = *(node_t *const *)a, *y = *(node_t *const *)b;
    return cmp_seg(x->seg, x->seglen, y->seg, y->seglen);
}

/* Sorts what lookups binary-search or walk in order. Recursion depth is bounded by
 * GW_ROUTE_MAX_SEGMENTS. */
static void node_finish(node_t *nd)
{
    if (!nd)
        return;
    /* qsort's array must not be NULL even for 0 elements (UBSan checks it) */
    if (nd->nlit)
        qsort(nd->lit, nd->nlit, sizeof(*nd->lit), cmp_node);
    if (nd->nexact)
        qsort(nd->exact, nd->nexact, sizeof(*nd->exact), cmp_route);
    if (nd->nprefix)
        qsort(nd->prefix, nd->nprefix, sizeof(*nd->prefix), cmp_route);
    for (size_t i = 0; i < nd->nlit; i++)
        node_finish(nd->lit[i]);
    node_finish(nd->param);
}

static void node_free(node_t *nd)
{
    if (!nd)
        return;
    for (size_t i = 0; i < nd->nlit; i++)
        node_free(nd->lit[i]);
    node_free(nd->param);
    free(nd->lit);
    free(nd->exact);
    free(nd->prefix);
    free(nd->seg);
    free(nd);
}

static void table_free(host_table_t *t)
{
    for (size_t i = 0; t->slot && i <= t->mask; i++) {
        free(t->slot[i].key);
        node_free(t->slot[i].root);
    }
    free(t->slot);
}

/* see router.h */
void gw_router_free(gw_router_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nroutes; i++) {
        route_t *rt = &r->routes[i];
        for (size_t j = 0; j < rt->nheaders; j++) {
            free(rt->hdr[j].name);
            free(rt->hdr[j].value);
        }
        for (size_t j = 0; j < rt->nparams; j++)
            free(rt->param[j]);
        free(rt->sig);
    }
    free(r->routes);
    table_free(&r->exact);
    table_free(&r->wild);
    node_free(r->any);
    free(r);
}

/* Parses spec I into r->routes[I] and inserts it into its host's trie. */
static const char *add_route(gw_router_t *r, const gw_route_spec_t *sp, size_t i)
{
    route_t *rt = &r->routes[i];
    rt->match.index = i;
    rt->match.user = sp->user;
    rt->methods = sp->methods;
    if (sp->path_match != GW_PATH_EXACT && sp->path_match != GW_PATH_PREFIX)
        return "unknown path match kind";
    if (sp->methods & ~((GW_METHOD_TRACE << 1) - 1))
        return "unknown method bit";
    seglist_t sl;
    const char *why = split_path(sp->path, sp->path_match, &sl);
    if (why || (why = parse_headers(sp, rt)) != NULL)
        return why;
    char sigkey[GW_ROUTE_MAX_HOST + 3];
    node_t *root = host_group(r, sp->host, sigkey, &why);
    if (!root)
        return why;
    if ((why = make_sig(rt, sigkey, &sl, sp->path_match)) != NULL)
        return why;
    return trie_insert(root, &sl, sp->path_match, rt) ? NULL : "out of memory";
}

static int cmp_sig(const void *a, const void *b)
{
    const route_t *x = *(route_t *const *)a, *y = *(route_t *const *)b;
    int c = strcmp(x->sig, y->sig);
    return c ? c : (x->match.index > y->match.index) - (x->match.index < y->match.index);
}

/* Two routes with the same signature: the later one can never be chosen.
 * Sorting the signatures finds them in O(n log n) instead of comparing every
 * pair. Returns 1 with the pair of lowest second index, 0 when there is none,
 * -1 when out of memory. */
static int find_duplicate(const gw_router_t *r, size_t *first, size_t *second)
{
    route_t **v = malloc((r->nroutes + 1) * sizeof(*v));
    int dup = 0;
    if (!v)
        return -1;
    for (size_t i = 0; i < r->nroutes; i++)
        v[i] = &r->routes[i];
    qsort(v, r->nroutes, sizeof(*v), cmp_sig);
    *second = SIZE_MAX;
    for (size_t i = 1; i < r->nroutes; i++)
        if (strcmp(v[i]->sig, v[i - 1]->sig) == 0 && v[i]->match.index < *second) {
            *first = v[i - 1]->match.index;
            *second = v[i]->match.index;
            dup = 1;
        }
    free(v);
    return dup;
}

/* see router.h */
gw_router_t *gw_router_build(const gw_route_spec_t *specs, size_t n, char *err, size_t errlen)
{
    errf(err, errlen, "%s", "");
    gw_router_t *r = calloc(1, sizeof(*r));
    if (!r || !(r->routes = calloc(n + 1, sizeof(*r->routes))) || !(r->any = node_new(NULL, 0)) ||
        !table_init(&r->exact, n) || !table_init(&r->wild, n)) {
        errf(err, errlen, "router: out of memory");
        gw_router_free(r);
        return NULL;
    }
    for (size_t i = 0; i < n; i++, r->nroutes = i) {
        const char *why = add_route(r, &specs[i], i);
        if (why) {
            r->nroutes = i + 1; /* so that free sees what route I allocated */
            errf(err, errlen, "route %zu: %s", i, why);
            gw_router_free(r);
            return NULL;
        }
    }
    size_t a = 0, b = 0;
    int dup = find_duplicate(r, &a, &b);
    if (dup != 0) {
        if (dup > 0)
            errf(err, errlen, "route %zu: same host, path, methods and headers as route %zu", b, a);
        else
            errf(err, errlen, "router: out of memory");
        gw_router_free(r);
        return NULL;
    }
    node_finish(r->any);
    for (size_t i = 0; i <= r->exact.mask; i++)
        node_finish(r->exact.slot[i].root);
    for (size_t i = 0; i <= r->wild.mask; i++)
        node_finish(r->wild.slot[i].root);
    return r;
}

/* ---- matching
 * ----------------------------------------------------------------------- */

/* What a lookup carries down the trie. Captures are positional: cap[k] is the k-th parameter on the
 * way to the current node; backtracking simply overwrites them. */
typedef struct req_s {
    unsigned mbit;
    const char *end; /* end of the path */
    gw_header_lookup_cb lookup;
    void *ctx;
    const char *cap[GW_ROUTE_MAX_PARAMS];
    size_t caplen[GW_ROUTE_MAX_PARAMS];
} req_t;

static bool conditions_hold(const route_t *rt, const req_t *rq)
{
    if (rt->methods && !(rt->methods & rq->mbit))
        return false;
    for (size_t i = 0; i < rt->nheaders; i++) {
        size_t vlen = 0;
        const char *v = rq->lookup ? rq->lookup(rq->ctx, rt->hdr[i].name, &vlen) : NULL;
        if (!v || vlen != rt->hdr[i].vlen || memcmp(v, rt->hdr[i].value, vlen) != 0)
            return false;
    }
    return true;
}

/* LAB 04: router trie */
/* A router as a trie. Scanning every route per request costs O(routes) and makes "which one wins?"
 * depend on list order. A trie keyed by path segment visits only the nodes on the request's own
 * path, and if each node tries its children in specificity order (literal, then parameter, then the
 * prefix routes that end at the node) the first route found is the most specific one: a depth-first
 * walk enumerates candidates in exactly the segment-by-segment order of router.h. Backtracking is
 * needed because a literal branch can fail deeper down ("/users/me/x" when only "/users/:id/x"
 * exists), but every node is visited at most once: the node determines how much of the path is
 * used.
 *
 * The first route of LIST (sorted by the tie-breaks) whose method and headers match. */
static const route_t *first_passing(route_t *const *list, size_t n, const req_t *rq)
{
    for (size_t i = 0; i < n; i++)
        if (conditions_hold(list[i], rq))
            return list[i];
    return NULL;
}

/* The literal child of ND for segment S[0..LEN), by binary search. */
static const node_t *find_literal(const node_t *nd, const char *s, size_t len)
{
    size_t lo = 0, hi = nd->nlit;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_seg(nd->lit[mid]->seg, nd->lit[mid]->seglen, s, len);
        if (c == 0)
            return nd->lit[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* The best route at or below ND. P is the start of the next request segment, or NULL when the whole
 * path has been consumed; NP is the number of parameters captured so far. The recursion is as deep
 * as the trie (at most GW_ROUTE_MAX_SEGMENTS), whatever the request. */
static const route_t *match_node(const node_t *nd, const char *p, size_t np, req_t *rq)
{
    if (!p) {
        const route_t *rt = first_passing(nd->exact, nd->nexact, rq);
        return rt ? rt : first_passing(nd->prefix, nd->nprefix, rq);
    }
    const char *e = memchr(p, '/', (size_t)(rq->end - p));
    const char *next = e ? e + 1 : NULL;
    size_t len = (size_t)((e ? e : rq->end) - p);
    const node_t *child = find_literal(nd, p, len);
    const route_t *rt = child ? match_node(child, next, np, rq) : NULL;
    if (!rt && nd->param && len > 0 && np < GW_ROUTE_MAX_PARAMS) {
        rq->cap[np] = p;
        rq->caplen[np] = len;
        rt = match_node(nd->param, next, np + 1, rq);
    }
    return rt ? rt : first_passing(nd->prefix, nd->nprefix, rq);
}

/* see router.h */
const gw_route_match_t *gw_router_match(const gw_router_t *r, const char *host, size_t hlen,
                                        const char *method, const char *path, size_t plen,
                                        gw_header_lookup_cb lookup, void *ctx,
                                        gw_route_params_t *params)
{
    if (params)
        params->n = 0;
    if (!path || plen == 0 || path[0] != '/')
        return NULL;
    req_t rq = {.end = path + plen, .lookup = lookup, .ctx = ctx};
    rq.mbit = method ? gw_router_method_bit(method, strlen(method)) : 0;
    char key[GW_ROUTE_MAX_HOST + 1];
    size_t klen = host_key(host, hlen, key);
    const route_t *rt = NULL;
    const node_t *root = klen ? table_find(&r->exact, key, klen) : NULL;
    if (root)
        rt = match_node(root, path + 1, 0, &rq);
    /* Wildcards, longest suffix first: the suffix after each dot, left to right, needing at least
     * one label before it (so "*.example.com" never matches "example.com"). */
    for (size_t i = 1; !rt && i < klen; i++)
        if (key[i] == '.' && (root = table_find(&r->wild, key + i + 1, klen - i - 1)) != NULL)
            rt = match_node(root, path + 1, 0, &rq);
    if (!rt)
        rt = match_node(r->any, path + 1, 0, &rq);
    if (rt && params) {
        params->n = rt->nparams;
        for (size_t k = 0; k < rt->nparams; k++)
            params->p[k] = (gw_route_param_t){rt->param[k], rq.cap[k], rq.caplen[k]};
    }
    return rt ? &rt->match : NULL;
}
/* END LAB */
