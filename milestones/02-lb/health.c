/* health.c - see health.h.
 *
 * One probe per backend owns a timer that alternates between two jobs: waiting for the next
 * check, then bounding the check in flight (its timeout). A check is a heap-allocated
 * `check_t` that owns one TCP handle. libuv rules we live by (STYLE.md section 3):
 *  - a check is freed only in its socket's close callback; closing a connecting or writing
 *    socket completes those requests with UV_ECANCELED first, so their callbacks still see
 *    the check and must ignore it (`done`);
 *  - the result is applied only once the socket is closed, and the next check is scheduled
 *    from there, so two checks of one backend never overlap;
 *  - `open_handles` counts every handle initialised and not yet closed; once stopping, the
 *    close callback that brings it to 0 runs `done` and frees the checker.
 * Allocating per check is fine: this runs on the control thread, seconds apart. */
#include "health.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "log.h"
#include "outlier.h"
#include "proxyproto.h"
#include "rand.h"

/* A status line is "HTTP/1.1 200 OK" plus a reason phrase; a peer that sends a kilobyte
 * without a line end is not answering HTTP, and the bound keeps a check's memory fixed. */
#define STATUS_BUF 1024
#define WHY_LEN 96

#define REQUEST_FMT                                                                                \
    "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: gw-health\r\nConnection: close\r\n\r\n"

typedef struct probe_s probe_t;

typedef struct check_s {
    probe_t *p;
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    bool connected; /* the connect succeeded (a timeout now means "no status line") */
    bool done;      /* a result is known or the check was aborted: ignore late callbacks */
    size_t len;     /* bytes of the response in buf */
    char buf[STATUS_BUF];
} check_t;

/* The result of the check in flight, kept until its socket is closed. */
typedef struct outcome_s {
    bool ok;
    int err;
    unsigned status;
    char why[WHY_LEN];
} outcome_t;

struct probe_s {
    gw_hc_t *hc;
    gw_backend_t *b;
    size_t index;
    uv_timer_t timer; /* next check, then the timeout of the check in flight */
    gw_hc_fsm_t fsm;
    check_t *check; /* in flight (its socket may be closing), or NULL */
    outcome_t last;
    char *request; /* http: built once, lives as long as the probe (writes point into it) */
    size_t request_len;
};

struct gw_hc_s {
    uv_loop_t *loop;
    gw_hc_cfg_t cfg; /* cfg.path is our own copy */
    char *upstream;
    uint64_t rng; /* splitmix64 state for the timers' jitter */
    size_t n;
    probe_t *probes; /* [n] */
    unsigned open_handles;
    bool stopping;
    void (*done)(void *arg);
    void *done_arg;
    gw_hc_result_cb observer;
    void *observer_arg;
};

static void start_check(probe_t *p);

/* ---- the state machine ----------------------------------------------------------------- */

/* see health.h */
void gw_hc_fsm_init(gw_hc_fsm_t *f, bool healthy)
{
    *f = (gw_hc_fsm_t){.healthy = healthy};
}

/* LAB 02: health thresholds */
/* Why runs of results and not single results: one lost SYN, one GC pause or one busy
 * moment fails a single check on a perfectly good backend. Reacting to it would take the
 * backend out and put it back a check later (flapping), moving its traffic around each
 * time. Asking for `fall` failures in a row before declaring it down, and `rise` successes
 * in a row before trusting it again, filters out such blips; because any opposite result
 * restarts the run, a backend that only fails now and then never changes state, while one
 * that is really down is out after fall * interval. The runs saturate instead of wrapping. */
bool gw_hc_fsm_observe(gw_hc_fsm_t *f, bool ok, unsigned rise, unsigned fall)
{
    if (ok) {
        f->failures = 0;
        if (f->successes < UINT_MAX)
            f->successes++;
        if (!f->healthy && f->successes >= rise) {
            f->healthy = true;
            return true;
        }
        return false;
    }
    f->successes = 0;
    if (f->failures < UINT_MAX)
        f->failures++;
    if (f->healthy && f->failures >= fall) {
        f->healthy = false;
        return true;
    }
    return false;
}
/* END LAB */

