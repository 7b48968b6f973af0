/* tlsclient.h - the client end of TLS toward upstreams, per connection: a
 * br_ssl_client_context set up from an upstream's loaded `tls` config (tlsconf.h), with
 * verification against its trust anchors (or, with verify: false, none at all), SNI, an
 * optional client certificate, and session resumption per backend. */
#ifndef GW_TLSCLIENT_H
#define GW_TLSCLIENT_H

#include <bearssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "04-http/tlsconf.h"

/* Session parameters kept for resumption with one backend. One per backend per worker:
 * a worker's pooled connections to that backend all resume the last session saved, and no
 * lock is needed. Zero-initialised = nothing to resume. Holds a master secret: wipe it
 * (gw_tls_session_forget) when the backend goes. */
typedef struct gw_tls_session_s {
    bool valid;
    br_ssl_session_parameters params;
} gw_tls_session_t;

/* The per-connection state besides the br_ssl_client_context. */
typedef struct gw_tls_client_s {
    br_x509_minimal_context minimal; /* verify: true */
    struct {                         /* verify: false: decodes the key, checks nothing */
        const br_x509_class *vtable;
        br_x509_decoder_context dec;
        unsigned ncert;
    } insecure;
} gw_tls_client_t;

typedef struct gw_tls_client_opts_s {
    const char *server_name;        /* SNI and the name verified (gw_tls_server_name); NULL: none */
    const gw_tls_session_t *resume; /* NULL or a saved session to offer */
    int64_t now;                    /* wall time, Unix seconds, for certificate dates */
    const char *const *alpn;        /* protocol names to offer, may be NULL */
    size_t nalpn;
    void *iobuf; /* BR_SSL_BUFSIZE_BIDI bytes for full duplex (at least BR_SSL_BUFSIZE_MONO) */
    size_t iolen;
} gw_tls_client_opts_t;

/* Sets up CC (caller-owned) for one connection to a backend of an upstream with config CFG:
 * TLS 1.2 with the same ECDHE + AEAD suites the server end offers (tlsserver.h), CFG's
 * anchors and verification (or none with verify: false, documented as insecure: it accepts
 * any certificate, so anyone on the path can read and change the traffic), CFG's client
 * certificate when it has one, O's options; then resets CC, which writes the ClientHello.
 * C and CC must stay where they are until the connection ends; CFG must outlive them.
 * Returns 0, or -1 when BearSSL refused the reset. */
int gw_tls_client_setup(gw_tls_client_t *c, br_ssl_client_context *cc,
                        const gw_tls_upstream_cfg_t *cfg, const gw_tls_client_opts_t *o);

/* After a handshake completed on CC: keeps its session parameters in SLOT for the next
 * connection (nothing when the server gave no session ID). */
void gw_tls_session_save(gw_tls_session_t *slot, const br_ssl_client_context *cc);

/* Did CC's handshake resume the session offered? (After the handshake.) */
bool gw_tls_session_resumed(const br_ssl_client_context *cc, const gw_tls_session_t *offered);

/* Wipes SLOT (the master secret with it). */
void gw_tls_session_forget(gw_tls_session_t *slot);

#endif
