/* test_addr.c - unit tests for addr.c: parsing, formatting, comparing socket addresses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first. */
#include <cmocka.h>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>

#include "addr.h"
#include "error.h"

/* Parses TEXT expecting failure with code RC and a reason containing WHY. */
static void expect_bad(const char *text, bool resolve, bool port0, int rc, const char *why)
{
    gw_addr_t a;
    const char *reason = NULL;
    assert_int_equal(gw_addr_parse(text, resolve, port0, &a, &reason), rc);
    assert_non_null(reason);
    if (!strstr(reason, why))
        fail_msg("'%s': reason '%s' lacks '%s'", text, reason, why);
}

/* Parses TEXT (names allowed, port 0 not) and asserts that it formats as WANT. */
static gw_addr_t expect_format(const char *text, const char *want)
{
    gw_addr_t a;
    char buf[GW_ADDR_STRLEN];
    const char *why = NULL;
    assert_int_equal(gw_addr_parse(text, true, false, &a, &why), 0);
    assert_null(why);
    assert_string_equal(gw_addr_format(&a, buf, sizeof(buf)), want);
    return a;
}

static void addr_parse_ipv4_roundtrip(void **state)
{
    (void)state;
    gw_addr_t a = expect_format("127.0.0.1:8080", "127.0.0.1:8080");
    assert_int_equal(a.ss.ss_family, AF_INET);
    assert_int_equal(a.len, sizeof(struct sockaddr_in));
    assert_int_equal(gw_addr_port(&a), 8080);
}

static void addr_parse_ipv6_roundtrip(void **state)
{
    (void)state;
    gw_addr_t a = expect_format("[::1]:8080", "[::1]:8080");
    assert_int_equal(a.ss.ss_family, AF_INET6);
    assert_int_equal(a.len, sizeof(struct sockaddr_in6));
    assert_int_equal(gw_addr_port(&a), 8080);
}

static void addr_format_ipv6_is_canonical(void **state)
{
    (void)state;
    expect_format("[2001:DB8:0:0:0:0:0:1]:443", "[2001:db8::1]:443");
}

static void addr_parse_ipv6_zone_roundtrip(void **state)
{
    (void)state;
    /* "lo" exists everywhere, network namespaces included. */
    gw_addr_t a = expect_format("[fe80::1%lo]:80", "[fe80::1%lo]:80");
    assert_int_equal(((struct sockaddr_in6 *)&a.ss)->sin6_scope_id, if_nametoindex("lo"));
}

static void addr_parse_max_port(void **state)
{
    (void)state;
    expect_format("0.0.0.0:65535", "0.0.0.0:65535");
}

static void addr_parse_localhost_resolves_to_ipv4(void **state)
{
    (void)state;
    expect_format("localhost:80", "127.0.0.1:80");
}

static void addr_parse_name_refused_without_resolve(void **state)
{
    (void)state;
    expect_bad("localhost:80", false, false, GW_EINVAL, "host name is not allowed");
}

static void addr_parse_unknown_name_is_eresolve(void **state)
{
    (void)state;
    gw_addr_t a;
    const char *why = NULL;
    /* .invalid is reserved (RFC 2606): it never resolves. */
    assert_int_equal(gw_addr_parse("nosuch.invalid:80", true, false, &a, &why), GW_ERESOLVE);
    assert_non_null(why);
}

static void addr_parse_bad_host_characters(void **state)
{
    (void)state;
    expect_bad("bad host:80", true, false, GW_EINVAL, "bad host name");
}

static void addr_parse_ipv4_octet_out_of_range(void **state)
{
    (void)state;
    expect_bad("256.0.0.1:80", true, false, GW_EINVAL, "bad IPv4 address");
}

static void addr_parse_ipv4_too_few_octets(void **state)
{
    (void)state;
    expect_bad("1.2.3:80", true, false, GW_EINVAL, "bad IPv4 address");
}

static void addr_parse_missing_port(void **state)
{
    (void)state;
    expect_bad("127.0.0.1", true, false, GW_EINVAL, "missing port");
}

static void addr_parse_empty_port(void **state)
{
    (void)state;
    expect_bad("127.0.0.1:", true, false, GW_EINVAL, "missing port after ':'");
}

static void addr_parse_port_zero_refused(void **state)
{
    (void)state;
    expect_bad("127.0.0.1:0", true, false, GW_EINVAL, "port 0 is not allowed");
}

static void addr_parse_port_zero_allowed_when_asked(void **state)
{
    (void)state;
    gw_addr_t a;
    assert_int_equal(gw_addr_parse("127.0.0.1:0", false, true, &a, NULL), 0);
    assert_int_equal(gw_addr_port(&a), 0);
}

