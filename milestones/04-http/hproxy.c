/* hproxy.c - see hproxy.h. The worker shell of the HTTP engine, and the tour of it.
 *
 * Three kinds of objects live on a worker:
 *
 *   hconn_t   a client connection. While it waits for a request it is only a socket and a
 *             place in an idle list (about 300 bytes): no buffer, no parser, no timer of its
 *             own. Idle connections that wait with the same timeout (whatever their
 *             listener: lists are keyed by kind and timeout) are in one FIFO list, so one
 *             timer per list serves all of them (the first to expire is at the front).
 *   hx_t      the state of one exchange (parser, heads, timer, middleware state), taken
 *             when a request's first byte arrives and given back (to a free list) when the
 *             response is complete and no pipelined bytes are waiting.
 *   uconn_t   an upstream connection: attached to one exchange, or idle in the pool of its
 *             backend (LIFO, so the surplus ages out), or closing.
 *
 * One exchange, step by step:
 *   request head ── normalise, route (404), body limit (413), strip hop-by-hop fields,
 *   middleware (local answers: 401, 429, CORS...) ── pick a backend (503 when none) ──
 *   take a pooled connection or connect (502 on failure, after retries) ── write the head,
 *   then stream the body, re-framed, with backpressure ── response head (504 if it does
 *   not come), strip, middleware, re-frame for the client ── stream the body ── both ends
 *   complete: the upstream connection goes back to its pool, the client's waits for the
 *   next request (or closes).
 *
 * Buffers: every read lands in a pool chunk (common/buf.h). Every byte sent goes through
 * the worker's writer (wbatch.h): what one event produces for one peer leaves in one
 * writev, large body spans straight from their read chunk (which counts its holders in
 * `owner`), small ones copied, and what waits in a queued write is charged to its peer at
 * what it keeps alive. Nothing ever holds a whole body (but a route's request_buffering,
 * reqbuf.h): when what is queued for one side passes buffers.high_water, reading the other
 * stops until it falls below low_water; and no request is read from a client whose own
 * queue is past high_water (client_backlogged), so a client that never reads its answers
 * costs a bounded amount whatever it sends.
 *
 * libuv rules (see tcp_proxy.c): memory of a handle is freed only in its close callback;
 * a stream's pending writes complete (cancelled) before its close callback runs.
 *
 * The rooms, in the order an exchange passes through them (hproxy-int.h has what they
 * share: the objects above and the hp_ calls between rooms):
 *   hproxy.c     this file, the worker shell: the app's hooks (prepare, start, drain,
 *                force close, stop, release, control), accepting, the idle lists and their
 *                timers, the upstream pools' sweep timer, metrics. It owns no exchange logic.
 *   hclient.c    the client connection: reading on and off, backpressure, parsing what the
 *                client sends into the exchange, close and lingering close, its writes.
 *   hexchange.c  the exchange: hx_t storage and its one timer, the request head's decisions
 *                (route, limits, middleware), the request and response as they stream,
 *                exchange_done.
 *   hupstream.c  the upstream side: connections, connect and its timeout, the pool,
 *                attempt_failed (hretry.c decides), the request written upstream, buffering.
 *   hanswer.c    local answers (404, 413, 502...).
 *   hwrite.c     heads, body spans and chunk framing into the worker's writer (wbatch.c).
 * Pure decisions live beside them: h1*.c (parsing), router.c, chain.c (middleware),
 * upool.c (the pool's lists), hretry.c (retry or give up), reqbuf.c, trailers.c. */
#include "hproxy.h"
#include "04-http/hproxy-int.h"
#include "04-http/ppconf.h"
#include "04-http/tlsconf.h"

#include <stdlib.h>

#include "03-resilience/res.h"
#include "clock.h"
#include "error.h"

#define POOL_SWEEP_MS 100 /* upstream pools: surplus and idle timeouts are enforced this often */

/* 04's state, built by gw_http_prepare before any worker thread exists, read-only after. */
static hp_t *http_state(const gw_runtime_t *rt)
{
    return gw_runtime_layer(rt, 4);
}

/* ---- idle lists ------------------------------------------------------------------------------ */

void hp_list_unlink(hconn_t *c)
{
    hconn_t **head, **tail = NULL;
    if (c->list != NULL) {
        head = &c->list->head;
        tail = &c->list->tail;
    } else {
        head = &c->hw->busy;
    }
    if (c->prev != NULL)
        c->prev->next = c->next;
    else if (*head == c)
        *head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    else if (tail != NULL && *tail == c)
        *tail = c->prev;
    c->prev = c->next = NULL;
    c->list = NULL;
}

