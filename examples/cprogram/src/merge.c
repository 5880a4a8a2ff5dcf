/* merge.c - top-down merge sort with one scratch buffer. */
#include <stdlib.h>
#include <string.h>

#include "sorts.h"
#include "util.h"

static void merge_rec(int32_t *a, int32_t *tmp, size_t lo, size_t hi)
{
    size_t mid, i, j, k;
    if (hi - lo < 2)
        return;
    mid = lo + (hi - lo) / 2;
    merge_rec(a, tmp, lo, mid);
    merge_rec(a, tmp, mid, hi);
    if (a[mid - 1] <= a[mid])
        return;                         /* already in order */
    i = lo;
    j = mid;
    k = lo;
    while (i < mid && j < hi)
        tmp[k++] = (a[j] < a[i]) ? a[j++] : a[i++];
    while (i < mid)
        tmp[k++] = a[i++];
    while (j < hi)
        tmp[k++] = a[j++];
    memcpy(a + lo, tmp + lo, (hi - lo) * sizeof *a);
}

void sort_merge(int32_t *a, size_t n)
{
    int32_t *tmp;
    if (n < 2)
        return;
    tmp = xmalloc(n * sizeof *tmp);
    merge_rec(a, tmp, 0, n);
    free(tmp);
}
