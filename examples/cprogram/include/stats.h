/* stats.h - descriptive statistics of a data set. */
#ifndef SORTCHECK_STATS_H
#define SORTCHECK_STATS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    size_t n;
    int32_t min;
    int32_t max;
    int64_t sum;
    int32_t median;   /* lower median */
    size_t distinct;
    size_t runs;      /* maximal non-decreasing runs of the unsorted input */
    uint64_t inversions;
} stats_t;

/* input: the data as generated; sorted: the same values sorted. */
void stats_compute(const int32_t *input, const int32_t *sorted, size_t n, stats_t *out);

/* Number of pairs i < j with a[i] > a[j], by merge counting (O(n log n)). */
uint64_t stats_inversions(const int32_t *a, size_t n);

#endif
