/* passthrough.c - see passthrough.h. */
#include "passthrough.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "02-lb/lb.h"
#include "04-http/httpcfg.h"
#include "04-http/kcount.h"
#include "04-http/mw.h"
#include "error.h"
#include "log.h"
#include "metrics.h"

#define SEC 1000ull

static const char *const result_names[GW_PT_NRESULTS] = {
    "routed", "default", "no_sni", "no_route", "malformed", "too_big", "timeout"};

/* see passthrough.h */
const char *gw_pt_result_name(gw_pt_result_t r)
{
    return (unsigned)r < GW_PT_NRESULTS ? result_names[r] : "?";
}

/* ---- the decision --------------------------------------------------------------------------- */

/* LAB 04: SNI routing */

/* see passthrough.h */
long gw_passthrough_match(const gw_passthrough_cfg_t *pc, const char *name, size_t len)
{
    long best = -1;
    size_t best_len = 0;
    for (size_t i = 0; i < pc->nroutes; i++) {
        const char *p = pc->routes[i].sni;
        size_t n = strlen(p);
        if (p[0] != '*') {
            if (n == len && memcmp(p, name, len) == 0)
                return (long)i; /* an exact name beats every wildcard */
            continue;
        }
        /* "*.example.com": the suffix ".example.com" after at least one label */
        const char *suffix = p + 1;
        size_t sn = n - 1;
        if (len > sn && memcmp(name + len - sn, suffix, sn) == 0 && sn > best_len) {
            best = (long)i;
            best_len = sn;
        }
    }
    return best;
}

/* see passthrough.h */
gw_pt_result_t gw_passthrough_decide(const gw_passthrough_cfg_t *pc, gw_sni_result_t answer,
                                     const gw_sni_t *s, gw_tcp_preread_event_t ev, long *upstream)
{
    long dflt = pc->default_upstream != NULL ? (long)pc->default_index : -1;
    *upstream = -1;
    if (ev == GW_TCP_PREREAD_FULL)
        return GW_PT_TOO_BIG;
    switch (answer) {
    case GW_SNI_NEED_MORE:
        if (ev == GW_TCP_PREREAD_DATA)
            return GW_PT_NRESULTS;
        return ev == GW_TCP_PREREAD_TIMEOUT ? GW_PT_TIMEOUT : GW_PT_MALFORMED;
    case GW_SNI_NOT_TLS:
    case GW_SNI_MALFORMED:
        return GW_PT_MALFORMED;
    case GW_SNI_TOO_BIG:
        return GW_PT_TOO_BIG;
    case GW_SNI_NONE:
        *upstream = dflt;
        return GW_PT_NO_SNI;
    case GW_SNI_FOUND:
        break;
    }
    long r = gw_passthrough_match(pc, s->name, s->len);
    if (r >= 0) {
        *upstream = (long)pc->routes[r].upstream_index;
        return GW_PT_ROUTED;
    }
    *upstream = dflt;
    return dflt >= 0 ? GW_PT_DEFAULT : GW_PT_NO_ROUTE;
}

/* END LAB */

/* ---- the picker ---------------------------------------------------------------------------- */

struct gw_passthrough_s {
    gw_lb_t *lb;
    gw_tcp_picker_t inner;  /* 02's (with 03's hooks), which every other listener uses */
    gw_tcp_picker_t picker; /* ours, in layer 1 */
    gw_kcount_t *counts;    /* kept by listener name (kcount.h): GW_PT_NRESULTS per worker */
};

/* Counts R for listener L on worker W under L's name now (an entry exists once a
 * generation gave that name tls_passthrough: gw_passthrough_gen_names). */
static void count(gw_passthrough_t *pt, unsigned w, const gw_listener_t *l, gw_pt_result_t r)
{
    gw_kcount_entry_t *e = gw_kcount_find(pt->counts, gw_listener_name(l), NULL);
    if (e != NULL)
        gw_counter_inc(gw_kcount_counter(e, w, r));
}

