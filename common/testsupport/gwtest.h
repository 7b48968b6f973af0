/* gwtest.h - small helpers shared by the cmocka unit tests. */
#ifndef GW_GWTEST_H
#define GW_GWTEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first. */
#include <cmocka.h>

#include <uv.h>

/* Closes every handle still open on LOOP, runs it until the closes complete, and asserts
 * the loop then closes cleanly (STYLE.md section 7: no handle outlives a test). */
void gw_test_close_loop(uv_loop_t *loop);

/* Asserts that the NUL-terminated HAYSTACK contains NEEDLE, printing both if not. */
#define gw_assert_contains(haystack, needle)                                                       \
    gw__assert_contains((haystack), (needle), __FILE__, __LINE__)
void gw__assert_contains(const char *haystack, const char *needle, const char *file, int line);

#endif
