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

/* Loads config I: one listener on upstream `app`, and UPSTREAMS (the `upstreams:` block's
 * body, indented 2). */
static gw_config_t *load_cfg(int i, const char *upstreams)
{
    char text[4096];
    snprintf(text, sizeof text,
             "workers: 2\n"
             "listeners:\n"
             "  - {name: edge, address: 127.0.0.1:18080, upstream: app}\n"
             "upstreams:\n"
             "%s",
             upstreams);
    FILE *e = fopen("/dev/null", "w");
    int rc = gw_config_load_string("t.yaml", text, &gw_lb_config_ext, &cfgs[i], e);
    fclose(e);
    assert_int_equal(rc, 0);
    cfg_loaded[i] = true;
    return &cfgs[i];
}

/* Table I from config I (loaded from UPSTREAMS), carried from table PREV (-1: none). */
static gw_lb_table_t *table(int i, const char *upstreams, int prev)
{
    gw_config_t *c = load_cfg(i, upstreams);
    tables[i] = gw_lb_build(lb_for(c), c, prev >= 0 ? tables[prev] : NULL);
    assert_non_null(tables[i]);
    return tables[i];
}

static void open_control(void)
{
    assert_int_equal(uv_loop_init(&loop), 0);
    loop_open = true;
    assert_int_equal(gw_lb_control_open(layers[2], &loop), 0);
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

/* ---- backend identity across tables ---------------------------------------------------- */

#define APP_2 "  app:\n    backends: [{address: 127.0.0.1:19001}, {address: 127.0.0.1:19002}]\n"

/* Without a previous table every backend is a new object, held once (by the table), keyed
 * by its upstream and address; members say where it sits in this table. */
static void lb_build_without_prev_makes_fresh_backends(void **state)
{
    (void)state;
    gw_lb_table_t *t1 = table(0, APP_2, -1), *t2 = table(1, APP_2, -1);
    const gw_lb_upstream_t *u1 = &t1->ups[0], *u2 = &t2->ups[0];
    assert_int_equal(u1->n, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_ptr_not_equal(u1->m[i].b, u2->m[i].b);
        assert_int_equal(atomic_load(&u1->m[i].b->refs), 1);
        assert_string_equal(u1->m[i].b->upstream_name, "app");
        assert_ptr_equal(u1->m[i].up, u1);
        assert_int_equal(u1->m[i].pos, i);
        assert_ptr_equal(u1->ptrs[i], u1->m[i].b);
        assert_ptr_equal(u1->m[i].cfg, &cfgs[0].upstreams[0].backends[i]);
    }
    assert_string_equal(u1->m[1].b->name, "127.0.0.1:19002");
    assert_non_null(t1->bal[0]);
    assert_non_null(t1->bal[1]); /* workers: 2, both built before any pick */
}

/* Health and ejection set on table 1's object are what table 2 sees: the same object,
 * found by key even after a reorder; the new address gets a fresh one. */
static void lb_carry_keeps_state_by_key(void **state)
{
    (void)state;
    gw_lb_table_t *t1 = table(0, APP_2, -1);
    gw_backend_t *b2 = t1->ups[0].m[1].b;
    atomic_store(&b2->health, GW_HEALTH_UNHEALTHY);
    atomic_store(&b2->ejected_until_ms, 12345);
    atomic_store(&b2->ejections, 2);
    gw_lb_table_t *t2 = table(1,
                              "  app:\n    backends: [{address: 127.0.0.1:19002},"
                              " {address: 127.0.0.1:19003}]\n",
                              0);
    const gw_lb_upstream_t *u = &t2->ups[0];
    assert_ptr_equal(u->m[0].b, b2);
    assert_int_equal(atomic_load(&u->m[0].b->health), GW_HEALTH_UNHEALTHY);
    assert_int_equal(atomic_load(&u->m[0].b->ejected_until_ms), 12345);
    assert_int_equal(atomic_load(&u->m[0].b->ejections), 2);
    assert_int_equal(atomic_load(&b2->refs), 2); /* both tables list it */
    assert_ptr_not_equal(u->m[1].b, t1->ups[0].m[0].b);
    assert_int_equal(atomic_load(&u->m[1].b->health), GW_HEALTH_HEALTHY);
    assert_int_equal(atomic_load(&u->m[1].b->refs), 1);
}

/* health_check.initial: unhealthy: a backend new to the configuration starts unhealthy (it
 * serves once `rise` checks passed); one a reload keeps keeps its health, healthy included. */
static void lb_initial_unhealthy_applies_to_new_backends_only(void **state)
{
    (void)state;
    const char *check = "    health_check: {type: tcp, initial: unhealthy}\n";
    char a[512], b[512];
    snprintf(a, sizeof a, "  app:\n%s    backends: [{address: 127.0.0.1:19001}]\n", check);
    gw_lb_table_t *t1 = table(0, a, -1);
    gw_backend_t *b1 = t1->ups[0].m[0].b;
    assert_int_equal(atomic_load(&b1->health), GW_HEALTH_UNHEALTHY); /* new at start */
    atomic_store(&b1->health, GW_HEALTH_HEALTHY);                    /* its checks passed */
    snprintf(b, sizeof b,
             "  app:\n%s    backends: [{address: 127.0.0.1:19001}, {address: 127.0.0.1:19002}]\n",
             check);
    gw_lb_table_t *t2 = table(1, b, 0);
    assert_ptr_equal(t2->ups[0].m[0].b, b1);
    assert_int_equal(atomic_load(&b1->health), GW_HEALTH_HEALTHY);                  /* kept */
    assert_int_equal(atomic_load(&t2->ups[0].m[1].b->health), GW_HEALTH_UNHEALTHY); /* added */
}

static void lb_weight_change_keeps_identity(void **state)
{
    (void)state;
    gw_lb_table_t *t1 = table(0,
                              "  app:\n    balancer: weighted_round_robin\n"
                              "    backends: [{address: 127.0.0.1:19001, weight: 1}]\n",
                              -1);
    gw_lb_table_t *t2 = table(1,
                              "  app:\n    balancer: weighted_round_robin\n"
                              "    backends: [{address: 127.0.0.1:19001, weight: 5}]\n",
                              0);
    assert_ptr_equal(t2->ups[0].m[0].b, t1->ups[0].m[0].b);
    assert_int_equal(t1->ups[0].m[0].weight, 1); /* the weight is each table's own */
    assert_int_equal(t2->ups[0].m[0].weight, 5);
}

/* The key is (upstream, address): the same address in another upstream is another backend,
 * and a renamed upstream starts afresh. */
static void lb_same_address_in_other_upstream_is_not_carried(void **state)
{
    (void)state;
    gw_lb_table_t *t1 = table(0, "  app:\n    backends: [{address: 127.0.0.1:19001}]\n", -1);
    gw_lb_table_t *t2 = table(1,
                              "  other:\n    backends: [{address: 127.0.0.1:19001}]\n"
                              "  app:\n    backends: [{address: 127.0.0.1:19001}]\n",
                              0);
    gw_backend_t *b = t1->ups[0].m[0].b;
    assert_string_equal(t2->ups[0].cfg->name, "other");
    assert_ptr_not_equal(t2->ups[0].m[0].b, b);
    assert_string_equal(t2->ups[0].m[0].b->upstream_name, "other");
    assert_ptr_equal(t2->ups[1].m[0].b, b);
}

/* One object, two positions: its member in each table says where it is in that table (and
 * its upstream's position moved too). */
static void lb_positions_are_per_table(void **state)
{
    (void)state;
    gw_lb_table_t *t1 = table(0, APP_2, -1);
    gw_lb_table_t *t2 = table(1,
                              "  first:\n    backends: [{address: 127.0.0.1:19009}]\n"
                              "  app:\n    backends: [{address: 127.0.0.1:19002}]\n",
                              0);
    const gw_lb_member_t *m1 = &t1->ups[0].m[1], *m2 = &t2->ups[1].m[0];
    assert_ptr_equal(m1->b, m2->b);
    assert_int_equal(m1->pos, 1);
    assert_int_equal(m2->pos, 0);
    assert_int_equal(m1->up->pos, 0);
    assert_int_equal(m2->up->pos, 1);
    assert_ptr_equal(m2->up, &t2->ups[1]);
}

/* A carry hook replaces the rule: this one never carries (every table starts afresh). */
static int carry_nothing(const gw_lb_upstream_t *old, const gw_upstream_cfg_t *neu,
                         gw_backend_t **keep)
{
    (void)old;
    for (size_t i = 0; i < neu->nbackends; i++)
        keep[i] = NULL;
    return 0;
}

/* ... and this one keeps the first old backend for every entry: not its identity. */
static int carry_wrong(const gw_lb_upstream_t *old, const gw_upstream_cfg_t *neu,
                       gw_backend_t **keep)
{
    for (size_t i = 0; i < neu->nbackends; i++)
        keep[i] = old->m[0].b;
    return 0;
}

static void lb_carry_hook_replaces_the_rule_and_is_checked(void **state)
{
    (void)state;
    gw_lb_table_t *t1 = table(0, APP_2, -1);
    gw_backend_t *b1 = t1->ups[0].m[0].b;
    gw_lb_set_carry(layers[2], carry_nothing);
    gw_lb_table_t *t2 = table(1, APP_2, 0);
    assert_ptr_not_equal(t2->ups[0].m[0].b, b1);
    gw_lb_set_carry(layers[2], carry_wrong);
    gw_config_t *c = load_cfg(2, APP_2);
    gw_log_setup(GW_LOG_OFF, GW_LOG_PLAIN); /* the refusal's error line */
    assert_null(gw_lb_build(layers[2], c, t1));
    gw_log_setup(GW_LOG_INFO, GW_LOG_PLAIN);
    assert_int_equal(atomic_load(&b1->refs), 1); /* nothing kept, nothing leaked */
    gw_lb_set_carry(layers[2], NULL);            /* back to the rule: by key */
    tables[2] = gw_lb_build(layers[2], c, t1);
    assert_non_null(tables[2]);
    assert_ptr_equal(tables[2]->ups[0].m[0].b, b1);
}

#define APP_4                                                                                      \
    "  app:\n    panic_threshold: 50\n"                                                            \
    "    backends: [{address: 127.0.0.1:19001}, {address: 127.0.0.1:19002},\n"                     \
    "               {address: 127.0.0.1:19003}, {address: 127.0.0.1:19004}]\n"
#define APP_3                                                                                      \
    "  app:\n    panic_threshold: 50\n"                                                            \
    "    backends: [{address: 127.0.0.1:19001}, {address: 127.0.0.1:19002},\n"                     \
    "               {address: 127.0.0.1:19003}]\n"

/* 19004 leaves: DRAINING and listed; an exchange still on table 1 does not get it, unless
 * the upstream is in panic (then, as an ejected one would be, it is offered). */
static void lb_removed_backend_is_draining_and_excluded_unless_panic(void **state)
{
    (void)state;
    gw_lb_table_t *t1 = table(0, APP_4, -1);
    gw_lb_table_t *t2 = table(1, APP_3, 0);
    open_control();
    gw_log_setup(GW_LOG_WARN, GW_LOG_PLAIN); /* the draining line */
    assert_int_equal(gw_lb_applied(layers[2], t2, t1), 0);
    gw_log_setup(GW_LOG_INFO, GW_LOG_PLAIN);
    gw_backend_t *gone = t1->ups[0].m[3].b;
    assert_int_equal(atomic_load(&gone->health), GW_HEALTH_DRAINING);
    assert_ptr_equal(gw_lb_draining_first(layers[2]), gone);
    assert_null(gw_lb_draining_next(gone));
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&t2->ups[0].m[i].b->health), GW_HEALTH_HEALTHY);
    bool usable[4], panic;
    assert_int_equal(gw_lb_usable(&t1->ups[0], 1000, usable, &panic), 3);
    assert_false(panic || usable[3]);
    atomic_store(&t1->ups[0].m[0].b->health, GW_HEALTH_UNHEALTHY);
    atomic_store(&t1->ups[0].m[1].b->health, GW_HEALTH_UNHEALTHY);
    assert_int_equal(gw_lb_usable(&t1->ups[0], 1000, usable, &panic), 4); /* 1 of 4 */
    assert_true(panic && usable[3]);
}

