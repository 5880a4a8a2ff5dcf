/* oddeven.c - odd-even transposition (brick) sort. */
#include "sorts.h"
#include "util.h"

void sort_oddeven(int32_t *a, size_t n)
{
    int sorted = 0;
    while (!sorted) {
        sorted = 1;
        for (size_t start = 1; start <= 2; start++) {
            for (size_t i = start; i < n; i += 2) {
                if (a[i - 1] > a[i]) {
                    swap_i32(&a[i - 1], &a[i]);
                    sorted = 0;
                }
            }
        }
    }
}
