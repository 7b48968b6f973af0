/* buf.h - fixed-size buffer chunks from a process-wide pool with a hard cap, handed out
 * through per-thread caches so the hot path takes no lock and touches no shared line
 * except one atomic counter when the cache is empty or full. */
#ifndef GW_BUF_H
#define GW_BUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "stream-t.h"

/* One chunk: this header, then chunk_size bytes of data. The header carries a write request
 * (stream-t.h) so that writing a chunk needs no second allocation: the chunk is the request. */
typedef struct gw_chunk_s gw_chunk_t;
struct gw_chunk_s {
    gw_chunk_t *next;      /* free list, or the owner's queue */
    gw_stream_write_t req; /* free for the owner's use while the chunk is out */
    void *owner;           /* free for the owner's use */
    uint32_t len;          /* bytes of data in use */
    uint32_t off;          /* bytes already consumed from the front */
    char data[];           /* chunk_size bytes */
};

/* The process-wide pool: only a size and counters. Chunks are malloc'd on demand up to
 * max_chunks; memory is bounded by max_chunks * (chunk_size + header) whatever the load. */
typedef struct gw_bufpool_s {
    size_t chunk_size;
    size_t max_chunks;
    atomic_size_t nchunks;        /* chunks that exist (in use or cached) */
    atomic_size_t peak;           /* highest nchunks seen */
    atomic_uint_least64_t denied; /* gets refused because the cap was reached */
} gw_bufpool_t;

/* A per-thread cache of free chunks. Never shared: each worker owns one and only that
 * worker's thread gets or puts through it. Chunks may not cross threads. */
typedef struct gw_bufcache_s {
    gw_bufpool_t *pool;
    gw_chunk_t *free;
    /* Written by the owning thread only, with a relaxed load and store (no locked
     * instruction, like a gw_counter_t); atomic so that gw_bufcache_cached_bytes may read it
     * from another thread (a scrape) with defined behaviour that TSan understands. */
    atomic_size_t nfree;
    size_t max_free; /* chunks kept for reuse beyond this go back to the system */
} gw_bufcache_t;

/* A pool's figures, in bytes of chunk data (chunk_size per chunk; the chunk header is not
 * counted, just as buffers.max_memory does not count it). */
typedef struct gw_bufpool_stats_s {
    uint64_t chunk_size;
    uint64_t limit_bytes; /* the cap: max_chunks x chunk_size (buffers.max_memory rounded
                           * down to whole chunks) */
    uint64_t bytes;       /* chunks that exist now, in use or kept in a cache for reuse */
    uint64_t peak_bytes;  /* the highest `bytes` so far */
    uint64_t exhausted;   /* gets refused because the cap was reached (a failed malloc is
                           * not counted); a read that is refused retries, and each retry
                           * that is refused counts again */
} gw_bufpool_stats_t;

/* Sets up POOL for chunks of CHUNK_SIZE bytes (>= 64) and at most MAX_BYTES of data in all
 * (at least one chunk). Returns 0 or GW_EINVAL. */
int gw_bufpool_init(gw_bufpool_t *pool, size_t chunk_size, size_t max_bytes);

/* Sets up CACHE over POOL keeping up to MAX_FREE free chunks for reuse. */
void gw_bufcache_init(gw_bufcache_t *cache, gw_bufpool_t *pool, size_t max_free);

/* Returns every cached chunk to the system. Call when the owning thread ends. */
void gw_bufcache_drain(gw_bufcache_t *cache);

/* Takes a chunk (len = off = 0), from the cache if possible. Returns NULL when the pool's
 * cap is reached (or malloc failed): the caller must cope, typically by pausing reads. */
gw_chunk_t *gw_chunk_get(gw_bufcache_t *cache);

/* Gives CH back (NULL is ignored). CH must have come from a cache of the same pool and
 * this thread. */
void gw_chunk_put(gw_bufcache_t *cache, gw_chunk_t *ch);

/* Shared chunks. A chunk that several pending uses hold (a read still being parsed, writes
 * sending from it, a buffered request body) counts them in `owner`, which gw_chunk_get
 * leaves at 0: each holder takes a reference, and the last unref gives the chunk back to
 * CACHE. (01's forwarder uses `owner` for its connection instead: one convention per
 * chunk, chosen by whoever got it.) */
void gw_chunk_ref(gw_chunk_t *ch);
void gw_chunk_unref(gw_bufcache_t *cache, gw_chunk_t *ch);

/* Charges BYTES of memory the caller allocates itself (a TLS connection's engine and its
 * record buffers) against POOL's cap, in whole chunks (BYTES rounded up to chunk_size), so
 * that buffers.max_memory bounds it too and the pool's figures count it as in use. 0, or
 * UV_ENOBUFS when it does not fit (nothing is charged; counted as an exhaustion). Safe from
 * any thread. */
int gw_bufpool_reserve(gw_bufpool_t *pool, size_t bytes);
/* Gives back a charge of BYTES made by gw_bufpool_reserve (the same BYTES). */
void gw_bufpool_unreserve(gw_bufpool_t *pool, size_t bytes);

/* Fills *OUT with POOL's figures. Safe from any thread at any time (relaxed atomic loads):
 * each figure is exact when read, but they are read one after the other, so with other
 * threads working they may be from slightly different moments. Touches no counter: the
 * pool already keeps them (nchunks, peak, denied), and the get path counts a refusal only
 * when it happens, so observing the pool costs the hot path nothing. */
void gw_bufpool_stats(const gw_bufpool_t *pool, gw_bufpool_stats_t *out);

/* Bytes of free chunks CACHE keeps for reuse (nfree x chunk_size), part of the pool's
 * `bytes` but not in use. Safe from any thread while CACHE exists (it was initialised
 * before that thread could see it): a relaxed load of the owner's count. */
uint64_t gw_bufcache_cached_bytes(const gw_bufcache_t *cache);

static inline size_t gw_chunk_size(const gw_bufcache_t *cache)
{
    return cache->pool->chunk_size;
}

#endif
