/* test_hutls.c - the upstream TLS metrics (hutls.h): handshakes by resumed, failures by reason
 * summed over the workers into one series per reason, and the bound on reasons kept. (The
 * connections themselves are tested end to end: e2e/test_04_tls_upstream.py.) */
#include "gwtest.h"

#include <stdlib.h>
#include <string.h>

#include "04-http/httpcfg.h"
#include "04-http/hutls.h"
#include "04-http/tlsconf.h"
#include "metrics.h"
#include "tls_stream.h"

/* Two upstreams: "plain" without tls (index 0), "app" with it (index 1). */
static gw_tls_upstream_cfg_t tls;
static gw_http_upstream_cfg_t with_tls = {.tls = &tls}, without_tls;
static gw_upstream_cfg_t ups[2];
static gw_config_t cfg;
static hp_utls_t *t;
static hp_utls_gen_t *v; /* the view of CFG: "app" is S */
static gw_kcount_entry_t *app;
static char *text;

static int setup(void **state)
{
    (void)state;
    memset(ups, 0, sizeof ups);
    ups[0].name = "plain";
    ups[0].ext[4] = &without_tls;
    ups[1].name = "app";
    ups[1].ext[4] = &with_tls;
    memset(&cfg, 0, sizeof cfg);
    cfg.upstreams = ups;
    cfg.nupstreams = 2;
    t = hp_utls_new(2);
    assert_non_null(t);
    v = hp_utls_gen_new(t, &cfg);
    assert_non_null(v);
    assert_null(hp_utls_series(v, 0)); /* no tls: no series */
    app = hp_utls_series(v, 1);
    assert_non_null(app);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hp_utls_gen_free(t, v);
    hp_utls_free(t);
    free(text);
    text = NULL;
    return 0;
}

static const char *scrape(void)
{
    free(text);
    gw_prom_t *p = gw_prom_new(0);
    assert_non_null(p);
    hp_utls_metrics(t, v, p);
    text = gw_prom_take(p, NULL);
    gw_prom_free(p);
    assert_non_null(text);
    return text;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *s = strstr(hay, needle); s != NULL; s = strstr(s + 1, needle))
        n++;
    return n;
}

#define HS "gw_upstream_tls_handshakes_total"
#define FAIL "gw_upstream_tls_handshake_failures_total"

/* Both resumed values are there from the start, for upstreams with tls only. */
static void handshakes_laid_out_and_summed(void **state)
{
    (void)state;
    const char *s = scrape();
    gw_assert_contains(s, HS "{upstream=\"app\",resumed=\"false\"} 0\n");
    gw_assert_contains(s, HS "{upstream=\"app\",resumed=\"true\"} 0\n");
    assert_null(strstr(s, "\"plain\""));
    hp_utls_count_handshake(app, 0, false);
    hp_utls_count_handshake(app, 0, false);
    hp_utls_count_handshake(app, 1, true);
    hp_utls_count_handshake(app, 1, false);
    s = scrape();
    gw_assert_contains(s, HS "{upstream=\"app\",resumed=\"false\"} 3\n");
    gw_assert_contains(s, HS "{upstream=\"app\",resumed=\"true\"} 1\n");
}

/* A reason seen on both workers is one series with their sum; series appear as reasons do. */
static void failures_one_series_per_reason(void **state)
{
    (void)state;
    const char *expired = gw_tls_error_name(BR_ERR_X509_EXPIRED);
    assert_null(strstr(scrape(), FAIL "{"));
    hp_utls_count_failure(app, 0, expired);
    hp_utls_count_failure(app, 1, expired);
    hp_utls_count_failure(app, 1, expired);
    hp_utls_count_failure(app, 1, "timeout");
    const char *s = scrape();
    assert_int_equal(count(s, "reason=\"x509_expired\""), 1);
    gw_assert_contains(s, FAIL "{upstream=\"app\",reason=\"x509_expired\"} 3\n");
    gw_assert_contains(s, FAIL "{upstream=\"app\",reason=\"timeout\"} 1\n");
    assert_null(strstr(s, "reason=\"other\""));
}

/* Each worker keeps 16 reasons per upstream; more distinct ones count as "other", so a peer
 * that fails in every way BearSSL can name grows the scrape by a bounded amount. */
