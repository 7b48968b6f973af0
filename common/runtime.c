/* runtime.c - see runtime.h.
 *
 * Life of the process:
 *   control: bind every listener (probe first), start workers -----> log "ready"
 *   worker:  loop + mq + listeners from the pre-bound fds -> READY -^
 *   SIGTERM: control posts DRAIN to every worker; each closes its listeners, tells the app,
 *            arms its drain timer, and finishes when its last connection is gone (or the
 *            timer forces them closed). Each posts EXITED; the last one stops control.
 */
#include "runtime.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "error.h"
#include "log.h"

enum { MSG_READY = 1, MSG_EXITED, MSG_DRAIN, MSG_NUDGE };

#define LISTEN_BACKLOG 511
#define RECLAIM_INTERVAL_MS 100
#define RELISTEN_MS 100 /* a listener paused for want of descriptors tries again this often */

/* ---- listening sockets (control thread, at startup) ----------------------------------- */

/* A socket bound to A; with REUSEPORT it joins the kernel's group for that port so every
 * worker gets its own accept queue and the kernel spreads connections between them. */
static int bind_socket(const gw_addr_t *a, bool reuseport, int *out)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) ||
        (a->ss.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
        bind(fd, (const struct sockaddr *)&a->ss, a->len) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    *out = fd;
    return 0;
}

/* Probe without SO_REUSEPORT: with it, a second gateway on the same port would silently
 * share the traffic instead of failing. The probe fails if anyone holds the port. */
static int probe_address(const gw_config_t *cfg, const gw_listener_cfg_t *lc)
{
    int fd, rc = bind_socket(&lc->addr, false, &fd);
    if (rc == 0) {
        close(fd);
        return 0;
    }
    char buf[GW_ADDR_STRLEN];
    gw_error("%s:%u:%u: listener '%s': cannot bind %s: %s%s", cfg->path ? cfg->path : "-",
             lc->addr_line, lc->addr_col, lc->name, gw_addr_format(&lc->addr, buf, sizeof buf),
             gw_strerror(rc), rc == -EADDRINUSE ? " (another process is listening there)" : "");
    return rc;
}

static int open_listener(gw_runtime_t *rt, gw_listener_t *l)
{
    int rc = probe_address(rt->cfg, l->cfg);
    if (rc != 0)
        return rc;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        rc = bind_socket(&l->cfg->addr, true, &l->fds[i]);
        if (rc == 0 && listen(l->fds[i], LISTEN_BACKLOG) != 0)
            rc = -errno;
        if (rc != 0) {
            gw_error("listener '%s': %s", l->cfg->name, gw_strerror(rc));
            return rc;
        }
    }
    return 0;
}

