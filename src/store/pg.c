/*
 * The PostgreSQL backend (libpq), for deployments with several app instances.
 *
 * Statements travel with PQexecParams: the text and the values go in separate protocol messages
 * (the extended query protocol), so a value can never be parsed as SQL, and a statement costs one
 * round trip. Values and results use the binary format: blobs need no escaping, integers no
 * parsing. Results are buffered whole by libpq, so queries should carry a LIMIT.
 *
 * Reconnection: before each statement the connection's socket is read without blocking; if the
 * server has closed the session (restart, failover, an administrator's terminate), the connection
 * is re-established first, so no statement is sent on a dead session and none is retried after it
 * was sent (a retry could run a write twice). A session that dies inside a transaction took the
 * transaction with it: every statement but ROLLBACK then fails with AR_ECLOSED, so a caller can
 * never run the rest of its transaction outside one.
 */
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "anteroom/alloc.h"
#include "anteroom/log.h"
#include "internal.h"

/* Type OIDs from PostgreSQL's pg_type.dat; stable across versions. */
enum {
    OID_BOOL = 16,
    OID_BYTEA = 17,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_TEXT = 25,
    OID_NUMERIC = 1700,
};

typedef struct pg_conn_s {
    ar_store_conn_t base;
    PGconn *pg;
    /* A transaction was open after the last statement that reached the server. */
    int in_tx;
} pg_conn_t;

typedef struct pg_stmt_s {
    ar_store_stmt_t base;
    char *sql;
    Oid types[AR_STORE_PARAMS_MAX];
    char *vals[AR_STORE_PARAMS_MAX];
    int lens[AR_STORE_PARAMS_MAX];
    int fmts[AR_STORE_PARAMS_MAX];
    PGresult *res;
    int row;
    int64_t changes;
} pg_stmt_t;

static pg_conn_t *pg_conn(ar_store_conn_t *c)
{
    return (pg_conn_t *)c;
}

static pg_stmt_t *pg_stmt(ar_store_stmt_t *s)
{
    return (pg_stmt_t *)s;
}

static const pg_stmt_t *pg_cstmt(const ar_store_stmt_t *s)
{
    return (const pg_stmt_t *)s;
}

static int pg_map_state(const char *st)
{
    static const struct {
        const char *prefix;
        int err;
    } map[] = {
        {"23505", AR_EEXIST}, {"23503", AR_ENOTFOUND}, {"23", AR_EINVAL},    {"40", AR_EAGAIN},
        {"55P03", AR_EAGAIN}, {"57014", AR_ETIMEDOUT}, {"57P", AR_ECLOSED},  {"53200", AR_ENOMEM},
        {"53", AR_EIO},       {"54", AR_ETOOBIG},      {"25", AR_ESTATE},    {"28", AR_EAUTH},
        {"42501", AR_EPERM},  {"42", AR_EINVAL},       {"22003", AR_ERANGE}, {"22", AR_EINVAL},
        {"08P01", AR_EINVAL}, {"08", AR_ECLOSED},
    };
    for (size_t i = 0; st != NULL && i < sizeof map / sizeof map[0]; i++)
        if (strncmp(st, map[i].prefix, strlen(map[i].prefix)) == 0)
            return map[i].err;
    return AR_EIO;
}

static int pg_result_rc(pg_conn_t *c, const PGresult *r)
{
    /* Note the transaction state while the session is known; a dead one reports UNKNOWN and the
     * last known state is what decides whether a transaction was lost. */
    PGTransactionStatusType ts = PQtransactionStatus(c->pg);
    if (ts != PQTRANS_UNKNOWN)
        c->in_tx = ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR;
    if (r == NULL)
        return PQstatus(c->pg) == CONNECTION_BAD ? AR_ECLOSED : AR_ENOMEM;
    switch (PQresultStatus(r)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
        return 0;
    case PGRES_EMPTY_QUERY:
        return AR_EINVAL;
    default:
        break;
    }
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (PQstatus(c->pg) == CONNECTION_BAD)
        return AR_ECLOSED;
    int rc = pg_map_state(state);
    if (rc == AR_EIO)
        ar_log0(AR_LOG_WARN, "store_pg_error"); /* never the message: it can quote values */
    return rc;
}

