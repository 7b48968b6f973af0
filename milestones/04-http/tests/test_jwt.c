/* test_jwt.c - JWT verification: the RFC 7515/7519 examples, tokens signed here with BearSSL,
 * X.509 keys, and the attacks (alg none, algorithm confusion, tampering, malformed input). */
#include "gwtest.h"

#include <bearssl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "04-http/jwt.h"
#include "fixtures/jwt_certs.h"
#include "fixtures/jwt_fuzz_pem.h"

/* ---- RFC 7515 appendix A vectors ---------------------------------------------------------- */

/* A.1 (HS256; also the example of RFC 7519 section 3.1). Its header has CRLFs in it, which
 * is why tokens must be verified over the bytes received, never over re-encoded JSON. */
static const char a1_token[] = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
                               "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"
                               "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
                               "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
static const char a1_jwks[] =
    "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-"
    "EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow\"}]}";

/* A.2 (RS256). */
static const char a2_token[] =
    "eyJhbGciOiJSUzI1NiJ9."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0"
    "cnVlfQ."
    "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5"
    "jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1"
    "L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOY"
    "EUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
#define A2_N                                                                                       \
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-"                        \
    "4qPCJrcS2mJPMEzP1Pt0Bm4d"                                                                     \
    "4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-"                      \
    "bSf63kpaSHSXndS5z5rexM"                                                                       \
    "dbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_"                 \
    "I5IhlJH7aGhyxXFvU"                                                                            \
    "K-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"
