/* test_metrics.c - unit tests for metrics.h: histogram bucketing and merging, the
 * Prometheus text writer (checked line by line by a strict parser below), and a counter's
 * single writer with a concurrent reader (run under TSan by `make tsan`). */
#include "gwtest.h"

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "metrics.h"

/* ---- a strict parser for the text exposition format --------------------------------------
 * Stricter than Prometheus itself where that catches our bugs: every line must be a
 * `# HELP`/`# TYPE` comment or `name{labels} value` (no timestamps: we never write them);
 * TYPE at most once per family and before its samples; a family's samples contiguous; no
 * series twice; histogram buckets cumulative, ending in +Inf, which must equal _count. */

#define MAXSERIES 512

typedef struct {
    char family[128];
    char type[16];
    char declared[64][128]; /* families with a TYPE line */
    size_t ndeclared;
    char *series[MAXSERIES]; /* every `name{labels}` seen */
    size_t nseries;
    double last_bucket; /* histogram state for the current series */
    bool inf_seen;
    double inf_value;
    char why[256];
    int line;
} parser_t;

static bool name_char(char c, bool colon, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':') ||
           (!first && c >= '0' && c <= '9');
}

/* Length of the metric name (COLON) or label name at S. */
static size_t name_len(const char *s, bool colon)
{
    size_t n = 0;
    while (s[n] != '\0' && name_char(s[n], colon, n == 0))
        n++;
    return n;
}

static bool parse_value(const char *s, double *v)
{
    if (strcmp(s, "+Inf") == 0 || strcmp(s, "-Inf") == 0 || strcmp(s, "NaN") == 0) {
        *v = s[0] == '+' ? INFINITY : s[0] == '-' ? -INFINITY : NAN;
        return true;
    }
    if (*s == '\0' || strpbrk(s, "xXpP ni") != NULL) /* no hex, no spaces, no inf/nan words */
        return false;
    char *end;
    *v = strtod(s, &end);
    return *end == '\0';
}

static bool bad(parser_t *ps, const char *why)
{
    snprintf(ps->why, sizeof ps->why, "line %d: %s", ps->line, why);
    return false;
}

static bool parse_comment(parser_t *ps, const char *l)
{
    bool help = strncmp(l, "# HELP ", 7) == 0, type = strncmp(l, "# TYPE ", 7) == 0;
    if (!help && !type)
        return bad(ps, "comment is neither HELP nor TYPE");
    const char *name = l + 7;
    size_t n = name_len(name, true);
    if (n == 0 || n >= sizeof ps->family || name[n] != ' ')
        return bad(ps, "bad family name");
    const char *rest = name + n + 1;
    if (help) {
        for (const char *c = rest; *c; c++)
            if (*c == '\\' && (c[1] != '\\' && c[1] != 'n'))
                return bad(ps, "bad escape in HELP");
            else if (*c == '\\')
                c++;
        memcpy(ps->family, name, n);
        ps->family[n] = '\0';
        return true;
    }
    if (strcmp(rest, "counter") && strcmp(rest, "gauge") && strcmp(rest, "histogram") &&
        strcmp(rest, "summary") && strcmp(rest, "untyped"))
        return bad(ps, "unknown TYPE");
    for (size_t i = 0; i < ps->ndeclared; i++)
        if (strlen(ps->declared[i]) == n && strncmp(ps->declared[i], name, n) == 0)
            return bad(ps, "TYPE twice for one family");
    if (ps->ndeclared == 64)
        return bad(ps, "too many families for the test parser");
    memcpy(ps->declared[ps->ndeclared], name, n);
    ps->declared[ps->ndeclared++][n] = '\0';
    memcpy(ps->family, name, n);
    ps->family[n] = '\0';
    snprintf(ps->type, sizeof ps->type, "%s", rest);
    return true;
}

