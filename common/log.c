/* log.c - see log.h. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

/* Set before threads start, and again by a reload (milestone 05) while workers log: relaxed
 * atomics, read on every log call (a line logged just around a reload may use either). */
static atomic_int g_level = GW_LOG_INFO;
static atomic_int g_format = GW_LOG_PLAIN;
static __thread const char *t_name = "main";

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

/* see log.h */
void gw_log_setup(gw_log_level_t level, gw_log_format_t format)
{
    atomic_store_explicit(&g_level, (int)level, memory_order_relaxed);
    atomic_store_explicit(&g_format, (int)format, memory_order_relaxed);
}

/* see log.h */
int gw_log_open(const char *path)
{
    if (path == NULL)
        return 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    /* dup2 swaps fd 2 in one step: a thread writing a line concurrently writes it either
     * to the old file or to the new one, never to a closed descriptor. */
    int rc = dup2(fd, STDERR_FILENO) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* see log.h */
void gw_log_set_thread(const char *name)
{
    t_name = name;
}

/* see log.h */
bool gw_log_enabled(gw_log_level_t level)
{
    return (int)level >= atomic_load_explicit(&g_level, memory_order_relaxed) &&
           level != GW_LOG_OFF;
}

/* see log.h */
int gw_log_level_parse(const char *s)
{
    for (int i = 0; i <= GW_LOG_OFF; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

/* see log.h */
const char *gw_log_level_name(gw_log_level_t level)
{
    return (unsigned)level <= GW_LOG_OFF ? level_names[level] : "?";
}

/* Formats the wall-clock time as RFC 3339 UTC with milliseconds. */
static size_t format_time(char *buf, size_t size)
{
    uint64_t ms = gw_clock_wall_ms(&gw_clock_system);
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    int k = snprintf(buf + n, size - n, ".%03uZ", (unsigned)(ms % 1000));
    return n + (k > 0 ? (size_t)k : 0);
}

/* Appends S to OUT as the inside of a JSON string (quotes, backslashes, control bytes and
 * bytes >= 0x80 escaped). Returns the new length; never writes past SIZE-1. */
static size_t json_escape(char *out, size_t len, size_t size, const char *s)
{
    for (; *s && len + 7 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[len++] = '\\';
            out[len++] = (char)c;
        } else if (c < 0x20 || c >= 0x80) {
            /* Bytes >= 0x80 are escaped one by one (read as Latin-1): a message may carry
             * bytes from the network that are not valid UTF-8, and the line must stay valid
             * JSON whatever they are. */
            len += (size_t)snprintf(out + len, size - len, "\\u%04x", c);
        } else {
            out[len++] = (char)c;
        }
    }
    return len;
}

/* see log.h */
void gw_logv(gw_log_level_t level, const char *fmt, va_list ap)
{
    if (!gw_log_enabled(level))
        return;
    char msg[4096], line[8192], ts[40];
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    if (m < 0)
        return;
    format_time(ts, sizeof ts);
    size_t n;
    if (atomic_load_explicit(&g_format, memory_order_relaxed) == GW_LOG_JSON) {
        int k = snprintf(line, sizeof line,
                         "{\"time\":\"%s\",\"level\":\"%s\",\"thread\":\"%s\",\"msg\":\"", ts,
                         level_names[level], t_name);
        n = json_escape(line, (size_t)k, sizeof line - 3, msg);
        line[n++] = '"';
        line[n++] = '}';
    } else {
        int k = snprintf(line, sizeof line, "%s %-5s [%s] %s", ts, level_names[level], t_name, msg);
        n = k < 0 ? 0 : (size_t)k >= sizeof line - 1 ? sizeof line - 2 : (size_t)k;
    }
    line[n++] = '\n';
    /* One write per line: lines from different threads never interleave. A failed write
     * to stderr has nowhere to be reported, so it is deliberately dropped. */
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

/* see log.h */
void gw_log(gw_log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gw_logv(level, fmt, ap);
    va_end(ap);
}

/* see log.h */
bool gw_lograte_allow(gw_lograte_t *r, uint64_t now_ms, uint64_t period_ms, uint64_t *suppressed)
{
    if (now_ms < r->next_ms) {
        r->suppressed++;
        return false;
    }
    *suppressed = r->suppressed;
    r->suppressed = 0;
    r->next_ms = now_ms + period_ms;
    return true;
}
