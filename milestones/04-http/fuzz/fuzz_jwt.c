/* fuzz_jwt.c - JWT parse + verify (jwt.c) against a fixed key set: an HMAC key "h", the RSA
 * key "rsa1" and the EC key (no kid) of RFC 7515's examples.
 *
 * Input: a mode byte, a policy byte, 4 bytes of "now" (seconds), then
 *   mode even: the token itself, any bytes;
 *   mode odd:  2 bytes of header length, the header JSON, then the payload JSON: the target
 *              signs them with key "h" (HS256) so that verification gets past the signature
 *              and the claims rules are exercised.
 * Policy bits: 0 require_exp, 1 issuers ["joe", "idp"], 2 audiences ["gw", "api"], 3 skew 0.
 *
 * Invariants: the result is one of gw_jwt_err_t, with claims exactly when it is GW_JWT_OK,
 * and a JSON object then; a token the target signed with "h" under a header that names
 * HS256 (and kid "h" or none) never fails on its signature or key; an accepted token meets
 * the policy (exp in the future within the skew when required, nbf and iat not ahead, iss
 * and aud among those allowed). */
#include <bearssl.h>
#include <string.h>

#include "04-http/jwt.h"
#include "fuzz/gwfuzz.h"

static const char jwks[] =
    "{\"keys\":["
    "{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"},"
    "{\"kty\":\"RSA\",\"kid\":\"rsa1\",\"use\":\"sig\",\"n\":\""
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d"
    "4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexM"
    "dbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvU"
    "K-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ\",\"e\":\"AQAB\"},"
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
    "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";
static const uint8_t secret_h[32] = "0123456789abcdef0123456789abcdef";

static gw_jwt_keyset_t *keys(void)
{
    static gw_jwt_keyset_t *ks;
    if (ks == NULL) { /* built once, like a config's: read-only from then on */
        char err[256];
        ks = gw_jwt_keyset_new();
        GW_FZ_CHECK(ks && gw_jwt_keyset_add_jwks(ks, jwks, strlen(jwks), err, sizeof err) == 3,
                    "key set: %s", err);
    }
    return ks;
}

