/* httpd.c - see httpd.h */
#include "httpd.h"

#include <errno.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "log.h"

#define BACKLOG 128
#define RELISTEN_MS 100 /* out of descriptors: try to listen again this often */
#define RBUF_SIZE 4096
/* Input read and thrown away while lingering before a close, at most (see on_shutdown). */
#define LINGER_MAX_BYTES (64u << 10)

enum conn_state {
    ST_HEAD,    /* reading a request head */
    ST_WRITING, /* a response is being written; reading is stopped */
    ST_LINGER,  /* final response sent and FIN queued: draining input until the peer closes */
    ST_CLOSED,  /* uv_close called; waiting for the close callbacks */
};

typedef struct conn_s conn_t;

struct gw_httpd_s {
    uv_tcp_t tcp; /* the listener */
    uv_loop_t *loop;
    gw_addr_t addr;      /* where it listens (the port the kernel chose for port 0) */
    uv_timer_t relisten; /* while paused for want of descriptors */
    bool paused;         /* TCP closed (or closing) for want of descriptors */
    bool lclosing;       /* that close has not called back yet */
    bool relisten_closed;
    gw_lograte_t accept_log;
    gw_httpd_limits_t lim;
    gw_httpd_handler_cb handler;
    void *ctx;
    conn_t *conns;    /* open connections (not yet closing), for stop */
    size_t nconns;    /* connections whose memory is not yet freed */
    size_t nrefusing; /* refused connections whose handle is still closing */
    bool stopping, listener_closed;
    void (*done)(void *arg);
    void *done_arg;
};

/* One connection. Its handles are embedded; the last close callback frees it. The request
 * being parsed is copied into `arena` (the head is capped, so the arena is too), since
 * llhttp hands out spans of the read buffer that a following read overwrites. */
struct conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer; /* head timeout, write timeout, then linger timeout: one at a time */
    uv_write_t wreq;
    uv_shutdown_t sreq;
    gw_httpd_t *srv;
    conn_t *prev, *next;
    llhttp_t parser;
    enum conn_state state;
    int pending_closes;
    bool closing;
    bool begun;        /* a request has started arriving (a timeout then deserves a 408) */
    bool in_field;     /* a header name is being received */
    bool close_after;  /* the response being written is the last one */
    int reject;        /* status a parser callback chose when refusing the request */
    size_t head_bytes; /* bytes of the current head given to the parser */
    size_t lingered;
    /* the request: URL, then header names and values, NUL-terminated, in the arena */
    size_t url_len;
    gw_httpd_header_t *hdrs; /* [srv->lim.max_headers] */
    size_t nhdrs;
    char *arena;
    size_t alen, acap;
    /* input read but not parsed yet (pipelined requests wait here during a write) */
    size_t roff, rlen;
    char rbuf[RBUF_SIZE];
    /* the response being written */
    char *whead, *wbody;
    void (*wbody_free)(void *);
    /* gw_httpd_serve_memory: responses are appended here instead of written; the
     * connection has no socket, timer or loop (NULL for a real connection) */
    struct sink_s *sink;
};

/* Where a connection without a socket puts its responses (gw_httpd_serve_memory). */
struct sink_s {
    char *p;
    size_t n, cap;
    bool failed; /* out of memory */
};

static void conn_close(conn_t *c);
static void feed(conn_t *c);
static void on_timer(uv_timer_t *t);

/* ---- responses ------------------------------------------------------------------------- */

/* see httpd.h */
const char *gw_httpd_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* see httpd.h */
void gw_httpd_resp_body(gw_httpd_resp_t *r, int status, const char *content_type, char *body,
                        size_t len, void (*body_free)(void *))
{
    if (r->body_free != NULL && r->body != NULL && r->body != body)
        r->body_free(r->body);
    r->status = status;
    r->content_type = content_type;
    r->body = body;
    r->body_len = body ? len : 0;
    r->body_free = body_free;
}

