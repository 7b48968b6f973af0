/* test_health.c - active health checks: the rise/fall rules result by result, the status
 * line parser and the timers' jitter as pure functions, then the checker against real
 * loopback servers running on the test's own uv loop. No sleeps: a test runs the loop
 * until the observer has seen the number of checks it wants, and a deadline timer fails
 * the test instead of letting it hang. */
#include "gwtest.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "log.h"

#include "02-lb/backend.h"
#include "02-lb/health.h"

/* ---- the state machine ----------------------------------------------------------------- */

/* Feeds PATTERN ('S' passed, 'F' failed) to F and returns the states after each result
 * ('H' healthy, 'U' unhealthy) in OUT; *CHANGES counts the flips reported. */
static void drive(gw_hc_fsm_t *f, const char *pattern, unsigned rise, unsigned fall, char *out,
                  int *changes)
{
    *changes = 0;
    for (size_t i = 0; pattern[i]; i++) {
        *changes += gw_hc_fsm_observe(f, pattern[i] == 'S', rise, fall);
        out[i] = f->healthy ? 'H' : 'U';
        out[i + 1] = '\0';
    }
}

static void hc_fsm_starts_healthy(void **state)
{
    (void)state;
    gw_hc_fsm_t f;
    gw_hc_fsm_init(&f, true);
    assert_true(f.healthy);
    assert_int_equal(f.successes, 0);
    assert_int_equal(f.failures, 0);
}

static void hc_fsm_unhealthy_after_exactly_fall_failures(void **state)
{
    (void)state;
    gw_hc_fsm_t f;
    char out[16];
    int changes;
    gw_hc_fsm_init(&f, true);
    drive(&f, "FFFF", 2, 3, out, &changes);
    assert_string_equal(out, "HHUU");
    assert_int_equal(changes, 1);
}

static void hc_fsm_healthy_after_exactly_rise_successes(void **state)
{
    (void)state;
    gw_hc_fsm_t f;
    char out[16];
    int changes;
    gw_hc_fsm_init(&f, false);
    drive(&f, "SSS", 2, 3, out, &changes);
    assert_string_equal(out, "UHH");
    assert_int_equal(changes, 1);
}

/* The point of thresholds: isolated blips, either way, change nothing. */
static void hc_fsm_single_blip_does_not_flap(void **state)
{
    (void)state;
    gw_hc_fsm_t f;
    char out[16];
    int changes;
    gw_hc_fsm_init(&f, true);
    drive(&f, "FFSFFSFF", 2, 3, out, &changes);
    assert_string_equal(out, "HHHHHHHH");
    assert_int_equal(changes, 0);
    gw_hc_fsm_init(&f, false);
    drive(&f, "SFSFS", 2, 3, out, &changes);
    assert_string_equal(out, "UUUUU");
    assert_int_equal(changes, 0);
}

/* A full cycle: down after `fall`, back after `rise`, down again after `fall`. */
static void hc_fsm_full_cycle_as_a_sequence(void **state)
{
    (void)state;
    gw_hc_fsm_t f;
    char out[32];
    int changes;
    gw_hc_fsm_init(&f, true);
    drive(&f, "SFFFSFSSFFSFFF", 2, 3, out, &changes);
    assert_string_equal(out, "HHHUUUUHHHHHHU");
    assert_int_equal(changes, 3);
}

static void hc_fsm_rise_fall_one_flips_on_every_change(void **state)
{
    (void)state;
    gw_hc_fsm_t f;
    char out[16];
    int changes;
    gw_hc_fsm_init(&f, true);
    drive(&f, "FSFFSS", 1, 1, out, &changes);
    assert_string_equal(out, "UHUUHH");
    assert_int_equal(changes, 4);
}

static void hc_fsm_zero_thresholds_act_as_one(void **state)
{
    (void)state;
    gw_hc_fsm_t f;
    char out[16];
    int changes;
    gw_hc_fsm_init(&f, true);
    drive(&f, "FS", 0, 0, out, &changes);
    assert_string_equal(out, "UH");
    assert_int_equal(changes, 2);
}

/* ---- the status line parser ------------------------------------------------------------ */

static int parse(const char *s, unsigned *status)
{
    return gw_hc_parse_status(s, strlen(s), status);
}

static void hc_parse_status_complete_line(void **state)
{
    (void)state;
    unsigned st = 0;
    assert_int_equal(parse("HTTP/1.1 200 OK\r\nServer: x\r\n", &st), 17);
    assert_int_equal(st, 200);
    assert_int_equal(parse("HTTP/1.0 503\r\n", &st), 14); /* no reason phrase */
    assert_int_equal(st, 503);
    assert_int_equal(parse("HTTP/1.1 204 No\tContent\n", &st), 24); /* bare LF */
    assert_int_equal(st, 204);
}

