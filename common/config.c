/* config.c - decode the core configuration from a cfgtree document; print it back (-T). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "loadio.h"

#define KiB ((uint64_t)1024)
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)
#define SEC ((uint64_t)1000)
#define MIN (60 * SEC)
#define HOUR (60 * MIN)

/* see config.h */
const gw_later_key_t gw_config_later_keys[] = {
    {"upstreams.*.balancer", 2},
    {"upstreams.*.hash", 2},
    {"upstreams.*.health_check", 2},
    {"upstreams.*.outlier", 2},
    {"upstreams.*.outlier.consecutive_gateway_errors", 4},
    {"upstreams.*.outlier.consecutive_5xx", 4},
    {"upstreams.*.panic_threshold", 2},
    {"upstreams.*.backends.*.weight", 2},
    {"upstreams.*.retry", 2},
    {"upstreams.*.retry.backoff", 3},
    {"upstreams.*.retry.backoff_max", 3},
    {"upstreams.*.retry.budget_percent", 3},
    {"upstreams.*.retry.min_concurrent", 3},
    {"upstreams.*.circuit_breaker", 3},
    {"listeners.*.rate_limit", 3},
    {"admin", 3},
    {"listeners.*.routes", 4},
    {"listeners.*.tls", 4},
    {"listeners.*.http", 4},
    {"listeners.*.tls_passthrough", 4},
    {"listeners.*.proxy_protocol", 4},
    {"upstreams.*.proxy_protocol", 4},
    {"upstreams.*.keepalive", 4},
    {"upstreams.*.tls", 4},
    {"reload", 5},
    {"registry", 5},
    {"discovery", 5},
    {"redis", 5},
    {"etcd", 5},
    {NULL, 0},
};

/* In the order of gw_log_level_t, gw_log_format_t and gw_proto_t: the index is the value. */
static const char *const level_names[] = {"debug", "info", "warn", "error", "off", NULL};
static const char *const format_names[] = {"plain", "json", NULL};
static const char *const proto_names[] = {"tcp", "http", NULL};

typedef struct loader_s {
    gw_cdoc_t *doc;
    const gw_config_ext_t *ext; /* never NULL here: a zeroed one stands in */
    gw_config_t *cfg;
    bool upstreams_ok; /* `upstreams` was a mapping: listener references can be checked */
} loader_t;

static void oom(loader_t *ld, const gw_cnode_t *at)
{
    gw_cdoc_oom(ld->doc, at);
}

/* ---- log, buffers ------------------------------------------------------------------- */

static void decode_log(loader_t *ld, const gw_cnode_t *map)
{
    gw_config_t *cfg = ld->cfg;
    if (!gw_cnode_expect_map(ld->doc, map, "log"))
        return;
    int level = (int)cfg->log_level, format = (int)cfg->log_format;
    if (gw_cget_enum(ld->doc, gw_cmap_get(ld->doc, map, "level"), "level", level_names, &level) ==
        0)
        cfg->log_level = (gw_log_level_t)level;
    if (gw_cget_enum(ld->doc, gw_cmap_get(ld->doc, map, "format"), "format", format_names,
                     &format) == 0)
        cfg->log_format = (gw_log_format_t)format;
    const gw_cnode_t *file = gw_cmap_get(ld->doc, map, "file");
    if (gw_cget_string(ld->doc, file, "file", &cfg->log_file) == 0 && cfg->log_file &&
        !cfg->log_file[0])
        gw_cdoc_error(ld->doc, file, "file must not be empty (leave it out to log to stderr)");
}

/* The relations between buffer sizes. Each error is placed at the key the user wrote that
 * takes part in it, falling back to the other one when only the default was in play. */
