/* test_mq.c - unit tests for mq.h: a cross-thread message queue into one uv loop. */
#include "gwtest.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "mq.h"

#define NMSG 100
#define NTHREADS 4
#define PER_THREAD 2000
#define NTOTAL (NTHREADS * PER_THREAD)

/* One test's state; mq.data points here. Only the loop thread touches it, except `mq`
 * itself (through gw_mq_post) and the read-only `start` barrier. */
typedef struct {
    uv_loop_t loop;
    gw_mq_t mq;
    uv_thread_t loop_thread;
    int received;
    int expected;     /* close the queue once this many arrived (0: never from on_msg) */
    int closed_calls; /* on_closed runs */
    int wrong_thread; /* on_msg calls off the loop thread */
    int out_of_order; /* on_msg calls that broke a sender's order */
    int last[NTHREADS + 1];
    unsigned char seen[NTOTAL];
    gw_msg_t *reposted;
    gw_msg_t late; /* posted from inside a handler */
    bool post_late;
    int at_close; /* messages delivered when gw_mq_close returned */
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    if (f == NULL || uv_loop_init(&f->loop) != 0) {
        free(f);
        return -1;
    }
    f->loop_thread = uv_thread_self();
    for (int i = 0; i <= NTHREADS; i++)
        f->last[i] = -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    gw_test_close_loop(&f->loop);
    free(f);
    return 0;
}

static void on_closed(gw_mq_t *mq)
{
    fixture_t *f = mq->data;
    f->closed_calls++;
}

static void never_msg(gw_mq_t *mq, gw_msg_t *msg)
{
    (void)mq;
    (void)msg;
    fail_msg("on_msg ran for a message that was never queued");
}

/* Messages carry (sender, sequence) in `type`: sender * PER_THREAD + seq. */
static void on_msg_count(gw_mq_t *mq, gw_msg_t *msg)
{
    fixture_t *f = mq->data;
    uv_thread_t self = uv_thread_self();
    if (!uv_thread_equal(&self, &f->loop_thread))
        f->wrong_thread++;
    int sender = msg->type / PER_THREAD, seq = msg->type % PER_THREAD;
    if (msg->type < 0 || sender > NTHREADS || seq <= f->last[sender])
        f->out_of_order++;
    else
        f->last[sender] = seq;
    if (msg->type >= 0 && msg->type < NTOTAL)
        f->seen[msg->type]++;
    f->received++;
    if (f->expected != 0 && f->received == f->expected)
        gw_mq_close(mq, on_closed);
}

static void mq_delivers_in_order_on_loop_thread(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(gw_mq_init(&f->loop, &f->mq, on_msg_count), 0);
    f->mq.data = f;
    f->expected = NMSG;
    gw_msg_t msgs[NMSG];
    for (int i = 0; i < NMSG; i++) {
        msgs[i].type = i;
        assert_int_equal(gw_mq_post(&f->mq, &msgs[i]), 0);
    }
    assert_int_equal(f->received, 0); /* nothing runs before the loop does */
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->received, NMSG);
    assert_int_equal(f->out_of_order, 0);
    assert_int_equal(f->wrong_thread, 0);
    assert_int_equal(f->closed_calls, 1);
    gw_mq_destroy(&f->mq);
}

typedef struct {
    gw_mq_t *mq;
    uv_barrier_t *start;
    int sender;
    gw_msg_t msgs[PER_THREAD];
    int failed_posts;
} poster_t;

static void poster(void *p)
{
    poster_t *a = p;
    uv_barrier_wait(a->start);
    for (int i = 0; i < PER_THREAD; i++) {
        a->msgs[i].type = a->sender * PER_THREAD + i;
        if (gw_mq_post(a->mq, &a->msgs[i]) != 0)
            a->failed_posts++;
    }
}

