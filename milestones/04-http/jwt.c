/* jwt.c - see jwt.h.
 *
 * The order of checks is the whole point of this file: size, structure, header, key choice,
 * signature, claims. An attacker controls every byte of a token, so the payload is not even
 * parsed until the signature over it is known good, and the header (which IS read before
 * the signature) is only allowed to pick among keys, never to choose how a key is used: the
 * key's type decides the algorithm (see key_allows, in the lab region).
 *
 * BearSSL does all the cryptography with caller-owned contexts on the stack; jansson parses
 * the JSON. Memory per verification is bounded by GW_JWT_MAX_TOKEN. */
#include "jwt.h"

#include <bearssl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "loadio.h"
#include "pem.h"

/* The algorithms we verify. The index is the algorithm's id; the type is the only key type
 * that may verify it. */
enum { ALG_HS256, ALG_RS256, ALG_ES256, ALG_ANY = -1 };
static const struct {
    const char *name;
    gw_jwt_kty_t kty;
} algs[] = {
    {"HS256", GW_JWT_KEY_HMAC},
    {"RS256", GW_JWT_KEY_RSA},
    {"ES256", GW_JWT_KEY_EC},
};
#define N_ALGS (sizeof algs / sizeof algs[0])

#define EC_POINT_LEN 65 /* P-256 uncompressed: 0x04 || x (32) || y (32) */
#define MAX_E_BYTES 4   /* public exponents in use are 3 and 65537 */

typedef struct {
    gw_jwt_kty_t kty;
    int alg;      /* ALG_ANY, or the one algorithm the JWK's "alg" restricts it to */
    bool has_kid; /* a key without kid is distinct from one with kid "" */
    char kid[GW_JWT_MAX_KID + 1];
    size_t len;                         /* bytes of data: secret, modulus or EC point */
    uint8_t data[GW_JWT_MAX_RSA_BYTES]; /* >= GW_JWT_MAX_SECRET and EC_POINT_LEN */
    size_t elen;
    uint8_t e[MAX_E_BYTES]; /* RSA public exponent */
} jwt_key_t;

/* Fixed capacity: one allocation, and a hostile or broken JWKS cannot make it grow. */
struct gw_jwt_keyset_s {
    size_t n;
    jwt_key_t keys[GW_JWT_MAX_KEYS];
};

/* see jwt.h */
const char *gw_jwt_strerror(gw_jwt_err_t err)
{
    switch (err) {
    case GW_JWT_OK:
        return "ok";
    case GW_JWT_ETOOBIG:
        return "token too large";
    case GW_JWT_EFORMAT:
        return "malformed token";
    case GW_JWT_EHEADER:
        return "invalid token header";
    case GW_JWT_EALG_NONE:
        return "unsigned tokens are not accepted";
    case GW_JWT_EALG:
        return "unsupported algorithm";
    case GW_JWT_ENOKEY:
        return "no matching key";
    case GW_JWT_ESIGNATURE:
        return "invalid signature";
    case GW_JWT_EPAYLOAD:
        return "invalid token payload";
    case GW_JWT_ECLAIM_TYPE:
        return "malformed claim";
    case GW_JWT_EEXPIRED:
        return "token expired";
    case GW_JWT_ENOTYET:
        return "token not yet valid";
    case GW_JWT_EIAT_FUTURE:
        return "token issued in the future";
    case GW_JWT_ENOEXP:
        return "token has no expiry";
    case GW_JWT_EISSUER:
        return "issuer not allowed";
    case GW_JWT_EAUDIENCE:
        return "audience not allowed";
    }
    return "unknown error";
}

/* ---- base64url ---------------------------------------------------------------------------- */

/* The value of one base64url character, or -1. A switch on ranges rather than a 256-entry
 * table: easier to check by eye, and speed does not matter at token sizes. */
