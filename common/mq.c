/* mq.c - see mq.h. */
#include "mq.h"

#include "error.h"

/* Takes the whole list under the lock, then delivers without holding it, so a handler may
 * post to this same queue. */
static void deliver(gw_mq_t *mq)
{
    uv_mutex_lock(&mq->lock);
    gw_msg_t *m = mq->head;
    mq->head = mq->tail = NULL;
    uv_mutex_unlock(&mq->lock);
    while (m != NULL) {
        gw_msg_t *next = m->next;
        m->next = NULL;
        mq->on_msg(mq, m);
        m = next;
    }
}

static void on_async(uv_async_t *h)
{
    deliver(h->data);
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
    mq->head = mq->tail = NULL;
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
    deliver(mq);
    mq->on_closed = on_closed;
    uv_close((uv_handle_t *)&mq->async, on_async_closed);
}

/* see mq.h */
void gw_mq_destroy(gw_mq_t *mq)
{
    uv_mutex_destroy(&mq->lock);
}
