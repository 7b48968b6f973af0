/* fuzz_admin.c - the admin API's request handling: any bytes as the input of one admin
 * connection (gw_admin_serve_memory: common/httpd.c's parser, limits and pipelining with
 * admin.c's routes and token check), answered from made-up sources, no socket.
 *
 * Input: a flags byte (bit 0: a token is required; bit 1: ready; bit 2: /stats fails), a
 * read size byte (0: 4 KiB reads), then the bytes the client sends.
 *
 * Invariants: the answers do not depend on how reads split the input; every answer is
 * "HTTP/1.1 NNN Reason" with a status the admin API can give, a Content-Length and a head
 * that ends; with a token required and the token nowhere in the input, the only 200 is the
 * open /healthz (a 16-byte body); without HEAD requests, the output parses with llhttp as a
 * sequence of complete responses. */
#include <llhttp.h>
#include <string.h>

#include "03-resilience/admin.h"
#include "fuzz/gwfuzz.h"

#define TOKEN "tok-3x"

static bool ready_flag, stats_fail;

static void src_metrics(void *ctx, gw_prom_t *out)
{
    (void)ctx;
    gw_prom_family(out, "gw_requests_total", "Requests.", GW_PROM_COUNTER);
    gw_prom_sample_u64(out, "gw_requests_total", (const char *const[]){"code", "200", NULL}, 7);
}

static json_t *src_stats(void *ctx)
{
    (void)ctx;
    return stats_fail ? NULL : json_pack("{s:i}", "connections", 3);
}

static json_t *src_backends(void *ctx)
{
    (void)ctx;
    return json_pack("{s:[]}", "app");
}

static bool src_ready(void *ctx)
{
    (void)ctx;
    return ready_flag;
}

static bool allowed(int status)
{
    static const int ok[] = {200, 400, 401, 404, 405, 413, 414, 431, 500, 503, 505};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (status == ok[i])
            return true;
    return false;
}

/* Walks the responses in OUT[0..N) by their heads. */
static void check_heads(const char *out, size_t n, bool token_absent)
{
    size_t pos = 0;
    while (pos < n) {
        const char *p = out + pos;
        GW_FZ_CHECK(n - pos > 13 && memcmp(p, "HTTP/1.1 ", 9) == 0, "no status line at %zu", pos);
        int status = atoi(p + 9);
        GW_FZ_CHECK(allowed(status), "status %d", status);
        const char *end = memmem(p, n - pos, "\r\n\r\n", 4);
        GW_FZ_CHECK(end != NULL, "head at %zu does not end", pos);
        size_t hlen = (size_t)(end - p) + 4;
        const char *cl = memmem(p, hlen, "\r\nContent-Length: ", 18);
        GW_FZ_CHECK(cl != NULL, "no Content-Length at %zu", pos);
        size_t blen = (size_t)strtoul(cl + 18, NULL, 10);
        if (token_absent && status == 200)
            GW_FZ_CHECK(blen == 16, "a 200 of %zu bytes without the token", blen);
        /* a HEAD answer has no body: only skip the body when it is there */
        if (hlen + blen <= n - pos &&
            (hlen + blen == n - pos || memcmp(p + hlen + blen, "HTTP/1.1 ", 9) == 0))
            pos += hlen + blen;
        else
            pos += hlen;
    }
}

static int on_begin(llhttp_t *p)
{
    ((int *)p->data)[0]++;
    return 0;
}

static int on_complete(llhttp_t *p)
{
    ((int *)p->data)[1]++;
    return 0;
}

static void check_llhttp(const char *out, size_t n)
{
    if (n == 0)
        return;
    llhttp_settings_t set;
    llhttp_settings_init(&set);
    set.on_message_begin = on_begin;
    set.on_message_complete = on_complete;
    llhttp_t p;
    llhttp_init(&p, HTTP_RESPONSE, &set);
    int count[2] = {0, 0};
    p.data = count;
    llhttp_errno_t e = llhttp_execute(&p, out, n);
    GW_FZ_CHECK(e == HPE_OK, "responses do not parse: %s", llhttp_errno_name(e));
    GW_FZ_CHECK(count[0] == count[1], "%d responses begun, %d complete", count[0], count[1]);
}

/* Where the last response of OUT[0..N) starts, and its status. */
static size_t last_response(const char *out, size_t n, int *status)
{
    size_t at = 0;
    for (const char *p = out; p && (size_t)(p - out) < n;
         p = memmem(p + 1, n - (size_t)(p - out) - 1, "HTTP/1.1 ", 9))
        at = (size_t)(p - out);
    *status = n > at + 12 ? atoi(out + at + 9) : 0;
    return at;
}

/* A limit (a target too long: 414, too many or too large fields: 431) is noticed where
 * llhttp hands a span over: at its end, or at the end of a read's part of it. So when the
 * same bytes also hold a syntax error after the limit's byte, small reads find the limit
 * first and one read the syntax error (400). Both are final refusals that close; everything
 * answered before them must be the same (NOTES.md, "Fuzzing"; fuzz_h1 checks the same rule). */
static bool same_but_last_refusal(const char *a, size_t na, const char *b, size_t nb)
{
    int sa, sb;
    size_t la = last_response(a, na, &sa), lb = last_response(b, nb, &sb);
    bool refusal_a = sa == 400 || sa == 414 || sa == 431,
         refusal_b = sb == 400 || sb == 414 || sb == 431;
    return la == lb && memcmp(a, b, la) == 0 && refusal_a && refusal_b &&
           (sa == 414 || sa == 431 || sb == 414 || sb == 431);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    gw_fz_t f = {data, size};
    uint8_t flags = gw_fz_u8(&f), piece = gw_fz_u8(&f);
    ready_flag = flags & 2;
    stats_fail = flags & 4;
    gw_admin_sources_t src = {
        .metrics = src_metrics, .stats = src_stats, .backends = src_backends, .ready = src_ready};
    const char *token = (flags & 1) ? TOKEN : NULL;
    char *in = gw_fz_dup(f.p, f.n);
    char *whole = NULL, *split = NULL;
    size_t nw = 0, ns = 0;
    int rw = gw_admin_serve_memory(token, &src, in, f.n, 0, &whole, &nw);
    int rs = gw_admin_serve_memory(token, &src, in, f.n, piece, &split, &ns);
    /* NUL-terminated copies: the checks use atoi and strtoul on the heads */
    char *w = gw_fz_dup(whole ? whole : "", nw), *sp = gw_fz_dup(split ? split : "", ns);
    free(whole);
    free(split);
    whole = w;
    split = sp;
    GW_FZ_CHECK(rw >= 0 && rw == rs, "whole %d, reads of %u: %d", rw, piece, rs);
    GW_FZ_CHECK((nw == ns && (nw == 0 || memcmp(whole, split, nw) == 0)) ||
                    same_but_last_refusal(whole, nw, split, ns),
                "reads of %u bytes changed the answers:\n%.*s\n--- whole:\n%.*s", piece, (int)ns,
                split, (int)nw, whole);
    check_heads(whole, nw, token && !memmem(in, f.n, TOKEN, strlen(TOKEN)));
    if (!memmem(in, f.n, "HEAD", 4))
        check_llhttp(whole, nw);
    free(whole);
    free(split);
    free(in);
    return 0;
}
