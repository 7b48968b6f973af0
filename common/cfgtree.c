/* cfgtree.c - YAML (libyaml events) to a node tree with positions; typed getters. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "cfgtree.h"
#include "error.h"

/* Hard caps: a configuration is small, so anything beyond these is a mistake or an
 * attack, and it must end in a clean error rather than unbounded memory or recursion. */
#define MAX_FILE_BYTES (1u << 20) /* 1 MiB */
#define MAX_NODES 1000000u
#define MAX_DEPTH 64    /* nesting of mappings and sequences */
#define MAX_ERRORS 100  /* then one "too many errors" line and silence */
#define MAX_ASKED 256   /* key names remembered per map for did-you-mean */
#define MAX_SHOWN 60    /* characters of a bad value quoted back in a message */
#define MAX_KEY_EDIT 64 /* longer keys are not compared for did-you-mean */

/* ---- errors ------------------------------------------------------------------------- */

static void append_error(gw_cdoc_t *doc, char *msg)
{
    /* The array grows to at most MAX_ERRORS + 1 entries, so a doubling policy is not needed:
     * grow one step at a time in chunks of 16. */
    if (doc->nerrors % 16 == 0) {
        char **grown = realloc(doc->errors, (doc->nerrors + 16) * sizeof(*grown));
        if (!grown) {
            free(msg);
            doc->oom = true; /* an error lost: the load must not pass for want of it */
            return;
        }
        doc->errors = grown;
    }
    doc->errors[doc->nerrors++] = msg;
}

static void vrecord(gw_cdoc_t *doc, unsigned line, unsigned col, const char *fmt, va_list ap)
{
    char body[512], *msg = NULL;
    const char *file = doc->file ? doc->file : "<config>";
    if (doc->nerrors > MAX_ERRORS)
        return;
    /* The overflow line names no position: it is about the file, not about a place in it
     * (and a reader sorting errors by position then keeps it last). */
    if (doc->nerrors == MAX_ERRORS) {
        if (asprintf(&msg, "%s: too many errors, stopping here", file) < 0)
            msg = NULL;
    } else {
        vsnprintf(body, sizeof(body), fmt, ap);
        if (asprintf(&msg, "%s:%u:%u: %s", file, line, col, body) < 0)
            msg = NULL;
    }
    if (msg)
        append_error(doc, msg);
    else
        doc->oom = true; /* an error lost: the load must not pass for want of it */
}

static void __attribute__((format(printf, 4, 5)))
record_at(gw_cdoc_t *doc, unsigned line, unsigned col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vrecord(doc, line, col, fmt, ap);
    va_end(ap);
}

/* see cfgtree.h */
void gw_cdoc_error(gw_cdoc_t *doc, const gw_cnode_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vrecord(doc, at ? at->line : 1, at ? at->col : 1, fmt, ap);
    va_end(ap);
}

/* see cfgtree.h */
void gw_cdoc_oom(gw_cdoc_t *doc, const gw_cnode_t *at)
{
    doc->oom = true;
    gw_cdoc_error(doc, at, "out of memory");
}

/* ---- nodes -------------------------------------------------------------------------- */

static void node_free(gw_cnode_t *n)
{
    if (!n)
        return;
    for (size_t i = 0; n->type == GW_CNODE_MAP && i < n->n; i++) {
        node_free(n->pairs[i].key);
        node_free(n->pairs[i].value);
    }
    for (size_t i = 0; n->type == GW_CNODE_SEQ && i < n->n; i++)
        node_free(n->items[i]);
    for (size_t i = 0; i < n->nasked; i++)
        free(n->asked[i]);
    free(n->asked);
    free(n->pairs);
    free(n->items);
    free(n->str);
    free(n);
}

/* Arrays grow 4, 8, 16...: the capacity is reached exactly when N is 0 or a power of two
 * from 4 on, so it need not be stored. Doubling keeps appends amortised O(1); the total is
 * bounded by MAX_NODES. */
static bool is_full(size_t n)
{
    return n == 0 || (n >= 4 && (n & (n - 1)) == 0);
}

static size_t next_cap(size_t n)
{
    return n == 0 ? 4 : n * 2;
}

/* ---- building the tree from libyaml events ------------------------------------------ */

typedef struct frame_s {
    gw_cnode_t *node;
    gw_cnode_t *key; /* map: a key waiting for its value (owned here until paired) */
    bool has_key;    /* a key was seen (KEY may be NULL for a rejected alias) */
    bool orphan;     /* NODE was rejected: built only to consume its events, freed at end */
} frame_t;

typedef struct builder_s {
    gw_cdoc_t *doc;
    const char *text;
    size_t len;
    yaml_parser_t parser;
    frame_t stack[MAX_DEPTH];
    int depth;
    size_t nnodes;
    int ndocs;
} builder_t;