static void failures_beyond_the_slots_are_other(void **state)
{
    (void)state;
    int codes[] = {BR_ERR_X509_EXPIRED,
                   BR_ERR_X509_BAD_SERVER_NAME,
                   BR_ERR_X509_NOT_TRUSTED,
                   BR_ERR_X509_NOT_CA,
                   BR_ERR_X509_BAD_SIGNATURE,
                   BR_ERR_X509_WEAK_PUBLIC_KEY,
                   BR_ERR_X509_CRITICAL_EXTENSION,
                   BR_ERR_X509_FORBIDDEN_KEY_USAGE,
                   BR_ERR_X509_DN_MISMATCH,
                   BR_ERR_X509_TIME_UNKNOWN,
                   BR_ERR_X509_EMPTY_CHAIN,
                   BR_ERR_X509_TRUNCATED,
                   BR_ERR_BAD_MAC,
                   BR_ERR_BAD_VERSION,
                   BR_ERR_BAD_HANDSHAKE,
                   BR_ERR_BAD_CIPHER_SUITE,
                   BR_ERR_BAD_SIGNATURE,
                   BR_ERR_UNSUPPORTED_VERSION};
    size_t n = sizeof codes / sizeof codes[0]; /* 18: two too many */
    for (size_t i = 0; i < n; i++)
        hp_utls_count_failure(app, 0, gw_tls_error_name(codes[i]));
    hp_utls_count_failure(app, 0, gw_tls_error_name(codes[0]));  /* kept: its slot is there */
    hp_utls_count_failure(app, 1, gw_tls_error_name(codes[17])); /* worker 1 has room */
    const char *s = scrape();
    assert_int_equal(count(s, FAIL "{"), 16 + 1 + 1); /* 16 slots, codes[17] from w1, other */
    gw_assert_contains(s, FAIL "{upstream=\"app\",reason=\"x509_expired\"} 2\n");
    gw_assert_contains(s, FAIL "{upstream=\"app\",reason=\"other\"} 2\n");
    gw_assert_contains(s, FAIL "{upstream=\"app\",reason=\"unsupported_version\"} 1\n");
}

/* Without any upstream with tls, no family at all. */
static void no_tls_no_families(void **state)
{
    (void)state;
    cfg.nupstreams = 1; /* only "plain" */
    hp_utls_t *only_plain = hp_utls_new(2);
    assert_non_null(only_plain);
    hp_utls_gen_t *pv = hp_utls_gen_new(only_plain, &cfg);
    assert_non_null(pv);
    gw_prom_t *p = gw_prom_new(0);
    hp_utls_metrics(only_plain, pv, p);
    assert_null(strstr(gw_prom_text(p, NULL), "gw_upstream_tls"));
    gw_prom_free(p);
    hp_utls_gen_free(only_plain, pv);
    hp_utls_free(only_plain);
    cfg.nupstreams = 2;
}

/* A reload's view takes the series by upstream name: "app" moved to position 0 keeps its
 * counts; once the old view is gone, an upstream the new config lacks leaves the scrape, and
 * one it adds starts at 0. (Fails if a view made fresh series, or indexed by position.) */
static void series_carried_by_upstream_name(void **state)
{
    (void)state;
    hp_utls_count_handshake(app, 0, false);
    hp_utls_count_handshake(app, 1, false);
    hp_utls_count_failure(app, 1, "timeout");
    gw_upstream_cfg_t ups2[2] = {{.name = "app"}, {.name = "new"}};
    ups2[0].ext[4] = &with_tls;
    ups2[1].ext[4] = &with_tls;
    gw_config_t cfg2 = {.upstreams = ups2, .nupstreams = 2};
    hp_utls_gen_t *v2 = hp_utls_gen_new(t, &cfg2);
    assert_non_null(v2);
    assert_ptr_equal(hp_utls_series(v2, 0), app);
    hp_utls_gen_free(t, v); /* the old generation goes */
    v = v2;
    const char *s = scrape();
    gw_assert_contains(s, HS "{upstream=\"app\",resumed=\"false\"} 2\n");
    gw_assert_contains(s, FAIL "{upstream=\"app\",reason=\"timeout\"} 1\n");
    gw_assert_contains(s, HS "{upstream=\"new\",resumed=\"false\"} 0\n");
    /* A third generation without "app": its series is freed with the last view holding it. */
    gw_config_t cfg3 = {.upstreams = ups2 + 1, .nupstreams = 1};
    hp_utls_gen_t *v3 = hp_utls_gen_new(t, &cfg3);
    assert_non_null(v3);
    hp_utls_gen_free(t, v);
    v = v3;
    s = scrape();
    assert_null(strstr(s, "\"app\""));
    gw_assert_contains(s, HS "{upstream=\"new\",resumed=\"false\"} 0\n");
    hp_utls_gen_free(t, v); /* here: its config is this function's */
    v = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(handshakes_laid_out_and_summed, setup, teardown),
        cmocka_unit_test_setup_teardown(failures_one_series_per_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(failures_beyond_the_slots_are_other, setup, teardown),
        cmocka_unit_test_setup_teardown(no_tls_no_families, setup, teardown),
        cmocka_unit_test_setup_teardown(series_carried_by_upstream_name, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
