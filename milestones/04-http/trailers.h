/* trailers.h - which trailer fields may cross the proxy: names that never may, an allow-list
 * from the config, and one filter over a trailer section.
 *
 * Why a filter at all. Every check of the gateway (JWT, claim headers, forwarded headers,
 * header rules, CORS, the framing rules) reads and rewrites the header section. A chunked
 * message can carry a second section after its body, the trailers, when all of those
 * decisions are taken. RFC 9110 6.5.1 says many fields cannot be processed there ("message
 * framing, routing, authentication, request modifiers, response controls, or content
 * format") and 6.5.2 forbids merging a trailer into the header section unless the field's
 * definition allows it; an upstream framework that merges anyway would read `X-User-Id:
 * admin` or `Authorization: Bearer forged` from a trailer as if the gateway had let it
 * through. So trailers are dropped unless the listener lists them (`http.forward_trailers`),
 * and a fixed set of names (gw_trailers_forbidden) is dropped even when listed.
 *
 * Pure: no I/O, no clock, no allocation in the filter. */
#ifndef GW_TRAILERS_H
#define GW_TRAILERS_H

#include <stdbool.h>
#include <stddef.h>

#include "04-http/h1.h"
#include "04-http/mw_basic.h"

/* ---- names that are never trailers ------------------------------------------------------- */

/* If the field name NAME[0..LEN) (any case) may never be forwarded as a trailer, a static
 * reason naming its family and the rule, such as "routing, RFC 9110 6.5.1"; NULL when the
 * name may be (if the allow-list says so). NAME need not be NUL-terminated.
 *
 * The set, RFC 9110 6.5.1's families plus what this gateway controls:
 *   framing          Content-Length, Transfer-Encoding
 *   hop-by-hop       Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade
 *   routing          Host, X-Original-URL, X-Rewrite-URL
 *   request modifier Cache-Control, Expect, Max-Forwards, Pragma, Range, If-* (conditionals),
 *                    X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override
 *   authentication   Authorization, Proxy-Authorization, WWW-Authenticate,
 *                    Proxy-Authenticate, Authentication-Info, Proxy-Authentication-Info,
 *                    Cookie, Set-Cookie
 *   response control Age, Date, Expires, Location, Retry-After, Vary, Warning, Allow,
 *                    Accept-Ranges
 *   content format   Content-Type, Content-Encoding, Content-Range, Content-Language,
 *                    Content-Location, Content-Disposition
 *   forwarding       Forwarded, Via, X-Forwarded-*, X-Real-IP, X-Client-IP, True-Client-IP
 *                    (set by the forwarded middleware from the TCP peer)
 *   request id       X-Request-ID (set by the request_id middleware; a second id would
 *                    split the trace)
 *   CORS             Origin, Access-Control-* (decided by the cors middleware)
 *   proxy            Proxy and Proxy-* (httpoxy, CVE-2016-5385: CGI turns Proxy into
 *                    HTTP_PROXY)
 *   browser context  Sec-* (Fetch's forbidden request-header prefix: Sec-Fetch-Site is what
 *                    CSRF defences trust)
 * Not in the set, on purpose: Content-Digest, Repr-Digest, Digest, Content-MD5, Server-Timing,
 * grpc-status and the like, the fields that trailers exist for. The JWT claim headers of a
 * listener's routes are refused by the config loader (httpcfg.c), not here: they are not a
 * fixed set. */
const char *gw_trailers_forbidden(const char *name, size_t len);

/* ---- allow-list -------------------------------------------------------------------------- */

/* A set of field names compiled from the config, matched case-insensitively. Immutable once
 * made, so every worker reads it without a lock. NULL is a valid, empty allow-list. */
typedef struct gw_trailers_allow_s gw_trailers_allow_t;

/* Compiles NAMES[0..N) (NUL-terminated) into *OUT; the strings are copied. Every name must
 * be a token (RFC 9110 5.6.2), else GW_EINVAL and *OUT untouched; GW_ENOMEM when out of
 * memory. Forbidden names and duplicates are accepted here (the filter drops forbidden ones
 * anyway; the config loader refuses both with their position). N may be 0. Free with
 * gw_trailers_allow_free. */
int gw_trailers_allow_new(const char *const *names, size_t n, gw_trailers_allow_t **out);

/* Frees A (NULL is fine). */
void gw_trailers_allow_free(gw_trailers_allow_t *a);

/* True if NAME[0..LEN) is in A, in any case. False for every name when A is NULL. */
bool gw_trailers_allowed(const gw_trailers_allow_t *a, const char *name, size_t len);

/* The names of A in the order given, as given (for -T): count, then name I < count. */
size_t gw_trailers_allow_count(const gw_trailers_allow_t *a);
const char *gw_trailers_allow_name(const gw_trailers_allow_t *a, size_t i);

/* ---- the filter -------------------------------------------------------------------------- */

/* Removes from T, a trailer section (a head holding only fields; its start line is ignored),
 * in one pass, every field that must not be forwarded:
 *   - a forbidden name (gw_trailers_forbidden), even when ALLOW lists it;
 *   - a name that RULES removes or sets (the route's header rules for this direction: a field
 *     the route controls in the header section is not taken from a trailer either); RULES may
 *     be NULL;
 *   - any name not in ALLOW (NULL: every name).
 * The fields kept stay in their order. Returns how many fields were removed (for a metric or
 * a log line). Never fails and allocates nothing. */
size_t gw_trailers_filter(gw_h1_head_t *t, const gw_trailers_allow_t *allow,
                          const gw_mw_header_rules_t *rules);

#endif