static void __attribute__((format(printf, 3, 4)))
error_at_mark(builder_t *b, yaml_mark_t m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vrecord(b->doc, (unsigned)m.line + 1, (unsigned)m.column + 1, fmt, ap);
    va_end(ap);
}

static gw_cnode_t *new_node(builder_t *b, gw_cnode_type_t type, const yaml_event_t *ev)
{
    if (b->nnodes >= MAX_NODES) {
        error_at_mark(b, ev->start_mark, "too many values in one file (limit %u)", MAX_NODES);
        return NULL;
    }
    gw_cnode_t *n = calloc(1, sizeof(*n));
    if (!n) {
        error_at_mark(b, ev->start_mark, "out of memory");
        b->doc->oom = true;
        return NULL;
    }
    b->nnodes++;
    n->type = type;
    n->line = (unsigned)ev->start_mark.line + 1;
    n->col = (unsigned)ev->start_mark.column + 1;
    return n;
}

/* Anchors and tags are valid YAML but have no meaning in our configuration; reporting them
 * beats silently ignoring them. The node itself is kept, so nothing else cascades. */
static void check_props(builder_t *b, const yaml_event_t *ev, const yaml_char_t *anchor,
                        const yaml_char_t *tag)
{
    if (anchor)
        error_at_mark(b, ev->start_mark, "anchors (&%s) are not supported", (const char *)anchor);
    if (tag)
        error_at_mark(b, ev->start_mark, "tags (%s) are not supported", (const char *)tag);
}

