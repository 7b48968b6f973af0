/* fuzz_proxyproto.c - the PROXY protocol reader (proxyproto.h) on any bytes, fed as a
 * connection would receive them, and its writers on whatever it reads.
 *
 * Input: one byte choosing what the listener accepts (low two bits: v1, v2, both; 0 is
 * both), two bytes seeding the split sizes, then the bytes the peer sends.
 *
 * Invariants: every prefix is read from an exactly-sized copy (ASan sees a read past what was
 * received); once an answer other than NEED_MORE comes, every longer prefix gives the same
 * answer with the same fields (the answer does not depend on how the bytes were split), and
 * the whole input gives it too; NEED_MORE's `need` is >= 1 and never promises DONE sooner
 * than it comes; an error's position is inside what was read and its name is one of the
 * set; DONE is at most what was read, at most GW_PP_MAX (107 for v1); the TLV iterator walks
 * tlvs and ssl_tlvs to their exact ends and every recognised value lies inside them; a DONE
 * TCP4/TCP6 header re-written by gw_pp_write_v1 and gw_pp_write_v2 parses back to the same
 * addresses, and a v2 one re-written with its own TLVs is byte for byte the header read. */
#include <netinet/in.h>
#include <string.h>

#include "fuzz/gwfuzz.h"
#include "proxyproto.h"

static bool same_span(gw_pp_span_t a, gw_pp_span_t b)
{
    return a.off == b.off && a.len == b.len;
}

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

static int read_prefix(const uint8_t *p, size_t n, unsigned accept, gw_pp_result_t *out)
{
    char *cp = gw_fz_dup(p, n);
    int rc = gw_pp_parse((const uint8_t *)cp, n, accept, out);
    free(cp);
    GW_FZ_CHECK(strcmp(gw_pp_strerror(rc), "unknown") != 0, "answer %d", rc);
    if (rc < 0)
        GW_FZ_CHECK(out->err_pos < n, "%s at %zu of %zu", gw_pp_strerror(rc), out->err_pos, n);
    if (rc == 0)
        GW_FZ_CHECK(out->need >= 1, "need %zu", out->need);
    if (rc > 0) {
        GW_FZ_CHECK((size_t)rc <= n && (size_t)rc == out->len, "done %d of %zu", rc, n);
        GW_FZ_CHECK(rc <= (out->version == 1 ? GW_PP_V1_MAX : GW_PP_MAX), "v%u: %d bytes",
                    out->version, rc);
    }
    return rc;
}

static bool inside(gw_pp_span_t s, gw_pp_span_t in)
{
    return s.off >= in.off && (size_t)s.off + s.len <= (size_t)in.off + in.len;
}

/* The iterator walks BLOCK to its exact end; collects what it shows into OUT (up to MAX). */
static size_t walk(const uint8_t *b, gw_pp_span_t block, gw_pp_out_tlv_t *out, size_t max)
{
    size_t pos = 0, n = 0;
    gw_pp_tlv_t t;
    while (gw_pp_tlv_next(b, block, &pos, &t)) {
        GW_FZ_CHECK(inside(t.value, block), "tlv %u at %u+%u", t.type, t.value.off, t.value.len);
        if (n < max)
            out[n] = (gw_pp_out_tlv_t){t.type, b + t.value.off, t.value.len};
        n++;
    }
    GW_FZ_CHECK(pos == block.len, "walked %zu of %u", pos, block.len);
    return n;
}

static void check_tlvs(const uint8_t *b, const gw_pp_result_t *r)
{
    gw_pp_out_tlv_t tl[1];
    const gw_pp_span_t top[] = {r->alpn, r->authority, r->unique_id, r->netns, r->ssl_tlvs};
    const gw_pp_span_t sub[] = {r->ssl_version, r->ssl_cn, r->ssl_cipher, r->ssl_sig_alg,
                                r->ssl_key_alg};
    GW_FZ_CHECK((size_t)r->tlvs.off + r->tlvs.len <= r->len, "tlvs past the header");
    walk(b, r->tlvs, tl, 0);
    walk(b, r->ssl_tlvs, tl, 0);
    for (size_t i = 0; i < 5; i++) {
        GW_FZ_CHECK(top[i].len == 0 || inside(top[i], r->tlvs), "value %zu outside tlvs", i);
        GW_FZ_CHECK(sub[i].len == 0 || inside(sub[i], r->ssl_tlvs), "ssl %zu outside", i);
    }
}

