/* snapshot.c - see snapshot.h.
 *
 * Memory ordering: every operation here is seq_cst (the default) except the pin counts.
 * The argument that an object is unreachable relies on a single total order between the
 * publisher's swap of `cur`, its increment of `gen`, a reader's load of `gen` when it
 * records `seen`, and the reader's later loads of `cur`: a reader that recorded seen >= G
 * loaded gen after the increment that made G, hence after the swap, so it can no longer
 * obtain the object retired at G. The cost is one store per reader per loop turn.
 *
 * Pins. Reader R's pins on S live in S->pins[R], written only by R: a pin is a relaxed
 * load and a relaxed store of n + 1, an unpin a relaxed load and a release store of n - 1.
 * No locked instruction: the slot is R's alone, on its own cache line. Why the reclaimer
 * never frees a pinned object:
 *  1. R pins only the object it loads from `cur` at that moment, so R can pin S (retired
 *     at G) only before R's first `seen` store of a value >= G (point 1 above: after that
 *     store, `cur` is no longer S for R).
 *  2. The reclaimer frees S only if it read every online reader's `seen` >= G. Reading R's
 *     seq_cst store of that value synchronises with it, so everything R did before that
 *     store, including every pin of S it ever made (by 1), happens before the reclaimer's
 *     next loads: its acquire load of S->pins[R] sees those increments, or later values.
 *  3. Those later values only fall (no new pin of S, by 1), and a value of 0 was stored by
 *     the unpin with release: the reclaimer's acquire load of 0 orders every use R made of
 *     S before the free. So S is freed only at 0 pins in every slot, after the last use.
 * An offline reader records no `seen`, so it must not pin (as it must not borrow): the
 * check of every slot still holds its earlier pins. */
#include "snapshot.h"

#include <stdbool.h>
#include <stdlib.h>

#include "error.h"

/* see snapshot.h */
int gw_snapdom_init(gw_snapdom_t *dom, size_t nreaders)
{
    dom->readers = calloc(nreaders ? nreaders : 1, sizeof *dom->readers);
    if (dom->readers == NULL)
        return GW_ENOMEM;
    if (uv_mutex_init(&dom->lock) != 0) {
        free(dom->readers);
        return GW_ENOMEM;
    }
    for (size_t i = 0; i < nreaders; i++)
        atomic_init(&dom->readers[i].seen, GW_SNAP_OFFLINE);
    dom->nreaders = nreaders;
    atomic_init(&dom->cur, NULL);
    atomic_init(&dom->gen, 1);
    dom->retired = NULL;
    dom->nretired = 0;
    return 0;
}

static void snap_free(gw_snap_t *s)
{
    if (s->free_fn != NULL)
        s->free_fn(s->data);
    free(s->pins);
    free(s);
}

/* see snapshot.h */
void gw_snapdom_destroy(gw_snapdom_t *dom)
{
    gw_snap_t *cur = atomic_exchange(&dom->cur, NULL);
    if (cur != NULL)
        snap_free(cur);
    while (dom->retired != NULL) {
        gw_snap_t *s = dom->retired;
        dom->retired = s->next;
        snap_free(s);
    }
    uv_mutex_destroy(&dom->lock);
    free(dom->readers);
    dom->readers = NULL;
}

/* see snapshot.h */
int gw_snap_publish(gw_snapdom_t *dom, void *data, void (*free_fn)(void *data))
{
    gw_snap_t *s = calloc(1, sizeof *s);
    size_t n = dom->nreaders ? dom->nreaders : 1;
    if (s != NULL && (s->pins = aligned_alloc(64, n * sizeof *s->pins)) == NULL) {
        free(s);
        s = NULL;
    }
    if (s == NULL)
        return GW_ENOMEM;
    for (size_t i = 0; i < n; i++)
        atomic_init(&s->pins[i].n, 0);
    s->data = data;
    s->free_fn = free_fn;
    atomic_init(&s->refs, 0);
    uv_mutex_lock(&dom->lock);
    gw_snap_t *old = atomic_exchange(&dom->cur, s);
    uint64_t g = atomic_fetch_add(&dom->gen, 1) + 1; /* after the swap: see the file comment */
    if (old != NULL) {
        old->retired_gen = g;
        old->next = dom->retired;
        dom->retired = old;
        dom->nretired++;
    }
    uv_mutex_unlock(&dom->lock);
    return 0;
}

/* see snapshot.h */
void *gw_snap_current(gw_snapdom_t *dom)
{
    gw_snap_t *s = atomic_load(&dom->cur);
    return s != NULL ? s->data : NULL;
}

