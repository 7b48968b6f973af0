/* tlsserver.c - see tlsserver.h.
 *
 * Certificate choice: BearSSL's server calls its policy's choose() once the ClientHello is
 * read (SNI known), then do_keyx()/do_sign() through the same policy pointer. Ours picks a
 * certificate, installs BearSSL's own single-chain policy for it in the server context
 * (br_ssl_server_set_single_rsa/_ec, which point sc->policy_vtable at it) and delegates
 * choose() to it: from then on the engine talks to BearSSL's policy directly, so signing is
 * BearSSL's code, not ours. */
#include "tlsserver.h"

#include <string.h>
#include <strings.h>

/* ECDHE only (forward secrecy), AEAD only (no CBC: Lucky13 and friends), ECDSA first (smaller
 * and faster handshakes when an EC certificate is served); AES-128-GCM before 256 and
 * ChaCha20 after AES, as Mozilla's "intermediate" profile orders them. */
const uint16_t gw_tls_suites[] = {
    BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
};
const size_t gw_tls_nsuites = sizeof gw_tls_suites / sizeof gw_tls_suites[0];

static const unsigned char OID_CN[] = {0x03, 0x55, 0x04, 0x03}; /* length-prefixed, for BearSSL */

/* see tlsserver.h */
void gw_tls_x509_set_time(br_x509_minimal_context *x, int64_t now)
{
    /* BearSSL counts days from 1 January of year 0 (proleptic Gregorian): 719528 to 1970. */
    int64_t days = now >= 0 ? now / 86400 : (now - 86399) / 86400;
    br_x509_minimal_set_time(x, (uint32_t)(days + 719528), (uint32_t)(now - days * 86400));
}

/* ---- SNI choice ------------------------------------------------------------------------ */

/* LAB 04: certificate by SNI */

/* Does the wildcard name W ("*.rest") cover SNI by exactly one label? */
static bool wildcard_covers(const char *w, const char *sni)
{
    if (w[0] != '*' || w[1] != '.')
        return false;
    const char *dot = strchr(sni, '.');
    return dot != NULL && dot != sni && strcasecmp(dot + 1, w + 2) == 0;
}

/* see tlsserver.h */
size_t gw_tls_sni_choose(const gw_tls_cert_t *certs, size_t n, const char *sni)
{
    if (sni == NULL || sni[0] == '\0')
        return 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < certs[i].nnames; j++)
            if (certs[i].names[j][0] != '*' && strcasecmp(certs[i].names[j], sni) == 0)
                return i;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < certs[i].nnames; j++)
            if (wildcard_covers(certs[i].names[j], sni))
                return i;
    return 0;
}

/* END LAB */

/* ---- the policy ------------------------------------------------------------------------ */

#define FROM_POLICY(p) ((gw_tls_server_t *)(void *)(p)) /* policy is the first member */

static int policy_choose(const br_ssl_server_policy_class **pctx, const br_ssl_server_context *cc,
                         br_ssl_server_choices *choices)
{
    gw_tls_server_t *s = FROM_POLICY(pctx);
    const gw_tls_listener_cfg_t *cfg = s->cfg;
    size_t i = gw_tls_sni_choose(cfg->certs, cfg->ncerts, br_ssl_engine_get_server_name(&cc->eng));
    const gw_tls_cert_t *c = &cfg->certs[i];
    s->chosen = (int)i;
    /* ECDHE suites only: the key signs, it never decrypts (BR_KEYTYPE_SIGN). */
    if (c->key_type == BR_KEYTYPE_RSA)
        br_ssl_server_set_single_rsa(s->sc, c->chain, c->nchain, &c->rsa, BR_KEYTYPE_SIGN,
                                     br_rsa_private_get_default(), br_rsa_pkcs1_sign_get_default());
    else
        br_ssl_server_set_single_ec(s->sc, c->chain, c->nchain, &c->ec, BR_KEYTYPE_SIGN,
                                    (unsigned)c->issuer_key_type, br_ec_get_default(),
                                    br_ecdsa_sign_asn1_get_default());
    if (s->sc->policy_vtable == pctx) /* cannot happen: set_single_* replaced it */
        return 0;
    return (*s->sc->policy_vtable)->choose(s->sc->policy_vtable, cc, choices);
}

