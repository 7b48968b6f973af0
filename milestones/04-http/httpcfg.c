/* httpcfg.c - see httpcfg.h. The listener, route and upstream keys; a route's middleware
 * list is walked here, but each middleware's options belong to its file (mw.h's ops table:
 * decode, print, free), so nothing here knows one middleware from another. */
#include "httpcfg.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "04-http/h1.h"
#include "04-http/ppconf.h"
#include "04-http/tlsconf.h"
#include "04-http/passthrough.h"
#include "error.h"

#define SEC ((uint64_t)1000)
#define MINUTE (60 * SEC)
#define HOUR (60 * MINUTE)
#define KiB ((uint64_t)1024)
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)
#define MAX_BODY (1024 * GiB)
#define MAX_REQUEST_BUFFERING (64 * MiB) /* held in buffer-pool chunks, per request */

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

/* ---- small helpers -------------------------------------------------------------------- */

static void oom(gw_cdoc_t *doc, const gw_cnode_t *at)
{
    gw_cdoc_oom(doc, at);
}

/* ---- middleware ------------------------------------------------------------------------ */

/* The kind named at KEY, or -1 after reporting it (with a suggestion when one is close). */
static int mw_kind(gw_cdoc_t *doc, const gw_cnode_t *key)
{
    const char *best = NULL;
    unsigned bd = 3;
    char known[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < GW_MW_NKINDS; i++) {
        const char *name = gw_mw_kind_name((gw_mw_kind_t)i);
        if (!strcmp(key->str, name))
            return (int)i;
        unsigned d = gw_cfg_edit_distance(key->str, name);
        if (d < bd)
            bd = d, best = name;
        int n = snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", name);
        if (n > 0 && (size_t)n < sizeof known - used)
            used += (size_t)n;
    }
    if (best)
        gw_cdoc_error(doc, key, "unknown middleware '%s' (did you mean '%s'?)", key->str, best);
    else
        gw_cdoc_error(doc, key, "unknown middleware '%s' (known: %s)", key->str, known);
    return -1;
}

_Static_assert(GW_MW_NKINDS <= 32, "decode_middleware keeps the kinds seen in 32 bits");

/* middleware: [{name: options}, ...], each kind at most once per route (its place in the
 * order would otherwise be ambiguous, and two retries or breakers make no sense). The
 * options are the middleware's own business: its decode hook. */
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
        const gw_mw_ops_t *ops = gw_mw_ops((gw_mw_kind_t)kind);
        m->kind = (gw_mw_kind_t)kind;
        m->line = item->line;
        m->col = item->col;
        if (ops->decode != NULL)
            m->cfg = ops->decode(doc, p->value);
        else
            gw_cnode_expect_map(doc, p->value, ops->name);
    }
}

/* Forwarding headers are on by default (issue 14, as in Envoy, Traefik and Caddy): a route
 * whose list does not name `forwarded` gets it, with its defaults, as its first middleware,
 * so that a `headers` rule further on still has the last word on those fields, and -T shows
 * it. `forwarded: false` is the way out, and keeps its place in the list. */