static void hc_parse_status_partial_needs_more(void **state)
{
    (void)state;
    unsigned st = 0;
    assert_int_equal(parse("", &st), 0);
    assert_int_equal(parse("HTTP/1.", &st), 0);
    assert_int_equal(parse("HTTP/1.1 20", &st), 0);
    assert_int_equal(parse("HTTP/1.1 200 OK", &st), 0);
    assert_int_equal(parse("HTTP/1.1 200 OK\r", &st), 0);
}

/* Another protocol fails at its first wrong byte, not at the timeout. */
static void hc_parse_status_rejects_garbage_early(void **state)
{
    (void)state;
    unsigned st = 0;
    assert_int_equal(parse("SSH-", &st), GW_EINVAL);
    assert_int_equal(parse("HTTP/2 200\r\n", &st), GW_EINVAL);
    assert_int_equal(parse("HTTP/1.1 2x0 OK\r\n", &st), GW_EINVAL);
    assert_int_equal(parse("HTTP/1.1 200OK\r\n", &st), GW_EINVAL);
    assert_int_equal(parse("HTTP/1.1 200 O\rK\r\n", &st), GW_EINVAL);
    assert_int_equal(parse("HTTP/1.1 200 \x01\r\n", &st), GW_EINVAL);
    assert_int_equal(parse("http/1.1 200 OK\r\n", &st), GW_EINVAL);
}

/* ---- jitter ---------------------------------------------------------------------------- */

static void hc_delay_first_spreads_over_interval(void **state)
{
    (void)state;
    uint64_t rng = 42, lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t d = gw_hc_delay(1000, true, &rng);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    assert_true(hi < 1000);
    assert_true(lo < 50 && hi > 950);
}

static void hc_delay_jitter_within_ten_percent(void **state)
{
    (void)state;
    uint64_t rng = 42, lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t d = gw_hc_delay(1000, false, &rng);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    assert_true(lo >= 900 && hi <= 1100);
    assert_true(lo < 920 && hi > 1080); /* it does vary over the whole range */
}

static void hc_delay_same_seed_repeats(void **state)
{
    (void)state;
    uint64_t a = 7, b = 7, c = 8;
    bool differs = false;
    for (int i = 0; i < 10; i++) {
        uint64_t x = gw_hc_delay(5000, i == 0, &a);
        assert_int_equal(x, gw_hc_delay(5000, i == 0, &b));
        differs |= x != gw_hc_delay(5000, i == 0, &c);
    }
    assert_true(differs);
}

/* ---- the checker against real sockets -------------------------------------------------- */

#define DEADLINE_MS 5000 /* a test that takes this long has failed */
#define INTERVAL_MS 20
#define OK_200 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
#define BAD_503 "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"

typedef enum {
    SRV_REPLY,  /* reads the request head, then writes `reply` and keeps the connection */
    SRV_GREET,  /* writes `reply` as soon as it accepts (a protocol that speaks first) */
    SRV_SILENT, /* accepts and never writes */
    SRV_CLOSE,  /* accepts and closes at once */
} srv_mode_t;

typedef struct fixture_s fixture_t;

typedef struct sconn_s {
    uv_tcp_t tcp;
    uv_write_t wreq;
    fixture_t *f;
    struct sconn_s *next;
    char head[512];
    size_t len;
    bool replied;
    bool raw; /* the first connection: its bytes go to f->raw too */
} sconn_t;

struct fixture_s {
    uv_loop_t loop;
    uv_timer_t deadline, poke; /* poke: a test's own event (e.g. stop mid-connect) */
    bool timed_out, stopped;
    /* the server */
    uv_tcp_t listener;
    bool listening;
    srv_mode_t mode;
    const char *reply;
    sconn_t *conns;
    unsigned accepted, live, max_live;
    char first_request[512];
    bool raw_taken; /* the first connection's first bytes, NULs and all (its sconn's `raw`) */
    char raw[128];
    size_t raw_len;
    bool stop_on_accept;
    int hole_fds[3]; /* blackhole: listener + two fillers, -1 when unused */
    /* the checker */
    gw_backend_t b;
    gw_backend_t *ptrs[1];
    gw_hc_cfg_t cfg;
    gw_hc_t *hc;
    unsigned stop_after; /* stop everything once this many checks finished */
    unsigned checks, passed, failed, changes, first_change, done_calls;
    gw_hc_result_t last;
    char last_why[128];
};

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    if (f == NULL || uv_loop_init(&f->loop) != 0) {
        free(f);
        return -1;
    }
    f->hole_fds[0] = f->hole_fds[1] = f->hole_fds[2] = -1;
    f->cfg = (gw_hc_cfg_t){.type = GW_HC_TCP,
                           .interval_ms = INTERVAL_MS,
                           .timeout_ms = 1000,
                           .status_lo = 200,
                           .status_hi = 399,
                           .rise = 2,
                           .fall = 3};
    gw_log_setup(GW_LOG_ERROR, GW_LOG_PLAIN); /* transitions log warnings: keep output readable */
    *state = f;
    return 0;
}

