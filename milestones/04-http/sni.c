/* sni.c - see sni.h.
 *
 * The wire format (RFC 8446 4.1.2, RFC 5246 7.4.1.2, RFC 6066 3), every length checked
 * against the one of the thing that contains it:
 *
 *   record      type 22 (handshake) | version 3.x | length (2) <= 16384
 *   handshake   type 1 (ClientHello) | length (3) = record length - 4
 *   hello       client_version (2, 3.x) | random (32)
 *               | session_id <0..32> | cipher_suites <2..2^16-2> (even)
 *               | compression_methods <1..255>
 *               | [ extensions <0..2^16-1>: the rest of the hello exactly ]
 *   extension   type (2) | data <0..2^16-1>
 *   server_name (type 0): server_name_list <1..2^16-1> = the extension's data exactly
 *               entries: name_type (1) | name <1..2^16-1>; type 0 is host_name */
#include "sni.h"

#include <stdint.h>
#include <string.h>

#define REC_TYPE_HANDSHAKE 22
#define HS_CLIENT_HELLO 1
#define EXT_SERVER_NAME 0
#define NAME_TYPE_HOST 0
#define TLS_RECORD_PAYLOAD_MAX 16384

/* A reader over one container: P..END is what the container's length declared, and the
 * caller made sure those bytes were received. Every read checks that the field fits. */
typedef struct {
    const uint8_t *base, *p, *end;
} rd_t;

static bool take(rd_t *r, size_t n, const uint8_t **at)
{
    if ((size_t)(r->end - r->p) < n)
        return false;
    *at = r->p;
    r->p += n;
    return true;
}

static bool u8(rd_t *r, size_t *v)
{
    const uint8_t *b;
    if (!take(r, 1, &b))
        return false;
    *v = b[0];
    return true;
}

static bool u16(rd_t *r, size_t *v)
{
    const uint8_t *b;
    if (!take(r, 2, &b))
        return false;
    *v = (size_t)b[0] << 8 | b[1];
    return true;
}

/* A length-prefixed vector (prefix of W bytes) of MIN..MAX bytes inside R, as a reader of
 * its own. */
static bool vec(rd_t *r, int w, size_t min, size_t max, rd_t *sub)
{
    size_t n;
    const uint8_t *b, *start = r->p;
    if (!(w == 1 ? u8(r, &n) : u16(r, &n)) || n < min || n > max || !take(r, n, &b)) {
        r->p = start; /* an error points at the length that was wrong */
        return false;
    }
    *sub = (rd_t){r->base, b, b + n};
    return true;
}

static gw_sni_result_t fail(gw_sni_t *out, const rd_t *r, gw_sni_result_t why)
{
    out->err_pos = (size_t)(r->p - r->base);
    return why;
}

/* An IP literal, which RFC 6066 does not allow as a HostName: a dotted quad (a last label
 * of digits: no top-level domain is numeric) or two ':' or more among hex digits and dots. */
static bool ip_literal(const char *s, size_t n)
{
    size_t colons = 0;
    bool hex = true;
    size_t last = n;
    while (last > 0 && s[last - 1] != '.')
        last--;
    bool digits = last < n;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool h = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        hex = hex && (h || c == ':' || c == '.');
        colons += c == ':';
        if (i >= last)
            digits = digits && c >= '0' && c <= '9';
    }
    return (colons >= 2 && hex) || digits;
}