static uint64_t pt_preread_ms(void *ctx, const gw_listener_t *l)
{
    (void)ctx;
    const gw_passthrough_cfg_t *pc = gw_passthrough_cfg(l->cfg);
    return pc != NULL ? pc->timeout_ms : 0;
}

/* The decision and the pick come from one generation: the route is an upstream index of
 * the configuration the decision read. So each call pins the generation published now and
 * reads the listener's options there; the call that answers PICK leaves its pin in
 * TOK->ref, and pt_pick, which 01 calls at once in the same call (tcp_proxy.h), hands it to
 * 02's pick. Nothing else holds it: once connected the pair keeps only its backend
 * (GW_LB_PAIR), and a pair closed before its pick gives the pin back in 02's report. */
static int pt_preread(void *ctx, gw_worker_t *w, const gw_listener_t *l, const char *data,
                      size_t len, gw_tcp_preread_event_t ev, gw_tcp_pick_t *tok)
{
    gw_passthrough_t *pt = ctx;
    gw_snap_t *snap;
    const gw_glistener_t *gl = gw_gen_listener(gw_gen_pin(w, &snap), l);
    const gw_passthrough_cfg_t *pc = gl != NULL ? gw_passthrough_cfg(gl->cfg) : NULL;
    if (pc == NULL) { /* a reload took the listener or its tls_passthrough away meanwhile */
        gw_gen_unpin(w, snap);
        return GW_TCP_PREREAD_REFUSE;
    }
    gw_sni_t s;
    /* One chunk is all 01 keeps: a record that cannot fit is too big from its header on. */
    gw_sni_result_t answer = gw_sni_parse(data, len, gw_chunk_size(&w->bufs), &s);
    long upstream;
    gw_pt_result_t r = gw_passthrough_decide(pc, answer, &s, ev, &upstream);
    if (r != GW_PT_NRESULTS)
        count(pt, w->id, l, r);
    if (r == GW_PT_NRESULTS || upstream < 0) {
        gw_gen_unpin(w, snap);
        if (r == GW_PT_NRESULTS)
            return GW_TCP_PREREAD_MORE;
        gw_debug("listener '%s': tls_passthrough: %s (%s at byte %zu of %zu): closed",
                 gw_listener_name(l), gw_pt_result_name(r), gw_sni_result_name(answer), s.err_pos,
                 len);
        return GW_TCP_PREREAD_REFUSE;
    }
    tok->route = (uint32_t)upstream + 1;
    tok->ref = snap; /* for pt_pick */
    return GW_TCP_PREREAD_PICK;
}

static const gw_addr_t *pt_pick(void *ctx, gw_worker_t *w, const gw_listener_t *l,
                                const struct sockaddr *client, unsigned attempt, gw_tcp_pick_t *tok)
{
    gw_passthrough_t *pt = ctx;
    if (tok->route == 0) /* no passthrough decision: a plain tcp listener's pair */
        return pt->inner.pick(pt->inner.ctx, w, l, client, attempt, tok);
    if (attempt > 0) /* the retries pick in the generation the first pick pinned */
        return gw_lb_pick_upstream(pt->lb, w, NULL, tok->route - 1, client, attempt, tok);
    gw_snap_t *s = tok->ref; /* the preread's pin */
    tok->ref = NULL;
    tok->flags |= GW_LB_PAIR;
    const gw_addr_t *a = gw_lb_pick_upstream(pt->lb, w, s, tok->route - 1, client, 0, tok);
    if (s != NULL)
        gw_gen_unpin(w, s); /* the pick holds its own pin now */
    return a;
}

/* The other hooks are 02's, called with 02's context. */
static void pt_report(void *ctx, gw_worker_t *w, gw_tcp_pick_t *tok, int status)
{
    gw_passthrough_t *pt = ctx;
    if (pt->inner.report != NULL)
        pt->inner.report(pt->inner.ctx, w, tok, status);
}

