/* lcount.h - per-worker counters kept by listener name (milestone 04): what a listener's
 * TLS handshakes, PROXY headers and passthrough decisions have counted carries across
 * reloads as long as the listener keeps its name, whatever its address or its position in
 * the config (issue 17: gw_tls_handshakes_total{listener} does not fall back to 0 at a
 * reload, which Prometheus would read as a counter reset).
 *
 * A registry is an append-only list of entries, one per name ever given to a listener that
 * counts here, each with WORKERS x NCOUNTERS counters (each worker writes only its own row,
 * gw_counter_inc: no locked instruction). Entries are made by the control thread (at a
 * generation's build) and never freed before the registry, so a connection may count into
 * the entry it found for as long as it lives, even after its listener left every
 * generation, with no reference to take. The price: a name that is given up keeps its
 * entry (a few KiB) until the process ends; configs use a handful of names, and a reload
 * that renames back and forth finds the old entries again.
 *
 * Threads: gw_lcount_add on the control thread only; gw_lcount_find, the counters and
 * gw_lcount_sum from any thread (the list head is published with release, read with
 * acquire, and an entry never changes but for its counters). */
#ifndef GW_LCOUNT_H
#define GW_LCOUNT_H

#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

typedef struct gw_lcount_s gw_lcount_t;
typedef struct gw_lcount_entry_s gw_lcount_entry_t;

/* A registry whose entries hold NCOUNTERS counters for each of WORKERS workers; NULL when
 * out of memory. */
gw_lcount_t *gw_lcount_new(unsigned workers, size_t ncounters);
/* Frees R and every entry. No thread may use them any more. NULL is fine. */
void gw_lcount_free(gw_lcount_t *r);

/* Control thread: the entry of NAME, made (every counter 0) when NAME has none yet; NULL
 * when out of memory. */
gw_lcount_entry_t *gw_lcount_add(gw_lcount_t *r, const char *name);
/* Any thread: the entry of NAME, or NULL when gw_lcount_add never made one. */
gw_lcount_entry_t *gw_lcount_find(const gw_lcount_t *r, const char *name);

/* Counter I (< NCOUNTERS) of worker W (< WORKERS) in E: written by that worker only. */
gw_counter_t *gw_lcount_at(gw_lcount_entry_t *e, unsigned w, size_t i);
/* Counter I of E summed over the workers (a scrape). */
uint64_t gw_lcount_sum(const gw_lcount_entry_t *e, size_t i);
/* E's name. */
const char *gw_lcount_name(const gw_lcount_entry_t *e);

#endif
