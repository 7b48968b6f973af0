/* test_lcount.c - counters by listener name (lcount.h): one entry per name, found again by
 * a later generation that keeps the name, whatever else it changes; per-worker rows summed. */
#include "gwtest.h"

#include <stdlib.h>

#include "04-http/lcount.h"

static void lcount_same_name_same_counters(void **state)
{
    (void)state;
    gw_lcount_t *r = gw_lcount_new(2, 3);
    assert_non_null(r);
    gw_lcount_entry_t *edge = gw_lcount_add(r, "edge");
    assert_non_null(edge);
    gw_counter_inc(gw_lcount_at(edge, 0, 2));
    gw_counter_inc(gw_lcount_at(edge, 1, 2));
    gw_counter_inc(gw_lcount_at(edge, 1, 0));
    /* The next generation: "edge" again (its entry, its counts), and a new name. */
    gw_lcount_entry_t *other = gw_lcount_add(r, "other");
    assert_ptr_equal(gw_lcount_add(r, "edge"), edge);
    assert_ptr_not_equal(other, edge);
    assert_ptr_equal(gw_lcount_find(r, "edge"), edge);
    assert_ptr_equal(gw_lcount_find(r, "other"), other);
    assert_null(gw_lcount_find(r, "gone"));
    assert_int_equal(gw_lcount_sum(edge, 2), 2);
    assert_int_equal(gw_lcount_sum(edge, 0), 1);
    assert_int_equal(gw_lcount_sum(edge, 1), 0);
    assert_int_equal(gw_lcount_sum(other, 2), 0);
    assert_string_equal(gw_lcount_name(other), "other");
    gw_lcount_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lcount_same_name_same_counters),
    };
    return cmocka_run_group_tests_name("lcount", tests, NULL, NULL);
}
