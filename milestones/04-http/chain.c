/* chain.c - see chain.h.
 *
 * The chain keeps per-route state in arrays parallel to the config (listener index, route
 * index, middleware index), built once by gw_chain_new, so a request finds its state by
 * indexing, without a lookup table and without a lock. What changes at run time is inside
 * 03's shared types: keyed limiters (striped locks), breakers and retry budgets (atomics),
 * and one atomic in-flight count per route. Everything else is read-only once built.
 *
 * Order. Middleware run in config order on the request and in reverse on the response, but
 * two decisions are taken where they make sense rather than at their position:
 *  - The breaker is checked at its position (an open breaker answers 503 there, before the
 *    middleware after it), but a request is admitted through it, which may take a half-open
 *    trial slot, only once every middleware let it through: a request that a later
 *    rate_limit or jwt refuses never reaches the upstream, so it must not hold a trial.
 *  - The split target is picked after the middleware, so a sticky header may come from one
 *    of them (a jwt claim copied to X-User-Id, say). */
#include "04-http/chain.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "03-resilience/breaker.h"
#include "03-resilience/ratelimit.h"
#include "03-resilience/retry.h"
#include "04-http/accesslog.h"
#include "error.h"
#include "hash.h"
#include "httpd.h"
#include "log.h"
#include "rand.h"

/* x->flags */
#define F_STARTED 0x1u   /* gw_chain_request ran: the route's in-flight count includes X */
#define F_BREAKER 0x2u   /* breaker_mw admitted X: its outcome is to be recorded */
#define F_PREFLIGHT 0x4u /* the chain answered a CORS preflight: no decoration on top */

#define RL_STRIPES 64       /* per keyed limiter; shrinks for small max_keys (ratelimit.h) */
#define BUDGET_PERCENT 20.0 /* retry budget: retries in progress <= 20% of requests... */
#define BUDGET_MIN 3u       /* ...in flight, and at least 3 (chain.h) */
#define LOG_LINE_MAX 4096   /* one access log line, on the stack */
#define LOG_CLIP 64         /* last resort: every string cut to this many bytes */
#define LOG_FLAGS (O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC)

/* State of one middleware; which member is used depends on its kind. */
typedef struct mw_state_s {
    gw_keyed_limiter_t *limiter; /* rate_limit */
    gw_breaker_t breaker;        /* breaker */
    size_t log;                  /* access_log: index into c->logs */
} mw_state_t;

typedef struct route_state_s {
    _Atomic unsigned inflight; /* requests between gw_chain_request and gw_chain_finish */
    gw_retry_budget_t budget;
    mw_state_t *mw; /* [route->nmw] */
    bool logs;      /* the route has an access_log middleware */
} route_state_t;

typedef struct lis_state_s {
    const gw_http_listener_cfg_t *hcfg; /* NULL for tcp listeners */
    route_state_t *routes;              /* [hcfg->nroutes] */
} lis_state_t;

typedef struct log_file_s {
    const char *path; /* borrowed from the config */
    int fd;           /* 1 for "-" (never closed nor reopened) */
    /* Lines that could not be written (disk full, I/O error): counted by whichever worker
     * lost one, a shared atomic touched only on that failure path. */
    atomic_uint_least64_t lost;
    atomic_uint_least64_t warned_ms; /* when the last "lines lost" warning went out (0: never) */
} log_file_t;

#define LOST_WARN_MS 10000 /* at most one "lines lost" warning per file this often */

struct gw_chain_s {
    size_t nlis;
    lis_state_t *lis; /* [nlis], parallel to cfg->listeners */
    log_file_t *logs; /* one per distinct path */
    size_t nlogs;
    uint64_t seed[2]; /* rate-limit keys from headers and subjects are hashed under these */
};

/* ---- random numbers ----------------------------------------------------------------------- */

/* One step of the worker's generator (rand.h), or of a per-thread one when the exchange has
 * none. Request ids and split draws need spread, not secrecy (an id is not a credential). */
static uint64_t rng_next(gw_hx_t *x)
{
    static _Thread_local uint64_t fallback = UINT64_C(0x2545f4914f6cdd1d);
    return gw_rand_next(x->rng != NULL ? x->rng : &fallback);
}

/* ---- building and freeing ----------------------------------------------------------------- */

