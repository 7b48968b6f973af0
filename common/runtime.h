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
#include "gen.h"
#include "log.h"
#include "mq.h"
#include "snapshot.h"
#include "stream.h"

typedef struct gw_runtime_s gw_runtime_t;
typedef struct gw_worker_s gw_worker_t;
typedef struct gw_listener_s gw_listener_t;
typedef struct gw_wlistener_s gw_wlistener_t;

/* A listener: an address the gateway accepts on, shared by every worker and by every
 * configuration generation that keeps the address. The address is its identity: a reload
 * that keeps the address keeps this object, its sockets and its exact counters, whatever
 * the name, protocol or limits say now (a rename is a new NAME on the same object). A
 * generation's view of it (its config, its position) is a gw_glistener_t (gen.h).
 *
 * Lifetime: a reference (REFS) is held by each worker's listening handle on it and by each
 * connection accepted on it (gw_listener_hold/drop); the generations that list it count
 * apart (GEN_REFS, control thread). When a reload removes it, it takes a reference on the
 * last generation that had it, so that CFG (that generation's) stays valid for its
 * connections; once REFS falls to 0 that reference goes, and once no generation lists it
 * either, the control thread frees it. */
struct gw_listener_s {
    gw_addr_t addr;
    /* The newest generation's name and limit: a worker borrows the name until its next
     * quiescent point (the string is freed with a generation, never sooner). */
    _Atomic(const char *) name;
    atomic_uint_least64_t max_connections;
    /* The newest generation's config of this listener (the last one's once a reload removed
     * it: that generation stays alive while the listener does). Borrowed like NAME: read it
     * again after the loop turn. What must not change under a request comes from the
     * generation the request pinned (its gw_glistener_t). */
    _Atomic(const gw_listener_cfg_t *) cfg;
    atomic_uint active;             /* connections admitted and not yet left */
    atomic_uint_least64_t accepted; /* admitted, ever */
    atomic_uint_least64_t rejected; /* refused by max_connections, ever */
    atomic_uint refs;               /* handles and connections, see above */
    atomic_bool removed;            /* a reload took it out: stop accepting, finish what runs */
    /* One listening socket per worker, bound by the control thread before the generation
     * that adds the listener is published; -1 once that worker adopted it. */
    int *fds;
    char *name_owned;        /* control thread: the string NAME points to */
    unsigned gen_refs;       /* control thread: generations that list it */
    gw_snap_t *last_gen;     /* control thread: held from its removal until REFS is 0 */
    gw_listener_t *next_all; /* control thread: every object, the runtime's list */
};

