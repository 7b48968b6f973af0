/* test_ppconf.c - the `proxy_protocol:` keys of listeners and upstreams: defaults, errors at
 * their line:column, -T, the `from` check, and "needs gw04" below 04. */
#include "gwtest.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "03-resilience/resconfig.h"
#include "04-http/httpcfg.h"
#include "04-http/ppconf.h"
#include "proxyproto.h"

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

/* A config whose listener (PROTO) has LISTENER from line 6 (indented 4) and whose upstream
 * `app` has UPSTREAM (indented 4) after its backends (line 14 for http, 12 for tcp). */
static int load_ext(const char *proto, const char *listener, const char *upstream,
                    const gw_config_ext_t *ext)
{
    char text[4096];
    bool http = !strcmp(proto, "http");
    snprintf(text, sizeof text,
             "workers: 1\n"
             "listeners:\n"
             "  - name: edge\n"
             "    address: 127.0.0.1:18080\n"
             "    protocol: %s\n"
             "%s"
             "%s"
             "upstreams:\n"
             "  app:\n"
             "    backends:\n"
             "      - address: 127.0.0.1:19001\n"
             "%s",
             proto, listener,
             http ? "    routes:\n      - match: {path_prefix: /}\n        upstream: app\n"
                  : "    upstream: app\n",
             upstream);
    free(errs);
    errs = NULL;
    FILE *f = open_memstream(&errs, &errs_len);
    int rc = gw_config_load_string("t.yaml", text, ext, &cfg, f);
    fclose(f);
    return rc;
}

static int load(const char *proto, const char *listener, const char *upstream)
{
    return load_ext(proto, listener, upstream, &gw_http_config_ext);
}

static const gw_pp_listener_cfg_t *lpp(void)
{
    const gw_http_listener_cfg_t *x = gw_http_listener_cfg(&cfg.listeners[0]);
    return x != NULL ? x->pp : NULL;
}

static void pp_listener_defaults(void **state)
{
    (void)state;
    assert_int_equal(load("http", "    proxy_protocol: {from: [10.0.0.0/8, \"::1\"]}\n", ""), 0);
    const gw_pp_listener_cfg_t *p = lpp();
    assert_non_null(p);
    assert_int_equal(p->accept, GW_PP_ANY);
    assert_int_equal(p->timeout_ms, 5000);
    assert_int_equal(p->nfrom, 2);
    assert_int_equal(gw_http_upstream_cfg(&cfg.upstreams[0])->proxy_protocol, 0);
}

static void pp_listener_absent(void **state)
{
    (void)state;
    assert_int_equal(load("http", "", ""), 0);
    assert_null(lpp());
}

static void pp_listener_values(void **state)
{
    (void)state;
    assert_int_equal(load("http",
                          "    proxy_protocol:\n"
                          "      accept: v2\n"
                          "      from: [127.0.0.1]\n"
                          "      timeout: 250ms\n",
                          "    proxy_protocol: v1\n"),
                     0);
    assert_int_equal(lpp()->accept, GW_PP_V2);
    assert_int_equal(lpp()->timeout_ms, 250);
    assert_int_equal(gw_http_upstream_cfg(&cfg.upstreams[0])->proxy_protocol, 1);
    teardown(NULL);
    assert_int_equal(load("http", "    proxy_protocol: {accept: v1, from: [127.0.0.1]}\n",
                          "    proxy_protocol: v2\n"),
                     0);
    assert_int_equal(lpp()->accept, GW_PP_V1);
    assert_int_equal(gw_http_upstream_cfg(&cfg.upstreams[0])->proxy_protocol, 2);
}

/* Every mistake at its line:column. */
static void pp_listener_errors(void **state)
{
    (void)state;
    assert_int_not_equal(load("http", "    proxy_protocol: {accept: v3, from: [10.0.0.1/8]}\n",
                              "    proxy_protocol: v9\n"),
                         0);
    gw_assert_contains(errs, "t.yaml:6:30:");
    gw_assert_contains(errs, "accept");
    gw_assert_contains(errs, "t.yaml:6:41: from: '10.0.0.1/8' is not an address or CIDR");
    gw_assert_contains(errs, "t.yaml:14:21: proxy_protocol must be one of: v1, v2");
    teardown(NULL);
    assert_int_not_equal(load("http", "    proxy_protocol: {accept: v1}\n", ""), 0);
    gw_assert_contains(errs, "t.yaml:6:21:");
    gw_assert_contains(errs, "from");
    teardown(NULL);
    assert_int_not_equal(load("http", "    proxy_protocol: {from: [], timeout: 0s}\n", ""), 0);
    gw_assert_contains(errs, "t.yaml:6:28: from: needs at least one address");
    gw_assert_contains(errs, "t.yaml:6:41: timeout: 0s is out of range");
    teardown(NULL);
    assert_int_not_equal(load("http", "    proxy_protocol: yes\n", ""), 0);
    gw_assert_contains(errs, "t.yaml:6:21:");
    teardown(NULL);
    assert_int_not_equal(load("http", "    proxy_protocol: {from: [127.0.0.1], acept: v1}\n", ""),
                         0);
    gw_assert_contains(errs, "acept");
}

