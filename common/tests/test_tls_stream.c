/* test_tls_stream.c - unit tests for tls_stream.h: the pure pump (gw_tls_next) as a table, and
 * the TLS stream itself as a server over a fake inner stream (testsupport/fakestream.h),
 * talking to a BearSSL client engine that the test drives in memory. Records cross in both
 * directions byte by byte or in random splits (a fixed seed); no socket, no certificate file.
 *
 * No private key is committed: the server's EC key is generated at setup with br_ec_keygen
 * from a seeded HMAC-DRBG. Building an X.509 certificate for it is not the point of these
 * tests, so the server sends a few arbitrary bytes as its "chain", and the client uses a
 * test-only br_x509_class (accept_any_x509 below) that ignores the chain and returns the
 * generated public key. Certificate validation is the x509 helpers' business, and the e2e
 * tests' with real certificates. */
#include "gwtest.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fakestream.h"
#include "rand.h"
#include "stream.h"
#include "tls_stream.h"

/* ---- the pure part ---------------------------------------------------------------------- */

#define SENDREC BR_SSL_SENDREC
#define RECVREC BR_SSL_RECVREC
#define SENDAPP BR_SSL_SENDAPP
#define RECVAPP BR_SSL_RECVAPP
#define CLOSED BR_SSL_CLOSED
#define OPEN (GW_TLS_F_HS | GW_TLS_F_HS_OK)

static void next_sends_records_before_anything_else(void **state)
{
    (void)state;
    /* a record to send, bytes to deliver, a write done: the record goes first */
    assert_int_equal(gw_tls_next(SENDREC | RECVAPP, OPEN | GW_TLS_V_READS | GW_TLS_V_DONE),
                     GW_TLS_SEND);
    /* but not while one is in flight, nor after INNER's shutdown or error */
    assert_int_not_equal(gw_tls_next(SENDREC, OPEN | GW_TLS_F_WRITING), GW_TLS_SEND);
    assert_int_not_equal(gw_tls_next(SENDREC, OPEN | GW_TLS_F_ISHUT), GW_TLS_SEND);
    assert_int_not_equal(gw_tls_next(SENDREC, OPEN | GW_TLS_F_ERR), GW_TLS_SEND);
    /* a closed stream does nothing at all */
    assert_int_equal(gw_tls_next(SENDREC | RECVAPP, OPEN | GW_TLS_V_CLOSING), GW_TLS_IDLE);
}

static void next_reads_inner_during_the_handshake_whatever_the_owner_asked(void **state)
{
    (void)state;
    assert_int_equal(gw_tls_next(RECVREC, 0), GW_TLS_READ_INNER);
    assert_int_equal(gw_tls_next(RECVREC, GW_TLS_F_IN_READING), GW_TLS_IDLE);
    assert_int_equal(gw_tls_next(RECVREC, GW_TLS_V_INPUT | GW_TLS_F_IN_READING), GW_TLS_FEED);
    /* once open, only for an owner that reads */
    assert_int_equal(gw_tls_next(RECVREC | SENDAPP, OPEN | GW_TLS_F_IN_READING), GW_TLS_STOP_INNER);
    assert_int_equal(gw_tls_next(RECVREC | SENDAPP, OPEN | GW_TLS_V_READS), GW_TLS_READ_INNER);
}

static void next_reports_the_handshake_once(void **state)
{
    (void)state;
    assert_int_equal(gw_tls_next(RECVREC | SENDAPP, 0), GW_TLS_HS_OK);
    assert_int_equal(gw_tls_next(CLOSED, GW_TLS_V_ENG_ERR), GW_TLS_HS_FAIL);
    assert_int_equal(gw_tls_next(RECVREC, GW_TLS_F_IN_EOF), GW_TLS_HS_FAIL);
    assert_int_equal(gw_tls_next(RECVREC, GW_TLS_F_ERR), GW_TLS_HS_FAIL);
    assert_int_not_equal(gw_tls_next(RECVREC | SENDAPP, GW_TLS_F_HS), GW_TLS_HS_OK);
}

/* Backpressure: an owner that does not read leaves decrypted bytes in the engine, and the
 * engine then has no room for records (RECVAPP excludes RECVREC): INNER is not read. */
