/* lab.h - what a lab stub calls: says which lab is missing, then stops, quietly. */
#ifndef GW_LAB_H
#define GW_LAB_H

/* The exit code of a process that a lab stub stopped (EX_SOFTWARE). */
#define GW_LAB_EXIT 70

/* `make handout` replaces the body of every function inside a LAB region with a call to
 * this. It says "LAB NN not implemented: TITLE (FUNC) at FILE:LINE" and stops, so a
 * handout's tests fail in milliseconds with a message that says where to work, instead of
 * hanging until a timeout. It stops without a signal, so no sanitizer has anything to
 * report about the stub itself:
 * - in a unit test, on the thread that runs the tests, only the current test fails (the
 *   test support's gw_test_lab_missing ends it the way a failed assert does);
 * - anywhere else (a proxy binary's worker, a thread a unit test started) the message goes
 *   to stderr and the process exits at once with GW_LAB_EXIT: a handout's proxy dies at
 *   its first connection. */
#define gw_lab_missing(lab, title, func) gw__lab_missing((lab), (title), (func), __FILE__, __LINE__)
_Noreturn void gw__lab_missing(const char *lab, const char *title, const char *func,
                               const char *file, int line);

/* Defined only in unit tests (common/testsupport/gwtest.c; lab.c holds a weak reference,
 * so proxy binaries link without it). MSG is the whole message line, FILE:LINE the stub.
 * Fails the current test and does not return when called on the thread that runs the
 * tests; returns at once on any other thread (the stub then exits the process). */
void gw_test_lab_missing(const char *msg, const char *file, int line);

#endif
