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

enum { MSG_READY = 1, MSG_EXITED, MSG_DRAIN, MSG_GEN };

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
static int probe_address(const gw_config_t *cfg, const gw_listener_cfg_t *lc, FILE *errs)
{
    int fd, rc = bind_socket(&lc->addr, false, &fd);
    if (rc == 0) {
        close(fd);
        return 0;
    }
    char buf[GW_ADDR_STRLEN], msg[512];
    snprintf(msg, sizeof msg, "%s:%u:%u: listener '%s': cannot bind %s: %s%s",
             cfg->path ? cfg->path : "-", lc->addr_line, lc->addr_col, lc->name,
             gw_addr_format(&lc->addr, buf, sizeof buf), gw_strerror(rc),
             rc == -EADDRINUSE ? " (another process is listening there)" : "");
    gw_error("%s", msg);
    if (errs != NULL)
        fprintf(errs, "%s\n", msg);
    return rc;
}

static void close_fds(gw_runtime_t *rt, gw_listener_t *l)
{
    for (unsigned k = 0; l->fds != NULL && k < rt->nworkers; k++) {
        if (l->fds[k] >= 0)
            close(l->fds[k]);
        l->fds[k] = -1;
    }
}

/* A listener object for LC (position POS in its generation), on the runtime's list, with
 * no reference and no socket yet. NULL when out of memory. */
static gw_listener_t *listener_new(gw_runtime_t *rt, const gw_listener_cfg_t *lc, size_t pos)
{
    gw_listener_t *l = calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    l->fds = malloc(rt->nworkers * sizeof *l->fds);
    l->name_owned = strdup(lc->name);
    if (l->fds == NULL || l->name_owned == NULL) {
        free(l->fds);
        free(l->name_owned);
        free(l);
        return NULL;
    }
    for (unsigned k = 0; k < rt->nworkers; k++)
        l->fds[k] = -1;
    l->addr = lc->addr;
    atomic_init(&l->cfg, lc);
    atomic_init(&l->index, pos);
    atomic_init(&l->name, l->name_owned);
    atomic_init(&l->max_connections, lc->max_connections);
    atomic_init(&l->active, 0);
    atomic_init(&l->accepted, 0);
    atomic_init(&l->rejected, 0);
    atomic_init(&l->refs, 0);
    atomic_init(&l->removed, false);
    l->next_all = rt->all_listeners;
    rt->all_listeners = l;
    return l;
}

/* Unlinks L from the runtime's list and frees it with any socket no worker adopted. */
static void listener_free(gw_runtime_t *rt, gw_listener_t *l)
{
    for (gw_listener_t **p = &rt->all_listeners; *p != NULL; p = &(*p)->next_all)
        if (*p == l) {
            *p = l->next_all;
            break;
        }
    close_fds(rt, l);
    free(l->fds);
    free(l->name_owned);
    free(l);
}

/* Binds one listening socket per worker for L, as LC (of the config at PATH's CFG) says.
 * PROBE first checks that nobody holds the address (skipped when a listener object of ours
 * still holds sockets there, as a removed one draining does: the probe would fail against
 * our own sockets). On failure, whatever was bound is closed again. */
static int listener_bind(gw_runtime_t *rt, gw_listener_t *l, const gw_config_t *cfg,
                         const gw_listener_cfg_t *lc, bool probe, FILE *errs)
{
    int rc = probe ? probe_address(cfg, lc, errs) : 0;
    for (unsigned i = 0; rc == 0 && i < rt->nworkers; i++) {
        rc = bind_socket(&l->addr, true, &l->fds[i]);
        if (rc == 0 && listen(l->fds[i], LISTEN_BACKLOG) != 0)
            rc = -errno;
        if (rc != 0) {
            gw_error("%s:%u:%u: listener '%s': %s", cfg->path ? cfg->path : "-", lc->addr_line,
                     lc->addr_col, lc->name, gw_strerror(rc));
            if (errs != NULL)
                fprintf(errs, "%s:%u:%u: listener '%s': %s\n", cfg->path ? cfg->path : "-",
                        lc->addr_line, lc->addr_col, lc->name, gw_strerror(rc));
        }
    }
    if (rc != 0)
        close_fds(rt, l);
    return rc;
}

