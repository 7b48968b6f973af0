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
 * Resumption: one saved session per backend per worker (hp_backend_t.tls, next to the
 * backend's pool), offered by every new connection to that backend and replaced after each
 * full handshake; a failed handshake forgets it (the next connection verifies afresh). A
 * pooled connection keeps its TLS session: one handshake serves all its requests.
 *
 * One loop thread owns a connection; hp_utls_metrics runs on the control thread and reads
 * counters only (metrics.h's single-writer counters). */
#ifndef GW_HUTLS_H
#define GW_HUTLS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "metrics.h"
#include "stream.h"

typedef struct hp_utls_s hp_utls_t;           /* per process: metrics slots */
typedef struct hp_utls_conn_s hp_utls_conn_t; /* per connection: one allocation */
struct uconn_s;

/* Lays out the metrics of CFG's upstreams with tls for NWORKERS workers (before any worker
 * starts; CFG outlives it). NULL when out of memory. */
hp_utls_t *hp_utls_new(const gw_config_t *cfg, unsigned nworkers);
void hp_utls_free(hp_utls_t *t); /* NULL is fine */

/* Writes gw_upstream_tls_handshakes_total{upstream,resumed} (both values laid out from the
 * start) and gw_upstream_tls_handshake_failures_total{upstream,reason} (a series per reason
 * seen), summed over the workers. Control thread. */
void hp_utls_metrics(const hp_utls_t *t, gw_prom_t *p);

/* Counts, for worker WORKER (its thread only) and upstream UPSTREAM (with tls), a completed
 * handshake (RESUMED or full) / a failure named REASON (a static string: pointer identity
 * tells reasons apart; the 17th distinct reason of a worker and upstream counts as "other").
 * The connection's handshake calls them; tests call them directly. */
void hp_utls_count_handshake(hp_utls_t *t, unsigned worker, size_t upstream, bool resumed);
void hp_utls_count_failure(hp_utls_t *t, unsigned worker, size_t upstream, const char *reason);

/* The TLS part for U, a new connection (not yet connecting) to backend BACKEND of upstream
 * UPSTREAM (indexes in the config): sets u->tls when that upstream has tls, else does
 * nothing. 0, or UV_ENOBUFS (buffers.max_memory would be passed) or UV_ENOMEM: the
 * gateway's own shortage (gw_err_local_shortage), u->tls stays NULL. */
int hp_utls_conn_new(struct uconn_s *u, size_t upstream, size_t backend);

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
