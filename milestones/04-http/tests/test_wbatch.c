/* test_wbatch.c - the engine's writer, over a fake stream: writes per read, copy or pin,
 * re-chunking, what a queued write costs, order across destinations, errors. */
#include "gwtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "04-http/wbatch.h"
#include "error.h"
#include "fakestream.h"

/* ---- a fake stream (common/testsupport/fakestream.h): what is "sent" lands in its buffer,
 * the test says how much a try_write takes and when queued writes complete ------------- */

typedef gw_fakestream_t fake_t;

/* The peer drains: every queued write is "sent" and completes. */
static void fake_complete_all(fake_t *f, int status)
{
    gw_fakestream_complete(f, status);
}

/* ---- fixtures ------------------------------------------------------------------------------ */

typedef struct env_s {
    gw_bufpool_t pool;
    gw_bufcache_t cache;
    gw_wb_t w;
    fake_t *f[2];
    gw_wdest_t d[2];
    int errors[2], last_error[2], written[2];
} env_t;

static env_t *env_of(gw_wdest_t *d, int *i);
static env_t *current;

static void on_written(gw_wdest_t *d, int status)
{
    int i;
    env_t *e = env_of(d, &i);
    (void)status;
    e->written[i]++;
}

static void on_error(gw_wdest_t *d, int status)
{
    int i;
    env_t *e = env_of(d, &i);
    e->errors[i]++;
    e->last_error[i] = status;
}

static const gw_wdest_ops_t ops = {on_written, on_error};

static env_t *env_of(gw_wdest_t *d, int *i)
{
    *i = d == &current->d[0] ? 0 : 1;
    return current;
}

static int setup(void **state)
{
    env_t *e = calloc(1, sizeof *e);
    assert_non_null(e);
    assert_int_equal(gw_bufpool_init(&e->pool, 16384, 1 << 20), 0);
    gw_bufcache_init(&e->cache, &e->pool, 16);
    assert_int_equal(gw_wb_init(&e->w, &e->cache, 16384), 0);
    for (int i = 0; i < 2; i++) {
        e->f[i] = calloc(1, sizeof *e->f[i]);
        assert_non_null(e->f[i]);
        gw_fakestream_init(e->f[i], NULL, NULL, NULL); /* written to only: no reads */
        gw_wdest_init(&e->d[i], &e->f[i]->s, &ops);
    }
    current = e;
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env_t *e = *state;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(e->f[i]->npending, 0);
        assert_int_equal(e->d[i].queued, 0);
        gw_fakestream_free(e->f[i]);
        free(e->f[i]);
    }
    gw_wb_free(&e->w);
    gw_bufcache_drain(&e->cache);
    assert_int_equal(atomic_load(&e->pool.nchunks), 0); /* every pinned chunk came back */
    free(e);
    return 0;
}

/* A read chunk holding DATA, with the reader's reference. */
static gw_chunk_t *chunk_with(env_t *e, const char *data, size_t n)
{
    gw_chunk_t *ch = gw_chunk_get(&e->cache);
    assert_non_null(ch);
    gw_chunk_ref(ch);
    memcpy(ch->data, data, n);
    ch->len = (uint32_t)n;
    return ch;
}

static void expect_out(fake_t *f, const char *want, size_t n)
{
    if (f->nout != n || memcmp(f->out, want, n) != 0)
        fail_msg("sent %zu bytes, want %zu: got [%.*s]", f->nout, n,
                 (int)(f->nout < 200 ? f->nout : 200), f->out);
}

/* ---- tests --------------------------------------------------------------------------------- */

/* 16 KiB of 1-byte chunks is one read of ~2,700 spans: they leave in ONE write, re-chunked
 * as one chunk (today's engine made one write per span, ~2,700 system calls). */
static void wbatch_tiny_chunks_of_one_read_are_one_write(void **state)
{
    env_t *e = *state;
    enum { N = 2730 };
    char data[N];
    for (int i = 0; i < N; i++)
        data[i] = (char)('a' + i % 26);
    gw_chunk_t *ch = chunk_with(e, data, N);
    gw_wb_hold(&e->w);
    for (int i = 0; i < N; i++)
        assert_int_equal(gw_wb_body(&e->w, &e->d[0], ch, ch->data + i, 1, true), 0);
    gw_wb_release(&e->w);
    gw_chunk_unref(&e->cache, ch);
    assert_int_equal(e->f[0]->syscalls, 1);
    assert_int_equal(e->w.writes, 1);
    char want[N + 16];
    int hl = snprintf(want, sizeof want, "%x\r\n", N);
    memcpy(want + hl, data, N);
    memcpy(want + hl + N, "\r\n", 2);
    expect_out(e->f[0], want, (size_t)hl + N + 2);
    assert_int_equal(e->w.copied, N);
}

