/* clock.c - the system clock behind gw_clock_t. */
#include "clock.h"

#include <time.h>

static uint64_t read_clock(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t system_mono_ns(const gw_clock_t *c)
{
    (void)c;
    return read_clock(CLOCK_MONOTONIC);
}

static uint64_t system_wall_ms(const gw_clock_t *c)
{
    (void)c;
    return read_clock(CLOCK_REALTIME) / 1000000u;
}

const gw_clock_t gw_clock_system = {system_mono_ns, system_wall_ms};
