/* reqbuf.c - see reqbuf.h. */
#include "reqbuf.h"

#include <string.h>

/* see reqbuf.h */
void gw_reqbuf_init(gw_reqbuf_t *b, uint64_t cap)
{
    b->head = b->tail = NULL;
    b->len = 0;
    b->cap = cap;
}

/* see reqbuf.h */
size_t gw_reqbuf_append(gw_reqbuf_t *b, gw_bufcache_t *cache, const char *p, size_t n)
{
    size_t size = gw_chunk_size(cache), taken = 0;
    if (n > b->cap - b->len)
        n = (size_t)(b->cap - b->len);
    while (taken < n) {
        gw_chunk_t *t = b->tail;
        if (t == NULL || t->len == size) {
            if ((t = gw_chunk_get(cache)) == NULL)
                break; /* the pool is out: the caller streams instead */
            gw_chunk_ref(t); /* the buffer's reference (a write may take more) */
            if (b->tail != NULL)
                b->tail->next = t;
            else
                b->head = t;
            b->tail = t;
        }
        size_t k = size - t->len;
        if (k > n - taken)
            k = n - taken;
        memcpy(t->data + t->len, p + taken, k);
        t->len += (uint32_t)k;
        taken += k;
    }
    b->len += taken;
    return taken;
}

/* see reqbuf.h */
void gw_reqbuf_clear(gw_reqbuf_t *b, gw_bufcache_t *cache)
{
    while (b->head != NULL) {
        gw_chunk_t *ch = b->head;
        b->head = ch->next;
        gw_chunk_unref(cache, ch);
    }
    b->tail = NULL;
    b->len = 0;
}
