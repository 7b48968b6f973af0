/* accesslog.h - one access log record as one JSON line, written into a caller's buffer. */
#ifndef GW_ACCESSLOG_H
#define GW_ACCESSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A string that may come from the network: any bytes, not NUL-terminated. */
typedef struct gw_alog_str_s {
    const char *ptr; /* NULL means absent: written as JSON null */
    size_t len;
} gw_alog_str_t;

/* One finished request. Time is given, never read here (time is a parameter). */
typedef struct gw_alog_rec_s {
    int64_t time_ms; /* wall time, ms since the Unix epoch, when the request was received */
    gw_alog_str_t request_id, client, method, path, upstream, backend, route;
    gw_alog_str_t end; /* why it ended early (chain.h gw_hx_t.end); absent: it completed */
    /* The client connection's TLS (all null on plaintext): version, suite, SNI, resumed. */
    gw_alog_str_t tls_version, tls_cipher, tls_sni;
    bool tls_resumed; /* written as null when tls_version is absent (plaintext) */
    unsigned status;
    uint64_t bytes_in, bytes_out; /* on the client connection, heads included */
    uint64_t latency_us;          /* written as ms with 3 decimals, computed exactly */
} gw_alog_rec_t;

/* Makes a gw_alog_str_t of the NUL-terminated S (NULL stays absent). */
gw_alog_str_t gw_alog_cstr(const char *s);

/* Formats R as one JSON object ending in "\n" into BUF of CAP bytes (and a NUL after it):
 *   {"time":"2026-11-22T05:22:45.123Z","request_id":...,"client":...,"method":...,
 *    "path":...,"status":200,"bytes_in":...,"bytes_out":...,"upstream":...,
 *    "backend":...,"latency_ms":1.234,"tls_version":...,"tls_cipher":...,"tls_sni":...,
 *    "tls_resumed":true|false|null,"route":...,"end":null}
 * Every string is escaped: '"', '\\', control bytes, DEL and every byte >= 0x80 become
 * \uXXXX escapes (a byte >= 0x80 as \u00XX, its Latin-1 reading), so the line is valid
 * JSON and pure ASCII whatever the request held, and no request can forge a second line.
 * Returns the length written (without the NUL), or GW_ELIMIT if it does not fit (BUF then
 * holds nothing useful). */
long gw_alog_format(const gw_alog_rec_t *r, char *buf, size_t cap);

#endif
