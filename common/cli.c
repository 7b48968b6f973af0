/* cli.c - see cli.h. */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "version.h"

static void usage(FILE *out, const gw_cli_t *cli)
{
    fprintf(out,
            "%s - %s\n\n"
            "usage: %s -c FILE [-t | -T]\n"
            "  -c FILE     configuration file (YAML), required\n"
            "  -t          check the configuration and exit: 0 valid, 1 invalid; every\n"
            "              error is printed as FILE:LINE:COL: message\n"
            "  -T          print the effective configuration (defaults filled in) and exit\n"
            "  -h          this help\n"
            "  --version   print the version\n\n"
            "signals: TERM/INT drain and exit 0 (a second INT exits at once), HUP is\n"
            "logged and ignored before milestone 05, USR1 reopens the log file.\n",
            cli->prog, cli->summary, cli->prog);
}

typedef struct opts_s {
    const char *config;
    bool check, print;
} opts_t;

/* Returns -1 to go on, or an exit code. */
static int parse_args(int argc, char **argv, const gw_cli_t *cli, opts_t *o)
{
    static const struct option longopts[] = {
        {"version", no_argument, NULL, 'V'}, {"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":c:tTh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o->config = optarg;
            break;
        case 't':
            o->check = true;
            break;
        case 'T':
            o->print = true;
            break;
        case 'h':
            usage(stdout, cli);
            return 0;
        case 'V':
            printf("%s %s\n", cli->prog, GW_VERSION);
            return 0;
        case ':':
            fprintf(stderr, "%s: option -%c needs an argument\n", cli->prog, optopt);
            return 2;
        default:
            fprintf(stderr, "%s: unknown option '%s' (try -h)\n", cli->prog, argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s' (try -h)\n", cli->prog, argv[optind]);
        return 2;
    }
    if (o->config == NULL) {
        fprintf(stderr, "%s: -c FILE is required (try -h)\n", cli->prog);
        return 2;
    }
    return -1;
}

static int run(const gw_config_t *cfg, const gw_cli_t *cli)
{
    gw_log_setup(cfg->log_level, cfg->log_format);
    if (cfg->log_file != NULL) {
        int rc = gw_log_open(cfg->log_file);
        if (rc != 0) {
            fprintf(stderr, "%s: cannot open log file %s: %s\n", cli->prog, cfg->log_file,
                    gw_strerror(rc));
            return 1;
        }
    }
    void *layers[GW_LEVELS] = {0};
    if (cli->prepare != NULL && cli->prepare(cfg, layers) != 0)
        return 1;
    gw_info("%s %s starting: %zu listener(s), %u worker(s), config %s", cli->prog, GW_VERSION,
            cfg->nlisteners, cfg->workers, cfg->path);
    int code = gw_runtime_run(cfg, cli->app, layers);
    if (cli->release != NULL)
        cli->release(layers);
    return code;
}

/* see cli.h */
int gw_cli_main(int argc, char **argv, const gw_cli_t *cli)
{
    opts_t o = {0};
    int code = parse_args(argc, argv, cli, &o);
    if (code >= 0)
        return code;
    gw_config_t cfg;
    if (gw_config_load(o.config, cli->ext, &cfg, stderr) != 0) {
        fprintf(stderr, "%s: configuration %s is invalid\n", cli->prog, o.config);
        return 1;
    }
    if (o.print)
        gw_config_print(stdout, &cfg, cli->ext);
    else if (o.check)
        fprintf(stderr, "%s: configuration %s is valid\n", cli->prog, o.config);
    else
        code = run(&cfg, cli);
    gw_config_free(&cfg, cli->ext);
    return code < 0 ? 0 : code;
}
