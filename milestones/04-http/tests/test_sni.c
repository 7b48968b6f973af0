/* test_sni.c - the ClientHello reader: real hellos (sni_hellos.h) and hellos built here, fed
 * at every length (NEED_MORE until whole, then one answer), truncated at every length, each
 * length field corrupted, plaintext and SSLv2, several names, IP literals, upper case, and
 * records too big for the caller or for TLS. */
#include "gwtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "04-http/sni.h"
#include "sni_hellos.h"

/* ---- a ClientHello builder ----------------------------------------------------------------- */

#define MAXLENS 32

typedef struct {
    uint8_t b[GW_SNI_RECORD_MAX + 256];
    size_t n;
    size_t open[8]; /* offsets of length fields waiting for their value */
    unsigned open_w[8];
    int nopen;
    size_t lens[MAXLENS]; /* every length field written, in order of closing */
    unsigned lens_w[MAXLENS];
    int nlens;
} hb_t;

typedef struct {
    const char *names[4]; /* host_name entries of the server_name extension */
    int nnames;
    bool no_sni;        /* no server_name extension at all */
    bool two_sni_ext;   /* the server_name extension twice */
    bool empty_sni_ext; /* a server_name extension with no body */
    int other_type;     /* > 0: one more entry of this name type, after the host names */
    size_t pad;         /* a padding extension (21) with this many zero bytes */
    bool no_ext_block;  /* hello ends after the compression methods (TLS 1.0 style) */
    size_t sid;         /* session id length */
    size_t name_len;    /* > 0: names[0] is this long, made of 'a' labels */
} opts_t;

static void put8(hb_t *h, unsigned v)
{
    h->b[h->n++] = (uint8_t)v;
}

static void put16(hb_t *h, unsigned v)
{
    put8(h, v >> 8);
    put8(h, v);
}

static void put_bytes(hb_t *h, const void *p, size_t n)
{
    memcpy(h->b + h->n, p, n);
    h->n += n;
}

/* Opens a length field of W bytes; close() writes the bytes written since. */
static void open_len(hb_t *h, unsigned w)
{
    h->open[h->nopen] = h->n;
    h->open_w[h->nopen++] = w;
    h->n += w;
}

static void close_len(hb_t *h)
{
    int k = --h->nopen;
    size_t at = h->open[k], w = h->open_w[k], v = h->n - at - w;
    for (size_t i = 0; i < w; i++)
        h->b[at + i] = (uint8_t)(v >> (8 * (w - 1 - i)));
    h->lens[h->nlens] = at;
    h->lens_w[h->nlens++] = (unsigned)w;
}

static void sni_ext(hb_t *h, const opts_t *o, const char *long_name)
{
    put16(h, 0);
    open_len(h, 2);
    if (!o->empty_sni_ext) {
        open_len(h, 2);
        for (int i = 0; i < o->nnames; i++) {
            const char *nm = i == 0 && long_name ? long_name : o->names[i];
            put8(h, 0);
            open_len(h, 2);
            put_bytes(h, nm, strlen(nm));
            close_len(h);
        }
        if (o->other_type > 0) {
            put8(h, (unsigned)o->other_type);
            open_len(h, 2);
            put_bytes(h, "opaque", 6);
            close_len(h);
        }
        close_len(h);
    }
    close_len(h);
}

