/* backend.h - a backend's live state, shared by every worker: health, connections, passive
 * failures and ejection. Everything that changes after start is an atomic. */
#ifndef GW_BACKEND_H
#define GW_BACKEND_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

typedef enum {
    GW_HEALTH_HEALTHY = 0,
    GW_HEALTH_UNHEALTHY, /* failed `fall` active checks in a row */
    GW_HEALTH_DRAINING,  /* no new connections; open ones finish (05's registry uses it) */
} gw_health_t;

typedef struct gw_backend_s {
    gw_addr_t addr;
    char name[GW_ADDR_STRLEN]; /* "127.0.0.1:9001", for logs and metrics */
    unsigned weight;           /* 1..1000 (1 when the config says nothing) */
    size_t index;              /* position in its upstream */
    const void *upstream;      /* the upstream it belongs to, set by its owner (lb.c) */
    atomic_int health;         /* gw_health_t, written by the control thread's checker */
    atomic_uint active;        /* connections in flight: counted from the pick to the close */
    atomic_uint consecutive_failures;       /* passive: connect or I/O failures since a success */
    atomic_uint consecutive_gateway_errors; /* passive (04): 502/503/504 or no response, in a row */
    atomic_uint consecutive_5xx;            /* passive (04): 5xx or no response, in a row */
    atomic_uint_least64_t ejected_until_ms; /* passive ejection deadline (monotonic ms), 0 none */
    atomic_uint ejections; /* times ejected so far (the next ejection lasts longer) */
    atomic_uint_least64_t picks, failures; /* statistics */
} gw_backend_t;

/* Sets up B (all counters 0, healthy). NAME is formatted from ADDR. */
void gw_backend_init(gw_backend_t *b, const gw_addr_t *addr, unsigned weight, size_t index);

/* True when B may take a new connection at NOW_MS: healthy and not ejected. */
bool gw_backend_usable(const gw_backend_t *b, uint64_t now_ms);

const char *gw_health_name(gw_health_t h);

#endif
