/* runtime.c - see runtime.h. The threads, the control loop, generations (publish, reload,
 * reclaim); the listener objects and the workers' handles on them are listener.c's.
 *
 * Life of the process:
 *   control: generation 1, its listeners bound (probe first), start workers -> log "ready"
 *   worker:  loop + mq + follow the generation (adopt its sockets) -> READY -^
 *   reload:  build the next generation, publish, log "applied"; MSG_GEN: workers follow
 *   SIGTERM: control posts DRAIN to every worker; each closes its listeners, tells the app,
 *            arms its drain timer, and finishes when its last connection is gone (or the
 *            timer forces them closed). Each posts EXITED; the last one stops control.
 */
#include "runtime-int.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "error.h"
#include "log.h"

enum { MSG_READY = 1, MSG_EXITED, MSG_DRAIN, MSG_GEN };

#define RECLAIM_INTERVAL_MS 100

/* ---- worker thread ------------------------------------------------------------------- */

static void worker_finish(gw_worker_t *w);

/* see runtime.h */
void gw_worker_conn_add(gw_worker_t *w)
{
    w->nconns++;
}

/* see runtime.h */
void gw_worker_conn_done(gw_worker_t *w)
{
    w->nconns--;
    if (w->draining && w->nconns == 0)
        worker_finish(w);
}

/* The worker follows the generation published now: it pins it, closes the handles of
 * listeners it no longer lists, adopts the sockets of those it adds, tells the app, and
 * unpins the one it followed before (listener.c does the handles). Runs at start and on each
 * MSG_GEN; publishes that came quickly are seen as one (the newest), which is all a worker needs.
 * Returns the first adoption error (at start, the worker fails to start); later ones are logged and
 * retried as a paused listener would be. */
static int worker_sync(gw_worker_t *w)
{
    gw_runtime_t *rt = w->rt;
    if (w->draining || w->stopping)
        return 0;
    gw_snap_t *s = gw_snap_pin(&rt->snap, w->id);
    if (s == NULL)
        return 0;
    if (s == w->applied) {
        gw_snap_unpin(s, w->id);
        return 0;
    }
    const gw_gen_t *g = s->data;
    const gw_gen_t *prev = w->applied != NULL ? w->applied->data : NULL;
    int first = gw_rt_sync_listeners(w, g);
    if (w->app_started && rt->app->worker_gen != NULL)
        rt->app->worker_gen(w, g, prev);
    if (w->applied != NULL)
        gw_snap_unpin(w->applied, w->id);
    w->applied = s;
    return first;
}

static void on_drain_timeout(uv_timer_t *t)
{
    gw_worker_t *w = t->data;
    if (w->nconns > 0) {
        gw_warn("drain timeout: closing %zu connection(s)", w->nconns);
        if (w->app_started && w->rt->app->worker_force_close != NULL)
            w->rt->app->worker_force_close(w);
    }
}

static void worker_drain(gw_worker_t *w)
{
    if (w->draining)
        return;
    w->draining = true;
    gw_rt_close_listeners(w);
    if (w->app_started && w->rt->app->worker_drain != NULL)
        w->rt->app->worker_drain(w);
    if (w->nconns == 0) {
        worker_finish(w);
        return;
    }
    const gw_gen_t *g = w->applied != NULL ? w->applied->data : NULL;
    uv_timer_start(&w->drain_timer, on_drain_timeout,
                   g != NULL ? g->cfg->drain_timeout_ms : w->rt->cfg->drain_timeout_ms, 0);
}

/* Closes every handle the worker still has; its loop then runs out and the thread ends. */
static void worker_finish(gw_worker_t *w)
{
    if (w->stopping)
        return;
    w->stopping = true;
    if (w->app_started && w->rt->app->worker_stop != NULL)
        w->rt->app->worker_stop(w);
    gw_rt_close_listeners(w);
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
    uv_close((uv_handle_t *)&w->relisten_timer, NULL);
    uv_close((uv_handle_t *)&w->lgone_timer, NULL);
    gw_rt_lgone_clear(w); /* the process's drain decided for every connection */
    uv_close((uv_handle_t *)&w->prepare, NULL);
    gw_stream_env_close(&w->streams);
    gw_mq_close(&w->mq, NULL);
}

