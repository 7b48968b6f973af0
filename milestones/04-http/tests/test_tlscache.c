/* test_tlscache.c - the shared TLS session cache: BearSSL's class contract (save, then load
 * fills the parameters), misses, the bound and its LRU order, an id saved twice, stripes
 * spreading ids, threads saving and loading at once, a hit on another thread, and a real
 * BearSSL handshake resumed through the cache by a second server context on another thread
 * (two workers). Ids and secrets come from fixed seeds (STYLE.md section 7). */
#include "gwtest.h"

#include <bearssl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "rand.h"

#include "04-http/tlscache.h"

#define NTHREADS 4

/* Session parameters number N: a 32-byte id and a 48-byte secret derived from N, TLS 1.2,
 * ECDHE_ECDSA_WITH_AES_128_GCM_SHA256. */
static br_ssl_session_parameters params_of(uint64_t n)
{
    br_ssl_session_parameters p;
    memset(&p, 0, sizeof p);
    uint64_t st = n * 7919 + 1;
    for (size_t i = 0; i < sizeof p.session_id; i += 8) {
        uint64_t v = gw_rand_next(&st);
        memcpy(p.session_id + i, &v, 8);
    }
    p.session_id_len = 32;
    p.version = BR_TLS12;
    p.cipher_suite = BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256;
    for (size_t i = 0; i < sizeof p.master_secret; i++)
        p.master_secret[i] = (unsigned char)(n + i);
    return p;
}

/* What BearSSL's server hands to load(): the id from the ClientHello, the rest unknown. */
static br_ssl_session_parameters lookup_of(uint64_t n)
{
    br_ssl_session_parameters p = params_of(n), q;
    memset(&q, 0, sizeof q);
    memcpy(q.session_id, p.session_id, sizeof q.session_id);
    q.session_id_len = 32;
    return q;
}

static void save(gw_tlscache_t *c, const br_ssl_session_parameters *p)
{
    const br_ssl_session_cache_class **cls = gw_tlscache_class(c);
    (*cls)->save(cls, NULL, p);
}

static int load(gw_tlscache_t *c, br_ssl_session_parameters *p)
{
    const br_ssl_session_cache_class **cls = gw_tlscache_class(c);
    return (*cls)->load(cls, NULL, p);
}

/* Is session N in C with its own parameters? */
static bool holds(gw_tlscache_t *c, uint64_t n)
{
    br_ssl_session_parameters want = params_of(n), got = lookup_of(n);
    if (!load(c, &got))
        return false;
    return got.version == want.version && got.cipher_suite == want.cipher_suite &&
           memcmp(got.master_secret, want.master_secret, sizeof got.master_secret) == 0;
}

static gw_tlscache_stats_t stats(const gw_tlscache_t *c)
{
    gw_tlscache_stats_t s;
    gw_tlscache_stats(c, &s);
    return s;
}

static void tlscache_init_rejects_bad_sizes(void **state)
{
    (void)state;
    gw_tlscache_t c;
    assert_int_equal(gw_tlscache_init(&c, GW_TLSCACHE_MAX_ENTRIES + 1, 0), GW_EINVAL);
    assert_null(gw_tlscache_class(&c));
    gw_tlscache_free(&c);
    assert_int_equal(gw_tlscache_init(&c, 100, GW_TLSCACHE_MAX_STRIPES + 1), GW_EINVAL);
    gw_tlscache_free(&c);
}

/* size 0 is "no cache": nothing to hand to BearSSL, nothing allocated. */
static void tlscache_zero_entries_is_disabled(void **state)
{
    (void)state;
    gw_tlscache_t c;
    assert_int_equal(gw_tlscache_init(&c, 0, 0), 0);
    assert_null(gw_tlscache_class(&c));
    assert_int_equal(gw_tlscache_capacity(&c), 0);
    assert_int_equal(gw_tlscache_bytes(&c), 0);
    gw_tlscache_conn_t conn;
    gw_tlscache_conn_init(&conn, &c);
    assert_null(gw_tlscache_conn_class(&conn));
    assert_false(gw_tlscache_conn_resumed(&conn));
    gw_tlscache_free(&c);
}

