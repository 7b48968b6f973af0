/* test_mw_cors.c - the pure middleware pieces: CORS preflight and decoration, the weighted
 * traffic split (proportions and stickiness), and the JSON access log line. */
#include "gwtest.h"

#include <jansson.h>
#include <string.h>

#include "04-http/accesslog.h"
#include "04-http/mw_cors.h"
#include "04-http/mw_split.h"
#include "error.h"

static const char *const ORIGINS[] = {"https://app.example", "https://admin.example"};

static gw_cors_policy_t policy(bool any, bool cred)
{
    return (gw_cors_policy_t){ORIGINS,   2,    any, "GET, POST, PUT", "Content-Type, X-Token",
                              "X-Total", cred, 600};
}

/* A request head with METHOD and up to 3 name/value pairs. */
static void mkreq(gw_h1_head_t *h, const char *method, const char *const *kv)
{
    gw_h1_head_init(h, true, 4096, 32);
    assert_int_equal(gw_h1_head_set_method(h, method, strlen(method)), 0);
    assert_int_equal(gw_h1_head_set_target(h, "/x", 2), 0);
    for (size_t i = 0; kv && kv[i]; i += 2)
        assert_int_equal(gw_h1_head_add(h, kv[i], strlen(kv[i]), kv[i + 1], strlen(kv[i + 1])), 0);
}

/* The value of NAME in H as a NUL-terminated string in BUF, or NULL. */
static const char *val(const gw_h1_head_t *h, const char *name, char *buf, size_t cap)
{
    gw_h1_span_t v;
    if (!gw_h1_head_get(h, name, &v) || v.len >= cap)
        return NULL;
    memcpy(buf, v.ptr, v.len);
    buf[v.len] = '\0';
    return buf;
}

/* Runs a preflight from ORIGIN asking METHOD and HEADERS (NULL: none). */
static gw_cors_verdict_t preflight(const gw_cors_policy_t *p, const char *origin,
                                   const char *method, const char *headers, gw_h1_head_t *resp)
{
    const char *kv[] = {"Origin",
                        origin,
                        "Access-Control-Request-Method",
                        method,
                        headers ? "Access-Control-Request-Headers" : NULL,
                        headers,
                        NULL};
    gw_h1_head_t req;
    gw_cors_verdict_t v;
    mkreq(&req, "OPTIONS", kv);
    gw_h1_head_init(resp, false, 4096, 32);
    assert_int_equal(gw_cors_preflight(p, &req, resp, &v, NULL), 0);
    gw_h1_head_free(&req);
    return v;
}

static void cors_preflight_allows_listed_origin(void **state)
{
    (void)state;
    gw_cors_policy_t p = policy(false, false);
    gw_h1_head_t resp;
    char b[128];
    assert_int_equal(preflight(&p, "https://app.example", "PUT", "x-token", &resp),
                     GW_CORS_ALLOWED);
    assert_int_equal(resp.status, 204);
    assert_string_equal(val(&resp, "Access-Control-Allow-Origin", b, sizeof b),
                        "https://app.example");
    assert_string_equal(val(&resp, "Access-Control-Allow-Methods", b, sizeof b), "GET, POST, PUT");
    assert_string_equal(val(&resp, "Access-Control-Allow-Headers", b, sizeof b), "x-token");
    assert_string_equal(val(&resp, "Access-Control-Max-Age", b, sizeof b), "600");
    assert_string_equal(val(&resp, "Vary", b, sizeof b), "Origin");
    assert_null(val(&resp, "Access-Control-Allow-Credentials", b, sizeof b));
    gw_h1_head_free(&resp);
}

static void cors_preflight_refuses_unlisted_origin(void **state)
{
    (void)state;
    gw_cors_policy_t p = policy(false, false);
    gw_h1_head_t resp;
    char b[128];
    assert_int_equal(preflight(&p, "https://evil.example", "GET", NULL, &resp), GW_CORS_REFUSED);
    assert_int_equal(resp.status, 403);
    assert_null(val(&resp, "Access-Control-Allow-Origin", b, sizeof b));
    gw_h1_head_free(&resp);
}

