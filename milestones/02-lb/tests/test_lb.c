/* test_lb.c - milestone 02's glue: configuration keys and errors, the panic threshold, and
 * the upstream table: backend identity carried from table to table, draining, the reaper and
 * the health checkers kept or restarted. */
#include "gwtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "02-lb/lb.h"
#include "log.h"

static gw_config_t cfg;
static char *errs;
static size_t errs_len;

/* The table tests' state: up to 4 configs and tables, 02's layer, a control loop. */
#define NT 4
static gw_config_t cfgs[NT];
static bool cfg_loaded[NT];
static gw_lb_table_t *tables[NT];
static void *layers[GW_LEVELS];
static uv_loop_t loop;
static bool loop_open;

static int teardown(void **state)
{
    (void)state;
    gw_lb_t *lb = layers[2];
    if (loop_open) {
        gw_lb_control_close(lb);
        uv_run(&loop, UV_RUN_DEFAULT); /* the checkers' handles close, their refs go */
        assert_int_equal(uv_loop_close(&loop), 0);
        loop_open = false;
    }
    for (int i = 0; i < NT; i++) {
        gw_lb_table_free(tables[i]);
        tables[i] = NULL;
    }
    gw_lb_release(layers); /* reaps what draining backends are left */
    for (int i = 0; i < NT; i++) {
        if (cfg_loaded[i])
            gw_config_free(&cfgs[i], &gw_lb_config_ext);
        cfg_loaded[i] = false;
    }
    gw_config_free(&cfg, &gw_lb_config_ext);
    free(errs);
    errs = NULL;
    return 0;
}

/* Loads a config whose upstream `app` has the given extra keys (indented 4) and backends. */
static int load(const char *upstream_keys, const char *backends)
{
    char text[4096];
    snprintf(text, sizeof text,
             "workers: 1\n"
             "listeners:\n"
             "  - {name: edge, address: 127.0.0.1:18080, upstream: app}\n"
             "upstreams:\n"
             "  app:\n"
             "%s"
             "    backends:\n"
             "%s",
             upstream_keys, backends);
    free(errs);
    errs = NULL;
    FILE *f = open_memstream(&errs, &errs_len);
    int rc = gw_config_load_string("c.yaml", text, &gw_lb_config_ext, &cfg, f);
    fclose(f);
    return rc;
}

#define ONE_BACKEND "      - address: 127.0.0.1:19001\n"

static void lbconfig_defaults(void **state)
{
    (void)state;
    assert_int_equal(load("", ONE_BACKEND), 0);
    const gw_lb_upstream_cfg_t *x = gw_lb_upstream_cfg(&cfg.upstreams[0]);
    assert_int_equal(x->balancer, GW_BAL_ROUND_ROBIN);
    assert_int_equal(x->max_connect_attempts, 3);
    assert_true(x->panic_threshold == 50);
    assert_int_equal(x->health_check.type, GW_HC_NONE);
    assert_int_equal(x->outlier.consecutive_failures, 5);
    assert_true(x->outlier.uneject_on_active_pass);
    assert_int_equal(x->outlier.consecutive_5xx, 0);
    assert_int_equal(x->outlier.consecutive_gateway_errors, 0);
    assert_int_equal(gw_lb_backend_weight(&cfg.upstreams[0].backends[0]), 1);
}

static void lbconfig_full_upstream(void **state)
{
    (void)state;
    assert_int_equal(
        load("    balancer: consistent_hash\n"
             "    hash: client_ip\n"
             "    panic_threshold: 25\n"
             "    retry: {max_attempts: 2}\n"
             "    health_check: {type: http, interval: 250ms, timeout: 100ms,\n"
             "                   path: /healthz, expect_status: 200-204, rise: 3,\n"
             "                   fall: 4}\n"
             "    outlier: {consecutive_failures: 2, base_ejection: 10s,\n"
             "              max_ejection_percent: 34, uneject_on_active_pass: false}\n",
             "      - {address: 127.0.0.1:19001, weight: 7}\n"),
        0);
    const gw_lb_upstream_cfg_t *x = gw_lb_upstream_cfg(&cfg.upstreams[0]);
    assert_int_equal(x->balancer, GW_BAL_CONSISTENT_HASH);
    assert_true(x->hash_client_ip);
    assert_true(x->panic_threshold == 25);
    assert_int_equal(x->max_connect_attempts, 2);
    assert_int_equal(x->health_check.type, GW_HC_HTTP);
    assert_int_equal(x->health_check.interval_ms, 250);
    assert_int_equal(x->health_check.timeout_ms, 100);
    assert_string_equal(x->health_check.path, "/healthz");
    assert_int_equal(x->health_check.status_lo, 200);
    assert_int_equal(x->health_check.status_hi, 204);
    assert_int_equal(x->health_check.rise, 3);
    assert_int_equal(x->health_check.fall, 4);
    assert_int_equal(x->outlier.consecutive_failures, 2);
    assert_int_equal(x->outlier.base_ejection_ms, 10000);
    assert_int_equal(x->outlier.max_ejection_percent, 34);
    assert_false(x->outlier.uneject_on_active_pass);
    assert_int_equal(gw_lb_backend_weight(&cfg.upstreams[0].backends[0]), 7);
}