static void sconn_close(sconn_t *c);

static int teardown(void **state)
{
    fixture_t *f = *state;
    /* A test cut short (a failed assert, a handout's stub) left its server connections
     * open: close them through their own callback, which frees them. */
    for (sconn_t *c = f->conns; c != NULL; c = c->next)
        sconn_close(c);
    gw_test_close_loop(&f->loop);
    for (int i = 0; i < 3; i++)
        if (f->hole_fds[i] >= 0)
            close(f->hole_fds[i]);
    free(f);
    gw_log_setup(GW_LOG_INFO, GW_LOG_PLAIN);
    return 0;
}

static void count_handle(uv_handle_t *h, void *arg)
{
    (void)h;
    (*(unsigned *)arg)++;
}

static unsigned handles_on(uv_loop_t *loop)
{
    unsigned n = 0;
    uv_walk(loop, count_handle, &n);
    return n;
}

static void use_backend(fixture_t *f, const struct sockaddr_in *sin)
{
    gw_addr_t a = {0};
    memcpy(&a.ss, sin, sizeof *sin);
    a.len = sizeof *sin;
    gw_backend_init(&f->b, &a);
    f->ptrs[0] = &f->b;
}

/* ---- the test server ---- */

static void on_sconn_closed(uv_handle_t *h)
{
    sconn_t *c = h->data;
    fixture_t *f = c->f;
    for (sconn_t **pp = &f->conns; *pp != NULL; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    f->live--;
    free(c);
}

static void sconn_close(sconn_t *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_sconn_closed);
}

static void on_sconn_written(uv_write_t *req, int status)
{
    (void)req;
    (void)status;
}

static void sconn_reply(sconn_t *c)
{
    uv_buf_t buf = uv_buf_init((char *)c->f->reply, (unsigned)strlen(c->f->reply));
    c->replied = true;
    assert_int_equal(uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &buf, 1, on_sconn_written), 0);
}

static void on_sconn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    sconn_t *c = h->data;
    (void)suggested;
    if (c->len + 1 >= sizeof c->head) /* keep reading, forget the excess */
        c->len = 0;
    *buf = uv_buf_init(c->head + c->len, (unsigned)(sizeof c->head - 1 - c->len));
}

static void on_sconn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    sconn_t *c = s->data;
    fixture_t *f = c->f;
    (void)buf;
    if (nread < 0) {
        sconn_close(c);
        return;
    }
    if (!f->raw_taken) /* not a pointer: a later connection may get the same memory */
        f->raw_taken = c->raw = true;
    size_t room = sizeof f->raw - f->raw_len, n = (size_t)nread < room ? (size_t)nread : room;
    if (c->raw) {
        memcpy(f->raw + f->raw_len, c->head + c->len, n);
        f->raw_len += n;
    }
    c->len += (size_t)nread;
    c->head[c->len] = '\0';
    if (f->mode == SRV_REPLY && !c->replied && strstr(c->head, "\r\n\r\n") != NULL) {
        if (f->first_request[0] == '\0')
            snprintf(f->first_request, sizeof f->first_request, "%s", c->head);
        sconn_reply(c);
    }
}

static void stop_all(fixture_t *f);

static void on_server_conn(uv_stream_t *l, int status)
{
    fixture_t *f = l->data;
    assert_int_equal(status, 0);
    sconn_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->f = f;
    uv_tcp_init(&f->loop, &c->tcp);
    c->tcp.data = c;
    c->next = f->conns;
    f->conns = c;
    f->accepted++;
    if (++f->live > f->max_live)
        f->max_live = f->live;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
    if (f->mode == SRV_CLOSE) {
        sconn_close(c);
        return;
    }
    if (f->mode == SRV_GREET)
        sconn_reply(c);
    assert_int_equal(uv_read_start((uv_stream_t *)&c->tcp, on_sconn_alloc, on_sconn_read), 0);
    if (f->stop_on_accept)
        stop_all(f);
}

