/* selection.c - selection sort. */
#include "sorts.h"
#include "util.h"

void sort_selection(int32_t *a, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        size_t best = i;
        for (size_t j = i + 1; j < n; j++)
            if (a[j] < a[best])
                best = j;
        if (best != i)
            swap_i32(&a[i], &a[best]);
    }
}
