/* test_stream.c - unit tests for stream.h: the plaintext stream over a real loopback TCP
 * connection (the peer is a plain blocking socket the test drives), the starve list, and the
 * fake stream other tests use (testsupport/fakestream.h). */
#include "gwtest.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "buf.h"
#include "fakestream.h"
#include "stream.h"

#define MAX_READS 64
#define BIG (4u << 20) /* more than loopback's socket buffers hold */

typedef struct wreq_s {
    gw_stream_write_t req;
    int id;
} wreq_t;

typedef struct fixture_s {
    uv_loop_t loop;
    uv_timer_t guard; /* ticks while a test waits: fails it after GUARD_TICKS */
    int ticks;
    gw_bufpool_t pool;
    gw_bufcache_t cache;
    gw_stream_env_t env;
    gw_tcp_stream_t ts;
    bool ts_open;
    int peer; /* the other end: a blocking socket with a receive timeout */
    /* what the owner heard */
    char got[256];
    size_t ngot;
    int reads, eofs, errors, last_error, enobufs;
    int done[8], ndone, statuses[8];
    int shutdowns, shutdown_status, closes;
} fixture_t;

static fixture_t *cur;

static void on_read(gw_stream_t *s, gw_chunk_t *ch, ssize_t n)
{
    fixture_t *f = s->data;
    if (n > 0) {
        assert_non_null(ch);
        assert_int_equal(ch->len, (uint32_t)n);
        assert_int_equal(ch->off, 0);
        assert_int_equal((uintptr_t)ch->owner, 1); /* the reader's reference */
        size_t k = (size_t)n < sizeof f->got - f->ngot ? (size_t)n : sizeof f->got - f->ngot;
        memcpy(f->got + f->ngot, ch->data, k);
        f->ngot += k;
        f->reads++;
        gw_chunk_unref(&f->cache, ch);
        return;
    }
    assert_null(ch);
    assert_true(n != 0);
    if (n == UV_ENOBUFS)
        f->enobufs++; /* must never happen: the stream waits by itself */
    else if (n == UV_EOF)
        f->eofs++;
    else {
        f->errors++;
        f->last_error = (int)n;
    }
}

#define GUARD_TICK_MS 10
#define GUARD_TICKS 500

static void on_guard(uv_timer_t *t)
{
    fixture_t *f = t->data;
    if (++f->ticks > GUARD_TICKS)
        fail_msg("the loop waited too long");
}

/* Runs the loop one turn at a time until COND holds. The guard ticks, so that a turn never
 * sleeps long when COND became true at its start (by a timer), and fails the test after 5 s. */
#define RUN_UNTIL(f, cond)                                                                         \
    do {                                                                                           \
        (f)->ticks = 0;                                                                            \
        uv_timer_start(&(f)->guard, on_guard, GUARD_TICK_MS, GUARD_TICK_MS);                       \
        while (!(cond))                                                                            \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        uv_timer_stop(&(f)->guard);                                                                \
    } while (0)

/* A connected loopback pair: *A and *B. */
static void tcp_pair(int *a, int *b)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(l >= 0);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof in;
    assert_int_equal(bind(l, (struct sockaddr *)&in, sizeof in), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&in, &len), 0);
    *a = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(*a, (struct sockaddr *)&in, sizeof in), 0);
    *b = accept(l, NULL, NULL);
    assert_true(*b >= 0);
    close(l);
}

static int setup_pool(void **state, size_t max_bytes)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->guard);
    f->guard.data = f;
    assert_int_equal(gw_bufpool_init(&f->pool, 4096, max_bytes), 0);
    gw_bufcache_init(&f->cache, &f->pool, 8);
    assert_int_equal(gw_stream_env_init(&f->env, &f->loop, &f->cache), 0);
    f->env.retry_ms = 1; /* starvation tests need not wait 20 ms */
    int mine;
    tcp_pair(&mine, &f->peer);
    struct timeval tv = {5, 0};
    setsockopt(f->peer, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(gw_tcp_stream_init(&f->ts, &f->loop, &f->env, on_read, f), 0);
    assert_int_equal(uv_tcp_open(&f->ts.tcp, mine), 0);
    f->ts_open = true;
    cur = f;
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_pool(state, 1 << 20);
}

/* A pool of exactly one chunk. */
static int setup_tiny(void **state)
{
    return setup_pool(state, 4096);
}

