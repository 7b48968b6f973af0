/* gen.c - see gen.h. */
#include "gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* see gen.h */
gw_gen_t *gw_gen_new(uint64_t id, const gw_config_t *cfg, void (*free_cfg)(gw_config_t *cfg))
{
    gw_gen_t *g = calloc(1, sizeof *g);
    if (g == NULL)
        return NULL;
    g->lis = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof *g->lis);
    if (g->lis == NULL) {
        free(g);
        return NULL;
    }
    g->id = id;
    g->cfg = cfg;
    g->free_cfg = free_cfg;
    g->nlis = cfg->nlisteners;
    for (size_t i = 0; i < g->nlis; i++)
        g->lis[i] = (gw_glistener_t){.cfg = &cfg->listeners[i], .pos = i};
    return g;
}

/* see gen.h */
void gw_gen_free(gw_gen_t *g)
{
    if (g == NULL)
        return;
    for (size_t i = 0; i < g->ngarbage; i++)
        free(g->garbage[i]);
    free(g->garbage);
    free(g->lis);
    if (g->free_cfg != NULL)
        g->free_cfg((gw_config_t *)g->cfg); /* it was handed over with gw_gen_new */
    free(g);
}

/* see gen.h */
void gw_gen_vchange(gw_gen_t *g, const char *fmt, va_list ap)
{
    bool all_shown = g->summary_shown == g->changes; /* every earlier change is in it */
    g->changes++;
    char item[GW_GEN_SUMMARY];
    int n = vsnprintf(item, sizeof item, fmt, ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof item ? (size_t)n : sizeof item - 1;
    /* Joined only while every earlier change was shown and this one fits whole, with room
     * kept for the "; ... (N more)" ending (gw_gen_summary). */
    const size_t tail = 32;
    size_t sep = g->summary_len > 0 ? 2 : 0;
    if (!all_shown || g->summary_len + sep + len + tail >= sizeof g->summary)
        return;
    if (sep)
        memcpy(g->summary + g->summary_len, "; ", 2);
    memcpy(g->summary + g->summary_len + sep, item, len);
    g->summary_len += sep + len;
    g->summary[g->summary_len] = '\0';
    g->summary_shown++;
}

/* see gen.h */
void gw_gen_change(gw_gen_t *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gw_gen_vchange(g, fmt, ap);
    va_end(ap);
}

/* see gen.h */
const char *gw_gen_summary(const gw_gen_t *g, char *buf, size_t cap)
{
    unsigned more = g->changes - g->summary_shown;
    if (more == 0)
        snprintf(buf, cap, "%s", g->summary);
    else if (g->summary_len == 0)
        snprintf(buf, cap, "... (%u more)", more);
    else
        snprintf(buf, cap, "%s; ... (%u more)", g->summary, more);
    return buf;
}

/* see gen.h */
int gw_gen_keep_garbage(gw_gen_t *g, void *ptr)
{
    if (g->ngarbage == g->garbage_cap) {
        size_t cap = g->garbage_cap ? 2 * g->garbage_cap : 8;
        void **p = realloc(g->garbage, cap * sizeof *p);
        if (p == NULL)
            return GW_ENOMEM;
        g->garbage = p;
        g->garbage_cap = cap;
    }
    g->garbage[g->ngarbage++] = ptr;
    return 0;
}

/* see gen.h */
const gw_glistener_t *gw_gen_listener(const gw_gen_t *g, const struct gw_listener_s *obj)
{
    for (size_t i = 0; obj != NULL && i < g->nlis; i++)
        if (g->lis[i].obj == obj)
            return &g->lis[i];
    return NULL;
}
