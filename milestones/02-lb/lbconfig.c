/* lbconfig.c - see lbconfig.h. */
#include "lbconfig.h"

#include <stdlib.h>
#include <string.h>

#define SEC 1000u

static const char *const hash_names[] = {"client_ip", NULL};
static const char *const hc_type_names[] = {"none", "tcp", "http", NULL};
static const char *const hc_initial_names[] = {"healthy", "unhealthy", NULL};

static const gw_lb_upstream_cfg_t upstream_defaults = {
    .balancer = GW_BAL_ROUND_ROBIN,
    .panic_threshold = 50,
    .max_connect_attempts = 3,
    .health_check = {.type = GW_HC_NONE},
    .outlier = {.consecutive_failures = 5,
                .base_ejection_ms = 30 * SEC,
                .max_ejection_percent = 50,
                .uneject_on_active_pass = true},
};

static void hc_defaults(gw_hc_cfg_t *hc)
{
    *hc = (gw_hc_cfg_t){.type = GW_HC_TCP,
                        .interval_ms = 5 * SEC,
                        .timeout_ms = 2 * SEC,
                        .status_lo = 200,
                        .status_hi = 399,
                        .rise = 2,
                        .fall = 3};
}

/* The path goes into a request line verbatim: a space or CR/LF would break (or inject into)
 * the request. */
