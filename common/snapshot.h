/* snapshot.h - publish immutable state from the control thread to the workers without
 * locks on the read side: an atomic pointer plus quiescent-state reclamation. */
#ifndef GW_SNAPSHOT_H
#define GW_SNAPSHOT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* How it works (the lab guide of milestone 02 draws it):
 *  - The publisher builds a new immutable object and swaps it into `cur`, then bumps the
 *    generation `gen`. The old object is retired, tagged with the new generation.
 *  - Each reader (a worker thread) borrows `cur` freely while it runs callbacks and, at a
 *    point where it holds no borrowed pointer (once per loop turn, from a uv_prepare
 *    handle), records the generation it has seen: gw_snap_quiescent.
 *  - A retired object is freed once every reader has recorded a generation >= its tag (or
 *    is offline), and no explicit reference holds it.
 * Readers pay one relaxed-ish store per loop turn, not an atomic per request; that is the
 * point compared with reference counting on every use (NOTES.md). Holders that outlive a
 * loop turn have two ways to keep an object:
 *  - a pin (gw_snap_pin): a count in the reader's own slot of that object, written only by
 *    that reader with a plain load and store (no locked instruction, no cache line shared
 *    with another thread). For what a worker holds for a while and gives back on the same
 *    thread: an HTTP exchange holding the configuration generation its head arrived in.
 *  - a reference (gw_snap_acquire): a shared counter, a locked add and sub. For a holder
 *    that may let go on another thread. */

#define GW_SNAP_OFFLINE UINT64_MAX

/* One reader's pins on one object, alone on its cache line. */
typedef struct gw_snap_pinslot_s {
    atomic_size_t n;
    char pad[64 - sizeof(atomic_size_t)];
} gw_snap_pinslot_t;

typedef struct gw_snap_s gw_snap_t;
struct gw_snap_s {
    void *data;
    void (*free_fn)(void *data);
    uint64_t retired_gen;    /* 0 while current */
    atomic_uint refs;        /* explicit references (gw_snap_acquire) */
    gw_snap_pinslot_t *pins; /* [the domain's nreaders]: gw_snap_pin */
    gw_snap_t *next;         /* retired list */
};

/* One reader's slot, padded to its own cache line so readers never share one. */
typedef struct gw_snap_reader_s {
    atomic_uint_least64_t seen;
    char pad[64 - sizeof(atomic_uint_least64_t)];
} gw_snap_reader_t;

typedef struct gw_snapdom_s {
    _Atomic(gw_snap_t *) cur;
    atomic_uint_least64_t gen;
    gw_snap_reader_t *readers;
    size_t nreaders;
    uv_mutex_t lock;    /* guards `retired` (publishers and the reclaimer) */
    gw_snap_t *retired; /* oldest last */
    size_t nretired;
} gw_snapdom_t;

/* Sets up DOM for NREADERS readers, all offline, with no current object.
 * Returns 0 or GW_ENOMEM. */
int gw_snapdom_init(gw_snapdom_t *dom, size_t nreaders);

/* Frees the current object, every retired one, and DOM's memory. No reader may be active
 * and no explicit reference may be held. */
void gw_snapdom_destroy(gw_snapdom_t *dom);

/* Makes DATA current; FREE_FN(DATA) runs when it is no longer reachable (it may be NULL).
 * Any thread; publishers are serialised by the lock. Returns 0 or GW_ENOMEM (then DATA
 * is not taken). */
int gw_snap_publish(gw_snapdom_t *dom, void *data, void (*free_fn)(void *data));

/* For a reader: the current object's data (NULL if none). Valid until the calling reader's
 * next gw_snap_quiescent or gw_snap_offline. The reader must be online. */
void *gw_snap_current(gw_snapdom_t *dom);

/* Reader READER holds no borrowed pointer now; it comes online if it was offline. */
void gw_snap_quiescent(gw_snapdom_t *dom, size_t reader);

/* Reader READER stops reading (thread exit, or a blocking wait): it no longer delays
 * reclamation. It must hold no borrowed pointer. */
void gw_snap_offline(gw_snapdom_t *dom, size_t reader);

/* An explicit reference to the current object, valid until gw_snap_release, across any
 * number of loop turns. The reader must be online. NULL if there is no current object. */
gw_snap_t *gw_snap_acquire(gw_snapdom_t *dom);
void gw_snap_release(gw_snap_t *snap);

/* Pins, for reader READER (online, on its own thread): gw_snap_pin returns the object
 * current at the call (it loads `cur` then, never an earlier copy: a publish just before
 * is seen) with one more pin of READER's on it, NULL if there is none. The object stays
 * alive across any number of loop turns until READER unpins it, with gw_snap_unpin on the
 * same thread (pins count: two pins need two unpins). gw_snap_pins says how many READER
 * holds on S (tests, and exit checks that nothing leaked one). */
gw_snap_t *gw_snap_pin(gw_snapdom_t *dom, size_t reader);
void gw_snap_unpin(gw_snap_t *s, size_t reader);
/* One more pin of READER's on S, which READER pins already (current or not: S is alive). */
void gw_snap_repin(gw_snap_t *s, size_t reader);
size_t gw_snap_pins(const gw_snap_t *s, size_t reader);

/* Frees every retired object that all readers have passed and nobody references or pins.
 * Returns how many remain retired (so the caller knows whether to try again later). */
size_t gw_snap_reclaim(gw_snapdom_t *dom);

#endif
