/* test_config.c - unit tests for config.c: the core schema, its errors, -T, ext hooks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first. */
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "failalloc.h"
#include "gwtest.h"

/* A valid configuration of eight lines; tests put what they check before or after it, so
 * the expected positions stay easy to count. */
#define BASE                                                                                       \
    "listeners:\n"                                                                                 \
    "  - name: edge\n"                                                                             \
    "    address: 127.0.0.1:8080\n"                                                                \
    "    upstream: app\n"                                                                          \
    "upstreams:\n"                                                                                 \
    "  app:\n"                                                                                     \
    "    backends:\n"                                                                              \
    "      - address: 127.0.0.1:9001\n"

/* The upstream part of BASE alone (four lines). */
#define UPSTREAMS                                                                                  \
    "upstreams:\n"                                                                                 \
    "  app:\n"                                                                                     \
    "    backends:\n"                                                                              \
    "      - address: 127.0.0.1:9001\n"

static gw_config_t cfg;
static char *errs; /* everything the loader wrote to its error stream */
static size_t errs_len;

static int teardown(void **state)
{
    (void)state;
    gw_config_free(&cfg, NULL);
    free(errs);
    errs = NULL;
    return 0;
}

static int load_ext(const char *text, const gw_config_ext_t *ext)
{
    free(errs);
    errs = NULL;
    FILE *f = open_memstream(&errs, &errs_len);
    assert_non_null(f);
    int rc = gw_config_load_string("c.yaml", text, ext, &cfg, f);
    fclose(f);
    return rc;
}

static int load_level(const char *text, int level)
{
    gw_config_ext_t ext = {.level = level};
    return load_ext(text, &ext);
}

static int load(const char *text)
{
    return load_ext(text, NULL);
}

/* Loads TEXT at level 1, expecting failure with exactly the error lines WANT. */
static void expect_errors(const char *text, const char *want)
{
    assert_int_equal(load(text), GW_ECONFIG);
    assert_string_equal(errs, want);
    assert_int_equal(cfg.nlisteners, 0); /* freed and zeroed */
    assert_null(cfg.listeners);
}

static void expect_ok(const char *text)
{
    int rc = load(text);
    if (rc != 0)
        fail_msg("unexpected errors:\n%s", errs);
    assert_string_equal(errs, "");
}

/* ---- success ------------------------------------------------------------------------ */

static void config_defaults_filled_in(void **state)
{
    (void)state;
    expect_ok(BASE);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(cfg.workers, cpus < 1 ? 1 : cpus > 256 ? 256 : cpus);
    assert_int_equal(cfg.drain_timeout_ms, 30000);
    assert_int_equal(cfg.log_level, GW_LOG_INFO);
    assert_int_equal(cfg.log_format, GW_LOG_PLAIN);
    assert_null(cfg.log_file);
    assert_int_equal(cfg.buffers.chunk_size, 16384);
    assert_int_equal(cfg.buffers.high_water, 65536);
    assert_int_equal(cfg.buffers.low_water, 16384);
    assert_int_equal(cfg.buffers.max_memory, 256u << 20);
    assert_string_equal(cfg.path, "c.yaml");
}

static void config_listener_defaults_filled_in(void **state)
{
    (void)state;
    expect_ok(BASE);
    assert_int_equal(cfg.nlisteners, 1);
    const gw_listener_cfg_t *l = &cfg.listeners[0];
    assert_string_equal(l->name, "edge");
    assert_string_equal(l->address_text, "127.0.0.1:8080");
    assert_int_equal(gw_addr_port(&l->addr), 8080);
    assert_int_equal(l->protocol, GW_PROTO_TCP);
    assert_string_equal(l->upstream, "app");
    assert_int_equal(l->upstream_index, 0);
    assert_int_equal(l->max_connections, 4096);
    assert_int_equal(l->connect_timeout_ms, 5000);
    assert_int_equal(l->idle_timeout_ms, 300000);
}

static void config_upstreams_decoded(void **state)
{
    (void)state;
    expect_ok(BASE "  other:\n"
                   "    backends:\n"
                   "      - address: 10.0.0.1:1\n"
                   "      - address: 10.0.0.2:2\n");
    assert_int_equal(cfg.nupstreams, 2);
    assert_string_equal(cfg.upstreams[1].name, "other");
    assert_int_equal(cfg.upstreams[1].nbackends, 2);
    assert_string_equal(cfg.upstreams[1].backends[1].address_text, "10.0.0.2:2");
    assert_int_equal(gw_addr_port(&cfg.upstreams[1].backends[1].addr), 2);
}

static void config_upstream_index_follows_name(void **state)
{
    (void)state;
    expect_ok("listeners:\n"
              "  - {name: a, address: 127.0.0.1:1, upstream: second}\n"
              "upstreams:\n"
              "  first: {backends: [{address: 127.0.0.1:2}]}\n"
              "  second: {backends: [{address: 127.0.0.1:3}]}\n");
    assert_int_equal(cfg.listeners[0].upstream_index, 1);
}

static void config_all_values_parse(void **state)
{
    (void)state;
    expect_ok("workers: 4\n"
              "drain_timeout: 2m\n"
              "log: {level: debug, format: json, file: /var/log/gw.log}\n"
              "buffers: {chunk_size: 1MiB, high_water: 2MiB, low_water: 64KiB, "
              "max_memory: 1GiB}\n"
              "listeners:\n"
              "  - name: edge\n"
              "    address: 127.0.0.1:8080\n"
              "    protocol: tcp\n"
              "    upstream: app\n"
              "    max_connections: 5\n"
              "    connect_timeout: 250ms\n"
              "    idle_timeout: 1h\n" UPSTREAMS);
    assert_int_equal(cfg.workers, 4);
    assert_int_equal(cfg.drain_timeout_ms, 120000);
    assert_int_equal(cfg.log_level, GW_LOG_DEBUG);
    assert_int_equal(cfg.log_format, GW_LOG_JSON);
    assert_string_equal(cfg.log_file, "/var/log/gw.log");
    assert_int_equal(cfg.buffers.chunk_size, 1u << 20);
    assert_int_equal(cfg.buffers.high_water, 2u << 20);
    assert_int_equal(cfg.buffers.low_water, 65536);
    assert_int_equal(cfg.buffers.max_memory, 1u << 30);
    assert_int_equal(cfg.listeners[0].max_connections, 5);
    assert_int_equal(cfg.listeners[0].connect_timeout_ms, 250);
    assert_int_equal(cfg.listeners[0].idle_timeout_ms, 3600000);
}

