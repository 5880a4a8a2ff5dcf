/* cocktail.c - cocktail shaker sort (bidirectional bubble sort). */
#include "sorts.h"
#include "util.h"

void sort_cocktail(int32_t *a, size_t n)
{
    size_t lo = 0, hi = n;
    while (hi > lo + 1) {
        size_t last = lo;
        for (size_t i = lo + 1; i < hi; i++) {
            if (a[i - 1] > a[i]) {
                swap_i32(&a[i - 1], &a[i]);
                last = i;
            }
        }
        hi = last;
        if (hi <= lo + 1)
            break;
        last = hi;
        for (size_t i = hi - 1; i > lo; i--) {
            if (a[i - 1] > a[i]) {
                swap_i32(&a[i - 1], &a[i]);
                last = i;
            }
        }
        lo = last;
    }
}
