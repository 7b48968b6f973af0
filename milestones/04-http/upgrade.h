/* upgrade.h - may this request become a tunnel, and may this 101 make it one (RFC 9110 7.8).
 *
 * A client asks to switch protocols with `Connection: upgrade` and `Upgrade: websocket`; a
 * server that agrees answers 101 and from the byte after that head on, the connection
 * carries the new protocol both ways: the HTTP proxy turns back into an L4 one (a tunnel).
 * What is decided here, as pure functions of the heads and the route's allowed list:
 *
 *  - a request asks for an upgrade only when Connection lists "upgrade" AND an Upgrade
 *    field is there (gw_h1_conn_info_t.upgrade); its protocols are the Upgrade field's
 *    comma-separated `name[/version]` tokens;
 *  - TUNNEL: the route allows one of the offered protocols, the request is a GET and has
 *    no body (RFC 6455 4.1; a body before the switch would leave its end to guesswork);
 *    the request goes upstream with its Upgrade field and `Connection: upgrade`;
 *  - STRIP: any other upgrade request goes upstream as a plain request, without Upgrade
 *    (as every hop-by-hop field is removed), so the backend answers it as HTTP;
 *  - `h2c` is never forwarded, whatever a route says (the h2c smuggling attack: a backend
 *    that switches to HTTP/2 cleartext behind a proxy that tunnels the bytes serves
 *    requests the proxy never routed, checked or logged);
 *  - a 101 is accepted only for a TUNNEL request, and only when its Upgrade field names
 *    exactly one protocol the request offered (and the route allows): anything else is a
 *    502, since the proxy could not know where the bytes that follow belong.
 *
 * Nothing here allocates or looks at a socket; tests/test_upgrade.c is table driven. */
#ifndef GW_UPGRADE_H
#define GW_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>

#include "04-http/h1.h"

#define GW_UPGRADE_MAX_ALLOWED 8  /* protocols one route may allow */
#define GW_UPGRADE_MAX_OFFERED 16 /* protocols one request may offer (more: STRIP) */

/* What a route allows: protocol names (compared case-insensitively, without a version). */
typedef struct gw_upgrade_allow_s {
    const char *names[GW_UPGRADE_MAX_ALLOWED];
    size_t n;
} gw_upgrade_allow_t;

typedef enum {
    GW_UPGRADE_NONE,   /* not an upgrade request */
    GW_UPGRADE_TUNNEL, /* forwarded with Upgrade; a 101 makes the connection a tunnel */
    GW_UPGRADE_STRIP,  /* forwarded as a plain request without Upgrade */
} gw_upgrade_t;

/* The facts about a request head the decision needs (filled by the caller before the
 * hop-by-hop fields are stripped). */
typedef struct gw_upgrade_req_s {
    bool asked;         /* Connection lists "upgrade" and an Upgrade field is present */
    bool get;           /* the method is GET */
    bool has_body;      /* Content-Length > 0 or Transfer-Encoding */
    bool several;       /* more than one Upgrade field line: STRIP (an honest client sends one;
                         * reading only the first would let "Upgrade: h2c" ride on a second) */
    gw_h1_span_t offer; /* the (one) Upgrade field's value */
} gw_upgrade_req_t;

/* Decides for REQ on a route allowing ALLOW (NULL: none). *WHY gets a static reason for a
 * STRIP (for the debug log), NULL otherwise. */
gw_upgrade_t gw_upgrade_decide(const gw_upgrade_req_t *req, const gw_upgrade_allow_t *allow,
                               const char **why);

/* May a 101 whose Upgrade field is ANSWER (present: HAS_ANSWER) switch a request decided
 * DECISION with OFFER on a route allowing ALLOW? *WHY gets a static reason when not. */
bool gw_upgrade_accept_101(gw_upgrade_t decision, gw_h1_span_t offer,
                           const gw_upgrade_allow_t *allow, bool has_answer, gw_h1_span_t answer,
                           const char **why);

/* Whether NAME[0..LEN) is a protocol name a route may allow in its config (a token; not
 * h2c, not h2). */
bool gw_upgrade_name_ok(const char *name, size_t len);

#endif