static void on_worker_msg(gw_mq_t *mq, gw_msg_t *msg)
{
    gw_worker_t *w = mq->data;
    if (msg->type == MSG_DRAIN && !w->stopping)
        worker_drain(w);
    /* MSG_GEN: a generation was published. The worker follows it, and the wake-up makes the
     * prepare handle pass a quiescent point, so the generation before can be freed soon. */
    if (msg->type == MSG_GEN) {
        free(msg);
        worker_sync(w);
    }
}

static void on_prepare(uv_prepare_t *p)
{
    gw_worker_t *w = p->data;
    gw_snap_quiescent(&w->rt->snap, w->id);
}

/* The loop and handles every worker has. Called on the control thread before the worker's
 * thread exists (thread creation orders it before the worker's first step), so the queue
 * can take a DRAIN even if a signal arrives while workers are still starting. */
static int worker_init_loop(gw_worker_t *w)
{
    int rc = uv_loop_init(&w->loop);
    if (rc != 0)
        return rc;
    w->loop.data = w;
    rc = gw_mq_init(&w->loop, &w->mq, on_worker_msg);
    if (rc != 0) {
        uv_loop_close(&w->loop);
        return rc;
    }
    w->mq_inited = true;
    w->mq.data = w;
    uv_timer_init(&w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    uv_timer_init(&w->loop, &w->relisten_timer);
    w->relisten_timer.data = w;
    uv_timer_init(&w->loop, &w->lgone_timer);
    w->lgone_timer.data = w;
    uv_prepare_init(&w->loop, &w->prepare);
    w->prepare.data = w;
    uv_prepare_start(&w->prepare, on_prepare);
    uv_unref((uv_handle_t *)&w->prepare);
    gw_bufcache_init(&w->bufs, &w->rt->bufpool, 64);
    gw_stream_env_init(&w->streams, &w->loop, &w->bufs);
    return 0;
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        gw_warn("closing a handle left open at exit (type %s)", uv_handle_type_name(h->type));
        uv_close(h, NULL);
    }
}

static void post_to_control(gw_worker_t *w, gw_msg_t *msg, int type)
{
    msg->type = type;
    if (gw_mq_post(&w->rt->mq, msg) != 0)
        gw_error("control queue closed before worker %u reported", w->id);
}

static void worker_main(void *arg)
{
    gw_worker_t *w = arg;
    gw_log_set_thread(w->name);
    gw_snap_quiescent(&w->rt->snap, w->id); /* online */
    int rc = 0;
    if (w->rt->app->worker_start != NULL)
        rc = w->rt->app->worker_start(w);
    w->app_started = rc == 0;
    if (rc == 0)
        rc = worker_sync(w);
    w->start_error = rc;
    post_to_control(w, &w->ready_msg, MSG_READY);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* Normally nothing is left; a handle the app forgot is closed here so the loop closes
     * cleanly and ASan/LSan see no leak from us. */
    uv_walk(&w->loop, close_any, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&w->loop) != 0)
        gw_error("worker loop did not close cleanly");
    gw_bufcache_drain(&w->bufs);
    if (w->applied != NULL)
        gw_snap_unpin(w->applied, w->id);
    w->applied = NULL;
    gw_snap_offline(&w->rt->snap, w->id);
    post_to_control(w, &w->exit_msg, MSG_EXITED);
}

/* ---- control thread ------------------------------------------------------------------ */

static void post_drain(gw_runtime_t *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        gw_worker_t *w = &rt->workers[i];
        w->drain_msg.type = MSG_DRAIN;
        gw_mq_post(&w->mq, &w->drain_msg); /* fails only if the worker already stopped */
    }
}

/* Tells every worker a generation was published. Allocated: several may be in flight when
 * publishes come quickly. */
static void post_gen(gw_runtime_t *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        gw_msg_t *m = malloc(sizeof *m);
        if (m == NULL) {
            /* The worker follows at its next MSG_GEN; meanwhile its listeners are the older
             * generation's and the reclaim timer waits for its next loop turn. */
            gw_error("out of memory telling worker %u about a new configuration", i);
            continue;
        }
        m->type = MSG_GEN;
        if (gw_mq_post(&rt->workers[i].mq, m) != 0)
            free(m);
    }
}

