/* router.h - choose the route for an HTTP request by host, path, method and headers, from a
 * route list compiled at load time into host tables and path tries. */
#ifndef GW_ROUTER_H
#define GW_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

/* Bounds (every one is checked at build time; a request never makes the router allocate). */
#define GW_ROUTE_MAX_PARAMS 8    /* parameters (":id") in one route path */
#define GW_ROUTE_MAX_SEGMENTS 32 /* segments in one route path */
#define GW_ROUTE_MAX_HEADERS 8   /* header conditions in one route */
#define GW_ROUTE_MAX_HOST 253    /* longest host name (RFC 1035), without port or final dot */

/* Methods as bits of gw_route_spec_t.methods. A method not listed here (a WebDAV verb, say)
 * is matched only by routes that accept any method. */
enum {
    GW_METHOD_GET = 1u << 0,
    GW_METHOD_HEAD = 1u << 1,
    GW_METHOD_POST = 1u << 2,
    GW_METHOD_PUT = 1u << 3,
    GW_METHOD_DELETE = 1u << 4,
    GW_METHOD_PATCH = 1u << 5,
    GW_METHOD_OPTIONS = 1u << 6,
    GW_METHOD_CONNECT = 1u << 7,
    GW_METHOD_TRACE = 1u << 8,
};

/* The idempotent methods (RFC 9110 9.2.2): a request with one of them may be sent again. */
#define GW_METHODS_IDEMPOTENT                                                                      \
    (GW_METHOD_GET | GW_METHOD_HEAD | GW_METHOD_OPTIONS | GW_METHOD_TRACE | GW_METHOD_PUT |        \
     GW_METHOD_DELETE)

/* The GW_METHOD_* bit for the method name M[0..LEN) (case-sensitive, as RFC 9110 says), or
 * 0 for any other method. */
unsigned gw_router_method_bit(const char *m, size_t len);

/* How a route's path is compared with the request's. */
typedef enum gw_path_match_e {
    GW_PATH_EXACT = 0, /* the whole path, segment by segment; a trailing slash counts */
    GW_PATH_PREFIX,    /* the first segments of the path: "/api/" and "/api" both match
                          "/api", "/api/" and "/api/x", never "/apix"; "/" matches all */
} gw_path_match_t;

/* A header condition: the request has header NAME (case-insensitive) whose value is
 * exactly VALUE (case-sensitive). */
typedef struct gw_route_header_s {
    const char *name;
    const char *value;
} gw_route_header_t;

/* One route as configured. The router copies what it needs: the strings may be freed after
 * gw_router_build returns; USER is kept as is.
 *  host: NULL, "" or "*" for any host; "api.example.com" for that host; "*.example.com" for
 *        hosts ending in ".example.com" with ONE OR MORE labels before it (a.example.com,
 *        a.b.example.com; not example.com itself), as nginx and Envoy do. (TLS certificate
 *        wildcards match exactly one label; routing is not a security boundary of that
 *        kind, and one-or-more saves a route per depth.) Compared case-insensitively.
 *  path: starts with '/'; segments are literals or ":name" parameters, which match one
 *        non-empty segment and capture it. No empty segment except a final one ("/a/" for
 *        EXACT), no "." or "..", at most GW_ROUTE_MAX_SEGMENTS and GW_ROUTE_MAX_PARAMS.
 *  methods: GW_METHOD_* bits, 0 for any method.
 *  headers: NHEADERS conditions, all of which must hold. */
typedef struct gw_route_spec_s {
    const char *host;
    const char *path;
    gw_path_match_t path_match;
    unsigned methods;
    const gw_route_header_t *headers;
    size_t nheaders;
    void *user;
} gw_route_spec_t;

/* What a match returns: the index of the route in the spec array and its USER pointer.
 * Owned by the router; valid until gw_router_free. */
typedef struct gw_route_match_s {
    size_t index;
    void *user;
} gw_route_match_t;

/* Captured parameters, in path order. NAME points into the router (NUL-terminated), VALUE
 * into the caller's PATH (not NUL-terminated, still percent-encoded as the path was). */
typedef struct gw_route_param_s {
    const char *name;
    const char *value;
    size_t len;
} gw_route_param_t;

typedef struct gw_route_params_s {
    size_t n;
    gw_route_param_t p[GW_ROUTE_MAX_PARAMS];
} gw_route_params_t;

/* Returns the value of the request header NAME (lower case, NUL-terminated) and its length
 * in *LEN, or NULL when absent. With a repeated header the callback decides which value
 * counts (the first, normally). */
typedef const char *(*gw_header_lookup_cb)(void *ctx, const char *name, size_t *len);

typedef struct gw_router_s gw_router_t;

/* Compiles N route specs. On success returns the router; on error returns NULL and writes
 * a message naming the route index ("route 3: ...") to ERR (ERRLEN bytes, may be 0). Errors:
 * a malformed host, path, method set or header condition, a bound exceeded, or two routes
 * with the same conditions (same host, path shape, match kind, methods and header set;
 * parameter names do not count), which could never both be reachable.
 *
 * Specificity order (the best matching route wins; each step only breaks ties of the one
 * before):
 *  1. Host: an exact host beats a wildcard host, a longer wildcard suffix beats a shorter
 *     one (*.b.example.com > *.example.com), and any wildcard beats "any host". Routes of a
 *     more specific host win even when their path is less specific: hosts are tenants.
 *  2. Path, compared segment by segment from the left: at the first position where two
 *     routes differ, a literal segment beats a parameter, which beats the end of a prefix
 *     route (a prefix route "covers" the rest). At the end of the request path an exact
 *     route beats a prefix route of the same segments. So: exact literal path > longer
 *     literal prefix or parameter path > shorter prefix, "/users/me" > "/users/:id" >
 *     "/users/" > "/".
 *  3. A route with a method set beats a route for any method.
 *  4. More header conditions beat fewer.
 *  5. The route listed first wins. */
gw_router_t *gw_router_build(const gw_route_spec_t *specs, size_t n, char *err, size_t errlen);

/* Finds the route for a request. HOST[0..HLEN) is the Host header (or authority): compared
 * case-insensitively after removing a ":port" and a final dot; NULL or empty (or over
 * GW_ROUTE_MAX_HOST) matches only any-host routes. METHOD is NUL-terminated. PATH[0..PLEN)
 * is the NORMALISED path (gw_path_normalize, without the query); a path not starting with
 * '/' matches nothing. LOOKUP(CTX, ...) is called only for routes with header conditions
 * and may be NULL when no route has any. PARAMS (may be NULL) receives the captures of the
 * winning route; it is left with n = 0 when nothing matches.
 * Returns the winning route, or NULL. Does not allocate; cost grows with the path's depth
 * and the number of host labels, not with the number of routes. Safe to call from several
 * threads at once on the same router. */
const gw_route_match_t *gw_router_match(const gw_router_t *r, const char *host, size_t hlen,
                                        const char *method, const char *path, size_t plen,
                                        gw_header_lookup_cb lookup, void *ctx,
                                        gw_route_params_t *params);

/* Frees R and everything it holds (not the USER pointers). NULL is allowed. */
void gw_router_free(gw_router_t *r);

#endif
