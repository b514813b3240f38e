/*
 * The pure parts of accounts (src/app/accounts.h): TOTP against RFC 6238's test vectors (SHA-1),
 * its window and one-time use, base32 against RFC 4648's vectors, the otpauth URI and QR code,
 * sealing, recovery-code normalisation, and the password policy's refusals.
 */
#include "accounts.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const uint8_t rfc_key[] = "12345678901234567890"; /* RFC 6238 appendix B, SHA-1 */

static void totp_rfc6238_vectors(void **state)
{
    (void)state;
    static const struct {
        int64_t t;
        uint32_t code;
    } v[] = {
        {59, 94287082},         {1111111109, 7081804},  {1111111111, 14050471},
        {1234567890, 89005924}, {2000000000, 69279037}, {20000000000, 65353130},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        assert_int_equal(ar_app_hotp(rfc_key, 20, (uint64_t)(v[i].t / AR_TOTP_STEP_S), 8),
                         v[i].code);
    /* RFC 4226 appendix D (HOTP, 6 digits), counters 0 and 9. */
    assert_int_equal(ar_app_hotp(rfc_key, 20, 0, 6), 755224);
    assert_int_equal(ar_app_hotp(rfc_key, 20, 9, 6), 520489);
}

static void code_at(int64_t t, char out[7])
{
    snprintf(out, 7, "%06u",
             (unsigned)ar_app_hotp(rfc_key, 20, (uint64_t)(t / AR_TOTP_STEP_S), AR_TOTP_DIGITS));
}

static void totp_window_and_replay(void **state)
{
    (void)state;
    int64_t now = 1800000000, step = 0;
    char c[7];
    code_at(now, c);
    assert_int_equal(ar_app_totp_check(rfc_key, 20, now, c, 6, 0, &step), 0);
    assert_int_equal(step, now / 30);
    /* Used once: the same step is refused afterwards. */
    assert_int_equal(ar_app_totp_check(rfc_key, 20, now, c, 6, step, &step), AR_EAUTH);
    /* One step of drift either way is accepted, two is not. */
    code_at(now - 30, c);
    assert_int_equal(ar_app_totp_check(rfc_key, 20, now, c, 6, 0, &step), 0);
    code_at(now + 30, c);
    assert_int_equal(ar_app_totp_check(rfc_key, 20, now, c, 6, 0, &step), 0);
    code_at(now - 60, c);
    assert_int_equal(ar_app_totp_check(rfc_key, 20, now, c, 6, 0, &step), AR_EAUTH);
    /* Malformed codes. */
    assert_int_equal(ar_app_totp_check(rfc_key, 20, now, "12345", 5, 0, &step), AR_EAUTH);
    assert_int_equal(ar_app_totp_check(rfc_key, 20, now, "12a456", 6, 0, &step), AR_EAUTH);
}

static void base32_uri_qr(void **state)
{
    (void)state;
    static const char *const want[] = {
        "",        "MY",       "MZXQ",      "MZXW6",
        "MZXW6YQ", "MZXW6YTB", "MZXW6YTBOI"}; /* RFC 4648 section 10, unpadded */
    char out[32];
    for (size_t n = 0; n <= 6; n++) {
        ar_app_base32((const uint8_t *)"foobar", n, out);
        assert_string_equal(out, want[n]);
    }
    char *uri = ar_app_otpauth_uri("a b@example.org", rfc_key, 20);
    assert_non_null(uri);
    assert_string_equal(uri, "otpauth://totp/Anteroom:a%20b@example.org?secret="
                             "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Anteroom&algorithm=SHA1"
                             "&digits=6&period=30");
    char *svg = ar_app_qr_svg(uri);
    assert_non_null(svg);
    assert_true(strncmp(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\"", 39) == 0);
    assert_non_null(strstr(svg, "</svg>"));
    assert_null(strstr(svg, "<script"));
    free(svg);
    free(uri);
}

static void seal_roundtrip(void **state)
{
    (void)state;
    uint8_t key[32] = {1}, other[32] = {2}, sealed[AR_SEALED_BYTES(20)], back[20];
    ar_app_seal(key, rfc_key, 20, sealed);
    assert_int_equal(ar_app_unseal(key, sealed, sizeof(sealed), back), 0);
    assert_memory_equal(back, rfc_key, 20);
    assert_int_equal(ar_app_unseal(other, sealed, sizeof(sealed), back), AR_EAUTH);
    sealed[30] ^= 1;
    assert_int_equal(ar_app_unseal(key, sealed, sizeof(sealed), back), AR_EAUTH);
}

static void recovery_normalised(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    assert_int_equal(ar_app_recovery_hash("ABCD-EFGH-2345", 14, a), 0);
    assert_int_equal(ar_app_recovery_hash("abcd efgh 2345", 14, b), 0);
    assert_memory_equal(a, b, 32);
    assert_int_equal(ar_app_recovery_hash("ABCD-EFGH-234", 13, a), AR_EINVAL);
    assert_int_equal(ar_app_recovery_hash("ABCD-EFGH-2341", 14, a), AR_EINVAL); /* '1' */
    assert_int_equal(ar_app_recovery_hash("ABCD-EFGH-23456", 15, a), AR_EINVAL);
}

static void password_policy(void **state)
{
    (void)state;
    static const struct {
        const char *pw;
        const char *why; /* NULL: accepted */
    } v[] = {
        {"short", "password_too_short"},
        {"elevenchars", "password_too_short"},
        /* 12 bytes but 6 characters: characters are counted, not bytes. */
        {"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", "password_too_short"},
        {"winniethepooh", "password_too_common"}, /* on the list as it is */
        {"Password1234", "password_too_common"},  /* listed word, digits after */
        {"qwerty123456!", "password_too_common"},
        {"monkeymonkey", "password_too_common"}, /* a listed word repeated */
        {"Dragon!Dragon!", "password_too_common"},
        {"jane.doe@example.org", "password_is_email"},
        {"jane.doe2024", "password_is_email"}, /* the local part with digits after */
        {"jane.doe", "password_too_short"},
        {"correct horse battery staple", NULL},
        {"tangerine-lighthouse-42", NULL},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        const char *why = NULL;
        const char *email = "jane.doe@example.org";
        int rc = ar_app_password_policy(v[i].pw, strlen(v[i].pw), email, strlen(email), &why);
        if (v[i].why == NULL) {
            if (rc != 0)
                fail_msg("'%s' refused as %s", v[i].pw, why);
        } else {
            if (rc != AR_EINVAL || strcmp(why, v[i].why) != 0)
                fail_msg("'%s': want %s, got %d %s", v[i].pw, v[i].why, rc, why ? why : "");
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(totp_rfc6238_vectors), cmocka_unit_test(totp_window_and_replay),
        cmocka_unit_test(base32_uri_qr),        cmocka_unit_test(seal_roundtrip),
        cmocka_unit_test(recovery_normalised),  cmocka_unit_test(password_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
