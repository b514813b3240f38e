/*
 * The shared-secret TURN REST credential scheme (coturn's use-auth-secret, and the
 * draft-uberti-behave-turn-rest "REST API for access to TURN services"):
 *   username = "<unix expiry time>:<opaque random id>"
 *   password = base64(HMAC-SHA1(secret, username))
 * The app mints a pair for a participant; the relay recomputes the password from the username
 * and its copy of the secret, and refuses the username once its time has passed. The id part is
 * random, so the username reveals nothing about the person it was minted for.
 */
#ifndef ANTEROOM_TURN_REST_H
#define ANTEROOM_TURN_REST_H

#include "anteroom/err.h"

#include <stddef.h>
#include <stdint.h>

/* "<20 digits>:<22 chars>" plus NUL fits in 64; a base64 HMAC-SHA1 is 28 chars plus NUL. */
#define AR_TURN_REST_USER_MAX 64
#define AR_TURN_REST_PASS_LEN 28
#define AR_TURN_REST_PASS_MAX (AR_TURN_REST_PASS_LEN + 1)
/* The longest username ar_turn_rest_password accepts (STUN's USERNAME cap is 513 bytes). */
#define AR_TURN_REST_USER_LIMIT 513

/*
 * Mints a credential valid until now + ttl_s (seconds). Writes NUL-terminated text into user
 * (userlen >= AR_TURN_REST_USER_MAX) and pass (passlen >= AR_TURN_REST_PASS_MAX).
 * Returns 0, AR_EINVAL (empty secret, ttl_s <= 0, overflow) or AR_ETOOBIG (buffer too small).
 * ar_rand_init() must have been called.
 */
AR_MUST_CHECK int ar_turn_rest_mint(const char *secret, size_t secret_len, int64_t ttl_s,
                                    int64_t now, char *user, size_t userlen, char *pass,
                                    size_t passlen);

/*
 * The password for a username: base64(HMAC-SHA1(secret, username)), NUL-terminated in pass.
 * Does not look at the expiry (see ar_turn_rest_check_expiry). Returns 0, AR_EINVAL (empty
 * secret), AR_ETOOBIG (username over AR_TURN_REST_USER_LIMIT or pass too small).
 */
AR_MUST_CHECK int ar_turn_rest_password(const char *secret, size_t secret_len, const char *user,
                                        size_t user_len, char *pass, size_t passlen);

/*
 * Checks the expiry in a username. Accepts "<digits>:<anything>" or "<digits>" alone (coturn
 * accepts both). Returns 0 while now <= expiry, AR_EEXPIRED after it, AR_EPARSE when the
 * username does not start with a decimal timestamp. *expiry (may be NULL) receives the time.
 */
AR_MUST_CHECK int ar_turn_rest_check_expiry(const char *user, size_t user_len, int64_t now,
                                            int64_t *expiry);

/*
 * Both checks at once, comparing the password in constant time: 0, AR_EEXPIRED, AR_EPARSE or
 * AR_EAUTH (wrong password).
 */
AR_MUST_CHECK int ar_turn_rest_verify(const char *secret, size_t secret_len, const char *user,
                                      size_t user_len, const char *pass, size_t pass_len,
                                      int64_t now);

#endif
