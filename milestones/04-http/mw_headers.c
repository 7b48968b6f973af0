/* mw_headers.c - the headers middleware: fields removed, set and added on the request
 * (before it goes upstream) and on the response (before it goes to the client).
 *
 *   middleware:
 *     - headers:
 *         request:  {set: {X-A: "1"}, add: {X-B: "2"}, remove: [X-C]}
 *         response: {set: {...}, add: {...}, remove: [...]}
 *
 * The rules of one direction also drop those names from that direction's trailers
 * (gw_chain_trailers): a trailer must not bring back a field the rules removed or set. The
 * rule logic is gw_mw_header_rules (mw_basic.c). */
#include <stdio.h>
#include <stdlib.h>

#include "04-http/chain.h"
#include "04-http/mw.h"
#include "04-http/mw_cfg.h"

/* ---- config ------------------------------------------------------------------------------- */

/* set/add: {Name: value, ...} */
static gw_mw_field_t *decode_fields(gw_cdoc_t *doc, const gw_cnode_t *map, const char *key,
                                    size_t *n)
{
    *n = 0;
    if (!map || !gw_cnode_expect_map(doc, map, key) || map->n == 0)
        return NULL;
    gw_mw_field_t *f = calloc(map->n, sizeof(*f));
    if (!f) {
        gw_cdoc_oom(doc, map);
        return NULL;
    }
    for (size_t i = 0; i < map->n; i++) {
        gw_cpair_t *p = &map->pairs[i];
        char *name = NULL, *value = NULL;
        p->used = true;
        if (gw_mw_cfg_token(doc, p->key, key, &name) == 0 &&
            gw_cget_string(doc, p->value, name, &value) == 0 && !gw_mw_is_value(value))
            gw_cdoc_error(doc, p->value, "%s: the value of %s must not hold CR or LF", key, name);
        else if (name && value) {
            f[*n].name = name;
            f[(*n)++].value = value;
            continue;
        }
        free(name);
        free(value);
    }
    return f;
}

/* request/response: {set, add, remove} */
static void decode_rules(gw_cdoc_t *doc, const gw_cnode_t *map, const char *key,
                         gw_mw_header_rules_t *r)
{
    if (!map || !gw_cnode_expect_map(doc, map, key))
        return;
    r->set = decode_fields(doc, gw_cmap_get(doc, map, "set"), "set", &r->nset);
    r->add = decode_fields(doc, gw_cmap_get(doc, map, "add"), "add", &r->nadd);
    r->remove = (const char *const *)gw_mw_cfg_strv(doc, gw_cmap_get(doc, map, "remove"), "remove",
                                                    true, &r->nremove);
}

static void *decode(gw_cdoc_t *doc, const gw_cnode_t *opts)
{
    gw_mw_headers_cfg_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        gw_cdoc_oom(doc, opts);
        return NULL;
    }
    if (!gw_cnode_expect_map(doc, opts, "headers"))
        return c;
    const gw_cnode_t *rq = gw_cmap_get(doc, opts, "request");
    const gw_cnode_t *rs = gw_cmap_get(doc, opts, "response");
    decode_rules(doc, rq, "request", &c->request);
    decode_rules(doc, rs, "response", &c->response);
    if (!rq && !rs)
        gw_cdoc_error(doc, opts, "headers needs `request`, `response` or both");
    return c;
}

static void print_fields(FILE *out, const char *key, const gw_mw_field_t *f, size_t n)
{
    fprintf(out, "%s: {", key);
    for (size_t i = 0; i < n; i++) {
        fputs(i ? ", " : "", out);
        gw_config_print_str(out, f[i].name);
        fputs(": ", out);
        gw_config_print_str(out, f[i].value);
    }
    fputc('}', out);
}

static void print_rules(FILE *out, int in, const char *key, const gw_mw_header_rules_t *r)
{
    fprintf(out, "%*s%s: {", in, "", key);
    print_fields(out, "set", r->set, r->nset);
    fputs(", ", out);
    print_fields(out, "add", r->add, r->nadd);
    fputs(", remove: ", out);
    gw_mw_print_strv(out, r->remove, r->nremove);
    fputs("}\n", out);
}

/* Block style, under the "- headers:" line. */
static void print(FILE *out, const void *cfg, int in)
{
    static const gw_mw_headers_cfg_t none;
    const gw_mw_headers_cfg_t *c = cfg != NULL ? cfg : &none;
    fputc('\n', out);
    print_rules(out, in + 4, "request", &c->request);
    print_rules(out, in + 4, "response", &c->response);
}

static void free_fields(const gw_mw_field_t *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)f[i].name);
        free((char *)f[i].value);
    }
    free((gw_mw_field_t *)f);
}

static void free_rules(gw_mw_header_rules_t *r)
{
    free_fields(r->set, r->nset);
    free_fields(r->add, r->nadd);
    gw_mw_free_strv((char **)r->remove, r->nremove);
}

static void free_cfg(void *cfg)
{
    gw_mw_headers_cfg_t *c = cfg;
    if (c == NULL)
        return;
    free_rules(&c->request);
    free_rules(&c->response);
    free(c);
}

/* ---- run time ----------------------------------------------------------------------------- */

static int request(const void *cfg, void *state, gw_hx_t *x, gw_h1_head_t *req, gw_h1_head_t *resp)
{
    (void)state;
    (void)x;
    (void)resp;
    const gw_mw_headers_cfg_t *c = cfg;
    int rc = gw_mw_header_rules(req, &c->request);
    return rc == 0 ? 0 : gw_mw_head_status(rc);
}

static void response(const void *cfg, void *state, const gw_hx_t *x, const gw_h1_head_t *req,
                     gw_h1_head_t *resp)
{
    (void)state;
    (void)x;
    (void)req;
    const gw_mw_headers_cfg_t *c = cfg;
    (void)gw_mw_header_rules(resp, &c->response);
}

/* The rules of the direction go to gw_trailers_filter (the chain passes them on). */
static size_t trailers(const void *cfg, gw_h1_head_t *t, bool response,
                       const gw_mw_header_rules_t **rules)
{
    (void)t;
    const gw_mw_headers_cfg_t *c = cfg;
    *rules = response ? &c->response : &c->request;
    return 0;
}

const gw_mw_ops_t gw_mw_headers_ops = {
    .name = "headers",
    .decode = decode,
    .print = print,
    .free = free_cfg,
    .request = request,
    .response = response,
    .trailers = trailers,
};
