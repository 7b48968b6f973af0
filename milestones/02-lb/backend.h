/* backend.h - a backend's identity and live state, shared by every worker and by every table
 * (generation) that lists it: health, connections, passive failures, ejection, and the
 * per-level extensions of later milestones. What a table decides about it (its weight, its
 * position, its config) is in the table's member view, gw_lb_member_t. */
#ifndef GW_BACKEND_H
#define GW_BACKEND_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "config.h"

typedef enum {
    GW_HEALTH_HEALTHY = 0,
    GW_HEALTH_UNHEALTHY, /* failed `fall` active checks in a row */
    GW_HEALTH_DRAINING,  /* left the configuration: no new connections unless in panic (like an
                          * ejected backend); open ones finish (gw_lb_applied sets it) */
} gw_health_t;

typedef struct gw_backend_s gw_backend_t;

/* Per-level extensions: milestone N keeps its per-backend state (03's breaker, 04's pools)
 * inside the backend, so it lives exactly as long as the backend and follows it from one
 * table to the next. Each level registers a size and hooks (gw_lb_backend_ext); every
 * backend made afterwards gets one zeroed block per level, at ext[N]. */
typedef void (*gw_backend_ext_cb)(void *ctx, gw_backend_t *b, void *ext);
typedef struct gw_backend_exts_s {
    size_t size[GW_LEVELS];            /* 0: the level has no extension (ext[N] NULL) */
    gw_backend_ext_cb init[GW_LEVELS]; /* after zeroing; may be NULL */
    gw_backend_ext_cb fini[GW_LEVELS]; /* before the free; may be NULL */
    void *ctx[GW_LEVELS];
} gw_backend_exts_t;

struct gw_backend_s {
    gw_addr_t addr;
    char name[GW_ADDR_STRLEN]; /* "127.0.0.1:9001", for logs and metrics */
    /* Identity: (upstream name, resolved address). KEY is "<upstream>\0<name>": two tables
     * that list the same key may share this object (lb.c's carry); UPSTREAM_NAME points
     * into it. Both NULL for a backend made by gw_backend_init (tests). */
    char *key;
    const char *upstream_name;
    /* Holders: each table listing it, each health checker probing it (and later each
     * pooled connection and open pair). It is freed at 0 (gw_lb_backend_drop). */
    atomic_uint refs;
    atomic_int health;  /* gw_health_t, written by the control thread's checker */
    atomic_uint active; /* connections in flight: counted from the pick to the close */
    atomic_uint consecutive_failures;       /* passive: connect or I/O failures since a success */
    atomic_uint consecutive_gateway_errors; /* passive (04): 502/503/504 or no response, in a row */
    atomic_uint consecutive_5xx;            /* passive (04): 5xx or no response, in a row */
    atomic_uint_least64_t ejected_until_ms; /* passive ejection deadline (monotonic ms), 0 none */
    atomic_uint ejections; /* times ejected so far (the next ejection lasts longer) */
    atomic_uint_least64_t picks, failures; /* statistics */
    void *ext[GW_LEVELS];                  /* [N]: milestone N's block, or NULL */
    const gw_backend_exts_t *exts;         /* what made EXT (its fini hooks), or NULL */
    /* Control thread only (lb.c): on the list of backends that left the configuration,
     * freed by the reaper once REFS is 0; MARK is scratch for set differences. */
    bool draining;
    gw_backend_t *next_draining;
    uint64_t mark;
};

/* A table's view of one backend: what this table (this generation of the configuration)
 * says about it. Positions are per table: member I of upstream U means nothing with another
 * table, so a position is only ever carried together with the table that defines it. */
typedef struct gw_lb_member_s {
    gw_backend_t *b;
    unsigned weight;                   /* 1..1000 (1 when the config says nothing or 0) */
    const gw_backend_cfg_t *cfg;       /* this table's config entry (address_text); may be
                                        * NULL outside a table (tests) */
    const struct gw_lb_upstream_s *up; /* the upstream of the table it is in, or NULL */
    size_t pos;                        /* its index in up->m */
} gw_lb_member_t;

/* Sets up M as a view of B with WEIGHT (0 is taken as 1: a weight of 0 would make a backend
 * unreachable for weighted strategies and break the cross-multiplied comparisons) and CFG.
 * UP and POS are left NULL and 0 (lb.c sets them for its tables). */
void gw_backend_member_init(gw_lb_member_t *m, gw_backend_t *b, unsigned weight,
                            const gw_backend_cfg_t *cfg);

/* Sets up B in place (all counters 0, healthy, no key, no refs, no extensions), NAME
 * formatted from ADDR: for tests and for users that own the memory. */
void gw_backend_init(gw_backend_t *b, const gw_addr_t *addr);

/* A new backend of upstream UPSTREAM at ADDR, as gw_backend_init plus its key, one reference
 * (the caller's) and the extensions EXTS registered (NULL: none; EXTS must outlive it).
 * NULL when out of memory (nothing is then left allocated). */
gw_backend_t *gw_backend_new(const char *upstream, const gw_addr_t *addr,
                             const gw_backend_exts_t *exts);

/* Frees B now (the extensions' fini first), whatever its count: the caller decided it is
 * unreachable (lb.c's drop and reaper). NULL is ignored. */
void gw_backend_free(gw_backend_t *b);

/* One more holder of B. Any thread; the holder must have reached B through something that
 * holds it already (a pinned table), so the count is never 0 here. */
void gw_backend_hold(gw_backend_t *b);

/* One holder less; true when it was the last one (B is then unreachable for anybody but the
 * caller, which decides what to do: lb.c frees it or leaves it to the reaper). Any thread. */
bool gw_backend_drop(gw_backend_t *b);

/* True when B and (UPSTREAM, ADDR) are the same identity: the same upstream name and the
 * same resolved address ("localhost:9001" is "127.0.0.1:9001"). */
bool gw_backend_same(const gw_backend_t *b, const char *upstream, const gw_addr_t *addr);

/* True when B may take a new connection at NOW_MS: healthy and not ejected. */
bool gw_backend_usable(const gw_backend_t *b, uint64_t now_ms);

const char *gw_health_name(gw_health_t h);

#endif
