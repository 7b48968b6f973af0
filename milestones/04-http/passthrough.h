/* passthrough.h - TLS passthrough by SNI on tcp listeners: the upstream is chosen from the
 * server name of the client's ClientHello (sni.h), read before any backend is picked and
 * without terminating TLS; the bytes then go to the backend unchanged, as nginx's
 * ssl_preread and HAProxy's req.ssl_sni do.
 *
 *   listeners:
 *     - name: tls
 *       address: 0.0.0.0:443
 *       protocol: tcp                   # tcp listeners only
 *       tls_passthrough:                # instead of `upstream:`
 *         routes:                       # required, at least one
 *           - {sni: api.example.com, upstream: api}
 *           - {sni: "*.example.com", upstream: web}   # one or more labels before it
 *         default: web                  # no name, or a name no route has; absent: closed
 *         timeout: 5s                   # the whole hello must arrive within it (1ms..1h)
 *
 * How it hooks in: 01's picker interface has a preread hook (tcp_proxy.h). 04 wraps the
 * picker that 02 and 03 built (layer 1) in one whose preread reads the SNI and whose pick,
 * on a passthrough listener, asks 02 for a backend of the upstream the name chose
 * (gw_lb_pick_upstream): health, balancers, retries and 03's breakers work as for any tcp
 * listener. 01's lab is untouched. The wrapper is in place whatever the startup config
 * has (a reload may add a passthrough listener); other listeners' picks go straight to the
 * picker below, one call deeper.
 *
 * Matching, as the HTTP router's hosts (router.h): an exact name beats a wildcard, a longer
 * wildcard suffix beats a shorter one, and "*.example.com" matches a.example.com and
 * a.b.example.com, never example.com; names are compared in lower case.
 *
 * Outcomes, each counted in gw_tls_passthrough_total{listener,result}:
 *   routed     a route's name matched              -> its upstream
 *   default    a name no route has                 -> default (closed when there is none:
 *   no_sni     a valid hello without a name (or an    no_route)
 *              IP literal)                         -> default, or closed
 *   no_route   a name no route has, no default     -> closed
 *   malformed  not TLS (plaintext, SSLv2), a broken hello, or FIN before it was whole
 *   too_big    a record over 16 KiB or over one buffer chunk, a hello in several records
 *   timeout    the hello was not whole within `timeout`
 * A refused client is closed without an answer (there is nothing to answer in: no TLS). */
#ifndef GW_PASSTHROUGH_H
#define GW_PASSTHROUGH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "01-tcp/tcp_proxy.h"
#include "04-http/sni.h"
#include "config.h"

typedef struct gw_passthrough_route_s {
    char *sni;             /* lower case: "api.example.com" or "*.example.com" */
    char *upstream;        /* as written */
    size_t upstream_index; /* into gw_config_t.upstreams */
} gw_passthrough_route_t;

typedef struct gw_passthrough_cfg_s {
    gw_passthrough_route_t *routes;
    size_t nroutes;
    char *default_upstream; /* NULL: none */
    size_t default_index;
    uint64_t timeout_ms; /* default 5s */
} gw_passthrough_cfg_t;

typedef enum {
    GW_PT_ROUTED,
    GW_PT_DEFAULT,
    GW_PT_NO_SNI,
    GW_PT_NO_ROUTE,
    GW_PT_MALFORMED,
    GW_PT_TOO_BIG,
    GW_PT_TIMEOUT,
    GW_PT_NRESULTS
} gw_pt_result_t;

/* The passthrough part of listener L; NULL when L is not a tcp listener with
 * tls_passthrough. */
const gw_passthrough_cfg_t *gw_passthrough_cfg(const gw_listener_cfg_t *l);

/* Config hooks, called by httpcfg.c for every listener: decodes `tls_passthrough` of MAP
 * (an error on an http listener, with `upstream:`, with unknown upstreams or bad names) and
 * returns it, NULL without (httpcfg.c keeps it in 04's part of the listener, next to `tls`);
 * prints it for -T; frees it (NULL is fine). */
gw_passthrough_cfg_t *gw_passthrough_cfg_decode(gw_cdoc_t *doc, const gw_cnode_t *map,
                                                gw_config_t *cfg, gw_listener_cfg_t *l);
void gw_passthrough_cfg_print(FILE *out, const gw_listener_cfg_t *l, int indent);
void gw_passthrough_cfg_free(gw_passthrough_cfg_t *pc);

/* The route NAME[0..LEN) (lower case) takes: an index into PC's routes, or -1. */
long gw_passthrough_match(const gw_passthrough_cfg_t *pc, const char *name, size_t len);

/* What the preread decides (pure): ANSWER is the reader's (sni.h) on the bytes so far,
 * with S when FOUND; EV why it is asked (tcp_proxy.h: DATA, or EOF, TIMEOUT, FULL when no
 * more will come). Returns GW_PT_NRESULTS to read more, or the outcome, with *UPSTREAM the
 * upstream index to connect to, or -1: close the client. */
gw_pt_result_t gw_passthrough_decide(const gw_passthrough_cfg_t *pc, gw_sni_result_t answer,
                                     const gw_sni_t *s, gw_tcp_preread_event_t ev, long *upstream);

/* "routed", "default", "no_sni", "no_route", "malformed", "too_big", "timeout". */
const char *gw_pt_result_name(gw_pt_result_t r);

/* The runtime: wraps the picker in LAYERS[1] (02's, with 03's hooks) in the passthrough
 * picker, whatever CFG says (a reload may add a tls_passthrough listener; the others go
 * straight to the picker below), and returns its state (free it with gw_passthrough_free
 * after the runtime ends): counters kept by listener name (kcount.h) for CFG->workers workers.
 * NULL with *ERR 0 when LAYERS[1] is NULL, NULL with *ERR < 0 when out of memory.
 * LAYERS[2] must be 02's state. */
typedef struct gw_passthrough_s gw_passthrough_t;
gw_passthrough_t *gw_passthrough_prepare(const gw_config_t *cfg, void **layers, int *err);
void gw_passthrough_free(gw_passthrough_t *pt);
/* Control thread, at a generation's build: the counters of every name CFG gives a listener
 * with tls_passthrough (found again when a name was seen before: carried by name). 0 or
 * GW_ENOMEM. PT NULL: nothing. */
int gw_passthrough_gen_names(gw_passthrough_t *pt, const gw_config_t *cfg);

/* Writes gw_tls_passthrough_total for the listeners of generation G (the one served now),
 * by name (control thread, during a scrape); nothing when PT is NULL or no listener of G
 * has tls_passthrough. */
struct gw_prom_s;
struct gw_gen_s;
void gw_passthrough_metrics(const gw_passthrough_t *pt, const struct gw_gen_s *g,
                            struct gw_prom_s *p);

#endif
