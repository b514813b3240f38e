/*
 * Staff of a clinic (issue 4, A1), for its administrators and operators:
 *   GET  /api/v1/clinics/{clinic}/staff                  members, their roles and MFA state
 *   PUT  /api/v1/clinics/{clinic}/staff/roles            {account_id, roles: "a,b"} (the set)
 *   POST /api/v1/clinics/{clinic}/staff/deactivate       {account_id}
 *   POST /api/v1/clinics/{clinic}/staff/mfa-reset        {account_id}
 * The three changes need a recent re-authentication (AR_REAUTH_S), act only on members of the
 * path's clinic (so one clinic's administrator cannot reach another's staff), never on an
 * operator unless the caller is one, and are audited with the account they change.
 */
#include "accounts.h"
#include "audit.h"
#include "internal.h"

#include <string.h>

const ar_app_field_t ar__f_staff_roles[] = {
    {"account_id", AR_FIELD_INT, 1, 1, INT64_MAX, AR_CS_ANY},
    /* Comma-separated role names; empty removes every role in the clinic. */
    {"roles", AR_FIELD_STR, 1, 0, 128, AR_CS_TEXT},
};
const size_t ar__f_staff_roles_n = sizeof(ar__f_staff_roles) / sizeof(ar__f_staff_roles[0]);
AR__CHECK_N(staff_roles);

const ar_app_field_t ar__f_staff_account[] = {
    {"account_id", AR_FIELD_INT, 1, 1, INT64_MAX, AR_CS_ANY},
};
const size_t ar__f_staff_account_n = sizeof(ar__f_staff_account) / sizeof(ar__f_staff_account[0]);
AR__CHECK_N(staff_account);

static int64_t target(const ar__req_t *r)
{
    return (int64_t)json_integer_value(json_object_get(r->body, "account_id"));
}

/* 1 when the target may be changed by this caller in this clinic; otherwise sets the refusal
 * and returns 0. */
static int target_ok(ar_store_conn_t *c, ar__req_t *r, int64_t account, int *rcp)
{
    ar_store_stmt_t *st;
    int rc =
        ar__query_ids(c,
                      "SELECT a.is_operator, (SELECT count(*) FROM memberships m WHERE "
                      "m.account_id = a.id AND m.clinic_id = $2) FROM accounts a WHERE a.id = $1",
                      account, r->clinic_id, &st);
    int oper = 0;
    int64_t members = 0;
    if (rc == AR_STORE_ROW) {
        oper = ar_store_col_int64(st, 0) != 0;
        members = ar_store_col_int64(st, 1);
    }
    ar_store_finalize(st);
    *rcp = rc < 0 ? rc : 0;
    if (rc < 0)
        return 0;
    if (members == 0) {
        ar__refuse(r, 404, "not_found", "no such member of this clinic");
        return 0;
    }
    if (oper && !r->s.is_operator) {
        ar__refuse(r, 403, "forbidden", "only an operator may change an operator");
        return 0;
    }
    return 1;
}

/* Opens the transaction every change to a staff member runs in and checks the target inside
 * it: 1 to go on; else 0 with nothing left open and *rcp the job's result (an error, or 0 with
 * the refusal set by target_ok). */
static int begin_on_target(ar_store_conn_t *c, ar__req_t *r, int64_t account, int *rcp)
{
    *rcp = ar_store_begin(c);
    if (*rcp < 0)
        return 0;
    if (!target_ok(c, r, account, rcp)) {
        (void)ar_store_rollback(c);
        return 0;
    }
    return 1;
}

/* ---- GET staff ---- */

static int list_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    ar_store_stmt_t *st;
    int rc = ar__prep(c,
                      "SELECT a.id, a.email, a.display_name, a.disabled, "
                      "CASE WHEN a.totp_secret IS NULL THEN 0 ELSE 1 END, m.role "
                      "FROM memberships m JOIN accounts a ON a.id = m.account_id "
                      "WHERE m.clinic_id = $1 ORDER BY a.id, m.role LIMIT 5000",
                      &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, r->clinic_id);
    json_t *list = json_array(), *cur = NULL;
    int64_t last = 0;
    while (rc == 0 && list != NULL && (rc = ar_store_step(st)) == AR_STORE_ROW) {
        rc = 0;
        int64_t id = ar_store_col_int64(st, 0);
        if (id != last) {
            cur = json_pack("{s:I,s:s,s:s,s:b,s:b,s:[]}", "account_id", (json_int_t)id, "email",
                            ar_store_col_text(st, 1, NULL), "display_name",
                            ar_store_col_text(st, 2, NULL), "disabled",
                            ar_store_col_int64(st, 3) != 0, "mfa_enrolled",
                            ar_store_col_int64(st, 4) != 0, "roles");
            if (cur == NULL || json_array_append_new(list, cur) != 0)
                rc = AR_ENOMEM;
            last = id;
        }
        if (rc == 0 && json_array_append_new(json_object_get(cur, "roles"),
                                             json_string(ar_store_col_text(st, 5, NULL))) != 0)
            rc = AR_ENOMEM;
    }
    ar_store_finalize(st);
    if (list == NULL)
        rc = AR_ENOMEM;
    if (rc < 0) {
        json_decref(list);
        return rc;
    }
    r->out = json_pack("{s:o}", "staff", list);
    return r->out != NULL ? 0 : AR_ENOMEM;
}