/* Starts the server on a free loopback port and points the backend at it. */
static void server_start(fixture_t *f, srv_mode_t mode, const char *reply)
{
    struct sockaddr_in sin;
    int len = sizeof sin;
    f->mode = mode;
    f->reply = reply;
    assert_int_equal(uv_tcp_init(&f->loop, &f->listener), 0);
    f->listener.data = f;
    f->listening = true;
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &sin), 0);
    assert_int_equal(uv_tcp_bind(&f->listener, (const struct sockaddr *)&sin, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&f->listener, 64, on_server_conn), 0);
    assert_int_equal(uv_tcp_getsockname(&f->listener, (struct sockaddr *)&sin, &len), 0);
    use_backend(f, &sin);
}

/* A port nobody listens on: bound, taken, closed. */
static void use_refused_port(fixture_t *f)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    use_backend(f, &sin);
}

/* A port whose connects never complete (DESIGN.md): a loopback listener with backlog 0
 * whose accept queue two fillers have taken, so the kernel drops every further SYN. */
static void use_blackhole(fixture_t *f)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    int l = f->hole_fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(l >= 0);
    assert_int_equal(bind(l, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(l, 0), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&sin, &len), 0);
    for (int i = 1; i <= 2; i++) {
        f->hole_fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        assert_true(f->hole_fds[i] >= 0);
        connect(f->hole_fds[i], (struct sockaddr *)&sin, sizeof sin); /* EINPROGRESS */
    }
    /* The first filler takes the queue's one slot: wait until it is connected. */
    struct pollfd p = {.fd = f->hole_fds[1], .events = POLLOUT};
    assert_int_equal(poll(&p, 1, 2000), 1);
    use_backend(f, &sin);
}

/* ---- running the checker ---- */

static void on_closed_noop(uv_handle_t *h)
{
    (void)h;
}

static void on_hc_done(void *arg)
{
    fixture_t *f = arg;
    f->done_calls++;
}

/* Stops the checker, the server and the timers; the loop then runs out of handles. */
static void stop_all(fixture_t *f)
{
    if (f->stopped)
        return;
    f->stopped = true;
    if (f->hc != NULL) {
        gw_hc_stop(f->hc, on_hc_done, f);
        f->hc = NULL;
    }
    if (f->listening) {
        uv_close((uv_handle_t *)&f->listener, on_closed_noop);
        f->listening = false;
    }
    for (sconn_t *c = f->conns; c != NULL; c = c->next)
        sconn_close(c);
    uv_close((uv_handle_t *)&f->deadline, on_closed_noop);
    uv_close((uv_handle_t *)&f->poke, on_closed_noop);
}

static void on_deadline(uv_timer_t *t)
{
    fixture_t *f = t->data;
    f->timed_out = true;
    stop_all(f);
}

static void on_result(void *arg, const gw_hc_result_t *r)
{
    fixture_t *f = arg;
    assert_ptr_equal(r->backend, &f->b);
    assert_int_equal(r->index, 0);
    f->checks++;
    f->passed += r->ok;
    f->failed += !r->ok;
    f->changes += r->changed;
    if (r->changed && f->first_change == 0)
        f->first_change = f->checks;
    f->last = *r;
    snprintf(f->last_why, sizeof f->last_why, "%s", r->why);
    f->last.why = f->last_why;
    if (f->checks == f->stop_after)
        stop_all(f);
}

/* Starts a checker of TYPE on the fixture's backend that stops everything once STOP_AFTER
 * checks finished (0: never by itself), and arms the deadline. */
static void checks_start(fixture_t *f, gw_hc_type_t type, unsigned stop_after)
{
    f->cfg.type = type;
    f->stop_after = stop_after;
    uv_timer_init(&f->loop, &f->deadline);
    uv_timer_init(&f->loop, &f->poke);
    f->deadline.data = f->poke.data = f;
    uv_timer_start(&f->deadline, on_deadline, DEADLINE_MS, 0);
    f->hc = gw_hc_start(&f->loop, &f->cfg, f->ptrs, 1, "app", 42);
    assert_non_null(f->hc);
    gw_hc_set_observer(f->hc, on_result, f);
}

/* Runs the loop until everything was stopped, and checks that stopping left nothing. */
static void checks_run(fixture_t *f)
{
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_false(f->timed_out);
    assert_int_equal(f->done_calls, 1);
    assert_int_equal(handles_on(&f->loop), 0); /* gw_hc_stop closed everything */
}

static void run_checks(fixture_t *f, gw_hc_type_t type, unsigned stop_after)
{
    checks_start(f, type, stop_after);
    checks_run(f);
}

