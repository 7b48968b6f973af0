/* test_breaker.c - the circuit breaker's state machine on made-up times (plain numbers, no
 * clock), and real threads for the races on one breaker. */
#include "gwtest.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "03-resilience/breaker.h"

#define T0 1000000u /* a made-up monotonic time, ms */
#define OPEN_MS 5000u
#define NTHREADS 4

static gw_breaker_cfg_t consecutive_cfg(void)
{
    return (gw_breaker_cfg_t){.consecutive_failures = 5,
                              .window_ms = 10000,
                              .open_timeout_ms = OPEN_MS,
                              .half_open_max = 2,
                              .success_to_close = 3};
}

static gw_breaker_cfg_t rate_cfg(void)
{
    return (gw_breaker_cfg_t){.failure_rate_percent = 50,
                              .min_requests = 10,
                              .window_ms = 10000,
                              .open_timeout_ms = OPEN_MS,
                              .half_open_max = 2,
                              .success_to_close = 1};
}

/* One non-trial outcome at NOW; returns record's result. */
static int outcome(gw_breaker_t *b, const gw_breaker_cfg_t *c, bool ok, uint64_t now)
{
    bool trial = true;
    assert_true(gw_breaker_allow(b, c, now, &trial));
    assert_false(trial);
    return gw_breaker_record(b, c, ok, false, now);
}

/* Opens B at NOW with the consecutive rule. */
static void open_it(gw_breaker_t *b, const gw_breaker_cfg_t *c, uint64_t now)
{
    for (unsigned i = 0; i + 1 < c->consecutive_failures; i++)
        assert_int_equal(outcome(b, c, false, now), -1);
    assert_int_equal(outcome(b, c, false, now), GW_BREAKER_OPEN);
}

/* Takes a trial slot at NOW (must be granted). */
static void take_trial(gw_breaker_t *b, const gw_breaker_cfg_t *c, uint64_t now)
{
    bool trial = false;
    assert_true(gw_breaker_allow(b, c, now, &trial));
    assert_true(trial);
}

static void breaker_starts_closed_and_allows(void **state)
{
    (void)state;
    gw_breaker_t b;
    gw_breaker_init(&b);
    gw_breaker_cfg_t c = consecutive_cfg();
    bool trial = true;
    assert_int_equal(gw_breaker_state(&b, &c, T0), GW_BREAKER_CLOSED);
    assert_true(gw_breaker_may_allow(&b, &c, T0));
    assert_true(gw_breaker_allow(&b, &c, T0, &trial));
    assert_false(trial);
}

static void breaker_opens_at_exactly_consecutive_failures(void **state)
{
    (void)state;
    gw_breaker_t b;
    gw_breaker_init(&b);
    gw_breaker_cfg_t c = consecutive_cfg();
    for (int i = 0; i < 4; i++)
        assert_int_equal(outcome(&b, &c, false, T0 + (uint64_t)i), -1);
    assert_int_equal(gw_breaker_state(&b, &c, T0 + 4), GW_BREAKER_CLOSED);
    assert_int_equal(outcome(&b, &c, false, T0 + 4), GW_BREAKER_OPEN);
    assert_int_equal(gw_breaker_state(&b, &c, T0 + 4), GW_BREAKER_OPEN);
}

static void breaker_success_ends_failure_run(void **state)
{
    (void)state;
    gw_breaker_t b;
    gw_breaker_init(&b);
    gw_breaker_cfg_t c = consecutive_cfg();
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 4; i++)
            assert_int_equal(outcome(&b, &c, false, T0), -1);
        assert_int_equal(outcome(&b, &c, true, T0), -1);
    }
    assert_int_equal(gw_breaker_state(&b, &c, T0), GW_BREAKER_CLOSED);
}

static void breaker_rules_off_never_open(void **state)
{
    (void)state;
    gw_breaker_t b;
    gw_breaker_init(&b);
    gw_breaker_cfg_t c = consecutive_cfg();
    c.consecutive_failures = 0;
    c.failure_rate_percent = 0;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(outcome(&b, &c, false, T0), -1);
    assert_int_equal(gw_breaker_state(&b, &c, T0), GW_BREAKER_CLOSED);
}

