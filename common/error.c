/* error.c - messages for GW_E* codes and negated errno values. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

/* see error.h */
void gw_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* see error.h */
bool gw_err_local_shortage(int err)
{
    return err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM ||
           err == GW_ENOMEM;
}

/* see error.h */
const char *gw_strerror(int err)
{
    switch (err) {
    case GW_OK:
        return "success";
    case GW_ECONFIG:
        return "invalid configuration";
    case GW_ENOMEM:
        return "out of memory or over a memory cap";
    case GW_EINVAL:
        return "invalid argument";
    case GW_ERESOLVE:
        return "host name did not resolve";
    case GW_EADDRINUSE:
        return "address already in use";
    case GW_ENOBACKEND:
        return "no usable backend";
    case GW_ELIMIT:
        return "limit reached";
    default:
        break;
    }
    /* strerror() may format unknown values into a shared static buffer, so it is not
     * thread-safe; strerrordesc_np (glibc 2.32) only returns constant strings. */
    if (err < 0 && err > -10000) {
        const char *s = strerrordesc_np(-err);
        if (s)
            return s;
    }
    return "unknown error";
}
