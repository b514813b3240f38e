/*
 * Accounts end to end (issue 4), on SQLite and on PostgreSQL:
 *   test_accounts sqlite | pg
 * Invitations (accept, expiry, reuse), password policy refusals, TOTP enrolment with QR code,
 * two-step sign-in, replay refusal, recovery codes, re-authentication before sensitive changes,
 * role changes, MFA reset, deactivation, lockout after 100 failures and address backoff on the
 * injected clock, then the audit entries and the chain.
 */
#include "accounts.h"
#include "audit.h"
#include "harness.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ar_store_conn_t *db;

static void sql(const char *q)
{
    CHECK(ar_store_exec(db, q) == 0);
}

/* A request whose JSON answer is parsed; returns the status and *out (may be NULL). */
static int call(const char *method, const char *path, const char *cookie, const char *csrf,
                const char *body, json_t **out, resp_t *keep)
{
    resp_t r;
    h_request(&(req_t){.method = method,
                       .path = path,
                       .cookie = cookie,
                       .csrf = csrf,
                       .origin = h_origin,
                       .body = body},
              &r);
    int status = r.status;
    if (out != NULL)
        *out = r.body_len ? json_loads(r.body, 0, NULL) : NULL;
    if (keep != NULL)
        *keep = r;
    else
        h_resp_free(&r);
    return status;
}

static void expect_code(const char *method, const char *path, const char *cookie, const char *csrf,
                        const char *body, int status, const char *code)
{
    json_t *j = NULL;
    int got = call(method, path, cookie, csrf, body, &j, NULL);
    const char *c = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    if (got != status || (code != NULL && (c == NULL || strcmp(c, code) != 0))) {
        fprintf(stderr, "%s %s: got %d %s, want %d %s\n", method, path, got, c ? c : "", status,
                code ? code : "");
        exit(1);
    }
    json_decref(j);
}

typedef struct {
    char cookie[200];
    char csrf[100];
} sess_t;

/* Takes the session from a 201 answer (cookie and CSRF token). */
static void take_session(resp_t *r, json_t *j, sess_t *s)
{
    char sc[300];
    CHECK(h_header(r, "set-cookie", sc, sizeof(sc)) != NULL);
    snprintf(s->cookie, sizeof(s->cookie), "%.*s", (int)strcspn(sc, ";"), sc);
    snprintf(s->csrf, sizeof(s->csrf), "%s", json_string_value(json_object_get(j, "csrf_token")));
}

static void signin_plain(const char *email, const char *pw, sess_t *s)
{
    CHECK(h_signin(email, pw, s->cookie, sizeof(s->cookie), s->csrf, sizeof(s->csrf)) == 201);
}

/* First step of a sign-in with a second factor: the mfa_token. */
static void signin_first(const char *email, const char *pw, char *token, size_t cap)
{
    char body[300];
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"%s\"}", email, pw);
    json_t *j = NULL;
    CHECK(call("POST", "/api/v1/session", NULL, NULL, body, &j, NULL) == 200);
    CHECK(json_is_true(json_object_get(j, "mfa_required")));
    snprintf(token, cap, "%s", json_string_value(json_object_get(j, "mfa_token")));
    json_decref(j);
}

/* Second step; returns the status and fills s on 201. */
static int signin_second(const char *token, const char *field, const char *value, sess_t *s)
{
    char body[300];
    snprintf(body, sizeof(body), "{\"mfa_token\":\"%s\",\"%s\":\"%s\"}", token, field, value);
    json_t *j = NULL;
    resp_t r;
    int st = call("POST", "/api/v1/session/mfa", NULL, NULL, body, &j, &r);
    if (st == 201)
        take_session(&r, j, s);
    h_resp_free(&r);
    json_decref(j);
    return st;
}

static void b32_decode(const char *in, uint8_t *out, size_t *len)
{
    uint32_t acc = 0;
    int bits = 0;
    *len = 0;
    for (; *in; in++) {
        const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        const char *p = strchr(a, *in);
        CHECK(p != NULL);
        acc = (acc << 5) | (uint32_t)(p - a);
        bits += 5;
        if (bits >= 8) {
            out[(*len)++] = (uint8_t)(acc >> (bits - 8));
            bits -= 8;
        }
    }
}

static uint8_t totp_key[64];
static size_t totp_keylen;