static bool pt_retry(void *ctx, gw_worker_t *w, gw_tcp_pick_t *tok, unsigned attempt,
                     uint64_t *delay_ms)
{
    gw_passthrough_t *pt = ctx;
    return pt->inner.retry == NULL || pt->inner.retry(pt->inner.ctx, w, tok, attempt, delay_ms);
}

static bool pt_admit(void *ctx, gw_worker_t *w, const gw_listener_t *l,
                     const struct sockaddr *client)
{
    gw_passthrough_t *pt = ctx;
    return pt->inner.admit == NULL || pt->inner.admit(pt->inner.ctx, w, l, client);
}

/* The picker below's reasons, and a passthrough listener's own: its SNI may route to any
 * upstream, so any upstream that hashes client addresses (in the generation published now,
 * borrowed for this call) is one. */
static bool pt_wants_client(void *ctx, gw_worker_t *w, const gw_listener_t *l)
{
    gw_passthrough_t *pt = ctx;
    if (pt->inner.wants_client != NULL && pt->inner.wants_client(pt->inner.ctx, w, l))
        return true;
    const gw_gen_t *g = gw_gen_current(w->rt);
    const gw_glistener_t *gl = g != NULL ? gw_gen_listener(g, l) : NULL;
    if (gl == NULL || gw_passthrough_cfg(gl->cfg) == NULL)
        return false;
    const gw_lb_table_t *t = gw_lb_gen_table(g);
    for (size_t i = 0; t != NULL && i < t->n; i++)
        if (t->ups[i].lb->hash_client_ip)
            return true;
    return false;
}

/* see passthrough.h */
gw_passthrough_t *gw_passthrough_prepare(const gw_config_t *cfg, void **layers, int *err)
{
    *err = 0;
    if (layers[1] == NULL)
        return NULL;
    /* Whatever CFG says: a reload may give a tcp listener tls_passthrough. The others cost
     * one call more per connection (pt_pick hands them to 02's pick). */
    gw_passthrough_t *pt = calloc(1, sizeof *pt);
    if (pt == NULL ||
        (pt->counts = gw_kcount_new(cfg->workers, GW_PT_NRESULTS * sizeof(gw_counter_t))) == NULL) {
        free(pt);
        *err = GW_ENOMEM;
        return NULL;
    }
    pt->lb = layers[2];
    pt->inner = *(const gw_tcp_picker_t *)layers[1];
    pt->picker = (gw_tcp_picker_t){.pick = pt_pick,
                                   .report = pt_report,
                                   .retry = pt_retry,
                                   .admit = pt->inner.admit != NULL ? pt_admit : NULL,
                                   .preread_ms = pt_preread_ms,
                                   .preread = pt_preread,
                                   .max_attempts = pt->inner.max_attempts,
                                   .wants_client = pt_wants_client,
                                   .ctx = pt};
    layers[1] = &pt->picker;
    return pt;
}

/* see passthrough.h */
int gw_passthrough_gen_names(gw_passthrough_t *pt, const gw_config_t *cfg)
{
    for (size_t i = 0; pt != NULL && i < cfg->nlisteners; i++)
        if (gw_passthrough_cfg(&cfg->listeners[i]) != NULL &&
            gw_kcount_keep(pt->counts, cfg->listeners[i].name, NULL) == NULL)
            return GW_ENOMEM;
    return 0;
}

/* see passthrough.h */
void gw_passthrough_free(gw_passthrough_t *pt)
{
    if (pt == NULL)
        return;
    gw_kcount_free(pt->counts);
    free(pt);
}

