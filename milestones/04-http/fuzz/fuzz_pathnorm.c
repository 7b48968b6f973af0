/* fuzz_pathnorm.c - path normalisation: what pathnorm.h promises of every output, checked on
 * any input. Input: one byte choosing a small output capacity, then the request target.
 *
 * Invariants: an accepted path starts with '/', has no empty, "." or ".." segment, no escape
 * of an unreserved byte, of '/', '\\' or NUL, no lower-case hex, no "%25" followed by two hex
 * digits; the query is the input's, unchanged; normalising the output again changes nothing
 * (so the router and the upstream read the same path); the output is never longer than the
 * input; a refusal is 400 or 414 with a reason and an offset inside the input; a capacity of
 * input + 1 never gives 414, and a smaller one either gives the same answer or 414. */
#include <ctype.h>
#include <string.h>

#include "04-http/pathnorm.h"
#include "fuzz/gwfuzz.h"

static bool is_hex_upper(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static int hexval(char c)
{
    return c <= '9' ? c - '0' : c - 'A' + 10;
}

static bool unreserved(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* The promises about an accepted path OUT[0..N). */
static void check_path(const char *out, size_t n)
{
    GW_FZ_CHECK(n >= 1 && out[0] == '/', "path [%.*s] does not start with /", (int)n, out);
    size_t seg = 1; /* start of the current segment */
    for (size_t i = 1; i <= n; i++) {
        if (i < n && out[i] != '/')
            continue;
        size_t len = i - seg;
        bool last = i == n;
        GW_FZ_CHECK(len > 0 || last, "empty segment at %zu in [%.*s]", seg, (int)n, out);
        GW_FZ_CHECK(!(len == 1 && out[seg] == '.'), "\".\" segment in [%.*s]", (int)n, out);
        GW_FZ_CHECK(!(len == 2 && out[seg] == '.' && out[seg + 1] == '.'), "\"..\" in [%.*s]",
                    (int)n, out);
        seg = i + 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (out[i] != '%')
            continue;
        GW_FZ_CHECK(i + 2 < n, "cut escape at %zu in [%.*s]", i, (int)n, out);
        GW_FZ_CHECK(is_hex_upper(out[i + 1]) && is_hex_upper(out[i + 2]),
                    "escape not upper-case hex at %zu in [%.*s]", i, (int)n, out);
        int v = hexval(out[i + 1]) * 16 + hexval(out[i + 2]);
        GW_FZ_CHECK(!unreserved(v) && v != '/' && v != '\\' && v != 0,
                    "escape %%%02X kept at %zu in [%.*s]", v, i, (int)n, out);
        GW_FZ_CHECK(!(v == '%' && i + 4 < n && isxdigit((unsigned char)out[i + 3]) &&
                      isxdigit((unsigned char)out[i + 4])),
                    "double encoding at %zu in [%.*s]", i, (int)n, out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gw_fz_t f = {data, size};
    size_t small = gw_fz_u8(&f);
    size_t len = f.n;
    char *in = gw_fz_dup(f.p, len);
    char *out = malloc(len + 1), *out2 = malloc(small + 1), *again = malloc(len + 1);
    if (!out || !out2 || !again)
        abort();
    gw_pathnorm_t res, res2;
    int rc = gw_path_normalize(in, len, out, len + 1, &res);
    if (rc != 0) {
        GW_FZ_CHECK(res.status == 400, "status %d with room for the whole input", res.status);
        GW_FZ_CHECK(res.reason != NULL && res.offset <= len, "reason %p offset %zu of %zu",
                    (const void *)res.reason, res.offset, len);
    } else {
        GW_FZ_CHECK(res.status == 0 && res.reason == NULL, "success with status %d", res.status);
        GW_FZ_CHECK(res.len <= len && out[res.len] == '\0' && strlen(out) == res.len,
                    "length %zu of input %zu", res.len, len);
        GW_FZ_CHECK(res.path_len <= res.len &&
                        (out[res.path_len] == '?' || out[res.path_len] == '\0'),
                    "path_len %zu", res.path_len);
        check_path(out, res.path_len);
        const char *q = memchr(in, '?', len);
        size_t qlen = q ? len - (size_t)(q - in) : 0;
        GW_FZ_CHECK(res.len - res.path_len == qlen &&
                        memcmp(out + res.path_len, q ? q : "", qlen) == 0,
                    "query changed: [%s]", out + res.path_len);
        gw_pathnorm_t r3;
        int rc3 = gw_path_normalize(out, res.len, again, res.len + 1, &r3);
        GW_FZ_CHECK(rc3 == 0 && r3.len == res.len && memcmp(again, out, res.len) == 0,
                    "not idempotent: [%s] -> rc %d [%.*s] (%s)", out, rc3,
                    rc3 == 0 ? (int)r3.len : 0, again, rc3 ? r3.reason : "");
    }
    /* A smaller output: the same answer, or 414 when the output did not fit. */
    int rc2 = gw_path_normalize(in, len, out2, small + 1, &res2);
    if (rc2 == 0) {
        GW_FZ_CHECK(rc == 0 && res2.len == res.len && memcmp(out2, out, res.len + 1) == 0,
                    "capacity %zu changed the output", small + 1);
    } else if (res2.status == 414) {
        /* Segments are written before dot segments are removed, so what must fit is the
         * longest intermediate form, not only the result: any capacity below the input's
         * may 414 (pathnorm.h). */
        GW_FZ_CHECK(small + 1 < len + 1, "414 with capacity %zu for %zu bytes", small + 1, len);
    } else {
        GW_FZ_CHECK(rc != 0 && res2.status == res.status && res2.offset == res.offset,
                    "capacity %zu: %d at %zu, full capacity: %d at %zu", small + 1, res2.status,
                    res2.offset, rc ? res.status : 0, res.offset);
    }
    free(in);
    free(out);
    free(out2);
    free(again);
    return 0;
}
