/* test_retry.c - backoff bounds and spread (fixed seeds), retry budget arithmetic, and real
 * threads acquiring from one budget. */
#include "gwtest.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "03-resilience/retry.h"

#define NTHREADS 4

static void backoff_cap_doubles_then_stops_at_max(void **state)
{
    (void)state;
    assert_int_equal(gw_backoff_cap(100, 5000, 0), 0);
    assert_int_equal(gw_backoff_cap(100, 5000, 1), 100);
    assert_int_equal(gw_backoff_cap(100, 5000, 2), 200);
    assert_int_equal(gw_backoff_cap(100, 5000, 3), 400);
    assert_int_equal(gw_backoff_cap(100, 5000, 6), 3200);
    assert_int_equal(gw_backoff_cap(100, 5000, 7), 5000);
    assert_int_equal(gw_backoff_cap(100, 5000, 8), 5000);
    assert_int_equal(gw_backoff_cap(100, 6400, 7), 6400); /* exactly max */
}

/* Large attempts (and a base whose doubling overflows 64 bits) give max, not garbage. */
static void backoff_cap_never_overflows(void **state)
{
    (void)state;
    assert_int_equal(gw_backoff_cap(100, 5000, 60), 5000);
    assert_int_equal(gw_backoff_cap(100, 5000, 64), 5000);
    assert_int_equal(gw_backoff_cap(100, 5000, 65), 5000);
    assert_int_equal(gw_backoff_cap(100, 5000, UINT32_MAX), 5000);
    assert_int_equal(gw_backoff_cap(UINT64_C(1) << 62, UINT64_MAX, 3), UINT64_MAX);
    assert_int_equal(gw_backoff_cap(3, UINT64_MAX, 63), UINT64_C(3) << 62);
    assert_int_equal(gw_backoff_cap(0, 5000, 40), 0);
}

static void backoff_delay_within_zero_and_cap(void **state)
{
    (void)state;
    uint64_t rng = 1;
    for (unsigned attempt = 0; attempt <= 70; attempt++) {
        uint64_t cap = gw_backoff_cap(50, 10000, attempt);
        for (int i = 0; i < 1000; i++)
            assert_true(gw_backoff_full_jitter(50, 10000, attempt, &rng) <= cap);
    }
    assert_int_equal(gw_backoff_full_jitter(50, 10000, 0, &rng), 0);
}

/* Full jitter really spreads: over 10,000 draws (fixed seed) the mean is close to cap / 2,
 * both ends of [0, cap] are reached, and every tenth of the range gets its share. */
static void backoff_full_jitter_spreads_uniformly(void **state)
{
    (void)state;
    uint64_t rng = 12345;
    const uint64_t cap = 1000;
    unsigned tenths[10] = {0};
    uint64_t sum = 0, lo = cap, hi = 0;
    for (int i = 0; i < 10000; i++) {
        uint64_t d = gw_backoff_full_jitter(125, 1000, 4, &rng);
        sum += d;
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
        tenths[d * 10 / (cap + 1)]++;
    }
    double mean = (double)sum / 10000.0;
    assert_true(mean > 485.0 && mean < 515.0); /* sd of the mean is about 2.9 */
    assert_true(lo <= 5);
    assert_true(hi >= 995);
    for (int k = 0; k < 10; k++)
        assert_true(tenths[k] > 850 && tenths[k] < 1150);
}

/* Two workers seeded differently draw different sequences; the same seed repeats. */
static void backoff_rng_state_belongs_to_caller(void **state)
{
    (void)state;
    uint64_t a = 7, b = 7, c = 8;
    int same = 0, differ = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = gw_backoff_full_jitter(1000, 60000, 6, &a);
        same += x == gw_backoff_full_jitter(1000, 60000, 6, &b);
        differ += x != gw_backoff_full_jitter(1000, 60000, 6, &c);
    }
    assert_int_equal(same, 100);
    assert_true(differ > 90);
}

/* Envoy's example: 20% of 50 active requests is 10 concurrent retries. */
static void budget_allows_percent_of_active(void **state)
{
    (void)state;
    gw_retry_budget_t b;
    gw_budget_init(&b);
    for (int i = 0; i < 10; i++)
        assert_true(gw_budget_try_acquire(&b, 50, 20, 3));
    assert_false(gw_budget_try_acquire(&b, 50, 20, 3));
    assert_int_equal(atomic_load(&b.in_progress), 10);
    assert_int_equal(atomic_load(&b.granted), 10);
    assert_int_equal(atomic_load(&b.denied), 1);
}

