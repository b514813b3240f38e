/*
 * Clinic reports (A4, reports.c): the monitor's stored aggregates and the entry counter over a
 * date range, as JSON or as a CSV download. Routes in routes.c; docs/api.md "Reports".
 */
#ifndef ANTEROOM_APP_REPORTS_H
#define ANTEROOM_APP_REPORTS_H

#include <stddef.h>
#include <stdint.h>

struct ar__req_s;
void ar__h_report(struct ar__req_s *r);
void ar__h_report_csv(struct ar__req_s *r);

#define AR__REPORT_QUERY_MAX 256

/* A report's query, parsed: UTC days since the epoch (both included), per hour or per day, and
 * an area's slug ("" for every area). */
typedef struct ar__report_query_s {
    int64_t from, to;
    int by_hour;
    char area[65];
} ar__report_query_t;

/*
 * Parses "from=YYYY-MM-DD&to=YYYY-MM-DD[&by=day|hour][&area=slug]" (qlen bytes, no '?'): each
 * key at most once, no other key, values of a-z 0-9 - only (so nothing needs percent-decoding),
 * real dates of the years 2000 to 2199, to on or after from, at most 366 days (31 by hour).
 * Returns NULL with *out filled, or a message naming the parameter (never quoting input).
 */
const char *ar__report_query_parse(const char *q, size_t qlen, ar__report_query_t *out);

/*
 * Appends one CSV cell to buf (cap bytes, *len used, kept NUL-terminated), after a comma unless
 * first. RFC 4180 quoting (a cell with a comma, quote or line break is quoted, quotes doubled)
 * and CSV-injection safety: a cell a spreadsheet would read as a formula (starting with = + - @,
 * a tab or a carriage return) gets a leading apostrophe, so it stays text. Returns 0, or -1 when
 * the buffer is too small (nothing appended).
 */
int ar__csv_cell(char *buf, size_t cap, size_t *len, const char *s, int first);

#endif
