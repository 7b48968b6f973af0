/* test_res.c - milestone 03's state across configuration generations (issue 17, step 6).
 * Generations are built as the runtime builds them (03's gen_build over 02's, with the
 * generation served before as PREV) and published in a snapshot; fake listener objects
 * stand for the runtime's listener identities (one per address, kept while the address
 * stays). Driven through 02's picker (pick, report, retry, admit) on a fake worker: no
 * sockets, no loop. What is checked:
 *   - a backend's breaker follows the backend object (02 carries it by key);
 *   - an upstream's retry budget and counters follow the upstream's name, wherever it sits;
 *   - a listener's rate-limit table follows the listener while its options are equal, and
 *     is new when they change; its counters follow it whatever its name and limits;
 *   - /metrics lists the generation served now: what a reload removed leaves;
 *   - a reload to a public admin address without a token is refused with FILE:LINE:COL,
 *     and a moved admin address is kept with a warning. */
#include "gwtest.h"
#include "reloadtest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "02-lb/lb.h"
#include "03-resilience/res.h"
#include "03-resilience/resconfig.h"
#include "clock.h"
#include "log.h"
#include "runtime.h"
#include <unistd.h>

#define NCFG 4

static gw_config_t cfgs[NCFG];
static bool loaded[NCFG];
static bool prepared;
static void *layers[GW_LEVELS];
static gw_runtime_t rt;
static gw_worker_t w;
static uint64_t gen_ids;

/* The runtime's listener objects, stood in for: one per address ever published. */
static gw_listener_t lobjs[4];
static size_t nlobjs;

static gw_config_t *load_text(int i, const char *text)
{
    FILE *e = fopen("/dev/null", "w");
    int rc = gw_config_load_string("r.yaml", text, &gw_res_config_ext, &cfgs[i], e);
    fclose(e);
    assert_int_equal(rc, 0);
    loaded[i] = true;
    return &cfgs[i];
}

/* Prepares gw03 for config 0 (TEXT) on a runtime of one worker, none published yet. */
static void start(const char *text)
{
    assert_int_equal(gw_res_prepare(load_text(0, text), layers), 0);
    prepared = true;
    memcpy(rt.layers, layers, sizeof rt.layers);
    rt.cfg = &cfgs[0];
}

static int setup(void **state)
{
    (void)state;
    gw_log_setup(GW_LOG_OFF, GW_LOG_PLAIN); /* the breaker's OPEN line */
    memset(&rt, 0, sizeof rt);
    memset(lobjs, 0, sizeof lobjs);
    nlobjs = 0;
    assert_int_equal(gw_snapdom_init(&rt.snap, 1), 0);
    gw_snap_quiescent(&rt.snap, 0); /* the worker is online */
    w = (gw_worker_t){.rt = &rt, .id = 0};
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    gw_snap_offline(&rt.snap, 0);
    gw_snapdom_destroy(&rt.snap); /* frees the generations, then their backends */
    if (prepared)
        gw_res_release(layers);
    prepared = false;
    for (int i = 0; i < NCFG; i++)
        if (loaded[i])
            gw_config_free(&cfgs[i], &gw_res_config_ext);
    memset(loaded, 0, sizeof loaded);
    gw_log_setup(GW_LOG_INFO, GW_LOG_PLAIN);
    return 0;
}

static unsigned gens_freed;

static void free_gen(void *data)
{
    gens_freed++;
    gw_gen_t *g = data;
    gw_res_gen_free(&rt, g);
    gw_gen_free(g);
}

/* A generation over C, built (03 over 02) with the one served now as PREV, its listeners
 * given their identity by address as the runtime does. Not published; NULL when the build
 * failed (its errors in *ERRS, to be freed by the caller, when ERRS is given). */
