/*
 * All of the project's OpenSSL TLS code: contexts, reload, sessions over memory BIOs and the
 * self-signed certificate `anteroom up` makes. Keeping it in one file keeps the TLS policy in
 * one place and a later switch of TLS library (design.md weighs wolfSSL and BoringSSL for
 * memory per connection) to one file.
 */
#include "tls_internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* TLS 1.2 suites: forward-secret ECDHE with AEAD only. TLS 1.3's defaults are all AEAD. */
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_GROUPS "X25519:P-256:P-384"
/*
 * A memory BIO keeps its largest allocation after it drains. A connection that once moved a
 * burst would hold that memory while idle, so an empty BIO above this size is replaced.
 */
#define TLS_BIO_KEEP_MAX ((size_t)32 << 10)

struct ar_tls_server_s {
    pthread_mutex_t lock; /* guards ctx against a reload on another thread */
    SSL_CTX *ctx;
    char *cert_path;
    char *key_path;
};

struct ar_tls_client_s {
    SSL_CTX *ctx;
};

struct ar__tls_s {
    SSL *ssl;
    BIO *rbio; /* ciphertext from the peer, read by OpenSSL */
    BIO *wbio; /* ciphertext OpenSSL produced, to be sent */
};

/*
 * OpenSSL's error queue is per thread; drain it into one log line without any peer data.
 * `what` is always a string literal at the call sites, as the log API requires.
 */
static void log_ssl_error(const char *what, int rc)
{
    unsigned long e = ERR_peek_last_error();
    ar_log_field_t f[] = {
        {.key = "what", .type = AR_LF_T_KW, .v.s = what},
        AR_LF_ERR("err", rc),
        AR_LF_UINT("ssl_lib", ERR_GET_LIB(e)),
        AR_LF_UINT("ssl_reason", ERR_GET_REASON(e)),
    };
    ar_log_fields(AR_LOG_WARN, "tls_error", f, sizeof(f) / sizeof(f[0]));
    ERR_clear_error();
}

static int common_ctx_setup(SSL_CTX *ctx)
{
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 ||
        SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1)
        return AR_ETLS;
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* Idle connections give their record buffers back (memory per held connection matters). */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return 0;
}

static SSL_CTX *server_ctx_load(const char *cert_path, const char *key_path)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return NULL;
    if (common_ctx_setup(ctx) < 0)
        goto fail;
    /* No tickets and no cache: no resumption keys to rotate or leak, and less memory. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        goto fail;
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

int ar_tls_server_new(const char *cert_path, const char *key_path, ar_tls_server_t **out)
{
    *out = NULL;
    if (cert_path == NULL || key_path == NULL)
        return AR_EINVAL;
    ar_tls_server_t *s = ar_calloc(1, sizeof(*s));
    if (s == NULL)
        return AR_ENOMEM;
    s->cert_path = ar_strndup(cert_path, strlen(cert_path));
    s->key_path = ar_strndup(key_path, strlen(key_path));
    if (s->cert_path == NULL || s->key_path == NULL) {
        ar_free(s->cert_path);
        ar_free(s->key_path);
        ar_free(s);
        return AR_ENOMEM;
    }
    s->ctx = server_ctx_load(cert_path, key_path);
    if (s->ctx == NULL) {
        log_ssl_error("server_load", AR_ETLS);
        ar_free(s->cert_path);
        ar_free(s->key_path);
        ar_free(s);
        return AR_ETLS;
    }
    pthread_mutex_init(&s->lock, NULL);
    *out = s;
    return 0;
}

int ar_tls_server_reload(ar_tls_server_t *s)
{
    SSL_CTX *fresh = server_ctx_load(s->cert_path, s->key_path);
    if (fresh == NULL) {
        log_ssl_error("server_reload", AR_ETLS);
        return AR_ETLS;
    }
    pthread_mutex_lock(&s->lock);
    SSL_CTX *old = s->ctx;
    s->ctx = fresh;
    pthread_mutex_unlock(&s->lock);
    /* Sessions made from the old context hold their own references to it. */
    SSL_CTX_free(old);
    ar_log(AR_LOG_INFO, "tls_reloaded", AR_LF_OPER("cert", s->cert_path));
    return 0;
}