static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* see jwt.h */
long gw_jwt_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
    /* Four characters carry three bytes; a final group of 2 or 3 characters carries 1 or 2.
     * A single leftover character carries only 6 bits, less than a byte: invalid. */
    if (len % 4 == 1)
        return -1;
    size_t outlen = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (outlen > cap || outlen > (size_t)GW_JWT_MAX_TOKEN)
        return -1;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Leftover bits must be zero: otherwise "AB" and "AC" would both decode to the same
     * byte, and a flipped bit in the last character of a signature would go unnoticed. */
    if (acc != 0)
        return -1;
    return (long)o;
}

/* ---- key sets ----------------------------------------------------------------------------- */

/* see jwt.h */
gw_jwt_keyset_t *gw_jwt_keyset_new(void)
{
    return calloc(1, sizeof(gw_jwt_keyset_t));
}

/* see jwt.h */
void gw_jwt_keyset_free(gw_jwt_keyset_t *ks)
{
    /* HMAC secrets live in here: wipe them, so freed memory does not keep them around.
     * explicit_bzero, because a memset just before free may legally be optimised away. */
    if (ks != NULL)
        explicit_bzero(ks, sizeof *ks);
    free(ks);
}

/* see jwt.h */
size_t gw_jwt_keyset_count(const gw_jwt_keyset_t *ks)
{
    return ks->n;
}

/* Sets K's kid (NULL: none). Returns -1 if too long. */
static int key_set_kid(jwt_key_t *k, const char *kid)
{
    k->has_kid = kid != NULL;
    if (kid == NULL)
        return 0;
    size_t n = strlen(kid);
    if (n > GW_JWT_MAX_KID)
        return -1;
    memcpy(k->kid, kid, n + 1);
    return 0;
}

/* Fills K as an RSA key from big-endian N and E (leading zeros allowed, as in some JWKS).
 * Returns NULL or a reason. */
static const char *key_set_rsa(jwt_key_t *k, const uint8_t *n, size_t nlen, const uint8_t *e,
                               size_t elen)
{
    while (nlen > 0 && n[0] == 0)
        n++, nlen--;
    while (elen > 0 && e[0] == 0)
        e++, elen--;
    if (nlen > GW_JWT_MAX_RSA_BYTES)
        return "RSA modulus larger than 4096 bits";
    size_t bits = nlen * 8;
    for (uint8_t top = nlen ? n[0] : 0; bits > 0 && !(top & 0x80); top <<= 1)
        bits--;
    if (bits < GW_JWT_MIN_RSA_BITS)
        return "RSA modulus smaller than 2048 bits";
    if (elen == 0 || elen > MAX_E_BYTES || !(e[elen - 1] & 1) || (elen == 1 && e[0] < 3))
        return "RSA exponent invalid";
    k->kty = GW_JWT_KEY_RSA;
    k->len = nlen;
    memcpy(k->data, n, nlen);
    k->elen = elen;
    memcpy(k->e, e, elen);
    return NULL;
}

/* Fills K as a P-256 key from the uncompressed point Q. The point is checked now (on the
 * curve, not infinity) by multiplying it by 1, which makes BearSSL decode and validate it:
 * a bad key is a load error rather than a mystery at the first request. */
static const char *key_set_ec(jwt_key_t *k, const uint8_t *q, size_t qlen)
{
    static const uint8_t one = 1;
    uint8_t tmp[EC_POINT_LEN];
    if (qlen != EC_POINT_LEN || q[0] != 0x04)
        return "EC point is not an uncompressed P-256 point";
    memcpy(tmp, q, qlen);
    if (!br_ec_get_default()->mul(tmp, qlen, &one, 1, BR_EC_secp256r1))
        return "EC point is not on the P-256 curve";
    k->kty = GW_JWT_KEY_EC;
    k->len = qlen;
    memcpy(k->data, q, qlen);
    return NULL;
}

