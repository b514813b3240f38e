/*
 * Accounts (issue 4, A1/S2): the second factor (totp.c), the password policy
 * (password_policy.c), lockout and backoff (lockout.c), and the handlers for sign-in in two
 * steps (signin.c), invitations (invite.c), staff management (staff.c) and the account's own
 * second factor and password (me.c). Pure functions first (unit-tested without a server), then
 * what the handlers share.
 */
#ifndef ANTEROOM_APP_ACCOUNTS_H
#define ANTEROOM_APP_ACCOUNTS_H

#include "anteroom/err.h"
#include "anteroom/store.h"

#include <stddef.h>
#include <stdint.h>

/* ---- totp.c: RFC 6238 (HMAC-SHA1, 30 s steps, 6 digits) ---- */
#define AR_TOTP_STEP_S 30
#define AR_TOTP_DIGITS 6
#define AR_TOTP_KEY_BYTES 20 /* 160 bits, RFC 4226 section 4's recommendation */
/* Codes from this many steps before or after now are accepted (clock drift, typing time). */
#define AR_TOTP_WINDOW 1

/* The HOTP value (RFC 4226) of key for counter `step`, truncated to `digits` (6..8). */
uint32_t ar_app_hotp(const uint8_t *key, size_t keylen, uint64_t step, unsigned digits);
/*
 * Checks a typed code (exactly AR_TOTP_DIGITS decimal digits) at time now against steps within
 * AR_TOTP_WINDOW. A step at or before last_step was already used and is refused (codes usable
 * once). Returns 0 with *step set to the matched step, or AR_EAUTH.
 */
int ar_app_totp_check(const uint8_t *key, size_t keylen, int64_t now, const char *code, size_t len,
                      int64_t last_step, int64_t *step);
/* RFC 4648 base32 without padding; out holds ((len * 8 + 4) / 5) + 1 bytes. */
void ar_app_base32(const uint8_t *in, size_t len, char *out);
/* otpauth://totp/Anteroom:<email>?secret=...&issuer=Anteroom&... (percent-encoded label).
 * Returns a malloc'd string (free()) or NULL. */
char *ar_app_otpauth_uri(const char *email, const uint8_t *key, size_t keylen);
/* An SVG drawing of the QR code of text (libqrencode, level M). malloc'd (free()) or NULL. */
char *ar_app_qr_svg(const char *text);

/* Sealing the TOTP secret at rest (crypto_secretbox: nonce || box). */
#define AR_SEAL_KEY_BYTES 32
#define AR_SEALED_BYTES(n) (24 + 16 + (n))
void ar_app_seal(const uint8_t key[AR_SEAL_KEY_BYTES], const uint8_t *in, size_t len, uint8_t *out);
/* Returns 0 or AR_EAUTH (wrong key or altered). out holds len - 40 bytes. */
int ar_app_unseal(const uint8_t key[AR_SEAL_KEY_BYTES], const uint8_t *in, size_t len,
                  uint8_t *out);

/* Recovery codes: 10 of "xxxx-xxxx-xxxx" (base32, 60 bits each). */
#define AR_RECOVERY_CODES 10
#define AR_RECOVERY_TEXT 14
/* Hashes a typed recovery code after normalising it (case, dashes, spaces); AR_EINVAL when it
 * cannot be one. */
int ar_app_recovery_hash(const char *code, size_t len, uint8_t out[32]);

/* ---- password_policy.c ---- */
#define AR_PASSWORD_MIN_CHARS 12
/*
 * Checks a new password: at least AR_PASSWORD_MIN_CHARS characters (code points), not in the
 * shipped list of common and breached passwords (data/common-passwords.txt) even with digits
 * or symbols added at the end or the same word repeated, and not the email address or its
 * local part. Returns 0, or AR_EINVAL with *why set to a stable error code ("password_too_short",
 * "password_too_common", "password_is_email").
 */
int ar_app_password_policy(const char *pw, size_t len, const char *email, size_t elen,
                           const char **why);

/* ---- lockout.c: stored in the store, so every instance sees the same counts ---- */
#define AR_LOCKOUT_MAX 100     /* failures per account ... */
#define AR_LOCKOUT_WINDOW 3600 /* ... per this many seconds (sliding) */
#define AR_BACKOFF_FREE 5      /* failures per address before the backoff starts */
#define AR_BACKOFF_MAX_S 900   /* the longest wait an address is given */

/* 1 when the account has AR_LOCKOUT_MAX failures within the window before now, else 0; or a
 * store error. */
int ar_app_lockout_locked(ar_store_conn_t *c, int64_t account, int64_t now);
/* Records a failure of account at now (deleting those out of the window). */
int ar_app_lockout_fail(ar_store_conn_t *c, int64_t account, int64_t now);
int ar_app_lockout_clear(ar_store_conn_t *c, int64_t account);
/* 0 when the address may try, or AR_EQUOTA with *retry_after seconds; or a store error. */
int ar_app_backoff_check(ar_store_conn_t *c, const uint8_t addr[32], int64_t now,
                         int64_t *retry_after);
/* Records a failure from addr: after AR_BACKOFF_FREE failures it waits 1, 2, 4, ... seconds
 * (at most AR_BACKOFF_MAX_S); an hour without failures starts over. */
int ar_app_backoff_fail(ar_store_conn_t *c, const uint8_t addr[32], int64_t now);
int ar_app_backoff_clear(ar_store_conn_t *c, const uint8_t addr[32]);

/* ---- shared by the handlers ---- */
/* A sensitive change (roles, MFA reset, password, re-enrolment) needs the password proven in
 * this session within this many seconds (POST /api/v1/session/reauth). */
#define AR_REAUTH_S 300
/* An invitation link lives this long. */
#define AR_INVITE_TTL_S ((int64_t)72 * 3600)
/* The second step of a sign-in must come within this long. */
#define AR_MFA_CHALLENGE_S 300

#endif
