/* failalloc.h - allocation failure on purpose, for unit tests: the Nth allocation from now
 * fails, and a loop runs an operation once for every allocation it makes.
 *
 * Only test binaries linked with
 *     -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup,--wrap=asprintf
 * and failalloc.o get this (the Makefile's FAILALLOC_TESTS list). The linker then sends every
 * call to those functions made by an object linked statically (our code, the test itself)
 * to the __wrap_ functions here; calls made inside shared libraries (libyaml, libuv, libc's
 * own getaddrinfo) are not seen: their failures are theirs to handle and ours to survive
 * only through their error results.
 *
 * Disarmed (the default), the wrappers cost one relaxed atomic load and pass every call
 * through, so the other tests of a wrapped binary run as usual. */
#ifndef GW_FAILALLOC_H
#define GW_FAILALLOC_H

#include <stdbool.h>

/* From now on, the Nth allocation (1 = the next) fails, and with PERSIST every one after it
 * too (cleanup paths that allocate meet the same shortage). N = 0 disarms. */
void gw_failalloc_arm(unsigned long n, bool persist);
void gw_failalloc_disarm(void);

/* A cmocka teardown that only disarms: for a test whose failing assert may leave the
 * countdown armed (see gw_failalloc_op_t). A test with a teardown of its own calls
 * gw_failalloc_disarm from it instead. */
int gw_failalloc_teardown(void **state);

/* Allocations seen since the last arm, and how many of them were made to fail. */
unsigned long gw_failalloc_seen(void);
unsigned long gw_failalloc_failures(void);

/* One run of the operation under test: does its whole job from scratch and frees
 * everything it made, whatever happened, so that the next run starts clean and LeakSanitizer
 * sees nothing at exit. Returns
 *   0   it completed, and no allocation failed;
 *   < 0 an error (GW_ENOMEM, or whatever error the module reports for the failure);
 *   GW_FAILALLOC_ABSORBED  it completed although an allocation failed, and the op checked
 *       that the result is whole and right: a documented degradation (a config loader that
 *       loses a did-you-mean hint, say). The op must verify before claiming it: a result
 *       that silently lacks something is the bug this loop is for.
 * A cmocka assert that fails inside it leaves the countdown armed (cmocka jumps out): give
 * such a test a teardown that calls gw_failalloc_disarm, so the next test of the binary is
 * not hit. */
typedef int (*gw_failalloc_op_t)(void *ctx);
#define GW_FAILALLOC_ABSORBED 1

/* What a gw_failalloc_each loop saw. */
typedef struct gw_failalloc_report_s {
    unsigned long allocations; /* made by a complete run */
    unsigned long absorbed;    /* runs that completed despite their failed allocation */
} gw_failalloc_report_t;

/* Runs OP with allocation 1, 2, 3, ... failing (one at a time, or with PERSIST that one
 * and all after it) until a run makes no failing allocation; that run must return 0 and
 * every earlier one an error or GW_FAILALLOC_ABSORBED (the test fails naming the N that did
 * not). A run that crashes, or leaks (LeakSanitizer at exit, ASan build), fails the binary;
 * GW_FAILALLOC_TRACE=1 in the environment prints where each failed allocation was made. */
gw_failalloc_report_t gw_failalloc_each(gw_failalloc_op_t op, void *ctx, bool persist);

#endif
