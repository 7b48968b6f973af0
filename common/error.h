/* error.h - the project's error codes: 0 is success, negative GW_E* is failure. */
#ifndef GW_ERROR_H
#define GW_ERROR_H

#include <stdbool.h>
#include <stddef.h>

/* Our own codes live below -10000 so they never collide with the negated errno values
 * (UV_E* on Linux) that libuv returns and that we pass through unchanged. */
enum {
    GW_OK = 0,
    GW_ECONFIG = -10001,    /* configuration invalid (details were reported already) */
    GW_ENOMEM = -10002,     /* allocation failed or a hard memory cap was reached */
    GW_EINVAL = -10003,     /* invalid argument or input */
    GW_ERESOLVE = -10004,   /* a host name did not resolve */
    GW_EADDRINUSE = -10005, /* a listen address is taken by another process */
    GW_ENOBACKEND = -10006, /* no usable backend */
    GW_ELIMIT = -10007,     /* a configured limit was reached */
};

/* Writes a printf-style message into ERR (ERRLEN bytes, truncated); does nothing when ERR is
 * NULL or ERRLEN is 0. For functions that report why they failed in a caller's buffer. */
void gw_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Is ERR (a negated errno, UV_E* or GW_E* code) the process's own shortage of a descriptor or
 * of memory: EMFILE, ENFILE, ENOBUFS, ENOMEM, GW_ENOMEM? Such a failure says nothing about the
 * peer it happened with: a connect that fails so is not the backend's fault (no passive
 * failure, no retry, 503), and an accept that fails so means "stop accepting for a while". */
bool gw_err_local_shortage(int err);

/* Returns a static, human-readable string for a GW_E* code or a negated errno/UV_E* code. */
const char *gw_strerror(int err);

#endif
