/*
 * Signing keys and TURN secrets in the store (keys.h), sealed at rest with crypto_secretbox
 * under the app's seal key (the one that seals TOTP secrets), so a copy of the database or of a
 * backup without the key cannot sign tokens or mint TURN credentials. Rows written before
 * migration 0006 (sealed = 0, in clear) are sealed in place by ar_app_secrets_seal at start.
 */
#include "keys.h"
#include "sql.h"

#include "accounts.h"

#include "anteroom/rand.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define SK_BYTES 64

/* Retires every live row of table older than now, after overlap_s. */
static int retire(ar_store_conn_t *c, const char *sql, int64_t now, int64_t overlap_s)
{
    ar_store_stmt_t *st;
    int rc = ar__prep(c, sql, &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, now + overlap_s);
    if (rc == 0)
        rc = ar_store_step(st);
    ar_store_finalize(st);
    return rc < 0 ? rc : 0;
}

/* A secret key as stored: sealed (nonce || box), or in clear (64 bytes) before sealing. */
static int open_sk(const uint8_t *seal, const void *in, size_t len, int sealed, uint8_t *sk)
{
    if (!sealed) {
        if (len != SK_BYTES)
            return AR_EPARSE;
        memcpy(sk, in, SK_BYTES);
        return 0;
    }
    if (len != AR_SEALED_BYTES(SK_BYTES))
        return AR_EPARSE;
    return ar_app_unseal(seal, in, len, sk);
}

/* A TURN secret as stored when sealed: base64url (no padding) of nonce || box, in the same
 * TEXT column. */
#define TURN_BOX_MAX AR_SEALED_BYTES(AR_APP_TURN_SECRET_MAX)
#define TURN_SEALED_TEXT ((TURN_BOX_MAX + 2) / 3 * 4 + 1)