/* The index of the open file for PATH, opening it if it is new; -1 with ERR filled. */
static long log_open(gw_chain_t *c, const char *path, char *err, size_t errlen)
{
    for (size_t i = 0; i < c->nlogs; i++)
        if (strcmp(c->logs[i].path, path) == 0)
            return (long)i;
    log_file_t *l = realloc(c->logs, (c->nlogs + 1) * sizeof *l);
    if (l == NULL) {
        gw_errf(err, errlen, "access_log %s: %s", path, "out of memory");
        return -1;
    }
    c->logs = l;
    int fd = strcmp(path, "-") == 0 ? 1 : open(path, LOG_FLAGS, 0644);
    if (fd < 0) {
        gw_errf(err, errlen, "access_log %s: %s", path, strerror(errno));
        return -1;
    }
    c->logs[c->nlogs] = (log_file_t){.path = path, .fd = fd};
    atomic_init(&c->logs[c->nlogs].lost, 0);
    atomic_init(&c->logs[c->nlogs].warned_ms, 0);
    return (long)c->nlogs++;
}

/* Builds the state of route R into RS (zeroed). 0, or -1 with ERR filled. */
static int route_init(gw_chain_t *c, route_state_t *rs, const gw_http_route_t *r, char *err,
                      size_t errlen)
{
    atomic_init(&rs->inflight, 0);
    gw_budget_init(&rs->budget);
    rs->mw = calloc(r->nmw > 0 ? r->nmw : 1, sizeof *rs->mw);
    if (rs->mw == NULL) {
        gw_errf(err, errlen, "route '%s': %s", r->name, "out of memory");
        return -1;
    }
    bool breaker = false;
    for (size_t i = 0; i < r->nmw; i++) {
        const gw_mw_cfg_t *m = &r->mw[i];
        mw_state_t *ms = &rs->mw[i];
        switch (m->kind) {
        case GW_MW_RATE_LIMIT:
            ms->limiter = gw_keyed_new(m->u.rate_limit.rate, m->u.rate_limit.burst,
                                       (size_t)m->u.rate_limit.max_keys, RL_STRIPES);
            if (ms->limiter == NULL) {
                gw_errf(err, errlen, "route '%s': %s", r->name,
                        "rate_limit: invalid rate, burst or max_keys, or out of memory");
                return -1;
            }
            break;
        case GW_MW_BREAKER:
            /* gw_hx_t holds one admission (breaker_mw); a second breaker would never see an
             * outcome and so never open: refuse it rather than pretend it works. */
            if (breaker) {
                gw_errf(err, errlen, "route '%s': %s", r->name, "more than one breaker");
                return -1;
            }
            breaker = true;
            gw_breaker_init(&ms->breaker);
            break;
        case GW_MW_ACCESS_LOG: {
            long k = log_open(c, m->u.access_log.file, err, errlen);
            if (k < 0)
                return -1;
            ms->log = (size_t)k;
            rs->logs = true;
            break;
        }
        default:
            break;
        }
    }
    return 0;
}

/* see chain.h */
gw_chain_t *gw_chain_new(const gw_config_t *cfg, char *err, size_t errlen)
{
    gw_chain_t *c = calloc(1, sizeof *c);
    if (c == NULL || (c->lis = calloc(cfg->nlisteners + 1, sizeof *c->lis)) == NULL) {
        gw_errf(err, errlen, "out of memory");
        free(c);
        return NULL;
    }
    c->nlis = cfg->nlisteners;
    if (getrandom(c->seed, sizeof c->seed, GRND_NONBLOCK) != (ssize_t)sizeof c->seed) {
        c->seed[0] = (uint64_t)(uintptr_t)c * UINT64_C(0x9e3779b97f4a7c15);
        c->seed[1] = ~c->seed[0];
    }
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const gw_listener_cfg_t *l = &cfg->listeners[i];
        const gw_http_listener_cfg_t *h =
            l->protocol == GW_PROTO_HTTP ? gw_http_listener_cfg(l) : NULL;
        if (h == NULL)
            continue;
        c->lis[i].hcfg = h;
        c->lis[i].routes = calloc(h->nroutes + 1, sizeof *c->lis[i].routes);
        if (c->lis[i].routes == NULL) {
            gw_errf(err, errlen, "out of memory");
            gw_chain_free(c);
            return NULL;
        }
        for (size_t r = 0; r < h->nroutes; r++)
            if (route_init(c, &c->lis[i].routes[r], &h->routes[r], err, errlen) != 0) {
                gw_chain_free(c);
                return NULL;
            }
    }
    return c;
}

