/*
 * Statement helpers (sql.h): the one way the app's store jobs and `anteroom admin` prepare,
 * bind, run and commit, and the account changes both make.
 */
#include "sql.h"

#include "body.h"

#include <string.h>

int ar__prep(ar_store_conn_t *c, const char *sql, ar_store_stmt_t **st)
{
    return ar_store_prepare(c, sql, strlen(sql), st);
}

int ar__prep_ids(ar_store_conn_t *c, const char *sql, const int64_t *v, int n, ar_store_stmt_t **st)
{
    *st = NULL;
    int rc = ar__prep(c, sql, st);
    if (rc < 0)
        *st = NULL;
    for (int i = 0; rc == 0 && i < n; i++)
        rc = ar_store_bind_int64(*st, i + 1, v[i]);
    return rc;
}

int ar__run(ar_store_stmt_t *st, int rc)
{
    if (rc == 0)
        rc = ar_store_step(st);
    ar_store_finalize(st);
    return rc < 0 ? rc : 0;
}

int ar__run_changes(ar_store_stmt_t *st, int rc, int64_t *changed)
{
    if (rc == 0)
        rc = ar_store_step(st);
    *changed = rc == AR_STORE_DONE ? ar_store_changes(st) : 0;
    ar_store_finalize(st);
    return rc < 0 ? rc : 0;
}

/* Binds $1 = a, and $2 = b when the statement names it. */
static int bind_ids(ar_store_stmt_t *st, const char *sql, int64_t a, int64_t b)
{
    int rc = ar_store_bind_int64(st, 1, a);
    if (rc == 0 && strstr(sql, "$2") != NULL)
        rc = ar_store_bind_int64(st, 2, b);
    return rc;
}

int ar__exec_ids(ar_store_conn_t *c, const char *sql, int64_t a, int64_t b)
{
    ar_store_stmt_t *st;
    int rc = ar__prep(c, sql, &st);
    if (rc < 0)
        return rc;
    return ar__run(st, bind_ids(st, sql, a, b));
}

int ar__query_ids(ar_store_conn_t *c, const char *sql, int64_t a, int64_t b, ar_store_stmt_t **st)
{
    *st = NULL;
    int rc = ar__prep(c, sql, st);
    if (rc < 0) {
        *st = NULL;
        return rc;
    }
    rc = bind_ids(*st, sql, a, b);
    return rc < 0 ? rc : ar_store_step(*st);
}

int ar__finish(ar_store_conn_t *c, int rc)
{
    rc = rc == 0 ? ar_store_commit(c) : rc;
    if (rc < 0)
        (void)ar_store_rollback(c);
    return rc;
}

int ar__email_lower(const char *s, size_t len, char *out, size_t cap)
{
    if (len < 3 || len >= cap || !ar_app_charset_ok(AR_CS_EMAIL, s, len))
        return AR_EINVAL;
    for (size_t i = 0; i < len; i++)
        out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
    out[len] = '\0';
    return (int)len;
}

int ar__mfa_reset(ar_store_conn_t *c, int64_t account)
{
    /* No secret means "not enrolled": the person signs in with the password alone next time
     * and must enrol again before any clinic work. */
    static const char *const sql[] = {
        ("UPDATE accounts SET totp_secret = NULL, totp_pending = NULL, totp_last_step = 0 "
         "WHERE id = $1"),
        "DELETE FROM recovery_codes WHERE account_id = $1",
        "DELETE FROM mfa_challenges WHERE account_id = $1",
        "DELETE FROM sessions WHERE account_id = $1"};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof(sql) / sizeof(sql[0]); i++)
        rc = ar__exec_ids(c, sql[i], account, 0);
    return rc;
}
