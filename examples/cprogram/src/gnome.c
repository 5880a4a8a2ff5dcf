/* gnome.c - gnome sort. */
#include "sorts.h"
#include "util.h"

void sort_gnome(int32_t *a, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (i == 0 || a[i - 1] <= a[i]) {
            i++;
        } else {
            swap_i32(&a[i - 1], &a[i]);
            i--;
        }
    }
}