static void config_drain_timeout_zero_allowed(void **state)
{
    (void)state;
    expect_ok("drain_timeout: 0s\n" BASE);
    assert_int_equal(cfg.drain_timeout_ms, 0);
}

static void config_localhost_backend_resolves(void **state)
{
    (void)state;
    expect_ok("listeners:\n"
              "  - {name: a, address: 127.0.0.1:1, upstream: app}\n"
              "upstreams:\n"
              "  app: {backends: [{address: localhost:9001}]}\n");
    const gw_backend_cfg_t *b = &cfg.upstreams[0].backends[0];
    char buf[GW_ADDR_STRLEN];
    assert_string_equal(b->address_text, "localhost:9001");
    assert_string_equal(gw_addr_format(&b->addr, buf, sizeof(buf)), "127.0.0.1:9001");
}

static void config_ipv6_listener_parses(void **state)
{
    (void)state;
    expect_ok("listeners:\n"
              "  - {name: a, address: '[::1]:8080', upstream: app}\n" UPSTREAMS);
    assert_int_equal(cfg.listeners[0].addr.ss.ss_family, AF_INET6);
    assert_int_equal(gw_addr_port(&cfg.listeners[0].addr), 8080);
}

static void config_unreferenced_upstream_is_fine(void **state)
{
    (void)state;
    expect_ok(BASE "  spare: {backends: [{address: 127.0.0.1:9}]}\n");
}

static void config_empty_upstreams_mapping_allowed_without_tcp_users(void **state)
{
    (void)state;
    assert_int_equal(load_level("listeners:\n"
                                "  - {name: a, address: 127.0.0.1:1, protocol: http}\n"
                                "upstreams: {}\n",
                                4),
                     0);
    assert_int_equal(cfg.nupstreams, 0);
}

static void config_protocol_http_accepted_at_level4(void **state)
{
    (void)state;
    assert_int_equal(load_level("listeners:\n"
                                "  - {name: a, address: 127.0.0.1:1, protocol: http}\n" UPSTREAMS,
                                4),
                     0);
    assert_int_equal(cfg.listeners[0].protocol, GW_PROTO_HTTP);
    assert_null(cfg.listeners[0].upstream);
}

static void config_upstream_lookup_by_name(void **state)
{
    (void)state;
    expect_ok(BASE);
    assert_ptr_equal(gw_config_upstream(&cfg, "app"), &cfg.upstreams[0]);
    assert_null(gw_config_upstream(&cfg, "nope"));
}

static void config_load_file_reads_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, BASE, strlen(BASE)), (ssize_t)strlen(BASE));
    close(fd);
    int rc = gw_config_load(path, NULL, &cfg, stderr);
    unlink(path);
    assert_int_equal(rc, 0);
    assert_string_equal(cfg.path, path);
    assert_int_equal(cfg.nlisteners, 1);
}

static void config_load_file_missing(void **state)
{
    (void)state;
    FILE *f = open_memstream(&errs, &errs_len);
    assert_int_equal(gw_config_load("/nonexistent/gw.yaml", NULL, &cfg, f), GW_ECONFIG);
    fclose(f);
    assert_string_equal(errs, "/nonexistent/gw.yaml:1:1: cannot open: No such file or directory\n");
}

static void config_null_errs_stream_is_quiet(void **state)
{
    (void)state;
    assert_int_equal(gw_config_load_string("c.yaml", "workers: 0\n" BASE, NULL, &cfg, NULL),
                     GW_ECONFIG);
}

/* ---- document-level errors ---------------------------------------------------------- */

static void config_syntax_error_position(void **state)
{
    (void)state;
    expect_errors("workers: 2\n  x: 1\n" BASE,
                  "c.yaml:2:4: syntax error: mapping values are not allowed in this context\n");
}

static void config_empty_file(void **state)
{
    (void)state;
    expect_errors("", "c.yaml:1:1: empty configuration\n");
}

static void config_root_must_be_mapping(void **state)
{
    (void)state;
    expect_errors("- a\n", "c.yaml:1:1: the configuration must be a mapping (got a sequence)\n");
}

static void config_duplicate_key(void **state)
{
    (void)state;
    expect_errors(BASE "workers: 1\nworkers: 2\n",
                  "c.yaml:10:1: duplicate key 'workers' (first defined at 9:1)\n");
}

static void config_alias_rejected(void **state)
{
    (void)state;
    expect_errors("workers: &w 2\ndrain_timeout: *w\n" BASE,
                  "c.yaml:1:10: anchors (&w) are not supported\n"
                  "c.yaml:2:16: aliases (*w) are not supported\n");
}

/* ---- unknown and later keys --------------------------------------------------------- */

static void config_unknown_key_did_you_mean(void **state)
{
    (void)state;
    expect_errors("wrkers: 2\n" BASE,
                  "c.yaml:1:1: unknown key 'wrkers' (did you mean 'workers'?)\n");
}

static void config_unknown_key_without_hint(void **state)
{
    (void)state;
    expect_errors("colour: red\n" BASE, "c.yaml:1:1: unknown key 'colour'\n");
}

static void config_unknown_key_in_listener(void **state)
{
    (void)state;
    expect_errors("listeners:\n"
                  "  - name: edge\n"
                  "    adress: 127.0.0.1:8080\n"
                  "    upstream: app\n" UPSTREAMS,
                  "c.yaml:2:5: missing required key 'address'\n"
                  "c.yaml:3:5: unknown key 'adress' (did you mean 'address'?)\n");
}

static void config_unknown_key_in_log(void **state)
{
    (void)state;
    expect_errors("log:\n  levle: debug\n" BASE,
                  "c.yaml:2:3: unknown key 'levle' (did you mean 'level'?)\n");
}

static void config_later_key_at_root(void **state)
{
    (void)state;
    expect_errors("admin:\n  address: 127.0.0.1:9901\n" BASE,
                  "c.yaml:1:1: admin: needs gw03 or later\n");
}

static void config_later_key_in_upstream(void **state)
{
    (void)state;
    expect_errors(BASE "    balancer: round_robin\n",
                  "c.yaml:9:5: balancer: needs gw02 or later\n");
}

static void config_later_key_in_backend(void **state)
{
    (void)state;
    expect_errors(BASE "        weight: 3\n", "c.yaml:9:9: weight: needs gw02 or later\n");
}

static void config_later_key_in_listener(void **state)
{
    (void)state;
    expect_errors("listeners:\n"
                  "  - name: edge\n"
                  "    address: 127.0.0.1:8080\n"
                  "    upstream: app\n"
                  "    rate_limit: {}\n" UPSTREAMS,
                  "c.yaml:5:5: rate_limit: needs gw03 or later\n");
}