static void tlscache_save_then_load_fills_parameters(void **state)
{
    (void)state;
    gw_tlscache_t c;
    assert_int_equal(gw_tlscache_init(&c, 100, 4), 0);
    br_ssl_session_parameters p = params_of(1), q = lookup_of(1);
    save(&c, &p);
    assert_int_equal(load(&c, &q), 1);
    assert_memory_equal(q.session_id, p.session_id, 32);
    assert_int_equal(q.session_id_len, 32);
    assert_int_equal(q.version, BR_TLS12);
    assert_int_equal(q.cipher_suite, BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256);
    assert_memory_equal(q.master_secret, p.master_secret, 48);
    gw_tlscache_stats_t s = stats(&c);
    assert_int_equal(s.stores, 1);
    assert_int_equal(s.hits, 1);
    assert_int_equal(s.misses, 0);
    assert_int_equal(s.entries, 1);
    gw_tlscache_free(&c);
}

/* An unknown id is a miss that writes nothing into the parameters; so is an id of another
 * length than 32 (BearSSL never asks for one, but bad input never crashes). */
static void tlscache_unknown_id_misses(void **state)
{
    (void)state;
    gw_tlscache_t c;
    assert_int_equal(gw_tlscache_init(&c, 100, 4), 0);
    br_ssl_session_parameters q = lookup_of(2);
    assert_int_equal(load(&c, &q), 0); /* empty cache */
    br_ssl_session_parameters p = params_of(1);
    save(&c, &p);
    assert_int_equal(load(&c, &q), 0);
    br_ssl_session_parameters zero = lookup_of(2);
    assert_memory_equal(&q, &zero, sizeof q);
    br_ssl_session_parameters shortid = lookup_of(1);
    shortid.session_id_len = 16;
    assert_int_equal(load(&c, &shortid), 0);
    p.session_id_len = 200; /* never stored */
    p.session_id[0] ^= 1;
    save(&c, &p);
    gw_tlscache_stats_t s = stats(&c);
    assert_int_equal(s.misses, 3);
    assert_int_equal(s.hits, 0);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.stores, 1);
    gw_tlscache_free(&c);
}

/* One stripe of 4: the fifth session evicts the least recently used one, and a load counts
 * as a use. */
static void tlscache_full_cache_evicts_least_recently_used(void **state)
{
    (void)state;
    gw_tlscache_t c;
    assert_int_equal(gw_tlscache_init(&c, 4, 1), 0);
    assert_int_equal(gw_tlscache_capacity(&c), 4);
    for (uint64_t n = 1; n <= 4; n++) {
        br_ssl_session_parameters p = params_of(n);
        save(&c, &p);
    }
    br_ssl_session_parameters p5 = params_of(5);
    save(&c, &p5);
    assert_false(holds(&c, 1)); /* the oldest went */
    assert_true(holds(&c, 2));  /* 2 is now the newest */
    br_ssl_session_parameters p6 = params_of(6);
    save(&c, &p6);
    assert_false(holds(&c, 3)); /* 3 was the least recently used, not 2 */
    assert_true(holds(&c, 2));
    assert_true(holds(&c, 4));
    assert_true(holds(&c, 5));
    assert_true(holds(&c, 6));
    gw_tlscache_stats_t s = stats(&c);
    assert_int_equal(s.entries, 4);
    assert_int_equal(s.evictions, 2);
    assert_int_equal(s.stores, 6);
    gw_tlscache_free(&c);
}

/* Many more sessions than entries, over several stripes: never more than the bound, and the
 * newest session is always there. */
