/*
 * The listener's TLS on OpenSSL 3: every OpenSSL call of the signalling transport is in this file.
 *
 * Memory is the concern (docs/architecture.md): SSL_set_fd rather than memory BIOs (no ring
 * buffers of ours per connection), SSL_MODE_RELEASE_BUFFERS so an idle connection gives its read
 * and write buffers back, no session cache and no tickets (resumption state per connection is
 * what we cannot afford at 100,000 connections; a reconnecting client pays a full handshake).
 */
#include "internal.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

static int ctx_new(const char *cert, const char *key, void **out)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return AR_ENOMEM;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* Partial writes and moving buffers: a write refused half-way is retried from our queue. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return AR_ETLS;
    }
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
        SSL_free(ssl);
        return AR_ETLS;
    }
    SSL_set_accept_state(ssl);
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

static int tls_read(void *ssl, uint8_t *buf, size_t cap, int *want_write)
{
    size_t n = 0;
    ERR_clear_error();
    int r = SSL_read_ex(ssl, buf, cap, &n);
    if (r == 1)
        return (int)n;
    return result(ssl, r, want_write);
}

static int tls_write(void *ssl, const uint8_t *buf, size_t len, int *want_write)
{
    size_t n = 0;
    ERR_clear_error();
    int r = SSL_write_ex(ssl, buf, len, &n);
    if (r == 1)
        return (int)n;
    int e = result(ssl, r, want_write);
    return e == 0 ? AR_ETLS : e;
}

static int pending(void *ssl)
{
    return SSL_pending(ssl);
}

static void thread_end(void)
{
    /* OpenSSL frees its per-thread state itself when the thread exits. */
}

const ar__sn_tls_ops_t ar__sn_tls_openssl = {ctx_new,  ctx_free,  conn_new, conn_free, handshake,
                                             tls_read, tls_write, pending,  thread_end};
