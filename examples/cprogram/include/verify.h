/* verify.h - checking sort results against a reference. */
#ifndef SORTCHECK_VERIFY_H
#define SORTCHECK_VERIFY_H

#include <stddef.h>
#include <stdint.h>

int verify_sorted(const int32_t *a, size_t n);
int verify_equal(const int32_t *a, const int32_t *b, size_t n);

/* The C library's qsort, used as the reference every algorithm must match. */
void reference_sort(int32_t *a, size_t n);

/* CRC-32 of the little-endian bytes of a[0..n). */
uint32_t digest_array(const int32_t *a, size_t n);

#endif
