/* test_proxyproto.c - unit tests for proxyproto.c: the PROXY protocol reader (v1 and v2, every
 * malformed variant, split at every byte), its writers, and the bytes real senders send.
 *
 * Every header a test parses goes through check(), which parses each prefix of it (0 bytes,
 * 1 byte, ... all) from an exactly-sized copy, so ASan sees any read past what was received,
 * and asserts the reader's contract: NEED_MORE up to one decision point, then the same answer
 * (same code, same position, same fields) for every longer prefix, and a `need` that never
 * promises DONE sooner than it comes. A split into reads is a sequence of prefixes, so this
 * is "split at every byte gives the same result as whole". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first. */
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "proxyproto.h"

#define SIG "\r\n\r\n\0\r\nQUIT\n"

static bool same_span(gw_pp_span_t a, gw_pp_span_t b)
{
    return a.off == b.off && a.len == b.len;
}

/* The fields of two results agree (field by field: padding is not compared). */
static bool same_result(const gw_pp_result_t *a, const gw_pp_result_t *b)
{
    return a->need == b->need && a->err_pos == b->err_pos && a->version == b->version &&
           a->len == b->len && a->command == b->command && a->family == b->family &&
           a->v2_family == b->v2_family && memcmp(&a->src, &b->src, sizeof a->src) == 0 &&
           memcmp(&a->dst, &b->dst, sizeof a->dst) == 0 && same_span(a->tlvs, b->tlvs) &&
           a->seen == b->seen && same_span(a->alpn, b->alpn) &&
           same_span(a->authority, b->authority) && same_span(a->unique_id, b->unique_id) &&
           same_span(a->netns, b->netns) && a->crc32c == b->crc32c &&
           a->ssl_client == b->ssl_client && a->ssl_verify == b->ssl_verify &&
           same_span(a->ssl_tlvs, b->ssl_tlvs) && same_span(a->ssl_version, b->ssl_version) &&
           same_span(a->ssl_cn, b->ssl_cn) && same_span(a->ssl_cipher, b->ssl_cipher) &&
           same_span(a->ssl_sig_alg, b->ssl_sig_alg) && same_span(a->ssl_key_alg, b->ssl_key_alg);
}

static int parse_copy(const void *p, size_t n, unsigned accept, gw_pp_result_t *out)
{
    uint8_t *cp = malloc(n > 0 ? n : 1);
    assert_non_null(cp);
    if (n > 0)
        memcpy(cp, p, n);
    int rc = gw_pp_parse(n > 0 ? cp : NULL, n, accept, out);
    free(cp);
    return rc;
}

/* Parses every prefix of P[0..N); returns the answer for all of it into *OUT and the shortest
 * prefix that gives it into *AT (N+1 if it is NEED_MORE). */
static int check(const void *p, size_t n, unsigned accept, gw_pp_result_t *out, size_t *at)
{
    gw_pp_result_t r, first;
    int rc0 = 0;
    size_t decided = n + 1;
    for (size_t k = 0; k <= n; k++) {
        int rc = parse_copy(p, k, accept, &r);
        if (decided > n && rc == 0) {
            if (r.need < 1)
                fail_msg("prefix %zu: NEED_MORE with need %zu", k, r.need);
            continue;
        }
        if (decided > n) {
            decided = k;
            rc0 = rc;
            first = r;
            if (rc < 0 && r.err_pos >= k)
                fail_msg("prefix %zu: %s at %zu, past what was read", k, gw_pp_strerror(rc),
                         r.err_pos);
            if (rc > 0 && (size_t)rc > k)
                fail_msg("prefix %zu: DONE with %d bytes", k, rc);
            continue;
        }
        if (rc != rc0 || !same_result(&r, &first))
            fail_msg("prefix %zu: %s (at %zu), but prefix %zu gave %s (at %zu)", k,
                     gw_pp_strerror(rc), r.err_pos, decided, gw_pp_strerror(rc0), first.err_pos);
    }
    if (rc0 > 0) { /* no NEED_MORE promised less than what DONE took */
        for (size_t k = 0; k < decided; k++) {
            parse_copy(p, k, accept, &r);
            if (k + r.need > decided)
                fail_msg("prefix %zu: need %zu, but DONE came at %zu", k, r.need, decided);
        }
    }
    if (decided > n) {
        parse_copy(p, n, accept, &r);
        first = r;
    }
    *out = first;
    if (at != NULL)
        *at = decided;
    return decided > n ? 0 : rc0;
}

static int check_text(const char *s, unsigned accept, gw_pp_result_t *out, size_t *at)
{
    return check(s, strlen(s), accept, out, at);
}

/* Expects the error RC at POS for P[0..N), checked at every prefix. */
static void expect_err(const void *p, size_t n, unsigned accept, int rc, size_t pos)
{
    gw_pp_result_t r;
    size_t at;
    int got = check(p, n, accept, &r, &at);
    if (got != rc || r.err_pos != pos)
        fail_msg("got %s at %zu (decided at %zu), want %s at %zu", gw_pp_strerror(got), r.err_pos,
                 at, gw_pp_strerror(rc), pos);
}

static size_t unhex(const char *hex, uint8_t *out)
{
    size_t n = 0;
    for (; hex[0] && hex[1]; hex += 2) {
        unsigned v;
        assert_int_equal(sscanf(hex, "%2x", &v), 1);
        out[n++] = (uint8_t)v;
    }
    return n;
}

static void expect_addr(const struct sockaddr_storage *ss, const char *ip, unsigned port)
{
    char text[INET6_ADDRSTRLEN];
    const void *a;
    unsigned p;
    if (ss->ss_family == AF_INET) {
        a = &((const struct sockaddr_in *)ss)->sin_addr;
        p = ntohs(((const struct sockaddr_in *)ss)->sin_port);
    } else {
        assert_int_equal(ss->ss_family, AF_INET6);
        a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        p = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    }
    assert_non_null(inet_ntop(ss->ss_family, a, text, sizeof text));
    assert_string_equal(text, ip);
    assert_int_equal(p, port);
}

static void expect_span(const uint8_t *buf, gw_pp_span_t s, const char *want)
{
    if (s.len != strlen(want) || memcmp(buf + s.off, want, s.len) != 0)
        fail_msg("span [%.*s] (%u bytes at %u), want [%s]", (int)s.len, (const char *)buf + s.off,
                 s.len, s.off, want);
}

/* ---- v1 --------------------------------------------------------------------------------- */

/* The spec's example (2.1): the line, then the client's HTTP request, which must stay. */
static void pp_v1_spec_example(void **state)
{
    (void)state;
    const char *s = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
                    "GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n";
    gw_pp_result_t r;
    size_t at;
    int rc = check_text(s, GW_PP_ANY, &r, &at);
    assert_int_equal(rc, 47);
    assert_int_equal(at, 47); /* decided by the LF, not by what follows */
    assert_int_equal(r.len, 47);
    assert_memory_equal(s + rc, "GET / HTTP/1.1\r\n", 16);
    assert_int_equal(r.version, 1);
    assert_int_equal(r.command, GW_PP_PROXY);
    assert_int_equal(r.family, GW_PP_TCP4);
    expect_addr(&r.src, "192.168.0.1", 56324);
    expect_addr(&r.dst, "192.168.0.11", 443);
    assert_int_equal(r.seen, 0);
    assert_int_equal(r.tlvs.len, 0);
}

