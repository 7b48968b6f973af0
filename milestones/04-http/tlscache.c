/* tlscache.c - the shared, striped, bounded TLS session cache (see tlscache.h).
 *
 * Why not br_ssl_session_cache_lru per stripe, each behind its stripe's lock. It was the
 * first plan, and it would work as a store; what it lacks is around it:
 *  - it refuses a second save of an id it holds (it keeps the old entry), where a cache
 *    should keep the newer parameters;
 *  - it reports nothing: a store that was refused and an eviction are both silent, so the
 *    hits / stores / evictions counters would need its private fields (store_ptr, tail);
 *  - its index key is drawn, on the first save, from the DRBG of the server context doing
 *    the save (so a test needs a live, seeded server context), and every lookup computes an
 *    HMAC to mask the id, inside the lock: a defence for its binary tree against chosen ids,
 *    which a hash table of server-chosen ids does not need (tlscache.h).
 * The table below is 03's keyed limiter's shape (ratelimit.c): chains and an LRU list of
 * 32-bit indexes into entries allocated up front, per stripe. */
#include "04-http/tlscache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "hash.h"
#include "metrics.h"

#define NIL UINT32_MAX
#define ID_LEN 32
#define SECRET_LEN 48

typedef struct entry_s {
    unsigned char id[ID_LEN];
    unsigned char secret[SECRET_LEN];
    uint16_t version, suite;
    uint32_t chain;        /* next entry in the same chain, or NIL */
    uint32_t older, newer; /* the stripe's LRU list */
} entry_t;

_Static_assert(sizeof(entry_t) == 96, "an entry is 96 bytes: GW_TLSCACHE_ENTRY_BYTES counts on it");

/* A stripe's counters are written only with its lock held, so each has one writer at a time
 * (gw_counter_t's rule, kept by the mutex rather than by a thread); a scrape reads them with
 * relaxed loads, without the lock. */
struct gw_tlscache_stripe_s {
    _Alignas(64) pthread_mutex_t lock; /* a cache line per stripe: no false sharing */
    entry_t *entries;                  /* cap entries, the first `used` in use */
    uint32_t *heads;                   /* mask + 1 chain heads */
    uint32_t cap, used, mask;
    uint32_t oldest, newest;
    gw_counter_t hits, misses, stores, evictions, count;
};

