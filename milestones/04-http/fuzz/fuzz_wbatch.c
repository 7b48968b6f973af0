/* fuzz_wbatch.c - chunked re-framing: body spans of any sizes, from read chunks or not,
 * under any pattern of holds, partial writes, queued writes and completions, go through the
 * engine's writer (wbatch.c) to two fake streams; what each one received is then checked.
 *
 * Input: a scratch-size byte, then operations until the input ends (at most 256):
 *   0 body span to dest 0 (chunked) or 1 (raw): 2 bytes of length (0..6143), the data from
 *     the input, 1-3 sub-spans handed over from one read chunk (or none: copied)
 *   1 hold, 2 release (holds never left open), 3 flush
 *   4 the socket of a dest takes N more bytes at once (0 = "full": EAGAIN), or everything
 *   5 complete the queued writes of a dest
 *   6 a short copy (as a head or a framing line) to the raw dest
 *   7 a dest's socket fails (EPIPE) from now on
 *
 * Invariants: dest 0's bytes, behind a response head and ahead of the last chunk, parse
 * with the project's own h1 parser to exactly the body bytes given (re-chunking keeps the
 * body); dest 1 receives exactly what was given, in order; a failed dest reports one error
 * and accepts nothing more; at the end nothing is queued (queued and nreqs back to 0) and
 * every read chunk went back to the pool. */
#include <string.h>

#include "04-http/h1.h"
#include "04-http/wbatch.h"
#include "error.h"
#include "fuzz/gwfuzz.h"

#define CHUNK 8192
#define MAX_PENDING 4096

typedef struct sink_s {
    gw_stream_t stream; /* a stream (common/stream.h) of the writer's two calls only */
    char *out;
    size_t nout, cap;
    size_t accept; /* bytes try_write takes before EAGAIN; SIZE_MAX: all */
    int fail;
    gw_stream_write_t *pending[MAX_PENDING];
    uv_buf_t *bufs[MAX_PENDING];
    unsigned nbufs[MAX_PENDING];
    unsigned npending;
    /* what was given, for the check */
    char *want;
    size_t nwant, wcap;
    int errors, written;
} sink_t;

static sink_t sinks[2];

static void grow(char **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    size_t c = *cap ? *cap : 4096;
    while (c < need)
        c *= 2;
    if ((*p = realloc(*p, c)) == NULL)
        abort();
    *cap = c;
}

static sink_t *sink_of(gw_stream_t *s)
{
    return s == &sinks[0].stream ? &sinks[0] : &sinks[1];
}

static void take(sink_t *k, const uv_buf_t *b, unsigned n, size_t limit, size_t *taken)
{
    *taken = 0;
    for (unsigned i = 0; i < n && *taken < limit; i++) {
        size_t m = b[i].len < limit - *taken ? b[i].len : limit - *taken;
        grow(&k->out, &k->cap, k->nout + m);
        if (m)
            memcpy(k->out + k->nout, b[i].base, m);
        k->nout += m;
        *taken += m;
    }
}

static int fake_try_write(gw_stream_t *s, const uv_buf_t *b, unsigned n)
{
    sink_t *k = sink_of(s);
    GW_FZ_CHECK(n >= 1 && n <= GW_WB_IOV, "%u pieces in one write", n);
    if (k->fail)
        return k->fail;
    if (k->accept == 0 || k->npending > 0) /* a stream never jumps a queued write */
        return UV_EAGAIN;
    size_t taken;
    take(k, b, n, k->accept, &taken);
    if (k->accept != SIZE_MAX)
        k->accept -= taken;
    return (int)taken;
}

