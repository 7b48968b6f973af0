/* disc.c - see disc.h.
 *
 * One reload, on the control thread, from whichever trigger (reload.c coalesces them):
 *   1. read and check the file with every level's keys (gw_config_load): a syntax error or a
 *      bad value stops here, with every error as FILE:LINE:COL;
 *   2. gw_runtime_reload: restart-only keys kept at their running values, listeners diffed
 *      by this milestone's plan (plan_listeners, over the LAB gw_plan_listeners), new
 *      addresses bound, each level's part of the generation built (02 carries backends by
 *      this milestone's rule, carry_by_plan over the LAB gw_plan_backends), publish, and the
 *      `config generation N applied` line;
 *   3. what happened is kept for /metrics and as POST /reload's answer.
 * The control loop does nothing else meanwhile (YAML, key files and name resolution block
 * it); at operator scale a reload takes milliseconds, and the workers never wait for it. */
#include "05-discovery/disc.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "02-lb/lb.h"
#include "03-resilience/res.h"
#include "04-http/hproxy.h"
#include "04-http/tlsconf.h"
#include "05-discovery/disccfg.h"
#include "05-discovery/reload.h"
#include "05-discovery/reload_plan.h"
#include "clock.h"
#include "error.h"
#include "log.h"
#include "metrics.h"

typedef struct disc_s {
    gw_runtime_t *rt;
    char *path; /* the config file, as given with -c */
    gw_reload_t reload;
    bool reload_open;
    /* What the reloads did: control thread only (the admin API and /metrics run there). */
    uint64_t ok, failed, restart_required;
    bool last_ok;
    double last_s;  /* wall clock seconds of the last reload (of the start before any) */
    json_t *answer; /* the last reload's, for POST /reload */
} disc_t;

static disc_t *disc_state(const gw_runtime_t *rt)
{
    return gw_runtime_layer(rt, 5);
}

/* ---- the two identity rules, as the runtime and 02 ask for them ----------------------- */

/* The runtime's question (gw_plan_listeners_fn), answered by the LAB: KEEP is the plan's
 * FROM_OLD (GW_PLAN_NEW is the runtime's SIZE_MAX). */
static int plan_listeners(const gw_listener_cfg_t *old, size_t nold, const gw_listener_cfg_t *neu,
                          size_t nnew, size_t *keep)
{
    bool *gone = calloc(nold ? nold : 1, sizeof *gone);
    if (gone == NULL)
        return GW_ENOMEM;
    gw_plan_t p = {.from_old = keep, .gone = gone};
    gw_plan_listeners(old, nold, neu, nnew, &p);
    free(gone);
    return 0;
}

/* 02's question (gw_lb_carry_fn) for one upstream, answered by the LAB over keys. */
static int carry_by_plan(const gw_lb_upstream_t *old, const gw_upstream_cfg_t *neu,
                         gw_backend_t **keep)
{
    size_t nold = old->n, ncur = neu->nbackends;
    gw_backend_key_t *ko = calloc(nold ? nold : 1, sizeof *ko);
    gw_backend_key_t *kc = calloc(ncur ? ncur : 1, sizeof *kc);
    size_t *from = calloc(ncur ? ncur : 1, sizeof *from);
    bool *gone = calloc(nold ? nold : 1, sizeof *gone);
    int rc = ko && kc && from && gone ? 0 : GW_ENOMEM;
    if (rc == 0) {
        for (size_t i = 0; i < nold; i++)
            ko[i] = (gw_backend_key_t){old->m[i].b->upstream_name, old->m[i].b->addr};
        for (size_t i = 0; i < ncur; i++)
            kc[i] = (gw_backend_key_t){neu->name, neu->backends[i].addr};
        gw_plan_t p = {.from_old = from, .gone = gone};
        gw_plan_backends(ko, nold, kc, ncur, &p);
        for (size_t i = 0; i < ncur; i++)
            keep[i] = from[i] == GW_PLAN_NEW ? NULL : old->m[from[i]].b;
    }
    free(ko);
    free(kc);
    free(from);
    free(gone);
    return rc;
}

/* ---- one reload ------------------------------------------------------------------------ */

static void free_cfg(gw_config_t *cfg)
{
    gw_config_free(cfg, &gw_disc_config_ext);
    free(cfg);
}