static void cors_preflight_refuses_unlisted_method(void **state)
{
    (void)state;
    gw_cors_policy_t p = policy(false, false);
    gw_h1_head_t resp;
    assert_int_equal(preflight(&p, "https://app.example", "DELETE", NULL, &resp), GW_CORS_REFUSED);
    gw_h1_head_free(&resp);
    /* methods are case-sensitive: "put" is not "PUT" */
    assert_int_equal(preflight(&p, "https://app.example", "put", NULL, &resp), GW_CORS_REFUSED);
    gw_h1_head_free(&resp);
}

static void cors_preflight_refuses_unlisted_header(void **state)
{
    (void)state;
    gw_cors_policy_t p = policy(false, false);
    gw_h1_head_t resp;
    assert_int_equal(preflight(&p, "https://app.example", "GET", "content-type, X-Secret", &resp),
                     GW_CORS_REFUSED);
    gw_h1_head_free(&resp);
}

static void cors_preflight_ignores_plain_options(void **state)
{
    (void)state;
    gw_cors_policy_t p = policy(true, false);
    const char *kv[] = {"Origin", "https://app.example", NULL};
    gw_h1_head_t req, resp;
    gw_cors_verdict_t v;
    mkreq(&req, "OPTIONS", kv);
    gw_h1_head_init(&resp, false, 4096, 32);
    assert_int_equal(gw_cors_preflight(&p, &req, &resp, &v, NULL), 0);
    assert_int_equal(v, GW_CORS_NOT_PREFLIGHT);
    assert_int_equal(gw_h1_head_count(&resp), 0);
    gw_h1_head_free(&req);
    gw_h1_head_free(&resp);
}

static void cors_wildcard_without_credentials_answers_star(void **state)
{
    (void)state;
    gw_cors_policy_t p = policy(true, false);
    gw_h1_head_t resp;
    char b[128];
    assert_int_equal(preflight(&p, "https://anyone.example", "GET", NULL, &resp), GW_CORS_ALLOWED);
    assert_string_equal(val(&resp, "Access-Control-Allow-Origin", b, sizeof b), "*");
    assert_null(val(&resp, "Vary", b, sizeof b)); /* "*" does not depend on the origin */
    gw_h1_head_free(&resp);
}

static void cors_wildcard_with_credentials_echoes_listed_only(void **state)
{
    (void)state;
    gw_cors_policy_t p = policy(true, true);
    gw_h1_head_t resp;
    char b[128];
    assert_int_equal(preflight(&p, "https://admin.example", "GET", NULL, &resp), GW_CORS_ALLOWED);
    assert_string_equal(val(&resp, "Access-Control-Allow-Origin", b, sizeof b),
                        "https://admin.example");
    assert_string_equal(val(&resp, "Access-Control-Allow-Credentials", b, sizeof b), "true");
    gw_h1_head_free(&resp);
    assert_int_equal(preflight(&p, "https://anyone.example", "GET", NULL, &resp), GW_CORS_REFUSED);
    gw_h1_head_free(&resp);
}

static void cors_decorate_echoes_origin_and_adds_vary(void **state)
{
    (void)state;
    gw_cors_policy_t p = policy(false, true);
    const char *kv[] = {"Origin", "https://app.example", NULL};
    gw_h1_head_t req, resp;
    char b[128];
    mkreq(&req, "GET", kv);
    gw_h1_head_init(&resp, false, 4096, 32);
    gw_h1_head_set_status(&resp, 200, "OK", 2);
    gw_h1_head_add(&resp, "Vary", 4, "Accept-Encoding", 15);
    gw_h1_head_add(&resp, "Access-Control-Allow-Origin", 27, "*", 1); /* upstream's: dropped */
    assert_int_equal(gw_cors_decorate(&p, &req, &resp), 0);
    assert_string_equal(val(&resp, "Access-Control-Allow-Origin", b, sizeof b),
                        "https://app.example");
    assert_int_equal(gw_h1_head_find(&resp, "Access-Control-Allow-Origin", 0) >= 0, 1);
    assert_int_equal(gw_h1_head_remove(&resp, "Access-Control-Allow-Origin"), 1);
    assert_string_equal(val(&resp, "Access-Control-Allow-Credentials", b, sizeof b), "true");
    assert_string_equal(val(&resp, "Access-Control-Expose-Headers", b, sizeof b), "X-Total");
    assert_int_equal(gw_h1_head_remove(&resp, "Vary"), 2); /* Accept-Encoding + Origin */
    gw_h1_head_free(&req);
    gw_h1_head_free(&resp);
}

