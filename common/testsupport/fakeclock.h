/* fakeclock.h - a gw_clock_t whose time moves only when a test says so. */
#ifndef GW_FAKECLOCK_H
#define GW_FAKECLOCK_H

#include <stdint.h>

#include "clock.h"

typedef struct gw_fakeclock_s {
    gw_clock_t clock; /* pass &fc.clock wherever a const gw_clock_t * is wanted */
    uint64_t mono_ns;
    uint64_t wall_ms;
} gw_fakeclock_t;

/* Starts at monotonic 1 s and wall time 2026-01-01T00:00:00Z (fixed, so tests repeat). */
void gw_fakeclock_init(gw_fakeclock_t *fc);
void gw_fakeclock_advance_ms(gw_fakeclock_t *fc, uint64_t ms);
void gw_fakeclock_advance_ns(gw_fakeclock_t *fc, uint64_t ns);

#endif
