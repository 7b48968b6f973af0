/* test_buf.c - unit tests for buf.h: the capped chunk pool and its per-thread caches. */
#include "gwtest.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "failalloc.h"

#define CHUNK 64

static size_t nchunks(gw_bufpool_t *pool)
{
    return atomic_load(&pool->nchunks);
}

static void bufpool_init_rejects_chunk_below_64(void **state)
{
    (void)state;
    gw_bufpool_t pool;
    assert_int_equal(gw_bufpool_init(&pool, 63, 63 * 16), GW_EINVAL);
    assert_int_equal(gw_bufpool_init(&pool, 0, 4096), GW_EINVAL);
}

static void bufpool_init_rejects_cap_below_one_chunk(void **state)
{
    (void)state;
    gw_bufpool_t pool;
    assert_int_equal(gw_bufpool_init(&pool, 1024, 1023), GW_EINVAL);
    assert_int_equal(gw_bufpool_init(&pool, 1024, 0), GW_EINVAL);
}

static void bufpool_init_accepts_smallest_valid_sizes(void **state)
{
    (void)state;
    gw_bufpool_t pool;
    assert_int_equal(gw_bufpool_init(&pool, 64, 64), 0);
    assert_int_equal(pool.chunk_size, 64);
    assert_int_equal(pool.max_chunks, 1);
    assert_int_equal(nchunks(&pool), 0);
    assert_int_equal(atomic_load(&pool.peak), 0);
    assert_int_equal(atomic_load(&pool.denied), 0);
}

static void bufpool_init_cap_rounds_down_to_whole_chunks(void **state)
{
    (void)state;
    gw_bufpool_t pool;
    gw_bufcache_t cache;
    /* 4 chunks and 63 bytes: a fifth chunk would exceed max_bytes. */
    assert_int_equal(gw_bufpool_init(&pool, CHUNK, 4 * CHUNK + 63), 0);
    gw_bufcache_init(&cache, &pool, 0);
    gw_chunk_t *ch[5];
    for (int i = 0; i < 4; i++)
        assert_non_null(ch[i] = gw_chunk_get(&cache));
    assert_null(ch[4] = gw_chunk_get(&cache));
    for (int i = 0; i < 4; i++)
        gw_chunk_put(&cache, ch[i]);
    assert_int_equal(nchunks(&pool), 0);
}

static void chunk_get_denied_beyond_cap(void **state)
{
    (void)state;
    gw_bufpool_t pool;
    gw_bufcache_t cache;
    assert_int_equal(gw_bufpool_init(&pool, CHUNK, 3 * CHUNK), 0);
    gw_bufcache_init(&cache, &pool, 8);
    gw_chunk_t *ch[3];
    for (int i = 0; i < 3; i++)
        assert_non_null(ch[i] = gw_chunk_get(&cache));
    assert_int_equal(nchunks(&pool), 3);
    assert_int_equal(atomic_load(&pool.denied), 0);

    assert_null(gw_chunk_get(&cache));
    assert_int_equal(atomic_load(&pool.denied), 1);
    assert_null(gw_chunk_get(&cache));
    assert_int_equal(atomic_load(&pool.denied), 2);
    assert_int_equal(nchunks(&pool), 3);

    for (int i = 0; i < 3; i++)
        gw_chunk_put(&cache, ch[i]);
    gw_bufcache_drain(&cache);
    assert_int_equal(nchunks(&pool), 0);
}

static void chunk_get_succeeds_again_after_put(void **state)
{
    (void)state;
    gw_bufpool_t pool;
    gw_bufcache_t cache;
    assert_int_equal(gw_bufpool_init(&pool, CHUNK, 2 * CHUNK), 0);
    gw_bufcache_init(&cache, &pool, 0); /* no caching: puts go straight back */
    gw_chunk_t *a = gw_chunk_get(&cache), *b = gw_chunk_get(&cache);
    assert_non_null(a);
    assert_non_null(b);
    assert_null(gw_chunk_get(&cache));
    gw_chunk_put(&cache, a);
    assert_int_equal(nchunks(&pool), 1);
    gw_chunk_t *c = gw_chunk_get(&cache);
    assert_non_null(c);
    gw_chunk_put(&cache, b);
    gw_chunk_put(&cache, c);
    assert_int_equal(nchunks(&pool), 0);
    assert_int_equal(atomic_load(&pool.denied), 1);
}

