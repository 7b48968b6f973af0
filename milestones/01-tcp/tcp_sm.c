/* tcp_sm.c - see tcp_sm.h. */
#include "tcp_sm.h"

/* see tcp_sm.h */
void gw_sm_init(gw_sm_t *sm, size_t high_water, size_t low_water)
{
    *sm = (gw_sm_t){.phase = GW_SM_CONNECTING, .high_water = high_water, .low_water = low_water};
}

/* LAB 01: connect */
/* The backend answered: from now on both sides are read. Not before: bytes from the client
 * would have nowhere to go, and reading them anyway only moves the queue into our memory. */
static unsigned on_connected(gw_sm_t *sm)
{
    if (sm->phase != GW_SM_CONNECTING)
        return 0;
    sm->phase = GW_SM_OPEN;
    sm->flow[GW_CLIENT].reading = sm->flow[GW_BACKEND].reading = true;
    return GW_ACT_READ_START(GW_CLIENT) | GW_ACT_READ_START(GW_BACKEND);
}
/* END LAB */

/* LAB 01: backpressure */
/* Bytes read from SRC wait in the destination's write queue. Past the high-water mark we
 * stop reading SRC: the kernel's receive buffer fills, TCP's window closes, and the sender
 * slows down. That is the whole of flow control in a proxy: memory per connection stays
 * bounded by high_water plus one chunk, however fast one side and slow the other. */
static unsigned on_read(gw_sm_t *sm, gw_side_t src, size_t n)
{
    gw_flow_t *f = &sm->flow[src];
    f->queued += n;
    if (f->reading && f->queued >= sm->high_water) {
        f->reading = false;
        return GW_ACT_READ_STOP(src);
    }
    return 0;
}

/* N bytes left DST's queue. Two thresholds (hysteresis) instead of one stop the proxy
 * from flapping reads on and off for every chunk around a single mark. */
static unsigned on_written(gw_sm_t *sm, gw_side_t dst, size_t n)
{
    gw_side_t src = GW_OTHER(dst);
    gw_flow_t *f = &sm->flow[src];
    f->queued = n > f->queued ? 0 : f->queued - n;
    if (!f->eof && !f->reading && f->queued <= sm->low_water) {
        f->reading = true;
        return GW_ACT_READ_START(src);
    }
    if (f->eof && f->queued == 0 && !f->shut) { /* the FIN was waiting for the queue */
        f->shut = true;
        return GW_ACT_SHUTDOWN(dst);
    }
    return 0;
}
/* END LAB */

/* LAB 01: half-close */
/* SRC sent FIN: it has nothing more to say, but it may still be listening. Pass the FIN
 * on to the other side (shutdown(SHUT_WR)) only once every byte before it was written,
 * and keep the opposite direction flowing: closing both sockets here is the classic proxy
 * bug that truncates replies to "send request, then shut down write" clients. */
static unsigned on_eof(gw_sm_t *sm, gw_side_t src)
{
    gw_flow_t *f = &sm->flow[src];
    unsigned act = 0;
    f->eof = true;
    if (f->reading) {
        f->reading = false;
        act |= GW_ACT_READ_STOP(src);
    }
    if (f->queued == 0 && !f->shut) {
        f->shut = true;
        act |= GW_ACT_SHUTDOWN(GW_OTHER(src));
    }
    return act;
}

/* Our FIN reached DST's socket. When both directions have finished, the pair is done. */
static unsigned on_shutdown_done(gw_sm_t *sm, gw_side_t dst)
{
    sm->flow[GW_OTHER(dst)].done = true;
    if (sm->flow[GW_CLIENT].done && sm->flow[GW_BACKEND].done) {
        sm->phase = GW_SM_CLOSED;
        return GW_ACT_CLOSE;
    }
    return 0;
}
/* END LAB */

/* LAB 01: errors and resets */
/* A failure on one side is not a FIN: data may have been lost. Closing the other side with
 * a RST (not a FIN) tells its peer the exchange was cut short, instead of letting it take
 * a truncated stream for a complete one. */
static unsigned on_error(gw_sm_t *sm, gw_side_t side)
{
    sm->phase = GW_SM_CLOSED;
    return GW_ACT_RESET(GW_OTHER(side)) | GW_ACT_CLOSE;
}
/* END LAB */

/* see tcp_sm.h */
unsigned gw_sm_on(gw_sm_t *sm, gw_sm_event_t ev, gw_side_t side, size_t n)
{
    if (sm->phase == GW_SM_CLOSED)
        return 0;
    switch (ev) {
    case GW_EV_CONNECTED:
        return on_connected(sm);
    case GW_EV_CONNECT_FAILED:
    case GW_EV_IDLE_TIMEOUT:
        sm->phase = GW_SM_CLOSED;
        return GW_ACT_CLOSE;
    case GW_EV_FORCE_CLOSE: /* drain deadline: the transfer is cut short, say so */
        sm->phase = GW_SM_CLOSED;
        return GW_ACT_RESET(GW_CLIENT) | GW_ACT_RESET(GW_BACKEND) | GW_ACT_CLOSE;
    case GW_EV_READ:
        return on_read(sm, side, n);
    case GW_EV_WRITTEN:
        return on_written(sm, side, n);
    case GW_EV_EOF:
        return on_eof(sm, side);
    case GW_EV_SHUTDOWN_DONE:
        return on_shutdown_done(sm, side);
    case GW_EV_ERROR:
        return on_error(sm, side);
    }
    return 0;
}

/* see tcp_sm.h */
const char *gw_sm_event_name(gw_sm_event_t ev)
{
    static const char *const names[] = {"connected", "connect_failed", "read",
                                        "eof",       "written",        "shutdown_done",
                                        "error",     "idle_timeout",   "force_close"};
    return (unsigned)ev < sizeof names / sizeof names[0] ? names[ev] : "?";
}
