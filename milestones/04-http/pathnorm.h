/* pathnorm.h - normalise a request target's path once, so that the router, the middleware
 * and the upstream all see the same path, and reject paths that try to escape the root. */
#ifndef GW_PATHNORM_H
#define GW_PATHNORM_H

#include <stddef.h>

/* The outcome of gw_path_normalize. On success STATUS is 0 and REASON is NULL; on failure
 * STATUS is the HTTP status to answer (400, or 414 when OUT is too small), REASON a static
 * string safe to log and to put in an error body, and OFFSET the byte of the input where
 * the problem was found. */
typedef struct gw_pathnorm_s {
    size_t len;      /* bytes written to OUT (path and query), NUL not counted */
    size_t path_len; /* bytes of OUT that are the path: OUT[path_len] is '?' or NUL */
    int status;
    const char *reason;
    size_t offset;
} gw_pathnorm_t;

/* Normalises the origin-form request target TARGET[0..LEN) ("/path" or "/path?query") into
 * OUT, NUL-terminated. The output is never longer than the input, so OUTCAP >= LEN + 1
 * always suffices; a smaller OUTCAP that turns out too small fails with 414 (segments are
 * written before "." and ".." are applied, so the longest intermediate form must fit, not only
 * the result: "/a/b/../.." needs room for "/a/b").
 *
 * The path (the part before the first '?'):
 *  - must start with '/' and hold only RFC 3986 pchar bytes, '/' and %XX escapes; any other
 *    byte (CTL, space, '\\', '#', '"', '<', '>', bytes >= 0x80, ...) is rejected. The
 *    backslash is rejected raw and encoded (%5C) because some backends treat it as '/'.
 *  - %XX escapes of unreserved characters (ALPHA DIGIT - . _ ~) are decoded; every other
 *    escape stays encoded, with its hex digits in upper case (RFC 3986 6.2.2). Escapes of
 *    '/' (%2F), '\\' (%5C) and NUL (%00) are rejected: decoded they change the segments,
 *    kept they are read differently by different backends. So are escapes that only
 *    overlong UTF-8 uses (%C0, %C1, %E0 followed by %80-%9F: IIS-era ways to write '.'
 *    and '/').
 *  - A literal '%' followed by two hex digits in the OUTPUT ("%252e", or "%25%32%65" which
 *    decodes to it) is rejected as double encoding: a backend that decodes twice would see
 *    another path than the router did.
 *  - Empty segments are collapsed ("//a" -> "/a"), so that "//admin" cannot miss the
 *    "/admin" route and then reach a backend that merges slashes. A trailing slash is kept.
 *  - "." and ".." segments (also when written %2e) are removed as in RFC 3986 5.2.4; a ".."
 *    that would climb above the root is rejected instead of being clamped, and so is a dot
 *    segment carrying parameters ("..;x", read as ".." by Java servers).
 * The query (from the first '?') is copied unchanged; only bytes that can never appear in
 * a request line (CTL, space, DEL) are rejected there.
 *
 * Returns 0 with RES->len and RES->path_len set, or -1 with RES->status, reason and offset
 * set (OUT then holds no meaningful string). TARGET need not be NUL-terminated; OUT must not
 * overlap it. RES must not be NULL. */
int gw_path_normalize(const char *target, size_t len, char *out, size_t outcap, gw_pathnorm_t *res);

#endif