static void on_idle_timer(uv_timer_t *t);

/* Arms IL's timer for its oldest connection's deadline (or stops it: empty list). */
static void idle_arm(idle_list_t *il)
{
    if (il->head == NULL) {
        uv_timer_stop(&il->timer);
        return;
    }
    uint64_t now = uv_now(hp_loop(il->hw)), due = il->head->idle_since + il->timeout_ms;
    uv_timer_start(&il->timer, on_idle_timer, due > now ? due - now : 0, 0);
}

/* Puts C at the back of IL (its deadline is the latest). */
void hp_list_idle(hconn_t *c, idle_list_t *il)
{
    hp_list_unlink(c);
    c->list = il;
    c->idle_since = uv_now(hp_loop(c->hw));
    c->prev = il->tail;
    if (il->tail != NULL)
        il->tail->next = c;
    else
        il->head = c;
    il->tail = c;
    if (!uv_is_active((uv_handle_t *)&il->timer))
        idle_arm(il);
}

void hp_list_busy(hconn_t *c)
{
    hp_list_unlink(c);
    c->next = c->hw->busy;
    if (c->next != NULL)
        c->next->prev = c;
    c->hw->busy = c;
}

/* One timer per idle list: closes every connection whose time is up, oldest first. */
static void on_idle_timer(uv_timer_t *t)
{
    idle_list_t *il = t->data;
    uint64_t now = uv_now(hp_loop(il->hw));
    while (il->head != NULL && il->head->idle_since + il->timeout_ms <= now) {
        hconn_t *c = il->head;
        hp_list_unlink(c);
        if (il->kind == IDLE_HANDSHAKE)
            hp_tls_handshake_timeout(c);
        if (il->kind == IDLE_PROXY_HEADER)
            hp_pp_timeout(c);
        hp_client_close(c, false);
    }
    idle_arm(il);
}

/* see hproxy-int.h. A linear search: a worker has a handful of lists (one per distinct
 * timeout of each kind), and a connection looks its list up once per wait, not per byte. */
idle_list_t *hp_idle_list_for(hp_worker_t *hw, idle_kind_t kind, uint64_t timeout_ms)
{
    for (size_t i = 0; i < hw->nidle; i++)
        if (hw->idle[i]->kind == kind && hw->idle[i]->timeout_ms == timeout_ms)
            return hw->idle[i];
    if (hw->nidle == hw->idle_cap) {
        size_t cap = hw->idle_cap ? 2 * hw->idle_cap : 8;
        idle_list_t **v = realloc(hw->idle, cap * sizeof *v);
        if (v == NULL)
            return NULL;
        hw->idle = v;
        hw->idle_cap = cap;
    }
    idle_list_t *il = calloc(1, sizeof *il);
    if (il == NULL)
        return NULL;
    il->hw = hw;
    il->kind = kind;
    il->timeout_ms = timeout_ms;
    uv_timer_init(hp_loop(hw), &il->timer);
    il->timer.data = il;
    hw->idle[hw->nidle++] = il;
    return il;
}

/* see hproxy-int.h */
uint64_t hp_idle_timeout(const gw_http_listener_cfg_t *lc, idle_kind_t kind)
{
    switch (kind) {
    case IDLE_FRESH:
        return lc->head_timeout_ms;
    case IDLE_KEEPALIVE:
        return lc->keepalive_timeout_ms;
    case IDLE_HANDSHAKE:
        return lc->tls != NULL ? lc->tls->handshake_timeout_ms : 0;
    case IDLE_PROXY_HEADER:
        return lc->pp != NULL ? lc->pp->timeout_ms : 0;
    default:
        return 0;
    }
}

/* see hproxy-int.h */
bool hp_list_idle_kind(hconn_t *c, idle_kind_t kind)
{
    idle_list_t *il = hp_idle_list_for(c->hw, kind, hp_idle_timeout(hp_lcfg(c), kind));
    if (il == NULL) {
        hp_list_unlink(c); /* in no list: the caller closes it */
        return false;
    }
    hp_list_idle(c, il);
    return true;
}

