/* disccfg.c - see disccfg.h. */
#include "disccfg.h"

#include <stdlib.h>

#include "04-http/httpcfg.h"

#define SEC 1000u

static const gw_disc_root_cfg_t root_defaults = {
    .watch_file = false,
    .quiet_period_ms = GW_DISC_QUIET_DEFAULT_MS,
};

/* see disccfg.h */
const gw_disc_root_cfg_t *gw_disc_root_cfg(const gw_config_t *cfg)
{
    return cfg->ext[5] != NULL ? cfg->ext[5] : &root_defaults;
}

/* reload: {watch_file, quiet_period}. 04's root keys first (admin is 03's), as every level
 * does: each level decodes only its own part. */
static void disc_root(gw_cdoc_t *doc, const gw_cnode_t *map, gw_config_t *cfg)
{
    if (gw_http_config_ext.root)
        gw_http_config_ext.root(doc, map, cfg);
    const gw_cnode_t *r = gw_cmap_get(doc, map, "reload");
    if (r == NULL || !gw_cnode_expect_map(doc, r, "reload"))
        return;
    gw_disc_root_cfg_t *x = malloc(sizeof *x);
    if (x == NULL) {
        gw_cdoc_oom(doc, r);
        return;
    }
    *x = root_defaults;
    cfg->ext[5] = x;
    gw_cget_bool(doc, gw_cmap_get(doc, r, "watch_file"), "watch_file", &x->watch_file);
    /* Below 10ms a save in two writes would be read half-written; above 10 minutes nobody
     * would connect the reload with the edit. */
    gw_cget_duration(doc, gw_cmap_get(doc, r, "quiet_period"), "quiet_period", 10, 600 * SEC,
                     &x->quiet_period_ms);
}

/* 04's root keys, then ours: -T prints every default, so the block is always there. */
static void print_root(FILE *out, const gw_config_t *cfg)
{
    if (gw_http_config_ext.print_root)
        gw_http_config_ext.print_root(out, cfg);
    const gw_disc_root_cfg_t *x = gw_disc_root_cfg(cfg);
    char q[32];
    fprintf(out, "reload:\n  watch_file: %s\n  quiet_period: %s\n",
            x->watch_file ? "true" : "false", gw_cfmt_duration(x->quiet_period_ms, q, sizeof q));
}

static void disc_free(gw_config_t *cfg)
{
    free(cfg->ext[5]);
    cfg->ext[5] = NULL;
    if (gw_http_config_ext.free)
        gw_http_config_ext.free(cfg);
}

/* The other hooks are 04's as they stand. They are wrappers, not copies of 04's pointers:
 * a const initializer cannot read another object's fields. */
static void disc_listener(gw_cdoc_t *doc, const gw_cnode_t *map, gw_config_t *cfg,
                          gw_listener_cfg_t *l)
{
    if (gw_http_config_ext.listener)
        gw_http_config_ext.listener(doc, map, cfg, l);
}

static void disc_upstream(gw_cdoc_t *doc, const gw_cnode_t *map, gw_config_t *cfg,
                          gw_upstream_cfg_t *u)
{
    if (gw_http_config_ext.upstream)
        gw_http_config_ext.upstream(doc, map, cfg, u);
}

static void disc_backend(gw_cdoc_t *doc, const gw_cnode_t *map, gw_config_t *cfg,
                         gw_upstream_cfg_t *u, gw_backend_cfg_t *b)
{
    if (gw_http_config_ext.backend)
        gw_http_config_ext.backend(doc, map, cfg, u, b);
}

static void disc_validate(gw_cdoc_t *doc, gw_config_t *cfg)
{
    if (gw_http_config_ext.validate)
        gw_http_config_ext.validate(doc, cfg);
}

static void print_listener(FILE *out, const gw_listener_cfg_t *l, int in)
{
    if (gw_http_config_ext.print_listener)
        gw_http_config_ext.print_listener(out, l, in);
}

static void print_upstream(FILE *out, const gw_upstream_cfg_t *u, int in)
{
    if (gw_http_config_ext.print_upstream)
        gw_http_config_ext.print_upstream(out, u, in);
}

static void print_backend(FILE *out, const gw_backend_cfg_t *b, int in)
{
    if (gw_http_config_ext.print_backend)
        gw_http_config_ext.print_backend(out, b, in);
}

/* see disccfg.h */
const gw_config_ext_t gw_disc_config_ext = {
    .level = 5,
    .root = disc_root,
    .listener = disc_listener,
    .upstream = disc_upstream,
    .backend = disc_backend,
    .validate = disc_validate,
    .print_root = print_root,
    .print_listener = print_listener,
    .print_upstream = print_upstream,
    .print_backend = print_backend,
    .free = disc_free,
};
