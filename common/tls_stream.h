/* tls_stream.h - a TLS connection as a stream (stream.h): BearSSL's engine between the owner's
 * plaintext and an inner stream's records.
 *
 * BearSSL does no I/O. Its engine has four windows (bearssl_ssl.h): sendrec (records to send),
 * recvrec (room for records received), sendapp (room for plaintext to encrypt) and recvapp
 * (decrypted plaintext), and br_ssl_engine_current_state says which are open. This stream
 * moves bytes between those windows, the inner stream (normally the owner's
 * gw_tcp_stream_t) and the owner, in two parts as 01's tcp_sm.c and tcp_proxy.c are split:
 *
 *  - gw_tls_next(), a pure function: from the engine's state and the stream's flags, the ONE
 *    thing to do next. Tested as a table, without an engine or a socket.
 *  - the shell (tls_stream.c) does that thing (a memcpy and an ack, an inner write, a callback)
 *    and asks again, until the answer is IDLE.
 *
 * The order of the answers is the design:
 *  1. SEND records first: the handshake, alerts, and records the owner's writes wait on. One
 *     record write on the inner stream at a time, straight from the engine's buffer (a
 *     try_write first; the rest as a queued write, and the engine's record stays put until
 *     it completes, which is what makes the engine's buffer the only output buffer).
 *  2. The handshake's outcome, once: open windows for application data mean done; a closed
 *     engine, an inner error or EOF before that mean failed.
 *  3. DELIVER decrypted bytes while the owner reads, one pool chunk at a time (a copy: the
 *     engine needs its window back for the next record). COMPLETE the owner's writes whose
 *     records were sent. FAIL queued writes when the engine is closed or failed.
 *  4. The end of reads, once: an error, UV_EOF after the peer's close_notify, or UV_EOF
 *     after the inner stream's EOF without one (the stream is then "truncated").
 *  5. ENCRYPT queued plaintext while the engine takes it, and flush it into a record.
 *  6. Shutdown: when every queued write is complete, close_notify (NOTIFY); when that record
 *     is sent, the inner stream's shutdown.
 *  7. FEED held records into the engine; read the inner stream only when the engine has room
 *     (recvrec open), nothing is held, and the handshake runs or the owner reads. That is the
 *     backpressure: an owner that stops reading stops us pulling records, and what we hold is
 *     the engine's buffer plus at most one inner chunk.
 *
 * Contracts beyond stream.h's:
 *  - The caller owns the engine (a br_ssl_server_context's or br_ssl_client_context's `eng`),
 *    has set its buffers (BR_SSL_BUFSIZE_BIDI, or two with br_ssl_engine_set_buffers_bidi: a
 *    shared "mono" buffer deadlocks as soon as the peer sends while we do, e.g. a response
 *    that starts before its request ended) and reset it; the engine and buffers outlive the
 *    stream's close callback. The TLS stream allocates nothing, except a copy of a write's
 *    piece array beyond GW_STREAM_BUFS_INLINE pieces, as uv_write does.
 *  - It takes over INNER: INNER's read callback and data become the TLS stream's, and closing
 *    the TLS stream closes INNER (with a reset when asked). Never use INNER directly again.
 *  - A TLS error (BearSSL failed the connection: a bad record, a plaintext request on a TLS
 *    port, a fatal alert) is UV_EPROTO on the owner's reads and on its pending writes;
 *    gw_tls_stream_last_error() then gives BearSSL's code. Errors of the inner stream
 *    (UV_ECONNRESET...) pass through as they are.
 *  - Calls the owner makes never call it back before they return (libuv's rule, which the
 *    owners rely on): what becomes ready during one is handed over at the next loop turn
 *    (gw__stream_defer).
 *  - Half-close is TLS 1.2's: the peer's close_notify ends our reads (UV_EOF) and BearSSL
 *    answers with its own at once, after which writes fail with UV_EPIPE; our shutdown sends
 *    close_notify, after which BearSSL drops application data still arriving. A TCP FIN
 *    without close_notify ends reads only (UV_EOF, truncated), and writes go on. See NOTES.md
 *    "The TLS stream" for what that means for 01's half-close.
 *
 * One loop thread owns a stream; nothing here is thread-safe. */
