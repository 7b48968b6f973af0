/* upgrade.c - see upgrade.h. */
#include "upgrade.h"

#include <string.h>
#include <strings.h>

/* One protocol of an Upgrade list: its name (before any "/version") and the whole token. */
typedef struct {
    gw_h1_span_t name, whole;
} proto_t;

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Splits V (`#protocol`, RFC 9110 7.8: protocol-name ["/" protocol-version], each a token)
 * into OUT, at most MAX. Returns how many, or -1 when a member is not a protocol or there
 * are more than MAX (empty members, as in "a, , b", are allowed by the # rule and skipped). */
static long split_protocols(gw_h1_span_t v, proto_t *out, size_t max)
{
    size_t n = 0, i = 0;
    while (i < v.len) {
        while (i < v.len && (is_ows(v.ptr[i]) || v.ptr[i] == ','))
            i++;
        if (i == v.len)
            break;
        size_t start = i, slash = 0;
        while (i < v.len && v.ptr[i] != ',' && !is_ows(v.ptr[i])) {
            if (v.ptr[i] == '/') {
                if (slash != 0 || i == start)
                    return -1; /* two slashes, or no name */
                slash = i;
            } else if (!gw__h1_is_tchar((unsigned char)v.ptr[i])) {
                return -1;
            }
            i++;
        }
        size_t end = i;
        if (slash != 0 && slash + 1 == end)
            return -1; /* "name/" without a version */
        while (i < v.len && is_ows(v.ptr[i]))
            i++;
        if (i < v.len && v.ptr[i] != ',')
            return -1; /* "a b": two tokens without a comma */
        if (n == max)
            return -1;
        out[n].whole = (gw_h1_span_t){v.ptr + start, end - start};
        out[n].name = (gw_h1_span_t){v.ptr + start, (slash ? slash : end) - start};
        n++;
    }
    return (long)n;
}

static bool span_is(gw_h1_span_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && strncasecmp(s.ptr, lit, n) == 0;
}

static bool allowed(const gw_upgrade_allow_t *allow, gw_h1_span_t name)
{
    if (allow == NULL)
        return false;
    for (size_t i = 0; i < allow->n; i++)
        if (span_is(name, allow->names[i]))
            return true;
    return false;
}

/* see upgrade.h */
bool gw_upgrade_name_ok(const char *name, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!gw__h1_is_tchar((unsigned char)name[i]) || name[i] == '/')
            return false;
    gw_h1_span_t s = {name, len};
    return !span_is(s, "h2c") && !span_is(s, "h2");
}

/* see upgrade.h */
gw_upgrade_t gw_upgrade_decide(const gw_upgrade_req_t *req, const gw_upgrade_allow_t *allow,
                               const char **why)
{
    *why = NULL;
    if (!req->asked)
        return GW_UPGRADE_NONE;
    if (req->several) {
        *why = "several Upgrade fields";
        return GW_UPGRADE_STRIP;
    }
    proto_t p[GW_UPGRADE_MAX_OFFERED];
    long n = split_protocols(req->offer, p, GW_UPGRADE_MAX_OFFERED);
    if (n <= 0) {
        *why = "Upgrade is not a list of protocols";
        return GW_UPGRADE_STRIP;
    }
    bool any = false;
    for (long i = 0; i < n; i++) {
        if (span_is(p[i].name, "h2c")) {
            *why = "h2c is never forwarded";
            return GW_UPGRADE_STRIP;
        }
        any = any || allowed(allow, p[i].name);
    }
    if (!any) {
        *why = "the route allows none of the protocols offered";
        return GW_UPGRADE_STRIP;
    }
    if (!req->get) {
        *why = "an upgrade is a GET";
        return GW_UPGRADE_STRIP;
    }
    if (req->has_body) {
        *why = "an upgrade request has no body";
        return GW_UPGRADE_STRIP;
    }
    return GW_UPGRADE_TUNNEL;
}

/* see upgrade.h */
bool gw_upgrade_accept_101(gw_upgrade_t decision, gw_h1_span_t offer,
                           const gw_upgrade_allow_t *allow, bool has_answer, gw_h1_span_t answer,
                           const char **why)
{
    *why = NULL;
    if (decision != GW_UPGRADE_TUNNEL) {
        *why = decision == GW_UPGRADE_STRIP ? "upstream switched protocols on a request whose "
                                              "Upgrade was removed"
                                            : "upstream switched protocols without being asked";
        return false;
    }
    proto_t a[2], o[GW_UPGRADE_MAX_OFFERED];
    long na = has_answer ? split_protocols(answer, a, 2) : -1;
    if (na != 1) {
        *why = "a 101 names exactly one protocol in Upgrade";
        return false;
    }
    long no = split_protocols(offer, o, GW_UPGRADE_MAX_OFFERED);
    bool offered = false;
    for (long i = 0; i < no && !offered; i++)
        offered = o[i].whole.len == a[0].whole.len &&
                  strncasecmp(o[i].whole.ptr, a[0].whole.ptr, a[0].whole.len) == 0;
    if (!offered) {
        *why = "upstream switched to a protocol the client did not offer";
        return false;
    }
    if (!allowed(allow, a[0].name)) { /* offered next to an allowed one, but not allowed */
        *why = "upstream switched to a protocol the route does not allow";
        return false;
    }
    return true;
}
