/* jwt.h - JSON Web Token verification (JWS compact form): HS256, RS256, ES256 on BearSSL. */
#ifndef GW_JWT_H
#define GW_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Verification is pure: no I/O, no clock (the caller passes the wall time in seconds), no
 * global state, so one key set serves every worker without locks. Only the file loader,
 * gw_jwt_keyset_add_file, reads a file (through gw_loadio, loadio.h, which tests and the
 * config loader's fuzz target replace). Keys come from a JWKS document or from X.509
 * certificates in PEM: BearSSL 0.6 has no decoder for a bare "PUBLIC KEY" PEM (DESIGN.md), and JWKS
 * is what identity providers publish anyway.
 *
 * Limits (every buffer has a cap; anything larger is refused, never truncated): */
#define GW_JWT_MAX_TOKEN 8192    /* bytes of a compact token, all three parts */
#define GW_JWT_MAX_KEYS 64       /* keys in one key set */
#define GW_JWT_MAX_KID 128       /* bytes of a key id */
#define GW_JWT_MAX_RSA_BYTES 512 /* 4096-bit modulus */
#define GW_JWT_MIN_RSA_BITS 2048 /* smaller RSA keys are refused at load (RFC 7518 3.3) */
#define GW_JWT_MAX_SECRET 512    /* bytes of an HMAC secret */
#define GW_JWT_MIN_SECRET 32     /* RFC 7518 3.2: at least the hash size for HS256 */
#define GW_JWT_DEFAULT_SKEW 60   /* seconds of clock skew allowed for exp, nbf, iat */

/* Why verification failed. Each has a fixed, human description (gw_jwt_strerror) that is
 * safe to put in `WWW-Authenticate: Bearer error="invalid_token", error_description="..."`:
 * it never echoes token bytes, so an attacker cannot inject quotes into our header. */
typedef enum {
    GW_JWT_OK = 0,
    GW_JWT_ETOOBIG,     /* token longer than GW_JWT_MAX_TOKEN */
    GW_JWT_EFORMAT,     /* not three parts, bad base64url, or a part that is not JSON */
    GW_JWT_EHEADER,     /* header not an object, alg missing, bad kid/typ, crit present */
    GW_JWT_EALG_NONE,   /* alg "none", in any case: unsigned tokens are never accepted */
    GW_JWT_EALG,        /* an algorithm we do not support */
    GW_JWT_ENOKEY,      /* no key with the token's kid, or none of the right type */
    GW_JWT_ESIGNATURE,  /* the signature does not verify */
    GW_JWT_EPAYLOAD,    /* payload not a JSON object */
    GW_JWT_ECLAIM_TYPE, /* exp/nbf/iat not a number, iss not a string, aud malformed */
    GW_JWT_EEXPIRED,    /* now >= exp + skew */
    GW_JWT_ENOTYET,     /* now < nbf - skew */
    GW_JWT_EIAT_FUTURE, /* iat > now + skew */
    GW_JWT_ENOEXP,      /* exp missing and the policy requires it */
    GW_JWT_EISSUER,     /* iss missing or not in the allowed list */
    GW_JWT_EAUDIENCE,   /* aud missing or none of its values is allowed */
} gw_jwt_err_t;

/* A fixed description for ERR ("token expired", ...). Never NULL. */
const char *gw_jwt_strerror(gw_jwt_err_t err);

/* ---- base64url (RFC 4648 section 5) ----------------------------------------------------
 * BearSSL has none. Strict: alphabet A-Z a-z 0-9 - _ only, no padding, no whitespace, a
 * length that is not 1 mod 4, and the unused low bits of the last character must be zero
 * (so each byte string has exactly one encoding, and a flipped bit is never ignored).
 * Decodes LEN characters of IN into OUT (capacity CAP). Returns the decoded length, or -1
 * if the input is invalid or the result would not fit in CAP. */
long gw_jwt_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap);

/* ---- key sets ----------------------------------------------------------------------------
 * A key set is built once (on the control thread, at load or reload) and is immutable from
 * the moment it is published: gw_jwt_verify only reads it, so any number of workers may
 * share one, and a reload builds a new set and swaps a pointer (milestone 05's snapshots).
 * The build functions below MUST NOT be called on a set that verifiers can already see. */
typedef struct gw_jwt_keyset_s gw_jwt_keyset_t;

/* What a key is; the type alone decides which algorithm it may verify (HMAC: HS256, RSA:
 * RS256, EC P-256: ES256). This is the rule that defeats algorithm confusion. */
typedef enum { GW_JWT_KEY_HMAC, GW_JWT_KEY_RSA, GW_JWT_KEY_EC } gw_jwt_kty_t;

