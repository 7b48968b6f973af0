/* breaker.c - see breaker.h.
 *
 * Every worker admits connections and reports outcomes for the same backend, so the breaker
 * lives in atomics and every decision is one compare-and-swap (CAS) on one 64-bit word:
 *
 *   bits  0..1   state (closed, open, half-open)
 *   bits  2..11  trials in flight (half-open admissions not reported yet)
 *   bits 12..21  trial successes in the current half-open period
 *   bits 22..63  `since`: the ms of the last transition (opened at, closed at)
 *
 * Packing them makes each transition exact across workers: of several workers that try to
 * open, reopen or close the breaker at once, exactly one CAS succeeds, and the trial count
 * can never pass half_open_max because admitting a trial and checking the limit are the
 * same CAS.
 *
 * `since` also fences off stale outcomes without a lock: the run of consecutive failures
 * is stamped with the `since` it was counted under, and the rate window only counts buckets
 * after the one in which the breaker last closed. A close therefore empties both at once,
 * inside the CAS that closes it; zeroing them afterwards would leave a moment in which
 * another worker could reopen the breaker on the failures that opened it last time. */
#include "breaker.h"

#include <assert.h>

#define MASK(bits) ((UINT64_C(1) << (bits)) - 1)
#define TRIALS_SHIFT 2
#define SUCC_SHIFT 12
#define SINCE_SHIFT 22
#define COUNT_BITS 10
#define SINCE_BITS 42
#define RUN_BITS 22 /* consecutive: since << 22 | run length (saturating) */

/* The unpacked view of the state word. */
typedef struct word_s {
    gw_breaker_state_t state;
    unsigned trials;
    unsigned successes;
    uint64_t since;
} word_t;

static word_t unpack(uint64_t w)
{
    return (word_t){.state = (gw_breaker_state_t)(w & 3u),
                    .trials = (unsigned)((w >> TRIALS_SHIFT) & MASK(COUNT_BITS)),
                    .successes = (unsigned)((w >> SUCC_SHIFT) & MASK(COUNT_BITS)),
                    .since = w >> SINCE_SHIFT};
}

static uint64_t pack(word_t v)
{
    return (uint64_t)v.state | (uint64_t)v.trials << TRIALS_SHIFT |
           (uint64_t)v.successes << SUCC_SHIFT | (v.since & MASK(SINCE_BITS)) << SINCE_SHIFT;
}

/* half_open_max and success_to_close as honoured: 0 would leave a breaker open for ever. */
static unsigned clamp_count(unsigned n)
{
    return n == 0 ? 1 : n > GW_BREAKER_MAX_TRIALS ? GW_BREAKER_MAX_TRIALS : n;
}

/* The state at NOW: open reads as half-open once open_timeout has passed. The stored word
 * stays open until some worker admits a trial; nothing has to run on a timer. Workers'
 * clocks differ by a little, so a NOW before `since` is simply "not yet". */
static gw_breaker_state_t effective(word_t v, const gw_breaker_cfg_t *cfg, uint64_t now_ms)
{
    if (v.state == GW_BREAKER_OPEN && now_ms >= v.since && now_ms - v.since >= cfg->open_timeout_ms)
        return GW_BREAKER_HALF_OPEN;
    return v.state;
}

/* see breaker.h */
void gw_breaker_init(gw_breaker_t *b)
{
    atomic_init(&b->word, pack((word_t){.state = GW_BREAKER_CLOSED}));
    atomic_init(&b->consecutive, 0);
    for (int i = 0; i < GW_BREAKER_BUCKETS; i++)
        atomic_init(&b->buckets[i], 0);
}

/* ---- the rolling window ---------------------------------------------------------------
 * A bucket is one 64-bit word: epoch (low 32 bits of now / bucket_ms) << 32 | outcomes << 16
 * | failures. Epoch and counts change together in one CAS, so a bucket is never reset by
 * one worker while another adds to it (with the epoch in a separate word, an outcome added
 * between the epoch change and the reset would be lost). 32 bits of epoch cannot alias a
 * current slice before 2^32 slices of silence in that slot (136 years at 1 s slices). */