static const char a2_jwks[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"rsa1\",\"use\":\"sig\",\"n\":\"" A2_N
    "\",\"e\":\"AQAB\"}]}";

/* A.3 (ES256). ECDSA signatures are randomised; this one is simply the RFC's. */
static const char a3_token[] =
    "eyJhbGciOiJFUzI1NiJ9."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0"
    "cnVlfQ."
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
static const char a3_jwks[] = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
                              "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
                              "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";

#define RFC_EXP 1300819380 /* the exp of every RFC example */
#define RFC_NOW (RFC_EXP - 3600)

/* Our own HS256 keys: 32 bytes each, "a" and "b". */
static const uint8_t secret_a[32] = "0123456789abcdef0123456789abcdef";
static const uint8_t secret_b[32] = "fedcba9876543210fedcba9876543210";

#define NOW 1700000000 /* a made-up wall clock, seconds */

/* ---- helpers ---------------------------------------------------------------------------- */

static gw_jwt_keyset_t *jwks(const char *doc)
{
    char err[256] = "";
    gw_jwt_keyset_t *ks = gw_jwt_keyset_new();
    assert_non_null(ks);
    if (gw_jwt_keyset_add_jwks(ks, doc, strlen(doc), err, sizeof err) < 0)
        fail_msg("JWKS rejected: %s", err);
    return ks;
}

static gw_jwt_keyset_t *secrets(void)
{
    gw_jwt_keyset_t *ks = gw_jwt_keyset_new();
    assert_non_null(ks);
    assert_int_equal(gw_jwt_keyset_add_secret(ks, "a", secret_a, 32, NULL, 0), 0);
    assert_int_equal(gw_jwt_keyset_add_secret(ks, "b", secret_b, 32, NULL, 0), 0);
    return ks;
}

static gw_jwt_err_t verify_at(const gw_jwt_keyset_t *ks, const gw_jwt_policy_t *p, int64_t now,
                              const char *token)
{
    return gw_jwt_verify(ks, p, now, token, strlen(token), NULL);
}

static gw_jwt_err_t verify(const gw_jwt_keyset_t *ks, int64_t now, const char *token)
{
    gw_jwt_policy_t p = gw_jwt_policy_default();
    return verify_at(ks, &p, now, token);
}

/* Writes b64(HEADER) "." b64(PAYLOAD) into OUT; returns its length. */
static size_t signing_input(const char *header, const char *payload, char *out)
{
    size_t n = gw_test_b64url((const uint8_t *)header, strlen(header), out);
    out[n++] = '.';
    return n + gw_test_b64url((const uint8_t *)payload, strlen(payload), out + n);
}

/* An HS256 token over HEADER and PAYLOAD with SECRET (any length), in OUT (4 KiB). */
static const char *hs256(const char *header, const char *payload, const uint8_t *secret,
                         size_t slen, char *out)
{
    br_hmac_key_context kc;
    br_hmac_context hc;
    uint8_t mac[32];
    size_t n = signing_input(header, payload, out);
    br_hmac_key_init(&kc, &br_sha256_vtable, secret, slen);
    br_hmac_init(&hc, &kc, 0);
    br_hmac_update(&hc, out, n);
    br_hmac_out(&hc, mac);
    out[n++] = '.';
    gw_test_b64url(mac, 32, out + n);
    return out;
}

/* An HS256 token with kid "a" and secret_a over PAYLOAD. */
static const char *tok_a(const char *payload, char *out)
{
    return hs256("{\"alg\":\"HS256\",\"kid\":\"a\",\"typ\":\"JWT\"}", payload, secret_a, 32, out);
}

/* Payload with the given extra members and a one-hour exp around NOW. */
#define CLAIMS(extra) "{\"sub\":\"alice\",\"iat\":1700000000,\"exp\":1700003600" extra "}"

/* Decodes part PART (0..2) of TOKEN, XORs byte AT with MASK, re-encodes into OUT. */
static const char *flip(const char *token, int part, size_t at, uint8_t mask, char *out)
{
    const char *p = token, *end;
    for (int i = 0; i < part; i++)
        p = strchr(p, '.') + 1;
    end = strchr(p, '.');
    end = end ? end : p + strlen(p);
    uint8_t raw[1024];
    long n = gw_jwt_b64url_decode(p, (size_t)(end - p), raw, sizeof raw);
    assert_true(n > (long)at);
    raw[at] ^= mask;
    size_t o = (size_t)(p - token);
    memcpy(out, token, o);
    o += gw_test_b64url(raw, (size_t)n, out + o);
    memcpy(out + o, end, strlen(end) + 1);
    return out;
}

/* ---- base64url --------------------------------------------------------------------------- */

static void b64url_decodes_rfc4648_vectors(void **state)
{
    (void)state;
    static const char *const enc[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    uint8_t out[16];
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(gw_jwt_b64url_decode(enc[i], strlen(enc[i]), out, sizeof out), (long)i);
        assert_memory_equal(out, "foobar", i);
    }
    assert_int_equal(gw_jwt_b64url_decode("-_8", 3, out, sizeof out), 2);
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(out[1], 0xff);
}

static void b64url_rejects_padding_and_foreign_characters(void **state)
{
    (void)state;
    static const char *const bad[] = {"Zg==", "Zm9v=", "Zm+v", "Zm/v", "Zm9 v", "Zm9v\n", "Z\0g"};
    uint8_t out[16];
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(gw_jwt_b64url_decode(bad[i], strlen(bad[i]), out, sizeof out), -1);
    assert_int_equal(gw_jwt_b64url_decode(bad[6], 3, out, sizeof out), -1);
}

static void b64url_rejects_length_one_mod_four(void **state)
{
    (void)state;
    uint8_t out[16];
    assert_int_equal(gw_jwt_b64url_decode("Zm9vY", 5, out, sizeof out), -1);
    assert_int_equal(gw_jwt_b64url_decode("Z", 1, out, sizeof out), -1);
}

static void b64url_rejects_nonzero_trailing_bits(void **state)
{
    (void)state;
    uint8_t out[16];
    /* "Zh" carries 'f' plus four set bits that no encoder would write. */
    assert_int_equal(gw_jwt_b64url_decode("Zh", 2, out, sizeof out), -1);
    assert_int_equal(gw_jwt_b64url_decode("Zm9", 3, out, sizeof out), -1);
}

static void b64url_rejects_output_over_capacity(void **state)
{
    (void)state;
    uint8_t out[6];
    assert_int_equal(gw_jwt_b64url_decode("Zm9vYmFy", 8, out, 5), -1);
    assert_int_equal(gw_jwt_b64url_decode("Zm9vYmFy", 8, out, 6), 6);
}

/* ---- RFC examples --------------------------------------------------------------------------- */

static void verify_rfc7515_a1_hs256(void **state)
{
    (void)state;
    gw_jwt_keyset_t *ks = jwks(a1_jwks);
    assert_int_equal(verify(ks, RFC_NOW, a1_token), GW_JWT_OK);
    gw_jwt_keyset_free(ks);
}

static void verify_rfc7515_a2_rs256(void **state)
{
    (void)state;
    gw_jwt_keyset_t *ks = jwks(a2_jwks);
    assert_int_equal(verify(ks, RFC_NOW, a2_token), GW_JWT_OK);
    gw_jwt_keyset_free(ks);
}

static void verify_rfc7515_a3_es256(void **state)
{
    (void)state;
    gw_jwt_keyset_t *ks = jwks(a3_jwks);
    assert_int_equal(verify(ks, RFC_NOW, a3_token), GW_JWT_OK);
    gw_jwt_keyset_free(ks);
}

/* RFC 7519 3.1: the same token read as a JWT; the claims come back for the middleware. */
static void verify_rfc7519_example_returns_claims(void **state)
{
    (void)state;
    gw_jwt_keyset_t *ks = jwks(a1_jwks);
    gw_jwt_policy_t p = gw_jwt_policy_default();
    const char *iss[] = {"joe"};
    p.issuers = iss, p.n_issuers = 1;
    json_t *claims = NULL;
    assert_int_equal(gw_jwt_verify(ks, &p, RFC_NOW, a1_token, strlen(a1_token), &claims),
                     GW_JWT_OK);
    assert_string_equal(json_string_value(json_object_get(claims, "iss")), "joe");
    assert_true(json_is_true(json_object_get(claims, "http://example.com/is_root")));
    assert_int_equal(json_integer_value(json_object_get(claims, "exp")), RFC_EXP);
    json_decref(claims);
    gw_jwt_keyset_free(ks);
}

static void verify_failure_returns_no_claims(void **state)
{
    (void)state;
    gw_jwt_keyset_t *ks = jwks(a1_jwks);
    gw_jwt_policy_t p = gw_jwt_policy_default();
    json_t *claims = (json_t *)&p; /* anything not NULL */
    assert_int_equal(gw_jwt_verify(ks, &p, RFC_EXP + 3600, a1_token, strlen(a1_token), &claims),
                     GW_JWT_EEXPIRED);
    assert_null(claims);
    gw_jwt_keyset_free(ks);
}

/* ---- ES256 signed here ------------------------------------------------------------------ */

/* A P-256 key pair from a fixed seed (STYLE.md: fixed inputs), its JWKS, and a token. */
static void es256_fixture(const char *kid, char *jwks_out, size_t jwks_cap, char *token_out)
{
    br_hmac_drbg_context rng;
    br_ec_private_key sk;
    br_ec_public_key pk;
    uint8_t skbuf[BR_EC_KBUF_PRIV_MAX_SIZE], pkbuf[BR_EC_KBUF_PUB_MAX_SIZE], hash[32], sig[64];
    const br_ec_impl *ec = br_ec_get_default();
    br_hmac_drbg_init(&rng, &br_sha256_vtable, "gw04 jwt test seed", 18);
    assert_true(br_ec_keygen(&rng.vtable, ec, &sk, skbuf, BR_EC_secp256r1) > 0);
    assert_int_equal(br_ec_compute_pub(ec, &pk, pkbuf, &sk), 65);
    char x[64], y[64], header[128];
    gw_test_b64url(pk.q + 1, 32, x);
    gw_test_b64url(pk.q + 33, 32, y);
    snprintf(jwks_out, jwks_cap,
             "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\",\"x\":\"%s\","
             "\"y\":\"%s\"}]}",
             kid, x, y);
    snprintf(header, sizeof header, "{\"alg\":\"ES256\",\"kid\":\"%s\"}", kid);
    size_t n = signing_input(header, CLAIMS(""), token_out);
    br_sha256_context sc;
    br_sha256_init(&sc);
    br_sha256_update(&sc, token_out, n);
    br_sha256_out(&sc, hash);
    assert_int_equal(br_ecdsa_i31_sign_raw(ec, &br_sha256_vtable, hash, &sk, sig), 64);
    token_out[n++] = '.';
    gw_test_b64url(sig, 64, token_out + n);
}

static void verify_es256_signed_with_bearssl(void **state)
{
    (void)state;
    char doc[512], token[1024], bad[1024];
    es256_fixture("ec1", doc, sizeof doc, token);
    gw_jwt_keyset_t *ks = jwks(doc);
    assert_int_equal(verify(ks, NOW, token), GW_JWT_OK);
    assert_int_equal(verify(ks, NOW, flip(token, 2, 40, 0x01, bad)), GW_JWT_ESIGNATURE);
    gw_jwt_keyset_free(ks);
}

/* ---- X.509 --------------------------------------------------------------------------- */

static void keyset_loads_rsa_certificate(void **state)
{
    (void)state;
    char err[128];
    gw_jwt_keyset_t *ks = gw_jwt_keyset_new();
    assert_int_equal(
        gw_jwt_keyset_add_pem(ks, "cert-rsa", cert_rsa_pem, strlen(cert_rsa_pem), err, sizeof err),
        1);
    assert_int_equal(verify(ks, NOW, cert_rsa_token), GW_JWT_OK);
    gw_jwt_keyset_free(ks);
}

static void keyset_loads_ec_certificate(void **state)
{
    (void)state;
    char err[128];
    gw_jwt_keyset_t *ks = gw_jwt_keyset_new();
    assert_int_equal(
        gw_jwt_keyset_add_pem(ks, "cert-ec", cert_ec_pem, strlen(cert_ec_pem), err, sizeof err), 1);
    assert_int_equal(verify(ks, NOW, cert_ec_token), GW_JWT_OK);
    gw_jwt_keyset_free(ks);
}

static void keyset_pem_holds_several_certificates(void **state)
{
    (void)state;
    char both[4096], err[128];
    snprintf(both, sizeof both, "%s%s", cert_rsa_pem, cert_ec_pem);
    gw_jwt_keyset_t *ks = gw_jwt_keyset_new();
    /* No kid given: the keys then serve tokens by type, kid or not... */
    assert_int_equal(gw_jwt_keyset_add_pem(ks, NULL, both, strlen(both), err, sizeof err), 2);
    /* ...except that a token naming a kid only matches a key with that kid. */
    assert_int_equal(verify(ks, NOW, cert_ec_token), GW_JWT_ENOKEY);
    gw_jwt_keyset_free(ks);
}

static void keyset_rejects_pem_without_certificate(void **state)
{
    (void)state;
    static const char key_only[] =
        "-----BEGIN PUBLIC KEY-----\n"
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEf83OJ3D2xF1Bg8vub9tLe1gHMzV7\n"
        "6e8Tus9uPHvRVEXH8UTNG72bfocs3+257rn0s2ldbqkLJK2KRiMohYjlrQ==\n"
        "-----END PUBLIC KEY-----\n";
    char err[128] = "";
    gw_jwt_keyset_t *ks = gw_jwt_keyset_new();
    assert_int_equal(gw_jwt_keyset_add_pem(ks, "k", key_only, strlen(key_only), err, sizeof err),
                     -1);
    gw_assert_contains(err, "no CERTIFICATE");
    assert_int_equal(gw_jwt_keyset_add_pem(ks, "k", "garbage", 7, err, sizeof err), -1);
    assert_int_equal(gw_jwt_keyset_count(ks), 0);
    gw_jwt_keyset_free(ks);
}

static void keyset_rejects_truncated_certificate(void **state)
{
    (void)state;
    char cut[2048], err[128] = "";
    size_t half = strlen(cert_rsa_pem) / 2;
    snprintf(cut, sizeof cut, "%.*s\n-----END CERTIFICATE-----\n", (int)half, cert_rsa_pem);
    gw_jwt_keyset_t *ks = gw_jwt_keyset_new();
    assert_int_equal(gw_jwt_keyset_add_pem(ks, "k", cut, strlen(cut), err, sizeof err), -1);
    assert_int_equal(gw_jwt_keyset_count(ks), 0);
    gw_jwt_keyset_free(ks);
}

/* Writes TEXT to a new temporary file; returns its path in PATH (64 bytes). */
static void temp_file(const char *text, size_t len, char *path)
{
    snprintf(path, 64, "/tmp/gw-test-jwt-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

static void keyset_loads_jwks_and_pem_files(void **state)
{
    (void)state;
    char jpath[64], ppath[64], err[256] = "";
    temp_file(a2_jwks, strlen(a2_jwks), jpath);
    temp_file(cert_ec_pem, strlen(cert_ec_pem), ppath);
    gw_jwt_keyset_t *ks = gw_jwt_keyset_new();
    assert_int_equal(gw_jwt_keyset_add_file(ks, jpath, NULL, err, sizeof err), 1);
    assert_int_equal(gw_jwt_keyset_add_file(ks, ppath, "cert-ec", err, sizeof err), 1);
    assert_int_equal(verify(ks, RFC_NOW, a2_token), GW_JWT_OK);
    assert_int_equal(verify(ks, NOW, cert_ec_token), GW_JWT_OK);
    unlink(jpath);
    unlink(ppath);
    gw_jwt_keyset_free(ks);
}

static void keyset_file_errors_name_the_file(void **state)
{
    (void)state;
    char path[64], err[256] = "";
    static char big[GW_JWT_MAX_KEY_FILE + 1];
    memset(big, ' ', sizeof big);
    temp_file(big, sizeof big, path);
    gw_jwt_keyset_t *ks = gw_jwt_keyset_new();
    assert_int_equal(gw_jwt_keyset_add_file(ks, path, NULL, err, sizeof err), -1);
    gw_assert_contains(err, path);
    gw_assert_contains(err, "1 MiB");
    unlink(path);
    assert_int_equal(gw_jwt_keyset_add_file(ks, "/nonexistent/jwks.json", NULL, err, sizeof err),
                     -1);
    gw_assert_contains(err, "/nonexistent/jwks.json: No such file");
    temp_file("{\"keys\":[", 9, path);
    assert_int_equal(gw_jwt_keyset_add_file(ks, path, NULL, err, sizeof err), -1);
    gw_assert_contains(err, "JWKS");
    unlink(path);
    assert_int_equal(gw_jwt_keyset_count(ks), 0);
    gw_jwt_keyset_free(ks);
}

/* ---- key sets ------------------------------------------------------------------------ */

static int load(gw_jwt_keyset_t *ks, const char *doc, char *err, size_t errlen)
{
    return gw_jwt_keyset_add_jwks(ks, doc, strlen(doc), err, errlen);
}

static void keyset_rejects_weak_rsa_key(void **state)
{
    (void)state;
    char doc[512], err[128] = "";
    /* 170 characters of A.2's modulus and an "A": 128 bytes, a 1024-bit number. */
    snprintf(doc, sizeof doc, "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%.170sA\",\"e\":\"AQAB\"}]}",
             A2_N);
    gw_jwt_keyset_t *ks = gw_jwt_keyset_new();
    assert_int_equal(load(ks, doc, err, sizeof err), -1);
    gw_assert_contains(err, "2048");
    gw_jwt_keyset_free(ks);
}

static void keyset_rejects_short_secret(void **state)
{
    (void)state;
    char err[128] = "";
    gw_jwt_keyset_t *ks = gw_jwt_keyset_new();
    assert_int_equal(load(ks, "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}", err, sizeof err),
                     -1);
    gw_assert_contains(err, "keys[0]");
    assert_int_equal(gw_jwt_keyset_add_secret(ks, NULL, secret_a, 31, err, sizeof err), -1);
    gw_jwt_keyset_free(ks);
}

static void keyset_rejects_point_off_curve(void **state)
{
    (void)state;
    char err[128] = "";
    gw_jwt_keyset_t *ks = gw_jwt_keyset_new();
    /* A.3's y with a low bit changed: still 32 bytes, no longer on P-256. */
    assert_int_equal(load(ks,
                          "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
                          "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
                          "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5aw\"}]}",
                          err, sizeof err),
                     -1);
    gw_assert_contains(err, "curve");
    gw_jwt_keyset_free(ks);
}

static void keyset_skips_encryption_and_unsupported_keys(void **state)
{
    (void)state;
    char err[128] = "";
    gw_jwt_keyset_t *ks = gw_jwt_keyset_new();
    assert_int_equal(load(ks,
                          "{\"keys\":[{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"x\",\"e\":\"y\"},"
                          "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AA\"},"
                          "{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"},"
                          "{\"kty\":\"RSA\",\"alg\":\"RS384\",\"n\":\"x\",\"e\":\"y\"}]}",
                          err, sizeof err),
                     0);
    assert_int_equal(gw_jwt_keyset_count(ks), 0);
    gw_jwt_keyset_free(ks);
}

static void keyset_rejects_alg_contradicting_key_type(void **state)
{
    (void)state;
    char err[128] = "";
    gw_jwt_keyset_t *ks = gw_jwt_keyset_new();
    assert_int_equal(load(ks,
                          "{\"keys\":[{\"kty\":\"oct\",\"alg\":\"RS256\",\"k\":"
                          "\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}",
                          err, sizeof err),
                     -1);
    gw_assert_contains(err, "alg");
    gw_jwt_keyset_free(ks);
}

static void keyset_failed_load_leaves_set_unchanged(void **state)
{
    (void)state;
    char err[128] = "";
    gw_jwt_keyset_t *ks = jwks(a1_jwks);
    assert_int_equal(load(ks,
                          "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"ok\",\"k\":"
                          "\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"},"
                          "{\"kty\":\"RSA\",\"n\":\"!!\",\"e\":\"AQAB\"}]}",
                          err, sizeof err),
                     -1);
    gw_assert_contains(err, "keys[1]");
    assert_int_equal(gw_jwt_keyset_count(ks), 1);
    gw_jwt_keyset_free(ks);
}

static void keyset_rejects_malformed_documents(void **state)
{
    (void)state;
    static const char *const bad[] = {"",
                                      "{",
                                      "[]",
                                      "{\"keys\":{}}",
                                      "{\"keys\":[1]}",
                                      "{\"keys\":[{\"kty\":\"oct\",\"kid\":7,\"k\":\"AA\"}]}",
                                      "{\"keys\":[],\"keys\":[]}"};
    char err[128];
    gw_jwt_keyset_t *ks = gw_jwt_keyset_new();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(load(ks, bad[i], err, sizeof err), -1);
        assert_true(err[0] != '\0');
    }
    gw_jwt_keyset_free(ks);
}