/* Parses `{k="v",...}` at *P; copies the value of `le` into LE (empty when none). */
static bool parse_labels(parser_t *ps, const char **pp, char *le, size_t lesize)
{
    const char *p = *pp;
    le[0] = '\0';
    if (*p != '{')
        return true;
    p++;
    while (*p != '}') {
        size_t n = name_len(p, false);
        if (n == 0 || p[n] != '=' || p[n + 1] != '"')
            return bad(ps, "bad label name");
        bool is_le = n == 2 && strncmp(p, "le", 2) == 0;
        p += n + 2;
        size_t vl = 0;
        for (; *p != '"'; p++) {
            if (*p == '\0' || *p == '\n')
                return bad(ps, "unterminated label value");
            if (*p == '\\' && p[1] != '\\' && p[1] != '"' && p[1] != 'n')
                return bad(ps, "bad escape in label value");
            if (is_le && vl + 1 < lesize)
                le[vl++] = *p;
            if (*p == '\\')
                p++;
        }
        if (is_le)
            le[vl] = '\0';
        p++;
        if (*p == ',' && p[1] != '}')
            p++;
        else if (*p != '}')
            return bad(ps, "expected , or }");
    }
    *pp = p + 1;
    return true;
}

static bool check_histogram(parser_t *ps, const char *suffix, const char *le, double v)
{
    if (strcmp(suffix, "_bucket") == 0) {
        if (le[0] == '\0')
            return bad(ps, "bucket without le");
        if (ps->inf_seen)
            return bad(ps, "bucket after +Inf");
        if (v < ps->last_bucket)
            return bad(ps, "buckets not cumulative");
        ps->last_bucket = v;
        if (strcmp(le, "+Inf") == 0) {
            ps->inf_seen = true;
            ps->inf_value = v;
        }
    } else if (strcmp(suffix, "_count") == 0) {
        if (!ps->inf_seen || v != ps->inf_value)
            return bad(ps, "_count differs from the +Inf bucket");
        ps->inf_seen = false;
        ps->last_bucket = 0;
    } else if (strcmp(suffix, "_sum") != 0) {
        return bad(ps, "histogram sample with an unknown suffix");
    }
    return true;
}

static bool parse_sample(parser_t *ps, const char *l)
{
    size_t n = name_len(l, true);
    if (n == 0 || ps->family[0] == '\0' || ps->type[0] == '\0')
        return bad(ps, "sample without a declared family");
    size_t fl = strlen(ps->family);
    if (n < fl || strncmp(l, ps->family, fl) != 0)
        return bad(ps, "sample outside its family");
    char suffix[32];
    snprintf(suffix, sizeof suffix, "%.*s", (int)(n - fl), l + fl);
    bool hist = strcmp(ps->type, "histogram") == 0;
    if (!hist && suffix[0] != '\0')
        return bad(ps, "sample name differs from its family");
    const char *p = l + n;
    char le[32];
    if (!parse_labels(ps, &p, le, sizeof le))
        return false;
    if (*p != ' ')
        return bad(ps, "expected one space before the value");
    double v;
    if (!parse_value(p + 1, &v))
        return bad(ps, "bad value");
    for (size_t i = 0; i < ps->nseries; i++)
        if (strlen(ps->series[i]) == (size_t)(p - l) && strncmp(ps->series[i], l, p - l) == 0)
            return bad(ps, "series twice");
    if (ps->nseries == MAXSERIES)
        return bad(ps, "too many series for the test parser");
    ps->series[ps->nseries++] = strndup(l, p - l);
    return hist ? check_histogram(ps, suffix, le, v) : true;
}

