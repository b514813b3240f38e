/*
 * Sign-in in two steps and re-authentication (issue 4, S2):
 *   POST /api/v1/session          {email, password}: with a second factor enrolled, 200
 *                                 {"mfa_required": true, "mfa_token"} and no session yet;
 *                                 without one, 201 and the session (staff must then enrol
 *                                 before any clinic route answers: pipeline.c).
 *   POST /api/v1/session/mfa      {mfa_token, code | recovery_code}: 201 and the session.
 *   POST /api/v1/session/reauth   {password, code | recovery_code}: refreshes authenticated_at,
 *                                 which sensitive changes require within AR_REAUTH_S.
 * Every proof first asks the store whether the address must wait (backoff) and whether the
 * account is locked, so a refused attempt costs no Argon2id run; every failure is counted for
 * both and audited, in one transaction.
 */
#include "accounts.h"
#include "audit.h"
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"
#include "anteroom/rand.h"

#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define PASSWORD_MAX 1024

const ar_app_field_t ar__f_session_create[] = {
    {"email", AR_FIELD_STR, 1, 3, AR__EMAIL_MAX, AR_CS_EMAIL},
    /* Sign-in takes any password the store could hold; the policy applies when one is set. */
    {"password", AR_FIELD_STR, 1, 1, PASSWORD_MAX, AR_CS_ANY},
};
const size_t ar__f_session_create_n =
    sizeof(ar__f_session_create) / sizeof(ar__f_session_create[0]);

const ar_app_field_t ar__f_session_mfa[] = {
    {"mfa_token", AR_FIELD_STR, 1, AR__TOKEN_TEXT, AR__TOKEN_TEXT, AR_CS_ANY},
    {"code", AR_FIELD_STR, 0, AR_TOTP_DIGITS, AR_TOTP_DIGITS, AR_CS_TEXT},
    {"recovery_code", AR_FIELD_STR, 0, 12, 20, AR_CS_TEXT},
};
const size_t ar__f_session_mfa_n = sizeof(ar__f_session_mfa) / sizeof(ar__f_session_mfa[0]);
AR__CHECK_N(session_mfa);

const ar_app_field_t ar__f_session_reauth[] = {
    {"password", AR_FIELD_STR, 1, 1, PASSWORD_MAX, AR_CS_ANY},
    {"code", AR_FIELD_STR, 0, AR_TOTP_DIGITS, AR_TOTP_DIGITS, AR_CS_TEXT},
    {"recovery_code", AR_FIELD_STR, 0, 12, 20, AR_CS_TEXT},
};
const size_t ar__f_session_reauth_n =
    sizeof(ar__f_session_reauth) / sizeof(ar__f_session_reauth[0]);
AR__CHECK_N(session_reauth);

int ar__reauth_fresh(const ar__req_t *r)
{
    return r->s.authenticated_at > 0 && r->now - r->s.authenticated_at <= AR_REAUTH_S;
}

int ar__reauth_refused(ar__req_t *r)
{
    if (ar__reauth_fresh(r))
        return 0;
    ar__reply_error(r, 403, AR__REAUTH_CODE, AR__REAUTH_MSG);
    return 1;
}

void ar__refuse(ar__req_t *r, int status, const char *code, const char *msg)
{
    r->out_status = status;
    r->err_code = code;
    r->err_msg = msg;
}

