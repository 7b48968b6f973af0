/* pathnorm.c - see pathnorm.h. */
#include "pathnorm.h"

#include <stdbool.h>
#include <string.h>

static int fail(gw_pathnorm_t *res, int status, const char *reason, size_t offset)
{
    res->status = status;
    res->reason = reason;
    res->offset = offset;
    return -1;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* pchar minus the escapes: unreserved, sub-delims, ':' and '@' (RFC 3986 3.3). */
static bool is_pchar_raw(unsigned char c)
{
    return is_unreserved(c) || (c != 0 && strchr("!$&'()*+,;=:@", c) != NULL);
}

/* The byte that the escape at IN[I] stands for, or -1 when '%' is not followed by two hex digits
 * before END ("%u002e", "%2", "%zz"). */
static int escape_value(const char *in, size_t i, size_t end)
{
    if (i + 2 >= end)
        return -1;
    int hi = hexval((unsigned char)in[i + 1]), lo = hexval((unsigned char)in[i + 2]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* True for escapes that only overlong UTF-8 uses: %C0 and %C1 never start a valid sequence, and %E0
 * followed by %80-%9F encodes a code point that has a shorter form. "%c0%ae" is '.' to a decoder
 * that does not check; valid UTF-8 (%C3%A9 and so on) passes. */
static bool is_overlong(const char *in, size_t i, size_t end, int v)
{
    if (v == 0xC0 || v == 0xC1)
        return true;
    if (v != 0xE0 || i + 3 >= end || in[i + 3] != '%')
        return false;
    int next = escape_value(in, i + 3, end);
    return next >= 0x80 && next <= 0x9F;
}

/* True when the decoded segment SEG[0..N) holds "%25" followed by two hex digits. In our output
 * every '%' starts an escape, so this is a literal '%' that a second decoding pass would turn into
 * another character: "%252e" is "%2e" after one pass and "." after two. */
static bool has_double_encoding(const char *seg, size_t n)
{
    for (size_t k = 0; k + 4 < n; k++)
        if (seg[k] == '%' && seg[k + 1] == '2' && seg[k + 2] == '5' &&
            hexval((unsigned char)seg[k + 3]) >= 0 && hexval((unsigned char)seg[k + 4]) >= 0)
            return true;
    return false;
}

/* 1 for ".", 2 for "..", -1 for a dot segment with parameters ("..;jsessionid=x": Tomcat and other
 * servlet containers strip the parameter and then see ".."), 0 otherwise. */
static int dot_kind(const char *seg, size_t n)
{
    const char *semi = memchr(seg, ';', n);
    size_t base = semi ? (size_t)(semi - seg) : n;
    int kind = 0;
    if (base == 1 && seg[0] == '.')
        kind = 1;
    else if (base == 2 && seg[0] == '.' && seg[1] == '.')
        kind = 2;
    return semi && kind ? -1 : kind;
}

/* LAB 04: path normalisation */
/* Why normalise at all? The router decides which route (and so which authentication, which limits,
 * which upstream) a request gets by looking at its path. If the backend later reads the same bytes
 * differently (decodes %2e, merges "//", treats '\' as '/', resolves "..") the checks were made on
 * one path and the work is done on another: "/public/..%2fadmin" routes as public and is served as
 * "/admin". The cure is to decide on ONE reading here, route on it, and forward exactly that
 * reading, refusing whatever is ambiguous.
 *
 * Decodes IN[I..END), one segment, and appends it to OUT at *O: unreserved escapes become their
 * character, other escapes stay escapes in upper case, forbidden ones fail. */
static int decode_segment(const char *in, size_t i, size_t end, char *out, size_t *o, size_t outcap,
                          gw_pathnorm_t *res)
{
    static const char HEX[] = "0123456789ABCDEF";
    for (; i < end; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c != '%') {
            if (!is_pchar_raw(c))
                return fail(res, 400, c == '\\' ? "backslash in path" : "invalid byte in path", i);
            if (*o + 1 >= outcap)
                return fail(res, 414, "path too long", i);
            out[(*o)++] = (char)c;
            continue;
        }
        int v = escape_value(in, i, end);
        if (v < 0)
            return fail(res, 400, "bad percent-encoding in path", i);
        if (v == '/' || v == '\\' || v == 0)
            return fail(res, 400, "encoded slash, backslash or NUL in path", i);
        if (is_overlong(in, i, end, v))
            return fail(res, 400, "overlong UTF-8 encoding in path", i);
        size_t need = is_unreserved((unsigned char)v) ? 1 : 3;
        if (*o + need >= outcap)
            return fail(res, 414, "path too long", i);
        if (need == 1) {
            out[(*o)++] = (char)v;
        } else {
            out[(*o)++] = '%';
            out[(*o)++] = HEX[v >> 4];
            out[(*o)++] = HEX[v & 15];
        }
        i += 2;
    }
    return 0;
}

/* Appends the segment IN[I..END) as "/seg" to OUT, then applies RFC 3986 5.2.4 to it: an empty or
 * "." segment is dropped, ".." drops it and the segment before (OUT always starts with '/', so the
 * previous '/' is found by walking back). LAST says whether this is the path's final segment; a
 * final empty or dot segment leaves a trailing slash (*TRAILING). */
static int add_segment(const char *in, size_t i, size_t end, bool last, char *out, size_t *o,
                       size_t outcap, bool *trailing, gw_pathnorm_t *res)
{
    size_t start = *o;
    if (start + 1 >= outcap)
        return fail(res, 414, "path too long", i);
    out[(*o)++] = '/';
    if (decode_segment(in, i, end, out, o, outcap, res) < 0)
        return -1;
    const char *seg = out + start + 1;
    size_t n = *o - start - 1;
    if (has_double_encoding(seg, n))
        return fail(res, 400, "double percent-encoding in path", i);
    int dots = dot_kind(seg, n);
    if (dots < 0)
        return fail(res, 400, "dot segment with parameters", i);
    *trailing = last;
    *o = start;
    if (n == 0 || dots == 1)
        return 0; /* collapsed "//" or "/." */
    if (dots == 2) {
        if (start == 0)
            return fail(res, 400, "path escapes the root", i);
        while (out[--start] != '/')
            ;
        *o = start;
        return 0;
    }
    *o = start + 1 + n; /* an ordinary segment: keep it */
    *trailing = false;
    return 0;
}

/* see pathnorm.h */
int gw_path_normalize(const char *target, size_t len, char *out, size_t outcap, gw_pathnorm_t *res)
{
    memset(res, 0, sizeof(*res));
    if (len == 0 || target[0] != '/')
        return fail(res, 400, "request target must start with /", 0);
    const char *q = memchr(target, '?', len);
    size_t qpos = q ? (size_t)(q - target) : len;
    size_t o = 0;
    bool trailing = false;
    for (size_t i = 1;;) {
        size_t end = i;
        while (end < qpos && target[end] != '/')
            end++;
        bool last = end >= qpos;
        if (add_segment(target, i, end, last, out, &o, outcap, &trailing, res) < 0)
            return -1;
        if (last)
            break;
        i = end + 1;
    }
    if (o == 0 || trailing)
        out[o++] = '/'; /* room: add_segment checked start + 1 < outcap */
    res->path_len = o;
    for (size_t i = qpos; i < len; i++) {
        unsigned char c = (unsigned char)target[i];
        if (c <= 0x20 || c == 0x7f)
            return fail(res, 400, "invalid byte in query", i);
        if (o + 1 >= outcap)
            return fail(res, 414, "request target too long", i);
        out[o++] = (char)c;
    }
    out[o] = '\0';
    res->len = o;
    return 0;
}
/* END LAB */
