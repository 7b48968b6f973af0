/* test_ratelimit.c - token buckets on made-up times (plain numbers, no clock): exact refill
 * over long spans, burst, Retry-After, the keyed table's cap and eviction, and real threads
 * taking from one bucket. */
#include "gwtest.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#include "03-resilience/ratelimit.h"

#define NS_PER_MS UINT64_C(1000000)
#define NS_PER_S UINT64_C(1000000000)
#define T0 NS_PER_S /* a made-up monotonic time, ns (the fake clock's start) */
#define NTHREADS 4

/* Polls B every STEP ns from START to END inclusive, taking whatever it grants. */
static uint64_t poll_span(gw_bucket_t *b, uint64_t start, uint64_t end, uint64_t step)
{
    uint64_t granted = 0;
    for (uint64_t t = start; t <= end; t += step)
        while (gw_bucket_take(b, t))
            granted++;
    return granted;
}

static void bucket_init_rejects_bad_settings(void **state)
{
    (void)state;
    gw_bucket_t b;
    assert_int_equal(gw_bucket_init(&b, 0, 1), GW_EINVAL);
    assert_int_equal(gw_bucket_init(&b, -1, 1), GW_EINVAL);
    assert_int_equal(gw_bucket_init(&b, NAN, 1), GW_EINVAL);
    assert_int_equal(gw_bucket_init(&b, GW_RATE_MAX * 2, 1), GW_EINVAL);
    assert_int_equal(gw_bucket_init(&b, 10, 0), GW_EINVAL);
    assert_int_equal(gw_bucket_init(&b, 10, GW_BURST_MAX + 1), GW_EINVAL);
    assert_int_equal(gw_bucket_init(&b, GW_RATE_MAX, GW_BURST_MAX), 0);
    assert_int_equal(gw_bucket_init(&b, GW_RATE_MIN, 1), 0);
}

static void bucket_starts_full_with_burst(void **state)
{
    (void)state;
    gw_bucket_t b;
    assert_int_equal(gw_bucket_init(&b, 7, 3), 0);
    for (int i = 0; i < 3; i++)
        assert_true(gw_bucket_take(&b, T0));
    assert_false(gw_bucket_take(&b, T0));
}

/* 7/s is 142857142.857... ns per token: an interval rounded to whole ns would drift. */
static void bucket_refill_exact_over_an_hour(void **state)
{
    (void)state;
    gw_bucket_t b;
    assert_int_equal(gw_bucket_init(&b, 7, 3), 0);
    assert_int_equal(poll_span(&b, T0, T0 + 3600 * NS_PER_S, NS_PER_MS), 7 * 3600 + 3);
    /* The same from a start that is not on a whole second. */
    assert_int_equal(gw_bucket_init(&b, 7, 3), 0);
    uint64_t s = T0 + 123456789;
    assert_int_equal(poll_span(&b, s, s + 3600 * NS_PER_S, NS_PER_MS), 7 * 3600 + 3);
}

static void bucket_refill_exact_at_half_per_second(void **state)
{
    (void)state;
    gw_bucket_t b;
    assert_int_equal(gw_bucket_init(&b, 0.5, 2), 0);
    uint64_t end = T0 + 10 * 3600 * NS_PER_S;
    assert_int_equal(poll_span(&b, T0, end, 10 * NS_PER_MS), 18000 + 2);
}

/* A rate that is no whole number of tokens per second is kept as the exact fraction. */
static void bucket_refill_exact_at_fractional_rate(void **state)
{
    (void)state;
    gw_bucket_t b;
    assert_int_equal(gw_bucket_init(&b, 33.3, 5), 0);
    assert_int_equal(poll_span(&b, T0, T0 + 1000 * NS_PER_S, NS_PER_MS), 33300 + 5);
}

/* No drift, checked token by token: over an hour at 7/s the k-th token after a drained
 * start arrives at exactly T0 + k/7 s, rounded up to the ns, and not one ns earlier. (A
 * count alone cannot see a drift of microseconds; this can.) */
