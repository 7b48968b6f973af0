/* mw_cors.h - CORS as pure functions over heads: preflight answers and response decoration.
 *
 * The policy decides; these functions only read the request head and write the response
 * head. They do no I/O and allocate nothing beyond what the heads themselves grow. */
#ifndef GW_MW_CORS_H
#define GW_MW_CORS_H

#include <stdbool.h>
#include <stddef.h>

#include "04-http/h1.h"

/* A CORS policy. Lists are comma-separated strings ("GET, POST"); names in HEADERS are
 * compared case-insensitively, methods case-sensitively (RFC 9110: methods are). The
 * caller keeps every string alive as long as the policy. */
typedef struct gw_cors_policy_s {
    const char *const *origins; /* exact origins ("https://a.example"), compared bytewise */
    size_t norigins;
    bool any_origin;     /* "*": every origin is allowed */
    const char *methods; /* allowed methods; simple methods are not implied */
    const char *headers; /* allowed request headers, NULL or "" for none */
    const char *expose;  /* Access-Control-Expose-Headers, NULL or "" for none */
    bool credentials;    /* Access-Control-Allow-Credentials: true */
    long max_age;        /* seconds for Access-Control-Max-Age, < 0 to omit it */
} gw_cors_policy_t;

/* What gw_cors_preflight decided. */
typedef enum {
    GW_CORS_NOT_PREFLIGHT, /* not OPTIONS + Origin + Access-Control-Request-Method: go on */
    GW_CORS_ALLOWED,       /* answer RESP (204 with the Access-Control-Allow-* fields) */
    GW_CORS_REFUSED,       /* answer RESP (403, no Access-Control-* fields) */
} gw_cors_verdict_t;

/* Decides a preflight REQ under policy P. For a preflight, fills RESP (an empty response
 * head the caller then sends without forwarding anything upstream) with 204 and
 * Access-Control-Allow-Origin, -Methods, -Headers, -Credentials, Max-Age and Vary: Origin;
 * or with 403 when the origin, the requested method or one requested header is not
 * allowed. A refused preflight is answered here rather than passed upstream so that the
 * upstream's own CORS fields cannot grant what the policy refuses. *WHY (may be NULL)
 * gets a static reason for refusals and logs. Returns 0, or GW_ELIMIT/GW_EINVAL from the
 * head functions (RESP then holds a partial answer: send a 500 instead). */
int gw_cors_preflight(const gw_cors_policy_t *p, const gw_h1_head_t *req, gw_h1_head_t *resp,
                      gw_cors_verdict_t *verdict, const char **why);

/* Decorates RESP, the upstream's answer to the actual (non-preflight) request REQ: removes
 * any Access-Control-Allow-Origin/-Credentials/Expose-Headers the upstream set (the
 * policy is the only source), then, when REQ's Origin is allowed, adds
 * Access-Control-Allow-Origin (the origin itself, or "*" only for any_origin without
 * credentials), -Credentials and -Expose-Headers. Adds Vary: Origin whenever the answer
 * depends on the origin (everything but any_origin without credentials), even for requests
 * without Origin, so a cache never serves one origin's answer to another. Returns 0,
 * GW_ELIMIT or GW_EINVAL. */
int gw_cors_decorate(const gw_cors_policy_t *p, const gw_h1_head_t *req, gw_h1_head_t *resp);

#endif
