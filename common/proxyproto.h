/* proxyproto.h - the PROXY protocol (HAProxy's doc/proxy-protocol.txt, versions 1 and 2): the
 * header a load balancer or proxy puts in front of a connection to say whose it is, read on a
 * listener and written to an upstream. Pure: no I/O, no allocation, no state.
 *
 * The reader is fed every byte received so far (not only the new ones) and answers from them
 * alone, like sni.h: the answer is a function of the prefix, never of how it was split into
 * reads. Checks run left to right, each as soon as the bytes it needs are there, so a
 * plaintext "GET /" or a TLS ClientHello is refused at its first byte, a wrong v1 token at its
 * first wrong character, and an error, once given, stays the same error at the same place
 * however many bytes follow. What comes after the header is the client's stream: the reader
 * says exactly how long the header is and never looks past it.
 *
 * Bounded: a v1 line is at most 107 bytes with its CRLF (the spec's worst case); a v2 header
 * at most 16 + GW_PP_V2_LEN_MAX bytes, refused as soon as its length field says more, so a
 * caller never buffers more than GW_PP_MAX bytes to read one. Strict: what the spec says
 * MUST be is checked (single spaces, no leading zeros, CRLF and nothing else, v2 version 2,
 * command LOCAL or PROXY, the family byte one of the seven the spec lists, every length
 * inside its container), and the recognised TLVs are checked as HAProxy's own receiver
 * checks them (CRC32C verified, AUTHORITY <= 255 bytes, UNIQUE_ID <= 128), plus: a
 * recognised TLV given twice is refused (which one would count?). Everything HAProxy 2.6
 * and nginx 1.22 send passes (common/tests/test_proxyproto.c has their bytes).
 *
 * Families the gateway cannot use (UDP, AF_UNIX, v2 UNSPEC, v1 UNKNOWN) are accepted and
 * reported as GW_PP_UNSPEC with no addresses, as the spec asks of a receiver ("falls back to
 * the UNSPEC mode") and as HAProxy and nginx do: the caller then keeps the connection's own
 * addresses. Whether to accept such a header at all is the caller's policy, not the parser's. */
#ifndef GW_PROXYPROTO_H
#define GW_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Versions a listener accepts (gw_pp_parse's ACCEPT). */
#define GW_PP_V1 1u
#define GW_PP_V2 2u
#define GW_PP_ANY (GW_PP_V1 | GW_PP_V2)

#define GW_PP_V1_MAX 107 /* "PROXY UNKNOWN <39> <39> 65535 65535\r\n", the spec's worst case */
#define GW_PP_V2_HDR 16  /* signature (12), version and command, family, length (2) */
/* The largest v2 length field accepted (the bytes after the first 16). The spec has no limit
 * but its 16-bit field; HAProxy waits for as much as its buffer holds (16 KiB), nginx for
 * 4096 bytes in all. What real senders put there: 12 or 36 bytes of addresses (216 for
 * AF_UNIX), then TLVs, of which HAProxy's largest set (ALPN, AUTHORITY <= 255, UNIQUE_ID <=
 * 128, SSL with version, CN, cipher, signature and key algorithms, NETNS, CRC32C) stays near
 * 1.3 KB at worst and is ~130 bytes in practice (its header with every SSL option on, captured
 * here, is 139 bytes); cloud load balancers add one small TLV of their own. 2048 covers all of
 * them with room, and bounds what a connection may make us buffer before it is known. */
#define GW_PP_V2_LEN_MAX 2048
#define GW_PP_MAX (GW_PP_V2_HDR + GW_PP_V2_LEN_MAX)

/* Errors (negative), each with a short stable name for logs and metric labels
 * (gw_pp_strerror). The set is closed: a label never takes another value. */
typedef enum {
    GW_PP_EBADSIG = -1,        /* "bad_signature": neither "PROXY " nor the v2 signature */
    GW_PP_ENOTACCEPTED = -2,   /* "version_not_accepted": a v1 line on a v2 listener, or back */
    GW_PP_EV1TOOLONG = -3,     /* "v1_too_long": no CRLF in the first 107 bytes */
    GW_PP_EV1PROTO = -4,       /* "v1_bad_protocol": not TCP4, TCP6 or UNKNOWN */
    GW_PP_EV1ADDR = -5,        /* "v1_bad_address": not an address of the announced family */
    GW_PP_EV1PORT = -6,        /* "v1_bad_port": not 0..65535 in decimal without leading zeros */
    GW_PP_EV1CRLF = -7,        /* "v1_bad_line_end": a CR without LF, an LF without CR */
    GW_PP_EV2VERSION = -8,     /* "v2_bad_version": the version nibble is not 2 */
    GW_PP_EV2COMMAND = -9,     /* "v2_bad_command": neither LOCAL nor PROXY */
    GW_PP_EV2FAMILY = -10,     /* "v2_bad_family": not one of the spec's family/transport bytes */
    GW_PP_EV2SHORTADDR = -11,  /* "v2_short_address": the length is less than the family needs */
    GW_PP_EV2TOOBIG = -12,     /* "v2_too_big": the length is above GW_PP_V2_LEN_MAX */
    GW_PP_EV2TLVOVERRUN = -13, /* "v2_tlv_overrun": a TLV runs past its container */
    GW_PP_EV2TLV = -14,        /* "v2_bad_tlv": a recognised TLV with a wrong length, twice */
    GW_PP_EV2CRC = -15,        /* "v2_bad_crc32c": the header's CRC32C does not match */
} gw_pp_error_t;
#define GW_PP_ERROR_COUNT 15