static bool is_null_text(const char *s)
{
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static gw_cnode_t *make_scalar(builder_t *b, const yaml_event_t *ev)
{
    gw_cnode_t *n = new_node(b, GW_CNODE_SCALAR, ev);
    if (!n)
        return NULL;
    size_t len = ev->data.scalar.length;
    n->str = malloc(len + 1);
    if (!n->str) {
        free(n);
        error_at_mark(b, ev->start_mark, "out of memory");
        b->doc->oom = true;
        return NULL;
    }
    memcpy(n->str, ev->data.scalar.value, len);
    n->str[len] = '\0';
    if (memchr(n->str, '\0', len))
        error_at_mark(b, ev->start_mark, "NUL characters are not allowed in values");
    yaml_scalar_style_t st = ev->data.scalar.style;
    n->quoted = st == YAML_SINGLE_QUOTED_SCALAR_STYLE || st == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
    n->null = st == YAML_PLAIN_SCALAR_STYLE && is_null_text(n->str);
    return n;
}

static int add_item(gw_cnode_t *seq, gw_cnode_t *item)
{
    if (is_full(seq->n)) {
        gw_cnode_t **q = realloc(seq->items, next_cap(seq->n) * sizeof(*q));
        if (!q)
            return GW_ENOMEM;
        seq->items = q;
    }
    seq->items[seq->n++] = item;
    return 0;
}

static int add_pair(gw_cnode_t *map, gw_cnode_t *key, gw_cnode_t *value)
{
    if (is_full(map->n)) {
        gw_cpair_t *q = realloc(map->pairs, next_cap(map->n) * sizeof(*q));
        if (!q)
            return GW_ENOMEM;
        map->pairs = q;
    }
    map->pairs[map->n++] = (gw_cpair_t){.key = key, .value = value, .used = false};
    return 0;
}

/* A value arrived for the pending key of map frame F. Returns true when NODE was taken
 * into the tree; false when it was rejected (the caller then owns it). */
static bool pair_up(builder_t *b, frame_t *f, gw_cnode_t *node)
{
    gw_cnode_t *key = f->key;
    f->key = NULL;
    f->has_key = false;
    if (!key || !node) { /* an alias was reported already */
        node_free(key);
        return false;
    }
    if (key->type != GW_CNODE_SCALAR) {
        gw_cdoc_error(b->doc, key, "keys must be plain strings, not a %s",
                      key->type == GW_CNODE_MAP ? "mapping" : "sequence");
        node_free(key);
        return false;
    }
    if (add_pair(f->node, key, node)) {
        gw_cdoc_oom(b->doc, key);
        node_free(key);
        return false;
    }
    return true;
}

/* Hands NODE (NULL for an alias) to its parent. Returns true when the tree owns it now. */
static bool attach(builder_t *b, gw_cnode_t *node)
{
    if (b->depth == 0) {
        b->doc->root = node;
        return node != NULL;
    }
    frame_t *f = &b->stack[b->depth - 1];
    if (f->node->type == GW_CNODE_SEQ) {
        if (!node)
            return false;
        if (add_item(f->node, node) == 0)
            return true;
        gw_cdoc_oom(b->doc, node);
        return false;
    }
    if (!f->has_key) {
        f->key = node;
        f->has_key = true;
        return node != NULL;
    }
    return pair_up(b, f, node);
}

/* ---- duplicate keys ----------------------------------------------------------------- */

static int cmp_pair_ptr(const void *x, const void *y)
{
    const gw_cpair_t *a = *(const gw_cpair_t *const *)x, *b = *(const gw_cpair_t *const *)y;
    int c = strcmp(a->key->str, b->key->str);
    if (c)
        return c;
    return a < b ? -1 : a > b; /* pairs are contiguous: address order is document order */
}

/* Sorting instead of comparing every pair: a hostile file may hold a map with 100,000 keys,
 * and O(n^2) would then take minutes. FIRST[i] gets the index of the first pair with the
 * same key (or i itself). */
static int find_dups(const gw_cnode_t *map, size_t *first)
{
    const gw_cpair_t **v = malloc(map->n * sizeof(*v));
    if (!v)
        return GW_ENOMEM;
    for (size_t i = 0; i < map->n; i++)
        v[i] = &map->pairs[i];
    qsort(v, map->n, sizeof(*v), cmp_pair_ptr);
    size_t run = 0;
    for (size_t i = 0; i < map->n; i++) {
        if (i > 0 && strcmp(v[i]->key->str, v[run]->key->str) != 0)
            run = i;
        first[v[i] - map->pairs] = (size_t)(v[run] - map->pairs);
    }
    free(v);
    return 0;
}

/* Reports every repeated key (keeping the first, as a reader would expect) and drops it. */
static void drop_duplicates(builder_t *b, gw_cnode_t *map)
{
    if (map->n < 2)
        return;
    size_t *first = malloc(map->n * sizeof(*first));
    if (!first || find_dups(map, first)) {
        free(first);
        gw_cdoc_oom(b->doc, map);
        return;
    }
    size_t keep = 0;
    for (size_t i = 0; i < map->n; i++) {
        gw_cpair_t *p = &map->pairs[i];
        if (first[i] == i) {
            map->pairs[keep++] = *p;
            continue;
        }
        const gw_cnode_t *k0 = map->pairs[first[i]].key;
        gw_cdoc_error(b->doc, p->key, "duplicate key '%s' (first defined at %u:%u)", p->key->str,
                      k0->line, k0->col);
        node_free(p->key);
        node_free(p->value);
    }
    map->n = keep;
    free(first);
}

/* ---- event handlers ----------------------------------------------------------------- */

static int on_scalar(builder_t *b, const yaml_event_t *ev)
{
    check_props(b, ev, ev->data.scalar.anchor, ev->data.scalar.tag);
    gw_cnode_t *n = make_scalar(b, ev);
    if (!n)
        return -1;
    if (!attach(b, n))
        node_free(n);
    return 0;
}

static int on_start(builder_t *b, const yaml_event_t *ev, gw_cnode_type_t type)
{
    if (b->depth == MAX_DEPTH) {
        error_at_mark(b, ev->start_mark, "nested deeper than %d levels", MAX_DEPTH);
        return -1;
    }
    if (type == GW_CNODE_MAP)
        check_props(b, ev, ev->data.mapping_start.anchor, ev->data.mapping_start.tag);
    else
        check_props(b, ev, ev->data.sequence_start.anchor, ev->data.sequence_start.tag);
    gw_cnode_t *n = new_node(b, type, ev);
    if (!n)
        return -1;
    bool owned = attach(b, n);
    b->stack[b->depth++] = (frame_t){.node = n, .orphan = !owned};
    return 0;
}

static void on_end(builder_t *b)
{
    frame_t f = b->stack[--b->depth];
    if (f.node->type == GW_CNODE_MAP)
        drop_duplicates(b, f.node);
    if (f.orphan)
        node_free(f.node);
}

/* Returns 0 to go on, 1 when done, -1 on a fatal error (a cap was hit). */
static int on_event(builder_t *b, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_STREAM_END_EVENT:
        return 1;
    case YAML_DOCUMENT_START_EVENT:
        if (++b->ndocs == 1)
            return 0;
        error_at_mark(b, ev->start_mark, "only one YAML document is allowed per file");
        return 1;
    case YAML_ALIAS_EVENT:
        error_at_mark(b, ev->start_mark, "aliases (*%s) are not supported",
                      (const char *)ev->data.alias.anchor);
        attach(b, NULL);
        return 0;
    case YAML_SCALAR_EVENT:
        return on_scalar(b, ev);
    case YAML_SEQUENCE_START_EVENT:
        return on_start(b, ev, GW_CNODE_SEQ);
    case YAML_MAPPING_START_EVENT:
        return on_start(b, ev, GW_CNODE_MAP);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        on_end(b);
        return 0;
    default:
        return 0;
    }
}

/* ---- syntax errors ------------------------------------------------------------------ */

/* libyaml's reader reports a byte offset, not a mark: turn it into line:column, counting
 * columns in characters like libyaml's marks do (UTF-8 continuation bytes do not count). */
