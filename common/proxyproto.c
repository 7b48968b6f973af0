/* proxyproto.c - see proxyproto.h.
 *
 * The wire formats (doc/proxy-protocol.txt, sections 2.1 and 2.2):
 *
 *   v1  "PROXY" SP ( "TCP4" SP a4 SP a4 | "TCP6" SP a6 SP a6 ) SP port SP port CRLF
 *       | "PROXY" SP "UNKNOWN" [ SP <anything but CR, LF> ] CRLF          (<= 107 bytes)
 *       a4: dotted quad, no leading zeros; a6: RFC 4291 text (<= 39 characters here);
 *       port: 0..65535 in decimal, no leading zeros
 *   v2  sig (12) | ver_cmd (1: 0x20 LOCAL, 0x21 PROXY) | fam (1) | len (2, big endian)
 *       | addresses (12 for 0x11/0x12, 36 for 0x21/0x22, 216 for 0x31/0x32, 0 for 0x00)
 *       | TLVs: type (1) | length (2) | value, to the end of len exactly
 *       SSL TLV value: client (1) | verify (4) | sub-TLVs to its end exactly
 *
 * The reader is a left-to-right scan over everything received, which stops at the first
 * byte it cannot accept (an error, with that byte's offset) or at the end of the bytes (need
 * more). A decision at offset i looks only at bytes up to i (v1) or, for v2, at the fixed
 * fields and then at the whole header once its length is in: so the answer for a prefix is
 * also the answer for every longer one, the property the tests check split at every byte. */
#include "proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static const uint8_t V2_SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char V1_SIG[] = "PROXY ";
#define V1_SIG_LEN 6
#define V1_MIN 15 /* "PROXY UNKNOWN\r\n" */

#define OK 0
#define MORE 1 /* a step ran out of bytes */

/* The scan: B[0..N) received, I the next byte to look at. */
typedef struct {
    const uint8_t *b;
    size_t n, i;
    size_t min_total; /* the shortest header these bytes can still begin */
    gw_pp_result_t *out;
} rd_t;

static int fail(rd_t *r, size_t pos, int err)
{
    r->out->err_pos = pos;
    return err;
}

/* How B[AT..N) compares with the literal S[0..L): 1 all of it matches, 0 the bytes ran out
 * while matching, -1 a byte differs (*BAD is its offset). */
static int match(const uint8_t *b, size_t n, size_t at, const char *s, size_t l, size_t *bad)
{
    for (size_t k = 0; k < l; k++) {
        if (at + k >= n)
            return 0;
        if (b[at + k] != (uint8_t)s[k]) {
            *bad = at + k;
            return -1;
        }
    }
    return 1;
}

/* ---- v1 -------------------------------------------------------------------------------- */

