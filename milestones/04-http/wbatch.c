/* wbatch.c - see wbatch.h. */
#include "wbatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define FREE_REQS_MAX 256 /* write requests kept for reuse */
#define RUN_HDR 10        /* room for a chunk-size line: up to 8 hex digits, CRLF */

struct gw_wreq_s {
    gw_stream_write_t req;
    gw_wreq_t *next_free;
    gw_wb_t *w;
    gw_wdest_t *d;
    gw_chunk_t *pins[GW_WB_PINS];
    unsigned npins;
    char *copy; /* scratch bytes not yet written, or a head given by gw_wb_heap */
    size_t cost;
};

/* see wbatch.h */
void gw_wdest_init(gw_wdest_t *d, gw_stream_t *stream, const gw_wdest_ops_t *ops)
{
    memset(d, 0, sizeof *d);
    d->stream = stream;
    d->ops = ops;
}

/* see wbatch.h */
int gw_wb_init(gw_wb_t *w, gw_bufcache_t *cache, size_t scratch)
{
    memset(w, 0, sizeof *w);
    if (scratch < 256)
        scratch = 256;
    w->scratch = malloc(scratch);
    if (w->scratch == NULL)
        return GW_ENOMEM;
    w->scap = scratch;
    w->cache = cache;
    return 0;
}

/* see wbatch.h */
void gw_wb_free(gw_wb_t *w)
{
    while (w->free_reqs != NULL) {
        gw_wreq_t *r = w->free_reqs;
        w->free_reqs = r->next_free;
        free(r);
    }
    free(w->scratch);
    w->scratch = NULL;
}

/* see wbatch.h */
size_t gw_wb_cost(size_t npins, size_t chunk_size, size_t copied)
{
    return npins * (chunk_size + sizeof(gw_chunk_t)) + copied + sizeof(gw_wreq_t);
}

/* ---- the open batch ----------------------------------------------------------------------- */

static bool in_scratch(const gw_wb_t *w, const char *p)
{
    return p >= w->scratch && p < w->scratch + w->scap;
}

/* Appends P[0..N) as the next piece; it extends the last piece when it follows it in
 * memory. The caller checked that a piece is free. */
static void push(gw_wb_t *w, const char *p, size_t n)
{
    if (n == 0)
        return;
    uv_buf_t *last = w->niov > 0 ? &w->iov[w->niov - 1] : NULL;
    if (last != NULL && last->base + last->len == p && in_scratch(w, p)) {
        last->len += (unsigned)n;
        return;
    }
    w->iov[w->niov++] = uv_buf_init((char *)p, (unsigned)n);
}

/* Ends the open run of copied chunked data: its size line goes in the room left for it in
 * front of the data, right-aligned, so the line, the data and the CRLF after it are one
 * contiguous piece. */
static void run_close(gw_wb_t *w)
{
    if (!w->run_open)
        return;
    w->run_open = false;
    char line[RUN_HDR + 1];
    int len = snprintf(line, sizeof line, "%zx\r\n", w->run_len);
    char *start = w->scratch + w->run + RUN_HDR - (size_t)len;
    memcpy(start, line, (size_t)len);
    memcpy(w->scratch + w->sused, "\r\n", 2);
    size_t total = (size_t)len + w->run_len + 2;
    w->sused += 2;
    w->iov[w->niov++] = uv_buf_init(start, (unsigned)total);
}

/* Forgets the open batch, giving back what it holds. */
static void batch_reset(gw_wb_t *w)
{
    for (unsigned i = 0; i < w->npins; i++)
        gw_chunk_unref(w->cache, w->pins[i]);
    w->npins = 0;
    w->niov = 0;
    w->sused = 0;
    w->run_open = false;
    w->run_len = 0;
    w->dest = NULL;
}

static void report(gw_wdest_t *d)
{
    if (d->ops != NULL && d->ops->on_error != NULL)
        d->ops->on_error(d, d->error);
}

/* D's first failure: refuse its later writes, and report it now (no hold) or at the
 * outermost release. */
