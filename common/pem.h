/* pem.h - PEM text to DER objects, on BearSSL's PEM decoder: the one reader of PEM files
 * (JWT certificates, TLS certificate chains, private keys, CA bundles). */
#ifndef GW_PEM_H
#define GW_PEM_H

#include <stddef.h>

/* The largest DER object accepted (an RSA 4096 key is ~2.4 KB, a certificate 1-4 KB): a
 * larger one is an error, never a larger buffer. */
#define GW_PEM_MAX_OBJECT (64 * 1024)

/* Called once per PEM object, in file order: NAME is the label ("CERTIFICATE", "PRIVATE
 * KEY", ...), DER its decoded bytes (LEN > 0 or 0 for an empty object), valid only during
 * the call. Return 0 to go on, or a negative value to stop, with *WHY set to a static
 * reason. */
typedef int (*gw_pem_object_cb)(void *ctx, const char *name, const unsigned char *der, size_t len,
                                const char **why);

/* Decodes the PEM text PEM (LEN bytes, any bytes: a file's content) and calls CB for each
 * complete object. Text outside BEGIN/END lines is ignored; a final END line without a
 * newline is accepted. Returns the number of objects passed to CB (0: none in the text), or
 * -1 with *WHY set ("invalid PEM", "PEM object larger than 64 KiB", "out of memory", or
 * what CB said). The DER buffer is wiped before it is freed (private keys pass through it). */
int gw_pem_each(const char *pem, size_t len, gw_pem_object_cb cb, void *ctx, const char **why);

#endif
