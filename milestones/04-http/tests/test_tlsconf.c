/* test_tlsconf.c - the `tls:` keys of listeners and upstreams: defaults, errors at their
 * line:column (files included), -T without key material, warnings (key file mode,
 * verify: false), the server name default. */
#include "gwtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "03-resilience/resconfig.h"
#include "04-http/httpcfg.h"
#include "04-http/tlsconf.h"
#include "fixtures/tls_certs.h"

static gw_config_t cfg;
static char *errs;
static size_t errs_len;

static int teardown(void **state)
{
    (void)state;
    gw_config_free(&cfg, &gw_http_config_ext);
    memset(&cfg, 0, sizeof cfg);
    free(errs);
    errs = NULL;
    return 0;
}

/* A config whose first listener (PROTO) has LISTENER_TLS from line 6 (indented 4) and whose
 * upstream `app` has UPSTREAM_TLS (indented 4) after its backends. `@` in either stands for
 * the certificates' directory. */
static int load(const char *proto, const char *listener_tls, const char *upstream_tls)
{
    char text[16384], a[4096], b[4096];
    const char *dir = tls_certs_dir();
    assert_non_null(dir);
    size_t n = 0;
    for (const char *p = listener_tls; *p && n < sizeof a - 300; p++)
        n += *p == '@' ? (size_t)snprintf(a + n, sizeof a - n, "%s", dir) : (a[n] = *p, 1);
    a[n] = 0;
    n = 0;
    for (const char *p = upstream_tls; *p && n < sizeof b - 300; p++)
        n += *p == '@' ? (size_t)snprintf(b + n, sizeof b - n, "%s", dir) : (b[n] = *p, 1);
    b[n] = 0;
    bool http = !strcmp(proto, "http");
    snprintf(text, sizeof text,
             "workers: 1\n"
             "listeners:\n"
             "  - name: edge\n"
             "    address: 127.0.0.1:18443\n"
             "    protocol: %s\n"
             "%s"
             "%s"
             "upstreams:\n"
             "  app:\n"
             "    backends:\n"
             "      - address: 127.0.0.1:19001\n"
             "%s",
             proto, a,
             http ? "    routes:\n      - match: {path_prefix: /}\n        upstream: app\n"
                  : "    upstream: app\n",
             b);
    free(errs);
    errs = NULL;
    FILE *f = open_memstream(&errs, &errs_len);
    int rc = gw_config_load_string("t.yaml", text, &gw_http_config_ext, &cfg, f);
    fclose(f);
    return rc;
}

#define CERTS                                                                                      \
    "    tls:\n"                                                                                   \
    "      certificates:\n"                                                                        \
    "        - {cert: @/rsa-chain.pem, key: @/rsa.key}\n"                                          \
    "        - {cert: @/ec.pem, key: @/ec-trad.key}\n"

static void tls_listener_defaults(void **state)
{
    (void)state;
    if (load("http", CERTS, "") != 0)
        fail_msg("%s", errs);
    const gw_tls_listener_cfg_t *t = gw_tls_listener_cfg(&cfg.listeners[0]);
    assert_non_null(t);
    assert_int_equal(t->ncerts, 2);
    assert_int_equal(t->certs[0].nchain, 2);
    assert_int_equal(t->certs[1].key_type, BR_KEYTYPE_EC);
    assert_false(t->client_auth);
    assert_int_equal(t->handshake_timeout_ms, 10000);
    assert_int_equal(t->session_cache_size, 20000);
    assert_int_equal(t->nalpn, 1);
    assert_string_equal(t->alpn[0], "http/1.1");
    assert_string_equal(t->subject_header, "X-Client-Cert-Subject");
    assert_string_equal(t->fingerprint_header, "X-Client-Cert-Sha256");
    assert_null(gw_tls_upstream_cfg(&cfg.upstreams[0]));
}

/* tcp listeners take tls too, without ALPN by default. */
static void tls_tcp_listener_has_no_alpn_by_default(void **state)
{
    (void)state;
    if (load("tcp", CERTS "      alpn: [imap]\n", "") != 0)
        fail_msg("%s", errs);
    const gw_tls_listener_cfg_t *t = gw_tls_listener_cfg(&cfg.listeners[0]);
    assert_non_null(t);
    assert_int_equal(t->nalpn, 1);
    assert_null(gw_http_listener_cfg(&cfg.listeners[0]));
    teardown(NULL);
    if (load("tcp", CERTS, "") != 0)
        fail_msg("%s", errs);
    assert_int_equal(gw_tls_listener_cfg(&cfg.listeners[0])->nalpn, 0);
}