static void tlscache_never_holds_more_than_entries(void **state)
{
    (void)state;
    gw_tlscache_t c;
    assert_int_equal(gw_tlscache_init(&c, 100, 8), 0);
    assert_true(gw_tlscache_capacity(&c) <= 100);
    assert_true(gw_tlscache_bytes(&c) <= 100 * GW_TLSCACHE_ENTRY_BYTES + 8 * 128);
    for (uint64_t n = 1; n <= 5000; n++) {
        br_ssl_session_parameters p = params_of(n);
        save(&c, &p);
        assert_true(holds(&c, n));
    }
    gw_tlscache_stats_t s = stats(&c);
    assert_int_equal(s.entries, gw_tlscache_capacity(&c));
    assert_int_equal(s.evictions, 5000 - s.entries);
    gw_tlscache_free(&c);
}

/* A second save of the same id replaces the first: one entry, the newer parameters. */
static void tlscache_same_id_overwritten(void **state)
{
    (void)state;
    gw_tlscache_t c;
    assert_int_equal(gw_tlscache_init(&c, 10, 1), 0);
    br_ssl_session_parameters p = params_of(1);
    save(&c, &p);
    p.cipher_suite = BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256;
    memset(p.master_secret, 0x5a, sizeof p.master_secret);
    save(&c, &p);
    br_ssl_session_parameters q = lookup_of(1);
    assert_int_equal(load(&c, &q), 1);
    assert_int_equal(q.cipher_suite, BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256);
    assert_memory_equal(q.master_secret, p.master_secret, 48);
    gw_tlscache_stats_t s = stats(&c);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.stores, 2);
    assert_int_equal(s.evictions, 0);
    gw_tlscache_free(&c);
}

/* 16 stripes of 64 entries take 512 sessions (32 a stripe on average) without one eviction
 * only if the ids spread over the stripes: all in one stripe, 448 would be evicted. */
static void tlscache_stripes_spread_ids(void **state)
{
    (void)state;
    gw_tlscache_t c;
    assert_int_equal(gw_tlscache_init(&c, 1024, 16), 0);
    assert_int_equal(c.nstripes, 16);
    for (uint64_t n = 1; n <= 512; n++) {
        br_ssl_session_parameters p = params_of(n);
        save(&c, &p);
    }
    gw_tlscache_stats_t s = stats(&c);
    assert_int_equal(s.evictions, 0);
    assert_int_equal(s.entries, 512);
    for (uint64_t n = 1; n <= 512; n++)
        assert_true(holds(&c, n));
    gw_tlscache_free(&c);
}

/* More stripes than entries: stripes shrink so that each holds at least one session. */
static void tlscache_stripes_shrink_to_entries(void **state)
{
    (void)state;
    gw_tlscache_t c;
    assert_int_equal(gw_tlscache_init(&c, 3, 64), 0);
    assert_int_equal(c.nstripes, 2);
    assert_int_equal(gw_tlscache_capacity(&c), 2);
    gw_tlscache_free(&c);
    assert_int_equal(gw_tlscache_init(&c, 1, 0), 0);
    assert_int_equal(c.nstripes, 1);
    br_ssl_session_parameters p = params_of(1);
    save(&c, &p);
    assert_true(holds(&c, 1));
    gw_tlscache_free(&c);
}

/* ---- threads ------------------------------------------------------------------------- */

typedef struct racer_s {
    gw_tlscache_t *c;
    uint64_t first; /* this thread's sessions are first .. first + count - 1 */
    uint64_t count;
    uint64_t loads, hits, wrong;
} racer_t;

/* Saves its own sessions and loads each back at once and a neighbour's, checking that a
 * hit always brings the right secret (never a torn or foreign entry). */
static void *racer(void *arg)
{
    racer_t *r = arg;
    for (uint64_t n = r->first; n < r->first + r->count; n++) {
        br_ssl_session_parameters p = params_of(n);
        save(r->c, &p);
        uint64_t probes[2] = {n, n + r->count}; /* mine, then the next thread's */
        for (int k = 0; k < 2; k++) {
            br_ssl_session_parameters want = params_of(probes[k]), got = lookup_of(probes[k]);
            r->loads++;
            if (load(r->c, &got)) {
                r->hits++;
                if (memcmp(got.master_secret, want.master_secret, 48) != 0)
                    r->wrong++;
            }
        }
    }
    return NULL;
}

