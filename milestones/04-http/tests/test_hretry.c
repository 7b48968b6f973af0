/* test_hretry.c - the retry decision of the HTTP engine (hretry.h), case by case from a
 * table and then event by event through one request's life: which policy answers, in which
 * order the hooks are asked, and what is given up with which status. No sockets. */
#include "gwtest.h"

#include <stdio.h>
#include <string.h>

#include "04-http/hretry.h"

/* ---- fake hooks: they answer from the case and write down every call, in order ---------- */

typedef struct fake_s {
    bool connect_yes;       /* connect_retry's answer */
    uint64_t connect_delay; /* ...and the delay it sets when it says yes */
    bool budget_yes;        /* may_retry's answer */
    uint64_t retry_delay;   /* ...and the delay (03's backoff) it sets when it says yes */
    char calls[256];        /* "report(-111) connect_retry(1) may_retry(1)" */
} fake_t;

static void note(fake_t *f, const char *fmt, long v)
{
    size_t n = strlen(f->calls);
    snprintf(f->calls + n, sizeof f->calls - n, n > 0 ? " " : "");
    n = strlen(f->calls);
    snprintf(f->calls + n, sizeof f->calls - n, fmt, v);
}

static void fake_report(void *ctx, int status)
{
    note(ctx, "report(%ld)", status);
}

static bool fake_connect_retry(void *ctx, unsigned attempt, uint64_t *delay_ms)
{
    fake_t *f = ctx;
    note(f, "connect_retry(%ld)", (long)attempt);
    if (f->connect_yes)
        *delay_ms = f->connect_delay;
    return f->connect_yes;
}

static bool fake_may_retry(void *ctx, unsigned attempt, uint64_t *delay_ms)
{
    fake_t *f = ctx;
    note(f, "may_retry(%ld)", (long)attempt);
    if (f->budget_yes)
        *delay_ms = f->retry_delay;
    return f->budget_yes;
}

/* ---- the table ------------------------------------------------------------------------------ */

/* The request's body, as the engine sees it when the attempt fails. */
typedef enum {
    NO_BODY = 0,
    BODY_WAITING,  /* not read from the client yet: still in its socket */
    BODY_READ,     /* read from the client, none of it upstream, but not held whole */
    BODY_BUFFERED, /* read whole into reqbuf */
    BODY_STARTED,  /* bytes of it went upstream */
} body_t;

/* retry_on in a case: 0 stands for the default (connect_failure, reset), ON_NONE for none. */
#define ON_NONE (1u << 31)

/* A case. Zero is the common one: a GET without a body on a new connection, picked, first
 * attempt of three, no retry yet, the default retry_on. */
typedef struct case_s {
    const char *name;
    /* the failure */
    gw_hretry_failure_t failure;
    int uv_status;
    unsigned http_status; /* STATUS: the backend's answer */
    bool reused, resp_bytes, post, unpicked, response_started, interim, draining, stale_used;
    body_t body;
    unsigned attempt, max_attempts, tries; /* max_attempts 0 stands for 3 */
    unsigned retry_on;
    /* the hooks' answers */
    bool connect_yes, budget_yes;
    uint64_t connect_delay, retry_delay;
    /* what must come out */
    gw_hretry_action_t action;
    unsigned status;
    uint64_t delay;
    bool stale, keep_pick;
    const char *calls;
} case_t;

