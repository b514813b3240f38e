/*
 * The signed-in account's own second factor and password (issue 4):
 *   POST /api/v1/me/totp          a new secret: {otpauth_uri, secret, qr_svg}; kept pending
 *   POST /api/v1/me/totp/confirm  {code}: the pending secret becomes the account's second
 *                                 factor; answers the 10 recovery codes, shown this once
 *   PUT  /api/v1/me/password      {password}: a new password (policy-checked); other sessions end
 * Replacing an enrolled second factor and changing the password need a recent
 * re-authentication; a first enrolment does not (the session was opened by the password alone,
 * and enrolling is what it must do next).
 */
#include "accounts.h"
#include "audit.h"
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/rand.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

const ar_app_field_t ar__f_totp_confirm[] = {
    {"code", AR_FIELD_STR, 1, AR_TOTP_DIGITS, AR_TOTP_DIGITS, AR_CS_TEXT},
};
const size_t ar__f_totp_confirm_n = sizeof(ar__f_totp_confirm) / sizeof(ar__f_totp_confirm[0]);
AR__CHECK_N(totp_confirm);

const ar_app_field_t ar__f_password_change[] = {
    {"password", AR_FIELD_STR, 1, 1, 1024, AR_CS_ANY},
};
const size_t ar__f_password_change_n =
    sizeof(ar__f_password_change) / sizeof(ar__f_password_change[0]);
AR__CHECK_N(password_change);

/* Email and whether a second factor is enrolled. */
static int load_me(ar_store_conn_t *c, ar__req_t *r, char *email, size_t cap, int *enrolled)
{
    ar_store_stmt_t *st;
    int rc = ar__query_ids(
        c,
        "SELECT email, CASE WHEN totp_secret IS NULL THEN 0 ELSE 1 END FROM accounts WHERE id = $1",
        r->s.account_id, 0, &st);
    if (rc == AR_STORE_ROW) {
        size_t len;
        const char *e = ar_store_col_text(st, 0, &len);
        snprintf(email, cap, "%.*s", (int)len, e);
        *enrolled = ar_store_col_int64(st, 1) != 0;
    }
    ar_store_finalize(st);
    return rc < 0 ? rc : rc == AR_STORE_ROW ? 0 : AR_EAUTH;
}

/* ---- POST /api/v1/me/totp ---- */

static int begin_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    char email[300];
    int enrolled = 0;
    int rc = load_me(c, r, email, sizeof(email), &enrolled);
    if (rc < 0)
        return rc;
    if (enrolled && !ar__reauth_fresh(r)) {
        ar__refuse(r, 403, AR__REAUTH_CODE, AR__REAUTH_MSG);
        return 0;
    }
    uint8_t key[AR_TOTP_KEY_BYTES], sealed[AR_SEALED_BYTES(AR_TOTP_KEY_BYTES)];
    ar_rand_bytes(key, sizeof(key));
    ar_app_seal(r->app->seal_key, key, sizeof(key), sealed);
    char secret[64];
    ar_app_base32(key, sizeof(key), secret);
    char *uri = ar_app_otpauth_uri(email, key, sizeof(key));
    sodium_memzero(key, sizeof(key));
    char *svg = uri != NULL ? ar_app_qr_svg(uri) : NULL;
    ar_store_stmt_t *st;
    rc = svg != NULL ? ar__prep(c, "UPDATE accounts SET totp_pending = $2 WHERE id = $1", &st)
                     : AR_ENOMEM;
    if (rc == 0) {
        rc = ar_store_bind_int64(st, 1, r->s.account_id);
        if (rc == 0)
            rc = ar_store_bind_blob(st, 2, sealed, sizeof(sealed));
        rc = ar__run(st, rc);
    }
    if (rc == 0) {
        r->out = json_pack("{s:s,s:s,s:s}", "otpauth_uri", uri, "secret", secret, "qr_svg", svg);
        rc = r->out != NULL ? 0 : AR_ENOMEM;
        r->out_status = 200;
    }
    sodium_memzero(secret, sizeof(secret));
    if (uri != NULL)
        sodium_memzero(uri, strlen(uri));
    free(uri);
    free(svg);
    return rc;
}

void ar__h_totp_begin(ar__req_t *r)
{
    (void)ar__submit(r, begin_job, ar__account_done);
}

/* ---- POST /api/v1/me/totp/confirm ---- */

/* Replaces the account's recovery codes with ten new ones, listed into out. */
static int new_recovery_codes(ar_store_conn_t *c, ar__req_t *r, json_t *out)
{
    ar_store_stmt_t *st;
    int rc = ar__prep(c, "DELETE FROM recovery_codes WHERE account_id = $1", &st);
    if (rc < 0)
        return rc;
    rc = ar__run(st, ar_store_bind_int64(st, 1, r->s.account_id));
    for (int i = 0; rc == 0 && i < AR_RECOVERY_CODES; i++) {
        uint8_t raw[8], h[32];
        char b32[16], text[AR_RECOVERY_TEXT + 1];
        ar_rand_bytes(raw, sizeof(raw));
        ar_app_base32(raw, sizeof(raw), b32); /* 13 characters; 12 used: 60 bits */
        snprintf(text, sizeof(text), "%.4s-%.4s-%.4s", b32, b32 + 4, b32 + 8);
        rc = ar_app_recovery_hash(text, strlen(text), h);
        if (rc == 0)
            rc = json_array_append_new(out, json_string(text)) == 0 ? 0 : AR_ENOMEM;
        sodium_memzero(raw, sizeof(raw));
        sodium_memzero(b32, sizeof(b32));
        sodium_memzero(text, sizeof(text));
        if (rc == 0)
            rc = ar__prep(c, "INSERT INTO recovery_codes (account_id, code_hash) VALUES ($1, $2)",
                          &st);
        if (rc < 0)
            break;
        rc = ar_store_bind_int64(st, 1, r->s.account_id);
        if (rc == 0)
            rc = ar_store_bind_blob(st, 2, h, sizeof(h));
        rc = ar__run(st, rc);
    }
    return rc;
}

