/* tlsrate.c - TLS load generator for the TLS benchmarks (benchmarks/README.md), on OpenSSL.
 *
 *   tlsrate client --connect 127.0.0.1:PORT [--parallel N] [--duration S] [--reuse]
 *                  [--http] [--path P] [--body B] [--sources K]
 *       keeps N TLS connections in flight for S seconds; each one connects, makes a TLS 1.2
 *       handshake, then either sends close_notify and waits for the server to close (the
 *       default: a handshake and nothing else) or, with --http, makes one request (below)
 *       and closes; a new one starts at once. Full handshakes by default (no session
 *       offered); with --reuse each slot first makes one full handshake (before the clock
 *       starts) and then offers that session on every connection: a resumption by session
 *       id (the client never asks for tickets). Prints one line:
 *       `conns=C seconds=S rate=R errors=E resumed=X full=F p50_us=P p99_us=Q proto=V
 *       cipher=NAME kx=GROUP` (X + F = C; R per second; P, Q from connect() to the
 *       server's close, 10 us resolution; V, NAME, GROUP: what the first handshake
 *       negotiated) and exits 0 when C > 0.
 *   tlsrate hold --connect 127.0.0.1:PORT --count N [--parallel P] [--duration S] [--reuse]
 *               [--path P] [--body B] [--sources K]
 *       opens N TLS connections, P at a time in flight; each makes one request (--http is
 *       implied) and then stays open and idle. Prints `held=H errors=E seconds=S` once all N
 *       are held (or after S seconds, default 60), holds them until its stdin is closed (or
 *       S more seconds pass), checks each without reading (closed meanwhile?), prints
 *       `dropped=D` and exits 0 when H == N and D == 0. With --reuse every connection
 *       resumes the session of one first connection, so the server's session cache gains
 *       one entry, not N. Raises its soft open-files limit to the hard one.
 *
 *   --http: `GET P HTTP/1.1` (Host: bench; --path P, default /) over TLS, then the whole
 *       response (head, Content-Length body, 64 KiB at most) is read; it counts only with
 *       status 200. With --body B (64 KiB at most) the request is a POST with a
 *       Content-Length body of B bytes instead.
 *
 * Why a tool of our own rather than `openssl s_time`: s_time makes one connection at a time
 * (one process cannot load two workers; several processes would have to be started and their
 * figures summed), says nothing of latency, and cannot hold connections open for the idle
 * RSS scenario. The client offers TLS 1.2 only, never verifies the certificate (the
 * benchmark's own, self-signed; the server's key-exchange signature is still checked, as
 * TLS requires) and keeps OpenSSL's buffers only while a connection is busy
 * (SSL_MODE_RELEASE_BUFFERS), so 5,000 held connections cost it little.
 *
 * One thread, one epoll set (edge-triggered, registered once for both directions):
 * OpenSSL's non-blocking calls say WANT_READ / WANT_WRITE only after the socket said
 * EAGAIN, so the next edge always comes. Loopback only.
 */
#define _GNU_SOURCE
#include "loopback.h"
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PARALLEL 4096
#define MAX_EVENTS 256
#define HIST_STEP_US 10
#define HIST_BUCKETS 100000 /* up to 1 s; slower connections land in the last bucket */
#define HTTP_RESP_MAX 65536 /* --http: the response (head and body) must fit */
#define MAX_PATH_LEN 200
#define CONN_TIMEOUT_S 5.0 /* a connection not finished by then is an error */

enum { ST_FREE, ST_HANDSHAKE, ST_REQUEST, ST_RESPONSE, ST_CLOSING };

typedef struct {
    int fd;
    int state;
    SSL *ssl;
    SSL_SESSION *sess; /* --reuse: the session this slot offers */
    unsigned got;
    int reused; /* the handshake resumed the offered session */
    double t0;
    char *resp; /* --http: HTTP_RESP_MAX bytes */
} slot_t;

