/* hash.h - the project's one non-cryptographic 64-bit hash: FNV-1a, and splitmix64's
 * finaliser to spread its bits. For placing keys (hash tables, the consistent-hash ring,
 * sticky splits, rate-limit stripes), never for secrets or integrity: use BearSSL for those.
 *
 * Why these two and nothing fancier: keys here are short (an address, a host name, a user
 * id), where FNV-1a is as fast as anything and needs no tables; and every output of these
 * functions decides where some traffic goes, so it must not change between releases (a
 * sticky user would change sides, a ring would reshuffle). common/tests/test_hash.c pins the
 * outputs with known answers. Everything is inline: the functions are a few instructions,
 * and several callers run them on every request. */
#ifndef GW_HASH_H
#define GW_HASH_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a 64's offset basis and prime (Fowler, Noll, Vo). */
#define GW_FNV1A64_BASIS UINT64_C(0xcbf29ce484222325)
#define GW_FNV1A64_PRIME UINT64_C(0x100000001b3)

/* FNV-1a 64 of the LEN bytes at DATA (NULL is fine when LEN is 0), started from the offset
 * basis XOR SEED: SEED 0 is the standard FNV-1a 64 ("" -> 0xcbf29ce484222325). Its low bits
 * are weak for inputs that differ only in their last byte; good enough for an open-addressing
 * table of short keys, otherwise use gw_hash_bytes. */
static inline uint64_t gw_hash_fnv1a(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = GW_FNV1A64_BASIS ^ seed;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * GW_FNV1A64_PRIME;
    return h;
}

/* splitmix64's finaliser (Stafford's "mix13"): a bijection of 64-bit values in which every
 * input bit flips about half of the output bits. gw_hash_mix64(0) is 0. Also the second half
 * of the random generator in rand.h. */
static inline uint64_t gw_hash_mix64(uint64_t x)
{
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

/* The general-purpose hash of LEN bytes at DATA under SEED: FNV-1a, then the finaliser, so
 * that inputs differing in one byte land far apart in every bit (plain FNV-1a moves the high
 * bits too little for a ring and the low bits too little for a power-of-two table). A caller
 * that must resist chosen keys (a rate limiter keyed by client address) passes a random SEED;
 * one whose placement must agree across processes (the ring) passes a constant. */
static inline uint64_t gw_hash_bytes(const void *data, size_t len, uint64_t seed)
{
    return gw_hash_mix64(gw_hash_fnv1a(data, len, seed));
}

#endif