static void default_forwarded(gw_cdoc_t *doc, const gw_cnode_t *at, gw_http_route_t *r)
{
    for (size_t i = 0; i < r->nmw; i++)
        if (r->mw[i].kind == GW_MW_FORWARDED)
            return;
    gw_mw_cfg_t *mw = realloc(r->mw, (r->nmw + 1) * sizeof(*mw));
    if (mw == NULL) {
        oom(doc, at);
        return;
    }
    memmove(mw + 1, mw, r->nmw * sizeof(*mw));
    r->mw = mw;
    r->nmw++;
    mw[0] = (gw_mw_cfg_t){.kind = GW_MW_FORWARDED, .line = r->line, .col = r->col};
    mw[0].cfg = gw_mw_ops(GW_MW_FORWARDED)->decode(doc, NULL);
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
        if (gw_mw_cfg_token(doc, p->key, "headers", &name) == 0 &&
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
        gw_cdoc_error(doc, gw_mw_cfg_key_node(map, "path_prefix"),
                      "path and path_prefix are exclusive");
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
        gw_cdoc_error(doc, gw_mw_cfg_key_node(map, "sticky_cookie"),
                      "sticky_header and sticky_cookie are exclusive");
        return;
    }
    if (h && gw_mw_cfg_token(doc, h, "sticky_header", &r->sticky_name) == 0)
        r->sticky = GW_SPLIT_BY_HEADER;
    if (c && gw_cget_string(doc, c, "sticky_cookie", &r->sticky_name) == 0) {
        r->sticky = GW_SPLIT_BY_COOKIE;
        if (!gw_mw_is_token(r->sticky_name))
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
        gw_cdoc_error(d->doc, gw_mw_cfg_key_node(map, "split"), "upstream and split are exclusive");
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

/* Adds NAME (taken) to R's upgrade list, or an error at AT. */
static void add_upgrade(gw_cdoc_t *doc, const gw_cnode_t *at, gw_http_route_t *r, char *name)
{
    gw_upgrade_allow_t *a = &r->upgrade;
    size_t len = strlen(name);
    if (!gw_upgrade_name_ok(name, len)) {
        if (!strcasecmp(name, "h2c") || !strcasecmp(name, "h2"))
            gw_cdoc_error(doc, at,
                          "upgrade: '%s' is never tunneled: a backend that switches to HTTP/2 "
                          "behind the gateway would serve requests it never routed, checked "
                          "or logged (h2c smuggling)",
                          name);
        else
            gw_cdoc_error(doc, at, "upgrade: '%s' is not a protocol name (a token, no /version)",
                          name);
        free(name);
        return;
    }
    for (size_t i = 0; i < a->n; i++)
        if (!strcasecmp(a->names[i], name)) {
            gw_cdoc_error(doc, at, "upgrade: '%s' is already allowed", name);
            free(name);
            return;
        }
    if (a->n == GW_UPGRADE_MAX_ALLOWED) {
        gw_cdoc_error(doc, at, "upgrade: more than %d protocols", GW_UPGRADE_MAX_ALLOWED);
        free(name);
        return;
    }
    a->names[a->n++] = name;
}

/* websocket: true (= upgrade: [websocket]) and upgrade: [names] */
static void decode_upgrade(gw_cdoc_t *doc, const gw_cnode_t *map, gw_http_route_t *r)
{
    const gw_cnode_t *ws = gw_cmap_get(doc, map, "websocket");
    bool on = false;
    if (gw_cget_bool(doc, ws, "websocket", &on) == 0 && on) {
        char *n = strdup("websocket");
        if (!n)
            oom(doc, ws);
        else
            add_upgrade(doc, ws, r, n);
    }
    const gw_cnode_t *seq = gw_cmap_get(doc, map, "upgrade");
    if (!seq || !gw_cnode_expect_seq(doc, seq, "upgrade"))
        return;
    for (size_t i = 0; i < seq->n; i++) {
        char *n = NULL;
        if (gw_cget_string(doc, seq->items[i], "upgrade", &n) == 0 && n)
            add_upgrade(doc, seq->items[i], r, n);
    }
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
        decode_upgrade(doc, map, r);
        decode_middleware(doc, gw_cmap_get(doc, map, "middleware"), r);
        default_forwarded(doc, map, r);
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
    gw_cget_duration(doc, gw_cmap_get(doc, map, "tunnel_idle_timeout"), "tunnel_idle_timeout", 1,
                     24 * HOUR, &x->tunnel_idle_ms);
    decode_trusted(doc, gw_cmap_get(doc, map, "trusted_proxies"), x);
}

/* The route of X with a middleware that fills the request field NAME (any case) from a
 * source it verified (gw_mw_ops_t.guards_field: jwt's claim headers), or NULL; *WHAT gets
 * what NAME is to that middleware, *MW its name. */
static const gw_http_route_t *guarded_by(const gw_http_listener_cfg_t *x, const char *name,
                                         const char **what, const char **mw)
{
    for (size_t i = 0; i < x->nroutes; i++)
        for (size_t j = 0; j < x->routes[i].nmw; j++) {
            const gw_mw_cfg_t *m = &x->routes[i].mw[j];
            const gw_mw_ops_t *ops = gw_mw_ops(m->kind);
            if (ops->guards_field != NULL && (*what = ops->guards_field(m->cfg, name)) != NULL) {
                *mw = ops->name;
                return &x->routes[i];
            }
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
    const char *what = NULL, *mw = NULL;
    const gw_http_route_t *r = guarded_by(x, name, &what, &mw);
    if (why)
        gw_cdoc_error(doc, node, "forward_trailers: '%s' may never be a trailer (%s)", name, why);
    else if (r)
        gw_cdoc_error(doc, node,
                      "forward_trailers: '%s' is the %s of route '%s' (a trailer "
                      "would bring back the value the %s middleware removed)",
                      name, what, r->name ? r->name : "?", mw);
    for (size_t i = 0; !why && !r && i < n; i++)
        if (!strcasecmp(kept[i], name)) {
            gw_cdoc_error(doc, node, "forward_trailers: '%s' is already listed", name);
            return false;
        }
    return !why && !r;
}

/* forward_trailers: [names], read after the routes (the fields their middleware guard, as
 * jwt's claim headers, may not be listed). X always gets an allow-list, empty when the key is
 * absent or wrong. */
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
        if (gw_mw_cfg_token(doc, seq->items[i], "forward_trailers", &s) != 0 || !s)
            continue;
        if (trailer_name_ok(doc, seq->items[i], s, x, v, n))
            v[n++] = s;
        else
            free(s);
    }
    if (gw_trailers_allow_new((const char *const *)v, n, &x->forward_trailers) != 0)
        oom(doc, seq);
    gw_mw_free_strv(v, n);
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
            gw_cdoc_error(doc, gw_mw_cfg_key_node(map, keys[i]), "%s: only for protocol http",
                          keys[i]);
    }
}

