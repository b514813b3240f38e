/*
 * Waiting areas and persistent rooms of a clinic, managed by its administrators (A2). Routes and
 * roles are in routes.c; every query names the path's clinic, so an administrator of one clinic
 * can never reach another clinic's rows through an id or slug of theirs.
 */
#include "hours.h"
#include "internal.h"

#include "anteroom/log.h"
#include "anteroom/rand.h"

#include <string.h>

#define NAME_MAX_LEN 200
#define WELCOME_MAX 2000
#define FIELDS_MAX 200

/* An area's fields; the name is required when the area is created. */
/* clang-format off */
#define AREA_FIELDS(name_required)                                                                 \
    {"name", AR_FIELD_STR, name_required, 1, NAME_MAX_LEN, AR_CS_TEXT},                            \
    {"time_zone", AR_FIELD_STR, 0, 1, AR_TZ_NAME_MAX, AR_CS_TEXT},                                 \
    {"hours", AR_FIELD_STR, 0, 0, AR_HOURS_TEXT_MAX, AR_CS_TEXT},                                  \
    {"welcome", AR_FIELD_STR, 0, 0, WELCOME_MAX, AR_CS_TEXT},                                      \
    {"fields_asked", AR_FIELD_STR, 0, 0, FIELDS_MAX, AR_CS_TEXT},                                  \
    {"profile", AR_FIELD_STR, 0, 1, 8, AR_CS_SLUG},                                                \
    {"relay_only", AR_FIELD_BOOL, 0, 0, 0, AR_CS_ANY}
/* clang-format on */

const ar_app_field_t ar__f_area_create[] = {
    {"slug", AR_FIELD_STR, 1, 1, 64, AR_CS_SLUG},
    AREA_FIELDS(1),
};
const size_t ar__f_area_create_n = sizeof(ar__f_area_create) / sizeof(ar__f_area_create[0]);
/* The same fields but the slug (the path names the area), all optional: a partial update. */
const ar_app_field_t ar__f_area_update[] = {
    AREA_FIELDS(0),
};
const size_t ar__f_area_update_n = sizeof(ar__f_area_update) / sizeof(ar__f_area_update[0]);
const ar_app_field_t ar__f_room_create[] = {
    {"name", AR_FIELD_STR, 1, 1, NAME_MAX_LEN, AR_CS_TEXT},
};
const size_t ar__f_room_create_n = sizeof(ar__f_room_create) / sizeof(ar__f_room_create[0]);

/* The questions a waiting area may ask. The answers go from the patient's browser to
 * signalling only; the app stores which questions, never an answer. */
static const char *const known_fields[] = {"name",   "date_of_birth", "phone",
                                           "reason", "email",         "interpreter"};

int ar__profile_ok(const char *p)
{
    return strcmp(p, "low") == 0 || strcmp(p, "standard") == 0 || strcmp(p, "high") == 0;
}

/* "name,phone": comma-separated names from known_fields, each at most once. */
static int fields_ok(const char *s)
{
    unsigned seen = 0;
    while (*s != '\0') {
        size_t n = strcspn(s, ",");
        int found = 0;
        for (size_t i = 0; i < sizeof(known_fields) / sizeof(known_fields[0]); i++)
            if (strlen(known_fields[i]) == n && memcmp(known_fields[i], s, n) == 0 &&
                !(seen & (1u << i))) {
                seen |= 1u << i;
                found = 1;
            }
        if (!found)
            return 0;
        s += n;
        if (*s == ',' && *++s == '\0')
            return 0;
    }
    return 1;
}

/* Checks the fields a table's grammar cannot: time zone, hours, questions, profile. Returns
 * NULL or the message (naming the field). */
