/* httpback.c - HTTP/1.1 backend for the L7 benchmarks (benchmarks/README.md).
 *
 *   httpback [--port P] [--threads N]
 *       listens on 127.0.0.1:P (default: a free port; a P already taken is refused) and
 *       prints `port=P`. Answers `GET /size/N` (and HEAD, and POST once its body is read)
 *       with N bytes of fixed content (N up to 1 GiB), and any other request with the
 *       2-byte body `ok`; always Content-Length framing, status 200.
 *       Request bodies (Content-Length or chunked) are read and thrown away, so uploads of
 *       any size work. Keep-alive (HTTP/1.1 default; HTTP/1.0 only with Connection:
 *       keep-alive), pipelining (responses in request order; a request is not parsed before
 *       the response to the one before it has been handed to the kernel), Connection:
 *       close honoured. Malformed requests get 400 and the connection is closed.
 *
 * N threads (default 1), each with an epoll set of its own (edge-triggered, every socket
 * registered once for both directions) and a listening socket of its own on the same port
 * (SO_REUSEPORT), so the kernel spreads connections over the threads as it does over a
 * proxy's workers. Memory is bounded: one 80 KiB read buffer per thread; a connection holds
 * nothing between requests, and while a request is being read at most a partial head (16
 * KiB at most: above that 431) and up to 64 KiB of small responses waiting for the socket.
 * A response body is written straight from one static pattern. Loopback only.
 */
#define _GNU_SOURCE
#include "loopback.h"
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_THREADS 64
#define MAX_EVENTS 256
#define READ_CHUNK (64 * 1024)
#define MAX_HEAD (16 * 1024)
#define SCRATCH (READ_CHUNK + MAX_HEAD)
#define OUT_HIGH (32 * 1024)  /* stop parsing pipelined requests above this much pending */
#define OUT_MAX (64 * 1024)   /* out buffer capacity (a response head is far below 1 KiB) */
#define INLINE_BODY 1024      /* /size/N bodies up to this go into the out buffer */
#define PATTERN (256 * 1024)
#define MAX_SIZE (1ULL << 30) /* largest /size/N */

static char pattern[PATTERN];

typedef enum { ST_HEAD, ST_BODY_CL, ST_CH_SIZE, ST_CH_EXT, ST_CH_DATA, ST_CH_DATA_END,
               ST_CH_TRAILER } state_t;

typedef struct conn_s {
    int fd;
    state_t st;
    bool close_after;  /* the current request asked for close: close once answered */
    bool closing;      /* the response queued is the last one: close once it is flushed */
    bool stalled;      /* parsing stopped for output; buffered input may hold requests */
    bool ch_digits;    /* chunk size: at least one hex digit seen */
    unsigned line_len; /* chunked trailer: length of the current line */
    uint64_t left;     /* body bytes left to discard (CL, or of the current chunk) */
    char *in;          /* unparsed input carried between reads (malloc'd, exact size) */
    size_t in_len;
    char *out;         /* queued response bytes (malloc'd OUT_MAX while non-empty) */
    size_t out_len, out_off;
    uint64_t body_left; /* response body bytes still to send from `pattern` after `out` */
    /* the response owed once the current request's body has been read */
    uint64_t resp_size;
    bool resp_sized, resp_head_only;
} conn_t;

typedef struct {
    int lfd, ep;
    char *scratch;
} thread_t;

static void out_append(conn_t *c, const char *p, size_t n)
{
    if (c->out == NULL) {
        c->out = malloc(OUT_MAX);
        if (c->out == NULL) {
            perror("httpback: malloc");
            exit(1);
        }
        c->out_len = c->out_off = 0;
    }
    memcpy(c->out + c->out_len, p, n); /* callers keep out_len + n within OUT_MAX */
    c->out_len += n;
}

/* Queues the response to the request whose body just ended. */
static void respond(conn_t *c)
{
    char head[256];
    uint64_t n = c->resp_sized ? c->resp_size : 2;
    int h = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nContent-Length: %llu\r\nContent-Type: %s\r\n%s\r\n",
                     (unsigned long long)n,
                     c->resp_sized ? "application/octet-stream" : "text/plain",
                     c->close_after ? "Connection: close\r\n" : "");
    out_append(c, head, (size_t)h);
    if (!c->resp_head_only) {
        if (!c->resp_sized)
            out_append(c, "ok", 2);
        else if (n <= INLINE_BODY)
            out_append(c, pattern, (size_t)n);
        else
            c->body_left = n;
    }
    if (c->close_after)
        c->closing = true;
}

