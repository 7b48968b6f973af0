/* test_snapshot.c - unit tests for snapshot.h: publishing immutable objects to readers with
 * quiescent-state reclamation and explicit references. */
#include "gwtest.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "snapshot.h"

/* ---- single-threaded behaviour -------------------------------------------------------- */

/* A test object: its free_fn records that it was freed (and how often). */
typedef struct {
    int id;
    int *freed; /* incremented by obj_free */
} obj_t;

static int g_frees; /* every obj_free, all objects */

static void obj_free(void *data)
{
    obj_t *o = data;
    (*o->freed)++;
    g_frees++;
}

static int setup(void **state)
{
    (void)state;
    g_frees = 0;
    return 0;
}

static void snap_current_is_null_before_publish(void **state)
{
    (void)state;
    gw_snapdom_t dom;
    assert_int_equal(gw_snapdom_init(&dom, 1), 0);
    gw_snap_quiescent(&dom, 0);
    assert_null(gw_snap_current(&dom));
    assert_null(gw_snap_acquire(&dom));
    assert_int_equal(gw_snap_reclaim(&dom), 0);
    gw_snap_offline(&dom, 0);
    gw_snapdom_destroy(&dom);
}

static void snap_publish_makes_object_current(void **state)
{
    (void)state;
    gw_snapdom_t dom;
    int fa = 0, fb = 0;
    obj_t a = {1, &fa}, b = {2, &fb};
    assert_int_equal(gw_snapdom_init(&dom, 1), 0);
    gw_snap_quiescent(&dom, 0);
    assert_int_equal(gw_snap_publish(&dom, &a, obj_free), 0);
    assert_ptr_equal(gw_snap_current(&dom), &a);
    assert_int_equal(gw_snap_publish(&dom, &b, obj_free), 0);
    assert_ptr_equal(gw_snap_current(&dom), &b);
    assert_int_equal(fa + fb, 0); /* publishing frees nothing by itself */
    gw_snap_offline(&dom, 0);
    gw_snapdom_destroy(&dom);
}

static void snap_publish_accepts_null_free_fn(void **state)
{
    (void)state;
    gw_snapdom_t dom;
    static int plain = 5;
    assert_int_equal(gw_snapdom_init(&dom, 1), 0);
    assert_int_equal(gw_snap_publish(&dom, &plain, NULL), 0);
    assert_int_equal(gw_snap_publish(&dom, &plain, NULL), 0);
    assert_int_equal(gw_snap_reclaim(&dom), 0); /* the reader is offline */
    gw_snap_quiescent(&dom, 0);
    assert_ptr_equal(gw_snap_current(&dom), &plain);
    gw_snap_offline(&dom, 0);
    gw_snapdom_destroy(&dom);
    assert_int_equal(plain, 5);
}

static void snap_reclaim_keeps_object_reader_may_hold(void **state)
{
    (void)state;
    gw_snapdom_t dom;
    int fa = 0, fb = 0;
    obj_t a = {1, &fa}, b = {2, &fb};
    assert_int_equal(gw_snapdom_init(&dom, 1), 0);
    assert_int_equal(gw_snap_publish(&dom, &a, obj_free), 0);
    gw_snap_quiescent(&dom, 0);
    obj_t *borrowed = gw_snap_current(&dom);
    assert_ptr_equal(borrowed, &a);

    assert_int_equal(gw_snap_publish(&dom, &b, obj_free), 0); /* retires a */
    assert_int_equal(gw_snap_reclaim(&dom), 1);
    assert_int_equal(gw_snap_reclaim(&dom), 1);
    assert_int_equal(fa, 0);
    assert_int_equal(borrowed->id, 1);

    gw_snap_quiescent(&dom, 0); /* the borrow ends */
    assert_int_equal(fa, 0);    /* reclaim frees, quiescent does not */
    assert_int_equal(gw_snap_reclaim(&dom), 0);
    assert_int_equal(fa, 1);
    assert_int_equal(fb, 0);
    assert_ptr_equal(gw_snap_current(&dom), &b);

    gw_snap_offline(&dom, 0);
    gw_snapdom_destroy(&dom);
    assert_int_equal(fa, 1);
    assert_int_equal(fb, 1);
}

