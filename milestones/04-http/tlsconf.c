/* tlsconf.c - see tlsconf.h. Files are read here, at load: a certificate that does not
 * parse, a key that does not fit its certificate or a CA bundle without a CA is an error at
 * the key that names the file, before anything listens. */
#include "tlsconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <strings.h>
#include <sys/stat.h>

#include "02-lb/lbconfig.h"
#include "04-http/httpcfg.h"
#include "04-http/mw.h"
#include "error.h"

#define SEC ((uint64_t)1000)
#define HOUR (3600 * SEC)
#define MAX_CACHE 10000000 /* sessions; ~100 bytes each in the shared cache */

static const char *const default_alpn = "http/1.1";

/* ---- warnings ------------------------------------------------------------------------- */

static void warn(gw_cdoc_t *doc, char ***v, size_t *n, const gw_cnode_t *at, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Records "FILE:LINE:COL: warning: ..." in *V. */
static void warn(gw_cdoc_t *doc, char ***v, size_t *n, const gw_cnode_t *at, const char *fmt, ...)
{
    char msg[512], *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char **nv = realloc(*v, (*n + 1) * sizeof *nv);
    if (nv == NULL || asprintf(&s, "%s:%u:%u: warning: %s", doc->file, at ? at->line : 1,
                               at ? at->col : 1, msg) < 0) {
        if (nv != NULL)
            *v = nv;
        gw_cdoc_oom(doc, at);
        return;
    }
    *v = nv;
    nv[(*n)++] = s;
}

/* A key file that group or others may read: a warning (the key is as good as published to
 * every account on the machine). stat() fails for loads that read no real file: nothing. */
static void check_key_mode(gw_cdoc_t *doc, char ***v, size_t *n, const gw_cnode_t *at,
                           const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & 077))
        warn(doc, v, n, at, "key file %s is readable by group or others (mode %03o): chmod 600",
             path, (unsigned)(st.st_mode & 0777));
}

/* ---- pieces ------------------------------------------------------------------------------ */

/* {cert: FILE, key: FILE} at MAP into C (loaded) and the two paths. 0 or -1 (reported). */
static int decode_cert_pair(gw_cdoc_t *doc, const gw_cnode_t *map, const char *what,
                            gw_tls_cert_t *c, char **cert_path, char **key_path, char ***warnings,
                            size_t *nwarnings)
{
    char err[512];
    if (!gw_cnode_expect_map(doc, map, what))
        return -1;
    const gw_cnode_t *cn = gw_cmap_require(doc, map, "cert");
    const gw_cnode_t *kn = gw_cmap_require(doc, map, "key");
    if (!cn || !kn || gw_cget_string(doc, cn, "cert", cert_path) != 0 ||
        gw_cget_string(doc, kn, "key", key_path) != 0)
        return -1;
    if (gw_tls_cert_load(c, *cert_path, *key_path, err, sizeof err) != 0) {
        /* the message names the file at fault; point at that key */
        bool key =
            !strncmp(err, *key_path, strlen(*key_path)) && strcmp(*key_path, *cert_path) != 0;
        gw_cdoc_error(doc, key ? kn : cn, "%s: %s", what, err);
        return -1;
    }
    check_key_mode(doc, warnings, nwarnings, kn, *key_path);
    return 0;
}

static void decode_certificates(gw_cdoc_t *doc, const gw_cnode_t *seq, gw_tls_listener_cfg_t *t)
{
    if (!seq || !gw_cnode_expect_seq(doc, seq, "certificates"))
        return;
    if (seq->n == 0) {
        gw_cdoc_error(doc, seq, "certificates must not be empty");
        return;
    }
    t->certs = calloc(seq->n, sizeof *t->certs);
    t->cert_paths = calloc(seq->n, sizeof(char *));
    t->key_paths = calloc(seq->n, sizeof(char *));
    if (!t->certs || !t->cert_paths || !t->key_paths) {
        gw_cdoc_oom(doc, seq);
        return;
    }
    for (size_t i = 0; i < seq->n; i++) {
        size_t k = t->ncerts;
        if (decode_cert_pair(doc, seq->items[i], "certificates", &t->certs[k], &t->cert_paths[k],
                             &t->key_paths[k], &t->warnings, &t->nwarnings) == 0) {
            t->ncerts++;
            continue;
        }
        free(t->cert_paths[k]);
        free(t->key_paths[k]);
        t->cert_paths[k] = t->key_paths[k] = NULL;
    }
}