static void mq_posts_from_threads_arrive_exactly_once(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(gw_mq_init(&f->loop, &f->mq, on_msg_count), 0);
    f->mq.data = f;
    f->expected = NTOTAL;
    uv_barrier_t start;
    assert_int_equal(uv_barrier_init(&start, NTHREADS), 0);
    poster_t *posters = calloc(NTHREADS, sizeof *posters);
    assert_non_null(posters);
    uv_thread_t tids[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        posters[i].mq = &f->mq;
        posters[i].start = &start;
        posters[i].sender = i;
        assert_int_equal(uv_thread_create(&tids[i], poster, &posters[i]), 0);
    }
    /* Runs until on_msg_count closes the queue at the expected count. */
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(uv_thread_join(&tids[i]), 0);
    uv_barrier_destroy(&start);
    gw_mq_destroy(&f->mq);

    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(posters[i].failed_posts, 0);
    free(posters);
    assert_int_equal(f->received, NTOTAL);
    int not_once = 0;
    for (int i = 0; i < NTOTAL; i++)
        not_once += f->seen[i] != 1;
    assert_int_equal(not_once, 0);
    assert_int_equal(f->out_of_order, 0); /* each sender's messages in its order */
    assert_int_equal(f->wrong_thread, 0);
    assert_int_equal(f->closed_calls, 1);
}

static void mq_post_after_close_fails_and_caller_keeps_msg(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(gw_mq_init(&f->loop, &f->mq, never_msg), 0);
    f->mq.data = f;
    gw_mq_close(&f->mq, on_closed);
    gw_msg_t *msg = malloc(sizeof *msg);
    assert_non_null(msg);
    msg->type = 7;
    assert_int_equal(gw_mq_post(&f->mq, msg), GW_EINVAL);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->received, 0); /* never delivered */
    assert_int_equal(f->closed_calls, 1);
    assert_int_equal(msg->type, 7);
    free(msg); /* still ours: ASan reports a double free if the queue freed it */
    gw_mq_destroy(&f->mq);
}

static void mq_post_from_other_thread_after_close_fails(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(gw_mq_init(&f->loop, &f->mq, never_msg), 0);
    f->mq.data = f;
    gw_mq_close(&f->mq, on_closed);
    uv_barrier_t start;
    assert_int_equal(uv_barrier_init(&start, 1), 0);
    poster_t *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->mq = &f->mq;
    p->start = &start;
    uv_thread_t tid;
    assert_int_equal(uv_thread_create(&tid, poster, p), 0);
    assert_int_equal(uv_thread_join(&tid), 0);
    uv_barrier_destroy(&start);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(p->failed_posts, PER_THREAD);
    assert_int_equal(f->received, 0);
    assert_int_equal(f->closed_calls, 1);
    free(p);
    gw_mq_destroy(&f->mq);
}

static void mq_close_delivers_queued_messages(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(gw_mq_init(&f->loop, &f->mq, on_msg_count), 0);
    f->mq.data = f;
    gw_msg_t msgs[3];
    for (int i = 0; i < 3; i++) {
        msgs[i].type = i;
        assert_int_equal(gw_mq_post(&f->mq, &msgs[i]), 0);
    }
    /* Closed before the loop ever ran: the async callback never had a chance. */
    gw_mq_close(&f->mq, on_closed);
    assert_int_equal(f->received, 3);
    assert_int_equal(f->out_of_order, 0);
    assert_int_equal(f->seen[0] + f->seen[1] + f->seen[2], 3);
    assert_int_equal(f->closed_calls, 0); /* from the close callback, not before */
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->received, 3); /* and not a second time */
    assert_int_equal(f->closed_calls, 1);
    gw_mq_destroy(&f->mq);
}

static void mq_on_closed_runs_once(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(gw_mq_init(&f->loop, &f->mq, on_msg_count), 0);
    f->mq.data = f;
    gw_mq_close(&f->mq, on_closed);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->closed_calls, 1);
    gw_mq_destroy(&f->mq);
}

static void mq_close_accepts_null_on_closed(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(gw_mq_init(&f->loop, &f->mq, on_msg_count), 0);
    f->mq.data = f;
    gw_msg_t msg = {.type = 0};
    assert_int_equal(gw_mq_post(&f->mq, &msg), 0);
    gw_mq_close(&f->mq, NULL);
    assert_int_equal(f->received, 1);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->closed_calls, 0);
    gw_mq_destroy(&f->mq);
}

