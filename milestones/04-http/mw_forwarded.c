/* mw_forwarded.c - the forwarded middleware: X-Forwarded-For/-Proto/-Host, Forwarded
 * (RFC 7239) and Via on the request, extending the incoming chains only from the listener's
 * trusted_proxies.
 *
 *   middleware:
 *     - forwarded: {}         # no options; trust comes from the listener's trusted_proxies
 *
 * The header logic (LAB 04: forwarded headers) is gw_mw_forwarded in mw_basic.c; this file
 * hands it the connection's peer. Without this middleware the engine adds Via itself
 * (hp_on_request_head, hexchange.c). */
#include <stdio.h>

#include "04-http/chain.h"
#include "04-http/mw.h"

static void *decode(gw_cdoc_t *doc, const gw_cnode_t *opts)
{
    gw_cnode_expect_map(doc, opts, "forwarded");
    return NULL;
}

static void print(FILE *out, const void *cfg, int in)
{
    (void)cfg;
    (void)in;
    fputs(" {}\n", out);
}

static int request(const void *cfg, void *state, gw_hx_t *x, gw_h1_head_t *req, gw_h1_head_t *resp)
{
    (void)cfg;
    (void)state;
    (void)resp;
    gw_mw_peer_t peer = {.addr = x->client, .tls = x->tls};
    if (x->lcfg != NULL) {
        peer.trusted = x->lcfg->trusted;
        peer.ntrusted = x->lcfg->ntrusted;
    }
    if (peer.addr == NULL)
        return 500;
    int rc = gw_mw_forwarded(req, &peer);
    return rc == 0 ? 0 : gw_mw_head_status(rc);
}

const gw_mw_ops_t gw_mw_forwarded_ops = {
    .name = "forwarded",
    .writes_via = true,
    .decode = decode,
    .print = print,
    .request = request,
};
