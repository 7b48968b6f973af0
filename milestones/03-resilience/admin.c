/* admin.c - see admin.h */
#include "admin.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "httpd.h"
#include "log.h"

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define JSON_CONTENT_TYPE "application/json"

struct gw_admin_s {
    gw_httpd_t *httpd;
    gw_admin_sources_t src;
    char *token; /* NULL: no authentication */
    size_t token_len;
    void (*done)(void *arg);
    void *done_arg;
};

/* see admin.h */
bool gw_admin_token_equal(const char *given, size_t glen, const char *want, size_t wlen)
{
    /* Every byte of the longer string is visited and differences are OR-ed together, so
     * the time does not say how long a prefix matched. `volatile` keeps the compiler from
     * turning the loop into an early exit. The loop length still shows the longer of the
     * two lengths; hiding the token's length too would need a hash of both sides. */
    size_t n = glen > wlen ? glen : wlen;
    volatile unsigned char diff = glen != wlen;
    for (size_t i = 0; i < n; i++) {
        unsigned char a = i < glen ? (unsigned char)given[i] : 0;
        unsigned char b = i < wlen ? (unsigned char)want[i] : 0;
        diff |= (unsigned char)(a ^ b);
    }
    return diff == 0;
}

/* Authorization: Bearer <token> (the scheme is case-insensitive, RFC 9110 11.1). */
static bool authorized(const gw_admin_t *a, const char *header)
{
    if (a->token == NULL)
        return true;
    if (header == NULL || strncasecmp(header, "Bearer ", 7) != 0)
        return false;
    const char *t = header + 7;
    while (*t == ' ')
        t++;
    return gw_admin_token_equal(t, strlen(t), a->token, a->token_len);
}

static void serve_static(gw_httpd_resp_t *r, int status, const char *json)
{
    gw_httpd_resp_body(r, status, JSON_CONTENT_TYPE, (char *)json, strlen(json), NULL);
}

static void serve_healthz(gw_admin_t *a, gw_httpd_resp_t *r)
{
    (void)a;
    serve_static(r, 200, "{\"status\":\"ok\"}\n");
}

static void serve_readyz(gw_admin_t *a, gw_httpd_resp_t *r)
{
    bool ready = a->src.ready == NULL || a->src.ready(a->src.ctx);
    if (ready)
        serve_static(r, 200, "{\"ready\":true}\n");
    else
        serve_static(r, 503, "{\"ready\":false}\n");
}

static void serve_metrics(gw_admin_t *a, gw_httpd_resp_t *r)
{
    gw_prom_t *p = gw_prom_new(0);
    if (p == NULL) {
        gw_httpd_resp_error(r, 500);
        return;
    }
    if (a->src.metrics)
        a->src.metrics(a->src.ctx, p);
    size_t len;
    char *text = gw_prom_take(p, &len);
    if (text == NULL) {
        gw_error("admin: /metrics failed: %s", gw_strerror(gw_prom_error(p)));
        gw_httpd_resp_error(r, 500);
    } else {
        gw_httpd_resp_body(r, 200, PROM_CONTENT_TYPE, text, len, free);
    }
    gw_prom_free(p);
}

/* Serialises J (a reference we own) as the body. NULL from a source means it failed. */
static void serve_json(gw_httpd_resp_t *r, json_t *j, const char *what)
{
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (text == NULL) {
        gw_error("admin: %s: no data", what);
        gw_httpd_resp_error(r, 500);
        return;
    }
    /* json_dumps allocates with malloc (we never change jansson's allocator): free() it. */
    gw_httpd_resp_body(r, 200, JSON_CONTENT_TYPE, text, strlen(text), free);
}

static void serve_stats(gw_admin_t *a, gw_httpd_resp_t *r)
{
    serve_json(r, a->src.stats ? a->src.stats(a->src.ctx) : json_object(), "/stats");
}

static void serve_backends(gw_admin_t *a, gw_httpd_resp_t *r)
{
    serve_json(r, a->src.backends ? a->src.backends(a->src.ctx) : json_object(), "/backends");
}

/* POST /reload. The source's JSON is the body either way: what was applied, or the errors
 * with their line and column. */
static void serve_reload(gw_admin_t *a, gw_httpd_resp_t *r)
{
    json_t *body = NULL;
    int rc = a->src.reload(a->src.ctx, &body);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL) {
        gw_error("admin: /reload: no answer from the reload");
        gw_httpd_resp_error(r, 500);
        return;
    }
    gw_httpd_resp_body(r, rc == 0 ? 200 : 400, JSON_CONTENT_TYPE, text, strlen(text), free);
}

static void serve_config(gw_admin_t *a, gw_httpd_resp_t *r)
{
    size_t len = 0;
    char *text = a->src.config(a->src.ctx, &len);
    if (text == NULL) {
        gw_error("admin: /config: no configuration text");
        gw_httpd_resp_error(r, 500);
        return;
    }
    gw_httpd_resp_body(r, 200, "text/plain; charset=utf-8", text, len, free);
}