static size_t b64url(const uint8_t *in, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = a[v >> 18 & 63];
        out[o++] = a[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = a[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = a[v & 63];
    }
    return o;
}

/* header.payload.signature with key "h"; malloc'd, length in *LEN. */
static char *sign(const uint8_t *hdr, size_t hn, const uint8_t *pl, size_t pn, size_t *len)
{
    char *t = malloc((hn + pn) * 4 / 3 + 64);
    if (!t)
        abort();
    size_t n = b64url(hdr, hn, t);
    t[n++] = '.';
    n += b64url(pl, pn, t + n);
    br_hmac_key_context kc;
    br_hmac_context hc;
    uint8_t mac[32];
    br_hmac_key_init(&kc, &br_sha256_vtable, secret_h, sizeof secret_h);
    br_hmac_init(&hc, &kc, 0);
    br_hmac_update(&hc, t, n);
    br_hmac_out(&hc, mac);
    t[n++] = '.';
    n += b64url(mac, sizeof mac, t + n);
    *len = n;
    return t;
}

/* True when HDR is a header that our signature must satisfy: an object whose alg is "HS256",
 * with kid absent or "h", no crit, and typ (if any) a string. */
static bool signed_for_us(const uint8_t *hdr, size_t n)
{
    json_t *h = json_loadb((const char *)hdr, n, JSON_REJECT_DUPLICATES, NULL);
    bool ok = json_is_object(h) && json_is_string(json_object_get(h, "alg")) &&
              strcmp(json_string_value(json_object_get(h, "alg")), "HS256") == 0 &&
              json_string_length(json_object_get(h, "alg")) == 5 &&
              json_object_get(h, "crit") == NULL;
    json_t *kid = json_object_get(h, "kid"), *typ = json_object_get(h, "typ");
    ok = ok && (kid == NULL || (json_is_string(kid) && json_string_length(kid) == 1 &&
                                strcmp(json_string_value(kid), "h") == 0));
    ok = ok && (typ == NULL || json_is_string(typ));
    json_decref(h);
    return ok;
}

static bool listed(const char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

/* An accepted token's claims meet the policy. */
static void check_claims(json_t *c, const gw_jwt_policy_t *pol, int64_t now)
{
    GW_FZ_CHECK(json_is_object(c), "claims are not an object");
    json_t *exp = json_object_get(c, "exp"), *nbf = json_object_get(c, "nbf");
    json_t *iat = json_object_get(c, "iat"), *iss = json_object_get(c, "iss");
    json_t *aud = json_object_get(c, "aud");
    GW_FZ_CHECK(!pol->require_exp || exp, "accepted without exp");
    if (exp)
        GW_FZ_CHECK(json_is_number(exp) && (double)now < json_number_value(exp) + pol->skew,
                    "accepted expired token (exp %g, now %lld)", json_number_value(exp),
                    (long long)now);
    if (nbf)
        GW_FZ_CHECK(json_is_number(nbf) && (double)now >= json_number_value(nbf) - pol->skew,
                    "accepted before nbf");
    if (iat)
        GW_FZ_CHECK(json_is_number(iat) && json_number_value(iat) <= (double)now + pol->skew,
                    "accepted iat in the future");
    if (pol->n_issuers)
        GW_FZ_CHECK(json_is_string(iss) &&
                        listed(pol->issuers, pol->n_issuers, json_string_value(iss)),
                    "accepted issuer not listed");
    if (pol->n_audiences) {
        bool any =
            json_is_string(aud) && listed(pol->audiences, pol->n_audiences, json_string_value(aud));
        for (size_t i = 0; json_is_array(aud) && i < json_array_size(aud); i++) {
            json_t *a = json_array_get(aud, i);
            any = any || (json_is_string(a) &&
                          listed(pol->audiences, pol->n_audiences, json_string_value(a)));
        }
        GW_FZ_CHECK(any, "accepted audience not listed");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const issuers[] = {"joe", "idp"}, *const audiences[] = {"gw", "api"};
    gw_fz_t f = {data, size};
    uint8_t mode = gw_fz_u8(&f), pb = gw_fz_u8(&f);
    int64_t now = (int64_t)((uint32_t)gw_fz_u16(&f) << 16 | gw_fz_u16(&f));
    gw_jwt_policy_t pol = gw_jwt_policy_default();
    pol.require_exp = pb & 1;
    if (pb & 2) {
        pol.issuers = issuers;
        pol.n_issuers = 2;
    }
    if (pb & 4) {
        pol.audiences = audiences;
        pol.n_audiences = 2;
    }
    if (pb & 8)
        pol.skew = 0;
    char *token;
    size_t len;
    bool ours = false;
    if (mode & 1) {
        size_t hn = gw_fz_u16(&f) % (f.n + 1);
        ours = signed_for_us(f.p, hn);
        token = sign(f.p, hn, f.p + hn, f.n - hn, &len);
    } else {
        token = gw_fz_dup(f.p, f.n);
        len = f.n;
    }
    json_t *claims = (json_t *)1;
    gw_jwt_err_t rc = gw_jwt_verify(keys(), &pol, now, token, len, &claims);
    GW_FZ_CHECK(rc >= GW_JWT_OK && rc <= GW_JWT_EAUDIENCE && gw_jwt_strerror(rc) != NULL,
                "result %d", (int)rc);
    GW_FZ_CHECK((rc == GW_JWT_OK) == (claims != NULL), "claims %p with result %d", (void *)claims,
                (int)rc);
    if (ours && len <= GW_JWT_MAX_TOKEN)
        GW_FZ_CHECK(rc != GW_JWT_ESIGNATURE && rc != GW_JWT_ENOKEY && rc != GW_JWT_EALG &&
                        rc != GW_JWT_EHEADER,
                    "a token signed with key h under an HS256 header: %s", gw_jwt_strerror(rc));
    if (rc == GW_JWT_OK) {
        check_claims(claims, &pol, now);
        json_decref(claims);
    }
    free(token);
    return 0;
}
