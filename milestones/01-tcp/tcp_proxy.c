/* tcp_proxy.c - see tcp_proxy.h.
 *
 * Every connection pair is one `conn_t` that owns two streams (client, backend: plaintext
 * streams over TCP sockets, common/stream.h) and one timer. The forwarder only talks to the
 * stream interface, so a TLS stream or a tunnel's stream could sit on either side. libuv
 * rules we live by (STYLE.md section 3), which the streams keep:
 *  - a handle's memory may only be freed after its close callback, so the pair is freed
 *    when the last of its pending closes completes;
 *  - closing a stream completes its pending writes and shutdowns with UV_ECANCELED before
 *    the close callback runs, so those callbacks may still see the pair, and must ignore it;
 *  - a callback may close the pair: nothing touches it after calling apply().
 */
#include "tcp_proxy.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "log.h"
#include "tcp_sm.h"

#define LOG_PERIOD_MS 1000

typedef struct conn_s conn_t;

typedef struct tcp_worker_s {
    gw_worker_t *w;
    gw_tcp_picker_t picker;
    conn_t *conns;         /* every live pair, for force close at the drain deadline */
    gw_tcp_stats_t *stats; /* w->stats: outlives this struct (runtime.h) */
    gw_lograte_t reject_log, connect_log;
} tcp_worker_t;

struct conn_s {
    tcp_worker_t *tw;
    gw_listener_t *l;
    gw_tcp_stream_t sock[2]; /* [GW_CLIENT], [GW_BACKEND] */
    uv_connect_t connect_req;
    gw_stream_shutdown_t shut_req[2];
    uv_timer_t timer; /* connect timeout, then idle timeout */
    gw_sm_t sm;
    conn_t *prev, *next; /* tw->conns */
    gw_tcp_pick_t pick;  /* the picker's per-connection state */
    bool picked, backend_failed;
    const gw_addr_t *backend;
    unsigned attempt, pending_closes;
    bool admitted, connected, closing, backend_open;
    uint64_t last_active; /* loop time of the last byte read or written */
    uint64_t bytes[2];    /* read from each side */
    uint64_t retry_delay_ms;
    struct sockaddr_storage peer; /* the client's address (AF_UNSPEC if unknown) */
    /* The picker's preread (tcp_proxy.h): the client's first bytes, kept until the backend
     * is connected; `prereading` while the picker still looks at them. */
    gw_chunk_t *held;
    bool prereading, preread_eof;
    /* The picker's hello for the current attempt (tcp_proxy.h), written at the pick and sent
     * once connected, or NULL: nothing to send. */
    gw_chunk_t *hello;
    bool in_header; /* the picker's header hook is reading (tcp_proxy.h): held as above */
    /* The picker's wrap hook (tcp_proxy.h): the client's stream when it is a wrapper over
     * sock[GW_CLIENT] (TLS termination), else NULL; `wrap_wait` until the wrapper is ready,
     * `wrap_timed_out` when 01 gave up waiting. */
    gw_stream_t *wrapper;
    bool wrap_wait, wrap_timed_out;
};

static void apply(conn_t *c, unsigned act);
static void on_read(gw_stream_t *s, gw_chunk_t *ch, ssize_t nread);
static void start_connect(conn_t *c);
static void preread_data(conn_t *c, gw_chunk_t *ch, size_t n);
static void preread_end(conn_t *c, gw_tcp_preread_event_t ev);
static void header_data(conn_t *c, gw_chunk_t *ch, size_t n);
static void header_end(conn_t *c, gw_tcp_preread_event_t ev);
static void conn_start(conn_t *c);
static void conn_go(conn_t *c);

static gw_stream_t *stream_of(conn_t *c, gw_side_t side)
{
    return side == GW_CLIENT && c->wrapper != NULL ? c->wrapper : &c->sock[side].s;
}

static gw_side_t side_of(conn_t *c, const gw_stream_t *s)
{
    return s == stream_of(c, GW_CLIENT) ? GW_CLIENT : GW_BACKEND;
}

static uv_loop_t *loop_of(const conn_t *c)
{
    return &c->tw->w->loop;
}

/* Feeds the pair's state machine; also remembers a failure on the backend side, which the
 * picker hears about at the close (passive health checks from milestone 02 on). */
static unsigned sm_event(conn_t *c, gw_sm_event_t ev, gw_side_t side, size_t n)
{
    if (ev == GW_EV_ERROR && side == GW_BACKEND && c->sm.phase == GW_SM_OPEN)
        c->backend_failed = true;
    return gw_sm_on(&c->sm, ev, side, n);
}

/* ---- the default picker: milestone 01 always uses the upstream's first backend --------- */

static const gw_addr_t *first_backend(void *ctx, gw_worker_t *w, const gw_listener_t *l,
                                      const struct sockaddr *client, unsigned attempt,
                                      gw_tcp_pick_t *tok)
{
    (void)ctx;
    (void)client;
    (void)tok;
    if (attempt > 0)
        return NULL;
    const gw_upstream_cfg_t *u = &w->rt->cfg->upstreams[l->cfg->upstream_index];
    return &u->backends[0].addr;
}