void ar_tls_server_free(ar_tls_server_t *s)
{
    if (s == NULL)
        return;
    SSL_CTX_free(s->ctx);
    pthread_mutex_destroy(&s->lock);
    ar_free(s->cert_path);
    ar_free(s->key_path);
    ar_free(s);
}

int ar_tls_client_new(const char *ca_file, ar_tls_client_t **out)
{
    *out = NULL;
    ERR_clear_error();
    ar_tls_client_t *c = ar_calloc(1, sizeof(*c));
    if (c == NULL)
        return AR_ENOMEM;
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (c->ctx == NULL) {
        ar_free(c);
        return AR_ENOMEM;
    }
    int ok = common_ctx_setup(c->ctx) == 0;
    if (ok && ca_file != NULL)
        ok = SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL) == 1;
    else if (ok)
        ok = SSL_CTX_set_default_verify_paths(c->ctx) == 1;
    if (!ok) {
        log_ssl_error("client_ca", AR_ETLS);
        SSL_CTX_free(c->ctx);
        ar_free(c);
        return AR_ETLS;
    }
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    *out = c;
    return 0;
}

void ar_tls_client_free(ar_tls_client_t *c)
{
    if (c == NULL)
        return;
    SSL_CTX_free(c->ctx);
    ar_free(c);
}

/* A fresh memory BIO: empty means "wait for more", not end of stream. */
static BIO *mem_bio(void)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (b != NULL)
        BIO_set_mem_eof_return(b, -1);
    return b;
}

/* Gives back a drained BIO's large buffer; on allocation failure the old BIO simply stays. */
static void shrink(ar__tls_t *t, int write_side)
{
    BIO *old = write_side ? t->wbio : t->rbio;
    BUF_MEM *bm = NULL;
    if (BIO_ctrl_pending(old) != 0 || BIO_get_mem_ptr(old, &bm) != 1 || bm == NULL ||
        bm->max <= TLS_BIO_KEEP_MAX)
        return;
    BIO *fresh = mem_bio();
    if (fresh == NULL)
        return;
    if (write_side) {
        SSL_set0_wbio(t->ssl, fresh); /* frees the old one */
        t->wbio = fresh;
    } else {
        SSL_set0_rbio(t->ssl, fresh);
        t->rbio = fresh;
    }
}

static int session_new(SSL_CTX *ctx, ar__tls_t **out)
{
    ar__tls_t *t = ar_calloc(1, sizeof(*t));
    if (t == NULL)
        return AR_ENOMEM;
    t->ssl = SSL_new(ctx);
    t->rbio = mem_bio();
    t->wbio = mem_bio();
    if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
        SSL_free(t->ssl);
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        ar_free(t);
        return AR_ENOMEM;
    }
    SSL_set_bio(t->ssl, t->rbio, t->wbio); /* the SSL owns both BIOs from here */
    *out = t;
    return 0;
}

int ar__tls_new_server(ar_tls_server_t *s, ar__tls_t **out)
{
    pthread_mutex_lock(&s->lock);
    SSL_CTX *ctx = s->ctx;
    SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&s->lock);
    int rc = session_new(ctx, out);
    SSL_CTX_free(ctx);
    if (rc == 0)
        SSL_set_accept_state((*out)->ssl);
    return rc;
}