static void keyset_caps_number_of_keys(void **state)
{
    (void)state;
    gw_jwt_keyset_t *ks = gw_jwt_keyset_new();
    for (int i = 0; i < GW_JWT_MAX_KEYS; i++)
        assert_int_equal(gw_jwt_keyset_add_secret(ks, NULL, secret_a, 32, NULL, 0), 0);
    char err[128] = "";
    assert_int_equal(gw_jwt_keyset_add_secret(ks, NULL, secret_a, 32, err, sizeof err), -1);
    gw_assert_contains(err, "too many");
    assert_int_equal(load(ks, a1_jwks, err, sizeof err), -1);
    assert_int_equal(gw_jwt_keyset_count(ks), GW_JWT_MAX_KEYS);
    gw_jwt_keyset_free(ks);
}

/* ---- key choice ------------------------------------------------------------------------- */

static void verify_kid_selects_the_key(void **state)
{
    (void)state;
    char t[4096];
    gw_jwt_keyset_t *ks = secrets();
    hs256("{\"alg\":\"HS256\",\"kid\":\"b\"}", CLAIMS(""), secret_b, 32, t);
    assert_int_equal(verify(ks, NOW, t), GW_JWT_OK);
    /* Signed with b but naming a: only a is tried, and it does not verify. */
    hs256("{\"alg\":\"HS256\",\"kid\":\"a\"}", CLAIMS(""), secret_b, 32, t);
    assert_int_equal(verify(ks, NOW, t), GW_JWT_ESIGNATURE);
    gw_jwt_keyset_free(ks);
}

