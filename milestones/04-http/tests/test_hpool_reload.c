/* test_hpool_reload.c - a reload that removes a backend closes the connections the workers
 * pooled to it, and the backend object is freed once they are gone (issue 17, step 7): gw04's
 * real engine on a real runtime, one worker, a backend served by a thread of the test.
 *
 * The test thread is the control thread, running a script (reloadtest.h, as
 * common/tests/test_runtime.c does). The request is made by the script itself with blocking
 * calls: only the worker and the backend thread take part in it. */
#include "gwtest.h"
#include "reloadtest.h"

#include <errno.h>
#include <semaphore.h>
#include <time.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "02-lb/lb.h"
#include "04-http/hproxy.h"
#include "04-http/httpcfg.h"
#include "runtime.h"

typedef struct fx_s {
    gw_test_script_t script;
    unsigned gw_port, backend_port, other_port;
    int backend_fd;      /* the backend's listening socket */
    uv_thread_t backend; /* serves one connection, then waits for its close */
    bool in_flight;      /* the second test: the reload comes while the request waits */
    uv_sem_t answer;     /* in_flight: the backend answers once the reload is done */
    sem_t followed;      /* posted by the worker once it followed a reload (worker_gen) */
    uv_thread_t client;  /* in_flight: makes the request */
    atomic_int client_done, client_ok;
    atomic_int backend_received; /* request heads read */
    atomic_int backend_served;   /* requests answered */
    atomic_int backend_closed;   /* the gateway closed the connection (EOF seen) */
} fx_t;

static fx_t fx;

/* The backend: one connection, answered with keep-alive (so the gateway pools it), then read
 * until the gateway closes it. */
static void backend_main(void *arg)
{
    (void)arg;
    int c = accept(fx.backend_fd, NULL, NULL);
    if (c < 0)
        return;
    char buf[4096];
    size_t have = 0;
    for (;;) {
        ssize_t n = recv(c, buf + have, sizeof buf - 1 - have, 0);
        if (n <= 0)
            break;
        have += (size_t)n;
        buf[have] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL) { /* a request head (no body): answer it */
            atomic_fetch_add(&fx.backend_received, 1);
            if (fx.in_flight)
                uv_sem_wait(&fx.answer);
            static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            /* Counted before the send: the client may read the answer (and the script check
             * the count) before this thread runs again after send returns. */
            atomic_fetch_add(&fx.backend_served, 1);
            if (send(c, ok, sizeof ok - 1, MSG_NOSIGNAL) < 0)
                break;
            have = 0;
        }
    }
    atomic_store(&fx.backend_closed, 1);
    close(c);
}

/* One request through the gateway, blocking; true when it was answered 200. */
static bool one_request(void)
{
    int fd = gw_test_connect(fx.gw_port);
    if (fd < 0)
        return false;
    struct timeval tv = {.tv_sec = 3};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    static const char req[] = "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    char buf[1024];
    size_t have = 0;
    bool sent = send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof req - 1);
    for (ssize_t n;
         sent && have < sizeof buf - 1 && (n = recv(fd, buf + have, sizeof buf - 1 - have, 0)) > 0;)
        have += (size_t)n;
    buf[have] = '\0';
    close(fd);
    return strncmp(buf, "HTTP/1.1 200", 12) == 0;
}

static void client_main(void *arg)
{
    (void)arg;
    atomic_store(&fx.client_ok, one_request());
    atomic_store(&fx.client_done, 1);
}

/* A heap config: the http listener on gw_port, upstream u with one backend on BACKEND_PORT,
 * pooled connections kept for a minute (only a reload can close this one in time); NULL if it
 * does not load. */
static gw_config_t *make_cfg(unsigned backend_port)
{
    char text[1024];
    snprintf(text, sizeof text,
             "workers: 1\n"
             "listeners:\n"
             "  - name: web\n"
             "    address: 127.0.0.1:%u\n"
             "    protocol: http\n"
             "    routes:\n"
             "      - match: {path_prefix: /}\n"
             "        upstream: u\n"
             "upstreams:\n"
             "  u:\n"
             "    keepalive: {max_idle: 8, idle_timeout: 60s}\n"
             "    backends:\n"
             "      - address: 127.0.0.1:%u\n",
             fx.gw_port, backend_port);
    return gw_test_cfg_new("pool.yaml", text, &gw_http_config_ext);
}

/* Moves upstream u to another backend (nothing listens there; errors on stderr); the old one
 * drains. */
static bool reload_away(gw_test_script_t *s)
{
    return gw_test_reload(s, make_cfg(fx.other_port), NULL, NULL, 0) == 0;
}

/* The first test: a request, its connection pooled, then the reload. */
static void script_pooled(gw_test_script_t *s, const gw_lb_t *lb)
{
    gw_runtime_t *rt = s->rt;
    switch (s->step) {
    case 0: /* a request: its upstream connection goes back to the pool, open */
        if (rt->nready < rt->nworkers) /* the workers listen once ready */
            return;
        GW_TEST_CHECK(s, one_request());
        GW_TEST_CHECK(s, atomic_load(&fx.backend_served) == 1);
        gw_test_next(s);
        return;
    case 1: /* still pooled a moment later; then a reload moves u to another backend */
        if (uv_now(&rt->loop) - s->step_started < 50)
            return;
        GW_TEST_CHECK(s, atomic_load(&fx.backend_closed) == 0);
        GW_TEST_CHECK(s, reload_away(s));
        GW_TEST_CHECK(s, gw_lb_draining_first(lb) != NULL); /* the old backend drains */
        gw_test_next(s);
        return;
    case 2: /* the worker followed: the pooled connection to the removed backend is closed */
        if (!atomic_load(&fx.backend_closed))
            return;
        gw_test_next(s);
        return;
    case 3: /* nothing holds the backend any more: the reaper frees it */
        if (gw_lb_draining_first(lb) != NULL)
            return;
        gw_test_next(s);
        return;
    }
}

