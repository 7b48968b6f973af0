/* htls.h - the TLS side of a client connection (milestone 04): TLS termination on http
 * listeners with `tls:` (tlsconf.h), from accept to the end of the handshake, and what the
 * exchange reads of it afterwards (access log fields, mTLS headers).
 *
 * Per listener and generation, a credential (hp_tls_cred_t), made by 04's gen_build: the
 * listener's loaded `tls` config (certificates and keys, read again with each config a
 * reload loads), ONE session cache shared by every worker (tlscache.h: SO_REUSEPORT sends a
 * resuming client to any worker; carried to the next generation while the listener keeps
 * its name and cache size) and the counters of its listener's name (kcount.h: kept by
 * name). A credential is refcounted: its generation holds one reference and every TLS
 * connection that handshook with it one more until the connection is freed, so a reload
 * that frees a generation never frees the keys, chain or cache an open connection's engine
 * points into (docs/plan-issue17.md, section 6, item 1). The last reference goes on any
 * thread (a worker's, when its connection outlived the generation).
 *
 * Per connection, one allocation (hp_tls_accept): the BearSSL server context, our server
 * part (certificate choice by SNI, mTLS capture: tlsserver.h), the connection's view of the
 * cache (resumed or full), the TLS stream (common/tls_stream.h) over the connection's
 * gw_tcp_stream_t, and the engine's BR_SSL_BUFSIZE_BIDI buffer: about 37 KiB, charged to
 * buffers.max_memory (gw_bufpool_reserve) for as long as the connection lives. hconn_t.s
 * then points at the TLS stream; everything the engine does with the client goes through
 * it, so the HTTP code does not know whether the bytes were encrypted.
 *
 * The handshake waits in the worker's idle list of kind IDLE_HANDSHAKE for its
 * handshake_timeout (the idle-list pattern: one timer per list), then moves to the
 * IDLE_FRESH list of its request_head_timeout (a request head is awaited). mTLS and resumption:
 * BearSSL resumes without asking for a client certificate and the cached session holds no identity,
 * so a listener with client_auth has no session cache (NOTES.md "TLS termination").
 *
 * Names: hp_tls_* cross rooms of the engine (hproxy-int.h's convention); gw_htls_* are the
 * pure parts, tested on their own (tests/test_htls.c). */
#ifndef GW_HTLS_H
#define GW_HTLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "04-http/chain.h"
#include "04-http/h1.h"
#include "04-http/tlsconf.h"
#include "config.h"
#include "metrics.h"

typedef struct hp_tls_s hp_tls_t;
typedef struct hp_tls_cred_s hp_tls_cred_t;
typedef struct hp_tls_gen_s hp_tls_gen_t;
struct hconn_s;
struct gw_gen_s;

/* ---- per process (control thread) ------------------------------------------------------- */

/* 04's TLS state for the process's life: the counters by listener name for WORKERS workers,
 * and the tcp picker's copy. NULL when out of memory. */
hp_tls_t *hp_tls_new(unsigned workers);
/* After every worker stopped and every generation was freed. NULL is fine. */
void hp_tls_free(hp_tls_t *t);
/* tcp listeners with `tls`: wraps the picker in LAYERS[1] (01's interface, tcp_proxy.h) in
 * one whose wrap hook puts a TLS stream over each client of a tcp listener that has tls in
 * the generation published at accept; 01 connects to a backend only after the handshake
 * (handshake_timeout: closed and counted "timeout"). Installed whatever the startup config
 * says, so a reload may add such a listener. After every other layer-1 wrapper
 * (passthrough). Nothing when LAYERS[1] is NULL. */
void hp_tls_tcp_picker(hp_tls_t *t, void **layers);

/* ---- per generation (control thread; release: any thread) -------------------------------- */

/* The credential of listener L (which has `tls`) for a new generation: holds L's tls config,
 * takes the session cache of PREV's credential of the same listener name when its size is
 * the same (else makes one: logged), and the counters of L's name. One reference (the
 * generation's). NULL with *ERR on failure. */
hp_tls_cred_t *hp_tls_cred_new(hp_tls_t *t, const gw_listener_cfg_t *l, const hp_tls_gen_t *prev,
                               int *err);
/* One more reference (a connection's) / drop one; the last frees it, and drops its
 * references on the config's tls part and the cache. Any thread. Release of NULL is fine. */
void hp_tls_cred_hold(hp_tls_cred_t *cr);
void hp_tls_cred_release(hp_tls_cred_t *cr);
/* What CR serves: its listener's tls config (certificates, keys...), alive while CR is. */
const gw_tls_listener_cfg_t *hp_tls_cred_cfg(const hp_tls_cred_t *cr);
/* Counts a handshake of CR's listener on worker WORKER: STATUS 0, completed (RESUMED or
 * full); else failed, with reason SLOT. That worker's thread only. */
void hp_tls_cred_count(hp_tls_cred_t *cr, unsigned worker, int status, size_t slot, bool resumed);

/* The credentials of CFG's listeners with `tls` (hp_tls_cred_new each; PREV is the
 * generation before's, NULL for the first). NULL with *ERR on failure, written to ERRS. */
hp_tls_gen_t *hp_tls_gen_build(hp_tls_t *t, const gw_config_t *cfg, const hp_tls_gen_t *prev,
                               FILE *errs, int *err);
