/* test_reload.c - the reload triggers on a real libuv loop: coalescing of requests, and the
 * file watcher on a temporary directory with real writes and renames (an editor's save, a
 * truncate-then-write, a save in two parts). The loop is driven, never slept on: a test
 * runs it until a condition holds or a deadline timer says it never will, and a "fires
 * once" test then runs it for a few more quiet periods to see that nothing else comes. */
#include "gwtest.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"

#include "05-discovery/reload.h"

#define QUIET_MS 200 /* long enough that one writer's pieces are never split by it */
#define DEADLINE_MS 5000

typedef struct {
    uv_loop_t loop;
    gw_reload_t r;
    char dir[64];
    char path[96];
    int runs;
    unsigned whys[16];
    char seen[16][128];  /* the file's contents as each run read it */
    int requests_in_run; /* gw_reload_request calls the next run makes */
    int run_rc;
    bool closed;
} fixture_t;

static fixture_t *F;

static void read_file(const char *path, char *out, size_t size)
{
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    size_t n = fread(out, 1, size - 1, f);
    out[n] = '\0';
    fclose(f);
}

/* The fake reload: records why, and reads the file as a real one would. */
static int fake_run(void *ctx, unsigned why)
{
    fixture_t *f = ctx;
    assert_true(f->r.running);
    if (f->runs < 16) {
        f->whys[f->runs] = why;
        read_file(f->path, f->seen[f->runs], sizeof f->seen[0]);
    }
    f->runs++;
    for (int i = 0; i < f->requests_in_run; i++)
        gw_reload_request(&f->r, GW_RELOAD_SIGNAL);
    f->requests_in_run = 0;
    /* Ends the caller's uv_run(ONCE) without blocking in its poll (which would otherwise
     * wait for the next timer, the deadline): run_until_runs then checks its condition. */
    uv_stop(&f->loop);
    return f->run_rc;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
    (void)state;
    F = calloc(1, sizeof *F);
    assert_non_null(F);
    assert_int_equal(uv_loop_init(&F->loop), 0);
    snprintf(F->dir, sizeof F->dir, "/tmp/gw-reload-XXXXXX");
    assert_non_null(mkdtemp(F->dir));
    snprintf(F->path, sizeof F->path, "%s/gw.yaml", F->dir);
    write_file(F->path, "version: 1\n");
    assert_int_equal(gw_reload_init(&F->r, &F->loop, fake_run, F), 0);
    return 0;
}

static void on_closed(gw_reload_t *r)
{
    (void)r;
    F->closed = true;
}

