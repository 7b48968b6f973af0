/* addr.c - parse and format IPv4/IPv6 socket addresses. */
#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "error.h"
#include "loadio.h"

/* Longest host part we accept: a DNS name is at most 253 characters. */
#define HOST_MAX 255

/* Parses the decimal port in P (digits only, no sign, no spaces). */
static int parse_port(const char *p, bool allow_port0, unsigned *port, const char **why)
{
    unsigned v = 0;
    if (*p == '\0') {
        *why = "missing port after ':'";
        return GW_EINVAL;
    }
    for (; *p; p++) {
        if (*p < '0' || *p > '9') {
            *why = "port must be a number 1..65535";
            return GW_EINVAL;
        }
        v = v * 10 + (unsigned)(*p - '0');
        if (v > 65535) {
            *why = "port must be 1..65535";
            return GW_EINVAL;
        }
    }
    if (v == 0 && !allow_port0) {
        *why = "port 0 is not allowed (use 1..65535)";
        return GW_EINVAL;
    }
    *port = v;
    return 0;
}

static void set_v4(gw_addr_t *out, const struct in_addr *ip, unsigned port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
    memset(out, 0, sizeof(*out));
    sin->sin_family = AF_INET;
    sin->sin_addr = *ip;
    sin->sin_port = htons((uint16_t)port);
    out->len = sizeof(*sin);
}

/* Copies the sockaddr from AI (IPv4 or IPv6) into OUT with PORT. */
static void set_from_ai(gw_addr_t *out, const struct addrinfo *ai, unsigned port)
{
    memset(out, 0, sizeof(*out));
    memcpy(&out->ss, ai->ai_addr, ai->ai_addrlen);
    out->len = (socklen_t)ai->ai_addrlen;
    if (ai->ai_family == AF_INET)
        ((struct sockaddr_in *)&out->ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&out->ss)->sin6_port = htons((uint16_t)port);
}

/* "[v6]:port". getaddrinfo with AI_NUMERICHOST rather than inet_pton, because only it
 * understands a zone index ("fe80::1%eth0"), and it never touches DNS with that flag. */
static int parse_v6(const char *text, bool allow_port0, gw_addr_t *out, const char **why)
{
    char host[HOST_MAX + 1];
    const char *close = strchr(text, ']');
    unsigned port;
    if (!close) {
        *why = "missing ']' after the IPv6 address";
        return GW_EINVAL;
    }
    if (close[1] != ':') {
        *why = close[1] ? "expected ':' after ']'" : "missing port (expected [IPv6]:PORT)";
        return GW_EINVAL;
    }
    size_t n = (size_t)(close - text - 1);
    if (n == 0 || n > HOST_MAX) {
        *why = "bad IPv6 address";
        return GW_EINVAL;
    }
    memcpy(host, text + 1, n);
    host[n] = '\0';
    int rc = parse_port(close + 2, allow_port0, &port, why);
    if (rc)
        return rc;
    struct addrinfo hints = {.ai_family = AF_INET6, .ai_flags = AI_NUMERICHOST}, *res;
    if (getaddrinfo(host, NULL, &hints, &res) != 0) {
        *why = "bad IPv6 address";
        return GW_EINVAL;
    }
    set_from_ai(out, res, port);
    freeaddrinfo(res);
    return 0;
}

/* True when HOST has only digits and dots: meant as an IPv4 address, never a name. */
static bool looks_v4(const char *host)
{
    for (; *host; host++)
        if ((*host < '0' || *host > '9') && *host != '.')
            return false;
    return true;
}

/* Letters, digits, '-', '_' and '.': anything else cannot be a host name, and rejecting
 * it here gives a clearer message than the resolver would. */
static bool valid_name(const char *host)
{
    for (; *host; host++) {
        char c = *host;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.';
        if (!ok)
            return false;
    }
    return true;
}

/* see addr.h. Prefers the first IPv4 result (backends and listeners on "localhost" then
 * behave the same whatever order the resolver returns). No AI_ADDRCONFIG: with only a
 * loopback interface (containers, network namespaces) it would make "localhost" fail. */
int gw_addr_resolve_system(const char *host, unsigned port, gw_addr_t *out, const char **why)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        *why = gai_strerror(rc);
        return GW_ERESOLVE;
    }
    const struct addrinfo *pick = NULL;
    for (ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
        if (ai->ai_family == AF_INET6 && !pick)
            pick = ai;
    }
    if (pick)
        set_from_ai(out, pick, port);
    freeaddrinfo(res);
    if (!pick) {
        *why = "no IPv4 or IPv6 address for this name";
        return GW_ERESOLVE;
    }
    return 0;
}