static gw_hretry_in_t inputs(const case_t *c)
{
    return (gw_hretry_in_t){
        .failure = c->failure,
        .uv_status = c->uv_status,
        .status = c->http_status,
        .picked = !c->unpicked,
        .reused = c->reused,
        .resp_bytes = c->resp_bytes || c->failure == GW_HRETRY_STATUS, /* its head came */
        .idempotent = !c->post,
        .has_body = c->body != NO_BODY,
        .body_started = c->body == BODY_STARTED,
        .request_read = c->body == NO_BODY || c->body == BODY_READ || c->body == BODY_BUFFERED ||
                        c->body == BODY_STARTED,
        .body_buffered = c->body == BODY_BUFFERED,
        .response_started = c->response_started,
        .interim_sent = c->interim,
        .draining = c->draining,
        .stale_retry_used = c->stale_used,
        .attempt = c->attempt,
        .max_attempts = c->max_attempts ? c->max_attempts : 3,
        .tries = c->tries,
        .retry_on = c->retry_on == ON_NONE ? 0
                    : c->retry_on == 0     ? GW_HRETRY_ON_DEFAULT
                                           : c->retry_on,
    };
}

#define CONNECT GW_HRETRY_CONNECT
#define BROKEN GW_HRETRY_BROKEN
#define RTIMEOUT GW_HRETRY_RESPONSE_TIMEOUT
#define ANSWER GW_HRETRY_ANSWER
#define CLOSE GW_HRETRY_CLOSE_CLIENT
#define FRESH GW_HRETRY_FRESH
#define NEXT GW_HRETRY_NEXT_ATTEMPT
#define PASS GW_HRETRY_PASS
#define STATUS GW_HRETRY_STATUS
#define ON_CONNECT GW_HRETRY_ON_CONNECT_FAILURE
#define ON_RESET GW_HRETRY_ON_RESET
#define ON_502 GW_HRETRY_ON_502
#define ON_503 GW_HRETRY_ON_503
#define ON_504 GW_HRETRY_ON_504
#define ON_ALL (ON_CONNECT | ON_RESET | ON_502 | ON_503 | ON_504)

/* 02's connect retries, through the picker. */
static const case_t connect_cases[] = {
    {"refused: the picker's next attempt", CONNECT, UV_ECONNREFUSED, .connect_yes = true,
     .action = NEXT, .keep_pick = true, .calls = "report(-111) connect_retry(1)"},
    {"timed out: the same", CONNECT, UV_ETIMEDOUT, .connect_yes = true, .action = NEXT,
     .keep_pick = true, .calls = "report(-110) connect_retry(1)"},
    {"03's backoff delays it", CONNECT, UV_ECONNREFUSED, .connect_yes = true, .connect_delay = 250,
     .action = NEXT, .delay = 250, .keep_pick = true, .calls = "report(-111) connect_retry(1)"},
    {"second attempt asks for the third", CONNECT, UV_ECONNREFUSED, .attempt = 1, .tries = 1,
     .connect_yes = true, .action = NEXT, .keep_pick = true,
     .calls = "report(-111) connect_retry(2)"},
    {"picker says no, no retry middleware: 502", CONNECT, UV_ECONNREFUSED, .action = ANSWER,
     .status = 502, .calls = "report(-111) connect_retry(1) may_retry(1)"},
    {"last attempt: the picker is not asked", CONNECT, UV_ECONNREFUSED, .attempt = 2, .tries = 2,
     .connect_yes = true, .action = ANSWER, .status = 502, .calls = "report(-111) may_retry(3)"},
    {"max_attempts 1: no connect retry at all", CONNECT, UV_ECONNREFUSED, .max_attempts = 1,
     .connect_yes = true, .action = ANSWER, .status = 502, .calls = "report(-111) may_retry(1)"},
    {"not picked: nothing to report", CONNECT, UV_ECONNREFUSED, .unpicked = true,
     .connect_yes = true, .action = NEXT, .keep_pick = true, .calls = "connect_retry(1)"},
    {"a POST whose connect failed is sent: it never left", CONNECT, UV_ECONNREFUSED, .post = true,
     .connect_yes = true, .action = NEXT, .keep_pick = true,
     .calls = "report(-111) connect_retry(1)"},
};