typedef enum { GW_PP_LOCAL = 0, GW_PP_PROXY = 1 } gw_pp_command_t;

typedef enum {
    GW_PP_UNSPEC = 0, /* no usable address: keep the connection's own */
    GW_PP_TCP4 = 1,   /* src and dst are AF_INET */
    GW_PP_TCP6 = 2,   /* src and dst are AF_INET6 (an IPv4-mapped one stays as written) */
} gw_pp_family_t;

/* v2 TLV types (spec 2.2); the SSL TLV's value is client (1) | verify (4) | sub-TLVs. */
#define GW_PP2_TYPE_ALPN 0x01
#define GW_PP2_TYPE_AUTHORITY 0x02
#define GW_PP2_TYPE_CRC32C 0x03
#define GW_PP2_TYPE_NOOP 0x04
#define GW_PP2_TYPE_UNIQUE_ID 0x05
#define GW_PP2_TYPE_SSL 0x20
#define GW_PP2_SUBTYPE_SSL_VERSION 0x21
#define GW_PP2_SUBTYPE_SSL_CN 0x22
#define GW_PP2_SUBTYPE_SSL_CIPHER 0x23
#define GW_PP2_SUBTYPE_SSL_SIG_ALG 0x24
#define GW_PP2_SUBTYPE_SSL_KEY_ALG 0x25
#define GW_PP2_TYPE_NETNS 0x30
#define GW_PP2_CLIENT_SSL 0x01 /* bits of the SSL TLV's client byte */
#define GW_PP2_CLIENT_CERT_CONN 0x02
#define GW_PP2_CLIENT_CERT_SESS 0x04
#define GW_PP2_AUTHORITY_MAX 255 /* HAProxy's receiver's limits, kept */
#define GW_PP2_UNIQUE_ID_MAX 128 /* the spec's "up to 128 bytes" */

/* Bytes buf[off .. off + len) of the buffer that was parsed: offsets, not pointers, so a
 * result can be copied and compared, and means the same for any copy of the bytes. */
typedef struct gw_pp_span_s {
    uint16_t off, len;
} gw_pp_span_t;

/* One TLV as the iterator shows it: its type and its value's bytes. */
typedef struct gw_pp_tlv_s {
    uint8_t type;
    gw_pp_span_t value;
} gw_pp_tlv_t;

/* Which recognised TLVs a v2 header carried (gw_pp_result_t.seen). */
#define GW_PP_SEEN_ALPN 0x001u
#define GW_PP_SEEN_AUTHORITY 0x002u
#define GW_PP_SEEN_CRC32C 0x004u
#define GW_PP_SEEN_UNIQUE_ID 0x008u
#define GW_PP_SEEN_SSL 0x010u
#define GW_PP_SEEN_NETNS 0x020u
#define GW_PP_SEEN_SSL_VERSION 0x040u
#define GW_PP_SEEN_SSL_CN 0x080u
#define GW_PP_SEEN_SSL_CIPHER 0x100u
#define GW_PP_SEEN_SSL_SIG_ALG 0x200u
#define GW_PP_SEEN_SSL_KEY_ALG 0x400u

typedef struct gw_pp_result_s {
    size_t need;      /* NEED_MORE (0): at least this many more bytes before DONE (>= 1) */
    size_t err_pos;   /* an error: the offset of the byte or field at fault (< bytes given) */
    unsigned version; /* DONE: 1 or 2 (errors past the signature too; else 0) */
    /* ---- DONE only from here ---- */
    size_t len;              /* the header's length, as returned: the client's bytes start there */
    gw_pp_command_t command; /* v1 is always PROXY (UNKNOWN included) */
    gw_pp_family_t family;
    uint8_t v2_family; /* v2: the family/transport byte as sent (0x11, 0x21, 0x31...) */
    struct sockaddr_storage src, dst; /* TCP4/TCP6: the client's and the address it reached;
                                       * otherwise AF_UNSPEC */
    /* v2, PROXY command and a family other than UNSPEC (the only case where the spec says
     * where TLVs start; LOCAL and UNSPEC blocks are skipped unread, as HAProxy does): */
    gw_pp_span_t tlvs; /* all TLVs, for gw_pp_tlv_next (unknown types included) */
    unsigned seen;     /* GW_PP_SEEN_* */
    gw_pp_span_t alpn, authority, unique_id, netns;
    uint32_t crc32c;       /* SEEN_CRC32C: the checksum, already verified */
    uint8_t ssl_client;    /* SEEN_SSL: GW_PP2_CLIENT_* bits */
    uint32_t ssl_verify;   /* SEEN_SSL: 0 when the client's certificate was verified */
    gw_pp_span_t ssl_tlvs; /* SEEN_SSL: its sub-TLVs, for gw_pp_tlv_next */
    gw_pp_span_t ssl_version, ssl_cn, ssl_cipher, ssl_sig_alg, ssl_key_alg;
} gw_pp_result_t;

