/* test_hmetrics.c - the HTTP engine's labelled metrics (hmetrics.h): the class of a status,
 * the series of routes and backends a generation names (every label from the config, none
 * from a request), per-worker recording summed at scrape time, the exposition, and what a
 * reload does to them: route series carried by name, backend counts with the backend. */
#include "gwtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "04-http/hmetrics.h"
#include "04-http/httpcfg.h"
#include "addr.h"

static gw_config_t cfg;
static gw_hmetrics_t *m;
static gw_hmetrics_gen_t *view;

/* The backends: each with a level-4 extension of 2 workers' counters, as gw04's hp_bslot_t
 * holds them; the table is built by hand, as 02's gw_lb_build would list them. */
#define NW 2
static const gw_backend_exts_t exts = {.size = {[4] = NW * sizeof(gw_hmetrics_backend_t)}};

static const gw_hmetrics_backend_t *counters_of(const gw_backend_t *b, unsigned w)
{
    return &((const gw_hmetrics_backend_t *)b->ext[4])[w];
}

static gw_hmetrics_backend_t *bc(gw_backend_t *b, unsigned w)
{
    return &((gw_hmetrics_backend_t *)b->ext[4])[w];
}

static gw_backend_t *backend(const char *up, const char *addr)
{
    gw_addr_t a;
    const char *why = NULL;
    assert_int_equal(gw_addr_parse(addr, false, false, &a, &why), 0);
    gw_backend_t *b = gw_backend_new(up, &a, &exts);
    assert_non_null(b);
    return b;
}

/* A table of upstream cfgs UPS[0..n) whose upstream I lists NB[I] backends from BS. */
typedef struct {
    gw_lb_table_t t;
    gw_lb_upstream_t ups[2];
    gw_lb_member_t m[2][3];
} table_t;

static void table_init(table_t *tb, const gw_upstream_cfg_t *ups, size_t n, gw_backend_t *bs[][3],
                       const size_t *nb)
{
    memset(tb, 0, sizeof *tb);
    tb->t.ups = tb->ups;
    tb->t.n = n;
    for (size_t u = 0; u < n; u++) {
        tb->ups[u].cfg = &ups[u];
        tb->ups[u].pos = u;
        tb->ups[u].m = tb->m[u];
        tb->ups[u].n = nb[u];
        for (size_t i = 0; i < nb[u]; i++) {
            gw_backend_member_init(&tb->m[u][i], bs[u][i], 1, NULL);
            tb->m[u][i].up = &tb->ups[u];
            tb->m[u][i].pos = i;
        }
    }
}

/* The config's backends (app: 19001, 19002; files: 19003) and their table. */
static gw_backend_t *cb[2][3];
static table_t tab;

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
    if (rc != 0)
        return rc;
    m = gw_hmetrics_new(NW, counters_of);
    view = m != NULL ? gw_hmetrics_gen_new(m, &cfg) : NULL;
    if (view == NULL)
        return -1;
    cb[0][0] = backend("app", "127.0.0.1:19001");
    cb[0][1] = backend("app", "127.0.0.1:19002");
    cb[1][0] = backend("files", "127.0.0.1:19003");
    size_t nb[] = {2, 1};
    table_init(&tab, cfg.upstreams, 2, cb, nb);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    gw_hmetrics_gen_free(m, view);
    gw_hmetrics_free(m);
    for (size_t u = 0; u < 2; u++)
        for (size_t i = 0; i < 3; i++) {
            gw_backend_free(cb[u][i]);
            cb[u][i] = NULL;
        }
    gw_config_free(&cfg, &gw_http_config_ext);
    return 0;
}

/* The exposition of view V and table T (freed by the caller). */
static char *scrape_of(const gw_hmetrics_gen_t *v, const gw_lb_table_t *t)
{
    gw_prom_t *p = gw_prom_new(0);
    assert_non_null(p);
    gw_hmetrics_write(m, v, t, p);
    assert_int_equal(gw_prom_error(p), 0);
    char *text = gw_prom_take(p, NULL);
    gw_prom_free(p);
    assert_non_null(text);
    return text;
}

