/* metrics.c - see metrics.h */
#include "metrics.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* ---- histograms ----------------------------------------------------------------------- */

const uint64_t gw_hist_bounds_ns[GW_HIST_NBOUNDS] = {
    100000,   250000,    500000,    1000000,   2500000,    5000000,    10000000,   25000000,
    50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000,
};

/* Written out by hand rather than formatted from the bounds: the text is part of the
 * series' identity (le="0.00025"), so it must never depend on float formatting. */
const char *const gw_hist_le[GW_HIST_NBUCKETS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1",    "0.25",    "0.5",    "1",     "2.5",    "5",     "10",   "+Inf",
};

/* see metrics.h */
void gw_histogram_init(gw_histogram_t *h)
{
    for (size_t i = 0; i < GW_HIST_NBUCKETS; i++)
        atomic_init(&h->bucket[i], 0);
    atomic_init(&h->sum_ns, 0);
}

/* see metrics.h */
size_t gw_histogram_bucket_index(uint64_t ns)
{
    /* Binary search for the first bound >= ns: four comparisons instead of up to sixteen. */
    size_t lo = 0, hi = GW_HIST_NBOUNDS;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (gw_hist_bounds_ns[mid] >= ns)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* A single writer's increment: see gw_counter_add for why no read-modify-write. */
static void add_relaxed(atomic_uint_least64_t *a, uint64_t n)
{
    uint64_t v = atomic_load_explicit(a, memory_order_relaxed);
    atomic_store_explicit(a, v + n, memory_order_relaxed);
}

/* see metrics.h */
void gw_histogram_observe_ns(gw_histogram_t *h, uint64_t ns)
{
    add_relaxed(&h->bucket[gw_histogram_bucket_index(ns)], 1);
    add_relaxed(&h->sum_ns, ns);
}

/* see metrics.h */
uint64_t gw_histogram_bucket_count(const gw_histogram_t *h, size_t i)
{
    return i < GW_HIST_NBUCKETS ? atomic_load_explicit(&h->bucket[i], memory_order_relaxed) : 0;
}

/* see metrics.h */
uint64_t gw_histogram_count(const gw_histogram_t *h)
{
    uint64_t n = 0;
    for (size_t i = 0; i < GW_HIST_NBUCKETS; i++)
        n += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
    return n;
}

/* see metrics.h */
uint64_t gw_histogram_sum_ns(const gw_histogram_t *h)
{
    return atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
}

/* see metrics.h */
void gw_histogram_merge(gw_histogram_t *dst, const gw_histogram_t *src)
{
    for (size_t i = 0; i < GW_HIST_NBUCKETS; i++)
        add_relaxed(&dst->bucket[i], atomic_load_explicit(&src->bucket[i], memory_order_relaxed));
    add_relaxed(&dst->sum_ns, atomic_load_explicit(&src->sum_ns, memory_order_relaxed));
}

/* ---- the exposition builder ----------------------------------------------------------- */

struct gw_prom_s {
    char *buf;
    size_t len, size, cap; /* text bytes, allocated bytes, most text bytes allowed */
    int err;               /* sticky: the first error */
    char **families;       /* names declared so far, to refuse a second # TYPE */
    size_t nfamilies, families_size;
    const char *cur; /* the family samples may belong to (in families[]), or NULL */
    gw_prom_type_t cur_type;
};

/* see metrics.h */
gw_prom_t *gw_prom_new(size_t cap)
{
    gw_prom_t *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->cap = cap ? cap : GW_PROM_DEFAULT_CAP;
    return p;
}

/* see metrics.h */
void gw_prom_free(gw_prom_t *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->nfamilies; i++)
        free(p->families[i]);
    free(p->families);
    free(p->buf);
    free(p);
}

static int fail(gw_prom_t *p, int err)
{
    if (p->err == 0)
        p->err = err;
    return p->err;
}

/* Appends N bytes, growing by doubling up to the cap (plus one byte for the NUL). */
static void put(gw_prom_t *p, const char *s, size_t n)
{
    if (p->err)
        return;
    if (n > p->cap - p->len) {
        fail(p, GW_ENOMEM);
        return;
    }
    if (p->len + n + 1 > p->size) {
        size_t size = p->size ? p->size : 4096;
        while (size < p->len + n + 1)
            size *= 2;
        if (size > p->cap + 1)
            size = p->cap + 1;
        char *b = realloc(p->buf, size);
        if (b == NULL) {
            fail(p, GW_ENOMEM);
            return;
        }
        p->buf = b;
        p->size = size;
    }
    memcpy(p->buf + p->len, s, n);
    p->len += n;
    p->buf[p->len] = '\0';
}