/* ---- closing ----------------------------------------------------------------------------- */

static void conn_free(conn_t *c)
{
    tcp_worker_t *tw = c->tw;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        tw->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (c->admitted)
        gw_listener_leave(c->l);
    gw_listener_drop(c->l);
    if (c->held != NULL)
        gw_chunk_put(&tw->w->bufs, c->held);
    if (c->hello != NULL)
        gw_chunk_put(&tw->w->bufs, c->hello);
    gw_counter_inc(&tw->stats->closed);
    gw_counter_add(&tw->stats->bytes_in, c->bytes[GW_CLIENT]);
    gw_counter_add(&tw->stats->bytes_out, c->bytes[GW_BACKEND]);
    gw_worker_t *w = tw->w;
    free(c);
    gw_worker_conn_done(w); /* last: it may finish the worker */
}

static void closed_one(conn_t *c)
{
    if (--c->pending_closes == 0)
        conn_free(c);
}

static void on_stream_closed(gw_stream_t *s)
{
    conn_t *c = s->data;
    if (s == c->wrapper) { /* its memory is the hook's: the stream is done with it now */
        c->wrapper = NULL;
        c->tw->picker.unwrap(c->tw->picker.wrap_ctx, c->tw->w, s, c->wrap_timed_out);
    }
    closed_one(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    closed_one(h->data);
}

static void close_side(conn_t *c, gw_side_t side, bool reset)
{
    c->pending_closes++;
    gw_stream_close(stream_of(c, side), reset, on_stream_closed);
}

/* Closes the pair; idempotent. ACT's GW_ACT_RESET bits choose RST over FIN per side. */
static void conn_close(conn_t *c, unsigned act)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->picked && c->tw->picker.report != NULL)
        c->tw->picker.report(c->tw->picker.ctx, c->tw->w, &c->pick,
                             c->backend_failed ? GW_TCP_CLOSED_BACKEND_ERROR : GW_TCP_CLOSED);
    gw_debug("pair closed: client sent %llu bytes, backend sent %llu",
             (unsigned long long)c->bytes[GW_CLIENT], (unsigned long long)c->bytes[GW_BACKEND]);
    close_side(c, GW_CLIENT, act & GW_ACT_RESET(GW_CLIENT));
    if (c->backend_open) {
        c->backend_open = false;
        close_side(c, GW_BACKEND, act & GW_ACT_RESET(GW_BACKEND));
    }
    c->pending_closes++;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

/* ---- reading and writing ------------------------------------------------------------------ */

/* LAB 01: forwarding */
/* A queued write finished: the chunk goes back to the cache and the machine learns how
 * many bytes left the queue (which may restart reads, or release a waiting FIN). */
static void on_write(gw_stream_write_t *req, int status)
{
    gw_chunk_t *ch = (gw_chunk_t *)((char *)req - offsetof(gw_chunk_t, req));
    conn_t *c = req->stream->data;
    gw_side_t dst = side_of(c, req->stream);
    size_t n = ch->len - ch->off;
    gw_chunk_put(&c->tw->w->bufs, ch);
    if (c->closing) /* UV_ECANCELED while closing, or a late success: nothing to do */
        return;
    if (status < 0) {
        gw_debug("write to %s failed: %s", dst == GW_CLIENT ? "client" : "backend",
                 uv_strerror(status));
        apply(c, sm_event(c, GW_EV_ERROR, dst, 0));
        return;
    }
    c->last_active = uv_now(loop_of(c));
    apply(c, sm_event(c, GW_EV_WRITTEN, dst, n));
}

/* Sends the N bytes of CH read from SRC to the other side. Tries a direct write first: on a
 * fast path the bytes leave at once and the chunk goes straight back to the cache. The
 * stream keeps the order: while a write is queued, its try_write takes nothing (EAGAIN). */
static unsigned forward(conn_t *c, gw_side_t src, gw_chunk_t *ch, size_t n)
{
    gw_side_t dst = GW_OTHER(src);
    gw_stream_t *out = stream_of(c, dst);
    unsigned act = sm_event(c, GW_EV_READ, src, n);
    uv_buf_t b = uv_buf_init(ch->data, (unsigned)n);
    int r = gw_stream_try_write(out, &b, 1);
    if (r < 0 && r != UV_EAGAIN) {
        gw_chunk_put(&c->tw->w->bufs, ch);
        return act | sm_event(c, GW_EV_ERROR, dst, 0);
    }
    size_t done = r > 0 ? (size_t)r : 0;
    if (done > 0)
        act |= sm_event(c, GW_EV_WRITTEN, dst, done);
    if (done == n) {
        gw_chunk_put(&c->tw->w->bufs, ch);
        return act;
    }
    ch->len = (uint32_t)n;
    ch->off = (uint32_t)done;
    uv_buf_t rest = uv_buf_init(ch->data + done, (unsigned)(n - done));
    if (gw_stream_write(&ch->req, out, &rest, 1, on_write) != 0) {
        gw_chunk_put(&c->tw->w->bufs, ch);
        act |= sm_event(c, GW_EV_ERROR, dst, 0);
    }
    return act;
}
/* END LAB */

