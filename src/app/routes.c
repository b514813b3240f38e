/*
 * The route table. Add an endpoint here and in docs/openapi.yaml; the tests then hold it to its
 * documentation and run it through the authorization matrix.
 */
#include "internal.h"
#include "reports.h"

#include <string.h>

static const ar_app_route_t routes[] = {
    {"POST", "/api/v1/session", ar__h_session_create, AR_AUTH_PUBLIC, 0, 1, ar__f_session_create, 2,
     "Sign in with email and password (first step when a second factor is enrolled)", 0},
    {"DELETE", "/api/v1/session", ar__h_session_delete, AR_AUTH_SESSION, 0, 1, NULL, 0,
     "Sign out (this session)", 0},
    {"DELETE", "/api/v1/sessions", ar__h_sessions_delete_all, AR_AUTH_SESSION, 0, 1, NULL, 0,
     "Sign out everywhere (every session of the account)", 0},
    {"GET", "/api/v1/me", ar__h_me, AR_AUTH_SESSION, 0, 0, NULL, 0,
     "The signed-in account, its roles and the CSRF token", 0},
    {"GET", "/api/v1/clinics/{clinic}", ar__h_clinic_get, AR_AUTH_CLINIC,
     AR_ROLE_OPERATOR | AR_ROLE_STAFF, 0, NULL, 0, "A clinic's name and jurisdiction", 0},
    /* clinic_edit.c (moving to another jurisdiction: operator only, re-authenticated) */
    {"PATCH", "/api/v1/clinics/{clinic}", ar__h_clinic_update, AR_AUTH_CLINIC,
     AR_ROLE_OPERATOR | AR_ROLE_CLINIC_ADMIN, 1, ar__f_clinic_update, AR__N_clinic_update,
     "Change a clinic's name, jurisdiction or settings", 0},
/* ---- accounts (issue 4): signin.c, invite.c, staff.c, me.c ---- */
#define F(name) ar__f_##name, AR__N_##name
#define ADMINS (AR_ROLE_OPERATOR | AR_ROLE_CLINIC_ADMIN)
    {"POST", "/api/v1/session/mfa", ar__h_session_mfa, AR_AUTH_PUBLIC, 0, 1, F(session_mfa),
     "Sign-in, second step: the TOTP code or a recovery code", 0},
    {"POST", "/api/v1/session/reauth", ar__h_session_reauth, AR_AUTH_SESSION, 0, 1,
     F(session_reauth), "Prove the password (and code) again before a sensitive change", 0},
    {"POST", "/api/v1/me/totp", ar__h_totp_begin, AR_AUTH_SESSION, 0, 1, NULL, 0,
     "Start TOTP enrolment: otpauth URI and QR code", 0},
    {"POST", "/api/v1/me/totp/confirm", ar__h_totp_confirm, AR_AUTH_SESSION, 0, 1, F(totp_confirm),
     "Confirm enrolment with a code; returns the recovery codes once", 0},
    {"PUT", "/api/v1/me/password", ar__h_password_change, AR_AUTH_SESSION, 0, 1, F(password_change),
     "Change the password (re-authentication required)", 0},
    {"POST", "/api/v1/invitations/accept", ar__h_invitation_accept, AR_AUTH_PUBLIC, 0, 1,
     F(invitation_accept), "Accept an invitation: set the password, or join with an account", 0},
    {"POST", "/api/v1/clinics/{clinic}/invitations", ar__h_invitation_create, AR_AUTH_CLINIC,
     ADMINS, 1, F(invitation_create), "Invite an email address with a role", 0},
    {"GET", "/api/v1/clinics/{clinic}/staff", ar__h_staff_list, AR_AUTH_CLINIC, ADMINS, 0, NULL, 0,
     "The clinic's staff, their roles and second-factor state", 0},
    {"PUT", "/api/v1/clinics/{clinic}/staff/roles", ar__h_staff_roles, AR_AUTH_CLINIC, ADMINS, 1,
     F(staff_roles), "Set a member's roles (re-authentication required)", 0},
    {"POST", "/api/v1/clinics/{clinic}/staff/deactivate", ar__h_staff_deactivate, AR_AUTH_CLINIC,
     ADMINS, 1, F(staff_account), "Remove a member (re-authentication required)", 0},
    {"POST", "/api/v1/clinics/{clinic}/staff/mfa-reset", ar__h_staff_mfa_reset, AR_AUTH_CLINIC,
     ADMINS, 1, F(staff_account), "Reset a member's second factor (re-authentication required)", 0},
#undef ADMINS
#undef F
    /* ---- clinics, waiting areas, rooms, patient entry, tokens (areas.c, entry.c,
     * tokens_api.c) ---- */
    {"GET", "/api/v1/clinics/{clinic}/areas", ar__h_areas_list, AR_AUTH_CLINIC,
     AR_ROLE_OPERATOR | AR_ROLE_STAFF, 0, NULL, 0, "The clinic's waiting areas", 0},
    {"POST", "/api/v1/clinics/{clinic}/areas", ar__h_area_create, AR_AUTH_CLINIC,
     AR_ROLE_OPERATOR | AR_ROLE_CLINIC_ADMIN, 1, ar__f_area_create, 8, "Create a waiting area", 0},
    {"PATCH", "/api/v1/clinics/{clinic}/areas/{area}", ar__h_area_update, AR_AUTH_CLINIC,
     AR_ROLE_OPERATOR | AR_ROLE_CLINIC_ADMIN, 1, ar__f_area_update, 7,
     "Change a waiting area's settings", 0},
    {"DELETE", "/api/v1/clinics/{clinic}/areas/{area}", ar__h_area_delete, AR_AUTH_CLINIC,
     AR_ROLE_OPERATOR | AR_ROLE_CLINIC_ADMIN, 1, NULL, 0, "Delete a waiting area", 0},
    {"GET", "/api/v1/clinics/{clinic}/rooms", ar__h_rooms_list, AR_AUTH_CLINIC,
     AR_ROLE_OPERATOR | AR_ROLE_STAFF, 0, NULL, 0, "The clinic's persistent rooms", 0},
    {"POST", "/api/v1/clinics/{clinic}/rooms", ar__h_room_create, AR_AUTH_CLINIC,
     AR_ROLE_OPERATOR | AR_ROLE_CLINIC_ADMIN, 1, ar__f_room_create, 1, "Create a persistent room",
     0},
    {"DELETE", "/api/v1/clinics/{clinic}/rooms/{room}", ar__h_room_delete, AR_AUTH_CLINIC,
     AR_ROLE_OPERATOR | AR_ROLE_CLINIC_ADMIN, 1, NULL, 0, "Delete a persistent room", 0},
    /* ---- reports (A4): reports.c ---- */
    {"GET", "/api/v1/clinics/{clinic}/reports", ar__h_report, AR_AUTH_CLINIC,
     AR_ROLE_OPERATOR | AR_ROLE_CLINIC_ADMIN | AR_ROLE_REPORTER, 0, NULL, 0,
     "Calls, entries, durations and quality per day or hour over a date range", 0},
    {"GET", "/api/v1/clinics/{clinic}/reports.csv", ar__h_report_csv, AR_AUTH_CLINIC,
     AR_ROLE_OPERATOR | AR_ROLE_CLINIC_ADMIN | AR_ROLE_REPORTER, 0, NULL, 0,
     "The same report as a CSV download", 0},
    {"GET", "/api/v1/entry/{clinic}/{area}", ar__h_entry_get, AR_AUTH_PUBLIC, 0, 0, NULL, 0,
     "A waiting area's public page (welcome, hours, open now, questions)", 0},
    {"POST", "/api/v1/entry/{clinic}/{area}", ar__h_entry_post, AR_AUTH_PUBLIC, 0, 1, ar__f_entry,
     0, "Enter a waiting area (a one-time room, a patient token and servers)", 0},
    {"GET", "/api/v1/signal-token", ar__h_signal_token, AR_AUTH_SESSION, 0, 0, NULL, 0,
     "Signalling tokens and servers for the signed-in staff member", 0},
    /* ---- invite links (invite_tokens.c, C4) ---- */
    {"POST", "/api/v1/clinics/{clinic}/invite-token", ar__h_invite_token, AR_AUTH_CLINIC,
     AR_ROLE_CLINIC_ADMIN | AR_ROLE_PROVIDER | AR_ROLE_RECEPTIONIST, 1, ar__f_invite_token, 2,
     "A one-time invite link for a third or fourth participant in a call of the clinic", 0},
    {"GET", "/api/v1/clinics/{clinic}/rooms/{room}/signal-token", ar__h_room_token, AR_AUTH_CLINIC,
     AR_ROLE_CLINIC_ADMIN | AR_ROLE_PROVIDER | AR_ROLE_RECEPTIONIST, 0, NULL, 0,
     "A signalling token naming a persistent room of the clinic, with servers", 0},
    /* ---- encrypted keeping (keeping.c, S5) ---- */
    {"GET", "/api/v1/clinics/{clinic}/keeping", ar__h_keeping_get, AR_AUTH_CLINIC,
     AR_ROLE_OPERATOR | AR_ROLE_STAFF, 0, NULL, 0,
     "Whether encrypted keeping is on, and the clinic's public key", 0},
    {"PUT", "/api/v1/clinics/{clinic}/keeping", ar__h_keeping_put, AR_AUTH_CLINIC,
     AR_ROLE_OPERATOR | AR_ROLE_CLINIC_ADMIN, 1, ar__f_keeping_put, AR__N_keeping_put,
     "Turn encrypted keeping on or off and set its public key (re-authentication required)", 0},
    /* An item arrives in chunks (the listener reads at most 64 KiB of body); {item} in the
     * upload paths is the upload's id. */
    {"POST", "/api/v1/clinics/{clinic}/keeping/uploads", ar__h_keeping_upload_create,
     AR_AUTH_CLINIC, AR_ROLE_CLINIC_ADMIN | AR_ROLE_PROVIDER | AR_ROLE_RECEPTIONIST, 1,
     ar__f_keeping_upload, AR__N_keeping_upload,
     "Start keeping an item encrypted in the browser: its wrapped key, IV, size and chunk count",
     0},
    {"POST", "/api/v1/clinics/{clinic}/keeping/uploads/{item}/chunks", ar__h_keeping_upload_chunk,
     AR_AUTH_CLINIC, AR_ROLE_CLINIC_ADMIN | AR_ROLE_PROVIDER | AR_ROLE_RECEPTIONIST, 1,
     ar__f_keeping_chunk, AR__N_keeping_chunk,
     "One chunk of an upload's ciphertext, by index (sending one again replaces it)",
     AR_APP_KEEPING_CHUNK_BODY_MAX},
    {"POST", "/api/v1/clinics/{clinic}/keeping/uploads/{item}/finish", ar__h_keeping_upload_finish,
     AR_AUTH_CLINIC, AR_ROLE_CLINIC_ADMIN | AR_ROLE_PROVIDER | AR_ROLE_RECEPTIONIST, 1, NULL, 0,
     "Finish an upload: every chunk there and the declared size met, it becomes a kept item", 0},
    {"DELETE", "/api/v1/clinics/{clinic}/keeping/uploads/{item}", ar__h_keeping_upload_delete,
     AR_AUTH_CLINIC, AR_ROLE_CLINIC_ADMIN | AR_ROLE_PROVIDER | AR_ROLE_RECEPTIONIST, 1, NULL, 0,
     "Abandon an unfinished upload", 0},
    {"GET", "/api/v1/clinics/{clinic}/keeping/items", ar__h_keeping_items_list, AR_AUTH_CLINIC,
     AR_ROLE_OPERATOR | AR_ROLE_CLINIC_ADMIN, 0, NULL, 0,
     "Kept items: id, kind, ciphertext size and time", 0},
    {"GET", "/api/v1/clinics/{clinic}/keeping/items/{item}", ar__h_keeping_item_get, AR_AUTH_CLINIC,
     AR_ROLE_OPERATOR | AR_ROLE_CLINIC_ADMIN, 0, NULL, 0,
     "One kept item's wrapped key, IV and ciphertext, to decrypt in the browser", 0},
    {"GET", "/api/v1/keys", ar__h_keys, AR_AUTH_PUBLIC, 0, 0, NULL, 0,
     "Public keys that verify tokens (for signalling)", 0},
};