/* Never reached once choose() swapped policies; kept so the class is whole. */
static uint32_t policy_keyx(const br_ssl_server_policy_class **pctx, unsigned char *data,
                            size_t *len)
{
    (void)pctx, (void)data, (void)len;
    return 0;
}

static size_t policy_sign(const br_ssl_server_policy_class **pctx, unsigned algo_id,
                          unsigned char *data, size_t hv_len, size_t len)
{
    (void)pctx, (void)algo_id, (void)data, (void)hv_len, (void)len;
    return 0;
}

static const br_ssl_server_policy_class policy_class = {
    .context_size = sizeof(gw_tls_server_t),
    .choose = policy_choose,
    .do_keyx = policy_keyx,
    .do_sign = policy_sign,
};

/* ---- client certificates: br_x509_minimal, plus a copy of what the headers need -------- */

#define FROM_X509(p) ((gw_tls_server_t *)(void *)((char *)(p)-offsetof(gw_tls_server_t, x509)))
#define INNER(s) (&(s)->x509.inner.vtable)

static void x_start_chain(const br_x509_class **ctx, const char *server_name)
{
    gw_tls_server_t *s = FROM_X509(ctx);
    s->x509.ncert = 0;
    memset(&s->peer, 0, sizeof s->peer);
    (*INNER(s))->start_chain(INNER(s), server_name);
}

static void x_start_cert(const br_x509_class **ctx, uint32_t length)
{
    gw_tls_server_t *s = FROM_X509(ctx);
    if (s->x509.ncert++ == 0)
        br_sha256_init(&s->x509.sha);
    (*INNER(s))->start_cert(INNER(s), length);
}

static void x_append(const br_x509_class **ctx, const unsigned char *buf, size_t len)
{
    gw_tls_server_t *s = FROM_X509(ctx);
    if (s->x509.ncert == 1) /* the end-entity certificate comes first */
        br_sha256_update(&s->x509.sha, buf, len);
    (*INNER(s))->append(INNER(s), buf, len);
}

static void x_end_cert(const br_x509_class **ctx)
{
    gw_tls_server_t *s = FROM_X509(ctx);
    if (s->x509.ncert == 1)
        br_sha256_out(&s->x509.sha, s->peer.sha256);
    (*INNER(s))->end_cert(INNER(s));
}

static unsigned x_end_chain(const br_x509_class **ctx)
{
    static const char hex[] = "0123456789abcdef";
    gw_tls_server_t *s = FROM_X509(ctx);
    unsigned err = (*INNER(s))->end_chain(INNER(s));
    if (err != 0 || s->x509.ncert == 0) {
        memset(&s->peer, 0, sizeof s->peer);
        return err;
    }
    s->peer.present = true;
    for (size_t i = 0; i < 32; i++) {
        s->peer.sha256_hex[2 * i] = hex[s->peer.sha256[i] >> 4];
        s->peer.sha256_hex[2 * i + 1] = hex[s->peer.sha256[i] & 15];
    }
    if (s->x509.cn.status <= 0) /* absent (0) or too long / not a string (-1) */
        s->peer.cn[0] = '\0';
    return 0;
}

static const br_x509_pkey *x_get_pkey(const br_x509_class *const *ctx, unsigned *usages)
{
    gw_tls_server_t *s = FROM_X509(ctx);
    return (*INNER(s))->get_pkey(INNER(s), usages);
}

static const br_x509_class x509_class = {
    .context_size = sizeof(gw_tls_server_t),
    .start_chain = x_start_chain,
    .start_cert = x_start_cert,
    .append = x_append,
    .end_cert = x_end_cert,
    .end_chain = x_end_chain,
    .get_pkey = x_get_pkey,
};