static void breaker_rate_needs_min_requests(void **state)
{
    (void)state;
    gw_breaker_t b;
    gw_breaker_init(&b);
    gw_breaker_cfg_t c = rate_cfg();
    for (int i = 0; i < 9; i++) /* 100% failures, but only 9 outcomes */
        assert_int_equal(outcome(&b, &c, false, T0), -1);
    assert_int_equal(outcome(&b, &c, false, T0), GW_BREAKER_OPEN); /* the 10th */
}

/* 50% is not "above 50%"; one more failure is. */
static void breaker_rate_opens_only_above_threshold(void **state)
{
    (void)state;
    gw_breaker_t b;
    gw_breaker_init(&b);
    gw_breaker_cfg_t c = rate_cfg();
    for (int i = 0; i < 10; i++)
        assert_int_equal(outcome(&b, &c, i % 2 == 0, T0), -1);
    assert_int_equal(gw_breaker_state(&b, &c, T0), GW_BREAKER_CLOSED);
    assert_int_equal(outcome(&b, &c, false, T0), GW_BREAKER_OPEN); /* 6 of 11 */
}

static void breaker_window_forgets_old_outcomes(void **state)
{
    (void)state;
    gw_breaker_t b;
    gw_breaker_init(&b);
    gw_breaker_cfg_t c = rate_cfg();
    for (int i = 0; i < 9; i++)
        assert_int_equal(outcome(&b, &c, false, T0), -1);
    /* One window later those 9 are gone: 9 new failures are again below min_requests. */
    uint64_t later = T0 + c.window_ms;
    for (int i = 0; i < 9; i++)
        assert_int_equal(outcome(&b, &c, false, later), -1);
    assert_int_equal(gw_breaker_state(&b, &c, later), GW_BREAKER_CLOSED);
    /* But outcomes spread over the window's ten slices all count. */
    gw_breaker_init(&b);
    for (uint64_t i = 0; i < 10; i++) {
        int r = outcome(&b, &c, false, T0 + i * (c.window_ms / 10));
        assert_int_equal(r, i == 9 ? GW_BREAKER_OPEN : -1);
    }
}

/* 70,000 outcomes in one slice overflow 16-bit counts; halving keeps the ratio. */
static void breaker_busy_bucket_keeps_failure_ratio(void **state)
{
    (void)state;
    gw_breaker_t b;
    gw_breaker_init(&b);
    gw_breaker_cfg_t c = rate_cfg();
    c.failure_rate_percent = 30;
    for (int i = 0; i < 70000; i++) /* 25% failures: must stay closed */
        assert_int_equal(outcome(&b, &c, i % 4 != 3, T0), -1);
    int opened = 0;
    for (int i = 0; i < 70000 && !opened; i++) /* then 50%: must open */
        opened = outcome(&b, &c, i % 2 != 0, T0) == GW_BREAKER_OPEN;
    assert_true(opened);
}

static void breaker_open_rejects_until_timeout(void **state)
{
    (void)state;
    gw_breaker_t b;
    gw_breaker_init(&b);
    gw_breaker_cfg_t c = consecutive_cfg();
    open_it(&b, &c, T0);
    bool trial = true;
    assert_false(gw_breaker_may_allow(&b, &c, T0 + OPEN_MS - 1));
    assert_false(gw_breaker_allow(&b, &c, T0 + OPEN_MS - 1, &trial));
    assert_int_equal(gw_breaker_state(&b, &c, T0 + OPEN_MS - 1), GW_BREAKER_OPEN);
    assert_int_equal(gw_breaker_state(&b, &c, T0 + OPEN_MS), GW_BREAKER_HALF_OPEN);
    assert_true(gw_breaker_may_allow(&b, &c, T0 + OPEN_MS));
}

