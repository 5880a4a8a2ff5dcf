/* bubble.c - bubble sort that stops early and shrinks to the last swap. */
#include "sorts.h"
#include "util.h"

void sort_bubble(int32_t *a, size_t n)
{
    size_t end = n;
    while (end > 1) {
        size_t last_swap = 0;
        for (size_t i = 1; i < end; i++) {
            if (a[i - 1] > a[i]) {
                swap_i32(&a[i - 1], &a[i]);
                last_swap = i;
            }
        }
        end = last_swap;
    }
}