void ar__addr_hash(ar__req_t *r)
{
    static const char label[] = "anteroom-addr-v1";
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len = r->req->conn->callbacks->get_peername(r->req->conn, (struct sockaddr *)&ss);
    const uint8_t *p = (const uint8_t *)"";
    size_t n = 0;
    if (ss.ss_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        p = (const uint8_t *)&((struct sockaddr_in *)&ss)->sin_addr;
        n = 4;
    } else if (ss.ss_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        /* One IPv6 host commonly holds a whole /64, so the /64 is what backs off. */
        p = (const uint8_t *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
        n = 8;
    }
    crypto_generichash(r->addr, sizeof(r->addr), p, n, (const uint8_t *)label, sizeof(label) - 1);
}

/* The body's email in the form the store keeps (sql.h) into out (AR__EMAIL_MAX + 1 bytes):
 * its length, or AR_EINVAL (never, once the field table has passed it). */
static int body_email(const ar__req_t *r, const char *key, char *out)
{
    json_t *je = json_object_get(r->body, key);
    return ar__email_lower(json_string_value(je), json_string_length(je), out, AR__EMAIL_MAX + 1);
}

typedef struct {
    int64_t id;
    int disabled;
    int has_totp;
    char hash[crypto_pwhash_STRBYTES];
} account_t;

static int load_account(ar_store_conn_t *c, const char *where, const char *text, size_t len,
                        int64_t id, account_t *a)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT id, password_hash, disabled, CASE WHEN totp_secret IS NULL THEN 0 ELSE 1 "
             "END FROM accounts WHERE %s = $1",
             where);
    memset(a, 0, sizeof(*a));
    ar_store_stmt_t *st;
    int rc = ar__prep(c, sql, &st);
    if (rc < 0)
        return rc;
    rc = text != NULL ? ar_store_bind_text(st, 1, text, len) : ar_store_bind_int64(st, 1, id);
    if (rc == 0)
        rc = ar_store_step(st);
    if (rc == AR_STORE_ROW) {
        size_t hlen;
        const char *h = ar_store_col_text(st, 1, &hlen);
        a->id = ar_store_col_int64(st, 0);
        a->disabled = ar_store_col_int64(st, 2) != 0;
        a->has_totp = ar_store_col_int64(st, 3) != 0;
        if (!ar_store_col_is_null(st, 1) && hlen < sizeof(a->hash))
            memcpy(a->hash, h, hlen + 1);
    }
    ar_store_finalize(st);
    return rc < 0 ? rc : 0;
}

/* Verifies pw against the account's hash, or against the dummy hash when there is none, so an
 * unknown address costs the same time as a wrong password. 1 when right. */
static int password_ok(ar__req_t *r, account_t *a, const char *pw, size_t len)
{
    const char *h = a->hash[0] != '\0' ? a->hash : r->app->dummy_hash;
    int ok = crypto_pwhash_str_verify(h, pw, len) == 0;
    sodium_memzero(a->hash, sizeof(a->hash));
    return ok && a->id != 0 && h != r->app->dummy_hash && !a->disabled;
}

int ar__record_failure(ar_store_conn_t *c, ar__req_t *r, int64_t account, const char *event)
{
    int rc = ar_store_begin(c);
    if (rc < 0)
        return rc;
    /* Audited with the account aimed at, when it exists, never with the address typed. */
    rc = ar_app_audit_append(c, r->now, account, 0, event);
    if (rc == 0 && account != 0)
        rc = ar_app_lockout_fail(c, account, r->now);
    if (rc == 0)
        rc = ar_app_backoff_fail(c, r->addr, r->now);
    return ar__finish(c, rc);
}

int ar__session_open(ar_store_conn_t *c, ar__req_t *r, int64_t account, const char *event)
{
    uint8_t hash[32];
    ar_rand_bytes(r->new_sid, sizeof(r->new_sid));
    ar__sid_hash(r->new_sid, hash);
    int rc = ar_store_begin(c);
    if (rc < 0)
        return rc;
    /* Expired sessions of this account go when it signs in again, so rows do not pile up. */
    ar_store_stmt_t *st;
    rc = ar__exec_ids(c, "DELETE FROM sessions WHERE account_id = $1 AND expires_at <= $2", account,
                      r->now);
    if (rc == 0)
        rc = ar__prep(c,
                      "INSERT INTO sessions (id_hash, account_id, created_at, last_seen_at, "
                      "expires_at, authenticated_at) VALUES ($1, $2, $3, $3, $4, $3)",
                      &st);
    if (rc == 0) {
        rc = ar_store_bind_blob(st, 1, hash, sizeof(hash));
        if (rc == 0)
            rc = ar_store_bind_int64(st, 2, account);
        if (rc == 0)
            rc = ar_store_bind_int64(st, 3, r->now);
        if (rc == 0)
            rc = ar_store_bind_int64(st, 4, r->now + r->app->opts.session_max_s);
        rc = ar__run(st, rc);
    }
    /* The audit entry commits with the session, or neither does. */
    if (rc == 0)
        rc = ar_app_audit_append(c, r->now, account, 0, event);
    if (rc == 0)
        rc = ar_app_lockout_clear(c, account);
    if (rc == 0)
        rc = ar_app_backoff_clear(c, r->addr);
    rc = ar__finish(c, rc);
    if (rc < 0)
        sodium_memzero(r->new_sid, sizeof(r->new_sid));
    return rc;
}

