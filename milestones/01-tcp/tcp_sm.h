/* tcp_sm.h - the connection-pair state machine of the L4 proxy: pure logic, no sockets.
 *
 * A proxied TCP connection is two sockets (client, backend) and two independent flows of
 * bytes (client -> backend, backend -> client). The I/O code (tcp_proxy.c) reports what
 * happened as events; this machine answers with the actions to take. Keeping the rules
 * here, away from libuv, is what lets tests/test_tcp_sm.c check every rule without a
 * socket, and what lets you read the whole protocol of half-close and backpressure in one
 * page. */
#ifndef GW_TCP_SM_H
#define GW_TCP_SM_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { GW_CLIENT = 0, GW_BACKEND = 1 } gw_side_t;
#define GW_OTHER(side) ((gw_side_t)(1 - (side)))

typedef enum {
    GW_EV_CONNECTED,      /* the backend connect succeeded (side unused) */
    GW_EV_CONNECT_FAILED, /* refused, unreachable or timed out (side unused) */
    GW_EV_READ,           /* N bytes read from SIDE and queued for the other side */
    GW_EV_EOF,            /* SIDE sent FIN: it will send nothing more */
    GW_EV_WRITTEN,        /* N of the bytes queued to SIDE were written */
    GW_EV_SHUTDOWN_DONE,  /* our FIN to SIDE went out (its queue was flushed first) */
    GW_EV_ERROR,          /* a read or write on SIDE failed (reset, broken pipe...) */
    GW_EV_IDLE_TIMEOUT,   /* nothing moved for idle_timeout (side unused) */
    GW_EV_FORCE_CLOSE,    /* drain deadline passed (side unused) */
} gw_sm_event_t;

/* Actions, as bits: several can be asked for at once. */
#define GW_ACT_READ_START(side) (1u << (0 + (side)))
#define GW_ACT_READ_STOP(side) (1u << (2 + (side)))
#define GW_ACT_SHUTDOWN(side) (1u << (4 + (side))) /* send FIN to SIDE (shutdown(SHUT_WR)) */
#define GW_ACT_RESET(side) (1u << (6 + (side)))    /* close SIDE with RST, not FIN */
#define GW_ACT_CLOSE (1u << 8) /* close both sides (with RST where GW_ACT_RESET says) */

typedef enum { GW_SM_CONNECTING = 0, GW_SM_OPEN, GW_SM_CLOSED } gw_sm_phase_t;

/* One direction: bytes that come from one side and go to the other. */
typedef struct gw_flow_s {
    size_t queued; /* read from the source, not yet written to the destination */
    bool reading;  /* reads from the source are on */
    bool eof;      /* the source sent FIN */
    bool shut;     /* we asked for shutdown(SHUT_WR) towards the destination */
    bool done;     /* ...and it completed: this direction is finished */
} gw_flow_t;

typedef struct gw_sm_s {
    gw_sm_phase_t phase;
    gw_flow_t flow[2]; /* flow[GW_CLIENT]: client -> backend; flow[GW_BACKEND]: backend -> client */
    size_t high_water; /* stop reading a source once this much waits for its destination */
    size_t low_water;  /* resume once the wait is down to this */
} gw_sm_t;

/* Starts SM in CONNECTING. LOW must be below HIGH. */
void gw_sm_init(gw_sm_t *sm, size_t high_water, size_t low_water);

/* Feeds one event and returns the actions to perform, in this order: CLOSE (with its
 * RESETs) ends everything and nothing else matters; otherwise READ_STOPs, READ_STARTs,
 * SHUTDOWNs. N is a byte count for READ and WRITTEN, 0 otherwise. Events after CLOSE
 * return 0. */
unsigned gw_sm_on(gw_sm_t *sm, gw_sm_event_t ev, gw_side_t side, size_t n);

const char *gw_sm_event_name(gw_sm_event_t ev);

#endif
