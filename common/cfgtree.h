/* cfgtree.h - a YAML document as a small tree of nodes that remember their line:column,
 * plus typed getters that report every mistake as "FILE:LINE:COL: message". */
#ifndef GW_CFGTREE_H
#define GW_CFGTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

/* Why a tree and not libyaml events straight into structs: each milestone decodes its
 * own keys from the same document (01 knows listeners, 02 adds balancers...). A tree lets
 * every layer look up what it owns and mark it used; whatever no layer used is then
 * reported as an unknown key, so nothing is ever silently ignored. */

typedef enum { GW_CNODE_SCALAR, GW_CNODE_MAP, GW_CNODE_SEQ } gw_cnode_type_t;

typedef struct gw_cnode_s gw_cnode_t;
typedef struct gw_cpair_s gw_cpair_t;

struct gw_cpair_s {
    gw_cnode_t *key; /* always a scalar */
    gw_cnode_t *value;
    bool used; /* set by gw_cmap_get and friends */
};

struct gw_cnode_s {
    gw_cnode_type_t type;
    unsigned line, col; /* 1-based position of the node's first character */
    /* scalar */
    char *str;   /* NUL-terminated; "" for an empty value */
    bool quoted; /* written with quotes: never null/bool/number by accident */
    bool null;   /* plain `~`, `null` or nothing at all */
    /* map: pairs[0..n); seq: items[0..n) */
    gw_cpair_t *pairs;
    gw_cnode_t **items;
    size_t n;
    /* map: every key name a getter asked for, present or not (copies), so an unknown key
     * can be answered with "did you mean ...?" */
    char **asked;
    size_t nasked;
};

typedef struct gw_cdoc_s {
    char *file;       /* name used in messages */
    gw_cnode_t *root; /* NULL when the file could not be parsed or was empty */
    char **errors;    /* "FILE:LINE:COL: message", in the order found; after 100 errors
                       * one last "FILE: too many errors, stopping here" and no more */
    size_t nerrors;
    int level; /* milestone number of the binary decoding it, for "needs gwNN" hints */
    bool oom;  /* an allocation failed (gw_cdoc_oom), or an error could not be recorded:
                * the load fails whatever `errors` holds, and what it holds may be only
                * consequences of the missing memory (a key that was never stored) */
} gw_cdoc_t;

/* Parses the YAML file PATH (or TEXT of LEN bytes, named NAME) into DOC. A syntax error,
 * an alias, an anchor, a tag, more than one document or a duplicate key is recorded as an
 * error with its position. Returns 0 when a tree was built (the tree may still be
 * semantically wrong), GW_ECONFIG otherwise. DOC must be freed with gw_cdoc_free either
 * way. An empty document gives root == NULL and is reported as "empty configuration". */
int gw_cdoc_load_file(gw_cdoc_t *doc, const char *path, int level);
int gw_cdoc_load_string(gw_cdoc_t *doc, const char *name, const char *text, size_t len, int level);
void gw_cdoc_free(gw_cdoc_t *doc);

