/* mw.h - what a middleware is: one ops table, and the list of every middleware gw04 knows.
 *
 * A middleware is one file (mw_request_id.c, mw_jwt.c, ...) that exports one
 * `const gw_mw_ops_t`. The table holds every part of it: how its options are read from the
 * config (decode), printed back for -T (print) and freed; the run-time state it keeps per
 * route (rate-limit buckets, a breaker, a retry budget, an open log file); and the hooks the
 * chain (chain.c) calls on each exchange. The config loader (httpcfg.c) and the chain only
 * iterate GW_MW_LIST below: neither names a middleware, so adding one is its file plus one
 * line in that list.
 *
 * A hook a middleware does not need is NULL. Every hook is called with the middleware's own
 * decoded config (CFG: what its decode returned, NULL when it takes no options) and, at run
 * time, its own per-route state (STATE: what its state_new made, NULL without one).
 *
 * Threads. decode, print, free, state_new, state_free, shared_free and reopen run on the
 * control thread, while no worker runs the chain they belong to (before the workers start,
 * after they stopped; reopen: see below). The exchange hooks (start, request, admit,
 * may_retry, response, trailers, finish) run on a worker's loop thread, on any worker,
 * concurrently on the same STATE: state shared by workers must be atomics or 03's striped
 * types. lost and metrics run on any thread. Nothing here does network I/O. */
#ifndef GW_MW_H
#define GW_MW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "04-http/h1.h"
#include "cfgtree.h"
#include "config.h"
#include "metrics.h"

/* ---- the registration list --------------------------------------------------------------- */

/* Every middleware, one line each: X(KIND, name), where `name` is the key in the config's
 * `middleware:` list and gw_mw_<name>_ops the ops table its file exports. The order is the
 * order of gw_mw_kind_t (tests and the loader's "known: ..." message follow it). This is an
 * "X macro": the list is written once and expanded several times, into the kind enum, the
 * extern declarations below, and the table in mw.c. */
#define GW_MW_LIST(X)                                                                              \
    X(REQUEST_ID, request_id)                                                                      \
    X(FORWARDED, forwarded)                                                                        \
    X(STRIP_PREFIX, strip_prefix)                                                                  \
    X(REWRITE, rewrite)                                                                            \
    X(HEADERS, headers)                                                                            \
    X(CORS, cors)                                                                                  \
    X(JWT, jwt)                                                                                    \
    X(RATE_LIMIT, rate_limit)                                                                      \
    X(BREAKER, breaker)                                                                            \
    X(RETRY, retry)                                                                                \
    X(ACCESS_LOG, access_log)

/* The kind of a configured middleware: its index in GW_MW_LIST. */
typedef enum {
#define GW_MW_ENUM_(kind, name) GW_MW_##kind,
    GW_MW_LIST(GW_MW_ENUM_)
#undef GW_MW_ENUM_
        GW_MW_NKINDS
} gw_mw_kind_t;

/* One configured middleware, an element of gw_http_route_t.mw. */
typedef struct gw_mw_cfg_s {
    gw_mw_kind_t kind;  /* which ops (gw_mw_ops(kind)) */
    unsigned line, col; /* where it was configured, for messages */
    void *cfg;          /* its decoded options, owned by the config (ops->free) */
} gw_mw_cfg_t;

struct gw_hx_s;              /* chain.h: one exchange as the chain sees it */
struct gw_http_route_s;      /* httpcfg.h */
struct gw_mw_header_rules_s; /* mw_basic.h */

/* What state_new gets besides the config. */
typedef struct gw_mw_env_s {
    const struct gw_http_route_s *route; /* the route the state is for (its name, its list) */
    size_t index;                        /* the middleware's position in route->mw */
    /* This kind's slot in the chain, for state shared by every route of one config (the
     * access log's open files, one per distinct path): NULL until a state_new of this kind
     * puts something there; the chain hands it to shared_free when it is freed. */
    void **shared;
    /* The same slot of the chain this one follows at a reload (NULL: none, or nothing
     * there), to carry from: the access log takes over the files its paths name, so a
     * reload opens nothing again and its lost-line counters go on. Read-only: it belongs
     * to the chain before, which stays until its generation is freed. */
    void *prev_shared;
    uint64_t seed[2]; /* per-chain random seeds, for keys hashed from client input */
} gw_mw_env_t;