static const char *key_set_secret(jwt_key_t *k, const uint8_t *s, size_t len)
{
    if (len < GW_JWT_MIN_SECRET)
        return "HMAC secret shorter than 32 bytes";
    if (len > GW_JWT_MAX_SECRET)
        return "HMAC secret longer than 512 bytes";
    k->kty = GW_JWT_KEY_HMAC;
    k->len = len;
    memcpy(k->data, s, len);
    return NULL;
}

/* Decodes the base64url string member NAME of OBJ into OUT (CAP bytes). Returns the length
 * or -1 (missing, not a string, invalid, too long). */
static long jwk_bytes(json_t *obj, const char *name, uint8_t *out, size_t cap)
{
    json_t *v = json_object_get(obj, name);
    if (!json_is_string(v))
        return -1;
    return gw_jwt_b64url_decode(json_string_value(v), json_string_length(v), out, cap);
}

static const char *jwk_rsa(jwt_key_t *k, json_t *jwk)
{
    uint8_t n[GW_JWT_MAX_RSA_BYTES + 1], e[16];
    long nlen = jwk_bytes(jwk, "n", n, sizeof n);
    long elen = jwk_bytes(jwk, "e", e, sizeof e);
    if (nlen < 0 || elen < 0)
        return "RSA key needs base64url \"n\" and \"e\" (modulus at most 4096 bits)";
    return key_set_rsa(k, n, (size_t)nlen, e, (size_t)elen);
}

static const char *jwk_ec(jwt_key_t *k, json_t *jwk)
{
    uint8_t q[EC_POINT_LEN];
    q[0] = 0x04;
    if (jwk_bytes(jwk, "x", q + 1, 32) != 32 || jwk_bytes(jwk, "y", q + 33, 32) != 32)
        return "EC key needs base64url \"x\" and \"y\" of 32 bytes each";
    return key_set_ec(k, q, sizeof q);
}

static const char *jwk_oct(jwt_key_t *k, json_t *jwk)
{
    uint8_t s[GW_JWT_MAX_SECRET + 1];
    long n = jwk_bytes(jwk, "k", s, sizeof s);
    if (n < 0)
        return "oct key needs base64url \"k\" (at most 512 bytes)";
    const char *why = key_set_secret(k, s, (size_t)n);
    explicit_bzero(s, sizeof s); /* no copy of the secret left on the stack */
    return why;
}

static int alg_by_name(const char *name)
{
    for (size_t i = 0; i < N_ALGS; i++) {
        if (strcmp(name, algs[i].name) == 0)
            return (int)i;
    }
    return ALG_ANY;
}

/* Parses the key material of one JWK into K. Returns 1 parsed, 0 skipped (a type or curve
 * we do not support), -1 error with *WHY set. */
static int jwk_material(jwt_key_t *k, json_t *jwk, const char **why)
{
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    if (kty == NULL)
        *why = "needs a string \"kty\"";
    else if (strcmp(kty, "RSA") == 0)
        *why = jwk_rsa(k, jwk);
    else if (strcmp(kty, "EC") == 0 && crv != NULL && strcmp(crv, "P-256") == 0)
        *why = jwk_ec(k, jwk);
    else if (strcmp(kty, "oct") == 0)
        *why = jwk_oct(k, jwk);
    else
        return 0;
    return *why != NULL ? -1 : 1;
}

/* Parses one JWK into K. Returns 1 added, 0 skipped (not for signatures, a type we do not
 * support, or restricted to an algorithm we do not support, such as RS384), -1 error with
 * *WHY set. */
