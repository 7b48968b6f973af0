/* mq.h - a message queue into one uv loop from any thread: a mutex-guarded list plus a
 * uv_async_t to wake the loop. */
#ifndef GW_MQ_H
#define GW_MQ_H

#include <stdbool.h>
#include <uv.h>

/* Why the mutex: uv_async_send coalesces wake-ups, so the list is what carries the
 * messages; and libuv is not built with ThreadSanitizer, so TSan cannot see the ordering
 * uv_async_send gives (DESIGN.md): the mutex makes the hand-over visible to it. */

typedef struct gw_msg_s gw_msg_t;
typedef struct gw_mq_s gw_mq_t;

/* Embed a gw_msg_t in your message and recover it with container_of-style casts. */
struct gw_msg_s {
    gw_msg_t *next;
    int type; /* free for the sender and receiver to agree on */
};

typedef void (*gw_mq_cb)(gw_mq_t *mq, gw_msg_t *msg);

struct gw_mq_s {
    uv_async_t async;
    uv_mutex_t lock;
    gw_msg_t *head, *tail; /* shared: posted, not yet taken (under lock) */
    gw_msg_t *batch;       /* loop thread only: taken, not yet delivered */
    bool closed;
    gw_mq_cb on_msg;
    void (*on_closed)(gw_mq_t *mq);
    void *data; /* free for the owner */
};

/* Sets MQ up on LOOP (call from LOOP's thread). ON_MSG runs on LOOP's thread once per
 * message, in the order posted, and owns the message from then on. Returns 0 or a UV_E*
 * error (then nothing needs closing). */
int gw_mq_init(uv_loop_t *loop, gw_mq_t *mq, gw_mq_cb on_msg);

/* Queues MSG for MQ's loop; safe from any thread. Returns 0, or GW_EINVAL when MQ is closed
 * (the caller keeps MSG). */
int gw_mq_post(gw_mq_t *mq, gw_msg_t *msg);

/* Closes MQ from its loop's thread: later posts fail, messages already queued are still
 * delivered to ON_MSG now (so none leaks), then the handle is closed and ON_CLOSED (may be
 * NULL) runs from the close callback. Then call gw_mq_destroy. */
void gw_mq_close(gw_mq_t *mq, void (*on_closed)(gw_mq_t *mq));

/* Frees the lock. Only once MQ is closed AND no thread can call gw_mq_post on it any more
 * (posting to a closed queue is fine and fails cleanly; posting to a destroyed one is not):
 * typically after joining the threads that post. */
void gw_mq_destroy(gw_mq_t *mq);

#endif