/* see passthrough.h */
void gw_passthrough_metrics(const gw_passthrough_t *pt, const gw_gen_t *g, gw_prom_t *p)
{
    if (pt == NULL || g == NULL)
        return;
    bool any = false;
    for (size_t i = 0; i < g->nlis; i++)
        any = any || gw_passthrough_cfg(g->lis[i].cfg) != NULL;
    if (!any) /* as before reloads: no family on a gateway without passthrough */
        return;
    const char *name = "gw_tls_passthrough_total";
    gw_prom_family(p, name,
                   "Clients of tls_passthrough listeners, by what their ClientHello decided",
                   GW_PROM_COUNTER);
    for (size_t i = 0; i < g->nlis; i++) {
        const gw_listener_cfg_t *l = g->lis[i].cfg;
        const gw_kcount_entry_t *e =
            gw_passthrough_cfg(l) != NULL ? gw_kcount_find(pt->counts, l->name, NULL) : NULL;
        for (int r = 0; e != NULL && r < GW_PT_NRESULTS; r++) {
            const char *lab[] = {"listener", l->name, "result", result_names[r], NULL};
            gw_prom_sample_u64(p, name, lab, gw_kcount_sum(e, (size_t)r));
        }
    }
}

/* ---- configuration ------------------------------------------------------------------------- */

/* see passthrough.h */
const gw_passthrough_cfg_t *gw_passthrough_cfg(const gw_listener_cfg_t *l)
{
    const gw_http_listener_cfg_t *x = l->protocol == GW_PROTO_TCP ? l->ext[4] : NULL;
    return x ? x->passthrough : NULL;
}

/* NAME of upstream at NODE: its index, or an error. */
static bool resolve(gw_cdoc_t *doc, const gw_cnode_t *node, const gw_config_t *cfg, char **name,
                    size_t *index)
{
    if (gw_cget_string(doc, node, "upstream", name) != 0 || *name == NULL)
        return false;
    for (size_t i = 0; i < cfg->nupstreams; i++)
        if (cfg->upstreams[i].name != NULL && strcmp(cfg->upstreams[i].name, *name) == 0) {
            *index = i;
            return true;
        }
    if (cfg->upstreams != NULL)
        gw_cdoc_error(doc, node, "unknown upstream '%s'", *name);
    return false;
}

static void decode_route(gw_cdoc_t *doc, const gw_cnode_t *map, const gw_config_t *cfg,
                         gw_passthrough_cfg_t *pc)
{
    if (!gw_cnode_expect_map(doc, map, "each tls_passthrough route"))
        return;
    gw_passthrough_route_t *r = &pc->routes[pc->nroutes++];
    const gw_cnode_t *sni = gw_cmap_require(doc, map, "sni");
    resolve(doc, gw_cmap_require(doc, map, "upstream"), cfg, &r->upstream, &r->upstream_index);
    if (gw_cget_string(doc, sni, "sni", &r->sni) != 0 || r->sni == NULL)
        return;
    for (char *c = r->sni; *c; c++)
        *c = *c >= 'A' && *c <= 'Z' ? (char)(*c - 'A' + 'a') : *c;
    const char *host = strncmp(r->sni, "*.", 2) == 0 ? r->sni + 2 : r->sni;
    if (!gw_sni_name_valid(host, strlen(host), true)) {
        gw_cdoc_error(doc, sni, "sni: '%s' is not a host name or *.name", sni->str);
        return;
    }
    for (size_t i = 0; i + 1 < pc->nroutes; i++)
        if (pc->routes[i].sni != NULL && strcmp(pc->routes[i].sni, r->sni) == 0)
            gw_cdoc_error(doc, sni, "sni: '%s' is already routed by route %zu", r->sni, i);
}