static int use_recovery_code(ar_store_conn_t *c, ar__req_t *r, int64_t account, json_t *jr)
{
    uint8_t h[32];
    if (ar_app_recovery_hash(json_string_value(jr), json_string_length(jr), h) < 0)
        return AR_EAUTH;
    ar_store_stmt_t *st;
    int rc = ar__prep(c,
                      "UPDATE recovery_codes SET used_at = $3 WHERE account_id = $1 AND "
                      "code_hash = $2 AND used_at IS NULL",
                      &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, account);
    if (rc == 0)
        rc = ar_store_bind_blob(st, 2, h, sizeof(h));
    if (rc == 0)
        rc = ar_store_bind_int64(st, 3, r->now);
    int64_t changed = 0;
    rc = ar__run_changes(st, rc, &changed);
    if (rc < 0)
        return rc;
    if (changed != 1)
        return AR_EAUTH;
    return ar_app_audit_append_tx(c, r->now, account, 0, AR_AUDIT_MFA_RECOVERY_USED);
}

int ar__second_factor(ar_store_conn_t *c, ar__req_t *r, int64_t account)
{
    json_t *jc = json_object_get(r->body, "code"), *jr = json_object_get(r->body, "recovery_code");
    if (jc == NULL && jr != NULL)
        return use_recovery_code(c, r, account, jr);
    if (jc == NULL)
        return AR_EAUTH;
    ar_store_stmt_t *st;
    int rc = ar__query_ids(c, "SELECT totp_secret, totp_last_step FROM accounts WHERE id = $1",
                           account, 0, &st);
    uint8_t key[AR_TOTP_KEY_BYTES];
    int64_t last = 0, step = 0;
    int have = 0;
    if (rc == AR_STORE_ROW) {
        size_t len;
        const uint8_t *sealed = ar_store_col_blob(st, 0, &len);
        last = ar_store_col_int64(st, 1);
        have = len == AR_SEALED_BYTES(sizeof(key)) &&
               ar_app_unseal(r->app->seal_key, sealed, len, key) == 0;
    }
    ar_store_finalize(st);
    if (rc < 0)
        return rc;
    if (!have)
        return AR_EAUTH;
    rc = ar_app_totp_check(key, sizeof(key), r->now, json_string_value(jc), json_string_length(jc),
                           last, &step);
    sodium_memzero(key, sizeof(key));
    if (rc < 0)
        return rc;
    /* The step is taken only if no one took it (or a later one) meanwhile: a code is used
     * once even by two instances at the same moment. */
    rc = ar__prep(
        c, "UPDATE accounts SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2", &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, account);
    if (rc == 0)
        rc = ar_store_bind_int64(st, 2, step);
    int64_t changed = 0;
    rc = ar__run_changes(st, rc, &changed);
    if (rc < 0)
        return rc;
    return changed == 1 ? 0 : AR_EAUTH;
}

/* ---- answers ---- */

void ar__account_done(int status, void *arg)
{
    ar__req_t *r = arg;
    char buf[32];
    switch (status) {
    case 0:
        break;
    case AR_EQUOTA:
        snprintf(buf, sizeof(buf), "%lld", (long long)r->retry_after);
        ar__add_header(r, "retry-after", buf, strlen(buf));
        ar__reply_error(r, 429, "rate_limited",
                        "too many failed attempts from this address; retry later");
        return;
    case AR_EPERM:
        ar__reply_error(r, 429, "account_locked",
                        "this account is locked after too many failed attempts; retry in an hour");
        return;
    case AR_EAUTH:
        ar_log(AR_LOG_INFO, "signin_failed");
        ar__reply_error(r, 401, "bad_credentials", "the credentials are wrong");
        return;
    default:
        ar__store_failed(r, status);
        return;
    }
    if (r->err_code != NULL) {
        ar__reply_error(r, r->out_status, r->err_code, r->err_msg);
        return;
    }
    static const uint8_t zero[AR__SID_BYTES];
    json_t *out = r->out;
    r->out = NULL;
    if (sodium_memcmp(r->new_sid, zero, sizeof(zero)) != 0) {
        char csrf[AR__SID_TEXT + 1];
        ar__csrf_token(r->new_sid, csrf);
        ar__session_set_cookie(r, r->new_sid);
        json_object_set_new(out, "csrf_token", json_string(csrf));
    }
    if (out == NULL) {
        ar__reply_empty(r, r->out_status ? r->out_status : 204);
        return;
    }
    ar__reply_json(r, r->out_status ? r->out_status : 200, out);
}

/* ---- POST /api/v1/session ---- */