static void check_buffers(loader_t *ld, const gw_cnode_t *map, const gw_cnode_t *chunk,
                          const gw_cnode_t *hw, const gw_cnode_t *lw, const gw_cnode_t *mm)
{
    const gw_buffers_cfg_t *b = &ld->cfg->buffers;
    char x[32], y[32];
    if (b->low_water >= b->high_water)
        gw_cdoc_error(ld->doc,
                      lw   ? lw
                      : hw ? hw
                           : map,
                      "low_water (%s) must be below high_water (%s)",
                      gw_cfmt_size(b->low_water, x, sizeof(x)),
                      gw_cfmt_size(b->high_water, y, sizeof(y)));
    if (b->max_memory < 4 * b->chunk_size)
        gw_cdoc_error(ld->doc,
                      mm      ? mm
                      : chunk ? chunk
                              : map,
                      "max_memory (%s) must be at least 4 * chunk_size (%s)",
                      gw_cfmt_size(b->max_memory, x, sizeof(x)),
                      gw_cfmt_size(b->chunk_size, y, sizeof(y)));
}

static void decode_buffers(loader_t *ld, const gw_cnode_t *map)
{
    gw_buffers_cfg_t *b = &ld->cfg->buffers;
    gw_cdoc_t *doc = ld->doc;
    if (!gw_cnode_expect_map(doc, map, "buffers"))
        return;
    const gw_cnode_t *chunk = gw_cmap_get(doc, map, "chunk_size");
    const gw_cnode_t *hw = gw_cmap_get(doc, map, "high_water");
    const gw_cnode_t *lw = gw_cmap_get(doc, map, "low_water");
    const gw_cnode_t *mm = gw_cmap_get(doc, map, "max_memory");
    bool bad = false;
    bad |= gw_cget_size(doc, chunk, "chunk_size", KiB, MiB, &b->chunk_size) != 0;
    bad |= gw_cget_size(doc, hw, "high_water", KiB, 64 * MiB, &b->high_water) != 0;
    bad |= gw_cget_size(doc, lw, "low_water", 0, 64 * MiB, &b->low_water) != 0;
    bad |= gw_cget_size(doc, mm, "max_memory", MiB, 64 * GiB, &b->max_memory) != 0;
    if (!bad) /* comparing against a value that failed to parse would only add noise */
        check_buffers(ld, map, chunk, hw, lw, mm);
}

/* ---- upstreams ---------------------------------------------------------------------- */

static void decode_backend(loader_t *ld, const gw_cnode_t *map, gw_upstream_cfg_t *u,
                           gw_backend_cfg_t *b)
{
    if (!gw_cnode_expect_map(ld->doc, map, "each backend"))
        return;
    const gw_cnode_t *addr = gw_cmap_require(ld->doc, map, "address");
    if (addr && gw_cget_addr(ld->doc, addr, "address", &b->addr) == 0 &&
        !(b->address_text = strdup(addr->str)))
        oom(ld, addr);
    /* A backend is known by its upstream and address (its health, ejection and pooled
     * connections are that address's), so a second entry with the same address would be
     * the same backend listed twice: say so rather than guess which entry counts. */
    for (const gw_backend_cfg_t *o = u->backends; b->address_text && o < b; o++)
        if (o->address_text && gw_addr_equal(&o->addr, &b->addr))
            gw_cdoc_error(ld->doc, addr,
                          "backend '%s' is already in upstream '%s' (as '%s'): list an "
                          "address once (more traffic to it: its weight, from gw02)",
                          b->address_text, u->name, o->address_text);
    if (ld->ext->backend)
        ld->ext->backend(ld->doc, map, ld->cfg, u, b);
}

static void decode_backends(loader_t *ld, const gw_cnode_t *seq, gw_upstream_cfg_t *u)
{
    if (!gw_cnode_expect_seq(ld->doc, seq, "backends"))
        return;
    if (seq->n == 0) {
        gw_cdoc_error(ld->doc, seq, "backends must not be empty");
        return;
    }
    u->backends = calloc(seq->n, sizeof(*u->backends));
    if (!u->backends) {
        oom(ld, seq);
        return;
    }
    for (size_t i = 0; i < seq->n; i++) {
        gw_backend_cfg_t *b = &u->backends[u->nbackends++];
        decode_backend(ld, seq->items[i], u, b);
    }
}