/* The reaper frees a draining backend only once its last holder let go: not while table 1
 * lists it, not while a connection (here: an extra hold) has it, then at once. */
static void lb_reaper_frees_only_at_zero_refs(void **state)
{
    (void)state;
    gw_lb_table_t *t1 = table(0, APP_4, -1);
    gw_lb_table_t *t2 = table(1, APP_3, 0);
    open_control();
    gw_log_setup(GW_LOG_WARN, GW_LOG_PLAIN);
    assert_int_equal(gw_lb_applied(layers[2], t2, t1), 0);
    gw_log_setup(GW_LOG_INFO, GW_LOG_PLAIN);
    gw_backend_t *gone = t1->ups[0].m[3].b;
    gw_backend_hold(gone); /* a connection still on it */
    assert_int_equal(gw_lb_reap(layers[2]), 1);
    gw_lb_table_free(t1);
    tables[0] = NULL;
    assert_int_equal(atomic_load(&gone->refs), 1);
    assert_int_equal(gw_lb_reap(layers[2]), 1);
    assert_int_equal(atomic_load(&gone->health), GW_HEALTH_DRAINING); /* still there */
    assert_true(gw_backend_drop(gone));                               /* the last holder */
    assert_int_equal(gw_lb_reap(layers[2]), 0);
    assert_null(gw_lb_draining_first(layers[2]));
}

