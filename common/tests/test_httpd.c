/* test_httpd.c - unit tests for httpd.h against real loopback sockets. The clients are libuv
 * handles on the test's own loop, next to the server: a test runs the loop until what it
 * waits for happened (a response, an EOF), and a deadline timer fails it instead of letting
 * it hang. No sleeps; time limits that a test exercises are made short through
 * gw_httpd_limits_t. */
#include "gwtest.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "failalloc.h"
#include "httpd.h"
#include "rand.h"

#define DEADLINE_MS 5000
#define CLIENT_BUF (512 * 1024)
#define MAX_CLIENTS 8

typedef struct fixture_s fixture_t;

typedef struct client_s {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_shutdown_t sreq;
    fixture_t *f;
    bool connected, eof, closed;
    int read_err; /* a read error other than EOF (ECONNRESET) */
    size_t len;
    char in[CLIENT_BUF];
} client_t;

struct fixture_s {
    uv_loop_t loop;
    uv_timer_t deadline;
    bool timed_out;
    gw_httpd_t *srv;
    gw_addr_t addr;
    int stop_done;
    int handled;
    char method[16], path[256], query[256], xtest[256];
    client_t *clients[MAX_CLIENTS];
    size_t nclients;
};

/* ---- the handler --------------------------------------------------------------------------- */

static void handler(void *ctx, const gw_httpd_req_t *req, gw_httpd_resp_t *resp)
{
    fixture_t *f = ctx;
    f->handled++;
    snprintf(f->method, sizeof f->method, "%s", req->method);
    snprintf(f->path, sizeof f->path, "%s", req->path);
    snprintf(f->query, sizeof f->query, "%s", req->query);
    const char *x = gw_httpd_req_header(req, "x-test");
    snprintf(f->xtest, sizeof f->xtest, "%s", x ? x : "(none)");
    if (strcmp(req->path, "/hello") == 0) {
        static char hello[] = "hello\n";
        gw_httpd_resp_body(resp, 200, "text/plain", hello, 6, NULL);
    } else if (strcmp(req->path, "/echo") == 0) {
        char *b = malloc(300);
        int n = snprintf(b, 300, "%s?%s", req->path, req->query);
        gw_httpd_resp_body(resp, 200, "text/plain", b, (size_t)n, free);
    } else if (strcmp(req->path, "/big") == 0) {
        size_t n = 300 * 1024;
        char *b = malloc(n);
        memset(b, 'b', n);
        gw_httpd_resp_body(resp, 200, "application/octet-stream", b, n, free);
    } else if (strcmp(req->path, "/busy") == 0) {
        gw_httpd_resp_error(resp, 503);
        gw_httpd_resp_header(resp, "Retry-After", "7");
    } else if (strcmp(req->path, "/stop") == 0) {
        gw_httpd_resp_error(resp, 200);
        gw_httpd_stop(f->srv, NULL, NULL);
        f->srv = NULL;
    } else if (strcmp(req->path, "/nocontent") == 0) {
        char *b = strdup("dropped");
        gw_httpd_resp_body(resp, 204, NULL, b, strlen(b), free);
    } else if (strcmp(req->path, "/nothing") == 0) {
        /* answers nothing: the server must make it a 500 */
    } else {
        gw_httpd_resp_error(resp, 404);
    }
}

/* ---- loop helpers -------------------------------------------------------------------------- */

static void on_deadline(uv_timer_t *t)
{
    fixture_t *f = t->data;
    f->timed_out = true;
}

typedef bool (*cond_fn)(void *arg);

/* Runs the loop until COND(ARG) holds; fails the test at the deadline. */
static void run_until(fixture_t *f, cond_fn cond, void *arg)
{
    f->timed_out = false;
    uv_timer_start(&f->deadline, on_deadline, DEADLINE_MS, 0);
    while (!cond(arg) && !f->timed_out)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_timer_stop(&f->deadline);
    if (f->timed_out)
        fail_msg("deadline passed while waiting");
}

