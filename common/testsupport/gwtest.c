/* gwtest.c - see gwtest.h. */
#include "gwtest.h"

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