/* see chain.h */
void gw_chain_free(gw_chain_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nlis; i++) {
        const lis_state_t *ls = &c->lis[i];
        if (ls->routes == NULL)
            continue;
        for (size_t r = 0; r < ls->hcfg->nroutes; r++) {
            const route_state_t *rs = &ls->routes[r];
            if (rs->mw == NULL)
                continue;
            for (size_t k = 0; k < ls->hcfg->routes[r].nmw; k++)
                gw_keyed_free(rs->mw[k].limiter);
            free(rs->mw);
        }
        free(ls->routes);
    }
    for (size_t i = 0; i < c->nlogs; i++)
        if (c->logs[i].fd != 1)
            close(c->logs[i].fd);
    free(c->logs);
    free(c->lis);
    free(c);
}

/* see chain.h */
void gw_chain_reopen(gw_chain_t *c)
{
    for (size_t i = 0; c != NULL && i < c->nlogs; i++) {
        log_file_t *l = &c->logs[i];
        if (l->fd == 1)
            continue;
        /* Open the new file first and put it in place of the old descriptor in one step:
         * a worker writing at this moment writes to one file or the other, never to a
         * closed or reused descriptor. dup3 keeps close-on-exec, which dup2 would drop. */
        int fd = open(l->path, LOG_FLAGS, 0644);
        if (fd < 0) {
            gw_warn("access_log %s: cannot reopen: %s; still writing to the old file", l->path,
                    strerror(errno));
            continue;
        }
        if (dup3(fd, l->fd, O_CLOEXEC) < 0)
            gw_warn("access_log %s: cannot reopen: %s", l->path, strerror(errno));
        close(fd);
    }
}

/* see chain.h */
void gw_hx_reset(gw_hx_t *x)
{
    free(x->log_method);
    free(x->log_path);
    memset(x, 0, sizeof *x);
    x->breaker_mw = -1;
}

/* X's route state, or NULL when X names no route of this chain. */
static route_state_t *route_state(const gw_chain_t *c, const gw_hx_t *x)
{
    if (c == NULL || x->route == NULL || x->listener >= c->nlis)
        return NULL;
    const lis_state_t *ls = &c->lis[x->listener];
    size_t r = x->route->index;
    if (ls->hcfg == NULL || r >= ls->hcfg->nroutes || &ls->hcfg->routes[r] != x->route)
        return NULL;
    return &ls->routes[r];
}

/* ---- request middleware ------------------------------------------------------------------- */

/* The status for a head function's failure: the head hit its cap (431), else 500. */
static int status_of(int rc)
{
    return rc == GW_ELIMIT ? 431 : 500;
}

static int add_field(gw_h1_head_t *h, const char *name, const char *value, size_t len)
{
    return gw_h1_head_add(h, name, strlen(name), value, len);
}

static int mw_request_id(gw_hx_t *x, gw_h1_head_t *req)
{
    uint8_t rnd[16];
    uint64_t a = rng_next(x), b = rng_next(x);
    memcpy(rnd, &a, 8);
    memcpy(rnd + 8, &b, 8);
    int rc = gw_mw_request_id(req, rnd, x->request_id);
    return rc == 0 ? 0 : status_of(rc);
}

static int mw_forwarded(const gw_hx_t *x, gw_h1_head_t *req)
{
    gw_mw_peer_t peer = {.addr = x->client, .tls = x->tls};
    if (x->lcfg != NULL) {
        peer.trusted = x->lcfg->trusted;
        peer.ntrusted = x->lcfg->ntrusted;
    }
    if (peer.addr == NULL)
        return 500;
    int rc = gw_mw_forwarded(req, &peer);
    return rc == 0 ? 0 : status_of(rc);
}

static int mw_rewrite(const gw_mw_cfg_t *m, gw_h1_head_t *req)
{
    gw_pathnorm_t res;
    if (gw_mw_rewrite_prefix(req, m->u.rewrite.prefix, m->u.rewrite.replace, &res) < 0)
        return res.status > 0 ? res.status : 400;
    return 0;
}

/* A preflight is answered here (RESP filled by mw_cors); anything else goes on. */
static int mw_cors(gw_hx_t *x, const gw_mw_cfg_t *m, const gw_h1_head_t *req, gw_h1_head_t *resp)
{
    gw_cors_verdict_t verdict = GW_CORS_NOT_PREFLIGHT;
    if (gw_cors_preflight(&m->u.cors, req, resp, &verdict, NULL) != 0) {
        gw_h1_head_clear(resp); /* a partial answer: the doc says 500 instead */
        return 500;
    }
    if (verdict == GW_CORS_NOT_PREFLIGHT)
        return 0;
    x->flags |= F_PREFLIGHT;
    return resp->status;
}

