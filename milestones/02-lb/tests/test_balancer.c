/* test_balancer.c - backends' usability and every balancing strategy, with fixed seeds and
 * simulated connection counts: no sockets, no time. consistent_hash is in test_chash.c. */
#include "gwtest.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "02-lb/backend.h"
#include "02-lb/balancer.h"
#include "rand.h"

#define MAXB 8
#define NONE SIZE_MAX

typedef struct fixture_s {
    gw_backend_t be[MAXB];
    gw_lb_member_t m[MAXB]; /* the table's view: backend and weight */
    bool usable[MAXB];
    size_t n;
} fixture_t;

/* N backends 127.0.0.1:9001.. with WEIGHTS, all usable. */
static void fixture_init(fixture_t *f, const unsigned *weights, size_t n)
{
    assert_true(n <= MAXB);
    f->n = n;
    for (size_t i = 0; i < n; i++) {
        char text[48];
        const char *why = NULL;
        gw_addr_t a;
        snprintf(text, sizeof(text), "127.0.0.1:%zu", 9001 + i);
        assert_int_equal(gw_addr_parse(text, false, false, &a, &why), 0);
        gw_backend_init(&f->be[i], &a);
        gw_backend_member_init(&f->m[i], &f->be[i], weights[i], NULL);
        f->m[i].pos = i;
        f->usable[i] = true;
    }
}

static gw_balancer_t *new_balancer(gw_balancer_kind_t kind, fixture_t *f, uint64_t seed)
{
    gw_balancer_t *b = gw_balancer_new(kind, f->m, f->n, seed);
    assert_non_null(b);
    return b;
}

static int pick(gw_balancer_t *b, const bool *usable, size_t avoid)
{
    gw_pick_t p = {.usable = usable, .avoid = avoid, .key = 0};
    return gw_balancer_pick(b, &p);
}

/* COUNT picks written as letters (backend 0 is 'A', -1 is '-') into OUT, so a failing
 * sequence test prints the sequence it got next to the one it wanted. */
static void pick_letters(gw_balancer_t *b, const bool *usable, size_t count, char *out)
{
    for (size_t i = 0; i < count; i++) {
        int r = pick(b, usable, NONE);
        out[i] = r < 0 ? '-' : (char)('A' + r);
    }
    out[count] = '\0';
}

static void set_active(fixture_t *f, size_t i, unsigned active)
{
    atomic_store(&f->be[i].active, active);
}

/* Runs PICKS picks. Each opens a connection (active + 1); before a pick, if WINDOW are
 * open, the oldest closes (FIFO), so every connection lives for WINDOW picks and a
 * backend's share of the picks equals its share of the open connections. COUNT[i]
 * receives backend i's picks. */
#define WINDOW_MAX 128
static void simulate(gw_balancer_t *b, fixture_t *f, size_t picks, size_t window, unsigned *count)
{
    int open[WINDOW_MAX];
    size_t head = 0, nopen = 0;
    assert_true(window > 0 && window <= WINDOW_MAX);
    memset(count, 0, f->n * sizeof(*count));
    for (size_t k = 0; k < picks; k++) {
        if (nopen == window) {
            atomic_fetch_sub(&f->be[open[head]].active, 1);
            head = (head + 1) % window;
            nopen--;
        }
        int r = pick(b, f->usable, NONE);
        assert_true(r >= 0 && (size_t)r < f->n);
        count[r]++;
        atomic_fetch_add(&f->be[r].active, 1);
        open[(head + nopen++) % window] = r;
    }
}

/* Fails unless COUNT out of TOTAL is within TOL percentage points of WANT percent. */
static void assert_share(unsigned count, unsigned total, double want, double tol, size_t idx)
{
    double got = 100.0 * count / total;
    if (fabs(got - want) > tol)
        fail_msg("backend %zu: %.2f%% of the picks, want %.2f%% +- %.1f points", idx, got, want,
                 tol);
}

/* ---- backends ----------------------------------------------------------------------- */

static void backend_init_formats_name_and_zeroes_counters(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, (unsigned[]){3}, 1);
    assert_string_equal(f.be[0].name, "127.0.0.1:9001");
    assert_int_equal(f.m[0].weight, 3);
    assert_ptr_equal(f.m[0].b, &f.be[0]);
    assert_null(f.be[0].key);
    assert_int_equal(atomic_load(&f.be[0].refs), 0);
    assert_int_equal(atomic_load(&f.be[0].health), GW_HEALTH_HEALTHY);
    assert_int_equal(atomic_load(&f.be[0].active), 0);
    assert_int_equal(atomic_load(&f.be[0].ejected_until_ms), 0);
    assert_int_equal(atomic_load(&f.be[0].picks), 0);
}

