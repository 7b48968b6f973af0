/* test_upool.c - the upstream pool's rules (upool.h), event by event with made-up times: the
 * order of reuse, what the sweep cuts and when, and which connections may be kept at all. */
#include "gwtest.h"

#include <string.h>

#include "04-http/upool.h"

/* A stand-in for the engine's upstream connection: the entry is embedded, not first, so
 * gw_upool_owner has an offset to undo. */
typedef struct conn_s {
    int id;
    gw_upool_entry_t pe;
} conn_t;

#define N 6

static conn_t conns[N];

static int setup(void **state)
{
    (void)state;
    memset(conns, 0, sizeof conns);
    for (int i = 0; i < N; i++)
        conns[i].id = i;
    return 0;
}

static int id_of(gw_upool_entry_t *e)
{
    return e == NULL ? -1 : gw_upool_owner(e, conn_t, pe)->id;
}

/* Asserts POOL holds exactly the ids in WANT (newest first, -1 ends the list), each marked
 * pooled, and that its count agrees. */
static void assert_pool(const gw_upool_t *pool, const int *want)
{
    size_t n = 0;
    for (gw_upool_entry_t *e = pool->head; e != NULL; e = e->next, n++) {
        assert_int_not_equal(want[n], -1);
        assert_int_equal(id_of(e), want[n]);
        assert_true(e->pooled);
    }
    assert_int_equal(want[n], -1);
    assert_int_equal(pool->n, n);
}

/* Asserts the cut-off TAIL holds exactly the ids in WANT, none pooled. */
static void assert_tail(gw_upool_entry_t *tail, const int *want)
{
    size_t n = 0;
    for (gw_upool_entry_t *e = tail; e != NULL; e = e->next, n++) {
        assert_int_not_equal(want[n], -1);
        assert_int_equal(id_of(e), want[n]);
        assert_false(e->pooled);
    }
    assert_int_equal(want[n], -1);
}

/* Puts conns[0..n) at times 1000, 1010, 1020...: conns[n-1] is the newest. */
static void put_n(gw_upool_t *pool, int n)
{
    for (int i = 0; i < n; i++)
        gw_upool_put(pool, &conns[i].pe, 1000 + 10 * (uint64_t)i);
}

/* Checkpoint 04.12: the most recently put connection is taken first (LIFO). */
static void upool_take_is_last_in_first_out(void **state)
{
    (void)state;
    gw_upool_t pool = {0};
    put_n(&pool, 3);
    assert_pool(&pool, (int[]){2, 1, 0, -1});
    assert_int_equal(conns[2].pe.idle_since, 1020);
    gw_upool_entry_t *e = gw_upool_take(&pool);
    assert_ptr_equal(gw_upool_owner(e, conn_t, pe), &conns[2]);
    assert_false(e->pooled);
    assert_null(e->next);
    assert_pool(&pool, (int[]){1, 0, -1});
    /* Put back, it is the newest again, at its new time. */
    gw_upool_put(&pool, e, 2000);
    assert_pool(&pool, (int[]){2, 1, 0, -1});
    assert_int_equal(conns[2].pe.idle_since, 2000);
    assert_int_equal(id_of(gw_upool_take(&pool)), 2);
    assert_int_equal(id_of(gw_upool_take(&pool)), 1);
    assert_int_equal(id_of(gw_upool_take(&pool)), 0);
    assert_pool(&pool, (int[]){-1});
}

static void upool_take_from_empty_is_null(void **state)
{
    (void)state;
    gw_upool_t pool = {0};
    assert_null(gw_upool_take(&pool));
    assert_int_equal(pool.n, 0);
    put_n(&pool, 1);
    assert_int_equal(id_of(gw_upool_take(&pool)), 0);
    assert_null(gw_upool_take(&pool));
    assert_int_equal(pool.n, 0);
}

/* An upstream closes a pooled connection: it leaves the list wherever it is. */
static void upool_remove_from_the_middle(void **state)
{
    (void)state;
    gw_upool_t pool = {0};
    put_n(&pool, 3);
    gw_upool_remove(&pool, &conns[1].pe);
    assert_false(conns[1].pe.pooled);
    assert_null(conns[1].pe.next);
    assert_pool(&pool, (int[]){2, 0, -1});
}

static void upool_remove_the_front(void **state)
{
    (void)state;
    gw_upool_t pool = {0};
    put_n(&pool, 3);
    gw_upool_remove(&pool, &conns[2].pe);
    assert_pool(&pool, (int[]){1, 0, -1});
    assert_int_equal(id_of(gw_upool_take(&pool)), 1);
}

static void upool_remove_the_back(void **state)
{
    (void)state;
    gw_upool_t pool = {0};
    put_n(&pool, 3);
    gw_upool_remove(&pool, &conns[0].pe);
    assert_pool(&pool, (int[]){2, 1, -1});
    gw_upool_remove(&pool, &conns[1].pe);
    gw_upool_remove(&pool, &conns[2].pe);
    assert_pool(&pool, (int[]){-1});
}

