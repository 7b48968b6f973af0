/* test_pathnorm.c - path normalisation: good vectors with their expected output, and the classic
 * traversal and encoding attacks, each with its status. */
#include "gwtest.h"

#include <string.h>

#include "04-http/pathnorm.h"

typedef struct {
    const char *in;
    const char *out;
} good_t;

typedef struct {
    const char *in;
    int status;
} bad_t;

static void check_good(const good_t *v, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        char out[256];
        gw_pathnorm_t res;
        int rc = gw_path_normalize(v[k].in, strlen(v[k].in), out, sizeof(out), &res);
        if (rc != 0)
            fail_msg("%s: rejected (%d %s at %zu)", v[k].in, res.status, res.reason, res.offset);
        if (strcmp(out, v[k].out) != 0)
            fail_msg("%s: got %s, want %s", v[k].in, out, v[k].out);
        assert_int_equal(res.len, strlen(out));
        assert_true(res.len <= strlen(v[k].in));
    }
}

static void check_bad(const bad_t *v, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        char out[256];
        gw_pathnorm_t res;
        int rc = gw_path_normalize(v[k].in, strlen(v[k].in), out, sizeof(out), &res);
        if (rc == 0)
            fail_msg("%s: accepted as %s", v[k].in, out);
        if (res.status != v[k].status)
            fail_msg("%s: status %d, want %d (%s)", v[k].in, res.status, v[k].status, res.reason);
        assert_non_null(res.reason);
        assert_true(res.offset <= strlen(v[k].in));
    }
}

#define CHECK_GOOD(v) check_good((v), sizeof(v) / sizeof((v)[0]))
#define CHECK_BAD(v) check_bad((v), sizeof(v) / sizeof((v)[0]))

static void pathnorm_keeps_clean_paths(void **state)
{
    (void)state;
    static const good_t v[] = {
        {"/", "/"},
        {"/a", "/a"},
        {"/a/", "/a/"},
        {"/users/42/orders", "/users/42/orders"},
        {"/a-b_c.d~e", "/a-b_c.d~e"},
        {"/x:y@z!$&'()*+,;=", "/x:y@z!$&'()*+,;="},
        {"/...", "/..."},
        {"/a/.../b", "/a/.../b"},
        {"/.well-known/x", "/.well-known/x"},
        {"/a..b/c.", "/a..b/c."},
    };
    CHECK_GOOD(v);
}

static void pathnorm_decodes_only_unreserved(void **state)
{
    (void)state;
    static const good_t v[] = {
        {"/%41%62%63", "/Abc"},
        {"/%7e%2D%5f%2e%7E", "/~-_.~"},
        {"/a%20b", "/a%20b"},
        {"/a%3fb", "/a%3Fb"}, /* '?' stays encoded: decoding it would start a query */
        {"/a%23b", "/a%23b"},
        {"/a%3Bb", "/a%3Bb"},
        {"/%25", "/%25"}, /* a literal '%' not followed by hex digits */
        {"/%25zz", "/%25zz"},
        {"/caf%c3%a9", "/caf%C3%A9"}, /* valid UTF-8 stays encoded, upper case */
        {"/%e2%82%ac", "/%E2%82%AC"},
    };
    CHECK_GOOD(v);
}

static void pathnorm_resolves_dot_segments(void **state)
{
    (void)state;
    static const good_t v[] = {
        {"/a/./b", "/a/b"},    {"/a/.", "/a/"},
        {"/./a", "/a"},        {"/.", "/"},
        {"/a/b/..", "/a/"},    {"/a/b/../c", "/a/c"},
        {"/a/..", "/"},        {"/a/b/c/../../d", "/a/d"},
        {"/a/%2e/b", "/a/b"},  {"/a/%2E%2e/b", "/b"},
        {"/a/b/.%2e/", "/a/"}, {"/a/./../b/./c/.", "/b/c/"},
    };
    CHECK_GOOD(v);
}

/* Decision: empty segments are merged (see pathnorm.h); the trailing slash stays. */
static void pathnorm_collapses_empty_segments(void **state)
{
    (void)state;
    static const good_t v[] = {
        {"//", "/"},           {"//admin", "/admin"}, {"/a//b", "/a/b"},
        {"/a///b//", "/a/b/"}, {"/a/.//b", "/a/b"},
    };
    CHECK_GOOD(v);
}

