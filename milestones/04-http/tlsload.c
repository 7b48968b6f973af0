/* tlsload.c - see tlsload.h. PEM objects come from common/pem.c (whole DER objects); X.509
 * from br_x509_decoder, keys from br_skey_decoder. BearSSL's decoders leave everything in
 * their own context, so what is kept is copied into malloc'd buffers owned here. */
#include "tlsload.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "loadio.h"
#include "pem.h"

/* ---- a little DER, for subjectAltName --------------------------------------------------
 * br_x509_decoder gives the key and the dates but no names, and br_x509_minimal's name
 * elements keep only the first SAN of a kind: a certificate for several names needs them
 * all, so the few structures on the way to them are walked here. */

/* Reads one TLV at *P (before END): its tag, and its value as [*V, *V + *VLEN). Advances *P
 * past it. 0, or -1 when malformed. */
static int der_tlv(const unsigned char **p, const unsigned char *end, unsigned *tag,
                   const unsigned char **v, size_t *vlen)
{
    const unsigned char *q = *p;
    if (end - q < 2)
        return -1;
    *tag = *q++;
    size_t len = *q++;
    if (len & 0x80) {
        size_t nb = len & 0x7f;
        if (nb == 0 || nb > 4 || (size_t)(end - q) < nb)
            return -1;
        for (len = 0; nb > 0; nb--)
            len = len << 8 | *q++;
    }
    if (len > (size_t)(end - q))
        return -1;
    *v = q, *vlen = len;
    *p = q + len;
    return 0;
}

static const unsigned char OID_SAN[] = {0x55, 0x1d, 0x11}; /* 2.5.29.17 */
static const unsigned char OID_CN[] = {0x55, 0x04, 0x03};  /* 2.5.4.3 */

/* SAN's value (GeneralNames): each dNSName ([2], tag 0x82) to CB. */
static int san_names(const unsigned char *p, const unsigned char *end,
                     void (*cb)(void *, const char *, size_t), void *ctx)
{
    unsigned tag;
    const unsigned char *v;
    size_t vlen;
    int n = 0;
    if (der_tlv(&p, end, &tag, &v, &vlen) < 0 || tag != 0x30)
        return -1;
    for (const unsigned char *q = v; q < v + vlen;) {
        const unsigned char *nv;
        size_t nlen;
        if (der_tlv(&q, v + vlen, &tag, &nv, &nlen) < 0)
            return -1;
        if (tag == 0x82) {
            cb(ctx, (const char *)nv, nlen);
            n++;
        }
    }
    return n;
}

/* extensions ([3] EXPLICIT SEQUENCE OF Extension): the SAN's names. */
static int ext_names(const unsigned char *p, const unsigned char *end,
                     void (*cb)(void *, const char *, size_t), void *ctx)
{
    unsigned tag;
    const unsigned char *v, *e, *ev;
    size_t vlen, elen, evlen;
    if (der_tlv(&p, end, &tag, &v, &vlen) < 0 || tag != 0x30)
        return -1;
    for (const unsigned char *q = v; q < v + vlen;) {
        if (der_tlv(&q, v + vlen, &tag, &e, &elen) < 0 || tag != 0x30)
            return -1;
        const unsigned char *r = e;
        if (der_tlv(&r, e + elen, &tag, &ev, &evlen) < 0 || tag != 0x06)
            return -1;
        if (evlen != sizeof OID_SAN || memcmp(ev, OID_SAN, evlen) != 0)
            continue;
        if (der_tlv(&r, e + elen, &tag, &ev, &evlen) < 0)
            return -1;
        if (tag == 0x01 && der_tlv(&r, e + elen, &tag, &ev, &evlen) < 0) /* critical */
            return -1;
        return tag == 0x04 ? san_names(ev, ev + evlen, cb, ctx) : -1;
    }
    return 0;
}