/* see httpd.h */
void gw_httpd_resp_error(gw_httpd_resp_t *r, int status)
{
    char reason[48];
    snprintf(reason, sizeof reason, "%s", gw_httpd_reason(status));
    for (char *p = reason; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    size_t cap = 96;
    char *body = malloc(cap);
    if (body == NULL) {
        static char fallback[] = "{}";
        gw_httpd_resp_body(r, status, "application/json", fallback, 2, NULL);
        return;
    }
    int n = snprintf(body, cap, "{\"status\":%d,\"error\":\"%s\"}", status, reason);
    gw_httpd_resp_body(r, status, "application/json", body, (size_t)n, free);
}

static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* see httpd.h */
int gw_httpd_resp_header(gw_httpd_resp_t *r, const char *name, const char *value)
{
    if (name == NULL || value == NULL || *name == '\0' || strpbrk(value, "\r\n") != NULL ||
        strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Connection") == 0 ||
        strcasecmp(name, "Transfer-Encoding") == 0)
        return GW_EINVAL;
    for (const char *p = name; *p; p++)
        if (!is_tchar(*p))
            return GW_EINVAL;
    size_t room = sizeof r->extra - r->extra_len;
    int n = snprintf(r->extra + r->extra_len, room, "%s: %s\r\n", name, value);
    if (n < 0 || (size_t)n >= room) {
        r->extra[r->extra_len] = '\0';
        return GW_ENOMEM;
    }
    r->extra_len += (size_t)n;
    return 0;
}

/* The response head, malloc'd. 1xx, 204 and 304 carry no Content-Length (RFC 9110 8.6). */
static char *build_head(const gw_httpd_resp_t *r, bool close, bool http10, size_t *len)
{
    size_t cap = 200 + (r->content_type ? strlen(r->content_type) : 0) + r->extra_len;
    char *h = malloc(cap);
    if (h == NULL)
        return NULL;
    size_t n =
        (size_t)snprintf(h, cap, "HTTP/1.1 %d %s\r\n", r->status, gw_httpd_reason(r->status));
    if (r->content_type)
        n += (size_t)snprintf(h + n, cap - n, "Content-Type: %s\r\n", r->content_type);
    if (r->status != 204 && r->status != 304)
        n += (size_t)snprintf(h + n, cap - n, "Content-Length: %zu\r\n", r->body_len);
    if (close)
        n += (size_t)snprintf(h + n, cap - n, "Connection: close\r\n");
    else if (http10) /* 1.0 closes by default: say that this connection stays */
        n += (size_t)snprintf(h + n, cap - n, "Connection: keep-alive\r\n");
    memcpy(h + n, r->extra, r->extra_len);
    n += r->extra_len;
    memcpy(h + n, "\r\n", 3);
    *len = n + 2;
    return h;
}

static void release_body(gw_httpd_resp_t *r)
{
    if (r->body_free != NULL && r->body != NULL)
        r->body_free(r->body);
    r->body = NULL;
    r->body_len = 0;
    r->body_free = NULL;
}

static void on_written(uv_write_t *req, int status);
static void on_shutdown(uv_shutdown_t *req, int status);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void free_response(conn_t *c)
{
    free(c->whead);
    if (c->wbody_free != NULL && c->wbody != NULL)
        c->wbody_free(c->wbody);
    c->whead = c->wbody = NULL;
    c->wbody_free = NULL;
}

static void sink_put(struct sink_s *k, const char *p, size_t n)
{
    if (k->failed || n == 0)
        return;
    if (k->n + n > k->cap) {
        size_t cap = k->cap ? k->cap : 1024;
        while (cap < k->n + n)
            cap *= 2;
        char *q = realloc(k->p, cap);
        if (q == NULL) {
            k->failed = true;
            return;
        }
        k->p = q;
        k->cap = cap;
    }
    memcpy(k->p + k->n, p, n);
    k->n += n;
}

/* A connection without a socket "writes" at once, and the write completes at once: what
 * on_written and on_shutdown do for a real one, minus the handles. */
static void sink_respond(conn_t *c, const uv_buf_t *bufs, unsigned n, bool close)
{
    for (unsigned i = 0; i < n; i++)
        sink_put(c->sink, bufs[i].base, bufs[i].len);
    c->close_after = close;
    if (close) {
        c->state = ST_LINGER; /* what follows is read and dropped */
        return;
    }
    c->state = ST_HEAD;
    c->head_bytes = 0;
    c->begun = false;
}

/* Queues R (its body is ours from here on) and, when CLOSE, a FIN after it. Reading stops
 * until the write completes: pipelined input waits in rbuf, so at most one response is in
 * flight and its memory is bounded. The timer now bounds the write: a client that never
 * reads cannot hold a connection (of only max_conns) forever. */
static void respond(conn_t *c, gw_httpd_resp_t *r, bool close, bool head_only)
{
    if (r->status < 200 || r->status > 599) { /* nothing set, or interim: not supported */
        release_body(r);
        gw_httpd_resp_error(r, 500);
    }
    if (r->status == 204 || r->status == 304)
        release_body(r);
    close = close || r->close;
    size_t hlen;
    char *head = build_head(r, close, c->parser.http_minor == 0, &hlen);
    if (head == NULL) {
        release_body(r);
        conn_close(c);
        return;
    }
    uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)hlen),
                        uv_buf_init(r->body, (unsigned)r->body_len)};
    unsigned nbufs = head_only || r->body_len == 0 ? 1 : 2;
    if (c->sink != NULL) {
        sink_respond(c, bufs, nbufs, close);
        free(head);
        release_body(r);
        return;
    }
    c->whead = head;
    c->wbody = r->body;
    c->wbody_free = r->body_free;
    c->state = ST_WRITING;
    c->close_after = close;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_stop(&c->timer);
    c->wreq.data = c->sreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs, nbufs, on_written) != 0) {
        free_response(c);
        conn_close(c);
        return;
    }
    /* uv_shutdown waits for the queued write, so the FIN follows the response. */
    if (close && uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c); /* cancels the write, whose callback frees the buffers */
        return;
    }
    uv_timer_start(&c->timer, on_timer, c->srv->lim.head_timeout_ms, 0);
}