static void decode_upstream(loader_t *ld, const gw_cnode_t *map, gw_upstream_cfg_t *u)
{
    char what[128];
    snprintf(what, sizeof(what), "upstream '%s'", u->name);
    if (!gw_cnode_expect_map(ld->doc, map, what))
        return;
    decode_backends(ld, gw_cmap_require(ld->doc, map, "backends"), u);
    if (ld->ext->upstream)
        ld->ext->upstream(ld->doc, map, ld->cfg, u);
}

static void decode_upstreams(loader_t *ld, const gw_cnode_t *map)
{
    gw_config_t *cfg = ld->cfg;
    if (!gw_cnode_expect_map(ld->doc, map, "upstreams"))
        return;
    ld->upstreams_ok = true;
    if (map->n == 0)
        return;
    cfg->upstreams = calloc(map->n, sizeof(*cfg->upstreams));
    if (!cfg->upstreams) {
        oom(ld, map);
        return;
    }
    /* Every key of `upstreams` is a name we own, so it is used whatever its value. The
     * entry exists even when its body is wrong, so listeners naming it do not also fail. */
    for (size_t i = 0; i < map->n; i++) {
        gw_cpair_t *p = &map->pairs[i];
        gw_upstream_cfg_t *u = &cfg->upstreams[cfg->nupstreams++];
        p->used = true;
        if (!(u->name = strdup(p->key->str))) {
            oom(ld, p->key);
            continue;
        }
        decode_upstream(ld, p->value, u);
    }
}

/* ---- listeners ---------------------------------------------------------------------- */

/* Names and addresses must be unique: two listeners on one address would both bind with
 * SO_REUSEPORT and share the traffic at random. Compared with the ones decoded before. */
static void check_unique(loader_t *ld, const gw_listener_cfg_t *l, const gw_cnode_t *name,
                         const gw_cnode_t *addr)
{
    for (const gw_listener_cfg_t *o = ld->cfg->listeners; o < l; o++) {
        if (name && l->name && o->name && !strcmp(o->name, l->name))
            gw_cdoc_error(ld->doc, name, "duplicate listener name '%s'", l->name);
        if (addr && l->address_text && o->address_text && gw_addr_equal(&o->addr, &l->addr))
            gw_cdoc_error(ld->doc, addr, "address '%s' is already used by listener '%s'",
                          l->address_text, o->name ? o->name : "?");
    }
}

/* `http` is a real protocol name whose support arrives in gw04; before that it gets its
 * own message rather than the generic "must be one of". */
static bool decode_protocol(loader_t *ld, const gw_cnode_t *map, gw_listener_cfg_t *l)
{
    const gw_cnode_t *node = gw_cmap_get(ld->doc, map, "protocol");
    int p = GW_PROTO_TCP;
    if (gw_cget_enum(ld->doc, node, "protocol", proto_names, &p) != 0)
        return true;
    if (p == GW_PROTO_HTTP && ld->doc->level < 4) {
        gw_cdoc_error(ld->doc, node, "protocol 'http' needs gw04 or later");
        return false;
    }
    l->protocol = (gw_proto_t)p;
    return true;
}

/* Whether MAP has KEY, without claiming it (it belongs to a later level). A tcp listener
 * with gw04's tls_passthrough names its upstreams there, so its `upstream` is optional. */
static bool has_key(const gw_cnode_t *map, const char *key)
{
    for (size_t i = 0; map->type == GW_CNODE_MAP && i < map->n; i++)
        if (!strcmp(map->pairs[i].key->str, key))
            return true;
    return false;
}