/* Whether some http listener of G waits for KIND with TIMEOUT_MS. */
static bool idle_key_used(const gw_gen_t *g, idle_kind_t kind, uint64_t timeout_ms)
{
    for (size_t i = 0; g != NULL && i < g->nlis; i++) {
        const gw_http_listener_cfg_t *lc =
            g->lis[i].cfg->protocol == GW_PROTO_HTTP ? gw_http_listener_cfg(g->lis[i].cfg) : NULL;
        if (lc != NULL && hp_idle_timeout(lc, kind) == timeout_ms)
            return true;
    }
    return false;
}

static void on_idle_closed(uv_handle_t *h)
{
    free(h->data);
}

/* see hproxy-int.h */
void hp_idle_trim(hp_worker_t *hw, const gw_gen_t *g)
{
    size_t kept = 0;
    for (size_t i = 0; i < hw->nidle; i++) {
        idle_list_t *il = hw->idle[i];
        if (il->head != NULL || (g != NULL && idle_key_used(g, il->kind, il->timeout_ms))) {
            hw->idle[kept++] = il;
            continue;
        }
        uv_close((uv_handle_t *)&il->timer, on_idle_closed); /* frees IL */
    }
    hw->nidle = kept;
}

static void on_pool_sweep(uv_timer_t *t);

/* The sweep runs while any connection is pooled on this worker. */
void hp_pool_sweep_arm(hp_worker_t *hw)
{
    if (!uv_is_active((uv_handle_t *)&hw->pool_timer))
        uv_timer_start(&hw->pool_timer, on_pool_sweep, POOL_SWEEP_MS, 0);
}

/* Closes what the pools must not keep (gw_upool_cut), every POOL_SWEEP_MS: one timer for
 * every pooled connection of the worker, instead of a timer (and two heap operations per
 * request) each. It walks the generation serving now (borrowed for this turn), with each
 * upstream's keepalive settings in it: the pools are in the backend objects (hp_bslot), so
 * no array sized at startup is read. A backend a reload removed is in no later generation:
 * its pool was emptied when the worker followed that reload (http_worker_gen) and takes no
 * connection any more (hp_uconn_release). */
static void on_pool_sweep(uv_timer_t *t)
{
    hp_worker_t *hw = t->data;
    const gw_lb_table_t *tab = gw_lb_gen_table(gw_gen_current(hw->w->rt));
    uint64_t now = uv_now(hp_loop(hw));
    bool any = false;
    for (size_t i = 0; tab != NULL && i < tab->n; i++) {
        const gw_http_upstream_cfg_t *kc = gw_http_upstream_cfg(tab->ups[i].cfg);
        for (size_t j = 0; j < tab->ups[i].n; j++) {
            gw_upool_t *pool = &hp_bslot(tab->ups[i].m[j].b, hw->w->id)->pool;
            gw_upool_entry_t *cut = pool->head != NULL
                                        ? gw_upool_cut(pool, kc->max_idle, kc->idle_timeout_ms, now)
                                        : NULL;
            while (cut != NULL) {
                gw_upool_entry_t *e = cut;
                cut = e->next;
                e->next = NULL;
                hp_uconn_close(gw_upool_owner(e, uconn_t, pe), false);
            }
            any = any || pool->head != NULL;
        }
    }
    if (any)
        hp_pool_sweep_arm(hw);
}

/* Closes this worker's pooled connections: all of them, or (GONE_ONLY) those whose backend
 * a reload removed (hp_backend_poolable). It walks the worker's own list of upstream
 * connections rather than a generation's backends, so that a backend no generation lists
 * any more is found too (one added and removed again before this worker followed either
 * reload). */
static void close_pooled(hp_worker_t *hw, bool gone_only)
{
    for (uconn_t *u = hw->uconns, *next; u != NULL; u = next) {
        next = u->next; /* hp_uconn_close unlinks U only */
        if (!u->pe.pooled || (gone_only && hp_backend_poolable(hw, u->b)))
            continue;
        hp_uconn_close(u, false);
    }
}

/* ---- accepting ----------------------------------------------------------------------------- */

static bool admit_listener(hconn_t *c);