/* Captured on this machine: what HAProxy 2.6.12 (`server ... send-proxy`) and nginx 1.22.1
 * (stream, `proxy_protocol on`) wrote to their backend, the client's "hello" after it. */
static void pp_v1_as_haproxy_and_nginx_send(void **state)
{
    (void)state;
    static const struct {
        const char *hex, *src, *dst;
        unsigned sport, dport;
        gw_pp_family_t fam;
    } cases[] = {
        {"50524f58592054435034203132372e302e302e31203132372e302e302e3120343730383820343731"
         "30310d0a68656c6c6f",
         "127.0.0.1", "127.0.0.1", 47088, 47101, GW_PP_TCP4},
        {"50524f58592054435036203a3a31203a3a312033353930322034373130320d0a68656c6c6f", "::1", "::1",
         35902, 47102, GW_PP_TCP6},
        {"50524f58592054435034203132372e302e302e31203132372e302e302e3120343936323620343731"
         "31310d0a68656c6c6f",
         "127.0.0.1", "127.0.0.1", 49626, 47111, GW_PP_TCP4},
        {"50524f58592054435036203a3a31203a3a312034363731382034373131320d0a68656c6c6f", "::1", "::1",
         46718, 47112, GW_PP_TCP6},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t b[128];
        size_t n = unhex(cases[i].hex, b);
        gw_pp_result_t r;
        int rc = check(b, n, GW_PP_ANY, &r, NULL);
        assert_int_equal(rc, (int)n - 5);
        assert_memory_equal(b + rc, "hello", 5);
        assert_int_equal(r.family, cases[i].fam);
        expect_addr(&r.src, cases[i].src, cases[i].sport);
        expect_addr(&r.dst, cases[i].dst, cases[i].dport);
        assert_int_equal(check(b, n, GW_PP_V1, &r, NULL), rc);
    }
}

static void pp_v1_longest_lines(void **state)
{
    (void)state;
    gw_pp_result_t r;
    const char *v4 = "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
    assert_int_equal(check_text(v4, GW_PP_ANY, &r, NULL), 56);
    expect_addr(&r.src, "255.255.255.255", 65535);
    const char *v6 = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                     "FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF 65535 0\r\n";
    assert_int_equal(check_text(v6, GW_PP_ANY, &r, NULL), 100);
    expect_addr(&r.dst, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0);
    /* IPv4-mapped, as HAProxy writes a mixed pair: kept as IPv6 */
    assert_int_equal(check_text("PROXY TCP6 ::ffff:10.0.0.1 ::1 1 2\r\n", GW_PP_ANY, &r, NULL), 36);
    expect_addr(&r.src, "::ffff:10.0.0.1", 1);
}

static void pp_v1_unknown(void **state)
{
    (void)state;
    gw_pp_result_t r;
    assert_int_equal(check_text("PROXY UNKNOWN\r\nabc", GW_PP_ANY, &r, NULL), 15);
    assert_int_equal(r.family, GW_PP_UNSPEC);
    assert_int_equal(r.command, GW_PP_PROXY);
    assert_int_equal(r.src.ss_family, AF_UNSPEC);
    assert_int_equal(r.dst.ss_family, AF_UNSPEC);
    /* anything up to CRLF is ignored, the spec's worst case (107 bytes) included */
    static const char junk[] = "PROXY UNKNOWN 1.2.3.4 x\0y junk\r\n";
    assert_int_equal(check(junk, sizeof junk - 1, GW_PP_ANY, &r, NULL), 32);
    char line[GW_PP_V1_MAX + 2];
    memcpy(line, "PROXY UNKNOWN ", 14);
    memset(line + 14, 'f', GW_PP_V1_MAX - 16);
    memcpy(line + GW_PP_V1_MAX - 2, "\r\n", 3);
    assert_int_equal(strlen(line), 107);
    assert_int_equal(check_text(line, GW_PP_ANY, &r, NULL), 107);
    /* one byte more: refused at the 107th byte, without waiting for the 108th */
    memcpy(line + GW_PP_V1_MAX - 2, "f\r\n", 4);
    size_t at;
    assert_int_equal(check_text(line, GW_PP_ANY, &r, &at), GW_PP_EV1TOOLONG);
    assert_int_equal(r.err_pos, 106);
    assert_int_equal(at, 107);
}

/* Each malformed line is refused with its own error at its first wrong byte. */
static void pp_v1_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        int rc;
        size_t pos;
    } cases[] = {
        {"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", GW_PP_EV1PROTO, 6},
        {"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", GW_PP_EV1PROTO, 9},
        {"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", GW_PP_EV1PROTO, 6},
        {"PROXY TCP4\r\n", GW_PP_EV1PROTO, 10},
        {"PROXY \r\n", GW_PP_EV1PROTO, 6},
        {"PROXY UNKNOWNX\r\n", GW_PP_EV1PROTO, 13},
        {"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", GW_PP_EV1ADDR, 11},
        {"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", GW_PP_EV1ADDR, 11},
        {"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", GW_PP_EV1ADDR, 11},
        {"PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n", GW_PP_EV1ADDR, 11},
        {"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", GW_PP_EV1ADDR, 11},
        {"PROXY TCP4 1.2.3.4 5.6.7.8.9.10.11.12 1 2\r\n", GW_PP_EV1ADDR, 34},
        {"PROXY TCP4 ::1 ::1 1 2\r\n", GW_PP_EV1ADDR, 11},
        {"PROXY TCP4 1.2.3.4 5.6.7.8\r\n", GW_PP_EV1ADDR, 26},
        {"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", GW_PP_EV1ADDR, 11},
        {"PROXY TCP6 ::1 fe80::1%lo 1 2\r\n", GW_PP_EV1ADDR, 22},
        {"PROXY TCP6 ::1 :::1 1 2\r\n", GW_PP_EV1ADDR, 15},
        {"PROXY TCP6 0000:0000:0000:0000:0000:ffff:255.255.255.255 ::1 1 2\r\n", GW_PP_EV1ADDR, 50},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", GW_PP_EV1PORT, 28},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n", GW_PP_EV1PORT, 30},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", GW_PP_EV1PORT, 27},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 999999\r\n", GW_PP_EV1PORT, 29},
        {"PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n", GW_PP_EV1PORT, 27},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", GW_PP_EV1PORT, 27},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", GW_PP_EV1PORT, 30},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n", GW_PP_EV1PORT, 29},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", GW_PP_EV1CRLF, 30},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", GW_PP_EV1CRLF, 31},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rGET", GW_PP_EV1CRLF, 31},
        {"PROXY UNKNOWN\n", GW_PP_EV1CRLF, 13},
        {"PROXY UNKNOWN\rX\n", GW_PP_EV1CRLF, 14},
        {"PROXY UNKNOWN a\nb\r\n", GW_PP_EV1CRLF, 15},
        {"PROXY UNKNOWN a\rb\r\n", GW_PP_EV1CRLF, 16},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gw_pp_result_t r;
        size_t at;
        int rc = check_text(cases[i].line, GW_PP_ANY, &r, &at);
        if (rc != cases[i].rc || r.err_pos != cases[i].pos)
            fail_msg("[%s]: %s at %zu, want %s at %zu", cases[i].line, gw_pp_strerror(rc),
                     r.err_pos, gw_pp_strerror(cases[i].rc), cases[i].pos);
        assert_int_equal(r.version, 1);
    }
}