/* Answers STATUS with the standard JSON body and closes: used when the request is refused
 * before (or instead of) reaching the handler, so the parser's state is not trustworthy. */
static void respond_error(conn_t *c, int status)
{
    gw_httpd_resp_t r;
    memset(&r, 0, sizeof r);
    gw_httpd_resp_error(&r, status);
    respond(c, &r, true, false);
}

static void on_written(uv_write_t *req, int status)
{
    conn_t *c = req->data;
    free_response(c);
    if (c->closing || c->close_after) /* on_shutdown takes it from here */
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    /* Ready for the next request on this connection: answer what was pipelined first,
     * and read again only if that did not start another response. */
    c->state = ST_HEAD;
    c->head_bytes = 0;
    c->begun = false;
    uv_timer_start(&c->timer, on_timer, c->srv->lim.head_timeout_ms, 0);
    feed(c);
    if (c->state == ST_HEAD && !c->closing)
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* Lingering close (as nginx does): closing a socket with unread input makes the kernel
 * send RST, and an RST can destroy the response before the client read it - exactly for
 * 413 and 431, whose clients are still sending. So after the FIN, input is read and
 * dropped until the client closes, the linger time passes, or LINGER_MAX_BYTES came. */
static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn_t *c = req->data;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    c->state = ST_LINGER;
    c->lingered = 0;
    uv_timer_start(&c->timer, on_timer, c->srv->lim.linger_ms, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

/* ---- parsing --------------------------------------------------------------------------- */

static conn_t *conn_of(llhttp_t *p)
{
    return p->data;
}

/* Copies a span into the arena. The arena holds a whole head plus a NUL per string, so it
 * cannot overflow while max_head is enforced; the check stays as a second wall. */
static int keep(conn_t *c, const char *at, size_t n)
{
    if (n > c->acap - c->alen) {
        c->reject = 431;
        return -1;
    }
    memcpy(c->arena + c->alen, at, n);
    c->alen += n;
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    conn_t *c = conn_of(p);
    c->begun = true;
    c->in_field = false;
    c->alen = c->url_len = c->nhdrs = 0;
    c->reject = 0;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    conn_t *c = conn_of(p);
    if (n > c->srv->lim.max_uri - c->url_len) {
        c->reject = 414;
        return -1;
    }
    c->url_len += n;
    return keep(c, at, n);
}

static int on_url_complete(llhttp_t *p)
{
    return keep(conn_of(p), "", 1);
}

/* A name may arrive in several spans (split across reads): a new header starts with the
 * first span after the previous value completed. */
static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    conn_t *c = conn_of(p);
    if (!c->in_field) {
        if (c->nhdrs == c->srv->lim.max_headers) {
            c->reject = 431;
            return -1;
        }
        c->hdrs[c->nhdrs].name = c->arena + c->alen;
        c->in_field = true;
    }
    return keep(c, at, n);
}

static int on_header_field_complete(llhttp_t *p)
{
    conn_t *c = conn_of(p);
    if (keep(c, "", 1) != 0)
        return -1;
    c->hdrs[c->nhdrs].value = c->arena + c->alen; /* an empty value has no span at all */
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    return keep(conn_of(p), at, n);
}

static int on_header_value_complete(llhttp_t *p)
{
    conn_t *c = conn_of(p);
    if (keep(c, "", 1) != 0)
        return -1;
    /* Field values exclude surrounding whitespace (RFC 9110 5.5). An obs-fold, which
     * llhttp accepts even in strict mode, reaches us as a second span without its CRLF
     * (checked on llhttp 8.1; the unit test holds it), so a value never has a line break. */
    gw_httpd_header_t *h = &c->hdrs[c->nhdrs];
    char *v = (char *)h->value, *end = c->arena + c->alen - 1;
    while (*v == ' ' || *v == '\t')
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        *--end = '\0';
    h->value = v;
    c->in_field = false;
    c->nhdrs++;
    return 0;
}

/* The admin API takes no request bodies: refusing them here, before any body byte is
 * parsed, keeps the server free of body buffering altogether. */
static int on_headers_complete(llhttp_t *p)
{
    conn_t *c = conn_of(p);
    if (p->http_major != 1) {
        c->reject = 505;
        return -1;
    }
    if ((p->flags & (F_CHUNKED | F_TRANSFER_ENCODING)) ||
        ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0)) {
        c->reject = 413;
        return -1;
    }
    return 0;
}

