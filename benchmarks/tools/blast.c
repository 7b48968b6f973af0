/* blast.c - bulk-transfer load generator for the L4 benchmarks (benchmarks/README.md).
 *
 *   blast server [--port P]                  backend: sink or source, as each client asks
 *   blast send --connect HOST:PORT --bytes N client -> server: N bytes, then the server's count
 *   blast recv --connect HOST:PORT --bytes N server -> client: N bytes, then EOF
 *   blast post --connect HOST:PORT --bytes N [--chunk C [--seconds S]]   HTTP/1.1 upload:
 *       one `POST /upload` with `Content-Length: N` and N body bytes, or with --chunk C
 *       `Transfer-Encoding: chunked` and N payload bytes in chunks of C bytes (each
 *       "<hex C>\r\n", C bytes, "\r\n"; a shorter last one if C does not divide N; then
 *       "0\r\n\r\n"); then reads the response head and its Content-Length body; fails unless
 *       the status is 200. The clock stops when the response has arrived (the backend,
 *       httpback.c, answers after the last body byte). No half-close: the connection stays a
 *       keep-alive one. The chunked body is cut from a buffer of many framed chunks built
 *       once and sent whole, over and over (256 KiB or more per write), so even at C=1 (6
 *       bytes on the wire per payload byte) the client costs a few copies per byte, never a
 *       system call per chunk: a proxy parsing the chunks is what is measured. With
 *       --seconds S (chunked only: a chunked body can end anywhere) the client stops sending
 *       chunks S seconds after it started and ends the body there, so a proxy that is very
 *       slow per chunk still gives a figure in bounded time; payload= says how much was sent.
 *
 * Wire format: the client opens with a 16-byte header: "BLST", a mode byte ('S': the client
 * sends and the server sinks, 'R': the server sends), 3 bytes of padding, then the byte
 * count as a big-endian uint64. In 'S' mode the server answers the client's FIN with the
 * 8-byte count it received, so the client's clock stops only once every byte has reached
 * the backend (through any proxy in between), and a short transfer is detected.
 *
 * The client prints one line: `bytes=N seconds=S mbps=M` (M in 10^6 bytes per second) and
 * exits 0, or prints an error and exits 1. `post` adds `payload=N` (body bytes without the
 * chunk framing; bytes= and mbps= count these too) and `wire=W` (body bytes sent, framing
 * included). The server prints `port=P` once it listens.
 * Plain blocking sockets and a thread per connection: one bulk stream at a time is the
 * case measured, and the endpoints must cost less CPU per byte than a proxy does (large
 * reads and writes). Loopback only: the server binds 127.0.0.1, the client refuses other
 * addresses. Every loop ends: transfers are bounded by the byte count, and a socket that
 * stalls for IO_TIMEOUT_S fails the transfer.
 */
#define _GNU_SOURCE
#include "loopback.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IO_SIZE (256 * 1024)
#define IO_TIMEOUT_S 30
#define HDR_LEN 16