static int confirm_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    ar_store_stmt_t *st;
    int rc = ar__query_ids(c, "SELECT totp_pending FROM accounts WHERE id = $1", r->s.account_id, 0,
                           &st);
    uint8_t key[AR_TOTP_KEY_BYTES], sealed[AR_SEALED_BYTES(AR_TOTP_KEY_BYTES)];
    int have = 0;
    if (rc == AR_STORE_ROW) {
        size_t len;
        const void *p = ar_store_col_blob(st, 0, &len);
        if (len == sizeof(sealed)) {
            memcpy(sealed, p, len);
            have = ar_app_unseal(r->app->seal_key, sealed, len, key) == 0;
        }
    }
    ar_store_finalize(st);
    if (rc < 0)
        return rc;
    if (!have) {
        ar__refuse(r, 409, "no_enrolment", "start with POST /api/v1/me/totp");
        return 0;
    }
    json_t *jc = json_object_get(r->body, "code");
    int64_t step = 0;
    rc = ar_app_totp_check(key, sizeof(key), r->now, json_string_value(jc), json_string_length(jc),
                           0, &step);
    sodium_memzero(key, sizeof(key));
    if (rc < 0) {
        ar__refuse(r, 400, "bad_code", "the code does not match; check the device's clock");
        return 0;
    }
    json_t *codes = json_array();
    rc = codes != NULL ? ar_store_begin(c) : AR_ENOMEM;
    if (rc == 0)
        rc = ar__prep(c,
                      "UPDATE accounts SET totp_secret = $2, totp_pending = NULL, "
                      "totp_last_step = $3 WHERE id = $1",
                      &st);
    if (rc == 0) {
        rc = ar_store_bind_int64(st, 1, r->s.account_id);
        if (rc == 0)
            rc = ar_store_bind_blob(st, 2, sealed, sizeof(sealed));
        if (rc == 0)
            rc = ar_store_bind_int64(st, 3, step);
        rc = ar__run(st, rc);
        if (rc == 0)
            rc = new_recovery_codes(c, r, codes);
        if (rc == 0)
            rc = ar_app_audit_append(c, r->now, r->s.account_id, 0, AR_AUDIT_MFA_ENROLLED);
        rc = ar__finish(c, rc);
    }
    if (rc < 0) {
        json_decref(codes);
        return rc;
    }
    r->out = json_pack("{s:o}", "recovery_codes", codes);
    r->out_status = 200;
    return r->out != NULL ? 0 : AR_ENOMEM;
}

void ar__h_totp_confirm(ar__req_t *r)
{
    (void)ar__submit(r, confirm_job, ar__account_done);
}

/* ---- PUT /api/v1/me/password ---- */

static int password_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    char email[300];
    int enrolled;
    int rc = load_me(c, r, email, sizeof(email), &enrolled);
    if (rc < 0)
        return rc;
    json_t *jp = json_object_get(r->body, "password");
    const char *why = NULL;
    if (ar_app_password_policy(json_string_value(jp), json_string_length(jp), email, strlen(email),
                               &why) < 0) {
        ar__refuse(r, 400, why, "the password does not meet the policy (docs/api.md)");
        return 0;
    }
    char hash[crypto_pwhash_STRBYTES];
    rc = ar_app_password_hash(json_string_value(jp), json_string_length(jp),
                              r->app->opts.pwhash_ops, r->app->opts.pwhash_mem, hash, sizeof(hash));
    if (rc < 0)
        return rc;
    rc = ar_store_begin(c);
    ar_store_stmt_t *st;
    if (rc == 0)
        rc = ar__prep(c, "UPDATE accounts SET password_hash = $2 WHERE id = $1", &st);
    if (rc == 0) {
        rc = ar_store_bind_int64(st, 1, r->s.account_id);
        if (rc == 0)
            rc = ar_store_bind_text(st, 2, hash, strlen(hash));
        rc = ar__run(st, rc);
    }
    /* Whoever else held a session (perhaps with the old password) is signed out. */
    if (rc == 0)
        rc = ar__prep(c, "DELETE FROM sessions WHERE account_id = $1 AND id_hash <> $2", &st);
    if (rc == 0) {
        rc = ar_store_bind_int64(st, 1, r->s.account_id);
        if (rc == 0)
            rc = ar_store_bind_blob(st, 2, r->s.id_hash, sizeof(r->s.id_hash));
        rc = ar__run(st, rc);
    }
    if (rc == 0)
        rc = ar_app_audit_append(c, r->now, r->s.account_id, 0, AR_AUDIT_PASSWORD_CHANGED);
    rc = ar__finish(c, rc);
    sodium_memzero(hash, sizeof(hash));
    r->out_status = 204;
    return rc;
}

void ar__h_password_change(ar__req_t *r)
{
    if (!ar__reauth_refused(r))
        (void)ar__submit(r, password_job, ar__account_done);
}