/* The second test: the reload comes while the backend holds the request. */
static void script_in_flight(gw_test_script_t *s, const gw_lb_t *lb)
{
    gw_runtime_t *rt = s->rt;
    switch (s->step) {
    case 0:
        if (rt->nready < rt->nworkers)
            return;
        GW_TEST_CHECK(s, uv_thread_create(&fx.client, client_main, NULL) == 0);
        gw_test_next(s);
        return;
    case 1: /* the backend has the request: reload, then let it answer */
        if (atomic_load(&fx.backend_received) == 0)
            return;
        GW_TEST_CHECK(s, reload_away(s));
        GW_TEST_CHECK(s, gw_lb_draining_first(lb) != NULL);
        uv_sem_post(&fx.answer);
        gw_test_next(s);
        return;
    case 2: /* the exchange, on the old generation, completes */
        if (!atomic_load(&fx.client_done))
            return;
        GW_TEST_CHECK(s, atomic_load(&fx.client_ok));
        gw_test_next(s);
        return;
    case 3: /* its connection was closed, not pooled: the backend drains */
        if (!atomic_load(&fx.backend_closed))
            return;
        gw_test_next(s);
        return;
    case 4:
        if (gw_lb_draining_first(lb) != NULL)
            return;
        gw_test_next(s);
        return;
    }
}

static void steps(gw_test_script_t *s)
{
    const gw_lb_t *lb = gw_runtime_layer(s->rt, 2);
    if (fx.in_flight)
        script_in_flight(s, lb);
    else
        script_pooled(s, lb);
}

/* The worst order a reload can take: the worker follows the new generation before the
 * control thread runs gen_applied, where 02 marks removed backends DRAINING (the runtime
 * publishes first, and the worker may wake at once). gen_applied waits here (5 s at most)
 * for the worker's worker_gen, so that order is what the test always gets: the worker must
 * see what the generation lists, not wait for the mark. */
static void fx_worker_gen(gw_worker_t *w, const gw_gen_t *g, const gw_gen_t *prev)
{
    gw_http_app.worker_gen(w, g, prev);
    if (prev != NULL)
        sem_post(&fx.followed);
}

static void fx_gen_applied(gw_runtime_t *rt, const gw_gen_t *g, const gw_gen_t *prev)
{
    if (prev != NULL) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 5;
        while (sem_timedwait(&fx.followed, &until) != 0 && errno == EINTR)
            ;
    }
    gw_http_app.gen_applied(rt, g, prev);
}

/* Runs gw04 until the script (NSTEPS steps) is done, then asserts it passed. */
static void run(bool in_flight, int nsteps)
{
    memset(&fx, 0, sizeof fx);
    fx.script.steps = steps;
    fx.script.nsteps = nsteps;
    fx.in_flight = in_flight;
    assert_int_equal(uv_sem_init(&fx.answer, 0), 0);
    assert_int_equal(sem_init(&fx.followed, 0, 0), 0);
    fx.gw_port = gw_test_free_port();
    fx.other_port = gw_test_free_port(); /* nothing listens there: never connected to */
    fx.backend_fd = gw_test_listen(0, &fx.backend_port); /* bound now: nobody takes the port */
    assert_true(fx.backend_fd >= 0);
    assert_int_equal(uv_thread_create(&fx.backend, backend_main, NULL), 0);
    gw_config_t *cfg = make_cfg(fx.backend_port);
    assert_non_null(cfg);
    void *layers[GW_LEVELS] = {0};
    assert_int_equal(gw_http_prepare(cfg, layers), 0);
    gw_app_t app = gw_http_app;
    app.worker_gen = fx_worker_gen;
    app.gen_applied = fx_gen_applied;
    int code = gw_test_script_run(&fx.script, cfg, &app, layers);
    gw_http_release(layers);
    gw_test_cfg_free(cfg);
    uv_sem_post(&fx.answer);            /* a backend still waiting (a failed run) answers */
    shutdown(fx.backend_fd, SHUT_RDWR); /* an accept still waiting (a failed run) returns */
    uv_thread_join(&fx.backend);
    if (in_flight && fx.script.step > 0)
        uv_thread_join(&fx.client);
    close(fx.backend_fd);
    uv_sem_destroy(&fx.answer);
    sem_destroy(&fx.followed);
    gw_test_script_check(&fx.script, code);
}

/* A reload that removes a backend closes the connection a worker pooled to it at once (not
 * at its idle timeout, a minute away), though the worker follows before 02 marks it
 * DRAINING, and the backend object is freed after (its last reference was the pooled
 * connection's). Fails if http_worker_gen leaves the pools of backends its generation does
 * not list alone, or waits for the DRAINING mark (step 2 times out), or if a connection
 * never drops its backend (step 3). */
static void removed_backend_pooled_connection_is_closed(void **state)
{
    (void)state;
    run(false, 4);
}

/* A request the removed backend holds during the reload completes (its exchange pinned the
 * old generation), and its connection is then closed rather than pooled. Fails if
 * hp_uconn_release pools a connection to a DRAINING backend (step 3 times out). */
static void removed_backend_in_flight_completes_then_closes(void **state)
{
    (void)state;
    run(true, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(removed_backend_pooled_connection_is_closed),
        cmocka_unit_test(removed_backend_in_flight_completes_then_closes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