void ar__h_staff_list(ar__req_t *r)
{
    (void)ar__submit(r, list_job, ar__account_done);
}

/* ---- sensitive changes ---- */

/* Parses "a,b" into role bits; 0 with *bad set on an unknown or operator name. */
static unsigned parse_roles(const char *s, size_t len, int *bad)
{
    unsigned bits = 0;
    size_t i = 0;
    *bad = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && s[j] != ',')
            j++;
        unsigned b = ar_app_role_parse(s + i, j - i);
        if (b == 0 || b == AR_ROLE_OPERATOR)
            *bad = 1;
        bits |= b;
        i = j + 1;
    }
    return bits;
}

static int roles_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    int64_t account = target(r);
    json_t *jr = json_object_get(r->body, "roles");
    int bad;
    unsigned bits = parse_roles(json_string_value(jr), json_string_length(jr), &bad);
    int rc;
    if (!begin_on_target(c, r, account, &rc))
        return rc;
    rc = ar__exec_ids(c, "DELETE FROM memberships WHERE account_id = $1 AND clinic_id = $2",
                      account, r->clinic_id);
    for (unsigned b = AR_ROLE_CLINIC_ADMIN; rc == 0 && b <= AR_ROLE_REPORTER; b <<= 1) {
        if (!(bits & b))
            continue;
        const char *name = ar_app_role_name(b);
        ar_store_stmt_t *st;
        rc = ar__prep(
            c, "INSERT INTO memberships (account_id, clinic_id, role) VALUES ($1, $2, $3)", &st);
        if (rc < 0)
            break;
        rc = ar_store_bind_int64(st, 1, account);
        if (rc == 0)
            rc = ar_store_bind_int64(st, 2, r->clinic_id);
        if (rc == 0)
            rc = ar_store_bind_text(st, 3, name, strlen(name));
        rc = ar__run(st, rc);
    }
    if (rc == 0)
        rc = ar_app_audit_append_subject(c, r->now, r->s.account_id, account, r->clinic_id,
                                         AR_AUDIT_ROLES_CHANGED);
    r->out_status = 204;
    return ar__finish(c, rc);
}

void ar__h_staff_roles(ar__req_t *r)
{
    json_t *jr = json_object_get(r->body, "roles");
    int bad;
    (void)parse_roles(json_string_value(jr), json_string_length(jr), &bad);
    if (bad) {
        ar__reply_error(r, 400, "bad_request", "roles: a comma-separated list of clinic roles");
        return;
    }
    if (!ar__reauth_refused(r))
        (void)ar__submit(r, roles_job, ar__account_done);
}

static int deactivate_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    int64_t account = target(r);
    int rc;
    if (!begin_on_target(c, r, account, &rc))
        return rc;
    /* The clinic's roles go; the account itself is disabled (and signed out everywhere) only
     * when no other clinic and no operator role still need it. */
    rc = ar__exec_ids(c, "DELETE FROM memberships WHERE account_id = $1 AND clinic_id = $2",
                      account, r->clinic_id);
    if (rc == 0)
        rc = ar__exec_ids(
            c,
            "UPDATE accounts SET disabled = 1 WHERE id = $1 AND is_operator = 0 AND NOT "
            "EXISTS (SELECT 1 FROM memberships WHERE account_id = $1)",
            account, 0);
    if (rc == 0)
        rc = ar__exec_ids(c,
                          "DELETE FROM sessions WHERE account_id = $1 AND EXISTS (SELECT 1 FROM "
                          "accounts WHERE id = $1 AND disabled = 1)",
                          account, 0);
    if (rc == 0)
        rc = ar_app_audit_append_subject(c, r->now, r->s.account_id, account, r->clinic_id,
                                         AR_AUDIT_STAFF_DEACTIVATED);
    r->out_status = 204;
    return ar__finish(c, rc);
}

void ar__h_staff_deactivate(ar__req_t *r)
{
    if (target(r) == r->s.account_id) {
        ar__reply_error(r, 400, "bad_request", "account_id: you cannot deactivate yourself");
        return;
    }
    if (!ar__reauth_refused(r))
        (void)ar__submit(r, deactivate_job, ar__account_done);
}

static int mfa_reset_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    int64_t account = target(r);
    int rc;
    if (!begin_on_target(c, r, account, &rc))
        return rc;
    /* Every session and pending second step the person had ends now (sql.h). */
    rc = ar__mfa_reset(c, account);
    if (rc == 0)
        rc = ar_app_audit_append_subject(c, r->now, r->s.account_id, account, r->clinic_id,
                                         AR_AUDIT_MFA_RESET);
    r->out_status = 204;
    return ar__finish(c, rc);
}

void ar__h_staff_mfa_reset(ar__req_t *r)
{
    if (!ar__reauth_refused(r))
        (void)ar__submit(r, mfa_reset_job, ar__account_done);
}
