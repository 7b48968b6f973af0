/* stream.c - see stream.h.
 *
 * Two parts: the common layer (the reading/starved/closing state, the starve list and its
 * timer, which used to exist once in tcp_proxy.c and once in hproxy.c), and the plaintext
 * implementation over uv_tcp_t, which is a thin shell over libuv's stream calls. Neither
 * allocates or copies on the data path: a read lands in a pool chunk that the owner gets,
 * a write is the caller's request handed to uv_write. */
#include "stream.h"

#include <stddef.h>
#include <string.h>

#define CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* ---- the common layer ------------------------------------------------------------------ */

/* see stream.h */
int gw_stream_env_init(gw_stream_env_t *env, uv_loop_t *loop, gw_bufcache_t *cache)
{
    memset(env, 0, sizeof *env);
    env->cache = cache;
    env->retry_ms = GW_STREAM_STARVE_MS;
    int rc = uv_timer_init(loop, &env->timer);
    if (rc == 0)
        env->timer.data = env;
    return rc;
}

/* see stream.h */
void gw_stream_env_close(gw_stream_env_t *env)
{
    if (!uv_is_closing((uv_handle_t *)&env->timer))
        uv_close((uv_handle_t *)&env->timer, NULL);
}

/* see stream.h */
void gw__stream_init(gw_stream_t *s, const gw_stream_ops_t *ops, gw_stream_env_t *env,
                     gw_stream_read_cb on_read, void *data)
{
    memset(s, 0, sizeof *s);
    s->ops = ops;
    s->env = env;
    s->data = data;
    s->cb.on_read = on_read;
}

/* see stream.h */
gw_chunk_t *gw__stream_chunk(gw_stream_t *s)
{
    gw_chunk_t *ch = gw_chunk_get(s->env->cache);
    if (ch != NULL)
        ch->owner = (void *)(uintptr_t)1; /* the reader's reference (buf.h) */
    return ch;
}

/* Resumes every read that found the pool empty (those that still find it empty come back
 * to the list through gw__stream_starve) and every stream that deferred work. */
static void on_starve_timer(uv_timer_t *t)
{
    gw_stream_env_t *env = t->data;
    gw_stream_t *list = env->starved;
    env->starved = NULL;
    while (list != NULL) {
        gw_stream_t *s = list;
        list = s->starved_next;
        s->starved_next = NULL;
        bool deferred = (s->flags & GW_STREAM_DEFERRED) != 0;
        s->flags &= (uint8_t) ~(GW_STREAM_STARVED | GW_STREAM_DEFERRED);
        if (s->flags & GW_STREAM_CLOSING)
            continue;
        int rc = 0;
        if (s->ops->resume != NULL && (deferred || (s->flags & GW_STREAM_READING)))
            rc = s->ops->resume(s);
        else if (s->flags & GW_STREAM_READING)
            rc = s->ops->read_start(s);
        if (rc != 0 && (s->flags & GW_STREAM_READING)) { /* the owner hears a read error */
            s->flags &= (uint8_t)~GW_STREAM_READING;
            s->cb.on_read(s, NULL, rc);
        }
    }
}

/* see stream.h */
void gw__stream_starve(gw_stream_t *s)
{
    gw_stream_env_t *env = s->env;
    if (!(s->flags & (GW_STREAM_STARVED | GW_STREAM_DEFERRED))) {
        s->starved_next = env->starved;
        env->starved = s;
    }
    s->flags |= GW_STREAM_STARVED;
    if (!uv_is_active((uv_handle_t *)&env->timer))
        uv_timer_start(&env->timer, on_starve_timer, env->retry_ms, 0);
}

/* see stream.h. Restarting the timer at 0 also retries the starved streams early: each
 * that still finds the pool empty starves again, once; cheaper than a second list. */
void gw__stream_defer(gw_stream_t *s)
{
    gw_stream_env_t *env = s->env;
    if (!(s->flags & (GW_STREAM_STARVED | GW_STREAM_DEFERRED))) {
        s->starved_next = env->starved;
        env->starved = s;
    }
    s->flags |= GW_STREAM_DEFERRED;
    uv_timer_start(&env->timer, on_starve_timer, 0, 0);
}

