/* TURN REST credentials: known answers computed with the openssl command line, expiry rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "anteroom/rand.h"
#include "anteroom/turn_rest.h"

#include <string.h>

#define S(x) x, strlen(x)

/*
 * Known answers, computed independently:
 *   printf '%s' '1700000000:abcDEF123_-' | openssl dgst -sha1 -hmac 'north-wind-secret' -binary
 *     | base64                                   -> fXhwespfL56oLdBJf/jwHaAcdjg=
 *   printf '%s' '1700000000' | openssl dgst -sha1 -hmac 'north-wind-secret' -binary | base64
 *                                                -> 3z+9BEYSnHO18pWIfIcjKNIH930=
 *   printf '%s' '1712345678:user' | openssl dgst -sha1 -hmac 'logen' -binary | base64
 *                                                -> EPaJvyfX5OaNURizP1mFYEisDsk=
 */
static void test_known_answers(void **state)
{
    (void)state;
    char pass[AR_TURN_REST_PASS_MAX];
    assert_int_equal(
        ar_turn_rest_password(S("north-wind-secret"), S("1700000000:abcDEF123_-"), pass, 29), 0);
    assert_string_equal(pass, "fXhwespfL56oLdBJf/jwHaAcdjg=");
    assert_int_equal(ar_turn_rest_password(S("north-wind-secret"), S("1700000000"), pass, 29), 0);
    assert_string_equal(pass, "3z+9BEYSnHO18pWIfIcjKNIH930=");
    assert_int_equal(ar_turn_rest_password(S("logen"), S("1712345678:user"), pass, 29), 0);
    assert_string_equal(pass, "EPaJvyfX5OaNURizP1mFYEisDsk=");

    assert_int_equal(ar_turn_rest_verify(S("logen"), S("1712345678:user"),
                                         S("EPaJvyfX5OaNURizP1mFYEisDsk="), 1712345678),
                     0);
    assert_int_equal(ar_turn_rest_verify(S("logen"), S("1712345678:user"),
                                         S("EPaJvyfX5OaNURizP1mFYEisDsj="), 1712345000),
                     AR_EAUTH);
    assert_int_equal(ar_turn_rest_verify(S("logen"), S("1712345678:user"),
                                         S("EPaJvyfX5OaNURizP1mFYEisDsk"), 1712345000),
                     AR_EAUTH);
    assert_int_equal(ar_turn_rest_verify(S("logen"), S("1712345678:user"),
                                         S("EPaJvyfX5OaNURizP1mFYEisDsk="), 1712345679),
                     AR_EEXPIRED);
}

static void test_expiry(void **state)
{
    (void)state;
    int64_t exp = 0;
    assert_int_equal(ar_turn_rest_check_expiry(S("1700000000:x"), 1699999999, &exp), 0);
    assert_int_equal(exp, 1700000000);
    assert_int_equal(ar_turn_rest_check_expiry(S("1700000000:x"), 1700000000, NULL), 0);
    assert_int_equal(ar_turn_rest_check_expiry(S("1700000000:x"), 1700000001, NULL), AR_EEXPIRED);
    assert_int_equal(ar_turn_rest_check_expiry(S("1700000000"), 1, NULL), 0);
    static const char *const bad[] = {"",
                                      ":x",
                                      "abc:1700000000",
                                      " 1700000000:x",
                                      "-5:x",
                                      "+5:x",
                                      "17000x0000:x",
                                      "1700000000 :x",
                                      "99999999999999999999999:x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ar_turn_rest_check_expiry(S(bad[i]), 0, NULL), AR_EPARSE);
    /* The length bounds the parse: the digits after user_len are not read. */
    assert_int_equal(ar_turn_rest_check_expiry("12345", 2, 12, &exp), 0);
    assert_int_equal(exp, 12);
}

static void test_mint(void **state)
{
    (void)state;
    assert_int_equal(ar_rand_init(), 0);
    char user[AR_TURN_REST_USER_MAX], pass[AR_TURN_REST_PASS_MAX];
    char user2[AR_TURN_REST_USER_MAX], pass2[AR_TURN_REST_PASS_MAX];
    assert_int_equal(
        ar_turn_rest_mint(S("s3cret"), 3600, 1700000000, user, sizeof(user), pass, sizeof(pass)),
        0);
    /* "<expiry>:" then 22 base64url characters of randomness, nothing else. */
    assert_int_equal(strncmp(user, "1700003600:", 11), 0);
    assert_int_equal(strlen(user), 11 + 22);
    assert_int_equal(strspn(user + 11, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                       "0123456789-_"),
                     22);
    assert_int_equal(strlen(pass), 28);
    assert_int_equal(ar_turn_rest_verify(S("s3cret"), S(user), S(pass), 1700003600), 0);
    assert_int_equal(ar_turn_rest_verify(S("other"), S(user), S(pass), 1700000000), AR_EAUTH);
    assert_int_equal(ar_turn_rest_verify(S("s3cret"), S(user), S(pass), 1700003601), AR_EEXPIRED);
    assert_int_equal(
        ar_turn_rest_mint(S("s3cret"), 3600, 1700000000, user2, sizeof(user2), pass2, 29), 0);
    assert_string_not_equal(user, user2); /* two participants never share a username */

    assert_int_equal(ar_turn_rest_mint(S("s3cret"), 0, 1, user, sizeof(user), pass, 29), AR_EINVAL);
    assert_int_equal(ar_turn_rest_mint(S("s3cret"), INT64_MAX, 1, user, sizeof(user), pass, 29),
                     AR_EINVAL);
    assert_int_equal(ar_turn_rest_mint("", 0, 60, 1, user, sizeof(user), pass, 29), AR_EINVAL);
    assert_int_equal(ar_turn_rest_mint(S("s"), 60, 1, user, 10, pass, 29), AR_ETOOBIG);
    assert_int_equal(ar_turn_rest_mint(S("s"), 60, 1, user, sizeof(user), pass, 28), AR_ETOOBIG);
    char big[600];
    memset(big, '1', sizeof(big));
    assert_int_equal(ar_turn_rest_password(S("s"), big, sizeof(big), pass, 29), AR_ETOOBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_mint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