static bool addr_char(uint8_t c, int af)
{
    if ((c >= '0' && c <= '9') || c == '.')
        return true;
    return af == AF_INET6 && (c == ':' || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'));
}

/* An address of family AF ended by one space, into SS. The token is checked character by
 * character as it arrives (so "PROXY TCP4 GET" fails at 'G'), and by inet_pton at its end:
 * a dotted quad of exactly four decimal numbers without leading zeros (glibc refuses "01"),
 * or IPv6 text. At most 15 or 39 characters: the spec's longest forms, which keep a TCP line
 * within 104 bytes. */
static int v1_addr(rd_t *r, int af, struct sockaddr_storage *ss)
{
    size_t start = r->i, max = af == AF_INET ? 15 : 39;
    char text[40];
    for (size_t i = start;; i++) {
        if (i >= r->n)
            return MORE;
        uint8_t c = r->b[i];
        if (c == ' ' && i > start) {
            text[i - start] = '\0';
            void *dst = af == AF_INET ? (void *)&((struct sockaddr_in *)ss)->sin_addr
                                      : (void *)&((struct sockaddr_in6 *)ss)->sin6_addr;
            if (inet_pton(af, text, dst) != 1)
                return fail(r, start, GW_PP_EV1ADDR);
            ss->ss_family = (sa_family_t)af;
            r->i = i + 1;
            return OK;
        }
        if (i - start == max || !addr_char(c, af))
            return fail(r, i, GW_PP_EV1ADDR);
        text[i - start] = (char)c;
    }
}

/* A port, 0..65535 in decimal without leading zeros, ended by TERM (a space, or the CR of
 * the line's end). */
static int v1_port(rd_t *r, uint8_t term, uint16_t *port)
{
    size_t start = r->i;
    unsigned v = 0;
    for (size_t i = start;; i++) {
        if (i >= r->n)
            return MORE;
        uint8_t c = r->b[i];
        if (c == term && i > start) {
            *port = (uint16_t)v;
            r->i = i + 1;
            return OK;
        }
        if (c == '\n' && term == '\r')
            return fail(r, i, GW_PP_EV1CRLF);
        if (c < '0' || c > '9' || (i > start && v == 0)) /* "0" may not lead "01" */
            return fail(r, i, GW_PP_EV1PORT);
        v = v * 10 + (unsigned)(c - '0');
        if (v > 65535)
            return fail(r, start, GW_PP_EV1PORT);
    }
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

/* "TCP4 " or "TCP6 " was read: the addresses, the ports, CRLF. */
static int v1_tcp(rd_t *r, int af)
{
    gw_pp_result_t *o = r->out;
    uint16_t sport, dport;
    int rc;
    r->min_total = af == AF_INET ? 32 : 22; /* "PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", "::" */
    if ((rc = v1_addr(r, af, &o->src)) != OK || (rc = v1_addr(r, af, &o->dst)) != OK ||
        (rc = v1_port(r, ' ', &sport)) != OK || (rc = v1_port(r, '\r', &dport)) != OK)
        return rc;
    if (r->i >= r->n)
        return MORE;
    if (r->b[r->i] != '\n')
        return fail(r, r->i, GW_PP_EV1CRLF);
    set_port(&o->src, sport);
    set_port(&o->dst, dport);
    o->family = af == AF_INET ? GW_PP_TCP4 : GW_PP_TCP6;
    o->len = r->i + 1;
    return OK;
}

/* "UNKNOWN" was read: CRLF, or a space and anything up to CRLF, which the spec says to ignore
 * (senders may put addresses there). Only CR and LF are watched: alone, either is an error. */
static int v1_unknown(rd_t *r)
{
    for (size_t i = r->i; i < r->n; i++) {
        uint8_t c = r->b[i];
        if (c == '\n') {
            if (r->b[i - 1] != '\r')
                return fail(r, i, GW_PP_EV1CRLF);
            r->out->len = i + 1;
            return OK;
        }
        if (i == r->i && c != ' ' && c != '\r') /* "UNKNOWNX" */
            return fail(r, i, GW_PP_EV1PROTO);
        if (i + 1 >= GW_PP_V1_MAX) /* the 107th byte, and it is not the LF */
            return fail(r, i, GW_PP_EV1TOOLONG);
        if (c == '\r' && i + 1 < r->n && r->b[i + 1] != '\n')
            return fail(r, i + 1, GW_PP_EV1CRLF);
    }
    return MORE;
}

/* "PROXY " was read: the protocol, then its fields. */
static int v1_parse(rd_t *r)
{
    static const char *const protos[] = {"TCP4 ", "TCP6 ", "UNKNOWN"};
    size_t worst = 0, bad = 0;
    bool partial = false;
    r->i = V1_SIG_LEN;
    r->out->command = GW_PP_PROXY;
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(protos[k]);
        int m = match(r->b, r->n, r->i, protos[k], l, &bad);
        if (m == 1) {
            r->i += l;
            return k == 2 ? v1_unknown(r) : v1_tcp(r, k == 0 ? AF_INET : AF_INET6);
        }
        partial = partial || m == 0;
        worst = m < 0 && bad > worst ? bad : worst;
    }
    return partial ? MORE : fail(r, worst, GW_PP_EV1PROTO);
}

/* ---- v2 -------------------------------------------------------------------------------- */

/* The address block's size for a family/transport byte, or -1 for a byte the spec does not
 * list (valid nibbles in another combination, like 0x10, included: no sender makes them). */
static int v2_addr_len(uint8_t fam)
{
    switch (fam) {
    case 0x00:
        return 0;
    case 0x11:
    case 0x12:
        return 12;
    case 0x21:
    case 0x22:
        return 36;
    case 0x31:
    case 0x32:
        return 216;
    default:
        return -1;
    }
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A recognised TLV's value, once: the second of a kind is refused. */
static int keep(rd_t *r, size_t at, unsigned bit, gw_pp_span_t *span, size_t l)
{
    if (r->out->seen & bit)
        return fail(r, at, GW_PP_EV2TLV);
    r->out->seen |= bit;
    *span = (gw_pp_span_t){(uint16_t)(at + 3), (uint16_t)l};
    return OK;
}

static int read_tlvs(rd_t *r, size_t at, size_t end, bool ssl);

/* The CRC32C TLV at AT: the header's checksum with the value's 4 bytes taken as zeros. */
static int tlv_crc(rd_t *r, size_t at)
{
    static const uint8_t zeros[4];
    gw_pp_span_t v;
    int rc = keep(r, at, GW_PP_SEEN_CRC32C, &v, 4);
    if (rc != OK)
        return rc;
    uint32_t crc = gw_pp_crc32c(0, r->b, v.off);
    crc = gw_pp_crc32c(crc, zeros, 4);
    crc = gw_pp_crc32c(crc, r->b + v.off + 4, r->out->len - v.off - 4);
    r->out->crc32c = be32(r->b + v.off);
    return crc == r->out->crc32c ? OK : fail(r, v.off, GW_PP_EV2CRC);
}

/* One TLV of the header's own list at AT, its value L bytes long (inside the header). */
static int tlv_top(rd_t *r, size_t at, size_t l)
{
    gw_pp_result_t *o = r->out;
    switch (r->b[at]) {
    case GW_PP2_TYPE_ALPN:
        return keep(r, at, GW_PP_SEEN_ALPN, &o->alpn, l);
    case GW_PP2_TYPE_AUTHORITY:
        return l > GW_PP2_AUTHORITY_MAX ? fail(r, at, GW_PP_EV2TLV)
                                        : keep(r, at, GW_PP_SEEN_AUTHORITY, &o->authority, l);
    case GW_PP2_TYPE_UNIQUE_ID:
        return l > GW_PP2_UNIQUE_ID_MAX ? fail(r, at, GW_PP_EV2TLV)
                                        : keep(r, at, GW_PP_SEEN_UNIQUE_ID, &o->unique_id, l);
    case GW_PP2_TYPE_NETNS:
        return keep(r, at, GW_PP_SEEN_NETNS, &o->netns, l);
    case GW_PP2_TYPE_CRC32C:
        return l != 4 ? fail(r, at, GW_PP_EV2TLV) : tlv_crc(r, at);
    case GW_PP2_TYPE_SSL: {
        gw_pp_span_t whole;
        int rc = l < 5 ? fail(r, at, GW_PP_EV2TLV) : keep(r, at, GW_PP_SEEN_SSL, &whole, l);
        if (rc != OK)
            return rc;
        o->ssl_client = r->b[at + 3];
        o->ssl_verify = be32(r->b + at + 4);
        o->ssl_tlvs = (gw_pp_span_t){(uint16_t)(at + 8), (uint16_t)(l - 5)};
        return read_tlvs(r, at + 8, at + 3 + l, true);
    }
    default: /* NOOP, custom, experimental, future: the iterator shows them */
        return OK;
    }
}

/* One sub-TLV of the SSL TLV: the five the spec defines are kept, others skipped. */
static int tlv_ssl(rd_t *r, size_t at, size_t l)
{
    gw_pp_result_t *o = r->out;
    switch (r->b[at]) {
    case GW_PP2_SUBTYPE_SSL_VERSION:
        return keep(r, at, GW_PP_SEEN_SSL_VERSION, &o->ssl_version, l);
    case GW_PP2_SUBTYPE_SSL_CN:
        return keep(r, at, GW_PP_SEEN_SSL_CN, &o->ssl_cn, l);
    case GW_PP2_SUBTYPE_SSL_CIPHER:
        return keep(r, at, GW_PP_SEEN_SSL_CIPHER, &o->ssl_cipher, l);
    case GW_PP2_SUBTYPE_SSL_SIG_ALG:
        return keep(r, at, GW_PP_SEEN_SSL_SIG_ALG, &o->ssl_sig_alg, l);
    case GW_PP2_SUBTYPE_SSL_KEY_ALG:
        return keep(r, at, GW_PP_SEEN_SSL_KEY_ALG, &o->ssl_key_alg, l);
    default:
        return OK;
    }
}

/* The TLVs filling B[AT..END) exactly: each one's length is checked against what is left of
 * its container (the header, or the SSL TLV for its sub-TLVs), never against what was read. */
static int read_tlvs(rd_t *r, size_t at, size_t end, bool ssl)
{
    while (at < end) {
        if (end - at < 3)
            return fail(r, at, GW_PP_EV2TLVOVERRUN);
        size_t l = (size_t)r->b[at + 1] << 8 | r->b[at + 2];
        if (l > end - at - 3)
            return fail(r, at, GW_PP_EV2TLVOVERRUN);
        int rc = ssl ? tlv_ssl(r, at, l) : tlv_top(r, at, l);
        if (rc != OK)
            return rc;
        at += 3 + l;
    }
    return OK;
}

static void v2_addrs(rd_t *r)
{
    gw_pp_result_t *o = r->out;
    const uint8_t *a = r->b + GW_PP_V2_HDR;
    if (o->v2_family == 0x11) {
        struct sockaddr_in *s = (struct sockaddr_in *)&o->src, *d = (struct sockaddr_in *)&o->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&d->sin_addr, a + 4, 4);
        memcpy(&s->sin_port, a + 8, 2);
        memcpy(&d->sin_port, a + 10, 2);
        o->family = GW_PP_TCP4;
    } else if (o->v2_family == 0x21) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&o->src;
        struct sockaddr_in6 *d = (struct sockaddr_in6 *)&o->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&d->sin6_addr, a + 16, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        memcpy(&d->sin6_port, a + 34, 2);
        o->family = GW_PP_TCP6;
    }
}

