/* fuzz_sni.c - the ClientHello reader (sni.h) on any bytes, fed as a client would send them.
 *
 * Input: two bytes seeding the split sizes, one byte choosing the caller's capacity (0: the
 * largest record; else a smaller one), then the bytes the client sends.
 *
 * Invariants: the bytes arrive in pieces of random sizes and each prefix is read from an
 * exactly-sized copy (ASan sees a read past what was received); once an answer other than
 * NEED_MORE comes, every longer prefix gives the same answer (and the same name): the answer
 * does not depend on how the bytes were split; a FOUND name is a valid lower-case host name
 * of LEN bytes (gw_sni_name_valid); an error's position is inside what was read; a smaller
 * capacity gives the same answer or TOO_BIG, never FOUND for what the larger refused. */
#include <string.h>

#include "04-http/sni.h"
#include "fuzz/gwfuzz.h"

static gw_sni_result_t read_prefix(const uint8_t *p, size_t n, size_t max, gw_sni_t *out)
{
    char *cp = gw_fz_dup(p, n);
    gw_sni_result_t r = gw_sni_parse(cp, n, max, out);
    free(cp);
    GW_FZ_CHECK(r >= GW_SNI_TOO_BIG && r <= GW_SNI_NONE, "answer %d", (int)r);
    if (r < 0)
        GW_FZ_CHECK(out->err_pos <= n, "error at %zu of %zu", out->err_pos, n);
    if (r == GW_SNI_FOUND)
        GW_FZ_CHECK(out->len == strlen(out->name) && gw_sni_name_valid(out->name, out->len, true),
                    "found [%s] (%zu)", out->name, out->len);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gw_fz_t f = {data, size};
    uint32_t seed = gw_fz_u16(&f);
    uint8_t cap = gw_fz_u8(&f);
    size_t max = cap == 0 ? GW_SNI_RECORD_MAX : (size_t)cap * 64;
    const uint8_t *p = f.p;
    size_t n = f.n;
    gw_sni_result_t first = GW_SNI_NEED_MORE;
    gw_sni_t s, at_first;
    size_t got = 0;
    for (int step = 0; step < 64 && got < n; step++) {
        got += 1 + gw_fz_next(&seed) % (step < 8 ? 16 : 512);
        if (got > n || step == 63)
            got = n;
        gw_sni_result_t r = read_prefix(p, got, max, &s);
        if (first == GW_SNI_NEED_MORE) {
            first = r;
            at_first = s;
            continue;
        }
        GW_FZ_CHECK(r == first, "%zu bytes: %s, earlier %s", got, gw_sni_result_name(r),
                    gw_sni_result_name(first));
        if (r == GW_SNI_FOUND)
            GW_FZ_CHECK(strcmp(s.name, at_first.name) == 0, "name [%s] then [%s]", at_first.name,
                        s.name);
    }
    gw_sni_result_t whole = read_prefix(p, n, GW_SNI_RECORD_MAX, &s);
    gw_sni_result_t small = read_prefix(p, n, max, &at_first);
    GW_FZ_CHECK(small == whole || small == GW_SNI_TOO_BIG, "capacity %zu: %s, largest: %s", max,
                gw_sni_result_name(small), gw_sni_result_name(whole));
    return 0;
}