static void on_closed(gw_stream_t *s)
{
    fixture_t *f = s->data;
    f->closes++;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (!gw_stream_closing(&f->ts.s))
        gw_stream_close(&f->ts.s, false, on_closed);
    gw_stream_env_close(&f->env);
    gw_test_close_loop(&f->loop);
    assert_int_equal(f->closes, 1);
    assert_int_equal(f->enobufs, 0);
    close(f->peer);
    gw_bufcache_drain(&f->cache);
    assert_int_equal(atomic_load(&f->pool.nchunks), 0); /* every chunk came back */
    free(f);
    return 0;
}

static void peer_send(fixture_t *f, const char *s)
{
    assert_int_equal(send(f->peer, s, strlen(s), 0), (ssize_t)strlen(s));
}

/* ---- reads ---------------------------------------------------------------------------------- */

static void stream_read_delivers_bytes_in_a_chunk(void **state)
{
    fixture_t *f = *state;
    peer_send(f, "hello");
    assert_int_equal(gw_stream_read_start(&f->ts.s), 0);
    RUN_UNTIL(f, f->ngot == 5);
    assert_memory_equal(f->got, "hello", 5);
    assert_int_equal(f->eofs + f->errors, 0);
}

static void stream_eof_after_peer_shutdown(void **state)
{
    fixture_t *f = *state;
    peer_send(f, "bye");
    shutdown(f->peer, SHUT_WR);
    assert_int_equal(gw_stream_read_start(&f->ts.s), 0);
    RUN_UNTIL(f, f->eofs == 1);
    assert_int_equal(f->ngot, 3);
    assert_int_equal(f->errors, 0);
}

static void stream_stopped_delivers_nothing_until_started(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(gw_stream_read_start(&f->ts.s), 0);
    assert_int_equal(gw_stream_read_start(&f->ts.s), 0); /* idempotent */
    assert_int_equal(gw_stream_read_stop(&f->ts.s), 0);
    peer_send(f, "late");
    for (int i = 0; i < 5; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->reads, 0);
    assert_int_equal(gw_stream_read_start(&f->ts.s), 0);
    RUN_UNTIL(f, f->ngot == 4);
    assert_memory_equal(f->got, "late", 4);
}

static void stream_peer_is_the_other_end(void **state)
{
    fixture_t *f = *state;
    struct sockaddr_storage ss, want;
    int len = sizeof ss;
    socklen_t wlen = sizeof want;
    assert_int_equal(gw_stream_peer(&f->ts.s, (struct sockaddr *)&ss, &len), 0);
    assert_int_equal(getsockname(f->peer, (struct sockaddr *)&want, &wlen), 0);
    assert_int_equal(len, (int)wlen);
    assert_memory_equal(&ss, &want, wlen);
}

/* ---- writes --------------------------------------------------------------------------------- */

static void on_written(gw_stream_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;
    fixture_t *f = req->stream->data;
    f->statuses[f->ndone] = status;
    f->done[f->ndone++] = w->id;
}

/* The peer reads N bytes (blocking, with the receive timeout) and checks they are all C. */
static void peer_expect(fixture_t *f, size_t n, char c, char *buf, size_t cap)
{
    while (n > 0) {
        ssize_t r = recv(f->peer, buf, n < cap ? n : cap, 0);
        assert_true(r > 0);
        for (ssize_t i = 0; i < r; i++)
            if (buf[i] != c)
                fail_msg("byte %zd is '%c', want '%c'", i, buf[i], c);
        n -= (size_t)r;
    }
}

/* With the socket full, writes queue; try_write then takes nothing (it never jumps the
 * queue); they complete in order once the peer reads, and the bytes arrive in order. */
