/* mw_retry.c - the retry middleware: an idempotent request whose attempt failed before any
 * response byte reached the client may be tried again, up to max_attempts in all, within
 * the route's retry budget.
 *
 *   middleware:
 *     - retry: {max_attempts: 2}     # 2..10, the first attempt included
 *
 * The engine (hupstream.c) asks through gw_chain_may_retry, which lands in may_retry here.
 * Only idempotent methods (GET, HEAD, OPTIONS, TRACE, PUT, DELETE: RFC 9110 9.2.2) are
 * retried. The budget is 03's (retry.h), one per route that has this middleware: retries in
 * progress stay under 20% of the route's requests in flight, and at least 3 may run, so a
 * failing upstream is not hit by a storm of retries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "03-resilience/retry.h"
#include "04-http/chain.h"
#include "04-http/mw.h"
#include "04-http/mw_cfg.h"
#include "error.h"

#define BUDGET_PERCENT 20.0 /* retries in progress <= 20% of requests in flight... */
#define BUDGET_MIN 3u       /* ...and at least 3 */

static void *decode(gw_cdoc_t *doc, const gw_cnode_t *opts)
{
    gw_mw_retry_cfg_t *r = calloc(1, sizeof *r);
    if (r == NULL) {
        gw_cdoc_oom(doc, opts);
        return NULL;
    }
    r->max_attempts = 2;
    if (!gw_cnode_expect_map(doc, opts, "retry"))
        return r;
    uint64_t n = r->max_attempts;
    gw_cget_uint(doc, gw_cmap_get(doc, opts, "max_attempts"), "max_attempts", 2, 10, &n);
    r->max_attempts = (unsigned)n;
    return r;
}

static void print(FILE *out, const void *cfg, int in)
{
    (void)in;
    const gw_mw_retry_cfg_t *r = cfg;
    fprintf(out, " {max_attempts: %u}\n", r != NULL ? r->max_attempts : 2);
}

static void free_cfg(void *cfg)
{
    free(cfg);
}

static int state_new(const void *cfg, const gw_mw_env_t *env, void **state, char *err,
                     size_t errlen)
{
    (void)cfg;
    gw_retry_budget_t *b = calloc(1, sizeof *b);
    if (b == NULL) {
        gw_errf(err, errlen, "route '%s': %s", env->route->name, "out of memory");
        return -1;
    }
    gw_budget_init(b);
    *state = b;
    return 0;
}

static void state_free(void *state)
{
    free(state);
}

static int request(const void *cfg, void *state, gw_hx_t *x, gw_h1_head_t *req, gw_h1_head_t *resp)
{
    (void)state;
    (void)req;
    (void)resp;
    const gw_mw_retry_cfg_t *r = cfg;
    x->max_attempts = r->max_attempts > 1 ? r->max_attempts : 1;
    return 0;
}

static bool may_retry(const void *cfg, void *state, gw_hx_t *x, const char *method,
                      unsigned attempt, unsigned inflight)
{
    (void)cfg;
    if (method == NULL || !(gw_router_method_bit(method, strlen(method)) & GW_METHODS_IDEMPOTENT) ||
        attempt >= x->max_attempts)
        return false;
    /* The retry that held a slot has failed: it ends here, and the next one asks anew
     * (with the in-flight count of now). */
    if (x->retry_held) {
        gw_budget_release(state);
        x->retry_held = false;
    }
    if (!gw_budget_try_acquire(state, inflight, BUDGET_PERCENT, BUDGET_MIN))
        return false;
    x->retry_held = true;
    return true;
}

static void finish(const void *cfg, void *state, gw_hx_t *x, uint64_t now_ns)
{
    (void)cfg;
    (void)now_ns;
    if (x->retry_held)
        gw_budget_release(state);
    x->retry_held = false;
}

const gw_mw_ops_t gw_mw_retry_ops = {
    .name = "retry",
    .decode = decode,
    .print = print,
    .free = free_cfg,
    .state_new = state_new,
    .state_free = state_free,
    .request = request,
    .may_retry = may_retry,
    .finish = finish,
};
