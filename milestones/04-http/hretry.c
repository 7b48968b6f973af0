/* hretry.c - see hretry.h. */
#include "04-http/hretry.h"

#include <uv.h> /* the UV_E* codes only */

#include "error.h"

/* see hretry.h */
bool gw_hretry_blames_backend(const gw_hretry_in_t *in)
{
    if (in->failure == GW_HRETRY_STATUS) /* an answer: passive health reads its status itself */
        return false;
    if (gw_err_local_shortage(in->uv_status))
        return false;
    bool found_closed =
        in->uv_status == UV_EOF || in->uv_status == UV_ECONNRESET || in->uv_status == UV_EPIPE;
    return !(in->reused && !in->resp_bytes && in->failure != GW_HRETRY_CONNECT && found_closed);
}

/* see hretry.h */
unsigned gw_hretry_on(gw_hretry_failure_t failure, unsigned status)
{
    switch (failure) {
    case GW_HRETRY_CONNECT:
        return GW_HRETRY_ON_CONNECT_FAILURE;
    case GW_HRETRY_BROKEN:
    case GW_HRETRY_RESPONSE_TIMEOUT:
        return GW_HRETRY_ON_RESET;
    case GW_HRETRY_STATUS:
        return status == 502   ? GW_HRETRY_ON_502
               : status == 503 ? GW_HRETRY_ON_503
               : status == 504 ? GW_HRETRY_ON_504
                               : 0;
    }
    return 0;
}

/* see hretry.h */
bool gw_hretry_replayable(const gw_hretry_in_t *in)
{
    /* None of the request consumed: no body, a body still waiting in the client's socket
     * (the next attempt reads it from there), or a body held whole in reqbuf. */
    bool body_intact = !in->has_body || !in->request_read || in->body_buffered;
    return !in->body_started && !in->response_started && !in->interim_sent && !in->draining &&
           body_intact;
}

/* The first policy that says "again", in the order of hretry.h; false when none does. */
static bool retry(const gw_hretry_in_t *in, const gw_hretry_hooks_t *hooks, gw_hretry_t *d)
{
    /* 1. A pooled connection the upstream had closed just as we used it: the request never
     * reached the application, send it again once (RFC 9112 9.3.1). A POST is not sent
     * again: had it arrived after all, it would run twice. */
    if (in->reused && !in->resp_bytes && in->idempotent && !in->stale_retry_used &&
        in->failure != GW_HRETRY_STATUS) {
        d->action = GW_HRETRY_FRESH;
        d->stale_retry = true;
        return true;
    }
    /* 2. The connect failed: the picker's next attempt, which avoids the backends tried. */
    if (in->failure == GW_HRETRY_CONNECT && in->attempt + 1 < in->max_attempts) {
        uint64_t delay = 0;
        if (hooks->connect_retry == NULL ||
            hooks->connect_retry(hooks->ctx, in->attempt + 1, &delay)) {
            d->action = GW_HRETRY_NEXT_ATTEMPT;
            d->delay_ms = delay;
            d->release_pick = false; /* the sequence goes on with what it holds */
            return true;
        }
    }
    /* 3. The route's retry middleware: an idempotent request, a failure its retry_on lists,
     * within its budget (the hook takes a slot when it says yes, so it is asked last), after
     * its backoff, on a pick that avoids the backends tried when another is usable. */
    uint64_t delay = 0;
    if (in->idempotent && (in->retry_on & gw_hretry_on(in->failure, in->status)) != 0 &&
        hooks->may_retry != NULL && hooks->may_retry(hooks->ctx, in->tries + 1, &delay)) {
        d->action = GW_HRETRY_FRESH;
        d->delay_ms = delay;
        d->avoid_tried = true;
        return true;
    }
    return false;
}

/* see hretry.h */
gw_hretry_t gw_hretry_decide(const gw_hretry_in_t *in, const gw_hretry_hooks_t *hooks)
{
    gw_hretry_t d = {.action = GW_HRETRY_ANSWER, .release_pick = true};
    /* First, so that what the attempt held is given back before a retry asks again. */
    if (in->picked && gw_hretry_blames_backend(in)) {
        if (hooks->report != NULL)
            hooks->report(hooks->ctx, in->uv_status < 0 ? in->uv_status : UV_ECONNRESET);
        d.report_passive_failure = true;
    }
    /* Our own shortage: the next attempt would meet it too. */
    bool shortage = gw_err_local_shortage(in->uv_status);
    if (!shortage && gw_hretry_replayable(in) && retry(in, hooks, &d))
        return d;
    if (in->failure == GW_HRETRY_STATUS) { /* the backend's answer is the client's answer */
        d.action = GW_HRETRY_PASS;
        d.release_pick = false;
        return d;
    }
    if (in->response_started) { /* too late for a status line: all we can do is cut it */
        d.action = GW_HRETRY_CLOSE_CLIENT;
        return d;
    }
    d.status = shortage ? 503 : in->failure == GW_HRETRY_RESPONSE_TIMEOUT ? 504 : 502;
    return d;
}
