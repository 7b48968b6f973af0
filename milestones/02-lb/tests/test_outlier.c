/* test_outlier.c - passive outlier detection: made-up times (plain numbers, no clock), and
 * real threads for the race on one backend. */
#include "gwtest.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#include "02-lb/backend.h"
#include "02-lb/outlier.h"

#define NB 5
#define T0 1000000u /* a made-up monotonic time, ms */
#define BASE 30000u
#define THRESHOLD 5
#define NTHREADS 4

typedef struct {
    gw_backend_t b[NB];
    gw_backend_t *all[NB];
    gw_outlier_cfg_t cfg;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    for (size_t i = 0; i < NB; i++) {
        gw_addr_t a = {0};
        struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)(9001 + i));
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.len = sizeof *sin;
        gw_backend_init(&f->b[i], &a);
        f->all[i] = &f->b[i];
    }
    f->cfg = (gw_outlier_cfg_t){
        .consecutive_failures = THRESHOLD, .base_ejection_ms = BASE, .max_ejection_percent = 50};
    gw_log_setup(GW_LOG_ERROR, GW_LOG_PLAIN); /* ejections log warnings: keep output readable */
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    gw_log_setup(GW_LOG_INFO, GW_LOG_PLAIN);
    return 0;
}

/* K failures of backend I (of the first N) at NOW; returns how many ejected it. */
static int fail_n(fixture_t *f, size_t i, size_t n, int k, uint64_t now)
{
    int ejected = 0;
    for (int j = 0; j < k; j++)
        ejected += gw_outlier_failure(&f->cfg, &f->b[i], f->all, n, now);
    return ejected;
}

static bool is_ejected(const gw_backend_t *b, uint64_t now)
{
    return atomic_load(&b->ejected_until_ms) > now;
}

static void outlier_ejects_at_exactly_threshold(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(fail_n(f, 0, NB, THRESHOLD - 1, T0), 0);
    assert_false(is_ejected(&f->b[0], T0));
    assert_int_equal(atomic_load(&f->b[0].consecutive_failures), THRESHOLD - 1);
    assert_true(gw_outlier_failure(&f->cfg, &f->b[0], f->all, NB, T0));
    assert_int_equal(atomic_load(&f->b[0].ejected_until_ms), T0 + BASE);
    assert_int_equal(atomic_load(&f->b[0].ejections), 1);
    assert_int_equal(atomic_load(&f->b[0].consecutive_failures), 0); /* the count restarts */
}

static void outlier_success_resets_count(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(fail_n(f, 0, NB, THRESHOLD - 1, T0), 0);
    gw_outlier_success(&f->b[0]);
    assert_int_equal(atomic_load(&f->b[0].consecutive_failures), 0);
    assert_int_equal(fail_n(f, 0, NB, THRESHOLD - 1, T0), 0);
    assert_false(is_ejected(&f->b[0], T0));
    assert_int_equal(fail_n(f, 0, NB, 1, T0), 1);
}

static void outlier_zero_threshold_never_ejects(void **state)
{
    fixture_t *f = *state;
    f->cfg.consecutive_failures = 0;
    assert_int_equal(fail_n(f, 0, NB, 1000, T0), 0);
    assert_false(is_ejected(&f->b[0], T0));
    assert_int_equal(atomic_load(&f->b[0].ejections), 0);
}

/* Failures of connections opened before the ejection neither extend it nor count. */
static void outlier_failures_while_ejected_are_ignored(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(fail_n(f, 0, NB, THRESHOLD, T0), 1);
    assert_int_equal(fail_n(f, 0, NB, 100, T0 + 1), 0);
    assert_int_equal(atomic_load(&f->b[0].ejected_until_ms), T0 + BASE);
    assert_int_equal(atomic_load(&f->b[0].ejections), 1);
    assert_int_equal(atomic_load(&f->b[0].consecutive_failures), 0);
}

static void outlier_ejection_grows_with_repeats(void **state)
{
    fixture_t *f = *state;
    uint64_t now = T0;
    for (unsigned k = 1; k <= 3; k++) {
        assert_int_equal(fail_n(f, 0, NB, THRESHOLD, now), 1);
        assert_int_equal(atomic_load(&f->b[0].ejected_until_ms), now + (uint64_t)k * BASE);
        now += (uint64_t)k * BASE; /* back exactly at the deadline */
    }
    assert_int_equal(atomic_load(&f->b[0].ejections), 3);
}

static void outlier_ejection_capped_at_ten_times_base(void **state)
{
    fixture_t *f = *state;
    uint64_t now = T0;
    for (unsigned k = 1; k <= 15; k++) {
        assert_int_equal(fail_n(f, 0, NB, THRESHOLD, now), 1);
        uint64_t len = atomic_load(&f->b[0].ejected_until_ms) - now;
        assert_int_equal(len, (uint64_t)(k < 10 ? k : 10) * BASE);
        now += len;
    }
    assert_int_equal(gw_outlier_ejection_ms(&f->cfg, 1000000), 10u * BASE);
}

