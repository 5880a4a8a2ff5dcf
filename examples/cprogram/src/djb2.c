/* djb2.c - Dan Bernstein's string hash: h = h * 33 + c. */
#include "hashes.h"

uint32_t hash_djb2(const uint8_t *data, size_t len)
{
    uint32_t h = 5381u;
    for (size_t i = 0; i < len; i++)
        h = (h << 5) + h + data[i];
    return h;
}
