/* Capability tokens: mint and verify, every refusal, rotation with overlap, room rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "anteroom/rand.h"
#include "anteroom/token.h"

#include <sodium.h>

#include <stdio.h>
#include <string.h>

#define NOW 1800000000

static ar_token_claims_t patient_claims(void)
{
    ar_token_claims_t c;
    memset(&c, 0, sizeof(c));
    snprintf(c.aud, sizeof(c.aud), "signal");
    snprintf(c.sub, sizeof(c.sub), "s-8f3a");
    snprintf(c.room, sizeof(c.room), "room-1");
    snprintf(c.jur, sizeof(c.jur), "eu-de");
    snprintf(c.clinic, sizeof(c.clinic), "clinic-a");
    snprintf(c.area, sizeof(c.area), "gp-area");
    snprintf(c.profile, sizeof(c.profile), "standard");
    c.role = AR_TOKEN_PATIENT;
    c.iat = NOW;
    c.exp = NOW + 600;
    return c;
}

static ar_token_claims_t staff_claims(void)
{
    ar_token_claims_t c = patient_claims();
    c.role = AR_TOKEN_STAFF;
    c.room[0] = '\0';
    c.clinic[0] = '\0';
    c.area[0] = '\0';
    c.nclinics = 2;
    snprintf(c.clinics[0].id, sizeof(c.clinics[0].id), "clinic-a");
    snprintf(c.clinics[0].roles[0], sizeof(c.clinics[0].roles[0]), "provider");
    c.clinics[0].nroles = 1;
    snprintf(c.clinics[1].id, sizeof(c.clinics[1].id), "clinic-b");
    snprintf(c.clinics[1].roles[0], sizeof(c.clinics[1].roles[0]), "receptionist");
    snprintf(c.clinics[1].roles[1], sizeof(c.clinics[1].roles[1]), "reporter");
    c.clinics[1].nroles = 2;
    return c;
}

typedef struct {
    ar_token_key_t signer;
    ar_token_keyring_t ring;
} fixture_t;

static int setup(void **state)
{
    static fixture_t f;
    memset(&f, 0, sizeof(f));
    if (ar_rand_init() != 0 || ar_token_key_generate(&f.signer, "k1") != 0)
        return -1;
    ar_token_key_t pub = f.signer;
    memset(pub.sk, 0, sizeof(pub.sk));
    pub.has_sk = 0;
    if (ar_token_keyring_add(&f.ring, &pub) != 0)
        return -1;
    *state = &f;
    return 0;
}

static void test_patient_roundtrip(void **state)
{
    fixture_t *f = *state;
    ar_token_claims_t in = patient_claims(), out;
    char tok[AR_TOKEN_MAX + 1];
    int n = ar_token_mint(&f->signer, &in, tok, sizeof(tok));
    assert_true(n > 0);
    assert_int_equal(strncmp(tok, "AR1.k1.", 7), 0);
    assert_int_equal(ar_token_verify(&f->ring, tok, (size_t)n, "signal", NOW + 10, &out), 0);
    assert_string_equal(out.room, "room-1");
    assert_string_equal(out.clinic, "clinic-a");
    assert_string_equal(out.area, "gp-area");
    assert_string_equal(out.profile, "standard");
    assert_int_equal(out.role, AR_TOKEN_PATIENT);
    assert_true(ar_token_opens_room(&out, "room-1", NULL));
    /* A patient token never works for another room, even one of a clinic. */
    assert_false(ar_token_opens_room(&out, "room-2", "clinic-a"));
}

static void test_staff_roundtrip(void **state)
{
    fixture_t *f = *state;
    ar_token_claims_t in = staff_claims(), out;
    char tok[AR_TOKEN_MAX + 1];
    int n = ar_token_mint(&f->signer, &in, tok, sizeof(tok));
    assert_true(n > 0);
    assert_int_equal(ar_token_verify(&f->ring, tok, (size_t)n, "signal", NOW, &out), 0);
    assert_int_equal(out.nclinics, 2);
    assert_true(ar_token_has_clinic_role(&out, "clinic-b", "reporter"));
    assert_false(ar_token_has_clinic_role(&out, "clinic-a", "reporter"));
    assert_true(ar_token_opens_room(&out, "any-room", "clinic-a"));
    assert_false(ar_token_opens_room(&out, "any-room", "clinic-z"));
    assert_false(ar_token_opens_room(&out, "any-room", NULL));
}

