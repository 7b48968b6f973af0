/* test_tlshandshake.c - the server and client contexts of tlsserver/tlsclient, shaking
 * hands in memory (engines pumped by hand, bytes copied between their buffers, no sockets):
 * SNI picks the certificate, verification, wrong name, expired, mTLS, ALPN, resumption;
 * and the SNI choice as a pure function, by table. */
#include "gwtest.h"

#include <stdlib.h>
#include <string.h>

#include "04-http/tlsclient.h"
#include "04-http/tlsserver.h"
#include "fixtures/tls_certs.h"

#define P(slot, name) tls_cert_path(slot, name)
#define NOW_2026 1780000000 /* 2026-05-28: inside the test certificates' validity */

/* ---- the SNI choice, as a table ---------------------------------------------------------- */

static void sni_choose_table(void **state)
{
    (void)state;
    char *n0[] = {"localhost", "a.example.com"};
    char *n1[] = {"b.example.com", "*.wild.example.com"};
    char *n2[] = {"*.example.com", "exact.wild.example.com"};
    gw_tls_cert_t certs[3] = {
        {.names = n0, .nnames = 2}, {.names = n1, .nnames = 2}, {.names = n2, .nnames = 2}};
    static const struct {
        const char *sni;
        size_t want;
    } cases[] = {
        {"a.example.com", 0},          /* exact */
        {"b.example.com", 1},          /* exact, in the second certificate */
        {"B.Example.COM", 1},          /* case-insensitive */
        {"x.wild.example.com", 1},     /* wildcard, one label */
        {"exact.wild.example.com", 2}, /* an exact name beats an earlier wildcard */
        {"y.x.wild.example.com", 0},   /* a wildcard covers one label only: default */
        {"wild.example.com", 2},       /* ... which here is *.example.com's */
        {".wild.example.com", 0},      /* an empty label is not a label */
        {"c.example.com", 2},          /* wildcard of the third */
        {"example.com", 0},            /* the wildcard's base is not covered */
        {"unknown.org", 0},            /* unknown: the default */
        {"", 0},                       /* no SNI */
        {NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t got = gw_tls_sni_choose(certs, 3, cases[i].sni);
        if (got != cases[i].want)
            fail_msg("sni %s: certificate %zu, want %zu", cases[i].sni ? cases[i].sni : "(none)",
                     got, cases[i].want);
    }
}

/* ---- in-memory handshakes ----------------------------------------------------------------- */

typedef struct {
    gw_tls_listener_cfg_t lcfg;
    gw_tls_upstream_cfg_t ucfg;
    gw_tls_cert_t certs[3];
    br_ssl_server_context sc;
    gw_tls_server_t srv;
    br_ssl_client_context cc;
    gw_tls_client_t cli;
    unsigned char sbuf[BR_SSL_BUFSIZE_BIDI], cbuf[BR_SSL_BUFSIZE_BIDI];
} hs_t;

static void load_cert(gw_tls_cert_t *c, const char *cert, const char *key)
{
    char err[256] = "";
    if (gw_tls_cert_load(c, P(0, cert), P(1, key), err, sizeof err) != 0)
        fail_msg("%s", err);
}

static void load_anchors(gw_tls_anchors_t *a, const char *file)
{
    char err[256] = "";
    if (gw_tls_anchors_load(a, P(2, file), err, sizeof err) != 0)
        fail_msg("%s", err);
}

/* A listener serving rsa (default; localhost, a.example.com) and ec (b.example.com,
 * *.wild.example.com), and an upstream config trusting ca.pem. */
static hs_t *hs_new(void)
{
    hs_t *h = calloc(1, sizeof *h);
    assert_non_null(h);
    load_cert(&h->certs[0], "rsa-chain.pem", "rsa.key");
    load_cert(&h->certs[1], "ec.pem", "ec.key");
    h->lcfg.certs = h->certs;
    h->lcfg.ncerts = 2;
    load_anchors(&h->ucfg.anchors, "ca.pem");
    h->ucfg.verify = true;
    return h;
}

static void hs_free(hs_t *h)
{
    for (size_t i = 0; i < 3; i++)
        gw_tls_cert_free(&h->certs[i]);
    gw_tls_anchors_free(&h->ucfg.anchors);
    gw_tls_anchors_free(&h->lcfg.client_cas);
    gw_tls_cert_free(&h->ucfg.client_cert);
    free(h);
}

/* Moves records from A to B; true when bytes moved. */
static bool move(br_ssl_engine_context *a, br_ssl_engine_context *b)
{
    if (!(br_ssl_engine_current_state(a) & BR_SSL_SENDREC) ||
        !(br_ssl_engine_current_state(b) & BR_SSL_RECVREC))
        return false;
    size_t out, in;
    unsigned char *src = br_ssl_engine_sendrec_buf(a, &out);
    unsigned char *dst = br_ssl_engine_recvrec_buf(b, &in);
    size_t n = out < in ? out : in;
    memcpy(dst, src, n);
    br_ssl_engine_sendrec_ack(a, n);
    br_ssl_engine_recvrec_ack(b, n);
    return n > 0;
}

/* Pumps both engines until neither moves. Returns true when both can send application data
 * (the handshake is done on both ends). */
static bool pump(hs_t *h)
{
    br_ssl_engine_context *s = &h->sc.eng, *c = &h->cc.eng;
    for (int i = 0; i < 1000; i++) {
        bool moved = move(c, s);
        moved = move(s, c) || moved;
        if (!moved)
            break;
    }
    return (br_ssl_engine_current_state(s) & BR_SSL_SENDAPP) &&
           (br_ssl_engine_current_state(c) & BR_SSL_SENDAPP);
}

/* Starts both ends: the client with SNI NAME and the given ALPN list. */
static void hs_start(hs_t *h, const char *name, const char *const *alpn, size_t nalpn,
                     const gw_tls_session_t *resume)
{
    assert_int_equal(
        gw_tls_server_setup(&h->srv, &h->sc, &h->lcfg, NULL, NOW_2026, h->sbuf, sizeof h->sbuf), 0);
    gw_tls_client_opts_t o = {.server_name = name,
                              .now = NOW_2026,
                              .alpn = alpn,
                              .nalpn = nalpn,
                              .resume = resume,
                              .iobuf = h->cbuf,
                              .iolen = sizeof h->cbuf};
    assert_int_equal(gw_tls_client_setup(&h->cli, &h->cc, &h->ucfg, &o), 0);
}

/* Application bytes through the tunnel, client to server. */
static void roundtrip(hs_t *h)
{
    size_t len;
    unsigned char *p = br_ssl_engine_sendapp_buf(&h->cc.eng, &len);
    assert_true(len >= 5);
    memcpy(p, "hello", 5);
    br_ssl_engine_sendapp_ack(&h->cc.eng, 5);
    br_ssl_engine_flush(&h->cc.eng, 0);
    pump(h);
    p = br_ssl_engine_recvapp_buf(&h->sc.eng, &len);
    assert_non_null(p);
    assert_int_equal(len, 5);
    assert_memory_equal(p, "hello", 5);
    br_ssl_engine_recvapp_ack(&h->sc.eng, len);
}

static void handshake_sni_picks_the_certificate(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int cert;
        int key_type;
    } cases[] = {
        {"localhost", 0, BR_KEYTYPE_RSA},
        {"b.example.com", 1, BR_KEYTYPE_EC},
        {"x.wild.example.com", 1, BR_KEYTYPE_EC},
        {"a.example.com", 0, BR_KEYTYPE_RSA},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hs_t *h = hs_new();
        hs_start(h, cases[i].name, NULL, 0, NULL);
        if (!pump(h))
            fail_msg("%s: client error %d, server error %d", cases[i].name,
                     br_ssl_engine_last_error(&h->cc.eng), br_ssl_engine_last_error(&h->sc.eng));
        assert_int_equal(h->srv.chosen, cases[i].cert);
        assert_string_equal(br_ssl_engine_get_server_name(&h->sc.eng), cases[i].name);
        /* the suite agreed matches the certificate's key: ECDHE_ECDSA for EC, ECDHE_RSA */
        uint16_t suite = h->sc.eng.session.cipher_suite;
        bool ecdsa = suite == BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256;
        bool rsa = suite == BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256;
        assert_true(cases[i].key_type == BR_KEYTYPE_EC ? ecdsa : rsa);
        assert_int_equal(br_ssl_engine_get_version(&h->sc.eng), BR_TLS12);
        roundtrip(h);
        hs_free(h);
    }
}

