/* reload.c - see reload.h. */
#include "reload.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

/* The one place RUN is called: from the kick timer and from gw_reload_run_now. The pending
 * bits are taken before RUN starts, so a request made while it runs sets them again and
 * re-arms the kick: exactly one more run, whatever the number of requests. */
static int run_pending(gw_reload_t *r, unsigned why)
{
    why |= r->pending;
    r->pending = 0;
    uv_timer_stop(&r->kick);
    r->running = true;
    int rc = r->run(r->ctx, why);
    r->running = false;
    r->runs++;
    r->last_rc = rc;
    if (rc != 0)
        r->failures++;
    return rc;
}

static void on_kick(uv_timer_t *t)
{
    gw_reload_t *r = t->data;
    if (r->pending != 0 && !r->closing)
        run_pending(r, 0);
}

/* see reload.h */
void gw_reload_request(gw_reload_t *r, unsigned why)
{
    if (r->closing)
        return;
    r->requests++;
    r->pending |= why;
    /* Restarting an armed 0 ms timer changes nothing: still one run. From inside RUN (the
     * kick's own callback, where libuv has already stopped it) this arms the next run. */
    uv_timer_start(&r->kick, on_kick, 0, 0);
}

/* see reload.h */
int gw_reload_run_now(gw_reload_t *r, unsigned why)
{
    if (r->running || r->closing)
        return GW_EINVAL;
    return run_pending(r, why);
}

static void on_quiet(uv_timer_t *t);

/* Arms the quiet-period timer for the debounce's due time; none when nothing is pending. A
 * timer that fires early is harmless: on_quiet asks the debounce again. */
static void arm_quiet(gw_reload_t *r)
{
    uint64_t wait = gw_debounce_wait(&r->deb, uv_now(r->loop));
    if (wait == GW_DEBOUNCE_IDLE)
        uv_timer_stop(&r->quiet);
    else
        uv_timer_start(&r->quiet, on_quiet, wait, 0);
}

static void on_quiet(uv_timer_t *t)
{
    gw_reload_t *r = t->data;
    if (gw_debounce_fire(&r->deb, uv_now(r->loop)))
        gw_reload_request(r, GW_RELOAD_FILE);
    else
        arm_quiet(r);
}

/* An event in the watched directory. FILENAME is the entry it concerns (the file itself, or
 * an editor's temporary file, or anything else there); NULL when the kernel could not say
 * (inotify's queue overflowed), which may have been the file, so it counts. */
static void on_dir_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    (void)events;
    gw_reload_t *r = h->data;
    if (status < 0 || r->closing || (filename != NULL && strcmp(filename, r->base) != 0))
        return;
    r->file_events++;
    gw_debounce_event(&r->deb, uv_now(r->loop));
    arm_quiet(r);
}

/* Splits PATH into its directory ("." when it has none) and its last component. */
static int split_path(const char *path, char **dir, char **base)
{
    const char *slash = strrchr(path, '/');
    *dir = slash == NULL   ? strdup(".")
           : slash == path ? strdup("/")
                           : strndup(path, (size_t)(slash - path));
    *base = strdup(slash == NULL ? path : slash + 1);
    if (*dir == NULL || *base == NULL || **base == '\0') {
        int rc = *dir == NULL || *base == NULL ? GW_ENOMEM : GW_EINVAL;
        free(*dir);
        free(*base);
        *dir = *base = NULL;
        return rc;
    }
    return 0;
}

/* see reload.h */
int gw_reload_watch(gw_reload_t *r, const char *path, uint64_t quiet_ms)
{
    if (r->watching || r->closing)
        return GW_EINVAL;
    int rc = split_path(path, &r->dir, &r->base);
    if (rc != 0)
        return rc;
    gw_debounce_init(&r->deb, quiet_ms);
    if ((rc = uv_fs_event_init(r->loop, &r->watch)) == 0) {
        r->watch.data = r;
        r->open_handles++;
        r->watching = true;
        rc = uv_fs_event_start(&r->watch, on_dir_event, r->dir, 0);
    }
    return rc;
}

/* see reload.h */
int gw_reload_init(gw_reload_t *r, uv_loop_t *loop, gw_reload_run_cb run, void *ctx)
{
    memset(r, 0, sizeof *r);
    r->loop = loop;
    r->run = run;
    r->ctx = ctx;
    /* A timer's init only links it into the loop: it cannot fail (libuv's unix/timer.c). */
    uv_timer_init(loop, &r->kick);
    uv_timer_init(loop, &r->quiet);
    r->kick.data = r->quiet.data = r;
    r->open_handles = 2;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    gw_reload_t *r = h->data;
    if (--r->open_handles > 0)
        return;
    free(r->dir);
    free(r->base);
    r->dir = r->base = NULL;
    if (r->close_cb)
        r->close_cb(r);
}

/* see reload.h */
void gw_reload_close(gw_reload_t *r, gw_reload_close_cb cb)
{
    if (r->closing)
        return;
    r->closing = true;
    r->close_cb = cb;
    r->pending = 0;
    uv_close((uv_handle_t *)&r->kick, on_closed);
    uv_close((uv_handle_t *)&r->quiet, on_closed);
    if (r->watching)
        uv_close((uv_handle_t *)&r->watch, on_closed);
}
