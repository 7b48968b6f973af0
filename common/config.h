/* config.h - the core configuration every milestone shares (workers, log, buffers,
 * listeners, upstreams), loaded from YAML, with hooks for later milestones' keys. */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "addr.h"
#include "cfgtree.h"
#include "log.h"

typedef enum { GW_PROTO_TCP = 0, GW_PROTO_HTTP } gw_proto_t;

/* How milestone N extends N-1: by level. Slot N of a layered array belongs to milestone N
 * (slot 0 is unused): the runtime's layers (what each milestone's prepare built, runtime.h)
 * and the `ext` of every config node below (what each milestone's config hooks decoded).
 * Nothing is found by casting another milestone's struct or by following a chain. */
#define GW_LEVELS 8

typedef struct gw_backend_cfg_s {
    char *address_text;   /* as written, for logs and -T */
    gw_addr_t addr;       /* resolved at load time */
    void *ext[GW_LEVELS]; /* [N]: milestone N's part, owned by its config hooks */
} gw_backend_cfg_t;

typedef struct gw_upstream_cfg_s {
    char *name;
    gw_backend_cfg_t *backends;
    size_t nbackends;     /* >= 1 */
    void *ext[GW_LEVELS]; /* [N]: milestone N's part, owned by its config hooks */
} gw_upstream_cfg_t;

typedef struct gw_listener_cfg_s {
    char *name;
    char *address_text;
    gw_addr_t addr;
    unsigned addr_line, addr_col; /* where `address` is in the file: a bind error names it */
    gw_proto_t protocol;          /* `http` needs gw04 or later */
    char *upstream;               /* name, for tcp listeners */
    size_t upstream_index;        /* index into gw_config_t.upstreams */
    uint64_t max_connections;     /* default 4096, 1..1000000; one ceiling for all workers */
    uint64_t connect_timeout_ms;  /* default 5s */
    uint64_t idle_timeout_ms;     /* default 300s */
    void *ext[GW_LEVELS];         /* [N]: milestone N's part, owned by its config hooks */
} gw_listener_cfg_t;

typedef struct gw_buffers_cfg_s {
    uint64_t chunk_size; /* default 16KiB, 1KiB..1MiB: one read lands in one chunk */
    uint64_t high_water; /* default 64KiB: stop reading a side when the other's queue passes it */
    uint64_t low_water;  /* default 16KiB: resume below it; must be < high_water */
    uint64_t max_memory; /* default 256MiB: hard cap on all chunks of the process */
} gw_buffers_cfg_t;

typedef struct gw_config_s {
    char *path;
    unsigned workers;           /* default: number of CPUs; 1..256 */
    uint64_t drain_timeout_ms;  /* default 30s */
    gw_log_level_t log_level;   /* log.level, default info */
    gw_log_format_t log_format; /* log.format: plain | json */
    char *log_file;             /* log.file, default NULL = stderr */
    gw_buffers_cfg_t buffers;
    gw_listener_cfg_t *listeners;
    size_t nlisteners; /* >= 1 */
    gw_upstream_cfg_t *upstreams;
    size_t nupstreams;
    void *ext[GW_LEVELS]; /* [N]: milestone N's part, owned by its config hooks */
} gw_config_t;

/* How a later milestone adds its keys. Each hook is called with the mapping node of the
 * thing it extends after the core keys of that node were decoded; it looks up the keys it
 * owns with gw_cmap_get (which marks them used) and stores its results in its own slot,
 * ->ext[LEVEL]. Any NULL hook is skipped. Milestone N's hooks call N-1's (and only N-1's)
 * first, then decode, print or free their own slot: each level sees only its own part. */
typedef struct gw_config_ext_s {
    int level;                   /* milestone number of the binary: 1 for gw01 */
    const gw_later_key_t *later; /* keys of milestones above LEVEL, for hints; may be NULL;
                                  * looked up before gw_config_later_keys (always used) */
    void (*root)(gw_cdoc_t *doc, const gw_cnode_t *map, gw_config_t *cfg);
    void (*listener)(gw_cdoc_t *doc, const gw_cnode_t *map, gw_config_t *cfg, gw_listener_cfg_t *l);
    void (*upstream)(gw_cdoc_t *doc, const gw_cnode_t *map, gw_config_t *cfg, gw_upstream_cfg_t *u);
    void (*backend)(gw_cdoc_t *doc, const gw_cnode_t *map, gw_config_t *cfg, gw_upstream_cfg_t *u,
                    gw_backend_cfg_t *b);
    /* Cross-checks after everything was decoded (e.g. names that refer to each other).
     * Called only when no error was found so far, so it may rely on every field. */
    void (*validate)(gw_cdoc_t *doc, gw_config_t *cfg);
    /* Prints the ext keys for -T, indented by INDENT spaces, in the same YAML style. */
    void (*print_root)(FILE *out, const gw_config_t *cfg);
    void (*print_listener)(FILE *out, const gw_listener_cfg_t *l, int indent);
    void (*print_upstream)(FILE *out, const gw_upstream_cfg_t *u, int indent);
    void (*print_backend)(FILE *out, const gw_backend_cfg_t *b, int indent);
    void (*free)(gw_config_t *cfg); /* frees every ext pointer it set */
} gw_config_ext_t;

/* The keys that milestones 02..05 introduce, for "needs gwNN or later" messages. */
extern const gw_later_key_t gw_config_later_keys[];

/* Loads PATH into CFG (zeroed first). Every error found is written to ERRS (one
 * "FILE:LINE:COL: message" line each; stderr in the binaries) and counted: the loader does
 * not stop at the first mistake. Returns 0, or GW_ECONFIG when there was any error (CFG
 * is then freed already). EXT may be NULL (level 1, no extra keys). */
int gw_config_load(const char *path, const gw_config_ext_t *ext, gw_config_t *cfg, FILE *errs);

/* Same from a string, for tests. NAME is used as the file name in messages. */
int gw_config_load_string(const char *name, const char *text, const gw_config_ext_t *ext,
                          gw_config_t *cfg, FILE *errs);

/* Prints the effective configuration, every default filled in, as YAML that loads back to
 * the same values (-T). */
void gw_config_print(FILE *out, const gw_config_t *cfg, const gw_config_ext_t *ext);

/* Prints S as a double-quoted YAML scalar (quotes, backslashes and control characters
 * escaped), for print hooks; durations and sizes: gw_cfmt_duration / gw_cfmt_size. */
void gw_config_print_str(FILE *out, const char *s);

/* Frees everything CFG owns (calls EXT->free first). Safe on a zeroed CFG. */
void gw_config_free(gw_config_t *cfg, const gw_config_ext_t *ext);

/* Finds an upstream by name; NULL if absent. */
const gw_upstream_cfg_t *gw_config_upstream(const gw_config_t *cfg, const char *name);

#endif
