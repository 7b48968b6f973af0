/* clock.h - every read of time goes through here, so tests can substitute a fake clock. */
#ifndef GW_CLOCK_H
#define GW_CLOCK_H

#include <stdint.h>

/* A clock is a small vtable. Logic that needs time takes a `const gw_clock_t *` (or a `now`
 * value) instead of calling clock_gettime, so unit tests drive it with a fake clock and
 * never sleep (see common/testsupport/fakeclock.h). */
typedef struct gw_clock_s gw_clock_t;
struct gw_clock_s {
    uint64_t (*mono_ns)(const gw_clock_t *c); /* monotonic, for latency */
    uint64_t (*wall_ms)(const gw_clock_t *c); /* Unix epoch ms, for logs and token expiry */
};

/* The real clock: CLOCK_MONOTONIC and CLOCK_REALTIME. */
extern const gw_clock_t gw_clock_system;

static inline uint64_t gw_clock_mono_ns(const gw_clock_t *c)
{
    return c->mono_ns(c);
}
static inline uint64_t gw_clock_mono_ms(const gw_clock_t *c)
{
    return c->mono_ns(c) / 1000000u;
}
static inline uint64_t gw_clock_wall_ms(const gw_clock_t *c)
{
    return c->wall_ms(c);
}

#endif