static void http_on_connection(gw_wlistener_t *wl)
{
    gw_worker_t *w = wl->worker;
    hp_worker_t *hw = &http_state(w->rt)->workers[w->id];
    hconn_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        /* Not a handle on the stack closed at once (its memory would be gone before its
         * close callback), and not left unaccepted (libuv 1.44 would stop watching the
         * listener for good): the runtime pauses the listener and binds it again. */
        gw_listener_pause(wl, UV_ENOMEM);
        return;
    }
    c->hw = hw;
    c->l = wl->listener;
    gw_listener_hold(c->l); /* dropped in client_free: C may outlive its listener's generations */
    gw_tcp_stream_init(&c->sock, &w->loop, &w->streams, hp_on_client_read, c);
    c->s = &c->sock.s; /* hp_tls_accept may put a TLS stream on top */
    gw_wdest_init(&c->out, c->s, &hp_client_ops);
    gw_worker_conn_add(w);
    if (gw_tcp_stream_accept(&c->sock, (uv_stream_t *)&wl->tcp) != 0) {
        hp_client_close(c, false);
        return;
    }
    int len = sizeof c->peer;
    if (gw_stream_peer(&c->sock.s, &c->peer.sa, &len) != 0)
        c->peer.sa.sa_family = AF_UNSPEC;
    if (hp_lcfg(c)->pp != NULL) {
        /* PROXY: max_connections now (a header in waiting holds memory); the per-client
         * admit hook once the header said who the client is (hproxyproto.h). */
        if (!admit_listener(c) || !hp_pp_accept(c)) {
            hp_client_close(c, true);
            return;
        }
    } else if (!hp_client_start(c)) {
        return;
    }
    hp_client_set_reading(c, true);
}

/* max_connections: C counts against its listener's from now on. */
static bool admit_listener(hconn_t *c)
{
    if (!gw_listener_admit(c->l))
        return false;
    c->admitted = true;
    gw_counter_inc(&c->hw->stats->connections);
    uv_tcp_nodelay(&c->sock.tcp, 1);
    return true;
}

/* see hproxyproto.h: the client's address is final (the socket's, or a PROXY header's). */
bool hp_client_start(hconn_t *c)
{
    hp_worker_t *hw = c->hw;
    const gw_tcp_picker_t *p = hw->hp->picker;
    if (p->admit != NULL && !p->admit(p->ctx, hw->w, c->l, &c->peer.sa)) {
        hp_client_close(c, true);
        return false;
    }
    if (!c->admitted && !admit_listener(c)) {
        hp_client_close(c, true);
        return false;
    }
    if (hp_tls_accept(c) != 0) {  /* TLS or not: the generation published now says */
        hp_client_close(c, true); /* counted by hp_tls_accept */
        return false;
    }
    c->state = C_IDLE;
    bool tls = c->s != &c->sock.s;
    /* The handshake's timeout is its credential's (the generation that chose TLS). */
    idle_list_t *il = tls ? hp_idle_list_for(hw, IDLE_HANDSHAKE, hp_tls_handshake_ms(c)) : NULL;
    if (tls && il != NULL)
        hp_list_idle(c, il);
    if (tls ? il == NULL : !hp_list_idle_kind(c, IDLE_FRESH)) {
        hp_client_close(c, true);
        return false;
    }
    return true;
}

/* ---- the worker --------------------------------------------------------------------------- */

static int http_worker_start(gw_worker_t *w)
{
    int rc = gw_res_worker_start(w);
    if (rc != 0)
        return rc;
    hp_t *hp = http_state(w->rt);
    hp_worker_t *hw = &hp->workers[w->id];
    hw->hp = hp;
    hw->w = w;
    hw->rng = 0x243f6a8885a308d3ull ^ ((uint64_t)w->id << 32) ^ gw_clock_mono_ns(&gw_clock_system);
    /* No idle list yet: each is made when a connection first waits with its timeout. */
    if (gw_wb_init(&hw->wb, &w->bufs, gw_chunk_size(&w->bufs)) != 0)
        return GW_ENOMEM;
    uv_timer_init(&w->loop, &hw->pool_timer);
    hw->pool_timer.data = hw;
    hw->started = true;
    return 0;
}

static void close_pools(hp_worker_t *hw)
{
    close_pooled(hw, false);
}

/* Closes every idle connection (ONLY_REMOVED: those of listeners a reload removed). A
 * close takes the connection out of its list and never frees a list (only hp_idle_trim
 * does), so the walk may go on from the next one. */
static void close_idle_of(hp_worker_t *hw, bool only_removed)
{
    for (size_t i = 0; i < hw->nidle; i++)
        for (hconn_t *c = hw->idle[i]->head, *next; c != NULL; c = next) {
            next = c->next;
            if (!only_removed || atomic_load_explicit(&c->l->removed, memory_order_relaxed))
                hp_client_close(c, false);
        }
}

static void close_idle(hp_worker_t *hw)
{
    close_idle_of(hw, false);
}

