/* breaker.h - a circuit breaker per backend: closed, open, half-open, kept in atomics so that
 * every worker sees the same state and no lock is taken. */
#ifndef GW_BREAKER_H
#define GW_BREAKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* The rolling failure-rate window is kept as this many buckets of window_ms / 10. */
#define GW_BREAKER_BUCKETS 10
/* Largest half_open_max and success_to_close honoured; larger values act as this. They share
 * the packed state word with the state and its timestamp (breaker.c). */
#define GW_BREAKER_MAX_TRIALS 1023u

/* One upstream's settings; defaults and ranges are the config loader's business. */
typedef struct gw_breaker_cfg_s {
    unsigned consecutive_failures; /* open after this many failures in a row; 0 = rule off */
    double failure_rate_percent;   /* open when failures/outcomes in the window exceed it */
    unsigned min_requests;         /* ...and the window holds at least this many outcomes; the
                                      rule is off when failure_rate_percent is 0 */
    uint64_t window_ms;            /* rolling window, kept as 10 buckets of window_ms/10 */
    uint64_t open_timeout_ms;      /* open -> half-open after this */
    unsigned half_open_max;        /* trials admitted at once in half-open, across all workers;
                                      0 acts as 1 */
    unsigned success_to_close;     /* successful trials in a row that close it; 0 acts as 1 */
} gw_breaker_cfg_t;

typedef enum { GW_BREAKER_CLOSED = 0, GW_BREAKER_OPEN, GW_BREAKER_HALF_OPEN } gw_breaker_state_t;

/* Shared by all workers; atomics only, read and written through the functions below.
 * `word` packs state, trials in flight, trial successes and the time of the last transition;
 * `consecutive` packs that time's low bits with the count of failures in a row, so a count
 * from before a transition is never mistaken for a current one; each bucket packs its epoch
 * (which window_ms/10 slice of time it holds) with its outcome and failure counts. */
typedef struct gw_breaker_s {
    _Atomic uint64_t word;
    _Atomic uint64_t consecutive;
    _Atomic uint64_t buckets[GW_BREAKER_BUCKETS];
} gw_breaker_t;

/* Times are monotonic milliseconds below 2^42 (139 years): they share the packed state word.
 * Workers may pass slightly different "now"s (each loop caches its own time); that is fine. */

/* Makes B closed, with an empty window. Not thread-safe: call before B is shared. */
void gw_breaker_init(gw_breaker_t *b);

/* Non-consuming check for a balancer's filter: could a connection go to B at NOW_MS?
 * Closed: yes. Open: no, unless open_timeout_ms has passed (then it is half-open).
 * Half-open: yes when a trial slot is free. Changes nothing, so the answer may be stale by
 * the time gw_breaker_allow is called: that call decides. */
bool gw_breaker_may_allow(const gw_breaker_t *b, const gw_breaker_cfg_t *cfg, uint64_t now_ms);

/* Admission of the connection actually sent to B at NOW_MS: true = go. *TRIAL (must not be
 * NULL) is set to whether the connection took a half-open trial slot; the caller hands it
 * back to gw_breaker_record with the outcome, exactly once. May move open -> half-open
 * (not reported: gw_breaker_state shows it). Returns false when open, or when half-open and
 * every trial slot is taken by some worker (the caller picks another backend). */
bool gw_breaker_allow(gw_breaker_t *b, const gw_breaker_cfg_t *cfg, uint64_t now_ms, bool *trial);

/* The outcome of a connection admitted by gw_breaker_allow, reported at NOW_MS. OK: it
 * connected and saw no backend-side error; not OK: connect failure or backend I/O failure.
 * TRIAL: the value gw_breaker_allow gave for it.
 * Closed: the outcome goes into the window and the run of consecutive failures; either rule
 * (consecutive_failures reached, or failure_rate_percent exceeded with at least
 * min_requests outcomes in the window) opens B. Half-open: a trial's failure reopens it (a
 * new open period from NOW_MS); success_to_close trial successes in a row close it, with
 * an empty window. Outcomes that are not trials are ignored while open or half-open (they
 * come from connections admitted before it opened); a trial reporting while open (another
 * trial reopened it) only frees its slot; a trial reporting after the close counts as an
 * ordinary closed outcome.
 * Returns the new state when this call made a transition (for a log line), else -1.
 * Exactly one of several racing workers gets a given transition. */
int gw_breaker_record(gw_breaker_t *b, const gw_breaker_cfg_t *cfg, bool ok, bool trial,
                      uint64_t now_ms);

/* B's state at NOW_MS; open past its timeout reads as half-open. */
gw_breaker_state_t gw_breaker_state(const gw_breaker_t *b, const gw_breaker_cfg_t *cfg,
                                    uint64_t now_ms);

/* "closed", "open", "half_open" (the spelling of metrics labels and the admin API); "?" for
 * anything else. */
const char *gw_breaker_state_name(gw_breaker_state_t s);

/* Trials of B in flight now (for /backends and tests). */
unsigned gw_breaker_trials(const gw_breaker_t *b);

#endif
