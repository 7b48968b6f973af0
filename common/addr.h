/* addr.h - socket addresses: parse "IPv4:port", "[IPv6]:port" and "host:port" (resolved once,
 * at config load; never on the hot path) and format them back for logs. */
#ifndef GW_ADDR_H
#define GW_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define GW_ADDR_STRLEN 64 /* enough for "[ffff:...:ffff%scope]:65535" */

typedef struct gw_addr_s {
    struct sockaddr_storage ss; /* AF_INET or AF_INET6 */
    socklen_t len;              /* sizeof(struct sockaddr_in) or sizeof(struct sockaddr_in6) */
} gw_addr_t;

/* Parses TEXT into OUT. Accepted forms: "1.2.3.4:80", "[::1]:80", "localhost:80".
 * A host name is resolved with getaddrinfo (blocking: call only at load time) and the
 * first result is used, IPv4 preferred when ALLOW_RESOLVE is true; with ALLOW_RESOLVE
 * false a host name is an error. The port must be 1..65535 (0 is accepted only when
 * ALLOW_PORT0 is true: "pick a free port", used by tests).
 * Returns 0, or GW_EINVAL (with a reason in *WHY, a static string) or GW_ERESOLVE. */
int gw_addr_parse(const char *text, bool allow_resolve, bool allow_port0, gw_addr_t *out,
                  const char **why);

/* The resolver gw_addr_parse uses by default (through gw_loadio, loadio.h): getaddrinfo
 * for HOST, a name, with PORT into OUT. Returns 0, or GW_ERESOLVE with a reason in *WHY. */
int gw_addr_resolve_system(const char *host, unsigned port, gw_addr_t *out, const char **why);

/* Formats A as "1.2.3.4:80" or "[::1]:80" into BUF (at least GW_ADDR_STRLEN bytes).
 * Returns BUF. Never fails: an unknown family formats as "?". */
char *gw_addr_format(const gw_addr_t *a, char *buf, size_t size);

/* Same, for a raw sockaddr as returned by getpeername/uv_tcp_getpeername. */
char *gw_addr_format_sa(const struct sockaddr *sa, char *buf, size_t size);

/* Returns the port of A (host byte order). */
unsigned gw_addr_port(const gw_addr_t *a);

/* True when A and B have the same family, address and port. */
bool gw_addr_equal(const gw_addr_t *a, const gw_addr_t *b);

/* True when A is a loopback address, which only this host can reach: 127.0.0.0/8, ::1, or
 * 127.0.0.0/8 written as IPv4-mapped IPv6 (::ffff:127.x.y.z, which Linux delivers over the
 * IPv4 loopback). The unspecified addresses 0.0.0.0 and :: are NOT loopback: bound, they
 * listen on every interface. Neither is the deprecated IPv4-compatible ::127.0.0.1 (not a
 * local address on Linux) nor a link-local fe80::/10 one. */
bool gw_addr_is_loopback(const gw_addr_t *a);

/* True when A is 0.0.0.0 or :: (or ::ffff:0.0.0.0): "every interface" when bound. */
bool gw_addr_is_unspecified(const gw_addr_t *a);

#endif
