/*
 * Invitations (issue 4, A1): a clinic administrator (or an operator) invites an email address
 * with a role; the link carries a 256-bit token whose SHA-256 alone is stored, lives
 * AR_INVITE_TTL_S and works once.
 *   POST /api/v1/clinics/{clinic}/invitations {email, role} -> 201 {id, token, link, expires_at}
 *   POST /api/v1/invitations/accept {token, password, display_name}
 * Accepting as a new person sets the password (policy-checked) and opens a session in which the
 * second factor must be enrolled before any clinic route answers. Accepting for an address that
 * already has an account proves that account's password instead and adds the membership; it
 * opens no session, so it can never bypass that account's second factor.
 */
#include "accounts.h"
#include "audit.h"
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/rand.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

const ar_app_field_t ar__f_invitation_create[] = {
    {"email", AR_FIELD_STR, 1, 3, AR__EMAIL_MAX, AR_CS_EMAIL},
    {"role", AR_FIELD_STR, 1, 1, 32, AR_CS_TEXT},
};
const size_t ar__f_invitation_create_n =
    sizeof(ar__f_invitation_create) / sizeof(ar__f_invitation_create[0]);
AR__CHECK_N(invitation_create);

const ar_app_field_t ar__f_invitation_accept[] = {
    {"token", AR_FIELD_STR, 1, AR__TOKEN_TEXT, AR__TOKEN_TEXT, AR_CS_ANY},
    {"password", AR_FIELD_STR, 1, 1, 1024, AR_CS_ANY},
    {"display_name", AR_FIELD_STR, 0, 1, 200, AR_CS_TEXT},
};
const size_t ar__f_invitation_accept_n =
    sizeof(ar__f_invitation_accept) / sizeof(ar__f_invitation_accept[0]);
AR__CHECK_N(invitation_accept);

/* ---- create ---- */

static int create_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    json_t *je = json_object_get(r->body, "email");
    char email[AR__EMAIL_MAX + 1];
    int len = ar__email_lower(json_string_value(je), json_string_length(je), email, sizeof(email));
    if (len < 0)
        return len; /* never: the field table has checked it */
    const char *role = json_string_value(json_object_get(r->body, "role"));
    uint8_t hash[32];
    char text[AR__TOKEN_TEXT + 1];
    ar__token_new(hash, text);
    int64_t expires = r->now + AR_INVITE_TTL_S, id = 0;
    int rc = ar_store_begin(c);
    if (rc < 0)
        return rc;
    ar_store_stmt_t *st;
    rc = ar__prep(c,
                  "INSERT INTO invitations (token_hash, email, clinic_id, role, invited_by, "
                  "created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                  &st);
    if (rc == 0) {
        rc = ar_store_bind_blob(st, 1, hash, sizeof(hash));
        if (rc == 0)
            rc = ar_store_bind_text(st, 2, email, (size_t)len);
        if (rc == 0)
            rc = ar_store_bind_int64(st, 3, r->clinic_id);
        if (rc == 0)
            rc = ar_store_bind_text(st, 4, role, strlen(role));
        if (rc == 0)
            rc = ar_store_bind_int64(st, 5, r->s.account_id);
        if (rc == 0)
            rc = ar_store_bind_int64(st, 6, r->now);
        if (rc == 0)
            rc = ar_store_bind_int64(st, 7, expires);
        if (rc == 0 && (rc = ar_store_step(st)) == AR_STORE_ROW) {
            id = ar_store_col_int64(st, 0);
            rc = 0;
        }
        ar_store_finalize(st);
    }
    if (rc == 0)
        rc = ar_app_audit_append(c, r->now, r->s.account_id, r->clinic_id,
                                 AR_AUDIT_INVITATION_CREATED);
    rc = ar__finish(c, rc);
    if (rc < 0)
        return rc;
    /* The token travels in the fragment: browsers never send it to a server or in a Referer. */
    char link[512];
    snprintf(link, sizeof(link), "%s/invite#%s", r->app->origin, text);
    r->out = json_pack("{s:I,s:s,s:s,s:I}", "id", (json_int_t)id, "token", text, "link", link,
                       "expires_at", (json_int_t)expires);
    r->out_status = 201;
    sodium_memzero(text, sizeof(text));
    return r->out != NULL ? 0 : AR_ENOMEM;
}

void ar__h_invitation_create(ar__req_t *r)
{
    json_t *jr = json_object_get(r->body, "role");
    unsigned role = ar_app_role_parse(json_string_value(jr), json_string_length(jr));
    if (role == 0 || role == AR_ROLE_OPERATOR) {
        ar__reply_error(r, 400, "bad_request", "role: not a clinic role");
        return;
    }
    (void)ar__submit(r, create_job, ar__account_done);
}