/* ---- jwt ---- */

/* The token of an `Authorization: Bearer <token>` value (scheme in any case, RFC 9110
 * 11.1), or false for another scheme or none. */
static bool bearer_token(gw_h1_span_t v, gw_h1_span_t *tok)
{
    if (v.len < 7 || strncasecmp(v.ptr, "Bearer", 6) != 0 || (v.ptr[6] != ' ' && v.ptr[6] != '\t'))
        return false;
    size_t i = 7;
    while (i < v.len && (v.ptr[i] == ' ' || v.ptr[i] == '\t'))
        i++;
    *tok = (gw_h1_span_t){v.ptr + i, v.len - i};
    return tok->len > 0;
}

/* Appends S to B (capacity CAP, *N used) as a quoted-string's content (RFC 9110 5.6.4: '"'
 * and '\\' escaped); stops short rather than overflow. */
static void put_quoted(char *b, size_t cap, size_t *n, const char *s)
{
    for (; *s != '\0' && *n + 2 < cap; s++) {
        if (*s == '"' || *s == '\\')
            b[(*n)++] = '\\';
        b[(*n)++] = *s;
    }
}

static void put_str(char *b, size_t cap, size_t *n, const char *s)
{
    size_t k = strlen(s);
    if (k > cap - 1 - *n)
        k = cap - 1 - *n;
    memcpy(b + *n, s, k);
    *n += k;
}

/* 401 with `WWW-Authenticate: Bearer realm="..."`, plus RFC 6750 3.1's error fields when a
 * token was given but refused (CODE, and DESC: gw_jwt_strerror's fixed text). */
static int unauthorized(const gw_mw_cfg_t *m, gw_h1_head_t *resp, const char *code,
                        const char *desc)
{
    char v[512];
    size_t n = 0;
    put_str(v, sizeof v, &n, "Bearer realm=\"");
    put_quoted(v, sizeof v - 1, &n, m->u.jwt.realm != NULL ? m->u.jwt.realm : "gw");
    put_str(v, sizeof v, &n, "\"");
    if (code != NULL) {
        put_str(v, sizeof v, &n, ", error=\"");
        put_str(v, sizeof v, &n, code);
        put_str(v, sizeof v, &n, "\", error_description=\"");
        put_quoted(v, sizeof v - 1, &n, desc);
        put_str(v, sizeof v, &n, "\"");
    }
    int rc = add_field(resp, "WWW-Authenticate", v, n);
    return rc == 0 ? 401 : 500;
}

/* Keeps the subject for rate_limit's jwt_sub key: as is when it fits, else as a 128-bit
 * hash in hex (a truncation could merge two subjects). */
static void keep_sub(gw_hx_t *x, const json_t *claims)
{
    const json_t *s = json_object_get(claims, "sub");
    if (!json_is_string(s))
        return;
    const char *v = json_string_value(s);
    size_t len = json_string_length(s);
    if (len < sizeof x->sub && memchr(v, '\0', len) == NULL) {
        memcpy(x->sub, v, len + 1);
        return;
    }
    snprintf(x->sub, sizeof x->sub, "#%016" PRIx64 "%016" PRIx64, gw_hash_bytes(v, len, 1),
             gw_hash_bytes(v, len, 2));
}

/* Copies the configured claims to request headers: strings as they are, numbers and
 * booleans as JSON text; objects, arrays and null are skipped, as is a value a header
 * cannot carry (control bytes: the issuer's business, not a reason to refuse). */
static int copy_claims(const gw_mw_cfg_t *m, const json_t *claims, gw_h1_head_t *req)
{
    for (size_t i = 0; i < m->u.jwt.nclaims; i++) {
        const json_t *v = json_object_get(claims, m->u.jwt.claim_names[i]);
        char *text = NULL;
        int rc = 0;
        if (json_is_string(v))
            rc = add_field(req, m->u.jwt.claim_headers[i], json_string_value(v),
                           json_string_length(v));
        else if (json_is_number(v) || json_is_boolean(v)) {
            if ((text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT)) == NULL)
                return 500;
            rc = add_field(req, m->u.jwt.claim_headers[i], text, strlen(text));
            free(text);
        }
        if (rc == GW_ELIMIT || rc == GW_ENOMEM)
            return status_of(rc);
    }
    return 0;
}

