/* gen.h - a configuration generation (issue 17): one immutable object holding a parsed
 * config and everything each milestone level built from it, published to the workers
 * through common/snapshot and pinned by what uses it (docs/plan-issue17.md, section 3.2).
 *
 * This file is the object itself: its listeners' view, its per-level slots, the summary of
 * what changed since the generation before (the `applied` log line), and the memory it
 * frees when it goes. Who builds it (the runtime and each level's gen_build hook), who pins
 * it (an exchange at its head, a TCP pair at accept) and when it is freed (the snapshot's
 * reclaimer) are the runtime's business. Not thread-safe by itself: a generation is built
 * on the control thread, then only read until it is freed there. */
#ifndef GW_GEN_H
#define GW_GEN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct gw_listener_s;

/* One listener as this generation sees it. Its identity object (sockets, exact counters,
 * shared by every generation that keeps the address) is OBJ; its config and its position
 * are this generation's only: an index is valid with the generation that defines it. */
typedef struct gw_glistener_s {
    const gw_listener_cfg_t *cfg;
    struct gw_listener_s *obj; /* NULL until the runtime attaches the identity */
    size_t pos;                /* in cfg->listeners of this generation */
} gw_glistener_t;

#define GW_GEN_SUMMARY 512 /* bytes of the `applied` line's summary, NUL included */

typedef struct gw_gen_s {
    uint64_t id;            /* 1 for the configuration loaded at start, then one more per reload */
    const gw_config_t *cfg; /* freed with the generation by FREE_CFG (when not NULL) */
    void (*free_cfg)(gw_config_t *cfg);
    void *owner;         /* the runtime that built it (gw_runtime_t *), for its free function */
    bool published;      /* the runtime published it (and counts it until it is freed) */
    gw_glistener_t *lis; /* [nlis], in the config's order */
    size_t nlis;
    void *layers[GW_LEVELS]; /* [N]: what level N built for this generation (its gen_build) */
    /* What changed since the generation before: counted, and summarised for the log. */
    unsigned changes;
    unsigned summary_shown; /* how many of them are in summary (the first ones) */
    size_t summary_len;
    char summary[GW_GEN_SUMMARY];
    /* Memory that must outlive the readers of the generation before, freed with this one
     * (a listener's old name string, say, when a rename keeps the listener). */
    void **garbage;
    size_t ngarbage, garbage_cap;
} gw_gen_t;

/* A generation ID over CFG (taken: freed by FREE_CFG with the generation; FREE_CFG may be
 * NULL when the caller keeps it), with one gw_glistener_t per listener of CFG, no identity
 * attached and no level built. NULL when out of memory (CFG is then not taken). */
gw_gen_t *gw_gen_new(uint64_t id, const gw_config_t *cfg, void (*free_cfg)(gw_config_t *cfg));

/* Frees G: its garbage, its listener view, then its config. The levels' slots must have
 * been freed already (by their gen_free hooks, top level first). NULL is ignored. */
void gw_gen_free(gw_gen_t *g);

/* Records one change for the summary: "upstream 'app': +1 backend", say. Changes are
 * counted; their texts are joined with "; " while they fit in GW_GEN_SUMMARY, and the
 * summary then ends with "; ... (N more)" so that a reload changing thousands of routes
 * still logs one bounded line. */
void gw_gen_change(gw_gen_t *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gw_gen_vchange(gw_gen_t *g, const char *fmt, va_list ap);

/* The summary as it should be logged: "" when nothing changed, else the joined changes,
 * with "; ... (N more)" when some did not fit. Written into BUF (CAP bytes). */
const char *gw_gen_summary(const gw_gen_t *g, char *buf, size_t cap);

/* PTR (malloc'd) is freed with G. 0, or GW_ENOMEM: PTR is not taken (older readers may
 * still use it, so it must not be freed now: the build fails and changes nothing). */
int gw_gen_keep_garbage(gw_gen_t *g, void *ptr);

/* G's view of the listener whose identity is OBJ, or NULL when G does not have it (it was
 * removed, or added later). */
const gw_glistener_t *gw_gen_listener(const gw_gen_t *g, const struct gw_listener_s *obj);

#endif