/* An empty set, or NULL when out of memory. Free with gw_jwt_keyset_free. */
gw_jwt_keyset_t *gw_jwt_keyset_new(void);
void gw_jwt_keyset_free(gw_jwt_keyset_t *ks); /* NULL is fine */
size_t gw_jwt_keyset_count(const gw_jwt_keyset_t *ks);

/* Adds the keys of a JWKS document ({"keys":[...]}, LEN bytes at JSON, need not be
 * NUL-terminated). Supported: kty RSA (n, e), EC with crv P-256 (x, y), oct (k). Keys whose
 * `use` is not "sig", and key types or curves we do not support, are skipped (an identity
 * provider's JWKS may hold encryption keys); a supported key that is malformed, too weak
 * (RSA < 2048 bits, secret < 32 bytes) or whose `alg` contradicts its type is an error. A
 * key's optional `alg` further restricts it to that one algorithm. On error the set is
 * unchanged and ERR (capacity ERRLEN) says which key and why. Returns the number of keys
 * added (>= 0) or -1. */
int gw_jwt_keyset_add_jwks(gw_jwt_keyset_t *ks, const char *json, size_t len, char *err,
                           size_t errlen);

/* Adds the public key of every CERTIFICATE in a PEM text (LEN bytes at PEM) under key id KID
 * (NULL: no kid; such a key is tried only for tokens without a kid). RSA (>= 2048 bits) and
 * EC P-256 keys are supported. The certificate's own signature and dates are NOT checked:
 * the file is trusted configuration, used only as a key container. Returns the number of
 * keys added (>= 1) or -1 with ERR filled and the set unchanged. */
int gw_jwt_keyset_add_pem(gw_jwt_keyset_t *ks, const char *kid, const char *pem, size_t len,
                          char *err, size_t errlen);

/* Adds a raw HMAC secret (LEN bytes, GW_JWT_MIN_SECRET..GW_JWT_MAX_SECRET) under KID (may be
 * NULL), for configs that give the secret directly. Returns 0 or -1 with ERR filled. */
int gw_jwt_keyset_add_secret(gw_jwt_keyset_t *ks, const char *kid, const uint8_t *secret,
                             size_t len, char *err, size_t errlen);

/* Reads the file at PATH (at most GW_JWT_MAX_KEY_FILE bytes) and adds its keys: a JWKS
 * document when its first non-blank byte is '{', otherwise PEM certificates under KID (KID
 * is ignored for a JWKS, whose keys name themselves). For the config loader, on the control
 * thread: this is the one function here that does I/O. Returns the number of keys added or
 * -1 with ERR filled ("PATH: reason") and the set unchanged. */
#define GW_JWT_MAX_KEY_FILE (1024 * 1024)
int gw_jwt_keyset_add_file(gw_jwt_keyset_t *ks, const char *path, const char *kid, char *err,
                           size_t errlen);

/* ---- verification ------------------------------------------------------------------------ */
/* What a good token must also satisfy. The string arrays are borrowed: they must outlive
 * every call that uses the policy (keep them in the same config snapshot). RFC 7519 4.1.3
 * says a token whose aud does not name us MUST be rejected: a production route should list
 * its audiences; "none listed" exists for tests and for issuers that set no aud. */
typedef struct {
    uint32_t skew;                /* seconds allowed either way (GW_JWT_DEFAULT_SKEW) */
    bool require_exp;             /* refuse tokens without exp (default true) */
    const char *const *issuers;   /* allowed `iss` values (exact match); none: not checked */
    size_t n_issuers;             /*   ...but iss, when present, must still be a string */
    const char *const *audiences; /* allowed `aud` values; none: not checked */
    size_t n_audiences;
} gw_jwt_policy_t;

/* The defaults: skew GW_JWT_DEFAULT_SKEW, exp required, no iss or aud check. */
gw_jwt_policy_t gw_jwt_policy_default(void);

/* Verifies the compact token TOKEN (LEN bytes, no "Bearer " prefix, any bytes: it is
 * untrusted) with the keys of KS under POLICY at wall time NOW (Unix seconds). KS, POLICY
 * and TOKEN MUST NOT be NULL. The header's "typ", when present, must be a string and is
 * otherwise not checked. Order: size, structure, header (alg, kid, crit),
 * key choice, signature, and only then the claims: nothing in the payload is looked at
 * before the signature is known good.
 *
 * Key choice: with a kid in the header, only keys with exactly that kid are tried; without
 * one, every key of the type the alg needs (the set is bounded, GW_JWT_MAX_KEYS). A key
 * never verifies an algorithm of another type, whatever the token's header says.
 *
 * On GW_JWT_OK, *CLAIMS (if CLAIMS is not NULL) receives the payload as a new reference
 * the caller must json_decref. On failure *CLAIMS is set to NULL. */
gw_jwt_err_t gw_jwt_verify(const gw_jwt_keyset_t *ks, const gw_jwt_policy_t *policy, int64_t now,
                           const char *token, size_t len, json_t **claims);

#endif
