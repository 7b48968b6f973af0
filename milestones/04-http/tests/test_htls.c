/* test_htls.c - the pure parts of the TLS side of a client connection (htls.h): the bounded
 * table of handshake failure reasons, suite and version names, and the mTLS fields a request
 * gets (or loses) on its way upstream; and the per-generation credentials: alive while a
 * connection holds one after its generation (and config) were freed, counters carried by
 * listener name. */
#include "gwtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "04-http/htls.h"
#include "04-http/httpcfg.h"
#include "04-http/tlsserver.h"
#include "error.h"
#include "fixtures/tls_certs.h"
#include "gen.h"
#include "tls_stream.h"

/* ---- failure reasons ------------------------------------------------------------------------ */

static void htls_reason_slots_are_bounded(void **state)
{
    (void)state;
    /* Whatever BearSSL (or a peer's alert) says, the slot is inside the table. */
    for (int e = -1000; e < 2000; e++)
        assert_true(gw_htls_reason_slot(e) < GW_HTLS_NSLOTS);
    assert_int_equal(gw_htls_reason_slot(-1), GW_HTLS_SLOT_UNKNOWN);
    assert_int_equal(gw_htls_reason_slot(1 << 20), GW_HTLS_SLOT_UNKNOWN);
}

static void htls_reason_names_are_the_stream_names(void **state)
{
    (void)state;
    const int codes[] = {BR_ERR_BAD_VERSION, BR_ERR_X509_NOT_TRUSTED, BR_ERR_NO_CLIENT_AUTH,
                         BR_ERR_RECV_FATAL_ALERT + 40, BR_ERR_SEND_FATAL_ALERT + 120};
    const char *names[] = {"bad_version", "x509_not_trusted", "no_client_auth",
                           "recv_alert_handshake_failure", "sent_alert_no_application_protocol"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        assert_string_equal(gw_htls_reason_name(gw_htls_reason_slot(codes[i])), names[i]);
        assert_string_equal(gw_tls_error_name(codes[i]), names[i]);
    }
    assert_string_equal(gw_htls_reason_name(GW_HTLS_SLOT_TIMEOUT), "timeout");
    assert_string_equal(gw_htls_reason_name(GW_HTLS_SLOT_EOF), "eof");
    assert_string_equal(gw_htls_reason_name(GW_HTLS_SLOT_NO_BUFFERS), "no_buffers");
    assert_string_equal(gw_htls_reason_name(GW_HTLS_SLOT_NO_MEMORY), "no_memory");
    assert_string_equal(gw_htls_reason_name(GW_HTLS_SLOT_UNKNOWN), "unknown");
}

/* Two slots that can count never print the same label (the exposition would have duplicate
 * samples): codes without a name of their own (an alert TLS 1.2 does not define, a gap in
 * BR_ERR_*) share the one slot of their generic name, and every code's slot prints the
 * code's name. */
static void htls_each_reason_name_has_one_slot(void **state)
{
    (void)state;
    static bool reachable[GW_HTLS_NSLOTS];
    memset(reachable, 0, sizeof reachable);
    for (int e = -10; e < 1200; e++) {
        size_t s = gw_htls_reason_slot(e);
        reachable[s] = true;
        assert_string_equal(gw_htls_reason_name(s), gw_tls_error_name(e));
    }
    reachable[GW_HTLS_SLOT_TIMEOUT] = reachable[GW_HTLS_SLOT_EOF] = true;
    reachable[GW_HTLS_SLOT_NO_BUFFERS] = reachable[GW_HTLS_SLOT_NO_MEMORY] = true;
    size_t used = 0;
    for (size_t a = 0; a < GW_HTLS_NSLOTS; a++) {
        if (!reachable[a])
            continue;
        used++;
        for (size_t b = 0; b < a; b++)
            if (reachable[b])
                assert_string_not_equal(gw_htls_reason_name(a), gw_htls_reason_name(b));
    }
    assert_true(used > 100 && used < 200); /* ~130 names in ~580 slots */
}

static void htls_failure_slot_by_status(void **state)
{
    (void)state;
    assert_int_equal(gw_htls_failure_slot(UV_EOF, 0), GW_HTLS_SLOT_EOF);
    assert_string_equal(gw_htls_reason_name(gw_htls_failure_slot(UV_ECONNRESET, 0)), "io");
    assert_string_equal(gw_htls_reason_name(gw_htls_failure_slot(UV_EPROTO, BR_ERR_BAD_VERSION)),
                        "bad_version");
    assert_int_equal(gw_htls_failure_slot(UV_EPROTO, BR_ERR_OK), GW_HTLS_SLOT_UNKNOWN);
}

/* ---- names ---------------------------------------------------------------------------------- */

