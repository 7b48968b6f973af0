/* h1.h - HTTP/1.1 message heads (bounded storage, header operations, serialisation) and a
 * pure, incremental request/response parser on llhttp with the framing and smuggling rules.
 *
 * Nothing here does I/O: the connection code feeds bytes in and acts on the events. */
#ifndef GW_H1_H
#define GW_H1_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- heads ------------------------------------------------------------------------------ */

/* A byte span. Spans returned by the head functions point into the head's arena and stay
 * valid only until the next call that modifies the head. */
typedef struct gw_h1_span_s {
    const char *ptr;
    size_t len;
} gw_h1_span_t;

/* One field line: offsets into the head's arena (not pointers: the arena may move when it
 * grows). */
typedef struct gw_h1_field_s {
    uint32_t name, name_len, value, value_len;
} gw_h1_field_t;

/* A request or response head (or a trailer section) with its own storage: every string is
 * copied into `arena`, which grows up to `max_bytes`; `fields` grows up to `max_fields`.
 * Read it through the functions below; the members are public only so that callers can
 * embed the struct. */
typedef struct gw_h1_head_s {
    bool is_request;
    uint8_t version_minor;       /* HTTP/1.x; serialisation writes this minor version */
    uint16_t status;             /* responses */
    uint32_t method, method_len; /* requests: arena offset and length */
    uint32_t target, target_len; /* requests */
    uint32_t reason, reason_len; /* responses */
    gw_h1_field_t *fields;
    size_t nfields, fields_cap, max_fields;
    char *arena;
    size_t alen, acap, max_bytes;
} gw_h1_head_t;

/* Initialises an empty head whose storage may grow to MAX_BYTES bytes of strings and
 * MAX_FIELDS field lines. Allocates nothing yet. Release with gw_h1_head_free. */
void gw_h1_head_init(gw_h1_head_t *h, bool is_request, size_t max_bytes, size_t max_fields);

/* Frees the storage of H (H may be reused after gw_h1_head_init). */
void gw_h1_head_free(gw_h1_head_t *h);

/* Prepares H, an initialised head, for another message with new caps: like
 * gw_h1_head_clear, but gives its storage back first when it grew past KEEP bytes (a head
 * kept in a free list should not pin what one large message made it allocate). */
void gw_h1_head_reuse(gw_h1_head_t *h, size_t max_bytes, size_t max_fields, size_t keep);

/* Empties H (start line and fields) and keeps its storage for the next message. */
void gw_h1_head_clear(gw_h1_head_t *h);

/* Start line. Setters copy; they return 0, GW_EINVAL for bytes that cannot appear there
 * (a method must be a token; a target has no spaces or controls; a reason no CR/LF/NUL),
 * or GW_ELIMIT when the storage cap is reached. */
gw_h1_span_t gw_h1_head_method(const gw_h1_head_t *h);
gw_h1_span_t gw_h1_head_target(const gw_h1_head_t *h);
gw_h1_span_t gw_h1_head_reason(const gw_h1_head_t *h);
int gw_h1_head_set_method(gw_h1_head_t *h, const char *m, size_t len);
int gw_h1_head_set_target(gw_h1_head_t *h, const char *t, size_t len);
int gw_h1_head_set_status(gw_h1_head_t *h, unsigned status, const char *reason, size_t len);
/* True if H is a request whose method is exactly M (methods are case-sensitive). */
bool gw_h1_head_method_is(const gw_h1_head_t *h, const char *m);

/* A malloc'd, NUL-terminated copy of exactly S.len bytes of S (free() it), or NULL when out
 * of memory. Spans are not NUL-terminated: strndup, which stops only at a NUL, may read
 * past them. */
char *gw_h1_span_dup(gw_h1_span_t s);

/* Field lines, in order. I must be < gw_h1_head_count(h). */
size_t gw_h1_head_count(const gw_h1_head_t *h);
gw_h1_span_t gw_h1_head_name_at(const gw_h1_head_t *h, size_t i);
gw_h1_span_t gw_h1_head_value_at(const gw_h1_head_t *h, size_t i);

/* Index of the first field named NAME (NUL-terminated, compared case-insensitively) at or
 * after FROM, or -1. Loop with from = previous + 1 to visit every occurrence. */
long gw_h1_head_find(const gw_h1_head_t *h, const char *name, size_t from);

/* The value of the first field named NAME in *VALUE: true if there is one. */
bool gw_h1_head_get(const gw_h1_head_t *h, const char *name, gw_h1_span_t *value);

/* Appends a field line. The name must be a token and the value must hold no CR, LF, NUL or
 * other control but HT (GW_EINVAL: middleware cannot inject a line). Leading and trailing
 * blanks of the value are dropped. Returns 0, GW_EINVAL or GW_ELIMIT (H unchanged). */
