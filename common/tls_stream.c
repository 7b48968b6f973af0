/* tls_stream.c - see tls_stream.h.
 *
 * The pure part (gw_tls_next) first, then the shell: one function per action, the pump that
 * asks and acts until IDLE, and the stream ops. Every entry point ends in the pump: the inner
 * stream's callbacks and the loop's resume run it fully; the owner's calls run it "quietly",
 * doing only what calls nobody back and deferring the rest to the next loop turn. */
#include "tls_stream.h"

#include <stdlib.h>
#include <string.h>


/* ---- the pure part ---------------------------------------------------------------------- */

static bool engine_failed(uint32_t f)
{
    return (f & (GW_TLS_F_ERR | GW_TLS_V_ENG_ERR)) != 0;
}

/* Reads and the end of reads: steps 3 and 4 of the header's list. */
static gw_tls_act_t next_for_owner(unsigned st, uint32_t f)
{
    bool closed = (st & BR_SSL_CLOSED) != 0;
    bool reads = (f & GW_TLS_V_READS) != 0;
    if ((st & BR_SSL_RECVAPP) && reads)
        return GW_TLS_DELIVER;
    if (f & GW_TLS_V_DONE)
        return GW_TLS_COMPLETE;
    if ((closed || engine_failed(f)) && (f & GW_TLS_V_QUEUED))
        return GW_TLS_FAIL_WRITE;
    if (engine_failed(f) && (f & GW_TLS_V_SHUT_REQ) && !(f & GW_TLS_F_ISHUT))
        return GW_TLS_FAIL_WRITE;
    if (reads && !(f & GW_TLS_F_ENDED)) {
        if (engine_failed(f))
            return GW_TLS_ERROR;
        if (closed) /* the peer's close_notify (RECVAPP is never set with CLOSED) */
            return GW_TLS_EOF;
        if ((f & GW_TLS_F_IN_EOF) && !(st & BR_SSL_RECVAPP) && !(f & GW_TLS_V_INPUT))
            return GW_TLS_EOF;
    }
    return GW_TLS_IDLE;
}

/* Our sending direction and the inner stream's reads: steps 5 to 7. */
static gw_tls_act_t next_for_engine(unsigned st, uint32_t f)
{
    bool closed = (st & BR_SSL_CLOSED) != 0;
    bool failed = engine_failed(f);
    if ((f & GW_TLS_V_PLAIN) && (st & BR_SSL_SENDAPP) && !(f & GW_TLS_F_NOTIFY) && !failed)
        return GW_TLS_ENCRYPT;
    if ((f & GW_TLS_F_SHUT) && (f & GW_TLS_F_HS_OK) && !(f & (GW_TLS_V_QUEUED | GW_TLS_F_NOTIFY)) &&
        !closed && !failed)
        return GW_TLS_NOTIFY;
    if ((f & GW_TLS_V_SHUT_REQ) && !(f & (GW_TLS_F_ISHUT | GW_TLS_F_WRITING)) && !failed &&
        ((f & GW_TLS_F_NOTIFY) || closed) && !(st & BR_SSL_SENDREC))
        return GW_TLS_SHUT_INNER;
    if ((st & BR_SSL_RECVREC) && (f & GW_TLS_V_INPUT) && !failed)
        return GW_TLS_FEED;
    bool want = !closed && !failed && !(f & (GW_TLS_F_IN_EOF | GW_TLS_V_INPUT)) &&
                (st & BR_SSL_RECVREC) && (!(f & GW_TLS_F_HS) || (f & GW_TLS_V_READS));
    if (want && !(f & GW_TLS_F_IN_READING))
        return GW_TLS_READ_INNER;
    if (!want && (f & GW_TLS_F_IN_READING))
        return GW_TLS_STOP_INNER;
    return GW_TLS_IDLE;
}

/* see tls_stream.h */
gw_tls_act_t gw_tls_next(unsigned st, uint32_t f)
{
    if (f & GW_TLS_V_CLOSING)
        return GW_TLS_IDLE;
    if ((st & BR_SSL_SENDREC) && !(f & (GW_TLS_F_WRITING | GW_TLS_F_ISHUT | GW_TLS_F_ERR)))
        return GW_TLS_SEND;
    if (f & GW_TLS_V_QUIET)
        return next_for_engine(st, f);
    if (!(f & GW_TLS_F_HS)) {
        if (st & (BR_SSL_SENDAPP | BR_SSL_RECVAPP))
            return GW_TLS_HS_OK;
        if ((st & BR_SSL_CLOSED) || engine_failed(f) || (f & GW_TLS_F_IN_EOF))
            return GW_TLS_HS_FAIL;
    }
    gw_tls_act_t a = next_for_owner(st, f);
    return a != GW_TLS_IDLE ? a : next_for_engine(st, f);
}

