/* debounce.h - a burst of events becomes one action, a quiet period after the last event.
 *
 * For milestone 05's file watcher (issue 17): an editor saving a file makes several events
 * (write a temporary name, rename it over the old one; or truncate, then write in pieces),
 * and the configuration must be read once, after the writing stopped, never in between. The
 * rule: every event (re)starts a quiet period of QUIET ms; when a whole period passes without
 * an event, the action is due, once. Pure: the caller passes the time (a loop's uv_now, or a
 * test's fake clock) and arms its own timer for gw_debounce_wait's answer; nothing here reads
 * a clock, allocates or blocks, so its rules are tested event by event.
 *
 *   events:   e   e  e         (quiet)          e          (quiet)
 *   due:                 |<-- QUIET -->| fire      |<-- QUIET -->| fire
 *
 * A timer that fires early (or late) is harmless: gw_debounce_fire answers from the times,
 * not from the timer. */
#ifndef GW_DEBOUNCE_H
#define GW_DEBOUNCE_H

#include <stdbool.h>
#include <stdint.h>

#define GW_DEBOUNCE_IDLE UINT64_MAX /* gw_debounce_wait: nothing pending */

typedef struct gw_debounce_s {
    uint64_t quiet_ms;
    uint64_t last_ms; /* time of the latest event, while pending */
    bool pending;     /* an event came and its action has not fired yet */
    uint64_t events;  /* events seen, and actions fired: for logs and tests */
    uint64_t fired;
} gw_debounce_t;

/* Starts D with nothing pending and a quiet period of QUIET_MS (0: due at the event). */
void gw_debounce_init(gw_debounce_t *d, uint64_t quiet_ms);

/* An event at NOW_MS: the action is due QUIET ms from now (an earlier pending one moves). */
void gw_debounce_event(gw_debounce_t *d, uint64_t now_ms);

/* How long from NOW_MS until the action is due: 0 when due now, GW_DEBOUNCE_IDLE when
 * nothing is pending (arm no timer). */
uint64_t gw_debounce_wait(const gw_debounce_t *d, uint64_t now_ms);

/* Whether the action is due at NOW_MS; if so it is taken (nothing pending any more): true
 * once per burst. A clock that went backwards (NOW_MS before the last event) is not due. */
bool gw_debounce_fire(gw_debounce_t *d, uint64_t now_ms);

#endif
