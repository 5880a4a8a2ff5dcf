/* dataset.c - builds the data sets: several shapes that stress different
 * algorithms (presorted, reversed, many duplicates, organ pipe, ...). */
#include <stdlib.h>

#include "dataset.h"
#include "prng.h"
#include "util.h"

static int32_t *fill_random(prng_t *rng, size_t n, int32_t lo, int32_t hi)
{
    int32_t *a = xmalloc(n * sizeof *a);
    for (size_t i = 0; i < n; i++)
        a[i] = prng_range(rng, lo, hi);
    return a;
}

static int32_t *fill_ramp(size_t n, int32_t start, int32_t step)
{
    int32_t *a = xmalloc(n * sizeof *a);
    for (size_t i = 0; i < n; i++)
        a[i] = start + (int32_t)i * step;
    return a;
}

static int32_t *fill_organ_pipe(size_t n)
{
    int32_t *a = xmalloc(n * sizeof *a);
    for (size_t i = 0; i < n; i++)
        a[i] = (int32_t)(i < n / 2 ? i : n - 1 - i);
    return a;
}

static int32_t *fill_nearly_sorted(prng_t *rng, size_t n, size_t swaps)
{
    int32_t *a = fill_ramp(n, -500, 3);
    for (size_t k = 0; k < swaps && n > 1; k++) {
        size_t i = prng_below(rng, (uint32_t)n);
        size_t j = prng_below(rng, (uint32_t)n);
        swap_i32(&a[i], &a[j]);
    }
    return a;
}

static void add(dataset_t *out, size_t max, size_t *count, const char *name,
                int32_t *data, size_t n)
{
    if (*count >= max) {
        free(data);
        return;
    }
    out[*count].name = name;
    out[*count].data = data;
    out[*count].n = n;
    (*count)++;
}

size_t dataset_build_all(dataset_t *out, size_t max, uint64_t seed)
{
    prng_t rng;
    size_t count = 0;

    prng_seed(&rng, seed);
    add(out, max, &count, "random", fill_random(&rng, 1000, -100000, 100000), 1000);
    add(out, max, &count, "random_small", fill_random(&rng, 37, -50, 50), 37);
    add(out, max, &count, "sorted", fill_ramp(777, -300, 2), 777);
    add(out, max, &count, "reversed", fill_ramp(900, 4000, -5), 900);
    add(out, max, &count, "few_unique", fill_random(&rng, 1200, -3, 4), 1200);
    add(out, max, &count, "organ_pipe", fill_organ_pipe(1001), 1001);
    add(out, max, &count, "nearly_sorted", fill_nearly_sorted(&rng, 1024, 20), 1024);
    add(out, max, &count, "all_equal", fill_random(&rng, 500, 42, 42), 500);
    add(out, max, &count, "negative", fill_random(&rng, 640, -50000, 10), 640);
    add(out, max, &count, "pair", fill_random(&rng, 2, -7, 7), 2);
    add(out, max, &count, "single", fill_random(&rng, 1, -1, 1), 1);
    add(out, max, &count, "empty", xmalloc(sizeof(int32_t)), 0);
    return count;
}

void dataset_free_all(dataset_t *sets, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(sets[i].data);
        sets[i].data = NULL;
        sets[i].n = 0;
    }
}
