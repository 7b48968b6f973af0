/* reloadtest.h - helpers for the unit tests that run a real runtime and reload it
 * (common/tests/test_runtime.c, milestones/03-resilience/tests/test_res.c). Apart from
 * gwtest.h, which links alone (scripts/tests/test_stubs.py builds it with lab.c only). */
#ifndef GW_RELOADTEST_H
#define GW_RELOADTEST_H

#include <stddef.h>

/* A loopback TCP port free at the call (bound to port 0, read back, closed): another process
 * may take it before the test binds it, which on a test machine is rare enough. */
unsigned gw_test_free_port(void);

struct gw_listener_cfg_s;
/* The listener plan of a reload (runtime.h's gw_plan_listeners_fn) that the runtime's tests
 * use: keep the listener whose address is equal. Written here on purpose, apart from
 * milestone 05's LAB (reload_plan.c), so the runtime's tests do not depend on a milestone. */
int gw_test_plan_by_address(const struct gw_listener_cfg_s *old, size_t nold,
                            const struct gw_listener_cfg_s *neu, size_t nnew, size_t *keep);

#endif