static void config_later_key_unknown_at_its_own_level(void **state)
{
    (void)state;
    /* A gw02 binary whose hooks did not claim `balancer` must not say "needs gw02". */
    assert_int_equal(load_level(BASE "    balancer: round_robin\n", 2), GW_ECONFIG);
    assert_string_equal(errs, "c.yaml:9:5: unknown key 'balancer'\n");
}

static void config_ext_later_table_consulted(void **state)
{
    (void)state;
    static const gw_later_key_t extra[] = {{"listeners.*.magic", 9}, {NULL, 0}};
    gw_config_ext_t ext = {.level = 1, .later = extra};
    assert_int_equal(load_ext("listeners:\n"
                              "  - {name: a, address: 127.0.0.1:1, upstream: app, magic: 1}\n"
                              "admin: {}\n" UPSTREAMS,
                              &ext),
                     GW_ECONFIG);
    assert_string_equal(errs, "c.yaml:2:52: magic: needs gw09 or later\n"
                              "c.yaml:3:1: admin: needs gw03 or later\n");
}

/* ---- wrong types -------------------------------------------------------------------- */

static void config_workers_must_be_integer(void **state)
{
    (void)state;
    expect_errors("workers: two\n" BASE, "c.yaml:1:10: workers must be an integer (got 'two')\n");
}

static void config_listeners_must_be_sequence(void **state)
{
    (void)state;
    expect_errors("listeners:\n  name: edge\n" UPSTREAMS,
                  "c.yaml:2:3: listeners must be a sequence (got a mapping)\n");
}

static void config_listener_must_be_mapping(void **state)
{
    (void)state;
    expect_errors("listeners:\n  - edge\n" UPSTREAMS,
                  "c.yaml:2:5: each listener must be a mapping (got 'edge')\n");
}

static void config_upstreams_must_be_mapping(void **state)
{
    (void)state;
    expect_errors("listeners:\n"
                  "  - {name: a, address: 127.0.0.1:1, upstream: app}\n"
                  "upstreams:\n"
                  "  - app\n",
                  "c.yaml:4:3: upstreams must be a mapping (got a sequence)\n");
}

static void config_upstream_must_be_mapping(void **state)
{
    (void)state;
    /* The listener's reference to `app` is not reported too: the name exists. */
    expect_errors("listeners:\n"
                  "  - {name: a, address: 127.0.0.1:1, upstream: app}\n"
                  "upstreams:\n"
                  "  app: 127.0.0.1:9001\n",
                  "c.yaml:4:8: upstream 'app' must be a mapping (got '127.0.0.1:9001')\n");
}

static void config_backends_must_be_sequence(void **state)
{
    (void)state;
    expect_errors("listeners:\n"
                  "  - {name: a, address: 127.0.0.1:1, upstream: app}\n"
                  "upstreams:\n"
                  "  app:\n"
                  "    backends: 127.0.0.1:9001\n",
                  "c.yaml:5:15: backends must be a sequence (got '127.0.0.1:9001')\n");
}

static void config_backend_must_be_mapping(void **state)
{
    (void)state;
    expect_errors("listeners:\n"
                  "  - {name: a, address: 127.0.0.1:1, upstream: app}\n"
                  "upstreams:\n"
                  "  app:\n"
                  "    backends:\n"
                  "      - 127.0.0.1:9001\n",
                  "c.yaml:6:9: each backend must be a mapping (got '127.0.0.1:9001')\n");
}

static void config_log_must_be_mapping(void **state)
{
    (void)state;
    expect_errors("log: debug\n" BASE, "c.yaml:1:6: log must be a mapping (got 'debug')\n");
}

static void config_buffers_must_be_mapping(void **state)
{
    (void)state;
    expect_errors("buffers: [1]\n" BASE,
                  "c.yaml:1:10: buffers must be a mapping (got a sequence)\n");
}

static void config_listener_name_must_be_string(void **state)
{
    (void)state;
    expect_errors("listeners:\n"
                  "  - name: {a: 1}\n"
                  "    address: 127.0.0.1:8080\n"
                  "    upstream: app\n" UPSTREAMS,
                  "c.yaml:2:11: name must be a string (got a mapping)\n");
}

static void config_max_connections_must_be_unquoted(void **state)
{
    (void)state;
    expect_errors(
        "listeners:\n"
        "  - {name: a, address: 127.0.0.1:1, upstream: app, max_connections: '5'}\n" UPSTREAMS,
        "c.yaml:2:69: max_connections must be an integer, without quotes (got \"5\")\n");
}

static void config_log_level_unknown(void **state)
{
    (void)state;
    expect_errors("log:\n  level: verbose\n" BASE,
                  "c.yaml:2:10: level must be one of: debug, info, warn, error, off "
                  "(got 'verbose')\n");
}

static void config_log_format_unknown(void **state)
{
    (void)state;
    expect_errors("log:\n  format: xml\n" BASE,
                  "c.yaml:2:11: format must be one of: plain, json (got 'xml')\n");
}

static void config_log_file_empty(void **state)
{
    (void)state;
    expect_errors("log:\n  file: ''\n" BASE,
                  "c.yaml:2:9: file must not be empty (leave it out to log to stderr)\n");
}

static void config_protocol_unknown(void **state)
{
    (void)state;
    expect_errors("listeners:\n"
                  "  - {name: a, address: 127.0.0.1:1, upstream: app, protocol: udp}\n" UPSTREAMS,
                  "c.yaml:2:62: protocol must be one of: tcp, http (got 'udp')\n");
}

static void config_duration_needs_unit(void **state)
{
    (void)state;
    expect_errors("drain_timeout: 30\n" BASE,
                  "c.yaml:1:16: drain_timeout must be a duration like 250ms, 5s, 2m or 1h "
                  "(got '30')\n");
}

static void config_size_needs_known_unit(void **state)
{
    (void)state;
    expect_errors("buffers:\n  chunk_size: 16k\n" BASE,
                  "c.yaml:2:15: chunk_size must be a size like 4096, 64KiB or 1MiB (got '16k')\n");
}

/* ---- out of range ------------------------------------------------------------------- */

static void config_workers_zero_out_of_range(void **state)
{
    (void)state;
    expect_errors("workers: 0\n" BASE, "c.yaml:1:10: workers: 0 is out of range 1..256\n");
}

static void config_workers_too_many(void **state)
{
    (void)state;
    expect_errors("workers: 257\n" BASE, "c.yaml:1:10: workers: 257 is out of range 1..256\n");
}