/* Threads saving and loading at once (TSan checks the locking): every hit is right and the
 * counters add up exactly. */
static void tlscache_concurrent_saves_and_loads(void **state)
{
    (void)state;
    gw_tlscache_t c;
    assert_int_equal(gw_tlscache_init(&c, 512, 8), 0);
    racer_t r[NTHREADS];
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        r[i] = (racer_t){.c = &c, .first = 1 + (uint64_t)i * 2000, .count = 2000};
        assert_int_equal(pthread_create(&th[i], NULL, racer, &r[i]), 0);
    }
    uint64_t loads = 0, hits = 0;
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(r[i].wrong, 0);
        loads += r[i].loads;
        hits += r[i].hits;
    }
    gw_tlscache_stats_t s = stats(&c);
    assert_int_equal(s.hits, hits);
    assert_int_equal(s.hits + s.misses, loads);
    assert_int_equal(s.stores, NTHREADS * 2000);
    assert_true(s.entries <= gw_tlscache_capacity(&c));
    assert_int_equal(s.evictions, s.stores - s.entries); /* ids are distinct */
    gw_tlscache_free(&c);
}

static void *save_one(void *arg)
{
    br_ssl_session_parameters p = params_of(42);
    save(arg, &p);
    return NULL;
}

static void *load_one(void *arg)
{
    return (void *)(uintptr_t)holds(arg, 42);
}

/* A session saved by one worker thread resumes on another: the cache is one for all. */
static void tlscache_hit_on_another_thread(void **state)
{
    (void)state;
    gw_tlscache_t c;
    assert_int_equal(gw_tlscache_init(&c, 100, 4), 0);
    pthread_t a, b;
    void *hit = NULL;
    assert_int_equal(pthread_create(&a, NULL, save_one, &c), 0);
    assert_int_equal(pthread_join(a, NULL), 0);
    assert_int_equal(pthread_create(&b, NULL, load_one, &c), 0);
    assert_int_equal(pthread_join(b, &hit), 0);
    assert_true((uintptr_t)hit);
    gw_tlscache_free(&c);
}

/* ---- the connection wrapper ------------------------------------------------------------ */

static void tlscache_conn_tells_full_from_resumed(void **state)
{
    (void)state;
    gw_tlscache_t c;
    assert_int_equal(gw_tlscache_init(&c, 10, 1), 0);
    gw_tlscache_conn_t full, resumed, declined;
    gw_tlscache_conn_init(&full, &c);
    gw_tlscache_conn_init(&resumed, &c);
    gw_tlscache_conn_init(&declined, &c);

    /* A full handshake: a miss (the client offered an unknown id), then a save. */
    const br_ssl_session_cache_class **cls = gw_tlscache_conn_class(&full);
    assert_non_null(cls);
    br_ssl_session_parameters q = lookup_of(1), p = params_of(1);
    assert_int_equal((*cls)->load(cls, NULL, &q), 0);
    (*cls)->save(cls, NULL, &p);
    assert_false(gw_tlscache_conn_resumed(&full));

    /* A resumed one: a hit and no save. */
    cls = gw_tlscache_conn_class(&resumed);
    q = lookup_of(1);
    assert_int_equal((*cls)->load(cls, NULL, &q), 1);
    assert_true(gw_tlscache_conn_resumed(&resumed));

    /* A hit that BearSSL declined (suite no longer offered): it saves a new session. */
    cls = gw_tlscache_conn_class(&declined);
    q = lookup_of(1);
    assert_int_equal((*cls)->load(cls, NULL, &q), 1);
    p = params_of(2);
    (*cls)->save(cls, NULL, &p);
    assert_false(gw_tlscache_conn_resumed(&declined));

    assert_int_equal(stats(&c).stores, 2);
    assert_int_equal(stats(&c).hits, 2);
    gw_tlscache_free(&c);
}

/* ---- a real handshake, twice, on two "workers" ------------------------------------------
 * A BearSSL client and server run in memory, records moved by hand between their engines.
 * The server's EC key is made at test time and the client checks no certificate (its X.509
 * class accepts any chain and returns that key), so no certificate or key file is needed. */