static const char *why_text(unsigned why)
{
    if (why & GW_RELOAD_ADMIN)
        return "POST /reload";
    if (why & GW_RELOAD_SIGNAL)
        return "SIGHUP";
    if (why & GW_RELOAD_FILE)
        return "file change";
    return "request";
}

/* One error line "FILE:LINE:COL: message" as {"file", "line", "col", "message"}; a line
 * without a position as {"message"}. The file name may hold ':', so the position is the
 * first ":N:N: " in the line. */
static json_t *error_json(const char *line)
{
    for (const char *p = strchr(line, ':'); p != NULL; p = strchr(p + 1, ':')) {
        unsigned l, c;
        int used = 0;
        if (sscanf(p, ":%u:%u: %n", &l, &c, &used) == 2 && used > 0)
            return json_pack("{s:s%, s:I, s:I, s:s}", "file", line, (size_t)(p - line), "line",
                             (json_int_t)l, "col", (json_int_t)c, "message", p + used);
    }
    return json_pack("{s:s}", "message", line);
}

/* Logs the lines of TEXT (errors of a refused reload, or warnings of an applied one: a key
 * kept at its running value) and returns them as a JSON array. */
static json_t *lines_of(char *text, const char *why, bool refused)
{
    json_t *a = json_array();
    for (char *line = text, *next; line != NULL && *line != '\0'; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        if (refused)
            gw_error("reload (%s) refused: %s", why, line);
        else
            gw_warn("reload (%s): %s", why, line);
        json_array_append_new(a, error_json(line));
    }
    return a;
}

/* "workers 2 -> 4, buffers.chunk_size 16384 -> 8192" as ["workers 2 -> 4", ...]. */
static json_t *restart_keys_of(const gw_reload_report_t *rep)
{
    json_t *a = json_array();
    const char *s = rep->restart_keys;
    while (rep->restart > 0 && *s != '\0') {
        const char *end = strstr(s, ", ");
        size_t n = end != NULL ? (size_t)(end - s) : strlen(s);
        json_array_append_new(a, json_stringn(s, n));
        s += n + (end != NULL ? 2 : 0);
    }
    return a;
}

/* The reload controller's RUN (reload.h): does one reload, keeps what happened. */
static int run(void *ctx, unsigned why)
{
    disc_t *d = ctx;
    char *text = NULL;
    size_t len = 0;
    FILE *errs = open_memstream(&text, &len);
    gw_config_t *cfg = calloc(1, sizeof *cfg);
    gw_reload_report_t rep;
    memset(&rep, 0, sizeof rep);
    int rc = errs == NULL || cfg == NULL ? GW_ENOMEM
                                         : gw_config_load(d->path, &gw_disc_config_ext, cfg, errs);
    if (rc == 0) {
        const gw_disc_root_cfg_t *was = gw_disc_root_cfg(gw_gen_current(d->rt)->cfg);
        const gw_disc_root_cfg_t *now = gw_disc_root_cfg(cfg);
        if (was->watch_file != now->watch_file || was->quiet_period_ms != now->quiet_period_ms)
            gw_warn("reload: watch_file and quiet_period apply at the next start");
        rc = gw_runtime_reload(d->rt, cfg, free_cfg, plan_listeners, errs, &rep); /* takes cfg */
    } else {
        free(cfg); /* gw_config_load freed what it had loaded */
    }
    if (errs != NULL)
        fclose(errs);
    d->last_s = (double)gw_clock_wall_ms(&gw_clock_system) / 1000.0;
    d->last_ok = rc == 0;
    json_decref(d->answer);
    if (rc == 0) {
        d->ok++;
        d->restart_required += rep.restart;
        d->answer = json_pack("{s:b, s:I, s:I, s:s, s:o, s:o}", "applied", 1, "generation",
                              (json_int_t)rep.gen, "changes", (json_int_t)rep.changes, "summary",
                              rep.summary, "restart_required", restart_keys_of(&rep), "warnings",
                              lines_of(text, why_text(why), false));
    } else {
        d->failed++;
        json_t *e = lines_of(text, why_text(why), true);
        if (json_array_size(e) == 0)
            json_array_append_new(e, json_pack("{s:s}", "message", gw_strerror(rc)));
        uint64_t serving = gw_gen_current(d->rt)->id;
        gw_error("reload (%s) refused: configuration generation %llu keeps serving", why_text(why),
                 (unsigned long long)serving);
        d->answer = json_pack("{s:b, s:I, s:o}", "applied", 0, "generation", (json_int_t)serving,
                              "errors", e);
    }
    free(text);
    return rc;
}