/* ---- pure helpers ---------------------------------------------------------------------- */

/* see health.h */
int gw_hc_parse_status(const char *buf, size_t len, unsigned *status)
{
    /* The first 13 bytes have a fixed shape (d: a digit, E: space or line end). Checking
     * them as they arrive rejects another protocol's greeting at once. */
    static const char shape[] = "HTTP/1.d dddE";
    const size_t fixed = sizeof shape - 1;
    if (len > INT_MAX)
        len = INT_MAX;
    for (size_t i = 0; i < len && i < fixed; i++) {
        char ch = buf[i], want = shape[i];
        bool good = want == 'd'   ? ch >= '0' && ch <= '9'
                    : want == 'E' ? ch == ' ' || ch == '\r' || ch == '\n'
                                  : ch == want;
        if (!good)
            return GW_EINVAL;
    }
    for (size_t i = fixed - 1; i < len; i++) { /* the reason phrase, up to the line end */
        unsigned char ch = (unsigned char)buf[i];
        if (ch == '\n') {
            *status = (unsigned)(buf[9] - '0') * 100u + (unsigned)(buf[10] - '0') * 10u +
                      (unsigned)(buf[11] - '0');
            return (int)(i + 1);
        }
        if (ch == '\r' && i + 1 < len && buf[i + 1] != '\n')
            return GW_EINVAL; /* a CR is only allowed as the first half of CRLF */
        if ((ch < 0x20 && ch != '\t' && ch != '\r') || ch == 0x7f)
            return GW_EINVAL;
    }
    return 0;
}

/* see health.h */
uint64_t gw_hc_delay(uint64_t interval_ms, bool first, uint64_t *rng)
{
    /* Without jitter, checks started together stay in step forever: every backend (and a
     * host that runs several of them) is hit in one burst per interval. The first check
     * spreads them over a whole interval; +/- 10% afterwards keeps them from drifting back
     * together. The modulo's bias (2^64 is no multiple of the range) is negligible here. */
    uint64_t r = gw_rand_next(rng);
    if (first)
        return interval_ms > 0 ? r % interval_ms : 0;
    uint64_t tenth = interval_ms / 10;
    return interval_ms - tenth + r % (2 * tenth + 1);
}

/* ---- applying a result ----------------------------------------------------------------- */

/* The state machine flipped: tell the workers (backend->health) and the operator. */
static void publish(probe_t *p)
{
    gw_hc_t *hc = p->hc;
    int want = p->fsm.healthy ? GW_HEALTH_HEALTHY : GW_HEALTH_UNHEALTHY;
    int cur = atomic_load(&p->b->health);
    /* A compare-and-swap, not a store: DRAINING is set by whoever removes the backend
     * (05's registry) and must win over anything a check finds. */
    do {
        if (cur == GW_HEALTH_DRAINING) {
            gw_debug("upstream '%s': backend %s is draining; health check verdict %s ignored",
                     hc->upstream, p->b->name, gw_health_name((gw_health_t)want));
            return;
        }
    } while (!atomic_compare_exchange_weak(&p->b->health, &cur, want));
    if (p->fsm.healthy) {
        gw_info("upstream '%s': backend %s is HEALTHY again after %u passed checks", hc->upstream,
                p->b->name, p->fsm.successes);
    } else
        gw_warn("upstream '%s': backend %s is now UNHEALTHY after %u failed checks (last: %s)",
                hc->upstream, p->b->name, p->fsm.failures, p->last.why);
}