static void decode_block(gw_cdoc_t *doc, const gw_cnode_t *tp, const gw_config_t *cfg,
                         gw_passthrough_cfg_t *pc)
{
    pc->timeout_ms = 5 * SEC;
    gw_cget_duration(doc, gw_cmap_get(doc, tp, "timeout"), "timeout", 1, 3600 * SEC,
                     &pc->timeout_ms);
    const gw_cnode_t *d = gw_cmap_get(doc, tp, "default");
    if (d != NULL && !resolve(doc, d, cfg, &pc->default_upstream, &pc->default_index)) {
        free(pc->default_upstream);
        pc->default_upstream = NULL;
    }
    const gw_cnode_t *routes = gw_cmap_require(doc, tp, "routes");
    if (routes == NULL || !gw_cnode_expect_seq(doc, routes, "routes"))
        return;
    if (routes->n == 0) {
        gw_cdoc_error(doc, routes, "routes must not be empty");
        return;
    }
    if ((pc->routes = calloc(routes->n, sizeof *pc->routes)) == NULL) {
        gw_cdoc_oom(doc, routes);
        return;
    }
    for (size_t i = 0; i < routes->n; i++)
        decode_route(doc, routes->items[i], cfg, pc);
}

/* see passthrough.h */
gw_passthrough_cfg_t *gw_passthrough_cfg_decode(gw_cdoc_t *doc, const gw_cnode_t *map,
                                                gw_config_t *cfg, gw_listener_cfg_t *l)
{
    if (map == NULL || map->type != GW_CNODE_MAP)
        return NULL;
    const gw_cnode_t *tp = gw_cmap_get(doc, map, "tls_passthrough");
    if (tp == NULL)
        return NULL;
    if (l->protocol != GW_PROTO_TCP) {
        gw_cnode_silence(tp);
        gw_cdoc_error(doc, gw_mw_cfg_key_node(map, "tls_passthrough"),
                      "tls_passthrough: only on tcp listeners");
        return NULL;
    }
    if (l->upstream != NULL) {
        gw_cnode_silence(tp);
        gw_cdoc_error(doc, gw_mw_cfg_key_node(map, "tls_passthrough"),
                      "tls_passthrough: the listener has an upstream already; name it as "
                      "tls_passthrough.default instead");
        return NULL;
    }
    if (!gw_cnode_expect_map(doc, tp, "tls_passthrough"))
        return NULL;
    gw_passthrough_cfg_t *pc = calloc(1, sizeof *pc);
    if (pc == NULL) {
        gw_cdoc_oom(doc, tp);
        return NULL;
    }
    decode_block(doc, tp, cfg, pc);
    if (pc->default_upstream != NULL)
        l->upstream_index = pc->default_index;
    return pc;
}

/* see passthrough.h */
void gw_passthrough_cfg_print(FILE *out, const gw_listener_cfg_t *l, int in)
{
    const gw_passthrough_cfg_t *pc = gw_passthrough_cfg(l);
    if (pc == NULL)
        return;
    char a[32];
    fprintf(out, "%*stls_passthrough:\n%*sroutes:\n", in, "", in + 2, "");
    for (size_t i = 0; i < pc->nroutes; i++) {
        fprintf(out, "%*s- sni: ", in + 4, "");
        gw_config_print_str(out, pc->routes[i].sni ? pc->routes[i].sni : "");
        fprintf(out, "\n%*supstream: ", in + 6, "");
        gw_config_print_str(out, pc->routes[i].upstream ? pc->routes[i].upstream : "");
        fputc('\n', out);
    }
    if (pc->default_upstream != NULL) {
        fprintf(out, "%*sdefault: ", in + 2, "");
        gw_config_print_str(out, pc->default_upstream);
        fputc('\n', out);
    } else {
        fprintf(out, "%*s# default: not set, a name no route has is closed\n", in + 2, "");
    }
    fprintf(out, "%*stimeout: %s\n", in + 2, "", gw_cfmt_duration(pc->timeout_ms, a, sizeof a));
}

/* see passthrough.h */
void gw_passthrough_cfg_free(gw_passthrough_cfg_t *pc)
{
    if (pc == NULL)
        return;
    for (size_t i = 0; i < pc->nroutes; i++) {
        free(pc->routes[i].sni);
        free(pc->routes[i].upstream);
    }
    free(pc->routes);
    free(pc->default_upstream);
    free(pc);
}