static void backend_init_treats_weight_zero_as_one(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, (unsigned[]){0}, 1);
    assert_int_equal(f.m[0].weight, 1);
}

static void backend_usable_when_healthy(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, (unsigned[]){1}, 1);
    assert_true(gw_backend_usable(&f.be[0], 1000));
}

static void backend_unusable_when_unhealthy(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, (unsigned[]){1}, 1);
    atomic_store(&f.be[0].health, GW_HEALTH_UNHEALTHY);
    assert_false(gw_backend_usable(&f.be[0], 1000));
}

static void backend_unusable_when_draining(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, (unsigned[]){1}, 1);
    atomic_store(&f.be[0].health, GW_HEALTH_DRAINING);
    assert_false(gw_backend_usable(&f.be[0], 1000));
}

static void backend_unusable_until_ejection_ends(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, (unsigned[]){1}, 1);
    atomic_store(&f.be[0].ejected_until_ms, 5000);
    assert_false(gw_backend_usable(&f.be[0], 4999)); /* deadline in the future */
    assert_true(gw_backend_usable(&f.be[0], 5000));  /* the deadline itself ends it */
    assert_true(gw_backend_usable(&f.be[0], 9000));  /* deadline in the past */
}

static void health_name_names_every_state(void **state)
{
    (void)state;
    assert_string_equal(gw_health_name(GW_HEALTH_HEALTHY), "healthy");
    assert_string_equal(gw_health_name(GW_HEALTH_UNHEALTHY), "unhealthy");
    assert_string_equal(gw_health_name(GW_HEALTH_DRAINING), "draining");
    assert_string_equal(gw_health_name((gw_health_t)42), "unknown");
}

/* ---- the interface ------------------------------------------------------------------ */

static void balancer_names_follow_kinds(void **state)
{
    (void)state;
    assert_string_equal(gw_balancer_names[GW_BAL_ROUND_ROBIN], "round_robin");
    assert_string_equal(gw_balancer_names[GW_BAL_WEIGHTED_ROUND_ROBIN], "weighted_round_robin");
    assert_string_equal(gw_balancer_names[GW_BAL_LEAST_CONNECTIONS], "least_connections");
    assert_string_equal(gw_balancer_names[GW_BAL_RANDOM_TWO_CHOICES], "random_two_choices");
    assert_string_equal(gw_balancer_names[GW_BAL_CONSISTENT_HASH], "consistent_hash");
    assert_null(gw_balancer_names[GW_BAL_COUNT]);
}

static void balancer_new_rejects_unknown_kind(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, (unsigned[]){1}, 1);
    assert_null(gw_balancer_new(GW_BAL_COUNT, f.m, f.n, 0));
}

static void balancer_without_backends_picks_nothing(void **state)
{
    (void)state;
    for (int k = 0; k < GW_BAL_COUNT; k++) {
        gw_balancer_t *b = gw_balancer_new((gw_balancer_kind_t)k, NULL, 0, 1);
        assert_non_null(b);
        assert_int_equal(pick(b, NULL, NONE), -1);
        gw_balancer_free(b);
    }
}

/* ---- round robin -------------------------------------------------------------------- */

static void round_robin_rotates_in_index_order(void **state)
{
    (void)state;
    fixture_t f;
    char seq[16];
    fixture_init(&f, (unsigned[]){1, 1, 1}, 3);
    gw_balancer_t *b = new_balancer(GW_BAL_ROUND_ROBIN, &f, 0); /* seed 0: starts at A */
    pick_letters(b, f.usable, 7, seq);
    assert_string_equal(seq, "ABCABCA");
    gw_balancer_free(b);
}

static void round_robin_ignores_weights(void **state)
{
    (void)state;
    fixture_t f;
    char seq[16];
    fixture_init(&f, (unsigned[]){5, 1, 1}, 3);
    gw_balancer_t *b = new_balancer(GW_BAL_ROUND_ROBIN, &f, 0);
    pick_letters(b, f.usable, 6, seq);
    assert_string_equal(seq, "ABCABC");
    gw_balancer_free(b);
}

