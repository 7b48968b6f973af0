/* test_hmetrics.c - the HTTP engine's labelled metrics (hmetrics.h): the class of a status,
 * the slots of routes and backends laid out from a config (every label from the config,
 * none from a request), per-worker recording summed at scrape time, and the exposition. */
#include "gwtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "04-http/hmetrics.h"
#include "04-http/httpcfg.h"

static gw_config_t cfg;

/* Two http listeners (2 and 1 routes, both with a route named "api"), a tcp listener
 * between them, and two upstreams (2 and 1 backends). */
static const char *const config_text = "workers: 2\n"
                                       "listeners:\n"
                                       "  - name: web\n"
                                       "    address: 127.0.0.1:18080\n"
                                       "    protocol: http\n"
                                       "    routes:\n"
                                       "      - name: api\n"
                                       "        match: {path_prefix: /api}\n"
                                       "        upstream: app\n"
                                       "      - match: {path_prefix: /static}\n"
                                       "        upstream: files\n"
                                       "  - name: raw\n"
                                       "    address: 127.0.0.1:18081\n"
                                       "    upstream: app\n"
                                       "  - name: admin\n"
                                       "    address: 127.0.0.1:18082\n"
                                       "    protocol: http\n"
                                       "    routes:\n"
                                       "      - name: api\n"
                                       "        match: {path_prefix: /}\n"
                                       "        upstream: app\n"
                                       "upstreams:\n"
                                       "  app:\n"
                                       "    backends:\n"
                                       "      - address: 127.0.0.1:19001\n"
                                       "      - address: 127.0.0.1:19002\n"
                                       "  files:\n"
                                       "    backends:\n"
                                       "      - address: 127.0.0.1:19003\n";

static int setup(void **state)
{
    (void)state;
    char *errs = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&errs, &n);
    int rc = gw_config_load_string("c.yaml", config_text, &gw_http_config_ext, &cfg, f);
    fclose(f);
    if (rc != 0)
        fprintf(stderr, "%s", errs);
    free(errs);
    return rc;
}

static int teardown(void **state)
{
    (void)state;
    gw_config_free(&cfg, &gw_http_config_ext);
    return 0;
}

/* The exposition of M (freed by the caller). */
static char *scrape(const gw_hmetrics_t *m)
{
    gw_prom_t *p = gw_prom_new(0);
    assert_non_null(p);
    gw_hmetrics_write(m, p);
    assert_int_equal(gw_prom_error(p), 0);
    char *text = gw_prom_take(p, NULL);
    gw_prom_free(p);
    assert_non_null(text);
    return text;
}

static size_t count_lines(const char *text, const char *prefix)
{
    size_t n = 0, len = strlen(prefix);
    for (const char *s = text; s != NULL && *s != '\0'; s = strchr(s, '\n'), s = s ? s + 1 : s)
        n += strncmp(s, prefix, len) == 0;
    return n;
}

static void hmetrics_class_of_each_status(void **state)
{
    (void)state;
    static const struct {
        unsigned status;
        int cls;
    } table[] = {
        {0, -1},  {100, -1}, {101, -1}, {199, -1}, {200, 0}, {204, 0}, {299, 0},
        {300, 1}, {304, 1},  {399, 1},  {400, 2},  {404, 2}, {429, 2}, {499, 2},
        {500, 3}, {502, 3},  {599, 3},  {600, 3},  {999, 3},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (gw_hmetrics_class(table[i].status) != table[i].cls)
            fail_msg("status %u: class %d, want %d", table[i].status,
                     gw_hmetrics_class(table[i].status), table[i].cls);
    }
    assert_string_equal(gw_hmetrics_class_name(0), "2xx");
    assert_string_equal(gw_hmetrics_class_name(3), "5xx");
    assert_string_equal(gw_hmetrics_class_name(-1), "");
    assert_string_equal(gw_hmetrics_class_name(4), "");
}

/* Every (listener, route) and (upstream, backend) has a slot of its own, "no route" one per
 * listener, and the slots cover 0 .. n - 1 exactly once. */
static void hmetrics_slots_are_distinct_and_dense(void **state)
{
    (void)state;
    gw_hmetrics_t *m = gw_hmetrics_new(&cfg, 2);
    assert_non_null(m);
    /* web: 2 routes + no route; raw (tcp): no route only; admin: 1 route + no route */
    assert_int_equal(m->nroutes, 3 + 1 + 2);
    assert_int_equal(m->nbackends, 3);
    bool seen[6] = {false};
    size_t routes[] = {2, 0, 1};
    for (size_t l = 0; l < 3; l++)
        for (size_t r = 0; r <= routes[l]; r++) {
            size_t s = gw_hmetrics_route_slot(m, l, r < routes[l] ? r : GW_HMETRICS_NO_ROUTE);
            assert_true(s < m->nroutes);
            assert_false(seen[s]);
            seen[s] = true;
        }
    bool bseen[3] = {false};
    size_t backends[] = {2, 1};
    for (size_t u = 0; u < 2; u++)
        for (size_t b = 0; b < backends[u]; b++) {
            size_t s = gw_hmetrics_backend_slot(m, u, b);
            assert_true(s < m->nbackends);
            assert_false(bseen[s]);
            bseen[s] = true;
        }
    /* Same route name on two listeners: two slots. */
    assert_int_not_equal(gw_hmetrics_route_slot(m, 0, 0), gw_hmetrics_route_slot(m, 2, 0));
    gw_hmetrics_free(m);
}

