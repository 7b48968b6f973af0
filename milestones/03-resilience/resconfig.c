/* resconfig.c - see resconfig.h. */
#include "resconfig.h"

#include <stdlib.h>
#include <string.h>

#define SEC 1000u

static const gw_res_upstream_cfg_t upstream_defaults = {
    .breaker_enabled = false,
    .backoff_ms = 10,
    .backoff_max_ms = 1000,
    .budget_percent = 20,
    .min_concurrent = 3,
};
static const gw_res_listener_cfg_t listener_defaults = {.max_clients = 100000};
static const gw_res_root_cfg_t root_defaults = {.admin_enabled = false};

static const gw_breaker_cfg_t breaker_defaults = {
    .consecutive_failures = 5,
    .failure_rate_percent = 50,
    .min_requests = 20,
    .window_ms = 10 * SEC,
    .open_timeout_ms = 5 * SEC,
    .half_open_max = 1,
    .success_to_close = 2,
};

/* see resconfig.h */
void gw_res_decode_breaker(gw_cdoc_t *doc, const gw_cnode_t *map, const char *what,
                           gw_breaker_cfg_t *b)
{
    *b = breaker_defaults;
    uint64_t cf = b->consecutive_failures, mr = b->min_requests, hm = b->half_open_max,
             sc = b->success_to_close;
    gw_cget_uint(doc, gw_cmap_get(doc, map, "consecutive_failures"), "consecutive_failures", 0,
                 10000, &cf);
    gw_cget_percent(doc, gw_cmap_get(doc, map, "failure_rate_percent"), "failure_rate_percent",
                    &b->failure_rate_percent);
    /* The rolling window holds at most 10 x 65535 outcomes (breaker.h): beyond, the rule
     * could never fire. */
    gw_cget_uint(doc, gw_cmap_get(doc, map, "min_requests"), "min_requests", 1, 65535, &mr);
    gw_cget_duration(doc, gw_cmap_get(doc, map, "window"), "window", 10, 3600 * SEC, &b->window_ms);
    gw_cget_duration(doc, gw_cmap_get(doc, map, "open_timeout"), "open_timeout", 1, 3600 * SEC,
                     &b->open_timeout_ms);
    gw_cget_uint(doc, gw_cmap_get(doc, map, "half_open_max"), "half_open_max", 1, 1000, &hm);
    gw_cget_uint(doc, gw_cmap_get(doc, map, "success_to_close"), "success_to_close", 1, 1000, &sc);
    b->consecutive_failures = (unsigned)cf;
    b->min_requests = (unsigned)mr;
    b->half_open_max = (unsigned)hm;
    b->success_to_close = (unsigned)sc;
    if (b->consecutive_failures == 0 && b->failure_rate_percent == 0)
        gw_cdoc_error(doc, map,
                      "%s: both rules are off (consecutive_failures: 0 "
                      "and failure_rate_percent: 0): remove the block instead",
                      what);
}

static void decode_retry(gw_cdoc_t *doc, const gw_cnode_t *map, gw_res_upstream_cfg_t *r)
{
    gw_cget_duration(doc, gw_cmap_get(doc, map, "backoff"), "backoff", 0, 60 * SEC, &r->backoff_ms);
    gw_cget_duration(doc, gw_cmap_get(doc, map, "backoff_max"), "backoff_max", 0, 600 * SEC,
                     &r->backoff_max_ms);
    gw_cget_percent(doc, gw_cmap_get(doc, map, "budget_percent"), "budget_percent",
                    &r->budget_percent);
    gw_cget_uint(doc, gw_cmap_get(doc, map, "min_concurrent"), "min_concurrent", 0, 100000,
                 &r->min_concurrent);
    const gw_cnode_t *mx = gw_cmap_get(doc, map, "backoff_max");
    if (mx != NULL && r->backoff_max_ms < r->backoff_ms)
        gw_cdoc_error(doc, mx, "backoff_max must be at least backoff");
}