static void pathnorm_copies_query_unchanged(void **state)
{
    (void)state;
    static const good_t v[] = {
        {"/a?x=1", "/a?x=1"},  {"/a/../b?q=/../..%2f%00", "/b?q=/../..%2f%00"},
        {"/?", "/?"},          {"/%61?%61", "/a?%61"},
        {"//x?a?b", "/x?a?b"},
    };
    CHECK_GOOD(v);
    char out[64];
    gw_pathnorm_t res;
    assert_int_equal(gw_path_normalize("/a/./b?c=d", 10, out, sizeof(out), &res), 0);
    assert_int_equal(res.path_len, 4);
    assert_int_equal(res.len, 8);
}

/* The classic traversal list: every way of writing ".." that must not leave the root. */
static void pathnorm_rejects_traversal(void **state)
{
    (void)state;
    static const bad_t v[] = {
        {"/..", 400},
        {"/../", 400},
        {"/../etc/passwd", 400},
        {"/a/../../etc/passwd", 400},
        {"/a/./../..", 400},
        {"/%2e%2e/etc/passwd", 400},
        {"/%2E%2E/", 400},
        {"/.%2e/x", 400},
        {"/%2e./x", 400},
        {"/a/%2e%2e/%2e%2e/x", 400},
        {"/static/..%2f..%2fetc/passwd", 400},
        {"/%2e%2e%2f", 400},
        {"/..%5c..%5cwindows", 400},
        {"/..\\..\\windows", 400},
        {"/a\\..\\..", 400},
        {"/%252e%252e/etc", 400},
        {"/%252e%252e%252f", 400},
        {"/%25%32%65%25%32%65/x", 400},
        {"/%c0%ae%c0%ae/x", 400},
        {"/%c0%af", 400},
        {"/%c1%9c", 400},
        {"/%e0%80%ae%e0%80%ae/", 400},
        {"/..;/admin", 400},
        {"/a/..;x=1/b", 400},
        {"/.;/a", 400},
        {"/%2e%2e;/x", 400},
        {"/..%00/x", 400},
        {"/%u002e%u002e/x", 400},
    };
    CHECK_BAD(v);
}

static void pathnorm_rejects_encoded_separators_and_nul(void **state)
{
    (void)state;
    static const bad_t v[] = {
        {"/a%2fb", 400}, {"/a%2Fb", 400}, {"/a%5cb", 400},
        {"/a%5Cb", 400}, {"/a%00b", 400}, {"/%00", 400},
    };
    CHECK_BAD(v);
}

static void pathnorm_rejects_bad_escapes_and_bytes(void **state)
{
    (void)state;
    static const bad_t v[] = {
        {"", 400},          {"a/b", 400},    {"*", 400},
        {"http://x/", 400}, {"/a%", 400},    {"/a%2", 400},
        {"/a%zz", 400},     {"/a%2g", 400},  {"/a b", 400},
        {"/a\tb", 400},     {"/a\rb", 400},  {"/a#frag", 400},
        {"/a\"b", 400},     {"/a<b>", 400},  {"/caf\xc3\xa9", 400},
        {"/a\x7f", 400},    {"/a?b c", 400}, {"/a?b\x01", 400},
        {"/a|b", 400},      {"/a{b}", 400},
    };
    CHECK_BAD(v);
}

/* A NUL inside the target (length-delimited input) is an invalid byte, not an end. */
static void pathnorm_rejects_raw_nul(void **state)
{
    (void)state;
    char out[16];
    gw_pathnorm_t res;
    assert_int_equal(gw_path_normalize("/a\0/../b", 8, out, sizeof(out), &res), -1);
    assert_int_equal(res.status, 400);
    assert_int_equal(res.offset, 2);
}

static void pathnorm_reports_offset_of_problem(void **state)
{
    (void)state;
    char out[64];
    gw_pathnorm_t res;
    assert_int_equal(gw_path_normalize("/abc/d%2fe", 10, out, sizeof(out), &res), -1);
    assert_int_equal(res.offset, 6);
    gw_assert_contains(res.reason, "encoded slash");
    assert_int_equal(gw_path_normalize("/a/../../x", 10, out, sizeof(out), &res), -1);
    assert_int_equal(res.offset, 6);
    gw_assert_contains(res.reason, "escapes the root");
}

