/* oaat.c - Bob Jenkins' one-at-a-time hash. */
#include "hashes.h"

uint32_t hash_oaat(const uint8_t *data, size_t len)
{
    uint32_t h = 0;
    for (size_t i = 0; i < len; i++) {
        h += data[i];
        h += h << 10;
        h ^= h >> 6;
    }
    h += h << 3;
    h ^= h >> 11;
    h += h << 15;
    return h;
}
