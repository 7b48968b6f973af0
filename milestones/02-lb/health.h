/* health.h - active health checks: a rise/fall state machine, and a checker that probes every
 * backend of one upstream from the control thread's loop (a TCP connect or an HTTP GET).
 *
 * The checker writes each backend's `health` (an atomic read by every worker); workers
 * never call into this module. The state machine is pure (no I/O, no time), so its rules
 * are tested check result by check result without a socket. */
#ifndef GW_HEALTH_H
#define GW_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "backend.h"

/* ---- the rise/fall state machine ------------------------------------------------------- */

typedef struct gw_hc_fsm_s {
    bool healthy;
    unsigned successes; /* passed checks in a row (0 after any failure) */
    unsigned failures;  /* failed checks in a row (0 after any success) */
} gw_hc_fsm_t;

/* Starts F as HEALTHY (true) or unhealthy, with both runs at 0. */
void gw_hc_fsm_init(gw_hc_fsm_t *f, bool healthy);

/* Feeds one check result (OK) to F. An unhealthy F becomes healthy after RISE passed checks
 * in a row; a healthy F becomes unhealthy after FALL failed checks in a row; a success
 * ends a failure run and a failure ends a success run. RISE and FALL of 0 act as 1.
 * Returns true when F->healthy changed with this result (F->successes or F->failures then
 * says after how many checks). */
bool gw_hc_fsm_observe(gw_hc_fsm_t *f, bool ok, unsigned rise, unsigned fall);

/* ---- configuration --------------------------------------------------------------------- */

typedef enum { GW_HC_NONE = 0, GW_HC_TCP, GW_HC_HTTP } gw_hc_type_t;

/* One upstream's active checks. Defaults are the config loader's business (interval 5s,
 * timeout 2s, path "/", expect 200-399, rise 2, fall 3), not this module's. */
typedef struct gw_hc_cfg_s {
    gw_hc_type_t type;
    uint64_t interval_ms;          /* pause between the end of a check and the next (+/-10%) */
    uint64_t timeout_ms;           /* bound on one whole check: connect, send, status line */
    char *path;                    /* http: request target; NULL means "/" */
    unsigned status_lo, status_hi; /* http: a status in [lo, hi] passes */
    unsigned rise, fall;           /* see gw_hc_fsm_observe */
    /* `initial: unhealthy`: a backend new to the configuration (at start, or added by a
     * reload) starts unhealthy and serves once `rise` checks passed; default healthy (it
     * serves at once, and `fall` failures take it out). A backend a reload keeps keeps its
     * health either way. Read when backends are made (lb.c), not by the checker. */
    bool start_unhealthy;
    bool uneject_on_pass;    /* a passing check ends a passive ejection in force (set from the
                              * upstream's outlier.uneject_on_active_pass, not a key of this block) */
    unsigned proxy_protocol; /* 0, or 1/2: each check opens with a PROXY header, v1
                              * "PROXY UNKNOWN" or v2 LOCAL (the checker relays no client),
                              * for a backend that expects one on every connection (set by
                              * the milestone that owns upstreams.X.proxy_protocol, through
                              * gw_lb_upstream_check_proxy; not a key of this block) */
} gw_hc_cfg_t;

/* ---- the checker ----------------------------------------------------------------------- */

typedef struct gw_hc_s gw_hc_t;

