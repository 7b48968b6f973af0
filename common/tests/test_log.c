/* test_log.c - unit tests for log.h: levels, line formats, rate limiting. Log lines go to
 * fd 2, so the tests point fd 2 at a temporary file while they log and put it back before
 * asserting anything (a failing assert must still be able to print). */
#include "gwtest.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

/* ---- capturing fd 2 -------------------------------------------------------------------- */

typedef struct {
    char path[64];
    int fd;    /* the temporary file */
    int saved; /* the real stderr */
} capture_t;

static void capture_start(capture_t *c)
{
    strcpy(c->path, "/tmp/gw_test_log_XXXXXX");
    c->fd = mkstemp(c->path);
    assert_true(c->fd >= 0);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->saved >= 0);
    assert_int_equal(dup2(c->fd, STDERR_FILENO), STDERR_FILENO);
}

/* Restores stderr and returns everything written to the file (free it). */
static char *read_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long size = ftell(fp);
    assert_true(size >= 0);
    rewind(fp);
    char *buf = malloc((size_t)size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)size, fp), (size_t)size);
    buf[size] = '\0';
    fclose(fp);
    return buf;
}

static char *capture_end(capture_t *c)
{
    fflush(stderr);
    assert_int_equal(dup2(c->saved, STDERR_FILENO), STDERR_FILENO);
    close(c->saved);
    close(c->fd);
    char *out = read_file(c->path);
    unlink(c->path);
    return out;
}

static size_t count_char(const char *s, char ch)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == ch;
    return n;
}

