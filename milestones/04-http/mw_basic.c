/* mw_basic.c - request id, forwarded headers, header rules and prefix rewrite. */
#include "mw_basic.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "error.h"
#include "out.h"

#define CHAIN_MAX 4096 /* cap on a rebuilt X-Forwarded-For/Forwarded value */
#define TARGET_MAX 8192

/* ---- request id ---------------------------------------------------------------------- */

/* see mw_basic.h */
bool gw_mw_request_id_sane(const char *s, size_t n)
{
    if (n == 0 || n > GW_MW_REQID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false; /* a log line or a backend must never see spaces, quotes or CR */
    }
    return true;
}

/* see mw_basic.h */
void gw_mw_request_id_fresh(const uint8_t rnd[16], char out[33])
{
    static const char hex[] = "0123456789abcdef";
    for (size_t n = 0; n < 16; n++) {
        out[2 * n] = hex[rnd[n] >> 4];
        out[2 * n + 1] = hex[rnd[n] & 0xf];
    }
    out[32] = '\0';
}

/* see mw_basic.h */
int gw_mw_request_id(gw_h1_head_t *req, const uint8_t rnd[16], char out[GW_MW_REQID_MAX + 1])
{
    gw_h1_span_t v;
    char id[GW_MW_REQID_MAX + 1];
    size_t n;

    if (gw_h1_head_get(req, "X-Request-ID", &v) && gw_mw_request_id_sane(v.ptr, v.len)) {
        n = v.len;
        memcpy(id, v.ptr, n); /* copy first: set() may move the arena under v */
        id[n] = '\0';
    } else {
        gw_mw_request_id_fresh(rnd, id);
        n = 32;
    }
    /* set, not add: a second, different id from the client would split the trace */
    int rc = gw_h1_head_set(req, "X-Request-ID", id, n);
    if (rc == 0)
        memcpy(out, id, n + 1);
    return rc;
}

/* ---- CIDR ---------------------------------------------------------------------------- */

static int parse_bits(const char *s, unsigned max, unsigned *bits)
{
    unsigned v = 0;
    size_t i = 0;
    if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0'))
        return GW_EINVAL; /* "", "08": one spelling per prefix length */
    for (; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 3)
            return GW_EINVAL;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > max)
        return GW_EINVAL;
    *bits = v;
    return 0;
}

/* True if no bit of A at or after BITS is set (A is NBYTES long). */
static bool host_bits_clear(const uint8_t *a, size_t nbytes, unsigned bits)
{
    for (size_t i = 0; i < nbytes; i++) {
        unsigned keep = bits >= 8 * (i + 1) ? 8 : (bits > 8 * i ? bits - 8 * (unsigned)i : 0);
        uint8_t mask = (uint8_t)(keep == 8 ? 0xff : (0xff00u >> keep) & 0xff);
        if (a[i] & (uint8_t)~mask)
            return false;
    }
    return true;
}

/* see mw_basic.h */
int gw_cidr_parse(const char *s, gw_cidr_t *out)
{
    char addr[INET6_ADDRSTRLEN];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    gw_cidr_t c;

    if (alen == 0 || alen >= sizeof(addr))
        return GW_EINVAL;
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    memset(&c, 0, sizeof(c));
    /* inet_pton refuses spaces, leading zeros in IPv4 octets and zone ids: good for config */
    if (inet_pton(AF_INET, addr, c.addr) == 1)
        c.family = AF_INET;
    else if (inet_pton(AF_INET6, addr, c.addr) == 1)
        c.family = AF_INET6;
    else
        return GW_EINVAL;
    unsigned max = c.family == AF_INET ? 32 : 128;
    c.bits = max;
    if (slash && parse_bits(slash + 1, max, &c.bits) != 0)
        return GW_EINVAL;
    /* "10.0.0.1/8" is most likely a typo for a host; refuse rather than guess */
    if (!host_bits_clear(c.addr, max / 8, c.bits))
        return GW_EINVAL;
    *out = c;
    return 0;
}

