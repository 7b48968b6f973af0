/* h1parse.c - see h1.h (the incremental parser on llhttp) */
#include "04-http/h1.h"

#include <string.h>

#include "error.h"

/* Line scanner states (see scan). */
enum { SCAN_LINE_START, SCAN_IN_LINE, SCAN_AFTER_CR };

static gw_h1_parser_t *parser_of(llhttp_t *ll)
{
    /* ll is the first member of gw_h1_parser_t. */
    return (gw_h1_parser_t *)(void *)ll;
}

/* Records an error found inside a callback; llhttp then stops with HPE_USER. POS, when
 * not NULL, is the byte of the current input that broke the rule: a span callback (a
 * target, a name, a value) runs at the end of each read's part of its span, so llhttp's
 * own error position would say where the read ended, not where the problem is, and the
 * offset would change with how the network split the bytes. NULL: llhttp's position,
 * right for callbacks that run at a fixed point of the message (an element complete). */
static int cb_fail_at(gw_h1_parser_t *p, int status, const char *reason, const char *pos)
{
    if (p->err.status == 0) {
        p->err.status = status;
        p->err.reason = reason;
        p->err.offset = pos ? p->offset + (uint64_t)(pos - p->base) : UINT64_MAX;
    }
    return HPE_USER;
}

static int cb_fail(gw_h1_parser_t *p, int status, const char *reason)
{
    return cb_fail_at(p, status, reason, NULL);
}

/* A head operation failed with R: out of memory is the server's trouble, not the message's
 * (503: the client may try again; 431 would tell it its head is too large, which it is not).
 * Any other failure is the cap: STATUS and REASON, at POS (see cb_fail_at). */
static int cb_store_fail(gw_h1_parser_t *p, int r, int status, const char *reason, const char *pos)
{
    if (r == GW_ENOMEM)
        return cb_fail(p, 503, "out of memory");
    return cb_fail_at(p, status, reason, pos);
}

static gw_h1_head_t *section(gw_h1_parser_t *p)
{
    return p->in_trailers ? &p->trailers : &p->head;
}

static int on_url(llhttp_t *ll, const char *at, size_t n)
{
    gw_h1_parser_t *p = parser_of(ll);
    gw_h1_head_t *h = &p->head;
    if ((size_t)h->target_len + n > p->lim.max_uri) /* the first byte over the limit */
        return cb_fail_at(p, 414, "request target too long", at + (p->lim.max_uri - h->target_len));
    int r = gw__h1_append(h, &h->target, &h->target_len, at, n);
    if (r < 0)
        return cb_store_fail(p, r, 431, "head too large", NULL);
    return 0;
}

static int on_status(llhttp_t *ll, const char *at, size_t n)
{
    gw_h1_parser_t *p = parser_of(ll);
    gw_h1_head_t *h = &p->head;
    int r = gw__h1_append(h, &h->reason, &h->reason_len, at, n);
    if (r < 0)
        return cb_store_fail(p, r, 431, "head too large", NULL);
    return 0;
}

static int on_header_field(llhttp_t *ll, const char *at, size_t n)
{
    gw_h1_parser_t *p = parser_of(ll);
    gw_h1_head_t *h = section(p);
    if (!p->field_open) {
        /* The field is registered before its bytes arrive, so the arena keeps it last. */
        if (h->nfields >= p->lim.max_fields)
            return cb_fail_at(p, 431, "too many header fields", at); /* its first byte */
        int r = gw__h1_reserve_field(h);
        if (r < 0)
            return cb_store_fail(p, r, 431, "too many header fields", at);
        memset(&h->fields[h->nfields++], 0, sizeof(h->fields[0]));
        p->field_open = true;
    }
    gw_h1_field_t *f = &h->fields[h->nfields - 1];
    int r = gw__h1_append(h, &f->name, &f->name_len, at, n);
    if (r < 0)
        return cb_store_fail(p, r, 431, "head too large", NULL);
    return 0;
}

/* The name is complete: it must be a token (RFC 9110 5.1). llhttp 8.1, strict mode
 * included, refuses other bytes in a name but lets an empty one through (": chunked",
 * ":authority: x"), which we would forward as a line each recipient reads its own way.
 * Checking every byte costs little and does not depend on llhttp's table. */