/* 5 backends at 50%: at most 2 out at once; a refused one keeps its count and goes as soon
 * as there is room. */
static void outlier_max_percent_bounds_ejected_share(void **state)
{
    fixture_t *f = *state;
    int ejected = 0;
    for (size_t i = 0; i < NB; i++)
        ejected += fail_n(f, i, NB, THRESHOLD, T0);
    assert_int_equal(ejected, 2);
    assert_true(is_ejected(&f->b[0], T0) && is_ejected(&f->b[1], T0));
    for (size_t i = 2; i < NB; i++)
        assert_false(is_ejected(&f->b[i], T0));
    assert_int_equal(fail_n(f, 2, NB, 1, T0 + BASE), 1); /* the first two are back */
}

static void outlier_single_backend_can_be_ejected(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(fail_n(f, 0, 1, THRESHOLD, T0), 1);
    assert_true(is_ejected(&f->b[0], T0));
}

static void outlier_ejected_backend_unusable_until_deadline(void **state)
{
    fixture_t *f = *state;
    assert_true(gw_backend_usable(&f->b[0], T0));
    assert_int_equal(fail_n(f, 0, NB, THRESHOLD, T0), 1);
    assert_false(gw_backend_usable(&f->b[0], T0));
    assert_false(gw_backend_usable(&f->b[0], T0 + BASE - 1));
    assert_true(gw_backend_usable(&f->b[0], T0 + BASE));
    assert_true(gw_backend_usable(&f->b[1], T0)); /* the others are untouched */
}

/* ---- response runs (04 reports response heads) ------------------------------------------ */

/* K responses of STATUS from backend I (of NB) at NOW; returns how many ejected it. */
static int answer_n(fixture_t *f, size_t i, unsigned status, int k, uint64_t now)
{
    int ejected = 0;
    for (int j = 0; j < k; j++)
        ejected += gw_outlier_response(&f->cfg, &f->b[i], f->all, NB, status, now);
    return ejected;
}

static void responses_only(fixture_t *f, unsigned gateway, unsigned five)
{
    f->cfg.consecutive_failures = 0;
    f->cfg.consecutive_gateway_errors = gateway;
    f->cfg.consecutive_5xx = five;
}

static void outlier_5xx_ejects_at_exactly_threshold(void **state)
{
    fixture_t *f = *state;
    responses_only(f, 0, 3);
    assert_int_equal(answer_n(f, 0, 500, 2, T0), 0);
    assert_false(is_ejected(&f->b[0], T0));
    assert_int_equal(answer_n(f, 0, 599, 1, T0), 1);
    assert_int_equal(atomic_load(&f->b[0].ejected_until_ms), T0 + BASE);
    assert_int_equal(atomic_load(&f->b[0].consecutive_5xx), 0); /* the run starts again */
}

/* Any answer below 500 ends both response runs: 4xx is the client's doing. */
static void outlier_response_below_500_ends_runs(void **state)
{
    fixture_t *f = *state;
    responses_only(f, 3, 3);
    static const unsigned fine[] = {200, 204, 304, 404, 429, 499};
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
        assert_int_equal(answer_n(f, 0, 503, 2, T0), 0);
        assert_int_equal(answer_n(f, 0, fine[i], 1, T0), 0);
        assert_int_equal(atomic_load(&f->b[0].consecutive_5xx), 0);
        assert_int_equal(atomic_load(&f->b[0].consecutive_gateway_errors), 0);
    }
    assert_false(is_ejected(&f->b[0], T0));
    assert_int_equal(answer_n(f, 0, 503, 3, T0), 1);
}

/* 502, 503 and 504 are gateway errors; 500 or 501 ends that run but counts as a 5xx. */
static void outlier_gateway_errors_are_502_503_504(void **state)
{
    fixture_t *f = *state;
    responses_only(f, 3, 0);
    assert_int_equal(answer_n(f, 0, 502, 1, T0) + answer_n(f, 0, 503, 1, T0), 0);
    assert_int_equal(answer_n(f, 0, 500, 1, T0), 0);
    assert_int_equal(atomic_load(&f->b[0].consecutive_gateway_errors), 0);
    assert_int_equal(answer_n(f, 0, 501, 5, T0) + answer_n(f, 0, 505, 5, T0), 0);
    assert_int_equal(answer_n(f, 0, 504, 1, T0) + answer_n(f, 0, 503, 1, T0), 0);
    assert_int_equal(answer_n(f, 0, 502, 1, T0), 1);
}