/* see mw_basic.h */
bool gw_cidr_contains(const gw_cidr_t *c, const struct sockaddr *sa)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const uint8_t *a;
    int family = sa->sa_family;

    if (family == AF_INET) {
        a = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    } else if (family == AF_INET6) {
        a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
        /* a dual-stack listener shows IPv4 clients as ::ffff:a.b.c.d */
        if (memcmp(a, mapped, 12) == 0) {
            a += 12;
            family = AF_INET;
        }
    } else {
        return false;
    }
    if (family != c->family)
        return false;
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(a, c->addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff00u >> rest);
    return (a[full] & mask) == c->addr[full];
}

/* ---- forwarded headers --------------------------------------------------------------- */

/* Writes the peer's address into BUF (INET6_ADDRSTRLEN bytes), NUL-terminated: the text
 * X-Forwarded-For carries, and from which forwarded_element makes an RFC 7239 node. */
static int format_peer(const struct sockaddr *sa, char *buf, size_t cap)
{
    const void *a = sa->sa_family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
        return GW_EINVAL;
    return inet_ntop(sa->sa_family, a, buf, (socklen_t)cap) != NULL ? 0 : GW_ELIMIT;
}

/* LAB 04: forwarded headers */

/* The trust decision. X-Forwarded-For and Forwarded are plain text the client can write:
 * "X-Forwarded-For: 10.0.0.1" from the Internet would make a backend that allow-lists
 * internal addresses, rate-limits per client, or logs the client for an audit believe a
 * lie. Only a proxy we run (a listed CIDR) has seen the real client, so only its chain is
 * extended; for anyone else the chain starts over at the TCP peer, which cannot be forged.
 * Dropping (not passing on) the forged value matters even for backends that read "the
 * last entry": some read the first one. */
static int set_chain(gw_h1_head_t *req, const char *name, bool trusted, const char *item)
{
    char buf[CHAIN_MAX];
    size_t len = 0, n = strlen(item);
    /* trusted: join every incoming line with ", " (RFC 9110 5.3 makes them one list) */
    for (long i = trusted ? gw_h1_head_find(req, name, 0) : -1; i >= 0;
         i = gw_h1_head_find(req, name, (size_t)i + 1)) {
        gw_h1_span_t v = gw_h1_head_value_at(req, (size_t)i);
        if (v.len == 0)
            continue;
        if (len + v.len + 2 >= sizeof(buf))
            return GW_ELIMIT; /* a chain this long is abuse, not a proxy path */
        memcpy(buf + len, v.ptr, v.len);
        memcpy(buf + len + v.len, ", ", 2);
        len += v.len + 2;
    }
    if (len + n >= sizeof(buf))
        return GW_ELIMIT;
    memcpy(buf + len, item, n);
    /* set replaces every old line: an untrusted client's value is gone, not kept aside */
    return gw_h1_head_set(req, name, buf, len + n);
}

/* X-Forwarded-Proto and -Host: a trusted proxy's value describes the client's original
 * request and wins; from anyone else they are what this listener saw. */
static int set_single(gw_h1_head_t *req, const char *name, bool trusted, const char *ours, size_t n)
{
    if (trusted && gw_h1_head_find(req, name, 0) >= 0)
        return 0;
    if (ours == NULL) {
        gw_h1_head_remove(req, name);
        return 0;
    }
    return gw_h1_head_set(req, name, ours, n);
}

/* END LAB */

/* Builds the Forwarded element for this hop from IP (format_peer's text):
 * for=...;proto=...;host=... An IPv6 node is "[...]" in quotes (':' is no token character);
 * a host that is not a token is quoted too (RFC 7239 4). */
static int forwarded_element(const gw_mw_peer_t *peer, const char *ip, gw_h1_span_t host,
                             bool has_host, char *buf, size_t cap)
{
    bool v6 = peer->addr->sa_family == AF_INET6;
    gw_out_t o = gw_out(buf, cap);
    gw_out_str(&o, v6 ? "for=\"[" : "for=");
    gw_out_str(&o, ip);
    gw_out_str(&o, v6 ? "]\";proto=" : ";proto=");
    gw_out_str(&o, peer->tls ? "https" : "http");
    if (has_host) {
        /* Host has no '"' or '\\' that could break the quotes only if it is sane; a host
         * with them was refused by the parser, but check rather than trust that */
        if (memchr(host.ptr, '"', host.len) || memchr(host.ptr, '\\', host.len))
            return GW_EINVAL;
        bool quote = !gw_h1_is_token(host.ptr, host.len);
        gw_out_str(&o, quote ? ";host=\"" : ";host=");
        gw_out_put(&o, host.ptr, host.len);
        gw_out_str(&o, quote ? "\"" : "");
    }
    return gw_out_end(&o) ? 0 : GW_ELIMIT;
}