/*
 * Makes sure the session is alive before a statement is sent (see the top of the file).
 * Returns 0 to go ahead, 1 when a ROLLBACK has nothing left to roll back, or AR_ECLOSED.
 */
static int pg_ready(pg_conn_t *c, int rollback)
{
    /* PQconsumeInput reads what the server sent while we were idle, without sending anything.
     * A closed session leaves a FATAL goodbye and then EOF; one call may stop after the message,
     * the second then meets the EOF and turns the status to CONNECTION_BAD. On a live session
     * both return at once (the socket is non-blocking). */
    for (int i = 0; i < 2 && PQstatus(c->pg) == CONNECTION_OK; i++)
        (void)PQconsumeInput(c->pg);
    if (PQstatus(c->pg) == CONNECTION_OK)
        return 0;
    if (c->in_tx && !rollback)
        return AR_ECLOSED;
    c->in_tx = 0;
    PQreset(c->pg);
    if (PQstatus(c->pg) != CONNECTION_OK) {
        ar_log0(AR_LOG_WARN, "store_pg_reconnect_failed");
        return AR_ECLOSED;
    }
    ar_log0(AR_LOG_INFO, "store_pg_reconnected");
    return rollback ? 1 : 0;
}

static int pg_exec(ar_store_conn_t *conn, const char *sql)
{
    pg_conn_t *c = pg_conn(conn);
    /* ar_store_rollback passes this literal: rolling back a transaction that died with its
     * session succeeds, and is what clears the lost-transaction state. */
    int rc = pg_ready(c, strcmp(sql, "ROLLBACK") == 0);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    PGresult *r = PQexec(c->pg, sql);
    rc = pg_result_rc(c, r);
    PQclear(r);
    return rc;
}

static void pg_close(ar_store_conn_t *conn)
{
    pg_conn_t *c = pg_conn(conn);
    PQfinish(c->pg);
    ar_free(c);
}

static void pg_notice_cb(void *arg, const PGresult *res)
{
    /* libpq prints notices (such as "there is no transaction in progress") to stderr, outside our
     * JSON log lines; they are harmless, so they are dropped. */
    (void)arg;
    (void)res;
}

static int pg_open(const ar_store_opts_t *opts, ar_store_conn_t **out)
{
    pg_conn_t *c = ar_calloc(1, sizeof(*c));
    if (c == NULL)
        return AR_ENOMEM;
    /* The target is expanded as a connection string (expand_dbname), and the keys after it
     * override it, so verify-full cannot be weakened by the string and nothing is concatenated. */
    const char *keys[8] = {"dbname", "client_encoding", "connect_timeout", "application_name"};
    const char *vals[8] = {opts->target, "UTF8", "10", "anteroom"};
    int n = 4;
    if (opts->pg_tls_verify_full) {
        keys[n] = "sslmode";
        vals[n++] = "verify-full";
        if (opts->pg_root_cert != NULL) {
            keys[n] = "sslrootcert";
            vals[n++] = opts->pg_root_cert;
        }
    }
    keys[n] = NULL;
    vals[n] = NULL;
    c->pg = PQconnectdbParams(keys, vals, 1);
    if (c->pg == NULL) {
        ar_free(c);
        return AR_ENOMEM;
    }
    if (PQstatus(c->pg) != CONNECTION_OK) {
        int rc = PQconnectionNeedsPassword(c->pg) || PQconnectionUsedPassword(c->pg) ? AR_EAUTH
                                                                                     : AR_ECLOSED;
        /* libpq's message names hosts, ports and users from the operator's configuration and is
         * what an operator needs to fix it; it never carries a user's data. */
        ar_log(AR_LOG_ERROR, "store_pg_connect_failed", AR_LF_OPER("why", PQerrorMessage(c->pg)));
        PQfinish(c->pg);
        ar_free(c);
        return rc;
    }
    PQsetNoticeReceiver(c->pg, pg_notice_cb, NULL);
    c->base.ops = &ar__store_pg_ops;
    c->base.kind = AR_STORE_PG;
    *out = &c->base;
    return 0;
}