int ar__tls_new_client(ar_tls_client_t *c, const char *host, ar__tls_t **out)
{
    if (host == NULL || *host == '\0')
        return AR_EINVAL;
    int rc = session_new(c->ctx, out);
    if (rc < 0)
        return rc;
    SSL *ssl = (*out)->ssl;
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    int ok;
    if (is_ip) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1;
    } else {
        /* SNI carries DNS names only; the name check refuses wildcards spanning labels. */
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = SSL_set1_host(ssl, host) == 1 && SSL_set_tlsext_host_name(ssl, host) == 1;
    }
    if (!ok) {
        ar__tls_free(*out);
        *out = NULL;
        ERR_clear_error();
        return AR_EINVAL;
    }
    SSL_set_connect_state(ssl);
    return 0;
}

void ar__tls_free(ar__tls_t *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl); /* frees the BIOs too */
    ar_free(t);
}

int ar__tls_feed(ar__tls_t *t, const uint8_t *data, size_t len)
{
    while (len > 0) {
        int chunk = len > INT32_MAX ? INT32_MAX : (int)len;
        int n = BIO_write(t->rbio, data, chunk);
        if (n <= 0)
            return AR_ENOMEM;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Maps an SSL_* result to our codes; logs real failures (verification included). */
static int ssl_result(ar__tls_t *t, int r, const char *what)
{
    switch (SSL_get_error(t->ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return AR_EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return AR_ECLOSED;
    default: {
        long v = SSL_get_verify_result(t->ssl);
        if (v != X509_V_OK)
            ar_log(AR_LOG_WARN, "tls_verify_failed", AR_LF_INT("x509_err", v));
        log_ssl_error(what, AR_ETLS);
        return AR_ETLS;
    }
    }
}

int ar__tls_handshake(ar__tls_t *t)
{
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    if (r == 1)
        return 0;
    int rc = ssl_result(t, r, "handshake");
    return rc == AR_ECLOSED ? AR_ETLS : rc;
}

int ar__tls_read(ar__tls_t *t, uint8_t *buf, size_t len)
{
    ERR_clear_error();
    int chunk = len > INT32_MAX ? INT32_MAX : (int)len;
    int r = SSL_read(t->ssl, buf, chunk);
    if (r > 0)
        return r;
    r = ssl_result(t, r, "read");
    if (r == AR_EAGAIN)
        shrink(t, 0);
    return r;
}

int ar__tls_write(ar__tls_t *t, const uint8_t *data, size_t len)
{
    while (len > 0) {
        ERR_clear_error();
        int chunk = len > INT32_MAX ? INT32_MAX : (int)len;
        int r = SSL_write(t->ssl, data, chunk);
        if (r <= 0) {
            /* With memory BIOs a write never waits, so anything short is a failure. */
            (void)ssl_result(t, r, "write");
            return AR_ETLS;
        }
        data += r;
        len -= (size_t)r;
    }
    return 0;
}

void ar__tls_shutdown(ar__tls_t *t)
{
    ERR_clear_error();
    /* One call queues our close_notify; we do not wait for the peer's. */
    if (SSL_is_init_finished(t->ssl))
        SSL_shutdown(t->ssl);
    ERR_clear_error();
}

size_t ar__tls_pending_out(ar__tls_t *t)
{
    return BIO_ctrl_pending(t->wbio);
}

size_t ar__tls_take_out(ar__tls_t *t, uint8_t *buf, size_t len)
{
    int chunk = len > INT32_MAX ? INT32_MAX : (int)len;
    int n = BIO_read(t->wbio, buf, chunk);
    shrink(t, 1);
    return n > 0 ? (size_t)n : 0;
}

/* --- self-signed certificates for `anteroom up` --- */

/* Letters, digits, '-' and '.', 1..253 characters: what a DNS SAN may hold. */
static int dns_name_ok(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 253 || h[0] == '.' || h[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

static int is_ip_literal(const char *h)
{
    unsigned char ip[16];
    return inet_pton(AF_INET, h, ip) == 1 || inet_pton(AF_INET6, h, ip) == 1;
}

static int add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ext == NULL)
        return 0;
    int ok = X509_add_ext(x, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

/* Appends "," + prefix + name to the SAN text, refusing to overflow it. */
static int san_add(char *san, size_t cap, const char *name)
{
    size_t len = strlen(san);
    int n = snprintf(san + len, cap - len, "%s%s:%s", len ? "," : "",
                     is_ip_literal(name) ? "IP" : "DNS", name);
    return n > 0 && (size_t)n < cap - len;
}

/* Writes via a temporary file and rename, with the given mode from creation on. */
static int write_pem(const char *path, mode_t mode, int (*write_cb)(FILE *, void *), void *obj)
{
    char tmp[4096];
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return AR_EINVAL;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return AR_EIO;
    FILE *fp = fdopen(fd, "w");
    if (fp == NULL) {
        close(fd);
        unlink(tmp);
        return AR_EIO;
    }
    int ok = write_cb(fp, obj);
    ok = fflush(fp) == 0 && ok;
    ok = fsync(fileno(fp)) == 0 && ok;
    ok = fclose(fp) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return AR_EIO;
    }
    return 0;
}

static int write_key(FILE *fp, void *key)
{
    return PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL) == 1;
}

static int write_cert(FILE *fp, void *x)
{
    return PEM_write_X509(fp, x) == 1;
}

int ar_tls_selfsigned_generate(const char *cert_path, const char *key_path,
                               const char *const *hostnames, size_t nhosts, int days)
{
    if (days <= 0 || cert_path == NULL || key_path == NULL)
        return AR_EINVAL;
    char san[2048] = "DNS:localhost,IP:127.0.0.1,IP:::1";
    const char *cn = "localhost";
    for (size_t i = 0; i < nhosts; i++) {
        const char *h = hostnames[i];
        if (h == NULL || (!is_ip_literal(h) && !dns_name_ok(h)))
            return AR_EINVAL;
        if (strcmp(h, "localhost") == 0 || strcmp(h, "127.0.0.1") == 0 || strcmp(h, "::1") == 0)
            continue;
        if (!san_add(san, sizeof(san), h))
            return AR_ETOOBIG;
        if (cn == NULL || strcmp(cn, "localhost") == 0)
            cn = h; /* the first extra name reads best in a browser's certificate dialog */
    }
    ERR_clear_error();
    int rc = AR_ETLS;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    ASN1_INTEGER *serial = ASN1_INTEGER_new();
    BIGNUM *bn = BN_new();
    X509_NAME *name = NULL;
    if (key == NULL || x == NULL || serial == NULL || bn == NULL)
        goto out;
    /* A random 127-bit positive serial, as the CA/Browser baseline asks for. */
    if (BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
        BN_to_ASN1_INTEGER(bn, serial) == NULL || X509_set_serialNumber(x, serial) != 1)
        goto out;
    if (X509_set_version(x, X509_VERSION_3) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL || /* tolerate clock skew */
        X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400) == NULL ||
        X509_set_pubkey(x, key) != 1)
        goto out;
    name = X509_NAME_new();
    if (name == NULL ||
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"Anteroom", -1,
                                   -1, 0) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
                                   0) != 1 ||
        X509_set_subject_name(x, name) != 1 || X509_set_issuer_name(x, name) != 1)
        goto out;
    if (!add_ext(x, NID_basic_constraints, "critical,CA:FALSE") ||
        !add_ext(x, NID_key_usage, "critical,digitalSignature") ||
        !add_ext(x, NID_ext_key_usage, "serverAuth") ||
        !add_ext(x, NID_subject_key_identifier, "hash") || !add_ext(x, NID_subject_alt_name, san))
        goto out;
    if (X509_sign(x, key, EVP_sha256()) <= 0)
        goto out;
    /* Key first: a certificate without its key on disk would fail the next load. */
    rc = write_pem(key_path, 0600, write_key, key);
    if (rc == 0)
        rc = write_pem(cert_path, 0644, write_cert, x);
out:
    if (rc == AR_ETLS)
        log_ssl_error("selfsigned", rc);
    X509_NAME_free(name);
    BN_free(bn);
    ASN1_INTEGER_free(serial);
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}