/* A failure with no response counts in every run that is on, not only its own. */
static void outlier_failure_counts_in_response_runs(void **state)
{
    fixture_t *f = *state;
    responses_only(f, 3, 0);
    assert_int_equal(fail_n(f, 0, NB, 2, T0), 0); /* consecutive_failures is off */
    assert_int_equal(answer_n(f, 0, 502, 1, T0), 1);
    responses_only(f, 0, 4);
    assert_int_equal(answer_n(f, 1, 500, 2, T0) + fail_n(f, 1, NB, 1, T0), 0);
    assert_int_equal(fail_n(f, 1, NB, 1, T0), 1);
}

/* A connect that works ends the failure run only: the 5xx came on connections that worked. */
static void outlier_connect_success_keeps_5xx_run(void **state)
{
    fixture_t *f = *state;
    responses_only(f, 0, 3);
    for (int i = 0; i < 2; i++) {
        gw_outlier_success(&f->b[0]);
        assert_int_equal(answer_n(f, 0, 500, 1, T0), 0);
    }
    gw_outlier_success(&f->b[0]);
    assert_int_equal(answer_n(f, 0, 500, 1, T0), 1);
}

/* Off by default: responses alone never eject, and cost nothing to count. */
static void outlier_response_runs_off_count_nothing(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(answer_n(f, 0, 503, 1000, T0), 0);
    assert_int_equal(atomic_load(&f->b[0].consecutive_5xx), 0);
    assert_int_equal(atomic_load(&f->b[0].consecutive_gateway_errors), 0);
    assert_int_equal(fail_n(f, 0, NB, THRESHOLD, T0), 1); /* the failure run still works */
}

/* Responses of connections opened before the ejection neither extend it nor count; the
 * share and the growing length are the same rules as for failures. */
static void outlier_5xx_follows_ejection_rules(void **state)
{
    fixture_t *f = *state;
    responses_only(f, 0, 2);
    assert_int_equal(answer_n(f, 0, 500, 2, T0), 1);
    assert_int_equal(answer_n(f, 0, 500, 10, T0 + 1), 0);
    assert_int_equal(atomic_load(&f->b[0].consecutive_5xx), 0);
    assert_int_equal(answer_n(f, 1, 500, 2, T0), 1);
    assert_int_equal(answer_n(f, 2, 500, 2, T0), 0); /* 3 of 5 > 50% */
    assert_int_equal(answer_n(f, 0, 500, 2, T0 + BASE), 1);
    assert_int_equal(atomic_load(&f->b[0].ejected_until_ms), T0 + BASE + 2 * BASE);
}

/* ---- the end of an ejection by an active check ------------------------------------------ */

static void outlier_uneject_ends_ejection_in_force(void **state)
{
    fixture_t *f = *state;
    f->cfg.consecutive_5xx = 4;
    assert_int_equal(fail_n(f, 0, NB, THRESHOLD, T0), 1);
    assert_int_equal(answer_n(f, 0, 500, 3, T0 + BASE), 0); /* a run in progress */
    assert_int_equal(fail_n(f, 0, NB, THRESHOLD, T0 + BASE), 1);
    assert_true(gw_outlier_uneject(&f->b[0], T0 + BASE + 1));
    assert_true(gw_backend_usable(&f->b[0], T0 + BASE + 1));
    assert_int_equal(atomic_load(&f->b[0].consecutive_5xx), 0);
    assert_int_equal(atomic_load(&f->b[0].ejections), 2); /* the next one is still longer */
    assert_int_equal(fail_n(f, 0, NB, THRESHOLD, T0 + BASE + 2), 1);
    assert_int_equal(atomic_load(&f->b[0].ejected_until_ms), T0 + BASE + 2 + 3 * BASE);
}

static void outlier_uneject_without_ejection_is_a_no_op(void **state)
{
    fixture_t *f = *state;
    assert_false(gw_outlier_uneject(&f->b[0], T0));
    assert_int_equal(fail_n(f, 0, NB, THRESHOLD - 1, T0), 0);
    assert_false(gw_outlier_uneject(&f->b[0], T0)); /* not ejected: the run goes on */
    assert_int_equal(atomic_load(&f->b[0].consecutive_failures), THRESHOLD - 1);
    assert_int_equal(fail_n(f, 0, NB, 1, T0), 1);
    assert_false(gw_outlier_uneject(&f->b[0], T0 + BASE)); /* over already */
    assert_int_equal(atomic_load(&f->b[0].ejected_until_ms), T0 + BASE);
}

/* ---- races ----------------------------------------------------------------------------- */

/* A high threshold for the races, so that all threads are busy failing when it is crossed
 * (with 5, the first thread out of the barrier would often cross it alone). */
#define RACE_THRESHOLD 1000
#define ROUNDS 50
#define PER_ROUND 1000 /* per thread: every round crosses the threshold */

