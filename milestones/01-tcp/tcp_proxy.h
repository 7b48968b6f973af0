/* tcp_proxy.h - the L4 proxy: accepts on tcp listeners, connects to a backend, and moves
 * bytes both ways under the rules of tcp_sm.h. Plugs into the runtime as a gw_app_t. */
#ifndef GW_TCP_PROXY_H
#define GW_TCP_PROXY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "metrics.h"
#include "runtime.h"
#include "stream.h"

/* What a picker keeps per connection: 01 stores it in the pair and hands it back, it never
 * looks inside. On a retry it still holds what the previous attempt left there. */
typedef struct gw_tcp_pick_s {
    void *backend;  /* the picker's choice for the current attempt */
    void *ref;      /* anything the picker holds for the whole connection (a reference) */
    unsigned flags; /* bits 0-7: milestone 02's; 8-15: 03's; the rest: later layers' */
    /* Set by 01 when the current connect attempt began; 0 when the attempt made no
     * connection (04 reusing a pooled one): then there is no connect time to record. */
    uint64_t attempt_started_ns;
    uint64_t tried; /* the picker's: e.g. a bit per backend already tried (02) */
    /* What the picker's preread hook decided, for its pick (04's TLS passthrough: the
     * upstream chosen by SNI); 01 never reads it. 0 until a preread hook sets it. */
    uint32_t route;
} gw_tcp_pick_t;

/* Why the preread hook is called (see gw_tcp_picker_t.preread). */
typedef enum {
    GW_TCP_PREREAD_DATA,    /* more bytes arrived */
    GW_TCP_PREREAD_EOF,     /* the client sent FIN: nothing more will come */
    GW_TCP_PREREAD_TIMEOUT, /* the listener's preread time ran out */
    GW_TCP_PREREAD_FULL,    /* one chunk is full: nothing more is kept */
} gw_tcp_preread_event_t;

#define GW_TCP_PREREAD_MORE 0      /* preread's answers: read more (after DATA only) ... */
#define GW_TCP_PREREAD_PICK 1      /* ... enough: pick, connect, send the bytes read first */
#define GW_TCP_PREREAD_REFUSE (-1) /* ... close the client (the hook counts why) */

/* How a later milestone chooses backends without 01 knowing about balancers (02 supplies
 * one with its balancers, health state and connection counts). */