/* With little or no traffic the percentage rounds down to nothing: min_concurrent holds. */
static void budget_min_concurrent_is_a_floor(void **state)
{
    (void)state;
    gw_retry_budget_t b;
    gw_budget_init(&b);
    for (int i = 0; i < 3; i++)
        assert_true(gw_budget_try_acquire(&b, 0, 20, 3));
    assert_false(gw_budget_try_acquire(&b, 0, 20, 3));
    assert_false(gw_budget_try_acquire(&b, 4, 20, 3)); /* 0.8 rounds down: the floor, 3 */
    gw_retry_budget_t z;
    gw_budget_init(&z);
    assert_false(gw_budget_try_acquire(&z, 4, 20, 0)); /* no floor: no retries at all */
}

static void budget_release_frees_a_slot(void **state)
{
    (void)state;
    gw_retry_budget_t b;
    gw_budget_init(&b);
    assert_true(gw_budget_try_acquire(&b, 10, 10, 0));
    assert_false(gw_budget_try_acquire(&b, 10, 10, 0));
    gw_budget_release(&b);
    assert_int_equal(atomic_load(&b.in_progress), 0);
    assert_true(gw_budget_try_acquire(&b, 10, 10, 0));
}

/* A refusal leaves nothing held: in_progress is back where it was. */
static void budget_denial_holds_no_slot(void **state)
{
    (void)state;
    gw_retry_budget_t b;
    gw_budget_init(&b);
    for (int i = 0; i < 100; i++)
        assert_false(gw_budget_try_acquire(&b, 0, 50, 0));
    assert_int_equal(atomic_load(&b.in_progress), 0);
    assert_int_equal(atomic_load(&b.denied), 100);
    assert_int_equal(atomic_load(&b.granted), 0);
}

typedef struct budget_race_s {
    gw_retry_budget_t b;
    atomic_int holders;
    atomic_int max_holders;
    atomic_int go;
} budget_race_t;

#define RACE_LIMIT 2 /* 10% of 20: fewer slots than threads, so they must contend */

static void *budget_racer(void *arg)
{
    budget_race_t *r = arg;
    while (!atomic_load(&r->go)) {
    }
    for (int i = 0; i < 400000; i++) {
        if (!gw_budget_try_acquire(&r->b, 20, 10, 1))
            continue;
        int h = atomic_fetch_add(&r->holders, 1) + 1;
        int m = atomic_load(&r->max_holders);
        while (h > m && !atomic_compare_exchange_weak(&r->max_holders, &m, h)) {
        }
        if (i % 16 == 0)
            sched_yield(); /* hold the slot across a reschedule now and then */
        atomic_fetch_sub(&r->holders, 1);
        gw_budget_release(&r->b);
    }
    return NULL;
}

/* 4 threads acquiring and releasing as fast as they can: never more than the limit held
 * at once, and every attempt counted once. */
static void budget_concurrent_acquire_never_exceeds_limit(void **state)
{
    (void)state;
    static budget_race_t r;
    memset(&r, 0, sizeof r);
    gw_budget_init(&r.b);
    /* Lab code runs once on the test thread before the threads start (gwtest.h). */
    gw_retry_budget_t scratch;
    gw_budget_init(&scratch);
    if (gw_budget_try_acquire(&scratch, 20, 10, 1))
        gw_budget_release(&scratch);
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, budget_racer, &r), 0);
    atomic_store(&r.go, 1);
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_true(atomic_load(&r.max_holders) <= RACE_LIMIT);
    assert_true(atomic_load(&r.max_holders) >= 1);
    assert_int_equal(atomic_load(&r.b.in_progress), 0);
    assert_int_equal(atomic_load(&r.b.granted) + atomic_load(&r.b.denied), NTHREADS * 400000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(backoff_cap_doubles_then_stops_at_max),
        cmocka_unit_test(backoff_cap_never_overflows),
        cmocka_unit_test(backoff_delay_within_zero_and_cap),
        cmocka_unit_test(backoff_full_jitter_spreads_uniformly),
        cmocka_unit_test(backoff_rng_state_belongs_to_caller),
        cmocka_unit_test(budget_allows_percent_of_active),
        cmocka_unit_test(budget_min_concurrent_is_a_floor),
        cmocka_unit_test(budget_release_frees_a_slot),
        cmocka_unit_test(budget_denial_holds_no_slot),
        cmocka_unit_test(budget_concurrent_acquire_never_exceeds_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
