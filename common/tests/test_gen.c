/* test_gen.c - unit tests for gen.h: a generation's listener view, its change summary (one
 * bounded line however many changes), the garbage it frees, and lookups by identity. */
#include "gwtest.h"

#include <stdlib.h>
#include <string.h>

#include "gen.h"

static int g_cfg_frees;

static void count_free(gw_config_t *cfg)
{
    (void)cfg;
    g_cfg_frees++;
}

/* A config with N listeners named l0, l1...: only what gen.c reads. */
typedef struct {
    gw_config_t cfg;
    gw_listener_cfg_t lis[4];
} fake_t;

static void fake_init(fake_t *f, size_t n)
{
    memset(f, 0, sizeof *f);
    f->cfg.listeners = f->lis;
    f->cfg.nlisteners = n;
}

static void gen_new_views_every_listener_in_order(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f, 3);
    g_cfg_frees = 0;
    gw_gen_t *g = gw_gen_new(7, &f.cfg, count_free);
    assert_non_null(g);
    assert_int_equal(g->id, 7);
    assert_int_equal(g->nlis, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_ptr_equal(g->lis[i].cfg, &f.lis[i]);
        assert_int_equal(g->lis[i].pos, i);
        assert_null(g->lis[i].obj);
    }
    assert_int_equal(g->changes, 0);
    char buf[64];
    assert_string_equal(gw_gen_summary(g, buf, sizeof buf), "");
    gw_gen_free(g);
    assert_int_equal(g_cfg_frees, 1); /* the config goes with its generation */
    gw_gen_free(NULL);
}

static void gen_changes_are_joined_and_counted(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f, 0);
    gw_gen_t *g = gw_gen_new(2, &f.cfg, NULL);
    assert_non_null(g);
    gw_gen_change(g, "upstream '%s': +%d backend", "app", 1);
    gw_gen_change(g, "route '%s' removed", "old");
    char buf[GW_GEN_SUMMARY + 64];
    assert_string_equal(gw_gen_summary(g, buf, sizeof buf),
                        "upstream 'app': +1 backend; route 'old' removed");
    assert_int_equal(g->changes, 2);
    gw_gen_free(g);
}

/* Thousands of changes: the summary stays one bounded line that says how many it left out,
 * and the changes shown are the first ones, in order (never a later one after a gap). */
static void gen_summary_is_bounded_and_says_how_many_more(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f, 0);
    gw_gen_t *g = gw_gen_new(3, &f.cfg, NULL);
    assert_non_null(g);
    for (int i = 0; i < 5000; i++)
        gw_gen_change(g, "route 'r%04d' added", i);
    gw_gen_change(g, "x"); /* short: would fit, but comes after a change that did not */
    char buf[GW_GEN_SUMMARY + 64];
    const char *s = gw_gen_summary(g, buf, sizeof buf);
    assert_true(strlen(s) < GW_GEN_SUMMARY + 32);
    assert_int_equal(strncmp(s, "route 'r0000' added; route 'r0001' added", 40), 0);
    assert_int_equal(g->changes, 5001);
    char want[64];
    snprintf(want, sizeof want, "; ... (%u more)", 5001 - g->summary_shown);
    assert_non_null(strstr(s, want));
    assert_null(strstr(s, "; x;"));
    /* Shown changes are a prefix: r0000 .. r(shown-1), nothing else. */
    char last[32];
    snprintf(last, sizeof last, "route 'r%04u' added; ...", g->summary_shown - 1);
    assert_non_null(strstr(s, last));
    gw_gen_free(g);
}

/* One change longer than the whole summary: counted, not shown, and nothing after it is. */
static void gen_overlong_change_is_counted_not_shown(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f, 0);
    gw_gen_t *g = gw_gen_new(4, &f.cfg, NULL);
    assert_non_null(g);
    char big[2 * GW_GEN_SUMMARY];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    gw_gen_change(g, "%s", big);
    gw_gen_change(g, "small");
    char buf[64];
    assert_string_equal(gw_gen_summary(g, buf, sizeof buf), "... (2 more)");
    gw_gen_free(g);
}

/* Garbage is freed with the generation (ASan's leak check is the assertion). */
static void gen_garbage_freed_with_the_generation(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f, 1);
    gw_gen_t *g = gw_gen_new(5, &f.cfg, NULL);
    assert_non_null(g);
    for (int i = 0; i < 100; i++) {
        char *old_name = malloc(16);
        assert_non_null(old_name);
        snprintf(old_name, 16, "name%d", i);
        assert_int_equal(gw_gen_keep_garbage(g, old_name), 0);
    }
    assert_int_equal(g->ngarbage, 100);
    gw_gen_free(g);
}

static void gen_listener_found_by_identity(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f, 3);
    gw_gen_t *g = gw_gen_new(6, &f.cfg, NULL);
    assert_non_null(g);
    /* Identities are opaque here: any distinct addresses do. */
    static char a, b, c, gone;
    g->lis[0].obj = (struct gw_listener_s *)&a;
    g->lis[1].obj = (struct gw_listener_s *)&b;
    g->lis[2].obj = (struct gw_listener_s *)&c;
    assert_ptr_equal(gw_gen_listener(g, (struct gw_listener_s *)&b), &g->lis[1]);
    assert_ptr_equal(gw_gen_listener(g, (struct gw_listener_s *)&c)->cfg, &f.lis[2]);
    assert_null(gw_gen_listener(g, (struct gw_listener_s *)&gone));
    assert_null(gw_gen_listener(g, NULL));
    gw_gen_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gen_new_views_every_listener_in_order),
        cmocka_unit_test(gen_changes_are_joined_and_counted),
        cmocka_unit_test(gen_summary_is_bounded_and_says_how_many_more),
        cmocka_unit_test(gen_overlong_change_is_counted_not_shown),
        cmocka_unit_test(gen_garbage_freed_with_the_generation),
        cmocka_unit_test(gen_listener_found_by_identity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