static void code_now(char out[7])
{
    snprintf(out, 7, "%06u",
             (unsigned)ar_app_hotp(totp_key, totp_keylen, (uint64_t)(h_clock() / AR_TOTP_STEP_S),
                                   AR_TOTP_DIGITS));
}

/* Moves the clock to the start of the next TOTP step (a fresh code). */
static void next_step(void)
{
    h_clock_set((h_clock() / AR_TOTP_STEP_S + 1) * AR_TOTP_STEP_S);
}

static char clinic_path[100], new_email[] = "new.person@example.org";
static const char new_pw[] = "tangerine-lighthouse-42";
static int64_t new_id;
static char recovery[2][32];

static char *invite(const sess_t *admin, const char *email, const char *role)
{
    char path[160], body[200];
    snprintf(path, sizeof(path), "%s/invitations", clinic_path);
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"role\":\"%s\"}", email, role);
    json_t *j = NULL;
    CHECK(call("POST", path, admin->cookie, admin->csrf, body, &j, NULL) == 201);
    const char *link = json_string_value(json_object_get(j, "link"));
    const char *tok = json_string_value(json_object_get(j, "token"));
    CHECK(link != NULL && strstr(link, "/invite#") != NULL && strstr(link, tok) != NULL);
    char *t = strdup(tok);
    json_decref(j);
    return t;
}

static void accept_body(char *out, size_t cap, const char *tok, const char *pw)
{
    snprintf(out, cap, "{\"token\":\"%s\",\"password\":\"%s\",\"display_name\":\"New Person\"}",
             tok, pw);
}