typedef struct {
    struct sockaddr_in dst;
    SSL_CTX *ctx;
    int ep;
    unsigned nsources, next_source;
    int http, reuse, measuring;
    unsigned long long conns, errors, resumed, full, primed;
    uint32_t *hist;
    int *held; /* hold mode: connections done with their request, kept open */
    SSL **held_ssl;
    unsigned nheld;
    SSL_SESSION *shared; /* hold --reuse: the one session every connection offers */
    char *req;           /* the request, built once: head, then --body bytes */
    int req_len;
    char proto[32], cipher[64], kx[32];
    char first_error[160];
} client_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static SSL_CTX *client_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /* Resumption by session id only; a peer's FIN reads as a close (OpenSSL 3 would call
     * it an error without SSL_OP_IGNORE_UNEXPECTED_EOF). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* Sessions are kept by hand (SSL_get1_session), not in the context's client cache. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    return ctx;
}

static void note_error(client_t *cl, const char *what)
{
    if (cl->first_error[0] != '\0')
        return;
    unsigned long e = ERR_peek_error();
    char buf[120] = "";
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof buf);
    snprintf(cl->first_error, sizeof cl->first_error, "%s%s%s", what, buf[0] ? ": " : "", buf);
}

/* What the handshake negotiated, once (every connection negotiates the same). */
static void note_params(client_t *cl, SSL *ssl)
{
    if (cl->proto[0] != '\0')
        return;
    snprintf(cl->proto, sizeof cl->proto, "%s", SSL_get_version(ssl));
    snprintf(cl->cipher, sizeof cl->cipher, "%s", SSL_get_cipher_name(ssl));
    EVP_PKEY *k = NULL;
    snprintf(cl->kx, sizeof cl->kx, "?");
    if (SSL_get_peer_tmp_key(ssl, &k) == 1 && k != NULL) {
        char g[32];
        size_t glen;
        if (EVP_PKEY_get_group_name(k, g, sizeof g, &glen) == 1)
            snprintf(cl->kx, sizeof cl->kx, "%s", g);
        else
            snprintf(cl->kx, sizeof cl->kx, "%s", EVP_PKEY_get0_type_name(k));
        EVP_PKEY_free(k);
    }
}

static void slot_close(slot_t *s)
{
    if (s->ssl != NULL) {
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0)
        close(s->fd); /* also removes it from the epoll set */
    s->fd = -1;
    s->state = ST_FREE;
}

static void slot_open(client_t *cl, slot_t *s, int idx)
{
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    s->got = 0;
    s->t0 = now_s();
    s->state = ST_FREE;
    if (s->fd < 0) {
        cl->errors++;
        note_error(cl, "socket");
        return;
    }
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (cl->nsources > 1) {
        /* As connrate: the client's ends spread over 127.0.0.2.., so the kernel's search
         * for a free ephemeral port is not what is measured. */
        setsockopt(s->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000002u + cl->next_source++ % cl->nsources);
        if (bind(s->fd, (struct sockaddr *)&src, sizeof src) != 0) {
            cl->errors++;
            note_error(cl, "bind");
            slot_close(s);
            return;
        }
    }
    int rc = connect(s->fd, (struct sockaddr *)&cl->dst, sizeof cl->dst);
    if (rc != 0 && errno != EINPROGRESS) {
        cl->errors++;
        note_error(cl, "connect");
        slot_close(s);
        return;
    }
    s->ssl = SSL_new(cl->ctx);
    if (s->ssl == NULL || SSL_set_fd(s->ssl, s->fd) != 1) {
        cl->errors++;
        note_error(cl, "SSL_new");
        slot_close(s);
        return;
    }
    SSL_set_connect_state(s->ssl);
    SSL_set_tlsext_host_name(s->ssl, "localhost");
    SSL_SESSION *offer = cl->shared != NULL ? cl->shared : s->sess;
    if (cl->reuse && offer != NULL)
        SSL_set_session(s->ssl, offer);
    s->state = ST_HANDSHAKE;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP,
                             .data.u32 = (uint32_t)idx};
    epoll_ctl(cl->ep, EPOLL_CTL_ADD, s->fd, &ev);
}