static gw_gen_t *build(const gw_config_t *c, char **errs)
{
    gw_gen_t *g = gw_gen_new(++gen_ids, c, NULL);
    assert_non_null(g);
    g->owner = &rt;
    for (size_t i = 0; i < g->nlis; i++) {
        gw_listener_t *l = NULL;
        for (size_t k = 0; k < nlobjs && l == NULL; k++)
            if (gw_addr_equal(&lobjs[k].addr, &g->lis[i].cfg->addr))
                l = &lobjs[k];
        if (l == NULL) {
            assert_true(nlobjs < sizeof lobjs / sizeof *lobjs);
            l = &lobjs[nlobjs++];
            l->addr = g->lis[i].cfg->addr;
        }
        atomic_store(&l->name, g->lis[i].cfg->name); /* the newest generation's name */
        g->lis[i].obj = l;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *e = open_memstream(&text, &len);
    assert_non_null(e);
    int rc = gw_res_gen_build(&rt, g, gw_snap_current(&rt.snap), e);
    fclose(e);
    if (errs != NULL)
        *errs = text;
    else
        free(text);
    if (rc != 0) {
        free_gen(g);
        return NULL;
    }
    return g;
}

/* Builds and publishes a generation over C; the one before is freed at the next
 * quiescent point (what it shares with the new one stays). */
static void publish(const gw_config_t *c)
{
    gw_gen_t *g = build(c, NULL);
    assert_non_null(g);
    assert_int_equal(gw_snap_publish(&rt.snap, g, free_gen), 0);
    gw_snap_quiescent(&rt.snap, 0);
}

/* /metrics as 03 writes it now (malloc'd). */
static char *scrape(void)
{
    gw_prom_t *p = gw_prom_new(0);
    assert_non_null(p);
    gw_res_metrics(&rt, p);
    size_t len = 0;
    const char *t = gw_prom_text(p, &len);
    assert_non_null(t);
    char *s = strndup(t, len);
    gw_prom_free(p);
    assert_non_null(s);
    return s;
}

/* Whether the scrape has the line LINE (a whole sample: name, labels and value). */
static bool scraped(const char *line)
{
    char *s = scrape();
    size_t n = strlen(line);
    bool found = false;
    for (const char *at = s; !found && (at = strstr(at, line)) != NULL; at++)
        found = (at == s || at[-1] == '\n') && (at[n] == '\n' || at[n] == '\0');
    free(s);
    return found;
}

static bool scraped_text(const char *part)
{
    char *s = scrape();
    bool found = strstr(s, part) != NULL;
    free(s);
    return found;
}

static const gw_tcp_picker_t *picker(void)
{
    return layers[1];
}

/* ---- breakers: with the backend object ------------------------------------------------------ */

/* Round robin over 19001 and 19002; two failed connects open a backend's breaker for an
 * hour; no outlier ejection and no panic, so only the breaker keeps a backend out. */
static gw_config_t *load_breaker(int i, const char *weight_of_first)
{
    char text[2048];
    snprintf(text, sizeof text,
             "workers: 1\n"
             "listeners:\n"
             "  - {name: edge, address: 127.0.0.1:18080, upstream: app}\n"
             "upstreams:\n"
             "  app:\n"
             "    panic_threshold: 0\n"
             "    outlier: {consecutive_failures: 0}\n"
             "    circuit_breaker: {consecutive_failures: 2, open_timeout: 1h}\n"
             "    backends:\n"
             "      - {address: 127.0.0.1:19001, weight: %s}\n"
             "      - {address: 127.0.0.1:19002}\n",
             weight_of_first);
    if (i == 0) {
        start(text);
        return &cfgs[0];
    }
    return load_text(i, text);
}

/* One connection: pick, then the connect's result (STATUS: 0 or a UV error), then the close.
 * Returns the port picked (0: none). */
static unsigned connection(int status)
{
    const gw_tcp_picker_t *p = picker();
    gw_tcp_pick_t tok;
    memset(&tok, 0, sizeof tok);
    const gw_addr_t *a = gw_lb_pick_upstream(layers[2], &w, NULL, 0, NULL, 0, &tok);
    unsigned port = a != NULL ? gw_addr_port(a) : 0;
    if (a != NULL)
        p->report(p->ctx, &w, &tok, status);
    p->report(p->ctx, &w, &tok, GW_TCP_CLOSED);
    return port;
}

/* Fails connects to 19001 until its breaker opens: every next pick goes to 19002. */
static void open_breaker_of_19001(void)
{
    for (int fails = 0, k = 0; fails < 2 && k < 10; k++) {
        const gw_tcp_picker_t *p = picker();
        gw_tcp_pick_t tok;
        memset(&tok, 0, sizeof tok);
        const gw_addr_t *a = gw_lb_pick_upstream(layers[2], &w, NULL, 0, NULL, 0, &tok);
        assert_non_null(a);
        bool first = gw_addr_port(a) == 19001;
        fails += first;
        p->report(p->ctx, &w, &tok, first ? UV_ECONNREFUSED : 0);
        p->report(p->ctx, &w, &tok, GW_TCP_CLOSED);
    }
    for (int k = 0; k < 6; k++)
        assert_int_equal(connection(0), 19002);
}

static void breaker_state_survives_generation_carry(void **state)
{
    (void)state;
    publish(load_breaker(0, "1"));
    open_breaker_of_19001();
    publish(load_breaker(1, "3")); /* a weight change: the same backend object */
    for (int k = 0; k < 6; k++)
        assert_int_equal(connection(0), 19002); /* still open: its breaker came along */
    assert_true(
        scraped("gw_breaker_state{upstream=\"app\",backend=\"127.0.0.1:19001\"} 1")); /* open */
}

/* A tcp pair on listener `edge` (01's pick through 02: a GW_LB_PAIR token), connected to
 * 19001 (round robin: the pairs that land on 19002 are closed). */
static void open_pair_to_19001(gw_tcp_pick_t *tok)
{
    const gw_tcp_picker_t *p = picker();
    for (int k = 0; k < 4; k++) {
        memset(tok, 0, sizeof *tok);
        const gw_addr_t *a = p->pick(p->ctx, &w, &lobjs[0], NULL, 0, tok);
        assert_non_null(a);
        p->report(p->ctx, &w, tok, 0);
        if (gw_addr_port(a) == 19001)
            return;
        p->report(p->ctx, &w, tok, GW_TCP_CLOSED);
    }
    fail_msg("no pick of 19001 in 4");
}

/* Connected pairs hold their backend, not the generation they picked in: a reload frees
 * that generation at once although two pairs are open. Their backend failures at the close
 * are accounted as the generation served then lists the backend: its breaker (carried,
 * two failures to open) opens. */
static void connected_pair_holds_its_backend_not_its_generation(void **state)
{
    (void)state;
    publish(load_breaker(0, "1"));
    gw_tcp_pick_t t1, t2;
    open_pair_to_19001(&t1);
    gw_backend_t *b = gw_lb_tok_backend(&t1);
    assert_non_null(b);
    assert_null(t1.ref); /* no generation pinned */
    assert_null(gw_lb_tok_member(&t1));
    assert_int_equal(atomic_load(&b->refs), 2); /* generation 1's table, and T1 */
    open_pair_to_19001(&t2);
    assert_ptr_equal(gw_lb_tok_backend(&t2), b);
    assert_int_equal(atomic_load(&b->refs), 3);
    assert_int_equal(atomic_load(&b->active), 2);
    unsigned freed = gens_freed;
    publish(load_breaker(1, "3")); /* a weight change: the same backend object */
    gw_snap_reclaim(&rt.snap);
    assert_int_equal(gens_freed, freed + 1);    /* generation 1: nobody holds it */
    assert_int_equal(atomic_load(&b->refs), 3); /* generation 2's table, T1, T2 */
    const gw_tcp_picker_t *p = picker();
    p->report(p->ctx, &w, &t1, GW_TCP_CLOSED_BACKEND_ERROR);
    p->report(p->ctx, &w, &t2, GW_TCP_CLOSED_BACKEND_ERROR);
    assert_int_equal(atomic_load(&b->active), 0);
    assert_int_equal(atomic_load(&b->refs), 1);
    assert_int_equal(atomic_load(&b->failures), 2);
    assert_null(gw_lb_tok_backend(&t1));
    assert_true(scraped("gw_breaker_state{upstream=\"app\",backend=\"127.0.0.1:19001\"} 1"));
}

static int carry_nothing(const gw_lb_upstream_t *old, const gw_upstream_cfg_t *neu,
                         gw_backend_t **keep)
{
    (void)old;
    for (size_t i = 0; i < neu->nbackends; i++)
        keep[i] = NULL;
    return 0;
}

/* The other side: a fresh backend object (no carry) has a fresh, closed breaker. */
static void fresh_backend_has_a_closed_breaker(void **state)
{
    (void)state;
    publish(load_breaker(0, "1"));
    open_breaker_of_19001();
    gw_lb_set_carry(layers[2], carry_nothing);
    publish(load_breaker(1, "1"));
    unsigned to_first = 0;
    for (int k = 0; k < 6; k++)
        to_first += connection(0) == 19001;
    assert_int_equal(to_first, 3); /* round robin again over both */
}

/* ---- upstreams: budget and counters by name ------------------------------------------------- */

/* Upstream `app` allows one retry in progress (budget 0%, min_concurrent 1); with OTHER,
 * an upstream `other` comes first, so app's position moves from 0 to 1. */
static const char *retry_text(bool other)
{
    static char text[2048];
    snprintf(text, sizeof text,
             "workers: 1\n"
             "listeners:\n"
             "  - {name: edge, address: 127.0.0.1:18080, upstream: app}\n"
             "upstreams:\n"
             "%s"
             "  app:\n"
             "    outlier: {consecutive_failures: 0}\n"
             "    retry: {max_attempts: 3, budget_percent: 0, min_concurrent: 1}\n"
             "    backends:\n"
             "      - {address: 127.0.0.1:19001}\n"
             "      - {address: 127.0.0.1:19002}\n",
             other ? "  other:\n    backends: [{address: 127.0.0.1:19003}]\n" : "");
    return text;
}

/* A connect to upstream UP (its position in the generation served now) fails and asks
 * for a retry: returns whether the budget granted it. TOK stays open (holding the slot
 * when granted, and its generation pinned) until close_tok. */
static bool failed_connect_asks_retry(size_t up, gw_tcp_pick_t *tok)
{
    const gw_tcp_picker_t *p = picker();
    memset(tok, 0, sizeof *tok);
    assert_non_null(gw_lb_pick_upstream(layers[2], &w, NULL, up, NULL, 0, tok));
    p->report(p->ctx, &w, tok, UV_ECONNREFUSED);
    uint64_t delay = 0;
    return p->retry(p->ctx, &w, tok, 1, &delay);
}

static void close_tok(gw_tcp_pick_t *tok)
{
    const gw_tcp_picker_t *p = picker();
    p->report(p->ctx, &w, tok, GW_TCP_CLOSED);
}

static void budget_and_counters_carried_by_upstream_name(void **state)
{
    (void)state;
    start(retry_text(false));
    publish(&cfgs[0]);
    /* One timed connect (connect_time), then a retry that holds app's only budget slot. */
    const gw_tcp_picker_t *p = picker();
    gw_tcp_pick_t tok;
    memset(&tok, 0, sizeof tok);
    assert_non_null(gw_lb_pick_upstream(layers[2], &w, NULL, 0, NULL, 0, &tok));
    tok.attempt_started_ns = gw_clock_mono_ns(&gw_clock_system);
    p->report(p->ctx, &w, &tok, 0);
    close_tok(&tok);
    gw_tcp_pick_t held;
    assert_true(failed_connect_asks_retry(0, &held));

    /* A reload puts `other` first: app is now at position 1 of a new table. */
    publish(load_text(1, retry_text(true)));
    gw_tcp_pick_t second;
    /* The slot is still held (the budget came along), so this retry is denied. */
    assert_false(failed_connect_asks_retry(1, &second));
    close_tok(&second);
    close_tok(&held); /* gives the slot back to the same budget, through its own generation */
    assert_true(failed_connect_asks_retry(1, &second));
    close_tok(&second);

    assert_true(scraped("gw_upstream_retries_total{upstream=\"app\",result=\"granted\"} 2"));
    assert_true(scraped("gw_upstream_retries_total{upstream=\"app\",result=\"denied\"} 1"));
    assert_true(scraped("gw_upstream_connect_seconds_count{upstream=\"app\"} 1"));
    assert_true(scraped("gw_upstream_retries_total{upstream=\"other\",result=\"granted\"} 0"));
    assert_true(scraped("gw_upstream_connect_seconds_count{upstream=\"other\"} 0"));
}

/* ---- listeners: limiter by options, counters by identity ------------------------------------ */

/* Listener NAME on 127.0.0.1:18080 with a per-client limit of RATE per second, burst 1 (0:
 * no limit); with EXTRA, another listener comes first, so it moves to position 1. */
static const char *limit_text(const char *name, int rate, bool extra)
{
    static char text[2048];
    char lim[128] = "";
    if (rate > 0)
        snprintf(lim, sizeof lim, ", rate_limit: {per_client: {rate: %d, burst: 1}}", rate);
    snprintf(text, sizeof text,
             "workers: 1\n"
             "listeners:\n"
             "%s"
             "  - {name: %s, address: 127.0.0.1:18080, upstream: app%s}\n"
             "upstreams:\n"
             "  app:\n"
             "    backends: [{address: 127.0.0.1:19001}]\n",
             extra ? "  - {name: extra, address: 127.0.0.1:18081, upstream: app}\n" : "", name,
             lim);
    return text;
}

/* Admission of a connection from 10.0.0.N on the listener object for 127.0.0.1:18080. */
static bool admit_from(int n)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(40000)};
    char ip[32];
    snprintf(ip, sizeof ip, "10.0.0.%d", n);
    assert_int_equal(inet_pton(AF_INET, ip, &sa.sin_addr), 1);
    gw_listener_t *l = NULL;
    for (size_t k = 0; k < nlobjs; k++)
        if (gw_addr_port(&lobjs[k].addr) == 18080)
            l = &lobjs[k];
    assert_non_null(l);
    const gw_tcp_picker_t *p = picker();
    assert_non_null(p->admit); /* installed even when nothing is limited: a reload may add */
    return p->admit(p->ctx, &w, l, (const struct sockaddr *)&sa);
}

