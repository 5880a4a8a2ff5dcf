/* heap.c - heapsort with a binary max-heap. */
#include "sorts.h"
#include "util.h"

static void sift_down(int32_t *a, size_t root, size_t n)
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n)
            return;
        if (child + 1 < n && a[child + 1] > a[child])
            child++;
        if (a[root] >= a[child])
            return;
        swap_i32(&a[root], &a[child]);
        root = child;
    }
}

void sort_heap(int32_t *a, size_t n)
{
    if (n < 2)
        return;
    for (size_t i = n / 2; i > 0; i--)
        sift_down(a, i - 1, n);
    for (size_t end = n - 1; end > 0; end--) {
        swap_i32(&a[0], &a[end]);
        sift_down(a, 0, end);
    }
}