/* A listener terminates TLS or passes it through, never both. */
static void tls_and_passthrough_exclude_each_other(void **state)
{
    (void)state;
    if (load("tcp", CERTS "    tls_passthrough: {routes: [{sni: a.b, upstream: app}]}\n", "") == 0)
        fail_msg("loaded a listener with tls and tls_passthrough");
    gw_assert_contains(errs, "t.yaml:10:5: tls_passthrough: not with tls");
}

static void tls_listener_every_key(void **state)
{
    (void)state;
    if (load("http",
             CERTS "      client_auth: {ca: @/ca.pem, required: false, subject_header: X-Sub, "
                   "fingerprint_header: X-Fp}\n"
                   "      handshake_timeout: 3s\n"
                   "      session_cache: {size: 0}\n"
                   "      alpn: []\n",
             "") != 0)
        fail_msg("%s", errs);
    const gw_tls_listener_cfg_t *t = gw_tls_listener_cfg(&cfg.listeners[0]);
    assert_true(t->client_auth);
    assert_false(t->client_auth_required);
    assert_int_equal(t->client_cas.n, 1);
    assert_string_equal(t->subject_header, "X-Sub");
    assert_string_equal(t->fingerprint_header, "X-Fp");
    assert_int_equal(t->handshake_timeout_ms, 3000);
    assert_int_equal(t->session_cache_size, 0);
    assert_int_equal(t->nalpn, 0);
}

static void expect_error(const char *proto, const char *ltls, const char *utls, const char *msg)
{
    if (load(proto, ltls, utls) == 0)
        fail_msg("loaded; expected %s", msg);
    gw_assert_contains(errs, msg);
    teardown(NULL);
}

static void tls_errors_at_their_position(void **state)
{
    (void)state;
    expect_error("http", "    tls: {}\n", "", "t.yaml:6:10: missing required key 'certificates'");
    expect_error("http", "    tls:\n      certificates: []\n", "",
                 "t.yaml:7:21: certificates must not be empty");
    expect_error("http",
                 "    tls:\n      certificates:\n        - {cert: @/nope.pem, key: @/rsa.key}\n",
                 "", "t.yaml:8:18: certificates: ");
    expect_error("http",
                 "    tls:\n      certificates:\n        - {cert: @/nope.pem, key: @/rsa.key}\n",
                 "", "nope.pem: No such file or directory");
    /* a key that is not the certificate's: the error points at `key` */
    expect_error("http",
                 "    tls:\n      certificates:\n        - {cert: @/rsa.pem, key: @/ec.key}\n", "",
                 "the key does not match the certificate");
    expect_error("http",
                 "    tls:\n      certificates:\n        - {cert: @/rsa.pem, key: @/ec.key}\n", "",
                 "t.yaml:8:");
    expect_error("http", "    tls:\n      certificates:\n        - {cert: @/rsa.pem}\n", "",
                 "missing required key 'key'");
    expect_error(
        "http", CERTS "      alpn: [h2]\n", "",
        "t.yaml:10:14: alpn: 'h2' is not spoken here: an http listener speaks http/1.1 only");
    expect_error("http", CERTS "      handshake_timeout: 0s\n", "", "t.yaml:10:26:");
    expect_error("http", CERTS "      client_auth: {required: true}\n", "",
                 "t.yaml:10:20: missing required key 'ca'");
    expect_error("http", CERTS "      client_auth: {ca: @/rsa.key}\n", "",
                 "no usable CA CERTIFICATE");
    expect_error("http", CERTS "      sessions: 4\n", "", "t.yaml:10:7: unknown key 'sessions'");
    expect_error("http", "", "    tls: {ca: @/none.pem}\n", "t.yaml:13:15: ca: ");
}

static void tls_upstream_keys(void **state)
{
    (void)state;
    if (load("http", "",
             "    tls: {ca: @/ca.pem, server_name: app.internal, "
             "client_cert: {cert: @/client.pem, key: @/client.key}}\n") != 0)
        fail_msg("%s", errs);
    const gw_tls_upstream_cfg_t *t = gw_tls_upstream_cfg(&cfg.upstreams[0]);
    assert_non_null(t);
    assert_true(t->verify);
    assert_int_equal(t->anchors.n, 1);
    assert_string_equal(t->server_name, "app.internal");
    assert_true(t->has_client_cert);
    assert_int_equal(t->nwarnings, 0);
}