static void res_upstream(gw_cdoc_t *doc, const gw_cnode_t *map, gw_config_t *cfg,
                         gw_upstream_cfg_t *u)
{
    gw_lb_cfg_upstream(doc, map, cfg, u);
    if (u->ext[2] == NULL)
        return; /* not a mapping, or out of memory: reported already */
    gw_res_upstream_cfg_t *x = malloc(sizeof *x);
    if (x == NULL) {
        gw_cdoc_oom(doc, map);
        return;
    }
    *x = upstream_defaults;
    u->ext[3] = x;
    const gw_cnode_t *br = gw_cmap_get(doc, map, "circuit_breaker");
    if (br != NULL && gw_cnode_expect_map(doc, br, "circuit_breaker")) {
        x->breaker_enabled = true;
        gw_res_decode_breaker(doc, br, "circuit_breaker", &x->breaker);
    }
    const gw_cnode_t *retry = gw_cmap_get(doc, map, "retry");
    if (retry != NULL && retry->type == GW_CNODE_MAP)
        decode_retry(doc, retry, x);
}

/* listeners[].rate_limit: {global: {rate, burst}, per_client: {rate, burst, max_clients}} */
static void decode_limit(gw_cdoc_t *doc, const gw_cnode_t *map, const char *what, uint64_t *rate,
                         uint64_t *burst, uint64_t *max_clients)
{
    if (!gw_cnode_expect_map(doc, map, what))
        return;
    /* The bucket's own bounds (ratelimit.h): 1e7/s and a burst of 1e6. */
    gw_cget_uint(doc, gw_cmap_require(doc, map, "rate"), "rate", 1, 10000000, rate);
    *burst = *rate < 1000000 ? *rate : 1000000;
    gw_cget_uint(doc, gw_cmap_get(doc, map, "burst"), "burst", 1, 1000000, burst);
    if (max_clients != NULL)
        gw_cget_uint(doc, gw_cmap_get(doc, map, "max_clients"), "max_clients", 16, 10000000,
                     max_clients);
}

/* The ext is allocated for every listener written as a mapping, rate_limit or not (the
 * defaults). */
static void res_listener(gw_cdoc_t *doc, const gw_cnode_t *map, gw_config_t *cfg,
                         gw_listener_cfg_t *l)
{
    (void)cfg;
    if (map == NULL || map->type != GW_CNODE_MAP)
        return;
    gw_res_listener_cfg_t *x = malloc(sizeof *x);
    if (x == NULL) {
        gw_cdoc_oom(doc, map);
        return;
    }
    *x = listener_defaults;
    l->ext[3] = x;
    const gw_cnode_t *rl = gw_cmap_get(doc, map, "rate_limit");
    if (rl == NULL || !gw_cnode_expect_map(doc, rl, "rate_limit"))
        return;
    const gw_cnode_t *g = gw_cmap_get(doc, rl, "global"), *c = gw_cmap_get(doc, rl, "per_client");
    if (g != NULL)
        decode_limit(doc, g, "global", &x->global_rate, &x->global_burst, NULL);
    if (c != NULL)
        decode_limit(doc, c, "per_client", &x->client_rate, &x->client_burst, &x->max_clients);
    if (g == NULL && c == NULL)
        gw_cdoc_error(doc, rl, "rate_limit needs `global`, `per_client` or both");
}

/* see resconfig.h */
gw_res_admin_exposure_t gw_res_admin_exposure(const gw_res_root_cfg_t *r, char *msg, size_t size)
{
    msg[0] = '\0';
    if (!r->admin_enabled)
        return GW_RES_ADMIN_SAFE;
    if (r->admin_token != NULL) {
        if (!r->allow_unauthenticated)
            return GW_RES_ADMIN_SAFE;
        snprintf(msg, size,
                 "admin.allow_unauthenticated has no effect: admin.token is set, and every "
                 "admin route but /healthz still requires it");
        return GW_RES_ADMIN_NEEDLESS;
    }
    if (gw_addr_is_loopback(&r->admin_addr))
        return GW_RES_ADMIN_SAFE;
    const char *where = gw_addr_is_unspecified(&r->admin_addr) ? "listens on every interface"
                                                               : "is not a loopback address";
    if (r->allow_unauthenticated) {
        snprintf(msg, size,
                 "admin API on %s %s and has no token: anyone who can reach it can read "
                 "/metrics, /stats and /backends (admin.allow_unauthenticated: true)",
                 r->admin_address_text, where);
        return GW_RES_ADMIN_OPEN;
    }
    snprintf(msg, size,
             "admin.address %s %s and admin.token is not set: anyone who can reach it could "
             "read /metrics, /stats and /backends; set a token, or write "
             "`allow_unauthenticated: true` under admin to accept that",
             r->admin_address_text, where);
    return GW_RES_ADMIN_REFUSED;
}

