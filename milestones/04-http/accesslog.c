/* accesslog.c - JSON access log lines (see accesslog.h). */
#include "04-http/accesslog.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "out.h"

/* Lines are written with a bounded writer (out.h): every piece appended, one check at the
 * end. */
static void putf(gw_out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(gw_out_t *o, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp)
        o->full = true; /* our formats are all short; treat the impossible as full */
    else
        gw_out_put(o, tmp, (size_t)n);
}

/* Writes S as a JSON string. We escape by hand rather than through jansson because
 * jansson refuses strings that are not UTF-8, and a path is whatever bytes the client
 * sent: the log must still record it, unambiguously. */
static void put_json_str(gw_out_t *o, gw_alog_str_t s)
{
    static const char hex[] = "0123456789abcdef";
    if (!s.ptr) {
        gw_out_put(o, "null", 4);
        return;
    }
    gw_out_put(o, "\"", 1);
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            gw_out_put(o, e, 2);
        } else if (c < 0x20 || c >= 0x7f) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            gw_out_put(o, e, 6);
        } else {
            gw_out_put(o, (const char *)&c, 1);
        }
    }
    gw_out_put(o, "\"", 1);
}

/* RFC 3339 UTC with milliseconds. gmtime_r only converts the given value: no clock read. */
static void put_time(gw_out_t *o, int64_t ms)
{
    int64_t sec = ms / 1000, rem = ms % 1000;
    if (rem < 0) { /* floor, so times before 1970 still print a positive millisecond */
        rem += 1000;
        sec--;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        o->full = true;
        return;
    }
    putf(o, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
         tm.tm_hour, tm.tm_min, tm.tm_sec, (int)rem);
}

static void put_field(gw_out_t *o, const char *key, gw_alog_str_t v)
{
    putf(o, ",\"%s\":", key);
    put_json_str(o, v);
}

/* see accesslog.h */
gw_alog_str_t gw_alog_cstr(const char *s)
{
    return (gw_alog_str_t){s, s ? strlen(s) : 0};
}

/* see accesslog.h */
long gw_alog_format(const gw_alog_rec_t *r, char *buf, size_t cap)
{
    gw_out_t o = gw_out(buf, cap);
    gw_out_put(&o, "{\"time\":", 8);
    put_time(&o, r->time_ms);
    put_field(&o, "request_id", r->request_id);
    put_field(&o, "client", r->client);
    put_field(&o, "method", r->method);
    put_field(&o, "path", r->path);
    putf(&o, ",\"status\":%u", r->status);
    putf(&o, ",\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64, r->bytes_in, r->bytes_out);
    put_field(&o, "upstream", r->upstream);
    put_field(&o, "backend", r->backend);
    /* Integer arithmetic, not a double: 1234 us is exactly "1.234", never "1.2339999". */
    putf(&o, ",\"latency_ms\":%" PRIu64 ".%03" PRIu64, r->latency_us / 1000, r->latency_us % 1000);
    put_field(&o, "tls_version", r->tls_version);
    put_field(&o, "tls_cipher", r->tls_cipher);
    put_field(&o, "tls_sni", r->tls_sni);
    putf(&o, ",\"tls_resumed\":%s",
         r->tls_version.ptr == NULL ? "null"
         : r->tls_resumed           ? "true"
                                    : "false");
    put_field(&o, "route", r->route);
    put_field(&o, "end", r->end);
    gw_out_put(&o, "}\n", 2);
    return gw_out_end(&o) ? (long)o.len : GW_ELIMIT;
}