static void verify_rejects_unknown_kid(void **state)
{
    (void)state;
    char t[4096];
    gw_jwt_keyset_t *ks = secrets();
    hs256("{\"alg\":\"HS256\",\"kid\":\"c\"}", CLAIMS(""), secret_a, 32, t);
    assert_int_equal(verify(ks, NOW, t), GW_JWT_ENOKEY);
    gw_jwt_keyset_free(ks);
}

static void verify_without_kid_tries_keys_of_the_type(void **state)
{
    (void)state;
    char t[4096];
    gw_jwt_keyset_t *ks = secrets();
    hs256("{\"alg\":\"HS256\"}", CLAIMS(""), secret_b, 32, t);
    assert_int_equal(verify(ks, NOW, t), GW_JWT_OK);
    gw_jwt_keyset_free(ks);
}

/* ---- algorithms and confusion ------------------------------------------------------------- */

static void verify_rejects_alg_none_in_any_case(void **state)
{
    (void)state;
    static const char *const names[] = {"none", "None", "NONE", "nOnE"};
    char header[64], t[4096];
    gw_jwt_keyset_t *ks = secrets();
    for (size_t i = 0; i < 4; i++) {
        snprintf(header, sizeof header, "{\"alg\":\"%s\"}", names[i]);
        size_t n = signing_input(header, CLAIMS(""), t);
        t[n] = '.', t[n + 1] = '\0'; /* the unsigned form: an empty signature */
        assert_int_equal(verify(ks, NOW, t), GW_JWT_EALG_NONE);
        hs256(header, CLAIMS(""), secret_a, 32, t); /* and with a signature */
        assert_int_equal(verify(ks, NOW, t), GW_JWT_EALG_NONE);
    }
    gw_jwt_keyset_free(ks);
}