static void config_drain_timeout_out_of_range(void **state)
{
    (void)state;
    expect_errors("drain_timeout: 61m\n" BASE,
                  "c.yaml:1:16: drain_timeout: 61m is out of range 0s..1h\n");
}

static void config_chunk_size_out_of_range(void **state)
{
    (void)state;
    expect_errors("buffers:\n  chunk_size: 2MiB\n" BASE,
                  "c.yaml:2:15: chunk_size: 2MiB is out of range 1KiB..1MiB\n");
}

static void config_high_water_out_of_range(void **state)
{
    (void)state;
    expect_errors("buffers:\n  high_water: 512\n" BASE,
                  "c.yaml:2:15: high_water: 512 is out of range 1KiB..64MiB\n");
}

static void config_low_water_out_of_range(void **state)
{
    (void)state;
    expect_errors("buffers:\n  low_water: 65MiB\n" BASE,
                  "c.yaml:2:14: low_water: 65MiB is out of range 0..64MiB\n");
}

static void config_max_memory_out_of_range(void **state)
{
    (void)state;
    expect_errors("buffers:\n  max_memory: 65GiB\n" BASE,
                  "c.yaml:2:15: max_memory: 65GiB is out of range 1MiB..64GiB\n");
}

static void config_max_connections_out_of_range(void **state)
{
    (void)state;
    expect_errors(
        "listeners:\n"
        "  - {name: a, address: 127.0.0.1:1, upstream: app, max_connections: 0}\n" UPSTREAMS,
        "c.yaml:2:69: max_connections: 0 is out of range 1..1000000\n");
}

static void config_connect_timeout_out_of_range(void **state)
{
    (void)state;
    expect_errors(
        "listeners:\n"
        "  - {name: a, address: 127.0.0.1:1, upstream: app, connect_timeout: 0ms}\n" UPSTREAMS,
        "c.yaml:2:69: connect_timeout: 0ms is out of range 1ms..10m\n");
}

static void config_idle_timeout_out_of_range(void **state)
{
    (void)state;
    expect_errors(
        "listeners:\n"
        "  - {name: a, address: 127.0.0.1:1, upstream: app, idle_timeout: 25h}\n" UPSTREAMS,
        "c.yaml:2:66: idle_timeout: 25h is out of range 1ms..24h\n");
}

/* ---- cross-field checks ------------------------------------------------------------- */

static void config_low_water_must_be_below_high_water(void **state)
{
    (void)state;
    expect_errors("buffers:\n  high_water: 16KiB\n  low_water: 16KiB\n" BASE,
                  "c.yaml:3:14: low_water (16KiB) must be below high_water (16KiB)\n");
}

static void config_small_high_water_against_default_low_water(void **state)
{
    (void)state;
    /* low_water is not written: the error goes to the key that was. */
    expect_errors("buffers:\n  high_water: 8KiB\n" BASE,
                  "c.yaml:2:15: low_water (16KiB) must be below high_water (8KiB)\n");
}

static void config_max_memory_below_four_chunks(void **state)
{
    (void)state;
    expect_errors("buffers:\n  chunk_size: 1MiB\n  high_water: 2MiB\n  max_memory: 3MiB\n" BASE,
                  "c.yaml:4:15: max_memory (3MiB) must be at least 4 * chunk_size (1MiB)\n");
}

static void config_bad_size_skips_cross_checks(void **state)
{
    (void)state;
    expect_errors("buffers:\n  high_water: lots\n  low_water: 1MiB\n" BASE,
                  "c.yaml:2:15: high_water must be a size like 4096, 64KiB or 1MiB "
                  "(got 'lots')\n");
}

/* ---- missing required keys ---------------------------------------------------------- */

static void config_missing_listeners(void **state)
{
    (void)state;
    expect_errors("workers: 1\n" UPSTREAMS, "c.yaml:1:1: missing required key 'listeners'\n");
}

static void config_missing_upstreams(void **state)
{
    (void)state;
    /* Without `upstreams` the listener's reference cannot be checked, so it is not. */
    expect_errors("listeners:\n  - {name: a, address: 127.0.0.1:1, upstream: app}\n",
                  "c.yaml:1:1: missing required key 'upstreams'\n");
}

static void config_listeners_empty(void **state)
{
    (void)state;
    expect_errors("listeners: []\n" UPSTREAMS, "c.yaml:1:12: listeners must not be empty\n");
}

static void config_missing_listener_name(void **state)
{
    (void)state;
    expect_errors("listeners:\n"
                  "  - address: 127.0.0.1:8080\n"
                  "    upstream: app\n" UPSTREAMS,
                  "c.yaml:2:5: missing required key 'name'\n");
}

static void config_missing_listener_address(void **state)
{
    (void)state;
    expect_errors("listeners:\n"
                  "  - name: edge\n"
                  "    upstream: app\n" UPSTREAMS,
                  "c.yaml:2:5: missing required key 'address'\n");
}

static void config_missing_listener_upstream(void **state)
{
    (void)state;
    expect_errors("listeners:\n"
                  "  - name: edge\n"
                  "    address: 127.0.0.1:8080\n" UPSTREAMS,
                  "c.yaml:2:5: missing required key 'upstream'\n");
}

static void config_missing_backends(void **state)
{
    (void)state;
    expect_errors("listeners:\n"
                  "  - {name: a, address: 127.0.0.1:1, upstream: app}\n"
                  "upstreams:\n"
                  "  app:\n"
                  "    balance: x\n",
                  "c.yaml:5:5: missing required key 'backends'\n"
                  "c.yaml:5:5: unknown key 'balance'\n");
}

static void config_backends_empty(void **state)
{
    (void)state;
    expect_errors("listeners:\n"
                  "  - {name: a, address: 127.0.0.1:1, upstream: app}\n"
                  "upstreams:\n"
                  "  app:\n"
                  "    backends: []\n",
                  "c.yaml:5:15: backends must not be empty\n");
}

static void config_missing_backend_address(void **state)
{
    (void)state;
    expect_errors("listeners:\n"
                  "  - {name: a, address: 127.0.0.1:1, upstream: app}\n"
                  "upstreams:\n"
                  "  app:\n"
                  "    backends:\n"
                  "      - {}\n",
                  "c.yaml:6:9: missing required key 'address'\n");
}

/* ---- addresses ---------------------------------------------------------------------- */

/* A listener whose address is ADDR; errors land on line 3, column 14. */
#define WITH_ADDRESS(addr)                                                                         \
    "listeners:\n"                                                                                 \
    "  - name: edge\n"                                                                             \
    "    address: " addr "\n"                                                                      \
    "    upstream: app\n" UPSTREAMS

