/* lab.c - see lab.h. */
#include "lab.h"

#include <stdio.h>
#include <unistd.h>

/* see lab.h */
_Noreturn void gw_lab_missing(const char *lab, const char *title, const char *func)
{
    char line[256];
    int n = snprintf(line, sizeof line, "LAB %s not implemented: %s (%s)\n", lab, title, func);
    if (n > 0) {
        ssize_t w =
            write(STDERR_FILENO, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
        (void)w;
    }
    __builtin_trap();
}