static void next_stops_inner_when_the_owner_does_not_read(void **state)
{
    (void)state;
    assert_int_equal(gw_tls_next(RECVAPP | SENDAPP, OPEN | GW_TLS_F_IN_READING), GW_TLS_STOP_INNER);
    assert_int_equal(gw_tls_next(RECVAPP | SENDAPP, OPEN), GW_TLS_IDLE);
    assert_int_equal(gw_tls_next(RECVAPP | SENDAPP, OPEN | GW_TLS_V_READS), GW_TLS_DELIVER);
    /* held records wait too: nothing more is read while one chunk is held */
    assert_int_equal(gw_tls_next(RECVAPP | SENDAPP,
                                 OPEN | GW_TLS_V_READS | GW_TLS_V_INPUT | GW_TLS_F_IN_READING),
                     GW_TLS_DELIVER);
    assert_int_equal(gw_tls_next(RECVREC | SENDAPP,
                                 OPEN | GW_TLS_V_INPUT | GW_TLS_F_IN_READING | GW_TLS_V_READS),
                     GW_TLS_FEED);
}

static void next_ends_reads_after_the_bytes_before_it(void **state)
{
    (void)state;
    uint32_t f = OPEN | GW_TLS_V_READS | GW_TLS_F_IN_EOF;
    assert_int_equal(gw_tls_next(RECVAPP | SENDAPP, f), GW_TLS_DELIVER);
    assert_int_equal(gw_tls_next(RECVREC | SENDAPP, f | GW_TLS_V_INPUT), GW_TLS_FEED);
    assert_int_equal(gw_tls_next(RECVREC | SENDAPP, f), GW_TLS_EOF);
    assert_int_equal(gw_tls_next(CLOSED, OPEN | GW_TLS_V_READS), GW_TLS_EOF);
    assert_int_equal(gw_tls_next(CLOSED, OPEN | GW_TLS_V_READS | GW_TLS_V_ENG_ERR), GW_TLS_ERROR);
    assert_int_equal(gw_tls_next(CLOSED, OPEN | GW_TLS_V_READS | GW_TLS_F_ENDED), GW_TLS_IDLE);
    assert_int_equal(gw_tls_next(CLOSED, OPEN), GW_TLS_IDLE); /* told when it reads again */
}

static void next_says_close_notify_only_after_the_queued_writes(void **state)
{
    (void)state;
    uint32_t f = OPEN | GW_TLS_F_SHUT | GW_TLS_V_SHUT_REQ;
    assert_int_equal(gw_tls_next(SENDAPP, f | GW_TLS_V_QUEUED | GW_TLS_V_PLAIN), GW_TLS_ENCRYPT);
    assert_int_equal(gw_tls_next(SENDAPP, f | GW_TLS_V_QUEUED), GW_TLS_IDLE);
    assert_int_equal(gw_tls_next(SENDAPP, f | GW_TLS_V_QUEUED | GW_TLS_V_DONE), GW_TLS_COMPLETE);
    assert_int_equal(gw_tls_next(SENDAPP, f), GW_TLS_NOTIFY);
    /* the inner shutdown once the close_notify record is out */
    assert_int_equal(gw_tls_next(SENDREC, f | GW_TLS_F_NOTIFY), GW_TLS_SEND);
    assert_int_equal(gw_tls_next(SENDREC, f | GW_TLS_F_NOTIFY | GW_TLS_F_WRITING), GW_TLS_IDLE);
    assert_int_equal(gw_tls_next(RECVREC, f | GW_TLS_F_NOTIFY), GW_TLS_SHUT_INNER);
    /* not before the handshake completed */
    assert_int_equal(gw_tls_next(RECVREC, GW_TLS_F_SHUT | GW_TLS_V_SHUT_REQ | GW_TLS_F_IN_READING),
                     GW_TLS_IDLE);
}

static void next_quiet_never_calls_the_owner(void **state)
{
    (void)state;
    for (unsigned st = 0; st < 32; st++)
        for (uint32_t bits = 0; bits < 1u << 12; bits++) {
            /* every F bit, and the V bits spread over the same counter */
            uint32_t f = (bits & 0xfffu) | ((bits & 0xffu) << 16);
            gw_tls_act_t a = gw_tls_next(st, f | GW_TLS_V_QUIET);
            if (gw_tls_act_calls_owner(a))
                fail_msg("quiet state %u flags %x gave %s", st, f, gw_tls_act_name(a));
        }
}

/* ---- a server TLS stream and a client engine -------------------------------------------- */

#define CHUNK 4096
#define MAX_WRITES 64

typedef struct accept_any_x509_s {
    const br_x509_class *vtable;
    br_x509_pkey pkey;
} accept_any_x509_t;