static char iobuf_main[IO_SIZE];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)(v & 0xff);
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static void set_timeouts(int fd)
{
    struct timeval tv = {IO_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Writes all of BUF; 0 on success, -1 on error (errno set). */
static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads exactly LEN bytes; 0 on success, -1 on error or early EOF (errno 0). */
static int read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = recv(fd, p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            errno = 0;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Sends COUNT bytes from BUF (IO_SIZE long) over and over. */
static int send_bytes(int fd, const char *buf, uint64_t count)
{
    while (count > 0) {
        size_t chunk = count < IO_SIZE ? (size_t)count : IO_SIZE;
        if (write_all(fd, buf, chunk) != 0)
            return -1;
        count -= chunk;
    }
    return 0;
}

/* Reads until EOF, at most LIMIT bytes (one more means the peer sent too much). Returns the
 * count, or -1 on a read error. */
static int64_t drain(int fd, char *buf, uint64_t limit)
{
    uint64_t total = 0;
    for (;;) {
        ssize_t n = recv(fd, buf, IO_SIZE, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return (int64_t)total;
        total += (uint64_t)n;
        if (total > limit)
            return (int64_t)total;
    }
}

/* ---- server -------------------------------------------------------------------------------- */

static void serve(int fd, char *buf)
{
    unsigned char hdr[HDR_LEN];
    if (read_full(fd, hdr, sizeof hdr) != 0 || memcmp(hdr, "BLST", 4) != 0)
        return;
    uint64_t count = get_u64(hdr + 8);
    if (hdr[4] == 'S') {
        int64_t got = drain(fd, buf, UINT64_MAX - 1);
        if (got < 0)
            return;
        unsigned char ack[8];
        put_u64(ack, (uint64_t)got);
        write_all(fd, ack, sizeof ack);
    } else if (hdr[4] == 'R') {
        if (send_bytes(fd, buf, count) != 0)
            return;
        shutdown(fd, SHUT_WR);
        drain(fd, buf, 0); /* wait for the client's FIN (or its reset) before closing */
    }
}

static void *conn_thread(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char *buf = malloc(IO_SIZE);
    if (buf != NULL) {
        memset(buf, 'x', IO_SIZE);
        serve(fd, buf);
        free(buf);
    }
    close(fd);
    return NULL;
}

static int run_server(int port)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 128) != 0 ||
        getsockname(ls, (struct sockaddr *)&a, &alen) != 0) {
        perror("blast server: listen");
        return 1;
    }
    printf("port=%d\n", ntohs(a.sin_port));
    fflush(stdout);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (;;) { /* ends when the harness kills the server */
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE)
                continue;
            perror("blast server: accept");
            return 1;
        }
        set_timeouts(fd);
        pthread_t t;
        if (pthread_create(&t, &attr, conn_thread, (void *)(intptr_t)fd) != 0)
            close(fd);
    }
}

/* ---- client -------------------------------------------------------------------------------- */

/* A connected socket to the loopback address TARGET ("127.x.x.x:PORT"), with the I/O
 * timeouts set; -1 after saying why. */
static int connect_to(const char *target)
{
    struct sockaddr_in a;
    if (parse_loopback(target, &a) != 0) {
        fprintf(stderr, "blast: --connect wants 127.x.x.x:PORT, got '%s'\n", target);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        perror("blast: socket");
        return -1;
    }
    set_timeouts(fd);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("blast: connect");
        close(fd);
        return -1;
    }
    return fd;
}

static int run_client(const char *target, char mode, uint64_t count)
{
    memset(iobuf_main, 'x', sizeof iobuf_main);
    double t0 = now_s();
    int fd = connect_to(target);
    if (fd < 0)
        return 1;
    unsigned char hdr[HDR_LEN] = {'B', 'L', 'S', 'T', (unsigned char)mode};
    put_u64(hdr + 8, count);
    if (write_all(fd, hdr, sizeof hdr) != 0) {
        perror("blast: send header");
        return 1;
    }
    uint64_t got;
    if (mode == 'S') {
        unsigned char ack[8];
        if (send_bytes(fd, iobuf_main, count) != 0 || shutdown(fd, SHUT_WR) != 0) {
            perror("blast send: transfer");
            return 1;
        }
        if (read_full(fd, ack, sizeof ack) != 0) {
            fprintf(stderr, "blast send: no byte count from the sink: %s\n",
                    errno ? strerror(errno) : "connection closed (half-close not forwarded?)");
            return 1;
        }
        got = get_u64(ack);
    } else {
        int64_t n = drain(fd, iobuf_main, count);
        if (n < 0) {
            perror("blast recv: transfer");
            return 1;
        }
        got = (uint64_t)n;
    }
    double secs = now_s() - t0;
    close(fd);
    if (got != count) {
        fprintf(stderr, "blast: %llu bytes arrived, %llu expected\n", (unsigned long long)got,
                (unsigned long long)count);
        return 1;
    }
    printf("bytes=%llu seconds=%.6f mbps=%.2f\n", (unsigned long long)count, secs,
           (double)count / secs / 1e6);
    return 0;
}

#define MAX_CHUNK (16u << 20) /* --chunk: one framed chunk must fit the send buffer */