static int health_of(const fixture_t *f)
{
    return atomic_load(&f->b.health);
}

static void hc_tcp_listening_backend_stays_healthy(void **state)
{
    fixture_t *f = *state;
    server_start(f, SRV_SILENT, NULL);
    run_checks(f, GW_HC_TCP, 4);
    assert_int_equal(f->passed, 4);
    assert_int_equal(f->changes, 0);
    assert_int_equal(health_of(f), GW_HEALTH_HEALTHY);
}

static void hc_tcp_refused_backend_unhealthy_after_fall_checks(void **state)
{
    fixture_t *f = *state;
    use_refused_port(f);
    run_checks(f, GW_HC_TCP, 4);
    assert_int_equal(f->failed, 4);
    assert_int_equal(f->first_change, 3); /* fall = 3 */
    assert_int_equal(f->changes, 1);
    assert_int_equal(f->last.err, UV_ECONNREFUSED);
    assert_int_equal(health_of(f), GW_HEALTH_UNHEALTHY);
}

static void hc_tcp_connect_timeout_counts_as_failure(void **state)
{
    fixture_t *f = *state;
    use_blackhole(f);
    f->cfg.timeout_ms = 50;
    f->cfg.fall = 1;
    run_checks(f, GW_HC_TCP, 1);
    assert_int_equal(f->failed, 1);
    assert_int_equal(f->last.err, UV_ETIMEDOUT);
    gw_assert_contains(f->last_why, "connect timed out");
    assert_int_equal(health_of(f), GW_HEALTH_UNHEALTHY);
}

static void hc_http_503_becomes_unhealthy(void **state)
{
    fixture_t *f = *state;
    server_start(f, SRV_REPLY, BAD_503);
    run_checks(f, GW_HC_HTTP, 3);
    assert_int_equal(f->failed, 3);
    assert_int_equal(f->first_change, 3);
    assert_int_equal(f->last.status, 503);
    assert_int_equal(f->last.err, 0);
    assert_string_equal(f->last_why, "status 503");
    assert_int_equal(health_of(f), GW_HEALTH_UNHEALTHY);
}

static void hc_http_200_stays_healthy(void **state)
{
    fixture_t *f = *state;
    server_start(f, SRV_REPLY, OK_200);
    run_checks(f, GW_HC_HTTP, 4);
    assert_int_equal(f->passed, 4);
    assert_int_equal(f->changes, 0);
    assert_int_equal(f->last.status, 200);
    assert_int_equal(health_of(f), GW_HEALTH_HEALTHY);
}

/* The checker starts from the backend's health: a down backend needs `rise` passes. */
static void hc_http_200_returns_healthy_after_rise(void **state)
{
    fixture_t *f = *state;
    server_start(f, SRV_REPLY, OK_200);
    atomic_store(&f->b.health, GW_HEALTH_UNHEALTHY);
    run_checks(f, GW_HC_HTTP, 3);
    assert_int_equal(f->passed, 3);
    assert_int_equal(f->first_change, 2); /* rise = 2 */
    assert_int_equal(f->changes, 1);
    assert_int_equal(health_of(f), GW_HEALTH_HEALTHY);
}

static void hc_http_status_outside_range_fails(void **state)
{
    fixture_t *f = *state;
    server_start(f, SRV_REPLY, OK_200);
    f->cfg.status_lo = 204;
    f->cfg.status_hi = 204;
    run_checks(f, GW_HC_HTTP, 1);
    assert_int_equal(f->failed, 1);
    assert_int_equal(f->last.status, 200);
}

static void hc_http_sends_expected_request(void **state)
{
    fixture_t *f = *state;
    char want[256];
    server_start(f, SRV_REPLY, OK_200);
    f->cfg.path = "/healthz?full=1";
    run_checks(f, GW_HC_HTTP, 1);
    snprintf(want, sizeof want,
             "GET /healthz?full=1 HTTP/1.1\r\nHost: %s\r\nUser-Agent: gw-health\r\n"
             "Connection: close\r\n\r\n",
             f->b.name);
    assert_string_equal(f->first_request, want);
}

/* With proxy_protocol the check opens with a PROXY header the checker sends for itself:
 * v1 UNKNOWN, or v2 LOCAL with no addresses (16 bytes), then the request as before. */