/* RFC 9112 9.3.1: a pooled connection found closed. */
static const case_t stale_cases[] = {
    {"reused GET, EOF: once more on a fresh pick, not the backend's fault", BROKEN, UV_EOF,
     .reused = true, .action = FRESH, .stale = true, .calls = ""},
    {"reused GET, reset: the same", BROKEN, UV_ECONNRESET, .reused = true, .action = FRESH,
     .stale = true, .calls = ""},
    {"reused GET, broken pipe on write: the same", BROKEN, UV_EPIPE, .reused = true,
     .action = FRESH, .stale = true, .calls = ""},
    {"reused POST, EOF: never sent twice", BROKEN, UV_EOF, .reused = true, .post = true,
     .budget_yes = true, .action = ANSWER, .status = 502, .calls = ""},
    {"reused GET, EOF, stale retry used: 502, still no blame", BROKEN, UV_EOF, .reused = true,
     .stale_used = true, .tries = 1, .action = ANSWER, .status = 502, .calls = "may_retry(2)"},
    {"reused GET, response bytes came: the backend's fault, no stale retry", BROKEN, UV_EPROTO,
     .reused = true, .resp_bytes = true, .action = ANSWER, .status = 502,
     .calls = "report(-71) may_retry(1)"},
    {"reused GET, EOF after response bytes: blamed", BROKEN, UV_EOF, .reused = true,
     .resp_bytes = true, .action = ANSWER, .status = 502, .calls = "report(-4095) may_retry(1)"},
    /* Before any response byte the stale retry does not look at the error, only the blame
     * does: a reused connection that timed out is blamed, and still sent again once. */
    {"reused GET, response timeout: blamed, sent again once", RTIMEOUT, UV_ETIMEDOUT,
     .reused = true, .action = FRESH, .stale = true, .calls = "report(-110)"},
    {"new connection, EOF: blamed, no stale retry", BROKEN, UV_EOF, .action = ANSWER, .status = 502,
     .calls = "report(-4095) may_retry(1)"},
};

/* The retry middleware and the statuses of giving up. */
static const case_t middleware_cases[] = {
    {"broken new connection, budget grants: fresh pick", BROKEN, UV_ECONNRESET, .budget_yes = true,
     .action = FRESH, .calls = "report(-104) may_retry(1)"},
    {"picker says no, budget grants: fresh pick", CONNECT, UV_ECONNREFUSED, .budget_yes = true,
     .action = FRESH, .calls = "report(-111) connect_retry(1) may_retry(1)"},
    {"the attempt number counts every pick sequence", BROKEN, UV_ECONNRESET, .tries = 4,
     .budget_yes = true, .action = FRESH, .calls = "report(-104) may_retry(5)"},
    {"response timeout, no retry: 504", RTIMEOUT, UV_ETIMEDOUT, .action = ANSWER, .status = 504,
     .calls = "report(-110) may_retry(1)"},
    {"response timeout, budget grants: fresh pick", RTIMEOUT, UV_ETIMEDOUT, .budget_yes = true,
     .action = FRESH, .calls = "report(-110) may_retry(1)"},
    {"a positive status is reported as a reset", BROKEN, 0, .action = ANSWER, .status = 502,
     .calls = "report(-104) may_retry(1)"},
    {"03's backoff delays the middleware's retry", BROKEN, UV_ECONNRESET, .budget_yes = true,
     .retry_delay = 80, .action = FRESH, .delay = 80, .calls = "report(-104) may_retry(1)"},
    {"a POST is not the middleware's to retry: its hook is not asked", BROKEN, UV_ECONNRESET,
     .post = true, .budget_yes = true, .action = ANSWER, .status = 502, .calls = "report(-104)"},
};

