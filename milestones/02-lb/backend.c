/* backend.c - see backend.h. */
#include <string.h>

#include "backend.h"

/* see backend.h */
void gw_backend_init(gw_backend_t *b, const gw_addr_t *addr, unsigned weight, size_t index)
{
    memset(b, 0, sizeof(*b));
    b->addr = *addr;
    gw_addr_format(addr, b->name, sizeof(b->name));
    /* A weight of 0 would make a backend unreachable for weighted strategies and break the
     * cross-multiplied comparisons (everything compares equal to 0): treat it as 1. */
    b->weight = weight ? weight : 1;
    b->index = index;
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
