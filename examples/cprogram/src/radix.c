/* radix.c - LSD radix sort, four passes of 8 bits; the sign bit is flipped
 * so that negative numbers order before positive ones. */
#include <stdlib.h>
#include <string.h>

#include "sorts.h"
#include "util.h"

void sort_radix(int32_t *a, size_t n)
{
    uint32_t *keys, *tmp;

    if (n < 2)
        return;
    keys = xmalloc(n * sizeof *keys);
    tmp = xmalloc(n * sizeof *tmp);
    for (size_t i = 0; i < n; i++)
        keys[i] = (uint32_t)a[i] ^ 0x80000000u;

    for (unsigned shift = 0; shift < 32; shift += 8) {
        size_t count[256];
        size_t pos = 0;
        uint32_t *swap;

        memset(count, 0, sizeof count);
        for (size_t i = 0; i < n; i++)
            count[(keys[i] >> shift) & 0xffu]++;
        for (size_t b = 0; b < 256; b++) {
            size_t c = count[b];
            count[b] = pos;
            pos += c;
        }
        for (size_t i = 0; i < n; i++)
            tmp[count[(keys[i] >> shift) & 0xffu]++] = keys[i];
        swap = keys;
        keys = tmp;
        tmp = swap;
    }

    for (size_t i = 0; i < n; i++)
        a[i] = (int32_t)(keys[i] ^ 0x80000000u);
    free(keys);
    free(tmp);
}
