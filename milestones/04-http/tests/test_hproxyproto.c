/* test_hproxyproto.c - hp_pp_feed, a PROXY header across reads: at every split of a header
 * followed by the client's bytes into two and three reads, the header is whole exactly when
 * its last byte came, and the client's bytes start where the header ended; errors across
 * reads; the skipped parse of a v2 header whose length is known. And the counters: kept by
 * listener name across generations (a listener that moves keeps its counts). */
#include "gwtest.h"

#include <stdlib.h>
#include <string.h>

#include "04-http/hproxy-int.h"
#include "04-http/hproxyproto.h"
#include "04-http/ppconf.h"

static const char V1[] = "PROXY TCP4 203.0.113.7 10.0.0.5 51200 443\r\n";
static const uint8_t V2[] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49,
                             0x54, 0x0a, 0x21, 0x11, 0x00, 0x0c, 203,  0,    113,  7,
                             10,   0,    0,    5,    0xc8, 0x00, 0x01, 0xbb};
static const char REQ[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";

/* HDR (HLEN bytes) then REQ, split at A and B (A <= B): the answer at each read. */
static void feed_split(const uint8_t *hdr, size_t hlen, size_t a, size_t b)
{
    uint8_t all[256];
    size_t n = hlen + strlen(REQ);
    memcpy(all, hdr, hlen);
    memcpy(all + hlen, REQ, strlen(REQ));
    size_t cut[3] = {a, b, n}, from = 0;
    hp_pp_wait_t w;
    memset(&w, 0, sizeof w);
    for (int i = 0; i < 3; i++) {
        gw_pp_result_t r;
        size_t rest = 99999;
        int rc = hp_pp_feed(&w, all + from, cut[i] - from, GW_PP_ANY, &r, &rest);
        if (cut[i] < hlen) {
            assert_int_equal(rc, 0);
        } else {
            /* the header's last byte came in this read */
            assert_int_equal(rc, (int)hlen);
            assert_int_equal(rest, hlen - from);
            assert_int_equal(r.family, GW_PP_TCP4);
            assert_memory_equal(all + from + rest, REQ, n - hlen);
            return;
        }
        from = cut[i];
    }
    fail_msg("never whole (split %zu %zu)", a, b);
}

static void feed_every_split_v1(void **state)
{
    (void)state;
    size_t hlen = strlen(V1);
    for (size_t a = 0; a <= hlen + 2; a++)
        for (size_t b = a; b <= hlen + 3; b++)
            feed_split((const uint8_t *)V1, hlen, a, b);
}

static void feed_every_split_v2(void **state)
{
    (void)state;
    for (size_t a = 0; a <= sizeof V2 + 2; a++)
        for (size_t b = a; b <= sizeof V2 + 3; b++)
            feed_split(V2, sizeof V2, a, b);
}

/* A wrong byte in a later read: the parser's error, counted from the header's start. */
static void feed_error_in_a_later_read(void **state)
{
    (void)state;
    hp_pp_wait_t w;
    memset(&w, 0, sizeof w);
    gw_pp_result_t r;
    size_t rest = 0;
    assert_int_equal(hp_pp_feed(&w, (const uint8_t *)"PROXY TC", 8, GW_PP_ANY, &r, &rest), 0);
    assert_int_equal(hp_pp_feed(&w, (const uint8_t *)"P9 1.2.3.4", 10, GW_PP_ANY, &r, &rest),
                     GW_PP_EV1PROTO);
    assert_true(r.err_pos >= 6 && r.err_pos < 18);
    memset(&w, 0, sizeof w);
    assert_int_equal(hp_pp_feed(&w, (const uint8_t *)"PROXY ", 6, GW_PP_V2, &r, &rest),
                     GW_PP_ENOTACCEPTED);
}

/* v2 with its length known: reads shorter than what is missing are kept unparsed, and the
 * header is whole at the byte its length says, not earlier nor later. */
static void feed_v2_byte_at_a_time(void **state)
{
    (void)state;
    uint8_t big[16 + 12 + 1000];
    memcpy(big, V2, sizeof V2);
    big[14] = (12 + 1000) >> 8;
    big[15] = (12 + 1000) & 0xff;
    /* one NOOP TLV filling the 1000 bytes: type, length 997, 997 bytes */
    big[sizeof V2] = GW_PP2_TYPE_NOOP;
    big[sizeof V2 + 1] = 997 >> 8;
    big[sizeof V2 + 2] = 997 & 0xff;
    memset(big + sizeof V2 + 3, 'x', 997);
    hp_pp_wait_t w;
    memset(&w, 0, sizeof w);
    gw_pp_result_t r;
    size_t rest = 0;
    for (size_t i = 0; i + 1 < sizeof big; i++) {
        assert_int_equal(hp_pp_feed(&w, big + i, 1, GW_PP_ANY, &r, &rest), 0);
        if (i >= 15)
            assert_int_equal(w.need, sizeof big - i - 1);
    }
    uint8_t last[2] = {big[sizeof big - 1], 'G'};
    assert_int_equal(hp_pp_feed(&w, last, 2, GW_PP_ANY, &r, &rest), (int)sizeof big);
    assert_int_equal(rest, 1);
}

/* ---- counters by listener name ------------------------------------------------------------ */

/* A hand-made generation: listeners NAMES[N], those with PP[i] set having proxy_protocol. */
typedef struct {
    gw_http_listener_cfg_t hc[4];
    gw_listener_cfg_t lc[4];
    gw_glistener_t gl[4];
    gw_config_t cfg;
    gw_gen_t g;
} fake_gen_t;

static gw_pp_listener_cfg_t ppc = {.accept = GW_PP_ANY, .timeout_ms = 1000};

static void fake_gen(fake_gen_t *f, const char *const *names, const bool *pp, size_t n)
{
    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < n; i++) {
        f->hc[i].pp = pp[i] ? &ppc : NULL;
        f->lc[i].name = (char *)names[i];
        f->lc[i].protocol = GW_PROTO_HTTP;
        f->lc[i].ext[4] = &f->hc[i];
        f->gl[i].cfg = &f->lc[i];
        f->gl[i].pos = i;
    }
    f->cfg.listeners = f->lc;
    f->cfg.nlisteners = n;
    f->g.cfg = &f->cfg;
    f->g.lis = f->gl;
    f->g.nlis = n;
}

