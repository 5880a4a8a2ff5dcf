/* shell.c - Shell sort with Ciura's gap sequence, extended by x2.25. */
#include "sorts.h"

void sort_shell(int32_t *a, size_t n)
{
    static const size_t ciura[] = {1, 4, 10, 23, 57, 132, 301, 701};
    size_t gaps[48];
    size_t count = 0;

    for (size_t k = 0; k < sizeof ciura / sizeof ciura[0]; k++)
        gaps[count++] = ciura[k];
    while (count < 48 && gaps[count - 1] < n) {
        gaps[count] = gaps[count - 1] * 9 / 4;
        count++;
    }

    while (count > 0) {
        size_t gap = gaps[--count];
        if (gap >= n)
            continue;
        for (size_t i = gap; i < n; i++) {
            int32_t v = a[i];
            size_t j = i;
            while (j >= gap && a[j - gap] > v) {
                a[j] = a[j - gap];
                j -= gap;
            }
            a[j] = v;
        }
    }
}