static void verify_rejects_unknown_alg(void **state)
{
    (void)state;
    static const char *const names[] = {"HS512", "hs256", "RS384", "PS256", "HS256 ", ""};
    char header[64], t[4096];
    gw_jwt_keyset_t *ks = secrets();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(header, sizeof header, "{\"alg\":\"%s\"}", names[i]);
        assert_int_equal(verify(ks, NOW, hs256(header, CLAIMS(""), secret_a, 32, t)), GW_JWT_EALG);
    }
    hs256("{\"alg\":256}", CLAIMS(""), secret_a, 32, t);
    assert_int_equal(verify(ks, NOW, t), GW_JWT_EHEADER);
    hs256("{\"typ\":\"JWT\"}", CLAIMS(""), secret_a, 32, t);
    assert_int_equal(verify(ks, NOW, t), GW_JWT_EHEADER);
    gw_jwt_keyset_free(ks);
}

/* The classic attack: take the server's RSA public key and use it as an HMAC secret. Here
 * with the modulus bytes, the JWKS text and the certificate's PEM text as "secret". */
static void verify_rejects_rsa_key_used_as_hmac_secret(void **state)
{
    (void)state;
    uint8_t n[512];
    long nlen = gw_jwt_b64url_decode(A2_N, strlen(A2_N), n, sizeof n);
    char t[4096];
    gw_jwt_keyset_t *ks = jwks(a2_jwks);
    hs256("{\"alg\":\"HS256\",\"kid\":\"rsa1\"}", CLAIMS(""), n, (size_t)nlen, t);
    assert_int_equal(verify(ks, NOW, t), GW_JWT_ENOKEY);
    hs256("{\"alg\":\"HS256\"}", CLAIMS(""), (const uint8_t *)a2_jwks, strlen(a2_jwks), t);
    assert_int_equal(verify(ks, NOW, t), GW_JWT_ENOKEY);
    gw_jwt_keyset_free(ks);

    ks = gw_jwt_keyset_new();
    assert_int_equal(gw_jwt_keyset_add_pem(ks, NULL, cert_rsa_pem, strlen(cert_rsa_pem), NULL, 0),
                     1);
    hs256("{\"alg\":\"HS256\"}", CLAIMS(""), (const uint8_t *)cert_rsa_pem, strlen(cert_rsa_pem),
          t);
    assert_int_equal(verify(ks, NOW, t), GW_JWT_ENOKEY);
    gw_jwt_keyset_free(ks);
}

static void verify_hmac_key_never_verifies_rs256_or_es256(void **state)
{
    (void)state;
    char t[4096], doc[1024];
    gw_jwt_keyset_t *ks = jwks(a1_jwks);
    assert_int_equal(verify(ks, RFC_NOW, a2_token), GW_JWT_ENOKEY);
    assert_int_equal(verify(ks, RFC_NOW, a3_token), GW_JWT_ENOKEY);
    gw_jwt_keyset_free(ks);
    /* An EC key is not an RSA key either. */
    es256_fixture("ec1", doc, sizeof doc, t);
    ks = jwks(doc);
    assert_int_equal(verify(ks, RFC_NOW, a2_token), GW_JWT_ENOKEY);
    gw_jwt_keyset_free(ks);
}

static void verify_jwk_with_matching_alg(void **state)
{
    (void)state;
    char doc[1024];
    snprintf(doc, sizeof doc,
             "{\"keys\":[{\"kty\":\"RSA\",\"alg\":\"RS256\",\"n\":\"%s\",\"e\":\"AQAB\"}]}", A2_N);
    gw_jwt_keyset_t *ks = jwks(doc);
    assert_int_equal(verify(ks, RFC_NOW, a2_token), GW_JWT_OK);
    gw_jwt_keyset_free(ks);
}

/* ---- tampering ----------------------------------------------------------------------- */

static void verify_rejects_flipped_bit_in_header(void **state)
{
    (void)state;
    char t[4096], bad[4096];
    gw_jwt_keyset_t *ks = secrets();
    tok_a(CLAIMS(""), t);
    /* {"alg":"HS256","kid":"a","typ":"JWT"}: byte 34 is the final T of JWT -> U. */
    assert_int_equal(verify(ks, NOW, flip(t, 0, 34, 0x01, bad)), GW_JWT_ESIGNATURE);
    gw_jwt_keyset_free(ks);
}

static void verify_rejects_flipped_bit_in_payload(void **state)
{
    (void)state;
    char t[4096], bad[4096];
    gw_jwt_keyset_t *ks = secrets();
    tok_a(CLAIMS(""), t);
    /* {"sub":"alice",...: byte 12 is the final e of alice -> d. */
    assert_int_equal(verify(ks, NOW, flip(t, 1, 12, 0x01, bad)), GW_JWT_ESIGNATURE);
    gw_jwt_keyset_free(ks);
    ks = jwks(a2_jwks);
    /* {"iss":"joe",...: byte 9 is the o of joe -> n. */
    assert_int_equal(verify(ks, RFC_NOW, flip(a2_token, 1, 9, 0x01, bad)), GW_JWT_ESIGNATURE);
    gw_jwt_keyset_free(ks);
}

