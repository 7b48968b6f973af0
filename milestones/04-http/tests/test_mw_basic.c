/* test_mw_basic.c - basic middleware: request ids, CIDRs, forwarded headers with the trust
 * rule, header rules, and prefix strip/rewrite re-normalised. */
#include "gwtest.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "04-http/mw_basic.h"
#include "error.h"

static void req_init(gw_h1_head_t *h, const char *target)
{
    gw_h1_head_init(h, true, 16384, 64);
    assert_int_equal(gw_h1_head_set_method(h, "GET", 3), 0);
    assert_int_equal(gw_h1_head_set_target(h, target, strlen(target)), 0);
    assert_int_equal(gw_h1_head_add(h, "Host", 4, "example.com", 11), 0);
}

static void add(gw_h1_head_t *h, const char *name, const char *value)
{
    assert_int_equal(gw_h1_head_add(h, name, strlen(name), value, strlen(value)), 0);
}

static void expect(const gw_h1_head_t *h, const char *name, const char *want)
{
    gw_h1_span_t v;
    if (!gw_h1_head_get(h, name, &v))
        fail_msg("%s missing", name);
    if (v.len != strlen(want) || memcmp(v.ptr, want, v.len) != 0)
        fail_msg("%s: got %.*s, want %s", name, (int)v.len, v.ptr, want);
}

static bool contains(const char *cidr, const char *ip)
{
    gw_cidr_t c;
    struct sockaddr_storage ss = gw_test_sockaddr(ip);
    assert_int_equal(gw_cidr_parse(cidr, &c), 0);
    return gw_cidr_contains(&c, (const struct sockaddr *)&ss);
}

static const uint8_t RND[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};

/* ---- request id ---- */

static void request_id_keeps_sane_incoming(void **state)
{
    (void)state;
    gw_h1_head_t h;
    char id[GW_MW_REQID_MAX + 1];
    req_init(&h, "/");
    add(&h, "X-Request-ID", "abc-123_x.Y");
    assert_int_equal(gw_mw_request_id(&h, RND, id), 0);
    assert_string_equal(id, "abc-123_x.Y");
    expect(&h, "X-Request-ID", "abc-123_x.Y");
    gw_h1_head_free(&h);
}

static void request_id_replaces_insane_incoming(void **state)
{
    (void)state;
    gw_h1_head_t h;
    char id[GW_MW_REQID_MAX + 1], longid[GW_MW_REQID_MAX + 2];
    req_init(&h, "/");
    add(&h, "X-Request-ID", "a b;<script>");
    assert_int_equal(gw_mw_request_id(&h, RND, id), 0);
    assert_string_equal(id, "00112233445566778899aabbccddeeff");
    expect(&h, "X-Request-ID", id);
    memset(longid, 'a', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    assert_false(gw_mw_request_id_sane(longid, strlen(longid)));
    assert_true(gw_mw_request_id_sane(longid, GW_MW_REQID_MAX));
    gw_h1_head_free(&h);
}

static void request_id_generates_when_absent(void **state)
{
    (void)state;
    gw_h1_head_t h;
    char id[GW_MW_REQID_MAX + 1];
    req_init(&h, "/");
    assert_int_equal(gw_mw_request_id(&h, RND, id), 0);
    assert_string_equal(id, "00112233445566778899aabbccddeeff");
    expect(&h, "X-Request-ID", id);
    gw_h1_head_free(&h);
}

/* ---- CIDR ---- */

static void cidr_matches_ipv4(void **state)
{
    (void)state;
    assert_true(contains("10.0.0.0/8", "10.200.3.4"));
    assert_false(contains("10.0.0.0/8", "11.0.0.1"));
    assert_true(contains("192.168.1.0/25", "192.168.1.127"));
    assert_false(contains("192.168.1.0/25", "192.168.1.128"));
    assert_true(contains("10.0.0.0/8", "::ffff:10.1.2.3"));
}

static void cidr_matches_ipv6(void **state)
{
    (void)state;
    assert_true(contains("2001:db8::/32", "2001:db8:1::5"));
    assert_false(contains("2001:db8::/32", "2001:db9::5"));
    assert_false(contains("2001:db8::/32", "10.0.0.1"));
    assert_false(contains("10.0.0.0/8", "2001:db8::1"));
}

static void cidr_zero_prefix_matches_family(void **state)
{
    (void)state;
    assert_true(contains("0.0.0.0/0", "203.0.113.9"));
    assert_false(contains("0.0.0.0/0", "2001:db8::1"));
    assert_true(contains("::/0", "2001:db8::1"));
}

static void cidr_full_prefix_matches_one_host(void **state)
{
    (void)state;
    assert_true(contains("203.0.113.9/32", "203.0.113.9"));
    assert_false(contains("203.0.113.9/32", "203.0.113.8"));
    assert_true(contains("::1/128", "::1"));
    assert_false(contains("::1/128", "::2"));
    assert_true(contains("::1", "::1")); /* no "/n": a single host */
}

static void cidr_rejects_bad_input(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "/8",
        "10.0.0.0/",
        "10.0.0.0/33",
        "::/129",
        "10.0.0.0/-1",
        "10.0.0.0/08",
        "10.0.0.1/8",
        "10.0.0/8",
        "10.0.0.0 /8",
        "x/8",
        "10.0.0.0/8x",
        "::1/127",
        "1.2.3.4/1000",
        "fe80::1%eth0/128",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gw_cidr_t c;
        if (gw_cidr_parse(bad[i], &c) != GW_EINVAL)
            fail_msg("accepted %s", bad[i]);
    }
}