static void chunk_get_returns_empty_writable_chunk(void **state)
{
    (void)state;
    gw_bufpool_t pool;
    gw_bufcache_t cache;
    assert_int_equal(gw_bufpool_init(&pool, 256, 4096), 0);
    gw_bufcache_init(&cache, &pool, 4);
    assert_int_equal(gw_chunk_size(&cache), 256);
    gw_chunk_t *ch = gw_chunk_get(&cache);
    assert_non_null(ch);
    assert_int_equal(ch->len, 0);
    assert_int_equal(ch->off, 0);
    /* The whole data area is ours (ASan reports an overflow if it is short). */
    memset(ch->data, 0xab, gw_chunk_size(&cache));
    assert_int_equal((unsigned char)ch->data[255], 0xab);
    gw_chunk_put(&cache, ch);
    gw_bufcache_drain(&cache);
}

static void chunk_get_resets_reused_chunk(void **state)
{
    (void)state;
    gw_bufpool_t pool;
    gw_bufcache_t cache;
    assert_int_equal(gw_bufpool_init(&pool, CHUNK, 16 * CHUNK), 0);
    gw_bufcache_init(&cache, &pool, 4);
    gw_chunk_t *ch = gw_chunk_get(&cache);
    assert_non_null(ch);
    ch->len = 40;
    ch->off = 12;
    gw_chunk_put(&cache, ch);
    gw_chunk_t *again = gw_chunk_get(&cache);
    assert_ptr_equal(again, ch);
    assert_int_equal(again->len, 0);
    assert_int_equal(again->off, 0);
    gw_chunk_put(&cache, again);
    gw_bufcache_drain(&cache);
}

static void chunk_put_then_get_reuses_cached_chunk(void **state)
{
    (void)state;
    gw_bufpool_t pool;
    gw_bufcache_t cache;
    assert_int_equal(gw_bufpool_init(&pool, CHUNK, 16 * CHUNK), 0);
    gw_bufcache_init(&cache, &pool, 4);
    gw_chunk_t *a = gw_chunk_get(&cache);
    assert_non_null(a);
    gw_chunk_put(&cache, a);
    assert_int_equal(cache.nfree, 1);
    assert_int_equal(nchunks(&pool), 1); /* cached, not freed */
    gw_chunk_t *b = gw_chunk_get(&cache);
    assert_ptr_equal(b, a);
    assert_int_equal(cache.nfree, 0);
    assert_int_equal(nchunks(&pool), 1); /* no new chunk was made */
    gw_chunk_put(&cache, b);
    gw_bufcache_drain(&cache);
}

static void chunk_put_null_is_ignored(void **state)
{
    (void)state;
    gw_bufpool_t pool;
    gw_bufcache_t cache;
    assert_int_equal(gw_bufpool_init(&pool, CHUNK, 4 * CHUNK), 0);
    gw_bufcache_init(&cache, &pool, 4);
    gw_chunk_put(&cache, NULL);
    assert_int_equal(cache.nfree, 0);
    assert_null(cache.free);
    assert_int_equal(nchunks(&pool), 0);
}

static void chunk_put_beyond_max_free_returns_to_system(void **state)
{
    (void)state;
    gw_bufpool_t pool;
    gw_bufcache_t cache;
    assert_int_equal(gw_bufpool_init(&pool, CHUNK, 16 * CHUNK), 0);
    gw_bufcache_init(&cache, &pool, 2);
    gw_chunk_t *ch[5];
    for (int i = 0; i < 5; i++)
        assert_non_null(ch[i] = gw_chunk_get(&cache));
    assert_int_equal(nchunks(&pool), 5);

    gw_chunk_put(&cache, ch[0]);
    gw_chunk_put(&cache, ch[1]);
    assert_int_equal(cache.nfree, 2);
    assert_int_equal(nchunks(&pool), 5);
    gw_chunk_put(&cache, ch[2]);
    assert_int_equal(cache.nfree, 2);
    assert_int_equal(nchunks(&pool), 4);
    gw_chunk_put(&cache, ch[3]);
    gw_chunk_put(&cache, ch[4]);
    assert_int_equal(cache.nfree, 2);
    assert_int_equal(nchunks(&pool), 2);

    gw_bufcache_drain(&cache);
    assert_int_equal(nchunks(&pool), 0);
}

