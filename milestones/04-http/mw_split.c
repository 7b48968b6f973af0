/* mw_split.c - weighted traffic split (see mw_split.h). */
#include "04-http/mw_split.h"

#include <string.h>

#include "error.h"
#include "hash.h"

#define MAX_COOKIE_PAIRS 64

/* The sticky split's hash starts from 1469598103934665603 (FNV-1a's offset basis with its last
 * digit lost, a slip in the first version). Kept, as a seed XORed into the basis, because
 * fixing it would move every sticky user to a new side on upgrade. */
#define STICKY_SEED (UINT64_C(1469598103934665603) ^ GW_FNV1A64_BASIS)

/* see mw_split.h */
int gw_split_init(gw_split_t *s, const gw_split_target_t *t, size_t n)
{
    unsigned total = 0;
    if (!t || n == 0)
        return GW_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (t[i].weight > 100 || !t[i].upstream)
            return GW_EINVAL;
        total += t[i].weight; /* n * 100 cannot overflow for any array that fits memory */
    }
    if (total == 0)
        return GW_EINVAL;
    s->t = t;
    s->n = n;
    s->total = total;
    return 0;
}

/* Maps a point 0 <= x < total onto the cumulative weights. */
static size_t pick_point(const gw_split_t *s, unsigned x)
{
    for (size_t i = 0; i < s->n; i++) {
        if (x < s->t[i].weight)
            return i;
        x -= s->t[i].weight;
    }
    return s->n - 1; /* unreachable when x < total */
}

/* see mw_split.h */
size_t gw_split_pick(const gw_split_t *s, uint32_t rnd)
{
    /* Scale instead of rnd % total: a multiply-shift maps 2^32 values onto total buckets
     * with at most one value of difference, where % favours the low buckets. */
    unsigned x = (unsigned)(((uint64_t)rnd * s->total) >> 32);
    return pick_point(s, x);
}

/* see mw_split.h */
size_t gw_split_pick_key(const gw_split_t *s, const char *key, size_t len)
{
    /* FNV-1a plus finaliser, so that keys differing in the last byte still spread. */
    return gw_split_pick(s, (uint32_t)(gw_hash_bytes(key, len, STICKY_SEED) >> 32));
}

static bool blank(char c)
{
    return c == ' ' || c == '\t';
}

/* see mw_split.h */
bool gw_split_cookie(const char *c, size_t len, const char *name, gw_h1_span_t *value)
{
    size_t nlen = strlen(name), i = 0;
    for (int pairs = 0; i < len && pairs < MAX_COOKIE_PAIRS; pairs++) {
        size_t end = i;
        while (end < len && c[end] != ';')
            end++;
        size_t a = i, b = end;
        while (a < b && blank(c[a]))
            a++;
        while (b > a && blank(c[b - 1]))
            b--;
        const char *eq = memchr(c + a, '=', b - a);
        if (eq) {
            size_t ne = (size_t)(eq - c);
            while (ne > a && blank(c[ne - 1]))
                ne--;
            if (ne - a == nlen && memcmp(c + a, name, nlen) == 0) {
                size_t v = (size_t)(eq - c) + 1;
                while (v < b && blank(c[v]))
                    v++;
                value->ptr = c + v;
                value->len = b - v;
                return true;
            }
        }
        i = end + 1;
    }
    return false;
}

/* see mw_split.h */
size_t gw_split_pick_request(const gw_split_t *s, const gw_h1_head_t *req, gw_split_key_t kind,
                             const char *name, uint32_t rnd)
{
    gw_h1_span_t v;
    if (kind == GW_SPLIT_BY_HEADER && gw_h1_head_get(req, name, &v) && v.len)
        return gw_split_pick_key(s, v.ptr, v.len);
    if (kind == GW_SPLIT_BY_COOKIE)
        for (long i = gw_h1_head_find(req, "Cookie", 0); i >= 0;
             i = gw_h1_head_find(req, "Cookie", (size_t)i + 1)) {
            gw_h1_span_t line = gw_h1_head_value_at(req, (size_t)i);
            if (gw_split_cookie(line.ptr, line.len, name, &v) && v.len)
                return gw_split_pick_key(s, v.ptr, v.len);
        }
    /* No key yet (a first visit): random. The caller that wants stickiness from the first
     * request sets the cookie itself on the response. */
    return gw_split_pick(s, rnd);
}