static int on_header_field_complete(llhttp_t *ll)
{
    gw_h1_parser_t *p = parser_of(ll);
    gw_h1_head_t *h = section(p);
    /* No field open: llhttp never reported the name at all. */
    if (!p->field_open)
        return cb_fail(p, 400, "invalid field name");
    const gw_h1_field_t *f = &h->fields[h->nfields - 1];
    if (f->name_len == 0)
        return cb_fail(p, 400, "empty field name");
    for (uint32_t i = 0; i < f->name_len; i++)
        if (!gw__h1_is_tchar((unsigned char)h->arena[f->name + i]))
            return cb_fail(p, 400, "invalid field name");
    return 0;
}

static int on_header_value(llhttp_t *ll, const char *at, size_t n)
{
    gw_h1_parser_t *p = parser_of(ll);
    gw_h1_head_t *h = section(p);
    gw_h1_field_t *f = &h->fields[h->nfields - 1];
    int r = gw__h1_append(h, &f->value, &f->value_len, at, n);
    if (r < 0)
        return cb_store_fail(p, r, 431, "head too large", NULL);
    return 0;
}

static int on_header_value_complete(llhttp_t *ll)
{
    gw_h1_parser_t *p = parser_of(ll);
    gw_h1_head_t *h = section(p);
    gw_h1_field_t *f = &h->fields[h->nfields - 1];
    /* llhttp drops leading blanks but keeps trailing ones, which are not part of the value. */
    while (f->value_len > 0 && (h->arena[f->value + f->value_len - 1] == ' ' ||
                                h->arena[f->value + f->value_len - 1] == '\t'))
        f->value_len--;
    p->field_open = false;
    return 0;
}

static int on_headers_complete(llhttp_t *ll)
{
    /* Stop here: gw_h1_feed validates the head outside llhttp, then resumes. */
    parser_of(ll)->head_ready = true;
    return HPE_PAUSED;
}

static int on_chunk_header(llhttp_t *ll)
{
    gw_h1_parser_t *p = parser_of(ll);
    if (ll->content_length != 0)
        return 0;
    /* The last chunk: pause so that every byte after this point is the trailer section,
     * which gets the same scanner and size cap as a head. */
    p->in_trailers = true;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *ll, const char *at, size_t n)
{
    gw_h1_parser_t *p = parser_of(ll);
    /* llhttp cannot pause inside a span callback (it would repeat the span), so we pause at
     * each chunk's end instead: one llhttp_execute then yields at most one body span.
     * llhttp reports an empty span when an execute ends inside a body: nothing to hand out. */
    if (n == 0)
        return 0;
    if (p->span != NULL)
        return cb_fail(p, 500, "internal: two body spans in one step");
    if (p->lim.max_body != 0 && p->body_seen + n > p->lim.max_body) {
        /* the first byte over (the limit may have been lowered below what was seen) */
        uint64_t ok = p->body_seen < p->lim.max_body ? p->lim.max_body - p->body_seen : 0;
        return cb_fail_at(p, 413, "body too large", at + ok);
    }
    p->body_seen += n;
    p->span = at;
    p->span_len = n;
    return 0;
}

static int on_chunk_complete(llhttp_t *ll)
{
    (void)ll;
    return HPE_PAUSED;
}

static int on_message_complete(llhttp_t *ll)
{
    gw_h1_parser_t *p = parser_of(ll);
    p->done = true;
    p->upgrade = ll->upgrade != 0;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_url = on_url,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_chunk_header = on_chunk_header,
    .on_body = on_body,
    .on_chunk_complete = on_chunk_complete,
    .on_message_complete = on_message_complete,
};

/* see h1.h */
void gw_h1_limits_default(gw_h1_limits_t *lim)
{
    lim->max_head = 16u << 10;
    lim->max_uri = 8u << 10;
    lim->max_fields = 100;
    lim->max_body = 0;
}

