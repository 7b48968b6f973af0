/* disccfg.h - milestone 05's configuration keys (reload triggers); a gw_config_ext_t that
 * chains to milestone 04's.
 *
 * The YAML (every key optional):
 *
 *   reload:
 *     watch_file: false     # true: a change of the config file reloads it (reload.h)
 *     quiet_period: 500ms   # the file is read once this long after its last change
 *                           # (10ms..10m): an editor's save is several events, and the
 *                           # file is only whole after the last one
 *
 * SIGHUP and POST /reload (admin) reload whatever these say; gw04 and earlier refuse the
 * block with "reload: needs gw05 or later" (gw_config_later_keys). */
#ifndef GW_DISCCFG_H
#define GW_DISCCFG_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

#define GW_DISC_QUIET_DEFAULT_MS 500u

/* The top-level `reload` block (gw_config_t.ext[5]); defaults when absent. */
typedef struct gw_disc_root_cfg_s {
    bool watch_file;
    uint64_t quiet_period_ms;
} gw_disc_root_cfg_t;

/* The milestone-05 part of the root of CFG (the defaults when the block is absent). */
const gw_disc_root_cfg_t *gw_disc_root_cfg(const gw_config_t *cfg);

/* gw05's extension: level 5, 04's hooks plus these keys. */
extern const gw_config_ext_t gw_disc_config_ext;

#endif
