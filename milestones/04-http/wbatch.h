/* wbatch.h - the HTTP engine's writer: what one read produces for one peer leaves in one
 * system call, and every queued write's memory is charged to the peer it waits for.
 *
 * Why it exists. A proxy that writes each parsed piece as it comes makes one system call
 * per chunk of a chunked body: 16 KiB of 1-byte chunks is ~2,700 writes (and ~2,700
 * queued write requests when the peer is slow). And a proxy that counts only payload bytes
 * against its backpressure threshold is fooled by small writes: a 100-byte response sent
 * zero-copy from a 16 KiB read chunk pins the whole chunk, so a client that pipelines and
 * never reads could pin the entire buffer pool while "using" a few KiB.
 *
 * How. Writes for one destination gather in a batch while the engine works through one read
 * (gw_wb_hold .. gw_wb_release), then leave with one writev:
 *   - small body spans (< GW_WB_COPY_MAX) are copied into the writer's scratch area, and
 *     consecutive chunked spans become ONE output chunk (chunk boundaries are hop-by-hop,
 *     RFC 9112 7.1, so a proxy may re-chunk);
 *   - large spans are sent from the read chunk they arrived in (zero-copy), which is pinned
 *     by reference (gw_chunk_ref, buf.h) until written;
 *   - heads and framing lines are serialised straight into the scratch area.
 * On the fast path the kernel takes everything at once and nothing is allocated. When it
 * does not, what is left becomes a write request: the scratch bytes not yet written are
 * copied out (exactly their size), pinned chunks keep their reference, and the request's
 * cost (pinned chunks x their size + copied bytes + the request itself) is added to the
 * destination's `queued`, which is what the engine compares with buffers.high_water.
 *
 * The per-destination bound this gives the engine: queued <= high_water + the cost of the
 * batch that crossed it (one read's worth: at most one pinned chunk per GW_WB_PINS and
 * the scratch area) - see the operator guide for the formula in config terms.
 *
 * Errors are reported once per destination, through its ops->on_error, and never from deep
 * inside the caller's work: under a hold they wait for the outermost gw_wb_release (the end
 * of the event the engine is handling), so the engine can close or retry without pulling a
 * connection from under code that is still using it. Meanwhile writes to the failed
 * destination are refused (nonzero): nothing is lost that the peer could still receive.
 * Not thread-safe: one writer per worker loop. */
#ifndef GW_WBATCH_H
#define GW_WBATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "stream.h"

#define GW_WB_IOV 16        /* pieces in one write (well below IOV_MAX) */
#define GW_WB_PINS 4        /* distinct read chunks referenced by one write */
#define GW_WB_COPY_MAX 1024 /* body spans shorter than this are copied, not pinned */

typedef struct gw_wdest_s gw_wdest_t;
typedef struct gw_wb_s gw_wb_t;

/* What a destination's owner hears. Both may close the destination. */
typedef struct gw_wdest_ops_s {
    /* A queued write completed (STATUS < 0: it failed or was cancelled by a close). Called
     * after D->queued went down by its cost. */
    void (*on_written)(gw_wdest_t *d, int status);
    /* A write to D failed at once (the system refused it, or memory ran out). Called once
     * per destination, at the outermost gw_wb_release (at once outside a hold); D->error
     * is set from the moment of the failure. */
    void (*on_error)(gw_wdest_t *d, int status);
} gw_wdest_ops_t;

/* One destination: a stream and what is queued on it. Embedded in the connection that owns
 * the stream; must stay valid until every write queued on it completed (a stream completes
 * pending writes, cancelled, before its close callback: embed it next to the stream). The
 * writer only uses the stream's try_write and write (stream.h): a unit test gives it a fake
 * stream (testsupport/fakestream.h), a TLS connection its TLS stream. */
struct gw_wdest_s {
    const gw_wdest_ops_t *ops;
    gw_stream_t *stream;
    size_t queued;  /* cost of the writes queued on it, in bytes (see above) */
    uint32_t nreqs; /* writes queued on it */
    int error;      /* the first write failure (a UV error): all later writes are refused */
};

/* Sets up D for STREAM with OPS. */
void gw_wdest_init(gw_wdest_t *d, gw_stream_t *stream, const gw_wdest_ops_t *ops);

