/* test_trailers.c - trailer fields: the names that never cross the proxy, allow-lists, and
 * the filter over a trailer section (the trailer-injection attack of issue 11). */
#include "gwtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "04-http/trailers.h"
#include "error.h"

static void add(gw_h1_head_t *h, const char *name, const char *value)
{
    assert_int_equal(gw_h1_head_add(h, name, strlen(name), value, strlen(value)), 0);
}

/* The trailer section of issue 11: a client with a valid token for alice tries to become
 * admin, forge its address and token, and reframe or reroute the message after the body. */
static void injection_trailers(gw_h1_head_t *t)
{
    gw_h1_head_init(t, true, 16384, 64);
    add(t, "X-User-Id", "admin");
    add(t, "X-Forwarded-For", "10.0.0.1");
    add(t, "Authorization", "Bearer forged");
    add(t, "X-Checksum", "sha256:abc");
    add(t, "Content-Length", "0");
    add(t, "Host", "internal.example");
}

static gw_trailers_allow_t *allow(const char *const *names, size_t n)
{
    gw_trailers_allow_t *a = NULL;
    assert_int_equal(gw_trailers_allow_new(names, n, &a), 0);
    assert_non_null(a);
    return a;
}

/* The names of T, joined by commas, into BUF. */
static const char *names(const gw_h1_head_t *t, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < gw_h1_head_count(t); i++) {
        gw_h1_span_t n = gw_h1_head_name_at(t, i);
        int k = snprintf(buf + o, cap - o, "%s%.*s", i ? "," : "", (int)n.len, n.ptr);
        assert_true(k > 0 && (size_t)k < cap - o);
        o += (size_t)k;
    }
    return buf;
}

#define FORBIDDEN(s) gw_trailers_forbidden((s), strlen(s))

/* ---- forbidden names --------------------------------------------------------------------- */

static void trailers_forbidden_framing_and_routing(void **state)
{
    (void)state;
    assert_string_equal(FORBIDDEN("Content-Length"), "message framing, RFC 9110 6.5.1");
    assert_string_equal(FORBIDDEN("Transfer-Encoding"), "message framing, RFC 9110 6.5.1");
    assert_string_equal(FORBIDDEN("Host"), "routing, RFC 9110 6.5.1");
    assert_string_equal(FORBIDDEN("Trailer"), "hop-by-hop, RFC 9110 7.6.1");
    assert_string_equal(FORBIDDEN("Connection"), "hop-by-hop, RFC 9110 7.6.1");
}

static void trailers_forbidden_authentication(void **state)
{
    (void)state;
    static const char *const auth[] = {
        "Authorization", "Proxy-Authorization", "WWW-Authenticate",   "Proxy-Authenticate",
        "Cookie",        "Set-Cookie",          "Authentication-Info"};
    for (size_t i = 0; i < sizeof(auth) / sizeof(auth[0]); i++) {
        const char *why = FORBIDDEN(auth[i]);
        if (why == NULL || strcmp(why, "authentication, RFC 9110 6.5.1") != 0)
            fail_msg("%s: %s", auth[i], why ? why : "allowed");
    }
}

static void trailers_forbidden_what_the_gateway_sets(void **state)
{
    (void)state;
    assert_string_equal(FORBIDDEN("X-Forwarded-For"), "forwarding, set by the gateway");
    assert_string_equal(FORBIDDEN("X-Forwarded-Port"), "forwarding, set by the gateway");
    assert_string_equal(FORBIDDEN("Forwarded"), "forwarding, set by the gateway");
    assert_string_equal(FORBIDDEN("Via"), "forwarding, set by the gateway");
    assert_string_equal(FORBIDDEN("X-Real-IP"), "forwarding, set by the gateway");
    assert_string_equal(FORBIDDEN("X-Request-ID"), "request id, set by the gateway");
    assert_string_equal(FORBIDDEN("Access-Control-Allow-Origin"), "CORS, decided by the gateway");
}