static int pg_prepare(ar_store_conn_t *conn, const char *sql, size_t len, ar_store_stmt_t **out)
{
    (void)conn;
    pg_stmt_t *s = ar_calloc(1, sizeof(*s));
    if (s == NULL)
        return AR_ENOMEM;
    s->sql = ar_strndup(sql, len);
    if (s->sql == NULL) {
        ar_free(s);
        return AR_ENOMEM;
    }
    s->row = -1;
    *out = &s->base;
    return 0;
}

static int pg_bind(ar_store_stmt_t *st, int idx, const ar__store_val_t *v)
{
    pg_stmt_t *s = pg_stmt(st);
    if (s->res != NULL)
        return AR_ESTATE; /* reset first: binding mid-result is a bug on SQLite too */
    int i = idx - 1;
    char *val = NULL;
    size_t len = 0;
    Oid type = 0;
    if (v->type == AR__SV_INT64) {
        uint64_t u = (uint64_t)v->i;
        val = ar_malloc(8);
        for (int b = 0; val != NULL && b < 8; b++)
            val[b] = (char)(u >> (56 - 8 * b));
        len = 8;
        type = OID_INT8;
    } else if (v->type != AR__SV_NULL) {
        /* Binary text is the raw UTF-8 bytes (the server still checks the encoding), binary
         * bytea the raw bytes: no escaping anywhere. */
        val = ar_malloc(v->len ? v->len : 1);
        if (val != NULL && v->len)
            memcpy(val, v->p, v->len);
        len = v->len;
        type = v->type == AR__SV_TEXT ? OID_TEXT : OID_BYTEA;
    }
    if (v->type != AR__SV_NULL && val == NULL)
        return AR_ENOMEM;
    ar_free(s->vals[i]);
    s->vals[i] = val;
    s->lens[i] = (int)len;
    s->fmts[i] = 1;
    /* A NULL is sent untyped so the server infers its type from where it stands. */
    s->types[i] = type;
    return 0;
}

static int pg_step(ar_store_stmt_t *st)
{
    pg_stmt_t *s = pg_stmt(st);
    pg_conn_t *c = pg_conn(st->conn);
    if (s->res == NULL) {
        int rc = pg_ready(c, 0);
        if (rc < 0)
            return rc;
        PGresult *r = PQexecParams(c->pg, s->sql, st->nparams, s->types,
                                   (const char *const *)s->vals, s->lens, s->fmts, 1);
        rc = pg_result_rc(c, r);
        if (rc < 0) {
            PQclear(r);
            return rc;
        }
        s->res = r;
        s->row = -1;
        /* PQcmdTuples counts a SELECT's rows too; the interface counts only rows written. */
        s->changes =
            strncmp(PQcmdStatus(r), "SELECT", 6) == 0 ? 0 : strtoll(PQcmdTuples(r), NULL, 10);
    }
    if (s->row + 1 < PQntuples(s->res)) {
        s->row++;
        return AR_STORE_ROW;
    }
    s->row = PQntuples(s->res);
    return AR_STORE_DONE;
}

static int64_t pg_changes(const ar_store_stmt_t *st)
{
    return pg_cstmt(st)->changes;
}

static void pg_reset(ar_store_stmt_t *st)
{
    pg_stmt_t *s = pg_stmt(st);
    PQclear(s->res);
    s->res = NULL;
    s->row = -1;
    s->changes = 0;
}