static int jwk_parse(jwt_key_t *k, json_t *jwk, const char **why)
{
    json_t *use = json_object_get(jwk, "use"), *kid = json_object_get(jwk, "kid");
    json_t *alg = json_object_get(jwk, "alg");
    memset(k, 0, sizeof *k);
    k->alg = ALG_ANY;
    *why = NULL;
    if (!json_is_object(jwk)) {
        *why = "not an object";
        return -1;
    }
    if ((use != NULL && !json_is_string(use)) || (kid != NULL && !json_is_string(kid)) ||
        (alg != NULL && !json_is_string(alg))) {
        *why = "\"use\", \"kid\" and \"alg\" must be strings";
        return -1;
    }
    if (use != NULL && strcmp(json_string_value(use), "sig") != 0)
        return 0; /* an encryption key: not ours to use */
    if (alg != NULL && alg_by_name(json_string_value(alg)) == ALG_ANY)
        return 0;
    int r = jwk_material(k, jwk, why);
    if (r <= 0)
        return r;
    if (key_set_kid(k, json_string_value(kid)) < 0)
        *why = "\"kid\" longer than 128 bytes";
    else if (alg != NULL && algs[k->alg = alg_by_name(json_string_value(alg))].kty != k->kty)
        *why = "\"alg\" does not match the key type";
    return *why != NULL ? -1 : 1;
}

/* see jwt.h */
int gw_jwt_keyset_add_jwks(gw_jwt_keyset_t *ks, const char *json, size_t len, char *err,
                           size_t errlen)
{
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *keys = json_object_get(doc, "keys");
    int added = -1;
    if (doc == NULL) {
        gw_errf(err, errlen, "JWKS: %d:%d: %s", jerr.line, jerr.column, jerr.text);
        return -1;
    }
    if (!json_is_array(keys)) {
        gw_errf(err, errlen, "JWKS: expected an object with a \"keys\" array");
        goto out;
    }
    /* New keys are written after the last committed one and committed (ks->n) only when the
     * whole document is good, so a failed load leaves the set as it was. */
    size_t n = ks->n, i;
    json_t *jwk;
    json_array_foreach(keys, i, jwk)
    {
        const char *why = "too many keys (at most 64)";
        int r = n < GW_JWT_MAX_KEYS ? jwk_parse(&ks->keys[n], jwk, &why) : -1;
        if (r < 0) {
            gw_errf(err, errlen, "JWKS: keys[%zu]: %s", i, why);
            goto out;
        }
        n += (size_t)r;
    }
    added = (int)(n - ks->n);
    ks->n = n;
out:
    json_decref(doc);
    return added;
}

/* see jwt.h */
int gw_jwt_keyset_add_secret(gw_jwt_keyset_t *ks, const char *kid, const uint8_t *secret,
                             size_t len, char *err, size_t errlen)
{
    if (ks->n >= GW_JWT_MAX_KEYS) {
        gw_errf(err, errlen, "too many keys (at most 64)");
        return -1;
    }
    jwt_key_t *k = &ks->keys[ks->n];
    memset(k, 0, sizeof *k);
    k->alg = ALG_ANY;
    const char *why = key_set_secret(k, secret, len);
    if (why == NULL && key_set_kid(k, kid) < 0)
        why = "kid longer than 128 bytes";
    if (why != NULL) {
        gw_errf(err, errlen, "%s", why);
        return -1;
    }
    ks->n++;
    return 0;
}

/* ---- X.509 certificates in PEM -------------------------------------------------------- */

/* Copies the public key out of a decoded certificate into K. */
static const char *key_from_x509(jwt_key_t *k, br_x509_decoder_context *x)
{
    const br_x509_pkey *pk = br_x509_decoder_get_pkey(x);
    if (pk == NULL)
        return "certificate could not be decoded";
    if (pk->key_type == BR_KEYTYPE_RSA)
        return key_set_rsa(k, pk->key.rsa.n, pk->key.rsa.nlen, pk->key.rsa.e, pk->key.rsa.elen);
    if (pk->key_type == BR_KEYTYPE_EC && pk->key.ec.curve == BR_EC_secp256r1)
        return key_set_ec(k, pk->key.ec.q, pk->key.ec.qlen);
    return "certificate key is neither RSA nor EC P-256";
}

/* Stores the key of the certificate just decoded by XC as key N of KS, under KID. Returns
 * NULL or a reason. */