static void snap_reclaim_waits_for_slowest_reader(void **state)
{
    (void)state;
    gw_snapdom_t dom;
    int fa = 0, fb = 0;
    obj_t a = {1, &fa}, b = {2, &fb};
    assert_int_equal(gw_snapdom_init(&dom, 3), 0);
    for (size_t r = 0; r < 3; r++)
        gw_snap_quiescent(&dom, r);
    assert_int_equal(gw_snap_publish(&dom, &a, obj_free), 0);
    assert_int_equal(gw_snap_publish(&dom, &b, obj_free), 0);
    gw_snap_quiescent(&dom, 0);
    gw_snap_quiescent(&dom, 2);
    assert_int_equal(gw_snap_reclaim(&dom), 1); /* reader 1 has not passed */
    assert_int_equal(fa, 0);
    gw_snap_quiescent(&dom, 1);
    assert_int_equal(gw_snap_reclaim(&dom), 0);
    assert_int_equal(fa, 1);
    for (size_t r = 0; r < 3; r++)
        gw_snap_offline(&dom, r);
    gw_snapdom_destroy(&dom);
}

static void snap_reclaim_frees_only_generations_passed(void **state)
{
    (void)state;
    gw_snapdom_t dom;
    int fa = 0, fb = 0, fc = 0;
    obj_t a = {1, &fa}, b = {2, &fb}, c = {3, &fc};
    assert_int_equal(gw_snapdom_init(&dom, 1), 0);
    gw_snap_quiescent(&dom, 0);
    assert_int_equal(gw_snap_publish(&dom, &a, obj_free), 0);
    assert_int_equal(gw_snap_publish(&dom, &b, obj_free), 0); /* retires a */
    gw_snap_quiescent(&dom, 0);                               /* passes a's retirement */
    assert_ptr_equal(gw_snap_current(&dom), &b);              /* borrows b */
    assert_int_equal(gw_snap_publish(&dom, &c, obj_free), 0); /* retires b */
    assert_int_equal(gw_snap_reclaim(&dom), 1);
    assert_int_equal(fa, 1);
    assert_int_equal(fb, 0);
    gw_snap_quiescent(&dom, 0);
    assert_int_equal(gw_snap_reclaim(&dom), 0);
    assert_int_equal(fb, 1);
    assert_int_equal(fc, 0);
    gw_snap_offline(&dom, 0);
    gw_snapdom_destroy(&dom);
}

static void snap_offline_reader_does_not_block_reclaim(void **state)
{
    (void)state;
    gw_snapdom_t dom;
    int fa = 0, fb = 0;
    obj_t a = {1, &fa}, b = {2, &fb};
    assert_int_equal(gw_snapdom_init(&dom, 2), 0);
    gw_snap_quiescent(&dom, 0);
    gw_snap_quiescent(&dom, 1);
    assert_int_equal(gw_snap_publish(&dom, &a, obj_free), 0);
    gw_snap_offline(&dom, 1); /* reader 1 stops; it never passes a's retirement */
    assert_int_equal(gw_snap_publish(&dom, &b, obj_free), 0);
    assert_int_equal(gw_snap_reclaim(&dom), 1); /* reader 0 still online, not passed */
    gw_snap_quiescent(&dom, 0);
    assert_int_equal(gw_snap_reclaim(&dom), 0);
    assert_int_equal(fa, 1);
    gw_snap_offline(&dom, 0);
    gw_snapdom_destroy(&dom);
}

