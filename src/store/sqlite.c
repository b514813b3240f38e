/*
 * The SQLite backend: the embedded default. One connection per thread (opened NOMUTEX: the pool
 * never shares one), WAL so readers never wait for the writer, a busy timeout so writers queue
 * instead of failing at once, foreign keys on (SQLite leaves them off by default), and the
 * defensive settings that keep SQL from corrupting the file or running code from the schema.
 */
#include <sqlite3.h>
#include <string.h>

#include "anteroom/alloc.h"
#include "anteroom/log.h"
#include "internal.h"

typedef struct sq_conn_s {
    ar_store_conn_t base;
    sqlite3 *db;
} sq_conn_t;

typedef struct sq_stmt_s {
    ar_store_stmt_t base;
    sqlite3_stmt *st;
    /* SQLite reads $1 as a parameter *named* "$1" and numbers named parameters by first
     * appearance, so "$2 ... $1" would swap them. slot[N] is the SQLite index of $N. */
    int slot[AR_STORE_PARAMS_MAX + 1];
    int done;
    int64_t changes;
} sq_stmt_t;

static sq_conn_t *sq_conn(ar_store_conn_t *c)
{
    return (sq_conn_t *)c;
}

static sq_stmt_t *sq_stmt(ar_store_stmt_t *s)
{
    return (sq_stmt_t *)s;
}

static const sq_stmt_t *sq_cstmt(const ar_store_stmt_t *s)
{
    return (const sq_stmt_t *)s;
}

static int sq_map(int rc)
{
    switch (rc) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return 0;
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_ROWID:
        return AR_EEXIST;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return AR_ENOTFOUND;
    default:
        break;
    }
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
    case SQLITE_ERROR:
    case SQLITE_MISMATCH:
        return AR_EINVAL;
    case SQLITE_MISUSE:
        return AR_ESTATE;
    case SQLITE_NOMEM:
        return AR_ENOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return AR_EAGAIN;
    case SQLITE_TOOBIG:
        return AR_ETOOBIG;
    case SQLITE_RANGE:
        return AR_ERANGE;
    case SQLITE_AUTH:
    case SQLITE_PERM:
    case SQLITE_READONLY:
        return AR_EPERM;
    default:
        /* I/O, corruption, a full disk: worth an operator's attention. The code, never the
         * message, is logged: messages can quote values. */
        ar_log(AR_LOG_WARN, "store_sqlite_error", AR_LF_INT("code", rc));
        return AR_EIO;
    }
}

static int sq_exec(ar_store_conn_t *conn, const char *sql)
{
    return sq_map(sqlite3_exec(sq_conn(conn)->db, sql, NULL, NULL, NULL));
}

static void sq_close(ar_store_conn_t *conn)
{
    sq_conn_t *c = sq_conn(conn);
    /* sqlite3_close (not _v2) fails on unfinalized statements rather than hiding the leak. */
    if (sqlite3_close(c->db) != SQLITE_OK)
        ar_log0(AR_LOG_ERROR, "store_sqlite_close_busy");
    ar_free(c);
}

static int sq_setup(sqlite3 *db, unsigned busy_ms)
{
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, (int)(busy_ms ? busy_ms : 5000));
    /* DEFENSIVE forbids writes that can corrupt the file (writable_schema and the like);
     * TRUSTED_SCHEMA off keeps functions named in the schema (triggers, views) from running with
     * side effects if the file was tampered with. */
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
    /* journal_mode answers with the mode it got: a file system without shared memory leaves the
     * database in its old mode, and we would rather not start than run without WAL. */
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            const unsigned char *mode = sqlite3_column_text(st, 0);
            rc = mode != NULL && strcmp((const char *)mode, "wal") == 0 ? SQLITE_OK : SQLITE_ERROR;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return rc == SQLITE_ERROR ? AR_EUNSUPPORTED : sq_map(rc);
    /* synchronous=FULL: a commit survives power loss. Sessions and the audit chain want that more
     * than they want the fsync saved by NORMAL. */
    return sq_map(
        sqlite3_exec(db, "PRAGMA foreign_keys=ON; PRAGMA synchronous=FULL", NULL, NULL, NULL));
}

static int sq_open(const ar_store_opts_t *opts, ar_store_conn_t **out)
{
    sq_conn_t *c = ar_calloc(1, sizeof(*c));
    if (c == NULL)
        return AR_ENOMEM;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                SQLITE_OPEN_EXRESCODE | SQLITE_OPEN_NOFOLLOW;
    int rc = sqlite3_open_v2(opts->target, &c->db, flags, NULL);
    rc = rc == SQLITE_OK ? sq_setup(c->db, opts->busy_timeout_ms) : sq_map(rc);
    if (rc < 0) {
        sqlite3_close(c->db);
        ar_free(c);
        return rc;
    }
    c->base.ops = &ar__store_sqlite_ops;
    c->base.kind = AR_STORE_SQLITE;
    *out = &c->base;
    return 0;
}

static int only_space(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r' && *s != ';')
            return 0;
    return 1;
}

