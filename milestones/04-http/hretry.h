/* hretry.h - what the HTTP engine does when an attempt to get a response fails: send the
 * request again (where, and when) or give up (with which answer). One pure function.
 *
 * Three retry policies meet here, each from a different layer, and they used to be mixed
 * with the closing of sockets in hupstream.c. Asked in this order:
 *
 *   1. The stale pooled connection (RFC 9112 9.3.1). An upstream may close an idle
 *      keep-alive connection at any moment, and our request can cross its FIN on the wire.
 *      When a connection taken from the pool fails before any response byte, the request
 *      most likely never reached the application, so an idempotent request is sent again,
 *      once, on a fresh pick and a new connection (not another pooled one: after a
 *      backend's restart every connection in its pool is dead). It is not the
 *      backend's fault either: no passive-health failure is reported for it.
 *   2. 02's connect retries, through the picker. A connect that failed or timed out is
 *      tried again within the same pick sequence while the attempt number is below the
 *      picker's max_attempts (02's `retry: {max_attempts}`), if the picker's hook agrees;
 *      03's hook adds a retry budget and a backoff delay. The picker avoids backends already
 *      tried, so "the same pick sequence" still reaches another backend when there is one.
 *   3. The retry middleware (a route's `retry`), through the chain: when neither of the
 *      above applies, or the picker said no, an idempotent request whose failure the
 *      route's `retry_on` lists may start over on a fresh pick, after 03's backoff, if the
 *      route's retry budget grants a slot. The fresh pick avoids the backends tried so far
 *      when another is usable. A 5xx answer (STATUS: 502, 503, 504) is retried by this
 *      policy only, and when it is not, the answer goes to the client as it came (PASS);
 *      it is not reported either: passive health reads a 5xx from the response head itself
 *      (outlier detection), retried or not.
 *
 * Before any of them: a failure that is the gateway's own shortage (no descriptor for the
 * upstream socket, no memory: gw_err_local_shortage) is not the backend's fault and is not
 * retried, since the next attempt would meet the same shortage; the client gets a 503, as
 * for any overload. Counted against the backend, a few such clients used to eject the only
 * backend of an upstream for a whole ejection, long after descriptors were free again.
 *
 * Then: a request is replayable only if none of it is lost. No request body
 * byte went upstream, no response byte went to the client (not even a 1xx), the process is
 * not draining, and the body (if any) is either still in the client's socket or held whole
 * in reqbuf.
 *
 * Pure in the sense of tcp_sm.h: no sockets, no clock, no allocation. The other layers'
 * answers come through small hooks (gw_hretry_hooks_t), called in a fixed order, because two
 * of them change shared state: the report of the failed attempt gives back what the attempt
 * held (02's active-connection count, 03's budget slot) and must come before 03's retry
 * hook takes a slot again. tests/test_hretry.c feeds the hooks from tables. */
#ifndef GW_HRETRY_H
#define GW_HRETRY_H

#include <stdbool.h>
#include <stdint.h>

/* What failed. */
typedef enum {
    GW_HRETRY_CONNECT,          /* the connect failed or timed out */
    GW_HRETRY_BROKEN,           /* the connection broke before the response head: EOF, reset,
                                 * a write error, a malformed response, no memory */
    GW_HRETRY_RESPONSE_TIMEOUT, /* no response head within response_timeout (504) */
    GW_HRETRY_STATUS,           /* the backend answered `status` (a 5xx): its head is in, and
                                 * nothing of that response went to the client yet */
} gw_hretry_failure_t;

/* What a route's retry middleware retries (`retry_on`), as bits of gw_hretry_in_t.retry_on.
 * Only policy 3 reads them: the stale pooled connection and the picker's connect retries are
 * not the route's to choose. */
enum {
    GW_HRETRY_ON_CONNECT_FAILURE = 1u << 0, /* connect_failure: CONNECT */
    GW_HRETRY_ON_RESET = 1u << 1,           /* reset: BROKEN, RESPONSE_TIMEOUT (no answer at all,
                                             * as Envoy's `reset` reads it) */
    GW_HRETRY_ON_502 = 1u << 2,             /* 502, 503, 504: STATUS with that status */
    GW_HRETRY_ON_503 = 1u << 3,
    GW_HRETRY_ON_504 = 1u << 4,
    GW_HRETRY_ON_DEFAULT = GW_HRETRY_ON_CONNECT_FAILURE | GW_HRETRY_ON_RESET,
};