static void offset_to_pos(const char *text, size_t len, size_t off, unsigned *line, unsigned *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') {
            ++*line;
            *col = 1;
        } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
            ++*col;
        }
    }
}

/* True when the character at mark M is a tab: libyaml then says "found character that
 * cannot start any token", which does not tell a beginner what to do. */
static bool tab_at(const builder_t *b, yaml_mark_t m)
{
    size_t i = 0, line = 0, col = 0;
    for (; i < b->len && line < m.line; i++)
        if (b->text[i] == '\n')
            line++;
    for (; i < b->len && b->text[i] != '\n'; i++) {
        if (((unsigned char)b->text[i] & 0xC0) == 0x80)
            continue;
        if (col++ == m.column)
            return b->text[i] == '\t';
    }
    return false;
}

static void syntax_error(builder_t *b)
{
    const yaml_parser_t *p = &b->parser;
    const char *problem = p->problem ? p->problem : "unknown problem";
    unsigned line, col;
    if (p->error == YAML_MEMORY_ERROR) {
        record_at(b->doc, 1, 1, "out of memory while parsing");
        b->doc->oom = true;
    } else if (p->error == YAML_READER_ERROR) {
        offset_to_pos(b->text, b->len, p->problem_offset, &line, &col);
        if (p->problem_value >= 0)
            record_at(b->doc, line, col, "invalid text: %s (byte 0x%02X)", problem,
                      (unsigned)p->problem_value & 0xFFu);
        else
            record_at(b->doc, line, col, "invalid text: %s", problem);
    } else {
        line = (unsigned)p->problem_mark.line + 1;
        col = (unsigned)p->problem_mark.column + 1;
        const char *hint = tab_at(b, p->problem_mark) ? " (indent with spaces, not tabs)" : "";
        if (p->context)
            record_at(b->doc, line, col, "syntax error: %s (%s at %u:%u)%s", problem, p->context,
                      (unsigned)p->context_mark.line + 1, (unsigned)p->context_mark.column + 1,
                      hint);
        else
            record_at(b->doc, line, col, "syntax error: %s%s", problem, hint);
    }
}

/* After a fatal error the stack still owns pending keys and rejected subtrees; the
 * partial tree is dropped so that callers never decode half a file. */
static void abandon(builder_t *b)
{
    for (int i = 0; i < b->depth; i++) {
        node_free(b->stack[i].key);
        if (b->stack[i].orphan)
            node_free(b->stack[i].node);
    }
    b->depth = 0;
    node_free(b->doc->root);
    b->doc->root = NULL;
}

static int parse_events(builder_t *b)
{
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&b->parser, &ev)) {
            syntax_error(b);
            return -1;
        }
        int r = on_event(b, &ev);
        yaml_event_delete(&ev);
        if (r)
            return r < 0 ? -1 : 0;
    }
}

static int build_tree(gw_cdoc_t *doc, const char *text, size_t len)
{
    builder_t b = {.doc = doc, .text = text, .len = len};
    if (len > MAX_FILE_BYTES) {
        record_at(doc, 1, 1, "file is larger than %u MiB", MAX_FILE_BYTES >> 20);
        return GW_ECONFIG;
    }
    if (!yaml_parser_initialize(&b.parser)) {
        record_at(doc, 1, 1, "out of memory");
        doc->oom = true;
        return GW_ECONFIG;
    }
    yaml_parser_set_input_string(&b.parser, (const unsigned char *)text, len);
    int rc = parse_events(&b);
    yaml_parser_delete(&b.parser);
    if (rc < 0) {
        abandon(&b);
        return GW_ECONFIG;
    }
    gw_cnode_t *root = doc->root;
    if (!root || (root->type == GW_CNODE_SCALAR && root->null)) {
        node_free(root);
        doc->root = NULL;
        record_at(doc, 1, 1, "empty configuration");
        return GW_ECONFIG;
    }
    return 0;
}

static int doc_init(gw_cdoc_t *doc, const char *name, int level)
{
    memset(doc, 0, sizeof(*doc));
    doc->level = level;
    doc->file = strdup(name ? name : "<config>");
    return doc->file ? 0 : GW_ENOMEM;
}

/* see cfgtree.h */
int gw_cdoc_load_string(gw_cdoc_t *doc, const char *name, const char *text, size_t len, int level)
{
    if (doc_init(doc, name, level)) {
        record_at(doc, 1, 1, "out of memory");
        doc->oom = true;
        return GW_ECONFIG;
    }
    return build_tree(doc, text, len);
}

/* Reads at most MAX_FILE_BYTES + 1 bytes, so an oversized file is detected without
 * reading all of it. */