static void reset_message(gw_h1_parser_t *p)
{
    /* An interim (1xx) response is followed by the final one to the same request: a HEAD
     * request's final response still has no body. */
    bool interim = !p->is_request && p->head.status >= 100 && p->head.status < 200;
    p->answers_head = interim && p->answers_head;
    gw_h1_head_clear(&p->head);
    gw_h1_head_clear(&p->trailers);
    p->state = GW_H1_ST_HEAD;
    p->in_trailers = p->field_open = p->head_ready = p->done = false;
    p->scan = SCAN_LINE_START;
    p->lines = 0;
    p->offset = p->section = p->body_seen = p->length = 0;
    p->body = GW_H1_BODY_NONE;
    p->span = NULL;
    p->span_len = 0;
}

/* see h1.h */
void gw_h1_parser_init(gw_h1_parser_t *p, bool is_request, const gw_h1_limits_t *lim)
{
    memset(p, 0, sizeof(*p));
    p->is_request = is_request;
    gw_h1_head_init(&p->head, is_request, 0, 0);
    gw_h1_head_init(&p->trailers, is_request, 0, 0);
    gw_h1_parser_reset(p, lim, 0); /* the caps are set there, from the limits */
}

/* see h1.h */
void gw_h1_parser_reset(gw_h1_parser_t *p, const gw_h1_limits_t *lim, size_t keep)
{
    gw_h1_head_t head = p->head, trailers = p->trailers;
    bool is_request = p->is_request;
    memset(p, 0, sizeof(*p));
    if (lim != NULL)
        p->lim = *lim;
    else
        gw_h1_limits_default(&p->lim);
    p->is_request = is_request;
    llhttp_init(&p->ll, is_request ? HTTP_REQUEST : HTTP_RESPONSE, &settings);
    /* llhttp refuses any version but 0.9, 1.0, 1.1 and 2.0, while RFC 9110 2.5 wants a
     * higher 1.x handled as 1.1: let it read any DIGIT.DIGIT and decide in finish_head.
     * (This llhttp has the flag but no setter for it; the flag only skips that check.) */
    p->ll.lenient_flags |= LENIENT_VERSION;
    p->head = head;
    p->trailers = trailers;
    /* Twice the wire limits: room for the fields middleware adds. */
    gw_h1_head_reuse(&p->head, 2 * p->lim.max_head, 2 * p->lim.max_fields, keep);
    gw_h1_head_reuse(&p->trailers, 2 * p->lim.max_head, 2 * p->lim.max_fields, keep);
    reset_message(p);
}

/* see h1.h */
void gw_h1_parser_free(gw_h1_parser_t *p)
{
    gw_h1_head_free(&p->head);
    gw_h1_head_free(&p->trailers);
}

/* see h1.h */
void gw_h1_expect_head_response(gw_h1_parser_t *p)
{
    p->answers_head = true;
}

/* see h1.h */
const gw_h1_error_t *gw_h1_error(const gw_h1_parser_t *p)
{
    return &p->err;
}

/* see h1.h */
bool gw_h1_upgraded(const gw_h1_parser_t *p)
{
    return p->upgrade;
}

/* Records an error at offset AT of the message. Responses always become 502: whatever was
 * wrong upstream, the client gets a bad gateway. */
static int fail(gw_h1_parser_t *p, int status, const char *reason, uint64_t at)
{
    p->state = GW_H1_ST_ERROR;
    p->err.status = p->is_request ? status : 502;
    p->err.reason = reason;
    p->err.offset = at;
    return GW_EINVAL;
}

/* see h1.h */
int gw_h1_set_max_body(gw_h1_parser_t *p, uint64_t max_body)
{
    p->lim.max_body = max_body;
    if (max_body != 0 && p->state == GW_H1_ST_BODY && p->body == GW_H1_BODY_LENGTH &&
        p->length > max_body) {
        fail(p, 413, "body too large", p->offset);
        return GW_ELIMIT;
    }
    return 0;
}

/* Checks the raw bytes of a head or trailer section, which llhttp 8.1 does not fully do
 * even in strict mode: it accepts obs-fold (a line starting with SP or HT continues the
 * previous one) and depending on the state a bare LF. We refuse both, plus NUL and a CR
 * not followed by LF: a front and a back end that split lines differently see different
 * fields. Resumable: the state lives in p->scan and p->lines. Returns 0 or an error. */
