/* test_resconfig.c - milestone 03's configuration keys and their errors. */
#include "gwtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- the admin API's exposure ------------------------------------------------------------ */

static void resconfig_admin_any_address_without_token_refused(void **state)
{
    (void)state;
    assert_int_not_equal(load("admin: {address: 0.0.0.0:19901}\n", "", ""), 0);
    gw_assert_contains(errs, "c.yaml:2:18: admin.address 0.0.0.0:19901 listens on every "
                             "interface and admin.token is not set");
    gw_assert_contains(errs, "allow_unauthenticated: true");
}

static void resconfig_admin_ipv6_any_without_token_refused(void **state)
{
    (void)state;
    assert_int_not_equal(load("admin:\n  address: \"[::]:19901\"\n", "", ""), 0);
    gw_assert_contains(errs, "c.yaml:3:12: admin.address [::]:19901 listens on every interface");
}

static void resconfig_admin_other_host_without_token_refused(void **state)
{
    (void)state;
    /* Loading parses the address and binds nothing, so any address may appear here. */
    assert_int_not_equal(load("admin: {address: 192.0.2.7:19901}\n", "", ""), 0);
    gw_assert_contains(errs, "c.yaml:2:18: admin.address 192.0.2.7:19901 is not a loopback "
                             "address and admin.token is not set");
}

static void resconfig_admin_loopback_needs_no_token(void **state)
{
    (void)state;
    const char *ok[] = {"admin: {address: 127.0.0.1:19901}\n",
                        "admin: {address: 127.8.9.10:19901}\n",
                        "admin: {address: \"[::1]:19901\"}\n",
                        "admin: {address: \"[::ffff:127.0.0.1]:19901\"}\n",
                        "admin: {address: localhost:19901}\n",
                        "admin: {}\n", /* the default, 127.0.0.1:9901 */
                        NULL};
    for (const char **t = ok; *t != NULL; t++) {
        if (load(*t, "", "") != 0)
            fail_msg("%s refused:\n%s", *t, errs);
        assert_false(gw_res_root_cfg(&cfg)->allow_unauthenticated);
        gw_config_free(&cfg, &gw_res_config_ext);
    }
}

static void resconfig_admin_open_with_consent_loads(void **state)
{
    (void)state;
    assert_int_equal(load("admin: {address: 0.0.0.0:19901, allow_unauthenticated: true}\n", "", ""),
                     0);
    assert_true(gw_res_root_cfg(&cfg)->allow_unauthenticated);
    assert_null(gw_res_root_cfg(&cfg)->admin_token);
}

static void resconfig_admin_open_with_token_loads(void **state)
{
    (void)state;
    assert_int_equal(load("admin: {address: 0.0.0.0:19901, token: 0123456789abcdef}\n", "", ""), 0);
    assert_false(gw_res_root_cfg(&cfg)->allow_unauthenticated);
}

static void resconfig_admin_consent_false_is_still_refused(void **state)
{
    (void)state;
    assert_int_not_equal(
        load("admin: {address: 0.0.0.0:19901, allow_unauthenticated: false}\n", "", ""), 0);
    gw_assert_contains(errs, "c.yaml:2:18: admin.address 0.0.0.0:19901 listens on every");
}

static void resconfig_admin_consent_must_be_a_boolean(void **state)
{
    (void)state;
    assert_int_not_equal(
        load("admin: {address: 0.0.0.0:19901, allow_unauthenticated: yes}\n", "", ""), 0);
    gw_assert_contains(errs, "c.yaml:2:56: allow_unauthenticated must be true or false");
    /* One mistake, one message: the exposure is not reported on top. */
    assert_null(strstr(errs, "listens on every interface"));
}

static void resconfig_admin_consent_misspelt_did_you_mean(void **state)
{
    (void)state;
    assert_int_not_equal(
        load("admin: {address: 0.0.0.0:19901, allow_unauthenticate: true}\n", "", ""), 0);
    gw_assert_contains(errs, "c.yaml:2:33: unknown key 'allow_unauthenticate' (did you mean "
                             "'allow_unauthenticated'?)");
    gw_assert_contains(errs, "c.yaml:2:18: admin.address 0.0.0.0:19901 listens on every");
}