/* The check's socket is closed: feed its outcome to the state machine and the observer. */
static void record(probe_t *p)
{
    gw_hc_t *hc = p->hc;
    const outcome_t *o = &p->last;
    bool changed = gw_hc_fsm_observe(&p->fsm, o->ok, hc->cfg.rise, hc->cfg.fall);
    if (!o->ok)
        gw_debug("upstream '%s': health check of %s failed: %s", hc->upstream, p->b->name, o->why);
    if (changed)
        publish(p);
    /* A pass ends a passive ejection (Envoy's successful_active_health_check_uneject_host):
     * every pass, not only the flip to healthy. A backend restarted within fall x interval of
     * its failures never looked unhealthy to the checks, and used to stay out for the whole
     * ejection (30 s and more) although every probe found it working. */
    if (o->ok && hc->cfg.uneject_on_pass &&
        gw_outlier_uneject(p->b, gw_clock_mono_ms(&gw_clock_system)))
        gw_info("upstream '%s': backend %s passed an active check: passive ejection ended",
                hc->upstream, p->b->name);
    if (hc->observer != NULL) {
        gw_hc_result_t r = {.index = p->index,
                            .backend = p->b,
                            .ok = o->ok,
                            .changed = changed,
                            .healthy = p->fsm.healthy,
                            .err = o->err,
                            .status = o->status,
                            .why = o->why};
        hc->observer(hc->observer_arg, &r); /* may stop the checker */
    }
}

/* ---- closing and freeing --------------------------------------------------------------- */

static void hc_free(gw_hc_t *hc)
{
    for (size_t i = 0; hc->probes != NULL && i < hc->n; i++)
        free(hc->probes[i].request);
    free(hc->probes);
    free(hc->cfg.path);
    free(hc->upstream);
    free(hc);
}

/* One handle finished closing. The last one of a stopping checker ends it. */
static void handle_closed(gw_hc_t *hc)
{
    hc->open_handles--;
    if (hc->stopping && hc->open_handles == 0) {
        if (hc->done != NULL)
            hc->done(hc->done_arg);
        hc_free(hc);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    probe_t *p = h->data;
    handle_closed(p->hc);
}

static void on_probe_timer(uv_timer_t *t)
{
    start_check(t->data);
}

/* Arms the probe's timer for its next check. */
static void schedule(probe_t *p, bool first)
{
    gw_hc_t *hc = p->hc;
    uv_timer_start(&p->timer, on_probe_timer, gw_hc_delay(hc->cfg.interval_ms, first, &hc->rng), 0);
}

static void on_check_closed(uv_handle_t *h)
{
    check_t *c = h->data;
    probe_t *p = c->p;
    gw_hc_t *hc = p->hc;
    free(c);
    p->check = NULL;
    if (hc->stopping) { /* aborted by gw_hc_stop: the result is dropped */
        handle_closed(hc);
        return;
    }
    hc->open_handles--; /* never the last: the probes' timers are open until stopping */
    record(p);
    if (!hc->stopping) /* the observer may have stopped us */
        schedule(p, false);
}

/* The check's outcome is known: keep it and close the socket; record() runs once closed.
 * Closing right after the status line, with the rest of the response unread, makes the
 * kernel end the connection with a RST instead of a FIN: fine for a check, which has
 * nothing more to say, and it spares our side TIME_WAIT. */
__attribute__((format(printf, 5, 6))) static void
finish_check(check_t *c, bool ok, int err, unsigned status, const char *fmt, ...)
{
    probe_t *p = c->p;
    va_list ap;
    c->done = true;
    uv_timer_stop(&p->timer);
    p->last.ok = ok;
    p->last.err = err;
    p->last.status = status;
    va_start(ap, fmt);
    vsnprintf(p->last.why, sizeof p->last.why, fmt, ap);
    va_end(ap);
    uv_close((uv_handle_t *)&c->tcp, on_check_closed);
}

/* ---- one check ------------------------------------------------------------------------- */

static void on_check_timeout(uv_timer_t *t)
{
    probe_t *p = t->data;
    check_t *c = p->check;
    if (c == NULL || c->done)
        return;
    unsigned long long ms = (unsigned long long)p->hc->cfg.timeout_ms;
    if (c->connected)
        finish_check(c, false, UV_ETIMEDOUT, 0, "no status line within %llu ms", ms);
    else
        finish_check(c, false, UV_ETIMEDOUT, 0, "connect timed out after %llu ms", ms);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    check_t *c = h->data;
    (void)suggested;
    /* Never full here: a full buffer ends the check (on_read), and a closing handle is
     * not read from. */
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - c->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    check_t *c = s->data;
    gw_hc_cfg_t *cfg = &c->p->hc->cfg;
    unsigned status = 0;
    (void)buf;
    if (c->done || nread == 0)
        return;
    if (nread < 0) {
        if (nread == UV_EOF)
            finish_check(c, false, UV_EOF, 0, "connection closed before a status line");
        else
            finish_check(c, false, (int)nread, 0, "%s", uv_strerror((int)nread));
        return;
    }
    c->len += (size_t)nread;
    int rc = gw_hc_parse_status(c->buf, c->len, &status);
    if (rc < 0)
        finish_check(c, false, GW_EINVAL, 0, "malformed status line");
    else if (rc == 0 && c->len == sizeof c->buf)
        finish_check(c, false, GW_EINVAL, 0, "no status line in the first %zu bytes", c->len);
    else if (rc > 0 && status >= cfg->status_lo && status <= cfg->status_hi)
        finish_check(c, true, 0, status, "%s", "");
    else if (rc > 0)
        finish_check(c, false, 0, status, "status %u", status);
}

static void on_write(uv_write_t *req, int status)
{
    check_t *c = req->data;
    if (c->done || status == 0)
        return;
    finish_check(c, false, status, 0, "sending the request: %s", uv_strerror(status));
}

static void on_connect(uv_connect_t *req, int status)
{
    check_t *c = req->data;
    probe_t *p = c->p;
    if (c->done) /* aborted (UV_ECANCELED): the socket is closing */
        return;
    if (status < 0) {
        finish_check(c, false, status, 0, "%s", uv_strerror(status));
        return;
    }
    c->connected = true;
    if (p->hc->cfg.type == GW_HC_TCP) {
        if (p->request != NULL) { /* the PROXY header: a few bytes into an empty send buffer */
            uv_buf_t hdr = uv_buf_init(p->request, (unsigned)p->request_len);
            (void)uv_try_write((uv_stream_t *)&c->tcp, &hdr, 1);
        }
        finish_check(c, true, 0, 0, "%s", "");
        return;
    }
    uv_buf_t out = uv_buf_init(p->request, (unsigned)p->request_len);
    c->write_req.data = c;
    int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &out, 1, on_write);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc != 0)
        finish_check(c, false, rc, 0, "%s", uv_strerror(rc));
}

