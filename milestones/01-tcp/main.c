/* main.c - gw01, milestone 01: an L4 (TCP) proxy with half-close, backpressure and drain. */
#include "cli.h"
#include "tcp_proxy.h"

int main(int argc, char **argv)
{
    static const gw_config_ext_t ext = {.level = 1, .later = gw_config_later_keys};
    static const gw_cli_t cli = {
        .prog = "gw01",
        .summary = "milestone 01: TCP proxy with half-close, backpressure and drain",
        .ext = &ext,
        .app = &gw_tcp_app,
    };
    return gw_cli_main(argc, argv, &cli);
}