/* Client 1 spends its burst and is refused once. */
static void exhaust_client_1(void)
{
    assert_true(admit_from(1));
    assert_false(admit_from(1));
}

static void rate_limit_table_kept_when_options_equal(void **state)
{
    (void)state;
    start(limit_text("edge", 1, false));
    publish(&cfgs[0]);
    exhaust_client_1();
    /* Renamed and moved to position 1, same limit: the same table, client 1 still out. */
    publish(load_text(1, limit_text("front", 1, true)));
    assert_false(admit_from(1));
    assert_true(admit_from(2));
    assert_true(scraped("gw_ratelimit_rejected_total{listener=\"front\",scope=\"client\"} 2"));
    assert_true(scraped("gw_ratelimit_rejected_total{listener=\"extra\",scope=\"client\"} 0"));
}

static void rate_limit_table_new_when_rate_changes(void **state)
{
    (void)state;
    start(limit_text("edge", 1, false));
    publish(&cfgs[0]);
    exhaust_client_1();
    publish(load_text(1, limit_text("edge", 2, false))); /* a new rate: a new table */
    assert_true(admit_from(1));
    assert_false(admit_from(1)); /* the new table's own limit */
}

/* Whether 01 asks the kernel for a client's address (a getpeername per accept) follows the
 * generation published now, listener by listener: a per-client limit (03) or a client_ip
 * hash (02) reads it; a global limit alone, or nothing, does not. */