/* client_auth: {ca, required, subject_header, fingerprint_header} */
static void decode_client_auth(gw_cdoc_t *doc, const gw_cnode_t *map, gw_tls_listener_cfg_t *t)
{
    char err[512];
    if (!map || !gw_cnode_expect_map(doc, map, "client_auth"))
        return;
    t->client_auth = true;
    const gw_cnode_t *ca = gw_cmap_require(doc, map, "ca");
    if (ca && gw_cget_string(doc, ca, "ca", &t->client_ca_path) == 0 &&
        gw_tls_anchors_load(&t->client_cas, t->client_ca_path, err, sizeof err) != 0)
        gw_cdoc_error(doc, ca, "ca: %s", err);
    gw_cget_bool(doc, gw_cmap_get(doc, map, "required"), "required", &t->client_auth_required);
    char *s = NULL, *f = NULL;
    if (gw_mw_cfg_token(doc, gw_cmap_get(doc, map, "subject_header"), "subject_header", &s) == 0 &&
        s) {
        free(t->subject_header);
        t->subject_header = s;
    }
    if (gw_mw_cfg_token(doc, gw_cmap_get(doc, map, "fingerprint_header"), "fingerprint_header",
                        &f) == 0 &&
        f) {
        free(t->fingerprint_header);
        t->fingerprint_header = f;
    }
    if (t->subject_header && t->fingerprint_header &&
        !strcasecmp(t->subject_header, t->fingerprint_header))
        gw_cdoc_error(doc, map, "client_auth: subject_header and fingerprint_header are the same");
}

/* alpn: [names]; on http listeners only http/1.1 exists (h2 is refused until it does). */
static void decode_alpn(gw_cdoc_t *doc, const gw_cnode_t *seq, gw_tls_listener_cfg_t *t, bool http)
{
    if (!seq || !gw_cnode_expect_seq(doc, seq, "alpn"))
        return;
    for (size_t i = 0; i < t->nalpn; i++) /* the default goes */
        free((char *)t->alpn[i]);
    free(t->alpn);
    t->alpn = NULL;
    t->nalpn = 0;
    if (seq->n > GW_TLS_MAX_ALPN) {
        gw_cdoc_error(doc, seq, "alpn: at most %d names", GW_TLS_MAX_ALPN);
        return;
    }
    if (seq->n > 0 && !(t->alpn = calloc(seq->n, sizeof(char *)))) {
        gw_cdoc_oom(doc, seq);
        return;
    }
    for (size_t i = 0; i < seq->n; i++) {
        char *s = NULL;
        if (gw_cget_string(doc, seq->items[i], "alpn", &s) != 0)
            continue;
        size_t len = strlen(s);
        if (len == 0 || len > 255)
            gw_cdoc_error(doc, seq->items[i], "alpn: a name has 1..255 bytes");
        else if (http && strcmp(s, "http/1.1") != 0)
            gw_cdoc_error(doc, seq->items[i],
                          "alpn: '%s' is not spoken here: an http listener speaks http/1.1 only",
                          s);
        else {
            t->alpn[t->nalpn++] = s;
            continue;
        }
        free(s);
    }
}

/* ---- listeners ------------------------------------------------------------------------------ */

