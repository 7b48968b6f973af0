/* test_chash.c - consistent hashing: client-address hashing, the ring's spread and weights,
 * and the remap property (taking one of N backends out moves only its own keys). */
#include "gwtest.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "02-lb/backend.h"
#include "02-lb/balancer.h"
#include "02-lb/chash.h"

#define MAXB 8
#define NONE SIZE_MAX
#define NKEYS 10000

typedef struct fixture_s {
    gw_backend_t be[MAXB];
    gw_lb_member_t m[MAXB]; /* the table's view: backend and weight */
    bool usable[MAXB];
    size_t n;
} fixture_t;

/* N backends 10.0.0.1:8080.. with WEIGHTS, all usable. */
static void fixture_init(fixture_t *f, const unsigned *weights, size_t n)
{
    assert_true(n <= MAXB);
    f->n = n;
    for (size_t i = 0; i < n; i++) {
        char text[48];
        const char *why = NULL;
        gw_addr_t a;
        snprintf(text, sizeof(text), "10.0.0.%zu:8080", i + 1);
        assert_int_equal(gw_addr_parse(text, false, false, &a, &why), 0);
        gw_backend_init(&f->be[i], &a);
        gw_backend_member_init(&f->m[i], &f->be[i], weights[i], NULL);
        f->m[i].pos = i;
        f->usable[i] = true;
    }
}

static uint64_t hash_text(int family, const char *ip, unsigned port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
    }
    return gw_hash_client_ip((const struct sockaddr *)&ss);
}

/* NKEYS distinct client addresses: half IPv4 (10.a.b.c), half IPv6 (2001:db8:a::b). */
static uint64_t keys[NKEYS];