typedef struct gw_mw_ops_s {
    const char *name; /* the key in the config: "jwt" */
    /* The middleware writes the request's Via field itself (forwarded): the engine, which
     * otherwise adds "Via: 1.1 gw", leaves it alone on routes that use it. */
    bool writes_via;

    /* ---- config (httpcfg.c; control thread, at load, -T, and when the config is freed) ---- */

    /* Decodes OPTS, the value under the middleware's key (`- jwt: {...}`: the mapping), into
     * a new config it returns. Mistakes go to DOC with gw_cdoc_error at the node concerned
     * (file:line:column); every key read must be read through cfgtree so unknown keys are
     * reported. Return whatever was built, even after an error (the loader fails as a
     * whole and calls free), or NULL: NULL is also what a middleware without options
     * returns (after checking OPTS is a mapping). NULL hook: takes no options at all. */
    void *(*decode)(gw_cdoc_t *doc, const gw_cnode_t *opts);
    /* -T: prints CFG as the text after "- name:" (a space and a flow value, or a newline
     * and block lines indented by IN + 2), ending with a newline. Loading that text again
     * gives the same config. */
    void (*print)(FILE *out, const void *cfg, int in);
    /* Frees what decode returned (NULL or partly built: after a decode error). */
    void (*free)(void *cfg);
    /* A request field this middleware fills from a source it verified (jwt's claim
     * headers): NULL, or what NAME is to it ("jwt claim header"), for the loader to refuse
     * NAME in forward_trailers (a trailer would bring the field back). */
    const char *(*guards_field)(const void *cfg, const char *name);

    /* ---- run-time state (chain.c; control thread, gw_chain_new / gw_chain_free) ---- */

    /* Builds the middleware's state for one route into *STATE: 0, or -1 with ERR filled
     * (ERRLEN bytes; the chain prefixes nothing: say "route '%s': ..."). */
    int (*state_new)(const void *cfg, const gw_mw_env_t *env, void **state, char *err,
                     size_t errlen);
    void (*state_free)(void *state); /* what state_new made (NULL is fine) */
    /* A reload (gw_chain_next): may the state made for OLD_CFG serve NEW_CFG, the same
     * middleware of the same route in the next generation? NULL: never carried. */
    bool (*state_keeps)(const void *old_cfg, const void *new_cfg);
    void (*shared_free)(void *shared);    /* the env->shared slot, once per chain */
    void (*reopen)(void *shared);         /* SIGUSR1 (gw_chain_reopen): reopen files */
    uint64_t (*lost)(const void *shared); /* events it could not record (gw_chain_log_lost) */
    /* Writes its metric families into P (gw_chain_metrics); SHARED may be NULL (no route
     * uses it): families still appear, with no sample. */
    void (*metrics)(const void *shared, gw_prom_t *p);

    /* ---- one exchange (chain.c; the worker's loop thread) ---- */

    /* Sees REQ as the client sent it, before any middleware of the route ran (the access
     * log copies method and target here). */
    void (*start)(const void *cfg, void *state, struct gw_hx_s *x, const gw_h1_head_t *req);
    /* Runs on the request head, in config order: 0 to go on, or the status to answer
     * locally, with RESP (an empty response head) holding the fields that answer needs
     * (chain.h gw_chain_request). May change REQ, and X's fields its file owns. */
    int (*request)(const void *cfg, void *state, struct gw_hx_s *x, gw_h1_head_t *req,
                   gw_h1_head_t *resp);
    /* Every request hook let the request through: the last word before it goes upstream
     * (the breaker takes its admission, maybe a half-open trial, only here). 0 or a status. */
    int (*admit)(const void *cfg, void *state, struct gw_hx_s *x);
    /* Attempt ATTEMPT failed before any response byte reached the client: may attempt
     * ATTEMPT + 1 start, and after how long (*DELAY_MS, set only on true)? INFLIGHT:
     * requests of the route now between request and finish. The first middleware with this
     * hook decides (gw_chain_may_retry); none: no retry. */
    bool (*may_retry)(const void *cfg, void *state, struct gw_hx_s *x, const char *method,
                      unsigned attempt, unsigned inflight, uint64_t *delay_ms);
    /* Decorates RESP, the response head about to go to the client, in reverse config
     * order. REQ is the client's request head. Errors are ignored: the answer goes out. */
    void (*response)(const void *cfg, void *state, const struct gw_hx_s *x, const gw_h1_head_t *req,
                     gw_h1_head_t *resp);
    /* Filters trailer section T (of the response when RESPONSE, else of the request):
     * returns how many fields it removed, and may point *RULES at header rules the chain
     * passes on to gw_trailers_filter. */
    size_t (*trailers)(const void *cfg, gw_h1_head_t *t, bool response,
                       const struct gw_mw_header_rules_s **rules);
    /* The exchange ended (x->status, x->upstream_failed, ... are final), for every
     * exchange whose request hooks ran, once, in config order; NOW_NS is the monotonic
     * clock. Releases what X holds for this middleware. */
    void (*finish)(const void *cfg, void *state, struct gw_hx_s *x, uint64_t now_ns);
    /* Optional, with finish: this middleware reports the exchange's whole life (the access
     * log's line), so when the exchange becomes a tunnel (a 101) its finish waits for the
     * tunnel's end, while everyone else's runs at the switch (gw_chain_switch). The tunnel
     * holds no configuration generation, so STATE must outlive the generation that made it:
     * state_hold takes a reference on it (any thread), state_drop gives it back and frees
     * at the last one (any thread). That late finish gets CFG NULL and x->route NULL
     * (gw_hx_route_name still answers). */
    void (*state_hold)(void *state);
    void (*state_drop)(void *state);
    /* No per-worker hook: no middleware keeps per-worker state today (the worker's random
     * state reaches the hooks as x->rng). One that needs it adds worker_new/worker_free here
     * and a slot in the engine's worker (hp_worker_t, hproxy-int.h). */
} gw_mw_ops_t;