/* see runtime.h */
void gw_runtime_shutdown(gw_runtime_t *rt)
{
    if (rt->stopping)
        return;
    rt->stopping = true;
    atomic_store(&rt->draining, true);
    gw_info("draining: listeners closed, waiting up to %llums for open connections",
            (unsigned long long)gw_gen_current(rt)->cfg->drain_timeout_ms);
    post_drain(rt);
}

static void on_reclaim_timer(uv_timer_t *t)
{
    gw_runtime_t *rt = t->data;
    if (gw_snap_reclaim(&rt->snap) + gw_rt_reap_listeners(rt) == 0)
        uv_timer_stop(t);
}

/* see runtime.h */
const gw_gen_t *gw_gen_current(const gw_runtime_t *rt)
{
    return gw_snap_current((gw_snapdom_t *)&rt->snap);
}

/* see runtime.h */
const gw_gen_t *gw_gen_pin(gw_worker_t *w, gw_snap_t **snap)
{
    *snap = gw_snap_pin(&w->rt->snap, w->id);
    return *snap != NULL ? (*snap)->data : NULL;
}

/* see runtime.h */
void gw_gen_unpin(gw_worker_t *w, gw_snap_t *snap)
{
    gw_snap_unpin(snap, w->id);
}

/* The snapshot's free function for a generation (control thread, once no worker can see
 * it): the levels free their slots, top first; the generation drops its listeners. */
static void gen_release(void *data)
{
    gw_gen_t *g = data;
    gw_runtime_t *rt = g->owner;
    if (g->published)
        rt->gens_alive--;
    if (rt->app->gen_free != NULL)
        rt->app->gen_free(rt, g);
    for (size_t i = 0; i < g->nlis; i++)
        if (g->lis[i].obj != NULL)
            g->lis[i].obj->gen_refs--;
    gw_gen_free(g);
}

/* Publishes G (control thread), tells the workers, and starts the reclaim timer that frees
 * the generation before once every worker has passed a quiescent point without a pin on
 * it. */
static int publish_gen(gw_runtime_t *rt, gw_gen_t *g)
{
    int rc = gw_snap_publish(&rt->snap, g, gen_release);
    if (rc != 0)
        return rc;
    g->published = true;
    rt->gens_alive++;
    post_gen(rt);
    if (!uv_is_active((uv_handle_t *)&rt->reclaim_timer))
        uv_timer_start(&rt->reclaim_timer, on_reclaim_timer, RECLAIM_INTERVAL_MS,
                       RECLAIM_INTERVAL_MS);
    return 0;
}

static void control_finish(gw_runtime_t *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++)
        uv_thread_join(&rt->workers[i].thread);
    if (rt->app->control_stop != NULL)
        rt->app->control_stop(rt);
    uv_close((uv_handle_t *)&rt->sigterm, NULL);
    uv_close((uv_handle_t *)&rt->sigint, NULL);
    uv_close((uv_handle_t *)&rt->sighup, NULL);
    uv_close((uv_handle_t *)&rt->sigusr1, NULL);
    uv_close((uv_handle_t *)&rt->reclaim_timer, NULL);
    gw_mq_close(&rt->mq, NULL);
}

static void on_worker_ready(gw_runtime_t *rt, gw_worker_t *w)
{
    rt->nready++;
    if (w->start_error != 0) {
        gw_error("worker %u failed to start: %s", w->id, gw_strerror(w->start_error));
        rt->exit_code = 1;
        gw_runtime_shutdown(rt);
    }
    if (rt->nready == rt->nworkers && !rt->stopping)
        gw_info("ready: %zu listener(s), %u worker(s)", gw_gen_current(rt)->nlis, rt->nworkers);
}