/* ---- what a reload changed, for the `applied` line --------------------------------------- */

/* One part of a configuration as -T prints it: a top-level key's block, or one listener or
 * upstream of those lists (KIND 'k', 'l' or 'u'), named and located in the printed text. */
typedef struct part_s {
    char kind;
    char name[128];
    const char *text;
    size_t len;
} part_t;

static char *printed(const gw_config_t *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        return NULL;
    gw_config_print(f, cfg, &gw_disc_config_ext);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* The name in `  - name: "web"` or `  "app":` (indentation and quotes dropped). */
static void part_name(const char *s, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++)
        if (s[i] != '"' && (s[i] != ' ' || k > 0))
            out[k++] = s[i];
    out[k] = '\0';
}

/* Cuts -T's text into parts: the printer writes one top-level key per column-0 line, the
 * listeners as `  - name: ...` items and the upstreams as `  "name":` keys. *N parts. */
static part_t *parts_of(const char *text, size_t *n)
{
    size_t cap = 16;
    part_t *p = malloc(cap * sizeof *p);
    *n = 0;
    char section = 'k';
    bool open = false; /* p[*n - 1] is still growing */
    for (const char *line = text; p != NULL && *line != '\0';) {
        const char *end = strchr(line, '\n');
        const char *next = end != NULL ? end + 1 : line + strlen(line);
        size_t len = (size_t)(next - line);
        bool top = line[0] != ' ' && line[0] != '#' && line[0] != '\n';
        bool item = false;
        if (top) {
            section = strncmp(line, "listeners:", 10) == 0   ? 'l'
                      : strncmp(line, "upstreams:", 10) == 0 ? 'u'
                                                             : 'k';
            open = false;
        } else {
            item = (section == 'l' && strncmp(line, "  - name: ", 10) == 0) ||
                   (section == 'u' && len > 3 && line[2] == '"');
        }
        if ((top && section == 'k') || item) {
            if (*n == cap) {
                part_t *q = realloc(p, 2 * cap * sizeof *p);
                if (q == NULL) {
                    free(p);
                    return NULL;
                }
                p = q;
                cap *= 2;
            }
            part_t *x = &p[(*n)++];
            x->kind = item ? section : 'k';
            const char *colon = memchr(line, ':', len);
            if (item && section == 'l')
                part_name(line + 10, len - 11, x->name, sizeof x->name);
            else
                part_name(line, colon != NULL ? (size_t)(colon - line) : 0, x->name,
                          sizeof x->name);
            x->text = line;
            x->len = 0;
            open = true;
        }
        if (open)
            p[*n - 1].len = (size_t)(next - p[*n - 1].text);
        line = next;
    }
    return p;
}

static const part_t *part_find(const part_t *p, size_t n, char kind, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (p[i].kind == kind && strcmp(p[i].name, name) == 0)
            return &p[i];
    return NULL;
}

/* Notes in G what differs from PREV, part by part: "upstream 'app' changed", "+upstream
 * 'x'", "log changed". Listeners added, removed or renamed the runtime notes itself (by
 * address); here only a listener whose name both have and whose settings differ. */
static void note_changes(gw_gen_t *g, const gw_gen_t *prev)
{
    char *a = printed(prev->cfg), *b = printed(g->cfg);
    size_t na = 0, nb = 0;
    part_t *pa = a != NULL ? parts_of(a, &na) : NULL, *pb = b != NULL ? parts_of(b, &nb) : NULL;
    if (pa == NULL || pb == NULL) {
        gw_gen_change(g, "(changes not described: out of memory)");
    } else {
        for (size_t i = 0; i < nb; i++) {
            const part_t *x = &pb[i], *o = part_find(pa, na, x->kind, x->name);
            const char *what = x->kind == 'l' ? "listener" : "upstream";
            bool changed = o != NULL && (o->len != x->len || memcmp(o->text, x->text, o->len) != 0);
            if (x->kind == 'k' && (o == NULL || changed))
                gw_gen_change(g, "%s changed", x->name);
            else if (o == NULL && x->kind == 'u')
                gw_gen_change(g, "+upstream '%s'", x->name);
            else if (changed)
                gw_gen_change(g, "%s '%s' changed", what, x->name);
        }
        for (size_t i = 0; i < na; i++)
            if (pa[i].kind == 'u' && part_find(pb, nb, 'u', pa[i].name) == NULL)
                gw_gen_change(g, "-upstream '%s'", pa[i].name);
    }
    free(pa);
    free(pb);
    free(a);
    free(b);
}

