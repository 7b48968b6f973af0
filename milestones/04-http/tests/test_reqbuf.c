/* test_reqbuf.c - the request body buffer: copies across chunks, stops at its cap and when
 * the pool runs out, gives everything back. */
#include "gwtest.h"

#include <string.h>

#include "04-http/reqbuf.h"

typedef struct env_s {
    gw_bufpool_t pool;
    gw_bufcache_t cache;
} env_t;

static env_t E;

static int setup(void **state)
{
    (void)state;
    assert_int_equal(gw_bufpool_init(&E.pool, 64, 64 * 4), 0); /* 4 chunks of 64 bytes */
    gw_bufcache_init(&E.cache, &E.pool, 8);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    gw_bufcache_drain(&E.cache);
    assert_int_equal(atomic_load(&E.pool.nchunks), 0);
    return 0;
}

static void collect(const gw_reqbuf_t *b, char *out, size_t *n)
{
    *n = 0;
    for (const gw_chunk_t *ch = b->head; ch != NULL; ch = ch->next) {
        memcpy(out + *n, ch->data, ch->len);
        *n += ch->len;
    }
}

static void reqbuf_copies_across_chunks_in_order(void **state)
{
    (void)state;
    gw_reqbuf_t b;
    gw_reqbuf_init(&b, 200);
    char in[150], out[256];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (char)i;
    for (size_t i = 0; i < sizeof in; i += 10)
        assert_int_equal(gw_reqbuf_append(&b, &E.cache, in + i, 10), 10);
    size_t n;
    collect(&b, out, &n);
    assert_int_equal(n, sizeof in);
    assert_memory_equal(out, in, sizeof in);
    assert_int_equal(b.len, sizeof in);
    assert_int_equal(atomic_load(&E.pool.nchunks), 3); /* 150 bytes in 64-byte chunks */
    gw_reqbuf_clear(&b, &E.cache);
    assert_null(b.head);
    assert_int_equal(b.len, 0);
}

static void reqbuf_stops_at_cap(void **state)
{
    (void)state;
    gw_reqbuf_t b;
    gw_reqbuf_init(&b, 100);
    char in[80] = {0};
    assert_int_equal(gw_reqbuf_append(&b, &E.cache, in, 80), 80);
    assert_int_equal(gw_reqbuf_append(&b, &E.cache, in, 80), 20); /* only what fits */
    assert_int_equal(gw_reqbuf_append(&b, &E.cache, in, 1), 0);
    assert_int_equal(b.len, 100);
    gw_reqbuf_clear(&b, &E.cache);
}

static void reqbuf_stops_when_pool_is_out(void **state)
{
    (void)state;
    gw_reqbuf_t b;
    gw_reqbuf_init(&b, 10000);
    char in[300] = {0};
    assert_int_equal(gw_reqbuf_append(&b, &E.cache, in, 300), 256); /* 4 chunks in the pool */
    assert_int_equal(b.len, 256);
    gw_reqbuf_clear(&b, &E.cache);
    assert_int_equal(gw_reqbuf_append(&b, &E.cache, in, 10), 10); /* chunks came back */
    gw_reqbuf_clear(&b, &E.cache);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(reqbuf_copies_across_chunks_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(reqbuf_stops_at_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(reqbuf_stops_when_pool_is_out, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