static void bucket_each_token_arrives_on_time(void **state)
{
    (void)state;
    gw_bucket_t b;
    assert_int_equal(gw_bucket_init(&b, 7, 1), 0);
    assert_true(gw_bucket_take(&b, T0));
    for (uint64_t k = 1; k <= 7 * 3600; k++) {
        uint64_t due = T0 + (k * NS_PER_S + 6) / 7;
        assert_false(gw_bucket_take(&b, due - 1));
        assert_true(gw_bucket_take(&b, due));
    }
}

/* After a long idle period the bucket is full again, and no fuller than burst. */
static void bucket_burst_honoured_after_idle(void **state)
{
    (void)state;
    gw_bucket_t b;
    assert_int_equal(gw_bucket_init(&b, 10, 4), 0);
    assert_int_equal(poll_span(&b, T0, T0 + 60 * NS_PER_S, NS_PER_MS), 600 + 4);
    uint64_t t = T0 + 3600 * NS_PER_S; /* an hour of silence */
    for (int i = 0; i < 4; i++)
        assert_true(gw_bucket_take(&b, t));
    assert_false(gw_bucket_take(&b, t));
    assert_false(gw_bucket_take(&b, t + 100 * NS_PER_MS - 1)); /* 1/rate later, not before */
    assert_true(gw_bucket_take(&b, t + 100 * NS_PER_MS));
    assert_false(gw_bucket_take(&b, t + 100 * NS_PER_MS));
}

/* Random polling (fixed seed) over ten minutes: any run of burst+k grants spans at least
 * k emission intervals, to 1/1024 of one: the bucket never gives more than it may. */
static void bucket_never_exceeds_burst_plus_rate(void **state)
{
    (void)state;
    enum { BURST = 3, MAXG = 5000 };
    const uint64_t rate = 7;
    gw_bucket_t b;
    assert_int_equal(gw_bucket_init(&b, (double)rate, BURST), 0);
    static uint64_t g[MAXG];
    size_t n = 0;
    uint64_t rng = 42, t = T0;
    while (t < T0 + 600 * NS_PER_S && n < MAXG) {
        rng = rng * UINT64_C(6364136223846793005) + 1442695040888963407u;
        t += (rng >> 33) % (300 * NS_PER_MS); /* gaps of 0..300 ms, idle spells included */
        while (n < MAXG && gw_bucket_take(&b, t))
            g[n++] = t;
    }
    assert_true(n > 3000);
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 1; k <= 20 && i + BURST + k - 1 < n; k++) {
            unsigned __int128 span = g[i + BURST + k - 1] - g[i];
            /* b + k grants need span * rate >= k - 1/1024 tokens */
            assert_true(span * rate * 1024 >= (unsigned __int128)(k * 1024 - 1) * NS_PER_S);
        }
    }
}

/* wait_ns is exactly the time until take succeeds: not a ns too early, not a ns late. */
static void bucket_wait_ns_is_time_to_next_token(void **state)
{
    (void)state;
    gw_bucket_t b;
    assert_int_equal(gw_bucket_init(&b, 7, 2), 0);
    assert_int_equal(gw_bucket_wait_ns(&b, T0), 0);
    assert_true(gw_bucket_take(&b, T0));
    assert_true(gw_bucket_take(&b, T0));
    uint64_t w = gw_bucket_wait_ns(&b, T0);
    assert_int_equal(w, 142857143); /* 1/7 s, rounded up to the ns */
    assert_false(gw_bucket_take(&b, T0 + w - 1));
    assert_int_equal(gw_bucket_wait_ns(&b, T0 + w), 0);
    assert_true(gw_bucket_take(&b, T0 + w));
    /* At 0.5/s, a drained bucket waits 2 s. */
    assert_int_equal(gw_bucket_init(&b, 0.5, 1), 0);
    assert_true(gw_bucket_take(&b, T0));
    assert_int_equal(gw_bucket_wait_ns(&b, T0), 2 * NS_PER_S);
    assert_int_equal(gw_bucket_wait_ns(&b, T0 + NS_PER_S), NS_PER_S);
}

/* ---- threads on one bucket ------------------------------------------------------------ */

typedef struct bucket_race_s {
    gw_bucket_t b;
    _Atomic uint64_t now; /* the shared fake clock, ns */
    atomic_ullong granted;
    atomic_int go;
} bucket_race_t;