static void ax_start_chain(const br_x509_class **ctx, const char *server_name)
{
    (void)ctx;
    (void)server_name;
}
static void ax_start_cert(const br_x509_class **ctx, uint32_t length)
{
    (void)ctx;
    (void)length;
}
static void ax_append(const br_x509_class **ctx, const unsigned char *buf, size_t len)
{
    (void)ctx;
    (void)buf;
    (void)len;
}
static void ax_end_cert(const br_x509_class **ctx)
{
    (void)ctx;
}
static unsigned ax_end_chain(const br_x509_class **ctx)
{
    (void)ctx;
    return 0; /* "valid" */
}
static const br_x509_pkey *ax_get_pkey(const br_x509_class *const *ctx, unsigned *usages)
{
    if (usages != NULL)
        *usages = BR_KEYTYPE_KEYX | BR_KEYTYPE_SIGN;
    return &((const accept_any_x509_t *)(const void *)ctx)->pkey;
}
static const br_x509_class accept_any_x509_vtable = {
    sizeof(accept_any_x509_t),
    ax_start_chain,
    ax_start_cert,
    ax_append,
    ax_end_cert,
    ax_end_chain,
    ax_get_pkey,
};

/* The server's key, made once per run from a fixed seed. */
static br_ec_private_key server_sk;
static br_ec_public_key server_pk;
static unsigned char sk_buf[BR_EC_KBUF_PRIV_MAX_SIZE], pk_buf[BR_EC_KBUF_PUB_MAX_SIZE];
static unsigned char not_a_certificate[] = "any bytes: the test client does not parse them";

static void make_key(void)
{
    if (server_sk.xlen != 0)
        return;
    br_hmac_drbg_context rng;
    br_hmac_drbg_init(&rng, &br_sha256_vtable, "gw tls stream test", 18);
    assert_true(
        br_ec_keygen(&rng.vtable, br_ec_get_default(), &server_sk, sk_buf, BR_EC_secp256r1) != 0);
    assert_true(br_ec_compute_pub(br_ec_get_default(), &server_pk, pk_buf, &server_sk) != 0);
}

typedef struct bytes_s {
    unsigned char *p;
    size_t n, cap;
} bytes_t;

static void bytes_add(bytes_t *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        assert_non_null(b->p);
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

typedef struct wreq_s {
    gw_stream_write_t req;
    int id;
} wreq_t;

typedef struct fixture_s {
    uv_loop_t loop;
    gw_bufpool_t pool;
    gw_bufcache_t cache;
    gw_stream_env_t env;
    gw_fakestream_t inner;
    gw_tls_stream_t ts;
    br_ssl_server_context sc;
    unsigned char sbuf[BR_SSL_BUFSIZE_BIDI];
    br_x509_certificate chain;
    /* the peer */
    br_ssl_client_context cc;
    br_x509_minimal_context xm; /* br_ssl_client_init_full wants one; replaced below */
    accept_any_x509_t ax;
    unsigned char cbuf[BR_SSL_BUFSIZE_BIDI];
    size_t s2c_off; /* bytes of inner.out already given to the client */
    bytes_t c2s;    /* client records not yet delivered to the stream */
    size_t c2s_off;
    bytes_t cout; /* plaintext the client still has to send */
    size_t cout_off;
    bytes_t cgot;   /* plaintext the client received */
    unsigned split; /* 1: byte by byte; else random pieces up to this */
    uint64_t rng;
    /* what the owner heard */
    bytes_t got;
    bool stop_after_read; /* read_stop in the read callback (backpressure test) */
    int eofs, errors, last_error, hs_calls, hs_status, closes;
    int done[MAX_WRITES], statuses[MAX_WRITES], ndone;
    int shutdowns, shutdown_status;
    bool closed_before_cancel; /* the close callback ran before a cancelled write's */
    wreq_t w[MAX_WRITES];
    gw_stream_shutdown_t sreq;
} fixture_t;

static void on_read(gw_stream_t *s, gw_chunk_t *ch, ssize_t n)
{
    fixture_t *f = s->data;
    if (n > 0) {
        assert_non_null(ch);
        assert_int_equal(ch->len, (uint32_t)n);
        assert_int_equal(ch->off, 0);
        assert_int_equal((uintptr_t)ch->owner, 1);
        bytes_add(&f->got, ch->data, (size_t)n);
        gw_chunk_unref(&f->cache, ch);
        if (f->stop_after_read)
            gw_stream_read_stop(s);
        return;
    }
    assert_null(ch);
    assert_true(n != 0 && n != UV_ENOBUFS);
    if (n == UV_EOF)
        f->eofs++;
    else {
        f->errors++;
        f->last_error = (int)n;
    }
}

static void on_handshake(gw_tls_stream_t *ts, int status)
{
    fixture_t *f = ts->s.data;
    f->hs_calls++;
    f->hs_status = status;
}

static void on_written(gw_stream_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)(void *)req;
    fixture_t *f = req->stream->data;
    assert_true(f->ndone < MAX_WRITES);
    if (status == UV_ECANCELED && f->closes > 0)
        f->closed_before_cancel = true;
    f->done[f->ndone] = w->id;
    f->statuses[f->ndone++] = status;
}