static void handshake_wrong_name_fails(void **state)
{
    (void)state;
    hs_t *h = hs_new();
    hs_start(h, "unknown.example.org", NULL, 0, NULL); /* served the default, rsa */
    assert_false(pump(h));
    assert_int_equal(h->srv.chosen, 0);
    assert_int_equal(br_ssl_engine_last_error(&h->cc.eng), BR_ERR_X509_BAD_SERVER_NAME);
    hs_free(h);
}

static void handshake_untrusted_ca_fails(void **state)
{
    (void)state;
    hs_t *h = hs_new();
    gw_tls_anchors_free(&h->ucfg.anchors);
    load_anchors(&h->ucfg.anchors, "ca2.pem");
    hs_start(h, "localhost", NULL, 0, NULL);
    assert_false(pump(h));
    assert_int_equal(br_ssl_engine_last_error(&h->cc.eng), BR_ERR_X509_NOT_TRUSTED);
    hs_free(h);
}

/* verify: false accepts the foreign chain and still gets the key: the handshake completes. */
static void handshake_verify_false_accepts_anything(void **state)
{
    (void)state;
    hs_t *h = hs_new();
    gw_tls_anchors_free(&h->ucfg.anchors);
    h->ucfg.verify = false;
    hs_start(h, "no.such.name", NULL, 0, NULL);
    assert_true(pump(h));
    roundtrip(h);
    hs_free(h);
}