static void snap_readers_start_offline(void **state)
{
    (void)state;
    gw_snapdom_t dom;
    int fa = 0, fb = 0;
    obj_t a = {1, &fa}, b = {2, &fb};
    assert_int_equal(gw_snapdom_init(&dom, 4), 0);
    assert_int_equal(gw_snap_publish(&dom, &a, obj_free), 0);
    assert_int_equal(gw_snap_publish(&dom, &b, obj_free), 0);
    assert_int_equal(gw_snap_reclaim(&dom), 0); /* no reader ever came online */
    assert_int_equal(fa, 1);
    gw_snapdom_destroy(&dom);
}

static void snap_offline_reader_blocks_again_once_back(void **state)
{
    (void)state;
    gw_snapdom_t dom;
    int fa = 0, fb = 0, fc = 0;
    obj_t a = {1, &fa}, b = {2, &fb}, c = {3, &fc};
    assert_int_equal(gw_snapdom_init(&dom, 1), 0);
    assert_int_equal(gw_snap_publish(&dom, &a, obj_free), 0);
    gw_snap_quiescent(&dom, 0); /* comes online */
    assert_ptr_equal(gw_snap_current(&dom), &a);
    assert_int_equal(gw_snap_publish(&dom, &b, obj_free), 0);
    assert_int_equal(gw_snap_reclaim(&dom), 1);
    assert_int_equal(fa, 0);
    gw_snap_offline(&dom, 0);
    gw_snap_quiescent(&dom, 0); /* back online, holding nothing yet */
    assert_ptr_equal(gw_snap_current(&dom), &b);
    assert_int_equal(gw_snap_publish(&dom, &c, obj_free), 0);
    assert_int_equal(gw_snap_reclaim(&dom), 1); /* a freed, b held */
    assert_int_equal(fa, 1);
    assert_int_equal(fb, 0);
    gw_snap_offline(&dom, 0);
    gw_snapdom_destroy(&dom);
}

static void snap_acquire_keeps_retired_object_alive(void **state)
{
    (void)state;
    gw_snapdom_t dom;
    int fa = 0, fb = 0;
    obj_t a = {1, &fa}, b = {2, &fb};
    assert_int_equal(gw_snapdom_init(&dom, 1), 0);
    assert_int_equal(gw_snap_publish(&dom, &a, obj_free), 0);
    gw_snap_quiescent(&dom, 0);
    gw_snap_t *ref = gw_snap_acquire(&dom);
    assert_non_null(ref);
    assert_ptr_equal(ref->data, &a);
    assert_int_equal(gw_snap_publish(&dom, &b, obj_free), 0);
    for (int i = 0; i < 5; i++) { /* many loop turns */
        gw_snap_quiescent(&dom, 0);
        assert_int_equal(gw_snap_reclaim(&dom), 1);
    }
    gw_snap_offline(&dom, 0);
    assert_int_equal(gw_snap_reclaim(&dom), 1); /* even with every reader offline */
    assert_int_equal(fa, 0);
    assert_int_equal(((obj_t *)ref->data)->id, 1);

    gw_snap_release(ref);
    assert_int_equal(fa, 0); /* release never frees: the reclaimer does */
    assert_int_equal(gw_snap_reclaim(&dom), 0);
    assert_int_equal(fa, 1);
    gw_snapdom_destroy(&dom);
    assert_int_equal(fb, 1);
}

static void snap_acquire_counts_each_reference(void **state)
{
    (void)state;
    gw_snapdom_t dom;
    int fa = 0, fb = 0;
    obj_t a = {1, &fa}, b = {2, &fb};
    assert_int_equal(gw_snapdom_init(&dom, 1), 0);
    assert_int_equal(gw_snap_publish(&dom, &a, obj_free), 0);
    gw_snap_quiescent(&dom, 0);
    gw_snap_t *r1 = gw_snap_acquire(&dom), *r2 = gw_snap_acquire(&dom);
    assert_ptr_equal(r1, r2);
    assert_int_equal(gw_snap_publish(&dom, &b, obj_free), 0);
    gw_snap_quiescent(&dom, 0);
    gw_snap_release(r1);
    assert_int_equal(gw_snap_reclaim(&dom), 1); /* r2 still holds it */
    assert_int_equal(fa, 0);
    gw_snap_release(r2);
    assert_int_equal(gw_snap_reclaim(&dom), 0);
    assert_int_equal(fa, 1);
    gw_snap_offline(&dom, 0);
    gw_snapdom_destroy(&dom);
}