/* Frees the listener objects a reload removed once nothing refers to them; returns how many
 * removed ones remain. Control thread. Two stages, so that no cycle keeps both alive: when
 * the last handle and connection let go, the object gives back its reference on the
 * generation that last had it; that generation can then be reclaimed, which takes the
 * object off its list (GEN_REFS), and the object goes at a later tick. */
static size_t reap_listeners(gw_runtime_t *rt)
{
    size_t left = 0;
    for (gw_listener_t *l = rt->all_listeners, *next; l != NULL; l = next) {
        next = l->next_all;
        if (!atomic_load_explicit(&l->removed, memory_order_relaxed))
            continue;
        if (atomic_load_explicit(&l->refs, memory_order_acquire) == 0 && l->last_gen != NULL) {
            gw_snap_release(l->last_gen);
            l->last_gen = NULL;
        }
        if (l->last_gen == NULL && l->gen_refs == 0)
            listener_free(rt, l);
        else
            left++;
    }
    return left;
}

/* see runtime.h */
void gw_listener_hold(gw_listener_t *l)
{
    /* Relaxed: the caller already holds a reference (a generation, a handle), so the count
     * cannot reach 0 meanwhile. */
    atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
}

/* see runtime.h */
void gw_listener_drop(gw_listener_t *l)
{
    /* Release: every use of L before the drop happens before the reaper's acquire load
     * reads 0 and frees it. Workers never free (the control thread reaps). */
    atomic_fetch_sub_explicit(&l->refs, 1, memory_order_release);
}

/* Raises the soft open-files limit towards what the listeners' connection limits need (two
 * descriptors per proxied connection) and warns when even the hard limit is short. */