/* see tls_stream.h */
bool gw_tls_act_calls_owner(gw_tls_act_t act)
{
    switch (act) {
    case GW_TLS_HS_OK:
    case GW_TLS_HS_FAIL:
    case GW_TLS_DELIVER:
    case GW_TLS_COMPLETE:
    case GW_TLS_FAIL_WRITE:
    case GW_TLS_ERROR:
    case GW_TLS_EOF:
        return true;
    default:
        return false;
    }
}

/* see tls_stream.h */
const char *gw_tls_act_name(gw_tls_act_t act)
{
    static const char *const names[] = {
        "idle", "send",    "hs_ok",  "hs_fail",    "deliver", "complete",   "fail_write", "error",
        "eof",  "encrypt", "notify", "shut_inner", "feed",    "read_inner", "stop_inner"};
    return (unsigned)act < sizeof names / sizeof names[0] ? names[act] : "?";
}

/* ---- the shell -------------------------------------------------------------------------- */

#define CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static void pump(gw_tls_stream_t *ts, bool owner_call);

static uint32_t view(const gw_tls_stream_t *ts, unsigned st)
{
    uint32_t f = ts->flags;
    uint8_t sf = ts->s.flags;
    if ((sf & GW_STREAM_READING) && !(sf & GW_STREAM_STARVED))
        f |= GW_TLS_V_READS;
    if (sf & GW_STREAM_CLOSING)
        f |= GW_TLS_V_CLOSING;
    if (ts->in != NULL)
        f |= GW_TLS_V_INPUT;
    if (ts->feeding != NULL)
        f |= GW_TLS_V_PLAIN;
    if (ts->wq != NULL) {
        f |= GW_TLS_V_QUEUED;
        if (ts->wq != ts->feeding && ts->completed + ts->wq->u.q.done <= ts->sent)
            f |= GW_TLS_V_DONE;
    }
    if (ts->shut_req != NULL)
        f |= GW_TLS_V_SHUT_REQ;
    if ((st & BR_SSL_CLOSED) && br_ssl_engine_last_error(ts->eng) != 0)
        f |= GW_TLS_V_ENG_ERR;
    return f;
}

/* The UV code for a failure: the inner stream's, else UV_EPROTO (BearSSL's code is kept in
 * the engine for gw_tls_stream_last_error). */
static int failure(const gw_tls_stream_t *ts)
{
    return (ts->flags & GW_TLS_F_ERR) ? ts->err : UV_EPROTO;
}

static void fail_inner(gw_tls_stream_t *ts, int err)
{
    if (!(ts->flags & GW_TLS_F_ERR)) {
        ts->flags |= GW_TLS_F_ERR;
        ts->err = err;
    }
}

/* The engine's record window emptied: every plaintext byte given to it is now sent (it
 * holds one record at a time, and ENCRYPT flushes what it gives). */
static void record_sent(gw_tls_stream_t *ts)
{
    if (!(br_ssl_engine_current_state(ts->eng) & BR_SSL_SENDREC))
        ts->sent = ts->fed;
}

static void on_record_written(gw_stream_write_t *req, int status)
{
    gw_tls_stream_t *ts = CONTAINER(req, gw_tls_stream_t, wreq);
    ts->flags &= ~GW_TLS_F_WRITING;
    if (gw_stream_closing(&ts->s))
        return; /* cancelled by our close */
    if (status < 0)
        fail_inner(ts, status);
    else {
        br_ssl_engine_sendrec_ack(ts->eng, ts->wlen);
        record_sent(ts);
    }
    pump(ts, false);
}