static void build(hb_t *h, const opts_t *o)
{
    static char long_name[300];
    memset(h, 0, sizeof *h);
    if (o->name_len > 0) { /* labels of 63 'a's and dots, cut to name_len */
        for (size_t i = 0; i < o->name_len; i++)
            long_name[i] = i % 64 == 63 ? '.' : 'a';
        long_name[o->name_len] = '\0';
    }
    put8(h, 0x16);
    put16(h, 0x0301);
    open_len(h, 2); /* record */
    put8(h, 1);
    open_len(h, 3); /* handshake */
    put16(h, 0x0303);
    for (int i = 0; i < 32; i++)
        put8(h, (unsigned)(i * 7 + 1));
    open_len(h, 1);
    for (size_t i = 0; i < o->sid; i++)
        put8(h, 0x55);
    close_len(h);
    open_len(h, 2);
    put16(h, 0xc02f);
    put16(h, 0xcca8);
    close_len(h);
    open_len(h, 1);
    put8(h, 0);
    close_len(h);
    if (!o->no_ext_block) {
        open_len(h, 2);
        /* supported_groups: x25519. Its inner list length is written as a constant: the
         * reader does not look inside extensions other than server_name. */
        put16(h, 10);
        open_len(h, 2);
        put16(h, 2);
        put16(h, 0x001d);
        close_len(h);
        if (!o->no_sni)
            sni_ext(h, o, o->name_len ? long_name : NULL);
        if (o->two_sni_ext)
            sni_ext(h, o, NULL);
        if (o->pad > 0) {
            put16(h, 21);
            open_len(h, 2);
            memset(h->b + h->n, 0, o->pad);
            h->n += o->pad;
            close_len(h);
        }
        close_len(h);
    }
    close_len(h);
    close_len(h);
}

static gw_sni_result_t parse(const void *p, size_t n, gw_sni_t *out)
{
    return gw_sni_parse(p, n, GW_SNI_RECORD_MAX, out);
}

/* Every prefix shorter than the record is NEED_MORE; the whole record gives WANT (and NAME
 * when FOUND); bytes after the record change nothing. Fed from an exactly-sized copy, so
 * ASan sees any read past what was "received". */
static void check_whole(const uint8_t *b, size_t n, gw_sni_result_t want, const char *name)
{
    gw_sni_t s;
    for (size_t k = 0; k < n; k++) {
        uint8_t *cp = malloc(k ? k : 1);
        memcpy(cp, b, k);
        gw_sni_result_t r = parse(cp, k, &s);
        free(cp);
        if (r != GW_SNI_NEED_MORE)
            fail_msg("prefix of %zu/%zu bytes: %s, want need_more", k, n, gw_sni_result_name(r));
    }
    uint8_t *cp = malloc(n + 3);
    memcpy(cp, b, n);
    memcpy(cp + n, "\x17\x03\x03", 3);
    gw_sni_result_t r[4];
    gw_sni_t got[4];
    for (size_t extra = 0; extra <= 3; extra++)
        r[extra] = parse(cp, n + extra, &got[extra]);
    free(cp);
    for (size_t extra = 0; extra <= 3; extra++) {
        if (r[extra] != want)
            fail_msg("whole (+%zu): %s, want %s", extra, gw_sni_result_name(r[extra]),
                     gw_sni_result_name(want));
        if (want == GW_SNI_FOUND) {
            assert_string_equal(got[extra].name, name);
            assert_int_equal(got[extra].len, strlen(name));
        }
    }
}

/* ---- real hellos ------------------------------------------------------------------------ */

static void sni_openssl_hello_found_lowercased(void **state)
{
    (void)state;
    check_whole(h_sni_bin, sizeof h_sni_bin, GW_SNI_FOUND, "example.com");
}

static void sni_openssl_hello_without_name_is_none(void **state)
{
    (void)state;
    check_whole(h_nosni_bin, sizeof h_nosni_bin, GW_SNI_NONE, NULL);
}

static void sni_openssl_tls12_hello_found(void **state)
{
    (void)state;
    check_whole(h_tls12_bin, sizeof h_tls12_bin, GW_SNI_FOUND, "api.example.com");
}

/* ---- built hellos ------------------------------------------------------------------------ */

