/* adler32.c - Adler-32 as in zlib (RFC 1950). */
#include "hashes.h"

#define ADLER_MOD 65521u
#define ADLER_NMAX 5552   /* largest block that cannot overflow 32 bits */

uint32_t hash_adler32(const uint8_t *data, size_t len)
{
    uint32_t a = 1, b = 0;
    while (len > 0) {
        size_t block = len < ADLER_NMAX ? len : ADLER_NMAX;
        len -= block;
        while (block-- > 0) {
            a += *data++;
            b += a;
        }
        a %= ADLER_MOD;
        b %= ADLER_MOD;
    }
    return (b << 16) | a;
}