static void round_robin_skips_unusable(void **state)
{
    (void)state;
    fixture_t f;
    char seq[16];
    fixture_init(&f, (unsigned[]){1, 1, 1, 1}, 4);
    gw_balancer_t *b = new_balancer(GW_BAL_ROUND_ROBIN, &f, 0);
    f.usable[1] = false;
    pick_letters(b, f.usable, 6, seq);
    assert_string_equal(seq, "ACDACD");
    gw_balancer_free(b);
}

static void round_robin_seed_sets_first_backend(void **state)
{
    (void)state;
    fixture_t f;
    char seq[16];
    fixture_init(&f, (unsigned[]){1, 1, 1}, 3);
    gw_balancer_t *b = new_balancer(GW_BAL_ROUND_ROBIN, &f, 4); /* 4 % 3 = 1: starts at B */
    pick_letters(b, f.usable, 4, seq);
    assert_string_equal(seq, "BCAB");
    gw_balancer_free(b);
}

/* ---- smooth weighted round robin ---------------------------------------------------- */

static void wrr_weights_5_1_1_give_aabacaa(void **state)
{
    (void)state;
    fixture_t f;
    char seq[32];
    fixture_init(&f, (unsigned[]){5, 1, 1}, 3);
    gw_balancer_t *b = new_balancer(GW_BAL_WEIGHTED_ROUND_ROBIN, &f, 0);
    pick_letters(b, f.usable, 21, seq); /* three full rounds of 7 */
    assert_string_equal(seq, "AABACAA"
                             "AABACAA"
                             "AABACAA");
    gw_balancer_free(b);
}

static void wrr_weights_2_1_give_aba(void **state)
{
    (void)state;
    fixture_t f;
    char seq[16];
    fixture_init(&f, (unsigned[]){2, 1}, 2);
    gw_balancer_t *b = new_balancer(GW_BAL_WEIGHTED_ROUND_ROBIN, &f, 0);
    pick_letters(b, f.usable, 9, seq);
    assert_string_equal(seq, "ABAABAABA");
    gw_balancer_free(b);
}

static void wrr_equal_weights_rotate(void **state)
{
    (void)state;
    fixture_t f;
    char seq[16];
    fixture_init(&f, (unsigned[]){3, 3, 3}, 3);
    gw_balancer_t *b = new_balancer(GW_BAL_WEIGHTED_ROUND_ROBIN, &f, 0);
    pick_letters(b, f.usable, 9, seq);
    assert_string_equal(seq, "ABCABCABC");
    gw_balancer_free(b);
}

/* With B out, the round is recomputed over A=5, C=1 (total 6): A A A C A A. */
static void wrr_unusable_backend_sits_out(void **state)
{
    (void)state;
    fixture_t f;
    char seq[16];
    fixture_init(&f, (unsigned[]){5, 1, 1}, 3);
    gw_balancer_t *b = new_balancer(GW_BAL_WEIGHTED_ROUND_ROBIN, &f, 0);
    f.usable[1] = false;
    pick_letters(b, f.usable, 12, seq);
    assert_string_equal(seq, "AAACAA"
                             "AAACAA");
    /* Its current weight was not advanced meanwhile: back in, the 5,1,1 round is exact. */
    f.usable[1] = true;
    pick_letters(b, f.usable, 7, seq);
    assert_string_equal(seq, "AABACAA");
    gw_balancer_free(b);
}

/* ---- least connections -------------------------------------------------------------- */

static void least_connections_picks_least_loaded(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, (unsigned[]){1, 1, 1}, 3);
    set_active(&f, 0, 3);
    set_active(&f, 1, 1);
    set_active(&f, 2, 2);
    gw_balancer_t *b = new_balancer(GW_BAL_LEAST_CONNECTIONS, &f, 0);
    for (int k = 0; k < 5; k++)
        assert_int_equal(pick(b, f.usable, NONE), 1);
    gw_balancer_free(b);
}

/* (active+1)/weight: A = (1+1)/1 = 2, B = (4+1)/3 = 1.67, so B although it has more. */
static void least_connections_divides_by_weight(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, (unsigned[]){1, 3}, 2);
    set_active(&f, 0, 1);
    set_active(&f, 1, 4);
    gw_balancer_t *b = new_balancer(GW_BAL_LEAST_CONNECTIONS, &f, 0);
    assert_int_equal(pick(b, f.usable, NONE), 1);
    set_active(&f, 1, 6); /* (6+1)/3 = 2.33 > 2 */
    assert_int_equal(pick(b, f.usable, NONE), 0);
    gw_balancer_free(b);
}