static int fake_write(gw_stream_write_t *req, gw_stream_t *s, const uv_buf_t *b, unsigned n)
{
    sink_t *k = sink_of(s);
    GW_FZ_CHECK(n >= 1 && n <= GW_WB_IOV, "%u pieces in one write", n);
    if (k->fail)
        return k->fail;
    if (k->npending == MAX_PENDING)
        return UV_ENOBUFS;
    uv_buf_t *copy = malloc(n * sizeof *copy); /* libuv copies the array too */
    if (!copy)
        abort();
    memcpy(copy, b, n * sizeof *b);
    k->pending[k->npending] = req;
    k->bufs[k->npending] = copy;
    k->nbufs[k->npending++] = n;
    return 0;
}

static const gw_stream_ops_t fake_ops = {.try_write = fake_try_write, .write = fake_write};

/* The socket drains: each queued write is "sent" (or cancelled once it failed) and completes,
 * in order, as libuv completes them. */
static void complete_all(sink_t *k)
{
    unsigned n = k->npending;
    k->npending = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t taken;
        if (!k->fail)
            take(k, k->bufs[i], k->nbufs[i], SIZE_MAX, &taken);
        free(k->bufs[i]);
        k->pending[i]->cb(k->pending[i], k->fail ? UV_ECANCELED : 0);
    }
}

static void on_written(gw_wdest_t *d, int status)
{
    (void)status;
    sink_of(d->stream)->written++;
}

static void on_error(gw_wdest_t *d, int status)
{
    GW_FZ_CHECK(status < 0, "on_error with %d", status);
    sink_of(d->stream)->errors++;
}

static const gw_wdest_ops_t ops = {on_written, on_error};

static void want(sink_t *k, const char *p, size_t n)
{
    grow(&k->want, &k->wcap, k->nwant + n);
    if (n)
        memcpy(k->want + k->nwant, p, n);
    k->nwant += n;
}

/* Feeds dest 0's output, framed as a chunked response, to the h1 parser: the body must be
 * exactly what was given. */
