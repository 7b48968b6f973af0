/* lab.c - see lab.h. */
#include "lab.h"

#include <stdio.h>
#include <unistd.h>

/* Weak: present in unit tests, NULL in proxy binaries. */
extern __attribute__((weak)) void gw_test_lab_missing(const char *msg, const char *file, int line);

/* see lab.h */
_Noreturn void gw__lab_missing(const char *lab, const char *title, const char *func,
                               const char *file, int line)
{
    char msg[512];
    int n = snprintf(msg, sizeof msg, "LAB %s not implemented: %s (%s) at %s:%d", lab, title, func,
                     file, line);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
    if (gw_test_lab_missing != NULL)
        gw_test_lab_missing(msg, file, line);
    /* Not a trap: SIGILL made ASan and TSan print a report with a stack about the stub
     * itself, and under cmocka a longjmp out of its signal handler made TSan report
     * "signal-unsafe call" for every stubbed test. _exit skips the sanitizers' exit-time
     * checks too: a process stopped half way leaks by design. stdout is flushed so that a
     * unit test binary's "[ RUN ]" line shows which test got here. */
    msg[len] = '\n';
    ssize_t w = write(STDERR_FILENO, msg, len + 1); /* len < sizeof msg */
    (void)w;
    fflush(stdout);
    _exit(GW_LAB_EXIT);
}