#define RACE_STEP 10000u /* ns each take moves the shared clock */
#define RACE_ROUNDS 100000

static void *bucket_racer(void *arg)
{
    bucket_race_t *r = arg;
    while (!atomic_load(&r->go)) {
    }
    unsigned long long mine = 0;
    for (int i = 0; i < RACE_ROUNDS; i++) {
        uint64_t now = atomic_fetch_add(&r->now, RACE_STEP) + RACE_STEP;
        mine += gw_bucket_take(&r->b, now);
    }
    atomic_fetch_add(&r->granted, mine);
    return NULL;
}

/* 4 threads, a shared clock that each take moves on (so the calls arrive with slightly out
 * of order times): never more than burst + span * rate, and with the bucket kept busy,
 * exactly that once the remainder is drained at the end. */
static void bucket_concurrent_takes_never_exceed_math(void **state)
{
    (void)state;
    static bucket_race_t r;
    memset(&r, 0, sizeof r);
    assert_int_equal(gw_bucket_init(&r.b, 1000, 10), 0);
    /* Lab code runs once on the test thread before the threads start (gwtest.h). */
    gw_bucket_t scratch;
    assert_int_equal(gw_bucket_init(&scratch, 1000, 10), 0);
    (void)gw_bucket_take(&scratch, T0);
    atomic_store(&r.now, T0);
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, bucket_racer, &r), 0);
    atomic_store(&r.go, 1);
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    uint64_t end = atomic_load(&r.now);
    /* The first take happened at T0 + RACE_STEP at the earliest. */
    uint64_t allowed = 10 + (end - T0 - RACE_STEP) / (NS_PER_S / 1000);
    uint64_t got = atomic_load(&r.granted);
    assert_true(got <= allowed);
    uint64_t drained = 0;
    while (gw_bucket_take(&r.b, end))
        drained++;
    assert_true(got + drained <= allowed);
    assert_true(got + drained + 1 >= allowed);
}

/* ---- keyed table ---------------------------------------------------------------------- */

static void keyed_new_rejects_bad_arguments(void **state)
{
    (void)state;
    assert_null(gw_keyed_new(0, 1, 100, 4));
    assert_null(gw_keyed_new(10, 0, 100, 4));
    assert_null(gw_keyed_new(10, 1, 0, 4));
    assert_null(gw_keyed_new(10, 1, 100, 0));
    gw_keyed_limiter_t *l = gw_keyed_new(10, 1, 3, 64); /* stripes shrink to fit 3 keys */
    assert_non_null(l);
    gw_keyed_free(l);
    gw_keyed_free(NULL);
}

static void keyed_each_key_has_own_bucket(void **state)
{
    (void)state;
    gw_keyed_limiter_t *l = gw_keyed_new(1, 2, 100, 4);
    assert_non_null(l);
    uint8_t a[4] = {10, 0, 0, 1}, b[4] = {10, 0, 0, 2};
    assert_true(gw_keyed_take(l, a, 4, T0));
    assert_true(gw_keyed_take(l, a, 4, T0));
    assert_false(gw_keyed_take(l, a, 4, T0));
    assert_true(gw_keyed_take(l, b, 4, T0));
    assert_true(gw_keyed_take(l, b, 4, T0));
    assert_false(gw_keyed_take(l, b, 4, T0));
    assert_false(gw_keyed_take(l, a, 4, T0 + NS_PER_S - 1));
    assert_true(gw_keyed_take(l, a, 4, T0 + NS_PER_S));
    assert_int_equal(gw_keyed_count(l), 2);
    gw_keyed_free(l);
}

/* A refused key waits exactly until its next token (Retry-After); other keys and unknown
 * keys do not wait. */
