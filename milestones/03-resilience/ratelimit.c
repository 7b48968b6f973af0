/* ratelimit.c - see ratelimit.h.
 *
 * The bucket is GCRA, the "generic cell rate algorithm" of ATM networks: instead of a token
 * count plus a last-refill time (two values that would have to change together), it keeps
 * one number, the theoretical arrival time (TAT): the time at which the bucket would be
 * full again if nobody took anything more. Taking a token pushes TAT one emission interval
 * (1/rate) later; a take is refused when that would put TAT more than `burst` intervals
 * ahead of now. One number means one atomic word and one compare-and-swap per take: no
 * lock, and exact however many workers take at once.
 *
 * Exactness over long periods: with time in nanoseconds, 1/rate is rarely a whole number
 * (1/7 s = 142857142.857... ns), and adding a rounded interval on every take drifts: a
 * fraction of a ns per token, but it adds up without bound, so the bucket enforces a rate
 * that is not the configured one and a test over a long span is off by a token. So the
 * bucket measures time in its own unit, 1/1024 of an emission interval: a token is exactly
 * 1024 units and the burst exactly burst * 1024, and nothing ever gets rounded while adding
 * up. The one conversion, "now" from ns to units, is an exact 128-bit integer division of
 * now itself (never of a difference that accumulates), so its rounding is below one unit
 * and never compounds: over an hour at 7/s exactly 25200 tokens are refilled. The unit is
 * a fraction of a token rather than a whole one so that a bucket that was idle restarts
 * from (almost exactly) the moment of the take, not from the last whole-token tick.
 * The rate itself is kept as an exact fraction: a whole number of millionths of a token
 * per second, so the configured "0.5" or "7" or "33.3" is exactly what is enforced. */
#include "ratelimit.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "error.h"
#include "hash.h"

#define UNITS 1024u /* bucket time units per token (per emission interval) */

