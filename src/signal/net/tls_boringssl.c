/*
 * The listener's TLS on BoringSSL (Debian's android-libboringssl-dev, headers under
 * /usr/include/android): every BoringSSL call of the signalling transport is in this file.
 *
 * Why BoringSSL: an idle connection costs far less than on OpenSSL 3 (docs/performance.md,
 * "Which TLS library"): its read and write buffers are freed whenever they are empty (no mode
 * needed), and SSL_set_shed_handshake_config drops the connection's copy of the context's
 * configuration (certificate, key, suite lists) once the handshake is done.
 *
 * Why a separate module: BoringSSL exports the same unversioned names as OpenSSL (SSL_new,
 * EVP_sha1, ...) and OpenSSL 3 is in every one of our processes (ar_core, the WebSocket
 * accept-key SHA-1). Linked together, the dynamic linker binds each name to whichever library
 * was loaded first, so one library would run the other's code. This file is therefore built
 * alone into a shared module that tls.c loads with dlopen(RTLD_LOCAL | RTLD_DEEPBIND), so its
 * names never enter the global scope and BoringSSL's libssl binds to BoringSSL's libcrypto. The
 * module calls nothing of ours and hands back only opaque pointers and AR_E* codes.
 */
#include "internal.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

static int ctx_new(const char *cert, const char *key, void **out)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return AR_ENOMEM;
    /* Same policy as tls_openssl.c: TLS 1.2+, no session cache, no tickets; BoringSSL never
     * renegotiates as a server and has no compression, so those options do not exist here. */
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return AR_ETLS;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    (void)SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    *out = ctx;
    return 0;
}

static void ctx_free(void *ctx)
{
    SSL_CTX_free(ctx);
}

static int conn_new(void *ctx, int fd, void **out)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return AR_ENOMEM;
    if (SSL_set_fd(ssl, fd) != 1) {
        ERR_clear_error();
        SSL_free(ssl);
        return AR_ETLS;
    }
    SSL_set_accept_state(ssl);
    /* The handshake's configuration is not needed once it is done (we never renegotiate). */
    SSL_set_shed_handshake_config(ssl, 1);
    *out = ssl;
    return 0;
}

static void conn_free(void *ssl)
{
    SSL_free(ssl);
}

/* Maps an SSL result to our convention; the error queue is left empty either way. */
static int result(SSL *ssl, int ret, int *want_write)
{
    switch (SSL_get_error(ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        *want_write = 0;
        return AR_EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want_write = 1;
        return AR_EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        ERR_clear_error();
        return AR_ETLS;
    }
}

static int handshake(void *ssl, int *want_write)
{
    ERR_clear_error();
    int r = SSL_do_handshake(ssl);
    if (r == 1)
        return 0;
    int e = result(ssl, r, want_write);
    return e == 0 ? AR_ETLS : e;
}

/* BoringSSL's SSL_read/SSL_write take int lengths; our reads and writes are at most 64 KiB. */
static int tls_read(void *ssl, uint8_t *buf, size_t cap, int *want_write)
{
    ERR_clear_error();
    int r = SSL_read(ssl, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);
    if (r > 0)
        return r;
    return result(ssl, r, want_write);
}

static int tls_write(void *ssl, const uint8_t *buf, size_t len, int *want_write)
{
    ERR_clear_error();
    int r = SSL_write(ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (r > 0)
        return r;
    int e = result(ssl, r, want_write);
    return e == 0 ? AR_ETLS : e;
}

static int pending(void *ssl)
{
    return SSL_pending(ssl);
}

static void thread_end(void)
{
    /* BoringSSL frees its per-thread state (error queue) itself when the thread exits. */
}

/* The one symbol tls.c looks up in this module. */
const ar__sn_tls_ops_t ar__sn_tls_boringssl = {ctx_new,  ctx_free,  conn_new, conn_free, handshake,
                                               tls_read, tls_write, pending,  thread_end};