static void bufcache_drain_frees_every_cached_chunk(void **state)
{
    (void)state;
    gw_bufpool_t pool;
    gw_bufcache_t cache;
    assert_int_equal(gw_bufpool_init(&pool, CHUNK, 16 * CHUNK), 0);
    gw_bufcache_init(&cache, &pool, 8);
    gw_chunk_t *ch[6];
    for (int i = 0; i < 6; i++)
        assert_non_null(ch[i] = gw_chunk_get(&cache));
    for (int i = 0; i < 6; i++)
        gw_chunk_put(&cache, ch[i]);
    assert_int_equal(cache.nfree, 6);
    assert_int_equal(nchunks(&pool), 6);

    gw_bufcache_drain(&cache);
    assert_int_equal(cache.nfree, 0);
    assert_null(cache.free);
    assert_int_equal(nchunks(&pool), 0);

    /* The cache still works after a drain. */
    gw_chunk_t *again = gw_chunk_get(&cache);
    assert_non_null(again);
    assert_int_equal(nchunks(&pool), 1);
    gw_chunk_put(&cache, again);
    gw_bufcache_drain(&cache);
    assert_int_equal(nchunks(&pool), 0);
}

static void bufcache_drain_leaves_chunks_in_use_counted(void **state)
{
    (void)state;
    gw_bufpool_t pool;
    gw_bufcache_t cache;
    assert_int_equal(gw_bufpool_init(&pool, CHUNK, 16 * CHUNK), 0);
    gw_bufcache_init(&cache, &pool, 8);
    gw_chunk_t *held = gw_chunk_get(&cache), *cached = gw_chunk_get(&cache);
    assert_non_null(held);
    assert_non_null(cached);
    gw_chunk_put(&cache, cached);
    gw_bufcache_drain(&cache);
    assert_int_equal(nchunks(&pool), 1); /* only the one still out */
    gw_chunk_put(&cache, held);
    gw_bufcache_drain(&cache);
    assert_int_equal(nchunks(&pool), 0);
}

static void bufpool_peak_records_highest_count(void **state)
{
    (void)state;
    gw_bufpool_t pool;
    gw_bufcache_t cache;
    assert_int_equal(gw_bufpool_init(&pool, CHUNK, 16 * CHUNK), 0);
    gw_bufcache_init(&cache, &pool, 0);
    gw_chunk_t *ch[5];
    for (int i = 0; i < 5; i++)
        assert_non_null(ch[i] = gw_chunk_get(&cache));
    assert_int_equal(atomic_load(&pool.peak), 5);
    for (int i = 0; i < 5; i++)
        gw_chunk_put(&cache, ch[i]);
    assert_int_equal(nchunks(&pool), 0);
    assert_int_equal(atomic_load(&pool.peak), 5); /* the peak stays */

    for (int i = 0; i < 3; i++)
        assert_non_null(ch[i] = gw_chunk_get(&cache));
    assert_int_equal(atomic_load(&pool.peak), 5); /* lower use does not move it */
    for (int i = 3; i < 5; i++)
        assert_non_null(ch[i] = gw_chunk_get(&cache));
    gw_chunk_t *sixth = gw_chunk_get(&cache);
    assert_non_null(sixth);
    assert_int_equal(atomic_load(&pool.peak), 6);
    gw_chunk_put(&cache, sixth);
    for (int i = 0; i < 5; i++)
        gw_chunk_put(&cache, ch[i]);
    assert_int_equal(nchunks(&pool), 0);
}