static int open_listeners(gw_runtime_t *rt)
{
    rt->nlisteners = rt->cfg->nlisteners;
    rt->listeners = calloc(rt->nlisteners, sizeof *rt->listeners);
    if (rt->listeners == NULL)
        return GW_ENOMEM;
    for (size_t i = 0; i < rt->nlisteners; i++) {
        gw_listener_t *l = &rt->listeners[i];
        l->cfg = &rt->cfg->listeners[i];
        l->index = i;
        l->fds = malloc(rt->nworkers * sizeof *l->fds);
        if (l->fds == NULL)
            return GW_ENOMEM;
        for (unsigned k = 0; k < rt->nworkers; k++)
            l->fds[k] = -1;
        int rc = open_listener(rt, l);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void close_listener_fds(gw_runtime_t *rt)
{
    for (size_t i = 0; i < rt->nlisteners; i++) {
        gw_listener_t *l = &rt->listeners[i];
        for (unsigned k = 0; l->fds != NULL && k < rt->nworkers; k++)
            if (l->fds[k] >= 0)
                close(l->fds[k]);
        free(l->fds);
    }
    free(rt->listeners);
    rt->listeners = NULL;
}

/* Raises the soft open-files limit towards what the listeners' connection limits need (two
 * descriptors per proxied connection) and warns when even the hard limit is short. */
static void check_nofile(const gw_runtime_t *rt)
{
    rlim_t need = 64 + (rlim_t)rt->nworkers * rt->nlisteners;
    for (size_t i = 0; i < rt->nlisteners; i++)
        need += 2 * (rlim_t)rt->listeners[i].cfg->max_connections;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return;
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0 && want >= need)
        return;
    gw_warn("open-files limit is %llu but max_connections need about %llu; raise `ulimit -n` "
            "or lower max_connections",
            (unsigned long long)want, (unsigned long long)need);
}

/* ---- admission and connection accounting --------------------------------------------- */

/* see runtime.h */
bool gw_listener_admit(gw_listener_t *l)
{
    /* Increment first, then check: a ceiling across workers without a lock. Of two workers
     * racing for the last slot, one sees the limit and stays, the other sees it passed and
     * backs out; neither overshoots. A worker backing out still counts until it has, so a
     * slot freed meanwhile can be missed: one refusal too many, never one admission. */
    unsigned n = atomic_fetch_add_explicit(&l->active, 1, memory_order_relaxed) + 1;
    if (n > l->cfg->max_connections) {
        atomic_fetch_sub_explicit(&l->active, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&l->rejected, 1, memory_order_relaxed);
        return false;
    }
    atomic_fetch_add_explicit(&l->accepted, 1, memory_order_relaxed);
    return true;
}

/* see runtime.h */
void gw_listener_leave(gw_listener_t *l)
{
    atomic_fetch_sub_explicit(&l->active, 1, memory_order_relaxed);
}

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

/* ---- accepting, and running out of descriptors ------------------------------------- *
 *
 * accept(2) fails with EMFILE as long as the descriptor table is full, whether or not a
 * connection waits (Linux takes the descriptor first), and libuv 1.44's uv__server_io
 * calls accept again after every error it reports: only an empty queue (EAGAIN) or a closed
 * listener ends that loop. libuv's remedy, uv__emfile_trick (close a spare descriptor,
 * accept and close what waits, take the spare back), works in one thread. With several
 * workers another thread can take the descriptor it freed, or the limit may sit below the
 * spare's number (prlimit); the spare is then lost for good, libuv reports EMFILE to us,
 * and from then on that worker calls accept in a loop at full speed, deaf to its own
 * connections, until some other thread frees a descriptor (issue 12 measured it).
 *
 * So an error that means "no descriptor" (EMFILE, ENFILE, ENOBUFS, ENOMEM) takes this
 * worker's listener out of libuv's hands: the handle is closed, which ends the loop, and
 * connections queued on this worker's socket are reset by the kernel (they would have been
 * closed unserved anyway). Others go to the workers still listening; with all of them
 * paused the port refuses connections: a clean refusal, not a hang. Every RELISTEN_MS the
 * worker binds a fresh SO_REUSEPORT socket; that needs a descriptor, so it succeeds once
 * some are free again. nginx and HAProxy also stop accepting for a moment on EMFILE; they
 * keep the socket, which we cannot do without a descriptor to spare. The cost: while every
 * worker is paused the port is unbound, so another process could take it (a second gateway
 * would pass its probe then), and a rebind failing for another reason is retried and
 * logged. */

static void on_listener_connection(uv_stream_t *server, int status);
static void on_relisten_timer(uv_timer_t *t);

static void on_paused_close(uv_handle_t *h)
{
    gw_wlistener_t *wl = h->data;
    wl->closing = false;
}

/* see runtime.h */
void gw_listener_pause(gw_wlistener_t *wl, int status)
{
    gw_worker_t *w = wl->worker;
    wl->open = false;
    wl->paused = true;
    wl->closing = true;
    uv_close((uv_handle_t *)&wl->tcp, on_paused_close);
    if (!uv_is_active((uv_handle_t *)&w->relisten_timer))
        uv_timer_start(&w->relisten_timer, on_relisten_timer, RELISTEN_MS, 0);
    uint64_t dropped;
    if (gw_lograte_allow(&w->accept_log, uv_now(&w->loop), 1000, &dropped))
        gw_warn("listener '%s': cannot accept: %s; not accepting for now (queued connections "
                "reset), listening again in %d ms%s",
                wl->listener->cfg->name, uv_strerror(status), RELISTEN_MS,
                dropped ? " (more suppressed)" : "");
}

static void on_listener_connection(uv_stream_t *server, int status)
{
    gw_wlistener_t *wl = server->data;
    if (gw_err_local_shortage(status)) {
        gw_listener_pause(wl, status);
        return;
    }
    if (status != 0) { /* one connection's trouble (EPROTO, EPERM from a filter): say so, rarely */
        uint64_t dropped;
        if (gw_lograte_allow(&wl->worker->accept_log, uv_now(&wl->worker->loop), 1000, &dropped))
            gw_warn("listener '%s': accept failed: %s%s", wl->listener->cfg->name,
                    uv_strerror(status), dropped ? " (more suppressed)" : "");
        return;
    }
    wl->worker->rt->app->on_connection(wl);
}

/* Makes WL's handle listen on FD (a bound, listening socket). On failure FD is closed and
 * the handle, if it was initialised, is closing (wl->closing). */
static int listen_on(gw_wlistener_t *wl, int fd)
{
    gw_worker_t *w = wl->worker;
    int rc = uv_tcp_init(&w->loop, &wl->tcp);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    wl->tcp.data = wl;
    rc = uv_tcp_open(&wl->tcp, fd);
    if (rc != 0)
        close(fd); /* not the handle's yet */
    else
        rc = uv_listen((uv_stream_t *)&wl->tcp, LISTEN_BACKLOG, on_listener_connection);
    if (rc != 0) {
        wl->closing = true;
        uv_close((uv_handle_t *)&wl->tcp, on_paused_close);
        return rc;
    }
    wl->open = true;
    return 0;
}

/* A new socket for a paused WL; 0, or the error (EMFILE while descriptors are short). */
static int relisten(gw_wlistener_t *wl)
{
    int fd, rc = bind_socket(&wl->listener->cfg->addr, true, &fd);
    if (rc == 0 && listen(fd, LISTEN_BACKLOG) != 0) {
        rc = -errno;
        close(fd);
    }
    if (rc != 0)
        return rc;
    return listen_on(wl, fd);
}

static void on_relisten_timer(uv_timer_t *t)
{
    gw_worker_t *w = t->data;
    bool still = false;
    for (size_t i = 0; i < w->rt->nlisteners && !w->draining && !w->stopping; i++) {
        gw_wlistener_t *wl = &w->wls[i];
        if (!wl->paused)
            continue;
        int rc = wl->closing ? UV_EAGAIN : relisten(wl);
        if (rc == 0) {
            wl->paused = false;
            gw_info("listener '%s': accepting again", wl->listener->cfg->name);
            continue;
        }
        still = true;
        uint64_t dropped;
        if (!gw_err_local_shortage(rc) && rc != UV_EAGAIN &&
            gw_lograte_allow(&w->accept_log, uv_now(&w->loop), 1000, &dropped))
            gw_error("listener '%s': cannot listen again: %s%s", wl->listener->cfg->name,
                     gw_strerror(rc), dropped ? " (more suppressed)" : "");
    }
    if (still)
        uv_timer_start(&w->relisten_timer, on_relisten_timer, RELISTEN_MS, 0);
}

static int worker_listen(gw_worker_t *w)
{
    gw_runtime_t *rt = w->rt;
    for (size_t i = 0; i < rt->nlisteners; i++) {
        gw_wlistener_t *wl = &w->wls[i];
        wl->worker = w;
        wl->listener = &rt->listeners[i];
        int fd = wl->listener->fds[w->id];
        wl->listener->fds[w->id] = -1; /* listen_on owns it now, whatever happens */
        int rc = listen_on(wl, fd);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void close_listeners(gw_worker_t *w)
{
    for (size_t i = 0; i < w->rt->nlisteners; i++) {
        w->wls[i].paused = false; /* a paused one is closed already: it stays so */
        if (w->wls[i].open) {
            w->wls[i].open = false;
            uv_close((uv_handle_t *)&w->wls[i].tcp, NULL);
        }
    }
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
    close_listeners(w);
    if (w->app_started && w->rt->app->worker_drain != NULL)
        w->rt->app->worker_drain(w);
    if (w->nconns == 0) {
        worker_finish(w);
        return;
    }
    uv_timer_start(&w->drain_timer, on_drain_timeout, w->rt->cfg->drain_timeout_ms, 0);
}

/* Closes every handle the worker still has; its loop then runs out and the thread ends. */
static void worker_finish(gw_worker_t *w)
{
    if (w->stopping)
        return;
    w->stopping = true;
    if (w->app_started && w->rt->app->worker_stop != NULL)
        w->rt->app->worker_stop(w);
    close_listeners(w);
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
    uv_close((uv_handle_t *)&w->relisten_timer, NULL);
    uv_close((uv_handle_t *)&w->prepare, NULL);
    gw_stream_env_close(&w->streams);
    gw_mq_close(&w->mq, NULL);
}

static void on_worker_msg(gw_mq_t *mq, gw_msg_t *msg)
{
    gw_worker_t *w = mq->data;
    if (msg->type == MSG_DRAIN && !w->stopping)
        worker_drain(w);
    /* MSG_NUDGE only woke the loop, so the prepare handle passes a quiescent point. */
    if (msg->type == MSG_NUDGE)
        free(msg);
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
        rc = worker_listen(w);
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

/* Nudges are allocated: several may be in flight when publishes come quickly. */
static void post_nudge(gw_runtime_t *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        gw_msg_t *m = malloc(sizeof *m);
        if (m == NULL)
            return; /* the reclaim timer still frees it once the worker wakes for I/O */
        m->type = MSG_NUDGE;
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
            (unsigned long long)rt->cfg->drain_timeout_ms);
    post_drain(rt);
}

static void on_reclaim_timer(uv_timer_t *t)
{
    gw_runtime_t *rt = t->data;
    if (gw_snap_reclaim(&rt->snap) == 0)
        uv_timer_stop(t);
}

/* see runtime.h */
int gw_runtime_publish(gw_runtime_t *rt, void *data, void (*free_fn)(void *data))
{
    int rc = gw_snap_publish(&rt->snap, data, free_fn);
    if (rc != 0)
        return rc;
    /* Wake idle workers so they pass a quiescent point and the old snapshot can go. */
    post_nudge(rt);
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
        gw_info("ready: %zu listener(s), %u worker(s)", rt->nlisteners, rt->nworkers);
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
        int rc = gw_log_open(rt->cfg->log_file);
        gw_info("SIGUSR1: log file %s%s", rt->cfg->log_file ? "reopened" : "not configured",
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
        w->wls = calloc(rt->nlisteners, sizeof *w->wls);
        if (w->wls == NULL)
            return GW_ENOMEM;
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

/* Everything before the loop runs; on failure, the caller exits 1 after cleanup. */
static int runtime_setup(gw_runtime_t *rt)
{
    const gw_config_t *cfg = rt->cfg;
    int rc = gw_bufpool_init(&rt->bufpool, cfg->buffers.chunk_size, cfg->buffers.max_memory);
    if (rc == 0)
        rc = gw_snapdom_init(&rt->snap, rt->nworkers);
    if (rc == 0)
        rc = open_listeners(rt);
    if (rc != 0)
        return rc;
    check_nofile(rt);
    rc = control_init(rt);
    if (rc == 0)
        rc = init_workers(rt);
    if (rc == 0 && rt->app->control_start != NULL)
        rc = rt->app->control_start(rt);
    rt->control_started = rc == 0;
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
        free(w->wls);
    }
    if (rt->snap.readers != NULL)
        gw_snapdom_destroy(&rt->snap);
    close_listener_fds(rt);
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
