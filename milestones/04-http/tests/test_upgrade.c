/* test_upgrade.c - the Upgrade decisions without sockets (upgrade.h): which requests may
 * become a tunnel, which go upstream as plain requests, h2c never, and which 101s may
 * switch a connection. Tables: each row is one case and says why. */
#include "gwtest.h"

#include <string.h>

#include "04-http/upgrade.h"

static gw_h1_span_t S(const char *s)
{
    return (gw_h1_span_t){s, s ? strlen(s) : 0};
}

static const gw_upgrade_allow_t ws = {.names = {"websocket"}, .n = 1};
static const gw_upgrade_allow_t ws_and_echo = {.names = {"websocket", "Echo"}, .n = 2};

static void upgrade_decide_table(void **state)
{
    (void)state;
    static const struct {
        bool asked, get, body;
        const char *offer;
        const gw_upgrade_allow_t *allow;
        gw_upgrade_t want;
    } cases[] = {
        {false, true, false, NULL, &ws, GW_UPGRADE_NONE},              /* no Connection: upgrade */
        {true, true, false, "websocket", &ws, GW_UPGRADE_TUNNEL},      /* the usual WebSocket */
        {true, true, false, "WebSocket", &ws, GW_UPGRADE_TUNNEL},      /* names ignore case */
        {true, true, false, "websocket/13", &ws, GW_UPGRADE_TUNNEL},   /* a version is fine */
        {true, true, false, "foo, websocket", &ws, GW_UPGRADE_TUNNEL}, /* one allowed is enough */
        {true, true, false, " websocket ,, ", &ws, GW_UPGRADE_TUNNEL}, /* empty members, OWS */
        {true, true, false, "websocket", NULL, GW_UPGRADE_STRIP},      /* the route allows none */
        {true, true, false, "echo", &ws, GW_UPGRADE_STRIP},            /* not this one */
        {true, true, false, "echo", &ws_and_echo, GW_UPGRADE_TUNNEL},
        {true, false, false, "websocket", &ws, GW_UPGRADE_STRIP},     /* a POST */
        {true, true, true, "websocket", &ws, GW_UPGRADE_STRIP},       /* a body */
        {true, true, false, "h2c", &ws, GW_UPGRADE_STRIP},            /* never h2c */
        {true, true, false, "websocket, h2c", &ws, GW_UPGRADE_STRIP}, /* ... not even beside */
        {true, true, false, "H2C/1", &ws, GW_UPGRADE_STRIP},
        {true, true, false, "", &ws, GW_UPGRADE_STRIP},            /* nothing offered */
        {true, true, false, "web socket", &ws, GW_UPGRADE_STRIP},  /* two tokens, no comma */
        {true, true, false, "websocket/", &ws, GW_UPGRADE_STRIP},  /* no version after / */
        {true, true, false, "/13", &ws, GW_UPGRADE_STRIP},         /* no name */
        {true, true, false, "web\"socket", &ws, GW_UPGRADE_STRIP}, /* not a token */
        {true, true, false, "websocket/1/2", &ws, GW_UPGRADE_STRIP},
        {true, true, false, "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,websocket", &ws,
         GW_UPGRADE_STRIP}, /* more than GW_UPGRADE_MAX_OFFERED */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gw_upgrade_req_t r = {.asked = cases[i].asked,
                              .get = cases[i].get,
                              .has_body = cases[i].body,
                              .offer = S(cases[i].offer)};
        const char *why = "unset";
        gw_upgrade_t got = gw_upgrade_decide(&r, cases[i].allow, &why);
        if (got != cases[i].want)
            fail_msg("case %zu (%s): got %d, want %d", i, cases[i].offer ? cases[i].offer : "-",
                     (int)got, (int)cases[i].want);
        if ((got == GW_UPGRADE_STRIP) != (why != NULL))
            fail_msg("case %zu: a reason for every STRIP and only then", i);
    }
}

/* Two Upgrade lines: the decision reads one value, so none is believed (the engine counts
 * the lines: a second "Upgrade: h2c" must not ride behind an allowed first one). */
static void upgrade_several_fields_strip(void **state)
{
    (void)state;
    gw_upgrade_req_t r = {.asked = true, .get = true, .several = true, .offer = S("websocket")};
    const char *why = NULL;
    assert_int_equal(gw_upgrade_decide(&r, &ws, &why), GW_UPGRADE_STRIP);
    assert_string_equal(why, "several Upgrade fields");
    r.several = false;
    assert_int_equal(gw_upgrade_decide(&r, &ws, &why), GW_UPGRADE_TUNNEL);
}

static void upgrade_accept_101_table(void **state)
{
    (void)state;
    static const struct {
        gw_upgrade_t decision;
        const char *offer, *answer; /* answer NULL: no Upgrade field in the 101 */
        const gw_upgrade_allow_t *allow;
        bool want;
    } cases[] = {
        {GW_UPGRADE_TUNNEL, "websocket", "websocket", &ws, true},
        {GW_UPGRADE_TUNNEL, "websocket", "WEBSOCKET", &ws, true},
        {GW_UPGRADE_TUNNEL, "websocket/13", "websocket/13", &ws, true},
        {GW_UPGRADE_TUNNEL, "foo, websocket", "websocket", &ws, true},
        {GW_UPGRADE_NONE, "websocket", "websocket", &ws, false},  /* never asked */
        {GW_UPGRADE_STRIP, "websocket", "websocket", &ws, false}, /* its Upgrade was removed */
        {GW_UPGRADE_TUNNEL, "websocket", NULL, &ws, false},       /* says nothing */
        {GW_UPGRADE_TUNNEL, "websocket", "", &ws, false},
        {GW_UPGRADE_TUNNEL, "websocket", "h2c", &ws, false},            /* not offered */
        {GW_UPGRADE_TUNNEL, "websocket", "websocket/13", &ws, false},   /* not as offered */
        {GW_UPGRADE_TUNNEL, "foo, websocket", "foo", &ws, false},       /* offered, not allowed */
        {GW_UPGRADE_TUNNEL, "websocket", "websocket, foo", &ws, false}, /* two layers */
        {GW_UPGRADE_TUNNEL, "websocket", "web socket", &ws, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *why = "unset";
        bool got = gw_upgrade_accept_101(cases[i].decision, S(cases[i].offer), cases[i].allow,
                                         cases[i].answer != NULL, S(cases[i].answer), &why);
        if (got != cases[i].want)
            fail_msg("case %zu (%s -> %s): got %d", i, cases[i].offer,
                     cases[i].answer ? cases[i].answer : "(none)", got);
        if (got != (why == NULL))
            fail_msg("case %zu: a reason for every refusal and only then", i);
    }
}

static void upgrade_config_names(void **state)
{
    (void)state;
    assert_true(gw_upgrade_name_ok("websocket", 9));
    assert_true(gw_upgrade_name_ok("my-proto.v2", 11));
    assert_false(gw_upgrade_name_ok("h2c", 3)); /* the smuggling attack */
    assert_false(gw_upgrade_name_ok("H2C", 3));
    assert_false(gw_upgrade_name_ok("h2", 2)); /* h2 is never an Upgrade (RFC 9113 3.1) */
    assert_false(gw_upgrade_name_ok("", 0));
    assert_false(gw_upgrade_name_ok("web socket", 10));
    assert_false(gw_upgrade_name_ok("websocket/13", 12)); /* a name, not a version */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(upgrade_decide_table),
        cmocka_unit_test(upgrade_several_fields_strip),
        cmocka_unit_test(upgrade_accept_101_table),
        cmocka_unit_test(upgrade_config_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
