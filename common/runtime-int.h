/* runtime-int.h - what runtime.c (threads, the control loop, generations, reloads) calls in
 * listener.c (listener objects, their sockets and the workers' handles on them). Not an
 * interface for milestones: runtime.h is. */
#ifndef GW_RUNTIME_INT_H
#define GW_RUNTIME_INT_H

#include <stdio.h>

#include "runtime.h"

/* Control thread: a listener object for LC, on the
 * runtime's list, with no reference and no socket yet (NULL: out of memory); its free, which
 * closes any socket no worker adopted; binding one socket per worker (PROBE first checks
 * that nobody holds the address; errors logged and written to ERRS as FILE:LINE:COL). */
gw_listener_t *gw_rt_listener_new(gw_runtime_t *rt, const gw_listener_cfg_t *lc);
void gw_rt_listener_free(gw_runtime_t *rt, gw_listener_t *l);
int gw_rt_listener_bind(gw_runtime_t *rt, gw_listener_t *l, const gw_config_t *cfg,
                        const gw_listener_cfg_t *lc, bool probe, FILE *errs);
/* Frees removed listener objects nobody refers to; returns how many removed ones remain. */
size_t gw_rt_reap_listeners(gw_runtime_t *rt);
/* Raises the open-files limit towards what G's listeners need, or warns. */
void gw_rt_check_nofile(const gw_runtime_t *rt, const gw_gen_t *g);

/* A reload's listener part: G's listeners from CUR's objects as PLAN says, new addresses
 * bound (on failure nothing is left bound); after publish, names, limits and removals. */
int gw_rt_plan_and_bind(gw_runtime_t *rt, gw_gen_t *g, const gw_gen_t *cur,
                        gw_plan_listeners_fn plan, FILE *errs);
int gw_rt_apply_listeners(gw_runtime_t *rt, gw_gen_t *g, const gw_gen_t *prev,
                          gw_snap_t *prev_snap);

/* Worker thread: its handles follow G (gone ones retired with a drain deadline, new ones
 * adopted); the first adoption error, 0 if none. Closing every handle (drain, stop), and
 * dropping the pending drain deadlines (stop). */
int gw_rt_sync_listeners(gw_worker_t *w, const gw_gen_t *g);
void gw_rt_close_listeners(gw_worker_t *w);
void gw_rt_lgone_clear(gw_worker_t *w);

#endif
