/* test_reload_plan.c - the listener diff (identity: the address) and the backend carry rule
 * (identity: upstream name and resolved address). */
#include "gwtest.h"

#include <string.h>

#include "05-discovery/reload_plan.h"

static gw_addr_t addr(const char *text)
{
    gw_addr_t a;
    const char *why = NULL;
    assert_int_equal(gw_addr_parse(text, false, false, &a, &why), 0);
    return a;
}

static gw_listener_cfg_t lis(const char *name, const char *text, gw_proto_t proto)
{
    gw_listener_cfg_t l = {.name = (char *)name, .address_text = (char *)text, .protocol = proto};
    l.addr = addr(text);
    return l;
}

static gw_backend_key_t bk(const char *upstream, const char *text)
{
    return (gw_backend_key_t){.upstream = upstream, .addr = addr(text)};
}

/* Fills FROM and GONE with junk first: the plan must write every slot. */
#define PLAN(nold, ncur)                                                                           \
    size_t from[(ncur) + 1];                                                                       \
    bool gone[(nold) + 1];                                                                         \
    memset(from, 0x5a, sizeof from);                                                               \
    memset(gone, 0x5a, sizeof gone);                                                               \
    gw_plan_t p = {.from_old = from, .gone = gone, .kept = 99, .added = 99, .removed = 99}

static void listeners_same_address_kept(void **state)
{
    (void)state;
    gw_listener_cfg_t old[] = {lis("a", "127.0.0.1:18001", GW_PROTO_HTTP),
                               lis("b", "127.0.0.1:18002", GW_PROTO_TCP)};
    /* Same listeners in another order. */
    gw_listener_cfg_t cur[] = {lis("b", "127.0.0.1:18002", GW_PROTO_TCP),
                               lis("a", "127.0.0.1:18001", GW_PROTO_HTTP)};
    PLAN(2, 2);
    gw_plan_listeners(old, 2, cur, 2, &p);
    assert_int_equal(from[0], 1);
    assert_int_equal(from[1], 0);
    assert_false(gone[0]);
    assert_false(gone[1]);
    assert_int_equal(p.kept, 2);
    assert_int_equal(p.added, 0);
    assert_int_equal(p.removed, 0);
}

/* A new name and another protocol on the same address: the same socket. */
static void listeners_rename_kept(void **state)
{
    (void)state;
    gw_listener_cfg_t old[] = {lis("web", "127.0.0.1:18001", GW_PROTO_TCP)};
    gw_listener_cfg_t cur[] = {lis("edge", "127.0.0.1:18001", GW_PROTO_HTTP)};
    PLAN(1, 1);
    gw_plan_listeners(old, 1, cur, 1, &p);
    assert_int_equal(from[0], 0);
    assert_false(gone[0]);
    assert_int_equal(p.kept, 1);
    assert_int_equal(p.removed, 0);
}

/* Another port, or the same port on another address (IPv6 loopback), is a new listener. */
static void listeners_new_address_added(void **state)
{
    (void)state;
    gw_listener_cfg_t old[] = {lis("a", "127.0.0.1:18001", GW_PROTO_HTTP)};
    gw_listener_cfg_t cur[] = {lis("a", "127.0.0.1:18001", GW_PROTO_HTTP),
                               lis("b", "127.0.0.1:18003", GW_PROTO_HTTP),
                               lis("c", "[::1]:18001", GW_PROTO_HTTP)};
    PLAN(1, 3);
    gw_plan_listeners(old, 1, cur, 3, &p);
    assert_int_equal(from[0], 0);
    assert_true(from[1] == GW_PLAN_NEW);
    assert_true(from[2] == GW_PLAN_NEW);
    assert_false(gone[0]);
    assert_int_equal(p.kept, 1);
    assert_int_equal(p.added, 2);
    assert_int_equal(p.removed, 0);
}

/* A listener whose address is in no new entry is gone, even when its name is reused. */
static void listeners_gone_removed(void **state)
{
    (void)state;
    gw_listener_cfg_t old[] = {lis("a", "127.0.0.1:18001", GW_PROTO_HTTP),
                               lis("b", "127.0.0.1:18002", GW_PROTO_HTTP)};
    gw_listener_cfg_t cur[] = {lis("b", "127.0.0.1:18004", GW_PROTO_HTTP)};
    PLAN(2, 1);
    gw_plan_listeners(old, 2, cur, 1, &p);
    assert_true(from[0] == GW_PLAN_NEW);
    assert_true(gone[0]);
    assert_true(gone[1]);
    assert_int_equal(p.kept, 0);
    assert_int_equal(p.added, 1);
    assert_int_equal(p.removed, 2);
}

