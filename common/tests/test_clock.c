/* test_clock.c - unit tests for clock.h (the system clock) and the fake clock in
 * testsupport/fakeclock.h that every time-dependent test relies on. */
#include "gwtest.h"

#include <time.h>

#include "clock.h"
#include "fakeclock.h"

#define NS_PER_MS 1000000u

/* 2026-01-01T00:00:00Z in Unix ms, worked out independently of fakeclock.c. */
static uint64_t jan_1_2026_ms(void)
{
    struct tm tm = {.tm_year = 2026 - 1900, .tm_mon = 0, .tm_mday = 1};
    return (uint64_t)timegm(&tm) * 1000u;
}

static void fakeclock_starts_at_documented_time(void **state)
{
    (void)state;
    gw_fakeclock_t fc;
    gw_fakeclock_init(&fc);
    assert_int_equal(gw_clock_mono_ns(&fc.clock), 1000000000u);
    assert_int_equal(gw_clock_mono_ms(&fc.clock), 1000u);
    assert_int_equal(gw_clock_wall_ms(&fc.clock), jan_1_2026_ms());
    assert_int_equal(gw_clock_wall_ms(&fc.clock), 1767225600000u);
}

static void fakeclock_stands_still_without_advance(void **state)
{
    (void)state;
    gw_fakeclock_t fc;
    gw_fakeclock_init(&fc);
    uint64_t m = gw_clock_mono_ns(&fc.clock), w = gw_clock_wall_ms(&fc.clock);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(gw_clock_mono_ns(&fc.clock), m);
        assert_int_equal(gw_clock_wall_ms(&fc.clock), w);
    }
}

static void fakeclock_advance_ms_moves_both_clocks(void **state)
{
    (void)state;
    gw_fakeclock_t fc;
    gw_fakeclock_init(&fc);
    uint64_t m = gw_clock_mono_ns(&fc.clock), w = gw_clock_wall_ms(&fc.clock);
    gw_fakeclock_advance_ms(&fc, 250);
    assert_int_equal(gw_clock_mono_ns(&fc.clock), m + 250 * NS_PER_MS);
    assert_int_equal(gw_clock_mono_ms(&fc.clock), 1250u);
    assert_int_equal(gw_clock_wall_ms(&fc.clock), w + 250);
    gw_fakeclock_advance_ms(&fc, 0);
    assert_int_equal(gw_clock_mono_ns(&fc.clock), m + 250 * NS_PER_MS);
    assert_int_equal(gw_clock_wall_ms(&fc.clock), w + 250);
}

static void fakeclock_advance_ms_handles_long_spans(void **state)
{
    (void)state;
    gw_fakeclock_t fc;
    gw_fakeclock_init(&fc);
    uint64_t w = gw_clock_wall_ms(&fc.clock);
    uint64_t year_ms = 365ull * 24 * 3600 * 1000;
    gw_fakeclock_advance_ms(&fc, year_ms);
    assert_int_equal(gw_clock_mono_ns(&fc.clock), 1000000000ull + year_ms * NS_PER_MS);
    assert_int_equal(gw_clock_wall_ms(&fc.clock), w + year_ms);
}

static void fakeclock_advance_ns_moves_mono_exactly(void **state)
{
    (void)state;
    gw_fakeclock_t fc;
    gw_fakeclock_init(&fc);
    uint64_t m = gw_clock_mono_ns(&fc.clock);
    gw_fakeclock_advance_ns(&fc, 1);
    assert_int_equal(gw_clock_mono_ns(&fc.clock), m + 1);
    gw_fakeclock_advance_ns(&fc, 1234567);
    assert_int_equal(gw_clock_mono_ns(&fc.clock), m + 1234568);
    assert_int_equal(gw_clock_mono_ms(&fc.clock), 1001u);
}

