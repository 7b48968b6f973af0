/* main.c - gw03, milestone 03: milestone 02's balancing TCP proxy with circuit breakers,
 * rate limits, retry budgets, metrics and an admin API. */
#include "cli.h"
#include "res.h"

int main(int argc, char **argv)
{
    static const gw_cli_t cli = {
        .prog = "gw03",
        .summary = "milestone 03: TCP proxy with breakers, rate limits, retries, metrics, admin",
        .ext = &gw_res_config_ext,
        .app = &gw_res_app,
        .prepare = gw_res_prepare,
        .release = gw_res_release,
    };
    return gw_cli_main(argc, argv, &cli);
}