/* Idle backends: the +1 makes the heavier one win instead of a tie at 0. */
static void least_connections_prefers_heavier_idle_backend(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, (unsigned[]){1, 4}, 2);
    gw_balancer_t *b = new_balancer(GW_BAL_LEAST_CONNECTIONS, &f, 0);
    for (int k = 0; k < 4; k++)
        assert_int_equal(pick(b, f.usable, NONE), 1);
    gw_balancer_free(b);
}

/* Ties take turns: B and C always tie (each pick is released at once) while A is busy. */
static void least_connections_shares_ties_evenly(void **state)
{
    (void)state;
    fixture_t f;
    unsigned count[MAXB] = {0};
    fixture_init(&f, (unsigned[]){1, 1, 1, 1}, 4);
    set_active(&f, 0, 10);
    gw_balancer_t *b = new_balancer(GW_BAL_LEAST_CONNECTIONS, &f, 0);
    for (int k = 0; k < 3000; k++)
        count[pick(b, f.usable, NONE)]++;
    assert_int_equal(count[0], 0);
    assert_int_equal(count[1], 1000);
    assert_int_equal(count[2], 1000);
    assert_int_equal(count[3], 1000);
    gw_balancer_free(b);
}

/* Tolerance: 3 percentage points of each weight share over 10,000 picks, 100 connections
 * open at a time (the same bound as P2C's below). Least connections is deterministic here
 * and settles into exactly 10/20/30/40%; the margin is for the +1 in (active+1)/weight,
 * which nudges picks toward light backends when few connections are open. */
static void least_connections_respects_weights(void **state)
{
    (void)state;
    fixture_t f;
    unsigned count[MAXB];
    const unsigned w[] = {1, 2, 3, 4};
    fixture_init(&f, w, 4);
    gw_balancer_t *b = new_balancer(GW_BAL_LEAST_CONNECTIONS, &f, 0);
    simulate(b, &f, 10000, 100, count);
    for (size_t i = 0; i < 4; i++)
        assert_share(count[i], 10000, 10.0 * w[i], 3.0, i);
    gw_balancer_free(b);
}

/* Another thread opens and closes connections while this one picks: `active` is read with
 * atomic loads, so this is race-free (TSan checks it in `make tsan`), and no pick is ever
 * outside the set. */
typedef struct churn_s {
    fixture_t *f;
    atomic_bool stop;
} churn_t;

static void *churn(void *arg)
{
    churn_t *c = arg;
    for (unsigned k = 0; !atomic_load(&c->stop); k++) {
        atomic_fetch_add_explicit(&c->f->be[k % 3].active, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&c->f->be[k % 3].active, 1, memory_order_relaxed);
    }
    return NULL;
}

static void least_connections_reads_counts_updated_by_other_threads(void **state)
{
    (void)state;
    fixture_t f;
    pthread_t t;
    fixture_init(&f, (unsigned[]){1, 2, 3}, 3);
    churn_t c = {.f = &f};
    atomic_init(&c.stop, false);
    gw_balancer_t *b = new_balancer(GW_BAL_LEAST_CONNECTIONS, &f, 0);
    /* One pick before the thread starts: a handout's stub stops this test here, never
     * while the thread still uses this stack frame. All idle: the heaviest wins. */
    assert_int_equal(pick(b, f.usable, NONE), 2);
    assert_int_equal(pthread_create(&t, NULL, churn, &c), 0);
    for (int k = 0; k < 20000; k++) {
        int r = pick(b, f.usable, NONE);
        assert_true(r >= 0 && r < 3);
    }
    atomic_store(&c.stop, true);
    assert_int_equal(pthread_join(t, NULL), 0);
    gw_balancer_free(b);
}

/* ---- power of two random choices ---------------------------------------------------- */

/* Tolerance: 3 percentage points of each weight share over 10,000 picks with 100 open
 * connections, for each of three fixed seeds. Weights 1,2,3,4 on purpose: P2C only ever
 * chooses within a random pair, so a backend's share cannot exceed its chance of being in
 * the pair (2/N = 50% here); much more skewed weights need WRR or least_connections.
 * Measured: within 1.2 points for seeds 0..5. */