static void test_invitations(sess_t *fresh)
{
    sess_t admin;
    signin_plain("clinic_admin@example.org", h_password, &admin);
    expect_code("POST", "/api/v1/clinics/1/invitations", admin.cookie, admin.csrf,
                "{\"email\":\"x@example.org\",\"role\":\"operator\"}", 400, "bad_request");
    char *tok = invite(&admin, "New.Person@Example.org", "provider");
    const char *ap = "/api/v1/invitations/accept";
    char body[400];
    /* Policy refusals, each with its own code; the invitation stays usable. */
    accept_body(body, sizeof(body), tok, "short");
    expect_code("POST", ap, NULL, NULL, body, 400, "password_too_short");
    accept_body(body, sizeof(body), tok, "Password1234");
    expect_code("POST", ap, NULL, NULL, body, 400, "password_too_common");
    accept_body(body, sizeof(body), tok, "new.person@example.org");
    expect_code("POST", ap, NULL, NULL, body, 400, "password_is_email");
    accept_body(body, sizeof(body), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", new_pw);
    expect_code("POST", ap, NULL, NULL, body, 404, "invitation_unknown");
    accept_body(body, sizeof(body), tok, new_pw);
    json_t *j = NULL;
    resp_t r;
    CHECK(call("POST", ap, NULL, NULL, body, &j, &r) == 201);
    CHECK(json_is_true(json_object_get(j, "mfa_enrolment_required")));
    new_id = (int64_t)json_integer_value(json_object_get(j, "account_id"));
    take_session(&r, j, fresh);
    h_resp_free(&r);
    json_decref(j);
    /* Used once. */
    expect_code("POST", ap, NULL, NULL, body, 410, "invitation_used");
    free(tok);
    /* Expiry on the injected clock. */
    tok = invite(&admin, "late@example.org", "reporter");
    int64_t t0 = h_clock();
    h_clock_set(t0 + AR_INVITE_TTL_S);
    accept_body(body, sizeof(body), tok, new_pw);
    expect_code("POST", ap, NULL, NULL, body, 410, "invitation_expired");
    h_clock_set(t0);
    free(tok);
    /* An address that has an account joins with its own password and gets no session. */
    h_clock_set(t0);
    tok = invite(&admin, "reporter@example.org", "receptionist");
    accept_body(body, sizeof(body), tok, "wrong password here");
    expect_code("POST", ap, NULL, NULL, body, 401, "bad_credentials");
    accept_body(body, sizeof(body), tok, h_password);
    CHECK(call("POST", ap, NULL, NULL, body, &j, &r) == 200);
    CHECK(json_is_true(json_object_get(j, "joined")));
    CHECK(h_header(&r, "set-cookie", body, sizeof(body)) == NULL);
    h_resp_free(&r);
    json_decref(j);
    free(tok);
    printf("ok invitations: policy refusals, accept, reuse, expiry, existing account joins\n");
}

static void test_enrolment(sess_t *s)
{
    char path[160];
    snprintf(path, sizeof(path), "%s", clinic_path);
    /* Staff without a second factor reach no clinic data. */
    expect_code("GET", path, s->cookie, NULL, NULL, 403, "mfa_enrolment_required");
    json_t *j = NULL;
    CHECK(call("POST", "/api/v1/me/totp", s->cookie, s->csrf, NULL, &j, NULL) == 200);
    const char *uri = json_string_value(json_object_get(j, "otpauth_uri"));
    const char *svg = json_string_value(json_object_get(j, "qr_svg"));
    const char *secret = json_string_value(json_object_get(j, "secret"));
    CHECK(uri && strncmp(uri, "otpauth://totp/Anteroom:new.person@example.org?secret=", 54) == 0);
    CHECK(strstr(uri, secret) != NULL && strstr(uri, "&period=30") != NULL);
    CHECK(svg && strncmp(svg, "<svg", 4) == 0 && strstr(svg, "<path") != NULL);
    b32_decode(secret, totp_key, &totp_keylen);
    CHECK(totp_keylen == AR_TOTP_KEY_BYTES);
    json_decref(j);
    expect_code("POST", "/api/v1/me/totp/confirm", s->cookie, s->csrf, "{\"code\":\"000000\"}", 400,
                "bad_code");
    char code[7], body[100];
    code_now(code);
    snprintf(body, sizeof(body), "{\"code\":\"%s\"}", code);
    CHECK(call("POST", "/api/v1/me/totp/confirm", s->cookie, s->csrf, body, &j, NULL) == 200);
    json_t *codes = json_object_get(j, "recovery_codes");
    CHECK(json_array_size(codes) == AR_RECOVERY_CODES);
    for (int i = 0; i < 2; i++)
        snprintf(recovery[i], sizeof(recovery[i]), "%s",
                 json_string_value(json_array_get(codes, (size_t)i)));
    CHECK(strlen(recovery[0]) == AR_RECOVERY_TEXT && strcmp(recovery[0], recovery[1]) != 0);
    json_decref(j);
    expect_code("GET", path, s->cookie, NULL, NULL, 200, NULL);
    /* Stored hashed: no recovery code and no secret in clear in the database. */
    ar_store_stmt_t *st;
    const char *q = "SELECT count(*) FROM recovery_codes WHERE account_id = $1 AND used_at IS NULL";
    CHECK(ar_store_prepare(db, q, strlen(q), &st) == 0);
    CHECK(ar_store_bind_int64(st, 1, new_id) == 0 && ar_store_step(st) == AR_STORE_ROW);
    CHECK(ar_store_col_int64(st, 0) == AR_RECOVERY_CODES);
    ar_store_finalize(st);
    printf("ok TOTP enrolment: URI, SVG QR code, wrong code refused, 10 recovery codes\n");

    /* Two-step sign-in; the code used at enrolment is refused (same step). */
    char tok[64];
    sess_t t;
    signin_first(new_email, new_pw, tok, sizeof(tok));
    CHECK(signin_second(tok, "code", code, &t) == 401);
    next_step();
    code_now(code);
    CHECK(signin_second(tok, "code", code, &t) == 201);
    expect_code("GET", path, t.cookie, NULL, NULL, 200, NULL);
    /* The challenge is spent, and the code too. */
    CHECK(signin_second(tok, "code", code, &t) == 401);
    signin_first(new_email, new_pw, tok, sizeof(tok));
    CHECK(signin_second(tok, "code", code, &t) == 401);
    /* A recovery code works once. */
    CHECK(signin_second(tok, "recovery_code", recovery[0], &t) == 201);
    signin_first(new_email, new_pw, tok, sizeof(tok));
    CHECK(signin_second(tok, "recovery_code", recovery[0], &t) == 401);
    /* A challenge expires. */
    int64_t t0 = h_clock();
    h_clock_set(t0 + AR_MFA_CHALLENGE_S);
    next_step();
    code_now(code);
    expect_code(
        "POST", "/api/v1/session/mfa", NULL, NULL,
        (snprintf(body, sizeof(body), "{\"mfa_token\":\"%s\",\"code\":\"%s\"}", tok, code), body),
        401, "mfa_expired");
    sql("DELETE FROM addr_backoff");
    /* A fresh session for what follows (the one above has idled across the expiry). */
    signin_first(new_email, new_pw, tok, sizeof(tok));
    next_step();
    code_now(code);
    CHECK(signin_second(tok, "code", code, s) == 201);
    printf("ok two-step sign-in: replay refused, challenge single-use and expiring, recovery "
           "code single-use\n");
}

static void test_reauth(sess_t *s)
{
    /* The session from the recovery code is older than AR_REAUTH_S after this. */
    h_clock_set(h_clock() + AR_REAUTH_S + 1);
    char body[200], code[7];
    snprintf(body, sizeof(body), "{\"password\":\"%s\"}", "another-good-passphrase");
    expect_code("PUT", "/api/v1/me/password", s->cookie, s->csrf, body, 403, "reauth_required");
    expect_code("POST", "/api/v1/me/totp", s->cookie, s->csrf, NULL, 403, "reauth_required");
    /* The password alone does not re-authenticate an account with a second factor. */
    snprintf(body, sizeof(body), "{\"password\":\"%s\"}", new_pw);
    expect_code("POST", "/api/v1/session/reauth", s->cookie, s->csrf, body, 401, "bad_credentials");
    next_step();
    code_now(code);
    snprintf(body, sizeof(body), "{\"password\":\"%s\",\"code\":\"%s\"}", new_pw, code);
    expect_code("POST", "/api/v1/session/reauth", s->cookie, s->csrf, body, 204, NULL);
    expect_code("PUT", "/api/v1/me/password", s->cookie, s->csrf, "{\"password\":\"qwerty123456\"}",
                400, "password_too_common");
    snprintf(body, sizeof(body), "{\"password\":\"%s\"}", "another-good-passphrase");
    expect_code("PUT", "/api/v1/me/password", s->cookie, s->csrf, body, 204, NULL);
    char tok[64];
    signin_first(new_email, "another-good-passphrase", tok, sizeof(tok));
    sql("DELETE FROM addr_backoff");
    printf("ok re-authentication before password change and re-enrolment\n");
}

static void test_staff(sess_t *s)
{
    sess_t admin;
    signin_plain("clinic_admin@example.org", h_password, &admin);
    char path[200], body[200];
    snprintf(path, sizeof(path), "%s/staff", clinic_path);
    json_t *j = NULL;
    CHECK(call("GET", path, admin.cookie, NULL, NULL, &j, NULL) == 200);
    CHECK(json_array_size(json_object_get(j, "staff")) >= 5);
    json_decref(j);
    /* Role change: refused without a recent re-authentication, then done. */
    h_clock_set(h_clock() + AR_REAUTH_S + 1);
    snprintf(path, sizeof(path), "%s/staff/roles", clinic_path);
    snprintf(body, sizeof(body), "{\"account_id\":%lld,\"roles\":\"receptionist,reporter\"}",
             (long long)new_id);
    expect_code("PUT", path, admin.cookie, admin.csrf, body, 403, "reauth_required");
    char rb[200];
    snprintf(rb, sizeof(rb), "{\"password\":\"%s\"}", h_password);
    expect_code("POST", "/api/v1/session/reauth", admin.cookie, admin.csrf, rb, 204, NULL);
    expect_code("PUT", path, admin.cookie, admin.csrf, "{\"account_id\":1,\"roles\":\"operator\"}",
                400, "bad_request");
    expect_code("PUT", path, admin.cookie, admin.csrf, body, 204, NULL);
    /* Not a member of this clinic (the operator): 404, so nothing about it is learnt. */
    expect_code("PUT", path, admin.cookie, admin.csrf, "{\"account_id\":1,\"roles\":\"reporter\"}",
                404, "not_found");
    CHECK(call("GET", "/api/v1/me", s->cookie, NULL, NULL, &j, NULL) == 200);
    CHECK(json_array_size(json_object_get(j, "memberships")) == 2);
    CHECK(json_is_false(json_object_get(j, "mfa_enrolment_required")));
    json_decref(j);
    /* MFA reset: the member's sessions end; the password alone signs in, then enrolment is due. */
    snprintf(path, sizeof(path), "%s/staff/mfa-reset", clinic_path);
    snprintf(body, sizeof(body), "{\"account_id\":%lld}", (long long)new_id);
    expect_code("POST", path, admin.cookie, admin.csrf, body, 204, NULL);
    expect_code("GET", "/api/v1/me", s->cookie, NULL, NULL, 401, NULL);
    sess_t again;
    signin_plain(new_email, "another-good-passphrase", &again);
    expect_code("GET", clinic_path, again.cookie, NULL, NULL, 403, "mfa_enrolment_required");
    /* ... and /me says so, for a page to lead to enrolment at sign-in. */
    CHECK(call("GET", "/api/v1/me", again.cookie, NULL, NULL, &j, NULL) == 200);
    CHECK(json_is_true(json_object_get(j, "mfa_enrolment_required")));
    json_decref(j);
    /* Deactivation: out of the clinic, disabled (no other clinic), signed out. */
    snprintf(path, sizeof(path), "%s/staff/deactivate", clinic_path);
    char self[100];
    CHECK(call("GET", "/api/v1/me", admin.cookie, NULL, NULL, &j, NULL) == 200);
    snprintf(self, sizeof(self), "{\"account_id\":%lld}",
             (long long)json_integer_value(json_object_get(j, "id")));
    json_decref(j);
    expect_code("POST", path, admin.cookie, admin.csrf, self, 400, NULL);
    expect_code("POST", path, admin.cookie, admin.csrf, body, 204, NULL);
    expect_code("GET", "/api/v1/me", again.cookie, NULL, NULL, 401, NULL);
    CHECK(h_signin(new_email, "another-good-passphrase", again.cookie, sizeof(again.cookie),
                   again.csrf, sizeof(again.csrf)) == 401);
    sql("DELETE FROM addr_backoff");
    printf("ok staff: list, role change and MFA reset and deactivation behind re-authentication\n");
}

static int signin_status(const char *email, const char *pw, char *code, size_t cap)
{
    char body[300];
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"%s\"}", email, pw);
    json_t *j = NULL;
    int st = call("POST", "/api/v1/session", NULL, NULL, body, &j, NULL);
    const char *c = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    snprintf(code, cap, "%s", c ? c : "");
    json_decref(j);
    return st;
}