int gw_h1_head_add(gw_h1_head_t *h, const char *name, size_t nlen, const char *value, size_t vlen);

/* Replaces every field named NAME by one NAME: VALUE line at the place of the first (at the
 * end if there was none). Same results as gw_h1_head_add. */
int gw_h1_head_set(gw_h1_head_t *h, const char *name, const char *value, size_t vlen);

/* Removes every field named NAME (NUL-terminated, any case); returns how many. */
size_t gw_h1_head_remove(gw_h1_head_t *h, const char *name);

/* Removes field line I (< count). */
void gw_h1_head_remove_at(gw_h1_head_t *h, size_t i);

/* Bytes gw_h1_head_serialize needs for H (start line, fields, blank line). */
size_t gw_h1_head_size(const gw_h1_head_t *h);

/* Writes H as canonical HTTP/1.1 bytes ("Name: value\r\n", one space, CRLF everywhere)
 * into BUF of CAP bytes. Returns the length written, or GW_ELIMIT if it does not fit
 * (nothing useful is then in BUF; gw_h1_head_size says how much is needed). A head is
 * always re-serialised this way, never forwarded as received. */
long gw_h1_head_serialize(const gw_h1_head_t *h, char *buf, size_t cap);

/* Serialises H into a malloc'd buffer of at most MAX bytes: *OUT (free() it) and *LEN.
 * Returns 0, GW_ELIMIT when the head is bigger than MAX, or GW_ENOMEM. */
int gw_h1_head_serialize_alloc(const gw_h1_head_t *h, size_t max, char **out, size_t *len);

/* ---- hop-by-hop fields --------------------------------------------------------------- */

/* At most this many tokens in the Connection fields of a head, all lines together and
 * duplicates included (an honest sender lists one to three). The parser refuses a head with
 * more (400; 502 for a response), so the set below always holds all of them. */
#define GW_H1_MAX_CONN_TOKENS 64

/* The tokens of a head's Connection fields, read once: the distinct names, kept sorted (by
 * length, then case-insensitively) so that a lookup is a bisection of at most 7
 * comparisons, plus the connection options seen. Spans point into the head's arena: valid
 * while no string is added to the head (removing field lines does not move them). */
typedef struct gw_h1_conn_tokens_s {
    gw_h1_span_t names[GW_H1_MAX_CONN_TOKENS];
    unsigned n;                      /* distinct names in NAMES */
    unsigned listed;                 /* tokens read, duplicates included */
    bool close, keep_alive, upgrade; /* the options, any case */
    unsigned long work; /* name comparisons made so far by parse and lookups: a test reads
                         * it to prove that stripping costs O(fields + tokens) */
} gw_h1_conn_tokens_t;

/* Reads every Connection line of H into *T (reset first). Returns the number of tokens
 * (duplicates included), or GW_ELIMIT when there are more than GW_H1_MAX_CONN_TOKENS (T then
 * holds the first ones; reading stops at the first token over the cap). */
int gw_h1_conn_tokens_parse(gw_h1_conn_tokens_t *t, const gw_h1_head_t *h);

/* True if T lists NAME (any case). Counts its comparisons in T->work. */
bool gw_h1_conn_tokens_has(gw_h1_conn_tokens_t *t, gw_h1_span_t name);

/* What the Connection field and the version said, from gw_h1_strip_hop_by_hop. */
typedef struct gw_h1_conn_info_s {
    bool keep_alive; /* the sender lets the connection persist after this message */
    bool upgrade;    /* Connection lists "upgrade" and an Upgrade field is present */
} gw_h1_conn_info_t;

/* Keep the Upgrade field (and the upgrade token) for a tunnel the caller will set up. */
#define GW_H1_KEEP_UPGRADE 0x1u

/* Removes the hop-by-hop fields of H (RFC 9110 7.6.1) in one pass that keeps the others in
 * order: Connection and every field T names, Keep-Alive, Proxy-Connection, TE, Trailer,
 * Transfer-Encoding (the proxy re-frames the body) and Upgrade (unless FLAGS has
 * GW_H1_KEEP_UPGRADE). Host and Content-Length are never removed because Connection names
 * them (that would change routing or framing). T must come from gw_h1_conn_tokens_parse on
 * H, unchanged since; its work counter grows by at most 7 per field. Returns how many
 * fields were removed. */
size_t gw_h1_strip_hop_fields(gw_h1_head_t *h, gw_h1_conn_tokens_t *t, unsigned flags);

/* Reads the Connection tokens of H and strips its hop-by-hop fields
 * (gw_h1_strip_hop_fields). Fills *INFO (may be NULL): keep-alive follows HTTP/1.1's default
 * (persist unless "close") and HTTP/1.0's (close unless "keep-alive"). Returns 0, or
 * GW_ELIMIT when Connection lists more than GW_H1_MAX_CONN_TOKENS tokens (never for a head
 * from gw_h1_feed): H is then unchanged and *INFO says close, no upgrade. */
