/* mw_cfg.h - the decoded options of the built-in middleware, as their files' decode hooks
 * build them (gw_mw_cfg_t.cfg points to one of these, by kind).
 *
 * Only the middleware's own file reads its config: the loader and the chain see a void *
 * (mw.h). These types are public so the unit tests can check what the loader decoded and
 * build configs by hand; a new middleware whose tests do not need that may keep its config
 * struct private to its file. Every string and array is owned by the config and freed by the
 * middleware's free hook. */
#ifndef GW_MW_CFG_H
#define GW_MW_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "03-resilience/breaker.h" /* breaker: gw_breaker_cfg_t, 03's defaults for absent keys */
#include "04-http/jwt.h"
#include "04-http/mw_basic.h"
#include "04-http/mw_cors.h" /* cors: gw_cors_policy_t */

/* strip_prefix and rewrite (mw_rewrite.c) */
typedef struct gw_mw_rewrite_cfg_s {
    char *prefix;  /* starts with '/', no trailing '/' unless it is "/" */
    char *replace; /* NULL for strip_prefix */
} gw_mw_rewrite_cfg_t;

/* forwarded (mw_forwarded.c). The loader puts one, with the defaults, first on every route
 * that does not list it: forwarding headers are on by default. */
typedef struct gw_mw_forwarded_cfg_s {
    bool off;       /* `forwarded: false`: the client's fields pass untouched; only Via */
    bool x_real_ip; /* `x_real_ip: true`: X-Real-IP too (nginx-style backends) */
} gw_mw_forwarded_cfg_t;

/* headers (mw_headers.c) */
typedef struct gw_mw_headers_cfg_s {
    gw_mw_header_rules_t request, response;
} gw_mw_headers_cfg_t;

/* jwt (mw_jwt.c) */
typedef struct gw_mw_jwt_cfg_s {
    gw_jwt_keyset_t *keys; /* loaded at config load (file or secret) */
    char *keys_file;       /* `keys` as written; NULL when `secret` gave the key */
    char *kid;             /* `kid`, NULL when absent */
    gw_jwt_policy_t policy;
    char *realm;          /* for WWW-Authenticate: Bearer realm="..." (default "gw") */
    char **claim_names;   /* claims copied to request headers... */
    char **claim_headers; /* ...under these header names */
    size_t nclaims;
} gw_mw_jwt_cfg_t;

/* rate_limit (mw_rate_limit.c) */
typedef enum { GW_RL_KEY_CLIENT_IP, GW_RL_KEY_HEADER, GW_RL_KEY_JWT_SUB } gw_rl_key_t;

typedef struct gw_mw_rate_limit_cfg_s {
    double rate;       /* requests per second (GW_RATE_MIN..GW_RATE_MAX) */
    unsigned burst;    /* default: max(1, rate) rounded up */
    gw_rl_key_t key;   /* default client_ip */
    char *header;      /* with GW_RL_KEY_HEADER */
    uint64_t max_keys; /* default 100000 */
} gw_mw_rate_limit_cfg_t;

/* retry (mw_retry.c) */
typedef struct gw_mw_retry_cfg_s {
    unsigned max_attempts;   /* 2..10, default 2: attempts in all, the first included */
    unsigned retry_on;       /* hretry.h's GW_HRETRY_ON_* bits; default connect_failure, reset */
    uint64_t backoff_ms;     /* 03's backoff before each retry: base (default 10ms, 0: none)... */
    uint64_t backoff_max_ms; /* ...and cap (default 1s) */
    double budget_percent;   /* retries in progress <= this share of the route's requests in
                              * flight (default 20)... */
    uint64_t min_concurrent; /* ...or this many, whichever is more (default 3) */
} gw_mw_retry_cfg_t;

/* access_log (mw_access_log.c) */
typedef struct gw_mw_access_log_cfg_s {
    char *file; /* "-" = stdout */
} gw_mw_access_log_cfg_t;

#endif