static int mw_jwt(gw_hx_t *x, const gw_mw_cfg_t *m, gw_h1_head_t *req, gw_h1_head_t *resp)
{
    /* First, whatever happens next: a client must never be able to send these itself. */
    for (size_t i = 0; i < m->u.jwt.nclaims; i++)
        gw_h1_head_remove(req, m->u.jwt.claim_headers[i]);
    long at = gw_h1_head_find(req, "Authorization", 0);
    gw_h1_span_t tok;
    if (at < 0 || !bearer_token(gw_h1_head_value_at(req, (size_t)at), &tok))
        return unauthorized(m, resp, NULL, NULL);
    /* Two Authorization fields: we would check one and the upstream might read the other. */
    if (gw_h1_head_find(req, "Authorization", (size_t)at + 1) >= 0)
        return unauthorized(m, resp, "invalid_request", "more than one Authorization field");
    int64_t now = x->wall_ms >= 0 ? x->wall_ms / 1000 : -((999 - x->wall_ms) / 1000);
    json_t *claims = NULL;
    gw_jwt_err_t e = gw_jwt_verify(m->u.jwt.keys, &m->u.jwt.policy, now, tok.ptr, tok.len, &claims);
    if (e != GW_JWT_OK)
        return unauthorized(m, resp, "invalid_token", gw_jwt_strerror(e));
    keep_sub(x, claims);
    int st = copy_claims(m, claims, req); /* after verify: TOK points into REQ's arena */
    json_decref(claims);
    return st;
}

/* ---- rate limit ---- */

/* The limiter key of X: the client address bytes (an IPv4-mapped IPv6 address as IPv4), or
 * for a header value or a JWT subject (when present) a 128-bit hash of it. Hashing those
 * always, not only when longer than GW_KEY_MAX, keeps them apart from address keys: a
 * header "ABCD" would otherwise share 65.66.67.68's bucket. Returns the key length. */