/* The probe's timer fired: open a connection, and let the same timer bound the check. */
static void start_check(probe_t *p)
{
    gw_hc_t *hc = p->hc;
    check_t *c = calloc(1, sizeof *c);
    /* Out of memory says nothing about the backend: skip this round rather than count it. */
    if (c == NULL || uv_tcp_init(hc->loop, &c->tcp) != 0) {
        free(c);
        gw_warn("upstream '%s': health check of %s skipped: out of memory", hc->upstream,
                p->b->name);
        schedule(p, false);
        return;
    }
    hc->open_handles++;
    c->p = p;
    c->tcp.data = c;
    c->connect_req.data = c;
    p->check = c;
    p->last = (outcome_t){0};
    uv_timer_start(&p->timer, on_check_timeout, hc->cfg.timeout_ms, 0);
    int rc = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&p->b->addr.ss,
                            on_connect);
    if (rc != 0) /* e.g. out of file descriptors: the callback will never run */
        finish_check(c, false, rc, 0, "%s", uv_strerror(rc));
}

/* ---- starting and stopping ------------------------------------------------------------- */

/* A request target we can put on the request line as is: no way to smuggle a header. */
static bool path_ok(const char *path)
{
    if (path == NULL)
        return true;
    if (path[0] != '/')
        return false;
    for (const unsigned char *s = (const unsigned char *)path; *s; s++)
        if (*s <= 0x20 || *s == 0x7f)
            return false;
    return true;
}

static bool cfg_ok(const gw_hc_cfg_t *cfg)
{
    return (cfg->type == GW_HC_TCP || cfg->type == GW_HC_HTTP) && cfg->interval_ms > 0 &&
           cfg->timeout_ms > 0 && path_ok(cfg->path) && cfg->proxy_protocol <= 2;
}

/* What a check sends once connected: the PROXY header (proxy_protocol), then the request
 * (http). NULL when out of memory; *LEN the bytes (a v2 header holds NUL bytes). */
