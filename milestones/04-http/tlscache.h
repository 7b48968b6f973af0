/* tlscache.h - the TLS session cache shared by all workers: BearSSL's session cache class
 * (br_ssl_session_cache_class) as a striped, bounded table that any thread may use.
 *
 * Why one cache for all workers. Every worker has its own SO_REUSEPORT socket, and the
 * kernel picks the socket by a hash of the client's address and port; a resuming client
 * comes back from a new port, so with W workers it lands on another worker W-1 times in W.
 * A cache per worker (what br_ssl_session_cache_lru gives, it is not thread-safe) would
 * miss about half the time with 2 workers and more with more.
 *
 * Why striped. One table behind one mutex would be a lock every worker takes on every
 * handshake (DESIGN.md: "never one global lock"). A session id's hash picks one of N
 * stripes; each stripe has its own mutex, its own chains and its own LRU list, so two
 * workers wait for each other only when their clients' ids fall in the same stripe, and
 * then for one chain walk and a 96-byte copy.
 *
 * The bound. Every entry is allocated when the cache is made, never later: the cache holds
 * at most ENTRIES sessions whatever arrives, in GW_TLSCACHE_ENTRY_BYTES bytes each at most
 * (an entry of 96 bytes: id 32, master secret 48, version and suite 4, links 12; plus one
 * or two 4-byte chain heads). A full stripe forgets its least recently used session, so
 * the LRU order is per stripe: the cache as a whole forgets roughly, not exactly, its
 * oldest session.
 *
 * Secrets. An entry holds a master secret: an evicted entry, and every entry when the cache
 * is freed, is wiped with explicit_bzero before its memory is reused or released.
 *
 * The class contract, as BearSSL 0.6's server engine (ssl_hs_server.t0) uses it:
 *  - load() runs while the ClientHello is read, right after its session id, and only when
 *    the client sent a 32-byte id. On a hit it fills the version, cipher suite and master
 *    secret of PARAMS (the id is there already) and returns 1; else 0. BearSSL then
 *    resumes only if the client still offers that cipher suite and its maximum version is
 *    at least the saved one; otherwise it runs a full handshake. Checking them here would
 *    be too early: the suites are read after the id.
 *  - save() runs after every full handshake, once the client's Finished is verified, with a
 *    32-byte id the server has just drawn from its DRBG. Never after a resumed handshake.
 *  - The server context passed to both is not used here: the cache needs nothing of the
 *    connection, so it can be tested without one and shared by connections of any worker.
 * Keys are therefore chosen by the server, never by the peer: a peer can look up any id it
 * likes, but it walks a chain of random keys, so no seed is needed against chosen keys.
 *
 * No session tickets: BearSSL 0.6 has none (RFC 5077), so a server-side cache is the only
 * resumption there is for TLS 1.2 in this gateway. */
#ifndef GW_TLSCACHE_H
#define GW_TLSCACHE_H

#include <bearssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_TLSCACHE_DEFAULT_ENTRIES 20000 /* listeners.X.tls.session_cache.size */
#define GW_TLSCACHE_DEFAULT_STRIPES 16
#define GW_TLSCACHE_MAX_STRIPES 4096
#define GW_TLSCACHE_MAX_ENTRIES (UINT32_C(1) << 24) /* 16 Mi sessions, 1.6 GiB */
#define GW_TLSCACHE_ENTRY_BYTES 104 /* the most memory one entry costs, chain heads included */

typedef struct gw_tlscache_stripe_s gw_tlscache_stripe_t;

/* The cache. Its fields are private; the first one is what BearSSL calls through. */
typedef struct gw_tlscache_s {
    const br_ssl_session_cache_class *vtable; /* first: gw_tlscache_class points here */
    gw_tlscache_stripe_t *stripes;
    size_t nstripes; /* a power of two */
    size_t capacity; /* entries the stripes hold together, at most the ENTRIES asked for */
    void *entries;   /* one allocation for every stripe's entries */
    uint32_t *heads; /* and one for their chain heads */
    size_t bytes;    /* what the cache allocated */
} gw_tlscache_t;