/* On tcp listeners too (01's header hook reads it there): decoded, reachable through
 * gw_pp_listener_cfg, printed by -T; gw_http_listener_cfg stays NULL for a tcp listener. */
static void pp_tcp_listener(void **state)
{
    (void)state;
    assert_int_equal(load("tcp",
                          "    proxy_protocol: {accept: v1, from: [127.0.0.1], timeout: 2s}\n",
                          "    proxy_protocol: v1\n"),
                     0);
    const gw_pp_listener_cfg_t *p = gw_pp_listener_cfg(&cfg.listeners[0]);
    assert_non_null(p);
    assert_int_equal(p->accept, GW_PP_V1);
    assert_int_equal(p->timeout_ms, 2000);
    assert_null(gw_http_listener_cfg(&cfg.listeners[0]));
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    gw_config_print(f, &cfg, &gw_http_config_ext);
    fclose(f);
    gw_assert_contains(out, "proxy_protocol: {accept: v1, timeout: 2s, from: [\"127.0.0.1/32\"]}");
    assert_null(strstr(out, "routes:"));
    free(out);
}

static void pp_print(void **state)
{
    (void)state;
    assert_int_equal(load("http", "    proxy_protocol: {accept: v2, from: [10.0.0.0/8, \"::1\"]}\n",
                          "    proxy_protocol: v2\n"),
                     0);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    gw_config_print(f, &cfg, &gw_http_config_ext);
    fclose(f);
    gw_assert_contains(out, "proxy_protocol: {accept: v2, timeout: 5s, from: [\"10.0.0.0/8\", "
                            "\"::1/128\"]}");
    gw_assert_contains(out, "    proxy_protocol: v2\n");
    free(out);
}

static void pp_from_allowed(void **state)
{
    (void)state;
    assert_int_equal(load("http", "    proxy_protocol: {from: [10.0.0.0/8]}\n", ""), 0);
    struct sockaddr_in in = {.sin_family = AF_INET};
    inet_pton(AF_INET, "10.1.2.3", &in.sin_addr);
    assert_true(gw_pp_from_allowed(lpp(), (struct sockaddr *)&in));
    inet_pton(AF_INET, "11.1.2.3", &in.sin_addr);
    assert_false(gw_pp_from_allowed(lpp(), (struct sockaddr *)&in));
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6}; /* mapped: counts as IPv4 */
    inet_pton(AF_INET6, "::ffff:10.9.9.9", &in6.sin6_addr);
    assert_true(gw_pp_from_allowed(lpp(), (struct sockaddr *)&in6));
    struct sockaddr un = {.sa_family = AF_UNSPEC};
    assert_false(gw_pp_from_allowed(lpp(), &un));
}

/* gw03 (level 3) still refuses both keys, naming the milestone that has them. */
static void pp_needs_gw04_in_gw03(void **state)
{
    (void)state;
    assert_int_not_equal(load_ext("tcp", "    proxy_protocol: {from: [127.0.0.1]}\n",
                                  "    proxy_protocol: v1\n", &gw_res_config_ext),
                         0);
    gw_assert_contains(errs, "t.yaml:6:5: proxy_protocol: needs gw04 or later");
    gw_assert_contains(errs, "t.yaml:12:5: proxy_protocol: needs gw04 or later");
    gw_config_free(&cfg, &gw_res_config_ext);
    memset(&cfg, 0, sizeof cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(pp_listener_defaults, teardown),
        cmocka_unit_test_teardown(pp_listener_absent, teardown),
        cmocka_unit_test_teardown(pp_listener_values, teardown),
        cmocka_unit_test_teardown(pp_listener_errors, teardown),
        cmocka_unit_test_teardown(pp_tcp_listener, teardown),
        cmocka_unit_test_teardown(pp_print, teardown),
        cmocka_unit_test_teardown(pp_from_allowed, teardown),
        cmocka_unit_test_teardown(pp_needs_gw04_in_gw03, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