static char *read_capped(gw_cdoc_t *doc, const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        record_at(doc, 1, 1, "cannot open: %s", gw_strerror(-errno));
        return NULL;
    }
    char *buf = malloc(MAX_FILE_BYTES + 1);
    size_t n = buf ? fread(buf, 1, MAX_FILE_BYTES + 1, f) : 0;
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (!buf || err) {
        record_at(doc, 1, 1, "cannot read: %s", buf ? gw_strerror(-err) : "out of memory");
        doc->oom = doc->oom || !buf;
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* see cfgtree.h */
int gw_cdoc_load_file(gw_cdoc_t *doc, const char *path, int level)
{
    size_t len = 0;
    if (doc_init(doc, path, level)) {
        record_at(doc, 1, 1, "out of memory");
        doc->oom = true;
        return GW_ECONFIG;
    }
    char *text = read_capped(doc, path, &len);
    if (!text)
        return GW_ECONFIG;
    int rc = build_tree(doc, text, len);
    free(text);
    return rc;
}

/* see cfgtree.h */
void gw_cdoc_free(gw_cdoc_t *doc)
{
    node_free(doc->root);
    for (size_t i = 0; i < doc->nerrors; i++)
        free(doc->errors[i]);
    free(doc->errors);
    free(doc->file);
    memset(doc, 0, sizeof(*doc));
}

/* ---- lookups ------------------------------------------------------------------------ */

static void remember_asked(gw_cnode_t *map, const char *key)
{
    for (size_t i = 0; i < map->nasked; i++)
        if (!strcmp(map->asked[i], key))
            return;
    if (map->nasked >= MAX_ASKED) /* only did-you-mean hints are lost */
        return;
    if (is_full(map->nasked)) {
        char **q = realloc(map->asked, next_cap(map->nasked) * sizeof(*q));
        if (!q)
            return;
        map->asked = q;
    }
    char *copy = strdup(key);
    if (copy)
        map->asked[map->nasked++] = copy;
}

/* see cfgtree.h */
const gw_cnode_t *gw_cmap_get(gw_cdoc_t *doc, const gw_cnode_t *cmap, const char *key)
{
    (void)doc;
    if (!cmap || cmap->type != GW_CNODE_MAP)
        return NULL;
    /* Every node was allocated non-const; only the bookkeeping fields change here. */
    gw_cnode_t *map = (gw_cnode_t *)cmap;
    remember_asked(map, key);
    for (size_t i = 0; i < map->n; i++) {
        if (!strcmp(map->pairs[i].key->str, key)) {
            map->pairs[i].used = true;
            return map->pairs[i].value;
        }
    }
    return NULL;
}

/* see cfgtree.h */
const gw_cnode_t *gw_cmap_require(gw_cdoc_t *doc, const gw_cnode_t *map, const char *key)
{
    const gw_cnode_t *v = gw_cmap_get(doc, map, key);
    if (!v && map && map->type == GW_CNODE_MAP)
        gw_cdoc_error(doc, map, "missing required key '%s'", key);
    return v;
}

/* ---- typed getters ------------------------------------------------------------------ */

/* Describes what NODE holds, for "(got ...)": a bad value is quoted back, shortened and
 * with control characters replaced so that the message stays on one line. */
static const char *describe(const gw_cnode_t *n, char *buf, size_t size)
{
    if (n->type == GW_CNODE_MAP)
        return "a mapping";
    if (n->type == GW_CNODE_SEQ)
        return "a sequence";
    if (n->null)
        return "nothing";
    char shown[MAX_SHOWN + 4];
    size_t len = 0;
    for (const char *s = n->str; *s && len < MAX_SHOWN; s++)
        shown[len++] = (unsigned char)*s < 0x20 ? '?' : *s;
    if (strlen(n->str) > MAX_SHOWN)
        shown[len++] = '.', shown[len++] = '.', shown[len++] = '.';
    shown[len] = '\0';
    snprintf(buf, size, n->quoted ? "\"%s\"" : "'%s'", shown);
    return buf;
}

/* see cfgtree.h */
void gw_cnode_silence(const gw_cnode_t *n)
{
    for (size_t i = 0; n->type == GW_CNODE_MAP && i < n->n; i++) {
        n->pairs[i].used = true;
        gw_cnode_silence(n->pairs[i].value);
    }
    for (size_t i = 0; n->type == GW_CNODE_SEQ && i < n->n; i++)
        gw_cnode_silence(n->items[i]);
}

static int type_error(gw_cdoc_t *doc, const gw_cnode_t *n, const char *key, const char *expected)
{
    gw_cnode_silence(n);
    char buf[MAX_SHOWN + 8];
    const char *got = describe(n, buf, sizeof(buf));
    if (n->type == GW_CNODE_SCALAR && n->quoted)
        gw_cdoc_error(doc, n, "%s must be %s, without quotes (got %s)", key, expected, got);
    else
        gw_cdoc_error(doc, n, "%s must be %s (got %s)", key, expected, got);
    return GW_ECONFIG;
}

/* A non-null scalar; numbers and booleans additionally must be unquoted, because a quoted
 * value in YAML is a string, and accepting "8" where 8 is meant hides type confusion. */
static bool is_text(const gw_cnode_t *n)
{
    return n->type == GW_CNODE_SCALAR && !n->null;
}

static bool is_plain(const gw_cnode_t *n)
{
    return is_text(n) && !n->quoted;
}

typedef struct unit_s {
    const char *name;
    uint64_t mul;
} unit_t;

static const unit_t duration_units[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 3600 * 1000}, {NULL, 0}};
static const unit_t size_units[] = {
    {"", 1},           {"B", 1},     {"KiB", 1024},   {"MiB", 1024 * 1024},
    {"GiB", 1u << 30}, {"KB", 1000}, {"MB", 1000000}, {"GB", 1000000000},
    {NULL, 0}};