static void handshake_expired_certificate_fails(void **state)
{
    (void)state;
    hs_t *h = hs_new();
    gw_tls_cert_free(&h->certs[0]);
    load_cert(&h->certs[0], "expired.pem", "expired.key");
    hs_start(h, "expired.example.com", NULL, 0, NULL);
    assert_false(pump(h));
    assert_int_equal(br_ssl_engine_last_error(&h->cc.eng), BR_ERR_X509_EXPIRED);
    hs_free(h);
}

static void with_client_auth(hs_t *h, bool required)
{
    load_anchors(&h->lcfg.client_cas, "ca.pem");
    h->lcfg.client_auth = true;
    h->lcfg.client_auth_required = required;
}

static void mtls_required_without_a_certificate_fails(void **state)
{
    (void)state;
    hs_t *h = hs_new();
    with_client_auth(h, true);
    hs_start(h, "localhost", NULL, 0, NULL);
    assert_false(pump(h));
    assert_int_equal(br_ssl_engine_last_error(&h->sc.eng), BR_ERR_NO_CLIENT_AUTH);
    assert_false(h->srv.peer.present);
    hs_free(h);
}

static void mtls_optional_without_a_certificate_passes(void **state)
{
    (void)state;
    hs_t *h = hs_new();
    with_client_auth(h, false);
    hs_start(h, "localhost", NULL, 0, NULL);
    assert_true(pump(h));
    assert_false(h->srv.peer.present);
    hs_free(h);
}

/* A certificate from another CA: refused when required; when optional, BearSSL's
 * BR_OPT_TOLERATE_NO_CLIENT_AUTH treats it as no certificate (the client is anonymous). */
static void mtls_foreign_certificate(void **state)
{
    (void)state;
    for (int required = 1; required >= 0; required--) {
        hs_t *h = hs_new();
        with_client_auth(h, required);
        load_cert(&h->ucfg.client_cert, "foreign.pem", "foreign.key");
        h->ucfg.has_client_cert = true;
        hs_start(h, "localhost", NULL, 0, NULL);
        assert_int_equal(pump(h), !required);
        assert_false(h->srv.peer.present);
        assert_string_equal(h->srv.peer.cn, "");
        hs_free(h);
    }
}

