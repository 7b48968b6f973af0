/* test_disccfg.c - milestone 05's configuration keys (reload: watch_file, quiet_period):
 * defaults, errors at line:column, -T's round trip, and gw04 refusing the block. */
#include "gwtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "04-http/httpcfg.h"
#include "05-discovery/disccfg.h"
#include "error.h"
#include "failalloc.h"

static gw_config_t cfg;
static const gw_config_ext_t *loaded_with = &gw_disc_config_ext;
static char *errs;
static size_t errs_len;

static int teardown(void **state)
{
    (void)state;
    gw_config_free(&cfg, loaded_with);
    loaded_with = &gw_disc_config_ext;
    free(errs);
    errs = NULL;
    return 0;
}

static int load_text(const char *text, const gw_config_ext_t *ext)
{
    free(errs);
    errs = NULL;
    loaded_with = ext;
    FILE *f = open_memstream(&errs, &errs_len);
    int rc = gw_config_load_string("c.yaml", text, ext, &cfg, f);
    fclose(f);
    return rc;
}

/* ROOT_KEYS start on line 2 of a config with one http listener (04's keys must still work
 * under gw05's extension). */
static int load(const char *root_keys, const gw_config_ext_t *ext)
{
    char text[4096];
    snprintf(text, sizeof text,
             "workers: 1\n"
             "%s"
             "listeners:\n"
             "  - name: web\n"
             "    address: 127.0.0.1:18080\n"
             "    protocol: http\n"
             "    routes:\n"
             "      - {name: all, match: {path_prefix: /}, upstream: app}\n"
             "upstreams:\n"
             "  app:\n"
             "    backends:\n"
             "      - address: 127.0.0.1:19001\n",
             root_keys);
    return load_text(text, ext);
}

static void disc_config_defaults_when_absent(void **state)
{
    (void)state;
    assert_int_equal(load("", &gw_disc_config_ext), 0);
    assert_null(cfg.ext[5]);
    assert_false(gw_disc_root_cfg(&cfg)->watch_file);
    assert_int_equal(gw_disc_root_cfg(&cfg)->quiet_period_ms, 500);
    /* 04's part is decoded under gw05 too. */
    assert_non_null(gw_http_listener_cfg(&cfg.listeners[0]));
}

static void disc_config_keys_decoded(void **state)
{
    (void)state;
    assert_int_equal(load("reload: {watch_file: true, quiet_period: 2s}\n", &gw_disc_config_ext),
                     0);
    assert_true(gw_disc_root_cfg(&cfg)->watch_file);
    assert_int_equal(gw_disc_root_cfg(&cfg)->quiet_period_ms, 2000);
}

static void disc_config_empty_block_keeps_defaults(void **state)
{
    (void)state;
    assert_int_equal(load("reload: {}\n", &gw_disc_config_ext), 0);
    assert_false(gw_disc_root_cfg(&cfg)->watch_file);
    assert_int_equal(gw_disc_root_cfg(&cfg)->quiet_period_ms, 500);
}

static void disc_config_errors_at_line_and_column(void **state)
{
    (void)state;
    assert_int_not_equal(load("reload:\n"
                              "  watch_file: yes\n"
                              "  quiet_period: 5ms\n",
                              &gw_disc_config_ext),
                         0);
    assert_non_null(strstr(errs, "c.yaml:3:15: watch_file"));
    assert_non_null(strstr(errs, "c.yaml:4:17: quiet_period"));
}

static void disc_config_reload_must_be_a_mapping(void **state)
{
    (void)state;
    assert_int_not_equal(load("reload: true\n", &gw_disc_config_ext), 0);
    assert_non_null(strstr(errs, "c.yaml:2:9: reload must be a mapping"));
}

static void disc_config_unknown_key_under_reload(void **state)
{
    (void)state;
    assert_int_not_equal(load("reload: {quiet_periode: 1s}\n", &gw_disc_config_ext), 0);
    assert_non_null(strstr(errs, "c.yaml:2:"));
    assert_non_null(strstr(errs, "quiet_periode"));
    assert_non_null(strstr(errs, "quiet_period"));
}

/* -T prints the block with every default, and the output loads back to the same values. */
static void disc_config_printed_and_loads_back(void **state)
{
    (void)state;
    assert_int_equal(
        load("reload: {watch_file: true, quiet_period: 1500ms}\n", &gw_disc_config_ext), 0);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    gw_config_print(f, &cfg, &gw_disc_config_ext);
    fclose(f);
    assert_non_null(strstr(out, "reload:\n  watch_file: true\n  quiet_period: 1500ms\n"));
    gw_config_free(&cfg, &gw_disc_config_ext);
    assert_int_equal(load_text(out, &gw_disc_config_ext), 0);
    assert_true(gw_disc_root_cfg(&cfg)->watch_file);
    assert_int_equal(gw_disc_root_cfg(&cfg)->quiet_period_ms, 1500);
    free(out);
}

