/*
 * The TLS 1.3 record layer (src/signal/net/tls13_rec.c) without sockets: HKDF-Expand-Label
 * checked against OpenSSL's own TLS13-KDF (an implementation we did not write), seal and open
 * round trips for each suite, padding, and every malformed or forged record refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tls13_rec.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <string.h>

/* OpenSSL's TLS13-KDF in expand-only mode: HKDF-Expand-Label with an empty context. */
static void reference(const ar__t13_suite_t *s, const uint8_t *secret, const char *label,
                      uint8_t *out, size_t len)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "TLS13-KDF", NULL);
    EVP_KDF_CTX *k = EVP_KDF_CTX_new(kdf);
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    OSSL_PARAM p[] = {
        OSSL_PARAM_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST, s->hash_len == 48 ? "SHA384" : "SHA256", 0),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, s->hash_len),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_PREFIX, "tls13 ", 6),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_LABEL, (void *)label, strlen(label)),
        OSSL_PARAM_END,
    };
    assert_int_equal(EVP_KDF_derive(k, out, len, p), 1);
    EVP_KDF_CTX_free(k);
    EVP_KDF_free(kdf);
}

static void test_expand_label(void **state)
{
    (void)state;
    static const uint16_t ids[] = {0x1301, 0x1302, 0x1303};
    for (size_t i = 0; i < 3; i++) {
        const ar__t13_suite_t *s = ar__t13_suite(ids[i]);
        assert_non_null(s);
        uint8_t secret[48], a[48], b[48];
        for (size_t j = 0; j < sizeof(secret); j++)
            secret[j] = (uint8_t)(j * 13 + i);
        static const char *const labels[] = {"key", "iv", "traffic upd"};
        const size_t lens[] = {s->key_len, 12, s->hash_len};
        for (size_t l = 0; l < 3; l++) {
            assert_int_equal(ar__t13_expand_label(s, secret, labels[l], a, lens[l]), 0);
            reference(s, secret, labels[l], b, lens[l]);
            assert_memory_equal(a, b, lens[l]);
        }
        /* KeyUpdate: the next secret is "traffic upd" of this one; keys follow from it. */
        ar__t13_dir_t d;
        memcpy(d.secret, secret, sizeof(secret));
        assert_int_equal(ar__t13_dir_update(s, &d), 0);
        reference(s, secret, "traffic upd", b, s->hash_len);
        assert_memory_equal(d.secret, b, s->hash_len);
        reference(s, b, "key", a, s->key_len);
        assert_memory_equal(d.key, a, s->key_len);
        assert_true(d.seq == 0);
    }
    assert_null(ar__t13_suite(0x1304)); /* AES-128-CCM: not ours, OpenSSL keeps it */
    assert_null(ar__t13_suite(0xc02f));
}

static void pair(const ar__t13_suite_t *s, ar__t13_dir_t *w, ar__t13_dir_t *r)
{
    memset(w, 0, sizeof(*w));
    for (size_t j = 0; j < sizeof(w->secret); j++)
        w->secret[j] = (uint8_t)(0xa5 ^ j);
    assert_int_equal(ar__t13_dir_init(s, w), 0);
    *r = *w;
}

static void test_seal_open(void **state)
{
    (void)state;
    static uint8_t rec[AR__T13_MAX_RECORD + 64], pt[AR__T13_MAX_PLAIN + 1];
    for (size_t j = 0; j < sizeof(pt); j++)
        pt[j] = (uint8_t)(j * 31);
    static const uint16_t ids[] = {0x1301, 0x1302, 0x1303};
    for (size_t i = 0; i < 3; i++) {
        const ar__t13_suite_t *s = ar__t13_suite(ids[i]);
        ar__t13_dir_t w, r;
        pair(s, &w, &r);
        const size_t sizes[] = {0, 1, 100, AR__T13_MAX_PLAIN};
        for (size_t k = 0; k < 4; k++) {
            size_t n = ar__t13_seal(s, &w, 23, pt, sizes[k], rec);
            assert_int_equal(n, AR__T13_HDR + sizes[k] + 1 + AR__T13_TAG);
            assert_int_equal(rec[0], 23);
            assert_int_equal(rec[3] << 8 | rec[4], n - AR__T13_HDR);
            uint8_t type = 0;
            size_t len = 0;
            assert_int_equal(ar__t13_open(s, &r, rec, n, &type, &len), 0);
            assert_int_equal(type, 23);
            assert_int_equal(len, sizes[k]);
            assert_memory_equal(rec + AR__T13_HDR, pt, sizes[k]);
        }
        assert_true(w.seq == 4 && r.seq == 4);
        /* Too big to seal. */
        assert_int_equal(ar__t13_seal(s, &w, 23, pt, AR__T13_MAX_PLAIN + 1, rec), 0);
        /* A flipped bit anywhere (header included: it is the additional data) is refused. */
        size_t n = ar__t13_seal(s, &w, 22, pt, 40, rec);
        uint8_t copy[128]; /* opening works in place, so each attempt starts from a copy */
        memcpy(copy, rec, n);
        ar__t13_dir_t saved = r;
        const size_t at[] = {3, 4, AR__T13_HDR, n - 1};
        for (size_t k = 0; k < 4; k++) {
            memcpy(rec, copy, n);
            rec[at[k]] ^= 1;
            uint8_t type;
            size_t len;
            r = saved;
            assert_int_equal(ar__t13_open(s, &r, rec, n, &type, &len), AR_ETLS);
        }
        /* Out of order: the sequence number is part of the nonce. */
        memcpy(rec, copy, n);
        r = saved;
        r.seq++;
        uint8_t type;
        size_t len;
        assert_int_equal(ar__t13_open(s, &r, rec, n, &type, &len), AR_ETLS);
        memcpy(rec, copy, n);
        r = saved;
        assert_int_equal(ar__t13_open(s, &r, rec, n, &type, &len), 0);
        assert_int_equal(type, 22);
        /* Not application_data on the outside, or shorter than a tag: refused. */
        n = ar__t13_seal(s, &w, 23, pt, 10, rec);
        rec[0] = 22;
        assert_int_equal(ar__t13_open(s, &r, rec, n, &type, &len), AR_ETLS);
        assert_int_equal(ar__t13_open(s, &r, rec, AR__T13_HDR + AR__T13_TAG, &type, &len), AR_ETLS);
    }
}

/* Padding: zeros after the content type are dropped; a record of zeros only is refused. */
static void test_padding(void **state)
{
    (void)state;
    const ar__t13_suite_t *s = ar__t13_suite(0x1301);
    ar__t13_dir_t w, r;
    pair(s, &w, &r);
    uint8_t inner[64] = {'h', 'i', 23}; /* "hi", type 23, then 61 zeros of padding */
    uint8_t rec[128];
    /* Sealing inner as type 0 appends one more zero: content "hi", type 23, 62 zeros. */
    size_t n = ar__t13_seal(s, &w, 0, inner, sizeof(inner) - 1, rec);
    uint8_t type;
    size_t len;
    assert_int_equal(ar__t13_open(s, &r, rec, n, &type, &len), 0);
    assert_int_equal(type, 23);
    assert_int_equal(len, 2);
    assert_memory_equal(rec + AR__T13_HDR, "hi", 2);
    memset(inner, 0, sizeof(inner));
    n = ar__t13_seal(s, &w, 0, inner, 20, rec);
    assert_int_equal(ar__t13_open(s, &r, rec, n, &type, &len), AR_ETLS);
    ar__t13_thread_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand_label),
        cmocka_unit_test(test_seal_open),
        cmocka_unit_test(test_padding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