static void keyed_wait_ns_is_time_to_next_token(void **state)
{
    (void)state;
    gw_keyed_limiter_t *l = gw_keyed_new(7, 2, 100, 4);
    assert_non_null(l);
    uint8_t a[4] = {10, 0, 0, 1}, b[4] = {10, 0, 0, 2};
    assert_int_equal(gw_keyed_wait_ns(l, a, 4, T0), 0); /* not held: a full bucket */
    assert_true(gw_keyed_take(l, a, 4, T0));
    assert_int_equal(gw_keyed_wait_ns(l, a, 4, T0), 0); /* one token left */
    assert_true(gw_keyed_take(l, a, 4, T0));
    assert_false(gw_keyed_take(l, a, 4, T0));
    uint64_t w = gw_keyed_wait_ns(l, a, 4, T0);
    assert_int_equal(w, 142857143); /* 1/7 s, rounded up to the ns */
    assert_int_equal(gw_keyed_wait_ns(l, b, 4, T0), 0);
    assert_false(gw_keyed_take(l, a, 4, T0 + w - 1));
    assert_int_equal(gw_keyed_wait_ns(l, a, 4, T0 + w), 0);
    assert_true(gw_keyed_take(l, a, 4, T0 + w));
    gw_keyed_free(l);
}

/* Keys of different lengths are different keys, even when one is a prefix of the other. */
static void keyed_length_is_part_of_key(void **state)
{
    (void)state;
    gw_keyed_limiter_t *l = gw_keyed_new(1, 1, 100, 1);
    assert_non_null(l);
    uint8_t k[16] = {0};
    assert_true(gw_keyed_take(l, k, 4, T0));
    assert_true(gw_keyed_take(l, k, 16, T0));
    assert_false(gw_keyed_take(l, k, 4, T0));
    assert_int_equal(gw_keyed_count(l), 2);
    gw_keyed_free(l);
}

/* A million distinct addresses into a table capped at 10,000: never more than the cap. */
static void keyed_flood_never_exceeds_cap(void **state)
{
    (void)state;
    gw_keyed_limiter_t *l = gw_keyed_new(5, 5, 10000, 16);
    assert_non_null(l);
    for (uint32_t i = 0; i < 1000000; i++) {
        uint8_t k[16] = {0x20, 0x01, 0x0d, 0xb8};
        memcpy(k + 12, &i, sizeof i);
        assert_true(gw_keyed_take(l, k, 16, T0 + i)); /* each new key has its burst */
        if (i % 1000 == 0)
            assert_true(gw_keyed_count(l) <= 10000);
    }
    assert_int_equal(gw_keyed_count(l), 10000);
    assert_int_equal(gw_keyed_evictions(l), 1000000 - 10000);
    gw_keyed_free(l);
}

/* A full stripe evicts an idle key (bucket full again) before the least recently used
 * busy one, so the busy client keeps its state. */
static void keyed_evicts_idle_key_before_busy_one(void **state)
{
    (void)state;
    gw_keyed_limiter_t *l = gw_keyed_new(1, 2, 3, 1);
    assert_non_null(l);
    uint8_t a = 'a', b = 'b', c = 'c', d = 'd';
    assert_true(gw_keyed_take(l, &a, 1, T0)); /* a: drained, full again at T0 + 2 s */
    assert_true(gw_keyed_take(l, &a, 1, T0));
    assert_true(gw_keyed_take(l, &b, 1, T0)); /* b, c: full again at T0 + 1 s */
    assert_true(gw_keyed_take(l, &c, 1, T0));
    uint64_t t = T0 + 1500 * NS_PER_MS; /* a is the oldest, but still busy; b is idle */
    assert_true(gw_keyed_take(l, &d, 1, t));
    assert_int_equal(gw_keyed_evictions(l), 1);
    assert_int_equal(gw_keyed_count(l), 3);
    assert_true(gw_keyed_take(l, &a, 1, t)); /* a remembered: half a token left, 1 grant */
    assert_false(gw_keyed_take(l, &a, 1, t));
    gw_keyed_free(l);
}

/* With every key busy, the least recently used goes, and that client gets a fresh burst:
 * the accepted cost of the bound. A lookup makes a key recent. */
static void keyed_evicts_lru_when_all_busy(void **state)
{
    (void)state;
    gw_keyed_limiter_t *l = gw_keyed_new(1, 1, 2, 1);
    assert_non_null(l);
    uint8_t a = 'a', b = 'b', c = 'c';
    assert_true(gw_keyed_take(l, &a, 1, T0));
    assert_true(gw_keyed_take(l, &b, 1, T0));
    assert_false(gw_keyed_take(l, &a, 1, T0)); /* refused, but a is now the most recent */
    assert_true(gw_keyed_take(l, &c, 1, T0));  /* evicts b */
    assert_false(gw_keyed_take(l, &a, 1, T0)); /* a kept its (empty) bucket */
    assert_true(gw_keyed_take(l, &b, 1, T0));  /* b forgotten: a fresh burst (evicts c) */
    assert_int_equal(gw_keyed_evictions(l), 2);
    gw_keyed_free(l);
}

