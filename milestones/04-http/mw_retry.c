/* mw_retry.c - the retry middleware: an idempotent request whose attempt failed before any
 * response byte reached the client may be tried again, up to max_attempts in all, after
 * 03's backoff, within the route's retry budget.
 *
 *   middleware:
 *     - retry: {max_attempts: 2,                       # 2..10, the first attempt included
 *               retry_on: [connect_failure, reset],    # and/or 502, 503, 504
 *               backoff: 10ms, backoff_max: 1s,        # 03's exponential backoff, full jitter
 *               budget_percent: 20, min_concurrent: 3} # 03's retry budget, for this route
 *
 * What counts as a failure is the engine's (hretry.h): connect_failure is a connect that
 * failed or timed out, reset a connection that broke or answered nothing in time, 502/503/504
 * a backend that answered that status (a 5xx the route does not list goes to the client as
 * it came). The engine asks through gw_chain_may_retry, which lands in may_retry here, once
 * retry_on (copied into the exchange by the request hook) lists the failure. Only idempotent
 * methods (GET, HEAD, OPTIONS, TRACE, PUT, DELETE: RFC 9110 9.2.2) are retried. The budget is
 * 03's (retry.h), one per route that has this middleware: retries in progress stay under
 * budget_percent of the route's requests in flight, and at least min_concurrent may run, so
 * a failing upstream is not hit by a storm of retries. The delay is 03's too
 * (gw_backoff_full_jitter): uniform in [0, min(backoff_max, backoff x 2^(n-1))] before retry
 * n, so that clients failed together do not come back together. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "03-resilience/retry.h"
#include "04-http/chain.h"
#include "04-http/hretry.h"
#include "04-http/mw.h"
#include "04-http/mw_cfg.h"
#include "error.h"

#define SEC 1000u

/* What a retry block without the key means (03's defaults for an upstream's retry). */
static const gw_mw_retry_cfg_t defaults = {
    .max_attempts = 2,
    .retry_on = GW_HRETRY_ON_DEFAULT,
    .backoff_ms = 10,
    .backoff_max_ms = SEC,
    .budget_percent = 20.0,
    .min_concurrent = 3,
};

/* retry_on names, in the order of the GW_HRETRY_ON_* bits. */
static const char *const on_names[] = {"connect_failure", "reset", "502", "503", "504", NULL};

static void decode_retry_on(gw_cdoc_t *doc, const gw_cnode_t *seq, gw_mw_retry_cfg_t *r)
{
    if (seq == NULL || !gw_cnode_expect_seq(doc, seq, "retry_on"))
        return;
    if (seq->n == 0) {
        gw_cdoc_error(doc, seq,
                      "retry_on: list at least one of connect_failure, reset, 502, "
                      "503, 504 (or leave the key out for the default)");
        return;
    }
    unsigned on = 0;
    for (size_t i = 0; i < seq->n; i++) {
        int k = 0;
        if (gw_cget_enum(doc, seq->items[i], "retry_on", on_names, &k) == 0)
            on |= 1u << k;
    }
    r->retry_on = on;
}

static void *decode(gw_cdoc_t *doc, const gw_cnode_t *opts)
{
    gw_mw_retry_cfg_t *r = calloc(1, sizeof *r);
    if (r == NULL) {
        gw_cdoc_oom(doc, opts);
        return NULL;
    }
    *r = defaults;
    if (!gw_cnode_expect_map(doc, opts, "retry"))
        return r;
    uint64_t n = r->max_attempts;
    gw_cget_uint(doc, gw_cmap_get(doc, opts, "max_attempts"), "max_attempts", 2, 10, &n);
    r->max_attempts = (unsigned)n;
    decode_retry_on(doc, gw_cmap_get(doc, opts, "retry_on"), r);
    /* The bounds of 03's upstream retry keys (resconfig.c). */
    gw_cget_duration(doc, gw_cmap_get(doc, opts, "backoff"), "backoff", 0, 60 * SEC,
                     &r->backoff_ms);
    const gw_cnode_t *mx = gw_cmap_get(doc, opts, "backoff_max");
    if (gw_cget_duration(doc, mx, "backoff_max", 0, 600 * SEC, &r->backoff_max_ms) == 0 &&
        mx != NULL && r->backoff_max_ms < r->backoff_ms)
        gw_cdoc_error(doc, mx, "backoff_max must be at least backoff");
    if (mx == NULL && r->backoff_max_ms < r->backoff_ms) /* backoff alone, above the default cap */
        r->backoff_max_ms = r->backoff_ms;
    gw_cget_percent(doc, gw_cmap_get(doc, opts, "budget_percent"), "budget_percent",
                    &r->budget_percent);
    gw_cget_uint(doc, gw_cmap_get(doc, opts, "min_concurrent"), "min_concurrent", 0, 100000,
                 &r->min_concurrent);
    return r;
}

static void print(FILE *out, const void *cfg, int in)
{
    (void)in;
    const gw_mw_retry_cfg_t *r = cfg != NULL ? cfg : &defaults;
    fprintf(out, " {max_attempts: %u, retry_on: [", r->max_attempts);
    const char *sep = "";
    for (int i = 0; on_names[i] != NULL; i++)
        if (r->retry_on & 1u << i) {
            fprintf(out, "%s%s", sep, on_names[i]);
            sep = ", ";
        }
    char a[32], b[32];
    fprintf(out, "], backoff: %s, backoff_max: %s, budget_percent: %g, min_concurrent: %llu}\n",
            gw_cfmt_duration(r->backoff_ms, a, sizeof a),
            gw_cfmt_duration(r->backoff_max_ms, b, sizeof b), r->budget_percent,
            (unsigned long long)r->min_concurrent);
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

/* A reload keeps the retry budget (requests and retries in flight): its limits are read
 * per call, so the next generation's apply from its next request on. */
static bool state_keeps(const void *old_cfg, const void *new_cfg)
{
    (void)old_cfg;
    (void)new_cfg;
    return true;
}

static int request(const void *cfg, void *state, gw_hx_t *x, gw_h1_head_t *req, gw_h1_head_t *resp)
{
    (void)state;
    (void)req;
    (void)resp;
    const gw_mw_retry_cfg_t *r = cfg;
    x->max_attempts = r->max_attempts > 1 ? r->max_attempts : 1;
    x->retry_on = r->retry_on;
    return 0;
}

static bool may_retry(const void *cfg, void *state, gw_hx_t *x, const char *method,
                      unsigned attempt, unsigned inflight, uint64_t *delay_ms)
{
    const gw_mw_retry_cfg_t *r = cfg;
    if (method == NULL || !(gw_router_method_bit(method, strlen(method)) & GW_METHODS_IDEMPOTENT) ||
        attempt >= x->max_attempts)
        return false;
    /* The retry that held a slot has failed: it ends here, and the next one asks anew
     * (with the in-flight count of now). */
    if (x->retry_held) {
        gw_budget_release(state);
        x->retry_held = false;
    }
    if (!gw_budget_try_acquire(state, inflight, r->budget_percent, (unsigned)r->min_concurrent))
        return false;
    x->retry_held = true;
    /* 03's draw takes a splitmix64 state: seed one from the worker's generator. */
    uint64_t rng = gw_hx_random(x);
    *delay_ms = gw_backoff_full_jitter(r->backoff_ms, r->backoff_max_ms, attempt, &rng);
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
    .state_keeps = state_keeps,
    .request = request,
    .may_retry = may_retry,
    .finish = finish,
};