static const char *area_semantics(json_t *b)
{
    const char *v;
    ar_hours_t h;
    if ((v = json_string_value(json_object_get(b, "time_zone"))) && !ar_tz_valid(v, strlen(v)))
        return "time_zone: not a time zone of the tz database (e.g. Europe/Berlin)";
    if ((v = json_string_value(json_object_get(b, "hours"))) && ar_hours_parse(v, strlen(v), &h))
        return "hours: write e.g. \"mon-fri 08:00-12:00 13:00-17:00; sat 09:00-12:00\"";
    if ((v = json_string_value(json_object_get(b, "fields_asked"))) && !fields_ok(v))
        return "fields_asked: comma-separated, from name, date_of_birth, phone, reason, email, "
               "interpreter";
    if ((v = json_string_value(json_object_get(b, "profile"))) && !ar__profile_ok(v))
        return "profile: low, standard or high";
    return NULL;
}

/* Binds a body string, or NULL when absent (partial updates keep the column). */
static int bind_opt_text(ar_store_stmt_t *st, int idx, json_t *b, const char *key, const char *dflt)
{
    json_t *v = json_object_get(b, key);
    if (v == NULL && dflt == NULL)
        return ar_store_bind_null(st, idx);
    const char *s = v ? json_string_value(v) : dflt;
    return ar_store_bind_text(st, idx, s, strlen(s));
}

static int bind_opt_bool(ar_store_stmt_t *st, int idx, json_t *b, const char *key, int dflt)
{
    json_t *v = json_object_get(b, key);
    if (v == NULL && dflt < 0)
        return ar_store_bind_null(st, idx);
    return ar_store_bind_int64(st, idx, v ? json_is_true(v) : dflt);
}

static json_t *area_json(ar_store_stmt_t *st)
{
    return json_pack(
        "{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:b}", "id", (json_int_t)ar_store_col_int64(st, 0),
        "slug", ar_store_col_text(st, 1, NULL), "name", ar_store_col_text(st, 2, NULL), "time_zone",
        ar_store_col_text(st, 3, NULL), "hours", ar_store_col_text(st, 4, NULL), "welcome",
        ar_store_col_text(st, 5, NULL), "fields_asked", ar_store_col_text(st, 6, NULL), "profile",
        ar_store_col_text(st, 7, NULL), "relay_only", ar_store_col_int64(st, 8) != 0);
}

#define AREA_COLS "id, slug, name, time_zone, hours, welcome, fields_asked, profile, relay_only"

/* ---- GET /api/v1/clinics/{clinic}/areas ---- */

static int areas_list_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    ar_store_stmt_t *st;
    int rc = ar__prep(c,
                      "SELECT " AREA_COLS " FROM waiting_areas WHERE clinic_id = $1 "
                      "ORDER BY slug LIMIT 500",
                      &st);
    if (rc < 0)
        return rc;
    r->out = json_pack("{s:[]}", "areas");
    json_t *list = json_object_get(r->out, "areas");
    rc = r->out ? ar_store_bind_int64(st, 1, r->clinic_id) : AR_ENOMEM;
    while (rc == 0 && (rc = ar_store_step(st)) == AR_STORE_ROW)
        rc = json_array_append_new(list, area_json(st)) == 0 ? 0 : AR_ENOMEM;
    ar_store_finalize(st);
    return rc < 0 ? rc : 0;
}

static void out_done(int status, void *arg)
{
    ar__req_t *r = arg;
    if (status == AR_ENOTFOUND) {
        ar__reply_error(r, 404, "not_found", "no such waiting area or room in this clinic");
        return;
    }
    if (status == AR_EEXIST) {
        ar__reply_error(r, 409, "conflict", "slug: already taken");
        return;
    }
    ar__reply_result(r, status);
}

void ar__h_areas_list(ar__req_t *r)
{
    (void)ar__submit(r, areas_list_job, out_done);
}

/* ---- POST /api/v1/clinics/{clinic}/areas ---- */

