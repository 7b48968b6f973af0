/* loadio.h - everything the config loader reads from outside the process (the number of
 * CPUs, host names, key files) goes through one replaceable table, as time goes through the
 * clock: tests and the config loader's fuzz target swap in an in-memory one, so a load from
 * a string then opens no file and asks no resolver. */
#ifndef GW_LOADIO_H
#define GW_LOADIO_H

#include <stddef.h>

#include "addr.h"

typedef struct gw_loadio_s {
    /* CPUs online, for the default of `workers` (>= 1). */
    unsigned (*cpus)(void);
    /* Resolves the host name HOST (already known not to be an IP address) with port PORT
     * into OUT: 0, or GW_ERESOLVE with a static reason in *WHY. See gw_addr_parse. */
    int (*resolve)(const char *host, unsigned port, gw_addr_t *out, const char **why);
    /* Reads the whole file PATH if it has at most CAP bytes: a malloc'd buffer (free() it)
     * with its length in *LEN, or NULL with errno set (EFBIG when the file is larger). */
    char *(*read_file)(const char *path, size_t cap, size_t *len);
} gw_loadio_t;

/* The real ones: sysconf, getaddrinfo, stdio. */
extern const gw_loadio_t gw_loadio_system;

/* The table in use (gw_loadio_system unless replaced). */
const gw_loadio_t *gw_loadio(void);

/* Replaces the table (NULL: back to gw_loadio_system). Process-wide: call it only while no
 * load runs (a test's setup, a fuzz target's start), never from a worker. IO must stay
 * valid while it is in use. */
void gw_loadio_set(const gw_loadio_t *io);

#endif
