/* mw_split.h - weighted traffic split between upstreams (canary, A/B), random or sticky. */
#ifndef GW_MW_SPLIT_H
#define GW_MW_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#include "04-http/h1.h"

/* One side of a split: an upstream name (the caller keeps it alive) and a weight 0..100. */
typedef struct gw_split_target_s {
    const char *upstream;
    unsigned weight;
} gw_split_target_t;

/* A validated split over the caller's array of targets (not copied: keep it alive). */
typedef struct gw_split_s {
    const gw_split_target_t *t;
    size_t n;
    unsigned total; /* sum of the weights, > 0 */
} gw_split_t;

/* Where a sticky split takes its key from: a header (NAME is the field name) or a cookie
 * (NAME is the cookie name). */
typedef enum { GW_SPLIT_RANDOM, GW_SPLIT_BY_HEADER, GW_SPLIT_BY_COOKIE } gw_split_key_t;

/* Checks targets T[0..N) (N >= 1, every weight <= 100, sum > 0) and fills *S.
 * Returns 0 or GW_EINVAL (S unchanged). */
int gw_split_init(gw_split_t *s, const gw_split_target_t *t, size_t n);

/* The index of the target for the uniform random number RND (any 32-bit value, drawn by the
 * caller: this module keeps no generator state). A weight-0 target is never chosen. */
size_t gw_split_pick(const gw_split_t *s, uint32_t rnd);

/* The index of the target for the sticky key KEY/LEN: the same key always lands on the
 * same target (as long as the weights do not change). */
size_t gw_split_pick_key(const gw_split_t *s, const char *key, size_t len);

/* Finds cookie NAME in the Cookie value C/LEN ("a=1; b=2", RFC 6265 5.4, blanks around
 * pairs tolerated). Looks at no more than LEN bytes and 64 pairs. Returns true and sets
 * *VALUE (a span of C, surrounding double quotes kept) when found. */
bool gw_split_cookie(const char *c, size_t len, const char *name, gw_h1_span_t *value);

/* Picks for request REQ: by the header or cookie named NAME when KIND asks for it and the
 * request carries one (every Cookie line is searched), else by RND. */
size_t gw_split_pick_request(const gw_split_t *s, const gw_h1_head_t *req, gw_split_key_t kind,
                             const char *name, uint32_t rnd);

#endif