static void seal_text(const uint8_t *seal, const char *secret, size_t len, char *out)
{
    uint8_t box[TURN_BOX_MAX];
    ar_app_seal(seal, (const uint8_t *)secret, len, box);
    sodium_bin2base64(out, TURN_SEALED_TEXT, box, AR_SEALED_BYTES(len),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* Opens a stored TURN secret into out (cap bytes, NUL-terminated). */
static int open_text(const uint8_t *seal, const char *in, size_t len, int sealed, char *out,
                     size_t cap)
{
    if (!sealed) {
        if (len >= cap)
            return AR_ETOOBIG;
        memcpy(out, in, len);
        out[len] = '\0';
        return 0;
    }
    uint8_t box[TURN_BOX_MAX];
    size_t blen;
    if (sodium_base642bin(box, sizeof(box), in, len, NULL, &blen, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        blen < AR_SEALED_BYTES(1) || blen - AR_SEALED_BYTES(0) >= cap)
        return AR_EPARSE;
    int rc = ar_app_unseal(seal, box, blen, (uint8_t *)out);
    if (rc == 0)
        out[blen - AR_SEALED_BYTES(0)] = '\0';
    return rc;
}

int ar_app_keys_rotate(ar_store_conn_t *c, const uint8_t *seal, int64_t now, int64_t overlap_s,
                       char *kid)
{
    char id[32] = "k";
    if (ar_rand_id(id + 1, sizeof(id) - 1, 12) < 0)
        return AR_EINVAL;
    ar_token_key_t key;
    int rc = ar_token_key_generate(&key, id);
    if (rc < 0)
        return rc;
    uint8_t sealed[AR_SEALED_BYTES(SK_BYTES)];
    ar_app_seal(seal, key.sk, sizeof(key.sk), sealed);
    rc = ar_store_begin(c);
    if (rc == 0)
        rc = retire(c, "UPDATE token_keys SET retire_at = $1 WHERE retire_at IS NULL", now,
                    overlap_s);
    ar_store_stmt_t *st;
    if (rc == 0)
        rc = ar__prep(c,
                      "INSERT INTO token_keys (kid, public_key, secret_key, created_at, sealed) "
                      "VALUES ($1, $2, $3, $4, 1)",
                      &st);
    if (rc == 0) {
        rc = ar_store_bind_text(st, 1, id, strlen(id));
        if (rc == 0)
            rc = ar_store_bind_blob(st, 2, key.pk, sizeof(key.pk));
        if (rc == 0)
            rc = ar_store_bind_blob(st, 3, sealed, sizeof(sealed));
        if (rc == 0)
            rc = ar_store_bind_int64(st, 4, now);
        if (rc == 0)
            rc = ar_store_step(st);
        ar_store_finalize(st);
    }
    sodium_memzero(&key, sizeof(key));
    rc = ar__finish(c, rc < 0 ? rc : 0);
    if (rc < 0)
        return rc;
    memcpy(kid, id, strlen(id) + 1);
    return 0;
}

int ar_app_keys_newest(ar_store_conn_t *c, const uint8_t *seal, int64_t now, ar_token_key_t *out)
{
    ar_store_stmt_t *st;
    int rc =
        ar__query_ids(c,
                      "SELECT kid, public_key, secret_key, sealed FROM token_keys WHERE retire_at "
                      "IS NULL OR retire_at > $1 ORDER BY created_at DESC, kid LIMIT 1",
                      now, 0, &st);
    if (rc == AR_STORE_ROW) {
        size_t kl, pl, sl;
        const char *kid = ar_store_col_text(st, 0, &kl);
        const void *pk = ar_store_col_blob(st, 1, &pl);
        const void *sk = ar_store_col_blob(st, 2, &sl);
        memset(out, 0, sizeof(*out));
        if (kl >= sizeof(out->kid) || pl != sizeof(out->pk)) {
            rc = AR_EPARSE;
        } else {
            memcpy(out->kid, kid, kl + 1);
            memcpy(out->pk, pk, pl);
            rc = open_sk(seal, sk, sl, ar_store_col_int64(st, 3) != 0, out->sk);
            out->has_sk = rc == 0;
        }
        if (rc < 0)
            sodium_memzero(out, sizeof(*out));
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
    int rc = ar__prep(c,
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

int ar_app_turn_secret_rotate(ar_store_conn_t *c, const uint8_t *seal, int64_t now,
                              int64_t overlap_s, const char *secret, char *out, size_t cap)
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
    char text[TURN_SEALED_TEXT];
    seal_text(seal, secret, len, text);
    int rc = ar_store_begin(c);
    if (rc == 0)
        rc = retire(c, "UPDATE turn_secrets SET retire_at = $1 WHERE retire_at IS NULL", now,
                    overlap_s);
    ar_store_stmt_t *st;
    if (rc == 0)
        rc = ar__prep(c, "INSERT INTO turn_secrets (secret, created_at, sealed) VALUES ($1, $2, 1)",
                      &st);
    if (rc == 0) {
        rc = ar_store_bind_text(st, 1, text, strlen(text));
        if (rc == 0)
            rc = ar_store_bind_int64(st, 2, now);
        if (rc == 0)
            rc = ar_store_step(st);
        ar_store_finalize(st);
    }
    rc = ar__finish(c, rc < 0 ? rc : 0);
    if (rc == 0)
        memcpy(out, secret, len + 1);
    sodium_memzero(gen, sizeof(gen));
    return rc < 0 ? rc : 0;
}

int ar_app_turn_secret_newest(ar_store_conn_t *c, const uint8_t *seal, int64_t now, char *out,
                              size_t cap)
{
    ar_store_stmt_t *st;
    int rc = ar__query_ids(c,
                           "SELECT secret, sealed FROM turn_secrets WHERE retire_at IS NULL OR "
                           "retire_at > $1 ORDER BY created_at DESC, id DESC LIMIT 1",
                           now, 0, &st);
    if (rc == AR_STORE_ROW) {
        size_t len;
        const char *s = ar_store_col_text(st, 0, &len);
        rc = open_text(seal, s, len, ar_store_col_int64(st, 1) != 0, out, cap);
    } else if (rc == AR_STORE_DONE) {
        rc = AR_ENOTFOUND;
    }
    ar_store_finalize(st);
    return rc;
}

int ar_app_keys_ensure(ar_store_conn_t *c, const uint8_t *seal, int64_t now,
                       const char *turn_secret)
{
    size_t sealed_now;
    int rc = ar_app_secrets_seal(c, seal, &sealed_now);
    if (rc < 0)
        return rc;
    /* Opening the newest key proves the seal key is the one the store was sealed with: a wrong
     * key stops the start here (AR_EAUTH) rather than failing every token later. */
    ar_token_key_t key;
    rc = ar_app_keys_newest(c, seal, now, &key);
    sodium_memzero(&key, sizeof(key));
    char kid[33], secret[AR_APP_TURN_SECRET_MAX];
    if (rc == AR_ENOTFOUND)
        rc = ar_app_keys_rotate(c, seal, now, 0, kid);
    if (rc < 0)
        return rc;
    rc = ar_app_turn_secret_newest(c, seal, now, secret, sizeof(secret));
    if (rc == 0 && turn_secret != NULL && strcmp(secret, turn_secret) != 0)
        rc = AR_ENOTFOUND; /* the configured secret is newer than the store's: adopt it */
    if (rc == AR_ENOTFOUND)
        rc = ar_app_turn_secret_rotate(c, seal, now, AR_APP_TURN_TTL, turn_secret, secret,
                                       sizeof(secret));
    sodium_memzero(secret, sizeof(secret));
    return rc;
}

/* ---- sealing rows in place ---- */

/* UPDATE ... SET x = $1 WHERE key = $2: a blob or a text value; an int64 or a text key. */
static int update_row(ar_store_conn_t *c, const char *sql, const void *blob, size_t blen,
                      const char *text, int64_t id, const char *tkey)
{
    ar_store_stmt_t *st;
    int rc = ar__prep(c, sql, &st);
    if (rc < 0)
        return rc;
    rc = text != NULL ? ar_store_bind_text(st, 1, text, strlen(text))
                      : ar_store_bind_blob(st, 1, blob, blen);
    if (rc == 0)
        rc = tkey != NULL ? ar_store_bind_text(st, 2, tkey, strlen(tkey))
                          : ar_store_bind_int64(st, 2, id);
    if (rc == 0)
        rc = ar_store_step(st);
    ar_store_finalize(st);
    return rc < 0 ? rc : 0;
}

/* Keys and TURN secrets accumulate one row per rotation (retired rows stay): they are walked
 * in pages, read whole before any update, so no statement is open while another runs. */
#define PAGE_ROWS 32

typedef struct {
    int64_t id;
    size_t len;
    int sealed;
    char kid[33];
    char val[TURN_SEALED_TEXT]; /* a sealed or clear secret key, or a TURN secret's text */
} row_t;

/* One page of token_keys (by_kid: after kid `after_kid`) or turn_secrets (after id `after`). */
static int read_rows(ar_store_conn_t *c, int by_kid, const char *after_kid, int64_t after,
                     row_t *rows, size_t *n)
{
    ar_store_stmt_t *st;
    int rc = ar__prep(c,
                      by_kid ? "SELECT kid, secret_key, sealed FROM token_keys WHERE kid > $1 "
                               "ORDER BY kid LIMIT 32"
                             : "SELECT id, secret, sealed FROM turn_secrets WHERE id > $1 "
                               "ORDER BY id LIMIT 32",
                      &st);
    *n = 0;
    if (rc < 0)
        return rc;
    rc = by_kid ? ar_store_bind_text(st, 1, after_kid, strlen(after_kid))
                : ar_store_bind_int64(st, 1, after);
    while (rc == 0 && *n < PAGE_ROWS && (rc = ar_store_step(st)) == AR_STORE_ROW) {
        row_t *r = &rows[*n];
        size_t kl = 0, vl = 0;
        const void *v =
            by_kid ? ar_store_col_blob(st, 1, &vl) : (const void *)ar_store_col_text(st, 1, &vl);
        if (by_kid) {
            const char *k = ar_store_col_text(st, 0, &kl);
            if (kl >= sizeof(r->kid)) {
                rc = AR_EPARSE;
                break;
            }
            memcpy(r->kid, k, kl + 1);
        } else {
            r->id = ar_store_col_int64(st, 0);
        }
        if (vl >= sizeof(r->val)) {
            rc = AR_ETOOBIG;
            break;
        }
        memcpy(r->val, v, vl);
        r->len = vl;
        r->sealed = ar_store_col_int64(st, 2) != 0;
        (*n)++;
        rc = 0;
    }
    ar_store_finalize(st);
    return rc < 0 ? rc : 0;
}

/* Seals one row's value under `to` when it is in clear or (from != NULL) under `from`. */
static int reseal_row(ar_store_conn_t *c, int by_kid, const row_t *r, const uint8_t *from,
                      const uint8_t *to, size_t *count)
{
    int rc;
    if (by_kid) {
        uint8_t sk[SK_BYTES], box[AR_SEALED_BYTES(SK_BYTES)];
        if (r->sealed && (from == NULL || open_sk(to, r->val, r->len, 1, sk) == 0)) {
            sodium_memzero(sk, sizeof(sk));
            return 0; /* already under `to` (or only rows in clear wanted) */
        }
        rc = open_sk(from, r->val, r->len, r->sealed, sk);
        if (rc < 0)
            return rc;
        ar_app_seal(to, sk, sizeof(sk), box);
        sodium_memzero(sk, sizeof(sk));
        rc = update_row(c, "UPDATE token_keys SET secret_key = $1, sealed = 1 WHERE kid = $2", box,
                        sizeof(box), NULL, 0, r->kid);
    } else {
        char secret[AR_APP_TURN_SECRET_MAX], text[TURN_SEALED_TEXT];
        if (r->sealed &&
            (from == NULL || open_text(to, r->val, r->len, 1, secret, sizeof(secret)) == 0)) {
            sodium_memzero(secret, sizeof(secret));
            return 0;
        }
        rc = open_text(from, r->val, r->len, r->sealed, secret, sizeof(secret));
        if (rc < 0)
            return rc;
        seal_text(to, secret, strlen(secret), text);
        sodium_memzero(secret, sizeof(secret));
        rc = update_row(c, "UPDATE turn_secrets SET secret = $1, sealed = 1 WHERE id = $2", NULL, 0,
                        text, r->id, NULL);
    }
    if (rc == 0)
        (*count)++;
    return rc;
}

/*
 * Seals under `to` every signing key and TURN secret: with from == NULL only the rows in clear
 * (the migration of rows written before 0006); otherwise also the rows sealed under `from` (a
 * change of seal key). Rows already under `to` are left alone; a sealed row that opens with
 * neither key fails the call (AR_EAUTH). In the caller's transaction.
 */
static int reseal_keys(ar_store_conn_t *c, const uint8_t *from, const uint8_t *to, size_t *count)
{
    row_t rows[PAGE_ROWS];
    int rc = 0;
    for (int by_kid = 1; rc == 0 && by_kid >= 0; by_kid--) {
        char after_kid[33] = "";
        int64_t after = 0;
        size_t n;
        do {
            rc = read_rows(c, by_kid, after_kid, after, rows, &n);
            for (size_t i = 0; rc == 0 && i < n; i++)
                rc = reseal_row(c, by_kid, &rows[i], from, to, count);
            if (n > 0 && by_kid)
                memcpy(after_kid, rows[n - 1].kid, sizeof(after_kid));
            else if (n > 0)
                after = rows[n - 1].id;
        } while (rc == 0 && n == PAGE_ROWS);
    }
    sodium_memzero(rows, sizeof(rows));
    return rc;
}

/* The TOTP secrets (enrolled and pending) of every account, from `from` to `to`, by pages of
 * account ids so no statement stays open across the updates. */
static int reseal_totp(ar_store_conn_t *c, const uint8_t *from, const uint8_t *to, size_t *count)
{
    static const char *const sel[] = {
        "SELECT id, totp_secret FROM accounts WHERE totp_secret IS NOT NULL AND id > $1 "
        "ORDER BY id LIMIT 64",
        "SELECT id, totp_pending FROM accounts WHERE totp_pending IS NOT NULL AND id > $1 "
        "ORDER BY id LIMIT 64"};
    static const char *const upd[] = {"UPDATE accounts SET totp_secret = $1 WHERE id = $2",
                                      "UPDATE accounts SET totp_pending = $1 WHERE id = $2"};
    enum { PAGE = 64, BOX = AR_SEALED_BYTES(64) };
    int rc = 0;
    for (int k = 0; rc == 0 && k < 2; k++) {
        int64_t after = 0;
        for (;;) {
            int64_t ids[PAGE];
            uint8_t vals[PAGE][BOX];
            size_t lens[PAGE], n = 0;
            ar_store_stmt_t *st;
            rc = ar__prep(c, sel[k], &st);
            if (rc == 0)
                rc = ar_store_bind_int64(st, 1, after);
            while (rc == 0 && n < PAGE && (rc = ar_store_step(st)) == AR_STORE_ROW) {
                const uint8_t *v = ar_store_col_blob(st, 1, &lens[n]);
                ids[n] = ar_store_col_int64(st, 0);
                rc = lens[n] < AR_SEALED_BYTES(1) || lens[n] > BOX ? AR_EPARSE : 0;
                if (rc == 0) {
                    memcpy(vals[n], v, lens[n]);
                    n++;
                }
            }
            ar_store_finalize(st);
            if (rc < 0)
                return rc;
            for (size_t i = 0; rc == 0 && i < n; i++) {
                uint8_t plain[64];
                size_t plen = lens[i] - AR_SEALED_BYTES(0);
                if (ar_app_unseal(to, vals[i], lens[i], plain) == 0)
                    continue;
                rc = ar_app_unseal(from, vals[i], lens[i], plain);
                if (rc < 0)
                    break;
                ar_app_seal(to, plain, plen, vals[i]);
                sodium_memzero(plain, sizeof(plain));
                rc = update_row(c, upd[k], vals[i], lens[i], NULL, ids[i], NULL);
                (*count)++;
            }
            sodium_memzero(vals, sizeof(vals));
            if (rc < 0 || n < PAGE)
                break;
            after = ids[n - 1];
        }
    }
    return rc;
}

int ar_app_secrets_seal(ar_store_conn_t *c, const uint8_t *seal, size_t *count)
{
    *count = 0;
    int rc = ar_store_begin(c);
    if (rc == 0)
        rc = reseal_keys(c, NULL, seal, count);
    return ar__finish(c, rc < 0 ? rc : 0);
}

int ar_app_secrets_reseal(ar_store_conn_t *c, const uint8_t *from, const uint8_t *to, size_t *count)
{
    *count = 0;
    int rc = ar_store_begin(c);
    if (rc == 0)
        rc = reseal_keys(c, from, to, count);
    if (rc == 0)
        rc = reseal_totp(c, from, to, count);
    return ar__finish(c, rc < 0 ? rc : 0);
}

int ar_app_seal_key_load(const char *hex, const char *path, uint8_t out[32], int *have)
{
    char buf[130];
    size_t len = 0;
    *have = 0;
    memset(out, 0, 32);
    if (hex == NULL && path == NULL)
        return 0;
    if (hex != NULL && path != NULL)
        return AR_EINVAL; /* one source, so which key is used is never a guess */
    if (path != NULL) {
        FILE *f = fopen(path, "re");
        if (f == NULL)
            return AR_ENOTFOUND;
        len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
            len--;
        buf[len] = '\0';
        hex = buf;
    } else {
        len = strlen(hex);
    }
    size_t got = 0;
    int rc = len == 64 && sodium_hex2bin(out, 32, hex, len, NULL, &got, NULL) == 0 && got == 32
                 ? 0
                 : AR_EINVAL;
    sodium_memzero(buf, sizeof(buf));
    if (rc < 0)
        sodium_memzero(out, 32);
    *have = rc == 0;
    return rc;
}
