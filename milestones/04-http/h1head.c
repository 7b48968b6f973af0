/* h1head.c - see h1.h (heads, serialisation, hop-by-hop fields) */
#include "04-http/h1.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"

/* RFC 9110 5.6.2 tchar, the bytes of a method, field name or coding: one load per byte
 * (a table, where a strchr over the punctuation cost a call per byte on every field the
 * gateway checks or writes). */
static const bool tchar[256] = {
    ['0' ... '9'] = true, ['a' ... 'z'] = true, ['A' ... 'Z'] = true, ['!'] = true,  ['#'] = true,
    ['$'] = true,         ['%'] = true,         ['&'] = true,         ['\''] = true, ['*'] = true,
    ['+'] = true,         ['-'] = true,         ['.'] = true,         ['^'] = true,  ['_'] = true,
    ['`'] = true,         ['|'] = true,         ['~'] = true,
};

/* see h1.h */
bool gw__h1_is_tchar(unsigned char c)
{
    return tchar[c];
}

/* see h1.h */
bool gw_h1_is_token(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!tchar[(unsigned char)s[i]])
            return false;
    return true;
}

/* Field values: visible ASCII, obs-text, SP and HT (RFC 9110 5.5). No CR, LF, NUL. */
static bool is_value(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

/* see h1.h */
void gw_h1_head_init(gw_h1_head_t *h, bool is_request, size_t max_bytes, size_t max_fields)
{
    memset(h, 0, sizeof(*h));
    h->is_request = is_request;
    h->version_minor = 1;
    /* Offsets are 32-bit: a head is kilobytes, never gigabytes. */
    h->max_bytes = max_bytes < UINT32_MAX ? max_bytes : UINT32_MAX;
    h->max_fields = max_fields;
}

/* see h1.h */
void gw_h1_head_free(gw_h1_head_t *h)
{
    free(h->fields);
    free(h->arena);
    h->fields = NULL;
    h->arena = NULL;
    h->fields_cap = h->acap = 0;
    gw_h1_head_clear(h);
}

/* see h1.h */
void gw_h1_head_reuse(gw_h1_head_t *h, size_t max_bytes, size_t max_fields, size_t keep)
{
    if (h->acap > keep || h->fields_cap * sizeof *h->fields > keep)
        gw_h1_head_free(h);
    gw_h1_head_clear(h);
    h->max_bytes = max_bytes < UINT32_MAX ? max_bytes : UINT32_MAX;
    h->max_fields = max_fields;
}

/* see h1.h */
void gw_h1_head_clear(gw_h1_head_t *h)
{
    h->nfields = 0;
    h->alen = 0;
    h->status = 0;
    h->version_minor = 1;
    h->method = h->method_len = h->target = h->target_len = 0;
    h->reason = h->reason_len = 0;
}

/* Rewrites the arena with only the live strings, so removed and replaced values stop
 * taking space. Called when an append would pass the cap: garbage is reclaimed only when
 * it matters, and a head that is only read never pays for it. */
static int compact(gw_h1_head_t *h)
{
    char *fresh = malloc(h->acap ? h->acap : 1);
    if (fresh == NULL)
        return GW_ENOMEM;
    size_t n = 0;
#define MOVE(off, len)                                                                             \
    do {                                                                                           \
        memcpy(fresh + n, h->arena + (off), (len));                                                \
        (off) = (uint32_t)n;                                                                       \
        n += (len);                                                                                \
    } while (0)
    MOVE(h->method, h->method_len);
    MOVE(h->target, h->target_len);
    MOVE(h->reason, h->reason_len);
    for (size_t i = 0; i < h->nfields; i++) {
        MOVE(h->fields[i].name, h->fields[i].name_len);
        MOVE(h->fields[i].value, h->fields[i].value_len);
    }
#undef MOVE
    free(h->arena);
    h->arena = fresh;
    h->alen = n;
    return 0;
}

/* Makes room for N more arena bytes: grows by doubling up to max_bytes, compacting first
 * if garbage would otherwise push it over the cap. 0, GW_ELIMIT or GW_ENOMEM. */
static int reserve(gw_h1_head_t *h, size_t n)
{
    if (h->alen + n > h->max_bytes && h->alen > 0) {
        int r = compact(h);
        if (r < 0)
            return r;
    }
    if (h->alen + n > h->max_bytes)
        return GW_ELIMIT;
    if (h->alen + n <= h->acap)
        return 0;
    size_t cap = h->acap ? h->acap : 256;
    while (cap < h->alen + n)
        cap *= 2;
    if (cap > h->max_bytes)
        cap = h->max_bytes;
    char *a = realloc(h->arena, cap);
    if (a == NULL)
        return GW_ENOMEM;
    h->arena = a;
    h->acap = cap;
    return 0;
}

/* Appends bytes to the arena (room reserved by the caller); returns their offset. */
static uint32_t put(gw_h1_head_t *h, const char *s, size_t n)
{
    uint32_t off = (uint32_t)h->alen;
    if (n > 0)
        memcpy(h->arena + h->alen, s, n);
    h->alen += n;
    return off;
}

/* see h1.h. The parser receives a name or value in pieces and registers the field before
 * its bytes, so a compaction (which keeps live strings in order) leaves it last. */
int gw__h1_append(gw_h1_head_t *h, uint32_t *off, uint32_t *len, const char *s, size_t n)
{
    int r = reserve(h, n);
    if (r < 0)
        return r;
    if (*len == 0)
        *off = (uint32_t)h->alen;
    put(h, s, n);
    *len += (uint32_t)n;
    return 0;
}

static gw_h1_span_t span(const gw_h1_head_t *h, uint32_t off, uint32_t len)
{
    return (gw_h1_span_t){len ? h->arena + off : "", len};
}

/* see h1.h */
gw_h1_span_t gw_h1_head_method(const gw_h1_head_t *h)
{
    return span(h, h->method, h->method_len);
}

/* see h1.h */
gw_h1_span_t gw_h1_head_target(const gw_h1_head_t *h)
{
    return span(h, h->target, h->target_len);
}

/* see h1.h */
gw_h1_span_t gw_h1_head_reason(const gw_h1_head_t *h)
{
    return span(h, h->reason, h->reason_len);
}

static int set_string(gw_h1_head_t *h, uint32_t *off, uint32_t *len, const char *s, size_t n)
{
    int r = reserve(h, n);
    if (r < 0)
        return r;
    *off = put(h, s, n);
    *len = (uint32_t)n;
    return 0;
}

/* see h1.h */
int gw_h1_head_set_method(gw_h1_head_t *h, const char *m, size_t len)
{
    if (!gw_h1_is_token(m, len))
        return GW_EINVAL;
    return set_string(h, &h->method, &h->method_len, m, len);
}

/* see h1.h */
int gw_h1_head_set_target(gw_h1_head_t *h, const char *t, size_t len)
{
    if (len == 0)
        return GW_EINVAL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c <= 0x20 || c == 0x7f)
            return GW_EINVAL;
    }
    return set_string(h, &h->target, &h->target_len, t, len);
}

