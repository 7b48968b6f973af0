/* hutls.h - the TLS side of an upstream connection (milestone 04, issue 15): an upstream with
 * a `tls:` block (tlsconf.h) speaks TLS to its backends through a gw_tls_stream_t over the
 * connection's socket.
 *
 * Where it sits. hupstream.c owns the connection (uconn_t) and its life: it asks this room
 * for the TLS part before connecting (hp_utls_conn_new: memory, charged to
 * buffers.max_memory), wraps the socket once TCP is connected (hp_utls_conn_start), hears
 * the handshake's outcome (hp_upstream_tls_done, hproxy-int.h) and frees the part with the
 * connection (hp_utls_conn_free). Everything about TLS itself is here: the client context
 * (tlsclient.h), SNI and the name verified (gw_tls_server_name), the session offered and
 * saved for resumption, and the metrics.
 *
 * The handshake is part of connecting. The connection is handed to its exchange (the
 * request head written) only once the handshake completed: the connect timeout covers the
 * handshake, a failed or timed-out handshake is a connect failure (502, retried like one:
 * no byte of the request was even queued, so none can reach a backend whose certificate
 * was refused), and 02's picker hears "connected" only for a verified connection.
 *
 * Resumption: one saved session per backend per worker (hp_bslot_t.tls in the backend
 * object, next to the worker's pool of it), offered by every new connection to that backend and
 * replaced after each full handshake; a failed handshake forgets it (the next connection verifies
 * afresh). A pooled connection keeps its TLS session: one handshake serves all its requests.
 *
 * One loop thread owns a connection; hp_utls_metrics runs on the control thread and reads
 * counters only (metrics.h's single-writer counters).
 *
 * Reloads (issue 17): the series are carried by upstream name (kcount.h, held by reference),
 * each generation having a view of them by upstream position (hp_utls_gen_t); an upstream a
 * reload keeps keeps its counts, one it removes leaves /metrics. A connection takes its
 * upstream's TLS config, its backend's address and its series from the generation its
 * exchange pinned (a handshake runs only while that exchange holds the connection). */
#ifndef GW_HUTLS_H
#define GW_HUTLS_H

#include <stdbool.h>
#include <stddef.h>

#include "02-lb/lb.h"
#include "04-http/kcount.h"
#include "config.h"
#include "metrics.h"
#include "stream.h"

typedef struct hp_utls_s hp_utls_t;           /* per process: the series, by upstream name */
typedef struct hp_utls_gen_s hp_utls_gen_t;   /* per generation: its upstreams' series */
typedef struct hp_utls_conn_s hp_utls_conn_t; /* per connection: one allocation */
struct uconn_s;

/* The upstream TLS metrics of NWORKERS workers, no series yet (before any worker starts).
 * NULL when out of memory. */
hp_utls_t *hp_utls_new(unsigned nworkers);
void hp_utls_free(hp_utls_t *t); /* after every view; NULL is fine */

/* The view of CFG (which must outlive it): each upstream with tls takes the series of its
 * name, an earlier view's when there is one. Control thread. NULL when out of memory. */
hp_utls_gen_t *hp_utls_gen_new(hp_utls_t *t, const gw_config_t *cfg);
void hp_utls_gen_free(hp_utls_t *t, hp_utls_gen_t *v); /* control thread; NULL is fine */

/* The series of upstream UPSTREAM (its position in V's config), NULL without tls. */
gw_kcount_entry_t *hp_utls_series(const hp_utls_gen_t *v, size_t upstream);

/* Writes gw_upstream_tls_handshakes_total{upstream,resumed} (both values laid out from the
 * start) and gw_upstream_tls_handshake_failures_total{upstream,reason} (a series per reason
 * seen), summed over the workers, for the upstreams of view V (the serving generation's).
 * Control thread. */
void hp_utls_metrics(const hp_utls_t *t, const hp_utls_gen_t *v, gw_prom_t *p);

/* Counts, for worker WORKER (its thread only) in upstream series S, a completed handshake
 * (RESUMED or full) / a failure named REASON (a static string: pointer identity tells
 * reasons apart; the 17th distinct reason of a worker and upstream counts as "other").
 * The connection's handshake calls them; tests call them directly. */
void hp_utls_count_handshake(gw_kcount_entry_t *s, unsigned worker, bool resumed);
void hp_utls_count_failure(gw_kcount_entry_t *s, unsigned worker, const char *reason);

/* The TLS part for U, a new connection (not yet connecting) to member M of a pinned
 * generation's table, counted in series S (hp_utls_series of that generation): sets u->tls
 * when M's upstream has tls, else does nothing. 0, or UV_ENOBUFS (buffers.max_memory would
 * be passed) or UV_ENOMEM: the gateway's own shortage (gw_err_local_shortage), u->tls stays
 * NULL. */
int hp_utls_conn_new(struct uconn_s *u, const gw_lb_member_t *m, gw_kcount_entry_t *s);

/* U's socket is connected: sets up the client context and wraps u->sock in the TLS stream
 * (reads to ON_READ), which starts the handshake; u->s and u->out's stream become the TLS
 * stream. Its outcome comes to hp_upstream_tls_done, from the loop. 0, or a UV error (u->s
 * is then still the socket). */
int hp_utls_conn_start(struct uconn_s *u, gw_stream_read_cb on_read);

/* U's connect timer fired while its handshake ran: counted (reason "timeout"). */
void hp_utls_conn_timed_out(struct uconn_s *u);

/* Whether U's reads ended with an EOF that no close_notify announced: a body delimited by
 * the connection's end is then not known to be whole (false for plaintext). */
bool hp_utls_truncated(const struct uconn_s *u);

/* Frees U's TLS part (nothing for plaintext), once U's stream is closed, and gives its
 * memory charge back. */
void hp_utls_conn_free(struct uconn_s *u);

#endif