/* see tlsconf.h */
gw_tls_listener_cfg_t *gw_tls_listener_decode(gw_cdoc_t *doc, const gw_cnode_t *map,
                                              const gw_listener_cfg_t *l)
{
    const gw_cnode_t *tls = map && map->type == GW_CNODE_MAP ? gw_cmap_get(doc, map, "tls") : NULL;
    if (!tls || !gw_cnode_expect_map(doc, tls, "tls"))
        return NULL;
    gw_tls_listener_cfg_t *t = calloc(1, sizeof *t);
    if (t != NULL)
        atomic_init(&t->refs, 1); /* the config's */
    bool http = l->protocol == GW_PROTO_HTTP;
    if (t == NULL || !(t->subject_header = strdup("X-Client-Cert-Subject")) ||
        !(t->fingerprint_header = strdup("X-Client-Cert-Sha256")) ||
        (http && !(t->alpn = calloc(1, sizeof(char *))))) {
        gw_tls_listener_free(t);
        gw_cdoc_oom(doc, tls);
        return NULL;
    }
    if (http && (t->alpn[0] = strdup(default_alpn)) != NULL)
        t->nalpn = 1;
    t->client_auth_required = true;
    t->handshake_timeout_ms = 10 * SEC;
    t->session_cache_size = 20000;
    decode_certificates(doc, gw_cmap_require(doc, tls, "certificates"), t);
    decode_client_auth(doc, gw_cmap_get(doc, tls, "client_auth"), t);
    gw_cget_duration(doc, gw_cmap_get(doc, tls, "handshake_timeout"), "handshake_timeout", 1, HOUR,
                     &t->handshake_timeout_ms);
    const gw_cnode_t *sc = gw_cmap_get(doc, tls, "session_cache");
    if (sc && gw_cnode_expect_map(doc, sc, "session_cache"))
        gw_cget_uint(doc, gw_cmap_get(doc, sc, "size"), "size", 0, MAX_CACHE,
                     &t->session_cache_size);
    decode_alpn(doc, gw_cmap_get(doc, tls, "alpn"), t, http);
    return t;
}