/* Outcomes of connections admitted before the open change nothing: no new open period, no
 * close. */
static void breaker_ignores_non_trial_outcomes_while_open(void **state)
{
    (void)state;
    gw_breaker_t b;
    gw_breaker_init(&b);
    gw_breaker_cfg_t c = consecutive_cfg();
    open_it(&b, &c, T0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(gw_breaker_record(&b, &c, false, false, T0 + 100), -1);
    assert_int_equal(gw_breaker_state(&b, &c, T0 + OPEN_MS), GW_BREAKER_HALF_OPEN);
    for (int i = 0; i < 10; i++)
        assert_int_equal(gw_breaker_record(&b, &c, true, false, T0 + OPEN_MS), -1);
    assert_int_equal(gw_breaker_state(&b, &c, T0 + OPEN_MS), GW_BREAKER_HALF_OPEN);
}

static void breaker_half_open_admits_only_max_trials(void **state)
{
    (void)state;
    gw_breaker_t b;
    gw_breaker_init(&b);
    gw_breaker_cfg_t c = consecutive_cfg();
    uint64_t t = T0 + OPEN_MS;
    open_it(&b, &c, T0);
    take_trial(&b, &c, t);
    take_trial(&b, &c, t);
    bool trial = true;
    assert_false(gw_breaker_may_allow(&b, &c, t));
    assert_false(gw_breaker_allow(&b, &c, t, &trial));
    assert_false(trial);
    assert_int_equal(gw_breaker_trials(&b), 2);
    assert_int_equal(gw_breaker_record(&b, &c, true, true, t + 1), -1); /* 1 of 3 successes */
    assert_true(gw_breaker_may_allow(&b, &c, t + 1));
    take_trial(&b, &c, t + 1);
}

static void breaker_trial_failure_reopens(void **state)
{
    (void)state;
    gw_breaker_t b;
    gw_breaker_init(&b);
    gw_breaker_cfg_t c = consecutive_cfg();
    uint64_t t = T0 + OPEN_MS, fail_at = t + 250;
    open_it(&b, &c, T0);
    take_trial(&b, &c, t);
    assert_int_equal(gw_breaker_record(&b, &c, false, true, fail_at), GW_BREAKER_OPEN);
    /* A new open period, counted from the failure. */
    assert_int_equal(gw_breaker_state(&b, &c, fail_at + OPEN_MS - 1), GW_BREAKER_OPEN);
    assert_int_equal(gw_breaker_state(&b, &c, fail_at + OPEN_MS), GW_BREAKER_HALF_OPEN);
    assert_int_equal(gw_breaker_trials(&b), 0);
}

static void breaker_trial_successes_close_it(void **state)
{
    (void)state;
    gw_breaker_t b;
    gw_breaker_init(&b);
    gw_breaker_cfg_t c = consecutive_cfg();
    uint64_t t = T0 + OPEN_MS;
    open_it(&b, &c, T0);
    for (int i = 0; i < 2; i++) {
        take_trial(&b, &c, t);
        assert_int_equal(gw_breaker_record(&b, &c, true, true, t), -1);
        assert_int_equal(gw_breaker_state(&b, &c, t), GW_BREAKER_HALF_OPEN);
    }
    take_trial(&b, &c, t);
    assert_int_equal(gw_breaker_record(&b, &c, true, true, t), GW_BREAKER_CLOSED);
    assert_int_equal(gw_breaker_state(&b, &c, t), GW_BREAKER_CLOSED);
}

/* A reopen in the middle of the successes starts the count again. */
static void breaker_trial_successes_must_be_in_a_row(void **state)
{
    (void)state;
    gw_breaker_t b;
    gw_breaker_init(&b);
    gw_breaker_cfg_t c = consecutive_cfg();
    uint64_t t = T0 + OPEN_MS;
    open_it(&b, &c, T0);
    for (int i = 0; i < 2; i++) {
        take_trial(&b, &c, t);
        assert_int_equal(gw_breaker_record(&b, &c, true, true, t), -1);
    }
    take_trial(&b, &c, t);
    assert_int_equal(gw_breaker_record(&b, &c, false, true, t), GW_BREAKER_OPEN);
    t += OPEN_MS;
    for (int i = 0; i < 2; i++) {
        take_trial(&b, &c, t);
        assert_int_equal(gw_breaker_record(&b, &c, true, true, t), -1);
    }
    assert_int_equal(gw_breaker_state(&b, &c, t), GW_BREAKER_HALF_OPEN);
}

/* A trial still in flight when another one reopened the breaker keeps its slot until it
 * reports, also in the next half-open period: the limit is on connections really in flight. */
static void breaker_late_trial_holds_its_slot(void **state)
{
    (void)state;
    gw_breaker_t b;
    gw_breaker_init(&b);
    gw_breaker_cfg_t c = consecutive_cfg();
    uint64_t t = T0 + OPEN_MS, t2 = t + OPEN_MS;
    open_it(&b, &c, T0);
    take_trial(&b, &c, t);
    take_trial(&b, &c, t);
    assert_int_equal(gw_breaker_record(&b, &c, false, true, t), GW_BREAKER_OPEN);
    take_trial(&b, &c, t2);
    bool trial;
    assert_false(gw_breaker_allow(&b, &c, t2, &trial)); /* 2 in flight: the late one too */
    assert_int_equal(gw_breaker_record(&b, &c, true, true, t2), -1);
    take_trial(&b, &c, t2);
}

/* A trial that reports while open (another trial reopened it) frees its slot, nothing else. */
static void breaker_trial_reporting_while_open_changes_nothing(void **state)
{
    (void)state;
    gw_breaker_t b;
    gw_breaker_init(&b);
    gw_breaker_cfg_t c = consecutive_cfg();
    uint64_t t = T0 + OPEN_MS;
    open_it(&b, &c, T0);
    take_trial(&b, &c, t);
    take_trial(&b, &c, t);
    assert_int_equal(gw_breaker_record(&b, &c, false, true, t), GW_BREAKER_OPEN);
    assert_int_equal(gw_breaker_trials(&b), 1);
    assert_int_equal(gw_breaker_record(&b, &c, true, true, t + 10), -1);
    assert_int_equal(gw_breaker_trials(&b), 0);
    /* Still the open period that started at t: half-open at t + OPEN_MS, not earlier. */
    assert_int_equal(gw_breaker_state(&b, &c, t + OPEN_MS - 1), GW_BREAKER_OPEN);
    assert_int_equal(gw_breaker_state(&b, &c, t + OPEN_MS), GW_BREAKER_HALF_OPEN);
}

/* After a close, the failures that opened the breaker no longer count: neither the run of
 * consecutive failures nor the window. */
static void breaker_close_starts_a_fresh_window(void **state)
{
    (void)state;
    gw_breaker_t b;
    gw_breaker_init(&b);
    gw_breaker_cfg_t c = rate_cfg();
    c.consecutive_failures = 12;
    c.open_timeout_ms = 100; /* shorter than a slice: open and close in the same slice */
    for (int i = 0; i < 9; i++)
        assert_int_equal(outcome(&b, &c, false, T0), -1);
    assert_int_equal(outcome(&b, &c, false, T0), GW_BREAKER_OPEN);
    uint64_t t = T0 + 100;
    take_trial(&b, &c, t);
    assert_int_equal(gw_breaker_record(&b, &c, true, true, t), GW_BREAKER_CLOSED);
    for (int i = 0; i < 11; i++) /* 11 failures: below the run of 12, window fresh */
        assert_int_equal(outcome(&b, &c, false, t), -1);
    assert_int_equal(gw_breaker_state(&b, &c, t), GW_BREAKER_CLOSED);
    assert_int_equal(outcome(&b, &c, false, t), GW_BREAKER_OPEN); /* the 12th in a row */
}

/* A trial that reports after the close counts as an ordinary outcome and frees its slot. */
static void breaker_trial_after_close_counts_as_outcome(void **state)
{
    (void)state;
    gw_breaker_t b;
    gw_breaker_init(&b);
    gw_breaker_cfg_t c = consecutive_cfg();
    c.success_to_close = 1;
    c.consecutive_failures = 1;
    uint64_t t = T0 + OPEN_MS;
    assert_int_equal(outcome(&b, &c, false, T0), GW_BREAKER_OPEN);
    take_trial(&b, &c, t);
    take_trial(&b, &c, t);
    assert_int_equal(gw_breaker_record(&b, &c, true, true, t), GW_BREAKER_CLOSED);
    assert_int_equal(gw_breaker_record(&b, &c, false, true, t + 1), GW_BREAKER_OPEN);
    assert_int_equal(gw_breaker_trials(&b), 0);
}

static void breaker_zero_trial_settings_act_as_one(void **state)
{
    (void)state;
    gw_breaker_t b;
    gw_breaker_init(&b);
    gw_breaker_cfg_t c = consecutive_cfg();
    c.half_open_max = 0;
    c.success_to_close = 0;
    uint64_t t = T0 + OPEN_MS;
    open_it(&b, &c, T0);
    take_trial(&b, &c, t);
    bool trial;
    assert_false(gw_breaker_allow(&b, &c, t, &trial));
    assert_int_equal(gw_breaker_record(&b, &c, true, true, t), GW_BREAKER_CLOSED);
}

static void breaker_state_names(void **state)
{
    (void)state;
    assert_string_equal(gw_breaker_state_name(GW_BREAKER_CLOSED), "closed");
    assert_string_equal(gw_breaker_state_name(GW_BREAKER_OPEN), "open");
    assert_string_equal(gw_breaker_state_name(GW_BREAKER_HALF_OPEN), "half_open");
    assert_string_equal(gw_breaker_state_name((gw_breaker_state_t)7), "?");
}

/* ---- races ------------------------------------------------------------------------------ */

typedef struct race_s {
    gw_breaker_t b;
    gw_breaker_cfg_t cfg;
    atomic_int in_flight;
    atomic_int max_in_flight;
    atomic_int transitions[3];
    atomic_int go;
} race_t;

static void note_max(atomic_int *max, int v)
{
    int m = atomic_load(max);
    while (v > m && !atomic_compare_exchange_weak(max, &m, v)) {
    }
}

/* Every thread loops over allow/record on a breaker that keeps cycling between half-open
 * and open (one trial in 5 fails, open_timeout is 0, success_to_close out of reach): never
 * more than half_open_max trials are in flight together, through the transitions too. */
static void *trial_racer(void *arg)
{
    race_t *r = arg;
    while (!atomic_load(&r->go)) {
    }
    for (int i = 0; i < 20000; i++) {
        bool trial;
        if (!gw_breaker_allow(&r->b, &r->cfg, T0 + OPEN_MS, &trial))
            continue;
        note_max(&r->max_in_flight, atomic_fetch_add(&r->in_flight, 1) + 1);
        atomic_fetch_sub(&r->in_flight, 1);
        int t = gw_breaker_record(&r->b, &r->cfg, i % 5 != 0, trial, T0 + OPEN_MS);
        if (t >= 0)
            atomic_fetch_add(&r->transitions[t], 1);
    }
    return NULL;
}

static void run_threads(race_t *r, void *(*fn)(void *))
{
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, fn, r), 0);
    atomic_store(&r->go, 1);
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
}

