/* outlier.c - see outlier.h.
 *
 * Every worker reports the failures and successes of its own connections here, so all the
 * state lives in the backend's atomics and every step that decides something is a single
 * atomic operation: a fetch-and-add counts, and a compare-and-swap on ejected_until_ms
 * decides which of several racing workers performs an ejection. No lock is ever taken. */
#include "outlier.h"

#include "log.h"

/* Backends of ALL[0..N) ejected at NOW_MS. A plain scan: an upstream has a handful of
 * backends, and this runs only when a backend reaches its failure threshold. */
static size_t count_ejected(gw_backend_t *const *all, size_t n, uint64_t now_ms)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += atomic_load(&all[i]->ejected_until_ms) > now_ms;
    return k;
}

static void log_ejection(const gw_outlier_cfg_t *cfg, const gw_backend_t *b, uint64_t ms,
                         unsigned nth)
{
    gw_warn("backend %s ejected for %llu ms after %u consecutive failures (ejection #%u)", b->name,
            (unsigned long long)ms, cfg->consecutive_failures, nth);
}

/* LAB 02: outlier ejection */
/* Each ejection of the same backend lasts longer than the one before, so a backend that
 * fails again as soon as it is back gets fewer chances to hurt real traffic. Without a cap
 * the length would grow without bound (and `ejections` never goes down): a backend that
 * failed a dozen times during one bad deploy would stay out long after it was fixed, and
 * the upstream would run short of capacity for no reason. 10x base bounds that; it is also
 * Envoy's default (max_ejection_time 300s for a 30s base). */
/* see outlier.h */
uint64_t gw_outlier_ejection_ms(const gw_outlier_cfg_t *cfg, unsigned previous)
{
    unsigned factor = previous < 9 ? previous + 1 : 10;
    return cfg->base_ejection_ms * factor;
}

/* True when EJECTED backends out of N stay within the configured share. One may always be
 * out: with 1 or 2 backends and 50% the share alone would forbid ejecting any, and passive
 * checks would never act on a small upstream. */
static bool share_allows(const gw_outlier_cfg_t *cfg, size_t ejected, size_t n)
{
    return ejected <= 1 || (uint64_t)ejected * 100u <= (uint64_t)cfg->max_ejection_percent * n;
}

/* Several workers may cross the threshold for the same backend at the same moment (each
 * saw count >= threshold). They all read `until` (not ejected), and all try to swap it for
 * their new deadline: the compare-and-swap lets exactly one of them succeed; the others
 * see that the value changed under them and back off. The share is checked before (the
 * common refusal, without touching the backend) and again after the swap, because two
 * workers may eject two different backends at once: each then counts the other too, and
 * whoever finds the share exceeded puts its backend back. */
/* see outlier.h */
bool gw_outlier_failure(const gw_outlier_cfg_t *cfg, gw_backend_t *b, gw_backend_t *const *all,
                        size_t n, uint64_t now_ms)
{
    if (cfg->consecutive_failures == 0 || cfg->base_ejection_ms == 0)
        return false;
    uint64_t until = atomic_load(&b->ejected_until_ms);
    if (until > now_ms) /* already out: this failure is from an older connection */
        return false;
    if (atomic_fetch_add(&b->consecutive_failures, 1) + 1 < cfg->consecutive_failures)
        return false;
    if (!share_allows(cfg, count_ejected(all, n, now_ms) + 1, n))
        return false;
    unsigned previous = atomic_load(&b->ejections);
    uint64_t ms = gw_outlier_ejection_ms(cfg, previous);
    if (!atomic_compare_exchange_strong(&b->ejected_until_ms, &until, now_ms + ms))
        return false; /* another worker ejected it first */
    if (!share_allows(cfg, count_ejected(all, n, now_ms), n)) {
        atomic_store(&b->ejected_until_ms, until); /* raced with another ejection: undo */
        return false;
    }
    atomic_store(&b->consecutive_failures, 0);
    atomic_fetch_add(&b->ejections, 1);
    log_ejection(cfg, b, ms, previous + 1);
    return true;
}
/* END LAB */

/* see outlier.h */
void gw_outlier_success(gw_backend_t *b)
{
    /* Every successful connection of every worker lands here. Writing the shared counter
     * each time would bounce its cache line between cores; it is almost always 0 already,
     * so read first and write only when a run of failures has to end. Relaxed is enough: a
     * stale 0 only lets a failure counted a moment ago on another core survive this success. */
    if (atomic_load_explicit(&b->consecutive_failures, memory_order_relaxed) != 0)
        atomic_store(&b->consecutive_failures, 0);
}