static void unstarve(gw_stream_t *s)
{
    for (gw_stream_t **p = &s->env->starved; *p != NULL; p = &(*p)->starved_next)
        if (*p == s) {
            *p = s->starved_next;
            break;
        }
    s->starved_next = NULL;
    s->flags &= (uint8_t) ~(GW_STREAM_STARVED | GW_STREAM_DEFERRED);
}

/* see stream.h */
void gw__stream_closed(gw_stream_t *s)
{
    if (s->cb.on_close != NULL)
        s->cb.on_close(s);
}

/* see stream.h */
int gw_stream_read_start(gw_stream_t *s)
{
    if (s->flags & GW_STREAM_CLOSING)
        return UV_EINVAL;
    if (s->flags & GW_STREAM_READING)
        return 0;
    s->flags |= GW_STREAM_READING;
    if (s->flags & GW_STREAM_STARVED)
        return 0; /* the starve timer starts it when a chunk may be free */
    int rc = s->ops->read_start(s);
    if (rc != 0)
        s->flags &= (uint8_t)~GW_STREAM_READING;
    return rc;
}

/* see stream.h */
int gw_stream_read_stop(gw_stream_t *s)
{
    if (!(s->flags & GW_STREAM_READING) || (s->flags & GW_STREAM_CLOSING))
        return 0;
    s->flags &= (uint8_t)~GW_STREAM_READING;
    if (s->flags & GW_STREAM_STARVED)
        return 0; /* not reading anyway: the timer will see it is no longer wanted */
    return s->ops->read_stop(s);
}

/* see stream.h */
int gw_stream_try_write(gw_stream_t *s, const uv_buf_t *bufs, unsigned n)
{
    return s->ops->try_write(s, bufs, n);
}

/* see stream.h */
int gw_stream_write(gw_stream_write_t *req, gw_stream_t *s, const uv_buf_t *bufs, unsigned n,
                    gw_stream_write_cb cb)
{
    req->stream = s;
    req->cb = cb;
    return s->ops->write(req, s, bufs, n);
}

/* see stream.h */
int gw_stream_shutdown(gw_stream_shutdown_t *req, gw_stream_t *s, gw_stream_shutdown_cb cb)
{
    req->stream = s;
    req->cb = cb;
    return s->ops->shutdown(req, s);
}

/* see stream.h */
void gw_stream_close(gw_stream_t *s, bool reset, gw_stream_close_cb cb)
{
    if (s->flags & GW_STREAM_CLOSING)
        return;
    if (s->flags & (GW_STREAM_STARVED | GW_STREAM_DEFERRED))
        unstarve(s);
    s->flags = GW_STREAM_CLOSING;
    s->cb.on_close = cb; /* no read is delivered from now on */
    s->ops->close(s, reset);
}

/* see stream.h */
int gw_stream_peer(const gw_stream_t *s, struct sockaddr *sa, int *len)
{
    return s->ops->peer(s, sa, len);
}

/* ---- the plaintext stream over uv_tcp_t ------------------------------------------------------ */

static gw_tcp_stream_t *tcp_stream_of(const void *handle)
{
    return CONTAINER(handle, gw_tcp_stream_t, tcp);
}

/* A chunk is taken only when the socket is readable, and the owner gives it back as soon as
 * its bytes are used: an idle connection holds no buffer at all. */
static void on_tcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    gw_tcp_stream_t *ts = tcp_stream_of(h);
    gw_chunk_t *ch = gw__stream_chunk(&ts->s);
    *buf = ch != NULL ? uv_buf_init(ch->data, (unsigned)gw_chunk_size(ts->s.env->cache))
                      : uv_buf_init(NULL, 0); /* libuv turns this into UV_ENOBUFS */
}