static void test_refusals(void **state)
{
    fixture_t *f = *state;
    ar_token_claims_t in = patient_claims(), out;
    char tok[AR_TOKEN_MAX + 1];
    int n = ar_token_mint(&f->signer, &in, tok, sizeof(tok));
    assert_true(n > 0);
    assert_int_equal(ar_token_verify(&f->ring, tok, (size_t)n, "signal", NOW + 600, &out),
                     AR_EEXPIRED);
    /* Expired: the claims are there all the same (signalling lets such a token resume). */
    assert_string_equal(out.room, in.room);
    assert_int_equal(out.exp, in.exp);
    assert_int_equal(ar_token_verify(&f->ring, tok, (size_t)n, "monitor", NOW, &out), AR_EPERM);
    assert_int_equal(ar_token_verify(&f->ring, tok, (size_t)n, "signal", NOW - 100, &out),
                     AR_EPARSE); /* issued in the future beyond the leeway */

    /* Any flipped character in kid, payload or signature is caught. */
    for (int i = 4; i < n; i++) {
        char copy[AR_TOKEN_MAX + 1];
        memcpy(copy, tok, (size_t)n + 1);
        copy[i] = copy[i] == 'A' ? 'B' : 'A';
        if (ar_token_verify(&f->ring, copy, (size_t)n, "signal", NOW, &out) == 0)
            fail_msg("token with byte %d changed still verified", i);
    }
    /* Truncations never verify. */
    for (int len = 0; len < n; len++)
        assert_int_not_equal(ar_token_verify(&f->ring, tok, (size_t)len, "signal", NOW, &out), 0);

    /* A key we do not hold. */
    ar_token_key_t other;
    assert_int_equal(ar_token_key_generate(&other, "k9"), 0);
    n = ar_token_mint(&other, &in, tok, sizeof(tok));
    assert_int_equal(ar_token_verify(&f->ring, tok, (size_t)n, "signal", NOW, &out), AR_ENOTFOUND);
    /* Same kid, different key: the signature fails. */
    assert_int_equal(ar_token_key_generate(&other, "k1"), 0);
    n = ar_token_mint(&other, &in, tok, sizeof(tok));
    assert_int_equal(ar_token_verify(&f->ring, tok, (size_t)n, "signal", NOW, &out), AR_EAUTH);
}

static void test_mint_refuses_bad_claims(void **state)
{
    fixture_t *f = *state;
    char tok[AR_TOKEN_MAX + 1];
    ar_token_claims_t c = patient_claims();
    c.room[0] = '\0'; /* a patient must be bound to a room */
    assert_int_equal(ar_token_mint(&f->signer, &c, tok, sizeof(tok)), AR_EINVAL);
    c = patient_claims();
    c.exp = c.iat + AR_TOKEN_MAX_LIFETIME + 1;
    assert_int_equal(ar_token_mint(&f->signer, &c, tok, sizeof(tok)), AR_EINVAL);
    c = patient_claims();
    snprintf(c.sub, sizeof(c.sub), "Jane Doe"); /* ids only: no spaces, no names */
    assert_int_equal(ar_token_mint(&f->signer, &c, tok, sizeof(tok)), AR_EINVAL);
    c = patient_claims();
    c.area[0] = '\0'; /* a patient queues in a named area */
    assert_int_equal(ar_token_mint(&f->signer, &c, tok, sizeof(tok)), AR_EINVAL);
    c = patient_claims();
    snprintf(c.profile, sizeof(c.profile), "ultra");
    assert_int_equal(ar_token_mint(&f->signer, &c, tok, sizeof(tok)), AR_EINVAL);
    c = staff_claims();
    snprintf(c.area, sizeof(c.area), "gp-area"); /* staff tokens name clinics, not an area */
    assert_int_equal(ar_token_mint(&f->signer, &c, tok, sizeof(tok)), AR_EINVAL);
    c = staff_claims();
    c.nclinics = 0;
    assert_int_equal(ar_token_mint(&f->signer, &c, tok, sizeof(tok)), AR_EINVAL);
    c = patient_claims();
    snprintf(c.lang, sizeof(c.lang), "de"); /* only invitees carry a language */
    assert_int_equal(ar_token_mint(&f->signer, &c, tok, sizeof(tok)), AR_EINVAL);
    c.role = AR_TOKEN_INVITEE;
    c.area[0] = '\0';
    assert_true(ar_token_mint(&f->signer, &c, tok, sizeof(tok)) > 0);
    assert_int_equal(ar_token_mint(&f->signer, &c, tok, 40), AR_ETOOBIG);
    ar_token_key_t pub = f->signer;
    pub.has_sk = 0;
    assert_int_equal(ar_token_mint(&pub, &c, tok, sizeof(tok)), AR_EINVAL);
}

