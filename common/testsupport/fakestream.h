/* fakestream.h - a stream (common/stream.h) with no socket behind it, for unit tests: what is
 * written lands in a buffer, the test decides how much a try_write takes and when queued
 * writes complete, and it hands the owner reads, EOF and errors when it likes. Everything
 * runs synchronously on the test's thread; no loop is needed (but the starve retry, which
 * uses the environment's timer). */
#ifndef GW_FAKESTREAM_H
#define GW_FAKESTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "stream.h"

typedef struct gw_fakestream_s {
    gw_stream_t s; /* first: pass &f->s (or the fake itself cast) wherever a stream is wanted */
    char *out;     /* bytes "sent", in order (malloc'd, grows) */
    size_t nout, cap;
    size_t accept;     /* bytes try_write takes before UV_EAGAIN (SIZE_MAX: all) */
    int fail;          /* a UV error every write, try_write and shutdown returns, or 0 */
    unsigned syscalls; /* try_write and write calls */
    unsigned iov_max;  /* most pieces in one call */
    gw_stream_write_t *head, *tail; /* queued writes, oldest first */
    unsigned npending;
    bool reading; /* the implementation's reading state */
    unsigned read_starts, read_stops;
    gw_stream_shutdown_t *shut_req; /* a pending shutdown */
    bool shut;                      /* a shutdown completed */
    bool closing, reset;            /* gw_stream_close was called (RESET: with a reset) */
    bool closed;                    /* ...and gw_fakestream_finish_close ran */
} gw_fakestream_t;

/* Sets up F over ENV (only its chunk cache and starve timer are used: ENV may be a stack
 * variable set up with gw_stream_env_init on a test loop). try_write takes everything. */
void gw_fakestream_init(gw_fakestream_t *f, gw_stream_env_t *env, gw_stream_read_cb on_read,
                        void *data);

/* Frees F's buffer. F must have no queued write left. */
void gw_fakestream_free(gw_fakestream_t *f);

/* The I-th queued write (0: the oldest), or NULL. */
gw_stream_write_t *gw_fakestream_pending(const gw_fakestream_t *f, unsigned i);

/* The peer drains: every queued write completes, in order, with STATUS; with 0 its bytes
 * are "sent" first. A pending shutdown then completes too. */
void gw_fakestream_complete(gw_fakestream_t *f, int status);

/* N bytes of P arrive: when F is reading they are delivered in a chunk of ENV's cache (N at
 * most one chunk); when the pool is empty the stream starves as a socket's would. Returns
 * true when delivered. */
bool gw_fakestream_deliver(gw_fakestream_t *f, const char *p, size_t n);

/* The peer's EOF (UV_EOF) or an error arrives (only when F is reading). */
void gw_fakestream_end(gw_fakestream_t *f, int status);

/* Completes a close the owner asked for, as the loop would later: queued writes and a
 * pending shutdown complete with UV_ECANCELED, then the owner's close callback runs. */
void gw_fakestream_finish_close(gw_fakestream_t *f);

#endif