const ar_app_route_t *ar_app_routes(size_t *count)
{
    *count = sizeof(routes) / sizeof(routes[0]);
    return routes;
}

static const struct {
    unsigned bit;
    const char *name;
} role_names[] = {
    {AR_ROLE_OPERATOR, "operator"}, {AR_ROLE_CLINIC_ADMIN, "clinic_admin"},
    {AR_ROLE_PROVIDER, "provider"}, {AR_ROLE_RECEPTIONIST, "receptionist"},
    {AR_ROLE_REPORTER, "reporter"},
};

const char *ar_app_role_name(unsigned role)
{
    for (size_t i = 0; i < sizeof(role_names) / sizeof(role_names[0]); i++)
        if (role_names[i].bit == role)
            return role_names[i].name;
    return NULL;
}

unsigned ar_app_role_parse(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(role_names) / sizeof(role_names[0]); i++)
        if (strlen(role_names[i].name) == len && memcmp(role_names[i].name, name, len) == 0)
            return role_names[i].bit;
    return 0;
}

/* A clinic id in a path: 1 to 18 decimal digits, no sign, no leading zero. */
static int parse_id(const char *s, size_t len, int64_t *out)
{
    if (len == 0 || len > 18 || s[0] == '0')
        return 0;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

/* A slug in a path: 1 to 64 bytes of a-z 0-9 -. */
static int parse_slug(const char *s, size_t len, char *out)
{
    if (len == 0 || len > 64 || !ar_app_charset_ok(AR_CS_SLUG, s, len))
        return 0;
    memcpy(out, s, len);
    out[len] = '\0';
    return 1;
}

/* Matches a path against a pattern segment by segment; a parameter takes one whole segment. */
static int match(const char *pat, const char *path, size_t plen, ar_app_params_t *p)
{
    size_t i = 0, j = 0, patlen = strlen(pat);
    memset(p, 0, sizeof(*p));
    while (i < patlen && j < plen) {
        if (pat[i] == '{') {
            const char *close = strchr(pat + i, '}');
            size_t k = j;
            while (k < plen && path[k] != '/')
                k++;
            if (close == NULL)
                return 0;
            size_t nlen = (size_t)(close - pat) - i - 1;
            const char *name = pat + i + 1;
            int ok =
                nlen == 4 && memcmp(name, "area", 4) == 0   ? parse_slug(path + j, k - j, p->area)
                : nlen == 4 && memcmp(name, "room", 4) == 0 ? parse_id(path + j, k - j, &p->room)
                : nlen == 4 && memcmp(name, "item", 4) == 0 ? parse_id(path + j, k - j, &p->item)
                                                            : parse_id(path + j, k - j, &p->clinic);
            if (!ok)
                return 0;
            i = (size_t)(close - pat) + 1;
            j = k;
        } else if (pat[i] == path[j]) {
            i++, j++;
        } else {
            return 0;
        }
    }
    return i == patlen && j == plen;
}

const ar_app_route_t *ar_app_route_find_params(const char *method, size_t mlen, const char *path,
                                               size_t plen, ar_app_params_t *params,
                                               int *path_known)
{
    *path_known = 0;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (!match(routes[i].pattern, path, plen, params))
            continue;
        *path_known = 1;
        if (strlen(routes[i].method) == mlen && memcmp(routes[i].method, method, mlen) == 0)
            return &routes[i];
    }
    memset(params, 0, sizeof(*params));
    return NULL;
}

const ar_app_route_t *ar_app_route_find(const char *method, size_t mlen, const char *path,
                                        size_t plen, int64_t *clinic, int *path_known)
{
    ar_app_params_t p;
    const ar_app_route_t *rt = ar_app_route_find_params(method, mlen, path, plen, &p, path_known);
    *clinic = p.clinic;
    return rt;
}
