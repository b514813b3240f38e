/*
 * The handlers. Each does its database work in one store job (on a worker thread, with that
 * worker's connection) and answers from the job's completion on the loop thread. A job builds
 * its JSON answer into r->out; nothing else in r is shared while it runs.
 */
#include "audit.h"
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"
#include "anteroom/rand.h"

#include <sodium.h>
#include <string.h>

#define EMAIL_MAX 254
#define PASSWORD_MAX 1024

const ar_app_field_t ar__f_session_create[] = {
    {"email", AR_FIELD_STR, 1, 3, EMAIL_MAX, AR_CS_EMAIL},
    /* Sign-in takes any password the store could hold; the policy applies when one is set. */
    {"password", AR_FIELD_STR, 1, 1, PASSWORD_MAX, AR_CS_ANY},
};
const size_t ar__f_session_create_n =
    sizeof(ar__f_session_create) / sizeof(ar__f_session_create[0]);

static int prep(ar_store_conn_t *c, const char *sql, ar_store_stmt_t **st)
{
    return ar_store_prepare(c, sql, strlen(sql), st);
}

/* Runs a statement that returns no rows, with int64 or blob parameters already bound. */
static int run(ar_store_stmt_t *st, int rc)
{
    if (rc == 0)
        rc = ar_store_step(st);
    ar_store_finalize(st);
    return rc < 0 ? rc : 0;
}

static void store_failed(ar__req_t *r, int status)
{
    ar_log(AR_LOG_WARN, "store_job_failed", AR_LF_ERR("err", status));
    ar__reply_error(r, 503, "unavailable", "the store is unavailable; try again");
}

/* ---- POST /api/v1/session ---- */