static void make_keys(void)
{
    char ip[64];
    for (unsigned i = 0; i < NKEYS / 2; i++) {
        snprintf(ip, sizeof(ip), "10.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        keys[i] = hash_text(AF_INET, ip, 40000 + i % 1000);
        snprintf(ip, sizeof(ip), "2001:db8:%x::%x", i >> 8, i & 255);
        keys[NKEYS / 2 + i] = hash_text(AF_INET6, ip, 40000 + i % 1000);
    }
}

static int pick_key(gw_balancer_t *b, const bool *usable, size_t avoid, uint64_t key)
{
    gw_pick_t p = {.usable = usable, .avoid = avoid, .key = key};
    return gw_balancer_pick(b, &p);
}

/* OWNER[k] receives the backend of every key; COUNT[i] how many keys backend i got. */
static void map_keys(gw_balancer_t *b, const bool *usable, int *owner, unsigned *count)
{
    if (count != NULL)
        memset(count, 0, MAXB * sizeof(*count));
    for (size_t k = 0; k < NKEYS; k++) {
        owner[k] = pick_key(b, usable, NONE, keys[k]);
        assert_true(owner[k] >= 0 && owner[k] < MAXB);
        if (count != NULL)
            count[owner[k]]++;
    }
}

static gw_balancer_t *new_chash(fixture_t *f, uint64_t seed)
{
    gw_balancer_t *b = gw_balancer_new(GW_BAL_CONSISTENT_HASH, f->m, f->n, seed);
    assert_non_null(b);
    return b;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- hashing client addresses ------------------------------------------------------- */

static void hash_client_ip_ignores_port(void **state)
{
    (void)state;
    assert_true(hash_text(AF_INET, "192.0.2.7", 1) == hash_text(AF_INET, "192.0.2.7", 65535));
    assert_true(hash_text(AF_INET6, "2001:db8::7", 1) == hash_text(AF_INET6, "2001:db8::7", 443));
}

static void hash_client_ip_differs_by_address(void **state)
{
    (void)state;
    static uint64_t sorted[NKEYS];
    make_keys();
    memcpy(sorted, keys, sizeof(keys));
    qsort(sorted, NKEYS, sizeof(sorted[0]), cmp_u64);
    for (size_t k = 1; k < NKEYS; k++)
        assert_true(sorted[k] != sorted[k - 1]);
}

/* A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; they must hash alike. */
static void hash_client_ip_treats_v4_mapped_as_v4(void **state)
{
    (void)state;
    assert_true(hash_text(AF_INET, "192.0.2.7", 80) == hash_text(AF_INET6, "::ffff:192.0.2.7", 80));
    assert_true(hash_text(AF_INET, "192.0.2.7", 80) != hash_text(AF_INET6, "::192.0.2.7", 80));
}

/* ---- the ring ----------------------------------------------------------------------- */

static void chash_ring_has_160_points_per_weight(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, (unsigned[]){1, 2}, 2);
    gw_chash_t *r = gw_chash_new(f.m, f.n);
    assert_non_null(r);
    assert_int_equal(gw_chash_size(r), 3 * GW_CHASH_POINTS_PER_WEIGHT);
    gw_chash_free(r);
}

/* Weights 100,200 are 1,2 after dividing by their gcd: the same ring, no bigger. */
static void chash_scaled_weights_build_the_same_ring(void **state)
{
    (void)state;
    fixture_t f1, f2;
    fixture_init(&f1, (unsigned[]){1, 2, 3}, 3);
    fixture_init(&f2, (unsigned[]){100, 200, 300}, 3);
    gw_balancer_t *b1 = new_chash(&f1, 0), *b2 = new_chash(&f2, 0);
    make_keys();
    for (size_t k = 0; k < NKEYS; k += 7)
        assert_int_equal(pick_key(b1, f1.usable, NONE, keys[k]),
                         pick_key(b2, f2.usable, NONE, keys[k]));
    gw_chash_t *r = gw_chash_new(f2.m, f2.n);
    assert_non_null(r);
    assert_int_equal(gw_chash_size(r), 6 * GW_CHASH_POINTS_PER_WEIGHT);
    gw_chash_free(r);
    gw_balancer_free(b1);
    gw_balancer_free(b2);
}

/* Large coprime weights would need 160 * 2997 points: the ring is capped, and the shares
 * still follow the weights (tolerance: 5 points, as for equal weights below). */
static void chash_large_weights_stay_under_the_cap(void **state)
{
    (void)state;
    fixture_t f;
    unsigned count[MAXB];
    int *owner = malloc(NKEYS * sizeof(*owner));
    assert_non_null(owner);
    fixture_init(&f, (unsigned[]){1000, 999, 998}, 3);
    gw_chash_t *r = gw_chash_new(f.m, f.n);
    assert_non_null(r);
    assert_true(gw_chash_size(r) <= GW_CHASH_MAX_POINTS);
    assert_true(gw_chash_size(r) >= 2997);
    gw_chash_free(r);
    gw_balancer_t *b = new_chash(&f, 0);
    make_keys();
    map_keys(b, f.usable, owner, count);
    for (size_t i = 0; i < 3; i++)
        assert_in_range(count[i], NKEYS * 28 / 100, NKEYS * 38 / 100);
    gw_balancer_free(b);
    free(owner);
}

/* ---- the balancer ------------------------------------------------------------------- */

/* Same key, same backend: on every pick, and in every worker (instances with other seeds
 * build the same ring). */
static void chash_same_key_same_backend(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, (unsigned[]){1, 1, 1, 1, 1}, 5);
    gw_balancer_t *b1 = new_chash(&f, 1), *b2 = new_chash(&f, 99);
    make_keys();
    for (size_t k = 0; k < NKEYS; k += 13) {
        int first = pick_key(b1, f.usable, NONE, keys[k]);
        assert_int_equal(pick_key(b1, f.usable, NONE, keys[k]), first);
        assert_int_equal(pick_key(b2, f.usable, NONE, keys[k]), first);
    }
    gw_balancer_free(b1);
    gw_balancer_free(b2);
}