static void bufpool_peak_never_exceeds_cap(void **state)
{
    (void)state;
    gw_bufpool_t pool;
    gw_bufcache_t cache;
    assert_int_equal(gw_bufpool_init(&pool, CHUNK, 2 * CHUNK), 0);
    gw_bufcache_init(&cache, &pool, 0);
    gw_chunk_t *a = gw_chunk_get(&cache), *b = gw_chunk_get(&cache);
    assert_non_null(a);
    assert_non_null(b);
    for (int i = 0; i < 10; i++)
        assert_null(gw_chunk_get(&cache));
    assert_int_equal(atomic_load(&pool.peak), 2);
    assert_int_equal(atomic_load(&pool.denied), 10);
    gw_chunk_put(&cache, a);
    gw_chunk_put(&cache, b);
}

/* ---- figures for /metrics (gw_bufpool_stats, gw_bufcache_cached_bytes) ------------------- */

/* Asserts every figure of POOL at once (bytes, not chunks), and CACHE's cached bytes. */
static void expect_stats(const gw_bufpool_t *pool, const gw_bufcache_t *cache, uint64_t bytes,
                         uint64_t peak, uint64_t exhausted, uint64_t cached)
{
    gw_bufpool_stats_t st;
    memset(&st, 0xee, sizeof st);
    gw_bufpool_stats(pool, &st);
    assert_int_equal(st.chunk_size, CHUNK);
    assert_int_equal(st.bytes, bytes);
    assert_int_equal(st.peak_bytes, peak);
    assert_int_equal(st.exhausted, exhausted);
    assert_int_equal(gw_bufcache_cached_bytes(cache), cached);
}

static void bufpool_stats_start_at_zero_and_limit_is_whole_chunks(void **state)
{
    (void)state;
    gw_bufpool_t pool;
    gw_bufcache_t cache;
    assert_int_equal(gw_bufpool_init(&pool, CHUNK, 4 * CHUNK + 63), 0);
    gw_bufcache_init(&cache, &pool, 4);
    gw_bufpool_stats_t st;
    gw_bufpool_stats(&pool, &st);
    assert_int_equal(st.limit_bytes, 4 * CHUNK);
    expect_stats(&pool, &cache, 0, 0, 0, 0);
}

static void bufpool_stats_count_exhaustion_exactly(void **state)
{
    (void)state;
    gw_bufpool_t pool;
    gw_bufcache_t cache;
    assert_int_equal(gw_bufpool_init(&pool, CHUNK, 3 * CHUNK), 0);
    gw_bufcache_init(&cache, &pool, 2);
    gw_chunk_t *ch[3];
    for (int i = 0; i < 3; i++)
        assert_non_null(ch[i] = gw_chunk_get(&cache));
    expect_stats(&pool, &cache, 3 * CHUNK, 3 * CHUNK, 0, 0);

    /* The pool runs out: each refused get counts once, and nothing else moves. */
    assert_null(gw_chunk_get(&cache));
    assert_null(gw_chunk_get(&cache));
    expect_stats(&pool, &cache, 3 * CHUNK, 3 * CHUNK, 2, 0);

    /* A chunk given back stays allocated, in the cache: bytes keep counting it. */
    gw_chunk_put(&cache, ch[0]);
    expect_stats(&pool, &cache, 3 * CHUNK, 3 * CHUNK, 2, CHUNK);
    /* A get served by the cache is no refusal, even with the pool at its cap. */
    assert_non_null(ch[0] = gw_chunk_get(&cache));
    expect_stats(&pool, &cache, 3 * CHUNK, 3 * CHUNK, 2, 0);
    assert_null(gw_chunk_get(&cache));
    expect_stats(&pool, &cache, 3 * CHUNK, 3 * CHUNK, 3, 0);

    /* Give all back: two stay cached (max_free), the third goes back to the system. */
    for (int i = 0; i < 3; i++)
        gw_chunk_put(&cache, ch[i]);
    expect_stats(&pool, &cache, 2 * CHUNK, 3 * CHUNK, 3, 2 * CHUNK);
    gw_bufcache_drain(&cache);
    expect_stats(&pool, &cache, 0, 3 * CHUNK, 3, 0); /* the counter never goes back */
}

