/*
 * Invite links for a third and fourth participant (C4). A clinician in a call asks for a link;
 * the app mints a one-time invitee token for that room (role invitee, the room, the clinic, an
 * optional language tag for an interpreter) and hands back the link the clinician passes on:
 *
 *   /patient.html#invite=<token>&servers=<base64url of the servers JSON>&monitor=<token>
 *
 * All travel in the fragment, so they reach no server log; the page removes them from the
 * address bar at once. The app does not know which room the clinician is in (rooms live in
 * signalling): it mints for the room named in the body, which the clinician's own staff token
 * already opens (any room of the clinic). Signalling lets each invitee token open one session
 * (src/signal/srv.c) and refuses a fifth participant (room_full).
 *
 * Persistent rooms (C6): GET .../rooms/{room}/signal-token gives a member of the clinic a staff
 * token naming the room's token id, so signalling lets every member holding one open or join
 * it (a staff token may name a room; its clinic roles come along as in /api/v1/signal-token).
 */
#include "internal.h"
#include "keys.h"
#include "servers.h"

#include "anteroom/alloc.h"
#include "anteroom/rand.h"
#include "anteroom/token.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* Token ids: [A-Za-z0-9._-]; language tags: [A-Za-z0-9-] (docs/tokens.md, docs/protocol.md). */
const ar_app_field_t ar__f_invite_token[] = {
    {"room", AR_FIELD_STR, 1, 1, AR_TOKEN_ID_MAX - 1, AR_CS_ID},
    {"lang", AR_FIELD_STR, 0, 2, 35, AR_CS_LANG},
};
const size_t ar__f_invite_token_n = sizeof(ar__f_invite_token) / sizeof(ar__f_invite_token[0]);

static int clinic_jur(ar_store_conn_t *c, int64_t clinic, char *jur, size_t cap)
{
    static const char sql[] = "SELECT jurisdiction FROM clinics WHERE id = $1";
    ar_store_stmt_t *st;
    int rc = ar__query_ids(c, sql, clinic, 0, &st);
    if (rc == AR_STORE_ROW) {
        const char *j = ar_store_col_text(st, 0, NULL);
        rc = j && strlen(j) < cap ? 0 : AR_ENOTFOUND;
        if (rc == 0)
            snprintf(jur, cap, "%s", j);
    } else if (rc == AR_STORE_DONE) {
        rc = AR_ENOTFOUND;
    }
    ar_store_finalize(st);
    return rc;
}

/* The link's path and fragment; the page joins it to its own origin. */
static json_t *link_for(const char *token, const char *mon, json_t *srv)
{
    char *js = json_dumps(srv, JSON_COMPACT);
    if (js == NULL)
        return NULL;
    size_t n = strlen(js);
    size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *b64 = ar_malloc(cap);
    size_t lcap = cap + strlen(token) + strlen(mon) + 64;
    char *link = ar_malloc(lcap);
    json_t *out = NULL;
    if (b64 && link) {
        sodium_bin2base64(b64, cap, (const unsigned char *)js, n,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        snprintf(link, lcap, "/patient.html#invite=%s&servers=%s&monitor=%s", token, b64, mon);
        out = json_string(link);
    }
    free(js);
    ar_free(b64);
    ar_free(link);
    return out;
}

static int invite_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    const char *room = json_string_value(json_object_get(r->body, "room"));
    const char *lang = json_string_value(json_object_get(r->body, "lang"));
    if (room == NULL) /* never: the field table requires it */
        return AR_EINVAL;
    ar_token_claims_t cl = {
        .role = AR_TOKEN_INVITEE, .iat = r->now, .exp = r->now + AR_APP_PATIENT_TOKEN_TTL};
    snprintf(cl.aud, sizeof(cl.aud), "signal");
    snprintf(cl.room, sizeof(cl.room), "%s", room);
    snprintf(cl.clinic, sizeof(cl.clinic), "%lld", (long long)r->clinic_id);
    snprintf(cl.lang, sizeof(cl.lang), "%s", lang ? lang : "");
    char token[AR_TOKEN_MAX], mon[AR_TOKEN_MAX];
    json_t *srv = NULL;
    int rc = clinic_jur(c, r->clinic_id, cl.jur, sizeof(cl.jur));
    rc = rc ? rc : ar__mint_call(c, r, &cl, token, mon, AR_TOKEN_MAX, &srv);
    if (rc < 0)
        return rc;
    json_t *link = link_for(token, mon, srv);
    if (link == NULL) {
        json_decref(srv);
        return AR_ENOMEM;
    }
    r->out = json_pack("{s:s,s:o,s:I,s:s,s:o,s:s}", "token", token, "link", link, "expires_at",
                       (json_int_t)cl.exp, "lang", cl.lang, "servers", srv, "monitor_token", mon);
    r->out_status = 201;
    return r->out ? 0 : AR_ENOMEM;
}