/* 04's part of G, then the summary of what changed since PREV. */
static int disc_gen_build(gw_runtime_t *rt, gw_gen_t *g, const gw_gen_t *prev, FILE *errs)
{
    int rc = gw_http_app.gen_build(rt, g, prev, errs);
    if (rc == 0 && prev != NULL)
        note_changes(g, prev);
    return rc;
}

static void log_tls_warning(void *ctx, const char *msg)
{
    (void)ctx;
    gw_warn("%s", msg);
}

/* Once G serves: the log settings apply at once (level, format, file), and G's TLS settings
 * get the warnings the start gives (`verify: false`, ...): a reload must not make them quiet. */
static void disc_gen_applied(gw_runtime_t *rt, const gw_gen_t *g, const gw_gen_t *prev)
{
    gw_http_app.gen_applied(rt, g, prev);
    if (prev == NULL)
        return; /* the start did both (cli.c, 04's prepare) */
    gw_tls_config_warnings(g->cfg, log_tls_warning, NULL);
    const gw_config_t *a = prev->cfg, *b = g->cfg;
    gw_log_setup(b->log_level, b->log_format);
    bool file_changed = (a->log_file == NULL) != (b->log_file == NULL) ||
                        (b->log_file != NULL && strcmp(a->log_file, b->log_file) != 0);
    if (file_changed && b->log_file != NULL) {
        int rc = gw_log_open(b->log_file);
        if (rc != 0)
            gw_error("log: cannot open %s: %s; logging on where it was", b->log_file,
                     gw_strerror(rc));
    } else if (file_changed) {
        gw_warn("log: file removed from the configuration: logging on to the old file until a "
                "restart (standard error is the file now)");
    }
}

/* ---- the admin API's routes (03 serves them) ----------------------------------------- */

/* POST /reload: one reload now (the triggers pending join it), answered with its result. */
static int admin_reload(void *ctx, json_t **body)
{
    disc_t *d = ctx;
    int rc = gw_reload_run_now(&d->reload, GW_RELOAD_ADMIN);
    if (rc == GW_EINVAL && d->answer == NULL) /* not run: closing */
        *body = json_pack("{s:b, s:[{s:s}]}", "applied", 0, "errors", "message", "shutting down");
    else
        *body = json_incref(d->answer);
    return rc == 0 ? 0 : -1;
}

/* GET /config: the serving generation's configuration as -T prints it (secrets masked by
 * each level's printer). */