static void snap_release_null_is_ignored(void **state)
{
    (void)state;
    gw_snap_release(NULL);
}

static void snapdom_destroy_frees_current(void **state)
{
    (void)state;
    gw_snapdom_t dom;
    int fa = 0;
    obj_t a = {1, &fa};
    assert_int_equal(gw_snapdom_init(&dom, 2), 0);
    assert_int_equal(gw_snap_publish(&dom, &a, obj_free), 0);
    assert_int_equal(gw_snap_reclaim(&dom), 0);
    assert_int_equal(fa, 0); /* current objects are never reclaimed */
    gw_snapdom_destroy(&dom);
    assert_int_equal(fa, 1);
}

static void snapdom_destroy_frees_retired(void **state)
{
    (void)state;
    gw_snapdom_t dom;
    int fa = 0, fb = 0, fc = 0;
    obj_t a = {1, &fa}, b = {2, &fb}, c = {3, &fc};
    assert_int_equal(gw_snapdom_init(&dom, 1), 0);
    gw_snap_quiescent(&dom, 0);
    assert_int_equal(gw_snap_publish(&dom, &a, obj_free), 0);
    assert_int_equal(gw_snap_publish(&dom, &b, obj_free), 0);
    assert_int_equal(gw_snap_publish(&dom, &c, obj_free), 0);
    assert_int_equal(gw_snap_reclaim(&dom), 2); /* the reader blocks both */
    gw_snap_offline(&dom, 0);
    gw_snapdom_destroy(&dom);
    assert_int_equal(fa, 1);
    assert_int_equal(fb, 1);
    assert_int_equal(fc, 1);
    assert_int_equal(g_frees, 3);
}

/* ---- pins ------------------------------------------------------------------------------- */

static void snap_pin_keeps_retired_object_alive(void **state)
{
    (void)state;
    gw_snapdom_t dom;
    int fa = 0, fb = 0;
    obj_t a = {1, &fa}, b = {2, &fb};
    assert_int_equal(gw_snapdom_init(&dom, 2), 0);
    gw_snap_quiescent(&dom, 0);
    gw_snap_quiescent(&dom, 1);
    assert_int_equal(gw_snap_publish(&dom, &a, obj_free), 0);
    gw_snap_t *p = gw_snap_pin(&dom, 1);
    assert_non_null(p);
    assert_ptr_equal(p->data, &a);
    assert_int_equal(gw_snap_publish(&dom, &b, obj_free), 0);
    for (int turn = 0; turn < 3; turn++) { /* many loop turns: the pin holds through them */
        gw_snap_quiescent(&dom, 0);
        gw_snap_quiescent(&dom, 1);
        assert_int_equal(gw_snap_reclaim(&dom), 1);
        assert_int_equal(fa, 0);
        assert_int_equal(((obj_t *)p->data)->id, 1);
    }
    gw_snap_unpin(p, 1);
    assert_int_equal(gw_snap_reclaim(&dom), 0);
    assert_int_equal(fa, 1);
    gw_snap_offline(&dom, 0);
    gw_snap_offline(&dom, 1);
    gw_snapdom_destroy(&dom);
    assert_int_equal(fb, 1);
}