static uint64_t bucket_ms(const gw_breaker_cfg_t *cfg)
{
    uint64_t ms = cfg->window_ms / GW_BREAKER_BUCKETS;
    return ms ? ms : 1;
}

/* Adds one outcome to the bucket of NOW. 16-bit counts: a bucket that would overflow is
 * halved first, which keeps its failure ratio (the only thing the rule reads) and lets the
 * newest outcomes keep counting; min_requests above 65535 is the config's business. */
static void window_add(gw_breaker_t *b, const gw_breaker_cfg_t *cfg, bool ok, uint64_t now_ms)
{
    uint64_t epoch = now_ms / bucket_ms(cfg);
    _Atomic uint64_t *slot = &b->buckets[epoch % GW_BREAKER_BUCKETS];
    uint32_t ep = (uint32_t)epoch;
    uint64_t old = atomic_load(slot), next;
    do {
        uint32_t stored = (uint32_t)(old >> 32);
        uint64_t n = 0, f = 0;
        if ((int32_t)(stored - ep) > 0)
            return; /* a worker with a newer NOW reused the slot: ours left the window */
        if (stored == ep) {
            n = (old >> 16) & 0xffffu;
            f = old & 0xffffu;
        }
        if (n == 0xffffu) {
            n >>= 1;
            f >>= 1;
        }
        next = (uint64_t)ep << 32 | (n + 1) << 16 | (f + (ok ? 0 : 1));
    } while (!atomic_compare_exchange_weak(slot, &old, next));
}

/* Outcomes and failures in the window at NOW, counting only slices after the one in which
 * the breaker last closed (SINCE; 0 = it never transitioned). The slice of the close itself
 * is skipped because it may hold outcomes from before the breaker opened (an open period
 * shorter than a slice); the rate rule is blind for at most one slice after a close, while
 * the consecutive rule keeps working. */
static void window_sum(const gw_breaker_t *b, const gw_breaker_cfg_t *cfg, uint64_t since,
                       uint64_t now_ms, uint64_t *total, uint64_t *failed)
{
    uint64_t bms = bucket_ms(cfg), cur = now_ms / bms;
    uint64_t first = since == 0 ? 0 : since / bms + 1;
    *total = *failed = 0;
    for (unsigned i = 0; i < GW_BREAKER_BUCKETS; i++) {
        uint64_t w = atomic_load(&b->buckets[i]);
        uint32_t age = (uint32_t)cur - (uint32_t)(w >> 32);
        if (age >= GW_BREAKER_BUCKETS || age > cur)
            continue;
        uint64_t epoch = cur - age;
        if (epoch < first || epoch % GW_BREAKER_BUCKETS != i)
            continue;
        *total += (w >> 16) & 0xffffu;
        *failed += w & 0xffffu;
    }
}

/* The rate rule: at least min_requests outcomes and a failure share above the threshold. */
static bool rate_exceeded(const gw_breaker_t *b, const gw_breaker_cfg_t *cfg, uint64_t since,
                          uint64_t now_ms)
{
    if (!(cfg->failure_rate_percent > 0))
        return false;
    uint64_t total, failed;
    window_sum(b, cfg, since, now_ms, &total, &failed);
    return total > 0 && total >= cfg->min_requests &&
           (double)failed * 100.0 > cfg->failure_rate_percent * (double)total;
}

/* ---- the run of consecutive failures, stamped with the `since` it belongs to ---------- */

/* Counts a failure under SINCE; returns the run's length. A run stamped with another
 * `since` is from before a transition and starts again from this failure. */
static uint64_t run_failure(gw_breaker_t *b, uint64_t since)
{
    uint64_t stamp = since & MASK(SINCE_BITS);
    uint64_t old = atomic_load(&b->consecutive), next;
    do {
        uint64_t n = (old >> RUN_BITS) == stamp ? old & MASK(RUN_BITS) : 0;
        if (n < MASK(RUN_BITS))
            n++;
        next = stamp << RUN_BITS | n;
    } while (!atomic_compare_exchange_weak(&b->consecutive, &old, next));
    return next & MASK(RUN_BITS);
}