/* The subject's CN (Name: SEQUENCE OF SET OF {OID, value}): to CB, the last one found. */
static int subject_cn(const unsigned char *p, const unsigned char *end,
                      void (*cb)(void *, const char *, size_t), void *ctx)
{
    unsigned tag;
    const unsigned char *cn = NULL;
    size_t cnlen = 0;
    for (const unsigned char *q = p; q < end;) {
        const unsigned char *set, *atv, *oid, *val;
        size_t setlen, atvlen, oidlen, vallen;
        if (der_tlv(&q, end, &tag, &set, &setlen) < 0 || tag != 0x31)
            return -1;
        const unsigned char *r = set;
        if (der_tlv(&r, set + setlen, &tag, &atv, &atvlen) < 0 || tag != 0x30)
            return -1;
        const unsigned char *s = atv;
        if (der_tlv(&s, atv + atvlen, &tag, &oid, &oidlen) < 0 ||
            der_tlv(&s, atv + atvlen, &tag, &val, &vallen) < 0)
            return -1;
        if (oidlen == sizeof OID_CN && memcmp(oid, OID_CN, oidlen) == 0)
            cn = val, cnlen = vallen;
    }
    if (cn == NULL)
        return 0;
    cb(ctx, (const char *)cn, cnlen);
    return 1;
}

/* see tlsload.h. With no DNS name in a SAN, the subject CN counts (older certificates). */
int gw_tls_der_dns_names(const unsigned char *der, size_t len,
                         void (*cb)(void *ctx, const char *name, size_t len), void *ctx)
{
    unsigned tag;
    const unsigned char *p = der, *end = der + len, *cert, *tbs, *subject = NULL;
    size_t clen, tlen, slen = 0;
    if (der_tlv(&p, end, &tag, &cert, &clen) < 0 || tag != 0x30)
        return -1;
    p = cert;
    if (der_tlv(&p, cert + clen, &tag, &tbs, &tlen) < 0 || tag != 0x30)
        return -1;
    int field = 0; /* serial, sigalg, issuer, validity, subject, spki, then optional parts */
    for (const unsigned char *q = tbs; q < tbs + tlen;) {
        const unsigned char *v;
        size_t vlen;
        if (der_tlv(&q, tbs + tlen, &tag, &v, &vlen) < 0)
            return -1;
        if (tag == 0xa0) /* [0] version */
            continue;
        if (++field == 5)
            subject = v, slen = vlen;
        if (tag == 0xa3) {
            int n = ext_names(v, v + vlen, cb, ctx);
            if (n != 0)
                return n;
        }
    }
    return subject ? subject_cn(subject, subject + slen, cb, ctx) : -1;
}

/* ---- files -------------------------------------------------------------------------------- */

/* The file PATH through gw_loadio, or NULL with ERR filled. */
static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    char *text = gw_loadio()->read_file(path, GW_TLS_MAX_FILE, len);
    if (text == NULL)
        gw_errf(err, errlen, "%s: %s", path,
                errno == EFBIG ? "larger than 1 MiB" : strerror(errno ? errno : ENOMEM));
    return text;
}

static void free_file(char *text, size_t len)
{
    explicit_bzero(text, len); /* key files */
    free(text);
}

/* ---- certificate chains and keys -------------------------------------------------------- */

typedef struct {
    gw_tls_cert_t *c;
    char *err;
    size_t errlen;
    bool oom;
} chain_scan_t;

static int chain_object(void *ctx, const char *name, const unsigned char *der, size_t len,
                        const char **why)
{
    chain_scan_t *s = ctx;
    gw_tls_cert_t *c = s->c;
    if (strcmp(name, "CERTIFICATE") != 0)
        return 0;
    if (c->nchain == GW_TLS_MAX_CHAIN) {
        *why = "more than 8 certificates in the chain";
        return -1;
    }
    unsigned char *copy = malloc(len ? len : 1);
    if (copy == NULL) {
        *why = "out of memory";
        return -1;
    }
    memcpy(copy, der, len);
    c->chain[c->nchain].data = copy;
    c->chain[c->nchain++].data_len = len;
    return 0;
}