static void hc_http_sends_proxy_header_first(void **state)
{
    static const char v2_local[16] = "\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00";
    for (unsigned version = 1; version <= 2; version++) {
        if (version == 2) { /* a fresh fixture: a new server, a new checker */
            teardown(state);
            assert_int_equal(setup(state), 0);
        }
        fixture_t *f = *state;
        server_start(f, SRV_REPLY, OK_200);
        char req[256];
        int n = snprintf(req, sizeof req,
                         "GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: gw-health\r\n"
                         "Connection: close\r\n\r\n",
                         f->b.name);
        const char *hdr = version == 1 ? "PROXY UNKNOWN\r\n" : v2_local;
        size_t nh = version == 1 ? 15 : 16;
        f->cfg.proxy_protocol = version;
        run_checks(f, GW_HC_HTTP, 2);
        assert_int_equal(f->passed, 2);
        assert_int_equal(f->raw_len, nh + (size_t)n);
        assert_memory_equal(f->raw, hdr, nh);
        assert_memory_equal(f->raw + nh, req, (size_t)n);
    }
}

/* A tcp check writes the header too, then passes as soon as it is connected. */
static void hc_tcp_sends_proxy_header(void **state)
{
    fixture_t *f = *state;
    server_start(f, SRV_SILENT, NULL);
    f->cfg.proxy_protocol = 1;
    run_checks(f, GW_HC_TCP, 3); /* the server read the first one's bytes long before */
    assert_int_equal(f->passed, 3);
    assert_int_equal(f->raw_len, 15);
    assert_memory_equal(f->raw, "PROXY UNKNOWN\r\n", 15);
}

static void hc_http_silent_server_times_out(void **state)
{
    fixture_t *f = *state;
    server_start(f, SRV_SILENT, NULL);
    f->cfg.timeout_ms = 50;
    run_checks(f, GW_HC_HTTP, 3);
    assert_int_equal(f->failed, 3);
    assert_int_equal(f->last.err, UV_ETIMEDOUT);
    gw_assert_contains(f->last_why, "no status line within 50 ms");
    assert_int_equal(health_of(f), GW_HEALTH_UNHEALTHY);
}

/* A timeout longer than the interval still never lets two checks of a backend overlap. */
static void hc_checks_never_overlap(void **state)
{
    fixture_t *f = *state;
    server_start(f, SRV_SILENT, NULL);
    f->cfg.timeout_ms = 3 * INTERVAL_MS;
    run_checks(f, GW_HC_HTTP, 4);
    assert_int_equal(f->accepted, 4);
    assert_int_equal(f->max_live, 1);
}

/* Garbage fails at once: with a timeout beyond the deadline, waiting would fail the test. */
static void hc_http_garbage_fails_without_timeout(void **state)
{
    fixture_t *f = *state;
    server_start(f, SRV_GREET, "SSH-2.0-OpenSSH_9.2\r\n");
    f->cfg.timeout_ms = 2 * DEADLINE_MS;
    run_checks(f, GW_HC_HTTP, 3);
    assert_int_equal(f->failed, 3);
    assert_int_equal(f->last.err, GW_EINVAL);
    assert_string_equal(f->last_why, "malformed status line");
}

static void hc_http_overlong_status_line_fails(void **state)
{
    fixture_t *f = *state;
    static char reply[2048];
    memset(reply, 'a', sizeof reply - 1);
    memcpy(reply, "HTTP/1.1 200 ", 13);
    server_start(f, SRV_GREET, reply);
    f->cfg.timeout_ms = 2 * DEADLINE_MS;
    run_checks(f, GW_HC_HTTP, 1);
    assert_int_equal(f->failed, 1);
    assert_int_equal(f->last.err, GW_EINVAL);
    gw_assert_contains(f->last_why, "no status line in the first 1024 bytes");
}

static void hc_http_eof_before_status_line_fails(void **state)
{
    fixture_t *f = *state;
    server_start(f, SRV_CLOSE, NULL);
    f->cfg.timeout_ms = 2 * DEADLINE_MS;
    run_checks(f, GW_HC_HTTP, 3);
    assert_int_equal(f->failed, 3);
    /* Depending on who is faster, the request meets the closed socket or the read the EOF. */
    int err = f->last.err;
    assert_true(err == UV_EOF || err == UV_ECONNRESET || err == UV_EPIPE);
    assert_int_equal(health_of(f), GW_HEALTH_UNHEALTHY);
}

static void hc_draining_backend_left_as_is(void **state)
{
    fixture_t *f = *state;
    use_refused_port(f);
    atomic_store(&f->b.health, GW_HEALTH_DRAINING);
    run_checks(f, GW_HC_TCP, 3);
    assert_int_equal(f->first_change, 3);               /* the state machine did flip... */
    assert_int_equal(health_of(f), GW_HEALTH_DRAINING); /* ...and drain still wins */
}

