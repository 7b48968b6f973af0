/* test_tcp_sm.c - the connection-pair rules, checked event by event with no sockets. */
#include "gwtest.h"

#include "01-tcp/tcp_sm.h"

#define HIGH 64
#define LOW 16

static gw_sm_t open_pair(void)
{
    gw_sm_t sm;
    gw_sm_init(&sm, HIGH, LOW);
    unsigned act = gw_sm_on(&sm, GW_EV_CONNECTED, GW_CLIENT, 0);
    assert_int_equal(act, GW_ACT_READ_START(GW_CLIENT) | GW_ACT_READ_START(GW_BACKEND));
    return sm;
}

/* Checkpoint 01.1: both sides are read once the backend answers, not before. */
static void sm_connected_starts_both_reads(void **state)
{
    (void)state;
    gw_sm_t sm;
    gw_sm_init(&sm, HIGH, LOW);
    assert_int_equal(sm.phase, GW_SM_CONNECTING);
    assert_false(sm.flow[GW_CLIENT].reading);
    sm = open_pair();
    assert_int_equal(sm.phase, GW_SM_OPEN);
    assert_true(sm.flow[GW_CLIENT].reading && sm.flow[GW_BACKEND].reading);
}

static void sm_connect_failed_closes(void **state)
{
    (void)state;
    gw_sm_t sm;
    gw_sm_init(&sm, HIGH, LOW);
    assert_int_equal(gw_sm_on(&sm, GW_EV_CONNECT_FAILED, GW_CLIENT, 0), GW_ACT_CLOSE);
    assert_int_equal(sm.phase, GW_SM_CLOSED);
}

/* Checkpoint 01.2: backpressure. Reading stops at the high-water mark... */
static void sm_read_past_high_water_stops_source(void **state)
{
    (void)state;
    gw_sm_t sm = open_pair();
    assert_int_equal(gw_sm_on(&sm, GW_EV_READ, GW_CLIENT, HIGH - 1), 0);
    assert_int_equal(gw_sm_on(&sm, GW_EV_READ, GW_CLIENT, 1), GW_ACT_READ_STOP(GW_CLIENT));
    assert_false(sm.flow[GW_CLIENT].reading);
    assert_true(sm.flow[GW_BACKEND].reading); /* the other direction is untouched */
    assert_int_equal(sm.flow[GW_CLIENT].queued, HIGH);
}

/* ...and resumes only at the low-water mark, not just below the high one (hysteresis). */
static void sm_written_to_low_water_resumes_source(void **state)
{
    (void)state;
    gw_sm_t sm = open_pair();
    gw_sm_on(&sm, GW_EV_READ, GW_BACKEND, HIGH);
    assert_false(sm.flow[GW_BACKEND].reading);
    /* Bytes from the backend are written to the client. */
    assert_int_equal(gw_sm_on(&sm, GW_EV_WRITTEN, GW_CLIENT, HIGH - LOW - 1), 0);
    assert_false(sm.flow[GW_BACKEND].reading);
    assert_int_equal(gw_sm_on(&sm, GW_EV_WRITTEN, GW_CLIENT, 1), GW_ACT_READ_START(GW_BACKEND));
    assert_true(sm.flow[GW_BACKEND].reading);
    assert_int_equal(sm.flow[GW_BACKEND].queued, LOW);
}

static void sm_written_while_reading_asks_nothing(void **state)
{
    (void)state;
    gw_sm_t sm = open_pair();
    gw_sm_on(&sm, GW_EV_READ, GW_CLIENT, 10);
    assert_int_equal(gw_sm_on(&sm, GW_EV_WRITTEN, GW_BACKEND, 10), 0);
    assert_int_equal(sm.flow[GW_CLIENT].queued, 0);
}