static void decode_listener_upstream(loader_t *ld, const gw_cnode_t *map, gw_listener_cfg_t *l,
                                     bool required)
{
    gw_cdoc_t *doc = ld->doc;
    const gw_cnode_t *node =
        required ? gw_cmap_require(doc, map, "upstream") : gw_cmap_get(doc, map, "upstream");
    if (gw_cget_string(doc, node, "upstream", &l->upstream) != 0 || !l->upstream)
        return;
    for (size_t i = 0; i < ld->cfg->nupstreams; i++) {
        const char *name = ld->cfg->upstreams[i].name;
        if (name && !strcmp(name, l->upstream)) {
            l->upstream_index = i;
            return;
        }
    }
    if (ld->upstreams_ok)
        gw_cdoc_error(doc, node, "unknown upstream '%s'", l->upstream);
}

static void decode_listener(loader_t *ld, const gw_cnode_t *map, gw_listener_cfg_t *l)
{
    gw_cdoc_t *doc = ld->doc;
    l->max_connections = 4096;
    l->connect_timeout_ms = 5 * SEC;
    l->idle_timeout_ms = 300 * SEC;
    if (!gw_cnode_expect_map(doc, map, "each listener"))
        return;
    const gw_cnode_t *name = gw_cmap_require(doc, map, "name");
    gw_cget_string(doc, name, "name", &l->name);
    const gw_cnode_t *addr = gw_cmap_require(doc, map, "address");
    if (addr && gw_cget_addr(doc, addr, "address", &l->addr) == 0 &&
        !(l->address_text = strdup(addr->str)))
        oom(ld, addr);
    if (addr) {
        l->addr_line = addr->line;
        l->addr_col = addr->col;
    }
    check_unique(ld, l, name, addr);
    /* After a rejected `http` the listener is read as tcp, but its upstream is optional:
     * an http listener would not have one, and "missing upstream" would be noise. */
    bool proto_ok = decode_protocol(ld, map, l);
    if (l->protocol == GW_PROTO_TCP)
        decode_listener_upstream(ld, map, l, proto_ok && !has_key(map, "tls_passthrough"));
    gw_cget_uint(doc, gw_cmap_get(doc, map, "max_connections"), "max_connections", 1, 1000000,
                 &l->max_connections);
    gw_cget_duration(doc, gw_cmap_get(doc, map, "connect_timeout"), "connect_timeout", 1, 10 * MIN,
                     &l->connect_timeout_ms);
    gw_cget_duration(doc, gw_cmap_get(doc, map, "idle_timeout"), "idle_timeout", 1, 24 * HOUR,
                     &l->idle_timeout_ms);
    if (ld->ext->listener)
        ld->ext->listener(doc, map, ld->cfg, l);
}

static void decode_listeners(loader_t *ld, const gw_cnode_t *seq)
{
    gw_config_t *cfg = ld->cfg;
    if (!gw_cnode_expect_seq(ld->doc, seq, "listeners"))
        return;
    if (seq->n == 0) {
        gw_cdoc_error(ld->doc, seq, "listeners must not be empty");
        return;
    }
    cfg->listeners = calloc(seq->n, sizeof(*cfg->listeners));
    if (!cfg->listeners) {
        oom(ld, seq);
        return;
    }
    for (size_t i = 0; i < seq->n; i++)
        decode_listener(ld, seq->items[i], &cfg->listeners[cfg->nlisteners++]);
}

/* ---- root --------------------------------------------------------------------------- */

static void set_defaults(gw_config_t *cfg)
{
    unsigned cpus = gw_loadio()->cpus();
    cfg->workers = cpus < 1 ? 1 : cpus > 256 ? 256 : cpus;
    cfg->drain_timeout_ms = 30 * SEC;
    cfg->log_level = GW_LOG_INFO;
    cfg->log_format = GW_LOG_PLAIN;
    cfg->buffers.chunk_size = 16 * KiB;
    cfg->buffers.high_water = 64 * KiB;
    cfg->buffers.low_water = 16 * KiB;
    cfg->buffers.max_memory = 256 * MiB;
}

