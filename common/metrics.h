/* metrics.h - counters, gauges and latency histograms kept per worker and summed when
 * scraped, and a writer for the Prometheus text exposition format (version 0.0.4). */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Why per worker and single writer (DESIGN.md): a counter shared by every worker would be
 * one cache line bouncing between cores on every request, and `lock xadd` on it costs
 * tens of nanoseconds under contention. A counter owned by one worker is written by that
 * worker only, so an increment is a plain load and store (no locked instruction); the
 * scraper, on another thread, reads each worker's copy with a relaxed atomic load (never
 * torn, possibly a moment old) and adds them up. Atomics rather than plain integers so
 * that the concurrent read is defined behaviour and ThreadSanitizer agrees. */

/* ---- counters ------------------------------------------------------------------------- */

/* A monotonically increasing count. Written by ONE thread only; read by any. */
typedef struct gw_counter_s {
    atomic_uint_least64_t v;
} gw_counter_t;

/* Adds N. Only the owning thread may call it: two writers would lose increments (a load
 * and a store, not a read-modify-write). */
static inline void gw_counter_add(gw_counter_t *c, uint64_t n)
{
    uint64_t v = atomic_load_explicit(&c->v, memory_order_relaxed);
    atomic_store_explicit(&c->v, v + n, memory_order_relaxed);
}

static inline void gw_counter_inc(gw_counter_t *c)
{
    gw_counter_add(c, 1);
}

/* The current value; safe from any thread. */
static inline uint64_t gw_counter_get(const gw_counter_t *c)
{
    return atomic_load_explicit(&c->v, memory_order_relaxed);
}

/* ---- gauges --------------------------------------------------------------------------- */

/* A value that goes up and down (active connections). Unlike a counter, a gauge may be
 * shared and written by several threads: add is a real atomic read-modify-write. */
typedef struct gw_gauge_s {
    atomic_int_least64_t v;
} gw_gauge_t;

static inline void gw_gauge_add(gw_gauge_t *g, int64_t d)
{
    atomic_fetch_add_explicit(&g->v, d, memory_order_relaxed);
}

static inline void gw_gauge_set(gw_gauge_t *g, int64_t v)
{
    atomic_store_explicit(&g->v, v, memory_order_relaxed);
}

static inline int64_t gw_gauge_get(const gw_gauge_t *g)
{
    return atomic_load_explicit(&g->v, memory_order_relaxed);
}

/* ---- histograms ----------------------------------------------------------------------- */

/* Fixed latency buckets for a proxy, upper bounds in seconds: 100us .. 10s, then +Inf.
 * Fixed rather than configurable so every worker's histograms can be added bucket by
 * bucket and every gateway's series line up in a dashboard. */
#define GW_HIST_NBOUNDS 16                     /* finite upper bounds */
#define GW_HIST_NBUCKETS (GW_HIST_NBOUNDS + 1) /* plus +Inf */

/* The finite bounds in nanoseconds, ascending: 100000 (0.0001 s) .. 10000000000 (10 s). */
extern const uint64_t gw_hist_bounds_ns[GW_HIST_NBOUNDS];
/* The same bounds as Prometheus `le` label values ("0.0001" .. "10"), then "+Inf". */
extern const char *const gw_hist_le[GW_HIST_NBUCKETS];

/* Single writer, like a counter. Zero-initialised memory (or gw_histogram_init) is an
 * empty histogram. Buckets hold per-bucket (not cumulative) counts; the count of all
 * observations is their sum, so the exposition's +Inf bucket and _count always agree even
 * when the scraper reads while the worker writes (a separate count field would not). */
typedef struct gw_histogram_s {
    atomic_uint_least64_t bucket[GW_HIST_NBUCKETS];
    atomic_uint_least64_t sum_ns;
} gw_histogram_t;

void gw_histogram_init(gw_histogram_t *h);

/* Records one observation of NS nanoseconds: it goes into the first bucket whose bound is
 * >= NS (`le` is inclusive), or +Inf. Owning thread only. */
void gw_histogram_observe_ns(gw_histogram_t *h, uint64_t ns);

/* Index of the bucket NS falls into (0 .. GW_HIST_NBOUNDS; the last one is +Inf). */
size_t gw_histogram_bucket_index(uint64_t ns);