/* The signature was read: the fixed fields, each checked as soon as it is in, then the
 * whole header once its length is. */
static int v2_parse(rd_t *r)
{
    const uint8_t *b = r->b;
    gw_pp_result_t *o = r->out;
    r->min_total = GW_PP_V2_HDR;
    if (r->n < 13)
        return MORE;
    if (b[12] >> 4 != 2)
        return fail(r, 12, GW_PP_EV2VERSION);
    if ((b[12] & 0x0f) > GW_PP_PROXY)
        return fail(r, 12, GW_PP_EV2COMMAND);
    if (r->n < 14)
        return MORE;
    int alen = v2_addr_len(b[13]);
    if (alen < 0)
        return fail(r, 13, GW_PP_EV2FAMILY);
    if (r->n >= 15 && (size_t)b[14] << 8 > GW_PP_V2_LEN_MAX)
        return fail(r, 14, GW_PP_EV2TOOBIG);
    if (r->n < 16)
        return MORE;
    size_t len = (size_t)b[14] << 8 | b[15];
    gw_pp_command_t cmd = (gw_pp_command_t)(b[12] & 0x0f);
    if (len > GW_PP_V2_LEN_MAX)
        return fail(r, 14, GW_PP_EV2TOOBIG);
    if (cmd == GW_PP_PROXY && len < (size_t)alen)
        return fail(r, 14, GW_PP_EV2SHORTADDR);
    r->min_total = GW_PP_V2_HDR + len;
    if (r->n < r->min_total)
        return MORE;
    o->len = r->min_total;
    o->command = cmd;
    o->v2_family = b[13];
    if (cmd == GW_PP_LOCAL || b[13] == 0x00) /* addresses and TLVs are ignored: skipped */
        return OK;
    v2_addrs(r);
    o->tlvs = (gw_pp_span_t){(uint16_t)(GW_PP_V2_HDR + alen), (uint16_t)(len - (size_t)alen)};
    return read_tlvs(r, GW_PP_V2_HDR + (size_t)alen, o->len, false);
}