/* Records an error at AT's position (the start of the file when AT is NULL). */
void gw_cdoc_error(gw_cdoc_t *doc, const gw_cnode_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records that an allocation failed while handling AT (NULL: no position): sets doc->oom,
 * so the load fails even if the message itself cannot be stored. Loaders report it as one
 * line instead of the errors found (see doc->oom). */
void gw_cdoc_oom(gw_cdoc_t *doc, const gw_cnode_t *at);

/* Checks that NODE is a mapping / sequence; otherwise records "WHAT must be a mapping"
 * (or sequence) at NODE and returns false. */
bool gw_cnode_expect_map(gw_cdoc_t *doc, const gw_cnode_t *node, const char *what);
bool gw_cnode_expect_seq(gw_cdoc_t *doc, const gw_cnode_t *node, const char *what);

/* Marks every key under NODE (not NULL) used, at any depth, so that gw_cdoc_check_unused
 * reports none of them. For a caller that has just reported NODE itself as wrong (the wrong
 * type, a conflict with another key, an unknown middleware): listing each key inside it as
 * unknown too would only bury the one real mistake. The typed getters and
 * gw_cnode_expect_* do this themselves. */
void gw_cnode_silence(const gw_cnode_t *node);

/* Looks KEY up in MAP (which must be a mapping), marks it used and remembers KEY in
 * map->asked (hence the non-const MAP: only that bookkeeping changes). Returns the value node
 * or NULL when absent. gw_cmap_require records "missing required key 'KEY'" at MAP when
 * it is absent. */
const gw_cnode_t *gw_cmap_get(gw_cdoc_t *doc, const gw_cnode_t *map, const char *key);
const gw_cnode_t *gw_cmap_require(gw_cdoc_t *doc, const gw_cnode_t *map, const char *key);
/* (MAP is declared const for callers' convenience; the bookkeeping fields are mutable.) */

/* Typed getters. Each checks NODE's type and range and, on a mistake, records an error at
 * NODE naming KEY (used only in the message) and returns GW_ECONFIG leaving *OUT
 * unchanged; on success it stores into *OUT and returns 0.
 *   string: any non-null scalar (copied with malloc; caller frees).
 *   uint:   decimal digits only, MIN..MAX inclusive.
 *   bool:   exactly `true` or `false` (unquoted).
 *   duration: integer + unit: ms, s, m, h ("250ms", "5s", "2m"); stored in ms; MIN..MAX ms.
 *   size:   integer + optional unit: B, KiB, MiB, GiB (also KB/MB/GB = powers of 1000);
 *           stored in bytes; MIN..MAX.
 *   percent: a number 0..100 (decimals allowed), stored as a double.
 *   status_range: "200-299" or a single "200"; 100..599, lo <= hi.
 *   enumeration: one of NAMES (NULL-terminated); stores the index. The error lists the
 *           accepted names.
 *   addr:   see gw_addr_parse; host names are resolved here.
 * NODE may be NULL (the key is absent): then nothing is recorded, *OUT keeps the default
 * the caller stored there, and the result is 0. uint, bool and percent must be written
 * unquoted (a quoted YAML value is a string); the others accept quotes. */
int gw_cget_string(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, char **out);
int gw_cget_uint(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, uint64_t min,
                 uint64_t max, uint64_t *out);
int gw_cget_bool(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, bool *out);
int gw_cget_duration(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, uint64_t min_ms,
                     uint64_t max_ms, uint64_t *out_ms);
int gw_cget_size(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, uint64_t min,
                 uint64_t max, uint64_t *out);
int gw_cget_percent(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, double *out);
int gw_cget_status_range(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, unsigned *lo,
                         unsigned *hi);
int gw_cget_enum(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, const char *const *names,
                 int *out);
int gw_cget_addr(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, gw_addr_t *out);

/* Format a value so that gw_cget_duration / gw_cget_size parse it back to the same number
 * (for -T): the largest unit that divides exactly, "250ms", "5m", "16KiB", "1000". Return
 * BUF (32 bytes are enough). */
char *gw_cfmt_duration(uint64_t ms, char *buf, size_t size);
char *gw_cfmt_size(uint64_t bytes, char *buf, size_t size);

/* Levenshtein distance between A and B, for "did you mean" hints; names longer than 64
 * bytes count as far apart (~0u). */
unsigned gw_cfg_edit_distance(const char *a, const char *b);

/* A key that a later milestone introduces: PATH is dotted, `*` matches any one segment
 * (a map key or a sequence index), e.g. "upstreams.*.balancer", "listeners.*.routes". */
typedef struct gw_later_key_s {
    const char *path;
    int milestone;
} gw_later_key_t;

/* Walks the whole tree and records an error for every map key no getter marked used:
 * "KEY: needs gwNN or later" when LATER (terminated by {NULL,0}) lists it with a
 * milestone above doc->level, otherwise "unknown key 'KEY'" plus "(did you mean 'X'?)"
 * when a key asked for in that map (see `asked`) is within edit distance 2. Keys under a map whose
 * own key was reported are not reported again, nor keys inside a value that a getter or
 * gw_cnode_expect_* already reported as the wrong type. */
void gw_cdoc_check_unused(gw_cdoc_t *doc, const gw_later_key_t *later);

#endif
