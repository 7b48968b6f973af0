/* mw_breaker.c - the breaker middleware: 503 while the route's circuit breaker is open,
 * after too many upstream failures in a row or too high a failure rate.
 *
 *   middleware:
 *     - breaker: {consecutive_failures: 5, failure_rate_percent: 50, min_requests: 20,
 *                 window: 10s, open_timeout: 5s, half_open_max: 1, success_to_close: 2}
 *
 * The breaker is 03's (breaker.h: options, defaults and state machine), one per route that
 * has this middleware, shared by every worker. An open breaker answers at its position in
 * the chain; a request is admitted through it (which may take a half-open trial slot) only
 * in the admit hook, once every middleware let the request through, so a request another
 * middleware refuses never holds a trial. The outcome is recorded when the exchange ends. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "03-resilience/breaker.h"
#include "03-resilience/resconfig.h"
#include "04-http/chain.h"
#include "04-http/mw.h"
#include "04-http/mw_cfg.h"
#include "error.h"
#include "log.h"

static void *decode(gw_cdoc_t *doc, const gw_cnode_t *opts)
{
    gw_breaker_cfg_t *b = calloc(1, sizeof *b);
    if (b == NULL) {
        gw_cdoc_oom(doc, opts);
        return NULL;
    }
    if (gw_cnode_expect_map(doc, opts, "breaker"))
        gw_res_decode_breaker(doc, opts, "breaker", b); /* 03's keys and defaults */
    return b;
}

static void print(FILE *out, const void *cfg, int in)
{
    (void)in;
    static const gw_breaker_cfg_t none;
    const gw_breaker_cfg_t *b = cfg != NULL ? cfg : &none;
    char a[32], c[32];
    fprintf(out,
            " {consecutive_failures: %u, failure_rate_percent: %g, min_requests: %u, window: %s, "
            "open_timeout: %s, half_open_max: %u, success_to_close: %u}\n",
            b->consecutive_failures, b->failure_rate_percent, b->min_requests,
            gw_cfmt_duration(b->window_ms, a, sizeof(a)),
            gw_cfmt_duration(b->open_timeout_ms, c, sizeof(c)), b->half_open_max,
            b->success_to_close);
}

static void free_cfg(void *cfg)
{
    free(cfg);
}

/* gw_hx_t holds one admission (breaker_admitted); a second breaker would never see an
 * outcome and so never open: refuse it rather than pretend it works. The loader already
 * refuses a kind twice in one route; this covers hand-built configs. */
static int state_new(const void *cfg, const gw_mw_env_t *env, void **state, char *err,
                     size_t errlen)
{
    (void)cfg;
    for (size_t i = 0; i < env->index; i++)
        if (env->route->mw[i].kind == GW_MW_BREAKER) {
            gw_errf(err, errlen, "route '%s': %s", env->route->name, "more than one breaker");
            return -1;
        }
    gw_breaker_t *b = calloc(1, sizeof *b);
    if (b == NULL) {
        gw_errf(err, errlen, "route '%s': %s", env->route->name, "out of memory");
        return -1;
    }
    gw_breaker_init(b);
    *state = b;
    return 0;
}

static void state_free(void *state)
{
    free(state);
}

/* A reload keeps the breaker (open stays open): its thresholds are read per call, so the
 * next generation's apply from its next request on. */
static bool state_keeps(const void *old_cfg, const void *new_cfg)
{
    (void)old_cfg;
    (void)new_cfg;
    return true;
}

/* Open: 503 here, before the middleware after it. Otherwise admitted later (admit). */
static int request(const void *cfg, void *state, gw_hx_t *x, gw_h1_head_t *req, gw_h1_head_t *resp)
{
    (void)req;
    (void)resp;
    return gw_breaker_may_allow(state, cfg, x->start_ns / 1000000u) ? 0 : 503;
}

static int admit(const void *cfg, void *state, gw_hx_t *x)
{
    bool trial = false;
    if (!gw_breaker_allow(state, cfg, x->start_ns / 1000000u, &trial))
        return 503; /* opened, or its trial slots taken, since the request hook */
    x->breaker_admitted = true;
    x->breaker_trial = trial;
    return 0;
}

/* A failure: the upstream failed (connect, reset, 502/504), or any status >= 500. */
static void finish(const void *cfg, void *state, gw_hx_t *x, uint64_t now_ns)
{
    const gw_breaker_cfg_t *b = cfg;
    if (!x->breaker_admitted)
        return;
    bool ok = !x->upstream_failed && x->status < 500;
    int to = gw_breaker_record(state, b, ok, x->breaker_trial, now_ns / 1000000u);
    if (to == GW_BREAKER_OPEN)
        gw_warn("route '%s': circuit breaker OPEN: answering 503 for %" PRIu64 " ms",
                x->route->name, b->open_timeout_ms);
    else if (to == GW_BREAKER_CLOSED)
        gw_info("route '%s': circuit breaker CLOSED: trials succeeded", x->route->name);
}

const gw_mw_ops_t gw_mw_breaker_ops = {
    .name = "breaker",
    .decode = decode,
    .print = print,
    .free = free_cfg,
    .state_new = state_new,
    .state_free = state_free,
    .state_keeps = state_keeps,
    .request = request,
    .admit = admit,
    .finish = finish,
};