static void backends_carried_by_upstream_and_address(void **state)
{
    (void)state;
    gw_backend_key_t old[] = {bk("app", "127.0.0.1:19001"), bk("app", "127.0.0.1:19002"),
                              bk("api", "127.0.0.1:19003")};
    /* Reordered, one added: the kept ones find their old selves. */
    gw_backend_key_t cur[] = {bk("api", "127.0.0.1:19003"), bk("app", "127.0.0.1:19004"),
                              bk("app", "127.0.0.1:19002"), bk("app", "127.0.0.1:19001")};
    PLAN(3, 4);
    gw_plan_backends(old, 3, cur, 4, &p);
    assert_int_equal(from[0], 2);
    assert_true(from[1] == GW_PLAN_NEW);
    assert_int_equal(from[2], 1);
    assert_int_equal(from[3], 0);
    for (size_t j = 0; j < 3; j++)
        assert_false(gone[j]);
    assert_int_equal(p.kept, 3);
    assert_int_equal(p.added, 1);
    assert_int_equal(p.removed, 0);
}

/* An address moved to another upstream is another backend there; the old one drains. */
static void backends_same_address_other_upstream_not_carried(void **state)
{
    (void)state;
    gw_backend_key_t old[] = {bk("app", "127.0.0.1:19001")};
    gw_backend_key_t cur[] = {bk("api", "127.0.0.1:19001")};
    PLAN(1, 1);
    gw_plan_backends(old, 1, cur, 1, &p);
    assert_true(from[0] == GW_PLAN_NEW);
    assert_true(gone[0]);
    assert_int_equal(p.kept, 0);
    assert_int_equal(p.added, 1);
    assert_int_equal(p.removed, 1);
}

/* Upstream names compared as strings, not as pointers: a reload's names are new copies. */
static void backends_carried_when_names_are_other_copies(void **state)
{
    (void)state;
    char a1[] = "app", a2[] = "app";
    gw_backend_key_t old[] = {bk(a1, "127.0.0.1:19001")};
    gw_backend_key_t cur[] = {bk(a2, "127.0.0.1:19001")};
    PLAN(1, 1);
    gw_plan_backends(old, 1, cur, 1, &p);
    assert_int_equal(from[0], 0);
    assert_false(gone[0]);
}

static void backends_gone_listed(void **state)
{
    (void)state;
    gw_backend_key_t old[] = {bk("app", "127.0.0.1:19001"), bk("app", "127.0.0.1:19002"),
                              bk("app", "127.0.0.1:19003")};
    gw_backend_key_t cur[] = {bk("app", "127.0.0.1:19002"), bk("app", "127.0.0.1:29003")};
    PLAN(3, 2);
    gw_plan_backends(old, 3, cur, 2, &p);
    assert_true(gone[0]);
    assert_false(gone[1]);
    assert_true(gone[2]);
    assert_int_equal(from[0], 1);
    assert_true(from[1] == GW_PLAN_NEW);
    assert_int_equal(p.kept, 1);
    assert_int_equal(p.added, 1);
    assert_int_equal(p.removed, 2);
}

/* Nothing before (generation 1) or nothing after: every slot still written. */
static void backends_empty_sides(void **state)
{
    (void)state;
    gw_backend_key_t one[] = {bk("app", "127.0.0.1:19001")};
    {
        PLAN(0, 1);
        gw_plan_backends(NULL, 0, one, 1, &p);
        assert_true(from[0] == GW_PLAN_NEW);
        assert_int_equal(p.added, 1);
        assert_int_equal(p.removed, 0);
    }
    {
        PLAN(1, 0);
        gw_plan_backends(one, 1, NULL, 0, &p);
        assert_true(gone[0]);
        assert_int_equal(p.kept + p.added, 0);
        assert_int_equal(p.removed, 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(listeners_same_address_kept),
        cmocka_unit_test(listeners_rename_kept),
        cmocka_unit_test(listeners_new_address_added),
        cmocka_unit_test(listeners_gone_removed),
        cmocka_unit_test(backends_carried_by_upstream_and_address),
        cmocka_unit_test(backends_same_address_other_upstream_not_carried),
        cmocka_unit_test(backends_carried_when_names_are_other_copies),
        cmocka_unit_test(backends_gone_listed),
        cmocka_unit_test(backends_empty_sides),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