static void slot_end(client_t *cl, slot_t *s, int ok)
{
    if (!ok) {
        cl->errors++;
        slot_close(s);
        return;
    }
    if (cl->measuring) {
        cl->conns++;
        if (s->reused)
            cl->resumed++;
        else
            cl->full++;
        double us = (now_s() - s->t0) * 1e6;
        unsigned b = (unsigned)(us / HIST_STEP_US);
        cl->hist[b < HIST_BUCKETS ? b : HIST_BUCKETS - 1]++;
    }
    if (cl->held != NULL) { /* hold mode: keep it open, idle, out of the epoll set */
        epoll_ctl(cl->ep, EPOLL_CTL_DEL, s->fd, NULL);
        cl->held[cl->nheld] = s->fd;
        cl->held_ssl[cl->nheld++] = s->ssl;
        s->ssl = NULL;
        s->fd = -1;
        s->state = ST_FREE;
        return;
    }
    slot_close(s);
}

/* Classifies an OpenSSL result: 0 = wait for the next edge, -1 = failed. */
static int ssl_wait(client_t *cl, slot_t *s, int rc, const char *what)
{
    int e = SSL_get_error(s->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    note_error(cl, what);
    ERR_clear_error();
    return -1;
}

/* Drives one connection after an event. Returns 1 when the slot is finished. */
static int slot_io(client_t *cl, slot_t *s, uint32_t events)
{
    if ((events & EPOLLERR) ||
        ((events & EPOLLHUP) && s->state == ST_HANDSHAKE && !(events & EPOLLIN))) {
        note_error(cl, "connection refused or reset");
        slot_end(cl, s, 0);
        return 1;
    }
    if (s->state == ST_HANDSHAKE) {
        int rc = SSL_do_handshake(s->ssl);
        if (rc != 1) {
            if (ssl_wait(cl, s, rc, "handshake") == 0)
                return 0;
            slot_end(cl, s, 0);
            return 1;
        }
        note_params(cl, s->ssl);
        int reused = s->reused = SSL_session_reused(s->ssl);
        if (!cl->measuring)
            cl->primed++;
        if (cl->reuse && !reused) { /* keep the new session to offer next time */
            SSL_SESSION *ns = SSL_get1_session(s->ssl);
            if (cl->held_ssl != NULL && cl->shared == NULL)
                cl->shared = ns;
            else {
                if (s->sess != NULL)
                    SSL_SESSION_free(s->sess);
                s->sess = ns;
            }
        }
        if (cl->http) {
            s->state = ST_REQUEST;
        } else {
            /* A handshake and nothing else: close_notify, then wait for the server to
             * close (it has then finished its side of the handshake too). */
            SSL_shutdown(s->ssl);
            s->state = ST_CLOSING;
        }
    }
    if (s->state == ST_REQUEST) {
        int rc = SSL_write(s->ssl, cl->req, cl->req_len);
        if (rc <= 0) {
            if (ssl_wait(cl, s, rc, "write") == 0)
                return 0;
            slot_end(cl, s, 0);
            return 1;
        }
        s->state = ST_RESPONSE;
    }
    if (s->state == ST_RESPONSE) {
        for (;;) {
            int rc = SSL_read(s->ssl, s->resp + s->got, (int)(HTTP_RESP_MAX - s->got));
            if (rc <= 0) {
                if (ssl_wait(cl, s, rc, "read (response)") == 0)
                    return 0;
                slot_end(cl, s, 0);
                return 1;
            }
            s->got += (unsigned)rc;
            const char *end = memmem(s->resp, s->got, "\r\n\r\n", 4);
            if (end == NULL) {
                if (s->got >= HTTP_RESP_MAX) {
                    note_error(cl, "response head too large");
                    slot_end(cl, s, 0);
                    return 1;
                }
                continue;
            }
            unsigned head = (unsigned)(end + 4 - s->resp);
            unsigned long clen = 0;
            for (const char *l = s->resp; l < end;) {
                const char *e = memmem(l, (size_t)(end + 2 - l), "\r\n", 2);
                if (e == NULL)
                    break;
                if (e - l > 15 && strncasecmp(l, "content-length:", 15) == 0)
                    clen = strtoul(l + 15, NULL, 10);
                l = e + 2;
            }
            if (s->got < head + clen) {
                if (head + clen > HTTP_RESP_MAX) {
                    note_error(cl, "response too large");
                    slot_end(cl, s, 0);
                    return 1;
                }
                continue;
            }
            int ok = s->got == head + clen && s->got > 12 && memcmp(s->resp + 8, " 200", 4) == 0;
            if (!ok)
                note_error(cl, "response not a lone 200");
            if (ok && cl->held == NULL)
                SSL_shutdown(s->ssl); /* client mode: close_notify, then close */
            slot_end(cl, s, ok);
            return 1;
        }
    }
    if (s->state == ST_CLOSING) {
        char b[256];
        for (;;) {
            int rc = SSL_read(s->ssl, b, sizeof b);
            if (rc > 0)
                continue; /* nothing is expected; ignore */
            int e = SSL_get_error(s->ssl, rc);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return 0;
            /* The server's close_notify, or its FIN: done. On a bare FIN OpenSSL 3 *sets*
             * the shutdown state to "received" only, dropping our "sent", and SSL_free
             * would then mark the session not resumable: say both, as they both happened. */
            if (e != SSL_ERROR_ZERO_RETURN)
                note_error(cl, "read (close)");
            else
                SSL_set_shutdown(s->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
            ERR_clear_error();
            slot_end(cl, s, e == SSL_ERROR_ZERO_RETURN);
            return 1;
        }
    }
    return 0;
}

static unsigned percentile(const uint32_t *hist, unsigned long long total, double q)
{
    unsigned long long want = (unsigned long long)(q * (double)total), seen = 0;
    for (unsigned b = 0; b < HIST_BUCKETS; b++) {
        seen += hist[b];
        if (seen > want)
            return b * HIST_STEP_US + HIST_STEP_US / 2;
    }
    return HIST_BUCKETS * HIST_STEP_US;
}

/* One pass of the event loop (10 ms at most), then the connections past their time are
 * errors. Returns the slots that finished. */
static unsigned loop_once(client_t *cl, slot_t *slots, int parallel)
{
    struct epoll_event evs[MAX_EVENTS];
    unsigned done = 0;
    int n = epoll_wait(cl->ep, evs, MAX_EVENTS, 10);
    for (int i = 0; i < n; i++) {
        slot_t *s = &slots[evs[i].data.u32];
        if (s->state != ST_FREE && slot_io(cl, s, evs[i].events))
            done++;
    }
    double t = now_s();
    for (int i = 0; i < parallel; i++)
        if (slots[i].state != ST_FREE && t - slots[i].t0 > CONN_TIMEOUT_S) {
            note_error(cl, "timed out");
            slot_end(cl, &slots[i], 0);
            done++;
        }
    return done;
}

static int setup(client_t *cl, const char *target, const char *path, unsigned body, slot_t **slots,
                 int parallel)
{
    cl->req = malloc(MAX_PATH_LEN + 128 + body);
    if (cl->req == NULL)
        return -1;
    if (body == 0)
        cl->req_len = sprintf(cl->req, "GET %s HTTP/1.1\r\nHost: bench\r\n\r\n", path);
    else
        cl->req_len = sprintf(
            cl->req, "POST %s HTTP/1.1\r\nHost: bench\r\nContent-Length: %u\r\n\r\n", path, body);
    memset(cl->req + cl->req_len, 'x', body);
    cl->req_len += (int)body;
    if (parse_loopback(target, &cl->dst) != 0) {
        fprintf(stderr, "tlsrate: --connect wants 127.x.x.x:PORT, got '%s'\n", target);
        return -1;
    }
    cl->ctx = client_ctx();
    cl->hist = calloc(HIST_BUCKETS, sizeof *cl->hist);
    *slots = calloc((size_t)parallel, sizeof **slots);
    cl->ep = epoll_create1(0);
    if (cl->ctx == NULL || cl->hist == NULL || *slots == NULL || cl->ep < 0) {
        fprintf(stderr, "tlsrate: out of memory\n");
        return -1;
    }
    for (int i = 0; i < parallel; i++) {
        (*slots)[i].fd = -1;
        if (cl->http && ((*slots)[i].resp = malloc(HTTP_RESP_MAX)) == NULL)
            return -1;
    }
    return 0;
}

static int run_client(const char *target, const char *path, unsigned body, int parallel,
                      double duration, unsigned sources, int http, int reuse)
{
    client_t cl = {.nsources = sources, .http = http, .reuse = reuse};
    slot_t *slots;
    if (setup(&cl, target, path, body, &slots, parallel) != 0)
        return 1;
    if (reuse) {
        /* Priming, off the clock: one full handshake per slot, its session kept. */
        double until = now_s() + 10;
        for (int i = 0; i < parallel; i++)
            slot_open(&cl, &slots[i], i);
        unsigned left = (unsigned)parallel;
        while (left > 0 && now_s() < until && cl.errors == 0)
            left -= loop_once(&cl, slots, parallel);
        if (cl.primed < (unsigned)parallel) {
            fprintf(stderr, "tlsrate: priming: %llu of %d handshakes (%s)\n", cl.primed, parallel,
                    cl.first_error[0] ? cl.first_error : "timed out");
            return 1;
        }
    }
    cl.measuring = 1;
    double t0 = now_s(), deadline = t0 + duration, t = t0;
    for (int i = 0; i < parallel; i++)
        slot_open(&cl, &slots[i], i);
    while (t < deadline) {
        loop_once(&cl, slots, parallel);
        t = now_s();
        /* Refill every free slot (also those whose socket() or connect() failed at once). */
        for (int i = 0; i < parallel && t < deadline; i++)
            if (slots[i].state == ST_FREE)
                slot_open(&cl, &slots[i], i);
    }
    double secs = t - t0;
    for (int i = 0; i < parallel; i++)
        slot_close(&slots[i]);
    printf("conns=%llu seconds=%.3f rate=%.1f errors=%llu resumed=%llu full=%llu p50_us=%u "
           "p99_us=%u proto=%s cipher=%s kx=%s\n",
           cl.conns, secs, (double)cl.conns / secs, cl.errors, cl.resumed, cl.full,
           percentile(cl.hist, cl.conns, 0.50), percentile(cl.hist, cl.conns, 0.99),
           cl.proto[0] ? cl.proto : "-", cl.cipher[0] ? cl.cipher : "-", cl.kx[0] ? cl.kx : "-");
    if (cl.errors > 0 && cl.first_error[0])
        fprintf(stderr, "tlsrate: first error: %s\n", cl.first_error);
    if (cl.conns == 0)
        fprintf(stderr, "tlsrate: no connection completed (%s)\n",
                cl.first_error[0] ? cl.first_error : "none finished in time");
    return cl.conns > 0 ? 0 : 1;
}

/* Hold mode (see the top of the file). Every phase is bounded by DURATION. */
static int run_hold(const char *target, const char *path, unsigned body, int parallel,
                    unsigned count, double duration, unsigned sources, int reuse)
{
    client_t cl = {.nsources = sources, .http = 1, .reuse = reuse, .measuring = 1};
    slot_t *slots;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    cl.held = calloc(count, sizeof *cl.held);
    cl.held_ssl = calloc(count, sizeof *cl.held_ssl);
    if (cl.held == NULL || cl.held_ssl == NULL ||
        setup(&cl, target, path, body, &slots, parallel) != 0)
        return 1;
    double t0 = now_s(), deadline = t0 + duration, t = t0;
    unsigned long long max_errors = 100 + count / 10;
    unsigned inflight = 0;
    while (cl.nheld < count && t < deadline && cl.errors <= max_errors) {
        /* Refill free slots while more connections are still wanted; with --reuse, the
         * first connection alone until its session is there to share. */
        int wait_first = reuse && cl.shared == NULL && (inflight > 0 || cl.nheld > 0);
        for (int i = 0; i < parallel && cl.nheld + inflight < count && !wait_first; i++)
            if (slots[i].state == ST_FREE) {
                slot_open(&cl, &slots[i], i);
                if (slots[i].state != ST_FREE)
                    inflight++;
                if (reuse && cl.shared == NULL)
                    break;
            }
        inflight -= loop_once(&cl, slots, parallel);
        t = now_s();
    }
    for (int i = 0; i < parallel; i++)
        slot_close(&slots[i]);
    printf("held=%u errors=%llu seconds=%.3f resumed=%llu full=%llu\n", cl.nheld, cl.errors, t - t0,
           cl.resumed, cl.full);
    fflush(stdout);
    if (cl.errors > 0 && cl.first_error[0])
        fprintf(stderr, "tlsrate: first error: %s\n", cl.first_error);
    /* Hold until the harness closes our stdin (bounded). */
    double until = now_s() + duration;
    for (;;) {
        double left = until - now_s();
        if (left <= 0)
            break;
        struct pollfd pfd = {.fd = 0, .events = POLLIN};
        int r = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r != 0) {
            char b[64];
            if (read(0, b, sizeof b) <= 0)
                break; /* EOF (or error): done holding */
        }
    }
    unsigned dropped = 0;
    for (unsigned i = 0; i < cl.nheld; i++) {
        char b;
        ssize_t n = recv(cl.held[i], &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            dropped++;
        SSL_free(cl.held_ssl[i]);
        close(cl.held[i]);
    }
    printf("dropped=%u\n", dropped);
    return cl.nheld == count && dropped == 0 ? 0 : 1;
}

static int usage(void)
{
    fprintf(stderr, "usage: tlsrate client --connect 127.0.0.1:PORT [--parallel N] "
                    "[--duration S] [--reuse] [--http] [--path P] [--body B] [--sources K]\n"
                    "       tlsrate hold --connect 127.0.0.1:PORT --count N [--parallel P] "
                    "[--duration S] [--reuse] [--path P] [--body B] [--sources K]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    signal(SIGPIPE, SIG_IGN);
    const char *target = NULL, *path = "/";
    int parallel = 64, http = 0, reuse = 0, duration_set = 0;
    double duration = 5;
    unsigned sources = 16, count = 0, body = 0;
    for (int i = 2; i < argc; i += 2) {
        if (strcmp(argv[i], "--http") == 0 || strcmp(argv[i], "--reuse") == 0) {
            *(argv[i][2] == 'h' ? &http : &reuse) = 1;
            i--; /* a flag: no value */
            continue;
        }
        if (i + 1 >= argc)
            return usage();
        if (strcmp(argv[i], "--connect") == 0)
            target = argv[i + 1];
        else if (strcmp(argv[i], "--parallel") == 0)
            parallel = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--duration") == 0)
            duration = atof(argv[i + 1]), duration_set = 1;
        else if (strcmp(argv[i], "--count") == 0)
            count = (unsigned)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--body") == 0)
            body = (unsigned)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--path") == 0)
            path = argv[i + 1];
        else if (strcmp(argv[i], "--sources") == 0)
            sources = (unsigned)atoi(argv[i + 1]);
        else
            return usage();
    }
    if (target == NULL || path[0] != '/' || body > HTTP_RESP_MAX || strlen(path) > MAX_PATH_LEN ||
        parallel < 1 || parallel > MAX_PARALLEL || duration <= 0 || duration > 600 || sources < 1 ||
        sources > 250)
        return usage();
    if (strcmp(argv[1], "hold") == 0) {
        if (!duration_set)
            duration = 60;
        if (count < 1 || count > 1000000)
            return usage();
        return run_hold(target, path, body, parallel, count, duration, sources, reuse);
    }
    if (strcmp(argv[1], "client") != 0)
        return usage();
    return run_client(target, path, body, parallel, duration, sources, http, reuse);
}
