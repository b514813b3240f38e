/*
 * Sessions (S2) and CSRF.
 *
 * A session id is 256 random bits, sent only as the `__Host-` cookie (Secure, HttpOnly,
 * SameSite=Strict, Path=/, no Domain: the browser keeps it to this exact origin and never
 * exposes it to script). The store keeps its SHA-256 only, so a leaked database or backup
 * cannot be replayed as cookies. Idle and absolute timeouts are checked against the injected
 * clock on every request; an expired row is deleted when met.
 *
 * CSRF: every state-changing route requires, in addition to SameSite=Strict,
 *   - an Origin header, when the browser sends one, equal to the configured origin, and a
 *     Sec-Fetch-Site, when sent, of same-origin or none;
 *   - for signed-in routes, X-CSRF-Token equal to BLAKE2b(key = session id, "anteroom-csrf-v1").
 *     The token is derived, not stored, so the app stays stateless; script gets it from the
 *     sign-in answer or GET /api/v1/me, which a cross-site page cannot read;
 *   - for sign-in, a JSON content type, which a cross-site form cannot send without a CORS
 *     preflight that this server never grants.
 * docs/api.md says the same for clients.
 */
#include "internal.h"

#include "anteroom/log.h"

#include <sodium.h>
#include <string.h>

/* last_seen_at is written at most once per this many seconds: a write per request would cost
 * more than the precision is worth. The idle timeout is therefore exact to within it. */
#define TOUCH_EVERY_S 60