/* Pausing hands control back to feed(), which answers this request before the parser may
 * look at the next one (pipelining). */
static int on_message_complete(llhttp_t *p)
{
    (void)p;
    return HPE_PAUSED;
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

/* see httpd.h */
const char *gw_httpd_req_header(const gw_httpd_req_t *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

/* Calls the handler for the request the parser just completed and sends its answer. */
static void dispatch(conn_t *c, bool upgrade)
{
    gw_httpd_t *s = c->srv;
    char *url = c->arena, *q = strchr(url, '?');
    if (q != NULL)
        *q = '\0';
    uint8_t method = llhttp_get_method(&c->parser);
    gw_httpd_req_t req = {
        .method = llhttp_method_name((llhttp_method_t)method),
        .path = url,
        .query = q ? q + 1 : "",
        .http_minor = c->parser.http_minor,
        .headers = c->hdrs,
        .nheaders = c->nhdrs,
    };
    /* An upgrade (or CONNECT) would hand the connection to another protocol: not ours, so
     * the handler answers and the connection closes. */
    bool close = upgrade || !llhttp_should_keep_alive(&c->parser) || s->stopping;
    gw_httpd_resp_t r;
    memset(&r, 0, sizeof r);
    s->handler(s->ctx, &req, &r);
    if (c->closing) { /* the handler stopped the server */
        release_body(&r);
        return;
    }
    respond(c, &r, close, method == HTTP_HEAD);
}

/* Gives unread input to the parser until a request is complete (and answered), more input
 * is needed, or the request was refused. The parser never sees more than what is left of
 * max_head, so a head that has not ended by then is too large: llhttp itself has no limit
 * (DESIGN.md). */
static void feed(conn_t *c)
{
    size_t max_head = c->srv->lim.max_head;
    while (c->state == ST_HEAD && c->rlen > 0 && !c->closing) {
        const char *at = c->rbuf + c->roff;
        size_t n = c->rlen < max_head - c->head_bytes ? c->rlen : max_head - c->head_bytes;
        llhttp_errno_t e = llhttp_execute(&c->parser, at, n);
        if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
            size_t used = (size_t)(llhttp_get_error_pos(&c->parser) - at);
            c->roff += used;
            c->rlen -= used;
            dispatch(c, e == HPE_PAUSED_UPGRADE || llhttp_get_upgrade(&c->parser));
            llhttp_resume(&c->parser);
            return;
        }
        if (e != HPE_OK) {
            gw_debug("admin: bad request: %s", llhttp_get_error_reason(&c->parser));
            respond_error(c, c->reject ? c->reject : 400);
            return;
        }
        c->roff += n;
        c->rlen -= n;
        c->head_bytes += n;
        if (c->head_bytes >= max_head) {
            respond_error(c, 431);
            return;
        }
    }
}

/* ---- connection I/O -------------------------------------------------------------------- */

/* Reading only happens when rbuf holds nothing unparsed (feed consumed it all, or the
 * connection is lingering and its input is dropped), so every read can reuse all of it. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    conn_t *c = h->data;
    *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    conn_t *c = st->data;
    if (nread == 0 || c->closing)
        return;
    if (nread < 0) { /* EOF or error: a half-sent head has nobody left to answer */
        conn_close(c);
        return;
    }
    if (c->state == ST_LINGER) {
        c->lingered += (size_t)nread;
        if (c->lingered > LINGER_MAX_BYTES)
            conn_close(c);
        return;
    }
    c->roff = 0;
    c->rlen = (size_t)nread;
    feed(c);
}