static void config_address_ipv4_octet_out_of_range(void **state)
{
    (void)state;
    expect_errors(WITH_ADDRESS("127.0.0.256:80"),
                  "c.yaml:3:14: bad address '127.0.0.256:80': bad IPv4 address "
                  "(four numbers 0..255 separated by dots)\n");
}

static void config_address_missing_port(void **state)
{
    (void)state;
    expect_errors(WITH_ADDRESS("127.0.0.1"), "c.yaml:3:14: bad address '127.0.0.1': missing port "
                                             "(expected HOST:PORT, e.g. 127.0.0.1:8080)\n");
}

static void config_address_port_zero(void **state)
{
    (void)state;
    expect_errors(WITH_ADDRESS("127.0.0.1:0"),
                  "c.yaml:3:14: bad address '127.0.0.1:0': port 0 is not allowed (use 1..65535)\n");
}

static void config_address_port_too_large(void **state)
{
    (void)state;
    expect_errors(WITH_ADDRESS("127.0.0.1:70000"),
                  "c.yaml:3:14: bad address '127.0.0.1:70000': port must be 1..65535\n");
}

static void config_address_ipv6_unclosed(void **state)
{
    (void)state;
    expect_errors(WITH_ADDRESS("'[::1'"),
                  "c.yaml:3:14: bad address '[::1': missing ']' after the IPv6 address\n");
}

static void config_address_ipv6_unbracketed(void **state)
{
    (void)state;
    expect_errors(WITH_ADDRESS("'::1:80'"),
                  "c.yaml:3:14: bad address '::1:80': an IPv6 address needs brackets, "
                  "e.g. [::1]:8080\n");
}

static void config_address_not_a_string(void **state)
{
    (void)state;
    expect_errors(WITH_ADDRESS("[1, 2]"),
                  "c.yaml:3:14: address must be HOST:PORT like 127.0.0.1:8080 "
                  "(got a sequence)\n");
}

static void config_backend_address_bad(void **state)
{
    (void)state;
    expect_errors(BASE "      - address: 10.0.0.1:99999\n",
                  "c.yaml:9:18: bad address '10.0.0.1:99999': port must be 1..65535\n");
}

/* ---- references and uniqueness ------------------------------------------------------ */

static void config_unknown_upstream(void **state)
{
    (void)state;
    expect_errors("listeners:\n"
                  "  - name: edge\n"
                  "    address: 127.0.0.1:8080\n"
                  "    upstream: nope\n" UPSTREAMS,
                  "c.yaml:4:15: unknown upstream 'nope'\n");
}

static void config_duplicate_listener_name(void **state)
{
    (void)state;
    expect_errors("listeners:\n"
                  "  - {name: edge, address: 127.0.0.1:1, upstream: app}\n"
                  "  - {name: edge, address: 127.0.0.1:2, upstream: app}\n" UPSTREAMS,
                  "c.yaml:3:12: duplicate listener name 'edge'\n");
}

static void config_duplicate_listener_address(void **state)
{
    (void)state;
    expect_errors("listeners:\n"
                  "  - {name: a, address: 127.0.0.1:1, upstream: app}\n"
                  "  - {name: b, address: 127.0.0.1:1, upstream: app}\n" UPSTREAMS,
                  "c.yaml:3:24: address '127.0.0.1:1' is already used by listener 'a'\n");
}

/* A backend is its upstream and address: the same address twice in one upstream is an
 * error (the same one spelt another way too), in another upstream it is another backend. */
static void config_duplicate_backend_address(void **state)
{
    (void)state;
    expect_errors("listeners:\n"
                  "  - {name: a, address: 127.0.0.1:1, upstream: app}\n"
                  "upstreams:\n"
                  "  app:\n"
                  "    backends:\n"
                  "      - address: \"[::1]:9001\"\n"
                  "      - address: 127.0.0.1:9001\n"
                  "      - address: \"[0:0::1]:9001\"\n",
                  "c.yaml:8:18: backend '[0:0::1]:9001' is already in upstream 'app' (as "
                  "'[::1]:9001'): list an address once (more traffic to it: its weight, "
                  "from gw02)\n");
    teardown(NULL);
    assert_int_equal(load("listeners:\n"
                          "  - {name: a, address: 127.0.0.1:1, upstream: app}\n"
                          "upstreams:\n"
                          "  app: {backends: [{address: 127.0.0.1:9001}]}\n"
                          "  other: {backends: [{address: 127.0.0.1:9001}]}\n"),
                     0);
}

/* ---- milestone gates ---------------------------------------------------------------- */

static void config_protocol_http_rejected_at_level1(void **state)
{
    (void)state;
    /* Read as tcp afterwards, without requiring an upstream: no second error. */
    expect_errors("listeners:\n"
                  "  - name: edge\n"
                  "    address: 127.0.0.1:8080\n"
                  "    protocol: http\n" UPSTREAMS,
                  "c.yaml:4:15: protocol 'http' needs gw04 or later\n");
}

static void config_http_listener_upstream_unknown_at_level4(void **state)
{
    (void)state;
    /* At gw04 an http listener routes instead; without a hook claiming it, `upstream`
     * is not a key of an http listener. */
    assert_int_equal(load_level("listeners:\n"
                                "  - name: edge\n"
                                "    address: 127.0.0.1:8080\n"
                                "    protocol: http\n"
                                "    upstream: app\n" UPSTREAMS,
                                4),
                     GW_ECONFIG);
    assert_string_equal(errs, "c.yaml:5:5: unknown key 'upstream'\n");
}

/* ---- several errors ----------------------------------------------------------------- */

static void config_multiple_errors_all_reported_in_file_order(void **state)
{
    (void)state;
    expect_errors("wokers: 2\n"
                  "workers: 0\n"
                  "listeners:\n"
                  "  - name: edge\n"
                  "    address: 127.0.0.1:80800\n"
                  "    upstream: ap\n"
                  "  - name: edge\n"
                  "    address: 127.0.0.1:81\n"
                  "    upstream: app\n"
                  "upstreams:\n"
                  "  app:\n"
                  "    balancer: rr\n"
                  "    backends:\n"
                  "      - address: 256.1.1.1:80\n"
                  "admin: {}\n",
                  "c.yaml:1:1: unknown key 'wokers' (did you mean 'workers'?)\n"
                  "c.yaml:2:10: workers: 0 is out of range 1..256\n"
                  "c.yaml:5:14: bad address '127.0.0.1:80800': port must be 1..65535\n"
                  "c.yaml:6:15: unknown upstream 'ap'\n"
                  "c.yaml:7:11: duplicate listener name 'edge'\n"
                  "c.yaml:12:5: balancer: needs gw02 or later\n"
                  "c.yaml:14:18: bad address '256.1.1.1:80': bad IPv4 address "
                  "(four numbers 0..255 separated by dots)\n"
                  "c.yaml:15:1: admin: needs gw03 or later\n");
}