/* Tolerance: each of 5 equal backends gets 20% +- 5 points of 10,000 keys (160 points
 * each leave a few points of spread; one point per backend would not come close). */
static void chash_spreads_keys_evenly(void **state)
{
    (void)state;
    fixture_t f;
    unsigned count[MAXB];
    int *owner = malloc(NKEYS * sizeof(*owner));
    assert_non_null(owner);
    fixture_init(&f, (unsigned[]){1, 1, 1, 1, 1}, 5);
    gw_balancer_t *b = new_chash(&f, 0);
    make_keys();
    map_keys(b, f.usable, owner, count);
    for (size_t i = 0; i < 5; i++)
        assert_in_range(count[i], NKEYS * 15 / 100, NKEYS * 25 / 100);
    gw_balancer_free(b);
    free(owner);
}

/* The ring is a promise to clients: the same address reaches the same backend across
 * releases, and across every proxy in front of the same backends. So its output is pinned,
 * not only its spread: weights 1,2,3 over the 10,000 keys give exactly these counts and these
 * first owners (computed before the ring's hash moved to common/hash.h and rand.h). */
static void chash_ring_is_pinned(void **state)
{
    (void)state;
    fixture_t f;
    unsigned count[MAXB];
    int *owner = malloc(NKEYS * sizeof(*owner));
    assert_non_null(owner);
    fixture_init(&f, (unsigned[]){1, 2, 3}, 3);
    gw_balancer_t *b = new_chash(&f, 0);
    make_keys();
    map_keys(b, f.usable, owner, count);
    static const int first[12] = {0, 2, 1, 2, 0, 1, 2, 2, 1, 2, 2, 1};  /* IPv4 keys */
    static const int first6[12] = {2, 0, 2, 1, 2, 2, 2, 2, 1, 2, 2, 2}; /* IPv6 keys */
    assert_int_equal(count[0], 1725);
    assert_int_equal(count[1], 3577);
    assert_int_equal(count[2], 4698);
    for (size_t k = 0; k < 12; k++) {
        assert_int_equal(owner[k], first[k]);
        assert_int_equal(owner[NKEYS / 2 + k], first6[k]);
    }
    gw_balancer_free(b);
    free(owner);
}

/* Weights 1,3: 25% / 75% +- 5 points. */
static void chash_respects_weights(void **state)
{
    (void)state;
    fixture_t f;
    unsigned count[MAXB];
    int *owner = malloc(NKEYS * sizeof(*owner));
    assert_non_null(owner);
    fixture_init(&f, (unsigned[]){1, 3}, 2);
    gw_balancer_t *b = new_chash(&f, 0);
    make_keys();
    map_keys(b, f.usable, owner, count);
    assert_in_range(count[0], NKEYS * 20 / 100, NKEYS * 30 / 100);
    gw_balancer_free(b);
    free(owner);
}

/* Taking backend 2 of 5 out moves exactly the keys it held, no other, and that is 15-25%
 * of them (1/5 +- 5 points). */
static void chash_removal_moves_only_its_keys(void **state)
{
    (void)state;
    fixture_t f;
    unsigned count[MAXB];
    int *before = malloc(NKEYS * sizeof(int)), *after = malloc(NKEYS * sizeof(int));
    assert_true(before != NULL && after != NULL);
    fixture_init(&f, (unsigned[]){1, 1, 1, 1, 1}, 5);
    gw_balancer_t *b = new_chash(&f, 0);
    make_keys();
    map_keys(b, f.usable, before, count);
    f.usable[2] = false;
    map_keys(b, f.usable, after, NULL);
    unsigned moved = 0;
    for (size_t k = 0; k < NKEYS; k++) {
        if (before[k] != 2)
            assert_int_equal(after[k], before[k]);
        else
            assert_int_not_equal(after[k], 2);
        moved += after[k] != before[k];
    }
    assert_int_equal(moved, count[2]);
    assert_in_range(moved, NKEYS * 15 / 100, NKEYS * 25 / 100);
    gw_balancer_free(b);
    free(before);
    free(after);
}