static void bufpool_stats_cached_bytes_per_cache(void **state)
{
    (void)state;
    gw_bufpool_t pool;
    gw_bufcache_t a, b;
    assert_int_equal(gw_bufpool_init(&pool, CHUNK, 8 * CHUNK), 0);
    gw_bufcache_init(&a, &pool, 4);
    gw_bufcache_init(&b, &pool, 4);
    gw_chunk_t *x = gw_chunk_get(&a), *y = gw_chunk_get(&b), *z = gw_chunk_get(&b);
    assert_non_null(x);
    assert_non_null(y);
    assert_non_null(z);
    gw_chunk_put(&b, y);
    /* Three chunks allocated: one in use from A, one in use and one cached in B. */
    expect_stats(&pool, &a, 3 * CHUNK, 3 * CHUNK, 0, 0);
    assert_int_equal(gw_bufcache_cached_bytes(&b), CHUNK);
    gw_chunk_put(&a, x);
    gw_chunk_put(&b, z);
    assert_int_equal(gw_bufcache_cached_bytes(&a), CHUNK);
    assert_int_equal(gw_bufcache_cached_bytes(&b), 2 * CHUNK);
    gw_bufcache_drain(&a);
    gw_bufcache_drain(&b);
    expect_stats(&pool, &b, 0, 3 * CHUNK, 0, 0);
}

/* ---- several threads, one pool ------------------------------------------------------- */

#define MT_THREADS 4
#define MT_CAP 6  /* fewer chunks than the threads could hold between them */
#define MT_HOLD 4 /* chunks one thread holds at most */
#define MT_ROUNDS 50000

typedef struct {
    gw_bufpool_t *pool;
    uv_barrier_t *start, *filled;
    atomic_size_t *outstanding; /* chunks handed out and not yet given back, all threads */
    atomic_size_t *max_outstanding;
    atomic_uint *errors;
    atomic_uint *finished; /* threads done, drained caches included */
    gw_bufcache_t cache;   /* set up by the test before the thread starts, as the runtime does */
    unsigned id;
    unsigned long got, denied;
    unsigned long first_got; /* chunks got while every thread was filling up at once */
} mt_arg_t;

