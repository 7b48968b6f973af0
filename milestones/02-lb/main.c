/* main.c - gw02, milestone 02: milestone 01's TCP proxy with backends, balancers, and
 * active and passive health checks. */
#include "cli.h"
#include "lb.h"

int main(int argc, char **argv)
{
    static const gw_cli_t cli = {
        .prog = "gw02",
        .summary = "milestone 02: TCP proxy with load balancing and health checks",
        .ext = &gw_lb_config_ext,
        .app = &gw_lb_app,
        .prepare = gw_lb_prepare,
        .release = gw_lb_release,
    };
    return gw_cli_main(argc, argv, &cli);
}
