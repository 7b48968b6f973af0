/* ratelimit.h - token buckets shared by all workers: one lock-free bucket (a listener's
 * global limit) and a bounded table of buckets per key (per client address). */
#ifndef GW_RATELIMIT_H
#define GW_RATELIMIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Rates are kept to a millionth of a token per second, between GW_RATE_MIN and
 * GW_RATE_MAX tokens per second (the bound keeps the bucket's clock within 64 bits for
 * centuries of uptime, ratelimit.c). Bursts are 1..GW_BURST_MAX tokens. */
#define GW_RATE_MIN 0.000001
#define GW_RATE_MAX 10000000.0
#define GW_BURST_MAX 1000000u
/* Longest key of a keyed limiter: an IPv6 address. */
#define GW_KEY_MAX 16

/* A rate as the bucket computes with it: its clock conversion, fixed at init. Read-only
 * after init, so every worker may read it without synchronisation. */
typedef struct gw_rate_s {
    uint64_t num; /* bucket time units per DEN ns: now_units = now_ns * num / den */
    uint64_t den;
    uint64_t burst; /* tokens */
} gw_rate_t;

/* Fills R for RATE tokens per second and BURST tokens. Returns 0, or GW_EINVAL when RATE
 * is not within [GW_RATE_MIN, GW_RATE_MAX] (NaN included) or BURST not within
 * [1, GW_BURST_MAX]; R is then unchanged. */
int gw_rate_init(gw_rate_t *r, double rate, unsigned burst);

/* One token bucket, exact across workers (GCRA on one atomic word, ratelimit.c). */
typedef struct gw_bucket_s {
    gw_rate_t rate;
    _Atomic uint64_t tat; /* theoretical arrival time, in bucket units */
} gw_bucket_t;

/* Makes B a full bucket of RATE tokens per second and BURST tokens. Returns 0 or GW_EINVAL
 * (see gw_rate_init). Not thread-safe: call before B is shared. */
int gw_bucket_init(gw_bucket_t *b, double rate, unsigned burst);

/* Takes one token at NOW_NS (monotonic ns) if there is one: true = allowed. Safe from any
 * number of threads at once; the tokens granted over any span never exceed burst plus the
 * span times the rate (to a 1/1024 token, and never by a whole token), however the calls
 * race. NOW_NS may differ a little between threads (each loop caches its own time). A
 * refusal writes nothing, so a flood of refused callers does not bounce the cache line. */
bool gw_bucket_take(gw_bucket_t *b, uint64_t now_ns);

/* Nanoseconds from NOW_NS until gw_bucket_take would next succeed (0: it would now); for
 * Retry-After. Read-only: another caller may take that token first. */
uint64_t gw_bucket_wait_ns(const gw_bucket_t *b, uint64_t now_ns);

/* A table of buckets keyed by short byte strings, with a hard cap on entries. */
typedef struct gw_keyed_limiter_s gw_keyed_limiter_t;

/* A limiter giving every key its own bucket of RATE tokens per second and BURST, holding at
 * most MAX_KEYS keys, split into STRIPES independently locked parts (rounded up to a power
 * of two and down so that each stripe holds at least one key; each stripe holds MAX_KEYS /
 * STRIPES keys, so the table as a whole never holds more than MAX_KEYS; a stripe may
 * evict while others have room, the price of not sharing one lock). All memory, about 56
 * bytes per key, is allocated here, never later. Returns NULL on an invalid rate or burst,
 * MAX_KEYS of 0, STRIPES of 0 or above 65536, or out of memory. */
gw_keyed_limiter_t *gw_keyed_new(double rate, unsigned burst, size_t max_keys, size_t stripes);

/* Takes one token of KEY (KEYLEN bytes, 1..GW_KEY_MAX; a longer key MUST NOT be passed) at
 * NOW_NS: true = allowed. A key seen for the first time starts with a full bucket; when its
 * stripe is full, an idle key of that stripe (one whose bucket is full again) is evicted,
 * or else its least recently used key. Safe from any thread; locks one stripe. */
bool gw_keyed_take(gw_keyed_limiter_t *l, const void *key, size_t keylen, uint64_t now_ns);

/* Nanoseconds from NOW_NS until gw_keyed_take of KEY (KEYLEN bytes, as for gw_keyed_take)
 * would next succeed, 0 if it would now or the key is not held (a new key starts full); for
 * Retry-After after a refusal. Read-only (the key's place in the LRU order is not touched);
 * another caller may take that token first. Safe from any thread; locks one stripe. */
uint64_t gw_keyed_wait_ns(gw_keyed_limiter_t *l, const void *key, size_t keylen, uint64_t now_ns);

/* Keys held now (may be stale by the time it returns when other threads are taking). */
size_t gw_keyed_count(const gw_keyed_limiter_t *l);

/* Keys evicted so far to make room (for metrics). */
uint64_t gw_keyed_evictions(const gw_keyed_limiter_t *l);

/* Frees L (NULL is fine). No other thread may be using it. */
void gw_keyed_free(gw_keyed_limiter_t *l);

#endif
