/* retry.c - see retry.h. */
#include "retry.h"

#include <limits.h>

#include "rand.h"

/* see retry.h */
void gw_budget_init(gw_retry_budget_t *b)
{
    atomic_init(&b->in_progress, 0);
    atomic_init(&b->granted, 0);
    atomic_init(&b->denied, 0);
}

/* LAB 03: backoff and budget */
/* Retry storms. When a backend fails, every client that was using it retries. If they all
 * retry at once, and again at the same moments after each failure, the backend (or the one
 * that takes over its traffic) is hit by synchronised waves exactly when it is weakest, and
 * each wave multiplies the load: with 3 attempts per request, a struggling upstream sees
 * up to 3x its normal traffic, which keeps it struggling. Two defences:
 *  - Exponential backoff spreads attempts out in time, and full jitter (a delay drawn
 *    uniformly in [0, cap], not cap plus a little noise) breaks the synchronisation: the
 *    retries of many clients land spread over the whole interval instead of in waves.
 *    (AWS measured full jitter to finish the same work with the fewest calls.)
 *  - A budget caps retries as a share of the work in progress. A fixed attempt count alone
 *    bounds each request, not the total: when everything fails, every request retries and
 *    the load still multiplies. With a budget, retries help while failures are rare (the
 *    budget is mostly unused) and fade out when failures are everywhere (there is no
 *    headroom to spend), which is when retrying cannot help anyway. min_concurrent keeps a
 *    few retries possible when traffic is too low for a percentage to mean anything. */

/* see retry.h */
uint64_t gw_backoff_cap(uint64_t base_ms, uint64_t max_ms, unsigned attempt)
{
    if (attempt == 0)
        return 0;
    unsigned shift = attempt - 1;
    /* base << shift overflows (or exceeds max) exactly when base > max >> shift: compare
     * before shifting. A shift of 64 or more is undefined in C, so those go to max too. */
    if (shift >= 64 || base_ms > (max_ms >> shift))
        return max_ms;
    return base_ms << shift;
}

/* see retry.h */
uint64_t gw_backoff_full_jitter(uint64_t base_ms, uint64_t max_ms, unsigned attempt, uint64_t *rng)
{
    uint64_t cap = gw_backoff_cap(base_ms, max_ms, attempt);
    uint64_t x = gw_rand_next(rng);
    if (cap == UINT64_MAX)
        return x;
    /* Uniform in [0, cap]: scale a 64-bit draw by cap + 1 and keep the high half (Lemire),
     * which has no modulo's bias towards small values. */
    return (uint64_t)(((unsigned __int128)x * (cap + 1)) >> 64);
}

/* The concurrent retries allowed: max(min_concurrent, floor(active * percent / 100)). */
static unsigned budget_limit(unsigned active, double budget_percent, unsigned min_concurrent)
{
    double share = (double)active * budget_percent / 100.0;
    unsigned limit = !(share > 0) ? 0 : share >= (double)UINT_MAX ? UINT_MAX : (unsigned)share;
    return limit > min_concurrent ? limit : min_concurrent;
}

/* Increment first, then check, and back out when over: a check-then-increment would let
 * two workers that both saw "one slot left" both take it. Backing out means two racers at
 * the limit may both be refused (each saw the other's increment); never both admitted. */
/* see retry.h */
bool gw_budget_try_acquire(gw_retry_budget_t *b, unsigned active, double budget_percent,
                           unsigned min_concurrent)
{
    unsigned limit = budget_limit(active, budget_percent, min_concurrent);
    unsigned mine = atomic_fetch_add(&b->in_progress, 1) + 1;
    if (mine > limit) {
        atomic_fetch_sub(&b->in_progress, 1);
        atomic_fetch_add_explicit(&b->denied, 1, memory_order_relaxed);
        return false;
    }
    atomic_fetch_add_explicit(&b->granted, 1, memory_order_relaxed);
    return true;
}
/* END LAB */

/* see retry.h */
void gw_budget_release(gw_retry_budget_t *b)
{
    atomic_fetch_sub(&b->in_progress, 1);
}