static void puts_(gw_prom_t *p, const char *s)
{
    put(p, s, strlen(s));
}

/* Appends S escaped: backslash as \\, newline as \n and, in a label value (QUOTE), the
 * double quote as \"; HELP text escapes only the first two (the format says so). */
static void put_escaped(gw_prom_t *p, const char *s, bool quote)
{
    const char *run = s;
    for (; *s; s++) {
        if (*s != '\\' && *s != '\n' && !(quote && *s == '"'))
            continue;
        put(p, run, (size_t)(s - run));
        put(p, *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : "\\n", 2);
        run = s + 1;
    }
    put(p, run, (size_t)(s - run));
}

static bool valid_name(const char *s, bool colon)
{
    if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || (colon && c == ':')))
            return false;
    }
    return true;
}

static const char *type_name(gw_prom_type_t t)
{
    switch (t) {
    case GW_PROM_COUNTER:
        return "counter";
    case GW_PROM_GAUGE:
        return "gauge";
    case GW_PROM_HISTOGRAM:
        return "histogram";
    default:
        return "untyped";
    }
}

static int remember_family(gw_prom_t *p, const char *name)
{
    for (size_t i = 0; i < p->nfamilies; i++)
        if (strcmp(p->families[i], name) == 0)
            return fail(p, GW_EINVAL);
    if (p->nfamilies == p->families_size) {
        size_t n = p->families_size ? p->families_size * 2 : 16;
        char **f = realloc(p->families, n * sizeof *f);
        if (f == NULL)
            return fail(p, GW_ENOMEM);
        p->families = f;
        p->families_size = n;
    }
    char *copy = strdup(name);
    if (copy == NULL)
        return fail(p, GW_ENOMEM);
    p->families[p->nfamilies++] = copy;
    p->cur = copy;
    return 0;
}

/* see metrics.h */
int gw_prom_family(gw_prom_t *p, const char *name, const char *help, gw_prom_type_t type)
{
    if (p->err)
        return p->err;
    if (!valid_name(name, true) || type < GW_PROM_COUNTER || type > GW_PROM_UNTYPED)
        return fail(p, GW_EINVAL);
    if (remember_family(p, name) != 0)
        return p->err;
    p->cur_type = type;
    puts_(p, "# HELP ");
    puts_(p, name);
    puts_(p, " ");
    put_escaped(p, help ? help : "", false);
    puts_(p, "\n# TYPE ");
    puts_(p, name);
    puts_(p, " ");
    puts_(p, type_name(type));
    puts_(p, "\n");
    return p->err;
}

/* Checks LABELS: pairs of a valid, distinct key and a non-NULL value. */
static bool valid_labels(const char *const *labels, bool histogram)
{
    if (labels == NULL)
        return true;
    for (size_t i = 0; labels[i] != NULL; i += 2) {
        const char *k = labels[i];
        if (labels[i + 1] == NULL || !valid_name(k, false) || strncmp(k, "__", 2) == 0 ||
            (histogram && strcmp(k, "le") == 0))
            return false;
        for (size_t j = 0; j < i; j += 2)
            if (strcmp(labels[j], k) == 0)
                return false;
    }
    return true;
}

/* Writes `NAME SUFFIX{k="v",...,LE_KEY="LE"} ` (the braces only when there is a label). */
static void put_series(gw_prom_t *p, const char *name, const char *suffix,
                       const char *const *labels, const char *le)
{
    puts_(p, name);
    puts_(p, suffix);
    bool any = false;
    for (size_t i = 0; labels != NULL && labels[i] != NULL; i += 2) {
        puts_(p, any ? "," : "{");
        puts_(p, labels[i]);
        puts_(p, "=\"");
        put_escaped(p, labels[i + 1], true);
        puts_(p, "\"");
        any = true;
    }
    if (le != NULL) {
        puts_(p, any ? ",le=\"" : "{le=\"");
        puts_(p, le);
        puts_(p, "\"");
        any = true;
    }
    puts_(p, any ? "} " : " ");
}