/* see mw_basic.h */
bool gw_mw_peer_trusted(const gw_mw_peer_t *peer)
{
    for (size_t i = 0; i < peer->ntrusted; i++)
        if (gw_cidr_contains(&peer->trusted[i], peer->addr))
            return true;
    return false;
}

/* see mw_basic.h */
int gw_mw_forwarded(gw_h1_head_t *req, const gw_mw_peer_t *peer)
{
    char ip[INET6_ADDRSTRLEN], elem[INET6_ADDRSTRLEN + 300], host[256];
    gw_h1_span_t h;
    bool trusted = gw_mw_peer_trusted(peer);
    const char *proto = peer->tls ? "https" : "http";
    int rc = format_peer(peer->addr, ip, sizeof(ip));
    if (rc != 0)
        return rc;

    bool has_host = gw_h1_head_get(req, "Host", &h) && h.len > 0 && h.len < sizeof(host);
    size_t hlen = has_host ? h.len : 0;
    if (has_host)
        memcpy(host, h.ptr, hlen); /* the arena may move while we add fields */
    h.ptr = host;
    h.len = hlen;
    rc = forwarded_element(peer, ip, h, has_host, elem, sizeof(elem));
    if (rc == 0)
        rc = set_chain(req, "X-Forwarded-For", trusted, ip);
    if (rc == 0)
        rc = set_chain(req, "Forwarded", trusted, elem);
    if (rc == 0)
        rc = set_single(req, "X-Forwarded-Proto", trusted, proto, strlen(proto));
    if (rc == 0)
        rc = set_single(req, "X-Forwarded-Host", trusted, has_host ? host : NULL, hlen);
    if (rc == 0)
        rc = gw_h1_head_add(req, "Via", 3, "1.1 gw", 6);
    return rc;
}

/* Parses S[0..N) (no spaces) as one plain IPv4 or IPv6 address into *SS. */
static bool parse_ip(const char *s, size_t n, struct sockaddr_storage *ss)
{
    char ip[INET6_ADDRSTRLEN];
    if (n == 0 || n >= sizeof(ip))
        return false;
    memcpy(ip, s, n);
    ip[n] = '\0';
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)(void *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)(void *)ss;
    if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        return true;
    }
    return false;
}

/* The client behind a trusted proxy, from the incoming X-Forwarded-For lines: walks the
 * joined chain from its right end, past every trusted address, into *OUT. False when there
 * is no chain, it is too long, or an entry is not an address (then nothing in it is
 * believed). */
static bool client_from_chain(const gw_h1_head_t *req, const gw_mw_peer_t *peer,
                              struct sockaddr_storage *out)
{
    char buf[CHAIN_MAX];
    size_t len = 0;
    for (long i = gw_h1_head_find(req, "X-Forwarded-For", 0); i >= 0;
         i = gw_h1_head_find(req, "X-Forwarded-For", (size_t)i + 1)) {
        gw_h1_span_t v = gw_h1_head_value_at(req, (size_t)i);
        if (len + v.len + 1 >= sizeof(buf))
            return false;
        buf[len++] = ',';
        memcpy(buf + len, v.ptr, v.len);
        len += v.len;
    }
    bool found = false;
    gw_mw_peer_t hop = *peer;
    while (len > 0) {
        size_t end = len, start = end;
        while (start > 0 && buf[start - 1] != ',')
            start--;
        len = start > 0 ? start - 1 : 0;
        while (start < end && (buf[start] == ' ' || buf[start] == '\t'))
            start++;
        while (end > start && (buf[end - 1] == ' ' || buf[end - 1] == '\t'))
            end--;
        if (end == start)
            continue; /* empty list elements are allowed (RFC 9110 5.6.1) */
        if (!parse_ip(buf + start, end - start, out))
            return false;
        found = true;
        hop.addr = (const struct sockaddr *)out;
        if (!gw_mw_peer_trusted(&hop))
            return true;
    }
    return found; /* every hop trusted: the leftmost is as far as anyone saw */
}

