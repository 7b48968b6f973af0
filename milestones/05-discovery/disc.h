/* disc.h - milestone 05 inside the gateway: configuration reloads that drop nothing.
 *
 * gw05 is gw04 (every hook of gw_http_app) plus a reload: SIGHUP, POST /reload on the admin
 * API, or a change of the config file (reload: {watch_file: true}) all end in one place,
 * reload.c's controller, which runs disc.c's reload on the control thread: read and check
 * the file, then gw_runtime_reload (common/runtime.h) builds the next generation, with this
 * milestone's LABs deciding what is kept (reload_plan.c: listeners by address, backends by
 * upstream and address), publishes it and logs `config generation N applied`. A bad file
 * changes nothing: the errors are logged as FILE:LINE:COL, and POST /reload answers them
 * as JSON with status 400. */
#ifndef GW_DISC_H
#define GW_DISC_H

#include "runtime.h"

/* gw05's application: gw04's hooks, with on_reload, control_start, control_stop and
 * metrics extended (each calls gw04's first, or last for control_stop). */
const gw_app_t *gw_disc_app(void);

/* The cli hooks: 04's state, then 05's in layer 5 (the reload controller's, and the
 * backend carry rule installed in 02). */
int gw_disc_prepare(const gw_config_t *cfg, void **layers);
void gw_disc_release(void **layers);

#endif
