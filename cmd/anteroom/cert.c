/*
 * The self-signed certificate `anteroom up` makes on first start, so that TLS listeners work on
 * one machine with no set-up. ECDSA P-256: small keys, fast handshakes, accepted by every
 * browser. The names cover what a person types on this machine (localhost, 127.0.0.1, ::1) and
 * the host name, so other machines on the network can reach it after accepting it once.
 *
 * This is the one OpenSSL file of cmd/anteroom; when include/anteroom/tls.h offers the same
 * generation (ar_tls_selfsigned_generate) this file should call it instead.
 */
#include "up.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#define CERT_DAYS 398 /* the longest lifetime browsers accept for a server certificate */

/* A host name we may put in a DNS SAN: letters, digits, '-' and '.', not empty. */
static int dns_name_ok(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 253 || strcmp(h, "localhost") == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

static int add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL)
        return -1;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

/* Serialises the certificate (or, with x NULL, the key) into memory, then writes the file 0600
 * through ar__state_write_file. */
static int write_pem(const char *path, X509 *x, EVP_PKEY *pkey)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL)
        return AR_ENOMEM;
    int ok = x ? PEM_write_bio_X509(bio, x)
               : PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL);
    int rc = AR_ETLS;
    if (ok) {
        char *data = NULL;
        long len = BIO_get_mem_data(bio, &data);
        rc = len > 0 ? ar__state_write_file(path, data, (size_t)len) : AR_ETLS;
    }
    BIO_free(bio); /* BIO_free of a memory BIO clears the key bytes it held */
    return rc;
}

int ar__cert_generate(const char *cert_path, const char *key_path, const char *hostname)
{
    int rc = AR_ETLS;
    X509 *x = NULL;
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (pkey == NULL)
        goto out;
    x = X509_new();
    if (x == NULL || !X509_set_version(x, X509_VERSION_3))
        goto out;

    /* A random 128-bit positive serial: browsers reject a reused issuer+serial pair, and every
     * state directory makes its own certificate with the same issuer name. */
    unsigned char serial[16];
    if (RAND_bytes(serial, sizeof(serial)) != 1)
        goto out;
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
    if (bn == NULL)
        goto out;
    ASN1_INTEGER *sn = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    if (sn == NULL)
        goto out;

    if (X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(x), (long)CERT_DAYS * 24 * 3600) == NULL ||
        !X509_set_pubkey(x, pkey))
        goto out;
    X509_NAME *name = X509_get_subject_name(x);
    if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"Anteroom", -1,
                                    -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                    (const unsigned char *)"anteroom up (self-signed)", -1, -1,
                                    0) ||
        !X509_set_issuer_name(x, name))
        goto out;

    char san[512];
    int n = snprintf(san, sizeof(san), "DNS:localhost,IP:127.0.0.1,IP:::1%s%s",
                     hostname && dns_name_ok(hostname) ? ",DNS:" : "",
                     hostname && dns_name_ok(hostname) ? hostname : "");
    if (n < 0 || (size_t)n >= sizeof(san))
        goto out;
    if (add_ext(x, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
        add_ext(x, NID_key_usage, "critical,digitalSignature") != 0 ||
        add_ext(x, NID_ext_key_usage, "serverAuth") != 0 ||
        add_ext(x, NID_subject_key_identifier, "hash") != 0 ||
        add_ext(x, NID_subject_alt_name, san) != 0)
        goto out;
    if (X509_sign(x, pkey, EVP_sha256()) == 0)
        goto out;

    /* The key first; if we die between the two writes the certificate is missing, and the next
     * start remakes both. */
    rc = write_pem(key_path, NULL, pkey);
    if (rc == 0)
        rc = write_pem(cert_path, x, NULL);
out:
    X509_free(x);
    EVP_PKEY_free(pkey);
    return rc;
}
