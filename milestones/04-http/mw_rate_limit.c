/* mw_rate_limit.c - the rate_limit middleware: a token bucket per key (the client address,
 * a header's value, or the JWT subject), 429 with Retry-After when a bucket is empty.
 *
 *   middleware:
 *     - rate_limit: {rate: 100, burst: 200, key: client_ip | header | jwt_sub,
 *                    header: X-Api-Key (with key: header), max_keys: 100000}
 *
 * The buckets are 03's keyed limiter (ratelimit.h), one per route that has this
 * middleware, shared by every worker (striped locks). With key: jwt_sub, put jwt before it:
 * the subject is what jwt verified (x->sub); without one, the client address counts. */
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "03-resilience/ratelimit.h"
#include "04-http/chain.h"
#include "04-http/mw.h"
#include "04-http/mw_cfg.h"
#include "error.h"
#include "hash.h"

#define RL_STRIPES 64 /* per keyed limiter; shrinks for small max_keys (ratelimit.h) */

static const char *const key_names[] = {"client_ip", "header", "jwt_sub", NULL};

/* The limiter of one route, and the seeds its hashed keys use. */
typedef struct rl_state_s {
    gw_keyed_limiter_t *limiter;
    uint64_t seed[2];
} rl_state_t;

/* ---- config ------------------------------------------------------------------------------- */

/* A request rate: "100", "0.5"; digits with at most 6 decimals (the bucket keeps a
 * millionth of a token per second, so -T prints it back exactly), GW_RATE_MIN..MAX. */
static int get_rate(gw_cdoc_t *doc, const gw_cnode_t *node, double *out)
{
    const char *s = node->type == GW_CNODE_SCALAR && !node->null && !node->quoted ? node->str : "";
    size_t digits = strspn(s, "0123456789"), decimals = 0;
    bool ok = digits > 0;
    if (ok && s[digits] == '.') {
        decimals = strspn(s + digits + 1, "0123456789");
        ok = decimals > 0 && decimals <= 6 && s[digits + 1 + decimals] == '\0';
    } else {
        ok = ok && s[digits] == '\0';
    }
    if (!ok) {
        gw_cnode_silence(node);
        gw_cdoc_error(doc, node,
                      "rate must be a number of requests per second like 100 or 0.5 "
                      "(at most 6 decimals, no quotes)");
        return GW_ECONFIG;
    }
    double v = strtod(s, NULL);
    if (!(v >= GW_RATE_MIN && v <= GW_RATE_MAX)) {
        gw_cdoc_error(doc, node, "rate: %s is out of range 0.000001..10000000", s);
        return GW_ECONFIG;
    }
    *out = v;
    return 0;
}

static void *decode(gw_cdoc_t *doc, const gw_cnode_t *opts)
{
    gw_mw_rate_limit_cfg_t *r = calloc(1, sizeof *r);
    if (r == NULL) {
        gw_cdoc_oom(doc, opts);
        return NULL;
    }
    r->max_keys = 100000;
    if (!gw_cnode_expect_map(doc, opts, "rate_limit"))
        return r;
    const gw_cnode_t *rate = gw_cmap_require(doc, opts, "rate");
    if (rate && get_rate(doc, rate, &r->rate) != 0)
        r->rate = 1;
    double b = ceil(r->rate);
    uint64_t burst = b < 1 ? 1 : b > GW_BURST_MAX ? GW_BURST_MAX : (uint64_t)b;
    gw_cget_uint(doc, gw_cmap_get(doc, opts, "burst"), "burst", 1, GW_BURST_MAX, &burst);
    r->burst = (unsigned)burst;
    const gw_cnode_t *key = gw_cmap_get(doc, opts, "key");
    int k = GW_RL_KEY_CLIENT_IP;
    bool key_ok = gw_cget_enum(doc, key, "key", key_names, &k) == 0;
    r->key = (gw_rl_key_t)k;
    const gw_cnode_t *header = gw_cmap_get(doc, opts, "header");
    if (!key_ok)
        gw_cnode_silence(header ? header : key);
    else if (header && r->key != GW_RL_KEY_HEADER)
        gw_cdoc_error(doc, gw_mw_cfg_key_node(opts, "header"), "header: only with `key: header`");
    else if (!header && r->key == GW_RL_KEY_HEADER)
        gw_cdoc_error(doc, key, "key: header needs `header: NAME` (the header to count by)");
    else
        gw_mw_cfg_token(doc, header, "header", &r->header);
    gw_cget_uint(doc, gw_cmap_get(doc, opts, "max_keys"), "max_keys", 16, 10000000, &r->max_keys);
    return r;
}

static void print(FILE *out, const void *cfg, int in)
{
    (void)in;
    static const gw_mw_rate_limit_cfg_t none = {.rate = 1, .burst = 1, .max_keys = 100000};
    const gw_mw_rate_limit_cfg_t *r = cfg != NULL ? cfg : &none;
    char rate[64];
    snprintf(rate, sizeof(rate), "%.6f", r->rate);
    char *end = rate + strlen(rate);
    while (end[-1] == '0')
        *--end = '\0';
    if (end[-1] == '.')
        end[-1] = '\0';
    fprintf(out, " {rate: %s, burst: %u, key: %s", rate, r->burst, key_names[r->key]);
    if (r->header) {
        fputs(", header: ", out);
        gw_config_print_str(out, r->header);
    }
    fprintf(out, ", max_keys: %" PRIu64 "}\n", r->max_keys);
}