static void breaker_concurrent_trials_never_exceed_max(void **state)
{
    (void)state;
    static race_t r;
    memset(&r, 0, sizeof r);
    gw_breaker_init(&r.b);
    r.cfg = consecutive_cfg();
    r.cfg.success_to_close = GW_BREAKER_MAX_TRIALS;
    r.cfg.half_open_max = 3;
    open_it(&r.b, &r.cfg, T0);
    r.cfg.open_timeout_ms = 0;
    run_threads(&r, trial_racer);
    assert_true(atomic_load(&r.max_in_flight) <= 3);
    assert_true(atomic_load(&r.max_in_flight) >= 1);
    assert_true(atomic_load(&r.transitions[GW_BREAKER_OPEN]) > 0);
    assert_int_equal(atomic_load(&r.transitions[GW_BREAKER_CLOSED]), 0);
    assert_int_equal(gw_breaker_trials(&r.b), 0);
}

/* All threads fail at once on a closed breaker, round after round (a barrier lines them
 * up, then the breaker is closed again): exactly one of them opens it each time. */
#define ROUNDS 20000

typedef struct open_race_s {
    gw_breaker_t b;
    gw_breaker_cfg_t cfg;
    pthread_barrier_t barrier;
    atomic_int opens[ROUNDS];
} open_race_t;