/* ---- forwarded ---- */

static const char *const TRUSTED[] = {"10.0.0.0/8", "::1/128"};

static int forward(gw_h1_head_t *h, const char *peer_ip, bool tls)
{
    gw_cidr_t t[2];
    struct sockaddr_storage ss = gw_test_sockaddr(peer_ip);
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(gw_cidr_parse(TRUSTED[i], &t[i]), 0);
    gw_mw_peer_t p = {(const struct sockaddr *)&ss, tls, t, 2};
    return gw_mw_forwarded(h, &p);
}

static void forwarded_untrusted_peer_replaces_forged_xff(void **state)
{
    (void)state;
    gw_h1_head_t h;
    req_init(&h, "/");
    add(&h, "X-Forwarded-For", "127.0.0.1");
    add(&h, "X-Forwarded-For", "10.0.0.1");
    add(&h, "Forwarded", "for=127.0.0.1");
    add(&h, "X-Forwarded-Host", "admin.internal");
    add(&h, "X-Forwarded-Proto", "https");
    assert_int_equal(forward(&h, "203.0.113.9", false), 0);
    expect(&h, "X-Forwarded-For", "203.0.113.9");
    expect(&h, "Forwarded", "for=203.0.113.9;proto=http;host=example.com");
    expect(&h, "X-Forwarded-Host", "example.com");
    expect(&h, "X-Forwarded-Proto", "http");
    expect(&h, "Via", "1.1 gw");
    assert_int_equal(gw_h1_head_find(&h, "X-Forwarded-For", 0) >= 0, 1);
    assert_int_equal(gw_h1_head_find(&h, "X-Forwarded-For",
                                     (size_t)gw_h1_head_find(&h, "X-Forwarded-For", 0) + 1),
                     -1);
    gw_h1_head_free(&h);
}

static void forwarded_trusted_peer_appends_xff(void **state)
{
    (void)state;
    gw_h1_head_t h;
    req_init(&h, "/");
    add(&h, "X-Forwarded-For", "198.51.100.7");
    add(&h, "X-Forwarded-For", "192.0.2.1");
    add(&h, "Forwarded", "for=198.51.100.7");
    add(&h, "X-Forwarded-Host", "www.example.org");
    add(&h, "X-Forwarded-Proto", "https");
    assert_int_equal(forward(&h, "10.1.2.3", false), 0);
    expect(&h, "X-Forwarded-For", "198.51.100.7, 192.0.2.1, 10.1.2.3");
    expect(&h, "Forwarded", "for=198.51.100.7, for=10.1.2.3;proto=http;host=example.com");
    expect(&h, "X-Forwarded-Host", "www.example.org");
    expect(&h, "X-Forwarded-Proto", "https");
    gw_h1_head_free(&h);
}

static void forwarded_quotes_ipv6_with_brackets(void **state)
{
    (void)state;
    gw_h1_head_t h;
    req_init(&h, "/");
    assert_int_equal(gw_h1_head_set(&h, "Host", "example.com:8443", 16), 0);
    assert_int_equal(forward(&h, "2001:db8::1", true), 0);
    expect(&h, "Forwarded", "for=\"[2001:db8::1]\";proto=https;host=\"example.com:8443\"");
    expect(&h, "X-Forwarded-For", "2001:db8::1");
    expect(&h, "X-Forwarded-Proto", "https");
    gw_h1_head_free(&h);
}

/* ---- X-Real-IP ---- */

static int real_ip(gw_h1_head_t *h, const char *peer_ip, bool set)
{
    gw_cidr_t t[2];
    struct sockaddr_storage ss = gw_test_sockaddr(peer_ip);
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(gw_cidr_parse(TRUSTED[i], &t[i]), 0);
    gw_mw_peer_t p = {(const struct sockaddr *)&ss, false, t, 2};
    return gw_mw_real_ip(h, &p, set);
}