static void verify_rejects_flipped_bit_in_signature(void **state)
{
    (void)state;
    char t[4096], bad[4096];
    gw_jwt_keyset_t *ks = secrets();
    tok_a(CLAIMS(""), t);
    assert_int_equal(verify(ks, NOW, flip(t, 2, 31, 0x80, bad)), GW_JWT_ESIGNATURE);
    gw_jwt_keyset_free(ks);
    ks = jwks(a2_jwks);
    assert_int_equal(verify(ks, RFC_NOW, flip(a2_token, 2, 0, 0x01, bad)), GW_JWT_ESIGNATURE);
    gw_jwt_keyset_free(ks);
    ks = jwks(a3_jwks);
    assert_int_equal(verify(ks, RFC_NOW, flip(a3_token, 2, 63, 0x01, bad)), GW_JWT_ESIGNATURE);
    gw_jwt_keyset_free(ks);
}

static void verify_rejects_truncated_signature(void **state)
{
    (void)state;
    char t[4096];
    gw_jwt_keyset_t *ks = jwks(a3_jwks);
    /* 84 of the 86 characters: 63 clean bytes, so the length check is what catches it. */
    snprintf(t, sizeof t, "%.*s", (int)strlen(a3_token) - 2, a3_token);
    assert_int_equal(verify(ks, RFC_NOW, t), GW_JWT_ESIGNATURE);
    gw_jwt_keyset_free(ks);
}

/* ---- malformed input ------------------------------------------------------------------------ */

static void verify_rejects_malformed_structure(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "abc",
        "eyJhbGciOiJIUzI1NiJ9.e30",
        "eyJhbGciOiJIUzI1NiJ9.e30.AAAA.AAAA",
        "eyJhbGciOiJIUzI1NiJ9.e30.",
        "eyJhbGciOiJIUzI1NiJ9.e30.AA==",
        "eyJhbGciOiJIUzI1NiJ9=.e30.AAAA",
        "eyJhbGciOiJIUzI1NiJ9.e30.AA+A",
        ".e30.AAAA",
        "eyJhbGciOiJIUzI1NiJ9..AAAA",
    };
    gw_jwt_keyset_t *ks = secrets();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gw_jwt_err_t e = verify(ks, NOW, bad[i]);
        if (e != GW_JWT_EFORMAT && e != GW_JWT_ESIGNATURE)
            fail_msg("case %zu (%s): %s", i, bad[i], gw_jwt_strerror(e));
        assert_int_not_equal(e, GW_JWT_OK);
    }
    gw_jwt_keyset_free(ks);
}

static void verify_rejects_malformed_header_json(void **state)
{
    (void)state;
    static const char *const bad[] = {"{\"alg\":\"HS256\"",
                                      "[\"HS256\"]",
                                      "\"HS256\"",
                                      "{\"alg\":\"HS256\",\"alg\":\"none\"}",
                                      "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
                                      "{\"alg\":\"HS256\",\"kid\":1}",
                                      "{\"alg\":\"HS256\",\"typ\":[]}"};
    char t[4096];
    gw_jwt_keyset_t *ks = secrets();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gw_jwt_err_t e = verify(ks, NOW, hs256(bad[i], CLAIMS(""), secret_a, 32, t));
        if (e != GW_JWT_EFORMAT && e != GW_JWT_EHEADER)
            fail_msg("case %zu (%s): %s", i, bad[i], gw_jwt_strerror(e));
    }
    gw_jwt_keyset_free(ks);
}

static void verify_rejects_oversized_kid(void **state)
{
    (void)state;
    char header[512], t[4096];
    snprintf(header, sizeof header, "{\"alg\":\"HS256\",\"kid\":\"%0129d\"}", 0);
    gw_jwt_keyset_t *ks = secrets();
    assert_int_equal(verify(ks, NOW, hs256(header, CLAIMS(""), secret_a, 32, t)), GW_JWT_EHEADER);
    gw_jwt_keyset_free(ks);
}

static void verify_rejects_signed_payload_that_is_not_an_object(void **state)
{
    (void)state;
    static const char *const bad[] = {"{\"exp\":", "[1,2]", "\"x\"", "{\"a\":1,\"a\":2}"};
    char t[4096];
    gw_jwt_keyset_t *ks = secrets();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(verify(ks, NOW, tok_a(bad[i], t)), GW_JWT_EPAYLOAD);
    gw_jwt_keyset_free(ks);
}

static void verify_rejects_oversized_token(void **state)
{
    (void)state;
    static char big[GW_JWT_MAX_TOKEN + 2];
    memset(big, 'A', sizeof big - 1);
    gw_jwt_keyset_t *ks = secrets();
    assert_int_equal(verify(ks, NOW, big), GW_JWT_ETOOBIG);
    /* At the cap it is looked at (and is simply malformed). */
    gw_jwt_policy_t p = gw_jwt_policy_default();
    assert_int_equal(gw_jwt_verify(ks, &p, NOW, big, GW_JWT_MAX_TOKEN, NULL), GW_JWT_EFORMAT);
    gw_jwt_keyset_free(ks);
}

/* Untrusted input never crashes: random bytes, random base64url-and-dots strings, and good
 * tokens with a few characters changed (fixed seed), all refused with no sanitizer report. */
static void verify_survives_random_input(void **state)
{
    (void)state;
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_..";
    char t[512];
    uint64_t x = 0x9e3779b97f4a7c15u;
    gw_jwt_policy_t p = gw_jwt_policy_default();
    gw_jwt_keyset_t *ks = jwks(a3_jwks);
    assert_int_equal(gw_jwt_keyset_add_secret(ks, NULL, secret_a, 32, NULL, 0), 0);
    for (int i = 0; i < 5000; i++) {
        size_t len = 0;
        for (; len < sizeof t - 1; len++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
            if (len > 0 && x % 97 == 0)
                break;
            t[len] = i % 2 ? abc[(x >> 8) % (sizeof abc - 1)] : (char)(x >> 24);
        }
        assert_int_not_equal(gw_jwt_verify(ks, &p, NOW, t, len, NULL), GW_JWT_OK);
    }
    /* And one to three characters changed in a good token: always refused. */
    for (int i = 0; i < 3000; i++) {
        size_t len = strlen(a3_token);
        memcpy(t, a3_token, len);
        for (int k = 0; k <= i % 3; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t at = (x >> 8) % len;
            char c = abc[(x >> 32) % (sizeof abc - 1)];
            t[at] = c != t[at] ? c : '.';
        }
        if (memcmp(t, a3_token, len) == 0)
            continue; /* a second change undid the first */
        if (gw_jwt_verify(ks, &p, RFC_NOW, t, len, NULL) == GW_JWT_OK)
            fail_msg("accepted: %.*s", (int)len, t);
    }
    gw_jwt_keyset_free(ks);
}

