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

static void log_ejection(const gw_backend_t *b, uint64_t ms, unsigned count, const char *what,
                         unsigned nth)
{
    gw_warn("backend %s ejected for %llu ms after %u consecutive %s (ejection #%u)", b->name,
            (unsigned long long)ms, count, what, nth);
}

/* Every run starts again from 0 (after an ejection, or at its end). */
static void reset_runs(gw_backend_t *b)
{
    atomic_store(&b->consecutive_failures, 0);
    atomic_store(&b->consecutive_gateway_errors, 0);
    atomic_store(&b->consecutive_5xx, 0);
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

/* One more in the run RUN of B, whose threshold is THRESHOLD (0: the run is off, nothing
 * counted). Several workers may cross the threshold for the same backend at the same moment
 * (each saw count >= threshold). They all read `until` (not ejected), and all try to swap it
 * for their new deadline: the compare-and-swap lets exactly one of them succeed; the others
 * see that the value changed under them and back off. The share is checked before (the
 * common refusal, without touching the backend) and again after the swap, because two
 * workers may eject two different backends at once: each then counts the other too, and
 * whoever finds the share exceeded puts its backend back. UNTIL is what the caller read of
 * ejected_until_ms (not in force at NOW_MS); WHAT names the run for the log. */
static bool count_in_run(const gw_outlier_cfg_t *cfg, gw_backend_t *b, gw_backend_t *const *all,
                         size_t n, uint64_t until, uint64_t now_ms, atomic_uint *run,
                         unsigned threshold, const char *what)
{
    if (threshold == 0 || atomic_fetch_add(run, 1) + 1 < threshold)
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
    reset_runs(b);
    atomic_fetch_add(&b->ejections, 1);
    log_ejection(b, ms, threshold, what, previous + 1);
    return true;
}

/* A failure is counted in every run that is on: the gateway answers it 502 or 504 itself,
 * so for the response runs it is one more bad answer. `||`: once one run ejected, the others
 * were reset and the failure is not counted again. */
/* see outlier.h */
bool gw_outlier_failure(const gw_outlier_cfg_t *cfg, gw_backend_t *b, gw_backend_t *const *all,
                        size_t n, uint64_t now_ms)
{
    if (cfg->base_ejection_ms == 0)
        return false;
    uint64_t until = atomic_load(&b->ejected_until_ms);
    if (until > now_ms) /* already out: this failure is from an older connection */
        return false;
    return count_in_run(cfg, b, all, n, until, now_ms, &b->consecutive_failures,
                        cfg->consecutive_failures, "failures") ||
           count_in_run(cfg, b, all, n, until, now_ms, &b->consecutive_gateway_errors,
                        cfg->consecutive_gateway_errors, "gateway errors") ||
           count_in_run(cfg, b, all, n, until, now_ms, &b->consecutive_5xx, cfg->consecutive_5xx,
                        "5xx");
}
/* END LAB */

/* Ends the run RUN. Every successful connection (or response) of every worker lands here.
 * Writing the shared counter each time would bounce its cache line between cores; it is
 * almost always 0 already, so read first and write only when a run has to end. Relaxed is
 * enough: a stale 0 only lets a failure counted a moment ago on another core survive this
 * success. */
static void end_run(atomic_uint *run)
{
    if (atomic_load_explicit(run, memory_order_relaxed) != 0)
        atomic_store(run, 0);
}

/* see outlier.h */
void gw_outlier_success(gw_backend_t *b)
{
    end_run(&b->consecutive_failures);
}

/* see outlier.h */
bool gw_outlier_response(const gw_outlier_cfg_t *cfg, gw_backend_t *b, gw_backend_t *const *all,
                         size_t n, unsigned status, uint64_t now_ms)
{
    if (cfg->consecutive_gateway_errors == 0 && cfg->consecutive_5xx == 0)
        return false; /* off (the default): not even a load per response */
    if (status < 500 || status > 599) {
        end_run(&b->consecutive_gateway_errors);
        end_run(&b->consecutive_5xx);
        return false;
    }
    uint64_t until = atomic_load(&b->ejected_until_ms);
    if (until > now_ms || cfg->base_ejection_ms == 0) /* an older connection's answer */
        return false;
    bool gateway = status >= 502 && status <= 504;
    if (!gateway)
        end_run(&b->consecutive_gateway_errors);
    return (gateway && count_in_run(cfg, b, all, n, until, now_ms, &b->consecutive_gateway_errors,
                                    cfg->consecutive_gateway_errors, "gateway errors")) ||
           count_in_run(cfg, b, all, n, until, now_ms, &b->consecutive_5xx, cfg->consecutive_5xx,
                        "5xx");
}

/* see outlier.h */
bool gw_outlier_uneject(gw_backend_t *b, uint64_t now_ms)
{
    /* A compare-and-swap: a worker that ejects B again at this moment (after the deadline
     * we read) keeps its new ejection. */
    uint64_t until = atomic_load(&b->ejected_until_ms);
    if (until <= now_ms || !atomic_compare_exchange_strong(&b->ejected_until_ms, &until, 0))
        return false;
    reset_runs(b);
    return true;
}