/* What two workers record is summed into one series per label set, in its own class. */
static void hmetrics_workers_summed_per_series(void **state)
{
    (void)state;
    gw_hmetrics_t *m = gw_hmetrics_new(&cfg, 2);
    assert_non_null(m);
    size_t api = gw_hmetrics_route_slot(m, 0, 0), miss = gw_hmetrics_route_slot(m, 0, SIZE_MAX);
    gw_hmetrics_request(m, 0, api, 200, 50000);    /* 0.00005 s: the first bucket */
    gw_hmetrics_request(m, 1, api, 201, 2000000);  /* 0.002 s */
    gw_hmetrics_request(m, 1, api, 503, 30000000); /* 0.03 s */
    gw_hmetrics_request(m, 0, miss, 404, 100000);  /* no route */
    gw_hmetrics_request(m, 0, api, 101, 100000);   /* no class: not recorded */
    gw_hmetrics_upstream_response(m, 0, gw_hmetrics_backend_slot(m, 0, 1), 200);
    gw_hmetrics_upstream_response(m, 1, gw_hmetrics_backend_slot(m, 0, 1), 204);
    gw_hmetrics_upstream_response(m, 1, gw_hmetrics_backend_slot(m, 1, 0), 500);
    gw_hmetrics_rate_limited(m, 0, gw_hmetrics_route_slot(m, 2, 0));
    gw_hmetrics_rate_limited(m, 1, gw_hmetrics_route_slot(m, 2, 0));
    char *t = scrape(m);
    const char *api2 = "gw_http_request_duration_seconds_count{listener=\"web\",route=\"api\","
                       "class=\"2xx\"} 2\n";
    gw_assert_contains(t, api2);
    gw_assert_contains(t, "gw_http_request_duration_seconds_bucket{listener=\"web\",route=\"api\","
                          "class=\"2xx\",le=\"0.0001\"} 1\n");
    gw_assert_contains(t, "gw_http_request_duration_seconds_sum{listener=\"web\",route=\"api\","
                          "class=\"2xx\"} 0.00205\n");
    gw_assert_contains(t, "gw_http_request_duration_seconds_count{listener=\"web\",route=\"api\","
                          "class=\"5xx\"} 1\n");
    gw_assert_contains(t, "gw_http_request_duration_seconds_count{listener=\"web\",route=\"api\","
                          "class=\"3xx\"} 0\n");
    gw_assert_contains(t, "gw_http_request_duration_seconds_count{listener=\"web\",route=\"\","
                          "class=\"4xx\"} 1\n");
    gw_assert_contains(t, "gw_http_request_duration_seconds_count{listener=\"admin\",route=\"api\","
                          "class=\"2xx\"} 0\n");
    gw_assert_contains(t, "gw_http_upstream_responses_total{upstream=\"app\",backend="
                          "\"127.0.0.1:19002\",class=\"2xx\"} 2\n");
    gw_assert_contains(t, "gw_http_upstream_responses_total{upstream=\"app\",backend="
                          "\"127.0.0.1:19001\",class=\"2xx\"} 0\n");
    gw_assert_contains(t, "gw_http_upstream_responses_total{upstream=\"files\",backend="
                          "\"127.0.0.1:19003\",class=\"5xx\"} 1\n");
    gw_assert_contains(t, "gw_http_rate_limited_total{listener=\"admin\",route=\"api\"} 2\n");
    gw_assert_contains(t, "gw_http_rate_limited_total{listener=\"web\",route=\"api\"} 0\n");
    gw_assert_contains(t, "gw_http_rate_limited_total{listener=\"web\",route=\"route 1\"} 0\n");
    free(t);
    gw_hmetrics_free(m);
}

/* The series are exactly those the config names: routes x classes per http listener (with
 * "no route"), none for the tcp listener; backends x classes; routes for rate limits. */
static void hmetrics_series_come_from_the_config_only(void **state)
{
    (void)state;
    gw_hmetrics_t *m = gw_hmetrics_new(&cfg, 1);
    assert_non_null(m);
    char *t = scrape(m);
    /* web: 3 route series (api, route 1, ""), admin: 2 (api, ""); 4 classes each */
    assert_int_equal(count_lines(t, "gw_http_request_duration_seconds_count{"), (3 + 2) * 4);
    assert_int_equal(count_lines(t, "gw_http_request_duration_seconds_count{listener=\"raw\""), 0);
    assert_int_equal(count_lines(t, "gw_http_upstream_responses_total{"), 3 * 4);
    assert_int_equal(count_lines(t, "gw_http_rate_limited_total{"), 3);
    assert_int_equal(count_lines(t, "gw_http_rate_limited_total{listener=\"web\",route=\"\""), 0);
    free(t);
    gw_hmetrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hmetrics_class_of_each_status),
        cmocka_unit_test(hmetrics_slots_are_distinct_and_dense),
        cmocka_unit_test(hmetrics_workers_summed_per_series),
        cmocka_unit_test(hmetrics_series_come_from_the_config_only),
    };
    return cmocka_run_group_tests_name("hmetrics", tests, setup, teardown);
}