static void cors_decorate_unlisted_origin_gets_vary_only(void **state)
{
    (void)state;
    gw_cors_policy_t p = policy(false, false);
    const char *kv[] = {"Origin", "https://evil.example", NULL};
    gw_h1_head_t req, resp;
    char b[128];
    mkreq(&req, "GET", kv);
    gw_h1_head_init(&resp, false, 4096, 32);
    gw_h1_head_set_status(&resp, 200, "OK", 2);
    gw_h1_head_add(&resp, "Vary", 4, "origin", 6); /* already there, any case: not repeated */
    assert_int_equal(gw_cors_decorate(&p, &req, &resp), 0);
    assert_null(val(&resp, "Access-Control-Allow-Origin", b, sizeof b));
    assert_int_equal(gw_h1_head_remove(&resp, "Vary"), 1);
    gw_h1_head_free(&req);
    gw_h1_head_free(&resp);
}

/* ---- split ---- */

static uint32_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (uint32_t)(*s >> 32);
}

/* Percentage of 100,000 seeded draws that land on target 1 of the split A/B. */
static double share_of_second(unsigned a, unsigned b)
{
    gw_split_target_t t[] = {{"stable", a}, {"canary", b}};
    gw_split_t s;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    unsigned hits = 0;
    assert_int_equal(gw_split_init(&s, t, 2), 0);
    for (int i = 0; i < 100000; i++)
        hits += gw_split_pick(&s, xorshift(&seed)) == 1;
    return hits / 1000.0;
}

static void split_canary_proportion_within_half_point(void **state)
{
    (void)state;
    double p = share_of_second(95, 5);
    assert_true(p > 4.5 && p < 5.5);
}

static void split_ab_proportion_within_half_point(void **state)
{
    (void)state;
    double p = share_of_second(50, 50);
    assert_true(p > 49.5 && p < 50.5);
}

static void split_zero_weight_never_chosen(void **state)
{
    (void)state;
    gw_split_target_t t[] = {{"a", 0}, {"b", 100}};
    gw_split_t s;
    assert_int_equal(gw_split_init(&s, t, 2), 0);
    assert_int_equal(gw_split_pick(&s, 0), 1);
    assert_int_equal(gw_split_pick(&s, UINT32_MAX), 1);
}

static void split_init_rejects_bad_weights(void **state)
{
    (void)state;
    gw_split_target_t zero[] = {{"a", 0}, {"b", 0}}, big[] = {{"a", 101}};
    gw_split_t s = {0};
    assert_int_equal(gw_split_init(&s, zero, 2), GW_EINVAL);
    assert_int_equal(gw_split_init(&s, big, 1), GW_EINVAL);
    assert_int_equal(gw_split_init(&s, zero, 0), GW_EINVAL);
    assert_null(s.t);
}

static void split_sticky_header_same_value_same_side(void **state)
{
    (void)state;
    gw_split_target_t t[] = {{"a", 50}, {"b", 50}};
    gw_split_t s;
    char user[32];
    unsigned seen[2] = {0, 0};
    assert_int_equal(gw_split_init(&s, t, 2), 0);
    for (int u = 0; u < 200; u++) {
        snprintf(user, sizeof user, "user-%d", u);
        const char *kv[] = {"X-User", user, NULL};
        gw_h1_head_t req;
        mkreq(&req, "GET", kv);
        size_t first = gw_split_pick_request(&s, &req, GW_SPLIT_BY_HEADER, "x-user", 0);
        for (uint32_t r = 1; r < 20; r++) /* the random draw must not matter */
            assert_int_equal(
                gw_split_pick_request(&s, &req, GW_SPLIT_BY_HEADER, "x-user", r * 0x10000001u),
                first);
        seen[first]++;
        gw_h1_head_free(&req);
    }
    assert_true(seen[0] > 60 && seen[1] > 60); /* and users do spread over both sides */
}