/* More small spans than the scratch area holds: a few writes, never one per span, and the
 * bytes are intact. */
static void wbatch_more_than_scratch_takes_few_writes(void **state)
{
    env_t *e = *state;
    enum { N = 40000 };
    char *data = malloc(N);
    for (int i = 0; i < N; i++)
        data[i] = (char)('A' + i % 7);
    gw_wb_hold(&e->w);
    for (int i = 0; i < N; i += 10)
        assert_int_equal(gw_wb_body(&e->w, &e->d[0], NULL, data + i, 10, false), 0);
    gw_wb_release(&e->w);
    assert_true(e->f[0]->syscalls <= 3);
    expect_out(e->f[0], data, N);
    free(data);
}

/* A large span is sent from the read chunk (zero-copy) and the chunk stays pinned while the
 * write is queued; the chunked framing goes around it. */
static void wbatch_large_span_is_pinned_not_copied(void **state)
{
    env_t *e = *state;
    char data[8192];
    memset(data, 'x', sizeof data);
    gw_chunk_t *ch = chunk_with(e, data, sizeof data);
    e->f[0]->accept = 0; /* the socket is full */
    assert_int_equal(gw_wb_body(&e->w, &e->d[0], ch, ch->data, sizeof data, true), 0);
    assert_int_equal(e->w.copied, 0);
    assert_int_equal(e->f[0]->npending, 1);
    /* the chunk itself */
    assert_ptr_equal(gw_fakestream_pending(e->f[0], 0)->u.q.bufs[1].base, ch->data);
    assert_int_equal((uintptr_t)ch->owner, 2);            /* reader + write */
    gw_chunk_unref(&e->cache, ch);                     /* the reader is done */
    assert_int_equal((uintptr_t)ch->owner, 1);
    fake_complete_all(e->f[0], 0);
    assert_int_equal(e->written[0], 1);
    char want[8300];
    memcpy(want, "2000\r\n", 6);
    memcpy(want + 6, data, sizeof data);
    memcpy(want + 6 + sizeof data, "\r\n", 2);
    expect_out(e->f[0], want, 6 + sizeof data + 2);
}

/* A small response queued behind a slow client costs its own bytes, not the 16 KiB chunk it
 * was read into: what let a pipelining client pin the whole pool. */
static void wbatch_small_write_queued_costs_its_bytes(void **state)
{
    env_t *e = *state;
    gw_chunk_t *ch = chunk_with(e, "0123456789", 10);
    e->f[0]->accept = 0;
    gw_wb_hold(&e->w);
    assert_int_equal(gw_wb_copy(&e->w, &e->d[0], "HTTP/1.1 200 OK\r\n\r\n", 19), 0);
    assert_int_equal(gw_wb_body(&e->w, &e->d[0], ch, ch->data, 10, false), 0);
    gw_wb_release(&e->w);
    assert_int_equal((uintptr_t)ch->owner, 1); /* not pinned */
    gw_chunk_unref(&e->cache, ch);
    assert_int_equal(e->d[0].queued, gw_wb_cost(0, 16384, 29));
    assert_true(e->d[0].queued < 512);
    assert_int_equal(e->d[0].nreqs, 1);
    fake_complete_all(e->f[0], 0);
    assert_int_equal(e->d[0].queued, 0);
    expect_out(e->f[0], "HTTP/1.1 200 OK\r\n\r\n0123456789", 29);
}

/* A pinned chunk is charged at its full size: the bound holds whatever the payload. */
static void wbatch_pinned_write_costs_the_chunk(void **state)
{
    env_t *e = *state;
    char data[2048];
    memset(data, 'p', sizeof data);
    gw_chunk_t *ch = chunk_with(e, data, sizeof data);
    e->f[0]->accept = 100; /* part goes at once */
    assert_int_equal(gw_wb_body(&e->w, &e->d[0], ch, ch->data, sizeof data, false), 0);
    gw_chunk_unref(&e->cache, ch);
    assert_int_equal(e->d[0].queued, gw_wb_cost(1, 16384, 0));
    assert_int_equal(gw_wb_pending(&e->w, &e->d[0]), e->d[0].queued);
    fake_complete_all(e->f[0], 0);
    expect_out(e->f[0], data, sizeof data);
}

