/*
 * Secrets at rest and audit anchoring, on both stores (CTest: app_secrets_sqlite,
 * app_secrets_pg):
 *   - signing keys and TURN secrets are written sealed under the seal key, open with it and
 *     with no other (a wrong key stops ar_app_keys_ensure, so the app does not start);
 *   - rows in clear (written before migration 0006, or by an older instance) are read, and
 *     sealed in place at the next start, to the same values;
 *   - a change of seal key re-seals keys, TURN secrets and TOTP secrets in one transaction, and
 *     changes nothing when a row opens with neither key;
 *   - the audit chain's head, recorded outside, catches a chain rebuilt from scratch, which the
 *     chain alone cannot.
 *   test_secrets sqlite <file> | test_secrets pg (AR_PG_CONNINFO, scripts/pg-test-server)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "accounts.h"
#include "audit.h"
#include "keys.h"

#include "anteroom/rand.h"
#include "anteroom/store.h"

#include "store_fixture.h"

static ar_store_opts_t opts;
static ar_store_conn_t *db;
static uint8_t key_a[32], key_b[32], key_c[32];

static void wipe(void)
{
    ar_test_store_wipe(&opts);
}

static int setup(void **state)
{
    (void)state;
    wipe();
    int rc = ar_store_open(&opts, &db);
    return rc ? rc : ar_store_migrate(db);
}

static int teardown(void **state)
{
    (void)state;
    ar_store_close(db);
    return 0;
}

static ar_store_stmt_t *q(const char *sql)
{
    ar_store_stmt_t *st;
    assert_int_equal(ar_store_prepare(db, sql, strlen(sql), &st), 0);
    return st;
}

/* The one row of a query: its first column as a blob copy (len) and its second as an int. */
static int64_t row(const char *sql, uint8_t *blob, size_t cap, size_t *len)
{
    ar_store_stmt_t *st = q(sql);
    assert_int_equal(ar_store_step(st), AR_STORE_ROW);
    const void *v = ar_store_col_blob(st, 0, len);
    assert_true(*len <= cap);
    memcpy(blob, v, *len);
    int64_t n = ar_store_col_int64(st, 1);
    ar_store_finalize(st);
    return n;
}

/* The key's secret half belongs to its public half. */
static void assert_pair(const ar_token_key_t *k)
{
    uint8_t pk[32];
    crypto_sign_ed25519_sk_to_pk(pk, k->sk);
    assert_memory_equal(pk, k->pk, 32);
}

static const char turn1[] = "first-turn-secret-0123456789";

static void test_new_rows_sealed(void **state)
{
    (void)state;
    assert_int_equal(ar_app_keys_ensure(db, key_a, 1000, turn1), 0);
    uint8_t v[256];
    size_t len;
    /* The signing key: sealed (nonce, MAC and 64 bytes), and not the key in clear. */
    assert_int_equal(row("SELECT secret_key, sealed FROM token_keys", v, sizeof v, &len), 1);
    assert_int_equal(len, AR_SEALED_BYTES(64));
    ar_token_key_t k;
    assert_int_equal(ar_app_keys_newest(db, key_a, 1000, &k), 0);
    assert_pair(&k);
    assert_null(memmem(v, len, k.sk, 32));
    /* The TURN secret: sealed text that does not hold the secret. */
    assert_int_equal(row("SELECT secret, sealed FROM turn_secrets", v, sizeof v, &len), 1);
    assert_null(memmem(v, len, turn1, strlen(turn1)));
    char s[AR_APP_TURN_SECRET_MAX];
    assert_int_equal(ar_app_turn_secret_newest(db, key_a, 1000, s, sizeof s), 0);
    assert_string_equal(s, turn1);
    /* Another key opens nothing, and the start refuses it. */
    assert_int_equal(ar_app_keys_newest(db, key_b, 1000, &k), AR_EAUTH);
    assert_int_equal(ar_app_turn_secret_newest(db, key_b, 1000, s, sizeof s), AR_EAUTH);
    assert_int_equal(ar_app_keys_ensure(db, key_b, 1000, turn1), AR_EAUTH);
    /* A rotation seals too; the newest opens. */
    char kid[33];
    assert_int_equal(ar_app_keys_rotate(db, key_a, 1001, 7200, kid), 0);
    assert_int_equal(ar_app_keys_newest(db, key_a, 1001, &k), 0);
    assert_string_equal(k.kid, kid);
    assert_pair(&k);
    assert_int_equal(ar_app_turn_secret_rotate(db, key_a, 1002, 3600, NULL, s, sizeof s), 0);
    char s2[AR_APP_TURN_SECRET_MAX];
    assert_int_equal(ar_app_turn_secret_newest(db, key_a, 1002, s2, sizeof s2), 0);
    assert_string_equal(s, s2);
    ar_store_stmt_t *st = q("SELECT count(*) FROM token_keys WHERE sealed = 0");
    assert_int_equal(ar_store_step(st), AR_STORE_ROW);
    assert_int_equal(ar_store_col_int64(st, 0), 0);
    ar_store_finalize(st);
    sodium_memzero(&k, sizeof k);
}