static int teardown(void **state)
{
    (void)state;
    gw_reload_close(&F->r, on_closed);
    assert_int_equal(uv_run(&F->loop, UV_RUN_DEFAULT), 0);
    assert_true(F->closed);
    assert_int_equal(uv_loop_close(&F->loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", F->dir);
    assert_int_equal(system(cmd), 0);
    free(F);
    F = NULL;
    return 0;
}

/* ---- driving the loop -------------------------------------------------------------------- */

static void on_stop(uv_timer_t *t)
{
    *(bool *)t->data = true;
    uv_stop(t->loop);
}

/* Runs the loop until *RUNS reaches WANT or MS pass; returns whether it was reached. */
static bool run_until_runs(int want, uint64_t ms)
{
    bool expired = false;
    uv_timer_t t;
    uv_timer_init(&F->loop, &t);
    t.data = &expired;
    uv_timer_start(&t, on_stop, ms, 0);
    while (F->runs < want && !expired)
        uv_run(&F->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&F->loop, UV_RUN_NOWAIT); /* the close callback */
    return F->runs >= want;
}

/* Runs the loop for MS (its own timer), whatever happens meanwhile. */
static void run_for(uint64_t ms)
{
    bool expired = false;
    uv_timer_t t;
    uv_timer_init(&F->loop, &t);
    t.data = &expired;
    uv_timer_start(&t, on_stop, ms, 0);
    while (!expired)
        uv_run(&F->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&F->loop, UV_RUN_NOWAIT);
}

/* ---- requests and coalescing ---------------------------------------------------------------- */

static void reload_request_runs_on_a_later_turn(void **state)
{
    (void)state;
    gw_reload_request(&F->r, GW_RELOAD_SIGNAL);
    assert_int_equal(F->runs, 0); /* never from inside the trigger */
    assert_true(run_until_runs(1, DEADLINE_MS));
    assert_int_equal(F->whys[0], GW_RELOAD_SIGNAL);
    run_for(50);
    assert_int_equal(F->runs, 1);
}

static void reload_requests_before_a_run_coalesce_into_one(void **state)
{
    (void)state;
    gw_reload_request(&F->r, GW_RELOAD_SIGNAL);
    gw_reload_request(&F->r, GW_RELOAD_FILE);
    gw_reload_request(&F->r, GW_RELOAD_SIGNAL);
    assert_true(run_until_runs(1, DEADLINE_MS));
    run_for(50);
    assert_int_equal(F->runs, 1);
    assert_int_equal(F->whys[0], GW_RELOAD_SIGNAL | GW_RELOAD_FILE);
    assert_int_equal(F->r.requests, 3);
}

/* Triggers that arrive while a reload runs make exactly one more, after it. */
static void reload_requests_during_a_run_coalesce_into_one_more(void **state)
{
    (void)state;
    F->requests_in_run = 5;
    gw_reload_request(&F->r, GW_RELOAD_ADMIN);
    assert_true(run_until_runs(2, DEADLINE_MS));
    run_for(50);
    assert_int_equal(F->runs, 2);
    assert_int_equal(F->whys[0], GW_RELOAD_ADMIN);
    assert_int_equal(F->whys[1], GW_RELOAD_SIGNAL);
}

/* POST /reload runs at once, taking the pending triggers with it: no second run follows. */
static void reload_run_now_absorbs_pending_requests(void **state)
{
    (void)state;
    gw_reload_request(&F->r, GW_RELOAD_SIGNAL);
    F->run_rc = GW_ECONFIG;
    assert_int_equal(gw_reload_run_now(&F->r, GW_RELOAD_ADMIN), GW_ECONFIG);
    assert_int_equal(F->runs, 1);
    assert_int_equal(F->whys[0], GW_RELOAD_ADMIN | GW_RELOAD_SIGNAL);
    assert_int_equal(F->r.failures, 1);
    run_for(50);
    assert_int_equal(F->runs, 1);
}

static void reload_nothing_after_close(void **state)
{
    (void)state;
    gw_reload_request(&F->r, GW_RELOAD_SIGNAL);
    gw_reload_close(&F->r, on_closed);
    gw_reload_request(&F->r, GW_RELOAD_SIGNAL);
    assert_int_equal(gw_reload_run_now(&F->r, GW_RELOAD_ADMIN), GW_EINVAL);
    assert_int_equal(uv_run(&F->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(F->runs, 0);
    assert_true(F->closed);
}

/* ---- the file watcher -------------------------------------------------------------------------
 */

/* An editor's save: a temporary name written, then renamed over the file. Twice: a watch on
 * the file itself would have followed the first, unlinked inode and missed the second. */
static void reload_watch_editor_save_fires_once_each(void **state)
{
    (void)state;
    assert_int_equal(gw_reload_watch(&F->r, F->path, QUIET_MS), 0);
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s/.gw.yaml.swp", F->dir);
    for (int save = 1; save <= 2; save++) {
        char text[32];
        snprintf(text, sizeof text, "version: %d\n", save + 1);
        write_file(tmp, text);
        assert_int_equal(rename(tmp, F->path), 0);
        assert_true(run_until_runs(save, DEADLINE_MS));
        run_for(3 * QUIET_MS);
        assert_int_equal(F->runs, save);
        assert_string_equal(F->seen[save - 1], text);
        assert_int_equal(F->whys[save - 1], GW_RELOAD_FILE);
    }
}

/* Truncate, then write in pieces: one reload, of the whole file. */
static void reload_watch_truncate_then_write_fires_once(void **state)
{
    (void)state;
    assert_int_equal(gw_reload_watch(&F->r, F->path, QUIET_MS), 0);
    int fd = open(F->path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "version:", 8), 8);
    assert_int_equal(write(fd, " 2\n", 3), 3);
    assert_int_equal(close(fd), 0);
    assert_true(run_until_runs(1, DEADLINE_MS));
    run_for(3 * QUIET_MS);
    assert_int_equal(F->runs, 1);
    assert_string_equal(F->seen[0], "version: 2\n");
    assert_true(F->r.file_events >= 1);
}

/* A file written in two parts within the quiet period (the first alone is not a valid
 * config): one reload, which sees both parts. */
static void reload_watch_two_writes_within_quiet_period_fire_once(void **state)
{
    (void)state;
    assert_int_equal(gw_reload_watch(&F->r, F->path, QUIET_MS), 0);
    write_file(F->path, "version: [");
    run_for(QUIET_MS / 4);
    assert_int_equal(F->runs, 0);
    FILE *f = fopen(F->path, "a");
    assert_non_null(f);
    fputs("2]\n", f);
    assert_int_equal(fclose(f), 0);
    assert_true(run_until_runs(1, DEADLINE_MS));
    run_for(3 * QUIET_MS);
    assert_int_equal(F->runs, 1);
    assert_string_equal(F->seen[0], "version: [2]\n");
}

/* Other files in the directory are not the config. */
static void reload_watch_ignores_other_files(void **state)
{
    (void)state;
    assert_int_equal(gw_reload_watch(&F->r, F->path, QUIET_MS), 0);
    char other[128];
    snprintf(other, sizeof other, "%s/gw.yaml.bak", F->dir);
    write_file(other, "x\n");
    assert_int_equal(unlink(other), 0);
    run_for(3 * QUIET_MS);
    assert_int_equal(F->runs, 0);
    assert_int_equal(F->r.file_events, 0);
}

static void reload_watch_missing_directory_fails(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/nope/gw.yaml", F->dir);
    assert_true(gw_reload_watch(&F->r, path, QUIET_MS) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(reload_request_runs_on_a_later_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(reload_requests_before_a_run_coalesce_into_one, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(reload_requests_during_a_run_coalesce_into_one_more, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(reload_run_now_absorbs_pending_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(reload_nothing_after_close, setup, teardown),
        cmocka_unit_test_setup_teardown(reload_watch_editor_save_fires_once_each, setup, teardown),
        cmocka_unit_test_setup_teardown(reload_watch_truncate_then_write_fires_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(reload_watch_two_writes_within_quiet_period_fire_once,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(reload_watch_ignores_other_files, setup, teardown),
        cmocka_unit_test_setup_teardown(reload_watch_missing_directory_fails, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