typedef struct gw_tcp_picker_s {
    /* Returns the backend address for connect attempt ATTEMPT (from 0) of a connection from
     * CLIENT on listener L, or NULL when no backend is usable. Runs on worker W's thread. */
    const gw_addr_t *(*pick)(void *ctx, gw_worker_t *w, const gw_listener_t *l,
                             const struct sockaddr *client, unsigned attempt, gw_tcp_pick_t *tok);
    /* Outcomes, on W's thread: after each attempt, status 0 (connected) or a UV_E* error;
     * then exactly once when a connection that was picked for (or whose preread answered
     * PICK) ends, whether it ever connected or not:
     * GW_TCP_CLOSED, or GW_TCP_CLOSED_BACKEND_ERROR when a read or write on the backend
     * side failed (a passive health signal). May be NULL. */
    void (*report)(void *ctx, gw_worker_t *w, gw_tcp_pick_t *tok, int status);
    /* Before connect attempt ATTEMPT (>= 1) after a failure: may it happen (false: give up,
     * the client is closed), and after how long (*DELAY_MS, 0 by default: backoff from 03).
     * May be NULL: retry at once while ATTEMPT < max_attempts. */
    bool (*retry)(void *ctx, gw_worker_t *w, gw_tcp_pick_t *tok, unsigned attempt,
                  uint64_t *delay_ms);
    /* A new client on listener L: may it in (false: it is reset at once and counted as
     * rate limited)? Runs before max_connections is checked. May be NULL. */
    bool (*admit)(void *ctx, gw_worker_t *w, const gw_listener_t *l, const struct sockaddr *client);
    /* Optional: look at what the client sends before a backend is picked (04's TLS
     * passthrough reads the ClientHello's SNI there). For a listener whose preread_ms is > 0,
     * 01 reads the client first instead of connecting at accept, keeps what it reads (one
     * buffer chunk at most), and calls preread with all of it, LEN bytes at DATA, for each
     * read (EV DATA) and once at the end of what may come (EOF, TIMEOUT after preread_ms,
     * FULL: a read that no longer fits in the chunk, whose bytes DATA..LEN do not include).
     * The answer: MORE (after DATA: keep reading; elsewhere it counts as REFUSE), PICK (stop
     * reading, pick as usual, and once connected send the bytes kept before anything else:
     * the backend sees the client's stream unchanged; a FULL connection is refused whatever
     * the answer, since bytes were dropped) or REFUSE (close the client). Before pick, so
     * the hook may leave its verdict in TOK->route, and with PICK anything its pick takes
     * over in TOK->ref: once a preread answered PICK, the close is reported even if no pick
     * followed, so the picker can give it back. The pair's memory stays bounded: one
     * chunk per connection in preread, and max_connections of them. Both may be NULL. */
    uint64_t (*preread_ms)(void *ctx, const gw_listener_t *l);
    int (*preread)(void *ctx, gw_worker_t *w, const gw_listener_t *l, const char *data, size_t len,
                   gw_tcp_preread_event_t ev, gw_tcp_pick_t *tok);
    /* Optional: a stream of the picker's layered over the accepted client stream (04's TLS
     * termination on tcp listeners: a TLS stream). Called once per admitted connection,
     * before anything is read from the client or a backend is picked, with CLIENT set up;
     * the wrapper's reads go to ON_READ with CLIENT's data (01's). Returns 0 with *OUT
     * NULL (no wrapper: 01 goes on with CLIENT), 0 with *OUT the wrapper, which from then
     * on is the client's stream for 01 (closing it closes CLIENT), or a UV error: the client
     * is closed at once (the hook counted why). A wrapper that needs exchanges of its own
     * before the client's bytes mean anything (a TLS handshake) sets *WAIT_MS > 0: 01 then
     * neither reads nor connects until the hook calls gw_tcp_wrapper_ready(wrapper, status)
     * (0: go on as after accept: preread, pick, connect; < 0: close the client), and closes
     * the client itself after WAIT_MS (so no backend is ever connected for a client that
     * never finished its handshake). UNWRAP runs once per wrapper, after its close
     * callback (free it there); TIMED_OUT says that 01 gave up waiting. Both or neither. */
    int (*wrap)(void *ctx, gw_worker_t *w, const gw_listener_t *l, gw_stream_t *client,
                gw_stream_read_cb on_read, gw_stream_t **out, uint64_t *wait_ms);
    void (*unwrap)(void *ctx, gw_worker_t *w, gw_stream_t *wrapper, bool timed_out);
    /* The context wrap and unwrap get (not ctx: a layer that adds only a wrapper copies the
     * picker below it whole and sets these three, without forwarding its other hooks). */
    void *wrap_ctx;
    /* Optional: a header in front of the client's stream that says whose connection it is
     * (04's PROXY protocol). For a listener whose header_ms is > 0, 01 counts the client
     * against max_connections at accept (not yet the admit hook: the address to admit is
     * in the header) and calls header once with nothing read (LEN 0: the hook may refuse by
     * the socket's address alone), then reads the client, keeping what it reads as preread
     * does (one chunk at most), and calls header with all of it after each read (DATA) and
     * once more if it ends first (EOF, TIMEOUT after header_ms, FULL: the connection is
     * then closed whatever the answer). The answer: 0, read more; < 0, close the client
     * (the hook counts why); N > 0, the header is the first N bytes of DATA. They are
     * dropped; *CLIENT (the socket's address, or AF_UNSPEC) may now hold the one the
     * header carries, and the connection goes on as any other with that address: the admit
     * hook (refused: counted as limited, closed), wrap, preread, pick. The bytes after the
     * header are the client's first: the wrapper's (a ClientHello), the preread's, or the
     * backend's. Both or neither. */
    uint64_t (*header_ms)(void *ctx, const gw_listener_t *l);
    int (*header)(void *ctx, gw_worker_t *w, const gw_listener_t *l, const char *data, size_t len,
                  gw_tcp_preread_event_t ev, struct sockaddr_storage *client);
    /* Optional: bytes the backend gets before any of the client's (04's PROXY header to an
     * upstream that asks for it), for the backend TOK picked: called once per attempt right
     * after its pick (while TOK still holds what the pick chose in, which a picker may let
     * go of once connected), sent once connected. Writes at most CAP bytes into BUF and
     * returns how many (0: nothing to send). CLIENT is
     * the client's address as 01 knows it (a header's if one came; AF_UNSPEC when 01 did not
     * ask the kernel), SOCK the client's socket, for whatever else the hook needs (its local
     * address, the peer's when CLIENT is AF_UNSPEC): asked only by a hook that sends, so a
     * backend that gets nothing costs no system call. */
    size_t (*hello)(void *ctx, gw_worker_t *w, const gw_listener_t *l, const gw_tcp_pick_t *tok,
                    const struct sockaddr *client, const uv_tcp_t *sock, char *buf, size_t cap);
    /* The context header_ms, header and hello get (as wrap_ctx: a layer that adds only
     * these copies the picker below it whole). */
    void *prefix_ctx;
    unsigned max_attempts; /* connect attempts per client connection, >= 1 */
    /* Optional: whether pick or admit will look at the address of a client of listener L
     * (a per-client rate limit, a client_ip hash), as the configuration published now says:
     * 01 then asks the kernel for it once, at the accept (getpeername); otherwise it saves
     * that system call and passes AF_UNSPEC. NULL: never. (01 always asks when header is
     * set: the `from` check needs it.) A question per accept, not a flag fixed at start: a
     * reload may add a limit or a hash. One that comes between a connection's accept and
     * its pick finds the address unknown for that connection (a hash then sends it where
     * an unknown address goes). */
    bool (*wants_client)(void *ctx, gw_worker_t *w, const gw_listener_t *l);
    void *ctx;
} gw_tcp_picker_t;

