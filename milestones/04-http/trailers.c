/* trailers.c - see trailers.h. */
#include "04-http/trailers.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"

/* ---- names that are never trailers ------------------------------------------------------- */

static const char FRAMING[] = "message framing, RFC 9110 6.5.1";
static const char HOP[] = "hop-by-hop, RFC 9110 7.6.1";
static const char ROUTING[] = "routing, RFC 9110 6.5.1";
static const char MODIFIER[] = "request modifier, RFC 9110 6.5.1";
static const char AUTH[] = "authentication, RFC 9110 6.5.1";
static const char CONTROL[] = "response control, RFC 9110 6.5.1";
static const char CONTENT[] = "content format, RFC 9110 6.5.1";
static const char FORWARDING[] = "forwarding, set by the gateway";
static const char REQUEST_ID[] = "request id, set by the gateway";
static const char CORS[] = "CORS, decided by the gateway";
static const char PROXY[] = "proxy control, httpoxy CVE-2016-5385";
static const char BROWSER[] = "browser security context, the Fetch standard's Sec- prefix";

/* A name, or a prefix when PREFIX is set ("If-" stands for every conditional). */
typedef struct forbidden_s {
    const char *name;
    const char *why;
    bool prefix;
} forbidden_t;

/* A linear scan: about sixty names with a length check first, run only for the few fields of
 * a trailer section (most messages have none). A hash would be faster and harder to read. */
static const forbidden_t forbidden[] = {
    {"Content-Length", FRAMING, false},
    {"Transfer-Encoding", FRAMING, false},
    {"Connection", HOP, false},
    {"Keep-Alive", HOP, false},
    {"Proxy-Connection", HOP, false},
    {"TE", HOP, false},
    {"Trailer", HOP, false},
    {"Upgrade", HOP, false},
    {"Host", ROUTING, false},
    {"X-Original-URL", ROUTING, false},
    {"X-Rewrite-URL", ROUTING, false},
    {"Cache-Control", MODIFIER, false},
    {"Expect", MODIFIER, false},
    {"Max-Forwards", MODIFIER, false},
    {"Pragma", MODIFIER, false},
    {"Range", MODIFIER, false},
    {"If-", MODIFIER, true},
    {"X-HTTP-Method-Override", MODIFIER, false},
    {"X-HTTP-Method", MODIFIER, false},
    {"X-Method-Override", MODIFIER, false},
    {"Authorization", AUTH, false},
    {"Proxy-Authorization", AUTH, false},
    {"WWW-Authenticate", AUTH, false},
    {"Proxy-Authenticate", AUTH, false},
    {"Authentication-Info", AUTH, false},
    {"Proxy-Authentication-Info", AUTH, false},
    {"Cookie", AUTH, false},
    {"Set-Cookie", AUTH, false},
    {"Age", CONTROL, false},
    {"Date", CONTROL, false},
    {"Expires", CONTROL, false},
    {"Location", CONTROL, false},
    {"Retry-After", CONTROL, false},
    {"Vary", CONTROL, false},
    {"Warning", CONTROL, false},
    {"Allow", CONTROL, false},
    {"Accept-Ranges", CONTROL, false},
    {"Content-Type", CONTENT, false},
    {"Content-Encoding", CONTENT, false},
    {"Content-Range", CONTENT, false},
    {"Content-Language", CONTENT, false},
    {"Content-Location", CONTENT, false},
    {"Content-Disposition", CONTENT, false},
    {"Forwarded", FORWARDING, false},
    {"Via", FORWARDING, false},
    {"X-Forwarded-", FORWARDING, true},
    {"X-Real-IP", FORWARDING, false},
    {"X-Client-IP", FORWARDING, false},
    {"True-Client-IP", FORWARDING, false},
    {"X-Request-ID", REQUEST_ID, false},
    {"Origin", CORS, false},
    {"Access-Control-", CORS, true},
    {"Proxy", PROXY, false},
    {"Proxy-", PROXY, true}, /* after the Proxy-* names above, which say more */
    {"Sec-", BROWSER, true},
};