static void do_send(gw_tls_stream_t *ts)
{
    size_t len;
    unsigned char *p = br_ssl_engine_sendrec_buf(ts->eng, &len);
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
    int n = gw_stream_try_write(ts->inner, &b, 1);
    if (n > 0) {
        br_ssl_engine_sendrec_ack(ts->eng, (size_t)n);
        record_sent(ts);
        return;
    }
    if (n == UV_EAGAIN) {
        ts->wlen = len;
        n = gw_stream_write(&ts->wreq, ts->inner, &b, 1, on_record_written);
        if (n == 0) {
            ts->flags |= GW_TLS_F_WRITING;
            return;
        }
    }
    fail_inner(ts, n);
}

static size_t write_len(const gw_stream_write_t *w)
{
    size_t n = 0;
    for (unsigned i = 0; i < w->u.q.nbufs; i++)
        n += w->u.q.bufs[i].len;
    return n;
}

/* Copies queued plaintext into the engine while it has room, then flushes it into a record
 * when the queue is empty (a full window is flushed by the engine itself). */
static void do_encrypt(gw_tls_stream_t *ts)
{
    size_t room;
    unsigned char *p;
    while (ts->feeding != NULL && (p = br_ssl_engine_sendapp_buf(ts->eng, &room)) != NULL) {
        gw_stream_write_t *w = ts->feeding;
        size_t skip = w->u.q.done, k = 0;
        for (unsigned i = 0; i < w->u.q.nbufs && k < room; i++) {
            const uv_buf_t *b = &w->u.q.bufs[i];
            if (skip >= b->len) {
                skip -= b->len;
                continue;
            }
            size_t m = b->len - skip < room - k ? b->len - skip : room - k;
            memcpy(p + k, b->base + skip, m);
            k += m;
            skip = 0;
        }
        if (k > 0) {
            br_ssl_engine_sendapp_ack(ts->eng, k);
            w->u.q.done += k;
            ts->fed += k;
        }
        if (w->u.q.done == write_len(w))
            ts->feeding = w->u.q.next;
    }
    if (ts->feeding == NULL)
        br_ssl_engine_flush(ts->eng, 0);
}

static void do_feed(gw_tls_stream_t *ts)
{
    size_t room;
    unsigned char *p;
    while (ts->in != NULL && (p = br_ssl_engine_recvrec_buf(ts->eng, &room)) != NULL) {
        gw_chunk_t *ch = ts->in;
        size_t k = ch->len - ch->off < room ? ch->len - ch->off : room;
        memcpy(p, ch->data + ch->off, k);
        ch->off += (uint32_t)k;
        if (ch->off == ch->len) {
            ts->in = ch->next;
            ch->next = NULL;
            gw_chunk_unref(ts->s.env->cache, ch);
        }
        br_ssl_engine_recvrec_ack(ts->eng, k);
    }
}

static void do_deliver(gw_tls_stream_t *ts)
{
    gw_chunk_t *ch = gw__stream_chunk(&ts->s);
    if (ch == NULL) {
        gw__stream_starve(&ts->s); /* reads pause; the starve timer resumes them */
        return;
    }
    size_t len;
    unsigned char *p = br_ssl_engine_recvapp_buf(ts->eng, &len);
    size_t k = gw_chunk_size(ts->s.env->cache);
    if (len < k)
        k = len;
    memcpy(ch->data, p, k);
    br_ssl_engine_recvapp_ack(ts->eng, k);
    ch->len = (uint32_t)k;
    ch->off = 0;
    ts->s.cb.on_read(&ts->s, ch, (ssize_t)k);
}

static gw_stream_write_t *pop_write(gw_tls_stream_t *ts)
{
    gw_stream_write_t *w = ts->wq;
    ts->wq = w->u.q.next;
    if (ts->wq == NULL)
        ts->wq_tail = NULL;
    if (ts->feeding == w)
        ts->feeding = ts->wq;
    if (w->u.q.bufs != w->u.q.bufsml)
        free(w->u.q.bufs);
    return w;
}

static void finish_shutdown(gw_tls_stream_t *ts, int status)
{
    gw_stream_shutdown_t *req = ts->shut_req;
    ts->shut_req = NULL;
    if (req != NULL)
        req->cb(req, status);
}

static void do_fail_write(gw_tls_stream_t *ts, unsigned st)
{
    int code = (st & BR_SSL_CLOSED) && !engine_failed(view(ts, st)) ? UV_EPIPE : failure(ts);
    if (ts->wq == NULL) {
        finish_shutdown(ts, code);
        return;
    }
    gw_stream_write_t *w = pop_write(ts);
    w->cb(w, code);
}