/* One timer, three deadlines: the head (408 once a request began; an idle keep-alive
 * connection closes silently, since a 408 nobody asked for can be mistaken by a client for
 * the answer to the request it is about to send), the write, and the linger. */
static void on_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (c->state == ST_HEAD && c->begun)
        respond_error(c, 408);
    else
        conn_close(c);
}

static void server_maybe_done(gw_httpd_t *s)
{
    if (!s->stopping || !s->listener_closed || !s->relisten_closed || s->nconns > 0 ||
        s->nrefusing > 0)
        return;
    void (*done)(void *) = s->done;
    void *arg = s->done_arg;
    free(s);
    if (done)
        done(arg);
}

static void on_conn_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    if (--c->pending_closes > 0)
        return;
    gw_httpd_t *s = c->srv;
    free(c);
    s->nconns--;
    server_maybe_done(s);
}

/* Idempotent. Pending write and shutdown requests are cancelled by uv_close: their
 * callbacks run (with UV_ECANCELED) before the close callbacks, and see `closing`. */
static void conn_close(conn_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    c->state = ST_CLOSED;
    if (c->sink != NULL) /* no handles, not in the server's list */
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->pending_closes = 2;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

/* ---- the listener ---------------------------------------------------------------------- */

static void on_refused_closed(uv_handle_t *h)
{
    gw_httpd_t *s = h->data;
    free(h);
    s->nrefusing--;
    server_maybe_done(s);
}

static void pause_listener(gw_httpd_t *s, int status);

/* Over the connection cap: accept and close at once, so the client learns now instead of
 * waiting in the backlog (and libuv stops watching a listener whose connection is left
 * unaccepted). */
static void refuse(gw_httpd_t *s)
{
    uv_tcp_t *t = malloc(sizeof *t);
    if (t == NULL || uv_tcp_init(s->loop, t) != 0) {
        /* Left unaccepted, the connection would make libuv stop watching the listener for
         * good: closing the listener resets it, and it listens again shortly. */
        free(t);
        pause_listener(s, UV_ENOMEM);
        return;
    }
    t->data = s;
    s->nrefusing++;
    uv_accept((uv_stream_t *)&s->tcp, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, on_refused_closed);
}

/* One allocation: the connection, its header table and its arena. The arena holds the
 * head's bytes plus a NUL after the URL and after each name and value. */
static conn_t *conn_new(gw_httpd_t *s)
{
    size_t hdrs = s->lim.max_headers * sizeof(gw_httpd_header_t);
    size_t acap = s->lim.max_head + 2 * s->lim.max_headers + 2;
    conn_t *c = malloc(sizeof *c + hdrs + acap);
    if (c == NULL)
        return NULL;
    memset(c, 0, sizeof *c);
    c->srv = s;
    c->hdrs = (gw_httpd_header_t *)(c + 1);
    c->arena = (char *)c->hdrs + hdrs;
    c->acap = acap;
    llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
    c->parser.data = c;
    c->tcp.data = c->timer.data = c;
    return c;
}

/* ---- out of descriptors: the same remedy as the workers' listeners (runtime.c) ----------
 * libuv 1.44 calls accept again after every error it reports, and with no descriptor to
 * spare accept fails every time, queue empty or not: the control thread would spin and
 * stop handling signals. The listener is closed instead (which ends libuv's loop; queued
 * connections are reset) and bound again every RELISTEN_MS until that succeeds. */

static void on_connection(uv_stream_t *l, int status);
static int listen_socket(const gw_addr_t *a, int *out);

static void on_paused_closed(uv_handle_t *h)
{
    gw_httpd_t *s = h->data;
    s->lclosing = false;
    if (s->stopping) {
        s->listener_closed = true;
        server_maybe_done(s);
    }
}

static void on_relisten(uv_timer_t *t)
{
    gw_httpd_t *s = t->data;
    if (s->stopping || !s->paused)
        return;
    int fd = -1, rc = s->lclosing ? UV_EAGAIN : listen_socket(&s->addr, &fd);
    if (rc == 0 && (rc = uv_tcp_init(s->loop, &s->tcp)) != 0)
        close(fd);
    else if (rc == 0) {
        s->tcp.data = s;
        if ((rc = uv_tcp_open(&s->tcp, fd)) != 0)
            close(fd);
        else
            rc = uv_listen((uv_stream_t *)&s->tcp, BACKLOG, on_connection);
        if (rc != 0) {
            s->lclosing = true;
            uv_close((uv_handle_t *)&s->tcp, on_paused_closed);
        }
    }
    if (rc == 0) {
        s->paused = false;
        gw_info("admin: accepting again");
        return;
    }
    uint64_t dropped;
    if (!gw_err_local_shortage(rc) && rc != UV_EAGAIN &&
        gw_lograte_allow(&s->accept_log, uv_now(s->loop), 1000, &dropped))
        gw_error("admin: cannot listen again: %s%s", gw_strerror(rc),
                 dropped ? " (more suppressed)" : "");
    uv_timer_start(&s->relisten, on_relisten, RELISTEN_MS, 0);
}

static void pause_listener(gw_httpd_t *s, int status)
{
    s->paused = true;
    s->lclosing = true;
    uv_close((uv_handle_t *)&s->tcp, on_paused_closed);
    uv_timer_start(&s->relisten, on_relisten, RELISTEN_MS, 0);
    uint64_t dropped;
    if (gw_lograte_allow(&s->accept_log, uv_now(s->loop), 1000, &dropped))
        gw_warn("admin: cannot accept: %s; not accepting for now, listening again in %d ms%s",
                uv_strerror(status), RELISTEN_MS, dropped ? " (more suppressed)" : "");
}

static void on_connection(uv_stream_t *l, int status)
{
    gw_httpd_t *s = l->data;
    if (gw_err_local_shortage(status)) {
        pause_listener(s, status);
        return;
    }
    if (status < 0) {
        gw_debug("admin: accept failed: %s", uv_strerror(status));
        return;
    }
    conn_t *c = s->nconns < s->lim.max_conns ? conn_new(s) : NULL;
    if (c == NULL) {
        refuse(s);
        return;
    }
    uv_tcp_init(s->loop, &c->tcp); /* both cannot fail on Linux once the loop exists */
    uv_timer_init(s->loop, &c->timer);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1); /* a response's last segment must not wait for an ACK */
    uv_timer_start(&c->timer, on_timer, s->lim.head_timeout_ms, 0);
}