static void client_address_asked_only_where_a_limit_or_hash_reads_it(void **state)
{
    (void)state;
    start(limit_text("edge", 0, false));
    publish(&cfgs[0]);
    const gw_tcp_picker_t *p = picker();
    assert_non_null(p->wants_client);
    assert_false(p->wants_client(p->ctx, &w, &lobjs[0]));
    publish(load_text(1, limit_text("edge", 5, false))); /* per_client */
    assert_true(p->wants_client(p->ctx, &w, &lobjs[0]));
    publish(load_text(2, "workers: 1\n"
                         "listeners:\n"
                         "  - {name: edge, address: 127.0.0.1:18080, upstream: app,\n"
                         "     rate_limit: {global: {rate: 5, burst: 1}}}\n"
                         "upstreams:\n"
                         "  app:\n"
                         "    backends: [{address: 127.0.0.1:19001}]\n"));
    assert_false(p->wants_client(p->ctx, &w, &lobjs[0])); /* a global limit counts, no more */
    publish(load_text(3, "workers: 1\n"
                         "listeners:\n"
                         "  - {name: edge, address: 127.0.0.1:18080, upstream: app}\n"
                         "upstreams:\n"
                         "  app:\n"
                         "    balancer: consistent_hash\n"
                         "    hash: client_ip\n"
                         "    backends: [{address: 127.0.0.1:19001}]\n"));
    assert_true(p->wants_client(p->ctx, &w, &lobjs[0])); /* 02's reason */
}

