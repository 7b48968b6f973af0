/* connrate.c - new-connection-rate load generator for the L4 benchmarks (benchmarks/README.md).
 *
 *   connrate echo [--port P]
 *       backend: echoes every byte back, closes when the client does; prints `port=P`.
 *   connrate client --connect 127.0.0.1:PORT [--parallel N] [--duration S] [--payload B]
 *                   [--sources K]
 *       keeps N connections in flight for S seconds; each one connects, sends B bytes, reads
 *       them back, closes, and is replaced at once by a new one. Prints one line:
 *       `conns=C seconds=S rate=R errors=E p50_us=X p99_us=Y` (R per second; X, Y: time from
 *       connect() to the last echoed byte, 10 us resolution) and exits 0 when C > 0.
 *       The client's ends are spread over K source addresses 127.0.0.2 .. 127.0.0.(K+1)
 *       (default 16; 1: the kernel's choice, 127.0.0.1).
 *   connrate hold --connect 127.0.0.1:PORT --count N [--parallel P] [--payload B]
 *                 [--sources K] [--duration S]
 *       opens N connections, P at a time in flight; each connects, sends B bytes and reads
 *       the echo once (so whatever is in between has moved bytes both ways), then stays
 *       open and idle. Prints `held=H errors=E seconds=S` once all N are held (or when S
 *       seconds, default 60, have passed: H < N then), then holds them until its stdin is
 *       closed (or S more seconds pass), checks each held connection without reading
 *       (closed by the other side meanwhile?), prints `dropped=D`, closes them all and
 *       exits 0 when H == N and D == 0. Raises its soft open-files limit to the hard one.
 *
 *   --http (client and hold): the exchange is one HTTP/1.1 request instead of an echo:
 *       `GET / HTTP/1.1` (Host: bench), then the whole response (head, Content-Length body)
 *       is read; it counts only with status 200. For the L7 scenarios (a keep-alive client
 *       connection that made one request, then idles; --payload is ignored).
 *
 * One thread and one epoll set each (edge-triggered, so a connection is registered once for
 * both directions and never modified). The client's loop ends at the deadline; the
 * connections still in flight then are closed and counted neither way. Loopback only.
 */
#define _GNU_SOURCE
#include "loopback.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PARALLEL 4096
#define MAX_PAYLOAD 1024
#define MAX_EVENTS 256
#define HIST_STEP_US 10
#define HIST_BUCKETS 100000 /* up to 1 s; slower connections land in the last bucket */
#define ECHO_BUF 4096
#define MAX_FDS 65536
#define HTTP_RESP_MAX 2048 /* --http: the response (head and body) must fit */
static const char http_req[] = "GET / HTTP/1.1\r\nHost: bench\r\n\r\n";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- echo server ---------------------------------------------------------------------------- */

/* Bytes read but not yet echoed (the peer's receive window was full), per descriptor. */
typedef struct {
    char *buf;
    unsigned len, off;
} pending_t;

static pending_t *pend;

static void echo_close(int ep, int fd)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    free(pend[fd].buf);
    pend[fd] = (pending_t){0};
    close(fd);
}

/* Flushes what is pending; 1 if all sent, 0 if the socket is full, -1 on error. */
static int echo_flush(int fd)
{
    pending_t *p = &pend[fd];
    while (p->off < p->len) {
        ssize_t n = send(fd, p->buf + p->off, p->len - p->off, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN)
            return 0;
        if (n <= 0)
            return -1;
        p->off += (unsigned)n;
    }
    p->len = p->off = 0;
    return 1;
}

/* Edge-triggered: read until EAGAIN, but stop reading while an echo is pending (the
 * EPOLLOUT edge resumes us). */
static void echo_io(int ep, int fd)
{
    pending_t *p = &pend[fd];
    if (p->buf == NULL && (p->buf = malloc(ECHO_BUF)) == NULL) {
        echo_close(ep, fd);
        return;
    }
    for (int rounds = 0; rounds < 64; rounds++) { /* fairness bound; ET re-arms on new data */
        int f = echo_flush(fd);
        if (f < 0) {
            echo_close(ep, fd);
            return;
        }
        if (f == 0)
            return;
        ssize_t n = recv(fd, p->buf, ECHO_BUF, 0);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            echo_close(ep, fd);
            return;
        }
        p->len = (unsigned)n;
        p->off = 0;
    }
    /* Still more to read: with ET no new edge may come, so re-arm explicitly. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

static int run_echo(int port)
{
    pend = calloc(MAX_FDS, sizeof *pend);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (pend == NULL || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 4096) != 0 ||
        getsockname(ls, (struct sockaddr *)&a, &alen) != 0) {
        perror("connrate echo: listen");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    printf("port=%d\n", ntohs(a.sin_port));
    fflush(stdout);
    struct epoll_event evs[MAX_EVENTS];
    for (;;) { /* ends when the harness kills the server */
        int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd != ls) {
                echo_io(ep, fd);
                continue;
            }
            for (int k = 0; k < 256; k++) { /* accept a batch, bounded */
                int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
                if (c < 0)
                    break;
                if (c >= MAX_FDS) {
                    close(c);
                    continue;
                }
                setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                struct epoll_event cev = {.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP,
                                          .data.fd = c};
                epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                echo_io(ep, c); /* data may already be there */
            }
        }
    }
}