static int area_create_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    json_t *b = r->body;
    ar_store_stmt_t *st;
    int rc =
        ar__prep(c,
                 "INSERT INTO waiting_areas (clinic_id, slug, name, time_zone, hours, welcome, "
                 "fields_asked, profile, relay_only, created_at) "
                 "VALUES ($1, $2, $3, $4, $5, $6, $7, "
                 "COALESCE($8, (SELECT default_profile FROM clinics WHERE id = $1)), $9, $10) "
                 "RETURNING " AREA_COLS,
                 &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, r->clinic_id);
    rc = rc ? rc : bind_opt_text(st, 2, b, "slug", "");
    rc = rc ? rc : bind_opt_text(st, 3, b, "name", "");
    rc = rc ? rc : bind_opt_text(st, 4, b, "time_zone", "UTC");
    rc = rc ? rc : bind_opt_text(st, 5, b, "hours", "");
    rc = rc ? rc : bind_opt_text(st, 6, b, "welcome", "");
    rc = rc ? rc : bind_opt_text(st, 7, b, "fields_asked", "name");
    rc = rc ? rc : bind_opt_text(st, 8, b, "profile", NULL); /* else the clinic's default */
    rc = rc ? rc : bind_opt_bool(st, 9, b, "relay_only", 0);
    rc = rc ? rc : ar_store_bind_int64(st, 10, r->now);
    if (rc == 0 && (rc = ar_store_step(st)) == AR_STORE_ROW)
        r->out = area_json(st);
    ar_store_finalize(st);
    r->out_status = 201;
    return rc < 0 ? rc : r->out ? 0 : AR_ENOMEM;
}

void ar__h_area_create(ar__req_t *r)
{
    const char *bad = area_semantics(r->body);
    if (bad != NULL) {
        ar__reply_error(r, 400, "bad_request", bad);
        return;
    }
    (void)ar__submit(r, area_create_job, out_done);
}

/* ---- PATCH and DELETE /api/v1/clinics/{clinic}/areas/{area} ---- */

static int area_update_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    json_t *b = r->body;
    ar_store_stmt_t *st;
    int rc = ar__prep(c,
                      "UPDATE waiting_areas SET name = COALESCE($3, name), "
                      "time_zone = COALESCE($4, time_zone), hours = COALESCE($5, hours), "
                      "welcome = COALESCE($6, welcome), fields_asked = COALESCE($7, fields_asked), "
                      "profile = COALESCE($8, profile), relay_only = COALESCE($9, relay_only) "
                      "WHERE clinic_id = $1 AND slug = $2 RETURNING " AREA_COLS,
                      &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, r->clinic_id);
    rc = rc ? rc : ar_store_bind_text(st, 2, r->params.area, strlen(r->params.area));
    rc = rc ? rc : bind_opt_text(st, 3, b, "name", NULL);
    rc = rc ? rc : bind_opt_text(st, 4, b, "time_zone", NULL);
    rc = rc ? rc : bind_opt_text(st, 5, b, "hours", NULL);
    rc = rc ? rc : bind_opt_text(st, 6, b, "welcome", NULL);
    rc = rc ? rc : bind_opt_text(st, 7, b, "fields_asked", NULL);
    rc = rc ? rc : bind_opt_text(st, 8, b, "profile", NULL);
    rc = rc ? rc : bind_opt_bool(st, 9, b, "relay_only", -1);
    if (rc == 0 && (rc = ar_store_step(st)) == AR_STORE_ROW)
        r->out = area_json(st);
    ar_store_finalize(st);
    if (rc < 0)
        return rc;
    return r->out ? 0 : rc == AR_STORE_DONE ? AR_ENOTFOUND : AR_ENOMEM;
}

void ar__h_area_update(ar__req_t *r)
{
    const char *bad = area_semantics(r->body);
    if (bad != NULL) {
        ar__reply_error(r, 400, "bad_request", bad);
        return;
    }
    (void)ar__submit(r, area_update_job, out_done);
}

