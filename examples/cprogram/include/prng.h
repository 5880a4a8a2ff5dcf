/* prng.h - a tiny deterministic pseudo-random generator (xorshift64*,
 * seeded through splitmix64). Same seed, same sequence, on every machine. */
#ifndef SORTCHECK_PRNG_H
#define SORTCHECK_PRNG_H

#include <stdint.h>

typedef struct {
    uint64_t state;
} prng_t;

void prng_seed(prng_t *rng, uint64_t seed);
uint64_t prng_next(prng_t *rng);

/* Uniform-ish value in [0, bound); bound must be > 0. */
uint32_t prng_below(prng_t *rng, uint32_t bound);

/* Value in the inclusive range [lo, hi]; requires lo <= hi. */
int32_t prng_range(prng_t *rng, int32_t lo, int32_t hi);

#endif