/* Drops the generation's references (connections keep theirs). NULL is fine. */
void hp_tls_gen_free(hp_tls_gen_t *tg);
/* The credential of the listener at position POS of TG's generation, NULL without tls. */
hp_tls_cred_t *hp_tls_gen_cred(const hp_tls_gen_t *tg, size_t pos);

/* gw_tls_handshakes_total, gw_tls_handshake_failures_total and gw_tls_session_cache_*, for
 * the listeners of generation G (TG its TLS part; the generation served now: a removed
 * listener leaves the page), by their names. Control thread. TG may be NULL (the families,
 * no samples). */
void hp_tls_metrics(const hp_tls_gen_t *tg, const struct gw_gen_s *g, gw_prom_t *p);

/* ---- per connection (the worker's loop thread) ---------------------------------------- */

/* C was accepted and admitted: when its listener has `tls` in the generation published now,
 * sets up its TLS stream over c->sock with that generation's credential (held until C is
 * freed) and points c->s at it; the handshake starts. 0 (TLS set up, or a plaintext
 * listener: c->s unchanged); or a UV error (the listener left that generation; the buffer
 * pool's cap, memory: counted as a handshake failure "no_buffers" / "no_memory") after
 * which C is still plaintext and the caller closes it at once. */
int hp_tls_accept(struct hconn_s *c);
/* The handshake_timeout of C's credential (0 for a plaintext C). */
uint64_t hp_tls_handshake_ms(const struct hconn_s *c);
/* Frees C's TLS part, if it has one, and gives its charge back. After C's close callback. */
void hp_tls_conn_free(struct hconn_s *c);
/* C's handshake did not end within handshake_timeout: counted "timeout" (the caller
 * closes C). */
void hp_tls_handshake_timeout(struct hconn_s *c);
/* What an exchange of C sees of its TLS connection, NULL for plaintext (or before the
 * handshake completed, which no request can be). Valid while C lives. */
const gw_hx_tls_t *hp_tls_info(const struct hconn_s *c);

/* ---- pure parts ------------------------------------------------------------------------- */

/* Failure reasons, gw_tls_handshake_failures_total's `reason`: a fixed table, so the label
 * set is bounded whatever a client sends. Slots 0..63 are BearSSL's own codes (BR_ERR_*),
 * then received and sent fatal alerts (256 each), then ours. Codes gw_tls_error_name does
 * not name share one slot ("unknown", "recv_alert", "sent_alert"). */
#define GW_HTLS_SLOT_RECV_ALERT 64
#define GW_HTLS_SLOT_SENT_ALERT (GW_HTLS_SLOT_RECV_ALERT + 256)
#define GW_HTLS_SLOT_UNKNOWN (GW_HTLS_SLOT_SENT_ALERT + 256)
#define GW_HTLS_SLOT_TIMEOUT (GW_HTLS_SLOT_UNKNOWN + 1)    /* handshake_timeout passed */
#define GW_HTLS_SLOT_EOF (GW_HTLS_SLOT_UNKNOWN + 2)        /* the client left mid-handshake */
#define GW_HTLS_SLOT_NO_BUFFERS (GW_HTLS_SLOT_UNKNOWN + 3) /* buffers.max_memory reached */
#define GW_HTLS_SLOT_NO_MEMORY (GW_HTLS_SLOT_UNKNOWN + 4)  /* malloc failed */
#define GW_HTLS_NSLOTS (GW_HTLS_SLOT_UNKNOWN + 5)

/* The slot of BearSSL error code BR_ERR (gw_tls_stream_last_error). */
size_t gw_htls_reason_slot(int br_err);
/* The slot for a handshake that ended with STATUS (gw_tls_handshake_cb) and, for
 * UV_EPROTO, BearSSL's code BR_ERR: EPROTO -> BR_ERR's slot, UV_EOF -> "eof", any other
 * error of the socket -> "io" (BR_ERR_IO's slot). */
size_t gw_htls_failure_slot(int status, int br_err);
/* The label of SLOT (< GW_HTLS_NSLOTS): gw_tls_error_name's, or "timeout", "eof",
 * "no_buffers", "no_memory". Never NULL. */
const char *gw_htls_reason_name(size_t slot);

/* The IANA name of cipher suite SUITE ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256") for the
 * suites we offer (gw_tls_suites), else "unknown". */
const char *gw_htls_suite_name(uint16_t suite);
/* "TLSv1.2" for BR_TLS12 (and the older numbers), else "unknown". */
const char *gw_htls_version_name(unsigned version);

/* The mTLS fields of request REQ on a listener with TLS config CFG (NULL: plaintext):
 * with client_auth, every field named subject_header or fingerprint_header is removed
 * (whatever the client sent: it can never set them), then, when INFO says a certificate
 * verified, subject_header carries its CN (percent-encoded outside printable ASCII, and '%';
 * left out when the CN is empty) and fingerprint_header the SHA-256 of its DER in lower-case
 * hex. Without client_auth REQ is untouched. 0, or gw_h1_head_add's error (GW_ELIMIT). */
int gw_htls_client_fields(gw_h1_head_t *req, const gw_tls_listener_cfg_t *cfg,
                          const gw_hx_tls_t *info);

#endif
