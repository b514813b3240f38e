/*
 * PATCH /api/v1/clinics/{clinic}: a clinic's name, jurisdiction and settings (docs/api.md,
 * "Editing a clinic"). Absent fields keep their value.
 *
 * The jurisdiction decides whose servers the clinic's calls use (S10), so moving it is for an
 * operator alone, after re-authentication, and only to a jurisdiction this node's servers file
 * serves: the same check the app makes at start (it refuses to start when a clinic's
 * jurisdiction is unserved), made here before anything is written, so an edit can never leave
 * the store in a state the next start would refuse. Every change is audited in the same
 * transaction (clinic_updated; clinic_jurisdiction_changed when it moved).
 *
 * Settings: relay_only (every call of the clinic through a relay, S11; an area's own flag can
 * only add to it) and default_profile (the quality profile of areas created without one).
 */
#include "internal.h"

#include "audit.h"
#include "servers.h"

#include <string.h>

#define AUDIT_CLINIC_UPDATED "clinic_updated"
#define AUDIT_CLINIC_MOVED "clinic_jurisdiction_changed"

const ar_app_field_t ar__f_clinic_update[] = {
    {"name", AR_FIELD_STR, 0, 1, 200, AR_CS_TEXT},
    {"jurisdiction", AR_FIELD_STR, 0, 1, 64, AR_CS_SLUG},
    {"relay_only", AR_FIELD_BOOL, 0, 0, 0, AR_CS_ANY},
    {"default_profile", AR_FIELD_STR, 0, 1, 8, AR_CS_SLUG},
};
AR__CHECK_N(clinic_update);

static int bind_text_or_null(ar_store_stmt_t *st, int idx, json_t *b, const char *key)
{
    const char *s = json_string_value(json_object_get(b, key));
    return s != NULL ? ar_store_bind_text(st, idx, s, strlen(s)) : ar_store_bind_null(st, idx);
}

static int clinic_update_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    json_t *b = r->body;
    json_t *relay = json_object_get(b, "relay_only");
    int rc = ar_store_begin(c);
    ar_store_stmt_t *st = NULL;
    if (rc == 0)
        rc = ar__prep(c,
                      "UPDATE clinics SET name = COALESCE($1, name), "
                      "jurisdiction = COALESCE($2, jurisdiction), "
                      "relay_only = COALESCE($3, relay_only), "
                      "default_profile = COALESCE($4, default_profile) WHERE id = $5 "
                      "RETURNING id, name, jurisdiction, relay_only, default_profile",
                      &st);
    if (rc == 0) {
        rc = bind_text_or_null(st, 1, b, "name");
        rc = rc ? rc : bind_text_or_null(st, 2, b, "jurisdiction");
        rc = rc      ? rc
             : relay ? ar_store_bind_int64(st, 3, json_is_true(relay))
                     : ar_store_bind_null(st, 3);
        rc = rc ? rc : bind_text_or_null(st, 4, b, "default_profile");
        rc = rc ? rc : ar_store_bind_int64(st, 5, r->clinic_id);
        rc = rc ? rc : ar_store_step(st);
        if (rc == AR_STORE_ROW) {
            r->out = json_pack("{s:I,s:s,s:s,s:b,s:s}", "id", (json_int_t)ar_store_col_int64(st, 0),
                               "name", ar_store_col_text(st, 1, NULL), "jurisdiction",
                               ar_store_col_text(st, 2, NULL), "relay_only",
                               ar_store_col_int64(st, 3) != 0, "default_profile",
                               ar_store_col_text(st, 4, NULL));
            rc = r->out != NULL ? 0 : AR_ENOMEM;
        } else if (rc == AR_STORE_DONE) {
            rc = AR_ENOTFOUND;
        }
        ar_store_finalize(st);
    }
    if (rc == 0)
        rc = ar_app_audit_append(c, r->now, r->s.account_id, r->clinic_id, AUDIT_CLINIC_UPDATED);
    if (rc == 0 && json_object_get(b, "jurisdiction") != NULL)
        rc = ar_app_audit_append(c, r->now, r->s.account_id, r->clinic_id, AUDIT_CLINIC_MOVED);
    return ar__finish(c, rc);
}

void ar__h_clinic_update(ar__req_t *r)
{
    json_t *b = r->body;
    if (json_object_size(b) == 0) {
        ar__reply_error(r, 400, "bad_request", "name, jurisdiction, relay_only or default_profile");
        return;
    }
    /* The table allows 1 byte; a name of spaces only would show as nothing. */
    const char *name = json_string_value(json_object_get(b, "name"));
    if (name != NULL && strspn(name, " ") == strlen(name)) {
        ar__reply_error(r, 400, "bad_request", "name: must hold more than spaces");
        return;
    }
    const char *prof = json_string_value(json_object_get(b, "default_profile"));
    if (prof != NULL && !ar__profile_ok(prof)) {
        ar__reply_error(r, 400, "bad_request", "default_profile: low, standard or high");
        return;
    }
    const char *jur = json_string_value(json_object_get(b, "jurisdiction"));
    if (jur != NULL) {
        if (!r->s.is_operator) {
            ar__reply_error(r, 403, "forbidden",
                            "only an operator moves a clinic to another jurisdiction");
            return;
        }
        if (ar__reauth_refused(r))
            return;
        if (r->app->opts.servers == NULL || !ar_app_servers_serves(r->app->opts.servers, jur)) {
            ar__reply_error(r, 409, "jurisdiction_unserved",
                            "no signalling and TURN servers of that jurisdiction are configured");
            return;
        }
    }
    (void)ar__submit(r, clinic_update_job, ar__clinic_done);
}