/* Returns true when TEXT is a valid exposition; otherwise ps->why says where and why. */
static bool parse_exposition(parser_t *ps, const char *text)
{
    memset(ps, 0, sizeof *ps);
    bool ok = true;
    char line[4096];
    while (ok && *text) {
        const char *nl = strchr(text, '\n');
        ps->line++;
        if (nl == NULL)
            return bad(ps, "last line without a newline");
        if ((size_t)(nl - text) >= sizeof line)
            return bad(ps, "line too long for the test parser");
        memcpy(line, text, nl - text);
        line[nl - text] = '\0';
        ok = line[0] == '#' ? parse_comment(ps, line) : parse_sample(ps, line);
        text = nl + 1;
    }
    if (ok && ps->inf_seen)
        ok = bad(ps, "histogram without _count");
    for (size_t i = 0; i < ps->nseries; i++)
        free(ps->series[i]);
    return ok;
}

#define assert_valid_exposition(text)                                                              \
    do {                                                                                           \
        parser_t ps_;                                                                              \
        if (!parse_exposition(&ps_, (text)))                                                       \
            fail_msg("invalid exposition: %s\n%s", ps_.why, (text));                               \
    } while (0)

/* ---- histograms ------------------------------------------------------------------------- */

static void histogram_value_on_a_bound_goes_into_that_bucket(void **state)
{
    (void)state;
    for (size_t i = 0; i < GW_HIST_NBOUNDS; i++) {
        assert_int_equal(gw_histogram_bucket_index(gw_hist_bounds_ns[i]), i);
        assert_int_equal(gw_histogram_bucket_index(gw_hist_bounds_ns[i] + 1), i + 1);
        if (i > 0)
            assert_int_equal(gw_histogram_bucket_index(gw_hist_bounds_ns[i - 1] + 1), i);
    }
    assert_int_equal(gw_histogram_bucket_index(0), 0);
}

static void histogram_value_above_ten_seconds_goes_into_inf(void **state)
{
    (void)state;
    gw_histogram_t h;
    gw_histogram_init(&h);
    gw_histogram_observe_ns(&h, 10000000001ull);
    gw_histogram_observe_ns(&h, UINT64_MAX / 4);
    assert_int_equal(gw_histogram_bucket_count(&h, GW_HIST_NBOUNDS), 2);
    assert_int_equal(gw_histogram_bucket_count(&h, GW_HIST_NBOUNDS - 1), 0);
}

static void histogram_bounds_match_le_labels(void **state)
{
    (void)state;
    for (size_t i = 0; i < GW_HIST_NBOUNDS; i++)
        assert_true(fabs(strtod(gw_hist_le[i], NULL) * 1e9 - (double)gw_hist_bounds_ns[i]) < 0.5);
    assert_string_equal(gw_hist_le[GW_HIST_NBOUNDS], "+Inf");
}

static void histogram_keeps_sum_and_count(void **state)
{
    (void)state;
    gw_histogram_t h;
    gw_histogram_init(&h);
    gw_histogram_observe_ns(&h, 1000);
    gw_histogram_observe_ns(&h, 2000000);
    gw_histogram_observe_ns(&h, 3000000000ull);
    assert_int_equal(gw_histogram_count(&h), 3);
    assert_int_equal(gw_histogram_sum_ns(&h), 3002001000ull);
    assert_int_equal(gw_histogram_bucket_count(&h, 0), 1);
    assert_int_equal(gw_histogram_bucket_count(&h, 4), 1);  /* 2 ms <= 2.5 ms */
    assert_int_equal(gw_histogram_bucket_count(&h, 14), 1); /* 3 s <= 5 s */
}

static void histogram_merge_sums_two_workers(void **state)
{
    (void)state;
    gw_histogram_t w0, w1, total;
    gw_histogram_init(&w0);
    gw_histogram_init(&w1);
    gw_histogram_init(&total);
    gw_histogram_observe_ns(&w0, 50000);
    gw_histogram_observe_ns(&w0, 7000000);
    gw_histogram_observe_ns(&w1, 60000);
    gw_histogram_merge(&total, &w0);
    gw_histogram_merge(&total, &w1);
    assert_int_equal(gw_histogram_count(&total), 3);
    assert_int_equal(gw_histogram_sum_ns(&total), 7110000);
    assert_int_equal(gw_histogram_bucket_count(&total, 0), 2);
    assert_int_equal(gw_histogram_bucket_count(&total, 6), 1); /* 7 ms <= 10 ms */
    assert_int_equal(gw_histogram_count(&w0), 2);              /* sources untouched */
}