/* Two pins need two unpins; each reader's count is its own. */
static void snap_pins_are_counted_per_reader(void **state)
{
    (void)state;
    gw_snapdom_t dom;
    int fa = 0, fb = 0;
    obj_t a = {1, &fa}, b = {2, &fb};
    assert_int_equal(gw_snapdom_init(&dom, 2), 0);
    gw_snap_quiescent(&dom, 0);
    gw_snap_quiescent(&dom, 1);
    assert_int_equal(gw_snap_publish(&dom, &a, obj_free), 0);
    gw_snap_t *p0 = gw_snap_pin(&dom, 0), *p0b = gw_snap_pin(&dom, 0), *p1 = gw_snap_pin(&dom, 1);
    assert_ptr_equal(p0, p0b);
    assert_ptr_equal(p0, p1);
    assert_int_equal(gw_snap_pins(p0, 0), 2);
    assert_int_equal(gw_snap_pins(p0, 1), 1);
    assert_int_equal(gw_snap_publish(&dom, &b, obj_free), 0);
    gw_snap_repin(p1, 1); /* a retired object a reader pins can take one more of its pins */
    assert_int_equal(gw_snap_pins(p1, 1), 2);
    gw_snap_unpin(p1, 1);
    gw_snap_quiescent(&dom, 0);
    gw_snap_quiescent(&dom, 1);
    gw_snap_unpin(p0, 0);
    assert_int_equal(gw_snap_reclaim(&dom), 1); /* reader 0 holds one more */
    gw_snap_unpin(p0, 0);
    assert_int_equal(gw_snap_pins(p0, 0), 0);
    assert_int_equal(gw_snap_reclaim(&dom), 1); /* reader 1 still holds its pin */
    assert_int_equal(fa, 0);
    gw_snap_unpin(p1, 1);
    assert_int_equal(gw_snap_reclaim(&dom), 0);
    assert_int_equal(fa, 1);
    gw_snap_offline(&dom, 0);
    gw_snap_offline(&dom, 1);
    gw_snapdom_destroy(&dom);
}

/* A pin loads the published pointer when it is taken: a publish earlier in the same loop
 * turn (no quiescent point between) is seen, as gw_snap_current sees it. */
static void snap_pin_reads_the_published_pointer_not_a_cached_one(void **state)
{
    (void)state;
    gw_snapdom_t dom;
    int fa = 0, fb = 0;
    obj_t a = {1, &fa}, b = {2, &fb};
    assert_int_equal(gw_snapdom_init(&dom, 1), 0);
    gw_snap_quiescent(&dom, 0);
    assert_null(gw_snap_pin(&dom, 0)); /* nothing published yet */
    assert_int_equal(gw_snap_publish(&dom, &a, obj_free), 0);
    gw_snap_t *pa = gw_snap_pin(&dom, 0);
    assert_int_equal(gw_snap_publish(&dom, &b, obj_free), 0);
    gw_snap_t *pb = gw_snap_pin(&dom, 0);
    assert_ptr_equal(pa->data, &a);
    assert_ptr_equal(pb->data, &b);
    gw_snap_unpin(pa, 0);
    gw_snap_unpin(pb, 0);
    gw_snap_quiescent(&dom, 0);
    assert_int_equal(gw_snap_reclaim(&dom), 0);
    gw_snap_offline(&dom, 0);
    gw_snapdom_destroy(&dom);
    assert_int_equal(fa + fb, 2);
}

/* A pin taken by a reader that then goes offline still holds: the pin is checked in every
 * slot, not only the online readers'. */
static void snap_pin_holds_past_offline(void **state)
{
    (void)state;
    gw_snapdom_t dom;
    int fa = 0, fb = 0;
    obj_t a = {1, &fa}, b = {2, &fb};
    assert_int_equal(gw_snapdom_init(&dom, 1), 0);
    gw_snap_quiescent(&dom, 0);
    assert_int_equal(gw_snap_publish(&dom, &a, obj_free), 0);
    gw_snap_t *p = gw_snap_pin(&dom, 0);
    assert_int_equal(gw_snap_publish(&dom, &b, obj_free), 0);
    gw_snap_offline(&dom, 0);
    assert_int_equal(gw_snap_reclaim(&dom), 1);
    gw_snap_unpin(p, 0);
    assert_int_equal(gw_snap_reclaim(&dom), 0);
    assert_int_equal(fa, 1);
    gw_snapdom_destroy(&dom);
}

/* ---- stress: one publisher, three readers --------------------------------------------- */