typedef struct keyed_race_s {
    gw_keyed_limiter_t *l;
    _Atomic uint64_t now;
    atomic_ullong granted_shared;
    atomic_int go;
} keyed_race_t;

/* Each thread takes for one shared key and for a stream of its own keys (which keeps the
 * small table evicting): the shared key's grants stay within its math. */
static void *keyed_racer(void *arg)
{
    keyed_race_t *r = arg;
    static atomic_uint next_id;
    unsigned id = atomic_fetch_add(&next_id, 1);
    while (!atomic_load(&r->go)) {
    }
    unsigned long long mine = 0;
    uint8_t shared[4] = {192, 0, 2, 1};
    for (uint32_t i = 0; i < 50000; i++) {
        uint64_t now = atomic_fetch_add(&r->now, RACE_STEP) + RACE_STEP;
        mine += gw_keyed_take(r->l, shared, 4, now);
        uint8_t own[8] = {(uint8_t)id};
        memcpy(own + 4, &i, sizeof i);
        gw_keyed_take(r->l, own, 8, now);
    }
    atomic_fetch_add(&r->granted_shared, mine);
    return NULL;
}

static void keyed_concurrent_takes_stay_within_cap_and_rate(void **state)
{
    (void)state;
    static keyed_race_t r;
    memset(&r, 0, sizeof r);
    r.l = gw_keyed_new(1000, 10, 512, 8);
    assert_non_null(r.l);
    /* Lab code runs once on the test thread before the threads start (gwtest.h), on a
     * table of its own. */
    gw_keyed_limiter_t *scratch = gw_keyed_new(1000, 10, 8, 1);
    assert_non_null(scratch);
    (void)gw_keyed_take(scratch, "k", 1, T0);
    gw_keyed_free(scratch);
    atomic_store(&r.now, T0);
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, keyed_racer, &r), 0);
    atomic_store(&r.go, 1);
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_true(gw_keyed_count(r.l) <= 512);
    uint64_t end = atomic_load(&r.now);
    /* The shared key may have been evicted now and then (a fresh burst each time), so the
     * bound allows one burst per eviction; without evictions it is the plain math. */
    uint64_t allowed = 10 + (end - T0) / (NS_PER_S / 1000) + 10 * gw_keyed_evictions(r.l);
    assert_true(atomic_load(&r.granted_shared) <= allowed);
    assert_true(atomic_load(&r.granted_shared) > 0);
    gw_keyed_free(r.l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bucket_init_rejects_bad_settings),
        cmocka_unit_test(bucket_starts_full_with_burst),
        cmocka_unit_test(bucket_refill_exact_over_an_hour),
        cmocka_unit_test(bucket_refill_exact_at_half_per_second),
        cmocka_unit_test(bucket_refill_exact_at_fractional_rate),
        cmocka_unit_test(bucket_each_token_arrives_on_time),
        cmocka_unit_test(bucket_burst_honoured_after_idle),
        cmocka_unit_test(bucket_never_exceeds_burst_plus_rate),
        cmocka_unit_test(bucket_wait_ns_is_time_to_next_token),
        cmocka_unit_test(bucket_concurrent_takes_never_exceed_math),
        cmocka_unit_test(keyed_new_rejects_bad_arguments),
        cmocka_unit_test(keyed_each_key_has_own_bucket),
        cmocka_unit_test(keyed_wait_ns_is_time_to_next_token),
        cmocka_unit_test(keyed_length_is_part_of_key),
        cmocka_unit_test(keyed_flood_never_exceeds_cap),
        cmocka_unit_test(keyed_evicts_idle_key_before_busy_one),
        cmocka_unit_test(keyed_evicts_lru_when_all_busy),
        cmocka_unit_test(keyed_concurrent_takes_stay_within_cap_and_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