static void respond_error(conn_t *c, int status)
{
    char head[160];
    int h = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status,
                     status == 431 ? "Request Header Fields Too Large" : "Bad Request");
    out_append(c, head, (size_t)h); /* after the responses still queued, in order */
    c->closing = true;
}

/* Case-insensitive: does the comma-separated header value V[0..N) contain TOKEN? */
static bool has_token(const char *v, size_t n, const char *token)
{
    size_t t = strlen(token);
    for (size_t i = 0; i + t <= n; i++)
        if (strncasecmp(v + i, token, t) == 0)
            return true;
    return false;
}

/* Parses the head P[0..N) (ending with CRLF CRLF). Returns 0, or -1 when malformed. */
static int parse_head(conn_t *c, const char *p, size_t n)
{
    const char *end = p + n;
    const char *eol = memchr(p, '\n', n);
    const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
    if (sp1 == NULL || sp1 == p)
        return -1;
    const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
    if (sp2 == NULL)
        return -1;
    size_t mlen = (size_t)(sp1 - p);
    const char *target = sp1 + 1;
    size_t tlen = (size_t)(sp2 - target);
    const char *ver = sp2 + 1;
    if (eol - ver < 8 || memcmp(ver, "HTTP/1.", 7) != 0)
        return -1;
    bool http10 = ver[7] == '0';
    bool keepalive = !http10, chunked = false, have_cl = false;
    uint64_t cl = 0;
    for (const char *l = eol + 1; l < end;) {
        const char *le = memchr(l, '\n', (size_t)(end - l));
        if (le == NULL)
            return -1;
        size_t ll = (size_t)(le - l);
        if (ll > 0 && l[ll - 1] == '\r')
            ll--;
        if (ll == 0)
            break;
        const char *colon = memchr(l, ':', ll);
        if (colon == NULL)
            return -1;
        size_t nl = (size_t)(colon - l);
        const char *v = colon + 1;
        while (v < l + ll && (*v == ' ' || *v == '\t'))
            v++;
        size_t vl = (size_t)(l + ll - v);
        if (nl == 14 && strncasecmp(l, "content-length", 14) == 0) {
            if (vl == 0 || vl > 19)
                return -1;
            uint64_t x = 0;
            for (size_t i = 0; i < vl; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return -1;
                x = x * 10 + (uint64_t)(v[i] - '0');
            }
            if (have_cl && x != cl)
                return -1;
            have_cl = true;
            cl = x;
        } else if (nl == 17 && strncasecmp(l, "transfer-encoding", 17) == 0) {
            chunked = has_token(v, vl, "chunked");
            if (!chunked)
                return -1; /* no other coding is understood */
        } else if (nl == 10 && strncasecmp(l, "connection", 10) == 0) {
            if (has_token(v, vl, "close"))
                keepalive = false;
            else if (has_token(v, vl, "keep-alive"))
                keepalive = true;
        }
        l = le + 1;
    }
    c->close_after = !keepalive;
    c->resp_head_only = mlen == 4 && memcmp(p, "HEAD", 4) == 0;
    c->resp_sized = false;
    /* POST /size/N too (answered after its body): the TLS idle scenario sends a full
     * record each way through the proxy. */
    bool get = (mlen == 3 && memcmp(p, "GET", 3) == 0) || c->resp_head_only ||
               (mlen == 4 && memcmp(p, "POST", 4) == 0);
    if (get && tlen > 6 && memcmp(target, "/size/", 6) == 0) {
        uint64_t x = 0;
        size_t i = 6;
        for (; i < tlen && i < 17 && target[i] >= '0' && target[i] <= '9'; i++)
            x = x * 10 + (uint64_t)(target[i] - '0');
        if (i > 6 && (i == tlen || target[i] == '?') && x <= MAX_SIZE) {
            c->resp_sized = true;
            c->resp_size = x;
        }
    }
    if (chunked) {
        c->st = ST_CH_SIZE;
        c->left = 0;
        c->ch_digits = false;
    } else if (cl > 0) {
        c->st = ST_BODY_CL;
        c->left = cl;
    } else {
        respond(c);
        c->st = ST_HEAD;
    }
    return 0;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Parses requests (and throws bodies away) from P[0..N); queues their responses. Stops
 * early when output is pending (so responses stay in order and memory stays bounded) and
 * sets c->stalled. Returns the bytes consumed; -1 after queueing an error response. */
static long process(conn_t *c, const char *p, size_t n)
{
    size_t i = 0;
    c->stalled = false;
    while (i < n && !c->closing) {
        switch (c->st) {
        case ST_HEAD: {
            if (c->body_left > 0 || c->out_len - c->out_off > OUT_HIGH) {
                c->stalled = true;
                return (long)i;
            }
            const char *e = memmem(p + i, n - i, "\r\n\r\n", 4);
            if (e == NULL) {
                if (n - i >= MAX_HEAD) {
                    respond_error(c, 431);
                    return -1;
                }
                return (long)i; /* a partial head: wait for more */
            }
            size_t hl = (size_t)(e + 4 - (p + i));
            if (hl > MAX_HEAD) {
                respond_error(c, 431);
                return -1;
            }
            if (parse_head(c, p + i, hl) != 0) {
                respond_error(c, 400);
                return -1;
            }
            i += hl;
            break;
        }
        case ST_BODY_CL: {
            uint64_t take = n - i < c->left ? n - i : c->left;
            i += take;
            c->left -= take;
            if (c->left == 0) {
                respond(c);
                c->st = ST_HEAD;
            }
            break;
        }
        case ST_CH_SIZE: {
            int h = hexval(p[i]);
            if (h >= 0) {
                if (c->left >> 56)
                    goto bad;
                c->left = c->left * 16 + (uint64_t)h;
                c->ch_digits = true;
                i++;
                break;
            }
            if (!c->ch_digits)
                goto bad;
            c->st = ST_CH_EXT; /* extensions and CRLF: skipped to LF */
            break;
        }
        case ST_CH_EXT: {
            const char *lf = memchr(p + i, '\n', n - i);
            if (lf == NULL) {
                i = n;
                break;
            }
            i = (size_t)(lf - p) + 1;
            if (c->left == 0) {
                c->st = ST_CH_TRAILER;
                c->line_len = 0;
            } else {
                c->st = ST_CH_DATA;
            }
            break;
        }
        case ST_CH_DATA: {
            uint64_t take = n - i < c->left ? n - i : c->left;
            i += take;
            c->left -= take;
            if (c->left == 0)
                c->st = ST_CH_DATA_END;
            break;
        }
        case ST_CH_DATA_END: {
            char ch = p[i++];
            if (ch == '\n') {
                c->st = ST_CH_SIZE;
                c->left = 0;
                c->ch_digits = false;
            } else if (ch != '\r') {
                goto bad;
            }
            break;
        }
        case ST_CH_TRAILER: {
            char ch = p[i++];
            if (ch == '\n') {
                if (c->line_len == 0) {
                    respond(c);
                    c->st = ST_HEAD;
                }
                c->line_len = 0;
            } else if (ch != '\r') {
                c->line_len++;
            }
            break;
        }
        }
    }
    return (long)i;
bad:
    respond_error(c, 400);
    return -1;
}

/* Writes what is queued. 1: all written; 0: the socket is full; -1: error. */
static int flush(conn_t *c)
{
    while (c->out_len > c->out_off || c->body_left > 0) {
        struct iovec iov[2];
        int k = 0;
        if (c->out_len > c->out_off)
            iov[k++] = (struct iovec){c->out + c->out_off, c->out_len - c->out_off};
        if (c->body_left > 0)
            iov[k++] = (struct iovec){pattern, c->body_left < PATTERN ? c->body_left : PATTERN};
        ssize_t w = writev(c->fd, iov, k);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? 0 : -1;
        }
        size_t rest = (size_t)w;
        if (c->out_len > c->out_off) {
            size_t t = rest < c->out_len - c->out_off ? rest : c->out_len - c->out_off;
            c->out_off += t;
            rest -= t;
        }
        c->body_left -= rest;
    }
    free(c->out); /* nothing queued: an idle connection holds no buffer */
    c->out = NULL;
    c->out_len = c->out_off = 0;
    return 1;
}