static void http_listener(gw_cdoc_t *doc, const gw_cnode_t *map, gw_config_t *cfg,
                          gw_listener_cfg_t *l)
{
    gw_res_config_ext.listener(doc, map, cfg, l);
    gw_tls_listener_cfg_t *tls = gw_tls_listener_decode(doc, map, l); /* tls: tlsconf.c */
    gw_passthrough_cfg_t *pt = NULL;
    const gw_cnode_t *ptk =
        map && map->type == GW_CNODE_MAP ? gw_mw_cfg_key_node(map, "tls_passthrough") : NULL;
    if (tls && ptk) { /* one listener either opens TLS or forwards it unopened */
        gw_cnode_silence(gw_cmap_get(doc, map, "tls_passthrough"));
        gw_cdoc_error(doc, ptk,
                      "tls_passthrough: not with tls (passthrough forwards the TLS "
                      "bytes unopened, tls terminates them): use two listeners");
    } else {
        pt = gw_passthrough_cfg_decode(doc, map, cfg, l); /* tcp listeners only */
    }
    gw_pp_listener_cfg_t *pp = gw_pp_listener_decode(doc, map); /* ppconf.c */
    if (l->protocol != GW_PROTO_HTTP) {
        reject_http_keys(doc, map);
        gw_http_listener_cfg_t *x = NULL;
        if ((tls || pt || pp) && !(x = calloc(1, sizeof *x))) {
            gw_tls_listener_free(tls);
            gw_passthrough_cfg_free(pt);
            gw_pp_listener_free(pp);
            oom(doc, map);
            return;
        }
        if (x) {
            x->tls = tls;
            x->passthrough = pt;
            x->pp = pp;
            l->ext[4] = x;
        }
        return;
    }
    if (!map || map->type != GW_CNODE_MAP)
        return;
    gw_http_listener_cfg_t *x = calloc(1, sizeof(*x));
    if (!x) {
        gw_tls_listener_free(tls);
        gw_pp_listener_free(pp);
        oom(doc, map);
        return;
    }
    l->ext[4] = x;
    x->tls = tls;
    x->pp = pp;
    x->head_timeout_ms = 10 * SEC;
    x->body_timeout_ms = 30 * SEC;
    x->keepalive_timeout_ms = 60 * SEC;
    x->response_timeout_ms = 30 * SEC;
    x->tunnel_idle_ms = HOUR;
    x->max_head = 16 * KiB;
    x->max_uri = 8 * KiB;
    x->max_headers = 100;
    const gw_cnode_t *up = gw_cmap_get(doc, map, "upstream");
    if (up) {
        gw_cnode_silence(up);
        gw_cdoc_error(doc, gw_mw_cfg_key_node(map, "upstream"),
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
    if (!map || map->type != GW_CNODE_MAP)
        return;
    gw_http_upstream_cfg_t *x = malloc(sizeof(*x));
    if (!x) {
        oom(doc, map);
        return;
    }
    *x = upstream_defaults;
    u->ext[4] = x;
    x->tls = gw_tls_upstream_decode(doc, map, u);        /* tls: tlsconf.c */
    x->proxy_protocol = gw_pp_upstream_decode(doc, map); /* ppconf.c */
    gw_lb_upstream_check_proxy(u, x->proxy_protocol);    /* 02's checks send it too */
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
        gw_http_listener_cfg_t *x = cfg->listeners[i].ext[4];
        if (x && cfg->listeners[i].protocol == GW_PROTO_HTTP)
            build_router(doc, x);
    }
}

/* see httpcfg.h */
const gw_http_listener_cfg_t *gw_http_listener_cfg(const gw_listener_cfg_t *l)
{
    return l->protocol == GW_PROTO_HTTP ? l->ext[4] : NULL;
}

/* see httpcfg.h */
const gw_http_upstream_cfg_t *gw_http_upstream_cfg(const gw_upstream_cfg_t *u)
{
    const gw_http_upstream_cfg_t *x = u->ext[4];
    return x ? x : &upstream_defaults;
}

/* ---- printing (-T) ---------------------------------------------------------------------- */

/* "- name:" then the middleware's own text (its print hook). */
static void print_mw(FILE *out, const gw_mw_cfg_t *m, int in)
{
    const gw_mw_ops_t *ops = gw_mw_ops(m->kind);
    fprintf(out, "%*s- %s:", in, "", gw_mw_kind_name(m->kind));
    if (ops != NULL && ops->print != NULL)
        ops->print(out, m->cfg, in);
    else
        fputs(" {}\n", out);
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
    if (r->upgrade.n) {
        fprintf(out, "%*supgrade: [", in + 2, "");
        for (size_t i = 0; i < r->upgrade.n; i++) {
            fputs(i ? ", " : "", out);
            gw_config_print_str(out, r->upgrade.names[i]);
        }
        fputs("]\n", out);
    }
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
    fprintf(out, "%*stunnel_idle_timeout: %s\n", in + 2, "",
            gw_cfmt_duration(x->tunnel_idle_ms, a, sizeof(a)));
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
    gw_tls_listener_print(out, gw_tls_listener_cfg(l), in);
    gw_passthrough_cfg_print(out, l, in);
    gw_pp_listener_print(out, gw_pp_listener_cfg(l), in);
    const gw_http_listener_cfg_t *x = gw_http_listener_cfg(l); /* NULL on tcp listeners */
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
    gw_tls_upstream_print(out, x->tls, in);
    gw_pp_upstream_print(out, x->proxy_protocol, in);
}

/* ---- freeing ---------------------------------------------------------------------------- */

static void free_mw(gw_mw_cfg_t *m)
{
    const gw_mw_ops_t *ops = gw_mw_ops(m->kind);
    if (ops != NULL && ops->free != NULL)
        ops->free(m->cfg);
    m->cfg = NULL;
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
    for (size_t i = 0; i < r->upgrade.n; i++)
        free((char *)r->upgrade.names[i]);
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
    gw_tls_listener_free(x->tls);
    gw_passthrough_cfg_free(x->passthrough);
    gw_pp_listener_free(x->pp);
    free(x);
}

static void http_free(gw_config_t *cfg)
{
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        if (cfg->listeners[i].ext[4]) {
            free_listener(cfg->listeners[i].ext[4]);
            cfg->listeners[i].ext[4] = NULL;
        }
    }
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        gw_http_upstream_cfg_t *x = cfg->upstreams[i].ext[4];
        if (x)
            gw_tls_upstream_free(x->tls);
        free(x);
        cfg->upstreams[i].ext[4] = NULL;
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