static void disc_config_default_block_printed(void **state)
{
    (void)state;
    assert_int_equal(load("", &gw_disc_config_ext), 0);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    gw_config_print(f, &cfg, &gw_disc_config_ext);
    fclose(f);
    assert_non_null(strstr(out, "reload:\n  watch_file: false\n  quiet_period: 500ms\n"));
    free(out);
}

/* gw04 does not reload: the block is refused, at its line, naming the binary that can. */
static void disc_config_gw04_refuses_reload_naming_gw05(void **state)
{
    (void)state;
    assert_int_not_equal(load("reload: {watch_file: true}\n", &gw_http_config_ext), 0);
    assert_non_null(strstr(errs, "c.yaml:2:1: reload: needs gw05 or later"));
}

/* Every hook 04 has, gw05 has too (its own or a wrapper that calls 04's): a NULL one would
 * silently skip 04's part of the config for that node. */
static void disc_config_ext_has_every_04_hook(void **state)
{
    (void)state;
    const gw_config_ext_t *a = &gw_http_config_ext, *b = &gw_disc_config_ext;
    assert_int_equal(b->level, 5);
#define SAME_HOOK(f) assert_true(a->f == NULL || b->f != NULL)
    SAME_HOOK(root);
    SAME_HOOK(listener);
    SAME_HOOK(upstream);
    SAME_HOOK(backend);
    SAME_HOOK(validate);
    SAME_HOOK(print_root);
    SAME_HOOK(print_listener);
    SAME_HOOK(print_upstream);
    SAME_HOOK(print_backend);
    SAME_HOOK(free);
#undef SAME_HOOK
}

/* ---- allocation failures (failalloc.h) ---------------------------------------------------- */

static const char OOM_TEXT[] = "workers: 1\n"
                               "reload: {watch_file: true, quiet_period: 750ms}\n"
                               "listeners:\n"
                               "  - {name: web, address: 127.0.0.1:18080, protocol: http,\n"
                               "     routes: [{match: {path_prefix: /}, upstream: app}]}\n"
                               "upstreams:\n"
                               "  app: {backends: [{address: 127.0.0.1:19001}]}\n";

/* One load of OOM_TEXT: either whole and right (nothing failed, or a failure absorbed with
 * the same effective config), or refused as out of memory, never as a config error. */
static int oom_disc_config_load(void *ctx)
{
    const char *expected = ctx;
    char *text = NULL, *got = NULL;
    size_t len = 0, glen = 0;
    FILE *f = open_memstream(&text, &len); /* libc's own allocation: not wrapped */
    assert_non_null(f);
    gw_config_t c;
    int rc = gw_config_load_string("c.yaml", OOM_TEXT, &gw_disc_config_ext, &c, f);
    fclose(f);
    if (rc == 0) {
        assert_true(gw_disc_root_cfg(&c)->watch_file);
        assert_int_equal(gw_disc_root_cfg(&c)->quiet_period_ms, 750);
        f = open_memstream(&got, &glen);
        gw_config_print(f, &c, &gw_disc_config_ext);
        fclose(f);
        if (expected != NULL)
            assert_string_equal(got, expected);
        free(got);
        if (gw_failalloc_failures() > 0)
            rc = GW_FAILALLOC_ABSORBED;
        gw_config_free(&c, &gw_disc_config_ext);
        if (len != 0)
            fail_msg("loaded, with messages: %s", text);
    } else {
        assert_int_equal(rc, GW_ECONFIG);
        gw_assert_contains(text, "out of memory");
    }
    free(text);
    return rc;
}

static void disc_config_load_fails_cleanly_at_each_allocation(void **state)
{
    (void)state;
    gw_config_t c;
    assert_int_equal(gw_config_load_string("c.yaml", OOM_TEXT, &gw_disc_config_ext, &c, NULL), 0);
    char *expected = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&expected, &n);
    gw_config_print(f, &c, &gw_disc_config_ext);
    fclose(f);
    gw_config_free(&c, &gw_disc_config_ext);
    gw_failalloc_report_t r = gw_failalloc_each(oom_disc_config_load, expected, false);
    assert_true(r.allocations >= 20);
    assert_true(gw_failalloc_each(oom_disc_config_load, expected, true).allocations >= 20);
    free(expected);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(disc_config_defaults_when_absent, teardown),
        cmocka_unit_test_teardown(disc_config_keys_decoded, teardown),
        cmocka_unit_test_teardown(disc_config_empty_block_keeps_defaults, teardown),
        cmocka_unit_test_teardown(disc_config_errors_at_line_and_column, teardown),
        cmocka_unit_test_teardown(disc_config_reload_must_be_a_mapping, teardown),
        cmocka_unit_test_teardown(disc_config_unknown_key_under_reload, teardown),
        cmocka_unit_test_teardown(disc_config_printed_and_loads_back, teardown),
        cmocka_unit_test_teardown(disc_config_default_block_printed, teardown),
        cmocka_unit_test_teardown(disc_config_gw04_refuses_reload_naming_gw05, teardown),
        cmocka_unit_test(disc_config_ext_has_every_04_hook),
        cmocka_unit_test_teardown(disc_config_load_fails_cleanly_at_each_allocation,
                                  gw_failalloc_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