static void p2c_respects_weights(void **state)
{
    (void)state;
    const unsigned w[] = {1, 2, 3, 4};
    for (uint64_t seed = 1; seed <= 3; seed++) {
        fixture_t f;
        unsigned count[MAXB];
        fixture_init(&f, w, 4);
        gw_balancer_t *b = new_balancer(GW_BAL_RANDOM_TWO_CHOICES, &f, seed);
        simulate(b, &f, 10000, 100, count);
        for (size_t i = 0; i < 4; i++)
            assert_share(count[i], 10000, 10.0 * w[i], 3.0, i);
        gw_balancer_free(b);
    }
}

/* One backend has 100 connections, the others none (each pick released at once): it is
 * chosen only if both draws land on it, which distinct draws never do. Bound: < 5%. */
static void p2c_prefers_idle_backends(void **state)
{
    (void)state;
    fixture_t f;
    unsigned count[MAXB] = {0};
    fixture_init(&f, (unsigned[]){1, 1, 1, 1, 1}, 5);
    set_active(&f, 2, 100);
    gw_balancer_t *b = new_balancer(GW_BAL_RANDOM_TWO_CHOICES, &f, 7);
    for (int k = 0; k < 10000; k++)
        count[pick(b, f.usable, NONE)]++;
    assert_true(count[2] < 500);
    for (size_t i = 0; i < 5; i++)
        if (i != 2)
            assert_share(count[i], 10000, 25.0, 3.0, i); /* the idle four share evenly */
    gw_balancer_free(b);
}

/* With two usable backends the pair is always both of them, so the idle one always wins;
 * a second draw that could repeat the first would sometimes pick the busy one alone. */
static void p2c_draws_two_distinct_backends(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, (unsigned[]){1, 1, 1}, 3);
    set_active(&f, 0, 5);
    f.usable[1] = false;
    gw_balancer_t *b = new_balancer(GW_BAL_RANDOM_TWO_CHOICES, &f, 11);
    for (int k = 0; k < 1000; k++)
        assert_int_equal(pick(b, f.usable, NONE), 2);
    gw_balancer_free(b);
}

static void p2c_same_seed_same_picks(void **state)
{
    (void)state;
    fixture_t f;
    char s1[64], s2[64], s3[64];
    fixture_init(&f, (unsigned[]){1, 1, 1, 1, 1, 1}, 6);
    gw_balancer_t *b1 = new_balancer(GW_BAL_RANDOM_TWO_CHOICES, &f, 42);
    gw_balancer_t *b2 = new_balancer(GW_BAL_RANDOM_TWO_CHOICES, &f, 42);
    gw_balancer_t *b3 = new_balancer(GW_BAL_RANDOM_TWO_CHOICES, &f, 43);
    pick_letters(b1, f.usable, 60, s1);
    pick_letters(b2, f.usable, 60, s2);
    pick_letters(b3, f.usable, 60, s3);
    assert_string_equal(s1, s2);
    assert_string_not_equal(s1, s3);
    gw_balancer_free(b1);
    gw_balancer_free(b2);
    gw_balancer_free(b3);
}

/* ---- every strategy ----------------------------------------------------------------- */

/* Property: over random usable masks, loads, keys and avoids (fixed seed), no strategy ever
 * returns an unusable backend, returns -1 exactly when none is usable, and never returns
 * the avoided one while another is usable. */
static void every_strategy_picks_only_usable(void **state)
{
    (void)state;
    uint64_t s = 2024;
    fixture_t f;
    fixture_init(&f, (unsigned[]){1, 2, 3, 1, 5, 8}, 6);
    for (int k = 0; k < GW_BAL_COUNT; k++) {
        gw_balancer_t *b = new_balancer((gw_balancer_kind_t)k, &f, (uint64_t)k);
        for (int trial = 0; trial < 2000; trial++) {
            size_t nusable = 0;
            for (size_t i = 0; i < f.n; i++) {
                f.usable[i] = gw_rand_next(&s) % 3 != 0;
                nusable += f.usable[i];
                set_active(&f, i, (unsigned)(gw_rand_next(&s) % 10));
            }
            size_t avoid = gw_rand_next(&s) % 2 ? (size_t)(gw_rand_next(&s) % f.n) : NONE;
            gw_pick_t p = {.usable = f.usable, .avoid = avoid, .key = gw_rand_next(&s)};
            int r = gw_balancer_pick(b, &p);
            if (nusable == 0) {
                assert_int_equal(r, -1);
                continue;
            }
            assert_true(r >= 0 && (size_t)r < f.n);
            assert_true(f.usable[r]);
            if (avoid != NONE && f.usable[avoid] && nusable > 1)
                assert_true((size_t)r != avoid);
        }
        gw_balancer_free(b);
    }
}