static void mtls_captures_cn_and_fingerprint(void **state)
{
    (void)state;
    hs_t *h = hs_new();
    with_client_auth(h, true);
    load_cert(&h->ucfg.client_cert, "client.pem", "client.key");
    h->ucfg.has_client_cert = true;
    hs_start(h, "localhost", NULL, 0, NULL);
    if (!pump(h))
        fail_msg("client error %d, server error %d", br_ssl_engine_last_error(&h->cc.eng),
                 br_ssl_engine_last_error(&h->sc.eng));
    assert_true(h->srv.peer.present);
    assert_string_equal(h->srv.peer.cn, "client-one");
    uint8_t want[32];
    br_sha256_context sha;
    br_sha256_init(&sha);
    br_sha256_update(&sha, h->ucfg.client_cert.chain[0].data,
                     h->ucfg.client_cert.chain[0].data_len);
    br_sha256_out(&sha, want);
    assert_memory_equal(h->srv.peer.sha256, want, 32);
    assert_int_equal(strlen(h->srv.peer.sha256_hex), 64);
    hs_free(h);
}

static const char *const http11[] = {"http/1.1"};

static void alpn_http11_negotiated(void **state)
{
    (void)state;
    static const char *const offer[] = {"h2", "http/1.1"};
    hs_t *h = hs_new();
    h->lcfg.alpn = (const char **)http11;
    h->lcfg.nalpn = 1;
    hs_start(h, "localhost", offer, 2, NULL);
    assert_true(pump(h));
    assert_string_equal(br_ssl_engine_get_selected_protocol(&h->sc.eng), "http/1.1");
    assert_string_equal(br_ssl_engine_get_selected_protocol(&h->cc.eng), "http/1.1");
    hs_free(h);
}

static void alpn_h2_only_client_is_refused(void **state)
{
    (void)state;
    static const char *const offer[] = {"h2"};
    hs_t *h = hs_new();
    h->lcfg.alpn = (const char **)http11;
    h->lcfg.nalpn = 1;
    hs_start(h, "localhost", offer, 1, NULL);
    assert_false(pump(h));
    assert_int_equal(br_ssl_engine_last_error(&h->sc.eng),
                     BR_ERR_SEND_FATAL_ALERT + BR_ALERT_NO_APPLICATION_PROTOCOL);
    hs_free(h);
}

/* A client that saved its session resumes it with a server that has a cache. */
static void resumption_with_a_saved_session(void **state)
{
    (void)state;
    static unsigned char store[4096];
    br_ssl_session_cache_lru lru;
    br_ssl_session_cache_lru_init(&lru, store, sizeof store);
    gw_tls_session_t slot = {0};
    hs_t *h = hs_new();
    for (int round = 0; round < 2; round++) {
        assert_int_equal(gw_tls_server_setup(&h->srv, &h->sc, &h->lcfg, &lru.vtable, NOW_2026,
                                             h->sbuf, sizeof h->sbuf),
                         0);
        gw_tls_client_opts_t o = {.server_name = "localhost",
                                  .now = NOW_2026,
                                  .resume = round ? &slot : NULL,
                                  .iobuf = h->cbuf,
                                  .iolen = sizeof h->cbuf};
        assert_int_equal(gw_tls_client_setup(&h->cli, &h->cc, &h->ucfg, &o), 0);
        assert_true(pump(h));
        assert_int_equal(gw_tls_session_resumed(&h->cc, &slot), round == 1);
        if (round == 0)
            gw_tls_session_save(&slot, &h->cc);
        assert_true(slot.valid);
    }
    gw_tls_session_forget(&slot);
    assert_false(slot.valid);
    hs_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sni_choose_table),
        cmocka_unit_test(handshake_sni_picks_the_certificate),
        cmocka_unit_test(handshake_wrong_name_fails),
        cmocka_unit_test(handshake_untrusted_ca_fails),
        cmocka_unit_test(handshake_verify_false_accepts_anything),
        cmocka_unit_test(handshake_expired_certificate_fails),
        cmocka_unit_test(mtls_required_without_a_certificate_fails),
        cmocka_unit_test(mtls_optional_without_a_certificate_passes),
        cmocka_unit_test(mtls_foreign_certificate),
        cmocka_unit_test(mtls_captures_cn_and_fingerprint),
        cmocka_unit_test(alpn_http11_negotiated),
        cmocka_unit_test(alpn_h2_only_client_is_refused),
        cmocka_unit_test(resumption_with_a_saved_session),
    };
    return cmocka_run_group_tests(tests, NULL, tls_certs_cleanup);
}