int gw_h1_strip_hop_by_hop(gw_h1_head_t *h, unsigned flags, gw_h1_conn_info_t *info);

/* ---- framing ------------------------------------------------------------------------- */

typedef enum {
    GW_H1_BODY_NONE,        /* no body (no framing fields, HEAD response, 1xx, 204, 304) */
    GW_H1_BODY_LENGTH,      /* Content-Length bytes */
    GW_H1_BODY_CHUNKED,     /* chunked, possibly with trailers */
    GW_H1_BODY_UNTIL_CLOSE, /* responses without framing fields: until the upstream closes */
} gw_h1_body_t;

/* Why a message was refused: the status to answer (for a response: 502 to the client), a
 * static reason, and the byte offset, counted from the start of the message, where the
 * problem was seen. Every parse error means the connection must be closed. */
typedef struct gw_h1_error_s {
    int status;
    const char *reason;
    uint64_t offset;
} gw_h1_error_t;

/* Decides how the body of the message with head H is framed (for a response, ANSWERS_HEAD
 * says the request was HEAD). Fills *BODY and *LENGTH (the Content-Length) and returns 0,
 * or fills *ERR (status, reason; offset 0) and returns GW_EINVAL for: both Content-Length and
 * Transfer-Encoding, several Content-Length lines (even identical), a Content-Length that is
 * not plain digits, Transfer-Encoding in HTTP/1.0, chunked not the final coding or applied
 * twice (400), any coding but chunked (501), and in requests a missing or repeated Host
 * (400). Statuses are for requests; the parser turns them into 502 for responses. */
int gw_h1_framing(const gw_h1_head_t *h, bool answers_head, gw_h1_body_t *body, uint64_t *length,
                  gw_h1_error_t *err);

/* For a response head H with status 1xx or 204, removes Content-Length and
 * Transfer-Encoding: such a response has no body, must not carry them (RFC 9110 8.6, RFC 9112
 * 6.1), and a client could take them for the framing of a body that is not there. Any other
 * head is left alone: a 304 or an answer to HEAD may state the representation's length.
 * Returns the number of fields removed. The parser calls it on every response head, after
 * gw_h1_framing (so a 204 with both fields is still refused): callers of gw_h1_feed never
 * see these fields on such a head. */
size_t gw_h1_response_drop_framing(gw_h1_head_t *h);

/* ---- parser -------------------------------------------------------------------------- */

typedef struct gw_h1_limits_s {
    size_t max_head;   /* bytes of the head on the wire, blank line included (431; 16 KiB) */
    size_t max_uri;    /* bytes of the request target (414; 8 KiB) */
    size_t max_fields; /* field lines in the head, or in the trailers (431; 100) */
    uint64_t max_body; /* body bytes, 0 = no limit (413); see gw_h1_set_max_body */
} gw_h1_limits_t;

/* The defaults above. */
void gw_h1_limits_default(gw_h1_limits_t *lim);

/* Events from gw_h1_feed (positive results). */
enum {
    GW_H1_HEAD = 1, /* p->head is complete and valid; p->body / p->length say the framing */
    GW_H1_DATA = 2, /* ev->data, ev->len: body bytes, a span of the input given to feed */
    GW_H1_END = 3,  /* the message is complete (trailers, if any, in p->trailers) */
};

typedef struct gw_h1_event_s {
    size_t used;      /* bytes of the input consumed by this call (advance by this much) */
    const char *data; /* GW_H1_DATA: body bytes inside the input */
    size_t len;
} gw_h1_event_t;

typedef enum { GW_H1_ST_HEAD, GW_H1_ST_BODY, GW_H1_ST_DONE, GW_H1_ST_ERROR } gw_h1_state_t;

/* Parser state (the caller allocates it; members are private). */
typedef struct gw_h1_parser_s {
    llhttp_t ll;
    gw_h1_limits_t lim;
    gw_h1_state_t state;
    bool is_request;
    bool answers_head;  /* the response being parsed answers a HEAD request */
    bool in_trailers;   /* the last chunk was seen; fields go to p->trailers */
    bool field_open;    /* a field line is being received (its name, then its value) */
    bool head_ready;    /* llhttp paused at the end of the head */
    bool done;          /* llhttp paused at the end of the message */
    bool upgrade;       /* the message ended in a protocol switch (see gw_h1_upgraded) */
    uint8_t scan;       /* line scanner state (obs-fold, bare CR/LF, NUL) */
    uint32_t lines;     /* lines seen by the scanner in this section */
    uint64_t offset;    /* bytes of this message consumed so far */
    uint64_t section;   /* bytes of the head, or of the trailer section, so far */
    uint64_t body_seen; /* body bytes handed out */
    gw_h1_body_t body;  /* framing, valid from GW_H1_HEAD */
    uint64_t length;    /* Content-Length, for GW_H1_BODY_LENGTH */
    const char *base;   /* start of the input of the current llhttp_execute call */
    const char *span;   /* GW_H1_DATA span found in this llhttp_execute call */
    size_t span_len;
    gw_h1_error_t err; /* set when a call failed */
    gw_h1_head_t head;
    gw_h1_head_t trailers;
} gw_h1_parser_t;

