/* upool.h - a pool of idle upstream connections as pure list logic: put, take, remove, the
 * sweep's cut, and the decision to keep a connection at all.
 *
 * Why its own module. The engine owns the sockets (hupstream.c), the loop clock and the sweep
 * timer (hproxy.c); what it keeps idle, in which order, and what it must let go are decisions about a
 * list and a few numbers. Here they take the time as a parameter and touch no socket, so
 * tests/test_upool.c checks each rule in microseconds with made-up times, and a stub of
 * LAB 04.12 fails there at once instead of through an end-to-end test.
 *
 * The pool is intrusive, like a list node in the kernel or libuv's queue: the caller embeds
 * a gw_upool_entry_t in its connection struct and gets the struct back with
 * gw_upool_owner. Putting and taking allocate nothing, so neither can fail.
 *
 * Order: most recently used first (LIFO). The connections used most stay warm, and those at
 * the back sit idle long enough to time out when traffic falls (a FIFO would keep every
 * connection just barely alive). Both things the sweep cuts, the surplus over max_idle and
 * the connections idle too long, are therefore a tail of the list. */
#ifndef GW_UPOOL_H
#define GW_UPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a pooled connection carries, embedded in the caller's struct. Zero it (or let the
 * struct's allocation zero it) before its first put. */
typedef struct gw_upool_entry_s {
    struct gw_upool_entry_s *next; /* the next older entry of the pool */
    uint64_t idle_since;           /* the caller's clock (ms) when it was put */
    bool pooled;                   /* in a pool's list now */
} gw_upool_entry_t;

/* One backend's idle connections (on one worker), most recently used first. Zero is an
 * empty pool. */
typedef struct gw_upool_s {
    gw_upool_entry_t *head;
    size_t n; /* entries in the list */
} gw_upool_t;

/* The struct of type TYPE that holds entry E as its member MEMBER (E must not be NULL). */
#define gw_upool_owner(e, type, member) ((type *)(void *)((char *)(e) - (offsetof(type, member))))

/* May a connection carry another request after the exchange that just ended on it?
 * REUSABLE: both messages ended cleanly on it and the upstream did not ask to close it.
 * REQUESTS: the requests it already carried; MAX_REQUESTS: the most it may carry
 * (`upstreams.NAME.keepalive.max_requests`; 0: no limit). DRAINING: the process is
 * shutting down, when nothing is kept. */
bool gw_upool_may_keep(unsigned requests, uint64_t max_requests, bool reusable, bool draining);

/* Puts E (not pooled) at the front of POOL at time NOW (ms, the caller's clock). */
void gw_upool_put(gw_upool_t *pool, gw_upool_entry_t *e, uint64_t now);

/* Takes the most recently put entry of POOL out of it; NULL when POOL is empty. */
gw_upool_entry_t *gw_upool_take(gw_upool_t *pool);

/* Takes E out of POOL wherever it is in the list (its connection is closing). Does nothing
 * when E is not pooled. */
void gw_upool_remove(gw_upool_t *pool, gw_upool_entry_t *e);

/* Cuts from POOL, at time NOW, what it must not keep: the entries beyond the first MAX_IDLE,
 * and the entries idle for IDLE_TIMEOUT_MS or more (idle_since + IDLE_TIMEOUT_MS <= NOW).
 * Returns that tail, linked by next and no longer pooled, for the caller to close; NULL
 * when everything stays. The caller clears each entry's next as it walks the tail. */
gw_upool_entry_t *gw_upool_cut(gw_upool_t *pool, uint64_t max_idle, uint64_t idle_timeout_ms,
                               uint64_t now);

#endif