/* Checkpoint 01.3: half-close. A FIN with nothing queued is passed on at once... */
static void sm_eof_with_empty_queue_shuts_other_side(void **state)
{
    (void)state;
    gw_sm_t sm = open_pair();
    unsigned act = gw_sm_on(&sm, GW_EV_EOF, GW_CLIENT, 0);
    assert_int_equal(act, GW_ACT_READ_STOP(GW_CLIENT) | GW_ACT_SHUTDOWN(GW_BACKEND));
    assert_true(sm.flow[GW_BACKEND].reading); /* the reply direction keeps flowing */
    assert_int_equal(sm.phase, GW_SM_OPEN);
}

/* ...but only after every byte before it was written. */
static void sm_eof_waits_for_queue_before_shutdown(void **state)
{
    (void)state;
    gw_sm_t sm = open_pair();
    gw_sm_on(&sm, GW_EV_READ, GW_CLIENT, 30);
    assert_int_equal(gw_sm_on(&sm, GW_EV_EOF, GW_CLIENT, 0), GW_ACT_READ_STOP(GW_CLIENT));
    assert_int_equal(gw_sm_on(&sm, GW_EV_WRITTEN, GW_BACKEND, 20), 0);
    assert_int_equal(gw_sm_on(&sm, GW_EV_WRITTEN, GW_BACKEND, 10), GW_ACT_SHUTDOWN(GW_BACKEND));
    /* Never a second shutdown, and never a read restart after EOF. */
    assert_int_equal(gw_sm_on(&sm, GW_EV_WRITTEN, GW_BACKEND, 0), 0);
    assert_false(sm.flow[GW_CLIENT].reading);
}

static void sm_backend_eof_first_client_still_sends(void **state)
{
    (void)state;
    gw_sm_t sm = open_pair();
    assert_int_equal(gw_sm_on(&sm, GW_EV_EOF, GW_BACKEND, 0),
                     GW_ACT_READ_STOP(GW_BACKEND) | GW_ACT_SHUTDOWN(GW_CLIENT));
    assert_int_equal(gw_sm_on(&sm, GW_EV_SHUTDOWN_DONE, GW_CLIENT, 0), 0);
    /* The client keeps talking to the backend. */
    assert_int_equal(gw_sm_on(&sm, GW_EV_READ, GW_CLIENT, 5), 0);
    assert_int_equal(gw_sm_on(&sm, GW_EV_WRITTEN, GW_BACKEND, 5), 0);
    assert_true(sm.flow[GW_CLIENT].reading);
    assert_int_equal(sm.phase, GW_SM_OPEN);
}

/* The pair ends when both FINs went through, and not before. */
static void sm_both_directions_done_closes(void **state)
{
    (void)state;
    gw_sm_t sm = open_pair();
    gw_sm_on(&sm, GW_EV_EOF, GW_CLIENT, 0);
    assert_int_equal(gw_sm_on(&sm, GW_EV_SHUTDOWN_DONE, GW_BACKEND, 0), 0);
    assert_int_equal(sm.phase, GW_SM_OPEN);
    gw_sm_on(&sm, GW_EV_EOF, GW_BACKEND, 0);
    assert_int_equal(gw_sm_on(&sm, GW_EV_SHUTDOWN_DONE, GW_CLIENT, 0), GW_ACT_CLOSE);
    assert_int_equal(sm.phase, GW_SM_CLOSED);
}

/* Checkpoint 01.4: a failure on one side resets the other: a RST, not a FIN. */
static void sm_error_resets_other_side(void **state)
{
    (void)state;
    gw_sm_t sm = open_pair();
    unsigned act = gw_sm_on(&sm, GW_EV_ERROR, GW_BACKEND, 0);
    assert_int_equal(act, GW_ACT_RESET(GW_CLIENT) | GW_ACT_CLOSE);
    sm = open_pair();
    act = gw_sm_on(&sm, GW_EV_ERROR, GW_CLIENT, 0);
    assert_int_equal(act, GW_ACT_RESET(GW_BACKEND) | GW_ACT_CLOSE);
}