/* One worker's listening handle for one listener. */
struct gw_wlistener_s {
    uv_tcp_t tcp;
    gw_worker_t *worker;
    gw_listener_t *listener; /* a reference held until this handle is freed */
    gw_wlistener_t *next;    /* the worker's list */
    bool open;               /* TCP is initialised and not being closed */
    bool paused;  /* out of descriptors: TCP closed (or closing), listening again later */
    bool closing; /* a close of TCP has not called back yet */
    bool gone;    /* no longer wanted (removed, or the worker drains): freed once closed */
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
    gw_wlistener_t *wls;       /* its listening handles, one per listener of APPLIED */
    /* The generation this worker's listeners follow, pinned until the next one replaces it
     * (worker_sync, on each publish): the listeners it adopted and the app's per-worker
     * state (worker_gen) are this generation's. */
    gw_snap_t *applied;
    /* Listeners a reload removed whose connections this worker still lets finish, each until
     * its deadline (drain_timeout after the removal): then worker_listener_gone. */
    struct gw_lgone_s *lgone;
    uv_timer_t lgone_timer;
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
    /* Control thread: build this level's part of generation G (G->layers[N]) from G->cfg,         \
     * PREV being the generation served now (NULL for the first), from which state may carry.      \
     * Each level calls N-1's first. 0, or an error written to ERRS as FILE:LINE:COL: message      \
     * (then gen_free runs on G and nothing changes). */                                           \
    X(int, gen_build, (gw_runtime_t * rt, gw_gen_t * g, const gw_gen_t *prev, FILE *errs))         \
    /* Control thread: free what gen_build made for G, top level first (each level frees its own   \
     * slot, then calls N-1's). Also runs for a G whose build failed part way (NULL slots). */     \
    X(void, gen_free, (gw_runtime_t * rt, gw_gen_t * g))                                           \
    /* Control thread: G is published (PREV, NULL at start, is retired but still alive). */        \
    X(void, gen_applied, (gw_runtime_t * rt, const gw_gen_t *g, const gw_gen_t *prev))             \
    /* Worker thread: drain_timeout passed since this worker stopped accepting on L (a reload      \
     * removed it): close what is left of L's connections, as worker_force_close does for all. */  \
    X(void, worker_listener_gone, (gw_worker_t * w, gw_listener_t * l))                            \
    /* Worker thread: this worker now follows G (its listeners match G's); PREV (NULL at start)    \
     * is what it followed before, alive until the call returns. */                                \
    X(void, worker_gen, (gw_worker_t * w, const gw_gen_t *g, const gw_gen_t *prev))                \
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
    /* The configuration the process started with. Restart-only keys (workers, buffers) are
     * read here; the rest comes from a generation (gw_gen_current). Code not yet moved to
     * generations reads it too (issue 17, steps 4-8). */
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
    gw_listener_t *all_listeners; /* every listener object alive (control thread) */
    uint64_t next_gen_id;         /* the id the next generation gets */
    /* Generations published and not yet freed, the serving one included (control thread):
     * more than a few means something holds old ones (a slow request, a stuck worker). */
    size_t gens_alive;
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

/* How the reload maps the new configuration's listeners NEU onto those serving now, OLD (the
 * running generation's, in the order of its listener objects): KEEP[j] is the index in OLD
 * of the listener new listener j keeps (its object: sockets, counters), or SIZE_MAX for a
 * new one. 0, or an error (the reload fails). Milestone 05's plan (a LAB, reload_plan.c)
 * keeps a listener when its address is equal. */
typedef int (*gw_plan_listeners_fn)(const gw_listener_cfg_t *old, size_t nold,
                                    const gw_listener_cfg_t *neu, size_t nnew, size_t *keep);

/* What a reload did: for the log line, POST /reload's answer and the metrics. */
typedef struct gw_reload_report_s {
    uint64_t gen;     /* the generation serving after the call: the new one, or the old */
    unsigned changes; /* counted by the runtime (listeners) and the levels' gen_build */
    char summary[GW_GEN_SUMMARY];
    unsigned restart;       /* restart-only keys that changed and were kept at their old values */
    char restart_keys[256]; /* "workers 2 -> 4, buffers.chunk_size 16384 -> 8192" */
} gw_reload_report_t;

/* Control thread: makes CFG the configuration served, without dropping a connection.
 * CFG is taken (FREE_CFG frees it with its generation, or at once on failure). Keys that
 * need a restart (workers, buffers.*) keep their running values in CFG and are reported.
 * Listeners are diffed by PLAN: a kept address keeps its sockets, a new one is bound (a
 * failure fails the reload), a removed one stops accepting. Then each level builds its
 * part (gen_build), the generation is published, gen_applied runs, and only then the line
 * `config generation N applied (M changes): ...` is logged, so any request whose head
 * arrives after it is served by the new generation. On any failure nothing changed: the
 * errors went to ERRS as FILE:LINE:COL: message. Returns 0 or the error. */
int gw_runtime_reload(gw_runtime_t *rt, gw_config_t *cfg, void (*free_cfg)(gw_config_t *cfg),
                      gw_plan_listeners_fn plan, FILE *errs, gw_reload_report_t *rep);

/* Starts a drain as SIGTERM would (control thread only). */
void gw_runtime_shutdown(gw_runtime_t *rt);

/* The generation published last (never NULL once the runtime runs). Borrowed: a worker may
 * use it until its next quiescent point (the end of the loop turn), the control thread
 * until it publishes another. What holds it longer pins it (gw_gen_pin). */
const gw_gen_t *gw_gen_current(const gw_runtime_t *rt);

/* For worker W: the generation published now, pinned (it stays alive until gw_gen_unpin on
 * the same worker), and the snapshot to unpin. */
const gw_gen_t *gw_gen_pin(gw_worker_t *w, gw_snap_t **snap);
void gw_gen_unpin(gw_worker_t *w, gw_snap_t *snap);

/* A listener's name in the generation published last; borrowed like gw_gen_current. */
static inline const char *gw_listener_name(const gw_listener_t *l)
{
    return atomic_load_explicit(&((gw_listener_t *)l)->name, memory_order_acquire);
}

/* A connection accepted on L holds it until the connection is freed: the listener object
 * outlives every connection that points to it, even after a reload removed it. */
void gw_listener_hold(gw_listener_t *l);
void gw_listener_drop(gw_listener_t *l);

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