/* ---- client ----------------------------------------------------------------------------------- */

typedef struct {
    int fd; /* -1: free slot */
    unsigned got;
    double t0;
    char *resp; /* --http: the response so far (HTTP_RESP_MAX bytes) */
} slot_t;

typedef struct {
    struct sockaddr_in dst;
    int ep;
    unsigned payload, nsources, next_source;
    int http;
    char msg[MAX_PAYLOAD];
    unsigned long long conns, errors;
    uint32_t *hist;
    int *held; /* hold mode: connections done with their exchange, kept open */
    unsigned nheld;
} client_t;

static void slot_open(client_t *cl, slot_t *s, int idx)
{
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    s->got = 0;
    s->t0 = now_s();
    if (s->fd < 0) {
        cl->errors++;
        return;
    }
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (cl->nsources > 1) {
        /* Spread the client's ends over 127.0.0.2.. so that the kernel's search for a free
         * ephemeral port (slow when tens of thousands sit in TIME_WAIT) is not what we
         * measure. The port is still picked at connect(), per 4-tuple. */
        setsockopt(s->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000002u + cl->next_source++ % cl->nsources);
        if (bind(s->fd, (struct sockaddr *)&src, sizeof src) != 0) {
            cl->errors++;
            close(s->fd);
            s->fd = -1;
            return;
        }
    }
    int rc = connect(s->fd, (struct sockaddr *)&cl->dst, sizeof cl->dst);
    if (rc != 0 && errno != EINPROGRESS) {
        cl->errors++;
        close(s->fd);
        s->fd = -1;
        return;
    }
    /* EPOLLOUT fires once connected; the payload is sent then (a write before that would
     * fail with EAGAIN on a socket still connecting). */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP, .data.u32 = (uint32_t)idx};
    epoll_ctl(cl->ep, EPOLL_CTL_ADD, s->fd, &ev);
}

static void slot_end(client_t *cl, slot_t *s, int ok)
{
    if (ok) {
        cl->conns++;
        double us = (now_s() - s->t0) * 1e6;
        unsigned b = (unsigned)(us / HIST_STEP_US);
        cl->hist[b < HIST_BUCKETS ? b : HIST_BUCKETS - 1]++;
        if (cl->held != NULL) { /* hold mode: keep it open, idle, out of the epoll set */
            epoll_ctl(cl->ep, EPOLL_CTL_DEL, s->fd, NULL);
            cl->held[cl->nheld++] = s->fd;
            s->fd = -1;
            return;
        }
    } else {
        cl->errors++;
    }
    close(s->fd); /* also removes it from the epoll set */
    s->fd = -1;
}

/* --http: is RESP[0..LEN) a whole response? 0: not yet; 1: yes, status 200 and nothing
 * more; -1: anything else. */
static int http_done(const char *resp, unsigned len)
{
    const char *end = memmem(resp, len, "\r\n\r\n", 4);
    if (end == NULL)
        return len >= HTTP_RESP_MAX ? -1 : 0;
    unsigned head = (unsigned)(end + 4 - resp);
    unsigned long cl = 0;
    for (const char *l = resp; l < end;) {
        const char *e = memmem(l, (size_t)(end + 2 - l), "\r\n", 2);
        if (e == NULL)
            break;
        if (e - l > 15 && strncasecmp(l, "content-length:", 15) == 0)
            cl = strtoul(l + 15, NULL, 10);
        l = e + 2;
    }
    if (len < head + cl)
        return head + cl > HTTP_RESP_MAX ? -1 : 0;
    return len == head + cl && len > 12 && memcmp(resp + 8, " 200", 4) == 0 ? 1 : -1;
}

