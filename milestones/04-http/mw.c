/* mw.c - the table of every middleware (built from mw.h's GW_MW_LIST, so it cannot fall out
 * of step with gw_mw_kind_t) and the small helpers their files share: reading tokens, lists
 * and whole seconds from the config, printing lists back, and adding fields at run time. */
#include "04-http/mw.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"

/* In the order of gw_mw_kind_t: the index is the kind. */
static const gw_mw_ops_t *const table[GW_MW_NKINDS] = {
#define GW_MW_TABLE_(kind, name) [GW_MW_##kind] = &gw_mw_##name##_ops,
    GW_MW_LIST(GW_MW_TABLE_)
#undef GW_MW_TABLE_
};

/* see mw.h */
const gw_mw_ops_t *gw_mw_ops(gw_mw_kind_t kind)
{
    return (size_t)kind < GW_MW_NKINDS ? table[kind] : NULL;
}

/* see mw.h */
bool gw_mw_any_writes_via(const gw_mw_cfg_t *mw, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const gw_mw_ops_t *ops = gw_mw_ops(mw[i].kind);
        if (ops != NULL && ops->writes_via)
            return true;
    }
    return false;
}

/* see mw.h */
const char *gw_mw_kind_name(gw_mw_kind_t kind)
{
    const gw_mw_ops_t *ops = gw_mw_ops(kind);
    return ops != NULL ? ops->name : "?";
}

/* ---- config ------------------------------------------------------------------------------- */

/* see mw.h */
bool gw_mw_is_token(const char *s)
{
    return gw_h1_is_token(s, strlen(s));
}

/* see mw.h (NUL cannot reach us: cfgtree refuses it) */
bool gw_mw_is_value(const char *s)
{
    return strpbrk(s, "\r\n") == NULL;
}

/* see mw.h */
const gw_cnode_t *gw_mw_cfg_key_node(const gw_cnode_t *map, const char *key)
{
    for (size_t i = 0; map && map->type == GW_CNODE_MAP && i < map->n; i++)
        if (!strcmp(map->pairs[i].key->str, key))
            return map->pairs[i].key;
    return NULL;
}

/* see mw.h */
int gw_mw_cfg_token(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, char **out)
{
    char *s = NULL;
    if (!node || gw_cget_string(doc, node, key, &s) != 0)
        return node ? GW_ECONFIG : 0;
    if (!gw_mw_is_token(s)) {
        gw_cdoc_error(doc, node, "%s: '%s' is not a valid header name", key, s);
        free(s);
        return GW_ECONFIG;
    }
    *out = s;
    return 0;
}

/* see mw.h */
void gw_mw_free_strv(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

/* see mw.h */
char **gw_mw_cfg_strv(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, bool tokens,
                      size_t *n)
{
    *n = 0;
    if (!node || !gw_cnode_expect_seq(doc, node, key) || node->n == 0)
        return NULL;
    char **v = calloc(node->n, sizeof(*v));
    if (!v) {
        gw_cdoc_oom(doc, node);
        return NULL;
    }
    for (size_t i = 0; i < node->n; i++) {
        char *s = NULL;
        int rc = tokens ? gw_mw_cfg_token(doc, node->items[i], key, &s)
                        : gw_cget_string(doc, node->items[i], key, &s);
        if (rc == 0 && s)
            v[(*n)++] = s;
    }
    return v;
}

/* see mw.h */
int gw_mw_cfg_seconds(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, uint64_t max_ms,
                      uint64_t *out_s)
{
    uint64_t ms = 0;
    if (!node || gw_cget_duration(doc, node, key, 0, max_ms, &ms) != 0)
        return node ? GW_ECONFIG : 0;
    if (ms % GW_MW_SEC) {
        gw_cdoc_error(doc, node, "%s: %s is not a whole number of seconds", key, node->str);
        return GW_ECONFIG;
    }
    *out_s = ms / GW_MW_SEC;
    return 0;
}

/* see mw.h */
void gw_mw_print_strv(FILE *out, const char *const *v, size_t n)
{
    fputc('[', out);
    for (size_t i = 0; i < n; i++) {
        if (i)
            fputs(", ", out);
        gw_config_print_str(out, v[i]);
    }
    fputc(']', out);
}

/* ---- run time ----------------------------------------------------------------------------- */

/* see mw.h */
int gw_mw_head_status(int rc)
{
    return rc == GW_ELIMIT ? 431 : 500;
}

/* see mw.h */
int gw_mw_add_field(gw_h1_head_t *h, const char *name, const char *value, size_t len)
{
    return gw_h1_head_add(h, name, strlen(name), value, len);
}
