/* prng.c - xorshift64* seeded with splitmix64. */
#include "prng.h"

static uint64_t splitmix64(uint64_t x)
{
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void prng_seed(prng_t *rng, uint64_t seed)
{
    uint64_t s = splitmix64(seed);
    rng->state = s ? s : 0x9E3779B97F4A7C15ull; /* xorshift must not be 0 */
}

uint64_t prng_next(prng_t *rng)
{
    uint64_t x = rng->state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng->state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

uint32_t prng_below(prng_t *rng, uint32_t bound)
{
    /* multiply-shift: maps the top 32 bits onto [0, bound) */
    return (uint32_t)(((prng_next(rng) >> 32) * (uint64_t)bound) >> 32);
}

int32_t prng_range(prng_t *rng, int32_t lo, int32_t hi)
{
    uint32_t span = (uint32_t)((int64_t)hi - (int64_t)lo + 1);
    return (int32_t)((int64_t)lo + (int64_t)prng_below(rng, span));
}