/* A truncated line is NEED_MORE at every length, never an error nor DONE. */
static void pp_v1_truncated_is_need_more(void **state)
{
    (void)state;
    const char *lines[] = {"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
                           "PROXY TCP6 2001:db8::1 2001:db8::2 0 65535\r\n", "PROXY UNKNOWN\r\n",
                           "PROXY UNKNOWN ::1 ::2 1 2\r\n",
                           /* the shortest of each kind: `need` must not promise more */
                           "PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", "PROXY TCP6 :: :: 0 0\r\n"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        size_t n = strlen(lines[i]);
        gw_pp_result_t r;
        size_t at;
        assert_int_equal(check(lines[i], n - 1, GW_PP_ANY, &r, &at), 0);
        assert_int_equal(at, n);
        assert_int_equal(r.need, 1);
        assert_int_equal(check(lines[i], n, GW_PP_ANY, &r, &at), (int)n);
    }
}

/* ---- signatures and versions ------------------------------------------------------------ */

/* What a client that speaks no PROXY sends is refused at once, never waited on. */
static void pp_not_proxy_refused_at_first_decisive_byte(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t n, at;
    } cases[] = {
        {"GET / HTTP/1.1\r\n", 16, 1},
        {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11, 1}, /* a TLS ClientHello */
        {"PRI * HTTP/2.0\r\n", 16, 3},
        {"POST / HTTP/1.1\r\n", 17, 2},
        {"SSH-2.0-OpenSSH\r\n", 17, 1},
        {"proxy tcp4", 10, 1},
        {"PROXYTCP4", 9, 6},
        {"\r\n\r\nGET", 7, 5},
        {"\r\n\r\n\0\r\nQUIT\r", 12, 12},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gw_pp_result_t r;
        size_t at;
        int rc = check(cases[i].s, cases[i].n, GW_PP_ANY, &r, &at);
        if (rc != GW_PP_EBADSIG || at != cases[i].at)
            fail_msg("case %zu: %s decided at %zu, want bad_signature at %zu", i,
                     gw_pp_strerror(rc), at, cases[i].at);
        assert_int_equal(r.err_pos, cases[i].at - 1);
        assert_int_equal(r.version, 0);
    }
}

static void pp_empty_input_needs_more(void **state)
{
    (void)state;
    gw_pp_result_t r;
    assert_int_equal(gw_pp_parse(NULL, 0, GW_PP_ANY, &r), 0);
    assert_int_equal(r.need, 15); /* "PROXY UNKNOWN\r\n" is the shortest header */
    assert_int_equal(gw_pp_parse(NULL, 0, GW_PP_V2, &r), 0);
    assert_int_equal(r.need, 16);
    assert_int_equal(gw_pp_parse((const uint8_t *)"\r", 1, GW_PP_ANY, &r), 0);
    assert_int_equal(r.need, 15);
}

/* A listener accepting one version refuses the other by name, once its signature is whole. */
static void pp_version_not_accepted(void **state)
{
    (void)state;
    const char *v1 = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
    gw_pp_result_t r;
    size_t at;
    assert_int_equal(check_text(v1, GW_PP_V2, &r, &at), GW_PP_ENOTACCEPTED);
    assert_int_equal(at, 6);
    uint8_t v2[16] = SIG "\x20\x00\x00\x00";
    assert_int_equal(check(v2, 16, GW_PP_V1, &r, &at), GW_PP_ENOTACCEPTED);
    assert_int_equal(at, 12);
    assert_int_equal(check(v2, 16, GW_PP_V2, &r, &at), 16);
    assert_int_equal(check(v2, 16, GW_PP_ANY, &r, &at), 16);
    /* neither signature: the same answer whatever the listener accepts */
    assert_int_equal(check_text("GET /", GW_PP_V1, &r, &at), GW_PP_EBADSIG);
    assert_int_equal(check_text("GET /", GW_PP_V2, &r, &at), GW_PP_EBADSIG);
    assert_int_equal(at, 1);
}

/* ---- v2 --------------------------------------------------------------------------------- */

/* A v2 header as the spec lays it out (2.2): TCP over IPv4, 192.168.0.1:56324 ->
 * 192.168.0.11:443 (the v1 example's connection), then the client's bytes. */
static void pp_v2_tcp4_spec_layout(void **state)
{
    (void)state;
    static const uint8_t b[] = SIG "\x21\x11\x00\x0c"
                                   "\xc0\xa8\x00\x01\xc0\xa8\x00\x0b\xdc\x04\x01\xbb"
                                   "GET /";
    gw_pp_result_t r;
    size_t at;
    assert_int_equal(check(b, sizeof b - 1, GW_PP_ANY, &r, &at), 28);
    assert_int_equal(at, 28);
    assert_int_equal(r.version, 2);
    assert_int_equal(r.command, GW_PP_PROXY);
    assert_int_equal(r.family, GW_PP_TCP4);
    assert_int_equal(r.v2_family, 0x11);
    expect_addr(&r.src, "192.168.0.1", 56324);
    expect_addr(&r.dst, "192.168.0.11", 443);
    assert_int_equal(r.tlvs.off, 28);
    assert_int_equal(r.tlvs.len, 0);
}

static void pp_v2_tcp6(void **state)
{
    (void)state;
    static const uint8_t b[] = SIG "\x21\x21\x00\x24"
                                   "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"
                                   "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x02"
                                   "\x00\x00\xff\xff";
    gw_pp_result_t r;
    assert_int_equal(check(b, sizeof b - 1, GW_PP_V2, &r, NULL), 52);
    assert_int_equal(r.family, GW_PP_TCP6);
    expect_addr(&r.src, "2001:db8::1", 0);
    expect_addr(&r.dst, "2001:db8::2", 65535);
}

