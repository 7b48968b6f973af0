/* listener.c - listeners: the objects (an address, its sockets, its exact counts, shared by
 * every generation that keeps the address), their sockets on the control thread, and each
 * worker's listening handles on them (accept, pause and relisten when descriptors run out,
 * adopt and retire as generations come and go, the drain deadline of a removed listener).
 * The runtime (runtime.c) decides when; this file is how. See runtime.h for the contract and
 * runtime-int.h for what runtime.c calls here. */
#include "runtime-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "error.h"
#include "log.h"

#define LISTEN_BACKLOG 511
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

/* A listener object for LC, on the runtime's list, with
 * no reference and no socket yet. NULL when out of memory. */
gw_listener_t *gw_rt_listener_new(gw_runtime_t *rt, const gw_listener_cfg_t *lc)
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
void gw_rt_listener_free(gw_runtime_t *rt, gw_listener_t *l)
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
int gw_rt_listener_bind(gw_runtime_t *rt, gw_listener_t *l, const gw_config_t *cfg,
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
size_t gw_rt_reap_listeners(gw_runtime_t *rt)
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
            gw_rt_listener_free(rt, l);
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
void gw_rt_check_nofile(const gw_runtime_t *rt, const gw_gen_t *g)
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

void gw_rt_lgone_clear(gw_worker_t *w)
{
    while (w->lgone != NULL) {
        gw_lgone_t *e = w->lgone;
        w->lgone = e->next;
        gw_listener_drop(e->l);
        free(e);
    }
}

void gw_rt_close_listeners(gw_worker_t *w)
{
    for (gw_wlistener_t *wl = w->wls, *next; wl != NULL; wl = next) {
        next = wl->next;
        if (!wl->gone)
            wl_retire(wl);
    }
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
int gw_rt_plan_and_bind(gw_runtime_t *rt, gw_gen_t *g, const gw_gen_t *cur,
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
        gw_listener_t *l = gw_rt_listener_new(rt, lc);
        if (l == NULL) {
            rc = GW_ENOMEM;
            break;
        }
        l->gen_refs++;
        g->lis[j].obj = l;
        rc = gw_rt_listener_bind(rt, l, g->cfg, lc, probe, errs);
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
                gw_rt_listener_free(rt, l); /* made here: nobody else saw it */
            g->lis[j].obj = NULL;
        }
    }
    free(keep);
    free(kept);
    return rc;
}

/* After G is published (PREV_SNAP held PREV): kept listeners take G's name and limit,
 * removed ones stop and keep PREV alive for the connections they still have. */
int gw_rt_apply_listeners(gw_runtime_t *rt, gw_gen_t *g, const gw_gen_t *prev, gw_snap_t *prev_snap)
{
    for (size_t j = 0; j < g->nlis; j++) {
        gw_listener_t *l = g->lis[j].obj;
        const gw_listener_cfg_t *lc = g->lis[j].cfg;
        atomic_store_explicit(&l->max_connections, lc->max_connections, memory_order_relaxed);
        atomic_store_explicit(&l->cfg, lc, memory_order_release);
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

/* see runtime-int.h */
int gw_rt_sync_listeners(gw_worker_t *w, const gw_gen_t *g)
{
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
    return first;
}
