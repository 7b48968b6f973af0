/* fuzz_h1.c - the HTTP/1.1 head parser and framing, requests or responses, pipelined, fed
 * whole and then in random splits.
 *
 * Input: 8 bytes of choices, then the bytes of a connection:
 *   [0] bit 0: requests (1) or responses (0); bit 1: the first response answers HEAD;
 *       bits 2-3: limits (defaults, small head, tiny head, few fields); bits 4-6: the
 *       largest split (1, 2, 3, 7, 16, 64, 512 bytes, or no limit)
 *   [1..2] for responses, bit i: message i+1 answers HEAD
 *   [3..6] the seed of the split sizes
 *   [7] the body limit set after each head (0: none, else N * 16 bytes)
 *
 * Every piece is handed over in its own exactly-sized buffer, freed once the parser has
 * used it (ASan sees any span kept past its buffer).
 *
 * Invariants: the events (heads, body bytes, ends, trailers, the error with its status,
 * reason and offset, what the end of input means) are the same however the input is split;
 * each event respects gw_h1_feed's contract (0 consumes everything, body spans lie inside
 * the piece given); body bytes match the framing (Content-Length exactly, none for
 * BODY_NONE); and a head, serialised as the proxy forwards it, parses back to the same head
 * and framing (re-serialising cannot change what the next hop sees). */
#include <stdarg.h>
#include <string.h>

#include "04-http/h1.h"
#include "error.h"
#include "fuzz/gwfuzz.h"

typedef struct buf_s {
    char *p;
    size_t n, cap;
} buf_t;