static void free_cfg(void *cfg)
{
    gw_mw_rate_limit_cfg_t *r = cfg;
    if (r == NULL)
        return;
    free(r->header);
    free(r);
}

/* ---- run-time state ----------------------------------------------------------------------- */

static int state_new(const void *cfg, const gw_mw_env_t *env, void **state, char *err,
                     size_t errlen)
{
    const gw_mw_rate_limit_cfg_t *r = cfg;
    rl_state_t *s = calloc(1, sizeof *s);
    if (s != NULL)
        s->limiter = gw_keyed_new(r->rate, r->burst, (size_t)r->max_keys, RL_STRIPES);
    if (s == NULL || s->limiter == NULL) {
        free(s);
        gw_errf(err, errlen, "route '%s': %s", env->route->name,
                "rate_limit: invalid rate, burst or max_keys, or out of memory");
        return -1;
    }
    s->seed[0] = env->seed[0];
    s->seed[1] = env->seed[1];
    *state = s;
    return 0;
}

static void state_free(void *state)
{
    rl_state_t *s = state;
    if (s == NULL)
        return;
    gw_keyed_free(s->limiter);
    free(s);
}

/* A reload keeps the table (every client's bucket) when it would be built the same: the
 * same rate, burst, key and table size. Any change makes a new, empty table: a bucket
 * filled at the old rate means nothing at the new one. */
static bool state_keeps(const void *old_cfg, const void *new_cfg)
{
    const gw_mw_rate_limit_cfg_t *a = old_cfg, *b = new_cfg;
    return a->rate == b->rate && a->burst == b->burst && a->key == b->key &&
           a->max_keys == b->max_keys &&
           (a->header == NULL ? b->header == NULL
                              : b->header != NULL && strcasecmp(a->header, b->header) == 0);
}

/* ---- run time ----------------------------------------------------------------------------- */

/* The limiter key of X: the client address bytes (an IPv4-mapped IPv6 address as IPv4), or
 * for a header value or a JWT subject (when present) a 128-bit hash of it. Hashing those
 * always, not only when longer than GW_KEY_MAX, keeps them apart from address keys: a
 * header "ABCD" would otherwise share 65.66.67.68's bucket. Returns the key length. */
static size_t rl_key(const rl_state_t *s, const gw_hx_t *x, const gw_mw_rate_limit_cfg_t *r,
                     const gw_h1_head_t *req, uint8_t key[GW_KEY_MAX])
{
    gw_h1_span_t v = {NULL, 0};
    if (r->key == GW_RL_KEY_HEADER && r->header != NULL)
        gw_h1_head_get(req, r->header, &v);
    else if (r->key == GW_RL_KEY_JWT_SUB)
        v = (gw_h1_span_t){x->sub, strlen(x->sub)};
    if (v.len > 0) {
        uint64_t tag = (uint64_t)r->key << 56;
        uint64_t h[2] = {gw_hash_bytes(v.ptr, v.len, s->seed[0] ^ tag),
                         gw_hash_bytes(v.ptr, v.len, s->seed[1] ^ tag)};
        memcpy(key, h, GW_KEY_MAX);
        return GW_KEY_MAX;
    }
    const struct sockaddr *sa = x->client;
    if (sa != NULL && sa->sa_family == AF_INET) {
        memcpy(key, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        return 4;
    }
    if (sa != NULL && sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            memcpy(key, a->s6_addr + 12, 4);
            return 4;
        }
        memcpy(key, a->s6_addr, 16);
        return 16;
    }
    key[0] = 0; /* no address we know (not expected): all such clients share one bucket */
    return 1;
}

static int request(const void *cfg, void *state, gw_hx_t *x, gw_h1_head_t *req, gw_h1_head_t *resp)
{
    const rl_state_t *s = state;
    uint8_t key[GW_KEY_MAX];
    size_t len = rl_key(s, x, cfg, req, key);
    if (gw_keyed_take(s->limiter, key, len, x->start_ns))
        return 0;
    /* Whole seconds, rounded up, at least 1 (RFC 9110 10.2.3 has no fractions). */
    uint64_t wait = gw_keyed_wait_ns(s->limiter, key, len, x->start_ns);
    uint64_t secs = wait / 1000000000u + (wait % 1000000000u != 0);
    char v[24];
    int n = snprintf(v, sizeof v, "%" PRIu64, secs > 0 ? secs : 1);
    int rc = gw_mw_add_field(resp, "Retry-After", v, (size_t)n);
    return rc == 0 ? 429 : 500;
}

const gw_mw_ops_t gw_mw_rate_limit_ops = {
    .name = "rate_limit",
    .decode = decode,
    .print = print,
    .free = free_cfg,
    .state_new = state_new,
    .state_free = state_free,
    .state_keeps = state_keeps,
    .request = request,
};