/* The chunked body's send buffer: FRAMES framed chunks of CHUNK payload bytes each. */
typedef struct {
    char *buf;
    size_t len, frames, chunk;
} chunkbuf_t;

/* Writes one chunk frame (size line, LEN 'x' bytes, CRLF) at P; returns its length. P must
 * have room for LEN + 20 bytes. */
static size_t put_frame(char *p, size_t len)
{
    int hl = snprintf(p, 20, "%zx\r\n", len);
    memset(p + hl, 'x', len);
    memcpy(p + (size_t)hl + len, "\r\n", 2);
    return (size_t)hl + len + 2;
}

/* Fills CB with as many framed chunks of CHUNK bytes as fit in IO_SIZE (at least one); 0,
 * or -1 when out of memory. */
static int chunkbuf_init(chunkbuf_t *cb, size_t chunk)
{
    char tmp[24];
    size_t frame = (size_t)snprintf(tmp, sizeof tmp, "%zx\r\n", chunk) + chunk + 2;
    cb->chunk = chunk;
    cb->frames = frame < IO_SIZE ? IO_SIZE / frame : 1;
    cb->buf = malloc(cb->frames * frame + 5); /* + the last-chunk (send_chunked) */
    if (cb->buf == NULL)
        return -1;
    cb->len = 0;
    for (size_t i = 0; i < cb->frames; i++)
        cb->len += put_frame(cb->buf + cb->len, chunk);
    return 0;
}

/* Sends COUNT payload bytes as chunks of CB->chunk (a shorter last one), then the last-chunk
 * and an empty trailer; stops early, between two writes, once DEADLINE (now_s() time; 0:
 * none) has passed. Sets *PAYLOAD and *WIRE to the payload and body bytes sent. 0, or -1
 * (errno set). */
static int send_chunked(int fd, const chunkbuf_t *cb, uint64_t count, double deadline,
                        uint64_t *payload, uint64_t *wire)
{
    uint64_t whole = count / cb->chunk;
    size_t frame = cb->len / cb->frames, rest = (size_t)(count % cb->chunk);
    *payload = *wire = 0;
    while (whole > 0) {
        if (deadline > 0 && now_s() >= deadline) {
            rest = 0;
            break;
        }
        uint64_t n = whole < cb->frames ? whole : cb->frames;
        if (write_all(fd, cb->buf, (size_t)n * frame) != 0)
            return -1;
        *payload += n * cb->chunk;
        *wire += n * frame;
        whole -= n;
    }
    /* The buffer is sent: reuse its start for a shorter last chunk and the last-chunk. No
     * longer than one frame plus 5 bytes (its size has no more hex digits than CHUNK's). */
    size_t tl = rest > 0 ? put_frame(cb->buf, rest) : 0;
    memcpy(cb->buf + tl, "0\r\n\r\n", 5);
    *payload += rest;
    *wire += tl + 5;
    return write_all(fd, cb->buf, tl + 5);
}

/* Reads the response to the upload: a 200 head (up to 8 KiB) and its Content-Length body.
 * 0, or -1 after saying why. */
static int read_response(int fd)
{
    static char resp[8192];
    size_t got = 0;
    char *end = NULL;
    while (end == NULL) {
        if (got == sizeof resp - 1) {
            fprintf(stderr, "blast post: response head over %zu bytes\n", sizeof resp);
            return -1;
        }
        ssize_t n = recv(fd, resp + got, sizeof resp - 1 - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "blast post: no response: %s\n",
                    n == 0 ? "connection closed" : strerror(errno));
            return -1;
        }
        got += (size_t)n;
        resp[got] = '\0';
        end = strstr(resp, "\r\n\r\n");
    }
    if (strncmp(resp, "HTTP/1.1 200", 12) != 0 && strncmp(resp, "HTTP/1.0 200", 12) != 0) {
        *strchr(resp, '\r') = '\0';
        fprintf(stderr, "blast post: response '%s'\n", resp);
        return -1;
    }
    uint64_t cl = 0;
    for (char *l = strstr(resp, "\r\n"); l != NULL && l < end; l = strstr(l + 2, "\r\n"))
        if (strncasecmp(l + 2, "content-length:", 15) == 0)
            cl = strtoull(l + 17, NULL, 10);
    uint64_t body = got - (size_t)(end + 4 - resp);
    while (body < cl) {
        ssize_t n = recv(fd, iobuf_main, IO_SIZE, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "blast post: response body cut short\n");
            return -1;
        }
        body += (uint64_t)n;
    }
    return 0;
}