/* The stream read into CH (a chunk from the worker's cache: an idle pair holds none) or hit
 * EOF or an error. When the pool is empty the stream waits for a chunk by itself. */
static void on_read(gw_stream_t *s, gw_chunk_t *ch, ssize_t nread)
{
    conn_t *c = s->data;
    gw_side_t side = side_of(c, s);
    if (nread > 0) {
        c->bytes[side] += (uint64_t)nread;
        c->last_active = uv_now(loop_of(c));
        if (c->in_header) {
            header_data(c, ch, (size_t)nread);
            return;
        }
        if (c->prereading) {
            preread_data(c, ch, (size_t)nread);
            return;
        }
        apply(c, forward(c, side, ch, (size_t)nread));
        return;
    }
    if (c->in_header) {
        header_end(c, GW_TCP_PREREAD_EOF); /* a read error too: the client is gone */
        return;
    }
    if (c->prereading && nread == UV_EOF) {
        c->preread_eof = true;
        preread_end(c, GW_TCP_PREREAD_EOF);
        return;
    }
    if (nread != UV_EOF)
        gw_debug("read from %s failed: %s", side == GW_CLIENT ? "client" : "backend",
                 uv_strerror((int)nread));
    apply(c, sm_event(c, nread == UV_EOF ? GW_EV_EOF : GW_EV_ERROR, side, 0));
}

static void on_shutdown(gw_stream_shutdown_t *req, int status)
{
    conn_t *c = req->stream->data;
    gw_side_t side = side_of(c, req->stream);
    if (c->closing)
        return;
    apply(c, sm_event(c, status < 0 ? GW_EV_ERROR : GW_EV_SHUTDOWN_DONE, side, 0));
}

static int set_reading(conn_t *c, gw_side_t side, bool on)
{
    return on ? gw_stream_read_start(stream_of(c, side)) : gw_stream_read_stop(stream_of(c, side));
}

/* Performs what the state machine asked for. May close (and later free) the pair. */
static void apply(conn_t *c, unsigned act)
{
    if (act == 0 || c->closing)
        return;
    if (act & GW_ACT_CLOSE) {
        conn_close(c, act);
        return;
    }
    for (int s = GW_CLIENT; s <= GW_BACKEND; s++) {
        /* STOP and START may both be set when several events were folded together: the
         * machine's `reading` flag is the final word. */
        if ((act & (GW_ACT_READ_START(s) | GW_ACT_READ_STOP(s))) &&
            set_reading(c, s, c->sm.flow[s].reading) != 0) {
            apply(c, sm_event(c, GW_EV_ERROR, s, 0));
            return;
        }
    }
    for (int s = GW_CLIENT; s <= GW_BACKEND; s++) {
        if ((act & GW_ACT_SHUTDOWN(s)) &&
            gw_stream_shutdown(&c->shut_req[s], stream_of(c, s), on_shutdown) != 0) {
            apply(c, sm_event(c, GW_EV_ERROR, s, 0));
            return;
        }
    }
}

/* ---- connecting and timeouts ---------------------------------------------------------------- */

/* One timer per pair serves both timeouts. For idleness it is not re-armed on every byte
 * (a heap operation per read): it fires at the deadline computed from the last activity,
 * and if something moved since, it simply sleeps again for the remainder. */
static void on_idle_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    uint64_t idle = c->l->cfg->idle_timeout_ms, now = uv_now(loop_of(c));
    uint64_t quiet = now - c->last_active;
    if (quiet < idle) {
        uv_timer_start(t, on_idle_timer, idle - quiet, 0);
        return;
    }
    gw_debug("idle for %llums: closing pair", (unsigned long long)quiet);
    apply(c, sm_event(c, GW_EV_IDLE_TIMEOUT, GW_CLIENT, 0));
}

static void log_connect_failure(conn_t *c, const char *why)
{
    uint64_t dropped;
    if (!gw_lograte_allow(&c->tw->connect_log, uv_now(loop_of(c)), LOG_PERIOD_MS, &dropped))
        return;
    char a[GW_ADDR_STRLEN];
    gw_warn("listener '%s': backend %s: %s (attempt %u)%s", c->l->cfg->name,
            c->backend ? gw_addr_format(c->backend, a, sizeof a) : "-", why, c->attempt + 1,
            dropped ? " (more like this suppressed)" : "");
}

static void on_retry_timer(uv_timer_t *t)
{
    start_connect(t->data);
}

/* The backend stream of a failed attempt is closed and a fresh one made for the next. */
static void on_backend_closed_for_retry(gw_stream_t *s)
{
    conn_t *c = s->data;
    if (c->closing) {
        closed_one(c);
        return;
    }
    c->pending_closes--;
    gw_tcp_stream_init(&c->sock[GW_BACKEND], loop_of(c), &c->tw->w->streams, on_read, c);
    c->backend_open = true;
    if (c->retry_delay_ms > 0)
        uv_timer_start(&c->timer, on_retry_timer, c->retry_delay_ms, 0);
    else
        start_connect(c);
}