/* A head and the body bytes read with it leave in one system call. */
static void wbatch_head_and_body_in_one_write(void **state)
{
    env_t *e = *state;
    char body[4000];
    memset(body, 'b', sizeof body);
    gw_chunk_t *ch = chunk_with(e, body, sizeof body);
    gw_wb_hold(&e->w);
    char *p = gw_wb_reserve(&e->w, &e->d[0], 64);
    assert_non_null(p);
    memcpy(p, "HTTP/1.1 200 OK\r\n\r\n", 19);
    gw_wb_commit(&e->w, 19);
    assert_int_equal(gw_wb_body(&e->w, &e->d[0], ch, ch->data, sizeof body, false), 0);
    gw_wb_release(&e->w);
    gw_chunk_unref(&e->cache, ch);
    assert_int_equal(e->f[0]->syscalls, 1);
    assert_int_equal(e->f[0]->nout, 19 + sizeof body);
}

/* Writing to another destination first sends what was gathered for the first: each stream
 * gets its bytes in order. */
static void wbatch_other_destination_flushes_first(void **state)
{
    env_t *e = *state;
    gw_wb_hold(&e->w);
    assert_int_equal(gw_wb_copy(&e->w, &e->d[0], "a1", 2), 0);
    assert_int_equal(e->f[0]->syscalls, 0);
    assert_int_equal(gw_wb_copy(&e->w, &e->d[1], "b1", 2), 0);
    assert_int_equal(e->f[0]->syscalls, 1);
    assert_int_equal(gw_wb_copy(&e->w, &e->d[0], "a2", 2), 0);
    gw_wb_release(&e->w);
    expect_out(e->f[0], "a1a2", 4);
    expect_out(e->f[1], "b1", 2);
}

/* Once a destination has a queued write, later bytes queue behind it (never jump it with a
 * direct write). */
static void wbatch_never_jumps_the_queue(void **state)
{
    env_t *e = *state;
    e->f[0]->accept = 3;
    assert_int_equal(gw_wb_copy(&e->w, &e->d[0], "first", 5), 0);
    e->f[0]->accept = SIZE_MAX; /* room again, but "st" is still queued */
    assert_int_equal(gw_wb_copy(&e->w, &e->d[0], "second", 6), 0);
    assert_int_equal(e->d[0].nreqs, 2);
    fake_complete_all(e->f[0], 0);
    expect_out(e->f[0], "firstsecond", 11);
}

/* A refused write is reported once; later writes to that destination are refused, the
 * other destination is unaffected. */
static void wbatch_error_reported_once(void **state)
{
    env_t *e = *state;
    e->f[0]->fail = UV_EPIPE;
    assert_int_not_equal(gw_wb_copy(&e->w, &e->d[0], "x", 1), 0);
    assert_int_not_equal(gw_wb_copy(&e->w, &e->d[0], "y", 1), 0);
    assert_int_equal(e->errors[0], 1);
    assert_int_equal(e->last_error[0], UV_EPIPE);
    assert_int_equal(gw_wb_copy(&e->w, &e->d[1], "z", 1), 0);
    expect_out(e->f[1], "z", 1);
}

/* Under a hold, a failure is reported at the outermost release, not in the middle of the
 * caller's work; what the handler writes then is flushed too. */
static int rewrite_on_error;
static void on_error_writes(gw_wdest_t *d, int status)
{
    int i;
    env_t *e = env_of(d, &i);
    e->errors[i]++;
    e->last_error[i] = status;
    if (rewrite_on_error) /* a handler answering on the other destination (a 502, say) */
        assert_int_equal(gw_wb_copy(&e->w, &e->d[1 - i], "502", 3), 0);
}

static void wbatch_error_under_hold_waits_for_release(void **state)
{
    env_t *e = *state;
    static const gw_wdest_ops_t ops2 = {on_written, on_error_writes};
    e->d[0].ops = &ops2;
    rewrite_on_error = 1;
    e->f[0]->fail = UV_ECONNRESET;
    gw_wb_hold(&e->w);
    gw_wb_hold(&e->w);
    assert_int_equal(gw_wb_copy(&e->w, &e->d[0], "req", 3), 0); /* gathered, not tried */
    gw_wb_flush(&e->w);
    assert_int_equal(e->d[0].error, UV_ECONNRESET);
    assert_int_not_equal(gw_wb_copy(&e->w, &e->d[0], "more", 4), 0);
    gw_wb_release(&e->w);
    assert_int_equal(e->errors[0], 0); /* inner release: not yet */
    gw_wb_release(&e->w);
    assert_int_equal(e->errors[0], 1);
    expect_out(e->f[1], "502", 3);
    rewrite_on_error = 0;
}

