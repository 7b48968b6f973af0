/* loopback.h - the load generators' address parsing: "127.x.y.z:port" only, so a benchmark
 * can never be aimed anywhere but this machine's loopback (127.0.0.0/8). */
#ifndef BENCH_LOOPBACK_H
#define BENCH_LOOPBACK_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Fills A from HOSTPORT; returns 0, or -1 when it is malformed or not a loopback address. */
static inline int parse_loopback(const char *hostport, struct sockaddr_in *a)
{
    char host[64];
    const char *colon = strrchr(hostport, ':');
    if (colon == NULL || (size_t)(colon - hostport) >= sizeof host)
        return -1;
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
        return -1;
    return (ntohl(a->sin_addr.s_addr) >> 24) == 127 ? 0 : -1;
}

#endif
