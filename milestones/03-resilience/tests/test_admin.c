/* test_admin.c - the admin API's routes, methods and token over real loopback sockets, with
 * stub sources. Each request is sent with `Connection: close` by a client on the test's own
 * loop, which runs until the server closes; a deadline timer fails a test that would hang. */
#include "gwtest.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#include "03-resilience/admin.h"

#define DEADLINE_MS 5000
#define TOKEN "s3cr3t-t0ken"

typedef struct {
    uv_loop_t loop;
    uv_timer_t deadline;
    bool timed_out;
    gw_admin_t *admin;
    gw_addr_t addr;
    bool ready;
    bool metrics_fail, stats_fail;
    int metrics_calls, stats_calls, backends_calls, ready_calls;
    int reload_calls, config_calls;
    int reload_rc;       /* what src_reload returns */
    bool reload_no_body; /* src_reload leaves *BODY NULL */
    int stopped;
    bool stop_done;
} fixture_t;

/* ---- stub sources -------------------------------------------------------------------------- */

static void src_metrics(void *ctx, gw_prom_t *out)
{
    fixture_t *f = ctx;
    f->metrics_calls++;
    gw_prom_family(out, "gw_connections_total", "Connections accepted.", GW_PROM_COUNTER);
    gw_prom_sample_u64(out, "gw_connections_total", (const char *const[]){"listener", "edge", NULL},
                       42);
    if (f->metrics_fail) /* a second TYPE for one family: the builder refuses it */
        gw_prom_family(out, "gw_connections_total", "again", GW_PROM_COUNTER);
}

static json_t *src_stats(void *ctx)
{
    fixture_t *f = ctx;
    f->stats_calls++;
    return f->stats_fail ? NULL : json_pack("{s:i, s:s}", "connections", 42, "version", "x");
}

static json_t *src_backends(void *ctx)
{
    fixture_t *f = ctx;
    f->backends_calls++;
    return json_pack("{s:[{s:s, s:b, s:s, s:i, s:i}]}", "app", "address", "127.0.0.1:9001",
                     "healthy", 1, "breaker", "closed", "active", 3, "weight", 1);
}

static bool src_ready(void *ctx)
{
    fixture_t *f = ctx;
    f->ready_calls++;
    return f->ready;
}

/* ---- loop and client helpers --------------------------------------------------------------- */

static void on_deadline(uv_timer_t *t)
{
    ((fixture_t *)t->data)->timed_out = true;
}

static void run_until(fixture_t *f, bool *flag)
{
    f->timed_out = false;
    uv_timer_start(&f->deadline, on_deadline, DEADLINE_MS, 0);
    while (!*flag && !f->timed_out)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_timer_stop(&f->deadline);
    if (f->timed_out)
        fail_msg("deadline passed while waiting");
}

typedef struct {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    bool eof, closed;
    size_t len;
    char in[64 * 1024];
    char out[4096];
} client_t;

static void c_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    client_t *c = h->data;
    *buf = uv_buf_init(c->in + c->len, (unsigned)(sizeof c->in - c->len - 1));
}

static void c_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    client_t *c = s->data;
    if (nread < 0) {
        c->eof = true;
        uv_read_stop(s);
    } else {
        c->len += (size_t)nread;
        c->in[c->len] = '\0';
    }
}

static void c_written(uv_write_t *req, int status)
{
    (void)req;
    (void)status;
}

static void c_connected(uv_connect_t *req, int status)
{
    client_t *c = req->data;
    assert_int_equal(status, 0);
    uv_buf_t b = uv_buf_init(c->out, (unsigned)strlen(c->out));
    uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, c_written);
    uv_read_start((uv_stream_t *)&c->tcp, c_alloc, c_read);
}

static void c_closed(uv_handle_t *h)
{
    ((client_t *)h->data)->closed = true;
}

/* Sends "METHOD PATH HTTP/1.1" with AUTH (a whole header line, or NULL) and returns the
 * whole response (malloc'd, NUL-terminated). */
