/* util.h - small helpers shared by every module of sortcheck. */
#ifndef SORTCHECK_UTIL_H
#define SORTCHECK_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Allocation that never returns NULL: prints a message and exits instead. */
void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);

/* A fresh heap copy of a[0..n). */
int32_t *copy_array(const int32_t *a, size_t n);

void swap_i32(int32_t *x, int32_t *y);

/* Reverse a[0..n) in place. */
void reverse_i32(int32_t *a, size_t n);

/* Serialise a[0..n) as little-endian bytes (4 * n bytes) so that digests do
 * not depend on the byte order of the machine. */
void to_le_bytes(const int32_t *a, size_t n, uint8_t *out);

#endif
