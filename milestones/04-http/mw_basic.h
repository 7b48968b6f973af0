/* mw_basic.h - small, pure request/response middleware over gw_h1_head_t: request ids,
 * forwarded headers with a trusted-proxy rule, header rules, and prefix strip/rewrite.
 *
 * Nothing here reads the clock or a random source: random bytes are parameters. */
#ifndef GW_MW_BASIC_H
#define GW_MW_BASIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "h1.h"
#include "pathnorm.h"

/* ---- request id ------------------------------------------------------------------------ */

#define GW_MW_REQID_MAX 128 /* longest X-Request-ID kept from a client */

/* True if S[0..N) is a sane request id: 1..GW_MW_REQID_MAX bytes of [A-Za-z0-9._-]. */
bool gw_mw_request_id_sane(const char *s, size_t n);

/* A fresh request id: RND (16 random bytes) as 32 lower-case hex digits and a NUL, in OUT.
 * The one format of every id the gateway makes (the middleware's, gw_hx_request_id's). */
void gw_mw_request_id_fresh(const uint8_t rnd[16], char out[33]);

/* Keeps REQ's X-Request-ID if it is sane (the first one; any others are dropped), else
 * replaces it by RND (16 caller-given random bytes) written as 32 lower-case hex digits.
 * Copies the id, NUL-terminated, into OUT (GW_MW_REQID_MAX + 1 bytes) so the caller can put
 * it on the response too. Returns 0, or GW_EINVAL/GW_ELIMIT from the head (REQ unchanged). */
int gw_mw_request_id(gw_h1_head_t *req, const uint8_t rnd[16], char out[GW_MW_REQID_MAX + 1]);

/* ---- CIDR ------------------------------------------------------------------------------ */

/* A network: FAMILY is AF_INET or AF_INET6, ADDR the network bytes (4 or 16 used, host bits
 * zero), BITS the prefix length. */
typedef struct gw_cidr_s {
    int family;
    uint8_t addr[16];
    unsigned bits;
} gw_cidr_t;

/* Parses "a.b.c.d/n" (n 0..32) or "ipv6/n" (n 0..128) from the NUL-terminated S into *OUT.
 * A missing "/n" means a single host (/32 or /128). Host bits set ("10.0.0.1/8") are
 * rejected, as are spaces, signs and leading zeros in n. Returns 0 or GW_EINVAL. */
int gw_cidr_parse(const char *s, gw_cidr_t *out);

/* True if the address of SA (AF_INET or AF_INET6; an IPv4-mapped IPv6 address counts as
 * IPv4) lies in C. Any other family is never contained. */
bool gw_cidr_contains(const gw_cidr_t *c, const struct sockaddr *sa);

/* ---- forwarded headers ----------------------------------------------------------------- */

/* What the proxy knows about the client connection. */
typedef struct gw_mw_peer_s {
    const struct sockaddr *addr; /* the TCP peer (AF_INET or AF_INET6) */
    bool tls;                    /* the listener terminated TLS */
    const gw_cidr_t *trusted;    /* proxies whose forwarded headers we believe */
    size_t ntrusted;
} gw_mw_peer_t;

/* True if PEER->addr lies in one of PEER->trusted. */
bool gw_mw_peer_trusted(const gw_mw_peer_t *peer);

/* Sets X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host and Forwarded (RFC 7239) on the
 * request REQ, and adds "Via: 1.1 gw". From a trusted peer the incoming chains are extended
 * (the peer appended) and an incoming proto/host is kept; from anyone else they are
 * replaced. Returns 0, GW_EINVAL (unsupported address family) or GW_ELIMIT (REQ may then
 * hold some of the new fields: answer 431/500, do not forward it). */
int gw_mw_forwarded(gw_h1_head_t *req, const gw_mw_peer_t *peer);

/* X-Real-IP, one address: the client's, as nginx's realip module would find it. From a peer
 * not in PEER->trusted it is the peer itself. From a trusted proxy it is that proxy's own
 * X-Real-IP when that is an address, else the first address of the incoming X-Forwarded-For
 * chain, read from the right, that is not trusted (the leftmost when all are); an entry that
 * is not a plain address (a port, "unknown") makes the chain unbelievable and the peer is
 * used. Always written back as this gateway formats addresses, on one line.
 * Without SET (the x_real_ip option off) nothing is added: X-Real-IP from an untrusted peer
 * is removed, a trusted proxy's passes as it came. Call it before gw_mw_forwarded, which
 * rewrites X-Forwarded-For. Returns 0, GW_EINVAL (address family) or GW_ELIMIT/GW_ENOMEM
 * from the head. */
int gw_mw_real_ip(gw_h1_head_t *req, const gw_mw_peer_t *peer, bool set);

/* ---- header rules ---------------------------------------------------------------------- */

typedef struct gw_mw_field_s {
    const char *name; /* NUL-terminated token */
    const char *value;
} gw_mw_field_t;

/* Header rules from the config, applied in the order remove, set, add. */
typedef struct gw_mw_header_rules_s {
    const char *const *remove;
    size_t nremove;
    const gw_mw_field_t *set;
    size_t nset;
    const gw_mw_field_t *add;
    size_t nadd;
} gw_mw_header_rules_t;

/* Applies R to H. Returns 0, or GW_EINVAL/GW_ELIMIT from the first rule that failed (the
 * rules before it stay applied; the config loader should have validated names and values). */
int gw_mw_header_rules(gw_h1_head_t *h, const gw_mw_header_rules_t *r);

/* ---- strip prefix / rewrite ------------------------------------------------------------ */

/* If REQ's path starts with PREFIX at a segment boundary ("/api" matches "/api" and
 * "/api/x", not "/apix"), replaces PREFIX by REPLACE (NULL or "" strips it), keeps the query,
 * makes sure the path still starts with '/', and runs gw_path_normalize on the result so a
 * rewrite cannot escape the root with "..". Returns 1 if the target was rewritten, 0 if the
 * prefix did not match (REQ unchanged), or -1 with RES filled: status 400 for a result that
 * normalisation rejects, 414 when it is longer than the head allows. RES must not be NULL. */
int gw_mw_rewrite_prefix(gw_h1_head_t *req, const char *prefix, const char *replace,
                         gw_pathnorm_t *res);

#endif