/* see h1.h */
int gw_h1_head_set_status(gw_h1_head_t *h, unsigned status, const char *reason, size_t len)
{
    if (status < 100 || status > 999 || !is_value(reason, len))
        return GW_EINVAL;
    int r = set_string(h, &h->reason, &h->reason_len, reason, len);
    if (r == 0)
        h->status = (uint16_t)status;
    return r;
}

/* see h1.h */
bool gw_h1_head_method_is(const gw_h1_head_t *h, const char *m)
{
    size_t n = strlen(m);
    return h->is_request && h->method_len == n && memcmp(h->arena + h->method, m, n) == 0;
}

/* see h1.h */
size_t gw_h1_head_count(const gw_h1_head_t *h)
{
    return h->nfields;
}

/* see h1.h */
gw_h1_span_t gw_h1_head_name_at(const gw_h1_head_t *h, size_t i)
{
    return span(h, h->fields[i].name, h->fields[i].name_len);
}

/* see h1.h */
gw_h1_span_t gw_h1_head_value_at(const gw_h1_head_t *h, size_t i)
{
    return span(h, h->fields[i].value, h->fields[i].value_len);
}

/* see h1.h */
long gw_h1_head_find(const gw_h1_head_t *h, const char *name, size_t from)
{
    size_t n = strlen(name);
    for (size_t i = from; i < h->nfields; i++) {
        const gw_h1_field_t *f = &h->fields[i];
        if (f->name_len == n && strncasecmp(h->arena + f->name, name, n) == 0)
            return (long)i;
    }
    return -1;
}

/* see h1.h */
bool gw_h1_head_get(const gw_h1_head_t *h, const char *name, gw_h1_span_t *value)
{
    long i = gw_h1_head_find(h, name, 0);
    if (i < 0)
        return false;
    if (value != NULL)
        *value = gw_h1_head_value_at(h, (size_t)i);
    return true;
}