/* A queued write and what it keeps alive (private to wbatch.c). */
typedef struct gw_wreq_s gw_wreq_t;

/* The writer of one worker. Members are private. */
struct gw_wb_s {
    gw_bufcache_t *cache; /* where pinned chunks go back */
    gw_wdest_t *dest;     /* the destination of the open batch, or NULL */
    uv_buf_t iov[GW_WB_IOV];
    unsigned niov;
    gw_chunk_t *pins[GW_WB_PINS];
    unsigned npins;
    char *scratch; /* scap bytes */
    size_t scap, sused;
    size_t run;     /* scratch offset of the open chunk-size line of copied chunked data */
    size_t run_len; /* data bytes in that run (0: no run open) */
    bool run_open;
    unsigned hold;         /* gw_wb_hold nesting */
    gw_wdest_t *failed[8]; /* failures to report at the outermost release */
    unsigned nfailed;
    gw_wreq_t *free_reqs;
    unsigned nfree_reqs;
    /* Statistics for tests and /metrics. */
    uint64_t writes; /* batches written: one writev each, tried at once or queued */
    uint64_t queued; /* write requests created */
    uint64_t copied; /* body bytes copied rather than pinned */
};

/* Sets up W: chunks it pins go back to CACHE; the scratch area has SCRATCH bytes (>= 256;
 * the chunk size is a good choice). 0 or GW_ENOMEM. */
int gw_wb_init(gw_wb_t *w, gw_bufcache_t *cache, size_t scratch);

/* Frees W's scratch and spare requests. No batch may be open and no write pending. */
void gw_wb_free(gw_wb_t *w);

/* Batching: between gw_wb_hold and the matching gw_wb_release, writes gather (per
 * destination; a write to another destination first flushes the open batch). Outside a
 * hold, each call below is flushed before it returns. Holds nest; the outermost release
 * flushes and then reports failures (an on_error may write again: that is flushed too). */
void gw_wb_hold(gw_wb_t *w);
void gw_wb_release(gw_wb_t *w);

/* Writes the open batch now (nothing if none). A failure is reported as described above. */
void gw_wb_flush(gw_wb_t *w);

/* Body bytes P[0..N) of chunk CH (CH may be NULL when P is not in a chunk: then they are
 * always copied), framed as an HTTP chunk when CHUNKED. Returns 0, or nonzero when D has
 * failed (now or before; on_error was called once). */
int gw_wb_body(gw_wb_t *w, gw_wdest_t *d, gw_chunk_t *ch, const char *p, size_t n, bool chunked);

/* Bytes P[0..N) copied (heads, framing, short answers). Same result as gw_wb_body. */
int gw_wb_copy(gw_wb_t *w, gw_wdest_t *d, const char *p, size_t n);

/* Room for N bytes for D in the scratch area, to be filled by the caller and then kept with
 * gw_wb_commit(W, USED <= N); NULL when N cannot fit even in an empty scratch area (use
 * gw_wb_heap), or when D has failed. Nothing else may be written to W in between. */
char *gw_wb_reserve(gw_wb_t *w, gw_wdest_t *d, size_t n);
void gw_wb_commit(gw_wb_t *w, size_t used);

/* Takes over HEAP (malloc'd, LEN bytes; freed when written or on error) and sends it. */
int gw_wb_heap(gw_wb_t *w, gw_wdest_t *d, char *heap, size_t len);

/* The caller could not produce what it had to send to D (out of memory): D fails with
 * STATUS as if a write had. */
void gw_wb_fail(gw_wb_t *w, gw_wdest_t *d, int status);

/* D is closing: forget what its open batch holds (nothing of it is written). */
void gw_wb_drop(gw_wb_t *w, gw_wdest_t *d);

/* What D costs right now: its queued writes plus the bytes of its open batch. */
size_t gw_wb_pending(const gw_wb_t *w, const gw_wdest_t *d);

/* The cost charged for a write request that keeps NPINS chunks of CHUNK_SIZE bytes and
 * COPIED bytes alive (the formula behind `queued`, for tests and documentation). */
size_t gw_wb_cost(size_t npins, size_t chunk_size, size_t copied);

#endif
