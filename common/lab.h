/* lab.h - what a lab stub calls: says which lab is missing, then stops the process. */
#ifndef GW_LAB_H
#define GW_LAB_H

/* `make handout` replaces the body of every function inside a LAB region with a call to
 * this. It prints "LAB NN not implemented: TITLE (FUNC)" to stderr and traps, so a
 * handout's tests fail in milliseconds with a message that says where to work, instead of
 * hanging until a timeout. Under cmocka the trap (SIGILL) fails only the current test. */
_Noreturn void gw_lab_missing(const char *lab, const char *title, const char *func);

#endif