/* The worker follows generation G: idle connections of listeners a reload removed close
 * (busy ones end with their exchange: hp_draining), then the lists no listener of G waits
 * in any more go. */
static void http_worker_gen(gw_worker_t *w, const gw_gen_t *g, const gw_gen_t *prev)
{
    hp_worker_t *hw = &http_state(w->rt)->workers[w->id];
    if (prev == NULL || !hw->started)
        return;
    close_idle_of(hw, true);
    hp_idle_trim(hw, g);
    /* Backends G lists get this worker's stamp (its own slot in each: no race); the pooled
     * connections of any other close now, and they pool none any more. */
    const gw_lb_table_t *tab = gw_lb_gen_table(g);
    for (size_t i = 0; tab != NULL && i < tab->n; i++)
        for (size_t j = 0; j < tab->ups[i].n; j++)
            hp_bslot(tab->ups[i].m[j].b, w->id)->listed = g->id;
    hw->listed = g->id;
    close_pooled(hw, true);
}

static void http_worker_drain(gw_worker_t *w)
{
    gw_res_worker_drain(w);
    hp_worker_t *hw = &http_state(w->rt)->workers[w->id];
    if (!hw->started)
        return;
    /* Idle connections go now; busy ones finish their exchange and close after it (their
     * response carries Connection: close). */
    close_idle(hw);
    close_pools(hw);
}

/* drain_timeout passed since a reload removed L: its connections on this worker close now,
 * tcp pairs (01's) and http connections alike (a tunnel, a slow exchange). */
static void http_worker_listener_gone(gw_worker_t *w, gw_listener_t *l)
{
    gw_res_worker_listener_gone(w, l);
    hp_worker_t *hw = &http_state(w->rt)->workers[w->id];
    if (!hw->started)
        return;
    for (hconn_t *c = hw->busy, *next; c != NULL; c = next) {
        next = c->next;
        if (c->l != l)
            continue;
        if (c->x != NULL && c->x->chain.end == NULL)
            c->x->chain.end = "drain_timeout";
        hp_client_close(c, true);
    }
}

static void http_worker_force_close(gw_worker_t *w)
{
    gw_res_worker_force_close(w);
    hp_worker_t *hw = &http_state(w->rt)->workers[w->id];
    if (!hw->started)
        return;
    close_idle(hw);
    while (hw->busy != NULL) {
        hconn_t *c = hw->busy;
        /* The deadline cut it, not the client: say so, before the head too, where the 499
         * alone would read as a client that left. */
        if (c->x != NULL && c->x->chain.end == NULL)
            c->x->chain.end = "drain_timeout";
        hp_client_close(c, true);
    }
    close_pools(hw);
}

static void on_worker_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void http_worker_stop(gw_worker_t *w)
{
    hp_worker_t *hw = &http_state(w->rt)->workers[w->id];
    if (hw->started) {
        close_idle(hw);
        close_pools(hw);
        while (hw->uconns != NULL)
            hp_uconn_close(hw->uconns, true);
        hp_idle_trim(hw, NULL); /* every list is empty now: all close */
        uv_close((uv_handle_t *)&hw->pool_timer, on_worker_handle_closed);
        while (hw->hx_free != NULL) {
            hx_t *x = hw->hx_free;
            hw->hx_free = x->next_free;
            hp_hx_free_storage(x);
            uv_close((uv_handle_t *)&x->timer, hp_on_hx_timer_closed);
        }
        hw->started = false;
    }
    gw_res_worker_stop(w);
}

/* The handles closed above are in memory this worker frees only now that its loop ran
 * them: the runtime calls stats_free after joining, so the lists are freed then. */
static void hw_free(hp_worker_t *hw)
{
    free(hw->idle); /* the lists themselves went with their timers' close callbacks */
    free(hw->stats);
    gw_wb_free(&hw->wb); /* the writes it lent requests to completed when the loop closed */
}

static void http_on_connection_any(gw_wlistener_t *wl)
{
    if (wl->listener->cfg->protocol == GW_PROTO_HTTP)
        http_on_connection(wl);
    else
        gw_res_on_connection(wl); /* a tcp listener: 03's (and below) as in gw03 */
}

static void http_on_reopen(gw_runtime_t *rt)
{
    /* The serving generation's files: an older one still finishing requests writes to the
     * file it opened until it is freed, a moment later. */
    gw_chain_reopen(hp_gen_chain(gw_gen_current(rt)));
    gw_info("SIGUSR1: access log files reopened");
}