/* ---- the exposition writer ---------------------------------------------------------------- */

static void prom_histogram_is_cumulative_with_sum_in_seconds(void **state)
{
    (void)state;
    gw_histogram_t h;
    gw_histogram_init(&h);
    gw_histogram_observe_ns(&h, 100000);   /* le=0.0001 */
    gw_histogram_observe_ns(&h, 300000);   /* le=0.0005 */
    gw_histogram_observe_ns(&h, 20000000); /* le=0.025 */
    gw_prom_t *p = gw_prom_new(0);
    const char *const labels[] = {"upstream", "app", NULL};
    assert_int_equal(
        gw_prom_family(p, "gw_upstream_connect_seconds", "Connect time.", GW_PROM_HISTOGRAM), 0);
    assert_int_equal(gw_prom_histogram(p, "gw_upstream_connect_seconds", labels, &h), 0);
    const char *t = gw_prom_text(p, NULL);
    assert_non_null(t);
    gw_assert_contains(t, "gw_upstream_connect_seconds_bucket{upstream=\"app\",le=\"0.0001\"} 1\n");
    gw_assert_contains(t,
                       "gw_upstream_connect_seconds_bucket{upstream=\"app\",le=\"0.00025\"} 1\n");
    gw_assert_contains(t, "gw_upstream_connect_seconds_bucket{upstream=\"app\",le=\"0.0005\"} 2\n");
    gw_assert_contains(t, "gw_upstream_connect_seconds_bucket{upstream=\"app\",le=\"0.01\"} 2\n");
    gw_assert_contains(t, "gw_upstream_connect_seconds_bucket{upstream=\"app\",le=\"0.025\"} 3\n");
    gw_assert_contains(t, "gw_upstream_connect_seconds_bucket{upstream=\"app\",le=\"+Inf\"} 3\n");
    gw_assert_contains(t, "gw_upstream_connect_seconds_sum{upstream=\"app\"} 0.0204\n");
    gw_assert_contains(t, "gw_upstream_connect_seconds_count{upstream=\"app\"} 3\n");
    assert_valid_exposition(t);
    gw_prom_free(p);
}

static void prom_label_values_are_escaped(void **state)
{
    (void)state;
    gw_prom_t *p = gw_prom_new(0);
    const char *const labels[] = {"backend", "a\\b\"c\nd", NULL};
    gw_prom_family(p, "gw_backend_healthy", "Health.", GW_PROM_GAUGE);
    assert_int_equal(gw_prom_sample_u64(p, "gw_backend_healthy", labels, 1), 0);
    const char *t = gw_prom_text(p, NULL);
    gw_assert_contains(t, "gw_backend_healthy{backend=\"a\\\\b\\\"c\\nd\"} 1\n");
    assert_valid_exposition(t);
    gw_prom_free(p);
}

static void prom_help_escapes_backslash_and_newline_only(void **state)
{
    (void)state;
    gw_prom_t *p = gw_prom_new(0);
    gw_prom_family(p, "gw_x_total", "a \"quoted\" \\ and\nnext", GW_PROM_COUNTER);
    const char *t = gw_prom_text(p, NULL);
    assert_string_equal(t, "# HELP gw_x_total a \"quoted\" \\\\ and\\nnext\n"
                           "# TYPE gw_x_total counter\n");
    gw_prom_free(p);
}