/* Reads a PROXY header from BUF[0..LEN), everything the connection has received so far.
 * ACCEPT is GW_PP_V1, GW_PP_V2 or GW_PP_ANY: a well-formed signature of another version is
 * GW_PP_ENOTACCEPTED (after 6 or 12 bytes), anything else GW_PP_EBADSIG.
 * Returns:
 *   > 0  DONE: the header's length (<= LEN; <= GW_PP_MAX); OUT describes it. BUF[result..LEN)
 *        is the client's own data and must be kept.
 *   0    NEED_MORE: every byte so far is consistent; OUT->need more bytes at least are needed
 *        (exact for v2 once its 16 bytes are in: a caller may wait for them before calling
 *        again, which keeps a byte-at-a-time sender from costing quadratic work).
 *   < 0  a gw_pp_error_t; OUT->err_pos says where. The connection must be closed.
 * BUF may be NULL when LEN is 0. OUT must not be NULL. Never reads BUF[LEN] or beyond the
 * header. */
int gw_pp_parse(const uint8_t *buf, size_t len, unsigned accept, gw_pp_result_t *out);

/* The short name of a gw_pp_error_t ("bad_signature", ...), "need_more" for 0, "done" for a
 * positive value, "unknown" for anything else. Static strings. */
const char *gw_pp_strerror(int rc);

/* Iterates the TLVs in BUF's span BLOCK, which must be one a DONE result gave (tlvs or
 * ssl_tlvs) for the same bytes: the parser checked that it is whole. *POS starts at 0.
 * Returns true and fills *T, or false at the end. Unknown types are shown too. */
bool gw_pp_tlv_next(const uint8_t *buf, gw_pp_span_t block, size_t *pos, gw_pp_tlv_t *t);

/* ---- writing, for the upstream side ----------------------------------------------------- */

/* A TLV to write: TYPE, then LEN bytes of VALUE. */
typedef struct gw_pp_out_tlv_s {
    uint8_t type;
    const void *value;
    uint16_t len;
} gw_pp_out_tlv_t;

/* Writes a v1 line for a connection from SRC to DST into BUF[0..CAP): "PROXY TCP4 a b p q\r\n"
 * for two AF_INET addresses, TCP6 for two AF_INET6, TCP6 with the IPv4 one mapped
 * (::ffff:a.b.c.d) when they differ, as HAProxy does; "PROXY UNKNOWN\r\n" when either is NULL
 * or of another family. Returns the bytes written (at most GW_PP_V1_MAX), or 0 when CAP is
 * too small (nothing useful is written then). */
size_t gw_pp_write_v1(uint8_t *buf, size_t cap, const struct sockaddr *src,
                      const struct sockaddr *dst);

/* Writes a v2 header into BUF[0..CAP). COMMAND GW_PP_PROXY with SRC and DST as for v1 (TCP4,
 * TCP6, mixed ones mapped) or, when they are NULL or of another family, UNSPEC with no
 * addresses; GW_PP_LOCAL (a health check: "the connection endpoints are the sender and the
 * receiver") always writes UNSPEC, no addresses, SRC and DST unused. Then the N TLVs of TLVS
 * in order; a GW_PP2_TYPE_CRC32C among them (its VALUE is unused, LEN must be 4) gets the
 * header's checksum. Returns the bytes written, or 0 when CAP is too small, the length would
 * pass GW_PP_V2_LEN_MAX, or a CRC32C TLV's LEN is not 4. */
size_t gw_pp_write_v2(uint8_t *buf, size_t cap, gw_pp_command_t command, const struct sockaddr *src,
                      const struct sockaddr *dst, const gw_pp_out_tlv_t *tlvs, size_t n);

/* Writes one TLV (type, 16-bit length, value) into BUF[0..CAP): the way to build an SSL TLV's
 * value (client, verify, then sub-TLVs) for gw_pp_write_v2. Returns 3 + LEN, or 0 when CAP is
 * too small. */
size_t gw_pp_write_tlv(uint8_t *buf, size_t cap, uint8_t type, const void *value, uint16_t len);

/* CRC32C (Castagnoli, RFC 4960 appendix B) of P[0..N), continuing from CRC (0 to start). */
uint32_t gw_pp_crc32c(uint32_t crc, const void *p, size_t n);

#endif
