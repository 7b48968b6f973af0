/* gwtest.h - small helpers shared by the cmocka unit tests. */
#ifndef GW_GWTEST_H
#define GW_GWTEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first. */
#include <cmocka.h>

#include <sys/socket.h>
#include <uv.h>

/* Lab stubs (common/lab.h) fail the current test when they are reached on the thread that
 * runs the tests; reached first on a thread a test started, they end the whole test binary
 * (a longjmp cannot cross threads, and the thread may hold a lock). So a test whose threads
 * call lab code calls it once on the test thread before it starts them, on an object that
 * takes no part in the race: in a handout it stops there. */

/* Closes every handle still open on LOOP, runs it until the closes complete, and asserts
 * the loop then closes cleanly (STYLE.md section 7: no handle outlives a test). */
void gw_test_close_loop(uv_loop_t *loop);

/* Asserts that the NUL-terminated HAYSTACK contains NEEDLE, printing both if not. */
#define gw_assert_contains(haystack, needle)                                                       \
    gw__assert_contains((haystack), (needle), __FILE__, __LINE__)
void gw__assert_contains(const char *haystack, const char *needle, const char *file, int line);

/* The socket address of the literal IPv4 or IPv6 address IP (port 0); fails the test when
 * IP is neither. */
struct sockaddr_storage gw_test_sockaddr(const char *ip);

/* Base64url without padding (RFC 4648 section 5) of LEN bytes of IN into OUT, which needs
 * 4 * LEN / 3 + 2 bytes (a NUL is written after the text); returns the text's length. For
 * building JWTs and JWKs in tests: the code under test only decodes. */
size_t gw_test_b64url(const uint8_t *in, size_t len, char *out);

/* A loopback TCP port free at the call (bound to port 0, read back, closed): another process
 * may take it before the test binds it, which on a test machine is rare enough. */
unsigned gw_test_free_port(void);

struct gw_listener_cfg_s;
/* The listener plan of a reload (runtime.h's gw_plan_listeners_fn) that the runtime's tests
 * use: keep the listener whose address is equal. Written here on purpose, apart from
 * milestone 05's LAB (reload_plan.c), so the runtime's tests do not depend on a milestone. */
int gw_test_plan_by_address(const struct gw_listener_cfg_s *old, size_t nold,
                            const struct gw_listener_cfg_s *neu, size_t nnew, size_t *keep);

#endif
