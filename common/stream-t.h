/* stream-t.h - the request types of the stream interface (stream.h), apart so that buf.h can
 * embed a write request in every chunk without buf.h and stream.h including each other. */
#ifndef GW_STREAM_T_H
#define GW_STREAM_T_H

#include <uv.h>

typedef struct gw_stream_s gw_stream_t;
typedef struct gw_stream_write_s gw_stream_write_t;
typedef struct gw_stream_shutdown_s gw_stream_shutdown_t;

/* A queued write finished: STATUS 0, or a UV error (UV_ECANCELED when the stream closed
 * first). REQ->stream is the stream it was queued on. */
typedef void (*gw_stream_write_cb)(gw_stream_write_t *req, int status);
/* A shutdown finished (the FIN, or for TLS close_notify then the FIN, is sent). */
typedef void (*gw_stream_shutdown_cb)(gw_stream_shutdown_t *req, int status);

#define GW_STREAM_BUFS_INLINE 8 /* pieces a queueing stream keeps without an allocation */

/* One write, memory the caller provides (a chunk's own `req`, the writer's requests). It
 * must stay valid until its callback ran. The union is the implementation's: */
struct gw_stream_write_s {
    union {
        uv_write_t uv; /* the plaintext stream hands it to uv_write */
        struct {       /* a stream that queues writes itself (TLS, the test fake) */
            gw_stream_write_t *next;
            uv_buf_t *bufs; /* bufsml, or a malloc'd copy of more pieces */
            unsigned nbufs;
            size_t done; /* bytes of bufs already taken */
            uv_buf_t bufsml[GW_STREAM_BUFS_INLINE];
        } q;
    } u;
    gw_stream_t *stream;
    gw_stream_write_cb cb;
};

/* One shutdown, memory the caller provides, valid until its callback ran. */
struct gw_stream_shutdown_s {
    uv_shutdown_t uv; /* the plaintext stream's (a TLS stream uses its own for its socket) */
    gw_stream_t *stream;
    gw_stream_shutdown_cb cb;
};

#endif
