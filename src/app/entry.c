/*
 * Patient entry (P1-P4, S4). A patient opens a waiting area's link; the page asks the area's
 * questions, and the answers travel from the browser to signalling only. The app's part is to
 * say whether the area is open and to hand out a one-time room and a patient token:
 *
 *   - the POST takes an empty JSON object and refuses any field (a browser that sent a name here
 *     by mistake gets a 400 naming the field, and the value is neither stored nor logged);
 *   - the one-time room id is 128 random bits, written nowhere: it lives in the token;
 *   - the only row the entry touches is an hourly counter per clinic and area (no identities).
 */
#include "hours.h"
#include "internal.h"
#include "keys.h"
#include "servers.h"

#include "anteroom/log.h"
#include "anteroom/rand.h"
#include "anteroom/token.h"

#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* No fields: the table is empty, so every key in the body is refused. */
const ar_app_field_t ar__f_entry[1] = {{NULL, AR_FIELD_STR, 0, 0, 0, AR_CS_ANY}};

#define DEFAULT_PER_MINUTE 10u

typedef struct {
    int64_t area_id;
    char name[256];
    char tz[AR_TZ_NAME_MAX + 1];
    char hours[AR_HOURS_TEXT_MAX + 1];
    char fields[256];
    char profile[12];
    char jur[AR_TOKEN_ID_MAX];
    int relay_only;
    int open;
} area_t;

static int load_area(ar_store_conn_t *c, ar__req_t *r, area_t *a, json_t **welcome)
{
    static const char sql[] =
        "SELECT a.id, a.name, a.time_zone, a.hours, a.fields_asked, a.profile, "
        "CASE WHEN a.relay_only = 1 OR c.relay_only = 1 THEN 1 ELSE 0 END, "
        "c.jurisdiction, a.welcome FROM waiting_areas a JOIN clinics c ON c.id = a.clinic_id "
        "WHERE a.clinic_id = $1 AND a.slug = $2";
    ar_store_stmt_t *st;
    int rc = ar_store_prepare(c, sql, sizeof(sql) - 1, &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, r->clinic_id);
    rc = rc ? rc : ar_store_bind_text(st, 2, r->params.area, strlen(r->params.area));
    rc = rc ? rc : ar_store_step(st);
    if (rc == AR_STORE_ROW) {
        a->area_id = ar_store_col_int64(st, 0);
        snprintf(a->name, sizeof(a->name), "%s", ar_store_col_text(st, 1, NULL));
        snprintf(a->tz, sizeof(a->tz), "%s", ar_store_col_text(st, 2, NULL));
        snprintf(a->hours, sizeof(a->hours), "%s", ar_store_col_text(st, 3, NULL));
        snprintf(a->fields, sizeof(a->fields), "%s", ar_store_col_text(st, 4, NULL));
        snprintf(a->profile, sizeof(a->profile), "%s", ar_store_col_text(st, 5, NULL));
        a->relay_only = ar_store_col_int64(st, 6) != 0;
        snprintf(a->jur, sizeof(a->jur), "%s", ar_store_col_text(st, 7, NULL));
        if (welcome != NULL)
            *welcome = json_string(ar_store_col_text(st, 8, NULL));
        rc = 0;
    } else if (rc == AR_STORE_DONE) {
        rc = AR_ENOTFOUND;
    }
    ar_store_finalize(st);
    if (rc < 0)
        return rc;
    /* Hours were checked when they were written; a row that no longer parses reads closed. */
    ar_hours_t h;
    a->open = 0;
    if (ar_hours_parse(a->hours, strlen(a->hours), &h) == 0 &&
        ar_hours_open_at(&h, a->tz, r->now, &a->open) < 0)
        a->open = 0;
    return 0;
}

static json_t *fields_array(const char *s)
{
    json_t *arr = json_array();
    while (arr != NULL && *s != '\0') {
        size_t n = strcspn(s, ",");
        json_array_append_new(arr, json_stringn(s, n));
        s += n + (s[n] == ',');
    }
    return arr;
}

/* ---- GET /api/v1/entry/{clinic}/{area} ---- */

static int entry_get_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    area_t a;
    memset(&a, 0, sizeof(a));
    json_t *welcome = NULL;
    int rc = load_area(c, r, &a, &welcome);
    if (rc < 0)
        return rc;
    r->out = json_pack("{s:I,s:s,s:s,s:o,s:s,s:s,s:b,s:o,s:s,s:b}", "clinic",
                       (json_int_t)r->clinic_id, "area", r->params.area, "name", a.name, "welcome",
                       welcome ? welcome : json_string(""), "hours", a.hours, "time_zone", a.tz,
                       "open_now", a.open, "fields_asked", fields_array(a.fields), "profile",
                       a.profile, "relay_only", a.relay_only);
    return r->out ? 0 : AR_ENOMEM;
}

static void entry_done(int status, void *arg)
{
    ar__req_t *r = arg;
    switch (status) {
    case AR_ENOTFOUND:
        ar__reply_error(r, 404, "not_found", "no such waiting area");
        return;
    case AR_ESTATE:
        ar__reply_error(r, 409, "closed", "the waiting area is closed now; see its hours");
        return;
    case AR_EUNSUPPORTED:
        ar__reply_error(r, 503, "unavailable", "no servers for this clinic's jurisdiction");
        return;
    default:
        break;
    }
    ar__reply_result(r, status);
}

