/* tlsconf.h - the `tls:` keys of listeners and upstreams (milestone 04): decoded with the
 * config, certificate and key files read then (a bad file is a config error at its key's
 * line:column), printed by -T (paths only, never key material), freed with the config.
 *
 *   listeners:
 *     - name: edge
 *       protocol: http               # or tcp
 *       tls:
 *         certificates:              # required, >= 1; the first is the default
 *           - {cert: /etc/gw/site.pem, key: /etc/gw/site.key}   # PEM chain (leaf first), RSA or EC
 * key client_auth:               # optional: mTLS ca: /etc/gw/clients-ca.pem required: true #
 * default true; false: a client without a cert passes too subject_header: X-Client-Cert-Subject #
 * default; the verified cert's subject CN fingerprint_header: X-Client-Cert-Sha256   # default;
 * SHA-256 of its DER, hex handshake_timeout: 10s     # default 10s, 1ms..1h session_cache: {size:
 * 20000}   # sessions kept for resumption; 0 disables alpn: [http/1.1]           # default
 * [http/1.1] on http listeners, none on tcp upstreams: app: tls: ca: system                 #
 * default: /etc/ssl/certs/ca-certificates.crt; or a PEM file server_name: app.internal  # SNI and
 * the name verified; default: the backend's host # when it is a name, none for an IP address
 *         verify: true               # default true; false must be written out: INSECURE, warned
 *         client_cert: {cert: FILE, key: FILE}   # optional: mTLS to the upstream
 *
 * Relative paths are used as written, relative to the working directory, like every other
 * file key (jwt `keys`, log.file, access_log). A key file readable by group or others is a
 * warning (gw_tls_config_warnings), as are `verify: false` and, with verification on, a backend
 * given by IP address with no server_name (no name to check: only its chain is verified). */
#ifndef GW_TLSCONF_H
#define GW_TLSCONF_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "04-http/tlsload.h"
#include "config.h"

#define GW_TLS_SYSTEM_CA "/etc/ssl/certs/ca-certificates.crt"
#define GW_TLS_MAX_ALPN 8 /* names in an alpn list */

typedef struct gw_tls_listener_cfg_s {
    gw_tls_cert_t *certs; /* [ncerts], the first is the default */
    char **cert_paths;    /* [ncerts], for -T and messages */
    char **key_paths;     /* [ncerts] */
    size_t ncerts;
    bool client_auth;          /* client_auth given */
    bool client_auth_required; /* default true */
    char *client_ca_path;
    gw_tls_anchors_t client_cas;
    char *subject_header;     /* default X-Client-Cert-Subject */
    char *fingerprint_header; /* default X-Client-Cert-Sha256 */
    uint64_t handshake_timeout_ms;
    uint64_t session_cache_size; /* sessions, default 20000; 0 = no cache */
    const char **alpn;           /* [nalpn] NUL-terminated names, owned */
    size_t nalpn;
    char **warnings; /* "FILE:LINE:COL: warning: ..." [nwarnings] */
    size_t nwarnings;
    /* The config that decoded it holds one reference; a TLS credential (htls.c) holds one
     * more, so that the certificates and keys a connection handshook with outlive the
     * config (a reload frees the old config while its connections still run). */
    atomic_uint refs;
} gw_tls_listener_cfg_t;

typedef struct gw_tls_upstream_cfg_s {
    char *ca_path;            /* as configured; NULL for `system` */
    gw_tls_anchors_t anchors; /* empty when verify is false */
    char *server_name;        /* NULL: from each backend's address (gw_tls_server_name) */
    bool verify;              /* default true */
    bool has_client_cert;
    gw_tls_cert_t client_cert;
    char *client_cert_path, *client_key_path;
    char **warnings;
    size_t nwarnings;
} gw_tls_upstream_cfg_t;

/* Decode `tls` of listener L (MAP is the listener's mapping) / upstream U; called from
 * httpcfg.c's hooks. Return the decoded part (caller keeps it and frees it with the _free
 * function) or NULL when the key is absent (or after an error: reported in DOC). */
gw_tls_listener_cfg_t *gw_tls_listener_decode(gw_cdoc_t *doc, const gw_cnode_t *map,
                                              const gw_listener_cfg_t *l);
gw_tls_upstream_cfg_t *gw_tls_upstream_decode(gw_cdoc_t *doc, const gw_cnode_t *map,
                                              const gw_upstream_cfg_t *u);
void gw_tls_listener_print(FILE *out, const gw_tls_listener_cfg_t *t, int indent);
void gw_tls_upstream_print(FILE *out, const gw_tls_upstream_cfg_t *t, int indent);
/* Drops one reference to T (the config's, or a holder's), freeing T with the last: any
 * thread. NULL is fine. */
void gw_tls_listener_free(gw_tls_listener_cfg_t *t);
/* One more reference to T (a decoded config's), dropped with gw_tls_listener_free. */
gw_tls_listener_cfg_t *gw_tls_listener_hold(const gw_tls_listener_cfg_t *t);
void gw_tls_upstream_free(gw_tls_upstream_cfg_t *t);

/* The TLS part of a listener / upstream of a loaded config, or NULL (no `tls`). */
const gw_tls_listener_cfg_t *gw_tls_listener_cfg(const gw_listener_cfg_t *l);
const gw_tls_upstream_cfg_t *gw_tls_upstream_cfg(const gw_upstream_cfg_t *u);

/* Calls CB with each warning of CFG's TLS parts (key file permissions, verify: false), in
 * config order; returns how many. The binary logs them at every start (gw_warn). */
size_t gw_tls_config_warnings(const gw_config_t *cfg, void (*cb)(void *ctx, const char *msg),
                              void *ctx);

/* The name a connection to backend ADDRESS_TEXT ("host:port", "[v6]:port") of upstream T
 * sends as SNI and verifies: T's server_name, else the host when it is a name, else NULL
 * (an IP address: no SNI, and verification then needs server_name). Written into BUF. */
const char *gw_tls_server_name(const gw_tls_upstream_cfg_t *t, const char *address_text, char *buf,
                               size_t len);

#endif