/* retry_on: which failures the middleware retries (the default: connect_failure, reset). */
static const case_t retry_on_cases[] = {
    {"connect failure not listed: the middleware is not asked", CONNECT, UV_ECONNREFUSED,
     .retry_on = ON_RESET | ON_503, .budget_yes = true, .action = ANSWER, .status = 502,
     .calls = "report(-111) connect_retry(1)"},
    {"...but the picker's connect retries are not the route's to turn off", CONNECT,
     UV_ECONNREFUSED, .retry_on = ON_503, .connect_yes = true, .action = NEXT, .keep_pick = true,
     .calls = "report(-111) connect_retry(1)"},
    {"reset not listed: the middleware is not asked", BROKEN, UV_ECONNRESET, .retry_on = ON_CONNECT,
     .budget_yes = true, .action = ANSWER, .status = 502, .calls = "report(-104)"},
    {"...nor is the stale retry the route's to turn off", BROKEN, UV_EOF, .reused = true,
     .retry_on = ON_NONE, .action = FRESH, .stale = true, .calls = ""},
    {"a response timeout is a reset: listed", RTIMEOUT, UV_ETIMEDOUT, .retry_on = ON_RESET,
     .budget_yes = true, .action = FRESH, .calls = "report(-110) may_retry(1)"},
    {"a response timeout is not a 504 the backend answered", RTIMEOUT, UV_ETIMEDOUT,
     .retry_on = ON_504, .budget_yes = true, .action = ANSWER, .status = 504,
     .calls = "report(-110)"},
    {"no retry_on at all: nothing for the middleware", BROKEN, UV_ECONNRESET, .retry_on = ON_NONE,
     .budget_yes = true, .action = ANSWER, .status = 502, .calls = "report(-104)"},
};

/* The backend answered 502, 503 or 504 (STATUS): sent again only when retry_on lists it and
 * nothing is lost; otherwise the answer goes to the client as it came (PASS). Never reported:
 * passive health reads the status from the head itself. */
static const case_t status_cases[] = {
    {"503 listed, GET: a fresh pick that avoids the backend", STATUS, 0, 503, .retry_on = ON_503,
     .budget_yes = true, .action = FRESH, .calls = "may_retry(1)"},
    {"503 listed, after 03's backoff", STATUS, 0, 503, .retry_on = ON_ALL, .budget_yes = true,
     .retry_delay = 120, .action = FRESH, .delay = 120, .calls = "may_retry(1)"},
    {"502 listed", STATUS, 0, 502, .retry_on = ON_502, .budget_yes = true, .action = FRESH,
     .calls = "may_retry(1)"},
    {"504 listed", STATUS, 0, 504, .retry_on = ON_504, .budget_yes = true, .action = FRESH,
     .calls = "may_retry(1)"},
    {"503 with the default retry_on: passed through, nothing asked", STATUS, 0, 503,
     .budget_yes = true, .action = PASS, .keep_pick = true, .calls = ""},
    {"503 when only 502 and 504 are listed: passed through", STATUS, 0, 503,
     .retry_on = ON_502 | ON_504, .budget_yes = true, .action = PASS, .keep_pick = true,
     .calls = ""},
    {"500 can never be listed: passed through", STATUS, 0, 500, .retry_on = ON_ALL,
     .budget_yes = true, .action = PASS, .keep_pick = true, .calls = ""},
    {"POST answered 503: passed through, never sent twice", STATUS, 0, 503, .post = true,
     .retry_on = ON_503, .budget_yes = true, .action = PASS, .keep_pick = true, .calls = ""},
    {"the budget says no: passed through", STATUS, 0, 503, .retry_on = ON_503, .action = PASS,
     .keep_pick = true, .calls = "may_retry(1)"},
    {"max attempts reached (the hook says no): passed through", STATUS, 0, 503, .tries = 1,
     .retry_on = ON_503, .action = PASS, .keep_pick = true, .calls = "may_retry(2)"},
    {"body streamed upstream: passed through", STATUS, 0, 503, .body = BODY_STARTED,
     .retry_on = ON_503, .budget_yes = true, .action = PASS, .keep_pick = true, .calls = ""},
    {"body read and not held: passed through", STATUS, 0, 503, .body = BODY_READ,
     .retry_on = ON_503, .budget_yes = true, .action = PASS, .keep_pick = true, .calls = ""},
    {"body held whole in reqbuf: sent again", STATUS, 0, 503, .body = BODY_BUFFERED,
     .retry_on = ON_503, .budget_yes = true, .action = FRESH, .calls = "may_retry(1)"},
    {"body not streamed yet (still in the client's socket): sent again", STATUS, 0, 503,
     .body = BODY_WAITING, .retry_on = ON_503, .budget_yes = true, .action = FRESH,
     .calls = "may_retry(1)"},
    {"a 1xx reached the client: passed through", STATUS, 0, 503, .interim = true,
     .retry_on = ON_503, .budget_yes = true, .action = PASS, .keep_pick = true, .calls = ""},
    {"draining: passed through", STATUS, 0, 503, .draining = true, .retry_on = ON_503,
     .budget_yes = true, .action = PASS, .keep_pick = true, .calls = ""},
    {"on a reused connection: no stale retry, the answer came", STATUS, 0, 503, .reused = true,
     .retry_on = ON_RESET, .action = PASS, .keep_pick = true, .calls = ""},
    {"not the picker's: no connect retry", STATUS, 0, 503, .retry_on = ON_503, .connect_yes = true,
     .action = PASS, .keep_pick = true, .calls = "may_retry(1)"},
};