/* Sums one counter over the workers. */
#define HTTP_SUM(hp, field)                                                                        \
    ({                                                                                             \
        uint64_t s_ = 0;                                                                           \
        for (unsigned i_ = 0; i_ < (hp)->cfg->workers; i_++)                                       \
            s_ += gw_counter_get(&(hp)->workers[i_].stats->field);                                 \
        s_;                                                                                        \
    })

/* 03's families first, then 04's. */
static void http_metrics(gw_runtime_t *rt, gw_prom_t *p)
{
    gw_res_metrics(rt, p);
    hp_t *hp = http_state(rt);
    gw_prom_family(p, "gw_http_connections_total", "HTTP client connections accepted",
                   GW_PROM_COUNTER);
    gw_prom_sample_u64(p, "gw_http_connections_total", NULL, HTTP_SUM(hp, connections));
    gw_prom_family(p, "gw_http_requests_total", "HTTP request heads received", GW_PROM_COUNTER);
    gw_prom_sample_u64(p, "gw_http_requests_total", NULL, HTTP_SUM(hp, requests));
    gw_prom_family(p, "gw_http_responses_total", "HTTP responses sent, by class", GW_PROM_COUNTER);
    for (int k = 0; k < GW_HMETRICS_NCLASSES; k++) {
        const char *lab[] = {"class", gw_hmetrics_class_name(k), NULL};
        gw_prom_sample_u64(p, "gw_http_responses_total", lab, HTTP_SUM(hp, responses[k]));
    }
    gw_prom_family(p, "gw_http_local_errors_total",
                   "Error answers the gateway made itself (4xx/5xx not from an upstream)",
                   GW_PROM_COUNTER);
    gw_prom_sample_u64(p, "gw_http_local_errors_total", NULL, HTTP_SUM(hp, local_errors));
    gw_prom_family(p, "gw_http_upstream_requests_total",
                   "Requests sent upstream, by connection: new or reused from the pool",
                   GW_PROM_COUNTER);
    const char *fresh[] = {"connection", "new", NULL}, *reused[] = {"connection", "reused", NULL};
    gw_prom_sample_u64(p, "gw_http_upstream_requests_total", fresh,
                       HTTP_SUM(hp, upstream_connects));
    gw_prom_sample_u64(p, "gw_http_upstream_requests_total", reused, HTTP_SUM(hp, upstream_reuses));
    gw_prom_family(p, "gw_http_retries_total", "Requests sent again after a failed attempt",
                   GW_PROM_COUNTER);
    gw_prom_sample_u64(p, "gw_http_retries_total", NULL, HTTP_SUM(hp, retries));
    gw_prom_family(p, "gw_tunnels_total", "Upgrade tunnels opened (a 101 accepted)",
                   GW_PROM_COUNTER);
    gw_prom_sample_u64(p, "gw_tunnels_total", NULL, HTTP_SUM(hp, tunnels));
    int64_t open = 0;
    for (unsigned i = 0; i < hp->cfg->workers; i++)
        open += gw_gauge_get(&hp->workers[i].stats->tunnels_active);
    gw_prom_family(p, "gw_tunnels_active", "Upgrade tunnels open now", GW_PROM_GAUGE);
    gw_prom_sample_i64(p, "gw_tunnels_active", NULL, open);
    /* The generation serving now (borrowed: the control thread is the one that would free
     * it): the listeners by name, the route and upstream TLS series, the backends. */
    const gw_gen_t *g = gw_gen_current(rt);
    const hp_gen_t *hg = g->layers[4];
    gw_hmetrics_write(hp->hm, hg->hm, gw_lb_gen_table(g), p); /* by route, by backend */
    gw_passthrough_metrics(hp->pt, g, p);
    hp_utls_metrics(hp->utls, hg->utls, p); /* gw_upstream_tls_* */
    hp_tls_metrics(hp_gen_tls(g), g, p);    /* gw_tls_handshakes_total, ... */
    hp_pp_metrics(hp->pp, g, p);            /* gw_proxy_protocol_total */
    gw_chain_metrics(hp_gen_chain(g), p);   /* gw_access_log_lost_total{file} */
}

static void log_tls_warning(void *ctx, const char *msg)
{
    (void)ctx;
    gw_warn("%s", msg);
}

