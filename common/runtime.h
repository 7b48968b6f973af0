/* runtime.h - the process skeleton every milestone runs in: N worker threads, each with its
 * own uv loop and its own SO_REUSEPORT socket per listener, and one control thread (the
 * main thread) that owns signals, startup, drain and snapshot reclamation. */
#ifndef GW_RUNTIME_H
#define GW_RUNTIME_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "buf.h"
#include "config.h"
#include "log.h"
#include "mq.h"
#include "snapshot.h"
#include "stream.h"

typedef struct gw_runtime_s gw_runtime_t;
typedef struct gw_worker_s gw_worker_t;
typedef struct gw_listener_s gw_listener_t;
typedef struct gw_wlistener_s gw_wlistener_t;

/* A configured listener, shared by all workers. The counters are exact across workers. */
struct gw_listener_s {
    const gw_listener_cfg_t *cfg;
    size_t index;
    atomic_uint active;             /* connections admitted and not yet left */
    atomic_uint_least64_t accepted; /* admitted, ever */
    atomic_uint_least64_t rejected; /* refused by max_connections, ever */
    int *fds;                       /* one listening socket per worker, made at startup */
};

/* One worker's listening handle for one listener. */
struct gw_wlistener_s {
    uv_tcp_t tcp;
    gw_worker_t *worker;
    gw_listener_t *listener;
    bool open;    /* TCP is initialised and not being closed */
    bool paused;  /* out of descriptors: TCP closed (or closing), listening again later */
    bool closing; /* a pause's close of TCP has not called back yet */
};

struct gw_worker_s {
    gw_runtime_t *rt;
    unsigned id;
    char name[16]; /* "w0", "w1", ... in log lines */
    uv_thread_t thread;
    uv_loop_t loop;
    gw_mq_t mq;
    uv_prepare_t prepare;      /* quiescent point for snapshots, once per loop turn */
    uv_timer_t drain_timer;    /* force-close deadline once draining */
    uv_timer_t relisten_timer; /* listeners paused on EMFILE try to listen again */
    gw_wlistener_t *wls;       /* [rt->nlisteners] */
    /* This worker's chunk cache. Set up on the control thread before the worker's thread
     * starts and kept until the runtime ends (drained when the worker exits), so the
     * control thread may read gw_bufcache_cached_bytes(&w->bufs) at any time (a scrape). */
    gw_bufcache_t bufs;
    /* Where this worker's streams (stream.h) take read chunks and wait when none is free:
     * set up with the loop, its timer closed when the worker finishes. */
    gw_stream_env_t streams;
    size_t nconns; /* connections the app owns on this worker (gw_worker_conn_*) */
    bool draining, stopping, mq_inited, app_started;
    int start_error;
    gw_msg_t ready_msg, exit_msg;
    gw_msg_t drain_msg;
    gw_lograte_t accept_log;
    void *app; /* the application's per-worker state (the worker's own: freed at its stop) */
    /* Statistics the app keeps for this worker, readable from the control thread (with
     * atomics) from READY until the process ends, drain included: set once by
     * worker_start, freed with STATS_FREE by the runtime after every thread was joined. */
    void *stats;
    void (*stats_free)(void *stats);
};

struct gw_prom_s; /* metrics.h's gw_prom_t */

/* What a milestone plugs into the runtime, one X(RETURN, NAME, PARAMS) per hook: gw_app_t
 * below is made from this list, and so is the test that milestone N's app has every hook
 * N-1's has (milestones/04-http/tests/test_layers.c). Milestone N's hooks delegate every
 * hook to N-1's, and only to N-1's. Every hook may be NULL. Worker hooks run on that
 * worker's thread; control hooks on the control thread. */
#define GW_APP_HOOKS(X)                                                                            \
    /* Worker loop exists, listeners not yet accepting. Return 0 or an error (start fails). */     \
    X(int, worker_start, (gw_worker_t * w))                                                        \
    /* WL has a connection to accept: the app calls uv_accept on &WL->tcp, or, when it cannot      \
     * take it, gw_listener_pause. Required. */                                                    \
    X(void, on_connection, (gw_wlistener_t * wl))                                                  \
    /* Drain began: listeners are closed; let connections finish. */                               \
    X(void, worker_drain, (gw_worker_t * w))                                                       \
    /* drain_timeout passed: close every connection now. */                                        \
    X(void, worker_force_close, (gw_worker_t * w))                                                 \
    /* Last call on the worker thread, when nconns is 0: close the app's own handles and free      \
     * its per-worker state (handles may still be closing; the loop runs them). */                 \
    X(void, worker_stop, (gw_worker_t * w))                                                        \
    /* Control thread, before workers start / after they all exited. */                            \
    X(int, control_start, (gw_runtime_t * rt))                                                     \
    X(void, control_stop, (gw_runtime_t * rt))                                                     \
    /* SIGHUP. NULL: logged and ignored (reload arrives in milestone 05). */                       \
    X(void, on_reload, (gw_runtime_t * rt))                                                        \
    /* SIGUSR1, after the runtime reopened its own log file: reopen the app's files (an access     \
     * log after logrotate moved it). */                                                           \
    X(void, on_reopen, (gw_runtime_t * rt))                                                        \
    /* A /metrics scrape (control thread): write this level's families into P, after those of      \
     * the level below (each level calls N-1's first). 03's admin API calls the top app's. */      \
    X(void, metrics, (gw_runtime_t * rt, struct gw_prom_s * p))

