/* main.c - gw04, milestone 04: milestone 03's gateway with HTTP/1.1 listeners: routes,
 * middleware, streaming bodies and upstream keep-alive pools. TCP listeners still work. */
#include "cli.h"
#include "hproxy.h"
#include "httpcfg.h"

int main(int argc, char **argv)
{
    static const gw_cli_t cli = {
        .prog = "gw04",
        .summary = "milestone 04: HTTP/1.1 reverse proxy with routes, middleware and keep-alive",
        .ext = &gw_http_config_ext,
        .app = &gw_http_app,
        .prepare = gw_http_prepare,
        .release = gw_http_release,
    };
    return gw_cli_main(argc, argv, &cli);
}
