/* sorts.h - every sorting algorithm of sortcheck. All sort an int32_t array
 * ascending, in place. */
#ifndef SORTCHECK_SORTS_H
#define SORTCHECK_SORTS_H

#include <stddef.h>
#include <stdint.h>

void sort_insertion(int32_t *a, size_t n);
void sort_binary_insertion(int32_t *a, size_t n);
void sort_selection(int32_t *a, size_t n);
void sort_bubble(int32_t *a, size_t n);
void sort_cocktail(int32_t *a, size_t n);
void sort_gnome(int32_t *a, size_t n);
void sort_oddeven(int32_t *a, size_t n);
void sort_shell(int32_t *a, size_t n);
void sort_comb(int32_t *a, size_t n);
void sort_cycle(int32_t *a, size_t n);
void sort_pancake(int32_t *a, size_t n);
void sort_merge(int32_t *a, size_t n);
void sort_quick(int32_t *a, size_t n);
void sort_heap(int32_t *a, size_t n);
void sort_counting(int32_t *a, size_t n);
void sort_radix(int32_t *a, size_t n);
void sort_bitonic(int32_t *a, size_t n);

#endif