/* Asks the picker whether attempt c->attempt may happen, and after how long. */
static bool may_retry(conn_t *c)
{
    const gw_tcp_picker_t *p = &c->tw->picker;
    c->retry_delay_ms = 0;
    if (c->attempt >= p->max_attempts || c->tw->w->draining)
        return false;
    return p->retry == NULL || p->retry(p->ctx, c->tw->w, &c->pick, c->attempt, &c->retry_delay_ms);
}

/* The connect of the current attempt failed with STATUS. The gateway's own shortage (no
 * descriptor for the socket: gw_err_local_shortage) is not the backend's fault and is not
 * retried, since the next attempt would meet it too: the picker hears of it only as the
 * connection's close. */
static void connect_failed(conn_t *c, int status, const char *why)
{
    gw_counter_inc(&c->tw->stats->connect_failed);
    log_connect_failure(c, why);
    if (gw_err_local_shortage(status)) {
        apply(c, sm_event(c, GW_EV_CONNECT_FAILED, GW_CLIENT, 0));
        return;
    }
    if (c->tw->picker.report != NULL)
        c->tw->picker.report(c->tw->picker.ctx, c->tw->w, &c->pick, status);
    c->attempt++;
    if (may_retry(c)) {
        uv_timer_stop(&c->timer);
        c->backend_open = false;
        c->pending_closes++;
        gw_stream_close(stream_of(c, GW_BACKEND), false, on_backend_closed_for_retry);
        return;
    }
    apply(c, sm_event(c, GW_EV_CONNECT_FAILED, GW_CLIENT, 0));
}

static void on_connect_timeout(uv_timer_t *t)
{
    conn_t *c = t->data;
    connect_failed(c, UV_ETIMEDOUT, "connect timed out");
}

/* The bytes the preread kept go to the backend first, as if just read; a FIN that came
 * during the preread follows them. */
static void send_held(conn_t *c)
{
    gw_chunk_t *ch = c->held;
    c->held = NULL;
    if (ch != NULL && !c->closing)
        apply(c, forward(c, GW_CLIENT, ch, ch->len));
    else if (ch != NULL)
        gw_chunk_put(&c->tw->w->bufs, ch);
    if (c->preread_eof && !c->closing)
        apply(c, sm_event(c, GW_EV_EOF, GW_CLIENT, 0));
}

static void on_hello_written(gw_stream_write_t *req, int status)
{
    gw_chunk_t *ch = (gw_chunk_t *)((char *)req - offsetof(gw_chunk_t, req));
    conn_t *c = req->stream->data;
    gw_chunk_put(&c->tw->w->bufs, ch);
    if (status < 0 && !c->closing)
        apply(c, sm_event(c, GW_EV_ERROR, GW_BACKEND, 0));
}

/* The picker's hello (tcp_proxy.h) for the attempt just picked, written now, while the pick
 * is fresh: the picker may let go of what it picked in (its configuration generation) once
 * connected, and the hello must describe this attempt's backend. False when the hook has
 * something to send and no chunk is left to hold it (the backend would take the client's
 * bytes for the header). */
static bool make_hello(conn_t *c)
{
    const gw_tcp_picker_t *p = &c->tw->picker;
    gw_bufcache_t *bufs = &c->tw->w->bufs;
    if (p->hello == NULL)
        return true;
    gw_chunk_t *ch = c->hello != NULL ? c->hello : gw_chunk_get(bufs); /* a retry rewrites it */
    c->hello = NULL;
    if (ch == NULL)
        return false;
    size_t n = p->hello(p->prefix_ctx, c->tw->w, c->l, &c->pick, (struct sockaddr *)&c->peer,
                        &c->sock[GW_CLIENT].tcp, ch->data, gw_chunk_size(bufs));
    if (n == 0) {
        gw_chunk_put(bufs, ch);
        return true;
    }
    ch->len = (uint32_t)n;
    c->hello = ch;
    return true;
}

/* The hello, queued on the new backend connection before anything of the client's: the
 * stream keeps the order. Not counted as the client's bytes. */