/* The ops table of every middleware (each defined in its own file). */
#define GW_MW_EXTERN_(kind, name) extern const gw_mw_ops_t gw_mw_##name##_ops;
GW_MW_LIST(GW_MW_EXTERN_)
#undef GW_MW_EXTERN_

/* The ops of KIND, or NULL for a value outside gw_mw_kind_t. */
const gw_mw_ops_t *gw_mw_ops(gw_mw_kind_t kind);

/* Whether one of the N middleware in MW (a route's list) writes Via (ops->writes_via). */
bool gw_mw_any_writes_via(const gw_mw_cfg_t *mw, size_t n);

/* The name of KIND as written in the config ("request_id", ...; "?" outside the enum). */
const char *gw_mw_kind_name(gw_mw_kind_t kind);

/* ---- helpers the middleware files share (mw.c) -------------------------------------------- */

/* Config. Each reports its mistakes to DOC at the node concerned. */
bool gw_mw_is_token(const char *s); /* RFC 9110 5.6.2: a field name, method or cookie name */
bool gw_mw_is_value(const char *s); /* a field value we can put on the wire: no CR, no LF */
/* The key node of KEY in MAP (for errors about the key itself), or NULL. */
const gw_cnode_t *gw_mw_cfg_key_node(const gw_cnode_t *map, const char *key);
/* A string at NODE that must be a token (a header name): *OUT (new), or an error. 0 when
 * NODE is NULL (absent), GW_ECONFIG after an error. */
int gw_mw_cfg_token(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, char **out);
/* A sequence of strings (tokens when TOKENS) into a new array; *N gets its length. Items in
 * error are reported and left out. NULL (with *N = 0) when absent, empty or wrong. */
char **gw_mw_cfg_strv(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, bool tokens,
                      size_t *n);
void gw_mw_free_strv(char **v, size_t n);
/* A duration stored in whole seconds (JWT skew, CORS max-age) into *OUT_S: 1500ms would
 * have to be rounded one way or the other, so it is refused. 0 when NODE is NULL. */
int gw_mw_cfg_seconds(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, uint64_t max_ms,
                      uint64_t *out_s);
/* -T: ["a", "b"] */
void gw_mw_print_strv(FILE *out, const char *const *v, size_t n);

/* Run time. */
/* The status for a head function's failure RC: the head hit its cap (431), else 500. */
int gw_mw_head_status(int rc);
/* Adds NAME: VALUE[0..LEN) to H (gw_h1_head_add with a C-string name). */
int gw_mw_add_field(gw_h1_head_t *h, const char *name, const char *value, size_t len);

#define GW_MW_SEC ((uint64_t)1000) /* ms, for the durations of the config */
#define GW_MW_HOUR (3600 * GW_MW_SEC)

#endif
