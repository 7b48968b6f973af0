/* mw_forwarded.c - the forwarded middleware: X-Forwarded-For/-Proto/-Host, Forwarded
 * (RFC 7239) and Via on the request, extending the incoming chains only from the listener's
 * trusted_proxies; X-Real-IP on request.
 *
 *   middleware:
 *     - forwarded: {}                  # the default: the loader puts this first on every
 *                                      # route that does not list it (issue 14)
 *     - forwarded: {x_real_ip: true}   # X-Real-IP too, for nginx-style backends
 *     - forwarded: false               # the client's fields pass untouched; only Via
 *
 * Trust comes from the listener's trusted_proxies. The header logic (LAB 04: forwarded
 * headers) is gw_mw_forwarded and gw_mw_real_ip in mw_basic.c; this file hands them the
 * connection's peer. This middleware owns the request's Via field on every route it is on,
 * `false` included (writes_via): a proxy must send one (RFC 9110 7.6.3). The engine adds Via
 * itself only on a route without it, which a loaded config never has
 * (hp_on_request_head, hexchange.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "04-http/chain.h"
#include "04-http/mw.h"
#include "04-http/mw_cfg.h"

static void *decode(gw_cdoc_t *doc, const gw_cnode_t *opts)
{
    gw_mw_forwarded_cfg_t *m = calloc(1, sizeof *m);
    if (m == NULL) {
        gw_cdoc_oom(doc, opts);
        return NULL;
    }
    if (opts == NULL) /* the loader's default for a route that does not list it */
        return m;
    if (opts->type == GW_CNODE_SCALAR && !opts->quoted &&
        (!strcmp(opts->str, "false") || !strcmp(opts->str, "true"))) {
        m->off = opts->str[0] == 'f';
        return m;
    }
    if (opts->type != GW_CNODE_MAP) {
        gw_cnode_silence(opts);
        gw_cdoc_error(doc, opts, "forwarded: use a mapping ({} or {x_real_ip: true}) or false");
        return m;
    }
    gw_cget_bool(doc, gw_cmap_get(doc, opts, "x_real_ip"), "x_real_ip", &m->x_real_ip);
    return m;
}

static void print(FILE *out, const void *cfg, int in)
{
    (void)in;
    const gw_mw_forwarded_cfg_t *m = cfg;
    if (m != NULL && m->off)
        fputs(" false\n", out);
    else
        fprintf(out, " {x_real_ip: %s}\n", m != NULL && m->x_real_ip ? "true" : "false");
}

static void free_cfg(void *cfg)
{
    free(cfg);
}

static int request(const void *cfg, void *state, gw_hx_t *x, gw_h1_head_t *req, gw_h1_head_t *resp)
{
    (void)state;
    (void)resp;
    const gw_mw_forwarded_cfg_t *m = cfg;
    if (m != NULL && m->off) {
        int rc = gw_h1_head_add(req, "Via", 3, "1.1 gw", 6);
        return rc == 0 ? 0 : gw_mw_head_status(rc);
    }
    gw_mw_peer_t peer = {.addr = x->client, .tls = x->tls};
    if (x->lcfg != NULL) {
        peer.trusted = x->lcfg->trusted;
        peer.ntrusted = x->lcfg->ntrusted;
    }
    if (peer.addr == NULL)
        return 500;
    /* X-Real-IP first: it reads the X-Forwarded-For chain as it came */
    int rc = gw_mw_real_ip(req, &peer, m != NULL && m->x_real_ip);
    if (rc == 0)
        rc = gw_mw_forwarded(req, &peer);
    return rc == 0 ? 0 : gw_mw_head_status(rc);
}

const gw_mw_ops_t gw_mw_forwarded_ops = {
    .name = "forwarded",
    .writes_via = true,
    .decode = decode,
    .print = print,
    .free = free_cfg,
    .request = request,
};
