#include "anteroom/token.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define PREFIX "AR1."

static int id_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n >= max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

/* A BCP 47 tag: letters, digits and hyphens. */
static int lang_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 35)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return 0;
    }
    return 1;
}

int ar_token_key_generate(ar_token_key_t *key, const char *kid)
{
    memset(key, 0, sizeof(*key));
    if (!id_ok(kid, sizeof(key->kid)) || strchr(kid, '.') != NULL)
        return AR_EINVAL;
    snprintf(key->kid, sizeof(key->kid), "%s", kid);
    if (crypto_sign_keypair(key->pk, key->sk) != 0)
        return AR_ESYS;
    key->has_sk = 1;
    return 0;
}

int ar_token_keyring_add(ar_token_keyring_t *ring, const ar_token_key_t *key)
{
    if (!id_ok(key->kid, sizeof(key->kid)) || strchr(key->kid, '.') != NULL)
        return AR_EINVAL;
    for (size_t i = 0; i < ring->count; i++)
        if (strcmp(ring->keys[i].kid, key->kid) == 0)
            return AR_EEXIST;
    if (ring->count == AR_TOKEN_KEYS_MAX)
        return AR_EQUOTA;
    ring->keys[ring->count++] = *key;
    return 0;
}

void ar_token_keyring_wipe(ar_token_keyring_t *ring)
{
    sodium_memzero(ring, sizeof(*ring));
}

static const char *role_name(ar_token_role_t r)
{
    switch (r) {
    case AR_TOKEN_PATIENT:
        return "patient";
    case AR_TOKEN_STAFF:
        return "staff";
    case AR_TOKEN_INVITEE:
        return "invitee";
    }
    return NULL;
}

/* The rules both minting and verifying apply, so a minted token always verifies. */
static int claims_ok(const ar_token_claims_t *c)
{
    if (strcmp(c->aud, "signal") != 0 && strcmp(c->aud, "monitor") != 0)
        return 0;
    if (role_name(c->role) == NULL || !id_ok(c->sub, sizeof(c->sub)) ||
        !id_ok(c->jur, sizeof(c->jur)))
        return 0;
    if (c->room[0] != '\0' && !id_ok(c->room, sizeof(c->room)))
        return 0;
    if (c->lang[0] != '\0' && (c->role != AR_TOKEN_INVITEE || !lang_ok(c->lang)))
        return 0;
    if (c->exp <= c->iat || c->exp - c->iat > AR_TOKEN_MAX_LIFETIME)
        return 0;
    if (c->role == AR_TOKEN_STAFF) {
        if (c->nclinics == 0 || c->nclinics > AR_TOKEN_MAX_CLINICS)
            return 0;
        for (size_t i = 0; i < c->nclinics; i++) {
            const ar_token_clinic_t *cl = &c->clinics[i];
            if (!id_ok(cl->id, sizeof(cl->id)) || cl->nroles == 0 ||
                cl->nroles > AR_TOKEN_MAX_ROLES)
                return 0;
            for (size_t r = 0; r < cl->nroles; r++)
                if (!id_ok(cl->roles[r], sizeof(cl->roles[r])))
                    return 0;
        }
    } else if (c->room[0] == '\0' || c->nclinics != 0) {
        return 0; /* patients and invitees are bound to one room and hold no clinic role */
    }
    return 1;
}

