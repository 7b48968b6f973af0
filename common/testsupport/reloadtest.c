/* reloadtest.c - see reloadtest.h. */
#include "reloadtest.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "gwtest.h"

/* see reloadtest.h */
unsigned gw_test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* see reloadtest.h */
int gw_test_plan_by_address(const gw_listener_cfg_t *old, size_t nold, const gw_listener_cfg_t *neu,
                            size_t nnew, size_t *keep)
{
    for (size_t j = 0; j < nnew; j++) {
        keep[j] = SIZE_MAX;
        for (size_t i = 0; i < nold && keep[j] == SIZE_MAX; i++)
            if (gw_addr_equal(&old[i].addr, &neu[j].addr))
                keep[j] = i;
    }
    return 0;
}