/* Bound and listening before libuv sees it, so a failure leaves no handle to close. */
static int listen_socket(const gw_addr_t *a, int *out)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (a->ss.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
        bind(fd, (const struct sockaddr *)&a->ss, a->len) != 0 || listen(fd, BACKLOG) != 0) {
        int err = -errno;
        close(fd);
        return err == -EADDRINUSE ? GW_EADDRINUSE : err;
    }
    *out = fd;
    return 0;
}

static void apply_defaults(gw_httpd_limits_t *l, const gw_httpd_limits_t *in)
{
    *l = in ? *in : (gw_httpd_limits_t){0};
    if (l->max_head == 0)
        l->max_head = 16 * 1024;
    if (l->max_uri == 0)
        l->max_uri = 2048;
    if (l->max_headers == 0)
        l->max_headers = 64;
    if (l->max_headers > GW_HTTPD_MAX_HEADERS)
        l->max_headers = GW_HTTPD_MAX_HEADERS;
    if (l->max_conns == 0)
        l->max_conns = 256;
    if (l->head_timeout_ms == 0)
        l->head_timeout_ms = 10000;
    if (l->linger_ms == 0)
        l->linger_ms = 2000;
}

static void free_handle_owner(uv_handle_t *h)
{
    free(h->data);
}