static bool matches(const char *s, const char *ere)
{
    regex_t re;
    assert_int_equal(regcomp(&re, ere, REG_EXTENDED | REG_NOSUB), 0);
    bool ok = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

#define TS_ERE "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z"

/* Parses an RFC 3339 UTC time with milliseconds ("2026-01-01T00:00:00.123Z") to Unix ms. */
static uint64_t parse_ts_ms(const char *s)
{
    struct tm tm = {0};
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    assert_non_null(rest);
    assert_int_equal(rest[0], '.');
    time_t secs = timegm(&tm);
    return (uint64_t)secs * 1000u + (uint64_t)strtoul(rest + 1, NULL, 10);
}

static int setup(void **state)
{
    (void)state;
    gw_log_setup(GW_LOG_INFO, GW_LOG_PLAIN);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    gw_log_setup(GW_LOG_INFO, GW_LOG_PLAIN);
    gw_log_set_thread("main");
    return 0;
}

/* ---- rate limiting --------------------------------------------------------------------- */

static void lograte_first_line_allowed(void **state)
{
    (void)state;
    gw_lograte_t r = {0};
    uint64_t suppressed = 99;
    assert_true(gw_lograte_allow(&r, 5000, 1000, &suppressed));
    assert_int_equal(suppressed, 0);
}

static void lograte_first_line_at_time_zero_allowed(void **state)
{
    (void)state;
    gw_lograte_t r = {0};
    uint64_t suppressed = 99;
    assert_true(gw_lograte_allow(&r, 0, 1000, &suppressed));
    assert_int_equal(suppressed, 0);
}

static void lograte_suppresses_within_period_and_counts(void **state)
{
    (void)state;
    gw_lograte_t r = {0};
    uint64_t suppressed = 0;
    assert_true(gw_lograte_allow(&r, 5000, 1000, &suppressed));
    assert_false(gw_lograte_allow(&r, 5000, 1000, &suppressed));
    assert_false(gw_lograte_allow(&r, 5500, 1000, &suppressed));
    assert_false(gw_lograte_allow(&r, 5999, 1000, &suppressed));
    assert_int_equal(r.suppressed, 3);
}

static void lograte_next_period_reports_suppressed(void **state)
{
    (void)state;
    gw_lograte_t r = {0};
    uint64_t suppressed = 0;
    assert_true(gw_lograte_allow(&r, 5000, 1000, &suppressed));
    for (uint64_t t = 5001; t < 6000; t += 100)
        assert_false(gw_lograte_allow(&r, t, 1000, &suppressed)); /* 10 lines */
    assert_true(gw_lograte_allow(&r, 6000, 1000, &suppressed));
    assert_int_equal(suppressed, 10);

    /* The count starts again from zero after it was reported. */
    assert_false(gw_lograte_allow(&r, 6500, 1000, &suppressed));
    assert_true(gw_lograte_allow(&r, 7000, 1000, &suppressed));
    assert_int_equal(suppressed, 1);

    /* A quiet spell: the next line goes through and nothing was dropped. */
    assert_true(gw_lograte_allow(&r, 60000, 1000, &suppressed));
    assert_int_equal(suppressed, 0);
}

static void lograte_period_counts_from_last_allowed_line(void **state)
{
    (void)state;
    gw_lograte_t r = {0};
    uint64_t suppressed = 0;
    assert_true(gw_lograte_allow(&r, 5000, 1000, &suppressed));
    assert_true(gw_lograte_allow(&r, 6400, 1000, &suppressed));
    assert_false(gw_lograte_allow(&r, 7000, 1000, &suppressed)); /* 600 ms after the last */
    assert_true(gw_lograte_allow(&r, 7400, 1000, &suppressed));
    assert_int_equal(suppressed, 1);
}

/* ---- level names ----------------------------------------------------------------------- */

static void log_level_name_names_each_level(void **state)
{
    (void)state;
    assert_string_equal(gw_log_level_name(GW_LOG_DEBUG), "debug");
    assert_string_equal(gw_log_level_name(GW_LOG_INFO), "info");
    assert_string_equal(gw_log_level_name(GW_LOG_WARN), "warn");
    assert_string_equal(gw_log_level_name(GW_LOG_ERROR), "error");
    assert_string_equal(gw_log_level_name(GW_LOG_OFF), "off");
}

static void log_level_parse_round_trips_with_name(void **state)
{
    (void)state;
    for (int l = GW_LOG_DEBUG; l <= GW_LOG_OFF; l++)
        assert_int_equal(gw_log_level_parse(gw_log_level_name((gw_log_level_t)l)), l);
}

static void log_level_parse_rejects_unknown(void **state)
{
    (void)state;
    assert_int_equal(gw_log_level_parse(""), -1);
    assert_int_equal(gw_log_level_parse("verbose"), -1);
    assert_int_equal(gw_log_level_parse("inf"), -1);
    assert_int_equal(gw_log_level_parse("info "), -1);
    assert_int_equal(gw_log_level_parse("warning"), -1);
}

/* ---- thresholds ------------------------------------------------------------------------ */

static void log_enabled_follows_threshold(void **state)
{
    (void)state;
    gw_log_setup(GW_LOG_WARN, GW_LOG_PLAIN);
    assert_false(gw_log_enabled(GW_LOG_DEBUG));
    assert_false(gw_log_enabled(GW_LOG_INFO));
    assert_true(gw_log_enabled(GW_LOG_WARN));
    assert_true(gw_log_enabled(GW_LOG_ERROR));
    gw_log_setup(GW_LOG_DEBUG, GW_LOG_PLAIN);
    assert_true(gw_log_enabled(GW_LOG_DEBUG));
    assert_false(gw_log_enabled(GW_LOG_OFF)); /* OFF is a threshold, never a line level */
}

static void log_threshold_filters_lines(void **state)
{
    (void)state;
    gw_log_setup(GW_LOG_WARN, GW_LOG_PLAIN);
    capture_t c;
    capture_start(&c);
    gw_debug("dropped-debug");
    gw_info("dropped-info");
    gw_warn("kept-warn");
    gw_error("kept-error");
    char *out = capture_end(&c);
    assert_int_equal(count_char(out, '\n'), 2);
    assert_null(strstr(out, "dropped"));
    gw_assert_contains(out, " warn  [main] kept-warn\n");
    gw_assert_contains(out, " error [main] kept-error\n");
    free(out);
}

static void log_level_off_silences_everything(void **state)
{
    (void)state;
    gw_log_setup(GW_LOG_OFF, GW_LOG_PLAIN);
    capture_t c;
    capture_start(&c);
    gw_error("nothing");
    gw_log(GW_LOG_ERROR, "nothing %d", 2);
    char *out = capture_end(&c);
    assert_string_equal(out, "");
    free(out);
}

/* ---- plain lines ----------------------------------------------------------------------- */

static void log_plain_line_format(void **state)
{
    (void)state;
    capture_t c;
    capture_start(&c);
    uint64_t before = gw_clock_wall_ms(&gw_clock_system);
    gw_info("hello %d %s", 42, "world");
    uint64_t after = gw_clock_wall_ms(&gw_clock_system);
    char *out = capture_end(&c);
    if (!matches(out, "^" TS_ERE " info  \\[main\\] hello 42 world\n$"))
        fail_msg("unexpected line: \"%s\"", out);
    uint64_t t = parse_ts_ms(out); /* UTC, the real wall clock */
    assert_in_range(t, before, after);
    free(out);
}

static void log_plain_line_pads_level_names(void **state)
{
    (void)state;
    gw_log_setup(GW_LOG_DEBUG, GW_LOG_PLAIN);
    capture_t c;
    capture_start(&c);
    gw_debug("d");
    gw_warn("w");
    gw_error("e");
    char *out = capture_end(&c);
    if (!matches(out, "^" TS_ERE " debug \\[main\\] d\n" TS_ERE " warn  \\[main\\] w\n" TS_ERE
                      " error \\[main\\] e\n$"))
        fail_msg("unexpected lines: \"%s\"", out);
    free(out);
}

static void log_set_thread(void *arg)
{
    gw_log_set_thread("w3");
    gw_info("from %s", (const char *)arg);
}

static void log_plain_line_names_thread(void **state)
{
    (void)state;
    capture_t c;
    capture_start(&c);
    uv_thread_t tid;
    int rc = uv_thread_create(&tid, log_set_thread, "worker");
    if (rc == 0)
        rc = uv_thread_join(&tid);
    gw_info("from main"); /* the other thread's name is its own */
    char *out = capture_end(&c);
    assert_int_equal(rc, 0);
    if (!matches(out, "^" TS_ERE " info  \\[w3\\] from worker\n" TS_ERE
                      " info  \\[main\\] from main\n$"))
        fail_msg("unexpected lines: \"%s\"", out);
    free(out);
}

static void log_plain_long_message_truncated_to_one_line(void **state)
{
    (void)state;
    size_t len = 10000;
    char *big = malloc(len + 1);
    assert_non_null(big);
    memset(big, 'x', len);
    big[len] = '\0';
    capture_t c;
    capture_start(&c);
    gw_info("%s", big);
    char *out = capture_end(&c);
    free(big);
    assert_int_equal(count_char(out, '\n'), 1);
    assert_int_equal(out[strlen(out) - 1], '\n');
    size_t xs = count_char(out, 'x');
    assert_in_range(xs, 4000, 4096); /* truncated at 4 KiB */
    free(out);
}

/* ---- JSON lines ------------------------------------------------------------------------ */

/* Parses OUT as exactly one JSON object on one line; returns it (json_decref it). */
static json_t *parse_one_json_line(const char *out)
{
    size_t n = strlen(out);
    if (n == 0 || out[n - 1] != '\n' || count_char(out, '\n') != 1)
        fail_msg("not one line: \"%s\"", out);
    json_error_t err;
    json_t *j = json_loads(out, 0, &err);
    if (j == NULL)
        fail_msg("invalid JSON (%s at column %d): %s", err.text, err.column, out);
    assert_true(json_is_object(j));
    return j;
}

static void log_json_line_is_valid_json(void **state)
{
    (void)state;
    gw_log_setup(GW_LOG_DEBUG, GW_LOG_JSON);
    capture_t c;
    capture_start(&c);
    uint64_t before = gw_clock_wall_ms(&gw_clock_system);
    gw_warn("port %d busy", 8080);
    uint64_t after = gw_clock_wall_ms(&gw_clock_system);
    char *out = capture_end(&c);
    json_t *j = parse_one_json_line(out);
    assert_string_equal(json_string_value(json_object_get(j, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(j, "thread")), "main");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "port 8080 busy");
    const char *ts = json_string_value(json_object_get(j, "time"));
    assert_non_null(ts);
    assert_true(matches(ts, "^" TS_ERE "$"));
    assert_in_range(parse_ts_ms(ts), before, after);
    json_decref(j);
    free(out);
}

static void log_json_escapes_message(void **state)
{
    (void)state;
    gw_log_setup(GW_LOG_INFO, GW_LOG_JSON);
    const char *msg = "say \"hi\" C:\\dir\nnext line\ttab \x01 bell\x07 esc\x1f end";
    capture_t c;
    capture_start(&c);
    gw_info("%s", msg);
    char *out = capture_end(&c);
    json_t *j = parse_one_json_line(out);
    assert_string_equal(json_string_value(json_object_get(j, "msg")), msg);
    /* Control bytes appear escaped, never raw, in the line itself. */
    for (const char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\n')
            fail_msg("raw control byte 0x%02x in \"%s\"", (unsigned char)*p, out);
    json_decref(j);
    free(out);
}

static void log_json_long_message_stays_valid(void **state)
{
    (void)state;
    gw_log_setup(GW_LOG_INFO, GW_LOG_JSON);
    /* Every byte needs escaping: the escaped form is far longer than the line buffer. */
    size_t len = 6000;
    char *big = malloc(len + 1);
    assert_non_null(big);
    for (size_t i = 0; i < len; i++)
        big[i] = i % 3 == 0 ? '"' : i % 3 == 1 ? '\\' : '\x02';
    big[len] = '\0';
    capture_t c;
    capture_start(&c);
    gw_info("%s", big);
    char *out = capture_end(&c);
    json_t *j = parse_one_json_line(out);
    const char *got = json_string_value(json_object_get(j, "msg"));
    assert_non_null(got);
    size_t n = strlen(got);
    assert_true(n > 0 && n < len);
    assert_memory_equal(got, big, n); /* a prefix of the message, cut between escapes */
    json_decref(j);
    free(out);
    free(big);
}

/* ---- log files ------------------------------------------------------------------------- */

static void log_open_appends_to_file(void **state)
{
    (void)state;
    char path[] = "/tmp/gw_test_logfile_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "existing\n", 9), 9);
    close(fd);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    int rc = gw_log_open(path);
    gw_info("first");
    int rc2 = gw_log_open(path); /* reopen, as after rotation */
    gw_info("second");
    dup2(saved, STDERR_FILENO);
    close(saved);
    assert_int_equal(rc, 0);
    assert_int_equal(rc2, 0);
    char *out = read_file(path);
    unlink(path);
    if (!matches(out, "^existing\n" TS_ERE " info  \\[main\\] first\n" TS_ERE
                      " info  \\[main\\] second\n$"))
        fail_msg("unexpected file: \"%s\"", out);
    free(out);
}

static void log_open_failure_returns_negated_errno(void **state)
{
    (void)state;
    struct stat st;
    int before = fstat(STDERR_FILENO, &st);
    assert_int_equal(gw_log_open("/nonexistent-gw-test-dir/x.log"), -ENOENT);
    struct stat st2;
    assert_int_equal(fstat(STDERR_FILENO, &st2), before); /* fd 2 untouched */
    if (before == 0) {
        assert_int_equal(st.st_ino, st2.st_ino);
        assert_int_equal(st.st_dev, st2.st_dev);
    }
}

/* ---- threads --------------------------------------------------------------------------- */

#define LT_THREADS 4
#define LT_LINES 1000
#define LT_PAD 600 /* long lines make torn writes likely if a line took several writes */

static const char *const lt_names[LT_THREADS] = {"t0", "t1", "t2", "t3"};

typedef struct {
    int id;
    uv_barrier_t *start;
} lt_arg_t;

static void lt_thread(void *p)
{
    lt_arg_t *a = p;
    char pad[LT_PAD + 1];
    memset(pad, 'a' + a->id, LT_PAD);
    pad[LT_PAD] = '\0';
    gw_log_set_thread(lt_names[a->id]);
    uv_barrier_wait(a->start);
    for (int i = 0; i < LT_LINES; i++)
        gw_info("line %d %s end", i, pad);
}

static void log_lines_from_threads_never_interleave(void **state)
{
    (void)state;
    char path[] = "/tmp/gw_test_logthreads_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    int rc = gw_log_open(path);
    uv_barrier_t start;
    int brc = uv_barrier_init(&start, LT_THREADS);
    uv_thread_t tids[LT_THREADS];
    lt_arg_t args[LT_THREADS];
    int created = 0;
    for (int i = 0; rc == 0 && brc == 0 && i < LT_THREADS; i++) {
        args[i] = (lt_arg_t){.id = i, .start = &start};
        if (uv_thread_create(&tids[i], lt_thread, &args[i]) != 0)
            break;
        created++;
    }
    for (int i = 0; i < created; i++)
        uv_thread_join(&tids[i]);
    if (brc == 0)
        uv_barrier_destroy(&start);
    dup2(saved, STDERR_FILENO);
    close(saved);
    assert_int_equal(rc, 0);
    assert_int_equal(brc, 0);
    assert_int_equal(created, LT_THREADS);

    char *out = read_file(path);
    unlink(path);
    int seen[LT_THREADS][LT_LINES] = {{0}};
    int lines = 0;
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lines++;
        int id = -1, n = -1, off = 0; /* fail_msg does not return, but clang cannot tell */
        char name[8];
        const char *body = strstr(line, " info  [");
        if (body == NULL || sscanf(body, " info  [t%d] line %d %n", &id, &n, &off) != 2 || id < 0 ||
            id >= LT_THREADS || n < 0 || n >= LT_LINES)
            fail_msg("torn line: \"%s\"", line);
        snprintf(name, sizeof name, "t%d", id);
        const char *pad = body + off;
        for (int k = 0; k < LT_PAD; k++)
            if (pad[k] != 'a' + id)
                fail_msg("torn line from %s: \"%s\"", name, line);
        assert_string_equal(pad + LT_PAD, " end");
        seen[id][n]++;
    }
    free(out);
    assert_int_equal(lines, LT_THREADS * LT_LINES);
    for (int t = 0; t < LT_THREADS; t++)
        for (int n = 0; n < LT_LINES; n++)
            assert_int_equal(seen[t][n], 1);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(lograte_first_line_allowed),
        T(lograte_first_line_at_time_zero_allowed),
        T(lograte_suppresses_within_period_and_counts),
        T(lograte_next_period_reports_suppressed),
        T(lograte_period_counts_from_last_allowed_line),
        T(log_level_name_names_each_level),
        T(log_level_parse_round_trips_with_name),
        T(log_level_parse_rejects_unknown),
        T(log_enabled_follows_threshold),
        T(log_threshold_filters_lines),
        T(log_level_off_silences_everything),
        T(log_plain_line_format),
        T(log_plain_line_pads_level_names),
        T(log_plain_line_names_thread),
        T(log_plain_long_message_truncated_to_one_line),
        T(log_json_line_is_valid_json),
        T(log_json_escapes_message),
        T(log_json_long_message_stays_valid),
        T(log_open_appends_to_file),
        T(log_open_failure_returns_negated_errno),
        T(log_lines_from_threads_never_interleave),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