static void mq_stays_open_until_closed(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(gw_mq_init(&f->loop, &f->mq, on_msg_count), 0);
    f->mq.data = f;
    gw_msg_t msg = {.type = 0};
    assert_int_equal(gw_mq_post(&f->mq, &msg), 0);
    /* The open queue is an active handle: the loop has more to do after one turn. */
    assert_int_not_equal(uv_run(&f->loop, UV_RUN_NOWAIT), 0);
    assert_int_equal(f->received, 1);
    assert_int_equal(f->closed_calls, 0);
    gw_mq_close(&f->mq, on_closed);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->closed_calls, 1);
    gw_mq_destroy(&f->mq);
}

/* Reposts the first message it gets once, then closes after the second delivery. */
static void on_msg_repost(gw_mq_t *mq, gw_msg_t *msg)
{
    fixture_t *f = mq->data;
    f->received++;
    if (f->reposted == NULL) {
        f->reposted = msg;
        if (gw_mq_post(mq, msg) != 0)
            f->out_of_order++;
    } else {
        if (msg != f->reposted)
            f->out_of_order++;
        gw_mq_close(mq, on_closed);
    }
}

static void mq_handler_may_post_to_same_queue(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(gw_mq_init(&f->loop, &f->mq, on_msg_repost), 0);
    f->mq.data = f;
    gw_msg_t msg = {.type = 1};
    assert_int_equal(gw_mq_post(&f->mq, &msg), 0);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->received, 2);
    assert_int_equal(f->out_of_order, 0);
    assert_int_equal(f->closed_calls, 1);
    gw_mq_destroy(&f->mq);
}

/* Logs the order of delivery in `seen`. On message 0 it closes the queue from inside the
 * handler, first posting one more message (type 2) when `late` is set; `at_close` is how
 * many had been delivered when gw_mq_close returned. */
static void on_msg_close_inside(gw_mq_t *mq, gw_msg_t *msg)
{
    fixture_t *f = mq->data;
    f->seen[f->received++] = (unsigned char)msg->type;
    if (msg->type == 0) {
        if (f->post_late && gw_mq_post(mq, &f->late) != 0)
            f->out_of_order++;
        gw_mq_close(mq, on_closed);
        f->at_close = f->received;
    }
}

/* Posts messages 0 and 1 (they are delivered in one batch) and runs the loop. */
static void run_close_inside(fixture_t *f, bool post_late)
{
    assert_int_equal(gw_mq_init(&f->loop, &f->mq, on_msg_close_inside), 0);
    f->mq.data = f;
    f->post_late = post_late;
    f->late.type = 2;
    gw_msg_t msgs[2] = {{.type = 0}, {.type = 1}};
    assert_int_equal(gw_mq_post(&f->mq, &msgs[0]), 0);
    assert_int_equal(gw_mq_post(&f->mq, &msgs[1]), 0);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    gw_mq_destroy(&f->mq);
    assert_int_equal(f->out_of_order, 0);
    assert_int_equal(f->closed_calls, 1);
}

static void mq_close_from_handler_keeps_order(void **state)
{
    fixture_t *f = *state;
    run_close_inside(f, true);
    /* Posted 0, 1, then 2 (2 while 0 was being handled): delivered 0, 1, 2. */
    assert_int_equal(f->received, 3);
    assert_int_equal(f->seen[0], 0);
    assert_int_equal(f->seen[1], 1);
    assert_int_equal(f->seen[2], 2);
}

static void mq_close_from_handler_delivers_queued_before_returning(void **state)
{
    fixture_t *f = *state;
    run_close_inside(f, false);
    assert_int_equal(f->received, 2);
    /* mq.h: "messages already queued are still delivered to ON_MSG now": message 1 was
     * queued when the handler of message 0 called gw_mq_close. */
    assert_int_equal(f->at_close, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(mq_delivers_in_order_on_loop_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(mq_posts_from_threads_arrive_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(mq_post_after_close_fails_and_caller_keeps_msg, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(mq_post_from_other_thread_after_close_fails, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(mq_close_delivers_queued_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(mq_on_closed_runs_once, setup, teardown),
        cmocka_unit_test_setup_teardown(mq_close_accepts_null_on_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(mq_stays_open_until_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(mq_handler_may_post_to_same_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(mq_close_from_handler_keeps_order, setup, teardown),
        cmocka_unit_test_setup_teardown(mq_close_from_handler_delivers_queued_before_returning,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