#define APP_HC_2                                                                                   \
    "  app:\n    health_check: {type: tcp, interval: 1h}\n"                                        \
    "    backends: [{address: 127.0.0.1:19001}, {address: 127.0.0.1:19002}]\n"

/* The loop never runs between the steps, so no probe fires: the checkers are compared as
 * objects (a stopped one is freed only when its handles closed, so no address is reused). */
static void lb_checker_kept_when_unchanged(void **state)
{
    (void)state;
    gw_lb_table_t *t1 = table(0, APP_HC_2, -1);
    open_control();
    assert_int_equal(gw_lb_applied(layers[2], t1, NULL), 0);
    const gw_hc_t *hc = gw_lb_checker(layers[2], "app");
    assert_non_null(hc);
    gw_lb_table_t *t2 = table(1, APP_HC_2, 0);
    assert_int_equal(gw_lb_applied(layers[2], t2, t1), 0);
    assert_ptr_equal(gw_lb_checker(layers[2], "app"), hc);
    /* a weight change keeps the objects and the check: kept too */
    gw_lb_table_t *t3 = table(2,
                              "  app:\n    health_check: {type: tcp, interval: 1h}\n"
                              "    backends: [{address: 127.0.0.1:19001, weight: 3},"
                              " {address: 127.0.0.1:19002}]\n",
                              1);
    assert_int_equal(gw_lb_applied(layers[2], t3, t2), 0);
    assert_ptr_equal(gw_lb_checker(layers[2], "app"), hc);
    assert_int_equal(atomic_load(&t3->ups[0].m[0].b->refs), 4); /* 3 tables, 1 checker */
}