static void same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    GW_FZ_CHECK(a->ss_family == b->ss_family, "family %d then %d", a->ss_family, b->ss_family);
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        GW_FZ_CHECK(x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr,
                    "ipv4 address changed");
    } else {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        GW_FZ_CHECK(x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0,
                    "ipv6 address changed");
    }
}

/* A DONE header with addresses, written again by both writers, reads back the same. */
static void rewrite(const uint8_t *b, const gw_pp_result_t *r)
{
    static uint8_t w[GW_PP_MAX];
    gw_pp_out_tlv_t tl[GW_PP_V2_LEN_MAX / 3];
    gw_pp_result_t back;
    const struct sockaddr *src = (const void *)&r->src, *dst = (const void *)&r->dst;
    size_t n = gw_pp_write_v1(w, sizeof w, src, dst);
    GW_FZ_CHECK(n > 0 && read_prefix(w, n, GW_PP_V1, &back) == (int)n, "v1 rewrite");
    GW_FZ_CHECK(back.family == r->family, "v1 family %d then %d", r->family, back.family);
    same_addr(&r->src, &back.src);
    same_addr(&r->dst, &back.dst);
    size_t k = r->version == 2 ? walk(b, r->tlvs, tl, sizeof tl / sizeof tl[0]) : 0;
    n = gw_pp_write_v2(w, sizeof w, GW_PP_PROXY, src, dst, tl, k);
    GW_FZ_CHECK(n > 0 && read_prefix(w, n, GW_PP_V2, &back) == (int)n, "v2 rewrite");
    same_addr(&r->src, &back.src);
    same_addr(&r->dst, &back.dst);
    if (r->version == 2) /* same addresses, same TLVs in order, CRC32C recomputed */
        GW_FZ_CHECK(n == r->len && memcmp(w, b, n) == 0, "v2 rewrite differs (%zu, %zu)", n,
                    r->len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gw_fz_t f = {data, size};
    unsigned accept = gw_fz_u8(&f) & 3u;
    uint32_t seed = gw_fz_u16(&f);
    accept = accept == 0 ? GW_PP_ANY : accept;
    const uint8_t *p = f.p;
    size_t n = f.n, got = 0, seen[64], needs[64], nseen = 0;
    gw_pp_result_t r, first;
    int rc0 = 0;
    size_t decided = 0;
    for (int step = 0; step < 64 && got < n; step++) {
        got += 1 + gw_fz_next(&seed) % (step < 8 ? 8 : 256);
        if (got > n || step == 63)
            got = n;
        int rc = read_prefix(p, got, accept, &r);
        if (decided == 0 && rc == 0) {
            seen[nseen] = got;
            needs[nseen++] = r.need;
            continue;
        }
        if (decided == 0) {
            decided = got, rc0 = rc, first = r;
            continue;
        }
        GW_FZ_CHECK(rc == rc0 && same_result(&r, &first), "%zu bytes: %s, at %zu: %s", got,
                    gw_pp_strerror(rc), decided, gw_pp_strerror(rc0));
    }
    int whole = read_prefix(p, n, accept, &r);
    if (decided != 0)
        GW_FZ_CHECK(whole == rc0 && same_result(&r, &first), "whole: %s, split: %s",
                    gw_pp_strerror(whole), gw_pp_strerror(rc0));
    if (whole > 0) {
        for (size_t i = 0; i < nseen; i++)
            GW_FZ_CHECK(seen[i] + needs[i] <= (size_t)whole, "%zu bytes: need %zu, done at %d",
                        seen[i], needs[i], whole);
        char *cp = gw_fz_dup(p, (size_t)whole);
        check_tlvs((const uint8_t *)cp, &r);
        if (r.family != GW_PP_UNSPEC)
            rewrite((const uint8_t *)cp, &r);
        free(cp);
    }
    return 0;
}
