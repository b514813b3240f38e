/*
 * Lockout per account and backoff per source address (issue 4), kept in the store rather than in
 * memory so that every stateless instance behind a load balancer counts the same failures (X1),
 * and timed by the caller's clock (the app's injectable one) so tests can move time.
 */
#include "accounts.h"
#include "sql.h"

#include <string.h>

/* Runs a statement with parameters bound by the caller (rc is the binding result). */
static int run(ar_store_stmt_t *st, int rc)
{
    if (rc == 0)
        rc = ar_store_step(st);
    ar_store_finalize(st);
    return rc < 0 ? rc : 0;
}

int ar_app_lockout_locked(ar_store_conn_t *c, int64_t account, int64_t now)
{
    ar_store_stmt_t *st;
    int rc =
        ar__query_ids(c, "SELECT count(*) FROM auth_failures WHERE account_id = $1 AND at > $2",
                      account, now - AR_LOCKOUT_WINDOW, &st);
    int64_t n = rc == AR_STORE_ROW ? ar_store_col_int64(st, 0) : 0;
    ar_store_finalize(st);
    if (rc < 0)
        return rc;
    return n >= AR_LOCKOUT_MAX;
}

int ar_app_lockout_fail(ar_store_conn_t *c, int64_t account, int64_t now)
{
    ar_store_stmt_t *st;
    /* Out-of-window rows go first, so an account holds at most about AR_LOCKOUT_MAX rows. */
    int rc = ar__prep(c, "DELETE FROM auth_failures WHERE account_id = $1 AND at <= $2", &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, account);
    if (rc == 0)
        rc = ar_store_bind_int64(st, 2, now - AR_LOCKOUT_WINDOW);
    rc = run(st, rc);
    if (rc == 0)
        rc = ar__prep(c, "INSERT INTO auth_failures (account_id, at) VALUES ($1, $2)", &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, account);
    if (rc == 0)
        rc = ar_store_bind_int64(st, 2, now);
    return run(st, rc);
}

int ar_app_lockout_clear(ar_store_conn_t *c, int64_t account)
{
    ar_store_stmt_t *st;
    int rc = ar__prep(c, "DELETE FROM auth_failures WHERE account_id = $1", &st);
    if (rc < 0)
        return rc;
    return run(st, ar_store_bind_int64(st, 1, account));
}

int ar_app_backoff_check(ar_store_conn_t *c, const uint8_t addr[32], int64_t now,
                         int64_t *retry_after)
{
    ar_store_stmt_t *st;
    int rc = ar__prep(c, "SELECT blocked_until FROM addr_backoff WHERE addr_hash = $1", &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_blob(st, 1, addr, 32);
    if (rc == 0)
        rc = ar_store_step(st);
    int64_t until = rc == AR_STORE_ROW ? ar_store_col_int64(st, 0) : 0;
    ar_store_finalize(st);
    if (rc < 0)
        return rc;
    if (until > now) {
        *retry_after = until - now;
        return AR_EQUOTA;
    }
    return 0;
}

int ar_app_backoff_fail(ar_store_conn_t *c, const uint8_t addr[32], int64_t now)
{
    ar_store_stmt_t *st;
    int rc = ar__prep(c, "SELECT failures, last_at FROM addr_backoff WHERE addr_hash = $1", &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_blob(st, 1, addr, 32);
    if (rc == 0)
        rc = ar_store_step(st);
    int64_t failures = 0;
    if (rc == AR_STORE_ROW && ar_store_col_int64(st, 1) > now - AR_LOCKOUT_WINDOW)
        failures = ar_store_col_int64(st, 0);
    ar_store_finalize(st);
    if (rc < 0)
        return rc;
    failures++;
    int64_t wait = 0;
    if (failures > AR_BACKOFF_FREE) {
        int64_t e = failures - AR_BACKOFF_FREE - 1;
        wait = e >= 10 ? AR_BACKOFF_MAX_S : (int64_t)1 << e;
        if (wait > AR_BACKOFF_MAX_S)
            wait = AR_BACKOFF_MAX_S;
    }
    /* Rows of addresses quiet for the window go while we are here, so the table stays small
     * and holds nothing about an address longer than it needs to. */
    rc = ar__prep(c, "DELETE FROM addr_backoff WHERE last_at <= $1 AND blocked_until <= $2", &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, now - AR_LOCKOUT_WINDOW);
    if (rc == 0)
        rc = ar_store_bind_int64(st, 2, now);
    rc = run(st, rc);
    if (rc == 0)
        rc = ar__prep(c,
                      "INSERT INTO addr_backoff (addr_hash, failures, last_at, blocked_until) "
                      "VALUES ($1, $2, $3, $4) ON CONFLICT (addr_hash) DO UPDATE SET "
                      "failures = excluded.failures, last_at = excluded.last_at, "
                      "blocked_until = excluded.blocked_until",
                      &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_blob(st, 1, addr, 32);
    if (rc == 0)
        rc = ar_store_bind_int64(st, 2, failures);
    if (rc == 0)
        rc = ar_store_bind_int64(st, 3, now);
    if (rc == 0)
        rc = ar_store_bind_int64(st, 4, now + wait);
    return run(st, rc);
}

int ar_app_backoff_clear(ar_store_conn_t *c, const uint8_t addr[32])
{
    ar_store_stmt_t *st;
    int rc = ar__prep(c, "DELETE FROM addr_backoff WHERE addr_hash = $1", &st);
    if (rc < 0)
        return rc;
    return run(st, ar_store_bind_blob(st, 1, addr, 32));
}