typedef struct {
    fixture_t *f;
    pthread_barrier_t *barrier;
    size_t backend; /* which backend this thread fails */
    size_t n;       /* size of the upstream */
    int ejected;    /* gw_outlier_failure returned true */
} racer_t;

/* Every round, all threads fail their backend PER_ROUND times at the same made-up time,
 * released together by the barrier; each round starts after any earlier ejection ended. */
static void *race(void *arg)
{
    racer_t *r = arg;
    for (int round = 0; round < ROUNDS; round++) {
        uint64_t now = T0 + (uint64_t)round * 20u * BASE;
        pthread_barrier_wait(r->barrier);
        for (int j = 0; j < PER_ROUND; j++)
            r->ejected +=
                gw_outlier_failure(&r->f->cfg, &r->f->b[r->backend], r->f->all, r->n, now);
    }
    return NULL;
}

static int run_racers(fixture_t *f, bool same_backend, size_t n)
{
    pthread_barrier_t barrier;
    pthread_t th[NTHREADS];
    racer_t r[NTHREADS];
    f->cfg.consecutive_failures = RACE_THRESHOLD;
    /* Lab code runs once on the test thread before the threads start (gwtest.h); b[NB - 1]
     * takes no part in the race. */
    _Static_assert(NB > NTHREADS, "a backend outside the race");
    (void)gw_outlier_failure(&f->cfg, &f->b[NB - 1], &f->all[NB - 1], 1, T0);
    assert_int_equal(pthread_barrier_init(&barrier, NULL, NTHREADS), 0);
    for (size_t i = 0; i < NTHREADS; i++) {
        r[i] = (racer_t){.f = f, .barrier = &barrier, .backend = same_backend ? 0 : i, .n = n};
        assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    int total = 0;
    for (size_t i = 0; i < NTHREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        total += r[i].ejected;
    }
    pthread_barrier_destroy(&barrier);
    return total;
}

/* 4 threads on one backend: one ejection per threshold crossing, never two. */
static void outlier_concurrent_failures_eject_once(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(run_racers(f, true, 1), ROUNDS);
    assert_int_equal(atomic_load(&f->b[0].ejections), ROUNDS);
}

/* 4 threads on 4 backends of an upstream that allows 1 out (25%): never 2. */
static void outlier_concurrent_ejections_respect_max_percent(void **state)
{
    fixture_t *f = *state;
    f->cfg.max_ejection_percent = 25;
    int total = run_racers(f, false, NTHREADS);
    assert_true(total <= ROUNDS); /* at most one per round */
    unsigned sum = 0;
    for (size_t i = 0; i < NTHREADS; i++)
        sum += atomic_load(&f->b[i].ejections);
    assert_int_equal(sum, (unsigned)total);
    uint64_t last = T0 + (uint64_t)(ROUNDS - 1) * 20u * BASE;
    size_t out = 0;
    for (size_t i = 0; i < NTHREADS; i++)
        out += is_ejected(&f->b[i], last);
    assert_true(out <= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(outlier_ejects_at_exactly_threshold, setup, teardown),
        cmocka_unit_test_setup_teardown(outlier_success_resets_count, setup, teardown),
        cmocka_unit_test_setup_teardown(outlier_zero_threshold_never_ejects, setup, teardown),
        cmocka_unit_test_setup_teardown(outlier_failures_while_ejected_are_ignored, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(outlier_ejection_grows_with_repeats, setup, teardown),
        cmocka_unit_test_setup_teardown(outlier_ejection_capped_at_ten_times_base, setup, teardown),
        cmocka_unit_test_setup_teardown(outlier_max_percent_bounds_ejected_share, setup, teardown),
        cmocka_unit_test_setup_teardown(outlier_single_backend_can_be_ejected, setup, teardown),
        cmocka_unit_test_setup_teardown(outlier_ejected_backend_unusable_until_deadline, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(outlier_5xx_ejects_at_exactly_threshold, setup, teardown),
        cmocka_unit_test_setup_teardown(outlier_response_below_500_ends_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(outlier_gateway_errors_are_502_503_504, setup, teardown),
        cmocka_unit_test_setup_teardown(outlier_failure_counts_in_response_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(outlier_connect_success_keeps_5xx_run, setup, teardown),
        cmocka_unit_test_setup_teardown(outlier_response_runs_off_count_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(outlier_5xx_follows_ejection_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(outlier_uneject_ends_ejection_in_force, setup, teardown),
        cmocka_unit_test_setup_teardown(outlier_uneject_without_ejection_is_a_no_op, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(outlier_concurrent_failures_eject_once, setup, teardown),
        cmocka_unit_test_setup_teardown(outlier_concurrent_ejections_respect_max_percent, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