/* X-Real-IP: `X-Real-IP: 203.0.113.9` (with or without the option) */
static const char *real_ip_of(const char *peer_ip, bool set, const char *xri, const char *xff1,
                              const char *xff2)
{
    static char out[64];
    gw_h1_head_t h;
    gw_h1_span_t v;
    req_init(&h, "/");
    if (xri != NULL)
        add(&h, "X-Real-IP", xri);
    if (xff1 != NULL)
        add(&h, "X-Forwarded-For", xff1);
    if (xff2 != NULL)
        add(&h, "X-Forwarded-For", xff2);
    assert_int_equal(real_ip(&h, peer_ip, set), 0);
    long i = gw_h1_head_find(&h, "X-Real-IP", 0);
    if (i < 0) {
        snprintf(out, sizeof out, "(none)");
    } else {
        assert_int_equal(gw_h1_head_find(&h, "X-Real-IP", (size_t)i + 1), -1); /* one line */
        v = gw_h1_head_value_at(&h, (size_t)i);
        snprintf(out, sizeof out, "%.*s", (int)v.len, v.ptr);
    }
    if (xff1 != NULL) /* X-Forwarded-For is gw_mw_forwarded's business: untouched here */
        assert_true(gw_h1_head_get(&h, "X-Forwarded-For", &v));
    gw_h1_head_free(&h);
    return out;
}

/* From anyone not trusted, X-Real-IP is the TCP peer whatever the request says; without the
 * option, a client's own X-Real-IP is still removed (a backend that reads it must never get
 * one a client wrote). */
static void real_ip_untrusted_peer_is_the_client(void **state)
{
    (void)state;
    assert_string_equal(real_ip_of("203.0.113.9", true, "10.0.0.1", "10.0.0.1", NULL),
                        "203.0.113.9");
    assert_string_equal(real_ip_of("203.0.113.9", true, NULL, NULL, NULL), "203.0.113.9");
    assert_string_equal(real_ip_of("2001:db8::7", true, NULL, NULL, NULL), "2001:db8::7");
    assert_string_equal(real_ip_of("203.0.113.9", false, "10.0.0.1", NULL, NULL), "(none)");
    assert_string_equal(real_ip_of("203.0.113.9", false, NULL, NULL, NULL), "(none)");
}

/* From a trusted proxy: its X-Real-IP if it is an address (written back canonically), else
 * the X-Forwarded-For chain read from the right, past every trusted hop (nginx's
 * real_ip_recursive); a chain with an entry that is not an address is not believed. Without
 * the option, a trusted proxy's X-Real-IP passes as it came. */
static void real_ip_trusted_proxy_reads_its_chain(void **state)
{
    (void)state;
    const char *p = "10.1.2.3";
    assert_string_equal(real_ip_of(p, true, "198.51.100.7", "192.0.2.1", NULL), "198.51.100.7");
    assert_string_equal(real_ip_of(p, true, "2001:0db8:0::1", NULL, NULL), "2001:db8::1");
    assert_string_equal(real_ip_of(p, true, "not-an-ip", NULL, NULL), p);
    assert_string_equal(real_ip_of(p, true, NULL, "198.51.100.7, 10.9.9.9", "10.0.0.2"),
                        "198.51.100.7");
    assert_string_equal(real_ip_of(p, true, NULL, "192.0.2.1,198.51.100.7", NULL), "198.51.100.7");
    assert_string_equal(real_ip_of(p, true, NULL, "10.0.0.5, 10.0.0.6", NULL), "10.0.0.5");
    assert_string_equal(real_ip_of(p, true, NULL, "198.51.100.7, unknown, 10.0.0.6", NULL), p);
    assert_string_equal(real_ip_of(p, true, NULL, "198.51.100.7:4711", NULL), p);
    assert_string_equal(real_ip_of(p, true, NULL, "2001:db8::9, ::1", NULL), "2001:db8::9");
    assert_string_equal(real_ip_of(p, true, NULL, " , ", NULL), p);
    assert_string_equal(real_ip_of(p, true, NULL, NULL, NULL), p);
    assert_string_equal(real_ip_of(p, false, "not-an-ip", NULL, NULL), "not-an-ip");
    assert_string_equal(real_ip_of(p, false, NULL, "198.51.100.7", NULL), "(none)");
}

/* ---- header rules ---- */