static char *fetch(fixture_t *f, const char *method, const char *path, const char *auth)
{
    client_t *c = calloc(1, sizeof *c);
    snprintf(c->out, sizeof c->out,
             "%s %s HTTP/1.1\r\nHost: admin\r\n%s%sConnection: close\r\n\r\n", method, path,
             auth ? auth : "", auth ? "\r\n" : "");
    uv_tcp_init(&f->loop, &c->tcp);
    c->tcp.data = c->creq.data = c;
    assert_int_equal(
        uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&f->addr.ss, c_connected), 0);
    run_until(f, &c->eof);
    uv_close((uv_handle_t *)&c->tcp, c_closed);
    run_until(f, &c->closed);
    char *text = strdup(c->in);
    free(c);
    return text;
}

static int status_of(const char *resp)
{
    int st = -1;
    sscanf(resp, "HTTP/1.1 %d ", &st);
    return st;
}

static const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    return b ? b + 4 : "";
}

/* ---- fixture ------------------------------------------------------------------------------- */

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    if (f == NULL || uv_loop_init(&f->loop) != 0)
        return -1;
    uv_timer_init(&f->loop, &f->deadline);
    f->deadline.data = f;
    f->ready = true;
    *state = f;
    return 0;
}

static void on_stopped(void *arg)
{
    fixture_t *f = arg;
    f->stopped++;
    f->stop_done = true;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (f->admin != NULL) {
        gw_admin_stop(f->admin, on_stopped, f);
        run_until(f, &f->stop_done);
    }
    gw_test_close_loop(&f->loop);
    free(f);
    return 0;
}

static const gw_admin_sources_t *stub_sources(fixture_t *f)
{
    static gw_admin_sources_t src;
    src = (gw_admin_sources_t){.metrics = src_metrics,
                               .stats = src_stats,
                               .backends = src_backends,
                               .ready = src_ready,
                               .ctx = f};
    return &src;
}

/* Milestone 05's sources: a reload that answers with its generation (or its errors), and
 * the configuration text. */
static int src_reload(void *ctx, json_t **body)
{
    fixture_t *f = ctx;
    f->reload_calls++;
    if (f->reload_no_body)
        *body = NULL;
    else if (f->reload_rc == 0)
        *body = json_pack("{s:i, s:i}", "generation", 2, "changes", 3);
    else
        *body = json_pack("{s:[{s:s, s:i, s:i, s:s}]}", "errors", "file", "gw.yaml", "line", 4,
                          "col", 7, "message", "bad value");
    return f->reload_rc;
}

static char *src_config(void *ctx, size_t *len)
{
    fixture_t *f = ctx;
    f->config_calls++;
    *len = strlen("workers: 2\n");
    return strdup("workers: 2\n");
}

static const gw_admin_sources_t *sources_05(fixture_t *f)
{
    static gw_admin_sources_t src;
    src = (gw_admin_sources_t){src_metrics, src_stats,  src_backends, src_ready,
                               f,           src_reload, src_config};
    return &src;
}

static fixture_t *start(void **state, const char *token, const gw_admin_sources_t *src)
{
    fixture_t *f = *state;
    gw_addr_t any;
    const char *why;
    assert_int_equal(gw_addr_parse("127.0.0.1:0", false, true, &any, &why), 0);
    int err = 0;
    f->admin = gw_admin_start(&f->loop, &any, token, src ? src : stub_sources(f), &err);
    assert_non_null(f->admin);
    assert_int_equal(gw_admin_address(f->admin, &f->addr), 0);
    return f;
}

/* ---- routes -------------------------------------------------------------------------------- */