static void on_shutdown(gw_stream_shutdown_t *req, int status)
{
    fixture_t *f = req->stream->data;
    f->shutdowns++;
    f->shutdown_status = status;
}

static void on_closed(gw_stream_t *s)
{
    fixture_t *f = s->data;
    f->closes++;
}

static int setup(void **state)
{
    make_key();
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(gw_bufpool_init(&f->pool, CHUNK, 4u << 20), 0);
    gw_bufcache_init(&f->cache, &f->pool, 8);
    assert_int_equal(gw_stream_env_init(&f->env, &f->loop, &f->cache), 0);
    f->env.retry_ms = 1;
    gw_fakestream_init(&f->inner, &f->env, NULL, NULL);
    /* the server: what the integration will do per connection */
    f->chain = (br_x509_certificate){not_a_certificate, sizeof not_a_certificate};
    br_ssl_server_init_full_ec(&f->sc, &f->chain, 1, BR_KEYTYPE_EC, &server_sk);
    br_ssl_engine_set_buffer(&f->sc.eng, f->sbuf, sizeof f->sbuf, 1);
    assert_int_equal(br_ssl_server_reset(&f->sc), 1);
    /* the client */
    br_ssl_client_init_full(&f->cc, &f->xm, NULL, 0);
    f->ax.vtable = &accept_any_x509_vtable;
    f->ax.pkey.key_type = BR_KEYTYPE_EC;
    f->ax.pkey.key.ec = server_pk;
    br_ssl_engine_set_x509(&f->cc.eng, &f->ax.vtable);
    br_ssl_engine_set_buffer(&f->cc.eng, f->cbuf, sizeof f->cbuf, 1);
    assert_int_equal(br_ssl_client_reset(&f->cc, "gw.test", 0), 1);
    f->split = 1;
    f->rng = 42;
    for (int i = 0; i < MAX_WRITES; i++)
        f->w[i].id = i;
    *state = f;
    return 0;
}

/* Sets the stream up (the owner reads from the start, as an accepting engine does). */
static void start(fixture_t *f)
{
    assert_int_equal(gw_tls_stream_init(&f->ts, &f->inner.s, &f->sc.eng, &f->env, on_read, f), 0);
    gw_tls_stream_on_handshake(&f->ts, on_handshake);
    assert_int_equal(gw_stream_read_start(&f->ts.s), 0);
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (!gw_stream_closing(&f->ts.s) && f->ts.s.ops != NULL)
        gw_stream_close(&f->ts.s, true, on_closed);
    if (f->inner.closing && !f->inner.closed)
        gw_fakestream_finish_close(&f->inner);
    gw_fakestream_free(&f->inner);
    gw_stream_env_close(&f->env);
    gw_test_close_loop(&f->loop);
    gw_bufcache_drain(&f->cache);
    assert_int_equal(atomic_load(&f->pool.nchunks), 0); /* no chunk leaked */
    free(f->c2s.p);
    free(f->cout.p);
    free(f->cgot.p);
    free(f->got.p);
    free(f);
    return 0;
}

static size_t piece(fixture_t *f, size_t left, size_t max)
{
    size_t n = f->split == 1 ? 1 : 1 + gw_rand_next(&f->rng) % f->split;
    if (n > max)
        n = max;
    return n < left ? n : left;
}

/* One round of the client engine: records in and out, plaintext in and out. True if
 * anything moved. */
static bool client_round(fixture_t *f)
{
    br_ssl_engine_context *e = &f->cc.eng;
    bool moved = false;
    size_t len;
    unsigned char *p;
    /* the stream's records (what it wrote to INNER) into the client */
    while (f->s2c_off < f->inner.nout && (p = br_ssl_engine_recvrec_buf(e, &len)) != NULL) {
        size_t k = piece(f, f->inner.nout - f->s2c_off, len);
        memcpy(p, f->inner.out + f->s2c_off, k);
        f->s2c_off += k;
        br_ssl_engine_recvrec_ack(e, k);
        moved = true;
    }
    while ((p = br_ssl_engine_recvapp_buf(e, &len)) != NULL) {
        bytes_add(&f->cgot, p, len);
        br_ssl_engine_recvapp_ack(e, len);
        moved = true;
    }
    while (f->cout_off < f->cout.n && (p = br_ssl_engine_sendapp_buf(e, &len)) != NULL) {
        size_t k = f->cout.n - f->cout_off < len ? f->cout.n - f->cout_off : len;
        memcpy(p, f->cout.p + f->cout_off, k);
        f->cout_off += k;
        br_ssl_engine_sendapp_ack(e, k);
        moved = true;
    }
    br_ssl_engine_flush(e, 0);
    while ((p = br_ssl_engine_sendrec_buf(e, &len)) != NULL) {
        bytes_add(&f->c2s, p, len);
        br_ssl_engine_sendrec_ack(e, len);
        moved = true;
    }
    return moved;
}