/* Parses leading decimal digits of S into *V; *END gets the rest. Returns 0, -1 when there
 * is no digit, 1 on overflow. */
static int parse_digits(const char *s, uint64_t *v, const char **end)
{
    uint64_t x = 0;
    int rc = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (x > (UINT64_MAX - d) / 10)
            rc = 1;
        else
            x = x * 10 + d;
    }
    *v = x;
    *end = p;
    return p == s ? -1 : rc;
}

/* NUMBER followed by one of UNITS (exactly, no space). Returns 0, -1 (malformed) or 1
 * (overflow). */
static int parse_with_unit(const char *s, const unit_t *units, uint64_t *out)
{
    const char *rest;
    uint64_t v;
    int rc = parse_digits(s, &v, &rest);
    if (rc < 0)
        return -1;
    for (const unit_t *u = units; u->name; u++) {
        if (strcmp(rest, u->name) != 0)
            continue;
        if (rc > 0 || (v != 0 && v > UINT64_MAX / u->mul))
            return 1;
        *out = v * u->mul;
        return 0;
    }
    return -1;
}

/* see cfgtree.h */
int gw_cget_string(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, char **out)
{
    if (!node)
        return 0;
    if (!is_text(node))
        return type_error(doc, node, key, "a string");
    char *copy = strdup(node->str);
    if (!copy) {
        gw_cdoc_oom(doc, node);
        return GW_ECONFIG;
    }
    *out = copy;
    return 0;
}

/* see cfgtree.h */
int gw_cget_uint(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, uint64_t min,
                 uint64_t max, uint64_t *out)
{
    uint64_t v;
    const char *end;
    if (!node)
        return 0;
    int rc = is_plain(node) ? parse_digits(node->str, &v, &end) : -1;
    /* "-1" is an integer to a reader: call it out of range rather than "not an integer". */
    bool negative = rc < 0 && is_plain(node) && node->str[0] == '-' &&
                    parse_digits(node->str + 1, &v, &end) >= 0 && !*end;
    if (!negative && (rc < 0 || *end))
        return type_error(doc, node, key, "an integer");
    if (negative || rc > 0 || v < min || v > max) {
        gw_cdoc_error(doc, node, "%s: %s is out of range %" PRIu64 "..%" PRIu64, key, node->str,
                      min, max);
        return GW_ECONFIG;
    }
    *out = v;
    return 0;
}

/* see cfgtree.h */
int gw_cget_bool(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, bool *out)
{
    if (!node)
        return 0;
    if (is_plain(node) && !strcmp(node->str, "true"))
        *out = true;
    else if (is_plain(node) && !strcmp(node->str, "false"))
        *out = false;
    else
        return type_error(doc, node, key, "true or false");
    return 0;
}

/* see cfgtree.h */
char *gw_cfmt_duration(uint64_t ms, char *buf, size_t size)
{
    /* The largest unit that divides exactly, so the text parses back to the same value. */
    if (ms == 0)
        snprintf(buf, size, "0s");
    else if (ms % 3600000 == 0)
        snprintf(buf, size, "%" PRIu64 "h", ms / 3600000);
    else if (ms % 60000 == 0)
        snprintf(buf, size, "%" PRIu64 "m", ms / 60000);
    else if (ms % 1000 == 0)
        snprintf(buf, size, "%" PRIu64 "s", ms / 1000);
    else
        snprintf(buf, size, "%" PRIu64 "ms", ms);
    return buf;
}

/* see cfgtree.h */
char *gw_cfmt_size(uint64_t bytes, char *buf, size_t size)
{
    static const char *const names[] = {"GiB", "MiB", "KiB"};
    for (int i = 0; i < 3; i++) {
        uint64_t mul = (uint64_t)1 << (30 - 10 * i);
        if (bytes != 0 && bytes % mul == 0) {
            snprintf(buf, size, "%" PRIu64 "%s", bytes / mul, names[i]);
            return buf;
        }
    }
    snprintf(buf, size, "%" PRIu64, bytes);
    return buf;
}

