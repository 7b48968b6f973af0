/* sni.h - the server name (SNI) of a TLS ClientHello, read from the first bytes a client
 * sends, without terminating TLS: what TLS passthrough routes by (passthrough.h), as nginx's
 * ssl_preread and HAProxy's req.ssl_sni do. Pure: no I/O, no allocation, no state.
 *
 * The parser is fed every byte read so far (not only the new ones) and answers from them
 * alone, so the answer is the same however the bytes were split into reads: a function of
 * the prefix, never of the reads. Each check runs as soon as the bytes it needs are there
 * (the first byte tells a plaintext HTTP request from TLS), and a length is checked against
 * its container's declared length (record, handshake, session id, cipher suites,
 * compression, extensions, the server_name list), never against what happens to be read.
 *
 * Bounded to ONE TLS record: the ClientHello must be whole in the first record (at most
 * 16 KiB of payload + a 5-byte header; real hellos are 0.2-2 KB). A hello fragmented over
 * several records is legal TLS, but no common client sends one; it is refused as TOO_BIG
 * rather than buffered without end (HAProxy's req.ssl_sni refuses it too). Also refused:
 * SSLv2-compatible hellos (NOT_TLS), two server_name extensions or two host names in one
 * list (MALFORMED: RFC 6066 forbids both, and a gateway that routes by one name while the
 * backend reads the other is how SNI confusion starts). */
#ifndef GW_SNI_H
#define GW_SNI_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    GW_SNI_TOO_BIG = -3,   /* the record is larger than the caller can hold, larger than TLS
                            * allows, or the hello does not end in the first record */
    GW_SNI_MALFORMED = -2, /* a TLS handshake record, but not a well-formed ClientHello */
    GW_SNI_NOT_TLS = -1,   /* not a TLS handshake record at all (plaintext, SSLv2) */
    GW_SNI_NEED_MORE = 0,  /* everything so far is consistent: read more */
    GW_SNI_FOUND = 1,      /* a valid hello with a host name: out->name */
    GW_SNI_NONE = 2,       /* a valid hello without one (or with an IP literal, which
                            * RFC 6066 does not permit as a name: it names no host) */
} gw_sni_result_t;

#define GW_SNI_NAME_MAX 253           /* a DNS name's longest text form */
#define GW_SNI_RECORD_MAX (16384 + 5) /* one TLS plaintext record with its header */

typedef struct gw_sni_s {
    char name[GW_SNI_NAME_MAX + 1]; /* FOUND: the host name, lower case, NUL-terminated */
    size_t len;                     /* FOUND: strlen(name) */
    size_t err_pos; /* an error: offset of the byte or length field at fault (<= LEN) */
} gw_sni_t;

/* Reads the ClientHello in DATA[0..LEN), all the client sent so far. MAX is the most bytes
 * the caller can hold (its buffer): a record that needs more is TOO_BIG as soon as its
 * header says so (MAX above GW_SNI_RECORD_MAX changes nothing). Bytes after the record (a
 * TLS 1.3 client's early data) are not looked at. OUT must not be NULL. */
gw_sni_result_t gw_sni_parse(const void *data, size_t len, size_t max, gw_sni_t *out);

/* Whether NAME[0..LEN) is a host name the parser would answer FOUND with: 1..253 bytes,
 * labels of 1..63 bytes of letters, digits, '-' or '_' (underscores are not in the host name
 * rule, but browsers send them), no empty label, no final dot, and not an IP literal (a
 * last label of digits only). Lower case only when LOWER. */
bool gw_sni_name_valid(const char *name, size_t len, bool lower);

/* "found", "none", "need_more", "not_tls", "malformed", "too_big". */
const char *gw_sni_result_name(gw_sni_result_t r);

#endif
