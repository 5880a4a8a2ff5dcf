/* search.h - binary searches over sorted arrays, with a self test. */
#ifndef SORTCHECK_SEARCH_H
#define SORTCHECK_SEARCH_H

#include <stddef.h>
#include <stdint.h>

#include "prng.h"

/* First index i with a[i] >= key (n when none). */
size_t search_lower_bound(const int32_t *a, size_t n, int32_t key);
/* First index i with a[i] > key (n when none). */
size_t search_upper_bound(const int32_t *a, size_t n, int32_t key);

/* Compare both searches with a linear scan for `probes` random keys; returns
 * the number of disagreements (0 when all is well). */
size_t search_selftest(const int32_t *sorted, size_t n, prng_t *rng, size_t probes);

#endif
