/* rand.h - the project's one pseudo-random generator, splitmix64 (Steele, Lea, Flood 2014):
 * fast, seedable, reproducible. For spreading load and jitter, never for secrets (use
 * getrandom(2) or BearSSL for those).
 *
 * Why splitmix64: one add and a finaliser per number, 64 bits of state that the caller owns
 * (one per worker or per checker: no lock, no shared state), every state a valid seed (0
 * included), and it passes BigCrush. A fixed seed gives the same numbers on every machine, so
 * tests reproduce (STYLE.md section 7) and outputs are pinned in common/tests/test_rand.c:
 * balancer picks, health-check jitter and retry backoff all draw from it. */
#ifndef GW_RAND_H
#define GW_RAND_H

#include <stdint.h>

#include "hash.h"

/* 2^64 / golden ratio, the generator's increment: consecutive multiples of it are spread as
 * evenly as possible around 2^64, and the finaliser then scrambles them. */
#define GW_RAND_GOLDEN UINT64_C(0x9e3779b97f4a7c15)

/* The next number of the sequence whose state is *STATE (advances it). The state is a plain
 * counter stepped by GW_RAND_GOLDEN; the number is that counter through gw_hash_mix64. From
 * state 0 the first number is 0xe220a8397b1dcdaf. */
static inline uint64_t gw_rand_next(uint64_t *state)
{
    return gw_hash_mix64(*state += GW_RAND_GOLDEN);
}

#endif
