/* reload_plan.c - see reload_plan.h. */
#include "reload_plan.h"

#include <string.h>

/* LAB 05: listener diff */
/* For each new address, look for an equal old one that is not taken yet. Everything is
 * first marked gone and then un-marked on a match, so an old listener that nothing matched
 * ends up gone without a second pass over the new ones. Name, protocol and tls are not
 * compared: a listener renamed, or turned from tcp to http, keeps its socket (and the
 * connections waiting in its accept queue); only the address is the socket. */
void gw_plan_listeners(const gw_listener_cfg_t *old, size_t nold, const gw_listener_cfg_t *cur,
                       size_t ncur, gw_plan_t *p)
{
    p->kept = p->added = 0;
    for (size_t j = 0; j < nold; j++)
        p->gone[j] = true;
    for (size_t i = 0; i < ncur; i++) {
        p->from_old[i] = GW_PLAN_NEW;
        for (size_t j = 0; j < nold; j++) {
            if (p->gone[j] && gw_addr_equal(&old[j].addr, &cur[i].addr)) {
                p->from_old[i] = j;
                p->gone[j] = false;
                break;
            }
        }
        if (p->from_old[i] == GW_PLAN_NEW)
            p->added++;
        else
            p->kept++;
    }
    p->removed = nold - p->kept;
}
/* END LAB */

/* LAB 05: backend carry rule */
/* The same walk with a two-part key. The upstream name is part of the identity: one
 * address in two upstreams is two backends, each with its own health (the two upstreams
 * may check different paths) and its own breaker. Comparing the resolved address, not the
 * text, makes "localhost:9001" and "127.0.0.1:9001" one backend. */
void gw_plan_backends(const gw_backend_key_t *old, size_t nold, const gw_backend_key_t *cur,
                      size_t ncur, gw_plan_t *p)
{
    p->kept = p->added = 0;
    for (size_t j = 0; j < nold; j++)
        p->gone[j] = true;
    for (size_t i = 0; i < ncur; i++) {
        p->from_old[i] = GW_PLAN_NEW;
        for (size_t j = 0; j < nold; j++) {
            if (p->gone[j] && strcmp(old[j].upstream, cur[i].upstream) == 0 &&
                gw_addr_equal(&old[j].addr, &cur[i].addr)) {
                p->from_old[i] = j;
                p->gone[j] = false;
                break;
            }
        }
        if (p->from_old[i] == GW_PLAN_NEW)
            p->added++;
        else
            p->kept++;
    }
    p->removed = nold - p->kept;
}
/* END LAB */