static void fail(gw_wb_t *w, gw_wdest_t *d, int status)
{
    if (d->error != 0)
        return;
    d->error = status < 0 ? status : UV_EIO;
    if (w->hold == 0 || w->nfailed == sizeof w->failed / sizeof w->failed[0])
        report(d); /* a full list cannot happen in the engine: one event touches <= 3 */
    else
        w->failed[w->nfailed++] = d;
}

static gw_wreq_t *req_get(gw_wb_t *w)
{
    gw_wreq_t *r = w->free_reqs;
    if (r != NULL) {
        w->free_reqs = r->next_free;
        w->nfree_reqs--;
    } else if ((r = malloc(sizeof *r)) == NULL) {
        return NULL;
    }
    r->w = w;
    r->npins = 0;
    r->copy = NULL;
    r->cost = 0;
    return r;
}

static void req_put(gw_wb_t *w, gw_wreq_t *r)
{
    for (unsigned i = 0; i < r->npins; i++)
        gw_chunk_unref(w->cache, r->pins[i]);
    free(r->copy);
    if (w->nfree_reqs >= FREE_REQS_MAX) {
        free(r);
        return;
    }
    r->next_free = w->free_reqs;
    w->free_reqs = r;
    w->nfree_reqs++;
}

static void on_written(gw_stream_write_t *req, int status)
{
    gw_wreq_t *r = (gw_wreq_t *)req; /* the request is the first member */
    gw_wb_t *w = r->w;
    gw_wdest_t *d = r->d;
    d->queued -= r->cost;
    d->nreqs--;
    req_put(w, r);
    if (d->ops != NULL && d->ops->on_written != NULL)
        d->ops->on_written(d, status);
}

/* Drops the first K bytes of BUFS[0..*N) (K < their total). */
static void bufs_advance(uv_buf_t *bufs, unsigned *n, size_t k)
{
    unsigned i = 0;
    while (i < *n && k >= bufs[i].len)
        k -= bufs[i++].len;
    bufs[i].base += k;
    bufs[i].len -= (unsigned)k;
    memmove(bufs, bufs + i, (*n - i) * sizeof *bufs);
    *n -= i;
}

/* Moves what is left of the batch (BUFS[0..N), after a partial write) into request R: the
 * pieces in scratch are copied into one allocation of exactly their size; pinned chunks
 * keep their references. Returns 0 or GW_ENOMEM. */
static int req_take(gw_wb_t *w, gw_wreq_t *r, uv_buf_t *bufs, unsigned n)
{
    size_t copied = 0;
    for (unsigned i = 0; i < n; i++)
        if (in_scratch(w, bufs[i].base))
            copied += bufs[i].len;
    if (copied > 0) {
        if ((r->copy = malloc(copied)) == NULL)
            return GW_ENOMEM;
        size_t o = 0;
        for (unsigned i = 0; i < n; i++)
            if (in_scratch(w, bufs[i].base)) {
                memcpy(r->copy + o, bufs[i].base, bufs[i].len);
                bufs[i].base = r->copy + o;
                o += bufs[i].len;
            }
    }
    memcpy(r->pins, w->pins, w->npins * sizeof *w->pins);
    r->npins = w->npins;
    w->npins = 0; /* the references moved to R */
    r->cost = gw_wb_cost(r->npins, gw_chunk_size(w->cache), copied);
    return 0;
}

/* Writes BUFS[0..N) to D: at once if the socket takes it all, else the rest is queued as a
 * request holding what it needs (the batch's pins; EXTRA, a heap buffer, is taken over).
 * Leaves the batch empty. */
