/* mw_rewrite.c - the strip_prefix and rewrite middleware: one path prefix replaced by
 * another (or removed), then normalised again so a rewrite can never climb above the root.
 *
 *   middleware:
 *     - strip_prefix: /api                          # "/api/users" -> "/users"
 *     - rewrite: {prefix: /old, replace: /new}      # "/old/x" -> "/new/x"
 *
 * Two config keys, one behaviour: this file exports two ops tables over one config type
 * (gw_mw_rewrite_cfg_t, replace NULL for strip_prefix). The path logic is
 * gw_mw_rewrite_prefix (mw_basic.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "04-http/chain.h"
#include "04-http/mw.h"
#include "04-http/mw_cfg.h"
#include "error.h"

/* A path prefix: "/" or "/a/b" (no trailing slash), else an error at NODE. */
static int check_prefix(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, const char *s)
{
    size_t n = strlen(s);
    if (s[0] != '/')
        gw_cdoc_error(doc, node, "%s: '%s' must start with '/'", key, s);
    else if (n > 1 && s[n - 1] == '/')
        gw_cdoc_error(doc, node, "%s: '%s' must not end with '/'", key, s);
    else if (!gw_mw_is_value(s) || strpbrk(s, " \t?#"))
        gw_cdoc_error(doc, node, "%s: '%s' must be a plain path (no spaces, '?' or '#')", key, s);
    else
        return 0;
    return GW_ECONFIG;
}

/* strip_prefix: /api (a plain string, not a mapping) */
static void *decode_strip(gw_cdoc_t *doc, const gw_cnode_t *opts)
{
    gw_mw_rewrite_cfg_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        gw_cdoc_oom(doc, opts);
        return NULL;
    }
    if (gw_cget_string(doc, opts, "strip_prefix", &c->prefix) == 0 &&
        check_prefix(doc, opts, "strip_prefix", c->prefix) != 0) {
        free(c->prefix);
        c->prefix = NULL;
    }
    return c;
}

/* rewrite: {prefix, replace} */
static void *decode_rewrite(gw_cdoc_t *doc, const gw_cnode_t *opts)
{
    gw_mw_rewrite_cfg_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        gw_cdoc_oom(doc, opts);
        return NULL;
    }
    if (!gw_cnode_expect_map(doc, opts, "rewrite"))
        return c;
    const gw_cnode_t *p = gw_cmap_require(doc, opts, "prefix");
    const gw_cnode_t *r = gw_cmap_require(doc, opts, "replace");
    if (p && gw_cget_string(doc, p, "prefix", &c->prefix) == 0)
        check_prefix(doc, p, "prefix", c->prefix);
    if (r && gw_cget_string(doc, r, "replace", &c->replace) == 0)
        check_prefix(doc, r, "replace", c->replace);
    return c;
}

static void print_strip(FILE *out, const void *cfg, int in)
{
    (void)in;
    const gw_mw_rewrite_cfg_t *c = cfg;
    fputc(' ', out);
    gw_config_print_str(out, c != NULL && c->prefix ? c->prefix : "/");
    fputc('\n', out);
}

static void print_rewrite(FILE *out, const void *cfg, int in)
{
    (void)in;
    const gw_mw_rewrite_cfg_t *c = cfg;
    fputs(" {prefix: ", out);
    gw_config_print_str(out, c != NULL && c->prefix ? c->prefix : "/");
    fputs(", replace: ", out);
    gw_config_print_str(out, c != NULL && c->replace ? c->replace : "/");
    fputs("}\n", out);
}

static void free_cfg(void *cfg)
{
    gw_mw_rewrite_cfg_t *c = cfg;
    if (c == NULL)
        return;
    free(c->prefix);
    free(c->replace);
    free(c);
}

static int request(const void *cfg, void *state, gw_hx_t *x, gw_h1_head_t *req, gw_h1_head_t *resp)
{
    (void)state;
    (void)x;
    (void)resp;
    const gw_mw_rewrite_cfg_t *c = cfg;
    gw_pathnorm_t res;
    if (gw_mw_rewrite_prefix(req, c->prefix, c->replace, &res) < 0)
        return res.status > 0 ? res.status : 400;
    return 0;
}

const gw_mw_ops_t gw_mw_strip_prefix_ops = {
    .name = "strip_prefix",
    .decode = decode_strip,
    .print = print_strip,
    .free = free_cfg,
    .request = request,
};

const gw_mw_ops_t gw_mw_rewrite_ops = {
    .name = "rewrite",
    .decode = decode_rewrite,
    .print = print_rewrite,
    .free = free_cfg,
    .request = request,
};