/* LOCAL (a health check): the block is skipped, whatever family it names; no addresses. */
static void pp_v2_local(void **state)
{
    (void)state;
    gw_pp_result_t r;
    static const uint8_t plain[] = SIG "\x20\x00\x00\x00";
    assert_int_equal(check(plain, 16, GW_PP_ANY, &r, NULL), 16);
    assert_int_equal(r.command, GW_PP_LOCAL);
    assert_int_equal(r.family, GW_PP_UNSPEC);
    static const uint8_t with_addr[] = SIG "\x20\x11\x00\x0f"
                                           "\x7f\0\0\x01\x7f\0\0\x01\0\x01\0\x02"
                                           "\x99\x99\x99";
    assert_int_equal(check(with_addr, sizeof with_addr - 1, GW_PP_ANY, &r, NULL), 31);
    assert_int_equal(r.command, GW_PP_LOCAL);
    assert_int_equal(r.family, GW_PP_UNSPEC);
    assert_int_equal(r.src.ss_family, AF_UNSPEC);
    assert_int_equal(r.seen, 0);
    assert_int_equal(r.tlvs.len, 0);
    /* "must not assume zero is presented for LOCAL": and not the family's size either */
    static const uint8_t short_local[] = SIG "\x20\x21\x00\x00";
    assert_int_equal(check(short_local, 16, GW_PP_ANY, &r, NULL), 16);
}

/* Families the gateway cannot use fall back to UNSPEC (spec 2.2), their bytes skipped. */
static void pp_v2_unspec_udp_unix_fall_back(void **state)
{
    (void)state;
    gw_pp_result_t r;
    uint8_t b[16 + 216 + 7];
    memcpy(b, SIG "\x21\x00\x00\x05", 16);
    memset(b + 16, 0xee, 5); /* junk: an UNSPEC block is not read */
    assert_int_equal(check(b, 21, GW_PP_ANY, &r, NULL), 21);
    assert_int_equal(r.command, GW_PP_PROXY);
    assert_int_equal(r.family, GW_PP_UNSPEC);
    assert_int_equal(r.v2_family, 0x00);
    memcpy(b, SIG "\x21\x12\x00\x0c", 16); /* UDP over IPv4 */
    assert_int_equal(check(b, 28, GW_PP_ANY, &r, NULL), 28);
    assert_int_equal(r.family, GW_PP_UNSPEC);
    assert_int_equal(r.v2_family, 0x12);
    assert_int_equal(r.src.ss_family, AF_UNSPEC);
    memcpy(b, SIG "\x21\x31\x00\xdf", 16); /* UNIX stream, 216 bytes, then a TLV */
    memset(b + 16, 0, 216);
    memcpy(b + 16 + 216,
           "\x05\x00\x04"
           "abcd",
           7);
    assert_int_equal(check(b, sizeof b, GW_PP_ANY, &r, NULL), (int)sizeof b);
    assert_int_equal(r.family, GW_PP_UNSPEC);
    assert_int_equal(r.v2_family, 0x31);
    expect_span(b, r.unique_id, "abcd"); /* TLVs after a known-size block are still read */
}

static void pp_v2_bad_fixed_fields(void **state)
{
    (void)state;
    static const struct {
        const char *hdr; /* the 4 bytes after the signature */
        int rc;
        size_t pos, at;
    } cases[] = {
        {"\x11\x11\x00\x0c", GW_PP_EV2VERSION, 12, 13},
        {"\x31\x11\x00\x0c", GW_PP_EV2VERSION, 12, 13},
        {"\x01\x11\x00\x0c", GW_PP_EV2VERSION, 12, 13},
        {"\x22\x11\x00\x0c", GW_PP_EV2COMMAND, 12, 13},
        {"\x2f\x11\x00\x0c", GW_PP_EV2COMMAND, 12, 13},
        {"\x21\x13\x00\x0c", GW_PP_EV2FAMILY, 13, 14},
        {"\x21\x41\x00\x0c", GW_PP_EV2FAMILY, 13, 14},
        {"\x21\x10\x00\x0c", GW_PP_EV2FAMILY, 13, 14},
        {"\x21\x01\x00\x0c", GW_PP_EV2FAMILY, 13, 14},
        {"\x20\xff\x00\x00", GW_PP_EV2FAMILY, 13, 14},
        {"\x21\x11\x09\x00", GW_PP_EV2TOOBIG, 14, 15}, /* the high byte alone says so */
        {"\x21\x11\xff\xff", GW_PP_EV2TOOBIG, 14, 15},
        {"\x21\x11\x08\x01", GW_PP_EV2TOOBIG, 14, 16},
        {"\x20\x00\x08\x01", GW_PP_EV2TOOBIG, 14, 16},
        {"\x21\x11\x00\x0b", GW_PP_EV2SHORTADDR, 14, 16},
        {"\x21\x12\x00\x00", GW_PP_EV2SHORTADDR, 14, 16},
        {"\x21\x21\x00\x23", GW_PP_EV2SHORTADDR, 14, 16},
        {"\x21\x31\x00\xd7", GW_PP_EV2SHORTADDR, 14, 16},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t b[64] = {0};
        memcpy(b, SIG, 12);
        memcpy(b + 12, cases[i].hdr, 4);
        gw_pp_result_t r;
        size_t at;
        int rc = check(b, sizeof b, GW_PP_ANY, &r, &at);
        if (rc != cases[i].rc || r.err_pos != cases[i].pos || at != cases[i].at)
            fail_msg("case %zu: %s at %zu decided at %zu, want %s at %zu decided at %zu", i,
                     gw_pp_strerror(rc), r.err_pos, at, gw_pp_strerror(cases[i].rc), cases[i].pos,
                     cases[i].at);
        assert_int_equal(r.version, 2);
    }
}

/* The length's bound is exact: GW_PP_V2_LEN_MAX passes, one more does not. */
static void pp_v2_length_limit(void **state)
{
    (void)state;
    static uint8_t b[GW_PP_MAX + 1];
    memcpy(b, SIG "\x21\x11", 14);
    b[14] = GW_PP_V2_LEN_MAX >> 8;
    b[15] = GW_PP_V2_LEN_MAX & 0xff;
    memset(b + 16, 0, 12);
    size_t noop = GW_PP_V2_LEN_MAX - 12 - 3; /* one NOOP TLV fills the rest */
    b[28] = GW_PP2_TYPE_NOOP;
    b[29] = (uint8_t)(noop >> 8);
    b[30] = (uint8_t)noop;
    gw_pp_result_t r;
    size_t at;
    assert_int_equal(check(b, GW_PP_MAX, GW_PP_ANY, &r, &at), GW_PP_MAX);
    assert_int_equal(r.len, GW_PP_MAX);
    /* NEED_MORE says exactly what is missing once the length is in */
    assert_int_equal(gw_pp_parse(b, 16, GW_PP_ANY, &r), 0);
    assert_int_equal(r.need, GW_PP_V2_LEN_MAX);
    assert_int_equal(gw_pp_parse(b, 100, GW_PP_ANY, &r), 0);
    assert_int_equal(r.need, GW_PP_MAX - 100);
    b[15]++;
    expect_err(b, 16, GW_PP_ANY, GW_PP_EV2TOOBIG, 14);
}

