/* reload.h - when to reload: the triggers (SIGHUP, POST /reload, a change of the config
 * file) and their coalescing, independent of what a reload does.
 *
 * Every trigger ends in gw_reload_request, which only notes that a reload is wanted and arms
 * a 0 ms "kick" timer; the reload itself (the RUN callback: parse, build, publish) runs from
 * that timer, on the control loop, alone. A reload is one synchronous callback, so triggers
 * that arrive while it runs (a signal queued by the loop, a request from inside RUN, a file
 * event) can only be noted, and the kick makes all of them ONE more reload: the file is read
 * again after the last change, not once per change.
 *
 * The file watcher watches the file's DIRECTORY and keeps only the events that name the
 * file. An editor saves by writing a temporary file and renaming it over the old one: a
 * watch on the file itself follows the old inode (now unlinked) and goes silent after the
 * first save. One save is also several events (create, write, rename; or truncate, then
 * write in pieces), so the events go through a debounce (common/debounce.h): the reload is
 * requested once, a quiet period after the last event, when the file is whole.
 *
 * Everything here runs on the loop's thread. */
#ifndef GW_RELOAD_H
#define GW_RELOAD_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "debounce.h"

/* Why a reload runs: a bit set, since coalesced triggers may have several reasons. */
enum {
    GW_RELOAD_SIGNAL = 1u << 0, /* SIGHUP */
    GW_RELOAD_ADMIN = 1u << 1,  /* POST /reload */
    GW_RELOAD_FILE = 1u << 2,   /* the watched config file changed */
};

typedef struct gw_reload_s gw_reload_t;

/* Does the reload; WHY is a set of GW_RELOAD_* bits. Returns 0 when the new configuration
 * was applied, a negative GW_E* code when it was refused (the old one keeps serving). May
 * call gw_reload_request (that makes one more run, after this one). Must not call
 * gw_reload_run_now or gw_reload_close. */
typedef int (*gw_reload_run_cb)(void *ctx, unsigned why);
typedef void (*gw_reload_close_cb)(gw_reload_t *r);

struct gw_reload_s {
    uv_loop_t *loop;
    gw_reload_run_cb run;
    void *ctx;
    uv_timer_t kick;     /* 0 ms: runs the pending reload from its own loop turn */
    uv_timer_t quiet;    /* the debounce's timer */
    uv_fs_event_t watch; /* the config file's directory, while watching */
    gw_debounce_t deb;
    char *dir, *base; /* the watched file, split (owned) */
    unsigned pending; /* GW_RELOAD_* bits of the triggers not run yet; 0: none */
    bool running, watching, closing;
    unsigned open_handles; /* close callbacks still to come */
    gw_reload_close_cb close_cb;
    /* For logs, metrics and tests. */
    uint64_t requests;    /* gw_reload_request calls */
    uint64_t runs;        /* RUN calls */
    uint64_t failures;    /* RUN calls that returned an error */
    uint64_t file_events; /* watcher events that named the file */
    int last_rc;
};

/* Sets R up on LOOP: RUN(CTX, why) does the reloads. Returns 0 (it cannot fail today; the
 * result is there for a future handle whose init can). R must then be closed with
 * gw_reload_close and stay allocated until its callback. */
int gw_reload_init(gw_reload_t *r, uv_loop_t *loop, gw_reload_run_cb run, void *ctx);

/* Starts watching PATH (the config file; relative paths are taken from the current
 * directory) with a quiet period of QUIET_MS. Returns 0 or a negative code (the directory
 * cannot be watched: it does not exist, or inotify is out of watches): no event comes then,
 * and R still needs gw_reload_close, like after a success. Once per R. */
int gw_reload_watch(gw_reload_t *r, const char *path, uint64_t quiet_ms);

/* A trigger (WHY: GW_RELOAD_* bits): a reload runs from a later loop turn, once for any
 * number of requests made before it starts. Never runs RUN itself. */
void gw_reload_request(gw_reload_t *r, unsigned why);

/* Runs a reload now (POST /reload answers with its result), absorbing the pending triggers:
 * they are part of this run. Returns RUN's result, or GW_EINVAL when called from inside RUN
 * or after gw_reload_close. */
int gw_reload_run_now(gw_reload_t *r, unsigned why);

/* Stops everything; CB (may be NULL) runs once every handle is closed, after which R may be
 * freed. No RUN call happens after this. */
void gw_reload_close(gw_reload_t *r, gw_reload_close_cb cb);

#endif