/* Upstreams are decoded before listeners, whatever their order in the file, so that a
 * listener's `upstream` can be checked at once; errors are sorted by position later. */
static void decode_root(loader_t *ld, const gw_cnode_t *root)
{
    gw_cdoc_t *doc = ld->doc;
    gw_config_t *cfg = ld->cfg;
    if (!gw_cnode_expect_map(doc, root, "the configuration"))
        return;
    uint64_t workers = cfg->workers;
    if (gw_cget_uint(doc, gw_cmap_get(doc, root, "workers"), "workers", 1, 256, &workers) == 0)
        cfg->workers = (unsigned)workers;
    gw_cget_duration(doc, gw_cmap_get(doc, root, "drain_timeout"), "drain_timeout", 0, HOUR,
                     &cfg->drain_timeout_ms);
    decode_log(ld, gw_cmap_get(doc, root, "log"));
    decode_buffers(ld, gw_cmap_get(doc, root, "buffers"));
    decode_upstreams(ld, gw_cmap_require(doc, root, "upstreams"));
    decode_listeners(ld, gw_cmap_require(doc, root, "listeners"));
    if (ld->ext->root)
        ld->ext->root(doc, root, cfg);
}

/* The core table plus the milestone's own, the milestone's first. NULL when there is no
 * extra table (the core one is then used as is) or on allocation failure. */
static gw_later_key_t *merge_later(const gw_later_key_t *extra)
{
    size_t n = 0, m = 0;
    if (!extra)
        return NULL;
    while (extra[n].path)
        n++;
    while (gw_config_later_keys[m].path)
        m++;
    gw_later_key_t *all = malloc((n + m + 1) * sizeof(*all));
    if (!all)
        return NULL;
    memcpy(all, extra, n * sizeof(*all));
    memcpy(all + n, gw_config_later_keys, (m + 1) * sizeof(*all));
    return all;
}

static void decode(gw_cdoc_t *doc, const gw_config_ext_t *ext, gw_config_t *cfg)
{
    loader_t ld = {.doc = doc, .ext = ext, .cfg = cfg};
    decode_root(&ld, doc->root);
    if (doc->nerrors == 0 && !doc->oom && ext->validate)
        ext->validate(doc, cfg);
    gw_later_key_t *merged = merge_later(ext->later);
    gw_cdoc_check_unused(doc, merged ? merged : gw_config_later_keys);
    free(merged);
}

/* ---- loading ------------------------------------------------------------------------ */

/* Position of an error line "FILE:LINE:COL: ..." as one sortable number; lines without a
 * position (the "too many errors" line) sort last. */
static uint64_t error_pos(const gw_cdoc_t *doc, const char *e)
{
    unsigned line, col;
    size_t skip = doc->file ? strlen(doc->file) : 0;
    if (!doc->file || strncmp(e, doc->file, skip) != 0 ||
        sscanf(e + skip, ":%u:%u:", &line, &col) != 2)
        return UINT64_MAX;
    return (uint64_t)line << 32 | col;
}

/* Writes the errors in file order, as a compiler would. Decoding finds them in another
 * order (unknown keys only at the end, duplicates when a mapping closes); the sort is
 * stable, so errors at one position keep the order they were found in. */
static void print_errors(const gw_cdoc_t *doc, FILE *errs)
{
    if (errs && doc->oom) {
        /* Whatever else was found may only be a consequence (a key that could not be stored
         * is then "missing"): one honest line instead. fprintf needs no memory of ours. */
        fprintf(errs, "%s: out of memory while loading the configuration\n",
                doc->file ? doc->file : "<config>");
        fflush(errs);
        return;
    }
    if (!errs || doc->nerrors == 0)
        return;
    size_t n = doc->nerrors;
    char **v = malloc(n * sizeof(*v));
    if (v) {
        for (size_t i = 0; i < n; i++) { /* insertion sort: at most ~100 lines */
            size_t j = i;
            for (; j > 0 && error_pos(doc, v[j - 1]) > error_pos(doc, doc->errors[i]); j--)
                v[j] = v[j - 1];
            v[j] = doc->errors[i];
        }
    }
    for (size_t i = 0; i < n; i++)
        fprintf(errs, "%s\n", v ? v[i] : doc->errors[i]);
    fflush(errs);
    free(v);
}