/* see snapshot.h */
void gw_snap_quiescent(gw_snapdom_t *dom, size_t reader)
{
    atomic_store(&dom->readers[reader].seen, atomic_load(&dom->gen));
}

/* see snapshot.h */
void gw_snap_offline(gw_snapdom_t *dom, size_t reader)
{
    atomic_store(&dom->readers[reader].seen, GW_SNAP_OFFLINE);
}

/* see snapshot.h */
gw_snap_t *gw_snap_acquire(gw_snapdom_t *dom)
{
    gw_snap_t *s = atomic_load(&dom->cur);
    if (s != NULL)
        atomic_fetch_add(&s->refs, 1);
    return s;
}

/* see snapshot.h */
void gw_snap_release(gw_snap_t *snap)
{
    /* Never frees: the reclaimer does, so a release cannot race with a reclaim. */
    if (snap != NULL)
        atomic_fetch_sub(&snap->refs, 1);
}

/* LAB 05: pins and quiescence */

/* see snapshot.h. Reader READER's pin on the object published now: read `cur` at this
 * moment (never a pointer loaded earlier in the turn: a reload published since would be
 * missed), then one more in its own slot, READER's alone (a relaxed load and store: no
 * locked instruction, no cache line another thread writes). */
gw_snap_t *gw_snap_pin(gw_snapdom_t *dom, size_t reader)
{
    gw_snap_t *s = atomic_load(&dom->cur); /* now: never a copy from earlier in the turn */
    if (s != NULL) {
        atomic_size_t *n = &s->pins[reader].n;
        atomic_store_explicit(n, atomic_load_explicit(n, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    }
    return s;
}

/* see snapshot.h */
void gw_snap_repin(gw_snap_t *s, size_t reader)
{
    /* S is pinned by READER, so the reclaimer sees a count > 0 in this slot until READER
     * unpins it: one more increment changes nothing in the argument above. */
    atomic_size_t *n = &s->pins[reader].n;
    atomic_store_explicit(n, atomic_load_explicit(n, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* see snapshot.h. The store is a release: the reclaimer that reads 0 with acquire sees
 * every use READER made of S before it (the file comment, point 3). */
void gw_snap_unpin(gw_snap_t *s, size_t reader)
{
    atomic_size_t *n = &s->pins[reader].n;
    atomic_store_explicit(n, atomic_load_explicit(n, memory_order_relaxed) - 1,
                          memory_order_release);
}

/* The oldest generation some online reader may still hold a borrowed pointer from: the
 * smallest `seen` (an offline reader's GW_SNAP_OFFLINE is larger than any generation). */
static uint64_t min_seen(gw_snapdom_t *dom)
{
    uint64_t m = GW_SNAP_OFFLINE;
    for (size_t i = 0; i < dom->nreaders; i++) {
        uint64_t s = atomic_load(&dom->readers[i].seen);
        if (s < m)
            m = s;
    }
    return m;
}

/* Whether S, retired at S->retired_gen, may be freed now that every online reader has seen
 * HORIZON (min_seen, read before this): no reader can still hold a borrowed pointer to it
 * (retired at or before the horizon), nobody holds an explicit reference, and no reader's
 * slot counts a pin (read after min_seen, with acquire: the file comment, points 2 and 3). */
static bool reclaimable(const gw_snapdom_t *dom, gw_snap_t *s, uint64_t horizon)
{
    if (s->retired_gen > horizon || atomic_load(&s->refs) != 0)
        return false;
    for (size_t i = 0; i < dom->nreaders; i++)
        if (atomic_load_explicit(&s->pins[i].n, memory_order_acquire) != 0)
            return false;
    return true;
}

/* END LAB */

/* see snapshot.h */
size_t gw_snap_pins(const gw_snap_t *s, size_t reader)
{
    return atomic_load_explicit(&s->pins[reader].n, memory_order_relaxed);
}

/* see snapshot.h */
size_t gw_snap_reclaim(gw_snapdom_t *dom)
{
    uv_mutex_lock(&dom->lock);
    uint64_t horizon = min_seen(dom);
    gw_snap_t **link = &dom->retired, *dead = NULL;
    while (*link != NULL) {
        gw_snap_t *s = *link;
        if (reclaimable(dom, s, horizon)) {
            *link = s->next;
            s->next = dead;
            dead = s;
            dom->nretired--;
        } else {
            link = &s->next;
        }
    }
    size_t left = dom->nretired;
    uv_mutex_unlock(&dom->lock);
    while (dead != NULL) { /* free outside the lock: free_fn may be slow */
        gw_snap_t *s = dead;
        dead = s->next;
        snap_free(s);
    }
    return left;
}