/* Points fd 2 at a temporary file and returns the saved stderr. The file is unlinked at
 * once, so a test cut short leaves nothing behind in /tmp. */
static int capture_start(char *path)
{
    int fd = mkstemp(path), saved = dup(STDERR_FILENO);
    assert_true(fd >= 0 && saved >= 0);
    unlink(path);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    close(fd);
    return saved;
}

/* Puts the captured text in TEXT[0..SIZE) and restores stderr. */
static void capture_end(const char *path, int saved, char *text, size_t size)
{
    (void)path;
    ssize_t n = pread(STDERR_FILENO, text, size - 1, 0);
    text[n > 0 ? n : 0] = '\0';
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
}

static void hc_transition_logs_one_line(void **state)
{
    fixture_t *f = *state;
    char path[] = "/tmp/gw_test_health_XXXXXX", want[256];
    use_refused_port(f);
    gw_log_setup(GW_LOG_INFO, GW_LOG_PLAIN);
    int saved = capture_start(path);
    run_checks(f, GW_HC_TCP, 4);
    char text[8192];
    capture_end(path, saved, text, sizeof text);
    snprintf(want, sizeof want,
             "upstream 'app': backend %s is now UNHEALTHY after 3 failed checks (last: "
             "connection refused)\n",
             f->b.name);
    gw_assert_contains(text, want);
    /* one line, not one per failed check */
    assert_null(strstr(strstr(text, want) + strlen(want), "UNHEALTHY"));
}

static void hc_recovery_logs_healthy_again(void **state)
{
    fixture_t *f = *state;
    char path[] = "/tmp/gw_test_health_XXXXXX", want[256];
    server_start(f, SRV_SILENT, NULL);
    atomic_store(&f->b.health, GW_HEALTH_UNHEALTHY);
    gw_log_setup(GW_LOG_INFO, GW_LOG_PLAIN);
    int saved = capture_start(path);
    run_checks(f, GW_HC_TCP, 2);
    char text[8192];
    capture_end(path, saved, text, sizeof text);
    snprintf(want, sizeof want, "upstream 'app': backend %s is HEALTHY again after 2 passed checks",
             f->b.name);
    gw_assert_contains(text, want);
}

#define FAR_FUTURE_MS (UINT64_MAX / 2) /* an ejection that outlasts any test */

/* Issue 14: a backend ejected by passive checks whose probes pass comes back at the first
 * pass (Envoy's default), not only when the checks saw it unhealthy and then healthy. */
static void hc_tcp_pass_ends_passive_ejection(void **state)
{
    fixture_t *f = *state;
    server_start(f, SRV_SILENT, NULL);
    f->cfg.uneject_on_pass = true;
    atomic_store(&f->b.ejected_until_ms, FAR_FUTURE_MS);
    atomic_store(&f->b.consecutive_5xx, 3);
    run_checks(f, GW_HC_TCP, 1);
    assert_int_equal(f->passed, 1);
    assert_int_equal(f->changes, 0); /* it never looked unhealthy to the checks */
    assert_int_equal(atomic_load(&f->b.ejected_until_ms), 0);
    assert_int_equal(atomic_load(&f->b.consecutive_5xx), 0);
}

/* outlier.uneject_on_active_pass: false: the ejection runs its course, even when the checks
 * see the backend come back from UNHEALTHY. */
static void hc_tcp_pass_keeps_passive_ejection_when_off(void **state)
{
    fixture_t *f = *state;
    server_start(f, SRV_SILENT, NULL);
    f->cfg.uneject_on_pass = false;
    atomic_store(&f->b.health, GW_HEALTH_UNHEALTHY);
    atomic_store(&f->b.ejected_until_ms, FAR_FUTURE_MS);
    run_checks(f, GW_HC_TCP, 3);
    assert_int_equal(f->passed, 3);
    assert_int_equal(f->changes, 1);
    assert_int_equal(health_of(f), GW_HEALTH_HEALTHY);
    assert_int_equal(atomic_load(&f->b.ejected_until_ms), FAR_FUTURE_MS);
}

/* Stopped with a check in flight (connected, waiting for the status line): everything is
 * closed, `done` runs once, and the aborted check reports nothing. */
static void hc_stop_during_check_closes_every_handle(void **state)
{
    fixture_t *f = *state;
    server_start(f, SRV_SILENT, NULL);
    f->stop_on_accept = true;
    run_checks(f, GW_HC_HTTP, 0);
    assert_int_equal(f->accepted, 1);
    assert_int_equal(f->checks, 0);
}

