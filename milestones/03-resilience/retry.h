/* retry.h - when to retry: exponential backoff with full jitter, and a retry budget per
 * upstream shared by all workers, so that a failing backend cannot cause a retry storm. */
#ifndef GW_RETRY_H
#define GW_RETRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* The delay before retry number ATTEMPT (1 is the first retry; 0 is the first try and gets
 * 0): uniform in [0, cap] with cap = min(MAX_MS, BASE_MS * 2^(ATTEMPT-1)), computed without
 * overflow for any ATTEMPT. Draws from *RNG, a splitmix64 state the caller owns (one per
 * worker: it is not shared; any value is a valid seed). */
uint64_t gw_backoff_full_jitter(uint64_t base_ms, uint64_t max_ms, unsigned attempt, uint64_t *rng);

/* The cap of that draw: min(MAX_MS, BASE_MS * 2^(ATTEMPT-1)), 0 for ATTEMPT 0. */
uint64_t gw_backoff_cap(uint64_t base_ms, uint64_t max_ms, unsigned attempt);

/* One upstream's retry budget, shared by all workers. Read the counters with atomic_load
 * for metrics; change them only through the functions below. */
typedef struct gw_retry_budget_s {
    _Atomic unsigned in_progress; /* retries started and not released */
    _Atomic uint64_t granted;     /* retries allowed so far */
    _Atomic uint64_t denied;      /* retries refused by the budget so far */
} gw_retry_budget_t;

/* Zeroes B. Not thread-safe: call before B is shared. */
void gw_budget_init(gw_retry_budget_t *b);

/* May a retry start now? Yes when the retries in progress, this one included, stay within
 * max(MIN_CONCURRENT, floor(ACTIVE * BUDGET_PERCENT / 100)), ACTIVE being the upstream's
 * active connections or requests (Envoy's retry budget). On true the caller holds a slot
 * and MUST call gw_budget_release exactly once when that retry ends (whatever its
 * outcome); on false it holds nothing. Counts granted or denied. Safe from any thread:
 * racing callers never hold more slots than the limit together (two racing at the limit
 * may both be refused, never both admitted). */
bool gw_budget_try_acquire(gw_retry_budget_t *b, unsigned active, double budget_percent,
                           unsigned min_concurrent);

/* Ends a retry admitted by gw_budget_try_acquire. */
void gw_budget_release(gw_retry_budget_t *b);

#endif