static json_t *claims_to_json(const ar_token_claims_t *c)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "aud", c->aud, "sub", c->sub, "role",
                          role_name(c->role), "jur", c->jur, "iat", (json_int_t)c->iat, "exp",
                          (json_int_t)c->exp);
    if (o == NULL)
        return NULL;
    int rc = 0;
    if (c->room[0] != '\0')
        rc |= json_object_set_new(o, "room", json_string(c->room));
    if (c->lang[0] != '\0')
        rc |= json_object_set_new(o, "lang", json_string(c->lang));
    if (c->role == AR_TOKEN_STAFF) {
        json_t *clinics = json_object();
        rc |= json_object_set_new(o, "clinics", clinics);
        for (size_t i = 0; clinics != NULL && i < c->nclinics; i++) {
            json_t *roles = json_array();
            for (size_t r = 0; roles != NULL && r < c->clinics[i].nroles; r++)
                rc |= json_array_append_new(roles, json_string(c->clinics[i].roles[r]));
            rc |= json_object_set_new(clinics, c->clinics[i].id, roles);
        }
    }
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int ar_token_mint(const ar_token_key_t *key, const ar_token_claims_t *claims, char *out, size_t cap)
{
    if (!key->has_sk || !claims_ok(claims))
        return AR_EINVAL;
    json_t *o = claims_to_json(claims);
    if (o == NULL)
        return AR_ENOMEM;
    char *payload = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    if (payload == NULL)
        return AR_ENOMEM;
    size_t plen = strlen(payload);
    size_t b64len = sodium_base64_ENCODED_LEN(plen, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    size_t siglen =
        sodium_base64_ENCODED_LEN(crypto_sign_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    /* Both encoded lengths count a NUL: one stands for the dot between them. */
    size_t total = strlen(PREFIX) + strlen(key->kid) + 1 + b64len + siglen;
    int rc = AR_ETOOBIG;
    if (plen <= AR_TOKEN_PAYLOAD_MAX && total - 1 <= AR_TOKEN_MAX && total <= cap) {
        int n = snprintf(out, cap, PREFIX "%s.", key->kid);
        sodium_bin2base64(out + n, cap - (size_t)n, (const unsigned char *)payload, plen,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        size_t signed_len = strlen(out);
        unsigned char sig[crypto_sign_BYTES];
        crypto_sign_detached(sig, NULL, (const unsigned char *)out, signed_len, key->sk);
        out[signed_len] = '.';
        sodium_bin2base64(out + signed_len + 1, cap - signed_len - 1, sig, sizeof(sig),
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        rc = (int)strlen(out);
    }
    free(payload); /* jansson's allocator */
    return rc;
}

/* ---- verification ------------------------------------------------------------------------- */

static int copy_id(json_t *v, char *dst, size_t max)
{
    if (!json_is_string(v) || json_string_length(v) >= max)
        return AR_EPARSE;
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return id_ok(dst, max) ? 0 : AR_EPARSE;
}

static int parse_clinics(json_t *v, ar_token_claims_t *c)
{
    const char *id;
    json_t *roles;
    if (!json_is_object(v) || json_object_size(v) == 0 ||
        json_object_size(v) > AR_TOKEN_MAX_CLINICS)
        return AR_EPARSE;
    json_object_foreach(v, id, roles)
    {
        ar_token_clinic_t *cl = &c->clinics[c->nclinics++];
        if (strlen(id) >= sizeof(cl->id) || !id_ok(id, sizeof(cl->id)))
            return AR_EPARSE;
        snprintf(cl->id, sizeof(cl->id), "%s", id);
        if (!json_is_array(roles) || json_array_size(roles) == 0 ||
            json_array_size(roles) > AR_TOKEN_MAX_ROLES)
            return AR_EPARSE;
        size_t i;
        json_t *r;
        json_array_foreach(roles, i, r)
        {
            if (copy_id(r, cl->roles[i], sizeof(cl->roles[i])) != 0)
                return AR_EPARSE;
            cl->nroles++;
        }
    }
    return 0;
}

/* The claims table: each claim's key, whether it must be present, and how it is read. */
typedef enum { C_AUD, C_SUB, C_ROLE, C_ROOM, C_JUR, C_LANG, C_CLINICS, C_IAT, C_EXP } claim_t;
static const struct {
    const char *key;
    claim_t claim;
    int required;
} claim_table[] = {
    {"aud", C_AUD, 1},         {"sub", C_SUB, 1}, {"role", C_ROLE, 1},
    {"room", C_ROOM, 0},       {"jur", C_JUR, 1}, {"lang", C_LANG, 0},
    {"clinics", C_CLINICS, 0}, {"iat", C_IAT, 1}, {"exp", C_EXP, 1},
};
#define NCLAIMS (sizeof(claim_table) / sizeof(claim_table[0]))

static int parse_claim(claim_t claim, json_t *v, ar_token_claims_t *c)
{
    switch (claim) {
    case C_AUD:
        return copy_id(v, c->aud, sizeof(c->aud));
    case C_SUB:
        return copy_id(v, c->sub, sizeof(c->sub));
    case C_ROOM:
        return copy_id(v, c->room, sizeof(c->room));
    case C_JUR:
        return copy_id(v, c->jur, sizeof(c->jur));
    case C_LANG:
        if (!json_is_string(v) || !lang_ok(json_string_value(v)))
            return AR_EPARSE;
        snprintf(c->lang, sizeof(c->lang), "%s", json_string_value(v));
        return 0;
    case C_ROLE: {
        const char *r = json_is_string(v) ? json_string_value(v) : "";
        c->role = strcmp(r, "patient") == 0   ? AR_TOKEN_PATIENT
                  : strcmp(r, "staff") == 0   ? AR_TOKEN_STAFF
                  : strcmp(r, "invitee") == 0 ? AR_TOKEN_INVITEE
                                              : 0;
        return c->role ? 0 : AR_EPARSE;
    }
    case C_CLINICS:
        return parse_clinics(v, c);
    case C_IAT:
    case C_EXP:
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return AR_EPARSE;
        *(claim == C_IAT ? &c->iat : &c->exp) = json_integer_value(v);
        return 0;
    }
    return AR_EPARSE;
}

static int parse_claims(const unsigned char *json, size_t len, ar_token_claims_t *c)
{
    json_error_t jerr;
    json_t *o = json_loadb((const char *)json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL)
        return AR_EPARSE;
    int rc = json_is_object(o) ? 0 : AR_EPARSE;
    size_t seen = 0;
    for (size_t i = 0; rc == 0 && i < NCLAIMS; i++) {
        json_t *v = json_object_get(o, claim_table[i].key);
        if (v == NULL) {
            rc = claim_table[i].required ? AR_EPARSE : 0;
            continue;
        }
        seen++;
        rc = parse_claim(claim_table[i].claim, v, c);
    }
    if (rc == 0 && seen != json_object_size(o))
        rc = AR_EPARSE; /* an unknown claim */
    json_decref(o);
    return rc;
}

static const ar_token_key_t *find_key(const ar_token_keyring_t *ring, const char *kid, size_t n)
{
    for (size_t i = 0; i < ring->count; i++)
        if (strlen(ring->keys[i].kid) == n && memcmp(ring->keys[i].kid, kid, n) == 0)
            return &ring->keys[i];
    return NULL;
}

int ar_token_verify(const ar_token_keyring_t *ring, const char *token, size_t len, const char *aud,
                    int64_t now, ar_token_claims_t *claims)
{
    memset(claims, 0, sizeof(*claims));
    size_t plen = strlen(PREFIX);
    if (len > AR_TOKEN_MAX || len < plen || memcmp(token, PREFIX, plen) != 0)
        return AR_EPARSE;
    const char *kid = token + plen;
    const char *dot1 = memchr(kid, '.', len - plen);
    if (dot1 == NULL)
        return AR_EPARSE;
    const char *payload = dot1 + 1;
    const char *dot2 = memchr(payload, '.', len - (size_t)(payload - token));
    if (dot2 == NULL)
        return AR_EPARSE;
    const char *sig_text = dot2 + 1;
    size_t sig_text_len = len - (size_t)(sig_text - token);

    unsigned char sig[crypto_sign_BYTES];
    size_t sig_len = 0;
    if (sodium_base642bin(sig, sizeof(sig), sig_text, sig_text_len, NULL, &sig_len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        sig_len != sizeof(sig))
        return AR_EPARSE;
    const ar_token_key_t *key = find_key(ring, kid, (size_t)(dot1 - kid));
    if (key == NULL)
        return AR_ENOTFOUND;
    if (crypto_sign_verify_detached(sig, (const unsigned char *)token, (size_t)(dot2 - token),
                                    key->pk) != 0)
        return AR_EAUTH;

    /* Only now, with the signature good, does the payload reach the JSON parser. */
    unsigned char json[AR_TOKEN_PAYLOAD_MAX];
    size_t json_len = 0;
    if (sodium_base642bin(json, sizeof(json), payload, (size_t)(dot2 - payload), NULL, &json_len,
                          NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return AR_EPARSE;
    int rc = parse_claims(json, json_len, claims);
    if (rc != 0 || !claims_ok(claims)) {
        memset(claims, 0, sizeof(*claims));
        return AR_EPARSE;
    }
    if (strcmp(claims->aud, aud) != 0)
        return AR_EPERM;
    if (now >= claims->exp)
        return AR_EEXPIRED;
    if (claims->iat > now + AR_TOKEN_LEEWAY)
        return AR_EPARSE;
    return 0;
}

int ar_token_has_clinic_role(const ar_token_claims_t *c, const char *clinic, const char *role)
{
    if (c->role != AR_TOKEN_STAFF)
        return 0;
    for (size_t i = 0; i < c->nclinics; i++) {
        if (strcmp(c->clinics[i].id, clinic) != 0)
            continue;
        if (role == NULL)
            return 1;
        for (size_t r = 0; r < c->clinics[i].nroles; r++)
            if (strcmp(c->clinics[i].roles[r], role) == 0)
                return 1;
    }
    return 0;
}

int ar_token_opens_room(const ar_token_claims_t *c, const char *room, const char *room_clinic)
{
    if (c->room[0] != '\0' && strcmp(c->room, room) == 0)
        return 1;
    return c->role == AR_TOKEN_STAFF && room_clinic != NULL &&
           ar_token_has_clinic_role(c, room_clinic, NULL);
}
