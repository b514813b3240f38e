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

/* Runs a statement that returns no rows, with int64 or blob parameters already bound. */
static int run(ar_store_stmt_t *st, int rc)
{
    if (rc == 0)
        rc = ar_store_step(st);
    ar_store_finalize(st);
    return rc < 0 ? rc : 0;
}

/* POST /api/v1/session (sign-in in two steps) is in signin.c. */

/* ---- DELETE /api/v1/session and /api/v1/sessions ---- */

/* Deletes the session (all = 0) or every session of the account, with its audit entry, in one
 * transaction. */
static int logout(ar_store_conn_t *c, ar__req_t *r, int all)
{
    int rc = ar_store_begin(c);
    if (rc < 0)
        return rc;
    ar_store_stmt_t *st;
    rc = ar__prep(c,
                  all ? "DELETE FROM sessions WHERE account_id = $1"
                      : "DELETE FROM sessions WHERE id_hash = $1",
                  &st);
    if (rc == 0)
        rc = run(st, all ? ar_store_bind_int64(st, 1, r->s.account_id)
                         : ar_store_bind_blob(st, 1, r->s.id_hash, sizeof(r->s.id_hash)));
    if (rc == 0)
        rc = ar_app_audit_append(c, r->now, r->s.account_id, 0,
                                 all ? AR_AUDIT_SIGNOUT_ALL : AR_AUDIT_SIGNOUT);
    rc = ar__finish(c, rc);
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
        ar__store_failed(r, status);
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
    int rc = ar__query_ids(c, "SELECT email, display_name, is_operator FROM accounts WHERE id = $1",
                           r->s.account_id, 0, &st);
    if (rc == AR_STORE_ROW)
        /* mfa_enrolment_required: the page leads to enrolment at sign-in, even an account
         * with no membership (the first operator) whose clinic routes would answer 403. */
        r->out =
            json_pack("{s:I,s:s,s:s,s:b,s:b,s:[]}", "id", (json_int_t)r->s.account_id, "email",
                      ar_store_col_text(st, 0, NULL), "display_name",
                      ar_store_col_text(st, 1, NULL), "operator", ar_store_col_int64(st, 2) != 0,
                      "mfa_enrolment_required", r->s.mfa_missing != 0, "memberships");
    ar_store_finalize(st);
    if (rc < 0)
        return rc;
    if (r->out == NULL)
        return rc == AR_STORE_DONE ? AR_EAUTH : AR_ENOMEM;
    rc = ar__prep(c,
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
        ar__store_failed(r, status);
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
    int rc = ar__query_ids(
        c, "SELECT id, name, jurisdiction, relay_only, default_profile FROM clinics WHERE id = $1",
        r->clinic_id, 0, &st);
    if (rc == AR_STORE_ROW)
        r->out =
            json_pack("{s:I,s:s,s:s,s:b,s:s}", "id", (json_int_t)ar_store_col_int64(st, 0), "name",
                      ar_store_col_text(st, 1, NULL), "jurisdiction",
                      ar_store_col_text(st, 2, NULL), "relay_only", ar_store_col_int64(st, 3) != 0,
                      "default_profile", ar_store_col_text(st, 4, NULL));
    ar_store_finalize(st);
    if (rc < 0)
        return rc;
    return r->out != NULL ? 0 : rc == AR_STORE_DONE ? AR_ENOTFOUND : AR_ENOMEM;
}

void ar__clinic_done(int status, void *arg)
{
    ar__req_t *r = arg;
    if (status == AR_ENOTFOUND) {
        ar__reply_error(r, 404, "not_found", "no such clinic");
        return;
    }
    if (status < 0) {
        ar__store_failed(r, status);
        return;
    }
    json_t *out = r->out;
    r->out = NULL;
    ar__reply_json(r, 200, out);
}

void ar__h_clinic_get(ar__req_t *r)
{
    (void)ar__submit(r, clinic_job, ar__clinic_done);
}