static const char *pem_add_cert(gw_jwt_keyset_t *ks, size_t n, const char *kid,
                                br_x509_decoder_context *xc)
{
    if (n >= GW_JWT_MAX_KEYS)
        return "too many keys (at most 64)";
    jwt_key_t *k = &ks->keys[n];
    memset(k, 0, sizeof *k);
    k->alg = ALG_ANY;
    const char *why = key_from_x509(k, xc);
    if (why == NULL && key_set_kid(k, kid) < 0)
        why = "kid longer than 128 bytes";
    return why;
}

/* Where pem_cert stores keys: from ks->n on, not yet committed. */
typedef struct {
    gw_jwt_keyset_t *ks;
    const char *kid;
    size_t n;
} pem_scan_t;

/* One PEM object (gw_pem_each, pem.h): a CERTIFICATE's key is stored; other objects (a
 * private key pasted into the same file, say) are skipped. The whole DER is pushed at once,
 * so the decoder never sees bytes after it stopped (BearSSL 0.6 crashes then, found by
 * fuzz_jwtkeys); bytes after a complete certificate in the same object are ignored. */
static int pem_cert(void *ctx, const char *name, const unsigned char *der, size_t len,
                    const char **why)
{
    pem_scan_t *s = ctx;
    br_x509_decoder_context xc;
    if (strcmp(name, "CERTIFICATE") != 0)
        return 0;
    br_x509_decoder_init(&xc, NULL, NULL);
    br_x509_decoder_push(&xc, der, len);
    return (*why = pem_add_cert(s->ks, s->n++, s->kid, &xc)) != NULL ? -1 : 0;
}

/* Feeds PEM text to the decoder, storing keys from ks->n on without committing them.
 * Returns how many were stored, or -1 with *WHY set. */
static int pem_scan(gw_jwt_keyset_t *ks, const char *kid, const char *pem, size_t len,
                    const char **why)
{
    pem_scan_t s = {.ks = ks, .kid = kid, .n = ks->n};
    if (gw_pem_each(pem, len, pem_cert, &s, why) < 0)
        return -1;
    return (int)(s.n - ks->n);
}

/* see jwt.h */
int gw_jwt_keyset_add_pem(gw_jwt_keyset_t *ks, const char *kid, const char *pem, size_t len,
                          char *err, size_t errlen)
{
    const char *why = "no CERTIFICATE in the PEM text";
    int added = pem_scan(ks, kid, pem, len, &why);
    if (added <= 0) {
        gw_errf(err, errlen, "PEM: %s", why);
        return -1;
    }
    ks->n += (size_t)added;
    return added;
}

/* see jwt.h */
int gw_jwt_keyset_add_file(gw_jwt_keyset_t *ks, const char *path, const char *kid, char *err,
                           size_t errlen)
{
    size_t len = 0, i = 0;
    char *text = gw_loadio()->read_file(path, GW_JWT_MAX_KEY_FILE, &len); /* tests: memory */
    if (text == NULL) {
        gw_errf(err, errlen, "%s: %s", path,
                errno == EFBIG ? "larger than 1 MiB" : strerror(errno ? errno : ENOMEM));
        return -1;
    }
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
        i++;
    char why[256] = "";
    int n = i < len && text[i] == '{' ? gw_jwt_keyset_add_jwks(ks, text, len, why, sizeof why)
                                      : gw_jwt_keyset_add_pem(ks, kid, text, len, why, sizeof why);
    explicit_bzero(text, len); /* a JWKS file may hold HMAC secrets */
    free(text);
    if (n < 0)
        gw_errf(err, errlen, "%s: %s", path, why);
    return n;
}

/* ---- verification ------------------------------------------------------------------------- */

/* see jwt.h */
gw_jwt_policy_t gw_jwt_policy_default(void)
{
    return (gw_jwt_policy_t){.skew = GW_JWT_DEFAULT_SKEW, .require_exp = true};
}

