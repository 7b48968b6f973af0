/* test_res.c - milestone 03 on 02's tables: a backend's circuit breaker lives in the backend
 * (its level-3 extension block), so it follows the backend into a table built from another
 * config, and a fresh backend starts with a fresh breaker. Driven through 02's picker (pick,
 * report) on a fake worker: no sockets, no loop. */
#include "gwtest.h"

#include <stdio.h>
#include <string.h>

#include "02-lb/lb.h"
#include "03-resilience/res.h"
#include "03-resilience/resconfig.h"
#include "log.h"

static gw_config_t cfgs[2];
static bool loaded[2];
static void *layers[GW_LEVELS];
static gw_runtime_t rt;
static gw_worker_t w;

/* Round robin over 19001 and 19002; two failed connects open a backend's breaker for an
 * hour; no outlier ejection and no panic, so only the breaker keeps a backend out. */
static gw_config_t *load(int i, const char *weight_of_first)
{
    char text[2048];
    snprintf(text, sizeof text,
             "workers: 1\n"
             "listeners:\n"
             "  - {name: edge, address: 127.0.0.1:18080, upstream: app}\n"
             "upstreams:\n"
             "  app:\n"
             "    panic_threshold: 0\n"
             "    outlier: {consecutive_failures: 0}\n"
             "    circuit_breaker: {consecutive_failures: 2, open_timeout: 1h}\n"
             "    backends:\n"
             "      - {address: 127.0.0.1:19001, weight: %s}\n"
             "      - {address: 127.0.0.1:19002}\n",
             weight_of_first);
    FILE *e = fopen("/dev/null", "w");
    int rc = gw_config_load_string("r.yaml", text, &gw_res_config_ext, &cfgs[i], e);
    fclose(e);
    assert_int_equal(rc, 0);
    loaded[i] = true;
    return &cfgs[i];
}

static int setup(void **state)
{
    (void)state;
    gw_log_setup(GW_LOG_OFF, GW_LOG_PLAIN); /* the breaker's OPEN line */
    assert_int_equal(gw_res_prepare(load(0, "1"), layers), 0);
    memset(&rt, 0, sizeof rt);
    assert_int_equal(gw_snapdom_init(&rt.snap, 1), 0);
    gw_snap_quiescent(&rt.snap, 0); /* the worker is online */
    w = (gw_worker_t){.rt = &rt, .id = 0};
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    gw_snap_offline(&rt.snap, 0);
    gw_snapdom_destroy(&rt.snap); /* frees the tables, then their backends */
    gw_res_release(layers);
    for (int i = 0; i < 2; i++)
        if (loaded[i])
            gw_config_free(&cfgs[i], &gw_res_config_ext);
    loaded[0] = loaded[1] = false;
    gw_log_setup(GW_LOG_INFO, GW_LOG_PLAIN);
    return 0;
}

/* The table is what a generation holds in its level-2 slot; the pick reads it there. */
static void free_gen(void *data)
{
    gw_gen_t *g = data;
    gw_lb_table_free(g->layers[2]);
    gw_gen_free(g);
}

static uint64_t gen_ids;

static void publish(const gw_config_t *c, const gw_lb_table_t *prev)
{
    gw_lb_table_t *t = gw_lb_build(layers[2], c, prev);
    assert_non_null(t);
    gw_gen_t *g = gw_gen_new(++gen_ids, c, NULL);
    assert_non_null(g);
    g->layers[2] = t;
    assert_int_equal(gw_snap_publish(&rt.snap, g, free_gen), 0);
}

static const gw_lb_table_t *current_table(void)
{
    return gw_lb_gen_table(gw_snap_current(&rt.snap));
}

/* One connection: pick, then the connect's result (STATUS: 0 or a UV error), then the close.
 * Returns the port picked (0: none). */
static unsigned connection(int status)
{
    const gw_tcp_picker_t *p = layers[1];
    gw_tcp_pick_t tok;
    memset(&tok, 0, sizeof tok);
    const gw_addr_t *a = gw_lb_pick_upstream(layers[2], &w, NULL, 0, NULL, 0, &tok);
    unsigned port = a != NULL ? gw_addr_port(a) : 0;
    if (a != NULL)
        p->report(p->ctx, &w, &tok, status);
    p->report(p->ctx, &w, &tok, GW_TCP_CLOSED);
    return port;
}

/* Fails connects to 19001 until its breaker opens: every next pick goes to 19002. */
static void open_breaker_of_19001(void)
{
    for (int fails = 0, k = 0; fails < 2 && k < 10; k++) {
        const gw_tcp_picker_t *p = layers[1];
        gw_tcp_pick_t tok;
        memset(&tok, 0, sizeof tok);
        const gw_addr_t *a = gw_lb_pick_upstream(layers[2], &w, NULL, 0, NULL, 0, &tok);
        assert_non_null(a);
        bool first = gw_addr_port(a) == 19001;
        fails += first;
        p->report(p->ctx, &w, &tok, first ? UV_ECONNREFUSED : 0);
        p->report(p->ctx, &w, &tok, GW_TCP_CLOSED);
    }
    for (int k = 0; k < 6; k++)
        assert_int_equal(connection(0), 19002);
}

static void breaker_state_survives_table_carry(void **state)
{
    (void)state;
    publish(&cfgs[0], NULL);
    open_breaker_of_19001();
    const gw_lb_table_t *t1 = current_table();
    publish(load(1, "3"), t1); /* a weight change: the same backend object */
    gw_snap_quiescent(&rt.snap, 0);
    for (int k = 0; k < 6; k++)
        assert_int_equal(connection(0), 19002); /* still open: its breaker came along */
}

static int carry_nothing(const gw_lb_upstream_t *old, const gw_upstream_cfg_t *neu,
                         gw_backend_t **keep)
{
    (void)old;
    for (size_t i = 0; i < neu->nbackends; i++)
        keep[i] = NULL;
    return 0;
}

/* The other side: a fresh backend object (no carry) has a fresh, closed breaker. */
static void fresh_backend_has_a_closed_breaker(void **state)
{
    (void)state;
    publish(&cfgs[0], NULL);
    open_breaker_of_19001();
    gw_lb_set_carry(layers[2], carry_nothing);
    publish(load(1, "1"), current_table());
    gw_snap_quiescent(&rt.snap, 0);
    unsigned to_first = 0;
    for (int k = 0; k < 6; k++)
        to_first += connection(0) == 19001;
    assert_int_equal(to_first, 3); /* round robin again over both */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(breaker_state_survives_table_carry, setup, teardown),
        cmocka_unit_test_setup_teardown(fresh_backend_has_a_closed_breaker, setup, teardown),
    };
    return cmocka_run_group_tests_name("res", tests, NULL, NULL);
}