static size_t pow2_at_least(size_t n)
{
    size_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

/* The stripe and the chain of ID: the hash's high half picks the stripe, its low half the
 * chain, so the two choices do not follow each other. Seed 0: the ids are the server's
 * random draws, not the peer's choice (tlscache.h). */
static gw_tlscache_stripe_t *stripe_of(const gw_tlscache_t *c, const unsigned char *id,
                                       uint32_t *hash)
{
    uint64_t h = gw_hash_bytes(id, ID_LEN, 0);
    *hash = (uint32_t)h;
    return &c->stripes[(h >> 32) & (c->nstripes - 1)];
}

static uint32_t find(const gw_tlscache_stripe_t *s, uint32_t hash, const unsigned char *id)
{
    for (uint32_t i = s->heads[hash & s->mask]; i != NIL; i = s->entries[i].chain)
        if (memcmp(s->entries[i].id, id, ID_LEN) == 0)
            return i;
    return NIL;
}

static void lru_unlink(gw_tlscache_stripe_t *s, uint32_t i)
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

static void lru_push_newest(gw_tlscache_stripe_t *s, uint32_t i)
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

static void chain_unlink(gw_tlscache_stripe_t *s, uint32_t i)
{
    uint32_t h = (uint32_t)gw_hash_bytes(s->entries[i].id, ID_LEN, 0);
    uint32_t *link = &s->heads[h & s->mask];
    while (*link != i)
        link = &s->entries[*link].chain;
    *link = s->entries[i].chain;
}

/* A slot for a new session in S (its lock held): a never-used one while there are, else
 * the least recently used session's, taken out of its chain and the list and wiped (it
 * held a master secret). */
static uint32_t new_slot(gw_tlscache_stripe_t *s)
{
    if (s->used < s->cap) {
        gw_counter_inc(&s->count);
        return s->used++;
    }
    uint32_t i = s->oldest;
    chain_unlink(s, i);
    lru_unlink(s, i);
    explicit_bzero(&s->entries[i], sizeof s->entries[i]);
    gw_counter_inc(&s->evictions);
    return i;
}

static void cache_save(const br_ssl_session_cache_class **ctx, br_ssl_server_context *server_ctx,
                       const br_ssl_session_parameters *params)
{
    (void)server_ctx;
    const gw_tlscache_t *c = (const gw_tlscache_t *)(const void *)ctx;
    if (params->session_id_len != ID_LEN) /* BearSSL always draws 32 bytes */
        return;
    uint32_t hash;
    gw_tlscache_stripe_t *s = stripe_of(c, params->session_id, &hash);
    pthread_mutex_lock(&s->lock);
    uint32_t i = find(s, hash, params->session_id);
    if (i == NIL) {
        i = new_slot(s);
        entry_t *e = &s->entries[i];
        memcpy(e->id, params->session_id, ID_LEN);
        e->chain = s->heads[hash & s->mask];
        s->heads[hash & s->mask] = i;
    } else {
        lru_unlink(s, i); /* the same id again: the newer parameters win */
    }
    lru_push_newest(s, i);
    entry_t *e = &s->entries[i];
    memcpy(e->secret, params->master_secret, SECRET_LEN);
    e->version = params->version;
    e->suite = params->cipher_suite;
    gw_counter_inc(&s->stores);
    pthread_mutex_unlock(&s->lock);
}

static int cache_load(const br_ssl_session_cache_class **ctx, br_ssl_server_context *server_ctx,
                      br_ssl_session_parameters *params)
{
    (void)server_ctx;
    const gw_tlscache_t *c = (const gw_tlscache_t *)(const void *)ctx;
    if (params->session_id_len != ID_LEN) {
        gw_tlscache_stripe_t *s = &c->stripes[0];
        pthread_mutex_lock(&s->lock);
        gw_counter_inc(&s->misses);
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    uint32_t hash;
    gw_tlscache_stripe_t *s = stripe_of(c, params->session_id, &hash);
    pthread_mutex_lock(&s->lock);
    uint32_t i = find(s, hash, params->session_id);
    if (i == NIL) {
        gw_counter_inc(&s->misses);
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    const entry_t *e = &s->entries[i];
    memcpy(params->master_secret, e->secret, SECRET_LEN);
    params->version = e->version;
    params->cipher_suite = e->suite;
    lru_unlink(s, i);
    lru_push_newest(s, i);
    gw_counter_inc(&s->hits);
    pthread_mutex_unlock(&s->lock);
    return 1;
}

static const br_ssl_session_cache_class cache_class = {sizeof(gw_tlscache_t), cache_save,
                                                       cache_load};

/* Sizes stripes and chains: 0, or GW_EINVAL when the shape is impossible. */
static int plan(size_t entries, size_t stripes, size_t *nstripes, size_t *cap, size_t *heads)
{
    if (entries > GW_TLSCACHE_MAX_ENTRIES || stripes > GW_TLSCACHE_MAX_STRIPES)
        return GW_EINVAL;
    if (entries == 0) /* disabled */
        return 0;
    size_t n = pow2_at_least(stripes == 0 ? GW_TLSCACHE_DEFAULT_STRIPES : stripes);
    while (n > entries)
        n >>= 1;
    *nstripes = n;
    *cap = entries / n;
    *heads = pow2_at_least(*cap); /* one or two heads per entry: chains average under one */
    return 0;
}

static void stripes_init(gw_tlscache_t *c, size_t cap, size_t nheads)
{
    entry_t *entries = c->entries;
    for (size_t i = 0; i < c->nstripes; i++) {
        gw_tlscache_stripe_t *s = &c->stripes[i];
        memset(s, 0, sizeof *s);
        pthread_mutex_init(&s->lock, NULL);
        s->entries = entries + i * cap;
        s->heads = c->heads + i * nheads;
        for (size_t j = 0; j < nheads; j++)
            s->heads[j] = NIL;
        s->cap = (uint32_t)cap;
        s->mask = (uint32_t)(nheads - 1);
        s->oldest = s->newest = NIL;
    }
}

/* see tlscache.h */
int gw_tlscache_init(gw_tlscache_t *c, size_t entries, size_t stripes)
{
    memset(c, 0, sizeof *c);
    size_t n, cap, nheads;
    if (plan(entries, stripes, &n, &cap, &nheads) != 0)
        return GW_EINVAL;
    if (entries == 0)
        return 0;
    /* calloc: the entries' pages are touched only as sessions arrive, so the resident cost
     * grows with use up to the bound. */
    gw_tlscache_stripe_t *st = aligned_alloc(_Alignof(gw_tlscache_stripe_t), n * sizeof *st);
    entry_t *en = calloc(n * cap, sizeof *en);
    uint32_t *hd = calloc(n * nheads, sizeof *hd);
    if (st == NULL || en == NULL || hd == NULL) {
        free(st);
        free(en);
        free(hd);
        return GW_ENOMEM;
    }
    c->stripes = st;
    c->entries = en;
    c->heads = hd;
    c->nstripes = n;
    c->capacity = n * cap;
    c->bytes = n * sizeof *st + n * cap * sizeof *en + n * nheads * sizeof *hd;
    stripes_init(c, cap, nheads);
    c->vtable = &cache_class;
    return 0;
}

/* see tlscache.h */
void gw_tlscache_free(gw_tlscache_t *c)
{
    for (size_t i = 0; i < c->nstripes; i++) {
        gw_tlscache_stripe_t *s = &c->stripes[i];
        explicit_bzero(s->entries, s->used * sizeof *s->entries); /* the master secrets */
        pthread_mutex_destroy(&s->lock);
    }
    free(c->stripes);
    free(c->entries);
    free(c->heads);
    memset(c, 0, sizeof *c);
}

/* see tlscache.h */
const br_ssl_session_cache_class **gw_tlscache_class(gw_tlscache_t *c)
{
    return c->vtable != NULL ? &c->vtable : NULL;
}

/* see tlscache.h */
size_t gw_tlscache_capacity(const gw_tlscache_t *c)
{
    return c->capacity;
}

/* see tlscache.h */
size_t gw_tlscache_bytes(const gw_tlscache_t *c)
{
    return c->bytes;
}

/* see tlscache.h */
void gw_tlscache_stats(const gw_tlscache_t *c, gw_tlscache_stats_t *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < c->nstripes; i++) {
        const gw_tlscache_stripe_t *s = &c->stripes[i];
        out->hits += gw_counter_get(&s->hits);
        out->misses += gw_counter_get(&s->misses);
        out->stores += gw_counter_get(&s->stores);
        out->evictions += gw_counter_get(&s->evictions);
        out->entries += gw_counter_get(&s->count);
    }
}

/* ---- one connection's view ------------------------------------------------------------ */

static void conn_save(const br_ssl_session_cache_class **ctx, br_ssl_server_context *server_ctx,
                      const br_ssl_session_parameters *params)
{
    gw_tlscache_conn_t *conn = (gw_tlscache_conn_t *)(void *)ctx;
    conn->saved = true;
    const br_ssl_session_cache_class **inner = gw_tlscache_class(conn->cache);
    (*inner)->save(inner, server_ctx, params);
}

static int conn_load(const br_ssl_session_cache_class **ctx, br_ssl_server_context *server_ctx,
                     br_ssl_session_parameters *params)
{
    gw_tlscache_conn_t *conn = (gw_tlscache_conn_t *)(void *)ctx;
    const br_ssl_session_cache_class **inner = gw_tlscache_class(conn->cache);
    int hit = (*inner)->load(inner, server_ctx, params);
    conn->hit = hit != 0;
    return hit;
}

static const br_ssl_session_cache_class conn_class = {sizeof(gw_tlscache_conn_t), conn_save,
                                                      conn_load};

/* see tlscache.h */
void gw_tlscache_conn_init(gw_tlscache_conn_t *conn, gw_tlscache_t *cache)
{
    conn->vtable = &conn_class;
    conn->cache = cache;
    conn->hit = false;
    conn->saved = false;
}

/* see tlscache.h */
const br_ssl_session_cache_class **gw_tlscache_conn_class(gw_tlscache_conn_t *conn)
{
    return gw_tlscache_class(conn->cache) != NULL ? &conn->vtable : NULL;
}

/* see tlscache.h */
bool gw_tlscache_conn_resumed(const gw_tlscache_conn_t *conn)
{
    return conn->hit && !conn->saved;
}
