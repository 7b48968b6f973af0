/* reloadtest.h - helpers for the unit tests that run a real runtime and reload it
 * (common/tests/test_runtime.c, milestones/03-resilience/tests/test_res.c,
 * milestones/04-http/tests/test_hpool_reload.c). Apart from gwtest.h, which links alone
 * (scripts/tests/test_stubs.py builds it with lab.c only).
 *
 * The script harness. Such a test runs the whole gateway (gw_runtime_run: worker threads,
 * their loops, real sockets) on the test thread, which becomes the control thread. The
 * test's checks then run as a SCRIPT: a function the harness calls every few milliseconds
 * from a timer on the control loop, so that it sees the runtime as a reload trigger would.
 * One call is one look at the world, not a wait:
 *
 *     static void steps(gw_test_script_t *s)
 *     {
 *         switch (s->step) {
 *         case 0:                        // wait: return until the condition holds
 *             if (s->rt->nready < s->rt->nworkers)
 *                 return;
 *             GW_TEST_CHECK(s, gw_test_reload(s, cfg, NULL, NULL, 0) == 0);
 *             gw_test_next(s);           // the next call runs case 1
 *             return;
 *         case 1: ...
 *         }
 *     }
 *
 * and the test itself, on the test thread:
 *
 *     static gw_test_script_t s = {.steps = steps, .nsteps = 2};
 *     int code = gw_test_script_run(&s, cfg, &app, layers); // until step 2, or a failure
 *     ...                                                   // free what the test made
 *     gw_test_script_check(&s, code);                       // cmocka asserts, now safe
 *
 * Never block or sleep in a step: the control loop would stop with it. Never assert in one
 * either: cmocka's assert leaves by longjmp, out of the loop, with the worker threads still
 * running. GW_TEST_CHECK records the first failure instead and stops the runtime; the test
 * asserts after gw_test_script_run returned (gw_test_script_check). A step that waits longer
 * than the step timeout fails the same way, so a script that never gets there ends.
 *
 * One script runs at a time (the runtime's hooks take no context, so the harness keeps the
 * script in a static variable). */
#ifndef GW_RELOADTEST_H
#define GW_RELOADTEST_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime.h"

/* ---- sockets on loopback --------------------------------------------------------------------- */

/* A loopback TCP port free at the call (bound to port 0, read back, closed): another process
 * may take it before the test binds it, which on a test machine is rare enough. Asserts:
 * only outside a script. */
unsigned gw_test_free_port(void);

/* A socket listening on 127.0.0.1:PORT (0: a port the kernel picks, written to *BOUND when
 * BOUND is not NULL), or -errno. The caller closes it. Never asserts, nor does
 * gw_test_connect: a step may call them. */
int gw_test_listen(unsigned port, unsigned *bound);

/* A socket connected to 127.0.0.1:PORT (blocking), or -errno (-ECONNREFUSED when nothing
 * listens there). The caller closes it. */
int gw_test_connect(unsigned port);

/* ---- configurations ------------------------------------------------------------------------ */

/* The listener plan of a reload (runtime.h's gw_plan_listeners_fn) that the runtime's tests
 * use: keep the listener whose address is equal. Written here on purpose, apart from
 * milestone 05's LAB (reload_plan.c), so the runtime's tests do not depend on a milestone. */
int gw_test_plan_by_address(const gw_listener_cfg_t *old, size_t nold, const gw_listener_cfg_t *neu,
                            size_t nnew, size_t *keep);

/* A heap configuration loaded from TEXT (NAME is the file name in messages) with EXT (NULL
 * for level 1), its errors on stderr; NULL when it does not load. Free it with
 * gw_test_cfg_free, which remembers EXT: it is the FREE_CFG gw_runtime_reload wants. */
gw_config_t *gw_test_cfg_new(const char *name, const char *text, const gw_config_ext_t *ext);
void gw_test_cfg_free(gw_config_t *cfg);

/* ---- the script ---------------------------------------------------------------------------- */

#define GW_TEST_TICK_MS 5            /* how often the script is called */
#define GW_TEST_STEP_TIMEOUT_MS 5000 /* the default of gw_test_script_t.step_timeout_ms */
#define GW_TEST_MAX_WORKERS 8        /* what gw_test_workers_follow can track */

typedef struct gw_test_script_s gw_test_script_t;

/* One call of the script: look at S->step and return; call gw_test_next when the step is
 * done. Runs on the control thread. */
typedef void (*gw_test_step_cb)(gw_test_script_t *s);

struct gw_test_script_s {
    /* Set by the test before gw_test_script_run (zero the rest). */
    gw_test_step_cb steps;
    int nsteps;               /* when STEP reaches it, the runtime is shut down: done */
    uint64_t step_timeout_ms; /* 0: GW_TEST_STEP_TIMEOUT_MS */
    /* Read by the test. */
    gw_runtime_t *rt;      /* from control_start on */
    int step;              /* the step running now; NSTEPS once every step passed */
    uint64_t step_started; /* uv_now of the control loop when STEP began */
    char failure[256];     /* the first failure, "" if none */
    /* The harness's. */
    gw_app_t app; /* the test's app, whose hooks the harness calls */
    uv_timer_t timer;
    atomic_uint_least64_t seen[GW_TEST_MAX_WORKERS]; /* the generation each worker follows */
};

/* Runs the gateway with APP on CFG and LAYERS (as gw_runtime_run) until S's script is done
 * or failed; returns the runtime's exit code. APP's hooks all run, with these added: after
 * APP's control_start the script's timer starts, before APP's control_stop it closes, and
 * after APP's worker_gen the worker's generation is recorded (gw_test_workers_follow). CFG
 * stays the caller's. Must not be called from a script. */
int gw_test_script_run(gw_test_script_t *s, const gw_config_t *cfg, const gw_app_t *app,
                       void *const *layers);

/* The asserts after gw_test_script_run returned CODE: no failure was recorded (fails with
 * it), CODE is 0, every step passed. */
void gw_test_script_check(const gw_test_script_t *s, int code);

/* The current step passed: the next call of the script runs the next one. */
void gw_test_next(gw_test_script_t *s);

/* Records a failure (only the first one is kept: the ones after are its consequences), stops
 * the script and shuts the runtime down. FILE and LINE (NULL: none) and WHAT name the failed
 * check. */
void gw_test_fail(gw_test_script_t *s, const char *file, int line, const char *what);

/* In a step: when COND is false, fail the script and leave the step. The message quotes COND
 * as written; a shorter macro of one's own that forwards to this one would quote it expanded
 * (atomic_load becomes a line of compiler builtins), which is why the tests spell it out. */
#define GW_TEST_CHECK(s, cond)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            gw_test_fail((s), __FILE__, __LINE__, #cond);                                          \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* Whether every worker follows the generation GEN_ID (its last worker_gen call was for it). */
bool gw_test_workers_follow(gw_test_script_t *s, uint64_t gen_id);

/* In a step: gw_runtime_reload to CFG (from gw_test_cfg_new; taken, as there) with listeners
 * planned by address. The errors go to ERRS (CAP bytes, NUL-terminated), or to stderr when
 * ERRS is NULL; REP may be NULL. A NULL CFG (it did not load) fails the script. After a
 * failure it does nothing and returns GW_EINVAL: the runtime is shutting down. */
int gw_test_reload(gw_test_script_t *s, gw_config_t *cfg, gw_reload_report_t *rep, char *errs,
                   size_t cap);

#endif