static void fakeclock_advance_ns_carries_wall_in_whole_ms(void **state)
{
    (void)state;
    gw_fakeclock_t fc;
    gw_fakeclock_init(&fc);
    uint64_t w = gw_clock_wall_ms(&fc.clock);
    gw_fakeclock_advance_ns(&fc, 400000); /* 0.4 ms */
    assert_int_equal(gw_clock_wall_ms(&fc.clock), w);
    gw_fakeclock_advance_ns(&fc, 400000); /* 0.8 ms */
    assert_int_equal(gw_clock_wall_ms(&fc.clock), w);
    gw_fakeclock_advance_ns(&fc, 400000); /* 1.2 ms: sub-ms steps add up */
    assert_int_equal(gw_clock_wall_ms(&fc.clock), w + 1);
    gw_fakeclock_advance_ns(&fc, 3 * NS_PER_MS); /* 4.2 ms */
    assert_int_equal(gw_clock_wall_ms(&fc.clock), w + 4);
}

static void fakeclock_wall_and_mono_stay_in_step(void **state)
{
    (void)state;
    gw_fakeclock_t fc;
    gw_fakeclock_init(&fc);
    uint64_t m0 = gw_clock_mono_ms(&fc.clock), w0 = gw_clock_wall_ms(&fc.clock);
    /* A fixed mix of steps: whatever the mix, both clocks show the same elapsed ms. */
    static const uint64_t ns_steps[] = {1, 999999, 500000, 1500000, 7, 123456789, 2};
    for (int round = 0; round < 50; round++) {
        for (size_t i = 0; i < sizeof ns_steps / sizeof ns_steps[0]; i++)
            gw_fakeclock_advance_ns(&fc, ns_steps[i]);
        gw_fakeclock_advance_ms(&fc, (uint64_t)round);
        assert_int_equal(gw_clock_wall_ms(&fc.clock) - w0, gw_clock_mono_ms(&fc.clock) - m0);
    }
}

static void fakeclock_instances_are_independent(void **state)
{
    (void)state;
    gw_fakeclock_t a, b;
    gw_fakeclock_init(&a);
    gw_fakeclock_init(&b);
    gw_fakeclock_advance_ms(&a, 10);
    assert_int_equal(gw_clock_mono_ms(&a.clock), 1010u);
    assert_int_equal(gw_clock_mono_ms(&b.clock), 1000u);
}

static void clock_system_mono_never_goes_backwards(void **state)
{
    (void)state;
    uint64_t prev = gw_clock_mono_ns(&gw_clock_system);
    for (int i = 0; i < 100000; i++) {
        uint64_t now = gw_clock_mono_ns(&gw_clock_system);
        if (now < prev)
            fail_msg("monotonic clock went back from %llu to %llu", (unsigned long long)prev,
                     (unsigned long long)now);
        prev = now;
    }
    assert_true(prev > 0);
}

static void clock_system_mono_ms_matches_ns(void **state)
{
    (void)state;
    uint64_t ns = gw_clock_mono_ns(&gw_clock_system);
    uint64_t ms = gw_clock_mono_ms(&gw_clock_system);
    uint64_t ns2 = gw_clock_mono_ns(&gw_clock_system);
    assert_in_range(ms, ns / NS_PER_MS, ns2 / NS_PER_MS);
}

static void clock_system_wall_is_unix_epoch_ms(void **state)
{
    (void)state;
    time_t before = time(NULL);
    uint64_t wall = gw_clock_wall_ms(&gw_clock_system);
    time_t after = time(NULL);
    /* time(2) reads a coarse clock that may trail CLOCK_REALTIME by up to a tick. */
    assert_in_range(wall / 1000u, (uint64_t)before, (uint64_t)after + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fakeclock_starts_at_documented_time),
        cmocka_unit_test(fakeclock_stands_still_without_advance),
        cmocka_unit_test(fakeclock_advance_ms_moves_both_clocks),
        cmocka_unit_test(fakeclock_advance_ms_handles_long_spans),
        cmocka_unit_test(fakeclock_advance_ns_moves_mono_exactly),
        cmocka_unit_test(fakeclock_advance_ns_carries_wall_in_whole_ms),
        cmocka_unit_test(fakeclock_wall_and_mono_stay_in_step),
        cmocka_unit_test(fakeclock_instances_are_independent),
        cmocka_unit_test(clock_system_mono_never_goes_backwards),
        cmocka_unit_test(clock_system_mono_ms_matches_ns),
        cmocka_unit_test(clock_system_wall_is_unix_epoch_ms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
