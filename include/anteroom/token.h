/*
 * Capability tokens (mission S3): minted by anteroom-app, checked by anteroom-signal and
 * anteroom-monitor without a database.
 *
 * Wire form (docs/tokens.md):  AR1.<kid>.<payload>.<signature>
 *   kid        the signing key's id, [A-Za-z0-9_-]{1,32}; keys rotate with overlap, so a verifier
 *              holds several
 *   payload    base64url (no padding) of a JSON object, at most AR_TOKEN_PAYLOAD_MAX bytes
 *   signature  base64url of the Ed25519 signature over the ASCII text "AR1.<kid>.<payload>"
 *
 * The signature is checked before the JSON is parsed, so unauthenticated input never reaches the
 * JSON parser. Claims:
 *   aud      "signal" or "monitor": what the token is for
 *   sub      an opaque random subject id (never a name or an account id)
 *   role     "patient", "staff" or "invitee"
 *   room     the room the token opens (required for patient and invitee)
 *   clinic   patient (required) and invitee (optional): the clinic the room belongs to
 *   area     patient only (required): the waiting area the patient queues in
 *   profile  optional: "low", "standard" or "high", the clinic's default call-quality profile
 *   clinics  staff only: object of clinic id -> array of role names
 *   jur      the clinic's jurisdiction
 *   lang     invitee only, optional: an interpreter's language tag
 *   iat, exp issued-at and expiry, Unix seconds; lifetime at most AR_TOKEN_MAX_LIFETIME
 * Unknown claims are refused.
 */
#ifndef ANTEROOM_TOKEN_H
#define ANTEROOM_TOKEN_H

#include "anteroom/err.h"

#include <stddef.h>
#include <stdint.h>

#define AR_TOKEN_MAX 2048
#define AR_TOKEN_PAYLOAD_MAX 1200 /* JSON bytes before base64 */
#define AR_TOKEN_ID_MAX 64        /* room, subject, clinic ids, kid, jurisdiction */
#define AR_TOKEN_MAX_CLINICS 16
#define AR_TOKEN_MAX_ROLES 5
#define AR_TOKEN_MAX_LIFETIME 86400 /* 24 hours */
#define AR_TOKEN_LEEWAY 30          /* seconds of clock skew tolerated on iat */
#define AR_TOKEN_KEYS_MAX 8

typedef enum { AR_TOKEN_PATIENT = 1, AR_TOKEN_STAFF, AR_TOKEN_INVITEE } ar_token_role_t;

typedef struct ar_token_clinic_s {
    char id[AR_TOKEN_ID_MAX];
    char roles[AR_TOKEN_MAX_ROLES][24];
    size_t nroles;
} ar_token_clinic_t;

typedef struct ar_token_claims_s {
    char aud[16];
    char sub[AR_TOKEN_ID_MAX];
    ar_token_role_t role;
    char room[AR_TOKEN_ID_MAX]; /* "" when absent */
    char jur[AR_TOKEN_ID_MAX];
    char lang[36];                /* BCP 47 tag, "" when absent */
    char clinic[AR_TOKEN_ID_MAX]; /* patient, invitee: the room's clinic; "" when absent */
    char area[AR_TOKEN_ID_MAX];   /* patient: the waiting area; "" when absent */
    char profile[12];             /* "low", "standard", "high"; "" when absent */
    ar_token_clinic_t clinics[AR_TOKEN_MAX_CLINICS];
    size_t nclinics;
    int64_t iat;
    int64_t exp;
} ar_token_claims_t;

typedef struct ar_token_key_s {
    char kid[33];
    uint8_t pk[32];
    uint8_t sk[64]; /* zero in a verifier's keyring */
    int has_sk;
} ar_token_key_t;

typedef struct ar_token_keyring_s {
    ar_token_key_t keys[AR_TOKEN_KEYS_MAX];
    size_t count;
} ar_token_keyring_t;

/* Generates a new Ed25519 signing key with the given kid. */
AR_MUST_CHECK int ar_token_key_generate(ar_token_key_t *key, const char *kid);
/*
 * Adds a key to a keyring (a verifier adds public keys: sk zero, has_sk 0). AR_EEXIST for a
 * duplicate kid, AR_EQUOTA when full. Keys are wiped by ar_token_keyring_wipe().
 */
AR_MUST_CHECK int ar_token_keyring_add(ar_token_keyring_t *ring, const ar_token_key_t *key);
void ar_token_keyring_wipe(ar_token_keyring_t *ring);

/*
 * Signs claims with key into out (NUL-terminated). Checks the claims make sense for the role
 * (a patient token names a room, a staff token names clinics, lifetime within bounds). Returns
 * the token length or AR_EINVAL / AR_ETOOBIG.
 */
AR_MUST_CHECK int ar_token_mint(const ar_token_key_t *key, const ar_token_claims_t *claims,
                                char *out, size_t cap);

/*
 * Verifies a token: form, known kid, signature, then claims (strict table), audience equal to
 * `aud`, not expired at `now`, not issued in the future. Returns 0 and fills claims, or
 * AR_EPARSE (malformed), AR_ENOTFOUND (unknown kid), AR_EAUTH (bad signature), AR_EEXPIRED,
 * AR_EPERM (wrong audience). With AR_EEXPIRED the claims are filled too, everything but the
 * expiry checked: a caller may accept an expired token for less (signalling, a resume).
 */
AR_MUST_CHECK int ar_token_verify(const ar_token_keyring_t *ring, const char *token, size_t len,
                                  const char *aud, int64_t now, ar_token_claims_t *claims);

/*
 * 1 when the claims open `room`, which belongs to clinic `room_clinic` (NULL for a one-time room
 * of no clinic): patients and invitees open only the room named in their token; staff open a room
 * named in their token or any room of a clinic they hold a role in.
 */
int ar_token_opens_room(const ar_token_claims_t *claims, const char *room, const char *room_clinic);
/* 1 when staff claims hold `role` (or any role, when role is NULL) in clinic `clinic`. */
int ar_token_has_clinic_role(const ar_token_claims_t *claims, const char *clinic, const char *role);

#endif