/* Shared by durations and sizes: parse with UNITS, check MIN..MAX, report with FMT. */
static int get_scaled(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, const unit_t *units,
                      const char *expected, char *(*fmt)(uint64_t, char *, size_t), uint64_t min,
                      uint64_t max, uint64_t *out)
{
    char lo[32], hi[32];
    uint64_t v = 0;
    if (!node)
        return 0;
    int rc = is_text(node) ? parse_with_unit(node->str, units, &v) : -1;
    if (rc < 0)
        return type_error(doc, node, key, expected);
    if (rc > 0 || v < min || v > max) {
        gw_cdoc_error(doc, node, "%s: %s is out of range %s..%s", key, node->str,
                      fmt(min, lo, sizeof(lo)), fmt(max, hi, sizeof(hi)));
        return GW_ECONFIG;
    }
    *out = v;
    return 0;
}

/* see cfgtree.h */
int gw_cget_duration(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, uint64_t min_ms,
                     uint64_t max_ms, uint64_t *out_ms)
{
    return get_scaled(doc, node, key, duration_units, "a duration like 250ms, 5s, 2m or 1h",
                      gw_cfmt_duration, min_ms, max_ms, out_ms);
}

/* see cfgtree.h */
int gw_cget_size(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, uint64_t min,
                 uint64_t max, uint64_t *out)
{
    return get_scaled(doc, node, key, size_units, "a size like 4096, 64KiB or 1MiB", gw_cfmt_size,
                      min, max, out);
}

/* Digits with at most one '.' between digits: "50", "12.5". strtod alone would also take
 * "1e2", "inf", "0x10" and leading spaces. */
static bool is_decimal(const char *s)
{
    bool dot = false, digit = false;
    for (; *s; s++) {
        if (*s >= '0' && *s <= '9') {
            digit = true;
        } else if (*s == '.' && digit && !dot && s[1]) {
            dot = true;
        } else {
            return false;
        }
    }
    return digit;
}

/* see cfgtree.h */
int gw_cget_percent(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, double *out)
{
    if (!node)
        return 0;
    if (!is_plain(node) || !is_decimal(node->str))
        return type_error(doc, node, key, "a number 0..100");
    double v = strtod(node->str, NULL);
    if (v > 100.0) {
        gw_cdoc_error(doc, node, "%s: %s is out of range 0..100", key, node->str);
        return GW_ECONFIG;
    }
    *out = v;
    return 0;
}

/* see cfgtree.h */
int gw_cget_status_range(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, unsigned *lo,
                         unsigned *hi)
{
    uint64_t a = 0, b;
    const char *end;
    if (!node)
        return 0;
    int rc = is_text(node) ? parse_digits(node->str, &a, &end) : -1;
    b = a;
    if (rc >= 0 && *end == '-')
        rc |= parse_digits(end + 1, &b, &end);
    if (rc < 0 || *end)
        return type_error(doc, node, key, "a status code or range (e.g. 200-299)");
    if (rc > 0 || a < 100 || a > 599 || b < 100 || b > 599) {
        gw_cdoc_error(doc, node, "%s: %s is out of range 100..599", key, node->str);
        return GW_ECONFIG;
    }
    if (a > b) {
        gw_cdoc_error(doc, node, "%s: %s is empty (the first code must not exceed the second)", key,
                      node->str);
        return GW_ECONFIG;
    }
    *lo = (unsigned)a;
    *hi = (unsigned)b;
    return 0;
}

/* see cfgtree.h */
int gw_cget_enum(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, const char *const *names,
                 int *out)
{
    char list[256];
    size_t used = 0;
    if (!node)
        return 0;
    for (int i = 0; is_text(node) && names[i]; i++) {
        if (!strcmp(node->str, names[i])) {
            *out = i;
            return 0;
        }
    }
    list[0] = '\0';
    for (int i = 0; names[i] && used < sizeof(list); i++) {
        int n = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", names[i]);
        used += n > 0 ? (size_t)n : 0;
    }
    char buf[MAX_SHOWN + 8];
    gw_cnode_silence(node);
    gw_cdoc_error(doc, node, "%s must be one of: %s (got %s)", key, list,
                  describe(node, buf, sizeof(buf)));
    return GW_ECONFIG;
}

/* see cfgtree.h */
int gw_cget_addr(gw_cdoc_t *doc, const gw_cnode_t *node, const char *key, gw_addr_t *out)
{
    const char *why = NULL;
    if (!node)
        return 0;
    if (!is_text(node))
        return type_error(doc, node, key, "HOST:PORT like 127.0.0.1:8080");
    if (gw_addr_parse(node->str, true, false, out, &why) != 0) {
        gw_cdoc_error(doc, node, "bad address '%s': %s", node->str, why ? why : "invalid");
        return GW_ECONFIG;
    }
    return 0;
}