/* Counters, summed over the stripes (each may be a moment old). */
typedef struct gw_tlscache_stats_s {
    uint64_t hits;      /* load() found the id */
    uint64_t misses;    /* load() did not */
    uint64_t stores;    /* save() calls that stored a session (new, or an id seen before) */
    uint64_t evictions; /* sessions forgotten to make room */
    uint64_t entries;   /* sessions held now */
} gw_tlscache_stats_t;

/* Makes C a cache of at most ENTRIES sessions (0: disabled; at most
 * GW_TLSCACHE_MAX_ENTRIES) split into STRIPES locked parts (0: GW_TLSCACHE_DEFAULT_STRIPES;
 * at most GW_TLSCACHE_MAX_STRIPES; rounded up to a power of two, then halved while there
 * would be more stripes than entries). Each stripe holds ENTRIES / stripes sessions, so the
 * total never exceeds ENTRIES (it may be a little less). All memory is allocated here:
 * gw_tlscache_bytes tells how much. Returns 0, GW_EINVAL for a size or stripe count out of
 * range, or GW_ENOMEM; on failure C is a disabled cache (gw_tlscache_free is still fine).
 * Not thread-safe: make the cache before any worker uses it. */
int gw_tlscache_init(gw_tlscache_t *c, size_t entries, size_t stripes);

/* Wipes every session held and frees C's memory; C becomes a disabled cache. No thread may
 * be using C: free it after the workers that handed it to BearSSL have stopped. */
void gw_tlscache_free(gw_tlscache_t *c);

/* What to hand to br_ssl_server_set_cache, for a connection of any worker; NULL when C is
 * disabled, which is exactly "no cache" for BearSSL. Valid until gw_tlscache_free. */
const br_ssl_session_cache_class **gw_tlscache_class(gw_tlscache_t *c);

/* Sessions C can hold (0 when disabled), and the bytes it allocated for them. */
size_t gw_tlscache_capacity(const gw_tlscache_t *c);
size_t gw_tlscache_bytes(const gw_tlscache_t *c);

/* Reads C's counters into *OUT; safe from any thread (a metrics scrape) while workers use C. */
void gw_tlscache_stats(const gw_tlscache_t *c, gw_tlscache_stats_t *out);

/* ---- one connection's view --------------------------------------------------------------
 * BearSSL does not say whether a handshake resumed a session. A connection can tell by
 * handing BearSSL this small wrapper instead of the cache itself: it forwards to the cache
 * and remembers what happened. A handshake that completed resumed a session exactly when
 * it did not save one (save() follows every full handshake and no resumed one), provided
 * the connection has a cache at all. 24 bytes, embedded in the connection. */
typedef struct gw_tlscache_conn_s {
    const br_ssl_session_cache_class *vtable; /* first: BearSSL calls through this */
    gw_tlscache_t *cache;
    bool hit;   /* load() found the client's id (BearSSL may still decline to resume) */
    bool saved; /* save() ran: this handshake was a full one */
} gw_tlscache_conn_t;

/* Makes CONN forward to CACHE (which must outlive it) with both flags clear. */
void gw_tlscache_conn_init(gw_tlscache_conn_t *conn, gw_tlscache_t *cache);

/* What to hand to br_ssl_server_set_cache for this connection; NULL when the cache is
 * disabled. */
const br_ssl_session_cache_class **gw_tlscache_conn_class(gw_tlscache_conn_t *conn);

/* After a completed handshake: did it resume a session? True when load() found the id and
 * no save() followed (false when there is no cache). Before the handshake completes the
 * answer means nothing: a full handshake that began with a hit saves only at its end. */
bool gw_tlscache_conn_resumed(const gw_tlscache_conn_t *conn);

#endif