/* The client's records into the stream, in pieces, while INNER reads. */
static bool deliver_round(fixture_t *f)
{
    bool moved = false;
    while (f->c2s_off < f->c2s.n) {
        size_t k = piece(f, f->c2s.n - f->c2s_off, CHUNK);
        if (!gw_fakestream_deliver(&f->inner, (const char *)f->c2s.p + f->c2s_off, k))
            break;
        f->c2s_off += k;
        moved = true;
    }
    return moved;
}

/* Moves everything that can move, the loop included (deferred work, starve retries), until
 * nothing does. */
static void exchange(fixture_t *f)
{
    for (int rounds = 0; rounds < 100000; rounds++) {
        bool moved = client_round(f);
        moved |= deliver_round(f);
        if ((f->inner.npending > 0 || f->inner.shut_req != NULL) && !f->inner.closing) {
            gw_fakestream_complete(&f->inner, 0);
            moved = true;
        }
        if (uv_is_active((uv_handle_t *)&f->env.timer)) { /* deferred work, starve retries */
            moved = true;
            uv_run(&f->loop, UV_RUN_NOWAIT);
        }
        if (!moved)
            return;
    }
    fail_msg("the exchange never settled");
}

static void handshake(fixture_t *f)
{
    start(f);
    exchange(f);
    assert_int_equal(f->hs_calls, 1);
    assert_int_equal(f->hs_status, 0);
    assert_true(gw_tls_stream_ready(&f->ts));
}

static void owner_write(fixture_t *f, int id, const void *p, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)p, (unsigned)n);
    assert_int_equal(gw_stream_write(&f->w[id].req, &f->ts.s, &b, 1, on_written), 0);
}

/* ---- the tests -------------------------------------------------------------------------- */

static void tls_handshake_byte_by_byte(void **state)
{
    fixture_t *f = *state;
    handshake(f);
    assert_int_equal(gw_tls_stream_last_error(&f->ts), 0);
    unsigned cs = f->sc.eng.session.cipher_suite;
    assert_true(cs == BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 ||
                cs == BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 ||
                cs == BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256);
    assert_int_equal(f->errors + f->eofs, 0);
}

static void tls_data_both_ways_in_random_splits(void **state)
{
    fixture_t *f = *state;
    f->split = 700;
    handshake(f);
    owner_write(f, 0, "hello, client", 13);
    bytes_add(&f->cout, "hello, server", 13);
    exchange(f);
    assert_int_equal(f->cgot.n, 13);
    assert_memory_equal(f->cgot.p, "hello, client", 13);
    assert_int_equal(f->got.n, 13);
    assert_memory_equal(f->got.p, "hello, server", 13);
    assert_int_equal(f->ndone, 1);
    assert_int_equal(f->statuses[0], 0);
}

static void digest(const void *p, size_t n, unsigned char out[32])
{
    br_sha256_context h;
    br_sha256_init(&h);
    br_sha256_update(&h, p, n);
    br_sha256_out(&h, out);
}

#define BIG (1u << 20)

static unsigned char *pattern(size_t n, uint64_t seed)
{
    unsigned char *p = malloc(n);
    assert_non_null(p);
    for (size_t i = 0; i < n; i += 8) {
        uint64_t r = gw_rand_next(&seed);
        memcpy(p + i, &r, n - i < 8 ? n - i : 8);
    }
    return p;
}

/* 1 MiB each way, several records, writes of 64 KiB queued at once, random splits. */
static void tls_large_transfer_both_ways_is_intact(void **state)
{
    fixture_t *f = *state;
    f->split = 3000;
    handshake(f);
    unsigned char *down = pattern(BIG, 1), *up = pattern(BIG, 2);
    for (int i = 0; i < 16; i++)
        owner_write(f, i, down + (size_t)i * (BIG / 16), BIG / 16);
    bytes_add(&f->cout, up, BIG);
    exchange(f);
    unsigned char a[32], b[32];
    assert_int_equal(f->cgot.n, BIG);
    digest(down, BIG, a);
    digest(f->cgot.p, f->cgot.n, b);
    assert_memory_equal(a, b, 32);
    assert_int_equal(f->got.n, BIG);
    digest(up, BIG, a);
    digest(f->got.p, f->got.n, b);
    assert_memory_equal(a, b, 32);
    assert_int_equal(f->ndone, 16);
    for (int i = 0; i < 16; i++) {
        assert_int_equal(f->done[i], i);
        assert_int_equal(f->statuses[i], 0);
    }
    free(down);
    free(up);
}