static void admin_metrics_serves_prometheus_text(void **state)
{
    fixture_t *f = start(state, NULL, NULL);
    char *r = fetch(f, "GET", "/metrics", NULL);
    assert_int_equal(status_of(r), 200);
    gw_assert_contains(r, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n");
    gw_assert_contains(body_of(r), "# TYPE gw_connections_total counter\n"
                                   "gw_connections_total{listener=\"edge\"} 42\n");
    assert_int_equal(f->metrics_calls, 1);
    free(r);
}

static void admin_metrics_source_error_is_500(void **state)
{
    fixture_t *f = start(state, NULL, NULL);
    f->metrics_fail = true;
    char *r = fetch(f, "GET", "/metrics", NULL);
    assert_int_equal(status_of(r), 500);
    assert_null(strstr(r, "gw_connections_total")); /* no partial exposition */
    free(r);
}

static void admin_stats_serves_json(void **state)
{
    fixture_t *f = start(state, NULL, NULL);
    char *r = fetch(f, "GET", "/stats", NULL);
    assert_int_equal(status_of(r), 200);
    gw_assert_contains(r, "\r\nContent-Type: application/json\r\n");
    json_error_t e;
    json_t *j = json_loads(body_of(r), 0, &e);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "connections")), 42);
    json_decref(j);
    free(r);
}

static void admin_stats_source_failure_is_500(void **state)
{
    fixture_t *f = start(state, NULL, NULL);
    f->stats_fail = true;
    char *r = fetch(f, "GET", "/stats", NULL);
    assert_int_equal(status_of(r), 500);
    free(r);
}

static void admin_backends_serves_json(void **state)
{
    fixture_t *f = start(state, NULL, NULL);
    char *r = fetch(f, "GET", "/backends", NULL);
    assert_int_equal(status_of(r), 200);
    gw_assert_contains(r, "\r\nContent-Type: application/json\r\n");
    json_error_t e;
    json_t *j = json_loads(body_of(r), 0, &e);
    assert_non_null(j);
    json_t *b = json_array_get(json_object_get(j, "app"), 0);
    assert_string_equal(json_string_value(json_object_get(b, "address")), "127.0.0.1:9001");
    assert_true(json_is_true(json_object_get(b, "healthy")));
    json_decref(j);
    assert_int_equal(f->backends_calls, 1);
    free(r);
}

static void admin_healthz_is_ok(void **state)
{
    fixture_t *f = start(state, NULL, NULL);
    char *r = fetch(f, "GET", "/healthz", NULL);
    assert_int_equal(status_of(r), 200);
    assert_string_equal(body_of(r), "{\"status\":\"ok\"}\n");
    free(r);
}

static void admin_readyz_is_200_when_ready(void **state)
{
    fixture_t *f = start(state, NULL, NULL);
    char *r = fetch(f, "GET", "/readyz", NULL);
    assert_int_equal(status_of(r), 200);
    assert_string_equal(body_of(r), "{\"ready\":true}\n");
    free(r);
}

static void admin_readyz_is_503_when_not_ready(void **state)
{
    fixture_t *f = start(state, NULL, NULL);
    f->ready = false;
    char *r = fetch(f, "GET", "/readyz", NULL);
    assert_int_equal(status_of(r), 503);
    assert_string_equal(body_of(r), "{\"ready\":false}\n");
    assert_int_equal(f->ready_calls, 1);
    free(r);
}

static void admin_missing_sources_answer_defaults(void **state)
{
    static const gw_admin_sources_t none = {0};
    fixture_t *f = start(state, NULL, &none);
    char *r = fetch(f, "GET", "/metrics", NULL);
    assert_int_equal(status_of(r), 200);
    gw_assert_contains(r, "Content-Length: 0\r\n");
    free(r);
    r = fetch(f, "GET", "/stats", NULL);
    assert_string_equal(body_of(r), "{}");
    free(r);
    r = fetch(f, "GET", "/readyz", NULL);
    assert_int_equal(status_of(r), 200);
    free(r);
}

static void admin_unknown_path_is_404(void **state)
{
    fixture_t *f = start(state, NULL, NULL);
    char *r = fetch(f, "GET", "/metrics/extra", NULL);
    assert_int_equal(status_of(r), 404);
    assert_string_equal(body_of(r), "{\"status\":404,\"error\":\"not found\"}");
    free(r);
}

static void admin_query_string_is_ignored_for_routing(void **state)
{
    fixture_t *f = start(state, NULL, NULL);
    char *r = fetch(f, "GET", "/healthz?verbose=1", NULL);
    assert_int_equal(status_of(r), 200);
    free(r);
}