static void conn_close(thread_t *t, conn_t *c)
{
    epoll_ctl(t->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

/* Makes all the progress possible on C; returns when the socket blocks both ways (the
 * edge-triggered epoll set reports the next change) or C was closed. */
static void drive(thread_t *t, conn_t *c)
{
    for (;;) {
        int f = flush(c);
        if (f < 0)
            goto close;
        if (f == 0)
            return; /* EPOLLOUT comes when there is room */
        if (c->closing) {
            shutdown(c->fd, SHUT_WR);
            goto close;
        }
        size_t len = c->in_len;
        if (len > 0)
            memcpy(t->scratch, c->in, len);
        free(c->in);
        c->in = NULL;
        c->in_len = 0;
        if (!c->stalled || len == 0) {
            ssize_t r = read(c->fd, t->scratch + len, SCRATCH - len);
            if (r < 0 && errno == EINTR)
                r = read(c->fd, t->scratch + len, SCRATCH - len);
            if (r < 0 && errno == EAGAIN) {
                if (len > 0) { /* keep the partial head */
                    c->in = malloc(len);
                    if (c->in == NULL)
                        goto close;
                    memcpy(c->in, t->scratch, len);
                    c->in_len = len;
                }
                return;
            }
            if (r <= 0)
                goto close;
            len += (size_t)r;
        }
        long used = process(c, t->scratch, len);
        if (used < 0)
            continue; /* the error response is flushed, then the connection closed */
        if ((size_t)used < len) {
            c->in_len = len - (size_t)used;
            c->in = malloc(c->in_len);
            if (c->in == NULL)
                goto close;
            memcpy(c->in, t->scratch + used, c->in_len);
        }
    }
close:
    conn_close(t, c);
}

static int listen_on(struct sockaddr_in *a)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)a, sizeof *a) != 0 || listen(fd, 4096) != 0) {
        perror("httpback: listen");
        exit(1);
    }
    socklen_t sl = sizeof *a;
    getsockname(fd, (struct sockaddr *)a, &sl);
    return fd;
}