/* ---- claims ------------------------------------------------------------------------- */

static void claims_expired_token_rejected(void **state)
{
    (void)state;
    char t[4096];
    gw_jwt_keyset_t *ks = secrets();
    assert_int_equal(verify(ks, NOW + 7200, tok_a(CLAIMS(""), t)), GW_JWT_EEXPIRED);
    gw_jwt_keyset_free(ks);
}

static void claims_exp_skew_boundary(void **state)
{
    (void)state;
    char t[4096];
    gw_jwt_keyset_t *ks = secrets();
    tok_a(CLAIMS(""), t); /* exp = NOW + 3600 */
    assert_int_equal(verify(ks, NOW + 3600 + 59, t), GW_JWT_OK);
    assert_int_equal(verify(ks, NOW + 3600 + 60, t), GW_JWT_EEXPIRED);
    gw_jwt_policy_t p = gw_jwt_policy_default();
    p.skew = 0;
    assert_int_equal(verify_at(ks, &p, NOW + 3599, t), GW_JWT_OK);
    assert_int_equal(verify_at(ks, &p, NOW + 3600, t), GW_JWT_EEXPIRED);
    gw_jwt_keyset_free(ks);
}

static void claims_nbf_skew_boundary(void **state)
{
    (void)state;
    char t[4096];
    gw_jwt_keyset_t *ks = secrets();
    tok_a(CLAIMS(",\"nbf\":1700001000"), t);
    assert_int_equal(verify(ks, 1700001000 - 60, t), GW_JWT_OK);
    assert_int_equal(verify(ks, 1700001000 - 61, t), GW_JWT_ENOTYET);
    gw_jwt_policy_t p = gw_jwt_policy_default();
    p.skew = 0;
    assert_int_equal(verify_at(ks, &p, 1700001000, t), GW_JWT_OK);
    assert_int_equal(verify_at(ks, &p, 1700000999, t), GW_JWT_ENOTYET);
    gw_jwt_keyset_free(ks);
}

static void claims_iat_in_future_rejected(void **state)
{
    (void)state;
    char t[4096];
    gw_jwt_keyset_t *ks = secrets();
    tok_a(CLAIMS(""), t); /* iat = NOW */
    assert_int_equal(verify(ks, NOW - 60, t), GW_JWT_OK);
    assert_int_equal(verify(ks, NOW - 61, t), GW_JWT_EIAT_FUTURE);
    gw_jwt_keyset_free(ks);
}

static void claims_dates_must_be_numbers(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"exp\":\"1700003600\"}", "{\"exp\":1700003600,\"nbf\":null}",
        "{\"exp\":1700003600,\"iat\":true}", "{\"exp\":[1700003600]}"};
    char t[4096];
    gw_jwt_keyset_t *ks = secrets();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(verify(ks, NOW, tok_a(bad[i], t)), GW_JWT_ECLAIM_TYPE);
    /* Fractional seconds are numbers too (RFC 7519 2). */
    assert_int_equal(verify(ks, NOW, tok_a("{\"exp\":1700003600.5}", t)), GW_JWT_OK);
    gw_jwt_keyset_free(ks);
}

static void claims_exp_required_by_default(void **state)
{
    (void)state;
    char t[4096];
    gw_jwt_keyset_t *ks = secrets();
    tok_a("{\"sub\":\"alice\"}", t);
    assert_int_equal(verify(ks, NOW, t), GW_JWT_ENOEXP);
    gw_jwt_policy_t p = gw_jwt_policy_default();
    p.require_exp = false;
    assert_int_equal(verify_at(ks, &p, NOW, t), GW_JWT_OK);
    gw_jwt_keyset_free(ks);
}

static void claims_issuer_must_match_exactly(void **state)
{
    (void)state;
    char t[4096];
    const char *iss[] = {"https://a.example", "https://idp.example"};
    gw_jwt_policy_t p = gw_jwt_policy_default();
    p.issuers = iss, p.n_issuers = 2;
    gw_jwt_keyset_t *ks = secrets();
    assert_int_equal(verify_at(ks, &p, NOW, tok_a(CLAIMS(",\"iss\":\"https://idp.example\""), t)),
                     GW_JWT_OK);
    assert_int_equal(
        verify_at(ks, &p, NOW, tok_a(CLAIMS(",\"iss\":\"https://idp.example.evil\""), t)),
        GW_JWT_EISSUER);
    assert_int_equal(verify_at(ks, &p, NOW, tok_a(CLAIMS(",\"iss\":\"HTTPS://IDP.EXAMPLE\""), t)),
                     GW_JWT_EISSUER);
    assert_int_equal(verify_at(ks, &p, NOW, tok_a(CLAIMS(""), t)), GW_JWT_EISSUER);
    assert_int_equal(verify_at(ks, &p, NOW, tok_a(CLAIMS(",\"iss\":1"), t)), GW_JWT_ECLAIM_TYPE);
    gw_jwt_keyset_free(ks);
}

static void claims_audience_string_must_match(void **state)
{
    (void)state;
    char t[4096];
    const char *aud[] = {"gw04"};
    gw_jwt_policy_t p = gw_jwt_policy_default();
    p.audiences = aud, p.n_audiences = 1;
    gw_jwt_keyset_t *ks = secrets();
    assert_int_equal(verify_at(ks, &p, NOW, tok_a(CLAIMS(",\"aud\":\"gw04\""), t)), GW_JWT_OK);
    assert_int_equal(verify_at(ks, &p, NOW, tok_a(CLAIMS(",\"aud\":\"other\""), t)),
                     GW_JWT_EAUDIENCE);
    assert_int_equal(verify_at(ks, &p, NOW, tok_a(CLAIMS(""), t)), GW_JWT_EAUDIENCE);
    gw_jwt_keyset_free(ks);
}