static void config_errors_at_one_position_keep_found_order(void **state)
{
    (void)state;
    expect_errors("listeners:\n"
                  "  - {}\n" UPSTREAMS,
                  "c.yaml:2:5: missing required key 'name'\n"
                  "c.yaml:2:5: missing required key 'address'\n"
                  "c.yaml:2:5: missing required key 'upstream'\n");
}

/* ---- printing (-T) ------------------------------------------------------------------ */

static void expect_same_config(const gw_config_t *a, const gw_config_t *b)
{
    assert_int_equal(a->workers, b->workers);
    assert_int_equal(a->drain_timeout_ms, b->drain_timeout_ms);
    assert_int_equal(a->log_level, b->log_level);
    assert_int_equal(a->log_format, b->log_format);
    assert_true((!a->log_file && !b->log_file) || !strcmp(a->log_file, b->log_file));
    assert_memory_equal(&a->buffers, &b->buffers, sizeof(a->buffers));
    assert_int_equal(a->nlisteners, b->nlisteners);
    for (size_t i = 0; i < a->nlisteners; i++) {
        const gw_listener_cfg_t *x = &a->listeners[i], *y = &b->listeners[i];
        assert_string_equal(x->name, y->name);
        assert_string_equal(x->address_text, y->address_text);
        assert_true(gw_addr_equal(&x->addr, &y->addr));
        assert_int_equal(x->protocol, y->protocol);
        assert_string_equal(x->upstream, y->upstream);
        assert_int_equal(x->upstream_index, y->upstream_index);
        assert_int_equal(x->max_connections, y->max_connections);
        assert_int_equal(x->connect_timeout_ms, y->connect_timeout_ms);
        assert_int_equal(x->idle_timeout_ms, y->idle_timeout_ms);
    }
    assert_int_equal(a->nupstreams, b->nupstreams);
    for (size_t i = 0; i < a->nupstreams; i++) {
        const gw_upstream_cfg_t *x = &a->upstreams[i], *y = &b->upstreams[i];
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->nbackends, y->nbackends);
        for (size_t j = 0; j < x->nbackends; j++) {
            assert_string_equal(x->backends[j].address_text, y->backends[j].address_text);
            assert_true(gw_addr_equal(&x->backends[j].addr, &y->backends[j].addr));
        }
    }
}

/* Prints CFG, reloads the output (with EXT) and compares. Returns the printed text. */
static char *print_and_reload(const gw_config_ext_t *ext)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    gw_config_print(f, &cfg, ext);
    fclose(f);
    gw_config_t again;
    FILE *e = open_memstream(&errs, &errs_len);
    int rc = gw_config_load_string("printed.yaml", text, ext, &again, e);
    fclose(e);
    if (rc != 0)
        fail_msg("printed config does not load:\n%s\n%s", text, errs);
    expect_same_config(&cfg, &again);
    gw_config_free(&again, ext);
    return text;
}

static void config_print_defaults_reload_equal(void **state)
{
    (void)state;
    expect_ok(BASE);
    free(errs);
    errs = NULL;
    free(print_and_reload(NULL));
}

static void config_print_all_values_reload_equal(void **state)
{
    (void)state;
    expect_ok("workers: 3\n"
              "drain_timeout: 1500ms\n"
              "log: {level: off, format: json, file: \"/tmp/a \\\"b\\\".log\"}\n"
              "buffers: {chunk_size: 1500, high_water: 64MiB, low_water: 0, max_memory: 1500000}\n"
              "listeners:\n"
              "  - {name: 'we\"ird\\name', address: '[::1]:1', upstream: 'b e'}\n"
              "  - {name: two, address: 0.0.0.0:2, upstream: app, max_connections: 7,\n"
              "     connect_timeout: 2m, idle_timeout: 24h}\n"
              "upstreams:\n"
              "  app: {backends: [{address: localhost:9001}, {address: '[::1]:2'}]}\n"
              "  'b e': {backends: [{address: 10.0.0.1:3}]}\n");
    free(errs);
    errs = NULL;
    free(print_and_reload(NULL));
}

static void config_print_shows_units_and_resolved_addresses(void **state)
{
    (void)state;
    expect_ok("drain_timeout: 300s\n"
              "listeners:\n"
              "  - {name: a, address: 127.0.0.1:1, upstream: app}\n"
              "upstreams:\n"
              "  app: {backends: [{address: localhost:9001}]}\n");
    free(errs);
    errs = NULL;
    char *text = print_and_reload(NULL);
    assert_non_null(strstr(text, "drain_timeout: 5m\n"));
    assert_non_null(strstr(text, "  chunk_size: 16KiB\n"));
    assert_non_null(strstr(text, "  max_memory: 256MiB\n"));
    assert_non_null(strstr(text, "    idle_timeout: 5m\n"));
    assert_non_null(strstr(text, "      - address: \"localhost:9001\"  # 127.0.0.1:9001\n"));
    free(text);
}

/* ---- extension hooks ---------------------------------------------------------------- */

/* Counts hook calls and claims one extra key per level, as a later milestone would. */
typedef struct hook_log_s {
    int root, listener, upstream, backend, validate, freed;
    uint64_t weight_sum;
} hook_log_t;

static hook_log_t hooks;

static void on_root(gw_cdoc_t *doc, const gw_cnode_t *map, gw_config_t *c)
{
    (void)c;
    hooks.root++;
    gw_cmap_get(doc, map, "admin");
}

static void on_listener(gw_cdoc_t *doc, const gw_cnode_t *map, gw_config_t *c, gw_listener_cfg_t *l)
{
    (void)c;
    assert_non_null(l->name); /* core keys are decoded first */
    hooks.listener++;
    gw_cmap_get(doc, map, "routes");
}

static void on_upstream(gw_cdoc_t *doc, const gw_cnode_t *map, gw_config_t *c, gw_upstream_cfg_t *u)
{
    (void)c;
    assert_int_equal(u->nbackends, 1); /* backends are decoded before the upstream hook */
    hooks.upstream++;
    gw_cmap_get(doc, map, "balancer");
}

