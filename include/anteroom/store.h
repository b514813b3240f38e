/*
 * The one store interface: SQLite (the embedded default) and PostgreSQL (libpq) behind it.
 *
 * It keeps SQL in the caller's hands but out of the caller's way. Statements are written once, in
 * the subset both engines accept, with PostgreSQL-style positional parameters ($1, $2, ...):
 *   - parameters are bound by type (text with length, int64, blob, null) and always travel apart
 *     from the statement text, so a value can never become SQL;
 *   - results are read row by row, column by column;
 *   - transactions are explicit (ar_store_begin/commit/rollback).
 * Portable SQL here means: TEXT, BIGINT, INTEGER and blobs (declared only in migrations); times as
 * BIGINT seconds; RETURNING; INSERT ... ON CONFLICT (...) DO UPDATE SET x = excluded.x (both
 * engines spell upsert that way); no casts with '::' (write CAST(x AS BIGINT)). PostgreSQL widens
 * sum() to numeric; ar_store_col_int64 reads that too.
 *
 * Two fronts share those statements:
 *   - synchronous (ar_store_open): one connection, for tools (`anteroom admin`) and tests;
 *   - asynchronous (ar_store_pool_*): a few worker threads with one connection each run jobs, and
 *     each job's completion callback fires on the caller's libuv loop, so database work never
 *     blocks the event loop.
 *
 * Errors are negative AR_E* codes (err.h): AR_EEXIST for a unique or primary key violation,
 * AR_ENOTFOUND for a foreign key violation (a referenced row is missing, or a row is still
 * referenced), AR_EINVAL for NOT NULL/CHECK violations, bad SQL or misuse, AR_EAGAIN when the
 * database is busy or a transaction must be retried, AR_ECLOSED when the connection broke,
 * AR_EUNSUPPORTED when the database schema is newer than this code, AR_ENOMEM, AR_EIO.
 * No error message from the database is ever logged: PostgreSQL quotes the offending values
 * ("Key (email)=(...) already exists"), and those may be personal data.
 */
#ifndef ANTEROOM_STORE_H
#define ANTEROOM_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "anteroom/err.h"

typedef enum {
    AR_STORE_SQLITE = 1,
    AR_STORE_PG = 2,
} ar_store_kind_t;

/* Caps: a statement's text, one bound value, and the number of positional parameters. */
#define AR_STORE_SQL_MAX ((size_t)64 * 1024)
#define AR_STORE_VALUE_MAX ((size_t)1024 * 1024)
#define AR_STORE_PARAMS_MAX 32

typedef struct ar_store_opts_s {
    ar_store_kind_t kind;
    /* SQLite: the database file path. PostgreSQL: a libpq connection string or URI. */
    const char *target;
    /* SQLite: how long a writer waits for another one before AR_EAGAIN. 0 means 5000 ms. */
    unsigned busy_timeout_ms;
    /* PostgreSQL: require TLS and check the server's certificate and name (sslmode=verify-full)
     * against pg_root_cert (a PEM file; NULL means libpq's default ~/.postgresql/root.crt).
     * Applies to TCP; libpq never uses TLS on a local unix socket. */
    int pg_tls_verify_full;
    const char *pg_root_cert;
} ar_store_opts_t;

typedef struct ar_store_conn_s ar_store_conn_t;
typedef struct ar_store_stmt_s ar_store_stmt_t;

/* ---- Synchronous front: one connection, used by one thread at a time. ---- */

/* Opens a connection (SQLite: WAL, busy timeout, foreign keys on; PostgreSQL: optionally TLS
 * verify-full). Returns 0 and *out, or AR_EINVAL, AR_ENOMEM, AR_EIO, AR_ECLOSED, AR_EAUTH. */
AR_MUST_CHECK int ar_store_open(const ar_store_opts_t *opts, ar_store_conn_t **out);
/* Closes the connection; every statement on it must already be finalized. NULL is a no-op. */
void ar_store_close(ar_store_conn_t *conn);
ar_store_kind_t ar_store_kind(const ar_store_conn_t *conn);

/* Runs parameterless SQL, possibly several statements (schema work). Never put values in it. */
AR_MUST_CHECK int ar_store_exec(ar_store_conn_t *conn, const char *sql);

/* Prepares one statement of len bytes (at most AR_STORE_SQL_MAX). Parameters are $1..$N. */
AR_MUST_CHECK int ar_store_prepare(ar_store_conn_t *conn, const char *sql, size_t len,
                                   ar_store_stmt_t **out);
/* Binds parameter $idx (1-based). Values are copied, so the caller's buffer may go at once.
 * Text must hold no NUL byte (PostgreSQL cannot store one); both text and blobs are capped at
 * AR_STORE_VALUE_MAX (AR_ETOOBIG). AR_ERANGE for an index outside 1..AR_STORE_PARAMS_MAX. */