static void pg_finalize(ar_store_stmt_t *st)
{
    pg_stmt_t *s = pg_stmt(st);
    PQclear(s->res);
    for (int i = 0; i < AR_STORE_PARAMS_MAX; i++)
        ar_free(s->vals[i]);
    ar_free(s->sql);
    ar_free(s);
}

/* Whether a row is current: columns exist only between a ROW and the next step. */
static int pg_on_row(const pg_stmt_t *s)
{
    return s->res != NULL && s->row >= 0 && s->row < PQntuples(s->res);
}

static int pg_col_count(const ar_store_stmt_t *st)
{
    const pg_stmt_t *s = pg_cstmt(st);
    return pg_on_row(s) ? PQnfields(s->res) : 0;
}

static int pg_col_is_null(const ar_store_stmt_t *st, int col)
{
    const pg_stmt_t *s = pg_cstmt(st);
    return PQgetisnull(s->res, s->row, col);
}

static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Binary numeric: ndigits, weight, sign, dscale (16 bits each), then base-10000 digits, the
 * first worth 10000^weight. Only the integer part is read; PostgreSQL's sum(bigint) is numeric. */
static int64_t numeric_int64(const unsigned char *p, int n)
{
    if (n < 8)
        return 0;
    int ndigits = (int)be(p, 2);
    int weight = (int16_t)be(p + 2, 2);
    unsigned sign = (unsigned)be(p + 4, 2);
    if (n < 8 + 2 * ndigits || (sign != 0 && sign != 0x4000))
        return 0;
    int64_t v = 0;
    for (int i = 0; i <= weight; i++) {
        int64_t d = i < ndigits ? (int64_t)be(p + 8 + (size_t)2 * (size_t)i, 2) : 0;
        if (__builtin_mul_overflow(v, 10000, &v) || __builtin_add_overflow(v, d, &v))
            return 0;
    }
    return sign ? -v : v;
}

static int64_t pg_col_int64(const ar_store_stmt_t *st, int col)
{
    const pg_stmt_t *s = pg_cstmt(st);
    if (PQgetisnull(s->res, s->row, col))
        return 0;
    const unsigned char *p = (const unsigned char *)PQgetvalue(s->res, s->row, col);
    int n = PQgetlength(s->res, s->row, col);
    switch (PQftype(s->res, col)) {
    case OID_INT8:
        return n == 8 ? (int64_t)be(p, 8) : 0;
    case OID_INT4:
        return n == 4 ? (int32_t)(uint32_t)be(p, 4) : 0;
    case OID_INT2:
        return n == 2 ? (int16_t)(uint16_t)be(p, 2) : 0;
    case OID_BOOL:
        return n == 1 ? p[0] != 0 : 0;
    case OID_NUMERIC:
        return numeric_int64(p, n);
    default:
        return 0;
    }
}

static const void *pg_col_bytes(const ar_store_stmt_t *st, int col, size_t *len)
{
    const pg_stmt_t *s = pg_cstmt(st);
    /* libpq ends every value with a NUL, binary ones included, so text is a C string too. */
    *len = (size_t)PQgetlength(s->res, s->row, col);
    return PQgetvalue(s->res, s->row, col);
}

static int pg_migration_lock(ar_store_conn_t *conn)
{
    /* A transaction-scoped advisory lock: app instances starting together apply each migration
     * once, and the lock goes with the transaction even if the process dies. The key is 'ante'. */
    return pg_exec(conn, "SELECT pg_advisory_xact_lock(1634628709)");
}

const ar__store_ops_t ar__store_pg_ops = {
    .open = pg_open,
    .close = pg_close,
    .exec = pg_exec,
    .prepare = pg_prepare,
    .bind = pg_bind,
    .step = pg_step,
    .changes = pg_changes,
    .reset = pg_reset,
    .finalize = pg_finalize,
    .col_count = pg_col_count,
    .col_is_null = pg_col_is_null,
    .col_int64 = pg_col_int64,
    .col_bytes = pg_col_bytes,
    .begin_sql = "BEGIN",
    .migration_lock = pg_migration_lock,
};