static void split_cookie_parses_several_with_spaces(void **state)
{
    (void)state;
    const char *c = "theme=dark;  sid = abc123 ;sidx=no; last=1";
    gw_h1_span_t v;
    assert_true(gw_split_cookie(c, strlen(c), "sid", &v));
    assert_int_equal(v.len, 6);
    assert_memory_equal(v.ptr, "abc123", 6);
    assert_true(gw_split_cookie(c, strlen(c), "last", &v));
    assert_memory_equal(v.ptr, "1", 1);
    assert_false(gw_split_cookie(c, strlen(c), "si", &v));
    assert_false(gw_split_cookie(c, 10, "sid", &v)); /* only LEN bytes are read */
    assert_false(gw_split_cookie("", 0, "sid", &v));
}

static void split_sticky_cookie_same_value_same_side(void **state)
{
    (void)state;
    gw_split_target_t t[] = {{"a", 50}, {"b", 50}};
    gw_split_t s;
    assert_int_equal(gw_split_init(&s, t, 2), 0);
    const char *kv1[] = {"Cookie", "a=1; sid=user-7; b=2", NULL};
    const char *kv2[] = {"Cookie", "x=9", "Cookie", "sid=user-7", NULL};
    gw_h1_head_t r1, r2;
    mkreq(&r1, "GET", kv1);
    mkreq(&r2, "GET", kv2);
    size_t side = gw_split_pick_key(&s, "user-7", 6);
    for (uint32_t r = 0; r < 50; r++) {
        assert_int_equal(gw_split_pick_request(&s, &r1, GW_SPLIT_BY_COOKIE, "sid", r * 85899345u),
                         side);
        assert_int_equal(gw_split_pick_request(&s, &r2, GW_SPLIT_BY_COOKIE, "sid", r * 85899345u),
                         side);
    }
    gw_h1_head_free(&r1);
    gw_h1_head_free(&r2);
}

/* A sticky split must keep each user on its side across releases (a canary user who moved
 * would see the other version). So the side of each key is pinned, not only its stickiness:
 * computed before the split's hash moved to common/hash.h. */
static void split_sticky_sides_are_pinned(void **state)
{
    (void)state;
    gw_split_target_t t[] = {{"a", 30}, {"b", 30}, {"c", 40}};
    gw_split_t s;
    char user[32];
    assert_int_equal(gw_split_init(&s, t, 3), 0);
    static const size_t side[24] = {2, 2, 1, 2, 2, 0, 2, 1, 2, 1, 2, 0,
                                    0, 1, 0, 1, 1, 2, 1, 1, 1, 2, 2, 2};
    for (int u = 0; u < 24; u++) {
        snprintf(user, sizeof user, "user-%d", u);
        assert_int_equal(gw_split_pick_key(&s, user, strlen(user)), side[u]);
    }
    assert_int_equal(gw_split_pick_key(&s, "", 0), 1);
}

/* ---- access log ---- */

static gw_alog_rec_t sample(void)
{
    gw_alog_rec_t r = {0};
    r.time_ms = 1795324965123; /* 2026-11-22T05:22:45.123Z */
    r.request_id = gw_alog_cstr("req-1");
    r.client = gw_alog_cstr("192.0.2.7:5123");
    r.method = gw_alog_cstr("GET");
    r.path = (gw_alog_str_t){"/a\"b\nc\xff", 7};
    r.status = 200;
    r.bytes_in = 321;
    r.bytes_out = 4567;
    r.upstream = gw_alog_cstr("api");
    r.backend = gw_alog_cstr("10.0.0.2:8080");
    r.latency_us = 1234;
    r.route = gw_alog_cstr("api-v1");
    return r;
}

static void accesslog_line_parses_back_as_json(void **state)
{
    (void)state;
    gw_alog_rec_t r = sample();
    char buf[1024];
    long n = gw_alog_format(&r, buf, sizeof buf);
    assert_true(n > 0);
    assert_int_equal(buf[n - 1], '\n');
    assert_null(memchr(buf, '\n', (size_t)n - 1)); /* exactly one line */
    json_error_t err;
    json_t *j = json_loadb(buf, (size_t)n, 0, &err);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "time")), "2026-11-22T05:22:45.123Z");
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), "req-1");
    assert_string_equal(json_string_value(json_object_get(j, "client")), "192.0.2.7:5123");
    assert_string_equal(json_string_value(json_object_get(j, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/a\"b\nc\xc3\xbf");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 200);
    assert_int_equal(json_integer_value(json_object_get(j, "bytes_in")), 321);
    assert_int_equal(json_integer_value(json_object_get(j, "bytes_out")), 4567);
    assert_string_equal(json_string_value(json_object_get(j, "upstream")), "api");
    assert_string_equal(json_string_value(json_object_get(j, "backend")), "10.0.0.2:8080");
    assert_true(json_is_real(json_object_get(j, "latency_ms")));
    assert_non_null(strstr(buf, "\"latency_ms\":1.234,"));
    assert_string_equal(json_string_value(json_object_get(j, "route")), "api-v1");
    assert_true(json_is_null(json_object_get(j, "end"))); /* absent: it completed */
    json_decref(j);
}

