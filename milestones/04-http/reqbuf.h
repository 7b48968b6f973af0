/* reqbuf.h - a request body held whole before a backend is picked (a route's
 * request_buffering): bytes copied into buffer-pool chunks, so they count against
 * buffers.max_memory like every other byte in flight, and bounded by a cap of their own.
 *
 * Why: a client that sends its body slowly holds an upstream connection for as long as it
 * likes when the body streams (1,000 slow bodies became 1,000 backend connections). A small
 * body read completely first reaches the backend at once, and can be sent again on a retry.
 * nginx buffers every body (to disk past a size); HAProxy streams unless told to wait. */
#ifndef GW_REQBUF_H
#define GW_REQBUF_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef struct gw_reqbuf_s {
    /* Linked by next; each chunk's len says how much it holds. The buffer holds one
     * reference to each (gw_chunk_ref): a write sending from one may hold more. */
    gw_chunk_t *head, *tail;
    uint64_t len;            /* bytes held */
    uint64_t cap;            /* most bytes it may hold */
} gw_reqbuf_t;

/* An empty buffer that may hold up to CAP bytes. */
void gw_reqbuf_init(gw_reqbuf_t *b, uint64_t cap);

/* Copies as much of P[0..N) as fits: returns the bytes taken, fewer than N when the cap is
 * reached or the pool has no chunk to give (the caller then stops buffering and streams). */
size_t gw_reqbuf_append(gw_reqbuf_t *b, gw_bufcache_t *cache, const char *p, size_t n);

/* Drops B's reference to every chunk (the last one gives it back to CACHE) and empties B
 * (the cap stays). */
void gw_reqbuf_clear(gw_reqbuf_t *b, gw_bufcache_t *cache);

#endif
