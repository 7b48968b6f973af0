/* stream.h - the byte stream under every protocol engine: read start/stop, write with a
 * completion (and a try-write for the fast path), shutdown, close (graceful or reset), and
 * the peer's address, behind a small ops table.
 *
 * Why. 01's forwarder and the HTTP engine used to call libuv's stream functions on their
 * uv_tcp_t directly, so a TLS connection or a WebSocket tunnel would have meant a second
 * copy of each engine. With this seam an engine talks to a gw_stream_t and does not know
 * what carries the bytes: gw_tcp_stream_t (below) over a plain socket, a TLS stream (BearSSL:
 * the engine does no I/O, it exchanges records through buffers; the TLS stream moves them
 * between the engine and an inner gw_tcp_stream_t) or a test's fake (testsupport/fakestream.h).
 *
 * What an implementation promises, so that one built on records fits too:
 *  - Reads arrive in pool chunks (buf.h), already decrypted for TLS: on_read(s, ch, n) with
 *    n > 0 gives CH holding n bytes (ch->len = n, ch->off = 0) and one reference in
 *    ch->owner (gw_chunk_unref gives it back; or the owner may use the chunk whole and
 *    gw_chunk_put it). n < 0 is UV_EOF or an error, with CH NULL. The owner never sees 0
 *    (nothing read) nor UV_ENOBUFS: when the buffer pool is empty, the stream stops reading,
 *    waits on its environment's starve list, and resumes by itself when the retry timer
 *    fires (one list and one timer per worker, not one per engine).
 *  - Writes take plaintext: gw_stream_write queues it and completes it once it is written
 *    (for TLS: once the records that carry it are written), in the order queued.
 *    gw_stream_try_write is the fast path; it never jumps a queued write (UV_EAGAIN while
 *    one is pending), and a stream that cannot write now (a TLS handshake in progress)
 *    simply says UV_EAGAIN. Before the first byte moves, a stream may need exchanges of its
 *    own (a TLS handshake): it runs them itself, reading and writing its inner stream
 *    whatever the owner asked; the owner's writes wait and its reads come after.
 *  - gw_stream_shutdown ends the sending direction after what was queued: a FIN, or for
 *    TLS a close_notify then a FIN.
 *  - gw_stream_close ends everything: queued writes and shutdowns complete first with
 *    UV_ECANCELED, then the close callback runs, after which the stream's memory may go.
 *    RESET asks for an abortive close (RST) instead of a graceful one.
 *
 * One loop thread owns a stream; nothing here is thread-safe. */
#ifndef GW_STREAM_H
#define GW_STREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <uv.h>

#include "buf.h"
#include "stream-t.h"

typedef struct gw_stream_ops_s gw_stream_ops_t;
typedef struct gw_stream_env_s gw_stream_env_t;

/* The owner's read callback: see above (N > 0 with a chunk, or UV_EOF / an error). */
typedef void (*gw_stream_read_cb)(gw_stream_t *s, gw_chunk_t *ch, ssize_t n);
/* The stream is closed: its memory may be freed now. */
typedef void (*gw_stream_close_cb)(gw_stream_t *s);

/* What an implementation provides. The public functions below check the common state
 * (reading, starved, closing) and then call these; an implementation never sees a read
 * start on a starved or closing stream, nor a second close. */
struct gw_stream_ops_s {
    int (*read_start)(gw_stream_t *s);
    int (*read_stop)(gw_stream_t *s);
    int (*try_write)(gw_stream_t *s, const uv_buf_t *bufs, unsigned n);
    int (*write)(gw_stream_write_t *req, gw_stream_t *s, const uv_buf_t *bufs, unsigned n);
    int (*shutdown)(gw_stream_shutdown_t *req, gw_stream_t *s);
    void (*close)(gw_stream_t *s, bool reset); /* then gw__stream_closed(s) */
    int (*peer)(const gw_stream_t *s, struct sockaddr *sa, int *len);
    /* Optional: called by the environment's timer, from the loop (so it may call the owner
     * back), for a stream that starved (and is still reading) or asked gw__stream_defer.
     * NULL: read_start is called instead, and only for a starved stream still reading. */
    int (*resume)(gw_stream_t *s);
};

/* Per worker: where streams take read chunks, and the streams waiting for one. */
struct gw_stream_env_s {
    gw_bufcache_t *cache;
    gw_stream_t *starved; /* streams whose read found the pool empty */
    uv_timer_t timer;     /* retries them all, GW_STREAM_STARVE_MS after the first */
    uint64_t retry_ms;
};

#define GW_STREAM_STARVE_MS 20 /* pause before retrying a read that found the pool empty */

/* The common part, first in every implementation's struct. Members are the stream layer's
 * and the implementation's; the owner reads `data` and nothing else. 48 bytes on x86_64: an
 * idle HTTP connection is one of these plus a socket, so every byte here counts. */
struct gw_stream_s {
    const gw_stream_ops_t *ops;
    gw_stream_env_t *env;
    void *data; /* the owner's */
    union {
        gw_stream_read_cb on_read;   /* until the close ... */
        gw_stream_close_cb on_close; /* ... which delivers no read any more */
    } cb;
    gw_stream_t *starved_next; /* env->starved */
    uint8_t flags;             /* GW_STREAM_* */
};

