/* gwtest.c - see gwtest.h. */
#include "gwtest.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* `make test T=name` reaches cmocka through this variable: only tests whose name matches the
 * pattern (cmocka's * and ? wildcards) run. A constructor, so no test's main() has to
 * remember it. */
__attribute__((constructor)) static void apply_filter(void)
{
    const char *f = getenv("GW_TEST_FILTER");
    if (f != NULL && *f != '\0')
        cmocka_set_test_filter(f);
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