static int find_account(ar_store_conn_t *c, const char *email, size_t len, int64_t *id, char *hash,
                        size_t hashcap, int *disabled)
{
    ar_store_stmt_t *st;
    int rc = prep(c, "SELECT id, password_hash, disabled FROM accounts WHERE email = $1", &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_text(st, 1, email, len);
    if (rc == 0)
        rc = ar_store_step(st);
    if (rc == AR_STORE_ROW) {
        size_t hlen;
        const char *h = ar_store_col_text(st, 1, &hlen);
        *id = ar_store_col_int64(st, 0);
        *disabled = ar_store_col_int64(st, 2) != 0;
        if (!ar_store_col_is_null(st, 1) && hlen < hashcap)
            memcpy(hash, h, hlen + 1);
    }
    ar_store_finalize(st);
    return rc < 0 ? rc : 0;
}

static int insert_session(ar_store_conn_t *c, ar__req_t *r, int64_t account)
{
    uint8_t hash[32];
    ar_rand_bytes(r->new_sid, sizeof(r->new_sid));
    ar__sid_hash(r->new_sid, hash);
    int rc = ar_store_begin(c);
    if (rc < 0)
        return rc;
    /* Expired sessions of this account go when it signs in again, so rows do not pile up. */
    ar_store_stmt_t *st;
    rc = prep(c, "DELETE FROM sessions WHERE account_id = $1 AND expires_at <= $2", &st);
    if (rc == 0) {
        rc = ar_store_bind_int64(st, 1, account);
        if (rc == 0)
            rc = ar_store_bind_int64(st, 2, r->now);
        rc = run(st, rc);
    }
    if (rc == 0)
        rc = prep(c,
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
        rc = run(st, rc);
    }
    /* The audit entry commits with the session, or neither does. */
    if (rc == 0)
        rc = ar_app_audit_append(c, r->now, account, 0, AR_AUDIT_SIGNIN);
    rc = rc == 0 ? ar_store_commit(c) : rc;
    if (rc < 0)
        (void)ar_store_rollback(c);
    return rc;
}

static int signin_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    json_t *je = json_object_get(r->body, "email");
    size_t len = json_string_length(je);
    char email[EMAIL_MAX + 1];
    /* Stored lower-cased (0001_init.sql), so compare lower-cased. */
    for (size_t i = 0; i < len; i++) {
        char ch = json_string_value(je)[i];
        email[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
    }
    email[len] = '\0';
    char hash[crypto_pwhash_STRBYTES] = "";
    int64_t account = 0;
    int disabled = 0;
    int rc = find_account(c, email, len, &account, hash, sizeof(hash), &disabled);
    if (rc < 0)
        return rc;
    /* Verify against a dummy hash when there is no usable one, so an unknown address costs the
     * same time as a wrong password and the answer time does not reveal who has an account. */
    const char *h = hash[0] != '\0' ? hash : r->app->dummy_hash;
    int ok = crypto_pwhash_str_verify(h, r->secret, r->secret_len) == 0;
    sodium_memzero(hash, sizeof(hash));
    if (!ok || account == 0 || h == r->app->dummy_hash || disabled) {
        /* Failures are audited with the account they aimed at, when it exists (lockout will
         * count them), never with the address typed. */
        rc = ar_app_audit_append_tx(c, r->now, account, 0, AR_AUDIT_SIGNIN_FAILED);
        return rc < 0 ? rc : AR_EAUTH;
    }
    rc = insert_session(c, r, account);
    if (rc < 0)
        return rc;
    r->out = json_pack("{s:I}", "account_id", (json_int_t)account);
    return r->out != NULL ? 0 : AR_ENOMEM;
}

static void signin_done(int status, void *arg)
{
    ar__req_t *r = arg;
    if (status == AR_EAUTH) {
        /* Neither the address nor the password is logged: either may be personal data, and a
         * mistyped password is often someone's other password. */
        ar_log(AR_LOG_INFO, "signin_failed");
        ar__reply_error(r, 401, "bad_credentials", "the email address or password is wrong");
        return;
    }
    if (status < 0) {
        store_failed(r, status);
        return;
    }
    ar_log(AR_LOG_INFO, "signin",
           AR_LF_INT("account", json_integer_value(json_object_get(r->out, "account_id"))));
    char csrf[AR__SID_TEXT + 1];
    ar__csrf_token(r->new_sid, csrf);
    ar__session_set_cookie(r, r->new_sid);
    json_t *out = r->out;
    r->out = NULL;
    json_object_set_new(out, "csrf_token", json_string(csrf));
    ar__reply_json(r, 201, out);
}

void ar__h_session_create(ar__req_t *r)
{
    json_t *jp = json_object_get(r->body, "password");
    r->secret_len = json_string_length(jp);
    r->secret = ar_malloc(r->secret_len + 1);
    if (r->secret == NULL) {
        ar__reply_error(r, 503, "unavailable", "the server is out of memory");
        return;
    }
    memcpy(r->secret, json_string_value(jp), r->secret_len + 1);
    (void)ar__submit(r, signin_job, signin_done);
}

/* ---- DELETE /api/v1/session and /api/v1/sessions ---- */

/* Deletes the session (all = 0) or every session of the account, with its audit entry, in one
 * transaction. */
static int logout(ar_store_conn_t *c, ar__req_t *r, int all)
{
    int rc = ar_store_begin(c);
    if (rc < 0)
        return rc;
    ar_store_stmt_t *st;
    rc = prep(c,
              all ? "DELETE FROM sessions WHERE account_id = $1"
                  : "DELETE FROM sessions WHERE id_hash = $1",
              &st);
    if (rc == 0)
        rc = run(st, all ? ar_store_bind_int64(st, 1, r->s.account_id)
                         : ar_store_bind_blob(st, 1, r->s.id_hash, sizeof(r->s.id_hash)));
    if (rc == 0)
        rc = ar_app_audit_append(c, r->now, r->s.account_id, 0,
                                 all ? AR_AUDIT_SIGNOUT_ALL : AR_AUDIT_SIGNOUT);
    if (rc == 0)
        rc = ar_store_commit(c);
    if (rc < 0)
        (void)ar_store_rollback(c);
    return rc;
}

static int logout_job(ar_store_conn_t *c, void *arg)
{
    return logout(c, arg, 0);
}

static int logout_all_job(ar_store_conn_t *c, void *arg)
{
    return logout(c, arg, 1);
}

static void logout_done(int status, void *arg)
{
    ar__req_t *r = arg;
    if (status < 0) {
        store_failed(r, status);
        return;
    }
    ar__session_set_cookie(r, NULL);
    ar__reply_empty(r, 204);
}

void ar__h_session_delete(ar__req_t *r)
{
    (void)ar__submit(r, logout_job, logout_done);
}

void ar__h_sessions_delete_all(ar__req_t *r)
{
    (void)ar__submit(r, logout_all_job, logout_done);
}

/* ---- GET /api/v1/me ---- */

static int me_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    ar_store_stmt_t *st;
    int rc = prep(c, "SELECT email, display_name, is_operator FROM accounts WHERE id = $1", &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, r->s.account_id);
    if (rc == 0 && (rc = ar_store_step(st)) == AR_STORE_ROW)
        r->out = json_pack("{s:I,s:s,s:s,s:b,s:[]}", "id", (json_int_t)r->s.account_id, "email",
                           ar_store_col_text(st, 0, NULL), "display_name",
                           ar_store_col_text(st, 1, NULL), "operator",
                           ar_store_col_int64(st, 2) != 0, "memberships");
    ar_store_finalize(st);
    if (rc < 0)
        return rc;
    if (r->out == NULL)
        return rc == AR_STORE_DONE ? AR_EAUTH : AR_ENOMEM;
    rc = prep(c,
              "SELECT clinic_id, role FROM memberships WHERE account_id = $1 "
              "ORDER BY clinic_id, role LIMIT 1000",
              &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, r->s.account_id);
    json_t *list = json_object_get(r->out, "memberships");
    while (rc == 0 && (rc = ar_store_step(st)) == AR_STORE_ROW) {
        json_t *m = json_pack("{s:I,s:s}", "clinic_id", (json_int_t)ar_store_col_int64(st, 0),
                              "role", ar_store_col_text(st, 1, NULL));
        rc = m != NULL && json_array_append_new(list, m) == 0 ? 0 : AR_ENOMEM;
    }
    ar_store_finalize(st);
    return rc < 0 ? rc : 0;
}