static char *pp_metrics(const hp_pp_t *pp, const gw_gen_t *g)
{
    gw_prom_t *p = gw_prom_new(1 << 16);
    assert_non_null(p);
    hp_pp_metrics(pp, g, p);
    char *text = gw_prom_take(p, NULL);
    gw_prom_free(p);
    assert_non_null(text);
    return text;
}

/* Listener `edge` counts two timeouts (two workers), then a reload puts another listener
 * before it: its count goes on from 2 (by name, not by position), and the new listener,
 * without proxy_protocol, has no series. */
static void pp_counters_carried_by_listener_name(void **state)
{
    (void)state;
    int err = 0;
    hp_pp_t *pp = hp_pp_prepare(NULL, 2, &err);
    assert_non_null(pp);
    fake_gen_t g1, g2;
    fake_gen(&g1, (const char *const[]){"edge"}, (const bool[]){true}, 1);
    assert_int_equal(hp_pp_gen_names(pp, &g1.cfg), 0);

    /* A connection of `edge` on each worker whose header never came. */
    hp_t hp = {.pp = pp};
    gw_worker_t w[2];
    hp_worker_t hw[2];
    memset(w, 0, sizeof w);
    memset(hw, 0, sizeof hw);
    gw_listener_t l;
    memset(&l, 0, sizeof l);
    atomic_init(&l.name, "edge");
    hconn_t c;
    memset(&c, 0, sizeof c);
    c.l = &l;
    for (unsigned i = 0; i < 2; i++) {
        w[i].id = i;
        hw[i].w = &w[i];
        hw[i].hp = &hp;
        c.hw = &hw[i];
        hp_pp_timeout(&c);
    }

    fake_gen(&g2, (const char *const[]){"plain", "edge"}, (const bool[]){false, true}, 2);
    assert_int_equal(hp_pp_gen_names(pp, &g2.cfg), 0);
    hp_pp_timeout(&c);
    char *text = pp_metrics(pp, &g2.g);
    assert_non_null(
        strstr(text, "gw_proxy_protocol_total{listener=\"edge\",result=\"timeout\"} 3\n"));
    assert_non_null(
        strstr(text, "gw_proxy_protocol_total{listener=\"edge\",result=\"accepted\"} 0\n"));
    assert_null(strstr(text, "listener=\"plain\""));
    free(text);
    hp_pp_free(pp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(feed_every_split_v1),
        cmocka_unit_test(feed_every_split_v2),
        cmocka_unit_test(feed_error_in_a_later_read),
        cmocka_unit_test(feed_v2_byte_at_a_time),
        cmocka_unit_test(pp_counters_carried_by_listener_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