/* An owner that stops reading stops the stream pulling records: what waits stays in the
 * client's queue (the peer's socket), the stream holds at most one inner chunk, and nothing
 * is lost when reads resume. */
static void tls_read_stop_holds_records_in_inner(void **state)
{
    fixture_t *f = *state;
    f->split = 4096;
    handshake(f);
    unsigned char *up = pattern(256 * 1024, 3);
    bytes_add(&f->cout, up, 256 * 1024);
    f->stop_after_read = true;
    exchange(f);
    assert_true(f->got.n > 0 && f->got.n < 256 * 1024);
    assert_false(f->inner.reading);
    assert_true(f->c2s.n - f->c2s_off > 100 * 1024); /* waiting at the peer, not with us */
    size_t held = 0;
    for (gw_chunk_t *ch = f->ts.in; ch != NULL; ch = ch->next)
        held++;
    assert_true(held <= 1);
    assert_true(atomic_load(&f->pool.nchunks) <= 8 + 1); /* the cache and one held chunk */
    /* reads again: everything arrives */
    f->stop_after_read = false;
    assert_int_equal(gw_stream_read_start(&f->ts.s), 0);
    exchange(f);
    assert_int_equal(f->got.n, 256 * 1024);
    assert_memory_equal(f->got.p, up, 256 * 1024);
    free(up);
}

static void tls_try_write_says_eagain_until_the_handshake_is_done(void **state)
{
    fixture_t *f = *state;
    start(f);
    uv_buf_t b = uv_buf_init("now", 3);
    assert_int_equal(gw_stream_try_write(&f->ts.s, &b, 1), UV_EAGAIN);
    exchange(f);
    assert_true(gw_tls_stream_ready(&f->ts));
    assert_int_equal(gw_stream_try_write(&f->ts.s, &b, 1), 3);
    /* and never ahead of a queued write: INNER takes nothing, so the write stays queued */
    f->inner.accept = 0;
    owner_write(f, 0, "queued", 6);
    assert_int_equal(gw_stream_try_write(&f->ts.s, &b, 1), UV_EAGAIN);
    f->inner.accept = SIZE_MAX;
    exchange(f);
    assert_int_equal(f->cgot.n, 9);
    assert_memory_equal(f->cgot.p, "nowqueued", 9);
}

/* Writes complete in order, and only once their records were written: with INNER taking
 * nothing at once, none completes before INNER's queued writes do. */
static void tls_writes_complete_in_order_after_their_records(void **state)
{
    fixture_t *f = *state;
    handshake(f);
    f->inner.accept = 0;
    static const char *words[] = {"one ", "two ", "three ", "four"};
    for (int i = 0; i < 4; i++)
        owner_write(f, i, words[i], strlen(words[i]));
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->ndone, 0);
    assert_true(f->inner.npending > 0);
    exchange(f);
    assert_int_equal(f->ndone, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(f->done[i], i);
    assert_int_equal(f->cgot.n, 18);
    assert_memory_equal(f->cgot.p, "one two three four", 18);
}

/* Writes never call back from inside the owner's call (libuv's rule). */
static void tls_write_never_calls_back_from_inside(void **state)
{
    fixture_t *f = *state;
    handshake(f);
    owner_write(f, 0, "x", 1);
    assert_int_equal(f->ndone, 0); /* INNER took the record at once; the callback waits */
    exchange(f);
    assert_int_equal(f->ndone, 1);
}

static void tls_shutdown_sends_close_notify_then_fin(void **state)
{
    fixture_t *f = *state;
    handshake(f);
    owner_write(f, 0, "last words", 10);
    assert_int_equal(gw_stream_shutdown(&f->sreq, &f->ts.s, on_shutdown), 0);
    assert_int_equal(gw_stream_write(&f->w[1].req, &f->ts.s, &(uv_buf_t){"x", 1}, 1, on_written),
                     UV_EPIPE);
    exchange(f);
    assert_int_equal(f->cgot.n, 10);
    assert_int_equal(f->shutdowns, 1);
    assert_int_equal(f->shutdown_status, 0);
    assert_true(f->inner.shut); /* the FIN after the close_notify */
    /* the client saw a close_notify: its engine answered and closed cleanly */
    assert_true(br_ssl_engine_current_state(&f->cc.eng) == BR_SSL_CLOSED);
    assert_int_equal(br_ssl_engine_last_error(&f->cc.eng), 0);
    assert_int_equal(f->ndone, 1);
    assert_int_equal(f->statuses[0], 0);
}