/* The gateway's own shortage (no descriptor for the upstream socket, no memory): not the
 * backend's fault, and not retried, since the next attempt would meet the same shortage. */
static const case_t shortage_cases[] = {
    {"connect without a descriptor: 503, no report, no retry", CONNECT, UV_EMFILE,
     .connect_yes = true, .budget_yes = true, .action = ANSWER, .status = 503, .calls = ""},
    {"system file table full: the same", CONNECT, UV_ENFILE, .connect_yes = true, .action = ANSWER,
     .status = 503, .calls = ""},
    {"no buffer space: the same", CONNECT, UV_ENOBUFS, .action = ANSWER, .status = 503,
     .calls = ""},
    {"no memory for the connection: the same", BROKEN, UV_ENOMEM, .budget_yes = true,
     .action = ANSWER, .status = 503, .calls = ""},
    {"reused GET, then no memory: no stale retry either", BROKEN, UV_ENOMEM, .reused = true,
     .action = ANSWER, .status = 503, .calls = ""},
    {"shortage after the response started: cut", BROKEN, UV_ENOMEM, .response_started = true,
     .action = CLOSE, .calls = ""},
};

/* Which policy answers first when several would. */
static const case_t precedence_cases[] = {
    {"stale retry before the middleware", BROKEN, UV_EOF, .reused = true, .budget_yes = true,
     .action = FRESH, .stale = true, .calls = ""},
    {"connect retry before the middleware", CONNECT, UV_ECONNREFUSED, .connect_yes = true,
     .budget_yes = true, .action = NEXT, .keep_pick = true,
     .calls = "report(-111) connect_retry(1)"},
    {"stale retry used: the middleware may still retry", BROKEN, UV_EOF, .reused = true,
     .stale_used = true, .tries = 1, .budget_yes = true, .action = FRESH, .calls = "may_retry(2)"},
};

