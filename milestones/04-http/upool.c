/* upool.c - see upool.h. */
#include "04-http/upool.h"

/* see upool.h */
void gw_upool_remove(gw_upool_t *pool, gw_upool_entry_t *e)
{
    if (!e->pooled)
        return;
    /* A walk from the head: the pool is short (max_idle), and a connection closes while
     * pooled only when the upstream closed it or the worker stops. */
    for (gw_upool_entry_t **p = &pool->head; *p != NULL; p = &(*p)->next)
        if (*p == e) {
            *p = e->next;
            pool->n--;
            break;
        }
    e->pooled = false;
    e->next = NULL;
}

/* LAB 04: upstream connection pool */
/* May an upstream connection carry another request after this exchange? REUSABLE says
 * both messages ended cleanly on it and the upstream did not ask to close it; a connection
 * that already carried MAX_REQUESTS requests (from `upstreams.NAME.keepalive`; 0: no limit)
 * is retired, and while the process drains nothing is kept. */
bool gw_upool_may_keep(unsigned requests, uint64_t max_requests, bool reusable, bool draining)
{
    if (!reusable || draining)
        return false;
    return max_requests == 0 || requests < max_requests;
}

/* Puts E at the front of POOL at time NOW. Last in, first out: the connections used most
 * stay warm, and those at the back sit idle long enough to time out when traffic falls (a
 * FIFO would keep every connection just barely alive). */
void gw_upool_put(gw_upool_t *pool, gw_upool_entry_t *e, uint64_t now)
{
    e->pooled = true;
    e->idle_since = now;
    e->next = pool->head;
    pool->head = e;
    pool->n++;
}

/* Takes the most recently used idle connection of POOL, or NULL when it has none. */
gw_upool_entry_t *gw_upool_take(gw_upool_t *pool)
{
    gw_upool_entry_t *e = pool->head;
    if (e == NULL)
        return NULL;
    pool->head = e->next;
    pool->n--;
    e->pooled = false;
    e->next = NULL;
    return e;
}

/* Cuts from POOL the connections it must not keep at time NOW: those beyond the first
 * MAX_IDLE (the surplus of a burst: kept only until this sweep, so that the requests of the
 * same burst could use them), and those idle for IDLE_TIMEOUT_MS or more. Newest first
 * means both are a tail of the list. Returns that tail (linked by next, no longer pooled)
 * for the caller to close, or NULL. */
gw_upool_entry_t *gw_upool_cut(gw_upool_t *pool, uint64_t max_idle, uint64_t idle_timeout_ms,
                               uint64_t now)
{
    gw_upool_entry_t **link = &pool->head;
    size_t kept = 0;
    while (*link != NULL && kept < max_idle && now - (*link)->idle_since < idle_timeout_ms) {
        link = &(*link)->next;
        kept++;
    }
    gw_upool_entry_t *tail = *link;
    *link = NULL;
    pool->n = kept;
    for (gw_upool_entry_t *e = tail; e != NULL; e = e->next)
        e->pooled = false; /* out of the list already: closing it must not look for it */
    return tail;
}
/* END LAB */