/* The parts of a token, pointing into the caller's buffer, with the decoded signature. */
typedef struct {
    const char *signing_input; /* header "." payload: what the signature covers */
    size_t signing_len;
    const char *payload; /* base64url, not decoded until the signature is good */
    size_t payload_len;
    uint8_t sig[GW_JWT_MAX_RSA_BYTES];
    size_t sig_len;
    int alg;
    char kid[GW_JWT_MAX_KID + 1];
    bool has_kid;
} parts_t;

/* LAB 04: jwt validation */
/* Algorithm confusion is the classic JWT bug: a server holds an RSA public key, an attacker
 * sends {"alg":"HS256"} and signs with HMAC using the *public* key bytes as the secret; a
 * library that lets the header choose the algorithm then "verifies" it. The fix is that the
 * key, never the token, decides: an RSA key verifies RS256 only, an EC P-256 key ES256
 * only, an HMAC secret HS256 only. A JWK's "alg" member narrows a key to one algorithm;
 * with one algorithm per key type today that adds nothing, but it will the day HS384 or
 * RS512 join the table. */
static bool key_allows(const jwt_key_t *k, int alg)
{
    if (algs[alg].kty != k->kty)
        return false;
    return k->alg == ALG_ANY || k->alg == alg;
}

/* A NumericDate claim (RFC 7519 2: seconds since the epoch, may be fractional). Returns 0
 * absent, 1 present with *OUT set, -1 present but not a number (a string "1300819380" is
 * refused: being lenient here is how two parsers come to disagree about a token). */
static int numeric_date(json_t *claims, const char *name, double *out)
{
    json_t *v = json_object_get(claims, name);
    if (v == NULL)
        return 0;
    if (!json_is_number(v))
        return -1;
    *out = json_number_value(v);
    return 1;
}

/* exp, nbf and iat, each with SKEW seconds of tolerance for clocks that disagree:
 *   expired        when now >= exp + skew   (RFC 7519 4.1.4: valid only *before* exp)
 *   not yet valid  when now <  nbf - skew   (4.1.5: valid on or after nbf)
 *   from the future when iat > now + skew   (a token cannot be issued after "now") */
static gw_jwt_err_t check_dates(json_t *claims, const gw_jwt_policy_t *p, int64_t now)
{
    double exp = 0, nbf = 0, iat = 0, t = (double)now, skew = (double)p->skew;
    int has_exp = numeric_date(claims, "exp", &exp);
    int has_nbf = numeric_date(claims, "nbf", &nbf);
    int has_iat = numeric_date(claims, "iat", &iat);
    if (has_exp < 0 || has_nbf < 0 || has_iat < 0)
        return GW_JWT_ECLAIM_TYPE;
    if (!has_exp && p->require_exp)
        return GW_JWT_ENOEXP;
    if (has_exp && t >= exp + skew)
        return GW_JWT_EEXPIRED;
    if (has_nbf && t < nbf - skew)
        return GW_JWT_ENOTYET;
    if (has_iat && iat > t + skew)
        return GW_JWT_EIAT_FUTURE;
    return GW_JWT_OK;
}

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s, list[i]) == 0)
            return true;
    }
    return false;
}

/* iss must equal one allowed issuer exactly (no prefix, no case folding: issuers are URLs
 * and "https://idp.example" vs "https://idp.example.evil" must differ). aud is a string or
 * an array of strings (RFC 7519 4.1.3), and one of them must be ours. */
