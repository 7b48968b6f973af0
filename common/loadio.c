/* loadio.c - see loadio.h */
#include "loadio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static unsigned system_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (unsigned)n;
}

/* One byte more than the cap is asked for: getting it means the file is too big. */
static char *system_read_file(const char *path, size_t cap, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = f ? malloc(cap + 1) : NULL;
    if (f != NULL && buf != NULL) {
        *len = fread(buf, 1, cap + 1, f);
        errno = ferror(f) ? EIO : *len > cap ? EFBIG : 0;
    }
    int saved = errno;
    if (f != NULL)
        fclose(f);
    if (saved != 0) {
        free(buf);
        buf = NULL;
    }
    errno = saved;
    return buf;
}

const gw_loadio_t gw_loadio_system = {system_cpus, gw_addr_resolve_system, system_read_file};

static const gw_loadio_t *current = &gw_loadio_system;

/* see loadio.h */
const gw_loadio_t *gw_loadio(void)
{
    return current;
}

/* see loadio.h */
void gw_loadio_set(const gw_loadio_t *io)
{
    current = io != NULL ? io : &gw_loadio_system;
}