static char *build_request(const gw_hc_cfg_t *cfg, const char *host, size_t *len)
{
    uint8_t pp[GW_PP_V1_MAX];
    size_t np = cfg->proxy_protocol == 1 ? gw_pp_write_v1(pp, sizeof pp, NULL, NULL)
                : cfg->proxy_protocol == 2
                    ? gw_pp_write_v2(pp, sizeof pp, GW_PP_LOCAL, NULL, NULL, NULL, 0)
                    : 0;
    const char *path = cfg->path != NULL ? cfg->path : "/";
    int n = cfg->type == GW_HC_HTTP ? snprintf(NULL, 0, REQUEST_FMT, path, host) : 0;
    char *s = n >= 0 ? malloc(np + (size_t)n + 1) : NULL;
    if (s == NULL)
        return NULL;
    memcpy(s, pp, np);
    if (n > 0)
        snprintf(s + np, (size_t)n + 1, REQUEST_FMT, path, host);
    *len = np + (size_t)n;
    return s;
}

/* Fills probe I; returns false when out of memory. */
static bool probe_init(gw_hc_t *hc, size_t i, gw_backend_t *b)
{
    probe_t *p = &hc->probes[i];
    p->hc = hc;
    p->b = b;
    p->index = i;
    /* Start from what the backend says, so a restarted checker (a reload) neither forgets
     * that a backend is down nor needs `rise` checks to confirm one that is up. */
    gw_hc_fsm_init(&p->fsm, atomic_load(&b->health) != GW_HEALTH_UNHEALTHY);
    if (hc->cfg.type != GW_HC_HTTP && hc->cfg.proxy_protocol == 0)
        return true;
    p->request = build_request(&hc->cfg, b->name, &p->request_len);
    return p->request != NULL;
}

/* see health.h */
gw_hc_t *gw_hc_start(uv_loop_t *loop, const gw_hc_cfg_t *cfg, gw_backend_t *const *backends,
                     size_t n, const char *upstream, uint64_t seed)
{
    if (loop == NULL || cfg == NULL || !cfg_ok(cfg) || backends == NULL || n == 0)
        return NULL;
    gw_hc_t *hc = calloc(1, sizeof *hc);
    if (hc == NULL)
        return NULL;
    hc->loop = loop;
    hc->cfg = *cfg;
    hc->cfg.path = strdup(cfg->path != NULL ? cfg->path : "/");
    hc->upstream = strdup(upstream != NULL ? upstream : "");
    hc->rng = seed;
    hc->n = n;
    hc->probes = calloc(n, sizeof *hc->probes);
    if (hc->cfg.path == NULL || hc->upstream == NULL || hc->probes == NULL)
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (!probe_init(hc, i, backends[i]))
            goto fail;
    /* Handles last, once nothing can fail any more, so a failed start leaves nothing on
     * the loop. uv_timer_init only fills the struct: it cannot fail. */
    for (size_t i = 0; i < n; i++) {
        probe_t *p = &hc->probes[i];
        uv_timer_init(loop, &p->timer);
        p->timer.data = p;
        hc->open_handles++;
        schedule(p, true);
    }
    return hc;
fail:
    hc_free(hc);
    return NULL;
}

/* see health.h */
void gw_hc_stop(gw_hc_t *hc, void (*done)(void *arg), void *arg)
{
    if (hc->stopping)
        return;
    hc->stopping = true;
    hc->done = done;
    hc->done_arg = arg;
    hc->observer = NULL;
    for (size_t i = 0; i < hc->n; i++) {
        probe_t *p = &hc->probes[i];
        check_t *c = p->check;
        if (c != NULL && !uv_is_closing((uv_handle_t *)&c->tcp)) {
            c->done = true; /* its connect or write callback will see UV_ECANCELED */
            uv_close((uv_handle_t *)&c->tcp, on_check_closed);
        }
        uv_close((uv_handle_t *)&p->timer, on_timer_closed);
    }
}

/* see health.h */
void gw_hc_set_observer(gw_hc_t *hc, gw_hc_result_cb cb, void *arg)
{
    hc->observer = cb;
    hc->observer_arg = arg;
}