/* Ends the run counted under SINCE. Read first: almost every outcome is a success and the
 * run almost always 0 already, and a load does not bounce the cache line between cores as
 * a store would. A run stamped otherwise is not ours to end (a stale success must not end
 * a newer period's run, and an older run is ignored by run_failure anyway). */
static void run_success(gw_breaker_t *b, uint64_t since)
{
    uint64_t stamp = since & MASK(SINCE_BITS);
    uint64_t old = atomic_load_explicit(&b->consecutive, memory_order_relaxed);
    while ((old >> RUN_BITS) == stamp && (old & MASK(RUN_BITS)) != 0) {
        if (atomic_compare_exchange_weak(&b->consecutive, &old, stamp << RUN_BITS))
            return;
    }
}

/* LAB 03: circuit breaker */
/* A circuit breaker stops sending traffic to a backend that keeps failing, so clients fail
 * fast instead of waiting on connect timeouts, and the backend gets room to recover.
 *
 *   CLOSED     normal: every connection goes; outcomes are counted. Enough consecutive
 *              failures, or too high a failure rate over the window, open it.
 *   OPEN       nothing goes, for open_timeout. No traffic means no information, so after
 *              the timeout the breaker has to find out whether the backend is back...
 *   HALF_OPEN  ...by letting a few trial connections through. One trial failure reopens it
 *              (a new open period); success_to_close successes in a row close it.
 *
 * Why only a few trials: half-open means "we do not know yet". If every worker let its
 * traffic through, a backend that is still broken (or just restarted, with cold caches and
 * a backlog of reconnecting clients) would take the full load at once, fail again, and the
 * breaker would have protected nothing. half_open_max bounds the damage of a wrong guess
 * to a handful of connections, and it counts across ALL workers, so the bound does not
 * grow with the number of threads: the count lives in the shared state word, and taking a
 * slot is the same CAS that checks the limit. */

/* The next word after a trial's outcome (OK) in effective state ST; *RESULT gets the new
 * state if this is a transition. The trial's slot is handed back in every case. */
static word_t trial_outcome(word_t v, gw_breaker_state_t st, const gw_breaker_cfg_t *cfg, bool ok,
                            uint64_t now_ms, int *result)
{
    word_t n = v;
    *result = -1;
    if (n.trials > 0)
        n.trials--;
    if (st != GW_BREAKER_HALF_OPEN)
        return n; /* open (another trial reopened it) or closed: just the slot */
    if (!ok) {
        n.state = GW_BREAKER_OPEN;
        n.successes = 0;
        n.since = now_ms;
        *result = GW_BREAKER_OPEN;
        return n;
    }
    n.successes = (v.state == GW_BREAKER_HALF_OPEN ? v.successes : 0) + 1;
    if (v.state == GW_BREAKER_OPEN) { /* open past its timeout: half-open starts now */
        n.state = GW_BREAKER_HALF_OPEN;
        n.since = now_ms;
    }
    if (n.successes >= clamp_count(cfg->success_to_close)) {
        n.state = GW_BREAKER_CLOSED; /* the new `since` empties window and run */
        n.successes = 0;
        n.since = now_ms;
        *result = GW_BREAKER_CLOSED;
    }
    return n;
}

/* Closed -> open, unless another worker made a transition since W was read: then this
 * worker's evidence is stale and the breaker is left as it is. Retries only when the trial
 * count alone changed (a late trial handing its slot back). */
static int trip_open(gw_breaker_t *b, uint64_t w, uint64_t now_ms)
{
    uint64_t since = unpack(w).since;
    for (;;) {
        word_t v = unpack(w);
        if (v.state != GW_BREAKER_CLOSED || v.since != since)
            return -1;
        word_t n = {.state = GW_BREAKER_OPEN, .trials = v.trials, .since = now_ms};
        if (atomic_compare_exchange_weak(&b->word, &w, pack(n)))
            return GW_BREAKER_OPEN;
    }
}

/* An outcome while closed (W: the state word it was read under): count it, then apply the
 * two rules. Only a failure can open the breaker, so a success costs no window scan. */