static void name_add(void *ctx, const char *name, size_t len)
{
    gw_tls_cert_t *c = ctx;
    if (c->nnames == GW_TLS_MAX_NAMES || len == 0 || len > 253 || memchr(name, 0, len))
        return;
    char *s = malloc(len + 1);
    if (s == NULL)
        return; /* a name less: gw_tls_cert_parse checks the count */
    for (size_t i = 0; i < len; i++)
        s[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    s[len] = 0;
    c->names[c->nnames++] = s;
}

/* The leaf's public key, names and signer type. NULL or a reason. */
static const char *decode_leaf(gw_tls_cert_t *c, br_x509_decoder_context *xc)
{
    br_x509_decoder_init(xc, NULL, NULL);
    br_x509_decoder_push(xc, c->chain[0].data, c->chain[0].data_len);
    if (br_x509_decoder_get_pkey(xc) == NULL)
        return "the first certificate could not be decoded";
    c->issuer_key_type = br_x509_decoder_get_signer_key_type(xc);
    if (!(c->names = calloc(GW_TLS_MAX_NAMES, sizeof(char *))))
        return "out of memory";
    int n = gw_tls_der_dns_names(c->chain[0].data, c->chain[0].data_len, name_add, c);
    if (n < 0)
        return "the first certificate's names could not be read";
    if ((size_t)n > c->nnames && c->nnames < GW_TLS_MAX_NAMES)
        return "out of memory";
    return NULL;
}

typedef struct {
    br_skey_decoder_context dc;
    int found; /* 0: no key object yet, 1: decoded, -1: failed */
    bool encrypted;
} key_scan_t;

static int key_object(void *ctx, const char *name, const unsigned char *der, size_t len,
                      const char **why)
{
    key_scan_t *k = ctx;
    (void)why;
    if (k->found != 0)
        return 0;
    if (!strcmp(name, "ENCRYPTED PRIVATE KEY")) {
        k->encrypted = true;
        return 0;
    }
    if (strcmp(name, "PRIVATE KEY") && strcmp(name, "RSA PRIVATE KEY") &&
        strcmp(name, "EC PRIVATE KEY"))
        return 0;
    br_skey_decoder_init(&k->dc);
    br_skey_decoder_push(&k->dc, der, len);
    k->found = br_skey_decoder_last_error(&k->dc) == 0 ? 1 : -1;
    return 0;
}

/* Copies the decoded key into C's own buffer. NULL or a reason. */
static const char *keep_key(gw_tls_cert_t *c, const br_skey_decoder_context *dc)
{
    c->key_type = br_skey_decoder_key_type(dc);
    if (c->key_type == BR_KEYTYPE_RSA) {
        const br_rsa_private_key *k = br_skey_decoder_get_rsa(dc);
        c->keylen = k->plen + k->qlen + k->dplen + k->dqlen + k->iqlen;
        if (!(c->keybuf = malloc(c->keylen)))
            return "out of memory";
        unsigned char *p = c->keybuf;
        c->rsa.n_bitlen = k->n_bitlen;
#define TAKE(f) memcpy(p, k->f, k->f##len), c->rsa.f = p, c->rsa.f##len = k->f##len, p += k->f##len
        TAKE(p);
        TAKE(q);
        TAKE(dp);
        TAKE(dq);
        TAKE(iq);
#undef TAKE
        return NULL;
    }
    if (c->key_type == BR_KEYTYPE_EC) {
        const br_ec_private_key *k = br_skey_decoder_get_ec(dc);
        if (!(c->keybuf = malloc(k->xlen)))
            return "out of memory";
        memcpy(c->keybuf, k->x, k->xlen);
        c->keylen = k->xlen;
        c->ec = (br_ec_private_key){.curve = k->curve, .x = c->keybuf, .xlen = k->xlen};
        return NULL;
    }
    return "the key is neither RSA nor EC";
}

static bool same_int(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
    while (alen > 0 && *a == 0)
        a++, alen--;
    while (blen > 0 && *b == 0)
        b++, blen--;
    return alen == blen && memcmp(a, b, alen) == 0;
}

/* Does C's key belong to the leaf's public key PK? */
static bool key_matches(const gw_tls_cert_t *c, const br_x509_pkey *pk)
{
    if (pk->key_type != c->key_type)
        return false;
    if (c->key_type == BR_KEYTYPE_RSA) {
        /* The modulus first; then a signature made with the key must verify with the
         * certificate's key, which checks the exponent too (BearSSL 0.6's
         * br_rsa_compute_pubexp answers 0 for openssl's keys, so e is not recomputed). */
        static const unsigned char hv[32] = "gw: does this key fit its cert?";
        unsigned char n[512], sig[512], out[32];
        size_t nlen = br_rsa_compute_modulus_get_default()(NULL, &c->rsa);
        if (nlen == 0 || nlen > sizeof n ||
            br_rsa_compute_modulus_get_default()(n, &c->rsa) != nlen ||
            !same_int(n, nlen, pk->key.rsa.n, pk->key.rsa.nlen))
            return false;
        return br_rsa_pkcs1_sign_get_default()(BR_HASH_OID_SHA256, hv, sizeof hv, &c->rsa, sig) &&
               br_rsa_pkcs1_vrfy_get_default()(sig, nlen, BR_HASH_OID_SHA256, sizeof out,
                                               &pk->key.rsa, out) &&
               memcmp(out, hv, sizeof out) == 0;
    }
    unsigned char q[BR_EC_KBUF_PUB_MAX_SIZE];
    br_ec_public_key pub;
    if (pk->key.ec.curve != c->ec.curve ||
        br_ec_compute_pub(br_ec_get_default(), &pub, q, &c->ec) == 0)
        return false;
    return pub.qlen == pk->key.ec.qlen && memcmp(pub.q, pk->key.ec.q, pub.qlen) == 0;
}

/* see tlsload.h */
int gw_tls_cert_parse(gw_tls_cert_t *c, const char *cert_pem, size_t cert_len, const char *key_pem,
                      size_t key_len, char *err, size_t errlen)
{
    const char *why = NULL;
    br_x509_decoder_context xc;
    key_scan_t *k = calloc(1, sizeof *k); /* ~ 1 KB of decoder: off the stack */
    memset(c, 0, sizeof *c);
    chain_scan_t s = {.c = c, .err = err, .errlen = errlen};
    if (k == NULL || !(c->chain = calloc(GW_TLS_MAX_CHAIN, sizeof *c->chain)))
        why = "out of memory";
    else if (gw_pem_each(cert_pem, cert_len, chain_object, &s, &why) < 0)
        ;
    else if (c->nchain == 0)
        why = "no CERTIFICATE in the certificate file";
    else if ((why = decode_leaf(c, &xc)) != NULL)
        ;
    else if (gw_pem_each(key_pem, key_len, key_object, k, &why) < 0)
        ;
    else if (k->found == 0)
        why = k->encrypted ? "the key is encrypted (give it unencrypted, mode 600)"
                           : "no PRIVATE KEY in the key file";
    else if (k->found < 0)
        why = "the private key could not be decoded";
    else if ((why = keep_key(c, &k->dc)) != NULL)
        ;
    else if (!key_matches(c, br_x509_decoder_get_pkey(&xc)))
        why = "the key does not match the certificate";
    if (k != NULL) {
        explicit_bzero(k, sizeof *k);
        free(k);
    }
    if (why == NULL)
        return 0;
    gw_errf(err, errlen, "%s", why);
    gw_tls_cert_free(c);
    return -1;
}

/* see tlsload.h */
int gw_tls_cert_load(gw_tls_cert_t *c, const char *cert_path, const char *key_path, char *err,
                     size_t errlen)
{
    size_t clen = 0, klen = 0;
    char why[200] = "";
    memset(c, 0, sizeof *c);
    char *ct = read_file(cert_path, &clen, err, errlen);
    if (ct == NULL)
        return -1;
    char *kt = read_file(key_path, &klen, err, errlen);
    if (kt == NULL) {
        free_file(ct, clen);
        return -1;
    }
    int rc = gw_tls_cert_parse(c, ct, clen, kt, klen, why, sizeof why);
    if (rc < 0) /* the key's own mistakes name the key file, the rest the certificate's */
        gw_errf(err, errlen, "%s: %s", strstr(why, "key") ? key_path : cert_path, why);
    free_file(ct, clen);
    free_file(kt, klen);
    return rc;
}

/* see tlsload.h */
void gw_tls_cert_free(gw_tls_cert_t *c)
{
    for (size_t i = 0; c->chain && i < c->nchain; i++)
        free(c->chain[i].data);
    free(c->chain);
    for (size_t i = 0; c->names && i < c->nnames; i++)
        free(c->names[i]);
    free(c->names);
    if (c->keybuf) {
        explicit_bzero(c->keybuf, c->keylen);
        free(c->keybuf);
    }
    memset(c, 0, sizeof *c);
}

/* ---- trust anchors ---------------------------------------------------------------------- */

typedef struct {
    unsigned char *buf;
    size_t len, cap;
    bool bad;
} dn_t;

static void dn_append(void *ctx, const void *data, size_t len)
{
    dn_t *d = ctx;
    if (d->bad || len > d->cap - d->len) {
        d->bad = true;
        return;
    }
    memcpy(d->buf + d->len, data, len);
    d->len += len;
}

/* Copies of the DN and the key of the certificate decoded by XC into TA. NULL or a reason;
 * "" for a certificate to skip (a key BearSSL does not use). */
static const char *keep_anchor(br_x509_trust_anchor *ta, br_x509_decoder_context *xc,
                               const dn_t *dn)
{
    const br_x509_pkey *pk = br_x509_decoder_get_pkey(xc);
    if (pk == NULL || dn->bad)
        return "a CA certificate could not be decoded";
    if (pk->key_type != BR_KEYTYPE_RSA && pk->key_type != BR_KEYTYPE_EC)
        return "";
    size_t a = pk->key_type == BR_KEYTYPE_RSA ? pk->key.rsa.nlen : pk->key.ec.qlen;
    size_t b = pk->key_type == BR_KEYTYPE_RSA ? pk->key.rsa.elen : 0;
    unsigned char *mem = malloc(dn->len + a + b + 1);
    if (mem == NULL)
        return "out of memory";
    memcpy(mem, dn->buf, dn->len);
    ta->dn = (br_x500_name){.data = mem, .len = dn->len};
    ta->flags = br_x509_decoder_isCA(xc) ? BR_X509_TA_CA : 0;
    ta->pkey.key_type = (unsigned char)pk->key_type;
    if (pk->key_type == BR_KEYTYPE_RSA) {
        memcpy(mem + dn->len, pk->key.rsa.n, a);
        memcpy(mem + dn->len + a, pk->key.rsa.e, b);
        ta->pkey.key.rsa = (br_rsa_public_key){mem + dn->len, a, mem + dn->len + a, b};
    } else {
        memcpy(mem + dn->len, pk->key.ec.q, a);
        ta->pkey.key.ec = (br_ec_public_key){pk->key.ec.curve, mem + dn->len, a};
    }
    return NULL;
}

static int anchor_object(void *ctx, const char *name, const unsigned char *der, size_t len,
                         const char **why)
{
    gw_tls_anchors_t *a = ctx;
    br_x509_decoder_context xc;
    dn_t dn = {.cap = len};
    if (strcmp(name, "CERTIFICATE") != 0)
        return 0;
    if (a->n == GW_TLS_MAX_ANCHORS) {
        *why = "more than 1024 CA certificates";
        return -1;
    }
    if (!(dn.buf = malloc(len ? len : 1))) {
        *why = "out of memory";
        return -1;
    }
    br_x509_decoder_init(&xc, dn_append, &dn);
    br_x509_decoder_push(&xc, der, len);
    const char *w = keep_anchor(&a->ta[a->n], &xc, &dn);
    free(dn.buf);
    if (w == NULL)
        a->n++;
    else if (*w)
        *why = w;
    return w == NULL || !*w ? 0 : -1;
}

/* see tlsload.h */
int gw_tls_anchors_parse(gw_tls_anchors_t *a, const char *pem, size_t len, char *err, size_t errlen)
{
    const char *why = NULL;
    memset(a, 0, sizeof *a);
    if (!(a->ta = calloc(GW_TLS_MAX_ANCHORS, sizeof *a->ta)))
        why = "out of memory";
    else if (gw_pem_each(pem, len, anchor_object, a, &why) < 0)
        ;
    else if (a->n == 0)
        why = "no usable CA CERTIFICATE in the file";
    if (why == NULL) {
        br_x509_trust_anchor *t = realloc(a->ta, a->n * sizeof *t);
        if (t != NULL)
            a->ta = t;
        return 0;
    }
    gw_errf(err, errlen, "%s", why);
    gw_tls_anchors_free(a);
    return -1;
}

/* see tlsload.h */
int gw_tls_anchors_load(gw_tls_anchors_t *a, const char *path, char *err, size_t errlen)
{
    size_t len = 0;
    char why[200] = "";
    memset(a, 0, sizeof *a);
    char *text = read_file(path, &len, err, errlen);
    if (text == NULL)
        return -1;
    int rc = gw_tls_anchors_parse(a, text, len, why, sizeof why);
    if (rc < 0)
        gw_errf(err, errlen, "%s: %s", path, why);
    free(text);
    return rc;
}

/* see tlsload.h */
void gw_tls_anchors_free(gw_tls_anchors_t *a)
{
    for (size_t i = 0; a->ta && i < a->n; i++)
        free(a->ta[i].dn.data);
    free(a->ta);
    memset(a, 0, sizeof *a);
}
