/* dataset.h - the input arrays sortcheck sorts, all derived from one seed. */
#ifndef SORTCHECK_DATASET_H
#define SORTCHECK_DATASET_H

#include <stddef.h>
#include <stdint.h>

#define DATASET_MAX 12

typedef struct {
    const char *name;
    int32_t *data;
    size_t n;
} dataset_t;

/* Fill out[0..max) and return how many data sets were built. */
size_t dataset_build_all(dataset_t *out, size_t max, uint64_t seed);
void dataset_free_all(dataset_t *sets, size_t count);

#endif