/* see httpd.h */
gw_httpd_t *gw_httpd_start(uv_loop_t *loop, const gw_addr_t *addr, const gw_httpd_limits_t *limits,
                           gw_httpd_handler_cb handler, void *ctx, int *err)
{
    int fd = -1, rc = listen_socket(addr, &fd);
    gw_httpd_t *s = rc == 0 ? calloc(1, sizeof *s) : NULL;
    if (s == NULL) {
        if (rc == 0) {
            close(fd);
            rc = GW_ENOMEM;
        }
        if (err)
            *err = rc;
        return NULL;
    }
    s->loop = loop;
    s->handler = handler;
    s->ctx = ctx;
    apply_defaults(&s->lim, limits);
    s->addr.len = sizeof s->addr.ss; /* the bound address, port 0 resolved: for a rebind */
    if (getsockname(fd, (struct sockaddr *)&s->addr.ss, &s->addr.len) != 0)
        s->addr = *addr;
    rc = uv_tcp_init(loop, &s->tcp);
    if (rc != 0) {
        close(fd);
        free(s);
    } else {
        s->tcp.data = s;
        if ((rc = uv_tcp_open(&s->tcp, fd)) != 0)
            close(fd); /* not the handle's yet */
        else
            rc = uv_listen((uv_stream_t *)&s->tcp, BACKLOG, on_connection);
        if (rc != 0) /* the handle exists: freed from its close callback */
            uv_close((uv_handle_t *)&s->tcp, free_handle_owner);
    }
    if (rc == 0) {
        uv_timer_init(loop, &s->relisten);
        s->relisten.data = s;
    }
    if (rc != 0 && err)
        *err = rc;
    return rc == 0 ? s : NULL;
}

/* see httpd.h */
int gw_httpd_address(const gw_httpd_t *s, gw_addr_t *out)
{
    *out = s->addr; /* kept from the start: the handle may be closed for want of descriptors */
    return 0;
}

/* see httpd.h */
size_t gw_httpd_connections(const gw_httpd_t *s)
{
    return s->nconns;
}

static void on_listener_closed(uv_handle_t *h)
{
    gw_httpd_t *s = h->data;
    s->listener_closed = true;
    server_maybe_done(s);
}

static void on_relisten_closed(uv_handle_t *h)
{
    gw_httpd_t *s = h->data;
    s->relisten_closed = true;
    server_maybe_done(s);
}

/* see httpd.h */
void gw_httpd_stop(gw_httpd_t *s, void (*done)(void *arg), void *arg)
{
    s->stopping = true;
    s->done = done;
    s->done_arg = arg;
    uv_close((uv_handle_t *)&s->relisten, on_relisten_closed);
    if (!s->paused)
        uv_close((uv_handle_t *)&s->tcp, on_listener_closed);
    else if (!s->lclosing)         /* closed for want of descriptors: nothing left to close */
        s->listener_closed = true; /* done is decided in the timer's close callback */
    /* else: on_paused_closed marks it closed */
    while (s->conns)
        conn_close(s->conns);
}

/* see httpd.h */
int gw_httpd_serve_memory(const gw_httpd_limits_t *limits, gw_httpd_handler_cb handler, void *ctx,
                          const char *in, size_t len, size_t piece, char **out, size_t *outlen)
{
    gw_httpd_t s;
    memset(&s, 0, sizeof s);
    s.handler = handler;
    s.ctx = ctx;
    apply_defaults(&s.lim, limits);
    struct sink_s sink = {NULL, 0, 0, false};
    conn_t *c = conn_new(&s);
    if (c == NULL)
        return GW_ENOMEM;
    c->sink = &sink;
    if (piece == 0 || piece > RBUF_SIZE)
        piece = RBUF_SIZE;
    size_t pos = 0;
    /* As on_read and on_written drive a real connection: a read only when everything read
     * before was parsed, and parsing again after each response (pipelined requests). */
    while (c->state == ST_HEAD && !c->closing) {
        if (c->rlen == 0) {
            if (pos == len)
                break;
            size_t k = len - pos < piece ? len - pos : piece;
            memcpy(c->rbuf, in + pos, k);
            pos += k;
            c->roff = 0;
            c->rlen = k;
        }
        feed(c);
    }
    int closed = c->state != ST_HEAD || c->closing;
    free(c);
    if (sink.failed) {
        free(sink.p);
        return GW_ENOMEM;
    }
    *out = sink.p;
    *outlen = sink.n;
    return closed;
}