static void write_out(gw_wb_t *w, gw_wdest_t *d, uv_buf_t *bufs, unsigned n, char *extra)
{
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    int rc = UV_EAGAIN;
    w->writes++;
    if (d->nreqs == 0) /* never jump the queue */
        rc = gw_stream_try_write(d->stream, bufs, n);
    if (rc >= 0 && (size_t)rc == total) {
        free(extra);
        batch_reset(w);
        return;
    }
    gw_wreq_t *r = NULL;
    if (rc < 0 && rc != UV_EAGAIN)
        goto failed;
    if (rc > 0)
        bufs_advance(bufs, &n, (size_t)rc);
    if ((r = req_get(w)) == NULL || req_take(w, r, bufs, n) != 0) {
        rc = UV_ENOMEM;
        goto failed;
    }
    if (extra != NULL) {
        r->copy = extra;
        r->cost += total;
        extra = NULL;
    }
    r->d = d;
    d->queued += r->cost;
    d->nreqs++;
    w->queued++;
    batch_reset(w);
    rc = gw_stream_write(&r->req, d->stream, bufs, n, on_written);
    if (rc != 0) {
        d->queued -= r->cost;
        d->nreqs--;
        req_put(w, r);
        fail(w, d, rc);
    }
    return;
failed:
    if (r != NULL)
        req_put(w, r);
    free(extra);
    batch_reset(w);
    fail(w, d, rc);
}

/* see wbatch.h */
void gw_wb_flush(gw_wb_t *w)
{
    gw_wdest_t *d = w->dest;
    if (d == NULL)
        return;
    run_close(w);
    if (w->niov == 0) {
        batch_reset(w);
        return;
    }
    uv_buf_t bufs[GW_WB_IOV];
    unsigned n = w->niov;
    memcpy(bufs, w->iov, n * sizeof *bufs);
    write_out(w, d, bufs, n, NULL);
}

/* Makes W's open batch D's, with room for PIECES more pieces, PINS more pins and SCRATCH
 * more bytes of scratch (flushing what is open when not). False when D has failed. */
static bool batch_for(gw_wb_t *w, gw_wdest_t *d, unsigned pieces, unsigned pins, size_t scratch)
{
    if (d->error != 0)
        return false;
    if (w->dest != NULL && w->dest != d)
        gw_wb_flush(w);
    /* A run closing adds a piece and two bytes. */
    if (w->niov + pieces + 1 > GW_WB_IOV || w->npins + pins > GW_WB_PINS ||
        w->sused + scratch + 2 > w->scap)
        gw_wb_flush(w);
    if (d->error != 0)
        return false;
    w->dest = d;
    return true;
}

/* Outside a hold, what was just added leaves now. Returns 0, or -1 when D has failed. */
static int done(gw_wb_t *w, gw_wdest_t *d)
{
    if (w->hold == 0)
        gw_wb_flush(w);
    return d->error != 0 ? -1 : 0;
}

/* see wbatch.h */
void gw_wb_hold(gw_wb_t *w)
{
    w->hold++;
}

/* see wbatch.h */
void gw_wb_release(gw_wb_t *w)
{
    if (w->hold > 1) {
        w->hold--;
        return;
    }
    /* Still held while failures are reported: what their handlers write is gathered too. */
    for (;;) {
        gw_wb_flush(w);
        if (w->nfailed == 0)
            break;
        report(w->failed[--w->nfailed]);
    }
    w->hold = 0;
}

/* see wbatch.h */
char *gw_wb_reserve(gw_wb_t *w, gw_wdest_t *d, size_t n)
{
    if (n + 2 > w->scap || !batch_for(w, d, 1, 0, n))
        return NULL;
    run_close(w);
    return w->scratch + w->sused;
}

/* see wbatch.h */
void gw_wb_commit(gw_wb_t *w, size_t used)
{
    char *p = w->scratch + w->sused;
    w->sused += used;
    push(w, p, used);
    (void)done(w, w->dest);
}

/* see wbatch.h */
int gw_wb_copy(gw_wb_t *w, gw_wdest_t *d, const char *p, size_t n)
{
    if (n == 0)
        return d->error != 0 ? -1 : 0;
    char *dst = gw_wb_reserve(w, d, n);
    if (dst == NULL) {
        if (d->error != 0)
            return -1;
        char *heap = malloc(n); /* bigger than the scratch area: rare (a huge head) */
        if (heap == NULL) {
            fail(w, d, UV_ENOMEM);
            return -1;
        }
        memcpy(heap, p, n);
        return gw_wb_heap(w, d, heap, n);
    }
    memcpy(dst, p, n);
    gw_wb_commit(w, n);
    return d->error != 0 ? -1 : 0;
}