#ifndef GW_TLS_STREAM_H
#define GW_TLS_STREAM_H

#include <bearssl.h>
#include <stdbool.h>
#include <stdint.h>

#include "stream.h"

typedef struct gw_tls_stream_s gw_tls_stream_t;

/* The handshake finished: STATUS 0, or UV_EPROTO (BearSSL failed it: see
 * gw_tls_stream_last_error), UV_EOF (the peer left first), or the inner stream's error. */
typedef void (*gw_tls_handshake_cb)(gw_tls_stream_t *ts, int status);

struct gw_tls_stream_s {
    gw_stream_t s; /* first: a gw_tls_stream_t * is a gw_stream_t * */
    gw_stream_t *inner;
    br_ssl_engine_context *eng;
    gw_tls_handshake_cb on_handshake;
    gw_chunk_t *in;                  /* records read from INNER, not yet in the engine */
    gw_stream_write_t *wq, *wq_tail; /* the owner's writes not yet complete, oldest first */
    gw_stream_write_t *feeding;      /* the first of them not wholly in the engine, or NULL */
    gw_stream_shutdown_t *shut_req;  /* the owner's shutdown, until it completes */
    uint64_t fed;                    /* plaintext bytes given to the engine, ever */
    uint64_t sent;                   /* ...of which the records were written */
    uint64_t completed;              /* ...of which the owner was told (or took by try_write) */
    size_t wlen;                     /* bytes of the engine's record in `wreq` */
    int err;                         /* the inner stream's error, when GW_TLS_F_ERR */
    uint32_t flags;                  /* GW_TLS_F_*: the stream's own state */
    gw_stream_write_t wreq;          /* our record write on INNER */
    gw_stream_shutdown_t ishut;      /* INNER's shutdown */
};

/* Sets up TS over INNER (set up, connected or accepted, not reading) with the engine ENG
 * (reset, buffers set): takes over INNER's callbacks and starts the handshake (a client's
 * hello is written, a server reads). Reads go to ON_READ, DATA is the owner's. 0, or a UV
 * error and TS is not set up (INNER is then still the caller's to close). */
int gw_tls_stream_init(gw_tls_stream_t *ts, gw_stream_t *inner, br_ssl_engine_context *eng,
                       gw_stream_env_t *env, gw_stream_read_cb on_read, void *data);

/* CB (or NULL) runs once, when the handshake completes or fails. Set it before the loop runs. */
void gw_tls_stream_on_handshake(gw_tls_stream_t *ts, gw_tls_handshake_cb cb);

/* Whether the handshake completed. */
bool gw_tls_stream_ready(const gw_tls_stream_t *ts);

/* BearSSL's error code for TS's engine (BR_ERR_*, BR_ERR_RECV_FATAL_ALERT + alert, or
 * BR_ERR_SEND_FATAL_ALERT + alert), 0 if none. */
int gw_tls_stream_last_error(const gw_tls_stream_t *ts);

/* Whether the owner's UV_EOF came from the inner stream's EOF without the peer's close_notify
 * (a truncation: every message whose end is the connection's end is then suspect, e.g. an
 * HTTP body delimited by the close). */
bool gw_tls_stream_truncated(const gw_tls_stream_t *ts);

/* A short, stable name for a BearSSL error code, for metrics labels and logs: "ok",
 * "unsupported_version", "bad_mac", "x509_expired", ..., and for alerts
 * "recv_alert_<name>" / "sent_alert_<name>" ("recv_alert" / "sent_alert" for an alert
 * number TLS 1.2 does not define), "unknown" for anything else. Never NULL. */
const char *gw_tls_error_name(int br_err);