/* admin: {address, token, allow_unauthenticated} */
static void res_root(gw_cdoc_t *doc, const gw_cnode_t *map, gw_config_t *cfg)
{
    const gw_cnode_t *adm = gw_cmap_get(doc, map, "admin");
    if (adm == NULL || !gw_cnode_expect_map(doc, adm, "admin"))
        return;
    gw_res_root_cfg_t *x = calloc(1, sizeof *x);
    if (x == NULL) {
        gw_cdoc_oom(doc, adm);
        return;
    }
    cfg->ext[3] = x;
    x->admin_enabled = true;
    const gw_cnode_t *a = gw_cmap_get(doc, adm, "address");
    x->admin_line = (a != NULL ? a : adm)->line;
    x->admin_col = (a != NULL ? a : adm)->col;
    const char *text = a != NULL && a->type == GW_CNODE_SCALAR ? a->str : "127.0.0.1:9901";
    x->admin_address_text = strdup(text);
    if (x->admin_address_text == NULL) {
        gw_cdoc_oom(doc, adm);
        return;
    }
    int rc = a != NULL ? gw_cget_addr(doc, a, "address", &x->admin_addr)
                       : gw_addr_parse(text, false, false, &x->admin_addr, &(const char *){NULL});
    const gw_cnode_t *t = gw_cmap_get(doc, adm, "token");
    if (t != NULL && gw_cget_string(doc, t, "token", &x->admin_token) == 0 &&
        strlen(x->admin_token) < 16)
        gw_cdoc_error(doc, t,
                      "token: use at least 16 characters (a guessable token is no "
                      "protection)");
    const gw_cnode_t *au = gw_cmap_get(doc, adm, "allow_unauthenticated");
    if (gw_cget_bool(doc, au, "allow_unauthenticated", &x->allow_unauthenticated) != 0 ||
        t != NULL || rc != 0)
        return; /* a token was written (even a wrong one), or an error was reported already */
    char msg[512];
    if (gw_res_admin_exposure(x, msg, sizeof msg) == GW_RES_ADMIN_REFUSED)
        gw_cdoc_error(doc, a != NULL ? a : adm, "%s", msg);
}

/* Another listener on the admin address would fail at start; say it now, with a line. */
static void res_validate(gw_cdoc_t *doc, gw_config_t *cfg)
{
    const gw_res_root_cfg_t *r = gw_res_root_cfg(cfg);
    for (size_t i = 0; r->admin_enabled && i < cfg->nlisteners; i++)
        if (gw_addr_equal(&cfg->listeners[i].addr, &r->admin_addr))
            gw_cdoc_error(doc, NULL, "admin.address %s is also listener '%s''s address",
                          r->admin_address_text, cfg->listeners[i].name);
}

/* see resconfig.h */
const gw_res_upstream_cfg_t *gw_res_upstream_cfg(const gw_upstream_cfg_t *u)
{
    return u->ext[3] != NULL ? u->ext[3] : &upstream_defaults;
}

/* see resconfig.h */
const gw_res_listener_cfg_t *gw_res_listener_cfg(const gw_listener_cfg_t *l)
{
    return l->ext[3] != NULL ? l->ext[3] : &listener_defaults;
}

/* see resconfig.h */
const gw_res_root_cfg_t *gw_res_root_cfg(const gw_config_t *cfg)
{
    return cfg->ext[3] != NULL ? cfg->ext[3] : &root_defaults;
}