void ar__h_entry_get(ar__req_t *r)
{
    (void)ar__submit(r, entry_get_job, entry_done);
}

/* ---- POST /api/v1/entry/{clinic}/{area} ---- */

/* Counts the entry in its hour; an upsert both engines spell the same way. */
static int count_entry(ar_store_conn_t *c, ar__req_t *r, int64_t area_id)
{
    static const char sql[] =
        "INSERT INTO usage_hourly (clinic_id, area_id, hour, metric, value) "
        "VALUES ($1, $2, $3, 'entries', 1) ON CONFLICT (clinic_id, area_id, hour, metric) "
        "DO UPDATE SET value = usage_hourly.value + 1";
    ar_store_stmt_t *st;
    int rc = ar_store_prepare(c, sql, sizeof(sql) - 1, &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, r->clinic_id);
    rc = rc ? rc : ar_store_bind_int64(st, 2, area_id);
    rc = rc ? rc : ar_store_bind_int64(st, 3, r->now / 3600);
    rc = rc ? rc : ar_store_step(st);
    ar_store_finalize(st);
    return rc < 0 ? rc : 0;
}

static int entry_post_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    area_t a;
    memset(&a, 0, sizeof(a));
    int rc = load_area(c, r, &a, NULL);
    if (rc < 0)
        return rc;
    if (!a.open)
        return AR_ESTATE;
    ar_token_claims_t cl = {
        .role = AR_TOKEN_PATIENT, .iat = r->now, .exp = r->now + AR_APP_PATIENT_TOKEN_TTL};
    snprintf(cl.aud, sizeof(cl.aud), "signal");
    snprintf(cl.clinic, sizeof(cl.clinic), "%lld", (long long)r->clinic_id);
    snprintf(cl.area, sizeof(cl.area), "%lld", (long long)a.area_id);
    snprintf(cl.jur, sizeof(cl.jur), "%s", a.jur);
    snprintf(cl.profile, sizeof(cl.profile), "%s", a.profile);
    /* The one-time room (and in ar__mint_call the subject): 128 random bits each, stored
     * nowhere. */
    if (ar_rand_id(cl.room, sizeof(cl.room), 16) < 0)
        return AR_EINVAL;
    char token[AR_TOKEN_MAX], mon[AR_TOKEN_MAX];
    json_t *srv = NULL;
    rc = ar__mint_call(c, r, &cl, token, mon, AR_TOKEN_MAX, &srv);
    /* Counted only once the answer can be given: a refused entry is no entry. */
    if (rc == 0 && (rc = count_entry(c, r, a.area_id)) < 0)
        json_decref(srv);
    if (rc < 0)
        return rc;
    r->out = json_pack("{s:s,s:s,s:I,s:s,s:b,s:o,s:s}", "room", cl.room, "token", token,
                       "expires_at", (json_int_t)cl.exp, "profile", a.profile, "relay_only",
                       a.relay_only, "servers", srv, "monitor_token", mon);
    r->out_status = 201;
    return r->out ? 0 : AR_ENOMEM;
}

/* One minute's entries from this address: 1 when under the limit (and counted). Slots are
 * keyed by SipHash of the address under a key made at start, so the table holds no address;
 * a collision only shares a budget. IPv6 counts per /64 (one host's usual allocation). */
static int entry_allowed(ar__req_t *r)
{
    ar_app_t *app = r->app;
    ar__entry_rl_t *rl = &app->entry_rl;
    static const uint8_t zero[16];
    if (memcmp(rl->hash_key, zero, 16) == 0)
        ar_rand_bytes(rl->hash_key, sizeof(rl->hash_key));
    int64_t minute = r->now / 60;
    if (minute != rl->minute) {
        memset(rl->key, 0, sizeof(rl->key));
        memset(rl->count, 0, sizeof(rl->count));
        rl->minute = minute;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t sl = r->req->conn->callbacks->get_peername(r->req->conn, (struct sockaddr *)&ss);
    const uint8_t *p = (const uint8_t *)&ss;
    size_t n = sl;
    if (ss.ss_family == AF_INET) {
        p = (const uint8_t *)&((struct sockaddr_in *)&ss)->sin_addr;
        n = 4;
    } else if (ss.ss_family == AF_INET6) {
        p = (const uint8_t *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
        n = 8;
    }
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, p, n, rl->hash_key);
    uint64_t k;
    memcpy(&k, h, sizeof(k));
    k |= 1; /* 0 marks a free slot */
    unsigned limit = app->opts.entry_per_minute ? app->opts.entry_per_minute : DEFAULT_PER_MINUTE;
    size_t slot = (size_t)(k % AR__ENTRY_RL_SLOTS);
    if (rl->key[slot] != k) {
        rl->key[slot] = k;
        rl->count[slot] = 0;
    }
    if (rl->count[slot] >= limit)
        return 0;
    rl->count[slot]++;
    return 1;
}

void ar__h_entry_post(ar__req_t *r)
{
    if (!entry_allowed(r)) {
        ar_log(AR_LOG_INFO, "entry_rate_limited");
        ar__add_header(r, "retry-after", "60", 2);
        ar__reply_error(r, 429, "rate_limited", "too many entries from this address; wait");
        return;
    }
    (void)ar__submit(r, entry_post_job, entry_done);
}
