/* balancer.c - see balancer.h. consistent_hash's ring lives in chash.c. */
#include <stdlib.h>

#include "balancer.h"
#include "chash.h"
#include "rand.h"

const char *const gw_balancer_names[] = {
    "round_robin",        "weighted_round_robin", "least_connections",
    "random_two_choices", "consistent_hash",      NULL,
};

struct gw_balancer_s {
    gw_balancer_kind_t kind;
    const gw_lb_member_t *m; /* [n]: the table's members (backend and weight) */
    size_t n;
    size_t cursor;    /* round_robin: next index to try; least_connections: where ties start */
    uint64_t rng;     /* random_two_choices: splitmix64 state */
    int64_t *current; /* weighted_round_robin: smooth WRR's current weights, [n] */
    gw_chash_t *ring; /* consistent_hash */
};

/* What one pick may choose from: usable[i], except SKIP (the backend to avoid, when another
 * is usable). Computed once per pick, so no strategy has to reason about `avoid`. */
typedef struct cands_s {
    const bool *usable;
    size_t skip;  /* SIZE_MAX when nothing is skipped */
    size_t count; /* how many backends are allowed */
} cands_t;

static bool allowed(const cands_t *c, size_t i)
{
    return c->usable[i] && i != c->skip;
}

static void cands_init(cands_t *c, const gw_pick_t *p, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += p->usable[i];
    c->usable = p->usable;
    c->skip = SIZE_MAX;
    if (p->avoid < n && p->usable[p->avoid] && count > 1) {
        c->skip = p->avoid;
        count--;
    }
    c->count = count;
}

/* The index of the K-th allowed backend (K < c->count). */
static size_t nth_allowed(const cands_t *c, size_t n, size_t k)
{
    for (size_t i = 0; i < n; i++)
        if (allowed(c, i) && k-- == 0)
            return i;
    return 0; /* unreachable when K < c->count */
}

/* A number in [0, bound) for bound <= 2^32, by multiply-and-shift (Lemire) instead of `%`:
 * no division, and the bias (bound / 2^32) is far below anything a test could see. rand.h's
 * splitmix64 is plenty for choosing backends, and cheap enough to run on every pick. */
static size_t random_below(uint64_t *state, size_t bound)
{
    return (size_t)(((gw_rand_next(state) >> 32) * (uint64_t)bound) >> 32);
}

static unsigned active_of(const gw_backend_t *b)
{
    /* Relaxed: the count is a hint that other workers change all the time; no ordering
     * with any other memory is needed to compare loads. */
    return atomic_load_explicit(&b->active, memory_order_relaxed);
}

/* Round robin ignores weights on purpose: it is the baseline the other strategies are
 * measured against, and what the config's `round_robin` promises. */
static int pick_round_robin(gw_balancer_t *b, const cands_t *c)
{
    for (size_t k = 0; k < b->n; k++) {
        size_t i = (b->cursor + k) % b->n;
        if (allowed(c, i)) {
            b->cursor = i + 1;
            return (int)i;
        }
    }
    return -1;
}

/* LAB 02: smooth weighted round robin */
/* nginx's smooth weighted round robin. The naive version (weight 5 means five picks in a
 * row) sends bursts: with weights 5,1,1 a backend gets 5 connections back to back, then
 * none for a while. The smooth version interleaves them (A A B A C A A) with the same
 * totals. On every pick, each backend taking part earns its weight into `current`; the
 * richest one is chosen (lowest index on a tie) and pays back the total of all the weights
 * earned in this round. The sum of the `current` values stays 0, a backend of weight w is
 * chosen exactly w times every `total` picks, and the debt of the one just chosen keeps it
 * from being chosen again until the others have caught up. A backend that may not be chosen
 * takes no part in the round: it neither earns nor pays. */
static int pick_weighted_round_robin(gw_balancer_t *b, const cands_t *c)
{
    int best = -1;
    int64_t total = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (!allowed(c, i))
            continue;
        int64_t w = b->m[i].weight;
        b->current[i] += w;
        total += w;
        if (best < 0 || b->current[i] > b->current[best])
            best = (int)i;
    }
    if (best >= 0)
        b->current[best] -= total;
    return best;
}
/* END LAB */

/* LAB 02: least connections */
/* True when X is less loaded than Y, per unit of weight: (active+1)/weight, compared by
 * cross-multiplying so no float and no rounding is involved (with active < 2^32 and
 * weight <= 1000 the products fit in 64 bits). Why +1: it counts the connection about to
 * be opened, so among idle backends the heavier one wins (1/3 < 1/1), and weights matter
 * from the very first pick instead of all idle backends tying at 0. */
