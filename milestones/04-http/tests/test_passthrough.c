/* test_passthrough.c - TLS passthrough's decisions without sockets: which route a name takes
 * (exact over wildcard, the longest wildcard suffix, one or more labels), and what each
 * answer of the ClientHello reader leads to, with and without a default; and that the picker
 * is in place even when the startup config has no passthrough listener (a reload may add
 * one). */
#include "gwtest.h"

#include <string.h>

#include "04-http/passthrough.h"

static gw_passthrough_route_t routes[] = {
    {.sni = "*.example.com", .upstream_index = 10},
    {.sni = "api.example.com", .upstream_index = 11},
    {.sni = "*.eu.example.com", .upstream_index = 12},
    {.sni = "example.org", .upstream_index = 13},
};

static gw_passthrough_cfg_t pc = {.routes = routes, .nroutes = 4, .timeout_ms = 5000};

static long match(const char *name)
{
    return gw_passthrough_match(&pc, name, strlen(name));
}

static void passthrough_match_rules(void **state)
{
    (void)state;
    assert_int_equal(match("api.example.com"), 1); /* exact beats the earlier wildcard */
    assert_int_equal(match("www.example.com"), 0);
    assert_int_equal(match("a.b.example.com"), 0);  /* one or more labels */
    assert_int_equal(match("x.eu.example.com"), 2); /* the longer suffix */
    assert_int_equal(match("eu.example.com"), 0);
    assert_int_equal(match("example.com"), -1); /* *.example.com is not example.com */
    assert_int_equal(match("example.org"), 3);
    assert_int_equal(match("www.example.org"), -1); /* an exact name is only itself */
    assert_int_equal(match("xexample.com"), -1);    /* the suffix starts at a dot */
    assert_int_equal(match(""), -1);
}

static gw_sni_t named(const char *name)
{
    gw_sni_t s = {.len = strlen(name)};
    strcpy(s.name, name);
    return s;
}

static void passthrough_decide_outcomes(void **state)
{
    (void)state;
    long up;
    gw_sni_t s = named("api.example.com");
    gw_passthrough_cfg_t with = pc;
    with.default_upstream = "d";
    with.default_index = 7;
    /* a known name goes to its route's upstream, never to the default */
    assert_int_equal(gw_passthrough_decide(&with, GW_SNI_FOUND, &s, GW_TCP_PREREAD_DATA, &up),
                     GW_PT_ROUTED);
    assert_int_equal(up, 11);
    s = named("other.net");
    assert_int_equal(gw_passthrough_decide(&with, GW_SNI_FOUND, &s, GW_TCP_PREREAD_DATA, &up),
                     GW_PT_DEFAULT);
    assert_int_equal(up, 7);
    assert_int_equal(gw_passthrough_decide(&pc, GW_SNI_FOUND, &s, GW_TCP_PREREAD_DATA, &up),
                     GW_PT_NO_ROUTE);
    assert_int_equal(up, -1);
    assert_int_equal(gw_passthrough_decide(&with, GW_SNI_NONE, &s, GW_TCP_PREREAD_DATA, &up),
                     GW_PT_NO_SNI);
    assert_int_equal(up, 7);
    assert_int_equal(gw_passthrough_decide(&pc, GW_SNI_NONE, &s, GW_TCP_PREREAD_DATA, &up),
                     GW_PT_NO_SNI);
    assert_int_equal(up, -1);
    /* reading on, and the ends of an incomplete hello */
    assert_int_equal(gw_passthrough_decide(&with, GW_SNI_NEED_MORE, &s, GW_TCP_PREREAD_DATA, &up),
                     GW_PT_NRESULTS);
    assert_int_equal(
        gw_passthrough_decide(&with, GW_SNI_NEED_MORE, &s, GW_TCP_PREREAD_TIMEOUT, &up),
        GW_PT_TIMEOUT);
    assert_int_equal(up, -1);
    assert_int_equal(gw_passthrough_decide(&with, GW_SNI_NEED_MORE, &s, GW_TCP_PREREAD_EOF, &up),
                     GW_PT_MALFORMED);
    assert_int_equal(gw_passthrough_decide(&with, GW_SNI_NEED_MORE, &s, GW_TCP_PREREAD_FULL, &up),
                     GW_PT_TOO_BIG);
    /* refusals never go to the default */
    assert_int_equal(gw_passthrough_decide(&with, GW_SNI_NOT_TLS, &s, GW_TCP_PREREAD_DATA, &up),
                     GW_PT_MALFORMED);
    assert_int_equal(up, -1);
    assert_int_equal(gw_passthrough_decide(&with, GW_SNI_MALFORMED, &s, GW_TCP_PREREAD_DATA, &up),
                     GW_PT_MALFORMED);
    assert_int_equal(up, -1);
    assert_int_equal(gw_passthrough_decide(&with, GW_SNI_TOO_BIG, &s, GW_TCP_PREREAD_DATA, &up),
                     GW_PT_TOO_BIG);
    assert_int_equal(up, -1);
}

static void passthrough_result_names(void **state)
{
    (void)state;
    static const char *const want[] = {"routed",    "default", "no_sni", "no_route",
                                       "malformed", "too_big", "timeout"};
    for (int r = 0; r < GW_PT_NRESULTS; r++)
        assert_string_equal(gw_pt_result_name((gw_pt_result_t)r), want[r]);
    assert_string_equal(gw_pt_result_name(GW_PT_NRESULTS), "?");
}

/* A gateway that starts without passthrough still gets the wrapper (hooks 01 calls on every
 * tcp listener, answering "nothing to do" for the others), over the picker below as it was. */
static void passthrough_picker_installed_without_passthrough_listeners(void **state)
{
    (void)state;
    gw_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 2;
    gw_tcp_picker_t below = {.max_attempts = 3};
    void *layers[GW_LEVELS] = {0};
    layers[1] = &below;
    int err = -1;
    gw_passthrough_t *pt = gw_passthrough_prepare(&cfg, layers, &err);
    assert_int_equal(err, 0);
    assert_non_null(pt);
    const gw_tcp_picker_t *p = layers[1];
    assert_ptr_not_equal(p, &below);
    assert_non_null(p->preread);
    assert_non_null(p->preread_ms);
    assert_non_null(p->pick);
    assert_int_equal(p->max_attempts, 3);
    assert_non_null(p->wants_client); /* asks the picker below, then its own routes */
    assert_int_equal(gw_passthrough_gen_names(pt, &cfg), 0); /* no listener: nothing to add */
    gw_passthrough_free(pt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(passthrough_match_rules),
        cmocka_unit_test(passthrough_decide_outcomes),
        cmocka_unit_test(passthrough_result_names),
        cmocka_unit_test(passthrough_picker_installed_without_passthrough_listeners),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
