/*
 * Signing keys and TURN secrets in the store (keys.h). The secret halves sit in the store next
 * to the password hashes: whoever can read the store can already act as the app. Sealing them
 * under a key file outside the database is a planned hardening (docs/tokens.md).
 */
#include "keys.h"

#include "anteroom/rand.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

static int prep(ar_store_conn_t *c, const char *sql, ar_store_stmt_t **st)
{
    return ar_store_prepare(c, sql, strlen(sql), st);
}

/* Retires every live row of table older than now, after overlap_s. */
static int retire(ar_store_conn_t *c, const char *sql, int64_t now, int64_t overlap_s)
{
    ar_store_stmt_t *st;
    int rc = prep(c, sql, &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, now + overlap_s);
    if (rc == 0)
        rc = ar_store_step(st);
    ar_store_finalize(st);
    return rc < 0 ? rc : 0;
}

int ar_app_keys_rotate(ar_store_conn_t *c, int64_t now, int64_t overlap_s, char *kid)
{
    char id[32] = "k";
    if (ar_rand_id(id + 1, sizeof(id) - 1, 12) < 0)
        return AR_EINVAL;
    ar_token_key_t key;
    int rc = ar_token_key_generate(&key, id);
    if (rc < 0)
        return rc;
    rc = ar_store_begin(c);
    if (rc == 0)
        rc = retire(c, "UPDATE token_keys SET retire_at = $1 WHERE retire_at IS NULL", now,
                    overlap_s);
    ar_store_stmt_t *st;
    if (rc == 0)
        rc = prep(c,
                  "INSERT INTO token_keys (kid, public_key, secret_key, created_at) "
                  "VALUES ($1, $2, $3, $4)",
                  &st);
    if (rc == 0) {
        rc = ar_store_bind_text(st, 1, id, strlen(id));
        if (rc == 0)
            rc = ar_store_bind_blob(st, 2, key.pk, sizeof(key.pk));
        if (rc == 0)
            rc = ar_store_bind_blob(st, 3, key.sk, sizeof(key.sk));
        if (rc == 0)
            rc = ar_store_bind_int64(st, 4, now);
        if (rc == 0)
            rc = ar_store_step(st);
        ar_store_finalize(st);
    }
    sodium_memzero(&key, sizeof(key));
    rc = rc < 0 ? rc : ar_store_commit(c);
    if (rc < 0) {
        (void)ar_store_rollback(c);
        return rc;
    }
    memcpy(kid, id, strlen(id) + 1);
    return 0;
}

int ar_app_keys_newest(ar_store_conn_t *c, int64_t now, ar_token_key_t *out)
{
    ar_store_stmt_t *st;
    int rc = prep(c,
                  "SELECT kid, public_key, secret_key FROM token_keys "
                  "WHERE retire_at IS NULL OR retire_at > $1 ORDER BY created_at DESC, kid "
                  "LIMIT 1",
                  &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, now);
    if (rc == 0)
        rc = ar_store_step(st);
    if (rc == AR_STORE_ROW) {
        size_t kl, pl, sl;
        const char *kid = ar_store_col_text(st, 0, &kl);
        const void *pk = ar_store_col_blob(st, 1, &pl);
        const void *sk = ar_store_col_blob(st, 2, &sl);
        memset(out, 0, sizeof(*out));
        if (kl >= sizeof(out->kid) || pl != sizeof(out->pk) || sl != sizeof(out->sk)) {
            rc = AR_EPARSE;
        } else {
            memcpy(out->kid, kid, kl + 1);
            memcpy(out->pk, pk, pl);
            memcpy(out->sk, sk, sl);
            out->has_sk = 1;
            rc = 0;
        }
    } else if (rc == AR_STORE_DONE) {
        rc = AR_ENOTFOUND;
    }
    ar_store_finalize(st);
    return rc;
}

/* Calls fn for every live key, newest first. */
static int each_public(ar_store_conn_t *c, int64_t now,
                       int (*fn)(void *arg, const char *kid, const uint8_t *pk, int64_t retire,
                                 int has_retire),
                       void *arg)
{
    ar_store_stmt_t *st;
    int rc = prep(c,
                  "SELECT kid, public_key, retire_at FROM token_keys "
                  "WHERE retire_at IS NULL OR retire_at > $1 ORDER BY created_at DESC, kid "
                  "LIMIT 8",
                  &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, now);
    while (rc == 0 && (rc = ar_store_step(st)) == AR_STORE_ROW) {
        size_t pl;
        const void *pk = ar_store_col_blob(st, 1, &pl);
        rc = pl != 32 ? AR_EPARSE
                      : fn(arg, ar_store_col_text(st, 0, NULL), pk, ar_store_col_int64(st, 2),
                           !ar_store_col_is_null(st, 2));
    }
    ar_store_finalize(st);
    return rc < 0 ? rc : 0;
}

