/* fletcher32.c - Fletcher-32 over little-endian 16-bit words; an odd final
 * byte is padded with zero. */
#include "hashes.h"

uint32_t hash_fletcher32(const uint8_t *data, size_t len)
{
    uint32_t sum1 = 0, sum2 = 0;
    for (size_t i = 0; i < len; i += 2) {
        uint32_t word = data[i];
        if (i + 1 < len)
            word |= (uint32_t)data[i + 1] << 8;
        sum1 = (sum1 + word) % 65535u;
        sum2 = (sum2 + sum1) % 65535u;
    }
    return (sum2 << 16) | sum1;
}