static uint32_t xorshift32(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static void mt_note_max(atomic_size_t *max, size_t v)
{
    size_t m = atomic_load(max);
    while (v > m && !atomic_compare_exchange_weak(max, &m, v))
        ;
}

static void mt_give_back(mt_arg_t *a, gw_bufcache_t *cache, gw_chunk_t *ch)
{
    /* A chunk handed to two threads at once would have been overwritten by the other. */
    if ((unsigned char)ch->data[0] != a->id || (unsigned char)ch->data[CHUNK - 1] != a->id)
        atomic_fetch_add(a->errors, 1);
    atomic_fetch_sub(a->outstanding, 1);
    gw_chunk_put(cache, ch);
}

/* Takes one chunk into HELD; false when the pool refused. */
static bool mt_take(mt_arg_t *a, gw_bufcache_t *cache, gw_chunk_t **held, size_t *nheld)
{
    gw_chunk_t *ch = gw_chunk_get(cache);
    if (ch == NULL) {
        a->denied++;
        return false;
    }
    size_t now = atomic_fetch_add(a->outstanding, 1) + 1;
    if (now > MT_CAP)
        atomic_fetch_add(a->errors, 1);
    mt_note_max(a->max_outstanding, now);
    memset(ch->data, (int)a->id, CHUNK);
    held[(*nheld)++] = ch;
    a->got++;
    return true;
}

static void mt_worker(void *p)
{
    mt_arg_t *a = p;
    gw_bufcache_t *cache = &a->cache;
    gw_chunk_t *held[MT_HOLD];
    size_t nheld = 0;
    uint32_t seed = 0x9e3779b9u * (a->id + 1); /* fixed per thread */
    uv_barrier_wait(a->start);

    /* Phase 1: every thread tries to fill up, and all hold what they got at the same
     * time (the barrier), so the threads certainly compete for the cap. */
    for (int k = 0; k < MT_HOLD; k++)
        mt_take(a, cache, held, &nheld);
    a->first_got = nheld;
    uv_barrier_wait(a->filled);

    /* Phase 2: random gets and puts, interleaved however the scheduler likes. */
    for (int r = 0; r < MT_ROUNDS; r++) {
        uint32_t x = xorshift32(&seed);
        if (nheld < MT_HOLD && (nheld == 0 || (x & 1))) {
            mt_take(a, cache, held, &nheld);
        } else {
            size_t i = (x >> 1) % nheld;
            gw_chunk_t *ch = held[i];
            held[i] = held[--nheld];
            mt_give_back(a, cache, ch);
        }
    }
    while (nheld > 0)
        mt_give_back(a, cache, held[--nheld]);
    gw_bufcache_drain(cache);
    atomic_fetch_add(a->finished, 1);
}

/* Reads the pool's figures and every worker's cached bytes, as a scrape does, until every
 * worker finished, checking what holds at any moment. Returns how many rounds it read. */
static unsigned long mt_observe(const gw_bufpool_t *pool, const mt_arg_t *args,
                                atomic_uint *finished)
{
    unsigned long rounds = 0;
    uint64_t last_exhausted = 0;
    gw_bufpool_stats_t st;
    do {
        gw_bufpool_stats(pool, &st);
        assert_true(st.bytes <= st.limit_bytes);
        assert_true(st.peak_bytes <= st.limit_bytes);
        assert_true(st.exhausted >= last_exhausted); /* a counter */
        last_exhausted = st.exhausted;
        for (unsigned i = 0; i < MT_THREADS; i++)
            assert_true(gw_bufcache_cached_bytes(&args[i].cache) <= 2 * CHUNK); /* max_free */
        rounds++;
    } while (atomic_load(finished) < MT_THREADS);
    return rounds;
}

/* Runs MT_THREADS workers on a pool of MT_CAP chunks and checks the cap held; with
 * OBSERVE, this thread reads the figures the whole time (mt_observe). */
static void mt_run(bool observe)
{
    gw_bufpool_t pool;
    assert_int_equal(gw_bufpool_init(&pool, CHUNK, MT_CAP * CHUNK), 0);
    uv_barrier_t start, filled;
    assert_int_equal(uv_barrier_init(&start, MT_THREADS), 0);
    assert_int_equal(uv_barrier_init(&filled, MT_THREADS), 0);
    atomic_size_t outstanding, max_outstanding;
    atomic_uint errors, finished;
    atomic_init(&outstanding, 0);
    atomic_init(&max_outstanding, 0);
    atomic_init(&errors, 0);
    atomic_init(&finished, 0);
    mt_arg_t args[MT_THREADS];
    uv_thread_t tids[MT_THREADS];
    for (unsigned i = 0; i < MT_THREADS; i++) {
        args[i] = (mt_arg_t){.pool = &pool,
                             .start = &start,
                             .filled = &filled,
                             .outstanding = &outstanding,
                             .max_outstanding = &max_outstanding,
                             .errors = &errors,
                             .finished = &finished,
                             .id = i + 1};
        gw_bufcache_init(&args[i].cache, &pool, 2);
    }
    for (unsigned i = 0; i < MT_THREADS; i++)
        assert_int_equal(uv_thread_create(&tids[i], mt_worker, &args[i]), 0);
    unsigned long rounds = observe ? mt_observe(&pool, args, &finished) : 0;
    unsigned long got = 0, denied = 0, first_got = 0;
    for (unsigned i = 0; i < MT_THREADS; i++) {
        assert_int_equal(uv_thread_join(&tids[i]), 0);
        got += args[i].got;
        denied += args[i].denied;
        first_got += args[i].first_got;
    }
    uv_barrier_destroy(&start);
    uv_barrier_destroy(&filled);

    assert_int_equal(atomic_load(&errors), 0);
    assert_true(atomic_load(&max_outstanding) <= MT_CAP);
    assert_true(atomic_load(&pool.peak) <= MT_CAP);
    assert_int_equal(atomic_load(&outstanding), 0);
    assert_int_equal(nchunks(&pool), 0); /* every chunk given back and every cache drained */
    /* While all filled up at once, exactly the cap was handed out and the rest refused. */
    assert_int_equal(first_got, MT_CAP);
    assert_true(denied >= MT_THREADS * MT_HOLD - MT_CAP);
    assert_int_equal(atomic_load(&pool.denied), denied);
    assert_true(got > first_got);
    gw_bufpool_stats_t st;
    gw_bufpool_stats(&pool, &st);
    assert_int_equal(st.exhausted, denied); /* every refusal counted once, none lost */
    assert_int_equal(st.bytes, 0);
    assert_true(!observe || rounds > 0);
}

static void bufpool_cap_holds_across_threads(void **state)
{
    (void)state;
    mt_run(false);
}

/* Under TSan this is the proof that a scrape may read the figures while workers work. */
static void bufpool_stats_readable_while_threads_work(void **state)
{
    (void)state;
    mt_run(true);
}

/* ---- allocation failure (failalloc.h: this binary is linked with --wrap) ---------------- */

/* Takes three chunks through a cache that keeps two, gives them back and drains. When a
 * chunk cannot be allocated, gives back what it holds and reports GW_ENOMEM; either way
 * the pool must account for exactly the chunks that exist. */
static int oom_three_chunks(void *ctx)
{
    (void)ctx;
    gw_bufpool_t pool;
    gw_bufcache_t cache;
    if (gw_bufpool_init(&pool, CHUNK, 8 * CHUNK) != 0)
        return GW_EINVAL;
    gw_bufcache_init(&cache, &pool, 2);
    gw_chunk_t *ch[3] = {NULL, NULL, NULL};
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++) {
        ch[i] = gw_chunk_get(&cache);
        if (ch[i] == NULL)
            rc = GW_ENOMEM;
        else
            memset(ch[i]->data, 'a' + i, CHUNK);
        /* A failed malloc gives its reservation back: the cap counts real chunks only. */
        assert_int_equal(nchunks(&pool), (size_t)(ch[i] != NULL ? i + 1 : i));
    }
    assert_int_equal(atomic_load(&pool.denied), 0); /* not an exhaustion of the cap */
    for (int i = 0; i < 3; i++)
        gw_chunk_put(&cache, ch[i]);
    gw_bufcache_drain(&cache);
    assert_int_equal(nchunks(&pool), 0);
    return rc;
}