/* A request is sent again only if none of it is lost. */
static const case_t replay_cases[] = {
    {"body bytes went upstream: no retry, whatever the hooks say", BROKEN, UV_ECONNRESET,
     .body = BODY_STARTED, .connect_yes = true, .budget_yes = true, .action = ANSWER, .status = 502,
     .calls = "report(-104)"},
    {"reused, body started: not even the stale retry", BROKEN, UV_EOF, .reused = true,
     .body = BODY_STARTED, .budget_yes = true, .action = ANSWER, .status = 502, .calls = ""},
    {"body still in the client's socket: replayable", CONNECT, UV_ECONNREFUSED,
     .body = BODY_WAITING, .connect_yes = true, .action = NEXT, .keep_pick = true,
     .calls = "report(-111) connect_retry(1)"},
    {"body read and not held: not replayable", CONNECT, UV_ECONNREFUSED, .body = BODY_READ,
     .connect_yes = true, .budget_yes = true, .action = ANSWER, .status = 502,
     .calls = "report(-111)"},
    {"body held whole in reqbuf: replayable", CONNECT, UV_ECONNREFUSED, .body = BODY_BUFFERED,
     .connect_yes = true, .action = NEXT, .keep_pick = true,
     .calls = "report(-111) connect_retry(1)"},
    {"reused GET with a buffered body: stale retry", BROKEN, UV_EOF, .reused = true,
     .body = BODY_BUFFERED, .action = FRESH, .stale = true, .calls = ""},
    {"draining: no retry, a 502", CONNECT, UV_ECONNREFUSED, .draining = true, .connect_yes = true,
     .budget_yes = true, .action = ANSWER, .status = 502, .calls = "report(-111)"},
    {"draining, reused: no stale retry either", BROKEN, UV_EOF, .reused = true, .draining = true,
     .action = ANSWER, .status = 502, .calls = ""},
    {"response started: the client is cut, no status", BROKEN, UV_ECONNRESET,
     .response_started = true, .connect_yes = true, .budget_yes = true, .action = CLOSE,
     .calls = "report(-104)"},
    {"response started, then a timeout: cut, not 504", RTIMEOUT, UV_ETIMEDOUT,
     .response_started = true, .action = CLOSE, .calls = "report(-110)"},
    {"a 1xx went to the client: no retry, a status still fits", BROKEN, UV_ECONNRESET,
     .interim = true, .budget_yes = true, .action = ANSWER, .status = 502, .calls = "report(-104)"},
    {"a 1xx went to the client, reused: no stale retry", BROKEN, UV_EOF, .reused = true,
     .interim = true, .action = ANSWER, .status = 502, .calls = ""},
};

static void run_case(const case_t *c)
{
    fake_t f = {.connect_yes = c->connect_yes,
                .connect_delay = c->connect_delay,
                .budget_yes = c->budget_yes,
                .retry_delay = c->retry_delay};
    gw_hretry_hooks_t hooks = {fake_report, fake_connect_retry, fake_may_retry, &f};
    gw_hretry_in_t in = inputs(c);
    gw_hretry_t d = gw_hretry_decide(&in, &hooks);
    bool reported = strstr(f.calls, "report(") != NULL;
    if (d.action != c->action || d.status != c->status || d.delay_ms != c->delay ||
        d.stale_retry != c->stale || d.release_pick == c->keep_pick ||
        d.report_passive_failure != reported || strcmp(f.calls, c->calls) != 0)
        fail_msg("case '%s': got action %d status %u delay %llu stale %d release %d report %d "
                 "calls \"%s\"; want action %d status %u delay %llu stale %d release %d calls "
                 "\"%s\"",
                 c->name, (int)d.action, d.status, (unsigned long long)d.delay_ms, d.stale_retry,
                 d.release_pick, d.report_passive_failure, f.calls, (int)c->action, c->status,
                 (unsigned long long)c->delay, c->stale, !c->keep_pick, c->calls);
    /* Agrees with the two predicates it is made of. */
    assert_int_equal(d.report_passive_failure, in.picked && gw_hretry_blames_backend(&in));
    if (!gw_hretry_replayable(&in))
        assert_true(d.action == ANSWER || d.action == CLOSE || d.action == PASS);
    /* A fresh pick by the middleware avoids the backends tried; the stale retry's does not
     * need to (the backend was not at fault). */
    assert_int_equal(d.avoid_tried, d.action == FRESH && !d.stale_retry);
    /* Only a STATUS is passed through, and only a STATUS is never answered by the gateway. */
    if (in.failure == STATUS)
        assert_true(d.action == FRESH || d.action == PASS);
    else
        assert_true(d.action != PASS);
}