AR_MUST_CHECK int ar_store_bind_text(ar_store_stmt_t *st, int idx, const char *s, size_t len);
AR_MUST_CHECK int ar_store_bind_int64(ar_store_stmt_t *st, int idx, int64_t v);
AR_MUST_CHECK int ar_store_bind_blob(ar_store_stmt_t *st, int idx, const void *p, size_t len);
AR_MUST_CHECK int ar_store_bind_null(ar_store_stmt_t *st, int idx);

#define AR_STORE_ROW 1
#define AR_STORE_DONE 0
/* Runs the statement (on the first call) and moves to the next row. Returns AR_STORE_ROW when a
 * row can be read, AR_STORE_DONE when there are no more, or a negative AR_E* code. Every
 * parameter the statement names must be bound (AR_EINVAL otherwise). */
AR_MUST_CHECK int ar_store_step(ar_store_stmt_t *st);
/* Rows inserted, updated or deleted by the statement once it is done. */
int64_t ar_store_changes(const ar_store_stmt_t *st);
/* Makes the statement runnable again; bindings are kept. */
void ar_store_reset(ar_store_stmt_t *st);
/* Frees the statement. NULL is a no-op. */
void ar_store_finalize(ar_store_stmt_t *st);

/* Columns of the current row, 0-based. Pointers stay valid until the next step, reset or
 * finalize; text is NUL-terminated. Reading a NULL gives 0, or an empty value with *len 0;
 * read a column as the type it was declared with. */
int ar_store_col_count(const ar_store_stmt_t *st);
int ar_store_col_is_null(const ar_store_stmt_t *st, int col);
int64_t ar_store_col_int64(const ar_store_stmt_t *st, int col);
const char *ar_store_col_text(const ar_store_stmt_t *st, int col, size_t *len);
const void *ar_store_col_blob(const ar_store_stmt_t *st, int col, size_t *len);

/* Transactions. After any error inside one, roll back: PostgreSQL refuses every further statement
 * of a failed transaction, SQLite does not, and callers must not depend on the difference. A
 * failed commit leaves the transaction open on SQLite; roll it back. */
AR_MUST_CHECK int ar_store_begin(ar_store_conn_t *conn);
AR_MUST_CHECK int ar_store_commit(ar_store_conn_t *conn);
int ar_store_rollback(ar_store_conn_t *conn);

/* Applies every embedded migration (src/store/migrations/NNNN_name.sql) newer than the database,
 * in order, each in its own transaction, recording it in schema_migrations. Safe to run from
 * several processes at once. AR_EUNSUPPORTED when the database has a migration this code does
 * not know (it is newer than the code): refuse to start then. */
AR_MUST_CHECK int ar_store_migrate(ar_store_conn_t *conn);
/* The highest migration version the code knows, and the one the database has (0 when empty). */
int64_t ar_store_code_version(void);
AR_MUST_CHECK int ar_store_db_version(ar_store_conn_t *conn, int64_t *out);

/* ---- Asynchronous front: a pool of worker threads, one connection each. ---- */

typedef struct ar_store_pool_s ar_store_pool_t;

/* Runs on a worker thread with that worker's connection. It may prepare, step and run a
 * transaction; it must not touch anything the loop owns. Its return value reaches the done
 * callback. It must leave no transaction open and no statement unfinalized. */
typedef int (*ar_store_job_cb)(ar_store_conn_t *conn, void *arg);
/* Runs on the loop thread when the job finished, or with AR_ECLOSED when the pool closed before
 * the job started. */
typedef void (*ar_store_done_cb)(int status, void *arg);

/* Opens nthreads connections (1..16) at once, so a wrong target fails here, then starts one
 * thread per connection. queue_max caps jobs waiting for a thread (0 means 1024). */
AR_MUST_CHECK int ar_store_pool_open(uv_loop_t *loop, const ar_store_opts_t *opts,
                                     unsigned nthreads, unsigned queue_max, ar_store_pool_t **out);
/* Queues a job. Returns 0 (done_cb will fire exactly once), AR_EQUOTA when the queue is full,
 * AR_ENOMEM or AR_ESTATE after close. Call on the loop thread. */
AR_MUST_CHECK int ar_store_pool_submit(ar_store_pool_t *pool, ar_store_job_cb job,
                                       ar_store_done_cb done, void *arg);
/* Stops the pool: jobs not yet started complete with AR_ECLOSED, running ones are waited for
 * (so a shutdown waits at most as long as one statement), connections close, and the pool's
 * memory is freed once the loop has run its close callbacks. Call on the loop thread. */
void ar_store_pool_close(ar_store_pool_t *pool);

#endif