/* Everything the decision reads about the failed attempt and its exchange. */
typedef struct gw_hretry_in_s {
    gw_hretry_failure_t failure;
    int uv_status;   /* the libuv status that said so: UV_ECONNREFUSED, UV_EOF, UV_ETIMEDOUT...
                      * (0 with STATUS) */
    unsigned status; /* STATUS: the backend's status code */

    /* The attempt. */
    bool picked;     /* a backend was picked for it (the picker waits for its report) */
    bool reused;     /* its connection came from the pool */
    bool resp_bytes; /* a response byte arrived on it */

    /* The request. */
    bool idempotent;       /* GET, HEAD, OPTIONS, TRACE, PUT, DELETE (RFC 9110 9.2.2) */
    bool has_body;         /* it has a body (Content-Length or chunked) */
    bool body_started;     /* request body bytes went upstream */
    bool request_read;     /* the client sent the whole request: no body byte waits in its socket */
    bool body_buffered;    /* the whole body is held in reqbuf and can be sent again */
    bool response_started; /* the client already got part of a response */
    bool interim_sent;     /* a 1xx went to the client: a byte of the response reached it */
    bool draining;         /* the process is shutting down */

    /* The retries so far. */
    bool stale_retry_used; /* policy 1 ran for this request already */
    unsigned attempt;      /* connect attempt within the current pick sequence, from 0 */
    unsigned max_attempts; /* the picker's connect attempts per pick sequence, >= 1 */
    unsigned tries;        /* retries so far over every pick sequence: the failed attempt is
                            * number tries + 1 */
    unsigned retry_on;     /* GW_HRETRY_ON_* bits: what policy 3 may retry (0: nothing) */
} gw_hretry_in_t;

/* The other layers' answers. CTX is passed to each. */
typedef struct gw_hretry_hooks_s {
    /* The failed attempt counts against the backend (passive health, breaker): report it
     * with STATUS, a UV_E* code. Called first, at most once, only when in->picked. May be
     * NULL. */
    void (*report)(void *ctx, int status);
    /* Policy 2: may connect attempt ATTEMPT (>= 1) of the same pick sequence happen, and
     * after how long (*DELAY_MS, 0 when not set)? NULL: yes, at once. */
    bool (*connect_retry)(void *ctx, unsigned attempt, uint64_t *delay_ms);
    /* Policy 3: attempt ATTEMPT (1 = the first, counted over every pick sequence) failed:
     * may attempt ATTEMPT + 1 start on a fresh pick, and after how long (*DELAY_MS, 0 when
     * not set: 03's backoff)? It may take a slot of the route's retry budget. NULL: no. */
    bool (*may_retry)(void *ctx, unsigned attempt, uint64_t *delay_ms);
    void *ctx;
} gw_hretry_hooks_t;

typedef enum {
    GW_HRETRY_ANSWER,       /* give up: answer the client with `status` */
    GW_HRETRY_CLOSE_CLIENT, /* give up: a response already started, so cut the client (reset) */
    GW_HRETRY_FRESH,        /* send again now, on a new pick sequence (attempt 0) */
    GW_HRETRY_NEXT_ATTEMPT, /* connect attempt + 1 of the same pick sequence, after delay_ms */
    GW_HRETRY_PASS,         /* give up (STATUS only): the backend's answer goes to the client
                             * as it came; the pick goes on serving it */
} gw_hretry_action_t;

typedef struct gw_hretry_s {
    gw_hretry_action_t action;
    unsigned status;             /* ANSWER: 502, 504 after a response timeout, 503 when the
                                  * gateway itself was short of descriptors or memory */
    uint64_t delay_ms;           /* NEXT_ATTEMPT, FRESH: wait this long first (03's backoff) */
    bool report_passive_failure; /* hooks->report was called for the failed attempt */
    bool release_pick;           /* the pick sequence is over: give back what it holds */
    bool stale_retry;            /* FRESH by policy 1: the once-only stale retry is used now */
    bool avoid_tried;            /* FRESH by policy 3: the new pick sequence avoids the backends
                                  * tried so far when another is usable (the one that answered
                                  * 503 is not asked again at once) */
} gw_hretry_t;

/* Decides what follows the failure IN describes, calling HOOKS (not NULL; each hook may be)
 * in this order: report, then connect_retry, then may_retry, each only when the decision
 * gets that far. */
gw_hretry_t gw_hretry_decide(const gw_hretry_in_t *in, const gw_hretry_hooks_t *hooks);

/* The GW_HRETRY_ON_* bit that lists a failure of kind FAILURE (with STATUS for
 * GW_HRETRY_STATUS) in a route's retry_on; 0 when none can (a 500, say). */
unsigned gw_hretry_on(gw_hretry_failure_t failure, unsigned status);

/* May the request be sent again at all (the rule above the three policies)? */
bool gw_hretry_replayable(const gw_hretry_in_t *in);

/* Is a failure of this kind the backend's fault? Not when a pooled connection was found
 * closed (EOF, reset or broken pipe before any response byte): the upstream may close idle
 * connections whenever it likes. Nor when the gateway was short of descriptors or memory. */
bool gw_hretry_blames_backend(const gw_hretry_in_t *in);

#endif
