/* ppconf.c - see ppconf.h. */
#include "04-http/ppconf.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "04-http/httpcfg.h"
#include "proxyproto.h"

#define SEC 1000ull
#define HOUR (3600 * SEC)

static const char *const accept_names[] = {"v1", "v2", "any", NULL};
static const unsigned accept_bits[] = {GW_PP_V1, GW_PP_V2, GW_PP_ANY};

static void decode_from(gw_cdoc_t *doc, const gw_cnode_t *seq, gw_pp_listener_cfg_t *p)
{
    if (!seq || !gw_cnode_expect_seq(doc, seq, "from"))
        return;
    if (seq->n == 0) {
        gw_cdoc_error(doc, seq,
                      "from: needs at least one address or CIDR (the proxies that may "
                      "send the header: anyone else could claim any address)");
        return;
    }
    if (!(p->from = calloc(seq->n, sizeof *p->from))) {
        gw_cdoc_oom(doc, seq);
        return;
    }
    for (size_t i = 0; i < seq->n; i++) {
        char *s = NULL;
        if (gw_cget_string(doc, seq->items[i], "from", &s) != 0)
            continue;
        if (gw_cidr_parse(s, &p->from[p->nfrom]) == 0)
            p->nfrom++;
        else
            gw_cdoc_error(doc, seq->items[i],
                          "from: '%s' is not an address or CIDR like 10.0.0.0/8 "
                          "(host bits must be zero)",
                          s);
        free(s);
    }
}

/* see ppconf.h */
const gw_pp_listener_cfg_t *gw_pp_listener_cfg(const gw_listener_cfg_t *l)
{
    const gw_http_listener_cfg_t *x = l->ext[4]; /* also there for tcp listeners with it */
    return x ? x->pp : NULL;
}

/* see ppconf.h */
gw_pp_listener_cfg_t *gw_pp_listener_decode(gw_cdoc_t *doc, const gw_cnode_t *map)
{
    const gw_cnode_t *pp =
        map && map->type == GW_CNODE_MAP ? gw_cmap_get(doc, map, "proxy_protocol") : NULL;
    if (!pp || !gw_cnode_expect_map(doc, pp, "proxy_protocol"))
        return NULL;
    gw_pp_listener_cfg_t *p = calloc(1, sizeof *p);
    if (p == NULL) {
        gw_cdoc_oom(doc, pp);
        return NULL;
    }
    p->accept = GW_PP_ANY;
    p->timeout_ms = 5 * SEC;
    int a = 2; /* any: kept when the key is absent */
    if (gw_cget_enum(doc, gw_cmap_get(doc, pp, "accept"), "accept", accept_names, &a) == 0)
        p->accept = accept_bits[a];
    decode_from(doc, gw_cmap_require(doc, pp, "from"), p);
    gw_cget_duration(doc, gw_cmap_get(doc, pp, "timeout"), "timeout", 1, HOUR, &p->timeout_ms);
    return p;
}

/* see ppconf.h */
void gw_pp_listener_free(gw_pp_listener_cfg_t *p)
{
    if (p == NULL)
        return;
    free(p->from);
    free(p);
}

/* see ppconf.h */
void gw_pp_listener_print(FILE *out, const gw_pp_listener_cfg_t *p, int in)
{
    if (p == NULL)
        return;
    char a[32], buf[64];
    const char *acc = p->accept == GW_PP_V1 ? "v1" : p->accept == GW_PP_V2 ? "v2" : "any";
    fprintf(out, "%*sproxy_protocol: {accept: %s, timeout: %s, from: [", in, "", acc,
            gw_cfmt_duration(p->timeout_ms, a, sizeof a));
    for (size_t i = 0; i < p->nfrom; i++) {
        inet_ntop(p->from[i].family, p->from[i].addr, buf, sizeof buf);
        fprintf(out, "%s\"%s/%u\"", i ? ", " : "", buf, p->from[i].bits);
    }
    fputs("]}\n", out);
}

/* LAB 04: PROXY protocol, who may send the header */

/* see ppconf.h. Anyone can write "PROXY TCP4 <any address> ...": the header is believed
 * only from the load balancers listed, and an empty list is refused at load, never read as
 * "anyone". */
bool gw_pp_from_allowed(const gw_pp_listener_cfg_t *p, const struct sockaddr *sa)
{
    for (size_t i = 0; i < p->nfrom; i++)
        if (gw_cidr_contains(&p->from[i], sa))
            return true;
    return false;
}

/* END LAB */

/* see ppconf.h */
unsigned gw_pp_upstream_decode(gw_cdoc_t *doc, const gw_cnode_t *map)
{
    static const char *const names[] = {"v1", "v2", NULL};
    const gw_cnode_t *v =
        map && map->type == GW_CNODE_MAP ? gw_cmap_get(doc, map, "proxy_protocol") : NULL;
    int i = 0;
    if (!v || gw_cget_enum(doc, v, "proxy_protocol", names, &i) != 0)
        return 0;
    return (unsigned)i + 1;
}

/* see ppconf.h */
void gw_pp_upstream_print(FILE *out, unsigned version, int in)
{
    if (version != 0)
        fprintf(out, "%*sproxy_protocol: v%u\n", in, "", version);
}