static bool less_loaded(unsigned ax, unsigned wx, unsigned ay, unsigned wy)
{
    return ((uint64_t)ax + 1) * wy < ((uint64_t)ay + 1) * wx;
}

/* Chooses the least loaded allowed backend. Among equals the first one found wins, and the
 * scan starts just after the backend chosen last time: equal backends then take turns
 * (round robin among the tied), instead of index 0 winning every tie while loads are low,
 * which is most of the time. Each `active` is read once: it moves under our feet. */
static int pick_least_connections(gw_balancer_t *b, const cands_t *c)
{
    int best = -1;
    unsigned best_a = 0, best_w = 1;
    for (size_t k = 0; k < b->n; k++) {
        size_t i = (b->cursor + k) % b->n;
        if (!allowed(c, i))
            continue;
        unsigned a = active_of(b->m[i].b), w = b->m[i].weight;
        if (best < 0 || less_loaded(a, w, best_a, best_w)) {
            best = (int)i;
            best_a = a;
            best_w = w;
        }
    }
    if (best >= 0)
        b->cursor = (size_t)best + 1;
    return best;
}
/* END LAB */

/* LAB 02: power of two random choices */
/* Least connections scans every backend and they all agree on the same minimum: with
 * several workers (or several proxies) reading the same counts, a backend that just came
 * back idle receives every new connection from all of them at once, a thundering herd,
 * until the counts catch up. Two random choices samples two distinct backends and takes
 * the less loaded: it almost never sends work to the most loaded ones, it spreads
 * simultaneous picks over many backends because their samples differ, and it reads two
 * counters instead of N. Its load imbalance is exponentially smaller than one random
 * choice (Mitzenmacher). The tie goes to the first draw, which is itself random. */
static int pick_two_choices(gw_balancer_t *b, const cands_t *c)
{
    if (c->count == 0)
        return -1;
    size_t r1 = random_below(&b->rng, c->count);
    if (c->count == 1)
        return (int)nth_allowed(c, b->n, r1);
    size_t r2 = random_below(&b->rng, c->count - 1);
    r2 += r2 >= r1; /* a second draw among the others: the two are always distinct */
    size_t x = nth_allowed(c, b->n, r1), y = nth_allowed(c, b->n, r2);
    const gw_lb_member_t *bx = &b->m[x], *by = &b->m[y];
    if (less_loaded(active_of(by->b), by->weight, active_of(bx->b), bx->weight))
        return (int)y;
    return (int)x;
}
/* END LAB */

static int pick_consistent_hash(gw_balancer_t *b, const cands_t *c, uint64_t key)
{
    return gw_chash_lookup(b->ring, key, c->usable, c->skip);
}

/* see balancer.h */
gw_balancer_t *gw_balancer_new(gw_balancer_kind_t kind, const gw_lb_member_t *m, size_t n,
                               uint64_t seed)
{
    if ((unsigned)kind >= GW_BAL_COUNT)
        return NULL;
    gw_balancer_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    *b = (gw_balancer_t){.kind = kind, .m = m, .n = n, .rng = seed};
    /* Workers get distinct seeds: starting each one's cursor elsewhere keeps them from all
     * sending their first connection to backend 0. */
    b->cursor = n ? (size_t)(seed % n) : 0;
    if (kind == GW_BAL_WEIGHTED_ROUND_ROBIN && n > 0) {
        b->current = calloc(n, sizeof(*b->current));
        if (b->current == NULL)
            goto fail;
    }
    if (kind == GW_BAL_CONSISTENT_HASH) {
        b->ring = gw_chash_new(m, n);
        if (b->ring == NULL)
            goto fail;
    }
    return b;
fail:
    gw_balancer_free(b);
    return NULL;
}

/* see balancer.h */
void gw_balancer_free(gw_balancer_t *b)
{
    if (b == NULL)
        return;
    free(b->current);
    gw_chash_free(b->ring);
    free(b);
}

/* see balancer.h */
int gw_balancer_pick(gw_balancer_t *b, const gw_pick_t *p)
{
    cands_t c;
    if (b->n == 0)
        return -1;
    cands_init(&c, p, b->n);
    if (c.count == 0)
        return -1;
    switch (b->kind) {
    case GW_BAL_ROUND_ROBIN:
        return pick_round_robin(b, &c);
    case GW_BAL_WEIGHTED_ROUND_ROBIN:
        return pick_weighted_round_robin(b, &c);
    case GW_BAL_LEAST_CONNECTIONS:
        return pick_least_connections(b, &c);
    case GW_BAL_RANDOM_TWO_CHOICES:
        return pick_two_choices(b, &c);
    case GW_BAL_CONSISTENT_HASH:
        return pick_consistent_hash(b, &c, p->key);
    case GW_BAL_COUNT:
        break;
    }
    return -1;
}
