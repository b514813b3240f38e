/*
 * Tokens for staff and the public keys that verify every token (S3, S10).
 *
 * GET /api/v1/signal-token gives a signed-in account one signalling token per jurisdiction in
 * which it holds clinic roles, each with that jurisdiction's servers and a TURN credential: a
 * token never names clinics of two jurisdictions, so no client is handed a server outside its
 * clinic's jurisdiction. Tokens live minutes; the client asks again before they expire.
 */
#include "internal.h"
#include "keys.h"
#include "servers.h"

#include "anteroom/rand.h"
#include "anteroom/token.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    ar_token_claims_t cl;
} staff_t;

/* Adds (clinic, role) to the claims of jur, starting new claims for a new jurisdiction. */
static int add_role(staff_t *t, size_t *nt, size_t cap, const char *jur, int64_t clinic,
                    const char *role)
{
    staff_t *s = NULL;
    for (size_t i = 0; i < *nt; i++)
        if (strcmp(t[i].cl.jur, jur) == 0)
            s = &t[i];
    if (s == NULL) {
        if (*nt >= cap || strlen(jur) >= sizeof(s->cl.jur))
            return 0; /* capped: more jurisdictions than a client uses */
        s = &t[(*nt)++];
        snprintf(s->cl.jur, sizeof(s->cl.jur), "%s", jur);
    }
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)clinic);
    ar_token_clinic_t *c = NULL;
    for (size_t i = 0; i < s->cl.nclinics; i++)
        if (strcmp(s->cl.clinics[i].id, id) == 0)
            c = &s->cl.clinics[i];
    if (c == NULL) {
        if (s->cl.nclinics >= AR_TOKEN_MAX_CLINICS)
            return 0;
        c = &s->cl.clinics[s->cl.nclinics++];
        snprintf(c->id, sizeof(c->id), "%s", id);
    }
    if (c->nroles < AR_TOKEN_MAX_ROLES)
        snprintf(c->roles[c->nroles++], sizeof(c->roles[0]), "%s", role);
    return 0;
}

#define JURS_MAX 4

void ar__staff_subject(const ar__req_t *r, const char *jur, char *sub)
{
    static const char label[] = "anteroom-staff-sub-v1";
    uint8_t h[16];
    crypto_generichash_state st;
    crypto_generichash_init(&st, r->s.id, sizeof(r->s.id), sizeof(h));
    crypto_generichash_update(&st, (const uint8_t *)label, sizeof(label)); /* with its NUL */
    crypto_generichash_update(&st, (const uint8_t *)jur, strlen(jur));
    crypto_generichash_final(&st, h, sizeof(h));
    sodium_bin2base64(sub, AR_TOKEN_ID_MAX, h, sizeof(h), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(&st, sizeof(st));
}

static int mint_all(ar__req_t *r, staff_t *t, size_t nt, ar_token_key_t *key, const char *secret)
{
    json_t *list = json_object_get(r->out, "tokens");
    for (size_t i = 0; i < nt; i++) {
        ar_token_claims_t *cl = &t[i].cl;
        snprintf(cl->aud, sizeof(cl->aud), "signal");
        cl->role = AR_TOKEN_STAFF;
        cl->iat = r->now;
        cl->exp = r->now + AR_APP_STAFF_TOKEN_TTL;
        ar__staff_subject(r, cl->jur, cl->sub);
        char token[AR_TOKEN_MAX];
        int rc = ar_token_mint(key, cl, token, sizeof(token));
        if (rc < 0)
            return rc;
        json_t *srv = ar_app_servers_for(r->app->opts.servers, cl->jur, ar_app_servers_place(cl),
                                         secret, strlen(secret), r->now, AR_APP_TURN_TTL);
        if (srv == NULL)
            continue; /* not served by this configuration: no token rather than a foreign one */
        char mon[AR_TOKEN_MAX];
        rc = ar__mint_monitor_token(key, cl, r->now, mon, sizeof(mon));
        if (rc < 0) {
            json_decref(srv);
            return rc;
        }
        json_t *e =
            json_pack("{s:s,s:s,s:I,s:o,s:s}", "jurisdiction", cl->jur, "token", token,
                      "expires_at", (json_int_t)cl->exp, "servers", srv, "monitor_token", mon);
        if (e == NULL || json_array_append_new(list, e) != 0)
            return AR_ENOMEM;
    }
    return 0;
}

static int signal_token_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    static const char sql[] = "SELECT m.clinic_id, m.role, c.jurisdiction FROM memberships m "
                              "JOIN clinics c ON c.id = m.clinic_id WHERE m.account_id = $1 "
                              "ORDER BY c.jurisdiction, m.clinic_id, m.role LIMIT 200";
    staff_t t[JURS_MAX];
    memset(t, 0, sizeof(t));
    size_t nt = 0;
    ar_store_stmt_t *st;
    int rc = ar_store_prepare(c, sql, sizeof(sql) - 1, &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, r->s.account_id);
    while (rc == 0 && (rc = ar_store_step(st)) == AR_STORE_ROW)
        rc = add_role(t, &nt, JURS_MAX, ar_store_col_text(st, 2, NULL), ar_store_col_int64(st, 0),
                      ar_store_col_text(st, 1, NULL));
    ar_store_finalize(st);
    if (rc < 0)
        return rc;
    r->out = json_pack("{s:[]}", "tokens");
    if (r->out == NULL)
        return AR_ENOMEM;
    if (nt == 0)
        return 0;
    if (r->app->opts.servers == NULL)
        return AR_EUNSUPPORTED;
    ar_token_key_t key;
    char secret[AR_APP_TURN_SECRET_MAX];
    rc = ar_app_keys_newest(c, r->app->seal_key, r->now, &key);
    if (rc == 0)
        rc = ar_app_turn_secret_newest(c, r->app->seal_key, r->now, secret, sizeof(secret));
    if (rc == 0)
        rc = mint_all(r, t, nt, &key, secret);
    sodium_memzero(&key, sizeof(key));
    sodium_memzero(secret, sizeof(secret));
    return rc;
}

static void out_done(int status, void *arg)
{
    ar__req_t *r = arg;
    if (status == AR_EUNSUPPORTED || status == AR_ENOTFOUND) {
        ar__reply_error(r, 503, "unavailable", "no signing key or servers are configured");
        return;
    }
    if (status < 0) {
        ar__store_failed(r, status);
        return;
    }
    ar__reply_out(r, 200);
}

void ar__h_signal_token(ar__req_t *r)
{
    (void)ar__submit(r, signal_token_job, out_done);
}

/* ---- GET /api/v1/keys ---- */

static int keys_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    return ar_app_keys_public(c, r->now, &r->out);
}

void ar__h_keys(ar__req_t *r)
{
    (void)ar__submit(r, keys_job, out_done);
}