/* HTTP upload (see the top of the file); CHUNK 0: a Content-Length body; MAX_S > 0: stop
 * sending chunks after that many seconds. */
static int run_post(const char *target, uint64_t count, size_t chunk, double max_s)
{
    memset(iobuf_main, 'x', sizeof iobuf_main);
    chunkbuf_t cb = {0};
    if (chunk > 0 && chunkbuf_init(&cb, chunk) != 0) {
        fprintf(stderr, "blast post: out of memory\n");
        return 1;
    }
    char head[256];
    int hl = chunk > 0 ? snprintf(head, sizeof head,
                                  "POST /upload HTTP/1.1\r\nHost: bench\r\nContent-Type: "
                                  "application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
                       : snprintf(head, sizeof head,
                                  "POST /upload HTTP/1.1\r\nHost: bench\r\nContent-Type: "
                                  "application/octet-stream\r\nContent-Length: %llu\r\n\r\n",
                                  (unsigned long long)count);
    double t0 = now_s();
    int fd = connect_to(target);
    if (fd < 0) {
        free(cb.buf);
        return 1;
    }
    uint64_t payload = count, wire = count;
    int rc = write_all(fd, head, (size_t)hl);
    if (rc == 0 && chunk > 0)
        rc = send_chunked(fd, &cb, count, max_s > 0 ? t0 + max_s : 0, &payload, &wire);
    else if (rc == 0)
        rc = send_bytes(fd, iobuf_main, count);
    free(cb.buf);
    if (rc != 0) {
        perror("blast post: transfer");
        close(fd);
        return 1;
    }
    if (read_response(fd) != 0) {
        close(fd);
        return 1;
    }
    double secs = now_s() - t0;
    close(fd);
    printf("bytes=%llu seconds=%.6f mbps=%.2f payload=%llu wire=%llu\n",
           (unsigned long long)payload, secs, (double)payload / secs / 1e6,
           (unsigned long long)payload, (unsigned long long)wire);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: blast server [--port P]\n"
                    "       blast send|recv --connect 127.0.0.1:PORT --bytes N\n"
                    "       blast post --connect 127.0.0.1:PORT --bytes N [--chunk C "
                    "[--seconds S]]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    signal(SIGPIPE, SIG_IGN);
    const char *target = NULL;
    unsigned long long count = 0, chunk = 0;
    double max_s = 0;
    int port = 0;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--connect") == 0)
            target = argv[i + 1];
        else if (strcmp(argv[i], "--bytes") == 0)
            count = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--chunk") == 0 && strcmp(argv[1], "post") == 0) {
            char *e;
            chunk = strtoull(argv[i + 1], &e, 10);
            if (*e != '\0' || chunk == 0 || chunk > MAX_CHUNK) {
                fprintf(stderr, "blast post: --chunk wants 1..%u\n", MAX_CHUNK);
                return 2;
            }
        } else if (strcmp(argv[i], "--seconds") == 0 && strcmp(argv[1], "post") == 0) {
            max_s = atof(argv[i + 1]);
            if (!(max_s > 0)) {
                fprintf(stderr, "blast post: --seconds wants a positive number\n");
                return 2;
            }
        } else
            return usage();
    }
    if (strcmp(argv[1], "server") == 0)
        return run_server(port);
    if (strcmp(argv[1], "post") == 0 && target && count > 0 && (chunk > 0 || max_s == 0))
        return run_post(target, count, (size_t)chunk, max_s);
    if ((strcmp(argv[1], "send") == 0 || strcmp(argv[1], "recv") == 0) && target && count > 0)
        return run_client(target, argv[1][0] == 's' ? 'S' : 'R', count);
    return usage();
}