static void prom_numbers_parse_back_exactly(void **state)
{
    (void)state;
    gw_prom_t *p = gw_prom_new(0);
    gw_prom_family(p, "gw_v", "Values.", GW_PROM_GAUGE);
    const char *const a[] = {"k", "a", NULL}, *const b[] = {"k", "b", NULL},
                      *const c[] = {"k", "c", NULL}, *const d[] = {"k", "d", NULL},
                      *const e[] = {"k", "e", NULL}, *const f[] = {"k", "f", NULL};
    gw_prom_sample_double(p, "gw_v", a, 42.0);
    gw_prom_sample_double(p, "gw_v", b, 0.1);
    gw_prom_sample_double(p, "gw_v", c, 1.0 / 3.0);
    gw_prom_sample_double(p, "gw_v", d, INFINITY);
    gw_prom_sample_i64(p, "gw_v", e, -7);
    gw_prom_sample_u64(p, "gw_v", f, UINT64_MAX);
    const char *t = gw_prom_text(p, NULL);
    gw_assert_contains(t, "gw_v{k=\"a\"} 42\n");
    gw_assert_contains(t, "gw_v{k=\"b\"} 0.1\n");
    gw_assert_contains(t, "gw_v{k=\"d\"} +Inf\n");
    gw_assert_contains(t, "gw_v{k=\"e\"} -7\n");
    gw_assert_contains(t, "gw_v{k=\"f\"} 18446744073709551615\n");
    const char *third = strstr(t, "gw_v{k=\"c\"} ");
    assert_non_null(third);
    assert_true(strtod(third + strlen("gw_v{k=\"c\"} "), NULL) == 1.0 / 3.0);
    assert_valid_exposition(t);
    gw_prom_free(p);
}

static void prom_whole_exposition_is_valid(void **state)
{
    (void)state;
    gw_histogram_t h0, h1;
    gw_histogram_init(&h0);
    gw_histogram_init(&h1);
    for (uint64_t i = 0; i < 100; i++)
        gw_histogram_observe_ns(&h0, i * 997 * 1000);
    gw_histogram_observe_ns(&h1, 12000000000ull);
    gw_prom_t *p = gw_prom_new(0);
    gw_prom_family(p, "gw_connections_total", "Connections accepted.", GW_PROM_COUNTER);
    gw_prom_sample_u64(p, "gw_connections_total", (const char *const[]){"listener", "edge", NULL},
                       12);
    gw_prom_sample_u64(p, "gw_connections_total", (const char *const[]){"listener", "api", NULL},
                       0);
    gw_prom_family(p, "gw_connections_active", "Open connections.", GW_PROM_GAUGE);
    gw_prom_sample_i64(p, "gw_connections_active", NULL, 3);
    gw_prom_family(p, "gw_bytes_total", "Bytes proxied.", GW_PROM_COUNTER);
    gw_prom_sample_u64(p, "gw_bytes_total", (const char *const[]){"direction", "in", NULL}, 1);
    gw_prom_sample_u64(p, "gw_bytes_total", (const char *const[]){"direction", "out", NULL}, 2);
    gw_prom_family(p, "gw_upstream_connect_seconds", "Connect latency.", GW_PROM_HISTOGRAM);
    gw_prom_histogram(p, "gw_upstream_connect_seconds", (const char *const[]){"u", "a", NULL}, &h0);
    gw_prom_histogram(p, "gw_upstream_connect_seconds", (const char *const[]){"u", "b", NULL}, &h1);
    gw_prom_histogram(p, "gw_upstream_connect_seconds", NULL, &h1);
    assert_int_equal(gw_prom_error(p), 0);
    assert_valid_exposition(gw_prom_text(p, NULL));
    gw_prom_free(p);
}

