/* out.h - a bounded writer into a caller's buffer: pieces are appended with memcpy, no
 * printf per piece; once one does not fit the writer stops and remembers it, so a caller
 * writes a whole line or header value and checks once at the end. Used for the access
 * log's lines (04's accesslog.c) and the Forwarded element (04's mw_basic.c). */
#ifndef GW_OUT_H
#define GW_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

typedef struct gw_out_s {
    char *buf;
    size_t cap, len; /* one byte of CAP is always kept for the NUL */
    bool full;       /* something did not fit: the rest was dropped */
} gw_out_t;

/* A writer over BUF[0..CAP) (CAP 0: full from the start). */
static inline gw_out_t gw_out(char *buf, size_t cap)
{
    return (gw_out_t){buf, cap, 0, cap == 0};
}

/* Appends S[0..N), or marks O full when it does not fit with the NUL. */
static inline void gw_out_put(gw_out_t *o, const char *s, size_t n)
{
    if (o->full || o->cap - o->len <= n) {
        o->full = true;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

/* Appends the NUL-terminated S. */
static inline void gw_out_str(gw_out_t *o, const char *s)
{
    gw_out_put(o, s, strlen(s));
}

/* Ends the text with its NUL; true when everything fit (then o->len is its length). */
static inline bool gw_out_end(gw_out_t *o)
{
    if (o->full)
        return false;
    o->buf[o->len] = '\0';
    return true;
}

#endif
