/* tlsserver.h - the server end of TLS, per connection: a br_ssl_server_context set up from a
 * listener's loaded `tls` config (tlsconf.h), with the certificate chosen by SNI through a
 * policy class of ours, and the client certificate (mTLS) captured for headers. */
#ifndef GW_TLSSERVER_H
#define GW_TLSSERVER_H

#include <bearssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "04-http/tlsconf.h"

/* The client certificate of a connection, once its chain verified. */
typedef struct gw_tls_peer_s {
    bool present;        /* a client certificate was given and verified */
    char cn[256];        /* its subject CN ("" when it has none or it did not fit) */
    uint8_t sha256[32];  /* SHA-256 of its DER */
    char sha256_hex[65]; /* the same, lower-case hex: the fingerprint header's value */
} gw_tls_peer_t;

/* What a server connection needs besides the br_ssl_server_context: our policy (first
 * member: BearSSL calls it through a pointer to its vtable field) and the X.509 wrapper.
 * Lives as long as the server context; not shared. About 3.5 KB (br_x509_minimal). */
typedef struct gw_tls_server_s {
    const br_ssl_server_policy_class *policy; /* = our class, until choose() swaps in the
                                               * single-chain policy of the chosen cert */
    br_ssl_server_context *sc;
    const gw_tls_listener_cfg_t *cfg;
    int chosen; /* index into cfg->certs of the certificate served; -1 before the choice */
    struct {
        const br_x509_class *vtable; /* our wrapper class */
        br_x509_minimal_context inner;
        br_sha256_context sha;
        unsigned ncert; /* certificates seen in the current chain */
        br_name_element cn;
    } x509;
    gw_tls_peer_t peer;
} gw_tls_server_t;

/* Sets up SC (caller-owned, any content) for one connection of a listener with config CFG:
 * TLS 1.2 only; ECDHE with AES-GCM or ChaCha20-Poly1305, server preference; no
 * renegotiation; CFG's ALPN names with BR_OPT_FAIL_ON_ALPN_MISMATCH; the certificate chosen
 * by SNI (gw_tls_sni_choose); client authentication when CFG has client_auth, verified at
 * wall time NOW (Unix seconds; the caller's clock); the session cache CACHE (may be NULL: no
 * resumption). Then gives SC the I/O buffer IOBUF (IOLEN bytes: BR_SSL_BUFSIZE_BIDI for
 * full duplex) and resets it, ready for the client's hello. S and SC must stay where they
 * are (S holds pointers into itself and to SC) until the connection ends; CFG and CACHE must
 * outlive them. Returns 0, or -1 when BearSSL refused the reset (a buffer too small). */
int gw_tls_server_setup(gw_tls_server_t *s, br_ssl_server_context *sc,
                        const gw_tls_listener_cfg_t *cfg, const br_ssl_session_cache_class **cache,
                        int64_t now, void *iobuf, size_t iolen);

/* The certificate for server name SNI (NULL or "": the client sent none) among CERTS[N]
 * (N >= 1), by their names (gw_tls_cert_t.names): a certificate naming SNI exactly (ASCII
 * case-insensitive), else one whose wildcard `*.rest` covers SNI by one label exactly (the
 * label before `rest` non-empty, no dot in it), else 0: the default. The first match wins.
 * Pure: no I/O, no state. */
size_t gw_tls_sni_choose(const gw_tls_cert_t *certs, size_t n, const char *sni);

/* The suites offered, in our order of preference (for tests and the docs). */
extern const uint16_t gw_tls_suites[];
extern const size_t gw_tls_nsuites;

/* Sets the time an X.509 minimal context verifies at, from Unix seconds. */
void gw_tls_x509_set_time(br_x509_minimal_context *x, int64_t now);

#endif
