/* buf.c - see buf.h. */
#include "buf.h"

#include <stdlib.h>

#include "error.h"

/* see buf.h */
int gw_bufpool_init(gw_bufpool_t *pool, size_t chunk_size, size_t max_bytes)
{
    if (chunk_size < 64 || chunk_size > UINT32_MAX || max_bytes < chunk_size)
        return GW_EINVAL;
    pool->chunk_size = chunk_size;
    pool->max_chunks = max_bytes / chunk_size;
    atomic_init(&pool->nchunks, 0);
    atomic_init(&pool->peak, 0);
    atomic_init(&pool->denied, 0);
    return 0;
}

/* see buf.h */
void gw_bufcache_init(gw_bufcache_t *cache, gw_bufpool_t *pool, size_t max_free)
{
    cache->pool = pool;
    cache->free = NULL;
    atomic_init(&cache->nfree, 0);
    cache->max_free = max_free;
}

/* Reserves room for K more chunks under the cap (all or none); false when they do not fit. */
static int reserve(gw_bufpool_t *pool, size_t k)
{
    size_t n = atomic_load_explicit(&pool->nchunks, memory_order_relaxed);
    do {
        if (n >= pool->max_chunks || pool->max_chunks - n < k)
            return 0;
    } while (!atomic_compare_exchange_weak_explicit(&pool->nchunks, &n, n + k, memory_order_relaxed,
                                                    memory_order_relaxed));
    /* The peak is a statistic: a lost race only under-reports it by a little. */
    size_t peak = atomic_load_explicit(&pool->peak, memory_order_relaxed);
    while (n + k > peak &&
           !atomic_compare_exchange_weak_explicit(&pool->peak, &peak, n + k, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
    return 1;
}

/* The cache's count, owner thread only: a relaxed load and store, not a read-modify-write
 * (one writer), so no locked instruction on the hot path. */
static size_t nfree_get(const gw_bufcache_t *cache)
{
    return atomic_load_explicit(&cache->nfree, memory_order_relaxed);
}

static void nfree_set(gw_bufcache_t *cache, size_t n)
{
    atomic_store_explicit(&cache->nfree, n, memory_order_relaxed);
}

/* see buf.h */
gw_chunk_t *gw_chunk_get(gw_bufcache_t *cache)
{
    gw_chunk_t *ch = cache->free;
    if (ch != NULL) {
        cache->free = ch->next;
        nfree_set(cache, nfree_get(cache) - 1);
    } else {
        gw_bufpool_t *pool = cache->pool;
        if (!reserve(pool, 1)) {
            atomic_fetch_add_explicit(&pool->denied, 1, memory_order_relaxed);
            return NULL;
        }
        ch = malloc(sizeof *ch + pool->chunk_size);
        if (ch == NULL) {
            atomic_fetch_sub_explicit(&pool->nchunks, 1, memory_order_relaxed);
            return NULL;
        }
    }
    ch->next = NULL;
    ch->owner = NULL;
    ch->len = ch->off = 0;
    return ch;
}

/* see buf.h */
void gw_chunk_put(gw_bufcache_t *cache, gw_chunk_t *ch)
{
    if (ch == NULL)
        return;
    size_t n = nfree_get(cache);
    if (n < cache->max_free) {
        ch->next = cache->free;
        cache->free = ch;
        nfree_set(cache, n + 1);
        return;
    }
    free(ch);
    atomic_fetch_sub_explicit(&cache->pool->nchunks, 1, memory_order_relaxed);
}

/* see buf.h */
void gw_bufcache_drain(gw_bufcache_t *cache)
{
    while (cache->free != NULL) {
        gw_chunk_t *ch = cache->free;
        cache->free = ch->next;
        nfree_set(cache, nfree_get(cache) - 1); /* a reader never sees more than exist */
        free(ch);
        atomic_fetch_sub_explicit(&cache->pool->nchunks, 1, memory_order_relaxed);
    }
}

/* see buf.h */
void gw_bufpool_stats(const gw_bufpool_t *pool, gw_bufpool_stats_t *out)
{
    uint64_t cs = pool->chunk_size;
    out->chunk_size = cs;
    out->limit_bytes = (uint64_t)pool->max_chunks * cs;
    out->bytes = (uint64_t)atomic_load_explicit(&pool->nchunks, memory_order_relaxed) * cs;
    out->peak_bytes = (uint64_t)atomic_load_explicit(&pool->peak, memory_order_relaxed) * cs;
    out->exhausted = atomic_load_explicit(&pool->denied, memory_order_relaxed);
}

/* see buf.h */
uint64_t gw_bufcache_cached_bytes(const gw_bufcache_t *cache)
{
    return (uint64_t)atomic_load_explicit(&cache->nfree, memory_order_relaxed) *
           cache->pool->chunk_size;
}

/* see buf.h */
void gw_chunk_ref(gw_chunk_t *ch)
{
    ch->owner = (void *)((uintptr_t)ch->owner + 1);
}

/* see buf.h */
void gw_chunk_unref(gw_bufcache_t *cache, gw_chunk_t *ch)
{
    uintptr_t n = (uintptr_t)ch->owner - 1;
    ch->owner = (void *)n;
    if (n == 0)
        gw_chunk_put(cache, ch);
}

/* see buf.h */
int gw_bufpool_reserve(gw_bufpool_t *pool, size_t bytes)
{
    size_t n = bytes / pool->chunk_size + (bytes % pool->chunk_size != 0);
    if (n == 0)
        return 0;
    if (!reserve(pool, n)) {
        atomic_fetch_add_explicit(&pool->denied, 1, memory_order_relaxed);
        return UV_ENOBUFS;
    }
    return 0;
}

/* see buf.h */
void gw_bufpool_unreserve(gw_bufpool_t *pool, size_t bytes)
{
    size_t n = bytes / pool->chunk_size + (bytes % pool->chunk_size != 0);
    atomic_fetch_sub_explicit(&pool->nchunks, n, memory_order_relaxed);
}
