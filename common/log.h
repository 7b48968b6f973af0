/* log.h - leveled logging to stderr (or a file), plain or JSON lines, safe from any thread. */
#ifndef GW_LOG_H
#define GW_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum {
    GW_LOG_DEBUG = 0,
    GW_LOG_INFO,
    GW_LOG_WARN,
    GW_LOG_ERROR,
    GW_LOG_OFF
} gw_log_level_t;
typedef enum { GW_LOG_PLAIN = 0, GW_LOG_JSON } gw_log_format_t;

/* Sets the threshold and format: at start, and again on a reload (atomics: any thread). */
void gw_log_setup(gw_log_level_t level, gw_log_format_t format);

/* Sends log lines to PATH (opened O_APPEND) instead of stderr; NULL changes nothing (lines
 * keep going where they went).
 * Returns 0 or a negated errno. Safe to call again at any time to reopen after log
 * rotation (SIGUSR1): the new file replaces fd 2 atomically with dup2. */
int gw_log_open(const char *path);

/* Names this thread in log lines ("main", "ctl", "w0", ...). NAME must outlive the thread. */
void gw_log_set_thread(const char *name);

bool gw_log_enabled(gw_log_level_t level);

/* Writes one line. Each line is built in a local buffer and written with one write(2), so
 * lines from different threads never interleave. Long messages are truncated (4 KiB). */
void gw_log(gw_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gw_logv(gw_log_level_t level, const char *fmt, va_list ap);

/* Parses "debug"/"info"/"warn"/"error"/"off"; returns -1 for anything else. */
int gw_log_level_parse(const char *s);
const char *gw_log_level_name(gw_log_level_t level);

/* Rate limiting for lines that an attacker or an outage could repeat thousands of times a
 * second (rejections, connect failures). One per thread or per owner; not thread-safe. */
typedef struct gw_lograte_s {
    uint64_t next_ms;    /* no line before this time */
    uint64_t suppressed; /* lines dropped since the last one logged */
} gw_lograte_t;

/* True when a line may be logged at NOW_MS (at most one per PERIOD_MS); then *SUPPRESSED
 * is how many were dropped before it (say so in the line). False: count it and stay quiet. */
bool gw_lograte_allow(gw_lograte_t *r, uint64_t now_ms, uint64_t period_ms, uint64_t *suppressed);

#define gw_debug(...)                                                                              \
    do {                                                                                           \
        if (gw_log_enabled(GW_LOG_DEBUG))                                                          \
            gw_log(GW_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)
#define gw_info(...) gw_log(GW_LOG_INFO, __VA_ARGS__)
#define gw_warn(...) gw_log(GW_LOG_WARN, __VA_ARGS__)
#define gw_error(...) gw_log(GW_LOG_ERROR, __VA_ARGS__)

#endif
