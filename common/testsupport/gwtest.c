/* gwtest.c - see gwtest.h. */
#include "gwtest.h"

#include "config.h"
#include "lab.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* see gwtest.h */
void gw_test_close_loop(uv_loop_t *loop)
{
    uv_walk(loop, close_walk, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* see gwtest.h */
void gw__assert_contains(const char *haystack, const char *needle, const char *file, int line)
{
    if (haystack != NULL && strstr(haystack, needle) != NULL)
        return;
    print_error("%s:%d: expected to find \"%s\" in:\n%s\n", file, line, needle,
                haystack ? haystack : "(null)");
    _fail(file, line);
}

/* The thread that runs the tests: cmocka runs every test on the thread that called main. */
static pthread_t test_thread;
/* Copies of stdout and stderr as the process started (-1: none). */
static int start_stdout = -1, start_stderr = -1;

/* `make test T=name` reaches cmocka through this variable: only tests whose name matches the
 * pattern (cmocka's * and ? wildcards) run. A constructor, so no test's main() has to
 * remember it. */
__attribute__((constructor)) static void apply_filter(void)
{
    test_thread = pthread_self();
    start_stdout = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
    start_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    const char *f = getenv("GW_TEST_FILTER");
    if (f != NULL && *f != '\0')
        cmocka_set_test_filter(f);
}

#if defined(__SANITIZE_ADDRESS__)
/* Word by word and uninstrumented: the stack holds ASan's poisoned redzones, which an
 * instrumented copy (or memcpy) would report as an overflow. */
__attribute__((no_sanitize_address, noinline)) static void
copy_words(uintptr_t *to, const uintptr_t *from, size_t n)
{
    for (size_t i = 0; i < n; i++)
        to[i] = from[i];
}

/* A stub ends its test with a longjmp, so whatever the test had allocated is unreachable
 * afterwards, and LeakSanitizer would report it at exit as leaked: a report about the stub,
 * not about the learner's code. So this keeps a copy of the live stack (this frame up to
 * the stack's top: the test's frames, the callers', the registers that setjmp saved in
 * gw_test_lab_missing's frame) as a root region that LeakSanitizer scans at exit. What
 * the test could reach when it stopped stays reachable; memory leaked before (by this
 * test or an earlier one) is still reported. Costs one mapping per stubbed test. */
static void keep_stack_reachable(void)
{
    pthread_attr_t attr;
    void *lo;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return;
    int rc = pthread_attr_getstack(&attr, &lo, &size);
    pthread_attr_destroy(&attr);
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0) & ~(uintptr_t)(sizeof(uintptr_t) - 1);
    uintptr_t top = (uintptr_t)lo + size;
    if (rc != 0 || sp < (uintptr_t)lo || sp >= top)
        return;
    size_t bytes = top - sp;
    void *copy = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (copy == MAP_FAILED)
        return;
    copy_words(copy, (const uintptr_t *)sp, bytes / sizeof(uintptr_t));
    __lsan_register_root_region(copy, bytes);
}
#endif

/* see lab.h */
void gw_test_lab_missing(const char *msg, const char *file, int line)
{
    /* Another thread cannot end the current test (cmocka's longjmp belongs to the test
     * thread): the stub then exits the process, and the driver reports the test that was
     * running. Tests that race threads through lab code call it once on the test thread
     * first, so in a handout they stop here instead. */
    if (!pthread_equal(pthread_self(), test_thread))
        return;
    /* A test that captures stderr (to check a log line) and is stopped before it restores
     * it would swallow everything after, cmocka's own report and the sanitizers' too. */
    if (start_stdout >= 0)
        dup2(start_stdout, STDOUT_FILENO);
    if (start_stderr >= 0)
        dup2(start_stderr, STDERR_FILENO);
#if defined(__SANITIZE_ADDRESS__)
    jmp_buf regs; /* callee-saved registers may hold the test's only pointer to a block */
    if (setjmp(regs) == 0)
        keep_stack_reachable();
#endif
    /* cmocka's own failure path: a plain function call and longjmp, no signal, so neither
     * sanitizer sees anything unusual; the next test runs. */
    print_error("%s\n", msg);
    _fail(file, line);
}

/* see gwtest.h */
struct sockaddr_storage gw_test_sockaddr(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1)
        s4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1)
        s6->sin6_family = AF_INET6;
    else
        fail_msg("bad test address %s", ip);
    return ss;
}

/* see gwtest.h */
size_t gw_test_b64url(const uint8_t *in, size_t len, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        v |= i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0;
        v |= i + 2 < len ? in[i + 2] : 0;
        size_t chars = len - i >= 3 ? 4 : len - i + 1;
        for (size_t c = 0; c < chars; c++)
            out[o++] = abc[(v >> (18 - 6 * c)) & 63];
    }
    out[o] = '\0';
    return o;
}

/* see gwtest.h */
unsigned gw_test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* see gwtest.h */
int gw_test_plan_by_address(const gw_listener_cfg_t *old, size_t nold, const gw_listener_cfg_t *neu,
                            size_t nnew, size_t *keep)
{
    for (size_t j = 0; j < nnew; j++) {
        keep[j] = SIZE_MAX;
        for (size_t i = 0; i < nold && keep[j] == SIZE_MAX; i++)
            if (gw_addr_equal(&old[i].addr, &neu[j].addr))
                keep[j] = i;
    }
    return 0;
}