static void test_lockout(void)
{
    char code[64];
    int64_t t0 = h_clock();
    /* 100 failures within the hour; the address backoff is cleared between them so only the
     * account's count is under test (the backoff has its own test below). */
    for (int i = 0; i < AR_LOCKOUT_MAX; i++) {
        h_clock_set(t0 + i * 30);
        CHECK(signin_status("provider@example.org", "wrong password", code, sizeof(code)) == 401);
        sql("DELETE FROM addr_backoff");
    }
    /* Locked, even with the right password, with a clear error. */
    CHECK(signin_status("provider@example.org", h_password, code, sizeof(code)) == 429);
    CHECK(strcmp(code, "account_locked") == 0);
    sql("DELETE FROM addr_backoff");
    /* Other accounts are not affected. */
    CHECK(signin_status("receptionist@example.org", h_password, code, sizeof(code)) == 201);
    /* An hour after the first failure one slot frees: the window slides. */
    h_clock_set(t0 + AR_LOCKOUT_WINDOW + 1);
    CHECK(signin_status("provider@example.org", h_password, code, sizeof(code)) == 201);
    printf("ok lockout: 100 failures in an hour lock the account (429 account_locked), the "
           "window slides\n");
}

static void test_backoff(void)
{
    char code[64], ra[32];
    sql("DELETE FROM addr_backoff");
    for (int i = 0; i < AR_BACKOFF_FREE; i++)
        CHECK(signin_status("nobody@example.org", "x", code, sizeof(code)) == 401);
    /* The next failure is answered, then the address waits 1 s, 2 s, 4 s... */
    int64_t wait = 1;
    for (int round = 0; round < 4; round++) {
        CHECK(signin_status("nobody@example.org", "x", code, sizeof(code)) == 401);
        resp_t r;
        h_request(&(req_t){.method = "POST",
                           .path = "/api/v1/session",
                           .origin = h_origin,
                           .body = "{\"email\":\"operator@example.org\",\"password\":\"x\"}"},
                  &r);
        CHECK(r.status == 429 && strstr(r.body, "rate_limited") != NULL);
        CHECK(h_header(&r, "retry-after", ra, sizeof(ra)) != NULL && atoll(ra) == wait);
        h_resp_free(&r);
        h_clock_set(h_clock() + wait);
        wait *= 2;
    }
    /* A right password after waiting signs in and clears the address. */
    CHECK(signin_status("operator@example.org", h_password, code, sizeof(code)) == 201);
    CHECK(signin_status("nobody@example.org", "x", code, sizeof(code)) == 401);
    CHECK(signin_status("nobody@example.org", "x", code, sizeof(code)) == 401);
    printf("ok address backoff: 5 free failures, then 1, 2, 4, 8 s (Retry-After), in the store\n");
}