/* 04's extension of a new backend (zeroed): empty pools, no TLS session, zero counts. */
static void backend_init(void *ctx, gw_backend_t *b, void *ext)
{
    (void)b;
    ((hp_backend_t *)ext)->nworkers = (unsigned)(uintptr_t)ctx;
}

/* A backend is freed (by 02, on the control thread, once nobody holds it: no connection is
 * pooled in it any more). Its TLS sessions hold master secrets. */
static void backend_fini(void *ctx, gw_backend_t *b, void *ext)
{
    (void)ctx;
    const hp_backend_t *hb = ext;
    for (unsigned w = 0; w < hb->nworkers; w++)
        gw_tls_session_forget(&hp_bslot(b, w)->tls);
}

/* Where hmetrics finds worker W's counters of backend B. */
static const gw_hmetrics_backend_t *backend_counters(const gw_backend_t *b, unsigned w)
{
    return &hp_bslot(b, w)->res;
}

/* see hproxy.h */
int gw_http_prepare(const gw_config_t *cfg, void **layers)
{
    int rc = gw_res_prepare(cfg, layers);
    if (rc != 0)
        return rc;
    hp_t *hp = calloc(1, sizeof *hp);
    char err[256] = "";
    if (hp != NULL) {
        hp->cfg = cfg;
        hp->lb = layers[2];
        hp->picker = layers[1];
        hp->workers = calloc(cfg->workers, sizeof *hp->workers);
        hp->hm = gw_hmetrics_new(cfg->workers, backend_counters);
        hp->utls = hp_utls_new(cfg->workers);
    }
    /* The counters exist before any thread, so a scrape never races with their creation. */
    bool stats_ok = hp != NULL && hp->workers != NULL;
    for (unsigned i = 0; stats_ok && i < cfg->workers; i++)
        stats_ok = (hp->workers[i].stats = calloc(1, sizeof *hp->workers[i].stats)) != NULL;
    int pt_err = 0, tls_err = 0, pp_err = 0;
    bool made = stats_ok && hp->hm != NULL && hp->utls != NULL;
    /* The three layer-1 wrappers go in whatever the startup config has, so that a reload
     * may give a tcp listener tls_passthrough, tls or proxy_protocol. */
    if (made)
        hp->pt = gw_passthrough_prepare(cfg, layers, &pt_err); /* after hp->picker: 02's */
    if (made && pt_err == 0 && (hp->tls = hp_tls_new(cfg->workers)) == NULL)
        tls_err = GW_ENOMEM;
    if (made && pt_err == 0 && tls_err == 0)
        hp_tls_tcp_picker(hp->tls, layers); /* tcp listeners' tls: 01's wrap hook */
    if (made && pt_err == 0 && tls_err == 0)
        hp->pp = hp_pp_prepare(cfg, cfg->workers, &pp_err);
    if (made && pt_err == 0 && tls_err == 0 && pp_err == 0)
        hp_pp_tcp_picker(hp->pp, layers); /* tcp listeners: 01's header and hello */
    if (!made || pt_err != 0 || tls_err != 0 || pp_err != 0) {
        gw_error("milestone 04 setup failed: %s", err[0] ? err : "out of memory");
        if (hp != NULL) {
            gw_hmetrics_free(hp->hm);
            hp_utls_free(hp->utls);
            gw_passthrough_free(hp->pt);
            hp_tls_free(hp->tls);
            hp_pp_free(hp->pp);
            for (unsigned i = 0; hp->workers != NULL && i < cfg->workers; i++)
                free(hp->workers[i].stats);
            free(hp->workers);
            free(hp);
        }
        gw_res_release(layers);
        return GW_ENOMEM;
    }
    /* Every backend 02 builds from now on carries 04's per-worker slots (hp_bslot_t). The
     * context is the worker count, not HP: a backend may be freed after HP (the last
     * tables go with 02's release, after ours). */
    gw_lb_backend_ext(hp->lb, 4, HP_BACKEND_SIZE(cfg->workers), backend_init, backend_fini,
                      (void *)(uintptr_t)cfg->workers);
    layers[4] = hp;
    gw_tls_config_warnings(cfg, log_tls_warning, NULL); /* every start: verify: false... */
    return 0;
}

/* see hproxy.h */
void gw_http_release(void **layers)
{
    hp_t *hp = layers[4];
    layers[4] = NULL;
    if (hp != NULL) {
        for (unsigned i = 0; i < hp->cfg->workers; i++)
            hw_free(&hp->workers[i]);
        gw_hmetrics_free(hp->hm);
        gw_passthrough_free(hp->pt);
        hp_utls_free(hp->utls);
        hp_tls_free(hp->tls);
        hp_pp_free(hp->pp);
        free(hp->workers);
        free(hp);
    }
    gw_res_release(layers);
}

