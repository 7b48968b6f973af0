/* debounce.c - see debounce.h. */
#include "debounce.h"

/* see debounce.h */
void gw_debounce_init(gw_debounce_t *d, uint64_t quiet_ms)
{
    *d = (gw_debounce_t){.quiet_ms = quiet_ms};
}

/* see debounce.h */
void gw_debounce_event(gw_debounce_t *d, uint64_t now_ms)
{
    d->last_ms = now_ms;
    d->pending = true;
    d->events++;
}

/* see debounce.h */
uint64_t gw_debounce_wait(const gw_debounce_t *d, uint64_t now_ms)
{
    if (!d->pending)
        return GW_DEBOUNCE_IDLE;
    if (now_ms < d->last_ms) /* the clock went back: a whole period from the event */
        return d->quiet_ms;
    uint64_t quiet = now_ms - d->last_ms;
    return quiet >= d->quiet_ms ? 0 : d->quiet_ms - quiet;
}

/* see debounce.h */
bool gw_debounce_fire(gw_debounce_t *d, uint64_t now_ms)
{
    if (!d->pending || now_ms < d->last_ms || now_ms - d->last_ms < d->quiet_ms)
        return false;
    d->pending = false;
    d->fired++;
    return true;
}