static void chunk_get_fails_cleanly_at_each_allocation(void **state)
{
    (void)state;
    gw_failalloc_report_t once = gw_failalloc_each(oom_three_chunks, NULL, false);
    gw_failalloc_report_t always = gw_failalloc_each(oom_three_chunks, NULL, true);
    assert_int_equal(once.allocations, 3);
    assert_int_equal(once.absorbed, 0);
    assert_int_equal(always.allocations, 3);
}

/* A chunk that comes from the cache costs no allocation, so a shortage of memory does not
 * stop a worker that has chunks to reuse. */
static void chunk_get_from_cache_survives_allocation_failure(void **state)
{
    (void)state;
    gw_bufpool_t pool;
    gw_bufcache_t cache;
    assert_int_equal(gw_bufpool_init(&pool, CHUNK, 8 * CHUNK), 0);
    gw_bufcache_init(&cache, &pool, 4);
    gw_chunk_put(&cache, gw_chunk_get(&cache));
    gw_failalloc_arm(1, true);
    gw_chunk_t *ch = gw_chunk_get(&cache);
    unsigned long made = gw_failalloc_seen();
    gw_chunk_t *second = gw_chunk_get(&cache); /* the cache is empty now: this one fails */
    gw_failalloc_disarm();
    assert_non_null(ch);
    assert_int_equal(made, 0);
    assert_null(second);
    gw_chunk_put(&cache, ch);
    gw_bufcache_drain(&cache);
    assert_int_equal(nchunks(&pool), 0);
}

/* Memory the caller allocates itself (a TLS engine's buffers) is charged in whole chunks:
 * 1 byte costs a chunk, CHUNK + 1 two, and what is charged is what /stats shows in use. */