/* see cfgtree.h */
bool gw_cnode_expect_map(gw_cdoc_t *doc, const gw_cnode_t *node, const char *what)
{
    if (!node)
        return false;
    if (node->type == GW_CNODE_MAP)
        return true;
    char buf[MAX_SHOWN + 8];
    gw_cnode_silence(node);
    gw_cdoc_error(doc, node, "%s must be a mapping (got %s)", what,
                  describe(node, buf, sizeof(buf)));
    return false;
}

/* see cfgtree.h */
bool gw_cnode_expect_seq(gw_cdoc_t *doc, const gw_cnode_t *node, const char *what)
{
    if (!node)
        return false;
    if (node->type == GW_CNODE_SEQ)
        return true;
    char buf[MAX_SHOWN + 8];
    gw_cnode_silence(node);
    gw_cdoc_error(doc, node, "%s must be a sequence (got %s)", what,
                  describe(node, buf, sizeof(buf)));
    return false;
}

/* ---- unused keys -------------------------------------------------------------------- */

/* see cfgtree.h */
unsigned gw_cfg_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned row0[MAX_KEY_EDIT + 1], row1[MAX_KEY_EDIT + 1];
    if (la > MAX_KEY_EDIT || lb > MAX_KEY_EDIT)
        return ~0u;
    for (size_t j = 0; j <= lb; j++)
        row0[j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        row1[0] = (unsigned)i;
        for (size_t j = 1; j <= lb; j++) {
            unsigned sub = row0[j - 1] + (a[i - 1] != b[j - 1]);
            unsigned del = row0[j] + 1, ins = row1[j - 1] + 1;
            row1[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(row0, row1, (lb + 1) * sizeof(row0[0]));
    }
    return row0[lb];
}

/* The closest key that MAP was asked for, within distance 2. The distance must also be
 * below the candidate's length, or every two-letter key would "resemble" every other. */
static const char *did_you_mean(const gw_cnode_t *map, const char *key)
{
    const char *best = NULL;
    unsigned best_d = 3;
    for (size_t i = 0; i < map->nasked; i++) {
        unsigned d = gw_cfg_edit_distance(key, map->asked[i]);
        if (d < best_d && d < strlen(map->asked[i])) {
            best = map->asked[i];
            best_d = d;
        }
    }
    return best;
}

typedef struct walk_s {
    gw_cdoc_t *doc;
    const gw_later_key_t *later;
    const char *path[MAX_DEPTH + 1]; /* segments from the root to the current key */
    char index[MAX_DEPTH + 1][24];   /* text of sequence indexes used in PATH */
    int depth;
} walk_t;

/* True when dotted PATTERN ("upstreams.*.balancer") matches the N segments of PATH. */
static bool path_matches(const char *pattern, const char *const *path, int n)
{
    const char *p = pattern;
    for (int i = 0; i < n; i++) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        bool star = len == 1 && p[0] == '*';
        if (!star && (strlen(path[i]) != len || memcmp(path[i], p, len) != 0))
            return false;
        if (!dot)
            return i == n - 1;
        p = dot + 1;
    }
    return false;
}

/* The milestone above the document's level that introduces the key at W's path, or 0. */
static int later_milestone(const walk_t *w)
{
    for (const gw_later_key_t *k = w->later; k && k->path; k++)
        if (k->milestone > w->doc->level && path_matches(k->path, w->path, w->depth))
            return k->milestone;
    return 0;
}

static void report_unused(walk_t *w, const gw_cnode_t *map, const gw_cnode_t *key)
{
    int ms = later_milestone(w);
    const char *hint = ms ? NULL : did_you_mean(map, key->str);
    if (ms)
        gw_cdoc_error(w->doc, key, "%s: needs gw%02d or later", key->str, ms);
    else if (hint)
        gw_cdoc_error(w->doc, key, "unknown key '%s' (did you mean '%s'?)", key->str, hint);
    else
        gw_cdoc_error(w->doc, key, "unknown key '%s'", key->str);
}

/* Recursion is bounded by the parser's MAX_DEPTH. */
static void walk(walk_t *w, const gw_cnode_t *n)
{
    if (n->type == GW_CNODE_MAP) {
        for (size_t i = 0; i < n->n; i++) {
            w->path[w->depth++] = n->pairs[i].key->str;
            if (n->pairs[i].used)
                walk(w, n->pairs[i].value);
            else
                report_unused(w, n, n->pairs[i].key);
            w->depth--;
        }
    } else if (n->type == GW_CNODE_SEQ) {
        for (size_t i = 0; i < n->n; i++) {
            snprintf(w->index[w->depth], sizeof(w->index[0]), "%zu", i);
            w->path[w->depth] = w->index[w->depth];
            w->depth++;
            walk(w, n->items[i]);
            w->depth--;
        }
    }
}

/* see cfgtree.h */
void gw_cdoc_check_unused(gw_cdoc_t *doc, const gw_later_key_t *later)
{
    walk_t w = {.doc = doc, .later = later};
    if (doc->root)
        walk(&w, doc->root);
}