static void accesslog_end_says_why_it_was_cut(void **state)
{
    (void)state;
    gw_alog_rec_t r = sample();
    r.end = gw_alog_cstr("upstream_eof");
    char buf[1024];
    long n = gw_alog_format(&r, buf, sizeof buf);
    assert_true(n > 0);
    assert_non_null(strstr(buf, ",\"route\":\"api-v1\",\"end\":\"upstream_eof\"}\n"));
}

static void accesslog_escapes_to_ascii(void **state)
{
    (void)state;
    gw_alog_rec_t r = sample();
    char buf[1024];
    long n = gw_alog_format(&r, buf, sizeof buf);
    assert_true(n > 0);
    for (long i = 0; i < n - 1; i++)
        assert_true((unsigned char)buf[i] >= 0x20 && (unsigned char)buf[i] < 0x7f);
    assert_non_null(strstr(buf, "\"path\":\"/a\\\"b\\u000ac\\u00ff\""));
}

static void accesslog_absent_string_is_null(void **state)
{
    (void)state;
    gw_alog_rec_t r = sample();
    char buf[1024];
    r.backend = gw_alog_cstr(NULL);
    r.time_ms = 0;
    r.latency_us = 7;
    assert_true(gw_alog_format(&r, buf, sizeof buf) > 0);
    assert_non_null(strstr(buf, "\"backend\":null"));
    assert_non_null(strstr(buf, "\"time\":\"1970-01-01T00:00:00.000Z\""));
    assert_non_null(strstr(buf, "\"latency_ms\":0.007,"));
}

static void accesslog_respects_cap(void **state)
{
    (void)state;
    gw_alog_rec_t r = sample();
    char buf[1024];
    long n = gw_alog_format(&r, buf, sizeof buf);
    assert_true(n > 0);
    char small[1024];
    assert_int_equal(gw_alog_format(&r, small, (size_t)n), GW_ELIMIT); /* no room for NUL */
    assert_int_equal(gw_alog_format(&r, small, (size_t)n + 1), n);
    assert_int_equal(gw_alog_format(&r, small, 0), GW_ELIMIT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cors_preflight_allows_listed_origin),
        cmocka_unit_test(cors_preflight_refuses_unlisted_origin),
        cmocka_unit_test(cors_preflight_refuses_unlisted_method),
        cmocka_unit_test(cors_preflight_refuses_unlisted_header),
        cmocka_unit_test(cors_preflight_ignores_plain_options),
        cmocka_unit_test(cors_wildcard_without_credentials_answers_star),
        cmocka_unit_test(cors_wildcard_with_credentials_echoes_listed_only),
        cmocka_unit_test(cors_decorate_echoes_origin_and_adds_vary),
        cmocka_unit_test(cors_decorate_unlisted_origin_gets_vary_only),
        cmocka_unit_test(split_canary_proportion_within_half_point),
        cmocka_unit_test(split_ab_proportion_within_half_point),
        cmocka_unit_test(split_zero_weight_never_chosen),
        cmocka_unit_test(split_init_rejects_bad_weights),
        cmocka_unit_test(split_sticky_header_same_value_same_side),
        cmocka_unit_test(split_cookie_parses_several_with_spaces),
        cmocka_unit_test(split_sticky_cookie_same_value_same_side),
        cmocka_unit_test(split_sticky_sides_are_pinned),
        cmocka_unit_test(accesslog_line_parses_back_as_json),
        cmocka_unit_test(accesslog_end_says_why_it_was_cut),
        cmocka_unit_test(accesslog_escapes_to_ascii),
        cmocka_unit_test(accesslog_absent_string_is_null),
        cmocka_unit_test(accesslog_respects_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
