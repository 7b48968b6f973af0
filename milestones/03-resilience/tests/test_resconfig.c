/* test_resconfig.c - milestone 03's configuration keys and their errors. */
#include "gwtest.h"

#include <stdio.h>
#include <stdlib.h>

#include "03-resilience/resconfig.h"

static gw_config_t cfg;
static char *errs;
static size_t errs_len;

static int teardown(void **state)
{
    (void)state;
    gw_config_free(&cfg, &gw_res_config_ext);
    free(errs);
    errs = NULL;
    return 0;
}

/* ROOT_KEYS go at the top level; LISTENER_KEYS and UPSTREAM_KEYS are indented to fit. */
static int load(const char *root_keys, const char *listener_keys, const char *upstream_keys)
{
    char text[4096];
    snprintf(text, sizeof text,
             "workers: 1\n"
             "%s"
             "listeners:\n"
             "  - name: edge\n"
             "    address: 127.0.0.1:18080\n"
             "    upstream: app\n"
             "%s"
             "upstreams:\n"
             "  app:\n"
             "%s"
             "    backends:\n"
             "      - address: 127.0.0.1:19001\n",
             root_keys, listener_keys, upstream_keys);
    free(errs);
    errs = NULL;
    FILE *f = open_memstream(&errs, &errs_len);
    int rc = gw_config_load_string("c.yaml", text, &gw_res_config_ext, &cfg, f);
    fclose(f);
    return rc;
}

static void resconfig_defaults(void **state)
{
    (void)state;
    assert_int_equal(load("", "", ""), 0);
    assert_false(gw_res_root_cfg(&cfg)->admin_enabled);
    const gw_res_upstream_cfg_t *u = gw_res_upstream_cfg(&cfg.upstreams[0]);
    assert_false(u->breaker_enabled);
    assert_int_equal(u->backoff_ms, 10);
    assert_int_equal(u->backoff_max_ms, 1000);
    assert_true(u->budget_percent == 20);
    assert_int_equal(u->min_concurrent, 3);
    assert_int_equal(gw_res_listener_cfg(&cfg.listeners[0])->global_rate, 0);
    /* 02's part of the upstream is still there and right. */
    assert_int_equal(gw_lb_upstream_cfg(&cfg.upstreams[0])->max_connect_attempts, 3);
}

static void resconfig_everything(void **state)
{
    (void)state;
    assert_int_equal(load("admin: {address: 127.0.0.1:19901, token: 0123456789abcdef}\n",
                          "    rate_limit:\n"
                          "      global: {rate: 100, burst: 150}\n"
                          "      per_client: {rate: 5, burst: 7, max_clients: 500}\n",
                          "    circuit_breaker: {consecutive_failures: 4, open_timeout: 2s,\n"
                          "                      half_open_max: 2, success_to_close: 3}\n"
                          "    retry: {max_attempts: 4, backoff: 20ms, backoff_max: 2s,\n"
                          "            budget_percent: 10, min_concurrent: 1}\n"),
                     0);
    const gw_res_root_cfg_t *r = gw_res_root_cfg(&cfg);
    assert_true(r->admin_enabled);
    assert_string_equal(r->admin_token, "0123456789abcdef");
    assert_int_equal(gw_addr_port(&r->admin_addr), 19901);
    const gw_res_listener_cfg_t *l = gw_res_listener_cfg(&cfg.listeners[0]);
    assert_int_equal(l->global_rate, 100);
    assert_int_equal(l->global_burst, 150);
    assert_int_equal(l->client_rate, 5);
    assert_int_equal(l->client_burst, 7);
    assert_int_equal(l->max_clients, 500);
    const gw_res_upstream_cfg_t *u = gw_res_upstream_cfg(&cfg.upstreams[0]);
    assert_true(u->breaker_enabled);
    assert_int_equal(u->breaker.consecutive_failures, 4);
    assert_int_equal(u->breaker.open_timeout_ms, 2000);
    assert_int_equal(u->breaker.half_open_max, 2);
    assert_int_equal(u->breaker.success_to_close, 3);
    assert_int_equal(u->backoff_ms, 20);
    assert_int_equal(u->backoff_max_ms, 2000);
    assert_int_equal(u->min_concurrent, 1);
    assert_int_equal(gw_lb_upstream_cfg(&cfg.upstreams[0])->max_connect_attempts, 4);
}

static void resconfig_short_token(void **state)
{
    (void)state;
    assert_int_not_equal(load("admin: {token: short}\n", "", ""), 0);
    gw_assert_contains(errs, "c.yaml:2:16: token: use at least 16 characters");
}

static void resconfig_empty_rate_limit(void **state)
{
    (void)state;
    assert_int_not_equal(load("", "    rate_limit: {}\n", ""), 0);
    gw_assert_contains(errs, "c.yaml:6:17: rate_limit needs `global`, `per_client` or both");
}

static void resconfig_rate_required(void **state)
{
    (void)state;
    assert_int_not_equal(load("", "    rate_limit: {global: {burst: 3}}\n", ""), 0);
    gw_assert_contains(errs, "missing required key 'rate'");
}

static void resconfig_breaker_with_no_rule(void **state)
{
    (void)state;
    assert_int_not_equal(
        load("", "", "    circuit_breaker: {consecutive_failures: 0, failure_rate_percent: 0}\n"),
        0);
    gw_assert_contains(errs, "c.yaml:8:22: circuit_breaker: both rules are off");
}

static void resconfig_backoff_max_below_backoff(void **state)
{
    (void)state;
    assert_int_not_equal(load("", "", "    retry: {backoff: 1s, backoff_max: 10ms}\n"), 0);
    gw_assert_contains(errs, "c.yaml:8:39: backoff_max must be at least backoff");
}

static void resconfig_admin_on_a_listener_address(void **state)
{
    (void)state;
    assert_int_not_equal(load("admin: {address: 127.0.0.1:18080}\n", "", ""), 0);
    gw_assert_contains(errs, "also listener 'edge'");
}

static void resconfig_gw02_names_milestone_03(void **state)
{
    (void)state;
    char *text = "workers: 1\nadmin: {address: 127.0.0.1:19901}\nlisteners:\n"
                 "  - {name: edge, address: 127.0.0.1:18080, upstream: app}\n"
                 "upstreams:\n  app:\n    backends:\n      - address: 127.0.0.1:19001\n";
    FILE *f = open_memstream(&errs, &errs_len);
    int rc = gw_config_load_string("c.yaml", text, &gw_lb_config_ext, &cfg, f);
    fclose(f);
    assert_int_not_equal(rc, 0);
    gw_assert_contains(errs, "c.yaml:2:1: admin: needs gw03 or later");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(resconfig_defaults, teardown),
        cmocka_unit_test_teardown(resconfig_everything, teardown),
        cmocka_unit_test_teardown(resconfig_short_token, teardown),
        cmocka_unit_test_teardown(resconfig_empty_rate_limit, teardown),
        cmocka_unit_test_teardown(resconfig_rate_required, teardown),
        cmocka_unit_test_teardown(resconfig_breaker_with_no_rule, teardown),
        cmocka_unit_test_teardown(resconfig_backoff_max_below_backoff, teardown),
        cmocka_unit_test_teardown(resconfig_admin_on_a_listener_address, teardown),
        cmocka_unit_test_teardown(resconfig_gw02_names_milestone_03, teardown),
    };
    return cmocka_run_group_tests_name("resconfig", tests, NULL, NULL);
}
