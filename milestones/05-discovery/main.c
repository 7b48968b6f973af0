/* main.c - gw05, milestone 05: milestone 04's gateway whose configuration reloads while it
 * serves (SIGHUP, POST /reload, or a change of the file), dropping no connection. */
#include "cli.h"
#include "05-discovery/disc.h"
#include "05-discovery/disccfg.h"

int main(int argc, char **argv)
{
    const gw_cli_t cli = {
        .prog = "gw05",
        .summary = "milestone 05: the gateway, with configuration reloads that drop nothing",
        .ext = &gw_disc_config_ext,
        .app = gw_disc_app(),
        .prepare = gw_disc_prepare,
        .release = gw_disc_release,
    };
    return gw_cli_main(argc, argv, &cli);
}