static void setup_client_auth(gw_tls_server_t *s, const gw_tls_listener_cfg_t *cfg, int64_t now)
{
    br_x509_minimal_context *x = &s->x509.inner;
    static const struct {
        int id;
        const br_hash_class *impl;
    } hashes[] = {{br_sha1_ID, &br_sha1_vtable},
                  {br_sha224_ID, &br_sha224_vtable},
                  {br_sha256_ID, &br_sha256_vtable},
                  {br_sha384_ID, &br_sha384_vtable},
                  {br_sha512_ID, &br_sha512_vtable}};
    br_x509_minimal_init(x, &br_sha256_vtable, cfg->client_cas.ta, cfg->client_cas.n);
    for (size_t i = 0; i < sizeof hashes / sizeof hashes[0]; i++)
        br_x509_minimal_set_hash(x, hashes[i].id, hashes[i].impl);
    br_x509_minimal_set_rsa(x, br_rsa_pkcs1_vrfy_get_default());
    br_x509_minimal_set_ecdsa(x, br_ec_get_default(), br_ecdsa_vrfy_asn1_get_default());
    gw_tls_x509_set_time(x, now);
    s->x509.cn = (br_name_element){.oid = OID_CN, .buf = s->peer.cn, .len = sizeof s->peer.cn};
    br_x509_minimal_set_name_elements(x, &s->x509.cn, 1);
    s->x509.vtable = &x509_class;
    br_ssl_engine_set_x509(&s->sc->eng, &s->x509.vtable);
    br_ssl_server_set_trust_anchor_names_alt(s->sc, cfg->client_cas.ta, cfg->client_cas.n);
}

/* The engine's algorithms: what our suites need, and what client certificates may use. */
static void setup_engine(br_ssl_engine_context *eng)
{
    br_ssl_engine_set_versions(eng, BR_TLS12, BR_TLS12);
    br_ssl_engine_set_suites(eng, gw_tls_suites, gw_tls_nsuites);
    br_ssl_engine_set_hash(eng, br_sha1_ID, &br_sha1_vtable);
    br_ssl_engine_set_hash(eng, br_sha224_ID, &br_sha224_vtable);
    br_ssl_engine_set_hash(eng, br_sha256_ID, &br_sha256_vtable);
    br_ssl_engine_set_hash(eng, br_sha384_ID, &br_sha384_vtable);
    br_ssl_engine_set_hash(eng, br_sha512_ID, &br_sha512_vtable);
    br_ssl_engine_set_prf_sha256(eng, &br_tls12_sha256_prf);
    br_ssl_engine_set_prf_sha384(eng, &br_tls12_sha384_prf);
    br_ssl_engine_set_default_aes_gcm(eng);
    br_ssl_engine_set_default_chapol(eng);
    br_ssl_engine_set_default_ec(eng);
    br_ssl_engine_set_default_rsavrfy(eng);
    br_ssl_engine_set_default_ecdsa(eng);
}

/* see tlsserver.h */
int gw_tls_server_setup(gw_tls_server_t *s, br_ssl_server_context *sc,
                        const gw_tls_listener_cfg_t *cfg, const br_ssl_session_cache_class **cache,
                        int64_t now, void *iobuf, size_t iolen)
{
    uint32_t flags = BR_OPT_ENFORCE_SERVER_PREFERENCES | BR_OPT_NO_RENEGOTIATION;
    memset(s, 0, sizeof *s);
    s->sc = sc;
    s->cfg = cfg;
    s->chosen = -1;
    br_ssl_server_zero(sc);
    setup_engine(&sc->eng);
    s->policy = &policy_class;
    br_ssl_server_set_policy(sc, &s->policy);
    if (cfg->nalpn > 0) {
        br_ssl_engine_set_protocol_names(&sc->eng, cfg->alpn, cfg->nalpn);
        flags |= BR_OPT_FAIL_ON_ALPN_MISMATCH;
    }
    if (cfg->client_auth) {
        setup_client_auth(s, cfg, now);
        if (!cfg->client_auth_required)
            flags |= BR_OPT_TOLERATE_NO_CLIENT_AUTH;
    }
    if (cache != NULL)
        br_ssl_server_set_cache(sc, cache);
    br_ssl_engine_set_all_flags(&sc->eng, flags);
    br_ssl_engine_set_buffer(&sc->eng, iobuf, iolen, iolen >= BR_SSL_BUFSIZE_BIDI);
    return br_ssl_server_reset(sc) ? 0 : -1;
}