static void sni_built_hellos_at_every_length(void **state)
{
    (void)state;
    static const struct {
        opts_t o;
        gw_sni_result_t want;
        const char *name;
    } v[] = {
        {{.names = {"a.example.com"}, .nnames = 1}, GW_SNI_FOUND, "a.example.com"},
        {{.names = {"API.Example.COM"}, .nnames = 1, .sid = 32}, GW_SNI_FOUND, "api.example.com"},
        {{.names = {"x_y-z.internal"}, .nnames = 1}, GW_SNI_FOUND, "x_y-z.internal"},
        {{.names = {"h"}, .nnames = 1, .other_type = 7}, GW_SNI_FOUND, "h"},
        {{.no_sni = true}, GW_SNI_NONE, NULL},
        {{.no_ext_block = true}, GW_SNI_NONE, NULL},
        {{.names = {"10.0.0.1"}, .nnames = 1}, GW_SNI_NONE, NULL},
        {{.names = {"2001:db8::1"}, .nnames = 1}, GW_SNI_NONE, NULL},
        {{.names = {"a", "b"}, .nnames = 2}, GW_SNI_MALFORMED, NULL},
        {{.names = {"a"}, .nnames = 1, .two_sni_ext = true}, GW_SNI_MALFORMED, NULL},
        {{.empty_sni_ext = true}, GW_SNI_MALFORMED, NULL},
        {{.nnames = 0}, GW_SNI_MALFORMED, NULL}, /* an empty server_name list */
        {{.names = {"a.example.com"}, .nnames = 1, .sid = 33}, GW_SNI_MALFORMED, NULL},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        hb_t h;
        build(&h, &v[i].o);
        print_message("case %zu\n", i);
        check_whole(h.b, h.n, v[i].want, v[i].name);
    }
}

static void sni_bad_names_are_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {"",    "example.com.",  "a..b",       ".a",
                                      "a b", "*.example.com", "ex\x01mple", "é.fr",
                                      "a/b", "a.b:443",       "[::1]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hb_t h;
        opts_t o = {.names = {bad[i]}, .nnames = 1};
        build(&h, &o);
        gw_sni_t s;
        gw_sni_result_t r = parse(h.b, h.n, &s);
        if (r != GW_SNI_MALFORMED)
            fail_msg("name [%s]: %s, want malformed", bad[i], gw_sni_result_name(r));
        assert_true(s.err_pos <= h.n);
    }
}

static void sni_name_length_limits(void **state)
{
    (void)state;
    gw_sni_t s;
    hb_t h;
    opts_t o = {.nnames = 1, .name_len = 253};
    build(&h, &o);
    assert_int_equal(parse(h.b, h.n, &s), GW_SNI_FOUND);
    assert_int_equal(s.len, 253);
    o.name_len = 254;
    build(&h, &o);
    assert_int_equal(parse(h.b, h.n, &s), GW_SNI_MALFORMED);
    /* a 64-byte label */
    char label[80];
    memset(label, 'b', 64);
    strcpy(label + 64, ".com");
    opts_t o2 = {.names = {label}, .nnames = 1};
    build(&h, &o2);
    assert_int_equal(parse(h.b, h.n, &s), GW_SNI_MALFORMED);
    strcpy(label + 63, ".b.com"); /* 63 is the most */
    build(&h, &o2);
    assert_int_equal(parse(h.b, h.n, &s), GW_SNI_FOUND);
}

/* The hello cut at every length inside a record whose two lengths say it ends there: a
 * complete record holding an incomplete hello is malformed, except where the cut leaves a
 * valid hello without extensions. */
static void sni_truncated_hello_in_whole_record_is_malformed(void **state)
{
    (void)state;
    hb_t h;
    opts_t o = {.names = {"a.example.com"}, .nnames = 1, .sid = 8};
    build(&h, &o);
    size_t no_ext_end = 9 + 2 + 32 + 1 + 8 + 2 + 4 + 1 + 1; /* after the compression methods */
    for (size_t cut = 9; cut < h.n; cut++) {
        uint8_t b[sizeof h.b];
        memcpy(b, h.b, cut);
        size_t rec = cut - 5, hs = cut - 9;
        b[3] = (uint8_t)(rec >> 8);
        b[4] = (uint8_t)rec;
        b[6] = (uint8_t)(hs >> 16);
        b[7] = (uint8_t)(hs >> 8);
        b[8] = (uint8_t)hs;
        gw_sni_t s;
        gw_sni_result_t r = parse(b, cut, &s);
        gw_sni_result_t want = cut == no_ext_end ? GW_SNI_NONE : GW_SNI_MALFORMED;
        if (r != want)
            fail_msg("cut at %zu: %s, want %s", cut, gw_sni_result_name(r),
                     gw_sni_result_name(want));
        if (r < 0)
            assert_true(s.err_pos <= cut);
    }
}