static void stream_writes_complete_in_order_and_try_write_never_jumps(void **state)
{
    fixture_t *f = *state;
    char *big[3];
    wreq_t w[3];
    for (int i = 0; i < 3; i++) {
        big[i] = malloc(BIG);
        assert_non_null(big[i]);
        memset(big[i], 'a' + i, BIG);
        w[i].id = i;
        uv_buf_t b = uv_buf_init(big[i], BIG);
        assert_int_equal(gw_stream_write(&w[i].req, &f->ts.s, &b, 1, on_written), 0);
    }
    uv_buf_t x = uv_buf_init("x", 1);
    assert_int_equal(gw_stream_try_write(&f->ts.s, &x, 1), UV_EAGAIN);
    char *buf = malloc(65536);
    assert_non_null(buf);
    for (int i = 0; i < 3; i++) {
        /* the peer reads while the loop writes: alternate one turn and one read */
        size_t left = BIG;
        while (left > 0) {
            uv_run(&f->loop, UV_RUN_NOWAIT);
            ssize_t r = recv(f->peer, buf, left < 65536 ? left : 65536, MSG_DONTWAIT);
            if (r < 0) {
                assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
                continue;
            }
            assert_true(r > 0);
            for (ssize_t k = 0; k < r; k++)
                if (buf[k] != 'a' + i)
                    fail_msg("write %d: byte out of order", i);
            left -= (size_t)r;
        }
    }
    RUN_UNTIL(f, f->ndone == 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(f->done[i], i);
        assert_int_equal(f->statuses[i], 0);
        free(big[i]);
    }
    /* The queue is empty: the fast path takes bytes again. */
    assert_int_equal(gw_stream_try_write(&f->ts.s, &x, 1), 1);
    peer_expect(f, 1, 'x', buf, 65536);
    free(buf);
}

static void on_shutdown(gw_stream_shutdown_t *req, int status)
{
    fixture_t *f = req->stream->data;
    f->shutdowns++;
    f->shutdown_status = status;
}

static void stream_shutdown_sends_eof_after_queued_bytes(void **state)
{
    fixture_t *f = *state;
    wreq_t w = {.id = 7};
    uv_buf_t b = uv_buf_init("last words", 10);
    assert_int_equal(gw_stream_write(&w.req, &f->ts.s, &b, 1, on_written), 0);
    gw_stream_shutdown_t sr;
    assert_int_equal(gw_stream_shutdown(&sr, &f->ts.s, on_shutdown), 0);
    RUN_UNTIL(f, f->shutdowns == 1);
    assert_int_equal(f->shutdown_status, 0);
    assert_int_equal(f->ndone, 1);
    char buf[32];
    ssize_t r = recv(f->peer, buf, sizeof buf, 0);
    assert_int_equal(r, 10);
    assert_memory_equal(buf, "last words", 10);
    assert_int_equal(recv(f->peer, buf, sizeof buf, 0), 0); /* EOF */
    /* The other direction still works after our FIN. */
    peer_send(f, "ok");
    assert_int_equal(gw_stream_read_start(&f->ts.s), 0);
    RUN_UNTIL(f, f->ngot == 2);
}

/* ---- close ---------------------------------------------------------------------------------- */

static void stream_reset_close_gives_econnreset_at_peer(void **state)
{
    fixture_t *f = *state;
    gw_stream_close(&f->ts.s, true, on_closed);
    gw_stream_close(&f->ts.s, false, on_closed); /* a second close does nothing */
    RUN_UNTIL(f, f->closes == 1);
    char buf[8];
    errno = 0;
    assert_int_equal(recv(f->peer, buf, sizeof buf, 0), -1);
    assert_int_equal(errno, ECONNRESET);
}

static void stream_reset_close_after_shutdown_still_resets(void **state)
{
    fixture_t *f = *state;
    gw_stream_shutdown_t sr;
    assert_int_equal(gw_stream_shutdown(&sr, &f->ts.s, on_shutdown), 0);
    RUN_UNTIL(f, f->shutdowns == 1);
    char buf[8];
    assert_int_equal(recv(f->peer, buf, sizeof buf, 0), 0); /* our FIN */
    gw_stream_close(&f->ts.s, true, on_closed);
    RUN_UNTIL(f, f->closes == 1);
    /* After a graceful close the peer's next send would still succeed (the RST comes as
     * its answer); after a reset the peer already knows (Linux reports a reset in CLOSE_WAIT
     * as EPIPE). libuv's own uv_tcp_close_reset refuses a handle that was shut down. */
    errno = 0;
    assert_int_equal(send(f->peer, "more", 4, MSG_NOSIGNAL), -1);
    assert_true(errno == ECONNRESET || errno == EPIPE);
}

static void stream_graceful_close_gives_eof_at_peer(void **state)
{
    fixture_t *f = *state;
    gw_stream_close(&f->ts.s, false, on_closed);
    RUN_UNTIL(f, f->closes == 1);
    char buf[8];
    assert_int_equal(recv(f->peer, buf, sizeof buf, 0), 0);
}

