/*
 * Versioned migrations. Each embedded migration runs in its own transaction together with the
 * row that records it, so a migration is either wholly applied and recorded or not at all. The
 * version is re-read inside each transaction, under the engine's write lock (SQLite) or an
 * advisory lock (PostgreSQL), so instances starting together never apply one twice.
 */
#include <string.h>
#include <time.h>

#include "anteroom/alloc.h"
#include "anteroom/log.h"
#include "internal.h"

static const char create_sql[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                 "version BIGINT PRIMARY KEY, name TEXT NOT NULL, "
                                 "applied_at BIGINT NOT NULL)";

int64_t ar_store_code_version(void)
{
    return ar__store_nmigrations ? ar__store_migrations[ar__store_nmigrations - 1].version : 0;
}

static int run_one(ar_store_conn_t *conn, const char *sql, int64_t *out)
{
    ar_store_stmt_t *st = NULL;
    int rc = ar_store_prepare(conn, sql, strlen(sql), &st);
    if (rc < 0)
        return rc;
    rc = ar_store_step(st);
    if (rc == AR_STORE_ROW && out != NULL)
        *out = ar_store_col_int64(st, 0);
    ar_store_finalize(st);
    return rc < 0 ? rc : 0;
}

/* The version inside the current transaction; the table is known to exist. */
static int read_version(ar_store_conn_t *conn, int64_t *out)
{
    *out = 0;
    return run_one(conn, "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM schema_migrations",
                   out);
}

int ar_store_db_version(ar_store_conn_t *conn, int64_t *out)
{
    if (conn == NULL || out == NULL)
        return AR_EINVAL;
    *out = 0;
    int64_t exists = 0;
    /* Both engines answer this without an error on an empty database: SQLite through
     * sqlite_master, PostgreSQL through information_schema. */
    const char *q = ar_store_kind(conn) == AR_STORE_SQLITE
                        ? "SELECT COUNT(*) FROM sqlite_master WHERE name = 'schema_migrations'"
                        : "SELECT COUNT(*) FROM information_schema.tables "
                          "WHERE table_schema = current_schema() "
                          "AND table_name = 'schema_migrations'";
    int rc = run_one(conn, q, &exists);
    if (rc < 0 || exists == 0)
        return rc;
    return read_version(conn, out);
}

static int record(ar_store_conn_t *conn, const ar__store_migration_t *m)
{
    static const char sql[] =
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)";
    ar_store_stmt_t *st = NULL;
    int rc = ar_store_prepare(conn, sql, sizeof sql - 1, &st);
    if (rc == 0)
        rc = ar_store_bind_int64(st, 1, m->version);
    if (rc == 0)
        rc = ar_store_bind_text(st, 2, m->name, strlen(m->name));
    if (rc == 0)
        rc = ar_store_bind_int64(st, 3, (int64_t)time(NULL));
    if (rc == 0)
        rc = ar_store_step(st);
    ar_store_finalize(st);
    return rc;
}

/* In the current transaction: applies m unless the database already has it. */
static int apply(ar_store_conn_t *conn, const ar__store_migration_t *m)
{
    int64_t have = 0;
    int rc = read_version(conn, &have);
    if (rc < 0 || have >= m->version)
        return rc;
    if (have != m->version - 1)
        return AR_ESTATE; /* a gap: the embedded list is checked contiguous, so never expected */
    char *sql = NULL;
    rc = ar__store_dialect_sql(ar_store_kind(conn), m->sql, m->len, &sql);
    if (rc < 0)
        return rc;
    rc = ar_store_exec(conn, sql);
    ar_free(sql);
    if (rc == 0)
        rc = record(conn, m);
    if (rc == 0)
        ar_log(AR_LOG_INFO, "store_migrated", AR_LF_INT("version", m->version));
    return rc;
}

/* Creates schema_migrations if needed and applies m (when not NULL), in one transaction that
 * holds the migration lock. */
static int locked(ar_store_conn_t *conn, const ar__store_migration_t *m)
{
    int rc = ar_store_begin(conn);
    if (rc < 0)
        return rc;
    if (conn->ops->migration_lock != NULL)
        rc = conn->ops->migration_lock(conn);
    if (rc == 0)
        rc = ar_store_exec(conn, create_sql);
    if (rc == 0 && m != NULL)
        rc = apply(conn, m);
    if (rc == 0)
        rc = ar_store_commit(conn);
    if (rc < 0)
        (void)ar_store_rollback(conn);
    return rc;
}

int ar_store_migrate(ar_store_conn_t *conn)
{
    if (conn == NULL)
        return AR_EINVAL;
    for (size_t i = 0; i < ar__store_nmigrations; i++)
        if (ar__store_migrations[i].version != (int64_t)i + 1)
            return AR_ESTATE;
    int rc = locked(conn, NULL);
    int64_t have = 0;
    if (rc == 0)
        rc = ar_store_db_version(conn, &have);
    if (rc < 0)
        return rc;
    if (have > ar_store_code_version()) {
        /* Running old code on a newer schema could write rows the newer code misreads. */
        ar_log(AR_LOG_ERROR, "store_schema_newer_than_code", AR_LF_INT("db", have),
               AR_LF_INT("code", ar_store_code_version()));
        return AR_EUNSUPPORTED;
    }
    for (size_t i = (size_t)have; i < ar__store_nmigrations && rc == 0; i++)
        rc = locked(conn, &ar__store_migrations[i]);
    return rc;
}