/* Shared tail of both loaders: DOC was parsed with result RC. */
static int finish_load(gw_cdoc_t *doc, int rc, const gw_config_ext_t *ext, gw_config_t *cfg,
                       FILE *errs)
{
    if (rc == 0 && !doc->oom) /* a tree missing what could not be allocated: not decoded */
        decode(doc, ext, cfg);
    if (!cfg->path && !(cfg->path = strdup(doc->file ? doc->file : "")))
        gw_cdoc_oom(doc, NULL);
    print_errors(doc, errs);
    rc = doc->nerrors || doc->oom ? GW_ECONFIG : 0;
    gw_cdoc_free(doc);
    if (rc)
        gw_config_free(cfg, ext);
    return rc;
}

static const gw_config_ext_t no_ext = {.level = 1};

/* see config.h */
int gw_config_load(const char *path, const gw_config_ext_t *ext, gw_config_t *cfg, FILE *errs)
{
    gw_cdoc_t doc;
    if (!ext)
        ext = &no_ext;
    memset(cfg, 0, sizeof(*cfg));
    set_defaults(cfg);
    int rc = gw_cdoc_load_file(&doc, path, ext->level);
    return finish_load(&doc, rc, ext, cfg, errs);
}

/* see config.h */
int gw_config_load_string(const char *name, const char *text, const gw_config_ext_t *ext,
                          gw_config_t *cfg, FILE *errs)
{
    gw_cdoc_t doc;
    if (!ext)
        ext = &no_ext;
    memset(cfg, 0, sizeof(*cfg));
    set_defaults(cfg);
    int rc = gw_cdoc_load_string(&doc, name, text, strlen(text), ext->level);
    return finish_load(&doc, rc, ext, cfg, errs);
}

/* ---- printing (-T) ------------------------------------------------------------------ */

/* see config.h */
void gw_config_print_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20 || c == 0x7F)
            fprintf(out, "\\x%02X", c);
        else
            fputc(c, out); /* UTF-8 passes through: libyaml validated it on the way in */
    }
    fputc('"', out);
}

static void print_key_str(FILE *out, int indent, const char *key, const char *value)
{
    fprintf(out, "%*s%s: ", indent, "", key);
    gw_config_print_str(out, value);
    fputc('\n', out);
}

/* An address as written (a name stays a name, re-resolved on reload), with what it
 * resolved to as a comment when that differs. */
static void print_addr(FILE *out, int indent, const char *key, const char *text,
                       const gw_addr_t *addr)
{
    char buf[GW_ADDR_STRLEN];
    fprintf(out, "%*s%s: ", indent, "", key);
    gw_config_print_str(out, text ? text : "");
    gw_addr_format(addr, buf, sizeof(buf));
    if (text && strcmp(text, buf) != 0)
        fprintf(out, "  # %s", buf);
    fputc('\n', out);
}

static void print_root_keys(FILE *out, const gw_config_t *cfg)
{
    char a[32], b[32], c[32], d[32];
    const gw_buffers_cfg_t *buf = &cfg->buffers;
    fprintf(out, "workers: %u\n", cfg->workers);
    fprintf(out, "drain_timeout: %s\n", gw_cfmt_duration(cfg->drain_timeout_ms, a, sizeof(a)));
    fprintf(out, "log:\n  level: %s\n  format: %s\n", level_names[cfg->log_level],
            format_names[cfg->log_format]);
    if (cfg->log_file)
        print_key_str(out, 2, "file", cfg->log_file);
    else
        fprintf(out, "  # file: not set, logging to stderr\n");
    fprintf(out,
            "buffers:\n  chunk_size: %s\n  high_water: %s\n  low_water: %s\n"
            "  max_memory: %s\n",
            gw_cfmt_size(buf->chunk_size, a, sizeof(a)),
            gw_cfmt_size(buf->high_water, b, sizeof(b)), gw_cfmt_size(buf->low_water, c, sizeof(c)),
            gw_cfmt_size(buf->max_memory, d, sizeof(d)));
}

