/* test_hidle.c - the worker's idle lists (hproxy.c): keyed by (kind, timeout), not by
 * listener, made on first use and closed by hp_idle_trim once empty and unused by the
 * generation a worker follows. On a real uv loop, with a hand-made worker and generation;
 * no timer fires (the timeouts are far away), so no connection is ever closed here. */
#include "gwtest.h"

#include <stdlib.h>
#include <string.h>

#include "04-http/hproxy-int.h"
#include "04-http/ppconf.h"
#include "04-http/tlsconf.h"

static gw_worker_t w;
static hp_worker_t hw;

static int setup(void **state)
{
    (void)state;
    memset(&w, 0, sizeof w);
    memset(&hw, 0, sizeof hw);
    assert_int_equal(uv_loop_init(&w.loop), 0);
    hw.w = &w;
    return 0;
}

/* Every list closed, their close callbacks run (freeing them), the loop closes clean. */
static int teardown(void **state)
{
    (void)state;
    hp_idle_trim(&hw, NULL);
    assert_int_equal(hw.nidle, 0);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&w.loop), 0);
    free(hw.idle);
    return 0;
}

/* An http listener with request_head_timeout HEAD, keepalive_timeout KEEP, and a TLS
 * handshake_timeout HS (0: no tls), as one generation with one listener. */
typedef struct {
    gw_http_listener_cfg_t hc;
    gw_tls_listener_cfg_t tls;
    gw_listener_cfg_t lc;
    gw_glistener_t gl;
    gw_gen_t g;
} one_gen_t;

static void one_gen(one_gen_t *o, uint64_t head, uint64_t keep, uint64_t hs)
{
    memset(o, 0, sizeof *o);
    o->hc.head_timeout_ms = head;
    o->hc.keepalive_timeout_ms = keep;
    o->tls.handshake_timeout_ms = hs;
    o->hc.tls = hs != 0 ? &o->tls : NULL;
    o->lc.protocol = GW_PROTO_HTTP;
    o->lc.ext[4] = &o->hc;
    o->gl.cfg = &o->lc;
    o->g.lis = &o->gl;
    o->g.nlis = 1;
}

static bool has(idle_kind_t kind, uint64_t timeout)
{
    for (size_t i = 0; i < hw.nidle; i++)
        if (hw.idle[i]->kind == kind && hw.idle[i]->timeout_ms == timeout)
            return true;
    return false;
}

/* One list per (kind, timeout), found again by the same key, whichever listener asks. */
static void idle_lists_keyed_by_kind_and_timeout(void **state)
{
    (void)state;
    idle_list_t *a = hp_idle_list_for(&hw, IDLE_FRESH, 1000);
    assert_non_null(a);
    assert_ptr_equal(hp_idle_list_for(&hw, IDLE_FRESH, 1000), a);
    idle_list_t *b = hp_idle_list_for(&hw, IDLE_FRESH, 2000);
    idle_list_t *k = hp_idle_list_for(&hw, IDLE_KEEPALIVE, 1000);
    assert_non_null(b);
    assert_non_null(k);
    assert_ptr_not_equal(a, b);
    assert_ptr_not_equal(a, k);
    assert_int_equal(k->kind, IDLE_KEEPALIVE);
    assert_int_equal(b->timeout_ms, 2000);
    assert_int_equal(hw.nidle, 3);
    /* More lists than the first vector holds: found again after it grew. */
    for (uint64_t t = 1; t <= 20; t++)
        assert_non_null(hp_idle_list_for(&hw, IDLE_PROXY_HEADER, t));
    assert_int_equal(hw.nidle, 23);
    assert_ptr_equal(hp_idle_list_for(&hw, IDLE_FRESH, 2000), b);
}

/* A reload changed the timeouts: the lists of the old ones go once empty, the one a
 * connection still waits in stays until it is empty, and the lists the new generation's
 * listener uses stay even while empty (they will be used again at once). */
static void idle_trim_closes_empty_unused_lists(void **state)
{
    (void)state;
    one_gen_t o;
    one_gen(&o, 1000, 5000, 3000);
    idle_list_t *old_fresh = hp_idle_list_for(&hw, IDLE_FRESH, 60000);
    assert_non_null(hp_idle_list_for(&hw, IDLE_KEEPALIVE, 70000));
    assert_non_null(hp_idle_list_for(&hw, IDLE_FRESH, 1000));
    assert_non_null(hp_idle_list_for(&hw, IDLE_KEEPALIVE, 5000));
    assert_non_null(hp_idle_list_for(&hw, IDLE_HANDSHAKE, 3000));
    assert_non_null(hp_idle_list_for(&hw, IDLE_PROXY_HEADER, 3000)); /* no proxy_protocol */
    hconn_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->hw = &hw;
    hp_list_idle(c, old_fresh); /* a connection of the old generation still waits */
    assert_ptr_equal(old_fresh->head, c);

    hp_idle_trim(&hw, &o.g);
    assert_int_equal(hw.nidle, 4);
    assert_true(has(IDLE_FRESH, 60000)); /* not empty */
    assert_false(has(IDLE_KEEPALIVE, 70000));
    assert_false(has(IDLE_PROXY_HEADER, 3000));
    assert_true(has(IDLE_FRESH, 1000) && has(IDLE_KEEPALIVE, 5000) && has(IDLE_HANDSHAKE, 3000));
    uv_run(&w.loop, UV_RUN_NOWAIT); /* the closed lists' callbacks free them */

    hp_list_unlink(c); /* it left (closed, or took a request) */
    hp_idle_trim(&hw, &o.g);
    assert_int_equal(hw.nidle, 3);
    assert_false(has(IDLE_FRESH, 60000));
    free(c);

    /* The next reload drops tls: its handshake list goes too. */
    one_gen(&o, 1000, 5000, 0);
    hp_idle_trim(&hw, &o.g);
    assert_int_equal(hw.nidle, 2);
    assert_false(has(IDLE_HANDSHAKE, 3000));
}

/* The timeout a connection waits with comes from its listener's config, by kind. */
static void idle_timeout_by_kind(void **state)
{
    (void)state;
    one_gen_t o;
    one_gen(&o, 1000, 5000, 3000);
    gw_pp_listener_cfg_t pp;
    memset(&pp, 0, sizeof pp);
    pp.timeout_ms = 4000;
    o.hc.pp = &pp;
    assert_int_equal(hp_idle_timeout(&o.hc, IDLE_FRESH), 1000);
    assert_int_equal(hp_idle_timeout(&o.hc, IDLE_KEEPALIVE), 5000);
    assert_int_equal(hp_idle_timeout(&o.hc, IDLE_HANDSHAKE), 3000);
    assert_int_equal(hp_idle_timeout(&o.hc, IDLE_PROXY_HEADER), 4000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(idle_lists_keyed_by_kind_and_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(idle_trim_closes_empty_unused_lists, setup, teardown),
        cmocka_unit_test_setup_teardown(idle_timeout_by_kind, setup, teardown),
    };
    return cmocka_run_group_tests_name("hidle", tests, NULL, NULL);
}
