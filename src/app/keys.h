/*
 * Token signing keys and TURN REST secrets kept in the store, so every app instance (X1) and
 * `anteroom admin` see the same ones. Functions take a store connection: call them from a store
 * job or a tool, never on the loop.
 *
 * Rotation with overlap: a rotation adds a new key or secret and gives every older one a
 * retire_at of now + overlap. The app signs (mints) with the newest; keys not yet retired stay
 * published at /api/v1/keys, so a token signed just before the rotation verifies until it
 * expires. The overlap must exceed the longest token lifetime (AR_APP_KEY_OVERLAP does).
 */
#ifndef ANTEROOM_APP_KEYS_H
#define ANTEROOM_APP_KEYS_H

#include "anteroom/store.h"
#include "anteroom/token.h"

#include <jansson.h>

/* Lifetimes of what the app mints (docs/tokens.md): minutes; clients renew before expiry. */
#define AR_APP_STAFF_TOKEN_TTL 600
#define AR_APP_PATIENT_TOKEN_TTL 1800
#define AR_APP_TURN_TTL 3600
#define AR_APP_KEY_OVERLAP 7200
#define AR_APP_TURN_SECRET_MAX 128

/*
 * Secret halves are sealed at rest (crypto_secretbox) under `seal`, the app's 32-byte seal key
 * (--seal-key / --seal-key-file; all zero when none is configured), the same key on every
 * instance and in `anteroom admin`. Functions that write or read a secret take it.
 */

/* Adds a new signing key (kid "k" + 16 random base64url characters, written to kid, 33 bytes)
 * and retires older ones after overlap_s. In one transaction. */
AR_MUST_CHECK int ar_app_keys_rotate(ar_store_conn_t *c, const uint8_t *seal, int64_t now,
                                     int64_t overlap_s, char *kid);
/* The newest key that is not retired, with its secret. AR_ENOTFOUND when there is none,
 * AR_EAUTH when its secret does not open with seal. */
AR_MUST_CHECK int ar_app_keys_newest(ar_store_conn_t *c, const uint8_t *seal, int64_t now,
                                     ar_token_key_t *out);
/* {"keys": [{"kid", "alg": "Ed25519", "public_key" (base64url), "retire_at" or null}]} of
 * every key not retired at now, newest first. */
AR_MUST_CHECK int ar_app_keys_public(ar_store_conn_t *c, int64_t now, json_t **out);
/* Loads the public keys into a verifier's keyring (tests, and what signalling does). */
AR_MUST_CHECK int ar_app_keys_keyring(ar_store_conn_t *c, int64_t now, ar_token_keyring_t *ring);

/* Adds a TURN secret (given, or random when secret is NULL; written to out, cap bytes) and
 * retires older ones after overlap_s. */
AR_MUST_CHECK int ar_app_turn_secret_rotate(ar_store_conn_t *c, const uint8_t *seal, int64_t now,
                                            int64_t overlap_s, const char *secret, char *out,
                                            size_t cap);
/* The newest unretired TURN secret into out. AR_ENOTFOUND when there is none, AR_EAUTH when it
 * does not open with seal. */
AR_MUST_CHECK int ar_app_turn_secret_newest(ar_store_conn_t *c, const uint8_t *seal, int64_t now,
                                            char *out, size_t cap);

/* Every start: seals the rows still in clear (ar_app_secrets_seal), checks that the newest key
 * opens with seal (AR_EAUTH: the wrong seal key), makes a signing key when there is none, and a
 * TURN secret when there is none or when turn_secret (may be NULL) differs from the newest (it
 * becomes the newest; the old one retires after a TURN credential's lifetime). */
AR_MUST_CHECK int ar_app_keys_ensure(ar_store_conn_t *c, const uint8_t *seal, int64_t now,
                                     const char *turn_secret);

/* Seals under seal every signing key and TURN secret still in clear (rows from before migration
 * 0006, or written by an older instance); *count is how many. One transaction. */
AR_MUST_CHECK int ar_app_secrets_seal(ar_store_conn_t *c, const uint8_t *seal, size_t *count);
/* A change of seal key: every sealed secret (signing keys, TURN secrets, TOTP secrets enrolled
 * and pending) is opened with from and sealed with to; rows in clear are sealed too, rows
 * already under to are left. AR_EAUTH, and nothing changed, when a row opens with neither.
 * One transaction. */
AR_MUST_CHECK int ar_app_secrets_reseal(ar_store_conn_t *c, const uint8_t *from, const uint8_t *to,
                                        size_t *count);

/* The seal key from 64 hex digits (hex) or a file holding them (path; a trailing newline is
 * allowed), not both. Neither: out is all zero and *have 0 (secrets are then sealed under a
 * known key: only as safe as the database). AR_EINVAL on a malformed key, AR_ENOTFOUND when
 * the file cannot be read. */
AR_MUST_CHECK int ar_app_seal_key_load(const char *hex, const char *path, uint8_t out[32],
                                       int *have);

#endif