/* Each length field of a built hello, one more and one less (and all ones): never FOUND,
 * never a read past the record (ASan), and the outer lengths give the answer they must. */
static void sni_each_length_field_corrupted(void **state)
{
    (void)state;
    hb_t h;
    opts_t o = {.names = {"a.example.com"}, .nnames = 1, .sid = 4};
    build(&h, &o);
    assert_true(h.nlens >= 10);
    for (int k = 0; k < h.nlens; k++) {
        size_t at = h.lens[k];
        unsigned w = h.lens_w[k];
        for (int d = 0; d < 3; d++) {
            uint8_t *b = malloc(h.n);
            memcpy(b, h.b, h.n);
            uint64_t v = 0;
            for (unsigned i = 0; i < w; i++)
                v = v << 8 | b[at + i];
            v = d == 0 ? v + 1 : d == 1 ? v - 1 : ~(uint64_t)0;
            for (unsigned i = 0; i < w; i++)
                b[at + i] = (uint8_t)(v >> (8 * (w - 1 - i)));
            gw_sni_t s;
            gw_sni_result_t r = parse(b, h.n, &s);
            free(b);
            if (at == 3) { /* the record's: +1 leaves a byte after the hello, -1 cuts the
                            * hello, 0xffff is more than 16 KiB */
                gw_sni_result_t want = d == 0 ? GW_SNI_MALFORMED : GW_SNI_TOO_BIG;
                if (r != want)
                    fail_msg("record length %d: %s", d, gw_sni_result_name(r));
                continue;
            }
            if (r == GW_SNI_FOUND || r == GW_SNI_NEED_MORE)
                fail_msg("length at %zu (%u bytes) changed by case %d: %s", at, w, d,
                         gw_sni_result_name(r));
            assert_true(s.err_pos <= h.n);
        }
    }
}

static void sni_plaintext_and_sslv2_are_not_tls(void **state)
{
    (void)state;
    gw_sni_t s;
    assert_int_equal(parse("G", 1, &s), GW_SNI_NOT_TLS);
    assert_int_equal(s.err_pos, 0);
    assert_int_equal(parse("GET / HTTP/1.1\r\n", 16, &s), GW_SNI_NOT_TLS);
    assert_int_equal(parse("\x16", 1, &s), GW_SNI_NEED_MORE);
    assert_int_equal(parse("\x16\x02", 2, &s), GW_SNI_NOT_TLS); /* not version 3.x */
    assert_int_equal(s.err_pos, 1);
    assert_int_equal(parse("\x17\x03\x03\x00\x10", 5, &s), GW_SNI_NOT_TLS); /* app data */
    /* SSLv2-compatible CLIENT-HELLO: a two-byte length with the high bit, type 1 */
    static const uint8_t v2[] = {0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10};
    assert_int_equal(parse(v2, sizeof v2, &s), GW_SNI_NOT_TLS);
    assert_int_equal(parse("", 0, &s), GW_SNI_NEED_MORE);
}

static void sni_not_a_client_hello_is_malformed(void **state)
{
    (void)state;
    gw_sni_t s;
    hb_t h;
    opts_t o = {.names = {"a"}, .nnames = 1};
    build(&h, &o);
    h.b[5] = 2;                                            /* ServerHello */
    assert_int_equal(parse(h.b, 6, &s), GW_SNI_MALFORMED); /* told by its sixth byte */
    assert_int_equal(s.err_pos, 5);
    assert_int_equal(parse("\x16\x03\x01\x00\x00", 5, &s), GW_SNI_MALFORMED); /* empty */
    assert_int_equal(parse("\x16\x03\x01\x00\x03", 5, &s), GW_SNI_MALFORMED); /* < 4 */
    build(&h, &o);
    h.b[9] = 2; /* client_version 2.3 */
    assert_int_equal(parse(h.b, h.n, &s), GW_SNI_MALFORMED);
}