static void invite_done(int status, void *arg)
{
    ar__req_t *r = arg;
    switch (status) {
    case AR_EUNSUPPORTED:
    case AR_ENOTFOUND:
        ar__reply_error(r, 503, "unavailable", "no signing key or servers are configured");
        return;
    default:
        break;
    }
    ar__reply_result(r, status);
}

void ar__h_invite_token(ar__req_t *r)
{
    (void)ar__submit(r, invite_job, invite_done);
}

/* ---- GET /api/v1/clinics/{clinic}/rooms/{room}/signal-token (C6) ---- */

static int room_of(ar_store_conn_t *c, ar__req_t *r, char *room, size_t cap)
{
    static const char sql[] = "SELECT token_room FROM rooms WHERE clinic_id = $1 AND id = $2";
    ar_store_stmt_t *st;
    int rc = ar__query_ids(c, sql, r->clinic_id, r->params.room, &st);
    if (rc == AR_STORE_ROW) {
        const char *t = ar_store_col_text(st, 0, NULL);
        rc = t && strlen(t) < cap ? 0 : AR_ENOTFOUND;
        if (rc == 0)
            snprintf(room, cap, "%s", t);
    } else if (rc == AR_STORE_DONE) {
        rc = AR_ENOTFOUND;
    }
    ar_store_finalize(st);
    return rc;
}

/* The account's roles in this clinic, as the staff token carries them. */
static int roles_in(ar_store_conn_t *c, ar__req_t *r, ar_token_clinic_t *cl)
{
    static const char sql[] = "SELECT role FROM memberships WHERE account_id = $1 AND "
                              "clinic_id = $2 ORDER BY role LIMIT 8";
    ar_store_stmt_t *st;
    int rc = ar_store_prepare(c, sql, sizeof(sql) - 1, &st);
    if (rc < 0)
        return rc;
    snprintf(cl->id, sizeof(cl->id), "%lld", (long long)r->clinic_id);
    rc = ar_store_bind_int64(st, 1, r->s.account_id);
    rc = rc ? rc : ar_store_bind_int64(st, 2, r->clinic_id);
    while (rc == 0 && (rc = ar_store_step(st)) == AR_STORE_ROW)
        if (cl->nroles < AR_TOKEN_MAX_ROLES) {
            snprintf(cl->roles[cl->nroles++], sizeof(cl->roles[0]), "%s",
                     ar_store_col_text(st, 0, NULL));
            rc = 0;
        } else {
            rc = 0;
        }
    ar_store_finalize(st);
    if (rc < 0)
        return rc;
    return cl->nroles > 0 ? 0 : AR_EPERM; /* an operator without a clinic role */
}

static int room_token_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    ar_token_claims_t cl = {
        .role = AR_TOKEN_STAFF, .iat = r->now, .exp = r->now + AR_APP_STAFF_TOKEN_TTL};
    snprintf(cl.aud, sizeof(cl.aud), "signal");
    cl.nclinics = 1;
    char token[AR_TOKEN_MAX], mon[AR_TOKEN_MAX];
    json_t *srv = NULL;
    int rc = room_of(c, r, cl.room, sizeof(cl.room));
    rc = rc ? rc : roles_in(c, r, &cl.clinics[0]);
    rc = rc ? rc : clinic_jur(c, r->clinic_id, cl.jur, sizeof(cl.jur));
    if (rc == 0)
        ar__staff_subject(r, cl.jur, cl.sub); /* renewable in place (refresh) */
    rc = rc ? rc : ar__mint_call(c, r, &cl, token, mon, AR_TOKEN_MAX, &srv);
    if (rc < 0)
        return rc;
    r->out = json_pack("{s:s,s:s,s:I,s:o,s:s}", "room", cl.room, "token", token, "expires_at",
                       (json_int_t)cl.exp, "servers", srv, "monitor_token", mon);
    return r->out ? 0 : AR_ENOMEM;
}