static void addr_parse_port_too_large(void **state)
{
    (void)state;
    expect_bad("127.0.0.1:70000", true, false, GW_EINVAL, "port must be 1..65535");
}

static void addr_parse_port_not_a_number(void **state)
{
    (void)state;
    expect_bad("127.0.0.1:http", true, false, GW_EINVAL, "port must be a number");
}

static void addr_parse_ipv6_unclosed_bracket(void **state)
{
    (void)state;
    expect_bad("[::1", true, false, GW_EINVAL, "missing ']'");
}

static void addr_parse_ipv6_unbracketed(void **state)
{
    (void)state;
    expect_bad("::1:80", true, false, GW_EINVAL, "needs brackets");
}

static void addr_parse_ipv6_missing_port(void **state)
{
    (void)state;
    expect_bad("[::1]", true, false, GW_EINVAL, "missing port");
}

static void addr_parse_ipv6_junk_after_bracket(void **state)
{
    (void)state;
    expect_bad("[::1]80", true, false, GW_EINVAL, "expected ':' after ']'");
}

static void addr_parse_ipv6_bad_address(void **state)
{
    (void)state;
    expect_bad("[zz::1]:80", true, false, GW_EINVAL, "bad IPv6 address");
}

static void addr_parse_ipv6_name_in_brackets_refused(void **state)
{
    (void)state;
    expect_bad("[localhost]:80", true, false, GW_EINVAL, "bad IPv6 address");
}

static void addr_parse_missing_host(void **state)
{
    (void)state;
    expect_bad(":80", true, false, GW_EINVAL, "missing host");
}

static void addr_parse_empty_text(void **state)
{
    (void)state;
    expect_bad("", true, false, GW_EINVAL, "empty address");
}

static void addr_parse_failure_leaves_out_unchanged(void **state)
{
    (void)state;
    gw_addr_t a, before;
    assert_int_equal(gw_addr_parse("10.0.0.1:1", false, false, &a, NULL), 0);
    before = a;
    assert_int_equal(gw_addr_parse("10.0.0.2:0", false, false, &a, NULL), GW_EINVAL);
    assert_memory_equal(&a, &before, sizeof(a));
}

static void addr_equal_same_address(void **state)
{
    (void)state;
    gw_addr_t a, b;
    assert_int_equal(gw_addr_parse("10.1.2.3:80", false, false, &a, NULL), 0);
    assert_int_equal(gw_addr_parse("10.1.2.3:80", false, false, &b, NULL), 0);
    assert_true(gw_addr_equal(&a, &b));
    assert_int_equal(gw_addr_parse("[::1]:80", false, false, &a, NULL), 0);
    assert_int_equal(gw_addr_parse("[0::1]:80", false, false, &b, NULL), 0);
    assert_true(gw_addr_equal(&a, &b));
}

static void addr_equal_differs_by_port(void **state)
{
    (void)state;
    gw_addr_t a, b;
    assert_int_equal(gw_addr_parse("10.1.2.3:80", false, false, &a, NULL), 0);
    assert_int_equal(gw_addr_parse("10.1.2.3:81", false, false, &b, NULL), 0);
    assert_false(gw_addr_equal(&a, &b));
}

static void addr_equal_differs_by_ip(void **state)
{
    (void)state;
    gw_addr_t a, b;
    assert_int_equal(gw_addr_parse("[::1]:80", false, false, &a, NULL), 0);
    assert_int_equal(gw_addr_parse("[::2]:80", false, false, &b, NULL), 0);
    assert_false(gw_addr_equal(&a, &b));
}

static void addr_equal_differs_by_family(void **state)
{
    (void)state;
    gw_addr_t a, b;
    assert_int_equal(gw_addr_parse("0.0.0.0:80", false, false, &a, NULL), 0);
    assert_int_equal(gw_addr_parse("[::]:80", false, false, &b, NULL), 0);
    assert_false(gw_addr_equal(&a, &b));
}

/* Parses TEXT (no names, port 0 allowed) and asserts its loopback / unspecified verdicts. */
static void expect_kind(const char *text, bool loopback, bool unspecified)
{
    gw_addr_t a;
    assert_int_equal(gw_addr_parse(text, false, true, &a, NULL), 0);
    if (gw_addr_is_loopback(&a) != loopback)
        fail_msg("%s: loopback should be %d", text, loopback);
    if (gw_addr_is_unspecified(&a) != unspecified)
        fail_msg("%s: unspecified should be %d", text, unspecified);
}

static void addr_is_loopback_whole_127_slash_8(void **state)
{
    (void)state;
    expect_kind("127.0.0.1:80", true, false);
    expect_kind("127.0.0.0:80", true, false);
    expect_kind("127.255.255.255:80", true, false);
    expect_kind("127.1.2.3:0", true, false);
    expect_kind("126.255.255.255:80", false, false);
    expect_kind("128.0.0.1:80", false, false);
    expect_kind("10.0.0.1:80", false, false);
}