static void htls_every_offered_suite_has_its_iana_name(void **state)
{
    (void)state;
    for (size_t i = 0; i < gw_tls_nsuites; i++) {
        const char *n = gw_htls_suite_name(gw_tls_suites[i]);
        assert_true(strncmp(n, "TLS_ECDHE_", 10) == 0);
    }
    assert_string_equal(gw_htls_suite_name(BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
                        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256");
    assert_string_equal(gw_htls_suite_name(BR_TLS_RSA_WITH_AES_128_CBC_SHA), "unknown");
    assert_string_equal(gw_htls_version_name(BR_TLS12), "TLSv1.2");
    assert_string_equal(gw_htls_version_name(0x0304), "unknown");
}

/* ---- mTLS fields ---------------------------------------------------------------------------- */

static gw_tls_listener_cfg_t mtls_cfg(bool client_auth)
{
    gw_tls_listener_cfg_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.client_auth = client_auth;
    cfg.subject_header = "X-Client-Cert-Subject";
    cfg.fingerprint_header = "X-Client-Cert-Sha256";
    return cfg;
}

static void head_with(gw_h1_head_t *h, const char *name, const char *value)
{
    gw_h1_head_init(h, true, 16384, 64);
    assert_int_equal(gw_h1_head_set_method(h, "GET", 3), 0);
    assert_int_equal(gw_h1_head_set_target(h, "/", 1), 0);
    assert_int_equal(gw_h1_head_add(h, "Host", 4, "gw.test", 7), 0);
    if (name != NULL)
        assert_int_equal(gw_h1_head_add(h, name, strlen(name), value, strlen(value)), 0);
}

/* The values of NAME in H, joined by '|'. */
static const char *values(const gw_h1_head_t *h, const char *name, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (long i = gw_h1_head_find(h, name, 0); i >= 0;
         i = gw_h1_head_find(h, name, (size_t)i + 1)) {
        gw_h1_span_t v = gw_h1_head_value_at(h, (size_t)i);
        int k = snprintf(buf + o, cap - o, "%s%.*s", o ? "|" : "", (int)v.len, v.ptr);
        assert_true(k >= 0 && (size_t)k < cap - o);
        o += (size_t)k;
    }
    return buf;
}

static const char FP[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

static void htls_fields_verified_certificate_replaces_client_copies(void **state)
{
    (void)state;
    gw_tls_listener_cfg_t cfg = mtls_cfg(true);
    gw_hx_tls_t info = {.client_cert = true, .cert_cn = "alice", .cert_sha256 = FP};
    gw_h1_head_t h;
    char buf[512];
    head_with(&h, "x-client-cert-subject", "admin");
    assert_int_equal(gw_h1_head_add(&h, "X-Client-Cert-Sha256", 20, "forged", 6), 0);
    assert_int_equal(gw_htls_client_fields(&h, &cfg, &info), 0);
    assert_string_equal(values(&h, "X-Client-Cert-Subject", buf, sizeof buf), "alice");
    assert_string_equal(values(&h, "X-Client-Cert-Sha256", buf, sizeof buf), FP);
    assert_string_equal(values(&h, "Host", buf, sizeof buf), "gw.test");
    gw_h1_head_free(&h);
}

static void htls_fields_without_certificate_only_remove(void **state)
{
    (void)state;
    gw_tls_listener_cfg_t cfg = mtls_cfg(true);
    gw_hx_tls_t anon = {.client_cert = false, .cert_cn = "", .cert_sha256 = ""};
    gw_h1_head_t h;
    char buf[512];
    head_with(&h, "X-Client-Cert-Subject", "alice");
    assert_int_equal(gw_htls_client_fields(&h, &cfg, &anon), 0);
    assert_string_equal(values(&h, "X-Client-Cert-Subject", buf, sizeof buf), "");
    gw_h1_head_free(&h);
    head_with(&h, "X-Client-Cert-Sha256", FP);
    assert_int_equal(gw_htls_client_fields(&h, &cfg, NULL), 0); /* before any handshake */
    assert_string_equal(values(&h, "X-Client-Cert-Sha256", buf, sizeof buf), "");
    gw_h1_head_free(&h);
}

static void htls_fields_untouched_without_client_auth(void **state)
{
    (void)state;
    gw_tls_listener_cfg_t cfg = mtls_cfg(false);
    gw_hx_tls_t info = {.client_cert = true, .cert_cn = "alice", .cert_sha256 = FP};
    gw_h1_head_t h;
    char buf[512];
    head_with(&h, "X-Client-Cert-Subject", "passed on");
    assert_int_equal(gw_htls_client_fields(&h, &cfg, &info), 0);
    assert_string_equal(values(&h, "X-Client-Cert-Subject", buf, sizeof buf), "passed on");
    assert_int_equal(gw_htls_client_fields(&h, NULL, NULL), 0); /* plaintext */
    assert_string_equal(values(&h, "X-Client-Cert-Subject", buf, sizeof buf), "passed on");
    gw_h1_head_free(&h);
}

static void htls_fields_encode_what_is_not_printable(void **state)
{
    (void)state;
    gw_tls_listener_cfg_t cfg = mtls_cfg(true);
    gw_hx_tls_t info = {.client_cert = true, .cert_cn = "a\r\nb: c%d\xc3\xa9", .cert_sha256 = FP};
    gw_h1_head_t h;
    char buf[512];
    head_with(&h, NULL, NULL);
    assert_int_equal(gw_htls_client_fields(&h, &cfg, &info), 0);
    assert_string_equal(values(&h, "X-Client-Cert-Subject", buf, sizeof buf),
                        "a%0D%0Ab: c%25d%C3%A9");
    gw_h1_head_free(&h);
    /* A certificate without a CN: the fingerprint alone. */
    info.cert_cn = "";
    head_with(&h, NULL, NULL);
    assert_int_equal(gw_htls_client_fields(&h, &cfg, &info), 0);
    assert_string_equal(values(&h, "X-Client-Cert-Subject", buf, sizeof buf), "");
    assert_string_equal(values(&h, "X-Client-Cert-Sha256", buf, sizeof buf), FP);
    gw_h1_head_free(&h);
}

static void htls_fields_longest_cn_fits(void **state)
{
    (void)state;
    gw_tls_listener_cfg_t cfg = mtls_cfg(true);
    char cn[256]; /* gw_tls_peer_t.cn's size: 255 bytes at most */
    memset(cn, 0x01, sizeof cn - 1);
    cn[sizeof cn - 1] = '\0';
    gw_hx_tls_t info = {.client_cert = true, .cert_cn = cn, .cert_sha256 = FP};
    gw_h1_head_t h;
    char buf[1024];
    head_with(&h, NULL, NULL);
    assert_int_equal(gw_htls_client_fields(&h, &cfg, &info), 0);
    assert_int_equal(strlen(values(&h, "X-Client-Cert-Subject", buf, sizeof buf)), 3 * 255);
    gw_h1_head_free(&h);
}

/* ---- credentials per generation -------------------------------------------------------- */

static void free_cfg(gw_config_t *cfg)
{
    gw_config_free(cfg, &gw_http_config_ext);
    free(cfg);
}

/* A generation (ID) over a config whose listeners are LISTENERS (YAML, 2 spaces in, `@` for
 * the certificates' directory), with one upstream `app`; the config goes with it. */
static gw_gen_t *gen_of(uint64_t id, const char *listeners)
{
    char text[8192], a[4096];
    const char *dir = tls_certs_dir();
    assert_non_null(dir);
    size_t n = 0;
    for (const char *p = listeners; *p && n < sizeof a - 300; p++)
        n += *p == '@' ? (size_t)snprintf(a + n, sizeof a - n, "%s", dir) : (a[n] = *p, 1);
    a[n] = 0;
    snprintf(text, sizeof text,
             "workers: 1\nlisteners:\n%supstreams:\n  app:\n    backends:\n"
             "      - address: 127.0.0.1:19001\n",
             a);
    gw_config_t *cfg = calloc(1, sizeof *cfg);
    assert_non_null(cfg);
    char *errs = NULL;
    size_t errs_len = 0;
    FILE *f = open_memstream(&errs, &errs_len);
    int rc = gw_config_load_string("t.yaml", text, &gw_http_config_ext, cfg, f);
    fclose(f);
    if (rc != 0)
        fail_msg("config: %s", errs);
    free(errs);
    gw_gen_t *g = gw_gen_new(id, cfg, free_cfg);
    assert_non_null(g);
    return g;
}

#define ROUTES "    routes:\n      - match: {path_prefix: /}\n        upstream: app\n"
#define EDGE(port)                                                                                 \
    "  - name: edge\n    address: 127.0.0.1:" port "\n    protocol: http\n" ROUTES                 \
    "    tls:\n      certificates:\n        - {cert: @/rsa-chain.pem, key: @/rsa.key}\n"           \
    "        - {cert: @/ec.pem, key: @/ec-trad.key}\n"
#define PLAIN "  - name: plain\n    address: 127.0.0.1:18080\n    protocol: http\n" ROUTES

static hp_tls_gen_t *build(hp_tls_t *t, const gw_gen_t *g, const hp_tls_gen_t *prev)
{
    int err = 0;
    hp_tls_gen_t *tg = hp_tls_gen_build(t, g->cfg, prev, stderr, &err);
    assert_non_null(tg);
    assert_int_equal(err, 0);
    return tg;
}

/* A connection holds the credential it handshook with: freeing its generation, and with it
 * the config that loaded the certificates, leaves them usable until the connection lets go
 * (under ASan, a credential that did not hold its config's tls part is a use after free). */
static void htls_credential_outlives_its_generation(void **state)
{
    (void)state;
    hp_tls_t *t = hp_tls_new(1);
    assert_non_null(t);
    gw_gen_t *g = gen_of(1, EDGE("18443"));
    hp_tls_gen_t *tg = build(t, g, NULL);
    hp_tls_cred_t *cr = hp_tls_gen_cred(tg, 0);
    assert_non_null(cr);
    hp_tls_cred_hold(cr); /* what hp_tls_accept's connection does */
    hp_tls_gen_free(tg);
    gw_gen_free(g); /* the config and its `tls` part: the config's reference goes */
    const gw_tls_listener_cfg_t *tc = hp_tls_cred_cfg(cr);
    assert_int_equal(tc->ncerts, 2);
    assert_true(tc->certs[0].nchain >= 1);
    assert_true(tc->certs[0].chain[0].data_len > 0);
    /* What a connection does with it: a server context over its chain and keys. */
    static gw_tls_server_t srv;
    static br_ssl_server_context sc;
    static unsigned char iobuf[BR_SSL_BUFSIZE_BIDI];
    assert_int_equal(gw_tls_server_setup(&srv, &sc, tc, NULL, 1767225600, iobuf, sizeof iobuf), 0);
    hp_tls_cred_release(cr); /* the last reference: freed (LeakSanitizer checks) */
    hp_tls_free(t);
}

static char *metrics_of(const hp_tls_gen_t *tg, const gw_gen_t *g)
{
    gw_prom_t *p = gw_prom_new(1 << 16);
    assert_non_null(p);
    hp_tls_metrics(tg, g, p);
    size_t len;
    char *text = gw_prom_take(p, &len);
    gw_prom_free(p);
    assert_non_null(text);
    return text;
}

/* A reload that moves listener `edge` to another address and position keeps its counters
 * (they are its name's, not its credential's): the count does not fall back to 0. */
static void htls_counters_carried_by_listener_name(void **state)
{
    (void)state;
    hp_tls_t *t = hp_tls_new(2);
    assert_non_null(t);
    gw_gen_t *g1 = gen_of(1, EDGE("18443"));
    hp_tls_gen_t *tg1 = build(t, g1, NULL);
    hp_tls_cred_count(hp_tls_gen_cred(tg1, 0), 0, 0, 0, false);
    hp_tls_cred_count(hp_tls_gen_cred(tg1, 0), 1, 0, 0, false);
    hp_tls_cred_count(hp_tls_gen_cred(tg1, 0), 1, 0, 0, true);
    hp_tls_cred_count(hp_tls_gen_cred(tg1, 0), 0, UV_EOF, GW_HTLS_SLOT_EOF, false);
    gw_gen_t *g2 = gen_of(2, PLAIN EDGE("18444")); /* edge is second now */
    hp_tls_gen_t *tg2 = build(t, g2, tg1);
    hp_tls_gen_free(tg1);
    gw_gen_free(g1);
    assert_null(hp_tls_gen_cred(tg2, 0));
    assert_non_null(hp_tls_gen_cred(tg2, 1));
    hp_tls_cred_count(hp_tls_gen_cred(tg2, 1), 0, 0, 0, false);
    char *text = metrics_of(tg2, g2);
    assert_non_null(
        strstr(text, "gw_tls_handshakes_total{listener=\"edge\",resumed=\"false\"} 3\n"));
    assert_non_null(
        strstr(text, "gw_tls_handshakes_total{listener=\"edge\",resumed=\"true\"} 1\n"));
    assert_non_null(
        strstr(text, "gw_tls_handshake_failures_total{listener=\"edge\",reason=\"eof\"} 1\n"));
    assert_null(strstr(text, "listener=\"plain\"")); /* no tls there */
    free(text);
    hp_tls_gen_free(tg2);
    gw_gen_free(g2);
    hp_tls_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(htls_reason_slots_are_bounded),
        cmocka_unit_test(htls_reason_names_are_the_stream_names),
        cmocka_unit_test(htls_each_reason_name_has_one_slot),
        cmocka_unit_test(htls_failure_slot_by_status),
        cmocka_unit_test(htls_every_offered_suite_has_its_iana_name),
        cmocka_unit_test(htls_fields_verified_certificate_replaces_client_copies),
        cmocka_unit_test(htls_fields_without_certificate_only_remove),
        cmocka_unit_test(htls_fields_untouched_without_client_auth),
        cmocka_unit_test(htls_fields_encode_what_is_not_printable),
        cmocka_unit_test(htls_fields_longest_cn_fits),
        cmocka_unit_test(htls_credential_outlives_its_generation),
        cmocka_unit_test(htls_counters_carried_by_listener_name),
    };
    return cmocka_run_group_tests_name("htls", tests, NULL, tls_certs_cleanup);
}