/* OUTCAP = LEN + 1 always suffices; smaller fails with 414 and never writes past OUTCAP. */
static void pathnorm_output_is_bounded(void **state)
{
    (void)state;
    const char *in = "/a%41/b/../c?q=1";
    size_t len = strlen(in);
    char out[32];
    gw_pathnorm_t res;
    assert_int_equal(gw_path_normalize(in, len, out, len + 1, &res), 0);
    assert_string_equal(out, "/aA/c?q=1");
    for (size_t cap = 0; cap <= res.len; cap++) {
        memset(out, 'Z', sizeof(out));
        assert_int_equal(gw_path_normalize(in, len, out, cap, &res), -1);
        assert_int_equal(res.status, 414);
        for (size_t k = cap; k < sizeof(out); k++)
            assert_int_equal(out[k], 'Z');
    }
}

/* Normalising twice changes nothing: the router and the upstream read the same path. */
static void pathnorm_is_idempotent(void **state)
{
    (void)state;
    static const char *in[] = {"/a/./b/../c/", "//x//y", "/%41%2e%62?z=%2e", "/caf%c3%a9/.",
                               "/%7e/%3b/x;y/b"};
    for (size_t k = 0; k < sizeof(in) / sizeof(in[0]); k++) {
        char a[64], b[64];
        gw_pathnorm_t r1, r2;
        assert_int_equal(gw_path_normalize(in[k], strlen(in[k]), a, sizeof(a), &r1), 0);
        assert_int_equal(gw_path_normalize(a, r1.len, b, sizeof(b), &r2), 0);
        assert_string_equal(a, b);
    }
}

/* Random bytes from a small alphabet full of '.', '/', '%' and hex (fixed seed): never a crash or
 * overflow, and every accepted output is idempotent, starts with '/', has no dot segment, no "//"
 * and no escape of '/', '\' or NUL. */
static void pathnorm_fuzz_accepted_outputs_are_clean(void **state)
{
    (void)state;
    static const char alpha[] = "/./.%2e5cfF0a;\\?";
    uint64_t rng = 42;
    for (int iter = 0; iter < 200000; iter++) {
        char in[24], out[25], again[25];
        size_t len = 1 + (size_t)(iter % 23);
        in[0] = '/';
        for (size_t k = 1; k < len; k++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            in[k] = alpha[(rng >> 33) % (sizeof(alpha) - 1)];
        }
        gw_pathnorm_t res, r2;
        if (gw_path_normalize(in, len, out, sizeof(out), &res) != 0)
            continue;
        assert_true(res.len <= len && out[0] == '/');
        char path[25];
        memcpy(path, out, res.path_len);
        path[res.path_len] = '\0';
        assert_null(strstr(path, "//"));
        assert_null(strstr(path, "/./"));
        assert_null(strstr(path, "/../"));
        assert_null(strstr(path, "%2F"));
        assert_null(strstr(path, "%5C"));
        assert_int_equal(gw_path_normalize(out, res.len, again, sizeof(again), &r2), 0);
        assert_string_equal(out, again);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pathnorm_keeps_clean_paths),
        cmocka_unit_test(pathnorm_decodes_only_unreserved),
        cmocka_unit_test(pathnorm_resolves_dot_segments),
        cmocka_unit_test(pathnorm_collapses_empty_segments),
        cmocka_unit_test(pathnorm_copies_query_unchanged),
        cmocka_unit_test(pathnorm_rejects_traversal),
        cmocka_unit_test(pathnorm_rejects_encoded_separators_and_nul),
        cmocka_unit_test(pathnorm_rejects_bad_escapes_and_bytes),
        cmocka_unit_test(pathnorm_rejects_raw_nul),
        cmocka_unit_test(pathnorm_reports_offset_of_problem),
        cmocka_unit_test(pathnorm_output_is_bounded),
        cmocka_unit_test(pathnorm_is_idempotent),
        cmocka_unit_test(pathnorm_fuzz_accepted_outputs_are_clean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
