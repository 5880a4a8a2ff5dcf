/* pancake.c - pancake sort: only prefix reversals. */
#include "sorts.h"
#include "util.h"

void sort_pancake(int32_t *a, size_t n)
{
    for (size_t size = n; size > 1; size--) {
        size_t best = 0;
        for (size_t i = 1; i < size; i++)
            if (a[i] > a[best])
                best = i;
        if (best == size - 1)
            continue;
        if (best > 0)
            reverse_i32(a, best + 1);   /* bring the maximum to the front */
        reverse_i32(a, size);           /* and flip it to its place */
    }
}