/* Starts checking BACKENDS[0..N) of upstream UPSTREAM (a name for log lines) on LOOP, the
 * control thread's loop; every call below runs on that thread. Each backend has its own
 * timer: its first check fires at a random offset within the first interval and each next
 * one interval_ms (+/- 10%) after the previous check finished, so checks of many backends
 * do not fire in lockstep and two checks of one backend never overlap. SEED fixes those
 * random draws (tests use fixed seeds).
 * Each check is bounded by timeout_ms. tcp: the connect succeeds. http: after the connect,
 * `GET <path> HTTP/1.1` is sent with `Host: <backend address>`, `User-Agent: gw-health`
 * and `Connection: close`, and the check passes when the status line arrives and its code
 * is within [status_lo, status_hi]; the body is never read. With proxy_protocol, the
 * header goes first (http: before the request; tcp: written once connected, then the
 * check passes as before).
 * Results go through a gw_hc_fsm_t per backend, which starts from the backend's current
 * health (so a restarted checker does not forget that a backend is down). On a change the
 * checker stores GW_HEALTH_HEALTHY or GW_HEALTH_UNHEALTHY into backend->health and logs one
 * line; a backend in GW_HEALTH_DRAINING is never overwritten. With uneject_on_pass, every
 * passing check also ends a passive ejection in force (gw_outlier_uneject; one line logged),
 * before the observer runs.
 * CFG is copied (PATH too); UPSTREAM is copied; the BACKENDS array and the backends must
 * outlive the checker. CFG must have type GW_HC_TCP or GW_HC_HTTP, interval_ms and
 * timeout_ms above 0, a path (if any) starting with '/' with no spaces or control
 * characters; N must be at least 1 (an upstream without checks has no checker).
 * Returns NULL when those do not hold or memory runs out (nothing is then left on LOOP). */
gw_hc_t *gw_hc_start(uv_loop_t *loop, const gw_hc_cfg_t *cfg, gw_backend_t *const *backends,
                     size_t n, const char *upstream, uint64_t seed);

/* Stops HC: aborts checks in flight (their results are dropped) and closes every handle.
 * DONE(ARG) runs once, from the loop, after the last close callback; then HC's memory is
 * freed. DONE may be NULL. Never runs DONE before returning. Call once; HC must not be
 * used afterwards. May be called from the observer (gw_hc_set_observer). */
void gw_hc_stop(gw_hc_t *hc, void (*done)(void *arg), void *arg);

/* What one finished check found, for an observer (tests, and later the admin API). */
typedef struct gw_hc_result_s {
    size_t index; /* the backend's position in the array given to gw_hc_start */
    const gw_backend_t *backend;
    bool ok;         /* the check passed */
    bool changed;    /* the state machine flipped with this check */
    bool healthy;    /* the state machine's verdict after this check */
    int err;         /* why it failed: UV_E* (UV_ETIMEDOUT for either timeout,
                      * UV_EOF when closed before a status line), GW_EINVAL for a
                      * malformed or overlong status line; 0 when the exchange
                      * worked (then a failed http check had a status out of range) */
    unsigned status; /* http: the status code received, 0 if none */
    const char *why; /* failures: a short reason for humans; "" when ok */
} gw_hc_result_t;

typedef void (*gw_hc_result_cb)(void *arg, const gw_hc_result_t *r);

/* Calls CB(ARG, result) after every finished check, once the check's socket is closed and
 * the backend's health updated. CB may call gw_hc_stop. NULL removes it. */
void gw_hc_set_observer(gw_hc_t *hc, gw_hc_result_cb cb, void *arg);

/* ---- pieces exposed for tests ---------------------------------------------------------- */

/* Parses an HTTP/1.x status line at the start of BUF[0..LEN): "HTTP/1.x NNN[ reason]" ended
 * by CRLF (a bare LF is accepted too). Returns the line's length with its line end (>0)
 * and stores NNN in *STATUS when the line is complete and valid; 0 when more bytes are
 * needed and what came so far can still become a status line; GW_EINVAL as soon as it
 * cannot (so a peer speaking another protocol fails the check without a timeout). */
int gw_hc_parse_status(const char *buf, size_t len, unsigned *status);

/* The delay before a check: INTERVAL_MS +/- 10%, or, for a backend's FIRST check, anywhere
 * in [0, INTERVAL_MS). Draws from *RNG, a splitmix64 state (any value is a valid seed). */
uint64_t gw_hc_delay(uint64_t interval_ms, bool first, uint64_t *rng);

#endif