static void admin_wrong_method_is_405_with_allow(void **state)
{
    fixture_t *f = start(state, NULL, NULL);
    static const char *const methods[] = {"POST", "PUT", "DELETE", "OPTIONS"};
    for (size_t i = 0; i < 4; i++) {
        char *r = fetch(f, methods[i], "/stats", NULL);
        assert_int_equal(status_of(r), 405);
        gw_assert_contains(r, "\r\nAllow: GET, HEAD\r\n");
        free(r);
    }
    assert_int_equal(f->stats_calls, 0);
}

static void admin_head_has_no_body(void **state)
{
    fixture_t *f = start(state, NULL, NULL);
    char *r = fetch(f, "HEAD", "/stats", NULL);
    assert_int_equal(status_of(r), 200);
    assert_null(strstr(r, "Content-Length: 0\r\n")); /* the length of the GET body */
    gw_assert_contains(r, "Content-Length: ");
    assert_string_equal(body_of(r), "");
    free(r);
}

/* ---- the token ----------------------------------------------------------------------------- */

static void admin_token_missing_is_401(void **state)
{
    fixture_t *f = start(state, TOKEN, NULL);
    char *r = fetch(f, "GET", "/metrics", NULL);
    assert_int_equal(status_of(r), 401);
    gw_assert_contains(r, "\r\nWWW-Authenticate: Bearer realm=\"gw-admin\"\r\n");
    assert_int_equal(f->metrics_calls, 0);
    free(r);
}

static void admin_token_wrong_is_401(void **state)
{
    fixture_t *f = start(state, TOKEN, NULL);
    static const char *const wrong[] = {
        "Authorization: Bearer s3cr3t-t0keN",   "Authorization: Bearer s3cr3t-t0ken2",
        "Authorization: Bearer s3cr3t-t0ke",    "Authorization: Basic czNjcjN0LXQwa2Vu",
        "Authorization: s3cr3t-t0ken",          "Authorization: Bearer",
        "X-Authorization: Bearer s3cr3t-t0ken",
    };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        char *r = fetch(f, "GET", "/stats", wrong[i]);
        if (status_of(r) != 401)
            fail_msg("accepted: %s", wrong[i]);
        free(r);
    }
    assert_int_equal(f->stats_calls, 0);
}

static void admin_token_right_is_200(void **state)
{
    fixture_t *f = start(state, TOKEN, NULL);
    char *r = fetch(f, "GET", "/stats", "Authorization: Bearer " TOKEN);
    assert_int_equal(status_of(r), 200);
    free(r);
    r = fetch(f, "GET", "/readyz", "authorization: bearer " TOKEN); /* case-insensitive */
    assert_int_equal(status_of(r), 200);
    free(r);
}

static void admin_healthz_needs_no_token(void **state)
{
    fixture_t *f = start(state, TOKEN, NULL);
    char *r = fetch(f, "GET", "/healthz", NULL);
    assert_int_equal(status_of(r), 200);
    free(r);
}

static void admin_unknown_path_without_token_is_401(void **state)
{
    fixture_t *f = start(state, TOKEN, NULL);
    char *r = fetch(f, "GET", "/secret-route", NULL);
    assert_int_equal(status_of(r), 401);
    free(r);
    r = fetch(f, "GET", "/secret-route", "Authorization: Bearer " TOKEN);
    assert_int_equal(status_of(r), 404);
    free(r);
}

static void admin_empty_token_is_refused(void **state)
{
    fixture_t *f = *state;
    gw_addr_t any;
    const char *why;
    gw_addr_parse("127.0.0.1:0", false, true, &any, &why);
    int err = 0;
    assert_null(gw_admin_start(&f->loop, &any, "", stub_sources(f), &err));
    assert_int_equal(err, GW_EINVAL);
}

static void admin_address_in_use_is_reported(void **state)
{
    fixture_t *f = start(state, NULL, NULL);
    int err = 0;
    assert_null(gw_admin_start(&f->loop, &f->addr, NULL, stub_sources(f), &err));
    assert_int_equal(err, GW_EADDRINUSE);
}