static void stream_close_cancels_queued_writes_first(void **state)
{
    fixture_t *f = *state;
    char *big = malloc(BIG);
    assert_non_null(big);
    memset(big, 'z', BIG);
    wreq_t w = {.id = 1};
    uv_buf_t b = uv_buf_init(big, BIG);
    assert_int_equal(gw_stream_write(&w.req, &f->ts.s, &b, 1, on_written), 0);
    assert_int_equal(f->ndone, 0); /* the socket could not take 4 MiB at once */
    gw_stream_close(&f->ts.s, true, on_closed);
    RUN_UNTIL(f, f->closes == 1);
    assert_int_equal(f->ndone, 1);
    assert_int_equal(f->statuses[0], UV_ECANCELED);
    free(big);
}

/* ---- starvation ----------------------------------------------------------------------------- */

/* The pool's only chunk is taken: the read waits (the owner hears nothing, in particular no
 * ENOBUFS), and resumes by itself once the chunk is back. */
static void stream_starved_read_waits_and_resumes(void **state)
{
    fixture_t *f = *state;
    gw_chunk_t *hog = gw_chunk_get(&f->cache);
    assert_non_null(hog);
    assert_null(gw_chunk_get(&f->cache));
    peer_send(f, "patience");
    assert_int_equal(gw_stream_read_start(&f->ts.s), 0);
    RUN_UNTIL(f, gw_stream_starved(&f->ts.s));
    assert_ptr_equal(f->env.starved, &f->ts.s);
    for (int i = 0; i < 5; i++) /* retries keep finding the pool empty */
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(f->reads + f->eofs + f->errors + f->enobufs, 0);
    gw_chunk_put(&f->cache, hog);
    RUN_UNTIL(f, f->ngot == 8);
    assert_memory_equal(f->got, "patience", 8);
    assert_false(gw_stream_starved(&f->ts.s));
    assert_null(f->env.starved);
}

/* Stopped while starved: the retry does not start it; started again, it reads. */
static void stream_starved_then_stopped_stays_stopped(void **state)
{
    fixture_t *f = *state;
    gw_chunk_t *hog = gw_chunk_get(&f->cache);
    peer_send(f, "zz");
    assert_int_equal(gw_stream_read_start(&f->ts.s), 0);
    RUN_UNTIL(f, gw_stream_starved(&f->ts.s));
    assert_int_equal(gw_stream_read_stop(&f->ts.s), 0);
    gw_chunk_put(&f->cache, hog);
    RUN_UNTIL(f, !gw_stream_starved(&f->ts.s));
    for (int i = 0; i < 3; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->reads, 0);
    assert_int_equal(gw_stream_read_start(&f->ts.s), 0);
    RUN_UNTIL(f, f->ngot == 2);
}

/* A starved stream that closes leaves the list (the timer must not touch freed memory). */
static void stream_starved_close_leaves_the_list(void **state)
{
    fixture_t *f = *state;
    gw_chunk_t *hog = gw_chunk_get(&f->cache);
    peer_send(f, "q");
    assert_int_equal(gw_stream_read_start(&f->ts.s), 0);
    RUN_UNTIL(f, gw_stream_starved(&f->ts.s));
    gw_stream_close(&f->ts.s, false, on_closed);
    assert_null(f->env.starved);
    RUN_UNTIL(f, f->closes == 1);
    gw_chunk_put(&f->cache, hog);
}

/* ---- the fake stream ------------------------------------------------------------------------ */

static void fake_on_read(gw_stream_t *s, gw_chunk_t *ch, ssize_t n)
{
    on_read(s, ch, n);
}

/* The fake keeps the contract the writer and the engines rely on: order, the queue rule
 * for try_write, shutdown after the writes, cancellation at close, and starvation. */