static void limited_counters_carried_by_listener(void **state)
{
    (void)state;
    start(limit_text("edge", 0, false)); /* no limit at start: the hook waits anyway */
    publish(&cfgs[0]);
    assert_true(admit_from(1));
    assert_true(admit_from(1));
    publish(load_text(1, limit_text("edge", 1, false))); /* a reload adds the limit */
    exhaust_client_1();
    /* Renamed, moved, limit dropped: the counter stays with the listener. */
    publish(load_text(2, limit_text("front", 0, true)));
    assert_true(admit_from(1));
    assert_true(scraped("gw_ratelimit_rejected_total{listener=\"front\",scope=\"client\"} 1"));
    assert_false(scraped_text("listener=\"edge\""));
}

/* ---- /metrics follows the generation --------------------------------------------------------- */

static const char *two_of_each = "workers: 1\n"
                                 "listeners:\n"
                                 "  - {name: edge, address: 127.0.0.1:18080, upstream: app}\n"
                                 "  - {name: side, address: 127.0.0.1:18081, upstream: other}\n"
                                 "upstreams:\n"
                                 "  app:\n"
                                 "    backends: [{address: 127.0.0.1:19001}]\n"
                                 "  other:\n"
                                 "    backends: [{address: 127.0.0.1:19003}]\n";