static void check_nofile(const gw_runtime_t *rt, const gw_gen_t *g)
{
    rlim_t need = 64 + (rlim_t)rt->nworkers * g->nlis;
    for (size_t i = 0; i < g->nlis; i++)
        need += 2 * (rlim_t)g->lis[i].cfg->max_connections;
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
    if (n > atomic_load_explicit(&l->max_connections, memory_order_relaxed)) {
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

static void wl_free(gw_wlistener_t *wl)
{
    gw_worker_t *w = wl->worker;
    for (gw_wlistener_t **p = &w->wls; *p != NULL; p = &(*p)->next)
        if (*p == wl) {
            *p = wl->next;
            break;
        }
    gw_listener_drop(wl->listener);
    free(wl);
}

static void on_wl_closed(uv_handle_t *h)
{
    gw_wlistener_t *wl = h->data;
    wl->closing = false;
    if (wl->gone)
        wl_free(wl);
}

/* WL is no longer wanted: its handle closes (connections queued on its socket are reset by
 * the kernel) and it is freed once closed, at once if it is closed already (paused). */
static void wl_retire(gw_wlistener_t *wl)
{
    wl->gone = true;
    wl->paused = false;
    if (wl->open) {
        wl->open = false;
        wl->closing = true;
        uv_close((uv_handle_t *)&wl->tcp, on_wl_closed);
    } else if (!wl->closing) {
        wl_free(wl);
    }
}

/* see runtime.h */
void gw_listener_pause(gw_wlistener_t *wl, int status)
{
    gw_worker_t *w = wl->worker;
    wl->open = false;
    wl->paused = true;
    wl->closing = true;
    uv_close((uv_handle_t *)&wl->tcp, on_wl_closed);
    if (!uv_is_active((uv_handle_t *)&w->relisten_timer))
        uv_timer_start(&w->relisten_timer, on_relisten_timer, RELISTEN_MS, 0);
    uint64_t dropped;
    if (gw_lograte_allow(&w->accept_log, uv_now(&w->loop), 1000, &dropped))
        gw_warn("listener '%s': cannot accept: %s; not accepting for now (queued connections "
                "reset), listening again in %d ms%s",
                gw_listener_name(wl->listener), uv_strerror(status), RELISTEN_MS,
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
            gw_warn("listener '%s': accept failed: %s%s", gw_listener_name(wl->listener),
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
        uv_close((uv_handle_t *)&wl->tcp, on_wl_closed);
        return rc;
    }
    wl->open = true;
    return 0;
}

/* A new socket for a paused WL; 0, or the error (EMFILE while descriptors are short). */
static int relisten(gw_wlistener_t *wl)
{
    int fd, rc = bind_socket(&wl->listener->addr, true, &fd);
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
    for (gw_wlistener_t *wl = w->wls; wl != NULL && !w->draining && !w->stopping; wl = wl->next) {
        if (!wl->paused || wl->gone)
            continue;
        int rc = wl->closing ? UV_EAGAIN : relisten(wl);
        if (rc == 0) {
            wl->paused = false;
            gw_info("listener '%s': accepting again", gw_listener_name(wl->listener));
            continue;
        }
        still = true;
        uint64_t dropped;
        if (!gw_err_local_shortage(rc) && rc != UV_EAGAIN &&
            gw_lograte_allow(&w->accept_log, uv_now(&w->loop), 1000, &dropped))
            gw_error("listener '%s': cannot listen again: %s%s", gw_listener_name(wl->listener),
                     gw_strerror(rc), dropped ? " (more suppressed)" : "");
    }
    if (still)
        uv_timer_start(&w->relisten_timer, on_relisten_timer, RELISTEN_MS, 0);
}

/* A handle for L on worker W, listening on the socket the control thread bound for W. */
static int wl_adopt(gw_worker_t *w, gw_listener_t *l)
{
    gw_wlistener_t *wl = calloc(1, sizeof *wl);
    if (wl == NULL)
        return GW_ENOMEM;
    wl->worker = w;
    wl->listener = l;
    gw_listener_hold(l); /* the pinned generation holds one, so L is alive */
    wl->next = w->wls;
    w->wls = wl;
    int fd = l->fds[w->id];
    l->fds[w->id] = -1; /* listen_on owns it now, whatever happens */
    if (fd < 0) {
        /* Not bound for us (a publish we skipped bound it and a later one dropped it, then
         * it came back): take a socket of our own, as after a pause. */
        wl->paused = true;
        return UV_EAGAIN;
    }
    int rc = listen_on(wl, fd);
    if (rc != 0)
        wl->paused = true; /* retried by the relisten timer */
    return rc;
}

/* ---- a removed listener's connections: drain_timeout, then closed ------------------------ */

typedef struct gw_lgone_s {
    gw_listener_t *l; /* held until the deadline */
    uint64_t deadline;
    struct gw_lgone_s *next;
} gw_lgone_t;

static void on_lgone_timer(uv_timer_t *t);

static void lgone_arm(gw_worker_t *w)
{
    uint64_t first = UINT64_MAX;
    for (gw_lgone_t *e = w->lgone; e != NULL; e = e->next)
        first = e->deadline < first ? e->deadline : first;
    if (first == UINT64_MAX) {
        uv_timer_stop(&w->lgone_timer);
        return;
    }
    uint64_t now = uv_now(&w->loop);
    uv_timer_start(&w->lgone_timer, on_lgone_timer, first > now ? first - now : 0, 0);
}

static void on_lgone_timer(uv_timer_t *t)
{
    gw_worker_t *w = t->data;
    uint64_t now = uv_now(&w->loop);
    for (gw_lgone_t **p = &w->lgone; *p != NULL;) {
        gw_lgone_t *e = *p;
        if (e->deadline > now) {
            p = &e->next;
            continue;
        }
        *p = e->next;
        if (w->app_started && w->rt->app->worker_listener_gone != NULL && !w->stopping)
            w->rt->app->worker_listener_gone(w, e->l);
        gw_listener_drop(e->l);
        free(e);
    }
    lgone_arm(w);
}

/* L left the generation this worker follows now (G): its connections on this worker get
 * G's drain_timeout to finish. Out of memory: they get no deadline (they end on their own,
 * or at the process's drain). */
static void lgone_add(gw_worker_t *w, gw_listener_t *l, const gw_gen_t *g)
{
    if (w->rt->app->worker_listener_gone == NULL)
        return;
    gw_lgone_t *e = malloc(sizeof *e);
    if (e == NULL)
        return;
    gw_listener_hold(l); /* the handle being retired holds one: L is alive */
    e->l = l;
    e->deadline = uv_now(&w->loop) + g->cfg->drain_timeout_ms;
    e->next = w->lgone;
    w->lgone = e;
    lgone_arm(w);
}

static void lgone_clear(gw_worker_t *w)
{
    while (w->lgone != NULL) {
        gw_lgone_t *e = w->lgone;
        w->lgone = e->next;
        gw_listener_drop(e->l);
        free(e);
    }
}

/* The worker follows the generation published now: it pins it, closes the handles of
 * listeners it no longer lists, adopts the sockets of those it adds, tells the app, and
 * unpins the one it followed before. Runs at start and on each MSG_GEN; publishes that
 * came quickly are seen as one (the newest), which is all a worker needs. Returns the
 * first adoption error (at start, the worker fails to start); later ones are logged and
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
    for (gw_wlistener_t *wl = w->wls, *next; wl != NULL; wl = next) {
        next = wl->next;
        if (!wl->gone && gw_gen_listener(g, wl->listener) == NULL) {
            lgone_add(w, wl->listener, g);
            wl_retire(wl);
        }
    }
    int first = 0;
    for (size_t i = 0; i < g->nlis; i++) {
        gw_listener_t *l = g->lis[i].obj;
        bool have = false;
        for (gw_wlistener_t *wl = w->wls; wl != NULL && !have; wl = wl->next)
            have = wl->listener == l && !wl->gone;
        int rc = have ? 0 : wl_adopt(w, l);
        if (rc != 0 && rc != UV_EAGAIN) {
            gw_error("listener '%s': cannot listen: %s; trying again", gw_listener_name(l),
                     gw_strerror(rc));
            first = first != 0 ? first : rc;
        }
        if (rc != 0 && !uv_is_active((uv_handle_t *)&w->relisten_timer))
            uv_timer_start(&w->relisten_timer, on_relisten_timer, RELISTEN_MS, 0);
    }
    if (w->app_started && rt->app->worker_gen != NULL)
        rt->app->worker_gen(w, g, prev);
    if (w->applied != NULL)
        gw_snap_unpin(w->applied, w->id);
    w->applied = s;
    return first;
}

static void close_listeners(gw_worker_t *w)
{
    for (gw_wlistener_t *wl = w->wls, *next; wl != NULL; wl = next) {
        next = wl->next;
        if (!wl->gone)
            wl_retire(wl);
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
    close_listeners(w);
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
    uv_close((uv_handle_t *)&w->relisten_timer, NULL);
    uv_close((uv_handle_t *)&w->lgone_timer, NULL);
    lgone_clear(w); /* the process's drain decided for every connection */
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
    if (gw_snap_reclaim(&rt->snap) + reap_listeners(rt) == 0)
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
        gw_listener_t *l = listener_new(rt, g->lis[i].cfg, i);
        if (l == NULL) {
            rc = GW_ENOMEM;
            break;
        }
        l->gen_refs++;
        g->lis[i].obj = l;
        rc = listener_bind(rt, l, rt->cfg, g->lis[i].cfg, true, NULL);
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

/* True when a listener object of ours (a removed one, still draining) holds sockets on A: a
 * probe there would fail against our own sockets, and joining their group is harmless. */
static bool ours_at(const gw_runtime_t *rt, const gw_addr_t *a)
{
    for (const gw_listener_t *l = rt->all_listeners; l != NULL; l = l->next_all)
        if (gw_addr_equal(&l->addr, a))
            return true;
    return false;
}

/* The listeners of G: kept objects from CUR as PLAN says (each gets G's reference), new ones
 * made and bound. Changes are recorded in G. On failure the objects made here are freed and
 * the references taken dropped (G's slots are then NULL). */
static int plan_and_bind(gw_runtime_t *rt, gw_gen_t *g, const gw_gen_t *cur,
                         gw_plan_listeners_fn plan, FILE *errs)
{
    size_t nold = cur->nlis, nnew = g->nlis;
    size_t *keep = calloc(nnew ? nnew : 1, sizeof *keep);
    bool *kept = calloc(nold ? nold : 1, sizeof *kept);
    int rc = keep && kept ? 0 : GW_ENOMEM;
    /* A generation's listener I is its config's listener I (gw_gen_new), so the configs'
     * arrays are in the objects' order. */
    if (rc == 0)
        rc = plan(cur->cfg->listeners, nold, g->cfg->listeners, nnew, keep);
    for (size_t j = 0; rc == 0 && j < nnew; j++) {
        const gw_listener_cfg_t *lc = g->lis[j].cfg;
        if (keep[j] < nold && !kept[keep[j]]) {
            gw_listener_t *l = cur->lis[keep[j]].obj;
            kept[keep[j]] = true;
            l->gen_refs++;
            g->lis[j].obj = l;
            if (strcmp(gw_listener_name(l), lc->name) != 0)
                gw_gen_change(g, "listener '%s' renamed '%s'", gw_listener_name(l), lc->name);
            continue;
        }
        bool probe = !ours_at(rt, &lc->addr);
        gw_listener_t *l = listener_new(rt, lc, j);
        if (l == NULL) {
            rc = GW_ENOMEM;
            break;
        }
        l->gen_refs++;
        g->lis[j].obj = l;
        rc = listener_bind(rt, l, g->cfg, lc, probe, errs);
        if (rc == 0)
            gw_gen_change(g, "+listener '%s' (%s)", lc->name, lc->address_text);
    }
    for (size_t i = 0; rc == 0 && i < nold; i++)
        if (!kept[i])
            gw_gen_change(g, "-listener '%s'", gw_listener_name(cur->lis[i].obj));
    if (rc != 0) {
        for (size_t j = 0; j < nnew; j++) {
            gw_listener_t *l = g->lis[j].obj;
            if (l == NULL)
                continue;
            l->gen_refs--;
            if (keep[j] >= nold || cur->lis[keep[j]].obj != l)
                listener_free(rt, l); /* made here: nobody else saw it */
            g->lis[j].obj = NULL;
        }
    }
    free(keep);
    free(kept);
    return rc;
}

/* After G is published (PREV_SNAP held PREV): kept listeners take G's name and limit,
 * removed ones stop and keep PREV alive for the connections they still have. */
static int apply_listeners(gw_runtime_t *rt, gw_gen_t *g, const gw_gen_t *prev,
                           gw_snap_t *prev_snap)
{
    for (size_t j = 0; j < g->nlis; j++) {
        gw_listener_t *l = g->lis[j].obj;
        const gw_listener_cfg_t *lc = g->lis[j].cfg;
        atomic_store_explicit(&l->max_connections, lc->max_connections, memory_order_relaxed);
        atomic_store_explicit(&l->cfg, lc, memory_order_release);
        if (atomic_load_explicit(&l->index, memory_order_relaxed) != j)
            atomic_store_explicit(&l->index, j, memory_order_relaxed); /* transitional */
        if (strcmp(l->name_owned, lc->name) == 0)
            continue;
        char *name = strdup(lc->name);
        /* The old string goes with G, which is freed only after every worker passed a
         * quiescent point after G was retired, so after it saw the new pointer. */
        if (name == NULL || gw_gen_keep_garbage(g, l->name_owned) != 0) {
            free(name);
            return GW_ENOMEM; /* logged by the caller; the old name stays */
        }
        l->name_owned = name;
        atomic_store_explicit(&l->name, name, memory_order_release);
    }
    for (size_t i = 0; i < prev->nlis; i++) {
        gw_listener_t *l = prev->lis[i].obj;
        if (gw_gen_listener(g, l) == NULL) {
            /* PREV is retired but alive: only this thread reclaims, and it has not yet. */
            atomic_fetch_add(&prev_snap->refs, 1);
            l->last_gen = prev_snap;
            atomic_store_explicit(&l->removed, true, memory_order_relaxed);
            gw_info("listener '%s' (%s): removed; its connections finish", gw_listener_name(l),
                    l->cfg->address_text);
        }
    }
    (void)rt;
    return 0;
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
    /* A bind error is logged and written to ERRS as FILE:LINE:COL by listener_bind. */
    int rc = plan_and_bind(rt, g, cur, plan, errs);
    if (rc == GW_ENOMEM)
        fprintf(errs, "%s: out of memory\n", cfg->path ? cfg->path : "-");
    if (rc == 0 && rt->app->gen_build != NULL)
        rc = rt->app->gen_build(rt, g, cur, errs);
    gw_snap_t *prev_snap = atomic_load(&rt->snap.cur); /* CUR's: we are its only publisher */
    if (rc == 0)
        rc = publish_gen(rt, g); /* the workers follow it from their next loop turn */
    if (rc != 0) {
        /* Objects made for G are freed by G's release only if G held them: plan_and_bind
         * freed its own on failure; after it succeeded, new objects have G's reference. */
        for (size_t j = 0; j < g->nlis; j++) {
            gw_listener_t *l = g->lis[j].obj;
            if (l != NULL && gw_gen_listener(cur, l) == NULL) {
                g->lis[j].obj = NULL;
                l->gen_refs--;
                listener_free(rt, l);
            }
        }
        gen_release(g);
        return rc;
    }
    rt->next_gen_id++;
    if (apply_listeners(rt, g, cur, prev_snap) != 0)
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
        check_nofile(rt, g);
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
        listener_free(rt, rt->all_listeners);
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
