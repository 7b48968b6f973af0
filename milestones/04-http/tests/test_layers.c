/* test_layers.c - milestone N extends N-1 by delegating every hook to N-1's app (runtime.h).
 * Here, for each consecutive pair of milestone apps, every hook the lower one has, the upper
 * one has too: a hook added to 02 that 03 forgot would be skipped silently in gw03 and gw04
 * (the runtime only sees the top app), and fails this test instead. The hook list is
 * runtime.h's GW_APP_HOOKS, so a new hook is checked without touching this file. It lives in
 * 04's tests because only 04's tests link all four milestones. */
#include "gwtest.h"

#include <stdio.h>

#include "01-tcp/tcp_proxy.h"
#include "02-lb/lb.h"
#include "03-resilience/res.h"
#include "04-http/hproxy.h"

/* How many hooks LOWER has that UPPER lacks; each is printed with its name. */
static int missing_hooks(const char *upper_name, const gw_app_t *upper, const char *lower_name,
                         const gw_app_t *lower)
{
    int missing = 0;
#define CHECK_HOOK(ret, name, params)                                                              \
    if (lower->name != NULL && upper->name == NULL) {                                              \
        print_error("%s has hook %s but %s does not delegate it\n", lower_name, #name,             \
                    upper_name);                                                                   \
        missing++;                                                                                 \
    }
    GW_APP_HOOKS(CHECK_HOOK)
#undef CHECK_HOOK
    return missing;
}

static void layers_lb_app_has_every_tcp_hook(void **state)
{
    (void)state;
    assert_int_equal(missing_hooks("gw_lb_app", &gw_lb_app, "gw_tcp_app", &gw_tcp_app), 0);
}

static void layers_res_app_has_every_lb_hook(void **state)
{
    (void)state;
    assert_int_equal(missing_hooks("gw_res_app", &gw_res_app, "gw_lb_app", &gw_lb_app), 0);
}

static void layers_http_app_has_every_res_hook(void **state)
{
    (void)state;
    assert_int_equal(missing_hooks("gw_http_app", &gw_http_app, "gw_res_app", &gw_res_app), 0);
}

/* The check itself can fail: an app missing one of its lower app's hooks is caught. */
static void layers_a_missing_hook_is_caught(void **state)
{
    (void)state;
    gw_app_t forgetful = gw_res_app;
    forgetful.worker_drain = NULL;
    assert_int_equal(missing_hooks("forgetful", &forgetful, "gw_lb_app", &gw_lb_app), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(layers_lb_app_has_every_tcp_hook),
        cmocka_unit_test(layers_res_app_has_every_lb_hook),
        cmocka_unit_test(layers_http_app_has_every_res_hook),
        cmocka_unit_test(layers_a_missing_hook_is_caught),
    };
    return cmocka_run_group_tests_name("layers", tests, NULL, NULL);
}