/* What migration 0006 leaves of a store written before it: rows in clear, sealed = 0. */
static void insert_clear_rows(ar_token_key_t *k, const char *secret)
{
    assert_int_equal(ar_token_key_generate(k, "kold"), 0);
    ar_store_stmt_t *st = q("INSERT INTO token_keys (kid, public_key, secret_key, created_at) "
                            "VALUES ('kold', $1, $2, 900)");
    assert_int_equal(ar_store_bind_blob(st, 1, k->pk, 32), 0);
    assert_int_equal(ar_store_bind_blob(st, 2, k->sk, 64), 0);
    assert_int_equal(ar_store_step(st), AR_STORE_DONE);
    ar_store_finalize(st);
    st = q("INSERT INTO turn_secrets (secret, created_at) VALUES ($1, 900)");
    assert_int_equal(ar_store_bind_text(st, 1, secret, strlen(secret)), 0);
    assert_int_equal(ar_store_step(st), AR_STORE_DONE);
    ar_store_finalize(st);
}

static void test_clear_rows_sealed_at_start(void **state)
{
    (void)state;
    ar_token_key_t old, k;
    static const char legacy[] = "legacy-turn-secret-abcdef";
    insert_clear_rows(&old, legacy);
    /* Read in clear meanwhile (an older instance may still be writing such rows). */
    assert_int_equal(ar_app_keys_newest(db, key_a, 1000, &k), 0);
    assert_memory_equal(k.sk, old.sk, 64);
    /* The start seals them in place, to the same values, and makes nothing new. */
    assert_int_equal(ar_app_keys_ensure(db, key_a, 1000, legacy), 0);
    uint8_t v[256];
    size_t len;
    assert_int_equal(row("SELECT secret_key, sealed FROM token_keys", v, sizeof v, &len), 1);
    assert_int_equal(len, AR_SEALED_BYTES(64));
    assert_null(memmem(v, len, old.sk, 32));
    assert_int_equal(row("SELECT secret, sealed FROM turn_secrets", v, sizeof v, &len), 1);
    assert_null(memmem(v, len, legacy, strlen(legacy)));
    assert_int_equal(ar_app_keys_newest(db, key_a, 1000, &k), 0);
    assert_string_equal(k.kid, "kold");
    assert_memory_equal(k.sk, old.sk, 64);
    char s[AR_APP_TURN_SECRET_MAX];
    assert_int_equal(ar_app_turn_secret_newest(db, key_a, 1000, s, sizeof s), 0);
    assert_string_equal(s, legacy);
    /* Again: nothing left in clear. */
    size_t n = 99;
    assert_int_equal(ar_app_secrets_seal(db, key_a, &n), 0);
    assert_int_equal(n, 0);
    sodium_memzero(&old, sizeof old);
    sodium_memzero(&k, sizeof k);
}

static int64_t add_account(const char *email, const uint8_t *seal)
{
    uint8_t secret[20], box[AR_SEALED_BYTES(20)], pend[AR_SEALED_BYTES(20)];
    randombytes_buf(secret, sizeof secret);
    ar_app_seal(seal, secret, sizeof secret, box);
    ar_app_seal(seal, secret, sizeof secret, pend);
    ar_store_stmt_t *st = q("INSERT INTO accounts (email, display_name, created_at, totp_secret, "
                            "totp_pending) VALUES ($1, 'x', 1, $2, $3) RETURNING id");
    assert_int_equal(ar_store_bind_text(st, 1, email, strlen(email)), 0);
    assert_int_equal(ar_store_bind_blob(st, 2, box, sizeof box), 0);
    assert_int_equal(ar_store_bind_blob(st, 3, pend, sizeof pend), 0);
    assert_int_equal(ar_store_step(st), AR_STORE_ROW);
    int64_t id = ar_store_col_int64(st, 0);
    ar_store_finalize(st);
    return id;
}

/* Whether the account's enrolled and pending TOTP secrets open with seal. */
static int totp_opens(int64_t id, const uint8_t *seal)
{
    ar_store_stmt_t *st = q("SELECT totp_secret, totp_pending FROM accounts WHERE id = $1");
    assert_int_equal(ar_store_bind_int64(st, 1, id), 0);
    assert_int_equal(ar_store_step(st), AR_STORE_ROW);
    int ok = 1;
    for (int i = 0; i < 2; i++) {
        size_t len;
        const uint8_t *v = ar_store_col_blob(st, i, &len);
        uint8_t out[64];
        ok = ok && len == AR_SEALED_BYTES(20) && ar_app_unseal(seal, v, len, out) == 0;
    }
    ar_store_finalize(st);
    return ok;
}