/* A truncated v2 header is NEED_MORE at every length, never an error nor DONE. */
static void pp_v2_truncated_is_need_more(void **state)
{
    (void)state;
    uint8_t b[256];
    size_t n = unhex("0d0a0d0a000d0a515549540a211100267f0000017f000001d984b7ff030004d95069da05"
                     "00106162633132332d3132372e302e302e31",
                     b);
    gw_pp_result_t r;
    size_t at;
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(gw_pp_parse(b, k, GW_PP_ANY, &r), 0);
        assert_true(r.need >= 1 && k + r.need <= n);
        if (k >= 16)
            assert_int_equal(k + r.need, n);
    }
    assert_int_equal(check(b, n, GW_PP_ANY, &r, &at), (int)n);
    assert_int_equal(at, n);
}

/* Captured on this machine: HAProxy 2.6.12, `send-proxy-v2 proxy-v2-options
 * crc32c,unique-id` with `unique-id-format abc123-%ci`, a client from 127.0.0.1. */
static void pp_v2_haproxy_crc32c_unique_id(void **state)
{
    (void)state;
    uint8_t b[256];
    size_t n = unhex("0d0a0d0a000d0a515549540a211100267f0000017f000001d984b7ff030004d95069da05"
                     "00106162633132332d3132372e302e302e3168656c6c6f",
                     b);
    gw_pp_result_t r;
    int rc = check(b, n, GW_PP_ANY, &r, NULL);
    assert_int_equal(rc, 54);
    assert_memory_equal(b + rc, "hello", 5);
    expect_addr(&r.src, "127.0.0.1", 55684);
    expect_addr(&r.dst, "127.0.0.1", 47103);
    assert_int_equal(r.seen, GW_PP_SEEN_CRC32C | GW_PP_SEEN_UNIQUE_ID);
    assert_int_equal(r.crc32c, 0xd95069da);
    expect_span(b, r.unique_id, "abc123-127.0.0.1");
    /* one bit changed anywhere in the header breaks its checksum, which is checked where
     * its TLV is, before the TLVs after it are read */
    for (size_t i = 16; i < 54; i++) {
        if (i >= 31 && i < 35) /* the checksum itself */
            continue;
        b[i] ^= 0x01;
        gw_pp_result_t bad;
        int brc = gw_pp_parse(b, n, GW_PP_ANY, &bad);
        if (i == 29 || i == 30) /* the checksum's length: 0x0104 overruns, 0x0005 is wrong */
            assert_true(brc == GW_PP_EV2TLVOVERRUN || brc == GW_PP_EV2TLV);
        else if (i == 28) /* the checksum's type: now an AUTHORITY, nothing checks the rest */
            assert_int_equal(brc, 54);
        else
            assert_int_equal(brc, GW_PP_EV2CRC);
        b[i] ^= 0x01;
    }
}

/* Captured on this machine: HAProxy 2.6.12 behind a TLS frontend (ALPN h2, SNI
 * gw.example.test, a client certificate CN=alice), `send-proxy-v2 proxy-v2-options
 * ssl,cert-cn,ssl-cipher,cert-sig,cert-key,authority,crc32c`. */
static void pp_v2_haproxy_ssl_tlvs(void **state)
{
    (void)state;
    uint8_t b[256];
    size_t n = unhex("0d0a0d0a000d0a515549540a2111007b7f0000017f000001c106b800030004c717953701"
                     "0002683202000f67772e6578616d706c652e7465737420004e0700000000210007544c53"
                     "76312e33220005616c6963652500075253413230343824001165636473612d776974682d"
                     "534841323536230016544c535f4145535f3235365f47434d5f53484133383468656c6c6f",
                     b);
    gw_pp_result_t r;
    int rc = check(b, n, GW_PP_ANY, &r, NULL);
    assert_int_equal(rc, 139);
    assert_memory_equal(b + rc, "hello", 5);
    expect_addr(&r.src, "127.0.0.1", 49414);
    expect_addr(&r.dst, "127.0.0.1", 47104);
    expect_span(b, r.alpn, "h2");
    expect_span(b, r.authority, "gw.example.test");
    assert_int_equal(r.ssl_client,
                     GW_PP2_CLIENT_SSL | GW_PP2_CLIENT_CERT_CONN | GW_PP2_CLIENT_CERT_SESS);
    assert_int_equal(r.ssl_verify, 0);
    expect_span(b, r.ssl_version, "TLSv1.3");
    expect_span(b, r.ssl_cn, "alice");
    expect_span(b, r.ssl_cipher, "TLS_AES_256_GCM_SHA384");
    expect_span(b, r.ssl_sig_alg, "ecdsa-with-SHA256");
    expect_span(b, r.ssl_key_alg, "RSA2048");
    assert_int_equal(r.seen, 0x7ffu & ~(GW_PP_SEEN_UNIQUE_ID | GW_PP_SEEN_NETNS));
    /* the iterator shows the list as sent */
    static const uint8_t top[] = {GW_PP2_TYPE_CRC32C, GW_PP2_TYPE_ALPN, GW_PP2_TYPE_AUTHORITY,
                                  GW_PP2_TYPE_SSL};
    static const uint8_t sub[] = {0x21, 0x22, 0x25, 0x24, 0x23};
    gw_pp_tlv_t t;
    size_t pos = 0, k = 0;
    while (gw_pp_tlv_next(b, r.tlvs, &pos, &t)) {
        assert_true(k < sizeof top);
        assert_int_equal(t.type, top[k++]);
    }
    assert_int_equal(k, sizeof top);
    assert_int_equal(pos, r.tlvs.len);
    for (pos = 0, k = 0; gw_pp_tlv_next(b, r.ssl_tlvs, &pos, &t); k++) {
        assert_true(k < sizeof sub);
        assert_int_equal(t.type, sub[k]);
    }
    assert_int_equal(k, sizeof sub);
    assert_true(same_span(t.value, r.ssl_cipher));
}

/* Builds SIG, PROXY TCP4 127.0.0.1:1 -> 127.0.0.1:2, then TLVS[0..N) into B. */
static size_t v2_with(uint8_t *b, const void *tlvs, size_t n)
{
    size_t len = 12 + n;
    memcpy(b, SIG "\x21\x11", 14);
    b[14] = (uint8_t)(len >> 8);
    b[15] = (uint8_t)len;
    memcpy(b + 16, "\x7f\0\0\x01\x7f\0\0\x01\0\x01\0\x02", 12);
    memcpy(b + 28, tlvs, n);
    return 16 + len;
}

#define V2_WITH(b, lit) v2_with(b, lit, sizeof lit - 1)