typedef struct trust_key_s {
    const br_x509_class *vtable;
    const br_x509_pkey *pkey;
} trust_key_t;

static void tk_start_chain(const br_x509_class **ctx, const char *server_name)
{
    (void)ctx;
    (void)server_name;
}
static void tk_start_cert(const br_x509_class **ctx, uint32_t length)
{
    (void)ctx;
    (void)length;
}
static void tk_append(const br_x509_class **ctx, const unsigned char *buf, size_t len)
{
    (void)ctx;
    (void)buf;
    (void)len;
}
static void tk_end_cert(const br_x509_class **ctx)
{
    (void)ctx;
}
static unsigned tk_end_chain(const br_x509_class **ctx)
{
    (void)ctx;
    return 0;
}
static const br_x509_pkey *tk_get_pkey(const br_x509_class *const *ctx, unsigned *usages)
{
    if (usages != NULL)
        *usages = BR_KEYTYPE_KEYX | BR_KEYTYPE_SIGN;
    return ((const trust_key_t *)(const void *)ctx)->pkey;
}
static const br_x509_class trust_key_vtable = {sizeof(trust_key_t), tk_start_chain, tk_start_cert,
                                               tk_append,           tk_end_cert,    tk_end_chain,
                                               tk_get_pkey};

typedef struct hs_s {
    gw_tlscache_t *cache;
    const br_ec_private_key *sk;
    const br_x509_pkey *pk;
    br_ssl_session_parameters *client_session; /* in: to resume (id_len 0: none); out */
    bool server_resumed;
    int ok;
} hs_t;

/* Moves records both ways until the client can send application data or an engine fails;
 * returns 1 when both engines finished the handshake. */
static int pump(br_ssl_engine_context *a, br_ssl_engine_context *b)
{
    for (int round = 0; round < 1000; round++) {
        br_ssl_engine_context *from[2] = {a, b}, *to[2] = {b, a};
        int moved = 0;
        for (int k = 0; k < 2; k++) {
            size_t out, in;
            if (!(br_ssl_engine_current_state(from[k]) & BR_SSL_SENDREC))
                continue;
            if (!(br_ssl_engine_current_state(to[k]) & BR_SSL_RECVREC))
                continue;
            unsigned char *src = br_ssl_engine_sendrec_buf(from[k], &out);
            unsigned char *dst = br_ssl_engine_recvrec_buf(to[k], &in);
            size_t n = out < in ? out : in;
            memcpy(dst, src, n);
            br_ssl_engine_sendrec_ack(from[k], n);
            br_ssl_engine_recvrec_ack(to[k], n);
            moved = 1;
        }
        if ((br_ssl_engine_current_state(a) & BR_SSL_SENDAPP) &&
            (br_ssl_engine_current_state(b) & BR_SSL_SENDAPP))
            return 1;
        if (!moved)
            return 0;
    }
    return 0;
}

/* One handshake between a fresh client and a fresh server context (a connection of some
 * worker) using H's cache; run on a thread of its own. */