static uint64_t gcd64(uint64_t a, uint64_t b)
{
    while (b != 0) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* see ratelimit.h */
int gw_rate_init(gw_rate_t *r, double rate, unsigned burst)
{
    if (!(rate >= GW_RATE_MIN && rate <= GW_RATE_MAX) || burst < 1 || burst > GW_BURST_MAX)
        return GW_EINVAL;
    /* rate = micro / 10^6 tokens/s, a token = UNITS units, so a ns is
     * micro * UNITS / 10^15 units: num/den, reduced to keep the products small. */
    uint64_t micro = (uint64_t)llround(rate * 1e6);
    uint64_t num = micro * UNITS, den = UINT64_C(1000000000000000);
    uint64_t g = gcd64(num, den);
    r->num = num / g;
    r->den = den / g;
    r->burst = burst;
    return 0;
}

/* see ratelimit.h */
int gw_bucket_init(gw_bucket_t *b, double rate, unsigned burst)
{
    gw_rate_t r;
    int err = gw_rate_init(&r, rate, burst);
    if (err != 0)
        return err;
    b->rate = r;
    atomic_init(&b->tat, 0); /* any TAT at or before now is a full bucket */
    return 0;
}

/* LAB 03: token bucket */
/* NOW_NS in bucket units, rounded down. The product needs up to 118 bits; 64-bit units
 * themselves last 58 years of uptime at GW_RATE_MAX and longer at any lower rate. */
static uint64_t to_units(const gw_rate_t *r, uint64_t now_ns)
{
    return (uint64_t)((unsigned __int128)now_ns * r->num / r->den);
}

/* The heart of GCRA. A bucket whose TAT is in the past is full: the take starts from NOW
 * (credit beyond the burst is never kept). The take is allowed when the new TAT stays
 * within burst tokens of NOW; *NEXT is then the TAT to store. Pure: the callers decide how
 * to store it (a compare-and-swap for the shared bucket, a plain store under a stripe's
 * lock for the keyed table). */
static bool gcra_next(const gw_rate_t *r, uint64_t tat, uint64_t now, uint64_t *next)
{
    uint64_t start = tat > now ? tat : now;
    if (start + UNITS - now > r->burst * UNITS)
        return false;
    *next = start + UNITS;
    return true;
}

/* see ratelimit.h */
bool gw_bucket_take(gw_bucket_t *b, uint64_t now_ns)
{
    uint64_t now = to_units(&b->rate, now_ns);
    uint64_t tat = atomic_load(&b->tat), next;
    do {
        if (!gcra_next(&b->rate, tat, now, &next))
            return false;
        /* Another worker may have taken a token since the load: the CAS then fails,
         * refreshes TAT, and the decision is made again on the new value. */
    } while (!atomic_compare_exchange_weak(&b->tat, &tat, next));
    return true;
}

/* see ratelimit.h */
uint64_t gw_bucket_wait_ns(const gw_bucket_t *b, uint64_t now_ns)
{
    const gw_rate_t *r = &b->rate;
    uint64_t now = to_units(r, now_ns), tat = atomic_load(&b->tat), next;
    if (gcra_next(r, tat, now, &next))
        return 0;
    /* The take succeeds once now reaches NEED units: the first ns at which
     * floor(ns * num / den) >= need is ceil(need * den / num). */
    unsigned __int128 need = (unsigned __int128)tat + UNITS - r->burst * UNITS;
    unsigned __int128 at = (need * r->den + r->num - 1) / r->num;
    return (uint64_t)at - now_ns;
}
/* END LAB */

/* ---- per-key buckets ---------------------------------------------------------------------
 * A striped hash table: a key's hash picks a stripe, each stripe has its own mutex, its own
 * chains and its own LRU list, so workers limiting different clients rarely wait for each
 * other and there is no global lock. Every entry is allocated up front: the table can hold
 * max_keys entries and not one more, whatever arrives.
 *
 * When a stripe is full, a new key takes the place of an old one:
 *  - An idle key first: one whose bucket is full again (TAT at or before now). A full bucket
 *    is exactly what a key seen for the first time gets, so forgetting it loses nothing:
 *    if that client comes back, it is treated exactly as it would have been.
 *  - Otherwise the least recently used key. That client had used part of its burst, and
 *    forgetting it hands it a fresh, full burst on its next connection: up to `burst`
 *    extra tokens. That is the accepted cost of a hard bound on memory. It only happens
 *    when the table is full of busy clients, i.e. under a flood of distinct addresses, and
 *    then the listener's global bucket still bounds the total.
 * Only the EVICT_SCAN oldest entries are examined for an idle one, so a flood costs O(1)
 * per new key instead of a scan of the whole stripe; the oldest are the likeliest to be
 * idle anyway. */

#define NIL UINT32_MAX
#define EVICT_SCAN 8

typedef struct entry_s {
    uint64_t tat;
    uint32_t hash;         /* low 32 bits of the key's hash: its chain, without rehashing */
    uint32_t chain;        /* next entry in the same chain, or NIL */
    uint32_t older, newer; /* the stripe's LRU list */
    uint8_t len;
    uint8_t key[GW_KEY_MAX];
} entry_t;

typedef struct stripe_s {
    _Alignas(64) pthread_mutex_t lock; /* a cache line per stripe: no false sharing */
    entry_t *entries;                  /* cap entries, the first `used` in use */
    uint32_t *heads;                   /* mask + 1 chain heads */
    uint32_t cap, used, mask;
    uint32_t oldest, newest;
    _Atomic size_t count; /* `used`, readable without the lock */
    _Atomic uint64_t evictions;
} stripe_t;

struct gw_keyed_limiter_s {
    gw_rate_t rate;
    uint64_t seed;
    size_t nstripes; /* a power of two */
    stripe_t *stripes;
    entry_t *entries;
    uint32_t *heads;
};

/* A secret per table, so that nobody can pick addresses that all land in one chain. Not a
 * clock read and not part of any test's outcome: tests that care where keys land use one
 * stripe. */
static uint64_t random_seed(const void *salt)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s)
        s = (uint64_t)(uintptr_t)salt * UINT64_C(0x9e3779b97f4a7c15);
    return s;
}