static char *scrape(void)
{
    return scrape_of(view, &tab.t);
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

/* Every (listener, route) has a series of its own, "no route" one per http listener; a tcp
 * listener has none; the same route name on two listeners is two series. */
static void hmetrics_series_are_distinct(void **state)
{
    (void)state;
    /* web: 2 routes + no route; raw (tcp): none; admin: 1 route + no route */
    assert_int_equal(gw_kcount_count(m->routes), 3 + 2);
    assert_null(view->routes[1]);
    gw_hm_series_t *all[] = {gw_hmetrics_route(view, 0, 0), gw_hmetrics_route(view, 0, 1),
                             gw_hmetrics_route(view, 0, GW_HMETRICS_NO_ROUTE),
                             gw_hmetrics_route(view, 2, 0),
                             gw_hmetrics_route(view, 2, GW_HMETRICS_NO_ROUTE)};
    for (size_t i = 0; i < 5; i++) {
        assert_non_null(all[i]);
        for (size_t j = 0; j < i; j++)
            assert_ptr_not_equal(all[i], all[j]);
    }
    assert_string_equal(all[3]->k1, "admin");
    assert_string_equal(all[3]->k2, "api");
    assert_null(all[4]->k2); /* "no route" is a key of its own */
    /* A second view of the same config shares every series. */
    gw_hmetrics_gen_t *again = gw_hmetrics_gen_new(m, &cfg);
    assert_non_null(again);
    assert_ptr_equal(gw_hmetrics_route(again, 0, 1), all[1]);
    assert_int_equal(gw_kcount_count(m->routes), 5);
    gw_hmetrics_gen_free(m, again);
    assert_int_equal(gw_kcount_count(m->routes), 5);
}

/* What two workers record is summed into one series per label set, in its own class. */
static void hmetrics_workers_summed_per_series(void **state)
{
    (void)state;
    gw_hm_series_t *api = gw_hmetrics_route(view, 0, 0),
                   *miss = gw_hmetrics_route(view, 0, GW_HMETRICS_NO_ROUTE);
    gw_hmetrics_request(api, 0, 200, 50000);    /* 0.00005 s: the first bucket */
    gw_hmetrics_request(api, 1, 201, 2000000);  /* 0.002 s */
    gw_hmetrics_request(api, 1, 503, 30000000); /* 0.03 s */
    gw_hmetrics_request(miss, 0, 404, 100000);  /* no route */
    gw_hmetrics_request(api, 0, 101, 100000);   /* no class: not recorded */
    gw_hmetrics_upstream_response(bc(cb[0][1], 0), 200);
    gw_hmetrics_upstream_response(bc(cb[0][1], 1), 204);
    gw_hmetrics_upstream_response(bc(cb[1][0], 1), 500);
    gw_hmetrics_upstream_response(bc(cb[1][0], 1), 100); /* no class */
    gw_hmetrics_rate_limited(gw_hmetrics_route(view, 2, 0), 0);
    gw_hmetrics_rate_limited(gw_hmetrics_route(view, 2, 0), 1);
    char *t = scrape();
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
}

/* The series are exactly those the generation names: routes x classes per http listener
 * (with "no route"), none for the tcp listener; backends x classes; routes for rate limits. */
static void hmetrics_series_come_from_the_config_only(void **state)
{
    (void)state;
    char *t = scrape();
    /* web: 3 route series (api, route 1, ""), admin: 2 (api, ""); 4 classes each */
    assert_int_equal(count_lines(t, "gw_http_request_duration_seconds_count{"), (3 + 2) * 4);
    assert_int_equal(count_lines(t, "gw_http_request_duration_seconds_count{listener=\"raw\""), 0);
    assert_int_equal(count_lines(t, "gw_http_upstream_responses_total{"), 3 * 4);
    assert_int_equal(count_lines(t, "gw_http_rate_limited_total{"), 3);
    assert_int_equal(count_lines(t, "gw_http_rate_limited_total{listener=\"web\",route=\"\""), 0);
    free(t);
}

/* A reload's config: web has a new route first (api moves from 0 to 1) and loses "route 1";
 * admin is gone; "app" loses 19001, keeps 19002 (now first) and gains 19004. */
static const char *const reload_text = "workers: 2\n"
                                       "listeners:\n"
                                       "  - name: web\n"
                                       "    address: 127.0.0.1:18080\n"
                                       "    protocol: http\n"
                                       "    routes:\n"
                                       "      - name: new\n"
                                       "        match: {path_prefix: /new}\n"
                                       "        upstream: app\n"
                                       "      - name: api\n"
                                       "        match: {path_prefix: /api}\n"
                                       "        upstream: app\n"
                                       "upstreams:\n"
                                       "  app:\n"
                                       "    backends:\n"
                                       "      - address: 127.0.0.1:19002\n"
                                       "      - address: 127.0.0.1:19004\n";

static int load_reload(gw_config_t *c2)
{
    return gw_config_load_string("r.yaml", reload_text, &gw_http_config_ext, c2, NULL);
}

/* Route series are carried by (listener name, route name): the count of web/api survives a
 * reload that moves it, exactly; routes the new generation lacks leave the scrape once the
 * old generation is freed, and their series are freed. (Fails if a view made fresh series,
 * or if the old view's series were indexed by position: api was route 0, is route 1.) */
static void hmetrics_route_counts_carried_by_name(void **state)
{
    (void)state;
    gw_hmetrics_request(gw_hmetrics_route(view, 0, 0), 0, 200, 1000);
    gw_hmetrics_request(gw_hmetrics_route(view, 0, 0), 1, 200, 1000);
    gw_hmetrics_rate_limited(gw_hmetrics_route(view, 0, 0), 1);
    gw_hmetrics_request(gw_hmetrics_route(view, 0, 1), 0, 200, 1000); /* route 1: removed */
    gw_config_t c2;
    assert_int_equal(load_reload(&c2), 0);
    gw_hmetrics_gen_t *v2 = gw_hmetrics_gen_new(m, &c2);
    assert_non_null(v2);
    assert_ptr_equal(gw_hmetrics_route(v2, 0, 1), gw_hmetrics_route(view, 0, 0));
    /* An exchange still on the old generation counts into the same series. */
    gw_hmetrics_request(gw_hmetrics_route(view, 0, 0), 1, 503, 1000);
    gw_hmetrics_gen_free(m, view); /* the old generation is reclaimed */
    view = v2;
    /* web: new, api, no route */
    assert_int_equal(gw_kcount_count(m->routes), 3);
    char *t = scrape_of(v2, NULL);
    gw_assert_contains(t, "gw_http_request_duration_seconds_count{listener=\"web\",route=\"api\","
                          "class=\"2xx\"} 2\n");
    gw_assert_contains(t, "gw_http_request_duration_seconds_count{listener=\"web\",route=\"api\","
                          "class=\"5xx\"} 1\n");
    gw_assert_contains(t, "gw_http_rate_limited_total{listener=\"web\",route=\"api\"} 1\n");
    gw_assert_contains(t, "gw_http_request_duration_seconds_count{listener=\"web\",route=\"new\","
                          "class=\"2xx\"} 0\n");
    assert_null(strstr(t, "route 1"));
    assert_null(strstr(t, "admin"));
    free(t);
    gw_hmetrics_gen_free(m, view);
    view = NULL;
    gw_config_free(&c2, &gw_http_config_ext);
}

/* Backend counts live in the backend object: a backend the reload keeps keeps its exact
 * count though it moved (19002: member 1, then member 0), a removed one leaves the scrape
 * (its object drains, and with it its counts), and an added one starts at 0. (Fails if the
 * counts were kept by position in a table: 19002 would show 19001's.) */
static void hmetrics_backend_counts_follow_the_backend_object(void **state)
{
    (void)state;
    gw_hmetrics_upstream_response(bc(cb[0][0], 0), 500); /* 19001: removed by the reload */
    gw_hmetrics_upstream_response(bc(cb[0][1], 0), 200); /* 19002: kept */
    gw_hmetrics_upstream_response(bc(cb[0][1], 1), 200);
    gw_hmetrics_upstream_response(bc(cb[0][1], 1), 404);
    gw_config_t c2;
    assert_int_equal(load_reload(&c2), 0);
    /* The new table lists the kept object first, then a fresh one (02's carry by key). */
    gw_backend_t *fresh = backend("app", "127.0.0.1:19004");
    gw_backend_t *bs2[2][3] = {{cb[0][1], fresh}};
    size_t nb[] = {2};
    table_t t2;
    table_init(&t2, c2.upstreams, 1, bs2, nb);
    gw_hmetrics_upstream_response(bc(cb[0][1], 0), 201); /* after the reload */
    gw_hmetrics_gen_t *v2 = gw_hmetrics_gen_new(m, &c2);
    assert_non_null(v2);
    char *t = scrape_of(v2, &t2.t);
    gw_assert_contains(t, "gw_http_upstream_responses_total{upstream=\"app\",backend="
                          "\"127.0.0.1:19002\",class=\"2xx\"} 3\n");
    gw_assert_contains(t, "gw_http_upstream_responses_total{upstream=\"app\",backend="
                          "\"127.0.0.1:19002\",class=\"4xx\"} 1\n");
    gw_assert_contains(t, "gw_http_upstream_responses_total{upstream=\"app\",backend="
                          "\"127.0.0.1:19004\",class=\"5xx\"} 0\n");
    assert_null(strstr(t, "19001"));
    assert_null(strstr(t, "upstream=\"files\""));
    assert_int_equal(count_lines(t, "gw_http_upstream_responses_total{"), 2 * 4);
    free(t);
    gw_hmetrics_gen_free(m, v2);
    gw_backend_free(fresh);
    gw_config_free(&c2, &gw_http_config_ext);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hmetrics_class_of_each_status),
        cmocka_unit_test_setup_teardown(hmetrics_series_are_distinct, setup, teardown),
        cmocka_unit_test_setup_teardown(hmetrics_workers_summed_per_series, setup, teardown),
        cmocka_unit_test_setup_teardown(hmetrics_series_come_from_the_config_only, setup, teardown),
        cmocka_unit_test_setup_teardown(hmetrics_route_counts_carried_by_name, setup, teardown),
        cmocka_unit_test_setup_teardown(hmetrics_backend_counts_follow_the_backend_object, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("hmetrics", tests, NULL, NULL);
}