/* "host:port" where host is an IPv4 address or a name. */
static int parse_host_port(const char *text, bool allow_resolve, bool allow_port0, gw_addr_t *out,
                           const char **why)
{
    char host[HOST_MAX + 1];
    const char *colon = strrchr(text, ':');
    unsigned port;
    if (!colon) {
        *why = "missing port (expected HOST:PORT, e.g. 127.0.0.1:8080)";
        return GW_EINVAL;
    }
    if (memchr(text, ':', (size_t)(colon - text))) {
        *why = "an IPv6 address needs brackets, e.g. [::1]:8080";
        return GW_EINVAL;
    }
    size_t n = (size_t)(colon - text);
    if (n == 0) {
        *why = "missing host before ':' (use 0.0.0.0 for every address)";
        return GW_EINVAL;
    }
    if (n > HOST_MAX) {
        *why = "host name too long";
        return GW_EINVAL;
    }
    memcpy(host, text, n);
    host[n] = '\0';
    int rc = parse_port(colon + 1, allow_port0, &port, why);
    if (rc)
        return rc;
    if (looks_v4(host)) {
        struct in_addr ip;
        if (inet_pton(AF_INET, host, &ip) != 1) {
            *why = "bad IPv4 address (four numbers 0..255 separated by dots)";
            return GW_EINVAL;
        }
        set_v4(out, &ip, port);
        return 0;
    }
    if (!valid_name(host)) {
        *why = "bad host name";
        return GW_EINVAL;
    }
    if (!allow_resolve) {
        *why = "a host name is not allowed here (use an IP address)";
        return GW_EINVAL;
    }
    return gw_loadio()->resolve(host, port, out, why); /* a test may replace the resolver */
}

/* see addr.h */
int gw_addr_parse(const char *text, bool allow_resolve, bool allow_port0, gw_addr_t *out,
                  const char **why)
{
    const char *dummy;
    gw_addr_t tmp;
    if (!why)
        why = &dummy;
    *why = NULL;
    if (!text || !*text) {
        *why = "empty address";
        return GW_EINVAL;
    }
    /* Parse into TMP so that a failure leaves *OUT unchanged. */
    int rc = text[0] == '[' ? parse_v6(text, allow_port0, &tmp, why)
                            : parse_host_port(text, allow_resolve, allow_port0, &tmp, why);
    if (rc == 0)
        *out = tmp;
    return rc;
}

/* see addr.h */
char *gw_addr_format_sa(const struct sockaddr *sa, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN];
    if (size == 0)
        return buf;
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        snprintf(buf, size, "%s:%u", ip, (unsigned)ntohs(sin->sin_port));
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        char zone[IF_NAMESIZE + 12] = ""; /* "%" + a name or a number */
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        if (sin6->sin6_scope_id) {
            char ifname[IF_NAMESIZE];
            if (if_indextoname(sin6->sin6_scope_id, ifname))
                snprintf(zone, sizeof(zone), "%%%s", ifname);
            else
                snprintf(zone, sizeof(zone), "%%%u", (unsigned)sin6->sin6_scope_id);
        }
        snprintf(buf, size, "[%s%s]:%u", ip, zone, (unsigned)ntohs(sin6->sin6_port));
    } else {
        snprintf(buf, size, "?");
    }
    return buf;
}

/* see addr.h */
char *gw_addr_format(const gw_addr_t *a, char *buf, size_t size)
{
    return gw_addr_format_sa((const struct sockaddr *)&a->ss, buf, size);
}

/* see addr.h */
unsigned gw_addr_port(const gw_addr_t *a)
{
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    if (a->ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
    return 0;
}

/* see addr.h */
bool gw_addr_equal(const gw_addr_t *a, const gw_addr_t *b)
{
    if (a->ss.ss_family != b->ss.ss_family)
        return false;
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)&a->ss;
        const struct sockaddr_in *y = (const struct sockaddr_in *)&b->ss;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&a->ss;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)&b->ss;
        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

/* see addr.h */
bool gw_addr_is_loopback(const gw_addr_t *a)
{
    if (a->ss.ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr) >> 24) == 127;
    if (a->ss.ss_family == AF_INET6) {
        const struct in6_addr *ip = &((const struct sockaddr_in6 *)&a->ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(ip) || (IN6_IS_ADDR_V4MAPPED(ip) && ip->s6_addr[12] == 127);
    }
    return false;
}

/* see addr.h */
bool gw_addr_is_unspecified(const gw_addr_t *a)
{
    if (a->ss.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (a->ss.ss_family == AF_INET6) {
        const struct in6_addr *ip = &((const struct sockaddr_in6 *)&a->ss)->sin6_addr;
        static const uint8_t mapped_any[16] = {[10] = 0xff, [11] = 0xff};
        return IN6_IS_ADDR_UNSPECIFIED(ip) || memcmp(ip->s6_addr, mapped_any, 16) == 0;
    }
    return false;
}