static void lb_checker_restarted_when_the_set_or_check_changes(void **state)
{
    (void)state;
    gw_lb_table_t *t1 = table(0, APP_HC_2, -1);
    open_control();
    assert_int_equal(gw_lb_applied(layers[2], t1, NULL), 0);
    const gw_hc_t *hc1 = gw_lb_checker(layers[2], "app");
    atomic_store(&t1->ups[0].m[1].b->health, GW_HEALTH_UNHEALTHY);
    gw_lb_table_t *t2 = table(1,
                              "  app:\n    health_check: {type: tcp, interval: 1h}\n"
                              "    backends: [{address: 127.0.0.1:19002},"
                              " {address: 127.0.0.1:19001}]\n",
                              0); /* same objects, another order */
    gw_log_setup(GW_LOG_WARN, GW_LOG_PLAIN);
    assert_int_equal(gw_lb_applied(layers[2], t2, t1), 0);
    const gw_hc_t *hc2 = gw_lb_checker(layers[2], "app");
    assert_non_null(hc2);
    assert_ptr_not_equal(hc2, hc1);
    /* unhealthy stays unhealthy: the restart changes no verdict */
    assert_int_equal(atomic_load(&t2->ups[0].m[0].b->health), GW_HEALTH_UNHEALTHY);
    /* the same set, but the checks now open with a PROXY header */
    gw_config_t *c = load_cfg(2, "  app:\n    health_check: {type: tcp, interval: 1h}\n"
                                 "    backends: [{address: 127.0.0.1:19002},"
                                 " {address: 127.0.0.1:19001}]\n");
    gw_lb_upstream_check_proxy(&c->upstreams[0], 2);
    tables[2] = gw_lb_build(layers[2], c, t2);
    assert_non_null(tables[2]);
    assert_int_equal(gw_lb_applied(layers[2], tables[2], t2), 0);
    const gw_hc_t *hc3 = gw_lb_checker(layers[2], "app");
    assert_non_null(hc3);
    assert_ptr_not_equal(hc3, hc2);
    /* checks off: no checker */
    table(3, "  app:\n    backends: [{address: 127.0.0.1:19002}, {address: 127.0.0.1:19001}]\n", 2);
    assert_int_equal(gw_lb_applied(layers[2], tables[3], tables[2]), 0);
    gw_log_setup(GW_LOG_INFO, GW_LOG_PLAIN);
    assert_null(gw_lb_checker(layers[2], "app"));
}