#define ST_READERS 3
#define ST_VERSIONS 2000
#define ST_MAGIC 0x5ca1ab1e0ddba11ull
#define ST_POISON 0xdeadbeefdeadbeefull
#define ST_REF_SPAN 24 /* versions a reader holds a reference across */
enum { ST_BORROW, ST_REFS, ST_PINS };

typedef struct {
    uint64_t magic;
    uint64_t version;
} ver_t;

static atomic_uint g_st_frees;

static void ver_free(void *data)
{
    ver_t *v = data;
    v->magic = ST_POISON;
    atomic_fetch_add(&g_st_frees, 1);
    free(v);
}

typedef struct {
    gw_snapdom_t *dom;
    uv_barrier_t *start;
    atomic_bool *stop;
    atomic_uint *errors;
    atomic_uint_least64_t turns; /* quiescent points passed; the publisher paces on these */
    size_t reader;
    int hold; /* ST_BORROW, or hold an object across quiescent points: ST_REFS, ST_PINS */
    uint64_t reads;
} st_reader_t;

static bool ver_ok(const ver_t *v, uint64_t *last)
{
    if (v->magic != ST_MAGIC || v->version < *last || v->version > ST_VERSIONS)
        return false;
    *last = v->version;
    return true;
}

static void st_reader(void *p)
{
    st_reader_t *a = p;
    uint64_t last = 0, last_ref = 0;
    gw_snap_t *ref = NULL;
    gw_snap_quiescent(a->dom, a->reader);
    uv_barrier_wait(a->start);
    do {
        ver_t *v = gw_snap_current(a->dom);
        if (v != NULL) {
            if (!ver_ok(v, &last))
                atomic_fetch_add(a->errors, 1);
            a->reads++;
            /* Read it again later in the same turn: still intact. */
            if (v->magic != ST_MAGIC)
                atomic_fetch_add(a->errors, 1);
        }
        if (a->hold != ST_BORROW) {
            if (ref == NULL) {
                ref = a->hold == ST_REFS ? gw_snap_acquire(a->dom) : gw_snap_pin(a->dom, a->reader);
            } else {
                const ver_t *held = ref->data;
                if (!ver_ok(held, &last_ref))
                    atomic_fetch_add(a->errors, 1);
                /* Keep it while the publisher retires it, moves on and reclaims. */
                if (v != NULL && v->version >= held->version + ST_REF_SPAN) {
                    if (a->hold == ST_REFS)
                        gw_snap_release(ref);
                    else
                        gw_snap_unpin(ref, a->reader);
                    ref = NULL;
                }
            }
        }
        gw_snap_quiescent(a->dom, a->reader);
        atomic_fetch_add(&a->turns, 1);
    } while (!atomic_load(a->stop));
    if (a->hold == ST_PINS && ref != NULL)
        gw_snap_unpin(ref, a->reader);
    else
        gw_snap_release(ref);
    gw_snap_offline(a->dom, a->reader);
}

/* Waits until every reader has passed at least one more quiescent point than at MARK. */
static void st_wait_readers(st_reader_t *rd, uint64_t *mark)
{
    for (int i = 0; i < ST_READERS; i++) {
        while (atomic_load(&rd[i].turns) <= mark[i])
            sched_yield();
        mark[i] = atomic_load(&rd[i].turns);
    }
}

