/* comb.c - comb sort with shrink factor 1.3. */
#include "sorts.h"
#include "util.h"

void sort_comb(int32_t *a, size_t n)
{
    size_t gap = n;
    int swapped = 1;
    while (gap > 1 || swapped) {
        gap = gap * 10 / 13;
        if (gap == 9 || gap == 10)
            gap = 11;               /* "comb sort 11" */
        if (gap < 1)
            gap = 1;
        swapped = 0;
        for (size_t i = 0; i + gap < n; i++) {
            if (a[i] > a[i + gap]) {
                swap_i32(&a[i], &a[i + gap]);
                swapped = 1;
            }
        }
    }
}