#define RUN_TABLE(t)                                                                               \
    for (size_t i = 0; i < sizeof(t) / sizeof(t)[0]; i++)                                          \
    run_case(&(t)[i])

static void hretry_connect_retries_through_the_picker(void **state)
{
    (void)state;
    RUN_TABLE(connect_cases);
}

static void hretry_stale_pooled_connection_once_and_idempotent_only(void **state)
{
    (void)state;
    RUN_TABLE(stale_cases);
}

static void hretry_middleware_and_statuses(void **state)
{
    (void)state;
    RUN_TABLE(middleware_cases);
}

static void hretry_local_shortage_is_not_the_backends_fault(void **state)
{
    (void)state;
    RUN_TABLE(shortage_cases);
}

static void hretry_retry_on_chooses_what_the_middleware_retries(void **state)
{
    (void)state;
    RUN_TABLE(retry_on_cases);
}

static void hretry_5xx_retried_only_when_listed_and_intact(void **state)
{
    (void)state;
    RUN_TABLE(status_cases);
}

/* gw_hretry_on: the retry_on bit of each failure. */
static void hretry_on_bits(void **state)
{
    (void)state;
    assert_int_equal(gw_hretry_on(CONNECT, 0), ON_CONNECT);
    assert_int_equal(gw_hretry_on(BROKEN, 0), ON_RESET);
    assert_int_equal(gw_hretry_on(RTIMEOUT, 0), ON_RESET);
    assert_int_equal(gw_hretry_on(STATUS, 502), ON_502);
    assert_int_equal(gw_hretry_on(STATUS, 503), ON_503);
    assert_int_equal(gw_hretry_on(STATUS, 504), ON_504);
    static const unsigned never[] = {0, 200, 404, 499, 500, 501, 505, 599, 1503};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
        assert_int_equal(gw_hretry_on(STATUS, never[i]), 0);
}

static void hretry_policies_in_order(void **state)
{
    (void)state;
    RUN_TABLE(precedence_cases);
}

static void hretry_replays_only_an_intact_request(void **state)
{
    (void)state;
    RUN_TABLE(replay_cases);
}

/* Every hook may be NULL: no report, a connect retry at once, no retry middleware. */
static void hretry_null_hooks(void **state)
{
    (void)state;
    gw_hretry_hooks_t none = {0};
    case_t c = {.failure = CONNECT, .uv_status = UV_ECONNREFUSED, .max_attempts = 2};
    gw_hretry_in_t in = inputs(&c);
    gw_hretry_t d = gw_hretry_decide(&in, &none);
    assert_int_equal(d.action, NEXT);
    assert_int_equal(d.delay_ms, 0);
    assert_true(d.report_passive_failure);
    in.attempt = 1;
    d = gw_hretry_decide(&in, &none);
    assert_int_equal(d.action, ANSWER);
    assert_int_equal(d.status, 502);
    assert_true(d.release_pick);
}

/* ---- event by event: one request's life, as hupstream.c applies the decisions ---------------- */

/* What attempt_failed does with a decision, on the inputs of the next failure. */
static void apply(gw_hretry_in_t *in, gw_hretry_t d)
{
    if (d.stale_retry)
        in->stale_retry_used = true;
    if (d.action == FRESH || d.action == NEXT) {
        in->tries++;
        in->attempt = d.action == FRESH ? 0 : in->attempt + 1;
    }
}

/* A GET meets a pooled connection the upstream just closed (sent again, once, not blamed),
 * then a refused connect (the picker's next attempt after 03's backoff), a reset (the retry
 * middleware), another stale pooled connection (no second stale retry: the budget says
 * no), and gives up with a 502. */
