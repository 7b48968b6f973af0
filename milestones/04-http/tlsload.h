/* tlsload.h - certificate chains, private keys and trust anchors read from PEM, in the
 * shapes BearSSL's contexts take (br_x509_certificate[], br_rsa/ec_private_key,
 * br_x509_trust_anchor[]). Loaded once with the config, immutable afterwards: any number of
 * workers may point their per-connection contexts at the same objects. */
#ifndef GW_TLSLOAD_H
#define GW_TLSLOAD_H

#include <bearssl.h>
#include <stdbool.h>
#include <stddef.h>

#define GW_TLS_MAX_FILE (1024 * 1024) /* bytes of one certificate, key or CA file */
#define GW_TLS_MAX_CHAIN 8            /* certificates in one chain */
#define GW_TLS_MAX_NAMES 64           /* DNS names kept from one certificate */
#define GW_TLS_MAX_ANCHORS 1024       /* CA certificates in one bundle (Debian's has ~150) */

/* A certificate chain with its private key. */
typedef struct gw_tls_cert_s {
    br_x509_certificate *chain; /* [nchain], leaf first, each data malloc'd */
    size_t nchain;
    int key_type;           /* BR_KEYTYPE_RSA or BR_KEYTYPE_EC */
    int issuer_key_type;    /* key type of the leaf's signer (BR_KEYTYPE_RSA or _EC) */
    br_rsa_private_key rsa; /* when RSA: points into keybuf */
    br_ec_private_key ec;   /* when EC: points into keybuf */
    unsigned char *keybuf;  /* the key's numbers, wiped before free */
    size_t keylen;
    /* The leaf's DNS names from its subjectAltName (lower case, as written: "*.a.b" for a
     * wildcard), or its subject CN when it has no DNS name (old certificates). What the
     * SNI choice (tlsserver.h) matches. */
    char **names;
    size_t nnames;
} gw_tls_cert_t;

/* Decodes a chain from CERT_PEM (every CERTIFICATE object, in file order, leaf first) and
 * its key from KEY_PEM (the first RSA PRIVATE KEY, EC PRIVATE KEY or PRIVATE KEY (PKCS#8)
 * object; encrypted keys are refused), and checks that the key is the leaf's (same modulus
 * and exponent, or same EC point). On error, returns -1 with ERR filled ("no certificate",
 * "the key does not match the certificate", ...) and C zeroed; 0 on success. Free with
 * gw_tls_cert_free. */
int gw_tls_cert_parse(gw_tls_cert_t *c, const char *cert_pem, size_t cert_len, const char *key_pem,
                      size_t key_len, char *err, size_t errlen);

/* The same from two files (read through gw_loadio, at most GW_TLS_MAX_FILE bytes each);
 * ERR names the file at fault ("PATH: reason"). */
int gw_tls_cert_load(gw_tls_cert_t *c, const char *cert_path, const char *key_path, char *err,
                     size_t errlen);

void gw_tls_cert_free(gw_tls_cert_t *c); /* zeroed or loaded; leaves it zeroed */

/* Trust anchors: one per CERTIFICATE object of a bundle (its subject DN and public key;
 * BR_X509_TA_CA set when the certificate says it is a CA, which is what verification of
 * a chain needs). Certificates with keys BearSSL cannot use are skipped, as are objects of
 * other types; a bundle that yields no anchor is an error. */
typedef struct gw_tls_anchors_s {
    br_x509_trust_anchor *ta; /* [n], every buffer malloc'd */
    size_t n;
} gw_tls_anchors_t;

int gw_tls_anchors_parse(gw_tls_anchors_t *a, const char *pem, size_t len, char *err,
                         size_t errlen);
int gw_tls_anchors_load(gw_tls_anchors_t *a, const char *path, char *err, size_t errlen);
void gw_tls_anchors_free(gw_tls_anchors_t *a);

/* The DNS names of a DER certificate's subjectAltName, for tests and tlsserver: calls CB
 * for each (not NUL-terminated). Returns the number found, or -1 when the DER is malformed
 * where it was read. */
int gw_tls_der_dns_names(const unsigned char *der, size_t len,
                         void (*cb)(void *ctx, const char *name, size_t len), void *ctx);

#endif