/* A connection that is not pooled (attached to an exchange, or cut by the sweep) closes
 * without touching the pool. */
static void upool_remove_of_an_unpooled_entry_does_nothing(void **state)
{
    (void)state;
    gw_upool_t pool = {0};
    put_n(&pool, 2);
    gw_upool_remove(&pool, &conns[4].pe);
    assert_pool(&pool, (int[]){1, 0, -1});
    gw_upool_entry_t *e = gw_upool_take(&pool);
    gw_upool_remove(&pool, e);
    assert_pool(&pool, (int[]){0, -1});
}

/* Checkpoint 04.12: the sweep keeps the max_idle newest and cuts the rest, however fresh. */
static void upool_cut_by_max_idle_only(void **state)
{
    (void)state;
    gw_upool_t pool = {0};
    put_n(&pool, 5); /* idle since 1000..1040 */
    gw_upool_entry_t *tail = gw_upool_cut(&pool, 3, 60000, 1050);
    assert_pool(&pool, (int[]){4, 3, 2, -1});
    assert_tail(tail, (int[]){1, 0, -1});
    /* At max_idle exactly, nothing more goes. */
    assert_null(gw_upool_cut(&pool, 3, 60000, 1050));
    assert_pool(&pool, (int[]){4, 3, 2, -1});
}

/* Checkpoint 04.12: under max_idle, only the connections idle too long are cut. */
static void upool_cut_by_idle_time_only(void **state)
{
    (void)state;
    gw_upool_t pool = {0};
    put_n(&pool, 5);
    /* At 1125 with a 100 ms timeout: 1000, 1010 and 1020 have been idle 125, 115 and 105. */
    gw_upool_entry_t *tail = gw_upool_cut(&pool, 32, 100, 1125);
    assert_pool(&pool, (int[]){4, 3, -1});
    assert_tail(tail, (int[]){2, 1, 0, -1});
}

static void upool_cut_by_both(void **state)
{
    (void)state;
    gw_upool_t pool = {0};
    put_n(&pool, 6);
    /* The timeout alone would keep 5, 4 and 3; max_idle keeps 2 of them. */
    gw_upool_entry_t *tail = gw_upool_cut(&pool, 2, 100, 1125);
    assert_pool(&pool, (int[]){5, 4, -1});
    assert_tail(tail, (int[]){3, 2, 1, 0, -1});
    /* Later, the timeout cuts under max_idle as well. */
    tail = gw_upool_cut(&pool, 2, 100, 1145);
    assert_pool(&pool, (int[]){5, -1});
    assert_tail(tail, (int[]){4, -1});
}

/* Checkpoint 04.12: idle_since + idle_timeout == now has been idle for idle_timeout: cut. */
static void upool_cut_at_the_timeout_exactly(void **state)
{
    (void)state;
    gw_upool_t pool = {0};
    gw_upool_put(&pool, &conns[0].pe, 1000);
    assert_null(gw_upool_cut(&pool, 32, 100, 1099)); /* one ms short: kept */
    assert_pool(&pool, (int[]){0, -1});
    gw_upool_entry_t *tail = gw_upool_cut(&pool, 32, 100, 1100);
    assert_pool(&pool, (int[]){-1});
    assert_tail(tail, (int[]){0, -1});
}

static void upool_cut_with_max_idle_zero_keeps_nothing(void **state)
{
    (void)state;
    gw_upool_t pool = {0};
    put_n(&pool, 2);
    gw_upool_entry_t *tail = gw_upool_cut(&pool, 0, 60000, 1010);
    assert_pool(&pool, (int[]){-1});
    assert_tail(tail, (int[]){1, 0, -1});
}

static void upool_cut_of_an_empty_pool_is_null(void **state)
{
    (void)state;
    gw_upool_t pool = {0};
    assert_null(gw_upool_cut(&pool, 2, 100, 5000));
    assert_pool(&pool, (int[]){-1});
}

/* The tail is out of the pool: closing its connections (which removes them) changes
 * nothing, and the pool takes puts again. */
static void upool_cut_tail_is_out_of_the_pool(void **state)
{
    (void)state;
    gw_upool_t pool = {0};
    put_n(&pool, 4);
    gw_upool_entry_t *tail = gw_upool_cut(&pool, 1, 60000, 1030);
    while (tail != NULL) {
        gw_upool_entry_t *e = tail;
        tail = e->next;
        e->next = NULL;
        gw_upool_remove(&pool, e);
    }
    assert_pool(&pool, (int[]){3, -1});
    gw_upool_put(&pool, &conns[0].pe, 1040);
    assert_pool(&pool, (int[]){0, 3, -1});
}

/* Checkpoint 04.12: max_requests 0 means no limit. */
static void upool_may_keep_without_a_request_limit(void **state)
{
    (void)state;
    assert_true(gw_upool_may_keep(1, 0, true, false));
    assert_true(gw_upool_may_keep(4000000000u, 0, true, false));
}

/* max_requests 1: every connection carries one request, then closes. */
static void upool_may_keep_max_requests_one(void **state)
{
    (void)state;
    assert_false(gw_upool_may_keep(1, 1, true, false));
    assert_false(gw_upool_may_keep(2, 1, true, false));
}