/* ---- accept ---- */

typedef struct {
    int64_t id, clinic;
    char email[AR__EMAIL_MAX + 1];
    char role[32];
} invite_t;

static int find_invite(ar_store_conn_t *c, ar__req_t *r, const uint8_t hash[32], invite_t *iv)
{
    ar_store_stmt_t *st;
    int rc = ar__prep(c,
                      "SELECT id, clinic_id, email, role, expires_at, used_at FROM invitations "
                      "WHERE token_hash = $1",
                      &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_blob(st, 1, hash, 32);
    if (rc == 0)
        rc = ar_store_step(st);
    int found = 0;
    if (rc == AR_STORE_ROW) {
        size_t el, rl;
        const char *e = ar_store_col_text(st, 2, &el), *ro = ar_store_col_text(st, 3, &rl);
        if (ar_store_col_int64(st, 4) <= r->now) {
            ar__refuse(r, 410, "invitation_expired", "the invitation expired; ask for a new one");
        } else if (!ar_store_col_is_null(st, 5)) {
            ar__refuse(r, 410, "invitation_used", "the invitation was already used");
        } else if (el <= AR__EMAIL_MAX && rl < sizeof(iv->role)) {
            iv->id = ar_store_col_int64(st, 0);
            iv->clinic = ar_store_col_int64(st, 1);
            memcpy(iv->email, e, el + 1);
            memcpy(iv->role, ro, rl + 1);
            found = 1;
        }
    } else if (rc == AR_STORE_DONE) {
        ar__refuse(r, 404, "invitation_unknown", "no such invitation");
    }
    ar_store_finalize(st);
    return rc < 0 ? rc : found;
}

/* Marks the invitation used (only if still unused: two accepts race to one winner) and adds
 * the membership, within the caller's transaction. */
static int consume(ar_store_conn_t *c, ar__req_t *r, const invite_t *iv, int64_t account)
{
    ar_store_stmt_t *st;
    int rc =
        ar__prep(c, "UPDATE invitations SET used_at = $2 WHERE id = $1 AND used_at IS NULL", &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, iv->id);
    if (rc == 0)
        rc = ar_store_bind_int64(st, 2, r->now);
    int64_t changed = 0;
    rc = ar__run_changes(st, rc, &changed);
    if (rc < 0)
        return rc;
    if (changed != 1)
        return AR_EEXIST;
    rc = ar__prep(c,
                  "INSERT INTO memberships (account_id, clinic_id, role) VALUES ($1, $2, $3) "
                  "ON CONFLICT (account_id, clinic_id, role) DO NOTHING",
                  &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, account);
    if (rc == 0)
        rc = ar_store_bind_int64(st, 2, iv->clinic);
    if (rc == 0)
        rc = ar_store_bind_text(st, 3, iv->role, strlen(iv->role));
    rc = ar__run(st, rc);
    if (rc == 0)
        rc = ar_app_audit_append_subject(c, r->now, account, account, iv->clinic,
                                         AR_AUDIT_INVITATION_ACCEPTED);
    return rc;
}

/* Consumes the invitation in the transaction the caller opened (rc: how the work before went)
 * and ends it. Losing the race (another accept won, or the address got an account meanwhile)
 * is refused with 410 here and returned as 1; else 0 or an error. */
static int consume_and_finish(ar_store_conn_t *c, ar__req_t *r, const invite_t *iv, int64_t account,
                              int rc)
{
    if (rc == 0)
        rc = consume(c, r, iv, account);
    rc = ar__finish(c, rc);
    if (rc == AR_EEXIST) {
        ar__refuse(r, 410, "invitation_used", "the invitation was already used");
        return 1;
    }
    return rc;
}

/* The address already has an account: its password joins it to the clinic. */
static int accept_existing(ar_store_conn_t *c, ar__req_t *r, const invite_t *iv, int64_t account,
                           const char *hash)
{
    int rc = ar_app_lockout_locked(c, account, r->now);
    if (rc < 0)
        return rc;
    if (rc == 1)
        return AR_EPERM;
    if (crypto_pwhash_str_verify(hash, r->secret, r->secret_len) != 0) {
        rc = ar__record_failure(c, r, account, AR_AUDIT_SIGNIN_FAILED);
        return rc < 0 ? rc : AR_EAUTH;
    }
    rc = consume_and_finish(c, r, iv, account, ar_store_begin(c));
    if (rc == 1)
        return 0;
    r->out = json_pack("{s:I,s:b}", "account_id", (json_int_t)account, "joined", 1);
    r->out_status = 200;
    return rc < 0 ? rc : r->out != NULL ? 0 : AR_ENOMEM;
}

static int accept_new(ar_store_conn_t *c, ar__req_t *r, const invite_t *iv)
{
    json_t *jn = json_object_get(r->body, "display_name");
    if (jn == NULL) {
        ar__refuse(r, 400, "bad_request", "display_name: required for a new account");
        return 0;
    }
    const char *why = NULL;
    if (ar_app_password_policy(r->secret, r->secret_len, iv->email, strlen(iv->email), &why) < 0) {
        ar__refuse(r, 400, why, "the password does not meet the policy (docs/api.md)");
        return 0;
    }
    char hash[crypto_pwhash_STRBYTES];
    int rc = ar_app_password_hash(r->secret, r->secret_len, r->app->opts.pwhash_ops,
                                  r->app->opts.pwhash_mem, hash, sizeof(hash));
    if (rc < 0)
        return rc;
    int64_t account = 0;
    rc = ar_store_begin(c);
    ar_store_stmt_t *st;
    if (rc == 0)
        rc = ar__prep(c,
                      "INSERT INTO accounts (email, display_name, password_hash, created_at) "
                      "VALUES ($1, $2, $3, $4) RETURNING id",
                      &st);
    if (rc == 0) {
        rc = ar_store_bind_text(st, 1, iv->email, strlen(iv->email));
        if (rc == 0)
            rc = ar_store_bind_text(st, 2, json_string_value(jn), json_string_length(jn));
        if (rc == 0)
            rc = ar_store_bind_text(st, 3, hash, strlen(hash));
        if (rc == 0)
            rc = ar_store_bind_int64(st, 4, r->now);
        if (rc == 0 && (rc = ar_store_step(st)) == AR_STORE_ROW) {
            account = ar_store_col_int64(st, 0);
            rc = 0;
        }
        ar_store_finalize(st);
    }
    sodium_memzero(hash, sizeof(hash));
    rc = consume_and_finish(c, r, iv, account, rc);
    if (rc == 1)
        return 0;
    if (rc == 0)
        rc = ar__session_open(c, r, account, AR_AUDIT_SIGNIN);
    if (rc < 0)
        return rc;
    r->out = json_pack("{s:I,s:b}", "account_id", (json_int_t)account, "mfa_enrolment_required", 1);
    r->out_status = 201;
    return r->out != NULL ? 0 : AR_ENOMEM;
}

static int accept_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    uint8_t hash[32];
    int rc = ar_app_backoff_check(c, r->addr, r->now, &r->retry_after);
    if (rc < 0)
        return rc;
    if (ar__token_text_hash(json_object_get(r->body, "token"), hash) != 0) {
        ar__refuse(r, 404, "invitation_unknown", "no such invitation");
        return 0;
    }
    invite_t iv;
    rc = find_invite(c, r, hash, &iv);
    if (rc <= 0)
        return rc;
    ar_store_stmt_t *st;
    rc = ar__prep(c, "SELECT id, password_hash FROM accounts WHERE email = $1", &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_text(st, 1, iv.email, strlen(iv.email));
    if (rc == 0)
        rc = ar_store_step(st);
    int64_t account = 0;
    char ph[crypto_pwhash_STRBYTES] = "";
    if (rc == AR_STORE_ROW) {
        size_t hl;
        const char *h = ar_store_col_text(st, 1, &hl);
        account = ar_store_col_int64(st, 0);
        if (hl < sizeof(ph))
            memcpy(ph, h, hl + 1);
    }
    ar_store_finalize(st);
    if (rc < 0)
        return rc;
    if (account != 0 && ph[0] != '\0')
        rc = accept_existing(c, r, &iv, account, ph);
    else if (account != 0)
        ar__refuse(r, 409, "account_exists", "the account exists but cannot sign in");
    else
        rc = accept_new(c, r, &iv);
    sodium_memzero(ph, sizeof(ph));
    return rc;
}

void ar__h_invitation_accept(ar__req_t *r)
{
    ar__addr_hash(r);
    json_t *jp = json_object_get(r->body, "password");
    r->secret_len = json_string_length(jp);
    r->secret = ar_malloc(r->secret_len + 1);
    if (r->secret == NULL) {
        ar__reply_error(r, 503, "unavailable", "the server is out of memory");
        return;
    }
    memcpy(r->secret, json_string_value(jp), r->secret_len + 1);
    (void)ar__submit(r, accept_job, ar__account_done);
}