static int new_challenge(ar_store_conn_t *c, ar__req_t *r, int64_t account)
{
    uint8_t hash[32];
    char text[AR__TOKEN_TEXT + 1];
    ar__token_new(hash, text);
    int rc = ar_store_begin(c);
    if (rc < 0)
        return rc;
    ar_store_stmt_t *st;
    rc = ar__exec_ids(c, "DELETE FROM mfa_challenges WHERE account_id = $1 AND expires_at <= $2",
                      account, r->now);
    if (rc == 0)
        rc = ar__prep(c,
                      "INSERT INTO mfa_challenges (token_hash, account_id, expires_at) "
                      "VALUES ($1, $2, $3)",
                      &st);
    if (rc == 0) {
        rc = ar_store_bind_blob(st, 1, hash, sizeof(hash));
        if (rc == 0)
            rc = ar_store_bind_int64(st, 2, account);
        if (rc == 0)
            rc = ar_store_bind_int64(st, 3, r->now + AR_MFA_CHALLENGE_S);
        rc = ar__run(st, rc);
    }
    rc = ar__finish(c, rc == 0 ? ar_app_backoff_clear(c, r->addr) : rc);
    if (rc < 0)
        return rc;
    r->out = json_pack("{s:b,s:s}", "mfa_required", 1, "mfa_token", text);
    sodium_memzero(text, sizeof(text));
    r->out_status = 200;
    return r->out != NULL ? 0 : AR_ENOMEM;
}

/* The backoff and lockout gates every proof passes first. */
static int gates(ar_store_conn_t *c, ar__req_t *r, int64_t account)
{
    int rc = ar_app_backoff_check(c, r->addr, r->now, &r->retry_after);
    if (rc < 0 || account == 0)
        return rc;
    rc = ar_app_lockout_locked(c, account, r->now);
    if (rc == 1) {
        /* The refusal counts for the address, so hammering a locked account still backs off;
         * the account's own count stays where it is. */
        rc = ar__record_failure(c, r, 0, AR_AUDIT_SIGNIN_LOCKED);
        return rc < 0 ? rc : AR_EPERM;
    }
    return rc;
}

static int signin_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    char email[AR__EMAIL_MAX + 1];
    int len = body_email(r, "email", email);
    if (len < 0)
        return len;
    account_t a;
    int rc = load_account(c, "email", email, (size_t)len, 0, &a);
    if (rc == 0)
        rc = gates(c, r, a.id);
    if (rc < 0)
        return rc;
    if (!password_ok(r, &a, r->secret, r->secret_len)) {
        rc = ar__record_failure(c, r, a.id, AR_AUDIT_SIGNIN_FAILED);
        return rc < 0 ? rc : AR_EAUTH;
    }
    if (a.has_totp)
        return new_challenge(c, r, a.id);
    rc = ar__session_open(c, r, a.id, AR_AUDIT_SIGNIN);
    if (rc < 0)
        return rc;
    r->out = json_pack("{s:I,s:b}", "account_id", (json_int_t)a.id, "mfa_required", 0);
    r->out_status = 201;
    return r->out != NULL ? 0 : AR_ENOMEM;
}

/* Copies the body's password into r->secret, which is wiped with the request. */
static int take_password(ar__req_t *r)
{
    json_t *jp = json_object_get(r->body, "password");
    r->secret_len = json_string_length(jp);
    r->secret = ar_malloc(r->secret_len + 1);
    if (r->secret == NULL) {
        ar__reply_error(r, 503, "unavailable", "the server is out of memory");
        return -1;
    }
    memcpy(r->secret, json_string_value(jp), r->secret_len + 1);
    return 0;
}

void ar__h_session_create(ar__req_t *r)
{
    ar__addr_hash(r);
    if (take_password(r) == 0)
        (void)ar__submit(r, signin_job, ar__account_done);
}