static void send_hello(conn_t *c)
{
    gw_chunk_t *ch = c->hello;
    c->hello = NULL;
    if (ch == NULL)
        return;
    uv_buf_t b = uv_buf_init(ch->data, ch->len);
    if (gw_stream_write(&ch->req, stream_of(c, GW_BACKEND), &b, 1, on_hello_written) != 0) {
        gw_chunk_put(&c->tw->w->bufs, ch);
        apply(c, sm_event(c, GW_EV_ERROR, GW_BACKEND, 0));
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    conn_t *c = req->data;
    if (c->closing || status == UV_ECANCELED) /* closed while connecting */
        return;
    if (status != 0) {
        connect_failed(c, status, uv_strerror(status));
        return;
    }
    c->connected = true;
    if (c->tw->picker.report != NULL)
        c->tw->picker.report(c->tw->picker.ctx, c->tw->w, &c->pick, 0);
    uv_tcp_nodelay(&c->sock[GW_BACKEND].tcp, 1);
    c->last_active = uv_now(loop_of(c));
    uv_timer_start(&c->timer, on_idle_timer, c->l->cfg->idle_timeout_ms, 0);
    apply(c, sm_event(c, GW_EV_CONNECTED, GW_CLIENT, 0));
    if (!c->closing)
        send_hello(c);
    send_held(c);
}

static void start_connect(conn_t *c)
{
    tcp_worker_t *tw = c->tw;
    c->pick.attempt_started_ns = gw_clock_mono_ns(&gw_clock_system);
    c->backend = tw->picker.pick(tw->picker.ctx, tw->w, c->l, (struct sockaddr *)&c->peer,
                                 c->attempt, &c->pick);
    c->picked = true;
    if (c->backend == NULL) {
        gw_counter_inc(&tw->stats->no_backend);
        log_connect_failure(c, "no usable backend");
        apply(c, sm_event(c, GW_EV_CONNECT_FAILED, GW_CLIENT, 0));
        return;
    }
    if (!make_hello(c)) {
        log_connect_failure(c, "no buffer for the backend's header");
        apply(c, sm_event(c, GW_EV_CONNECT_FAILED, GW_CLIENT, 0));
        return;
    }
    c->connect_req.data = c;
    int rc = uv_tcp_connect(&c->connect_req, &c->sock[GW_BACKEND].tcp,
                            (const struct sockaddr *)&c->backend->ss, on_connect);
    if (rc != 0) {
        connect_failed(c, rc, uv_strerror(rc));
        return;
    }
    uv_timer_start(&c->timer, on_connect_timeout, c->l->cfg->connect_timeout_ms, 0);
}

/* ---- the picker's preread ------------------------------------------------------------------ */

/* The picker answered ANSWER: read on, or stop reading and connect, or close. */
static void preread_answer(conn_t *c, int answer, bool final)
{
    if (answer == GW_TCP_PREREAD_MORE && !final)
        return;
    if (answer == GW_TCP_PREREAD_PICK)
        c->picked = true; /* the picker may keep something in the token: the close reports */
    c->prereading = false;
    uv_timer_stop(&c->timer);
    if (gw_stream_read_stop(stream_of(c, GW_CLIENT)) != 0 || answer != GW_TCP_PREREAD_PICK) {
        apply(c, sm_event(c, GW_EV_CONNECT_FAILED, GW_CLIENT, 0));
        return;
    }
    start_connect(c);
}

static void preread_end(conn_t *c, gw_tcp_preread_event_t ev)
{
    const gw_tcp_picker_t *p = &c->tw->picker;
    const char *data = c->held != NULL ? c->held->data : NULL;
    size_t len = c->held != NULL ? c->held->len : 0;
    int answer = p->preread(p->ctx, c->tw->w, c->l, data, len, ev, &c->pick);
    if (answer == GW_TCP_PREREAD_PICK && ev == GW_TCP_PREREAD_FULL)
        c->picked = true; /* refused below, but the picker may keep something in the token */
    preread_answer(c, ev == GW_TCP_PREREAD_FULL ? GW_TCP_PREREAD_REFUSE : answer, true);
}

/* N bytes read into CH: kept in the first chunk (later reads are copied into it, so a
 * client that sends its hello a byte at a time holds one chunk, not one per byte). False
 * when they do not fit (CH is given back either way). */
static bool keep(conn_t *c, gw_chunk_t *ch, size_t n)
{
    gw_bufcache_t *bufs = &c->tw->w->bufs;
    if (c->held == NULL) {
        ch->len = (uint32_t)n;
        ch->off = 0;
        c->held = ch;
        return true;
    }
    size_t room = gw_chunk_size(bufs) - c->held->len;
    if (n <= room)
        memcpy(c->held->data + c->held->len, ch->data, n);
    gw_chunk_put(bufs, ch);
    if (n > room)
        return false;
    c->held->len += (uint32_t)n;
    return true;
}

static void preread_data(conn_t *c, gw_chunk_t *ch, size_t n)
{
    if (!keep(c, ch, n)) {
        preread_end(c, GW_TCP_PREREAD_FULL);
        return;
    }
    const gw_tcp_picker_t *p = &c->tw->picker;
    int answer = p->preread(p->ctx, c->tw->w, c->l, c->held->data, c->held->len,
                            GW_TCP_PREREAD_DATA, &c->pick);
    preread_answer(c, answer, false);
}

static void on_preread_timeout(uv_timer_t *t)
{
    preread_end(t->data, GW_TCP_PREREAD_TIMEOUT);
}

/* ---- the picker's header ------------------------------------------------------------------- */

/* The header is read: the chunk kept holds only what came after it (or nothing). Goes on
 * as a new connection would, with the address the hook left in c->peer. */
static void header_done(conn_t *c)
{
    const gw_tcp_picker_t *p = &c->tw->picker;
    if (p->admit != NULL && !p->admit(p->ctx, c->tw->w, c->l, (struct sockaddr *)&c->peer)) {
        gw_counter_inc(&c->tw->stats->limited);
        apply(c, sm_event(c, GW_EV_CONNECT_FAILED, GW_CLIENT, 0));
        return;
    }
    conn_start(c);
}

static void header_refuse(conn_t *c)
{
    c->in_header = false;
    uv_timer_stop(&c->timer);
    apply(c, sm_event(c, GW_EV_CONNECT_FAILED, GW_CLIENT, 0));
}

static int header_call(conn_t *c, gw_tcp_preread_event_t ev)
{
    const gw_tcp_picker_t *p = &c->tw->picker;
    const char *data = c->held != NULL ? c->held->data : NULL;
    size_t len = c->held != NULL ? c->held->len : 0;
    return p->header(p->prefix_ctx, c->tw->w, c->l, data, len, ev, &c->peer);
}

/* Nothing more will come (EOF, TIMEOUT, FULL): the hook counts why, the client is closed. */
static void header_end(conn_t *c, gw_tcp_preread_event_t ev)
{
    (void)header_call(c, ev);
    header_refuse(c);
}

/* N bytes read into CH while the header is incomplete. The kept chunk gets as many of them
 * as fit (the header is bounded: the hook refuses one longer than a chunk can hold); when
 * the header ends within this read, whatever follows it is in CH alone (the bytes before
 * this read were all header: the hook said so), so CH, moved down to offset 0, becomes the
 * kept chunk: at most one chunk of the client's first bytes, whatever the split. */
static void header_data(conn_t *c, gw_chunk_t *ch, size_t n)
{
    gw_bufcache_t *bufs = &c->tw->w->bufs;
    size_t before = 0, take = n;
    if (c->held == NULL) {
        ch->len = (uint32_t)n;
        ch->off = 0;
        c->held = ch;
    } else {
        before = c->held->len;
        size_t room = gw_chunk_size(bufs) - before;
        take = n < room ? n : room;
        memcpy(c->held->data + before, ch->data, take);
        c->held->len += (uint32_t)take;
    }
    int answer = header_call(c, GW_TCP_PREREAD_DATA);
    if (answer == 0 && take == n) { /* read on; CH is kept, or was copied */
        if (ch != c->held)
            gw_chunk_put(bufs, ch);
        return;
    }
    if (answer == 0) { /* no room for more, and no header yet */
        gw_chunk_put(bufs, ch);
        header_end(c, GW_TCP_PREREAD_FULL);
        return;
    }
    if (answer < 0 || (size_t)answer <= before || (size_t)answer > before + take) {
        if (ch != c->held)
            gw_chunk_put(bufs, ch);
        header_refuse(c);
        return;
    }
    c->in_header = false;
    uv_timer_stop(&c->timer);
    size_t skip = (size_t)answer - before; /* the header's last bytes in CH */
    if (ch != c->held)
        gw_chunk_put(bufs, c->held);
    c->held = NULL;
    if (gw_stream_read_stop(&c->sock[GW_CLIENT].s) != 0) {
        gw_chunk_put(bufs, ch);
        apply(c, sm_event(c, GW_EV_CONNECT_FAILED, GW_CLIENT, 0));
        return;
    }
    if (skip == n) {
        gw_chunk_put(bufs, ch);
    } else {
        memmove(ch->data, ch->data + skip, n - skip);
        ch->len = (uint32_t)(n - skip);
        ch->off = 0;
        c->held = ch;
    }
    header_done(c);
}

static void on_header_timeout(uv_timer_t *t)
{
    header_end(t->data, GW_TCP_PREREAD_TIMEOUT);
}

/* A header hook on C's listener: asked once with nothing read (a refusal by address), then
 * the client is read until the header is whole, or for at most MS. */
static void header_start(conn_t *c, uint64_t ms)
{
    c->in_header = true;
    if (header_call(c, GW_TCP_PREREAD_DATA) < 0) {
        header_refuse(c);
        return;
    }
    uv_timer_start(&c->timer, on_header_timeout, ms, 0);
    if (gw_stream_read_start(&c->sock[GW_CLIENT].s) != 0)
        header_end(c, GW_TCP_PREREAD_EOF);
}

/* ---- the picker's wrapper ------------------------------------------------------------------ */

/* The wrapper was not ready in time (a TLS client that never finished its handshake). */
static void on_wrap_timeout(uv_timer_t *t)
{
    conn_t *c = t->data;
    c->wrap_wait = false;
    c->wrap_timed_out = true;
    apply(c, sm_event(c, GW_EV_CONNECT_FAILED, GW_CLIENT, 0));
}

/* ---- accepting ---------------------------------------------------------------------------- */

static void on_rejected_closed(gw_stream_t *s)
{
    free(s->data); /* the conn_t that was never started */
}

/* Over max_connections, or refused by the admit hook (a rate limit): accept and reset at
 * once, so the client learns now instead of waiting in the kernel's backlog, and log (rate
 * limited: this is what a flood looks like). */
static void reject(tcp_worker_t *tw, gw_stream_t *client, gw_listener_t *l, bool limited)
{
    gw_counter_inc(limited ? &tw->stats->limited : &tw->stats->rejected);
    uint64_t dropped;
    if (gw_lograte_allow(&tw->reject_log, uv_now(&tw->w->loop), LOG_PERIOD_MS, &dropped)) {
        if (limited)
            gw_warn("listener '%s': rate limit reached, connection refused%s", gw_listener_name(l),
                    dropped ? " (more refusals suppressed)" : "");
        else
            gw_warn(
                "listener '%s': max_connections (%llu) reached, connection refused%s",
                gw_listener_name(l),
                (unsigned long long)atomic_load_explicit(&l->max_connections, memory_order_relaxed),
                dropped ? " (more refusals suppressed)" : "");
    }
    gw_stream_close(client, true, on_rejected_closed);
}

/* Counts C in (max_connections passed) and sets up both sides; reads nothing yet. */
static void conn_init(tcp_worker_t *tw, conn_t *c, gw_listener_t *l)
{
    c->tw = tw;
    c->l = l;
    gw_listener_hold(l); /* the pair may outlive the listener's last generation */
    c->admitted = true;
    gw_worker_conn_add(tw->w);
    c->next = tw->conns;
    if (tw->conns != NULL)
        tw->conns->prev = c;
    tw->conns = c;
    gw_counter_inc(&tw->stats->accepted);
    gw_sm_init(&c->sm, tw->w->rt->cfg->buffers.high_water, tw->w->rt->cfg->buffers.low_water);
    uv_tcp_nodelay(&c->sock[GW_CLIENT].tcp, 1);
    gw_tcp_stream_init(&c->sock[GW_BACKEND], loop_of(c), &tw->w->streams, on_read, c);
    c->backend_open = true;
    uv_timer_init(loop_of(c), &c->timer);
    c->timer.data = c;
}

/* C's address is final and admitted: the wrapper, if any, then conn_go. */
static void conn_start(conn_t *c)
{
    tcp_worker_t *tw = c->tw;
    const gw_tcp_picker_t *p = &tw->picker;
    uint64_t wait_ms = 0;
    if (p->wrap != NULL) {
        gw_stream_t *wrapper = NULL;
        if (p->wrap(p->wrap_ctx, tw->w, c->l, &c->sock[GW_CLIENT].s, on_read, &wrapper, &wait_ms) !=
            0) {
            apply(c, sm_event(c, GW_EV_CONNECT_FAILED, GW_CLIENT, 0));
            return;
        }
        c->wrapper = wrapper;
    }
    if (c->wrapper != NULL && c->held != NULL) {
        /* The bytes that came after a header are the wrapper's, as if its socket had just
         * read them (a read starts at offset 0: header_data() saw to it). */
        gw_chunk_t *ch = c->held;
        c->held = NULL;
        gw_tcp_stream_t *sock = &c->sock[GW_CLIENT];
        sock->s.cb.on_read(&sock->s, ch, (ssize_t)ch->len);
        if (c->closing)
            return;
    }
    if (c->wrapper != NULL && wait_ms > 0) {
        c->wrap_wait = true;
        uv_timer_start(&c->timer, on_wrap_timeout, wait_ms, 0);
        return;
    }
    conn_go(c);
}

/* The client is admitted (and its wrapper ready): preread, or pick and connect. */
static void conn_go(conn_t *c)
{
    const gw_tcp_picker_t *p = &c->tw->picker;
    uint64_t preread_ms =
        p->preread != NULL && p->preread_ms != NULL ? p->preread_ms(p->ctx, c->l) : 0;
    if (preread_ms == 0) {
        start_connect(c);
        return;
    }
    c->prereading = true;
    uv_timer_start(&c->timer, on_preread_timeout, preread_ms, 0);
    if (c->held != NULL) { /* the bytes that came after a header: the preread's first */
        int answer = p->preread(p->ctx, c->tw->w, c->l, c->held->data, c->held->len,
                                GW_TCP_PREREAD_DATA, &c->pick);
        preread_answer(c, answer, false);
        if (!c->prereading)
            return;
    }
    if (gw_stream_read_start(stream_of(c, GW_CLIENT)) != 0)
        preread_answer(c, GW_TCP_PREREAD_REFUSE, true);
}

/* see tcp_proxy.h */
void gw_tcp_wrapper_ready(gw_stream_t *wrapper, int status)
{
    conn_t *c = wrapper->data;
    if (c->closing || !c->wrap_wait || wrapper != c->wrapper)
        return;
    c->wrap_wait = false;
    uv_timer_stop(&c->timer);
    if (status < 0) {
        apply(c, sm_event(c, GW_EV_CONNECT_FAILED, GW_CLIENT, 0));
        return;
    }
    conn_go(c);
}

/* see tcp_proxy.h */
void gw_tcp_on_connection(gw_wlistener_t *wl)
{
    tcp_worker_t *tw = wl->worker->app;
    conn_t *c = calloc(1, sizeof *c);
    if (c == NULL) { /* left unaccepted, libuv would stop watching the listener for good */
        gw_listener_pause(wl, UV_ENOMEM);
        return;
    }
    gw_stream_t *client = stream_of(c, GW_CLIENT);
    gw_tcp_stream_init(&c->sock[GW_CLIENT], &tw->w->loop, &tw->w->streams, on_read, c);
    int rc = gw_tcp_stream_accept(&c->sock[GW_CLIENT], (uv_stream_t *)&wl->tcp);
    if (rc != 0) {
        gw_warn("accept failed: %s", uv_strerror(rc));
        gw_stream_close(client, false, on_rejected_closed);
        return;
    }
    const gw_tcp_picker_t *p = &tw->picker;
    gw_listener_t *l = wl->listener;
    uint64_t header_ms = p->header != NULL ? p->header_ms(p->prefix_ctx, l) : 0;
    int len = sizeof c->peer;
    c->peer.ss_family = AF_UNSPEC;
    if ((header_ms > 0 || (p->wants_client != NULL && p->wants_client(p->ctx, tw->w, l))) &&
        gw_stream_peer(client, (struct sockaddr *)&c->peer, &len) != 0)
        c->peer.ss_family = AF_UNSPEC;
    if (header_ms == 0 && p->admit != NULL &&
        !p->admit(p->ctx, tw->w, l, (struct sockaddr *)&c->peer)) {
        reject(tw, client, l, true);
        return;
    }
    if (!gw_listener_admit(l)) {
        reject(tw, client, l, false);
        return;
    }
    conn_init(tw, c, l);
    if (header_ms > 0)
        header_start(c, header_ms);
    else
        conn_start(c);
}

/* ---- worker hooks ------------------------------------------------------------------------- */

/* see tcp_proxy.h */
int gw_tcp_worker_start(gw_worker_t *w)
{
    tcp_worker_t *tw = calloc(1, sizeof *tw);
    gw_tcp_stats_t *stats = calloc(1, sizeof *stats);
    if (tw == NULL || stats == NULL) {
        free(tw);
        free(stats);
        return GW_ENOMEM;
    }
    tw->w = w;
    tw->stats = stats;
    w->stats = stats;
    w->stats_free = free;
    const gw_tcp_picker_t *p = gw_runtime_layer(w->rt, 1); /* a later milestone's picker */
    tw->picker = p != NULL ? *p : (gw_tcp_picker_t){.pick = first_backend, .max_attempts = 1};
    w->app = tw;
    return 0;
}

/* see tcp_proxy.h */
void gw_tcp_worker_drain(gw_worker_t *w)
{
    /* L4 has no way to ask a pair to finish early: open pairs run until both sides are
     * done, or until the drain deadline forces them closed. */
    gw_debug("draining %zu pair(s)", w->nconns);
}

/* see tcp_proxy.h */
void gw_tcp_worker_listener_gone(gw_worker_t *w, gw_listener_t *l)
{
    tcp_worker_t *tw = w->app;
    for (conn_t *c = tw->conns; c != NULL; c = c->next)
        if (c->l == l)
            apply(c, sm_event(c, GW_EV_FORCE_CLOSE, GW_CLIENT, 0));
}

/* see tcp_proxy.h */
void gw_tcp_worker_force_close(gw_worker_t *w)
{
    tcp_worker_t *tw = w->app;
    /* Closing does not free until the close callbacks run, so the list stays valid while
     * we walk it. */
    for (conn_t *c = tw->conns; c != NULL; c = c->next)
        apply(c, sm_event(c, GW_EV_FORCE_CLOSE, GW_CLIENT, 0));
}

/* see tcp_proxy.h */
void gw_tcp_worker_stop(gw_worker_t *w)
{
    tcp_worker_t *tw = w->app;
    w->app = NULL;
    free(tw); /* it owns no handle: every pair is closed and freed (nconns is 0) */
}

/* see tcp_proxy.h */
const gw_tcp_stats_t *gw_tcp_worker_stats(const gw_worker_t *w)
{
    return w->stats;
}

/* see tcp_proxy.h */
void gw_tcp_count_bytes(gw_worker_t *w, uint64_t in, uint64_t out)
{
    gw_tcp_stats_t *s = w->stats;
    if (s == NULL)
        return;
    gw_counter_add(&s->bytes_in, in);
    gw_counter_add(&s->bytes_out, out);
}

const gw_app_t gw_tcp_app = {
    .worker_start = gw_tcp_worker_start,
    .on_connection = gw_tcp_on_connection,
    .worker_drain = gw_tcp_worker_drain,
    .worker_force_close = gw_tcp_worker_force_close,
    .worker_listener_gone = gw_tcp_worker_listener_gone,
    .worker_stop = gw_tcp_worker_stop,
};