static size_t rl_key(const gw_chain_t *c, const gw_hx_t *x, const gw_mw_cfg_t *m,
                     const gw_h1_head_t *req, uint8_t key[GW_KEY_MAX])
{
    gw_h1_span_t v = {NULL, 0};
    if (m->u.rate_limit.key == GW_RL_KEY_HEADER && m->u.rate_limit.header != NULL)
        gw_h1_head_get(req, m->u.rate_limit.header, &v);
    else if (m->u.rate_limit.key == GW_RL_KEY_JWT_SUB)
        v = (gw_h1_span_t){x->sub, strlen(x->sub)};
    if (v.len > 0) {
        uint64_t tag = (uint64_t)m->u.rate_limit.key << 56;
        uint64_t h[2] = {gw_hash_bytes(v.ptr, v.len, c->seed[0] ^ tag),
                         gw_hash_bytes(v.ptr, v.len, c->seed[1] ^ tag)};
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

static int mw_rate_limit(const gw_chain_t *c, const gw_hx_t *x, const gw_mw_cfg_t *m,
                         const mw_state_t *ms, const gw_h1_head_t *req, gw_h1_head_t *resp)
{
    uint8_t key[GW_KEY_MAX];
    size_t len = rl_key(c, x, m, req, key);
    if (gw_keyed_take(ms->limiter, key, len, x->start_ns))
        return 0;
    /* Whole seconds, rounded up, at least 1 (RFC 9110 10.2.3 has no fractions). */
    uint64_t wait = gw_keyed_wait_ns(ms->limiter, key, len, x->start_ns);
    uint64_t secs = wait / 1000000000u + (wait % 1000000000u != 0);
    char v[24];
    int n = snprintf(v, sizeof v, "%" PRIu64, secs > 0 ? secs : 1);
    int rc = add_field(resp, "Retry-After", v, (size_t)n);
    return rc == 0 ? 429 : 500;
}

/* Runs middleware I of X's route. Returns 0 (go on) or the status to answer. *BREAKER
 * gets I for a breaker that lets the request through (admitted at the end). */
static int run_mw(gw_chain_t *c, gw_hx_t *x, route_state_t *rs, size_t i, gw_h1_head_t *req,
                  gw_h1_head_t *resp, int *breaker)
{
    const gw_mw_cfg_t *m = &x->route->mw[i];
    switch (m->kind) {
    case GW_MW_REQUEST_ID:
        return mw_request_id(x, req);
    case GW_MW_FORWARDED:
        return mw_forwarded(x, req);
    case GW_MW_STRIP_PREFIX:
    case GW_MW_REWRITE:
        return mw_rewrite(m, req);
    case GW_MW_HEADERS: {
        int rc = gw_mw_header_rules(req, &m->u.headers.request);
        return rc == 0 ? 0 : status_of(rc);
    }
    case GW_MW_CORS:
        return mw_cors(x, m, req, resp);
    case GW_MW_JWT:
        return mw_jwt(x, m, req, resp);
    case GW_MW_RATE_LIMIT:
        return mw_rate_limit(c, x, m, &rs->mw[i], req, resp);
    case GW_MW_BREAKER:
        if (!gw_breaker_may_allow(&rs->mw[i].breaker, &m->u.breaker, x->start_ns / 1000000u))
            return 503;
        *breaker = (int)i;
        return 0;
    case GW_MW_RETRY:
        x->max_attempts = m->u.retry.max_attempts > 1 ? m->u.retry.max_attempts : 1;
        return 0;
    case GW_MW_ACCESS_LOG: /* copies taken before the chain ran; the line at finish */
        return 0;
    }
    return 500;
}

/* Copies method and target for the access log, as the client sent them. A copy that fails
 * (out of memory) is logged as null rather than failing the request. */
static void keep_log_copies(gw_hx_t *x, const gw_h1_head_t *req)
{
    gw_h1_span_t m = gw_h1_head_method(req), t = gw_h1_head_target(req);
    free(x->log_method);
    free(x->log_path);
    x->log_method = gw_h1_span_dup(m);
    x->log_path = gw_h1_span_dup(t);
}

/* RESP as the local answer STATUS (the middleware that chose it may have added fields). */
static int answer(gw_h1_head_t *resp, int status)
{
    if (resp->status != status) {
        const char *reason = gw_httpd_reason(status);
        if (gw_h1_head_set_status(resp, (unsigned)status, reason, strlen(reason)) != 0)
            resp->status = (uint16_t)status;
    }
    return status;
}

/* see chain.h */
int gw_chain_request(gw_chain_t *c, gw_hx_t *x, gw_h1_head_t *req, gw_h1_head_t *resp)
{
    x->target = 0;
    x->max_attempts = 1;
    x->breaker_mw = -1;
    x->flags &= ~(F_BREAKER | F_PREFLIGHT);
    route_state_t *rs = route_state(c, x);
    if (rs == NULL)
        return answer(resp, 500);
    if (!(x->flags & F_STARTED))
        atomic_fetch_add_explicit(&rs->inflight, 1, memory_order_relaxed);
    x->flags |= F_STARTED;
    if (rs->logs)
        keep_log_copies(x, req);

    const gw_http_route_t *r = x->route;
    int breaker = -1;
    for (size_t i = 0; i < r->nmw; i++) {
        int st = run_mw(c, x, rs, i, req, resp, &breaker);
        if (st != 0)
            return answer(resp, st);
    }
    if (breaker >= 0) {
        bool trial = false;
        const gw_mw_cfg_t *m = &r->mw[breaker];
        if (!gw_breaker_allow(&rs->mw[breaker].breaker, &m->u.breaker, x->start_ns / 1000000u,
                              &trial))
            return answer(resp, 503); /* opened, or its trial slots taken, meanwhile */
        x->breaker_mw = breaker;
        x->breaker_trial = trial;
        x->flags |= F_BREAKER;
    }
    if (r->split.n > 1) {
        uint32_t rnd = (uint32_t)(rng_next(x) >> 32);
        x->target = gw_split_pick_request(&r->split, req, r->sticky, r->sticky_name, rnd);
        if (x->target >= r->ntargets)
            x->target = 0;
    }
    return 0;
}

/* ---- response ----------------------------------------------------------------------------- */

static void set_request_id(const gw_hx_t *x, gw_h1_head_t *resp)
{
    if (x->request_id[0] != '\0')
        (void)gw_h1_head_set(resp, "X-Request-ID", x->request_id, strlen(x->request_id));
}

/* see chain.h */
void gw_chain_response(gw_chain_t *c, gw_hx_t *x, const gw_h1_head_t *req, gw_h1_head_t *resp)
{
    (void)c;
    const gw_http_route_t *r = x->route;
    if (r == NULL) {
        set_request_id(x, resp);
        return;
    }
    /* Errors are ignored: a field that does not fit is missing from an answer that still
     * has to go out (the head functions leave RESP whole). */
    for (size_t i = r->nmw; i-- > 0;) {
        const gw_mw_cfg_t *m = &r->mw[i];
        if (m->kind == GW_MW_HEADERS)
            (void)gw_mw_header_rules(resp, &m->u.headers.response);
        else if (m->kind == GW_MW_CORS && !(x->flags & F_PREFLIGHT))
            (void)gw_cors_decorate(&m->u.cors, req, resp);
        else if (m->kind == GW_MW_REQUEST_ID)
            set_request_id(x, resp);
    }
}

/* ---- trailers ----------------------------------------------------------------------------- */

/* see chain.h */
size_t gw_chain_trailers(gw_chain_t *c, const gw_hx_t *x, gw_h1_head_t *t, bool response)
{
    (void)c;
    const gw_http_route_t *r = x->route;
    const gw_mw_header_rules_t *rules = NULL;
    size_t dropped = 0;
    for (size_t i = 0; r != NULL && i < r->nmw; i++) {
        const gw_mw_cfg_t *m = &r->mw[i];
        if (m->kind == GW_MW_HEADERS)
            rules = response ? &m->u.headers.response : &m->u.headers.request;
        /* The loader refuses a claim header in forward_trailers; this covers configs it
         * never saw, since a forged claim is exactly what a trailer would smuggle in. */
        for (size_t k = 0; !response && m->kind == GW_MW_JWT && k < m->u.jwt.nclaims; k++)
            dropped += gw_h1_head_remove(t, m->u.jwt.claim_headers[k]);
    }
    return dropped + gw_trailers_filter(t, x->lcfg ? x->lcfg->forward_trailers : NULL, rules);
}

/* ---- retry -------------------------------------------------------------------------------- */

/* see chain.h */
bool gw_chain_may_retry(gw_chain_t *c, gw_hx_t *x, const char *method, unsigned attempt)
{
    if (method == NULL || !(gw_router_method_bit(method, strlen(method)) & GW_METHODS_IDEMPOTENT) ||
        attempt >= x->max_attempts)
        return false;
    route_state_t *rs = route_state(c, x);
    if (rs == NULL)
        return false;
    /* The retry that held a slot has failed: it ends here, and the next one asks anew
     * (with the in-flight count of now). */
    if (x->retry_held) {
        gw_budget_release(&rs->budget);
        x->retry_held = false;
    }
    unsigned active = atomic_load_explicit(&rs->inflight, memory_order_relaxed);
    if (!gw_budget_try_acquire(&rs->budget, active, BUDGET_PERCENT, BUDGET_MIN))
        return false;
    x->retry_held = true;
    return true;
}

/* ---- finish and access log ---------------------------------------------------------------- */

/* Formats R into BUF (CAP bytes), never giving up: a line too long keeps as much of the
 * path as fits (the one field a client can make long), and if even an empty path does not
 * fit, every string is cut to LOG_CLIP bytes, which always fits. */
static long format_line(gw_alog_rec_t *r, char *buf, size_t cap)
{
    long n = gw_alog_format(r, buf, cap);
    if (n >= 0)
        return n;
    size_t full = r->path.len;
    r->path.len = 0;
    if (gw_alog_format(r, buf, cap) >= 0) {
        size_t lo = 0, hi = full; /* lo fits, hi does not */
        while (hi - lo > 1) {
            r->path.len = lo + (hi - lo) / 2;
            if (gw_alog_format(r, buf, cap) >= 0)
                lo = r->path.len;
            else
                hi = r->path.len;
        }
        r->path.len = lo;
        return gw_alog_format(r, buf, cap);
    }
    gw_alog_str_t *s[] = {&r->request_id, &r->client,  &r->method, &r->path,
                          &r->upstream,   &r->backend, &r->route};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        if (s[i]->len > LOG_CLIP)
            s[i]->len = LOG_CLIP;
    return gw_alog_format(r, buf, cap);
}

static void client_text(const struct sockaddr *sa, char *out, size_t cap)
{
    out[0] = '\0';
    if (sa != NULL && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)cap);
    else if (sa != NULL && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)cap);
}