/* Readers, safe from any thread. bucket_count returns bucket I alone (not cumulative). */
uint64_t gw_histogram_bucket_count(const gw_histogram_t *h, size_t i);
uint64_t gw_histogram_count(const gw_histogram_t *h);
uint64_t gw_histogram_sum_ns(const gw_histogram_t *h);

/* Adds SRC into DST, bucket by bucket (summing workers at scrape time). SRC may be written
 * concurrently by its owner; DST must be private to the caller (a scrape-local total). */
void gw_histogram_merge(gw_histogram_t *dst, const gw_histogram_t *src);

/* ---- Prometheus text exposition -------------------------------------------------------- */

typedef struct gw_prom_s gw_prom_t;

typedef enum {
    GW_PROM_COUNTER = 0,
    GW_PROM_GAUGE,
    GW_PROM_HISTOGRAM,
    GW_PROM_UNTYPED
} gw_prom_type_t;

#define GW_PROM_DEFAULT_CAP (4u << 20) /* 4 MiB of text */

/* A builder for one scrape's text. The text grows up to CAP bytes (0: GW_PROM_DEFAULT_CAP).
 * Returns NULL when out of memory. */
gw_prom_t *gw_prom_new(size_t cap);

/* Frees P and its text (NULL is ignored). */
void gw_prom_free(gw_prom_t *p);

/* Labels are passed as a NULL-terminated array of key/value pairs:
 *     const char *const labels[] = {"upstream", "app", "backend", "10.0.0.1:80", NULL};
 * LABELS may be NULL (no labels). Keys must be valid label names ([a-zA-Z_][a-zA-Z0-9_]*,
 * not starting with "__", no key twice, and no "le" on a histogram, which adds its own);
 * values must be UTF-8 (the caller's to ensure) and are escaped here.
 *
 * Errors are sticky: the first failure (invalid name, a family declared twice, a sample
 * outside its family, the cap reached, no memory) is remembered, every later call returns
 * it without writing, and gw_prom_text returns NULL. So a caller may write a whole scrape
 * and check once at the end; a truncated exposition is never served. Each function
 * returns 0 or that error: GW_EINVAL (caller bug) or GW_ENOMEM (cap or malloc). */

/* Starts a family: writes `# HELP NAME HELP` and `# TYPE NAME TYPE`. NAME must be a valid
 * metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) not declared before in P; HELP is escaped. */
int gw_prom_family(gw_prom_t *p, const char *name, const char *help, gw_prom_type_t type);

/* Writes one sample `NAME{LABELS} VALUE` of the current family: NAME must be the name of
 * the family started last (a counter's conventional _total is part of its family name),
 * and that family must not be a histogram (use gw_prom_histogram). */
int gw_prom_sample_u64(gw_prom_t *p, const char *name, const char *const *labels, uint64_t v);
int gw_prom_sample_i64(gw_prom_t *p, const char *name, const char *const *labels, int64_t v);
/* Integral values are written as integers, others in the shortest form that reads back
 * exactly (at most %.17g), infinities as +Inf/-Inf, NaN as NaN. */
int gw_prom_sample_double(gw_prom_t *p, const char *name, const char *const *labels, double v);

/* Writes H as the cumulative series NAME_bucket{LABELS,le="..."} for every bound and
 * +Inf, then NAME_sum{LABELS} (seconds) and NAME_count{LABELS}. NAME must be the current
 * family, declared GW_PROM_HISTOGRAM. H is read with relaxed loads (a live worker's
 * histogram is fine; the series stays self-consistent because _count is the bucket sum). */
int gw_prom_histogram(gw_prom_t *p, const char *name, const char *const *labels,
                      const gw_histogram_t *h);

/* The first error recorded, or 0. */
int gw_prom_error(const gw_prom_t *p);

/* The text so far (NUL-terminated) and its length in *LEN (may be NULL); NULL after an
 * error. The pointer stays valid until the next write or gw_prom_free. */
const char *gw_prom_text(const gw_prom_t *p, size_t *len);

/* Takes the text out of P (ownership transfer: release it with free()); P is left empty
 * and may be freed. NULL after an error or when out of memory. */
char *gw_prom_take(gw_prom_t *p, size_t *len);

#endif