/* Prints the loaded config and loads the output back into AGAIN (fails the test if it
 * does not load). Returns the printed text (caller frees). */
static char *print_and_reload(gw_config_t *again)
{
    char *out = NULL, *e = NULL;
    size_t len = 0, elen = 0;
    FILE *f = open_memstream(&out, &len);
    gw_config_print(f, &cfg, &gw_res_config_ext);
    fclose(f);
    f = open_memstream(&e, &elen);
    int rc = gw_config_load_string("printed.yaml", out, &gw_res_config_ext, again, f);
    fclose(f);
    if (rc != 0)
        fail_msg("printed config did not load:\n%s\n%s", out, e);
    free(e);
    return out;
}

static void resconfig_admin_consent_printed_and_loads_back(void **state)
{
    (void)state;
    assert_int_equal(load("admin: {address: 0.0.0.0:19901, allow_unauthenticated: true}\n", "", ""),
                     0);
    gw_config_t again;
    char *out = print_and_reload(&again);
    gw_assert_contains(out,
                       "admin:\n  address: \"0.0.0.0:19901\"\n  allow_unauthenticated: true\n");
    assert_true(gw_res_root_cfg(&again)->allow_unauthenticated);
    assert_true(
        gw_addr_equal(&gw_res_root_cfg(&again)->admin_addr, &gw_res_root_cfg(&cfg)->admin_addr));
    gw_config_free(&again, &gw_res_config_ext);
    free(out);
}

static void resconfig_admin_default_consent_printed(void **state)
{
    (void)state;
    assert_int_equal(load("admin: {address: 0.0.0.0:19901, token: 0123456789abcdef}\n", "", ""), 0);
    gw_config_t again;
    char *out = print_and_reload(&again);
    gw_assert_contains(out, "  token: \"<set, not shown>\"\n  allow_unauthenticated: false\n");
    assert_null(strstr(out, "0123456789abcdef"));
    assert_false(gw_res_root_cfg(&again)->allow_unauthenticated);
    assert_non_null(gw_res_root_cfg(&again)->admin_token);
    gw_config_free(&again, &gw_res_config_ext);
    free(out);
}

/* An admin block built by hand for gw_res_admin_exposure (which does no I/O). */
static gw_res_root_cfg_t admin_block(const char *address, const char *token, bool allow)
{
    gw_res_root_cfg_t r = {.admin_enabled = true, .allow_unauthenticated = allow};
    r.admin_address_text = (char *)address;
    r.admin_token = (char *)token;
    assert_int_equal(gw_addr_parse(address, false, false, &r.admin_addr, NULL), 0);
    return r;
}

static void admin_exposure_loopback_is_safe(void **state)
{
    (void)state;
    char msg[512] = "x";
    gw_res_root_cfg_t r = admin_block("127.0.0.1:9901", NULL, false);
    assert_int_equal(gw_res_admin_exposure(&r, msg, sizeof msg), GW_RES_ADMIN_SAFE);
    assert_string_equal(msg, "");
    /* A consent that is not needed is harmless and said nothing about. */
    r = admin_block("[::1]:9901", NULL, true);
    assert_int_equal(gw_res_admin_exposure(&r, msg, sizeof msg), GW_RES_ADMIN_SAFE);
    assert_string_equal(msg, "");
}

static void admin_exposure_off_is_safe(void **state)
{
    (void)state;
    char msg[64] = "x";
    gw_res_root_cfg_t r = {.admin_enabled = false, .allow_unauthenticated = true};
    assert_int_equal(gw_res_admin_exposure(&r, msg, sizeof msg), GW_RES_ADMIN_SAFE);
    assert_string_equal(msg, "");
}

static void admin_exposure_token_is_safe_anywhere(void **state)
{
    (void)state;
    char msg[512] = "x";
    gw_res_root_cfg_t r = admin_block("0.0.0.0:9901", "0123456789abcdef", false);
    assert_int_equal(gw_res_admin_exposure(&r, msg, sizeof msg), GW_RES_ADMIN_SAFE);
    assert_string_equal(msg, "");
}