static int scan(gw_h1_parser_t *p, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        /* Fast path: inside a line, only NUL, CR and LF matter. */
        if (p->scan == SCAN_IN_LINE) {
            while (i < n && (unsigned char)s[i] > '\r')
                i++;
            while (i < n && s[i] != '\0' && s[i] != '\r' && s[i] != '\n' &&
                   (unsigned char)s[i] <= '\r')
                i++;
            if (i == n)
                break;
        }
        unsigned char c = (unsigned char)s[i];
        uint64_t at = p->offset + i;
        if (c == '\0')
            return fail(p, 400, "NUL byte in head", at);
        if (p->scan == SCAN_AFTER_CR) {
            if (c != '\n')
                return fail(p, 400, "bare CR in head", at);
            p->scan = SCAN_LINE_START;
            p->lines++;
            continue;
        }
        if (c == '\n')
            return fail(p, 400, "bare LF in head", at);
        if (p->scan == SCAN_LINE_START && p->lines > 0 && (c == ' ' || c == '\t'))
            return fail(p, 400, "obsolete line folding", at);
        p->scan = c == '\r' ? SCAN_AFTER_CR : SCAN_IN_LINE;
    }
    return 0;
}

/* The head is complete: fill in what llhttp kept, decide the framing, and tell llhttp
 * about bodies it would otherwise read (204 and 304 with a Content-Length, HEAD). */
static int finish_head(gw_h1_parser_t *p)
{
    gw_h1_head_t *h = &p->head;
    /* llhttp read one digit each side of the dot (so "1.10" or "1.1x" was a malformed line,
     * 400). HTTP/1.2 and up are 1.1 (RFC 9110 2.5): the engine and the serialiser see 1.1. */
    if (p->ll.http_major != 1)
        return fail(p, 505, "HTTP version not supported", p->offset);
    h->version_minor = p->ll.http_minor == 0 ? 0 : 1;
    if (p->is_request) {
        const char *m = llhttp_method_name((llhttp_method_t)p->ll.method);
        if (gw_h1_head_set_method(h, m, strlen(m)) < 0)
            return fail(p, 400, "invalid method", 0);
    } else {
        /* RFC 9112 4: three digits, and RFC 9110 15: from 100 up. llhttp 8.1 takes "20" (or
         * "099") for a status; such a code has no class to tell whether a body follows, and
         * forwarding it unframed desynchronised the client. */
        if (p->ll.status_code < 100)
            return fail(p, 502, "invalid status code", p->offset);
        h->status = (uint16_t)p->ll.status_code;
    }
    gw_h1_error_t err;
    if (gw_h1_framing(h, p->answers_head, &p->body, &p->length, &err) < 0)
        return fail(p, err.status, err.reason, p->offset);
    /* Capped so that gw_h1_strip_hop_by_hop holds every token in a small fixed set. */
    gw_h1_conn_tokens_t tokens;
    if (gw_h1_conn_tokens_parse(&tokens, h) < 0)
        return fail(p, 400, "too many Connection options", p->offset);
    /* A CONNECT has no content (RFC 9110 9.3.6): llhttp goes to the tunnel right after its
     * head, whatever the head says. One that announces a body is two framings of one
     * message, so it is refused; Content-Length: 0 announces nothing. (Found by fuzz_h1.) */
    if (p->is_request && p->body != GW_H1_BODY_NONE && gw_h1_head_method_is(h, "CONNECT")) {
        if (p->body != GW_H1_BODY_LENGTH || p->length != 0)
            return fail(p, 400, "CONNECT with content", p->offset);
        p->body = GW_H1_BODY_NONE;
    }
    /* Our framing and llhttp's must agree, or the two would split the stream differently. */
    bool ll_chunked = (p->ll.flags & F_CHUNKED) != 0;
    if (p->body != GW_H1_BODY_NONE &&
        (ll_chunked != (p->body == GW_H1_BODY_CHUNKED) ||
         (p->body == GW_H1_BODY_LENGTH && p->ll.content_length != p->length)))
        return fail(p, 400, "framing ambiguity", p->offset);
    if (p->body == GW_H1_BODY_NONE && !p->is_request)
        p->ll.flags |= F_SKIPBODY;
    gw_h1_response_drop_framing(h); /* 1xx and 204 heads only */
    if (p->body == GW_H1_BODY_LENGTH && p->lim.max_body != 0 && p->length > p->lim.max_body)
        return fail(p, 413, "body too large", p->offset);
    p->state = GW_H1_ST_BODY;
    p->section = 0;
    return 0;
}