static void on_backend(gw_cdoc_t *doc, const gw_cnode_t *map, gw_config_t *c, gw_upstream_cfg_t *u,
                       gw_backend_cfg_t *b)
{
    (void)c;
    (void)u;
    uint64_t w = 1;
    hooks.backend++;
    gw_cget_uint(doc, gw_cmap_get(doc, map, "weight"), "weight", 1, 100, &w);
    hooks.weight_sum += w;
    b->ext[1] = malloc(1); /* owned by the hooks, freed by on_free */
}

static void on_validate(gw_cdoc_t *doc, gw_config_t *c)
{
    (void)doc;
    (void)c;
    hooks.validate++;
}

static void on_free(gw_config_t *c)
{
    hooks.freed++;
    for (size_t i = 0; i < c->nupstreams; i++)
        for (size_t j = 0; j < c->upstreams[i].nbackends; j++)
            free(c->upstreams[i].backends[j].ext[1]);
}

static void print_backend_weight(FILE *out, const gw_backend_cfg_t *b, int indent)
{
    (void)b;
    fprintf(out, "%*sweight: 2\n", indent, "");
}

static const gw_config_ext_t hook_ext = {
    .level = 4,
    .root = on_root,
    .listener = on_listener,
    .upstream = on_upstream,
    .backend = on_backend,
    .validate = on_validate,
    .print_backend = print_backend_weight,
    .free = on_free,
};

#define HOOKED_CONFIG                                                                              \
    "admin: {}\n"                                                                                  \
    "listeners:\n"                                                                                 \
    "  - {name: a, address: 127.0.0.1:1, upstream: app, routes: []}\n"                             \
    "  - {name: b, address: 127.0.0.1:2, upstream: app}\n"                                         \
    "upstreams:\n"                                                                                 \
    "  app:\n"                                                                                     \
    "    balancer: rr\n"                                                                           \
    "    backends: [{address: 127.0.0.1:3, weight: 2}]\n"

static void config_ext_hooks_called_once_each(void **state)
{
    (void)state;
    memset(&hooks, 0, sizeof(hooks));
    assert_int_equal(load_ext(HOOKED_CONFIG, &hook_ext), 0);
    assert_string_equal(errs, "");
    assert_int_equal(hooks.root, 1);
    assert_int_equal(hooks.listener, 2);
    assert_int_equal(hooks.upstream, 1);
    assert_int_equal(hooks.backend, 1);
    assert_int_equal(hooks.validate, 1);
    assert_int_equal(hooks.weight_sum, 2);
    gw_config_free(&cfg, &hook_ext);
    assert_int_equal(hooks.freed, 1);
}

static void config_ext_hooks_claim_later_keys(void **state)
{
    (void)state;
    /* Without the hooks the same file has four keys of later milestones. */
    assert_int_equal(load(HOOKED_CONFIG), GW_ECONFIG);
    assert_string_equal(errs, "c.yaml:1:1: admin: needs gw03 or later\n"
                              "c.yaml:3:52: routes: needs gw04 or later\n"
                              "c.yaml:7:5: balancer: needs gw02 or later\n"
                              "c.yaml:8:39: weight: needs gw02 or later\n");
}

static void config_ext_hook_errors_reported(void **state)
{
    (void)state;
    memset(&hooks, 0, sizeof(hooks));
    assert_int_equal(load_ext(UPSTREAMS "        weight: 500\n"
                                        "listeners:\n"
                                        "  - {name: a, address: 127.0.0.1:1, upstream: app}\n",
                              &hook_ext),
                     GW_ECONFIG);
    assert_string_equal(errs, "c.yaml:5:17: weight: 500 is out of range 1..100\n");
    assert_int_equal(hooks.validate, 0); /* not run on a configuration with errors */
    assert_int_equal(hooks.freed, 1);    /* the failed load freed the ext data too */
}

static void config_ext_print_hooks_reload_equal(void **state)
{
    (void)state;
    memset(&hooks, 0, sizeof(hooks));
    assert_int_equal(load_ext(HOOKED_CONFIG, &hook_ext), 0);
    free(errs);
    errs = NULL;
    char *text = print_and_reload(&hook_ext);
    assert_non_null(strstr(text, "      - address: \"127.0.0.1:3\"\n        weight: 2\n"));
    assert_int_equal(hooks.weight_sum, 4); /* loaded twice, weight 2 each time */
    free(text);
    gw_config_free(&cfg, &hook_ext);
}

/* ---- allocation failure (failalloc.h: this binary is linked with --wrap) ---------------- */

/* Every part of the core schema that allocates: several listeners and upstreams, backends
 * with and without weights, the log and buffers mappings, and a later milestone's key in a
 * place where it is expected (so the loader's later-key table is consulted too). */
#define OOM_TEXT                                                                                   \
    "workers: 3\n"                                                                                 \
    "drain_timeout: 7s\n"                                                                          \
    "log: {level: debug, format: json, file: /tmp/gw-oom.log}\n"                                   \
    "buffers: {chunk_size: 8KiB, max_memory: 16MiB, high_water: 32KiB, low_water: 8KiB}\n"         \
    "listeners:\n"                                                                                 \
    "  - name: edge\n"                                                                             \
    "    address: 127.0.0.1:8080\n"                                                                \
    "    upstream: app\n"                                                                          \
    "    max_connections: 100\n"                                                                   \
    "  - name: other\n"                                                                            \
    "    address: '[::1]:8081'\n"                                                                  \
    "    upstream: db\n"                                                                           \
    "    idle_timeout: 30s\n"                                                                      \
    "upstreams:\n"                                                                                 \
    "  app:\n"                                                                                     \
    "    backends:\n"                                                                              \
    "      - address: 127.0.0.1:9001\n"                                                            \
    "      - address: 127.0.0.1:9002\n"                                                            \
    "  db:\n"                                                                                      \
    "    backends:\n"                                                                              \
    "      - address: '[::1]:5432'\n"

/* One load of OOM_TEXT. On success, a few values are checked and the config freed. On
 * failure the only complaint may be "out of memory": a failed allocation must never show
 * up as a mistake in the file (an unknown key, a missing value), and never pass silently
 * (a config with a listener missing that loads with 0). */
/* The effective configuration C as -T prints it (malloc'd): every value the load decoded,
 * so two loads that print the same are the same. */
static char *printed(const gw_config_t *c)
{
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n); /* libc's own allocation: not wrapped */
    assert_non_null(f);
    gw_config_print(f, c, NULL);
    fclose(f);
    return out;
}

