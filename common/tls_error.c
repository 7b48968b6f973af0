/* tls_error.c - gw_tls_error_name (tls_stream.h): BearSSL's error codes as short names for
 * metrics labels and logs. Apart from tls_stream.c because it is a table, not the machine.
 * The names are BR_ERR_* lower-cased without the prefix, so a reader can grep BearSSL's
 * headers for them; alerts are named as TLS 1.2 (RFC 5246 7.2, RFC 7301, RFC 7507) does. */
#include "tls_stream.h"

#define BR_ERR_NAMES(X)                                                                            \
    X(OK, "ok")                                                                                    \
    X(BAD_PARAM, "bad_param")                                                                      \
    X(BAD_STATE, "bad_state")                                                                      \
    X(UNSUPPORTED_VERSION, "unsupported_version")                                                  \
    X(BAD_VERSION, "bad_version")                                                                  \
    X(BAD_LENGTH, "bad_length")                                                                    \
    X(TOO_LARGE, "too_large")                                                                      \
    X(BAD_MAC, "bad_mac")                                                                          \
    X(NO_RANDOM, "no_random")                                                                      \
    X(UNKNOWN_TYPE, "unknown_type")                                                                \
    X(UNEXPECTED, "unexpected")                                                                    \
    X(BAD_CCS, "bad_ccs")                                                                          \
    X(BAD_ALERT, "bad_alert")                                                                      \
    X(BAD_HANDSHAKE, "bad_handshake")                                                              \
    X(OVERSIZED_ID, "oversized_id")                                                                \
    X(BAD_CIPHER_SUITE, "bad_cipher_suite")                                                        \
    X(BAD_COMPRESSION, "bad_compression")                                                          \
    X(BAD_FRAGLEN, "bad_fraglen")                                                                  \
    X(BAD_SECRENEG, "bad_secreneg")                                                                \
    X(EXTRA_EXTENSION, "extra_extension")                                                          \
    X(BAD_SNI, "bad_sni")                                                                          \
    X(BAD_HELLO_DONE, "bad_hello_done")                                                            \
    X(LIMIT_EXCEEDED, "limit_exceeded")                                                            \
    X(BAD_FINISHED, "bad_finished")                                                                \
    X(RESUME_MISMATCH, "resume_mismatch")                                                          \
    X(INVALID_ALGORITHM, "invalid_algorithm")                                                      \
    X(BAD_SIGNATURE, "bad_signature")                                                              \
    X(WRONG_KEY_USAGE, "wrong_key_usage")                                                          \
    X(NO_CLIENT_AUTH, "no_client_auth")                                                            \
    X(IO, "io")                                                                                    \
    X(X509_OK, "x509_ok")                                                                          \
    X(X509_INVALID_VALUE, "x509_invalid_value")                                                    \
    X(X509_TRUNCATED, "x509_truncated")                                                            \
    X(X509_EMPTY_CHAIN, "x509_empty_chain")                                                        \
    X(X509_INNER_TRUNC, "x509_inner_trunc")                                                        \
    X(X509_BAD_TAG_CLASS, "x509_bad_tag_class")                                                    \
    X(X509_BAD_TAG_VALUE, "x509_bad_tag_value")                                                    \
    X(X509_INDEFINITE_LENGTH, "x509_indefinite_length")                                            \
    X(X509_EXTRA_ELEMENT, "x509_extra_element")                                                    \
    X(X509_UNEXPECTED, "x509_unexpected")                                                          \
    X(X509_NOT_CONSTRUCTED, "x509_not_constructed")                                                \
    X(X509_NOT_PRIMITIVE, "x509_not_primitive")                                                    \
    X(X509_PARTIAL_BYTE, "x509_partial_byte")                                                      \
    X(X509_BAD_BOOLEAN, "x509_bad_boolean")                                                        \
    X(X509_OVERFLOW, "x509_overflow")                                                              \
    X(X509_BAD_DN, "x509_bad_dn")                                                                  \
    X(X509_BAD_TIME, "x509_bad_time")                                                              \
    X(X509_UNSUPPORTED, "x509_unsupported")                                                        \
    X(X509_LIMIT_EXCEEDED, "x509_limit_exceeded")                                                  \
    X(X509_WRONG_KEY_TYPE, "x509_wrong_key_type")                                                  \
    X(X509_BAD_SIGNATURE, "x509_bad_signature")                                                    \
    X(X509_TIME_UNKNOWN, "x509_time_unknown")                                                      \
    X(X509_EXPIRED, "x509_expired")                                                                \
    X(X509_DN_MISMATCH, "x509_dn_mismatch")                                                        \
    X(X509_BAD_SERVER_NAME, "x509_bad_server_name")                                                \
    X(X509_CRITICAL_EXTENSION, "x509_critical_extension")                                          \
    X(X509_NOT_CA, "x509_not_ca")                                                                  \
    X(X509_FORBIDDEN_KEY_USAGE, "x509_forbidden_key_usage")                                        \
    X(X509_WEAK_PUBLIC_KEY, "x509_weak_public_key")                                                \
    X(X509_NOT_TRUSTED, "x509_not_trusted")