static void every_strategy_returns_minus_one_when_none_usable(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, (unsigned[]){1, 1, 1}, 3);
    memset(f.usable, 0, sizeof(f.usable));
    for (int k = 0; k < GW_BAL_COUNT; k++) {
        gw_balancer_t *b = new_balancer((gw_balancer_kind_t)k, &f, 1);
        assert_int_equal(pick(b, f.usable, NONE), -1);
        assert_int_equal(pick(b, f.usable, 1), -1);
        gw_balancer_free(b);
    }
}

/* A retry avoids the backend that just failed: with the others idle or busy, and for
 * consistent_hash whatever the key, the avoided one is never chosen. */
static void every_strategy_honours_avoid(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, (unsigned[]){4, 1, 1}, 3);
    set_active(&f, 1, 50); /* least_connections and P2C would choose A if they could */
    set_active(&f, 2, 50);
    for (int k = 0; k < GW_BAL_COUNT; k++) {
        gw_balancer_t *b = new_balancer((gw_balancer_kind_t)k, &f, 3);
        for (uint64_t key = 0; key < 200; key++) {
            gw_pick_t p = {.usable = f.usable, .avoid = 0, .key = key * 0x9E3779B97F4A7C15ull};
            int r = gw_balancer_pick(b, &p);
            assert_true(r == 1 || r == 2);
        }
        gw_balancer_free(b);
    }
}

/* ...but when the avoided backend is the only usable one, it is still better than none. */
static void every_strategy_picks_avoided_when_only_one(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, (unsigned[]){1, 1, 1}, 3);
    f.usable[0] = f.usable[2] = false;
    for (int k = 0; k < GW_BAL_COUNT; k++) {
        gw_balancer_t *b = new_balancer((gw_balancer_kind_t)k, &f, 5);
        for (uint64_t key = 0; key < 20; key++) {
            gw_pick_t p = {.usable = f.usable, .avoid = 1, .key = key * 0x9E3779B97F4A7C15ull};
            assert_int_equal(gw_balancer_pick(b, &p), 1);
        }
        gw_balancer_free(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(backend_init_formats_name_and_zeroes_counters),
        cmocka_unit_test(backend_init_treats_weight_zero_as_one),
        cmocka_unit_test(backend_usable_when_healthy),
        cmocka_unit_test(backend_unusable_when_unhealthy),
        cmocka_unit_test(backend_unusable_when_draining),
        cmocka_unit_test(backend_unusable_until_ejection_ends),
        cmocka_unit_test(health_name_names_every_state),
        cmocka_unit_test(balancer_names_follow_kinds),
        cmocka_unit_test(balancer_new_rejects_unknown_kind),
        cmocka_unit_test(balancer_without_backends_picks_nothing),
        cmocka_unit_test(round_robin_rotates_in_index_order),
        cmocka_unit_test(round_robin_ignores_weights),
        cmocka_unit_test(round_robin_skips_unusable),
        cmocka_unit_test(round_robin_seed_sets_first_backend),
        cmocka_unit_test(wrr_weights_5_1_1_give_aabacaa),
        cmocka_unit_test(wrr_weights_2_1_give_aba),
        cmocka_unit_test(wrr_equal_weights_rotate),
        cmocka_unit_test(wrr_unusable_backend_sits_out),
        cmocka_unit_test(least_connections_picks_least_loaded),
        cmocka_unit_test(least_connections_divides_by_weight),
        cmocka_unit_test(least_connections_prefers_heavier_idle_backend),
        cmocka_unit_test(least_connections_shares_ties_evenly),
        cmocka_unit_test(least_connections_respects_weights),
        cmocka_unit_test(least_connections_reads_counts_updated_by_other_threads),
        cmocka_unit_test(p2c_respects_weights),
        cmocka_unit_test(p2c_prefers_idle_backends),
        cmocka_unit_test(p2c_draws_two_distinct_backends),
        cmocka_unit_test(p2c_same_seed_same_picks),
        cmocka_unit_test(every_strategy_picks_only_usable),
        cmocka_unit_test(every_strategy_returns_minus_one_when_none_usable),
        cmocka_unit_test(every_strategy_honours_avoid),
        cmocka_unit_test(every_strategy_picks_avoided_when_only_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