static bool has_reload(const gw_admin_t *a)
{
    return a->src.reload != NULL;
}

static bool has_config(const gw_admin_t *a)
{
    return a->src.config != NULL;
}

typedef struct route_s {
    const char *path;
    void (*serve)(gw_admin_t *a, gw_httpd_resp_t *r);
    bool open; /* served without the token: liveness probes carry no secrets */
    bool post; /* POST only (it changes something); else GET and HEAD */
    bool (*present)(const gw_admin_t *a); /* NULL: always; false: answered 404 */
} route_t;

static const route_t routes[] = {
    {"/metrics", serve_metrics, false, false, NULL},
    {"/stats", serve_stats, false, false, NULL},
    {"/backends", serve_backends, false, false, NULL},
    {"/healthz", serve_healthz, true, false, NULL},
    {"/readyz", serve_readyz, false, false, NULL},
    {"/config", serve_config, false, false, has_config},
    {"/reload", serve_reload, false, true, has_reload},
};

/* The route for PATH on A, or NULL: a route whose source A lacks does not exist. */
static const route_t *find_route(const gw_admin_t *a, const char *path)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(routes[i].path, path) == 0)
            return routes[i].present == NULL || routes[i].present(a) ? &routes[i] : NULL;
    return NULL;
}

static bool method_allowed(const route_t *route, const char *method)
{
    if (route->post)
        return strcmp(method, "POST") == 0;
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

static void handle(void *ctx, const gw_httpd_req_t *req, gw_httpd_resp_t *r)
{
    gw_admin_t *a = ctx;
    const route_t *route = find_route(a, req->path);
    if (!(route && route->open) && !authorized(a, gw_httpd_req_header(req, "Authorization"))) {
        gw_httpd_resp_error(r, 401);
        gw_httpd_resp_header(r, "WWW-Authenticate", "Bearer realm=\"gw-admin\"");
        return;
    }
    if (route == NULL) {
        gw_httpd_resp_error(r, 404);
        return;
    }
    if (!method_allowed(route, req->method)) {
        gw_httpd_resp_error(r, 405);
        gw_httpd_resp_header(r, "Allow", route->post ? "POST" : "GET, HEAD");
        return;
    }
    route->serve(a, r); /* HEAD: the server sends the head only */
}

/* The token is a secret: wipe it rather than leave it in freed memory. */
static void free_admin(gw_admin_t *a)
{
    if (a->token != NULL) {
        explicit_bzero(a->token, a->token_len);
        free(a->token);
    }
    free(a);
}

/* see admin.h */
gw_admin_t *gw_admin_start(uv_loop_t *loop, const gw_addr_t *addr, const char *token,
                           const gw_admin_sources_t *src, int *err)
{
    int rc = GW_ENOMEM;
    gw_admin_t *a = NULL;
    if (token != NULL && *token == '\0') {
        rc = GW_EINVAL;
        goto fail;
    }
    a = calloc(1, sizeof *a);
    if (a == NULL || (token != NULL && (a->token = strdup(token)) == NULL))
        goto fail;
    a->token_len = token ? strlen(token) : 0;
    if (src != NULL)
        a->src = *src;
    a->httpd = gw_httpd_start(loop, addr, NULL, handle, a, &rc);
    if (a->httpd == NULL)
        goto fail;
    return a;
fail:
    if (a != NULL)
        free_admin(a);
    if (err)
        *err = rc;
    return NULL;
}

/* see admin.h */
int gw_admin_address(const gw_admin_t *a, gw_addr_t *out)
{
    return gw_httpd_address(a->httpd, out);
}

static void on_httpd_stopped(void *arg)
{
    gw_admin_t *a = arg;
    void (*done)(void *) = a->done;
    void *done_arg = a->done_arg;
    free_admin(a);
    if (done)
        done(done_arg);
}

/* see admin.h */
void gw_admin_stop(gw_admin_t *a, void (*done)(void *arg), void *arg)
{
    a->done = done;
    a->done_arg = arg;
    gw_httpd_stop(a->httpd, on_httpd_stopped, a);
}

/* see admin.h */
int gw_admin_serve_memory(const char *token, const gw_admin_sources_t *src, const char *in,
                          size_t len, size_t piece, char **out, size_t *outlen)
{
    if (token != NULL && *token == '\0')
        return GW_EINVAL;
    gw_admin_t a;
    memset(&a, 0, sizeof a);
    a.token = (char *)token; /* only read */
    a.token_len = token ? strlen(token) : 0;
    if (src != NULL)
        a.src = *src;
    return gw_httpd_serve_memory(NULL, handle, &a, in, len, piece, out, outlen);
}