/* TLS 1.2's alerts: number, name. */
#define TLS_ALERTS(X)                                                                              \
    X(0, close_notify)                                                                             \
    X(10, unexpected_message)                                                                      \
    X(20, bad_record_mac)                                                                          \
    X(21, decryption_failed)                                                                       \
    X(22, record_overflow)                                                                         \
    X(30, decompression_failure)                                                                   \
    X(40, handshake_failure)                                                                       \
    X(41, no_certificate)                                                                          \
    X(42, bad_certificate)                                                                         \
    X(43, unsupported_certificate)                                                                 \
    X(44, certificate_revoked)                                                                     \
    X(45, certificate_expired)                                                                     \
    X(46, certificate_unknown)                                                                     \
    X(47, illegal_parameter)                                                                       \
    X(48, unknown_ca)                                                                              \
    X(49, access_denied)                                                                           \
    X(50, decode_error)                                                                            \
    X(51, decrypt_error)                                                                           \
    X(60, export_restriction)                                                                      \
    X(70, protocol_version)                                                                        \
    X(71, insufficient_security)                                                                   \
    X(80, internal_error)                                                                          \
    X(86, inappropriate_fallback)                                                                  \
    X(90, user_canceled)                                                                           \
    X(100, no_renegotiation)                                                                       \
    X(110, unsupported_extension)                                                                  \
    X(111, certificate_unobtainable)                                                               \
    X(112, unrecognized_name)                                                                      \
    X(113, bad_certificate_status_response)                                                        \
    X(114, bad_certificate_hash_value)                                                             \
    X(115, unknown_psk_identity)                                                                   \
    X(120, no_application_protocol)

static const char *alert_name(int alert, int sent)
{
    switch (alert) {
#define ALERT_CASE(n, name)                                                                        \
    case n:                                                                                        \
        return sent ? "sent_alert_" #name : "recv_alert_" #name;
        TLS_ALERTS(ALERT_CASE)
#undef ALERT_CASE
    }
    return sent ? "sent_alert" : "recv_alert";
}

/* see tls_stream.h */
const char *gw_tls_error_name(int br_err)
{
    switch (br_err) {
#define ERR_CASE(code, name)                                                                       \
    case BR_ERR_##code:                                                                            \
        return name;
        BR_ERR_NAMES(ERR_CASE)
#undef ERR_CASE
    }
    if (br_err >= BR_ERR_SEND_FATAL_ALERT && br_err < BR_ERR_SEND_FATAL_ALERT + 256)
        return alert_name(br_err - BR_ERR_SEND_FATAL_ALERT, 1);
    if (br_err >= BR_ERR_RECV_FATAL_ALERT && br_err < BR_ERR_RECV_FATAL_ALERT + 256)
        return alert_name(br_err - BR_ERR_RECV_FATAL_ALERT, 0);
    return "unknown";
}
