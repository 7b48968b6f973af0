/* hproxyproto.h - the PROXY protocol on the HTTP engine's client connections (milestone 04):
 * listeners with `proxy_protocol` (ppconf.h) read the header a load balancer puts in front
 * of the connection before anything else, and the address it carries becomes the client's.
 *
 * The order on such a connection (hproxy.c's accept, then this file):
 *   accept -> max_connections -> the peer in `from`? (else refused, reset, counted: nothing
 *   was read) -> the header, within `timeout`, at most GW_PP_MAX bytes (common/proxyproto.h
 *   reads it) -> the carried address replaces hconn_t.peer -> the per-client admit hook (03's
 *   rate limits) on that address -> TLS (the header precedes the handshake) -> the first
 *   request. The bytes that came after the header in the same read are the client's
 *   stream (a ClientHello, a request) and are handed on as if just read.
 *
 * Memory: while the header is incomplete after a first read (a peer that sends it in
 * pieces), the connection holds one buffer of GW_PP_MAX bytes, charged to
 * buffers.max_memory; nothing otherwise. The usual case (the header and the first bytes in
 * one read) parses in place.
 *
 * Metrics: gw_proxy_protocol_total{listener, result}: result is "accepted" (addresses taken),
 * "accepted_local" (LOCAL, UNKNOWN, or a family without addresses: the socket's kept),
 * "refused_from", "timeout", "closed" (the peer left before the header ended),
 * "no_buffers", or one of gw_pp_strerror's 15 names: a fixed set. */
#ifndef GW_HPROXYPROTO_H
#define GW_HPROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "metrics.h"
#include "proxyproto.h"

typedef struct hp_pp_s hp_pp_t;
struct hconn_s;

/* ---- the pure part: a header across reads ------------------------------------------------ */

/* The bytes of a header that did not come whole in one read. */
typedef struct hp_pp_wait_s {
    size_t used; /* bytes in buf: all of them header (each earlier answer was NEED_MORE) */
    size_t need; /* at least this many more before the header can be whole (gw_pp_parse's) */
    uint8_t buf[GW_PP_MAX];
} hp_pp_wait_t;

/* Feeds the N bytes of one read (DATA) to a header whose earlier bytes W holds (W->used 0:
 * none yet; zero W to start). ACCEPT as gw_pp_parse's. Returns gw_pp_parse's answer for all
 * the bytes so far: > 0, the header is whole and *REST is where the client's own bytes
 * start in DATA (DATA[*REST..N), possibly none); 0, more is needed (what DATA brought is in
 * W; a read shorter than W->need is kept without parsing: it cannot complete the header);
 * < 0, an error (R->err_pos counts from the header's first byte). R is filled as
 * gw_pp_parse fills it; on 0 from a skipped parse, R->need is W->need. */
int hp_pp_feed(hp_pp_wait_t *w, const uint8_t *data, size_t n, unsigned accept, gw_pp_result_t *r,
               size_t *rest);

/* The counters kept by listener name (kcount.h) for WORKERS workers, and the tcp picker's copy:
 * made whatever CFG says (a reload may add proxy_protocol). NULL with *ERR < 0 on failure. */
hp_pp_t *hp_pp_prepare(const gw_config_t *cfg, unsigned workers, int *err);
void hp_pp_free(hp_pp_t *pp);
/* Control thread, at a generation's build: the counters of every name CFG gives a listener
 * with proxy_protocol (kept from before when the name was seen: carried by name). 0 or
 * GW_ENOMEM. */
int hp_pp_gen_names(hp_pp_t *pp, const gw_config_t *cfg);
/* gw_proxy_protocol_total, for the listeners of generation G (the one served now: a
 * removed listener leaves the page). Control thread. PP may be NULL (the family, no
 * samples). */
struct gw_gen_s;
void hp_pp_metrics(const hp_pp_t *pp, const struct gw_gen_s *g, gw_prom_t *p);

/* C was accepted on a listener with proxy_protocol and passed max_connections: refuses it
 * (false: counted; the caller resets it) when its peer is not in `from`, else starts
 * reading the header (C waits in the worker's IDLE_PROXY_HEADER list of its timeout);
 * false too when no such list could be made (out of memory). */
bool hp_pp_accept(struct hconn_s *c);
/* C's header did not come within the listener's timeout: counted (the caller closes C). */
void hp_pp_timeout(struct hconn_s *c);
/* Frees what C holds for an incomplete header. In C's close path. */
void hp_pp_conn_free(struct hconn_s *c);

/* What follows the header, for hproxy.c: C's address is final; admit it, set up TLS and
 * start waiting for a request. False: C was closed. */
bool hp_client_start(struct hconn_s *c);

/* ---- the upstream side ------------------------------------------------------------------ */

/* Tcp listeners: puts in LAYERS[1] a copy of the picker there with 01's header hook (on a
 * tcp listener with proxy_protocol in its newest config, the header read and checked as on
 * an http listener, counted in the same gw_proxy_protocol_total) and its hello hook (the
 * header written first to an upstream with proxy_protocol, the client's address carried or
 * real, the listener's local address). Whatever the startup config says, so a reload may
 * add either. PP (hp_pp_prepare's; NULL: nothing to do) owns the copy. */
void hp_pp_tcp_picker(hp_pp_t *pp, void **layers);

struct uconn_s;
/* U (just connected, nothing written yet, TLS not started) belongs to an upstream with
 * proxy_protocol VERSION (1 or 2): queues the header for C's client (its address, carried
 * or real) and the listener's local address as U's first bytes. 0 or a UV error. */
int hp_pp_send(struct uconn_s *u, const struct hconn_s *c, unsigned version);

#endif