static void count_cb(void *ctx, const char *msg)
{
    char *all = ctx;
    strncat(all, msg, 1000);
    strcat(all, "\n");
}

static void tls_upstream_verify_false_warns(void **state)
{
    (void)state;
    char all[4096] = "";
    if (load("http", "", "    tls: {verify: false}\n") != 0)
        fail_msg("%s", errs);
    const gw_tls_upstream_cfg_t *t = gw_tls_upstream_cfg(&cfg.upstreams[0]);
    assert_false(t->verify);
    assert_int_equal(t->anchors.n, 0);
    assert_int_equal(gw_tls_config_warnings(&cfg, count_cb, all), 1);
    gw_assert_contains(all, "t.yaml:13:19: warning: upstream 'app': verify: false");
    teardown(NULL);
    expect_error("http", "", "    tls: {verify: no}\n", "t.yaml:13:19:");
}

/* A backend given by IP address, verify on, no server_name: there is no name to verify (nor
 * to send as SNI); the chain still is. Said at every start, with the key's position. */
static void tls_upstream_ip_backend_without_name_warns(void **state)
{
    (void)state;
    char all[4096] = "";
    if (load("http", "", "    tls: {ca: @/ca.pem}\n") != 0)
        fail_msg("%s", errs);
    assert_int_equal(gw_tls_config_warnings(&cfg, count_cb, all), 1);
    gw_assert_contains(all, "t.yaml:13:10: warning: upstream 'app': backend 127.0.0.1:19001 is an "
                            "IP address and tls has no server_name");
    teardown(NULL);
    all[0] = 0;
    if (load("http", "", "    tls: {ca: @/ca.pem, server_name: app.internal}\n") != 0)
        fail_msg("%s", errs);
    assert_int_equal(gw_tls_config_warnings(&cfg, count_cb, all), 0);
    teardown(NULL);
    if (load("http", "", "    tls: {verify: false}\n") != 0) /* nothing is verified: one warning */
        fail_msg("%s", errs);
    assert_int_equal(gw_tls_config_warnings(&cfg, count_cb, all), 1);
}

/* An http health check speaks plaintext HTTP: against a TLS port it can only fail, and would
 * take every backend down. Refused, at the tls block; a tcp check (a connect) is fine. */
static void tls_upstream_refuses_an_http_health_check(void **state)
{
    (void)state;
    expect_error("http", "",
                 "    health_check: {type: http, interval: 1s, timeout: 1s, path: /healthz}\n"
                 "    tls: {ca: @/ca.pem, server_name: app.internal}\n",
                 "t.yaml:14:10: tls: health_check type http speaks plaintext");
    teardown(NULL);
    if (load("http", "",
             "    health_check: {type: tcp, interval: 1s, timeout: 1s}\n"
             "    tls: {ca: @/ca.pem, server_name: app.internal}\n") != 0)
        fail_msg("%s", errs);
}