static int oom_config_load(void *ctx)
{
    const char *expected = ctx; /* -T of a load with nothing failing; NULL: that load */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len); /* libc's own allocation: not wrapped */
    assert_non_null(f);
    gw_config_t c;
    int rc = gw_config_load_string("c.yaml", OOM_TEXT, NULL, &c, f);
    fclose(f);
    if (rc == 0) {
        assert_int_equal(c.workers, 3);
        assert_int_equal(c.nlisteners, 2);
        assert_int_equal(c.nupstreams, 2);
        assert_string_equal(c.listeners[1].name, "other");
        assert_int_equal(gw_config_upstream(&c, "app")->nbackends, 2);
        /* Whole and right despite a failed allocation (only did-you-mean bookkeeping may be
         * lost, cfgtree.c): the effective config is exactly what a clean load gives. */
        if (gw_failalloc_failures() > 0) {
            char *got = printed(&c);
            assert_non_null(expected);
            assert_string_equal(got, expected);
            free(got);
            rc = GW_FAILALLOC_ABSORBED;
        }
        gw_config_free(&c, NULL);
        assert_int_equal(len, 0);
    } else {
        assert_int_equal(rc, GW_ECONFIG);
        gw_assert_contains(text, "out of memory");
        for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n"))
            if (strstr(line, "out of memory") == NULL)
                fail_msg("a failed allocation reported as a config error: %s", line);
    }
    free(text);
    return rc;
}

/* -T of OOM_TEXT loaded with nothing failing (free() it). */
static char *clean_print(void)
{
    gw_config_t c;
    assert_int_equal(gw_config_load_string("c.yaml", OOM_TEXT, NULL, &c, NULL), 0);
    char *out = printed(&c);
    gw_config_free(&c, NULL);
    return out;
}

static void config_load_fails_cleanly_at_each_allocation(void **state)
{
    (void)state;
    char *expected = clean_print();
    gw_failalloc_report_t r = gw_failalloc_each(oom_config_load, expected, false);
    free(expected);
    assert_true(r.allocations >= 20);
    assert_true(r.absorbed < r.allocations); /* most failures must fail the load */
}

/* Every allocation from the Nth on fails: the error itself cannot be written down (its text
 * and the list that holds it are allocations too), yet the load must still fail. */
static void config_load_fails_when_memory_stays_short(void **state)
{
    (void)state;
    char *expected = clean_print();
    assert_true(gw_failalloc_each(oom_config_load, expected, true).allocations >= 20);
    free(expected);
}

static int oom_teardown(void **state)
{
    gw_failalloc_disarm();
    return teardown(state);
}

int main(void)
{
#define T(name) cmocka_unit_test_teardown(name, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(config_load_fails_cleanly_at_each_allocation, oom_teardown),
        cmocka_unit_test_teardown(config_load_fails_when_memory_stays_short, oom_teardown),
        T(config_defaults_filled_in),
        T(config_listener_defaults_filled_in),
        T(config_upstreams_decoded),
        T(config_upstream_index_follows_name),
        T(config_all_values_parse),
        T(config_drain_timeout_zero_allowed),
        T(config_localhost_backend_resolves),
        T(config_ipv6_listener_parses),
        T(config_unreferenced_upstream_is_fine),
        T(config_empty_upstreams_mapping_allowed_without_tcp_users),
        T(config_protocol_http_accepted_at_level4),
        T(config_upstream_lookup_by_name),
        T(config_load_file_reads_file),
        T(config_load_file_missing),
        T(config_null_errs_stream_is_quiet),
        T(config_syntax_error_position),
        T(config_empty_file),
        T(config_root_must_be_mapping),
        T(config_duplicate_key),
        T(config_alias_rejected),
        T(config_unknown_key_did_you_mean),
        T(config_unknown_key_without_hint),
        T(config_unknown_key_in_listener),
        T(config_unknown_key_in_log),
        T(config_later_key_at_root),
        T(config_later_key_in_upstream),
        T(config_later_key_in_backend),
        T(config_later_key_in_listener),
        T(config_later_key_unknown_at_its_own_level),
        T(config_ext_later_table_consulted),
        T(config_workers_must_be_integer),
        T(config_listeners_must_be_sequence),
        T(config_listener_must_be_mapping),
        T(config_upstreams_must_be_mapping),
        T(config_upstream_must_be_mapping),
        T(config_backends_must_be_sequence),
        T(config_backend_must_be_mapping),
        T(config_log_must_be_mapping),
        T(config_buffers_must_be_mapping),
        T(config_listener_name_must_be_string),
        T(config_max_connections_must_be_unquoted),
        T(config_log_level_unknown),
        T(config_log_format_unknown),
        T(config_log_file_empty),
        T(config_protocol_unknown),
        T(config_duration_needs_unit),
        T(config_size_needs_known_unit),
        T(config_workers_zero_out_of_range),
        T(config_workers_too_many),
        T(config_drain_timeout_out_of_range),
        T(config_chunk_size_out_of_range),
        T(config_high_water_out_of_range),
        T(config_low_water_out_of_range),
        T(config_max_memory_out_of_range),
        T(config_max_connections_out_of_range),
        T(config_connect_timeout_out_of_range),
        T(config_idle_timeout_out_of_range),
        T(config_low_water_must_be_below_high_water),
        T(config_small_high_water_against_default_low_water),
        T(config_max_memory_below_four_chunks),
        T(config_bad_size_skips_cross_checks),
        T(config_missing_listeners),
        T(config_missing_upstreams),
        T(config_listeners_empty),
        T(config_missing_listener_name),
        T(config_missing_listener_address),
        T(config_missing_listener_upstream),
        T(config_missing_backends),
        T(config_backends_empty),
        T(config_missing_backend_address),
        T(config_address_ipv4_octet_out_of_range),
        T(config_address_missing_port),
        T(config_address_port_zero),
        T(config_address_port_too_large),
        T(config_address_ipv6_unclosed),
        T(config_address_ipv6_unbracketed),
        T(config_address_not_a_string),
        T(config_backend_address_bad),
        T(config_unknown_upstream),
        T(config_duplicate_listener_name),
        T(config_duplicate_listener_address),
        T(config_duplicate_backend_address),
        T(config_protocol_http_rejected_at_level1),
        T(config_http_listener_upstream_unknown_at_level4),
        T(config_multiple_errors_all_reported_in_file_order),
        T(config_errors_at_one_position_keep_found_order),
        T(config_print_defaults_reload_equal),
        T(config_print_all_values_reload_equal),
        T(config_print_shows_units_and_resolved_addresses),
        T(config_ext_hooks_called_once_each),
        T(config_ext_hooks_claim_later_keys),
        T(config_ext_hook_errors_reported),
        T(config_ext_print_hooks_reload_equal),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