static size_t pow2_at_least(size_t n)
{
    size_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

/* Sizes stripes and chains: 0, or GW_EINVAL when the shape is impossible. */
static int plan(size_t max_keys, size_t stripes, size_t *nstripes, size_t *cap, size_t *heads)
{
    if (max_keys == 0 || stripes == 0 || stripes > 65536)
        return GW_EINVAL;
    size_t n = pow2_at_least(stripes);
    while (n > max_keys)
        n >>= 1;
    *nstripes = n;
    *cap = max_keys / n;
    if (*cap >= NIL / 2)
        return GW_EINVAL;
    *heads = pow2_at_least(*cap * 2); /* chains average under one entry */
    return 0;
}

static void stripes_init(gw_keyed_limiter_t *l, size_t cap, size_t nheads)
{
    for (size_t i = 0; i < l->nstripes; i++) {
        stripe_t *s = &l->stripes[i];
        pthread_mutex_init(&s->lock, NULL);
        s->entries = l->entries + i * cap;
        s->heads = l->heads + i * nheads;
        for (size_t j = 0; j < nheads; j++)
            s->heads[j] = NIL;
        s->cap = (uint32_t)cap;
        s->used = 0;
        s->mask = (uint32_t)(nheads - 1);
        s->oldest = s->newest = NIL;
        atomic_init(&s->count, 0);
        atomic_init(&s->evictions, 0);
    }
}

/* see ratelimit.h */
gw_keyed_limiter_t *gw_keyed_new(double rate, unsigned burst, size_t max_keys, size_t stripes)
{
    gw_rate_t r;
    size_t n, cap, nheads;
    if (gw_rate_init(&r, rate, burst) != 0 || plan(max_keys, stripes, &n, &cap, &nheads) != 0)
        return NULL;
    gw_keyed_limiter_t *l = calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    l->rate = r;
    l->nstripes = n;
    l->seed = random_seed(l);
    l->stripes = aligned_alloc(_Alignof(stripe_t), n * sizeof(stripe_t));
    l->entries = calloc(n * cap, sizeof(entry_t));
    l->heads = calloc(n * nheads, sizeof(uint32_t));
    if (l->stripes == NULL || l->entries == NULL || l->heads == NULL) {
        free(l->stripes);
        free(l->entries);
        free(l->heads);
        free(l);
        return NULL;
    }
    stripes_init(l, cap, nheads);
    return l;
}

/* see ratelimit.h */
void gw_keyed_free(gw_keyed_limiter_t *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->nstripes; i++)
        pthread_mutex_destroy(&l->stripes[i].lock);
    free(l->stripes);
    free(l->entries);
    free(l->heads);
    free(l);
}

/* LRU list, newest at one end, oldest at the other (indexes into the stripe's entries). */
static void lru_unlink(stripe_t *s, uint32_t i)
{
    entry_t *e = &s->entries[i];
    if (e->older != NIL)
        s->entries[e->older].newer = e->newer;
    else
        s->oldest = e->newer;
    if (e->newer != NIL)
        s->entries[e->newer].older = e->older;
    else
        s->newest = e->older;
}

static void lru_push_newest(stripe_t *s, uint32_t i)
{
    entry_t *e = &s->entries[i];
    e->older = s->newest;
    e->newer = NIL;
    if (s->newest != NIL)
        s->entries[s->newest].newer = i;
    else
        s->oldest = i;
    s->newest = i;
}

static void chain_unlink(stripe_t *s, uint32_t i)
{
    uint32_t *link = &s->heads[s->entries[i].hash & s->mask];
    while (*link != i)
        link = &s->entries[*link].chain;
    *link = s->entries[i].chain;
}

static uint32_t find(const stripe_t *s, uint32_t hash, const void *key, size_t len)
{
    for (uint32_t i = s->heads[hash & s->mask]; i != NIL; i = s->entries[i].chain) {
        const entry_t *e = &s->entries[i];
        if (e->hash == hash && e->len == len && memcmp(e->key, key, len) == 0)
            return i;
    }
    return NIL;
}

