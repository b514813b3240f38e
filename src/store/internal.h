/*
 * The store's backend vtable. store.c checks arguments and caps once for both engines, then calls
 * through ar__store_ops_t; sqlite.c and pg.c only translate to their engine. Backend structs
 * embed the base struct first, so a base pointer converts to the backend's own type.
 */
#ifndef AR_STORE_INTERNAL_H
#define AR_STORE_INTERNAL_H

#include "anteroom/store.h"

typedef enum {
    AR__SV_NULL,
    AR__SV_INT64,
    AR__SV_TEXT,
    AR__SV_BLOB,
} ar__store_vtype_t;

typedef struct ar__store_val_s {
    ar__store_vtype_t type;
    int64_t i;
    const void *p;
    size_t len;
} ar__store_val_t;

typedef struct ar__store_ops_s ar__store_ops_t;

struct ar_store_conn_s {
    const ar__store_ops_t *ops;
    ar_store_kind_t kind;
};

struct ar_store_stmt_s {
    ar_store_conn_t *conn;
    /* Which parameters have been bound, bit (idx - 1): both engines then agree that running a
     * statement with an unbound parameter is an error (SQLite alone would read it as NULL). */
    uint32_t bound;
    /* The highest $N the statement names, found once at prepare. */
    int nparams;
};

struct ar__store_ops_s {
    int (*open)(const ar_store_opts_t *opts, ar_store_conn_t **out);
    void (*close)(ar_store_conn_t *conn);
    int (*exec)(ar_store_conn_t *conn, const char *sql);
    /* sql is NUL-terminated at sql[len]. */
    int (*prepare)(ar_store_conn_t *conn, const char *sql, size_t len, ar_store_stmt_t **out);
    int (*bind)(ar_store_stmt_t *st, int idx, const ar__store_val_t *v);
    int (*step)(ar_store_stmt_t *st);
    int64_t (*changes)(const ar_store_stmt_t *st);
    void (*reset)(ar_store_stmt_t *st);
    void (*finalize)(ar_store_stmt_t *st);
    int (*col_count)(const ar_store_stmt_t *st);
    int (*col_is_null)(const ar_store_stmt_t *st, int col);
    int64_t (*col_int64)(const ar_store_stmt_t *st, int col);
    /* Text and blobs alike: a pointer to the bytes (NUL-terminated) and their length. */
    const void *(*col_bytes)(const ar_store_stmt_t *st, int col, size_t *len);
    /* SQLite begins with BEGIN IMMEDIATE: a deferred transaction that later writes can fail with
     * SQLITE_BUSY_SNAPSHOT no busy timeout can cure. */
    const char *begin_sql;
    /* Serialises migrations across processes inside the current transaction (PostgreSQL: an
     * advisory lock; SQLite: BEGIN IMMEDIATE already holds the write lock). NULL when not needed.
     */
    int (*migration_lock)(ar_store_conn_t *conn);
};

extern const ar__store_ops_t ar__store_sqlite_ops;
extern const ar__store_ops_t ar__store_pg_ops;

/* The highest $N in sql, skipping quoted strings, identifiers and comments; AR_EINVAL for a
 * parameter spelled any other way (?, :name, @name, $name, $0) or above AR_STORE_PARAMS_MAX. */
int ar__store_scan_params(const char *sql, size_t len, int *nparams);

/* Migration text with the dialect markers {{ID}} and {{BLOB}} replaced for kind; ar_free it. */
int ar__store_dialect_sql(ar_store_kind_t kind, const char *sql, size_t len, char **out);

typedef struct ar__store_migration_s {
    int64_t version;
    const char *name;
    const char *sql;
    size_t len;
} ar__store_migration_t;

/* Generated at build time from src/store/migrations/ (gen_migrations.cmake), sorted. */
extern const ar__store_migration_t ar__store_migrations[];
extern const size_t ar__store_nmigrations;

#endif
