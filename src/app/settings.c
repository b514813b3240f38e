/*
 * Clinic settings an administrator may change (A2). For now the clinic's name: the jurisdiction
 * decides which servers carry the clinic's calls (S10), so it stays with the operator's tools
 * (`anteroom admin`), not with this API.
 */
#include "internal.h"
#include "settings.h"

#include <string.h>

#define CLINIC_NAME_MAX 200

const ar_app_field_t ar__f_clinic_update[] = {
    {"name", AR_FIELD_STR, 1, 1, CLINIC_NAME_MAX, AR_CS_TEXT},
};
_Static_assert(sizeof(ar__f_clinic_update) / sizeof(ar__f_clinic_update[0]) == AR__N_clinic_update,
               "AR__N_clinic_update is the size of ar__f_clinic_update");

static int update_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    static const char sql[] =
        "UPDATE clinics SET name = $2 WHERE id = $1 RETURNING id, name, jurisdiction";
    ar_store_stmt_t *st;
    int rc = ar_store_prepare(c, sql, sizeof(sql) - 1, &st);
    if (rc < 0)
        return rc;
    const char *name = json_string_value(json_object_get(r->body, "name"));
    rc = ar_store_bind_int64(st, 1, r->clinic_id);
    rc = rc ? rc : ar_store_bind_text(st, 2, name, strlen(name));
    if (rc == 0 && (rc = ar_store_step(st)) == AR_STORE_ROW)
        r->out = json_pack("{s:I,s:s,s:s}", "id", (json_int_t)ar_store_col_int64(st, 0), "name",
                           ar_store_col_text(st, 1, NULL), "jurisdiction",
                           ar_store_col_text(st, 2, NULL));
    ar_store_finalize(st);
    if (rc < 0)
        return rc;
    return r->out != NULL ? 0 : rc == AR_STORE_DONE ? AR_ENOTFOUND : AR_ENOMEM;
}

static void update_done(int status, void *arg)
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
    ar__reply_out(r, 200);
}

void ar__h_clinic_update(ar__req_t *r)
{
    const char *name = json_string_value(json_object_get(r->body, "name"));
    /* The table allows 1 byte; a name of spaces only would show as nothing. */
    if (name == NULL || strspn(name, " ") == strlen(name)) {
        ar__reply_error(r, 400, "bad_request", "name: must hold more than spaces");
        return;
    }
    (void)ar__submit(r, update_job, update_done);
}