/* slot_io for --http: send the request once connected, then read the whole response. */
static int slot_http(client_t *cl, slot_t *s, uint32_t events)
{
    if (s->got == 0 && (events & EPOLLOUT)) {
        if (send(s->fd, http_req, sizeof http_req - 1, MSG_NOSIGNAL) !=
            (ssize_t)(sizeof http_req - 1)) {
            slot_end(cl, s, 0);
            return 1;
        }
        s->got = 1; /* 1 + response bytes so far */
    }
    if (s->got == 0)
        return 0;
    for (;;) {
        ssize_t n = recv(s->fd, s->resp + s->got - 1, HTTP_RESP_MAX - (s->got - 1), 0);
        if (n < 0 && errno == EAGAIN)
            return 0;
        if (n <= 0) {
            slot_end(cl, s, 0);
            return 1;
        }
        s->got += (unsigned)n;
        int d = http_done(s->resp, s->got - 1);
        if (d != 0) {
            slot_end(cl, s, d > 0);
            return 1;
        }
    }
}

/* Drives one connection after an event: send the payload once connected, then read the echo.
 * Returns 1 when the slot is finished (successfully or not). */
static int slot_io(client_t *cl, slot_t *s, uint32_t events)
{
    if (events & (EPOLLERR | EPOLLHUP)) {
        slot_end(cl, s, 0);
        return 1;
    }
    if (cl->http)
        return slot_http(cl, s, events);
    if (s->got == 0 && (events & EPOLLOUT)) {
        if (send(s->fd, cl->msg, cl->payload, MSG_NOSIGNAL) != (ssize_t)cl->payload) {
            slot_end(cl, s, 0);
            return 1;
        }
        s->got = 1; /* 1 + bytes echoed so far */
    }
    if (s->got == 0)
        return 0;
    char buf[MAX_PAYLOAD];
    for (;;) {
        ssize_t n = recv(s->fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EAGAIN)
            return 0;
        if (n <= 0) { /* EOF or error before the whole echo */
            slot_end(cl, s, 0);
            return 1;
        }
        s->got += (unsigned)n;
        if (s->got - 1 >= cl->payload) {
            slot_end(cl, s, s->got - 1 == cl->payload);
            return 1;
        }
    }
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

static int alloc_resp(client_t *cl, slot_t *slots, int parallel)
{
    for (int i = 0; cl->http && i < parallel; i++)
        if ((slots[i].resp = malloc(HTTP_RESP_MAX)) == NULL)
            return -1;
    return 0;
}

static int run_client(const char *target, int parallel, double duration, unsigned payload,
                      unsigned sources, int http)
{
    client_t cl = {.payload = payload, .nsources = sources, .http = http};
    if (parse_loopback(target, &cl.dst) != 0) {
        fprintf(stderr, "connrate: --connect wants 127.x.x.x:PORT, got '%s'\n", target);
        return 1;
    }
    for (unsigned i = 0; i < payload; i++)
        cl.msg[i] = (char)('a' + i % 26);
    cl.hist = calloc(HIST_BUCKETS, sizeof *cl.hist);
    slot_t *slots = calloc((size_t)parallel, sizeof *slots);
    cl.ep = epoll_create1(0);
    if (cl.hist == NULL || slots == NULL || cl.ep < 0 || alloc_resp(&cl, slots, parallel) != 0)
        return 1;
    double t0 = now_s(), deadline = t0 + duration, t = t0;
    for (int i = 0; i < parallel; i++)
        slot_open(&cl, &slots[i], i);
    struct epoll_event evs[MAX_EVENTS];
    while (t < deadline) {
        int n = epoll_wait(cl.ep, evs, MAX_EVENTS, 10);
        for (int i = 0; i < n; i++) {
            slot_t *s = &slots[evs[i].data.u32];
            if (s->fd >= 0)
                slot_io(&cl, s, evs[i].events);
        }
        t = now_s();
        /* Refill every free slot (also those whose socket() or connect() failed at once). */
        for (int i = 0; i < parallel && t < deadline; i++)
            if (slots[i].fd < 0)
                slot_open(&cl, &slots[i], i);
    }
    double secs = t - t0;
    for (int i = 0; i < parallel; i++)
        if (slots[i].fd >= 0)
            close(slots[i].fd);
    printf("conns=%llu seconds=%.3f rate=%.1f errors=%llu p50_us=%u p99_us=%u\n", cl.conns, secs,
           (double)cl.conns / secs, cl.errors, percentile(cl.hist, cl.conns, 0.50),
           percentile(cl.hist, cl.conns, 0.99));
    return cl.conns > 0 ? 0 : 1;
}

/* Hold mode (see the top of the file). Every phase is bounded by DURATION. */
static int run_hold(const char *target, int parallel, unsigned count, double duration,
                    unsigned payload, unsigned sources, int http)
{
    client_t cl = {.payload = payload, .nsources = sources, .http = http};
    if (parse_loopback(target, &cl.dst) != 0) {
        fprintf(stderr, "connrate: --connect wants 127.x.x.x:PORT, got '%s'\n", target);
        return 1;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    for (unsigned i = 0; i < payload; i++)
        cl.msg[i] = (char)('a' + i % 26);
    cl.hist = calloc(HIST_BUCKETS, sizeof *cl.hist);
    cl.held = calloc(count, sizeof *cl.held);
    slot_t *slots = calloc((size_t)parallel, sizeof *slots);
    cl.ep = epoll_create1(0);
    if (cl.hist == NULL || cl.held == NULL || slots == NULL || cl.ep < 0 ||
        alloc_resp(&cl, slots, parallel) != 0)
        return 1;
    double t0 = now_s(), deadline = t0 + duration, t = t0;
    unsigned long long max_errors = 100 + count / 10;
    unsigned inflight = 0;
    for (int i = 0; i < parallel; i++)
        slots[i].fd = -1;
    struct epoll_event evs[MAX_EVENTS];
    while (cl.nheld < count && t < deadline && cl.errors <= max_errors) {
        /* Refill free slots while more connections are still wanted. */
        for (int i = 0; i < parallel && cl.nheld + inflight < count; i++)
            if (slots[i].fd < 0) {
                slot_open(&cl, &slots[i], i);
                if (slots[i].fd >= 0)
                    inflight++;
            }
        int n = epoll_wait(cl.ep, evs, MAX_EVENTS, 10);
        for (int i = 0; i < n; i++) {
            slot_t *s = &slots[evs[i].data.u32];
            if (s->fd >= 0 && slot_io(&cl, s, evs[i].events))
                inflight--;
        }
        t = now_s();
    }
    for (int i = 0; i < parallel; i++)
        if (slots[i].fd >= 0)
            close(slots[i].fd);
    printf("held=%u errors=%llu seconds=%.3f\n", cl.nheld, cl.errors, t - t0);
    fflush(stdout);
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
        close(cl.held[i]);
    }
    printf("dropped=%u\n", dropped);
    return cl.nheld == count && dropped == 0 ? 0 : 1;
}

static int usage(void)
{
    fprintf(stderr, "usage: connrate echo [--port P]\n"
                    "       connrate client --connect 127.0.0.1:PORT [--parallel N] "
                    "[--duration S] [--payload B] [--sources K] [--http]\n"
                    "       connrate hold --connect 127.0.0.1:PORT --count N [--parallel P] "
                    "[--duration S] [--payload B] [--sources K] [--http]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    signal(SIGPIPE, SIG_IGN);
    const char *target = NULL;
    int port = 0, parallel = 64;
    double duration = 5;
    unsigned payload = 16, sources = 16, count = 0;
    int duration_set = 0, http = 0;
    for (int i = 2; i < argc; i += 2) {
        if (strcmp(argv[i], "--http") == 0) {
            http = 1;
            i--; /* a flag: no value */
            continue;
        }
        if (i + 1 >= argc)
            return usage();
        if (strcmp(argv[i], "--connect") == 0)
            target = argv[i + 1];
        else if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--parallel") == 0)
            parallel = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--duration") == 0)
            duration = atof(argv[i + 1]), duration_set = 1;
        else if (strcmp(argv[i], "--count") == 0)
            count = (unsigned)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--payload") == 0)
            payload = (unsigned)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--sources") == 0)
            sources = (unsigned)atoi(argv[i + 1]);
        else
            return usage();
    }
    if (strcmp(argv[1], "echo") == 0)
        return run_echo(port);
    if (strcmp(argv[1], "hold") == 0) {
        if (!duration_set)
            duration = 60;
        if (target == NULL || parallel < 1 || parallel > MAX_PARALLEL || count < 1 ||
            count > 1000000 || duration <= 0 || duration > 600 || payload < 1 ||
            payload > MAX_PAYLOAD || sources < 1 || sources > 250)
            return usage();
        return run_hold(target, parallel, count, duration, payload, sources, http);
    }
    if (strcmp(argv[1], "client") != 0 || target == NULL || parallel < 1 ||
        parallel > MAX_PARALLEL || duration <= 0 || duration > 600 || payload < 1 ||
        payload > MAX_PAYLOAD || sources < 1 || sources > 250)
        return usage();
    return run_client(target, parallel, duration, payload, sources, http);
}