static void test_rotation_overlap(void **state)
{
    fixture_t *f = *state;
    ar_token_key_t k2;
    assert_int_equal(ar_token_key_generate(&k2, "k2"), 0);
    ar_token_keyring_t ring = f->ring;
    assert_int_equal(ar_token_keyring_add(&ring, &k2), 0);
    assert_int_equal(ar_token_keyring_add(&ring, &k2), AR_EEXIST);
    ar_token_claims_t c = patient_claims(), out;
    char tok[AR_TOKEN_MAX + 1];
    int n1 = ar_token_mint(&f->signer, &c, tok, sizeof(tok));
    assert_int_equal(ar_token_verify(&ring, tok, (size_t)n1, "signal", NOW, &out), 0);
    int n2 = ar_token_mint(&k2, &c, tok, sizeof(tok));
    assert_int_equal(ar_token_verify(&ring, tok, (size_t)n2, "signal", NOW, &out), 0);
    ar_token_keyring_wipe(&ring);
    assert_int_equal(ring.count, 0);
}

static void test_forged_payloads_refused(void **state)
{
    /* Payloads signed correctly but with bad claims: unknown claim, wrong types, no role. */
    fixture_t *f = *state;
    static const char *const payloads[] = {
        "{\"aud\":\"signal\",\"sub\":\"s\",\"role\":\"patient\",\"room\":\"r\",\"clinic\":\"c\","
        "\"area\":\"a\",\"jur\":\"j\","
        "\"iat\":1,\"exp\":2,\"admin\":true}",
        "{\"aud\":\"signal\",\"sub\":\"s\",\"role\":\"god\",\"room\":\"r\",\"clinic\":\"c\","
        "\"area\":\"a\",\"jur\":\"j\","
        "\"iat\":1,\"exp\":2}",
        "{\"aud\":\"signal\",\"sub\":\"s\",\"role\":\"patient\",\"room\":7,\"clinic\":\"c\","
        "\"area\":\"a\",\"jur\":\"j\","
        "\"iat\":1,\"exp\":2}",
        "{\"aud\":\"signal\",\"sub\":\"s\",\"role\":\"patient\",\"room\":\"r\",\"clinic\":\"c\","
        "\"area\":\"a\",\"jur\":\"j\","
        "\"iat\":1,\"exp\":2,\"clinics\":{\"c\":[\"provider\"]}}",
        "[1,2,3]",
        "not json",
        /* the control: the same harness, a valid payload, must verify (checked below); one
         * literal in two pieces (parenthesized: clang's -Wstring-concatenation) */
        ("{\"aud\":\"signal\",\"sub\":\"s\",\"role\":\"patient\",\"room\":\"r\","
         "\"clinic\":\"c\",\"area\":\"a\",\"jur\":\"j\",\"iat\":1,\"exp\":2}"),
    };
    const size_t control = sizeof(payloads) / sizeof(payloads[0]) - 1;
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        char tok[AR_TOKEN_MAX + 1];
        int n = snprintf(tok, sizeof(tok), "AR1.k1.");
        sodium_bin2base64(tok + n, sizeof(tok) - (size_t)n, (const unsigned char *)payloads[i],
                          strlen(payloads[i]), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        size_t signed_len = strlen(tok);
        unsigned char sig[crypto_sign_BYTES];
        crypto_sign_detached(sig, NULL, (unsigned char *)tok, signed_len, f->signer.sk);
        tok[signed_len] = '.';
        sodium_bin2base64(tok + signed_len + 1, sizeof(tok) - signed_len - 1, sig, sizeof(sig),
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        ar_token_claims_t out;
        int rc = ar_token_verify(&f->ring, tok, strlen(tok), "signal", 1, &out);
        if (rc != (i == control ? 0 : AR_EPARSE))
            fail_msg("payload %zu: got %d", i, rc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_patient_roundtrip), cmocka_unit_test(test_staff_roundtrip),
        cmocka_unit_test(test_refusals),          cmocka_unit_test(test_mint_refuses_bad_claims),
        cmocka_unit_test(test_rotation_overlap),  cmocka_unit_test(test_forged_payloads_refused),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