typedef struct gw_app_s {
#define GW_APP_FIELD(ret, name, params) ret(*name) params;
    GW_APP_HOOKS(GW_APP_FIELD)
#undef GW_APP_FIELD
} gw_app_t;

struct gw_runtime_s {
    const gw_config_t *cfg;
    const gw_app_t *app;
    /* What each milestone's prepare built, by level (config.h's GW_LEVELS): slot 1 is 01's
     * picker, slot 2 02's balancer state, and so on; NULL where a level built nothing (gw01
     * has no prepare, so its proxy uses the first backend). Read with gw_runtime_layer. */
    void *layers[GW_LEVELS];
    uv_loop_t loop; /* the control loop */
    gw_mq_t mq;
    uv_signal_t sigterm, sigint, sighup, sigusr1;
    uv_timer_t reclaim_timer;
    gw_worker_t *workers;
    unsigned nworkers, nready, nexited;
    gw_listener_t *listeners;
    size_t nlisteners;
    gw_bufpool_t bufpool;
    gw_snapdom_t snap;
    atomic_bool draining; /* read by workers (e.g. to answer Connection: close) */
    bool control_inited, control_started, started, stopping;
    int sigints;
    int exit_code;
};

/* Runs the whole process life: checks and binds every listener (an address in use is an
 * error), raises or warns about the open-files limit, starts the workers, logs `ready`
 * once every listener of every worker accepts, handles signals, drains on SIGTERM/SIGINT
 * and returns the exit code (0 after a clean drain, 1 when startup failed). A second
 * SIGINT exits at once. LAYERS (GW_LEVELS slots, or NULL for none) is copied into
 * rt->layers for the hooks. */
int gw_runtime_run(const gw_config_t *cfg, const gw_app_t *app, void *const *layers);

/* What milestone LEVEL's prepare built (rt->layers[LEVEL]); NULL if nothing. */
static inline void *gw_runtime_layer(const gw_runtime_t *rt, int level)
{
    return rt->layers[level];
}

/* Starts a drain as SIGTERM would (control thread only). */
void gw_runtime_shutdown(gw_runtime_t *rt);

/* Publishes DATA as the current snapshot (control thread) and wakes the workers so they
 * pass a quiescent point soon; retired snapshots are reclaimed on a timer. */
int gw_runtime_publish(gw_runtime_t *rt, void *data, void (*free_fn)(void *data));

/* Admission against the listener's max_connections, one count for all workers: true when
 * the connection may proceed (the count was taken), false when over the limit (counted as a
 * rejection). Never more than max_connections are admitted at once; the price is that a
 * client may be refused with a slot free while another worker backs out of a refusal.
 * Every admitted connection must call gw_listener_leave exactly once. */
bool gw_listener_admit(gw_listener_t *l);
void gw_listener_leave(gw_listener_t *l);

/* Takes WL out of libuv's accept loop for a while: its handle is closed (the connection it
 * was called for, and those queued, are reset) and a new socket is bound every 100 ms until
 * that succeeds. The runtime calls it itself when accept fails for want of descriptors
 * (EMFILE, ENFILE, ENOBUFS, ENOMEM); an app's on_connection calls it when it cannot take
 * the connection it was called for (out of memory, STATUS UV_ENOMEM): returning without
 * uv_accept would make libuv 1.44 stop watching the listener for good. Worker thread. */
void gw_listener_pause(gw_wlistener_t *wl, int status);

/* The app tells the worker about connections it owns, so drain knows when it is done.
 * conn_done may finish the worker (when draining and the count reaches 0): call it last,
 * after the connection's own state is released. */
void gw_worker_conn_add(gw_worker_t *w);
void gw_worker_conn_done(gw_worker_t *w);

#endif
