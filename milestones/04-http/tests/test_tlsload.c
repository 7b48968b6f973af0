/* test_tlsload.c - PEM chains, RSA and EC keys in both encodings, key/certificate
 * mismatch, garbage, trust anchors, and the DNS names read from a certificate. */
#include "gwtest.h"

#include <string.h>
#include <unistd.h>

#include "04-http/tlsload.h"
#include "fixtures/tls_certs.h"

#define P(slot, name) tls_cert_path(slot, name)

static void load_ok(const char *cert, const char *key, int type, size_t nchain)
{
    gw_tls_cert_t c;
    char err[256] = "";
    int rc = gw_tls_cert_load(&c, P(0, cert), P(1, key), err, sizeof err);
    if (rc != 0)
        fail_msg("%s + %s: %s", cert, key, err);
    assert_int_equal(c.key_type, type);
    assert_int_equal(c.nchain, nchain);
    gw_tls_cert_free(&c);
}

static void load_rsa_pkcs8_and_traditional(void **state)
{
    (void)state;
    load_ok("rsa.pem", "rsa.key", BR_KEYTYPE_RSA, 1);
    load_ok("rsa.pem", "rsa-trad.key", BR_KEYTYPE_RSA, 1);
}

static void load_ec_pkcs8_and_traditional(void **state)
{
    (void)state;
    load_ok("ec.pem", "ec.key", BR_KEYTYPE_EC, 1);
    load_ok("ec.pem", "ec-trad.key", BR_KEYTYPE_EC, 1);
}

/* The chain keeps the file's order: leaf first, then the CA. */
static void load_chain_in_order(void **state)
{
    (void)state;
    gw_tls_cert_t c, leaf;
    gw_tls_anchors_t ca;
    char err[256] = "";
    assert_int_equal(gw_tls_cert_load(&c, P(0, "rsa-chain.pem"), P(1, "rsa.key"), err, sizeof err),
                     0);
    assert_int_equal(gw_tls_cert_load(&leaf, P(0, "rsa.pem"), P(1, "rsa.key"), err, sizeof err), 0);
    assert_int_equal(gw_tls_anchors_load(&ca, P(2, "ca.pem"), err, sizeof err), 0);
    assert_int_equal(c.nchain, 2);
    assert_int_equal(c.chain[0].data_len, leaf.chain[0].data_len);
    assert_memory_equal(c.chain[0].data, leaf.chain[0].data, leaf.chain[0].data_len);
    assert_int_equal(c.issuer_key_type, BR_KEYTYPE_EC); /* signed by the EC CA */
    gw_tls_cert_free(&c);
    gw_tls_cert_free(&leaf);
    gw_tls_anchors_free(&ca);
}

static void load_fails(const char *cert, const char *key, const char *expect)
{
    gw_tls_cert_t c;
    char err[256] = "";
    assert_int_equal(gw_tls_cert_load(&c, cert, key, err, sizeof err), -1);
    gw_assert_contains(err, expect);
    assert_null(c.chain);
    assert_null(c.keybuf);
}

static void load_mismatched_key_is_an_error(void **state)
{
    (void)state;
    load_fails(P(0, "rsa.pem"), P(1, "ec.key"), "the key does not match the certificate");
    load_fails(P(0, "ec.pem"), P(1, "client.key"), "the key does not match the certificate");
    load_fails(P(0, "rsa.pem"), P(1, "rsa.pem"), "no PRIVATE KEY in the key file");
}