static const char *one_of_each = "workers: 1\n"
                                 "listeners:\n"
                                 "  - {name: edge, address: 127.0.0.1:18080, upstream: app}\n"
                                 "upstreams:\n"
                                 "  app:\n"
                                 "    backends: [{address: 127.0.0.1:19001}]\n";

static void removed_listener_and_upstream_leave_metrics(void **state)
{
    (void)state;
    start(two_of_each);
    publish(&cfgs[0]);
    atomic_store(&lobjs[0].accepted, 7);
    assert_true(scraped_text("listener=\"side\""));
    assert_true(scraped_text("upstream=\"other\""));
    assert_true(scraped_text("backend=\"127.0.0.1:19003\""));
    publish(load_text(1, one_of_each));
    assert_false(scraped_text("listener=\"side\""));
    assert_false(scraped_text("upstream=\"other\""));
    assert_false(scraped_text("backend=\"127.0.0.1:19003\""));
    assert_true(scraped("gw_connections_total{listener=\"edge\"} 7"));
    assert_true(scraped("gw_upstream_retries_total{upstream=\"app\",result=\"granted\"} 0"));
}

/* ---- the admin API across reloads ------------------------------------------------------------ */

static const char *admin_text(const char *addr)
{
    static char text[1024];
    snprintf(text, sizeof text,
             "workers: 1\n"
             "admin:\n"
             "  address: %s\n"
             "  token: 0123456789abcdef0123\n"
             "listeners:\n"
             "  - {name: edge, address: 127.0.0.1:18080, upstream: app}\n"
             "upstreams:\n"
             "  app:\n"
             "    backends: [{address: 127.0.0.1:19001}]\n",
             addr);
    return text;
}