static int start_server(fixture_t *f, const gw_httpd_limits_t *lim)
{
    gw_addr_t any;
    const char *why;
    assert_int_equal(gw_addr_parse("127.0.0.1:0", false, true, &any, &why), 0);
    int err = 0;
    f->srv = gw_httpd_start(&f->loop, &any, lim, handler, f, &err);
    if (f->srv == NULL)
        return err;
    assert_int_equal(gw_httpd_address(f->srv, &f->addr), 0);
    return 0;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    if (f == NULL || uv_loop_init(&f->loop) != 0)
        return -1;
    uv_timer_init(&f->loop, &f->deadline);
    f->deadline.data = f;
    *state = f;
    return 0;
}

static void on_stopped(void *arg)
{
    fixture_t *f = arg;
    f->stop_done++;
}

static bool stopped(void *arg)
{
    return ((fixture_t *)arg)->stop_done > 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (f->srv != NULL) {
        gw_httpd_stop(f->srv, on_stopped, f);
        run_until(f, stopped, f);
    }
    gw_test_close_loop(&f->loop);
    for (size_t i = 0; i < f->nclients; i++)
        free(f->clients[i]);
    free(f);
    return 0;
}

/* ---- the client ---------------------------------------------------------------------------- */

static void client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    client_t *c = h->data;
    *buf = uv_buf_init(c->in + c->len, (unsigned)(sizeof c->in - c->len - 1));
}

static void client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    client_t *c = s->data;
    if (nread == UV_EOF) {
        c->eof = true;
    } else if (nread < 0) {
        c->read_err = (int)nread;
        c->eof = true;
    } else {
        c->len += (size_t)nread;
        c->in[c->len] = '\0';
    }
    if (c->eof)
        uv_read_stop(s);
}

static void client_connected(uv_connect_t *req, int status)
{
    client_t *c = req->data;
    assert_int_equal(status, 0);
    c->connected = true;
    uv_read_start((uv_stream_t *)&c->tcp, client_alloc, client_read);
}

static bool is_connected(void *arg)
{
    return ((client_t *)arg)->connected;
}

static client_t *client_open(fixture_t *f)
{
    assert_true(f->nclients < MAX_CLIENTS);
    client_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    f->clients[f->nclients++] = c;
    c->f = f;
    uv_tcp_init(&f->loop, &c->tcp);
    c->tcp.data = c->creq.data = c;
    assert_int_equal(
        uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&f->addr.ss, client_connected),
        0);
    run_until(f, is_connected, c);
    return c;
}

typedef struct {
    uv_write_t req;
    char data[];
} wbuf_t;

static void client_written(uv_write_t *req, int status)
{
    (void)status; /* the server may close first: that is what some tests check */
    free(req);
}

static void client_send_n(client_t *c, const char *data, size_t n)
{
    wbuf_t *w = malloc(sizeof *w + n);
    memcpy(w->data, data, n);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    assert_int_equal(uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, client_written), 0);
}

static void client_send(client_t *c, const char *s)
{
    client_send_n(c, s, strlen(s));
}

static void client_shutdown(client_t *c)
{
    uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, NULL);
}

static void client_closed(uv_handle_t *h)
{
    ((client_t *)h->data)->closed = true;
}

static bool is_eof(void *arg)
{
    return ((client_t *)arg)->eof;
}

/* Complete responses in C's input, assuming each carries Content-Length (HEAD aside). */
static size_t count_responses(const client_t *c, bool head_only)
{
    size_t n = 0;
    const char *p = c->in, *end = c->in + c->len;
    for (;;) {
        const char *h = strstr(p, "\r\n\r\n");
        if (h == NULL)
            return n;
        const char *cl = strcasestr(p, "\r\nContent-Length: ");
        size_t body = cl && cl < h ? strtoul(cl + 18, NULL, 10) : 0;
        if (head_only)
            body = 0;
        if ((size_t)(end - (h + 4)) < body)
            return n;
        n++;
        p = h + 4 + body;
    }
}

typedef struct {
    client_t *c;
    size_t n;
} want_t;

static bool has_responses(void *arg)
{
    want_t *w = arg;
    return count_responses(w->c, false) >= w->n || w->c->eof;
}

static void wait_responses(client_t *c, size_t n)
{
    want_t w = {c, n};
    run_until(c->f, has_responses, &w);
    assert_int_equal(count_responses(c, false), n);
}

static int status_of(const client_t *c)
{
    int st = 0;
    if (sscanf(c->in, "HTTP/1.1 %d ", &st) != 1)
        return -1;
    return st;
}