static void *handshake(void *arg)
{
    hs_t *h = arg;
    static const unsigned char dummy_der[1] = {0};
    br_x509_certificate chain = {(unsigned char *)(uintptr_t)dummy_der, sizeof dummy_der};
    br_ssl_server_context *sc = calloc(1, sizeof *sc);
    br_ssl_client_context *cc = calloc(1, sizeof *cc);
    br_x509_minimal_context *xm = calloc(1, sizeof *xm);
    unsigned char *sbuf = malloc(BR_SSL_BUFSIZE_BIDI), *cbuf = malloc(BR_SSL_BUFSIZE_BIDI);
    trust_key_t tk = {&trust_key_vtable, h->pk};
    gw_tlscache_conn_t conn;

    br_ssl_server_init_full_ec(sc, &chain, 1, BR_KEYTYPE_EC, h->sk);
    br_ssl_engine_set_buffer(&sc->eng, sbuf, BR_SSL_BUFSIZE_BIDI, 1);
    gw_tlscache_conn_init(&conn, h->cache);
    br_ssl_server_set_cache(sc, gw_tlscache_conn_class(&conn));
    br_ssl_server_reset(sc);

    br_ssl_client_init_full(cc, xm, NULL, 0);
    br_ssl_engine_set_x509(&cc->eng, &tk.vtable);
    br_ssl_engine_set_buffer(&cc->eng, cbuf, BR_SSL_BUFSIZE_BIDI, 1);
    int resume = h->client_session->session_id_len != 0;
    if (resume)
        br_ssl_engine_set_session_parameters(&cc->eng, h->client_session);
    br_ssl_client_reset(cc, "cache.example.test", resume);

    h->ok = pump(&cc->eng, &sc->eng);
    br_ssl_engine_get_session_parameters(&cc->eng, h->client_session);
    h->server_resumed = gw_tlscache_conn_resumed(&conn);
    free(sbuf);
    free(cbuf);
    free(xm);
    free(cc);
    free(sc);
    return NULL;
}

static void run_on_thread(hs_t *h)
{
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, handshake, h), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
}

/* The second connection, on another thread with another server context, resumes the
 * session the first one saved: the client keeps its session id and the server took the
 * short handshake. A cache per worker would fail this. */
static void tlscache_bearssl_resumes_on_another_worker(void **state)
{
    (void)state;
    gw_tlscache_t c;
    assert_int_equal(gw_tlscache_init(&c, 100, 4), 0);

    br_hmac_drbg_context rng;
    br_hmac_drbg_init(&rng, &br_sha256_vtable, "tlscache test key", 17);
    const br_ec_impl *ec = br_ec_get_default();
    unsigned char skbuf[BR_EC_KBUF_PRIV_MAX_SIZE], pkbuf[BR_EC_KBUF_PUB_MAX_SIZE];
    br_ec_private_key sk;
    br_ec_public_key pub;
    assert_true(br_ec_keygen(&rng.vtable, ec, &sk, skbuf, BR_EC_secp256r1) > 0);
    assert_true(br_ec_compute_pub(ec, &pub, pkbuf, &sk) > 0);
    br_x509_pkey pk = {.key_type = BR_KEYTYPE_EC, .key.ec = pub};

    br_ssl_session_parameters session;
    memset(&session, 0, sizeof session);
    hs_t first = {.cache = &c, .sk = &sk, .pk = &pk, .client_session = &session};
    run_on_thread(&first);
    assert_int_equal(first.ok, 1);
    assert_false(first.server_resumed);
    assert_int_equal(session.session_id_len, 32);
    unsigned char id[32];
    memcpy(id, session.session_id, 32);

    hs_t second = {.cache = &c, .sk = &sk, .pk = &pk, .client_session = &session};
    run_on_thread(&second);
    assert_int_equal(second.ok, 1);
    assert_true(second.server_resumed);
    assert_memory_equal(session.session_id, id, 32); /* the client resumed too */

    gw_tlscache_stats_t s = stats(&c);
    assert_int_equal(s.stores, 1);
    assert_int_equal(s.hits, 1);
    gw_tlscache_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tlscache_init_rejects_bad_sizes),
        cmocka_unit_test(tlscache_zero_entries_is_disabled),
        cmocka_unit_test(tlscache_save_then_load_fills_parameters),
        cmocka_unit_test(tlscache_unknown_id_misses),
        cmocka_unit_test(tlscache_full_cache_evicts_least_recently_used),
        cmocka_unit_test(tlscache_never_holds_more_than_entries),
        cmocka_unit_test(tlscache_same_id_overwritten),
        cmocka_unit_test(tlscache_stripes_spread_ids),
        cmocka_unit_test(tlscache_stripes_shrink_to_entries),
        cmocka_unit_test(tlscache_concurrent_saves_and_loads),
        cmocka_unit_test(tlscache_hit_on_another_thread),
        cmocka_unit_test(tlscache_conn_tells_full_from_resumed),
        cmocka_unit_test(tlscache_bearssl_resumes_on_another_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