static void reload_to_public_admin_without_token_is_refused(void **state)
{
    (void)state;
    start(admin_text("127.0.0.1:9901"));
    publish(&cfgs[0]);
    /* The loader refuses this config itself; build one some other way (no token). */
    gw_res_root_cfg_t *root =
        (gw_res_root_cfg_t *)gw_res_root_cfg(load_text(1, admin_text("0.0.0.0:9901")));
    free(root->admin_token);
    root->admin_token = NULL;
    char *errs = NULL;
    assert_null(build(&cfgs[1], &errs));
    assert_non_null(strstr(errs, "r.yaml:3:12: ")); /* admin.address's line and column */
    assert_non_null(strstr(errs, "admin.token is not set"));
    free(errs);
}

static void moved_admin_address_is_kept_with_a_warning(void **state)
{
    (void)state;
    start(admin_text("127.0.0.1:9901"));
    publish(&cfgs[0]);
    char *errs = NULL;
    gw_gen_t *g = build(load_text(1, admin_text("127.0.0.1:9902")), &errs);
    assert_non_null(g); /* not an error */
    assert_non_null(strstr(errs, "r.yaml:3:12: warning: admin.address needs a restart"));
    assert_non_null(strstr(errs, "127.0.0.1:9901"));
    free(errs);
    free_gen(g);
}

/* ---- on a running gateway: a reload adds a limit ------------------------------------------- */

/* The runtime with gw03's app, two workers and real sockets; the script (reloadtest.h) runs
 * on the control loop, as a reload trigger would. */
#define RT_STEP_TIMEOUT_MS 20000
#define RT_CONNS 5

static struct {
    gw_test_script_t script;
    unsigned port;
    int fds[2 * RT_CONNS];
    int nfds;
} live;

/* Listener `edge` on the test's port, to a backend nobody listens on (discard, port 9: the
 * connect is refused, which is all this test needs); with LIMIT a global limit of 1/s. NULL
 * if it does not load. */
static gw_config_t *live_cfg(bool limit)
{
    char text[1024];
    snprintf(text, sizeof text,
             "workers: 2\n"
             "listeners:\n"
             "  - name: edge\n"
             "    address: 127.0.0.1:%u\n"
             "    upstream: app\n"
             "%s"
             "upstreams:\n"
             "  app:\n"
             "    backends: [{address: 127.0.0.1:9}]\n",
             live.port, limit ? "    rate_limit: {global: {rate: 1, burst: 1}}\n" : "");
    return gw_test_cfg_new("live.yaml", text, &gw_res_config_ext);
}

/* RT_CONNS connections to the listener, kept open (the worker reads their peer address)
 * until the step that counted them closes them. */
static bool open_conns(void)
{
    for (int i = 0; i < RT_CONNS; i++) {
        int fd = gw_test_connect(live.port);
        if (fd < 0)
            return false;
        live.fds[live.nfds++] = fd;
    }
    return true;
}

static void close_conns(void)
{
    while (live.nfds > 0)
        close(live.fds[--live.nfds]);
}