static void admin_token_equal_compares_whole_strings(void **state)
{
    (void)state;
    assert_true(gw_admin_token_equal("abc", 3, "abc", 3));
    assert_false(gw_admin_token_equal("abd", 3, "abc", 3));
    assert_false(gw_admin_token_equal("ab", 2, "abc", 3));
    assert_false(gw_admin_token_equal("abcd", 4, "abc", 3));
    assert_false(gw_admin_token_equal("", 0, "abc", 3));
    assert_false(gw_admin_token_equal("abc\0", 4, "abc", 3)); /* a NUL is a byte too */
    assert_true(gw_admin_token_equal("", 0, "", 0));
}

static void admin_stop_runs_done_once(void **state)
{
    fixture_t *f = start(state, NULL, NULL);
    char *r = fetch(f, "GET", "/healthz", NULL);
    free(r);
    gw_admin_stop(f->admin, on_stopped, f);
    f->admin = NULL;
    run_until(f, &f->stop_done);
    assert_int_equal(f->stopped, 1);
}

/* gw_admin_serve_memory (the fuzz target's way in) answers as a connection does: the token is
 * checked before the route, /healthz is open, and an empty token is refused. */
static void admin_serve_memory_checks_the_token(void **state)
{
    (void)state;
    fixture_t f;
    memset(&f, 0, sizeof f);
    f.ready = true;
    gw_admin_sources_t src = {.metrics = src_metrics,
                              .stats = src_stats,
                              .backends = src_backends,
                              .ready = src_ready,
                              .ctx = &f};
    const char in[] = "GET /stats HTTP/1.1\r\n\r\n"
                      "GET /healthz HTTP/1.1\r\n\r\n"
                      "GET /stats HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n\r\n";
    char *out = NULL;
    size_t n = 0;
    assert_int_equal(gw_admin_serve_memory("s3cret", &src, in, sizeof in - 1, 5, &out, &n), 0);
    assert_true(n > 13 && memcmp(out, "HTTP/1.1 401 ", 13) == 0); /* OUT is not a string */
    assert_non_null(memmem(out, n, "{\"status\":\"ok\"}", 15));
    assert_non_null(memmem(out, n, "{\"connections\":42,\"version\":\"x\"}", 32));
    assert_int_equal(f.stats_calls, 1);
    free(out);
    assert_int_equal(gw_admin_serve_memory("", &src, in, sizeof in - 1, 0, &out, &n), GW_EINVAL);
}

/* ---- milestone 05: /reload and /config ------------------------------------------------------ */

static void admin_post_reload_calls_source_and_answers_its_json(void **state)
{
    fixture_t *f = start(state, NULL, sources_05(*state));
    char *r = fetch(f, "POST", "/reload", NULL);
    assert_int_equal(status_of(r), 200);
    gw_assert_contains(r, "\r\nContent-Type: application/json\r\n");
    assert_string_equal(body_of(r), "{\"generation\":2,\"changes\":3}");
    assert_int_equal(f->reload_calls, 1);
    free(r);
}

static void admin_post_reload_refused_is_400_with_errors(void **state)
{
    fixture_t *f = start(state, NULL, sources_05(*state));
    f->reload_rc = -1;
    char *r = fetch(f, "POST", "/reload", NULL);
    assert_int_equal(status_of(r), 400);
    gw_assert_contains(body_of(r), "\"line\":4,\"col\":7");
    assert_int_equal(f->reload_calls, 1);
    free(r);
}

static void admin_post_reload_without_answer_is_500(void **state)
{
    fixture_t *f = start(state, NULL, sources_05(*state));
    f->reload_no_body = true;
    char *r = fetch(f, "POST", "/reload", NULL);
    assert_int_equal(status_of(r), 500);
    free(r);
}

