/* chash.h - a consistent-hash ring with virtual nodes: maps a key to a backend so that taking
 * one backend out moves only the keys it held. Used by the consistent_hash balancer. */
#ifndef GW_CHASH_H
#define GW_CHASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"

/* Points per unit of weight, as in ketama and nginx's `hash ... consistent`: with 160
 * points a backend's share of the keys is within a few percent of its weight share. */
#define GW_CHASH_POINTS_PER_WEIGHT 160
/* Upper bound on a ring's points (16 bytes each) when weights are large: above it every
 * backend gets fewer points per unit of weight, never fewer than one. */
#define GW_CHASH_MAX_POINTS (1u << 18)

typedef struct gw_chash_s gw_chash_t;

/* Builds the ring for the members M[0..N) (read only during the call; N may be 0). Member i
 * gets GW_CHASH_POINTS_PER_WEIGHT points per unit of weight (weights are first divided by
 * their greatest common divisor, so 100/200 costs what 1/2 costs), placed by hashing its
 * name: the ring depends only on names and weights, so every worker builds the same ring
 * and a client maps to the same backend whichever worker accepts it.
 * Returns NULL when out of memory. */
gw_chash_t *gw_chash_new(const gw_lb_member_t *m, size_t n);
void gw_chash_free(gw_chash_t *r);

/* The backend that owns KEY: the owner of the first point at or after KEY on the ring
 * (wrapping around) whose usable[owner] is true and owner != SKIP (SIZE_MAX: none).
 * Returns its index, or -1 when no point qualifies. USABLE has the ring's N entries. */
int gw_chash_lookup(const gw_chash_t *r, uint64_t key, const bool *usable, size_t skip);

/* The number of points on R (for tests and the admin API). */
size_t gw_chash_size(const gw_chash_t *r);

#endif