/* The entry to reuse for a new key in a full stripe: an idle one among the EVICT_SCAN
 * oldest (bucket full again at NOW units: nothing lost), else the oldest. */
static uint32_t victim(const stripe_t *s, uint64_t now)
{
    uint32_t i = s->oldest;
    for (int k = 0; k < EVICT_SCAN && i != NIL; k++, i = s->entries[i].newer)
        if (s->entries[i].tat <= now)
            return i;
    return s->oldest;
}

/* A slot for a new key in S (its lock held): a never-used one while there are, else a
 * victim, taken out of its chain and of the LRU list. */
static uint32_t new_slot(stripe_t *s, uint64_t now)
{
    if (s->used < s->cap) {
        atomic_store_explicit(&s->count, s->used + 1, memory_order_relaxed);
        return s->used++;
    }
    uint32_t i = victim(s, now);
    chain_unlink(s, i);
    lru_unlink(s, i);
    atomic_fetch_add_explicit(&s->evictions, 1, memory_order_relaxed);
    return i;
}

/* see ratelimit.h */
bool gw_keyed_take(gw_keyed_limiter_t *l, const void *key, size_t keylen, uint64_t now_ns)
{
    assert(keylen >= 1 && keylen <= GW_KEY_MAX);
    if (keylen > GW_KEY_MAX)
        keylen = GW_KEY_MAX; /* never past the entry's key, even with assertions off */
    uint64_t h = gw_hash_bytes(key, keylen, l->seed);
    stripe_t *s = &l->stripes[(h >> 32) & (l->nstripes - 1)];
    uint32_t hash = (uint32_t)h;
    uint64_t now = to_units(&l->rate, now_ns), next = 0;

    pthread_mutex_lock(&s->lock);
    uint32_t i = find(s, hash, key, keylen);
    if (i == NIL) {
        i = new_slot(s, now);
        entry_t *e = &s->entries[i];
        e->tat = 0; /* a full bucket */
        e->hash = hash;
        e->len = (uint8_t)keylen;
        memcpy(e->key, key, keylen);
        e->chain = s->heads[hash & s->mask];
        s->heads[hash & s->mask] = i;
    } else {
        lru_unlink(s, i);
    }
    lru_push_newest(s, i);
    entry_t *e = &s->entries[i];
    bool ok = gcra_next(&l->rate, e->tat, now, &next);
    if (ok)
        e->tat = next;
    pthread_mutex_unlock(&s->lock);
    return ok;
}

/* see ratelimit.h */
uint64_t gw_keyed_wait_ns(gw_keyed_limiter_t *l, const void *key, size_t keylen, uint64_t now_ns)
{
    assert(keylen >= 1 && keylen <= GW_KEY_MAX);
    if (keylen > GW_KEY_MAX)
        keylen = GW_KEY_MAX;
    uint64_t h = gw_hash_bytes(key, keylen, l->seed);
    stripe_t *s = &l->stripes[(h >> 32) & (l->nstripes - 1)];
    /* The key's TAT in a bucket of the same rate: the single bucket's arithmetic, reused. */
    gw_bucket_t b = {.rate = l->rate};
    uint64_t tat = 0;
    pthread_mutex_lock(&s->lock);
    uint32_t i = find(s, (uint32_t)h, key, keylen);
    if (i != NIL)
        tat = s->entries[i].tat;
    pthread_mutex_unlock(&s->lock);
    atomic_init(&b.tat, tat);
    return gw_bucket_wait_ns(&b, now_ns);
}

/* see ratelimit.h */
size_t gw_keyed_count(const gw_keyed_limiter_t *l)
{
    size_t n = 0;
    for (size_t i = 0; i < l->nstripes; i++)
        n += atomic_load_explicit(&l->stripes[i].count, memory_order_relaxed);
    return n;
}

/* see ratelimit.h */
uint64_t gw_keyed_evictions(const gw_keyed_limiter_t *l)
{
    uint64_t n = 0;
    for (size_t i = 0; i < l->nstripes; i++)
        n += atomic_load_explicit(&l->stripes[i].evictions, memory_order_relaxed);
    return n;
}