/* The server_name extension's data in R: at most one host_name; others types skipped. */
static gw_sni_result_t read_server_name(rd_t *r, gw_sni_t *out, bool *found)
{
    rd_t list;
    if (!vec(r, 2, 1, SIZE_MAX, &list) || r->p != r->end)
        return fail(out, r, GW_SNI_MALFORMED);
    while (list.p < list.end) {
        size_t type;
        rd_t name;
        if (!u8(&list, &type) || !vec(&list, 2, 1, SIZE_MAX, &name))
            return fail(out, &list, GW_SNI_MALFORMED);
        if (type != NAME_TYPE_HOST)
            continue;
        size_t n = (size_t)(name.end - name.p);
        if (*found || n > GW_SNI_NAME_MAX)
            return fail(out, &name, GW_SNI_MALFORMED);
        *found = true;
        for (size_t i = 0; i < n; i++) {
            char c = (char)name.p[i];
            out->name[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
        }
        out->name[n] = '\0';
        out->len = n;
        if (!ip_literal(out->name, n) && !gw_sni_name_valid(out->name, n, true))
            return fail(out, &name, GW_SNI_MALFORMED);
    }
    return GW_SNI_FOUND;
}

/* The ClientHello's body in R (its whole length is there). */
static gw_sni_result_t read_hello(rd_t *r, gw_sni_t *out)
{
    size_t version;
    const uint8_t *random;
    rd_t sid, suites, comp, exts;
    if (!u16(r, &version) || version >> 8 != 3)
        return fail(out, r, GW_SNI_MALFORMED);
    if (!take(r, 32, &random) || !vec(r, 1, 0, 32, &sid) || !vec(r, 2, 2, 0xfffe, &suites) ||
        (suites.end - suites.p) % 2 != 0 || !vec(r, 1, 1, 255, &comp))
        return fail(out, r, GW_SNI_MALFORMED);
    if (r->p == r->end) /* no extensions at all: a TLS 1.0-era hello */
        return GW_SNI_NONE;
    if (!vec(r, 2, 0, 0xffff, &exts) || r->p != r->end)
        return fail(out, r, GW_SNI_MALFORMED);
    bool found = false, seen = false;
    while (exts.p < exts.end) {
        size_t type;
        rd_t data;
        if (!u16(&exts, &type) || !vec(&exts, 2, 0, 0xffff, &data))
            return fail(out, &exts, GW_SNI_MALFORMED);
        if (type != EXT_SERVER_NAME)
            continue;
        if (seen) /* RFC 8446 4.2: one extension of each type */
            return fail(out, &data, GW_SNI_MALFORMED);
        seen = true;
        gw_sni_result_t rc = read_server_name(&data, out, &found);
        if (rc != GW_SNI_FOUND)
            return rc;
    }
    if (!found || ip_literal(out->name, out->len)) {
        out->name[0] = '\0';
        out->len = 0;
        return GW_SNI_NONE;
    }
    return GW_SNI_FOUND;
}

/* see sni.h */
gw_sni_result_t gw_sni_parse(const void *data, size_t len, size_t max, gw_sni_t *out)
{
    const uint8_t *b = data;
    rd_t r = {b, b, b + len};
    out->name[0] = '\0';
    out->len = 0;
    out->err_pos = 0;
    /* Each check as soon as its bytes are here, in the order of the bytes. */
    if (len >= 1 && b[0] != REC_TYPE_HANDSHAKE) /* also an SSLv2 hello: high bit set */
        return GW_SNI_NOT_TLS;
    r.p = b + 1;
    if (len >= 2 && b[1] != 3)
        return fail(out, &r, GW_SNI_NOT_TLS);
    if (len < 5)
        return GW_SNI_NEED_MORE;
    size_t rec = (size_t)b[3] << 8 | b[4];
    r.p = b + 3;
    if (max > GW_SNI_RECORD_MAX)
        max = GW_SNI_RECORD_MAX;
    if (rec > TLS_RECORD_PAYLOAD_MAX || 5 + rec > max)
        return fail(out, &r, GW_SNI_TOO_BIG);
    if (rec < 4) /* not even a handshake header */
        return fail(out, &r, GW_SNI_MALFORMED);
    r.p = b + 5;
    if (len >= 6 && b[5] != HS_CLIENT_HELLO)
        return fail(out, &r, GW_SNI_MALFORMED);
    if (len < 9)
        return GW_SNI_NEED_MORE;
    size_t hs = (size_t)b[6] << 16 | (size_t)b[7] << 8 | b[8];
    r.p = b + 6;
    if (hs > rec - 4) /* the hello goes on in another record: not read (sni.h) */
        return fail(out, &r, GW_SNI_TOO_BIG);
    if (hs < rec - 4) /* a client sends nothing after its hello in the same record */
        return fail(out, &r, GW_SNI_MALFORMED);
    if (len < 5 + rec)
        return GW_SNI_NEED_MORE;
    rd_t hello = {b, b + 9, b + 9 + hs};
    return read_hello(&hello, out);
}

/* see sni.h */
bool gw_sni_name_valid(const char *name, size_t len, bool lower)
{
    if (len == 0 || len > GW_SNI_NAME_MAX || ip_literal(name, len))
        return false;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        bool ok = (c >= 'a' && c <= 'z') || (!lower && c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '-' || c == '_';
        if (!ok || ++label > 63)
            return false;
    }
    return label > 0;
}

/* see sni.h */
const char *gw_sni_result_name(gw_sni_result_t r)
{
    switch (r) {
    case GW_SNI_FOUND:
        return "found";
    case GW_SNI_NONE:
        return "none";
    case GW_SNI_NEED_MORE:
        return "need_more";
    case GW_SNI_NOT_TLS:
        return "not_tls";
    case GW_SNI_MALFORMED:
        return "malformed";
    case GW_SNI_TOO_BIG:
        return "too_big";
    }
    return "?";
}
