/* lcount.c - see lcount.h. */
#include "04-http/lcount.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct gw_lcount_entry_s {
    gw_lcount_entry_t *next; /* set before the entry is published, never changed */
    char *name;
    unsigned workers;
    size_t n;
    gw_counter_t c[]; /* [workers][n] */
};

struct gw_lcount_s {
    _Atomic(gw_lcount_entry_t *) head;
    unsigned workers;
    size_t n;
};

/* see lcount.h */
gw_lcount_t *gw_lcount_new(unsigned workers, size_t ncounters)
{
    gw_lcount_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    atomic_init(&r->head, NULL);
    r->workers = workers;
    r->n = ncounters;
    return r;
}

/* see lcount.h */
void gw_lcount_free(gw_lcount_t *r)
{
    if (r == NULL)
        return;
    gw_lcount_entry_t *e = atomic_load_explicit(&r->head, memory_order_acquire);
    while (e != NULL) {
        gw_lcount_entry_t *next = e->next;
        free(e->name);
        free(e);
        e = next;
    }
    free(r);
}

/* see lcount.h */
gw_lcount_entry_t *gw_lcount_find(const gw_lcount_t *r, const char *name)
{
    gw_lcount_entry_t *e = atomic_load_explicit(&((gw_lcount_t *)r)->head, memory_order_acquire);
    for (; e != NULL; e = e->next)
        if (strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

/* see lcount.h */
gw_lcount_entry_t *gw_lcount_add(gw_lcount_t *r, const char *name)
{
    gw_lcount_entry_t *e = gw_lcount_find(r, name);
    if (e != NULL)
        return e;
    size_t cells = (size_t)r->workers * r->n;
    e = calloc(1, sizeof *e + cells * sizeof e->c[0]);
    if (e == NULL || (e->name = strdup(name)) == NULL) {
        free(e);
        return NULL;
    }
    e->workers = r->workers;
    e->n = r->n;
    e->next = atomic_load_explicit(&r->head, memory_order_relaxed); /* one writer: control */
    atomic_store_explicit(&r->head, e, memory_order_release);
    return e;
}

/* see lcount.h */
gw_counter_t *gw_lcount_at(gw_lcount_entry_t *e, unsigned w, size_t i)
{
    return &e->c[(size_t)w * e->n + i];
}

/* see lcount.h */
uint64_t gw_lcount_sum(const gw_lcount_entry_t *e, size_t i)
{
    uint64_t s = 0;
    for (unsigned w = 0; w < e->workers; w++)
        s += gw_counter_get(&e->c[(size_t)w * e->n + i]);
    return s;
}

/* see lcount.h */
const char *gw_lcount_name(const gw_lcount_entry_t *e)
{
    return e->name;
}
