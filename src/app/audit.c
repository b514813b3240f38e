/*
 * The hash-chained audit log (audit.h). Appends serialize on the audit_head row, so the chain
 * stays linear with any number of app instances on one database.
 */
#include "audit.h"
#include "sql.h"

#include <sodium.h>
#include <string.h>

#define PAGE 500

static void put64(crypto_generichash_state *h, int64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
    crypto_generichash_update(h, b, sizeof(b));
}

/* BLAKE2b-256 over prev || at || actor || clinic || len(event) || event [|| subject], fixed
 * widths; the subject only when there is one, so entries without it hash as before it existed. */
static void entry_hash(const uint8_t prev[32], int64_t at, int64_t actor, int64_t subject,
                       int64_t clinic, const char *event, size_t elen, uint8_t out[32])
{
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    crypto_generichash_update(&h, prev, 32);
    put64(&h, at);
    put64(&h, actor);
    put64(&h, clinic);
    uint8_t len = (uint8_t)(elen > 255 ? 255 : elen);
    crypto_generichash_update(&h, &len, 1);
    crypto_generichash_update(&h, (const uint8_t *)event, len);
    if (subject != 0)
        put64(&h, subject);
    crypto_generichash_final(&h, out, 32);
}

static int bind_id(ar_store_stmt_t *st, int idx, int64_t v)
{
    return v != 0 ? ar_store_bind_int64(st, idx, v) : ar_store_bind_null(st, idx);
}

int ar_app_audit_append(ar_store_conn_t *c, int64_t at, int64_t actor, int64_t clinic,
                        const char *event)
{
    return ar_app_audit_append_subject(c, at, actor, 0, clinic, event);
}