static void st_run(int hold)
{
    gw_snapdom_t dom;
    assert_int_equal(gw_snapdom_init(&dom, ST_READERS), 0);
    atomic_init(&g_st_frees, 0);
    atomic_bool stop;
    atomic_uint errors;
    atomic_init(&stop, false);
    atomic_init(&errors, 0);
    uv_barrier_t start;
    assert_int_equal(uv_barrier_init(&start, ST_READERS + 1), 0);
    st_reader_t rd[ST_READERS];
    uv_thread_t tids[ST_READERS];
    uint64_t mark[ST_READERS] = {0};
    for (int i = 0; i < ST_READERS; i++) {
        rd[i] = (st_reader_t){.dom = &dom,
                              .start = &start,
                              .stop = &stop,
                              .errors = &errors,
                              .reader = (size_t)i,
                              .hold = hold};
        atomic_init(&rd[i].turns, 0);
        assert_int_equal(uv_thread_create(&tids[i], st_reader, &rd[i]), 0);
    }

    uv_barrier_wait(&start);
    size_t max_left = 0;
    for (uint64_t n = 1; n <= ST_VERSIONS; n++) {
        ver_t *v = malloc(sizeof *v);
        assert_non_null(v);
        v->magic = ST_MAGIC;
        v->version = n;
        assert_int_equal(gw_snap_publish(&dom, v, ver_free), 0);
        if (n % 8 == 0) {
            size_t left = gw_snap_reclaim(&dom);
            if (left > max_left)
                max_left = left;
        }
        /* Let the readers interleave with the publisher rather than race past it. */
        if (n % 64 == 0)
            st_wait_readers(rd, mark);
    }
    atomic_store(&stop, true);
    uint64_t reads = 0;
    for (int i = 0; i < ST_READERS; i++) {
        assert_int_equal(uv_thread_join(&tids[i]), 0);
        reads += rd[i].reads;
    }
    uv_barrier_destroy(&start);

    /* Every reader is offline and every reference released: all but the current go. */
    assert_int_equal(gw_snap_reclaim(&dom), 0);
    assert_int_equal(atomic_load(&errors), 0);
    assert_int_equal(atomic_load(&g_st_frees), ST_VERSIONS - 1);
    assert_true(reads >= ST_READERS);
    /* Reclamation kept up while readers ran: memory stayed bounded. */
    assert_true(max_left < ST_VERSIONS / 2);
    gw_snapdom_destroy(&dom);
    assert_int_equal(atomic_load(&g_st_frees), ST_VERSIONS);
}

static void snap_stress_readers_never_see_freed(void **state)
{
    (void)state;
    st_run(ST_BORROW);
}

static void snap_stress_references_outlive_quiescence(void **state)
{
    (void)state;
    st_run(ST_REFS);
}

static void snap_stress_pins_never_see_freed(void **state)
{
    (void)state;
    st_run(ST_PINS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(snap_current_is_null_before_publish, setup),
        cmocka_unit_test_setup(snap_publish_makes_object_current, setup),
        cmocka_unit_test_setup(snap_publish_accepts_null_free_fn, setup),
        cmocka_unit_test_setup(snap_reclaim_keeps_object_reader_may_hold, setup),
        cmocka_unit_test_setup(snap_reclaim_waits_for_slowest_reader, setup),
        cmocka_unit_test_setup(snap_reclaim_frees_only_generations_passed, setup),
        cmocka_unit_test_setup(snap_offline_reader_does_not_block_reclaim, setup),
        cmocka_unit_test_setup(snap_readers_start_offline, setup),
        cmocka_unit_test_setup(snap_offline_reader_blocks_again_once_back, setup),
        cmocka_unit_test_setup(snap_acquire_keeps_retired_object_alive, setup),
        cmocka_unit_test_setup(snap_acquire_counts_each_reference, setup),
        cmocka_unit_test(snap_release_null_is_ignored),
        cmocka_unit_test_setup(snapdom_destroy_frees_current, setup),
        cmocka_unit_test_setup(snapdom_destroy_frees_retired, setup),
        cmocka_unit_test_setup(snap_pin_keeps_retired_object_alive, setup),
        cmocka_unit_test_setup(snap_pins_are_counted_per_reader, setup),
        cmocka_unit_test_setup(snap_pin_reads_the_published_pointer_not_a_cached_one, setup),
        cmocka_unit_test_setup(snap_pin_holds_past_offline, setup),
        /* Last: threads (a handout's stub stops the whole binary from a thread). */
        cmocka_unit_test(snap_stress_readers_never_see_freed),
        cmocka_unit_test(snap_stress_references_outlive_quiescence),
        cmocka_unit_test(snap_stress_pins_never_see_freed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
