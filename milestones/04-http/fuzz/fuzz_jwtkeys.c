/* fuzz_jwtkeys.c - key loading from memory: JWKS documents and PEM certificates
 * (gw_jwt_keyset_add_jwks, gw_jwt_keyset_add_pem), the entry points the config loader's
 * file reader hands its bytes to.
 *
 * Input: a mode byte (bit 0: PEM rather than JWKS; bit 1: a kid for PEM), then the text.
 * The set already holds one key, so that "on error the set is unchanged" can be seen.
 *
 * Invariants: a load returns -1 with a message and leaves the count as it was, or the
 * number of keys it added (at least 1 for PEM), the count growing by exactly that much and
 * never past GW_JWT_MAX_KEYS; a set with the new keys still verifies a token without
 * crashing (a key stored wrong is found by the verifier's use of it). */
#include <string.h>

#include "04-http/jwt.h"
#include "fuzz/gwfuzz.h"

/* RFC 7515 A.1's token and key: the key set starts with that one key. */
static const char a1_token[] = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
                               "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"
                               "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
                               "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
static const char a1_jwks[] =
    "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-"
    "EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow\"}]}";
/* A token for the RSA and EC keys of tests/fixtures/jwt_certs.h, header only matters. */
static const char *const probes[] = {
    a1_token,
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.e30.AAAA",
    "eyJhbGciOiJFUzI1NiJ9.e30.AAAA",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gw_fz_t f = {data, size};
    uint8_t mode = gw_fz_u8(&f);
    char *text = gw_fz_dup(f.p, f.n);
    char err[256] = "";
    gw_jwt_keyset_t *ks = gw_jwt_keyset_new();
    GW_FZ_CHECK(ks && gw_jwt_keyset_add_jwks(ks, a1_jwks, strlen(a1_jwks), err, sizeof err) == 1,
                "first key: %s", err);
    err[0] = '\0';
    int n = (mode & 1)
                ? gw_jwt_keyset_add_pem(ks, (mode & 2) ? "k" : NULL, text, f.n, err, sizeof err)
                : gw_jwt_keyset_add_jwks(ks, text, f.n, err, sizeof err);
    size_t count = gw_jwt_keyset_count(ks);
    if (n < 0) {
        GW_FZ_CHECK(n == -1 && err[0] != '\0', "failed (%d) without a message", n);
        GW_FZ_CHECK(count == 1, "a failed load left %zu keys", count);
    } else {
        GW_FZ_CHECK(!(mode & 1) || n >= 1, "PEM load added %d keys", n);
        GW_FZ_CHECK(count == 1 + (size_t)n && count <= GW_JWT_MAX_KEYS, "added %d, have %zu", n,
                    count);
    }
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        json_t *claims = NULL;
        gw_jwt_policy_t pol = gw_jwt_policy_default();
        gw_jwt_err_t rc =
            gw_jwt_verify(ks, &pol, 1300819380 - 60, probes[i], strlen(probes[i]), &claims);
        if (i == 0) /* the first key is still there and still right, whatever was added */
            GW_FZ_CHECK(rc == GW_JWT_OK, "RFC 7515 A.1 token: %s", gw_jwt_strerror(rc));
        json_decref(claims);
    }
    gw_jwt_keyset_free(ks);
    free(text);
    return 0;
}