/* see h1.h */
int gw__h1_reserve_field(gw_h1_head_t *h)
{
    if (h->nfields >= h->max_fields)
        return GW_ELIMIT;
    if (h->nfields < h->fields_cap)
        return 0;
    size_t cap = h->fields_cap ? h->fields_cap * 2 : 16;
    if (cap > h->max_fields)
        cap = h->max_fields;
    gw_h1_field_t *f = realloc(h->fields, cap * sizeof(*f));
    if (f == NULL)
        return GW_ENOMEM;
    h->fields = f;
    h->fields_cap = cap;
    return 0;
}

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && ((*s)[0] == ' ' || (*s)[0] == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

/* see h1.h */
int gw_h1_head_add(gw_h1_head_t *h, const char *name, size_t nlen, const char *value, size_t vlen)
{
    trim(&value, &vlen);
    if (!gw_h1_is_token(name, nlen) || !is_value(value, vlen))
        return GW_EINVAL;
    int r = gw__h1_reserve_field(h);
    if (r == 0)
        r = reserve(h, nlen + vlen);
    if (r < 0)
        return r;
    gw_h1_field_t *f = &h->fields[h->nfields++];
    f->name = put(h, name, nlen);
    f->name_len = (uint32_t)nlen;
    f->value = put(h, value, vlen);
    f->value_len = (uint32_t)vlen;
    return 0;
}

/* see h1.h */
void gw_h1_head_remove_at(gw_h1_head_t *h, size_t i)
{
    memmove(&h->fields[i], &h->fields[i + 1], (h->nfields - i - 1) * sizeof(h->fields[0]));
    h->nfields--;
}

/* Removes the fields named NAME (any case) at index FROM or later, in one pass that slides
 * the others down: removing them one at a time would move the tail each time, quadratic
 * for a head full of one name. Returns how many. */
static size_t remove_from(gw_h1_head_t *h, const char *name, size_t from)
{
    size_t n = strlen(name), kept = from;
    for (size_t i = from; i < h->nfields; i++) {
        const gw_h1_field_t *f = &h->fields[i];
        if (f->name_len != n || strncasecmp(h->arena + f->name, name, n) != 0)
            h->fields[kept++] = *f;
    }
    size_t removed = h->nfields - kept;
    h->nfields = kept;
    return removed;
}

/* see h1.h */
size_t gw_h1_head_remove(gw_h1_head_t *h, const char *name)
{
    return remove_from(h, name, 0);
}

/* see h1.h */
int gw_h1_head_set(gw_h1_head_t *h, const char *name, const char *value, size_t vlen)
{
    size_t nlen = strlen(name);
    trim(&value, &vlen);
    if (!gw_h1_is_token(name, nlen) || !is_value(value, vlen))
        return GW_EINVAL;
    long first = gw_h1_head_find(h, name, 0);
    if (first < 0)
        return gw_h1_head_add(h, name, nlen, value, vlen);
    /* Reserve before removing anything, so a failure leaves H unchanged. */
    int r = reserve(h, vlen);
    if (r < 0)
        return r;
    gw_h1_field_t *f = &h->fields[first];
    f->value = put(h, value, vlen);
    f->value_len = (uint32_t)vlen;
    remove_from(h, name, (size_t)first + 1);
    return 0;
}

/* see h1.h */
size_t gw_h1_head_size(const gw_h1_head_t *h)
{
    size_t n;
    if (h->is_request) /* METHOD SP target SP HTTP/1.x CRLF */
        n = h->method_len + 1 + h->target_len + 1 + 8 + 2;
    else /* HTTP/1.x SP 3DIGIT SP reason CRLF */
        n = 8 + 1 + 3 + 1 + h->reason_len + 2;
    for (size_t i = 0; i < h->nfields; i++)
        n += h->fields[i].name_len + 2 + h->fields[i].value_len + 2;
    return n + 2;
}

static char *emit(char *w, const char *s, size_t n)
{
    memcpy(w, s, n);
    return w + n;
}

/* Writes string OFF/LEN of H. Through span(): a head with no string at all has no arena,
 * and NULL + 0 or memcpy from NULL is undefined even for zero bytes. */
static char *emit_str(char *w, const gw_h1_head_t *h, uint32_t off, uint32_t len)
{
    gw_h1_span_t s = span(h, off, len);
    return emit(w, s.ptr, s.len);
}

/* see h1.h */
long gw_h1_head_serialize(const gw_h1_head_t *h, char *buf, size_t cap)
{
    size_t need = gw_h1_head_size(h);
    if (need > cap || need > (size_t)LONG_MAX)
        return GW_ELIMIT;
    char version[8] = {'H', 'T', 'T', 'P', '/', '1', '.', (char)('0' + h->version_minor % 10)};
    char *w = buf;
    if (h->is_request) {
        w = emit_str(w, h, h->method, h->method_len);
        *w++ = ' ';
        w = emit_str(w, h, h->target, h->target_len);
        *w++ = ' ';
        w = emit(w, version, 8);
    } else {
        char code[5] = {' ', (char)('0' + h->status / 100 % 10), (char)('0' + h->status / 10 % 10),
                        (char)('0' + h->status % 10), ' '};
        w = emit(w, version, 8);
        w = emit(w, code, 5);
        w = emit_str(w, h, h->reason, h->reason_len);
    }
    w = emit(w, "\r\n", 2);
    for (size_t i = 0; i < h->nfields; i++) {
        w = emit_str(w, h, h->fields[i].name, h->fields[i].name_len);
        w = emit(w, ": ", 2);
        w = emit_str(w, h, h->fields[i].value, h->fields[i].value_len);
        w = emit(w, "\r\n", 2);
    }
    w = emit(w, "\r\n", 2);
    return (long)(w - buf);
}

/* see h1.h */
int gw_h1_head_serialize_alloc(const gw_h1_head_t *h, size_t max, char **out, size_t *len)
{
    size_t need = gw_h1_head_size(h);
    if (need > max)
        return GW_ELIMIT;
    char *b = malloc(need);
    if (b == NULL)
        return GW_ENOMEM;
    long n = gw_h1_head_serialize(h, b, need);
    if (n < 0) {
        free(b);
        return (int)n;
    }
    *out = b;
    *len = (size_t)n;
    return 0;
}

/* see h1.h (RFC 9110 5.6.1 lists) */
void gw__h1_each_item(gw_h1_span_t s, bool (*fn)(const char *item, size_t n, void *arg), void *arg)
{
    size_t i = 0;
    while (i <= s.len) {
        size_t j = i;
        while (j < s.len && s.ptr[j] != ',')
            j++;
        const char *item = s.ptr + i;
        size_t n = j - i;
        trim(&item, &n);
        if (n > 0 && !fn(item, n, arg))
            return;
        i = j + 1;
    }
}

/* Whether NAME is LIT, in any case (field names and Connection tokens are
 * case-insensitive). */
static bool name_is(gw_h1_span_t name, const char *lit)
{
    size_t n = strlen(lit);
    return name.len == n && strncasecmp(name.ptr, lit, n) == 0;
}

/* A total order on names that ignores case: shorter first, then strncasecmp. Counts one
 * comparison in *WORK. */
static int name_order(gw_h1_span_t a, gw_h1_span_t b, unsigned long *work)
{
    (*work)++;
    if (a.len != b.len)
        return a.len < b.len ? -1 : 1;
    return strncasecmp(a.ptr, b.ptr, a.len);
}

/* Bisection in T's sorted names: the index of NAME, or where it would be inserted; *FOUND
 * says which. At most 7 comparisons for 64 names. */
static unsigned bisect(gw_h1_conn_tokens_t *t, gw_h1_span_t name, bool *found)
{
    unsigned lo = 0, hi = t->n;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        int c = name_order(t->names[mid], name, &t->work);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* One token of a Connection value: note the options, and insert it in order. Stops the
 * reading at the first token over the cap. */
static bool on_conn_token(const char *s, size_t n, void *arg)
{
    gw_h1_conn_tokens_t *t = arg;
    if (++t->listed > GW_H1_MAX_CONN_TOKENS)
        return false;
    gw_h1_span_t name = {s, n};
    t->close |= name_is(name, "close");
    t->keep_alive |= name_is(name, "keep-alive");
    t->upgrade |= name_is(name, "upgrade");
    bool found;
    unsigned at = bisect(t, name, &found);
    if (!found) {
        /* Sorted insertion moves at most 63 spans: bounded by the cap, not by the head. */
        memmove(&t->names[at + 1], &t->names[at], (t->n - at) * sizeof(t->names[0]));
        t->names[at] = name;
        t->n++;
    }
    return true;
}

/* see h1.h. Read once per head into a bounded set: reading the Connection lines again for
 * each field would cost fields x Connection bytes, quadratic in the size of the head (95
 * short fields and one long Connection line cost 20 times a plain head that way). */
int gw_h1_conn_tokens_parse(gw_h1_conn_tokens_t *t, const gw_h1_head_t *h)
{
    t->n = t->listed = 0;
    t->close = t->keep_alive = t->upgrade = false;
    t->work = 0;
    for (long i = gw_h1_head_find(h, "Connection", 0); i >= 0 && t->listed <= GW_H1_MAX_CONN_TOKENS;
         i = gw_h1_head_find(h, "Connection", (size_t)i + 1))
        gw__h1_each_item(gw_h1_head_value_at(h, (size_t)i), on_conn_token, t);
    return t->listed > GW_H1_MAX_CONN_TOKENS ? GW_ELIMIT : (int)t->listed;
}

/* see h1.h */
bool gw_h1_conn_tokens_has(gw_h1_conn_tokens_t *t, gw_h1_span_t name)
{
    bool found;
    bisect(t, name, &found);
    return found;
}

/* LAB 04: hop-by-hop headers */

/* Fields about one connection, never forwarded whatever Connection says (RFC 9110 7.6.1,
 * plus the de-facto Keep-Alive and Proxy-Connection, and Transfer-Encoding since we re-frame
 * the body). Upgrade too, unless the caller sets up a tunnel. */
static bool always_hop_by_hop(gw_h1_span_t name, bool keep_upgrade)
{
    static const char *const hop_fields[] = {"Connection", "Keep-Alive", "Proxy-Connection",
                                             "TE",         "Trailer",    "Transfer-Encoding"};
    for (size_t i = 0; i < sizeof(hop_fields) / sizeof(hop_fields[0]); i++)
        if (name_is(name, hop_fields[i]))
            return true;
    return !keep_upgrade && name_is(name, "Upgrade");
}

/* Whether a field named NAME must go because Connection lists it. Host and Content-Length
 * never go that way: it would reroute or reframe the message (the trick behind Apache's
 * CVE-2022-31813); Upgrade stays when the caller sets up a tunnel. */
static bool named_by_connection(gw_h1_conn_tokens_t *t, gw_h1_span_t name, bool keep_upgrade)
{
    if (name_is(name, "Host") || name_is(name, "Content-Length") ||
        (keep_upgrade && name_is(name, "Upgrade")))
        return false;
    return gw_h1_conn_tokens_has(t, name);
}

/* see h1.h */
size_t gw_h1_strip_hop_fields(gw_h1_head_t *h, gw_h1_conn_tokens_t *t, unsigned flags)
{
    bool keep_upgrade = (flags & GW_H1_KEEP_UPGRADE) != 0;
    /* One pass that slides each kept field down over the removed ones: removing them one at
     * a time would move the whole tail each time. The Connection lines can go in the same
     * pass: their tokens are already in T. */
    size_t kept = 0;
    for (size_t i = 0; i < h->nfields; i++) {
        gw_h1_span_t name = gw_h1_head_name_at(h, i);
        bool hop =
            always_hop_by_hop(name, keep_upgrade) || named_by_connection(t, name, keep_upgrade);
        if (!hop)
            h->fields[kept++] = h->fields[i];
    }
    size_t removed = h->nfields - kept;
    h->nfields = kept;
    return removed;
}

/* see h1.h */
int gw_h1_strip_hop_by_hop(gw_h1_head_t *h, unsigned flags, gw_h1_conn_info_t *info)
{
    gw_h1_conn_tokens_t t;
    if (gw_h1_conn_tokens_parse(&t, h) < 0) {
        /* A head the parser would have refused: left as it is, for the caller to refuse. */
        if (info != NULL)
            *info = (gw_h1_conn_info_t){.keep_alive = false, .upgrade = false};
        return GW_ELIMIT;
    }
    bool has_upgrade = gw_h1_head_get(h, "Upgrade", NULL);
    gw_h1_strip_hop_fields(h, &t, flags);
    if (info != NULL) {
        /* HTTP/1.1 persists unless told to close; HTTP/1.0 closes unless asked to stay. */
        if (h->version_minor >= 1)
            info->keep_alive = !t.close;
        else
            info->keep_alive = t.keep_alive && !t.close;
        info->upgrade = t.upgrade && has_upgrade;
    }
    return 0;
}

/* END LAB */

/* see h1.h */
char *gw_h1_span_dup(gw_h1_span_t s)
{
    char *p = malloc(s.len + 1);
    if (p == NULL)
        return NULL;
    if (s.len > 0)
        memcpy(p, s.ptr, s.len);
    p[s.len] = '\0';
    return p;
}