static void on_control_msg(gw_mq_t *mq, gw_msg_t *msg)
{
    gw_runtime_t *rt = mq->data;
    if (msg->type == MSG_READY) {
        on_worker_ready(rt, (gw_worker_t *)((char *)msg - offsetof(gw_worker_t, ready_msg)));
    } else if (msg->type == MSG_EXITED) {
        if (++rt->nexited == rt->nworkers)
            control_finish(rt);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    gw_runtime_t *rt = h->data;
    if (signum == SIGINT && ++rt->sigints > 1) {
        gw_warn("second SIGINT: exiting now without draining");
        /* Nobody will join the workers now: detach them, so that one already finished is
         * not a leak (ThreadSanitizer reports a finished, unjoined thread at _exit). The
         * loop runs only once every worker thread exists, and control_finish joins them and
         * closes this handle in one step, so each thread here is valid and still joinable. */
        for (unsigned i = 0; rt->started && i < rt->nworkers; i++)
            pthread_detach(rt->workers[i].thread);
        _exit(1);
    }
    if (signum == SIGTERM || signum == SIGINT) {
        gw_info("%s received", signum == SIGTERM ? "SIGTERM" : "SIGINT");
        gw_runtime_shutdown(rt);
    } else if (signum == SIGHUP) {
        if (rt->app->on_reload != NULL)
            rt->app->on_reload(rt);
        else
            gw_info("SIGHUP ignored: configuration reload arrives in milestone 05");
    } else if (signum == SIGUSR1) {
        const char *file = gw_gen_current(rt)->cfg->log_file;
        int rc = gw_log_open(file);
        gw_info("SIGUSR1: log file %s%s", file ? "reopened" : "not configured",
                rc != 0 ? " (reopen failed)" : "");
        if (rt->app->on_reopen != NULL)
            rt->app->on_reopen(rt);
    }
}

static void start_signal(gw_runtime_t *rt, uv_signal_t *h, int signum)
{
    uv_signal_init(&rt->loop, h);
    h->data = rt;
    uv_signal_start(h, on_signal, signum);
}

static int control_init(gw_runtime_t *rt)
{
    int rc = uv_loop_init(&rt->loop);
    if (rc != 0)
        return rc;
    rc = gw_mq_init(&rt->loop, &rt->mq, on_control_msg);
    if (rc != 0) {
        uv_loop_close(&rt->loop);
        return rc;
    }
    rt->control_inited = true;
    rt->mq.data = rt;
    uv_timer_init(&rt->loop, &rt->reclaim_timer);
    rt->reclaim_timer.data = rt;
    start_signal(rt, &rt->sigterm, SIGTERM);
    start_signal(rt, &rt->sigint, SIGINT);
    start_signal(rt, &rt->sighup, SIGHUP);
    start_signal(rt, &rt->sigusr1, SIGUSR1);
    return 0;
}

/* Loops and queues of every worker exist before control_start runs, so the app may
 * already publish a snapshot (which nudges the workers) from there. */
static int init_workers(gw_runtime_t *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        gw_worker_t *w = &rt->workers[i];
        w->rt = rt;
        w->id = i;
        snprintf(w->name, sizeof w->name, "w%u", i);
        int rc = worker_init_loop(w);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int start_workers(gw_runtime_t *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        int rc = uv_thread_create(&rt->workers[i].thread, worker_main, &rt->workers[i]);
        if (rc != 0) {
            /* Threads already running cannot be recalled safely: a broken system. */
            gw_error("cannot start worker thread: %s", uv_strerror(rc));
            _exit(1);
        }
    }
    return 0;
}

/* Generation 1: the configuration the process started with, every listener new and bound
 * (an address in use is an error), each level's part built. Not published yet. */
static int first_generation(gw_runtime_t *rt, gw_gen_t **out)
{
    gw_gen_t *g = gw_gen_new(rt->next_gen_id++, rt->cfg, NULL); /* the caller owns cfg */
    if (g == NULL)
        return GW_ENOMEM;
    g->owner = rt;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < g->nlis; i++) {
        gw_listener_t *l = gw_rt_listener_new(rt, g->lis[i].cfg);
        if (l == NULL) {
            rc = GW_ENOMEM;
            break;
        }
        l->gen_refs++;
        g->lis[i].obj = l;
        rc = gw_rt_listener_bind(rt, l, rt->cfg, g->lis[i].cfg, true, NULL);
    }
    if (rc == 0 && rt->app->gen_build != NULL)
        rc = rt->app->gen_build(rt, g, NULL, stderr);
    if (rc != 0) {
        gen_release(g);
        return rc;
    }
    *out = g;
    return 0;
}

/* ---- reload (control thread) --------------------------------------------------------- */

/* Restart-only keys: the running values stay (the bufpool, the worker threads and their
 * arrays were sized by them), CFG is made to say so, and each change is reported. */