/* ---- the reader ------------------------------------------------------------------------ */

/* see proxyproto.h */
int gw_pp_parse(const uint8_t *buf, size_t len, unsigned accept, gw_pp_result_t *out)
{
    rd_t r = {buf, len, 0, (accept & GW_PP_V1) || !(accept & GW_PP_V2) ? V1_MIN : GW_PP_V2_HDR,
              out};
    size_t bad1 = 0, bad2 = 0;
    memset(out, 0, sizeof *out);
    int m1 = match(buf, len, 0, V1_SIG, V1_SIG_LEN, &bad1);
    int m2 = match(buf, len, 0, (const char *)V2_SIG, sizeof V2_SIG, &bad2);
    int rc;
    if (m1 < 0 && m2 < 0)
        return fail(&r, bad1 > bad2 ? bad1 : bad2, GW_PP_EBADSIG);
    if (m1 == 1 || m2 == 1) {
        unsigned v = m1 == 1 ? 1 : 2;
        if (!(accept & (v == 1 ? GW_PP_V1 : GW_PP_V2)))
            return fail(&r, 0, GW_PP_ENOTACCEPTED);
        out->version = v;
        r.min_total = v == 1 ? V1_MIN : GW_PP_V2_HDR;
        rc = v == 1 ? v1_parse(&r) : v2_parse(&r);
    } else {
        if (m1 < 0) /* only the v2 signature is still possible */
            r.min_total = GW_PP_V2_HDR;
        else if (m2 < 0)
            r.min_total = V1_MIN;
        rc = MORE;
    }
    if (rc == MORE) {
        out->need = r.min_total > len ? r.min_total - len : 1;
        return 0;
    }
    return rc < 0 ? rc : (int)out->len;
}