static gw_jwt_err_t check_iss_aud(json_t *claims, const gw_jwt_policy_t *p)
{
    json_t *iss = json_object_get(claims, "iss"), *aud = json_object_get(claims, "aud");
    if (iss != NULL && !json_is_string(iss))
        return GW_JWT_ECLAIM_TYPE;
    if (p->n_issuers > 0 &&
        (iss == NULL || !in_list(json_string_value(iss), p->issuers, p->n_issuers)))
        return GW_JWT_EISSUER;
    if (aud != NULL && !json_is_string(aud) && !json_is_array(aud))
        return GW_JWT_ECLAIM_TYPE;
    bool ok = p->n_audiences == 0;
    if (json_is_string(aud))
        ok = ok || in_list(json_string_value(aud), p->audiences, p->n_audiences);
    size_t i;
    json_t *a;
    json_array_foreach(aud, i, a)
    {
        if (!json_is_string(a))
            return GW_JWT_ECLAIM_TYPE;
        ok = ok || in_list(json_string_value(a), p->audiences, p->n_audiences);
    }
    return ok ? GW_JWT_OK : GW_JWT_EAUDIENCE;
}

/* All claim checks on a payload whose signature is already verified. */
static gw_jwt_err_t check_claims(json_t *claims, const gw_jwt_policy_t *p, int64_t now)
{
    gw_jwt_err_t e = check_dates(claims, p, now);
    return e != GW_JWT_OK ? e : check_iss_aud(claims, p);
}
/* END LAB */

/* Constant-time equality: the time taken must not reveal how many leading bytes of a forged
 * MAC were right, or the MAC can be found byte by byte (a timing oracle). */
static bool ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= a[i] ^ b[i];
    return d == 0;
}

/* Does the signature in T verify under K? HASH is SHA-256 of the signing input (RS256 and
 * ES256 sign the hash; HMAC is computed over the input itself). */
static bool sig_ok(const jwt_key_t *k, const parts_t *t, const uint8_t hash[32])
{
    uint8_t out[64];
    if (k->kty == GW_JWT_KEY_HMAC) {
        br_hmac_key_context kc;
        br_hmac_context hc;
        br_hmac_key_init(&kc, &br_sha256_vtable, k->data, k->len);
        br_hmac_init(&hc, &kc, 0);
        br_hmac_update(&hc, t->signing_input, t->signing_len);
        br_hmac_out(&hc, out);
        return t->sig_len == 32 && ct_equal(out, t->sig, 32);
    }
    if (k->kty == GW_JWT_KEY_RSA) {
        /* BearSSL recovers the hash from the signature (and checks the padding and the
         * DigestInfo with the SHA-256 OID); comparing it with ours is our job. */
        br_rsa_public_key pk = {(unsigned char *)k->data, k->len, (unsigned char *)k->e, k->elen};
        return br_rsa_pkcs1_vrfy_get_default()(t->sig, t->sig_len, BR_HASH_OID_SHA256, 32, &pk,
                                               out) &&
               memcmp(out, hash, 32) == 0;
    }
    /* JWS ES256 signatures are raw r||s, 32 bytes each (RFC 7518 3.4), not DER. */
    br_ec_public_key pk = {BR_EC_secp256r1, (unsigned char *)k->data, k->len};
    return t->sig_len == 64 &&
           br_ecdsa_vrfy_raw_get_default()(br_ec_get_default(), hash, 32, &pk, t->sig, 64);
}

/* Tries the keys the header allows: the kid's, or every key of the right type. */
static gw_jwt_err_t verify_signature(const gw_jwt_keyset_t *ks, const parts_t *t)
{
    uint8_t hash[32];
    br_sha256_context sc;
    br_sha256_init(&sc);
    br_sha256_update(&sc, t->signing_input, t->signing_len);
    br_sha256_out(&sc, hash);
    bool tried = false;
    for (size_t i = 0; i < ks->n; i++) {
        const jwt_key_t *k = &ks->keys[i];
        if (t->has_kid && (!k->has_kid || strcmp(k->kid, t->kid) != 0))
            continue;
        if (!key_allows(k, t->alg))
            continue;
        tried = true;
        if (sig_ok(k, t, hash))
            return GW_JWT_OK;
    }
    return tried ? GW_JWT_ESIGNATURE : GW_JWT_ENOKEY;
}

/* Decodes base64url then JSON; NULL on any error. The duplicate-key check matters: with
 * {"alg":"RS256","alg":"none"}, parsers that keep the first or the last value disagree. */