void ar__sid_encode(const uint8_t id[AR__SID_BYTES], char *out)
{
    sodium_bin2base64(out, AR__SID_TEXT + 1, id, AR__SID_BYTES,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

void ar__sid_hash(const uint8_t id[AR__SID_BYTES], uint8_t out[32])
{
    crypto_hash_sha256(out, id, AR__SID_BYTES);
}

void ar__csrf_token(const uint8_t id[AR__SID_BYTES], char *out)
{
    static const char label[] = "anteroom-csrf-v1";
    uint8_t mac[32];
    crypto_generichash(mac, sizeof(mac), (const uint8_t *)label, sizeof(label) - 1, id,
                       AR__SID_BYTES);
    sodium_bin2base64(out, AR__SID_TEXT + 1, mac, sizeof(mac),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* Looks for our cookie in one Cookie header value ("a=b; c=d"). */
static int find_cookie(const char *v, size_t len, ar__session_t *s)
{
    static const char name[] = AR__COOKIE_NAME "=";
    size_t nlen = sizeof(name) - 1;
    size_t i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == ';'))
            i++;
        size_t end = i;
        while (end < len && v[end] != ';')
            end++;
        if (end - i == nlen + AR__SID_TEXT && memcmp(v + i, name, nlen) == 0) {
            size_t got = 0;
            if (sodium_base642bin(s->id, sizeof(s->id), v + i + nlen, AR__SID_TEXT, NULL, &got,
                                  NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 &&
                got == AR__SID_BYTES) {
                s->present = 1;
                ar__sid_hash(s->id, s->id_hash);
                return 1;
            }
        }
        i = end;
    }
    return 0;
}

void ar__session_from_cookie(h2o_req_t *req, ar__session_t *s)
{
    memset(s, 0, sizeof(*s));
    /* HTTP/2 clients may send each cookie as its own header field (RFC 9113 8.2.3). */
    for (ssize_t i = -1; (i = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, i)) != -1;) {
        const h2o_iovec_t *v = &req->headers.entries[i].value;
        if (find_cookie(v->base, v->len, s))
            return;
    }
}

void ar__session_set_cookie(ar__req_t *r, const uint8_t *id)
{
    char v[160];
    if (id != NULL) {
        char sid[AR__SID_TEXT + 1];
        ar__sid_encode(id, sid);
        snprintf(v, sizeof(v), "%s=%s; Path=/; Secure; HttpOnly; SameSite=Strict", AR__COOKIE_NAME,
                 sid);
        sodium_memzero(sid, sizeof(sid));
    } else {
        snprintf(v, sizeof(v), "%s=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict",
                 AR__COOKIE_NAME);
    }
    ar__add_header(r, "set-cookie", v, strlen(v));
    sodium_memzero(v, sizeof(v));
}

static int delete_session(ar_store_conn_t *c, const uint8_t hash[32])
{
    ar_store_stmt_t *st;
    int rc = ar__prep(c, "DELETE FROM sessions WHERE id_hash = $1", &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_blob(st, 1, hash, 32);
    if (rc == 0)
        rc = ar_store_step(st);
    ar_store_finalize(st);
    return rc < 0 ? rc : 0;
}

static int load_roles(ar_store_conn_t *c, ar__req_t *r)
{
    ar_store_stmt_t *st;
    int rc = ar__prep(c,
                      "SELECT role FROM memberships WHERE account_id = $1 AND clinic_id = $2 "
                      "LIMIT 16",
                      &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, r->s.account_id);
    if (rc == 0)
        rc = ar_store_bind_int64(st, 2, r->clinic_id);
    while (rc == 0 && (rc = ar_store_step(st)) == AR_STORE_ROW) {
        size_t len;
        const char *role = ar_store_col_text(st, 0, &len);
        r->s.clinic_roles |= ar_app_role_parse(role, len);
        rc = 0;
    }
    ar_store_finalize(st);
    return rc < 0 ? rc : 0;
}

int ar__session_load_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    const ar_app_opts_t *o = &r->app->opts;
    ar_store_stmt_t *st;
    int rc = ar__prep(c,
                      "SELECT s.created_at, s.last_seen_at, s.expires_at, a.id, a.is_operator, "
                      "a.disabled, s.authenticated_at, a.mfa_required, "
                      "CASE WHEN a.totp_secret IS NULL THEN 0 ELSE 1 END "
                      "FROM sessions s JOIN accounts a ON a.id = s.account_id "
                      "WHERE s.id_hash = $1",
                      &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_blob(st, 1, r->s.id_hash, sizeof(r->s.id_hash));
    if (rc == 0)
        rc = ar_store_step(st);
    if (rc != AR_STORE_ROW) {
        ar_store_finalize(st);
        return rc < 0 ? rc : AR_EAUTH;
    }
    int64_t created = ar_store_col_int64(st, 0), seen = ar_store_col_int64(st, 1);
    int64_t expires = ar_store_col_int64(st, 2), account = ar_store_col_int64(st, 3);
    int oper = ar_store_col_int64(st, 4) != 0, disabled = ar_store_col_int64(st, 5) != 0;
    r->s.authenticated_at = ar_store_col_int64(st, 6);
    /* A session exists only after every factor the account has was proven (signin.c), so the
     * one gap is an account that must have a second factor and has none yet. */
    r->s.mfa_missing = ar_store_col_int64(st, 7) != 0 && ar_store_col_int64(st, 8) == 0;
    ar_store_finalize(st);
    (void)created;

    if (disabled || r->now >= expires || r->now - seen >= o->session_idle_s) {
        rc = delete_session(c, r->s.id_hash);
        return rc < 0 ? rc : AR_EAUTH;
    }
    if (r->now - seen >= TOUCH_EVERY_S) {
        rc = ar__prep(c, "UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1", &st);
        if (rc < 0)
            return rc;
        rc = ar_store_bind_blob(st, 1, r->s.id_hash, sizeof(r->s.id_hash));
        if (rc == 0)
            rc = ar_store_bind_int64(st, 2, r->now);
        if (rc == 0)
            rc = ar_store_step(st);
        ar_store_finalize(st);
        if (rc < 0)
            return rc;
    }
    r->s.account_id = account;
    r->s.is_operator = oper;
    if (r->clinic_id != 0)
        return load_roles(c, r);
    return 0;
}
