/* ppconf.h - the `proxy_protocol:` keys of listeners and upstreams (milestone 04): decoded
 * with the config, errors at their line:column, printed by -T, freed with the config.
 *
 *   listeners:
 *     - name: edge
 *       protocol: http                 # http or tcp
 *       proxy_protocol:
 *         accept: any                  # v1, v2 or any (default): the versions read
 *         from: [10.0.0.0/8]           # required, >= 1: who may send the header
 *         timeout: 5s                  # default 5s, 1ms..1h: the whole header by then
 *   upstreams:
 *     app:
 *       proxy_protocol: v2             # v1 or v2: the header sent on each new connection
 *
 * `from` is its own list, not trusted_proxies: that one says whose HTTP headers we believe,
 * this one who may tell us the client's address at the connection's start; they are often
 * different machines (an L4 load balancer before us, a CDN before it). Owned by 04 because
 * the accept side lives in 04's connection (hproxyproto.c); gw03 and earlier say "needs
 * gw04". */
#ifndef GW_PPCONF_H
#define GW_PPCONF_H

#include <stdint.h>
#include <stdio.h>

#include "04-http/mw_basic.h"
#include "cfgtree.h"
#include "config.h"

typedef struct gw_pp_listener_cfg_s {
    unsigned accept; /* GW_PP_V1, GW_PP_V2 or GW_PP_ANY (proxyproto.h) */
    gw_cidr_t *from; /* [nfrom], nfrom >= 1 */
    size_t nfrom;
    uint64_t timeout_ms;
} gw_pp_listener_cfg_t;

/* The listener's `proxy_protocol` from MAP (the listener's mapping), or NULL when absent or
 * wrong (the error is reported in DOC). */
gw_pp_listener_cfg_t *gw_pp_listener_decode(gw_cdoc_t *doc, const gw_cnode_t *map);
/* Listener L's proxy_protocol (http or tcp), or NULL. */
const gw_pp_listener_cfg_t *gw_pp_listener_cfg(const gw_listener_cfg_t *l);
void gw_pp_listener_free(gw_pp_listener_cfg_t *p);
/* Prints P at indent IN (nothing for NULL). */
void gw_pp_listener_print(FILE *out, const gw_pp_listener_cfg_t *p, int in);
/* Whether SA may send a header to a listener with P (its address in one of `from`). */
bool gw_pp_from_allowed(const gw_pp_listener_cfg_t *p, const struct sockaddr *sa);

/* The upstream's `proxy_protocol` from MAP: 0 (absent), 1 or 2. */
unsigned gw_pp_upstream_decode(gw_cdoc_t *doc, const gw_cnode_t *map);
void gw_pp_upstream_print(FILE *out, unsigned version, int in);

#endif