static void sm_error_after_half_close_still_resets(void **state)
{
    (void)state;
    gw_sm_t sm = open_pair();
    gw_sm_on(&sm, GW_EV_EOF, GW_CLIENT, 0);
    gw_sm_on(&sm, GW_EV_SHUTDOWN_DONE, GW_BACKEND, 0);
    assert_int_equal(gw_sm_on(&sm, GW_EV_ERROR, GW_BACKEND, 0),
                     GW_ACT_RESET(GW_CLIENT) | GW_ACT_CLOSE);
}

static void sm_idle_timeout_closes_gracefully(void **state)
{
    (void)state;
    gw_sm_t sm = open_pair();
    assert_int_equal(gw_sm_on(&sm, GW_EV_IDLE_TIMEOUT, GW_CLIENT, 0), GW_ACT_CLOSE);
}

static void sm_force_close_resets_both(void **state)
{
    (void)state;
    gw_sm_t sm = open_pair();
    assert_int_equal(gw_sm_on(&sm, GW_EV_FORCE_CLOSE, GW_CLIENT, 0),
                     GW_ACT_RESET(GW_CLIENT) | GW_ACT_RESET(GW_BACKEND) | GW_ACT_CLOSE);
}

static void sm_events_after_close_are_ignored(void **state)
{
    (void)state;
    gw_sm_t sm = open_pair();
    gw_sm_on(&sm, GW_EV_ERROR, GW_CLIENT, 0);
    assert_int_equal(gw_sm_on(&sm, GW_EV_READ, GW_BACKEND, HIGH * 2), 0);
    assert_int_equal(gw_sm_on(&sm, GW_EV_EOF, GW_BACKEND, 0), 0);
    assert_int_equal(gw_sm_on(&sm, GW_EV_ERROR, GW_BACKEND, 0), 0);
}

/* A long random-ish schedule: the queue never exceeds high water plus one read, and a
 * paused source always resumes once its queue drains. */
static void sm_queue_bounded_under_any_schedule(void **state)
{
    (void)state;
    gw_sm_t sm = open_pair();
    uint32_t seed = 12345;
    size_t inflight = 0;
    for (int i = 0; i < 100000; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t n = (seed >> 16) % 20 + 1;
        if (sm.flow[GW_CLIENT].reading && (seed & 1)) {
            gw_sm_on(&sm, GW_EV_READ, GW_CLIENT, n);
            inflight += n;
        } else if (inflight > 0) {
            size_t w = n < inflight ? n : inflight;
            gw_sm_on(&sm, GW_EV_WRITTEN, GW_BACKEND, w);
            inflight -= w;
        }
        assert_true(sm.flow[GW_CLIENT].queued < HIGH + 20);
        assert_int_equal(sm.flow[GW_CLIENT].queued, inflight);
        if (inflight <= LOW)
            assert_true(sm.flow[GW_CLIENT].reading);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sm_connected_starts_both_reads),
        cmocka_unit_test(sm_connect_failed_closes),
        cmocka_unit_test(sm_read_past_high_water_stops_source),
        cmocka_unit_test(sm_written_to_low_water_resumes_source),
        cmocka_unit_test(sm_written_while_reading_asks_nothing),
        cmocka_unit_test(sm_eof_with_empty_queue_shuts_other_side),
        cmocka_unit_test(sm_eof_waits_for_queue_before_shutdown),
        cmocka_unit_test(sm_backend_eof_first_client_still_sends),
        cmocka_unit_test(sm_both_directions_done_closes),
        cmocka_unit_test(sm_error_resets_other_side),
        cmocka_unit_test(sm_error_after_half_close_still_resets),
        cmocka_unit_test(sm_idle_timeout_closes_gracefully),
        cmocka_unit_test(sm_force_close_resets_both),
        cmocka_unit_test(sm_events_after_close_are_ignored),
        cmocka_unit_test(sm_queue_bounded_under_any_schedule),
    };
    return cmocka_run_group_tests_name("tcp_sm", tests, NULL, NULL);
}