static void print_listener(FILE *out, const gw_listener_cfg_t *l, const gw_config_ext_t *ext)
{
    char a[32];
    fprintf(out, "  - name: ");
    gw_config_print_str(out, l->name ? l->name : "");
    fputc('\n', out);
    print_addr(out, 4, "address", l->address_text, &l->addr);
    fprintf(out, "    protocol: %s\n", proto_names[l->protocol]);
    if (l->upstream)
        print_key_str(out, 4, "upstream", l->upstream);
    fprintf(out, "    max_connections: %" PRIu64 "\n", l->max_connections);
    fprintf(out, "    connect_timeout: %s\n",
            gw_cfmt_duration(l->connect_timeout_ms, a, sizeof(a)));
    fprintf(out, "    idle_timeout: %s\n", gw_cfmt_duration(l->idle_timeout_ms, a, sizeof(a)));
    if (ext->print_listener)
        ext->print_listener(out, l, 4);
}

static void print_upstream(FILE *out, const gw_upstream_cfg_t *u, const gw_config_ext_t *ext)
{
    fprintf(out, "  ");
    gw_config_print_str(out, u->name ? u->name : "");
    fprintf(out, ":\n    backends:\n");
    for (size_t i = 0; i < u->nbackends; i++) {
        const gw_backend_cfg_t *b = &u->backends[i];
        fprintf(out, "      -");
        print_addr(out, 1, "address", b->address_text, &b->addr);
        if (ext->print_backend)
            ext->print_backend(out, b, 8);
    }
    if (ext->print_upstream)
        ext->print_upstream(out, u, 4);
}

/* see config.h */
void gw_config_print(FILE *out, const gw_config_t *cfg, const gw_config_ext_t *ext)
{
    if (!ext)
        ext = &no_ext;
    fprintf(out, "# effective configuration of %s, every default filled in\n",
            cfg->path ? cfg->path : "?");
    print_root_keys(out, cfg);
    fprintf(out, "listeners:\n");
    for (size_t i = 0; i < cfg->nlisteners; i++)
        print_listener(out, &cfg->listeners[i], ext);
    fprintf(out, cfg->nupstreams ? "upstreams:\n" : "upstreams: {}\n");
    for (size_t i = 0; i < cfg->nupstreams; i++)
        print_upstream(out, &cfg->upstreams[i], ext);
    if (ext->print_root)
        ext->print_root(out, cfg);
}

/* ---- lifetime ----------------------------------------------------------------------- */

/* see config.h */
void gw_config_free(gw_config_t *cfg, const gw_config_ext_t *ext)
{
    if (ext && ext->free)
        ext->free(cfg);
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        free(cfg->listeners[i].name);
        free(cfg->listeners[i].address_text);
        free(cfg->listeners[i].upstream);
    }
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        gw_upstream_cfg_t *u = &cfg->upstreams[i];
        for (size_t j = 0; j < u->nbackends; j++)
            free(u->backends[j].address_text);
        free(u->backends);
        free(u->name);
    }
    free(cfg->listeners);
    free(cfg->upstreams);
    free(cfg->log_file);
    free(cfg->path);
    memset(cfg, 0, sizeof(*cfg));
}

/* see config.h */
const gw_upstream_cfg_t *gw_config_upstream(const gw_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nupstreams; i++)
        if (cfg->upstreams[i].name && !strcmp(cfg->upstreams[i].name, name))
            return &cfg->upstreams[i];
    return NULL;
}