static void fakestream_keeps_the_stream_contract(void **state)
{
    fixture_t *f = *state;
    gw_fakestream_t fk;
    gw_fakestream_init(&fk, &f->env, fake_on_read, f);
    fk.accept = 2;
    uv_buf_t b = uv_buf_init("abcd", 4);
    assert_int_equal(gw_stream_try_write(&fk.s, &b, 1), 2);
    wreq_t w1 = {.id = 1}, w2 = {.id = 2};
    uv_buf_t rest = uv_buf_init("cd", 2);
    assert_int_equal(gw_stream_write(&w1.req, &fk.s, &rest, 1, on_written), 0);
    fk.accept = SIZE_MAX;
    assert_int_equal(gw_stream_try_write(&fk.s, &b, 1), UV_EAGAIN); /* one is queued */
    uv_buf_t e = uv_buf_init("ef", 2);
    assert_int_equal(gw_stream_write(&w2.req, &fk.s, &e, 1, on_written), 0);
    gw_stream_shutdown_t sr;
    assert_int_equal(gw_stream_shutdown(&sr, &fk.s, on_shutdown), 0);
    gw_fakestream_complete(&fk, 0);
    assert_int_equal(f->ndone, 2);
    assert_int_equal(f->done[0], 1);
    assert_int_equal(f->done[1], 2);
    assert_int_equal(f->shutdowns, 1);
    assert_true(fk.shut);
    assert_int_equal(fk.nout, 6);
    assert_memory_equal(fk.out, "abcdef", 6);
    /* reads: only while reading; a chunk each */
    assert_false(gw_fakestream_deliver(&fk, "no", 2));
    assert_int_equal(gw_stream_read_start(&fk.s), 0);
    assert_true(gw_fakestream_deliver(&fk, "yes", 3));
    assert_int_equal(f->ngot, 3);
    gw_fakestream_end(&fk, UV_EOF);
    assert_int_equal(f->eofs, 1);
    /* close: a queued write is cancelled, then the close callback runs */
    wreq_t w3 = {.id = 3};
    assert_int_equal(gw_stream_write(&w3.req, &fk.s, &e, 1, on_written), 0);
    gw_stream_close(&fk.s, true, on_closed);
    assert_true(fk.reset);
    assert_int_equal(f->closes, 0);
    gw_fakestream_finish_close(&fk);
    assert_int_equal(f->done[2], 3);
    assert_int_equal(f->statuses[2], UV_ECANCELED);
    assert_int_equal(f->closes, 1);
    f->closes = 0; /* the teardown counts the TCP stream's close */
    gw_fakestream_free(&fk);
}

static void fakestream_starves_like_a_socket(void **state)
{
    fixture_t *f = *state;
    gw_fakestream_t fk;
    gw_fakestream_init(&fk, &f->env, fake_on_read, f);
    gw_chunk_t *hog = gw_chunk_get(&f->cache);
    assert_int_equal(gw_stream_read_start(&fk.s), 0);
    assert_false(gw_fakestream_deliver(&fk, "x", 1));
    assert_true(gw_stream_starved(&fk.s));
    assert_false(fk.reading);
    gw_chunk_put(&f->cache, hog);
    RUN_UNTIL(f, fk.reading); /* the retry timer started it again */
    assert_true(gw_fakestream_deliver(&fk, "x", 1));
    assert_int_equal(f->reads, 1);
    assert_int_equal(f->enobufs, 0);
    gw_stream_close(&fk.s, false, NULL);
    gw_fakestream_finish_close(&fk);
    gw_fakestream_free(&fk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(stream_read_delivers_bytes_in_a_chunk, setup, teardown),
        cmocka_unit_test_setup_teardown(stream_eof_after_peer_shutdown, setup, teardown),
        cmocka_unit_test_setup_teardown(stream_stopped_delivers_nothing_until_started, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(stream_peer_is_the_other_end, setup, teardown),
        cmocka_unit_test_setup_teardown(stream_writes_complete_in_order_and_try_write_never_jumps,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(stream_shutdown_sends_eof_after_queued_bytes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(stream_reset_close_gives_econnreset_at_peer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(stream_reset_close_after_shutdown_still_resets, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(stream_graceful_close_gives_eof_at_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(stream_close_cancels_queued_writes_first, setup, teardown),
        cmocka_unit_test_setup_teardown(stream_starved_read_waits_and_resumes, setup_tiny,
                                        teardown),
        cmocka_unit_test_setup_teardown(stream_starved_then_stopped_stays_stopped, setup_tiny,
                                        teardown),
        cmocka_unit_test_setup_teardown(stream_starved_close_leaves_the_list, setup_tiny, teardown),
        cmocka_unit_test_setup_teardown(fakestream_keeps_the_stream_contract, setup, teardown),
        cmocka_unit_test_setup_teardown(fakestream_starves_like_a_socket, setup_tiny, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
