/* util.c - allocation and array helpers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "sortcheck: out of memory (%lu bytes)\n", (unsigned long)size);
        exit(2);
    }
    return p;
}

void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "sortcheck: out of memory (%lu x %lu bytes)\n",
                (unsigned long)count, (unsigned long)size);
        exit(2);
    }
    return p;
}

int32_t *copy_array(const int32_t *a, size_t n)
{
    int32_t *b = xmalloc(n * sizeof *b);
    if (n > 0)
        memcpy(b, a, n * sizeof *b);
    return b;
}

void swap_i32(int32_t *x, int32_t *y)
{
    int32_t t = *x;
    *x = *y;
    *y = t;
}

void reverse_i32(int32_t *a, size_t n)
{
    size_t i = 0, j = n;
    while (i + 1 < j) {
        j--;
        swap_i32(&a[i], &a[j]);
        i++;
    }
}

void to_le_bytes(const int32_t *a, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)a[i];
        out[4 * i + 0] = (uint8_t)(v & 0xffu);
        out[4 * i + 1] = (uint8_t)((v >> 8) & 0xffu);
        out[4 * i + 2] = (uint8_t)((v >> 16) & 0xffu);
        out[4 * i + 3] = (uint8_t)((v >> 24) & 0xffu);
    }
}
