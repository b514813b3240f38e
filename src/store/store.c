/*
 * The synchronous front: argument checks and caps that must be the same on both engines, then a
 * call through the backend's vtable. Also the one place where dialects meet (parameter scanning
 * and the migration markers), so sqlite.c and pg.c never rewrite SQL.
 */
#include <string.h>

#include "anteroom/alloc.h"
#include "internal.h"

int ar_store_open(const ar_store_opts_t *opts, ar_store_conn_t **out)
{
    if (opts == NULL || out == NULL || opts->target == NULL)
        return AR_EINVAL;
    *out = NULL;
    switch (opts->kind) {
    case AR_STORE_SQLITE:
        return ar__store_sqlite_ops.open(opts, out);
    case AR_STORE_PG:
        return ar__store_pg_ops.open(opts, out);
    }
    return AR_EINVAL;
}

void ar_store_close(ar_store_conn_t *conn)
{
    if (conn != NULL)
        conn->ops->close(conn);
}

ar_store_kind_t ar_store_kind(const ar_store_conn_t *conn)
{
    return conn->kind;
}

int ar_store_exec(ar_store_conn_t *conn, const char *sql)
{
    if (conn == NULL || sql == NULL || strlen(sql) > AR_STORE_SQL_MAX)
        return AR_EINVAL;
    return conn->ops->exec(conn, sql);
}

static int is_ident(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           (unsigned char)c >= 0x80;
}

/* Skips a quoted run starting at sql[i] (the opening quote); returns the index after it. A
 * doubled quote inside is the quote itself, which this handles by leaving and re-entering. */
static size_t skip_quoted(const char *sql, size_t len, size_t i)
{
    char q = sql[i++];
    while (i < len && sql[i] != q)
        i++;
    return i < len ? i + 1 : len;
}

static size_t skip_comment(const char *sql, size_t len, size_t i)
{
    if (sql[i] == '-') {
        while (i < len && sql[i] != '\n')
            i++;
        return i;
    }
    for (i += 2; i + 1 < len; i++)
        if (sql[i] == '*' && sql[i + 1] == '/')
            return i + 2;
    return len;
}

int ar__store_scan_params(const char *sql, size_t len, int *nparams)
{
    int max = 0;
    size_t i = 0;
    while (i < len) {
        char c = sql[i];
        char next = i + 1 < len ? sql[i + 1] : '\0';
        if (c == '\'' || c == '"' || c == '`') {
            i = skip_quoted(sql, len, i);
        } else if ((c == '-' && next == '-') || (c == '/' && next == '*')) {
            i = skip_comment(sql, len, i);
        } else if (c == '$') {
            /* Only $1..$N: SQLite reads $name as a named parameter and PostgreSQL reads $tag$ as
             * a dollar quote, so anything else would mean different things to the two. */
            long n = 0;
            size_t j = i + 1;
            while (j < len && sql[j] >= '0' && sql[j] <= '9' && n <= AR_STORE_PARAMS_MAX)
                n = n * 10 + (sql[j++] - '0');
            if (j == i + 1 || n < 1 || n > AR_STORE_PARAMS_MAX || (j < len && is_ident(sql[j])))
                return AR_EINVAL;
            if (n > max)
                max = (int)n;
            i = j;
        } else if (c == '?' || ((c == ':' || c == '@') && (next == ':' || is_ident(next)))) {
            /* SQLite's other parameter spellings, and PostgreSQL's :: cast, which SQLite would
             * reject or misread. */
            return AR_EINVAL;
        } else {
            i++;
        }
    }
    *nparams = max;
    return 0;
}

int ar_store_prepare(ar_store_conn_t *conn, const char *sql, size_t len, ar_store_stmt_t **out)
{
    if (out != NULL)
        *out = NULL;
    if (conn == NULL || sql == NULL || out == NULL || len == 0)
        return AR_EINVAL;
    if (len > AR_STORE_SQL_MAX)
        return AR_ETOOBIG;
    if (memchr(sql, '\0', len) != NULL)
        return AR_EINVAL;
    int nparams = 0;
    int rc = ar__store_scan_params(sql, len, &nparams);
    if (rc < 0)
        return rc;
    /* Backends want NUL-terminated text; the caller's may not be. */
    char *copy = ar_strndup(sql, len);
    if (copy == NULL)
        return AR_ENOMEM;
    rc = conn->ops->prepare(conn, copy, len, out);
    ar_free(copy);
    if (rc < 0)
        return rc;
    (*out)->conn = conn;
    (*out)->nparams = nparams;
    (*out)->bound = 0;
    return 0;
}

static int bind_val(ar_store_stmt_t *st, int idx, const ar__store_val_t *v)
{
    if (st == NULL)
        return AR_EINVAL;
    if (idx < 1 || idx > AR_STORE_PARAMS_MAX || idx > st->nparams)
        return AR_ERANGE;
    int rc = st->conn->ops->bind(st, idx, v);
    if (rc == 0)
        st->bound |= (uint32_t)1 << (idx - 1);
    return rc;
}

