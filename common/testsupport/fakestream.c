/* fakestream.c - see fakestream.h. Queued writes use the request's `q` part (stream-t.h), as
 * a stream that queues writes itself (TLS) would. */
#include "fakestream.h"

#include "gwtest.h"

#include <stdlib.h>
#include <string.h>

static gw_fakestream_t *fake_of(const gw_stream_t *s)
{
    return (gw_fakestream_t *)(void *)s;
}

static void append(gw_fakestream_t *f, const char *p, size_t n)
{
    if (f->nout + n > f->cap) {
        size_t cap = f->cap ? f->cap : 4096;
        while (cap < f->nout + n)
            cap *= 2;
        f->out = realloc(f->out, cap);
        assert_non_null(f->out);
        f->cap = cap;
    }
    if (n > 0)
        memcpy(f->out + f->nout, p, n);
    f->nout += n;
}

/* Takes up to LIMIT bytes of B[0..N); returns how many. */
static size_t take(gw_fakestream_t *f, const uv_buf_t *b, unsigned n, size_t limit)
{
    size_t taken = 0;
    for (unsigned i = 0; i < n && taken < limit; i++) {
        size_t k = b[i].len < limit - taken ? b[i].len : limit - taken;
        append(f, b[i].base, k);
        taken += k;
    }
    return taken;
}

static int fake_read_start(gw_stream_t *s)
{
    gw_fakestream_t *f = fake_of(s);
    f->reading = true;
    f->read_starts++;
    return 0;
}

static int fake_read_stop(gw_stream_t *s)
{
    gw_fakestream_t *f = fake_of(s);
    f->reading = false;
    f->read_stops++;
    return 0;
}

static int fake_try_write(gw_stream_t *s, const uv_buf_t *b, unsigned n)
{
    gw_fakestream_t *f = fake_of(s);
    f->syscalls++;
    if (n > f->iov_max)
        f->iov_max = n;
    if (f->fail != 0)
        return f->fail;
    if (f->npending > 0 || f->accept == 0) /* the contract: never jump a queued write */
        return UV_EAGAIN;
    size_t taken = take(f, b, n, f->accept);
    if (f->accept != SIZE_MAX)
        f->accept -= taken;
    return (int)taken;
}

static int fake_write(gw_stream_write_t *req, gw_stream_t *s, const uv_buf_t *b, unsigned n)
{
    gw_fakestream_t *f = fake_of(s);
    f->syscalls++;
    if (n > f->iov_max)
        f->iov_max = n;
    if (f->fail != 0)
        return f->fail;
    req->u.q.bufs = req->u.q.bufsml;
    if (n > GW_STREAM_BUFS_INLINE) {
        req->u.q.bufs = malloc(n * sizeof *b);
        assert_non_null(req->u.q.bufs);
    }
    memcpy(req->u.q.bufs, b, n * sizeof *b); /* as libuv copies the array */
    req->u.q.nbufs = n;
    req->u.q.done = 0;
    req->u.q.next = NULL;
    if (f->tail != NULL)
        f->tail->u.q.next = req;
    else
        f->head = req;
    f->tail = req;
    f->npending++;
    return 0;
}

static int fake_shutdown(gw_stream_shutdown_t *req, gw_stream_t *s)
{
    gw_fakestream_t *f = fake_of(s);
    if (f->fail != 0)
        return f->fail;
    if (f->shut_req != NULL || f->shut)
        return UV_ENOTCONN;
    f->shut_req = req; /* completes at the next gw_fakestream_complete, after the writes */
    return 0;
}

static void fake_close(gw_stream_t *s, bool reset)
{
    gw_fakestream_t *f = fake_of(s);
    f->closing = true;
    f->reset = reset;
    f->reading = false;
}

static int fake_peer(const gw_stream_t *s, struct sockaddr *sa, int *len)
{
    (void)s;
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(40000)};
    in.sin_addr.s_addr = htonl(0x7f000001);
    if (*len < (int)sizeof in)
        return UV_EINVAL;
    memcpy(sa, &in, sizeof in);
    *len = (int)sizeof in;
    return 0;
}

static const gw_stream_ops_t fake_ops = {
    .read_start = fake_read_start,
    .read_stop = fake_read_stop,
    .try_write = fake_try_write,
    .write = fake_write,
    .shutdown = fake_shutdown,
    .close = fake_close,
    .peer = fake_peer,
};

/* see fakestream.h */
void gw_fakestream_init(gw_fakestream_t *f, gw_stream_env_t *env, gw_stream_read_cb on_read,
                        void *data)
{
    memset(f, 0, sizeof *f);
    gw__stream_init(&f->s, &fake_ops, env, on_read, data);
    f->accept = SIZE_MAX;
}

/* see fakestream.h */
void gw_fakestream_free(gw_fakestream_t *f)
{
    assert_int_equal(f->npending, 0);
    free(f->out);
    f->out = NULL;
    f->nout = f->cap = 0;
}

/* see fakestream.h */
gw_stream_write_t *gw_fakestream_pending(const gw_fakestream_t *f, unsigned i)
{
    gw_stream_write_t *r = f->head;
    while (r != NULL && i-- > 0)
        r = r->u.q.next;
    return r;
}

/* see fakestream.h */
void gw_fakestream_complete(gw_fakestream_t *f, int status)
{
    gw_stream_write_t *r = f->head;
    f->head = f->tail = NULL;
    f->npending = 0;
    while (r != NULL) {
        gw_stream_write_t *next = r->u.q.next;
        if (status == 0)
            take(f, r->u.q.bufs, r->u.q.nbufs, SIZE_MAX);
        if (r->u.q.bufs != r->u.q.bufsml)
            free(r->u.q.bufs);
        r->cb(r, status); /* may free R */
        r = next;
    }
    gw_stream_shutdown_t *sr = f->shut_req;
    if (sr != NULL) {
        f->shut_req = NULL;
        f->shut = status == 0;
        sr->cb(sr, status);
    }
}

/* see fakestream.h */
bool gw_fakestream_deliver(gw_fakestream_t *f, const char *p, size_t n)
{
    if (!f->reading || f->closing)
        return false;
    gw_chunk_t *ch = gw__stream_chunk(&f->s);
    if (ch == NULL) { /* as a socket does: stop, and let the stream layer retry */
        f->reading = false;
        gw__stream_starve(&f->s);
        return false;
    }
    assert_true(n <= gw_chunk_size(f->s.env->cache));
    memcpy(ch->data, p, n);
    ch->len = (uint32_t)n;
    ch->off = 0;
    f->s.cb.on_read(&f->s, ch, (ssize_t)n);
    return true;
}

/* see fakestream.h */
void gw_fakestream_end(gw_fakestream_t *f, int status)
{
    if (f->reading && !f->closing)
        f->s.cb.on_read(&f->s, NULL, status);
}

/* see fakestream.h */
void gw_fakestream_finish_close(gw_fakestream_t *f)
{
    assert_true(f->closing && !f->closed);
    gw_fakestream_complete(f, UV_ECANCELED);
    f->closed = true;
    gw__stream_closed(&f->s);
}