static void *serve(void *arg)
{
    thread_t *t = arg;
    struct epoll_event evs[MAX_EVENTS];
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(t->ep, EPOLL_CTL_ADD, t->lfd, &lev);
    for (;;) {
        int n = epoll_wait(t->ep, evs, MAX_EVENTS, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            perror("httpback: epoll_wait");
            exit(1);
        }
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c != NULL) {
                drive(t, c);
                continue;
            }
            for (;;) {
                int fd = accept4(t->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0)
                    break; /* EAGAIN, or out of descriptors: the next event retries */
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                c = calloc(1, sizeof *c);
                if (c == NULL) {
                    close(fd);
                    continue;
                }
                c->fd = fd;
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                         .data.ptr = c};
                if (epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
                    close(fd);
                    free(c);
                }
            }
        }
    }
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: httpback [--port P] [--threads N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int port = 0, nthreads = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            nthreads = atoi(argv[++i]);
        else
            usage();
    }
    if (port < 0 || port > 65535 || nthreads < 1 || nthreads > MAX_THREADS)
        usage();
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    for (size_t i = 0; i < PATTERN; i++)
        pattern[i] = (char)('a' + i % 26);
    struct sockaddr_in a;
    char hp[32];
    snprintf(hp, sizeof hp, "127.0.0.1:%d", port);
    if (parse_loopback(hp, &a) != 0)
        usage();
    if (port != 0) {
        /* The threads share the port through SO_REUSEPORT, which would also let this
         * process join another one already listening there: probe without it first. */
        int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        if (probe < 0 || setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
            bind(probe, (struct sockaddr *)&a, sizeof a) != 0) {
            perror("httpback: port in use");
            return 1;
        }
        close(probe);
    }
    static thread_t threads[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    for (int i = 0; i < nthreads; i++) {
        threads[i].lfd = listen_on(&a); /* the first picks the port; the rest share it */
        threads[i].ep = epoll_create1(EPOLL_CLOEXEC);
        threads[i].scratch = malloc(SCRATCH);
        if (threads[i].ep < 0 || threads[i].scratch == NULL) {
            perror("httpback");
            return 1;
        }
    }
    printf("port=%d\n", ntohs(a.sin_port));
    fflush(stdout);
    for (int i = 1; i < nthreads; i++)
        if (pthread_create(&tids[i], NULL, serve, &threads[i]) != 0) {
            perror("httpback: pthread_create");
            return 1;
        }
    serve(&threads[0]);
    return 0;
}