static void do_complete(gw_tls_stream_t *ts)
{
    ts->completed += ts->wq->u.q.done;
    gw_stream_write_t *w = pop_write(ts);
    w->cb(w, 0);
}

static void on_inner_shutdown(gw_stream_shutdown_t *req, int status)
{
    gw_tls_stream_t *ts = CONTAINER(req, gw_tls_stream_t, ishut);
    if (gw_stream_closing(&ts->s))
        return; /* the close completes the owner's request */
    finish_shutdown(ts, status);
    pump(ts, false);
}

static void do_shut_inner(gw_tls_stream_t *ts)
{
    ts->flags |= GW_TLS_F_ISHUT;
    int rc = gw_stream_shutdown(&ts->ishut, ts->inner, on_inner_shutdown);
    if (rc != 0)
        fail_inner(ts, rc); /* the owner's request fails with it */
}

static void do_handshake_done(gw_tls_stream_t *ts, gw_tls_act_t a, uint32_t f)
{
    ts->flags |= GW_TLS_F_HS;
    int status = 0;
    if (a == GW_TLS_HS_OK)
        ts->flags |= GW_TLS_F_HS_OK;
    else if (engine_failed(f))
        status = failure(ts);
    else
        status = UV_EOF; /* the peer left (or closed) before the handshake ended */
    if (ts->on_handshake != NULL)
        ts->on_handshake(ts, status);
}

static void do_end(gw_tls_stream_t *ts, gw_tls_act_t a, unsigned st)
{
    ts->flags |= GW_TLS_F_ENDED;
    if (a == GW_TLS_ERROR) {
        ts->s.cb.on_read(&ts->s, NULL, failure(ts));
        return;
    }
    if (!(st & BR_SSL_CLOSED))
        ts->flags |= GW_TLS_F_TRUNC;
    ts->s.cb.on_read(&ts->s, NULL, UV_EOF);
}

static void do_inner_reads(gw_tls_stream_t *ts, bool start)
{
    if (!start) {
        ts->flags &= ~GW_TLS_F_IN_READING;
        gw_stream_read_stop(ts->inner);
        return;
    }
    int rc = gw_stream_read_start(ts->inner);
    if (rc != 0)
        fail_inner(ts, rc);
    else
        ts->flags |= GW_TLS_F_IN_READING;
}

/* Does A. */
static void act(gw_tls_stream_t *ts, gw_tls_act_t a, unsigned st, uint32_t f)
{
    switch (a) {
    case GW_TLS_SEND:
        do_send(ts);
        break;
    case GW_TLS_HS_OK:
    case GW_TLS_HS_FAIL:
        do_handshake_done(ts, a, f);
        break;
    case GW_TLS_DELIVER:
        do_deliver(ts);
        break;
    case GW_TLS_COMPLETE:
        do_complete(ts);
        break;
    case GW_TLS_FAIL_WRITE:
        do_fail_write(ts, st);
        break;
    case GW_TLS_ERROR:
    case GW_TLS_EOF:
        do_end(ts, a, st);
        break;
    case GW_TLS_ENCRYPT:
        do_encrypt(ts);
        break;
    case GW_TLS_NOTIFY:
        ts->flags |= GW_TLS_F_NOTIFY;
        br_ssl_engine_close(ts->eng);
        break;
    case GW_TLS_SHUT_INNER:
        do_shut_inner(ts);
        break;
    case GW_TLS_FEED:
        do_feed(ts);
        break;
    case GW_TLS_READ_INNER:
        do_inner_reads(ts, true);
        break;
    case GW_TLS_STOP_INNER:
        do_inner_reads(ts, false);
        break;
    case GW_TLS_IDLE:
        break;
    }
}

/* Asks and acts until nothing is left to do; returns whether something for the owner is
 * left (only when QUIET: the owner is calling, and hears it at the next loop turn). A call
 * that comes in while the pump runs (an owner callback writing, say) only queues its work:
 * the running loop asks again after each action, so it sees it. A DELIVER that starved
 * ends the loop (reads wait for the starve timer). */