static void tls_peer_close_notify_is_eof(void **state)
{
    fixture_t *f = *state;
    handshake(f);
    bytes_add(&f->cout, "bye", 3);
    exchange(f);
    br_ssl_engine_close(&f->cc.eng);
    exchange(f);
    assert_int_equal(f->got.n, 3);
    assert_int_equal(f->eofs, 1);
    assert_int_equal(f->errors, 0);
    assert_false(gw_tls_stream_truncated(&f->ts));
    assert_int_equal(gw_tls_stream_last_error(&f->ts), 0);
    /* TLS 1.2: BearSSL answered with its close_notify; we write no more */
    assert_int_equal(br_ssl_engine_last_error(&f->cc.eng), 0);
    assert_true(br_ssl_engine_current_state(&f->cc.eng) == BR_SSL_CLOSED);
    uv_buf_t b = uv_buf_init("late", 4);
    assert_int_equal(gw_stream_write(&f->w[0].req, &f->ts.s, &b, 1, on_written), UV_EPIPE);
}

static void tls_eof_without_close_notify_is_truncated(void **state)
{
    fixture_t *f = *state;
    handshake(f);
    bytes_add(&f->cout, "cut", 3);
    exchange(f);
    gw_fakestream_end(&f->inner, UV_EOF);
    exchange(f);
    assert_int_equal(f->got.n, 3);
    assert_int_equal(f->eofs, 1);
    assert_true(gw_tls_stream_truncated(&f->ts));
    /* the other direction still works (a half-closed TCP connection) */
    owner_write(f, 0, "still here", 10);
    exchange(f);
    assert_int_equal(f->cgot.n, 10);
    assert_int_equal(f->statuses[0], 0);
}

static void tls_eof_during_handshake_fails_it(void **state)
{
    fixture_t *f = *state;
    start(f);
    client_round(f); /* the hello is sent, then the peer leaves */
    gw_fakestream_end(&f->inner, UV_EOF);
    exchange(f);
    assert_int_equal(f->hs_calls, 1);
    assert_int_equal(f->hs_status, UV_EOF);
    assert_int_equal(f->eofs, 1);
}

/* A plaintext HTTP request on a TLS port: BearSSL fails the first record, the owner hears
 * UV_EPROTO at once (and the handshake callback too) with a named BearSSL code. */
static void tls_plaintext_request_is_an_error_with_a_named_code(void **state)
{
    fixture_t *f = *state;
    start(f);
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_true(gw_fakestream_deliver(&f->inner, req, sizeof req - 1));
    assert_int_equal(f->errors, 1);
    assert_int_equal(f->last_error, UV_EPROTO);
    assert_int_equal(f->hs_calls, 1);
    assert_int_equal(f->hs_status, UV_EPROTO);
    assert_int_equal(gw_tls_stream_last_error(&f->ts), BR_ERR_UNSUPPORTED_VERSION);
    assert_string_equal(gw_tls_error_name(gw_tls_stream_last_error(&f->ts)), "unsupported_version");
    assert_false(f->inner.reading); /* nothing more is read */
}

static void tls_close_cancels_queued_writes_before_the_close_callback(void **state)
{
    fixture_t *f = *state;
    handshake(f);
    f->inner.accept = 0;
    owner_write(f, 0, "never", 5);
    owner_write(f, 1, "sent", 4);
    assert_int_equal(gw_stream_shutdown(&f->sreq, &f->ts.s, on_shutdown), 0);
    gw_stream_close(&f->ts.s, false, on_closed);
    assert_true(f->inner.closing);
    assert_false(f->inner.reset);
    gw_fakestream_finish_close(&f->inner);
    assert_int_equal(f->ndone, 2);
    assert_int_equal(f->done[0], 0);
    assert_int_equal(f->done[1], 1);
    assert_int_equal(f->statuses[0], UV_ECANCELED);
    assert_int_equal(f->statuses[1], UV_ECANCELED);
    assert_int_equal(f->shutdowns, 1);
    assert_int_equal(f->shutdown_status, UV_ECANCELED);
    assert_false(f->closed_before_cancel);
    assert_int_equal(f->closes, 1);
}