static fixture_t *started(void **state, const gw_httpd_limits_t *lim)
{
    fixture_t *f = *state;
    assert_int_equal(start_server(f, lim), 0);
    return f;
}

/* Sends REQ on a fresh connection and waits until the server closes it. */
static client_t *exchange_to_eof(fixture_t *f, const char *req)
{
    client_t *c = client_open(f);
    client_send(c, req);
    run_until(f, is_eof, c);
    return c;
}

static bool is_closed(void *arg)
{
    return ((client_t *)arg)->closed;
}

static bool conns_is_zero(void *arg)
{
    return gw_httpd_connections(((fixture_t *)arg)->srv) == 0;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void httpd_get_returns_body_with_content_length(void **state)
{
    fixture_t *f = started(state, NULL);
    client_t *c = client_open(f);
    client_send(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_responses(c, 1);
    assert_int_equal(status_of(c), 200);
    gw_assert_contains(c->in, "Content-Type: text/plain\r\n");
    gw_assert_contains(c->in, "Content-Length: 6\r\n");
    assert_null(strstr(c->in, "Connection: close"));
    assert_non_null(strstr(c->in, "\r\n\r\nhello\n"));
    assert_false(c->eof);
}

static void httpd_keepalive_serves_two_requests_on_one_connection(void **state)
{
    fixture_t *f = started(state, NULL);
    client_t *c = client_open(f);
    client_send(c, "GET /echo?n=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_responses(c, 1);
    client_send(c, "GET /echo?n=2 HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_responses(c, 2);
    gw_assert_contains(c->in, "/echo?n=1");
    gw_assert_contains(c->in, "/echo?n=2");
    assert_int_equal(f->handled, 2);
    assert_int_equal(gw_httpd_connections(f->srv), 1);
}

static void httpd_pipelined_requests_answered_in_order(void **state)
{
    fixture_t *f = started(state, NULL);
    client_t *c = client_open(f);
    client_send(c, "GET /echo?n=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                   "GET /echo?n=2 HTTP/1.1\r\nHost: x\r\n\r\n"
                   "GET /echo?n=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    run_until(f, is_eof, c);
    assert_int_equal(count_responses(c, false), 3);
    char *a = strstr(c->in, "n=1"), *b = strstr(c->in, "n=2"), *d = strstr(c->in, "n=3");
    assert_true(a && b && d && a < b && b < d);
    assert_int_equal(c->read_err, 0);
}

static void httpd_connection_close_is_honoured(void **state)
{
    fixture_t *f = started(state, NULL);
    client_t *c = exchange_to_eof(f, "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_int_equal(status_of(c), 200);
    gw_assert_contains(c->in, "Connection: close\r\n");
    assert_int_equal(count_responses(c, false), 1);
    assert_int_equal(c->read_err, 0);
}

static void httpd_http10_closes_unless_keepalive(void **state)
{
    fixture_t *f = started(state, NULL);
    client_t *c = exchange_to_eof(f, "GET /hello HTTP/1.0\r\n\r\n");
    gw_assert_contains(c->in, "Connection: close\r\n");
    client_t *k = client_open(f);
    client_send(k, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    wait_responses(k, 1);
    gw_assert_contains(k->in, "Connection: keep-alive\r\n");
    assert_false(k->eof);
}

static void httpd_handler_404_has_json_body(void **state)
{
    fixture_t *f = started(state, NULL);
    client_t *c = client_open(f);
    client_send(c, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_responses(c, 1);
    assert_int_equal(status_of(c), 404);
    gw_assert_contains(c->in, "Content-Type: application/json\r\n");
    gw_assert_contains(c->in, "\r\n\r\n{\"status\":404,\"error\":\"not found\"}");
    assert_false(c->eof); /* a handler's 404 keeps the connection */
}

static void httpd_handler_headers_are_sent(void **state)
{
    fixture_t *f = started(state, NULL);
    client_t *c = client_open(f);
    client_send(c, "GET /busy HTTP/1.1\r\n\r\n");
    wait_responses(c, 1);
    assert_int_equal(status_of(c), 503);
    gw_assert_contains(c->in, "\r\nRetry-After: 7\r\n");
}

static void httpd_handler_answering_nothing_is_500(void **state)
{
    fixture_t *f = started(state, NULL);
    client_t *c = client_open(f);
    client_send(c, "GET /nothing HTTP/1.1\r\n\r\n");
    wait_responses(c, 1);
    assert_int_equal(status_of(c), 500);
}

static void httpd_handler_sees_path_query_and_headers(void **state)
{
    fixture_t *f = started(state, NULL);
    client_t *c = client_open(f);
    client_send(c, "DELETE /echo?a=1&b=%20 HTTP/1.1\r\nX-Test: \t spaced value \t\r\n"
                   "X-Empty:\r\n\r\n");
    wait_responses(c, 1);
    assert_string_equal(f->method, "DELETE");
    assert_string_equal(f->path, "/echo");
    assert_string_equal(f->query, "a=1&b=%20");
    assert_string_equal(f->xtest, "spaced value");
}

static void httpd_folded_header_value_has_no_line_break(void **state)
{
    fixture_t *f = started(state, NULL);
    client_t *c = client_open(f);
    client_send(c, "GET /echo HTTP/1.1\r\nX-Test: first\r\n second\r\n\r\n");
    wait_responses(c, 1);
    assert_int_equal(status_of(c), 200);
    assert_null(strpbrk(f->xtest, "\r\n"));
    gw_assert_contains(f->xtest, "first");
    gw_assert_contains(f->xtest, "second");
}

static void httpd_204_has_neither_body_nor_length(void **state)
{
    fixture_t *f = started(state, NULL);
    client_t *c = exchange_to_eof(f, "GET /nocontent HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_int_equal(status_of(c), 204);
    assert_null(strstr(c->in, "Content-Length"));
    assert_true(c->len >= 4 && memcmp(c->in + c->len - 4, "\r\n\r\n", 4) == 0);
}

static void httpd_head_sends_no_body(void **state)
{
    fixture_t *f = started(state, NULL);
    client_t *c = exchange_to_eof(f, "HEAD /hello HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_int_equal(status_of(c), 200);
    gw_assert_contains(c->in, "Content-Length: 6\r\n");
    assert_int_equal(count_responses(c, true), 1);
    assert_true(c->len >= 4 && memcmp(c->in + c->len - 4, "\r\n\r\n", 4) == 0);
}

static void httpd_large_response_arrives_whole(void **state)
{
    fixture_t *f = started(state, NULL);
    client_t *c = exchange_to_eof(f, "GET /big HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_int_equal(count_responses(c, false), 1);
    assert_true(c->len > 300 * 1024);
}

static void httpd_garbage_is_400_and_closes(void **state)
{
    fixture_t *f = started(state, NULL);
    client_t *c = exchange_to_eof(f, "HELLO THERE\r\n\r\n");
    assert_int_equal(status_of(c), 400);
    gw_assert_contains(c->in, "Connection: close\r\n");
    gw_assert_contains(c->in, "{\"status\":400,\"error\":\"bad request\"}");
    assert_int_equal(f->handled, 0);
}

static void httpd_body_is_413_and_closes(void **state)
{
    fixture_t *f = started(state, NULL);
    client_t *c = exchange_to_eof(f, "POST /hello HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
    assert_int_equal(status_of(c), 413);
    gw_assert_contains(c->in, "Connection: close\r\n");
    assert_int_equal(f->handled, 0);
}

static void httpd_chunked_body_is_413(void **state)
{
    fixture_t *f = started(state, NULL);
    client_t *c = exchange_to_eof(f, "POST /hello HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                     "5\r\nhello\r\n0\r\n\r\n");
    assert_int_equal(status_of(c), 413);
}

static void httpd_empty_body_is_accepted(void **state)
{
    fixture_t *f = started(state, NULL);
    client_t *c = client_open(f);
    client_send(c, "GET /hello HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    wait_responses(c, 1);
    assert_int_equal(status_of(c), 200);
}

/* The client is still sending its body when the 413 comes. Closing a socket with unread
 * input makes the kernel send RST, which can destroy the response before the client reads
 * it; so the server half-closes after the response and drains input until the client
 * closes. Seen from here: the FIN arrives while the server's connection stays open. */
static void httpd_refusal_drains_input_until_the_client_closes(void **state)
{
    fixture_t *f = started(state, NULL);
    client_t *c = client_open(f);
    size_t n = 48 * 1024;
    char *body = malloc(n);
    memset(body, 'z', n);
    client_send(c, "POST /hello HTTP/1.1\r\nContent-Length: 49152\r\n\r\n");
    client_send_n(c, body, n);
    free(body);
    run_until(f, is_eof, c);
    assert_int_equal(status_of(c), 413);
    assert_int_equal(gw_httpd_connections(f->srv), 1); /* lingering, not closed */
    client_shutdown(c);
    run_until(f, conns_is_zero, f);
    assert_int_equal(c->read_err, 0);
}

/* Whitespace before a value is not kept by the parser, so this head is small in memory yet
 * over the limit on the wire: the limit counts bytes received. */
static void httpd_head_limit_counts_bytes_on_the_wire(void **state)
{
    gw_httpd_limits_t lim = {.max_head = 2048};
    fixture_t *f = started(state, &lim);
    char req[4096];
    int k = snprintf(req, sizeof req, "GET /hello HTTP/1.1\r\nX-Pad:");
    memset(req + k, ' ', 3000);
    snprintf(req + k + 3000, sizeof req - k - 3000, "v\r\n\r\n");
    client_t *c = exchange_to_eof(f, req);
    assert_int_equal(status_of(c), 431);
}

static void httpd_huge_header_is_431(void **state)
{
    fixture_t *f = started(state, NULL);
    size_t n = 17 * 1024;
    char *req = malloc(n + 64);
    int k = snprintf(req, 64, "GET /hello HTTP/1.1\r\nX-Big: ");
    memset(req + k, 'a', n);
    memcpy(req + k + n, "\r\n\r\n", 5);
    client_t *c = exchange_to_eof(f, req);
    free(req);
    assert_int_equal(status_of(c), 431);
    gw_assert_contains(c->in, "Connection: close\r\n");
}

/* A request head of exactly SIZE bytes (malloc'd). */
static char *head_of_size(size_t size)
{
    const char *start = "GET /hello HTTP/1.1\r\nX-Pad: ";
    size_t k = strlen(start);
    char *req = malloc(size + 1);
    memcpy(req, start, k);
    memset(req + k, 'p', size - k - 4);
    memcpy(req + size - 4, "\r\n\r\n", 5);
    return req;
}

static void httpd_head_of_exactly_the_limit_is_served(void **state)
{
    gw_httpd_limits_t lim = {.max_head = 1024};
    fixture_t *f = started(state, &lim);
    char *req = head_of_size(1024);
    client_t *c = client_open(f);
    client_send(c, req);
    free(req);
    wait_responses(c, 1);
    assert_int_equal(status_of(c), 200);
    req = head_of_size(1025);
    client_t *d = exchange_to_eof(f, req);
    free(req);
    assert_int_equal(status_of(d), 431);
}

static void httpd_too_many_headers_is_431(void **state)
{
    gw_httpd_limits_t lim = {.max_headers = 4};
    fixture_t *f = started(state, &lim);
    client_t *c =
        exchange_to_eof(f, "GET /hello HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n");
    assert_int_equal(status_of(c), 431);
}

static void httpd_long_uri_is_414(void **state)
{
    fixture_t *f = started(state, NULL);
    char req[4096];
    int k = snprintf(req, sizeof req, "GET /");
    memset(req + k, 'u', 2100);
    snprintf(req + k + 2100, sizeof req - k - 2100, " HTTP/1.1\r\n\r\n");
    client_t *c = exchange_to_eof(f, req);
    assert_int_equal(status_of(c), 414);
    gw_assert_contains(c->in, "Connection: close\r\n");
}

static void httpd_http2_version_is_refused(void **state)
{
    fixture_t *f = started(state, NULL);
    client_t *c = exchange_to_eof(f, "GET /hello HTTP/2.0\r\n\r\n");
    int st = status_of(c);
    assert_true(st == 505 || st == 400);
    assert_int_equal(f->handled, 0);
}

static void httpd_slow_head_is_408(void **state)
{
    gw_httpd_limits_t lim = {.head_timeout_ms = 30};
    fixture_t *f = started(state, &lim);
    client_t *c = exchange_to_eof(f, "GET /hello HTTP/1.1\r\nHost: x\r\n");
    assert_int_equal(status_of(c), 408);
    gw_assert_contains(c->in, "Connection: close\r\n");
}

static void httpd_idle_connection_closes_silently(void **state)
{
    gw_httpd_limits_t lim = {.head_timeout_ms = 30};
    fixture_t *f = started(state, &lim);
    client_t *c = client_open(f);
    client_send(c, "GET /hello HTTP/1.1\r\n\r\n");
    wait_responses(c, 1);
    size_t before = c->len;
    run_until(f, is_eof, c); /* idle after a response: closed without a 408 */
    assert_int_equal(c->len, before);
    client_t *d = client_open(f); /* never sent anything */
    run_until(f, is_eof, d);
    assert_int_equal(d->len, 0);
}

static bool conns_is_one(void *arg)
{
    return gw_httpd_connections(((fixture_t *)arg)->srv) == 1;
}

static void httpd_connection_cap_closes_extra_connections(void **state)
{
    gw_httpd_limits_t lim = {.max_conns = 2};
    fixture_t *f = started(state, &lim);
    client_t *a = client_open(f), *b = client_open(f);
    client_send(a, "GET /hello HTTP/1.1\r\n\r\n");
    client_send(b, "GET /hello HTTP/1.1\r\n\r\n");
    wait_responses(a, 1);
    wait_responses(b, 1);
    client_t *c = client_open(f);
    run_until(f, is_eof, c);
    assert_int_equal(c->len, 0);
    assert_int_equal(gw_httpd_connections(f->srv), 2);
    /* when one leaves, a newcomer is served again */
    uv_close((uv_handle_t *)&a->tcp, client_closed);
    run_until(f, conns_is_one, f);
    client_t *d = client_open(f);
    client_send(d, "GET /hello HTTP/1.1\r\n\r\n");
    wait_responses(d, 1);
    assert_int_equal(status_of(d), 200);
}

static bool all_eof(void *arg)
{
    fixture_t *f = arg;
    for (size_t i = 0; i < f->nclients; i++)
        if (!f->clients[i]->eof)
            return false;
    return true;
}

static bool has_some_input(void *arg)
{
    return ((client_t *)arg)->len > 0;
}

static void httpd_stop_closes_every_connection(void **state)
{
    fixture_t *f = started(state, NULL);
    client_t *idle = client_open(f), *partial = client_open(f), *busy = client_open(f);
    client_open(f); /* connected, silent */
    client_send(idle, "GET /hello HTTP/1.1\r\n\r\n");
    wait_responses(idle, 1);
    client_send(partial, "GET /hel");
    client_send(busy, "GET /big HTTP/1.1\r\n\r\n");
    run_until(f, has_some_input, busy); /* its response is on the way */
    gw_httpd_stop(f->srv, on_stopped, f);
    f->srv = NULL;
    run_until(f, stopped, f);
    assert_int_equal(f->stop_done, 1);
    run_until(f, all_eof, f);
    /* the teardown then asserts uv_loop_close() == 0 */
}

static void httpd_stop_from_the_handler_drops_the_response(void **state)
{
    fixture_t *f = started(state, NULL);
    client_t *c = exchange_to_eof(f, "GET /stop HTTP/1.1\r\n\r\n");
    assert_int_equal(c->len, 0);
    assert_null(f->srv);
}

static void httpd_address_in_use_is_reported(void **state)
{
    fixture_t *f = started(state, NULL);
    int err = 0;
    gw_httpd_t *second = gw_httpd_start(&f->loop, &f->addr, NULL, handler, f, &err);
    assert_null(second);
    assert_int_equal(err, GW_EADDRINUSE);
}

static void httpd_resp_header_refuses_injection_and_overflow(void **state)
{
    (void)state;
    gw_httpd_resp_t r;
    memset(&r, 0, sizeof r);
    assert_int_equal(gw_httpd_resp_header(&r, "X-A", "a\r\nX-Evil: 1"), GW_EINVAL);
    assert_int_equal(gw_httpd_resp_header(&r, "X A", "a"), GW_EINVAL);
    assert_int_equal(gw_httpd_resp_header(&r, "content-length", "1"), GW_EINVAL);
    assert_int_equal(gw_httpd_resp_header(&r, "Connection", "keep-alive"), GW_EINVAL);
    assert_int_equal(r.extra_len, 0);
    char big[300];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(gw_httpd_resp_header(&r, "X-1", big), 0);
    assert_int_equal(gw_httpd_resp_header(&r, "X-2", big), GW_ENOMEM);
    assert_int_equal(r.extra_len, strlen("X-1: \r\n") + strlen(big));
}

static size_t mutate(uint64_t *rng, char *out, size_t cap)
{
    static const char *const seeds[] = {
        "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
        "HEAD /echo?a=b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET /hello HTTP/1.1\r\nA: b\r\n c\r\n\r\nGET /x HTTP/1.1\r\n\r\n",
    };
    size_t n;
    if (gw_rand_next(rng) % 4 == 0) { /* pure noise */
        n = gw_rand_next(rng) % cap;
        for (size_t i = 0; i < n; i++)
            out[i] = (char)gw_rand_next(rng);
        return n;
    }
    const char *s = seeds[gw_rand_next(rng) % (sizeof seeds / sizeof seeds[0])];
    n = strlen(s);
    memcpy(out, s, n);
    for (int k = (int)(gw_rand_next(rng) % 4); k >= 0; k--) {
        size_t at = gw_rand_next(rng) % n;
        switch (gw_rand_next(rng) % 3) {
        case 0: /* flip a byte */
            out[at] = (char)gw_rand_next(rng);
            break;
        case 1: /* cut */
            n = at;
            break;
        default: /* insert a byte */
            if (n + 1 < cap) {
                memmove(out + at + 1, out + at, n - at);
                out[at] = "\r\n :\0\x7f/?%"[gw_rand_next(rng) % 9];
                n++;
            }
        }
        if (n == 0)
            break;
    }
    return n;
}

/* Random and mutated requests; each client then half-closes, so every connection ends in
 * EOF whatever the server made of its bytes. Under ASan+UBSan this is the crash test. */
static void httpd_random_bytes_do_not_crash(void **state)
{
    gw_httpd_limits_t lim = {.head_timeout_ms = 500, .linger_ms = 500};
    fixture_t *f = started(state, &lim);
    uint64_t rng = 42;
    char buf[512];
    for (int i = 0; i < 300; i++) {
        size_t n = mutate(&rng, buf, sizeof buf);
        client_t *c = client_open(f);
        if (n > 0)
            client_send_n(c, buf, n);
        client_shutdown(c);
        run_until(f, is_eof, c);
        uv_close((uv_handle_t *)&c->tcp, client_closed);
        run_until(f, is_closed, c);
        run_until(f, conns_is_zero, f);
        f->nclients--;
        free(c);
    }
    client_t *ok = client_open(f);
    client_send(ok, "GET /hello HTTP/1.1\r\n\r\n");
    wait_responses(ok, 1);
    assert_int_equal(status_of(ok), 200);
}

/* gw_httpd_serve_memory: the connection's protocol without a socket (the fuzz target's way
 * in). Pipelined requests get their answers in order, the last one closes, and reads of one
 * byte give the same bytes as one read. */
static void httpd_serve_memory_answers_like_a_connection(void **state)
{
    (void)state;
    fixture_t f;
    memset(&f, 0, sizeof f);
    const char in[] = "GET /hello HTTP/1.1\r\n\r\n"
                      "GET /busy HTTP/1.1\r\n\r\n"
                      "HEAD /hello HTTP/1.1\r\nConnection: close\r\n\r\n"
                      "GET /never HTTP/1.1\r\n\r\n";
    char *out = NULL, *out1 = NULL;
    size_t n = 0, n1 = 0;
    assert_int_equal(gw_httpd_serve_memory(NULL, handler, &f, in, sizeof in - 1, 0, &out, &n), 1);
    assert_int_equal(f.handled, 3);
    assert_int_equal(gw_httpd_serve_memory(NULL, handler, &f, in, sizeof in - 1, 1, &out1, &n1), 1);
    assert_int_equal(n1, n);
    assert_memory_equal(out1, out, n);
    const char want[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\n"
                        "hello\n";
    assert_memory_equal(out, want, sizeof want - 1);
    assert_non_null(memmem(out, n, "HTTP/1.1 503 ", 13)); /* OUT is not a string */
    assert_non_null(memmem(out, n, "Retry-After: 7\r\n", 16));
    const char *last = memmem(out, n, "Connection: close\r\n\r\n", 21);
    assert_non_null(last); /* the HEAD answer: a head only, and the end */
    assert_int_equal(last + strlen("Connection: close\r\n\r\n") - out, (long)n);
    free(out);
    free(out1);
    /* a half-sent request waits for more */
    assert_int_equal(gw_httpd_serve_memory(NULL, handler, &f, "GET /hel", 8, 0, &out, &n), 0);
    assert_int_equal(n, 0);
    free(out);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

/* ---- no memory to accept with (failalloc.h: this binary is linked with --wrap) ------------- */

/* A plain socket connected to A (-1 when refused): connecting needs no loop turn (the
 * kernel completes it) and allocates nothing of ours. */
static int raw_connect(const gw_addr_t *a)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The server closed or reset the raw connection *FD (what it sent first is read and
 * dropped). */
static bool raw_ended(void *arg)
{
    char b[4096];
    ssize_t n;
    while ((n = recv(*(int *)arg, b, sizeof b, MSG_DONTWAIT)) > 0)
        ;
    return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
}

typedef struct {
    fixture_t *f;
    int fd;
} reconnect_t;

/* A connection to the server succeeds (the port may refuse while the listener is paused). */
static bool reconnected(void *arg)
{
    reconnect_t *r = arg;
    r->fd = raw_connect(&r->f->addr);
    return r->fd >= 0;
}

/* Neither the connection nor the refusal of it can be allocated. Left unaccepted, the
 * connection made libuv stop watching the listener: every later client waited in the
 * backlog for ever. Now the listener is closed (that client is reset) and listens again. */
static void httpd_accept_without_memory_pauses_then_serves_again(void **state)
{
    fixture_t *f = started(state, NULL);
    int fd = raw_connect(&f->addr);
    assert_true(fd >= 0);
    gw_failalloc_arm(1, true);
    run_until(f, raw_ended, &fd);
    gw_failalloc_disarm();
    close(fd);
    reconnect_t r = {f, -1};
    run_until(f, reconnected, &r);
    const char get[] = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_int_equal(send(r.fd, get, sizeof get - 1, 0), (ssize_t)(sizeof get - 1));
    run_until(f, raw_ended, &r.fd); /* the answer, then the close */
    assert_int_equal(f->handled, 1);
    close(r.fd);
}

static int disarm_teardown(void **state)
{
    gw_failalloc_disarm();
    return teardown(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(httpd_accept_without_memory_pauses_then_serves_again, setup,
                                        disarm_teardown),
        T(httpd_get_returns_body_with_content_length),
        cmocka_unit_test(httpd_serve_memory_answers_like_a_connection),
        T(httpd_keepalive_serves_two_requests_on_one_connection),
        T(httpd_pipelined_requests_answered_in_order),
        T(httpd_connection_close_is_honoured),
        T(httpd_http10_closes_unless_keepalive),
        T(httpd_handler_404_has_json_body),
        T(httpd_handler_headers_are_sent),
        T(httpd_handler_answering_nothing_is_500),
        T(httpd_handler_sees_path_query_and_headers),
        T(httpd_folded_header_value_has_no_line_break),
        T(httpd_204_has_neither_body_nor_length),
        T(httpd_head_sends_no_body),
        T(httpd_large_response_arrives_whole),
        T(httpd_garbage_is_400_and_closes),
        T(httpd_body_is_413_and_closes),
        T(httpd_chunked_body_is_413),
        T(httpd_empty_body_is_accepted),
        T(httpd_refusal_drains_input_until_the_client_closes),
        T(httpd_head_limit_counts_bytes_on_the_wire),
        T(httpd_huge_header_is_431),
        T(httpd_head_of_exactly_the_limit_is_served),
        T(httpd_too_many_headers_is_431),
        T(httpd_long_uri_is_414),
        T(httpd_http2_version_is_refused),
        T(httpd_slow_head_is_408),
        T(httpd_idle_connection_closes_silently),
        T(httpd_connection_cap_closes_extra_connections),
        T(httpd_stop_closes_every_connection),
        T(httpd_stop_from_the_handler_drops_the_response),
        T(httpd_address_in_use_is_reported),
        T(httpd_resp_header_refuses_injection_and_overflow),
        T(httpd_random_bytes_do_not_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
