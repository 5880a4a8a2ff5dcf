/* murmur3.c - MurmurHash3 x86_32 with seed 0; blocks are read as
 * little-endian words so the result is the same on every machine. */
#include "hashes.h"

static uint32_t rotl32(uint32_t x, unsigned r)
{
    return (x << r) | (x >> (32u - r));
}

static uint32_t scramble(uint32_t k)
{
    k *= 0xCC9E2D51u;
    k = rotl32(k, 15);
    k *= 0x1B873593u;
    return k;
}

uint32_t hash_murmur3(const uint8_t *data, size_t len)
{
    uint32_t h = 0, k = 0;
    size_t blocks = len / 4;
    const uint8_t *tail = data + 4 * blocks;

    for (size_t i = 0; i < blocks; i++) {
        const uint8_t *p = data + 4 * i;
        k = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
            ((uint32_t)p[3] << 24);
        h ^= scramble(k);
        h = rotl32(h, 13);
        h = h * 5u + 0xE6546B64u;
    }
    k = 0;
    if ((len & 3u) >= 3)
        k ^= (uint32_t)tail[2] << 16;
    if ((len & 3u) >= 2)
        k ^= (uint32_t)tail[1] << 8;
    if ((len & 3u) >= 1) {
        k ^= tail[0];
        h ^= scramble(k);
    }
    h ^= (uint32_t)len;
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return h;
}