static void lbconfig_unknown_balancer_lists_names(void **state)
{
    (void)state;
    assert_int_not_equal(load("    balancer: fastest\n", ONE_BACKEND), 0);
    gw_assert_contains(errs, "c.yaml:6:15:");
    gw_assert_contains(errs, "round_robin");
    gw_assert_contains(errs, "consistent_hash");
}

static void lbconfig_weight_out_of_range(void **state)
{
    (void)state;
    assert_int_not_equal(load("", "      - {address: 127.0.0.1:19001, weight: 0}\n"), 0);
    gw_assert_contains(errs, "c.yaml:7:44:");
    gw_assert_contains(errs, "1..1000");
}

static void lbconfig_hash_without_consistent_hash(void **state)
{
    (void)state;
    assert_int_not_equal(load("    hash: client_ip\n", ONE_BACKEND), 0);
    gw_assert_contains(errs, "c.yaml:6:11: hash applies only to `balancer: consistent_hash`");
}

static void lbconfig_consistent_hash_needs_hash(void **state)
{
    (void)state;
    assert_int_not_equal(load("    balancer: consistent_hash\n", ONE_BACKEND), 0);
    gw_assert_contains(errs, "c.yaml:6:15: consistent_hash needs a key");
}

static void lbconfig_health_check_needs_type(void **state)
{
    (void)state;
    assert_int_not_equal(load("    health_check: {interval: 1s}\n", ONE_BACKEND), 0);
    gw_assert_contains(errs, "c.yaml:6:19: missing required key 'type'");
}

static void lbconfig_path_on_tcp_check(void **state)
{
    (void)state;
    assert_int_not_equal(load("    health_check: {type: tcp, path: /x}\n", ONE_BACKEND), 0);
    gw_assert_contains(errs, "c.yaml:6:37: path applies only to `type: http` checks");
}

static void lbconfig_attempts_out_of_range(void **state)
{
    (void)state;
    assert_int_not_equal(load("    retry: {max_attempts: 11}\n", ONE_BACKEND), 0);
    gw_assert_contains(errs, "c.yaml:6:27: max_attempts: 11 is out of range 1..10");
}

static void lbconfig_unknown_key_in_health_check(void **state)
{
    (void)state;
    assert_int_not_equal(load("    health_check: {type: tcp, intervall: 1s}\n", ONE_BACKEND), 0);
    gw_assert_contains(errs, "c.yaml:6:31: unknown key 'intervall'");
    gw_assert_contains(errs, "did you mean 'interval'");
}

/* Only a binary that reads responses can count 5xx: gw02 refuses the keys and says where. */
static void lbconfig_response_runs_need_gw04(void **state)
{
    (void)state;
    assert_int_not_equal(
        load("    outlier: {consecutive_5xx: 3, consecutive_gateway_errors: 2}\n", ONE_BACKEND), 0);
    gw_assert_contains(errs, "c.yaml:6:15: consecutive_5xx: needs gw04 or later");
    gw_assert_contains(errs, "c.yaml:6:35: consecutive_gateway_errors: needs gw04 or later");
}

static void lbconfig_print_loads_back(void **state)
{
    (void)state;
    assert_int_equal(load("    balancer: weighted_round_robin\n"
                          "    health_check: {type: http, path: /h}\n"
                          "    outlier: {uneject_on_active_pass: false}\n",
                          "      - {address: 127.0.0.1:19001, weight: 3}\n"),
                     0);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    gw_config_print(f, &cfg, &gw_lb_config_ext);
    fclose(f);
    gw_config_t again;
    FILE *e = fopen("/dev/null", "w");
    int rc = gw_config_load_string("printed.yaml", out, &gw_lb_config_ext, &again, e);
    fclose(e);
    if (rc != 0)
        print_error("printed config did not load:\n%s\n", out);
    assert_int_equal(rc, 0);
    const gw_lb_upstream_cfg_t *x = gw_lb_upstream_cfg(&again.upstreams[0]);
    assert_int_equal(x->balancer, GW_BAL_WEIGHTED_ROUND_ROBIN);
    assert_string_equal(x->health_check.path, "/h");
    assert_false(x->outlier.uneject_on_active_pass);
    assert_int_equal(gw_lb_backend_weight(&again.upstreams[0].backends[0]), 3);
    gw_config_free(&again, &gw_lb_config_ext);
    free(out);
}

/* ---- the table ---------------------------------------------------------------------- */

/* 02's layer for config C (prepared once per test). */
static gw_lb_t *lb_for(const gw_config_t *c)
{
    if (layers[2] == NULL)
        assert_int_equal(gw_lb_prepare(c, layers), 0);
    return layers[2];
}

