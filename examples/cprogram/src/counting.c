/* counting.c - counting sort over the value range [min, max]. Falls back to
 * nothing clever: callers keep the range moderate (a few million at most). */
#include <stdlib.h>

#include "sorts.h"
#include "util.h"

void sort_counting(int32_t *a, size_t n)
{
    int32_t lo, hi;
    size_t range, *counts, k = 0;

    if (n < 2)
        return;
    lo = hi = a[0];
    for (size_t i = 1; i < n; i++) {
        if (a[i] < lo)
            lo = a[i];
        if (a[i] > hi)
            hi = a[i];
    }
    range = (size_t)((int64_t)hi - (int64_t)lo) + 1;
    counts = xcalloc(range, sizeof *counts);
    for (size_t i = 0; i < n; i++)
        counts[(size_t)((int64_t)a[i] - lo)]++;
    for (size_t v = 0; v < range; v++)
        for (size_t c = counts[v]; c > 0; c--)
            a[k++] = (int32_t)((int64_t)lo + (int64_t)v);
    free(counts);
}
