/* mw_access_log.c - the access_log middleware: one JSON line per exchange (time, request
 * id, client, method, path, status, bytes both ways, upstream, backend, latency, TLS
 * version, cipher, SNI and resumption (null on plaintext), route, end), written when the
 * exchange ends.
 *
 *   middleware:
 *     - access_log: {file: /var/log/gw/access.log}   # "-" = stdout
 *
 * Files are shared by every route of one config: one open descriptor per distinct path
 * (O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC, 0644), kept in the chain's shared slot for this
 * middleware, reopened on SIGUSR1 (logrotate), and counted in gw_access_log_lost_total.
 * A reload's chain takes over the files of the chain before whose paths it still names
 * (env->prev_shared): nothing is opened again, and the lost-line counts go on (a counter
 * back at 0 would read as a reset). A tunnel holds its file until its line is written,
 * past any reload (state_hold); one whose path left the configuration is not reopened. A
 * line is one write(2) on an O_APPEND descriptor, so lines from several workers never
 * interleave. The line format is gw_alog_format (accesslog.c). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "04-http/accesslog.h"
#include "04-http/chain.h"
#include "04-http/mw.h"
#include "04-http/mw_cfg.h"
#include "error.h"
#include "log.h"

#define LOG_LINE_MAX 4096  /* one access log line, on the stack */
#define LOG_CLIP 64        /* last resort: every string cut to this many bytes */
#define LOST_WARN_MS 10000 /* at most one "lines lost" warning per file this often */
#define LOG_FLAGS (O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC)

/* One open file: a route's state points to it (it never moves once made). Counted: the
 * chain's set holds one reference, and so does each tunnel whose line is still to come
 * (state_hold), which may outlive the set's configuration generation. */
typedef struct log_file_s {
    char *path;       /* a copy: the file may outlive the config that named it */
    int fd;           /* 1 for "-" (never closed nor reopened) */
    atomic_uint refs; /* the set's, and one per tunnel holding it */
    /* Lines that could not be written (disk full, I/O error): counted by whichever worker
     * lost one, a shared atomic touched only on that failure path. */
    atomic_uint_least64_t lost;
    atomic_uint_least64_t warned_ms; /* when the last "lines lost" warning went out (0: never) */
} log_file_t;

/* The chain's shared slot: every file opened, in the order first configured. */
typedef struct log_set_s {
    log_file_t **files;
    size_t n;
} log_set_t;

/* ---- config ------------------------------------------------------------------------------- */

static void *decode(gw_cdoc_t *doc, const gw_cnode_t *opts)
{
    gw_mw_access_log_cfg_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        gw_cdoc_oom(doc, opts);
        return NULL;
    }
    if (!gw_cnode_expect_map(doc, opts, "access_log"))
        return c;
    const gw_cnode_t *f = gw_cmap_require(doc, opts, "file");
    if (gw_cget_string(doc, f, "file", &c->file) == 0 && f && !c->file[0])
        gw_cdoc_error(doc, f, "file must not be empty (\"-\" is stdout)");
    return c;
}

static void print(FILE *out, const void *cfg, int in)
{
    (void)in;
    const gw_mw_access_log_cfg_t *c = cfg;
    fputs(" {file: ", out);
    gw_config_print_str(out, c != NULL && c->file ? c->file : "-");
    fputs("}\n", out);
}

static void free_cfg(void *cfg)
{
    gw_mw_access_log_cfg_t *c = cfg;
    if (c == NULL)
        return;
    free(c->file);
    free(c);
}

/* ---- files (the shared state) ------------------------------------------------------------- */

/* SET's file for PATH, or NULL (SET may be NULL). */
static log_file_t *log_find(const log_set_t *set, const char *path)
{
    for (size_t i = 0; set != NULL && i < set->n; i++)
        if (strcmp(set->files[i]->path, path) == 0)
            return set->files[i];
    return NULL;
}

/* The open file for PATH in SET: SET's own, else PREV's (the chain before a reload: taken
 * over, one more holder, so its descriptor and lost-line count go on), else a new one;
 * NULL with ERR filled. */