static void print_root(FILE *out, const gw_config_t *cfg)
{
    const gw_res_root_cfg_t *r = gw_res_root_cfg(cfg);
    if (!r->admin_enabled) {
        fprintf(out, "# admin: not set (no admin listener)\n");
        return;
    }
    fprintf(out, "admin:\n  address: ");
    gw_config_print_str(out, r->admin_address_text);
    fprintf(out, "\n");
    if (r->admin_token != NULL)
        fprintf(out, "  token: \"<set, not shown>\"\n");
    fprintf(out, "  allow_unauthenticated: %s\n", r->allow_unauthenticated ? "true" : "false");
}

static void print_listener(FILE *out, const gw_listener_cfg_t *l, int in)
{
    const gw_res_listener_cfg_t *x = gw_res_listener_cfg(l);
    if (x->global_rate == 0 && x->client_rate == 0)
        return;
    fprintf(out, "%*srate_limit:\n", in, "");
    if (x->global_rate)
        fprintf(out, "%*sglobal: {rate: %llu, burst: %llu}\n", in + 2, "",
                (unsigned long long)x->global_rate, (unsigned long long)x->global_burst);
    if (x->client_rate)
        fprintf(out, "%*sper_client: {rate: %llu, burst: %llu, max_clients: %llu}\n", in + 2, "",
                (unsigned long long)x->client_rate, (unsigned long long)x->client_burst,
                (unsigned long long)x->max_clients);
}

static void print_upstream(FILE *out, const gw_upstream_cfg_t *u, int in)
{
    gw_lb_cfg_print_upstream(out, u, in);
    const gw_res_upstream_cfg_t *x = gw_res_upstream_cfg(u);
    char a[32], b[32];
    /* 02 printed `retry:` last: these lines continue that block. */
    fprintf(out, "%*sbackoff: %s\n%*sbackoff_max: %s\n", in + 2, "",
            gw_cfmt_duration(x->backoff_ms, a, sizeof a), in + 2, "",
            gw_cfmt_duration(x->backoff_max_ms, b, sizeof b));
    fprintf(out, "%*sbudget_percent: %g\n%*smin_concurrent: %llu\n", in + 2, "", x->budget_percent,
            in + 2, "", (unsigned long long)x->min_concurrent);
    if (!x->breaker_enabled)
        return;
    const gw_breaker_cfg_t *c = &x->breaker;
    fprintf(out, "%*scircuit_breaker:\n", in, "");
    fprintf(out, "%*sconsecutive_failures: %u\n%*sfailure_rate_percent: %g\n", in + 2, "",
            c->consecutive_failures, in + 2, "", c->failure_rate_percent);
    fprintf(out, "%*smin_requests: %u\n%*swindow: %s\n", in + 2, "", c->min_requests, in + 2, "",
            gw_cfmt_duration(c->window_ms, a, sizeof a));
    fprintf(out, "%*sopen_timeout: %s\n%*shalf_open_max: %u\n%*ssuccess_to_close: %u\n", in + 2, "",
            gw_cfmt_duration(c->open_timeout_ms, b, sizeof b), in + 2, "", c->half_open_max, in + 2,
            "", c->success_to_close);
}

static void res_free(gw_config_t *cfg)
{
    gw_res_root_cfg_t *r = cfg->ext[3];
    if (r != NULL) {
        free(r->admin_address_text);
        free(r->admin_token);
        free(r);
        cfg->ext[3] = NULL;
    }
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        free(cfg->listeners[i].ext[3]);
        cfg->listeners[i].ext[3] = NULL;
    }
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        free(cfg->upstreams[i].ext[3]);
        cfg->upstreams[i].ext[3] = NULL;
    }
    gw_lb_cfg_free(cfg); /* 02's parts: upstreams and backends */
}

const gw_config_ext_t gw_res_config_ext = {
    .level = 3,
    .root = res_root,
    .listener = res_listener,
    .upstream = res_upstream,
    .backend = gw_lb_cfg_backend,
    .validate = res_validate,
    .print_root = print_root,
    .print_listener = print_listener,
    .print_upstream = print_upstream,
    .print_backend = gw_lb_cfg_print_backend,
    .free = res_free,
};