static void admin_exposure_open_without_consent_refused(void **state)
{
    (void)state;
    char msg[512];
    gw_res_root_cfg_t r = admin_block("[::]:9901", NULL, false);
    assert_int_equal(gw_res_admin_exposure(&r, msg, sizeof msg), GW_RES_ADMIN_REFUSED);
    gw_assert_contains(msg, "admin.address [::]:9901 listens on every interface");
    r = admin_block("198.51.100.1:9901", NULL, false);
    assert_int_equal(gw_res_admin_exposure(&r, msg, sizeof msg), GW_RES_ADMIN_REFUSED);
    gw_assert_contains(msg, "admin.address 198.51.100.1:9901 is not a loopback address");
}

static void admin_exposure_open_with_consent_warns(void **state)
{
    (void)state;
    char msg[512];
    gw_res_root_cfg_t r = admin_block("0.0.0.0:9901", NULL, true);
    assert_int_equal(gw_res_admin_exposure(&r, msg, sizeof msg), GW_RES_ADMIN_OPEN);
    assert_string_equal(msg, "admin API on 0.0.0.0:9901 listens on every interface and has no "
                             "token: anyone who can reach it can read /metrics, /stats and "
                             "/backends (admin.allow_unauthenticated: true)");
}

static void admin_exposure_consent_with_token_warns_needless(void **state)
{
    (void)state;
    char msg[512];
    gw_res_root_cfg_t r = admin_block("127.0.0.1:9901", "0123456789abcdef", true);
    assert_int_equal(gw_res_admin_exposure(&r, msg, sizeof msg), GW_RES_ADMIN_NEEDLESS);
    gw_assert_contains(msg, "admin.allow_unauthenticated has no effect: admin.token is set");
}

static void admin_exposure_message_truncates_safely(void **state)
{
    (void)state;
    char msg[8];
    gw_res_root_cfg_t r = admin_block("0.0.0.0:9901", NULL, true);
    assert_int_equal(gw_res_admin_exposure(&r, msg, sizeof msg), GW_RES_ADMIN_OPEN);
    assert_string_equal(msg, "admin A");
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
        cmocka_unit_test_teardown(resconfig_admin_any_address_without_token_refused, teardown),
        cmocka_unit_test_teardown(resconfig_admin_ipv6_any_without_token_refused, teardown),
        cmocka_unit_test_teardown(resconfig_admin_other_host_without_token_refused, teardown),
        cmocka_unit_test_teardown(resconfig_admin_loopback_needs_no_token, teardown),
        cmocka_unit_test_teardown(resconfig_admin_open_with_consent_loads, teardown),
        cmocka_unit_test_teardown(resconfig_admin_open_with_token_loads, teardown),
        cmocka_unit_test_teardown(resconfig_admin_consent_false_is_still_refused, teardown),
        cmocka_unit_test_teardown(resconfig_admin_consent_must_be_a_boolean, teardown),
        cmocka_unit_test_teardown(resconfig_admin_consent_misspelt_did_you_mean, teardown),
        cmocka_unit_test_teardown(resconfig_admin_consent_printed_and_loads_back, teardown),
        cmocka_unit_test_teardown(resconfig_admin_default_consent_printed, teardown),
        cmocka_unit_test(admin_exposure_off_is_safe),
        cmocka_unit_test(admin_exposure_loopback_is_safe),
        cmocka_unit_test(admin_exposure_token_is_safe_anywhere),
        cmocka_unit_test(admin_exposure_open_without_consent_refused),
        cmocka_unit_test(admin_exposure_open_with_consent_warns),
        cmocka_unit_test(admin_exposure_consent_with_token_warns_needless),
        cmocka_unit_test(admin_exposure_message_truncates_safely),
        cmocka_unit_test_teardown(resconfig_gw02_names_milestone_03, teardown),
    };
    return cmocka_run_group_tests_name("resconfig", tests, NULL, NULL);
}
