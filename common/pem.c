/* pem.c - see pem.h. BearSSL's PEM decoder hands out DER in pieces through a callback; the
 * pieces are gathered here, so that each consumer gets a whole object and never has to
 * drive an X.509 or key decoder across pieces (BearSSL 0.6's br_x509_decoder_push crashes
 * when pushed again after it stopped: jwt.c found that with its fuzz target). */
#include "pem.h"

#include <bearssl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    unsigned char *buf;
    size_t len, cap;
    bool too_big, oom;
} gather_t;

static void gather(void *ctx, const void *data, size_t len)
{
    gather_t *g = ctx;
    if (g->too_big || g->oom)
        return;
    if (len > GW_PEM_MAX_OBJECT - g->len) {
        g->too_big = true;
        return;
    }
    if (g->len + len > g->cap) {
        size_t cap = g->cap ? g->cap : 2048;
        while (cap < g->len + len)
            cap *= 2;
        cap = cap > GW_PEM_MAX_OBJECT ? GW_PEM_MAX_OBJECT : cap;
        unsigned char *b = malloc(cap);
        if (b == NULL) {
            g->oom = true;
            return;
        }
        if (g->len)
            memcpy(b, g->buf, g->len);
        if (g->buf) {
            explicit_bzero(g->buf, g->cap);
            free(g->buf);
        }
        g->buf = b, g->cap = cap;
    }
    memcpy(g->buf + g->len, data, len);
    g->len += len;
}

/* One event of the decoder. Returns 1 for an object passed on, 0 for nothing, -1 to stop. */
static int on_event(br_pem_decoder_context *pc, gather_t *g, gw_pem_object_cb cb, void *ctx,
                    const char **why)
{
    switch (br_pem_decoder_event(pc)) {
    case BR_PEM_BEGIN_OBJ:
        g->len = 0, g->too_big = g->oom = false;
        br_pem_decoder_setdest(pc, gather, g);
        return 0;
    case BR_PEM_END_OBJ:
        if (g->too_big || g->oom) {
            *why = g->oom ? "out of memory" : "PEM object larger than 64 KiB";
            return -1;
        }
        return cb(ctx, br_pem_decoder_name(pc), g->buf, g->len, why) < 0 ? -1 : 1;
    case BR_PEM_ERROR:
        *why = "invalid PEM";
        return -1;
    }
    return 0;
}

/* see pem.h */
int gw_pem_each(const char *pem, size_t len, gw_pem_object_cb cb, void *ctx, const char **why)
{
    br_pem_decoder_context pc;
    gather_t g = {0};
    int n = 0;
    br_pem_decoder_init(&pc);
    /* A newline pushed after the text flushes a final END line written without one. */
    for (int pass = 0; pass < 2 && n >= 0; pass++) {
        const char *p = pass == 0 ? pem : "\n";
        size_t left = pass == 0 ? len : 1;
        while (left > 0) {
            size_t used = br_pem_decoder_push(&pc, p, left);
            p += used, left -= used;
            int r = on_event(&pc, &g, cb, ctx, why);
            if (r < 0) {
                n = -1;
                break;
            }
            n += r;
        }
    }
    if (g.buf) {
        explicit_bzero(g.buf, g.cap);
        free(g.buf);
    }
    return n;
}
