/* failalloc.c - see failalloc.h. */
#include "failalloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gwtest.h"

/* The real functions, reached through the names the linker gives them under --wrap. */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
int __wrap_asprintf(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Atomics, so a wrapped binary whose tests start threads stays defined (and quiet under
 * TSan); the loop itself is single-threaded. */
static atomic_ulong fail_at;  /* 0: disarmed; else the allocation number that fails */
static atomic_ulong seen;     /* allocations since the last arm */
static atomic_ulong failures; /* of those, made to fail */
static atomic_bool persist_mode;

/* see failalloc.h */
void gw_failalloc_arm(unsigned long n, bool persist)
{
    atomic_store(&seen, 0);
    atomic_store(&failures, 0);
    atomic_store(&persist_mode, persist);
    atomic_store(&fail_at, n);
}

/* see failalloc.h */
void gw_failalloc_disarm(void)
{
    atomic_store(&fail_at, 0);
}

/* see failalloc.h */
int gw_failalloc_teardown(void **state)
{
    (void)state;
    gw_failalloc_disarm();
    return 0;
}

/* see failalloc.h */
unsigned long gw_failalloc_seen(void)
{
    return atomic_load(&seen);
}

/* see failalloc.h */
unsigned long gw_failalloc_failures(void)
{
    return atomic_load(&failures);
}

/* Sanitizer builds (every unit test build) have this; weak, so a plain build links too. */
void __sanitizer_print_stack_trace(void) __attribute__((weak));

/* With GW_FAILALLOC_TRACE set, each allocation made to fail prints where it was made: a
 * test that reports "allocation 139 of 200" is then one rerun away from the line. */
static void trace(unsigned long k)
{
    static int on = -1;
    if (on < 0)
        on = getenv("GW_FAILALLOC_TRACE") != NULL;
    if (!on)
        return;
    fprintf(stderr, "failalloc: allocation %lu fails here:\n", k);
    if (__sanitizer_print_stack_trace != NULL)
        __sanitizer_print_stack_trace();
}

/* One allocation is about to happen: true if it must fail. */
static bool must_fail(void)
{
    unsigned long at = atomic_load_explicit(&fail_at, memory_order_relaxed);
    if (at == 0)
        return false;
    unsigned long k = atomic_fetch_add(&seen, 1) + 1;
    if (k == at || (k > at && atomic_load(&persist_mode))) {
        atomic_fetch_add(&failures, 1);
        trace(k);
        errno = ENOMEM;
        return true;
    }
    return false;
}

void *__wrap_malloc(size_t n)
{
    return must_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return must_fail() ? NULL : __real_calloc(n, size);
}

/* realloc(p, 0) frees on glibc; it is still an allocation call as far as the code that made
 * it knows, so it may fail like any other (P is then left alone, as the contract says). */
void *__wrap_realloc(void *p, size_t n)
{
    return must_fail() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    return must_fail() ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
    return must_fail() ? NULL : __real_strndup(s, n);
}

/* vasprintf is not wrapped: asprintf's failure is simulated here, once, and the real work
 * goes through vasprintf's own (unwrapped, libc-internal) allocation. */
int __wrap_asprintf(char **out, const char *fmt, ...)
{
    if (must_fail()) {
        *out = NULL; /* glibc leaves it undefined; callers must not read it either way */
        return -1;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(out, fmt, ap);
    va_end(ap);
    return n;
}

/* see failalloc.h */
gw_failalloc_report_t gw_failalloc_each(gw_failalloc_op_t op, void *ctx, bool persist)
{
    gw_failalloc_report_t rep = {0, 0};
    for (unsigned long n = 1;; n++) {
        gw_failalloc_arm(n, persist);
        int rc = op(ctx);
        unsigned long made = gw_failalloc_seen(), failed = gw_failalloc_failures();
        gw_failalloc_disarm();
        if (failed == 0) {
            if (rc != 0)
                fail_msg("with no allocation failing (%lu made), the operation returned %d", made,
                         rc);
            rep.allocations = made;
            return rep;
        }
        if (rc == GW_FAILALLOC_ABSORBED) {
            rep.absorbed++;
            if (getenv("GW_FAILALLOC_TRACE") != NULL)
                fprintf(stderr, "failalloc: run %lu absorbed its failure\n", n);
        } else if (rc >= 0)
            fail_msg("allocation %lu of %lu failed%s, yet the operation returned %d, not an error "
                     "(GW_FAILALLOC_TRACE=1 shows where it was made)",
                     n, made, persist ? " (and every one after it)" : "", rc);
        if (n > 1000000)
            fail_msg("more than a million allocations: runaway operation?");
    }
}