static void sni_oversize_records_are_too_big(void **state)
{
    (void)state;
    gw_sni_t s;
    /* More than TLS allows, from the header alone. */
    assert_int_equal(parse("\x16\x03\x01\x40\x01", 5, &s), GW_SNI_TOO_BIG);
    assert_int_equal(s.err_pos, 3);
    /* The largest record TLS allows, holding a valid hello: found. */
    static hb_t h;
    opts_t o = {.names = {"big.example.com"}, .nnames = 1};
    build(&h, &o);
    o.pad = GW_SNI_RECORD_MAX - h.n - 4;
    build(&h, &o);
    assert_int_equal(h.n, GW_SNI_RECORD_MAX);
    assert_int_equal(parse(h.b, h.n, &s), GW_SNI_FOUND);
    assert_string_equal(s.name, "big.example.com");
    /* ... but not for a caller that can hold one byte less: said from the header. */
    assert_int_equal(gw_sni_parse(h.b, 5, GW_SNI_RECORD_MAX - 1, &s), GW_SNI_TOO_BIG);
    assert_int_equal(gw_sni_parse(h.b, 5, 1024, &s), GW_SNI_TOO_BIG);
    /* A hello that goes on in a second record (handshake longer than its record). */
    build(&h, &(opts_t){.names = {"a"}, .nnames = 1});
    size_t rec = h.n - 5 - 10;
    h.b[3] = (uint8_t)(rec >> 8);
    h.b[4] = (uint8_t)rec;
    assert_int_equal(parse(h.b, 9, &s), GW_SNI_TOO_BIG); /* told by the two headers */
    assert_int_equal(s.err_pos, 6);
}

static void sni_name_valid_rules(void **state)
{
    (void)state;
    assert_true(gw_sni_name_valid("example.com", 11, true));
    assert_true(gw_sni_name_valid("a", 1, true));
    assert_true(gw_sni_name_valid("x-1_y.z9", 8, true));
    assert_true(gw_sni_name_valid("Example.com", 11, false));
    assert_false(gw_sni_name_valid("Example.com", 11, true));
    assert_false(gw_sni_name_valid("", 0, false));
    assert_false(gw_sni_name_valid("a.", 2, false));
    assert_false(gw_sni_name_valid("1.2.3.4", 7, false));
    assert_false(gw_sni_name_valid("a.123", 5, false));
    assert_true(gw_sni_name_valid("123.a", 5, false));
    assert_false(gw_sni_name_valid("a\0b", 3, false));
}

static void sni_result_names(void **state)
{
    (void)state;
    assert_string_equal(gw_sni_result_name(GW_SNI_FOUND), "found");
    assert_string_equal(gw_sni_result_name(GW_SNI_NONE), "none");
    assert_string_equal(gw_sni_result_name(GW_SNI_NEED_MORE), "need_more");
    assert_string_equal(gw_sni_result_name(GW_SNI_NOT_TLS), "not_tls");
    assert_string_equal(gw_sni_result_name(GW_SNI_MALFORMED), "malformed");
    assert_string_equal(gw_sni_result_name(GW_SNI_TOO_BIG), "too_big");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sni_openssl_hello_found_lowercased),
        cmocka_unit_test(sni_openssl_hello_without_name_is_none),
        cmocka_unit_test(sni_openssl_tls12_hello_found),
        cmocka_unit_test(sni_built_hellos_at_every_length),
        cmocka_unit_test(sni_bad_names_are_malformed),
        cmocka_unit_test(sni_name_length_limits),
        cmocka_unit_test(sni_truncated_hello_in_whole_record_is_malformed),
        cmocka_unit_test(sni_each_length_field_corrupted),
        cmocka_unit_test(sni_plaintext_and_sslv2_are_not_tls),
        cmocka_unit_test(sni_not_a_client_hello_is_malformed),
        cmocka_unit_test(sni_oversize_records_are_too_big),
        cmocka_unit_test(sni_name_valid_rules),
        cmocka_unit_test(sni_result_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