static void keep_restart_only(const gw_runtime_t *rt, gw_config_t *cfg, gw_reload_report_t *rep)
{
    const gw_config_t *run = rt->cfg;
    size_t len = 0;
#define RESTART_KEY(name, field)                                                                   \
    if (cfg->field != run->field) {                                                                \
        int n = snprintf(rep->restart_keys + len, sizeof rep->restart_keys - len,                  \
                         "%s%s %llu -> %llu", len ? ", " : "", name,                               \
                         (unsigned long long)run->field, (unsigned long long)cfg->field);          \
        len = n > 0 && (size_t)n < sizeof rep->restart_keys - len ? len + (size_t)n : len;         \
        rep->restart++;                                                                            \
        cfg->field = run->field;                                                                   \
    }
    RESTART_KEY("workers", workers)
    RESTART_KEY("buffers.chunk_size", buffers.chunk_size)
    RESTART_KEY("buffers.max_memory", buffers.max_memory)
    RESTART_KEY("buffers.high_water", buffers.high_water)
    RESTART_KEY("buffers.low_water", buffers.low_water)
#undef RESTART_KEY
}

/* see runtime.h */
int gw_runtime_reload(gw_runtime_t *rt, gw_config_t *cfg, void (*free_cfg)(gw_config_t *cfg),
                      gw_plan_listeners_fn plan, FILE *errs, gw_reload_report_t *rep)
{
    const gw_gen_t *cur = gw_gen_current(rt);
    memset(rep, 0, sizeof *rep);
    rep->gen = cur->id;
    if (rt->stopping) {
        fprintf(errs, "%s: draining: the reload is refused\n", cfg->path ? cfg->path : "-");
        if (free_cfg != NULL)
            free_cfg(cfg);
        return GW_EINVAL;
    }
    keep_restart_only(rt, cfg, rep);
    gw_gen_t *g = gw_gen_new(rt->next_gen_id, cfg, free_cfg);
    if (g == NULL) {
        if (free_cfg != NULL)
            free_cfg(cfg);
        fprintf(errs, "%s: out of memory\n", cfg->path ? cfg->path : "-");
        return GW_ENOMEM;
    }
    g->owner = rt;
    /* A bind error is logged and written to ERRS as FILE:LINE:COL by gw_rt_listener_bind. */
    int rc = gw_rt_plan_and_bind(rt, g, cur, plan, errs);
    if (rc == GW_ENOMEM)
        fprintf(errs, "%s: out of memory\n", cfg->path ? cfg->path : "-");
    if (rc == 0 && rt->app->gen_build != NULL)
        rc = rt->app->gen_build(rt, g, cur, errs);
    gw_snap_t *prev_snap = atomic_load(&rt->snap.cur); /* CUR's: we are its only publisher */
    if (rc == 0)
        rc = publish_gen(rt, g); /* the workers follow it from their next loop turn */
    if (rc != 0) {
        /* Objects made for G are freed by G's release only if G held them: gw_rt_plan_and_bind
         * freed its own on failure; after it succeeded, new objects have G's reference. */
        for (size_t j = 0; j < g->nlis; j++) {
            gw_listener_t *l = g->lis[j].obj;
            if (l != NULL && gw_gen_listener(cur, l) == NULL) {
                g->lis[j].obj = NULL;
                l->gen_refs--;
                gw_rt_listener_free(rt, l);
            }
        }
        gen_release(g);
        return rc;
    }
    rt->next_gen_id++;
    if (gw_rt_apply_listeners(rt, g, cur, prev_snap) != 0)
        gw_error("out of memory renaming a listener: it keeps its old name in logs");
    if (rt->app->gen_applied != NULL)
        rt->app->gen_applied(rt, g, cur);
    rep->gen = g->id;
    rep->changes = g->changes;
    gw_gen_summary(g, rep->summary, sizeof rep->summary);
    gw_info("config generation %llu applied (%u change%s)%s%s%s%s", (unsigned long long)g->id,
            g->changes, g->changes == 1 ? "" : "s", g->changes ? ": " : "", rep->summary,
            rep->restart ? "; kept at old values (restart needed): " : "", rep->restart_keys);
    return 0;
}

