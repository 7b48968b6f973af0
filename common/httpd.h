/* httpd.h - a minimal HTTP/1.1 server on llhttp for the control thread's admin API:
 * bodiless requests, small responses, strict limits. (The proxy's engine is milestone 04's.) */
#ifndef GW_HTTPD_H
#define GW_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "addr.h"

typedef struct gw_httpd_s gw_httpd_t;

/* Limits; a zero field takes its default. The defaults suit an admin API that serves a
 * handful of scrapers and operators, not the public. */
typedef struct gw_httpd_limits_s {
    size_t max_head;          /* request line + headers, bytes; over: 431 (16 KiB) */
    size_t max_uri;           /* request target, bytes; over: 414 (2 KiB) */
    size_t max_headers;       /* header lines; over: 431 (64, at most GW_HTTPD_MAX_HEADERS) */
    size_t max_conns;         /* open connections; beyond: accepted and closed at once (256) */
    uint64_t head_timeout_ms; /* from connect (or the previous response) to a complete head:
                                 408 if a request had begun, else closed silently; it also
                                 bounds each response's write (10 s) */
    uint64_t linger_ms;       /* after the last response, how long unread input is drained
                                 before closing, so the client reads the answer (2 s) */
} gw_httpd_limits_t;

#define GW_HTTPD_MAX_HEADERS 256

typedef struct gw_httpd_header_s {
    const char *name; /* as received (compare case-insensitively) */
    const char *value;
} gw_httpd_header_t;

/* One request, valid only during the handler call: copy what you keep. */
typedef struct gw_httpd_req_s {
    const char *method;  /* "GET", "HEAD", ... */
    const char *path;    /* request target up to '?', not percent-decoded */
    const char *query;   /* after '?', "" when none */
    unsigned http_minor; /* 0 or 1 (HTTP/1.x only; anything else was refused with 505) */
    const gw_httpd_header_t *headers;
    size_t nheaders;
} gw_httpd_req_t;

/* The first header named NAME (case-insensitive), with surrounding whitespace removed, or
 * NULL. */
const char *gw_httpd_req_header(const gw_httpd_req_t *req, const char *name);

#define GW_HTTPD_EXTRA_MAX 512

/* The handler's answer; it arrives zeroed. Set it with the gw_httpd_resp_* functions. The
 * server adds Content-Length (always) and `Connection: close` when it will close; for a
 * HEAD request it sends the head only (with the body's Content-Length). */
typedef struct gw_httpd_resp_s {
    int status;               /* 100..599; 0 (nothing set) is answered as 500 */
    const char *content_type; /* static string, or NULL for none */
    char *body;               /* see gw_httpd_resp_body */
    size_t body_len;
    void (*body_free)(void *);      /* called on body once written; NULL: body is static */
    bool close;                     /* close the connection after this response */
    char extra[GW_HTTPD_EXTRA_MAX]; /* "Name: value\r\n" lines, from gw_httpd_resp_header */
    size_t extra_len;
} gw_httpd_resp_t;

/* Sets the status and body. BODY_FREE is how the server releases BODY after the write
 * (free for malloc'd text, NULL for a static string); a body set before is released now.
 * CONTENT_TYPE must be a static string. Never fails. */
void gw_httpd_resp_body(gw_httpd_resp_t *r, int status, const char *content_type, char *body,
                        size_t len, void (*body_free)(void *));

/* Sets STATUS with the standard small JSON body {"status":404,"error":"not found"}. */
void gw_httpd_resp_error(gw_httpd_resp_t *r, int status);

/* Adds a header line. NAME must be a token, VALUE must hold no CR, LF or NUL, and neither
 * may be Content-Length or Connection (the server owns those). Returns 0, GW_EINVAL, or
 * GW_ENOMEM when the extra headers would pass GW_HTTPD_EXTRA_MAX bytes. */
int gw_httpd_resp_header(gw_httpd_resp_t *r, const char *name, const char *value);

/* The reason phrase for STATUS ("Not Found"), "Unknown" for codes it does not know. */
const char *gw_httpd_reason(int status);

/* Runs on the loop's thread for every well-formed request. It fills RESP before returning
 * (no asynchronous answers: the admin API answers from memory). It may call gw_httpd_stop;
 * the response is then dropped. */
typedef void (*gw_httpd_handler_cb)(void *ctx, const gw_httpd_req_t *req, gw_httpd_resp_t *resp);

/* Listens on ADDR (port 0: any free port, see gw_httpd_address) on LOOP with SO_REUSEADDR
 * (not SO_REUSEPORT: a second server on the port must fail, not share it). LIMITS may be
 * NULL (all defaults). Returns the server, or NULL with *ERR set: GW_EADDRINUSE when the
 * address is taken, GW_ENOMEM, or another negated errno; nothing is left to close then. */
gw_httpd_t *gw_httpd_start(uv_loop_t *loop, const gw_addr_t *addr, const gw_httpd_limits_t *limits,
                           gw_httpd_handler_cb handler, void *ctx, int *err);

/* Serves IN[0..LEN) as the input of one connection, without a socket or a loop: the same
 * parser, limits (LIMITS may be NULL), pipelining and HANDLER calls as a connection of
 * gw_httpd_start, but what it would write is appended to *OUT (malloc'd, NULL when nothing;
 * free() it) with its length in *OUTLEN. The input is handed over as reads of at most PIECE
 * bytes (0: the connection's read buffer, 4 KiB). For tests and the fuzz target: how reads
 * split the input must not change the answers. Returns 1 when the connection would then be
 * closed (a final response, a refused request), 0 when it would wait for more input, or
 * GW_ENOMEM. Timeouts do not apply: no time passes. */
int gw_httpd_serve_memory(const gw_httpd_limits_t *limits, gw_httpd_handler_cb handler, void *ctx,
                          const char *in, size_t len, size_t piece, char **out, size_t *outlen);

/* The bound address (useful after port 0). Returns 0 or a negated errno. */
int gw_httpd_address(const gw_httpd_t *s, gw_addr_t *out);

/* Open connections right now (those being refused over max_conns not counted). */
size_t gw_httpd_connections(const gw_httpd_t *s);

/* Closes the listener and every connection (responses in flight are dropped). DONE (may be
 * NULL) runs with ARG from the loop once the last handle's close callback ran; S is freed
 * then. Call once; S must not be used afterwards. */
void gw_httpd_stop(gw_httpd_t *s, void (*done)(void *arg), void *arg);

#endif