/* see proxyproto.h */
const char *gw_pp_strerror(int rc)
{
    static const char *const names[GW_PP_ERROR_COUNT] = {
        "bad_signature",  "version_not_accepted", "v1_too_long",      "v1_bad_protocol",
        "v1_bad_address", "v1_bad_port",          "v1_bad_line_end",  "v2_bad_version",
        "v2_bad_command", "v2_bad_family",        "v2_short_address", "v2_too_big",
        "v2_tlv_overrun", "v2_bad_tlv",           "v2_bad_crc32c",
    };
    if (rc > 0)
        return "done";
    if (rc == 0)
        return "need_more";
    if (rc < -GW_PP_ERROR_COUNT)
        return "unknown";
    return names[-rc - 1];
}

/* see proxyproto.h */
bool gw_pp_tlv_next(const uint8_t *buf, gw_pp_span_t block, size_t *pos, gw_pp_tlv_t *t)
{
    size_t at = (size_t)block.off + *pos, end = (size_t)block.off + block.len;
    if (at >= end || end - at < 3)
        return false;
    size_t l = (size_t)buf[at + 1] << 8 | buf[at + 2];
    if (l > end - at - 3) /* not a block the parser checked: stop rather than overrun */
        return false;
    t->type = buf[at];
    t->value = (gw_pp_span_t){(uint16_t)(at + 3), (uint16_t)l};
    *pos += 3 + l;
    return true;
}

/* ---- the writers ----------------------------------------------------------------------- */

/* Two endpoints in one family, addresses as bytes and ports in network order. */
typedef struct {
    int af; /* AF_INET, AF_INET6 or AF_UNSPEC (nothing to say) */
    uint8_t addr[2][16];
    uint8_t port[2][2];
} pair_t;

/* SRC and DST as a pair: both IPv4, both IPv6, or one of each with the IPv4 one mapped into
 * IPv6 (::ffff:a.b.c.d), which is what HAProxy sends then. */
static void to_pair(const struct sockaddr *src, const struct sockaddr *dst, pair_t *p)
{
    const struct sockaddr *sa[2] = {src, dst};
    int v6 = 0;
    memset(p, 0, sizeof *p);
    for (int k = 0; k < 2; k++) {
        if (sa[k] == NULL || (sa[k]->sa_family != AF_INET && sa[k]->sa_family != AF_INET6))
            return;
        v6 += sa[k]->sa_family == AF_INET6;
    }
    p->af = v6 ? AF_INET6 : AF_INET;
    for (int k = 0; k < 2; k++) {
        if (sa[k]->sa_family == AF_INET6) {
            const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa[k];
            memcpy(p->addr[k], &s6->sin6_addr, 16);
            memcpy(p->port[k], &s6->sin6_port, 2);
            continue;
        }
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa[k];
        uint8_t *a = p->addr[k];
        if (v6) { /* ::ffff:a.b.c.d */
            a[10] = a[11] = 0xff;
            a += 12;
        }
        memcpy(a, &s4->sin_addr, 4);
        memcpy(p->port[k], &s4->sin_port, 2);
    }
}

static unsigned port_of(const uint8_t p[2])
{
    return (unsigned)p[0] << 8 | p[1];
}

