/* admin.h - the admin API's routes (/metrics, /stats, /backends, /healthz, /readyz, and
 * milestone 05's /reload and /config) on the
 * control thread's loop, with an optional bearer token. The data comes from callbacks, so
 * this module knows nothing of balancers, breakers or workers. */
#ifndef GW_ADMIN_H
#define GW_ADMIN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "addr.h"
#include "metrics.h"

typedef struct gw_admin_s gw_admin_t;

/* Where the answers come from. Every callback runs on the admin loop's thread, during a
 * request, and must answer at once (from atomics, per-worker copies or a snapshot). Any
 * callback may be NULL: /metrics is then empty, /stats and /backends are {}, and /readyz
 * says ready. */
typedef struct gw_admin_sources_s {
    void (*metrics)(void *ctx, gw_prom_t *out); /* fill /metrics (errors in OUT give a 500) */
    json_t *(*stats)(void *ctx);    /* /stats: new reference, taken over by admin; NULL: 500 */
    json_t *(*backends)(void *ctx); /* /backends: the same */
    bool (*ready)(void *ctx);       /* /readyz: false before ready and while draining (503) */
    void *ctx;
    /* Milestone 05's routes (after ctx, so that 03's initializers stay as they are). NULL
     * (gw03, gw04): the route answers 404, as a path that does not exist. */
    /* POST /reload: runs a reload now and answers with what it did, as JSON in *BODY (a new
     * reference, taken over; NULL: 500). Returns 0 when the new configuration was applied
     * (200), non-zero when it was refused (400: the old one keeps serving). */
    int (*reload)(void *ctx, json_t **body);
    /* GET /config: the active configuration as -T prints it (secrets masked), malloc'd, its
     * length in *LEN; NULL: 500. */
    char *(*config)(void *ctx, size_t *len);
} gw_admin_sources_t;

/* Serves the admin API on ADDR. TOKEN (copied; NULL: no authentication) is required as
 * `Authorization: Bearer TOKEN` on every route but /healthz; an empty TOKEN is refused
 * (GW_EINVAL) rather than taken to mean "no token". SRC is copied. Returns the server, or
 * NULL with *ERR set (GW_EADDRINUSE, GW_EINVAL, GW_ENOMEM or a negated errno).
 *
 * Routes: GET and HEAD on /metrics (Prometheus text 0.0.4), /stats and /backends (JSON),
 * /healthz (200 {"status":"ok"}: the process answers), /readyz (200 {"ready":true} or 503
 * {"ready":false}), and, when their source is set, /config (text); POST on /reload (JSON:
 * 200 applied, 400 refused). Another method on a path: 405 with `Allow:` the route's
 * methods; another path, or a route whose source is NULL: 404; a missing or wrong token: 401 with
 * `WWW-Authenticate: Bearer realm="gw-admin"` (checked before the path, so an unauthenticated
 * client cannot probe which paths exist). */
gw_admin_t *gw_admin_start(uv_loop_t *loop, const gw_addr_t *addr, const char *token,
                           const gw_admin_sources_t *src, int *err);

/* The bound address (after port 0). Returns 0 or a negated errno. */
int gw_admin_address(const gw_admin_t *a, gw_addr_t *out);

/* Closes the listener and every admin connection; DONE (may be NULL) runs with ARG once
 * everything is closed, and A is freed then. Call once. */
void gw_admin_stop(gw_admin_t *a, void (*done)(void *arg), void *arg);

/* Answers IN[0..LEN) as one admin connection with TOKEN and SRC would, without a socket
 * (gw_httpd_serve_memory with the admin API's routes): the response bytes in *OUT (free()
 * them) and *OUTLEN, reads of at most PIECE bytes. For tests and the fuzz target. Returns
 * what gw_httpd_serve_memory returns, or GW_EINVAL for an empty TOKEN. */
int gw_admin_serve_memory(const char *token, const gw_admin_sources_t *src, const char *in,
                          size_t len, size_t piece, char **out, size_t *outlen);

/* True when GIVEN (GLEN bytes) equals WANT (WLEN bytes), in time that depends only on the
 * longer length, never on where the first difference is. Exposed for its unit test. */
bool gw_admin_token_equal(const char *given, size_t glen, const char *want, size_t wlen);

#endif
