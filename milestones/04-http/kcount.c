/* kcount.c - see kcount.h. */
#include "04-http/kcount.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define LINE 64 /* a worker's block starts on a cache line of its own: no false sharing */

struct gw_kcount_s {
    _Atomic(gw_kcount_entry_t *) head; /* written by the control thread only */
    unsigned nworkers;
    size_t stride;
    size_t n; /* entries in the list: control thread */
};

/* see kcount.h */
gw_kcount_t *gw_kcount_new(unsigned nworkers, size_t block)
{
    gw_kcount_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    atomic_init(&r->head, NULL);
    r->nworkers = nworkers ? nworkers : 1;
    r->stride = (block + LINE - 1) / LINE * LINE;
    return r;
}

static void entry_free(gw_kcount_entry_t *e)
{
    free((void *)e->k1); /* k2 points into the same allocation */
    free(e->blocks);
    free(e);
}

/* see kcount.h */
void gw_kcount_free(gw_kcount_t *r)
{
    if (r == NULL)
        return;
    gw_kcount_entry_t *e = atomic_load_explicit(&r->head, memory_order_acquire);
    while (e != NULL) {
        gw_kcount_entry_t *next = e->next;
        entry_free(e);
        e = next;
    }
    free(r);
}

static bool same_key(const gw_kcount_entry_t *e, const char *k1, const char *k2)
{
    if (strcmp(e->k1, k1) != 0)
        return false;
    if (e->k2 == NULL || k2 == NULL)
        return e->k2 == k2;
    return strcmp(e->k2, k2) == 0;
}

/* see kcount.h */
gw_kcount_entry_t *gw_kcount_find(const gw_kcount_t *r, const char *k1, const char *k2)
{
    gw_kcount_entry_t *e = atomic_load_explicit(&((gw_kcount_t *)r)->head, memory_order_acquire);
    for (; e != NULL; e = e->next)
        if (same_key(e, k1, k2))
            return e;
    return NULL;
}

/* A new entry of key (K1, K2), every block zeroed, no reference yet; NULL when out of
 * memory. */
static gw_kcount_entry_t *entry_new(const gw_kcount_t *r, const char *k1, const char *k2)
{
    gw_kcount_entry_t *e = calloc(1, sizeof *e);
    size_t l1 = strlen(k1) + 1, l2 = k2 != NULL ? strlen(k2) + 1 : 0;
    char *key = malloc(l1 + l2);
    size_t bytes = r->stride * r->nworkers;
    void *blocks = bytes > 0 ? aligned_alloc(LINE, bytes) : NULL;
    if (e == NULL || key == NULL || (bytes > 0 && blocks == NULL)) {
        free(e);
        free(key);
        free(blocks);
        return NULL;
    }
    if (bytes > 0)
        memset(blocks, 0, bytes); /* zeroed memory: a zero counter, an empty histogram */
    memcpy(key, k1, l1);
    if (k2 != NULL)
        memcpy(key + l1, k2, l2);
    e->k1 = key;
    e->k2 = k2 != NULL ? key + l1 : NULL;
    e->nworkers = r->nworkers;
    e->stride = r->stride;
    e->blocks = blocks;
    return e;
}

/* see kcount.h */
gw_kcount_entry_t *gw_kcount_get(gw_kcount_t *r, const char *k1, const char *k2)
{
    gw_kcount_entry_t *e = gw_kcount_find(r, k1, k2);
    if (e == NULL) {
        if ((e = entry_new(r, k1, k2)) == NULL)
            return NULL;
        e->next = atomic_load_explicit(&r->head, memory_order_relaxed); /* one writer */
        atomic_store_explicit(&r->head, e, memory_order_release);
        r->n++;
    }
    e->refs++;
    return e;
}

/* see kcount.h */
gw_kcount_entry_t *gw_kcount_keep(gw_kcount_t *r, const char *k1, const char *k2)
{
    gw_kcount_entry_t *e = gw_kcount_find(r, k1, k2);
    if (e != NULL && e->kept)
        return e;
    if ((e = gw_kcount_get(r, k1, k2)) != NULL) /* the registry's reference */
        e->kept = true;
    return e;
}

/* see kcount.h */
void gw_kcount_put(gw_kcount_t *r, gw_kcount_entry_t *e)
{
    if (e == NULL)
        return;
    assert(e->refs > 0);
    if (--e->refs > 0)
        return;
    gw_kcount_entry_t *prev = NULL;
    for (gw_kcount_entry_t *it = atomic_load_explicit(&r->head, memory_order_relaxed); it != e;
         it = it->next)
        prev = it;
    if (prev == NULL)
        atomic_store_explicit(&r->head, e->next, memory_order_relaxed);
    else
        prev->next = e->next;
    r->n--;
    entry_free(e);
}

/* see kcount.h */
size_t gw_kcount_count(const gw_kcount_t *r)
{
    return r->n;
}

/* see kcount.h */
uint64_t gw_kcount_sum(const gw_kcount_entry_t *e, size_t i)
{
    uint64_t s = 0;
    for (unsigned w = 0; w < e->nworkers; w++)
        s += gw_counter_get(gw_kcount_counter((gw_kcount_entry_t *)e, w, i));
    return s;
}