/* see proxyproto.h */
size_t gw_pp_write_v1(uint8_t *buf, size_t cap, const struct sockaddr *src,
                      const struct sockaddr *dst)
{
    char line[GW_PP_V1_MAX + 1], a[2][INET6_ADDRSTRLEN];
    pair_t p;
    int n;
    to_pair(src, dst, &p);
    if (p.af == AF_UNSPEC || inet_ntop(p.af, p.addr[0], a[0], sizeof a[0]) == NULL ||
        inet_ntop(p.af, p.addr[1], a[1], sizeof a[1]) == NULL)
        n = snprintf(line, sizeof line, "PROXY UNKNOWN\r\n");
    else
        n = snprintf(line, sizeof line, "PROXY %s %s %s %u %u\r\n",
                     p.af == AF_INET ? "TCP4" : "TCP6", a[0], a[1], port_of(p.port[0]),
                     port_of(p.port[1]));
    if (n < 0 || (size_t)n >= sizeof line || (size_t)n > cap)
        return 0;
    memcpy(buf, line, (size_t)n);
    return (size_t)n;
}

/* see proxyproto.h */
size_t gw_pp_write_tlv(uint8_t *buf, size_t cap, uint8_t type, const void *value, uint16_t len)
{
    if (cap < 3 || cap - 3 < len)
        return 0;
    buf[0] = type;
    buf[1] = (uint8_t)(len >> 8);
    buf[2] = (uint8_t)len;
    if (len > 0)
        memcpy(buf + 3, value, len);
    return 3 + (size_t)len;
}

/* The bytes the N TLVS take, or 0 when they would pass the limit or a CRC32C is wrong. */
static size_t tlvs_size(const gw_pp_out_tlv_t *tlvs, size_t n, size_t room)
{
    size_t total = 0, crcs = 0;
    for (size_t k = 0; k < n; k++) {
        if (tlvs[k].type == GW_PP2_TYPE_CRC32C && (tlvs[k].len != 4 || ++crcs > 1))
            return SIZE_MAX;
        total += 3 + (size_t)tlvs[k].len;
        if (total > room)
            return SIZE_MAX;
    }
    return total;
}

/* see proxyproto.h */
size_t gw_pp_write_v2(uint8_t *buf, size_t cap, gw_pp_command_t command, const struct sockaddr *src,
                      const struct sockaddr *dst, const gw_pp_out_tlv_t *tlvs, size_t n)
{
    static const uint8_t zeros[4];
    pair_t p;
    to_pair(command == GW_PP_PROXY ? src : NULL, dst, &p);
    size_t w = p.af == AF_INET ? 4 : p.af == AF_INET6 ? 16 : 0; /* one address's bytes */
    size_t alen = w == 0 ? 0 : 2 * w + 4;
    size_t tl = tlvs_size(tlvs, n, GW_PP_V2_LEN_MAX - alen);
    if (tl == SIZE_MAX || cap < GW_PP_V2_HDR + alen + tl)
        return 0;
    size_t len = alen + tl, at = GW_PP_V2_HDR, crc_at = 0;
    memcpy(buf, V2_SIG, sizeof V2_SIG);
    buf[12] = (uint8_t)(0x20 | (command == GW_PP_PROXY ? 1 : 0));
    buf[13] = p.af == AF_INET ? 0x11 : p.af == AF_INET6 ? 0x21 : 0x00;
    buf[14] = (uint8_t)(len >> 8);
    buf[15] = (uint8_t)len;
    for (size_t k = 0; k < 2 && w > 0; k++) { /* src, dst, then their ports */
        memcpy(buf + at + k * w, p.addr[k], w);
        memcpy(buf + at + 2 * w + 2 * k, p.port[k], 2);
    }
    at += alen;
    for (size_t k = 0; k < n; k++) {
        bool crc = tlvs[k].type == GW_PP2_TYPE_CRC32C;
        crc_at = crc ? at + 3 : crc_at;
        at += gw_pp_write_tlv(buf + at, cap - at, tlvs[k].type, crc ? zeros : tlvs[k].value,
                              tlvs[k].len);
    }
    if (crc_at != 0) {
        uint32_t c = gw_pp_crc32c(0, buf, at);
        uint8_t be[4] = {(uint8_t)(c >> 24), (uint8_t)(c >> 16), (uint8_t)(c >> 8), (uint8_t)c};
        memcpy(buf + crc_at, be, 4);
    }
    return at;
}

/* see proxyproto.h. Bit by bit: a header is at most GW_PP_MAX bytes, read once per
 * connection, so a 1 KiB table would buy nothing worth its cache lines. */
uint32_t gw_pp_crc32c(uint32_t crc, const void *p, size_t n)
{
    const uint8_t *b = p;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= b[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return ~crc;
}