/* The strict parser must be able to fail, or the test above proves nothing. */
static void prom_test_parser_rejects_malformed_text(void **state)
{
    (void)state;
    static const char *const bad_texts[] = {
        "x 1\n",                            /* no TYPE */
        "# TYPE x gauge\nx 1",              /* no final newline */
        "# TYPE x gauge\nx{a=\"b} 1\n",     /* unterminated */
        "# TYPE x gauge\nx{a=\"\\t\"} 1\n", /* bad escape */
        "# TYPE x gauge\nx  1\n",           /* two spaces */
        "# TYPE x gauge\nx 0x10\n",         /* hex */
        "# TYPE x gauge\n# TYPE x gauge\n", /* TYPE twice */
        "# TYPE x gauge\nx 1\nx 2\n",       /* series twice */
        "# TYPE x gauge\ny 1\n",            /* outside family */
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n",
        "# comment\n",
    };
    for (size_t i = 0; i < sizeof bad_texts / sizeof bad_texts[0]; i++) {
        parser_t ps;
        if (parse_exposition(&ps, bad_texts[i]))
            fail_msg("the test parser accepted bad text %zu:\n%s", i, bad_texts[i]);
    }
}

static void prom_family_declared_twice_is_an_error(void **state)
{
    (void)state;
    gw_prom_t *p = gw_prom_new(0);
    assert_int_equal(gw_prom_family(p, "gw_a", "A.", GW_PROM_GAUGE), 0);
    assert_int_equal(gw_prom_family(p, "gw_b", "B.", GW_PROM_GAUGE), 0);
    assert_int_equal(gw_prom_family(p, "gw_a", "A.", GW_PROM_GAUGE), GW_EINVAL);
    assert_null(gw_prom_text(p, NULL));
    gw_prom_free(p);
}

static void prom_sample_outside_its_family_is_an_error(void **state)
{
    (void)state;
    gw_prom_t *p = gw_prom_new(0);
    assert_int_equal(gw_prom_sample_u64(p, "gw_a", NULL, 1), GW_EINVAL); /* no family yet */
    gw_prom_free(p);
    p = gw_prom_new(0);
    gw_prom_family(p, "gw_a", "A.", GW_PROM_GAUGE);
    gw_prom_family(p, "gw_b", "B.", GW_PROM_GAUGE);
    assert_int_equal(gw_prom_sample_u64(p, "gw_a", NULL, 1), GW_EINVAL);
    /* sticky: a valid call afterwards fails too */
    assert_int_equal(gw_prom_sample_u64(p, "gw_b", NULL, 1), GW_EINVAL);
    assert_int_equal(gw_prom_error(p), GW_EINVAL);
    gw_prom_free(p);
}

static void prom_invalid_names_are_errors(void **state)
{
    (void)state;
    static const char *const bad_names[] = {"", "1abc", "a-b", "a b", "é"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        gw_prom_t *p = gw_prom_new(0);
        assert_int_equal(gw_prom_family(p, bad_names[i], "x", GW_PROM_GAUGE), GW_EINVAL);
        gw_prom_free(p);
    }
    static const char *const bad_keys[] = {"a:b", "__x", "1a", ""};
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
        gw_prom_t *p = gw_prom_new(0);
        gw_prom_family(p, "gw_x", "x", GW_PROM_GAUGE);
        const char *const labels[] = {bad_keys[i], "v", NULL};
        assert_int_equal(gw_prom_sample_u64(p, "gw_x", labels, 1), GW_EINVAL);
        gw_prom_free(p);
    }
    gw_prom_t *p = gw_prom_new(0);
    gw_prom_family(p, "gw_h", "x", GW_PROM_HISTOGRAM);
    gw_histogram_t h;
    gw_histogram_init(&h);
    assert_int_equal(gw_prom_histogram(p, "gw_h", (const char *const[]){"le", "1", NULL}, &h),
                     GW_EINVAL);
    gw_prom_free(p);
    p = gw_prom_new(0);
    gw_prom_family(p, "gw_x", "x", GW_PROM_GAUGE);
    assert_int_equal(
        gw_prom_sample_u64(p, "gw_x", (const char *const[]){"a", "1", "a", "2", NULL}, 1),
        GW_EINVAL);
    gw_prom_free(p);
}