/* In a head or trailer section: bytes still allowed before 431. */
static bool in_section(const gw_h1_parser_t *p)
{
    return p->state == GW_H1_ST_HEAD || p->in_trailers;
}

/* One llhttp_execute over at most the allowed bytes of DATA. Returns <0 on error, else
 * the number of bytes llhttp consumed; *PAUSED tells whether it stopped at a pause. */
static long step(gw_h1_parser_t *p, const char *data, size_t len, bool *paused)
{
    static const char empty[1] = {0};
    bool sect = in_section(p);
    if (sect) {
        if (p->section >= p->lim.max_head)
            return fail(p, 431, "head too large", p->offset);
        if (len > p->lim.max_head - p->section)
            len = (size_t)(p->lim.max_head - p->section);
    }
    const char *at = len ? data : empty;
    p->base = at;
    llhttp_errno_t e = llhttp_execute(&p->ll, at, len);
    size_t used = e == HPE_OK ? len : (size_t)(llhttp_get_error_pos(&p->ll) - at);
    if (sect && scan(p, at, used) < 0)
        return GW_EINVAL;
    uint64_t where = p->offset + used;
    p->offset += used;
    if (sect)
        p->section += used;
    *paused = e == HPE_PAUSED;
    if (e == HPE_PAUSED)
        llhttp_resume(&p->ll);
    else if (e == HPE_USER)
        return fail(p, p->err.status, p->err.reason,
                    p->err.offset != UINT64_MAX ? p->err.offset : where);
    else if (e == HPE_PAUSED_UPGRADE) /* gw_h1_next went on after a declined upgrade */
        llhttp_resume_after_upgrade(&p->ll);
    else if (e != HPE_OK)
        return fail(p, 400, llhttp_get_error_reason(&p->ll), where);
    return (long)used;
}

/* see h1.h */
int gw_h1_feed(gw_h1_parser_t *p, const char *data, size_t len, gw_h1_event_t *ev)
{
    ev->used = 0;
    ev->data = NULL;
    ev->len = 0;
    if (p->state == GW_H1_ST_ERROR)
        return GW_EINVAL;
    for (;;) {
        if (p->state == GW_H1_ST_DONE)
            return 0;
        if (p->done && p->span == NULL) {
            p->state = GW_H1_ST_DONE;
            return GW_H1_END;
        }
        if (p->span != NULL) { /* left over from a step that also ended the message */
            ev->data = p->span;
            ev->len = p->span_len;
            p->span = NULL;
            return GW_H1_DATA;
        }
        bool paused = false;
        long used = step(p, data + ev->used, len - ev->used, &paused);
        if (used < 0)
            return GW_EINVAL;
        ev->used += (size_t)used;
        if (p->head_ready) {
            p->head_ready = false;
            return finish_head(p) < 0 ? GW_EINVAL : GW_H1_HEAD;
        }
        if (p->span != NULL || p->done)
            continue; /* handed out at the top of the loop */
        if (!paused && ev->used == len)
            return 0;
    }
}

/* see h1.h */
int gw_h1_finish(gw_h1_parser_t *p)
{
    if (p->state == GW_H1_ST_ERROR)
        return GW_EINVAL;
    if (p->state == GW_H1_ST_DONE)
        return 0;
    if (p->state == GW_H1_ST_HEAD && p->offset == 0)
        return 0;
    if (p->state == GW_H1_ST_BODY && p->body == GW_H1_BODY_UNTIL_CLOSE && !p->done) {
        p->state = GW_H1_ST_DONE;
        p->done = true;
        return GW_H1_END;
    }
    return fail(p, 400, "connection closed in the middle of a message", p->offset);
}

/* see h1.h */
int gw_h1_next(gw_h1_parser_t *p)
{
    /* A request that asked to upgrade may still be followed by HTTP if the upstream said
     * no; a 101 response, or a CONNECT, is followed by the tunnel's bytes, never HTTP. */
    bool connect = p->is_request && gw_h1_head_method_is(&p->head, "CONNECT");
    if (p->state != GW_H1_ST_DONE || (p->upgrade && (!p->is_request || connect)))
        return GW_EINVAL;
    p->upgrade = false;
    reset_message(p);
    return 0;
}
