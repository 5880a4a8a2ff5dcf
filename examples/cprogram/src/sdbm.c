/* sdbm.c - the hash of the sdbm database library. */
#include "hashes.h"

uint32_t hash_sdbm(const uint8_t *data, size_t len)
{
    uint32_t h = 0;
    for (size_t i = 0; i < len; i++)
        h = data[i] + (h << 6) + (h << 16) - h;
    return h;
}
