/* test_kcount.c - counters kept by key (kcount.h): one entry per key, one- or two-part,
 * found again by a later generation that keeps the key, whatever else it changes; per-worker
 * blocks on cache lines of their own, summed; an entry held by reference freed at the last
 * put, a kept one only with the registry. */
#include "gwtest.h"

#include <stdint.h>
#include <stdlib.h>

#include "04-http/kcount.h"

/* From test_lcount.c: counters by listener name, one entry per name, found again by a later
 * generation that keeps the name, whatever else it changes; per-worker rows summed. */
static void kcount_same_name_same_counters(void **state)
{
    (void)state;
    gw_kcount_t *r = gw_kcount_new(2, 3 * sizeof(gw_counter_t));
    assert_non_null(r);
    gw_kcount_entry_t *edge = gw_kcount_keep(r, "edge", NULL);
    assert_non_null(edge);
    gw_counter_inc(gw_kcount_counter(edge, 0, 2));
    gw_counter_inc(gw_kcount_counter(edge, 1, 2));
    gw_counter_inc(gw_kcount_counter(edge, 1, 0));
    /* The next generation: "edge" again (its entry, its counts), and a new name. */
    gw_kcount_entry_t *other = gw_kcount_keep(r, "other", NULL);
    assert_ptr_equal(gw_kcount_keep(r, "edge", NULL), edge);
    assert_ptr_not_equal(other, edge);
    assert_ptr_equal(gw_kcount_find(r, "edge", NULL), edge);
    assert_ptr_equal(gw_kcount_find(r, "other", NULL), other);
    assert_null(gw_kcount_find(r, "gone", NULL));
    assert_int_equal(gw_kcount_sum(edge, 2), 2);
    assert_int_equal(gw_kcount_sum(edge, 0), 1);
    assert_int_equal(gw_kcount_sum(edge, 1), 0);
    assert_int_equal(gw_kcount_sum(other, 2), 0);
    assert_string_equal(other->k1, "other");
    gw_kcount_free(r);
}

/* (K1), (K1, K2) and (K1, K2') are three keys; the same key is the same entry. */
static void kcount_two_part_keys_are_distinct(void **state)
{
    (void)state;
    gw_kcount_t *r = gw_kcount_new(2, 8);
    assert_non_null(r);
    gw_kcount_entry_t *web = gw_kcount_get(r, "web", NULL);
    gw_kcount_entry_t *api = gw_kcount_get(r, "web", "api");
    gw_kcount_entry_t *other = gw_kcount_get(r, "web", "other");
    gw_kcount_entry_t *admin = gw_kcount_get(r, "admin", "api");
    assert_non_null(web);
    assert_non_null(api);
    assert_non_null(other);
    assert_non_null(admin);
    assert_ptr_not_equal(web, api);
    assert_ptr_not_equal(api, other);
    assert_ptr_not_equal(api, admin);
    assert_ptr_equal(gw_kcount_get(r, "web", "api"), api);
    assert_ptr_equal(gw_kcount_find(r, "web", NULL), web);
    assert_ptr_equal(gw_kcount_find(r, "admin", "api"), admin);
    assert_null(gw_kcount_find(r, "admin", NULL));
    assert_string_equal(api->k1, "web");
    assert_string_equal(api->k2, "api");
    assert_null(web->k2);
    assert_int_equal(gw_kcount_count(r), 4);
    gw_kcount_free(r); /* frees what is still held */
}

/* Each worker's block starts a cache line of its own, zeroed; the sum adds the workers. */
static void kcount_blocks_per_worker(void **state)
{
    (void)state;
    gw_kcount_t *r = gw_kcount_new(3, 100);
    gw_kcount_entry_t *e = gw_kcount_get(r, "up", NULL);
    assert_non_null(e);
    for (unsigned w = 0; w < 3; w++) {
        uintptr_t a = (uintptr_t)gw_kcount_block(e, w);
        assert_int_equal(a % 64, 0);
        if (w > 0)
            assert_true(a - (uintptr_t)gw_kcount_block(e, w - 1) >= 100);
        for (size_t i = 0; i < 100 / sizeof(gw_counter_t); i++)
            assert_int_equal(gw_counter_get(gw_kcount_counter(e, w, i)), 0);
    }
    gw_counter_inc(gw_kcount_counter(e, 0, 11));
    gw_counter_inc(gw_kcount_counter(e, 2, 11));
    gw_counter_inc(gw_kcount_counter(e, 2, 11));
    gw_counter_inc(gw_kcount_counter(e, 1, 0));
    assert_int_equal(gw_kcount_sum(e, 11), 3);
    assert_int_equal(gw_kcount_sum(e, 0), 1);
    assert_int_equal(gw_kcount_sum(e, 1), 0);
    gw_kcount_free(r);
}

/* An entry held by reference lives while one is held; after the last put the key is made
 * anew, at 0. */
static void kcount_last_put_frees(void **state)
{
    (void)state;
    gw_kcount_t *r = gw_kcount_new(1, sizeof(gw_counter_t));
    gw_kcount_entry_t *a = gw_kcount_get(r, "a", NULL), *b = gw_kcount_get(r, "b", "x");
    assert_ptr_equal(gw_kcount_get(r, "a", NULL), a); /* two views hold it */
    gw_counter_inc(gw_kcount_counter(a, 0, 0));
    gw_kcount_put(r, a);
    assert_ptr_equal(gw_kcount_find(r, "a", NULL), a);
    assert_int_equal(gw_kcount_count(r), 2);
    gw_kcount_put(r, a);
    assert_null(gw_kcount_find(r, "a", NULL));
    assert_ptr_equal(gw_kcount_find(r, "b", "x"), b);
    assert_int_equal(gw_kcount_count(r), 1);
    gw_kcount_put(r, NULL); /* fine */
    a = gw_kcount_get(r, "a", NULL);
    assert_int_equal(gw_kcount_sum(a, 0), 0);
    gw_kcount_put(r, b); /* the list's last entry, then its first */
    gw_kcount_put(r, a);
    assert_int_equal(gw_kcount_count(r), 0);
    gw_kcount_free(r);
}

/* A kept entry outlives every put of the references taken besides; keeping again takes no
 * reference more. */
static void kcount_kept_entry_outlives_puts(void **state)
{
    (void)state;
    gw_kcount_t *r = gw_kcount_new(1, sizeof(gw_counter_t));
    gw_kcount_entry_t *e = gw_kcount_get(r, "edge", NULL);
    assert_ptr_equal(gw_kcount_keep(r, "edge", NULL), e);
    assert_ptr_equal(gw_kcount_keep(r, "edge", NULL), e);
    gw_counter_inc(gw_kcount_counter(e, 0, 0));
    gw_kcount_put(r, e);
    assert_ptr_equal(gw_kcount_find(r, "edge", NULL), e);
    assert_int_equal(gw_kcount_sum(e, 0), 1);
    assert_int_equal(e->refs, 1);
    gw_kcount_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kcount_same_name_same_counters),
        cmocka_unit_test(kcount_two_part_keys_are_distinct),
        cmocka_unit_test(kcount_blocks_per_worker),
        cmocka_unit_test(kcount_last_put_frees),
        cmocka_unit_test(kcount_kept_entry_outlives_puts),
    };
    return cmocka_run_group_tests_name("kcount", tests, NULL, NULL);
}