static void prom_cap_reached_fails_without_partial_text(void **state)
{
    (void)state;
    gw_prom_t *p = gw_prom_new(200);
    gw_prom_family(p, "gw_x", "x", GW_PROM_GAUGE);
    int rc = 0;
    char v[16];
    for (int i = 0; i < 100 && rc == 0; i++) {
        snprintf(v, sizeof v, "%d", i);
        rc = gw_prom_sample_u64(p, "gw_x", (const char *const[]){"i", v, NULL}, 1);
    }
    assert_int_equal(rc, GW_ENOMEM);
    assert_null(gw_prom_text(p, NULL));
    assert_null(gw_prom_take(p, NULL));
    gw_prom_free(p);
}

static void prom_take_transfers_the_text(void **state)
{
    (void)state;
    gw_prom_t *p = gw_prom_new(0);
    size_t len = 0;
    char *empty = gw_prom_take(p, &len);
    assert_string_equal(empty, "");
    assert_int_equal(len, 0);
    free(empty);
    gw_prom_family(p, "gw_x", "x", GW_PROM_GAUGE);
    gw_prom_sample_u64(p, "gw_x", NULL, 5);
    char *t = gw_prom_take(p, &len);
    gw_prom_free(p);
    assert_int_equal(len, strlen(t));
    gw_assert_contains(t, "gw_x 5\n");
    free(t);
}

/* ---- counters and gauges ------------------------------------------------------------------ */

#define WRITES 200000

typedef struct {
    gw_counter_t c;
    atomic_bool done;
} shared_t;

static void writer(void *arg)
{
    shared_t *s = arg;
    for (int i = 0; i < WRITES; i++)
        gw_counter_inc(&s->c);
    atomic_store(&s->done, true);
}

/* One writer, one concurrent reader: the reader never sees the value go backwards and the
 * final value is exact. Under TSan this is also the proof that the pattern is race-free. */
static void counter_single_writer_concurrent_reader(void **state)
{
    (void)state;
    shared_t s = {0};
    uv_thread_t t;
    assert_int_equal(uv_thread_create(&t, writer, &s), 0);
    uint64_t last = 0;
    int backwards = 0;
    while (!atomic_load(&s.done)) {
        uint64_t v = gw_counter_get(&s.c);
        backwards += v < last;
        last = v;
    }
    uv_thread_join(&t);
    assert_int_equal(backwards, 0);
    assert_int_equal(gw_counter_get(&s.c), WRITES);
}

static void gauge_add_and_set(void **state)
{
    (void)state;
    gw_gauge_t g = {0};
    gw_gauge_add(&g, 5);
    gw_gauge_add(&g, -7);
    assert_int_equal(gw_gauge_get(&g), -2);
    gw_gauge_set(&g, 40);
    assert_int_equal(gw_gauge_get(&g), 40);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(histogram_value_on_a_bound_goes_into_that_bucket),
        cmocka_unit_test(histogram_value_above_ten_seconds_goes_into_inf),
        cmocka_unit_test(histogram_bounds_match_le_labels),
        cmocka_unit_test(histogram_keeps_sum_and_count),
        cmocka_unit_test(histogram_merge_sums_two_workers),
        cmocka_unit_test(prom_histogram_is_cumulative_with_sum_in_seconds),
        cmocka_unit_test(prom_label_values_are_escaped),
        cmocka_unit_test(prom_help_escapes_backslash_and_newline_only),
        cmocka_unit_test(prom_numbers_parse_back_exactly),
        cmocka_unit_test(prom_whole_exposition_is_valid),
        cmocka_unit_test(prom_test_parser_rejects_malformed_text),
        cmocka_unit_test(prom_family_declared_twice_is_an_error),
        cmocka_unit_test(prom_sample_outside_its_family_is_an_error),
        cmocka_unit_test(prom_invalid_names_are_errors),
        cmocka_unit_test(prom_cap_reached_fails_without_partial_text),
        cmocka_unit_test(prom_take_transfers_the_text),
        cmocka_unit_test(counter_single_writer_concurrent_reader),
        cmocka_unit_test(gauge_add_and_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
