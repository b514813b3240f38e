/*
 * TURN REST credentials. HMAC-SHA1 is what the scheme (and every TURN client and coturn)
 * specifies; it is used here as a MAC, where SHA-1's collision weakness does not apply.
 */
#include "anteroom/turn_rest.h"

#include "anteroom/rand.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define REST_ID_BYTES 16 /* 128 random bits: unguessable and unlinkable to a person */

int ar_turn_rest_password(const char *secret, size_t secret_len, const char *user, size_t user_len,
                          char *pass, size_t passlen)
{
    if (secret == NULL || secret_len == 0 || secret_len > INT32_MAX)
        return AR_EINVAL;
    if (user_len > AR_TURN_REST_USER_LIMIT)
        return AR_ETOOBIG;
    if (passlen < AR_TURN_REST_PASS_MAX)
        return AR_ETOOBIG;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (HMAC(EVP_sha1(), secret, (int)secret_len, (const unsigned char *)user, user_len, mac,
             &maclen) == NULL ||
        maclen != 20)
        return AR_EINVAL;
    sodium_bin2base64(pass, passlen, mac, maclen, sodium_base64_VARIANT_ORIGINAL);
    sodium_memzero(mac, sizeof(mac));
    return 0;
}

int ar_turn_rest_mint(const char *secret, size_t secret_len, int64_t ttl_s, int64_t now, char *user,
                      size_t userlen, char *pass, size_t passlen)
{
    int64_t expiry;
    if (ttl_s <= 0 || now < 0 || __builtin_add_overflow(now, ttl_s, &expiry))
        return AR_EINVAL;
    if (userlen < AR_TURN_REST_USER_MAX || passlen < AR_TURN_REST_PASS_MAX)
        return AR_ETOOBIG;
    char id[32];
    int idlen = ar_rand_id(id, sizeof(id), REST_ID_BYTES);
    if (idlen < 0)
        return idlen;
    int n = snprintf(user, userlen, "%lld:%s", (long long)expiry, id);
    if (n < 0 || (size_t)n >= userlen)
        return AR_ETOOBIG;
    int rc = ar_turn_rest_password(secret, secret_len, user, (size_t)n, pass, passlen);
    if (rc < 0)
        user[0] = '\0';
    return rc;
}

int ar_turn_rest_check_expiry(const char *user, size_t user_len, int64_t now, int64_t *expiry)
{
    int64_t t = 0;
    size_t i = 0;
    /* Digits by hand: strtoll would accept signs, spaces and run past user_len. */
    for (; i < user_len && user[i] >= '0' && user[i] <= '9'; i++) {
        if (__builtin_mul_overflow(t, (int64_t)10, &t) ||
            __builtin_add_overflow(t, (int64_t)(user[i] - '0'), &t))
            return AR_EPARSE;
    }
    if (i == 0 || (i < user_len && user[i] != ':'))
        return AR_EPARSE;
    if (expiry != NULL)
        *expiry = t;
    return now > t ? AR_EEXPIRED : 0;
}

int ar_turn_rest_verify(const char *secret, size_t secret_len, const char *user, size_t user_len,
                        const char *pass, size_t pass_len, int64_t now)
{
    int rc = ar_turn_rest_check_expiry(user, user_len, now, NULL);
    if (rc < 0)
        return rc;
    char want[AR_TURN_REST_PASS_MAX];
    rc = ar_turn_rest_password(secret, secret_len, user, user_len, want, sizeof(want));
    if (rc < 0)
        return rc;
    /* The length is public (always 28); only the bytes need a constant-time compare. */
    int ok =
        pass_len == AR_TURN_REST_PASS_LEN && sodium_memcmp(want, pass, AR_TURN_REST_PASS_LEN) == 0;
    sodium_memzero(want, sizeof(want));
    return ok ? 0 : AR_EAUTH;
}