static int add_json(void *arg, const char *kid, const uint8_t *pk, int64_t retire, int has_retire)
{
    char b64[64];
    sodium_bin2base64(b64, sizeof(b64), pk, 32, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    json_t *k = json_pack("{s:s,s:s,s:s,s:o}", "kid", kid, "alg", "Ed25519", "public_key", b64,
                          "retire_at", has_retire ? json_integer(retire) : json_null());
    return k != NULL && json_array_append_new(arg, k) == 0 ? 0 : AR_ENOMEM;
}

int ar_app_keys_public(ar_store_conn_t *c, int64_t now, json_t **out)
{
    json_t *list = json_array();
    int rc = list ? each_public(c, now, add_json, list) : AR_ENOMEM;
    *out = rc == 0 ? json_pack("{s:o}", "keys", list) : NULL;
    if (rc < 0)
        json_decref(list);
    return rc < 0 ? rc : *out ? 0 : AR_ENOMEM;
}

static int add_ring(void *arg, const char *kid, const uint8_t *pk, int64_t retire, int has_retire)
{
    (void)retire, (void)has_retire;
    ar_token_key_t k = {0};
    snprintf(k.kid, sizeof(k.kid), "%s", kid);
    memcpy(k.pk, pk, 32);
    return ar_token_keyring_add(arg, &k);
}

int ar_app_keys_keyring(ar_store_conn_t *c, int64_t now, ar_token_keyring_t *ring)
{
    return each_public(c, now, add_ring, ring);
}

int ar_app_turn_secret_rotate(ar_store_conn_t *c, int64_t now, int64_t overlap_s,
                              const char *secret, char *out, size_t cap)
{
    char gen[64];
    if (secret == NULL) {
        if (ar_rand_id(gen, sizeof(gen), 32) < 0)
            return AR_EINVAL;
        secret = gen;
    }
    size_t len = strlen(secret);
    if (len == 0 || len >= AR_APP_TURN_SECRET_MAX || len >= cap)
        return AR_EINVAL;
    int rc = ar_store_begin(c);
    if (rc == 0)
        rc = retire(c, "UPDATE turn_secrets SET retire_at = $1 WHERE retire_at IS NULL", now,
                    overlap_s);
    ar_store_stmt_t *st;
    if (rc == 0)
        rc = prep(c, "INSERT INTO turn_secrets (secret, created_at) VALUES ($1, $2)", &st);
    if (rc == 0) {
        rc = ar_store_bind_text(st, 1, secret, len);
        if (rc == 0)
            rc = ar_store_bind_int64(st, 2, now);
        if (rc == 0)
            rc = ar_store_step(st);
        ar_store_finalize(st);
    }
    rc = rc < 0 ? rc : ar_store_commit(c);
    if (rc < 0) {
        (void)ar_store_rollback(c);
    } else {
        memcpy(out, secret, len + 1);
    }
    sodium_memzero(gen, sizeof(gen));
    return rc < 0 ? rc : 0;
}

int ar_app_turn_secret_newest(ar_store_conn_t *c, int64_t now, char *out, size_t cap)
{
    ar_store_stmt_t *st;
    int rc = prep(c,
                  "SELECT secret FROM turn_secrets WHERE retire_at IS NULL OR retire_at > $1 "
                  "ORDER BY created_at DESC, id DESC LIMIT 1",
                  &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, now);
    if (rc == 0)
        rc = ar_store_step(st);
    if (rc == AR_STORE_ROW) {
        size_t len;
        const char *s = ar_store_col_text(st, 0, &len);
        rc = len < cap ? 0 : AR_ETOOBIG;
        if (rc == 0)
            memcpy(out, s, len + 1);
    } else if (rc == AR_STORE_DONE) {
        rc = AR_ENOTFOUND;
    }
    ar_store_finalize(st);
    return rc;
}

int ar_app_keys_ensure(ar_store_conn_t *c, int64_t now, const char *turn_secret)
{
    ar_token_key_t key;
    int rc = ar_app_keys_newest(c, now, &key);
    sodium_memzero(&key, sizeof(key));
    char kid[33], secret[AR_APP_TURN_SECRET_MAX];
    if (rc == AR_ENOTFOUND)
        rc = ar_app_keys_rotate(c, now, 0, kid);
    if (rc < 0)
        return rc;
    rc = ar_app_turn_secret_newest(c, now, secret, sizeof(secret));
    if (rc == 0 && turn_secret != NULL && strcmp(secret, turn_secret) != 0)
        rc = AR_ENOTFOUND; /* the configured secret is newer than the store's: adopt it */
    if (rc == AR_ENOTFOUND)
        rc =
            ar_app_turn_secret_rotate(c, now, AR_APP_TURN_TTL, turn_secret, secret, sizeof(secret));
    sodium_memzero(secret, sizeof(secret));
    return rc;
}
