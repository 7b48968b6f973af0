/* reloadtest.c - see reloadtest.h. */
#include "reloadtest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "gwtest.h"

static struct sockaddr_in loopback(unsigned port)
{
    return (struct sockaddr_in){.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
}

/* see reloadtest.h */
int gw_test_listen(unsigned port, unsigned *bound)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in a = loopback(port);
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 8) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    if (bound != NULL)
        *bound = ntohs(a.sin_port);
    return fd;
}

/* see reloadtest.h */
int gw_test_connect(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in a = loopback(port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* see reloadtest.h */
unsigned gw_test_free_port(void)
{
    unsigned port = 0;
    int fd = gw_test_listen(0, &port);
    assert_true(fd >= 0);
    close(fd);
    return port;
}

/* see reloadtest.h */
int gw_test_plan_by_address(const gw_listener_cfg_t *old, size_t nold, const gw_listener_cfg_t *neu,
                            size_t nnew, size_t *keep)
{
    for (size_t j = 0; j < nnew; j++) {
        keep[j] = SIZE_MAX;
        for (size_t i = 0; i < nold && keep[j] == SIZE_MAX; i++)
            if (gw_addr_equal(&old[i].addr, &neu[j].addr))
                keep[j] = i;
    }
    return 0;
}

/* A configuration and the extension to free it with: gw_runtime_reload's FREE_CFG gets only
 * the configuration, so it is the first member and the free function casts back. */
typedef struct {
    gw_config_t cfg;
    const gw_config_ext_t *ext;
} heap_cfg_t;

/* see reloadtest.h */
gw_config_t *gw_test_cfg_new(const char *name, const char *text, const gw_config_ext_t *ext)
{
    heap_cfg_t *h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    h->ext = ext;
    if (gw_config_load_string(name, text, ext, &h->cfg, stderr) != 0) {
        free(h); /* the loader freed what it had made */
        return NULL;
    }
    return &h->cfg;
}

/* see reloadtest.h */
void gw_test_cfg_free(gw_config_t *cfg)
{
    heap_cfg_t *h = (heap_cfg_t *)cfg;
    gw_config_free(&h->cfg, h->ext);
    free(h);
}

/* ---- the script ---------------------------------------------------------------------------- */

/* The script running now: the runtime's hooks take no context of the test's. */
static gw_test_script_t *running;

/* see reloadtest.h */
void gw_test_fail(gw_test_script_t *s, const char *file, int line, const char *what)
{
    if (s->failure[0] != '\0')
        return;
    if (file != NULL)
        snprintf(s->failure, sizeof s->failure, "%s:%d: %s (step %d)", file, line, what, s->step);
    else
        snprintf(s->failure, sizeof s->failure, "%s (step %d)", what, s->step);
    uv_timer_stop(&s->timer);
    gw_runtime_shutdown(s->rt);
}

/* see reloadtest.h */
void gw_test_next(gw_test_script_t *s)
{
    s->step++;
    s->step_started = uv_now(&s->rt->loop);
}

/* One tick: the step timeout, the step, and the end once every step passed. */
static void on_tick(uv_timer_t *t)
{
    gw_test_script_t *s = t->data;
    uint64_t timeout = s->step_timeout_ms != 0 ? s->step_timeout_ms : GW_TEST_STEP_TIMEOUT_MS;
    if (uv_now(&s->rt->loop) - s->step_started >= timeout) {
        char what[64];
        snprintf(what, sizeof what, "timed out after %llu ms", (unsigned long long)timeout);
        gw_test_fail(s, NULL, 0, what);
        return;
    }
    s->steps(s);
    if (s->failure[0] == '\0' && s->step >= s->nsteps) {
        uv_timer_stop(&s->timer);
        gw_runtime_shutdown(s->rt);
    }
}

static int script_control_start(gw_runtime_t *rt)
{
    gw_test_script_t *s = running;
    if (rt->nworkers > GW_TEST_MAX_WORKERS)
        return GW_EINVAL; /* gw_test_workers_follow could not tell */
    int rc = s->app.control_start != NULL ? s->app.control_start(rt) : 0;
    if (rc != 0)
        return rc;
    s->rt = rt;
    uv_timer_init(&rt->loop, &s->timer);
    s->timer.data = s;
    s->step_started = uv_now(&rt->loop);
    return uv_timer_start(&s->timer, on_tick, GW_TEST_TICK_MS, GW_TEST_TICK_MS);
}

static void script_control_stop(gw_runtime_t *rt)
{
    gw_test_script_t *s = running;
    uv_close((uv_handle_t *)&s->timer, NULL);
    if (s->app.control_stop != NULL)
        s->app.control_stop(rt);
}

/* Worker thread: after the app's own hook, so "follows" means the hook has run. */
static void script_worker_gen(gw_worker_t *w, const gw_gen_t *g, const gw_gen_t *prev)
{
    gw_test_script_t *s = running;
    if (s->app.worker_gen != NULL)
        s->app.worker_gen(w, g, prev);
    atomic_store(&s->seen[w->id], g->id);
}

/* see reloadtest.h */
int gw_test_script_run(gw_test_script_t *s, const gw_config_t *cfg, const gw_app_t *app,
                       void *const *layers)
{
    assert_null(running);
    assert_non_null(s->steps);
    assert_true(s->nsteps > 0);
    s->app = *app;
    for (int i = 0; i < GW_TEST_MAX_WORKERS; i++)
        atomic_init(&s->seen[i], 0);
    gw_app_t wrapped = *app;
    wrapped.control_start = script_control_start;
    wrapped.control_stop = script_control_stop;
    wrapped.worker_gen = script_worker_gen;
    running = s;
    int code = gw_runtime_run(cfg, &wrapped, layers);
    running = NULL;
    return code;
}

/* see reloadtest.h */
void gw_test_script_check(const gw_test_script_t *s, int code)
{
    if (s->failure[0] != '\0')
        fail_msg("%s", s->failure);
    assert_int_equal(code, 0);
    assert_int_equal(s->step, s->nsteps);
}

/* see reloadtest.h */
bool gw_test_workers_follow(gw_test_script_t *s, uint64_t gen_id)
{
    for (unsigned i = 0; i < s->rt->nworkers; i++)
        if (atomic_load(&s->seen[i]) != gen_id)
            return false;
    return true;
}

/* see reloadtest.h */
int gw_test_reload(gw_test_script_t *s, gw_config_t *cfg, gw_reload_report_t *rep, char *errs,
                   size_t cap)
{
    if (s->failure[0] != '\0') {
        if (cfg != NULL)
            gw_test_cfg_free(cfg);
        return GW_EINVAL;
    }
    if (cfg == NULL) {
        gw_test_fail(s, NULL, 0, "the reload's configuration did not load (stderr says why)");
        return GW_EINVAL;
    }
    gw_reload_report_t ignored;
    FILE *f = errs != NULL ? fmemopen(errs, cap, "w") : stderr;
    if (f == NULL) {
        gw_test_cfg_free(cfg);
        gw_test_fail(s, NULL, 0, "fmemopen failed");
        return GW_EINVAL;
    }
    int rc = gw_runtime_reload(s->rt, cfg, gw_test_cfg_free, gw_test_plan_by_address, f,
                               rep != NULL ? rep : &ignored);
    if (f != stderr)
        fclose(f);
    return rc;
}
