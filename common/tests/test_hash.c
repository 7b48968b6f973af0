/* test_hash.c - unit tests for hash.h: known answers that pin every output.
 *
 * These hashes place traffic (the consistent-hash ring of 02, rate-limit stripes of 03,
 * sticky splits and the host table of 04), so an output that moves is a behaviour change even
 * when every other test passes. The expected values were computed from the four copies that
 * hash.h replaced (02-lb/chash.c, 03-resilience/ratelimit.c, 04-http/mw_split.c and
 * 04-http/router.c, which all agreed), before they were removed; the first two FNV-1a values
 * are also the published ones. */
#include "gwtest.h"

#include <string.h>

#include "hash.h"

typedef struct {
    const char *text;
    uint64_t fnv1a; /* gw_hash_fnv1a(text, len, 0) */
    uint64_t bytes; /* gw_hash_bytes(text, len, 0) */
    uint64_t seed1; /* gw_hash_bytes(text, len, 1) */
    uint64_t seed2; /* gw_hash_bytes(text, len, 2) */
} kat_t;

static const kat_t kats[] = {
    {"", 0xcbf29ce484222325u, 0xf52a15e9a9b5e89bu, 0x7f555c6a530fdf81u, 0xc56012fd82281826u},
    {"a", 0xaf63dc4c8601ec8cu, 0x02c0bdbf481420f8u, 0x270aeb36a95726cfu, 0x7b8855250f3cde02u},
    {"foobar", 0x85944171f73967e8u, 0x404da9e3b74078c2u, 0x7362f8840f0f638fu, 0x9544e79cc6fb1010u},
    {"example.com", 0x576846634e2714c6u, 0x4d07e1c6cc597ab7u, 0xaaa69ea8bd604248u,
     0xc5054a9b9b264255u},
    {"backend-1", 0x06480907d2acb635u, 0x363540f699aea3ceu, 0x6d73f81ca6eb13c0u,
     0xde7f7605f3c5f97bu},
    {"user-7", 0xf84ba0aa754a486eu, 0x9e124c98a398664eu, 0x13002bf861cd4034u, 0x2d9857a9d12d417bu},
};

static void fnv1a_matches_known_answers(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof kats / sizeof kats[0]; i++)
        assert_int_equal(gw_hash_fnv1a(kats[i].text, strlen(kats[i].text), 0), kats[i].fnv1a);
}

/* Bytes at or above 0x80 are taken unsigned (a `char` would sign-extend them). */
static void fnv1a_reads_bytes_unsigned(void **state)
{
    (void)state;
    const unsigned char high[] = {0x80, 0xff, 0x00};
    assert_int_equal(gw_hash_fnv1a(high, sizeof high, 0), 0x2ee7781ae0ca32a0u);
}

/* The seed is XORed into the offset basis; mw_split.c relies on exactly that. */
static void fnv1a_seed_replaces_the_offset_basis(void **state)
{
    (void)state;
    assert_int_equal(gw_hash_fnv1a(NULL, 0, 0), GW_FNV1A64_BASIS);
    assert_int_equal(gw_hash_fnv1a(NULL, 0, 0x1234), GW_FNV1A64_BASIS ^ 0x1234);
    assert_int_equal(gw_hash_fnv1a("a", 1, 7), ((GW_FNV1A64_BASIS ^ 7) ^ 'a') * GW_FNV1A64_PRIME);
}

static void mix64_matches_known_answers(void **state)
{
    (void)state;
    assert_int_equal(gw_hash_mix64(0), 0);
    assert_int_equal(gw_hash_mix64(1), 0x5692161d100b05e5u);
    assert_int_equal(gw_hash_mix64(0xdeadbeefu), 0x4e062702ec929eeau);
    assert_int_equal(gw_hash_mix64(UINT64_MAX), 0xb4d055fcf2cbbd7bu);
    assert_int_equal(gw_hash_mix64(0x9e3779b97f4a7c15u), 0xe220a8397b1dcdafu);
}

static void bytes_matches_known_answers(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof kats / sizeof kats[0]; i++) {
        const char *t = kats[i].text;
        size_t n = strlen(t);
        assert_int_equal(gw_hash_bytes(t, n, 0), kats[i].bytes);
        assert_int_equal(gw_hash_bytes(t, n, 1), kats[i].seed1);
        assert_int_equal(gw_hash_bytes(t, n, 2), kats[i].seed2);
        assert_int_equal(gw_hash_bytes(t, n, 0), gw_hash_mix64(gw_hash_fnv1a(t, n, 0)));
    }
}

/* What 02's ring hashes for an IPv4 client, and a binary key under a 64-bit seed as 03's
 * rate limiter uses it. */
static void bytes_matches_known_answers_for_binary_keys(void **state)
{
    (void)state;
    const unsigned char ip[4] = {192, 0, 2, 7};
    unsigned char k16[16];
    for (size_t i = 0; i < sizeof k16; i++)
        k16[i] = (unsigned char)i;
    assert_int_equal(gw_hash_bytes(ip, sizeof ip, 0), 0xc03df2a62a30a5c7u);
    assert_int_equal(gw_hash_bytes(k16, sizeof k16, 0xdeadbeefu), 0x878781f12b15b5d9u);
}

/* What a keyed table needs (03's rate limiter): every byte of the key, its length and the
 * seed all move the hash. */
static void bytes_depends_on_every_byte_length_and_seed(void **state)
{
    (void)state;
    uint8_t k[16] = {0};
    uint64_t h0 = gw_hash_bytes(k, 16, 1);
    assert_int_equal(gw_hash_bytes(k, 16, 1), h0);
    assert_int_not_equal(gw_hash_bytes(k, 16, 2), h0);
    assert_int_not_equal(gw_hash_bytes(k, 15, 1), h0);
    for (int i = 0; i < 16; i++) {
        k[i] = 1;
        assert_int_not_equal(gw_hash_bytes(k, 16, 1), h0);
        k[i] = 0;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fnv1a_matches_known_answers),
        cmocka_unit_test(fnv1a_reads_bytes_unsigned),
        cmocka_unit_test(fnv1a_seed_replaces_the_offset_basis),
        cmocka_unit_test(mix64_matches_known_answers),
        cmocka_unit_test(bytes_matches_known_answers),
        cmocka_unit_test(bytes_matches_known_answers_for_binary_keys),
        cmocka_unit_test(bytes_depends_on_every_byte_length_and_seed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