/* Deletes a row of the path's clinic; AR_ENOTFOUND when there was none. */
static int delete_job(ar_store_conn_t *c, ar__req_t *r, const char *sql, int by_slug)
{
    ar_store_stmt_t *st;
    int rc = ar__prep(c, sql, &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, r->clinic_id);
    rc = rc        ? rc
         : by_slug ? ar_store_bind_text(st, 2, r->params.area, strlen(r->params.area))
                   : ar_store_bind_int64(st, 2, r->params.room);
    if (rc == 0)
        rc = ar_store_step(st);
    int64_t n = ar_store_changes(st);
    ar_store_finalize(st);
    return rc < 0 ? rc : n == 0 ? AR_ENOTFOUND : 0;
}

static int area_delete_job(ar_store_conn_t *c, void *arg)
{
    return delete_job(c, arg, "DELETE FROM waiting_areas WHERE clinic_id = $1 AND slug = $2", 1);
}

void ar__h_area_delete(ar__req_t *r)
{
    (void)ar__submit(r, area_delete_job, out_done);
}

/* ---- rooms ---- */

static int rooms_list_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    ar_store_stmt_t *st;
    int rc = ar__prep(c,
                      "SELECT id, name, token_room FROM rooms WHERE clinic_id = $1 "
                      "ORDER BY id LIMIT 500",
                      &st);
    if (rc < 0)
        return rc;
    r->out = json_pack("{s:[]}", "rooms");
    json_t *list = json_object_get(r->out, "rooms");
    rc = r->out ? ar_store_bind_int64(st, 1, r->clinic_id) : AR_ENOMEM;
    while (rc == 0 && (rc = ar_store_step(st)) == AR_STORE_ROW) {
        json_t *o =
            json_pack("{s:I,s:s,s:s}", "id", (json_int_t)ar_store_col_int64(st, 0), "name",
                      ar_store_col_text(st, 1, NULL), "room", ar_store_col_text(st, 2, NULL));
        rc = json_array_append_new(list, o) == 0 ? 0 : AR_ENOMEM;
    }
    ar_store_finalize(st);
    return rc < 0 ? rc : 0;
}

void ar__h_rooms_list(ar__req_t *r)
{
    (void)ar__submit(r, rooms_list_job, out_done);
}

static int room_create_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    char room[32];
    if (ar_rand_id(room, sizeof(room), 16) < 0)
        return AR_EINVAL;
    ar_store_stmt_t *st;
    int rc = ar__prep(c,
                      "INSERT INTO rooms (clinic_id, token_room, name, created_at) "
                      "VALUES ($1, $2, $3, $4) RETURNING id",
                      &st);
    if (rc < 0)
        return rc;
    const char *name = json_string_value(json_object_get(r->body, "name"));
    rc = ar_store_bind_int64(st, 1, r->clinic_id);
    rc = rc ? rc : ar_store_bind_text(st, 2, room, strlen(room));
    rc = rc ? rc : ar_store_bind_text(st, 3, name, strlen(name));
    rc = rc ? rc : ar_store_bind_int64(st, 4, r->now);
    if (rc == 0 && (rc = ar_store_step(st)) == AR_STORE_ROW)
        r->out = json_pack("{s:I,s:s,s:s}", "id", (json_int_t)ar_store_col_int64(st, 0), "name",
                           name, "room", room);
    ar_store_finalize(st);
    r->out_status = 201;
    return rc < 0 ? rc : r->out ? 0 : AR_ENOMEM;
}

void ar__h_room_create(ar__req_t *r)
{
    (void)ar__submit(r, room_create_job, out_done);
}

static int room_delete_job(ar_store_conn_t *c, void *arg)
{
    return delete_job(c, arg, "DELETE FROM rooms WHERE clinic_id = $1 AND id = $2", 0);
}

void ar__h_room_delete(ar__req_t *r)
{
    (void)ar__submit(r, room_delete_job, out_done);
}
