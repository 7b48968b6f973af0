/* cli.h - the command line every milestone binary shares: -c, -t, -T, -h, --version. */
#ifndef GW_CLI_H
#define GW_CLI_H

#include "config.h"
#include "runtime.h"

typedef struct gw_cli_s {
    const char *prog;           /* "gw01" */
    const char *summary;        /* one line for -h */
    const gw_config_ext_t *ext; /* the milestone's config keys (NULL: core keys only) */
    const gw_app_t *app;
    /* Builds the runtime's layers from the loaded config (may be NULL): milestone N's
     * prepare calls N-1's, then fills slot N of LAYERS (GW_LEVELS slots, all NULL at first).
     * Returns 0 or an error (logged; exit 1; the slots filled so far are released already).
     * Release frees them in reverse: slot N, then N-1's release. */
    int (*prepare)(const gw_config_t *cfg, void **layers);
    void (*release)(void **layers);
} gw_cli_t;

/* Parses ARGV and does what it says: prints help or version, checks (-t) or prints (-T)
 * the config, or runs the gateway until it is stopped. Returns the process exit code:
 * 0 success, 1 a bad config or a failure to start, 2 a usage error. */
int gw_cli_main(int argc, char **argv, const gw_cli_t *cli);

#endif