/* Table slot 0, built from C without a previous table. */
static gw_lb_table_t *build_from(const gw_config_t *c)
{
    tables[0] = gw_lb_build(lb_for(c), c, NULL);
    assert_non_null(tables[0]);
    return tables[0];
}

/* The panic threshold: below the share, every backend is offered. */
static void lb_usable_panics_below_threshold(void **state)
{
    (void)state;
    assert_int_equal(load("    panic_threshold: 50\n", "      - address: 127.0.0.1:19001\n"
                                                       "      - address: 127.0.0.1:19002\n"
                                                       "      - address: 127.0.0.1:19003\n"
                                                       "      - address: 127.0.0.1:19004\n"),
                     0);
    gw_lb_table_t *t = build_from(&cfg);
    gw_lb_upstream_t *u = &t->ups[0];
    bool usable[4], panic;
    assert_int_equal(gw_lb_usable(u, 1000, usable, &panic), 4);
    assert_false(panic);
    atomic_store(&u->m[0].b->health, GW_HEALTH_UNHEALTHY);
    atomic_store(&u->m[1].b->ejected_until_ms, 5000);
    assert_int_equal(gw_lb_usable(u, 1000, usable, &panic), 2); /* 2 of 4 = 50%: no panic */
    assert_false(panic);
    assert_false(usable[0] || usable[1]);
    assert_true(usable[2] && usable[3]);
    atomic_store(&u->m[2].b->health, GW_HEALTH_DRAINING);
    assert_int_equal(gw_lb_usable(u, 1000, usable, &panic), 4); /* 1 of 4 < 50%: panic */
    assert_true(panic);
    assert_true(usable[0] && usable[1] && usable[2] && usable[3]);
    assert_int_equal(gw_lb_usable(u, 6000, usable, &panic), 2); /* ejection over */
    assert_false(panic);
}

/* Issue 14: passive checks ejected an upstream's only backend after a few resets. With the
 * default threshold it stays in use (panic): an ejection must not turn into refusals. */
static void lb_usable_sole_backend_ejected_stays_in_use(void **state)
{
    (void)state;
    assert_int_equal(load("    outlier: {consecutive_failures: 2}\n", ONE_BACKEND), 0);
    gw_lb_table_t *t = build_from(&cfg);
    gw_lb_upstream_t *u = &t->ups[0];
    gw_log_setup(GW_LOG_ERROR, GW_LOG_PLAIN); /* the ejection's warning */
    assert_false(gw_outlier_failure(&u->lb->outlier, u->ptrs[0], u->ptrs, 1, 1000));
    assert_true(gw_outlier_failure(&u->lb->outlier, u->ptrs[0], u->ptrs, 1, 1000));
    gw_log_setup(GW_LOG_INFO, GW_LOG_PLAIN);
    assert_false(gw_backend_usable(u->ptrs[0], 1001));
    bool usable[1], panic;
    assert_int_equal(gw_lb_usable(u, 1001, usable, &panic), 1);
    assert_true(panic && usable[0]);
}

static void lb_usable_threshold_zero_never_panics(void **state)
{
    (void)state;
    assert_int_equal(load("    panic_threshold: 0\n", ONE_BACKEND), 0);
    gw_lb_table_t *t = build_from(&cfg);
    bool usable[1], panic;
    atomic_store(&t->ups[0].m[0].b->health, GW_HEALTH_UNHEALTHY);
    assert_int_equal(gw_lb_usable(&t->ups[0], 0, usable, &panic), 0);
    assert_false(panic || usable[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(lbconfig_defaults, teardown),
        cmocka_unit_test_teardown(lbconfig_full_upstream, teardown),
        cmocka_unit_test_teardown(lbconfig_unknown_balancer_lists_names, teardown),
        cmocka_unit_test_teardown(lbconfig_weight_out_of_range, teardown),
        cmocka_unit_test_teardown(lbconfig_hash_without_consistent_hash, teardown),
        cmocka_unit_test_teardown(lbconfig_consistent_hash_needs_hash, teardown),
        cmocka_unit_test_teardown(lbconfig_health_check_needs_type, teardown),
        cmocka_unit_test_teardown(lbconfig_path_on_tcp_check, teardown),
        cmocka_unit_test_teardown(lbconfig_attempts_out_of_range, teardown),
        cmocka_unit_test_teardown(lbconfig_unknown_key_in_health_check, teardown),
        cmocka_unit_test_teardown(lbconfig_print_loads_back, teardown),
        cmocka_unit_test_teardown(lbconfig_response_runs_need_gw04, teardown),
        cmocka_unit_test_teardown(lb_usable_panics_below_threshold, teardown),
        cmocka_unit_test_teardown(lb_usable_sole_backend_ejected_stays_in_use, teardown),
        cmocka_unit_test_teardown(lb_usable_threshold_zero_never_panics, teardown),
    };
    return cmocka_run_group_tests_name("lb", tests, NULL, NULL);
}
