/* TLS contexts: self-signed generation, loading, reload keeping the old context, CA errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "anteroom/tls.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64], cert[128], key[128], cert2[128], key2[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/ar_tls_XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(cert2, sizeof(cert2), "%s/cert2.pem", dir);
    snprintf(key2, sizeof(key2), "%s/key2.pem", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(cert);
    unlink(key);
    unlink(cert2);
    unlink(key2);
    rmdir(dir);
    return 0;
}

static X509 *read_cert(const char *path)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    X509 *x = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(x);
    return x;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_selfsigned(void **state)
{
    (void)state;
    const char *names[] = {"turn.example.org", "192.0.2.7", "2001:db8::7"};
    assert_int_equal(ar_tls_selfsigned_generate(cert, key, names, 3, 30), 0);
    struct stat st;
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600); /* the key is never readable by others */
    X509 *x = read_cert(cert);
    assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(x, "turn.example.org", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(x, "other.example.org", 0, 0, NULL), 0);
    assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "::1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "192.0.2.7", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "2001:db8::7", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "192.0.2.8", 0), 0);
    EVP_PKEY *pub = X509_get0_pubkey(x);
    assert_int_equal(EVP_PKEY_get_base_id(pub), EVP_PKEY_EC);
    assert_int_equal(EVP_PKEY_get_bits(pub), 256);
    /* Valid for about 30 days from now (an hour back for clock skew). */
    int days, secs;
    assert_int_equal(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)), 1);
    assert_true(days == 29 || days == 30);
    X509_free(x);

    ar_tls_server_t *s;
    assert_int_equal(ar_tls_server_new(cert, key, &s), 0);
    ar_tls_server_free(s);
    ar_tls_client_t *c;
    assert_int_equal(ar_tls_client_new(cert, &c), 0);
    ar_tls_client_free(c);
    assert_int_equal(ar_tls_client_new(NULL, &c), 0); /* the system store */
    ar_tls_client_free(c);
}

static void test_errors(void **state)
{
    (void)state;
    const char *bad[] = {"bad name"};
    assert_int_equal(ar_tls_selfsigned_generate(cert, key, bad, 1, 30), AR_EINVAL);
    const char *bad2[] = {"-x.example"};
    assert_int_equal(ar_tls_selfsigned_generate(cert, key, bad2, 1, 30), AR_EINVAL);
    assert_int_equal(ar_tls_selfsigned_generate(cert, key, NULL, 0, 0), AR_EINVAL);
    assert_int_equal(ar_tls_selfsigned_generate("/nonexistent/c.pem", key, NULL, 0, 1), AR_EIO);

    ar_tls_server_t *s;
    assert_int_equal(ar_tls_server_new("/nonexistent/c.pem", "/nonexistent/k.pem", &s), AR_ETLS);
    assert_null(s);
    /* A certificate with somebody else's key. */
    assert_int_equal(ar_tls_selfsigned_generate(cert, key, NULL, 0, 1), 0);
    assert_int_equal(ar_tls_selfsigned_generate(cert2, key2, NULL, 0, 1), 0);
    assert_int_equal(ar_tls_server_new(cert, key2, &s), AR_ETLS);

    ar_tls_client_t *c;
    assert_int_equal(ar_tls_client_new("/nonexistent/ca.pem", &c), AR_ETLS);
    assert_null(c);

    /* Reload: a bad file on disk keeps the loaded context; a good one is taken. */
    assert_int_equal(ar_tls_server_new(cert, key, &s), 0);
    write_file(cert, "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
    assert_int_equal(ar_tls_server_reload(s), AR_ETLS);
    unlink(cert);
    assert_int_equal(ar_tls_server_reload(s), AR_ETLS);
    assert_int_equal(ar_tls_selfsigned_generate(cert, key, NULL, 0, 1), 0);
    assert_int_equal(ar_tls_server_reload(s), 0);
    ar_tls_server_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_selfsigned),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