int ar_store_bind_text(ar_store_stmt_t *st, int idx, const char *s, size_t len)
{
    if (s == NULL && len > 0)
        return AR_EINVAL;
    if (len > AR_STORE_VALUE_MAX)
        return AR_ETOOBIG;
    if (len > 0 && memchr(s, '\0', len) != NULL)
        return AR_EINVAL;
    ar__store_val_t v = {.type = AR__SV_TEXT, .p = len ? s : "", .len = len};
    return bind_val(st, idx, &v);
}

int ar_store_bind_int64(ar_store_stmt_t *st, int idx, int64_t i)
{
    ar__store_val_t v = {.type = AR__SV_INT64, .i = i};
    return bind_val(st, idx, &v);
}

int ar_store_bind_blob(ar_store_stmt_t *st, int idx, const void *p, size_t len)
{
    if (p == NULL && len > 0)
        return AR_EINVAL;
    if (len > AR_STORE_VALUE_MAX)
        return AR_ETOOBIG;
    ar__store_val_t v = {.type = AR__SV_BLOB, .p = len ? p : "", .len = len};
    return bind_val(st, idx, &v);
}

int ar_store_bind_null(ar_store_stmt_t *st, int idx)
{
    ar__store_val_t v = {.type = AR__SV_NULL};
    return bind_val(st, idx, &v);
}

int ar_store_step(ar_store_stmt_t *st)
{
    if (st == NULL)
        return AR_EINVAL;
    uint32_t want = st->nparams == 32 ? UINT32_MAX : ((uint32_t)1 << st->nparams) - 1;
    if ((st->bound & want) != want)
        return AR_EINVAL;
    return st->conn->ops->step(st);
}

int64_t ar_store_changes(const ar_store_stmt_t *st)
{
    return st->conn->ops->changes(st);
}

void ar_store_reset(ar_store_stmt_t *st)
{
    st->conn->ops->reset(st);
}

void ar_store_finalize(ar_store_stmt_t *st)
{
    if (st != NULL)
        st->conn->ops->finalize(st);
}

int ar_store_col_count(const ar_store_stmt_t *st)
{
    return st->conn->ops->col_count(st);
}

static int col_ok(const ar_store_stmt_t *st, int col)
{
    return col >= 0 && col < st->conn->ops->col_count(st);
}

int ar_store_col_is_null(const ar_store_stmt_t *st, int col)
{
    return !col_ok(st, col) || st->conn->ops->col_is_null(st, col);
}

int64_t ar_store_col_int64(const ar_store_stmt_t *st, int col)
{
    return col_ok(st, col) ? st->conn->ops->col_int64(st, col) : 0;
}

const char *ar_store_col_text(const ar_store_stmt_t *st, int col, size_t *len)
{
    size_t n = 0;
    const char *p = col_ok(st, col) ? st->conn->ops->col_bytes(st, col, &n) : NULL;
    if (len != NULL)
        *len = p ? n : 0;
    return p ? p : "";
}

const void *ar_store_col_blob(const ar_store_stmt_t *st, int col, size_t *len)
{
    return ar_store_col_text(st, col, len);
}

int ar_store_begin(ar_store_conn_t *conn)
{
    return conn->ops->exec(conn, conn->ops->begin_sql);
}

int ar_store_commit(ar_store_conn_t *conn)
{
    return conn->ops->exec(conn, "COMMIT");
}

int ar_store_rollback(ar_store_conn_t *conn)
{
    return conn->ops->exec(conn, "ROLLBACK");
}

/* The dialect markers migrations may use; runtime statements need none. */
static const struct {
    const char *marker;
    const char *sqlite;
    const char *pg;
} markers[] = {
    /* A 64-bit key the engine assigns. AUTOINCREMENT because PostgreSQL's identity never reuses a
     * value, and audit rows must not get a deleted row's number. */
    {"{{ID}}", "INTEGER PRIMARY KEY AUTOINCREMENT",
     "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"},
    {"{{BLOB}}", "BLOB", "BYTEA"},
};

int ar__store_dialect_sql(ar_store_kind_t kind, const char *sql, size_t len, char **out)
{
    /* The longest replacement (52 bytes) over the shortest marker (6) is under 9. */
    size_t cap = len * 9 + 1;
    char *buf = ar_malloc(cap);
    if (buf == NULL)
        return AR_ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t m = 0;
        for (; m < sizeof markers / sizeof markers[0]; m++) {
            size_t ml = strlen(markers[m].marker);
            if (len - i >= ml && memcmp(sql + i, markers[m].marker, ml) == 0)
                break;
        }
        if (m == sizeof markers / sizeof markers[0]) {
            buf[o++] = sql[i++];
            continue;
        }
        const char *rep = kind == AR_STORE_PG ? markers[m].pg : markers[m].sqlite;
        memcpy(buf + o, rep, strlen(rep));
        o += strlen(rep);
        i += strlen(markers[m].marker);
    }
    buf[o] = '\0';
    *out = buf;
    return 0;
}
