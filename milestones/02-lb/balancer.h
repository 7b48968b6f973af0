/* balancer.h - one interface, several strategies for choosing a backend. */
#ifndef GW_BALANCER_H
#define GW_BALANCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"

/* Why per-worker instances: a balancer's own state (a round-robin cursor, smooth WRR's
 * current weights, a PRNG) is touched on every pick. Each worker has its own instance, so a
 * pick takes no lock and shares no cache line; what must be shared (active connection
 * counts, health) is read from the backends' atomics. The price: with W workers, round
 * robin is exact per worker, not globally; over many connections the split is the same. */

typedef enum {
    GW_BAL_ROUND_ROBIN = 0,
    GW_BAL_WEIGHTED_ROUND_ROBIN,
    GW_BAL_LEAST_CONNECTIONS,
    GW_BAL_RANDOM_TWO_CHOICES,
    GW_BAL_CONSISTENT_HASH,
    GW_BAL_COUNT
} gw_balancer_kind_t;

/* Names as written in the config, indexed by gw_balancer_kind_t, NULL-terminated. */
extern const char *const gw_balancer_names[];

/* What one pick may choose from. */
typedef struct gw_pick_s {
    const bool *usable; /* [n]: which backends may be chosen (the caller applied health,
                         * ejection and the panic threshold) */
    size_t avoid;       /* position to skip when another usable one exists (the backend a
                         * retry just failed on), or SIZE_MAX */
    uint64_t key;       /* consistent_hash: the hashed key (client address) */
} gw_pick_t;

typedef struct gw_balancer_s gw_balancer_t;

/* Creates a balancer of KIND over the members M[0..N) of one table (the array and the
 * backends must outlive it; the weights are the members', so two tables listing the same
 * backend with other weights have balancers of their own). SEED fixes its random choices
 * (tests use fixed seeds; workers use distinct ones). round_robin and least_connections's
 * tie rotation start at member SEED % N, so workers with distinct seeds do not all send
 * their first connection to member 0. Returns NULL when out of memory. */
gw_balancer_t *gw_balancer_new(gw_balancer_kind_t kind, const gw_lb_member_t *m, size_t n,
                               uint64_t seed);
void gw_balancer_free(gw_balancer_t *b);

/* Chooses a backend among P->usable; returns its index, or -1 when none is usable.
 * Never returns an index whose usable[] is false. Called on one thread only. */
int gw_balancer_pick(gw_balancer_t *b, const gw_pick_t *p);

/* A 64-bit hash of a client's IP address (the port is ignored), for consistent_hash. */
uint64_t gw_hash_client_ip(const struct sockaddr *sa);

#endif