/* Everything before the loop runs; on failure, the caller exits 1 after cleanup. */
static int runtime_setup(gw_runtime_t *rt)
{
    const gw_config_t *cfg = rt->cfg;
    int rc = gw_bufpool_init(&rt->bufpool, cfg->buffers.chunk_size, cfg->buffers.max_memory);
    if (rc == 0)
        rc = gw_snapdom_init(&rt->snap, rt->nworkers);
    if (rc != 0)
        return rc;
    rc = control_init(rt);
    if (rc == 0)
        rc = init_workers(rt);
    gw_gen_t *g = NULL;
    if (rc == 0)
        rc = first_generation(rt, &g);
    if (rc == 0) {
        gw_rt_check_nofile(rt, g);
        rc = publish_gen(rt, g);
        if (rc != 0)
            gen_release(g);
    }
    if (rc == 0 && rt->app->control_start != NULL)
        rc = rt->app->control_start(rt);
    rt->control_started = rc == 0;
    if (rc == 0 && rt->app->gen_applied != NULL)
        rt->app->gen_applied(rt, g, NULL);
    return rc;
}

/* Closes what setup opened when the loop never ran (startup failed). */
static void control_abort(gw_runtime_t *rt)
{
    if (rt->app->control_stop != NULL && rt->control_started)
        rt->app->control_stop(rt);
    uv_close((uv_handle_t *)&rt->sigterm, NULL);
    uv_close((uv_handle_t *)&rt->sigint, NULL);
    uv_close((uv_handle_t *)&rt->sighup, NULL);
    uv_close((uv_handle_t *)&rt->sigusr1, NULL);
    uv_close((uv_handle_t *)&rt->reclaim_timer, NULL);
    gw_mq_close(&rt->mq, NULL);
    uv_run(&rt->loop, UV_RUN_DEFAULT);
}

static void runtime_cleanup(gw_runtime_t *rt)
{
    if (rt->control_inited) {
        if (!rt->started)
            control_abort(rt);
        uv_walk(&rt->loop, close_any, NULL);
        uv_run(&rt->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&rt->loop) != 0)
            gw_error("control loop did not close cleanly");
        gw_mq_destroy(&rt->mq);
    }
    for (unsigned i = 0; rt->workers != NULL && i < rt->nworkers; i++) {
        gw_worker_t *w = &rt->workers[i];
        if (w->mq_inited && !rt->started) { /* set up, but its thread never ran */
            w->stopping = true;
            uv_close((uv_handle_t *)&w->drain_timer, NULL);
            uv_close((uv_handle_t *)&w->relisten_timer, NULL);
            uv_close((uv_handle_t *)&w->lgone_timer, NULL);
            uv_close((uv_handle_t *)&w->prepare, NULL);
            gw_stream_env_close(&w->streams);
            gw_mq_close(&w->mq, NULL);
            uv_run(&w->loop, UV_RUN_DEFAULT);
            uv_loop_close(&w->loop);
        }
        if (w->mq_inited)
            gw_mq_destroy(&w->mq);
        if (w->stats_free != NULL)
            w->stats_free(w->stats);
    }
    for (gw_listener_t *l = rt->all_listeners; l != NULL; l = l->next_all) {
        gw_snap_release(l->last_gen); /* every thread is gone: no connection holds it now */
        l->last_gen = NULL;
    }
    if (rt->snap.readers != NULL)
        gw_snapdom_destroy(&rt->snap); /* frees every generation */
    while (rt->all_listeners != NULL)
        gw_rt_listener_free(rt, rt->all_listeners);
    free(rt->workers);
    free(rt);
}

/* see runtime.h */
int gw_runtime_run(const gw_config_t *cfg, const gw_app_t *app, void *const *layers)
{
    signal(SIGPIPE, SIG_IGN); /* a write to a reset peer returns EPIPE instead of killing us */
    gw_log_set_thread("ctl");
    gw_runtime_t *rt = calloc(1, sizeof *rt);
    if (rt == NULL)
        return 1;
    rt->cfg = cfg;
    rt->app = app;
    for (int i = 0; layers != NULL && i < GW_LEVELS; i++)
        rt->layers[i] = layers[i];
    rt->nworkers = cfg->workers;
    rt->next_gen_id = 1;
    atomic_init(&rt->draining, false);
    rt->workers = calloc(rt->nworkers, sizeof *rt->workers);
    int rc = rt->workers == NULL ? GW_ENOMEM : runtime_setup(rt);
    if (rc == 0)
        rc = start_workers(rt);
    if (rc == 0) {
        rt->started = true;
        uv_run(&rt->loop, UV_RUN_DEFAULT);
    }
    int code = rc != 0 ? 1 : rt->exit_code;
    if (code == 0)
        gw_info("stopped");
    runtime_cleanup(rt);
    return code;
}
