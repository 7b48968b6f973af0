/* mq.c - see mq.h. */
#include "mq.h"

#include "error.h"

/* Delivers queued messages, one at a time, in order. The batch taken from the shared list
 * lives in MQ (not on this stack), so a handler that closes the queue mid-batch still gets
 * the rest of the batch first, in order, from gw_mq_close's own delivery. From the async
 * callback we refill at most once: a handler that posts on every delivery must not keep
 * this loop turn forever (its posts wake the loop again). Closing drains until empty,
 * which ends because posts fail once `closed` is set. */
static void deliver(gw_mq_t *mq, bool until_empty)
{
    bool refilled = false;
    for (;;) {
        if (mq->batch == NULL) {
            if (refilled && !until_empty)
                return;
            uv_mutex_lock(&mq->lock);
            mq->batch = mq->head;
            mq->head = mq->tail = NULL;
            uv_mutex_unlock(&mq->lock);
            refilled = true;
            if (mq->batch == NULL)
                return;
        }
        gw_msg_t *m = mq->batch;
        mq->batch = m->next;
        m->next = NULL;
        mq->on_msg(mq, m);
    }
}

static void on_async(uv_async_t *h)
{
    deliver(h->data, false);
}

/* see mq.h */
int gw_mq_init(uv_loop_t *loop, gw_mq_t *mq, gw_mq_cb on_msg)
{
    int rc = uv_mutex_init(&mq->lock);
    if (rc != 0)
        return rc;
    rc = uv_async_init(loop, &mq->async, on_async);
    if (rc != 0) {
        uv_mutex_destroy(&mq->lock);
        return rc;
    }
    mq->async.data = mq;
    mq->head = mq->tail = mq->batch = NULL;
    mq->closed = false;
    mq->on_msg = on_msg;
    mq->on_closed = NULL;
    return 0;
}

/* see mq.h */
int gw_mq_post(gw_mq_t *mq, gw_msg_t *msg)
{
    msg->next = NULL;
    uv_mutex_lock(&mq->lock);
    if (mq->closed) {
        uv_mutex_unlock(&mq->lock);
        return GW_EINVAL;
    }
    if (mq->tail != NULL)
        mq->tail->next = msg;
    else
        mq->head = msg;
    mq->tail = msg;
    /* Sent under the lock: gw_mq_close sets `closed` under the same lock before it closes
     * the handle, so we never send to a closing handle. */
    uv_async_send(&mq->async);
    uv_mutex_unlock(&mq->lock);
    return 0;
}

static void on_async_closed(uv_handle_t *h)
{
    gw_mq_t *mq = h->data;
    if (mq->on_closed != NULL)
        mq->on_closed(mq);
}

/* see mq.h */
void gw_mq_close(gw_mq_t *mq, void (*on_closed)(gw_mq_t *mq))
{
    uv_mutex_lock(&mq->lock);
    mq->closed = true;
    uv_mutex_unlock(&mq->lock);
    deliver(mq, true);
    mq->on_closed = on_closed;
    uv_close((uv_handle_t *)&mq->async, on_async_closed);
}

/* see mq.h */
void gw_mq_destroy(gw_mq_t *mq)
{
    uv_mutex_destroy(&mq->lock);
}