static void tls_reset_close_resets_inner(void **state)
{
    fixture_t *f = *state;
    handshake(f);
    gw_stream_close(&f->ts.s, true, on_closed);
    assert_true(f->inner.closing && f->inner.reset);
    gw_fakestream_finish_close(&f->inner);
    assert_int_equal(f->closes, 1);
}

static void tls_error_names_cover_codes_and_alerts(void **state)
{
    (void)state;
    assert_string_equal(gw_tls_error_name(0), "ok");
    assert_string_equal(gw_tls_error_name(BR_ERR_BAD_MAC), "bad_mac");
    assert_string_equal(gw_tls_error_name(BR_ERR_X509_EXPIRED), "x509_expired");
    assert_string_equal(gw_tls_error_name(BR_ERR_X509_NOT_TRUSTED), "x509_not_trusted");
    assert_string_equal(gw_tls_error_name(BR_ERR_RECV_FATAL_ALERT + 40),
                        "recv_alert_handshake_failure");
    assert_string_equal(gw_tls_error_name(BR_ERR_SEND_FATAL_ALERT + 120),
                        "sent_alert_no_application_protocol");
    assert_string_equal(gw_tls_error_name(BR_ERR_RECV_FATAL_ALERT + 255), "recv_alert");
    assert_string_equal(gw_tls_error_name(11), "unknown");
    assert_string_equal(gw_tls_error_name(-1), "unknown");
    /* every code BearSSL 0.6 defines below 64 that is not "unknown" has its own name */
    for (int i = 0; i < 64; i++) {
        const char *a = gw_tls_error_name(i);
        for (int j = i + 1; j < 64; j++)
            if (strcmp(a, "unknown") != 0)
                assert_string_not_equal(a, gw_tls_error_name(j));
    }
}

/* The figures the operator guide quotes (printed; bounds keep them honest). */
static void tls_sizes_per_connection(void **state)
{
    (void)state;
    size_t srv = sizeof(br_ssl_server_context), cli = sizeof(br_ssl_client_context);
    size_t ts = sizeof(gw_tls_stream_t), tcp = sizeof(gw_tcp_stream_t);
    print_message("sizeof gw_tls_stream_t %zu, gw_tcp_stream_t %zu, br_ssl_server_context %zu, "
                  "br_ssl_client_context %zu, BR_SSL_BUFSIZE_BIDI %d\n",
                  ts, tcp, srv, cli, BR_SSL_BUFSIZE_BIDI);
    print_message("server connection: %zu bytes, client (upstream) connection: %zu bytes\n",
                  ts + srv + BR_SSL_BUFSIZE_BIDI, ts + cli + BR_SSL_BUFSIZE_BIDI);
    assert_true(ts < 1024);
    assert_true(srv + BR_SSL_BUFSIZE_BIDI < 40 * 1024);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(next_sends_records_before_anything_else),
        cmocka_unit_test(next_reads_inner_during_the_handshake_whatever_the_owner_asked),
        cmocka_unit_test(next_reports_the_handshake_once),
        cmocka_unit_test(next_stops_inner_when_the_owner_does_not_read),
        cmocka_unit_test(next_ends_reads_after_the_bytes_before_it),
        cmocka_unit_test(next_says_close_notify_only_after_the_queued_writes),
        cmocka_unit_test(next_quiet_never_calls_the_owner),
        cmocka_unit_test_setup_teardown(tls_handshake_byte_by_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(tls_data_both_ways_in_random_splits, setup, teardown),
        cmocka_unit_test_setup_teardown(tls_large_transfer_both_ways_is_intact, setup, teardown),
        cmocka_unit_test_setup_teardown(tls_read_stop_holds_records_in_inner, setup, teardown),
        cmocka_unit_test_setup_teardown(tls_try_write_says_eagain_until_the_handshake_is_done,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(tls_writes_complete_in_order_after_their_records, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(tls_write_never_calls_back_from_inside, setup, teardown),
        cmocka_unit_test_setup_teardown(tls_shutdown_sends_close_notify_then_fin, setup, teardown),
        cmocka_unit_test_setup_teardown(tls_peer_close_notify_is_eof, setup, teardown),
        cmocka_unit_test_setup_teardown(tls_eof_without_close_notify_is_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(tls_eof_during_handshake_fails_it, setup, teardown),
        cmocka_unit_test_setup_teardown(tls_plaintext_request_is_an_error_with_a_named_code, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(tls_close_cancels_queued_writes_before_the_close_callback,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(tls_reset_close_resets_inner, setup, teardown),
        cmocka_unit_test(tls_error_names_cover_codes_and_alerts),
        cmocka_unit_test(tls_sizes_per_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