static bool run(gw_tls_stream_t *ts, bool quiet)
{
    if (ts->flags & GW_TLS_F_PUMPING)
        return false;
    ts->flags |= GW_TLS_F_PUMPING;
    bool left = false;
    for (;;) {
        unsigned st = br_ssl_engine_current_state(ts->eng);
        uint32_t f = view(ts, st);
        gw_tls_act_t a = gw_tls_next(st, quiet ? f | GW_TLS_V_QUIET : f);
        if (a == GW_TLS_IDLE) {
            left = quiet && gw_tls_next(st, f) != GW_TLS_IDLE;
            break;
        }
        act(ts, a, st, f);
        if (a == GW_TLS_DELIVER && gw_stream_starved(&ts->s))
            break;
    }
    ts->flags &= ~GW_TLS_F_PUMPING;
    return left;
}

static void pump(gw_tls_stream_t *ts, bool owner_call)
{
    if (run(ts, owner_call))
        gw__stream_defer(&ts->s);
}

/* ---- the inner stream's callbacks ------------------------------------------------------- */

static void on_inner_read(gw_stream_t *inner, gw_chunk_t *ch, ssize_t n)
{
    gw_tls_stream_t *ts = inner->data;
    if (n > 0) {
        ch->next = NULL;
        gw_chunk_t **p = &ts->in;
        while (*p != NULL)
            p = &(*p)->next;
        *p = ch;
    } else if (n == UV_EOF)
        ts->flags |= GW_TLS_F_IN_EOF;
    else
        fail_inner(ts, (int)n);
    pump(ts, false);
}

static void on_inner_closed(gw_stream_t *inner)
{
    gw_tls_stream_t *ts = inner->data;
    while (ts->in != NULL) {
        gw_chunk_t *ch = ts->in;
        ts->in = ch->next;
        ch->next = NULL;
        gw_chunk_unref(ts->s.env->cache, ch);
    }
    while (ts->wq != NULL) {
        gw_stream_write_t *w = pop_write(ts);
        w->cb(w, UV_ECANCELED);
    }
    finish_shutdown(ts, UV_ECANCELED);
    gw__stream_closed(&ts->s);
}

/* ---- the stream ops --------------------------------------------------------------------- */

static gw_tls_stream_t *tls_of(gw_stream_t *s)
{
    return (gw_tls_stream_t *)(void *)s;
}

static int tls_read_start(gw_stream_t *s)
{
    pump(tls_of(s), true);
    return 0;
}

static int tls_read_stop(gw_stream_t *s)
{
    pump(tls_of(s), true);
    return 0;
}

static int tls_resume(gw_stream_t *s)
{
    pump(tls_of(s), false);
    return 0;
}

/* Why a write cannot be taken: 0 if it can. */
static int write_refused(gw_tls_stream_t *ts)
{
    unsigned st = br_ssl_engine_current_state(ts->eng);
    if (engine_failed(view(ts, st)))
        return failure(ts);
    if ((st & BR_SSL_CLOSED) || (ts->flags & (GW_TLS_F_SHUT | GW_TLS_F_NOTIFY)))
        return UV_EPIPE;
    return 0;
}

/* Takes what the engine's window holds now; never ahead of a queued write. */
static int tls_try_write(gw_stream_t *s, const uv_buf_t *bufs, unsigned n)
{
    gw_tls_stream_t *ts = tls_of(s);
    int rc = write_refused(ts);
    if (rc != 0)
        return rc;
    if (!(ts->flags & GW_TLS_F_HS_OK) || ts->wq != NULL)
        return UV_EAGAIN;
    size_t room, taken = 0;
    unsigned char *p = br_ssl_engine_sendapp_buf(ts->eng, &room);
    for (unsigned i = 0; p != NULL && i < n && taken < room && taken < INT32_MAX; i++) {
        size_t k = bufs[i].len < room - taken ? bufs[i].len : room - taken;
        memcpy(p + taken, bufs[i].base, k);
        taken += k;
    }
    if (taken == 0)
        return UV_EAGAIN;
    br_ssl_engine_sendapp_ack(ts->eng, taken);
    br_ssl_engine_flush(ts->eng, 0);
    ts->fed += taken;
    ts->completed += taken;
    pump(ts, true);
    return (int)taken;
}

