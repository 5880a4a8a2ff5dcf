/* binary_insertion.c - insertion sort that finds the slot by binary search. */
#include <string.h>

#include "sorts.h"

void sort_binary_insertion(int32_t *a, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        int32_t v = a[i];
        size_t lo = 0, hi = i;
        while (lo < hi) {               /* first position with a[pos] > v */
            size_t mid = lo + (hi - lo) / 2;
            if (a[mid] <= v)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < i) {
            memmove(a + lo + 1, a + lo, (i - lo) * sizeof *a);
            a[lo] = v;
        }
    }
}