/* A destination that closes loses its open batch; its pinned chunks come back. */
static void wbatch_drop_forgets_open_batch(void **state)
{
    env_t *e = *state;
    char data[4096];
    memset(data, 'd', sizeof data);
    gw_chunk_t *ch = chunk_with(e, data, sizeof data);
    gw_wb_hold(&e->w);
    assert_int_equal(gw_wb_body(&e->w, &e->d[0], ch, ch->data, sizeof data, false), 0);
    assert_int_equal((uintptr_t)ch->owner, 2);
    gw_wb_drop(&e->w, &e->d[0]);
    assert_int_equal((uintptr_t)ch->owner, 1);
    gw_wb_release(&e->w);
    gw_chunk_unref(&e->cache, ch);
    assert_int_equal(e->f[0]->syscalls, 0);
    assert_int_equal(e->f[0]->nout, 0);
}

/* Pieces per write stay bounded (IOV_MAX), however the spans alternate. */
static void wbatch_pieces_per_write_bounded(void **state)
{
    env_t *e = *state;
    char big[2000];
    memset(big, 'L', sizeof big);
    gw_chunk_t *chs[8];
    for (int i = 0; i < 8; i++)
        chs[i] = chunk_with(e, big, sizeof big);
    gw_wb_hold(&e->w);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(gw_wb_body(&e->w, &e->d[0], chs[i], chs[i]->data, sizeof big, true), 0);
        assert_int_equal(gw_wb_body(&e->w, &e->d[0], NULL, "s", 1, true), 0);
    }
    gw_wb_release(&e->w);
    for (int i = 0; i < 8; i++)
        gw_chunk_unref(&e->cache, chs[i]);
    assert_true(e->f[0]->iov_max <= GW_WB_IOV);
    assert_true(e->f[0]->syscalls <= 3); /* GW_WB_PINS chunks per write */
    /* The output parses back as the same chunks, in order. */
    size_t o = 0;
    for (int i = 0; i < 8; i++) {
        assert_memory_equal(e->f[0]->out + o, "7d0\r\n", 5);
        o += 5 + sizeof big + 2;
        assert_memory_equal(e->f[0]->out + o, "1\r\ns\r\n", 6);
        o += 6;
    }
    assert_int_equal(o, e->f[0]->nout);
}

/* A head bigger than the scratch area goes from the heap, after what was gathered. */
static void wbatch_heap_after_batch(void **state)
{
    env_t *e = *state;
    gw_wb_hold(&e->w);
    assert_int_equal(gw_wb_copy(&e->w, &e->d[0], "pre", 3), 0);
    size_t n = 20000;
    char *h = malloc(n);
    memset(h, 'h', n);
    e->f[0]->accept = 3 + 5000;
    assert_int_equal(gw_wb_heap(&e->w, &e->d[0], h, n), 0);
    gw_wb_release(&e->w);
    assert_int_equal(e->d[0].nreqs, 1);
    assert_true(e->d[0].queued >= n - 5000);
    fake_complete_all(e->f[0], 0);
    assert_int_equal(e->f[0]->nout, 3 + n);
    assert_memory_equal(e->f[0]->out, "prehhh", 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(wbatch_tiny_chunks_of_one_read_are_one_write, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(wbatch_more_than_scratch_takes_few_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(wbatch_large_span_is_pinned_not_copied, setup, teardown),
        cmocka_unit_test_setup_teardown(wbatch_small_write_queued_costs_its_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(wbatch_pinned_write_costs_the_chunk, setup, teardown),
        cmocka_unit_test_setup_teardown(wbatch_head_and_body_in_one_write, setup, teardown),
        cmocka_unit_test_setup_teardown(wbatch_other_destination_flushes_first, setup, teardown),
        cmocka_unit_test_setup_teardown(wbatch_never_jumps_the_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(wbatch_error_reported_once, setup, teardown),
        cmocka_unit_test_setup_teardown(wbatch_error_under_hold_waits_for_release, setup, teardown),
        cmocka_unit_test_setup_teardown(wbatch_drop_forgets_open_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(wbatch_pieces_per_write_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(wbatch_heap_after_batch, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