static json_t *decode_json(const char *b64, size_t len)
{
    uint8_t buf[GW_JWT_MAX_TOKEN / 4 * 3];
    long n = gw_jwt_b64url_decode(b64, len, buf, sizeof buf);
    if (n <= 0)
        return NULL;
    return json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
}

/* Reads alg and kid from the header (base64url at H, HLEN bytes) into T. */
static gw_jwt_err_t parse_header(parts_t *t, const char *h, size_t hlen)
{
    json_t *hdr = decode_json(h, hlen);
    gw_jwt_err_t e = GW_JWT_OK;
    if (!json_is_object(hdr)) {
        json_decref(hdr);
        return hdr ? GW_JWT_EHEADER : GW_JWT_EFORMAT;
    }
    json_t *alg = json_object_get(hdr, "alg"), *kid = json_object_get(hdr, "kid");
    json_t *typ = json_object_get(hdr, "typ");
    /* crit lists extensions the verifier MUST understand (RFC 7515 4.1.11); we know none. */
    if (!json_is_string(alg) || (typ && !json_is_string(typ)) || json_object_get(hdr, "crit"))
        e = GW_JWT_EHEADER;
    else if (strcasecmp(json_string_value(alg), "none") == 0)
        e = GW_JWT_EALG_NONE;
    else if ((t->alg = alg_by_name(json_string_value(alg))) == ALG_ANY)
        e = GW_JWT_EALG;
    else if (kid && (!json_is_string(kid) || json_string_length(kid) > GW_JWT_MAX_KID ||
                     strlen(json_string_value(kid)) != json_string_length(kid)))
        e = GW_JWT_EHEADER;
    else if ((t->has_kid = kid != NULL))
        memcpy(t->kid, json_string_value(kid), json_string_length(kid) + 1);
    json_decref(hdr);
    return e;
}

/* Splits TOKEN into its three parts and parses the header. */
static gw_jwt_err_t split(parts_t *t, const char *token, size_t len)
{
    const char *d1 = memchr(token, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (d2 == NULL || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)) != NULL)
        return GW_JWT_EFORMAT;
    t->signing_input = token;
    t->signing_len = (size_t)(d2 - token);
    t->payload = d1 + 1;
    t->payload_len = (size_t)(d2 - d1 - 1);
    /* The header first, so that an unsigned token ("alg":"none", empty signature) is
     * reported as what it is rather than as a malformed one. */
    gw_jwt_err_t e = parse_header(t, token, (size_t)(d1 - token));
    if (e != GW_JWT_OK)
        return e;
    size_t slen = len - (size_t)(d2 + 1 - token);
    long n = gw_jwt_b64url_decode(d2 + 1, slen, t->sig, sizeof t->sig);
    if (n <= 0)
        return GW_JWT_EFORMAT;
    t->sig_len = (size_t)n;
    return GW_JWT_OK;
}

/* see jwt.h */
gw_jwt_err_t gw_jwt_verify(const gw_jwt_keyset_t *ks, const gw_jwt_policy_t *policy, int64_t now,
                           const char *token, size_t len, json_t **claims)
{
    parts_t t;
    if (claims != NULL)
        *claims = NULL;
    if (len > GW_JWT_MAX_TOKEN)
        return GW_JWT_ETOOBIG;
    gw_jwt_err_t e = split(&t, token, len);
    if (e == GW_JWT_OK)
        e = verify_signature(ks, &t);
    if (e != GW_JWT_OK)
        return e;
    /* Only now, with the signature good, is the payload worth parsing. */
    json_t *payload = decode_json(t.payload, t.payload_len);
    if (!json_is_object(payload))
        e = GW_JWT_EPAYLOAD;
    else
        e = check_claims(payload, policy, now);
    if (e == GW_JWT_OK && claims != NULL)
        *claims = json_incref(payload);
    json_decref(payload);
    return e;
}