/* see tlsconf.h */
gw_tls_listener_cfg_t *gw_tls_listener_hold(const gw_tls_listener_cfg_t *t)
{
    gw_tls_listener_cfg_t *m = (gw_tls_listener_cfg_t *)t; /* the count is not the config */
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

/* see tlsconf.h */
void gw_tls_listener_free(gw_tls_listener_cfg_t *t)
{
    /* acq_rel: every use by the other holders happens before the free below. */
    if (t == NULL || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < t->ncerts; i++)
        gw_tls_cert_free(&t->certs[i]);
    for (size_t i = 0; t->cert_paths && i < t->ncerts; i++) {
        free(t->cert_paths[i]);
        free(t->key_paths[i]);
    }
    free(t->certs);
    free(t->cert_paths);
    free(t->key_paths);
    free(t->client_ca_path);
    gw_tls_anchors_free(&t->client_cas);
    free(t->subject_header);
    free(t->fingerprint_header);
    for (size_t i = 0; i < t->nalpn; i++)
        free((char *)t->alpn[i]);
    free(t->alpn);
    for (size_t i = 0; i < t->nwarnings; i++)
        free(t->warnings[i]);
    free(t->warnings);
    free(t);
}

/* ---- upstreams ------------------------------------------------------------------------------ */

static void decode_ca(gw_cdoc_t *doc, const gw_cnode_t *ca, gw_tls_upstream_cfg_t *t)
{
    char err[512], *path = NULL;
    if (ca && gw_cget_string(doc, ca, "ca", &path) != 0)
        return;
    if (path && !strcmp(path, "system")) {
        free(path);
        path = NULL;
    }
    t->ca_path = path;
    if (!t->verify)
        return; /* nothing is checked against it: not even read */
    if (gw_tls_anchors_load(&t->anchors, path ? path : GW_TLS_SYSTEM_CA, err, sizeof err) != 0)
        gw_cdoc_error(doc, ca, "ca: %s%s", err,
                      path ? "" : " (the system bundle: install ca-certificates, or give a file)");
}

/* see tlsconf.h */
gw_tls_upstream_cfg_t *gw_tls_upstream_decode(gw_cdoc_t *doc, const gw_cnode_t *map,
                                              const gw_upstream_cfg_t *u)
{
    const gw_cnode_t *tls = map && map->type == GW_CNODE_MAP ? gw_cmap_get(doc, map, "tls") : NULL;
    if (!tls || !gw_cnode_expect_map(doc, tls, "tls"))
        return NULL;
    gw_tls_upstream_cfg_t *t = calloc(1, sizeof *t);
    if (t == NULL) {
        gw_cdoc_oom(doc, tls);
        return NULL;
    }
    t->verify = true;
    const gw_cnode_t *v = gw_cmap_get(doc, tls, "verify");
    if (gw_cget_bool(doc, v, "verify", &t->verify) == 0 && !t->verify)
        warn(doc, &t->warnings, &t->nwarnings, v,
             "upstream '%s': verify: false: its certificates are NOT checked; anyone on the "
             "path can read and change this traffic",
             u && u->name ? u->name : "?");
    decode_ca(doc, gw_cmap_get(doc, tls, "ca"), t);
    const gw_cnode_t *sn = gw_cmap_get(doc, tls, "server_name");
    if (gw_cget_string(doc, sn, "server_name", &t->server_name) == 0 && t->server_name &&
        (!t->server_name[0] || strlen(t->server_name) > 253 ||
         strpbrk(t->server_name, " \t\r\n/:")))
        gw_cdoc_error(doc, sn, "server_name: '%s' is not a host name", t->server_name);
    if (t->verify && t->server_name == NULL && u != NULL) /* the backends came first */
        for (size_t i = 0; i < u->nbackends; i++) {
            char host[256];
            const char *a = u->backends[i].address_text;
            if (a != NULL && gw_tls_server_name(t, a, host, sizeof host) == NULL) {
                warn(doc, &t->warnings, &t->nwarnings, tls,
                     "upstream '%s': backend %s is an IP address and tls has no server_name: "
                     "its certificate chain is verified, its name is not (no SNI is sent); "
                     "set server_name to check it",
                     u->name ? u->name : "?", a);
                break; /* once per upstream */
            }
        }
    /* 02's health checks have no TLS: an http one would send plaintext to a TLS port and
     * fail, taking every backend down. (02's keys are decoded before 04's.) */
    const gw_lb_upstream_cfg_t *lb = u != NULL ? gw_lb_upstream_cfg(u) : NULL;
    if (lb != NULL && lb->health_check.type == GW_HC_HTTP)
        gw_cdoc_error(doc, tls,
                      "tls: health_check type http speaks plaintext HTTP, and these backends "
                      "speak TLS: use type: tcp (HTTPS health checks are not supported)");
    const gw_cnode_t *cc = gw_cmap_get(doc, tls, "client_cert");
    if (cc && decode_cert_pair(doc, cc, "client_cert", &t->client_cert, &t->client_cert_path,
                               &t->client_key_path, &t->warnings, &t->nwarnings) == 0)
        t->has_client_cert = true;
    return t;
}

/* see tlsconf.h */
void gw_tls_upstream_free(gw_tls_upstream_cfg_t *t)
{
    if (t == NULL)
        return;
    free(t->ca_path);
    gw_tls_anchors_free(&t->anchors);
    free(t->server_name);
    gw_tls_cert_free(&t->client_cert);
    free(t->client_cert_path);
    free(t->client_key_path);
    for (size_t i = 0; i < t->nwarnings; i++)
        free(t->warnings[i]);
    free(t->warnings);
    free(t);
}

/* ---- printing (-T): paths, never what the files hold ------------------------------------- */

static void print_pair(FILE *out, const char *cert, const char *key)
{
    fputs("{cert: ", out);
    gw_config_print_str(out, cert);
    fputs(", key: ", out);
    gw_config_print_str(out, key);
    fputs("}", out);
}

/* see tlsconf.h */
void gw_tls_listener_print(FILE *out, const gw_tls_listener_cfg_t *t, int in)
{
    char a[32];
    if (t == NULL)
        return;
    fprintf(out, "%*stls:\n%*scertificates:\n", in, "", in + 2, "");
    for (size_t i = 0; i < t->ncerts; i++) {
        fprintf(out, "%*s- ", in + 4, "");
        print_pair(out, t->cert_paths[i], t->key_paths[i]);
        fputc('\n', out);
    }
    if (t->client_auth) {
        fprintf(out, "%*sclient_auth: {ca: ", in + 2, "");
        gw_config_print_str(out, t->client_ca_path ? t->client_ca_path : "");
        fprintf(out,
                ", required: %s, subject_header: ", t->client_auth_required ? "true" : "false");
        gw_config_print_str(out, t->subject_header);
        fputs(", fingerprint_header: ", out);
        gw_config_print_str(out, t->fingerprint_header);
        fputs("}\n", out);
    }
    fprintf(out, "%*shandshake_timeout: %s\n", in + 2, "",
            gw_cfmt_duration(t->handshake_timeout_ms, a, sizeof a));
    fprintf(out, "%*ssession_cache: {size: %llu}\n%*salpn: [", in + 2, "",
            (unsigned long long)t->session_cache_size, in + 2, "");
    for (size_t i = 0; i < t->nalpn; i++) {
        fputs(i ? ", " : "", out);
        gw_config_print_str(out, t->alpn[i]);
    }
    fputs("]\n", out);
}

/* see tlsconf.h */
void gw_tls_upstream_print(FILE *out, const gw_tls_upstream_cfg_t *t, int in)
{
    if (t == NULL)
        return;
    fprintf(out, "%*stls:\n%*sca: ", in, "", in + 2, "");
    if (t->ca_path)
        gw_config_print_str(out, t->ca_path);
    else
        fputs("system", out);
    if (t->server_name) {
        fprintf(out, "\n%*sserver_name: ", in + 2, "");
        gw_config_print_str(out, t->server_name);
    }
    fprintf(out, "\n%*sverify: %s\n", in + 2, "", t->verify ? "true" : "false");
    if (t->has_client_cert) {
        fprintf(out, "%*sclient_cert: ", in + 2, "");
        print_pair(out, t->client_cert_path, t->client_key_path);
        fputc('\n', out);
    }
}

/* ---- lookups ------------------------------------------------------------------------------ */

/* see tlsconf.h */
const gw_tls_listener_cfg_t *gw_tls_listener_cfg(const gw_listener_cfg_t *l)
{
    const gw_http_listener_cfg_t *x = l->ext[4]; /* also there for tcp listeners with tls */
    return x ? x->tls : NULL;
}

/* see tlsconf.h */
const gw_tls_upstream_cfg_t *gw_tls_upstream_cfg(const gw_upstream_cfg_t *u)
{
    const gw_http_upstream_cfg_t *x = u->ext[4];
    return x ? x->tls : NULL;
}

/* see tlsconf.h */
size_t gw_tls_config_warnings(const gw_config_t *cfg, void (*cb)(void *ctx, const char *msg),
                              void *ctx)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const gw_tls_listener_cfg_t *t = gw_tls_listener_cfg(&cfg->listeners[i]);
        for (size_t j = 0; t && j < t->nwarnings; j++, n++)
            cb(ctx, t->warnings[j]);
    }
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const gw_tls_upstream_cfg_t *t = gw_tls_upstream_cfg(&cfg->upstreams[i]);
        for (size_t j = 0; t && j < t->nwarnings; j++, n++)
            cb(ctx, t->warnings[j]);
    }
    return n;
}

/* see tlsconf.h */
const char *gw_tls_server_name(const gw_tls_upstream_cfg_t *t, const char *address_text, char *buf,
                               size_t len)
{
    if (t->server_name != NULL)
        return t->server_name;
    if (address_text == NULL || address_text[0] == '[') /* an IPv6 literal */
        return NULL;
    const char *colon = strrchr(address_text, ':');
    size_t n = colon ? (size_t)(colon - address_text) : strlen(address_text);
    if (n == 0 || n >= len)
        return NULL;
    memcpy(buf, address_text, n);
    buf[n] = '\0';
    struct in_addr a4;
    if (inet_pton(AF_INET, buf, &a4) == 1 || strchr(buf, ':'))
        return NULL;
    return buf;
}