static void cases(void)
{
    CHECK(ar_store_open(h_store_opts(), &db) == 0);
    snprintf(clinic_path, sizeof(clinic_path), "/api/v1/clinics/%lld", (long long)h_clinic_own);
    sess_t s;
    test_invitations(&s);
    test_enrolment(&s);
    test_reauth(&s);
    test_staff(&s);
    test_lockout();
    test_backoff();
    ar_store_close(db);
}

static void audit_checks(const ar_store_opts_t *opts)
{
    ar_store_conn_t *c;
    CHECK(ar_store_open(opts, &c) == 0);
    int64_t rows;
    CHECK(ar_app_audit_verify(c, &rows) == 0);
    static const char *const want[] = {
        AR_AUDIT_SIGNIN,
        AR_AUDIT_SIGNIN_FAILED,
        AR_AUDIT_SIGNIN_MFA_FAILED,
        AR_AUDIT_SIGNIN_LOCKED,
        AR_AUDIT_REAUTH,
        AR_AUDIT_REAUTH_FAILED,
        AR_AUDIT_MFA_ENROLLED,
        AR_AUDIT_MFA_RECOVERY_USED,
        AR_AUDIT_MFA_RESET,
        AR_AUDIT_ROLES_CHANGED,
        AR_AUDIT_INVITATION_CREATED,
        AR_AUDIT_INVITATION_ACCEPTED,
        AR_AUDIT_STAFF_DEACTIVATED,
        AR_AUDIT_PASSWORD_CHANGED,
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        ar_store_stmt_t *st;
        const char *q = "SELECT count(*) FROM audit_log WHERE event = $1";
        CHECK(ar_store_prepare(c, q, strlen(q), &st) == 0);
        CHECK(ar_store_bind_text(st, 1, want[i], strlen(want[i])) == 0);
        CHECK(ar_store_step(st) == AR_STORE_ROW);
        if (ar_store_col_int64(st, 0) < 1) {
            fprintf(stderr, "no audit entry for %s\n", want[i]);
            exit(1);
        }
        ar_store_finalize(st);
    }
    /* Role changes, resets and deactivations name the account they changed. */
    ar_store_stmt_t *st;
    const char *q = "SELECT count(*) FROM audit_log WHERE event IN ('roles_changed', "
                    "'mfa_reset', 'staff_deactivated') AND subject_account_id = $1";
    CHECK(ar_store_prepare(c, q, strlen(q), &st) == 0);
    CHECK(ar_store_bind_int64(st, 1, new_id) == 0 && ar_store_step(st) == AR_STORE_ROW);
    CHECK(ar_store_col_int64(st, 0) == 3);
    ar_store_finalize(st);
    /* No free text: every event is one of the fixed names (no address, no password). */
    q = "SELECT count(*) FROM audit_log WHERE event LIKE '%@%' OR event LIKE '% %'";
    CHECK(ar_store_prepare(c, q, strlen(q), &st) == 0);
    CHECK(ar_store_step(st) == AR_STORE_ROW && ar_store_col_int64(st, 0) == 0);
    ar_store_finalize(st);
    /* Tampering with an entry that has a subject shows. */
    CHECK(ar_store_exec(c, "UPDATE audit_log SET subject_account_id = subject_account_id + 1 "
                           "WHERE seq = (SELECT min(seq) FROM audit_log WHERE event = "
                           "'mfa_reset')") == 0);
    int64_t after;
    CHECK(ar_app_audit_verify(c, &after) == AR_EAUTH);
    ar_store_close(c);
    printf("ok audit: %lld entries, every account event present, subjects recorded, chain "
           "intact and tamper-evident\n",
           (long long)rows);
}

int main(int argc, char **argv)
{
    h_run(argc, argv, cases, audit_checks);
    printf("all accounts integration tests passed (%s)\n", argv[1]);
    return 0;
}
