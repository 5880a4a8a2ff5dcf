/* fnv1a.c - Fowler-Noll-Vo FNV-1a, 32 bits. */
#include "hashes.h"

uint32_t hash_fnv1a(const uint8_t *data, size_t len)
{
    uint32_t h = 0x811C9DC5u;
    for (size_t i = 0; i < len; i++) {
        h ^= data[i];
        h *= 0x01000193u;
    }
    return h;
}
