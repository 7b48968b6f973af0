/* test_debounce.c - unit tests for debounce.h: the quiet-period rule, event by event, on a
 * clock the test moves by hand (the time is an argument: no real clock, no sleep). */
#include "gwtest.h"

#include "debounce.h"

#define QUIET 500

static void debounce_nothing_pending_never_fires(void **state)
{
    (void)state;
    gw_debounce_t d;
    gw_debounce_init(&d, QUIET);
    for (uint64_t t = 0; t <= 10 * QUIET; t += QUIET / 2) {
        assert_int_equal(gw_debounce_wait(&d, t), GW_DEBOUNCE_IDLE);
        assert_false(gw_debounce_fire(&d, t));
    }
    assert_int_equal(d.fired, 0);
}

static void debounce_one_event_fires_once_after_the_quiet_period(void **state)
{
    (void)state;
    gw_debounce_t d;
    gw_debounce_init(&d, QUIET);
    gw_debounce_event(&d, 1000);
    assert_int_equal(gw_debounce_wait(&d, 1000), QUIET);
    assert_int_equal(gw_debounce_wait(&d, 1200), QUIET - 200);
    assert_false(gw_debounce_fire(&d, 1000 + QUIET - 1)); /* one ms early */
    assert_int_equal(gw_debounce_wait(&d, 1000 + QUIET), 0);
    assert_true(gw_debounce_fire(&d, 1000 + QUIET));
    assert_false(gw_debounce_fire(&d, 1000 + QUIET)); /* taken */
    assert_false(gw_debounce_fire(&d, 1000 + 5 * QUIET));
    assert_int_equal(gw_debounce_wait(&d, 1000 + 5 * QUIET), GW_DEBOUNCE_IDLE);
    assert_int_equal(d.fired, 1);
}

/* An editor's save: a temporary file written, renamed over the config, its directory
 * touched, all within a few ms; then a truncate-then-write in pieces 300 ms apart. Each
 * burst is one action, after its last event. */
static void debounce_a_burst_fires_once_after_its_last_event(void **state)
{
    (void)state;
    gw_debounce_t d;
    gw_debounce_init(&d, QUIET);
    const uint64_t burst[] = {0, 2, 3, 7};
    for (size_t i = 0; i < 4; i++)
        gw_debounce_event(&d, burst[i]);
    assert_false(gw_debounce_fire(&d, QUIET)); /* QUIET after the first event: not enough */
    assert_int_equal(gw_debounce_wait(&d, QUIET), 7);
    assert_true(gw_debounce_fire(&d, 7 + QUIET));
    uint64_t t = 10000;
    for (int piece = 0; piece < 5; piece++, t += 300) {
        gw_debounce_event(&d, t);
        assert_false(gw_debounce_fire(&d, t + 299)); /* the next piece comes first */
    }
    t -= 300; /* the last event */
    assert_false(gw_debounce_fire(&d, t + QUIET - 1));
    assert_true(gw_debounce_fire(&d, t + QUIET));
    assert_int_equal(d.events, 9);
    assert_int_equal(d.fired, 2);
}

/* A timer that fires late finds the action due; an event between an early timer and the due
 * time moves it (the caller re-arms from gw_debounce_wait). */
static void debounce_late_and_early_timers(void **state)
{
    (void)state;
    gw_debounce_t d;
    gw_debounce_init(&d, QUIET);
    gw_debounce_event(&d, 0);
    assert_true(gw_debounce_fire(&d, 60 * QUIET)); /* very late: still once */
    gw_debounce_event(&d, 100000);
    uint64_t early = 100000 + QUIET / 2;
    assert_false(gw_debounce_fire(&d, early));
    gw_debounce_event(&d, early + 1);
    assert_int_equal(gw_debounce_wait(&d, 100000 + QUIET), QUIET / 2 + 1);
    assert_false(gw_debounce_fire(&d, 100000 + QUIET));
    assert_true(gw_debounce_fire(&d, early + 1 + QUIET));
}

/* A clock that went back (a test, or a caller mixing clocks) delays, never fires early. */
static void debounce_clock_backwards_is_not_due(void **state)
{
    (void)state;
    gw_debounce_t d;
    gw_debounce_init(&d, QUIET);
    gw_debounce_event(&d, 5000);
    assert_false(gw_debounce_fire(&d, 4000));
    assert_int_equal(gw_debounce_wait(&d, 4000), QUIET);
    assert_true(gw_debounce_fire(&d, 5000 + QUIET));
}

static void debounce_zero_quiet_period_is_due_at_the_event(void **state)
{
    (void)state;
    gw_debounce_t d;
    gw_debounce_init(&d, 0);
    gw_debounce_event(&d, 42);
    assert_int_equal(gw_debounce_wait(&d, 42), 0);
    assert_true(gw_debounce_fire(&d, 42));
    assert_false(gw_debounce_fire(&d, 43));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(debounce_nothing_pending_never_fires),
        cmocka_unit_test(debounce_one_event_fires_once_after_the_quiet_period),
        cmocka_unit_test(debounce_a_burst_fires_once_after_its_last_event),
        cmocka_unit_test(debounce_late_and_early_timers),
        cmocka_unit_test(debounce_clock_backwards_is_not_due),
        cmocka_unit_test(debounce_zero_quiet_period_is_due_at_the_event),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