/* Reloading changes things: never on GET (a prefetching browser or a crawler would). */
static void admin_get_reload_is_405_with_allow_post(void **state)
{
    fixture_t *f = start(state, NULL, sources_05(*state));
    static const char *const methods[] = {"GET", "HEAD", "PUT", "DELETE"};
    for (size_t i = 0; i < 4; i++) {
        char *r = fetch(f, methods[i], "/reload", NULL);
        assert_int_equal(status_of(r), 405);
        gw_assert_contains(r, "\r\nAllow: POST\r\n");
        free(r);
    }
    assert_int_equal(f->reload_calls, 0);
}

/* gw03 and gw04 set neither source: the routes do not exist there. */
static void admin_reload_and_config_are_404_without_source(void **state)
{
    fixture_t *f = start(state, NULL, NULL);
    char *r = fetch(f, "POST", "/reload", NULL);
    assert_int_equal(status_of(r), 404);
    free(r);
    r = fetch(f, "GET", "/config", NULL);
    assert_int_equal(status_of(r), 404);
    free(r);
}

static void admin_reload_requires_token_when_set(void **state)
{
    fixture_t *f = start(state, TOKEN, sources_05(*state));
    char *r = fetch(f, "POST", "/reload", NULL);
    assert_int_equal(status_of(r), 401);
    free(r);
    r = fetch(f, "POST", "/reload", "Authorization: Bearer wrong-token-0000");
    assert_int_equal(status_of(r), 401);
    free(r);
    assert_int_equal(f->reload_calls, 0);
    r = fetch(f, "POST", "/reload", "Authorization: Bearer " TOKEN);
    assert_int_equal(status_of(r), 200);
    assert_int_equal(f->reload_calls, 1);
    free(r);
    r = fetch(f, "GET", "/config", NULL);
    assert_int_equal(status_of(r), 401);
    assert_int_equal(f->config_calls, 0);
    free(r);
}

static void admin_get_config_serves_text(void **state)
{
    fixture_t *f = start(state, NULL, sources_05(*state));
    char *r = fetch(f, "GET", "/config", NULL);
    assert_int_equal(status_of(r), 200);
    gw_assert_contains(r, "\r\nContent-Type: text/plain; charset=utf-8\r\n");
    assert_string_equal(body_of(r), "workers: 2\n");
    free(r);
    r = fetch(f, "HEAD", "/config", NULL);
    assert_int_equal(status_of(r), 200);
    assert_string_equal(body_of(r), "");
    free(r);
    r = fetch(f, "POST", "/config", NULL);
    assert_int_equal(status_of(r), 405);
    gw_assert_contains(r, "\r\nAllow: GET, HEAD\r\n");
    free(r);
    assert_int_equal(f->config_calls, 2);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(admin_serve_memory_checks_the_token),
        T(admin_metrics_serves_prometheus_text),
        T(admin_post_reload_calls_source_and_answers_its_json),
        T(admin_post_reload_refused_is_400_with_errors),
        T(admin_post_reload_without_answer_is_500),
        T(admin_get_reload_is_405_with_allow_post),
        T(admin_reload_and_config_are_404_without_source),
        T(admin_reload_requires_token_when_set),
        T(admin_get_config_serves_text),
        T(admin_metrics_source_error_is_500),
        T(admin_stats_serves_json),
        T(admin_stats_source_failure_is_500),
        T(admin_backends_serves_json),
        T(admin_healthz_is_ok),
        T(admin_readyz_is_200_when_ready),
        T(admin_readyz_is_503_when_not_ready),
        T(admin_missing_sources_answer_defaults),
        T(admin_unknown_path_is_404),
        T(admin_query_string_is_ignored_for_routing),
        T(admin_wrong_method_is_405_with_allow),
        T(admin_head_has_no_body),
        T(admin_token_missing_is_401),
        T(admin_token_wrong_is_401),
        T(admin_token_right_is_200),
        T(admin_healthz_needs_no_token),
        T(admin_unknown_path_without_token_is_401),
        T(admin_empty_token_is_refused),
        T(admin_address_in_use_is_reported),
        T(admin_token_equal_compares_whole_strings),
        T(admin_stop_runs_done_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