static void test_reseal(void **state)
{
    (void)state;
    assert_int_equal(ar_app_keys_ensure(db, key_a, 1000, turn1), 0);
    /* Retired keys stay: more rows than one page of the walk (32). */
    char kid[33];
    for (int i = 0; i < 40; i++)
        assert_int_equal(ar_app_keys_rotate(db, key_a, 1000 + i, 7200, kid), 0);
    int64_t acct[70];
    char email[32];
    /* More accounts than one page of the re-sealing walk. */
    for (int i = 0; i < 70; i++) {
        snprintf(email, sizeof email, "u%d@example.org", i);
        acct[i] = add_account(email, key_a);
    }
    size_t n = 0;
    assert_int_equal(ar_app_secrets_reseal(db, key_a, key_b, &n), 0);
    /* 41 keys, a TURN secret, two TOTP secrets per account */
    assert_int_equal(n, 41 + 1 + 70 * 2);
    ar_token_key_t k;
    assert_int_equal(ar_app_keys_newest(db, key_b, 1039, &k), 0);
    assert_string_equal(k.kid, kid);
    assert_pair(&k);
    assert_int_equal(ar_app_keys_newest(db, key_a, 1039, &k), AR_EAUTH);
    assert_int_equal(ar_app_keys_ensure(db, key_b, 1039, turn1), 0);
    char s[AR_APP_TURN_SECRET_MAX];
    assert_int_equal(ar_app_turn_secret_newest(db, key_b, 1000, s, sizeof s), 0);
    assert_string_equal(s, turn1);
    for (int i = 0; i < 70; i++) {
        assert_true(totp_opens(acct[i], key_b));
        assert_false(totp_opens(acct[i], key_a));
    }
    /* Rows already under the new key are left. */
    assert_int_equal(ar_app_secrets_reseal(db, key_a, key_b, &n), 0);
    assert_int_equal(n, 0);
    /* One row under a third key: nothing changes, not even the rows that would open. */
    int64_t under_a = add_account("late@example.org", key_a);
    (void)add_account("other@example.org", key_c);
    assert_int_equal(ar_app_secrets_reseal(db, key_a, key_b, &n), AR_EAUTH);
    assert_true(totp_opens(under_a, key_a));
    assert_false(totp_opens(under_a, key_b));
    sodium_memzero(&k, sizeof k);
}

static void append(int64_t at, const char *ev)
{
    assert_int_equal(ar_app_audit_append_tx(db, at, 1, 2, ev), 0);
}

static void test_audit_anchor(void **state)
{
    (void)state;
    int64_t n, rows;
    uint8_t h[32], zero[32] = {0};
    assert_int_equal(ar_app_audit_head(db, &n, h), 0);
    assert_int_equal(n, 0);
    assert_memory_equal(h, zero, 32);
    assert_int_equal(ar_app_audit_verify_anchor(db, 0, zero, &rows), 0);
    append(10, "signin");
    append(11, "signout");
    append(12, "signin");
    assert_int_equal(ar_app_audit_head(db, &n, h), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ar_app_audit_verify_anchor(db, 3, h, &rows), 0);
    /* The chain grows; the recorded head stays on it. */
    append(13, "signin_failed");
    append(14, "signin");
    assert_int_equal(ar_app_audit_verify_anchor(db, 3, h, &rows), 0);
    assert_int_equal(rows, 5);
    assert_int_equal(ar_app_audit_verify_anchor(db, 4, h, &rows), AR_EAUTH);
    assert_int_equal(ar_app_audit_verify_anchor(db, 6, h, &rows), AR_EAUTH);
    /* Whoever can write the database rebuilds the chain without entry 2: it verifies on its
     * own, but not against the head recorded outside. */
    assert_int_equal(ar_store_exec(db, "DELETE FROM audit_log"), 0);
    assert_int_equal(ar_store_exec(db, "DELETE FROM audit_head"), 0);
    append(10, "signin");
    append(12, "signin");
    append(13, "signin_failed");
    append(14, "signin");
    append(15, "signin");
    assert_int_equal(ar_app_audit_verify(db, &rows), 0);
    assert_int_equal(rows, 5);
    assert_int_equal(ar_app_audit_verify_anchor(db, 3, h, &rows), AR_EAUTH);
}

int main(int argc, char **argv)
{
    if (ar_test_store_args(argc, argv, "test_secrets", &opts) < 0)
        return 2;
    if (ar_rand_init() != 0)
        return 1;
    randombytes_buf(key_a, sizeof key_a);
    randombytes_buf(key_b, sizeof key_b);
    randombytes_buf(key_c, sizeof key_c);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_rows_sealed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clear_rows_sealed_at_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reseal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_anchor, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (opts.kind == AR_STORE_SQLITE)
        wipe();
    return rc;
}