static void hretry_one_request_event_by_event(void **state)
{
    (void)state;
    fake_t f = {0};
    gw_hretry_hooks_t hooks = {fake_report, fake_connect_retry, fake_may_retry, &f};
    gw_hretry_in_t in = {
        .picked = true, .idempotent = true, .max_attempts = 2, .retry_on = GW_HRETRY_ON_DEFAULT};

    in.failure = BROKEN;
    in.uv_status = UV_EOF;
    in.reused = true;
    gw_hretry_t d = gw_hretry_decide(&in, &hooks);
    assert_int_equal(d.action, FRESH);
    assert_true(d.stale_retry && d.release_pick && !d.report_passive_failure);
    apply(&in, d);

    in.failure = CONNECT;
    in.uv_status = UV_ECONNREFUSED;
    in.reused = false;
    f.connect_yes = true;
    f.connect_delay = 40;
    d = gw_hretry_decide(&in, &hooks);
    assert_int_equal(d.action, NEXT);
    assert_int_equal(d.delay_ms, 40);
    assert_false(d.release_pick);
    apply(&in, d);
    assert_int_equal(in.attempt, 1);

    in.failure = BROKEN;
    in.uv_status = UV_ECONNRESET;
    f.budget_yes = true;
    d = gw_hretry_decide(&in, &hooks);
    assert_int_equal(d.action, FRESH);
    assert_false(d.stale_retry);
    apply(&in, d);
    assert_int_equal(in.attempt, 0);
    assert_int_equal(in.tries, 3);

    in.failure = BROKEN;
    in.uv_status = UV_EOF;
    in.reused = true;
    f.budget_yes = false;
    d = gw_hretry_decide(&in, &hooks);
    assert_int_equal(d.action, ANSWER);
    assert_int_equal(d.status, 502);
    assert_string_equal(f.calls, "report(-111) connect_retry(1) report(-104) may_retry(3) "
                                 "may_retry(4)");
}

/* A GET meets a 503 (sent again on a fresh pick that avoids that backend, after 03's
 * backoff, nothing reported), then a 503 again when the budget has no slot left: that
 * answer goes to the client. */
static void hretry_5xx_event_by_event(void **state)
{
    (void)state;
    fake_t f = {.budget_yes = true, .retry_delay = 15};
    gw_hretry_hooks_t hooks = {fake_report, fake_connect_retry, fake_may_retry, &f};
    gw_hretry_in_t in = {.picked = true,
                         .idempotent = true,
                         .max_attempts = 2,
                         .retry_on = GW_HRETRY_ON_DEFAULT | ON_503};
    in.failure = STATUS;
    in.status = 503;
    in.resp_bytes = true;
    gw_hretry_t d = gw_hretry_decide(&in, &hooks);
    assert_int_equal(d.action, FRESH);
    assert_int_equal(d.delay_ms, 15);
    assert_true(d.avoid_tried && d.release_pick && !d.report_passive_failure && !d.stale_retry);
    apply(&in, d);

    f.budget_yes = false;
    d = gw_hretry_decide(&in, &hooks);
    assert_int_equal(d.action, PASS);
    assert_false(d.release_pick); /* the pick serves the 503 going out */
    assert_int_equal(d.status, 0);
    assert_string_equal(f.calls, "may_retry(1) may_retry(2)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hretry_connect_retries_through_the_picker),
        cmocka_unit_test(hretry_stale_pooled_connection_once_and_idempotent_only),
        cmocka_unit_test(hretry_middleware_and_statuses),
        cmocka_unit_test(hretry_local_shortage_is_not_the_backends_fault),
        cmocka_unit_test(hretry_retry_on_chooses_what_the_middleware_retries),
        cmocka_unit_test(hretry_5xx_retried_only_when_listed_and_intact),
        cmocka_unit_test(hretry_on_bits),
        cmocka_unit_test(hretry_policies_in_order),
        cmocka_unit_test(hretry_replays_only_an_intact_request),
        cmocka_unit_test(hretry_null_hooks),
        cmocka_unit_test(hretry_one_request_event_by_event),
        cmocka_unit_test(hretry_5xx_event_by_event),
    };
    return cmocka_run_group_tests_name("hretry", tests, NULL, NULL);
}
