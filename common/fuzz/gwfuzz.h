/* gwfuzz.h - what every libFuzzer target shares: the entry point's prototype, a reader that
 * takes the target's choices (split points, modes, small numbers) from the input's bytes,
 * and the check that turns a broken invariant into a finding.
 *
 * Targets are built by `make fuzz` (V=fuzz, clang 14) and never by the other variants. Each
 * is fed from memory only: no file is opened or created, nothing is resolved, no socket is
 * made; it does bounded work per input and frees everything (LeakSanitizer runs at exit of
 * every input batch, so a leak is a finding too). */
#ifndef GW_FUZZ_H
#define GW_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant: print where and why, then abort, which libFuzzer reports as a crash
 * and saves as an artifact. (abort on input is banned in the library, STYLE.md 4; here it
 * is the point.) */
#define GW_FZ_CHECK(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Choices taken from the input: the front bytes decide, the rest is the payload. When the
 * input runs out, every read returns 0, so a short input still makes a valid run. */
typedef struct gw_fz_s {
    const uint8_t *p;
    size_t n;
} gw_fz_t;

static inline uint8_t gw_fz_u8(gw_fz_t *f)
{
    if (f->n == 0)
        return 0;
    f->n--;
    return *f->p++;
}

static inline uint16_t gw_fz_u16(gw_fz_t *f)
{
    uint16_t hi = gw_fz_u8(f);
    return (uint16_t)(hi << 8 | gw_fz_u8(f));
}

/* A deterministic generator for split sizes, seeded from the input (xorshift32: the same
 * input always splits the same way, so an artifact reproduces). */
static inline uint32_t gw_fz_next(uint32_t *s)
{
    uint32_t x = *s ? *s : 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* A malloc'd copy of P[0..N) (one byte more, NUL, so text targets may treat it as a string).
 * Targets hand the code under test exactly-sized copies: ASan then sees a read past the
 * end that a larger shared buffer would hide. */
static inline char *gw_fz_dup(const void *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d == NULL)
        abort();
    for (size_t i = 0; i < n; i++)
        d[i] = ((const char *)p)[i];
    d[n] = '\0';
    return d;
}

#endif