static void tls_key_readable_by_others_warns(void **state)
{
    (void)state;
    char all[4096] = "", cmd[1024];
    const char *dir = tls_certs_dir();
    snprintf(cmd, sizeof cmd, "cp %s/ec.key %s/open.key && chmod 644 %s/open.key", dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    if (load("http", "    tls:\n      certificates:\n        - {cert: @/ec.pem, key: @/open.key}\n",
             "") != 0)
        fail_msg("%s", errs);
    assert_int_equal(gw_tls_config_warnings(&cfg, count_cb, all), 1);
    gw_assert_contains(all, "t.yaml:8:"); /* the column depends on the directory's name */
    gw_assert_contains(all, ": warning: key file ");
    gw_assert_contains(all, "open.key is readable by group or others (mode 644)");
    teardown(NULL);
    all[0] = 0;
    if (load("http", CERTS, "") != 0) /* the generated keys are 600 */
        fail_msg("%s", errs);
    assert_int_equal(gw_tls_config_warnings(&cfg, count_cb, all), 0);
}

/* -T: the paths, every default, never a byte of the key; and it loads back the same. */
static void tls_print_has_paths_not_keys(void **state)
{
    (void)state;
    char *out = NULL, *out2 = NULL;
    size_t len = 0, len2 = 0;
    if (load("http", CERTS "      client_auth: {ca: @/ca.pem}\n",
             "    tls: {verify: false, client_cert: {cert: @/client.pem, key: @/client.key}}\n") !=
        0)
        fail_msg("%s", errs);
    FILE *f = open_memstream(&out, &len);
    gw_config_print(f, &cfg, &gw_http_config_ext);
    fclose(f);
    gw_assert_contains(out, "    tls:\n      certificates:\n        - {cert: \"");
    gw_assert_contains(out, "rsa.key\"}\n");
    gw_assert_contains(out, "required: true, subject_header: \"X-Client-Cert-Subject\"");
    gw_assert_contains(out, "      handshake_timeout: 10s\n      session_cache: {size: 20000}\n"
                            "      alpn: [\"http/1.1\"]\n");
    gw_assert_contains(out,
                       "    tls:\n      ca: system\n      verify: false\n      client_cert: {");
    assert_null(strstr(out, "PRIVATE"));
    assert_null(strstr(out, "BEGIN"));
    teardown(NULL);
    FILE *e = open_memstream(&errs, &errs_len);
    int rc = gw_config_load_string("t2.yaml", out, &gw_http_config_ext, &cfg, e);
    fclose(e);
    if (rc != 0)
        fail_msg("-T output does not load back: %s\n%s", errs, out);
    f = open_memstream(&out2, &len2);
    gw_config_print(f, &cfg, &gw_http_config_ext);
    fclose(f);
    assert_string_equal(strchr(out, '\n'), strchr(out2, '\n')); /* line 1 names the file */
    free(out);
    free(out2);
}

static void tls_server_name_default(void **state)
{
    (void)state;
    gw_tls_upstream_cfg_t t = {.verify = true};
    char buf[256];
    assert_string_equal(gw_tls_server_name(&t, "app.internal:443", buf, sizeof buf),
                        "app.internal");
    assert_null(gw_tls_server_name(&t, "10.0.0.1:443", buf, sizeof buf));
    assert_null(gw_tls_server_name(&t, "[::1]:443", buf, sizeof buf));
    t.server_name = "named";
    assert_string_equal(gw_tls_server_name(&t, "10.0.0.1:443", buf, sizeof buf), "named");
}

/* gw03 (level 3) still refuses both keys, naming the milestone that has them. */
static void tls_needs_gw04_in_gw03(void **state)
{
    (void)state;
    static const char text[] = "workers: 1\n"
                               "listeners:\n"
                               "  - name: edge\n"
                               "    address: 127.0.0.1:18443\n"
                               "    upstream: app\n"
                               "    tls: {certificates: []}\n"
                               "upstreams:\n"
                               "  app:\n"
                               "    backends:\n"
                               "      - address: 127.0.0.1:19001\n"
                               "    tls: {verify: true}\n";
    free(errs);
    errs = NULL;
    FILE *f = open_memstream(&errs, &errs_len);
    int rc = gw_config_load_string("t.yaml", text, &gw_res_config_ext, &cfg, f);
    fclose(f);
    assert_int_not_equal(rc, 0);
    gw_assert_contains(errs, "t.yaml:6:5: tls: needs gw04 or later");
    gw_assert_contains(errs, "t.yaml:11:5: tls: needs gw04 or later");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(tls_listener_defaults, teardown),
        cmocka_unit_test_teardown(tls_tcp_listener_has_no_alpn_by_default, teardown),
        cmocka_unit_test_teardown(tls_and_passthrough_exclude_each_other, teardown),
        cmocka_unit_test_teardown(tls_listener_every_key, teardown),
        cmocka_unit_test_teardown(tls_errors_at_their_position, teardown),
        cmocka_unit_test_teardown(tls_upstream_keys, teardown),
        cmocka_unit_test_teardown(tls_upstream_verify_false_warns, teardown),
        cmocka_unit_test_teardown(tls_upstream_ip_backend_without_name_warns, teardown),
        cmocka_unit_test_teardown(tls_upstream_refuses_an_http_health_check, teardown),
        cmocka_unit_test_teardown(tls_key_readable_by_others_warns, teardown),
        cmocka_unit_test_teardown(tls_print_has_paths_not_keys, teardown),
        cmocka_unit_test(tls_server_name_default),
        cmocka_unit_test(tls_needs_gw04_in_gw03),
    };
    return cmocka_run_group_tests(tests, NULL, tls_certs_cleanup);
}
