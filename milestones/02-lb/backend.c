/* backend.c - see backend.h. */
#include <stdlib.h>
#include <string.h>

#include "backend.h"

/* see backend.h */
void gw_backend_member_init(gw_lb_member_t *m, gw_backend_t *b, unsigned weight,
                            const gw_backend_cfg_t *cfg)
{
    *m = (gw_lb_member_t){.b = b, .weight = weight ? weight : 1, .cfg = cfg};
}

/* see backend.h */
void gw_backend_init(gw_backend_t *b, const gw_addr_t *addr)
{
    memset(b, 0, sizeof(*b));
    b->addr = *addr;
    gw_addr_format(addr, b->name, sizeof(b->name));
    atomic_init(&b->refs, 0);
    atomic_init(&b->health, GW_HEALTH_HEALTHY);
    atomic_init(&b->active, 0);
    atomic_init(&b->consecutive_failures, 0);
    atomic_init(&b->consecutive_gateway_errors, 0);
    atomic_init(&b->consecutive_5xx, 0);
    atomic_init(&b->ejected_until_ms, 0);
    atomic_init(&b->ejections, 0);
    atomic_init(&b->picks, 0);
    atomic_init(&b->failures, 0);
}

/* Extension blocks follow the backend in one allocation, each aligned for any type. */
static size_t ext_round(size_t n)
{
    const size_t a = _Alignof(max_align_t);
    return (n + a - 1) / a * a;
}

/* see backend.h */
gw_backend_t *gw_backend_new(const char *upstream, const gw_addr_t *addr,
                             const gw_backend_exts_t *exts)
{
    size_t total = ext_round(sizeof(gw_backend_t));
    for (int l = 0; exts != NULL && l < GW_LEVELS; l++)
        total += ext_round(exts->size[l]);
    gw_backend_t *b = calloc(1, total);
    if (b == NULL)
        return NULL;
    gw_backend_init(b, addr);
    size_t up = strlen(upstream), nm = strlen(b->name);
    b->key = malloc(up + 1 + nm + 1);
    if (b->key == NULL) {
        free(b);
        return NULL;
    }
    memcpy(b->key, upstream, up + 1);
    memcpy(b->key + up + 1, b->name, nm + 1);
    b->upstream_name = b->key;
    atomic_init(&b->refs, 1);
    b->exts = exts;
    char *at = (char *)b + ext_round(sizeof(gw_backend_t));
    for (int l = 0; exts != NULL && l < GW_LEVELS; l++) {
        if (exts->size[l] == 0)
            continue;
        b->ext[l] = at; /* zeroed by calloc */
        at += ext_round(exts->size[l]);
        if (exts->init[l] != NULL)
            exts->init[l](exts->ctx[l], b, b->ext[l]);
    }
    return b;
}

/* see backend.h */
void gw_backend_free(gw_backend_t *b)
{
    if (b == NULL)
        return;
    for (int l = GW_LEVELS - 1; b->exts != NULL && l >= 0; l--) /* top level first */
        if (b->ext[l] != NULL && b->exts->fini[l] != NULL)
            b->exts->fini[l](b->exts->ctx[l], b, b->ext[l]);
    free(b->key);
    free(b);
}

/* see backend.h */
void gw_backend_hold(gw_backend_t *b)
{
    /* Relaxed, as for any reference count: the new holder got B through a holder, which
     * keeps it alive meanwhile; nothing is published with the increment. */
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

/* see backend.h */
bool gw_backend_drop(gw_backend_t *b)
{
    /* Release: every use of B by this holder happens before the decrement. Acquire (on the
     * last one): the caller, who may free B, sees every other holder's uses before it. */
    return atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1;
}

/* see backend.h */
bool gw_backend_same(const gw_backend_t *b, const char *upstream, const gw_addr_t *addr)
{
    return b->upstream_name != NULL && strcmp(b->upstream_name, upstream) == 0 &&
           gw_addr_equal(&b->addr, addr);
}

/* see backend.h */
bool gw_backend_usable(const gw_backend_t *b, uint64_t now_ms)
{
    /* Relaxed loads: each field is a flag on its own; no other data is published with it,
     * and a pick that sees a change one connection late is harmless. */
    int h = atomic_load_explicit(&b->health, memory_order_relaxed);
    uint64_t until = atomic_load_explicit(&b->ejected_until_ms, memory_order_relaxed);
    return h == GW_HEALTH_HEALTHY && until <= now_ms; /* the deadline itself ends the ejection */
}

/* see backend.h */
const char *gw_health_name(gw_health_t h)
{
    switch (h) {
    case GW_HEALTH_HEALTHY:
        return "healthy";
    case GW_HEALTH_UNHEALTHY:
        return "unhealthy";
    case GW_HEALTH_DRAINING:
        return "draining";
    }
    return "unknown";
}
