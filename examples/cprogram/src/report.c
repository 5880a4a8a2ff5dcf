/* report.c - section headers, check counting and the final verdict. */
#include <stdio.h>

#include "report.h"

void report_init(report_t *rep)
{
    rep->checks = 0;
    rep->failures = 0;
}

void report_section(const char *title)
{
    printf("\n== %s ==\n", title);
}

int report_check(report_t *rep, int ok)
{
    rep->checks++;
    if (!ok)
        rep->failures++;
    return ok;
}

int report_finish(const report_t *rep)
{
    printf("\n%u checks, %u failures\n", rep->checks, rep->failures);
    if (rep->failures == 0) {
        printf("ALL OK\n");
        return 0;
    }
    printf("FAILED\n");
    return 1;
}
