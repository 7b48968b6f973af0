/* test_runtime.c - unit tests for runtime.h: a listener's admission against max_connections. */
#include "gwtest.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "config.h"
#include "runtime.h"

#define NTHREADS 8
#define ROUNDS 50000
#define MAX_CONNS 3 /* the single-thread tests */
#define RACE_LIMIT 1
#define HOLD 500

static void listener_init(gw_listener_t *l, gw_listener_cfg_t *cfg, uint64_t max)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_connections = max;
    memset(l, 0, sizeof *l);
    l->cfg = cfg;
    atomic_init(&l->active, 0);
    atomic_init(&l->accepted, 0);
    atomic_init(&l->rejected, 0);
}

static void admit_up_to_the_limit_then_refuses(void **state)
{
    (void)state;
    gw_listener_cfg_t cfg;
    gw_listener_t l;
    listener_init(&l, &cfg, MAX_CONNS);
    for (int i = 0; i < MAX_CONNS; i++)
        assert_true(gw_listener_admit(&l));
    assert_false(gw_listener_admit(&l));
    assert_int_equal(atomic_load(&l.active), MAX_CONNS); /* the refusal backed out */
    gw_listener_leave(&l);
    assert_true(gw_listener_admit(&l)); /* a slot freed is a slot taken */
    assert_int_equal(atomic_load(&l.accepted), MAX_CONNS + 1);
    assert_int_equal(atomic_load(&l.rejected), 1);
}

/* The documented cost of "increment, then compare": while another worker is between its
 * increment and its back-out (it is being refused), a slot that just freed is not seen,
 * and this worker is refused too: one refusal too many, never one admission too many. */
static void admit_refuses_while_another_refusal_is_in_flight(void **state)
{
    (void)state;
    gw_listener_cfg_t cfg;
    gw_listener_t l;
    listener_init(&l, &cfg, MAX_CONNS);
    for (int i = 0; i < MAX_CONNS; i++)
        assert_true(gw_listener_admit(&l));
    atomic_fetch_add(&l.active, 1); /* worker B: incremented past the limit, not backed out */
    gw_listener_leave(&l);          /* a connection ends: MAX_CONNS - 1 are open */
    assert_false(gw_listener_admit(&l));
    atomic_fetch_sub(&l.active, 1); /* worker B backs out */
    assert_true(gw_listener_admit(&l));
}

typedef struct {
    gw_listener_t l;
    atomic_int inside; /* admitted and not yet left, counted by the test itself */
    atomic_int most;   /* the highest INSIDE any thread saw */
} race_t;

/* Admits, stays a while, leaves, as fast as it can. With a limit of 1, every attempt while
 * no one is inside is at the boundary. A check-then-increment admission (load, compare,
 * then add) fails this test in about 6 TSan runs of 10 (measured with 8 threads on 2
 * cores): TSan's instrumented atomics widen the gap between the load and the add, and a
 * thread preempted in it lets another in. Under ASan the gap is too narrow to be hit, so
 * read a pass there as "no overshoot seen", not as proof. */
static void racer(void *arg)
{
    race_t *r = arg;
    for (int i = 0; i < ROUNDS; i++) {
        if (!gw_listener_admit(&r->l))
            continue;
        int now = atomic_fetch_add(&r->inside, 1) + 1;
        int most = atomic_load(&r->most);
        while (now > most && !atomic_compare_exchange_weak(&r->most, &most, now))
            ;
        for (volatile int k = 0; k < HOLD; k++) /* stay a while: an overshoot must overlap */
            ;
        atomic_fetch_sub(&r->inside, 1);
        gw_listener_leave(&r->l);
    }
}

/* Several workers admitting and leaving at once: never more than max_connections inside. */
static void admit_never_exceeds_the_limit_across_threads(void **state)
{
    (void)state;
    gw_listener_cfg_t cfg;
    static race_t r;
    memset(&r, 0, sizeof r);
    listener_init(&r.l, &cfg, RACE_LIMIT);
    uv_thread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(uv_thread_create(&t[i], racer, &r), 0);
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(uv_thread_join(&t[i]), 0);
    assert_true(atomic_load(&r.most) <= RACE_LIMIT);
    assert_int_equal(atomic_load(&r.l.active), 0);
    assert_int_equal(atomic_load(&r.l.accepted) + atomic_load(&r.l.rejected),
                     (uint64_t)NTHREADS * ROUNDS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(admit_up_to_the_limit_then_refuses),
        cmocka_unit_test(admit_refuses_while_another_refusal_is_in_flight),
        cmocka_unit_test(admit_never_exceeds_the_limit_across_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
