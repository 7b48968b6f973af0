/* hwrite.c - what the HTTP engine writes, in the shapes HTTP/1.1 needs (hproxy.c has the
 * tour).
 *
 * Owns: serialising a head into the worker's writer (wbatch.h), a body span (by reference
 * when large, copied when small) with or without chunk framing, the last chunk with its
 * trailers, and the high and low water marks that backpressure compares queues with.
 *
 * Does not own: when to write (the client, exchange and upstream rooms decide) or the
 * system calls (wbatch.c). */
#include "04-http/hproxy-int.h"

#include <stdlib.h>
#include <string.h>

/* ---- writes ---------------------------------------------------------------------------- */

/* Everything goes through the worker's writer (wbatch.h). Each libuv callback of the engine
 * that can write runs inside gw_wb_hold .. gw_wb_release (the on_* wrappers), so what one event
 * produces for a peer leaves in one system call, and a write failure is handled at the end
 * of the event (client_on_error, upstream_on_error), never in the middle of other work. */

/* Room for N bytes for D: in the writer's scratch area (*HEAP false), or malloc'd for a head
 * bigger than that (*HEAP true: hand it to gw_wb_heap). NULL when D has failed (or now
 * fails: out of memory). */
static char *out_room(hp_worker_t *hw, gw_wdest_t *d, size_t n, bool *heap)
{
    char *p = gw_wb_reserve(&hw->wb, d, n);
    *heap = p == NULL;
    if (p != NULL || d->error != 0)
        return p;
    if ((p = malloc(n)) == NULL)
        gw_wb_fail(&hw->wb, d, UV_ENOMEM);
    return p;
}

/* Serialises head H followed by EXTRA (EXTRA_LEN bytes, may be NULL) for D. Returns the
 * bytes sent (0 when D has failed). */
size_t hp_out_head(hp_worker_t *hw, gw_wdest_t *d, const gw_h1_head_t *h, const char *extra,
                   size_t extra_len)
{
    size_t hs = gw_h1_head_size(h), need = hs + extra_len;
    bool heap;
    char *p = out_room(hw, d, need, &heap);
    if (p == NULL)
        return 0;
    long n = gw_h1_head_serialize(h, p, hs);
    if (n < 0) { /* cannot happen: the size came from the same head */
        if (heap)
            free(p);
        gw_wb_fail(&hw->wb, d, UV_EINVAL);
        return 0;
    }
    if (extra_len > 0)
        memcpy(p + n, extra, extra_len);
    if (heap)
        gw_wb_heap(&hw->wb, d, p, need);
    else
        gw_wb_commit(&hw->wb, need);
    return need;
}

/* Ends a chunked body for D: the last chunk, the trailer fields T (already checked by the
 * parser, written in canonical form), the blank line. Returns the bytes sent. */
size_t hp_out_last_chunk(hp_worker_t *hw, gw_wdest_t *d, const gw_h1_head_t *t)
{
    size_t need = 5;
    for (size_t i = 0; i < gw_h1_head_count(t); i++)
        need += gw_h1_head_name_at(t, i).len + gw_h1_head_value_at(t, i).len + 4;
    bool heap;
    char *p = out_room(hw, d, need, &heap);
    if (p == NULL)
        return 0;
    size_t o = 3;
    memcpy(p, "0\r\n", 3);
    for (size_t i = 0; i < gw_h1_head_count(t); i++) {
        gw_h1_span_t nm = gw_h1_head_name_at(t, i), v = gw_h1_head_value_at(t, i);
        memcpy(p + o, nm.ptr, nm.len);
        o += nm.len;
        memcpy(p + o, ": ", 2);
        o += 2;
        memcpy(p + o, v.ptr, v.len);
        o += v.len;
        memcpy(p + o, "\r\n", 2);
        o += 2;
    }
    memcpy(p + o, "\r\n", 2);
    o += 2;
    if (heap)
        gw_wb_heap(&hw->wb, d, p, o);
    else
        gw_wb_commit(&hw->wb, o);
    return o;
}

/* Body bytes DATA[0..N) of read chunk CH for D, framed as a chunk when CHUNKED. Returns the
 * bytes they take on the wire as a chunk of their own (for the access log's byte counts: the
 * writer may merge small chunks into one, so this is at most a few bytes over). */
size_t hp_out_body(hp_worker_t *hw, gw_wdest_t *d, gw_chunk_t *ch, const char *data, size_t n,
                   bool chunked)
{
    gw_wb_body(&hw->wb, d, ch, data, n, chunked);
    if (!chunked || n == 0)
        return n;
    size_t digits = 1;
    for (size_t v = n; v >= 16; v >>= 4)
        digits++;
    return n + digits + 4;
}

size_t hp_high_water(hp_worker_t *hw)
{
    return hw->hp->cfg->buffers.high_water;
}

size_t hp_low_water(hp_worker_t *hw)
{
    return hw->hp->cfg->buffers.low_water;
}