static void check_chunked(const sink_t *k)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    size_t n = sizeof head - 1 + k->nout + 5;
    char *msg = malloc(n);
    if (!msg)
        abort();
    memcpy(msg, head, sizeof head - 1);
    if (k->nout)
        memcpy(msg + sizeof head - 1, k->out, k->nout);
    memcpy(msg + n - 5, "0\r\n\r\n", 5);
    gw_h1_parser_t p;
    gw_h1_parser_init(&p, false, NULL);
    size_t pos = 0, body = 0;
    bool end = false;
    while (!end) {
        gw_h1_event_t ev;
        int rc = gw_h1_feed(&p, msg + pos, n - pos, &ev);
        pos += ev.used;
        GW_FZ_CHECK(rc != GW_EINVAL, "re-chunked output refused: %s at %llu", p.err.reason,
                    (unsigned long long)p.err.offset);
        GW_FZ_CHECK(rc != 0, "re-chunked output ended early (%zu of %zu bytes)", pos, n);
        if (rc == GW_H1_DATA) {
            GW_FZ_CHECK(body + ev.len <= k->nwant && !memcmp(k->want + body, ev.data, ev.len),
                        "body bytes %zu..%zu differ", body, body + ev.len);
            body += ev.len;
        }
        end = rc == GW_H1_END;
    }
    GW_FZ_CHECK(body == k->nwant && pos == n, "body %zu of %zu bytes, %zu of %zu parsed", body,
                k->nwant, pos, n);
    gw_h1_parser_free(&p);
    free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gw_fz_t f = {data, size};
    gw_bufpool_t pool;
    gw_bufcache_t cache;
    gw_wb_t w;
    gw_wdest_t d[2];
    GW_FZ_CHECK(gw_bufpool_init(&pool, CHUNK, 64u << 20) == 0, "pool");
    gw_bufcache_init(&cache, &pool, 4);
    GW_FZ_CHECK(gw_wb_init(&w, &cache, 256 + 64u * gw_fz_u8(&f)) == 0, "writer");
    memset(sinks, 0, sizeof sinks);
    for (int i = 0; i < 2; i++) {
        sinks[i].accept = SIZE_MAX;
        gw__stream_init(&sinks[i].stream, &fake_ops, NULL, NULL, NULL);
        gw_wdest_init(&d[i], &sinks[i].stream, &ops);
    }
    unsigned holds = 0;
    for (int op = 0; op < 256 && f.n > 0; op++) {
        uint8_t c = gw_fz_u8(&f);
        int i = c >> 7; /* the dest */
        sink_t *k = &sinks[i];
        switch (c & 7) {
        case 0: {
            size_t len = gw_fz_u16(&f) % 6144;
            gw_chunk_t *ch = (c & 8) ? gw_chunk_get(&cache) : NULL;
            char *buf = ch ? ch->data : malloc(len ? len : 1);
            if (!buf)
                abort();
            for (size_t j = 0; j < len; j++)
                buf[j] = j < f.n ? (char)f.p[j] : (char)('a' + j % 26);
            size_t used = len < f.n ? len : f.n;
            f.p += used;
            f.n -= used;
            if (ch) {
                gw_chunk_ref(ch); /* the reader's reference */
                ch->len = (uint32_t)len;
            }
            size_t parts = 1 + (c >> 4 & 3) % 3, off = 0;
            for (size_t s = 0; s < parts; s++) {
                size_t n = s + 1 == parts ? len - off : (len - off) / 2;
                int rc = gw_wb_body(&w, &d[i], ch, buf + off, n, i == 0);
                GW_FZ_CHECK((rc != 0) == (d[i].error != 0), "body: %d with error %d", rc,
                            d[i].error);
                if (rc == 0)
                    want(k, buf + off, n);
                off += n;
            }
            if (ch)
                gw_chunk_unref(&cache, ch);
            else
                free(buf);
            break;
        }
        case 1:
            if (holds < 4) {
                gw_wb_hold(&w);
                holds++;
            }
            break;
        case 2:
            if (holds > 0) {
                gw_wb_release(&w);
                holds--;
            }
            break;
        case 3:
            gw_wb_flush(&w);
            break;
        case 4: {
            uint8_t a = gw_fz_u8(&f);
            k->accept = a == 255 ? SIZE_MAX : (size_t)a * 37;
            break;
        }
        case 5:
            complete_all(k);
            break;
        case 6:
            if (i == 1) {
                char line[40];
                int n = snprintf(line, sizeof line, "line %d\r\n", op);
                int rc = gw_wb_copy(&w, &d[1], line, (size_t)n);
                if (rc == 0)
                    want(k, line, (size_t)n);
            }
            break;
        case 7:
            if (c & 0x40)
                k->fail = UV_EPIPE;
            break;
        }
    }
    while (holds-- > 0)
        gw_wb_release(&w);
    gw_wb_flush(&w);
    for (int i = 0; i < 2; i++) {
        sinks[i].accept = SIZE_MAX;
        complete_all(&sinks[i]);
        GW_FZ_CHECK(d[i].queued == 0 && d[i].nreqs == 0, "dest %d: %zu queued in %u writes", i,
                    d[i].queued, d[i].nreqs);
        GW_FZ_CHECK(sinks[i].errors == (d[i].error != 0), "dest %d: %d errors reported, error %d",
                    i, sinks[i].errors, d[i].error);
    }
    if (!sinks[0].fail) /* a failed socket got only part of it */
        check_chunked(&sinks[0]);
    if (!sinks[1].fail)
        GW_FZ_CHECK(sinks[1].nout == sinks[1].nwant &&
                        (sinks[1].nout == 0 || !memcmp(sinks[1].out, sinks[1].want, sinks[1].nout)),
                    "raw dest received %zu bytes, %zu given", sinks[1].nout, sinks[1].nwant);
    gw_wb_free(&w);
    gw_bufcache_drain(&cache);
    GW_FZ_CHECK(atomic_load(&pool.nchunks) == 0, "%zu read chunks never came back",
                (size_t)atomic_load(&pool.nchunks));
    for (int i = 0; i < 2; i++) {
        free(sinks[i].out);
        free(sinks[i].want);
    }
    return 0;
}