static void me_done(int status, void *arg)
{
    ar__req_t *r = arg;
    if (status == AR_EAUTH) {
        ar__reply_error(r, 401, "unauthenticated",
                        "sign in first; the session is missing or expired");
        return;
    }
    if (status < 0) {
        store_failed(r, status);
        return;
    }
    char csrf[AR__SID_TEXT + 1];
    ar__csrf_token(r->s.id, csrf);
    json_t *out = r->out;
    r->out = NULL;
    json_object_set_new(out, "csrf_token", json_string(csrf));
    ar__reply_json(r, 200, out);
}

void ar__h_me(ar__req_t *r)
{
    (void)ar__submit(r, me_job, me_done);
}

/* ---- GET /api/v1/clinics/{clinic} ---- */

static int clinic_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    ar_store_stmt_t *st;
    int rc = prep(c, "SELECT id, name, jurisdiction FROM clinics WHERE id = $1", &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, r->clinic_id);
    if (rc == 0 && (rc = ar_store_step(st)) == AR_STORE_ROW)
        r->out = json_pack("{s:I,s:s,s:s}", "id", (json_int_t)ar_store_col_int64(st, 0), "name",
                           ar_store_col_text(st, 1, NULL), "jurisdiction",
                           ar_store_col_text(st, 2, NULL));
    ar_store_finalize(st);
    if (rc < 0)
        return rc;
    return r->out != NULL ? 0 : rc == AR_STORE_DONE ? AR_ENOTFOUND : AR_ENOMEM;
}

static void clinic_done(int status, void *arg)
{
    ar__req_t *r = arg;
    if (status == AR_ENOTFOUND) {
        ar__reply_error(r, 404, "not_found", "no such clinic");
        return;
    }
    if (status < 0) {
        store_failed(r, status);
        return;
    }
    json_t *out = r->out;
    r->out = NULL;
    ar__reply_json(r, 200, out);
}

void ar__h_clinic_get(ar__req_t *r)
{
    (void)ar__submit(r, clinic_job, clinic_done);
}