static void room_token_done(int status, void *arg)
{
    ar__req_t *r = arg;
    if (status == AR_ENOTFOUND) {
        ar__reply_error(r, 404, "not_found", "no such room in this clinic");
        return;
    }
    if (status == AR_EPERM) {
        ar__reply_error(r, 403, "forbidden", "no role in this clinic");
        return;
    }
    invite_done(status, arg);
}

void ar__h_room_token(ar__req_t *r)
{
    (void)ar__submit(r, room_token_job, room_token_done);
}

/* ---- call monitor tokens (docs/monitor.md) ---- */

int ar__mint_call(ar_store_conn_t *c, ar__req_t *r, ar_token_claims_t *cl, char *token, char *mon,
                  size_t cap, json_t **servers)
{
    *servers = NULL;
    const ar_app_servers_t *served = r->app->opts.servers;
    if (served == NULL || !ar_app_servers_serves(served, cl->jur))
        return AR_EUNSUPPORTED;
    if (!cl->sub[0] && ar_rand_id(cl->sub, sizeof(cl->sub), 16) < 0)
        return AR_EINVAL;
    ar_token_key_t key;
    char secret[AR_APP_TURN_SECRET_MAX];
    int rc = ar_app_keys_newest(c, r->app->seal_key, r->now, &key);
    if (rc == 0)
        rc = ar_app_turn_secret_newest(c, r->app->seal_key, r->now, secret, sizeof(secret));
    if (rc == 0)
        rc = ar_token_mint(&key, cl, token, cap);
    if (rc >= 0)
        rc = ar__mint_monitor_token(&key, cl, r->now, mon, cap);
    sodium_memzero(&key, sizeof(key));
    if (rc >= 0) {
        *servers = ar_app_servers_for(r->app->opts.servers, cl->jur, ar_app_servers_place(cl),
                                      secret, strlen(secret), r->now, AR_APP_TURN_TTL);
        rc = *servers != NULL ? 0 : AR_ENOMEM;
    }
    sodium_memzero(secret, sizeof(secret));
    return rc < 0 ? rc : 0;
}

int ar__mint_monitor_token(const ar_token_key_t *key, const ar_token_claims_t *from, int64_t now,
                           char *out, size_t cap)
{
    /* No identities: a fresh subject and room; the clinic (and a patient's area) only; an
     * invitee's language stays out. */
    ar_token_claims_t *cl = ar_calloc(1, sizeof(*cl));
    if (cl == NULL)
        return AR_ENOMEM;
    snprintf(cl->aud, sizeof(cl->aud), "monitor");
    cl->role = from->role;
    cl->iat = now;
    cl->exp = from->exp;
    snprintf(cl->jur, sizeof(cl->jur), "%s", from->jur);
    snprintf(cl->clinic, sizeof(cl->clinic), "%s", from->clinic);
    snprintf(cl->area, sizeof(cl->area), "%s", from->area);
    if (from->role == AR_TOKEN_STAFF && from->nclinics > 0) {
        cl->clinics[0] = from->clinics[0]; /* the monitor counts a staff report for one clinic */
        cl->nclinics = 1;
    }
    int rc = ar_rand_id(cl->sub, sizeof(cl->sub), 16) < 0 ? AR_EINVAL : 0;
    /* Patient and invitee tokens must name a room: a random one, not the call's. */
    if (rc == 0 && from->role != AR_TOKEN_STAFF && ar_rand_id(cl->room, sizeof(cl->room), 16) < 0)
        rc = AR_EINVAL;
    if (rc == 0)
        rc = ar_token_mint(key, cl, out, cap);
    ar_free(cl);
    return rc < 0 ? rc : 0;
}