int ar_app_audit_append_subject(ar_store_conn_t *c, int64_t at, int64_t actor, int64_t subject,
                                int64_t clinic, const char *event)
{
    static const uint8_t zero[32];
    ar_store_stmt_t *st;
    int rc = ar__prep(c,
                      "INSERT INTO audit_head (id, n, hash) VALUES (1, 0, $1) "
                      "ON CONFLICT (id) DO NOTHING",
                      &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_blob(st, 1, zero, sizeof(zero));
    if (rc == 0)
        rc = ar_store_step(st);
    ar_store_finalize(st);
    if (rc < 0)
        return rc;
    /* Taking the head first is what serializes appenders. */
    rc = ar__prep(c, "UPDATE audit_head SET n = n + 1 WHERE id = 1 RETURNING hash", &st);
    if (rc < 0)
        return rc;
    uint8_t prev[32], hash[32];
    rc = ar_store_step(st);
    if (rc == AR_STORE_ROW) {
        size_t len;
        const void *p = ar_store_col_blob(st, 0, &len);
        rc = len == sizeof(prev) ? 0 : AR_EINVAL;
        if (rc == 0)
            memcpy(prev, p, sizeof(prev));
    } else if (rc == AR_STORE_DONE) {
        rc = AR_ENOTFOUND;
    }
    ar_store_finalize(st);
    if (rc < 0)
        return rc;
    entry_hash(prev, at, actor, subject, clinic, event, strlen(event), hash);
    rc = ar__prep(c,
                  "INSERT INTO audit_log (at, actor_account_id, clinic_id, event, prev_hash, hash, "
                  "subject_account_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                  &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, at);
    if (rc == 0)
        rc = bind_id(st, 2, actor);
    if (rc == 0)
        rc = bind_id(st, 3, clinic);
    if (rc == 0)
        rc = ar_store_bind_text(st, 4, event, strlen(event));
    if (rc == 0)
        rc = ar_store_bind_blob(st, 5, prev, sizeof(prev));
    if (rc == 0)
        rc = ar_store_bind_blob(st, 6, hash, sizeof(hash));
    if (rc == 0)
        rc = bind_id(st, 7, subject);
    if (rc == 0)
        rc = ar_store_step(st);
    ar_store_finalize(st);
    if (rc < 0)
        return rc;
    rc = ar__prep(c, "UPDATE audit_head SET hash = $1 WHERE id = 1", &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_blob(st, 1, hash, sizeof(hash));
    if (rc == 0)
        rc = ar_store_step(st);
    ar_store_finalize(st);
    return rc < 0 ? rc : 0;
}

int ar_app_audit_append_tx(ar_store_conn_t *c, int64_t at, int64_t actor, int64_t clinic,
                           const char *event)
{
    int rc = ar_store_begin(c);
    if (rc < 0)
        return rc;
    rc = ar_app_audit_append(c, at, actor, clinic, event);
    rc = ar__finish(c, rc);
    return rc;
}

/* An anchor: the head an operator recorded outside the database (entry count and hash). */
typedef struct {
    int64_t n;
    const uint8_t *hash;
    int seen; /* the chain's entry number n had that hash */
} anchor_t;

/* Checks one page of rows after *seq; returns the number read, or a negative code. */
static int verify_page(ar_store_conn_t *c, int64_t *seq, uint8_t last[32], int64_t *rows,
                       anchor_t *a)
{
    ar_store_stmt_t *st;
    int rc = ar__prep(c,
                      "SELECT seq, at, actor_account_id, clinic_id, event, prev_hash, hash, "
                      "subject_account_id FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT 500",
                      &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, *seq);
    int n = 0;
    while (rc == 0 && (rc = ar_store_step(st)) == AR_STORE_ROW) {
        size_t elen, plen, hlen;
        const char *event = ar_store_col_text(st, 4, &elen);
        const void *prev = ar_store_col_blob(st, 5, &plen);
        const void *hash = ar_store_col_blob(st, 6, &hlen);
        uint8_t want[32];
        if (plen != 32 || hlen != 32 || sodium_memcmp(prev, last, 32) != 0) {
            rc = AR_EAUTH;
            break;
        }
        entry_hash(last, ar_store_col_int64(st, 1), ar_store_col_int64(st, 2),
                   ar_store_col_int64(st, 7), ar_store_col_int64(st, 3), event, elen, want);
        if (sodium_memcmp(want, hash, 32) != 0) {
            rc = AR_EAUTH;
            break;
        }
        memcpy(last, want, 32);
        *seq = ar_store_col_int64(st, 0);
        (*rows)++;
        if (a != NULL && *rows == a->n)
            a->seen = sodium_memcmp(want, a->hash, 32) == 0;
        n++;
        rc = 0;
    }
    ar_store_finalize(st);
    return rc < 0 ? rc : n;
}

static int verify(ar_store_conn_t *c, int64_t *rows, anchor_t *a)
{
    uint8_t last[32] = {0};
    int64_t seq = 0;
    *rows = 0;
    int n;
    do {
        n = verify_page(c, &seq, last, rows, a);
        if (n < 0)
            return n;
    } while (n == PAGE);
    ar_store_stmt_t *st;
    int rc = ar__prep(c, "SELECT n, hash FROM audit_head WHERE id = 1", &st);
    if (rc < 0)
        return rc;
    rc = ar_store_step(st);
    if (rc == AR_STORE_ROW) {
        size_t hlen;
        const void *h = ar_store_col_blob(st, 1, &hlen);
        rc = ar_store_col_int64(st, 0) == *rows && hlen == 32 && sodium_memcmp(h, last, 32) == 0
                 ? 0
                 : AR_EAUTH;
    } else if (rc == AR_STORE_DONE) {
        rc = *rows == 0 ? 0 : AR_EAUTH;
    }
    ar_store_finalize(st);
    return rc;
}

int ar_app_audit_verify(ar_store_conn_t *c, int64_t *rows)
{
    return verify(c, rows, NULL);
}

int ar_app_audit_verify_anchor(ar_store_conn_t *c, int64_t n, const uint8_t hash[32], int64_t *rows)
{
    anchor_t a = {.n = n, .hash = hash};
    int rc = verify(c, rows, &a);
    if (rc < 0)
        return rc;
    /* An empty anchor (0 entries, zero hash) holds for any chain; else entry n must be it. */
    if (n == 0)
        return sodium_is_zero(hash, 32) ? 0 : AR_EAUTH;
    return a.seen ? 0 : AR_EAUTH;
}

int ar_app_audit_head(ar_store_conn_t *c, int64_t *n, uint8_t hash[32])
{
    ar_store_stmt_t *st;
    int rc = ar__prep(c, "SELECT n, hash FROM audit_head WHERE id = 1", &st);
    if (rc < 0)
        return rc;
    *n = 0;
    memset(hash, 0, 32);
    rc = ar_store_step(st);
    if (rc == AR_STORE_ROW) {
        size_t hlen;
        const void *h = ar_store_col_blob(st, 1, &hlen);
        *n = ar_store_col_int64(st, 0);
        if (hlen == 32)
            memcpy(hash, h, 32);
        rc = hlen == 32 ? 0 : AR_EPARSE;
    } else if (rc == AR_STORE_DONE) {
        rc = 0;
    }
    ar_store_finalize(st);
    return rc;
}