static int closed_outcome(gw_breaker_t *b, const gw_breaker_cfg_t *cfg, bool ok, uint64_t w,
                          uint64_t now_ms)
{
    uint64_t since = unpack(w).since;
    if (cfg->failure_rate_percent > 0)
        window_add(b, cfg, ok, now_ms);
    if (ok) {
        run_success(b, since);
        return -1;
    }
    uint64_t run = run_failure(b, since);
    bool trip = (cfg->consecutive_failures > 0 && run >= cfg->consecutive_failures) ||
                rate_exceeded(b, cfg, since, now_ms);
    return trip ? trip_open(b, w, now_ms) : -1;
}

/* see breaker.h */
bool gw_breaker_allow(gw_breaker_t *b, const gw_breaker_cfg_t *cfg, uint64_t now_ms, bool *trial)
{
    assert(now_ms <= MASK(SINCE_BITS));
    *trial = false;
    uint64_t w = atomic_load(&b->word);
    for (;;) {
        word_t v = unpack(w);
        gw_breaker_state_t st = effective(v, cfg, now_ms);
        if (st == GW_BREAKER_CLOSED)
            return true;
        if (st == GW_BREAKER_OPEN || v.trials >= clamp_count(cfg->half_open_max))
            return false;
        word_t n = v;
        n.trials++;
        if (v.state == GW_BREAKER_OPEN) { /* the first trial after the timeout */
            n.state = GW_BREAKER_HALF_OPEN;
            n.successes = 0;
            n.since = now_ms;
        }
        if (atomic_compare_exchange_weak(&b->word, &w, pack(n))) {
            *trial = true;
            return true;
        }
    }
}

/* see breaker.h */
int gw_breaker_record(gw_breaker_t *b, const gw_breaker_cfg_t *cfg, bool ok, bool trial,
                      uint64_t now_ms)
{
    assert(now_ms <= MASK(SINCE_BITS));
    uint64_t w = atomic_load(&b->word);
    if (!trial) { /* not a trial: it only counts while closed */
        if (effective(unpack(w), cfg, now_ms) != GW_BREAKER_CLOSED)
            return -1; /* admitted before the breaker opened: nothing new */
        return closed_outcome(b, cfg, ok, w, now_ms);
    }
    for (;;) {
        word_t v = unpack(w);
        gw_breaker_state_t st = effective(v, cfg, now_ms);
        int result;
        uint64_t next = pack(trial_outcome(v, st, cfg, ok, now_ms, &result));
        if (!atomic_compare_exchange_weak(&b->word, &w, next))
            continue;
        if (st == GW_BREAKER_CLOSED) /* a trial that outlived the close: an ordinary outcome */
            return closed_outcome(b, cfg, ok, next, now_ms);
        return result;
    }
}
/* END LAB */

/* see breaker.h */
bool gw_breaker_may_allow(const gw_breaker_t *b, const gw_breaker_cfg_t *cfg, uint64_t now_ms)
{
    word_t v = unpack(atomic_load(&b->word));
    switch (effective(v, cfg, now_ms)) {
    case GW_BREAKER_CLOSED:
        return true;
    case GW_BREAKER_HALF_OPEN:
        return v.trials < clamp_count(cfg->half_open_max);
    default:
        return false;
    }
}

/* see breaker.h */
gw_breaker_state_t gw_breaker_state(const gw_breaker_t *b, const gw_breaker_cfg_t *cfg,
                                    uint64_t now_ms)
{
    return effective(unpack(atomic_load(&b->word)), cfg, now_ms);
}

/* see breaker.h */
const char *gw_breaker_state_name(gw_breaker_state_t s)
{
    switch (s) {
    case GW_BREAKER_CLOSED:
        return "closed";
    case GW_BREAKER_OPEN:
        return "open";
    case GW_BREAKER_HALF_OPEN:
        return "half_open";
    }
    return "?";
}

/* see breaker.h */
unsigned gw_breaker_trials(const gw_breaker_t *b)
{
    return unpack(atomic_load(&b->word)).trials;
}