/* The value of the sample LINE ("name{labels}") in 03's metrics now; UINT64_MAX if absent. */
static uint64_t live_sample(gw_runtime_t *lrt, const char *line)
{
    gw_prom_t *p = gw_prom_new(0);
    if (p == NULL)
        return UINT64_MAX;
    gw_res_metrics(lrt, p);
    size_t len = 0;
    const char *t = gw_prom_text(p, &len);
    uint64_t v = UINT64_MAX;
    size_t n = strlen(line);
    for (const char *at = t; t != NULL && (at = strstr(at, line)) != NULL; at++)
        if ((at == t || at[-1] == '\n') && at[n] == ' ') {
            v = strtoull(at + n + 1, NULL, 10);
            break;
        }
    gw_prom_free(p);
    return v;
}

static void live_steps(gw_test_script_t *s)
{
    gw_runtime_t *lrt = s->rt;
    if (!lrt->started) /* `ready` not yet logged */
        return;
    const gw_listener_t *l = gw_gen_current(lrt)->lis[0].obj;
    uint64_t limited =
        live_sample(lrt, "gw_ratelimit_rejected_total{listener=\"edge\",scope=\"global\"}");
    switch (s->step) {
    case 0: /* no limit at start: every connection is admitted */
        GW_TEST_CHECK(s, open_conns());
        gw_test_next(s);
        return;
    case 1:
        if (atomic_load(&l->accepted) < RT_CONNS)
            return;
        GW_TEST_CHECK(s, atomic_load(&l->accepted) == RT_CONNS && limited == 0);
        close_conns();
        gw_test_next(s);
        return;
    case 2: /* a reload adds a global limit of 1/s, burst 1 */
        GW_TEST_CHECK(s, gw_test_reload(s, live_cfg(true), NULL, NULL, 0) == 0);
        GW_TEST_CHECK(s, gw_gen_current(lrt)->lis[0].obj == l); /* the same listener object */
        GW_TEST_CHECK(s, open_conns());
        gw_test_next(s);
        return;
    case 3: /* within a second, at most two of RT_CONNS get through: the rest are limited */
        if (limited == UINT64_MAX || atomic_load(&l->accepted) + limited < 2 * RT_CONNS)
            return;
        GW_TEST_CHECK(s, limited >= RT_CONNS - 2);
        GW_TEST_CHECK(s, atomic_load(&l->accepted) + limited == 2 * RT_CONNS); /* kept: exact */
        close_conns();
        gw_test_next(s);
        return;
    }
}

static void reload_adds_a_rate_limit_on_a_running_gateway(void **state)
{
    (void)state;
    memset(&live, 0, sizeof live);
    live.script.steps = live_steps;
    live.script.nsteps = 4;
    live.script.step_timeout_ms = RT_STEP_TIMEOUT_MS;
    live.port = gw_test_free_port();
    gw_config_t *cfg = live_cfg(false);
    assert_non_null(cfg);
    void *lay[GW_LEVELS] = {0};
    assert_int_equal(gw_res_prepare(cfg, lay), 0);
    int code = gw_test_script_run(&live.script, cfg, &gw_res_app, lay);
    close_conns();
    gw_res_release(lay);
    gw_test_cfg_free(cfg);
    gw_test_script_check(&live.script, code);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(breaker_state_survives_generation_carry, setup, teardown),
        cmocka_unit_test_setup_teardown(fresh_backend_has_a_closed_breaker, setup, teardown),
        cmocka_unit_test_setup_teardown(connected_pair_holds_its_backend_not_its_generation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(budget_and_counters_carried_by_upstream_name, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(rate_limit_table_kept_when_options_equal, setup, teardown),
        cmocka_unit_test_setup_teardown(rate_limit_table_new_when_rate_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(limited_counters_carried_by_listener, setup, teardown),
        cmocka_unit_test_setup_teardown(client_address_asked_only_where_a_limit_or_hash_reads_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(removed_listener_and_upstream_leave_metrics, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(reload_to_public_admin_without_token_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(moved_admin_address_is_kept_with_a_warning, setup,
                                        teardown),
        cmocka_unit_test(reload_adds_a_rate_limit_on_a_running_gateway),
    };
    return cmocka_run_group_tests_name("res", tests, NULL, NULL);
}