static void load_garbage_is_an_error(void **state)
{
    (void)state;
    gw_tls_cert_t c;
    char err[256] = "";
    static const char junk[] = "-----BEGIN CERTIFICATE-----\nnot base64 at all!!\n"
                               "-----END CERTIFICATE-----\n";
    static const char trunc[] =
        "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n";
    assert_int_equal(gw_tls_cert_parse(&c, junk, sizeof junk - 1, "", 0, err, sizeof err), -1);
    gw_assert_contains(err, "invalid PEM");
    assert_int_equal(gw_tls_cert_parse(&c, trunc, sizeof trunc - 1, "", 0, err, sizeof err), -1);
    gw_assert_contains(err, "could not be decoded");
    assert_int_equal(gw_tls_cert_parse(&c, "hello", 5, "", 0, err, sizeof err), -1);
    gw_assert_contains(err, "no CERTIFICATE");
    load_fails("/nonexistent/x.pem", P(1, "rsa.key"), "/nonexistent/x.pem: No such file");
}

static void names_cb(void *ctx, const char *name, size_t len)
{
    char *out = ctx;
    strncat(out, name, len);
    strcat(out, ",");
}

/* SAN DNS names in order (IP SANs are not names), lower-cased copies in the cert. */
static void load_reads_the_dns_names(void **state)
{
    (void)state;
    gw_tls_cert_t c;
    char err[256] = "", names[512] = "";
    assert_int_equal(gw_tls_cert_load(&c, P(0, "ec.pem"), P(1, "ec.key"), err, sizeof err), 0);
    assert_int_equal(c.nnames, 2);
    assert_string_equal(c.names[0], "b.example.com");
    assert_string_equal(c.names[1], "*.wild.example.com");
    assert_int_equal(gw_tls_der_dns_names(c.chain[0].data, c.chain[0].data_len, names_cb, names),
                     2);
    assert_string_equal(names, "b.example.com,*.wild.example.com,");
    gw_tls_cert_free(&c);
    /* a client certificate has no SAN: its CN stands in */
    assert_int_equal(gw_tls_cert_load(&c, P(0, "client.pem"), P(1, "client.key"), err, sizeof err),
                     0);
    assert_int_equal(c.nnames, 1);
    assert_string_equal(c.names[0], "client-one");
    gw_tls_cert_free(&c);
}

static void anchors_from_a_bundle(void **state)
{
    (void)state;
    gw_tls_anchors_t a;
    char err[256] = "";
    assert_int_equal(gw_tls_anchors_load(&a, P(0, "rsa-chain.pem"), err, sizeof err), 0);
    assert_int_equal(a.n, 2);
    assert_int_equal(a.ta[0].flags & BR_X509_TA_CA, 0); /* the leaf says CA:FALSE */
    assert_int_equal(a.ta[1].flags & BR_X509_TA_CA, BR_X509_TA_CA);
    assert_int_equal(a.ta[1].pkey.key_type, BR_KEYTYPE_EC);
    gw_tls_anchors_free(&a);
    assert_int_equal(gw_tls_anchors_load(&a, P(0, "rsa.key"), err, sizeof err), -1);
    gw_assert_contains(err, "no usable CA CERTIFICATE");
}

/* Debian's bundle, the upstreams' default, loads (when the machine has it). */
static void anchors_system_bundle(void **state)
{
    (void)state;
    gw_tls_anchors_t a;
    char err[256] = "";
    if (access("/etc/ssl/certs/ca-certificates.crt", R_OK) != 0)
        skip();
    assert_int_equal(gw_tls_anchors_load(&a, "/etc/ssl/certs/ca-certificates.crt", err, sizeof err),
                     0);
    assert_true(a.n > 50);
    gw_tls_anchors_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(load_rsa_pkcs8_and_traditional),
        cmocka_unit_test(load_ec_pkcs8_and_traditional),
        cmocka_unit_test(load_chain_in_order),
        cmocka_unit_test(load_mismatched_key_is_an_error),
        cmocka_unit_test(load_garbage_is_an_error),
        cmocka_unit_test(load_reads_the_dns_names),
        cmocka_unit_test(anchors_from_a_bundle),
        cmocka_unit_test(anchors_system_bundle),
    };
    return cmocka_run_group_tests(tests, NULL, tls_certs_cleanup);
}