static void pp_v2_tlv_overrun(void **state)
{
    (void)state;
    uint8_t b[512];
    size_t n;
    /* a TLV longer than what is left of the header */
    n = V2_WITH(b, "\x02\x00\x05"
                   "abcd");
    expect_err(b, n, GW_PP_ANY, GW_PP_EV2TLVOVERRUN, 28);
    n = V2_WITH(b, "\x04\x00\x00\x02\x00\x04"
                   "abcd\x05\xff\xff");
    expect_err(b, n, GW_PP_ANY, GW_PP_EV2TLVOVERRUN, 38);
    /* one or two bytes left over: not even a TLV's type and length */
    n = V2_WITH(b, "\x04\x00\x00\x04");
    expect_err(b, n, GW_PP_ANY, GW_PP_EV2TLVOVERRUN, 31);
    n = V2_WITH(b, "\x04\x00\x00\x04\x00");
    expect_err(b, n, GW_PP_ANY, GW_PP_EV2TLVOVERRUN, 31);
    /* a sub-TLV longer than its SSL TLV, though the header has the bytes */
    n = V2_WITH(b, "\x20\x00\x0a\x01\0\0\0\0\x21\x00\x03TLS\x04\x00\x00");
    expect_err(b, n, GW_PP_ANY, GW_PP_EV2TLVOVERRUN, 36);
    n = V2_WITH(b, "\x20\x00\x07\x01\0\0\0\0\x21\x00");
    expect_err(b, n, GW_PP_ANY, GW_PP_EV2TLVOVERRUN, 36);
    /* an SSL TLV longer than the header */
    n = V2_WITH(b, "\x20\x00\x09\x01\0\0\0\0\x21\x00\x00");
    expect_err(b, n, GW_PP_ANY, GW_PP_EV2TLVOVERRUN, 28);
}

static void pp_v2_tlv_zero_length(void **state)
{
    (void)state;
    uint8_t b[512];
    gw_pp_result_t r;
    size_t n = V2_WITH(b, "\x04\x00\x00\x01\x00\x00\xe0\x00\x00\x20\x00\x05\x01\0\0\0\x02");
    assert_int_equal(check(b, n, GW_PP_ANY, &r, NULL), (int)n);
    assert_int_equal(r.seen, GW_PP_SEEN_ALPN | GW_PP_SEEN_SSL);
    assert_int_equal(r.alpn.len, 0);
    assert_int_equal(r.ssl_client, GW_PP2_CLIENT_SSL);
    assert_int_equal(r.ssl_verify, 2);
    assert_int_equal(r.ssl_tlvs.len, 0);
    gw_pp_tlv_t t;
    size_t pos = 0, k = 0;
    while (gw_pp_tlv_next(b, r.tlvs, &pos, &t))
        k++;
    assert_int_equal(k, 4);
    /* SSL's value is at least client and verify */
    n = V2_WITH(b, "\x20\x00\x00");
    expect_err(b, n, GW_PP_ANY, GW_PP_EV2TLV, 28);
    n = V2_WITH(b, "\x20\x00\x04\x01\0\0\0");
    expect_err(b, n, GW_PP_ANY, GW_PP_EV2TLV, 28);
}

static void pp_v2_tlv_ssl_subtlvs(void **state)
{
    (void)state;
    uint8_t b[512];
    gw_pp_result_t r;
    /* version and CN; an unknown sub-type and an SSL TLV nested inside are skipped */
    size_t n = V2_WITH(b, "\x20\x00\x1b\x03\0\0\0\x01"
                          "\x21\x00\x07TLSv1.2"
                          "\x99\x00\x00"
                          "\x20\x00\x01\x07"
                          "\x22\x00\x02"
                          "CN");
    assert_int_equal(check(b, n, GW_PP_ANY, &r, NULL), (int)n);
    expect_span(b, r.ssl_version, "TLSv1.2");
    expect_span(b, r.ssl_cn, "CN");
    assert_int_equal(r.ssl_verify, 1);
    assert_int_equal(r.seen, GW_PP_SEEN_SSL | GW_PP_SEEN_SSL_VERSION | GW_PP_SEEN_SSL_CN);
    /* a sub-type given twice */
    n = V2_WITH(b, "\x20\x00\x0d\x01\0\0\0\0\x22\x00\x01x\x22\x00\x01y");
    expect_err(b, n, GW_PP_ANY, GW_PP_EV2TLV, 40);
    /* sub-TLV types at the top level mean nothing there: skipped */
    n = V2_WITH(b, "\x22\x00\x01x");
    assert_int_equal(check(b, n, GW_PP_ANY, &r, NULL), (int)n);
    assert_int_equal(r.seen, 0);
}

static void pp_v2_tlv_limits_and_duplicates(void **state)
{
    (void)state;
    uint8_t b[1024], tlv[300];
    gw_pp_result_t r;
    size_t n;
    for (int type = GW_PP2_TYPE_AUTHORITY; type <= GW_PP2_TYPE_UNIQUE_ID; type += 3) {
        size_t max = type == GW_PP2_TYPE_AUTHORITY ? 255 : 128;
        tlv[0] = (uint8_t)type;
        tlv[1] = 0;
        tlv[2] = (uint8_t)max;
        memset(tlv + 3, 'a', max);
        n = v2_with(b, tlv, 3 + max);
        assert_int_equal(check(b, n, GW_PP_ANY, &r, NULL), (int)n);
        tlv[1] = (uint8_t)((max + 1) >> 8);
        tlv[2] = (uint8_t)(max + 1);
        n = v2_with(b, tlv, 3 + max + 1);
        expect_err(b, n, GW_PP_ANY, GW_PP_EV2TLV, 28);
    }
    static const char *dups[] = {"\x01\x00\x01x\x01\x00\x01y", "\x02\x00\x01x\x02\x00\x01y",
                                 "\x05\x00\x01x\x05\x00\x01y", "\x30\x00\x01x\x30\x00\x01y",
                                 "\x20\x00\x05\x01\0\0\0\0\x20\x00\x05\x01\0\0\0\0"};
    for (size_t i = 0; i < sizeof dups / sizeof dups[0]; i++) {
        size_t l = i < 4 ? 8 : 16;
        n = v2_with(b, dups[i], l);
        expect_err(b, n, GW_PP_ANY, GW_PP_EV2TLV, 28 + l / 2);
    }
    /* NOOP and unknown types may repeat */
    n = V2_WITH(b, "\x04\x00\x00\x04\x00\x01x\xe0\x00\x00\xe0\x00\x00");
    assert_int_equal(check(b, n, GW_PP_ANY, &r, NULL), (int)n);
    n = V2_WITH(b, "\x30\x00\x03ns1");
    assert_int_equal(check(b, n, GW_PP_ANY, &r, NULL), (int)n);
    expect_span(b, r.netns, "ns1");
}

static void pp_v2_crc32c(void **state)
{
    (void)state;
    uint8_t b[512];
    size_t n = V2_WITH(b, "\x03\x00\x04\0\0\0\0\x02\x00\x01x");
    uint32_t c = gw_pp_crc32c(0, b, n);
    b[31] = (uint8_t)(c >> 24);
    b[32] = (uint8_t)(c >> 16);
    b[33] = (uint8_t)(c >> 8);
    b[34] = (uint8_t)c;
    gw_pp_result_t r;
    assert_int_equal(check(b, n, GW_PP_ANY, &r, NULL), (int)n);
    assert_int_equal(r.crc32c, c);
    b[34] ^= 0x80;
    expect_err(b, n, GW_PP_ANY, GW_PP_EV2CRC, 31);
    n = V2_WITH(b, "\x03\x00\x03\0\0\0");
    expect_err(b, n, GW_PP_ANY, GW_PP_EV2TLV, 28);
    n = V2_WITH(b, "\x03\x00\x05\0\0\0\0\0");
    expect_err(b, n, GW_PP_ANY, GW_PP_EV2TLV, 28);
    /* the check value of CRC-32C (RFC 3720 B.4; "123456789" -> e3069283) */
    assert_int_equal(gw_pp_crc32c(0, "123456789", 9), 0xe3069283);
    assert_int_equal(gw_pp_crc32c(gw_pp_crc32c(0, "1234", 4), "56789", 5), 0xe3069283);
}