/* A line of L was lost (ERR: why). Counted; the first loss and then at most one every
 * LOST_WARN_MS are logged with the running total: workers race for the right to warn with
 * a compare-and-swap on the time of the last warning. NOW_MS is the caller's clock. */
static void log_lost(log_file_t *l, int err, uint64_t now_ms)
{
    uint64_t n = atomic_fetch_add_explicit(&l->lost, 1, memory_order_relaxed) + 1;
    uint64_t last = atomic_load_explicit(&l->warned_ms, memory_order_relaxed);
    uint64_t stamp = now_ms != 0 ? now_ms : 1; /* 0 means "never warned" */
    if ((last != 0 && now_ms - last < LOST_WARN_MS) ||
        !atomic_compare_exchange_strong_explicit(&l->warned_ms, &last, stamp, memory_order_relaxed,
                                                 memory_order_relaxed))
        return;
    gw_warn("access_log %s: cannot write: %s; %" PRIu64 " line(s) lost so far "
            "(gw_access_log_lost_total)",
            l->path, gw_strerror(-err), n);
}

static void write_log(const gw_chain_t *c, const route_state_t *rs, const gw_hx_t *x,
                      uint64_t now_ns)
{
    char client[INET6_ADDRSTRLEN], line[LOG_LINE_MAX];
    client_text(x->client, client, sizeof client);
    gw_alog_rec_t rec = {
        .time_ms = x->wall_ms,
        .request_id = gw_alog_cstr(x->request_id[0] != '\0' ? x->request_id : NULL),
        .client = gw_alog_cstr(client[0] != '\0' ? client : NULL),
        .method = gw_alog_cstr(x->log_method),
        .path = gw_alog_cstr(x->log_path),
        .upstream = gw_alog_cstr(x->upstream),
        .backend = gw_alog_cstr(x->backend),
        .route = gw_alog_cstr(x->route->name),
        .status = x->status,
        .bytes_in = x->bytes_in,
        .bytes_out = x->bytes_out,
        .latency_us = now_ns > x->start_ns ? (now_ns - x->start_ns) / 1000u : 0,
        .end = gw_alog_cstr(x->end),
    };
    long n = format_line(&rec, line, sizeof line);
    if (n < 0)
        return;
    for (size_t i = 0; i < x->route->nmw; i++) {
        if (x->route->mw[i].kind != GW_MW_ACCESS_LOG)
            continue;
        /* One write(2) per line on an O_APPEND file: lines of several workers never mix. A
         * line that does not go out is not retried (the request is over, and a full disk
         * stays full): it is counted, and said now and then, never per request. */
        log_file_t *l = &c->logs[rs->mw[i].log];
        ssize_t w;
        do
            w = write(l->fd, line, (size_t)n);
        while (w < 0 && errno == EINTR);
        if (w != (ssize_t)n)
            log_lost(l, w < 0 ? errno : ENOSPC, now_ns / 1000000u);
    }
}

