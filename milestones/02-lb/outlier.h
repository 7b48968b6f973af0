/* outlier.h - passive health: eject a backend for a while after consecutive connect or I/O
 * failures seen by real traffic (outlier detection as in Envoy). Called from any worker. */
#ifndef GW_OUTLIER_H
#define GW_OUTLIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"

/* One upstream's settings. Defaults are the config loader's business (5, 30s, 50). */
typedef struct gw_outlier_cfg_s {
    unsigned consecutive_failures; /* failures in a row that eject; 0 = off */
    uint64_t base_ejection_ms;     /* the first ejection's length; later ones are longer */
    unsigned max_ejection_percent; /* at most this share of the upstream out at once */
} gw_outlier_cfg_t;

/* Counts one connect or I/O failure of B at NOW_MS (monotonic ms). When it makes
 * CFG->consecutive_failures in a row, B is not ejected already, and ejecting it keeps the
 * backends of ALL[0..N) (B's upstream, B among them) that are ejected at NOW_MS within
 * CFG->max_ejection_percent of N (one backend may always be ejected, whatever the share),
 * B is ejected: ejected_until_ms becomes NOW_MS + base_ejection_ms * (previous ejections
 * + 1), at most 10 * base_ejection_ms; `ejections` grows by one, the failure count starts
 * again from 0, one line is logged, and true is returned. Otherwise returns false.
 * Failures reported while B is ejected are ignored (they come from connections opened
 * before the ejection: nothing new about B). A failure that finds the share full keeps
 * its count, so the next one tries again.
 * Safe from several threads at once, for the same backend too: exactly one caller ejects
 * per threshold crossing. Two threads ejecting two different backends at the very edge of
 * the share may both back off (neither ejects); they never both exceed it. */
bool gw_outlier_failure(const gw_outlier_cfg_t *cfg, gw_backend_t *b, gw_backend_t *const *all,
                        size_t n, uint64_t now_ms);

/* A connection to B worked: the run of consecutive failures is over. Safe from any thread;
 * costs one load on the common path (no failures counted). */
void gw_outlier_success(gw_backend_t *b);

/* How long the ejection after PREVIOUS earlier ones lasts under CFG. */
uint64_t gw_outlier_ejection_ms(const gw_outlier_cfg_t *cfg, unsigned previous);

#endif