/* see wbatch.h */
int gw_wb_heap(gw_wb_t *w, gw_wdest_t *d, char *heap, size_t len)
{
    if (d->error != 0) {
        free(heap);
        return -1;
    }
    if (w->dest != NULL) /* what came before leaves first */
        gw_wb_flush(w);
    if (d->error != 0) {
        free(heap);
        return -1;
    }
    uv_buf_t b = uv_buf_init(heap, (unsigned)len);
    w->dest = d;
    write_out(w, d, &b, 1, heap);
    return d->error != 0 ? -1 : 0;
}

/* Copies body bytes; consecutive chunked ones share one output chunk (the run), so 2,700
 * one-byte chunks in a read leave as one chunk of 2,700 bytes. */
static int body_copy(gw_wb_t *w, gw_wdest_t *d, const char *p, size_t n, bool chunked)
{
    while (n > 0) {
        bool in_run = w->dest == d && w->run_open;
        size_t hdr = chunked && !in_run ? RUN_HDR : 0;
        if (!batch_for(w, d, 1, 0, hdr + 1)) /* may flush, which closes the run */
            return -1;
        if (!chunked) {
            run_close(w);
        } else if (!w->run_open) {
            w->run = w->sused;
            w->sused += RUN_HDR;
            w->run_open = true;
            w->run_len = 0;
        }
        size_t take = w->scap - w->sused - 2; /* room for the run's CRLF stays free */
        if (take > n)
            take = n;
        memcpy(w->scratch + w->sused, p, take);
        if (chunked)
            w->run_len += take;
        else
            push(w, w->scratch + w->sused, take);
        w->sused += take;
        w->copied += take;
        p += take;
        n -= take;
    }
    return 0;
}

/* Sends body bytes from chunk CH itself, keeping a reference until written. */
static int body_pin(gw_wb_t *w, gw_wdest_t *d, gw_chunk_t *ch, const char *p, size_t n,
                    bool chunked)
{
    bool pinned = w->dest == d && w->npins > 0 && w->pins[w->npins - 1] == ch;
    if (!batch_for(w, d, 3, pinned ? 0 : 1, chunked ? RUN_HDR + 2 : 0))
        return -1;
    run_close(w);
    pinned = w->npins > 0 && w->pins[w->npins - 1] == ch; /* a flush may have emptied it */
    if (!pinned) {
        gw_chunk_ref(ch);
        w->pins[w->npins++] = ch;
    }
    if (chunked) {
        int len = snprintf(w->scratch + w->sused, RUN_HDR + 1, "%zx\r\n", n);
        push(w, w->scratch + w->sused, (size_t)len);
        w->sused += (size_t)len;
    }
    push(w, p, n);
    if (chunked) {
        memcpy(w->scratch + w->sused, "\r\n", 2);
        push(w, w->scratch + w->sused, 2);
        w->sused += 2;
    }
    return 0;
}

/* see wbatch.h */
int gw_wb_body(gw_wb_t *w, gw_wdest_t *d, gw_chunk_t *ch, const char *p, size_t n, bool chunked)
{
    if (d->error != 0)
        return -1;
    if (n == 0)
        return 0;
    int rc = ch != NULL && n >= GW_WB_COPY_MAX ? body_pin(w, d, ch, p, n, chunked)
                                               : body_copy(w, d, p, n, chunked);
    if (rc != 0)
        return -1;
    return done(w, d);
}

/* see wbatch.h */
void gw_wb_fail(gw_wb_t *w, gw_wdest_t *d, int status)
{
    if (w->dest == d)
        batch_reset(w);
    fail(w, d, status);
}

/* see wbatch.h */
void gw_wb_drop(gw_wb_t *w, gw_wdest_t *d)
{
    if (w->dest == d)
        batch_reset(w);
    for (unsigned i = 0; i < w->nfailed; i++) /* closing anyway: nothing to report */
        if (w->failed[i] == d) {
            w->failed[i] = w->failed[--w->nfailed];
            break;
        }
}

/* see wbatch.h */
size_t gw_wb_pending(const gw_wb_t *w, const gw_wdest_t *d)
{
    size_t n = d->queued;
    if (w->dest == d)
        n += gw_wb_cost(w->npins, gw_chunk_size(w->cache), w->sused);
    return n;
}