#define GW_TCP_CLOSED 1
#define GW_TCP_CLOSED_BACKEND_ERROR 2

/* For a picker's wrap hook: WRAPPER (one its wrap returned with *WAIT_MS > 0) is ready
 * (STATUS 0) or failed (< 0). Once per wrapper, on its worker's thread, from the loop (never
 * from inside a call 01 made). Nothing when 01 already closed the client. */
void gw_tcp_wrapper_ready(gw_stream_t *wrapper, int status);

/* Per-worker counters, summed on scrape from 03 on. Only the owning worker writes them
 * (gw_counter_add: a relaxed load and store, no locked instruction); another thread may read
 * them (gw_counter_get). bytes_in: read from clients; bytes_out: read from backends (both
 * counted at the close). rejected: over max_connections; limited: refused by the admit hook. */
typedef struct gw_tcp_stats_s {
    gw_counter_t accepted, rejected, limited, connect_failed, no_backend, closed, bytes_in,
        bytes_out;
} gw_tcp_stats_t;

/* The proxy's hooks for gw_runtime_run. The runtime's layer 1 (gw_runtime_layer) is the
 * gw_tcp_picker_t a later milestone's prepare put there (02's balancer), or NULL for 01's
 * behaviour: always the first backend of the listener's upstream. */
extern const gw_app_t gw_tcp_app;

/* The same hooks as functions, for a later milestone that wraps them in its own app. */
int gw_tcp_worker_start(gw_worker_t *w);
void gw_tcp_on_connection(gw_wlistener_t *wl);
void gw_tcp_worker_drain(gw_worker_t *w);
void gw_tcp_worker_force_close(gw_worker_t *w);
/* A reload removed L and drain_timeout passed: its pairs on W close as at a forced drain. */
void gw_tcp_worker_listener_gone(gw_worker_t *w, gw_listener_t *l);
void gw_tcp_worker_stop(gw_worker_t *w);
/* W's counters; readable from the control thread from READY until the process ends (they
 * live in w->stats, not in the worker's own state). NULL if W never started. */
const gw_tcp_stats_t *gw_tcp_worker_stats(const gw_worker_t *w);
/* Adds IN bytes read from a client and OUT bytes sent to it by a later layer's connection
 * on W (04's HTTP exchanges) to W's bytes_in and bytes_out, so that gw_bytes_total and
 * /stats count every listener. On W's thread only (the counters have one writer); nothing
 * when W never started. */
void gw_tcp_count_bytes(gw_worker_t *w, uint64_t in, uint64_t out);

#endif
