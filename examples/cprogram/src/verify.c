/* verify.c - sortedness, equality and digests of arrays. */
#include <stdlib.h>

#include "hashes.h"
#include "util.h"
#include "verify.h"

int verify_sorted(const int32_t *a, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (a[i - 1] > a[i])
            return 0;
    return 1;
}

int verify_equal(const int32_t *a, const int32_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

static int compare_i32(const void *x, const void *y)
{
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    return (a > b) - (a < b);
}

void reference_sort(int32_t *a, size_t n)
{
    if (n > 1)
        qsort(a, n, sizeof *a, compare_i32);
}

uint32_t digest_array(const int32_t *a, size_t n)
{
    uint8_t *bytes = xmalloc(4 * n);
    uint32_t crc;
    to_le_bytes(a, n, bytes);
    crc = hash_crc32(bytes, 4 * n);
    free(bytes);
    return crc;
}