static void bufpool_reserve_charges_whole_chunks_against_the_cap(void **state)
{
    (void)state;
    gw_bufpool_t pool;
    gw_bufcache_t cache;
    assert_int_equal(gw_bufpool_init(&pool, CHUNK, 4 * CHUNK), 0);
    gw_bufcache_init(&cache, &pool, 4);
    assert_int_equal(gw_bufpool_reserve(&pool, 1), 0);
    assert_int_equal(nchunks(&pool), 1);
    assert_int_equal(gw_bufpool_reserve(&pool, CHUNK + 1), 0);
    assert_int_equal(nchunks(&pool), 3);
    gw_bufpool_stats_t st;
    gw_bufpool_stats(&pool, &st);
    assert_int_equal(st.bytes, 3 * CHUNK);
    assert_int_equal(st.peak_bytes, 3 * CHUNK);
    /* one chunk left: a read still gets it, and then nothing more fits */
    gw_chunk_t *ch = gw_chunk_get(&cache);
    assert_non_null(ch);
    assert_null(gw_chunk_get(&cache));
    gw_chunk_put(&cache, ch);
    gw_bufpool_unreserve(&pool, CHUNK + 1);
    gw_bufpool_unreserve(&pool, 1);
    assert_int_equal(nchunks(&pool), 1); /* the cached chunk */
    gw_bufcache_drain(&cache);
    assert_int_equal(nchunks(&pool), 0);
}

/* A reservation that does not fit is refused whole (nothing charged) and counted as an
 * exhaustion, like a refused read. */
static void bufpool_reserve_refused_beyond_cap_charges_nothing(void **state)
{
    (void)state;
    gw_bufpool_t pool;
    assert_int_equal(gw_bufpool_init(&pool, CHUNK, 4 * CHUNK), 0);
    assert_int_equal(gw_bufpool_reserve(&pool, 3 * CHUNK), 0);
    assert_int_equal(gw_bufpool_reserve(&pool, 2 * CHUNK), UV_ENOBUFS);
    assert_int_equal(nchunks(&pool), 3);
    assert_int_equal(atomic_load(&pool.denied), 1);
    assert_int_equal(gw_bufpool_reserve(&pool, CHUNK), 0); /* the last one still fits */
    gw_bufpool_unreserve(&pool, CHUNK);
    gw_bufpool_unreserve(&pool, 3 * CHUNK);
    assert_int_equal(nchunks(&pool), 0);
    assert_int_equal(gw_bufpool_reserve(&pool, 0), 0); /* nothing to charge */
    assert_int_equal(nchunks(&pool), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bufpool_init_rejects_chunk_below_64),
        cmocka_unit_test(bufpool_init_rejects_cap_below_one_chunk),
        cmocka_unit_test(bufpool_init_accepts_smallest_valid_sizes),
        cmocka_unit_test(bufpool_init_cap_rounds_down_to_whole_chunks),
        cmocka_unit_test(chunk_get_denied_beyond_cap),
        cmocka_unit_test(chunk_get_succeeds_again_after_put),
        cmocka_unit_test(chunk_get_returns_empty_writable_chunk),
        cmocka_unit_test(chunk_get_resets_reused_chunk),
        cmocka_unit_test(chunk_put_then_get_reuses_cached_chunk),
        cmocka_unit_test(chunk_put_null_is_ignored),
        cmocka_unit_test(chunk_put_beyond_max_free_returns_to_system),
        cmocka_unit_test(bufcache_drain_frees_every_cached_chunk),
        cmocka_unit_test(bufcache_drain_leaves_chunks_in_use_counted),
        cmocka_unit_test(bufpool_peak_records_highest_count),
        cmocka_unit_test(bufpool_peak_never_exceeds_cap),
        cmocka_unit_test(bufpool_stats_start_at_zero_and_limit_is_whole_chunks),
        cmocka_unit_test(bufpool_stats_count_exhaustion_exactly),
        cmocka_unit_test(bufpool_stats_cached_bytes_per_cache),
        cmocka_unit_test(bufpool_reserve_charges_whole_chunks_against_the_cap),
        cmocka_unit_test(bufpool_reserve_refused_beyond_cap_charges_nothing),
        cmocka_unit_test(bufpool_cap_holds_across_threads),
        cmocka_unit_test(bufpool_stats_readable_while_threads_work),
        cmocka_unit_test_teardown(chunk_get_fails_cleanly_at_each_allocation,
                                  gw_failalloc_teardown),
        cmocka_unit_test_teardown(chunk_get_from_cache_survives_allocation_failure,
                                  gw_failalloc_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