static int http_control_start(gw_runtime_t *rt)
{
    return gw_res_control_start(rt);
}

static void http_control_stop(gw_runtime_t *rt)
{
    gw_res_control_stop(rt);
}

/* 04's part of generation G: the middleware chain for G's routes (jwt keys are read, rate
 * limit tables and breakers made). Errors name the generation's file. */
static int http_gen_build(gw_runtime_t *rt, gw_gen_t *g, const gw_gen_t *prev, FILE *errs)
{
    int rc = gw_res_gen_build(rt, g, prev, errs);
    if (rc != 0)
        return rc;
    hp_gen_t *hg = calloc(1, sizeof *hg);
    char err[256] = "";
    if (hg != NULL) /* rate limit tables, breakers, retry budgets carried by route name */
        hg->chain =
            gw_chain_next(g->cfg, prev != NULL ? hp_gen_chain(prev) : NULL, err, sizeof err);
    if (hg == NULL || hg->chain == NULL) {
        fprintf(errs, "%s: %s\n", g->cfg->path ? g->cfg->path : "-",
                err[0] ? err : "out of memory");
        free(hg);
        return GW_ENOMEM;
    }
    g->layers[4] = hg;
    /* Listeners' TLS credentials: certificates and keys of G's config, caches carried. */
    const hp_gen_t *hprev = prev != NULL ? prev->layers[4] : NULL;
    int tls_err = 0;
    hg->tls = hp_tls_gen_build(http_state(rt)->tls, g->cfg, hprev != NULL ? hprev->tls : NULL, errs,
                               &tls_err);
    if (hg->tls == NULL)
        return tls_err; /* gen_free runs on G */
    /* Counters by listener name: found again for a name seen before (carried). */
    if (hp_pp_gen_names(http_state(rt)->pp, g->cfg) != 0 ||
        gw_passthrough_gen_names(http_state(rt)->pt, g->cfg) != 0) {
        fprintf(errs, "%s: out of memory\n", g->cfg->path ? g->cfg->path : "-");
        return GW_ENOMEM;
    }
    /* Labelled metrics: this generation's view of the route and upstream TLS series, carried
     * by name from the generations before it (hmetrics.h). */
    hp_t *hp = http_state(rt);
    hg->hm = gw_hmetrics_gen_new(hp->hm, g->cfg);
    hg->utls = hp_utls_gen_new(hp->utls, g->cfg);
    if (hg->hm == NULL || hg->utls == NULL) {
        fprintf(errs, "%s: out of memory\n", g->cfg->path ? g->cfg->path : "-");
        return GW_ENOMEM; /* g->layers[4] is set: http_gen_free frees what was made */
    }
    return 0;
}

static void http_gen_applied(gw_runtime_t *rt, const gw_gen_t *g, const gw_gen_t *prev)
{
    gw_res_gen_applied(rt, g, prev);
}

/* Top down: 04's slot, then 03's and below. */
static void http_gen_free(gw_runtime_t *rt, gw_gen_t *g)
{
    hp_gen_t *hg = g->layers[4];
    if (hg != NULL) {
        gw_chain_free(hg->chain);
        hp_tls_gen_free(hg->tls); /* connections keep their credentials */
        gw_hmetrics_gen_free(http_state(rt)->hm, hg->hm);
        hp_utls_gen_free(http_state(rt)->utls, hg->utls);
        free(hg);
        g->layers[4] = NULL;
    }
    gw_res_gen_free(rt, g);
}

/* Every hook goes to 03's (gw_res_app), through its functions; on_reopen and worker_gen are
 * 04's own. */
const gw_app_t gw_http_app = {
    .gen_build = http_gen_build,
    .gen_free = http_gen_free,
    .gen_applied = http_gen_applied,
    .worker_gen = http_worker_gen,
    .worker_start = http_worker_start,
    .on_connection = http_on_connection_any,
    .worker_drain = http_worker_drain,
    .worker_force_close = http_worker_force_close,
    .worker_listener_gone = http_worker_listener_gone,
    .worker_stop = http_worker_stop,
    .control_start = http_control_start,
    .control_stop = http_control_stop,
    .on_reopen = http_on_reopen,
    .metrics = http_metrics,
};