static int tls_write(gw_stream_write_t *req, gw_stream_t *s, const uv_buf_t *bufs, unsigned n)
{
    gw_tls_stream_t *ts = tls_of(s);
    int rc = write_refused(ts);
    if (rc != 0)
        return rc;
    req->u.q.bufs = req->u.q.bufsml;
    if (n > GW_STREAM_BUFS_INLINE) {
        req->u.q.bufs = malloc(n * sizeof *bufs);
        if (req->u.q.bufs == NULL)
            return UV_ENOMEM;
    }
    memcpy(req->u.q.bufs, bufs, n * sizeof *bufs); /* as uv_write copies the array */
    req->u.q.nbufs = n;
    req->u.q.done = 0;
    req->u.q.next = NULL;
    if (ts->wq_tail != NULL)
        ts->wq_tail->u.q.next = req;
    else
        ts->wq = req;
    ts->wq_tail = req;
    if (ts->feeding == NULL)
        ts->feeding = req;
    pump(ts, true);
    return 0;
}

static int tls_shutdown(gw_stream_shutdown_t *req, gw_stream_t *s)
{
    gw_tls_stream_t *ts = tls_of(s);
    if (ts->flags & GW_TLS_F_SHUT)
        return UV_ENOTCONN;
    unsigned st = br_ssl_engine_current_state(ts->eng);
    if (engine_failed(view(ts, st)))
        return failure(ts);
    ts->flags |= GW_TLS_F_SHUT;
    ts->shut_req = req;
    pump(ts, true);
    return 0;
}

/* A graceful close says close_notify if it can at once (best effort: one try_write of the
 * alert record, no waiting), so the peer can tell our end from a cut. */
static void tls_close(gw_stream_t *s, bool reset)
{
    gw_tls_stream_t *ts = tls_of(s);
    unsigned st = br_ssl_engine_current_state(ts->eng);
    if (!reset && (ts->flags & GW_TLS_F_HS_OK) &&
        !(ts->flags & (GW_TLS_F_NOTIFY | GW_TLS_F_WRITING | GW_TLS_F_ISHUT | GW_TLS_F_ERR)) &&
        !(st & (BR_SSL_CLOSED | BR_SSL_SENDREC))) {
        ts->flags |= GW_TLS_F_NOTIFY;
        br_ssl_engine_close(ts->eng);
        size_t len;
        unsigned char *p = br_ssl_engine_sendrec_buf(ts->eng, &len);
        if (p != NULL) {
            uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
            (void)gw_stream_try_write(ts->inner, &b, 1);
        }
    }
    gw_stream_close(ts->inner, reset, on_inner_closed);
}

static int tls_peer(const gw_stream_t *s, struct sockaddr *sa, int *len)
{
    return gw_stream_peer(((const gw_tls_stream_t *)(const void *)s)->inner, sa, len);
}

static const gw_stream_ops_t tls_ops = {
    .read_start = tls_read_start,
    .read_stop = tls_read_stop,
    .try_write = tls_try_write,
    .write = tls_write,
    .shutdown = tls_shutdown,
    .close = tls_close,
    .peer = tls_peer,
    .resume = tls_resume,
};

/* see tls_stream.h */
int gw_tls_stream_init(gw_tls_stream_t *ts, gw_stream_t *inner, br_ssl_engine_context *eng,
                       gw_stream_env_t *env, gw_stream_read_cb on_read, void *data)
{
    memset(ts, 0, sizeof *ts);
    gw__stream_init(&ts->s, &tls_ops, env, on_read, data);
    ts->inner = inner;
    ts->eng = eng;
    inner->cb.on_read = on_inner_read;
    inner->data = ts;
    bool left = run(ts, true);
    if (ts->flags & GW_TLS_F_ERR) { /* INNER refused to read or write */
        if (ts->flags & GW_TLS_F_IN_READING)
            gw_stream_read_stop(inner);
        return ts->err;
    }
    if (left) /* an engine that failed at once (bad parameters): the owner hears it soon */
        gw__stream_defer(&ts->s);
    return 0;
}

/* see tls_stream.h */
void gw_tls_stream_on_handshake(gw_tls_stream_t *ts, gw_tls_handshake_cb cb)
{
    ts->on_handshake = cb;
}

/* see tls_stream.h */
bool gw_tls_stream_ready(const gw_tls_stream_t *ts)
{
    return (ts->flags & GW_TLS_F_HS_OK) != 0;
}

/* see tls_stream.h */
int gw_tls_stream_last_error(const gw_tls_stream_t *ts)
{
    return br_ssl_engine_last_error(ts->eng);
}

/* see tls_stream.h */
bool gw_tls_stream_truncated(const gw_tls_stream_t *ts)
{
    return (ts->flags & GW_TLS_F_TRUNC) != 0;
}
