/* h1frame.c - see h1.h (gw_h1_framing: how long is the body, and is the head honest?) */
#include "04-http/h1.h"

#include <string.h>
#include <strings.h>

#include "error.h"

static int refuse(gw_h1_error_t *err, int status, const char *reason)
{
    err->status = status;
    err->reason = reason;
    err->offset = 0;
    return GW_EINVAL;
}

/* What the Transfer-Encoding lines say, read as one list (RFC 9112 6.1). */
typedef struct te_scan_s {
    unsigned items;   /* codings listed */
    unsigned chunked; /* how many of them are "chunked" */
    bool last_chunked;
    bool malformed; /* an element that is not a bare token (parameters, junk) */
    bool unknown;   /* a coding that is not registered */
} te_scan_t;

/* LAB 04: request smuggling checks */

static bool on_te_item(const char *t, size_t n, void *arg)
{
    static const char *const known[] = {"gzip", "x-gzip", "deflate", "compress", "x-compress"};
    te_scan_t *s = arg;
    s->items++;
    for (size_t i = 0; i < n; i++)
        if (!gw__h1_is_tchar((unsigned char)t[i]))
            s->malformed = true;
    s->last_chunked = n == 7 && strncasecmp(t, "chunked", 7) == 0;
    if (s->last_chunked) {
        s->chunked++;
        return true;
    }
    bool found = false;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strlen(known[i]) == n && strncasecmp(t, known[i], n) == 0)
            found = true;
    s->unknown |= !found;
    return true;
}

/* Transfer-Encoding must be exactly "chunked". Framing errors come first (400): a body
 * whose end cannot be found must never be guessed at, since that guess is what request
 * smuggling exploits ("xchunked", "chunked, identity", "chunked" twice). A list that ends
 * in chunked but has other codings is framed fine, we just do not implement them (501). */
static int check_te(const gw_h1_head_t *h, gw_h1_error_t *err)
{
    te_scan_t s;
    memset(&s, 0, sizeof(s));
    for (long i = gw_h1_head_find(h, "Transfer-Encoding", 0); i >= 0;
         i = gw_h1_head_find(h, "Transfer-Encoding", (size_t)i + 1))
        gw__h1_each_item(gw_h1_head_value_at(h, (size_t)i), on_te_item, &s);
    if (s.items == 0 || s.malformed)
        return refuse(err, 400, "malformed Transfer-Encoding");
    if (!s.last_chunked || s.chunked != 1)
        return refuse(err, 400, "chunked is not the final transfer coding, exactly once");
    if (s.unknown)
        return refuse(err, 501, "unknown transfer coding");
    if (s.items > 1)
        return refuse(err, 501, "transfer codings other than chunked are not supported");
    return 0;
}

/* Content-Length: one line of plain digits that fits in 63 bits. "+5", "5, 5", " 5x" and
 * "0x5" are all refused: two parsers that read such a value differently disagree on where
 * the body ends. */
static int check_cl(gw_h1_span_t v, uint64_t *length, gw_h1_error_t *err)
{
    uint64_t n = 0;
    if (v.len == 0)
        return refuse(err, 400, "empty Content-Length");
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.ptr[i];
        if (c < '0' || c > '9')
            return refuse(err, 400, "Content-Length is not a number");
        if (n > (UINT64_MAX / 2 - 9) / 10)
            return refuse(err, 400, "Content-Length too large");
        n = n * 10 + (c - '0');
    }
    *length = n;
    return 0;
}

/* Host (requests): HTTP/1.1 needs exactly one (RFC 9112 3.2); two could route one way here
 * and another way upstream. The value must look like host[:port]. */
static int check_host(const gw_h1_head_t *h, gw_h1_error_t *err)
{
    long first = gw_h1_head_find(h, "Host", 0);
    if (first < 0)
        return h->version_minor >= 1 ? refuse(err, 400, "missing Host") : 0;
    if (gw_h1_head_find(h, "Host", (size_t)first + 1) >= 0)
        return refuse(err, 400, "duplicate Host");
    gw_h1_span_t v = gw_h1_head_value_at(h, (size_t)first);
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.ptr[i];
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  strchr("-._~%!$&'()*+,;=:[]", c) != NULL;
        if (!ok)
            return refuse(err, 400, "invalid Host");
    }
    return 0;
}

/* see h1.h */
int gw_h1_framing(const gw_h1_head_t *h, bool answers_head, gw_h1_body_t *body, uint64_t *length,
                  gw_h1_error_t *err)
{
    long cl = gw_h1_head_find(h, "Content-Length", 0);
    bool te = gw_h1_head_find(h, "Transfer-Encoding", 0) >= 0;
    /* Duplicates are refused even when identical: RFC 9112 6.3 allows collapsing them, but
     * llhttp refuses them anyway and no honest client sends two. */
    if (cl >= 0 && gw_h1_head_find(h, "Content-Length", (size_t)cl + 1) >= 0)
        return refuse(err, 400, "several Content-Length fields");
    if (cl >= 0 && te)
        return refuse(err, 400, "both Content-Length and Transfer-Encoding");
    if (te && h->version_minor == 0)
        return refuse(err, 400, "Transfer-Encoding in HTTP/1.0");
    if (te && check_te(h, err) < 0)
        return GW_EINVAL;
    *length = 0;
    if (cl >= 0 && check_cl(gw_h1_head_value_at(h, (size_t)cl), length, err) < 0)
        return GW_EINVAL;
    if (h->is_request && check_host(h, err) < 0)
        return GW_EINVAL;
    if (te)
        *body = GW_H1_BODY_CHUNKED;
    else if (cl >= 0)
        *body = GW_H1_BODY_LENGTH;
    else
        *body = h->is_request ? GW_H1_BODY_NONE : GW_H1_BODY_UNTIL_CLOSE;
    /* Responses that never have a body, whatever their fields say (RFC 9110 6.4.1). */
    if (!h->is_request && (answers_head || h->status < 200 || h->status == 204 || h->status == 304))
        *body = GW_H1_BODY_NONE;
    return 0;
}

/* END LAB */

/* see h1.h */
size_t gw_h1_response_drop_framing(gw_h1_head_t *h)
{
    if (h->is_request || (h->status >= 200 && h->status != 204))
        return 0;
    return gw_h1_head_remove(h, "Content-Length") + gw_h1_head_remove(h, "Transfer-Encoding");
}