/* ---- writers ---------------------------------------------------------------------------- */

static struct sockaddr_storage ip(const char *text, unsigned port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
    } else {
        assert_int_equal(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
    }
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static void pp_write_v1_lines(void **state)
{
    (void)state;
    uint8_t b[GW_PP_V1_MAX];
    struct sockaddr_storage a4 = ip("192.168.0.1", 56324), b4 = ip("192.168.0.11", 443);
    struct sockaddr_storage a6 = ip("2001:db8::1", 0), b6 = ip("::1", 65535);
    size_t n = gw_pp_write_v1(b, sizeof b, SA(a4), SA(b4));
    assert_int_equal(n, 47);
    assert_memory_equal(b, "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", 47);
    n = gw_pp_write_v1(b, sizeof b, SA(a6), SA(b6));
    assert_memory_equal(b, "PROXY TCP6 2001:db8::1 ::1 0 65535\r\n", n);
    n = gw_pp_write_v1(b, sizeof b, SA(a4), SA(b6)); /* mixed: the IPv4 one mapped */
    assert_memory_equal(b, "PROXY TCP6 ::ffff:192.168.0.1 ::1 56324 65535\r\n", n);
    n = gw_pp_write_v1(b, sizeof b, NULL, SA(b6));
    assert_memory_equal(b, "PROXY UNKNOWN\r\n", n);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    n = gw_pp_write_v1(b, sizeof b, (const struct sockaddr *)&un, SA(b4));
    assert_memory_equal(b, "PROXY UNKNOWN\r\n", n);
    /* too small a buffer: nothing */
    assert_int_equal(gw_pp_write_v1(b, 46, SA(a4), SA(b4)), 0);
    assert_int_equal(gw_pp_write_v1(b, 14, NULL, NULL), 0);
    assert_int_equal(gw_pp_write_v1(b, 15, NULL, NULL), 15);
}

/* Every address pair goes writer -> reader and comes back as it went (mixed pairs as the
 * mapped IPv6 the writer made). */
static void pp_roundtrip_v1_v2(void **state)
{
    (void)state;
    static const struct {
        const char *src, *dst, *want_src, *want_dst;
        gw_pp_family_t fam;
    } cases[] = {
        {"10.1.2.3", "10.9.8.7", "10.1.2.3", "10.9.8.7", GW_PP_TCP4},
        {"0.0.0.0", "255.255.255.255", "0.0.0.0", "255.255.255.255", GW_PP_TCP4},
        {"2001:db8::1", "fe80::1", "2001:db8::1", "fe80::1", GW_PP_TCP6},
        {"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
         "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", GW_PP_TCP6},
        {"10.1.2.3", "::1", "::ffff:10.1.2.3", "::1", GW_PP_TCP6},
    };
    static const unsigned ports[][2] = {{0, 65535}, {1, 10}, {56324, 443}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (size_t p = 0; p < 3; p++) {
            struct sockaddr_storage s = ip(cases[i].src, ports[p][0]);
            struct sockaddr_storage d = ip(cases[i].dst, ports[p][1]);
            uint8_t b[GW_PP_MAX];
            gw_pp_result_t r;
            for (int v = 1; v <= 2; v++) {
                size_t n = v == 1 ? gw_pp_write_v1(b, sizeof b, SA(s), SA(d))
                                  : gw_pp_write_v2(b, sizeof b, GW_PP_PROXY, SA(s), SA(d), NULL, 0);
                assert_true(n > 0);
                assert_int_equal(check(b, n, v == 1 ? GW_PP_V1 : GW_PP_V2, &r, NULL), (int)n);
                assert_int_equal(r.version, v);
                assert_int_equal(r.command, GW_PP_PROXY);
                assert_int_equal(r.family, cases[i].fam);
                expect_addr(&r.src, cases[i].want_src, ports[p][0]);
                expect_addr(&r.dst, cases[i].want_dst, ports[p][1]);
            }
        }
    }
}

static void pp_write_v2_local_and_unspec(void **state)
{
    (void)state;
    uint8_t b[64];
    gw_pp_result_t r;
    struct sockaddr_storage a4 = ip("10.0.0.1", 1), b4 = ip("10.0.0.2", 2);
    size_t n = gw_pp_write_v2(b, sizeof b, GW_PP_LOCAL, SA(a4), SA(b4), NULL, 0);
    assert_int_equal(n, 16);
    assert_memory_equal(b, SIG "\x20\x00\x00\x00", 16);
    assert_int_equal(check(b, n, GW_PP_V2, &r, NULL), 16);
    assert_int_equal(r.command, GW_PP_LOCAL);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    n = gw_pp_write_v2(b, sizeof b, GW_PP_PROXY, (const struct sockaddr *)&un, SA(b4), NULL, 0);
    assert_memory_equal(b, SIG "\x21\x00\x00\x00", 16);
    assert_int_equal(check(b, n, GW_PP_V2, &r, NULL), 16);
    assert_int_equal(r.command, GW_PP_PROXY);
    assert_int_equal(r.family, GW_PP_UNSPEC);
    n = gw_pp_write_v2(b, sizeof b, GW_PP_PROXY, SA(a4), SA(b4), NULL, 0);
    assert_int_equal(n, 28);
    assert_memory_equal(b, SIG "\x21\x11\x00\x0c\x0a\0\0\x01\x0a\0\0\x02\0\x01\0\x02", 28);
}

static void pp_write_v2_tlvs_roundtrip(void **state)
{
    (void)state;
    uint8_t ssl[64], b[GW_PP_MAX + 64];
    size_t sl = 0;
    memcpy(ssl, "\x05\0\0\0\0", 5); /* SSL | CERT_SESS, verified */
    sl = 5;
    sl += gw_pp_write_tlv(ssl + sl, sizeof ssl - sl, GW_PP2_SUBTYPE_SSL_VERSION, "TLSv1.2", 7);
    sl += gw_pp_write_tlv(ssl + sl, sizeof ssl - sl, GW_PP2_SUBTYPE_SSL_CN, "bob", 3);
    const gw_pp_out_tlv_t tlvs[] = {
        {GW_PP2_TYPE_ALPN, "http/1.1", 8},   {GW_PP2_TYPE_AUTHORITY, "a.example", 9},
        {GW_PP2_TYPE_UNIQUE_ID, "id-42", 5}, {GW_PP2_TYPE_SSL, ssl, (uint16_t)sl},
        {GW_PP2_TYPE_NETNS, "blue", 4},      {GW_PP2_TYPE_NOOP, NULL, 0},
        {GW_PP2_TYPE_CRC32C, NULL, 4},
    };
    struct sockaddr_storage s = ip("2001:db8::7", 4242), d = ip("2001:db8::8", 443);
    size_t n = gw_pp_write_v2(b, sizeof b, GW_PP_PROXY, SA(s), SA(d), tlvs, 7);
    assert_int_equal(n, 16 + 36 + 11 + 12 + 8 + 3 + sl + 7 + 3 + 7);
    gw_pp_result_t r;
    assert_int_equal(check(b, n, GW_PP_V2, &r, NULL), (int)n);
    expect_span(b, r.alpn, "http/1.1");
    expect_span(b, r.authority, "a.example");
    expect_span(b, r.unique_id, "id-42");
    expect_span(b, r.netns, "blue");
    expect_span(b, r.ssl_version, "TLSv1.2");
    expect_span(b, r.ssl_cn, "bob");
    assert_int_equal(r.ssl_client, 0x05);
    assert_int_equal(r.seen, 0xffu & ~GW_PP_SEEN_SSL_CIPHER & ~0x100u);
    /* every capacity short of the header writes nothing */
    for (size_t cap = 0; cap < n; cap++)
        assert_int_equal(gw_pp_write_v2(b, cap, GW_PP_PROXY, SA(s), SA(d), tlvs, 7), 0);
    /* a CRC32C TLV must be 4 bytes, and one */
    const gw_pp_out_tlv_t bad_crc[] = {{GW_PP2_TYPE_CRC32C, NULL, 2}};
    assert_int_equal(gw_pp_write_v2(b, sizeof b, GW_PP_PROXY, SA(s), SA(d), bad_crc, 1), 0);
    const gw_pp_out_tlv_t two_crc[] = {{GW_PP2_TYPE_CRC32C, NULL, 4},
                                       {GW_PP2_TYPE_CRC32C, NULL, 4}};
    assert_int_equal(gw_pp_write_v2(b, sizeof b, GW_PP_PROXY, SA(s), SA(d), two_crc, 2), 0);
    /* past the length the reader accepts: not written */
    static uint8_t big[GW_PP_V2_LEN_MAX];
    const gw_pp_out_tlv_t fits[] = {{GW_PP2_TYPE_NOOP, big, GW_PP_V2_LEN_MAX - 36 - 3}};
    assert_int_equal(gw_pp_write_v2(b, sizeof b, GW_PP_PROXY, SA(s), SA(d), fits, 1), GW_PP_MAX);
    assert_int_equal(check(b, GW_PP_MAX, GW_PP_V2, &r, NULL), GW_PP_MAX);
    const gw_pp_out_tlv_t over[] = {{GW_PP2_TYPE_NOOP, big, GW_PP_V2_LEN_MAX - 36 - 2}};
    assert_int_equal(gw_pp_write_v2(b, sizeof b, GW_PP_PROXY, SA(s), SA(d), over, 1), 0);
    assert_int_equal(gw_pp_write_tlv(b, 2, GW_PP2_TYPE_NOOP, NULL, 0), 0);
    assert_int_equal(gw_pp_write_tlv(b, 4, GW_PP2_TYPE_ALPN, "ab", 2), 0);
    assert_int_equal(gw_pp_write_tlv(b, 5, GW_PP2_TYPE_ALPN, "ab", 2), 5);
}

/* ---- names ------------------------------------------------------------------------------ */

static void pp_error_names_are_distinct_labels(void **state)
{
    (void)state;
    for (int a = 1; a <= GW_PP_ERROR_COUNT; a++) {
        const char *na = gw_pp_strerror(-a);
        assert_true(strlen(na) > 0 && strlen(na) <= 24);
        for (const char *c = na; *c; c++)
            assert_true((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_');
        assert_string_not_equal(na, "unknown");
        for (int b = a + 1; b <= GW_PP_ERROR_COUNT; b++)
            assert_string_not_equal(na, gw_pp_strerror(-b));
    }
    /* labels are an interface (logs, metrics, dashboards): each one pinned */
    static const char *const names[GW_PP_ERROR_COUNT] = {
        "bad_signature",  "version_not_accepted", "v1_too_long",      "v1_bad_protocol",
        "v1_bad_address", "v1_bad_port",          "v1_bad_line_end",  "v2_bad_version",
        "v2_bad_command", "v2_bad_family",        "v2_short_address", "v2_too_big",
        "v2_tlv_overrun", "v2_bad_tlv",           "v2_bad_crc32c",
    };
    for (int e = 1; e <= GW_PP_ERROR_COUNT; e++)
        assert_string_equal(gw_pp_strerror(-e), names[e - 1]);
    assert_string_equal(gw_pp_strerror(GW_PP_EBADSIG), "bad_signature");
    assert_string_equal(gw_pp_strerror(GW_PP_EV2CRC), "v2_bad_crc32c");
    assert_string_equal(gw_pp_strerror(0), "need_more");
    assert_string_equal(gw_pp_strerror(16), "done");
    assert_string_equal(gw_pp_strerror(-GW_PP_ERROR_COUNT - 1), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pp_v1_spec_example),
        cmocka_unit_test(pp_v1_as_haproxy_and_nginx_send),
        cmocka_unit_test(pp_v1_longest_lines),
        cmocka_unit_test(pp_v1_unknown),
        cmocka_unit_test(pp_v1_malformed),
        cmocka_unit_test(pp_v1_truncated_is_need_more),
        cmocka_unit_test(pp_not_proxy_refused_at_first_decisive_byte),
        cmocka_unit_test(pp_empty_input_needs_more),
        cmocka_unit_test(pp_version_not_accepted),
        cmocka_unit_test(pp_v2_tcp4_spec_layout),
        cmocka_unit_test(pp_v2_tcp6),
        cmocka_unit_test(pp_v2_local),
        cmocka_unit_test(pp_v2_unspec_udp_unix_fall_back),
        cmocka_unit_test(pp_v2_bad_fixed_fields),
        cmocka_unit_test(pp_v2_length_limit),
        cmocka_unit_test(pp_v2_truncated_is_need_more),
        cmocka_unit_test(pp_v2_haproxy_crc32c_unique_id),
        cmocka_unit_test(pp_v2_haproxy_ssl_tlvs),
        cmocka_unit_test(pp_v2_tlv_overrun),
        cmocka_unit_test(pp_v2_tlv_zero_length),
        cmocka_unit_test(pp_v2_tlv_ssl_subtlvs),
        cmocka_unit_test(pp_v2_tlv_limits_and_duplicates),
        cmocka_unit_test(pp_v2_crc32c),
        cmocka_unit_test(pp_write_v1_lines),
        cmocka_unit_test(pp_roundtrip_v1_v2),
        cmocka_unit_test(pp_write_v2_local_and_unspec),
        cmocka_unit_test(pp_write_v2_tlvs_roundtrip),
        cmocka_unit_test(pp_error_names_are_distinct_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
