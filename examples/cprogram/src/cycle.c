/* cycle.c - cycle sort: the minimum number of writes. */
#include "sorts.h"
#include "util.h"

void sort_cycle(int32_t *a, size_t n)
{
    for (size_t start = 0; start + 1 < n; start++) {
        int32_t item = a[start];
        size_t pos = start;

        for (size_t i = start + 1; i < n; i++)
            if (a[i] < item)
                pos++;
        if (pos == start)
            continue;
        while (item == a[pos])
            pos++;
        swap_i32(&item, &a[pos]);

        while (pos != start) {
            pos = start;
            for (size_t i = start + 1; i < n; i++)
                if (a[i] < item)
                    pos++;
            while (item == a[pos])
                pos++;
            swap_i32(&item, &a[pos]);
        }
    }
}
