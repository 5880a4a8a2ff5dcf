/* stats.c - descriptive statistics and inversion counting. */
#include <stdlib.h>
#include <string.h>

#include "stats.h"
#include "util.h"

void stats_compute(const int32_t *input, const int32_t *sorted, size_t n, stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->n = n;
    if (n == 0)
        return;
    out->min = sorted[0];
    out->max = sorted[n - 1];
    out->median = sorted[(n - 1) / 2];
    out->distinct = 1;
    out->runs = 1;
    for (size_t i = 0; i < n; i++) {
        out->sum += sorted[i];
        if (i > 0 && sorted[i] != sorted[i - 1])
            out->distinct++;
        if (i > 0 && input[i] < input[i - 1])
            out->runs++;
    }
    out->inversions = stats_inversions(input, n);
}

static uint64_t count_merge(int32_t *a, int32_t *tmp, size_t lo, size_t hi)
{
    uint64_t inv = 0;
    size_t mid, i, j, k;

    if (hi - lo < 2)
        return 0;
    mid = lo + (hi - lo) / 2;
    inv += count_merge(a, tmp, lo, mid);
    inv += count_merge(a, tmp, mid, hi);
    i = lo;
    j = mid;
    k = lo;
    while (i < mid && j < hi) {
        if (a[j] < a[i]) {
            inv += mid - i;
            tmp[k++] = a[j++];
        } else {
            tmp[k++] = a[i++];
        }
    }
    while (i < mid)
        tmp[k++] = a[i++];
    while (j < hi)
        tmp[k++] = a[j++];
    memcpy(a + lo, tmp + lo, (hi - lo) * sizeof *a);
    return inv;
}

uint64_t stats_inversions(const int32_t *a, size_t n)
{
    int32_t *work = copy_array(a, n);
    int32_t *tmp = xmalloc(n * sizeof *tmp);
    uint64_t inv = count_merge(work, tmp, 0, n);
    free(work);
    free(tmp);
    return inv;
}
