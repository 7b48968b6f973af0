/* chash.c - see chash.h. */
#include <assert.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "balancer.h"
#include "chash.h"
#include "hash.h"
#include "rand.h"

typedef struct point_s {
    uint64_t pos;   /* place on the ring, 0 .. 2^64-1 */
    uint32_t owner; /* backend index */
} point_t;

struct gw_chash_s {
    size_t n;        /* backends */
    size_t npoints;  /* entries in points */
    point_t *points; /* sorted by pos (then owner, so every worker sorts ties alike) */
};

/* A key's place on the ring: hash.h's FNV-1a plus finaliser, so that inputs differing in one
 * byte land far apart (FNV-1a alone moves the high bits too little). The seed is a constant:
 * every worker, and every proxy in front of the same backends, must agree. */
static uint64_t ring_hash(const void *data, size_t len)
{
    return gw_hash_bytes(data, len, 0);
}

/* see balancer.h */
uint64_t gw_hash_client_ip(const struct sockaddr *sa)
{
    if (sa == NULL)
        return 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        return ring_hash(&sin->sin_addr.s_addr, 4);
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        const uint8_t *ip = sin6->sin6_addr.s6_addr;
        /* On a dual-stack listener an IPv4 client shows up as ::ffff:a.b.c.d: hash the
         * IPv4 part, so it lands where it would on an IPv4 listener. */
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
            return ring_hash(ip + 12, 4);
        return ring_hash(ip, 16);
    }
    return 0;
}

static unsigned gcd(unsigned a, unsigned b)
{
    while (b != 0) {
        unsigned t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static int cmp_points(const void *a, const void *b)
{
    const point_t *x = a, *y = b;
    if (x->pos != y->pos)
        return x->pos < y->pos ? -1 : 1;
    return x->owner < y->owner ? -1 : x->owner > y->owner;
}

/* LAB 02: consistent hashing: virtual nodes */
/* Each backend owns many points on a ring of 2^64 positions; a key belongs to the first
 * point at or after it. Why many points and not one: with one point each, the arcs are very
 * unequal (one backend can own half the ring), and when a backend leaves, its whole arc
 * falls to its single successor, doubling that one's load. With ~160 points per backend the
 * arcs average out, and a leaving backend's keys are shared by all the others.
 * A point's place is a hash of the backend's NAME and the point's number (the j-th value
 * of a splitmix64 stream seeded by the name), never of its index or of the other backends:
 * so the ring is the same in every worker, and changing one backend's weight adds or
 * removes only that backend's own points. UNIT divides the weights; PER_UNIT points are
 * placed per unit left. Returns the number of points written, sorted by position. */
static size_t place_points(point_t *pts, const gw_lb_member_t *m, size_t n, unsigned unit,
                           size_t per_unit)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const gw_backend_t *b = m[i].b;
        uint64_t h = ring_hash(b->name, strlen(b->name));
        size_t count = (size_t)(m[i].weight / unit) * per_unit;
        for (size_t j = 0; j < count; j++)
            pts[k++] = (point_t){.pos = gw_rand_next(&h), .owner = (uint32_t)i};
    }
    qsort(pts, k, sizeof(*pts), cmp_points);
    return k;
}
/* END LAB */

/* see chash.h */
gw_chash_t *gw_chash_new(const gw_lb_member_t *m, size_t n)
{
    unsigned unit = 0;
    size_t units = 0, per_unit = GW_CHASH_POINTS_PER_WEIGHT;
    if (n > UINT32_MAX)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        assert(m[i].weight >= 1); /* gw_backend_member_init's invariant */
        unit = gcd(m[i].weight, unit);
    }
    for (size_t i = 0; i < n; i++)
        units += m[i].weight / unit;
    if (units > GW_CHASH_MAX_POINTS / per_unit) /* large weights: fewer points per unit */
        per_unit = units >= GW_CHASH_MAX_POINTS ? 1 : GW_CHASH_MAX_POINTS / units;
    gw_chash_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->n = n;
    if (units > 0) {
        r->points = malloc(units * per_unit * sizeof(point_t));
        if (r->points == NULL) {
            free(r);
            return NULL;
        }
        r->npoints = place_points(r->points, m, n, unit, per_unit);
    }
    return r;
}

/* see chash.h */
void gw_chash_free(gw_chash_t *r)
{
    if (r == NULL)
        return;
    free(r->points);
    free(r);
}

/* see chash.h */
size_t gw_chash_size(const gw_chash_t *r)
{
    return r->npoints;
}

/* LAB 02: consistent hashing: lookup */
/* A key goes to the first point at or after it, wrapping past the top of the ring to the
 * first point: a binary search over the sorted points. */
static size_t ring_search(const gw_chash_t *r, uint64_t key)
{
    size_t lo = 0, hi = r->npoints;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->points[mid].pos < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == r->npoints ? 0 : lo;
}

/* The ring never changes when a backend goes down: the lookup walks on past the points of
 * backends that may not be chosen, to the next one that may. That is why only 1/N of the
 * keys move when one of N backends leaves: a key whose first point belongs to a backend
 * still up stops there, exactly as before; only the keys that stopped on the dead one's
 * points walk further, and they scatter over all the others because the next point is
 * anybody's. When it comes back, its keys stop on its points again: nothing to rebuild. */
int gw_chash_lookup(const gw_chash_t *r, uint64_t key, const bool *usable, size_t skip)
{
    if (r->npoints == 0)
        return -1;
    size_t i = ring_search(r, key);
    for (size_t k = 0; k < r->npoints; k++) {
        uint32_t owner = r->points[i].owner;
        if (usable[owner] && owner != skip)
            return (int)owner;
        if (++i == r->npoints)
            i = 0;
    }
    return -1;
}
/* END LAB */