static bool valid_path(const char *p)
{
    if (p[0] != '/')
        return false;
    for (; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return false;
    return true;
}

/* health_check: {type, interval, timeout, path, expect_status, rise, fall, initial} */
static void decode_health(gw_cdoc_t *doc, const gw_cnode_t *map, gw_hc_cfg_t *hc)
{
    if (!gw_cnode_expect_map(doc, map, "health_check"))
        return;
    hc_defaults(hc);
    int type = GW_HC_TCP;
    const gw_cnode_t *tnode = gw_cmap_require(doc, map, "type");
    if (tnode != NULL && gw_cget_enum(doc, tnode, "type", hc_type_names + 1, &type) == 0)
        hc->type = (gw_hc_type_t)(type + 1);
    gw_cget_duration(doc, gw_cmap_get(doc, map, "interval"), "interval", 10, 3600 * SEC,
                     &hc->interval_ms);
    gw_cget_duration(doc, gw_cmap_get(doc, map, "timeout"), "timeout", 1, 600 * SEC,
                     &hc->timeout_ms);
    uint64_t rise = hc->rise, fall = hc->fall;
    gw_cget_uint(doc, gw_cmap_get(doc, map, "rise"), "rise", 1, 100, &rise);
    gw_cget_uint(doc, gw_cmap_get(doc, map, "fall"), "fall", 1, 100, &fall);
    hc->rise = (unsigned)rise;
    hc->fall = (unsigned)fall;
    int initial = 0;
    if (gw_cget_enum(doc, gw_cmap_get(doc, map, "initial"), "initial", hc_initial_names,
                     &initial) == 0)
        hc->start_unhealthy = initial == 1;
    const gw_cnode_t *path = gw_cmap_get(doc, map, "path");
    const gw_cnode_t *expect = gw_cmap_get(doc, map, "expect_status");
    if (hc->type != GW_HC_HTTP && (path != NULL || expect != NULL)) {
        gw_cdoc_error(doc, path ? path : expect, "%s applies only to `type: http` checks",
                      path ? "path" : "expect_status");
        return;
    }
    gw_cget_status_range(doc, expect, "expect_status", &hc->status_lo, &hc->status_hi);
    if (path != NULL && gw_cget_string(doc, path, "path", &hc->path) == 0 && !valid_path(hc->path))
        gw_cdoc_error(doc, path,
                      "path must start with '/' and hold no spaces or control characters");
    if (hc->type == GW_HC_HTTP && hc->path == NULL && (hc->path = strdup("/")) == NULL)
        gw_cdoc_oom(doc, map);
}

/* The response runs' thresholds: read only where responses are seen (o->response_keys);
 * below gw04 the keys stay unread, and the config's later-keys table says "needs gw04". */
static void decode_response_runs(gw_cdoc_t *doc, const gw_cnode_t *map, gw_outlier_cfg_t *o)
{
    uint64_t g = o->consecutive_gateway_errors, f = o->consecutive_5xx;
    gw_cget_uint(doc, gw_cmap_get(doc, map, "consecutive_gateway_errors"),
                 "consecutive_gateway_errors", 0, 1000, &g);
    gw_cget_uint(doc, gw_cmap_get(doc, map, "consecutive_5xx"), "consecutive_5xx", 0, 1000, &f);
    o->consecutive_gateway_errors = (unsigned)g;
    o->consecutive_5xx = (unsigned)f;
}

/* outlier: {consecutive_failures, base_ejection, max_ejection_percent, uneject_on_active_pass,
 *           consecutive_gateway_errors (gw04), consecutive_5xx (gw04)} */
static void decode_outlier(gw_cdoc_t *doc, const gw_cnode_t *map, gw_outlier_cfg_t *o)
{
    if (!gw_cnode_expect_map(doc, map, "outlier"))
        return;
    uint64_t n = o->consecutive_failures;
    gw_cget_uint(doc, gw_cmap_get(doc, map, "consecutive_failures"), "consecutive_failures", 0,
                 1000, &n);
    o->consecutive_failures = (unsigned)n;
    gw_cget_bool(doc, gw_cmap_get(doc, map, "uneject_on_active_pass"), "uneject_on_active_pass",
                 &o->uneject_on_active_pass);
    if (o->response_keys)
        decode_response_runs(doc, map, o);
    gw_cget_duration(doc, gw_cmap_get(doc, map, "base_ejection"), "base_ejection", 1, 3600 * SEC,
                     &o->base_ejection_ms);
    double pct = o->max_ejection_percent;
    const gw_cnode_t *p = gw_cmap_get(doc, map, "max_ejection_percent");
    if (gw_cget_percent(doc, p, "max_ejection_percent", &pct) == 0)
        o->max_ejection_percent = (unsigned)pct;
}

static void decode_balancer(gw_cdoc_t *doc, const gw_cnode_t *map, gw_lb_upstream_cfg_t *x)
{
    int kind = GW_BAL_ROUND_ROBIN, hash = 0;
    const gw_cnode_t *bnode = gw_cmap_get(doc, map, "balancer");
    gw_cget_enum(doc, bnode, "balancer", gw_balancer_names, &kind);
    x->balancer = (gw_balancer_kind_t)kind;
    const gw_cnode_t *hnode = gw_cmap_get(doc, map, "hash");
    if (hnode != NULL && x->balancer != GW_BAL_CONSISTENT_HASH)
        gw_cdoc_error(doc, hnode, "hash applies only to `balancer: consistent_hash`");
    else if (hnode != NULL && gw_cget_enum(doc, hnode, "hash", hash_names, &hash) == 0)
        x->hash_client_ip = true;
    else if (hnode == NULL && x->balancer == GW_BAL_CONSISTENT_HASH && bnode != NULL)
        gw_cdoc_error(doc, bnode, "consistent_hash needs a key: add `hash: client_ip`");
}

/* see lbconfig.h */
void gw_lb_cfg_upstream(gw_cdoc_t *doc, const gw_cnode_t *map, gw_config_t *cfg,
                        gw_upstream_cfg_t *u)
{
    (void)cfg;
    if (map == NULL || map->type != GW_CNODE_MAP)
        return;
    gw_lb_upstream_cfg_t *x = malloc(sizeof *x);
    if (x == NULL) {
        gw_cdoc_oom(doc, map);
        return;
    }
    *x = upstream_defaults;
    /* Only a binary that reads HTTP responses can count them (gw04 on). 02 knows nothing of
     * 04 but its number: the level is how any layer's keys are refused below it. */
    x->outlier.response_keys = doc->level >= 4;
    u->ext[2] = x;
    decode_balancer(doc, map, x);
    gw_cget_percent(doc, gw_cmap_get(doc, map, "panic_threshold"), "panic_threshold",
                    &x->panic_threshold);
    const gw_cnode_t *retry = gw_cmap_get(doc, map, "retry");
    if (retry != NULL && gw_cnode_expect_map(doc, retry, "retry")) {
        uint64_t attempts = x->max_connect_attempts;
        gw_cget_uint(doc, gw_cmap_get(doc, retry, "max_attempts"), "max_attempts", 1, 10,
                     &attempts);
        x->max_connect_attempts = (unsigned)attempts;
    }
    const gw_cnode_t *hc = gw_cmap_get(doc, map, "health_check");
    if (hc != NULL)
        decode_health(doc, hc, &x->health_check);
    const gw_cnode_t *o = gw_cmap_get(doc, map, "outlier");
    if (o != NULL)
        decode_outlier(doc, o, &x->outlier);
}

/* see lbconfig.h */
void gw_lb_cfg_backend(gw_cdoc_t *doc, const gw_cnode_t *map, gw_config_t *cfg,
                       gw_upstream_cfg_t *u, gw_backend_cfg_t *b)
{
    (void)cfg;
    (void)u;
    if (map == NULL || map->type != GW_CNODE_MAP)
        return;
    gw_lb_backend_cfg_t *x = malloc(sizeof *x);
    if (x == NULL) {
        gw_cdoc_oom(doc, map);
        return;
    }
    x->weight = 1;
    b->ext[2] = x;
    uint64_t w = 1;
    if (gw_cget_uint(doc, gw_cmap_get(doc, map, "weight"), "weight", 1, 1000, &w) == 0)
        x->weight = (unsigned)w;
}

/* see lbconfig.h */
void gw_lb_upstream_check_proxy(gw_upstream_cfg_t *u, unsigned version)
{
    gw_lb_upstream_cfg_t *x = u->ext[2];
    if (x != NULL)
        x->health_check.proxy_protocol = version;
}

/* see lbconfig.h */
const gw_lb_upstream_cfg_t *gw_lb_upstream_cfg(const gw_upstream_cfg_t *u)
{
    return u->ext[2] != NULL ? u->ext[2] : &upstream_defaults;
}

/* see lbconfig.h */
unsigned gw_lb_backend_weight(const gw_backend_cfg_t *b)
{
    return b->ext[2] != NULL ? ((const gw_lb_backend_cfg_t *)b->ext[2])->weight : 1;
}

static void print_health(FILE *out, const gw_hc_cfg_t *hc, int in)
{
    char a[32], b[32];
    if (hc->type == GW_HC_NONE) {
        fprintf(out, "%*s# health_check: not set (passive checks only)\n", in, "");
        return;
    }
    fprintf(out, "%*shealth_check:\n%*stype: %s\n", in, "", in + 2, "", hc_type_names[hc->type]);
    fprintf(out, "%*sinterval: %s\n%*stimeout: %s\n", in + 2, "",
            gw_cfmt_duration(hc->interval_ms, a, sizeof a), in + 2, "",
            gw_cfmt_duration(hc->timeout_ms, b, sizeof b));
    if (hc->type == GW_HC_HTTP) {
        fprintf(out, "%*spath: ", in + 2, "");
        gw_config_print_str(out, hc->path);
        fprintf(out, "\n%*sexpect_status: %u-%u\n", in + 2, "", hc->status_lo, hc->status_hi);
    }
    fprintf(out, "%*srise: %u\n%*sfall: %u\n%*sinitial: %s\n", in + 2, "", hc->rise, in + 2, "",
            hc->fall, in + 2, "", hc_initial_names[hc->start_unhealthy]);
}

/* see lbconfig.h */
void gw_lb_cfg_print_upstream(FILE *out, const gw_upstream_cfg_t *u, int in)
{
    const gw_lb_upstream_cfg_t *x = gw_lb_upstream_cfg(u);
    char a[32];
    fprintf(out, "%*sbalancer: %s\n", in, "", gw_balancer_names[x->balancer]);
    if (x->hash_client_ip)
        fprintf(out, "%*shash: client_ip\n", in, "");
    fprintf(out, "%*spanic_threshold: %g\n", in, "", x->panic_threshold);
    print_health(out, &x->health_check, in);
    fprintf(out, "%*soutlier:\n%*sconsecutive_failures: %u\n", in, "", in + 2, "",
            x->outlier.consecutive_failures);
    if (x->outlier.response_keys)
        fprintf(out, "%*sconsecutive_gateway_errors: %u\n%*sconsecutive_5xx: %u\n", in + 2, "",
                x->outlier.consecutive_gateway_errors, in + 2, "", x->outlier.consecutive_5xx);
    fprintf(out, "%*sbase_ejection: %s\n%*smax_ejection_percent: %u\n", in + 2, "",
            gw_cfmt_duration(x->outlier.base_ejection_ms, a, sizeof a), in + 2, "",
            x->outlier.max_ejection_percent);
    fprintf(out, "%*suneject_on_active_pass: %s\n", in + 2, "",
            x->outlier.uneject_on_active_pass ? "true" : "false");
    /* Last, so that a later milestone can continue the block with its own retry keys. */
    fprintf(out, "%*sretry:\n%*smax_attempts: %u\n", in, "", in + 2, "", x->max_connect_attempts);
}

/* see lbconfig.h */
void gw_lb_cfg_print_backend(FILE *out, const gw_backend_cfg_t *b, int in)
{
    fprintf(out, "%*sweight: %u\n", in, "", gw_lb_backend_weight(b));
}

/* see lbconfig.h */
void gw_lb_cfg_free(gw_config_t *cfg)
{
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        gw_upstream_cfg_t *u = &cfg->upstreams[i];
        gw_lb_upstream_cfg_t *x = u->ext[2];
        if (x != NULL)
            free(x->health_check.path);
        free(x);
        u->ext[2] = NULL;
        for (size_t j = 0; j < u->nbackends; j++) {
            free(u->backends[j].ext[2]);
            u->backends[j].ext[2] = NULL;
        }
    }
}

const gw_config_ext_t gw_lb_config_ext = {
    .level = 2,
    .upstream = gw_lb_cfg_upstream,
    .backend = gw_lb_cfg_backend,
    .print_upstream = gw_lb_cfg_print_upstream,
    .print_backend = gw_lb_cfg_print_backend,
    .free = gw_lb_cfg_free,
};