/* ---- the pure part: what to do next --------------------------------------------------- */

/* The stream's own state (gw_tls_stream_t.flags) ... */
#define GW_TLS_F_HS 0x1u         /* the handshake's outcome was reported */
#define GW_TLS_F_IN_READING 0x2u /* INNER is reading */
#define GW_TLS_F_IN_EOF 0x4u     /* INNER's EOF arrived */
#define GW_TLS_F_ERR 0x8u        /* INNER failed (gw_tls_stream_t.err) */
#define GW_TLS_F_WRITING 0x10u   /* our record write on INNER is in flight */
#define GW_TLS_F_SHUT 0x20u      /* the owner asked for a shutdown */
#define GW_TLS_F_NOTIFY 0x40u    /* close_notify was asked of the engine */
#define GW_TLS_F_ISHUT 0x80u     /* INNER's shutdown was asked */
#define GW_TLS_F_ENDED 0x100u    /* the owner heard the end of reads (EOF or an error) */
#define GW_TLS_F_TRUNC 0x200u    /* ... and it was an EOF without close_notify */
#define GW_TLS_F_PUMPING 0x400u  /* the shell is running the pump (re-entry guard) */
#define GW_TLS_F_HS_OK 0x800u    /* the handshake completed */
/* ... and what the shell sees when it asks (never stored) */
#define GW_TLS_V_READS 0x10000u     /* the owner wants reads and is not starved */
#define GW_TLS_V_INPUT 0x20000u     /* records read from INNER are held */
#define GW_TLS_V_PLAIN 0x40000u     /* queued plaintext not yet in the engine */
#define GW_TLS_V_QUEUED 0x80000u    /* writes not complete (so no close_notify yet) */
#define GW_TLS_V_DONE 0x100000u     /* the oldest write's records were all sent */
#define GW_TLS_V_SHUT_REQ 0x200000u /* the owner's shutdown waits for its callback */
#define GW_TLS_V_ENG_ERR 0x400000u  /* the engine failed (closed with an error) */
#define GW_TLS_V_CLOSING 0x800000u  /* the owner closed the stream */
#define GW_TLS_V_QUIET 0x1000000u   /* the owner is calling: only what calls nobody back */

typedef enum {
    GW_TLS_IDLE = 0,   /* nothing until an event */
    GW_TLS_SEND,       /* write the engine's records to INNER */
    GW_TLS_HS_OK,      /* tell the owner the handshake completed */
    GW_TLS_HS_FAIL,    /* ... or failed */
    GW_TLS_DELIVER,    /* hand decrypted bytes to the owner */
    GW_TLS_COMPLETE,   /* complete the oldest write */
    GW_TLS_FAIL_WRITE, /* fail the oldest write (or the shutdown when none is left) */
    GW_TLS_ERROR,      /* the owner's reads end with an error */
    GW_TLS_EOF,        /* the owner's reads end with UV_EOF */
    GW_TLS_ENCRYPT,    /* give queued plaintext to the engine, flush it into records */
    GW_TLS_NOTIFY,     /* br_ssl_engine_close: close_notify */
    GW_TLS_SHUT_INNER, /* shut INNER down (our close_notify is out) */
    GW_TLS_FEED,       /* give held records to the engine */
    GW_TLS_READ_INNER, /* start reading INNER */
    GW_TLS_STOP_INNER, /* stop reading INNER */
} gw_tls_act_t;

/* The next thing to do, from ENG_STATE (br_ssl_engine_current_state) and FLAGS (GW_TLS_F_*
 * and GW_TLS_V_*). Pure: same answer for the same arguments. */
gw_tls_act_t gw_tls_next(unsigned eng_state, uint32_t flags);

/* Whether ACT calls the owner back (never an answer with GW_TLS_V_QUIET). */
bool gw_tls_act_calls_owner(gw_tls_act_t act);

const char *gw_tls_act_name(gw_tls_act_t act);

#endif