static void put(buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p)
            abort();
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void putf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(buf_t *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    put(b, tmp, n < (int)sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

typedef struct opts_s {
    bool request, head0;
    uint16_t head_mask;
    gw_h1_limits_t lim;
    uint32_t seed;
    size_t max_split;
    uint64_t max_body;
} opts_t;

static void put_head(buf_t *t, const gw_h1_head_t *h)
{
    char *s = NULL;
    size_t n = 0;
    int rc = gw_h1_head_serialize_alloc(h, SIZE_MAX, &s, &n);
    GW_FZ_CHECK(rc == 0, "serialising a parsed head: %d", rc);
    put(t, s, n);
    free(s);
}

/* The head just parsed by P, serialised, must parse back to itself. */
static void check_round_trip(const gw_h1_parser_t *p, bool answers_head)
{
    char *s = NULL;
    size_t n = 0;
    GW_FZ_CHECK(gw_h1_head_serialize_alloc(&p->head, SIZE_MAX, &s, &n) == 0, "serialise");
    gw_h1_limits_t big = {.max_head = n + 1, .max_uri = n + 1, .max_fields = 100000};
    gw_h1_parser_t q;
    gw_h1_parser_init(&q, p->is_request, &big);
    if (answers_head)
        gw_h1_expect_head_response(&q);
    gw_h1_event_t ev;
    int rc = gw_h1_feed(&q, s, n, &ev);
    GW_FZ_CHECK(rc == GW_H1_HEAD, "re-serialised head refused (%d: %d %s at %llu): [%.*s]", rc,
                q.err.status, q.err.reason ? q.err.reason : "", (unsigned long long)q.err.offset,
                (int)n, s);
    GW_FZ_CHECK(ev.used == n, "head of %zu bytes took %zu", n, ev.used);
    GW_FZ_CHECK(q.body == p->body && (p->body != GW_H1_BODY_LENGTH || q.length == p->length),
                "framing changed: %d/%llu -> %d/%llu", p->body, (unsigned long long)p->length,
                q.body, (unsigned long long)q.length);
    char *s2 = NULL;
    size_t n2 = 0;
    GW_FZ_CHECK(gw_h1_head_serialize_alloc(&q.head, SIZE_MAX, &s2, &n2) == 0, "serialise again");
    GW_FZ_CHECK(n2 == n && memcmp(s, s2, n) == 0, "head changed: [%.*s] -> [%.*s]", (int)n, s,
                (int)n2, s2);
    free(s);
    free(s2);
    gw_h1_parser_free(&q);
}

/* Runs the whole connection IN[0..LEN) through a parser in pieces of at most MAX_SPLIT
 * bytes (0: one piece) and writes what happened to T. */
static void run(const opts_t *o, const uint8_t *in, size_t len, size_t max_split, buf_t *t,
                gw_h1_error_t *err, bool check)
{
    gw_h1_parser_t p;
    gw_h1_parser_init(&p, o->request, &o->lim);
    bool answers_head = !o->request && o->head0;
    if (answers_head)
        gw_h1_expect_head_response(&p);
    uint32_t seed = o->seed;
    unsigned msg = 0;
    buf_t body = {0};
    bool stop = false;
    size_t pos = 0;
    while (pos < len && !stop) {
        size_t k = max_split ? 1 + gw_fz_next(&seed) % max_split : len;
        if (k > len - pos)
            k = len - pos;
        char *piece = gw_fz_dup(in + pos, k);
        size_t off = 0;
        while (!stop) {
            gw_h1_event_t ev;
            int rc = gw_h1_feed(&p, piece + off, k - off, &ev);
            GW_FZ_CHECK(ev.used <= k - off, "used %zu of %zu", ev.used, k - off);
            if (rc == 0) {
                GW_FZ_CHECK(ev.used == k - off, "need more data, but %zu of %zu used", ev.used,
                            k - off);
                off = k;
                break;
            }
            off += ev.used;
            if (rc == GW_H1_HEAD) {
                putf(t, "H%u body=%d len=%llu\n", msg, p.body, (unsigned long long)p.length);
                put_head(t, &p.head);
                if (check)
                    check_round_trip(&p, answers_head);
                if (o->max_body && gw_h1_set_max_body(&p, o->max_body) != 0) {
                    putf(t, "L%d %s\n", p.err.status, p.err.reason);
                    stop = true;
                }
            } else if (rc == GW_H1_DATA) {
                GW_FZ_CHECK(ev.len > 0 && ev.data >= piece && ev.data + ev.len <= piece + k,
                            "body span outside the piece");
                put(&body, ev.data, ev.len);
            } else if (rc == GW_H1_END) {
                if (check && p.body == GW_H1_BODY_LENGTH)
                    GW_FZ_CHECK(body.n == p.length, "Content-Length %llu, body %zu",
                                (unsigned long long)p.length, body.n);
                if (check && p.body == GW_H1_BODY_NONE)
                    GW_FZ_CHECK(body.n == 0, "no body expected, got %zu bytes", body.n);
                putf(t, "E%u body=%zu\n", msg, body.n);
                put(t, body.p, body.n);
                body.n = 0;
                for (size_t i = 0; i < gw_h1_head_count(&p.trailers); i++) {
                    gw_h1_span_t nm = gw_h1_head_name_at(&p.trailers, i);
                    gw_h1_span_t v = gw_h1_head_value_at(&p.trailers, i);
                    putf(t, "T%.*s: %.*s\n", (int)nm.len, nm.ptr, (int)v.len, v.ptr);
                }
                bool interim = !o->request && p.head.status >= 100 && p.head.status < 200;
                if (gw_h1_next(&p) != 0) {
                    putf(t, "upgraded\n");
                    stop = true;
                    break;
                }
                msg++;
                if (!o->request && !interim) {
                    answers_head = msg <= 16 && (o->head_mask >> (msg - 1) & 1);
                    if (answers_head)
                        gw_h1_expect_head_response(&p);
                }
            } else {
                GW_FZ_CHECK(rc == GW_EINVAL, "feed returned %d", rc);
                const gw_h1_error_t *e = gw_h1_error(&p);
                GW_FZ_CHECK(e->status >= 400 && e->status <= 599 && e->reason, "error status %d",
                            e->status);
                *err = *e;
                stop = true;
            }
        }
        free(piece);
        pos += k;
    }
    if (!stop) {
        int rc = gw_h1_finish(&p);
        putf(t, "F%d body=%zu", rc, body.n);
        if (rc == GW_EINVAL)
            putf(t, " %d %s", p.err.status, p.err.reason);
        put(t, body.p, body.n);
    }
    free(body.p);
    gw_h1_parser_free(&p);
}

/* A limit crossed inside a span (a target, a field, a body) is noticed where llhttp hands
 * the span over: at its end, or at the end of the read's part of it. So when the same bytes
 * also hold a syntax error after the limit's byte, reads that end early find the limit
 * first and one read finds the syntax error first. Both answers are final and close the
 * connection; the rule checked is that the runs agree, or that one reports a limit whose
 * byte comes before the other's error (NOTES.md, "Fuzzing"). */
static bool is_limit(const gw_h1_error_t *e)
{
    static const char *const limits[] = {"request target too long", "too many header fields",
                                         "head too large", "body too large"};
    for (size_t i = 0; e->reason && i < sizeof limits / sizeof limits[0]; i++)
        if (strcmp(e->reason, limits[i]) == 0)
            return true;
    return false;
}

static void check_errors(const gw_h1_error_t *w, const gw_h1_error_t *s, size_t max_split)
{
    if (w->status == s->status && w->offset == s->offset &&
        (w->reason == s->reason || (w->reason && s->reason && !strcmp(w->reason, s->reason))))
        return;
    bool ok = w->status && s->status &&
              ((is_limit(s) && s->offset <= w->offset) || (is_limit(w) && w->offset <= s->offset));
    GW_FZ_CHECK(ok, "split at most %zu changed the error: whole %d %s @%llu, split %d %s @%llu",
                max_split, w->status, w->reason ? w->reason : "-", (unsigned long long)w->offset,
                s->status, s->reason ? s->reason : "-", (unsigned long long)s->offset);
}

static const size_t splits[8] = {1, 2, 3, 7, 16, 64, 512, 0};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    gw_fz_t f = {data, size};
    uint8_t flags = gw_fz_u8(&f);
    opts_t o = {.request = flags & 1, .head0 = flags & 2};
    o.head_mask = gw_fz_u16(&f);
    o.seed = (uint32_t)gw_fz_u16(&f) << 16 | gw_fz_u16(&f);
    o.max_body = 16u * gw_fz_u8(&f);
    gw_h1_limits_default(&o.lim);
    switch (flags >> 2 & 3) {
    case 1:
        o.lim.max_head = 256;
        o.lim.max_uri = 32;
        break;
    case 2:
        o.lim.max_head = 24;
        o.lim.max_uri = 4;
        o.lim.max_fields = 2;
        break;
    case 3:
        o.lim.max_fields = 1;
        break;
    default:
        break;
    }
    size_t max_split = splits[flags >> 4 & 7];
    buf_t whole = {0}, split = {0};
    gw_h1_error_t ew = {0, NULL, 0}, es = {0, NULL, 0};
    run(&o, f.p, f.n, 0, &whole, &ew, true);
    run(&o, f.p, f.n, max_split, &split, &es, false);
    GW_FZ_CHECK(whole.n == split.n && (whole.n == 0 || memcmp(whole.p, split.p, whole.n) == 0),
                "split at most %zu changed the events:\n--- whole\n%.*s\n--- split\n%.*s",
                max_split, (int)whole.n, whole.p, (int)split.n, split.p);
    check_errors(&ew, &es, max_split);
    free(whole.p);
    free(split.p);
    return 0;
}