/* Level 3's block lives in the backend: made once with it, carried with it, finished once. */
static int ext_inits, ext_finis;

static void ext_init(void *ctx, gw_backend_t *b, void *ext)
{
    assert_ptr_equal(ctx, &ext_inits);
    assert_ptr_equal(b->ext[3], ext);
    *(unsigned *)ext = 77;
    ext_inits++;
}

static void ext_fini(void *ctx, gw_backend_t *b, void *ext)
{
    (void)ctx;
    (void)b;
    assert_int_equal(*(unsigned *)ext, 77);
    ext_finis++;
}

static void lb_backend_ext_follows_the_backend(void **state)
{
    (void)state;
    ext_inits = ext_finis = 0;
    gw_config_t *c = load_cfg(0, APP_2);
    gw_lb_backend_ext(lb_for(c), 3, 40, ext_init, ext_fini, &ext_inits);
    tables[0] = gw_lb_build(layers[2], c, NULL);
    assert_non_null(tables[0]);
    assert_int_equal(ext_inits, 2);
    void *e = tables[0]->ups[0].m[1].b->ext[3];
    assert_non_null(e);
    assert_int_equal((uintptr_t)e % _Alignof(max_align_t), 0);
    assert_null(tables[0]->ups[0].m[1].b->ext[4]);
    table(1, APP_2, 0);
    assert_int_equal(ext_inits, 2); /* carried: not made again */
    assert_ptr_equal(tables[1]->ups[0].m[1].b->ext[3], e);
    gw_lb_table_free(tables[0]);
    tables[0] = NULL;
    assert_int_equal(ext_finis, 0);
    gw_lb_table_free(tables[1]);
    tables[1] = NULL;
    assert_int_equal(ext_finis, 2);
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
        cmocka_unit_test_teardown(lb_build_without_prev_makes_fresh_backends, teardown),
        cmocka_unit_test_teardown(lb_carry_keeps_state_by_key, teardown),
        cmocka_unit_test_teardown(lb_initial_unhealthy_applies_to_new_backends_only, teardown),
        cmocka_unit_test_teardown(lb_weight_change_keeps_identity, teardown),
        cmocka_unit_test_teardown(lb_same_address_in_other_upstream_is_not_carried, teardown),
        cmocka_unit_test_teardown(lb_positions_are_per_table, teardown),
        cmocka_unit_test_teardown(lb_carry_hook_replaces_the_rule_and_is_checked, teardown),
        cmocka_unit_test_teardown(lb_removed_backend_is_draining_and_excluded_unless_panic,
                                  teardown),
        cmocka_unit_test_teardown(lb_reaper_frees_only_at_zero_refs, teardown),
        cmocka_unit_test_teardown(lb_checker_kept_when_unchanged, teardown),
        cmocka_unit_test_teardown(lb_checker_restarted_when_the_set_or_check_changes, teardown),
        cmocka_unit_test_teardown(lb_backend_ext_follows_the_backend, teardown),
    };
    return cmocka_run_group_tests_name("lb", tests, NULL, NULL);
}