/* see chain.h */
void gw_chain_finish(gw_chain_t *c, gw_hx_t *x, uint64_t now_ns)
{
    route_state_t *rs = (x->flags & F_STARTED) ? route_state(c, x) : NULL;
    if (rs != NULL) {
        if ((x->flags & F_BREAKER) && x->breaker_mw >= 0) {
            const gw_mw_cfg_t *m = &x->route->mw[x->breaker_mw];
            bool ok = !x->upstream_failed && x->status < 500;
            int to = gw_breaker_record(&rs->mw[x->breaker_mw].breaker, &m->u.breaker, ok,
                                       x->breaker_trial, now_ns / 1000000u);
            if (to == GW_BREAKER_OPEN)
                gw_warn("route '%s': circuit breaker OPEN: answering 503 for %" PRIu64 " ms",
                        x->route->name, m->u.breaker.open_timeout_ms);
            else if (to == GW_BREAKER_CLOSED)
                gw_info("route '%s': circuit breaker CLOSED: trials succeeded", x->route->name);
        }
        if (x->retry_held)
            gw_budget_release(&rs->budget);
        atomic_fetch_sub_explicit(&rs->inflight, 1, memory_order_relaxed);
        if (rs->logs)
            write_log(c, rs, x, now_ns);
    }
    gw_hx_reset(x);
}

/* see chain.h */
uint64_t gw_chain_log_lost(const gw_chain_t *c)
{
    uint64_t n = 0;
    for (size_t i = 0; c != NULL && i < c->nlogs; i++)
        n += atomic_load_explicit(&c->logs[i].lost, memory_order_relaxed);
    return n;
}

/* see chain.h */
void gw_chain_metrics(const gw_chain_t *c, gw_prom_t *p)
{
    gw_prom_family(p, "gw_access_log_lost_total",
                   "Access log lines that could not be written (disk full, I/O error), by file",
                   GW_PROM_COUNTER);
    for (size_t i = 0; c != NULL && i < c->nlogs; i++) {
        const char *lab[] = {"file", c->logs[i].path, NULL};
        gw_prom_sample_u64(p, "gw_access_log_lost_total", lab,
                           atomic_load_explicit(&c->logs[i].lost, memory_order_relaxed));
    }
}