static void on_poke_stop(uv_timer_t *t)
{
    stop_all(t->data);
}

/* Stopped while connecting (a blackhole: the connect stays pending). */
static void hc_stop_while_connecting_closes_every_handle(void **state)
{
    fixture_t *f = *state;
    use_blackhole(f);
    f->cfg.timeout_ms = 2 * DEADLINE_MS;
    f->cfg.interval_ms = 10; /* the first check starts within 10 ms... */
    checks_start(f, GW_HC_TCP, 0);
    uv_timer_start(&f->poke, on_poke_stop, 50, 0); /* ...and still connects at 50 */
    checks_run(f);
    assert_int_equal(f->checks, 0);
}

static void hc_stop_before_first_check(void **state)
{
    fixture_t *f = *state;
    use_refused_port(f);
    f->cfg.interval_ms = 60000;
    gw_hc_t *hc = gw_hc_start(&f->loop, &f->cfg, f->ptrs, 1, "app", 42);
    assert_non_null(hc);
    gw_hc_stop(hc, on_hc_done, f);
    assert_int_equal(f->done_calls, 0); /* never before gw_hc_stop returns */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->done_calls, 1);
    assert_int_equal(handles_on(&f->loop), 0);
}

static void hc_start_rejects_bad_config(void **state)
{
    fixture_t *f = *state;
    use_refused_port(f);
    gw_hc_cfg_t c = f->cfg;
    c.type = GW_HC_NONE;
    assert_null(gw_hc_start(&f->loop, &c, f->ptrs, 1, "app", 1));
    c = f->cfg;
    c.interval_ms = 0;
    assert_null(gw_hc_start(&f->loop, &c, f->ptrs, 1, "app", 1));
    c = f->cfg;
    c.timeout_ms = 0;
    assert_null(gw_hc_start(&f->loop, &c, f->ptrs, 1, "app", 1));
    c = f->cfg;
    c.type = GW_HC_HTTP;
    c.path = "/a\r\nX-Injected: 1";
    assert_null(gw_hc_start(&f->loop, &c, f->ptrs, 1, "app", 1));
    c.path = "healthz";
    assert_null(gw_hc_start(&f->loop, &c, f->ptrs, 1, "app", 1));
    assert_null(gw_hc_start(&f->loop, &f->cfg, f->ptrs, 0, "app", 1));
    assert_int_equal(handles_on(&f->loop), 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hc_fsm_starts_healthy),
        cmocka_unit_test(hc_fsm_unhealthy_after_exactly_fall_failures),
        cmocka_unit_test(hc_fsm_healthy_after_exactly_rise_successes),
        cmocka_unit_test(hc_fsm_single_blip_does_not_flap),
        cmocka_unit_test(hc_fsm_full_cycle_as_a_sequence),
        cmocka_unit_test(hc_fsm_rise_fall_one_flips_on_every_change),
        cmocka_unit_test(hc_fsm_zero_thresholds_act_as_one),
        cmocka_unit_test(hc_parse_status_complete_line),
        cmocka_unit_test(hc_parse_status_partial_needs_more),
        cmocka_unit_test(hc_parse_status_rejects_garbage_early),
        cmocka_unit_test(hc_delay_first_spreads_over_interval),
        cmocka_unit_test(hc_delay_jitter_within_ten_percent),
        cmocka_unit_test(hc_delay_same_seed_repeats),
        T(hc_tcp_listening_backend_stays_healthy),
        T(hc_tcp_refused_backend_unhealthy_after_fall_checks),
        T(hc_tcp_connect_timeout_counts_as_failure),
        T(hc_http_503_becomes_unhealthy),
        T(hc_http_200_stays_healthy),
        T(hc_http_200_returns_healthy_after_rise),
        T(hc_http_status_outside_range_fails),
        T(hc_http_sends_expected_request),
        T(hc_http_sends_proxy_header_first),
        T(hc_tcp_sends_proxy_header),
        T(hc_http_silent_server_times_out),
        T(hc_checks_never_overlap),
        T(hc_http_garbage_fails_without_timeout),
        T(hc_http_overlong_status_line_fails),
        T(hc_http_eof_before_status_line_fails),
        T(hc_draining_backend_left_as_is),
        T(hc_transition_logs_one_line),
        T(hc_recovery_logs_healthy_again),
        T(hc_tcp_pass_ends_passive_ejection),
        T(hc_tcp_pass_keeps_passive_ejection_when_off),
        T(hc_stop_during_check_closes_every_handle),
        T(hc_stop_while_connecting_closes_every_handle),
        T(hc_stop_before_first_check),
        T(hc_start_rejects_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
