/* search.c - lower and upper bound binary searches. */
#include "search.h"

size_t search_lower_bound(const int32_t *a, size_t n, int32_t key)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

size_t search_upper_bound(const int32_t *a, size_t n, int32_t key)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] <= key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

size_t search_selftest(const int32_t *sorted, size_t n, prng_t *rng, size_t probes)
{
    size_t bad = 0;
    for (size_t p = 0; p < probes; p++) {
        int32_t key;
        size_t lower = 0, upper = 0;

        if (n > 0 && (p & 1u) == 0)
            key = sorted[prng_below(rng, (uint32_t)n)];      /* a present key */
        else
            key = prng_range(rng, -200000, 200000);          /* mostly absent */
        for (size_t i = 0; i < n; i++) {
            if (sorted[i] < key)
                lower++;
            if (sorted[i] <= key)
                upper++;
        }
        if (search_lower_bound(sorted, n, key) != lower)
            bad++;
        if (search_upper_bound(sorted, n, key) != upper)
            bad++;
    }
    return bad;
}
