/*
 * Clinic reports (A4, reports.c): the monitor's stored aggregates and the entry counter over a
 * date range, as JSON or as a CSV download. Routes in routes.c; docs/api.md "Reports".
 */
#ifndef ANTEROOM_APP_REPORTS_H
#define ANTEROOM_APP_REPORTS_H

struct ar__req_s;
void ar__h_report(struct ar__req_s *r);
void ar__h_report_csv(struct ar__req_s *r);

#endif