static void *failure_racer(void *arg)
{
    open_race_t *r = arg;
    for (int round = 0; round < ROUNDS; round++) {
        pthread_barrier_wait(&r->barrier); /* the breaker was reset */
        for (int i = 0; i < 8; i++)
            if (gw_breaker_record(&r->b, &r->cfg, false, false, T0) == GW_BREAKER_OPEN)
                atomic_fetch_add(&r->opens[round], 1);
        if (pthread_barrier_wait(&r->barrier) == PTHREAD_BARRIER_SERIAL_THREAD)
            gw_breaker_init(&r->b); /* nobody touches it until the next barrier */
    }
    return NULL;
}

static void breaker_concurrent_failures_open_once(void **state)
{
    (void)state;
    static open_race_t r;
    memset(&r, 0, sizeof r);
    gw_breaker_init(&r.b);
    r.cfg = consecutive_cfg();
    r.cfg.consecutive_failures = 3;
    r.cfg.failure_rate_percent = 50;
    r.cfg.min_requests = 4;
    /* Lab code runs once on the test thread before the threads start (gwtest.h). */
    gw_breaker_t scratch;
    gw_breaker_init(&scratch);
    (void)gw_breaker_record(&scratch, &r.cfg, false, false, T0);
    assert_int_equal(pthread_barrier_init(&r.barrier, NULL, NTHREADS), 0);
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, failure_racer, &r), 0);
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    pthread_barrier_destroy(&r.barrier);
    for (int round = 0; round < ROUNDS; round++)
        assert_int_equal(atomic_load(&r.opens[round]), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(breaker_starts_closed_and_allows),
        cmocka_unit_test(breaker_opens_at_exactly_consecutive_failures),
        cmocka_unit_test(breaker_success_ends_failure_run),
        cmocka_unit_test(breaker_rules_off_never_open),
        cmocka_unit_test(breaker_rate_needs_min_requests),
        cmocka_unit_test(breaker_rate_opens_only_above_threshold),
        cmocka_unit_test(breaker_window_forgets_old_outcomes),
        cmocka_unit_test(breaker_busy_bucket_keeps_failure_ratio),
        cmocka_unit_test(breaker_open_rejects_until_timeout),
        cmocka_unit_test(breaker_ignores_non_trial_outcomes_while_open),
        cmocka_unit_test(breaker_half_open_admits_only_max_trials),
        cmocka_unit_test(breaker_trial_failure_reopens),
        cmocka_unit_test(breaker_trial_successes_close_it),
        cmocka_unit_test(breaker_trial_successes_must_be_in_a_row),
        cmocka_unit_test(breaker_late_trial_holds_its_slot),
        cmocka_unit_test(breaker_trial_reporting_while_open_changes_nothing),
        cmocka_unit_test(breaker_close_starts_a_fresh_window),
        cmocka_unit_test(breaker_trial_after_close_counts_as_outcome),
        cmocka_unit_test(breaker_zero_trial_settings_act_as_one),
        cmocka_unit_test(breaker_state_names),
        cmocka_unit_test(breaker_concurrent_trials_never_exceed_max),
        cmocka_unit_test(breaker_concurrent_failures_open_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
