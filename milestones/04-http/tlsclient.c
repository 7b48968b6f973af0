/* tlsclient.c - see tlsclient.h. */
#include "tlsclient.h"

#include <string.h>

#include "04-http/tlsserver.h"

/* ---- verify: false ----------------------------------------------------------------------
 * An X.509 class that accepts any chain but still hands the engine the end-entity key (the
 * key exchange needs it). The key is decoded with br_x509_decoder, pushed only while it
 * still wants bytes: BearSSL 0.6 crashes when pushed after it stopped (see common/pem.c). */

#define FROM_INSECURE(p)                                                                           \
    ((gw_tls_client_t *)(void *)((char *)(p)-offsetof(gw_tls_client_t, insecure)))

static void i_start_chain(const br_x509_class **ctx, const char *server_name)
{
    (void)server_name;
    FROM_INSECURE(ctx)->insecure.ncert = 0;
}

static void i_start_cert(const br_x509_class **ctx, uint32_t length)
{
    gw_tls_client_t *c = FROM_INSECURE(ctx);
    (void)length;
    if (c->insecure.ncert++ == 0)
        br_x509_decoder_init(&c->insecure.dec, NULL, NULL);
}

static void i_append(const br_x509_class **ctx, const unsigned char *buf, size_t len)
{
    gw_tls_client_t *c = FROM_INSECURE(ctx);
    if (c->insecure.ncert == 1 &&
        br_x509_decoder_last_error(&c->insecure.dec) == BR_ERR_X509_TRUNCATED)
        br_x509_decoder_push(&c->insecure.dec, buf, len);
}

static void i_end_cert(const br_x509_class **ctx)
{
    (void)ctx;
}

static unsigned i_end_chain(const br_x509_class **ctx)
{
    gw_tls_client_t *c = FROM_INSECURE(ctx);
    if (c->insecure.ncert == 0)
        return BR_ERR_X509_EMPTY_CHAIN;
    if (br_x509_decoder_get_pkey(&c->insecure.dec) != NULL)
        return 0;
    int err = br_x509_decoder_last_error(&c->insecure.dec);
    return err != 0 ? (unsigned)err : BR_ERR_X509_TRUNCATED;
}

static const br_x509_pkey *i_get_pkey(const br_x509_class *const *ctx, unsigned *usages)
{
    gw_tls_client_t *c = FROM_INSECURE(ctx);
    if (usages != NULL)
        *usages = BR_KEYTYPE_KEYX | BR_KEYTYPE_SIGN;
    return br_x509_decoder_get_pkey(&c->insecure.dec);
}

static const br_x509_class insecure_class = {
    .context_size = sizeof(gw_tls_client_t),
    .start_chain = i_start_chain,
    .start_cert = i_start_cert,
    .append = i_append,
    .end_cert = i_end_cert,
    .end_chain = i_end_chain,
    .get_pkey = i_get_pkey,
};

/* ---- setup ---------------------------------------------------------------------------- */

/* see tlsclient.h */
int gw_tls_client_setup(gw_tls_client_t *c, br_ssl_client_context *cc,
                        const gw_tls_upstream_cfg_t *cfg, const gw_tls_client_opts_t *o)
{
    memset(c, 0, sizeof *c);
    /* init_full: every algorithm, and br_x509_minimal with all hashes and both signature
     * kinds; then the versions and suites are narrowed to ours. */
    br_ssl_client_init_full(cc, &c->minimal, cfg->anchors.ta, cfg->anchors.n);
    br_ssl_engine_set_versions(&cc->eng, BR_TLS12, BR_TLS12);
    br_ssl_engine_set_suites(&cc->eng, gw_tls_suites, gw_tls_nsuites);
    gw_tls_x509_set_time(&c->minimal, o->now);
    if (!cfg->verify) {
        c->insecure.vtable = &insecure_class;
        br_ssl_engine_set_x509(&cc->eng, &c->insecure.vtable);
    }
    if (cfg->has_client_cert) {
        const gw_tls_cert_t *k = &cfg->client_cert;
        if (k->key_type == BR_KEYTYPE_RSA)
            br_ssl_client_set_single_rsa(cc, k->chain, k->nchain, &k->rsa,
                                         br_rsa_pkcs1_sign_get_default());
        else
            br_ssl_client_set_single_ec(cc, k->chain, k->nchain, &k->ec, BR_KEYTYPE_SIGN,
                                        (unsigned)k->issuer_key_type, br_ec_get_default(),
                                        br_ecdsa_sign_asn1_get_default());
    }
    if (o->nalpn > 0)
        br_ssl_engine_set_protocol_names(&cc->eng, (const char **)o->alpn, o->nalpn);
    br_ssl_engine_set_all_flags(&cc->eng, BR_OPT_NO_RENEGOTIATION);
    br_ssl_engine_set_buffer(&cc->eng, o->iobuf, o->iolen, o->iolen >= BR_SSL_BUFSIZE_BIDI);
    bool resume = o->resume != NULL && o->resume->valid;
    if (resume)
        br_ssl_engine_set_session_parameters(&cc->eng, &o->resume->params);
    return br_ssl_client_reset(cc, o->server_name, resume) ? 0 : -1;
}

/* see tlsclient.h */
void gw_tls_session_save(gw_tls_session_t *slot, const br_ssl_client_context *cc)
{
    br_ssl_session_parameters p;
    br_ssl_engine_get_session_parameters(&cc->eng, &p);
    if (p.session_id_len == 0) {
        explicit_bzero(&p, sizeof p);
        return;
    }
    slot->params = p;
    slot->valid = true;
    explicit_bzero(&p, sizeof p);
}

/* see tlsclient.h */
bool gw_tls_session_resumed(const br_ssl_client_context *cc, const gw_tls_session_t *offered)
{
    br_ssl_session_parameters p;
    br_ssl_engine_get_session_parameters(&cc->eng, &p);
    bool same = offered != NULL && offered->valid && p.session_id_len > 0 &&
                p.session_id_len == offered->params.session_id_len &&
                memcmp(p.session_id, offered->params.session_id, p.session_id_len) == 0;
    explicit_bzero(&p, sizeof p);
    return same;
}

/* see tlsclient.h */
void gw_tls_session_forget(gw_tls_session_t *slot)
{
    explicit_bzero(slot, sizeof *slot);
}