#define GW_STREAM_READING 1u /* the owner wants reads (they may wait for a chunk) */
#define GW_STREAM_STARVED 2u /* in env->starved: the implementation is not reading */
#define GW_STREAM_CLOSING 4u
#define GW_STREAM_DEFERRED 8u /* in env->starved by gw__stream_defer: resume at the next turn */

/* Sets up ENV on LOOP, taking chunks from CACHE. 0 or a UV error. */
int gw_stream_env_init(gw_stream_env_t *env, uv_loop_t *loop, gw_bufcache_t *cache);
/* Closes ENV's timer; ENV must stay valid until the loop ran the close (the worker's loop
 * end). Every stream of ENV must be closing or closed. */
void gw_stream_env_close(gw_stream_env_t *env);

/* For implementations: sets up the common part. */
void gw__stream_init(gw_stream_t *s, const gw_stream_ops_t *ops, gw_stream_env_t *env,
                     gw_stream_read_cb on_read, void *data);
/* For implementations: a chunk for a read with the reader's reference (owner = 1), or NULL
 * when the pool is empty: then stop reading and call gw__stream_starve. */
gw_chunk_t *gw__stream_chunk(gw_stream_t *s);
/* For implementations: the read is stopped for want of a chunk; retry later. */
void gw__stream_starve(gw_stream_t *s);
/* For implementations: call ops->resume at the next loop turn (the environment's timer, at
 * 0 ms). For a stream that has something for its owner (bytes it holds, a completion) while
 * in a call the owner made: libuv never calls back from inside a call, and owners rely on
 * it. The stream shares the starve list (one link); a stream closed first leaves it. */
void gw__stream_defer(gw_stream_t *s);
/* For implementations: the close finished; runs the owner's close callback. */
void gw__stream_closed(gw_stream_t *s);

/* Starts or stops delivering reads to the owner. Idempotent. 0 or a UV error (after which
 * the stream is not reading). Starting a starved stream only records the wish. */
int gw_stream_read_start(gw_stream_t *s);
int gw_stream_read_stop(gw_stream_t *s);

/* Whether S waits for a read chunk (for an owner that would rather not keep such a stream:
 * a pooled upstream connection). */
static inline bool gw_stream_starved(const gw_stream_t *s)
{
    return (s->flags & GW_STREAM_STARVED) != 0;
}

/* Writes what it can of BUFS[0..N) now: bytes taken (> 0), UV_EAGAIN, or another error.
 * Never jumps a queued write. The bytes are not needed after it returns. */
int gw_stream_try_write(gw_stream_t *s, const uv_buf_t *bufs, unsigned n);

/* Queues BUFS[0..N) (the array may go after the call; the bytes must stay until CB) behind
 * earlier writes; CB runs once when written or failed. 0, or a UV error and CB never runs. */
int gw_stream_write(gw_stream_write_t *req, gw_stream_t *s, const uv_buf_t *bufs, unsigned n,
                    gw_stream_write_cb cb);

/* Ends the sending direction once the queued writes are out. 0, or a UV error and CB never
 * runs. */
int gw_stream_shutdown(gw_stream_shutdown_t *req, gw_stream_t *s, gw_stream_shutdown_cb cb);

/* Closes S (once: later calls do nothing): RST when RESET, else gracefully. CB (may be
 * NULL) runs when S's memory may be freed. */
void gw_stream_close(gw_stream_t *s, bool reset, gw_stream_close_cb cb);

static inline bool gw_stream_closing(const gw_stream_t *s)
{
    return (s->flags & GW_STREAM_CLOSING) != 0;
}

/* The peer's address, as getpeername: 0 or a UV error. */
int gw_stream_peer(const gw_stream_t *s, struct sockaddr *sa, int *len);

/* ---- the plaintext implementation over a TCP socket ------------------------------------- */

typedef struct gw_tcp_stream_s {
    gw_stream_t s; /* first: a gw_tcp_stream_t * is a gw_stream_t * */
    uv_tcp_t tcp;  /* the socket: an engine may connect it (uv_tcp_connect) and set options */
} gw_tcp_stream_t;

/* Sets up TS on LOOP (uv_tcp_init): reads go to ON_READ, DATA is the owner's. Once this
 * succeeded, TS must be closed with gw_stream_close. 0 or a UV error. */
int gw_tcp_stream_init(gw_tcp_stream_t *ts, uv_loop_t *loop, gw_stream_env_t *env,
                       gw_stream_read_cb on_read, void *data);

/* Accepts a connection waiting on SERVER into TS (set up, not yet connected). 0 or an error. */
int gw_tcp_stream_accept(gw_tcp_stream_t *ts, uv_stream_t *server);

/* Closes a TCP handle with a reset (RST) instead of a FIN, even after uv_shutdown: sets
 * SO_LINGER {1, 0} on the socket and closes it (libuv 1.44's uv_tcp_close_reset refuses
 * a handle that was shut down: see DESIGN.md). For handles that are not a stream's. */
void gw_tcp_close_reset(uv_tcp_t *tcp, uv_close_cb cb);

#endif