static log_file_t *log_open(log_set_t *set, const log_set_t *prev, const char *path, char *err,
                            size_t errlen)
{
    log_file_t *l = log_find(set, path);
    if (l != NULL)
        return l;
    log_file_t **v = realloc(set->files, (set->n + 1) * sizeof *v);
    if (v != NULL)
        set->files = v;
    if (v != NULL && (l = log_find(prev, path)) != NULL) {
        atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
        set->files[set->n++] = l;
        return l;
    }
    l = v != NULL ? calloc(1, sizeof *l) : NULL;
    if (l == NULL) {
        gw_errf(err, errlen, "access_log %s: %s", path, "out of memory");
        return NULL;
    }
    l->path = strdup(path);
    int fd = l->path == NULL ? -1 : strcmp(path, "-") == 0 ? 1 : open(path, LOG_FLAGS, 0644);
    if (fd < 0) {
        gw_errf(err, errlen, "access_log %s: %s", path,
                l->path == NULL ? "out of memory" : strerror(errno));
        free(l->path);
        free(l);
        return NULL;
    }
    l->fd = fd;
    atomic_init(&l->refs, 1);
    atomic_init(&l->lost, 0);
    atomic_init(&l->warned_ms, 0);
    set->files[set->n++] = l;
    return l;
}

/* The route's state is its file (owned by the shared set). */
static int state_new(const void *cfg, const gw_mw_env_t *env, void **state, char *err,
                     size_t errlen)
{
    const gw_mw_access_log_cfg_t *c = cfg;
    if (*env->shared == NULL && (*env->shared = calloc(1, sizeof(log_set_t))) == NULL) {
        gw_errf(err, errlen, "access_log %s: %s", c->file, "out of memory");
        return -1;
    }
    log_file_t *l = log_open(*env->shared, env->prev_shared, c->file, err, errlen);
    if (l == NULL)
        return -1;
    *state = l;
    return 0;
}

/* A tunnel's line is still to come: its file stays open past its set (chain.h). */
static void state_hold(void *state)
{
    log_file_t *l = state;
    atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
}

/* The last holder closes and frees: acquire-release, so that its last write happened
 * before the close, whichever thread made it. */
static void state_drop(void *state)
{
    log_file_t *l = state;
    if (atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (l->fd != 1)
        close(l->fd);
    free(l->path);
    free(l);
}

static void shared_free(void *shared)
{
    log_set_t *set = shared;
    for (size_t i = 0; i < set->n; i++)
        state_drop(set->files[i]);
    free(set->files);
    free(set);
}

/* SIGUSR1: after logrotate moved the files. */
static void reopen(void *shared)
{
    const log_set_t *set = shared;
    for (size_t i = 0; i < set->n; i++) {
        log_file_t *l = set->files[i];
        if (l->fd == 1)
            continue;
        /* Open the new file first and put it in place of the old descriptor in one step:
         * a worker writing at this moment writes to one file or the other, never to a
         * closed or reused descriptor. dup3 keeps close-on-exec, which dup2 would drop. */
        int fd = open(l->path, LOG_FLAGS, 0644);
        if (fd < 0) {
            gw_warn("access_log %s: cannot reopen: %s; still writing to the old file", l->path,
                    strerror(errno));
            continue;
        }
        if (dup3(fd, l->fd, O_CLOEXEC) < 0)
            gw_warn("access_log %s: cannot reopen: %s", l->path, strerror(errno));
        close(fd);
    }
}

static uint64_t lost(const void *shared)
{
    const log_set_t *set = shared;
    uint64_t n = 0;
    for (size_t i = 0; i < set->n; i++)
        n += atomic_load_explicit(&set->files[i]->lost, memory_order_relaxed);
    return n;
}

/* gw_access_log_lost_total{file="..."}, one sample per file (a family with no sample when
 * no route logs). */
static void metrics(const void *shared, gw_prom_t *p)
{
    const log_set_t *set = shared;
    gw_prom_family(p, "gw_access_log_lost_total",
                   "Access log lines that could not be written (disk full, I/O error), by file",
                   GW_PROM_COUNTER);
    for (size_t i = 0; set != NULL && i < set->n; i++) {
        const char *lab[] = {"file", set->files[i]->path, NULL};
        gw_prom_sample_u64(p, "gw_access_log_lost_total", lab,
                           atomic_load_explicit(&set->files[i]->lost, memory_order_relaxed));
    }
}

/* ---- one exchange ------------------------------------------------------------------------- */

/* Copies method and target as the client sent them, before any middleware rewrote them. A
 * copy that fails (out of memory) is logged as null rather than failing the request. The
 * copies live in X until gw_hx_reset. */
static void start(const void *cfg, void *state, gw_hx_t *x, const gw_h1_head_t *req)
{
    (void)cfg;
    (void)state;
    gw_h1_span_t m = gw_h1_head_method(req), t = gw_h1_head_target(req);
    free(x->log_method);
    free(x->log_path);
    x->log_method = gw_h1_span_dup(m);
    x->log_path = gw_h1_span_dup(t);
}

/* Formats R into BUF (CAP bytes), never giving up: a line too long keeps as much of the
 * path as fits (the one field a client can make long), and if even an empty path does not
 * fit, every string is cut to LOG_CLIP bytes, which always fits. */
static long format_line(gw_alog_rec_t *r, char *buf, size_t cap)
{
    long n = gw_alog_format(r, buf, cap);
    if (n >= 0)
        return n;
    size_t full = r->path.len;
    r->path.len = 0;
    if (gw_alog_format(r, buf, cap) >= 0) {
        size_t lo = 0, hi = full; /* lo fits, hi does not */
        while (hi - lo > 1) {
            r->path.len = lo + (hi - lo) / 2;
            if (gw_alog_format(r, buf, cap) >= 0)
                lo = r->path.len;
            else
                hi = r->path.len;
        }
        r->path.len = lo;
        return gw_alog_format(r, buf, cap);
    }
    gw_alog_str_t *s[] = {&r->request_id, &r->client,  &r->method, &r->path,
                          &r->upstream,   &r->backend, &r->route};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        if (s[i]->len > LOG_CLIP)
            s[i]->len = LOG_CLIP;
    return gw_alog_format(r, buf, cap);
}

static void client_text(const struct sockaddr *sa, char *out, size_t cap)
{
    out[0] = '\0';
    if (sa != NULL && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)cap);
    else if (sa != NULL && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)cap);
}