/* Initialises P to parse requests (IS_REQUEST) or responses with limits LIM (NULL: the
 * defaults). The head may grow to twice the wire limits, leaving room for middleware. */
void gw_h1_parser_init(gw_h1_parser_t *p, bool is_request, const gw_h1_limits_t *lim);

/* Frees what P allocated. */
void gw_h1_parser_free(gw_h1_parser_t *p);

/* Makes P, an initialised parser, as gw_h1_parser_init would (limits LIM, NULL for the
 * defaults; same direction), but keeps the storage of its heads for reuse (up to KEEP
 * bytes each, see gw_h1_head_reuse): no allocation per message on a busy connection. */
void gw_h1_parser_reset(gw_h1_parser_t *p, const gw_h1_limits_t *lim, size_t keep);

/* For a response parser, before its first byte: the response answers a HEAD request, so it
 * has no body whatever its framing fields say. gw_h1_next clears it, except after an
 * interim (1xx) response, since the final response answers the same request. */
void gw_h1_expect_head_response(gw_h1_parser_t *p);

/* Sets the body limit once the route is known (after GW_H1_HEAD). Returns 0, or GW_ELIMIT
 * with the error recorded (413) when the declared Content-Length is already over it. */
int gw_h1_set_max_body(gw_h1_parser_t *p, uint64_t max_body);

/* Parses the next bytes of DATA (LEN bytes). Returns:
 *   0          need more data: all LEN bytes were consumed (ev->used == LEN);
 *   GW_H1_*    an event (see above); ev->used bytes were consumed, feed the rest again;
 *   GW_EINVAL  the input is refused: gw_h1_error(p) has the status, reason and offset;
 *              the connection must be closed after answering (or, for a response, 502).
 * After GW_H1_END, feed consumes nothing (returns 0 with used 0) until gw_h1_next: the next
 * pipelined message waits in the caller's buffer. Body spans point into DATA, so the
 * caller forwards them before reusing its buffer. */
int gw_h1_feed(gw_h1_parser_t *p, const char *data, size_t len, gw_h1_event_t *ev);

/* The peer closed its side. Returns GW_H1_END when that ends an until-close response, 0 if
 * no message had started, or GW_EINVAL (error recorded) when a message was cut short. */
int gw_h1_finish(gw_h1_parser_t *p);

/* After GW_H1_END: prepares P for the next message on the same connection. Returns 0, or
 * GW_EINVAL when the connection cannot carry another message: a response that switched
 * protocols (101) or a CONNECT request. A request that asked for an Upgrade may continue
 * (call this only when the upstream declined it, i.e. did not answer 101). */
int gw_h1_next(gw_h1_parser_t *p);

/* The last error (valid after GW_EINVAL). */
const gw_h1_error_t *gw_h1_error(const gw_h1_parser_t *p);

/* True once a message ended with a protocol switch (101, Upgrade, CONNECT): the bytes
 * after it belong to the new protocol. */
bool gw_h1_upgraded(const gw_h1_parser_t *p);

/* True when S[0..N) is a token (RFC 9110 5.6.2: a method, a field name, a coding): at
 * least one byte, every byte a tchar. */
bool gw_h1_is_token(const char *s, size_t n);

/* ---- shared by h1head.c, h1frame.c and h1parse.c only (gw__: not for callers) --------- */

/* True for the bytes of a token (RFC 9110 5.6.2 tchar). */
bool gw__h1_is_tchar(unsigned char c);
/* Calls FN on each trimmed, non-empty element of the comma-separated list S, in order,
 * until FN returns false. */
void gw__h1_each_item(gw_h1_span_t s, bool (*fn)(const char *item, size_t n, void *arg), void *arg);
/* Appends N bytes to the string at OFF/LEN (members of H), which must be empty or the last
 * live string of the arena. 0 or GW_ELIMIT (GW_ENOMEM). */
int gw__h1_append(gw_h1_head_t *h, uint32_t *off, uint32_t *len, const char *s, size_t n);
/* Makes room for one more field line: 0, GW_ELIMIT or GW_ENOMEM. */
int gw__h1_reserve_field(gw_h1_head_t *h);

#endif