/* Common checks of a plain sample, then its series; the caller writes the value. */
static int sample_begin(gw_prom_t *p, const char *name, const char *const *labels)
{
    if (p->err)
        return p->err;
    if (p->cur == NULL || name == NULL || strcmp(name, p->cur) != 0 ||
        p->cur_type == GW_PROM_HISTOGRAM || !valid_labels(labels, false))
        return fail(p, GW_EINVAL);
    put_series(p, name, "", labels, NULL);
    return p->err;
}

static void put_line_end(gw_prom_t *p, const char *value)
{
    puts_(p, value);
    puts_(p, "\n");
}

/* see metrics.h */
int gw_prom_sample_u64(gw_prom_t *p, const char *name, const char *const *labels, uint64_t v)
{
    char num[24];
    if (sample_begin(p, name, labels) != 0)
        return p->err;
    snprintf(num, sizeof num, "%" PRIu64, v);
    put_line_end(p, num);
    return p->err;
}

/* see metrics.h */
int gw_prom_sample_i64(gw_prom_t *p, const char *name, const char *const *labels, int64_t v)
{
    char num[24];
    if (sample_begin(p, name, labels) != 0)
        return p->err;
    snprintf(num, sizeof num, "%" PRId64, v);
    put_line_end(p, num);
    return p->err;
}

/* Formats V so that Prometheus (Go's strconv.ParseFloat) reads back exactly V, as briefly
 * as possible: %g drops trailing zeros, so the first precision that round-trips is the
 * shortest; 17 significant digits always do. The process never calls setlocale, so the
 * decimal point is '.'. */
static void format_double(char *out, size_t size, double v)
{
    if (isnan(v)) {
        snprintf(out, size, "NaN");
    } else if (isinf(v)) {
        snprintf(out, size, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 9007199254740992.0) { /* 2^53: exact integers */
        snprintf(out, size, "%.0f", v);
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(out, size, "%.*g", prec, v);
            if (strtod(out, NULL) == v)
                break;
        }
    }
}

/* see metrics.h */
int gw_prom_sample_double(gw_prom_t *p, const char *name, const char *const *labels, double v)
{
    char num[40];
    if (sample_begin(p, name, labels) != 0)
        return p->err;
    format_double(num, sizeof num, v);
    put_line_end(p, num);
    return p->err;
}

/* see metrics.h */
int gw_prom_histogram(gw_prom_t *p, const char *name, const char *const *labels,
                      const gw_histogram_t *h)
{
    if (p->err)
        return p->err;
    if (p->cur == NULL || name == NULL || strcmp(name, p->cur) != 0 ||
        p->cur_type != GW_PROM_HISTOGRAM || !valid_labels(labels, true) || h == NULL)
        return fail(p, GW_EINVAL);
    char num[40];
    uint64_t cumulative = 0;
    for (size_t i = 0; i < GW_HIST_NBUCKETS; i++) {
        cumulative += gw_histogram_bucket_count(h, i);
        put_series(p, name, "_bucket", labels, gw_hist_le[i]);
        snprintf(num, sizeof num, "%" PRIu64, cumulative);
        put_line_end(p, num);
    }
    put_series(p, name, "_sum", labels, NULL);
    format_double(num, sizeof num, (double)gw_histogram_sum_ns(h) / 1e9);
    put_line_end(p, num);
    /* _count is the +Inf bucket by construction: the two cannot disagree. */
    put_series(p, name, "_count", labels, NULL);
    snprintf(num, sizeof num, "%" PRIu64, cumulative);
    put_line_end(p, num);
    return p->err;
}

/* see metrics.h */
int gw_prom_error(const gw_prom_t *p)
{
    return p->err;
}

/* see metrics.h */
const char *gw_prom_text(const gw_prom_t *p, size_t *len)
{
    if (p->err)
        return NULL;
    if (len)
        *len = p->len;
    return p->buf ? p->buf : "";
}

/* see metrics.h */
char *gw_prom_take(gw_prom_t *p, size_t *len)
{
    if (p->err)
        return NULL;
    char *text = p->buf ? p->buf : strdup("");
    if (text == NULL)
        return NULL;
    if (len)
        *len = p->len;
    p->buf = NULL;
    p->len = p->size = 0;
    return text;
}
