/* bitonic.c - Batcher's bitonic sorting network. The network needs a power
 * of two, so the input is padded with INT32_MAX. */
#include <stdlib.h>
#include <string.h>

#include "sorts.h"
#include "util.h"

void sort_bitonic(int32_t *a, size_t n)
{
    size_t size = 1;
    int32_t *buf;

    if (n < 2)
        return;
    while (size < n)
        size <<= 1;
    buf = xmalloc(size * sizeof *buf);
    memcpy(buf, a, n * sizeof *buf);
    for (size_t i = n; i < size; i++)
        buf[i] = INT32_MAX;

    for (size_t k = 2; k <= size; k <<= 1) {
        for (size_t j = k >> 1; j > 0; j >>= 1) {
            for (size_t i = 0; i < size; i++) {
                size_t partner = i ^ j;
                if (partner > i) {
                    int ascending = (i & k) == 0;
                    if ((buf[i] > buf[partner]) == ascending && buf[i] != buf[partner])
                        swap_i32(&buf[i], &buf[partner]);
                }
            }
        }
    }
    memcpy(a, buf, n * sizeof *buf);
    free(buf);
}