void ar__token_new(uint8_t hash[32], char text[AR__TOKEN_TEXT + 1])
{
    uint8_t tok[32];
    ar_rand_bytes(tok, sizeof(tok));
    crypto_hash_sha256(hash, tok, sizeof(tok));
    sodium_bin2base64(text, AR__TOKEN_TEXT + 1, tok, sizeof(tok),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(tok, sizeof(tok));
}

int ar__token_text_hash(const json_t *jt, uint8_t hash[32])
{
    uint8_t tok[32];
    size_t got = 0;
    if (!json_is_string(jt) ||
        sodium_base642bin(tok, sizeof(tok), json_string_value(jt), json_string_length(jt), NULL,
                          &got, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        got != sizeof(tok))
        return -1;
    crypto_hash_sha256(hash, tok, sizeof(tok));
    sodium_memzero(tok, sizeof(tok));
    return 0;
}

/* ---- POST /api/v1/session/mfa ---- */

static int mfa_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    uint8_t hash[32];
    int rc = ar_app_backoff_check(c, r->addr, r->now, &r->retry_after);
    if (rc < 0)
        return rc;
    if (ar__token_text_hash(json_object_get(r->body, "mfa_token"), hash) != 0) {
        rc = ar__record_failure(c, r, 0, AR_AUDIT_SIGNIN_MFA_FAILED);
        return rc < 0 ? rc : AR_EAUTH;
    }
    ar_store_stmt_t *st;
    rc = ar__prep(c,
                  "SELECT account_id FROM mfa_challenges WHERE token_hash = $1 AND "
                  "expires_at > $2",
                  &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_blob(st, 1, hash, sizeof(hash));
    if (rc == 0)
        rc = ar_store_bind_int64(st, 2, r->now);
    if (rc == 0)
        rc = ar_store_step(st);
    int64_t account = rc == AR_STORE_ROW ? ar_store_col_int64(st, 0) : 0;
    ar_store_finalize(st);
    if (rc < 0)
        return rc;
    if (account == 0) {
        rc = ar__record_failure(c, r, 0, AR_AUDIT_SIGNIN_MFA_FAILED);
        if (rc < 0)
            return rc;
        ar__refuse(r, 401, "mfa_expired", "the sign-in expired; sign in with the password again");
        return 0;
    }
    rc = gates(c, r, account);
    if (rc == 0)
        rc = ar__second_factor(c, r, account);
    if (rc == AR_EAUTH) {
        rc = ar__record_failure(c, r, account, AR_AUDIT_SIGNIN_MFA_FAILED);
        return rc < 0 ? rc : AR_EAUTH;
    }
    if (rc < 0)
        return rc;
    /* The challenge is spent, whoever got here first. */
    rc = ar__prep(c, "DELETE FROM mfa_challenges WHERE token_hash = $1", &st);
    if (rc < 0)
        return rc;
    rc = ar__run(st, ar_store_bind_blob(st, 1, hash, sizeof(hash)));
    if (rc == 0)
        rc = ar__session_open(c, r, account, AR_AUDIT_SIGNIN);
    if (rc < 0)
        return rc;
    r->out = json_pack("{s:I}", "account_id", (json_int_t)account);
    r->out_status = 201;
    return r->out != NULL ? 0 : AR_ENOMEM;
}

void ar__h_session_mfa(ar__req_t *r)
{
    ar__addr_hash(r);
    (void)ar__submit(r, mfa_job, ar__account_done);
}

/* ---- POST /api/v1/session/reauth ---- */

static int reauth_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    account_t a;
    int rc = load_account(c, "id", NULL, 0, r->s.account_id, &a);
    if (rc == 0)
        rc = gates(c, r, a.id);
    if (rc < 0)
        return rc;
    int ok = password_ok(r, &a, r->secret, r->secret_len);
    if (ok && a.has_totp) {
        rc = ar__second_factor(c, r, a.id);
        if (rc < 0 && rc != AR_EAUTH)
            return rc;
        ok = rc == 0;
    }
    if (!ok) {
        rc = ar__record_failure(c, r, a.id, AR_AUDIT_REAUTH_FAILED);
        return rc < 0 ? rc : AR_EAUTH;
    }
    rc = ar_store_begin(c);
    if (rc < 0)
        return rc;
    ar_store_stmt_t *st;
    rc = ar__prep(c, "UPDATE sessions SET authenticated_at = $2 WHERE id_hash = $1", &st);
    if (rc == 0) {
        rc = ar_store_bind_blob(st, 1, r->s.id_hash, sizeof(r->s.id_hash));
        if (rc == 0)
            rc = ar_store_bind_int64(st, 2, r->now);
        rc = ar__run(st, rc);
    }
    if (rc == 0)
        rc = ar_app_audit_append(c, r->now, a.id, 0, AR_AUDIT_REAUTH);
    if (rc == 0)
        rc = ar_app_lockout_clear(c, a.id);
    r->out_status = 204;
    return ar__finish(c, rc);
}

void ar__h_session_reauth(ar__req_t *r)
{
    ar__addr_hash(r);
    if (take_password(r) == 0)
        (void)ar__submit(r, reauth_job, ar__account_done);
}