/* see mw_basic.h */
int gw_mw_real_ip(gw_h1_head_t *req, const gw_mw_peer_t *peer, bool set)
{
    bool trusted = gw_mw_peer_trusted(peer);
    if (!set) {
        if (!trusted)
            gw_h1_head_remove(req, "X-Real-IP");
        return 0;
    }
    struct sockaddr_storage ss;
    const struct sockaddr *client = peer->addr;
    gw_h1_span_t v;
    if (trusted) {
        if (gw_h1_head_get(req, "X-Real-IP", &v)) {
            if (parse_ip(v.ptr, v.len, &ss))
                client = (const struct sockaddr *)&ss;
        } else if (client_from_chain(req, peer, &ss)) {
            client = (const struct sockaddr *)&ss;
        }
    }
    char ip[INET6_ADDRSTRLEN];
    int rc = format_peer(client, ip, sizeof(ip));
    return rc == 0 ? gw_h1_head_set(req, "X-Real-IP", ip, strlen(ip)) : rc;
}

/* ---- header rules -------------------------------------------------------------------- */

/* see mw_basic.h */
int gw_mw_header_rules(gw_h1_head_t *h, const gw_mw_header_rules_t *r)
{
    int rc = 0;
    /* remove first, so a rule pair "remove X, add X" yields exactly the configured value */
    for (size_t i = 0; i < r->nremove; i++)
        gw_h1_head_remove(h, r->remove[i]);
    for (size_t i = 0; i < r->nset && rc == 0; i++)
        rc = gw_h1_head_set(h, r->set[i].name, r->set[i].value, strlen(r->set[i].value));
    for (size_t i = 0; i < r->nadd && rc == 0; i++)
        rc = gw_h1_head_add(h, r->add[i].name, strlen(r->add[i].name), r->add[i].value,
                            strlen(r->add[i].value));
    return rc;
}

/* ---- strip prefix / rewrite ---------------------------------------------------------- */

static int fail(gw_pathnorm_t *res, int status, const char *reason)
{
    memset(res, 0, sizeof(*res));
    res->status = status;
    res->reason = reason;
    return -1;
}

/* see mw_basic.h */
int gw_mw_rewrite_prefix(gw_h1_head_t *req, const char *prefix, const char *replace,
                         gw_pathnorm_t *res)
{
    char joined[TARGET_MAX], out[TARGET_MAX];
    gw_h1_span_t t = gw_h1_head_target(req);
    size_t plen = strlen(prefix), rlen = replace ? strlen(replace) : 0, len = 0;
    const char *q = memchr(t.ptr, '?', t.len);
    size_t path_len = q ? (size_t)(q - t.ptr) : t.len;

    /* "/api" must not match "/apix": the next byte is the end of the path or a '/' */
    if (path_len < plen || memcmp(t.ptr, prefix, plen) != 0)
        return 0;
    if (path_len > plen && t.ptr[plen] != '/' && (plen == 0 || prefix[plen - 1] != '/'))
        return 0;
    const char *rest = t.ptr + plen;
    size_t nrest = t.len - plen;
    if (rlen + nrest + 3 > sizeof(joined))
        return fail(res, 414, "rewritten target too long");
    /* the result must start with '/': stripping "/api" from "/api?x" leaves "?x" */
    if (rlen == 0 ? (nrest == 0 || rest[0] != '/') : replace[0] != '/')
        joined[len++] = '/';
    memcpy(joined + len, replace ? replace : "", rlen);
    len += rlen;
    /* prefix "/api/" replaced by "/v2": keep the separator that the prefix swallowed */
    if (rlen > 0 && replace[rlen - 1] != '/' && nrest > 0 && rest[0] != '/' && rest[0] != '?')
        joined[len++] = '/';
    memcpy(joined + len, rest, nrest);
    len += nrest;
    /* normalise again: the replacement comes from config, and a replacement ending in
     * "/.." (or one that meets a ".." the client sent) must still not climb above the root */
    if (gw_path_normalize(joined, len, out, sizeof(out), res) != 0)
        return -1;
    if (gw_h1_head_set_target(req, out, res->len) != 0)
        return fail(res, 414, "rewritten target too long");
    return 1;
}
