/*
 * Statement helpers shared by the app's store jobs and by `anteroom admin` (cmd/anteroom), so
 * that a statement is prepared, bound, run and committed the same way everywhere, and the
 * account changes both of them make (an email's stored form, a second-factor reset) are
 * written once. Everything here runs on a store connection (a store job or a tool), never on
 * the event loop.
 */
#ifndef ANTEROOM_APP_SQL_H
#define ANTEROOM_APP_SQL_H

#include "anteroom/err.h"
#include "anteroom/store.h"

#include <stddef.h>
#include <stdint.h>

/* ar_store_prepare for a NUL-terminated statement. */
int ar__prep(ar_store_conn_t *c, const char *sql, ar_store_stmt_t **st);
/* Prepares sql and binds $1..$n to v[0..n-1]; *st is NULL when preparing failed. */
int ar__prep_ids(ar_store_conn_t *c, const char *sql, const int64_t *v, int n,
                 ar_store_stmt_t **st);
/* Steps st once when rc is 0 (the binds went well), finalizes it and returns rc or the step's
 * error; 0 when the statement ran (a row or done). */
int ar__run(ar_store_stmt_t *st, int rc);
/* ar__run for a statement that must change exactly one row: *changed says how many it did. */
int ar__run_changes(ar_store_stmt_t *st, int rc, int64_t *changed);
/* Prepares, binds $1 = a (and $2 = b when the SQL names it) and runs a statement with no rows. */
int ar__exec_ids(ar_store_conn_t *c, const char *sql, int64_t a, int64_t b);
/*
 * Prepares, binds $1 = a (and $2 = b when the SQL names it) and steps once: returns
 * AR_STORE_ROW with *st on the first row, AR_STORE_DONE, or an error. *st is the statement to
 * ar_store_finalize in every case (NULL when it could not be prepared; finalizing NULL is a
 * no-op).
 */
int ar__query_ids(ar_store_conn_t *c, const char *sql, int64_t a, int64_t b, ar_store_stmt_t **st);
/* Ends the transaction a change ran in: commits when rc is 0, else (or when the commit fails)
 * rolls back. Returns rc or the commit's error. */
int ar__finish(ar_store_conn_t *c, int rc);

/* The largest email address the app takes (RFC 5321's path limit less the brackets). */
#define AR__EMAIL_MAX 254
/* An email address in the form the store keeps it (lower-cased ASCII: 0001_init.sql) into out
 * (cap bytes, NUL-terminated). Returns the length, or AR_EINVAL when s (len bytes) is not an
 * email address (ar_app_charset_ok's AR_CS_EMAIL, at least 3 bytes) or does not fit. */
int ar__email_lower(const char *s, size_t len, char *out, size_t cap);

/*
 * Resets an account's second factor within the caller's transaction: the secret, any pending
 * enrolment, the recovery codes, pending second steps and every session go, so the next
 * sign-in must enrol again and whoever holds a lost device is signed out everywhere. Used by
 * the staff route (staff.c) and `anteroom admin reset-mfa`; the caller audits it.
 */
int ar__mfa_reset(ar_store_conn_t *c, int64_t account);

#endif