static void addr_is_loopback_ipv6_and_mapped(void **state)
{
    (void)state;
    expect_kind("[::1]:80", true, false);
    expect_kind("[0:0:0:0:0:0:0:1]:80", true, false);
    expect_kind("[::ffff:127.0.0.1]:80", true, false);
    expect_kind("[::ffff:127.9.8.7]:80", true, false);
    expect_kind("[::ffff:10.0.0.1]:80", false, false);
    expect_kind("[::127.0.0.1]:80", false, false); /* IPv4-compatible: deprecated, not local */
    expect_kind("[::2]:80", false, false);
    expect_kind("[fe80::1]:80", false, false);
    expect_kind("[2001:db8::1]:80", false, false);
}

static void addr_unspecified_is_not_loopback(void **state)
{
    (void)state;
    expect_kind("0.0.0.0:80", false, true);
    expect_kind("[::]:80", false, true);
    expect_kind("[::ffff:0.0.0.0]:80", false, true);
    expect_kind("0.0.0.1:80", false, false);
}

static void addr_format_sa_unknown_family(void **state)
{
    (void)state;
    struct sockaddr sa = {.sa_family = AF_UNIX};
    char buf[GW_ADDR_STRLEN];
    assert_string_equal(gw_addr_format_sa(&sa, buf, sizeof(buf)), "?");
}

static void addr_format_truncates_safely(void **state)
{
    (void)state;
    gw_addr_t a;
    char buf[8];
    assert_int_equal(gw_addr_parse("192.168.100.200:8080", false, false, &a, NULL), 0);
    assert_string_equal(gw_addr_format(&a, buf, sizeof(buf)), "192.168");
}

static void strerror_names_our_codes_and_errno(void **state)
{
    (void)state;
    assert_string_equal(gw_strerror(GW_ECONFIG), "invalid configuration");
    assert_string_equal(gw_strerror(0), "success");
    assert_string_equal(gw_strerror(-2), "No such file or directory");
    assert_string_equal(gw_strerror(-9999), "unknown error");
    assert_string_equal(gw_strerror(-20000), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(addr_parse_ipv4_roundtrip),
        cmocka_unit_test(addr_parse_ipv6_roundtrip),
        cmocka_unit_test(addr_format_ipv6_is_canonical),
        cmocka_unit_test(addr_parse_ipv6_zone_roundtrip),
        cmocka_unit_test(addr_parse_max_port),
        cmocka_unit_test(addr_parse_localhost_resolves_to_ipv4),
        cmocka_unit_test(addr_parse_name_refused_without_resolve),
        cmocka_unit_test(addr_parse_unknown_name_is_eresolve),
        cmocka_unit_test(addr_parse_bad_host_characters),
        cmocka_unit_test(addr_parse_ipv4_octet_out_of_range),
        cmocka_unit_test(addr_parse_ipv4_too_few_octets),
        cmocka_unit_test(addr_parse_missing_port),
        cmocka_unit_test(addr_parse_empty_port),
        cmocka_unit_test(addr_parse_port_zero_refused),
        cmocka_unit_test(addr_parse_port_zero_allowed_when_asked),
        cmocka_unit_test(addr_parse_port_too_large),
        cmocka_unit_test(addr_parse_port_not_a_number),
        cmocka_unit_test(addr_parse_ipv6_unclosed_bracket),
        cmocka_unit_test(addr_parse_ipv6_unbracketed),
        cmocka_unit_test(addr_parse_ipv6_missing_port),
        cmocka_unit_test(addr_parse_ipv6_junk_after_bracket),
        cmocka_unit_test(addr_parse_ipv6_bad_address),
        cmocka_unit_test(addr_parse_ipv6_name_in_brackets_refused),
        cmocka_unit_test(addr_parse_missing_host),
        cmocka_unit_test(addr_parse_empty_text),
        cmocka_unit_test(addr_parse_failure_leaves_out_unchanged),
        cmocka_unit_test(addr_equal_same_address),
        cmocka_unit_test(addr_equal_differs_by_port),
        cmocka_unit_test(addr_equal_differs_by_ip),
        cmocka_unit_test(addr_equal_differs_by_family),
        cmocka_unit_test(addr_is_loopback_whole_127_slash_8),
        cmocka_unit_test(addr_is_loopback_ipv6_and_mapped),
        cmocka_unit_test(addr_unspecified_is_not_loopback),
        cmocka_unit_test(addr_format_sa_unknown_family),
        cmocka_unit_test(addr_format_truncates_safely),
        cmocka_unit_test(strerror_names_our_codes_and_errno),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