/* see trailers.h */
const char *gw_trailers_forbidden(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++) {
        const forbidden_t *f = &forbidden[i];
        size_t n = strlen(f->name);
        if ((f->prefix ? len >= n : len == n) && strncasecmp(name, f->name, n) == 0)
            return f->why;
    }
    return NULL;
}

/* ---- allow-list -------------------------------------------------------------------------- */

struct gw_trailers_allow_s {
    size_t n;
    struct {
        char *name;
        size_t len;
    } e[];
};

/* see trailers.h */
int gw_trailers_allow_new(const char *const *names, size_t n, gw_trailers_allow_t **out)
{
    for (size_t i = 0; i < n; i++) {
        if (names[i][0] == '\0')
            return GW_EINVAL;
        for (const char *c = names[i]; *c; c++)
            if (!gw__h1_is_tchar((unsigned char)*c))
                return GW_EINVAL;
    }
    gw_trailers_allow_t *a = calloc(1, sizeof(*a) + n * sizeof(a->e[0]));
    if (a == NULL)
        return GW_ENOMEM;
    for (; a->n < n; a->n++) {
        if ((a->e[a->n].name = strdup(names[a->n])) == NULL) {
            gw_trailers_allow_free(a);
            return GW_ENOMEM;
        }
        a->e[a->n].len = strlen(names[a->n]);
    }
    *out = a;
    return 0;
}

/* see trailers.h */
void gw_trailers_allow_free(gw_trailers_allow_t *a)
{
    for (size_t i = 0; a != NULL && i < a->n; i++)
        free(a->e[i].name);
    free(a);
}

/* see trailers.h */
bool gw_trailers_allowed(const gw_trailers_allow_t *a, const char *name, size_t len)
{
    for (size_t i = 0; a != NULL && i < a->n; i++)
        if (a->e[i].len == len && strncasecmp(a->e[i].name, name, len) == 0)
            return true;
    return false;
}

/* see trailers.h */
size_t gw_trailers_allow_count(const gw_trailers_allow_t *a)
{
    return a != NULL ? a->n : 0;
}

/* see trailers.h */
const char *gw_trailers_allow_name(const gw_trailers_allow_t *a, size_t i)
{
    return a->e[i].name;
}

/* ---- the filter -------------------------------------------------------------------------- */

/* True if NAME[0..LEN) is the NUL-terminated S, in any case. */
static bool same_name(const char *name, size_t len, const char *s)
{
    return strlen(s) == len && strncasecmp(name, s, len) == 0;
}

/* LAB 04: trailer filter */

/* Whether the trailer field NAME[0..LEN) may go on. The order is the point: the fixed set
 * first, because no configuration may make a framing, routing or authentication field
 * legal after the body (RFC 9110 6.5.1); then the route's own rules, because a field the
 * route removes or sets in the header section must not come back through the trailers;
 * only then the allow-list, and a name it does not hold is dropped: a proxy cannot know
 * what an upstream would make of a field it never heard of, so the default is no. */
static bool keep_trailer(const char *name, size_t len, const gw_trailers_allow_t *allow,
                         const gw_mw_header_rules_t *rules)
{
    if (gw_trailers_forbidden(name, len) != NULL)
        return false;
    for (size_t i = 0; rules != NULL && i < rules->nremove; i++)
        if (same_name(name, len, rules->remove[i]))
            return false;
    for (size_t i = 0; rules != NULL && i < rules->nset; i++)
        if (same_name(name, len, rules->set[i].name))
            return false;
    return gw_trailers_allowed(allow, name, len);
}

/* see trailers.h */
size_t gw_trailers_filter(gw_h1_head_t *t, const gw_trailers_allow_t *allow,
                          const gw_mw_header_rules_t *rules)
{
    size_t dropped = 0;
    /* Backwards, so removing field I does not skip the one after it. */
    for (size_t i = gw_h1_head_count(t); i-- > 0;) {
        gw_h1_span_t n = gw_h1_head_name_at(t, i);
        if (!keep_trailer(n.ptr, n.len, allow, rules)) {
            gw_h1_head_remove_at(t, i);
            dropped++;
        }
    }
    return dropped;
}

/* END LAB */