static void trailers_forbidden_modifiers_controls_and_content(void **state)
{
    (void)state;
    static const char *const names[] = {"Cache-Control",
                                        "Expect",
                                        "Max-Forwards",
                                        "Range",
                                        "If-None-Match",
                                        "If-Match",
                                        "TE",
                                        "Age",
                                        "Expires",
                                        "Location",
                                        "Retry-After",
                                        "Vary",
                                        "Content-Type",
                                        "Content-Range",
                                        "Content-Encoding",
                                        "Proxy",
                                        "Sec-Fetch-Site",
                                        "X-HTTP-Method-Override"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (FORBIDDEN(names[i]) == NULL)
            fail_msg("%s should be forbidden as a trailer", names[i]);
}

static void trailers_forbidden_any_case(void **state)
{
    (void)state;
    assert_non_null(FORBIDDEN("content-length"));
    assert_non_null(FORBIDDEN("HOST"));
    assert_non_null(FORBIDDEN("x-FORWARDED-for"));
    assert_non_null(FORBIDDEN("if-modified-since"));
}

static void trailers_forbidden_respects_length(void **state)
{
    (void)state;
    /* Not NUL-terminated: only the first LEN bytes are the name. */
    assert_non_null(gw_trailers_forbidden("Hostile", 4));
    assert_null(gw_trailers_forbidden("Hostile", 7));
    assert_null(gw_trailers_forbidden("Content-Length", 7)); /* "Content" */
    assert_null(gw_trailers_forbidden("If-", 2));
}

static void trailers_forbidden_spares_real_trailers(void **state)
{
    (void)state;
    static const char *const ok[] = {"X-Checksum",    "Content-Digest", "Repr-Digest", "Digest",
                                     "Server-Timing", "grpc-status",    "grpc-message"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (FORBIDDEN(ok[i]) != NULL)
            fail_msg("%s is a legitimate trailer: %s", ok[i], FORBIDDEN(ok[i]));
}

/* ---- allow-lists ------------------------------------------------------------------------- */

static void trailers_allow_any_case(void **state)
{
    (void)state;
    static const char *const n[] = {"X-Checksum", "grpc-status"};
    gw_trailers_allow_t *a = allow(n, 2);
    assert_true(gw_trailers_allowed(a, "x-checksum", 10));
    assert_true(gw_trailers_allowed(a, "GRPC-STATUS", 11));
    assert_false(gw_trailers_allowed(a, "X-Checksum2", 11));
    assert_false(gw_trailers_allowed(a, "X-Check", 7));
    gw_trailers_allow_free(a);
}

static void trailers_allow_null_and_empty_allow_nothing(void **state)
{
    (void)state;
    gw_trailers_allow_t *a = allow(NULL, 0);
    assert_false(gw_trailers_allowed(a, "X-Checksum", 10));
    assert_false(gw_trailers_allowed(NULL, "X-Checksum", 10));
    assert_int_equal(gw_trailers_allow_count(a), 0);
    assert_int_equal(gw_trailers_allow_count(NULL), 0);
    gw_trailers_allow_free(a);
    gw_trailers_allow_free(NULL);
}

static void trailers_allow_keeps_names_as_given(void **state)
{
    (void)state;
    static const char *const n[] = {"X-Checksum", "content-digest"};
    gw_trailers_allow_t *a = allow(n, 2);
    assert_int_equal(gw_trailers_allow_count(a), 2);
    assert_string_equal(gw_trailers_allow_name(a, 0), "X-Checksum");
    assert_string_equal(gw_trailers_allow_name(a, 1), "content-digest");
    gw_trailers_allow_free(a);
}

static void trailers_allow_refuses_non_tokens(void **state)
{
    (void)state;
    gw_trailers_allow_t *a = NULL;
    static const char *const space[] = {"X-Ok", "X Bad"};
    static const char *const colon[] = {"X:Bad"};
    static const char *const empty[] = {""};
    assert_int_equal(gw_trailers_allow_new(space, 2, &a), GW_EINVAL);
    assert_int_equal(gw_trailers_allow_new(colon, 1, &a), GW_EINVAL);
    assert_int_equal(gw_trailers_allow_new(empty, 1, &a), GW_EINVAL);
    assert_null(a); /* untouched */
}

/* ---- the filter -------------------------------------------------------------------------- */

/* Issue 11: with [X-Checksum] allowed, only X-Checksum reaches the upstream. */
static void trailers_filter_injection_keeps_only_allowed(void **state)
{
    (void)state;
    char buf[256];
    gw_h1_head_t t;
    injection_trailers(&t);
    static const char *const n[] = {"X-Checksum"};
    gw_trailers_allow_t *a = allow(n, 1);
    assert_int_equal(gw_trailers_filter(&t, a, NULL), 5);
    assert_string_equal(names(&t, buf, sizeof buf), "X-Checksum");
    gw_h1_span_t v;
    assert_true(gw_h1_head_get(&t, "X-Checksum", &v));
    assert_int_equal(v.len, 10);
    assert_memory_equal(v.ptr, "sha256:abc", 10);
    gw_trailers_allow_free(a);
    gw_h1_head_free(&t);
}

/* Issue 11 again, with the default: nothing survives. */
static void trailers_filter_injection_default_drops_all(void **state)
{
    (void)state;
    gw_h1_head_t t;
    injection_trailers(&t);
    assert_int_equal(gw_trailers_filter(&t, NULL, NULL), 6);
    assert_int_equal(gw_h1_head_count(&t), 0);
    gw_h1_head_free(&t);
}

static void trailers_filter_empty_list_drops_all(void **state)
{
    (void)state;
    gw_h1_head_t t;
    injection_trailers(&t);
    gw_trailers_allow_t *a = allow(NULL, 0);
    assert_int_equal(gw_trailers_filter(&t, a, NULL), 6);
    assert_int_equal(gw_h1_head_count(&t), 0);
    gw_trailers_allow_free(a);
    gw_h1_head_free(&t);
}

/* An allow-list that lists forbidden names (a config built by hand, past the loader's
 * checks) still cannot let them through. */
static void trailers_filter_drops_forbidden_even_if_allowed(void **state)
{
    (void)state;
    char buf[256];
    gw_h1_head_t t;
    injection_trailers(&t);
    static const char *const n[] = {
        "X-User-Id", "X-Forwarded-For", "Authorization", "Content-Length", "Host", "X-Checksum"};
    gw_trailers_allow_t *a = allow(n, 6);
    /* X-User-Id is no fixed name: the loader refuses it when it is a claim header. */
    assert_int_equal(gw_trailers_filter(&t, a, NULL), 4);
    assert_string_equal(names(&t, buf, sizeof buf), "X-User-Id,X-Checksum");
    gw_trailers_allow_free(a);
    gw_h1_head_free(&t);
}

static void trailers_filter_matches_any_case_and_keeps_order(void **state)
{
    (void)state;
    char buf[256];
    gw_h1_head_t t;
    gw_h1_head_init(&t, false, 4096, 16);
    add(&t, "x-sum", "1");
    add(&t, "X-Other", "2");
    add(&t, "GRPC-Status", "0");
    add(&t, "X-SUM", "3");
    static const char *const n[] = {"X-Sum", "grpc-status"};
    gw_trailers_allow_t *a = allow(n, 2);
    assert_int_equal(gw_trailers_filter(&t, a, NULL), 1);
    assert_string_equal(names(&t, buf, sizeof buf), "x-sum,GRPC-Status,X-SUM");
    gw_trailers_allow_free(a);
    gw_h1_head_free(&t);
}

/* headers.response.remove of the route applies to response trailers. */
static void trailers_filter_applies_route_remove_rules(void **state)
{
    (void)state;
    char buf[256];
    gw_h1_head_t t;
    gw_h1_head_init(&t, false, 4096, 16);
    add(&t, "X-Debug-Token", "secret");
    add(&t, "X-Sum", "1");
    static const char *const n[] = {"X-Sum", "X-Debug-Token"};
    static const char *const remove[] = {"x-debug-token"};
    gw_mw_header_rules_t rules = {.remove = remove, .nremove = 1};
    gw_trailers_allow_t *a = allow(n, 2);
    assert_int_equal(gw_trailers_filter(&t, a, &rules), 1);
    assert_string_equal(names(&t, buf, sizeof buf), "X-Sum");
    gw_trailers_allow_free(a);
    gw_h1_head_free(&t);
}

/* A field the route sets in the header section is not overridden from a trailer. */
static void trailers_filter_applies_route_set_rules(void **state)
{
    (void)state;
    char buf[256];
    gw_h1_head_t t;
    gw_h1_head_init(&t, true, 4096, 16);
    add(&t, "X-Tenant", "evil");
    add(&t, "X-Sum", "1");
    static const char *const n[] = {"X-Sum", "X-Tenant"};
    static const gw_mw_field_t set[] = {{"X-Tenant", "acme"}};
    gw_mw_header_rules_t rules = {.set = set, .nset = 1};
    gw_trailers_allow_t *a = allow(n, 2);
    assert_int_equal(gw_trailers_filter(&t, a, &rules), 1);
    assert_string_equal(names(&t, buf, sizeof buf), "X-Sum");
    gw_trailers_allow_free(a);
    gw_h1_head_free(&t);
}

static void trailers_filter_empty_section_drops_nothing(void **state)
{
    (void)state;
    gw_h1_head_t t;
    gw_h1_head_init(&t, true, 4096, 16);
    assert_int_equal(gw_trailers_filter(&t, NULL, NULL), 0);
    assert_int_equal(gw_h1_head_count(&t), 0);
    gw_h1_head_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(trailers_forbidden_framing_and_routing),
        cmocka_unit_test(trailers_forbidden_authentication),
        cmocka_unit_test(trailers_forbidden_what_the_gateway_sets),
        cmocka_unit_test(trailers_forbidden_modifiers_controls_and_content),
        cmocka_unit_test(trailers_forbidden_any_case),
        cmocka_unit_test(trailers_forbidden_respects_length),
        cmocka_unit_test(trailers_forbidden_spares_real_trailers),
        cmocka_unit_test(trailers_allow_any_case),
        cmocka_unit_test(trailers_allow_null_and_empty_allow_nothing),
        cmocka_unit_test(trailers_allow_keeps_names_as_given),
        cmocka_unit_test(trailers_allow_refuses_non_tokens),
        cmocka_unit_test(trailers_filter_injection_keeps_only_allowed),
        cmocka_unit_test(trailers_filter_injection_default_drops_all),
        cmocka_unit_test(trailers_filter_empty_list_drops_all),
        cmocka_unit_test(trailers_filter_drops_forbidden_even_if_allowed),
        cmocka_unit_test(trailers_filter_matches_any_case_and_keeps_order),
        cmocka_unit_test(trailers_filter_applies_route_remove_rules),
        cmocka_unit_test(trailers_filter_applies_route_set_rules),
        cmocka_unit_test(trailers_filter_empty_section_drops_nothing),
    };
    return cmocka_run_group_tests_name("trailers", tests, NULL, NULL);
}