static void header_rules_remove_set_add(void **state)
{
    (void)state;
    gw_h1_head_t h;
    req_init(&h, "/");
    add(&h, "Server", "leaky/1.0");
    add(&h, "X-Env", "a");
    add(&h, "X-Env", "b");
    static const char *const rm[] = {"server"};
    static const gw_mw_field_t set[] = {{"X-Env", "prod"}};
    static const gw_mw_field_t ad[] = {{"X-Tag", "one"}, {"X-Tag", "two"}};
    gw_mw_header_rules_t r = {rm, 1, set, 1, ad, 2};
    assert_int_equal(gw_mw_header_rules(&h, &r), 0);
    assert_int_equal(gw_h1_head_find(&h, "Server", 0), -1);
    expect(&h, "X-Env", "prod");
    long i = gw_h1_head_find(&h, "X-Env", 0);
    assert_int_equal(gw_h1_head_find(&h, "X-Env", (size_t)i + 1), -1);
    i = gw_h1_head_find(&h, "X-Tag", 0);
    assert_true(i >= 0);
    assert_true(gw_h1_head_find(&h, "X-Tag", (size_t)i + 1) > i);
    gw_h1_head_free(&h);
}

static void header_rules_refuse_injected_value(void **state)
{
    (void)state;
    gw_h1_head_t h;
    req_init(&h, "/");
    static const gw_mw_field_t set[] = {{"X-A", "ok\r\nX-Evil: 1"}};
    gw_mw_header_rules_t r = {NULL, 0, set, 1, NULL, 0};
    assert_int_equal(gw_mw_header_rules(&h, &r), GW_EINVAL);
    assert_int_equal(gw_h1_head_find(&h, "X-Evil", 0), -1);
    gw_h1_head_free(&h);
}

/* ---- strip prefix / rewrite ---- */

static void rewrite_case(const char *target, const char *prefix, const char *repl, int want_rc,
                         const char *want)
{
    gw_h1_head_t h;
    gw_pathnorm_t res;
    req_init(&h, target);
    int rc = gw_mw_rewrite_prefix(&h, prefix, repl, &res);
    if (rc != want_rc)
        fail_msg("%s %s->%s: rc %d, want %d", target, prefix, repl ? repl : "", rc, want_rc);
    if (want != NULL) {
        gw_h1_span_t t = gw_h1_head_target(&h);
        if (t.len != strlen(want) || memcmp(t.ptr, want, t.len) != 0)
            fail_msg("%s: got %.*s, want %s", target, (int)t.len, t.ptr, want);
    }
    if (rc < 0)
        assert_int_equal(res.status, 400);
    gw_h1_head_free(&h);
}

static void strip_prefix_keeps_leading_slash_and_query(void **state)
{
    (void)state;
    rewrite_case("/api/users?id=1", "/api", NULL, 1, "/users?id=1");
    rewrite_case("/api", "/api", NULL, 1, "/");
    rewrite_case("/api?x=1", "/api", "", 1, "/?x=1");
    rewrite_case("/api/", "/api/", NULL, 1, "/");
}

static void strip_prefix_matches_whole_segments(void **state)
{
    (void)state;
    rewrite_case("/apix/users", "/api", NULL, 0, "/apix/users");
    rewrite_case("/other", "/api", NULL, 0, "/other");
}

static void rewrite_replaces_prefix(void **state)
{
    (void)state;
    rewrite_case("/api/users?q=a", "/api", "/v2", 1, "/v2/users?q=a");
    rewrite_case("/api/users", "/api/", "/v2", 1, "/v2/users");
    rewrite_case("/api/users", "/api", "v2/", 1, "/v2/users");
}

static void rewrite_rejects_dotdot_escape(void **state)
{
    (void)state;
    rewrite_case("/api/etc/passwd", "/api", "/..", -1, NULL);
    rewrite_case("/api/x", "/api", "/a/../..", -1, NULL);
    rewrite_case("/api/x", "/api", "/a/b/..", 1, "/a/x"); /* inside the root: fine */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(request_id_keeps_sane_incoming),
        cmocka_unit_test(request_id_replaces_insane_incoming),
        cmocka_unit_test(request_id_generates_when_absent),
        cmocka_unit_test(cidr_matches_ipv4),
        cmocka_unit_test(cidr_matches_ipv6),
        cmocka_unit_test(cidr_zero_prefix_matches_family),
        cmocka_unit_test(cidr_full_prefix_matches_one_host),
        cmocka_unit_test(cidr_rejects_bad_input),
        cmocka_unit_test(forwarded_untrusted_peer_replaces_forged_xff),
        cmocka_unit_test(forwarded_trusted_peer_appends_xff),
        cmocka_unit_test(forwarded_quotes_ipv6_with_brackets),
        cmocka_unit_test(real_ip_untrusted_peer_is_the_client),
        cmocka_unit_test(real_ip_trusted_proxy_reads_its_chain),
        cmocka_unit_test(header_rules_remove_set_add),
        cmocka_unit_test(header_rules_refuse_injected_value),
        cmocka_unit_test(strip_prefix_keeps_leading_slash_and_query),
        cmocka_unit_test(strip_prefix_matches_whole_segments),
        cmocka_unit_test(rewrite_replaces_prefix),
        cmocka_unit_test(rewrite_rejects_dotdot_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