/* A line of L was lost (ERR: why). Counted; the first loss and then at most one every
 * LOST_WARN_MS are logged with the running total: workers race for the right to warn with
 * a compare-and-swap on the time of the last warning. NOW_MS is the caller's clock. */
static void log_lost(log_file_t *l, int err, uint64_t now_ms)
{
    uint64_t n = atomic_fetch_add_explicit(&l->lost, 1, memory_order_relaxed) + 1;
    uint64_t last = atomic_load_explicit(&l->warned_ms, memory_order_relaxed);
    uint64_t stamp = now_ms != 0 ? now_ms : 1; /* 0 means "never warned" */
    if ((last != 0 && now_ms - last < LOST_WARN_MS) ||
        !atomic_compare_exchange_strong_explicit(&l->warned_ms, &last, stamp, memory_order_relaxed,
                                                 memory_order_relaxed))
        return;
    gw_warn("access_log %s: cannot write: %s; %" PRIu64 " line(s) lost so far "
            "(gw_access_log_lost_total)",
            l->path, gw_strerror(-err), n);
}

/* Writes X's line. One write(2) per line on an O_APPEND file: lines of several workers
 * never mix. A line that does not go out is not retried (the request is over, and a full
 * disk stays full): it is counted, and said now and then, never per request. */
static void finish(const void *cfg, void *state, gw_hx_t *x, uint64_t now_ns)
{
    (void)cfg;
    log_file_t *l = state;
    char client[INET6_ADDRSTRLEN], line[LOG_LINE_MAX];
    client_text(x->client, client, sizeof client);
    gw_alog_rec_t rec = {
        .time_ms = x->wall_ms,
        .request_id = gw_alog_cstr(gw_hx_request_id(x)), /* one rule: chain.h */
        .client = gw_alog_cstr(client[0] != '\0' ? client : NULL),
        .method = gw_alog_cstr(x->log_method),
        .path = gw_alog_cstr(x->log_path),
        .upstream = gw_alog_cstr(x->upstream),
        .backend = gw_alog_cstr(x->backend),
        .route = gw_alog_cstr(gw_hx_route_name(x)),
        .status = x->status,
        .bytes_in = x->bytes_in,
        .bytes_out = x->bytes_out,
        .latency_us = now_ns > x->start_ns ? (now_ns - x->start_ns) / 1000u : 0,
        .end = gw_alog_cstr(x->end),
    };
    if (x->tls_info != NULL) {
        rec.tls_version = gw_alog_cstr(x->tls_info->version);
        rec.tls_cipher = gw_alog_cstr(x->tls_info->cipher);
        rec.tls_sni = gw_alog_cstr(x->tls_info->sni);
        rec.tls_resumed = x->tls_info->resumed;
    }
    long n = format_line(&rec, line, sizeof line);
    if (n < 0)
        return;
    ssize_t w;
    do
        w = write(l->fd, line, (size_t)n);
    while (w < 0 && errno == EINTR);
    if (w != (ssize_t)n)
        log_lost(l, w < 0 ? errno : ENOSPC, now_ns / 1000000u);
}

const gw_mw_ops_t gw_mw_access_log_ops = {
    .name = "access_log",
    .decode = decode,
    .print = print,
    .free = free_cfg,
    .state_new = state_new,
    .state_free = NULL, /* the file belongs to the shared set */
    .state_hold = state_hold,
    .state_drop = state_drop,
    .shared_free = shared_free,
    .reopen = reopen,
    .lost = lost,
    .metrics = metrics,
    .start = start,
    .finish = finish,
};