static int sq_prepare(ar_store_conn_t *conn, const char *sql, size_t len, ar_store_stmt_t **out)
{
    sq_stmt_t *s = ar_calloc(1, sizeof(*s));
    if (s == NULL)
        return AR_ENOMEM;
    const char *tail = NULL;
    int rc = sq_map(sqlite3_prepare_v2(sq_conn(conn)->db, sql, (int)len + 1, &s->st, &tail));
    /* One statement per prepare, as PostgreSQL's extended protocol allows: a second one hiding
     * after a semicolon is refused rather than silently dropped. */
    if (rc == 0 && (s->st == NULL || (tail != NULL && !only_space(tail))))
        rc = AR_EINVAL;
    for (int k = 1; rc == 0 && k <= sqlite3_bind_parameter_count(s->st); k++) {
        const char *name = sqlite3_bind_parameter_name(s->st, k);
        int n = 0;
        for (const char *p = name ? name + 1 : ""; *p >= '0' && *p <= '9' && n <= 1000; p++)
            n = n * 10 + (*p - '0');
        if (name == NULL || name[0] != '$' || n < 1 || n > AR_STORE_PARAMS_MAX)
            rc = AR_EINVAL;
        else
            s->slot[n] = k;
    }
    if (rc < 0) {
        sqlite3_finalize(s->st);
        ar_free(s);
        return rc;
    }
    *out = &s->base;
    return 0;
}

static int sq_bind(ar_store_stmt_t *st, int idx, const ar__store_val_t *v)
{
    sq_stmt_t *s = sq_stmt(st);
    int k = s->slot[idx];
    if (sqlite3_stmt_busy(s->st) || s->done)
        return AR_ESTATE; /* reset first, as PostgreSQL's backend requires too */
    if (k == 0)
        return 0; /* $idx is unused in this statement; PostgreSQL accepts that too */
    int rc = SQLITE_MISUSE;
    switch (v->type) {
    case AR__SV_NULL:
        rc = sqlite3_bind_null(s->st, k);
        break;
    case AR__SV_INT64:
        rc = sqlite3_bind_int64(s->st, k, v->i);
        break;
    case AR__SV_TEXT:
        rc = sqlite3_bind_text(s->st, k, v->p, (int)v->len, SQLITE_TRANSIENT);
        break;
    case AR__SV_BLOB:
        rc = sqlite3_bind_blob(s->st, k, v->p, (int)v->len, SQLITE_TRANSIENT);
        break;
    }
    return sq_map(rc);
}

static int sq_step(ar_store_stmt_t *st)
{
    sq_stmt_t *s = sq_stmt(st);
    /* SQLite would silently run the statement again after DONE; PostgreSQL's backend answers
     * DONE until reset, and callers get the same from both. */
    if (s->done)
        return AR_STORE_DONE;
    int rc = sqlite3_step(s->st);
    if (rc == SQLITE_ROW)
        return AR_STORE_ROW;
    if (rc == SQLITE_DONE) {
        s->done = 1;
        /* sqlite3_changes64 keeps the last write's count through reads; a read changed nothing. */
        s->changes = sqlite3_stmt_readonly(s->st) ? 0 : sqlite3_changes64(sqlite3_db_handle(s->st));
        return AR_STORE_DONE;
    }
    return sq_map(rc);
}

static int64_t sq_changes(const ar_store_stmt_t *st)
{
    return sq_cstmt(st)->changes;
}

static void sq_reset(ar_store_stmt_t *st)
{
    sq_stmt_t *s = sq_stmt(st);
    sqlite3_reset(s->st);
    s->done = 0;
    s->changes = 0;
}

static void sq_finalize(ar_store_stmt_t *st)
{
    sq_stmt_t *s = sq_stmt(st);
    sqlite3_finalize(s->st);
    ar_free(s);
}

static int sq_col_count(const ar_store_stmt_t *st)
{
    const sq_stmt_t *s = sq_cstmt(st);
    return s->done ? 0 : sqlite3_data_count(s->st);
}

static int sq_col_is_null(const ar_store_stmt_t *st, int col)
{
    return sqlite3_column_type(sq_cstmt(st)->st, col) == SQLITE_NULL;
}

static int64_t sq_col_int64(const ar_store_stmt_t *st, int col)
{
    return sqlite3_column_int64(sq_cstmt(st)->st, col);
}

static const void *sq_col_bytes(const ar_store_stmt_t *st, int col, size_t *len)
{
    sqlite3_stmt *s = sq_cstmt(st)->st;
    const void *p = sqlite3_column_type(s, col) == SQLITE_BLOB ? sqlite3_column_blob(s, col)
                                                               : sqlite3_column_text(s, col);
    *len = (size_t)sqlite3_column_bytes(s, col);
    return p;
}

const ar__store_ops_t ar__store_sqlite_ops = {
    .open = sq_open,
    .close = sq_close,
    .exec = sq_exec,
    .prepare = sq_prepare,
    .bind = sq_bind,
    .step = sq_step,
    .changes = sq_changes,
    .reset = sq_reset,
    .finalize = sq_finalize,
    .col_count = sq_col_count,
    .col_is_null = sq_col_is_null,
    .col_int64 = sq_col_int64,
    .col_bytes = sq_col_bytes,
    .begin_sql = "BEGIN IMMEDIATE",
    .migration_lock = NULL,
};