static char *admin_config(void *ctx, size_t *len)
{
    disc_t *d = ctx;
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (f == NULL)
        return NULL;
    gw_config_print(f, gw_gen_current(d->rt)->cfg, &gw_disc_config_ext);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* ---- the application ------------------------------------------------------------------ */

static void disc_on_reload(gw_runtime_t *rt)
{
    disc_t *d = disc_state(rt);
    gw_info("SIGHUP: reloading %s", d->path);
    gw_reload_request(&d->reload, GW_RELOAD_SIGNAL);
}

static int disc_control_start(gw_runtime_t *rt)
{
    disc_t *d = disc_state(rt);
    d->rt = rt;
    int rc = gw_http_app.control_start(rt);
    if (rc != 0)
        return rc;
    gw_reload_init(&d->reload, &rt->loop, run, d);
    d->reload_open = true;
    d->last_ok = true;
    d->last_s = (double)gw_clock_wall_ms(&gw_clock_system) / 1000.0;
    const gw_disc_root_cfg_t *rc5 = gw_disc_root_cfg(rt->cfg);
    if (rc5->watch_file) {
        char q[32];
        int w = gw_reload_watch(&d->reload, d->path, rc5->quiet_period_ms);
        if (w != 0)
            gw_error("reload: cannot watch %s: %s (SIGHUP and POST /reload still work)", d->path,
                     gw_strerror(w));
        else
            gw_info("reload: watching %s (quiet period %s)", d->path,
                    gw_cfmt_duration(rc5->quiet_period_ms, q, sizeof q));
    }
    return 0;
}

static void disc_control_stop(gw_runtime_t *rt)
{
    disc_t *d = disc_state(rt);
    if (d->reload_open)
        gw_reload_close(&d->reload, NULL); /* its handles close as the control loop runs on */
    d->reload_open = false;
    gw_http_app.control_stop(rt);
}

/* 04's families, then the reload's. */
static void disc_metrics(gw_runtime_t *rt, gw_prom_t *p)
{
    gw_http_app.metrics(rt, p);
    const disc_t *d = disc_state(rt);
    gw_prom_family(p, "gw_config_generation", "The configuration generation serving now",
                   GW_PROM_GAUGE);
    gw_prom_sample_u64(p, "gw_config_generation", NULL, gw_gen_current(rt)->id);
    gw_prom_family(p, "gw_config_generations_alive",
                   "Generations not yet freed, the serving one included (an old one stays while "
                   "a request or tunnel that started in it runs)",
                   GW_PROM_GAUGE);
    gw_prom_sample_u64(p, "gw_config_generations_alive", NULL, rt->gens_alive);
    gw_prom_family(p, "gw_config_reloads_total", "Configuration reloads by result",
                   GW_PROM_COUNTER);
    const char *ok[] = {"result", "success", NULL}, *bad[] = {"result", "failure", NULL};
    gw_prom_sample_u64(p, "gw_config_reloads_total", ok, d->ok);
    gw_prom_sample_u64(p, "gw_config_reloads_total", bad, d->failed);
    gw_prom_family(p, "gw_config_last_reload_success",
                   "1 when the last reload was applied (or none was tried yet)", GW_PROM_GAUGE);
    gw_prom_sample_u64(p, "gw_config_last_reload_success", NULL, d->last_ok);
    gw_prom_family(p, "gw_config_last_reload_timestamp_seconds",
                   "When the last reload ran (the start before any)", GW_PROM_GAUGE);
    gw_prom_sample_double(p, "gw_config_last_reload_timestamp_seconds", NULL, d->last_s);
    gw_prom_family(p, "gw_config_restart_required_total",
                   "Changed keys a reload kept at their running values (workers, buffers.*)",
                   GW_PROM_COUNTER);
    gw_prom_sample_u64(p, "gw_config_restart_required_total", NULL, d->restart_required);
}

/* see disc.h */
const gw_app_t *gw_disc_app(void)
{
    static gw_app_t app;
    static bool made;
    if (!made) { /* gw04's app, with six hooks of 05's, each of which calls gw04's */
        app = gw_http_app;
        app.gen_build = disc_gen_build;
        app.gen_applied = disc_gen_applied;
        app.on_reload = disc_on_reload;
        app.control_start = disc_control_start;
        app.control_stop = disc_control_stop;
        app.metrics = disc_metrics;
        made = true;
    }
    return &app;
}

/* see disc.h */
int gw_disc_prepare(const gw_config_t *cfg, void **layers)
{
    int rc = gw_http_prepare(cfg, layers);
    if (rc != 0)
        return rc;
    disc_t *d = calloc(1, sizeof *d);
    if (d == NULL || (d->path = strdup(cfg->path != NULL ? cfg->path : "")) == NULL) {
        free(d);
        gw_http_release(layers);
        gw_error("milestone 05 setup failed: out of memory");
        return GW_ENOMEM;
    }
    gw_lb_set_carry(layers[2], carry_by_plan);
    gw_res_admin_extra(layers[3], admin_reload, admin_config, d);
    layers[5] = d;
    return 0;
}

/* see disc.h */
void gw_disc_release(void **layers)
{
    disc_t *d = layers[5];
    layers[5] = NULL;
    if (d != NULL) {
        json_decref(d->answer);
        free(d->path);
        free(d);
    }
    gw_http_release(layers);
}
