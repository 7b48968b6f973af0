/* kcount.h - per-worker counters kept by key across reloads (milestone 04): the one registry
 * behind every series that a reload must not reset (issue 17: a counter that fell back to 0
 * at a reload would read as a counter reset to Prometheus), whatever the position of what
 * it counts in the new config. The key has one part (a listener's or an upstream's name) or
 * two ((listener name, route name)); (K1, no K2) is a key of its own, apart from any (K1, K2).
 *
 * An entry holds one zeroed block of BLOCK bytes per worker, each on cache lines of its own
 * (no false sharing), which only its worker writes (metrics.h's single writer: a relaxed
 * load and store, no locked instruction), and which a scrape sums. A block is whatever the
 * user counts: an array of gw_counter_t (gw_kcount_counter, gw_kcount_sum), or a struct of
 * counters and histograms (gw_kcount_block).
 *
 * Two ways to hold an entry, for the two ways it is reached:
 *   - by reference (gw_kcount_get, gw_kcount_put): a generation's view holds the series of
 *     what it names (hmetrics.h's routes, hutls.h's upstreams), a worker reaches them only
 *     through a generation it has pinned, and the last view to let go frees the entry: a
 *     removed route leaves memory as it left /metrics, and comes back at 0;
 *   - kept (gw_kcount_keep): the registry holds the entry until it is freed itself, so a
 *     connection may count into an entry it found (gw_kcount_find, on its worker) for as long
 *     as it lives, even after its listener left every generation, with no reference to
 *     take (TLS handshakes, PROXY headers, passthrough decisions, by listener name). The
 *     price: a name given up keeps its entry (a few KiB) until the process ends; configs use
 *     a handful of names, and a reload that renames back and forth finds the old entries.
 *
 * Threads: the control thread adds and drops (gw_kcount_get, gw_kcount_keep,
 * gw_kcount_put); any thread reads (the blocks; gw_kcount_find). The list head is published
 * with release and read with acquire, and an entry never changes but for its blocks and its
 * reference count (the control thread's), so a reader sees whole entries. Since a put may
 * free an entry, gw_kcount_find runs off the control thread only in a registry whose
 * entries are all kept (a reader could be walking the entry a put frees). */
#ifndef GW_KCOUNT_H
#define GW_KCOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

typedef struct gw_kcount_s gw_kcount_t;

/* One entry. Read-only for its users, but for the blocks. */
typedef struct gw_kcount_entry_s {
    const char *k1, *k2;            /* the key; K2 NULL: a one-part key */
    unsigned refs;                  /* gets not yet put, plus one when kept: control thread */
    bool kept;                      /* the registry holds one of REFS: control thread */
    unsigned nworkers;              /* blocks */
    struct gw_kcount_entry_s *next; /* the registry's list: set before the entry is published */
    size_t stride;                  /* bytes per worker block, a multiple of 64 */
    unsigned char *blocks;          /* [nworkers * stride], 64-byte aligned */
} gw_kcount_entry_t;

/* A registry whose entries hold one block of BLOCK bytes for each of NWORKERS workers (0 is
 * taken as 1); NULL when out of memory. */
gw_kcount_t *gw_kcount_new(unsigned nworkers, size_t block);
/* Frees R and every entry left, held or kept. No thread may use them any more. NULL is
 * fine. */
void gw_kcount_free(gw_kcount_t *r);

/* Control thread: the entry of key (K1, K2; K2 NULL: none), made (every block zeroed) when
 * none has it, with one more reference; NULL when out of memory (nothing changed). */
gw_kcount_entry_t *gw_kcount_get(gw_kcount_t *r, const char *k1, const char *k2);
/* Control thread: one reference less on E (NULL is fine), which must hold one; the last
 * frees E. */
void gw_kcount_put(gw_kcount_t *r, gw_kcount_entry_t *e);
/* Control thread: the entry of (K1, K2) as gw_kcount_get, kept until R is freed (the
 * registry's reference, taken once: keeping again changes nothing); NULL when out of
 * memory. */
gw_kcount_entry_t *gw_kcount_keep(gw_kcount_t *r, const char *k1, const char *k2);
/* The entry of (K1, K2), or NULL when there is none. Any thread in a registry whose entries
 * are all kept; the control thread otherwise (see the file comment). */
gw_kcount_entry_t *gw_kcount_find(const gw_kcount_t *r, const char *k1, const char *k2);
/* How many entries R holds (tests). Control thread. */
size_t gw_kcount_count(const gw_kcount_t *r);

/* Worker W's block (W < the registry's NWORKERS) of E: written by that worker only. */
static inline void *gw_kcount_block(const gw_kcount_entry_t *e, unsigned w)
{
    return e->blocks + (size_t)w * e->stride;
}

/* Counter I of worker W's block of E, for blocks that are arrays of gw_counter_t (BLOCK at
 * least (I + 1) counters): written by that worker only. */
static inline gw_counter_t *gw_kcount_counter(gw_kcount_entry_t *e, unsigned w, size_t i)
{
    return (gw_counter_t *)gw_kcount_block(e, w) + i;
}

/* Counter I of E (as gw_kcount_counter) summed over the workers: a scrape. */
uint64_t gw_kcount_sum(const gw_kcount_entry_t *e, size_t i);

#endif
