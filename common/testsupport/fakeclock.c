/* fakeclock.c - see fakeclock.h. */
#include "fakeclock.h"

static uint64_t fake_mono_ns(const gw_clock_t *c)
{
    return ((const gw_fakeclock_t *)c)->mono_ns;
}

static uint64_t fake_wall_ms(const gw_clock_t *c)
{
    return ((const gw_fakeclock_t *)c)->wall_ms;
}

/* see fakeclock.h */
void gw_fakeclock_init(gw_fakeclock_t *fc)
{
    fc->clock.mono_ns = fake_mono_ns;
    fc->clock.wall_ms = fake_wall_ms;
    fc->mono_ns = 1000000000u;
    fc->wall_ms = 1767225600000u; /* 2026-01-01T00:00:00Z */
}

/* see fakeclock.h */
void gw_fakeclock_advance_ms(gw_fakeclock_t *fc, uint64_t ms)
{
    fc->mono_ns += ms * 1000000u;
    fc->wall_ms += ms;
}

/* see fakeclock.h */
void gw_fakeclock_advance_ns(gw_fakeclock_t *fc, uint64_t ns)
{
    fc->mono_ns += ns;
    fc->wall_ms = fc->wall_ms + (fc->mono_ns / 1000000u) - ((fc->mono_ns - ns) / 1000000u);
}