static void on_tcp_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    gw_tcp_stream_t *ts = tcp_stream_of(st);
    gw_chunk_t *ch = buf->base != NULL ? CONTAINER(buf->base, gw_chunk_t, data) : NULL;
    if (nread > 0) {
        ch->len = (uint32_t)nread;
        ch->off = 0;
        ts->s.cb.on_read(&ts->s, ch, nread);
        return;
    }
    gw_chunk_put(ts->s.env->cache, ch);
    if (nread == 0) /* EAGAIN: nothing this time */
        return;
    if (nread == UV_ENOBUFS) { /* the pool's cap was reached: wait, do not grow */
        uv_read_stop(st);
        gw__stream_starve(&ts->s);
        return;
    }
    ts->s.cb.on_read(&ts->s, NULL, nread);
}

static int tcp_read_start(gw_stream_t *s)
{
    return uv_read_start((uv_stream_t *)&((gw_tcp_stream_t *)s)->tcp, on_tcp_alloc, on_tcp_read);
}

static int tcp_read_stop(gw_stream_t *s)
{
    return uv_read_stop((uv_stream_t *)&((gw_tcp_stream_t *)s)->tcp);
}

static int tcp_try_write(gw_stream_t *s, const uv_buf_t *bufs, unsigned n)
{
    uv_stream_t *st = (uv_stream_t *)&((gw_tcp_stream_t *)s)->tcp;
    if (uv_stream_get_write_queue_size(st) != 0)
        return UV_EAGAIN; /* order: never jump a queued write */
    return uv_try_write(st, bufs, n);
}

static void on_tcp_written(uv_write_t *w, int status)
{
    gw_stream_write_t *req = CONTAINER(w, gw_stream_write_t, u.uv);
    req->cb(req, status);
}

static int tcp_write(gw_stream_write_t *req, gw_stream_t *s, const uv_buf_t *bufs, unsigned n)
{
    return uv_write(&req->u.uv, (uv_stream_t *)&((gw_tcp_stream_t *)s)->tcp, bufs, n,
                    on_tcp_written);
}

static void on_tcp_shutdown(uv_shutdown_t *u, int status)
{
    gw_stream_shutdown_t *req = CONTAINER(u, gw_stream_shutdown_t, uv);
    req->cb(req, status);
}

static int tcp_shutdown(gw_stream_shutdown_t *req, gw_stream_t *s)
{
    return uv_shutdown(&req->uv, (uv_stream_t *)&((gw_tcp_stream_t *)s)->tcp, on_tcp_shutdown);
}

static void on_tcp_closed(uv_handle_t *h)
{
    gw__stream_closed(&tcp_stream_of(h)->s);
}

/* see stream.h */
void gw_tcp_close_reset(uv_tcp_t *tcp, uv_close_cb cb)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)tcp, &fd) == 0) {
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    uv_close((uv_handle_t *)tcp, cb);
}

static void tcp_close(gw_stream_t *s, bool reset)
{
    uv_tcp_t *tcp = &((gw_tcp_stream_t *)s)->tcp;
    if (reset)
        gw_tcp_close_reset(tcp, on_tcp_closed);
    else
        uv_close((uv_handle_t *)tcp, on_tcp_closed);
}

static int tcp_peer(const gw_stream_t *s, struct sockaddr *sa, int *len)
{
    return uv_tcp_getpeername(&((const gw_tcp_stream_t *)s)->tcp, sa, len);
}

static const gw_stream_ops_t tcp_ops = {
    .read_start = tcp_read_start,
    .read_stop = tcp_read_stop,
    .try_write = tcp_try_write,
    .write = tcp_write,
    .shutdown = tcp_shutdown,
    .close = tcp_close,
    .peer = tcp_peer,
};

/* see stream.h */
int gw_tcp_stream_init(gw_tcp_stream_t *ts, uv_loop_t *loop, gw_stream_env_t *env,
                       gw_stream_read_cb on_read, void *data)
{
    gw__stream_init(&ts->s, &tcp_ops, env, on_read, data);
    return uv_tcp_init(loop, &ts->tcp);
}

/* see stream.h */
int gw_tcp_stream_accept(gw_tcp_stream_t *ts, uv_stream_t *server)
{
    return uv_accept(server, (uv_stream_t *)&ts->tcp);
}
