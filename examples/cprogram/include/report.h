/* report.h - the deterministic text report sortcheck prints. */
#ifndef SORTCHECK_REPORT_H
#define SORTCHECK_REPORT_H

typedef struct {
    unsigned checks;
    unsigned failures;
} report_t;

void report_init(report_t *rep);
void report_section(const char *title);
/* Count one check; returns ok so callers can print OK / FAIL. */
int report_check(report_t *rep, int ok);
/* Print the summary, then "ALL OK" or "FAILED"; returns the exit status. */
int report_finish(const report_t *rep);

#endif