/* The removed backend's keys are shared by all the others (virtual nodes), not dumped on
 * one successor: each of the 4 gets at least 10% of them (an even share is 25%). */
static void chash_removed_keys_spread_over_the_rest(void **state)
{
    (void)state;
    fixture_t f;
    unsigned got[MAXB] = {0}, moved = 0;
    int *before = malloc(NKEYS * sizeof(int)), *after = malloc(NKEYS * sizeof(int));
    assert_true(before != NULL && after != NULL);
    fixture_init(&f, (unsigned[]){1, 1, 1, 1, 1}, 5);
    gw_balancer_t *b = new_chash(&f, 0);
    make_keys();
    map_keys(b, f.usable, before, NULL);
    f.usable[2] = false;
    map_keys(b, f.usable, after, NULL);
    for (size_t k = 0; k < NKEYS; k++)
        if (before[k] == 2) {
            got[after[k]]++;
            moved++;
        }
    for (size_t i = 0; i < 5; i++)
        if (i != 2)
            assert_true(got[i] * 10 >= moved);
    gw_balancer_free(b);
    free(before);
    free(after);
}

static void chash_restored_backend_gets_every_key_back(void **state)
{
    (void)state;
    fixture_t f;
    int *before = malloc(NKEYS * sizeof(int)), *after = malloc(NKEYS * sizeof(int));
    assert_true(before != NULL && after != NULL);
    fixture_init(&f, (unsigned[]){1, 1, 1, 1, 1}, 5);
    gw_balancer_t *b = new_chash(&f, 0);
    make_keys();
    map_keys(b, f.usable, before, NULL);
    f.usable[2] = false;
    map_keys(b, f.usable, after, NULL);
    f.usable[2] = true;
    map_keys(b, f.usable, after, NULL);
    assert_memory_equal(before, after, NKEYS * sizeof(int));
    gw_balancer_free(b);
    free(before);
    free(after);
}

/* A retry that avoids the key's backend goes where the key would go with that backend
 * down: the next point on the ring, so retries of one client agree with each other. */
static void chash_avoid_goes_where_removal_would(void **state)
{
    (void)state;
    fixture_t f;
    bool without[MAXB];
    fixture_init(&f, (unsigned[]){1, 1, 1, 1, 1}, 5);
    gw_balancer_t *b = new_chash(&f, 0);
    make_keys();
    for (size_t k = 0; k < NKEYS; k += 11) {
        int owner = pick_key(b, f.usable, NONE, keys[k]);
        memcpy(without, f.usable, sizeof(without));
        without[owner] = false;
        assert_int_equal(pick_key(b, f.usable, (size_t)owner, keys[k]),
                         pick_key(b, without, NONE, keys[k]));
    }
    gw_balancer_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hash_client_ip_ignores_port),
        cmocka_unit_test(hash_client_ip_differs_by_address),
        cmocka_unit_test(hash_client_ip_treats_v4_mapped_as_v4),
        cmocka_unit_test(chash_ring_has_160_points_per_weight),
        cmocka_unit_test(chash_scaled_weights_build_the_same_ring),
        cmocka_unit_test(chash_large_weights_stay_under_the_cap),
        cmocka_unit_test(chash_same_key_same_backend),
        cmocka_unit_test(chash_spreads_keys_evenly),
        cmocka_unit_test(chash_respects_weights),
        cmocka_unit_test(chash_ring_is_pinned),
        cmocka_unit_test(chash_removal_moves_only_its_keys),
        cmocka_unit_test(chash_removed_keys_spread_over_the_rest),
        cmocka_unit_test(chash_restored_backend_gets_every_key_back),
        cmocka_unit_test(chash_avoid_goes_where_removal_would),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
