/* quick.c - quicksort: median of three, Hoare partition, insertion sort for
 * short ranges, recursion on the smaller side only (O(log n) stack). */
#include "sorts.h"
#include "util.h"

#define QUICK_CUTOFF 12

static void small_sort(int32_t *a, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        int32_t v = a[i];
        size_t j = i;
        while (j > 0 && a[j - 1] > v) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = v;
    }
}

static int32_t median3(int32_t x, int32_t y, int32_t z)
{
    if (x < y)
        return (y < z) ? y : (x < z ? z : x);
    return (x < z) ? x : (y < z ? z : y);
}

void sort_quick(int32_t *a, size_t n)
{
    while (n > QUICK_CUTOFF) {
        int32_t pivot = median3(a[0], a[n / 2], a[n - 1]);
        size_t i = 0, j = n - 1;
        for (;;) {                      /* Hoare partition */
            while (a[i] < pivot)
                i++;
            while (a[j] > pivot)
                j--;
            if (i >= j)
                break;
            swap_i32(&a[i], &a[j]);
            i++;
            j--;
        }
        /* [0, j] <= pivot <= [j + 1, n) */
        if (j + 1 < n - (j + 1)) {
            sort_quick(a, j + 1);
            a += j + 1;
            n -= j + 1;
        } else {
            sort_quick(a + j + 1, n - (j + 1));
            n = j + 1;
        }
    }
    small_sort(a, n);
}
