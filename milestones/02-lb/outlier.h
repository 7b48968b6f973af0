/* outlier.h - passive health: eject a backend for a while after consecutive connect or I/O
 * failures seen by real traffic, or (04) consecutive 5xx or gateway-error responses
 * (outlier detection as in Envoy). Called from any worker; an active check's pass may end
 * an ejection from the control thread. */
#ifndef GW_OUTLIER_H
#define GW_OUTLIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"

/* One upstream's settings. Defaults are the config loader's business (5, 30s, 50). */
/* Three runs are counted per backend, each with its own threshold (0 = that run is off):
 *   failures        a connect or I/O failure (no response)        reset by a connect that works
 *   gateway errors  a 502, 503 or 504 response, or a failure      reset by any other response
 *   5xx             a 500..599 response, or a failure             reset by a response below 500
 * A failure counts in all three: it is what the gateway itself answers 502 or 504 for. The
 * response runs need a layer that reads responses (04 reports them: gw_outlier_response). */
typedef struct gw_outlier_cfg_s {
    unsigned consecutive_failures;       /* failures in a row that eject; 0 = off */
    unsigned consecutive_gateway_errors; /* 502/503/504 or failures in a row; 0 = off (default) */
    unsigned consecutive_5xx;            /* 5xx or failures in a row; 0 = off (default) */
    uint64_t base_ejection_ms;           /* the first ejection's length; later ones are longer */
    unsigned max_ejection_percent;       /* at most this share of the upstream out at once */
    bool uneject_on_active_pass; /* a passing active check ends an ejection (default true) */
    bool response_keys;          /* the two response runs are configurable (a binary that reads HTTP
                                  * responses decoded the config: gw04 on); -T prints them only then */
} gw_outlier_cfg_t;

/* Counts one connect or I/O failure of B at NOW_MS (monotonic ms), in each of the three runs
 * whose threshold is not 0. When a run reaches its threshold, B is not ejected already, and
 * ejecting it keeps the
 * backends of ALL[0..N) (B's upstream, B among them) that are ejected at NOW_MS within
 * CFG->max_ejection_percent of N (one backend may always be ejected, whatever the share),
 * B is ejected: ejected_until_ms becomes NOW_MS + base_ejection_ms * (previous ejections
 * + 1), at most 10 * base_ejection_ms; `ejections` grows by one, every run starts again
 * from 0, one line is logged, and true is returned. Otherwise returns false. The runs are
 * tried in the order failures, gateway errors, 5xx; after an ejection the later ones are not
 * counted (they were just reset).
 * Failures reported while B is ejected are ignored (they come from connections opened
 * before the ejection: nothing new about B). A failure that finds the share full keeps
 * its count, so the next one tries again.
 * Safe from several threads at once, for the same backend too: exactly one caller ejects
 * per threshold crossing. Two threads ejecting two different backends at the very edge of
 * the share may both back off (neither ejects); they never both exceed it. */
bool gw_outlier_failure(const gw_outlier_cfg_t *cfg, gw_backend_t *b, gw_backend_t *const *all,
                        size_t n, uint64_t now_ms);

/* A connection to B worked: the run of consecutive failures is over (not the response
 * runs: a 5xx comes on a connection that worked). Safe from any thread; costs one load on
 * the common path (no failures counted). */
void gw_outlier_success(gw_backend_t *b);

/* B answered with a response head of STATUS (a final status, 200..599) at NOW_MS. Below 500
 * it ends the gateway-error and 5xx runs (one load each when they are 0 already). A 502, 503
 * or 504 counts in both; another 5xx counts in the 5xx run and ends the gateway-error run (as
 * Envoy does). A count that reaches its threshold ejects B as gw_outlier_failure does, with
 * the same rules (ignored while ejected, share, length); returns true when it did. With both
 * response thresholds 0, does nothing and returns false.
 * NOW_MS is read only for a 5xx. Safe from any thread. */
bool gw_outlier_response(const gw_outlier_cfg_t *cfg, gw_backend_t *b, gw_backend_t *const *all,
                         size_t n, unsigned status, uint64_t now_ms);

/* An active check of B passed at NOW_MS: ends B's ejection if one is in force (every run
 * starts again from 0; `ejections` stays, so a next ejection still lasts longer) and returns
 * true; otherwise changes nothing and returns false. The caller decides whether a pass may
 * do this (cfg->uneject_on_active_pass). Safe against workers ejecting B at the same time. */
bool gw_outlier_uneject(gw_backend_t *b, uint64_t now_ms);

/* How long the ejection after PREVIOUS earlier ones lasts under CFG. */
uint64_t gw_outlier_ejection_ms(const gw_outlier_cfg_t *cfg, unsigned previous);

#endif