/* Checkpoint 04.12: a connection that carried max_requests carries no more. */
static void upool_may_keep_until_max_requests(void **state)
{
    (void)state;
    assert_true(gw_upool_may_keep(1, 3, true, false));
    assert_true(gw_upool_may_keep(2, 3, true, false));
    assert_false(gw_upool_may_keep(3, 3, true, false));
    assert_false(gw_upool_may_keep(4, 3, true, false));
}

static void upool_may_keep_nothing_while_draining(void **state)
{
    (void)state;
    assert_false(gw_upool_may_keep(1, 0, true, true));
    assert_false(gw_upool_may_keep(1, 1000, true, true));
}

static void upool_may_keep_nothing_unreusable(void **state)
{
    (void)state;
    assert_false(gw_upool_may_keep(1, 0, false, false));
    assert_false(gw_upool_may_keep(1, 1000, false, false));
}

/* The pool against a plain array model, under a fixed sequence of puts, takes, removes and
 * cuts: same members, same order, same count, at every step. */
static void upool_matches_a_model(void **state)
{
    (void)state;
    gw_upool_t pool = {0};
    int model[N + 1]; /* ids, newest first, then -1 */
    uint64_t since[N];
    size_t n = 0;
    uint64_t rng = 42, now = 0;
    for (int step = 0; step < 20000; step++) {
        rng = rng * 6364136223846793005u + 1442695040888963407u;
        unsigned r = (unsigned)(rng >> 33);
        now += r % 7;
        int id = (int)((r >> 4) % N);
        switch ((r >> 8) % 4) {
        case 0: /* put, if not pooled */
            if (!conns[id].pe.pooled) {
                gw_upool_put(&pool, &conns[id].pe, now);
                memmove(model + 1, model, n * sizeof *model);
                memmove(since + 1, since, n * sizeof *since);
                model[0] = id;
                since[0] = now;
                n++;
            }
            break;
        case 1: { /* take */
            gw_upool_entry_t *e = gw_upool_take(&pool);
            assert_int_equal(id_of(e), n > 0 ? model[0] : -1);
            if (n > 0) {
                memmove(model, model + 1, --n * sizeof *model);
                memmove(since, since + 1, n * sizeof *since);
            }
            break;
        }
        case 2: /* remove */
            gw_upool_remove(&pool, &conns[id].pe);
            for (size_t i = 0; i < n; i++)
                if (model[i] == id) {
                    memmove(model + i, model + i + 1, (n - i - 1) * sizeof *model);
                    memmove(since + i, since + i + 1, (n - i - 1) * sizeof *since);
                    n--;
                    break;
                }
            break;
        default: { /* cut */
            uint64_t max_idle = (r >> 12) % 5, timeout = 1 + (r >> 16) % 30;
            size_t keep = 0;
            while (keep < n && keep < max_idle && now - since[keep] < timeout)
                keep++;
            gw_upool_entry_t *tail = gw_upool_cut(&pool, max_idle, timeout, now);
            for (size_t i = keep; i < n; i++, tail = tail->next)
                assert_int_equal(id_of(tail), model[i]);
            assert_null(tail);
            n = keep;
            break;
        }
        }
        model[n] = -1;
        int want[N + 1];
        memcpy(want, model, (n + 1) * sizeof *want);
        assert_pool(&pool, want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(upool_take_is_last_in_first_out, setup),
        cmocka_unit_test_setup(upool_take_from_empty_is_null, setup),
        cmocka_unit_test_setup(upool_remove_from_the_middle, setup),
        cmocka_unit_test_setup(upool_remove_the_front, setup),
        cmocka_unit_test_setup(upool_remove_the_back, setup),
        cmocka_unit_test_setup(upool_remove_of_an_unpooled_entry_does_nothing, setup),
        cmocka_unit_test_setup(upool_cut_by_max_idle_only, setup),
        cmocka_unit_test_setup(upool_cut_by_idle_time_only, setup),
        cmocka_unit_test_setup(upool_cut_by_both, setup),
        cmocka_unit_test_setup(upool_cut_at_the_timeout_exactly, setup),
        cmocka_unit_test_setup(upool_cut_with_max_idle_zero_keeps_nothing, setup),
        cmocka_unit_test_setup(upool_cut_of_an_empty_pool_is_null, setup),
        cmocka_unit_test_setup(upool_cut_tail_is_out_of_the_pool, setup),
        cmocka_unit_test_setup(upool_may_keep_without_a_request_limit, setup),
        cmocka_unit_test_setup(upool_may_keep_max_requests_one, setup),
        cmocka_unit_test_setup(upool_may_keep_until_max_requests, setup),
        cmocka_unit_test_setup(upool_may_keep_nothing_while_draining, setup),
        cmocka_unit_test_setup(upool_may_keep_nothing_unreusable, setup),
        cmocka_unit_test_setup(upool_matches_a_model, setup),
    };
    return cmocka_run_group_tests_name("upool", tests, NULL, NULL);
}
