/* reload_plan.h - what a reload keeps, adds and removes: the listener diff and the backend
 * carry rule, as pure functions over plain arrays of keys.
 *
 * A reload must not refuse a single connection on a listener it did not change, and must
 * not forget what it learnt about a backend it kept (health, ejection, breaker, pooled
 * connections). Both come down to one question, asked of every object of the new
 * configuration: "is this the same object as one of the old configuration?" The answer is
 * an identity rule:
 *   - a listener IS its address: equal address, same listener, whatever its name,
 *     protocol or tls (those are per-generation settings; the socket is the identity);
 *   - a backend IS (upstream name, resolved address): the same address in another upstream
 *     is another backend (its health is judged against that upstream's check), and a host
 *     name that now resolves elsewhere makes a new backend.
 * The runtime (or 02's gw_lb_set_carry hook) turns its objects into these keys, calls the
 * plan and acts on it: keep the socket or the state of matched ones, bind or build the new
 * ones, drain the gone ones. Nothing here allocates or does I/O: the caller passes the
 * arrays to fill, so the rules are tested one case at a time.
 *
 * Cost: one scan of the old keys per new key, O(old x new). A configuration has tens of
 * listeners and at most some thousands of backends, compared once per reload on the control
 * thread: a hash table would be more code to read than time saved. */
#ifndef GW_RELOAD_PLAN_H
#define GW_RELOAD_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "config.h"

/* from_old[i] of a new object that matches no old one. */
#define GW_PLAN_NEW SIZE_MAX

/* The result of a plan, in arrays the caller sized: FROM_OLD[NCUR], GONE[NOLD]. */
typedef struct gw_plan_s {
    size_t *from_old; /* [i]: the old object new object i is, or GW_PLAN_NEW */
    bool *gone;       /* [j]: old object j has no new counterpart (drain it) */
    size_t kept, added, removed;
} gw_plan_t;

/* A backend's identity: its upstream's name and its resolved address. */
typedef struct gw_backend_key_s {
    const char *upstream;
    gw_addr_t addr;
} gw_backend_key_t;

/* Diffs the listeners OLD[NOLD] (the running generation's config) against CUR[NCUR] (the
 * one being built) by address only, into P (its arrays sized NCUR and NOLD). Each old listener
 * matches at most one new one (addresses are unique in a valid config; should two be equal, the
 * second is new and its bind fails, as it would at start). */
void gw_plan_listeners(const gw_listener_cfg_t *old, size_t nold, const gw_listener_cfg_t *cur,
                       size_t ncur, gw_plan_t *p);

/* The carry rule for backends: new backend i carries old backend P->from_old[i]'s state
 * when their upstream names and addresses are equal; the others start fresh, and the old
 * ones left over (P->gone) drain. Same contract as gw_plan_listeners. */
void gw_plan_backends(const gw_backend_key_t *old, size_t nold, const gw_backend_key_t *cur,
                      size_t ncur, gw_plan_t *p);

#endif