static void claims_audience_array_needs_one_match(void **state)
{
    (void)state;
    char t[4096];
    const char *aud[] = {"gw04"};
    gw_jwt_policy_t p = gw_jwt_policy_default();
    p.audiences = aud, p.n_audiences = 1;
    gw_jwt_keyset_t *ks = secrets();
    assert_int_equal(verify_at(ks, &p, NOW, tok_a(CLAIMS(",\"aud\":[\"x\",\"gw04\"]"), t)),
                     GW_JWT_OK);
    assert_int_equal(verify_at(ks, &p, NOW, tok_a(CLAIMS(",\"aud\":[\"x\",\"y\"]"), t)),
                     GW_JWT_EAUDIENCE);
    assert_int_equal(verify_at(ks, &p, NOW, tok_a(CLAIMS(",\"aud\":[]"), t)), GW_JWT_EAUDIENCE);
    assert_int_equal(verify_at(ks, &p, NOW, tok_a(CLAIMS(",\"aud\":[\"gw04\",7]"), t)),
                     GW_JWT_ECLAIM_TYPE);
    assert_int_equal(verify_at(ks, &p, NOW, tok_a(CLAIMS(",\"aud\":{\"gw04\":1}"), t)),
                     GW_JWT_ECLAIM_TYPE);
    gw_jwt_keyset_free(ks);
}

static void claims_unchecked_when_policy_lists_none(void **state)
{
    (void)state;
    char t[4096];
    gw_jwt_keyset_t *ks = secrets();
    assert_int_equal(verify(ks, NOW, tok_a(CLAIMS(",\"iss\":\"x\",\"aud\":[\"y\"]"), t)),
                     GW_JWT_OK);
    gw_jwt_keyset_free(ks);
}

/* Reasons go into a quoted header parameter: they must never need escaping. */
static void strerror_is_safe_for_www_authenticate(void **state)
{
    (void)state;
    for (int e = GW_JWT_OK; e <= GW_JWT_EAUDIENCE; e++) {
        const char *s = gw_jwt_strerror((gw_jwt_err_t)e);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        assert_null(strpbrk(s, "\"\\\r\n"));
    }
}

/* Found by fuzz_jwtkeys (SEGV in BearSSL): once the X.509 decoder has stopped on malformed
 * DER, BearSSL 0.6 must not be handed more of it - br_x509_decoder_push runs its stopped
 * machine again and jumps to address 0. A bad certificate in a key file crashed the config
 * load instead of being reported. */
static void pem_malformed_der_is_an_error_not_a_crash(void **state)
{
    (void)state;
    char err[256] = "";
    gw_jwt_keyset_t *ks = gw_jwt_keyset_new();
    assert_non_null(ks);
    assert_int_equal(gw_jwt_keyset_add_pem(ks, NULL, fuzz_bad_der_pem, strlen(fuzz_bad_der_pem),
                                           err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "certificate"));
    assert_int_equal(gw_jwt_keyset_count(ks), 0);
    gw_jwt_keyset_free(ks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(b64url_decodes_rfc4648_vectors),
        cmocka_unit_test(b64url_rejects_padding_and_foreign_characters),
        cmocka_unit_test(b64url_rejects_length_one_mod_four),
        cmocka_unit_test(b64url_rejects_nonzero_trailing_bits),
        cmocka_unit_test(b64url_rejects_output_over_capacity),
        cmocka_unit_test(verify_rfc7515_a1_hs256),
        cmocka_unit_test(verify_rfc7515_a2_rs256),
        cmocka_unit_test(verify_rfc7515_a3_es256),
        cmocka_unit_test(verify_rfc7519_example_returns_claims),
        cmocka_unit_test(verify_failure_returns_no_claims),
        cmocka_unit_test(verify_es256_signed_with_bearssl),
        cmocka_unit_test(keyset_loads_rsa_certificate),
        cmocka_unit_test(keyset_loads_ec_certificate),
        cmocka_unit_test(keyset_pem_holds_several_certificates),
        cmocka_unit_test(keyset_rejects_pem_without_certificate),
        cmocka_unit_test(keyset_rejects_truncated_certificate),
        cmocka_unit_test(keyset_loads_jwks_and_pem_files),
        cmocka_unit_test(keyset_file_errors_name_the_file),
        cmocka_unit_test(keyset_rejects_weak_rsa_key),
        cmocka_unit_test(keyset_rejects_short_secret),
        cmocka_unit_test(keyset_rejects_point_off_curve),
        cmocka_unit_test(keyset_skips_encryption_and_unsupported_keys),
        cmocka_unit_test(keyset_rejects_alg_contradicting_key_type),
        cmocka_unit_test(keyset_failed_load_leaves_set_unchanged),
        cmocka_unit_test(keyset_rejects_malformed_documents),
        cmocka_unit_test(keyset_caps_number_of_keys),
        cmocka_unit_test(verify_kid_selects_the_key),
        cmocka_unit_test(verify_rejects_unknown_kid),
        cmocka_unit_test(verify_without_kid_tries_keys_of_the_type),
        cmocka_unit_test(verify_rejects_alg_none_in_any_case),
        cmocka_unit_test(verify_rejects_unknown_alg),
        cmocka_unit_test(verify_rejects_rsa_key_used_as_hmac_secret),
        cmocka_unit_test(verify_hmac_key_never_verifies_rs256_or_es256),
        cmocka_unit_test(verify_jwk_with_matching_alg),
        cmocka_unit_test(verify_rejects_flipped_bit_in_header),
        cmocka_unit_test(verify_rejects_flipped_bit_in_payload),
        cmocka_unit_test(verify_rejects_flipped_bit_in_signature),
        cmocka_unit_test(verify_rejects_truncated_signature),
        cmocka_unit_test(verify_rejects_malformed_structure),
        cmocka_unit_test(verify_rejects_malformed_header_json),
        cmocka_unit_test(verify_rejects_oversized_kid),
        cmocka_unit_test(verify_rejects_signed_payload_that_is_not_an_object),
        cmocka_unit_test(verify_rejects_oversized_token),
        cmocka_unit_test(verify_survives_random_input),
        cmocka_unit_test(claims_expired_token_rejected),
        cmocka_unit_test(claims_exp_skew_boundary),
        cmocka_unit_test(claims_nbf_skew_boundary),
        cmocka_unit_test(claims_iat_in_future_rejected),
        cmocka_unit_test(claims_dates_must_be_numbers),
        cmocka_unit_test(claims_exp_required_by_default),
        cmocka_unit_test(claims_issuer_must_match_exactly),
        cmocka_unit_test(claims_audience_string_must_match),
        cmocka_unit_test(claims_audience_array_needs_one_match),
        cmocka_unit_test(claims_unchecked_when_policy_lists_none),
        cmocka_unit_test(strerror_is_safe_for_www_authenticate),
        cmocka_unit_test(pem_malformed_der_is_an_error_not_a_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
