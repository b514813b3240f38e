/*
 * The listener's TLS on Debian's wolfSSL: every wolfSSL call of the signalling transport is in
 * this file. Built only when libwolfssl-dev is installed (AR_HAVE_WOLFSSL). Same choices as
 * tls_openssl.c: the socket given to the library, no session cache, no tickets. wolfSSL has no
 * release-buffers mode; its static input/output buffers live inside the WOLFSSL object and grow
 * dynamically only for large records.
 */
#include "internal.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

static int ctx_new(const char *cert, const char *key, void **out)
{
    static int inited;
    if (!inited) {
        /* Process-wide library set-up; a loop is created on the process's main thread. */
        if (wolfSSL_Init() != WOLFSSL_SUCCESS)
            return AR_ETLS;
        inited = 1;
    }
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
    if (!ctx)
        return AR_ENOMEM;
    if (wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_use_certificate_chain_file(ctx, cert) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_use_PrivateKey_file(ctx, key, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
        wolfSSL_CTX_free(ctx);
        return AR_ETLS;
    }
    wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
    (void)wolfSSL_CTX_NoTicketTLSv12(ctx);
    (void)wolfSSL_CTX_no_ticket_TLSv13(ctx);
    *out = ctx;
    return 0;
}

static void ctx_free(void *ctx)
{
    wolfSSL_CTX_free(ctx);
}

static int conn_new(void *ctx, int fd, void **out)
{
    WOLFSSL *ssl = wolfSSL_new(ctx);
    if (!ssl)
        return AR_ENOMEM;
    if (wolfSSL_set_fd(ssl, fd) != WOLFSSL_SUCCESS) {
        wolfSSL_free(ssl);
        return AR_ETLS;
    }
    *out = ssl;
    return 0;
}

static void conn_free(void *ssl)
{
    wolfSSL_free(ssl);
}

static int result(WOLFSSL *ssl, int ret, int *want_write)
{
    switch (wolfSSL_get_error(ssl, ret)) {
    case WOLFSSL_ERROR_WANT_READ:
        *want_write = 0;
        return AR_EAGAIN;
    case WOLFSSL_ERROR_WANT_WRITE:
        *want_write = 1;
        return AR_EAGAIN;
    case WOLFSSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        return AR_ETLS;
    }
}

static int handshake(void *ssl, int *want_write)
{
    int r = wolfSSL_accept(ssl);
    if (r == WOLFSSL_SUCCESS)
        return 0;
    int e = result(ssl, r, want_write);
    return e == 0 ? AR_ETLS : e;
}

static int tls_read(void *ssl, uint8_t *buf, size_t cap, int *want_write)
{
    int r = wolfSSL_read(ssl, buf, (int)cap);
    if (r > 0)
        return r;
    return result(ssl, r, want_write);
}

static int tls_write(void *ssl, const uint8_t *buf, size_t len, int *want_write)
{
    int r = wolfSSL_write(ssl, buf, (int)len);
    if (r > 0)
        return r;
    int e = result(ssl, r, want_write);
    return e == 0 ? AR_ETLS : e;
}

static int pending(void *ssl)
{
    return wolfSSL_pending(ssl);
}

static void thread_end(void)
{
    /* Debian's build keeps a thread-local ECC fixed-point cache (FP_ECC with HAVE_THREAD_LS)
     * that is not freed when the thread exits. */
    wc_ecc_fp_free();
}

const ar__sn_tls_ops_t ar__sn_tls_wolfssl = {ctx_new,  ctx_free,  conn_new, conn_free, handshake,
                                             tls_read, tls_write, pending,  thread_end};
